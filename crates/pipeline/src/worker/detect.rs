//! The detect stage: the worker's signature [`Detector`] (the compiled
//! engine is shared read-only) over the packet, the stream bytes it made
//! contiguous and the transactions the app layer completed on it.

use super::stream::StreamOutput;
use super::PacketCtx;
use zonewatch_applayer::AppOutput;
use zonewatch_decode::Transport;
use zonewatch_detect::{
    AlertBytesConfig, AlertPacket, DetectCounters, Detector, FlowView, Hit, PacketView, StreamChunk,
};
use zonewatch_types::{AppRecord, Event, EventBody, EventKey};

pub(super) struct DetectStage {
    /// Absent without rules.
    detector: Option<Detector>,
    /// Scratch for one inspection's hits.
    hits: Vec<Hit>,
    /// This packet's alerts, with the transaction each matched in (or the
    /// flow's app protocol).
    alerts: Vec<(Hit, Option<Box<AppRecord>>)>,
    bytes: AlertBytesConfig,
}

impl DetectStage {
    pub fn new(detector: Option<Detector>, bytes: AlertBytesConfig) -> Self {
        DetectStage {
            detector,
            hits: Vec::new(),
            alerts: Vec::new(),
            bytes,
        }
    }

    /// Goes on with reloaded signatures (none: the reload has none), the
    /// flows' signature state carried over
    /// ([`Detector::replace_engine`]).
    pub fn replace_engine(&mut self, engine: Option<std::sync::Arc<zonewatch_detect::Engine>>) {
        match (&mut self.detector, engine) {
            (Some(d), Some(e)) => d.replace_engine(e),
            (d, e) => *d = e.map(Detector::new),
        }
    }

    /// Rules are loaded.
    pub fn enabled(&self) -> bool {
        self.detector.is_some()
    }

    /// Drops the flow's flowbits and stream windows.
    pub fn flow_end(&mut self, flow_id: u64) {
        if let Some(d) = &mut self.detector {
            d.flow_end(flow_id);
        }
    }

    pub fn counters(&self) -> Option<DetectCounters> {
        self.detector.as_ref().map(|d| d.counters.clone())
    }

    /// Runs the signatures on the packet and on each transaction in
    /// `app_out`; whether any matched. `flow` is the flow as signatures see
    /// it: after a midstream pickup whose first bytes were the server's
    /// (`swapped`), the real client's packets are to_server, as after
    /// Suricata's FlowSwap (the flow table keeps its first-packet
    /// orientation).
    pub fn inspect(
        &mut self,
        ctx: &PacketCtx<'_>,
        flow: Option<FlowView>,
        swapped: bool,
        stream: &StreamOutput,
        app_out: &[AppOutput],
    ) -> bool {
        self.alerts.clear();
        let Some(det) = &mut self.detector else {
            return false;
        };
        let chunks: Vec<StreamChunk<'_>> = stream
            .chunks
            .iter()
            .map(|c| StreamChunk {
                to_server: c.to_server != swapped,
                offset: c.offset,
                data: stream.data(c),
            })
            .collect();
        // The app-layer events this packet's data raised, for
        // `app-layer-event` rules.
        let app_events: Vec<&'static str> = app_out
            .iter()
            .filter_map(|o| match o {
                AppOutput::Event(e) => Some(e.name),
                _ => None,
            })
            .collect();
        let view = PacketView {
            data: ctx.bytes,
            decoded: &ctx.meta.decoded,
            ts: ctx.meta.ts,
            flow,
            stream: &chunks,
            payload_in_stream: stream.in_stream,
            reassembled: ctx.meta.pkts > 1,
            stream_events: &stream.names,
            app_events: &app_events,
            stream_sizes: stream.sizes,
        };
        self.hits.clear();
        det.inspect(&view, &mut self.hits);
        let app_name = flow.and_then(|f| f.app_proto).map(|a| a.name());
        for h in &self.hits {
            // A packet alert names the flow's protocol, without a record.
            let app = app_name.map(|n| {
                Box::new(AppRecord {
                    app_proto: n,
                    key: n,
                    tx_id: 0,
                    record: serde_json::Value::Null,
                })
            });
            self.alerts.push((*h, app));
        }
        for o in app_out {
            if let AppOutput::Tx(tx) = o {
                self.hits.clear();
                det.inspect_tx(&view, tx, &mut self.hits);
                for h in &self.hits {
                    self.alerts
                        .push((*h, Some(Box::new(super::app::app_record(tx)))));
                }
            }
        }
        !self.alerts.is_empty()
    }

    /// The alerts of the last [`DetectStage::inspect`] as events numbered
    /// from `sub`; the next free `sub`.
    pub fn push_alerts(
        &mut self,
        ctx: &PacketCtx<'_>,
        flow: Option<FlowView>,
        mut sub: u64,
        events: &mut Vec<Event>,
    ) -> u64 {
        let Some(det) = &self.detector else {
            return sub;
        };
        let engine = det.engine();
        let d = &ctx.meta.decoded;
        let icmp = match d.transport {
            Transport::Icmp {
                icmp_type,
                icmp_code,
                ..
            } => Some((icmp_type, icmp_code)),
            _ => None,
        };
        for (hit, app) in self.alerts.drain(..) {
            let packet = AlertPacket {
                to_server: flow.map(|f| f.to_server),
                pcap_cnt: ctx.meta.cnt,
                icmp,
                bytes: self.bytes.bytes(d.payload(ctx.bytes), ctx.bytes),
                app,
            };
            events.push(Event {
                key: EventKey {
                    pos: ctx.meta.pos,
                    sub,
                },
                ts: ctx.meta.ts,
                flow_id: flow.map(|f| f.id),
                addr: ctx.addr,
                community_id: None,
                in_iface: None,
                body: EventBody::Alert(Box::new(engine.alert_record(hit, packet))),
            });
            sub += 1;
        }
        sub
    }
}
