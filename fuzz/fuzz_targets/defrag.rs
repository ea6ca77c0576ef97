//! Fuzzes `zonewatch_defrag::Defragmenter`: the input is a small program
//! that builds IPv4/IPv6 fragments with fuzzer-chosen ids, offsets,
//! lengths, more-fragments bits and contents (or takes raw bytes as an IP
//! packet), decodes each with `decode(LinkType::Raw, ..)` and pushes it.
//! Nothing may panic; memory must stay under the memcap and the tracker
//! count under its limit; every reassembled datagram must decode as one
//! whole, unfragmented IP packet; expiring everything must free everything.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zonewatch_decode::{decode, LinkType};
use zonewatch_defrag::{DefragConfig, Defragmenter, FragPolicy};
use zonewatch_types::Timestamp;

struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.data.split_first()?;
        self.data = rest;
        Some(b)
    }
    fn take(&mut self, n: usize) -> &'a [u8] {
        let n = n.min(self.data.len());
        let (a, b) = self.data.split_at(n);
        self.data = b;
        a
    }
}

fn checksum(h: &[u8]) -> u16 {
    let mut sum = 0u32;
    for w in h.chunks(2) {
        sum += u32::from(u16::from_be_bytes([w[0], *w.get(1).unwrap_or(&0)]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn ipv4(src: u8, proto: u8, id: u16, off8: u16, mf: bool, opts: bool, data: &[u8]) -> Vec<u8> {
    let hlen = if opts { 24 } else { 20 };
    let total = (hlen + data.len()).min(65535) as u16;
    let fo = (off8 & 0x1fff) | if mf { 0x2000 } else { 0 };
    let mut p = vec![if opts { 0x46 } else { 0x45 }, 0];
    p.extend_from_slice(&total.to_be_bytes());
    p.extend_from_slice(&id.to_be_bytes());
    p.extend_from_slice(&fo.to_be_bytes());
    p.extend_from_slice(&[64, proto, 0, 0, 10, 0, 0, src, 10, 0, 0, 2]);
    if opts {
        p.extend_from_slice(&[1, 1, 1, 0]);
    }
    let c = checksum(&p);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    p.extend_from_slice(data);
    p.truncate(total as usize);
    p
}

fn ipv6(src: u8, proto: u8, id: u32, off8: u16, mf: bool, ext: bool, data: &[u8]) -> Vec<u8> {
    let ext_len = if ext { 8 } else { 0 };
    let plen = (ext_len + 8 + data.len()).min(65535) as u16;
    let mut p = vec![0x60, 0, 0, 0];
    p.extend_from_slice(&plen.to_be_bytes());
    p.extend_from_slice(&[if ext { 60 } else { 44 }, 64]);
    let mut a = [0u8; 16];
    a[0] = 0x20;
    a[15] = src;
    p.extend_from_slice(&a);
    a[15] = 2;
    p.extend_from_slice(&a);
    if ext {
        p.extend_from_slice(&[44, 0, 1, 4, 0, 0, 0, 0]);
    }
    let offlg = ((off8 & 0x1fff) << 3) | u16::from(mf);
    p.extend_from_slice(&[proto, 0]);
    p.extend_from_slice(&offlg.to_be_bytes());
    p.extend_from_slice(&id.to_be_bytes());
    p.extend_from_slice(data);
    p.truncate(40 + plen as usize);
    p
}

fuzz_target!(|data: &[u8]| {
    let mut inp = Input { data };
    let Some(c) = inp.byte() else { return };
    let policy = FragPolicy::ALL[usize::from(c % 7)];
    let cfg = DefragConfig {
        policy,
        memcap_bytes: [1 << 12, 1 << 14, 1 << 16, 32 << 20][usize::from(c >> 3) & 3],
        max_trackers: [2, 8, 64, 65535][usize::from(c >> 5) & 3],
        max_frags_per_tracker: if c & 0x80 != 0 { 16 } else { 8192 },
        timeout_secs: 3,
    };
    let mut df = Defragmenter::new(cfg);
    let mut now = 1_000i64;
    let mut events = Vec::new();
    while let Some(op) = inp.byte() {
        let pkt = if op & 0x07 == 0x07 {
            // Raw bytes as an IP packet.
            let n = usize::from(inp.byte().unwrap_or(0));
            inp.take(n * 2).to_vec()
        } else if op & 0x07 == 0x06 {
            now += i64::from(inp.byte().unwrap_or(0) % 8);
            df.expire(Timestamp::from_parts(now, 0));
            continue;
        } else {
            let v6 = op & 0x01 != 0;
            let mf = op & 0x02 != 0;
            let ext = op & 0x04 != 0;
            let src = (op >> 3) & 1;
            let proto = [17u8, 6, 1, 58][usize::from(op >> 4) & 3];
            let id = inp.byte().unwrap_or(0) & 0x03;
            let (hi, lo) = (inp.byte().unwrap_or(0), inp.byte().unwrap_or(0));
            // Mostly small offsets, sometimes anywhere up to the maximum.
            let off8 = if op & 0x40 != 0 {
                u16::from_be_bytes([hi, lo]) & 0x1fff
            } else {
                u16::from(lo % 32)
            };
            let lb = inp.byte().unwrap_or(0);
            let len = if op & 0x80 != 0 {
                usize::from(lb) * 64
            } else {
                usize::from(lb % 64)
            };
            let fillb = inp.byte().unwrap_or(0);
            let mut body = inp.take(len.min(16)).to_vec();
            body.resize(len, fillb);
            if v6 {
                ipv6(src, proto, u32::from(id), off8, mf, ext, &body)
            } else {
                ipv4(src, proto, u16::from(id), off8, mf, ext, &body)
            }
        };
        let d = decode(LinkType::Raw, &pkt, pkt.len());
        if d.ip.and_then(|i| i.frag).is_none() {
            continue;
        }
        events.clear();
        let out = df.push(Timestamp::from_parts(now, 0), &d, &pkt, &mut events);
        let c = df.counters();
        assert!(c.mem_used <= cfg.memcap_bytes, "{c:?} over {cfg:?}");
        assert!(c.mem_peak <= cfg.memcap_bytes, "{c:?} over {cfg:?}");
        assert!(c.trackers_active as usize <= cfg.max_trackers, "{c:?}");
        let mut seen = events.clone();
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), events.len(), "repeated events {events:?}");
        if let Some(buf) = out {
            // The IP header's own lengths describe the buffer exactly.
            match buf[0] >> 4 {
                4 => {
                    assert!(buf.len() >= 20 && buf.len() <= 65535);
                    assert_eq!(usize::from(u16::from_be_bytes([buf[2], buf[3]])), buf.len());
                    assert!(usize::from(buf[0] & 0x0f) * 4 <= buf.len());
                    assert_eq!(&buf[6..8], &[0, 0], "flags/offset not cleared");
                }
                6 => {
                    assert!(buf.len() > 40);
                    assert_eq!(usize::from(u16::from_be_bytes([buf[4], buf[5]])) + 40, buf.len());
                }
                v => panic!("reassembled IP version {v}"),
            }
            // Decoding it finds no fragment. (IPv6 extension headers that
            // overlapping fragments garbled may stop the decoder before it
            // records the IP layer.)
            let rd = decode(LinkType::Raw, &buf, buf.len());
            if let Some(ip) = rd.ip {
                assert!(ip.frag.is_none(), "reassembled datagram is a fragment");
                assert_eq!(ip.offset, 0);
                assert_eq!((ip.header_len + ip.payload_len) as usize, buf.len());
            } else {
                assert_eq!(buf[0] >> 4, 6, "reassembled IPv4 does not decode: {rd:?}");
            }
        }
    }
    df.expire(Timestamp::from_parts(now + 1_000_000, 0));
    let c = df.counters();
    assert_eq!((c.trackers_active, c.mem_used), (0, 0), "{c:?}");
});
