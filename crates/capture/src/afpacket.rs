//! Live capture with Linux AF_PACKET TPACKET_V3 rings joined in a
//! PACKET_FANOUT group: one ring per worker, each read by its own thread, the
//! kernel choosing the ring by a symmetric flow hash (both directions of a
//! flow, and — with the defrag flag — every fragment of a datagram, reach the
//! same ring). This is how Suricata's `--af-packet` runs in production.
//!
//! The module is the only `unsafe` code of the crate: a socket, a shared
//! memory ring the kernel fills, and the block hand-over protocol. Every
//! `unsafe` block says why it is sound. Everything else (BPF compilation,
//! link type lookup) is done safely: the BPF program comes from libpcap's
//! compiler and is applied in the kernel (`SO_ATTACH_FILTER`), so filtered
//! packets never cost a copy.
//!
//! Start-up window: a socket starts receiving when it is bound and only then
//! may join the fanout group, so packets of the first instants after a ring
//! is bound can reach a ring their flow hash would not pick (the kernel
//! allows no other order; libpcap and Suricata share it).

// The workspace denies `unsafe`; this module is the one place that needs it
// (kernel ring buffer), every block with its SAFETY argument.
#![allow(unsafe_code)]

use crate::{CaptureError, Next, RawPacket};
use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicU32, Ordering};
use zonewatch_types::Timestamp;

/// Settings of the AF_PACKET rings of one interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AfPacketOptions {
    /// Interface name.
    pub interface: String,
    /// Rings (= fanout members, one per worker).
    pub rings: usize,
    /// Bytes of each ring (rounded down to whole blocks, at least one).
    pub ring_bytes: usize,
    /// Bytes of one ring block (a multiple of the page size; a packet larger
    /// than a block is cut to fit).
    pub block_bytes: usize,
    /// Milliseconds after which the kernel hands over a block that is not
    /// full (bounds the latency on a quiet link).
    pub block_timeout_ms: u32,
    /// Fanout group id (unique per interface among the processes that fan
    /// out on it; two programs in one group would split the traffic).
    pub cluster_id: u16,
    /// Put the interface in promiscuous mode while the rings are open.
    pub promisc: bool,
}

/// Kernel counters of one ring since it was opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RingStats {
    /// Packets the kernel passed the filter for this ring (received or dropped).
    pub packets: u64,
    /// Packets dropped because the ring was full (`tp_drops`).
    pub drops: u64,
    /// Times the ring was frozen, full, waiting for the reader (`tp_freeze_q_cnt`).
    pub freeze_q: u64,
}

/// Where the reader is in the ring.
#[derive(Debug, Clone, Copy)]
struct Cursor {
    /// The block being read, if one is held.
    block: usize,
    held: bool,
    /// Packets of the held block still to read, and where the next one is.
    left: u32,
    offset: usize,
}

/// One TPACKET_V3 receive ring of a fanout group.
pub struct Ring {
    fd: OwnedFd,
    map: *mut u8,
    map_len: usize,
    block_bytes: usize,
    blocks: usize,
    cursor: Cursor,
    /// Frames whose VLAN tag the kernel took out are rebuilt here, so the
    /// decoder sees the same bytes as in a capture file.
    scratch: Vec<u8>,
    stats: RingStats,
    name: String,
    datalink: i32,
}

// SAFETY: the mapping belongs to this ring alone (no other handle to it
// exists in the process); moving the ring to another thread moves the sole
// user of the memory. The kernel's concurrent writes are synchronised by the
// per-block status word (see `next_packet`).
unsafe impl Send for Ring {}

impl std::fmt::Debug for Ring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ring")
            .field("interface", &self.name)
            .field("blocks", &self.blocks)
            .field("block_bytes", &self.block_bytes)
            .finish()
    }
}

const DLT_EN10MB: i32 = 1;
const DLT_RAW: i32 = 12;

/// Linux's SIOCGIFHWADDR request (the same number on every architecture).
const SIOCGIFHWADDR: u64 = 0x8927;

/// The pcap link type of an interface, from its hardware (ARPHRD) type.
/// Asked with an ioctl rather than read from sysfs: sysfs shows the network
/// namespace it was mounted in, not the caller's.
fn datalink_of(interface: &str) -> Result<i32, CaptureError> {
    let name = interface.as_bytes();
    if name.is_empty() || name.len() >= libc::IFNAMSIZ || name.contains(&0) {
        return Err(CaptureError::Pcap {
            what: interface.to_string(),
            msg: "not a valid interface name".into(),
        });
    }
    // SAFETY: plain system call; the result is checked.
    let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return Err(os_err(interface, "socket (needs CAP_NET_RAW)"));
    }
    // SAFETY: `raw` is a socket we just created and own.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in req.ifr_name.iter_mut().zip(name) {
        *d = *s as libc::c_char;
    }
    // SAFETY: `req` is a valid ifreq with a NUL-terminated name (checked
    // shorter than IFNAMSIZ, zero-filled); SIOCGIFHWADDR writes only
    // `ifr_hwaddr` inside it.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), SIOCGIFHWADDR as _, &mut req) };
    if r != 0 {
        return Err(os_err(interface, "no such interface? SIOCGIFHWADDR"));
    }
    // SAFETY: after a successful SIOCGIFHWADDR the union holds `ifru_hwaddr`.
    let hatype = unsafe { req.ifr_ifru.ifru_hwaddr.sa_family };
    match hatype {
        // ARPHRD_ETHER, ARPHRD_LOOPBACK: Ethernet framing.
        1 | 772 => Ok(DLT_EN10MB),
        // ARPHRD_NONE (tun): the ring's frame starts at IP.
        0xfffe => Ok(DLT_RAW),
        other => Err(CaptureError::Pcap {
            what: interface.to_string(),
            msg: format!("link type {other} is not supported by af-packet capture (use libpcap)"),
        }),
    }
}

fn os_err(what: &str, call: &str) -> CaptureError {
    CaptureError::Pcap {
        what: what.to_string(),
        msg: format!("af-packet {call}: {}", std::io::Error::last_os_error()),
    }
}

/// Compiles `expr` with libpcap for `datalink` into the kernel's filter
/// instruction format (libpcap's `bpf_insn` and the kernel's `sock_filter`
/// are the same four fields; the program is read through its printed form
/// so no layout is assumed).
fn kernel_filter(expr: &str, datalink: i32) -> Result<Vec<libc::sock_filter>, CaptureError> {
    let berr = |msg: String| CaptureError::Bpf {
        expr: expr.to_string(),
        msg,
    };
    let dead = pcap::Capture::dead(pcap::Linktype(datalink)).map_err(|e| berr(e.to_string()))?;
    let prog = dead.compile(expr, true).map_err(|e| berr(e.to_string()))?;
    prog.get_instructions()
        .iter()
        .map(|insn| {
            let text = insn.to_string();
            let f: Vec<u32> = text
                .split_whitespace()
                .map(|n| n.parse::<u32>())
                .collect::<Result<_, _>>()
                .map_err(|_| berr(format!("unexpected instruction {text:?}")))?;
            match f[..] {
                [code, jt, jf, k] => Ok(libc::sock_filter {
                    code: code as u16,
                    jt: jt as u8,
                    jf: jf as u8,
                    k,
                }),
                _ => Err(berr(format!("unexpected instruction {text:?}"))),
            }
        })
        .collect()
}

fn setsockopt<T>(
    fd: &OwnedFd,
    level: i32,
    name: i32,
    value: &T,
    what: &str,
    call: &str,
) -> Result<(), CaptureError> {
    // SAFETY: `value` is a valid, initialised `T` for the duration of the
    // call and the length passed is exactly its size; the kernel copies it.
    let r = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (value as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if r != 0 {
        return Err(os_err(what, call));
    }
    Ok(())
}

/// Opens `opts.rings` rings on one interface, all in one fanout group
/// (flow hash, defragmenting first), with `bpf` applied in the kernel.
pub fn open_fanout(opts: &AfPacketOptions, bpf: Option<&str>) -> Result<Vec<Ring>, CaptureError> {
    let datalink = datalink_of(&opts.interface)?;
    let filter = bpf.map(|e| kernel_filter(e, datalink)).transpose()?;
    let cname = CString::new(opts.interface.as_str()).map_err(|_| CaptureError::Pcap {
        what: opts.interface.clone(),
        msg: "interface name contains NUL".into(),
    })?;
    // SAFETY: `cname` is a valid NUL-terminated string.
    let ifindex = unsafe { libc::if_nametoindex(cname.as_ptr()) };
    if ifindex == 0 {
        return Err(os_err(&opts.interface, "if_nametoindex"));
    }
    (0..opts.rings.max(1))
        .map(|_| Ring::open(opts, ifindex as i32, datalink, filter.as_deref()))
        .collect()
}

impl Ring {
    fn open(
        opts: &AfPacketOptions,
        ifindex: i32,
        datalink: i32,
        filter: Option<&[libc::sock_filter]>,
    ) -> Result<Ring, CaptureError> {
        let what = opts.interface.as_str();
        // Protocol 0: the socket receives nothing until it is bound to the
        // interface below (ETH_P_ALL here would deliver every interface's
        // packets at once).
        // SAFETY: plain system call; the result is checked.
        let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if raw < 0 {
            return Err(os_err(what, "socket (needs CAP_NET_RAW)"));
        }
        // SAFETY: `raw` is a socket we just created and own.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let version = libc::tpacket_versions::TPACKET_V3 as libc::c_int;
        setsockopt(
            &fd,
            libc::SOL_PACKET,
            libc::PACKET_VERSION,
            &version,
            what,
            "PACKET_VERSION",
        )?;
        if let Some(insns) = filter {
            let prog = libc::sock_fprog {
                len: insns.len() as u16,
                filter: insns.as_ptr() as *mut libc::sock_filter,
            };
            // The kernel copies the program; `insns` outlives the call.
            setsockopt(
                &fd,
                libc::SOL_SOCKET,
                libc::SO_ATTACH_FILTER,
                &prog,
                what,
                "SO_ATTACH_FILTER",
            )?;
        }
        let page = 4096usize;
        let block_bytes = opts.block_bytes.max(page) / page * page;
        let blocks = (opts.ring_bytes / block_bytes).max(1);
        // TPACKET_V3 packs variable-sized frames into blocks; the frame
        // fields are only checked for consistency.
        let frame = 2048usize;
        let req = libc::tpacket_req3 {
            tp_block_size: block_bytes as u32,
            tp_block_nr: blocks as u32,
            tp_frame_size: frame as u32,
            tp_frame_nr: (block_bytes / frame * blocks) as u32,
            tp_retire_blk_tov: opts.block_timeout_ms.max(1),
            tp_sizeof_priv: 0,
            tp_feature_req_word: libc::TP_FT_REQ_FILL_RXHASH,
        };
        setsockopt(
            &fd,
            libc::SOL_PACKET,
            libc::PACKET_RX_RING,
            &req,
            what,
            "PACKET_RX_RING",
        )?;
        let map_len = block_bytes * blocks;
        // SAFETY: maps the ring the kernel just allocated for this socket;
        // length and flags are what PACKET_RX_RING requires. Checked below.
        let map = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if map == libc::MAP_FAILED {
            return Err(os_err(what, "mmap of the ring"));
        }
        // From here the ring owns the mapping (unmapped in Drop).
        let ring = Ring {
            fd,
            map: map.cast(),
            map_len,
            block_bytes,
            blocks,
            cursor: Cursor {
                block: 0,
                held: false,
                left: 0,
                offset: 0,
            },
            scratch: Vec::new(),
            stats: RingStats::default(),
            name: opts.interface.clone(),
            datalink,
        };
        ring.bind(ifindex)?;
        if opts.promisc {
            let mreq = libc::packet_mreq {
                mr_ifindex: ifindex,
                mr_type: libc::PACKET_MR_PROMISC as u16,
                mr_alen: 0,
                mr_address: [0; 8],
            };
            // Reference-counted by the kernel and dropped when the socket closes.
            setsockopt(
                &ring.fd,
                libc::SOL_PACKET,
                libc::PACKET_ADD_MEMBERSHIP,
                &mreq,
                what,
                "PACKET_ADD_MEMBERSHIP",
            )?;
        }
        let fanout: libc::c_int = (opts.cluster_id as libc::c_int)
            | (((libc::PACKET_FANOUT_HASH | libc::PACKET_FANOUT_FLAG_DEFRAG) as libc::c_int) << 16);
        setsockopt(
            &ring.fd,
            libc::SOL_PACKET,
            libc::PACKET_FANOUT,
            &fanout,
            what,
            "PACKET_FANOUT (is another program using this cluster id?)",
        )?;
        Ok(ring)
    }

    fn bind(&self, ifindex: i32) -> Result<(), CaptureError> {
        // SAFETY: sockaddr_ll is plain old data; all-zero is a valid value.
        let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
        addr.sll_ifindex = ifindex;
        // SAFETY: `addr` is a valid sockaddr_ll and the length is its size.
        let r = unsafe {
            libc::bind(
                self.fd.as_raw_fd(),
                (&addr as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if r != 0 {
            return Err(os_err(&self.name, "bind"));
        }
        Ok(())
    }

    /// Interface name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The pcap link type of the frames (Ethernet, or raw IP for tun-like links).
    pub fn datalink(&self) -> i32 {
        self.datalink
    }

    /// The status word of block `b`, shared with the kernel.
    fn status(&self, b: usize) -> &AtomicU32 {
        debug_assert!(b < self.blocks);
        // SAFETY: block `b` lies inside the mapping (b < blocks and
        // blocks * block_bytes == map_len); a block starts with
        // `tpacket_block_desc` whose `hdr.bh1.block_status` is a 4-byte
        // aligned u32 (blocks are page aligned). The kernel and this reader
        // both access it, so it is read and written only atomically.
        unsafe {
            let desc = self.map.add(b * self.block_bytes) as *const libc::tpacket_block_desc;
            let status = std::ptr::addr_of!((*desc).hdr.bh1.block_status);
            AtomicU32::from_ptr(status as *mut u32)
        }
    }

    /// Gives the held block back to the kernel and moves to the next one.
    fn release(&mut self) {
        if self.cursor.held {
            // Release: our reads of the block happen before the kernel may
            // write it again.
            self.status(self.cursor.block)
                .store(libc::TP_STATUS_KERNEL, Ordering::Release);
            self.cursor.held = false;
            self.cursor.block = (self.cursor.block + 1) % self.blocks;
        }
    }

    /// Takes the current block if the kernel has handed it over.
    fn acquire(&mut self) -> bool {
        let b = self.cursor.block;
        if self.status(b).load(Ordering::Acquire) & libc::TP_STATUS_USER == 0 {
            return false;
        }
        // SAFETY: the kernel set TP_STATUS_USER (observed with Acquire
        // ordering above), so it has finished writing this block and will
        // not touch it until we store TP_STATUS_KERNEL; the descriptor lies
        // at the start of the block inside the mapping.
        let (num, first) = unsafe {
            let desc = &*(self.map.add(b * self.block_bytes) as *const libc::tpacket_block_desc);
            (
                desc.hdr.bh1.num_pkts,
                desc.hdr.bh1.offset_to_first_pkt as usize,
            )
        };
        self.cursor.held = true;
        self.cursor.left = num;
        self.cursor.offset = first;
        true
    }

    /// The next packet, waiting at most `timeout_ms` for one
    /// ([`Next::Timeout`] when none came). The packet borrows the ring until
    /// the next call.
    pub fn next_packet(&mut self, timeout_ms: i32) -> Next<'_> {
        let mut waited = false;
        loop {
            if self.cursor.held && self.cursor.left == 0 {
                self.release();
            }
            if self.cursor.held {
                return self.take_packet();
            }
            if self.acquire() {
                continue;
            }
            if waited {
                return Next::Timeout;
            }
            let mut pfd = libc::pollfd {
                fd: self.fd.as_raw_fd(),
                events: libc::POLLIN | libc::POLLERR,
                revents: 0,
            };
            // SAFETY: one valid pollfd, count 1.
            let r = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
            if r < 0 && std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
                return Next::Truncated(format!(
                    "{}: af-packet poll: {}",
                    self.name,
                    std::io::Error::last_os_error()
                ));
            }
            waited = true;
        }
    }

    /// Reads the packet at the cursor of the held block.
    fn take_packet(&mut self) -> Next<'_> {
        let base = self.cursor.block * self.block_bytes;
        let off = self.cursor.offset;
        let hdr_len = std::mem::size_of::<libc::tpacket3_hdr>();
        if off + hdr_len > self.block_bytes {
            // A corrupt offset would be a kernel bug; drop the block rather
            // than read outside it.
            self.cursor.left = 0;
            return Next::Truncated(format!(
                "{}: af-packet block with a bad packet offset",
                self.name
            ));
        }
        // SAFETY: the block is held (kernel hands it over, see `acquire`);
        // `off + hdr_len` is inside the block, checked above; the header is
        // read unaligned-safe by value.
        let h: libc::tpacket3_hdr = unsafe {
            std::ptr::read_unaligned(self.map.add(base + off) as *const libc::tpacket3_hdr)
        };
        let start = off + h.tp_mac as usize;
        let len = h.tp_snaplen as usize;
        if start + len > self.block_bytes {
            self.cursor.left = 0;
            return Next::Truncated(format!("{}: af-packet frame outside its block", self.name));
        }
        self.cursor.left -= 1;
        self.cursor.offset = off + h.tp_next_offset as usize;
        // SAFETY: `start + len` is inside the held block (checked above);
        // the bytes stay valid until `release`, which needs `&mut self`,
        // so not before the returned borrow ends.
        let data: &[u8] = unsafe { std::slice::from_raw_parts(self.map.add(base + start), len) };
        let ts = Timestamp::from_parts(h.tp_sec as i64, h.tp_nsec);
        let mut wire_len = h.tp_len;
        let vlan = h.tp_status & libc::TP_STATUS_VLAN_VALID != 0
            && self.datalink == DLT_EN10MB
            && len >= 12;
        if vlan {
            // The kernel removed the 802.1Q tag (VLAN offload); put it back
            // where it was so decoding and VLAN-aware flows see the frame
            // as on the wire.
            let tpid = if h.tp_status & libc::TP_STATUS_VLAN_TPID_VALID != 0 {
                h.hv1.tp_vlan_tpid
            } else {
                0x8100
            };
            self.scratch.clear();
            self.scratch.extend_from_slice(&data[..12]);
            self.scratch.extend_from_slice(&tpid.to_be_bytes());
            self.scratch
                .extend_from_slice(&(h.hv1.tp_vlan_tci as u16).to_be_bytes());
            self.scratch.extend_from_slice(&data[12..]);
            wire_len += 4;
            return Next::Packet(RawPacket {
                ts,
                data: &self.scratch,
                wire_len,
            });
        }
        Next::Packet(RawPacket { ts, data, wire_len })
    }

    /// The kernel's counters for this ring since it was opened (the kernel
    /// resets them on each read; they are summed here).
    pub fn stats(&mut self) -> RingStats {
        // SAFETY: tpacket_stats_v3 is plain old data; zero is valid.
        let mut s: libc::tpacket_stats_v3 = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::tpacket_stats_v3>() as libc::socklen_t;
        // SAFETY: `s` and `len` are valid for writes; len is s's size.
        let r = unsafe {
            libc::getsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_STATISTICS,
                (&mut s as *mut libc::tpacket_stats_v3).cast(),
                &mut len,
            )
        };
        if r == 0 {
            // tp_packets counts every packet the filter passed, dropped ones included.
            self.stats.packets += s.tp_packets as u64;
            self.stats.drops += s.tp_drops as u64;
            self.stats.freeze_q += s.tp_freeze_q_cnt as u64;
        }
        self.stats
    }
}

/// Waits until one of `rings` may have a packet, at most `timeout_ms`.
pub fn wait_any(rings: &[&Ring], timeout_ms: i32) {
    let mut fds: Vec<libc::pollfd> = rings
        .iter()
        .map(|r| libc::pollfd {
            fd: r.fd.as_raw_fd(),
            events: libc::POLLIN | libc::POLLERR,
            revents: 0,
        })
        .collect();
    // A block already handed over needs no wait (poll would not say so
    // again until the kernel fills the next one).
    if rings.iter().any(|r| {
        r.cursor.held
            || r.status(r.cursor.block).load(Ordering::Acquire) & libc::TP_STATUS_USER != 0
    }) {
        return;
    }
    // SAFETY: `fds` is a valid array of `fds.len()` pollfds.
    unsafe {
        libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms);
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        // SAFETY: `map`/`map_len` are the mapping made in `open`, unmapped
        // once here; no borrow of it outlives `self`.
        unsafe {
            libc::munmap(self.map.cast(), self.map_len);
        }
    }
}
