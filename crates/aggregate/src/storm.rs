//! `alert_storm`: a tenant whose alerts in one bucket of `bucket-secs` exceed `factor` times
//! its own EWMA baseline (and `min-alerts`). Buckets are aligned on multiples of
//! `bucket-secs` since the epoch, so every tenant's buckets end together and are closed
//! in one pass when time crosses a boundary. Storm buckets do not feed the baseline (a
//! storm must not teach the baseline that storms are normal).

use crate::event::AlertEvent;
use crate::incident::{stable_id, Incident, IncidentKind, IncidentState};
use crate::source::top;
use crate::StormConfig;
use std::collections::{BTreeMap, BTreeSet};

const MAX_SIGNATURES: usize = 256;
const MAX_SENSORS: usize = 256;

struct Storm {
    id: String,
    seq: u64,
    first_bucket: i64,
    last_bucket: i64,
    alerts: u64,
    peak: u64,
    sensors: BTreeSet<String>,
    signatures: BTreeMap<String, u64>,
}

#[derive(Default)]
struct Tenant {
    count: u64,
    sensors: BTreeSet<String>,
    signatures: BTreeMap<String, u64>,
    baseline: f64,
    buckets_seen: u64,
    storm: Option<Storm>,
}

/// Every tenant's current bucket and baseline.
pub(crate) struct Storms {
    cfg: StormConfig,
    tenants: BTreeMap<String, Tenant>,
    /// Index of the current bucket (time / bucket width); None before the first event.
    bucket: Option<i64>,
    refused: u64,
}

impl Storms {
    pub(crate) fn new(cfg: StormConfig) -> Storms {
        Storms {
            cfg,
            tenants: BTreeMap::new(),
            bucket: None,
            refused: 0,
        }
    }

    pub(crate) fn refused(&self) -> u64 {
        self.refused
    }

    fn width_us(&self) -> i64 {
        (self.cfg.bucket_secs as i64).saturating_mul(1_000_000)
    }

    /// Counts an alert in its tenant's current bucket (a late alert counts in the current
    /// bucket: the rate is of arrivals in event time). Alerts without a tenant are not
    /// tracked.
    pub(crate) fn alert(&mut self, a: &AlertEvent) {
        if a.tenant.is_empty() {
            return;
        }
        if !self.tenants.contains_key(&a.tenant) && self.tenants.len() >= self.cfg.max_tenants {
            self.refused += 1;
            return;
        }
        let t = self.tenants.entry(a.tenant.clone()).or_default();
        t.count += 1;
        if t.sensors.len() < MAX_SENSORS {
            t.sensors.insert(a.sensor.clone());
        }
        if t.signatures.len() < MAX_SIGNATURES || t.signatures.contains_key(&a.signature) {
            *t.signatures.entry(a.signature.clone()).or_insert(0) += 1;
        }
    }

    /// Closes the buckets that end before `now_us`; returns the storms opened, grown or
    /// ended by them, by tenant name.
    pub(crate) fn advance(&mut self, now_us: i64) -> Vec<Incident> {
        let width = self.width_us();
        let now_bucket = now_us.div_euclid(width);
        let Some(current) = self.bucket else {
            self.bucket = Some(now_bucket);
            return Vec::new();
        };
        if now_bucket <= current {
            return Vec::new();
        }
        self.bucket = Some(now_bucket);
        let empty_after = (now_bucket - current - 1) as u64;
        let mut out = Vec::new();
        for (name, t) in &mut self.tenants {
            out.extend(close_bucket(&self.cfg, name, t, current, width));
            if empty_after > 0 {
                // Buckets without alerts: the baseline decays, a storm ends.
                t.baseline *= (1.0 - self.cfg.alpha).powi(empty_after.min(i32::MAX as u64) as i32);
                t.buckets_seen = t.buckets_seen.saturating_add(empty_after);
                if let Some(mut s) = t.storm.take() {
                    s.seq += 1;
                    let end = (current + 2) * width;
                    let closed = IncidentState::Closed;
                    out.push(storm_incident(&self.cfg, name, t.baseline, &s, closed, end));
                }
            }
        }
        out
    }
}

/// Ends the bucket `index` of one tenant.
fn close_bucket(
    cfg: &StormConfig,
    name: &str,
    t: &mut Tenant,
    index: i64,
    width: i64,
) -> Option<Incident> {
    let count = std::mem::take(&mut t.count);
    let sensors = std::mem::take(&mut t.sensors);
    let signatures = std::mem::take(&mut t.signatures);
    let end = (index + 1) * width;
    let stormy = t.buckets_seen >= cfg.warmup_buckets
        && count >= cfg.min_alerts
        && count as f64 > cfg.factor * t.baseline;
    t.buckets_seen += 1;
    if !stormy {
        t.baseline = if t.buckets_seen == 1 {
            count as f64
        } else {
            cfg.alpha * count as f64 + (1.0 - cfg.alpha) * t.baseline
        };
        let mut s = t.storm.take()?;
        s.seq += 1;
        return Some(storm_incident(
            cfg,
            name,
            t.baseline,
            &s,
            IncidentState::Closed,
            end,
        ));
    }
    let (mut s, state) = match t.storm.take() {
        Some(mut s) => {
            s.seq += 1;
            (s, IncidentState::Update)
        }
        None => (
            Storm {
                id: stable_id(&["alert_storm", name, &index.to_string()]),
                seq: 0,
                first_bucket: index,
                last_bucket: index,
                alerts: 0,
                peak: 0,
                sensors: BTreeSet::new(),
                signatures: BTreeMap::new(),
            },
            IncidentState::Open,
        ),
    };
    s.last_bucket = index;
    s.alerts += count;
    s.peak = s.peak.max(count);
    for x in sensors {
        if s.sensors.len() < MAX_SENSORS {
            s.sensors.insert(x);
        }
    }
    for (sig, c) in signatures {
        if s.signatures.len() < MAX_SIGNATURES || s.signatures.contains_key(&sig) {
            *s.signatures.entry(sig).or_insert(0) += c;
        }
    }
    let mut inc = storm_incident(cfg, name, t.baseline, &s, state, end);
    inc.details.insert("bucket_alerts".into(), count.into());
    t.storm = Some(s);
    Some(inc)
}

/// The incident event of a storm at `time_us`.
fn storm_incident(
    cfg: &StormConfig,
    tenant: &str,
    baseline: f64,
    s: &Storm,
    state: IncidentState,
    time_us: i64,
) -> Incident {
    let width = (cfg.bucket_secs as i64).saturating_mul(1_000_000);
    let mut details = serde_json::Map::new();
    details.insert("bucket_secs".into(), cfg.bucket_secs.into());
    details.insert("peak_bucket_alerts".into(), s.peak.into());
    // Rounded so that the text does not depend on float printing of long fractions.
    details.insert(
        "baseline".into(),
        ((baseline * 100.0).round() / 100.0).into(),
    );
    details.insert("factor".into(), cfg.factor.into());
    // A storm ten times over the threshold is the most severe.
    let severity = if s.peak as f64 > 10.0 * cfg.factor * baseline.max(1.0) {
        1
    } else {
        2
    };
    Incident {
        id: s.id.clone(),
        kind: IncidentKind::AlertStorm,
        state,
        seq: s.seq,
        time_us,
        src_ip: String::new(),
        tenants: vec![tenant.to_string()],
        sensors: s.sensors.iter().cloned().collect(),
        first_seen_us: s.first_bucket * width,
        last_seen_us: (s.last_bucket + 1) * width,
        alert_count: s.alerts,
        top_signatures: top(&s.signatures, 5),
        severity,
        details,
    }
}
