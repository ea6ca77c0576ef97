//! The per-packet logic: handshake, ACK and window tracking, insertion with
//! the overlap policy, delivery, gaps and bounds.

use crate::buffer::Chunk;
use crate::session::{dir_of, idx, SessionState, TcpSession, MAX_SYN_QUEUED};
use crate::{Reassembler, StreamEvent as E};
use std::sync::atomic::Ordering;
use zonewatch_decode::tcp_flags::{ACK, FIN, RST, SYN};
use zonewatch_decode::TcpInfo;
use zonewatch_types::Direction;

/// The sink bytes are delivered to.
type Sink<'a> = &'a mut dyn FnMut(Direction, u64, &[u8]);

/// Longest payload considered (a TCP segment cannot use more of the
/// sequence space; real ones are at most a few hundred KiB with GRO).
const MAX_PAYLOAD: usize = 1 << 30;
/// RFC 7323 cap on the window shift; also what an unknown shift is taken as.
const MAX_WSCALE: u8 = 14;

/// What the handshake stage decided about a packet.
enum Step {
    /// Consumed by the handshake logic.
    Done,
    /// Not part of a tracked session.
    NotTracked,
    /// Failed a check (an event was raised).
    Rejected,
    /// Process as a packet of an established session.
    Proceed,
}

#[derive(Clone, Copy)]
enum GapCause {
    Ack,
    Memcap,
    SegmentLimit,
    Close,
}

fn push_piece(pieces: &mut Vec<(u64, u64)>, a: u64, b: u64) {
    match pieces.last_mut() {
        Some(last) if last.1 == a => last.1 = b,
        _ => pieces.push((a, b)),
    }
}

impl Reassembler {
    /// Feeds one TCP segment of the flow in direction `dir` (`ToServer` =
    /// from the flow's first sender). `payload` is the segment's captured
    /// payload. Newly contiguous bytes go to `sink` in order as
    /// `(dir, stream offset, bytes)` before this returns (also bytes of the
    /// other direction, when this packet's ACK declares a gap there); events
    /// are appended to `events`.
    pub fn segment(
        &mut self,
        s: &mut TcpSession,
        dir: Direction,
        tcp: &TcpInfo,
        payload: &[u8],
        events: &mut Vec<crate::StreamEvent>,
        sink: &mut dyn FnMut(Direction, u64, &[u8]),
    ) {
        self.c.segments += 1;
        let d = idx(dir);
        let payload = &payload[..payload.len().min(MAX_PAYLOAD)];
        if tcp.flags & ACK == 0 && tcp.ack != 0 {
            events.push(E::PktBrokenAck);
        }
        let step = match s.state {
            SessionState::Ignored => Step::NotTracked,
            SessionState::None => self.start(s, d, tcp, payload, events, sink),
            SessionState::SynSent => self.syn_sent(s, d, tcp, payload, events, sink),
            SessionState::SynRecv => self.syn_recv(s, d, tcp, payload, events, sink),
            SessionState::Established => Step::Proceed,
        };
        let step = match step {
            Step::Proceed => self.established(s, d, tcp, payload, events, sink),
            other => other,
        };
        match step {
            Step::NotTracked => self.c.not_tracked += 1,
            Step::Rejected => self.c.rejected += 1,
            Step::Done | Step::Proceed => {}
        }
    }

    /// Flow ended (timeout, shutdown, eviction): with `flush_on_close` and an
    /// established session, what is still buffered past holes is delivered,
    /// each hole counted as a gap; then the session's memory is released.
    pub fn close(
        &mut self,
        mut s: TcpSession,
        events: &mut Vec<crate::StreamEvent>,
        sink: &mut dyn FnMut(Direction, u64, &[u8]),
    ) {
        if self.cfg.flush_on_close && s.state == SessionState::Established {
            for d in 0..2 {
                let mut guard = s.h[d].chunks.len() + 1;
                while guard > 0 && self.force_gap(&mut s, d, GapCause::Close, events, sink) {
                    guard -= 1;
                }
            }
        }
        drop(s);
    }

    // ---- handshake -------------------------------------------------------

    /// First packet of a session.
    fn start(
        &mut self,
        s: &mut TcpSession,
        d: usize,
        tcp: &TcpInfo,
        payload: &[u8],
        ev: &mut Vec<E>,
        sink: Sink,
    ) -> Step {
        let f = tcp.flags;
        let (syn, ack) = (f & SYN != 0, f & ACK != 0);
        let o = 1 - d;
        if f & RST != 0 {
            ev.push(E::RstButNoSession);
            return Step::NotTracked;
        }
        if f & FIN != 0 && !syn {
            ev.push(E::FinButNoSession);
            return Step::NotTracked;
        }
        if syn && !ack {
            s.client = d;
            s.syn_ts = tcp.timestamp.map(|t| t.0);
            let h = &mut s.h[d];
            h.base = Some(tcp.seq.wrapping_add(1));
            h.syn_seen = true;
            h.wscale = tcp.wscale.map(|w| w.min(MAX_WSCALE));
            s.state = SessionState::SynSent;
            // Data on a SYN is kept only with a Fast Open option, as in
            // Suricata: without it the data is not the application's (a
            // SYN/ACK acknowledging it then has the wrong ACK).
            if tcp.tfo {
                self.syn_payload(s, d, payload, ev, sink);
            }
            return Step::Done;
        }
        if !ack {
            return Step::NotTracked;
        }
        if !self.cfg.midstream {
            s.state = SessionState::Ignored;
            self.c.midstream_ignored += 1;
            return Step::NotTracked;
        }
        self.c.midstream_pickups += 1;
        s.midstream = true;
        if syn {
            // SYN/ACK first: its sender is the server.
            s.client = o;
            let h = &mut s.h[d];
            h.base = Some(tcp.seq.wrapping_add(1));
            h.syn_seen = true;
            h.wscale = tcp.wscale.map(|w| w.min(MAX_WSCALE));
            let c = &mut s.h[o];
            c.base = Some(tcp.ack);
            c.syn_seen = true;
            c.syn_acked = true;
            c.right_edge = Some(tcp.window as u64);
            s.state = SessionState::SynRecv;
            self.syn_payload(s, d, payload, ev, sink);
            Step::Done
        } else {
            s.client = d;
            s.h[d].base = Some(tcp.seq);
            s.h[o].base = Some(tcp.ack);
            for h in &mut s.h {
                h.syn_seen = true;
                h.syn_acked = true;
            }
            s.state = SessionState::Established;
            Step::Proceed
        }
    }

    /// Holds the data of a SYN or SYN/ACK at offset 0 (delivered once the
    /// handshake completes, if the peer acknowledges it).
    fn syn_payload(
        &mut self,
        s: &mut TcpSession,
        d: usize,
        payload: &[u8],
        ev: &mut Vec<E>,
        sink: Sink,
    ) {
        if payload.is_empty() || s.h[d].syn_data_len > 0 {
            return;
        }
        s.h[d].syn_data_len = payload.len() as u64;
        self.data(s, d, 0, payload, ev, sink);
    }

    /// Client SYN seen.
    fn syn_sent(
        &mut self,
        s: &mut TcpSession,
        d: usize,
        tcp: &TcpInfo,
        payload: &[u8],
        ev: &mut Vec<E>,
        sink: Sink,
    ) -> Step {
        let f = tcp.flags;
        let (syn, ack, rst) = (f & SYN != 0, f & ACK != 0, f & RST != 0);
        let c = s.client;
        let o = 1 - c;
        if d != c && !(syn && ack) && !syn_sent_ts_ok(s, tcp) {
            // Suricata's "check for bad responses" in SYN_SENT: an answer
            // (RST, FIN, ...) that does not echo the SYN's timestamp is not
            // the server's; it must not tear the session down.
            ev.push(E::PktInvalidTimestamp);
            return Step::Rejected;
        }
        if rst {
            s.rst_seen = true;
            if !payload.is_empty() {
                self.c.rst_with_data += 1;
            }
            return Step::Done;
        }
        if d == c {
            if syn && ack {
                ev.push(E::ThreeWhsSynackInWrongDirection);
                return Step::Rejected;
            }
            if syn {
                let ts = tcp.timestamp.map(|t| t.0);
                if ts != s.syn_ts {
                    // A retransmitted SYN with another timestamp: the server
                    // may answer either one (Suricata's SYN queue).
                    if !s.syn_ts_queue.contains(&s.syn_ts) {
                        if s.syn_ts_queue.len() < MAX_SYN_QUEUED {
                            s.syn_ts_queue.push(s.syn_ts);
                        } else {
                            ev.push(E::ThreeWhsSynFlood);
                        }
                    }
                    s.syn_ts = ts;
                }
                let base = tcp.seq.wrapping_add(1);
                if s.h[c].base != Some(base) {
                    // A new connection attempt with another ISN.
                    self.clear_half(s, c);
                    let h = &mut s.h[c];
                    h.base = Some(base);
                    h.syn_seen = true;
                    h.wscale = tcp.wscale.map(|w| w.min(MAX_WSCALE));
                }
                if tcp.tfo {
                    self.syn_payload(s, c, payload, ev, sink);
                }
                return Step::Done;
            }
            if ack && self.cfg.async_oneside {
                // One-sided capture: the SYN/ACK is not visible.
                let h = &mut s.h[o];
                h.base = Some(tcp.ack);
                h.syn_seen = true;
                h.syn_acked = true;
                let l = s.h[c].syn_data_len;
                if l > 0 && s.h[c].offset_of(tcp.seq) != l as i64 {
                    self.drop_chunks(s, c);
                    s.h[c].syn_data_len = 0;
                }
                s.h[c].syn_acked = true;
                s.async_ = true;
                return self.establish(s, ev, sink, Step::Proceed);
            }
            return Step::NotTracked;
        }
        if syn && ack {
            if !acks_syn(s, c, tcp.ack) {
                ev.push(E::ThreeWhsSynackWithWrongAck);
                return Step::Rejected;
            }
            if !syn_sent_ts_ok(s, tcp) {
                // The echo may be of an earlier (retransmitted) SYN.
                let echo = tcp.timestamp.map(|t| t.1);
                if !s.syn_ts_queue.contains(&echo) {
                    ev.push(E::PktInvalidTimestamp);
                    return Step::Rejected;
                }
                s.syn_ts = echo;
            }
            s.syn_ts_queue = Vec::new();
            let acked = self.ack_syn(s, c, tcp.ack, true, ev);
            debug_assert!(acked, "checked by acks_syn");
            self.server_syn(s, o, tcp);
            let edge = s.h[c].offset_of(tcp.ack).max(0) as u64 + tcp.window as u64;
            s.h[c].right_edge = Some(edge);
            s.state = SessionState::SynRecv;
            self.syn_payload(s, o, payload, ev, sink);
            return Step::Done;
        }
        if syn {
            // Split handshake or simultaneous open: the peer sends its own SYN.
            self.server_syn(s, o, tcp);
            s.four_way = true;
            s.state = SessionState::SynRecv;
            self.syn_payload(s, o, payload, ev, sink);
            return Step::Done;
        }
        Step::NotTracked
    }

    fn server_syn(&mut self, s: &mut TcpSession, o: usize, tcp: &TcpInfo) {
        let h = &mut s.h[o];
        h.base = Some(tcp.seq.wrapping_add(1));
        h.syn_seen = true;
        h.wscale = tcp.wscale.map(|w| w.min(MAX_WSCALE));
        s.ws_known = true;
    }

    /// Both SYNs seen (or a SYN/ACK picked up); waiting for the ACKs.
    fn syn_recv(
        &mut self,
        s: &mut TcpSession,
        d: usize,
        tcp: &TcpInfo,
        payload: &[u8],
        ev: &mut Vec<E>,
        sink: Sink,
    ) -> Step {
        let f = tcp.flags;
        let (syn, ack, rst) = (f & SYN != 0, f & ACK != 0, f & RST != 0);
        let y = 1 - d;
        if rst {
            s.rst_seen = true;
            if !payload.is_empty() {
                self.c.rst_with_data += 1;
            }
            return Step::Done;
        }
        if syn && !ack {
            // A retransmitted SYN; its data was held the first time.
            return Step::Done;
        }
        if !ack {
            return Step::NotTracked;
        }
        if !s.h[y].syn_acked {
            if !self.ack_syn(s, y, tcp.ack, syn, ev) {
                let e = if syn && s.four_way {
                    E::FourWhsSynackWithWrongAck
                } else if syn {
                    E::ThreeWhsSynackWithWrongAck
                } else if s.four_way {
                    E::FourWhsInvalidAck
                } else if s.h[d].offset_of(tcp.seq) == s.h[d].syn_data_len as i64 {
                    E::ThreeWhsRightSeqWrongAckEvasion
                } else {
                    E::ThreeWhsWrongSeqWrongAck
                };
                ev.push(e);
                return Step::Rejected;
            }
        } else if !s.h[d].syn_acked && !syn {
            // The side whose SYN is not acknowledged yet sends before the
            // final ACK was seen.
            if !self.cfg.async_oneside {
                return Step::NotTracked;
            }
            s.h[d].syn_acked = true;
            s.async_ = true;
        }
        if syn && !s.h[d].syn_seen {
            self.server_syn(s, d, tcp);
        }
        if s.h[0].syn_acked && s.h[1].syn_acked {
            let next = if syn { Step::Done } else { Step::Proceed };
            return self.establish(s, ev, sink, next);
        }
        Step::Done
    }

    /// The handshake completed: deliver what was held (SYN data).
    fn establish(&mut self, s: &mut TcpSession, ev: &mut Vec<E>, sink: Sink, step: Step) -> Step {
        s.state = SessionState::Established;
        self.drain(s, 0, ev, sink);
        self.drain(s, 1, ev, sink);
        step
    }

    /// Checks an ACK of side `y`'s SYN (and TFO data); marks it acknowledged.
    /// The check is [`acks_syn`].
    fn ack_syn(
        &mut self,
        s: &mut TcpSession,
        y: usize,
        ack: u32,
        is_synack: bool,
        ev: &mut Vec<E>,
    ) -> bool {
        let Some(base) = s.h[y].base else {
            return false;
        };
        let l = s.h[y].syn_data_len;
        if l > 0 && ack == base.wrapping_add(l as u32) {
            s.h[y].syn_acked = true;
            return true;
        }
        if ack != base {
            return false;
        }
        if l > 0 {
            if is_synack {
                ev.push(E::ThreeWhsSynackTfoDataIgnored);
            }
            self.drop_chunks(s, y);
            s.h[y].syn_data_len = 0;
        }
        s.h[y].syn_acked = true;
        true
    }

    // ---- established -----------------------------------------------------

    fn scale(&self, s: &TcpSession, x: usize) -> u8 {
        if !s.ws_known {
            return MAX_WSCALE;
        }
        match (s.h[0].wscale, s.h[1].wscale) {
            (Some(_), Some(_)) => s.h[x].wscale.unwrap_or(0),
            _ => 0,
        }
    }

    fn established(
        &mut self,
        s: &mut TcpSession,
        d: usize,
        tcp: &TcpInfo,
        payload: &[u8],
        ev: &mut Vec<E>,
        sink: Sink,
    ) -> Step {
        let f = tcp.flags;
        let (syn, ack, rst, fin) = (f & SYN != 0, f & ACK != 0, f & RST != 0, f & FIN != 0);
        let o = 1 - d;
        let last_ack = s.h[o].acked;
        let mut ack_off = None;
        if ack {
            let a = s.h[o].offset_of(tcp.ack);
            if let Some(edge) = s.h[o].right_edge {
                // +1: the ACK of a FIN.
                if a > (edge.min(i64::MAX as u64 / 2) as i64).saturating_add(1) {
                    ev.push(E::PktInvalidAck);
                    return Step::Rejected;
                }
            }
            ack_off = Some(a.max(0) as u64);
        }
        let data_seq = if syn {
            tcp.seq.wrapping_add(1)
        } else {
            tcp.seq
        };
        let start = s.h[d].offset_of(data_seq);
        let end = start.saturating_add(payload.len() as i64);
        if !payload.is_empty() && !rst {
            if let Some(edge) = s.h[d].right_edge {
                let edge = edge.min(i64::MAX as u64 / 2) as i64;
                if end > edge {
                    // A zero-window probe (one byte at the closed window's
                    // edge) is normal; the receiver drops it. Not inspected.
                    if payload.len() == 1 && start == edge {
                        return Step::Done;
                    }
                    ev.push(E::EstPacketOutOfWindow);
                    return Step::Rejected;
                }
            }
        }
        if let Some(a) = ack_off {
            if !syn {
                let win = (tcp.window as u64) << self.scale(s, d);
                let edge = a.saturating_add(win);
                let h = &mut s.h[o];
                h.right_edge = Some(h.right_edge.map_or(edge, |e| e.max(edge)));
            }
            self.on_ack(s, o, a, ev, sink);
        }
        if rst {
            s.rst_seen = true;
            if !payload.is_empty() {
                self.c.rst_with_data += 1;
            }
            return Step::Done;
        }
        if fin {
            s.h[d].fin = Some(end.max(0) as u64);
        }
        // A keep-alive (Suricata's test): at most one (garbage) byte at SEQ =
        // next - 1, repeating the last ACK. Not data, and not an overlap with
        // different data.
        let next = s.h[d].next;
        let keepalive = payload.len() == 1
            && !syn
            && !fin
            && next > 0
            && start == next as i64 - 1
            && ack_off == Some(last_ack);
        if !payload.is_empty() && !keepalive {
            self.data(s, d, start, payload, ev, sink);
        }
        Step::Done
    }

    /// The peer acknowledged side `y` up to offset `a`.
    fn on_ack(&mut self, s: &mut TcpSession, y: usize, a: u64, ev: &mut Vec<E>, sink: Sink) {
        let h = &mut s.h[y];
        if a > h.acked {
            h.acked = a;
        }
        if a > h.hist.start {
            let n = a.min(h.hist.end()) - h.hist.start;
            let released = h.hist.drop_front(n);
            self.release(&mut s.mem, released);
        }
        // A hole the receiver has acknowledged, with data after it that we
        // hold, will never be filled: declare it a gap.
        let mut guard = s.h[y].chunks.len() + 1;
        while guard > 0 {
            guard -= 1;
            let h = &s.h[y];
            let Some(&first) = h.chunks.keys().next() else {
                break;
            };
            if a <= h.next || h.depth_reached {
                break;
            }
            self.gap(s, y, first.min(a), GapCause::Ack, ev);
            self.drain(s, y, ev, sink);
        }
    }

    // ---- reassembly ------------------------------------------------------

    /// Data of side `d` whose first byte is at offset `start` (may be
    /// negative: before the ISN).
    fn data(
        &mut self,
        s: &mut TcpSession,
        d: usize,
        start: i64,
        payload: &[u8],
        ev: &mut Vec<E>,
        sink: Sink,
    ) {
        let end = start.saturating_add(payload.len() as i64);
        if end <= 0 {
            self.c.retransmissions += 1;
            ev.push(E::ReassemblySegmentBeforeBaseSeq);
            return;
        }
        let (start, payload) = if start < 0 {
            let cut = (start.unsigned_abs() as usize).min(payload.len());
            (0u64, &payload[cut..])
        } else {
            (start as u64, payload)
        };
        let end = start + payload.len() as u64;
        if s.h[d].depth_reached {
            return;
        }
        let limit = if self.cfg.depth == 0 {
            u64::MAX
        } else {
            self.cfg.depth
        };
        let next = s.h[d].next;
        let mut overlapped = false;
        let mut different = false;
        if start < next {
            overlapped = true;
            let h = &s.h[d];
            let a = start.max(h.hist.start);
            let b = end.min(h.hist.end());
            let held = a < b;
            if held && h.hist.slice(a, b) != &payload[(a - start) as usize..(b - start) as usize] {
                different = true;
            }
            if end <= next {
                self.c.retransmissions += 1;
                ev.push(if held {
                    E::PktRetransmission
                } else {
                    E::ReassemblySegmentBeforeBaseSeq
                });
                self.note_overlap(overlapped, different, ev);
                return;
            }
        }
        let ns = start.max(next);
        let ne = end.min(limit);
        if ns < ne {
            let new_bytes = self.insert(
                s,
                d,
                (start, end),
                payload,
                (ns, ne),
                (&mut overlapped, &mut different),
                ev,
                sink,
            );
            if new_bytes == 0 {
                self.c.retransmissions += 1;
                ev.push(E::PktRetransmission);
            }
        }
        self.note_overlap(overlapped, different, ev);
        self.enforce_bounds(s, d, ev, sink);
    }

    fn note_overlap(&mut self, overlapped: bool, different: bool, ev: &mut Vec<E>) {
        if overlapped {
            self.c.overlaps += 1;
        }
        if different {
            self.c.overlaps_different += 1;
            ev.push(E::ReassemblyOverlapDifferentData);
        }
    }

    /// Inserts `[ns, ne)` of a segment spanning `origin` (payload[0] is at
    /// `origin.0`), applying the overlap policy against buffered runs;
    /// delivers what is contiguous. Returns the bytes never seen before.
    #[allow(clippy::too_many_arguments)]
    fn insert(
        &mut self,
        s: &mut TcpSession,
        d: usize,
        origin: (u64, u64),
        payload: &[u8],
        (ns, ne): (u64, u64),
        (overlapped, different): (&mut bool, &mut bool),
        ev: &mut Vec<E>,
        sink: Sink,
    ) -> u64 {
        let p0 = origin.0;
        let slice = |a: u64, b: u64| (a - p0) as usize..(b - p0) as usize;
        let open = s.state == SessionState::Established;
        if s.h[d].chunks.is_empty() {
            let piece = &payload[slice(ns, ne)];
            if open && ns == s.h[d].next {
                self.deliver(s, d, piece, ev, sink);
            } else {
                self.put(s, d, ns, piece, origin);
            }
            return ne - ns;
        }
        let policy = self.cfg.policy;
        let mut pieces: Vec<(u64, u64)> = Vec::new();
        let mut replaced: Vec<(u64, u64, u64)> = Vec::new();
        let mut new_bytes = 0;
        let mut cursor = ns;
        {
            let h = &s.h[d];
            let before = h
                .chunks
                .range(..ns)
                .next_back()
                .filter(|(k, c)| **k + c.data.len() as u64 > ns);
            for (&k, c) in before.into_iter().chain(h.chunks.range(ns..ne)) {
                let ce = k + c.data.len() as u64;
                let (a, b) = (k.max(ns), ce.min(ne));
                if a >= b {
                    continue;
                }
                if cursor < a {
                    push_piece(&mut pieces, cursor, a);
                    new_bytes += a - cursor;
                }
                *overlapped = true;
                if c.data[(a - k) as usize..(b - k) as usize] != payload[slice(a, b)] {
                    *different = true;
                }
                if policy.new_data_wins(origin.0, origin.1, c.origin.0, c.origin.1) {
                    replaced.push((k, a, b));
                    push_piece(&mut pieces, a, b);
                }
                cursor = b;
            }
        }
        if cursor < ne {
            push_piece(&mut pieces, cursor, ne);
            new_bytes += ne - cursor;
        }
        for (k, a, b) in replaced {
            let Some(c) = s.h[d].chunks.remove(&k) else {
                continue;
            };
            self.release(&mut s.mem, c.cost());
            let ce = k + c.data.len() as u64;
            if k < a {
                self.put(s, d, k, &c.data[..(a - k) as usize], c.origin);
            }
            if b < ce {
                self.put(s, d, b, &c.data[(b - k) as usize..], c.origin);
            }
        }
        for (a, b) in pieces {
            let next = s.h[d].next;
            if s.h[d].depth_reached || b <= next {
                continue;
            }
            let a = a.max(next);
            let piece = &payload[slice(a, b)];
            if open && a == next {
                self.deliver(s, d, piece, ev, sink);
                self.drain(s, d, ev, sink);
            } else {
                self.put(s, d, a, piece, origin);
            }
        }
        new_bytes
    }

    /// Buffers a run.
    fn put(&mut self, s: &mut TcpSession, d: usize, off: u64, data: &[u8], origin: (u64, u64)) {
        if data.is_empty() {
            return;
        }
        let c = Chunk {
            data: data.into(),
            origin,
        };
        self.charge(&mut s.mem, c.cost());
        if let Some(old) = s.h[d].chunks.insert(off, c) {
            self.release(&mut s.mem, old.cost());
        }
    }

    /// Delivers buffered runs that are now contiguous (once established).
    fn drain(&mut self, s: &mut TcpSession, d: usize, ev: &mut Vec<E>, sink: Sink) {
        if s.state != SessionState::Established {
            return;
        }
        loop {
            let h = &mut s.h[d];
            if h.depth_reached {
                break;
            }
            let Some(entry) = h.chunks.first_entry() else {
                break;
            };
            let k = *entry.key();
            let next = h.next;
            if k > next {
                break;
            }
            let c = entry.remove();
            self.release(&mut s.mem, c.cost());
            let skip = (next - k) as usize;
            if skip < c.data.len() {
                self.deliver(s, d, &c.data[skip..], ev, sink);
            }
        }
    }

    /// Hands bytes at the next offset to the sink.
    fn deliver(&mut self, s: &mut TcpSession, d: usize, data: &[u8], ev: &mut Vec<E>, sink: Sink) {
        if data.is_empty() {
            return;
        }
        let off = s.h[d].next;
        let len = data.len() as u64;
        sink(dir_of(d), off, data);
        let h = &mut s.h[d];
        h.next = off + len;
        h.delivered += len;
        self.c.bytes_delivered += len;
        self.retain(s, d, off, data);
        self.check_depth(s, d, ev);
    }

    /// Keeps delivered, unacknowledged bytes for overlap checks, within
    /// `retain_unacked_bytes` and the memcap.
    fn retain(&mut self, s: &mut TcpSession, d: usize, off: u64, data: &[u8]) {
        let cap = self.cfg.retain_unacked_bytes;
        let memcap = self.cfg.memcap_bytes;
        let end = off + data.len() as u64;
        let h = &mut s.h[d];
        let from = off.max(h.acked).max(end.saturating_sub(cap)).min(end);
        if from == end || h.hist.end() != from {
            let released = h.hist.clear_to(from);
            self.release(&mut s.mem, released);
        }
        if from == end {
            return;
        }
        let add = end - from;
        let over = (h.hist.len() + add).saturating_sub(cap);
        let released = h.hist.drop_front(over);
        self.release(&mut s.mem, released);
        if memcap > 0 {
            let used = self.mem_used();
            if used + add > memcap {
                let released = h.hist.drop_front(used + add - memcap);
                self.release(&mut s.mem, released);
                if self.mem_used() + add > memcap {
                    let released = h.hist.clear_to(end);
                    self.release(&mut s.mem, released);
                    return;
                }
            }
        }
        h.hist.push(&data[(from - off) as usize..]);
        self.charge(&mut s.mem, add);
    }

    fn check_depth(&mut self, s: &mut TcpSession, d: usize, ev: &mut Vec<E>) {
        let depth = self.cfg.depth;
        let h = &mut s.h[d];
        if depth == 0 || h.depth_reached || h.next < depth {
            return;
        }
        h.depth_reached = true;
        ev.push(E::ReassemblyDepthReached);
        self.c.depth_reached += 1;
        let chunks = std::mem::take(&mut h.chunks);
        let next = h.next;
        let released = h.hist.clear_to(next) + chunks.values().map(Chunk::cost).sum::<u64>();
        self.release(&mut s.mem, released);
    }

    /// Declares `[next, to)` of side `d` missing.
    fn gap(&mut self, s: &mut TcpSession, d: usize, to: u64, cause: GapCause, ev: &mut Vec<E>) {
        let depth = self.cfg.depth;
        let h = &mut s.h[d];
        let to = if depth > 0 && to > depth {
            depth.max(h.next)
        } else {
            to
        };
        if to <= h.next || h.depth_reached {
            return;
        }
        let len = to - h.next;
        h.next = to;
        h.gaps += 1;
        let released = h.hist.clear_to(to);
        self.release(&mut s.mem, released);
        self.c.gaps += 1;
        self.c.gap_bytes += len;
        match cause {
            GapCause::Memcap => self.c.memcap_gaps += 1,
            GapCause::SegmentLimit => self.c.segment_limit_gaps += 1,
            GapCause::Ack | GapCause::Close => {}
        }
        ev.push(E::ReassemblySeqGap);
        self.check_depth(s, d, ev);
    }

    /// Declares the oldest hole of side `d` a gap and delivers what follows
    /// it. False when nothing is buffered.
    fn force_gap(
        &mut self,
        s: &mut TcpSession,
        d: usize,
        cause: GapCause,
        ev: &mut Vec<E>,
        sink: Sink,
    ) -> bool {
        let Some(&first) = s.h[d].chunks.keys().next() else {
            return false;
        };
        self.gap(s, d, first, cause, ev);
        self.drain(s, d, ev, sink);
        true
    }

    /// Brings side `d` back within the segment limit and the session back
    /// within the memcap.
    fn enforce_bounds(&mut self, s: &mut TcpSession, d: usize, ev: &mut Vec<E>, sink: Sink) {
        let memcap = self.cfg.memcap_bytes;
        let max_segs = self.cfg.max_ooo_segments_per_dir;
        let mut guard = s.h[d].chunks.len() + 2;
        while guard > 0 {
            guard -= 1;
            let over_mem = memcap > 0 && self.mem_used() > memcap;
            let over_segs = s.h[d].chunks.len() > max_segs;
            if !over_mem && !over_segs {
                break;
            }
            if over_mem && (s.h[0].hist.len() > 0 || s.h[1].hist.len() > 0) {
                for x in 0..2 {
                    let next = s.h[x].next;
                    let released = s.h[x].hist.clear_to(next);
                    self.release(&mut s.mem, released);
                }
                continue;
            }
            if s.h[d].chunks.is_empty() {
                break;
            }
            if s.state != SessionState::Established {
                self.drop_chunks(s, d);
                break;
            }
            let cause = if over_segs {
                GapCause::SegmentLimit
            } else {
                GapCause::Memcap
            };
            if !self.force_gap(s, d, cause, ev, sink) {
                break;
            }
        }
    }

    /// Frees side `d`'s buffered runs without delivering them.
    fn drop_chunks(&mut self, s: &mut TcpSession, d: usize) {
        let chunks = std::mem::take(&mut s.h[d].chunks);
        let released = chunks.values().map(Chunk::cost).sum();
        self.release(&mut s.mem, released);
    }

    /// Resets side `d` (a new SYN), freeing what it held.
    fn clear_half(&mut self, s: &mut TcpSession, d: usize) {
        self.drop_chunks(s, d);
        let released = s.h[d].hist.len();
        self.release(&mut s.mem, released);
        s.h[d] = Default::default();
    }

    // ---- memory ----------------------------------------------------------

    fn charge(&mut self, session_mem: &mut u64, n: u64) {
        *session_mem += n;
        let now = self.mem.fetch_add(n, Ordering::Relaxed) + n;
        if now > self.c.mem_peak {
            self.c.mem_peak = now;
        }
    }

    fn release(&mut self, session_mem: &mut u64, n: u64) {
        let n = n.min(*session_mem);
        *session_mem -= n;
        self.mem.fetch_sub(n, Ordering::Relaxed);
    }
}

/// Whether `ack` acknowledges side `y`'s SYN, or its SYN and TFO data.
fn acks_syn(s: &TcpSession, y: usize, ack: u32) -> bool {
    let Some(base) = s.h[y].base else {
        return false;
    };
    let l = s.h[y].syn_data_len;
    ack == base || (l > 0 && ack == base.wrapping_add(l as u32))
}

/// Suricata's `StateSynSentValidateTimestamp`, for a packet from the server
/// while only the client's SYN was seen: with a timestamp option, its echo
/// must be the SYN's TSval (when both are non-zero); a SYN without the option
/// admits no echo but 0. Packets without the option pass.
fn syn_sent_ts_ok(s: &TcpSession, tcp: &TcpInfo) -> bool {
    let Some((_, echo)) = tcp.timestamp else {
        return true;
    };
    match s.syn_ts {
        Some(val) => val == 0 || echo == 0 || echo == val,
        None => echo == 0,
    }
}
