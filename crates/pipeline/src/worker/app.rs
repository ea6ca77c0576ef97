//! The app-layer stage: one parser per TCP/UDP flow with payload, fed
//! with the stream stage's in-order chunks or the datagram; its outputs
//! (transactions, app-layer anomalies) wait in [`AppStage::out`] for the
//! signatures, then become events of the packet.

use super::stream::StreamStage;
use super::{FlowHit, PacketCtx};
use crate::stats::WorkerStats;
use zonewatch_applayer::{AppConfig, AppOutput, AppProto, AppState, FileInfo, Transaction};
use zonewatch_decode::Transport;
use zonewatch_detect::FlowView;
use zonewatch_types::{
    ipproto, AddrInfo, AnomalyRecord, AppRecord, Direction, Event, EventBody, EventKey,
};

/// The flow's app-layer parser and where each direction's stream is.
struct AppFlow {
    state: AppState,
    /// Stream offset parsed up to, per direction (to server, to client).
    next: [u64; 2],
    /// TCP: the direction and stream end offset of the data that
    /// identified the protocol, until the peer acknowledges it.
    ident: Option<(Direction, u64)>,
    /// The identifying data was acknowledged (UDP: at once); see
    /// [`zonewatch_detect::FlowView::app_proto_acked`].
    acked: bool,
}

/// What the app layer knows of a flow after a packet, for signatures.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct AppView {
    pub app_proto: Option<AppProto>,
    pub acked: bool,
    /// Payload inspection was still on before this packet.
    pub inspect_payload: bool,
}

/// The app-layer record types (`http`, `dns`, ...) the output writes
/// (`output.types`). A transaction of another type makes no event: its
/// record would only be thrown away by the output thread, after a trip
/// through the queue (a fifth of the output thread's time without rules).
#[derive(Debug, Clone, Copy)]
pub(crate) struct RecordTypes {
    protos: u32,
    /// `fileinfo` records.
    pub files: bool,
}

impl RecordTypes {
    pub fn from_types(types: &[String]) -> Self {
        RecordTypes {
            protos: types
                .iter()
                .filter_map(|t| AppProto::from_name(t))
                .fold(0, |m, p| m | Self::bit(p)),
            files: types.iter().any(|t| t == "fileinfo"),
        }
    }

    fn bit(p: AppProto) -> u32 {
        1 << (p as u32 % 32)
    }

    pub fn wants(self, p: AppProto) -> bool {
        self.protos & Self::bit(p) != 0
    }
}

pub(super) struct AppStage {
    /// Parse app-layer protocols at all.
    enabled: bool,
    cfg: AppConfig,
    records: RecordTypes,
    flows: hashbrown::HashMap<u64, Box<AppFlow>>,
    /// This packet's outputs, in the order the parsers made them.
    pub out: Vec<AppOutput>,
}

fn dir_index(dir: Direction) -> usize {
    match dir {
        Direction::ToServer => 0,
        Direction::ToClient => 1,
    }
}

impl AppStage {
    pub fn new(enabled: bool, cfg: AppConfig, records: RecordTypes) -> Self {
        AppStage {
            enabled,
            cfg,
            records,
            flows: hashbrown::HashMap::new(),
            out: Vec::new(),
        }
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    pub fn begin_packet(&mut self) {
        self.out.clear();
    }

    /// The flow's first bytes were the server's (picked up midstream): the
    /// app layer knows who the client is.
    pub fn reversed(&self, flow_id: u64) -> bool {
        self.flows.get(&flow_id).is_some_and(|a| a.state.reversed())
    }

    /// Feeds the flow's parser with this packet's stream bytes (TCP) or
    /// payload (UDP); what signatures then know of the flow.
    pub fn packet(&mut self, ctx: &PacketCtx<'_>, flow: &FlowHit, stream: &StreamStage) -> AppView {
        // Payload inspection ends with the packets after the one whose
        // data made the session encrypted: that packet is still
        // inspected, as in Suricata's IDS mode, where its data is parsed
        // only once acknowledged (suricata-verify ssh-newkeys).
        let encrypted_before = self
            .flows
            .get(&flow.id)
            .is_some_and(|a| a.state.payload_inspection_over());
        self.feed(ctx, flow, stream);
        let app = self.flows.get(&flow.id);
        AppView {
            app_proto: app.and_then(|a| a.state.app_proto()),
            acked: app.is_some_and(|a| a.acked),
            inspect_payload: !encrypted_before,
        }
    }

    fn feed(&mut self, ctx: &PacketCtx<'_>, flow: &FlowHit, stream: &StreamStage) {
        self.out.clear();
        let tuple = &flow.tuple;
        if !matches!(tuple.proto, ipproto::TCP | ipproto::UDP) {
            return;
        }
        let server_port = match flow.dir {
            Direction::ToServer => tuple.dport,
            Direction::ToClient => tuple.sport,
        };
        let d = &ctx.meta.decoded;
        // A parser is made at the flow's first payload, so a flood of
        // empty handshakes costs no app-layer memory.
        let has_data = match d.transport {
            Transport::Tcp(_) => !stream.out.chunks.is_empty(),
            Transport::Udp { payload_len, .. } => payload_len > 0,
            _ => false,
        };
        if !has_data && !self.flows.contains_key(&flow.id) {
            return;
        }
        let cfg = &self.cfg;
        let st = self.flows.entry(flow.id).or_insert_with(|| {
            Box::new(AppFlow {
                state: AppState::new(*cfg, tuple.proto, server_port),
                next: [0, 0],
                ident: None,
                acked: false,
            })
        });
        match d.transport {
            Transport::Tcp(_) => {
                for c in &stream.out.chunks {
                    let (cd, di) = (c.dir(), dir_index(c.dir()));
                    if c.offset > st.next[di] {
                        st.state.on_gap(cd, c.offset - st.next[di], &mut self.out);
                    }
                    st.next[di] = c.end();
                    st.state.on_stream(cd, stream.out.data(c), &mut self.out);
                    if st.ident.is_none() && !st.acked && st.state.app_proto().is_some() {
                        st.ident = Some((cd, c.end()));
                    }
                }
                // Suricata (IDS mode) parses a direction's bytes when a
                // packet of the other direction acknowledges them: the
                // protocol is known to packet rules from that packet on.
                if let Some((half, end)) = st.ident {
                    let from_peer = flow.dir != half;
                    if stream.acked(flow.id, half, end, from_peer) {
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
                let payload = ctx
                    .bytes
                    .get(payload_offset as usize..(payload_offset + payload_len) as usize)
                    .unwrap_or(&[]);
                if !payload.is_empty() {
                    st.state.on_datagram(flow.dir, payload, &mut self.out);
                }
                st.acked = st.state.app_proto().is_some();
            }
            _ => {}
        }
    }

    /// Ends the parser of the flow whose end event is `events[i]`: that
    /// event gets the flow's `app_proto`, and the transactions the close
    /// completed (an HTTP response ended by the close) are pushed, keyed to
    /// be written with the flow's end, just before it.
    pub fn close(&mut self, events: &mut Vec<Event>, i: usize) {
        let flow_end = &mut events[i];
        let Some(id) = flow_end.flow_id else { return };
        let Some(mut a) = self.flows.remove(&id) else {
            return;
        };
        if let EventBody::Flow(fr) = &mut flow_end.body {
            fr.app_proto = a.state.app_proto().map(|p| p.name());
        }
        let (key, ts, addr) = (flow_end.key, flow_end.ts, flow_end.addr);
        let mut outs = Vec::new();
        a.state.on_close(&mut outs);
        let records = self.records;
        let completed = outs.into_iter().filter_map(|o| match o {
            AppOutput::Tx(tx) if tx.complete && records.wants(tx.proto) => Some(into_record(tx)),
            AppOutput::File(f) if records.files => Some(file_record(&f)),
            _ => None,
        });
        for (k, rec) in (0..EventKey::CLOSE_TX_PER_FLOW).zip(completed) {
            events.push(Event {
                key: EventKey::close_tx(key, k),
                ts,
                flow_id: Some(id),
                addr,
                community_id: None,
                in_iface: None,
                body: EventBody::App(Box::new(rec)),
            });
        }
    }

    /// The records of this packet's finished transactions and its app-layer
    /// anomalies, as events of the packet's `flow` numbered from `sub`.
    pub fn records(
        &mut self,
        ctx: &PacketCtx<'_>,
        flow: Option<FlowView>,
        addr: Option<AddrInfo>,
        mut sub: u64,
        events: &mut Vec<Event>,
        stats: &mut WorkerStats,
    ) {
        let flow_id = flow.map(|f| f.id);
        let app_name = flow.and_then(|f| f.app_proto).map(|a| a.name());
        for o in self.out.drain(..) {
            let body = match o {
                AppOutput::Tx(tx) if tx.complete && self.records.wants(tx.proto) => {
                    EventBody::App(Box::new(into_record(tx)))
                }
                AppOutput::File(f) if self.records.files => {
                    EventBody::App(Box::new(file_record(&f)))
                }
                AppOutput::Event(e) => {
                    *stats.app_events.entry(e.name).or_default() += 1;
                    EventBody::Anomaly(AnomalyRecord {
                        kind: "applayer",
                        event: e.name,
                        app_proto: app_name,
                    })
                }
                _ => continue,
            };
            events.push(Event {
                key: EventKey {
                    pos: ctx.meta.pos,
                    sub,
                },
                ts: ctx.meta.ts,
                flow_id,
                addr,
                community_id: None,
                in_iface: None,
                body,
            });
            sub += 1;
        }
    }
}

/// A finished file as a `fileinfo` record of its transaction.
fn file_record(f: &FileInfo) -> AppRecord {
    AppRecord {
        app_proto: f.proto.name(),
        key: "fileinfo",
        tx_id: f.tx_id,
        record: f.eve(),
    }
}

/// A finished transaction as an EVE record: the record moves into the
/// event (no deep copy of its JSON).
fn into_record(mut tx: Box<Transaction>) -> AppRecord {
    AppRecord {
        app_proto: tx.proto.name(),
        key: tx.eve_key(),
        tx_id: tx.id,
        record: std::mem::take(&mut tx.eve),
    }
}

/// An app-layer transaction as an EVE record (copied: the transaction is
/// still needed).
pub(super) fn app_record(tx: &Transaction) -> AppRecord {
    AppRecord {
        app_proto: tx.proto.name(),
        key: tx.eve_key(),
        tx_id: tx.id,
        record: tx.eve.clone(),
    }
}
