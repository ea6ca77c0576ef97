//! Packet sources: pcap and pcapng captures (µs or ns timestamps, either
//! byte order) from files or pipes, read by zonewatch's own readers, and
//! live interfaces through libpcap (the `pcap` crate) or, on Linux, through
//! AF_PACKET TPACKET_V3 rings in a fanout group, one per worker
//! ([`afpacket`]); an optional BPF filter (compiled by libpcap) applies to
//! files and interfaces alike, in the kernel for live capture.
//!
//! A source hands out one packet at a time as a borrowed [`RawPacket`]; the
//! caller copies what it keeps. Damage in a file (a corrupt record, a
//! block with a bogus length) does not end it: the readers resynchronise
//! and count what they skipped ([`Damage`]). AF_PACKET rings hand out
//! packets in the same [`Next`]-returning shape.
#![deny(missing_docs)]

#[cfg(target_os = "linux")]
pub mod afpacket;
mod buffer;
mod classic;
mod pcapng;
mod stream;

pub use buffer::Damage;
use classic::RecordReader;
use std::io::Read;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
pub use stream::is_stream;

use std::path::{Path, PathBuf};
use zonewatch_types::Timestamp;

/// Why a source could not be opened or read.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// The file is not a pcap or pcapng capture.
    #[error("{path}: not a pcap or pcapng capture")]
    NotACapture {
        /// The file.
        path: PathBuf,
    },
    /// The file or directory could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// libpcap refused to open or configure the source.
    #[error("{what}: {msg}")]
    Pcap {
        /// File or interface.
        what: String,
        /// libpcap's message.
        msg: String,
    },
    /// The BPF expression did not compile.
    #[error("bad BPF filter {expr:?}: {msg}")]
    Bpf {
        /// The expression.
        expr: String,
        /// libpcap's message.
        msg: String,
    },
}

/// One captured packet, borrowed from the source until the next call.
#[derive(Debug, Clone, Copy)]
pub struct RawPacket<'a> {
    /// Capture time.
    pub ts: Timestamp,
    /// Captured bytes.
    pub data: &'a [u8],
    /// Length on the wire (may exceed `data.len()` when the snap length cut it).
    pub wire_len: u32,
}

/// What [`PacketSource::next`] found.
#[derive(Debug)]
pub enum Next<'a> {
    /// A packet.
    Packet(RawPacket<'a>),
    /// Live capture: no packet ready now (the caller waits a little).
    Timeout,
    /// End of the file.
    End,
    /// The file ended in the middle of a record (or could not be read past
    /// some point): a warning, not a failure.
    Truncated(String),
}

/// Settings for a live interface.
#[derive(Debug, Clone)]
pub struct LiveOptions {
    /// Interface name.
    pub interface: String,
    /// Bytes kept of each packet.
    pub snaplen: i32,
    /// Put the interface in promiscuous mode.
    pub promisc: bool,
    /// Kernel buffer size in bytes.
    pub buffer_bytes: i32,
    /// Read timeout in milliseconds (bounds how long the clock can lag).
    pub timeout_ms: i32,
}

/// libpcap's counters for a live interface.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CaptureStats {
    /// Packets received by the filter.
    pub received: u64,
    /// Packets dropped because the kernel buffer was full.
    pub dropped: u64,
    /// Packets dropped by the interface or its driver.
    pub if_dropped: u64,
}

/// Where a capture's bytes come from: a file, or a pipe through its pump.
type Input = Box<dyn Read + Send>;

enum Handle {
    /// Classic pcap, read in Rust; BPF runs through libpcap's filter engine.
    Classic {
        reader: Box<classic::ClassicReader<Input>>,
        bpf: Option<pcap::BpfProgram>,
    },
    /// pcapng, read in Rust, BPF as for classic pcap.
    Pcapng {
        reader: Box<pcapng::PcapngReader<Input>>,
        bpf: Option<pcap::BpfProgram>,
    },
    Live(pcap::Capture<pcap::Active>),
}

/// An open capture file or interface.
pub struct PacketSource {
    handle: Handle,
    name: String,
    datalink: i32,
}

/// The first bytes of a pcap (either byte order, µs or ns) or pcapng file.
fn is_capture_magic(m: [u8; 4]) -> bool {
    matches!(
        u32::from_le_bytes(m),
        0xa1b2c3d4 | 0xd4c3b2a1 | 0xa1b23c4d | 0x4d3cb2a1 | 0x0a0d0d0a
    )
}

/// Whether the file starts like a capture (pcap or pcapng).
pub fn looks_like_capture(path: &Path) -> Result<bool, CaptureError> {
    use std::io::Read;
    let io = |source| CaptureError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut f = std::fs::File::open(path).map_err(io)?;
    let mut m = [0u8; 4];
    match f.read_exact(&mut m) {
        Ok(()) => Ok(is_capture_magic(m)),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(io(e)),
    }
}

/// Expands `--pcap` arguments: a file stays itself; a directory gives its
/// capture files in name order (other files in it are skipped, and returned
/// as the second value so the caller can warn).
pub fn expand_inputs(paths: &[PathBuf]) -> Result<(Vec<PathBuf>, Vec<PathBuf>), CaptureError> {
    let mut files = Vec::new();
    let mut skipped = Vec::new();
    for p in paths {
        // A pipe can be read once: its format is checked when it is opened.
        if is_stream(p) {
            files.push(p.clone());
            continue;
        }
        let io = |source| CaptureError::Io {
            path: p.clone(),
            source,
        };
        let meta = std::fs::metadata(p).map_err(io)?;
        if meta.is_dir() {
            let mut entries: Vec<PathBuf> = std::fs::read_dir(p)
                .map_err(io)?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|e| e.is_file())
                .collect();
            entries.sort();
            for e in entries {
                if looks_like_capture(&e)? {
                    files.push(e);
                } else {
                    skipped.push(e);
                }
            }
        } else {
            if !looks_like_capture(p)? {
                return Err(CaptureError::NotACapture { path: p.clone() });
            }
            files.push(p.clone());
        }
    }
    Ok((files, skipped))
}

impl PacketSource {
    /// Opens a capture file (classic pcap or pcapng, both read in Rust).
    pub fn open_file(path: &Path, bpf: Option<&str>) -> Result<Self, CaptureError> {
        Self::open_input(path, bpf, Arc::new(AtomicBool::new(false)))
    }

    /// Opens a capture file or stream (`-` = stdin, a FIFO, `/dev/stdin`,
    /// `<(...)`). A stream is read once: its format is told from its first
    /// bytes, which the reader then gets too. Setting `stop` ends a stream
    /// as if it had ended, also while waiting for a FIFO's writer.
    pub fn open_input(
        path: &Path,
        bpf: Option<&str>,
        stop: Arc<AtomicBool>,
    ) -> Result<Self, CaptureError> {
        let io = |source| CaptureError::Io {
            path: path.to_path_buf(),
            source,
        };
        let src: Input = if is_stream(path) {
            Box::new(stream::Pumped::start(path, stop).map_err(io)?)
        } else {
            Box::new(std::fs::File::open(path).map_err(io)?)
        };
        let name = if path.as_os_str() == "-" {
            "stdin".to_string()
        } else {
            path.display().to_string()
        };
        Self::from_reader(name, path, src, bpf)
    }

    /// Reads a capture (classic pcap or pcapng) from bytes in memory: the
    /// same readers as for files (tests and the capture fuzz target).
    pub fn from_bytes(bytes: Vec<u8>, bpf: Option<&str>) -> Result<Self, CaptureError> {
        let src: Input = Box::new(std::io::Cursor::new(bytes));
        Self::from_reader("memory".into(), Path::new("memory"), src, bpf)
    }

    /// Tells the format from the first bytes of `src` and starts its reader
    /// on all of them.
    fn from_reader(
        name: String,
        path: &Path,
        mut src: Input,
        bpf: Option<&str>,
    ) -> Result<Self, CaptureError> {
        let io = |source| CaptureError::Io {
            path: path.to_path_buf(),
            source,
        };
        let not_a_capture = || CaptureError::NotACapture {
            path: path.to_path_buf(),
        };
        let mut magic = [0u8; 4];
        match read_full(&mut src, &mut magic) {
            Ok(4) => {}
            Ok(_) => return Err(not_a_capture()),
            Err(e) => return Err(io(e)),
        }
        if magic == [0x0a, 0x0d, 0x0d, 0x0a] {
            let chained: Input = Box::new(std::io::Cursor::new(magic).chain(src));
            let reader = pcapng::PcapngReader::open(chained).map_err(|msg| CaptureError::Pcap {
                what: name.clone(),
                msg,
            })?;
            let Some(linktype) = reader.linktype else {
                return Err(CaptureError::Pcap {
                    what: name,
                    msg: "pcapng without an interface description block".into(),
                });
            };
            let bpf = compile_bpf(bpf, linktype)?;
            return Ok(PacketSource {
                handle: Handle::Pcapng {
                    reader: Box::new(reader),
                    bpf,
                },
                name,
                datalink: linktype,
            });
        }
        let mut h = [0u8; 24];
        h[..4].copy_from_slice(&magic);
        if read_full(&mut src, &mut h[4..]).map_err(io)? < 20 {
            return Err(if is_capture_magic(magic) {
                CaptureError::Pcap {
                    what: name,
                    msg: "truncated pcap file header".into(),
                }
            } else {
                not_a_capture()
            });
        }
        let Some(hdr) = classic::parse_header(&h) else {
            return Err(not_a_capture());
        };
        let bpf = compile_bpf(bpf, hdr.linktype)?;
        Ok(PacketSource {
            handle: Handle::Classic {
                reader: Box::new(classic::ClassicReader::new(src, hdr)),
                bpf,
            },
            name,
            datalink: hdr.linktype,
        })
    }

    /// What the file reader skipped to get past damage so far (records and
    /// bytes); zero for live interfaces.
    pub fn damage(&self) -> Damage {
        match &self.handle {
            Handle::Classic { reader, .. } => reader.damage(),
            Handle::Pcapng { reader, .. } => reader.damage(),
            Handle::Live(_) => Damage::default(),
        }
    }

    /// pcapng packets skipped because their interface has another link
    /// type than the file's first interface.
    pub fn other_linktype_packets(&self) -> u64 {
        match &self.handle {
            Handle::Pcapng { reader, .. } => reader.other_linktype,
            _ => 0,
        }
    }

    /// Opens a live interface.
    pub fn open_live(opts: &LiveOptions, bpf: Option<&str>) -> Result<Self, CaptureError> {
        let err = |e: pcap::Error| CaptureError::Pcap {
            what: opts.interface.clone(),
            msg: e.to_string(),
        };
        let cap = pcap::Capture::from_device(opts.interface.as_str())
            .map_err(err)?
            .promisc(opts.promisc)
            .snaplen(opts.snaplen)
            .buffer_size(opts.buffer_bytes)
            .timeout(opts.timeout_ms)
            .precision(pcap::Precision::Nano)
            .open()
            .map_err(err)?
            // Non-blocking: with TPACKET_V3 an idle link never wakes a
            // blocking read, which would leave the clock and Ctrl-C stuck.
            .setnonblock()
            .map_err(err)?;
        let datalink = cap.get_datalink().0;
        let mut s = PacketSource {
            handle: Handle::Live(cap),
            name: opts.interface.clone(),
            datalink,
        };
        s.set_filter(bpf)?;
        Ok(s)
    }

    fn set_filter(&mut self, bpf: Option<&str>) -> Result<(), CaptureError> {
        let Some(expr) = bpf else { return Ok(()) };
        let r = match &mut self.handle {
            Handle::Live(c) => c.filter(expr, true),
            Handle::Classic { .. } | Handle::Pcapng { .. } => Ok(()),
        };
        r.map_err(|e| CaptureError::Bpf {
            expr: expr.to_string(),
            msg: e.to_string(),
        })
    }

    /// File path or interface name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The pcap link type (DLT) of the packets.
    pub fn datalink(&self) -> i32 {
        self.datalink
    }

    /// Whether this is a live interface.
    pub fn is_live(&self) -> bool {
        matches!(self.handle, Handle::Live(_))
    }

    /// The next packet, or why there is none.
    pub fn next_packet(&mut self) -> Next<'_> {
        let r = match &mut self.handle {
            Handle::Classic { reader, bpf } => {
                let bpf = bpf.as_ref();
                return record_next(reader.next_record_where(|d| bpf.is_none_or(|f| f.filter(d))));
            }
            Handle::Pcapng { reader, bpf } => {
                let bpf = bpf.as_ref();
                return record_next(reader.next_record_where(|d| bpf.is_none_or(|f| f.filter(d))));
            }
            Handle::Live(c) => c.next_packet(),
        };
        match r {
            Ok(p) => {
                // With nanosecond precision libpcap puts nanoseconds in tv_usec.
                let ts = Timestamp::from_parts(p.header.ts.tv_sec, p.header.ts.tv_usec as u32);
                Next::Packet(RawPacket {
                    ts,
                    data: p.data,
                    wire_len: p.header.len,
                })
            }
            Err(pcap::Error::NoMorePackets) => Next::End,
            Err(pcap::Error::TimeoutExpired) => Next::Timeout,
            Err(e) => Next::Truncated(e.to_string()),
        }
    }

    /// libpcap's counters (live interfaces only).
    pub fn stats(&mut self) -> Option<CaptureStats> {
        match &mut self.handle {
            Handle::Live(c) => c.stats().ok().map(|s| CaptureStats {
                received: s.received as u64,
                dropped: s.dropped as u64,
                if_dropped: s.if_dropped as u64,
            }),
            Handle::Classic { .. } | Handle::Pcapng { .. } => None,
        }
    }
}

fn record_next(rec: classic::Record<'_>) -> Next<'_> {
    match rec {
        classic::Record::Packet { ts, data, wire_len } => {
            Next::Packet(RawPacket { ts, data, wire_len })
        }
        classic::Record::End => Next::End,
        classic::Record::Truncated(m) => Next::Truncated(m),
    }
}

/// Compiles a BPF expression for a link type with libpcap (a dead handle):
/// the program then runs on packets from zonewatch's own readers.
fn compile_bpf(bpf: Option<&str>, linktype: i32) -> Result<Option<pcap::BpfProgram>, CaptureError> {
    let Some(expr) = bpf else { return Ok(None) };
    let berr = |e: pcap::Error| CaptureError::Bpf {
        expr: expr.to_string(),
        msg: e.to_string(),
    };
    let dead = pcap::Capture::dead(pcap::Linktype(linktype)).map_err(berr)?;
    Ok(Some(dead.compile(expr, true).map_err(berr)?))
}

/// Reads until `buf` is full or the input ends; the bytes read.
fn read_full(src: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match src.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magic_numbers() {
        assert!(is_capture_magic(0xa1b2c3d4u32.to_le_bytes()));
        assert!(is_capture_magic(0xa1b2c3d4u32.to_be_bytes()));
        assert!(is_capture_magic(0xa1b23c4du32.to_le_bytes()));
        assert!(is_capture_magic([0x0a, 0x0d, 0x0d, 0x0a]));
        assert!(!is_capture_magic(*b"GET "));
    }
}
