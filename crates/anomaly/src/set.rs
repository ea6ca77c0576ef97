//! Loading detector files and running the detectors together.

use std::path::{Path, PathBuf};

use zonewatch_types::Timestamp;

use crate::alert::AnomalyAlert;
use crate::beacon::{BeaconConfig, BeaconDetector};
use crate::dns::{DnsConfig, DnsDetector};
use crate::flood::{FloodConfig, FloodDetector};
use crate::obs::{DnsObs, FlowEndObs, PacketObs};
use crate::protocol::{ProtoConfig, ProtoDetector};
use crate::scan::{ScanConfig, ScanDetector};
use crate::volume::{VolumeConfig, VolumeDetector};
use crate::yaml::{self, Errors, Section};
use crate::zone::{ZoneConfig, ZoneDetector, ZonePolicy};

/// Keys every detector file has.
#[derive(Debug, Clone, PartialEq)]
pub struct Common {
    /// `enabled` (default true).
    pub enabled: bool,
    /// `severity` 1–4.
    pub severity: u8,
    /// `max-entries`: cap of the detector's state table.
    pub max_entries: usize,
    /// `update-interval`: seconds between updates of an ongoing alert.
    pub update_interval: u64,
    /// `seed`: hash seed of the state tables.
    pub seed: u64,
}

/// Detector names (the `detector.type` values) and their default severities.
pub const DETECTORS: [(&str, u8); 7] = [
    ("portscan", 2),
    ("flood", 2),
    ("dns-tunnel", 2),
    ("beaconing", 2),
    ("volume", 3),
    ("protocol-anomaly", 3),
    ("zone-policy", 1),
];

/// A detector file that could not be used: `file:line: message`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {message}")]
pub struct LoadError {
    /// The file.
    pub file: String,
    /// 1-based line (0: the file as a whole).
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

/// All enabled detectors, their pending alerts and counters.
#[derive(Default)]
pub struct DetectorSet {
    scan: Option<ScanDetector>,
    flood: Option<FloodDetector>,
    dns: Option<DnsDetector>,
    beacon: Option<BeaconDetector>,
    volume: Option<VolumeDetector>,
    proto: Option<ProtoDetector>,
    zone: Option<ZoneDetector>,
    alerts: Vec<AnomalyAlert>,
    last_expire: i64,
    /// Files loaded (detector files only), in load order.
    pub files: Vec<PathBuf>,
    /// What the walk of the paths did not read and why (symbolic link loops, directories
    /// too deep, unreadable entries), one line each naming the path.
    pub warnings: Vec<String>,
}

impl DetectorSet {
    /// Loads every detector file among `paths` (files, or directories searched recursively
    /// in name order by the walk all rule loaders share, `zonewatch_rulefiles`). Only YAML
    /// files are read (a `.rules` file is the signature engine's), and of those only the
    /// ones with a top-level `detector:` key (Sigma rules are skipped). `policy` is the
    /// zone policy from the config; the `zone-policy` detector runs only with a policy and
    /// its file. Every error of every file is returned.
    pub fn load(
        paths: &[PathBuf],
        policy: Option<ZonePolicy>,
    ) -> Result<DetectorSet, Vec<LoadError>> {
        let mut errors = Vec::new();
        let mut set = DetectorSet::default();
        let walk = match zonewatch_rulefiles::collect(paths) {
            Ok(w) => w,
            Err(e) => {
                return Err(vec![LoadError {
                    file: e.path.display().to_string(),
                    line: 0,
                    message: e.source.to_string(),
                }])
            }
        };
        set.warnings = walk.skipped.iter().map(|s| s.to_string()).collect();
        let files = walk.of(zonewatch_rulefiles::Kind::Yaml);
        let mut policy = policy;
        for f in files {
            // As the Sigma loader: a stray non-UTF-8 byte does not make the file unreadable.
            let text = match zonewatch_yamlread::read_file(&f) {
                Ok(b) => String::from_utf8_lossy(&b).into_owned(),
                Err(e) => {
                    errors.push(LoadError {
                        file: f.display().to_string(),
                        line: 0,
                        message: e.to_string(),
                    });
                    continue;
                }
            };
            match set.add_text(&text, &f, &mut policy) {
                Ok(true) => set.files.push(f),
                Ok(false) => {}
                Err(mut e) => errors.append(&mut e),
            }
        }
        if errors.is_empty() {
            Ok(set)
        } else {
            Err(errors)
        }
    }

    /// Adds the detector described by one file's text. `Ok(false)` when the text has no
    /// top-level `detector:` key (not a detector file).
    pub fn add_text(
        &mut self,
        text: &str,
        file: &Path,
        policy: &mut Option<ZonePolicy>,
    ) -> Result<bool, Vec<LoadError>> {
        let name = file.display().to_string();
        let mk = |errs: Vec<(usize, String)>| {
            errs.into_iter()
                .map(|(line, message)| LoadError {
                    file: name.clone(),
                    line,
                    message,
                })
                .collect::<Vec<_>>()
        };
        let root = match yaml::parse(text) {
            Ok(Some(r)) => r,
            Ok(None) => return Ok(false),
            Err(e) => {
                // A file that is not YAML at all is not ours unless it says `detector:`.
                return if text.lines().any(|l| l.starts_with("detector:")) {
                    Err(mk(vec![e]))
                } else {
                    Ok(false)
                };
            }
        };
        let Some(node) = root.get("detector") else {
            return Ok(false);
        };
        let errors = Errors::default();
        if let yaml::Kind::Map(entries) = &root.kind {
            for (k, line, _) in entries {
                if k != "detector" {
                    errors.borrow_mut().push((
                        *line,
                        format!("unknown top-level key `{k}` in a detector file"),
                    ));
                }
            }
        }
        let s = Section::new(node, "detector", &errors);
        let kind = s.string("type", "");
        let Some(&(_, default_sev)) = DETECTORS.iter().find(|(n, _)| *n == kind) else {
            let line = node.get("type").map_or(node.line, |n| n.line);
            let names: Vec<&str> = DETECTORS.iter().map(|(n, _)| *n).collect();
            errors.borrow_mut().push((
                line,
                format!(
                    "`detector.type` {kind:?} is not one of {}",
                    names.join(", ")
                ),
            ));
            return Err(mk(errors.into_inner()));
        };
        let common = Common {
            enabled: s.bool("enabled", true),
            severity: s.u64("severity", default_sev as u64, 1, 4) as u8,
            max_entries: s.u64("max-entries", 65_536, 1, 1 << 26) as usize,
            update_interval: s.u64(
                "update-interval",
                if kind == "beaconing" { 3600 } else { 60 },
                1,
                7 * 86_400,
            ),
            seed: s.u64("seed", 0x7a6f_6e65, 0, u64::MAX),
        };
        let enabled = common.enabled;
        let dup = match kind.as_str() {
            "portscan" => {
                let c = ScanConfig::read(&s, common);
                self.scan.replace(ScanDetector::new(c)).is_some()
            }
            "flood" => {
                let c = FloodConfig::read(&s, common);
                self.flood.replace(FloodDetector::new(c)).is_some()
            }
            "dns-tunnel" => {
                let c = DnsConfig::read(&s, common);
                self.dns.replace(DnsDetector::new(c)).is_some()
            }
            "beaconing" => {
                let c = BeaconConfig::read(&s, common);
                self.beacon.replace(BeaconDetector::new(c)).is_some()
            }
            "volume" => {
                let c = VolumeConfig::read(&s, common);
                self.volume.replace(VolumeDetector::new(c)).is_some()
            }
            "protocol-anomaly" => {
                let c = ProtoConfig::read(&s, common);
                self.proto.replace(ProtoDetector::new(c)).is_some()
            }
            _ => {
                let c = ZoneConfig::read(&s, common);
                match policy.take() {
                    Some(p) => self.zone.replace(ZoneDetector::new(c, p)).is_some(),
                    None => false,
                }
            }
        };
        s.finish();
        if dup {
            errors.borrow_mut().push((
                node.line,
                format!("a second `{kind}` detector file (only one of each type)"),
            ));
        }
        if !enabled {
            match kind.as_str() {
                "portscan" => self.scan = None,
                "flood" => self.flood = None,
                "dns-tunnel" => self.dns = None,
                "beaconing" => self.beacon = None,
                "volume" => self.volume = None,
                "protocol-anomaly" => self.proto = None,
                _ => self.zone = None,
            }
        }
        let errs = errors.into_inner();
        if errs.is_empty() {
            Ok(true)
        } else {
            Err(mk(errs))
        }
    }

    /// Names of the detectors that run.
    pub fn active(&self) -> Vec<&'static str> {
        let on = [
            self.scan.is_some(),
            self.flood.is_some(),
            self.dns.is_some(),
            self.beacon.is_some(),
            self.volume.is_some(),
            self.proto.is_some(),
            self.zone.is_some(),
        ];
        DETECTORS
            .iter()
            .zip(on)
            .filter(|(_, on)| *on)
            .map(|((n, _), _)| *n)
            .collect()
    }

    /// Whether no detector runs.
    pub fn is_empty(&self) -> bool {
        self.active().is_empty()
    }

    /// Per packet (hot path).
    pub fn observe_packet(&mut self, o: &PacketObs) {
        if let Some(d) = &mut self.proto {
            d.observe(o, &mut self.alerts);
        }
        if let Some(d) = &mut self.zone {
            d.observe(o, &mut self.alerts);
        }
        if let Some(d) = &mut self.scan {
            d.observe(o);
        }
        if let Some(d) = &mut self.flood {
            d.observe(o);
        }
        if let Some(d) = &mut self.beacon {
            d.observe(o, &mut self.alerts);
        }
    }

    /// Per flow end.
    pub fn observe_flow_end(&mut self, f: &FlowEndObs) {
        if let Some(d) = &mut self.volume {
            d.observe(f, &mut self.alerts);
        }
    }

    /// Per DNS message.
    pub fn observe_dns(&mut self, o: &DnsObs) {
        if let Some(d) = &mut self.dns {
            d.observe(o, &mut self.alerts);
        }
    }

    /// Once per second of packet time: confirms scan/flood candidates whose reply grace has
    /// passed, closes volume buckets, and every 60 s expires idle state.
    pub fn tick(&mut self, now: Timestamp) {
        self.time_work(now, false);
    }

    /// End of input: confirms every pending candidate now (no more replies will come).
    pub fn finish(&mut self, now: Timestamp) {
        self.time_work(now, true);
    }

    fn time_work(&mut self, now: Timestamp, flush: bool) {
        let mut batch = Vec::new();
        if let Some(d) = &mut self.scan {
            d.tick(now, flush, &mut batch);
        }
        if let Some(d) = &mut self.flood {
            d.tick(now, flush, &mut batch);
        }
        if let Some(d) = &mut self.volume {
            d.tick(now, &mut batch);
        }
        self.alerts.append(&mut batch);
        if now.0 - self.last_expire >= 60_000_000_000 {
            self.last_expire = now.0;
            if let Some(d) = &mut self.dns {
                d.expire(now);
            }
            if let Some(d) = &mut self.beacon {
                d.expire(now);
            }
            if let Some(d) = &mut self.proto {
                d.expire(now);
            }
            if let Some(d) = &mut self.zone {
                d.expire(now);
            }
        }
    }

    /// Alerts raised since the last drain, in the order raised.
    pub fn drain_alerts(&mut self) -> std::vec::Drain<'_, AnomalyAlert> {
        self.alerts.drain(..)
    }

    /// Counters (`anomaly.<detector>.<name>`), sorted by name: table entries, cap, inserts,
    /// evictions, expiries, peak, approximate bytes, alerts.
    pub fn counters(&self) -> Vec<(String, u64)> {
        let mut out = Vec::new();
        let mut add =
            |name: &str, t: (usize, usize, crate::table::TableCounters, usize), alerts: u64| {
                let (len, cap, c, bytes) = t;
                for (k, v) in [
                    ("entries", len as u64),
                    ("cap", cap as u64),
                    ("inserts", c.inserts),
                    ("evictions", c.evictions),
                    ("expired", c.expired),
                    ("peak", c.peak),
                    ("bytes", bytes as u64),
                    ("alerts", alerts),
                ] {
                    out.push((format!("anomaly.{name}.{k}"), v));
                }
            };
        if let Some(d) = &self.scan {
            add("portscan", d.table_len(), d.alerts);
        }
        if let Some(d) = &self.flood {
            add("flood", d.table_len(), d.alerts);
        }
        if let Some(d) = &self.dns {
            add("dns-tunnel", d.table_len(), d.alerts);
        }
        if let Some(d) = &self.beacon {
            add("beaconing", d.table_len(), d.alerts);
        }
        if let Some(d) = &self.volume {
            add("volume", d.table_len(), d.alerts);
        }
        if let Some(d) = &self.proto {
            add("protocol-anomaly", d.table_len(), d.alerts);
        }
        if let Some(d) = &self.zone {
            add("zone-policy", d.table_len(), d.alerts);
            out.push(("anomaly.zone-policy.suppressed".into(), d.suppressed));
        }
        out.sort();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_walks_subdirectories_and_reads_only_yaml() {
        let dir = std::env::temp_dir().join(format!("zw-anomaly-load-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("detectors/site")).unwrap();
        std::fs::create_dir_all(dir.join("sigma")).unwrap();
        std::fs::write(
            dir.join("detectors/site/scan.yaml"),
            "detector:\n  type: portscan\n",
        )
        .unwrap();
        std::fs::write(
            dir.join("sigma/r.yml"),
            "title: t\ndetection:\n  sel: {a: 1}\n  condition: sel\n",
        )
        .unwrap();
        // A signature file with a Latin-1 byte in its msg, in a directory and given directly.
        let sig = dir.join("local.rules");
        std::fs::write(
            &sig,
            b"alert tcp any any -> any any (msg:\"caf\xe9\"; sid:1;)\ndetector:\n".as_slice(),
        )
        .unwrap();
        let set = DetectorSet::load(&[dir.clone(), sig], None).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(set.files, [dir.join("detectors/site/scan.yaml")]);
        assert_eq!(set.active(), ["portscan"]);
        assert!(set.warnings.is_empty(), "{:?}", set.warnings);
        let Err(e) = DetectorSet::load(&[dir.join("missing")], None) else {
            panic!("a missing path loads");
        };
        assert!(e[0].file.ends_with("missing"), "{e:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
