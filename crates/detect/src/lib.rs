//! Signature detection: Suricata/Snort rules compiled once into an immutable
//! [`Engine`] shared by all workers, and a [`Detector`] per worker holding
//! the mutable state (flowbits, stream windows, per-packet scratch); the
//! engine is borrowed, never cloned, per packet. Thresholds are applied
//! after the workers' events are merged ([`AlertFilter`]).
//!
//! Contract:
//! - Loading never fails because of one rule: each rule that cannot be used
//!   is skipped and reported with file:line, sid and the reason
//!   ([`LoadReport`]).
//! - Packet rules are split into signature groups by protocol class, flow
//!   direction and server port. One fast pattern per rule feeds its groups'
//!   multi-pattern prefilter (a q-gram filter, not Aho-Corasick: see
//!   `prefilter.rs`) over the packet payload and the reassembled stream;
//!   transaction rules have a prefilter per app-layer buffer. The prefilter
//!   may report false candidates, never miss one: every candidate is fully
//!   verified. Rules without a usable pattern are checked on every packet
//!   of their group, or found by address when one side is narrow.
//! - Evaluation order is deterministic (Suricata's: action, flowbit setters
//!   before checkers, priority, then load order), so alerts do not depend on
//!   timing or worker count.
//! - Time comes only from packet timestamps.
//! - Rule profiling ([`Engine::enable_profiling`]) costs a run without it
//!   nothing: the evaluation loops are generic over a probe that is a
//!   no-op unless profiling is on (`profile.rs`).
//!
//! Layout: `rule.rs` is the compiled rule model, `compile.rs` makes it from
//! a parsed signature, `engine.rs` loads files and builds the indexes
//! (`groups.rs`, `prefilter.rs`, `addrindex.rs`), `program.rs` runs a
//! rule's inspection steps on one buffer, `detector.rs` evaluates packets
//! and transactions.
#![deny(missing_docs)]

mod addrindex;
mod alert;
mod compile;
mod detector;
mod engine;
mod groups;
mod prefilter;
mod profile;
mod program;
mod rule;

pub use alert::{AlertBytesConfig, AlertPacket};
pub use detector::{DetectCounters, Detector, FlowView, Hit, PacketView, StreamChunk};
pub use engine::{needs_app_layer, waiting_for, DetectConfig, Engine, LoadReport};
pub use profile::{GroupCounts, RuleCounts, RuleProfile};
pub use rule::RuleMeta;
pub use zonewatch_ruleconf::{Decision, NewAction};

/// Thresholds (`threshold:`, `detection_filter:`, `threshold.config`)
/// applied to alerts after the workers' events are merged in input order,
/// so the result does not depend on how flows were spread over workers.
pub struct AlertFilter {
    engine: std::sync::Arc<Engine>,
    /// (gid, sid) -> engine index: alerts are decided by their signature,
    /// not their engine index, so that an alert raised by a worker still on
    /// the previous engine during a reload is decided by the rule of the
    /// same sid in the current one (or by the threshold file alone when
    /// the reload removed it).
    by_sid: hashbrown::HashMap<(u32, u64), u32>,
    thresholds: zonewatch_ruleconf::ThresholdEngine,
}

impl AlertFilter {
    /// A filter for the engine's rules and threshold configuration.
    pub fn new(engine: std::sync::Arc<Engine>) -> AlertFilter {
        let thresholds = zonewatch_ruleconf::ThresholdEngine::new(
            engine.threshold_cfg.clone(),
            zonewatch_ruleconf::DEFAULT_MAX_ENTRIES,
        );
        AlertFilter {
            by_sid: Self::index(&engine),
            engine,
            thresholds,
        }
    }

    fn index(engine: &Engine) -> hashbrown::HashMap<(u32, u64), u32> {
        let mut m = hashbrown::HashMap::with_capacity(engine.rules.len());
        for (i, r) in engine.rules.iter().enumerate() {
            m.entry((r.meta.gid, r.meta.sid)).or_insert(i as u32);
        }
        m
    }

    /// Goes on with a reloaded engine's rules and threshold configuration;
    /// the trackers (counts and windows of every gid, sid and address)
    /// carry over, as Suricata keeps them across a rule reload.
    pub fn replace_engine(&mut self, engine: std::sync::Arc<Engine>) {
        self.thresholds.set_config(engine.threshold_cfg.clone());
        self.by_sid = Self::index(&engine);
        self.engine = engine;
    }

    /// Decides about one alert of rule (`gid`, `sid`).
    pub fn decide(
        &mut self,
        gid: u32,
        sid: u64,
        src: std::net::IpAddr,
        dst: std::net::IpAddr,
        ts: zonewatch_types::Timestamp,
    ) -> zonewatch_ruleconf::Decision {
        let rule_threshold = self
            .by_sid
            .get(&(gid, sid))
            .and_then(|&i| self.engine.rules[i as usize].threshold.as_ref());
        self.thresholds
            .decide(gid, sid as u32, src, dst, ts, rule_threshold)
    }

    /// Drops trackers whose windows ended (call on clock ticks).
    pub fn expire(&mut self, now: zonewatch_types::Timestamp) {
        self.thresholds.expire(now);
    }

    /// Counters.
    pub fn stats(&self) -> zonewatch_ruleconf::ThresholdStats {
        self.thresholds.stats()
    }
}

/// Deterministic pseudo-random numbers below `n` (xorshift) for the
/// randomised tests.
#[cfg(test)]
pub(crate) fn test_rng(mut seed: u64) -> impl FnMut(u64) -> u64 {
    move |n| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    }
}

#[cfg(test)]
mod load_tests {
    use super::*;
    use std::path::PathBuf;

    /// Rules skipped for want of a parser are counted by what they wait
    /// for: the header's protocol, or the keyword's family.
    #[test]
    fn waiting_rules_are_counted_by_protocol() {
        let text = "\
alert ftp any any -> any any (msg:\"a\"; content:\"x\"; sid:1;)
alert ftp any any -> any any (msg:\"b\"; content:\"y\"; sid:2;)
alert smb any any -> any any (msg:\"c\"; content:\"z\"; sid:3;)
alert tcp any any -> any any (msg:\"d\"; content:\"w\"; sid:4;)
";
        let e = Engine::from_texts(&[("w.rules", text)], &DetectConfig::default());
        assert_eq!(e.report.loaded, 1);
        assert_eq!(e.report.skipped_app_layer, 3);
        let w: Vec<(&str, usize)> = e
            .report
            .waiting
            .iter()
            .map(|(k, v)| (k.as_str(), *v))
            .collect();
        assert_eq!(w, [("ftp", 2), ("smb", 1)]);
    }

    /// The walk: subdirectories, a symbolic link loop, YAML beside the
    /// signatures, a Latin-1 byte in a `msg`, a file given twice.
    #[test]
    fn load_walks_once_through_loops_and_reads_bytes() {
        let dir = std::env::temp_dir().join(format!("zw-detect-load-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("et/sub")).unwrap();
        std::fs::write(
            dir.join("et/sub/a.rules"),
            b"alert tcp any any -> any 80 (msg:\"caf\xe9 GET\"; content:\"GET\"; sid:1;)\n"
                .as_slice(),
        )
        .unwrap();
        std::fs::write(
            dir.join("et/b.rules"),
            "alert udp any any -> any 53 (msg:\"dns\"; content:\"x\"; sid:2;)\n",
        )
        .unwrap();
        std::fs::write(dir.join("et/scan.yaml"), "detector:\n  type: portscan\n").unwrap();
        std::os::unix::fs::symlink(&dir, dir.join("et/sub/loop")).unwrap();
        let t0 = std::time::Instant::now();
        let paths: Vec<PathBuf> = vec![dir.clone(), dir.join("et/b.rules")];
        let e = Engine::load(&paths, &DetectConfig::default()).unwrap();
        assert!(t0.elapsed() < std::time::Duration::from_secs(5));
        assert_eq!(
            e.report.files,
            [dir.join("et/b.rules"), dir.join("et/sub/a.rules")]
        );
        assert_eq!(
            (e.report.loaded, e.report.skipped),
            (2, 0),
            "{:?}",
            e.report.errors
        );
        let msgs: Vec<&str> = e.rules.iter().map(|r| &*r.meta.msg).collect();
        assert!(msgs.contains(&"caf\u{fffd} GET"), "{msgs:?}");
        assert_eq!(e.report.config_warnings.len(), 1);
        assert!(
            e.report.config_warnings[0].contains("et/sub/loop: symbolic link loop"),
            "{:?}",
            e.report.config_warnings
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
