//! The flow stage: the worker's flow table (timeouts, memcap eviction);
//! says which flow a packet joined and how far that flow is.

use super::PacketCtx;
use crate::stats::WorkerStats;
use zonewatch_decode::TcpInfo;
use zonewatch_detect::FlowView;
use zonewatch_flow::{Ending, FlowConfig, FlowCounters, FlowTable};
use zonewatch_types::{ipproto, Direction, Event, EventKey, FlowTuple, Timestamp};

/// The flow a packet joined, as the later stages need it.
#[derive(Debug, Clone, Copy)]
pub(super) struct FlowHit {
    pub id: u64,
    /// Slot in the flow table (valid while the flow lives).
    pub slot: u32,
    pub dir: Direction,
    /// The packet's own tuple.
    pub tuple: FlowTuple,
    /// Suricata has a flow for this protocol: signatures and events see it.
    /// IGMP, OSPF, PIM, ... have none; the table tracks them for the
    /// anomaly detectors only.
    pub flowed: bool,
    /// Packets to server, to client, this one included.
    pub pkts: [u64; 2],
    /// The flow table's view: TCP handshake done (the stream stage may
    /// correct it), else both directions seen.
    pub established: bool,
}

impl FlowHit {
    /// The flow as signatures see it, before the stream and app-layer
    /// stages add what they know.
    pub fn view(&self, ctx: &PacketCtx<'_>) -> FlowView {
        let di = match self.dir {
            Direction::ToServer => 0,
            Direction::ToClient => 1,
        };
        FlowView {
            id: self.id,
            to_server: self.dir == Direction::ToServer,
            established: self.established,
            first_in_dir: self.pkts[di] == ctx.meta.pkts as u64,
            app_proto: None,
            app_proto_acked: false,
            payload_inspection: true,
        }
    }
}

pub(super) struct FlowStage {
    table: FlowTable,
}

impl FlowStage {
    pub fn new(cfg: FlowConfig) -> Self {
        FlowStage {
            table: FlowTable::new(cfg),
        }
    }

    /// Accounts the packet to its flow; flows evicted to make room end
    /// here, their events pushed to `events`.
    pub fn packet(
        &mut self,
        ctx: &PacketCtx<'_>,
        tuple: &FlowTuple,
        tcp: Option<&TcpInfo>,
        events: &mut Vec<Event>,
        stats: &mut WorkerStats,
    ) -> Option<FlowHit> {
        let p = ctx.meta;
        let r = self
            .table
            .packet(p.pos, p.ts, p.iface, tuple, p.wire_len, p.pkts, tcp, events);
        stats.flow_pkts += p.pkts as u64;
        let f = self.table.get_mut(r.slot)?;
        let established = match tuple.proto {
            ipproto::TCP => f.tcp_state.is_established(),
            _ => f.pkts[0] > 0 && f.pkts[1] > 0,
        };
        Some(FlowHit {
            id: f.flow_id,
            slot: r.slot,
            dir: r.dir,
            tuple: *tuple,
            flowed: zonewatch_decode::ip_proto_has_flow(
                p.decoded.ip.map_or(4, |ip| ip.version),
                tuple.proto,
            ),
            pkts: f.pkts,
            established,
        })
    }

    /// The stream engine picked the flow's session up midstream: Suricata
    /// moves it to ESTABLISHED, so its FINs later close it in the flow
    /// record too (smb1-03-midstream).
    pub fn picked_up(&mut self, slot: u32) {
        if let Some(f) = self.table.get_mut(slot) {
            f.tcp_state = f.tcp_state.picked_up();
        }
    }

    /// An alert was raised on the flow.
    pub fn alerted(&mut self, slot: u32) {
        if let Some(f) = self.table.get_mut(slot) {
            f.alerted = true;
        }
    }

    /// The flows that time out at `now`.
    pub fn expiring(&mut self, now: Timestamp) -> Ending {
        self.table.expiring(now)
    }

    /// Every flow, at the end of input.
    pub fn ending_all(&mut self) -> Ending {
        self.table.ending_all()
    }

    /// Ends up to `max` flows of `e` (see [`FlowTable::end_some`]).
    pub fn end_some(
        &mut self,
        e: &mut Ending,
        pos: u64,
        now: Timestamp,
        max: usize,
        events: &mut Vec<Event>,
    ) -> bool {
        self.table.end_some(e, pos, now, max, events)
    }

    /// The key of the next flow end of `e` (see [`FlowTable::next_end_key`]).
    pub fn next_end_key(&self, e: &Ending, pos: u64) -> Option<EventKey> {
        self.table.next_end_key(e, pos)
    }

    pub fn counters(&self) -> FlowCounters {
        self.table.counters()
    }
}
