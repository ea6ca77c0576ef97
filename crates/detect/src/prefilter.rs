//! The multi-pattern prefilter: which rules' fast patterns occur in a
//! buffer. A q-gram filter in the manner of Suricata's old B2G/Wu-Manber
//! matchers: a 2-byte bitmap (8 KiB, stays in L1) rejects almost every
//! position with one lookup; the few that pass look up the 4-byte prefix in
//! a hash table and compare the whole pattern. With a thousand patterns a
//! full Aho-Corasick DFA is ~12 MiB and walks out of cache on every byte;
//! this is several times faster on the same input (see benches/signatures.rs,
//! `ZW_PREFILTER=ac` to compare) and reports exactly the same rules.

use hashbrown::HashMap;

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

#[derive(Debug)]
struct Entry {
    /// The whole pattern (lowercased when caseless).
    pattern: Box<[u8]>,
    nocase: bool,
    /// Index into `Prefilter::rules`.
    id: u32,
}

impl Entry {
    fn matches_at(&self, buf: &[u8], i: usize) -> bool {
        let Some(s) = buf.get(i..i + self.pattern.len()) else {
            return false;
        };
        if self.nocase {
            s.iter()
                .zip(self.pattern.iter())
                .all(|(a, b)| LOWER[*a as usize] == *b)
        } else {
            s == &*self.pattern
        }
    }
}

/// Fast patterns of all rules, compiled for scanning.
#[derive(Debug, Default)]
pub(crate) struct Prefilter {
    /// Bit per raw 2-byte sequence (first byte in the low 8 bits) that can
    /// start an occurrence: every case variant of a caseless pattern's
    /// first two bytes, the exact bytes of a case-sensitive one, and every
    /// pair starting with a 1-byte pattern. The scan loop tests only this.
    raw_bigram: Vec<u64>,
    has_single: bool,
    /// The same per length class (2, 3, 4+ bytes).
    bigram_class: [Vec<u64>; 3],
    /// Bloom bit per hashed lowercased 4-byte prefix of 4+ byte patterns.
    quad: Vec<u64>,
    /// Bit per lowercased byte of 1-byte patterns.
    single: Vec<bool>,
    /// Patterns by length class (1, 2, 3, 4+) and lowercased prefix key.
    by_key: [HashMap<u32, Vec<Entry>>; 4],
    /// Rules of each distinct pattern, by pattern id.
    rules: Vec<Vec<u32>>,
    /// Lengths of the distinct patterns, by pattern id.
    lens: Vec<u32>,
    /// Length of the longest pattern.
    max_len: usize,
}

/// Bits of the 4-byte bloom filter (32 KiB).
const QUAD_BITS: usize = 1 << 18;

fn quad_slot(k: u32) -> usize {
    (k.wrapping_mul(0x9E37_79B1) >> (32 - 18)) as usize
}

fn key(bytes: &[u8]) -> u32 {
    bytes
        .iter()
        .take(4)
        .fold(0u32, |k, &b| k << 8 | LOWER[b as usize] as u32)
}

impl Prefilter {
    /// Builds the filter from (pattern, caseless, rule) triples.
    pub(crate) fn build(items: &[(Vec<u8>, bool, u32)]) -> Prefilter {
        let mut p = Prefilter {
            raw_bigram: vec![0u64; 65536 / 64],
            bigram_class: std::array::from_fn(|_| vec![0u64; 65536 / 64]),
            quad: vec![0u64; QUAD_BITS / 64],
            single: vec![false; 256],
            ..Default::default()
        };
        for (pat, nocase, rule) in items {
            if pat.is_empty() {
                continue;
            }
            let class = pat.len().min(4) - 1;
            let variants = |b: u8| -> Vec<u8> {
                if *nocase && b.is_ascii_alphabetic() {
                    vec![b.to_ascii_lowercase(), b.to_ascii_uppercase()]
                } else {
                    vec![b]
                }
            };
            let mut set_raw = |first: u8, second: u8| {
                let b = first as usize | (second as usize) << 8;
                p.raw_bigram[b / 64] |= 1 << (b % 64);
            };
            if pat.len() == 1 {
                p.single[LOWER[pat[0] as usize] as usize] = true;
                p.has_single = true;
                for f in variants(pat[0]) {
                    for second in 0..=255u8 {
                        set_raw(f, second);
                    }
                }
            } else {
                for f in variants(pat[0]) {
                    for second in variants(pat[1]) {
                        set_raw(f, second);
                    }
                }
                let b = (LOWER[pat[0] as usize] as usize) << 8 | LOWER[pat[1] as usize] as usize;
                p.bigram_class[class - 1][b / 64] |= 1 << (b % 64);
                if class == 3 {
                    let q = quad_slot(key(pat));
                    p.quad[q / 64] |= 1 << (q % 64);
                }
            }
            let stored: Box<[u8]> = if *nocase {
                pat.to_ascii_lowercase().into()
            } else {
                pat.clone().into()
            };
            let list = p.by_key[class].entry(key(pat)).or_default();
            match list
                .iter_mut()
                .find(|e| e.pattern == stored && e.nocase == *nocase)
            {
                Some(e) => p.rules[e.id as usize].push(*rule),
                None => {
                    let id = p.rules.len() as u32;
                    p.rules.push(vec![*rule]);
                    p.lens.push(pat.len() as u32);
                    p.max_len = p.max_len.max(pat.len());
                    list.push(Entry {
                        pattern: stored,
                        nocase: *nocase,
                        id,
                    })
                }
            }
        }
        p
    }

    /// Distinct patterns.
    pub(crate) fn len(&self) -> usize {
        self.rules.len()
    }

    /// Length of the longest pattern.
    pub(crate) fn max_len(&self) -> usize {
        self.max_len
    }

    /// The rules of a pattern id reported by [`Prefilter::scan_at`].
    #[inline]
    pub(crate) fn rules(&self, id: u32) -> &[u32] {
        &self.rules[id as usize]
    }

    /// The length of a pattern.
    #[inline]
    pub(crate) fn pattern_len(&self, id: u32) -> usize {
        self.lens[id as usize] as usize
    }

    /// Every rule with a pattern here.
    #[cfg(test)]
    pub(crate) fn all_rules(&self) -> impl Iterator<Item = u32> + '_ {
        self.rules.iter().flatten().copied()
    }

    /// Calls `hit` with the rules of every pattern that occurs in `buf`
    /// (a rule may be reported more than once).
    pub(crate) fn scan(&self, buf: &[u8], mut hit: impl FnMut(&[u32])) {
        self.scan_at(buf, |id, _| hit(&self.rules[id as usize]));
    }

    /// Calls `hit(pattern id, start)` for every occurrence of a pattern in
    /// `buf`.
    pub(crate) fn scan_at(&self, buf: &[u8], mut hit: impl FnMut(u32, usize)) {
        if self.rules.is_empty() {
            return;
        }
        let n = buf.len();
        if n == 0 {
            return;
        }
        let raw = &self.raw_bigram[..];
        let test = |w: &[u8], k: usize| -> u64 {
            let bg = w[k] as usize | (w[k + 1] as usize) << 8;
            (raw[bg >> 6] >> (bg & 63)) & 1
        };
        let mut i = 0;
        // Eight positions at a time (each test needs the next byte too):
        // almost every block has no candidate position at all.
        while i + 8 < n {
            let w = &buf[i..i + 9];
            let mut m = 0u64;
            for k in 0..8 {
                m |= test(w, k) << k;
            }
            while m != 0 {
                let k = m.trailing_zeros() as usize;
                m &= m - 1;
                self.at(buf, i + k, &mut hit);
            }
            i += 8;
        }
        while i + 1 < n {
            if test(buf, i) != 0 {
                self.at(buf, i, &mut hit);
            }
            i += 1;
        }
        // Only a 1-byte pattern can start at the last byte.
        if self.has_single && self.single[LOWER[buf[n - 1] as usize] as usize] {
            self.check(0, buf, n - 1, &mut hit);
        }
    }

    /// The patterns that may start at `i` (not the last byte), whose raw
    /// 2-byte sequence passed the filter.
    #[inline]
    fn at(&self, buf: &[u8], i: usize, hit: &mut impl FnMut(u32, usize)) {
        let n = buf.len();
        let b0 = LOWER[buf[i] as usize];
        if self.has_single && self.single[b0 as usize] {
            self.check(0, buf, i, hit);
        }
        let bg = (b0 as usize) << 8 | LOWER[buf[i + 1] as usize] as usize;
        for class in 1..4 {
            if i + class < n && self.bigram_class[class - 1][bg >> 6] & (1 << (bg & 63)) != 0 {
                if class == 3 {
                    let q = quad_slot(key(&buf[i..i + 4]));
                    if self.quad[q >> 6] & (1 << (q & 63)) == 0 {
                        continue;
                    }
                }
                self.check(class, buf, i, hit);
            }
        }
    }

    #[inline]
    fn check(&self, class: usize, buf: &[u8], i: usize, hit: &mut impl FnMut(u32, usize)) {
        let map = &self.by_key[class];
        if map.is_empty() {
            return;
        }
        let k = key(&buf[i..(i + class + 1).min(buf.len())]);
        if let Some(list) = map.get(&k) {
            for e in list {
                if e.matches_at(buf, i) {
                    hit(e.id, i);
                }
            }
        }
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
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let alphabet = b"aAbB\x00\xff-";
        for round in 0..200 {
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
            let len = next(40) as usize;
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
