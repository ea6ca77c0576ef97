//! Overlap policies and reassembly, replaying the scenarios of Suricata's
//! `defrag.c` unit tests (Sturges & Novak, "Target-Based Fragmentation
//! Reassembly", and the regression tests after them) with their expected
//! results.

mod common;

use common::*;
use zonewatch_decode::{DecodeEvent, Transport};
use zonewatch_defrag::{DefragConfig, Defragmenter, FragPolicy};

fn df(policy: FragPolicy) -> Defragmenter {
    Defragmenter::new(DefragConfig {
        policy,
        ..DefragConfig::default()
    })
}

/// The 17 fragments of the Sturges/Novak scenario: (content, offset in
/// bytes, length, more fragments).
const SN: [(u8, u16, usize, bool); 17] = [
    (b'A', 0, 24, true),
    (b'B', 32, 16, true),
    (b'C', 48, 24, true),
    (b'D', 80, 8, true),
    (b'E', 104, 16, true),
    (b'F', 120, 24, true),
    (b'G', 144, 16, true),
    (b'H', 160, 16, true),
    (b'I', 176, 8, true),
    (b'J', 8, 32, true),
    (b'K', 48, 24, true),
    (b'L', 72, 24, true),
    (b'M', 96, 24, true),
    (b'N', 128, 8, true),
    (b'O', 152, 8, true),
    (b'P', 160, 8, true),
    (b'Q', 176, 16, false),
];

/// Expands "AAJ..." (one letter per 8-byte block) to the expected bytes.
fn blocks(s: &str) -> Vec<u8> {
    s.bytes().flat_map(|b| [b; 8]).collect()
}

fn sturges_novak(policy: FragPolicy, v6: bool) -> Vec<u8> {
    let mut d = df(policy);
    let mut overlaps = 0;
    let ov = if v6 {
        DecodeEvent::Ipv6FragOverlap
    } else {
        DecodeEvent::Ipv4FragOverlap
    };
    let mut out = None;
    for (i, &(c, off, len, mf)) in SN.iter().enumerate() {
        let p = if v6 {
            common::v6(ICMPV6, 1, off >> 3, mf, &fill(c, len))
        } else {
            v4(ICMP, 1, off >> 3, mf, &fill(c, len))
        };
        let (r, ev) = push(&mut d, &p);
        if i < 9 {
            assert!(
                !ev.contains(&ov),
                "{policy:?}: original fragment {i} overlaps"
            );
        } else if ev.contains(&ov) {
            overlaps += 1;
        }
        if i < 16 {
            assert!(r.is_none(), "{policy:?}: reassembled early at {i}");
        } else {
            out = r;
        }
    }
    assert!(overlaps > 0, "{policy:?}: no overlap event");
    let r = out.unwrap_or_else(|| panic!("{policy:?}: not reassembled"));
    let c = d.counters();
    assert_eq!(c.trackers_active, 0);
    assert_eq!(c.mem_used, 0, "{policy:?}: memory left after reassembly");
    let dd = dec(&r);
    let ip = dd.ip.expect("reassembled decodes");
    assert!(ip.frag.is_none());
    if v6 {
        assert_eq!(u16::from_be_bytes([r[4], r[5]]), 192);
        assert_eq!(r[6], ICMPV6, "next header names the payload");
        r[40..].to_vec()
    } else {
        assert_eq!(u16::from_be_bytes([r[2], r[3]]), 20 + 192);
        assert_eq!(&r[6..8], &[0, 0]);
        assert_eq!(ipv4_checksum(&r[..20]), 0, "checksum");
        r[20..].to_vec()
    }
}

const SN_EXPECTED: [(FragPolicy, &str); 6] = [
    (FragPolicy::Bsd, "AAAJJBCCCLLLMMMFFFGGHHIQ"),
    (FragPolicy::Linux, "AAAJJBKKKLLLMMMFFFGGPHQQ"),
    (FragPolicy::Windows, "AAAJBBCCCLLLMEEFFFGGHHIQ"),
    (FragPolicy::Solaris, "AAAJBBCCCLLLMMMFFFGGHHIQ"),
    (FragPolicy::First, "AAAJBBCCCLDLMEEFFFGGHHIQ"),
    (FragPolicy::Last, "AJJJJBKKKLLLMMMFNFGOPHQQ"),
];

#[test]
fn sturges_novak_ipv4() {
    for (policy, exp) in SN_EXPECTED {
        assert_eq!(
            String::from_utf8_lossy(&sturges_novak(policy, false)),
            String::from_utf8_lossy(&blocks(exp)),
            "{policy:?}"
        );
    }
}

#[test]
fn sturges_novak_ipv6() {
    for (policy, exp) in SN_EXPECTED {
        assert_eq!(
            String::from_utf8_lossy(&sturges_novak(policy, true)),
            String::from_utf8_lossy(&blocks(exp)),
            "{policy:?}"
        );
    }
}

/// BSD-right has no case in Suricata's policy switch: nothing is trimmed,
/// and reassembly copies in offset order (equal offsets in arrival order),
/// so each byte comes from the covering fragment with the highest offset,
/// the latest of those on a tie.
#[test]
fn sturges_novak_bsd_right() {
    let mut exp = vec![0u8; 192];
    let mut order: Vec<(u16, usize)> = (0..SN.len()).map(|i| (SN[i].1, i)).collect();
    order.sort();
    for (_, i) in order {
        let (c, off, len, _) = SN[i];
        for b in &mut exp[off as usize..off as usize + len] {
            *b = c;
        }
    }
    assert_eq!(
        String::from_utf8_lossy(&sturges_novak(FragPolicy::BsdRight, false)),
        String::from_utf8_lossy(&exp)
    );
    assert_eq!(
        String::from_utf8_lossy(&sturges_novak(FragPolicy::BsdRight, true)),
        String::from_utf8_lossy(&exp)
    );
}

fn simple(v6: bool, order: [usize; 3]) {
    for policy in FragPolicy::ALL {
        let mut d = df(policy);
        let pk = |c, off, mf, n| {
            if v6 {
                common::v6(ICMPV6, 12, off, mf, &fill(c, n))
            } else {
                v4(ICMP, 12, off, mf, &fill(c, n))
            }
        };
        let p = [
            pk(b'A', 0, true, 8),
            pk(b'B', 1, true, 8),
            pk(b'C', 2, false, 3),
        ];
        assert!(push(&mut d, &p[order[0]]).0.is_none());
        assert!(push(&mut d, &p[order[1]]).0.is_none());
        let (r, ev) = push(&mut d, &p[order[2]]);
        let r = r.expect("reassembled");
        assert!(ev.is_empty(), "{ev:?}");
        let (hl, len) = if v6 {
            (40, u16::from_be_bytes([r[4], r[5]]) as usize + 40)
        } else {
            (20, u16::from_be_bytes([r[2], r[3]]) as usize)
        };
        assert_eq!(len, hl + 19);
        assert_eq!(r.len(), hl + 19);
        assert_eq!(&r[hl..], b"AAAAAAAABBBBBBBBCCC");
        assert_eq!(d.counters().reassembled, 1);
        assert_eq!(d.counters().overlaps, 0);
    }
}

#[test]
fn in_order_and_reverse() {
    simple(false, [0, 1, 2]);
    simple(false, [2, 1, 0]);
    simple(false, [1, 2, 0]);
    simple(true, [0, 1, 2]);
    simple(true, [2, 1, 0]);
    simple(true, [2, 0, 1]);
}

/// DefragTestJeremyLinux.
#[test]
fn jeremy_linux() {
    let mut d = df(FragPolicy::Linux);
    assert!(push(&mut d, &v4(ICMP, 1, 0, true, &fill(b'A', 24)))
        .0
        .is_none());
    assert!(push(&mut d, &v4(ICMP, 1, 40 >> 3, true, &fill(b'B', 48)))
        .0
        .is_none());
    assert!(push(&mut d, &v4(ICMP, 1, 24 >> 3, true, &fill(b'C', 48)))
        .0
        .is_none());
    let r = push(&mut d, &v4(ICMP, 1, 88 >> 3, false, &fill(b'D', 14)))
        .0
        .expect("reassembled");
    let mut exp = blocks("AAACCCCCCBB");
    exp.extend_from_slice(b"DDDDDDDDDDDDDD");
    assert_eq!(
        String::from_utf8_lossy(&r[20..]),
        String::from_utf8_lossy(&exp)
    );
}

/// DefragBsdFragmentAfterNoMfIpv{4,6}Test: a fragment at the last one's
/// offset after it still counts.
#[test]
fn bsd_fragment_after_no_mf() {
    for v6 in [false, true] {
        let mut d = df(FragPolicy::Bsd);
        let pk = |c, off: u16, mf, n| {
            if v6 {
                common::v6(ICMP, 0x96, off >> 3, mf, &fill(c, n))
            } else {
                v4(ICMP, 0x96, off >> 3, mf, &fill(c, n))
            }
        };
        assert!(push(&mut d, &pk(b'A', 24, false, 16)).0.is_none());
        assert!(push(&mut d, &pk(b'B', 8, true, 16)).0.is_none());
        assert!(push(&mut d, &pk(b'C', 16, true, 16)).0.is_none());
        let r = push(&mut d, &pk(b'D', 0, true, 8)).0.expect("reassembled");
        let hl = if v6 { 40 } else { 20 };
        assert_eq!(
            String::from_utf8_lossy(&r[hl..]),
            String::from_utf8_lossy(&blocks("DBBCA"))
        );
    }
}

/// DefragBsdSubsequentOverlapsStartOfOriginal{Ipv4,Ipv6}Test and _2.
#[test]
fn bsd_subsequent_overlaps_start_of_original() {
    for v6 in [false, true] {
        let hl = if v6 { 40 } else { 20 };
        let pk = |id: u32, off: u16, mf, c: &[u8]| {
            if v6 {
                common::v6(ICMP, id, off >> 3, mf, c)
            } else {
                v4(ICMP, id as u16, off >> 3, mf, c)
            }
        };
        let mut d = df(FragPolicy::Bsd);
        assert!(push(&mut d, &pk(1, 8, false, &fill(b'E', 24))).0.is_none());
        let r = push(&mut d, &pk(1, 0, true, &fill(b'M', 24)))
            .0
            .expect("reassembled");
        assert_eq!(&r[hl..], &blocks("MMME")[..]);

        let mut d = df(FragPolicy::Bsd);
        assert!(push(&mut d, &pk(6, 16, true, b"AABBCCDDAABBDDCC"))
            .0
            .is_none());
        assert!(push(&mut d, &pk(6, 8, true, b"AACCBBDDAACCDDBB"))
            .0
            .is_none());
        assert!(push(&mut d, &pk(6, 0, true, b"ZZZZZZZZ")).0.is_none());
        let r = push(&mut d, &pk(6, 32, false, b"DDCCBBAA"))
            .0
            .expect("reassembled");
        assert_eq!(&r[hl + 8..], b"AACCBBDDAACCDDBBAABBDDCCDDCCBBAA");
    }
}

/// DefragBsdMissingFragment{Ipv4,Ipv6}Test: a hole, no reassembly.
#[test]
fn bsd_missing_fragment() {
    for v6 in [false, true] {
        let pk = |off: u16, mf, c: &[u8]| {
            if v6 {
                common::v6(ICMP, 189, off >> 3, mf, c)
            } else {
                v4(ICMP, 189, off >> 3, mf, c)
            }
        };
        let mut d = df(FragPolicy::Bsd);
        for p in [
            pk(16, true, b"AABBCCDDAABBDDCC"),
            pk(40, true, b"AACCBBDD"),
            pk(8, true, b"AACCDDBBAADDBBCC"),
            pk(0, true, b"ZZZZZZZZ"),
            pk(48, false, b"DDCCBBAA"),
        ] {
            assert!(push(&mut d, &p).0.is_none());
        }
        assert_eq!(d.counters().trackers_active, 1);
    }
}

/// DefragMfIpv{4,6}Test: only the fragments up to the last one count.
#[test]
fn fragment_past_the_last_one_is_left_out() {
    for v6 in [false, true] {
        let pk = |off: u16, mf, c| {
            if v6 {
                common::v6(ICMPV6, 9, off, mf, &fill(c, 8))
            } else {
                v4(ICMP, 9, off, mf, &fill(c, 8))
            }
        };
        let mut d = df(FragPolicy::Bsd);
        assert!(push(&mut d, &pk(2, true, b'C')).0.is_none());
        assert!(push(&mut d, &pk(0, true, b'A')).0.is_none());
        let r = push(&mut d, &pk(1, false, b'B')).0.expect("reassembled");
        if v6 {
            assert_eq!(u16::from_be_bytes([r[4], r[5]]), 16);
            assert_eq!(&r[40..], b"AAAAAAAABBBBBBBB");
        } else {
            assert_eq!(u16::from_be_bytes([r[2], r[3]]), 36);
            assert_eq!(&r[20..], b"AAAAAAAABBBBBBBB");
        }
    }
}

/// DefragTestBadProto: the IPv4 protocol is part of the key.
#[test]
fn ipv4_protocol_is_part_of_the_key() {
    let mut d = df(FragPolicy::Bsd);
    assert!(push(&mut d, &v4(ICMP, 12, 0, true, &fill(b'A', 8)))
        .0
        .is_none());
    assert!(push(&mut d, &v4(UDP, 12, 1, true, &fill(b'B', 8)))
        .0
        .is_none());
    assert!(push(&mut d, &v4(ICMP, 12, 2, false, &fill(b'C', 3)))
        .0
        .is_none());
    assert_eq!(d.counters().trackers_active, 2);
}

/// DefragVlanTest / DefragVlanQinQTest.
#[test]
fn vlans_are_part_of_the_key() {
    for (v1, v2, joins) in [
        ([0, 0], [0, 0], true),
        ([1, 0], [2, 0], false),
        ([1, 1], [1, 2], false),
        ([5, 6], [5, 6], true),
    ] {
        let mut d = df(FragPolicy::Bsd);
        let p1 = v4(ICMP, 1, 0, true, &fill(b'A', 8));
        let p2 = v4(ICMP, 1, 1, false, &fill(b'B', 8));
        let mut d1 = dec(&p1);
        d1.vlan = v1;
        let mut d2 = dec(&p2);
        d2.vlan = v2;
        let mut ev = Vec::new();
        assert!(d.push(ts(1), &d1, &p1, &mut ev).is_none());
        assert_eq!(d.push(ts(1), &d2, &p2, &mut ev).is_some(), joins);
    }
}

/// Addresses are directional: the reverse direction is another datagram.
#[test]
fn direction_is_part_of_the_key() {
    let mut d = df(FragPolicy::Bsd);
    let a = v4_addrs(UDP, 7, 0, true, &fill(b'A', 8), [1, 1, 1, 1], [2, 2, 2, 2]);
    let b = v4_addrs(UDP, 7, 1, false, &fill(b'B', 8), [2, 2, 2, 2], [1, 1, 1, 1]);
    assert!(push(&mut d, &a).0.is_none());
    assert!(push(&mut d, &b).0.is_none());
}

#[test]
fn duplicate_fragments_raise_overlap() {
    let mut d = df(FragPolicy::Bsd);
    let a = v4(ICMP, 3, 0, true, &fill(b'A', 16));
    assert!(push(&mut d, &a).1.is_empty());
    let (r, ev) = push(&mut d, &a);
    assert!(r.is_none());
    assert_eq!(ev, vec![DecodeEvent::Ipv4FragOverlap]);
    let (r, ev) = push(&mut d, &v4(ICMP, 3, 2, false, &fill(b'B', 4)));
    assert!(ev.is_empty());
    assert_eq!(
        &r.expect("reassembled")[20..],
        &[&fill(b'A', 16)[..], b"BBBB"].concat()[..]
    );
    assert_eq!(d.counters().overlaps, 1);
}

fn udp_datagram(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut u = Vec::new();
    u.extend_from_slice(&sport.to_be_bytes());
    u.extend_from_slice(&dport.to_be_bytes());
    u.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    u.extend_from_slice(&[0, 0]); // no checksum
    u.extend_from_slice(payload);
    u
}

/// A real UDP datagram, cut into 16-byte fragments and shuffled, comes
/// back as a packet that decodes as UDP with a valid header.
#[test]
fn ipv4_udp_round_trip() {
    let payload: Vec<u8> = (0..200u32).map(|i| (i * 7) as u8).collect();
    let udp = udp_datagram(5353, 53, &payload);
    let mut frags: Vec<Vec<u8>> = udp
        .chunks(16)
        .enumerate()
        .map(|(i, c)| v4(UDP, 0x1234, (i * 2) as u16, (i + 1) * 16 < udp.len(), c))
        .collect();
    frags.swap(0, 5);
    frags.swap(3, 9);
    let last = frags.len() - 1;
    frags.swap(2, last);
    for policy in FragPolicy::ALL {
        let mut d = df(policy);
        let mut out = None;
        for (i, f) in frags.iter().enumerate() {
            let (r, ev) = push(&mut d, f);
            assert!(ev.is_empty());
            if i == last {
                out = r;
            } else {
                assert!(r.is_none());
            }
        }
        let r = out.expect("reassembled");
        assert_eq!(r.len(), 20 + udp.len());
        assert_eq!(&r[20..], &udp[..]);
        assert_eq!(ipv4_checksum(&r[..20]), 0);
        let dd = dec(&r);
        assert!(!dd.invalid, "{dd:?}");
        let ip = dd.ip.unwrap();
        assert!(ip.frag.is_none());
        assert_eq!(ip.payload_len as usize, udp.len());
        match dd.transport {
            Transport::Udp {
                sport,
                dport,
                payload_len,
                ..
            } => {
                assert_eq!((sport, dport, payload_len), (5353, 53, 200));
            }
            t => panic!("not UDP: {t:?}"),
        }
    }
}

/// IPv6 with a destination-options header before the fragment header: the
/// unfragmentable part is kept and now chains to UDP.
#[test]
fn ipv6_unfragmentable_headers_kept() {
    let payload: Vec<u8> = (0..100u8).collect();
    let udp = udp_datagram(1000, 2000, &payload);
    let dstopt: &[u8] = &[0, 0, 1, 4, 0, 0, 0, 0];
    let a = v6_ext(UDP, 0xdead, 0, true, &udp[..56], &[dstopt]);
    let b = v6_ext(UDP, 0xdead, 7, false, &udp[56..], &[dstopt]);
    let mut d = df(FragPolicy::Bsd);
    assert!(push(&mut d, &b).0.is_none());
    let r = push(&mut d, &a).0.expect("reassembled");
    assert_eq!(r.len(), 40 + 8 + udp.len());
    assert_eq!(u16::from_be_bytes([r[4], r[5]]) as usize, 8 + udp.len());
    assert_eq!(r[6], 60, "IPv6 header still names the options header");
    assert_eq!(r[40], UDP, "options header now names UDP");
    assert_eq!(&r[48..], &udp[..]);
    let dd = dec(&r);
    assert!(!dd.invalid, "{dd:?}");
    assert!(dd.ip.unwrap().frag.is_none());
    assert!(matches!(
        dd.transport,
        Transport::Udp {
            sport: 1000,
            dport: 2000,
            ..
        }
    ));
}

#[test]
fn ipv6_invalid_length_is_flagged_and_used() {
    let mut d = df(FragPolicy::Bsd);
    let (r, ev) = push(&mut d, &v6(ICMPV6, 4, 0, true, &fill(b'A', 7)));
    assert!(r.is_none());
    assert_eq!(ev, vec![DecodeEvent::Ipv6FragInvalidLength]);
    // Not a multiple of 8, so the next fragment leaves a one-byte hole.
    let (r, _) = push(&mut d, &v6(ICMPV6, 4, 1, false, &fill(b'B', 8)));
    assert!(r.is_none());
    let (r, ev) = push(&mut d, &v6(ICMPV6, 4, 0, true, &fill(b'A', 8)));
    assert_eq!(ev, vec![DecodeEvent::Ipv6FragOverlap]);
    assert_eq!(&r.expect("reassembled")[40..], &blocks("AB")[..]);
}
