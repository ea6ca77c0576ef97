//! Floods per destination: SYN (with the half-open ratio), UDP (with the answered ratio),
//! ICMP echo; spoofed-source variants (many sources, few packets each); reflection and
//! amplification (responses from service ports, or SYN-ACK/RST backscatter, that start a
//! flow: the victim never asked).
//!
//! Rates are counted in a one-second bucket that starts at the first packet after the
//! previous one ended; ratios and distinct sources over `window` seconds. A bucket reaching
//! its rate makes the destination a candidate, confirmed at the first tick `reply-grace`
//! seconds later (replies and handshake completions had time to arrive).

use std::net::IpAddr;

use serde_json::json;
use zonewatch_types::{ipproto, Timestamp};

use crate::alert::{AnomalyAlert, Category};
use crate::common::{secs, ts_secs, Common, Detector, Inputs, NS_PER_SEC};
use crate::obs::{PacketObs, TcpFlags};
use crate::sketch::{ips_json, Distinct, Ip, Sample};
use crate::table::{hash64, Table, TableStats};
use crate::yaml::Section;

/// SYN flood.
pub const SID_SYN: u32 = 9_000_200;
/// UDP flood.
pub const SID_UDP: u32 = 9_000_201;
/// ICMP echo flood.
pub const SID_ICMP: u32 = 9_000_202;
/// Spoofed-source variants: base + kind (SYN 203, UDP 204, ICMP 205).
pub const SID_SPOOFED_BASE: u32 = 9_000_203;
/// UDP reflection/amplification.
pub const SID_REFLECT_UDP: u32 = 9_000_210;
/// TCP SYN-ACK/RST backscatter reflection.
pub const SID_REFLECT_TCP: u32 = 9_000_211;

/// Flood kinds: indices of the per-kind arrays (rates, counts, alert times) and of
/// [`NAMES`]. Reflection kinds come last: their sample ports are source ports.
const SYN: usize = 0;
const UDP: usize = 1;
const ICMP_ECHO: usize = 2;
const UDP_REFLECTION: usize = 3;
const BACKSCATTER: usize = 4;
const KINDS: usize = 5;
const NAMES: [&str; KINDS] = [
    "SYN flood",
    "UDP flood",
    "ICMP echo flood",
    "UDP reflection/amplification",
    "TCP SYN-ACK/RST reflection (backscatter)",
];

/// Settings (`rules/detectors/flood.yaml`).
#[derive(Debug, Clone)]
pub struct FloodConfig {
    /// Shared keys.
    pub common: Common,
    /// Window for ratios and distinct sources, seconds.
    pub window: u64,
    /// Packets per second per destination, per kind (SYN, UDP, ICMP, UDP reflection, TCP
    /// backscatter).
    pub rates: [u64; KINDS],
    /// SYN flood: minimum share of SYNs whose handshake never completed.
    pub min_half_open_ratio: f64,
    /// UDP flood: maximum share of UDP flows the destination answered.
    pub max_answered_ratio: f64,
    /// Spoofed: at least this many distinct sources ...
    pub spoof_min_sources: u64,
    /// ... sending at most this many packets each on average.
    pub spoof_max_pkts_per_source: f64,
    /// UDP source ports of services used for reflection.
    pub reflection_ports: Vec<u16>,
    /// Seconds to wait for replies before confirming.
    pub reply_grace: u64,
    /// SYN/UDP floods hit few ports: more distinct destination ports is a scan, not a flood.
    pub max_dest_ports: u64,
    /// UDP reflection: at least this many distinct reflectors.
    pub reflection_min_sources: u64,
    /// Destinations never reported.
    pub allow_destinations: Vec<ipnet::IpNet>,
}

impl FloodConfig {
    /// Reads the `detector:` section.
    pub fn read(s: &Section, common: Common) -> Self {
        let mut ports = s.ports("reflection-ports");
        if s.node("reflection-ports").is_none() {
            ports = vec![
                7, 17, 19, 53, 69, 111, 123, 137, 161, 389, 443, 520, 1900, 3283, 3702, 5060, 5353,
                10001, 11211, 27015,
            ];
        }
        ports.sort_unstable();
        FloodConfig {
            common,
            window: s.u64("window", 10, 1, 3600),
            rates: [
                s.u64("syn-per-sec", 100, 1, 1 << 32),
                s.u64("udp-per-sec", 500, 1, 1 << 32),
                s.u64("icmp-per-sec", 100, 1, 1 << 32),
                s.u64("reflection-per-sec", 50, 1, 1 << 32),
                s.u64("backscatter-per-sec", 50, 1, 1 << 32),
            ],
            min_half_open_ratio: s.f64("min-half-open-ratio", 0.7, 0.0, 1.0),
            max_answered_ratio: s.f64("max-answered-ratio", 0.5, 0.0, 1.0),
            spoof_min_sources: s.u64("spoof-min-sources", 100, 2, 1 << 32),
            spoof_max_pkts_per_source: s.f64("spoof-max-pkts-per-source", 3.0, 0.0, 1e9),
            reflection_ports: ports,
            reply_grace: s.u64("reply-grace", 2, 0, 300),
            max_dest_ports: s.u64("max-dest-ports", 10, 1, 65_536),
            reflection_min_sources: s.u64("reflection-min-sources", 5, 1, 1 << 32),
            allow_destinations: s.nets("allow-destinations"),
        }
    }
}

#[derive(Clone, Copy, Default)]
struct Win {
    start: i64,
    pkts: [u64; KINDS],
    bytes: [u64; KINDS],
    syn_completed: u64,
    udp_flows: u64,
    udp_answered: u64,
    sources: [Distinct; KINDS],
    dports: Distinct,
    sample_sources: Sample<Ip, 8>,
    sample_ports: Sample<u16, 8>,
}

#[derive(Clone, Copy)]
struct DstState {
    bucket_start: i64,
    bucket: [u32; KINDS],
    peak: [u32; KINDS],
    win: Win,
    alerted: [i64; KINDS],
    alerts: [u32; KINDS],
    pending: u8,
    pending_since: i64,
}

/// The flood detector.
pub struct FloodDetector {
    cfg: FloodConfig,
    dsts: Table<IpAddr, DstState>,
    pending: Vec<IpAddr>,
    seed: u64,
    /// Alerts raised, updates included.
    pub alerts: u64,
    /// Candidates not confirmed (handshakes completed / UDP answered).
    pub rejected: u64,
}

impl FloodDetector {
    /// A detector with its table.
    pub fn new(cfg: FloodConfig) -> Self {
        FloodDetector {
            dsts: Table::new(
                cfg.common.max_entries,
                cfg.window + cfg.common.update_interval,
                cfg.common.seed ^ 0xf100d,
            ),
            seed: cfg.common.seed ^ 0xf10,
            cfg,
            pending: Vec::with_capacity(64),
            alerts: 0,
            rejected: 0,
        }
    }

    fn kind(&self, o: &PacketObs) -> Option<usize> {
        if o.direction != zonewatch_types::Direction::ToServer {
            return None;
        }
        match o.proto {
            ipproto::TCP => {
                let f = o.tcp_flags & (TcpFlags::SYN | TcpFlags::ACK | TcpFlags::RST);
                if !o.is_first() {
                    None
                } else if f == TcpFlags::SYN {
                    Some(SYN)
                } else if f == TcpFlags::SYN | TcpFlags::ACK || f & TcpFlags::RST != 0 {
                    Some(BACKSCATTER)
                } else {
                    None
                }
            }
            ipproto::UDP => {
                if o.flow_pkts_toclient == 0
                    && o.sport != o.dport
                    && self.cfg.reflection_ports.binary_search(&o.sport).is_ok()
                {
                    Some(UDP_REFLECTION)
                } else {
                    Some(UDP)
                }
            }
            ipproto::ICMP | ipproto::ICMPV6 if o.is_icmp_echo_request() => Some(ICMP_ECHO),
            _ => None,
        }
    }

    /// Per packet.
    pub fn observe(&mut self, o: &PacketObs) {
        let now = o.ts.0;
        // Replies and handshake completions only update an existing entry.
        if o.proto == ipproto::TCP
            && o.direction == zonewatch_types::Direction::ToServer
            && o.flow_pkts_toserver == 2
            && o.flow_pkts_toclient >= 1
            && o.tcp_flags & (TcpFlags::ACK | TcpFlags::SYN | TcpFlags::RST) == TcpFlags::ACK
        {
            if let Some(d) = self.dsts.get_mut(&o.dst, now) {
                d.win.syn_completed += 1;
            }
            return;
        }
        if o.proto == ipproto::UDP && o.is_first_reply() {
            if let Some(d) = self.dsts.get_mut(&o.src, now) {
                d.win.udp_answered += 1;
            }
            return;
        }
        let Some(kind) = self.kind(o) else { return };
        if self
            .cfg
            .allow_destinations
            .iter()
            .any(|n| n.contains(&o.dst))
        {
            return;
        }
        let hs = hash64(self.seed, &o.src);
        let hp = hash64(self.seed, &o.dport);
        let cfg = &self.cfg;
        let d = self.dsts.entry(o.dst, now, || DstState {
            bucket_start: now,
            bucket: [0; KINDS],
            peak: [0; KINDS],
            win: Win {
                start: now,
                ..Win::default()
            },
            alerted: [0; KINDS],
            alerts: [0; KINDS],
            pending: 0,
            pending_since: 0,
        });
        if now - d.bucket_start >= NS_PER_SEC {
            d.bucket_start = now;
            d.bucket = [0; KINDS];
        }
        if now - d.win.start >= secs(cfg.window) {
            d.win = Win {
                start: now,
                ..Win::default()
            };
            d.peak = [0; KINDS];
        }
        d.bucket[kind] += 1;
        d.peak[kind] = d.peak[kind].max(d.bucket[kind]);
        let w = &mut d.win;
        w.pkts[kind] += 1;
        w.bytes[kind] += o.ip_len as u64;
        if kind == UDP && o.is_first() {
            w.udp_flows += 1;
        }
        if w.sources[kind].insert(hs) {
            w.sample_sources.add(Ip(o.src));
        }
        w.sample_ports.add(if kind >= UDP_REFLECTION {
            o.sport
        } else {
            o.dport
        });
        if kind <= UDP {
            w.dports.insert(hp);
        }
        if d.bucket[kind] as u64 == cfg.rates[kind]
            && (d.alerted[kind] == 0 || now - d.alerted[kind] >= secs(cfg.common.update_interval))
        {
            if d.pending == 0 {
                d.pending_since = now;
                self.pending.push(o.dst);
            }
            d.pending |= 1 << kind;
        }
    }

    /// Confirms candidates whose grace has passed (all of them when `flush`).
    pub fn tick(&mut self, now: Timestamp, flush: bool, out: &mut Vec<AnomalyAlert>) {
        let grace = secs(self.cfg.reply_grace);
        let mut keep = 0;
        for i in 0..self.pending.len() {
            let dst = self.pending[i];
            let Some(d) = self.dsts.get_mut(&dst, i64::MIN) else {
                continue;
            };
            if !flush && now.0 - d.pending_since < grace {
                self.pending[keep] = dst;
                keep += 1;
                continue;
            }
            let kinds = std::mem::take(&mut d.pending);
            for (kind, kind_name) in NAMES.iter().enumerate() {
                if kinds & (1 << kind) == 0 {
                    continue;
                }
                let w = &d.win;
                let syn = w.pkts[SYN].max(1) as f64;
                let half_open = 1.0 - (w.syn_completed as f64 / syn).min(1.0);
                let answered = w.udp_answered as f64 / w.udp_flows.max(1) as f64;
                let few_ports = w.dports.estimate() <= self.cfg.max_dest_ports;
                let ok = match kind {
                    SYN => half_open >= self.cfg.min_half_open_ratio && few_ports,
                    UDP => answered <= self.cfg.max_answered_ratio && few_ports,
                    UDP_REFLECTION => {
                        w.sources[UDP_REFLECTION].estimate() >= self.cfg.reflection_min_sources
                    }
                    _ => true,
                };
                if !ok {
                    self.rejected += 1;
                    continue;
                }
                let nsrc = w.sources[kind].estimate();
                let per_src = w.pkts[kind] as f64 / nsrc.max(1) as f64;
                let spoofed = kind < UDP_REFLECTION
                    && nsrc >= self.cfg.spoof_min_sources
                    && per_src <= self.cfg.spoof_max_pkts_per_source;
                let update = d.alerted[kind] != 0;
                d.alerted[kind] = now.0.max(1);
                d.alerts[kind] += 1;
                self.alerts += 1;
                let (sid, name) = match kind {
                    _ if spoofed => (SID_SPOOFED_BASE + kind as u32, "spoofed-source "),
                    SYN => (SID_SYN, ""),
                    UDP => (SID_UDP, ""),
                    ICMP_ECHO => (SID_ICMP, ""),
                    UDP_REFLECTION => (SID_REFLECT_UDP, ""),
                    _ => (SID_REFLECT_TCP, ""),
                };
                let mut ev = json!({
                    "window_secs": self.cfg.window,
                    "window_start": ts_secs(w.start),
                    "packets": w.pkts[kind],
                    "bytes": w.bytes[kind],
                    "peak_pps": d.peak[kind],
                    "threshold_pps": self.cfg.rates[kind],
                    "distinct_sources": nsrc,
                    "packets_per_source": (per_src * 100.0).round() / 100.0,
                    "sample_sources": ips_json(&w.sample_sources),
                    "alert_count": d.alerts[kind],
                });
                let m = ev.as_object_mut().expect("object");
                match kind {
                    SYN => {
                        m.insert("syn".into(), json!(w.pkts[SYN]));
                        m.insert("handshakes_completed".into(), json!(w.syn_completed));
                        m.insert(
                            "half_open_ratio".into(),
                            json!((half_open * 1000.0).round() / 1000.0),
                        );
                        m.insert("sample_dest_ports".into(), json!(w.sample_ports.as_slice()));
                        m.insert("distinct_dest_ports".into(), json!(w.dports.estimate()));
                    }
                    UDP => {
                        m.insert("udp_flows".into(), json!(w.udp_flows));
                        m.insert("udp_flows_answered".into(), json!(w.udp_answered));
                        m.insert("sample_dest_ports".into(), json!(w.sample_ports.as_slice()));
                    }
                    UDP_REFLECTION | BACKSCATTER => {
                        m.insert(
                            "avg_response_bytes".into(),
                            json!(w.bytes[kind] / w.pkts[kind].max(1)),
                        );
                        m.insert(
                            "sample_source_ports".into(),
                            json!(w.sample_ports.as_slice()),
                        );
                        m.insert("unsolicited".into(), json!(true));
                    }
                    _ => {}
                }
                out.push(AnomalyAlert {
                    ts: now,
                    detector: "flood",
                    category: Category::Flood,
                    signature: format!("ZW FLOOD {name}{kind_name}"),
                    signature_id: sid,
                    severity: self.cfg.common.severity,
                    src_ip: w
                        .sample_sources
                        .as_slice()
                        .first()
                        .map(|i| i.0)
                        .unwrap_or(dst),
                    dest_ip: Some(dst),
                    src_port: None,
                    dest_port: None,
                    proto: Some(match kind {
                        SYN | BACKSCATTER => ipproto::TCP,
                        UDP | UDP_REFLECTION => ipproto::UDP,
                        _ => ipproto::ICMP,
                    }),
                    update,
                    evidence: ev,
                });
            }
        }
        self.pending.truncate(keep);
    }
}

impl Detector for FloodDetector {
    fn inputs(&self) -> Inputs {
        Inputs {
            packets: true,
            ..Inputs::default()
        }
    }
    fn observe_packet(&mut self, o: &PacketObs, _out: &mut Vec<AnomalyAlert>) {
        self.observe(o);
    }
    fn tick(&mut self, now: Timestamp, flush: bool, out: &mut Vec<AnomalyAlert>) {
        FloodDetector::tick(self, now, flush, out);
    }
    fn table_stats(&self) -> TableStats {
        self.dsts.stats()
    }
    fn alerts(&self) -> u64 {
        self.alerts
    }
}
