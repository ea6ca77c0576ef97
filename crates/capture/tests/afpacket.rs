//! AF_PACKET fanout rings on a real veth pair, in a network namespace made
//! for the test (no addresses, no routes): frames sent into one end with
//! libpcap are read from the rings on the other.
//!
//! Needs root (namespaces, CAP_NET_RAW). Without it the tests skip, except
//! under CI=true where they must run.

use nix::sched::{setns, CloneFlags};
use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::time::{Duration, Instant};
use zonewatch_capture::afpacket::{open_fanout, AfPacketOptions, Ring};
use zonewatch_capture::Next;

/// A namespace holding a veth pair `zwa` <-> `zwb`, both up; removed on drop.
struct Netns {
    name: String,
}

fn ip(args: &[&str]) {
    let o = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        o.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

impl Netns {
    fn new(tag: &str) -> Option<Netns> {
        let root = nix::unistd::geteuid().is_root();
        if !root {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI=true: the AF_PACKET tests must run as root"
            );
            eprintln!("skipped: needs root");
            return None;
        }
        let name = format!("zwafp-{tag}-{}", std::process::id());
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        ip(&["netns", "add", &name]);
        let ns = Netns { name };
        let n = ns.name.as_str();
        ip(&[
            "-n", n, "link", "add", "zwa", "type", "veth", "peer", "name", "zwb",
        ]);
        ip(&["-n", n, "link", "set", "zwa", "up"]);
        ip(&["-n", n, "link", "set", "zwb", "up"]);
        // No IPv6 autoconfiguration chatter on the test link.
        for dev in ["zwa", "zwb"] {
            let _ = Command::new("ip")
                .args(["netns", "exec", n, "sysctl", "-qw"])
                .arg(format!("net.ipv6.conf.{dev}.disable_ipv6=1"))
                .output();
        }
        Some(ns)
    }

    /// Moves the calling thread into the namespace (sockets opened after
    /// this belong to it).
    fn enter(&self) {
        let f = std::fs::File::open(format!("/var/run/netns/{}", self.name)).unwrap();
        setns(f, CloneFlags::CLONE_NEWNET).unwrap();
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

fn opts(rings: usize) -> AfPacketOptions {
    AfPacketOptions {
        interface: "zwb".into(),
        rings,
        ring_bytes: 4 << 20,
        block_bytes: 64 << 10,
        block_timeout_ms: 5,
        cluster_id: 4242,
        promisc: true,
    }
}

fn checksum(b: &[u8]) -> u16 {
    let mut s = 0u32;
    for c in b.chunks(2) {
        s += u32::from(c[0]) << 8 | u32::from(*c.get(1).unwrap_or(&0));
    }
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

/// An Ethernet/IPv4 frame carrying `l4` (protocol `proto`), optionally
/// 802.1Q-tagged, with a fragment field.
fn frame(
    src: [u8; 4],
    dst: [u8; 4],
    proto: u8,
    l4: &[u8],
    vlan: Option<u16>,
    frag: u16,
    id: u16,
) -> Vec<u8> {
    let mut f = vec![0x02, 0, 0, 0, 0, 0xbb, 0x02, 0, 0, 0, 0, 0xaa];
    if let Some(v) = vlan {
        f.extend_from_slice(&[0x81, 0x00]);
        f.extend_from_slice(&v.to_be_bytes());
    }
    f.extend_from_slice(&[0x08, 0x00]);
    let mut ip = vec![0x45, 0];
    ip.extend_from_slice(&((20 + l4.len()) as u16).to_be_bytes());
    ip.extend_from_slice(&id.to_be_bytes());
    ip.extend_from_slice(&frag.to_be_bytes());
    ip.extend_from_slice(&[64, proto, 0, 0]);
    ip.extend_from_slice(&src);
    ip.extend_from_slice(&dst);
    let c = checksum(&ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&ip);
    f.extend_from_slice(l4);
    f
}

/// A TCP segment header (no options) with `payload`.
fn tcp(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut t = Vec::new();
    t.extend_from_slice(&sport.to_be_bytes());
    t.extend_from_slice(&dport.to_be_bytes());
    t.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x18, 0xff, 0xff, 0, 0, 0, 0]);
    t.extend_from_slice(payload);
    t
}

fn udp(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut u = Vec::new();
    u.extend_from_slice(&sport.to_be_bytes());
    u.extend_from_slice(&dport.to_be_bytes());
    u.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u.extend_from_slice(payload);
    u
}

fn sender() -> pcap::Capture<pcap::Active> {
    pcap::Capture::from_device("zwa").unwrap().open().unwrap()
}

/// Everything the rings hold, until none has had a packet for `quiet`.
fn drain(rings: &mut [Ring], quiet: Duration) -> Vec<Vec<Vec<u8>>> {
    let mut got = vec![Vec::new(); rings.len()];
    let mut last = Instant::now();
    while last.elapsed() < quiet {
        for (i, r) in rings.iter_mut().enumerate() {
            while let Next::Packet(p) = r.next_packet(1) {
                got[i].push(p.data.to_vec());
                last = Instant::now();
            }
        }
    }
    got
}

#[test]
fn fanout_keeps_both_directions_of_a_flow_in_one_ring_and_loses_nothing() {
    let Some(ns) = Netns::new("flows") else {
        return;
    };
    ns.enter();
    let mut rings = open_fanout(&opts(2), None).unwrap();
    assert_eq!(rings.len(), 2);
    let mut tx = sender();
    let mut sent = Vec::new();
    // 200 flows, a packet each way; every tenth flow on VLAN 42 (the
    // kernel takes the tag out; the ring must put it back).
    for i in 0..200u16 {
        let (c, s) = ([10, 0, (i >> 8) as u8, i as u8], [192, 0, 2, 1]);
        let vlan = (i % 10 == 0).then_some(42);
        let up = frame(
            c,
            s,
            6,
            &tcp(40000 + i, 80, b"GET / HTTP/1.1\r\n"),
            vlan,
            0x4000,
            i,
        );
        let down = frame(
            s,
            c,
            6,
            &tcp(80, 40000 + i, b"HTTP/1.1 200 OK\r\n"),
            vlan,
            0x4000,
            i,
        );
        for f in [up, down] {
            tx.sendpacket(f.as_slice()).unwrap();
            sent.push(f);
        }
    }
    let got = drain(&mut rings, Duration::from_millis(300));
    let mut all: Vec<Vec<u8>> = got.iter().flatten().cloned().collect();
    all.sort();
    let mut want = sent.clone();
    want.sort();
    assert_eq!(all.len(), want.len(), "frames received vs sent");
    assert_eq!(all, want, "received bytes differ from sent bytes");
    // Both directions of each flow in the same ring.
    let mut ring_of: BTreeMap<u16, BTreeSet<usize>> = BTreeMap::new();
    for (r, frames) in got.iter().enumerate() {
        for f in frames {
            let eth = if f[12..14] == [0x81, 0x00] { 18 } else { 14 };
            let tcp_at = eth + 20;
            let (sp, dp) = (
                u16::from_be_bytes([f[tcp_at], f[tcp_at + 1]]),
                u16::from_be_bytes([f[tcp_at + 2], f[tcp_at + 3]]),
            );
            ring_of.entry(sp.max(dp)).or_default().insert(r);
        }
    }
    assert_eq!(ring_of.len(), 200);
    assert!(
        ring_of.values().all(|s| s.len() == 1),
        "a flow was split over rings"
    );
    assert!(
        got.iter().all(|g| !g.is_empty()),
        "one ring got nothing: {:?}",
        got.iter().map(Vec::len).collect::<Vec<_>>()
    );
    let stats: u64 = rings.iter_mut().map(|r| r.stats().packets).sum();
    assert_eq!(stats, sent.len() as u64);
    assert_eq!(rings.iter_mut().map(|r| r.stats().drops).sum::<u64>(), 0);
}

#[test]
fn bpf_runs_in_the_kernel() {
    let Some(ns) = Netns::new("bpf") else { return };
    ns.enter();
    let mut rings = open_fanout(&opts(1), Some("tcp port 80")).unwrap();
    let mut tx = sender();
    for i in 0..50u16 {
        tx.sendpacket(
            frame(
                [10, 0, 0, 1],
                [192, 0, 2, 1],
                6,
                &tcp(1000 + i, 80, b"x"),
                None,
                0,
                i,
            )
            .as_slice(),
        )
        .unwrap();
        tx.sendpacket(
            frame(
                [10, 0, 0, 1],
                [192, 0, 2, 1],
                17,
                &udp(1000 + i, 53, b"y"),
                None,
                0,
                i,
            )
            .as_slice(),
        )
        .unwrap();
    }
    let got = drain(&mut rings, Duration::from_millis(300));
    assert_eq!(got[0].len(), 50);
    assert!(
        got[0].iter().all(|f| f[23] == 6),
        "a non-TCP frame passed the filter"
    );
    // The kernel counts only what the filter passed.
    assert_eq!(rings[0].stats().packets, 50);
    assert!(matches!(
        open_fanout(&opts(1), Some("tcp port")),
        Err(zonewatch_capture::CaptureError::Bpf { .. })
    ));
}

#[test]
fn fragments_reach_the_ring_of_their_flow_reassembled() {
    let Some(ns) = Netns::new("frag") else { return };
    ns.enter();
    let mut rings = open_fanout(&opts(2), None).unwrap();
    let mut tx = sender();
    for i in 0..32u16 {
        let c = [10, 0, 1, i as u8];
        let s = [192, 0, 2, 9];
        // A whole datagram of the flow, then one in two fragments.
        tx.sendpacket(frame(c, s, 17, &udp(5000 + i, 53, b"whole"), None, 0x4000, 1).as_slice())
            .unwrap();
        let dgram = udp(5000 + i, 53, &[b'f'; 64]);
        let (a, b) = dgram.split_at(32);
        tx.sendpacket(frame(c, s, 17, a, None, 0x2000, 100 + i).as_slice())
            .unwrap();
        tx.sendpacket(frame(c, s, 17, b, None, 4, 100 + i).as_slice())
            .unwrap();
    }
    let got = drain(&mut rings, Duration::from_millis(300));
    let mut ring_of: BTreeMap<u8, BTreeSet<usize>> = BTreeMap::new();
    let mut reassembled = 0;
    for (r, frames) in got.iter().enumerate() {
        for f in frames {
            ring_of.entry(f[29]).or_default().insert(r); // last byte of the source address
            if f.len() == 14 + 20 + 8 + 64 {
                reassembled += 1;
            }
        }
    }
    assert_eq!(ring_of.len(), 32);
    assert!(
        ring_of.values().all(|s| s.len() == 1),
        "a datagram's fragments left its flow's ring"
    );
    assert_eq!(
        reassembled, 32,
        "the kernel hands over the reassembled datagram"
    );
}

#[test]
fn a_full_ring_counts_its_drops() {
    let Some(ns) = Netns::new("drops") else {
        return;
    };
    ns.enter();
    let mut o = opts(1);
    o.ring_bytes = 64 << 10; // one block
    let mut rings = open_fanout(&o, None).unwrap();
    let mut tx = sender();
    let n = 2000u64;
    for i in 0..n {
        let f = frame(
            [10, 0, 0, 1],
            [192, 0, 2, 1],
            17,
            &udp(7, 9, &[0u8; 1000]),
            None,
            0,
            i as u16,
        );
        tx.sendpacket(f.as_slice()).unwrap();
    }
    // Nothing was read while sending: the ring filled and the kernel dropped.
    let got = drain(&mut rings, Duration::from_millis(300));
    let s = rings[0].stats();
    assert!(s.drops > 0, "{s:?}");
    assert_eq!(s.packets, n, "{s:?}");
    assert_eq!(got[0].len() as u64 + s.drops, n, "{s:?}");
}
