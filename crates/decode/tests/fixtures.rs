//! Decoder tests over the capture fixtures in `fixtures/` (written by
//! `fixtures/make-fixtures.py`; packet indices below follow its order).
//!
//! The captures are read by the small pcap/pcapng reader at the bottom of
//! this file, so that zonewatch-decode needs no capture library.

use std::net::IpAddr;
use zonewatch_decode::{decode, layer, DecodeEvent as E, Decoded, LinkType, Transport, TunnelKind};

const L_ETH: u32 = layer::ETHERNET;
const L_V4: u32 = layer::IPV4;
const L_V6: u32 = layer::IPV6;
const L_TCP: u32 = layer::TCP;
const L_UDP: u32 = layer::UDP;

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/../../fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn capture(name: &str) -> pcapfile::Capture {
    let c = pcapfile::parse(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert!(!c.truncated, "{name} is truncated");
    c
}

fn link(c: &pcapfile::Capture) -> LinkType {
    LinkType::from_dlt(c.linktype as i32).expect("decodable link type")
}

/// The flow tuple as `src:sport > dst:dport proto`, IPv6 in brackets.
fn five(d: &Decoded) -> String {
    let Some(t) = d.flow_tuple() else {
        return "none".into();
    };
    let ep = |a: IpAddr, p: u16| match a {
        IpAddr::V4(a) => format!("{a}:{p}"),
        IpAddr::V6(a) => format!("[{a}]:{p}"),
    };
    let proto = match t.proto {
        6 => "tcp".to_string(),
        17 => "udp".to_string(),
        1 => "icmp".to_string(),
        58 => "icmp6".to_string(),
        p => p.to_string(),
    };
    format!("{} > {} {proto}", ep(t.src, t.sport), ep(t.dst, t.dport))
}

/// `five` of the reverse direction, for matching a session either way.
fn reverse(five: &str) -> String {
    let (ends, proto) = five.rsplit_once(' ').unwrap();
    let (a, b) = ends.split_once(" > ").unwrap();
    format!("{b} > {a} {proto}")
}

fn events(d: &Decoded) -> Vec<E> {
    d.events.iter().collect()
}

/// The offsets in a `Decoded` stay inside the buffer it was decoded from.
fn check_offsets(d: &Decoded, len: usize, what: &dyn Fn() -> String) {
    if let Some(ip) = d.ip {
        assert!(
            ip.offset as usize + ip.header_len as usize <= len,
            "{}: ip header past the end ({ip:?}, len {len})",
            what()
        );
    }
    let (off, plen) = d.payload_range();
    assert!(
        off + plen <= len,
        "{}: payload past the end ({:?}, len {len})",
        what(),
        d.transport
    );
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

// ------------------------------------------------------------- demo.pcap

/// One session of demo.pcap: packet index range, the client's tuple, VLAN
/// ids, the tunnel (kind, client-side outer address, server-side outer
/// address, outer protocol), the exact layer bits, and a data packet with
/// the start of its payload.
struct Session {
    name: &'static str,
    range: std::ops::RangeInclusive<usize>,
    tuple: &'static str,
    vlan: [u16; 2],
    tunnel: Option<(TunnelKind, &'static str, &'static str, u8)>,
    layers: u32,
    data: Option<(usize, &'static [u8])>,
}

fn demo_sessions() -> Vec<Session> {
    let plain = |name, range, tuple, layers, data| Session {
        name,
        range,
        tuple,
        vlan: [0, 0],
        tunnel: None,
        layers,
        data,
    };
    vec![
        plain(
            "dns",
            2..=3,
            "10.0.0.10:53001 > 198.51.100.53:53 udp",
            L_ETH | L_V4 | L_UDP,
            Some((2, b"\x1a\x2b\x01\x00\x00\x01".as_slice())),
        ),
        plain(
            "http",
            4..=15,
            "10.0.0.10:49152 > 192.0.2.80:80 tcp",
            L_ETH | L_V4 | L_TCP,
            Some((7, b"GET / HTTP/1.1\r\nHost: www.example.com\r\n".as_slice())),
        ),
        plain(
            "tls",
            16..=25,
            "10.0.0.11:49200 > 203.0.113.43:443 tcp",
            L_ETH | L_V4 | L_TCP,
            Some((19, b"\x16\x03\x01".as_slice())),
        ),
        plain(
            "ssh",
            26..=35,
            "10.0.0.12:49300 > 198.51.100.22:22 tcp",
            L_ETH | L_V4 | L_TCP,
            Some((29, b"SSH-2.0-OpenSSH_9.2p1".as_slice())),
        ),
        plain(
            "ping",
            36..=39,
            "10.0.0.10:8 > 192.0.2.1:0 icmp",
            L_ETH | L_V4 | layer::ICMPV4,
            Some((36, b"\x10\x11\x12\x13".as_slice())),
        ),
        plain(
            "ipv6",
            40..=49,
            "[2001:db8:1::10]:50000 > [2001:db8:2::80]:80 tcp",
            L_ETH | L_V6 | L_TCP,
            Some((43, b"GET / HTTP/1.1\r\nHost: v6.example.com".as_slice())),
        ),
        Session {
            vlan: [100, 0],
            ..plain(
                "vlan",
                50..=59,
                "10.0.100.5:40100 > 192.0.2.100:8080 tcp",
                L_ETH | layer::VLAN | L_V4 | L_TCP,
                Some((53, b"GET /status HTTP/1.1".as_slice())),
            )
        },
        Session {
            vlan: [200, 300],
            ..plain(
                "qinq",
                60..=61,
                "10.0.200.5:40200 > 198.51.100.53:53 udp",
                L_ETH | layer::VLAN | layer::VLAN_QINQ | L_V4 | L_UDP,
                Some((61, b"\x2b\x3c\x81\x83".as_slice())),
            )
        },
        Session {
            tunnel: Some((TunnelKind::Gre, "203.0.113.1", "203.0.113.2", 47)),
            ..plain(
                "gre",
                62..=71,
                "10.1.0.5:41000 > 10.2.0.80:80 tcp",
                L_ETH | L_V4 | layer::GRE | L_TCP,
                Some((65, b"GET / HTTP/1.1\r\nHost: intranet.example".as_slice())),
            )
        },
        Session {
            tunnel: Some((TunnelKind::Vxlan, "10.0.0.21", "10.0.0.22", 17)),
            ..plain(
                "vxlan",
                72..=81,
                "10.3.0.5:42000 > 10.4.0.80:80 tcp",
                L_ETH | L_V4 | L_UDP | layer::VXLAN | L_TCP,
                Some((77, b"HTTP/1.1 200 OK".as_slice())),
            )
        },
        Session {
            tunnel: Some((TunnelKind::IpInIp, "198.51.100.1", "198.51.100.2", 4)),
            ..plain(
                "ipip",
                82..=91,
                "10.5.0.5:43000 > 10.6.0.80:80 tcp",
                L_ETH | L_V4 | layer::IPV4_IN_IPV4 | L_TCP,
                Some((85, b"GET / HTTP/1.1\r\nHost: ipip.example".as_slice())),
            )
        },
        plain(
            "mpls",
            92..=101,
            "10.7.0.5:44000 > 192.0.2.81:80 tcp",
            L_ETH | layer::MPLS | L_V4 | L_TCP,
            Some((95, b"GET / HTTP/1.1\r\nHost: mpls.example".as_slice())),
        ),
        plain(
            "pppoe",
            102..=111,
            "10.8.0.5:45000 > 203.0.113.80:80 tcp",
            L_ETH | layer::PPPOE | L_V4 | L_TCP,
            Some((107, b"HTTP/1.1 200 OK".as_slice())),
        ),
        plain(
            "dns-again",
            116..=117,
            "10.0.0.10:53001 > 198.51.100.53:53 udp",
            L_ETH | L_V4 | L_UDP,
            Some((116, b"\x3c\x4d\x01\x00".as_slice())),
        ),
        plain(
            "ntp",
            118..=119,
            "10.0.0.10:123 > 198.51.100.123:123 udp",
            L_ETH | L_V4 | L_UDP,
            Some((118, b"\x23\x00".as_slice())),
        ),
        plain(
            "refused",
            120..=121,
            "10.0.0.13:49400 > 203.0.113.9:25 tcp",
            L_ETH | L_V4 | L_TCP,
            None,
        ),
    ]
}

/// Indices of the malformed packets in demo.pcap.
const MALFORMED: std::ops::RangeInclusive<usize> = 112..=115;

#[test]
fn demo_sessions_decode_to_their_innermost_tuples() {
    let c = capture("demo.pcap");
    assert_eq!(c.linktype, 1);
    assert_eq!(c.packets.len(), 122);
    let sessions = demo_sessions();
    let mut covered = vec![false; c.packets.len()];
    for s in &sessions {
        for i in s.range.clone() {
            covered[i] = true;
            let p = &c.packets[i];
            let d = decode(LinkType::Ethernet, &p.data, p.wire_len);
            let at = format!("{} packet {i}", s.name);
            assert!(events(&d).is_empty(), "{at}: {:?}", events(&d));
            assert!(!d.invalid, "{at}");
            let t = five(&d);
            assert!(
                t == s.tuple || t == reverse(s.tuple),
                "{at}: {t} is not {}",
                s.tuple
            );
            assert_eq!(d.vlan, s.vlan, "{at}");
            assert_eq!(d.layers, s.layers, "{at}: layers {:#x}", d.layers);
            match (s.tunnel, d.tunnel) {
                (None, None) => {}
                (Some((kind, a, b, proto)), Some(tun)) => {
                    assert_eq!(tun.kind, kind, "{at}");
                    assert_eq!(tun.proto, proto, "{at}");
                    assert_eq!(tun.depth, 1, "{at}");
                    // The outer addresses follow the inner direction.
                    let client_side = t == s.tuple;
                    let (src, dst) = if client_side { (a, b) } else { (b, a) };
                    assert_eq!((tun.src, tun.dst), (ip(src), ip(dst)), "{at}");
                }
                (want, got) => panic!("{at}: tunnel {got:?}, expected {want:?}"),
            }
            check_offsets(&d, p.data.len(), &|| at.clone());
        }
        if let Some((i, prefix)) = s.data {
            let p = &c.packets[i];
            let d = decode(LinkType::Ethernet, &p.data, p.wire_len);
            let body = d.payload(&p.data);
            assert!(
                body.starts_with(prefix),
                "{} packet {i}: payload {:?}",
                s.name,
                String::from_utf8_lossy(&body[..body.len().min(40)])
            );
        }
    }
    // ARP, then the malformed packets: everything else is in a session.
    for i in [0, 1] {
        let p = &c.packets[i];
        let d = decode(LinkType::Ethernet, &p.data, p.wire_len);
        assert_eq!(d.layers, L_ETH | layer::ARP, "arp packet {i}");
        assert!(d.ip.is_none() && events(&d).is_empty() && !d.invalid);
        covered[i] = true;
    }
    for i in MALFORMED {
        covered[i] = true;
    }
    let missed: Vec<usize> = (0..covered.len()).filter(|&i| !covered[i]).collect();
    assert!(missed.is_empty(), "packets in no session: {missed:?}");
}

#[test]
fn demo_tcp_header_fields() {
    let c = capture("demo.pcap");
    let d = |i: usize| {
        decode(
            LinkType::Ethernet,
            &c.packets[i].data,
            c.packets[i].wire_len,
        )
    };
    use zonewatch_decode::tcp_flags::*;
    let Transport::Tcp(syn) = d(4).transport else {
        panic!("not tcp")
    };
    assert_eq!(syn.flags, SYN);
    assert_eq!(syn.mss, Some(1460));
    assert_eq!(syn.wscale, Some(7));
    assert!(syn.sack_permitted);
    assert!(matches!(syn.timestamp, Some((_, 0))));
    assert_eq!(syn.window, 64240);
    let Transport::Tcp(synack) = d(5).transport else {
        panic!("not tcp")
    };
    assert_eq!(synack.flags, SYN | ACK);
    assert_eq!(synack.ack, syn.seq.wrapping_add(1));
    assert_eq!(synack.timestamp, None);
    let Transport::Tcp(get) = d(7).transport else {
        panic!("not tcp")
    };
    assert_eq!(get.flags, PSH | ACK);
    assert_eq!(get.seq, syn.seq.wrapping_add(1));
    assert_eq!(get.payload_len, 78);
    let Transport::Tcp(fin) = d(13).transport else {
        panic!("not tcp")
    };
    assert_eq!(fin.flags, FIN | ACK);
    let Transport::Tcp(rst) = d(121).transport else {
        panic!("not tcp")
    };
    assert_eq!(rst.flags, RST | ACK);

    // Pings carry their echo id and sequence.
    match d(38).transport {
        Transport::Icmp {
            icmp_type: 8,
            icmp_code: 0,
            echo: Some((0x4d2, 2)),
            payload_len: 40,
            ..
        } => {}
        t => panic!("{t:?}"),
    }
    assert_eq!(five(&d(39)), "192.0.2.1:0 > 10.0.0.10:8 icmp");
    let v6 = d(40).ip.unwrap();
    assert_eq!(
        (v6.version, v6.offset, v6.header_len, v6.ttl),
        (6, 14, 40, 64)
    );
    let vxlan = d(72).ip.unwrap();
    // Ethernet, IPv4, UDP, VXLAN, inner Ethernet.
    assert_eq!(vxlan.offset, 14 + 20 + 8 + 8 + 14);
}

#[test]
fn demo_malformed_packets_raise_exact_events() {
    let c = capture("demo.pcap");
    let d = |i: usize| {
        let p = &c.packets[i];
        assert_eq!(p.data.len(), p.wire_len, "packet {i} is not snapped");
        decode(LinkType::Ethernet, &p.data, p.wire_len)
    };

    // IPv4 total length 200 in a 74-byte frame that was not snapped.
    let trunc = d(112);
    assert_eq!(events(&trunc), [E::Ipv4TruncPkt]);
    assert!(trunc.invalid);
    assert!(trunc.ip.is_none());
    assert_eq!(trunc.layers, L_ETH | L_V4);
    assert_eq!(trunc.flow_tuple(), None);

    // TCP data offset 4: a header shorter than its fixed part.
    let hlen = d(113);
    assert_eq!(events(&hlen), [E::TcpHlenTooSmall]);
    assert!(hlen.invalid);
    assert_eq!(hlen.transport, Transport::None);
    assert_eq!(hlen.layers, L_ETH | L_V4 | L_TCP);
    assert_eq!(hlen.ip.unwrap().src, ip("203.0.113.66"));
    assert_eq!(hlen.flow_tuple(), None);

    // UDP length field 4 (< 8).
    let ulen = d(114);
    assert_eq!(events(&ulen), [E::UdpLenInvalid]);
    assert!(ulen.invalid);
    assert_eq!(ulen.transport, Transport::None);
    assert_eq!(ulen.layers, L_ETH | L_V4 | L_UDP);
    assert_eq!(ulen.flow_tuple(), None);

    // ICMP type 99: an event, but the packet is still usable.
    let icmp = d(115);
    assert_eq!(events(&icmp), [E::Icmpv4UnknownType]);
    assert!(!icmp.invalid);
    assert!(matches!(
        icmp.transport,
        Transport::Icmp {
            icmp_type: 99,
            icmp_code: 0,
            echo: None,
            ..
        }
    ));
    assert_eq!(five(&icmp), "203.0.113.66:99 > 10.0.0.10:0 icmp");
}

#[test]
fn demo_reads_the_same_in_every_file_format() {
    let le = capture("demo.pcap");
    let be = capture("demo-be.pcap");
    let ng = capture("demo-ns.pcapng");
    for c in [&be, &ng] {
        assert_eq!(c.linktype, 1);
        assert_eq!(c.packets.len(), le.packets.len());
    }
    for (i, p) in le.packets.iter().enumerate() {
        assert_eq!(be.packets[i].data, p.data, "packet {i}");
        assert_eq!(be.packets[i].ts_ns, p.ts_ns, "packet {i}");
        assert_eq!(ng.packets[i].data, p.data, "packet {i}");
        // The pcapng copy adds (index % 1000) ns to each timestamp.
        assert_eq!(ng.packets[i].ts_ns, p.ts_ns + i as u64 % 1000, "packet {i}");
        assert_eq!(
            decode(
                LinkType::Ethernet,
                &ng.packets[i].data,
                ng.packets[i].wire_len
            ),
            decode(LinkType::Ethernet, &p.data, p.wire_len)
        );
    }
    // ~2 minutes of traffic.
    let first = le.packets.first().unwrap().ts_ns;
    let last = le.packets.last().unwrap().ts_ns;
    assert_eq!(first, 1_700_000_000_000_000_000);
    assert!((110..=120).contains(&((last - first) / 1_000_000_000)));
}

#[test]
fn truncated_file_and_text_file() {
    let t = pcapfile::parse(&fixture("truncated.pcap")).unwrap();
    assert!(t.truncated);
    assert_eq!(t.packets.len(), 7);
    let demo = capture("demo.pcap");
    for (a, b) in t.packets.iter().zip(&demo.packets) {
        assert_eq!(a.data, b.data);
    }
    assert!(pcapfile::parse(&fixture("not-a-capture.txt")).is_err());
}

// ------------------------------------------------------------ tunnels.pcap

/// Per tunnel packet: kind, outer source, outer destination, outer protocol,
/// inner tuple, layer bits, VLAN ids.
type TunnelWant = (
    TunnelKind,
    &'static str,
    &'static str,
    u8,
    &'static str,
    u32,
    [u16; 2],
);

#[test]
fn tunnels_decode_to_the_inner_packet() {
    let c = capture("tunnels.pcap");
    assert_eq!(c.packets.len(), 9);
    let gre = L_ETH | L_V4 | layer::GRE;
    #[rustfmt::skip]
    let want: [TunnelWant; 9] = [
        (TunnelKind::ErspanII, "10.0.0.31", "10.0.0.32", 47,
         "10.10.0.5:40001 > 192.0.2.10:80 tcp", gre | layer::ERSPAN | L_TCP, [0, 0]),
        (TunnelKind::ErspanIII, "10.0.0.31", "10.0.0.32", 47,
         "10.10.0.6:40002 > 198.51.100.53:53 udp", gre | layer::ERSPAN | L_UDP, [0, 0]),
        (TunnelKind::Geneve, "10.0.0.41", "10.0.0.42", 17,
         "10.11.0.5:40003 > 10.12.0.80:80 tcp", L_ETH | L_V4 | L_UDP | layer::GENEVE | L_TCP, [0, 0]),
        (TunnelKind::Teredo, "192.0.2.150", "198.51.100.35", 17,
         "[2001:db8:3::5]:40004 > [2001:db8:4::53]:53 udp", L_ETH | L_V4 | L_UDP | layer::TEREDO | L_V6, [0, 0]),
        (TunnelKind::Ipv6InIp, "192.0.2.160", "198.51.100.41", 41,
         "[2001:db8:5::5]:40005 > [2001:db8:6::80]:80 tcp", L_ETH | L_V4 | layer::IPV6_IN_IP | L_V6 | L_TCP, [0, 0]),
        (TunnelKind::IpInIp, "2001:db8:7::1", "2001:db8:8::1", 4,
         "10.13.0.5:40006 > 10.14.0.80:80 tcp", L_ETH | L_V6 | layer::IPV4_IN_IPV6 | L_V4 | L_TCP, [0, 0]),
        (TunnelKind::Gre, "203.0.113.20", "203.0.113.21", 47,
         "10.15.0.5:8 > 10.16.0.1:0 icmp", gre | layer::ICMPV4, [0, 0]),
        (TunnelKind::ErspanI, "10.0.0.31", "10.0.0.33", 47,
         "10.17.0.5:40008 > 10.18.0.80:80 tcp", gre | layer::ERSPAN | L_TCP, [0, 0]),
        (TunnelKind::Gre, "203.0.113.30", "203.0.113.31", 47,
         "10.19.0.5:40009 > 10.20.0.80:80 tcp", gre | layer::VLAN | L_TCP, [55, 0]),
    ];
    for (i, (p, (kind, src, dst, proto, tuple, layers, vlan))) in
        c.packets.iter().zip(want).enumerate()
    {
        let d = decode(LinkType::Ethernet, &p.data, p.wire_len);
        let at = format!("tunnels.pcap packet {i} ({})", kind.name());
        assert!(events(&d).is_empty(), "{at}: {:?}", events(&d));
        assert!(!d.invalid, "{at}");
        let tun = d.tunnel.unwrap_or_else(|| panic!("{at}: no tunnel"));
        assert_eq!(tun.kind, kind, "{at}");
        assert_eq!(
            (tun.src, tun.dst, tun.proto),
            (ip(src), ip(dst), proto),
            "{at}"
        );
        assert_eq!(tun.depth, 1, "{at}");
        assert_eq!(five(&d), tuple, "{at}");
        assert_eq!(d.layers, layers, "{at}: layers {:#x}", d.layers);
        assert_eq!(d.vlan, vlan, "{at}");
        check_offsets(&d, p.data.len(), &|| at.clone());
    }
    // Payloads are found through the offsets, however deep.
    let d = |i: usize| {
        decode(
            LinkType::Ethernet,
            &c.packets[i].data,
            c.packets[i].wire_len,
        )
    };
    assert!(d(0)
        .payload(&c.packets[0].data)
        .starts_with(b"GET / HTTP/1.1\r\nHost: erspan"));
    assert!(d(2)
        .payload(&c.packets[2].data)
        .starts_with(b"GET / HTTP/1.1\r\nHost: geneve"));
    assert!(d(4)
        .payload(&c.packets[4].data)
        .starts_with(b"GET / HTTP/1.1\r\nHost: sixinfour"));
    assert_eq!(d(6).payload(&c.packets[6].data), b"pptp-ping");
    match d(6).transport {
        Transport::Icmp {
            echo: Some((77, 1)),
            ..
        } => {}
        t => panic!("{t:?}"),
    }
}

// ------------------------------------------------------- other link types

#[test]
fn other_link_types() {
    #[rustfmt::skip]
    let files = [
        ("sll.pcap", 113, LinkType::LinuxSll, layer::SLL, 16),
        ("sll2.pcap", 276, LinkType::LinuxSll2, layer::SLL, 20),
        ("null.pcap", 0, LinkType::Null, layer::NULL, 4),
        ("raw.pcap", 101, LinkType::Raw, layer::RAW, 0),
    ];
    for (name, dlt, lt, bit, hdr) in files {
        let c = capture(name);
        assert_eq!(c.linktype, dlt, "{name}");
        assert_eq!(link(&c), lt, "{name}");
        assert_eq!(c.packets.len(), 2, "{name}");
        let v4 = decode(lt, &c.packets[0].data, c.packets[0].wire_len);
        assert!(
            events(&v4).is_empty() && !v4.invalid,
            "{name}: {:?}",
            events(&v4)
        );
        assert_eq!(five(&v4), "10.0.0.10:49160 > 192.0.2.80:80 tcp", "{name}");
        assert_eq!(v4.layers, bit | L_V4 | L_TCP, "{name}");
        assert_eq!(v4.ip.unwrap().offset, hdr, "{name}");
        assert!(v4
            .payload(&c.packets[0].data)
            .starts_with(b"GET / HTTP/1.1"));
        let v6 = decode(lt, &c.packets[1].data, c.packets[1].wire_len);
        assert!(
            events(&v6).is_empty() && !v6.invalid,
            "{name}: {:?}",
            events(&v6)
        );
        assert_eq!(
            five(&v6),
            "[2001:db8:1::10]:50010 > [2001:db8:9::53]:53 udp",
            "{name}"
        );
        assert_eq!(v6.layers, bit | L_V6 | L_UDP, "{name}");
        assert_eq!(v6.ip.unwrap().offset, hdr, "{name}");
    }
}

// ------------------------------------------------------------- truncation

/// Every well-formed packet of every fixture, with its link type and name.
fn well_formed_packets() -> Vec<(String, LinkType, Vec<u8>)> {
    let mut out = Vec::new();
    for name in [
        "demo.pcap",
        "tunnels.pcap",
        "sll.pcap",
        "sll2.pcap",
        "null.pcap",
        "raw.pcap",
    ] {
        let c = capture(name);
        let lt = link(&c);
        for (i, p) in c.packets.into_iter().enumerate() {
            if name == "demo.pcap" && MALFORMED.contains(&i) {
                continue;
            }
            let d = decode(lt, &p.data, p.wire_len);
            assert!(!d.invalid && d.events.is_empty(), "{name} packet {i}");
            out.push((format!("{name} packet {i}"), lt, p.data));
        }
    }
    out
}

fn too_small(version: u8) -> [E; 2] {
    if version == 4 {
        [E::Ipv4PktTooSmall, E::Ipv6Ipv4InIpv6TooSmall]
    } else {
        [E::Ipv6PktTooSmall, E::Ipv6Ipv6InIpv6TooSmall]
    }
}

/// Decodes every prefix of every packet, snapped (`wire_len` = the whole
/// packet) and short (`wire_len` = the prefix): no panic, offsets in bounds,
/// and a prefix that cuts an IP header says so.
#[test]
fn every_prefix_of_every_packet() {
    let mut checked = 0;
    for (name, lt, pkt) in well_formed_packets() {
        let full = decode(lt, &pkt, pkt.len());
        let teredo = full.tunnel.is_some_and(|t| t.kind == TunnelKind::Teredo);
        for k in 0..=pkt.len() {
            let prefix = &pkt[..k];
            let snapped = decode(lt, prefix, pkt.len());
            check_offsets(&snapped, k, &|| format!("{name} [..{k}] snapped"));
            let short = decode(lt, prefix, k);
            check_offsets(&short, k, &|| format!("{name} [..{k}] short"));
            checked += 2;

            // A cut inside the innermost IP header. (Teredo is recognised
            // by its exact length only, so a cut Teredo packet is plain UDP.)
            if let Some(inner) = full.ip.filter(|_| !teredo) {
                let hdr = if inner.version == 4 { 20 } else { 40 };
                let o = inner.offset as usize;
                if (o..o + hdr).contains(&k) {
                    let mut want = too_small(inner.version).to_vec();
                    if k == o {
                        // With no byte of the IP header left, the version is
                        // unknown, and MPLS cannot tell what its payload is.
                        want.extend(too_small(10 - inner.version));
                        want.push(E::MplsPktTooSmall);
                    }
                    // In a tunnel the outer IP packet was cut first: its
                    // truncation is the event, as in Suricata, which stops
                    // there.
                    want.extend([E::Ipv4TruncPkt, E::Ipv6TruncPkt]);
                    assert!(
                        want.iter().any(|e| snapped.events.contains(*e)),
                        "{name} [..{k}] snapped: {:?}",
                        events(&snapped)
                    );
                    assert!(snapped.invalid, "{name} [..{k}]");
                }
            }
            if k == pkt.len() {
                assert_eq!(snapped, full, "{name}");
                assert_eq!(short, full, "{name}");
            }
        }
    }
    assert!(checked > 20_000, "{checked}");
}

/// Exact events for cuts of the outermost IP header of the plain Ethernet
/// packets of demo.pcap.
#[test]
fn prefix_events_of_plain_ethernet_ip() {
    let c = capture("demo.pcap");
    let mut tested = 0;
    for (i, p) in c.packets.iter().enumerate() {
        let pkt = &p.data;
        let version = match u16::from_be_bytes([pkt[12], pkt[13]]) {
            0x0800 => 4,
            0x86dd => 6,
            _ => continue,
        };
        // Tunnelled packets have more IP headers inside; not here.
        if MALFORMED.contains(&i) || decode(LinkType::Ethernet, pkt, pkt.len()).tunnel.is_some() {
            continue;
        }
        tested += 1;
        let (hdr, total) = if version == 4 {
            (20, 14 + u16::from_be_bytes([pkt[16], pkt[17]]) as usize)
        } else {
            (
                40,
                14 + 40 + u16::from_be_bytes([pkt[18], pkt[19]]) as usize,
            )
        };
        let (too_small, trunc) = if version == 4 {
            (E::Ipv4PktTooSmall, E::Ipv4TruncPkt)
        } else {
            (E::Ipv6PktTooSmall, E::Ipv6TruncPkt)
        };
        for k in 0..=pkt.len() {
            let snapped = decode(LinkType::Ethernet, &pkt[..k], pkt.len());
            let short = decode(LinkType::Ethernet, &pkt[..k], k);
            let at = format!("demo packet {i} [..{k}]");
            if k < 14 {
                assert_eq!(events(&snapped), [E::EthernetPktTooSmall], "{at}");
                assert_eq!(events(&short), [E::EthernetPktTooSmall], "{at}");
            } else if k < 14 + hdr {
                assert_eq!(events(&snapped), [too_small], "{at}");
                assert_eq!(events(&short), [too_small], "{at}");
                assert!(snapped.ip.is_none() && short.ip.is_none(), "{at}");
            } else {
                // The IP header is whole. Cut by the snap length, the packet
                // raises the truncation event as in Suricata when it ends
                // before its IP length says, but is decoded on (it keeps its
                // IP layer); cut short on the wire, it is a truncated packet
                // and unusable (until the padding starts).
                if k < total {
                    assert_eq!(events(&snapped)[0], trunc, "{at}");
                } else {
                    assert!(!snapped.events.contains(trunc), "{at}");
                }
                assert!(!snapped.events.contains(too_small), "{at}");
                assert!(snapped.ip.is_some(), "{at}");
                if k < total {
                    assert_eq!(events(&short), [trunc], "{at}");
                    assert!(short.invalid, "{at}");
                } else {
                    assert!(events(&short).is_empty(), "{at}: {:?}", events(&short));
                }
            }
        }
    }
    assert!(tested > 50, "{tested}");
}

/// Snapped TCP: the IP packet is longer than what was captured, so
/// `ipv4.trunc_pkt` (as Suricata raises it); a cut inside the TCP header
/// leaves the packet without a flow (the snap length explains the short
/// header: no `tcp.pkt_too_small`); a cut in the payload keeps the flow, and
/// the payload length is what was captured.
#[test]
fn snapped_tcp_payload() {
    let c = capture("demo.pcap");
    let pkt = &c.packets[7].data; // the HTTP GET
    let full = decode(LinkType::Ethernet, pkt, pkt.len());
    let Transport::Tcp(t) = full.transport else {
        panic!()
    };
    let start = t.payload_offset as usize;
    for k in 34..start {
        let d = decode(LinkType::Ethernet, &pkt[..k], pkt.len());
        assert_eq!(events(&d), [E::Ipv4TruncPkt], "[..{k}]");
        assert!(d.flow_tuple().is_none(), "[..{k}]");
    }
    for k in start..=pkt.len() {
        let d = decode(LinkType::Ethernet, &pkt[..k], pkt.len());
        let want: &[E] = if k < pkt.len() {
            &[E::Ipv4TruncPkt]
        } else {
            &[]
        };
        assert_eq!(events(&d), want, "[..{k}]");
        match d.transport {
            Transport::Tcp(s) => assert_eq!(s.payload_len as usize, k - start),
            other => panic!("[..{k}]: {other:?}"),
        }
        assert_eq!(d.flow_tuple(), full.flow_tuple());
    }
}

// ------------------------------------------------------------- the reader

/// Just enough of classic pcap (either byte order, µs or ns) and pcapng
/// (SHB, IDB, EPB; either byte order) for the fixtures.
mod pcapfile {
    pub struct Packet {
        pub ts_ns: u64,
        pub data: Vec<u8>,
        pub wire_len: usize,
    }

    pub struct Capture {
        pub linktype: u32,
        pub packets: Vec<Packet>,
        /// The file ended inside a record.
        pub truncated: bool,
    }

    #[derive(Clone, Copy)]
    struct Order(bool); // big-endian?

    impl Order {
        fn u16(self, b: &[u8], at: usize) -> Option<u16> {
            let a: [u8; 2] = b.get(at..at + 2)?.try_into().ok()?;
            Some(if self.0 {
                u16::from_be_bytes(a)
            } else {
                u16::from_le_bytes(a)
            })
        }
        fn u32(self, b: &[u8], at: usize) -> Option<u32> {
            let a: [u8; 4] = b.get(at..at + 4)?.try_into().ok()?;
            Some(if self.0 {
                u32::from_be_bytes(a)
            } else {
                u32::from_le_bytes(a)
            })
        }
    }

    pub fn parse(b: &[u8]) -> Result<Capture, String> {
        let magic = b.get(..4).ok_or("file too short")?;
        match magic {
            [0xa1, 0xb2, 0xc3, 0xd4] => classic(b, Order(true), 1000),
            [0xd4, 0xc3, 0xb2, 0xa1] => classic(b, Order(false), 1000),
            [0xa1, 0xb2, 0x3c, 0x4d] => classic(b, Order(true), 1),
            [0x4d, 0x3c, 0xb2, 0xa1] => classic(b, Order(false), 1),
            [0x0a, 0x0d, 0x0d, 0x0a] => pcapng(b),
            _ => Err(format!("not a capture (magic {magic:02x?})")),
        }
    }

    fn classic(b: &[u8], o: Order, ns_per_unit: u64) -> Result<Capture, String> {
        let linktype = o.u32(b, 20).ok_or("short file header")? & 0x0fff_ffff;
        let mut c = Capture {
            linktype,
            packets: Vec::new(),
            truncated: false,
        };
        let mut at = 24;
        while at < b.len() {
            let (Some(sec), Some(sub), Some(incl), Some(orig)) = (
                o.u32(b, at),
                o.u32(b, at + 4),
                o.u32(b, at + 8),
                o.u32(b, at + 12),
            ) else {
                c.truncated = true;
                break;
            };
            let Some(data) = b.get(at + 16..at + 16 + incl as usize) else {
                c.truncated = true;
                break;
            };
            c.packets.push(Packet {
                ts_ns: sec as u64 * 1_000_000_000 + sub as u64 * ns_per_unit,
                data: data.to_vec(),
                wire_len: orig as usize,
            });
            at += 16 + incl as usize;
        }
        Ok(c)
    }

    fn pcapng(b: &[u8]) -> Result<Capture, String> {
        let mut c = Capture {
            linktype: u32::MAX,
            packets: Vec::new(),
            truncated: false,
        };
        let mut o = Order(false);
        // Per interface: units per second.
        let mut ifaces: Vec<u64> = Vec::new();
        let mut at = 0;
        while at < b.len() {
            if b.get(at..at + 4) == Some(&[0x0a, 0x0d, 0x0d, 0x0a]) {
                o = match b.get(at + 8..at + 12) {
                    Some([0x1a, 0x2b, 0x3c, 0x4d]) => Order(true),
                    Some([0x4d, 0x3c, 0x2b, 0x1a]) => Order(false),
                    _ => return Err("bad byte-order magic".into()),
                };
                ifaces.clear();
            }
            let (Some(kind), Some(len)) = (o.u32(b, at), o.u32(b, at + 4)) else {
                c.truncated = true;
                break;
            };
            let len = len as usize;
            if len < 12 || len % 4 != 0 {
                return Err(format!("bad block length {len}"));
            }
            let Some(body) = b.get(at + 8..at + len - 4) else {
                c.truncated = true;
                break;
            };
            match kind {
                1 => {
                    let lt = o.u16(body, 0).ok_or("short IDB")? as u32;
                    if c.linktype == u32::MAX {
                        c.linktype = lt;
                    } else if c.linktype != lt {
                        return Err("several link types".into());
                    }
                    let mut units = 1_000_000u64;
                    let mut p = 8;
                    while let (Some(code), Some(olen)) = (o.u16(body, p), o.u16(body, p + 2)) {
                        let olen = olen as usize;
                        if code == 0 {
                            break;
                        }
                        if code == 9 {
                            let v = *body.get(p + 4).ok_or("short option")?;
                            units = if v & 0x80 == 0 {
                                10u64.pow(v as u32)
                            } else {
                                1 << (v & 0x7f)
                            };
                        }
                        p += 4 + olen.div_ceil(4) * 4;
                    }
                    ifaces.push(units);
                }
                6 => {
                    let iface = o.u32(body, 0).ok_or("short EPB")? as usize;
                    let units = *ifaces.get(iface).ok_or("EPB before its IDB")?;
                    let ts = (o.u32(body, 4).ok_or("short EPB")? as u64) << 32
                        | o.u32(body, 8).ok_or("short EPB")? as u64;
                    let incl = o.u32(body, 12).ok_or("short EPB")? as usize;
                    let orig = o.u32(body, 16).ok_or("short EPB")? as usize;
                    let data = body.get(20..20 + incl).ok_or("EPB data past its block")?;
                    c.packets.push(Packet {
                        ts_ns: (ts as u128 * 1_000_000_000 / units as u128) as u64,
                        data: data.to_vec(),
                        wire_len: orig,
                    });
                }
                _ => {}
            }
            at += len;
        }
        if c.linktype == u32::MAX {
            return Err("no interface".into());
        }
        Ok(c)
    }
}
