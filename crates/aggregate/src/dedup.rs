//! Deduplication by `event_id` within a horizon of event time, with a hard cap on the
//! number of ids remembered.

use crate::DedupConfig;
use std::collections::{HashMap, VecDeque};
use std::hash::Hasher;

/// The ids seen, in arrival order, with the time of their event.
pub(crate) struct Dedup {
    cfg: DedupConfig,
    seen: HashMap<u128, i64>,
    order: VecDeque<(i64, u128)>,
    evicted: u64,
}

/// An `event_id` as 128 bits: the sensor's ids are 128-bit hex in the 8-4-4-4-12 layout;
/// anything else is hashed to 128 bits (fixed keys: the same id always maps alike).
fn key(id: &str) -> u128 {
    let hex: String = id.chars().filter(|c| *c != '-').collect();
    if hex.len() == 32 {
        if let Ok(v) = u128::from_str_radix(&hex, 16) {
            return v;
        }
    }
    let mut h = siphasher::sip128::SipHasher13::new_with_keys(0x7a6f_6e65, 0x7761_7463);
    h.write(id.as_bytes());
    siphasher::sip128::Hasher128::finish128(&h).as_u128()
}

impl Dedup {
    pub(crate) fn new(cfg: DedupConfig) -> Dedup {
        Dedup {
            cfg,
            seen: HashMap::new(),
            order: VecDeque::new(),
            evicted: 0,
        }
    }

    /// Records `id`; false when it was already seen within the horizon. An event older
    /// than the horizon (before `watermark - horizon`) is not remembered: an id that old
    /// could not be told from one already forgotten, so it is taken as new.
    pub(crate) fn insert(&mut self, id: &str, time_us: i64, watermark_us: i64) -> bool {
        let k = key(id);
        if self.seen.contains_key(&k) {
            return false;
        }
        if time_us < watermark_us.saturating_sub(self.horizon_us()) {
            return true;
        }
        if self.seen.len() >= self.cfg.max_entries {
            if let Some((_, old)) = self.order.pop_front() {
                self.seen.remove(&old);
                self.evicted += 1;
            }
        }
        self.seen.insert(k, time_us);
        self.order.push_back((time_us, k));
        true
    }

    fn horizon_us(&self) -> i64 {
        (self.cfg.horizon_secs as i64).saturating_mul(1_000_000)
    }

    /// Forgets ids whose event is older than the horizon. Arrival order is nearly time
    /// order; an id that arrived early with a late time is kept a little longer, never
    /// forgotten early.
    pub(crate) fn expire(&mut self, now_us: i64) {
        let limit = now_us.saturating_sub(self.horizon_us());
        while let Some(&(t, k)) = self.order.front() {
            if t >= limit {
                break;
            }
            self.order.pop_front();
            self.seen.remove(&k);
        }
    }

    pub(crate) fn evicted(&self) -> u64 {
        self.evicted
    }
}
