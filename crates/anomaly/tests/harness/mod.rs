//! Reads a capture, decodes it, keeps a minimal flow table and a minimal DNS parser, and
//! feeds the observations to a detector set the way the pipeline will: packets in order, a
//! tick when a packet starts a new second, flow ends after 60 s idle or at the end, then
//! `finish`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use zonewatch_anomaly::{
    AnomalyAlert, DecoderEvents, DetectorSet, DnsObs, FlowEndObs, PacketObs, ZonePolicy,
};
use zonewatch_capture::{Next, PacketSource};
use zonewatch_decode::{decode, LinkType, Transport};
use zonewatch_types::{Direction, FlowTuple, Timestamp};

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn attacks(name: &str) -> PathBuf {
    root().join("fixtures/attacks").join(name)
}

/// A file in the shared corpus, or None (the test skips) when the corpus is absent.
pub fn shared(rel: &str) -> Option<PathBuf> {
    let p = root().join("../shared/data/pcaps").join(rel);
    if p.exists() {
        Some(p)
    } else {
        eprintln!("skipping: {} absent", p.display());
        None
    }
}

/// The example zone policy of docs/detectors.md.
pub fn doc_policy() -> ZonePolicy {
    let doc = std::fs::read_to_string(root().join("docs/detectors.md")).unwrap();
    let start = doc.find("```yaml\nzones:").unwrap() + 8;
    let end = start + doc[start..].find("```").unwrap();
    ZonePolicy::from_config_yaml(&doc[start..end], "docs/detectors.md").unwrap()
}

/// The shipped detector files (rules/detectors/) with the documented policy.
pub fn shipped() -> DetectorSet {
    DetectorSet::load(&[root().join("rules/detectors")], Some(doc_policy()))
        .unwrap_or_else(|e| panic!("{e:?}"))
}

struct Flow {
    client: IpAddr,
    cport: u16,
    start: Timestamp,
    last: Timestamp,
    pkts: [u64; 2],
    bytes: [u64; 2],
    flags: u8,
    syn: bool,
    synack: bool,
    established: bool,
}

/// What the harness feeds: the detector set, or a recorder.
pub trait Feed {
    fn packet(&mut self, o: &PacketObs);
    fn flow_end(&mut self, f: &FlowEndObs);
    fn dns(&mut self, d: &DnsObs);
    fn tick_at(&mut self, t: Timestamp);
    fn finish_at(&mut self, t: Timestamp);
    fn drain(&mut self) -> Vec<AnomalyAlert>;
}

impl Feed for DetectorSet {
    fn packet(&mut self, o: &PacketObs) {
        self.observe_packet(o)
    }
    fn flow_end(&mut self, f: &FlowEndObs) {
        self.observe_flow_end(f)
    }
    fn dns(&mut self, d: &DnsObs) {
        self.observe_dns(d)
    }
    fn tick_at(&mut self, t: Timestamp) {
        self.tick(t)
    }
    fn finish_at(&mut self, t: Timestamp) {
        self.finish(t)
    }
    fn drain(&mut self) -> Vec<AnomalyAlert> {
        self.drain_alerts().collect()
    }
}

/// Records packet observations (for timing the detectors alone).
#[derive(Default)]
pub struct Recorder {
    pub pkts: Vec<PacketObs>,
}

impl Feed for Recorder {
    fn packet(&mut self, o: &PacketObs) {
        self.pkts.push(*o)
    }
    fn flow_end(&mut self, _: &FlowEndObs) {}
    fn dns(&mut self, _: &DnsObs) {}
    fn tick_at(&mut self, _: Timestamp) {}
    fn finish_at(&mut self, _: Timestamp) {}
    fn drain(&mut self) -> Vec<AnomalyAlert> {
        Vec::new()
    }
}

/// Options for a run.
#[derive(Default, Clone, Copy)]
pub struct Run {
    /// Multiply time offsets from the first packet by this (1 when 0).
    pub stretch: f64,
}

pub fn run<F: Feed>(set: &mut F, files: &[PathBuf], opts: Run) -> Vec<AnomalyAlert> {
    let mut out = Vec::new();
    let mut flows: HashMap<FlowTuple, Flow> = HashMap::new();
    let mut last_sec = i64::MIN;
    let mut t0: Option<i64> = None;
    let mut last_ts = Timestamp(0);
    let mut defrag = zonewatch_defrag::Defragmenter::new(Default::default());
    for f in files {
        let mut src = PacketSource::open_file(f, None).unwrap();
        let link = LinkType::from_dlt(src.datalink()).expect("link type");
        loop {
            let p = match src.next_packet() {
                Next::Packet(p) => p,
                Next::Timeout => continue,
                Next::End | Next::Truncated(_) => break,
            };
            let mut ts = p.ts;
            if opts.stretch > 0.0 {
                let base = *t0.get_or_insert(ts.0);
                ts = Timestamp(base + ((ts.0 - base) as f64 * opts.stretch) as i64);
            }
            last_ts = ts;
            if ts.secs() != last_sec {
                last_sec = ts.secs();
                // Flow timeouts, then the tick.
                let mut ended: Vec<FlowTuple> = flows
                    .iter()
                    .filter(|(_, fl)| ts.0 - fl.last.0 > 60_000_000_000)
                    .map(|(k, _)| *k)
                    .collect();
                ended.sort_by_key(|k| (flows[k].start, k.src, k.sport, k.dst, k.dport));
                for k in ended {
                    let fl = flows.remove(&k).unwrap();
                    set.flow_end(&flow_end(&k, &fl));
                }
                set.tick_at(ts);
                out.extend(set.drain());
            }
            let d = decode(link, p.data, p.wire_len as usize);
            let fragment = d.ip.is_some_and(|ip| ip.frag.is_some()) && !d.invalid;
            let whole = if fragment {
                let mut ev = Vec::new();
                defrag.push(ts, &d, p.data, &mut ev)
            } else {
                None
            };
            feed(set, &mut flows, ts, &d, p.data, p.wire_len);
            if let Some(buf) = whole {
                let d2 = decode(LinkType::Raw, &buf, buf.len());
                feed(set, &mut flows, ts, &d2, &buf, buf.len() as u32);
            }
            out.extend(set.drain());
        }
    }
    let mut rest: Vec<(FlowTuple, Flow)> = flows.into_iter().collect();
    rest.sort_by_key(|(k, f)| (f.start, k.src, k.sport, k.dst, k.dport));
    for (k, fl) in rest {
        set.flow_end(&flow_end(&k, &fl));
    }
    set.finish_at(last_ts);
    out.extend(set.drain());
    out
}

fn feed<F: Feed>(
    set: &mut F,
    flows: &mut HashMap<FlowTuple, Flow>,
    ts: Timestamp,
    d: &zonewatch_decode::Decoded,
    data: &[u8],
    wire_len: u32,
) {
    let Some(tuple) = d.flow_tuple() else {
        return;
    };
    let ip = d.ip.expect("tuple implies ip");
    let (key, _) = tuple.canonical();
    let fl = flows.entry(key).or_insert_with(|| Flow {
        client: tuple.src,
        cport: tuple.sport,
        start: ts,
        last: ts,
        pkts: [0; 2],
        bytes: [0; 2],
        flags: 0,
        syn: false,
        synack: false,
        established: false,
    });
    let to_server = tuple.src == fl.client && tuple.sport == fl.cport;
    let di = usize::from(!to_server);
    fl.pkts[di] += 1;
    fl.bytes[di] += wire_len as u64;
    fl.last = ts;
    let mut flags = 0;
    let mut icmp = None;
    match d.transport {
        Transport::Tcp(t) => {
            flags = t.flags;
            fl.flags |= flags;
            if to_server && flags & 0x12 == 0x02 {
                fl.syn = true;
            } else if !to_server && flags & 0x12 == 0x12 && fl.syn {
                fl.synack = true;
            } else if to_server && flags & 0x10 != 0 && fl.synack {
                fl.established = true;
            }
        }
        Transport::Icmp {
            icmp_type,
            icmp_code,
            ..
        } => icmp = Some((icmp_type, icmp_code)),
        _ => {}
    }
    let mut ev = DecoderEvents::default();
    for e in d.events.iter() {
        ev.push(e.rule_name());
    }
    let obs = PacketObs {
        ts,
        src: tuple.src,
        dst: tuple.dst,
        sport: tuple.sport,
        dport: tuple.dport,
        proto: tuple.proto,
        tcp_flags: flags,
        ip_len: ip.header_len + ip.payload_len,
        ttl: ip.ttl,
        icmp,
        direction: if to_server {
            Direction::ToServer
        } else {
            Direction::ToClient
        },
        flow_pkts_toserver: fl.pkts[0] as u32,
        flow_pkts_toclient: fl.pkts[1] as u32,
        decoder_events: ev,
        fragments: 1,
    };
    set.packet(&obs);
    if let Transport::Udp {
        sport,
        dport,
        payload_offset,
        payload_len,
    } = d.transport
    {
        if sport == 53 || dport == 53 {
            let start = payload_offset as usize;
            let end = (start + payload_len as usize).min(data.len());
            if let Some(m) = parse_dns(&data[start.min(end)..end]) {
                let (client, server) = if m.response {
                    (tuple.dst, tuple.src)
                } else {
                    (tuple.src, tuple.dst)
                };
                set.dns(&DnsObs {
                    ts,
                    client,
                    server,
                    proto: tuple.proto,
                    qname: &m.qname,
                    qtype: m.qtype,
                    response: m.response,
                    rcode: m.rcode,
                    answer_count: m.ancount,
                    answer_bytes: m.answer_bytes,
                    txt_null_bytes: m.txt_null_bytes,
                });
            }
        }
    }
}

fn flow_end(k: &FlowTuple, fl: &Flow) -> FlowEndObs {
    let (server, sport_srv) = if k.src == fl.client && k.sport == fl.cport {
        (k.dst, k.dport)
    } else {
        (k.src, k.sport)
    };
    FlowEndObs {
        src: fl.client,
        dst: server,
        sport: fl.cport,
        dport: sport_srv,
        proto: k.proto,
        start: fl.start,
        end: fl.last,
        pkts_toserver: fl.pkts[0],
        pkts_toclient: fl.pkts[1],
        bytes_toserver: fl.bytes[0],
        bytes_toclient: fl.bytes[1],
        tcp_flags: fl.flags,
        established: fl.established,
    }
}

pub struct DnsMsg {
    pub qname: String,
    pub qtype: u16,
    pub response: bool,
    pub rcode: u8,
    pub ancount: u16,
    pub answer_bytes: u32,
    pub txt_null_bytes: u32,
}

fn skip_name(b: &[u8], mut i: usize) -> Option<usize> {
    loop {
        let l = *b.get(i)? as usize;
        if l == 0 {
            return Some(i + 1);
        }
        if l & 0xc0 == 0xc0 {
            return Some(i + 2);
        }
        i += 1 + l;
    }
}

/// A minimal DNS parser: the first question, and the answer records' rdata sizes.
pub fn parse_dns(b: &[u8]) -> Option<DnsMsg> {
    if b.len() < 12 {
        return None;
    }
    let flags = u16::from_be_bytes([b[2], b[3]]);
    let qd = u16::from_be_bytes([b[4], b[5]]);
    let an = u16::from_be_bytes([b[6], b[7]]);
    if qd == 0 {
        return None;
    }
    let mut i = 12;
    let mut name = String::new();
    loop {
        let l = *b.get(i)? as usize;
        if l == 0 || l & 0xc0 != 0 {
            i += 1;
            break;
        }
        let label = b.get(i + 1..i + 1 + l)?;
        if !name.is_empty() {
            name.push('.');
        }
        name.push_str(&String::from_utf8_lossy(label));
        i += 1 + l;
    }
    let qtype = u16::from_be_bytes([*b.get(i)?, *b.get(i + 1)?]);
    i += 4;
    let (mut ab, mut tb) = (0u32, 0u32);
    for _ in 0..an {
        let Some(j) = skip_name(b, i) else { break };
        let Some(h) = b.get(j..j + 10) else { break };
        let ty = u16::from_be_bytes([h[0], h[1]]);
        let len = u16::from_be_bytes([h[8], h[9]]) as u32;
        ab += len;
        if ty == 16 || ty == 10 {
            tb += len;
        }
        i = j + 10 + len as usize;
    }
    Some(DnsMsg {
        qname: name,
        qtype,
        response: flags & 0x8000 != 0,
        rcode: (flags & 0xf) as u8,
        ancount: an,
        answer_bytes: ab,
        txt_null_bytes: tb,
    })
}

/// `sid: count` over first alerts (not updates), sorted, for messages.
pub fn summary(alerts: &[AnomalyAlert]) -> String {
    let mut m: std::collections::BTreeMap<(u32, String), usize> = Default::default();
    for a in alerts {
        *m.entry((a.signature_id, a.signature.clone())).or_default() += 1;
    }
    m.iter()
        .map(|((sid, sig), n)| format!("{sid} {sig} x{n}"))
        .collect::<Vec<_>>()
        .join("; ")
}

pub fn sids(alerts: &[AnomalyAlert]) -> Vec<u32> {
    let mut v: Vec<u32> = alerts.iter().map(|a| a.signature_id).collect();
    v.sort_unstable();
    v.dedup();
    v
}
