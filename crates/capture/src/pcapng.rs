//! A pure-Rust reader for pcapng (sections in either byte order, enhanced,
//! simple and obsolete packet blocks, per-interface `if_tsresol` and
//! `if_tsoffset`), over any `Read`: a file, a pipe or stdin (`tshark -w -`
//! and `dumpcap` write pcapng). Packets are slices of one buffer, as in the
//! classic reader.
//!
//! A block whose length is impossible or whose trailing length does not
//! match is damage: the reader searches byte by byte for the next block
//! that is whole and consistent, and counts what it skipped. libpcap stops
//! reading the file there instead.

use crate::buffer::{Buffer, Damage};
use crate::classic::{RecordAt, RecordReader};
use std::io::Read;
use zonewatch_types::Timestamp;

const SHB: u32 = 0x0A0D_0D0A;
const IDB: u32 = 1;
const OPB: u32 = 2;
const SPB: u32 = 3;
const EPB: u32 = 6;
const BYTE_ORDER_MAGIC: u32 = 0x1A2B_3C4D;
/// Largest block accepted (a packet of up to 256 KiB plus options).
const MAX_BLOCK: usize = 1 << 20;
/// Block types a resynchronisation may land on (the registered ones).
const KNOWN_TYPES: [u32; 11] = [SHB, IDB, OPB, SPB, 4, 5, EPB, 7, 8, 9, 10];

/// One interface of the current section.
#[derive(Debug, Clone, Copy)]
struct Interface {
    linktype: i32,
    /// Timestamp units per second (`if_tsresol`, default 10^6).
    units: u64,
    /// Seconds added to every timestamp (`if_tsoffset`).
    offset: i64,
}

pub(crate) struct PcapngReader<R> {
    b: Buffer<R>,
    big_endian: bool,
    interfaces: Vec<Interface>,
    /// The link type of the first interface: the source's link type.
    /// Packets of interfaces with another link type are skipped and
    /// counted (libpcap refuses such files altogether).
    pub(crate) linktype: Option<i32>,
    pub(crate) other_linktype: u64,
}

impl<R: Read> PcapngReader<R> {
    /// Reads up to the first interface description, which gives the link
    /// type. `None` when the input is not a pcapng section.
    pub(crate) fn open(src: R) -> Result<Self, String> {
        let mut r = PcapngReader {
            b: Buffer::new(src),
            big_endian: false,
            interfaces: Vec::new(),
            linktype: None,
            other_linktype: 0,
        };
        // The blocks before the first packet: the section header and the
        // interfaces (which give the link type).
        loop {
            let (btype, len) = match r.next_block() {
                Ok(Some(b)) => b,
                Ok(None) => break,
                // Truncation after the interfaces: reported by the first
                // read, after the packets before it.
                Err(_) if r.linktype.is_some() => break,
                Err(m) => return Err(m),
            };
            if matches!(btype, EPB | OPB | SPB) {
                break;
            }
            let _ = r.take(btype, len);
        }
        Ok(r)
    }

    pub(crate) fn damage(&self) -> Damage {
        self.b.damage
    }

    fn u32_at(&self, at: usize) -> u32 {
        self.b.u32_at(at, self.big_endian)
    }

    /// The byte order a section header at `at` declares, if it is one.
    fn shb_order(&self, at: usize) -> Option<bool> {
        let magic = &self.b.buf[at + 8..at + 12];
        if magic == BYTE_ORDER_MAGIC.to_le_bytes() {
            Some(false)
        } else if magic == BYTE_ORDER_MAGIC.to_be_bytes() {
            Some(true)
        } else {
            None
        }
    }

    /// Whether a whole, consistent block starts at the next unread byte
    /// (its bytes available); its type and length.
    fn whole_block(&mut self) -> std::io::Result<Option<(u32, usize)>> {
        if !self.b.fill(12)? {
            return Ok(None);
        }
        let s = self.b.start;
        let btype = self.u32_at(s);
        let mut big = self.big_endian;
        if btype == SHB {
            match self.shb_order(s) {
                Some(order) => big = order,
                None => return Ok(None),
            }
        }
        let len = self.b.u32_at(s + 4, big) as usize;
        if !(12..=MAX_BLOCK).contains(&len) || len % 4 != 0 {
            return Ok(None);
        }
        if !self.b.fill(len)? {
            return Ok(None);
        }
        let s = self.b.start;
        if self.b.u32_at(s + len - 4, big) as usize != len {
            return Ok(None);
        }
        Ok(Some((btype, len)))
    }

    /// Searches for the next whole block of a registered type.
    fn resync(&mut self) -> std::io::Result<bool> {
        self.b.damage.corrupt_records += 1;
        self.b.skip_byte();
        loop {
            if !self.b.fill(12)? {
                self.b.skip_rest();
                return Ok(false);
            }
            let s = self.b.start;
            let t = self.u32_at(s);
            if KNOWN_TYPES.contains(&t) && self.whole_block()?.is_some() {
                return Ok(true);
            }
            self.b.skip_byte();
        }
    }

    /// Makes the next whole block available: its type and length.
    /// `Ok(None)` at the end of the input (after damage that runs to the
    /// end, too); `Err` when the input ends inside a block.
    fn next_block(&mut self) -> Result<Option<(u32, usize)>, String> {
        loop {
            match self.b.fill(12) {
                Ok(true) => {}
                Ok(false) if self.b.available() == 0 => return Ok(None),
                Ok(false) => {
                    return Err(format!(
                        "truncated block header: {} of 12 bytes at offset {}",
                        self.b.available(),
                        self.b.offset()
                    ))
                }
                Err(e) => return Err(e.to_string()),
            }
            match self.whole_block() {
                Ok(Some(b)) => return Ok(Some(b)),
                Ok(None) => {
                    // Either the input ends inside the block (truncation,
                    // as libpcap reports it) or the block is damaged.
                    let s = self.b.start;
                    let big = if self.u32_at(s) == SHB {
                        self.shb_order(s).unwrap_or(self.big_endian)
                    } else {
                        self.big_endian
                    };
                    let len = self.b.u32_at(s + 4, big) as usize;
                    let sane = (12..=MAX_BLOCK).contains(&len) && len % 4 == 0;
                    if sane && self.b.available() < len {
                        return Err(format!(
                            "truncated block: {} of {len} bytes at offset {}",
                            self.b.available(),
                            self.b.offset()
                        ));
                    }
                    match self.resync() {
                        Ok(true) => continue,
                        Ok(false) => return Ok(None),
                        Err(e) => return Err(e.to_string()),
                    }
                }
                Err(e) => return Err(e.to_string()),
            }
        }
    }

    /// The next packet's range, time and wire length; `Ok(None)` at the
    /// end of the input.
    fn block(&mut self) -> Result<Option<RecordAt>, String> {
        loop {
            let Some((btype, len)) = self.next_block()? else {
                return Ok(None);
            };
            if let Some(rec) = self.take(btype, len) {
                return Ok(Some(rec));
            }
        }
    }

    /// Consumes the whole block at the next unread byte; a packet's range,
    /// time and wire length, or `None` for other blocks and damaged or
    /// skipped packets (counted).
    fn take(&mut self, btype: u32, len: usize) -> Option<RecordAt> {
        let s = self.b.start;
        let body = s + 8..s + len - 4;
        self.b.start += len;
        match btype {
            SHB => {
                self.big_endian = self.shb_order(s).unwrap_or(self.big_endian);
                self.interfaces.clear();
                None
            }
            IDB => {
                if body.len() < 8 {
                    self.b.damage.corrupt_records += 1;
                    return None;
                }
                let iface = self.interface(body);
                if self.linktype.is_none() {
                    self.linktype = Some(iface.linktype);
                }
                self.interfaces.push(iface);
                None
            }
            EPB | OPB => {
                if body.len() < 20 {
                    self.b.damage.corrupt_records += 1;
                    return None;
                }
                let b = body.start;
                let ifid = if btype == EPB {
                    self.u32_at(b) as usize
                } else {
                    self.b.u16_at(b, self.big_endian) as usize
                };
                let ts = (u64::from(self.u32_at(b + 4)) << 32) | u64::from(self.u32_at(b + 8));
                let caplen = self.u32_at(b + 12) as usize;
                let wire = self.u32_at(b + 16);
                let Some(iface) = self.interfaces.get(ifid).copied() else {
                    self.b.damage.corrupt_records += 1;
                    return None;
                };
                if caplen > body.len() - 20 {
                    self.b.damage.corrupt_records += 1;
                    return None;
                }
                if Some(iface.linktype) != self.linktype {
                    self.other_linktype += 1;
                    return None;
                }
                let data = b + 20..b + 20 + caplen;
                Some((data, iface.time(ts), wire.max(caplen as u32)))
            }
            SPB => {
                if body.len() < 4 || self.interfaces.is_empty() {
                    self.b.damage.corrupt_records += 1;
                    return None;
                }
                let wire = self.u32_at(body.start);
                let caplen = (wire as usize).min(body.len() - 4);
                let data = body.start + 4..body.start + 4 + caplen;
                // A simple packet block carries no time; libpcap gives 0.
                Some((data, Timestamp::from_parts(0, 0), wire.max(caplen as u32)))
            }
            _ => None,
        }
    }

    /// An interface description block's link type and time options.
    fn interface(&self, body: std::ops::Range<usize>) -> Interface {
        let b = body.start;
        let mut iface = Interface {
            linktype: i32::from(self.b.u16_at(b, self.big_endian)),
            units: 1_000_000,
            offset: 0,
        };
        let mut at = b + 8;
        while at + 4 <= body.end {
            let code = self.b.u16_at(at, self.big_endian);
            let olen = self.b.u16_at(at + 2, self.big_endian) as usize;
            let val = at + 4;
            if code == 0 || val + olen > body.end {
                break;
            }
            match (code, olen) {
                (9, 1) => {
                    let v = self.b.buf[val];
                    let exp = u32::from(v & 0x7f);
                    iface.units = if v & 0x80 == 0 {
                        10u64.checked_pow(exp).unwrap_or(1_000_000)
                    } else {
                        2u64.checked_pow(exp).unwrap_or(1_000_000)
                    };
                }
                (14, 8) => {
                    let raw = [
                        self.b.buf[val],
                        self.b.buf[val + 1],
                        self.b.buf[val + 2],
                        self.b.buf[val + 3],
                        self.b.buf[val + 4],
                        self.b.buf[val + 5],
                        self.b.buf[val + 6],
                        self.b.buf[val + 7],
                    ];
                    iface.offset = if self.big_endian {
                        i64::from_be_bytes(raw)
                    } else {
                        i64::from_le_bytes(raw)
                    };
                }
                _ => {}
            }
            at = val + olen.div_ceil(4) * 4;
        }
        iface
    }
}

impl<R: Read> RecordReader for PcapngReader<R> {
    fn advance(&mut self) -> Result<Option<RecordAt>, String> {
        self.block()
    }
    fn bytes(&self) -> &[u8] {
        &self.b.buf
    }
}

impl Interface {
    /// A timestamp in the interface's units as seconds and nanoseconds.
    fn time(&self, ts: u64) -> Timestamp {
        let units = self.units.max(1);
        let secs = (ts / units) as i64 + self.offset;
        let frac = u128::from(ts % units) * 1_000_000_000 / u128::from(units);
        Timestamp::from_parts(secs, frac as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classic::Record;

    fn block(btype: u32, body: &[u8]) -> Vec<u8> {
        let mut body = body.to_vec();
        while body.len() % 4 != 0 {
            body.push(0);
        }
        let len = (body.len() + 12) as u32;
        let mut b = btype.to_le_bytes().to_vec();
        b.extend_from_slice(&len.to_le_bytes());
        b.extend_from_slice(&body);
        b.extend_from_slice(&len.to_le_bytes());
        b
    }

    fn shb() -> Vec<u8> {
        let mut body = BYTE_ORDER_MAGIC.to_le_bytes().to_vec();
        body.extend_from_slice(&[1, 0, 0, 0]);
        body.extend_from_slice(&(-1i64).to_le_bytes());
        block(SHB, &body)
    }

    fn idb(tsresol: Option<u8>) -> Vec<u8> {
        let mut body = vec![1, 0, 0, 0];
        body.extend_from_slice(&65535u32.to_le_bytes());
        if let Some(r) = tsresol {
            body.extend_from_slice(&[9, 0, 1, 0, r, 0, 0, 0]);
            body.extend_from_slice(&[0, 0, 0, 0]);
        }
        block(IDB, &body)
    }

    fn epb(ts: u64, data: &[u8]) -> Vec<u8> {
        let mut body = 0u32.to_le_bytes().to_vec();
        body.extend_from_slice(&((ts >> 32) as u32).to_le_bytes());
        body.extend_from_slice(&(ts as u32).to_le_bytes());
        body.extend_from_slice(&(data.len() as u32).to_le_bytes());
        body.extend_from_slice(&(data.len() as u32).to_le_bytes());
        body.extend_from_slice(data);
        block(EPB, &body)
    }

    /// Packets (time and bytes), damage, and the truncation message.
    type ReadAll = (Vec<(Timestamp, Vec<u8>)>, Damage, Option<String>);

    fn read(bytes: &[u8]) -> ReadAll {
        let mut r = match PcapngReader::open(bytes) {
            Ok(r) => r,
            Err(m) => return (Vec::new(), Damage::default(), Some(m)),
        };
        let mut out = Vec::new();
        loop {
            match r.next_record_where(|_| true) {
                Record::Packet { ts, data, .. } => out.push((ts, data.to_vec())),
                Record::End => return (out, r.damage(), None),
                Record::Truncated(m) => return (out, r.damage(), Some(m)),
            }
        }
    }

    #[test]
    fn packets_and_time_resolution() {
        let mut f = shb();
        f.extend(idb(Some(9)));
        f.extend(epb(1_700_000_000_123_456_789, b"abc"));
        f.extend(epb(1_700_000_001_000_000_000, b"de"));
        let (out, d, err) = read(&f);
        assert!(err.is_none());
        assert_eq!(d, Damage::default());
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].0, Timestamp::from_parts(1_700_000_000, 123_456_789));
        assert_eq!(out[0].1, b"abc");
        let mut f = shb();
        f.extend(idb(None));
        f.extend(epb(1_700_000_000_123_456, b"x"));
        let (out, _, _) = read(&f);
        assert_eq!(out[0].0, Timestamp::from_parts(1_700_000_000, 123_456_000));
    }

    /// A block with a bogus length in the middle is skipped; the packets
    /// after it are read and the damage counted.
    #[test]
    fn bogus_block_length_resynchronises() {
        let mut f = shb();
        f.extend(idb(Some(9)));
        for i in 0..10u64 {
            let mut b = epb(1_700_000_000_000_000_000 + i, b"payload!");
            if i == 4 {
                b[4..8].copy_from_slice(&0xdead_beefu32.to_le_bytes());
            }
            f.extend(b);
        }
        let (out, d, err) = read(&f);
        assert!(err.is_none(), "{err:?}");
        assert_eq!(out.len(), 9);
        assert_eq!(d.corrupt_records, 1);
        assert_eq!(d.skipped_bytes, epb(0, b"payload!").len() as u64);
    }

    #[test]
    fn truncation_is_reported() {
        let mut f = shb();
        f.extend(idb(None));
        f.extend(epb(1, b"whole"));
        let mut last = epb(2, b"cut short");
        last.truncate(last.len() - 5);
        f.extend(last);
        let (out, _, err) = read(&f);
        assert_eq!(out.len(), 1);
        assert!(err.unwrap().contains("truncated"));
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let mut seed = 0x1234_5678u64;
        for n in 0..300 {
            let mut f = shb();
            f.extend(idb(None));
            for _ in 0..(n % 40) {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                f.push(seed as u8);
            }
            let _ = read(&f);
        }
    }
}
