//! The observe stage: compact observations for the anomaly detectors,
//! which run on the output thread in input order: one per packet of a
//! flow, one per DNS message, one per clock tick.

use super::flow::FlowHit;
use super::PacketCtx;
use crate::{DnsMessage, Obs};
use zonewatch_anomaly::PacketObs;
use zonewatch_applayer::{AppOutput, AppProto};
use zonewatch_decode::Transport;
use zonewatch_types::{EventKey, Timestamp};

pub(super) struct ObserveStage {
    /// Anomaly detectors run: observe at all.
    enabled: bool,
    /// This worker sends the clock ticks (one worker does, for all).
    ticks: bool,
    /// Observations in input order, sent with the events.
    pub obs: Vec<(EventKey, Obs)>,
}

impl ObserveStage {
    pub fn new(enabled: bool, ticks: bool) -> Self {
        ObserveStage {
            enabled,
            ticks,
            obs: Vec::new(),
        }
    }

    /// Observe from now on or not (a reload added or removed every
    /// detector).
    pub fn set_enabled(&mut self, enabled: bool) {
        self.enabled = enabled;
    }

    /// One packet of a flow.
    pub fn packet(&mut self, ctx: &PacketCtx<'_>, flow: &FlowHit) {
        if self.enabled {
            self.obs.push((
                EventKey {
                    pos: ctx.meta.pos,
                    sub: EventKey::OBS_PACKET,
                },
                Obs::Packet(packet_obs(ctx, flow)),
            ));
        }
    }

    /// The DNS messages among the packet's app-layer outputs (their typed
    /// observations move here), between the flow's client and server.
    pub fn dns(&mut self, ctx: &PacketCtx<'_>, to_server: bool, app_out: &mut [AppOutput]) {
        let (true, Some(a)) = (self.enabled, ctx.addr) else {
            return;
        };
        let (client, server) = if to_server {
            (a.src_ip, a.dest_ip)
        } else {
            (a.dest_ip, a.src_ip)
        };
        for o in app_out {
            let AppOutput::Tx(tx) = o else { continue };
            if tx.proto != AppProto::Dns || !tx.complete {
                continue;
            }
            if let Some(message) = tx.dns.take() {
                self.obs.push((
                    EventKey {
                        pos: ctx.meta.pos,
                        sub: EventKey::OBS_DNS,
                    },
                    Obs::Dns(Box::new(DnsMessage {
                        ts: ctx.meta.ts,
                        client,
                        server,
                        proto: a.proto,
                        message,
                    })),
                ));
            }
        }
    }

    /// A clock tick, from one worker only.
    pub fn tick(&mut self, pos: u64, ts: Timestamp) {
        if self.enabled && self.ticks {
            self.obs.push((EventKey::at(pos), Obs::Tick(ts)));
        }
    }
}

/// The anomaly detectors' view of one packet of a flow.
fn packet_obs(ctx: &PacketCtx<'_>, flow: &FlowHit) -> PacketObs {
    let d = &ctx.meta.decoded;
    let ip = d.ip.expect("flow packets have IP");
    let mut o = PacketObs::new(ctx.meta.ts, ip.src, ip.dst, ip.proto);
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
        Transport::None => (flow.tuple.sport, flow.tuple.dport),
    };
    o.sport = sport;
    o.dport = dport;
    o.ip_len = ip.header_len + ip.payload_len;
    o.ttl = ip.ttl;
    o.direction = flow.dir;
    o.flow_pkts_toserver = flow.pkts[0].min(u32::MAX as u64) as u32;
    o.flow_pkts_toclient = flow.pkts[1].min(u32::MAX as u64) as u32;
    o.fragments = ctx.meta.pkts.max(1);
    for e in d.events.iter() {
        o.decoder_events.push(e.rule_name());
    }
    o
}
