//! The aggregator's correlation core (`zonewatch aggregate`): sensor `alert` and `stats`
//! events in, with their own timestamps; `incident` events out.
//!
//! Contract:
//! - **Pure and deterministic.** [`Correlator`] does no I/O and reads no clock: time is the
//!   largest event timestamp seen (the *watermark*), moved on by [`Correlator::ingest`] and,
//!   for a caller that wants wall-clock time to count too, [`Correlator::advance`]. The same
//!   events in the same order give the same incidents, byte for byte; that is what lets the
//!   Kafka shell rebuild its state by replaying a partition (docs/aggregate.md).
//! - **Exactly once in effect.** Events are deduplicated by `event_id` within
//!   [`DedupConfig::horizon_secs`] of event time (and at most [`DedupConfig::max_entries`]
//!   ids), so a redelivered or replayed event changes nothing.
//! - **Bounded memory.** Sources, tenants, sensors and dedup entries have caps; what is
//!   evicted at a cap is counted in [`Counters`], never silently lost.
//! - **Hostile input.** [`parse_event`] takes arbitrary bytes and returns a typed event or a
//!   [`Reject`] reason; it never panics.
//!
//! Incidents: `multi_tenant_source` (one source alerting in at least
//! [`MultiTenantConfig::min_tenants`] tenants within a window), `alert_storm` (a tenant's
//! alert rate far above its own EWMA baseline), `sensor_silent` and `sensor_dropping` (from
//! `stats`). Each has a stable `incident.id` and goes `open` → `update`* → `closed`.

mod config;
mod dedup;
mod event;
mod health;
mod incident;
mod source;
mod storm;

pub use config::{AggregateConfig, DedupConfig, HealthConfig, MultiTenantConfig, StormConfig};
pub use event::{parse_event, parse_timestamp, AlertEvent, Event, Headers, Reject, StatsEvent};
pub use incident::{eve_time, Incident, IncidentKind, IncidentState, SignatureCount};

use dedup::Dedup;
use health::Health;
use source::Sources;
use storm::Storms;

/// What the correlator counted (for the aggregator's stats and its tests).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counters {
    /// Events taken in (after dedup).
    pub events: u64,
    /// Events dropped as duplicates of an `event_id` seen within the horizon.
    pub duplicates: u64,
    /// Dedup ids forgotten early because `dedup.max_entries` was reached.
    pub dedup_evicted: u64,
    /// Source states evicted at `multi_tenant.max_sources` (least recently seen first).
    pub sources_evicted: u64,
    /// Tenants not tracked for storms because `storm.max_tenants` was reached.
    pub tenants_refused: u64,
    /// Sensors not tracked because `health.max_sensors` was reached.
    pub sensors_refused: u64,
    /// Incident events produced, all states.
    pub incidents: u64,
}

/// The correlation state machine. See the crate documentation.
pub struct Correlator {
    cfg: AggregateConfig,
    watermark_us: i64,
    dedup: Dedup,
    sources: Sources,
    storms: Storms,
    health: Health,
    counters: Counters,
}

impl Correlator {
    /// A correlator with no state. `cfg` should have passed [`AggregateConfig::validate`].
    pub fn new(cfg: AggregateConfig) -> Correlator {
        Correlator {
            dedup: Dedup::new(cfg.dedup.clone()),
            sources: Sources::new(cfg.multi_tenant.clone()),
            storms: Storms::new(cfg.storm.clone()),
            health: Health::new(cfg.health.clone()),
            watermark_us: i64::MIN,
            cfg,
            counters: Counters::default(),
        }
    }

    /// The configuration in use.
    pub fn config(&self) -> &AggregateConfig {
        &self.cfg
    }

    /// Time as the correlator sees it: the largest timestamp seen or advanced to
    /// (microseconds since the epoch; `i64::MIN` before the first event).
    pub fn watermark_us(&self) -> i64 {
        self.watermark_us
    }

    /// What was counted so far.
    pub fn counters(&self) -> Counters {
        let mut c = self.counters.clone();
        c.dedup_evicted = self.dedup.evicted();
        c.sources_evicted = self.sources.evicted();
        c.tenants_refused = self.storms.refused();
        c.sensors_refused = self.health.refused();
        c
    }

    /// Takes one event: a duplicate (same `event_id` within the horizon) changes nothing and
    /// returns nothing; otherwise the event is correlated, time moves to its timestamp if
    /// later, and the incidents opened, updated or closed as a result are returned in a
    /// deterministic order.
    pub fn ingest(&mut self, ev: &Event) -> Vec<Incident> {
        let time = ev.time_us();
        if !self.dedup.insert(ev.event_id(), time, self.watermark_us) {
            self.counters.duplicates += 1;
            return Vec::new();
        }
        self.counters.events += 1;
        // Time first, so that what the event's own time closes is closed before the event
        // itself counts (an alert after a quiet period starts a new incident).
        let mut out = self.advance(time);
        let closed_by_time = out.len();
        match ev {
            Event::Alert(a) => {
                out.extend(self.sources.alert(a));
                self.storms.alert(a);
            }
            Event::Stats(s) => out.extend(self.health.stats(s)),
        }
        self.counters.incidents += (out.len() - closed_by_time) as u64;
        out
    }

    /// Moves time on to `now_us` (no-op if not later than the watermark) and returns the
    /// incidents that closes or opens: quiet sources, finished storm buckets, silent sensors.
    pub fn advance(&mut self, now_us: i64) -> Vec<Incident> {
        if now_us <= self.watermark_us {
            return Vec::new();
        }
        self.watermark_us = now_us;
        self.dedup.expire(now_us);
        let mut out = self.sources.advance(now_us);
        out.extend(self.storms.advance(now_us));
        out.extend(self.health.advance(now_us));
        self.counters.incidents += out.len() as u64;
        out
    }
}

#[cfg(test)]
mod tests;
