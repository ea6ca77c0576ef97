//! Regression tests: each pins one decoder bug that was found and fixed,
//! named after what it pins.

use zonewatch_decode::{decode, DecodeEvent as E, LinkType, Transport, TunnelKind};

const ALL_LINKS: [LinkType; 7] = [
    LinkType::Ethernet,
    LinkType::Null,
    LinkType::Raw,
    LinkType::Ipv4,
    LinkType::Ipv6,
    LinkType::LinuxSll,
    LinkType::LinuxSll2,
];

fn fixture_packet(name: &str, index: usize) -> Vec<u8> {
    let path = format!("{}/../../fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let b = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    // Little-endian classic pcap, as make-fixtures.py writes it.
    assert_eq!(&b[..4], &[0xd4, 0xc3, 0xb2, 0xa1]);
    let mut at = 24;
    for i in 0.. {
        let incl = u32::from_le_bytes(b[at + 8..at + 12].try_into().unwrap()) as usize;
        if i == index {
            return b[at + 16..at + 16 + incl].to_vec();
        }
        at += 16 + incl;
    }
    unreachable!()
}

/// An inner packet with no transport header we decode (here ESP inside
/// VXLAN) must not keep the outer UDP header as its transport: the flow
/// would get the inner addresses with the tunnel's UDP ports.
#[test]
fn inner_ip_without_transport_drops_the_outer_udp_ports() {
    let mut pkt = fixture_packet("demo.pcap", 72); // VXLAN, inner TCP SYN
    let inner_ip = 14 + 20 + 8 + 8 + 14;
    assert_eq!(pkt[inner_ip + 9], 6);
    pkt[inner_ip + 9] = 50; // ESP
    let d = decode(LinkType::Ethernet, &pkt, pkt.len());
    assert_eq!(d.tunnel.map(|t| t.kind), Some(TunnelKind::Vxlan));
    assert_eq!(
        d.ip.map(|ip| (ip.proto, ip.offset)),
        Some((50, inner_ip as u32))
    );
    assert_eq!(d.transport, Transport::None);
    let t = d.flow_tuple().unwrap();
    assert_eq!((t.sport, t.dport, t.proto), (0, 0, 50));

    // Same for a later fragment of the inner packet.
    let mut pkt = fixture_packet("demo.pcap", 72);
    pkt[inner_ip + 6] = 0x00;
    pkt[inner_ip + 7] = 0x10; // fragment offset 128 bytes
    let d = decode(LinkType::Ethernet, &pkt, pkt.len());
    assert!(d.ip.unwrap().frag.is_some());
    assert_eq!(d.transport, Transport::None);
}

/// An empty raw-IP packet is too small, not of an invalid IP version.
#[test]
fn empty_raw_packet_is_too_small() {
    let d = decode(LinkType::Raw, &[], 0);
    assert_eq!(d.events.iter().collect::<Vec<_>>(), [E::Ipv4PktTooSmall]);
    assert!(d.invalid);
    let d = decode(LinkType::Raw, &[0x50], 1);
    assert_eq!(
        d.events.iter().collect::<Vec<_>>(),
        [E::IprawInvalidIpVersion]
    );
}

/// Found by the `decode` fuzz target (minimised): a raw IPv6 packet, cut
/// short of its payload length (snapped), that chains more than 255
/// fragment headers. The per-kind extension header counters were `u8`s
/// incremented with `+=`: an overflow panic with debug assertions.
const IPV6_EXTHDR_COUNTER_OVERFLOW: &[&str] = &[
    "600000d2d2152c0000002c2c2c2c2c00000000151616f700000000000000000000000000000000000000000000002c00",
    "000000000000000000000008000008000000000000090000000000000000000000000000000000000000000000000000",
    "2b000002000000000000410000000000000000000000000000000000000000002c0000012c2c2c00000000002c2c2c2c",
    "000000000000000000000000000000002b000000000000000000000000000000000000151616f7000000000000000000",
    "000000002b00000000000000000000000000000000000000000000000000000000004b0000000000000000002c000001",
    "00000400000000000000002c2c0000000000000000000000000000000000000000000000000000000000000000000000",
    "000000000000000000000000010000660000000000000000000000002c00000000000000000000000000000000000000",
    "000000000000000000000000000000000000000000000000000000000100006600000000000000000000000000000000",
    "00000000000000002b0000000000000000000000000000000000000000002c2000000000000000000000000000000000",
    "0000000800000800000000000009000000000000000000002b0000020000000000004100000000000000000000000000",
    "00000000000000002c0000012c2c2c00000000002c2c2c2c000000000000000000000002000000000000000000000000",
    "00000400000000000000002c2c0000000000000000000000000000000000000000000000000000000000000000000000",
    "000000000000000000000000010000660000000000000000000000000000000000000000000000002b00000000000000",
    "0000000000002c0000000000000000000000000800000800000000000009000000000000000000000000000000000000",
    "00000000000000002b000002000000000000410000000000000000000000000000000000000000002c0000012c2c2c00",
    "000000002c2c2c2c000000000000000000000000000000002b000000000000000000000000000000000000151616f700",
    "0000000000000000000000002b00000000000000000000000000000000000000000000000000000000004b0000000000",
    "000000002c00000100000400000000000000002c2c000000000000000000000000000000000000000000000000000000",
    "0000000000000000000000000000000000000000010000660000000000000000000000002c0000000000000000000000",
    "000000000000000000000000000000000000000000000000000000000000000000000000010000660000000000000000",
    "000000000000000000000000000000002b0000000000000000000000000000000000000000002c200000000000000000",
    "00000000000000000000000800000800000000000000000000000000000000000000000000002c000000000000000000",
    "000000080000080000000000000900000000000000000000000000000000000000000000000000002b00000200000000",
    "0000410000000000000000000000000000000000000000002c0000012c2c2c00000000002c2c2c2c0000000000000000",
    "00000000000000002b000000000000000000000000000000000000151616f7000000000000000000000000002b000000",
    "00000000000000000000000000000000000000000000000000004b0000000000000000002c0000010000040000000000",
    "0000002c2c00000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
    "00000000010000660000000000000000000000002c000000000000000000000000000000000000000000000000000000",
    "000000000000000000000000000000000000000001000066000000000000000000000000000000000000000000000000",
    "2b0000000000000000000000000000000000000000002c20000000000000000000000000000000000000000800000800",
    "00000000000900000000000000000000000000000000000000000000000000002b000002000000000000410000000000",
    "000000000000000000000000000000002c0000012c2c2c00000000002c2c2c2c00000000000000000000000200000000",
    "000000000000000000000400000000000000002c2c000000000000000000000000000000000000000000000000000000",
    "000000000000000000000000000000000000000001000066000000000000000000000000000000000000000000000000",
    "2b0000000000000000000000000000000000000000002c00000000000000000000000008000008000000000000090000",
    "0000000000000000000000000000000000000000000000002b0000020000000000004100000000000000000000000000",
    "00000000000000002c0000012c2c2c00000000002c2c2c2c000000000000000000000000000000000000000000000000",
    "000000151616f7000000000000000000000000002b000000000000000000000000000000000000000000000000000000",
    "00004b0000000000000000002c00000100000400000000000000002c2c00000000000000000000000000000000000000",
    "00000000000000000000000000000000000000000000000000000000010000660000000000000000000000002c000000",
    "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000001000066",
    "0000000000000000000000000000000000000000000000002b0000000000000000000000000000000000000000002c20",
    "000000000000000000000000000000000000000800000800000000000009000000000000000000000000000000000000",
    "00000000000000002b000002000000000000410000000000000000000000000000000000000000002c0000012c2c2c00",
    "000000002c2c2c2c00000000000000000000000200000000000000000000000000000000000000000000000000000000",
    "00000000151616f7000000000000000000000000002b0000000009000000000000000000000000000000000000000000",
    "00000000002b000000002c2c2c2c00000000000000000000000200000000000000000000000000000000000000000000",
    "000000090000000000000000000000000000000000000000000000000000000000002c2c2c2c2c0a2c2c2c2c",
];

fn unhex(lines: &[&str]) -> Vec<u8> {
    let s: String = lines.concat();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn ipv6_extension_header_counters_do_not_overflow_fuzz_input() {
    let pkt = unhex(IPV6_EXTHDR_COUNTER_OVERFLOW);
    assert_eq!(pkt.len(), 2300);
    for link in ALL_LINKS {
        for wire_len in [pkt.len(), pkt.len() + 100] {
            let _ = decode(link, &pkt, wire_len);
        }
    }
    // Cut by the snap length, the packet raises the truncation (as Suricata,
    // which stops there) and no event of the headers walked after it; the
    // walk itself ran above without overflowing.
    let d = decode(LinkType::Raw, &pkt, pkt.len() + 100);
    assert!(d.events.contains(E::Ipv6TruncPkt), "{d:?}");
    assert!(!d.events.contains(E::Ipv6ExthdrDuplFh), "{d:?}");
}

/// The same for each kind of extension header the decoder counts: 300
/// headers of one kind, then UDP.
#[test]
fn ipv6_extension_header_counters_do_not_overflow_any_kind() {
    for (kind, dupl) in [
        (0u8, E::Ipv6ExthdrDuplHh),
        (43, E::Ipv6ExthdrDuplRh),
        (60, E::Ipv6ExthdrDuplDh),
        (44, E::Ipv6ExthdrDuplFh),
        (51, E::Ipv6ExthdrDuplAh),
    ] {
        let n = 300;
        let mut body = Vec::new();
        for i in 0..n {
            let next = if i + 1 == n { 17 } else { kind };
            match kind {
                // Authentication header: length in 4-byte units minus 2.
                51 => body.extend_from_slice(&[next, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0]),
                // Fragment header: offset 0, more fragments.
                44 => body.extend_from_slice(&[next, 0, 0, 1, 0, 0, 0, 7]),
                // Routing type 2 (not 0, which raises its own event).
                43 => body.extend_from_slice(&[next, 0, 2, 0, 0, 0, 0, 0]),
                _ => body.extend_from_slice(&[next, 0, 1, 4, 0, 0, 0, 0]),
            }
        }
        body.extend_from_slice(&[0x30, 0x39, 0x00, 0x35, 0x00, 0x08, 0x00, 0x00]);
        let mut pkt = vec![0x60, 0, 0, 0];
        pkt.extend_from_slice(&(body.len() as u16).to_be_bytes());
        pkt.extend_from_slice(&[kind, 64]);
        pkt.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        pkt.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        pkt.extend_from_slice(&body);
        let d = decode(LinkType::Raw, &pkt, pkt.len());
        assert!(d.events.contains(dupl), "header {kind}: {d:?}");
        let ip = d.ip.unwrap();
        assert_eq!(ip.proto, 17, "header {kind}");
        assert_eq!(ip.header_len as usize, pkt.len() - 8, "header {kind}");
        if kind == 44 {
            // A (first) fragment: its transport is decoded after reassembly.
            assert!(ip.frag.is_some(), "header {kind}");
            assert_eq!(d.transport, Transport::None, "header {kind}");
        } else {
            assert!(
                matches!(
                    d.transport,
                    Transport::Udp {
                        sport: 12345,
                        dport: 53,
                        ..
                    }
                ),
                "header {kind}: {:?}",
                d.transport
            );
        }
    }
}

/// suricata-verify bug-5162: an IGMP report (with the router-alert option)
/// makes no flow in Suricata 7, which sets flows up only for TCP, UDP, ICMP,
/// ICMPv6, SCTP, GRE, ESP and IP-in-IP; zonewatch logged a 12th flow. (The
/// tuple stays: the flow table tracks the packet for the anomaly detectors.)
#[test]
fn igmp_and_other_protocols_join_no_flow() {
    use zonewatch_decode::ip_proto_has_flow;
    // IPv4, IHL 6 (router alert), proto 2, 192.168.56.102 -> 224.0.0.22,
    // then an 8-byte IGMPv3 report.
    let pkt = [
        0x46, 0x00, 0x00, 0x20, 0x00, 0x00, 0x00, 0x00, 0x01, 0x02, 0x00, 0x00, 192, 168, 56, 102,
        224, 0, 0, 22, 0x94, 0x04, 0x00, 0x00, 0x22, 0x00, 0xf9, 0x01, 0x00, 0x00, 0x00, 0x00,
    ];
    let d = decode(LinkType::Raw, &pkt, pkt.len());
    assert!(!d.invalid, "{d:?}");
    let ip = d.ip.unwrap();
    assert_eq!((ip.version, ip.proto), (4, 2));
    assert!(!ip_proto_has_flow(ip.version, ip.proto));
    assert!(d.flow_tuple().is_some());
    for p in [6, 17, 1, 47, 50, 132, 4, 41] {
        assert!(ip_proto_has_flow(4, p), "proto {p}");
    }
    for p in [2, 89, 103, 112, 51, 58] {
        assert!(!ip_proto_has_flow(4, p), "proto {p}");
    }
    assert!(ip_proto_has_flow(6, 58));
    assert!(!ip_proto_has_flow(6, 1));
    assert!(!ip_proto_has_flow(6, 59));
}
