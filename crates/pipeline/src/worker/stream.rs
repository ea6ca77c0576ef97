//! The stream stage: TCP sessions of the worker's flows and their
//! reassembly; what one packet made contiguous waits in [`StreamOutput`]
//! for the app layer and the signatures.

use super::PacketCtx;
use crate::stats::WorkerStats;
use zonewatch_decode::TcpInfo;
use zonewatch_stream::{Reassembler, SessionState, StreamConfig, StreamEvent, TcpSession};
use zonewatch_types::{AnomalyRecord, Direction, Event, EventBody, EventKey};

/// Bytes one TCP session may cost at worst: the boxed session, the
/// allocator's overhead, and its index entry at the lowest load factor.
pub(super) const SESSION_COST_BYTES: u64 =
    (std::mem::size_of::<TcpSession>() + 16 + (16 + 1) * 16 / 7) as u64;

/// Reassembled bytes this packet made contiguous in one direction; the
/// bytes sit in [`StreamOutput::buf`].
#[derive(Debug, Clone, Copy)]
pub(super) struct ChunkRef {
    /// Client to server.
    pub to_server: bool,
    /// Stream offset of the first byte.
    pub offset: u64,
    /// Where the bytes start in [`StreamOutput::buf`].
    start: u32,
    len: u32,
}

impl ChunkRef {
    /// The direction of the bytes.
    pub fn dir(&self) -> Direction {
        if self.to_server {
            Direction::ToServer
        } else {
            Direction::ToClient
        }
    }
    /// Stream offset just past the bytes.
    pub fn end(&self) -> u64 {
        self.offset + self.len as u64
    }
}

/// What the stream stage made of one packet (cleared per packet; the
/// buffers are reused).
#[derive(Default)]
pub(super) struct StreamOutput {
    pub chunks: Vec<ChunkRef>,
    buf: Vec<u8>,
    /// Names of the stream events the packet raised.
    pub names: Vec<&'static str>,
    /// The packet's payload went into an established session.
    pub in_stream: bool,
    /// The session's stream sizes after this packet (client, server).
    pub sizes: Option<[u64; 2]>,
}

impl StreamOutput {
    fn clear(&mut self) {
        self.chunks.clear();
        self.buf.clear();
        self.names.clear();
        self.in_stream = false;
        self.sizes = None;
    }
    /// The bytes of a chunk.
    pub fn data(&self, c: &ChunkRef) -> &[u8] {
        &self.buf[c.start as usize..(c.start + c.len) as usize]
    }
}

pub(super) struct StreamStage {
    reasm: Reassembler,
    /// The sessions of this worker's TCP flows, by flow id.
    sessions: hashbrown::HashMap<u64, Box<TcpSession>>,
    /// Most sessions this worker holds (its share of `stream.memcap`).
    max_sessions: usize,
    /// Keep reassembled bytes (for the app layer or signatures).
    keep_bytes: bool,
    /// Scratch for the reassembler's events.
    events: Vec<StreamEvent>,
    pub out: StreamOutput,
}

impl StreamStage {
    pub fn new(cfg: StreamConfig, max_sessions: usize, keep_bytes: bool) -> Self {
        StreamStage {
            reasm: Reassembler::new(cfg),
            sessions: hashbrown::HashMap::new(),
            max_sessions,
            keep_bytes,
            events: Vec::new(),
            out: StreamOutput::default(),
        }
    }

    pub fn begin_packet(&mut self) {
        self.out.clear();
    }

    /// Feeds one TCP segment to its flow's session; stream events become
    /// anomaly events of the packet.
    #[allow(clippy::too_many_arguments)]
    pub fn segment(
        &mut self,
        ctx: &PacketCtx<'_>,
        flow_id: u64,
        dir: Direction,
        tcp: &TcpInfo,
        payload: &[u8],
        events: &mut Vec<Event>,
        stats: &mut WorkerStats,
    ) {
        if !self.sessions.contains_key(&flow_id) {
            if self.sessions.len() >= self.max_sessions {
                // At the stream memcap no new session starts (Suricata:
                // tcp.ssn_memcap_drop); the flow is still tracked.
                stats.ssn_memcap_drop += 1;
                return;
            }
            let s = Box::new(self.reasm.new_session());
            self.sessions.insert(flow_id, s);
        }
        let s = self.sessions.get_mut(&flow_id).expect("just ensured");
        self.events.clear();
        let keep = self.keep_bytes;
        let out = &mut self.out;
        let (buf, chunks) = (&mut out.buf, &mut out.chunks);
        self.reasm.segment(
            s,
            dir,
            tcp,
            payload,
            &mut self.events,
            &mut |d, off, data| {
                if keep && !data.is_empty() {
                    chunks.push(ChunkRef {
                        to_server: d == Direction::ToServer,
                        offset: off,
                        start: buf.len() as u32,
                        len: data.len() as u32,
                    });
                    buf.extend_from_slice(data);
                }
            },
        );
        out.in_stream = s.state() == SessionState::Established;
        out.sizes = Some([
            s.half(Direction::ToServer).next_offset + 1,
            s.half(Direction::ToClient).next_offset + 1,
        ]);
        out.names.extend(self.events.iter().map(|e| e.name()));
        if self.events.is_empty() {
            return;
        }
        let mut sub = super::next_sub(events, ctx.meta.pos);
        for e in &self.events {
            *stats.stream_events.entry(e.name()).or_default() += 1;
            // Events whose Suricata rules are `noalert` counters (gaps,
            // retransmissions, ...) are counted only, as Suricata does.
            if !e.alerts_by_default() {
                continue;
            }
            events.push(Event {
                key: EventKey {
                    pos: ctx.meta.pos,
                    sub,
                },
                ts: ctx.meta.ts,
                flow_id: Some(flow_id),
                addr: ctx.addr,
                community_id: None,
                in_iface: None,
                body: EventBody::Anomaly(AnomalyRecord {
                    app_proto: None,
                    kind: "stream",
                    event: e.name(),
                }),
            });
            sub += 1;
        }
    }

    /// The session is established in the stream engine's view: one whose
    /// segments it took (not one made of segments with bad checksums).
    pub fn established(&self, flow_id: u64) -> bool {
        self.sessions
            .get(&flow_id)
            .is_some_and(|s| s.state() == SessionState::Established)
    }

    /// The session was picked up midstream and is established.
    pub fn picked_up(&self, flow_id: u64) -> bool {
        self.sessions
            .get(&flow_id)
            .is_some_and(|s| s.is_midstream() && s.state() == SessionState::Established)
    }

    /// Whether the data of direction `half` up to stream offset `end` counts
    /// as acknowledged on a packet (`from_peer`: sent by the other side):
    /// always for an asynchronous session or without one.
    pub fn acked(&self, flow_id: u64, half: Direction, end: u64, from_peer: bool) -> bool {
        match self.sessions.get(&flow_id) {
            Some(s) => s.is_async() || from_peer && s.half(half).acked >= end,
            None => true,
        }
    }

    /// Releases a flow's session (what is buffered past holes is flushed,
    /// as gaps).
    pub fn close(&mut self, flow_id: u64, stats: &mut WorkerStats) {
        if let Some(s) = self.sessions.remove(&flow_id) {
            self.events.clear();
            self.reasm.close(*s, &mut self.events, &mut |_, _, _| {});
            for e in &self.events {
                *stats.stream_events.entry(e.name()).or_default() += 1;
            }
        }
    }

    pub fn counters(&self) -> zonewatch_stream::StreamCounters {
        self.reasm.counters()
    }
}
