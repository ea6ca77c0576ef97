//! Attack-style captures: SYN flood, IPv4 first-fragment flood, out-of-order segment flood.

use std::collections::HashSet;
use std::fmt;
use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr};

use crate::bench::{ROUTER_MAC, START_US};
use crate::packet::{self, Endpoint, Ipv4Hdr, TcpSeg, ACK, IP_MF, PROTO_UDP, PSH, SYN};
use crate::pcap::PcapWriter;
use crate::rng::Rng;

/// The attacked host.
pub const VICTIM_IP: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 10);
pub const VICTIM_MAC: [u8; 6] = [0x00, 0x16, 0x3e, 0x51, 0x64, 0x0a];

#[derive(Clone, Debug, Default)]
pub struct FloodSummary {
    pub packets: u64,
    pub file_bytes: u64,
    pub frame_bytes: u64,
    pub flows: u64,
}

impl fmt::Display for FloodSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let avg = if self.packets == 0 {
            0.0
        } else {
            self.frame_bytes as f64 / self.packets as f64
        };
        write!(
            f,
            "packets={} bytes={} avg_frame={avg:.1} flows={}",
            self.packets, self.file_bytes, self.flows
        )
    }
}

fn summary<W: Write>(out: PcapWriter<W>, flows: u64) -> io::Result<FloodSummary> {
    let s = FloodSummary {
        packets: out.packets,
        file_bytes: out.file_bytes,
        frame_bytes: out.frame_bytes,
        flows,
    };
    out.finish()?;
    Ok(s)
}

/// A random unicast, non-private IPv4 address (what a spoofing tool would pick).
fn random_public_v4(rng: &mut Rng) -> [u8; 4] {
    loop {
        let a: [u8; 4] = rng.next_u32().to_be_bytes();
        let bad = matches!(a[0], 0 | 10 | 127 | 224..=255)
            || (a[0] == 172 && (16..=31).contains(&a[1]))
            || (a[0] == 192 && a[1] == 168)
            || (a[0] == 169 && a[1] == 254)
            || (a[0] == 100 && (64..=127).contains(&a[1]))
            || a[3] == 0
            || a[3] == 255
            || a == VICTIM_IP.octets();
        if !bad {
            return a;
        }
    }
}

fn victim(port: u16) -> Endpoint {
    Endpoint {
        mac: VICTIM_MAC,
        ip: IpAddr::V4(VICTIM_IP),
        port,
        ttl: 64,
    }
}

/// One SYN per packet from distinct spoofed (address, port) pairs to 198.51.100.10:80.
pub fn synflood<W: Write>(w: W, flows: u64, seed: u64) -> io::Result<FloodSummary> {
    let mut rng = Rng::new(seed ^ 0x5359_4e46_4c4f_4f44);
    let mut out = PcapWriter::new(w)?;
    let dst = victim(80);
    let mut seen: HashSet<u64> = HashSet::with_capacity(flows as usize);
    let mut frame = Vec::with_capacity(128);
    let opts = [2u8, 4, 0x05, 0xb4]; // MSS 1460
    for i in 0..flows {
        let (ip, port) = loop {
            let ip = random_public_v4(&mut rng);
            let port = rng.range(1024, 65_535) as u16;
            let key = (u64::from(u32::from_be_bytes(ip)) << 16) | u64::from(port);
            if seen.insert(key) {
                break (ip, port);
            }
        };
        let src = Endpoint {
            mac: ROUTER_MAC,
            ip: IpAddr::V4(Ipv4Addr::from(ip)),
            port,
            ttl: rng.range(30, 250) as u8,
        };
        let seg = TcpSeg {
            seq: rng.next_u32(),
            ack: 0,
            flags: SYN,
            window: *rng.pick(&[64_240u16, 65_535, 29_200, 8_192, 5_840, 1_024]),
            options: &opts,
            payload: &[],
        };
        packet::tcp_frame(&mut frame, &src, &dst, u32::from(rng.next_u16()), &seg);
        out.write_packet(START_US + i, &frame)?;
    }
    summary(out, flows)
}

/// IPv4 first fragments (MF set, offset 0, 1480 payload bytes) whose later
/// fragments never arrive. The payload starts with a UDP header whose length and
/// checksum describe the whole (never completed) datagram.
pub fn fragflood<W: Write>(w: W, count: u64, seed: u64) -> io::Result<FloodSummary> {
    let mut rng = Rng::new(seed ^ 0x4652_4147_464c_4f4f);
    let mut out = PcapWriter::new(w)?;
    let mut seen: HashSet<u64> = HashSet::with_capacity(count as usize);
    let id_base = rng.next_u16();
    let dst = VICTIM_IP.octets();
    let mut payload = vec![0u8; 1480];
    let mut frame = Vec::with_capacity(1600);
    for i in 0..count {
        let id = id_base.wrapping_add(i as u16);
        let src = loop {
            let src = random_public_v4(&mut rng);
            let key = (u64::from(u32::from_be_bytes(src)) << 16) | u64::from(id);
            if seen.insert(key) {
                break src;
            }
        };
        // The missing second fragment would carry `rest` zero bytes.
        let rest = rng.range(8, 1480) as usize;
        let udp_len = 1480 + rest;
        let sport = rng.range(1024, 65_535) as u16;
        let dport = *rng.pick(&[53u16, 123, 443, 500, 1900, 4500, 11211]);
        payload[0..2].copy_from_slice(&sport.to_be_bytes());
        payload[2..4].copy_from_slice(&dport.to_be_bytes());
        payload[4..6].copy_from_slice(&(udp_len as u16).to_be_bytes());
        payload[6..8].copy_from_slice(&[0, 0]);
        rng.fill(&mut payload[8..]);
        let (s_ip, d_ip) = (IpAddr::V4(Ipv4Addr::from(src)), IpAddr::V4(VICTIM_IP));
        let sum = packet::checksum_add(
            packet::pseudo_header_sum(&s_ip, &d_ip, PROTO_UDP, udp_len),
            &payload,
        );
        let c = match packet::checksum_finish(sum) {
            0 => 0xffff,
            c => c,
        };
        payload[6..8].copy_from_slice(&c.to_be_bytes());

        frame.clear();
        packet::push_eth(&mut frame, &VICTIM_MAC, &ROUTER_MAC, packet::ETHERTYPE_IPV4);
        packet::push_ipv4(
            &mut frame,
            &Ipv4Hdr {
                src,
                dst,
                proto: PROTO_UDP,
                id,
                flags_frag: IP_MF,
                ttl: rng.range(30, 250) as u8,
            },
            payload.len(),
        );
        frame.extend_from_slice(&payload);
        out.write_packet(START_US + i, &frame)?;
    }
    summary(out, count)
}

/// Established TCP flows followed by data segments that never become contiguous:
/// each flow's first 1000-byte segment (at ISN+1) is never sent.
pub fn segflood<W: Write>(w: W, flows: u64, segments: u64, seed: u64) -> io::Result<FloodSummary> {
    struct F {
        c: Endpoint,
        c_next: u32,
        s_ack: u32,
        c_id: u16,
    }
    let mut rng = Rng::new(seed ^ 0x5345_4746_4c4f_4f44);
    let mut out = PcapWriter::new(w)?;
    let s = victim(80);
    let mut ts = START_US;
    let mut frame = Vec::with_capacity(1600);
    let mut seen = HashSet::new();
    let mut fl: Vec<F> = Vec::with_capacity(flows as usize);
    let opts = packet::syn_options(1460, 7);
    for _ in 0..flows {
        let (ip, port) = loop {
            let ip = Ipv4Addr::new(
                10,
                rng.below(256) as u8,
                rng.below(256) as u8,
                rng.range(1, 254) as u8,
            );
            let port = rng.range(32_768, 60_999) as u16;
            if seen.insert((ip, port)) {
                break (ip, port);
            }
        };
        let c = Endpoint {
            mac: [
                0x02,
                0x42,
                0x0a,
                ip.octets()[1],
                ip.octets()[2],
                ip.octets()[3],
            ],
            ip: IpAddr::V4(ip),
            port,
            ttl: 64,
        };
        let c_isn = rng.next_u32();
        let s_isn = rng.next_u32();
        let mut c_id = rng.next_u16();
        let s_id = rng.next_u16();
        let syn = TcpSeg {
            seq: c_isn,
            ack: 0,
            flags: SYN,
            window: 64_240,
            options: &opts,
            payload: &[],
        };
        packet::tcp_frame(&mut frame, &c, &s, u32::from(c_id), &syn);
        out.write_packet(ts, &frame)?;
        ts += 1;
        let synack = TcpSeg {
            seq: s_isn,
            ack: c_isn.wrapping_add(1),
            flags: SYN | ACK,
            window: 65_160,
            options: &opts,
            payload: &[],
        };
        packet::tcp_frame(&mut frame, &s, &c, u32::from(s_id), &synack);
        out.write_packet(ts, &frame)?;
        ts += 1;
        c_id = c_id.wrapping_add(1);
        let ack = TcpSeg {
            seq: c_isn.wrapping_add(1),
            ack: s_isn.wrapping_add(1),
            flags: ACK,
            window: 502,
            options: &[],
            payload: &[],
        };
        packet::tcp_frame(&mut frame, &c, &s, u32::from(c_id), &ack);
        out.write_packet(ts, &frame)?;
        ts += 1;
        fl.push(F {
            c,
            c_next: c_isn.wrapping_add(1).wrapping_add(1000),
            s_ack: s_isn.wrapping_add(1),
            c_id: c_id.wrapping_add(1),
        });
    }
    let mut payload = vec![0u8; 1000];
    for _ in 0..segments {
        if fl.is_empty() {
            break;
        }
        let f = &mut fl[rng.index(flows as usize)];
        // Upload-body-like ASCII (the request line went out in the missing segment).
        rng.fill(&mut payload);
        for b in payload.iter_mut() {
            *b = b'a' + *b % 26;
        }
        let seg = TcpSeg {
            seq: f.c_next,
            ack: f.s_ack,
            flags: ACK | PSH,
            window: 502,
            options: &[],
            payload: &payload,
        };
        packet::tcp_frame(&mut frame, &f.c, &s, u32::from(f.c_id), &seg);
        out.write_packet(ts, &frame)?;
        ts += 1;
        f.c_next = f.c_next.wrapping_add(1000);
        f.c_id = f.c_id.wrapping_add(1);
    }
    summary(out, flows)
}
