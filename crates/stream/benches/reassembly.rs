//! Micro-benchmark of reassembly: one session, 1400-byte client segments,
//! the server ACKing every 10th segment (which releases retained bytes), in
//! order and with 10% of segments swapped with their successor. Prints
//! segments/s and MB/s (payload bytes), and checks that every byte was
//! delivered in order (the benchmark is also a correctness check).
//!
//! `cargo bench -p zonewatch-stream` (or `--bench reassembly -- SEGMENTS`).

use std::hint::black_box;
use std::time::{Duration, Instant};
use zonewatch_decode::tcp_flags::{ACK, PSH, SYN};
use zonewatch_stream::{Direction, Reassembler, StreamConfig, TcpInfo};

const SEG: usize = 1400;
const ISN_C: u32 = 4_000_000_000; // wraps during the run
const ISN_S: u32 = 12345;

fn tcp(seq: u32, ack: u32, flags: u8, wscale: Option<u8>) -> TcpInfo {
    TcpInfo {
        seq,
        ack,
        flags,
        window: 65535,
        wscale,
        ..Default::default()
    }
}

/// Feeds `order` (segment indexes) once; returns the elapsed time.
fn run(order: &[usize], payload: &[u8]) -> Duration {
    let mut r = Reassembler::new(StreamConfig {
        depth: 0,
        ..Default::default()
    });
    let mut s = r.new_session();
    let mut ev = Vec::new();
    let mut delivered = 0u64;
    let mut next = 0u64;
    let mut sink = |_d: Direction, off: u64, b: &[u8]| {
        assert_eq!(off, next, "out of order delivery");
        next = off + b.len() as u64;
        delivered += b.len() as u64;
        black_box(b);
    };
    let c1 = ISN_C.wrapping_add(1);
    let s1 = ISN_S.wrapping_add(1);
    r.segment(
        &mut s,
        Direction::ToServer,
        &tcp(ISN_C, 0, SYN, Some(14)),
        b"",
        &mut ev,
        &mut sink,
    );
    r.segment(
        &mut s,
        Direction::ToClient,
        &tcp(ISN_S, c1, SYN | ACK, Some(14)),
        b"",
        &mut ev,
        &mut sink,
    );
    r.segment(
        &mut s,
        Direction::ToServer,
        &tcp(c1, s1, ACK, None),
        b"",
        &mut ev,
        &mut sink,
    );
    r.segment(
        &mut s,
        Direction::ToClient,
        &tcp(s1, c1, ACK, None),
        b"",
        &mut ev,
        &mut sink,
    );
    let t0 = Instant::now();
    for (k, &i) in order.iter().enumerate() {
        let off = (i * SEG) as u32;
        let data = &payload[i * SEG..(i + 1) * SEG];
        let t = tcp(c1.wrapping_add(off), s1, ACK | PSH, None);
        r.segment(&mut s, Direction::ToServer, &t, data, &mut ev, &mut sink);
        if k % 10 == 9 {
            let t = tcp(s1, c1.wrapping_add((k * SEG) as u32), ACK, None);
            r.segment(&mut s, Direction::ToClient, &t, b"", &mut ev, &mut sink);
        }
    }
    let dt = t0.elapsed();
    r.close(s, &mut ev, &mut sink);
    assert_eq!(delivered, payload.len() as u64, "not everything delivered");
    assert!(ev.is_empty(), "unexpected events: {ev:?}");
    let c = r.counters();
    assert_eq!((c.gaps, c.mem_used), (0, 0));
    dt
}

fn report(name: &str, order: &[usize], payload: &[u8]) {
    let best = (0..5)
        .map(|_| run(order, payload))
        .min()
        .expect("five runs");
    let secs = best.as_secs_f64();
    println!(
        "{name:<22} {:>7} segments  {:>10.0} segments/s  {:>8.1} MB/s",
        order.len(),
        order.len() as f64 / secs,
        payload.len() as f64 / secs / 1e6,
    );
}

fn main() {
    let n: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(50_000);
    let payload: Vec<u8> = (0..n * SEG).map(|i| (i * 7 + i / 1400) as u8).collect();
    let in_order: Vec<usize> = (0..n).collect();
    let mut ooo = in_order.clone();
    let mut i = 0;
    while i + 1 < n {
        ooo.swap(i, i + 1);
        i += 10;
    }
    report("in-order", &in_order, &payload);
    report("10% out-of-order", &ooo, &payload);
}
