//! Anomaly detectors and the zone-separation policy.
//!
//! # Contract
//!
//! The pipeline hands this crate plain *observations* and gets [`AnomalyAlert`]s back:
//!
//! - [`PacketObs`] for every decoded packet that belongs to a flow (hot path: `Copy`, no
//!   allocation per packet in steady state; detectors only touch their tables on the packets
//!   that matter — a flow's first packet, its first reply, TCP flag anomalies, flood targets),
//! - [`FlowEndObs`] when a flow ends (timeout, eviction, shutdown),
//! - [`DnsObs`] for each DNS query and each answer the DNS parser sees,
//! - [`DetectorSet::tick`] once per second of packet time (the pipeline's ticks), and
//!   [`DetectorSet::finish`] at end of input: time-based decisions (scan/flood confirmation
//!   after a reply grace, volume buckets, table expiry) happen there.
//!
//! Alerts accumulate inside the set; take them with [`DetectorSet::drain_alerts`] after each
//! call. Time comes only from observation timestamps (no wall clock) and nothing is output in
//! hash-table order, so the same observations in the same order give the same alerts in the
//! same order.
//!
//! Detectors are configured by YAML files with a top-level `detector:` key (see
//! `rules/detectors/` and `docs/detectors.md`); a detector runs only when a `--rules` path
//! holds its file ([`DetectorSet::load`]). The zone policy (zones and the table of which zone
//! may reach which) is site configuration: [`ZonePolicy::read`] reads the `zone-policy:`
//! section the config crate hands over, over the zones the config crate read (one reading,
//! one "most specific prefix wins": `zonewatch_types::ZoneMap`).
//!
//! Each detector implements [`common::Detector`] (the observations it takes, its ticks,
//! expiry and counters); the set knows the detector types by one table (name, default
//! severity, how a file's section builds it) and runs them in a fixed order, so the alerts
//! of one observation always come in the same order.
//!
//! Every detector's state is a bounded table ([`table::Table`]): a cap on entries, idle
//! expiry, approximate-LRU eviction at the cap (a rotating sample), and counters
//! ([`DetectorSet::counters`]).
//!
//! Per-host detectors (scans, floods, DNS, beacons, volume) need to see all of a host's
//! observations: with flows spread over workers by flow hash, run one set on a stage that sees
//! every observation in input order (or dispatch observations by host), otherwise thresholds
//! are met per worker and results depend on the worker count. Protocol anomalies and the zone
//! policy are per packet / per flow and can run in any worker.
#![deny(missing_docs)]

pub mod alert;
pub mod beacon;
pub mod common;
pub mod dns;
pub mod dos;
pub mod flood;
pub mod obs;
pub mod protocol;
pub mod scan;
mod set;
mod sketch;
pub mod table;
pub mod volume;
pub mod yaml;
pub mod zone;

pub use alert::{AnomalyAlert, Category};
pub use obs::{DecoderEvents, DnsObs, FlowEndObs, PacketObs, TcpFlags};
pub use set::{DetectorSet, LoadError};
pub use zone::{PolicyRule, Violation, ZonePolicy};
