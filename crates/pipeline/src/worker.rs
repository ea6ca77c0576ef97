//! A worker: owns the flows hashed to it and turns packets into events.
//! Defragmentation, stream reassembly and detection will run here, on the
//! packets and flows this worker owns, without locks.

use crate::output::OutMsg;
use crate::stats::WorkerStats;
use crate::{Batch, WorkMsg};
use crossbeam_channel::{Receiver, Sender};
use std::time::{Duration, Instant};
use zonewatch_config::{Config, ProtoTimeouts};
use zonewatch_decode::{Decoded, Transport};
use zonewatch_flow::{FlowConfig, FlowTable, StateTimeouts, Timeouts};
use zonewatch_types::{AddrInfo, AnomalyRecord, Event, EventBody, EventKey, Timestamp};

const PUBLISH_EVERY: Duration = Duration::from_millis(500);

/// Bytes one TCP session may cost at worst: the boxed session, the
/// allocator's overhead, and its index entry at the lowest load factor.
const SESSION_COST_BYTES: u64 =
    (std::mem::size_of::<zonewatch_stream::TcpSession>() + 16 + (16 + 1) * 16 / 7) as u64;

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
    /// Parse app-layer protocols.
    pub(crate) app_layer: bool,
    /// Alerts carry payload, payload_printable, packet.
    alert_bytes: (bool, bool, bool),
    /// App-layer parser settings.
    app_cfg: zonewatch_applayer::AppConfig,
}

fn st(t: &ProtoTimeouts) -> StateTimeouts {
    StateTimeouts {
        new: t.new,
        established: t.established,
        closed: t.closed,
        emergency_new: t.emergency_new,
        emergency_established: t.emergency_established,
        emergency_closed: t.emergency_closed,
    }
}

impl WorkerConfig {
    pub(crate) fn from_config(
        c: &Config,
        workers: usize,
        inputs: &crate::Inputs,
        stage: crate::Stage,
    ) -> Self {
        let ifaces = match inputs {
            crate::Inputs::Interfaces(v) => {
                v.iter().map(|s| std::sync::Arc::from(s.as_str())).collect()
            }
            crate::Inputs::Files(_) => Vec::new(),
        };
        WorkerConfig {
            max_sessions: (c.stream_memcap / workers.max(1) as u64 / SESSION_COST_BYTES) as usize,
            stream: zonewatch_stream::StreamConfig {
                depth: c.stream_reassembly_depth,
                // The reassembly memcap is shared evenly, like the flow memcap.
                memcap_bytes: c.stream_reassembly_memcap / workers.max(1) as u64,
                midstream: c.stream_midstream,
                async_oneside: c.stream_async_oneside,
                policy: zonewatch_stream::OverlapPolicy::from_name(&c.stream_policy)
                    .unwrap_or(zonewatch_stream::OverlapPolicy::Bsd),
                retain_unacked_bytes: if c.stream_check_overlap_different_data {
                    zonewatch_stream::StreamConfig::default().retain_unacked_bytes
                } else {
                    0
                },
                ..Default::default()
            },
            ifaces: ifaces.clone(),
            stage,
            detect: None,
            observe: false,
            app_layer: c.app_layer.iter().any(|&b| b),
            alert_bytes: (c.alert_payload, c.alert_payload_printable, c.alert_packet),
            app_cfg: zonewatch_applayer::AppConfig {
                http: c.app_layer[0],
                dns: c.app_layer[1],
                tls: c.app_layer[2],
                ssh: c.app_layer[3],
                http_request_body_limit: c.http_request_body_limit as usize,
                http_response_body_limit: c.http_response_body_limit as usize,
                tls_inspect_encrypted: c.inspect_encrypted[0],
                ssh_inspect_encrypted: c.inspect_encrypted[1],
                ..Default::default()
            },
            flow: FlowConfig {
                // The flow memcap is shared evenly: each worker owns its table.
                memcap_bytes: c.flow_memcap / workers.max(1) as u64,
                timeouts: Timeouts {
                    tcp: st(&c.timeouts_tcp),
                    udp: st(&c.timeouts_udp),
                    icmp: st(&c.timeouts_icmp),
                    default: st(&c.timeouts_default),
                },
                hash_seed: c.flow_hash_seed,
                community_id_seed: c.community_id.then_some(c.community_id_seed),
                midstream: c.stream_midstream,
                iface_names: ifaces.clone(),
            },
        }
    }
}

struct Worker {
    id: usize,
    /// TCP reassembly and the sessions of this worker's TCP flows, by flow id.
    reasm: zonewatch_stream::Reassembler,
    sessions: hashbrown::HashMap<u64, Box<zonewatch_stream::TcpSession>>,
    max_sessions: usize,
    stream_events: Vec<zonewatch_stream::StreamEvent>,
    stage: crate::Stage,
    ifaces: Vec<std::sync::Arc<str>>,
    flows: FlowTable,
    stats: WorkerStats,
    out: Sender<OutMsg>,
    events: Vec<Event>,
    last_publish: Instant,
    detector: Option<zonewatch_detect::Detector>,
    hits: Vec<zonewatch_detect::Hit>,
    /// This packet's reassembled stream bytes: (to_server, offset, start, len) into `sbuf`.
    schunks: Vec<(bool, u64, u32, u32)>,
    sbuf: Vec<u8>,
    /// This packet's stream event names.
    snames: Vec<&'static str>,
    /// This packet's payload went into an established session.
    in_stream: bool,
    /// The session's stream sizes after this packet (client, server).
    stream_sizes: Option<[u64; 2]>,
    /// Observations for the anomaly detectors, in input order.
    observe: bool,
    obs: Vec<(EventKey, crate::Obs)>,
    /// App-layer parsing (HTTP, DNS, TLS, SSH) per flow.
    app_enabled: bool,
    app_cfg: zonewatch_applayer::AppConfig,
    apps: hashbrown::HashMap<u64, Box<AppFlow>>,
    app_out: Vec<zonewatch_applayer::AppOutput>,
    alert_bytes: bool,
    alert_bytes_cfg: (bool, bool, bool),
}

/// The anomaly events of one packet's decoder events.
fn anomaly_addr(d: &Decoded) -> Option<AddrInfo> {
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

/// The anomaly events of one packet's decoder events.
fn anomaly_events(pos: u64, ts: Timestamp, d: &Decoded, out: &mut Vec<Event>) {
    let addr = anomaly_addr(d);
    for (i, e) in d.events.iter().enumerate() {
        out.push(Event {
            key: EventKey { pos, sub: i as u64 },
            ts,
            flow_id: None,
            addr,
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

impl Worker {
    fn batch(&mut self, b: &Batch) {
        if self.stage == crate::Stage::DecodeOnly {
            self.stats.pkts += b.packets.len() as u64;
            self.stats.batches += 1;
            return;
        }
        for p in &b.packets {
            self.stats.pkts += 1;
            let d = &p.decoded;
            let first_event = self.events.len();
            let mut flow_view = None;
            let mut flow_slot = None;
            self.schunks.clear();
            self.sbuf.clear();
            self.snames.clear();
            self.in_stream = false;
            self.stream_sizes = None;
            self.app_out.clear();
            if !d.events.is_empty() {
                anomaly_events(p.pos, p.ts, d, &mut self.events);
            }
            if p.fragment {
                // Counted in its datagram's flow once reassembled.
            } else if let Some(tuple) = d.flow_tuple() {
                let tcp = match &d.transport {
                    Transport::Tcp(t) => Some(t),
                    _ => None,
                };
                let r = self.flows.packet(
                    p.pos,
                    p.ts,
                    p.iface,
                    &tuple,
                    p.wire_len,
                    p.pkts,
                    tcp,
                    &mut self.events,
                );
                self.stats.flow_pkts += p.pkts as u64;
                self.close_ended(first_event);
                if let Some(f) = self.flows.get_mut(r.slot) {
                    let id = f.flow_id;
                    // IGMP, OSPF, PIM, ...: no flow in Suricata, so none for
                    // signatures or in the events (no `flow_id`, no flow
                    // record); the table tracks them for the anomaly
                    // detectors only.
                    let flowed = zonewatch_decode::ip_proto_has_flow(
                        d.ip.map_or(4, |ip| ip.version),
                        tuple.proto,
                    );
                    let to_server = r.dir == zonewatch_types::Direction::ToServer;
                    let di = if to_server { 0 } else { 1 };
                    let established = match tuple.proto {
                        6 => matches!(
                            f.tcp_state,
                            zonewatch_flow::TcpState::Established
                                | zonewatch_flow::TcpState::FinWait1
                                | zonewatch_flow::TcpState::FinWait2
                                | zonewatch_flow::TcpState::CloseWait
                                | zonewatch_flow::TcpState::Closing
                                | zonewatch_flow::TcpState::LastAck
                                | zonewatch_flow::TcpState::TimeWait
                        ),
                        _ => f.pkts[0] > 0 && f.pkts[1] > 0,
                    };
                    if flowed {
                        flow_view = Some(zonewatch_detect::FlowView {
                            id,
                            to_server,
                            established,
                            first_in_dir: f.pkts[di] == p.pkts as u64,
                            app_proto: None,
                            app_proto_acked: false,
                            payload_inspection: true,
                        });
                        flow_slot = Some(r.slot);
                    }
                    if self.observe {
                        let o = observation(p, d, &tuple, r.dir, f.pkts);
                        self.obs.push((
                            EventKey {
                                pos: p.pos,
                                sub: crate::OBS_SUB,
                            },
                            crate::Obs::Packet(o),
                        ));
                    }
                    let bad_csum = tcp.is_some()
                        && p.verify_csum
                        && zonewatch_decode::transport_checksum_ok(
                            &b.data[p.start as usize..(p.start + p.len) as usize],
                            d,
                        ) == Some(false);
                    if bad_csum {
                        // Like Suricata: the stream engine ignores the segment.
                        self.stats.invalid_checksum += 1;
                    }
                    if let (Some(t), true, false) =
                        (tcp, self.stage == crate::Stage::Full, bad_csum)
                    {
                        let bytes = &b.data[p.start as usize..(p.start + p.len) as usize];
                        let payload = bytes
                            .get(
                                t.payload_offset as usize
                                    ..(t.payload_offset + t.payload_len) as usize,
                            )
                            .unwrap_or(&[]);
                        self.stream(p.pos, p.ts, id, r.dir, t, payload, d);
                    }
                    if tcp.is_some() && self.stage == crate::Stage::Full {
                        // As in Suricata, "established" is the stream
                        // engine's view: a session whose segments it took
                        // (not one made of segments with bad checksums).
                        let est = self.sessions.get(&id).is_some_and(|s| {
                            s.state() == zonewatch_stream::SessionState::Established
                        });
                        if let Some(v) = &mut flow_view {
                            v.established = est;
                        }
                        // Suricata moves a session picked up midstream to
                        // ESTABLISHED, so its FINs later close it in the
                        // flow record too (smb1-03-midstream).
                        let picked_up = self.sessions.get(&id).is_some_and(|s| {
                            s.is_midstream()
                                && s.state() == zonewatch_stream::SessionState::Established
                        });
                        if let (true, Some(f)) = (picked_up, self.flows.get_mut(r.slot)) {
                            f.tcp_state = f.tcp_state.picked_up();
                        }
                    }
                    if self.app_enabled {
                        // Payload inspection ends with the packets after the
                        // one whose data made the session encrypted: that
                        // packet is still inspected, as in Suricata's IDS
                        // mode, where its data is parsed only once
                        // acknowledged (suricata-verify ssh-newkeys).
                        let encrypted_before = self
                            .apps
                            .get(&id)
                            .is_some_and(|a| a.state.payload_inspection_over());
                        let bytes = &b.data[p.start as usize..(p.start + p.len) as usize];
                        self.app_layer(id, &tuple, r.dir, d, bytes);
                        if let Some(v) = &mut flow_view {
                            let app = self.apps.get(&id);
                            v.app_proto = app.and_then(|a| a.state.app_proto());
                            v.app_proto_acked = app.is_some_and(|a| a.acked);
                            v.payload_inspection = !encrypted_before;
                        }
                    }
                    for e in &mut self.events[first_event..] {
                        if flowed && e.key.pos == p.pos && e.key.sub < EventKey::FLOW_END {
                            e.flow_id = Some(id);
                        }
                    }
                }
            }
            if self.detector.is_some() || !self.app_out.is_empty() {
                let bytes = &b.data[p.start as usize..(p.start + p.len) as usize];
                self.detect(p, bytes, flow_view, flow_slot);
            }
            if let Some(name) = self.ifaces.get(p.iface as usize) {
                for e in &mut self.events[first_event..] {
                    e.in_iface = Some(name.clone());
                }
            }
        }
        self.stats.batches += 1;
        let us = b.created.elapsed().as_micros() as u64;
        let _ = self
            .stats
            .latency_us
            .record_n(us.max(1), b.packets.len() as u64);
    }

    /// Feeds one TCP segment to its flow's session; stream events become
    /// anomaly events of the packet. Reassembled bytes go to the sink that
    /// detection will read (today: counted).
    #[allow(clippy::too_many_arguments)]
    fn stream(
        &mut self,
        pos: u64,
        ts: Timestamp,
        flow_id: u64,
        dir: zonewatch_types::Direction,
        tcp: &zonewatch_decode::TcpInfo,
        payload: &[u8],
        d: &Decoded,
    ) {
        if !self.sessions.contains_key(&flow_id) {
            if self.sessions.len() >= self.max_sessions {
                // At the stream memcap no new session starts (Suricata:
                // tcp.ssn_memcap_drop); the flow is still tracked.
                self.stats.ssn_memcap_drop += 1;
                return;
            }
            let s = Box::new(self.reasm.new_session());
            self.sessions.insert(flow_id, s);
        }
        let s = self.sessions.get_mut(&flow_id).expect("just ensured");
        self.stream_events.clear();
        // Reassembled bytes are kept for detection when rules are loaded.
        let keep = self.detector.is_some() || self.app_enabled;
        let (sbuf, schunks) = (&mut self.sbuf, &mut self.schunks);
        self.reasm.segment(
            s,
            dir,
            tcp,
            payload,
            &mut self.stream_events,
            &mut |d, off, data| {
                if keep && !data.is_empty() {
                    schunks.push((
                        d == zonewatch_types::Direction::ToServer,
                        off,
                        sbuf.len() as u32,
                        data.len() as u32,
                    ));
                    sbuf.extend_from_slice(data);
                }
            },
        );
        self.in_stream = s.state() == zonewatch_stream::SessionState::Established;
        self.stream_sizes = Some([
            s.half(zonewatch_types::Direction::ToServer).next_offset + 1,
            s.half(zonewatch_types::Direction::ToClient).next_offset + 1,
        ]);
        for e in &self.stream_events {
            self.snames.push(e.name());
        }
        if self.stream_events.is_empty() {
            return;
        }
        let base = self
            .events
            .iter()
            .filter(|e| e.key.pos == pos && e.key.sub < EventKey::STATS)
            .count() as u64;
        let addr = anomaly_addr(d);
        let mut i = 0;
        for e in &self.stream_events {
            *self.stats.stream_events.entry(e.name()).or_default() += 1;
            // Events whose Suricata rules are `noalert` counters (gaps,
            // retransmissions, ...) are counted only, as Suricata does.
            if !e.alerts_by_default() {
                continue;
            }
            i += 1;
            self.events.push(Event {
                key: EventKey {
                    pos,
                    sub: base + i - 1,
                },
                ts,
                flow_id: Some(flow_id),
                addr,
                community_id: None,
                in_iface: None,
                body: EventBody::Anomaly(AnomalyRecord {
                    app_proto: None,
                    kind: "stream",
                    event: e.name(),
                }),
            });
        }
    }

    /// Releases the stream sessions of flows whose end events were pushed
    /// from `from` on (what is buffered past holes is flushed, as gaps).
    fn close_ended(&mut self, from: usize) {
        let end = self.events.len();
        for i in from..end {
            if let (EventBody::Flow(_), Some(id)) = (&self.events[i].body, self.events[i].flow_id) {
                if let Some(d) = &mut self.detector {
                    d.flow_end(id);
                }
                if let Some(mut a) = self.apps.remove(&id) {
                    if let EventBody::Flow(fr) = &mut self.events[i].body {
                        fr.app_proto = a.state.app_proto().map(|p| p.name());
                    }
                    // Transactions still open (an HTTP response ended by the
                    // close) are written with the flow's end, just before it.
                    let mut outs = Vec::new();
                    a.state.on_close(&mut outs);
                    let (key, ts, addr) =
                        (self.events[i].key, self.events[i].ts, self.events[i].addr);
                    let first_pos = key.sub & !EventKey::FLOW_END;
                    let mut k = 0u64;
                    for o in outs {
                        if let zonewatch_applayer::AppOutput::Tx(tx) = o {
                            if !tx.complete || k >= 16 {
                                continue;
                            }
                            self.events.push(Event {
                                key: EventKey {
                                    pos: key.pos,
                                    sub: (1 << 58) + (first_pos & ((1 << 54) - 1)) * 16 + k,
                                },
                                ts,
                                flow_id: Some(id),
                                addr,
                                community_id: None,
                                in_iface: None,
                                body: EventBody::App(Box::new(app_record(&tx))),
                            });
                            k += 1;
                        }
                    }
                }
                if let Some(s) = self.sessions.remove(&id) {
                    let s = *s;
                    self.stream_events.clear();
                    self.reasm
                        .close(s, &mut self.stream_events, &mut |_, _, _| {});
                    for e in &self.stream_events {
                        *self.stats.stream_events.entry(e.name()).or_default() += 1;
                    }
                }
            }
        }
    }

    /// Sends this message's events (sorted by key) and the watermark: every
    /// event this worker sends later sorts at or above `done_below`.
    fn emit(&mut self, done_below: EventKey) {
        let mut events = std::mem::take(&mut self.events);
        events.sort_by_key(|e| e.key);
        let obs = std::mem::take(&mut self.obs);
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
            if !self
                .flows
                .end_some(&mut e, pos, ts, CHUNK, &mut self.events)
            {
                break;
            }
            self.close_ended(from);
            let next = self.flows.next_end_key(&e, pos).unwrap_or(EventKey {
                pos: pos + 1,
                sub: 0,
            });
            self.emit(next);
        }
        self.emit(EventKey {
            pos: pos + 1,
            sub: 0,
        });
    }

    /// Feeds the flow's app-layer state with this packet's stream bytes
    /// (TCP) or payload (UDP); outputs wait in `app_out` for detection.
    fn app_layer(
        &mut self,
        flow_id: u64,
        tuple: &zonewatch_types::FlowTuple,
        dir: zonewatch_types::Direction,
        d: &Decoded,
        bytes: &[u8],
    ) {
        self.app_out.clear();
        if !matches!(tuple.proto, 6 | 17) {
            return;
        }
        let server_port = match dir {
            zonewatch_types::Direction::ToServer => tuple.dport,
            zonewatch_types::Direction::ToClient => tuple.sport,
        };
        // A parser is made at the flow's first payload, so a flood of
        // empty handshakes costs no app-layer memory.
        let has_data = match d.transport {
            Transport::Tcp(_) => !self.schunks.is_empty(),
            Transport::Udp { payload_len, .. } => payload_len > 0,
            _ => false,
        };
        if !has_data && !self.apps.contains_key(&flow_id) {
            return;
        }
        let cfg = &self.app_cfg;
        let st = self.apps.entry(flow_id).or_insert_with(|| {
            Box::new(AppFlow {
                state: zonewatch_applayer::AppState::new(*cfg, tuple.proto, server_port),
                next: [0, 0],
                ident: None,
                acked: false,
            })
        });
        match d.transport {
            Transport::Tcp(_) => {
                for &(ts, off, start, len) in &self.schunks {
                    let di = if ts { 0 } else { 1 };
                    let cd = if ts {
                        zonewatch_types::Direction::ToServer
                    } else {
                        zonewatch_types::Direction::ToClient
                    };
                    if off > st.next[di] {
                        st.state.on_gap(cd, off - st.next[di], &mut self.app_out);
                    }
                    st.next[di] = off + len as u64;
                    st.state.on_stream(
                        cd,
                        &self.sbuf[start as usize..(start + len) as usize],
                        &mut self.app_out,
                    );
                    if st.ident.is_none() && !st.acked && st.state.app_proto().is_some() {
                        st.ident = Some((ts, off + len as u64));
                    }
                }
                // Suricata (IDS mode) parses a direction's bytes when a
                // packet of the other direction acknowledges them: the
                // protocol is known to packet rules from that packet on.
                if let Some((ts, end)) = st.ident {
                    let from_peer = (dir == zonewatch_types::Direction::ToServer) != ts;
                    let half = if ts {
                        zonewatch_types::Direction::ToServer
                    } else {
                        zonewatch_types::Direction::ToClient
                    };
                    let acked = match self.sessions.get(&flow_id) {
                        Some(s) => s.is_async() || from_peer && s.half(half).acked >= end,
                        None => true,
                    };
                    if acked {
                        st.acked = true;
                        st.ident = None;
                    }
                }
            }
            Transport::Udp {
                payload_offset,
                payload_len,
                ..
            } => {
                let payload = bytes
                    .get(payload_offset as usize..(payload_offset + payload_len) as usize)
                    .unwrap_or(&[]);
                if !payload.is_empty() {
                    st.state.on_datagram(dir, payload, &mut self.app_out);
                }
                st.acked = st.state.app_proto().is_some();
            }
            _ => {}
        }
    }

    /// The next free `sub` at this position for the packet's own events.
    fn next_sub(&self, pos: u64) -> u64 {
        self.events
            .iter()
            .filter(|e| e.key.pos == pos && e.key.sub < EventKey::STATS)
            .count() as u64
    }

    /// Runs the signature engine on one packet and on the transactions the
    /// app layer completed on it; alerts, app-layer records and app-layer
    /// anomalies become events of the packet, after its other events.
    fn detect(
        &mut self,
        p: &crate::PacketMeta,
        bytes: &[u8],
        flow: Option<zonewatch_detect::FlowView>,
        slot: Option<u32>,
    ) {
        let app_proto = flow.and_then(|f| f.app_proto);
        let app_name = app_proto.map(|a| a.name());
        let mut alerts: Vec<(
            zonewatch_detect::Hit,
            Option<Box<zonewatch_types::AppRecord>>,
        )> = Vec::new();
        let outputs = std::mem::take(&mut self.app_out);
        // A midstream flow whose first bytes were the server's: as after
        // Suricata's FlowSwap, signatures see the real client's packets as
        // to_server (the flow table keeps its first-packet orientation).
        let swapped = flow
            .and_then(|f| self.apps.get(&f.id))
            .is_some_and(|a| a.state.reversed());
        let det_flow = flow.map(|f| zonewatch_detect::FlowView {
            to_server: f.to_server != swapped,
            ..f
        });
        if let Some(det) = &mut self.detector {
            let chunks: Vec<zonewatch_detect::StreamChunk<'_>> = self
                .schunks
                .iter()
                .map(|&(ts, off, s, l)| zonewatch_detect::StreamChunk {
                    to_server: ts != swapped,
                    offset: off,
                    data: &self.sbuf[s as usize..(s + l) as usize],
                })
                .collect();
            let view = zonewatch_detect::PacketView {
                data: bytes,
                decoded: &p.decoded,
                ts: p.ts,
                flow: det_flow,
                stream: &chunks,
                payload_in_stream: self.in_stream,
                reassembled: p.pkts > 1,
                stream_events: &self.snames,
                stream_sizes: self.stream_sizes,
            };
            self.hits.clear();
            det.inspect(&view, &mut self.hits);
            for h in &self.hits {
                let app = app_name.map(|n| {
                    Box::new(zonewatch_types::AppRecord {
                        app_proto: n,
                        key: n,
                        tx_id: 0,
                        record: serde_json::Value::Null,
                    })
                });
                alerts.push((*h, app));
            }
            for o in &outputs {
                if let zonewatch_applayer::AppOutput::Tx(tx) = o {
                    self.hits.clear();
                    det.inspect_tx(&view, tx, &mut self.hits);
                    for h in &self.hits {
                        alerts.push((*h, Some(Box::new(app_record(tx)))));
                    }
                }
            }
        }
        let mut sub = self.next_sub(p.pos);
        let addr = anomaly_addr(&p.decoded);
        let flow_id = flow.map(|f| f.id);
        if !alerts.is_empty() {
            if let Some(f) = slot.and_then(|s| self.flows.get_mut(s)) {
                f.alerted = true;
            }
        }
        if let Some(det) = &self.detector {
            let engine = det.engine().clone();
            for (h, app) in alerts {
                let m = engine.meta(h.rule);
                self.events.push(Event {
                    key: EventKey { pos: p.pos, sub },
                    ts: p.ts,
                    flow_id,
                    addr,
                    community_id: None,
                    in_iface: None,
                    body: EventBody::Alert(Box::new(zonewatch_types::AlertRecord {
                        rule: h.rule,
                        rule_action: m.action,
                        gid: m.gid,
                        signature_id: m.sid,
                        rev: m.rev,
                        signature: m.msg.clone(),
                        category: m.category.clone(),
                        severity: m.severity,
                        metadata: m.metadata.clone(),
                        stream: h.stream,
                        to_server: det_flow.map(|f| f.to_server),
                        pcap_cnt: Some(p.cnt),
                        target_dest: m.target_dest,
                        evidence: None,
                        log: None,
                        bytes: self.alert_bytes.then(|| {
                            let pl = p.decoded.payload(bytes);
                            Box::new(zonewatch_types::AlertBytes {
                                payload: (self.alert_bytes_cfg.0 || self.alert_bytes_cfg.1)
                                    .then(|| pl.to_vec()),
                                printable: self.alert_bytes_cfg.1,
                                packet: self.alert_bytes_cfg.2.then(|| bytes.to_vec()),
                            })
                        }),
                        app,
                        icmp: match p.decoded.transport {
                            Transport::Icmp {
                                icmp_type,
                                icmp_code,
                                ..
                            } => Some((icmp_type, icmp_code)),
                            _ => None,
                        },
                    })),
                });
                sub += 1;
            }
        }
        if self.observe {
            if let (Some(f), Some(a)) = (flow, addr) {
                for o in &outputs {
                    if let zonewatch_applayer::AppOutput::Tx(tx) = o {
                        if tx.proto == zonewatch_applayer::AppProto::Dns && tx.complete {
                            let (client, server) = if f.to_server {
                                (a.src_ip, a.dest_ip)
                            } else {
                                (a.dest_ip, a.src_ip)
                            };
                            if let Some(m) = dns_message(tx, p.ts, client, server) {
                                self.obs.push((
                                    EventKey {
                                        pos: p.pos,
                                        sub: crate::OBS_SUB + 1,
                                    },
                                    crate::Obs::Dns(Box::new(m)),
                                ));
                            }
                        }
                    }
                }
            }
        }
        // Records of finished transactions and app-layer anomalies. A flow
        // picked up midstream whose first bytes were the server's is written
        // the right way round (the app layer knows who the client is).
        let record_addr = match (flow_addr(addr, flow), swapped) {
            (Some(a), true) => Some(AddrInfo {
                src_ip: a.dest_ip,
                src_port: a.dest_port,
                dest_ip: a.src_ip,
                dest_port: a.src_port,
                ..a
            }),
            (a, _) => a,
        };
        let mut outputs = outputs;
        for o in outputs.drain(..) {
            let body = match o {
                // The record moves into the event (no deep copy of its JSON).
                zonewatch_applayer::AppOutput::Tx(mut tx) if tx.complete => {
                    EventBody::App(Box::new(zonewatch_types::AppRecord {
                        app_proto: tx.proto.name(),
                        key: tx.eve_key(),
                        tx_id: tx.id,
                        record: std::mem::take(&mut tx.eve),
                    }))
                }
                zonewatch_applayer::AppOutput::Event(e) => {
                    *self.stats.app_events.entry(e.name).or_default() += 1;
                    EventBody::Anomaly(AnomalyRecord {
                        kind: "applayer",
                        event: e.name,
                        app_proto: app_name,
                    })
                }
                _ => continue,
            };
            self.events.push(Event {
                key: EventKey { pos: p.pos, sub },
                ts: p.ts,
                flow_id,
                addr: record_addr,
                community_id: None,
                in_iface: None,
                body,
            });
            sub += 1;
        }
        // Reuse the buffer; the outputs belonged to this packet only.
        self.app_out = outputs;
    }

    fn publish(&mut self) {
        self.last_publish = Instant::now();
        if let Some(d) = &self.detector {
            self.stats.detect = d.counters.clone();
        }
        self.stats.flow = self.flows.counters();
        self.stats.stream = self.reasm.counters();
        let _ = self
            .out
            .send(OutMsg::Worker(self.id, Box::new(self.stats.clone())));
    }
}

/// A DNS transaction for the DNS-tunnel detector.
fn dns_message(
    tx: &zonewatch_applayer::Transaction,
    ts: Timestamp,
    client: std::net::IpAddr,
    server: std::net::IpAddr,
) -> Option<crate::DnsMessage> {
    let e = &tx.eve;
    let qname = e.get("rrname")?.as_str()?.trim_end_matches('.').to_string();
    let qtype = match e.get("rrtype").and_then(|v| v.as_str()).unwrap_or("") {
        "A" => 1,
        "NS" => 2,
        "CNAME" => 5,
        "SOA" => 6,
        "NULL" => 10,
        "PTR" => 12,
        "MX" => 15,
        "TXT" => 16,
        "AAAA" => 28,
        "SRV" => 33,
        "SVCB" => 64,
        "HTTPS" => 65,
        "ANY" => 255,
        _ => 0,
    };
    let response = e.get("type").and_then(|v| v.as_str()) == Some("answer");
    let answers = e.get("answers").and_then(|v| v.as_array());
    let (mut bytes, mut txt) = (0u32, 0u32);
    for a in answers.into_iter().flatten() {
        let n = a
            .get("rdata")
            .and_then(|v| v.as_str())
            .map_or(0, |s| s.len()) as u32;
        bytes = bytes.saturating_add(n);
        if matches!(
            a.get("rrtype").and_then(|v| v.as_str()),
            Some("TXT" | "NULL")
        ) {
            txt = txt.saturating_add(n);
        }
    }
    Some(crate::DnsMessage {
        ts,
        client,
        server,
        qname,
        qtype,
        response,
        rcode: tx.nums.dns_rcode.unwrap_or(0),
        answer_count: answers.map_or(0, |a| a.len().min(u16::MAX as usize) as u16),
        answer_bytes: bytes,
        txt_null_bytes: txt,
    })
}

/// The flow's app-layer parser and where each direction's stream is.
struct AppFlow {
    state: zonewatch_applayer::AppState,
    next: [u64; 2],
    /// TCP: the direction (to_server) and stream end offset of the data
    /// that identified the protocol, until the peer acknowledges it.
    ident: Option<(bool, u64)>,
    /// The identifying data was acknowledged (UDP: at once); see
    /// [`zonewatch_detect::FlowView::app_proto_acked`].
    acked: bool,
}

/// An app-layer transaction as an EVE record.
fn app_record(tx: &zonewatch_applayer::Transaction) -> zonewatch_types::AppRecord {
    zonewatch_types::AppRecord {
        app_proto: tx.proto.name(),
        key: tx.eve_key(),
        tx_id: tx.id,
        record: tx.eve.clone(),
    }
}

/// Addresses of a flow's record: the flow's client first, whichever way
/// the packet went.
fn flow_addr(addr: Option<AddrInfo>, flow: Option<zonewatch_detect::FlowView>) -> Option<AddrInfo> {
    match (addr, flow) {
        (Some(a), Some(f)) if !f.to_server => Some(AddrInfo {
            src_ip: a.dest_ip,
            src_port: a.dest_port,
            dest_ip: a.src_ip,
            dest_port: a.src_port,
            ..a
        }),
        _ => addr,
    }
}

/// The anomaly detectors' view of one packet of a flow.
fn observation(
    p: &crate::PacketMeta,
    d: &Decoded,
    tuple: &zonewatch_types::FlowTuple,
    dir: zonewatch_types::Direction,
    pkts: [u64; 2],
) -> zonewatch_anomaly::PacketObs {
    let ip = d.ip.expect("flow packets have IP");
    let mut o = zonewatch_anomaly::PacketObs::new(p.ts, ip.src, ip.dst, ip.proto);
    let (sport, dport) = match d.transport {
        Transport::Tcp(t) => {
            o.tcp_flags = t.flags;
            (t.sport, t.dport)
        }
        Transport::Udp { sport, dport, .. } => (sport, dport),
        Transport::Icmp {
            icmp_type,
            icmp_code,
            ..
        } => {
            o.icmp = Some((icmp_type, icmp_code));
            (0, 0)
        }
        Transport::None => (tuple.sport, tuple.dport),
    };
    o.sport = sport;
    o.dport = dport;
    o.ip_len = ip.header_len + ip.payload_len;
    o.ttl = ip.ttl;
    o.direction = dir;
    o.flow_pkts_toserver = pkts[0].min(u32::MAX as u64) as u32;
    o.flow_pkts_toclient = pkts[1].min(u32::MAX as u64) as u32;
    for e in d.events.iter() {
        o.decoder_events.push(e.rule_name());
    }
    o
}

pub(crate) fn run(
    id: usize,
    cfg: WorkerConfig,
    rx: Receiver<WorkMsg>,
    out: Sender<OutMsg>,
    free: Sender<Batch>,
) {
    let mut w = Worker {
        id,
        reasm: zonewatch_stream::Reassembler::new(cfg.stream),
        sessions: hashbrown::HashMap::new(),
        max_sessions: cfg.max_sessions,
        stream_events: Vec::new(),
        stage: cfg.stage,
        ifaces: cfg.ifaces,
        flows: FlowTable::new(cfg.flow),
        stats: WorkerStats::new(),
        out,
        events: Vec::new(),
        last_publish: Instant::now(),
        detector: cfg.detect.map(zonewatch_detect::Detector::new),
        hits: Vec::new(),
        schunks: Vec::new(),
        sbuf: Vec::new(),
        snames: Vec::new(),
        in_stream: false,
        stream_sizes: None,
        observe: cfg.observe,
        obs: Vec::new(),
        app_enabled: cfg.stage == crate::Stage::Full && cfg.app_layer,
        app_cfg: cfg.app_cfg,
        apps: hashbrown::HashMap::new(),
        app_out: Vec::new(),
        alert_bytes: cfg.alert_bytes.0 || cfg.alert_bytes.1 || cfg.alert_bytes.2,
        alert_bytes_cfg: cfg.alert_bytes,
    };
    for msg in rx.iter() {
        match msg {
            WorkMsg::Batch(b) => {
                w.batch(&b);
                let done = b.packets.last().map(|p| p.pos + 1).unwrap_or(0);
                w.emit(EventKey { pos: done, sub: 0 });
                // Hand the buffers back for reuse; if the pool is full, drop.
                let _ = free.try_send(b);
            }
            WorkMsg::Tick { pos, ts } => {
                if w.observe && w.id == 0 {
                    // One tick for the detectors, from one worker.
                    w.obs.push((EventKey { pos, sub: 0 }, crate::Obs::Tick(ts)));
                }
                let e = w.flows.expiring(ts);
                w.end_flows(e, pos, ts);
            }
            WorkMsg::End { pos, ts } => {
                let e = w.flows.ending_all();
                w.end_flows(e, pos, ts);
                break;
            }
        }
    }
    w.publish();
    let _ = w.out.send(OutMsg::WorkerDone(id));
}
