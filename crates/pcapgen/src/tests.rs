//! Round-trip tests: generate small captures, parse them back, check checksums,
//! TCP sequence consistency and determinism.

use std::collections::HashMap;
use std::net::IpAddr;

use crate::bench::{self, BenchConfig};
use crate::floods;
use crate::packet::{ACK, FIN, PROTO_TCP, RST, SYN};
use crate::pcap::PcapReader;
use crate::verify::{self, parse_frame, tcp_info};

fn small_bench(seed: u64) -> (Vec<u8>, bench::BenchSummary) {
    let mut cfg = BenchConfig::new(3 * 1024 * 1024, 400, seed);
    cfg.active = 40;
    let mut buf = Vec::new();
    let sum = bench::generate(&mut buf, &cfg).expect("generate");
    (buf, sum)
}

fn assert_clean(data: &[u8]) -> verify::VerifyReport {
    let rep = verify::verify_pcap(data).expect("readable pcap");
    assert_eq!(rep.error_count(), 0, "{rep}\n{:#?}", rep.errors);
    assert!(rep.packets > 0);
    rep
}

#[test]
fn bench_checksums_and_lengths_are_correct() {
    let (data, sum) = small_bench(7);
    let rep = assert_clean(&data);
    assert_eq!(rep.packets, sum.packets);
    assert_eq!(data.len() as u64, sum.file_bytes);
    assert_eq!(rep.bad_ip_checksum, 0);
    assert_eq!(rep.bad_l4_checksum, 0);
    assert!(rep.tcp > 0 && rep.udp > 0 && rep.ipv6 > 0, "{rep}");
    assert_eq!(rep.min_frame, 60);
    assert_eq!(rep.max_frame, 1514);
    // Size target honoured (within a small overshoot) and the flow target met.
    assert!(sum.file_bytes >= 3 * 1024 * 1024 * 95 / 100, "{sum}");
    assert!(sum.file_bytes <= 3 * 1024 * 1024 * 110 / 100, "{sum}");
    assert!(sum.flows >= 400, "{sum}");
    assert!(sum.by_proto.iter().all(|&n| n > 0), "{sum}");
}

#[test]
fn bench_tcp_sequence_numbers_are_consistent() {
    #[derive(Default)]
    struct Side {
        next: Option<u32>,
        fin: bool,
    }
    #[derive(Default)]
    struct Conn {
        sides: [Side; 2],
        syn: bool,
        closed: bool,
    }
    let (data, sum) = small_bench(11);
    let mut rd = PcapReader::new(&data[..]).unwrap();
    let mut buf = Vec::new();
    let mut conns: HashMap<(IpAddr, u16, IpAddr, u16), Conn> = HashMap::new();
    let mut n = 0;
    let mut completed = 0u64;
    let mut reused = 0u64;
    while rd.next_record(&mut buf).unwrap().is_some() {
        n += 1;
        let p = parse_frame(&buf).unwrap();
        if p.proto != PROTO_TCP {
            continue;
        }
        let t = tcp_info(p.l4).unwrap();
        // Canonical key: client is the side with the ephemeral port.
        let from_client = t.sport > t.dport;
        let key = if from_client {
            (p.src, t.sport, p.dst, t.dport)
        } else {
            (p.dst, t.dport, p.src, t.sport)
        };
        let (me, peer) = if from_client { (0, 1) } else { (1, 0) };
        let c = conns.entry(key).or_default();
        if c.closed && from_client && t.flags == SYN {
            // A new connection on a closed 4-tuple (a NAT client's port).
            *c = Conn::default();
            reused += 1;
        }
        assert!(!c.closed, "packet {n}: traffic after close");
        if t.flags & SYN != 0 {
            if from_client {
                assert!(!c.syn, "packet {n}: duplicate SYN (5-tuple reuse)");
                c.syn = true;
                assert_eq!(t.flags, SYN);
            } else {
                assert_eq!(t.flags, SYN | ACK);
                assert_eq!(
                    Some(t.ack),
                    c.sides[0].next,
                    "packet {n}: SYN/ACK acks client ISN+1"
                );
            }
            c.sides[me].next = Some(t.seq.wrapping_add(1));
            continue;
        }
        assert!(c.syn, "packet {n}: data before handshake");
        assert_eq!(
            Some(t.seq),
            c.sides[me].next,
            "packet {n}: seq gap or overlap"
        );
        assert!(t.flags & ACK != 0, "packet {n}: ACK flag missing");
        assert_eq!(
            Some(t.ack),
            c.sides[peer].next,
            "packet {n}: ack is not the peer's next seq"
        );
        assert!(
            !c.sides[me].fin || t.payload_len == 0,
            "packet {n}: data after FIN"
        );
        let mut adv = t.payload_len as u32;
        if t.flags & FIN != 0 {
            c.sides[me].fin = true;
            adv += 1;
        }
        c.sides[me].next = Some(t.seq.wrapping_add(adv));
        if t.flags & RST != 0 || (c.sides[0].fin && c.sides[1].fin && t.flags == ACK) {
            c.closed = true;
            completed += 1;
        }
    }
    let tcp_flows = sum.by_proto[0] + sum.by_proto[1] + sum.by_proto[3];
    assert_eq!(conns.len() as u64 + reused, tcp_flows);
    assert_eq!(reused, sum.reused_tuples, "{sum}");
    assert!(reused > 0, "the mix must reuse closed 4-tuples: {sum}");
    assert_eq!(
        completed, tcp_flows,
        "every TCP flow must end with FIN/ACK or RST"
    );
}

#[test]
fn bench_is_deterministic() {
    let (a, sa) = small_bench(3);
    let (b, sb) = small_bench(3);
    assert_eq!(sa.packets, sb.packets);
    assert!(a == b, "same seed must give identical bytes");
    let (c, _) = small_bench(4);
    assert!(a != c, "different seeds should differ");
}

#[test]
fn synflood_is_clean_and_distinct() {
    let mut buf = Vec::new();
    let s = floods::synflood(&mut buf, 5000, 1).unwrap();
    assert_eq!(s.packets, 5000);
    let rep = assert_clean(&buf);
    assert_eq!(rep.tcp, 5000);
    let mut rd = PcapReader::new(&buf[..]).unwrap();
    let mut f = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut last = 0;
    while let Some(rec) = rd.next_record(&mut f).unwrap() {
        if last != 0 {
            assert_eq!(rec.ts_us, last + 1);
        }
        last = rec.ts_us;
        let p = parse_frame(&f).unwrap();
        let t = tcp_info(p.l4).unwrap();
        assert_eq!(t.flags, SYN);
        assert_eq!(p.dst, IpAddr::V4(floods::VICTIM_IP));
        assert_eq!(t.dport, 80);
        assert!(seen.insert((p.src, t.sport)));
    }
    let mut again = Vec::new();
    floods::synflood(&mut again, 5000, 1).unwrap();
    assert!(buf == again);
}

#[test]
fn fragflood_is_clean() {
    let mut buf = Vec::new();
    let s = floods::fragflood(&mut buf, 3000, 1).unwrap();
    assert_eq!(s.packets, 3000);
    let rep = assert_clean(&buf);
    assert_eq!(rep.fragments, 3000);
    assert_eq!(rep.min_frame, 1514);
    let mut rd = PcapReader::new(&buf[..]).unwrap();
    let mut f = Vec::new();
    let mut ids = std::collections::HashSet::new();
    while rd.next_record(&mut f).unwrap().is_some() {
        let ip = &f[14..];
        assert_eq!(
            u16::from_be_bytes([ip[6], ip[7]]),
            0x2000,
            "MF set, offset 0"
        );
        assert!(
            ids.insert(u16::from_be_bytes([ip[4], ip[5]])),
            "distinct IP ids"
        );
    }
}

#[test]
fn segflood_never_contiguous() {
    let mut buf = Vec::new();
    let s = floods::segflood(&mut buf, 20, 2000, 1).unwrap();
    assert_eq!(s.packets, 20 * 3 + 2000);
    assert_clean(&buf);
    let mut rd = PcapReader::new(&buf[..]).unwrap();
    let mut f = Vec::new();
    let mut isn: HashMap<u16, u32> = HashMap::new();
    let mut next: HashMap<u16, u32> = HashMap::new();
    let mut data = 0;
    while rd.next_record(&mut f).unwrap().is_some() {
        let p = parse_frame(&f).unwrap();
        let t = tcp_info(p.l4).unwrap();
        if t.flags == SYN {
            isn.insert(t.sport, t.seq);
            continue;
        }
        if t.payload_len == 0 {
            continue;
        }
        data += 1;
        assert_eq!(t.payload_len, 1000);
        let expected = *next
            .get(&t.sport)
            .unwrap_or(&isn[&t.sport].wrapping_add(1).wrapping_add(1000));
        assert_eq!(t.seq, expected);
        next.insert(t.sport, t.seq.wrapping_add(1000));
    }
    assert_eq!(data, 2000);
}
