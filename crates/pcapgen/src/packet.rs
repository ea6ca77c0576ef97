//! Hand-written Ethernet / IPv4 / IPv6 / TCP / UDP frame builders with correct
//! lengths and checksums.

use std::net::IpAddr;

pub const ETH_LEN: usize = 14;
/// Minimum Ethernet frame without FCS (64 bytes on the wire with it).
pub const MIN_FRAME: usize = 60;
/// Maximum Ethernet frame without FCS for a 1500-byte MTU.
pub const MAX_FRAME: usize = 1514;
pub const ETHERTYPE_IPV4: u16 = 0x0800;
pub const ETHERTYPE_IPV6: u16 = 0x86dd;
pub const PROTO_TCP: u8 = 6;
pub const PROTO_UDP: u8 = 17;

pub const FIN: u8 = 0x01;
pub const SYN: u8 = 0x02;
pub const RST: u8 = 0x04;
pub const PSH: u8 = 0x08;
pub const ACK: u8 = 0x10;

/// IPv4 "don't fragment" flag (in the flags/fragment-offset field).
pub const IP_DF: u16 = 0x4000;
/// IPv4 "more fragments" flag.
pub const IP_MF: u16 = 0x2000;

/// One side of a conversation.
#[derive(Clone, Copy, Debug)]
pub struct Endpoint {
    pub mac: [u8; 6],
    pub ip: IpAddr,
    pub port: u16,
    /// IPv4 TTL / IPv6 hop limit of packets sent by this endpoint.
    pub ttl: u8,
}

/// The TCP part of a segment to build.
#[derive(Clone, Copy, Debug)]
pub struct TcpSeg<'a> {
    pub seq: u32,
    pub ack: u32,
    pub flags: u8,
    pub window: u16,
    /// TCP options; the length must be a multiple of 4.
    pub options: &'a [u8],
    pub payload: &'a [u8],
}

/// Adds `data` to a one's-complement running sum (RFC 1071), 32 bits at a time.
#[inline]
pub fn checksum_add(mut sum: u64, data: &[u8]) -> u64 {
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        sum += u64::from(u32::from_be_bytes([c[0], c[1], c[2], c[3]]));
    }
    let rem = chunks.remainder();
    let mut i = 0;
    if rem.len() >= 2 {
        sum += u64::from(u16::from_be_bytes([rem[0], rem[1]]));
        i = 2;
    }
    if rem.len() > i {
        sum += u64::from(rem[i]) << 8;
    }
    sum
}

/// Folds a running sum into the final 16-bit checksum value.
#[inline]
pub fn checksum_finish(mut sum: u64) -> u16 {
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Sum of the TCP/UDP pseudo-header for an upper-layer length of `l4_len`.
pub fn pseudo_header_sum(src: &IpAddr, dst: &IpAddr, proto: u8, l4_len: usize) -> u64 {
    let mut s = 0u64;
    match (src, dst) {
        (IpAddr::V4(a), IpAddr::V4(b)) => {
            s = checksum_add(s, &a.octets());
            s = checksum_add(s, &b.octets());
        }
        (IpAddr::V6(a), IpAddr::V6(b)) => {
            s = checksum_add(s, &a.octets());
            s = checksum_add(s, &b.octets());
        }
        _ => panic!("mixed IPv4/IPv6 addresses"),
    }
    s + u64::from(proto) + l4_len as u64
}

/// TCP/UDP checksum of `seg` (whose checksum field must be zero).
pub fn l4_checksum(src: &IpAddr, dst: &IpAddr, proto: u8, seg: &[u8]) -> u16 {
    let s = checksum_add(pseudo_header_sum(src, dst, proto, seg.len()), seg);
    let c = checksum_finish(s);
    if proto == PROTO_UDP && c == 0 {
        0xffff
    } else {
        c
    }
}

/// Fields of an IPv4 header to build.
#[derive(Clone, Copy, Debug)]
pub struct Ipv4Hdr {
    pub src: [u8; 4],
    pub dst: [u8; 4],
    pub proto: u8,
    pub id: u16,
    /// Flags (DF/MF) and fragment offset in 8-byte units.
    pub flags_frag: u16,
    pub ttl: u8,
}

/// Appends a 20-byte IPv4 header (with checksum) for `payload_len` bytes of payload.
pub fn push_ipv4(buf: &mut Vec<u8>, h: &Ipv4Hdr, payload_len: usize) {
    let start = buf.len();
    let total = (20 + payload_len) as u16;
    buf.extend_from_slice(&[0x45, 0x00]);
    buf.extend_from_slice(&total.to_be_bytes());
    buf.extend_from_slice(&h.id.to_be_bytes());
    buf.extend_from_slice(&h.flags_frag.to_be_bytes());
    buf.extend_from_slice(&[h.ttl, h.proto, 0, 0]);
    buf.extend_from_slice(&h.src);
    buf.extend_from_slice(&h.dst);
    let c = checksum_finish(checksum_add(0, &buf[start..start + 20]));
    buf[start + 10..start + 12].copy_from_slice(&c.to_be_bytes());
}

#[inline]
pub fn push_eth(buf: &mut Vec<u8>, dst: &[u8; 6], src: &[u8; 6], ethertype: u16) {
    buf.extend_from_slice(dst);
    buf.extend_from_slice(src);
    buf.extend_from_slice(&ethertype.to_be_bytes());
}

/// Pads a frame to the Ethernet minimum with zero bytes (trailer after the IP packet).
#[inline]
pub fn pad_frame(buf: &mut Vec<u8>) {
    if buf.len() < MIN_FRAME {
        buf.resize(MIN_FRAME, 0);
    }
}

/// Clears `buf` and writes the Ethernet + IP headers; returns the L4 offset.
/// `ip_id` is the IPv4 identification (low 16 bits) or the IPv6 flow label (low 20 bits).
fn start_ip(
    buf: &mut Vec<u8>,
    src: &Endpoint,
    dst: &Endpoint,
    proto: u8,
    l4_len: usize,
    ip_id: u32,
) -> usize {
    buf.clear();
    match (src.ip, dst.ip) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            push_eth(buf, &dst.mac, &src.mac, ETHERTYPE_IPV4);
            push_ipv4(
                buf,
                &Ipv4Hdr {
                    src: s.octets(),
                    dst: d.octets(),
                    proto,
                    id: ip_id as u16,
                    flags_frag: IP_DF,
                    ttl: src.ttl,
                },
                l4_len,
            );
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            push_eth(buf, &dst.mac, &src.mac, ETHERTYPE_IPV6);
            let first: u32 = (6 << 28) | (ip_id & 0x000f_ffff);
            buf.extend_from_slice(&first.to_be_bytes());
            buf.extend_from_slice(&(l4_len as u16).to_be_bytes());
            buf.extend_from_slice(&[proto, src.ttl]);
            buf.extend_from_slice(&s.octets());
            buf.extend_from_slice(&d.octets());
        }
        _ => panic!("mixed IPv4/IPv6 endpoints"),
    }
    buf.len()
}

/// Builds a complete Ethernet/IP/TCP frame into `buf`.
pub fn tcp_frame(buf: &mut Vec<u8>, src: &Endpoint, dst: &Endpoint, ip_id: u32, seg: &TcpSeg<'_>) {
    debug_assert!(seg.options.len() & 3 == 0 && seg.options.len() <= 40);
    let hdr_len = 20 + seg.options.len();
    let l4 = start_ip(buf, src, dst, PROTO_TCP, hdr_len + seg.payload.len(), ip_id);
    buf.extend_from_slice(&src.port.to_be_bytes());
    buf.extend_from_slice(&dst.port.to_be_bytes());
    buf.extend_from_slice(&seg.seq.to_be_bytes());
    buf.extend_from_slice(&seg.ack.to_be_bytes());
    buf.push(((hdr_len / 4) as u8) << 4);
    buf.push(seg.flags);
    buf.extend_from_slice(&seg.window.to_be_bytes());
    buf.extend_from_slice(&[0, 0, 0, 0]); // checksum, urgent pointer
    buf.extend_from_slice(seg.options);
    buf.extend_from_slice(seg.payload);
    let c = l4_checksum(&src.ip, &dst.ip, PROTO_TCP, &buf[l4..]);
    buf[l4 + 16..l4 + 18].copy_from_slice(&c.to_be_bytes());
    pad_frame(buf);
}

/// Builds a complete Ethernet/IP/UDP frame into `buf`.
pub fn udp_frame(buf: &mut Vec<u8>, src: &Endpoint, dst: &Endpoint, ip_id: u32, payload: &[u8]) {
    let len = 8 + payload.len();
    let l4 = start_ip(buf, src, dst, PROTO_UDP, len, ip_id);
    buf.extend_from_slice(&src.port.to_be_bytes());
    buf.extend_from_slice(&dst.port.to_be_bytes());
    buf.extend_from_slice(&(len as u16).to_be_bytes());
    buf.extend_from_slice(&[0, 0]);
    buf.extend_from_slice(payload);
    let c = l4_checksum(&src.ip, &dst.ip, PROTO_UDP, &buf[l4..]);
    buf[l4 + 6..l4 + 8].copy_from_slice(&c.to_be_bytes());
    pad_frame(buf);
}

/// Standard SYN options: MSS, SACK permitted, window scale (12 bytes).
pub fn syn_options(mss: u16, wscale: u8) -> [u8; 12] {
    let m = mss.to_be_bytes();
    [2, 4, m[0], m[1], 1, 1, 4, 2, 1, 3, 3, wscale]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1071_example() {
        // Example from RFC 1071 section 3: 0001 + f203 + f4f5 + f6f7 folds to ddf2.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(checksum_finish(checksum_add(0, &data)), !0xddf2);
        // odd lengths pad with a zero byte
        let odd = [0x00, 0x01, 0xf2, 0x03, 0xf4];
        let even = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0x00];
        assert_eq!(
            checksum_finish(checksum_add(0, &odd)),
            checksum_finish(checksum_add(0, &even))
        );
    }

    #[test]
    fn ipv4_header_checksum_known_value() {
        // Classic example header (Wikipedia "IPv4 header checksum"): checksum 0xb861.
        let mut buf = Vec::new();
        push_ipv4(
            &mut buf,
            &Ipv4Hdr {
                src: [0xc0, 0xa8, 0x00, 0x01],
                dst: [0xc0, 0xa8, 0x00, 0xc7],
                proto: 17,
                id: 0x0000,
                flags_frag: IP_DF,
                ttl: 0x40,
            },
            0x73 - 20,
        );
        assert_eq!(&buf[10..12], &[0xb8, 0x61]);
        assert_eq!(checksum_finish(checksum_add(0, &buf)), 0);
    }
}
