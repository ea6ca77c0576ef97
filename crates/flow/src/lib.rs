//! Flow tracking for one worker: a table of flows keyed by the direction-free
//! tuple, TCP connection state, per-protocol/per-state timeouts driven by the
//! caller's clock (packet time in file mode), and a memory cap with eviction.
//!
//! The table never reads a wall clock and never iterates a hash map in an
//! order that could leak into output: flows that end together are reported
//! in the order they started, so file-mode output does not depend on how
//! flows were spread over workers.
#![deny(missing_docs)]

mod community_id;
mod tcp;

pub use community_id::community_id_v1;
pub use tcp::TcpState;

use hashbrown::HashMap;
use siphasher::sip::SipHasher13;
use std::hash::{Hash, Hasher};
use zonewatch_decode::TcpInfo;
use zonewatch_types::{
    ipproto, AddrInfo, Direction, Event, EventBody, EventKey, FlowRecord, FlowTuple, TcpRecord,
    Timestamp,
};

/// Timeouts (seconds) for one protocol, by flow state; the emergency values
/// apply while the table is at its memory cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateTimeouts {
    /// Flow not yet established (no reply / handshake incomplete).
    pub new: u64,
    /// Established.
    pub established: u64,
    /// Closed (TCP FIN/RST exchange done).
    pub closed: u64,
    /// `new` under memory pressure.
    pub emergency_new: u64,
    /// `established` under memory pressure.
    pub emergency_established: u64,
    /// `closed` under memory pressure.
    pub emergency_closed: u64,
}

/// Timeouts per protocol (Suricata's `flow-timeouts` section and defaults).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// TCP.
    pub tcp: StateTimeouts,
    /// UDP.
    pub udp: StateTimeouts,
    /// ICMP and ICMPv6.
    pub icmp: StateTimeouts,
    /// Everything else.
    pub default: StateTimeouts,
}

impl Default for Timeouts {
    fn default() -> Self {
        let st = |new, established, closed, en, ee, ec| StateTimeouts {
            new,
            established,
            closed,
            emergency_new: en,
            emergency_established: ee,
            emergency_closed: ec,
        };
        Timeouts {
            tcp: st(60, 600, 60, 5, 100, 10),
            udp: st(30, 300, 0, 10, 100, 0),
            icmp: st(30, 300, 0, 10, 100, 0),
            default: st(30, 300, 0, 10, 100, 0),
        }
    }
}

/// Settings for one worker's table.
#[derive(Debug, Clone)]
pub struct FlowConfig {
    /// Bytes this table may use for flows (its share of `flow.memcap`).
    pub memcap_bytes: u64,
    /// Timeouts.
    pub timeouts: Timeouts,
    /// Seed of the flow id hash.
    pub hash_seed: u64,
    /// Community ID seed, or `None` to leave the field out.
    pub community_id_seed: Option<u16>,
    /// Pick up TCP sessions whose handshake was not seen (`stream.midstream`).
    pub midstream: bool,
    /// Names of live interfaces by index, for `in_iface` (empty for files).
    pub iface_names: Vec<std::sync::Arc<str>>,
}

impl Default for FlowConfig {
    fn default() -> Self {
        FlowConfig {
            memcap_bytes: 128 << 20,
            timeouts: Timeouts::default(),
            hash_seed: 0,
            community_id_seed: Some(0),
            midstream: false,
            iface_names: Vec::new(),
        }
    }
}

/// One tracked flow.
#[derive(Debug, Clone)]
pub struct Flow {
    /// The tuple in the client's direction (who sent the first packet).
    pub tuple: FlowTuple,
    /// Input position of the first packet (orders flows; seeds the id).
    pub first_pos: u64,
    /// Flow id written in events.
    pub flow_id: u64,
    /// First packet time.
    pub start: Timestamp,
    /// Last packet time.
    pub last: Timestamp,
    /// Packets to server, to client.
    pub pkts: [u64; 2],
    /// Wire bytes to server, to client.
    pub bytes: [u64; 2],
    /// TCP flags seen to server, to client.
    pub tcp_flags: [u8; 2],
    /// TCP connection state.
    pub tcp_state: TcpState,
    /// Sequence number of the client's SYN (its initial sequence number),
    /// to tell a retransmitted SYN from a new connection on the same tuple.
    pub client_isn: Option<u32>,
    /// An alert was raised on this flow.
    pub alerted: bool,
    /// Index of the interface the first packet came in on.
    pub iface: u16,
}

impl Flow {
    /// The direction of a packet with `tuple` in this flow: from the client
    /// (who sent the first packet) or to it.
    fn direction_of(&self, tuple: &FlowTuple) -> Direction {
        if self.tuple.src == tuple.src && self.tuple.sport == tuple.sport {
            Direction::ToServer
        } else {
            Direction::ToClient
        }
    }

    fn seen_both_ways(&self) -> bool {
        self.pkts[0] > 0 && self.pkts[1] > 0
    }

    /// `new`, `established` or `closed`, as in Suricata's flow events.
    pub fn state_name(&self) -> &'static str {
        if self.tuple.proto == ipproto::TCP {
            match self.tcp_state {
                TcpState::Closed | TcpState::TimeWait => "closed",
                s if s >= TcpState::Established => "established",
                TcpState::None if self.seen_both_ways() => "established",
                _ => "new",
            }
        } else if self.seen_both_ways() {
            "established"
        } else {
            "new"
        }
    }

    fn timeout(&self, t: &Timeouts, emergency: bool) -> u64 {
        let st = match self.tuple.proto {
            ipproto::TCP => &t.tcp,
            ipproto::UDP => &t.udp,
            ipproto::ICMP | ipproto::ICMPV6 => &t.icmp,
            _ => &t.default,
        };
        match (self.state_name(), emergency) {
            ("closed", false) => st.closed,
            ("closed", true) => st.emergency_closed,
            ("established", false) => st.established,
            ("established", true) => st.emergency_established,
            (_, false) => st.new,
            (_, true) => st.emergency_new,
        }
    }
}

/// Counters of one table; summed over workers for stats.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FlowCounters {
    /// Flows created.
    pub total: u64,
    /// TCP flows created.
    pub tcp: u64,
    /// UDP flows created.
    pub udp: u64,
    /// ICMPv4 flows created.
    pub icmpv4: u64,
    /// ICMPv6 flows created.
    pub icmpv6: u64,
    /// Flows of other protocols created.
    pub other: u64,
    /// Flows ended by timeout.
    pub end_timeout: u64,
    /// Flows evicted under memory pressure.
    pub end_forced: u64,
    /// Flows still open at end of input.
    pub end_shutdown: u64,
    /// Times the table entered emergency mode (at its memory cap).
    pub emerg_mode_entered: u64,
    /// TCP flows ended because a new connection reused their tuple (a SYN
    /// on a finished session; Suricata's `flow.tcp_reuse`).
    pub tcp_reuse: u64,
    /// Flows open now.
    pub active: u64,
    /// Most flows open at once.
    pub active_max: u64,
}

impl FlowCounters {
    /// Adds another table's counters (stats sum the workers' tables).
    pub fn add(&mut self, o: &FlowCounters) {
        self.total += o.total;
        self.tcp += o.tcp;
        self.udp += o.udp;
        self.icmpv4 += o.icmpv4;
        self.icmpv6 += o.icmpv6;
        self.other += o.other;
        self.end_timeout += o.end_timeout;
        self.end_forced += o.end_forced;
        self.end_shutdown += o.end_shutdown;
        self.emerg_mode_entered += o.emerg_mode_entered;
        self.tcp_reuse += o.tcp_reuse;
        self.active += o.active;
        self.active_max += o.active_max;
    }
}

/// Where a packet landed: the flow slot and the packet's direction in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowRef {
    /// Slot index in the table (valid until the flow ends).
    pub slot: u32,
    /// Direction of the packet.
    pub dir: Direction,
    /// The packet created the flow.
    pub created: bool,
}

/// Bytes one flow may cost at worst: its slot, a free-list entry, and its
/// hash entry (key, index and control byte) at the lowest load factor the
/// index can have after growing (7/16), so that `memcap / FLOW_COST_BYTES`
/// flows never need more than the memcap.
pub const FLOW_COST_BYTES: u64 = (std::mem::size_of::<Option<Flow>>()
    + 4
    + (std::mem::size_of::<(FlowTuple, u32)>() + 1) * 16 / 7
    + 1) as u64;

/// Flows chosen to end (by timeout or at shutdown), ended in chunks.
#[derive(Debug)]
pub struct Ending {
    slots: Vec<u32>,
    next: usize,
    reason: &'static str,
}

/// How many slots eviction samples when the table is full (approximate LRU).
const EVICT_SAMPLE: usize = 16;

/// A worker's flow table.
pub struct FlowTable {
    cfg: FlowConfig,
    max_flows: usize,
    index: HashMap<FlowTuple, u32>,
    slots: Vec<Option<Flow>>,
    free: Vec<u32>,
    evict_cursor: usize,
    emergency: bool,
    counters: FlowCounters,
}

impl FlowTable {
    /// An empty table.
    pub fn new(cfg: FlowConfig) -> Self {
        let max_flows = (cfg.memcap_bytes / FLOW_COST_BYTES).max(1) as usize;
        FlowTable {
            cfg,
            max_flows,
            index: HashMap::new(),
            slots: Vec::new(),
            free: Vec::new(),
            evict_cursor: 0,
            emergency: false,
            counters: FlowCounters::default(),
        }
    }

    /// Counters so far.
    pub fn counters(&self) -> FlowCounters {
        let mut c = self.counters;
        c.active = self.index.len() as u64;
        c
    }

    /// Most flows the memory cap allows.
    pub fn max_flows(&self) -> usize {
        self.max_flows
    }

    /// The flow in `slot`.
    pub fn get_mut(&mut self, slot: u32) -> Option<&mut Flow> {
        self.slots.get_mut(slot as usize).and_then(|f| f.as_mut())
    }

    fn flow_id(&self, key: &FlowTuple, first_pos: u64) -> u64 {
        let mut h = SipHasher13::new_with_keys(self.cfg.hash_seed, 0x7a77_6174_6368);
        key.hash(&mut h);
        first_pos.hash(&mut h);
        // Keep ids within JSON's exact-integer range (2^53).
        h.finish() & ((1 << 51) - 1)
    }

    /// Accounts one packet to its flow, creating the flow if needed. May end
    /// other flows (eviction at the memory cap), whose events go to `out`.
    #[allow(clippy::too_many_arguments)]
    pub fn packet(
        &mut self,
        pos: u64,
        ts: Timestamp,
        iface: u16,
        tuple: &FlowTuple,
        wire_len: u32,
        pkts: u32,
        tcp: Option<&TcpInfo>,
        out: &mut Vec<Event>,
    ) -> FlowRef {
        let (key, _) = tuple.canonical();
        let mut existing = self.index.get(&key).copied();
        if let (Some(s), Some(t)) = (existing, tcp) {
            if self.reuses(s, tuple, t) {
                // The old connection is over: it ends here (as Suricata's
                // reused flow times out on its own) and the SYN starts a new
                // flow, with its own id, stream and app-layer state.
                self.counters.tcp_reuse += 1;
                self.counters.end_timeout += 1;
                let f = self.remove(s);
                out.push(self.flow_event(&f, pos, ts, "timeout"));
                existing = None;
            }
        }
        let (slot, created) = match existing {
            Some(s) => (s, false),
            None => {
                if self.index.len() >= self.max_flows {
                    self.make_room(pos, ts, out);
                }
                let flow = Flow {
                    tuple: *tuple,
                    first_pos: pos,
                    flow_id: self.flow_id(&key, pos),
                    start: ts,
                    last: ts,
                    pkts: [0; 2],
                    bytes: [0; 2],
                    tcp_flags: [0; 2],
                    tcp_state: TcpState::None,
                    client_isn: None,
                    alerted: false,
                    iface,
                };
                let slot = match self.free.pop() {
                    Some(s) => {
                        self.slots[s as usize] = Some(flow);
                        s
                    }
                    None => {
                        if self.slots.len() == self.slots.capacity() {
                            // Grow by doubling but never past the cap, so the
                            // slots stay within the memcap.
                            let grow = self
                                .slots
                                .len()
                                .max(1024)
                                .min(self.max_flows - self.slots.len());
                            self.slots.reserve_exact(grow.max(1));
                        }
                        self.slots.push(Some(flow));
                        (self.slots.len() - 1) as u32
                    }
                };
                self.index.insert(key, slot);
                let c = &mut self.counters;
                c.total += 1;
                match tuple.proto {
                    ipproto::TCP => c.tcp += 1,
                    ipproto::UDP => c.udp += 1,
                    ipproto::ICMP => c.icmpv4 += 1,
                    ipproto::ICMPV6 => c.icmpv6 += 1,
                    _ => c.other += 1,
                }
                c.active_max = c.active_max.max(self.index.len() as u64);
                (slot, true)
            }
        };
        let f = self.slots[slot as usize]
            .as_mut()
            .expect("indexed slot holds a flow");
        let dir = f.direction_of(tuple);
        let d = (dir == Direction::ToClient) as usize;
        f.pkts[d] += pkts as u64;
        f.bytes[d] += wire_len as u64;
        if ts > f.last {
            f.last = ts;
        }
        if let Some(t) = tcp {
            if f.tcp_state == TcpState::None && dir == Direction::ToServer && tcp::is_syn(t.flags) {
                f.client_isn = Some(t.seq);
            }
            f.tcp_flags[d] |= t.flags;
            f.tcp_state = f.tcp_state.next(dir, t.flags);
        }
        FlowRef { slot, dir, created }
    }

    /// Whether a TCP packet starts a new connection on the tuple of the flow
    /// in `slot`, as Suricata decides TCP session reuse: a SYN (without
    /// ACK, RST or FIN) on a session that is finished enough (last ACK,
    /// close wait, closing or closed) or never started (no handshake seen),
    /// unless it is the client's first SYN again (same sequence number: a
    /// retransmission). A SYN/ACK does not start one (midstream pickup is
    /// off by default).
    fn reuses(&self, slot: u32, tuple: &FlowTuple, t: &TcpInfo) -> bool {
        if !tcp::is_syn(t.flags) {
            return false;
        }
        let Some(f) = self.slots[slot as usize].as_ref() else {
            return false;
        };
        if f.direction_of(tuple) == Direction::ToServer && f.client_isn == Some(t.seq) {
            return false;
        }
        matches!(
            f.tcp_state,
            TcpState::None
                | TcpState::CloseWait
                | TcpState::Closing
                | TcpState::LastAck
                | TcpState::Closed
        )
    }

    /// At the memory cap: time flows out with the emergency timeouts; if that
    /// frees nothing, evict the least recently seen of a sample of flows.
    fn make_room(&mut self, pos: u64, now: Timestamp, out: &mut Vec<Event>) {
        if !self.emergency {
            self.emergency = true;
            self.counters.emerg_mode_entered += 1;
            self.expire(pos, now, out);
            if self.index.len() < self.max_flows {
                return;
            }
        }
        let n = self.slots.len();
        let mut victim: Option<(Timestamp, u64, usize)> = None;
        for i in 0..EVICT_SAMPLE.min(n) {
            let s = (self.evict_cursor + i) % n;
            if let Some(f) = &self.slots[s] {
                let cand = (f.last, f.first_pos, s);
                if victim.is_none_or(|v| (cand.0, cand.1) < (v.0, v.1)) {
                    victim = Some(cand);
                }
            }
        }
        self.evict_cursor = (self.evict_cursor + EVICT_SAMPLE) % n.max(1);
        if let Some((_, _, s)) = victim {
            self.counters.end_forced += 1;
            let f = self.remove(s as u32);
            out.push(self.flow_event(&f, pos, now, "forced"));
        }
    }

    fn remove(&mut self, slot: u32) -> Flow {
        let f = self.slots[slot as usize].take().expect("slot holds a flow");
        self.index.remove(&f.tuple.canonical().0);
        self.free.push(slot);
        f
    }

    /// Ends flows idle past their timeout at time `now` (a clock tick at
    /// input position `pos`). Events are in flow start order.
    pub fn expire(&mut self, pos: u64, now: Timestamp, out: &mut Vec<Event>) {
        let mut e = self.expiring(now);
        while self.end_some(&mut e, pos, now, usize::MAX, out) {}
    }

    /// Ends every flow (end of input), reason `shutdown`.
    pub fn shutdown(&mut self, pos: u64, now: Timestamp, out: &mut Vec<Event>) {
        let mut e = self.ending_all();
        while self.end_some(&mut e, pos, now, usize::MAX, out) {}
    }

    /// The flows idle past their timeout at `now`, in start order, to be
    /// ended a chunk at a time with [`FlowTable::end_some`] (so that ending a
    /// million flows never needs a million events in memory at once).
    pub fn expiring(&mut self, now: Timestamp) -> Ending {
        let t = self.cfg.timeouts;
        let emergency = self.emergency;
        let mut slots: Vec<u32> = Vec::new();
        for (i, f) in self.slots.iter().enumerate() {
            if let Some(f) = f {
                if now.0 - f.last.0 >= (f.timeout(&t, emergency) as i64) * 1_000_000_000
                    && now > f.last
                {
                    slots.push(i as u32);
                }
            }
        }
        self.ending(slots, "timeout")
    }

    /// Every flow, in start order, reason `shutdown` (end of input).
    pub fn ending_all(&mut self) -> Ending {
        let slots: Vec<u32> = (0..self.slots.len() as u32)
            .filter(|&i| self.slots[i as usize].is_some())
            .collect();
        self.ending(slots, "shutdown")
    }

    fn ending(&self, mut slots: Vec<u32>, reason: &'static str) -> Ending {
        slots.sort_by_key(|&s| self.slots[s as usize].as_ref().map(|f| f.first_pos));
        Ending {
            slots,
            next: 0,
            reason,
        }
    }

    /// The key of the next event `e` will produce at `pos`, if any: every
    /// event of `e` sent so far sorts below it.
    pub fn next_end_key(&self, e: &Ending, pos: u64) -> Option<EventKey> {
        let slot = *e.slots.get(e.next)?;
        let f = self.slots[slot as usize].as_ref()?;
        Some(EventKey::flow_events_from(pos, f.first_pos))
    }

    /// Ends up to `max` flows of `e`, pushing their events; false when none
    /// was left. Each event's key is [`EventKey::flow_end`].
    pub fn end_some(
        &mut self,
        e: &mut Ending,
        pos: u64,
        now: Timestamp,
        max: usize,
        out: &mut Vec<Event>,
    ) -> bool {
        let stop = e.slots.len().min(e.next.saturating_add(max));
        if e.next >= stop {
            if e.reason == "timeout" && self.emergency && self.index.len() < self.max_flows * 9 / 10
            {
                self.emergency = false;
            }
            return false;
        }
        for i in e.next..stop {
            let f = self.remove(e.slots[i]);
            match e.reason {
                "timeout" => self.counters.end_timeout += 1,
                _ => self.counters.end_shutdown += 1,
            }
            out.push(self.flow_event(&f, pos, now, e.reason));
        }
        e.next = stop;
        true
    }

    /// The `flow` event of a flow that ends now.
    pub fn flow_event(&self, f: &Flow, pos: u64, now: Timestamp, reason: &'static str) -> Event {
        let t = &f.tuple;
        let has_ports = matches!(t.proto, ipproto::TCP | ipproto::UDP | ipproto::SCTP);
        Event {
            key: EventKey::flow_end(pos, f.first_pos),
            ts: now.max(f.last),
            flow_id: Some(f.flow_id),
            addr: Some(AddrInfo {
                src_ip: t.src,
                src_port: has_ports.then_some(t.sport),
                dest_ip: t.dst,
                dest_port: has_ports.then_some(t.dport),
                proto: t.proto,
                vlan: t.vlan,
            }),
            community_id: self.cfg.community_id_seed.map(|s| community_id_v1(s, t)),
            in_iface: self.cfg.iface_names.get(f.iface as usize).cloned(),
            body: EventBody::Flow(FlowRecord {
                app_proto: None,
                pkts_toserver: f.pkts[0],
                pkts_toclient: f.pkts[1],
                bytes_toserver: f.bytes[0],
                bytes_toclient: f.bytes[1],
                start: f.start,
                end: f.last,
                state: f.state_name(),
                reason,
                alerted: f.alerted,
                tcp: (t.proto == ipproto::TCP).then_some(TcpRecord {
                    flags_ts: f.tcp_flags[0],
                    flags_tc: f.tcp_flags[1],
                    state: f.tcp_state.name(),
                }),
            }),
        }
    }

    /// Flows open now.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// No flow open.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }
}

#[cfg(test)]
mod tests;
