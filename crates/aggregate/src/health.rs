//! Sensor health from `stats` events: `sensor_silent` (no stats for `silent-secs` while
//! time moves on) and `sensor_dropping` (packet drops above `drop-ratio` between two stats
//! events, or a Kafka spool backlog growing for `spool-growth-events` stats in a row).

use crate::event::StatsEvent;
use crate::incident::{stable_id, Incident, IncidentKind, IncidentState};
use crate::HealthConfig;
use std::collections::{BTreeMap, BTreeSet};

struct Open {
    id: String,
    seq: u64,
    since_us: i64,
}

struct Sensor {
    tenant: String,
    last_us: i64,
    /// (uptime, packets, dropped) of the last stats event.
    last: Option<(u64, u64, u64)>,
    backlog: Option<u64>,
    growth_run: u64,
    silent: Option<Open>,
    dropping: Option<Open>,
}

/// Every sensor's last stats, with an index of the sensors not yet silent by last time.
pub(crate) struct Health {
    cfg: HealthConfig,
    sensors: BTreeMap<String, Sensor>,
    by_last: BTreeSet<(i64, String)>,
    refused: u64,
}

#[allow(clippy::too_many_arguments)]
fn incident(
    kind: IncidentKind,
    o: &Open,
    state: IncidentState,
    time_us: i64,
    name: &str,
    tenant: &str,
    last_us: i64,
    details: serde_json::Map<String, serde_json::Value>,
) -> Incident {
    Incident {
        id: o.id.clone(),
        kind,
        state,
        seq: o.seq,
        time_us,
        src_ip: String::new(),
        tenants: if tenant.is_empty() {
            Vec::new()
        } else {
            vec![tenant.to_string()]
        },
        sensors: vec![name.to_string()],
        first_seen_us: o.since_us,
        last_seen_us: last_us,
        alert_count: 0,
        top_signatures: Vec::new(),
        severity: 2,
        details,
    }
}

impl Health {
    pub(crate) fn new(cfg: HealthConfig) -> Health {
        Health {
            cfg,
            sensors: BTreeMap::new(),
            by_last: BTreeSet::new(),
            refused: 0,
        }
    }

    pub(crate) fn refused(&self) -> u64 {
        self.refused
    }

    /// Takes a stats event: ends a silence, checks drops and the spool.
    pub(crate) fn stats(&mut self, s: &StatsEvent) -> Vec<Incident> {
        if !self.sensors.contains_key(&s.sensor) && self.sensors.len() >= self.cfg.max_sensors {
            self.refused += 1;
            return Vec::new();
        }
        let cfg = &self.cfg;
        let sn = self
            .sensors
            .entry(s.sensor.clone())
            .or_insert_with(|| Sensor {
                tenant: s.tenant.clone(),
                last_us: s.time_us,
                last: None,
                backlog: None,
                growth_run: 0,
                silent: None,
                dropping: None,
            });
        let mut out = Vec::new();
        if let Some(mut o) = sn.silent.take() {
            o.seq += 1;
            let kind = IncidentKind::SensorSilent;
            let closed = IncidentState::Closed;
            let d = serde_json::Map::new();
            out.push(incident(
                kind, &o, closed, s.time_us, &s.sensor, &sn.tenant, s.time_us, d,
            ));
        }
        self.by_last.remove(&(sn.last_us, s.sensor.clone()));
        sn.last_us = sn.last_us.max(s.time_us);
        self.by_last.insert((sn.last_us, s.sensor.clone()));
        let mut reasons = serde_json::Map::new();
        if let Some((up, pkts, drops)) = sn.last {
            // A smaller uptime or counter: the sensor restarted; this event is a new base.
            if s.uptime >= up && s.packets >= pkts && s.dropped >= drops {
                let (dp, dd) = (s.packets - pkts, s.dropped - drops);
                let ratio = dd as f64 / (dp + dd).max(1) as f64;
                if dp + dd >= cfg.min_packets && dd > 0 && ratio > cfg.drop_ratio {
                    reasons.insert("drop_ratio".into(), ((ratio * 1e4).round() / 1e4).into());
                    reasons.insert("dropped".into(), dd.into());
                    reasons.insert("packets".into(), dp.into());
                }
            }
        }
        sn.last = Some((s.uptime, s.packets, s.dropped));
        if let Some(b) = s.spool_backlog_bytes {
            sn.growth_run = match sn.backlog {
                Some(prev) if b > prev => sn.growth_run + 1,
                _ => 0,
            };
            sn.backlog = Some(b);
            if sn.growth_run >= cfg.spool_growth_events && b >= cfg.spool_min_bytes {
                reasons.insert("spool_backlog_bytes".into(), b.into());
            }
        }
        let kind = IncidentKind::SensorDropping;
        match (sn.dropping.as_mut(), reasons.is_empty()) {
            (None, true) => {}
            (None, false) => {
                let since = s.time_us.to_string();
                let o = Open {
                    id: stable_id(&["sensor_dropping", &s.sensor, &since]),
                    seq: 0,
                    since_us: s.time_us,
                };
                let open = IncidentState::Open;
                out.push(incident(
                    kind, &o, open, s.time_us, &s.sensor, &sn.tenant, s.time_us, reasons,
                ));
                sn.dropping = Some(o);
            }
            (Some(o), false) => {
                o.seq += 1;
                let upd = IncidentState::Update;
                out.push(incident(
                    kind, o, upd, s.time_us, &s.sensor, &sn.tenant, s.time_us, reasons,
                ));
            }
            (Some(_), true) => {
                if let Some(mut o) = sn.dropping.take() {
                    o.seq += 1;
                    let closed = IncidentState::Closed;
                    out.push(incident(
                        kind, &o, closed, s.time_us, &s.sensor, &sn.tenant, s.time_us, reasons,
                    ));
                }
            }
        }
        out
    }

    /// Opens `sensor_silent` for the sensors whose last stats is older than `silent-secs`.
    pub(crate) fn advance(&mut self, now_us: i64) -> Vec<Incident> {
        let limit = (self.cfg.silent_secs as i64).saturating_mul(1_000_000);
        let mut out = Vec::new();
        while let Some((last, _)) = self.by_last.first() {
            if now_us.saturating_sub(*last) <= limit {
                break;
            }
            let Some((last, name)) = self.by_last.pop_first() else {
                break;
            };
            let Some(sn) = self.sensors.get_mut(&name) else {
                continue;
            };
            let o = Open {
                id: stable_id(&["sensor_silent", &name, &last.to_string()]),
                seq: 0,
                since_us: last,
            };
            let mut d = serde_json::Map::new();
            d.insert("silent_secs".into(), self.cfg.silent_secs.into());
            let at = last.saturating_add(limit);
            let open = IncidentState::Open;
            out.push(incident(
                IncidentKind::SensorSilent,
                &o,
                open,
                at,
                &name,
                &sn.tenant,
                last,
                d,
            ));
            sn.silent = Some(o);
        }
        out
    }
}
