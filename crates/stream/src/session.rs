//! Per-flow state: the two directions and the handshake.

use crate::buffer::{Chunk, History};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use zonewatch_types::Direction;

/// Most retransmitted SYNs with a different timestamp remembered per session
/// (Suricata's `stream.max-syn-queued` default).
pub(crate) const MAX_SYN_QUEUED: usize = 10;

/// Where a session is in its life, as far as reassembly cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SessionState {
    /// Nothing usable seen yet.
    #[default]
    None,
    /// A SYN was seen.
    SynSent,
    /// Both sides' SYNs (or a SYN/ACK) were seen; waiting for the ACKs.
    SynRecv,
    /// Both SYNs acknowledged (or picked up midstream): data is delivered.
    Established,
    /// Not reassembled (no SYN seen and midstream off).
    Ignored,
}

/// One direction of a session.
#[derive(Debug, Default)]
pub(crate) struct Half {
    /// Sequence number of stream offset 0 (ISN + 1), once known.
    pub base: Option<u32>,
    /// This side's SYN was seen (or assumed, midstream).
    pub syn_seen: bool,
    /// The peer acknowledged this side's SYN.
    pub syn_acked: bool,
    /// Window scale offered on this side's SYN (clamped to 14).
    pub wscale: Option<u8>,
    /// Bytes of SYN data held at offset 0 (TFO), until the SYN is acked.
    pub syn_data_len: u64,
    /// Next offset to deliver: everything before it was delivered or gapped.
    pub next: u64,
    /// Buffered runs by start offset; disjoint, all at or after `next`.
    pub chunks: BTreeMap<u64, Chunk>,
    /// Delivered bytes kept for overlap checks.
    pub hist: History,
    /// Highest offset the peer acknowledged.
    pub acked: u64,
    /// Furthest right edge of the window the peer advertised to this side.
    pub right_edge: Option<u64>,
    /// Offset of this side's FIN.
    pub fin: Option<u64>,
    pub depth_reached: bool,
    pub delivered: u64,
    pub gaps: u64,
}

impl Half {
    /// Stream offset of `seq`, unwrapped around the next expected byte
    /// (within +-2^31 of it); negative before offset 0.
    pub fn offset_of(&self, seq: u32) -> i64 {
        let base = self.base.unwrap_or(seq);
        let next_seq = base.wrapping_add(self.next as u32);
        let delta = seq.wrapping_sub(next_seq) as i32 as i64;
        (self.next.min(i64::MAX as u64 / 2) as i64).saturating_add(delta)
    }

    pub fn buffered_bytes(&self) -> u64 {
        self.chunks.values().map(|c| c.data.len() as u64).sum()
    }
}

/// Reassembly state of one TCP flow: both directions, the ISNs, next
/// expected offsets, buffered out-of-order data and depth flags. Memory it
/// holds is accounted to the [`crate::Reassembler`] that made it and given
/// back when it is closed or dropped.
#[derive(Debug)]
pub struct TcpSession {
    pub(crate) h: [Half; 2],
    pub(crate) state: SessionState,
    /// Index of the side that sent the first SYN.
    pub(crate) client: usize,
    pub(crate) four_way: bool,
    pub(crate) midstream: bool,
    pub(crate) async_: bool,
    /// Both SYNs were seen, so window scaling is known.
    pub(crate) ws_known: bool,
    pub(crate) rst_seen: bool,
    /// TSval of the client's latest SYN (`None`: no timestamp option), for
    /// the check of the server's answers in SYN_SENT.
    pub(crate) syn_ts: Option<u32>,
    /// TSvals of earlier SYNs whose timestamp differed (retransmissions),
    /// at most [`MAX_SYN_QUEUED`]; emptied when the SYN is answered.
    pub(crate) syn_ts_queue: Vec<Option<u32>>,
    /// Bytes this session holds.
    pub(crate) mem: u64,
    pub(crate) acct: Arc<AtomicU64>,
}

/// What one direction of a session has done so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HalfStats {
    /// Initial sequence number (the SYN's; midstream: SEQ - 1 of the first
    /// byte), once known.
    pub isn: Option<u32>,
    /// Next stream offset to deliver.
    pub next_offset: u64,
    /// Bytes delivered.
    pub delivered: u64,
    /// Gaps declared.
    pub gaps: u64,
    /// Bytes buffered out of order.
    pub buffered_bytes: u64,
    /// Runs buffered out of order.
    pub buffered_segments: usize,
    /// Delivered bytes retained for overlap checks.
    pub retained_bytes: u64,
    /// The depth was reached.
    pub depth_reached: bool,
    /// A FIN was seen.
    pub fin_seen: bool,
    /// Highest stream offset of this direction the peer acknowledged.
    pub acked: u64,
}

pub(crate) fn idx(dir: Direction) -> usize {
    match dir {
        Direction::ToServer => 0,
        Direction::ToClient => 1,
    }
}

pub(crate) fn dir_of(i: usize) -> Direction {
    if i == 0 {
        Direction::ToServer
    } else {
        Direction::ToClient
    }
}

impl TcpSession {
    pub(crate) fn new(acct: Arc<AtomicU64>) -> Self {
        TcpSession {
            h: [Half::default(), Half::default()],
            state: SessionState::None,
            client: 0,
            four_way: false,
            midstream: false,
            async_: false,
            ws_known: false,
            rst_seen: false,
            syn_ts: None,
            syn_ts_queue: Vec::new(),
            mem: 0,
            acct,
        }
    }

    /// Where the session is.
    pub fn state(&self) -> SessionState {
        self.state
    }

    /// Picked up without a handshake.
    pub fn is_midstream(&self) -> bool {
        self.midstream
    }

    /// Established without seeing the other side's answer (one-sided
    /// capture, [`crate::StreamConfig::async_oneside`]).
    pub fn is_async(&self) -> bool {
        self.async_
    }

    /// A RST was seen.
    pub fn rst_seen(&self) -> bool {
        self.rst_seen
    }

    /// The direction of the side that sent the first SYN (midstream: of the
    /// packet the session was picked up on, or the peer of a SYN/ACK).
    pub fn client_direction(&self) -> Direction {
        dir_of(self.client)
    }

    /// Bytes this session holds (buffered, retained, SYN data).
    pub fn mem_bytes(&self) -> u64 {
        self.mem
    }

    /// What direction `dir` has done so far.
    pub fn half(&self, dir: Direction) -> HalfStats {
        let h = &self.h[idx(dir)];
        HalfStats {
            isn: h.base.map(|b| b.wrapping_sub(1)),
            next_offset: h.next,
            delivered: h.delivered,
            gaps: h.gaps,
            buffered_bytes: h.buffered_bytes(),
            buffered_segments: h.chunks.len(),
            retained_bytes: h.hist.len(),
            depth_reached: h.depth_reached,
            fin_seen: h.fin.is_some(),
            acked: h.acked,
        }
    }
}

impl Drop for TcpSession {
    fn drop(&mut self) {
        self.acct.fetch_sub(self.mem, Ordering::Relaxed);
    }
}
