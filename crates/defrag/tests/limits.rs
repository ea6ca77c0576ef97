//! Timeouts, memory bounds and hostile input.

mod common;

use common::*;
use zonewatch_decode::DecodeEvent;
use zonewatch_defrag::{DefragConfig, Defragmenter, FragPolicy};

fn cfg() -> DefragConfig {
    DefragConfig::default()
}

/// DefragTimeoutTest: with the tracker table full of timed-out trackers, a
/// new datagram takes the place of one of them.
#[test]
fn full_table_of_timed_out_trackers() {
    let mut d = Defragmenter::new(DefragConfig {
        max_trackers: 16,
        ..cfg()
    });
    for i in 0..16u16 {
        assert!(push_at(&mut d, 100, &v4(ICMP, i, 0, true, &fill(b'A', 16)))
            .0
            .is_none());
    }
    assert_eq!(d.counters().trackers_active, 16);
    let (r, ev) = push_at(&mut d, 100 + 61, &v4(ICMP, 99, 0, true, &fill(b'A', 16)));
    assert!(r.is_none() && ev.is_empty());
    let c = d.counters();
    assert_eq!(c.trackers_active, 16);
    assert_eq!(c.timeouts, 1);
    assert_eq!(c.tracker_evictions, 0);
    // The new tracker is there: completing it reassembles.
    let (r, _) = push_at(&mut d, 100 + 62, &v4(ICMP, 99, 2, false, &fill(b'B', 8)));
    assert!(r.is_some());
}

#[test]
fn expire_drops_idle_trackers() {
    let mut d = Defragmenter::new(cfg());
    push_at(&mut d, 10, &v4(ICMP, 1, 0, true, &fill(b'A', 8)));
    push_at(&mut d, 40, &v4(ICMP, 2, 0, true, &fill(b'A', 8)));
    // Each fragment restarts its tracker's timeout.
    push_at(&mut d, 50, &v4(ICMP, 1, 2, true, &fill(b'C', 8)));
    d.expire(ts(100));
    assert_eq!(d.counters().trackers_active, 2);
    d.expire(ts(101));
    assert_eq!(d.counters().trackers_active, 1);
    assert_eq!(d.counters().timeouts, 1);
    d.expire(ts(110));
    assert_eq!(d.counters().trackers_active, 1);
    d.expire(ts(200));
    let c = d.counters();
    assert_eq!((c.trackers_active, c.timeouts, c.mem_used), (0, 2, 0));
    // The rest of datagram 1 comes too late.
    assert!(push_at(&mut d, 201, &v4(ICMP, 1, 1, false, &fill(b'B', 8)))
        .0
        .is_none());
}

#[test]
fn timed_out_tracker_is_not_joined_without_expire() {
    let mut d = Defragmenter::new(cfg());
    push_at(&mut d, 10, &v4(UDP, 1, 0, true, &fill(b'A', 8)));
    let (r, _) = push_at(&mut d, 71, &v4(UDP, 1, 1, false, &fill(b'B', 8)));
    assert!(r.is_none());
    let c = d.counters();
    assert_eq!((c.timeouts, c.trackers_active), (1, 1));
    // Within the timeout it would have joined.
    let mut d = Defragmenter::new(cfg());
    push_at(&mut d, 10, &v4(UDP, 1, 0, true, &fill(b'A', 8)));
    assert!(push_at(&mut d, 70, &v4(UDP, 1, 1, false, &fill(b'B', 8)))
        .0
        .is_some());
}

#[test]
fn tracker_limit_evicts_least_recently_used() {
    let mut d = Defragmenter::new(DefragConfig {
        max_trackers: 4,
        ..cfg()
    });
    for i in 0..10u16 {
        push_at(
            &mut d,
            100 + i64::from(i),
            &v4(UDP, i, 0, true, &fill(b'A', 8)),
        );
    }
    let c = d.counters();
    assert_eq!(
        (c.trackers_active, c.tracker_evictions, c.timeouts),
        (4, 6, 0)
    );
    assert_eq!(c.memcap_drops, 0);
    // The oldest are gone, the newest complete.
    assert!(push_at(&mut d, 120, &v4(UDP, 0, 1, false, &fill(b'B', 8)))
        .0
        .is_none());
    assert!(push_at(&mut d, 120, &v4(UDP, 9, 1, false, &fill(b'B', 8)))
        .0
        .is_some());
}

#[test]
fn memcap_bounds_new_and_growing_trackers() {
    let memcap = 8 * 1024;
    let mut d = Defragmenter::new(DefragConfig {
        memcap_bytes: memcap,
        ..cfg()
    });
    // New datagrams evict old ones to fit.
    for i in 0..50u16 {
        let (_, ev) = push(&mut d, &v4(UDP, i, 0, true, &fill(b'A', 1000)));
        assert!(ev.is_empty());
        assert!(d.counters().mem_used <= memcap);
    }
    let c = d.counters();
    assert!(c.tracker_evictions > 0);
    assert!(c.trackers_active < 50);
    assert!(c.mem_peak <= memcap);
    // One datagram growing past the memcap loses fragments.
    let mut dropped = 0;
    for k in 1..20u16 {
        let (_, ev) = push(&mut d, &v4(UDP, 1000, k * 125, true, &fill(b'B', 1000)));
        if ev.contains(&DecodeEvent::Ipv4FragIgnored) {
            dropped += 1;
        }
        assert!(d.counters().mem_used <= memcap);
    }
    assert!(dropped > 0);
    assert_eq!(d.counters().memcap_drops, dropped);
    // A fragment larger than the memcap itself never fits.
    let mut d = Defragmenter::new(DefragConfig {
        memcap_bytes: 500,
        ..cfg()
    });
    let (r, ev) = push(&mut d, &v6(UDP, 1, 0, true, &fill(b'A', 1000)));
    assert!(r.is_none());
    assert_eq!(ev, vec![DecodeEvent::Ipv6FragIgnored]);
    let c = d.counters();
    assert_eq!((c.memcap_drops, c.trackers_active, c.mem_used), (1, 0, 0));
}

#[test]
fn fragment_limit_per_tracker() {
    let mut d = Defragmenter::new(DefragConfig {
        max_frags_per_tracker: 4,
        ..cfg()
    });
    for k in 0..4u16 {
        assert!(push(&mut d, &v4(UDP, 5, k, true, &fill(b'A', 8)))
            .1
            .is_empty());
    }
    let (r, ev) = push(&mut d, &v4(UDP, 5, 4, false, &fill(b'B', 8)));
    assert!(r.is_none());
    assert_eq!(ev, vec![DecodeEvent::Ipv4FragIgnored]);
    assert_eq!(d.counters().memcap_drops, 1);
}

/// DefragTooLargeIpv4Test: a fragment ending past 65535 bytes is dropped
/// with an event, and no tracker is made for it.
#[test]
fn too_large_fragments() {
    let mut d = Defragmenter::new(cfg());
    let (r, ev) = push(&mut d, &v4(ICMP, 1, 8183, false, &fill(b'A', 71)));
    assert!(r.is_none());
    assert_eq!(ev, vec![DecodeEvent::Ipv4FragPktTooLarge]);
    // 20 + 65512 + 3 = 65535 still fits.
    let (_, ev) = push(&mut d, &v4(ICMP, 2, 8189, false, &fill(b'A', 3)));
    assert!(ev.is_empty());
    let (r, ev) = push(&mut d, &v6(UDP, 1, 8191, false, &fill(b'A', 8)));
    assert!(r.is_none());
    assert_eq!(ev, vec![DecodeEvent::Ipv6FragPktTooLarge]);
    let c = d.counters();
    assert_eq!((c.too_large, c.trackers_active), (2, 1));
}

/// IPv4 options count: a datagram whose header plus data passes 65535 is
/// dropped at reassembly.
#[test]
fn too_large_datagram_with_options() {
    let mut d = Defragmenter::new(cfg());
    // First fragment with a 24-byte header (one NOP option word).
    let mut first = v4(UDP, 9, 0, true, &fill(b'A', 8));
    first[0] = 0x46;
    first.splice(20..20, [1u8, 1, 1, 0]);
    let total = first.len() as u16;
    first[2..4].copy_from_slice(&total.to_be_bytes());
    first[10..12].copy_from_slice(&[0, 0]);
    let c = ipv4_checksum(&first[..24]);
    first[10..12].copy_from_slice(&c.to_be_bytes());
    assert!(push(&mut d, &first).0.is_none());
    // Data up to 65512 + 3 = 65515: 20 + 65515 is fine per fragment, but
    // 24 + 65515 is not.
    for k in 1..=8188u16 / 185 {
        push(&mut d, &v4(UDP, 9, k, true, &fill(b'B', 8)));
    }
    let mut mid = Vec::new();
    let mut off = 8u16;
    while off < 65512 {
        let n = 1480.min(65512 - off as usize);
        mid.push(v4(UDP, 9, off / 8, true, &fill(b'C', n)));
        off += n as u16;
    }
    for m in &mid {
        assert!(push(&mut d, m).0.is_none());
    }
    let (r, ev) = push(&mut d, &v4(UDP, 9, 65512 / 8, false, &fill(b'D', 3)));
    assert!(r.is_none());
    assert!(ev.contains(&DecodeEvent::Ipv4FragPktTooLarge), "{ev:?}");
    let c = d.counters();
    assert_eq!((c.trackers_active, c.mem_used), (0, 0));
}

/// DefragNoDataIpv4Test: no data, nothing stored.
#[test]
fn zero_length_fragments() {
    let mut d = Defragmenter::new(cfg());
    let (r, ev) = push(&mut d, &v4(ICMP, 12, 1, false, &[]));
    assert!(r.is_none() && ev.is_empty());
    let (r, _) = push(&mut d, &v6(ICMPV6, 12, 1, true, &[]));
    assert!(r.is_none());
    let c = d.counters();
    assert_eq!((c.trackers_active, c.mem_used, c.ignored), (0, 0, 2));
}

/// Two last fragments with different ends: the first one ends the
/// datagram (BSD trims the second to what the first lacks).
#[test]
fn duplicate_last_fragments_with_different_ends() {
    let mut d = Defragmenter::new(cfg());
    push(&mut d, &v4(UDP, 1, 2, false, &fill(b'L', 8)));
    let (_, ev) = push(&mut d, &v4(UDP, 1, 2, false, &fill(b'M', 16)));
    assert_eq!(ev, vec![DecodeEvent::Ipv4FragOverlap]);
    let r = push(&mut d, &v4(UDP, 1, 0, true, &fill(b'A', 16)))
        .0
        .expect("reassembled");
    assert_eq!(r.len(), 20 + 24);
    assert_eq!(
        &r[20..],
        &[&fill(b'A', 16)[..], &fill(b'L', 8)[..]].concat()[..]
    );
}

/// Captures cut short by the snap length cannot be reassembled: such
/// fragments are ignored, not stored short.
#[test]
fn snapped_fragments_are_ignored() {
    let mut d = Defragmenter::new(cfg());
    let p = v4(UDP, 1, 0, true, &fill(b'A', 64));
    let dd = zonewatch_decode::decode(zonewatch_decode::LinkType::Raw, &p[..40], p.len());
    assert!(dd.ip.unwrap().frag.is_some());
    let mut ev = Vec::new();
    assert!(d.push(ts(1), &dd, &p[..40], &mut ev).is_none());
    let c = d.counters();
    assert_eq!((c.ignored, c.trackers_active), (1, 0));
}

#[test]
fn non_fragments_are_ignored() {
    let mut d = Defragmenter::new(cfg());
    let p = v4(UDP, 1, 0, false, &[0, 1, 0, 2, 0, 8, 0, 0]);
    let dd = dec(&p);
    let mut ev = Vec::new();
    assert!(d.push(ts(1), &dd, &p, &mut ev).is_none());
    assert_eq!(d.counters().fragments, 0);
}

/// As many 8-byte fragments as an IPv4 datagram can have (8189), in the
/// order that keeps every one of them waiting for a hole to close, for
/// every policy: completes when the hole closes, in bounded time.
#[test]
fn many_tiny_fragments() {
    for policy in FragPolicy::ALL {
        let mut d = Defragmenter::new(DefragConfig { policy, ..cfg() });
        let n = 8189u16;
        assert!(d.config().max_frags_per_tracker >= n as usize);
        let start = std::time::Instant::now();
        // The last fragment first, then everything but the first, backwards.
        assert!(push(&mut d, &v4(UDP, 1, n - 1, false, &fill(b'Z', 8)))
            .0
            .is_none());
        for k in (1..n - 1).rev() {
            let (r, ev) = push(&mut d, &v4(UDP, 1, k, true, &fill(b'B', 8)));
            assert!(r.is_none() && ev.is_empty());
        }
        let r = push(&mut d, &v4(UDP, 1, 0, true, &fill(b'A', 8))).0;
        let r = r.unwrap_or_else(|| panic!("{policy:?}: not reassembled"));
        assert_eq!(r.len(), 20 + 8 * n as usize);
        assert_eq!(u16::from_be_bytes([r[2], r[3]]) as usize, r.len());
        eprintln!("{policy:?}: {n} tiny fragments in {:?}", start.elapsed());
        // Past the per-tracker limit, fragments are refused.
        let mut d = Defragmenter::new(DefragConfig {
            policy,
            max_frags_per_tracker: 1000,
            ..cfg()
        });
        for k in 0..1000 {
            push(&mut d, &v4(UDP, 2, k + 1, true, &fill(b'B', 8)));
        }
        let (_, ev) = push(&mut d, &v4(UDP, 2, 0, true, &fill(b'A', 8)));
        assert_eq!(ev, vec![DecodeEvent::Ipv4FragIgnored]);
    }
}

/// Overlapping, out-of-range and duplicate fragments from a small
/// deterministic generator, for every policy: nothing panics, memory stays
/// under the memcap, and every datagram returned is a consistent IP packet.
#[test]
fn random_fragments_stay_bounded() {
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut rnd = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for policy in FragPolicy::ALL {
        let memcap = 64 * 1024;
        let mut d = Defragmenter::new(DefragConfig {
            policy,
            memcap_bytes: memcap,
            max_trackers: 8,
            max_frags_per_tracker: 64,
            timeout_secs: 5,
        });
        let mut out = 0;
        for i in 0..20_000i64 {
            let r = rnd();
            let id = (r % 5) as u16;
            let off8 = ((r >> 8) % 24) as u16;
            let len = ((r >> 16) % 40) as usize;
            let mf = (r >> 24) % 4 != 0;
            let v6 = (r >> 26) % 2 == 0;
            let c = b'a' + ((r >> 28) % 26) as u8;
            let p = if v6 {
                common::v6(UDP, u32::from(id), off8, mf, &fill(c, len))
            } else {
                v4(UDP, id, off8, mf, &fill(c, len))
            };
            let dd = dec(&p);
            if dd.ip.and_then(|i| i.frag).is_none() {
                continue;
            }
            let mut ev = Vec::new();
            if let Some(buf) = d.push(ts(i / 1000), &dd, &p, &mut ev) {
                out += 1;
                let rd = dec(&buf);
                let ip = rd.ip.expect("reassembled decodes");
                assert!(ip.frag.is_none());
                assert_eq!(ip.version, if v6 { 6 } else { 4 });
                assert_eq!((ip.header_len + ip.payload_len) as usize, buf.len());
            }
            let c = d.counters();
            assert!(c.mem_used <= memcap, "{policy:?}: {c:?}");
            assert!(c.trackers_active <= 8);
            if i % 997 == 0 {
                d.expire(ts(i / 1000));
            }
        }
        d.expire(ts(1_000_000));
        let c = d.counters();
        assert_eq!((c.trackers_active, c.mem_used), (0, 0), "{policy:?}");
        assert!(out > 0, "{policy:?}: nothing reassembled");
        eprintln!("{policy:?}: {c:?}");
    }
}
