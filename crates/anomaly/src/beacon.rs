//! Beaconing: one host opening connections to one destination (address, port, protocol) at
//! regular intervals. The last 16 connection start times per pair are kept in a ring; with
//! at least `min-connections` of them, a mean interval within bounds and a low coefficient of
//! variation (stddev / mean = jitter) raise an alert, then an update every `update-interval`.

use std::net::IpAddr;

use serde_json::json;
use zonewatch_types::Timestamp;

use crate::alert::{AnomalyAlert, Category};
use crate::common::{secs, Common, Detector, Inputs};
use crate::obs::PacketObs;
use crate::table::{Table, TableStats};
use crate::yaml::Section;

/// Periodic connections with low jitter.
pub const SID_BEACON: u32 = 9_000_400;

const RING: usize = 16;

/// Settings (`rules/detectors/beaconing.yaml`).
#[derive(Debug, Clone)]
pub struct BeaconConfig {
    /// Shared keys.
    pub common: Common,
    /// Connections (starts) needed before judging.
    pub min_connections: u64,
    /// Shortest mean interval, seconds (starts closer than this are one burst).
    pub min_interval: f64,
    /// Longest mean interval, seconds.
    pub max_interval: f64,
    /// Highest coefficient of variation of the intervals.
    pub max_jitter: f64,
    /// Destination ports never reported (NTP, DNS, ...).
    pub ignore_ports: Vec<u16>,
    /// Destinations never reported.
    pub allow_destinations: Vec<ipnet::IpNet>,
    /// Sources never reported.
    pub allow_sources: Vec<ipnet::IpNet>,
}

impl BeaconConfig {
    /// Reads the `detector:` section.
    pub fn read(s: &Section, common: Common) -> Self {
        let mut ignore_ports = s.ports("ignore-ports");
        if s.node("ignore-ports").is_none() {
            ignore_ports = vec![53, 67, 68, 123, 137, 138, 1900, 5353];
        }
        BeaconConfig {
            common,
            min_connections: s.u64("min-connections", 10, 3, RING as u64),
            min_interval: s.f64("min-interval", 1.0, 0.001, 1e7),
            max_interval: s.f64("max-interval", 3600.0, 0.001, 1e7),
            max_jitter: s.f64("max-jitter", 0.2, 0.0, 10.0),
            ignore_ports,
            allow_destinations: s.nets("allow-destinations"),
            allow_sources: s.nets("allow-sources"),
        }
    }
}

#[derive(Clone, Copy)]
struct Pair {
    starts: [i64; RING],
    n: u64,
    alerted: i64,
    alerts: u32,
}

/// One host's connections to one service: (source, destination, destination port,
/// protocol).
type PairKey = (IpAddr, IpAddr, u16, u8);

/// The beaconing detector.
pub struct BeaconDetector {
    cfg: BeaconConfig,
    pairs: Table<PairKey, Pair>,
    /// Alerts raised, updates included.
    pub alerts: u64,
}

impl BeaconDetector {
    /// A detector with its table.
    pub fn new(cfg: BeaconConfig) -> Self {
        let idle = (cfg.max_interval * 3.0) as u64 + 1;
        BeaconDetector {
            pairs: Table::new(cfg.common.max_entries, idle, cfg.common.seed ^ 0xbeac),
            cfg,
            alerts: 0,
        }
    }

    /// Per packet: only a flow's first packet counts.
    pub fn observe(&mut self, o: &PacketObs, out: &mut Vec<AnomalyAlert>) {
        if !o.is_first() || o.is_icmp_unreachable() {
            return;
        }
        let cfg = &self.cfg;
        if cfg.ignore_ports.contains(&o.dport)
            || cfg.allow_destinations.iter().any(|n| n.contains(&o.dst))
            || cfg.allow_sources.iter().any(|n| n.contains(&o.src))
        {
            return;
        }
        let now = o.ts.0;
        let min_gap = (cfg.min_interval * 1e9) as i64;
        let p = self
            .pairs
            .entry((o.src, o.dst, o.dport, o.proto), now, || Pair {
                starts: [0; RING],
                n: 0,
                alerted: 0,
                alerts: 0,
            });
        if p.n > 0 {
            let last = p.starts[((p.n - 1) % RING as u64) as usize];
            if now - last < min_gap {
                return; // same burst
            }
        }
        p.starts[(p.n % RING as u64) as usize] = now;
        p.n += 1;
        let k = p.n.min(RING as u64) as usize;
        if (k as u64) < cfg.min_connections {
            return;
        }
        if p.alerted != 0 && now - p.alerted < secs(cfg.common.update_interval) {
            return;
        }
        // Intervals between the last k starts, oldest first.
        let mut prev = p.starts[((p.n - k as u64) % RING as u64) as usize];
        let mut iv = [0f64; RING];
        for (j, slot) in iv.iter_mut().enumerate().take(k - 1) {
            let t = p.starts[((p.n - k as u64 + 1 + j as u64) % RING as u64) as usize];
            *slot = (t - prev) as f64 / 1e9;
            prev = t;
        }
        let iv = &iv[..k - 1];
        let mean = iv.iter().sum::<f64>() / iv.len() as f64;
        let var = iv.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / iv.len() as f64;
        let cv = var.sqrt() / mean.max(1e-9);
        if mean < cfg.min_interval || mean > cfg.max_interval || cv > cfg.max_jitter {
            return;
        }
        let update = p.alerted != 0;
        p.alerted = now.max(1);
        p.alerts += 1;
        self.alerts += 1;
        let r3 = |x: f64| (x * 1000.0).round() / 1000.0;
        out.push(AnomalyAlert {
            ts: o.ts,
            detector: "beaconing",
            category: Category::Beaconing,
            signature: "ZW BEACON periodic connections with low jitter".into(),
            signature_id: SID_BEACON,
            severity: cfg.common.severity,
            src_ip: o.src,
            dest_ip: Some(o.dst),
            src_port: None,
            dest_port: Some(o.dport),
            proto: Some(o.proto),
            update,
            evidence: json!({
                "connections": p.n,
                "intervals_used": iv.len(),
                "mean_interval_secs": r3(mean),
                "stddev_secs": r3(var.sqrt()),
                "jitter": r3(cv),
                "max_jitter": cfg.max_jitter,
                "sample_intervals_secs": iv.iter().rev().take(8).map(|x| r3(*x)).collect::<Vec<_>>(),
                "alert_count": p.alerts,
            }),
        });
    }

    /// Expires idle pairs.
    pub fn expire(&mut self, now: Timestamp) {
        self.pairs.expire(now.0);
    }
}

impl Detector for BeaconDetector {
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
        BeaconDetector::expire(self, now);
    }
    fn table_stats(&self) -> TableStats {
        self.pairs.stats()
    }
    fn alerts(&self) -> u64 {
        self.alerts
    }
}
