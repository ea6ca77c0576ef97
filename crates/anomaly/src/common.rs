//! What every detector shares: the keys of every detector file ([`Common`]), the
//! [`Detector`] trait the set runs them through, and time helpers.

use zonewatch_types::Timestamp;

use crate::alert::AnomalyAlert;
use crate::obs::{DnsObs, FlowEndObs, PacketObs};
use crate::table::TableStats;
use crate::yaml::Section;

/// Nanoseconds per second (observation times are nanoseconds).
pub const NS_PER_SEC: i64 = 1_000_000_000;

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

impl Common {
    /// Reads the shared keys of a `detector:` section; the defaults of severity and update
    /// interval are the detector type's.
    pub fn read(s: &Section, default_severity: u8, default_update_interval: u64) -> Self {
        Common {
            enabled: s.bool("enabled", true),
            severity: s.u64("severity", default_severity as u64, 1, 4) as u8,
            max_entries: s.u64("max-entries", 65_536, 1, 1 << 26) as usize,
            update_interval: s.u64("update-interval", default_update_interval, 1, 7 * 86_400),
            seed: s.u64("seed", 0x7a6f_6e65, 0, u64::MAX),
        }
    }

    /// The severity one step lower (a number one higher, at most 4): for the weaker
    /// sub-types of a detector (slow scans, single tunnel-like names, query volume).
    pub fn lower_severity(&self) -> u8 {
        self.severity.saturating_add(1).min(4)
    }
}

/// Which observations a detector takes (the set hands it only those).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Inputs {
    /// [`PacketObs`], per packet.
    pub packets: bool,
    /// [`FlowEndObs`], per flow end.
    pub flow_ends: bool,
    /// [`DnsObs`], per DNS message.
    pub dns: bool,
}

/// One detector as the set runs it. The observation methods it does not take (see
/// [`Detector::inputs`]) are never called. `Send`: the set runs on the output thread.
pub trait Detector: Send {
    /// The observations it takes.
    fn inputs(&self) -> Inputs;
    /// Per packet (hot path).
    fn observe_packet(&mut self, _o: &PacketObs, _out: &mut Vec<AnomalyAlert>) {}
    /// Per flow end.
    fn observe_flow_end(&mut self, _f: &FlowEndObs, _out: &mut Vec<AnomalyAlert>) {}
    /// Per DNS message.
    fn observe_dns(&mut self, _o: &DnsObs, _out: &mut Vec<AnomalyAlert>) {}
    /// Once per second of packet time, and at end of input with `flush` (nothing more will
    /// come: pending decisions are taken now).
    fn tick(&mut self, _now: Timestamp, _flush: bool, _out: &mut Vec<AnomalyAlert>) {}
    /// Every 60 s of packet time: removes idle state.
    fn expire(&mut self, _now: Timestamp) {}
    /// Its state table, for the `anomaly.<detector>.*` counters.
    fn table_stats(&self) -> TableStats;
    /// Alerts raised, updates included.
    fn alerts(&self) -> u64;
    /// Counters of its own beyond the table's and `alerts` (name, value).
    fn extra_counters(&self) -> Vec<(&'static str, u64)> {
        Vec::new()
    }
}

/// Seconds as nanoseconds (saturating).
pub fn secs(s: u64) -> i64 {
    (s as i64).saturating_mul(NS_PER_SEC)
}

/// Nanoseconds as seconds with millisecond precision, for evidence fields.
pub fn ts_secs(ns: i64) -> f64 {
    (ns as f64 / 1e6).round() / 1e3
}
