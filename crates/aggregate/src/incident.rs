//! The `incident` event (docs/schema/incident.schema.json): what the aggregator publishes.

use serde::Serialize;
use std::hash::Hasher;
use zonewatch_types::time::{Timestamp, UtcOffset};

/// What an incident is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IncidentKind {
    /// One source address alerting in several tenants.
    MultiTenantSource,
    /// A tenant's alert rate far above its own baseline.
    AlertStorm,
    /// A sensor that stopped sending `stats`.
    SensorSilent,
    /// A sensor that drops packets or whose Kafka spool keeps growing.
    SensorDropping,
}

impl IncidentKind {
    /// The `incident.kind` value.
    pub fn as_str(self) -> &'static str {
        match self {
            IncidentKind::MultiTenantSource => "multi_tenant_source",
            IncidentKind::AlertStorm => "alert_storm",
            IncidentKind::SensorSilent => "sensor_silent",
            IncidentKind::SensorDropping => "sensor_dropping",
        }
    }
}

/// Where an incident is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IncidentState {
    /// First event of the incident.
    Open,
    /// It grew (new tenant, sensor, severity, or counts after `update-secs`).
    Update,
    /// Last event: the quiet period passed (or the condition ended).
    Closed,
}

/// One entry of `top_signatures`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SignatureCount {
    /// `alert.signature`.
    pub signature: String,
    /// Alerts with it.
    pub count: u64,
}

/// One incident event.
#[derive(Clone, Debug, PartialEq)]
pub struct Incident {
    /// Stable id: the same for every event of one incident, and the same again when the
    /// same events are correlated again (a replay after a restart).
    pub id: String,
    /// Kind.
    pub kind: IncidentKind,
    /// State.
    pub state: IncidentState,
    /// How many events of this incident came before this one (0 for `open`).
    pub seq: u64,
    /// Event time this incident event is about, microseconds since the epoch.
    pub time_us: i64,
    /// Source address (multi_tenant_source), empty otherwise.
    pub src_ip: String,
    /// Tenants involved, sorted.
    pub tenants: Vec<String>,
    /// Sensors involved, sorted.
    pub sensors: Vec<String>,
    /// Time of the first event of the incident.
    pub first_seen_us: i64,
    /// Time of the last event of the incident.
    pub last_seen_us: i64,
    /// Alerts counted (distinct event ids).
    pub alert_count: u64,
    /// Most frequent signatures, most frequent first (ties by name).
    pub top_signatures: Vec<SignatureCount>,
    /// 1 (most severe) to 4, as `alert.severity`.
    pub severity: u8,
    /// Kind-specific figures (rates, baselines, ratios, reason).
    pub details: serde_json::Map<String, serde_json::Value>,
}

/// A 128-bit SipHash-1-3 of `parts` (fixed keys) in the 8-4-4-4-12 layout of the sensor's
/// `event_id`s.
pub(crate) fn stable_id(parts: &[&str]) -> String {
    let mut h = siphasher::sip128::SipHasher13::new_with_keys(0x696e_6369_6465_6e74, 0x7a6f_6e65);
    for p in parts {
        h.write(p.as_bytes());
        // A separator no part contains, so ("ab","c") and ("a","bc") differ.
        h.write_u8(0xff);
    }
    let v = siphasher::sip128::Hasher128::finish128(&h).as_u128();
    let x = format!("{v:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &x[0..8],
        &x[8..12],
        &x[12..16],
        &x[16..20],
        &x[20..32]
    )
}

/// EVE time text (UTC, microseconds) of a time in microseconds.
pub fn eve_time(us: i64) -> String {
    Timestamp(us.saturating_mul(1000)).to_eve(UtcOffset(0))
}

impl Incident {
    /// The `event_id` of this incident event: derived from the incident id, state and
    /// sequence number, so the same incident event published twice has the same id.
    pub fn event_id(&self) -> String {
        let seq = self.seq.to_string();
        let state = serde_json::to_value(self.state).unwrap_or_default();
        stable_id(&[&self.id, state.as_str().unwrap_or(""), &seq])
    }

    /// The incident as an EVE event (one JSON object), `host` being the aggregator's name.
    pub fn to_json(&self, host: &str) -> serde_json::Value {
        let mut inc = serde_json::json!({
            "id": self.id,
            "kind": self.kind.as_str(),
            "state": self.state,
            "seq": self.seq,
            "tenants": self.tenants,
            "sensors": self.sensors,
            "first_seen": eve_time(self.first_seen_us),
            "last_seen": eve_time(self.last_seen_us),
            "alert_count": self.alert_count,
            "top_signatures": self.top_signatures,
            "severity": self.severity,
        });
        if !self.src_ip.is_empty() {
            inc["src_ip"] = self.src_ip.clone().into();
        }
        if !self.details.is_empty() {
            inc["details"] = serde_json::Value::Object(self.details.clone());
        }
        let mut ev = serde_json::json!({
            "timestamp": eve_time(self.time_us),
            "event_type": "incident",
            "event_id": self.event_id(),
            "host": host,
        });
        if self.tenants.len() == 1 {
            // A single-tenant incident carries the tenant like any event, so a
            // per-tenant consumer (or report) can filter on it.
            ev["tenant"] = self.tenants[0].clone().into();
        }
        ev["incident"] = inc;
        ev
    }
}
