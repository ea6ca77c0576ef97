//! `multi_tenant_source`: one source address alerting in several tenants.
//!
//! A source's *episode* starts with its first alert after a quiet period and ends when it
//! has been quiet for `quiet-secs`; the incident opens during the episode when at least
//! `min-tenants` tenants have an alert from it within `window-secs` of its latest alert,
//! and its id is derived from the source and the episode's first alert time, so a replay of
//! the same alerts gives the same id.

use crate::event::AlertEvent;
use crate::incident::{stable_id, Incident, IncidentKind, IncidentState, SignatureCount};
use crate::MultiTenantConfig;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Distinct tenants, sensors and signatures kept per source; beyond, alerts still count.
const MAX_NAMES: usize = 4096;
const MAX_SIGNATURES: usize = 1024;

struct Open {
    id: String,
    seq: u64,
    emitted_at_us: i64,
    emitted: (usize, usize, u8, u64),
}

struct Episode {
    first_seen_us: i64,
    last_seen_us: i64,
    alert_count: u64,
    tenants: BTreeMap<String, i64>,
    sensors: BTreeSet<String>,
    signatures: BTreeMap<String, u64>,
    best_severity: u8,
    open: Option<Open>,
}

/// Every source's episode, with an index by last alert time for expiry and eviction.
pub(crate) struct Sources {
    cfg: MultiTenantConfig,
    episodes: HashMap<String, Episode>,
    by_last_seen: BTreeSet<(i64, String)>,
    evicted: u64,
}

/// Incident severity: the most severe alert's, raised one level for spreading to
/// `min_tenants` tenants and one more for each doubling beyond (1 is the highest).
pub(crate) fn spread_severity(best_alert: u8, tenants: usize, min_tenants: usize) -> u8 {
    let ratio = (tenants / min_tenants.max(1)).max(1);
    let raise = 1 + ratio.ilog2() as u8;
    best_alert.clamp(1, 4).saturating_sub(raise).max(1)
}

pub(crate) fn top(signatures: &BTreeMap<String, u64>, n: usize) -> Vec<SignatureCount> {
    let mut v: Vec<(&String, &u64)> = signatures.iter().collect();
    v.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    v.into_iter()
        .take(n)
        .map(|(s, c)| SignatureCount {
            signature: s.clone(),
            count: *c,
        })
        .collect()
}

impl Sources {
    pub(crate) fn new(cfg: MultiTenantConfig) -> Sources {
        Sources {
            cfg,
            episodes: HashMap::new(),
            by_last_seen: BTreeSet::new(),
            evicted: 0,
        }
    }

    pub(crate) fn evicted(&self) -> u64 {
        self.evicted
    }

    fn secs(s: u64) -> i64 {
        (s as i64).saturating_mul(1_000_000)
    }

    /// Counts one alert; returns the incident it opens or updates, if any.
    pub(crate) fn alert(&mut self, a: &AlertEvent) -> Option<Incident> {
        if a.src_ip.is_empty() {
            return None;
        }
        if !self.episodes.contains_key(&a.src_ip) && self.episodes.len() >= self.cfg.max_sources {
            // The least recently seen source goes; an open incident of it is lost with it
            // (counted), never the newest evidence.
            if let Some((_, src)) = self.by_last_seen.pop_first() {
                self.episodes.remove(&src);
                self.evicted += 1;
            }
        }
        let ep = self
            .episodes
            .entry(a.src_ip.clone())
            .or_insert_with(|| Episode {
                first_seen_us: a.time_us,
                last_seen_us: a.time_us,
                alert_count: 0,
                tenants: BTreeMap::new(),
                sensors: BTreeSet::new(),
                signatures: BTreeMap::new(),
                best_severity: u8::MAX,
                open: None,
            });
        self.by_last_seen
            .remove(&(ep.last_seen_us, a.src_ip.clone()));
        ep.first_seen_us = ep.first_seen_us.min(a.time_us);
        ep.last_seen_us = ep.last_seen_us.max(a.time_us);
        self.by_last_seen
            .insert((ep.last_seen_us, a.src_ip.clone()));
        ep.alert_count += 1;
        ep.best_severity = ep.best_severity.min(a.severity);
        // An alert of a sensor without a tenant counts, but names no tenant.
        if !a.tenant.is_empty()
            && (ep.tenants.len() < MAX_NAMES || ep.tenants.contains_key(&a.tenant))
        {
            let t = ep.tenants.entry(a.tenant.clone()).or_insert(a.time_us);
            *t = (*t).max(a.time_us);
        }
        if ep.sensors.len() < MAX_NAMES {
            ep.sensors.insert(a.sensor.clone());
        }
        if ep.signatures.len() < MAX_SIGNATURES || ep.signatures.contains_key(&a.signature) {
            *ep.signatures.entry(a.signature.clone()).or_insert(0) += 1;
        }
        let cfg = &self.cfg;
        let window_start = ep.last_seen_us.saturating_sub(Self::secs(cfg.window_secs));
        let active = ep.tenants.values().filter(|t| **t >= window_start).count();
        let severity = spread_severity(ep.best_severity, ep.tenants.len(), cfg.min_tenants);
        let now = (ep.tenants.len(), ep.sensors.len(), severity, ep.alert_count);
        let state = match &mut ep.open {
            None if active >= cfg.min_tenants => {
                let first = ep.first_seen_us.to_string();
                ep.open = Some(Open {
                    id: stable_id(&["multi_tenant_source", &a.src_ip, &first]),
                    seq: 0,
                    emitted_at_us: a.time_us,
                    emitted: now,
                });
                IncidentState::Open
            }
            None => return None,
            Some(o) => {
                let grew = now.0 > o.emitted.0 || now.1 > o.emitted.1 || now.2 != o.emitted.2;
                let due = now.3 != o.emitted.3
                    && a.time_us.saturating_sub(o.emitted_at_us) >= Self::secs(cfg.update_secs);
                if !grew && !due {
                    return None;
                }
                o.seq += 1;
                o.emitted_at_us = a.time_us;
                o.emitted = now;
                IncidentState::Update
            }
        };
        Some(Self::incident(cfg, &a.src_ip, ep, state, a.time_us))
    }

    fn incident(
        cfg: &MultiTenantConfig,
        src: &str,
        ep: &Episode,
        state: IncidentState,
        time_us: i64,
    ) -> Incident {
        let open = ep.open.as_ref().expect("an incident is open");
        let mut details = serde_json::Map::new();
        details.insert("min_tenants".into(), cfg.min_tenants.into());
        details.insert("window_secs".into(), cfg.window_secs.into());
        Incident {
            id: open.id.clone(),
            kind: IncidentKind::MultiTenantSource,
            state,
            seq: open.seq,
            time_us,
            src_ip: src.to_string(),
            tenants: ep.tenants.keys().cloned().collect(),
            sensors: ep.sensors.iter().cloned().collect(),
            first_seen_us: ep.first_seen_us,
            last_seen_us: ep.last_seen_us,
            alert_count: ep.alert_count,
            top_signatures: top(&ep.signatures, cfg.top_signatures),
            severity: spread_severity(ep.best_severity, ep.tenants.len(), cfg.min_tenants),
            details,
        }
    }

    /// Ends the episodes quiet for `quiet-secs` at `now_us`; returns the incidents closed.
    pub(crate) fn advance(&mut self, now_us: i64) -> Vec<Incident> {
        let quiet = Self::secs(self.cfg.quiet_secs);
        let mut out = Vec::new();
        while let Some((last, _)) = self.by_last_seen.first() {
            if now_us.saturating_sub(*last) <= quiet {
                break;
            }
            let Some((last, src)) = self.by_last_seen.pop_first() else {
                break;
            };
            let Some(mut ep) = self.episodes.remove(&src) else {
                continue;
            };
            if let Some(o) = &mut ep.open {
                o.seq += 1;
                // The close is timed by the alerts, not by whatever event moved time on,
                // so that a replay in another interleaving closes it alike.
                let at = last.saturating_add(quiet);
                out.push(Self::incident(
                    &self.cfg,
                    &src,
                    &ep,
                    IncidentState::Closed,
                    at,
                ));
            }
        }
        out
    }
}
