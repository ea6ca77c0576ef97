//! Unit tests: one per behaviour in the crate docs, driven through the public
//! API (a few poke internal state to reach offsets past 4 GiB quickly).

use crate::*;
use zonewatch_decode::tcp_flags::{ACK, FIN, PSH, RST, SYN};

const C: Direction = Direction::ToServer;
const S: Direction = Direction::ToClient;

/// A session under test with everything it delivered and raised.
struct T {
    r: Reassembler,
    s: Option<TcpSession>,
    /// Sink calls: direction, offset, bytes.
    calls: Vec<(Direction, u64, Vec<u8>)>,
    /// Events of every packet.
    events: Vec<StreamEvent>,
    isn: [u32; 2],
}

fn tcp(seq: u32, ack: u32, flags: u8, window: u16) -> TcpInfo {
    TcpInfo {
        seq,
        ack,
        flags,
        window,
        ..Default::default()
    }
}

impl T {
    fn new(cfg: StreamConfig) -> T {
        let mut r = Reassembler::new(cfg);
        let s = Some(r.new_session());
        T {
            r,
            s,
            calls: Vec::new(),
            events: Vec::new(),
            isn: [0; 2],
        }
    }

    /// Sends a packet; returns its events.
    fn pkt(&mut self, dir: Direction, t: TcpInfo, payload: &[u8]) -> Vec<StreamEvent> {
        let mut ev = Vec::new();
        let calls = &mut self.calls;
        let s = self.s.as_mut().expect("session open");
        self.r
            .segment(s, dir, &t, payload, &mut ev, &mut |d, off, b| {
                calls.push((d, off, b.to_vec()))
            });
        let c = self.r.counters();
        if self.r.cfg.memcap_bytes > 0 {
            assert!(c.mem_used <= self.r.cfg.memcap_bytes, "{c:?}");
        }
        self.events.extend_from_slice(&ev);
        ev
    }

    fn di(dir: Direction) -> usize {
        (dir == S) as usize
    }

    /// Data at stream offset `off` of `dir` (after the handshake), ACKing the
    /// peer's ISN + 1.
    fn data(&mut self, dir: Direction, off: u64, payload: &[u8]) -> Vec<StreamEvent> {
        let i = Self::di(dir);
        let seq = self.isn[i].wrapping_add(1).wrapping_add(off as u32);
        let ack = self.isn[1 - i].wrapping_add(1);
        self.pkt(dir, tcp(seq, ack, ACK | PSH, 65535), payload)
    }

    /// A bare ACK from `dir` acknowledging offset `off` of the peer.
    fn ack(&mut self, dir: Direction, off: u64, window: u16) -> Vec<StreamEvent> {
        let i = Self::di(dir);
        let seq = self.isn[i].wrapping_add(1);
        let ack = self.isn[1 - i].wrapping_add(1).wrapping_add(off as u32);
        self.pkt(dir, tcp(seq, ack, ACK, window), b"")
    }

    /// SYN, SYN/ACK, ACK with window scale 7 both ways, then a window update
    /// from the server so that the client may send 8 MiB.
    fn handshake(&mut self, isn_c: u32, isn_s: u32) {
        self.isn = [isn_c, isn_s];
        let mut syn = tcp(isn_c, 0, SYN, 65535);
        syn.wscale = Some(7);
        self.pkt(C, syn, b"");
        let mut sa = tcp(isn_s, isn_c.wrapping_add(1), SYN | ACK, 65535);
        sa.wscale = Some(7);
        self.pkt(S, sa, b"");
        self.ack(C, 0, 65535);
        self.ack(S, 0, 65535);
        assert_eq!(self.s().state(), SessionState::Established);
    }

    fn s(&self) -> &TcpSession {
        self.s.as_ref().expect("session open")
    }

    /// Bytes delivered in `dir`, checking that calls are in order without
    /// overlap; gaps are left out.
    fn out(&self, dir: Direction) -> Vec<u8> {
        let mut v = Vec::new();
        let mut end = 0u64;
        for (d, off, b) in &self.calls {
            if *d == dir {
                assert!(*off >= end, "sink went backwards: {off} < {end}");
                end = off + b.len() as u64;
                v.extend_from_slice(b);
            }
        }
        v
    }

    fn close(&mut self) -> Vec<StreamEvent> {
        let mut ev = Vec::new();
        let calls = &mut self.calls;
        let s = self.s.take().expect("session open");
        self.r.close(s, &mut ev, &mut |d, off, b| {
            calls.push((d, off, b.to_vec()))
        });
        self.events.extend_from_slice(&ev);
        ev
    }

    fn count(&self, e: StreamEvent) -> usize {
        self.events.iter().filter(|x| **x == e).count()
    }
}

fn est() -> T {
    let mut t = T::new(StreamConfig::default());
    t.handshake(1000, 5000);
    t
}

#[test]
fn in_order_bytes_are_delivered_incrementally() {
    let mut t = est();
    t.data(C, 0, b"GET / HTTP/1.1\r\n");
    assert_eq!(t.calls, vec![(C, 0, b"GET / HTTP/1.1\r\n".to_vec())]);
    t.data(C, 16, b"Host: x\r\n\r\n");
    assert_eq!(t.calls.len(), 2);
    assert_eq!(t.calls[1].1, 16);
    t.data(S, 0, b"HTTP/1.1 200 OK\r\n");
    assert_eq!(t.out(S), b"HTTP/1.1 200 OK\r\n");
    assert!(t.events.is_empty(), "{:?}", t.events);
    let c = t.r.counters();
    assert_eq!(c.bytes_delivered, 16 + 11 + 17);
    assert_eq!(c.gaps, 0);
}

#[test]
fn out_of_order_is_held_until_the_hole_fills() {
    let mut t = est();
    t.data(C, 10, b"klmno");
    t.data(C, 5, b"fghij");
    assert!(t.calls.is_empty());
    let h = t.s().half(C);
    assert_eq!((h.buffered_bytes, h.buffered_segments), (10, 2));
    t.data(C, 0, b"abcde");
    assert_eq!(t.out(C), b"abcdefghijklmno");
    assert_eq!(t.calls[0], (C, 0, b"abcde".to_vec()));
    assert_eq!(t.s().half(C).buffered_segments, 0);
    assert!(t.events.is_empty());
}

#[test]
fn retransmission_with_the_same_data_is_silent_and_counted() {
    let mut t = est();
    t.data(C, 0, b"hello");
    let ev = t.data(C, 0, b"hello");
    assert_eq!(ev, vec![StreamEvent::PktRetransmission]);
    // Retransmission of buffered (not yet delivered) data.
    t.data(C, 10, b"world");
    let ev = t.data(C, 10, b"world");
    assert_eq!(ev, vec![StreamEvent::PktRetransmission]);
    t.data(C, 5, b"-----");
    assert_eq!(t.out(C), b"hello-----world");
    let c = t.r.counters();
    assert_eq!(
        (c.retransmissions, c.overlaps, c.overlaps_different),
        (2, 2, 0)
    );
}

#[test]
fn overlap_with_different_data_first_policy_keeps_the_first_copy() {
    let mut t = T::new(StreamConfig {
        policy: OverlapPolicy::First,
        ..Default::default()
    });
    t.handshake(1, 2);
    t.data(C, 4, b"AAAA");
    let ev = t.data(C, 2, b"BBBBBB");
    assert_eq!(ev, vec![StreamEvent::ReassemblyOverlapDifferentData]);
    t.data(C, 0, b"cc");
    assert_eq!(t.out(C), b"ccBBAAAA");
    assert_eq!(t.r.counters().overlaps_different, 1);
}

#[test]
fn overlap_with_different_data_last_policy_keeps_the_last_copy() {
    let mut t = T::new(StreamConfig {
        policy: OverlapPolicy::Last,
        ..Default::default()
    });
    t.handshake(1, 2);
    t.data(C, 4, b"AAAA");
    t.data(C, 6, b"BBBBBB");
    t.data(C, 5, b"C");
    t.data(C, 0, b"ddddd");
    assert_eq!(t.out(C), b"dddddCBBBBBB");
    // B over A, C over A, and the filler's last byte over the A at 4.
    assert_eq!(t.count(StreamEvent::ReassemblyOverlapDifferentData), 2 + 1);
}

#[test]
fn delivered_bytes_are_final_but_a_different_copy_is_reported() {
    let mut t = T::new(StreamConfig {
        policy: OverlapPolicy::Last,
        ..Default::default()
    });
    t.handshake(1, 2);
    t.data(C, 0, b"attack");
    let ev = t.data(C, 0, b"benign");
    assert_eq!(
        ev,
        vec![
            StreamEvent::PktRetransmission,
            StreamEvent::ReassemblyOverlapDifferentData
        ]
    );
    assert_eq!(t.out(C), b"attack");
}

/// Old segment `[20, 30)` buffered; a new one with each shape. The expected
/// winners are transcribed from Suricata's `DoHandleDataOverlap` switch, not
/// from `new_data_wins`.
#[test]
fn os_policies_match_suricatas_overlap_table() {
    // (new start, new end) for: same start & ends before / same end / after,
    // starts before & ends before / same end / after, starts after & ends
    // before / same end / after.
    let shapes: [(u64, u64); 9] = [
        (20, 25),
        (20, 30),
        (20, 35),
        (15, 25),
        (15, 30),
        (15, 35),
        (22, 28),
        (22, 30),
        (22, 35),
    ];
    let never = [false; 9];
    let always = [true; 9];
    let bsd = [false, false, false, true, true, true, false, false, false];
    let linux = [false, false, true, true, true, true, false, false, false];
    let old_linux = [false, true, true, true, true, true, false, false, false];
    let solaris = [false, true, true, false, true, true, false, false, true];
    use OverlapPolicy::*;
    let table: [(OverlapPolicy, [bool; 9]); 15] = [
        (First, never),
        (Vista, never),
        (BsdRight, never),
        (OldSolaris, never),
        (Last, always),
        (Bsd, bsd),
        (Windows, bsd),
        (Windows2k3, bsd),
        (MacOs, bsd),
        (HpUx10, bsd),
        (Irix, bsd),
        (Linux, linux),
        (OldLinux, old_linux),
        (Solaris, solaris),
        (HpUx11, solaris),
    ];
    for (policy, want) in table {
        for (i, &(ns, ne)) in shapes.iter().enumerate() {
            assert_eq!(
                policy.new_data_wins(ns, ne, 20, 30),
                want[i],
                "{policy:?} shape {i}"
            );
            let mut t = T::new(StreamConfig {
                policy,
                ..Default::default()
            });
            t.handshake(7, 9);
            t.data(C, 20, &[b'o'; 10]);
            let ev = t.data(C, ns, &vec![b'n'; (ne - ns) as usize]);
            assert!(ev.contains(&StreamEvent::ReassemblyOverlapDifferentData));
            t.data(C, 0, &[b'.'; 20]);
            let out = t.out(C);
            let overlap = &out[20.max(ns) as usize..30.min(ne) as usize];
            let expect = if want[i] { b'n' } else { b'o' };
            assert!(
                overlap.iter().all(|&b| b == expect),
                "{policy:?} shape {i}: {}",
                String::from_utf8_lossy(&out)
            );
            // Bytes only one segment had are always delivered.
            assert_eq!(out.len() as u64, 30.max(ne));
        }
    }
    for p in OverlapPolicy::ALL {
        assert_eq!(OverlapPolicy::from_name(p.name()), Some(p));
    }
    assert_eq!(OverlapPolicy::from_name("beos"), None);
}

#[test]
fn sequence_numbers_wrap_around() {
    let mut t = est_at(u32::MAX - 5, u32::MAX);
    // Client offset 0 is seq u32::MAX - 4; bytes 4.. have wrapped seqs.
    t.data(C, 8, b"ijkl");
    t.data(C, 4, b"efgh");
    t.data(C, 0, b"abcd");
    assert_eq!(t.out(C), b"abcdefghijkl");
    // Server: ISN u32::MAX, offset 0 is seq 0.
    t.data(S, 0, b"xyz");
    assert_eq!(t.out(S), b"xyz");
    assert!(t.events.is_empty(), "{:?}", t.events);
}

fn est_at(isn_c: u32, isn_s: u32) -> T {
    let mut t = T::new(StreamConfig {
        depth: 0,
        ..Default::default()
    });
    t.handshake(isn_c, isn_s);
    t
}

#[test]
fn offsets_continue_past_4_gib() {
    let mut t = est_at(3_000_000_000, 10);
    // Pretend 4 GiB - 4 bytes went by (internal poke, same state the engine
    // reaches by delivering them).
    let near = (1u64 << 32) - 4;
    {
        let s = t.s.as_mut().unwrap();
        s.h[0].next = near;
        s.h[0].hist.clear_to(near);
        s.h[0].right_edge = Some(near + (1 << 20));
    }
    t.data(C, near + 8, b"IJ");
    t.data(C, near, b"ABCDEFGH");
    assert_eq!(t.calls[0], (C, near, b"ABCDEFGH".to_vec()));
    assert_eq!(t.calls[1], (C, near + 8, b"IJ".to_vec()));
    assert!(t.calls[1].1 > u32::MAX as u64);
    // A second wrap of the sequence space later on.
    let far = (2u64 << 32) - 1;
    {
        let s = t.s.as_mut().unwrap();
        s.h[0].next = far;
        s.h[0].hist.clear_to(far);
        s.h[0].right_edge = Some(far + (1 << 20));
    }
    t.data(C, far, b"xy");
    assert_eq!(t.calls[2], (C, far, b"xy".to_vec()));
    assert!(t.events.is_empty(), "{:?}", t.events);
}

#[test]
fn data_on_rst_is_not_delivered() {
    let mut t = est();
    t.data(C, 0, b"abc");
    let seq = 1000 + 1 + 3;
    t.pkt(C, tcp(seq, 5001, RST | ACK, 0), b"diagnostic text");
    assert_eq!(t.out(C), b"abc");
    assert_eq!(t.r.counters().rst_with_data, 1);
    assert!(t.s().rst_seen());
    // Reassembly goes on after the RST (an injected RST must not blind us).
    t.data(C, 3, b"def");
    t.data(S, 0, b"late reply");
    assert_eq!(t.out(C), b"abcdef");
    assert_eq!(t.out(S), b"late reply");
}

/// A SYN with a Fast Open option.
fn tfo_syn(seq: u32) -> TcpInfo {
    TcpInfo {
        tfo: true,
        ..tcp(seq, 0, SYN, 65535)
    }
}

/// Data on a SYN without a Fast Open option is not the application's, as in
/// Suricata: it is not delivered, and a SYN/ACK acknowledging it has the
/// wrong ACK (zeek's payload-syn.pcap, where Suricata raises no HTTP alert).
#[test]
fn data_on_a_syn_without_fast_open_is_not_delivered() {
    let mut t = T::new(StreamConfig::default());
    t.isn = [100, 900];
    t.pkt(C, tcp(100, 0, SYN, 65535), b"GET / HTTP/1.0\r\n\r\n");
    let ev = t.pkt(S, tcp(900, 101 + 18, SYN | ACK, 65535), b"");
    assert_eq!(ev, vec![StreamEvent::ThreeWhsSynackWithWrongAck]);
    assert!(t.calls.is_empty());
}

#[test]
fn tfo_data_on_syn_is_delivered_after_the_handshake() {
    let mut t = T::new(StreamConfig::default());
    t.isn = [100, 900];
    t.pkt(C, tfo_syn(100), b"hello");
    t.pkt(S, tcp(900, 101 + 5, SYN | ACK, 65535), b"");
    assert!(t.calls.is_empty(), "not before the handshake completes");
    assert_eq!(t.s().state(), SessionState::SynRecv);
    t.pkt(C, tcp(106, 901, ACK, 65535), b" world");
    assert_eq!(t.calls[0], (C, 0, b"hello".to_vec()));
    assert_eq!(t.calls[1], (C, 5, b" world".to_vec()));
    assert!(t.events.is_empty(), "{:?}", t.events);
}

#[test]
fn tfo_data_not_acknowledged_by_the_synack_is_dropped() {
    let mut t = T::new(StreamConfig::default());
    t.isn = [100, 900];
    t.pkt(C, tfo_syn(100), b"hello");
    let ev = t.pkt(S, tcp(900, 101, SYN | ACK, 65535), b"");
    assert_eq!(ev, vec![StreamEvent::ThreeWhsSynackTfoDataIgnored]);
    t.ack(C, 0, 65535);
    assert!(t.calls.is_empty());
    // The client sends it again after the handshake.
    t.data(C, 0, b"HELLO");
    assert_eq!(t.out(C), b"HELLO");
    assert_eq!(t.r.counters().mem_used, t.s().mem_bytes());
}

#[test]
fn split_handshake_establishes() {
    let mut t = T::new(StreamConfig::default());
    t.isn = [100, 900];
    t.pkt(C, tcp(100, 0, SYN, 65535), b"");
    t.pkt(S, tcp(900, 0, SYN, 65535), b"");
    let ev = t.pkt(C, tcp(100, 555, SYN | ACK, 65535), b"");
    assert_eq!(ev, vec![StreamEvent::FourWhsSynackWithWrongAck]);
    t.pkt(C, tcp(100, 901, SYN | ACK, 65535), b"");
    assert_eq!(t.s().state(), SessionState::SynRecv);
    t.pkt(S, tcp(901, 101, ACK, 65535), b"");
    assert_eq!(t.s().state(), SessionState::Established);
    t.data(C, 0, b"to server");
    t.data(S, 0, b"to client");
    assert_eq!(t.out(C), b"to server");
    assert_eq!(t.out(S), b"to client");
}

#[test]
fn simultaneous_open_establishes() {
    let mut t = T::new(StreamConfig::default());
    t.isn = [100, 900];
    t.pkt(C, tcp(100, 0, SYN, 65535), b"");
    t.pkt(S, tcp(900, 0, SYN, 65535), b"");
    t.pkt(C, tcp(100, 901, SYN | ACK, 65535), b"");
    t.pkt(S, tcp(900, 101, SYN | ACK, 65535), b"");
    assert_eq!(t.s().state(), SessionState::Established);
    t.data(S, 0, b"x");
    t.data(C, 0, b"y");
    assert_eq!((t.out(C), t.out(S)), (b"y".to_vec(), b"x".to_vec()));
    assert!(t.events.is_empty(), "{:?}", t.events);
}

#[test]
fn synack_with_wrong_ack_is_ignored() {
    let mut t = T::new(StreamConfig::default());
    t.isn = [100, 900];
    t.pkt(C, tcp(100, 0, SYN, 65535), b"");
    let ev = t.pkt(S, tcp(777, 12345, SYN | ACK, 65535), b"");
    assert_eq!(ev, vec![StreamEvent::ThreeWhsSynackWithWrongAck]);
    assert_eq!(t.s().state(), SessionState::SynSent);
    t.pkt(S, tcp(900, 101, SYN | ACK, 65535), b"");
    t.ack(C, 0, 65535);
    t.data(S, 0, b"ok");
    assert_eq!(t.out(S), b"ok");
    assert_eq!(t.r.counters().rejected, 1);
    assert_eq!(
        t.pkt(C, tcp(100, 0, SYN | ACK, 1), b""),
        vec![StreamEvent::PktRetransmission; 0]
    );
}

#[test]
fn synack_from_the_syn_sender_is_wrong_direction() {
    let mut t = T::new(StreamConfig::default());
    t.pkt(C, tcp(100, 0, SYN, 65535), b"");
    let ev = t.pkt(C, tcp(100, 5, SYN | ACK, 65535), b"");
    assert_eq!(ev, vec![StreamEvent::ThreeWhsSynackInWrongDirection]);
}

#[test]
fn final_ack_with_wrong_ack_is_rejected() {
    let mut t = T::new(StreamConfig::default());
    t.isn = [100, 900];
    t.pkt(C, tcp(100, 0, SYN, 65535), b"");
    t.pkt(S, tcp(900, 101, SYN | ACK, 65535), b"");
    let ev = t.pkt(C, tcp(101, 4242, ACK, 65535), b"evil");
    assert_eq!(ev, vec![StreamEvent::ThreeWhsRightSeqWrongAckEvasion]);
    let ev = t.pkt(C, tcp(4000, 4242, ACK, 65535), b"evil");
    assert_eq!(ev, vec![StreamEvent::ThreeWhsWrongSeqWrongAck]);
    assert!(t.calls.is_empty());
    assert_eq!(t.s().state(), SessionState::SynRecv);
}

#[test]
fn midstream_off_sessions_without_syn_are_not_reassembled() {
    let mut t = T::new(StreamConfig::default());
    t.pkt(C, tcp(5000, 7000, ACK, 65535), b"data");
    t.pkt(S, tcp(7000, 5004, ACK, 65535), b"more");
    assert!(t.calls.is_empty());
    assert_eq!(t.s().state(), SessionState::Ignored);
    let c = t.r.counters();
    assert_eq!(
        (c.midstream_ignored, c.not_tracked, c.midstream_pickups),
        (1, 2, 0)
    );
}

#[test]
fn midstream_on_picks_up_at_the_first_ack() {
    let mut t = T::new(StreamConfig {
        midstream: true,
        ..Default::default()
    });
    t.pkt(C, tcp(5000, 7000, ACK, 100), b"data");
    t.pkt(S, tcp(7000, 5004, ACK, 100), b"reply");
    t.pkt(C, tcp(5004, 7005, ACK, 100), b"!");
    assert_eq!(t.out(C), b"data!");
    assert_eq!(t.out(S), b"reply");
    assert_eq!(t.calls[0].1, 0);
    assert!(t.s().is_midstream());
    assert_eq!(t.s().half(C).isn, Some(4999));
    assert_eq!(t.r.counters().midstream_pickups, 1);
}

#[test]
fn midstream_on_picks_up_at_a_synack() {
    let mut t = T::new(StreamConfig {
        midstream: true,
        ..Default::default()
    });
    t.pkt(S, tcp(900, 101, SYN | ACK, 65535), b"");
    t.pkt(C, tcp(101, 901, ACK, 65535), b"req");
    t.pkt(S, tcp(901, 104, ACK, 65535), b"resp");
    assert_eq!(t.s().client_direction(), C);
    assert_eq!((t.out(C), t.out(S)), (b"req".to_vec(), b"resp".to_vec()));
}

#[test]
fn rst_or_fin_without_session() {
    for (flags, want) in [
        (RST, StreamEvent::RstButNoSession),
        (RST | ACK, StreamEvent::RstButNoSession),
        (FIN | ACK, StreamEvent::FinButNoSession),
    ] {
        let mut t = T::new(StreamConfig {
            midstream: true,
            ..Default::default()
        });
        let ev = t.pkt(C, tcp(1, 0, flags, 0), b"");
        assert_eq!(ev, vec![want]);
        assert_eq!(t.s().state(), SessionState::None);
        assert_eq!(t.r.counters().not_tracked, 1);
    }
}

#[test]
fn async_oneside_accepts_a_handshake_without_synack() {
    for async_oneside in [false, true] {
        let mut t = T::new(StreamConfig {
            async_oneside,
            ..Default::default()
        });
        t.pkt(C, tcp(100, 0, SYN, 65535), b"");
        t.pkt(C, tcp(101, 901, ACK, 65535), b"");
        t.pkt(C, tcp(101, 901, ACK | PSH, 65535), b"one-sided");
        assert_eq!(t.out(C).is_empty(), !async_oneside);
    }
}

#[test]
fn depth_stops_delivery_and_is_reported_once() {
    let mut t = T::new(StreamConfig {
        depth: 10,
        ..Default::default()
    });
    t.handshake(1, 2);
    t.data(C, 12, b"zz");
    t.data(C, 0, b"012345");
    let ev = t.data(C, 6, b"6789ab");
    assert_eq!(ev, vec![StreamEvent::ReassemblyDepthReached]);
    assert_eq!(t.out(C), b"0123456789");
    assert!(t.data(C, 12, b"cdef").is_empty());
    assert_eq!(t.out(C), b"0123456789");
    let h = t.s().half(C);
    assert!(h.depth_reached);
    assert_eq!((h.buffered_bytes, h.retained_bytes), (0, 0));
    assert_eq!(t.r.counters().depth_reached, 1);
    assert_eq!(t.count(StreamEvent::ReassemblyDepthReached), 1);
    // The other direction is independent.
    t.data(S, 0, b"abc");
    assert_eq!(t.out(S), b"abc");
}

#[test]
fn memcap_declares_the_oldest_hole_a_gap() {
    let seg = 100u64;
    let memcap = 3 * (seg + CHUNK_OVERHEAD_BYTES);
    let mut t = T::new(StreamConfig {
        memcap_bytes: memcap,
        retain_unacked_bytes: 0,
        ..Default::default()
    });
    t.handshake(1, 2);
    // Every other segment is lost.
    for i in 0..8u64 {
        t.data(C, (2 * i + 1) * seg, &vec![i as u8; seg as usize]);
        assert!(t.r.counters().mem_used <= memcap);
    }
    let c = t.r.counters();
    assert!(c.memcap_gaps > 0, "{c:?}");
    assert_eq!(c.gaps, c.memcap_gaps);
    // What was forced out was delivered after its gap, in order.
    let first = &t.calls[0];
    assert_eq!((first.1, first.2.len()), (seg, seg as usize));
    assert!(t.count(StreamEvent::ReassemblySeqGap) > 0);
    t.close();
    assert_eq!(t.r.counters().mem_used, 0);
    assert_eq!(t.out(C).len() as u64, 8 * seg);
}

#[test]
fn segment_limit_declares_the_oldest_hole_a_gap() {
    let mut t = T::new(StreamConfig {
        max_ooo_segments_per_dir: 2,
        ..Default::default()
    });
    t.handshake(1, 2);
    t.data(C, 10, b"B");
    t.data(C, 20, b"C");
    assert!(t.calls.is_empty());
    let ev = t.data(C, 30, b"D");
    assert_eq!(ev, vec![StreamEvent::ReassemblySeqGap]);
    assert_eq!(t.calls, vec![(C, 10, b"B".to_vec())]);
    assert_eq!(t.r.counters().segment_limit_gaps, 1);
    assert_eq!(t.s().half(C).buffered_segments, 2);
}

#[test]
fn ack_past_a_hole_with_data_after_it_declares_a_gap() {
    let mut t = est();
    t.data(C, 0, b"aaaa");
    t.data(C, 8, b"cccc");
    let ev = t.ack(S, 12, 65535);
    assert_eq!(ev, vec![StreamEvent::ReassemblySeqGap]);
    assert_eq!(t.calls[1], (C, 8, b"cccc".to_vec()));
    assert_eq!(t.s().half(C).gaps, 1);
    assert_eq!(t.r.counters().gap_bytes, 4);
    // The late copy of the hole is behind what is held now.
    let ev = t.data(C, 4, b"bbbb");
    assert_eq!(ev, vec![StreamEvent::ReassemblySegmentBeforeBaseSeq]);
}

#[test]
fn ack_overtaking_its_data_at_the_tail_is_no_gap() {
    let mut t = est();
    t.data(C, 0, b"aaaa");
    assert!(t.ack(S, 8, 65535).is_empty());
    t.data(C, 4, b"bbbb");
    assert_eq!(t.out(C), b"aaaabbbb");
    assert_eq!(t.r.counters().gaps, 0);
}

#[test]
fn acks_release_retained_bytes() {
    let mut t = est();
    t.data(C, 0, &[1; 1000]);
    assert_eq!(t.s().half(C).retained_bytes, 1000);
    t.ack(S, 600, 65535);
    assert_eq!(t.s().half(C).retained_bytes, 400);
    t.ack(S, 1000, 65535);
    assert_eq!(t.s().half(C).retained_bytes, 0);
    assert_eq!(t.r.counters().mem_used, 0);
    // Acked data resent: nothing left to compare with.
    let ev = t.data(C, 0, &[2; 10]);
    assert_eq!(ev, vec![StreamEvent::ReassemblySegmentBeforeBaseSeq]);
}

#[test]
fn close_flushes_what_is_buffered_past_holes() {
    let mut t = est();
    t.data(C, 0, b"ab");
    t.data(C, 4, b"ef");
    t.data(C, 8, b"ij");
    t.data(S, 3, b"z");
    assert!(t.r.counters().mem_used > 0);
    let ev = t.close();
    assert_eq!(ev, vec![StreamEvent::ReassemblySeqGap; 3]);
    assert_eq!(t.out(C), b"abefij");
    assert_eq!(t.calls.last().unwrap(), &(S, 3, b"z".to_vec()));
    let c = t.r.counters();
    assert_eq!((c.gaps, c.mem_used), (3, 0));
}

#[test]
fn close_without_flush_discards() {
    let mut t = T::new(StreamConfig {
        flush_on_close: false,
        ..Default::default()
    });
    t.handshake(1, 2);
    t.data(C, 4, b"ef");
    assert!(t.close().is_empty());
    assert!(t.calls.is_empty());
    assert_eq!(t.r.counters().mem_used, 0);
}

#[test]
fn dropping_a_session_gives_its_memory_back() {
    let mut t = est();
    t.data(C, 100, &[0; 500]);
    t.data(S, 0, &[0; 500]);
    assert!(t.r.counters().mem_used >= 1000);
    t.s = None;
    assert_eq!(t.r.counters().mem_used, 0);
    assert!(t.r.counters().mem_peak >= 1000);
}

#[test]
fn data_past_the_advertised_window_is_rejected() {
    let mut t = T::new(StreamConfig::default());
    t.isn = [100, 900];
    // No window scaling: the server allows 100 bytes.
    t.pkt(C, tcp(100, 0, SYN, 65535), b"");
    t.pkt(S, tcp(900, 101, SYN | ACK, 100), b"");
    t.ack(C, 0, 65535);
    t.data(C, 0, &[b'a'; 60]);
    let ev = t.data(C, 60, &[b'b'; 60]);
    assert_eq!(ev, vec![StreamEvent::EstPacketOutOfWindow]);
    assert_eq!(t.out(C).len(), 60);
    // The server opens the window.
    t.ack(S, 60, 1000);
    assert!(t.data(C, 60, &[b'b'; 60]).is_empty());
    assert_eq!(t.out(C).len(), 120);
}

#[test]
fn ack_past_anything_the_peer_may_have_sent_is_invalid() {
    let mut t = est();
    t.data(C, 0, b"abc");
    let ev = t.ack(S, 1 << 30, 65535);
    assert_eq!(ev, vec![StreamEvent::PktInvalidAck]);
    assert_eq!(t.r.counters().rejected, 1);
}

#[test]
fn ack_number_without_ack_flag_is_broken() {
    let mut t = T::new(StreamConfig::default());
    let ev = t.pkt(C, tcp(100, 77, SYN, 65535), b"");
    assert_eq!(ev, vec![StreamEvent::PktBrokenAck]);
}

#[test]
fn data_before_the_isn_is_before_base() {
    let mut t = est();
    let ev = t.pkt(C, tcp(1000 - 50, 5001, ACK, 100), b"0123456789");
    assert_eq!(ev, vec![StreamEvent::ReassemblySegmentBeforeBaseSeq]);
    // Straddling offset 0 (seq 998 is offset -3): the part from 0 on is used.
    t.pkt(C, tcp(1000 - 2, 5001, ACK, 100), b"xyzabc");
    assert_eq!(t.out(C), b"abc");
}

#[test]
fn event_names_are_suricatas() {
    let mut names: Vec<&str> = StreamEvent::ALL.iter().map(|e| e.name()).collect();
    assert!(names.iter().all(|n| n.starts_with("stream.")));
    names.sort();
    names.dedup();
    assert_eq!(names.len(), StreamEvent::ALL.len());
    assert!(StreamEvent::ReassemblyOverlapDifferentData.alerts_by_default());
    assert!(!StreamEvent::PktRetransmission.alerts_by_default());
}

/// Random packets, both directions, several configurations: no panic, the
/// memcap holds after every packet, sink offsets never go back, and all
/// memory is returned when the session ends.
#[test]
fn hostile_packets_never_panic_and_stay_bounded() {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut rnd = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for round in 0..300 {
        let cfg = StreamConfig {
            depth: [0, 64, 5000][round % 3],
            memcap_bytes: [1, 500, 20_000, 0][round % 4],
            policy: OverlapPolicy::ALL[round % 15],
            midstream: round % 2 == 0,
            async_oneside: round % 5 == 0,
            max_ooo_segments_per_dir: [0, 3, 1024][round % 3],
            retain_unacked_bytes: [0, 100, 1 << 20][round % 3],
            flush_on_close: round % 7 != 0,
        };
        let mut t = T::new(cfg);
        let isn = [rnd() as u32, rnd() as u32];
        t.isn = isn;
        let mut last = [0u64; 2];
        for _ in 0..200 {
            let r = rnd();
            let dir = if r & 1 == 0 { C } else { S };
            let i = T::di(dir);
            let near = r & 6 != 0;
            let seq = if near {
                isn[i].wrapping_add((rnd() % 3000) as u32)
            } else {
                rnd() as u32
            };
            let ack = if near {
                isn[1 - i].wrapping_add((rnd() % 3000) as u32)
            } else {
                rnd() as u32
            };
            let flags = if r & 0x30 == 0 {
                rnd() as u8
            } else {
                [SYN, SYN | ACK, ACK, ACK | PSH, FIN | ACK, RST][(r >> 8) as usize % 6]
            };
            let mut ti = tcp(seq, ack, flags, (rnd() >> 3) as u16);
            ti.wscale = Some((rnd() % 20) as u8);
            let len = (rnd() % 300) as usize;
            let payload: Vec<u8> = (0..len).map(|_| rnd() as u8).collect();
            t.pkt(dir, ti, &payload);
            for (d, off, b) in &t.calls {
                let k = T::di(*d);
                assert!(*off >= last[k]);
                last[k] = off + b.len() as u64;
            }
            t.calls.clear();
        }
        t.close();
        assert_eq!(t.r.counters().mem_used, 0);
    }
}

#[test]
fn keepalive_and_zero_window_probe_are_not_anomalies() {
    let mut t = T::new(StreamConfig::default());
    t.isn = [100, 900];
    t.pkt(C, tcp(100, 0, SYN, 65535), b"");
    t.pkt(S, tcp(900, 101, SYN | ACK, 10), b"");
    t.ack(C, 0, 65535);
    t.data(C, 0, b"0123456789");
    // Keep-alive: one garbage byte at next - 1, same ACK as before.
    assert!(t.data(C, 9, b"\0").is_empty());
    // The same byte acknowledging new server data is no keep-alive but a
    // retransmission that differs.
    t.pkt(S, tcp(901, 101, ACK, 10), b"abc");
    let ev = t.pkt(C, tcp(100 + 1 + 9, 901 + 3, ACK, 65535), b"\0");
    assert_eq!(
        ev,
        vec![
            StreamEvent::PktRetransmission,
            StreamEvent::ReassemblyOverlapDifferentData
        ]
    );
    t.events.clear();
    // The server's window is full; the client probes it with one byte.
    t.ack(S, 10, 0);
    assert!(t.data(C, 10, b"X").is_empty());
    assert_eq!(t.out(C), b"0123456789");
    // The window opens; the byte is sent again and delivered.
    t.ack(S, 10, 100);
    t.data(C, 10, b"X");
    assert_eq!(t.out(C), b"0123456789X");
    assert!(t.events.is_empty(), "{:?}", t.events);
}

fn tcp_ts(seq: u32, ack: u32, flags: u8, tsval: u32, echo: u32) -> TcpInfo {
    TcpInfo {
        timestamp: Some((tsval, echo)),
        ..tcp(seq, ack, flags, 65535)
    }
}

/// suricata-verify bug-3286-02: forged RST and FIN from the "server" that do
/// not echo the SYN's timestamp are ignored and flagged; the real handshake
/// that follows is reassembled.
#[test]
fn answers_to_a_syn_with_a_wrong_timestamp_echo_are_ignored() {
    let mut t = T::new(StreamConfig::default());
    t.isn = [100, 900];
    t.pkt(C, tcp_ts(100, 0, SYN, 5000, 0), b"");
    let ev = t.pkt(S, tcp_ts(0, 101, RST | ACK, 100, 100), b"");
    assert_eq!(ev, vec![StreamEvent::PktInvalidTimestamp]);
    assert!(!t.s().rst_seen());
    let ev = t.pkt(S, tcp_ts(0, 101, FIN | ACK, 100, 100), b"");
    assert_eq!(ev, vec![StreamEvent::PktInvalidTimestamp]);
    assert_eq!(t.r.counters().rejected, 2);
    // An echo of 0, or no option at all, passes.
    assert!(t.pkt(S, tcp_ts(0, 101, ACK, 100, 0), b"").is_empty());
    assert!(t.pkt(S, tcp(0, 101, ACK, 65535), b"").is_empty());
    // A SYN/ACK with a wrong echo is rejected too, the right one accepted.
    let ev = t.pkt(S, tcp_ts(900, 101, SYN | ACK, 7000, 4999), b"");
    assert_eq!(ev, vec![StreamEvent::PktInvalidTimestamp]);
    assert_eq!(t.s().state(), SessionState::SynSent);
    assert!(t
        .pkt(S, tcp_ts(900, 101, SYN | ACK, 7000, 5000), b"")
        .is_empty());
    t.ack(C, 0, 65535);
    t.data(C, 0, b"GET");
    assert_eq!(t.out(C), b"GET");
}

/// bug-3286-03: a SYN without the timestamp option admits no echo but 0.
#[test]
fn answers_to_a_syn_without_timestamps_must_not_echo_one() {
    let mut t = T::new(StreamConfig::default());
    t.pkt(C, tcp(100, 0, SYN, 65535), b"");
    let ev = t.pkt(S, tcp_ts(0, 101, RST | ACK, 100, 100), b"");
    assert_eq!(ev, vec![StreamEvent::PktInvalidTimestamp]);
    assert!(!t.s().rst_seen());
    assert!(t.pkt(S, tcp_ts(0, 101, RST | ACK, 100, 0), b"").is_empty());
    assert!(t.s().rst_seen());
}

/// A SYN/ACK may answer an earlier SYN that was retransmitted with another
/// timestamp; the number of remembered SYNs is bounded.
#[test]
fn synack_may_echo_an_earlier_retransmitted_syn() {
    let mut t = T::new(StreamConfig::default());
    t.pkt(C, tcp_ts(100, 0, SYN, 10, 0), b"");
    t.pkt(C, tcp_ts(100, 0, SYN, 20, 0), b"");
    let ev = t.pkt(S, tcp_ts(900, 101, SYN | ACK, 1, 30), b"");
    assert_eq!(ev, vec![StreamEvent::PktInvalidTimestamp]);
    assert!(t.pkt(S, tcp_ts(900, 101, SYN | ACK, 1, 10), b"").is_empty());
    assert_eq!(t.s().state(), SessionState::SynRecv);

    let mut t = T::new(StreamConfig::default());
    let mut floods = 0;
    for ts in 1..=(crate::session::MAX_SYN_QUEUED as u32 + 2) {
        let ev = t.pkt(C, tcp_ts(100, 0, SYN, ts, 0), b"");
        floods += ev.contains(&StreamEvent::ThreeWhsSynFlood) as usize;
    }
    assert_eq!(floods, 1);
    assert_eq!(
        t.s().syn_ts_queue.len(),
        crate::session::MAX_SYN_QUEUED,
        "bounded"
    );
}

/// What the peer acknowledged is visible per direction (the pipeline waits
/// for it before the app protocol counts for packet rules, as Suricata).
#[test]
fn half_stats_report_the_peers_ack() {
    let mut t = est();
    t.data(C, 0, b"hello");
    assert_eq!(t.s().half(C).acked, 0);
    t.ack(S, 3, 65535);
    assert_eq!(t.s().half(C).acked, 3);
    t.ack(S, 5, 65535);
    assert_eq!(t.s().half(C).acked, 5);
    assert!(!t.s().is_async());
}
