//! EVE JSON rendering.

use ipnet::IpNet;
use serde::Serialize;
use siphasher::sip128::{Hasher128, SipHasher13};
use std::hash::Hasher;
use std::net::IpAddr;
use zonewatch_types::{proto_name, Event, EventBody, UtcOffset};

/// Zones by CIDR; the most specific prefix wins.
#[derive(Debug, Clone, Default)]
pub struct Zones {
    /// (prefix, zone name), most specific first.
    nets: Vec<(IpNet, String)>,
}

impl Zones {
    /// From (name, CIDRs) pairs.
    pub fn new(zones: &[(String, Vec<IpNet>)]) -> Self {
        let mut nets: Vec<(IpNet, String)> = zones
            .iter()
            .flat_map(|(n, nets)| nets.iter().map(move |net| (*net, n.clone())))
            .collect();
        nets.sort_by_key(|n| std::cmp::Reverse(n.0.prefix_len()));
        Zones { nets }
    }

    /// The zone of an address.
    pub fn zone_of(&self, ip: IpAddr) -> Option<&str> {
        self.nets
            .iter()
            .find(|(n, _)| n.contains(&ip))
            .map(|(_, z)| z.as_str())
    }
}

/// What event ids are derived from.
#[derive(Debug, Clone)]
pub enum EventIdSource {
    /// File mode: the sensor name and the inputs (names and sizes), so the
    /// same inputs give the same ids on every run.
    Inputs(Vec<(String, u64)>),
    /// Live mode: a value unique to this run (e.g. start time and pid).
    Run(u128),
}

/// The sensor's identity and settings, added to every event.
#[derive(Debug, Clone)]
pub struct EveContext {
    host: String,
    tenant: Option<String>,
    offset: UtcOffset,
    zones: Zones,
    id_keys: (u64, u64),
    types: Vec<String>,
}

impl EveContext {
    /// Builds the context.
    pub fn new(
        host: &str,
        tenant: Option<&str>,
        offset: UtcOffset,
        zones: Zones,
        ids: EventIdSource,
        types: &[String],
    ) -> Self {
        let mut h = SipHasher13::new();
        h.write(host.as_bytes());
        match &ids {
            EventIdSource::Inputs(files) => {
                for (name, size) in files {
                    h.write(name.as_bytes());
                    h.write_u64(*size);
                }
            }
            EventIdSource::Run(r) => h.write_u128(*r),
        }
        let k = h.finish128();
        EveContext {
            host: host.to_string(),
            tenant: tenant.map(str::to_string),
            offset,
            zones,
            id_keys: (k.h1, k.h2),
            types: types.to_vec(),
        }
    }

    /// Whether events of this type are written.
    pub fn type_enabled(&self, t: &str) -> bool {
        self.types.iter().any(|x| x == t)
    }

    /// The event id for an event key: 128 bits, hex, as a UUID-shaped string.
    pub fn event_id(&self, pos: u64, sub: u64) -> String {
        let mut h = SipHasher13::new_with_keys(self.id_keys.0, self.id_keys.1);
        h.write_u64(pos);
        h.write_u64(sub);
        let v = h.finish128().as_u128();
        // 8-4-4-4-12 hex digits, hand-formatted (hot: once per event).
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut b = [b'-'; 36];
        let mut nib = 0;
        for (i, slot) in b.iter_mut().enumerate() {
            if matches!(i, 8 | 13 | 18 | 23) {
                continue;
            }
            *slot = HEX[((v >> (124 - 4 * nib)) & 0xf) as usize];
            nib += 1;
        }
        String::from_utf8(b.to_vec()).expect("ASCII")
    }

    /// Renders one event as a JSON object (no newline) into `out`.
    pub fn render(&self, ev: &Event, out: &mut String) {
        let mut ts = String::with_capacity(32);
        ev.ts.write_eve(self.offset, &mut ts);
        let addr = ev.addr.as_ref();
        let vlan: Vec<u16> = addr
            .map(|a| a.vlan.iter().copied().filter(|v| *v != 0).collect())
            .unwrap_or_default();
        let proto = addr.map(|a| proto_name(a.proto));
        let rec = Eve {
            timestamp: &ts,
            flow_id: ev.flow_id,
            in_iface: ev.in_iface.as_deref(),
            event_type: ev.body.event_type(),
            event_id: self.event_id(ev.key.pos, ev.key.sub),
            host: &self.host,
            tenant: self.tenant.as_deref(),
            vlan: (!vlan.is_empty()).then_some(vlan),
            src_ip: addr.map(|a| a.src_ip),
            src_port: addr.and_then(|a| a.src_port),
            dest_ip: addr.map(|a| a.dest_ip),
            dest_port: addr.and_then(|a| a.dest_port),
            proto: proto.as_deref(),
            src_zone: addr.and_then(|a| self.zones.zone_of(a.src_ip)),
            dest_zone: addr.and_then(|a| self.zones.zone_of(a.dest_ip)),
            community_id: ev.community_id.as_deref(),
            flow: None,
            tcp: None,
            anomaly: None,
            stats: None,
        };
        let rec = match &ev.body {
            EventBody::Flow(f) => {
                let mut start = String::with_capacity(32);
                f.start.write_eve(self.offset, &mut start);
                let mut end = String::with_capacity(32);
                f.end.write_eve(self.offset, &mut end);
                let flow = FlowJson {
                    pkts_toserver: f.pkts_toserver,
                    pkts_toclient: f.pkts_toclient,
                    bytes_toserver: f.bytes_toserver,
                    bytes_toclient: f.bytes_toclient,
                    start,
                    end,
                    age: f.end.secs_since(f.start),
                    state: f.state,
                    reason: f.reason,
                    alerted: f.alerted,
                };
                let tcp = f.tcp.map(|t| {
                    let all = t.flags_ts | t.flags_tc;
                    let has = |b: u8| (all & b != 0).then_some(true);
                    TcpJson {
                        tcp_flags: format!("{all:02x}"),
                        tcp_flags_ts: format!("{:02x}", t.flags_ts),
                        tcp_flags_tc: format!("{:02x}", t.flags_tc),
                        syn: has(0x02),
                        fin: has(0x01),
                        rst: has(0x04),
                        psh: has(0x08),
                        ack: has(0x10),
                        urg: has(0x20),
                        ecn: has(0x40),
                        cwr: has(0x80),
                        state: t.state,
                    }
                });
                Eve {
                    flow: Some(flow),
                    tcp,
                    ..rec
                }
            }
            EventBody::Anomaly(a) => Eve {
                anomaly: Some(AnomalyJson {
                    kind: a.kind,
                    event: a.event,
                }),
                ..rec
            },
            EventBody::Stats(v) => Eve {
                stats: Some(v),
                ..rec
            },
        };
        // Serializing plain structs of strings and numbers cannot fail.
        let s = serde_json::to_string(&rec).expect("event serializes");
        out.push_str(&s);
    }
}

#[derive(Serialize)]
struct Eve<'a> {
    timestamp: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    flow_id: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    in_iface: Option<&'a str>,
    event_type: &'a str,
    event_id: String,
    host: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    tenant: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    vlan: Option<Vec<u16>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    src_ip: Option<IpAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    src_port: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dest_ip: Option<IpAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dest_port: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    proto: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    src_zone: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dest_zone: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    community_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    flow: Option<FlowJson>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tcp: Option<TcpJson>,
    #[serde(skip_serializing_if = "Option::is_none")]
    anomaly: Option<AnomalyJson>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stats: Option<&'a serde_json::Value>,
}

#[derive(Serialize)]
struct FlowJson {
    pkts_toserver: u64,
    pkts_toclient: u64,
    bytes_toserver: u64,
    bytes_toclient: u64,
    start: String,
    end: String,
    age: i64,
    state: &'static str,
    reason: &'static str,
    alerted: bool,
}

#[derive(Serialize)]
struct TcpJson {
    tcp_flags: String,
    tcp_flags_ts: String,
    tcp_flags_tc: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    syn: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    fin: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rst: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    psh: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ack: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    urg: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ecn: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cwr: Option<bool>,
    state: &'static str,
}

#[derive(Serialize)]
struct AnomalyJson {
    #[serde(rename = "type")]
    kind: &'static str,
    event: &'static str,
}

#[cfg(test)]
mod tests {
    use super::*;
    use zonewatch_types::*;

    fn ctx() -> EveContext {
        let zones = Zones::new(&[
            ("internet".into(), vec!["0.0.0.0/0".parse().unwrap()]),
            ("lgwan".into(), vec!["10.20.0.0/16".parse().unwrap()]),
        ]);
        EveContext::new(
            "s1",
            Some("131016"),
            UtcOffset(9 * 3600),
            zones,
            EventIdSource::Inputs(vec![("a.pcap".into(), 10)]),
            &["flow".to_string()],
        )
    }

    #[test]
    fn flow_event_renders_eve_fields() {
        let ev = Event {
            key: EventKey { pos: 5, sub: 0 },
            ts: Timestamp::from_parts(1_795_606_245, 0),
            flow_id: Some(42),
            addr: Some(AddrInfo {
                src_ip: "10.20.0.5".parse().unwrap(),
                src_port: Some(1234),
                dest_ip: "93.184.216.34".parse().unwrap(),
                dest_port: Some(443),
                proto: 6,
                vlan: [0; 2],
            }),
            community_id: None,
            in_iface: None,
            body: EventBody::Flow(FlowRecord {
                pkts_toserver: 3,
                pkts_toclient: 2,
                bytes_toserver: 200,
                bytes_toclient: 100,
                start: Timestamp::from_parts(1_795_606_240, 0),
                end: Timestamp::from_parts(1_795_606_245, 0),
                state: "closed",
                reason: "timeout",
                alerted: false,
                tcp: Some(TcpRecord {
                    flags_ts: 0x1b,
                    flags_tc: 0x13,
                    state: "closed",
                }),
            }),
        };
        let mut s = String::new();
        ctx().render(&ev, &mut s);
        let v: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(v["timestamp"], "2026-11-25T20:30:45.000000+0900");
        assert_eq!(v["event_type"], "flow");
        assert_eq!(v["proto"], "TCP");
        assert_eq!(v["src_zone"], "lgwan");
        assert_eq!(v["dest_zone"], "internet");
        assert_eq!(v["tenant"], "131016");
        assert_eq!(v["flow"]["age"], 5);
        assert_eq!(v["tcp"]["tcp_flags"], "1b");
        assert_eq!(v["tcp"]["syn"], true);
        assert!(v["tcp"].get("rst").is_none());
        assert!(s.starts_with("{\"timestamp\""), "field order: {s}");
    }

    #[test]
    fn event_ids_are_stable_and_distinct() {
        let a = ctx();
        let b = ctx();
        assert_eq!(a.event_id(1, 2), b.event_id(1, 2));
        assert_ne!(a.event_id(1, 2), a.event_id(1, 3));
        assert_eq!(a.event_id(1, 2).len(), 36);
    }
}
