//! Test packet builders, after Suricata's `BuildIpv4TestPacket` /
//! `BuildIpv6TestPacket` (defrag.c unit tests): 1.1.1.1 -> 2.2.2.2 (IPv6:
//! 0101:: -> 0202::), offsets in 8-byte units.
#![allow(dead_code)]

use zonewatch_decode::{decode, DecodeEvent, Decoded, LinkType};
use zonewatch_defrag::Defragmenter;
use zonewatch_types::Timestamp;

pub const ICMP: u8 = 1;
pub const UDP: u8 = 17;
pub const ICMPV6: u8 = 58;

pub fn ipv4_checksum(h: &[u8]) -> u16 {
    let mut sum = 0u32;
    for w in h.chunks(2) {
        sum += u32::from(u16::from_be_bytes([w[0], *w.get(1).unwrap_or(&0)]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An IPv4 fragment holding `content`.
pub fn v4(proto: u8, id: u16, off8: u16, mf: bool, content: &[u8]) -> Vec<u8> {
    v4_addrs(proto, id, off8, mf, content, [1, 1, 1, 1], [2, 2, 2, 2])
}

pub fn v4_addrs(
    proto: u8,
    id: u16,
    off8: u16,
    mf: bool,
    content: &[u8],
    src: [u8; 4],
    dst: [u8; 4],
) -> Vec<u8> {
    let total = (20 + content.len()) as u16;
    let fo = off8 | if mf { 0x2000 } else { 0 };
    let mut p = vec![0x45, 0];
    p.extend_from_slice(&total.to_be_bytes());
    p.extend_from_slice(&id.to_be_bytes());
    p.extend_from_slice(&fo.to_be_bytes());
    p.extend_from_slice(&[64, proto, 0, 0]);
    p.extend_from_slice(&src);
    p.extend_from_slice(&dst);
    let c = ipv4_checksum(&p);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    p.extend_from_slice(content);
    p
}

/// `n` bytes of `c`, as Suricata's builder fills its content.
pub fn fill(c: u8, n: usize) -> Vec<u8> {
    vec![c; n]
}

/// An IPv6 fragment (fragment header right after the fixed header).
pub fn v6(proto: u8, id: u32, off8: u16, mf: bool, content: &[u8]) -> Vec<u8> {
    v6_ext(proto, id, off8, mf, content, &[])
}

/// An IPv6 fragment with unfragmentable extension headers `ext` (each a
/// whole header whose first byte is overwritten to chain them) before the
/// fragment header.
pub fn v6_ext(proto: u8, id: u32, off8: u16, mf: bool, content: &[u8], ext: &[&[u8]]) -> Vec<u8> {
    let ext_len: usize = ext.iter().map(|e| e.len()).sum();
    let plen = (ext_len + 8 + content.len()) as u16;
    let mut p = vec![0x60, 0, 0, 0];
    p.extend_from_slice(&plen.to_be_bytes());
    // Hop-by-hop (0) first if any ext is given: the caller's ext headers
    // are chained as destination options (60).
    p.push(if ext.is_empty() { 44 } else { 60 });
    p.push(2);
    p.extend_from_slice(&[1; 16]);
    p.extend_from_slice(&[2; 16]);
    for (i, e) in ext.iter().enumerate() {
        let mut e = e.to_vec();
        e[0] = if i + 1 == ext.len() { 44 } else { 60 };
        p.extend_from_slice(&e);
    }
    let offlg = (off8 << 3) | u16::from(mf);
    p.extend_from_slice(&[proto, 0]);
    p.extend_from_slice(&offlg.to_be_bytes());
    p.extend_from_slice(&id.to_be_bytes());
    p.extend_from_slice(content);
    p
}

pub fn ts(secs: i64) -> Timestamp {
    Timestamp::from_parts(secs, 0)
}

pub fn dec(p: &[u8]) -> Decoded {
    decode(LinkType::Raw, p, p.len())
}

/// Pushes one raw IP packet at time `secs`.
pub fn push_at(df: &mut Defragmenter, secs: i64, p: &[u8]) -> (Option<Vec<u8>>, Vec<DecodeEvent>) {
    let d = dec(p);
    assert!(
        d.ip.and_then(|i| i.frag).is_some(),
        "test packet is not a fragment: {d:?}"
    );
    let mut ev = Vec::new();
    let r = df.push(ts(secs), &d, p, &mut ev);
    (r, ev)
}

pub fn push(df: &mut Defragmenter, p: &[u8]) -> (Option<Vec<u8>>, Vec<DecodeEvent>) {
    push_at(df, 1000, p)
}
