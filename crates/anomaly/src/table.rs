//! A bounded hash table: every detector keeps its state in one.
//!
//! - at most `cap` entries; at the cap the least recently seen of a sample of
//!   [`EVICT_SAMPLE`] entries is evicted (approximate LRU, as the flow table does) and
//!   counted. The sample is taken at a cursor that moves on by the sample size after each
//!   eviction, so every entry is looked at in turn (a fixed sample would keep looking at the
//!   same few entries and evict the newest ones);
//! - entries idle longer than `idle_ns` are removed by [`Table::expire`] (run from ticks);
//! - entries are kept in insertion order (an eviction or expiry moves the last entry into
//!   the hole), so eviction choices and iteration order depend only on the observations,
//!   never on hash values. Keys are hashed with SipHash-1-3 keyed by the detector's seed,
//!   as the flow table hashes flow ids: not guessable without the seed. Nothing is ever
//!   output in iteration order: sweeps that emit alerts sort first.

use std::hash::{BuildHasher, Hash, Hasher};

use indexmap::map::Entry;
use indexmap::IndexMap;
use siphasher::sip::SipHasher13;

/// How many entries eviction samples when the table is full (approximate LRU).
pub const EVICT_SAMPLE: usize = 16;

/// Second SipHash key of the tables (the first is the detector's seed).
const TABLE_KEY: u64 = 0x7a77_616e_6f6d;

/// SipHash-1-3 keyed with a detector's seed: the hasher of the state tables.
#[derive(Debug, Clone, Copy, Default)]
pub struct SeededState(pub u64);

impl BuildHasher for SeededState {
    type Hasher = SipHasher13;
    fn build_hasher(&self) -> SipHasher13 {
        SipHasher13::new_with_keys(self.0, TABLE_KEY)
    }
}

/// A hasher for sketch items and keys of names: SipHash-1-3 over the seed and then the
/// value. These hashes pick the bits of distinct counters, so they decide evidence counts:
/// the algorithm is pinned here (not std's `DefaultHasher`, which may change between Rust
/// releases) and gives the values std's SipHash-1-3 gave, so counts stay as they were.
pub fn seeded_hasher(seed: u64) -> SipHasher13 {
    let mut h = SipHasher13::new_with_keys(0, 0);
    h.write_u64(seed);
    h
}

/// Hashes any value with a seed (for sketches and keys of names), see [`seeded_hasher`].
pub fn hash64<T: Hash + ?Sized>(seed: u64, v: &T) -> u64 {
    let mut h = seeded_hasher(seed);
    v.hash(&mut h);
    h.finish()
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

/// What a table holds and has done, for the `anomaly.<detector>.*` counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TableStats {
    /// Entries held.
    pub entries: usize,
    /// The cap on entries.
    pub cap: usize,
    /// Counters so far.
    pub counters: TableCounters,
    /// Approximate bytes held.
    pub bytes: usize,
}

struct Slot<V> {
    last: i64,
    value: V,
}

/// A bounded map from `K` to `V` with last-seen times.
pub struct Table<K, V> {
    map: IndexMap<K, Slot<V>, SeededState>,
    cap: usize,
    idle_ns: i64,
    /// Where the next eviction sample starts (an entry position).
    evict_cursor: usize,
    /// Counters.
    pub counters: TableCounters,
}

impl<K: Hash + Eq + Copy, V> Table<K, V> {
    /// A table of at most `cap` (≥ 1) entries, expiring entries idle for `idle_secs`.
    pub fn new(cap: usize, idle_secs: u64, seed: u64) -> Self {
        Table {
            map: IndexMap::with_hasher(SeededState(seed)),
            cap: cap.max(1),
            idle_ns: (idle_secs as i64).saturating_mul(1_000_000_000),
            evict_cursor: 0,
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

    /// Entries, cap, counters and approximate bytes.
    pub fn stats(&self) -> TableStats {
        TableStats {
            entries: self.len(),
            cap: self.cap,
            counters: self.counters,
            bytes: self.approx_bytes(),
        }
    }

    /// The entry for `k` if present, marking it seen at `now`.
    pub fn get_mut(&mut self, k: &K, now: i64) -> Option<&mut V> {
        self.map.get_mut(k).map(|s| {
            s.last = s.last.max(now);
            &mut s.value
        })
    }

    /// The entry for `k` if present, without marking it seen.
    pub fn peek(&self, k: &K) -> Option<&V> {
        self.map.get(k).map(|s| &s.value)
    }

    /// Removes the entry for `k` (not counted as eviction or expiry).
    pub fn remove(&mut self, k: &K) -> Option<V> {
        self.map.swap_remove(k).map(|s| s.value)
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

    /// Evicts the least recently seen of [`EVICT_SAMPLE`] entries from the cursor on (the
    /// first of them on a tie), and moves the cursor past the sample.
    fn evict_one(&mut self) {
        let n = self.map.len();
        if n == 0 {
            return;
        }
        let start = self.evict_cursor % n;
        let victim = (0..EVICT_SAMPLE.min(n))
            .map(|i| (start + i) % n)
            .min_by_key(|&i| self.map[i].last);
        self.evict_cursor = (start + EVICT_SAMPLE) % n;
        if let Some(i) = victim {
            self.map.swap_remove_index(i);
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

    #[test]
    fn eviction_sample_moves_on_so_old_entries_go_first() {
        // 64 entries seen at 0..64, then 64 new keys at the cap: with a sample that moves,
        // every eviction takes one of the old entries, never a new one.
        let mut t: Table<u32, ()> = Table::new(64, 1_000, 7);
        for i in 0..64u32 {
            t.entry(i, i as i64, || ());
        }
        for i in 0..64u32 {
            t.entry(1000 + i, 1000 + i as i64, || ());
        }
        assert_eq!(t.counters.evictions, 64);
        let kept = (0..64u32)
            .filter(|i| t.get_mut(&(1000 + i), 5000).is_some())
            .count();
        assert!(kept >= 60, "new entries were evicted: {kept} of 64 kept");
    }

    #[test]
    fn sketch_hashes_are_pinned() {
        // The values std's SipHash-1-3 (`DefaultHasher`) gave: distinct counters, and so
        // evidence counts, do not change with the hasher's crate or a Rust release.
        assert_eq!(hash64(3, &7u32), 0x830d_8cf5_db5d_8160);
        assert_eq!(hash64(0xd0, "example.com"), 0x0d3d_56ff_507b_f6ff);
    }
}
