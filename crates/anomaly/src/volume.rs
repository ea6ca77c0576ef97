//! Per-host volume anomalies against the host's own baseline.
//!
//! Bytes each watched host sent (as client: bytes to server; as server: bytes to client)
//! and received are summed per `bucket` seconds from flow ends. A closed bucket updates the
//! host's exponentially weighted mean and variance; after `warmup-buckets` buckets a bucket
//! above `mean + k × stddev`, above `ratio × mean` and above `min-bytes` raises an alert.
//! Buckets close when the host is seen again, and on ticks once per bucket for all hosts.

use std::net::IpAddr;

use serde_json::json;
use zonewatch_types::Timestamp;

use crate::alert::{AnomalyAlert, Category};
use crate::common::{Common, Detector, Inputs, NS_PER_SEC};
use crate::obs::FlowEndObs;
use crate::table::{Table, TableStats};
use crate::yaml::Section;

/// Bytes sent above baseline.
pub const SID_SENT: u32 = 9_000_500;
/// Bytes received above baseline.
pub const SID_RECEIVED: u32 = 9_000_501;

/// Settings (`rules/detectors/volume.yaml`).
#[derive(Debug, Clone)]
pub struct VolumeConfig {
    /// Shared keys.
    pub common: Common,
    /// Bucket length, seconds.
    pub bucket: u64,
    /// Buckets learned before alerting.
    pub warmup_buckets: u64,
    /// EWMA weight of a new bucket.
    pub alpha: f64,
    /// Standard deviations above the mean.
    pub k: f64,
    /// Times the mean.
    pub ratio: f64,
    /// Minimum bytes in the bucket.
    pub min_bytes: u64,
    /// Hosts watched (default: RFC 1918, fc00::/7).
    pub hosts: Vec<ipnet::IpNet>,
}

impl VolumeConfig {
    /// Reads the `detector:` section.
    pub fn read(s: &Section, common: Common) -> Self {
        let mut hosts = s.nets("hosts");
        if s.node("hosts").is_none() {
            hosts = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"]
                .iter()
                .filter_map(|h| h.parse().ok())
                .collect();
        }
        VolumeConfig {
            common,
            bucket: s.u64("bucket", 300, 1, 86_400),
            warmup_buckets: s.u64("warmup-buckets", 12, 1, 100_000),
            alpha: s.f64("alpha", 0.1, 0.001, 1.0),
            k: s.f64("k", 4.0, 0.0, 1000.0),
            ratio: s.f64("ratio", 3.0, 1.0, 1e9),
            min_bytes: s.u64("min-bytes", 50_000_000, 0, u64::MAX),
            hosts,
        }
    }
}

#[derive(Clone, Copy, Default)]
struct Dir {
    cur: u64,
    mean: f64,
    var: f64,
    alerts: u32,
}

#[derive(Clone, Copy)]
struct Host {
    bucket: i64,
    buckets_seen: u64,
    dirs: [Dir; 2],
}

/// The volume detector.
pub struct VolumeDetector {
    cfg: VolumeConfig,
    hosts: Table<IpAddr, Host>,
    last_sweep: i64,
    /// Alerts raised.
    pub alerts: u64,
}

impl VolumeDetector {
    /// A detector with its table.
    pub fn new(cfg: VolumeConfig) -> Self {
        let idle = cfg.bucket * (cfg.warmup_buckets * 4).max(48);
        VolumeDetector {
            hosts: Table::new(cfg.common.max_entries, idle, cfg.common.seed ^ 0x701),
            cfg,
            last_sweep: i64::MIN,
            alerts: 0,
        }
    }

    fn bucket_of(&self, ns: i64) -> i64 {
        ns.div_euclid((self.cfg.bucket as i64).saturating_mul(NS_PER_SEC))
    }

    /// Per flow end.
    pub fn observe(&mut self, f: &FlowEndObs, out: &mut Vec<AnomalyAlert>) {
        let b = self.bucket_of(f.end.0);
        for (host, sent, recv) in [
            (f.src, f.bytes_toserver, f.bytes_toclient),
            (f.dst, f.bytes_toclient, f.bytes_toserver),
        ] {
            if !self.cfg.hosts.iter().any(|n| n.contains(&host)) {
                continue;
            }
            let h = self.hosts.entry(host, f.end.0, || Host {
                bucket: b,
                buckets_seen: 0,
                dirs: [Dir::default(); 2],
            });
            let mut new = roll(&self.cfg, host, h, b, f.end);
            let h = self.hosts.get_mut(&host, f.end.0).expect("just inserted");
            h.dirs[0].cur += sent;
            h.dirs[1].cur += recv;
            self.alerts += new.len() as u64;
            out.append(&mut new);
        }
    }

    /// On ticks: closes every host's finished buckets once per bucket length.
    pub fn tick(&mut self, now: Timestamp, out: &mut Vec<AnomalyAlert>) {
        let b = self.bucket_of(now.0);
        if b == self.last_sweep {
            return;
        }
        self.last_sweep = b;
        let mut new = Vec::new();
        let cfg = &self.cfg;
        for (host, h) in self.hosts.iter_mut() {
            new.extend(roll(cfg, *host, h, b, now));
        }
        new.sort_by_key(|a| (a.src_ip, a.signature_id));
        self.alerts += new.len() as u64;
        out.append(&mut new);
        self.hosts.expire(now.0);
    }
}

/// Closes the host's buckets before `b`, learning and judging each.
fn roll(
    cfg: &VolumeConfig,
    host: IpAddr,
    h: &mut Host,
    b: i64,
    now: Timestamp,
) -> Vec<AnomalyAlert> {
    let mut out = Vec::new();
    if b <= h.bucket {
        return out;
    }
    // The closed bucket, then empty buckets up to b (at most warmup-buckets of them).
    let empties = (b - h.bucket - 1).min(cfg.warmup_buckets as i64) as usize;
    for step in 0..=empties {
        for (d, sid) in [(0usize, SID_SENT), (1, SID_RECEIVED)] {
            let dir = &mut h.dirs[d];
            let x = if step == 0 { dir.cur as f64 } else { 0.0 };
            if step == 0 && h.buckets_seen >= cfg.warmup_buckets {
                let sd = dir.var.sqrt();
                if x >= cfg.min_bytes as f64
                    && x > dir.mean + cfg.k * sd
                    && x > cfg.ratio * dir.mean
                {
                    dir.alerts += 1;
                    out.push(AnomalyAlert {
                        ts: now,
                        detector: "volume",
                        category: Category::VolumeAnomaly,
                        signature: format!(
                            "ZW VOLUME host {} far above its baseline",
                            if d == 0 { "sent" } else { "received" }
                        ),
                        signature_id: sid,
                        severity: cfg.common.severity,
                        src_ip: host,
                        dest_ip: None,
                        src_port: None,
                        dest_port: None,
                        proto: None,
                        update: dir.alerts > 1,
                        evidence: json!({
                            "bucket_secs": cfg.bucket,
                            "bucket_start": h.bucket * cfg.bucket as i64,
                            "observed_bytes": dir.cur,
                            "baseline_mean_bytes": dir.mean.round(),
                            "baseline_stddev_bytes": sd.round(),
                            "ratio_to_mean": ((x / dir.mean.max(1.0)) * 100.0).round() / 100.0,
                            "buckets_learned": h.buckets_seen,
                            "k": cfg.k,
                        }),
                    });
                }
            }
            // Learn (the first bucket sets the mean).
            if h.buckets_seen == 0 && step == 0 {
                dir.mean = x;
            } else {
                let diff = x - dir.mean;
                dir.mean += cfg.alpha * diff;
                dir.var = (1.0 - cfg.alpha) * (dir.var + cfg.alpha * diff * diff);
            }
            if step == 0 {
                dir.cur = 0;
            }
        }
        h.buckets_seen += 1;
    }
    h.bucket = b;
    out
}

impl Detector for VolumeDetector {
    fn inputs(&self) -> Inputs {
        Inputs {
            flow_ends: true,
            ..Inputs::default()
        }
    }
    fn observe_flow_end(&mut self, f: &FlowEndObs, out: &mut Vec<AnomalyAlert>) {
        self.observe(f, out);
    }
    // Volume closes buckets on ticks and expires its table there (once per bucket).
    fn tick(&mut self, now: Timestamp, _flush: bool, out: &mut Vec<AnomalyAlert>) {
        VolumeDetector::tick(self, now, out);
    }
    fn table_stats(&self) -> TableStats {
        self.hosts.stats()
    }
    fn alerts(&self) -> u64 {
        self.alerts
    }
}
