//! Fuzzes `zonewatch_stream::Reassembler`: the first 8 bytes pick a
//! configuration (depth, memcap, policy, midstream, async, segment limit,
//! retention) and the ISNs; the rest is a sequence of 8-byte packet headers
//! (direction, flags, SEQ and ACK near or far from the ISNs or raw, window,
//! window scale, payload length) each followed by its payload, fed to one
//! session in both directions.
//!
//! It must not panic, and after every packet: memory used is within the
//! memcap, sink offsets never go back in a direction, nothing is delivered
//! past the depth; after `close` no memory is held.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zonewatch_stream::{Direction, OverlapPolicy, Reassembler, StreamConfig, TcpInfo};

fn u16le(b: &[u8]) -> u16 {
    u16::from_le_bytes([b[0], b[1]])
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 8 {
        return;
    }
    let (hdr, mut rest) = data.split_at(8);
    let cfg = StreamConfig {
        depth: [0, 1, 100, 4096][(hdr[0] & 3) as usize],
        memcap_bytes: [0, 1, 300, 5000, 1 << 16][((hdr[0] >> 2) % 5) as usize],
        policy: OverlapPolicy::ALL[hdr[1] as usize % OverlapPolicy::ALL.len()],
        midstream: hdr[2] & 1 != 0,
        async_oneside: hdr[2] & 2 != 0,
        flush_on_close: hdr[2] & 4 != 0,
        max_ooo_segments_per_dir: [0, 1, 3, 1024][((hdr[2] >> 3) & 3) as usize],
        retain_unacked_bytes: [0, 10, 1000, 1 << 20][((hdr[2] >> 5) & 3) as usize],
    };
    let depth = cfg.depth;
    let memcap = cfg.memcap_bytes;
    let isn_c = u32::from_le_bytes([hdr[3], hdr[4], hdr[5], hdr[6]]);
    let isn = [isn_c, isn_c.rotate_left(hdr[7] as u32 % 32) ^ 0x5a5a_5a5a];

    let mut r = Reassembler::new(cfg);
    let mut s = r.new_session();
    let mut ev = Vec::new();
    let mut end = [0u64; 2];
    let mut check = |d: Direction, off: u64, b: &[u8]| {
        let i = (d == Direction::ToClient) as usize;
        assert!(off >= end[i], "sink went backwards: {off} < {}", end[i]);
        end[i] = off + b.len() as u64;
        assert!(!b.is_empty());
        assert!(depth == 0 || end[i] <= depth, "delivered past the depth");
    };
    while rest.len() >= 8 {
        let (h, tail) = rest.split_at(8);
        let i = (h[0] & 1) as usize;
        let dir = if i == 0 {
            Direction::ToServer
        } else {
            Direction::ToClient
        };
        let (sd, ad) = (u16le(&h[2..4]) as u32, u16le(&h[4..6]) as u32);
        let near = |base: u32, delta: u32, mode: u8| match mode & 3 {
            0 => base.wrapping_add(1).wrapping_add(delta),
            1 => base.wrapping_add(1).wrapping_sub(delta),
            2 => base.wrapping_add(delta << 16),
            _ => delta.wrapping_mul(0x9e37_79b9),
        };
        let seq = near(isn[i], sd, h[0] >> 1);
        let ack = near(isn[1 - i], ad, h[0] >> 3);
        let len = (h[7] as usize * 5).min(tail.len());
        let (payload, next) = tail.split_at(len);
        rest = next;
        let t = TcpInfo {
            seq,
            ack,
            flags: h[1],
            window: (h[6] as u16) << (h[0] >> 5),
            wscale: (h[6] & 0x80 != 0).then_some(h[6] & 0x0f),
            // A Fast Open option, so that data on SYNs is exercised too.
            tfo: h[6] & 0x40 != 0,
            ..Default::default()
        };
        ev.clear();
        r.segment(&mut s, dir, &t, payload, &mut ev, &mut check);
        let used = r.counters().mem_used;
        assert!(memcap == 0 || used <= memcap, "mem {used} > memcap {memcap}");
        assert_eq!(used, s.mem_bytes());
    }
    r.close(s, &mut ev, &mut check);
    assert_eq!(r.counters().mem_used, 0);
});
