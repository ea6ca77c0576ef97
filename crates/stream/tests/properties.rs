//! Property tests of reassembly through the public API.
//!
//! Set-up common to all properties: a session completes a 3-way handshake
//! with random ISNs (often just below 2^32, so sequence numbers wrap), the
//! server advertises a window larger than the stream, the server never ACKs
//! client data (so no gap is declared on ACK and every delivered byte stays
//! retained for overlap checks), and bounds are generous unless a property
//! says otherwise. A random byte stream `orig` of `n` bytes is cut at random
//! points into *true* segments that cover `[0, n)` exactly once. Extra
//! segments (at least 2 bytes, so that none is a keep-alive) lie within
//! `[0, n)`: *duplicates* carry the original bytes of a
//! random range, *fakes* carry random bytes. All are sent client to server
//! in a random order ("received order"). "Delivered" is the concatenation of
//! the sink calls for the client direction.
//!
//! Properties:
//! 1. `same_data_overlaps_reassemble_the_original`: true segments plus
//!    duplicates, any order, any policy: the sink is called with contiguous
//!    offsets from 0 (no gap), delivered == `orig`, and no
//!    `stream.reassembly_overlap_different_data` event is raised.
//! 2. `first_policy_delivers_the_first_received_copy`: true, duplicate and
//!    fake segments, any order, policy `first`: for every offset `o`,
//!    delivered[o] is the byte of the first received segment covering `o`.
//! 3. `first_policy_with_originals_first_delivers_the_original`: as 2, but
//!    each fake is received after every true segment it overlaps (so the
//!    first copy of every byte is original): delivered == `orig`, and each
//!    fake that differs from `orig` raised the overlap event.
//! 4. `every_policy_matches_the_reference_model`: true, duplicate and fake
//!    segments, any order, every policy: delivered equals a byte-by-byte
//!    reference model in which each byte remembers the segment that supplied
//!    it, a newly received copy of a byte that is not yet delivered replaces
//!    it iff `policy.new_data_wins(new segment, supplying segment)`, and a
//!    byte is delivered (final) as soon as all bytes before it are present.
//!    For `last` this reads: delivered[o] is the last received copy of `o`
//!    among those received before every byte up to `o` had been received.
//!    The number of overlap events equals the number of segments that
//!    carried at least one byte different from the copy held (or delivered)
//!    at that moment. As in the engine (and Suricata), a one-byte segment at
//!    the offset just before the next undelivered byte that repeats the last
//!    ACK is a TCP keep-alive and is ignored.
//! 5. `bounded_buffering_delivers_only_true_bytes`: true segments (some
//!    lost) plus duplicates, tiny memcap and segment limits, random ACKs
//!    from the server: after every packet `mem_used <= memcap`; sink offsets
//!    only increase; every delivered byte equals `orig` at its offset; after
//!    `close` nothing is held, and everything not lost was delivered unless
//!    it fell behind a declared gap.

use proptest::prelude::*;
use zonewatch_decode::tcp_flags::{ACK, PSH, SYN};
use zonewatch_stream::{
    Direction, OverlapPolicy, Reassembler, StreamConfig, StreamEvent, TcpInfo, TcpSession,
};

const C: Direction = Direction::ToServer;
const S: Direction = Direction::ToClient;

fn tcp(seq: u32, ack: u32, flags: u8, window: u16, wscale: Option<u8>) -> TcpInfo {
    TcpInfo {
        seq,
        ack,
        flags,
        window,
        wscale,
        ..Default::default()
    }
}

struct Run {
    r: Reassembler,
    s: Option<TcpSession>,
    isn: [u32; 2],
    calls: Vec<(u64, Vec<u8>)>,
    events: Vec<StreamEvent>,
}

impl Run {
    fn new(cfg: StreamConfig, isn: [u32; 2]) -> Run {
        let mut r = Reassembler::new(cfg);
        let s = Some(r.new_session());
        let mut run = Run {
            r,
            s,
            isn,
            calls: Vec::new(),
            events: Vec::new(),
        };
        let [c, s] = isn;
        run.pkt(C, tcp(c, 0, SYN, 65535, Some(7)), b"");
        run.pkt(S, tcp(s, c.wrapping_add(1), SYN | ACK, 65535, Some(7)), b"");
        run.pkt(
            C,
            tcp(c.wrapping_add(1), s.wrapping_add(1), ACK, 65535, None),
            b"",
        );
        run.pkt(
            S,
            tcp(s.wrapping_add(1), c.wrapping_add(1), ACK, 65535, None),
            b"",
        );
        run
    }

    fn pkt(&mut self, dir: Direction, t: TcpInfo, payload: &[u8]) {
        let calls = &mut self.calls;
        let s = self.s.as_mut().unwrap();
        self.r
            .segment(s, dir, &t, payload, &mut self.events, &mut |d, off, b| {
                assert_eq!(d, C, "only the client sends data");
                calls.push((off, b.to_vec()));
            });
        let c = self.r.counters();
        let cap = self.r.config().memcap_bytes;
        assert!(cap == 0 || c.mem_used <= cap, "{c:?}");
    }

    /// Client data at stream offset `off`.
    fn send(&mut self, off: u64, data: &[u8]) {
        let seq = self.isn[0].wrapping_add(1).wrapping_add(off as u32);
        let ack = self.isn[1].wrapping_add(1);
        self.pkt(C, tcp(seq, ack, ACK | PSH, 65535, None), data);
    }

    /// Server ACK of client offset `off`.
    fn ack(&mut self, off: u64) {
        let seq = self.isn[1].wrapping_add(1);
        let ack = self.isn[0].wrapping_add(1).wrapping_add(off as u32);
        self.pkt(S, tcp(seq, ack, ACK, 65535, None), b"");
    }

    fn close(&mut self) {
        let calls = &mut self.calls;
        let s = self.s.take().unwrap();
        self.r.close(s, &mut self.events, &mut |_, off, b| {
            calls.push((off, b.to_vec()))
        });
    }

    /// Delivered bytes, requiring contiguous offsets from 0.
    fn contiguous(&self) -> Vec<u8> {
        let mut v = Vec::new();
        for (off, b) in &self.calls {
            assert_eq!(*off, v.len() as u64, "gap or reorder in sink calls");
            v.extend_from_slice(b);
        }
        v
    }

    fn count(&self, e: StreamEvent) -> usize {
        self.events.iter().filter(|x| **x == e).count()
    }
}

fn generous() -> StreamConfig {
    StreamConfig {
        depth: 0,
        memcap_bytes: 0,
        max_ooo_segments_per_dir: 1 << 20,
        retain_unacked_bytes: 1 << 20,
        ..Default::default()
    }
}

/// A segment: stream offset and bytes.
type Seg = (u64, Vec<u8>);

/// Cuts `orig` into true segments at the given (unsorted) points.
fn true_segments(orig: &[u8], cuts: &[u16]) -> Vec<Seg> {
    let n = orig.len();
    let mut pts: Vec<usize> = cuts.iter().map(|&c| c as usize % n).collect();
    pts.push(0);
    pts.push(n);
    pts.sort_unstable();
    pts.dedup();
    pts.windows(2)
        .map(|w| (w[0] as u64, orig[w[0]..w[1]].to_vec()))
        .collect()
}

/// Extra segments within `[0, n)`: duplicates of the original or fakes
/// (random bytes, which may by chance equal the original).
fn extra_segments(orig: &[u8], spec: &[(u16, u16, u8)], fakes: bool) -> Vec<Seg> {
    let n = orig.len();
    spec.iter()
        .map(|&(a, len, k)| {
            let a = a as usize % (n - 1);
            let b = (a + 2 + len as usize % 300).min(n);
            let data = if fakes && k % 2 == 1 {
                orig[a..b]
                    .iter()
                    .enumerate()
                    .map(|(i, &x)| x ^ (k | 1).wrapping_mul(i as u8 | 1))
                    .collect()
            } else {
                orig[a..b].to_vec()
            };
            (a as u64, data)
        })
        .collect()
}

/// Fisher-Yates with a seeded xorshift.
fn shuffle<T>(v: &mut [T], mut seed: u64) {
    seed |= 1;
    for i in (1..v.len()).rev() {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        v.swap(i, (seed % (i as u64 + 1)) as usize);
    }
}

/// The byte-level reference model of property 4: delivered bytes and the
/// number of segments that carried a byte different from the held copy.
fn model(policy: OverlapPolicy, n: usize, segs: &[Seg]) -> (Vec<u8>, usize) {
    let mut held: Vec<Option<(u8, u64, u64)>> = vec![None; n];
    let mut frontier = 0;
    let mut differing = 0;
    for (s, data) in segs {
        let (s, e) = (*s, *s + data.len() as u64);
        if e - s == 1 && frontier > 0 && s == frontier as u64 - 1 {
            continue; // keep-alive
        }
        let mut diff = false;
        for o in s..e {
            let b = data[(o - s) as usize];
            let slot = &mut held[o as usize];
            match *slot {
                None => *slot = Some((b, s, e)),
                Some((x, os, oe)) => {
                    diff |= x != b;
                    if o as usize >= frontier && policy.new_data_wins(s, e, os, oe) {
                        *slot = Some((b, s, e));
                    }
                }
            }
        }
        while frontier < n && held[frontier].is_some() {
            frontier += 1;
        }
        differing += diff as usize;
    }
    (
        held.iter().map(|h| h.map_or(0, |x| x.0)).collect(),
        differing,
    )
}

fn isn() -> impl Strategy<Value = u32> {
    prop_oneof![any::<u32>(), (u32::MAX - 3000)..=u32::MAX]
}

fn policy() -> impl Strategy<Value = OverlapPolicy> {
    (0..OverlapPolicy::ALL.len()).prop_map(|i| OverlapPolicy::ALL[i])
}

// 256 cases each (proptest's default; `PROPTEST_CASES` overrides).
proptest! {
    #[test]
    fn same_data_overlaps_reassemble_the_original(
        orig in prop::collection::vec(any::<u8>(), 2..3000),
        cuts in prop::collection::vec(any::<u16>(), 0..60),
        extra in prop::collection::vec((any::<u16>(), any::<u16>(), any::<u8>()), 0..40),
        seed in any::<u64>(),
        isn_c in isn(),
        isn_s in isn(),
        policy in policy(),
    ) {
        let mut segs = true_segments(&orig, &cuts);
        segs.extend(extra_segments(&orig, &extra, false));
        shuffle(&mut segs, seed);
        let mut run = Run::new(StreamConfig { policy, ..generous() }, [isn_c, isn_s]);
        for (off, data) in &segs {
            run.send(*off, data);
        }
        prop_assert_eq!(run.contiguous(), orig);
        prop_assert_eq!(run.count(StreamEvent::ReassemblyOverlapDifferentData), 0);
        prop_assert_eq!(run.count(StreamEvent::ReassemblySeqGap), 0);
        prop_assert_eq!(run.r.counters().overlaps_different, 0);
    }

    #[test]
    fn first_policy_delivers_the_first_received_copy(
        orig in prop::collection::vec(any::<u8>(), 2..3000),
        cuts in prop::collection::vec(any::<u16>(), 0..60),
        extra in prop::collection::vec((any::<u16>(), any::<u16>(), any::<u8>()), 0..40),
        seed in any::<u64>(),
        isn_c in isn(),
    ) {
        let mut segs = true_segments(&orig, &cuts);
        segs.extend(extra_segments(&orig, &extra, true));
        shuffle(&mut segs, seed);
        let mut expect: Vec<Option<u8>> = vec![None; orig.len()];
        for (off, data) in &segs {
            for (i, &b) in data.iter().enumerate() {
                expect[*off as usize + i].get_or_insert(b);
            }
        }
        let expect: Vec<u8> = expect.into_iter().map(|b| b.unwrap()).collect();
        let mut run = Run::new(
            StreamConfig { policy: OverlapPolicy::First, ..generous() },
            [isn_c, 77],
        );
        for (off, data) in &segs {
            run.send(*off, data);
        }
        prop_assert_eq!(run.contiguous(), expect);
    }

    #[test]
    fn first_policy_with_originals_first_delivers_the_original(
        orig in prop::collection::vec(any::<u8>(), 2..3000),
        cuts in prop::collection::vec(any::<u16>(), 0..60),
        extra in prop::collection::vec((any::<u16>(), any::<u16>(), any::<u8>()), 0..40),
        seed in any::<u64>(),
        place in prop::collection::vec(any::<u16>(), 40),
        isn_c in isn(),
    ) {
        let mut order = true_segments(&orig, &cuts);
        shuffle(&mut order, seed);
        let fakes = extra_segments(&orig, &extra, true);
        let mut differing = 0;
        for (k, fake) in fakes.iter().enumerate() {
            let (fs, fe) = (fake.0, fake.0 + fake.1.len() as u64);
            // After the last true segment it overlaps (fakes inserted so far
            // do not matter: they are never first).
            let last = order
                .iter()
                .rposition(|(s, d)| {
                    let is_true = orig[*s as usize..*s as usize + d.len()] == d[..];
                    is_true && *s < fe && fs < *s + d.len() as u64
                })
                .unwrap_or(0);
            let at = last + 1 + place[k] as usize % (order.len() - last);
            differing += (fake.1[..] != orig[fs as usize..fe as usize]) as usize;
            order.insert(at, fake.clone());
        }
        let mut run = Run::new(
            StreamConfig { policy: OverlapPolicy::First, ..generous() },
            [isn_c, 5],
        );
        for (off, data) in &order {
            run.send(*off, data);
        }
        prop_assert_eq!(run.contiguous(), orig);
        prop_assert_eq!(run.count(StreamEvent::ReassemblyOverlapDifferentData), differing);
    }

    #[test]
    fn every_policy_matches_the_reference_model(
        orig in prop::collection::vec(any::<u8>(), 2..2000),
        cuts in prop::collection::vec(any::<u16>(), 0..50),
        extra in prop::collection::vec((any::<u16>(), any::<u16>(), any::<u8>()), 0..40),
        seed in any::<u64>(),
        isn_c in isn(),
        policy in policy(),
    ) {
        let mut segs = true_segments(&orig, &cuts);
        segs.extend(extra_segments(&orig, &extra, true));
        shuffle(&mut segs, seed);
        let (expect, differing) = model(policy, orig.len(), &segs);
        let mut run = Run::new(StreamConfig { policy, ..generous() }, [isn_c, 1]);
        for (off, data) in &segs {
            run.send(*off, data);
        }
        prop_assert_eq!(run.contiguous(), expect);
        prop_assert_eq!(run.count(StreamEvent::ReassemblyOverlapDifferentData), differing);
    }

    #[test]
    fn bounded_buffering_delivers_only_true_bytes(
        orig in prop::collection::vec(any::<u8>(), 2..3000),
        cuts in prop::collection::vec(any::<u16>(), 0..80),
        extra in prop::collection::vec((any::<u16>(), any::<u16>(), any::<u8>()), 0..20),
        lost in prop::collection::vec(any::<bool>(), 80),
        acks in prop::collection::vec(any::<u16>(), 80),
        seed in any::<u64>(),
        isn_c in isn(),
        memcap in 0u64..3000,
        max_segs in 0usize..6,
        retain in 0u64..500,
    ) {
        let truth = true_segments(&orig, &cuts);
        let mut segs: Vec<Seg> = truth
            .iter()
            .enumerate()
            .filter(|(i, _)| !lost[i % lost.len()])
            .map(|(_, s)| s.clone())
            .collect();
        segs.extend(extra_segments(&orig, &extra, false));
        shuffle(&mut segs, seed);
        let cfg = StreamConfig {
            depth: 0,
            memcap_bytes: memcap,
            max_ooo_segments_per_dir: max_segs,
            retain_unacked_bytes: retain,
            ..Default::default()
        };
        let mut run = Run::new(cfg, [isn_c, 3]);
        for (k, (off, data)) in segs.iter().enumerate() {
            run.send(*off, data);
            let a = acks[k % acks.len()];
            if a % 3 == 0 {
                run.ack(a as u64 % (orig.len() as u64 + 1));
            }
        }
        run.close();
        prop_assert_eq!(run.r.counters().mem_used, 0);
        let mut end = 0u64;
        let mut covered = vec![false; orig.len()];
        for (off, b) in &run.calls {
            prop_assert!(*off >= end, "sink went backwards");
            end = off + b.len() as u64;
            prop_assert!(end as usize <= orig.len());
            prop_assert_eq!(&b[..], &orig[*off as usize..end as usize]);
            for c in &mut covered[*off as usize..end as usize] {
                *c = true;
            }
        }
        // Without any gap, all received bytes were delivered.
        if run.count(StreamEvent::ReassemblySeqGap) == 0 {
            for (off, data) in &segs {
                let range = *off as usize..*off as usize + data.len();
                prop_assert!(
                    covered[range.clone()].iter().all(|&c| c),
                    "bytes {:?} received but not delivered",
                    range
                );
            }
        }
    }
}
