//! Loading detector files and running the detectors together.

use std::path::{Path, PathBuf};

use zonewatch_types::Timestamp;

use crate::alert::AnomalyAlert;
use crate::beacon::{BeaconConfig, BeaconDetector};
use crate::common::{Common, Detector};
use crate::dns::{DnsConfig, DnsDetector};
use crate::dos::{DosConfig, DosDetector};
use crate::flood::{FloodConfig, FloodDetector};
use crate::obs::{DnsObs, FlowEndObs, PacketObs};
use crate::protocol::{ProtoConfig, ProtoDetector};
use crate::scan::{ScanConfig, ScanDetector};
use crate::volume::{VolumeConfig, VolumeDetector};
use crate::yaml::{self, Errors, Section};
use crate::zone::{ZoneConfig, ZoneDetector, ZonePolicy};

/// Builds a detector from its file's `detector:` section (`None`: it cannot run, as
/// `zone-policy` without a zone policy in the configuration).
type Build = fn(&Section, Common, &mut Option<ZonePolicy>) -> Option<Box<dyn Detector>>;

/// One detector type: its `detector.type`, the defaults of its shared keys, and how to build
/// it.
struct DetectorType {
    name: &'static str,
    default_severity: u8,
    default_update_interval: u64,
    /// Position in which it sees each observation, and so the order of the alerts one
    /// observation raises: per-packet detectors that alert at once first, then those that
    /// decide on ticks.
    run_order: u8,
    build: Build,
}

/// Every detector type, in the order they are listed (`active`, `docs/detectors.md`).
const TYPES: [DetectorType; 8] = [
    DetectorType {
        name: "portscan",
        default_severity: 2,
        default_update_interval: 60,
        run_order: 2,
        build: |s, c, _| Some(Box::new(ScanDetector::new(ScanConfig::read(s, c)))),
    },
    DetectorType {
        name: "flood",
        default_severity: 2,
        default_update_interval: 60,
        run_order: 3,
        build: |s, c, _| Some(Box::new(FloodDetector::new(FloodConfig::read(s, c)))),
    },
    DetectorType {
        name: "dns-tunnel",
        default_severity: 2,
        default_update_interval: 60,
        run_order: 5,
        build: |s, c, _| Some(Box::new(DnsDetector::new(DnsConfig::read(s, c)))),
    },
    DetectorType {
        name: "beaconing",
        default_severity: 2,
        // Beacons are slow: an hourly update is enough.
        default_update_interval: 3600,
        run_order: 4,
        build: |s, c, _| Some(Box::new(BeaconDetector::new(BeaconConfig::read(s, c)))),
    },
    DetectorType {
        name: "volume",
        default_severity: 3,
        default_update_interval: 60,
        run_order: 6,
        build: |s, c, _| Some(Box::new(VolumeDetector::new(VolumeConfig::read(s, c)))),
    },
    DetectorType {
        name: "protocol-anomaly",
        default_severity: 3,
        default_update_interval: 60,
        run_order: 0,
        build: |s, c, _| Some(Box::new(ProtoDetector::new(ProtoConfig::read(s, c)))),
    },
    DetectorType {
        name: "zone-policy",
        default_severity: 1,
        default_update_interval: 60,
        run_order: 1,
        build: |s, c, policy| {
            // The section is read (and checked) even when there is no policy to run.
            let cfg = ZoneConfig::read(s, c);
            let policy = policy.take()?;
            Some(Box::new(ZoneDetector::new(cfg, policy)))
        },
    },
    DetectorType {
        name: "dos",
        default_severity: 3,
        default_update_interval: 60,
        // After the per-source flood detector: a packet's flood alerts come first.
        run_order: 7,
        build: |s, c, _| Some(Box::new(DosDetector::new(DosConfig::read(s, c)))),
    },
];

/// How often idle detector state is expired, in nanoseconds of packet time.
const EXPIRE_EVERY_NS: i64 = 60 * crate::common::NS_PER_SEC;

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

/// A detector that runs, and its type (an index into [`TYPES`]).
struct Loaded {
    kind: usize,
    detector: Box<dyn Detector>,
    /// The text of its file: a reload keeps the running detector, and its
    /// state, when its file did not change.
    source: String,
}

/// All enabled detectors, their pending alerts and counters.
#[derive(Default)]
pub struct DetectorSet {
    /// In run order (see [`DetectorType::run_order`]).
    detectors: Vec<Loaded>,
    /// Positions in `detectors` of those taking each kind of observation, so the hot path
    /// calls only detectors that use it.
    on_packet: Vec<usize>,
    on_flow_end: Vec<usize>,
    on_dns: Vec<usize>,
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
        let type_name = s.string("type", "");
        let Some(kind) = TYPES.iter().position(|t| t.name == type_name) else {
            let line = node.get("type").map_or(node.line, |n| n.line);
            let names: Vec<&str> = TYPES.iter().map(|t| t.name).collect();
            errors.borrow_mut().push((
                line,
                format!(
                    "`detector.type` {type_name:?} is not one of {}",
                    names.join(", ")
                ),
            ));
            return Err(mk(errors.into_inner()));
        };
        let t = &TYPES[kind];
        let common = Common::read(&s, t.default_severity, t.default_update_interval);
        let enabled = common.enabled;
        let built = (t.build)(&s, common, policy);
        s.finish();
        let dup = built.is_some_and(|d| self.replace(kind, d, text));
        if dup {
            errors.borrow_mut().push((
                node.line,
                format!("a second `{type_name}` detector file (only one of each type)"),
            ));
        }
        if !enabled {
            self.remove(kind);
        }
        let errs = errors.into_inner();
        if errs.is_empty() {
            Ok(true)
        } else {
            Err(mk(errs))
        }
    }

    /// Puts `detector` in the place of type `kind`; whether one was there already.
    fn replace(&mut self, kind: usize, detector: Box<dyn Detector>, source: &str) -> bool {
        let had = self.remove(kind);
        let order = |k: usize| TYPES[k].run_order;
        let at = self
            .detectors
            .partition_point(|l| order(l.kind) < order(kind));
        self.detectors.insert(
            at,
            Loaded {
                kind,
                detector,
                source: source.to_string(),
            },
        );
        self.index_inputs();
        had
    }

    /// Removes the detector of type `kind`; whether there was one.
    fn remove(&mut self, kind: usize) -> bool {
        let before = self.detectors.len();
        self.detectors.retain(|l| l.kind != kind);
        self.index_inputs();
        self.detectors.len() != before
    }

    fn index_inputs(&mut self) {
        let positions = |want: fn(&crate::common::Inputs) -> bool| -> Vec<usize> {
            self.detectors
                .iter()
                .enumerate()
                .filter(|(_, l)| want(&l.detector.inputs()))
                .map(|(i, _)| i)
                .collect()
        };
        let on_packet = positions(|i| i.packets);
        let on_flow_end = positions(|i| i.flow_ends);
        let on_dns = positions(|i| i.dns);
        (self.on_packet, self.on_flow_end, self.on_dns) = (on_packet, on_flow_end, on_dns);
    }

    /// Takes over the state of `old`, the set this one replaces (a rule
    /// reload): each detector whose file is unchanged goes on as it was,
    /// with its tables, windows and counters, and so do the pending alerts
    /// and the expiry clock; a detector whose file changed starts with
    /// empty state. Returns the names of the detectors that kept their
    /// state.
    pub fn adopt_state(&mut self, mut old: DetectorSet) -> Vec<&'static str> {
        let mut kept = Vec::new();
        for l in &mut self.detectors {
            let Some(i) = old
                .detectors
                .iter()
                .position(|o| o.kind == l.kind && o.source == l.source)
            else {
                continue;
            };
            std::mem::swap(&mut l.detector, &mut old.detectors[i].detector);
            kept.push(TYPES[l.kind].name);
        }
        self.alerts.append(&mut old.alerts);
        self.last_expire = old.last_expire;
        kept
    }

    /// Names of the detectors that run, in the order of the detector types.
    pub fn active(&self) -> Vec<&'static str> {
        TYPES
            .iter()
            .enumerate()
            .filter(|(k, _)| self.detectors.iter().any(|l| l.kind == *k))
            .map(|(_, t)| t.name)
            .collect()
    }

    /// Whether no detector runs.
    pub fn is_empty(&self) -> bool {
        self.detectors.is_empty()
    }

    /// Per packet (hot path).
    pub fn observe_packet(&mut self, o: &PacketObs) {
        for &i in &self.on_packet {
            self.detectors[i]
                .detector
                .observe_packet(o, &mut self.alerts);
        }
    }

    /// Per flow end.
    pub fn observe_flow_end(&mut self, f: &FlowEndObs) {
        for &i in &self.on_flow_end {
            self.detectors[i]
                .detector
                .observe_flow_end(f, &mut self.alerts);
        }
    }

    /// Per DNS message.
    pub fn observe_dns(&mut self, o: &DnsObs) {
        for &i in &self.on_dns {
            self.detectors[i].detector.observe_dns(o, &mut self.alerts);
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
        for l in &mut self.detectors {
            l.detector.tick(now, flush, &mut self.alerts);
        }
        if now.0 - self.last_expire >= EXPIRE_EVERY_NS {
            self.last_expire = now.0;
            for l in &mut self.detectors {
                l.detector.expire(now);
            }
        }
    }

    /// Alerts raised since the last drain, in the order raised.
    pub fn drain_alerts(&mut self) -> std::vec::Drain<'_, AnomalyAlert> {
        self.alerts.drain(..)
    }

    /// Counters (`anomaly.<detector>.<name>`), sorted by name: table entries, cap, inserts,
    /// evictions, expiries, peak, approximate bytes, alerts, and a detector's own counters.
    pub fn counters(&self) -> Vec<(String, u64)> {
        let mut out = Vec::new();
        for l in &self.detectors {
            let name = TYPES[l.kind].name;
            let t = l.detector.table_stats();
            for (k, v) in [
                ("entries", t.entries as u64),
                ("cap", t.cap as u64),
                ("inserts", t.counters.inserts),
                ("evictions", t.counters.evictions),
                ("expired", t.counters.expired),
                ("peak", t.counters.peak),
                ("bytes", t.bytes as u64),
                ("alerts", l.detector.alerts()),
            ]
            .into_iter()
            .chain(l.detector.extra_counters())
            {
                out.push((format!("anomaly.{name}.{k}"), v));
            }
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

    /// A reload keeps the state of detectors whose file did not change and
    /// starts the others empty.
    #[test]
    fn adopt_state_keeps_unchanged_detectors() {
        let load = |scan: &str, flood: &str| {
            let mut set = DetectorSet::default();
            let mut policy = None;
            for (text, f) in [(scan, "scan.yaml"), (flood, "flood.yaml")] {
                assert!(set.add_text(text, Path::new(f), &mut policy).unwrap());
            }
            set
        };
        let entries = |set: &DetectorSet, name: &str| {
            let key = format!("anomaly.{name}.entries");
            set.counters()
                .into_iter()
                .find(|(k, _)| *k == key)
                .unwrap()
                .1
        };
        let (scan, flood) = (
            "detector:\n  type: portscan\n",
            "detector:\n  type: flood\n",
        );
        let mut old = load(scan, flood);
        let mut syn = PacketObs::new(
            Timestamp::from_parts(1_700_000_000, 0),
            "192.0.2.1".parse().unwrap(),
            "198.51.100.1".parse().unwrap(),
            6,
        );
        (syn.sport, syn.dport, syn.tcp_flags) = (40000, 22, 0x02);
        old.observe_packet(&syn);
        let (scan_n, flood_n) = (entries(&old, "portscan"), entries(&old, "flood"));
        assert!(scan_n > 0 && flood_n > 0, "{:?}", old.counters());

        let mut new = load(scan, "detector:\n  type: flood\n  severity: 1\n");
        assert_eq!(new.adopt_state(old), ["portscan"]);
        assert_eq!(entries(&new, "portscan"), scan_n);
        assert_eq!(entries(&new, "flood"), 0, "a changed file starts empty");
    }
}
