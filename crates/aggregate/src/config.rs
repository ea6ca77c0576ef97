//! The `aggregate:` section: thresholds of every incident kind, the dedup horizon and the
//! Kafka shell's own settings. Unknown keys are errors (serde `deny_unknown_fields`);
//! [`AggregateConfig::validate`] checks every number against its range and says why.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The whole `aggregate:` section, with defaults for every key.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AggregateConfig {
    /// Consumer group of the aggregator instances (`--group` overrides it).
    pub group: String,
    /// Topic the incidents go to.
    pub incidents_topic: String,
    /// Topic malformed, oversized or refused messages are copied to (with a `reason`
    /// header); empty: none.
    pub dead_letter_topic: String,
    /// Messages larger than this are refused (counted, dead-lettered) unread.
    pub max_message_bytes: usize,
    /// Sensor name → tenant code. When not empty, an event is accepted only from a listed
    /// sensor, and its `tenant` header and `tenant` field must both be that tenant.
    pub sensors: BTreeMap<String, String>,
    /// After a restart or a rebalance, how many messages before the committed offset of
    /// each partition are read again to rebuild the correlation state (their incidents were
    /// already published and are not published again).
    pub replay_messages: u64,
    /// How often consumed offsets are committed (after the incidents are acknowledged).
    pub commit_interval_ms: u64,
    /// Consumer group session timeout: how soon the partitions of a dead instance go to
    /// the others (librdkafka `session.timeout.ms`).
    pub session_timeout_ms: u64,
    /// `host` of the incident events (default: `<sensor.name>-aggregate`).
    pub name: String,
    /// When no message arrived for this many seconds, move time on to the wall clock minus
    /// this delay, so windows close and silent sensors are found while every sensor is quiet
    /// (0: off, time is event time only). For live sensors; leave it off when replaying old
    /// captures, whose windows it would close at once.
    pub idle_advance_secs: u64,
    /// `multi_tenant_source`.
    pub multi_tenant: MultiTenantConfig,
    /// `alert_storm`.
    pub storm: StormConfig,
    /// `sensor_silent` and `sensor_dropping`.
    pub health: HealthConfig,
    /// Deduplication by `event_id`.
    pub dedup: DedupConfig,
}

impl Default for AggregateConfig {
    fn default() -> Self {
        AggregateConfig {
            group: "zonewatch-aggregate".into(),
            incidents_topic: "zonewatch-incidents".into(),
            dead_letter_topic: "zonewatch-deadletter".into(),
            max_message_bytes: 1 << 20,
            sensors: BTreeMap::new(),
            replay_messages: 100_000,
            commit_interval_ms: 1_000,
            session_timeout_ms: 10_000,
            name: String::new(),
            idle_advance_secs: 0,
            multi_tenant: MultiTenantConfig::default(),
            storm: StormConfig::default(),
            health: HealthConfig::default(),
            dedup: DedupConfig::default(),
        }
    }
}

/// One source alerting in several tenants.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct MultiTenantConfig {
    /// Tenants a source must alert in (each within `window_secs` of the latest alert).
    pub min_tenants: usize,
    /// The window, seconds of event time.
    pub window_secs: u64,
    /// Seconds without an alert from the source after which its incident is closed.
    pub quiet_secs: u64,
    /// Seconds of event time between two `update`s carrying only new counts (a new
    /// tenant, sensor or severity is sent at once).
    pub update_secs: u64,
    /// Signatures listed in `top_signatures`.
    pub top_signatures: usize,
    /// Sources tracked at once; the least recently seen is evicted beyond (counted).
    pub max_sources: usize,
}

impl Default for MultiTenantConfig {
    fn default() -> Self {
        MultiTenantConfig {
            min_tenants: 2,
            window_secs: 3_600,
            quiet_secs: 3_600,
            update_secs: 300,
            top_signatures: 5,
            max_sources: 200_000,
        }
    }
}

/// A tenant's alert rate far above its own baseline.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct StormConfig {
    /// Width of the rate buckets, seconds of event time.
    pub bucket_secs: u64,
    /// Weight of the newest bucket in the EWMA baseline (0 < alpha <= 1).
    pub alpha: f64,
    /// A bucket is a storm when its count exceeds `factor` x the baseline ...
    pub factor: f64,
    /// ... and at least this many alerts.
    pub min_alerts: u64,
    /// Buckets a tenant must have been seen for before its baseline is trusted.
    pub warmup_buckets: u64,
    /// Tenants tracked at once (more are refused, counted).
    pub max_tenants: usize,
}

impl Default for StormConfig {
    fn default() -> Self {
        StormConfig {
            bucket_secs: 60,
            alpha: 0.1,
            factor: 5.0,
            min_alerts: 100,
            warmup_buckets: 10,
            max_tenants: 10_000,
        }
    }
}

/// Sensor health from `stats` events.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct HealthConfig {
    /// A sensor with no `stats` event for this long (event time, while other events move
    /// time on) is `sensor_silent`.
    pub silent_secs: u64,
    /// Packets dropped (kernel + queue) over packets seen between two stats events above
    /// this ratio is `sensor_dropping`.
    pub drop_ratio: f64,
    /// ... when at least this many packets were seen in between.
    pub min_packets: u64,
    /// A Kafka spool backlog that grew over this many consecutive stats events ...
    pub spool_growth_events: u64,
    /// ... and is at least this many bytes is `sensor_dropping` (reason `spool_growing`).
    pub spool_min_bytes: u64,
    /// Sensors tracked at once (more are refused, counted).
    pub max_sensors: usize,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            silent_secs: 300,
            drop_ratio: 0.01,
            min_packets: 1_000,
            spool_growth_events: 3,
            spool_min_bytes: 1 << 20,
            max_sensors: 10_000,
        }
    }
}

/// Deduplication by `event_id`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct DedupConfig {
    /// Seconds of event time an id is remembered.
    pub horizon_secs: u64,
    /// Ids remembered at most (16 bytes each plus the table); the oldest go first.
    pub max_entries: usize,
}

impl Default for DedupConfig {
    fn default() -> Self {
        DedupConfig {
            horizon_secs: 3_600,
            max_entries: 2_000_000,
        }
    }
}

/// One bounded setting: key, value, allowed range, why.
struct Bound {
    key: &'static str,
    value: f64,
    min: f64,
    max: f64,
    why: &'static str,
}

const DAY: f64 = 86_400.0;

fn bound(key: &'static str, value: f64, min: f64, max: f64, why: &'static str) -> Bound {
    Bound {
        key,
        value,
        min,
        max,
        why,
    }
}

fn bounds_top(c: &AggregateConfig) -> Vec<Bound> {
    vec![
        bound(
            "max-message-bytes",
            c.max_message_bytes as f64,
            1024.0,
            64.0 * 1048576.0,
            "one message is read whole into memory",
        ),
        bound(
            "replay-messages",
            c.replay_messages as f64,
            0.0,
            1e9,
            "messages per partition re-read at start",
        ),
        bound(
            "commit-interval-ms",
            c.commit_interval_ms as f64,
            10.0,
            600_000.0,
            "offsets and incidents are acknowledged together at this pace",
        ),
        bound(
            "dedup.horizon-secs",
            c.dedup.horizon_secs as f64,
            1.0,
            30.0 * DAY,
            "seconds of event time",
        ),
        bound(
            "dedup.max-entries",
            c.dedup.max_entries as f64,
            1.0,
            1e9,
            "bounds memory (about 40 bytes an id)",
        ),
    ]
}

fn bounds_multi(c: &AggregateConfig) -> Vec<Bound> {
    vec![
        bound(
            "multi-tenant.min-tenants",
            c.multi_tenant.min_tenants as f64,
            2.0,
            10_000.0,
            "one tenant is not a spread",
        ),
        bound(
            "multi-tenant.window-secs",
            c.multi_tenant.window_secs as f64,
            1.0,
            30.0 * DAY,
            "seconds of event time",
        ),
        bound(
            "multi-tenant.quiet-secs",
            c.multi_tenant.quiet_secs as f64,
            1.0,
            30.0 * DAY,
            "seconds of event time",
        ),
        bound(
            "multi-tenant.update-secs",
            c.multi_tenant.update_secs as f64,
            0.0,
            DAY,
            "seconds of event time; 0 = an update per alert",
        ),
        bound(
            "multi-tenant.top-signatures",
            c.multi_tenant.top_signatures as f64,
            1.0,
            100.0,
            "entries of top_signatures",
        ),
        bound(
            "multi-tenant.max-sources",
            c.multi_tenant.max_sources as f64,
            1.0,
            1e8,
            "bounds memory",
        ),
    ]
}

fn bounds_storm(c: &AggregateConfig) -> Vec<Bound> {
    vec![
        bound(
            "storm.bucket-secs",
            c.storm.bucket_secs as f64,
            1.0,
            DAY,
            "seconds of event time",
        ),
        bound(
            "storm.alpha",
            c.storm.alpha,
            1e-6,
            1.0,
            "EWMA weight of the newest bucket",
        ),
        bound(
            "storm.factor",
            c.storm.factor,
            1.0,
            1e6,
            "times the baseline",
        ),
        bound(
            "storm.min-alerts",
            c.storm.min_alerts as f64,
            1.0,
            1e12,
            "alerts per bucket",
        ),
        bound(
            "storm.warmup-buckets",
            c.storm.warmup_buckets as f64,
            1.0,
            1e6,
            "buckets before the baseline is trusted",
        ),
        bound(
            "storm.max-tenants",
            c.storm.max_tenants as f64,
            1.0,
            1e7,
            "bounds memory",
        ),
    ]
}

fn bounds_health(c: &AggregateConfig) -> Vec<Bound> {
    vec![
        bound(
            "health.silent-secs",
            c.health.silent_secs as f64,
            1.0,
            30.0 * DAY,
            "seconds of event time",
        ),
        bound(
            "health.drop-ratio",
            c.health.drop_ratio,
            0.0,
            1.0,
            "dropped / seen packets",
        ),
        bound(
            "health.min-packets",
            c.health.min_packets as f64,
            0.0,
            1e15,
            "packets between two stats events",
        ),
        bound(
            "health.spool-growth-events",
            c.health.spool_growth_events as f64,
            1.0,
            1e6,
            "consecutive stats events",
        ),
        bound(
            "health.spool-min-bytes",
            c.health.spool_min_bytes as f64,
            0.0,
            1e15,
            "bytes",
        ),
        bound(
            "health.max-sensors",
            c.health.max_sensors as f64,
            1.0,
            1e7,
            "bounds memory",
        ),
    ]
}

impl AggregateConfig {
    /// Every number against its range; the error names the key (`aggregate.*`), the range
    /// and why, like the sensor's own settings.
    pub fn validate(&self) -> Result<(), String> {
        let all = [
            bounds_top(self),
            bounds_multi(self),
            bounds_storm(self),
            bounds_health(self),
        ];
        for b in all.into_iter().flatten() {
            // `!(a && b)` so that a NaN is refused too.
            if !(b.value >= b.min && b.value <= b.max) {
                return Err(format!(
                    "`aggregate.{}` is {}, outside {} ..= {} ({})",
                    b.key, b.value, b.min, b.max, b.why
                ));
            }
        }
        if self.incidents_topic.is_empty() {
            return Err("`aggregate.incidents-topic` is empty".into());
        }
        for (sensor, tenant) in &self.sensors {
            if sensor.is_empty() || tenant.is_empty() {
                return Err(format!(
                    "`aggregate.sensors`: {sensor:?} -> {tenant:?}: sensor and tenant must not be empty"
                ));
            }
        }
        Ok(())
    }
}
