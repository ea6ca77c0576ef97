//! NSH (Network Service Header, RFC 8300, ethertype 0x894F): the header is
//! checked as Suricata's `DecodeNSH` checks it and the inner packet decoded.

use zonewatch_decode::{decode, layer, DecodeEvent as E, LinkType, Transport};

/// The packet of suricata-verify `decode-nsh-type1`: Ethernet, NSH MD type 1
/// (24 bytes), IPv4, UDP 52377 -> 52464 with "data\n\n".
const NSH_MD1_IPV4_UDP: &str = concat!(
    "525400000001525400000002894f",
    "000601010000010200000001000000020000000300000004",
    "450000222844400040 11e96a0a0000010a000002",
    "cc99ccf0000e0000646174610a0a",
);

fn packet() -> Vec<u8> {
    let hex: String = NSH_MD1_IPV4_UDP.split_whitespace().collect();
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}

const NSH: usize = 14;

fn events(pkt: &[u8]) -> (Vec<E>, bool) {
    let d = decode(LinkType::Ethernet, pkt, pkt.len());
    assert!(d.layers & layer::NSH != 0, "counted as NSH");
    (d.events.iter().collect(), d.invalid)
}

#[test]
fn md_type_1_carrying_ipv4_is_decoded_through() {
    let pkt = packet();
    let d = decode(LinkType::Ethernet, &pkt, pkt.len());
    assert!(d.events.is_empty(), "{d:?}");
    assert!(!d.invalid);
    assert_eq!(d.ip.map(|ip| ip.offset), Some((NSH + 24) as u32));
    let Transport::Udp { sport, dport, .. } = d.transport else {
        panic!("{d:?}");
    };
    assert_eq!((sport, dport), (52377, 52464));
    assert_eq!(d.payload(&pkt), b"data\n\n");
    for l in [layer::ETHERNET, layer::NSH, layer::IPV4, layer::UDP] {
        assert!(d.layers & l != 0);
    }
    assert_eq!(layer::NAMES[layer::NSH.trailing_zeros() as usize], "nsh");
}

#[test]
fn malformed_headers_raise_suricatas_events() {
    let pkt = packet();
    // Suricata's unit tests (decode-nsh.c), one field changed each.
    assert_eq!(events(&pkt[..NSH + 7]), (vec![E::NshHeaderTooSmall], true));
    let mut p = pkt.clone();
    p[NSH] = 0xff;
    assert_eq!(events(&p), (vec![E::NshUnsupportedVersion], false));
    // Header length (6 words = 24 bytes) not shorter than what follows.
    assert_eq!(
        events(&pkt[..NSH + 24]),
        (vec![E::NshBadHeaderLength], true)
    );
    let mut p = pkt.clone();
    p[NSH + 2] = 0x00;
    assert_eq!(events(&p), (vec![E::NshReservedType], false));
    p[NSH + 2] = 0x0f;
    assert_eq!(events(&p), (vec![E::NshReservedType], false));
    p[NSH + 2] = 0x03;
    assert_eq!(events(&p), (vec![E::NshUnsupportedType], false));
    // MD type 1 must be 24 bytes long.
    let mut p = pkt.clone();
    p[NSH + 1] = 0x05;
    assert_eq!(events(&p), (vec![E::NshBadHeaderLength], true));
    // MD type 2 is variable: 20 bytes is fine, the inner packet then starts
    // 4 bytes early (inside the metadata) and is not IPv4.
    p[NSH + 2] = 0x02;
    let (ev, _) = events(&p);
    assert!(!ev.contains(&E::NshBadHeaderLength), "{ev:?}");
    let mut p = pkt.clone();
    p[NSH + 3] = 0x99;
    assert_eq!(events(&p), (vec![E::NshUnknownPayload], false));
}

#[test]
fn inner_ethernet_and_ipv6_are_decoded() {
    let pkt = packet();
    let inner_ip = &pkt[NSH + 24..];
    // Next protocol 3: an Ethernet frame.
    let mut p = pkt[..NSH + 24].to_vec();
    p[NSH + 3] = 3;
    p.extend_from_slice(&pkt[..12]);
    p.extend_from_slice(&[0x08, 0x00]);
    p.extend_from_slice(inner_ip);
    let d = decode(LinkType::Ethernet, &p, p.len());
    assert!(d.events.is_empty(), "{d:?}");
    assert_eq!(d.payload(&p), b"data\n\n");
    // Next protocol 2 with an IPv4 packet: the IPv6 decoder complains.
    let mut p = pkt.clone();
    p[NSH + 3] = 2;
    let d = decode(LinkType::Ethernet, &p, p.len());
    assert!(d.ip.is_none());
    assert!(!d.events.is_empty());
}

/// Hostile nesting (NSH carrying Ethernet carrying NSH ...) stops at the
/// layer limit.
#[test]
fn nested_nsh_is_bounded() {
    let pkt = packet();
    let mut hdr = pkt[..NSH + 24].to_vec();
    hdr[NSH + 3] = 3;
    let mut p = Vec::new();
    for _ in 0..40 {
        p.extend_from_slice(&hdr);
    }
    p.extend_from_slice(&pkt);
    let d = decode(LinkType::Ethernet, &p, p.len());
    assert!(d.events.iter().any(|e| e == E::TooManyLayers), "{d:?}");
    assert!(d.invalid);
}

/// Mutated and truncated NSH packets (a deterministic mini-fuzz; the
/// `decode` fuzz target starts from `fuzz/seeds/decode/nsh-*`): no panic,
/// offsets inside the buffer.
#[test]
fn mutated_nsh_packets_stay_in_bounds() {
    let base = packet();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for _ in 0..3000 {
        let mut p = base.clone();
        for _ in 0..(next() % 4 + 1) {
            let i = NSH + (next() as usize % (p.len() - NSH));
            p[i] = next() as u8;
        }
        p.truncate(NSH + next() as usize % (p.len() - NSH + 1));
        for wire in [p.len(), p.len() + 100] {
            let d = decode(LinkType::Ethernet, &p, wire);
            if let Some(ip) = d.ip {
                assert!(ip.offset as usize + ip.header_len as usize <= p.len());
            }
            assert!(d.payload(&p).len() <= p.len());
            if d.invalid {
                assert!(d.flow_tuple().is_none());
            }
        }
    }
}
