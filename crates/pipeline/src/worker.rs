//! A worker: owns the flows hashed to it and turns their packets into
//! events and observations, without locks.
//!
//! Each packet goes through stages, each owning its state: flow (the flow
//! table) → stream (TCP sessions, reassembly) → app layer (parsers per
//! flow) → detect (signatures) → observe (for the anomaly detectors). A
//! [`PacketCtx`] carries the packet between them; the worker is the loop
//! that calls them in order and sends what they made. Its packet input is
//! one seam, [`Worker::batch`]: a batch, wherever it came from (today the
//! reader thread; a capture ring of the worker's own would feed it alike).

mod app;
mod detect;
mod flow;
mod observe;
mod stream;

use crate::output::OutMsg;
use crate::stats::WorkerStats;
use crate::{Batch, PacketMeta, Stage, WorkMsg};
use app::AppStage;
use crossbeam_channel::{Receiver, Sender};
use detect::DetectStage;
use flow::{FlowHit, FlowStage};
use observe::ObserveStage;
use std::sync::Arc;
use std::time::{Duration, Instant};
use stream::StreamStage;
use zonewatch_config::Config;
use zonewatch_decode::{Decoded, Transport};
use zonewatch_detect::FlowView;
use zonewatch_flow::FlowConfig;
use zonewatch_types::{AddrInfo, AnomalyRecord, Event, EventBody, EventKey, FlowTuple, Timestamp};

/// How often the worker's counters go to the output thread.
const PUBLISH_EVERY: Duration = Duration::from_millis(500);

pub(crate) struct WorkerConfig {
    flow: FlowConfig,
    stream: zonewatch_stream::StreamConfig,
    /// Most TCP sessions this worker holds (its share of `stream.memcap`).
    max_sessions: usize,
    /// Interface names by reader index (live mode), for `in_iface`.
    ifaces: Vec<std::sync::Arc<str>>,
    stage: crate::Stage,
    /// Signature engine, when rules were given.
    pub(crate) detect: Option<std::sync::Arc<zonewatch_detect::Engine>>,
    /// Anomaly detectors run (on the output thread): send observations.
    pub(crate) observe: bool,
    /// Reloaded signatures arrive here (SIGHUP).
    pub(crate) rules: Option<crate::RuleSlot>,
    /// Parse app-layer protocols.
    pub(crate) app_layer: bool,
    /// Which packet bytes alerts carry.
    alert_bytes: zonewatch_detect::AlertBytesConfig,
    /// App-layer parser settings.
    app_cfg: zonewatch_applayer::AppConfig,
    /// The app-layer record types the output writes.
    app_records: app::RecordTypes,
}

impl WorkerConfig {
    pub(crate) fn from_config(
        c: &Config,
        workers: usize,
        inputs: &crate::Inputs,
        stage: crate::Stage,
    ) -> Self {
        let ifaces = match inputs {
            crate::Inputs::Interfaces(v) | crate::Inputs::AfPacket { interfaces: v, .. } => {
                v.iter().map(|s| std::sync::Arc::from(s.as_str())).collect()
            }
            crate::Inputs::Files(_) => Vec::new(),
        };
        WorkerConfig {
            max_sessions: (c.stream.memcap_bytes
                / workers.max(1) as u64
                / stream::SESSION_COST_BYTES) as usize,
            stream: c.stream.build(workers),
            ifaces: ifaces.clone(),
            stage,
            detect: None,
            observe: false,
            rules: None,
            app_layer: c.app_layer.any_enabled(),
            alert_bytes: zonewatch_detect::AlertBytesConfig {
                payload: c.alert.payload,
                printable: c.alert.payload_printable,
                packet: c.alert.packet,
            },
            app_cfg: zonewatch_applayer::AppConfig {
                track_files: app::RecordTypes::from_types(&c.output.types).files,
                ..c.app_layer.build()
            },
            app_records: app::RecordTypes::from_types(&c.output.types),
            flow: FlowConfig {
                // The flow memcap is shared evenly: each worker owns its table.
                memcap_bytes: c.flow.memcap_bytes / workers.max(1) as u64,
                // The config reads the flow table's own timeout type.
                timeouts: c.flow.timeouts,
                hash_seed: c.flow.hash_seed,
                community_id_seed: c.community_id.seed_if_enabled(),
                midstream: c.stream.midstream,
                iface_names: ifaces.clone(),
            },
        }
    }
}

/// One packet on its way through the stages.
pub(crate) struct PacketCtx<'p> {
    pub meta: &'p PacketMeta,
    /// The packet's bytes.
    pub bytes: &'p [u8],
    /// The packet's addresses, for its events.
    pub addr: Option<AddrInfo>,
    /// Where the packet's events start in the worker's event buffer.
    pub first_event: usize,
}

pub(crate) struct Worker {
    id: usize,
    stage: Stage,
    /// Interface names by reader index (live mode), for `in_iface`.
    ifaces: Vec<Arc<str>>,
    flow: FlowStage,
    stream: StreamStage,
    app: AppStage,
    detect: DetectStage,
    observe: ObserveStage,
    stats: WorkerStats,
    /// This message's events, sent sorted with the observations.
    events: Vec<Event>,
    out: Sender<OutMsg>,
    last_publish: Instant,
    /// Reloaded rules, taken between batches.
    rules: Option<crate::reload::Watch>,
    /// More work is queued behind the current message (set by the loop
    /// that feeds the worker; the AF_PACKET loop leaves it false).
    more_queued: bool,
    /// Batches whose events wait to be sent, and the key below which the
    /// worker is done once they are.
    held: (u32, Option<EventKey>),
}

/// A message to the output thread wakes it: under load, one message per
/// this many batches (or this many events) instead of one per batch. An
/// empty queue always flushes, so live output is never held back.
const EMIT_EVERY_BATCHES: u32 = 8;
const EMIT_EVERY_EVENTS: usize = 512;

/// The addresses of a packet, as its events carry them.
fn packet_addr(d: &Decoded) -> Option<AddrInfo> {
    d.ip.map(|ip| {
        let (sp, dp) = match d.transport {
            Transport::Tcp(t) => (Some(t.sport), Some(t.dport)),
            Transport::Udp { sport, dport, .. } => (Some(sport), Some(dport)),
            _ => (None, None),
        };
        AddrInfo {
            src_ip: ip.src,
            src_port: sp,
            dest_ip: ip.dst,
            dest_port: dp,
            proto: ip.proto,
            vlan: d.vlan,
        }
    })
}

/// The anomaly events of one packet's decoder events: its first events.
fn decoder_anomalies(ctx: &PacketCtx<'_>, out: &mut Vec<Event>) {
    for (i, e) in ctx.meta.decoded.events.iter().enumerate() {
        out.push(Event {
            key: EventKey {
                pos: ctx.meta.pos,
                sub: EventKey::PACKET + i as u64,
            },
            ts: ctx.meta.ts,
            flow_id: None,
            addr: ctx.addr,
            community_id: None,
            in_iface: None,
            body: EventBody::Anomaly(AnomalyRecord {
                app_proto: None,
                kind: "decode",
                event: e.name(),
            }),
        });
    }
}

/// The next free `sub` at position `pos` for a packet's own events: events
/// are numbered in the order they are made. (Counts everything below the
/// stats range, so transactions a flow's close completed at this position
/// take numbers too.)
fn next_sub(events: &[Event], pos: u64) -> u64 {
    events
        .iter()
        .filter(|e| e.key.pos == pos && e.key.sub < EventKey::STATS)
        .count() as u64
}

/// Addresses of a flow's record: the flow's client first, whichever way
/// the packet went.
fn client_first(addr: Option<AddrInfo>, to_server: bool) -> Option<AddrInfo> {
    match addr {
        Some(a) if !to_server => Some(swap_ends(a)),
        _ => addr,
    }
}

fn swap_ends(a: AddrInfo) -> AddrInfo {
    AddrInfo {
        src_ip: a.dest_ip,
        src_port: a.dest_port,
        dest_ip: a.src_ip,
        dest_port: a.src_port,
        ..a
    }
}

/// A packet's flow as signatures and records see it.
#[derive(Clone, Copy)]
struct PacketFlow {
    view: FlowView,
    slot: u32,
}

impl Worker {
    pub(crate) fn new(id: usize, cfg: WorkerConfig, out: Sender<OutMsg>) -> Self {
        let detector = cfg.detect.map(zonewatch_detect::Detector::new);
        let app_enabled = cfg.stage == Stage::Full && cfg.app_layer;
        // Reassembled bytes are kept for the app layer and signatures.
        let keep_bytes = detector.is_some() || app_enabled;
        Worker {
            id,
            stage: cfg.stage,
            ifaces: cfg.ifaces,
            flow: FlowStage::new(cfg.flow),
            stream: StreamStage::new(cfg.stream, cfg.max_sessions, keep_bytes),
            app: AppStage::new(app_enabled, cfg.app_cfg, cfg.app_records),
            detect: DetectStage::new(detector, cfg.alert_bytes),
            observe: ObserveStage::new(cfg.observe, id == 0),
            stats: WorkerStats::new(),
            events: Vec::new(),
            out,
            last_publish: Instant::now(),
            rules: cfg.rules.map(crate::reload::Watch::new),
            more_queued: false,
            held: (0, None),
        }
    }

    /// The worker's packet input: one batch, wherever it came from. Its
    /// events go out with the watermark just past its last packet.
    fn batch(&mut self, b: &Batch) {
        self.packets(b);
        let done = b.packets.last().map(|p| p.pos + 1).unwrap_or(0);
        self.held = (self.held.0 + 1, Some(EventKey::at(done)));
        if self.more_queued
            && self.held.0 < EMIT_EVERY_BATCHES
            && self.events.len() < EMIT_EVERY_EVENTS
        {
            return;
        }
        self.emit(EventKey::at(done));
    }

    fn packets(&mut self, b: &Batch) {
        if self.stage == Stage::DecodeOnly {
            self.stats.pkts += b.packets.len() as u64;
            self.stats.batches += 1;
            return;
        }
        for p in &b.packets {
            let ctx = PacketCtx {
                meta: p,
                bytes: &b.data[p.start as usize..(p.start + p.len) as usize],
                addr: packet_addr(&p.decoded),
                first_event: self.events.len(),
            };
            self.packet(&ctx);
        }
        self.stats.batches += 1;
        let us = b.created.elapsed().as_micros() as u64;
        let _ = self
            .stats
            .latency_us
            .record_n(us.max(1), b.packets.len() as u64);
    }

    /// One packet through every stage; its events in the order made.
    fn packet(&mut self, ctx: &PacketCtx<'_>) {
        self.stats.pkts += 1;
        self.stream.begin_packet();
        self.app.begin_packet();
        decoder_anomalies(ctx, &mut self.events);
        let flow = match ctx.meta.decoded.flow_tuple() {
            // A fragment is counted in its datagram's flow once reassembled.
            Some(tuple) if !ctx.meta.fragment => self.flow_packet(ctx, &tuple),
            _ => None,
        };
        if self.detect.enabled() || !self.app.out.is_empty() {
            self.detect_and_record(ctx, flow);
        }
        if let Some(name) = self.ifaces.get(ctx.meta.iface as usize) {
            for e in &mut self.events[ctx.first_event..] {
                e.in_iface = Some(name.clone());
            }
        }
    }

    /// Flow, stream and app-layer stages for a packet with a flow tuple;
    /// the flow as signatures see it, when Suricata has one.
    fn flow_packet(&mut self, ctx: &PacketCtx<'_>, tuple: &FlowTuple) -> Option<PacketFlow> {
        let tcp = match &ctx.meta.decoded.transport {
            Transport::Tcp(t) => Some(t),
            _ => None,
        };
        let hit = self
            .flow
            .packet(ctx, tuple, tcp, &mut self.events, &mut self.stats);
        // Flows evicted to make room end here, with their other stages.
        self.close_ended(ctx.first_event);
        let hit = hit?;
        self.observe.packet(ctx, &hit);
        let mut view = hit.flowed.then(|| hit.view(ctx));
        if let Some(t) = tcp {
            self.tcp_segment(ctx, &hit, t, view.as_mut());
        }
        if self.app.enabled() {
            let app = self.app.packet(ctx, &hit, &self.stream);
            if let Some(v) = &mut view {
                v.app_proto = app.app_proto;
                v.app_proto_acked = app.acked;
                v.payload_inspection = app.inspect_payload;
            }
        }
        if hit.flowed {
            // The packet's events belong to its flow (flow ends of other
            // flows at this position keep their own).
            for e in &mut self.events[ctx.first_event..] {
                if e.key.pos == ctx.meta.pos && e.key.sub < EventKey::FLOW_END {
                    e.flow_id = Some(hit.id);
                }
            }
        }
        view.map(|view| PacketFlow {
            view,
            slot: hit.slot,
        })
    }

    /// The stream stage for a TCP segment, and what it tells the flow.
    fn tcp_segment(
        &mut self,
        ctx: &PacketCtx<'_>,
        hit: &FlowHit,
        tcp: &zonewatch_decode::TcpInfo,
        view: Option<&mut FlowView>,
    ) {
        let bad_csum = ctx.meta.verify_csum
            && zonewatch_decode::transport_checksum_ok(ctx.bytes, &ctx.meta.decoded) == Some(false);
        if bad_csum {
            // Like Suricata: the stream engine ignores the segment.
            self.stats.invalid_checksum += 1;
        }
        if self.stage != Stage::Full {
            return;
        }
        if !bad_csum {
            self.stream
                .segment(ctx, hit, tcp, &mut self.events, &mut self.stats);
        }
        // As in Suricata, "established" is the stream engine's view.
        if let Some(v) = view {
            v.established = self.stream.established(hit.id);
        }
        if self.stream.picked_up(hit.id) {
            self.flow.picked_up(hit.slot);
        }
    }

    /// Signatures on the packet and the transactions the app layer
    /// completed on it; alerts, then app-layer records and anomalies
    /// become events of the packet, after its other events.
    fn detect_and_record(&mut self, ctx: &PacketCtx<'_>, flow: Option<PacketFlow>) {
        let view = flow.map(|f| f.view);
        let swapped = view.is_some_and(|f| self.app.reversed(f.id));
        let det_view = view.map(|f| FlowView {
            to_server: f.to_server != swapped,
            ..f
        });
        let alerted = self
            .detect
            .inspect(ctx, det_view, swapped, &self.stream.out, &self.app.out);
        if let (true, Some(f)) = (alerted, flow) {
            self.flow.alerted(f.slot);
        }
        let sub = next_sub(&self.events, ctx.meta.pos);
        let sub = self
            .detect
            .push_alerts(ctx, det_view, sub, &mut self.events);
        if let Some(v) = view {
            self.observe.dns(ctx, v.to_server, &mut self.app.out);
        }
        // A flow picked up midstream whose first bytes were the server's
        // is written the right way round (the app layer knows the client).
        let record_addr = match view {
            Some(v) => {
                client_first(ctx.addr, v.to_server).map(|a| if swapped { swap_ends(a) } else { a })
            }
            None => ctx.addr,
        };
        self.app.records(
            ctx,
            view,
            record_addr,
            sub,
            &mut self.events,
            &mut self.stats,
        );
    }

    /// Ends the other stages' state of the flows whose end events were
    /// pushed from `from` on.
    fn close_ended(&mut self, from: usize) {
        for i in from..self.events.len() {
            let e = &self.events[i];
            let (EventBody::Flow(_), Some(id)) = (&e.body, e.flow_id) else {
                continue;
            };
            self.detect.flow_end(id);
            self.app.close(&mut self.events, i);
            self.stream.close(id, &mut self.stats);
        }
    }

    /// Sends this message's events (sorted by key) and the watermark: every
    /// event this worker sends later sorts at or above `done_below`.
    fn emit(&mut self, done_below: EventKey) {
        self.held = (0, None);
        let mut events = std::mem::take(&mut self.events);
        events.sort_by_key(|e| e.key);
        let obs = std::mem::take(&mut self.observe.obs);
        let _ = self.out.send(OutMsg::Events {
            worker: self.id,
            events,
            obs,
            done_below,
        });
        if self.last_publish.elapsed() >= PUBLISH_EVERY {
            self.publish();
        }
    }

    /// Ends the flows of `e` a chunk at a time, so that ending a million
    /// flows at once holds at most a chunk of events per worker in flight.
    fn end_flows(&mut self, mut e: zonewatch_flow::Ending, pos: u64, ts: Timestamp) {
        const CHUNK: usize = 1024;
        loop {
            let from = self.events.len();
            if !self.flow.end_some(&mut e, pos, ts, CHUNK, &mut self.events) {
                break;
            }
            self.close_ended(from);
            let next = self
                .flow
                .next_end_key(&e, pos)
                .unwrap_or(EventKey::at(pos + 1));
            self.emit(next);
        }
        self.emit(EventKey::at(pos + 1));
    }

    fn publish(&mut self) {
        self.last_publish = Instant::now();
        if let Some(c) = self.detect.counters() {
            self.stats.detect = c;
        }
        self.stats.flow = self.flow.counters();
        self.stats.stream = self.stream.counters();
        let _ = self
            .out
            .send(OutMsg::Worker(self.id, Box::new(self.stats.clone())));
    }
}

impl Worker {
    /// Handles one message; false once the input has ended (the worker is
    /// then done). Batches go back to `free` for reuse.
    pub(crate) fn handle(&mut self, msg: WorkMsg, free: &Sender<Batch>) -> bool {
        match msg {
            WorkMsg::Batch(b) => {
                // Reloaded signatures take over between batches: every
                // packet is inspected by one whole engine.
                if let Some(u) = self.rules.as_mut().and_then(|w| w.poll()) {
                    self.detect.replace_engine(u.detect.clone());
                    self.observe.set_enabled(u.observe);
                }
                self.batch(&b);
                // Hand the buffers back for reuse; if the pool is full, drop.
                let _ = free.try_send(b);
                true
            }
            WorkMsg::Tick { pos, ts } => {
                self.observe.tick(pos, ts);
                let e = self.flow.expiring(ts);
                self.end_flows(e, pos, ts);
                true
            }
            WorkMsg::End { pos, ts } => {
                let e = self.flow.ending_all();
                self.end_flows(e, pos, ts);
                false
            }
        }
    }

    /// Sends the final counters and says the worker is done.
    pub(crate) fn finish(mut self) {
        if let (_, Some(done)) = self.held {
            self.emit(done);
        }
        self.publish();
        let _ = self.out.send(OutMsg::WorkerDone(self.id));
    }
}

pub(crate) fn run(
    id: usize,
    cfg: WorkerConfig,
    rx: Receiver<WorkMsg>,
    out: Sender<OutMsg>,
    free: Sender<Batch>,
) {
    let mut w = Worker::new(id, cfg, out);
    for msg in rx.iter() {
        w.more_queued = !rx.is_empty();
        if !w.handle(msg, &free) {
            break;
        }
    }
    w.finish();
}
