//! TCP stream reassembly for one worker of a passive sensor: per direction,
//! segments become an ordered byte stream that is handed to a sink as soon as
//! it is contiguous. The input is hostile; every bound is explicit.
//! Suricata's `stream` / `stream.reassembly` engine is the reference.
//!
//! # Contract
//!
//! * One [`Reassembler`] per worker thread; one [`TcpSession`] per TCP flow,
//!   kept beside the flow and only used with the reassembler that made it.
//!   No locks; `segment` and `close` take `&mut` to both.
//! * [`Reassembler::segment`] is fed every TCP packet of the flow in capture
//!   order, with its direction ([`Direction::ToServer`] = from the flow's
//!   first sender). Bytes that become contiguous are passed to the sink at
//!   once, in order, as `(direction, stream offset, bytes)`. Offset 0 is the
//!   byte after the SYN (midstream: the first byte of the first segment the
//!   session was picked up on). Offsets are 64-bit: a stream may be longer
//!   than 4 GiB and sequence numbers may wrap any number of times.
//! * A **gap** (bytes that will never be seen) shows up in the sink as an
//!   offset that jumps past the previous call's end, and as a
//!   `stream.reassembly_seq_gap` event. Delivered bytes are final: a later
//!   copy of a delivered byte can raise an event but never changes it.
//! * Events for the packet are pushed to the caller's vector (Suricata names,
//!   [`StreamEvent::name`]); counters are in [`Reassembler::counters`].
//! * Nothing panics on any input: sequence arithmetic is wrapping (RFC 1982
//!   style, relative to the next expected byte), offsets saturate.
//!
//! # Session tracking (what gets reassembled)
//!
//! * **Handshake.** A direction is reassembled from its SYN's ISN + 1. Data is
//!   only delivered once the session is established: both SYNs acknowledged
//!   (3-way handshake, the split "4-way" handshake SYN / SYN / SYN-ACK / ACK,
//!   and simultaneous open SYN / SYN / SYN-ACK / SYN-ACK all qualify). A
//!   SYN/ACK whose ACK does not acknowledge the SYN is ignored
//!   (`stream.3whs_synack_with_wrong_ack`, or `4whs_` in the split case), as
//!   is the final ACK of the handshake when it acknowledges the wrong thing.
//!   Data sent before the handshake completes is not reassembled (counted in
//!   `not_tracked`), except data on SYN and SYN/ACK, see TFO.
//! * **Timestamps while the SYN waits for its answer** (Suricata's
//!   `StateSynSentValidateTimestamp`). A packet from the server carrying the
//!   timestamp option must echo the TSval of the client's SYN (either value 0
//!   passes); if the SYN had no timestamp option, only an echo of 0 passes.
//!   Otherwise the packet is ignored with `stream.pkt_invalid_timestamp`: a
//!   forged RST or FIN cannot tear the session down before the real SYN/ACK
//!   (an evasion). A SYN/ACK may echo any earlier SYN of the session that was
//!   retransmitted with another timestamp (up to 10 are remembered, more raise
//!   `stream.3whs_syn_flood`). Timestamps are not checked once the SYN/ACK
//!   was accepted (no PAWS in later states).
//! * **TCP Fast Open.** Data on a SYN is held (it counts against the memcap)
//!   until the peer's SYN/ACK: if that acknowledges the data (ACK = ISN + 1 +
//!   len) the data becomes offset 0 of the stream and is delivered when the
//!   handshake completes, before anything that follows; if it acknowledges
//!   only the SYN the data is dropped (`stream.3whs_synack_tfo_data_ignored`)
//!   and the client's retransmission is used instead, as Suricata does.
//! * **Midstream.** With [`StreamConfig::midstream`] off (Suricata's
//!   default), a session whose first packet is not a SYN is never
//!   reassembled and is counted once in `midstream_ignored`; a first packet
//!   with RST or FIN raises `stream.rst_but_no_session` /
//!   `stream.fin_but_no_session` and is not picked up even with midstream on.
//!   With midstream on, a first packet with ACK starts an established session
//!   (this side's stream starts at its SEQ, the other at its ACK) and a
//!   SYN/ACK starts one waiting for the final ACK; window scaling is then
//!   unknown and assumed to be the maximum (14), as Suricata does.
//! * **Async (one-sided) capture.** [`StreamConfig::async_oneside`] (Suricata's
//!   `stream.async-oneside`, default off): a SYN followed by an ACK from the
//!   same side establishes the session without the SYN/ACK; a SYN/ACK
//!   followed by data from its sender, without the final ACK, likewise.
//! * **RST.** Data carried on a RST is never reassembled (counted in
//!   `rst_with_data`). RFC 1122 4.2.2.12 allows such data as a diagnostic
//!   text and stacks do not pass it to the application; Suricata since 7.0.1
//!   (bug #6244) inspects it per packet only. Unlike Suricata, which ignores
//!   packets after an accepted RST, reassembly of both directions continues
//!   after a RST: an injected RST must not blind the sensor, and the flow
//!   layer times the session out anyway.
//! * **Windows and ACKs.** Each direction tracks the furthest right edge of the
//!   receive window the peer advertised (ACK + window << scale). A data
//!   segment ending past it is rejected (`stream.est_packet_out_of_window`),
//!   and a packet whose ACK acknowledges data past the right edge the other
//!   side was given is rejected (`stream.pkt_invalid_ack`), as in Suricata's
//!   established state. Until the peer has advertised a window nothing is
//!   rejected this way. As in Suricata, a zero-window probe (one byte just
//!   past a closed window) and a keep-alive (at most one byte at the offset
//!   before the next expected one, repeating the last ACK) are skipped
//!   without an event.
//!
//! # Overlaps and retransmissions
//!
//! Every buffered byte remembers the segment (its start and end offset) that
//! supplied it. When a new segment covers bytes that are buffered but not yet
//! delivered, [`OverlapPolicy::new_data_wins`] decides, for each run of bytes
//! supplied by one earlier segment, whether the new copy replaces the held
//! one; the decision depends only on the two segments' boundaries, exactly as
//! in Suricata's `DoHandleDataOverlap` (`stream-tcp-list.c`), so for two
//! copies of a byte the outcome is Suricata's. With three or more copies of
//! the same byte Suricata compares the new segment with every stored segment
//! in tree order and the last comparison wins; here the new segment is
//! compared with the segment that currently supplies the byte. If the copies
//! differ, `stream.reassembly_overlap_different_data` is raised (once per
//! segment) whatever the policy.
//!
//! Bytes already delivered cannot be replaced (the sink has them), so for them
//! every policy behaves as `first`. To still detect retransmissions with
//! different data, delivered bytes are kept until the peer acknowledges them,
//! up to [`StreamConfig::retain_unacked_bytes`] per direction and within the
//! memcap (dropped first under memory pressure); a new copy is compared with
//! them. A segment that adds no byte not seen before is a retransmission:
//! counted, and `stream.pkt_retransmission`, or
//! `stream.reassembly_segment_before_base_seq` when none of its bytes are
//! still held (Suricata's "before base seq"). Same-data retransmissions
//! raise nothing else. Suricata's rules for these two events are `noalert`
//! counters; see [`StreamEvent::alerts_by_default`].
//!
//! # Bounds
//!
//! * **Depth** ([`StreamConfig::depth`], default 1 MiB, 0 = unlimited): bytes
//!   at offsets at or past the depth are not reassembled. When a direction's
//!   stream reaches the depth, `stream.reassembly_depth_reached` is raised
//!   once, the direction's buffers are freed and later data is ignored.
//! * **Out-of-order segments** ([`StreamConfig::max_ooo_segments_per_dir`]):
//!   the number of buffered runs per direction (a run is a stretch of bytes
//!   from one segment; splitting by overlaps counts).
//! * **Memory** ([`StreamConfig::memcap_bytes`], for this reassembler, i.e.
//!   one worker's share): buffered bytes plus [`CHUNK_OVERHEAD_BYTES`] per
//!   run, retained delivered bytes, and held SYN data (vector capacity slack
//!   and the fixed-size session struct itself are not counted). Before a
//!   packet's call returns, `mem_used <= memcap_bytes` holds again; within
//!   the call one segment's worth may be held above it.
//!
//! When a packet pushes a direction over a bound, the retained (already
//! delivered) bytes of the session are released first; then, while still
//! over, the oldest hole of that direction is declared a gap
//! (`stream.reassembly_seq_gap`, counted in `gaps` and in `memcap_gaps` or
//! `segment_limit_gaps`) and the buffered bytes after it are delivered, which
//! frees them. Before the handshake completes there is nothing to deliver, so
//! the held data is dropped instead.
//!
//! Gaps are also declared when the receiver acknowledges bytes that were
//! never seen and the sensor holds data after them (capture loss: the hole
//! will not be retransmitted). A hole at the end of the seen data is left
//! open until later data arrives (so an ACK that overtakes its data in the
//! capture does not cause a false gap). [`Reassembler::close`] can flush what
//! is still buffered past holes, each hole counted as a gap.
//!
//! # Overlap policies (Suricata `host-os-policy` names)
//!
//! With `N` the new segment and `O` the segment that supplied the held bytes
//! (start `s`, end `e`, in stream offsets), the new copy wins when:
//!
//! | policy | new data wins when |
//! |---|---|
//! | `first`, `vista`, `bsd-right`, `old-solaris` | never (first copy received wins) |
//! | `last` | always (last copy received wins, for bytes not yet delivered) |
//! | `bsd` (default), `windows`, `windows2k3`, `macos`, `hpux10`, `irix` | `N.s < O.s` |
//! | `linux` | `N.s < O.s`, or `N.s == O.s` and `N.e > O.e` |
//! | `old-linux` | `N.s < O.s`, or `N.s == O.s` and `N.e >= O.e` |
//! | `solaris`, `hpux11` | `N.e > O.e`, or `N.e == O.e` and `N.s <= O.s` |
//!
//! That table is Suricata's `DoHandleDataOverlap` (IDS mode): `bsd-right` and
//! `old-solaris` are not named in its switch and so keep the old data.
#![deny(missing_docs)]

mod buffer;
mod engine;
mod session;

#[cfg(test)]
mod tests;

pub use buffer::CHUNK_OVERHEAD_BYTES;
pub use session::{HalfStats, SessionState, TcpSession};
pub use zonewatch_decode::TcpInfo;
pub use zonewatch_types::Direction;

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

/// Settings of one reassembler (one worker).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamConfig {
    /// Bytes reassembled per direction (`stream.reassembly.depth`); 0 =
    /// unlimited. Default 1 MiB.
    pub depth: u64,
    /// Bytes this reassembler may hold for all its sessions (its share of
    /// `stream.reassembly.memcap`); 0 = unlimited (then only the segment limit
    /// bounds buffering). Default 64 MiB.
    pub memcap_bytes: u64,
    /// Which copy of an overlapping byte wins. Default [`OverlapPolicy::Bsd`],
    /// Suricata's default OS policy.
    pub policy: OverlapPolicy,
    /// Pick up sessions whose handshake was not seen (`stream.midstream`).
    /// Default false, as Suricata.
    pub midstream: bool,
    /// Accept a handshake seen from one side only (`stream.async-oneside`).
    /// Default false, as Suricata.
    pub async_oneside: bool,
    /// Most out-of-order runs buffered per direction. Default 1024.
    pub max_ooo_segments_per_dir: usize,
    /// Delivered but not yet acknowledged bytes kept per direction to detect
    /// retransmissions with different data; 0 disables. Default 256 KiB.
    pub retain_unacked_bytes: u64,
    /// On [`Reassembler::close`], deliver what is buffered past holes
    /// (each hole counted as a gap) instead of discarding it. Default true.
    pub flush_on_close: bool,
}

impl Default for StreamConfig {
    fn default() -> Self {
        StreamConfig {
            depth: 1 << 20,
            memcap_bytes: 64 << 20,
            policy: OverlapPolicy::Bsd,
            midstream: false,
            async_oneside: false,
            max_ooo_segments_per_dir: 1024,
            retain_unacked_bytes: 256 << 10,
            flush_on_close: true,
        }
    }
}

/// Which copy of a byte wins when segments overlap with different data
/// (Suricata's `stream.reassembly` / `host-os-policy` names). See the crate
/// docs for the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OverlapPolicy {
    /// The first copy received wins.
    First,
    /// The last copy received wins (for bytes not yet delivered).
    Last,
    /// BSD: the new copy wins only if its segment starts earlier.
    Bsd,
    /// Suricata's `bsd-right`: keeps the old data.
    BsdRight,
    /// Linux before 2.6: new wins if it starts earlier, or at the same
    /// offset and ends at or after the old one.
    OldLinux,
    /// Linux: new wins if it starts earlier, or at the same offset and ends
    /// after the old one.
    Linux,
    /// Suricata's `old-solaris`: keeps the old data.
    OldSolaris,
    /// Solaris: new wins if it ends after the old one, or ends with it and
    /// does not start after it.
    Solaris,
    /// HP-UX 10: as BSD.
    HpUx10,
    /// HP-UX 11: as Solaris.
    HpUx11,
    /// IRIX: as BSD.
    Irix,
    /// macOS: as BSD.
    MacOs,
    /// Windows: as BSD.
    Windows,
    /// Windows Vista: keeps the old data.
    Vista,
    /// Windows Server 2003: as BSD.
    Windows2k3,
}

impl OverlapPolicy {
    /// Every policy, in the order of Suricata's `OS_POLICY_*` list.
    pub const ALL: [OverlapPolicy; 15] = [
        OverlapPolicy::Bsd,
        OverlapPolicy::BsdRight,
        OverlapPolicy::OldLinux,
        OverlapPolicy::Linux,
        OverlapPolicy::OldSolaris,
        OverlapPolicy::Solaris,
        OverlapPolicy::HpUx10,
        OverlapPolicy::HpUx11,
        OverlapPolicy::Irix,
        OverlapPolicy::MacOs,
        OverlapPolicy::Windows,
        OverlapPolicy::Vista,
        OverlapPolicy::Windows2k3,
        OverlapPolicy::First,
        OverlapPolicy::Last,
    ];

    /// The policy for a Suricata name (`bsd`, `bsd-right`, `old-linux`,
    /// `linux`, `old-solaris`, `solaris`, `hpux10`, `hpux11`, `irix`,
    /// `macos`, `windows`, `vista`, `windows2k3`, `first`, `last`).
    pub fn from_name(name: &str) -> Option<OverlapPolicy> {
        OverlapPolicy::ALL.into_iter().find(|p| p.name() == name)
    }

    /// The Suricata name.
    pub fn name(self) -> &'static str {
        match self {
            OverlapPolicy::First => "first",
            OverlapPolicy::Last => "last",
            OverlapPolicy::Bsd => "bsd",
            OverlapPolicy::BsdRight => "bsd-right",
            OverlapPolicy::OldLinux => "old-linux",
            OverlapPolicy::Linux => "linux",
            OverlapPolicy::OldSolaris => "old-solaris",
            OverlapPolicy::Solaris => "solaris",
            OverlapPolicy::HpUx10 => "hpux10",
            OverlapPolicy::HpUx11 => "hpux11",
            OverlapPolicy::Irix => "irix",
            OverlapPolicy::MacOs => "macos",
            OverlapPolicy::Windows => "windows",
            OverlapPolicy::Vista => "vista",
            OverlapPolicy::Windows2k3 => "windows2k3",
        }
    }

    /// Whether a new segment `[new_start, new_end)` replaces, where they
    /// overlap, bytes held from an earlier segment `[old_start, old_end)`
    /// (stream offsets).
    pub fn new_data_wins(self, new_start: u64, new_end: u64, old_start: u64, old_end: u64) -> bool {
        use OverlapPolicy::*;
        let (ns, ne, os, oe) = (new_start, new_end, old_start, old_end);
        match self {
            First | Vista | BsdRight | OldSolaris => false,
            Last => true,
            Bsd | Windows | Windows2k3 | MacOs | HpUx10 | Irix => ns < os,
            Linux => ns < os || (ns == os && ne > oe),
            OldLinux => ns < os || (ns == os && ne >= oe),
            Solaris | HpUx11 => ne > oe || (ne == oe && ns <= os),
        }
    }
}

/// An event raised on a packet, named as Suricata names its stream events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StreamEvent {
    /// A copy of buffered, delivered-and-retained bytes carried different data.
    ReassemblyOverlapDifferentData,
    /// Bytes of the stream will never be delivered (loss, bound, flush).
    ReassemblySeqGap,
    /// The direction reached the configured depth.
    ReassemblyDepthReached,
    /// A segment whose bytes are all behind what is still held.
    ReassemblySegmentBeforeBaseSeq,
    /// A segment that adds no byte not seen before.
    PktRetransmission,
    /// An ACK past anything the other side could have sent.
    PktInvalidAck,
    /// ACK number set without the ACK flag.
    PktBrokenAck,
    /// Data past the right edge of the receiver's advertised window.
    EstPacketOutOfWindow,
    /// SYN/ACK that does not acknowledge the SYN.
    ThreeWhsSynackWithWrongAck,
    /// SYN/ACK sent by the side that sent the SYN.
    ThreeWhsSynackInWrongDirection,
    /// SYN/ACK acknowledged the SYN but not the data on it (TFO).
    ThreeWhsSynackTfoDataIgnored,
    /// Final handshake ACK with the right SEQ but a wrong ACK.
    ThreeWhsRightSeqWrongAckEvasion,
    /// Final handshake ACK with wrong SEQ and wrong ACK.
    ThreeWhsWrongSeqWrongAck,
    /// Split handshake: SYN/ACK that does not acknowledge the peer's SYN.
    FourWhsSynackWithWrongAck,
    /// Split handshake: final ACK that does not acknowledge the SYN.
    FourWhsInvalidAck,
    /// RST as the first packet of a session.
    RstButNoSession,
    /// FIN as the first packet of a session.
    FinButNoSession,
    /// An answer to a SYN whose timestamp echo is not the SYN's TSval (the
    /// packet is ignored: an injected RST/FIN must not end the session).
    PktInvalidTimestamp,
    /// More retransmitted SYNs with different timestamps than are
    /// remembered.
    ThreeWhsSynFlood,
}

impl StreamEvent {
    /// Every event.
    pub const ALL: [StreamEvent; 19] = [
        StreamEvent::ReassemblyOverlapDifferentData,
        StreamEvent::ReassemblySeqGap,
        StreamEvent::ReassemblyDepthReached,
        StreamEvent::ReassemblySegmentBeforeBaseSeq,
        StreamEvent::PktRetransmission,
        StreamEvent::PktInvalidAck,
        StreamEvent::PktBrokenAck,
        StreamEvent::EstPacketOutOfWindow,
        StreamEvent::ThreeWhsSynackWithWrongAck,
        StreamEvent::ThreeWhsSynackInWrongDirection,
        StreamEvent::ThreeWhsSynackTfoDataIgnored,
        StreamEvent::ThreeWhsRightSeqWrongAckEvasion,
        StreamEvent::ThreeWhsWrongSeqWrongAck,
        StreamEvent::FourWhsSynackWithWrongAck,
        StreamEvent::FourWhsInvalidAck,
        StreamEvent::RstButNoSession,
        StreamEvent::FinButNoSession,
        StreamEvent::PktInvalidTimestamp,
        StreamEvent::ThreeWhsSynFlood,
    ];

    /// Full name, `stream.` and Suricata's `stream-event` keyword.
    pub fn name(self) -> &'static str {
        match self {
            StreamEvent::ReassemblyOverlapDifferentData => {
                "stream.reassembly_overlap_different_data"
            }
            StreamEvent::ReassemblySeqGap => "stream.reassembly_seq_gap",
            StreamEvent::ReassemblyDepthReached => "stream.reassembly_depth_reached",
            StreamEvent::ReassemblySegmentBeforeBaseSeq => {
                "stream.reassembly_segment_before_base_seq"
            }
            StreamEvent::PktRetransmission => "stream.pkt_retransmission",
            StreamEvent::PktInvalidAck => "stream.pkt_invalid_ack",
            StreamEvent::PktBrokenAck => "stream.pkt_broken_ack",
            StreamEvent::EstPacketOutOfWindow => "stream.est_packet_out_of_window",
            StreamEvent::ThreeWhsSynackWithWrongAck => "stream.3whs_synack_with_wrong_ack",
            StreamEvent::ThreeWhsSynackInWrongDirection => "stream.3whs_synack_in_wrong_direction",
            StreamEvent::ThreeWhsSynackTfoDataIgnored => "stream.3whs_synack_tfo_data_ignored",
            StreamEvent::ThreeWhsRightSeqWrongAckEvasion => {
                "stream.3whs_right_seq_wrong_ack_evasion"
            }
            StreamEvent::ThreeWhsWrongSeqWrongAck => "stream.3whs_wrong_seq_wrong_ack",
            StreamEvent::FourWhsSynackWithWrongAck => "stream.4whs_synack_with_wrong_ack",
            StreamEvent::FourWhsInvalidAck => "stream.4whs_invalid_ack",
            StreamEvent::RstButNoSession => "stream.rst_but_no_session",
            StreamEvent::FinButNoSession => "stream.fin_but_no_session",
            StreamEvent::PktInvalidTimestamp => "stream.pkt_invalid_timestamp",
            StreamEvent::ThreeWhsSynFlood => "stream.3whs_syn_flood",
        }
    }

    /// Whether Suricata's shipped `stream-events.rules` has an active
    /// alerting rule for this event. The others are there as `noalert`
    /// counters (retransmissions, before-base-seq) or commented out as too
    /// noisy (gaps, RST/FIN without session, broken ACK): an output stage
    /// should count them rather than log each one.
    pub fn alerts_by_default(self) -> bool {
        !matches!(
            self,
            StreamEvent::ReassemblySeqGap
                | StreamEvent::ReassemblySegmentBeforeBaseSeq
                | StreamEvent::PktRetransmission
                | StreamEvent::PktBrokenAck
                | StreamEvent::RstButNoSession
                | StreamEvent::FinButNoSession
                | StreamEvent::ReassemblyDepthReached
        )
    }
}

/// Counters of one reassembler; summed over workers for stats.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamCounters {
    /// Sessions created.
    pub sessions: u64,
    /// Segments (packets) fed.
    pub segments: u64,
    /// Segments of sessions not tracked (no SYN and midstream off, RST/FIN
    /// without session, handshake not complete).
    pub not_tracked: u64,
    /// Segments rejected by a check (wrong handshake ACK, invalid ACK, out of
    /// window); each raised an event.
    pub rejected: u64,
    /// RST segments that carried data (not reassembled).
    pub rst_with_data: u64,
    /// Bytes handed to sinks.
    pub bytes_delivered: u64,
    /// Gaps declared (any cause).
    pub gaps: u64,
    /// Bytes skipped by gaps.
    pub gap_bytes: u64,
    /// Gaps forced by the memcap.
    pub memcap_gaps: u64,
    /// Gaps forced by `max_ooo_segments_per_dir`.
    pub segment_limit_gaps: u64,
    /// Segments that overlapped bytes seen before.
    pub overlaps: u64,
    /// Of those, segments whose overlapping bytes differed.
    pub overlaps_different: u64,
    /// Segments that added no byte not seen before.
    pub retransmissions: u64,
    /// Directions that reached the depth.
    pub depth_reached: u64,
    /// Sessions picked up midstream.
    pub midstream_pickups: u64,
    /// Sessions not reassembled because no SYN was seen and midstream is off.
    pub midstream_ignored: u64,
    /// Bytes held now.
    pub mem_used: u64,
    /// Most bytes held at once.
    pub mem_peak: u64,
}

impl StreamCounters {
    /// Adds another reassembler's counters (stats sum the workers').
    pub fn add(&mut self, o: &StreamCounters) {
        self.sessions += o.sessions;
        self.segments += o.segments;
        self.not_tracked += o.not_tracked;
        self.rejected += o.rejected;
        self.rst_with_data += o.rst_with_data;
        self.bytes_delivered += o.bytes_delivered;
        self.gaps += o.gaps;
        self.gap_bytes += o.gap_bytes;
        self.memcap_gaps += o.memcap_gaps;
        self.segment_limit_gaps += o.segment_limit_gaps;
        self.overlaps += o.overlaps;
        self.overlaps_different += o.overlaps_different;
        self.retransmissions += o.retransmissions;
        self.depth_reached += o.depth_reached;
        self.midstream_pickups += o.midstream_pickups;
        self.midstream_ignored += o.midstream_ignored;
        self.mem_used += o.mem_used;
        self.mem_peak += o.mem_peak;
    }
}

/// The reassembler of one worker: configuration, memory accounting, counters.
#[derive(Debug)]
pub struct Reassembler {
    pub(crate) cfg: StreamConfig,
    /// Bytes held by all sessions of this reassembler; sessions hold a clone
    /// and give their share back when dropped.
    pub(crate) mem: Arc<AtomicU64>,
    pub(crate) c: StreamCounters,
}

impl Reassembler {
    /// A reassembler with no sessions.
    pub fn new(cfg: StreamConfig) -> Self {
        Reassembler {
            cfg,
            mem: Arc::new(AtomicU64::new(0)),
            c: StreamCounters::default(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &StreamConfig {
        &self.cfg
    }

    /// A new, empty session for a TCP flow. Its memory is accounted to this
    /// reassembler until it is closed or dropped.
    pub fn new_session(&mut self) -> TcpSession {
        self.c.sessions += 1;
        TcpSession::new(self.mem.clone())
    }

    /// Counters so far (`mem_used` is current).
    pub fn counters(&self) -> StreamCounters {
        let mut c = self.c;
        c.mem_used = self.mem_used();
        c
    }

    /// Bytes held now by all sessions.
    pub fn mem_used(&self) -> u64 {
        self.mem.load(std::sync::atomic::Ordering::Relaxed)
    }
}
