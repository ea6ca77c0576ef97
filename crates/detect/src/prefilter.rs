//! The multi-pattern prefilter: which rules' fast patterns occur in a
//! buffer. A q-gram filter in the manner of Suricata's old B2G/Wu-Manber
//! matchers: a bloom filter of the patterns' first four bytes (case-folded,
//! sized to stay in L1/L2) and, for the few patterns shorter than four
//! bytes, a table of raw 2-byte sequences reject almost every position,
//! eight positions per step; the few that pass are checked against
//! per-length 2-byte tables, then looked up by prefix in a hash table and
//! compared whole. With a thousand
//! patterns a full Aho-Corasick DFA is ~12 MiB and walks out of cache on
//! every byte; this was measured about twice as fast on the same input,
//! reporting exactly the same rules.
//!
//! The patterns themselves live in a [`Catalogue`]; a [`Filter`] holds the
//! bit tables of a subset of them. Signature groups (`groups.rs`) share
//! one catalogue and keep one filter each, so a pattern that a hundred
//! port groups hold is stored once.

use hashbrown::HashMap;

/// A rule's fast pattern as the prefilter takes it: (bytes, caseless, rule).
pub(crate) type RulePattern = (Vec<u8>, bool, u32);

/// ASCII lowercase table.
const fn lower_table() -> [u8; 256] {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = (i as u8).to_ascii_lowercase();
        i += 1;
    }
    t
}
static LOWER: [u8; 256] = lower_table();

/// The first four bytes as a little-endian word, each folded by `| 0x20`.
#[inline]
fn fold4(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]]) | 0x2020_2020
}

fn key(bytes: &[u8]) -> u32 {
    bytes
        .iter()
        .take(4)
        .fold(0u32, |k, &b| k << 8 | LOWER[b as usize] as u32)
}

/// Distinct fast patterns and the rules of each.
#[derive(Debug, Default)]
pub(crate) struct Catalogue {
    /// Pattern (lowercased when caseless) and whether it is caseless, by id.
    patterns: Vec<(Box<[u8]>, bool)>,
    /// Rules of each pattern, by id.
    rules: Vec<Vec<u32>>,
    /// Pattern ids by length class (1, 2, 3, 4+) and lowercased prefix key.
    by_key: [HashMap<u32, Vec<u32>>; 4],
}

impl Catalogue {
    /// Builds the catalogue from (pattern, caseless, rule) triples; also
    /// returns the pattern id of each triple (`None` for an empty pattern).
    pub(crate) fn build(items: &[RulePattern]) -> (Catalogue, Vec<Option<u32>>) {
        let mut c = Catalogue::default();
        let mut ids = Vec::with_capacity(items.len());
        let mut index: HashMap<(Box<[u8]>, bool), u32> = HashMap::new();
        for (pat, nocase, rule) in items {
            if pat.is_empty() {
                ids.push(None);
                continue;
            }
            let stored: Box<[u8]> = if *nocase {
                pat.to_ascii_lowercase().into()
            } else {
                pat.clone().into()
            };
            let id = *index.entry((stored.clone(), *nocase)).or_insert_with(|| {
                let id = c.patterns.len() as u32;
                c.by_key[pat.len().min(4) - 1]
                    .entry(key(pat))
                    .or_default()
                    .push(id);
                c.patterns.push((stored, *nocase));
                c.rules.push(Vec::new());
                id
            });
            c.rules[id as usize].push(*rule);
            ids.push(Some(id));
        }
        (c, ids)
    }

    /// Distinct patterns.
    pub(crate) fn len(&self) -> usize {
        self.patterns.len()
    }

    /// The rules of a pattern.
    #[inline]
    pub(crate) fn rules(&self, id: u32) -> &[u32] {
        &self.rules[id as usize]
    }

    /// The length of a pattern.
    #[inline]
    pub(crate) fn pattern_len(&self, id: u32) -> usize {
        self.patterns[id as usize].0.len()
    }

    #[inline]
    fn matches_at(&self, id: u32, buf: &[u8], i: usize) -> bool {
        let (pattern, nocase) = &self.patterns[id as usize];
        let Some(s) = buf.get(i..i + pattern.len()) else {
            return false;
        };
        if *nocase {
            s.iter()
                .zip(pattern.iter())
                .all(|(a, b)| LOWER[*a as usize] == *b)
        } else {
            s == &pattern[..]
        }
    }
}

/// The scanning tables of a subset of a catalogue's patterns.
#[derive(Debug, Default)]
pub(crate) struct Filter {
    /// Patterns of 1 to 3 bytes: bit per raw 2-byte sequence (first byte
    /// in the low 8 bits) that can start one (every case variant of a
    /// caseless pattern's first two bytes, the exact bytes of a
    /// case-sensitive one, every pair starting with a 1-byte pattern).
    raw_short: Vec<u64>,
    has_short: bool,
    /// Bit per lowercased 2-byte prefix, per length class (2, 3, 4+ bytes).
    bigram_class: [Vec<u64>; 3],
    /// Patterns of 4+ bytes: bloom bit per hash of the first four bytes
    /// folded by `| 0x20` (folding maps both cases of a letter, and the
    /// data and the pattern alike, so no occurrence is missed; it only
    /// merges a few non-letters). Sized to the patterns (~0.7 % false
    /// positives). With the short table it is the scan loop's only test.
    quad: Vec<u64>,
    quad_shift: u32,
    /// Bit per lowercased byte of 1-byte patterns.
    single: Vec<u64>,
    has_single: bool,
    /// Bit per pattern id of the catalogue that belongs here.
    member: Vec<u64>,
    patterns: usize,
    max_len: usize,
}

impl Filter {
    /// The filter of the catalogue's patterns `ids`.
    pub(crate) fn build(cat: &Catalogue, ids: impl IntoIterator<Item = u32>) -> Filter {
        let mut ids: Vec<u32> = ids.into_iter().collect();
        ids.sort_unstable();
        ids.dedup();
        let quad_bits = (ids.len() * 128)
            .next_power_of_two()
            .clamp(1 << 12, 1 << 19);
        let mut f = Filter {
            raw_short: vec![0u64; 65536 / 64],
            bigram_class: std::array::from_fn(|_| vec![0u64; 65536 / 64]),
            quad: vec![0u64; quad_bits / 64],
            quad_shift: 32 - quad_bits.trailing_zeros(),
            single: vec![0u64; 4],
            member: vec![0u64; cat.len().div_ceil(64)],
            patterns: ids.len(),
            ..Default::default()
        };
        for &id in &ids {
            let (pat, nocase) = &cat.patterns[id as usize];
            f.member[id as usize / 64] |= 1 << (id % 64);
            f.max_len = f.max_len.max(pat.len());
            let variants = |b: u8| -> Vec<u8> {
                if *nocase && b.is_ascii_alphabetic() {
                    vec![b.to_ascii_lowercase(), b.to_ascii_uppercase()]
                } else {
                    vec![b]
                }
            };
            let short = pat.len() < 4;
            f.has_short |= short;
            let mut set_raw = |first: u8, second: u8| {
                let b = first as usize | (second as usize) << 8;
                f.raw_short[b / 64] |= 1 << (b % 64);
            };
            if pat.len() == 1 {
                let b = LOWER[pat[0] as usize] as usize;
                f.single[b / 64] |= 1 << (b % 64);
                f.has_single = true;
                for first in variants(pat[0]) {
                    for second in 0..=255u8 {
                        set_raw(first, second);
                    }
                }
                continue;
            }
            if short {
                for first in variants(pat[0]) {
                    for second in variants(pat[1]) {
                        set_raw(first, second);
                    }
                }
            }
            let class = pat.len().min(4) - 1;
            let b = (LOWER[pat[0] as usize] as usize) << 8 | LOWER[pat[1] as usize] as usize;
            f.bigram_class[class - 1][b / 64] |= 1 << (b % 64);
            if class == 3 {
                let q = f.quad_slot(fold4(pat));
                f.quad[q / 64] |= 1 << (q % 64);
            }
        }
        f
    }

    #[inline]
    fn quad_slot(&self, folded: u32) -> usize {
        (folded.wrapping_mul(0x9E37_79B1) >> self.quad_shift) as usize
    }

    /// Patterns here.
    pub(crate) fn len(&self) -> usize {
        self.patterns
    }

    /// Length of the longest pattern here.
    pub(crate) fn max_len(&self) -> usize {
        self.max_len
    }

    /// Whether the catalogue's pattern `id` is here.
    #[cfg(test)]
    pub(crate) fn has(&self, id: u32) -> bool {
        self.member[id as usize / 64] & (1 << (id % 64)) != 0
    }

    /// Calls `hit(pattern id, start)` for every occurrence in `buf` of a
    /// pattern here, in order of position.
    pub(crate) fn scan_at(&self, cat: &Catalogue, buf: &[u8], mut hit: impl FnMut(u32, usize)) {
        if self.patterns == 0 {
            return;
        }
        let n = buf.len();
        if n == 0 {
            return;
        }
        let (short, quad, shift) = (&self.raw_short[..], &self.quad[..], self.quad_shift);
        // Can a pattern of 4+ bytes start at w[k]? (needs w[k..k + 4])
        let long_at = |w: &[u8], k: usize| -> u64 {
            let q = (fold4(&w[k..k + 4]).wrapping_mul(0x9E37_79B1) >> shift) as usize;
            (quad[q >> 6] >> (q & 63)) & 1
        };
        // Can a pattern of 1 to 3 bytes start at w[k]? (needs w[k + 1])
        let short_at = |w: &[u8], k: usize| -> u64 {
            let bg = w[k] as usize | (w[k + 1] as usize) << 8;
            (short[bg >> 6] >> (bg & 63)) & 1
        };
        let mut i = 0;
        // Eight positions at a time (the last one's test reads three bytes
        // further): almost every block has no candidate position at all.
        // Without short patterns (most groups) one table is tested.
        if self.has_short {
            while i + 11 <= n {
                let w = &buf[i..i + 11];
                let mut m = 0u64;
                for k in 0..8 {
                    m |= (long_at(w, k) | short_at(w, k)) << k;
                }
                self.block(cat, buf, i, m, &mut hit);
                i += 8;
            }
        } else {
            while i + 11 <= n {
                let w = &buf[i..i + 11];
                let mut m = 0u64;
                for k in 0..8 {
                    m |= long_at(w, k) << k;
                }
                self.block(cat, buf, i, m, &mut hit);
                i += 8;
            }
        }
        while i + 1 < n {
            let pass = if i + 4 <= n { long_at(buf, i) } else { 0 } | short_at(buf, i);
            if pass != 0 {
                self.at(cat, buf, i, &mut hit);
            }
            i += 1;
        }
        // Only a 1-byte pattern can start at the last byte.
        if self.is_single(buf[n - 1]) {
            self.check(cat, 0, buf, n - 1, &mut hit);
        }
    }

    /// The positions of block `i..i + 8` whose bits are set in `m`.
    #[inline]
    fn block(
        &self,
        cat: &Catalogue,
        buf: &[u8],
        i: usize,
        mut m: u64,
        hit: &mut impl FnMut(u32, usize),
    ) {
        while m != 0 {
            let k = m.trailing_zeros() as usize;
            m &= m - 1;
            self.at(cat, buf, i + k, hit);
        }
    }

    #[inline]
    fn is_single(&self, b: u8) -> bool {
        let b = LOWER[b as usize] as usize;
        self.has_single && self.single[b / 64] & (1 << (b % 64)) != 0
    }

    /// The patterns that may start at `i` (not the last byte), whose raw
    /// 2-byte sequence passed the filter.
    #[inline]
    fn at(&self, cat: &Catalogue, buf: &[u8], i: usize, hit: &mut impl FnMut(u32, usize)) {
        let n = buf.len();
        if self.is_single(buf[i]) {
            self.check(cat, 0, buf, i, hit);
        }
        let bg = (LOWER[buf[i] as usize] as usize) << 8 | LOWER[buf[i + 1] as usize] as usize;
        for class in 1..4 {
            if i + class < n && self.bigram_class[class - 1][bg >> 6] & (1 << (bg & 63)) != 0 {
                if class == 3 {
                    let q = self.quad_slot(fold4(&buf[i..i + 4]));
                    if self.quad[q >> 6] & (1 << (q & 63)) == 0 {
                        continue;
                    }
                }
                self.check(cat, class, buf, i, hit);
            }
        }
    }

    #[inline]
    fn check(
        &self,
        cat: &Catalogue,
        class: usize,
        buf: &[u8],
        i: usize,
        hit: &mut impl FnMut(u32, usize),
    ) {
        let k = key(&buf[i..(i + class + 1).min(buf.len())]);
        if let Some(list) = cat.by_key[class].get(&k) {
            for &id in list {
                if self.member[id as usize / 64] & (1 << (id % 64)) != 0
                    && cat.matches_at(id, buf, i)
                {
                    hit(id, i);
                }
            }
        }
    }
}

/// A catalogue with one filter over all of it: the prefilter of one
/// transaction buffer.
#[derive(Debug, Default)]
pub(crate) struct Prefilter {
    cat: Catalogue,
    filter: Filter,
}

impl Prefilter {
    /// Builds the prefilter from (pattern, caseless, rule) triples.
    pub(crate) fn build(items: &[RulePattern]) -> Prefilter {
        let (cat, _) = Catalogue::build(items);
        let filter = Filter::build(&cat, 0..cat.len() as u32);
        Prefilter { cat, filter }
    }

    /// Distinct patterns.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.cat.len()
    }

    /// The rules of a pattern id reported by [`Prefilter::scan_at`].
    #[inline]
    #[cfg(test)]
    pub(crate) fn rules(&self, id: u32) -> &[u32] {
        self.cat.rules(id)
    }

    /// Calls `hit` with the rules of every pattern that occurs in `buf`
    /// (a rule may be reported more than once).
    pub(crate) fn scan(&self, buf: &[u8], mut hit: impl FnMut(&[u32])) {
        self.filter
            .scan_at(&self.cat, buf, |id, _| hit(self.cat.rules(id)));
    }

    /// Calls `hit(pattern id, start)` for every occurrence of a pattern in
    /// `buf`.
    #[cfg(test)]
    pub(crate) fn scan_at(&self, buf: &[u8], hit: impl FnMut(u32, usize)) {
        self.filter.scan_at(&self.cat, buf, hit);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(p: &Prefilter, buf: &[u8]) -> Vec<u32> {
        let mut v = Vec::new();
        p.scan(buf, |r| v.extend_from_slice(r));
        v.sort_unstable();
        v.dedup();
        v
    }

    #[test]
    fn reports_every_pattern_that_occurs_and_no_other() {
        let items = vec![
            (b"GET ".to_vec(), false, 0),
            (b"get /admin".to_vec(), true, 1),
            (b"\x00".to_vec(), false, 2),
            (b"ab".to_vec(), false, 3),
            (b"abc".to_vec(), false, 4),
            (b"bcd".to_vec(), false, 5),
            (b"GET ".to_vec(), false, 6),
        ];
        let p = Prefilter::build(&items);
        assert_eq!(p.len(), 6);
        assert_eq!(found(&p, b"GET /ADMIN"), vec![0, 1, 6]);
        assert_eq!(found(&p, b"get /x"), Vec::<u32>::new());
        // Overlapping occurrences are all reported.
        assert_eq!(found(&p, b"abcd"), vec![3, 4, 5]);
        assert_eq!(found(&p, b"x\x00"), vec![2]);
        assert_eq!(found(&p, b""), Vec::<u32>::new());
        // A pattern at the very end of the buffer.
        assert_eq!(found(&p, b"zzab"), vec![3]);
    }

    /// Every (pattern, position) the scan reports against a brute-force
    /// search, on random patterns (1 to 6 bytes, mixed case, caseless or
    /// not) and random buffers over a small alphabet, so that occurrences,
    /// overlaps and buffer ends are frequent.
    #[test]
    fn scan_at_reports_exactly_the_occurrences_a_brute_force_search_finds() {
        let mut next = crate::test_rng(0x2545_f491_4f6c_dd1du64);
        let alphabet = b"aAbB\x00\xff-";
        for round in 0..1000 {
            let count = 1 + next(12) as usize;
            let items: Vec<(Vec<u8>, bool, u32)> = (0..count)
                .map(|r| {
                    let len = 1 + next(6) as usize;
                    let pat = (0..len)
                        .map(|_| alphabet[next(alphabet.len() as u64) as usize])
                        .collect();
                    (pat, next(2) == 0, r as u32)
                })
                .collect();
            let p = Prefilter::build(&items);
            let len = next(100) as usize;
            let buf: Vec<u8> = (0..len)
                .map(|_| alphabet[next(alphabet.len() as u64) as usize])
                .collect();
            let mut got: Vec<(u32, usize)> = Vec::new();
            p.scan_at(&buf, |id, at| {
                for &r in p.rules(id) {
                    got.push((r, at));
                }
            });
            got.sort_unstable();
            let mut want: Vec<(u32, usize)> = Vec::new();
            for (pat, nocase, r) in &items {
                for at in 0..buf.len() {
                    let Some(s) = buf.get(at..at + pat.len()) else {
                        continue;
                    };
                    let eq = if *nocase {
                        s.eq_ignore_ascii_case(pat)
                    } else {
                        s == &pat[..]
                    };
                    if eq {
                        want.push((*r, at));
                    }
                }
            }
            want.sort_unstable();
            assert_eq!(got, want, "round {round}: {items:?} in {buf:?}");
        }
    }
}
