//! Events as stages produce them, before the output stage adds the sensor's
//! identity (host, tenant, zones, event id) and renders them as EVE JSON.

use crate::Timestamp;
use std::net::IpAddr;

/// Where an event sits in the input: file-mode output is sorted by this key,
/// which makes it independent of how many workers ran, and the event id is
/// derived from it, which makes ids stable across re-runs.
///
/// `pos` is the position of the packet or clock tick that caused the event;
/// `sub` orders several events caused by the same position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct EventKey {
    /// Input position (packet or clock tick) that caused the event.
    pub pos: u64,
    /// Order among events of the same position.
    pub sub: u64,
}

/// The ranges of `sub`: one table for every stage that makes events, in the
/// order events of one position sort (and so are written).
impl EventKey {
    /// `0..`: the packet's own events (decoder, stream and app-layer
    /// anomalies, alerts, app-layer records), numbered in the order the
    /// worker made them. A tick's detector observation is `0` too.
    pub const PACKET: u64 = 0;
    /// Transactions completed by one flow's close, at most: they are keyed
    /// right below their flow's end ([`Self::close_tx`]).
    pub const CLOSE_TX_PER_FLOW: u64 = 15;
    /// A packet's observation for the anomaly detectors (never written):
    /// after the packet's own events, so detectors see them in input order.
    pub const OBS_PACKET: u64 = 1 << 59;
    /// A DNS transaction's observation for the DNS-tunnel detector.
    pub const OBS_DNS: u64 = Self::OBS_PACKET + 1;
    /// `ANOMALY + n`: the anomaly detectors' alerts (output thread).
    pub const ANOMALY: u64 = 1 << 60;
    /// `STATS | n`: periodic stats events, so their ids never collide with
    /// packet events.
    pub const STATS: u64 = 1 << 61;
    /// `FLOW_END | first_pos << 4 | 15` ([`Self::flow_end`]): flows ending
    /// at this position, sorted by age (first-packet position, low 58 bits)
    /// whichever worker owned them. `FLOW_END | first_pos << 4 | k`, k < 15
    /// ([`Self::close_tx`]): the transactions that flow's close completed
    /// (an HTTP response ended by the FIN), written just before it. Each
    /// flow's events are one contiguous key range, so a worker that ends
    /// flows in chunks can release a chunk before making the next one.
    pub const FLOW_END: u64 = 1 << 62;
    /// `LOG + k`: Sigma alerts of log record `pos` (log thread): above every
    /// packet-path `sub`.
    pub const LOG: u64 = 1 << 63;
    /// The final stats event (at end of input + 1): sorts after everything.
    pub const FINAL_STATS: u64 = u64::MAX;

    /// Sorts after every key.
    pub const MAX: EventKey = EventKey {
        pos: u64::MAX,
        sub: u64::MAX,
    };

    /// The first key of position `pos`.
    pub const fn at(pos: u64) -> EventKey {
        EventKey { pos, sub: 0 }
    }

    /// The end of the flow whose first packet was at `first_pos`, ending at
    /// position `pos`.
    pub const fn flow_end(pos: u64, first_pos: u64) -> EventKey {
        EventKey {
            pos,
            sub: Self::flow_base(first_pos) | Self::CLOSE_TX_PER_FLOW,
        }
    }

    /// The lowest key of the events of the flow whose first packet was at
    /// `first_pos`, ending at `pos` (its first closed transaction, if any).
    pub const fn flow_events_from(pos: u64, first_pos: u64) -> EventKey {
        EventKey {
            pos,
            sub: Self::flow_base(first_pos),
        }
    }

    const fn flow_base(first_pos: u64) -> u64 {
        Self::FLOW_END | (first_pos & ((1 << 58) - 1)) << 4
    }

    /// The first-packet position of a flow-end key's flow.
    pub const fn flow_first_pos(&self) -> u64 {
        (self.sub & !Self::FLOW_END) >> 4
    }

    /// The `k`-th transaction completed by the close of the flow whose end
    /// key is `flow_end` (`k` < [`Self::CLOSE_TX_PER_FLOW`]).
    pub const fn close_tx(flow_end: EventKey, k: u64) -> EventKey {
        EventKey {
            pos: flow_end.pos,
            sub: (flow_end.sub & !0xf) | k,
        }
    }
}

/// The addresses of the packet or flow an event is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddrInfo {
    /// Source address (flow: the client, who sent the first packet).
    pub src_ip: IpAddr,
    /// Source port, when the protocol has ports.
    pub src_port: Option<u16>,
    /// Destination address.
    pub dest_ip: IpAddr,
    /// Destination port, when the protocol has ports.
    pub dest_port: Option<u16>,
    /// IP protocol number.
    pub proto: u8,
    /// VLAN ids, outermost first (0 = none).
    pub vlan: [u16; 2],
}

/// One event, ready for the output stage.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Ordering key; see [`EventKey`].
    pub key: EventKey,
    /// Time of the event (packet time in file mode).
    pub ts: Timestamp,
    /// Flow id, when the event belongs to a flow.
    pub flow_id: Option<u64>,
    /// Addresses, when known.
    pub addr: Option<AddrInfo>,
    /// Community ID v1 of the flow, when enabled and known.
    pub community_id: Option<String>,
    /// Capture interface in live mode.
    pub in_iface: Option<std::sync::Arc<str>>,
    /// The event's own fields.
    pub body: EventBody,
}

/// The part of an event that depends on its type.
#[derive(Debug, Clone, PartialEq)]
pub enum EventBody {
    /// A flow ended (or was still open at end of input).
    Flow(FlowRecord),
    /// A decoder, stream or app-layer anomaly.
    Anomaly(AnomalyRecord),
    /// Counters; already nested as EVE writes them.
    Stats(serde_json::Value),
    /// A rule matched.
    Alert(Box<AlertRecord>),
    /// An app-layer transaction (`http`, `dns`, `tls`, `ssh`).
    App(Box<AppRecord>),
}

/// An app-layer transaction record, or the transaction an alert belongs to.
#[derive(Debug, Clone, PartialEq)]
pub struct AppRecord {
    /// `app_proto` as Suricata writes it (`http`, `dns`, `tls`, `ssh`).
    pub app_proto: &'static str,
    /// The EVE key and event type of the record (`http`, `dns`, ...).
    pub key: &'static str,
    /// Transaction id within the flow.
    pub tx_id: u64,
    /// The record, with Suricata's field names.
    pub record: serde_json::Value,
}

impl EventBody {
    /// The EVE `event_type` of this body.
    pub fn event_type(&self) -> &'static str {
        match self {
            EventBody::Flow(_) => "flow",
            EventBody::Anomaly(_) => "anomaly",
            EventBody::Stats(_) => "stats",
            EventBody::Alert(_) => "alert",
            EventBody::App(a) => a.key,
        }
    }
}

/// The `flow` object of a flow event (Suricata EVE names).
#[derive(Debug, Clone, PartialEq)]
pub struct FlowRecord {
    /// Packets from client to server.
    pub pkts_toserver: u64,
    /// Packets from server to client.
    pub pkts_toclient: u64,
    /// Bytes (whole packets as captured on the wire) client to server.
    pub bytes_toserver: u64,
    /// Bytes server to client.
    pub bytes_toclient: u64,
    /// Time of the first packet.
    pub start: Timestamp,
    /// Time of the last packet.
    pub end: Timestamp,
    /// `new`, `established` or `closed`.
    pub state: &'static str,
    /// `timeout`, `forced` (evicted under memory pressure) or `shutdown`.
    pub reason: &'static str,
    /// Whether any alert was raised on the flow.
    pub alerted: bool,
    /// The flow's app-layer protocol, when identified.
    pub app_proto: Option<&'static str>,
    /// TCP details for TCP flows.
    pub tcp: Option<TcpRecord>,
}

/// The `tcp` object of a TCP flow event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpRecord {
    /// Flags seen client to server (OR of all packets).
    pub flags_ts: u8,
    /// Flags seen server to client.
    pub flags_tc: u8,
    /// TCP state name as Suricata writes it (`established`, `closed`, ...).
    pub state: &'static str,
}

/// The `anomaly` object of an anomaly event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AnomalyRecord {
    /// `decode`, `stream` or `applayer`.
    pub kind: &'static str,
    /// The flow's app-layer protocol (app-layer events).
    pub app_proto: Option<&'static str>,
    /// Suricata's event name, e.g. `decoder.ipv4.trunc_pkt`.
    pub event: &'static str,
}

/// An alert: a signature (or, later, a log or anomaly detector) matched.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertRecord {
    /// Index of the rule in the detection engine that raised it (for
    /// thresholds applied after the merge).
    pub rule: u32,
    /// The rule's action word: `alert`, `drop`, `reject`. In IDS mode every
    /// alert is `allowed` in EVE; the rule's own action is kept beside it.
    pub rule_action: &'static str,
    /// Generator id.
    pub gid: u32,
    /// Signature id.
    pub signature_id: u64,
    /// Revision.
    pub rev: u32,
    /// Message.
    pub signature: std::sync::Arc<str>,
    /// Classification description.
    pub category: std::sync::Arc<str>,
    /// 1 (highest) to 4.
    pub severity: u8,
    /// Metadata pairs in rule order.
    pub metadata: std::sync::Arc<[(String, String)]>,
    /// Matched on reassembled stream data.
    pub stream: bool,
    /// Direction of the packet in its flow (`Some(true)` = to server).
    pub to_server: Option<bool>,
    /// Packet number in the capture (file mode).
    pub pcap_cnt: Option<u64>,
    /// `target:` keyword: `Some(true)` when the target is the destination.
    pub target_dest: Option<bool>,
    /// ICMP type and code of the packet.
    pub icmp: Option<(u8, u8)>,
    /// Evidence of an anomaly detector's alert (counts, window, samples),
    /// written as the event's `evidence` object.
    pub evidence: Option<Box<serde_json::Value>>,
    /// The app-layer transaction the alert matched in (its record is
    /// attached to the alert, as Suricata does), or the flow's app protocol.
    pub app: Option<Box<AppRecord>>,
    /// Payload and packet bytes, only when the configuration asks for them.
    pub bytes: Option<Box<AlertBytes>>,
    /// The parsed log record of a log alert, written as the event's `log`
    /// object (its raw text, when allowed, is `log.raw`).
    pub log: Option<Box<serde_json::Value>>,
}

/// What an alert may carry of the packet (off by default).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AlertBytes {
    /// The payload that matched (packet payload), for `payload`.
    pub payload: Option<Vec<u8>>,
    /// Also write `payload_printable`.
    pub printable: bool,
    /// The whole packet, for `packet`.
    pub packet: Option<Vec<u8>>,
}

impl AlertRecord {
    /// `rule` of alerts not raised by a signature (no thresholds apply).
    pub const NOT_A_SIGNATURE: u32 = u32::MAX;
}

#[cfg(test)]
mod key_tests {
    use super::EventKey;

    #[test]
    fn a_flows_closed_transactions_sort_just_before_its_end_and_flows_by_age() {
        let (old, young) = (EventKey::flow_end(9, 3), EventKey::flow_end(9, 7));
        let keys = [
            EventKey::at(9),
            EventKey::close_tx(old, 0),
            EventKey::close_tx(old, EventKey::CLOSE_TX_PER_FLOW - 1),
            old,
            EventKey::close_tx(young, 0),
            young,
            EventKey::at(10),
        ];
        assert!(keys.windows(2).all(|w| w[0] < w[1]), "{keys:?}");
        assert_eq!(EventKey::flow_events_from(9, 3), EventKey::close_tx(old, 0));
        assert_eq!(old.flow_first_pos(), 3);
        assert_eq!(young.flow_first_pos(), 7);
    }
}
