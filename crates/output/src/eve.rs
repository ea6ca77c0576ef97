//! EVE JSON rendering.

use siphasher::sip128::{Hasher128, SipHasher13};
use std::hash::Hasher;
use std::net::IpAddr;
use zonewatch_types::{
    proto_name, AddrInfo, AlertBytes, AlertRecord, Event, EventBody, FlowRecord, TcpRecord,
    UtcOffset, ZoneMap,
};

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
    zones: ZoneMap,
    id_keys: (u64, u64),
    types: Vec<String>,
}

impl EveContext {
    /// Builds the context.
    pub fn new(
        host: &str,
        tenant: Option<&str>,
        offset: UtcOffset,
        zones: ZoneMap,
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
    ///
    /// Written by hand rather than through serde: this runs once per event
    /// on the output thread, and generic serialization cost several times
    /// more than the packet path per flow.
    pub fn render(&self, ev: &Event, out: &mut String) {
        let id = self.event_id(ev.key.pos, ev.key.sub);
        self.render_with_id(ev, &id, out)
    }

    /// [`EveContext::render`] with the event id already computed.
    pub fn render_with_id(&self, ev: &Event, event_id: &str, out: &mut String) {
        let mut j = Json::open(out);
        // Scratch for timestamps, reused within the event.
        let mut ts = String::with_capacity(32);
        self.header(&mut j, ev, event_id, &mut ts);
        match &ev.body {
            EventBody::Flow(f) => self.flow(&mut j, f, &mut ts),
            EventBody::App(a) => {
                j.u64("tx_id", a.tx_id);
                j.ascii("app_proto", a.app_proto);
                app_objects(&mut j, a.key, &a.record);
            }
            EventBody::Anomaly(a) => {
                if let Some(p) = a.app_proto {
                    j.ascii("app_proto", p);
                }
                j.begin("anomaly");
                j.ascii("type", a.kind);
                j.ascii("event", a.event);
                j.end();
            }
            EventBody::Alert(a) => alert(&mut j, a, ev.addr.as_ref()),
            EventBody::Stats(v) => j.value("stats", v),
        }
        j.close();
    }

    /// The fields every event type has, in Suricata's order: time, flow
    /// id, event type and id, the sensor, addresses and zones.
    fn header(&self, j: &mut Json<'_>, ev: &Event, event_id: &str, ts: &mut String) {
        ev.ts.write_eve(self.offset, ts);
        j.ascii("timestamp", ts);
        if let Some(id) = ev.flow_id {
            j.u64("flow_id", id);
        }
        let alert = match &ev.body {
            EventBody::Alert(a) => Some(a),
            _ => None,
        };
        if let Some(c) = alert.and_then(|a| a.pcap_cnt) {
            j.u64("pcap_cnt", c);
        }
        if let Some(i) = &ev.in_iface {
            j.str("in_iface", i);
        }
        j.ascii("event_type", ev.body.event_type());
        j.ascii("event_id", event_id);
        j.str("host", &self.host);
        if let Some(t) = &self.tenant {
            j.str("tenant", t);
        }
        if let Some(a) = &ev.addr {
            self.addresses(j, a);
        }
        if let Some((t, c)) = alert.and_then(|a| a.icmp) {
            j.u64("icmp_type", t as u64);
            j.u64("icmp_code", c as u64);
        }
        if let Some(c) = &ev.community_id {
            j.ascii("community_id", c);
        }
    }

    /// `vlan`, the endpoints, `proto` and the endpoints' zones.
    fn addresses(&self, j: &mut Json<'_>, a: &AddrInfo) {
        if a.vlan.iter().any(|v| *v != 0) {
            j.key("vlan");
            j.out.push('[');
            for (i, v) in a.vlan.iter().filter(|v| **v != 0).enumerate() {
                if i > 0 {
                    j.out.push(',');
                }
                j.out.push_str(itoa::Buffer::new().format(*v));
            }
            j.out.push(']');
        }
        j.ip("src_ip", a.src_ip);
        if let Some(p) = a.src_port {
            j.u64("src_port", p as u64);
        }
        j.ip("dest_ip", a.dest_ip);
        if let Some(p) = a.dest_port {
            j.u64("dest_port", p as u64);
        }
        j.ascii("proto", &proto_name(a.proto));
        if let Some(z) = self.zones.zone_of(a.src_ip) {
            j.str("src_zone", z);
        }
        if let Some(z) = self.zones.zone_of(a.dest_ip) {
            j.str("dest_zone", z);
        }
    }

    /// The `flow` and `tcp` objects of a flow event.
    fn flow(&self, j: &mut Json<'_>, f: &FlowRecord, ts: &mut String) {
        if let Some(a) = f.app_proto {
            j.ascii("app_proto", a);
        }
        j.begin("flow");
        j.u64("pkts_toserver", f.pkts_toserver);
        j.u64("pkts_toclient", f.pkts_toclient);
        j.u64("bytes_toserver", f.bytes_toserver);
        j.u64("bytes_toclient", f.bytes_toclient);
        ts.clear();
        f.start.write_eve(self.offset, ts);
        j.ascii("start", ts);
        ts.clear();
        f.end.write_eve(self.offset, ts);
        j.ascii("end", ts);
        j.u64("age", f.end.secs_since(f.start) as u64);
        j.ascii("state", f.state);
        j.ascii("reason", f.reason);
        j.bool("alerted", f.alerted);
        j.end();
        if let Some(t) = f.tcp {
            tcp(j, &t);
        }
    }
}

/// TCP flag bits and their EVE names, in Suricata's order.
const TCP_FLAG_NAMES: [(u8, &str); 8] = [
    (0x02, "syn"),
    (0x01, "fin"),
    (0x04, "rst"),
    (0x08, "psh"),
    (0x10, "ack"),
    (0x20, "urg"),
    (0x40, "ecn"),
    (0x80, "cwr"),
];

/// The `tcp` object of a flow event.
fn tcp(j: &mut Json<'_>, t: &TcpRecord) {
    let all = t.flags_ts | t.flags_tc;
    j.begin("tcp");
    j.ascii("tcp_flags", &hex2(all));
    j.ascii("tcp_flags_ts", &hex2(t.flags_ts));
    j.ascii("tcp_flags_tc", &hex2(t.flags_tc));
    for (bit, name) in TCP_FLAG_NAMES {
        if all & bit != 0 {
            j.bool(name, true);
        }
    }
    j.ascii("state", t.state);
    j.end();
}

/// The `alert` object and what follows it: direction, payload, the
/// transaction, a log record or a detector's evidence.
fn alert(j: &mut Json<'_>, a: &AlertRecord, addr: Option<&AddrInfo>) {
    j.begin("alert");
    // IDS mode: nothing is blocked, whatever the rule's action.
    j.ascii("action", "allowed");
    j.u64("gid", a.gid as u64);
    j.u64("signature_id", a.signature_id);
    j.u64("rev", a.rev as u64);
    j.str("signature", &a.signature);
    j.str("category", &a.category);
    j.u64("severity", a.severity as u64);
    if !a.metadata.is_empty() {
        metadata(j, &a.metadata);
    }
    if let (Some(dest), Some(addr)) = (a.target_dest, addr) {
        let src = (addr.src_ip, addr.src_port);
        let dst = (addr.dest_ip, addr.dest_port);
        let (source, target) = if dest { (src, dst) } else { (dst, src) };
        for (name, (ip, port)) in [("source", source), ("target", target)] {
            j.begin(name);
            j.ip("ip", ip);
            if let Some(p) = port {
                j.u64("port", p as u64);
            }
            j.end();
        }
    }
    j.end();
    if a.rule_action != "alert" {
        j.ascii("rule_action", a.rule_action);
    }
    if let Some(ts) = a.to_server {
        j.ascii("direction", if ts { "to_server" } else { "to_client" });
    }
    j.u64("stream", a.stream as u64);
    if let Some(b) = &a.bytes {
        alert_bytes(j, b);
    }
    if let Some(app) = &a.app {
        j.ascii("app_proto", app.app_proto);
        if !app.record.is_null() {
            j.u64("tx_id", app.tx_id);
            app_objects(j, app.key, &app.record);
        }
    }
    if let Some(log) = &a.log {
        j.value("log", log);
    }
    if let Some(ev) = &a.evidence {
        j.value("evidence", ev);
    }
}

/// A transaction's objects: the record under its key, except for mail,
/// whose record holds Suricata's two top-level objects (`smtp`, `email`).
fn app_objects(j: &mut Json<'_>, key: &'static str, record: &serde_json::Value) {
    match record {
        serde_json::Value::Object(m) if key == "smtp" => {
            for k in ["smtp", "email"] {
                if let Some(v) = m.get(k) {
                    j.value(k, v);
                }
            }
        }
        _ => j.value(key, record),
    }
}

/// `alert.metadata`: each key once, in rule order, with all its values.
/// Keys come from rules, so they are escaped.
fn metadata(j: &mut Json<'_>, metadata: &[(String, String)]) {
    j.begin("metadata");
    let mut done: Vec<&str> = Vec::new();
    for (k, _) in metadata {
        if done.contains(&k.as_str()) {
            continue;
        }
        done.push(k);
        j.escaped_key(k);
        j.out.push('[');
        for (i, (_, v)) in metadata.iter().filter(|(k2, _)| k2 == k).enumerate() {
            if i > 0 {
                j.out.push(',');
            }
            j.out
                .push_str(&serde_json::to_string(v).expect("strings serialize"));
        }
        j.out.push(']');
    }
    j.end();
}

/// `payload`, `payload_printable` and `packet` of an alert.
fn alert_bytes(j: &mut Json<'_>, b: &AlertBytes) {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    if let Some(p) = &b.payload {
        j.ascii("payload", &b64.encode(p));
        if b.printable {
            let s: String = p
                .iter()
                .map(|&c| {
                    if (0x20..0x7f).contains(&c) {
                        c as char
                    } else {
                        '.'
                    }
                })
                .collect();
            j.str("payload_printable", &s);
        }
    }
    if let Some(p) = &b.packet {
        j.ascii("packet", &b64.encode(p));
    }
}

fn hex2(b: u8) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let s = [HEX[(b >> 4) as usize], HEX[(b & 0xf) as usize]];
    String::from_utf8(s.to_vec()).expect("ASCII")
}

/// Whether a string needs JSON escaping (a control character, a quote or a
/// backslash).
fn needs_escape(s: &str) -> bool {
    s.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\')
}

/// A JSON string value: quoted, escaped only when it must be.
fn push_str_value(out: &mut String, v: &str) {
    if needs_escape(v) {
        out.push_str(&serde_json::to_string(v).expect("strings serialize"));
    } else {
        out.push('"');
        out.push_str(v);
        out.push('"');
    }
}

/// A minimal JSON object writer: keys are the writer's own names (static,
/// plain) unless written with [`Json::escaped_key`]; values are escaped
/// unless the caller vouches they are plain ASCII.
struct Json<'a> {
    out: &'a mut String,
    /// Per open object: whether the next member is its first.
    first: Vec<bool>,
}

impl<'a> Json<'a> {
    fn open(out: &'a mut String) -> Self {
        out.push('{');
        Json {
            out,
            first: vec![true],
        }
    }
    /// A member name of our own: static and plain (nothing to escape).
    fn key(&mut self, k: &'static str) {
        debug_assert!(!needs_escape(k), "{k}");
        self.separator();
        self.out.push('"');
        self.out.push_str(k);
        self.out.push_str("\":");
    }
    /// A member name from input (rule metadata), escaped as JSON requires.
    fn escaped_key(&mut self, k: &str) {
        self.separator();
        push_str_value(self.out, k);
        self.out.push(':');
    }
    fn separator(&mut self) {
        let first = self.first.last_mut().expect("an open object");
        if !*first {
            self.out.push(',');
        }
        *first = false;
    }
    /// A member whose value serde writes (records, evidence, stats): a
    /// `Value` always serializes (its map keys are strings).
    fn value(&mut self, k: &'static str, v: &serde_json::Value) {
        self.key(k);
        self.out
            .push_str(&serde_json::to_string(v).expect("values serialize"));
    }
    fn begin(&mut self, k: &'static str) {
        self.key(k);
        self.out.push('{');
        self.first.push(true);
    }
    fn end(&mut self) {
        self.out.push('}');
        self.first.pop();
    }
    fn close(mut self) {
        self.end();
    }
    /// A value known to need no escaping (digits, hex, fixed names).
    fn ascii(&mut self, k: &'static str, v: &str) {
        debug_assert!(!needs_escape(v), "{v}");
        self.key(k);
        self.out.push('"');
        self.out.push_str(v);
        self.out.push('"');
    }
    /// Any string, escaped as JSON requires.
    fn str(&mut self, k: &'static str, v: &str) {
        self.key(k);
        push_str_value(self.out, v);
    }
    fn u64(&mut self, k: &'static str, v: u64) {
        self.key(k);
        self.out.push_str(itoa::Buffer::new().format(v));
    }
    fn bool(&mut self, k: &'static str, v: bool) {
        self.key(k);
        self.out.push_str(if v { "true" } else { "false" });
    }
    fn ip(&mut self, k: &'static str, v: IpAddr) {
        use std::fmt::Write as _;
        self.key(k);
        self.out.push('"');
        let _ = write!(self.out, "{v}");
        self.out.push('"');
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zonewatch_types::*;

    fn ctx() -> EveContext {
        let zones = ZoneMap::new(&[
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
                app_proto: None,
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

    /// Metadata keys come from rules: a quote or a backslash in one must
    /// not break the line.
    #[test]
    fn metadata_keys_are_escaped() {
        let metadata: Vec<(String, String)> = vec![
            ("plain".into(), "a".into()),
            ("we\"ird\\".into(), "b".into()),
            ("plain".into(), "c".into()),
        ];
        let ev = Event {
            key: EventKey { pos: 1, sub: 0 },
            ts: Timestamp::from_parts(1_795_606_245, 0),
            flow_id: None,
            addr: None,
            community_id: None,
            in_iface: None,
            body: EventBody::Alert(Box::new(AlertRecord {
                rule: 0,
                rule_action: "alert",
                gid: 1,
                signature_id: 7,
                rev: 1,
                signature: "sig".into(),
                category: "".into(),
                severity: 3,
                metadata: metadata.into(),
                stream: false,
                to_server: None,
                pcap_cnt: None,
                target_dest: None,
                icmp: None,
                evidence: None,
                app: None,
                bytes: None,
                log: None,
            })),
        };
        let mut s = String::new();
        ctx().render(&ev, &mut s);
        let v: serde_json::Value = serde_json::from_str(&s).expect(&s);
        let m = &v["alert"]["metadata"];
        assert_eq!(m["plain"], serde_json::json!(["a", "c"]));
        assert_eq!(m["we\"ird\\"], serde_json::json!(["b"]));
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
