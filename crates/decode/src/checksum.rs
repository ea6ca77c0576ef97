//! Internet checksums (RFC 1071) of decoded packets, for Suricata's
//! checksum validation (`-k`). Only what the packet holds is summed: a
//! truncated packet cannot be verified (`None`).

use crate::{Decoded, Transport};

/// One's-complement sum of `data` added to `acc` (not folded).
fn sum(mut acc: u32, data: &[u8]) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        acc = acc.wrapping_add(u16::from_be_bytes([c[0], c[1]]) as u32);
    }
    if let [b] = chunks.remainder() {
        acc = acc.wrapping_add((*b as u32) << 8);
    }
    acc
}

fn fold(mut acc: u32) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// Whether the TCP or UDP checksum of a decoded packet is correct:
/// `Some(true)`/`Some(false)`, or `None` when it cannot be checked (not
/// TCP/UDP, a fragment, truncated by the snap length, or UDP over IPv4
/// with checksum 0, which means "none").
pub fn transport_checksum_ok(data: &[u8], d: &Decoded) -> Option<bool> {
    let ip = d.ip?;
    if ip.frag.is_some() {
        return None;
    }
    let (proto, l4_start, payload_end) = match d.transport {
        Transport::Tcp(t) => (
            6u8,
            ip.offset + ip.header_len,
            t.payload_offset + t.payload_len,
        ),
        Transport::Udp {
            payload_offset,
            payload_len,
            ..
        } => (
            17u8,
            ip.offset + ip.header_len,
            payload_offset + payload_len,
        ),
        _ => return None,
    };
    let l4_len = ip.payload_len as usize;
    let start = l4_start as usize;
    if ip.version == 6 {
        // payload_len is what was captured; the header says what was sent.
        let off = ip.offset as usize;
        let plen = u16::from_be_bytes([*data.get(off + 4)?, *data.get(off + 5)?]) as usize;
        if data.len() < off + 40 + plen || start + l4_len != off + 40 + plen {
            return None;
        }
    }
    let seg = data.get(start..start.checked_add(l4_len)?)?;
    if (payload_end as usize) < start + l4_len {
        // Captured bytes end before the segment does (snap length).
        return None;
    }
    if proto == 17 && ip.version == 4 && seg.get(6..8) == Some(&[0, 0]) {
        return None;
    }
    let hdr = data.get(ip.offset as usize..)?;
    let mut acc = 0u32;
    if ip.version == 4 {
        acc = sum(acc, hdr.get(12..20)?);
    } else {
        acc = sum(acc, hdr.get(8..40)?);
    }
    acc = acc.wrapping_add(proto as u32);
    acc = acc.wrapping_add(l4_len as u32 & 0xffff);
    acc = acc.wrapping_add((l4_len as u32) >> 16);
    acc = sum(acc, seg);
    Some(fold(acc) == 0xffff)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{decode, LinkType};

    fn tcp_packet() -> Vec<u8> {
        // IPv4 10.0.0.1 -> 10.0.0.2, TCP 1234 -> 80, SYN, checksums valid.
        let mut p = vec![
            0x45, 0, 0, 40, 0, 1, 0, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2, // IPv4
            0x04, 0xd2, 0, 80, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0x20, 0, 0, 0, 0, 0, // TCP
        ];
        let ipc = !fold(sum(0, &p[..20]));
        p[10..12].copy_from_slice(&ipc.to_be_bytes());
        let mut acc = sum(0, &p[12..20]);
        acc = acc.wrapping_add(6 + 20);
        let c = !fold(sum(acc, &p[20..]));
        p[36..38].copy_from_slice(&c.to_be_bytes());
        p
    }

    #[test]
    fn valid_and_corrupted_tcp() {
        let p = tcp_packet();
        let d = decode(LinkType::Raw, &p, p.len());
        assert_eq!(transport_checksum_ok(&p, &d), Some(true));
        let mut bad = p.clone();
        bad[37] ^= 0x55;
        let d = decode(LinkType::Raw, &bad, bad.len());
        assert_eq!(transport_checksum_ok(&bad, &d), Some(false));
        // Truncated: cannot be checked.
        let short = &p[..30];
        let d = decode(LinkType::Raw, short, p.len());
        assert_eq!(transport_checksum_ok(short, &d), None);
    }
}
