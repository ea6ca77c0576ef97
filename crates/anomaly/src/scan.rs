//! Port scans: distinct targets and ports per source, counting attempts that went unanswered
//! or were refused, in a short window and in a long (slow-scan) window.
//!
//! An *attempt* is a flow's first packet (any direction: the source is whoever opened the
//! flow). Its first reply tells how it went: a TCP reply without RST or any UDP reply is
//! *answered*; a TCP RST or an ICMP unreachable aimed at the source is *refused*; no reply is
//! *unanswered*. Failed = attempts − answered.
//!
//! When a source crosses a threshold it becomes a candidate; at the first tick `reply-grace`
//! seconds later (so replies had time to arrive) it is confirmed if failed/attempts ≥
//! `min-failed-ratio`. Then one alert, and an update every `update-interval` while it goes
//! on. The technique is the most frequent probe kind in the window.

use std::net::IpAddr;

use serde_json::json;
use zonewatch_types::{ipproto, Timestamp};

use crate::alert::{AnomalyAlert, Category};
use crate::common::{secs, ts_secs, Common, Detector, Inputs};
use crate::obs::{PacketObs, TcpFlags};
use crate::sketch::{ips_json, Distinct, Ip, Sample};
use crate::table::{hash64, Table, TableStats};
use crate::yaml::Section;

/// First signature id; sid = base + technique × 10 + shape.
pub const SID_BASE: u32 = 9_000_100;

/// Probe kinds (technique), from the first packet of a flow.
pub const TECHNIQUES: [&str; 10] = [
    "TCP SYN",
    "TCP FIN",
    "TCP NULL",
    "TCP XMAS",
    "TCP ACK/window",
    "TCP Maimon",
    "UDP",
    "IP protocol",
    "ICMP echo sweep",
    "TCP other flags",
];

/// Indices in [`TECHNIQUES`] of the probes that are not TCP: UDP (a port is its target),
/// other IP protocols (the protocol is the target) and ICMP echo (no port).
const UDP: usize = 6;
const IP_PROTOCOL: usize = 7;
const ICMP_ECHO: usize = 8;

/// Scan shapes: sid offset within a technique.
pub const SHAPES: [&str; 4] = [
    "vertical port scan",
    "horizontal scan",
    "slow vertical port scan",
    "slow horizontal scan",
];

fn technique(o: &PacketObs) -> Option<usize> {
    match o.proto {
        ipproto::TCP => {
            let f = o.tcp_flags
                & (TcpFlags::SYN
                    | TcpFlags::ACK
                    | TcpFlags::FIN
                    | TcpFlags::RST
                    | TcpFlags::PSH
                    | TcpFlags::URG);
            Some(match f {
                TcpFlags::SYN => 0,
                TcpFlags::FIN => 1,
                0 => 2,
                x if x == TcpFlags::FIN | TcpFlags::PSH | TcpFlags::URG => 3,
                TcpFlags::ACK => 4,
                x if x == TcpFlags::FIN | TcpFlags::ACK => 5,
                _ => 9,
            })
        }
        ipproto::UDP => Some(UDP),
        ipproto::ICMP | ipproto::ICMPV6 => {
            if o.is_icmp_echo_request() {
                Some(ICMP_ECHO)
            } else {
                None
            }
        }
        _ => Some(IP_PROTOCOL),
    }
}

/// Settings (`rules/detectors/portscan.yaml`).
#[derive(Debug, Clone)]
pub struct ScanConfig {
    /// Shared keys.
    pub common: Common,
    /// Short window, seconds.
    pub window: u64,
    /// Distinct ports (or protocols) of failed attempts for a vertical scan.
    pub vertical_ports: u64,
    /// Distinct hosts for a horizontal scan.
    pub horizontal_hosts: u64,
    /// Long window, seconds.
    pub slow_window: u64,
    /// Slow-scan thresholds.
    pub slow_vertical_ports: u64,
    /// Slow-scan thresholds.
    pub slow_horizontal_hosts: u64,
    /// Failed / attempts needed to confirm.
    pub min_failed_ratio: f64,
    /// Seconds to wait for replies before confirming.
    pub reply_grace: u64,
    /// Seconds between updates of an ongoing slow scan.
    pub slow_update_interval: u64,
    /// Sources never reported (vulnerability scanners, monitoring).
    pub allow_sources: Vec<ipnet::IpNet>,
}

impl ScanConfig {
    /// Reads the `detector:` section.
    pub fn read(s: &Section, common: Common) -> Self {
        ScanConfig {
            common,
            window: s.u64("window", 60, 1, 86_400),
            vertical_ports: s.u64("vertical-ports", 25, 2, 65_536),
            horizontal_hosts: s.u64("horizontal-hosts", 25, 2, 1 << 24),
            slow_window: s.u64("slow-window", 3600, 1, 7 * 86_400),
            slow_vertical_ports: s.u64("slow-vertical-ports", 20, 2, 65_536),
            slow_horizontal_hosts: s.u64("slow-horizontal-hosts", 20, 2, 1 << 24),
            min_failed_ratio: s.f64("min-failed-ratio", 0.6, 0.0, 1.0),
            reply_grace: s.u64("reply-grace", 3, 0, 300),
            slow_update_interval: s.u64("slow-update-interval", 900, 1, 7 * 86_400),
            allow_sources: s.nets("allow-sources"),
        }
    }
}

#[derive(Default, Clone, Copy)]
struct Win {
    start: i64,
    ports: Distinct,
    hosts: Distinct,
    attempts: u32,
    answered: u32,
    refused: u32,
    kinds: [u32; 10],
    sample_ports: Sample<u16, 10>,
    sample_hosts: Sample<Ip, 8>,
}

impl Win {
    fn roll(&mut self, now: i64, len_ns: i64) {
        if now.saturating_sub(self.start) >= len_ns {
            *self = Win {
                start: now,
                ..Win::default()
            };
        }
    }
}

#[derive(Clone, Copy)]
struct SrcState {
    fast: Win,
    slow: Win,
    /// Per shape: time of the last alert (0 = never).
    alerted: [i64; 4],
    alerts: [u32; 4],
    pending: u8,
    pending_since: i64,
}

/// The port-scan detector.
pub struct ScanDetector {
    cfg: ScanConfig,
    sources: Table<IpAddr, SrcState>,
    pending: Vec<IpAddr>,
    seed: u64,
    /// Alerts raised, updates included.
    pub alerts: u64,
    /// Candidates that did not confirm (too many answered attempts).
    pub rejected: u64,
}

impl ScanDetector {
    /// A detector with its table.
    pub fn new(cfg: ScanConfig) -> Self {
        let idle = cfg.slow_window.max(cfg.window) + cfg.common.update_interval;
        ScanDetector {
            sources: Table::new(cfg.common.max_entries, idle, cfg.common.seed),
            seed: cfg.common.seed ^ 0x5ca7,
            cfg,
            pending: Vec::with_capacity(64),
            alerts: 0,
            rejected: 0,
        }
    }

    /// Per packet: only first packets, first replies and ICMP unreachables touch state.
    pub fn observe(&mut self, o: &PacketObs) {
        let now = o.ts.0;
        if o.is_first() {
            if o.is_icmp_unreachable() {
                // The target refusing a probe: the scanner is the destination.
                let slow_ns = secs(self.cfg.slow_window);
                let fast_ns = secs(self.cfg.window);
                if let Some(s) = self.sources.get_mut(&o.dst, now) {
                    s.fast.roll(now, fast_ns);
                    s.slow.roll(now, slow_ns);
                    s.fast.refused += 1;
                    s.slow.refused += 1;
                }
                return;
            }
            let Some(kind) = technique(o) else { return };
            if self.cfg.allow_sources.iter().any(|n| n.contains(&o.src)) {
                return;
            }
            self.attempt(o, kind, now);
        } else if o.is_first_reply() {
            let answered = o.proto != ipproto::TCP || o.tcp_flags & TcpFlags::RST == 0;
            let (fast_ns, slow_ns) = (secs(self.cfg.window), secs(self.cfg.slow_window));
            if let Some(s) = self.sources.get_mut(&o.dst, now) {
                for (w, len) in [(&mut s.fast, fast_ns), (&mut s.slow, slow_ns)] {
                    w.roll(now, len);
                    if answered {
                        w.answered += 1;
                    } else {
                        w.refused += 1;
                    }
                }
            }
        }
    }

    fn attempt(&mut self, o: &PacketObs, kind: usize, now: i64) {
        let port_key: u32 = match kind {
            IP_PROTOCOL => o.proto as u32,
            ICMP_ECHO => 0x1_0000,
            _ => o.dport as u32 | ((o.proto as u32) << 16),
        };
        let hp = hash64(self.seed, &port_key);
        let hh = hash64(self.seed, &o.dst);
        let cfg = &self.cfg;
        let s = self.sources.entry(o.src, now, || SrcState {
            fast: Win {
                start: now,
                ..Win::default()
            },
            slow: Win {
                start: now,
                ..Win::default()
            },
            alerted: [0; 4],
            alerts: [0; 4],
            pending: 0,
            pending_since: 0,
        });
        s.fast.roll(now, secs(cfg.window));
        s.slow.roll(now, secs(cfg.slow_window));
        let mut grew = false;
        for w in [&mut s.fast, &mut s.slow] {
            w.attempts += 1;
            w.kinds[kind] += 1;
            if w.ports.insert(hp) {
                grew = true;
                if kind != ICMP_ECHO {
                    w.sample_ports.add(port_key as u16);
                }
            }
            if w.hosts.insert(hh) {
                grew = true;
                w.sample_hosts.add(Ip(o.dst));
            }
        }
        // Counts only change when a sketch gained a bit (saturated sketches gain none: then
        // only a due update makes it look again).
        let due = |from: usize, every: u64| {
            s.alerted[from..from + 2]
                .iter()
                .any(|&a| a != 0 && now - a >= secs(every))
        };
        if !grew && !due(0, cfg.common.update_interval) && !due(2, cfg.slow_update_interval) {
            return;
        }
        // Which shapes crossed their threshold and may alert now?
        let counts = [
            (s.fast.ports.estimate(), cfg.vertical_ports, 0),
            (s.fast.hosts.estimate(), cfg.horizontal_hosts, 1),
            (s.slow.ports.estimate(), cfg.slow_vertical_ports, 2),
            (s.slow.hosts.estimate(), cfg.slow_horizontal_hosts, 3),
        ];
        let mut crossed = 0u8;
        for (n, thr, shape) in counts {
            let upd = secs(if shape < 2 {
                cfg.common.update_interval
            } else {
                cfg.slow_update_interval
            });
            // A slow scan must span more than the fast window.
            let spans = shape < 2 || now - s.slow.start >= secs(cfg.window);
            if spans && n >= thr && (s.alerted[shape] == 0 || now - s.alerted[shape] >= upd) {
                crossed |= 1 << shape;
            }
        }
        if crossed != 0 && s.pending == 0 {
            s.pending = crossed;
            s.pending_since = now;
            self.pending.push(o.src);
        } else if crossed != 0 {
            s.pending |= crossed;
        }
    }

    /// Confirms candidates whose grace has passed (all of them when `flush`).
    pub fn tick(&mut self, now: Timestamp, flush: bool, out: &mut Vec<AnomalyAlert>) {
        let grace = secs(self.cfg.reply_grace);
        let mut keep = 0;
        for i in 0..self.pending.len() {
            let src = self.pending[i];
            let Some(s) = self.sources.get_mut(&src, i64::MIN) else {
                continue;
            };
            if !flush && now.0 - s.pending_since < grace {
                self.pending[keep] = src;
                keep += 1;
                continue;
            }
            let shapes = std::mem::take(&mut s.pending);
            for shape in 0..4 {
                if shapes & (1 << shape) == 0 {
                    continue;
                }
                // A slow scan is one that never met the fast thresholds.
                if shape >= 2 {
                    let fast_thr = if shape == 2 {
                        self.cfg.vertical_ports
                    } else {
                        self.cfg.horizontal_hosts
                    };
                    let fast_n = if shape == 2 {
                        s.fast.ports.estimate()
                    } else {
                        s.fast.hosts.estimate()
                    };
                    if s.alerted[shape - 2] != 0 || fast_n >= fast_thr {
                        continue;
                    }
                }
                let w = if shape < 2 { &s.fast } else { &s.slow };
                let failed = w.attempts.saturating_sub(w.answered);
                let ratio = failed as f64 / w.attempts.max(1) as f64;
                if ratio < self.cfg.min_failed_ratio {
                    self.rejected += 1;
                    continue;
                }
                let update = s.alerted[shape] != 0;
                s.alerted[shape] = now.0.max(1);
                s.alerts[shape] += 1;
                self.alerts += 1;
                out.push(scan_alert(
                    &self.cfg,
                    now,
                    src,
                    shape,
                    w,
                    update,
                    s.alerts[shape],
                ));
            }
        }
        self.pending.truncate(keep);
    }
}

fn scan_alert(
    cfg: &ScanConfig,
    now: Timestamp,
    src: IpAddr,
    shape: usize,
    w: &Win,
    update: bool,
    n: u32,
) -> AnomalyAlert {
    let tech = (0..10).max_by_key(|&k| (w.kinds[k], 10 - k)).unwrap_or(0);
    let vertical = shape % 2 == 0;
    let hosts = w.sample_hosts.as_slice();
    let dest = if vertical && w.hosts.estimate() <= 2 {
        hosts.first().map(|i| i.0)
    } else {
        None
    };
    let mut probes = serde_json::Map::new();
    for (k, name) in TECHNIQUES.iter().enumerate() {
        if w.kinds[k] > 0 {
            probes.insert((*name).into(), json!(w.kinds[k]));
        }
    }
    let window = if shape < 2 {
        cfg.window
    } else {
        cfg.slow_window
    };
    AnomalyAlert {
        ts: now,
        detector: "portscan",
        category: Category::PortScan,
        signature: format!("ZW SCAN {} {}", TECHNIQUES[tech], SHAPES[shape]),
        signature_id: SID_BASE + tech as u32 * 10 + shape as u32,
        severity: if shape < 2 {
            cfg.common.severity
        } else {
            cfg.common.lower_severity()
        },
        src_ip: src,
        dest_ip: dest,
        src_port: None,
        dest_port: None,
        proto: None,
        update,
        evidence: json!({
            "window_secs": window,
            "window_start": ts_secs(w.start),
            "attempts": w.attempts,
            "answered": w.answered,
            "refused": w.refused,
            "unanswered_or_refused": w.attempts.saturating_sub(w.answered),
            "distinct_ports": w.ports.estimate(),
            "distinct_hosts": w.hosts.estimate(),
            "technique": TECHNIQUES[tech],
            "probes": probes,
            "sample_ports": w.sample_ports.as_slice(),
            "sample_targets": ips_json(&w.sample_hosts),
            "alert_count": n,
        }),
    }
}

impl Detector for ScanDetector {
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
        ScanDetector::tick(self, now, flush, out);
    }
    fn table_stats(&self) -> TableStats {
        self.sources.stats()
    }
    fn alerts(&self) -> u64 {
        self.alerts
    }
}
