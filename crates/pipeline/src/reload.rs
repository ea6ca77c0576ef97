//! Rules replaced while the pipeline runs (SIGHUP).
//!
//! Whoever reloads (the binary, on a thread of its own) builds the new
//! signature engine, detector set and Sigma rules completely, then
//! [`RuleSlot::publish`]es them. The threads that use rules look at the
//! slot's generation between their units of work — a worker before each
//! batch, the output thread before each message, the log thread before
//! each record — and, when it moved, take what is theirs and carry their
//! state over (flowbits, stream windows, thresholds, detector tables,
//! correlation windows; see each `replace_*`). A packet is therefore seen
//! by one whole engine, old or new, never by a half-built one, and nothing
//! waits on the build: one atomic load per batch when nothing changed.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// The rules of one reload.
pub struct RuleUpdate {
    /// Counts reloads that took effect (0: the rules of the start).
    pub generation: u64,
    /// Signatures (workers and the output thread's threshold filter).
    pub detect: Option<Arc<zonewatch_detect::Engine>>,
    /// Anomaly detectors: taken once, by the output thread.
    anomaly: Mutex<Option<zonewatch_anomaly::DetectorSet>>,
    /// Some detector runs: workers send observations.
    pub observe: bool,
    /// Sigma rules (the log thread), and how many were skipped.
    pub sigma: Option<(Arc<zonewatch_sigma::RuleSet>, u64)>,
}

/// Fully built rules for [`RuleSlot::publish`].
pub struct NewRules {
    /// Signatures (none: no signature files).
    pub detect: Option<Arc<zonewatch_detect::Engine>>,
    /// Anomaly detectors (none: no detector files).
    pub anomaly: Option<zonewatch_anomaly::DetectorSet>,
    /// Sigma rules and how many were skipped (none: the run reads no logs).
    pub sigma: Option<(Arc<zonewatch_sigma::RuleSet>, u64)>,
}

impl RuleUpdate {
    /// The detector set, for the one thread that runs it.
    pub(crate) fn take_anomaly(&self) -> Option<zonewatch_anomaly::DetectorSet> {
        lock(&self.anomaly).take()
    }
}

/// The outcome of the last reload, for the `reload` section of the stats.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReloadOutcome {
    /// The new rules took effect.
    pub ok: bool,
    /// When it ended (seconds since the Unix epoch).
    pub unix_time: f64,
    /// How long loading took, in seconds.
    pub duration_s: f64,
    /// Signatures loaded.
    pub signatures: u64,
    /// Sigma rules loaded.
    pub sigma: u64,
    /// Anomaly detectors running.
    pub detectors: u64,
    /// Why it failed (the first problem; every one is logged).
    pub error: Option<String>,
}

#[derive(Default)]
struct Status {
    ok: u64,
    failed: u64,
    last: Option<ReloadOutcome>,
}

/// Where reloaded rules wait for the threads that use them. Cheap to
/// clone; all clones are one slot.
#[derive(Clone)]
pub struct RuleSlot(Arc<Inner>);

struct Inner {
    generation: AtomicU64,
    current: Mutex<Arc<RuleUpdate>>,
    status: Mutex<Status>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Default for RuleSlot {
    fn default() -> Self {
        RuleSlot(Arc::new(Inner {
            generation: AtomicU64::new(0),
            current: Mutex::new(Arc::new(RuleUpdate {
                generation: 0,
                detect: None,
                anomaly: Mutex::new(None),
                observe: false,
                sigma: None,
            })),
            status: Mutex::new(Status::default()),
        }))
    }
}

impl RuleSlot {
    /// Hands fully built rules to the running threads, and records the
    /// reload as successful.
    pub fn publish(&self, rules: NewRules, mut outcome: ReloadOutcome) {
        let NewRules {
            detect,
            anomaly,
            sigma,
        } = rules;
        outcome.ok = true;
        {
            let mut cur = lock(&self.0.current);
            let generation = cur.generation + 1;
            *cur = Arc::new(RuleUpdate {
                generation,
                observe: anomaly.is_some(),
                detect,
                anomaly: Mutex::new(anomaly),
                sigma,
            });
            // Release: a thread that sees the new generation finds the
            // update in place (it takes the lock anyway).
            self.0.generation.store(generation, Ordering::Release);
        }
        self.record(outcome);
    }

    /// Records the outcome of a reload (a failed one changes no rules).
    pub fn record(&self, outcome: ReloadOutcome) {
        let mut st = lock(&self.0.status);
        if outcome.ok {
            st.ok += 1;
        } else {
            st.failed += 1;
        }
        st.last = Some(outcome);
    }

    /// The generation of the latest rules.
    #[inline]
    pub(crate) fn generation(&self) -> u64 {
        self.0.generation.load(Ordering::Acquire)
    }

    /// The latest rules.
    pub(crate) fn current(&self) -> Arc<RuleUpdate> {
        lock(&self.0.current).clone()
    }

    /// The `reload` section of the stats: reloads that took effect and
    /// that failed, and the last one's outcome.
    pub(crate) fn stats(&self) -> serde_json::Value {
        let st = lock(&self.0.status);
        let mut v = serde_json::json!({ "ok": st.ok, "failed": st.failed });
        if let Some(l) = &st.last {
            v["last"] = serde_json::json!({
                "success": u64::from(l.ok),
                "unix_time_s": l.unix_time,
                "duration_s": l.duration_s,
                "signatures": l.signatures,
                "sigma": l.sigma,
                "detectors": l.detectors,
            });
            if let Some(e) = &l.error {
                v["last"]["error"] = serde_json::Value::from(e.as_str());
            }
        }
        v
    }
}

/// What one thread has of the slot: the generation it runs.
pub(crate) struct Watch {
    slot: RuleSlot,
    seen: u64,
}

impl Watch {
    pub(crate) fn new(slot: RuleSlot) -> Watch {
        let seen = slot.generation();
        Watch { slot, seen }
    }

    /// The newer rules, if the slot moved since the last call.
    #[inline]
    pub(crate) fn poll(&mut self) -> Option<Arc<RuleUpdate>> {
        if self.slot.generation() == self.seen {
            return None;
        }
        let u = self.slot.current();
        self.seen = u.generation;
        Some(u)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watchers_see_each_publish_once() {
        let slot = RuleSlot::default();
        let mut a = Watch::new(slot.clone());
        assert!(a.poll().is_none());
        let none = || NewRules {
            detect: None,
            anomaly: None,
            sigma: None,
        };
        slot.publish(none(), ReloadOutcome::default());
        slot.publish(none(), ReloadOutcome::default());
        // A watcher that was behind by two takes the latest only.
        assert_eq!(a.poll().map(|u| u.generation), Some(2));
        assert!(a.poll().is_none());
        let b = Watch::new(slot.clone());
        assert_eq!(b.seen, 2, "a new watcher starts at the current rules");
        slot.record(ReloadOutcome {
            ok: false,
            error: Some("x.rules:3: bad".into()),
            ..Default::default()
        });
        let s = slot.stats();
        assert_eq!((s["ok"].as_u64(), s["failed"].as_u64()), (Some(2), Some(1)));
        assert_eq!(s["last"]["success"], 0);
        assert_eq!(s["last"]["error"], "x.rules:3: bad");
    }
}
