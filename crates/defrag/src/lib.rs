//! IPv4 and IPv6 defragmentation for a passive sensor, resolving overlaps the
//! way Suricata does (`src/defrag.c`, `DefragInsertFrag`).
//!
//! # Contract
//!
//! The reader hands every packet whose decode says it is a fragment
//! (`d.ip.frag.is_some()`) to [`Defragmenter::push`]. Fragments are grouped
//! into *trackers* keyed by source and destination address, IP
//! identification, VLAN ids and, for IPv4, the protocol. When a fragment
//! completes its datagram, `push` returns the reassembled datagram as a fresh
//! buffer holding one valid IP packet, to be decoded again with
//! `decode(LinkType::Raw, &buf, buf.len())`:
//!
//! * IPv4: the header (with options) of the first fragment, total length set,
//!   the flags/fragment-offset word zeroed (as Suricata does; this clears DF
//!   too) and the header checksum updated incrementally (RFC 1624), so a bad
//!   checksum on the first fragment stays bad;
//! * IPv6: the fixed header and the unfragmentable extension headers of the
//!   first fragment, the fragment header removed (the next-header field that
//!   pointed at it now names what followed it), payload length set.
//!
//! Link layer, VLAN and tunnel encapsulation are not part of the returned
//! buffer: the caller keeps them from the fragment that completed it.
//! The original fragments are left to the caller (Suricata still inspects
//! them as packets of their own).
//!
//! # Overlaps
//!
//! Fragments are kept sorted by offset (a later fragment with an equal
//! offset sorts after the earlier ones). A new fragment is compared with the
//! stored ones in that order, starting at the last fragment that begins before
//! it (at the smallest one if the new fragment starts at 0 or after every
//! stored one), until its [`FragPolicy`] decides; it may be dropped, trimmed
//! at its start, or trim or drop a stored fragment. Reassembly then copies the
//! fragments in order, so that where trimming left overlaps, the fragment
//! copied last wins. `*.frag_overlap` is raised whenever a fragment overlaps
//! one it was compared with, whatever the data.
//!
//! # Bounds
//!
//! Memory is bounded by [`DefragConfig::memcap_bytes`], which counts the bytes
//! of stored fragments plus a fixed per-fragment and per-tracker overhead,
//! by [`DefragConfig::max_trackers`], [`DefragConfig::max_frags_per_tracker`]
//! and the idle timeout. At the bounds, as in Suricata:
//!
//! * a fragment that needs a *new* tracker when the tracker table is full or
//!   the memcap cannot hold it evicts the least recently used trackers
//!   (Suricata reuses an in-use tracker when its tracker memcap is hit);
//!   timed-out ones go first and count as timeouts, others as
//!   `tracker_evictions`;
//! * a fragment for an *existing* tracker that would pass the memcap or the
//!   per-tracker fragment limit is dropped, counted in `memcap_drops`, and
//!   raises `ipv4.frag_ignored` / `ipv6.frag_ignored` (Suricata drops a
//!   fragment with that event when its fragment pool is exhausted).
//!
//! Work per fragment is bounded by the per-tracker fragment limit; nothing
//! here panics on hostile input.
#![deny(missing_docs)]

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use zonewatch_decode::{DecodeEvent, Decoded};
use zonewatch_types::Timestamp;

/// How overlapping fragments are resolved: Suricata's defrag policies
/// (`defrag.c`), named as in its `host-os-policy` configuration.
///
/// Each rule compares a new fragment `N` with a stored fragment `P`
/// (offsets and ends in bytes; "trim" removes bytes from the start):
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum FragPolicy {
    /// The first data received wins: `N` inside `P` is dropped; `N` starting
    /// inside `P` is trimmed to `P`'s end; `N` starting before `P` is kept
    /// whole and `P` is copied over it.
    First,
    /// The last data received wins: `N` starting at or before `P` trims `P`
    /// to `N`'s end.
    Last,
    /// BSD (the default, as in Suricata): `N` starting at or after `P`'s
    /// start and inside it is trimmed to `P`'s end, or dropped if `P` covers
    /// it; `N` starting before `P` trims `P` (and the fragment after `P`) to
    /// `N`'s end.
    #[default]
    Bsd,
    /// BSD-right: no trimming at insertion; the fragment with the higher
    /// offset (for equal offsets, the later one) wins, by copy order.
    BsdRight,
    /// Linux: `N` overlapping `P`'s end is trimmed; `N` overlapping `P`'s
    /// start trims `P`; `N` covering `P` drops `P`.
    Linux,
    /// Windows: `N` inside `P` is dropped; `N` covering `P` drops `P`; `N`
    /// overlapping `P`'s end, or starting with `P` and ending after it, is
    /// trimmed to `P`'s end.
    Windows,
    /// Solaris: `N` starting inside `P` is trimmed to `P`'s end; `N`
    /// starting before `P` and covering it drops `P`.
    Solaris,
}

impl FragPolicy {
    /// Every policy.
    pub const ALL: [FragPolicy; 7] = [
        FragPolicy::First,
        FragPolicy::Last,
        FragPolicy::Bsd,
        FragPolicy::BsdRight,
        FragPolicy::Linux,
        FragPolicy::Windows,
        FragPolicy::Solaris,
    ];

    /// The policy for a Suricata `host-os-policy` name, mapped as Suricata
    /// maps OS policies to defrag policies (`hpux10`/`irix` are BSD,
    /// `old-linux` is Linux, `old-solaris`/`hpux11`/`macos` are First,
    /// `vista`/`windows2k3` are Windows).
    pub fn from_name(name: &str) -> Option<FragPolicy> {
        Some(match name.to_ascii_lowercase().replace('_', "-").as_str() {
            "bsd" | "hpux10" | "irix" => FragPolicy::Bsd,
            "bsd-right" => FragPolicy::BsdRight,
            "linux" | "old-linux" => FragPolicy::Linux,
            "first" | "old-solaris" | "hpux11" | "macos" => FragPolicy::First,
            "last" => FragPolicy::Last,
            "solaris" => FragPolicy::Solaris,
            "windows" | "vista" | "windows2k3" => FragPolicy::Windows,
            _ => return None,
        })
    }

    /// The policy's configuration name.
    pub fn name(self) -> &'static str {
        match self {
            FragPolicy::First => "first",
            FragPolicy::Last => "last",
            FragPolicy::Bsd => "bsd",
            FragPolicy::BsdRight => "bsd-right",
            FragPolicy::Linux => "linux",
            FragPolicy::Windows => "windows",
            FragPolicy::Solaris => "solaris",
        }
    }
}

/// Limits and policy of a [`Defragmenter`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DefragConfig {
    /// Bytes of stored fragments plus per-fragment and per-tracker
    /// overhead that may be held at once (default 32 MiB, Suricata's
    /// `defrag.memcap`).
    pub memcap_bytes: u64,
    /// A tracker that received no fragment for this many seconds is dropped
    /// (default 60, Suricata's `defrag.timeout`).
    pub timeout_secs: u64,
    /// Most trackers held at once (default 65535, Suricata's
    /// `defrag.trackers`).
    pub max_trackers: usize,
    /// Most fragments one tracker holds (default 8192: a 64 KiB datagram cut
    /// into the smallest, 8-byte, fragments).
    pub max_frags_per_tracker: usize,
    /// Overlap resolution, for every destination.
    pub policy: FragPolicy,
}

impl Default for DefragConfig {
    fn default() -> Self {
        DefragConfig {
            memcap_bytes: 32 * 1024 * 1024,
            timeout_secs: 60,
            max_trackers: 65535,
            max_frags_per_tracker: 8192,
            policy: FragPolicy::Bsd,
        }
    }
}

/// What a [`Defragmenter`] did so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DefragCounters {
    /// Fragments offered to [`Defragmenter::push`].
    pub fragments: u64,
    /// Datagrams reassembled and returned.
    pub reassembled: u64,
    /// Trackers dropped because they timed out.
    pub timeouts: u64,
    /// Fragments dropped because the memcap or the per-tracker fragment
    /// limit was hit (each raised `*.frag_ignored`).
    pub memcap_drops: u64,
    /// Trackers evicted (before their timeout) to make room for a new one.
    pub tracker_evictions: u64,
    /// Fragments that overlapped a stored fragment.
    pub overlaps: u64,
    /// Fragments or datagrams dropped for exceeding 65535 bytes.
    pub too_large: u64,
    /// Fragments not usable: cut short by the capture's snap length, no
    /// data, or headers that do not parse.
    pub ignored: u64,
    /// Trackers held now.
    pub trackers_active: u64,
    /// Bytes accounted against the memcap now.
    pub mem_used: u64,
    /// Highest `mem_used` seen.
    pub mem_peak: u64,
}

/// Memory charged for a tracker beyond its fragments: the tracker, its key
/// in the table and in the age index, and table slack.
const TRACKER_COST: u64 =
    (std::mem::size_of::<Tracker>() + 3 * std::mem::size_of::<Key>() + 64) as u64;
/// Memory charged for a fragment beyond its bytes.
const FRAG_COST: u64 = (std::mem::size_of::<Frag>() + 16) as u64;

/// Largest IPv4 datagram / IPv6 payload.
const MAX_PACKET: u32 = 65535;
/// Suricata's IPv4 size check uses the minimal header length.
const IPV4_MIN_HLEN: u32 = 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    src: IpAddr,
    dst: IpAddr,
    id: u32,
    /// IPv4 protocol; 0 for IPv6 (whose key has no protocol).
    proto: u8,
    vlan: [u16; 2],
}

/// One stored fragment: `buf` is the fragment's header part (first fragment
/// only) followed by its data.
#[derive(Debug)]
struct Frag {
    /// Offset of the data in the datagram's fragmentable part.
    offset: u32,
    /// Leading data bytes a later fragment took over.
    ltrim: u32,
    more: bool,
    hdr_len: u32,
    buf: Box<[u8]>,
}

impl Frag {
    fn data(&self) -> &[u8] {
        self.buf.get(self.hdr_len as usize..).unwrap_or(&[])
    }
    fn len(&self) -> u32 {
        self.data().len() as u32
    }
    fn end(&self) -> u32 {
        self.offset.saturating_add(self.len())
    }
    fn cost(&self) -> u64 {
        FRAG_COST + self.buf.len() as u64
    }
}

#[derive(Debug)]
struct Tracker {
    v6: bool,
    /// Sorted by offset; equal offsets in arrival order.
    frags: Vec<Frag>,
    seen_last: bool,
    /// Upper bound of every stored fragment's end.
    max_end: u32,
    /// Sum of the stored fragments' lengths: while it is below the
    /// datagram's extent, there is a hole.
    data_sum: u64,
    /// Key in the age index: (expiry time in ns, sequence).
    age: (i64, u64),
    mem: u64,
}

/// A fragment as parsed from the packet.
struct Parsed<'a> {
    key: Key,
    v6: bool,
    offset: u32,
    more: bool,
    /// IPv4 header, or IPv6 header plus the unfragmentable headers.
    hdr: &'a [u8],
    /// IPv6: where in `hdr` the next-header byte naming the fragment header
    /// is, and the value to put there instead.
    nh_patch: Option<(usize, u8)>,
    data: &'a [u8],
}

enum Step {
    Next,
    Insert { remove_prev: bool },
    Drop,
}

enum Reassembly {
    Incomplete,
    Done(Vec<u8>),
    TooLarge,
    Broken,
}

/// IPv4/IPv6 defragmenter for one reader thread. See the crate docs for
/// the contract.
#[derive(Debug)]
pub struct Defragmenter {
    cfg: DefragConfig,
    trackers: HashMap<Key, Tracker>,
    /// Trackers by expiry time (the least recently used first).
    by_age: BTreeMap<(i64, u64), Key>,
    seq: u64,
    c: DefragCounters,
}

impl Defragmenter {
    /// A defragmenter with no trackers.
    pub fn new(cfg: DefragConfig) -> Self {
        Defragmenter {
            cfg,
            trackers: HashMap::new(),
            by_age: BTreeMap::new(),
            seq: 0,
            c: DefragCounters::default(),
        }
    }

    /// The configuration in use.
    pub fn config(&self) -> &DefragConfig {
        &self.cfg
    }

    /// Offers one packet whose decode says it is a fragment
    /// (`d.ip.frag.is_some()`; other packets are ignored and `None` is
    /// returned). `pkt` is the whole captured frame and `d` its decode
    /// (offsets into `pkt`); `now` is the packet's time.
    ///
    /// When this fragment completes its datagram, returns the reassembled
    /// datagram: a fresh buffer holding one IP packet (see the crate docs),
    /// to be decoded with `decode(LinkType::Raw, &buf, buf.len())`.
    ///
    /// Events are appended to `events`, each at most once per call:
    /// `ipv4/ipv6.frag_overlap` when the fragment overlaps a stored one,
    /// `ipv4/ipv6.frag_pkt_too_large` when the fragment or the datagram
    /// would pass 65535 bytes (the fragment, or the whole datagram, is
    /// dropped), `ipv6.frag_invalid_length` for an IPv6 fragment with more
    /// fragments to come whose length is not a multiple of 8 (it is still
    /// used), and `ipv4/ipv6.frag_ignored` when the fragment is dropped at
    /// the memory bounds.
    pub fn push(
        &mut self,
        now: Timestamp,
        d: &Decoded,
        pkt: &[u8],
        events: &mut Vec<DecodeEvent>,
    ) -> Option<Vec<u8>> {
        let ip = d.ip?;
        ip.frag?;
        self.c.fragments += 1;
        let parsed = match ip.version {
            4 => parse_v4(pkt, ip.offset as usize, d.vlan),
            6 => parse_v6(pkt, ip.offset as usize, d.vlan),
            _ => None,
        };
        let Some(f) = parsed else {
            self.c.ignored += 1;
            return None;
        };
        let first_event = events.len();
        let mut ev = |e: DecodeEvent| {
            if !events[first_event..].contains(&e) {
                events.push(e);
            }
        };
        let data_len = f.data.len() as u32;
        if f.v6 && f.more && data_len % 8 != 0 {
            ev(DecodeEvent::Ipv6FragInvalidLength);
        }
        let too_large = if f.v6 {
            f.offset + data_len > MAX_PACKET
        } else {
            IPV4_MIN_HLEN + f.offset + data_len > MAX_PACKET
        };
        if too_large {
            self.c.too_large += 1;
            ev(too_large_event(f.v6));
            return None;
        }
        if data_len == 0 {
            // Nothing to store (Suricata drops it the same way).
            self.c.ignored += 1;
            return None;
        }
        let frag_offset = f.offset;
        let frag_end = frag_offset + data_len;
        let key = f.key;

        // A tracker past its timeout is gone even if `expire` was not called.
        if let Some(t) = self.trackers.get(&key) {
            if t.age.0 < now.0 {
                self.remove_tracker(&key);
                self.c.timeouts += 1;
            }
        }
        let expiry = now.plus_secs(self.cfg.timeout_secs).0;
        if !self.trackers.contains_key(&key) {
            let need = TRACKER_COST + FRAG_COST + (f.hdr.len() + f.data.len()) as u64;
            if !self.make_room(now, need) {
                self.c.memcap_drops += 1;
                ev(ignored_event(f.v6));
                return None;
            }
            self.trackers.insert(
                key,
                Tracker {
                    v6: f.v6,
                    frags: Vec::new(),
                    seen_last: false,
                    max_end: 0,
                    data_sum: 0,
                    age: (expiry, 0),
                    mem: TRACKER_COST,
                },
            );
            self.mem_add(TRACKER_COST);
        }
        // Refresh the tracker's age.
        self.seq += 1;
        let age = (expiry, self.seq);
        let t = self.trackers.get_mut(&key)?;
        self.by_age.remove(&t.age);
        t.age = age;
        self.by_age.insert(age, key);

        let (overlap, ltrim, freed) = resolve(t, self.cfg.policy, frag_offset, frag_end);
        t.mem = t.mem.saturating_sub(freed);
        self.c.mem_used = self.c.mem_used.saturating_sub(freed);
        if overlap {
            self.c.overlaps += 1;
            ev(overlap_event(f.v6));
        }
        let mut out = None;
        match ltrim {
            Some(ltrim) if ltrim < data_len => {
                let new_offset = frag_offset + ltrim;
                let hdr: &[u8] = if new_offset == 0 { f.hdr } else { &[] };
                let cost = FRAG_COST + (hdr.len() as u64) + u64::from(data_len - ltrim);
                if t.frags.len() >= self.cfg.max_frags_per_tracker
                    || self.c.mem_used + cost > self.cfg.memcap_bytes
                {
                    self.c.memcap_drops += 1;
                    ev(ignored_event(f.v6));
                } else {
                    let mut buf = Vec::with_capacity(hdr.len() + (data_len - ltrim) as usize);
                    buf.extend_from_slice(hdr);
                    if let Some((pos, val)) = f.nh_patch.filter(|_| !hdr.is_empty()) {
                        if let Some(b) = buf.get_mut(pos) {
                            *b = val;
                        }
                    }
                    buf.extend_from_slice(&f.data[ltrim as usize..]);
                    let frag = Frag {
                        offset: new_offset,
                        ltrim: 0,
                        more: f.more,
                        hdr_len: hdr.len() as u32,
                        buf: buf.into_boxed_slice(),
                    };
                    let at = t.frags.partition_point(|x| x.offset <= new_offset);
                    t.max_end = t.max_end.max(frag.end());
                    t.data_sum += u64::from(frag.len());
                    t.frags.insert(at, frag);
                    t.mem += cost;
                    self.c.mem_used += cost;
                    self.c.mem_peak = self.c.mem_peak.max(self.c.mem_used);
                    if !f.more {
                        t.seen_last = true;
                    }
                    out = self.complete(&key, f.v6, &mut ev);
                }
            }
            // Dropped by the policy, or trimmed to nothing.
            _ => {}
        }
        if self.trackers.get(&key).is_some_and(|t| t.frags.is_empty()) {
            self.remove_tracker(&key);
        }
        out
    }

    /// Reassembles the datagram of `key` once its last fragment is in (the
    /// tracker goes once it is whole, too large or broken).
    fn complete(
        &mut self,
        key: &Key,
        v6: bool,
        ev: &mut impl FnMut(DecodeEvent),
    ) -> Option<Vec<u8>> {
        let t = self.trackers.get_mut(key)?;
        if !t.seen_last {
            return None;
        }
        let out = match reassemble(t) {
            Reassembly::Incomplete => return None,
            Reassembly::Done(buf) => {
                self.c.reassembled += 1;
                Some(buf)
            }
            Reassembly::TooLarge => {
                self.c.too_large += 1;
                ev(too_large_event(v6));
                None
            }
            Reassembly::Broken => {
                self.c.ignored += 1;
                None
            }
        };
        self.remove_tracker(key);
        out
    }

    /// Drops the trackers that received no fragment for the timeout (call
    /// on clock ticks).
    pub fn expire(&mut self, now: Timestamp) {
        while let Some((&age, &key)) = self.by_age.first_key_value() {
            if age.0 >= now.0 {
                break;
            }
            self.remove_tracker(&key);
            self.c.timeouts += 1;
        }
    }

    /// The counters so far.
    pub fn counters(&self) -> DefragCounters {
        DefragCounters {
            trackers_active: self.trackers.len() as u64,
            ..self.c
        }
    }

    fn mem_add(&mut self, n: u64) {
        self.c.mem_used += n;
        self.c.mem_peak = self.c.mem_peak.max(self.c.mem_used);
    }

    fn remove_tracker(&mut self, key: &Key) {
        if let Some(t) = self.trackers.remove(key) {
            self.by_age.remove(&t.age);
            self.c.mem_used = self.c.mem_used.saturating_sub(t.mem);
        }
    }

    /// Evicts the least recently used trackers until a new tracker costing
    /// `need` fits; false when it cannot.
    fn make_room(&mut self, now: Timestamp, need: u64) -> bool {
        let fits = |s: &Self| {
            s.trackers.len() < s.cfg.max_trackers && s.c.mem_used + need <= s.cfg.memcap_bytes
        };
        while !fits(self) {
            let Some((&age, &key)) = self.by_age.first_key_value() else {
                break;
            };
            self.remove_tracker(&key);
            if age.0 < now.0 {
                self.c.timeouts += 1;
            } else {
                self.c.tracker_evictions += 1;
            }
        }
        fits(self)
    }
}

fn too_large_event(v6: bool) -> DecodeEvent {
    if v6 {
        DecodeEvent::Ipv6FragPktTooLarge
    } else {
        DecodeEvent::Ipv4FragPktTooLarge
    }
}

fn overlap_event(v6: bool) -> DecodeEvent {
    if v6 {
        DecodeEvent::Ipv6FragOverlap
    } else {
        DecodeEvent::Ipv4FragOverlap
    }
}

fn ignored_event(v6: bool) -> DecodeEvent {
    if v6 {
        DecodeEvent::Ipv6FragIgnored
    } else {
        DecodeEvent::Ipv4FragIgnored
    }
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

/// Parses the IPv4 fragment at `off`. `None` when the header is malformed
/// or the capture holds less than the header's total length.
fn parse_v4(pkt: &[u8], off: usize, vlan: [u16; 2]) -> Option<Parsed<'_>> {
    let b = pkt.get(off..)?;
    if b.len() < 20 || b[0] >> 4 != 4 {
        return None;
    }
    let hlen = usize::from(b[0] & 0x0f) * 4;
    let total = usize::from(be16(b, 2)?);
    if hlen < 20 || total < hlen || b.len() < total {
        return None;
    }
    let fo = be16(b, 6)?;
    let src: [u8; 4] = b[12..16].try_into().ok()?;
    let dst: [u8; 4] = b[16..20].try_into().ok()?;
    Some(Parsed {
        key: Key {
            src: IpAddr::from(src),
            dst: IpAddr::from(dst),
            id: u32::from(be16(b, 4)?),
            proto: b[9],
            vlan,
        },
        v6: false,
        offset: u32::from(fo & 0x1fff) * 8,
        more: fo & 0x2000 != 0,
        hdr: &b[..hlen],
        nh_patch: None,
        data: &b[hlen..total],
    })
}

/// Parses the IPv6 fragment at `off`: walks the extension headers to the
/// first fragment header. `None` when there is none, a header is cut short,
/// the payload length is 0 (jumbogram) or the capture holds less than it.
fn parse_v6(pkt: &[u8], off: usize, vlan: [u16; 2]) -> Option<Parsed<'_>> {
    let b = pkt.get(off..)?;
    if b.len() < 40 || b[0] >> 4 != 6 {
        return None;
    }
    let plen = usize::from(be16(b, 4)?);
    let end = 40 + plen;
    if plen == 0 || b.len() < end {
        return None;
    }
    let b = &b[..end];
    let mut nh = b[6];
    let mut nh_pos = 6usize;
    let mut pos = 40usize;
    loop {
        let len = match nh {
            44 => break,
            // Hop-by-hop, routing, destination options, mobility, HIP, shim6.
            0 | 43 | 60 | 135 | 139 | 140 => (usize::from(*b.get(pos + 1)?) + 1) * 8,
            // Authentication header: length in 4-octet units, minus 2.
            51 => (usize::from(*b.get(pos + 1)?) + 2) * 4,
            _ => return None,
        };
        if pos + len > end {
            return None;
        }
        nh = b[pos];
        nh_pos = pos;
        pos += len;
    }
    let fh = b.get(pos..pos + 8)?;
    let offlg = be16(fh, 2)?;
    let src: [u8; 16] = b[8..24].try_into().ok()?;
    let dst: [u8; 16] = b[24..40].try_into().ok()?;
    let offset = u32::from(offlg & 0xfff8);
    let more = offlg & 1 != 0;
    if offset == 0 && !more {
        return None;
    }
    Some(Parsed {
        key: Key {
            src: IpAddr::from(src),
            dst: IpAddr::from(dst),
            id: u32::from_be_bytes(fh[4..8].try_into().ok()?),
            proto: 0,
            vlan,
        },
        v6: true,
        offset,
        more,
        hdr: &b[..pos],
        nh_patch: Some((nh_pos, fh[0])),
        data: &b[pos + 8..],
    })
}

/// Compares a new fragment `[frag_offset, frag_end)` with the stored ones
/// as Suricata's `DefragInsertFrag` does. Returns whether it overlapped one,
/// the bytes to trim from its start (`None`: drop it), and the memory freed
/// by stored fragments it made useless.
fn resolve(
    t: &mut Tracker,
    policy: FragPolicy,
    frag_offset: u32,
    frag_end: u32,
) -> (bool, Option<u32>, u64) {
    let n = t.frags.len();
    let mut overlap = false;
    let mut ltrim: u32 = 0;
    let mut freed = 0u64;
    // Stored fragments ending at or before the new one's start take no part
    // in any policy's decision; when all of them do, skip the walk (the
    // common in-order case).
    if n == 0 || t.max_end <= frag_offset {
        return (false, Some(0), 0);
    }
    let j = t.frags.partition_point(|x| x.offset < frag_offset);
    // Suricata looks up the first fragment at or after `frag_offset - 1` in
    // 16 bits: for offset 0, or when none follows, the walk starts at the
    // smallest fragment; otherwise at the one before.
    let mut p = if frag_offset == 0 || j == n {
        0
    } else {
        j.saturating_sub(1)
    };
    while p < n {
        let (po, pend, plt) = {
            let prev = &t.frags[p];
            (prev.offset, prev.end(), prev.ltrim)
        };
        if pend <= frag_offset {
            p += 1;
            continue;
        }
        // Fragments starting at or after the new one's end (and so all that
        // follow) are no-ops for these policies; the others stop at the
        // first of them.
        if po >= frag_end
            && matches!(
                policy,
                FragPolicy::Linux | FragPolicy::Windows | FragPolicy::BsdRight
            )
        {
            break;
        }
        if frag_offset < pend && po < frag_end {
            overlap = true;
        }
        let step = policy_step(
            t,
            policy,
            p,
            (po, pend, plt),
            (frag_offset, frag_end),
            &mut ltrim,
        );
        match step {
            Step::Next => p += 1,
            Step::Drop => return (overlap, None, freed),
            Step::Insert { remove_prev } => {
                // A stored fragment dropped or trimmed to nothing goes now.
                let prev = &t.frags[p];
                if remove_prev || prev.ltrim >= prev.len() {
                    let gone = t.frags.remove(p);
                    t.data_sum = t.data_sum.saturating_sub(u64::from(gone.len()));
                    freed += gone.cost();
                }
                break;
            }
        }
    }
    (overlap, Some(ltrim), freed)
}

/// What `policy` does with the new fragment `[frag_offset, frag_end)` (its
/// start trimmed by `ltrim` so far) against stored fragment `p`
/// (`po..pend`, trimmed by `plt`); may trim stored fragments.
fn policy_step(
    t: &mut Tracker,
    policy: FragPolicy,
    p: usize,
    (po, pend, plt): (u32, u32, u32),
    (frag_offset, frag_end): (u32, u32),
    ltrim: &mut u32,
) -> Step {
    match policy {
        FragPolicy::Bsd => {
            if frag_offset < pend {
                if po <= frag_offset {
                    if pend > frag_end {
                        Step::Drop
                    } else {
                        *ltrim = pend - frag_offset;
                        bsd_trim_next(t, p + 1, frag_end);
                        Step::Insert { remove_prev: false }
                    }
                } else {
                    if frag_end > po.saturating_add(plt) {
                        let prev_ltrim = frag_end - po;
                        if prev_ltrim > plt {
                            t.frags[p].ltrim = prev_ltrim;
                        }
                    }
                    bsd_trim_next(t, p + 1, frag_end);
                    Step::Insert { remove_prev: false }
                }
            } else {
                Step::Next
            }
        }
        FragPolicy::Linux => {
            let start = frag_offset.saturating_add(*ltrim);
            if po.saturating_add(plt) < start && pend > start {
                *ltrim = ltrim.saturating_add(pend - frag_offset);
            }
            let start = frag_offset.saturating_add(*ltrim);
            let pstart = po.saturating_add(plt);
            if start < pstart && frag_end > pstart {
                t.frags[p].ltrim = plt.saturating_add(frag_end - pstart);
                Step::Insert { remove_prev: false }
            } else if start <= pstart && frag_end >= pend {
                Step::Insert { remove_prev: true }
            } else {
                Step::Next
            }
        }
        FragPolicy::Windows => {
            let start = frag_offset.saturating_add(*ltrim);
            let pstart = po.saturating_add(*ltrim);
            if start >= pstart && frag_end <= pend {
                Step::Drop
            } else if start < pstart && frag_end > pend {
                Step::Insert { remove_prev: true }
            } else if (start > po.saturating_add(plt) && start < pend)
                || (start == pstart && frag_end > pend)
            {
                // Overlaps the stored fragment's end, or starts with it
                // and ends after it: trimmed to its end.
                *ltrim = ltrim.saturating_add(pend - frag_offset);
                Step::Insert { remove_prev: false }
            } else {
                Step::Next
            }
        }
        FragPolicy::Solaris => {
            if frag_offset < pend {
                if frag_offset >= po {
                    *ltrim = pend - frag_offset;
                }
                Step::Insert {
                    remove_prev: frag_offset < po && frag_end >= pend,
                }
            } else {
                Step::Next
            }
        }
        FragPolicy::First => {
            if frag_offset >= po && frag_end <= pend {
                Step::Drop
            } else if frag_offset < po {
                Step::Insert { remove_prev: false }
            } else if frag_offset < pend {
                *ltrim = pend - frag_offset;
                Step::Insert { remove_prev: false }
            } else {
                Step::Next
            }
        }
        FragPolicy::Last => {
            if frag_offset <= po {
                if frag_end > po {
                    t.frags[p].ltrim = frag_end - po;
                }
                Step::Insert { remove_prev: false }
            } else {
                Step::Next
            }
        }
        FragPolicy::BsdRight => Step::Next,
    }
}

/// BSD: the new fragment takes over the start of the stored fragment that
/// follows the one it was compared with.
fn bsd_trim_next(t: &mut Tracker, next: usize, frag_end: u32) {
    if let Some(nx) = t.frags.get_mut(next) {
        if frag_end > nx.offset {
            nx.ltrim = frag_end - nx.offset;
        }
    }
}

/// Rebuilds the datagram when the fragments leave no hole (Suricata's
/// `Defrag4Reassemble` / `Defrag6Reassemble`).
fn reassemble(t: &Tracker) -> Reassembly {
    let Some(first) = t.frags.first() else {
        return Reassembly::Incomplete;
    };
    if first.offset != 0 {
        return Reassembly::Incomplete;
    }
    // Fragments covering [0, end) without a hole have lengths adding up to
    // at least `end`, which is at least where the highest one ends: a cheap
    // reject before the walk.
    let highest_end = t.frags.last().map_or(0, Frag::end);
    if t.data_sum < u64::from(highest_end) {
        return Reassembly::Incomplete;
    }
    let mut len = 0u32;
    for f in &t.frags {
        if f.offset > len {
            return Reassembly::Incomplete;
        }
        len = len.max(f.end());
    }
    let mut payload = vec![0u8; len as usize];
    let mut hdr: Option<&[u8]> = None;
    let mut frag_len = 0u32;
    let mut more = true;
    let mut prev_offset = 0u32;
    for f in &t.frags {
        // A fragment after the last one ends the datagram, unless it
        // starts where the last one does.
        if !more && f.offset > prev_offset {
            break;
        }
        if f.ltrim >= f.len() {
            continue;
        }
        let data = f.data();
        if f.offset == 0 {
            // The first fragment is copied whole, headers included.
            hdr = f.buf.get(..f.hdr_len as usize);
            payload[..data.len()].copy_from_slice(data);
            frag_len = f.len();
        } else {
            let skip = f.ltrim as usize;
            let at = (f.offset + f.ltrim) as usize;
            let part = &data[skip..];
            payload[at..at + part.len()].copy_from_slice(part);
            frag_len = frag_len.max(f.end());
        }
        more = f.more;
        prev_offset = f.offset;
    }
    payload.truncate(frag_len as usize);
    let Some(hdr) = hdr.filter(|h| h.len() >= if t.v6 { 40 } else { 20 }) else {
        return Reassembly::Broken;
    };
    let total = if t.v6 {
        hdr.len() - 40 + payload.len()
    } else {
        hdr.len() + payload.len()
    };
    if total > MAX_PACKET as usize {
        return Reassembly::TooLarge;
    }
    let mut out = Vec::with_capacity(hdr.len() + payload.len());
    out.extend_from_slice(hdr);
    out.extend_from_slice(&payload);
    let total = total as u16;
    if t.v6 {
        out[4..6].copy_from_slice(&total.to_be_bytes());
    } else {
        let old_len = u16::from_be_bytes([out[2], out[3]]);
        let old_off = u16::from_be_bytes([out[6], out[7]]);
        let mut csum = u16::from_be_bytes([out[10], out[11]]);
        csum = csum_update(csum, old_len, total);
        csum = csum_update(csum, old_off, 0);
        out[2..4].copy_from_slice(&total.to_be_bytes());
        out[6..8].copy_from_slice(&[0, 0]);
        out[10..12].copy_from_slice(&csum.to_be_bytes());
    }
    Reassembly::Done(out)
}

/// Incremental checksum update for one 16-bit word (RFC 1624, eqn. 3).
fn csum_update(csum: u16, old: u16, new: u16) -> u16 {
    let mut sum = u32::from(!csum) + u32::from(!old) + u32::from(new);
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full_csum(h: &[u8]) -> u16 {
        let mut sum = 0u32;
        for w in h.chunks(2) {
            sum += u32::from(u16::from_be_bytes([w[0], *w.get(1).unwrap_or(&0)]));
        }
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        !(sum as u16)
    }

    #[test]
    fn incremental_checksum_matches_full() {
        let mut h = [
            0x45u8, 0, 0, 38, 0, 0xf2, 0x20, 0, 64, 17, 0, 0, 164, 1, 123, 163, 164, 1, 123, 61,
        ];
        let c = full_csum(&h);
        h[10..12].copy_from_slice(&c.to_be_bytes());
        let c2 = csum_update(csum_update(c, 38, 324), 0x2000, 0);
        h[2..4].copy_from_slice(&324u16.to_be_bytes());
        h[6..8].copy_from_slice(&[0, 0]);
        h[10..12].copy_from_slice(&[0, 0]);
        assert_eq!(c2, full_csum(&h));
    }

    #[test]
    fn policy_names_round_trip() {
        for p in FragPolicy::ALL {
            assert_eq!(FragPolicy::from_name(p.name()), Some(p));
        }
        assert_eq!(
            FragPolicy::from_name("BSD_RIGHT"),
            Some(FragPolicy::BsdRight)
        );
        assert_eq!(FragPolicy::from_name("vista"), Some(FragPolicy::Windows));
        assert_eq!(FragPolicy::from_name("nope"), None);
    }
}
