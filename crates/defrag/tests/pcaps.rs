//! End to end over real captures in `../shared/data` (skipped when absent):
//! every fragment is decoded and pushed; the reassembled datagrams must
//! decode as the expected transport with the expected lengths (lengths as
//! tshark's reassembly reports them, except where overlaps make Suricata's
//! BSD policy differ). For suricata-verify's defrag tests, the datagram
//! must equal, byte for byte, the packet Suricata alerted on.

use std::path::{Path, PathBuf};
use zonewatch_decode::{decode, DecodeEvent, LinkType, Transport};
use zonewatch_defrag::{DefragConfig, Defragmenter};
use zonewatch_types::Timestamp;

fn data_dir() -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data");
    p.is_dir().then_some(p)
}

#[derive(Debug, Default)]
struct Run {
    /// Reassembled datagrams in order.
    out: Vec<Vec<u8>>,
    events: Vec<DecodeEvent>,
    fragments: usize,
    linktype: i32,
    /// Link type not decoded: nothing was pushed.
    skipped: bool,
}

fn run(path: &Path) -> Run {
    let mut cap = pcap::Capture::from_file(path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    let dlt = cap.get_datalink().0;
    let mut r = Run {
        linktype: dlt,
        ..Run::default()
    };
    let Some(link) = LinkType::from_dlt(dlt) else {
        r.skipped = true;
        return r;
    };
    let mut df = Defragmenter::new(DefragConfig::default());
    while let Ok(p) = cap.next_packet() {
        let ts = Timestamp::from_parts(p.header.ts.tv_sec, p.header.ts.tv_usec as u32 * 1000);
        let d = decode(link, p.data, p.header.len as usize);
        if d.ip.and_then(|i| i.frag).is_none() {
            continue;
        }
        r.fragments += 1;
        if let Some(buf) = df.push(ts, &d, p.data, &mut r.events) {
            r.out.push(buf);
        }
    }
    let c = df.counters();
    assert_eq!(c.fragments as usize, r.fragments);
    assert_eq!(c.reassembled as usize, r.out.len());
    r
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Tcp,
    Udp,
    Icmp,
}

/// Decodes a reassembled datagram; checks it is whole, unfragmented and of
/// `kind`; returns the IP total length (IPv6: payload length).
fn check(buf: &[u8], kind: Kind, valid: bool) -> usize {
    let d = decode(LinkType::Raw, buf, buf.len());
    let ip = d.ip.expect("reassembled datagram decodes as IP");
    assert!(ip.frag.is_none(), "still a fragment");
    assert_eq!((ip.header_len + ip.payload_len) as usize, buf.len());
    assert_eq!(d.invalid, !valid, "{:?}", d.events);
    let got = match d.transport {
        Transport::Tcp(_) => Some(Kind::Tcp),
        Transport::Udp { .. } => Some(Kind::Udp),
        Transport::Icmp { .. } => Some(Kind::Icmp),
        Transport::None => None,
    };
    if valid {
        assert_eq!(got, Some(kind), "{d:?}");
    }
    if ip.version == 4 {
        let sum = buf[..ip.header_len as usize]
            .chunks(2)
            .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
            .sum::<u32>();
        assert_eq!((sum & 0xffff) + (sum >> 16), 0xffff, "IPv4 checksum");
        assert_eq!(&buf[6..8], &[0, 0], "flags and offset cleared");
        usize::from(u16::from_be_bytes([buf[2], buf[3]]))
    } else {
        usize::from(u16::from_be_bytes([buf[4], buf[5]]))
    }
}

fn has(r: &Run, e: DecodeEvent) -> bool {
    r.events.contains(&e)
}

#[test]
fn zeek_ipv4_fragments() {
    let Some(dir) = data_dir() else {
        eprintln!("../shared/data absent: skipped");
        return;
    };
    let dir = dir.join("pcaps/zeek/ipv4");
    // 1: 18 bytes at 0, the last 116 at 48, then 304 bytes at 0 again. BSD
    // keeps the first 18 bytes and takes the rest of the third fragment,
    // which also covers the last one: Suricata copies it and the datagram
    // comes out 304 bytes long (tshark, keeping the first last fragment,
    // says 164); its UDP length no longer matches, so it decodes invalid.
    let r = run(&dir.join("fragmented-1.pcap"));
    assert_eq!(r.out.len(), 1);
    assert_eq!(check(&r.out[0], Kind::Udp, false), 20 + 304);
    assert!(has(&r, DecodeEvent::Ipv4FragOverlap));
    // 2: the first fragment again instead of the third: a duplicate, and
    // the hole at 18..48 never closes.
    let r = run(&dir.join("fragmented-2.pcap"));
    assert!(r.out.is_empty());
    assert!(has(&r, DecodeEvent::Ipv4FragOverlap));
    // 3: five fragments, no last one.
    let r = run(&dir.join("fragmented-3.pcap"));
    assert_eq!((r.fragments, r.out.len()), (5, 0));
    assert!(r.events.is_empty());
    // 4: a TCP segment in four fragments, one overlapping another (tshark:
    // 89 bytes reassembled).
    let r = run(&dir.join("fragmented-4.pcap"));
    assert_eq!((r.fragments, r.out.len()), (4, 1));
    assert_eq!(check(&r.out[0], Kind::Tcp, true), 20 + 89);
    assert!(has(&r, DecodeEvent::Ipv4FragOverlap));
}

#[test]
fn ipv6_fragments() {
    let Some(dir) = data_dir() else {
        eprintln!("../shared/data absent: skipped");
        return;
    };
    // Ten ICMPv6 echoes of 1508 bytes, two fragments each.
    let r = run(&dir.join("pcaps/chrissanders/ipv6_fragments.pcapng"));
    assert_eq!((r.fragments, r.out.len()), (20, 10));
    for b in &r.out {
        assert_eq!(check(b, Kind::Icmp, true), 1508);
    }
    assert!(r.events.is_empty(), "{:?}", r.events);
    // A lone last fragment, then a DNS answer of 3238 bytes in three.
    let r = run(&dir.join("pcaps/zeek/ipv6-fragmented-dns.pcap"));
    assert_eq!((r.fragments, r.out.len()), (4, 1));
    assert_eq!(check(&r.out[0], Kind::Udp, true), 3238);
}

/// The first `packet: "..."` of a suricata-verify test.yaml, decoded.
fn expected_packet(dir: &Path) -> Option<Vec<u8>> {
    let y = std::fs::read_to_string(dir.join("test.yaml")).ok()?;
    let line = y
        .lines()
        .find(|l| l.trim_start().starts_with("packet: \""))?;
    let b64 = line.split('"').nth(1)?;
    Some(base64(b64))
}

fn base64(s: &str) -> Vec<u8> {
    let val = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        _ => 63,
    };
    let bytes: Vec<u8> = s.bytes().filter(|&c| c != b'=').map(val).collect();
    let mut out = Vec::new();
    for ch in bytes.chunks(4) {
        let mut n = 0u32;
        for (i, &v) in ch.iter().enumerate() {
            n |= u32::from(v) << (18 - 6 * i);
        }
        out.extend_from_slice(&n.to_be_bytes()[1..ch.len()]);
    }
    out
}

#[test]
fn suricata_verify_defrag() {
    let Some(dir) = data_dir() else {
        eprintln!("../shared/data absent: skipped");
        return;
    };
    let dir = dir.join("suricata-verify/defrag");
    // (test, capture, link-layer bytes before IP in Suricata's packet,
    // transport, IP length / IPv6 payload length)
    let cases: [(&str, &str, usize, Kind, usize); 5] = [
        (
            "bug-6887-defrag-ipv4-tcp-syn",
            "frag-ip-tcp-syn.pcap",
            0,
            Kind::Tcp,
            44,
        ),
        (
            "bug-6887-defrag-eth-vlan-ipv4-tcp-syn",
            "frag-eth-vlan-ip-tcp-syn.pcap",
            18,
            Kind::Tcp,
            44,
        ),
        (
            "bug-6887-defrag-ipv6-tcp",
            "frag-ip-tcp.pcap",
            0,
            Kind::Tcp,
            1020,
        ),
        (
            "bug-6887-defrag-eth-vlan-ipv6-tcp",
            "frag-eth-vlan-ipv6-tcp.pcap",
            18,
            Kind::Tcp,
            1020,
        ),
        (
            "bug-6942-6887-defrag-eth-ip-gre-ppp-ip-udp-data",
            "eth-ip-gre-ppp-max-ip-packet.pcap",
            0,
            Kind::Udp,
            65535,
        ),
    ];
    for (test, file, l2, kind, len) in cases {
        let r = run(&dir.join(test).join(file));
        assert!(!r.skipped, "{test}");
        assert_eq!(r.out.len(), 1, "{test}");
        assert!(r.events.is_empty(), "{test}: {:?}", r.events);
        assert_eq!(check(&r.out[0], kind, true), len, "{test}");
        // The GRE test checks only the alerted packet's length.
        match expected_packet(&dir.join(test)) {
            Some(exp) => assert_eq!(
                r.out[0],
                exp[l2..],
                "{test}: differs from the packet Suricata alerted on"
            ),
            None => assert!(test.contains("gre"), "{test}: no expected packet"),
        }
    }
    // The 1024 fragments of a 65535-byte datagram inside GRE/PPP.
    let r = run(&dir
        .join("bug-6942-6887-defrag-eth-ip-gre-ppp-ip-udp-data")
        .join("eth-ip-gre-ppp-max-ip-packet.pcap"));
    assert_eq!(r.fragments, 1024);
    // PPP link type (9) is not decoded: nothing to push.
    let r = run(&dir
        .join("bug-6887-defrag-ppp-ipv6-tcp")
        .join("frag-ppp-ipv6-tcp.pcap"));
    assert!(r.skipped && r.linktype == 9);
}
