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
    rules: Vec<u32>,
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
    /// Bit per lowercased 2-byte prefix of patterns of 2+ bytes.
    bigram: Vec<u64>,
    /// The same per length class (2, 3, 4+ bytes).
    bigram_class: [Vec<u64>; 3],
    /// Bloom bit per hashed lowercased 4-byte prefix of 4+ byte patterns.
    quad: Vec<u64>,
    /// Bit per lowercased byte of 1-byte patterns.
    single: Vec<bool>,
    /// Patterns by length class (1, 2, 3, 4+) and lowercased prefix key.
    by_key: [HashMap<u32, Vec<Entry>>; 4],
    patterns: usize,
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
            bigram: vec![0u64; 65536 / 64],
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
            if pat.len() == 1 {
                p.single[LOWER[pat[0] as usize] as usize] = true;
            } else {
                let b = (LOWER[pat[0] as usize] as usize) << 8 | LOWER[pat[1] as usize] as usize;
                p.bigram[b / 64] |= 1 << (b % 64);
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
                Some(e) => e.rules.push(*rule),
                None => {
                    p.patterns += 1;
                    list.push(Entry {
                        pattern: stored,
                        nocase: *nocase,
                        rules: vec![*rule],
                    })
                }
            }
        }
        p
    }

    /// Distinct patterns.
    pub(crate) fn len(&self) -> usize {
        self.patterns
    }

    /// Calls `hit` with the rules of every pattern that occurs in `buf`
    /// (a rule may be reported more than once).
    pub(crate) fn scan(&self, buf: &[u8], mut hit: impl FnMut(&[u32])) {
        if self.patterns == 0 || self.single.is_empty() {
            return;
        }
        let n = buf.len();
        if n == 0 {
            return;
        }
        let has_single = !self.by_key[0].is_empty();
        let bigram = &self.bigram[..];
        let mut b0 = LOWER[buf[0] as usize];
        for i in 0..n {
            if has_single && self.single[b0 as usize] {
                self.check(0, buf, i, &mut hit);
            }
            let Some(&next) = buf.get(i + 1) else {
                break;
            };
            let b1 = LOWER[next as usize];
            let bg = (b0 as usize) << 8 | b1 as usize;
            b0 = b1;
            // Almost every position stops here: one bit of an 8 KiB table.
            if bigram[bg >> 6] & (1 << (bg & 63)) == 0 {
                continue;
            }
            for class in 1..4 {
                if i + class < n && self.bigram_class[class - 1][bg >> 6] & (1 << (bg & 63)) != 0 {
                    if class == 3 {
                        let q = quad_slot(key(&buf[i..i + 4]));
                        if self.quad[q >> 6] & (1 << (q & 63)) == 0 {
                            continue;
                        }
                    }
                    self.check(class, buf, i, &mut hit);
                }
            }
        }
    }

    #[inline]
    fn check(&self, class: usize, buf: &[u8], i: usize, hit: &mut impl FnMut(&[u32])) {
        let map = &self.by_key[class];
        if map.is_empty() {
            return;
        }
        let k = key(&buf[i..(i + class + 1).min(buf.len())]);
        if let Some(list) = map.get(&k) {
            for e in list {
                if e.matches_at(buf, i) {
                    hit(&e.rules);
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
}
