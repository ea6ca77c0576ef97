//! Protocol anomalies: invalid TCP flag combinations (XMAS, NULL, SYN+FIN, SYN+RST, FIN
//! without ACK), land attacks (same source and destination address), bad header lengths
//! (from decoder events). One alert per source and kind, then an update every
//! `update-interval` while it goes on.

use std::net::IpAddr;

use serde_json::json;
use zonewatch_types::{ipproto, Timestamp};

use crate::alert::{AnomalyAlert, Category};
use crate::common::{secs, ts_secs, Common, Detector, Inputs};
use crate::obs::{PacketObs, TcpFlags};
use crate::sketch::{ips_json, Ip, Sample};
use crate::table::{Table, TableStats};
use crate::yaml::Section;

/// Kinds and their sids (base 9 000 600).
pub const KINDS: [(&str, u32); 7] = [
    ("TCP XMAS flags (FIN+PSH+URG)", 9_000_600),
    ("TCP NULL flags", 9_000_601),
    ("TCP SYN+FIN", 9_000_602),
    ("TCP SYN+RST", 9_000_603),
    ("TCP FIN without ACK", 9_000_604),
    ("land attack (source = destination)", 9_000_610),
    ("bad header length", 9_000_620),
];

/// Settings (`rules/detectors/protocol-anomaly.yaml`).
#[derive(Debug, Clone)]
pub struct ProtoConfig {
    /// Shared keys.
    pub common: Common,
    /// Decoder events (rule names) that count as bad header lengths.
    pub decoder_events: Vec<String>,
    /// Kinds switched off, by index name: `xmas`, `null`, `syn-fin`, `syn-rst`,
    /// `fin-no-ack`, `land`, `bad-header`.
    pub disabled: Vec<String>,
}

const KIND_KEYS: [&str; 7] = [
    "xmas",
    "null",
    "syn-fin",
    "syn-rst",
    "fin-no-ack",
    "land",
    "bad-header",
];

impl ProtoConfig {
    /// Reads the `detector:` section.
    pub fn read(s: &Section, common: Common) -> Self {
        let decoder_events = match s.list("decoder-events") {
            Some(l) => l.into_iter().map(|(e, _)| e).collect(),
            None => [
                "ipv4.hlen_too_small",
                "ipv4.iplen_smaller_than_hlen",
                "ipv4.opt_invalid_len",
                "ipv6.trunc_exthdr",
                "tcp.hlen_too_small",
                "tcp.invalid_optlen",
                "tcp.opt_invalid_len",
                "udp.hlen_too_small",
                "udp.len_invalid",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
        };
        let disabled: Vec<String> = s
            .list("disable")
            .unwrap_or_default()
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        ProtoConfig {
            common,
            decoder_events,
            disabled,
        }
    }
}

#[derive(Clone, Copy)]
struct State {
    first: i64,
    count: u64,
    at_last_alert: u64,
    alerted: i64,
    alerts: u32,
    targets: Sample<Ip, 8>,
    event: &'static str,
}

/// The protocol anomaly detector.
pub struct ProtoDetector {
    cfg: ProtoConfig,
    enabled: [bool; 7],
    state: Table<(IpAddr, u8), State>,
    /// Alerts raised, updates included.
    pub alerts: u64,
}

impl ProtoDetector {
    /// A detector with its table.
    pub fn new(cfg: ProtoConfig) -> Self {
        let mut enabled = [true; 7];
        for (i, k) in KIND_KEYS.iter().enumerate() {
            enabled[i] = !cfg.disabled.iter().any(|d| d == k);
        }
        ProtoDetector {
            state: Table::new(
                cfg.common.max_entries,
                cfg.common.update_interval * 4,
                cfg.common.seed ^ 0x9707,
            ),
            enabled,
            cfg,
            alerts: 0,
        }
    }

    fn kind(&self, o: &PacketObs) -> Option<(usize, &'static str)> {
        if o.src == o.dst && !o.src.is_loopback() {
            return Some((5, ""));
        }
        if o.proto == ipproto::TCP {
            let f = o.tcp_flags;
            let k = if f & (TcpFlags::FIN | TcpFlags::PSH | TcpFlags::URG)
                == TcpFlags::FIN | TcpFlags::PSH | TcpFlags::URG
            {
                Some(0)
            } else if f == 0 {
                Some(1)
            } else if f & (TcpFlags::SYN | TcpFlags::FIN) == TcpFlags::SYN | TcpFlags::FIN {
                Some(2)
            } else if f & (TcpFlags::SYN | TcpFlags::RST) == TcpFlags::SYN | TcpFlags::RST {
                Some(3)
            } else if f & (TcpFlags::FIN | TcpFlags::ACK) == TcpFlags::FIN {
                Some(4)
            } else {
                None
            };
            if let Some(k) = k {
                return Some((k, ""));
            }
        }
        for e in o.decoder_events.iter() {
            if self.cfg.decoder_events.iter().any(|d| d == e) {
                return Some((6, e));
            }
        }
        None
    }

    /// Per packet.
    pub fn observe(&mut self, o: &PacketObs, out: &mut Vec<AnomalyAlert>) {
        let Some((kind, event)) = self.kind(o) else {
            return;
        };
        if !self.enabled[kind] {
            return;
        }
        let now = o.ts.0;
        let s = self.state.entry((o.src, kind as u8), now, || State {
            first: now,
            count: 0,
            at_last_alert: 0,
            alerted: 0,
            alerts: 0,
            targets: Sample::default(),
            event,
        });
        s.count += 1;
        s.targets.add(Ip(o.dst));
        if s.alerted != 0 && now - s.alerted < secs(self.cfg.common.update_interval) {
            return;
        }
        let update = s.alerted != 0;
        s.alerted = now.max(1);
        s.alerts += 1;
        let since = s.count - s.at_last_alert;
        s.at_last_alert = s.count;
        self.alerts += 1;
        let mut ev = json!({
            "packets": s.count,
            "packets_since_last_alert": since,
            "first_seen": ts_secs(s.first),
            "tcp_flags": format!("{:02x}", o.tcp_flags),
            "sample_targets": ips_json(&s.targets),
            "alert_count": s.alerts,
        });
        if kind == 6 {
            ev["decoder_event"] = json!(format!("decoder.{}", s.event));
        }
        out.push(AnomalyAlert {
            ts: o.ts,
            detector: "protocol-anomaly",
            category: Category::ProtocolAnomaly,
            signature: format!("ZW PROTO {}", KINDS[kind].0),
            signature_id: KINDS[kind].1,
            severity: self.cfg.common.severity,
            src_ip: o.src,
            dest_ip: Some(o.dst),
            src_port: Some(o.sport),
            dest_port: Some(o.dport),
            proto: Some(o.proto),
            update,
            evidence: ev,
        });
    }

    /// Expires idle entries.
    pub fn expire(&mut self, now: Timestamp) {
        self.state.expire(now.0);
    }
}

impl Detector for ProtoDetector {
    fn inputs(&self) -> Inputs {
        Inputs {
            packets: true,
            ..Inputs::default()
        }
    }
    fn observe_packet(&mut self, o: &PacketObs, out: &mut Vec<AnomalyAlert>) {
        self.observe(o, out);
    }
    fn expire(&mut self, now: Timestamp) {
        ProtoDetector::expire(self, now);
    }
    fn table_stats(&self) -> TableStats {
        self.state.stats()
    }
    fn alerts(&self) -> u64 {
        self.alerts
    }
}
