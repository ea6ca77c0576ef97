//! Classic libpcap file format (little-endian, microsecond timestamps).

use std::io::{self, Read, Write};

pub const MAGIC_USEC: u32 = 0xa1b2_c3d4;
pub const LINKTYPE_ETHERNET: u32 = 1;
pub const SNAPLEN: u32 = 65535;
pub const GLOBAL_HEADER_LEN: u64 = 24;
pub const RECORD_HEADER_LEN: u64 = 16;

/// Writes a pcap stream. Wrap the sink in a large `BufWriter` for speed.
pub struct PcapWriter<W: Write> {
    w: W,
    /// Number of packet records written.
    pub packets: u64,
    /// Bytes written to the sink so far (global header + records).
    pub file_bytes: u64,
    /// Sum of the frame lengths.
    pub frame_bytes: u64,
}

impl<W: Write> PcapWriter<W> {
    pub fn new(mut w: W) -> io::Result<Self> {
        let mut h = [0u8; 24];
        h[0..4].copy_from_slice(&MAGIC_USEC.to_le_bytes());
        h[4..6].copy_from_slice(&2u16.to_le_bytes());
        h[6..8].copy_from_slice(&4u16.to_le_bytes());
        // thiszone (4) and sigfigs (4) stay zero.
        h[16..20].copy_from_slice(&SNAPLEN.to_le_bytes());
        h[20..24].copy_from_slice(&LINKTYPE_ETHERNET.to_le_bytes());
        w.write_all(&h)?;
        Ok(PcapWriter {
            w,
            packets: 0,
            file_bytes: GLOBAL_HEADER_LEN,
            frame_bytes: 0,
        })
    }

    /// Writes one frame captured at `ts_us` microseconds since the Unix epoch.
    #[inline]
    pub fn write_packet(&mut self, ts_us: u64, frame: &[u8]) -> io::Result<()> {
        let len = frame.len() as u32;
        let mut rec = [0u8; 16];
        rec[0..4].copy_from_slice(&((ts_us / 1_000_000) as u32).to_le_bytes());
        rec[4..8].copy_from_slice(&((ts_us % 1_000_000) as u32).to_le_bytes());
        rec[8..12].copy_from_slice(&len.to_le_bytes());
        rec[12..16].copy_from_slice(&len.to_le_bytes());
        self.w.write_all(&rec)?;
        self.w.write_all(frame)?;
        self.packets += 1;
        self.file_bytes += RECORD_HEADER_LEN + u64::from(len);
        self.frame_bytes += u64::from(len);
        Ok(())
    }

    /// Flushes and returns the sink.
    pub fn finish(mut self) -> io::Result<W> {
        self.w.flush()?;
        Ok(self.w)
    }
}

/// Minimal reader for files written by [`PcapWriter`] (used by `verify` and tests).
pub struct PcapReader<R: Read> {
    r: R,
}

/// One record header as read back.
#[derive(Clone, Copy, Debug)]
pub struct Record {
    pub ts_us: u64,
    pub incl_len: u32,
    pub orig_len: u32,
}

impl<R: Read> PcapReader<R> {
    pub fn new(mut r: R) -> io::Result<Self> {
        let mut h = [0u8; 24];
        r.read_exact(&mut h)?;
        let magic = u32::from_le_bytes([h[0], h[1], h[2], h[3]]);
        let link = u32::from_le_bytes([h[20], h[21], h[22], h[23]]);
        if magic != MAGIC_USEC || link != LINKTYPE_ETHERNET {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("unexpected pcap header: magic {magic:#x} linktype {link}"),
            ));
        }
        Ok(PcapReader { r })
    }

    /// Reads the next record into `buf`; `None` at a clean end of file.
    pub fn next_record(&mut self, buf: &mut Vec<u8>) -> io::Result<Option<Record>> {
        let mut rec = [0u8; 16];
        let mut got = 0;
        while got < rec.len() {
            let n = self.r.read(&mut rec[got..])?;
            if n == 0 {
                if got == 0 {
                    return Ok(None);
                }
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "truncated record header",
                ));
            }
            got += n;
        }
        let sec = u32::from_le_bytes([rec[0], rec[1], rec[2], rec[3]]);
        let usec = u32::from_le_bytes([rec[4], rec[5], rec[6], rec[7]]);
        let incl_len = u32::from_le_bytes([rec[8], rec[9], rec[10], rec[11]]);
        let orig_len = u32::from_le_bytes([rec[12], rec[13], rec[14], rec[15]]);
        if incl_len > SNAPLEN {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "record longer than snaplen",
            ));
        }
        buf.resize(incl_len as usize, 0);
        self.r.read_exact(buf)?;
        Ok(Some(Record {
            ts_us: u64::from(sec) * 1_000_000 + u64::from(usec),
            incl_len,
            orig_len,
        }))
    }
}
