//! Parses generated frames back and checks lengths and checksums.

use std::fmt;
use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::packet::{
    checksum_add, checksum_finish, pseudo_header_sum, ETHERTYPE_IPV4, ETHERTYPE_IPV6, MAX_FRAME,
    MIN_FRAME, PROTO_TCP, PROTO_UDP,
};
use crate::pcap::PcapReader;

/// A frame parsed down to the transport layer.
#[derive(Debug)]
pub struct Parsed<'a> {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub proto: u8,
    /// IPv4 fragment (MF set or non-zero offset): the L4 checksum cannot be checked.
    pub fragment: bool,
    pub ip_header_ok: bool,
    /// Transport bytes, exactly as long as the IP header says.
    pub l4: &'a [u8],
}

/// Parsed TCP header fields.
#[derive(Clone, Copy, Debug)]
pub struct TcpInfo {
    pub sport: u16,
    pub dport: u16,
    pub seq: u32,
    pub ack: u32,
    pub flags: u8,
    pub header_len: usize,
    pub payload_len: usize,
}

pub fn parse_frame(frame: &[u8]) -> Result<Parsed<'_>, String> {
    if frame.len() < MIN_FRAME || frame.len() > MAX_FRAME {
        return Err(format!(
            "frame length {} outside {MIN_FRAME}..={MAX_FRAME}",
            frame.len()
        ));
    }
    let ethertype = u16::from_be_bytes([frame[12], frame[13]]);
    let ip = &frame[14..];
    match ethertype {
        ETHERTYPE_IPV4 => {
            if ip[0] != 0x45 {
                return Err(format!("unexpected IPv4 version/IHL {:#x}", ip[0]));
            }
            let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
            if total < 20 || total > ip.len() {
                return Err(format!(
                    "IPv4 total length {total} vs {} available",
                    ip.len()
                ));
            }
            if ip[total..].iter().any(|&b| b != 0) {
                return Err("non-zero Ethernet padding".into());
            }
            let ff = u16::from_be_bytes([ip[6], ip[7]]);
            let ip_header_ok = checksum_finish(checksum_add(0, &ip[..20])) == 0;
            Ok(Parsed {
                src: IpAddr::V4(Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15])),
                dst: IpAddr::V4(Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19])),
                proto: ip[9],
                fragment: ff & 0x3fff != 0,
                ip_header_ok,
                l4: &ip[20..total],
            })
        }
        ETHERTYPE_IPV6 => {
            if ip.len() < 40 || ip[0] >> 4 != 6 {
                return Err("bad IPv6 header".into());
            }
            let plen = usize::from(u16::from_be_bytes([ip[4], ip[5]]));
            if 40 + plen > ip.len() {
                return Err(format!(
                    "IPv6 payload length {plen} vs {} available",
                    ip.len() - 40
                ));
            }
            if ip[40 + plen..].iter().any(|&b| b != 0) {
                return Err("non-zero Ethernet padding".into());
            }
            let mut s = [0u8; 16];
            let mut d = [0u8; 16];
            s.copy_from_slice(&ip[8..24]);
            d.copy_from_slice(&ip[24..40]);
            Ok(Parsed {
                src: IpAddr::V6(Ipv6Addr::from(s)),
                dst: IpAddr::V6(Ipv6Addr::from(d)),
                proto: ip[6],
                fragment: false,
                ip_header_ok: true,
                l4: &ip[40..40 + plen],
            })
        }
        other => Err(format!("unexpected ethertype {other:#06x}")),
    }
}

/// Checks the TCP/UDP checksum of a non-fragmented packet.
pub fn l4_checksum_ok(p: &Parsed<'_>) -> bool {
    let s = checksum_add(pseudo_header_sum(&p.src, &p.dst, p.proto, p.l4.len()), p.l4);
    checksum_finish(s) == 0
}

pub fn tcp_info(l4: &[u8]) -> Option<TcpInfo> {
    if l4.len() < 20 {
        return None;
    }
    let header_len = usize::from(l4[12] >> 4) * 4;
    if header_len < 20 || header_len > l4.len() {
        return None;
    }
    Some(TcpInfo {
        sport: u16::from_be_bytes([l4[0], l4[1]]),
        dport: u16::from_be_bytes([l4[2], l4[3]]),
        seq: u32::from_be_bytes([l4[4], l4[5], l4[6], l4[7]]),
        ack: u32::from_be_bytes([l4[8], l4[9], l4[10], l4[11]]),
        flags: l4[13],
        header_len,
        payload_len: l4.len() - header_len,
    })
}

/// Totals and error counts from [`verify_pcap`].
#[derive(Debug, Default, Clone)]
pub struct VerifyReport {
    pub packets: u64,
    pub frame_bytes: u64,
    pub ipv4: u64,
    pub ipv6: u64,
    pub tcp: u64,
    pub udp: u64,
    pub fragments: u64,
    pub min_frame: usize,
    pub max_frame: usize,
    pub bad_ip_checksum: u64,
    pub bad_l4_checksum: u64,
    pub malformed: u64,
    pub ts_backwards: u64,
    pub first_ts_us: u64,
    pub last_ts_us: u64,
    /// First few error descriptions.
    pub errors: Vec<String>,
}

impl VerifyReport {
    pub fn error_count(&self) -> u64 {
        self.bad_ip_checksum + self.bad_l4_checksum + self.malformed + self.ts_backwards
    }

    fn note(&mut self, msg: String) {
        if self.errors.len() < 20 {
            self.errors.push(msg);
        }
    }
}

impl fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "packets={} frame_bytes={} ipv4={} ipv6={} tcp={} udp={} fragments={} frame_len={}..{} \
             bad_ip_csum={} bad_l4_csum={} malformed={} ts_backwards={}",
            self.packets,
            self.frame_bytes,
            self.ipv4,
            self.ipv6,
            self.tcp,
            self.udp,
            self.fragments,
            self.min_frame,
            self.max_frame,
            self.bad_ip_checksum,
            self.bad_l4_checksum,
            self.malformed,
            self.ts_backwards
        )
    }
}

/// Reads a whole pcap stream and checks every frame.
pub fn verify_pcap<R: Read>(r: R) -> std::io::Result<VerifyReport> {
    let mut rd = PcapReader::new(r)?;
    let mut rep = VerifyReport {
        min_frame: usize::MAX,
        ..Default::default()
    };
    let mut buf = Vec::with_capacity(2048);
    let mut last_ts = 0u64;
    while let Some(rec) = rd.next_record(&mut buf)? {
        rep.packets += 1;
        let n = rep.packets;
        rep.frame_bytes += buf.len() as u64;
        rep.min_frame = rep.min_frame.min(buf.len());
        rep.max_frame = rep.max_frame.max(buf.len());
        if rep.packets == 1 {
            rep.first_ts_us = rec.ts_us;
        } else if rec.ts_us < last_ts {
            rep.ts_backwards += 1;
            rep.note(format!("packet {n}: timestamp went backwards"));
        }
        last_ts = rec.ts_us;
        rep.last_ts_us = rec.ts_us;
        if rec.incl_len != rec.orig_len {
            rep.malformed += 1;
            rep.note(format!("packet {n}: truncated record"));
        }
        let p = match parse_frame(&buf) {
            Ok(p) => p,
            Err(e) => {
                rep.malformed += 1;
                rep.note(format!("packet {n}: {e}"));
                continue;
            }
        };
        if p.src.is_ipv4() {
            rep.ipv4 += 1;
        } else {
            rep.ipv6 += 1;
        }
        if !p.ip_header_ok {
            rep.bad_ip_checksum += 1;
            rep.note(format!("packet {n}: bad IPv4 header checksum"));
        }
        if p.fragment {
            rep.fragments += 1;
            continue;
        }
        match p.proto {
            PROTO_TCP => {
                rep.tcp += 1;
                if tcp_info(p.l4).is_none() {
                    rep.malformed += 1;
                    rep.note(format!("packet {n}: bad TCP header"));
                    continue;
                }
            }
            PROTO_UDP => {
                rep.udp += 1;
                if p.l4.len() < 8
                    || usize::from(u16::from_be_bytes([p.l4[4], p.l4[5]])) != p.l4.len()
                {
                    rep.malformed += 1;
                    rep.note(format!("packet {n}: bad UDP length"));
                    continue;
                }
            }
            other => {
                rep.malformed += 1;
                rep.note(format!("packet {n}: unexpected protocol {other}"));
                continue;
            }
        }
        if !l4_checksum_ok(&p) {
            rep.bad_l4_checksum += 1;
            rep.note(format!("packet {n}: bad TCP/UDP checksum"));
        }
    }
    if rep.packets == 0 {
        rep.min_frame = 0;
    }
    Ok(rep)
}
