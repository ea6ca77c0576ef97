//! Signature detection: Suricata/Snort rules compiled once into an immutable
//! [`Engine`] shared by all workers, and a [`Detector`] per worker holding
//! the mutable state (flowbits, thresholds, stream windows, scratch).
//!
//! Contract:
//! - Loading never fails because of one rule: each rule that cannot be used
//!   is skipped and reported with file:line, sid and the reason
//!   ([`LoadReport`]).
//! - One fast pattern per rule feeds an Aho-Corasick prefilter over the
//!   packet payload and the reassembled stream; every candidate is fully
//!   verified. Rules without a usable pattern are checked on every packet of
//!   their protocol.
//! - Evaluation order is deterministic (Suricata's: action, flowbit setters
//!   before checkers, priority, then load order), so alerts do not depend on
//!   timing or worker count.
//! - Time comes only from packet timestamps.
#![deny(missing_docs)]

mod addrindex;
mod compile;
mod detector;
mod groups;
mod prefilter;
mod program;

pub use compile::{needs_app_layer, DetectConfig, Engine, LoadReport, RuleMeta};
pub use detector::{DetectCounters, Detector, FlowView, Hit, PacketView, StreamChunk};
pub use zonewatch_ruleconf::{Decision, NewAction};

/// Thresholds (`threshold:`, `detection_filter:`, `threshold.config`)
/// applied to alerts after the workers' events are merged in input order,
/// so the result does not depend on how flows were spread over workers.
pub struct AlertFilter {
    engine: std::sync::Arc<Engine>,
    thresholds: zonewatch_ruleconf::ThresholdEngine,
}

impl AlertFilter {
    /// A filter for the engine's rules and threshold configuration.
    pub fn new(engine: std::sync::Arc<Engine>) -> AlertFilter {
        let thresholds = zonewatch_ruleconf::ThresholdEngine::new(
            engine.threshold_cfg.clone(),
            zonewatch_ruleconf::DEFAULT_MAX_ENTRIES,
        );
        AlertFilter { engine, thresholds }
    }

    /// Decides about one alert of engine rule `rule` (see [`Hit`]).
    pub fn decide(
        &mut self,
        rule: u32,
        src: std::net::IpAddr,
        dst: std::net::IpAddr,
        ts: zonewatch_types::Timestamp,
    ) -> zonewatch_ruleconf::Decision {
        let r = &self.engine.rules[rule as usize];
        self.thresholds.decide(
            r.meta.gid,
            r.meta.sid as u32,
            src,
            dst,
            ts,
            r.threshold.as_ref(),
        )
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
