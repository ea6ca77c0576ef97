//! A bounded hash table: every detector keeps its state in one.
//!
//! - at most `cap` entries; at the cap the least recently seen of a sample of 16 entries is
//!   evicted (approximate LRU, as the flow table does) and counted;
//! - entries idle longer than `idle_ns` are removed by [`Table::expire`] (run from ticks);
//! - the hasher is seeded SipHash: iteration order is the same on every run (eviction
//!   choices are deterministic) but not guessable without the seed. Nothing is ever output
//!   in iteration order: sweeps that emit alerts sort first.

use std::collections::hash_map::{DefaultHasher, Entry};
use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, Hasher};

/// Seeded SipHash (std's `DefaultHasher` with the seed written first).
#[derive(Debug, Clone, Copy, Default)]
pub struct SeededState(pub u64);

impl BuildHasher for SeededState {
    type Hasher = DefaultHasher;
    fn build_hasher(&self) -> DefaultHasher {
        let mut h = DefaultHasher::new();
        h.write_u64(self.0);
        h
    }
}

/// Hashes any value with a seed (for sketches and keys of names).
pub fn hash64<T: Hash + ?Sized>(seed: u64, v: &T) -> u64 {
    SeededState(seed).hash_one(v)
}

/// Counters of one table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TableCounters {
    /// Entries created.
    pub inserts: u64,
    /// Entries evicted at the cap.
    pub evictions: u64,
    /// Entries removed after being idle.
    pub expired: u64,
    /// Highest number of entries held.
    pub peak: u64,
}

struct Slot<V> {
    last: i64,
    value: V,
}

/// A bounded map from `K` to `V` with last-seen times.
pub struct Table<K, V> {
    map: HashMap<K, Slot<V>, SeededState>,
    cap: usize,
    idle_ns: i64,
    /// Counters.
    pub counters: TableCounters,
}

impl<K: Hash + Eq + Copy, V> Table<K, V> {
    /// A table of at most `cap` (≥ 1) entries, expiring entries idle for `idle_secs`.
    pub fn new(cap: usize, idle_secs: u64, seed: u64) -> Self {
        Table {
            map: HashMap::with_hasher(SeededState(seed)),
            cap: cap.max(1),
            idle_ns: (idle_secs as i64).saturating_mul(1_000_000_000),
            counters: TableCounters::default(),
        }
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The cap.
    pub fn cap(&self) -> usize {
        self.cap
    }

    /// Approximate bytes held (entries × (key + value + slot overhead)).
    pub fn approx_bytes(&self) -> usize {
        self.map.capacity() * (std::mem::size_of::<K>() + std::mem::size_of::<Slot<V>>() + 8)
    }

    /// The entry for `k` if present, marking it seen at `now`.
    pub fn get_mut(&mut self, k: &K, now: i64) -> Option<&mut V> {
        self.map.get_mut(k).map(|s| {
            s.last = s.last.max(now);
            &mut s.value
        })
    }

    /// The entry for `k`, created with `make` (evicting one entry at the cap).
    pub fn entry(&mut self, k: K, now: i64, make: impl FnOnce() -> V) -> &mut V {
        // Only at the cap does a second lookup happen (to know whether `k` is new).
        if self.map.len() >= self.cap && !self.map.contains_key(&k) {
            self.evict_one();
        }
        let len_before = self.map.len() as u64;
        let counters = &mut self.counters;
        let slot = match self.map.entry(k) {
            Entry::Occupied(o) => o.into_mut(),
            Entry::Vacant(v) => {
                counters.inserts += 1;
                counters.peak = counters.peak.max(len_before + 1);
                v.insert(Slot {
                    last: now,
                    value: make(),
                })
            }
        };
        slot.last = slot.last.max(now);
        &mut slot.value
    }

    fn evict_one(&mut self) {
        let victim = self
            .map
            .iter()
            .take(16)
            .min_by_key(|(_, s)| s.last)
            .map(|(k, _)| *k);
        if let Some(k) = victim {
            self.map.remove(&k);
            self.counters.evictions += 1;
        }
    }

    /// Removes entries idle at `now`; returns how many.
    pub fn expire(&mut self, now: i64) -> usize {
        let before = self.map.len();
        let idle = self.idle_ns;
        self.map.retain(|_, s| now.saturating_sub(s.last) < idle);
        let n = before - self.map.len();
        self.counters.expired += n as u64;
        n
    }

    /// All entries (unspecified order: sort before output).
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (&K, &mut V)> {
        self.map.iter_mut().map(|(k, s)| (k, &mut s.value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cap_evicts_and_counts_and_expiry_removes_idle() {
        let mut t: Table<u32, u32> = Table::new(100, 10, 1);
        for i in 0..1000u32 {
            *t.entry(i, i as i64, || 0) += 1;
        }
        assert_eq!(t.len(), 100);
        assert_eq!(t.counters.inserts, 1000);
        assert_eq!(t.counters.evictions, 900);
        assert_eq!(t.counters.peak, 100);
        // The most recent key survived: eviction prefers old entries.
        assert!(t.get_mut(&999, 1000).is_some());
        let removed = t.expire(999 + 10_000_000_000);
        assert_eq!(
            removed, 99,
            "all but the entry touched at 1000 ns... are idle"
        );
    }
}
