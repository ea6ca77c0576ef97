//! Alert records: what a rule's [`Hit`] on a packet becomes in the event
//! stream. Built here, beside the rule metadata, so the worker only says
//! which packet and transaction the hit belongs to.

use crate::{Engine, Hit};
use zonewatch_types::{AlertBytes, AlertRecord, AppRecord};

/// Which packet bytes alerts carry (`outputs.eve.types.alert` settings:
/// `payload`, `payload-printable`, `packet`); all off by default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AlertBytesConfig {
    /// Write the payload, base64 (`payload`).
    pub payload: bool,
    /// Write the payload as printable text (`payload_printable`); carries
    /// the payload too.
    pub printable: bool,
    /// Write the whole packet, base64 (`packet`).
    pub packet: bool,
}

impl AlertBytesConfig {
    /// Whether alerts carry any bytes at all.
    pub fn any(&self) -> bool {
        self.payload || self.printable || self.packet
    }

    /// The bytes one alert carries, or `None` when nothing is asked for.
    /// Copied only here, per alert, never per packet.
    pub fn bytes(&self, payload: &[u8], packet: &[u8]) -> Option<Box<AlertBytes>> {
        self.any().then(|| {
            Box::new(AlertBytes {
                payload: (self.payload || self.printable).then(|| payload.to_vec()),
                printable: self.printable,
                packet: self.packet.then(|| packet.to_vec()),
            })
        })
    }
}

/// What an alert says about the packet it was raised on, besides the rule.
#[derive(Debug, Clone, Default)]
pub struct AlertPacket {
    /// Direction of the packet in its flow as signatures saw it
    /// (`Some(true)` = to server); `None` without a flow.
    pub to_server: Option<bool>,
    /// Packet number in the capture (`pcap_cnt`).
    pub pcap_cnt: u64,
    /// ICMP type and code of the packet.
    pub icmp: Option<(u8, u8)>,
    /// Payload and packet bytes ([`AlertBytesConfig::bytes`]).
    pub bytes: Option<Box<AlertBytes>>,
    /// The transaction the rule matched in, or the flow's app protocol.
    pub app: Option<Box<AppRecord>>,
}

impl Engine {
    /// The alert record of `hit` on a packet: the rule's metadata (shared,
    /// not copied) and what `packet` says.
    pub fn alert_record(&self, hit: Hit, packet: AlertPacket) -> AlertRecord {
        let m = self.meta(hit.rule);
        AlertRecord {
            rule: hit.rule,
            rule_action: m.action,
            gid: m.gid,
            signature_id: m.sid,
            rev: m.rev,
            signature: m.msg.clone(),
            category: m.category.clone(),
            severity: m.severity,
            metadata: m.metadata.clone(),
            stream: hit.stream,
            to_server: packet.to_server,
            pcap_cnt: Some(packet.pcap_cnt),
            target_dest: m.target_dest,
            icmp: packet.icmp,
            evidence: None,
            app: packet.app,
            bytes: packet.bytes,
            log: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_follow_the_configuration() {
        let none = AlertBytesConfig::default();
        assert!(none.bytes(b"pl", b"pkt").is_none());
        let printable = AlertBytesConfig {
            printable: true,
            ..Default::default()
        };
        let b = printable.bytes(b"pl", b"pkt").unwrap();
        assert_eq!(b.payload.as_deref(), Some(&b"pl"[..]));
        assert!(b.printable && b.packet.is_none());
        let packet = AlertBytesConfig {
            packet: true,
            ..Default::default()
        };
        let b = packet.bytes(b"pl", b"pkt").unwrap();
        assert_eq!(
            (b.payload.as_deref(), b.packet.as_deref()),
            (None, Some(&b"pkt"[..]))
        );
    }
}
