//! Per-worker detection state and the per-packet evaluation.

use crate::compile::{class_of, Engine, FbCheck, FbCmd, HdrBuf, Proto, Rule};
use crate::program::MAX_VARS;
use std::net::IpAddr;
use std::sync::Arc;
use zonewatch_decode::{Decoded, Transport};
use zonewatch_rules::{Action, BitsMode, HeaderTest};
use zonewatch_types::Timestamp;

/// Most alerts one packet may raise (Suricata: `packet-alert-max`).
const MAX_ALERTS_PER_PACKET: usize = 15;

/// The flow a packet belongs to, as the worker knows it.
#[derive(Debug, Clone, Copy)]
pub struct FlowView {
    /// Flow id (unique per run).
    pub id: u64,
    /// The packet goes from the flow's client to its server.
    pub to_server: bool,
    /// TCP: handshake complete; UDP and others: both directions seen.
    pub established: bool,
    /// First packet of the flow in this packet's direction.
    pub first_in_dir: bool,
    /// The flow's app-layer protocol, once identified.
    pub app_proto: Option<zonewatch_applayer::AppProto>,
    /// The peer acknowledged the data that identified `app_proto` (UDP:
    /// always). Suricata's IDS mode parses TCP data only once acknowledged,
    /// so rules that check the protocol without inspecting payload (`alert
    /// http ... (flow:to_server; ...)`) see it from that packet on.
    pub app_proto_acked: bool,
    /// Content rules still inspect the flow's payload and stream: false
    /// once the app layer saw the session become encrypted (TLS
    /// application data, SSH NEWKEYS both ways) and the configuration keeps
    /// Suricata's default `encryption-handling`. Header, flow and
    /// transaction rules still run.
    pub payload_inspection: bool,
}

/// Reassembled stream bytes this packet made contiguous.
#[derive(Debug, Clone, Copy)]
pub struct StreamChunk<'a> {
    /// Direction of the bytes: client to server.
    pub to_server: bool,
    /// Stream offset of the first byte.
    pub offset: u64,
    /// The bytes.
    pub data: &'a [u8],
}

/// Everything detection sees of one packet.
#[derive(Debug, Clone, Copy)]
pub struct PacketView<'a> {
    /// The packet's bytes as captured (or the reassembled datagram).
    pub data: &'a [u8],
    /// Its decoding.
    pub decoded: &'a Decoded,
    /// Packet time.
    pub ts: Timestamp,
    /// Its flow, if it belongs to one.
    pub flow: Option<FlowView>,
    /// Stream bytes made contiguous by this packet.
    pub stream: &'a [StreamChunk<'a>],
    /// The TCP payload was taken into a reassembled stream (it is then
    /// inspected as stream data, not as a packet, unless a rule says so).
    pub payload_in_stream: bool,
    /// A datagram reassembled from fragments.
    pub reassembled: bool,
    /// Stream event names raised on this packet.
    pub stream_events: &'a [&'static str],
    /// TCP stream sizes as Suricata's `stream_size` counts them (next
    /// sequence number minus the initial one): client, server.
    pub stream_sizes: Option<[u64; 2]>,
}

/// A rule that matched a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hit {
    /// Engine index of the rule ([`Engine::meta`]).
    pub rule: u32,
    /// Matched on reassembled stream data.
    pub stream: bool,
}

/// Fast-pattern occurrences a tail remembers at most; past this the next
/// window is scanned whole.
const MAX_TAIL_HITS: usize = 64;

#[derive(Default)]
struct Tail {
    next: u64,
    bytes: Vec<u8>,
    /// Fast-pattern occurrences lying wholly in `bytes`: (stream offset of
    /// the start, pattern id in the direction's group), one per pattern (the
    /// latest). The next window then scans only its new bytes (and the
    /// pattern-length overlap before them) yet finds every rule whose fast
    /// pattern occurs anywhere in the window.
    hits: Vec<(u64, u32)>,
    /// `hits` is complete.
    hits_valid: bool,
    /// Stream bytes below this offset were already inspected as a packet
    /// (data on a SYN, TCP Fast Open): a stream match must end past it.
    inspected: u64,
}

#[derive(Default)]
struct FlowState {
    /// Bit 0: IP-only rules checked to server; bit 1: to client; bit 2: passed.
    flags: u8,
    bits: Vec<u64>,
    tails: Option<Box<[Tail; 2]>>,
    /// Transactions whose to_server rules already ran.
    tx_ts_done: Vec<u64>,
}

/// Counters of one detector.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DetectCounters {
    /// Packets inspected.
    pub packets: u64,
    /// Candidate rules fully evaluated.
    pub candidates: u64,
    /// Alerts raised.
    pub alerts: u64,
    /// Alerts over the per-packet cap.
    pub alert_overflow: u64,
}

/// The candidate rules of one packet or transaction, each once: a rule is
/// in when its stamp equals the current generation, so starting a new set
/// costs nothing per rule.
#[derive(Default)]
struct Candidates {
    stamp: Vec<u32>,
    generation: u32,
    list: Vec<u32>,
}

impl Candidates {
    /// An empty set for the next packet or transaction.
    fn start(&mut self) {
        self.generation = self.generation.wrapping_add(1);
        if self.generation == 0 {
            self.stamp.iter_mut().for_each(|s| *s = 0);
            self.generation = 1;
        }
        self.list.clear();
    }

    #[inline]
    fn add(&mut self, r: u32) {
        let s = &mut self.stamp[r as usize];
        if *s != self.generation {
            *s = self.generation;
            self.list.push(r);
        }
    }

    fn add_all(&mut self, rules: &[u32]) {
        rules.iter().for_each(|&r| self.add(r));
    }
}

/// One worker's detection state. Not shared: each worker owns one.
pub struct Detector {
    engine: Arc<Engine>,
    flows: hashbrown::HashMap<u64, FlowState>,
    cands: Candidates,
    window: Vec<u8>,
    /// Counters.
    pub counters: DetectCounters,
}

impl Detector {
    /// A detector for one worker.
    pub fn new(engine: Arc<Engine>) -> Detector {
        let n = engine.rules.len();
        Detector {
            engine,
            flows: hashbrown::HashMap::new(),
            cands: Candidates {
                stamp: vec![0; n],
                ..Default::default()
            },
            window: Vec::new(),
            counters: DetectCounters::default(),
        }
    }

    /// The engine.
    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// Forgets a flow that ended.
    pub fn flow_end(&mut self, id: u64) {
        self.flows.remove(&id);
    }

    /// Inspects one packet; matching rules are appended to `hits` in
    /// evaluation order.
    pub fn inspect(&mut self, p: &PacketView<'_>, hits: &mut Vec<Hit>) {
        self.counters.packets += 1;
        let d = p.decoded;
        let Some(ip) = d.ip else {
            // Only packet-header rules (decode events) apply without IP.
            self.inspect_no_ip(p, hits);
            return;
        };
        let engine = self.engine.clone();
        let flow_id = p.flow.map(|f| f.id);
        if let Some(id) = flow_id {
            if self.flows.get(&id).is_some_and(|f| f.flags & 4 != 0) {
                return;
            }
        }
        let payload = payload_of(p);
        self.cands.start();
        let class = class_of(ip.proto);
        let group = engine
            .groups
            .select(class, p.flow.map(|f| f.to_server), ports(d));
        let (pf, cat) = (&group.filter, &engine.groups.catalogue);
        let cands = &mut self.cands;
        // The rules of a fast pattern that are in the packet's group.
        let mut mark = |id: u32| {
            for &r in cat.rules(id) {
                if group.has_rule(r) {
                    cands.add(r);
                }
            }
        };
        // Stream windows: earlier bytes of the direction + the new ones.
        let mut windows: Vec<(usize, usize, u64, usize)> = Vec::new(); // (start, end, base offset, new from)
        let window = &mut self.window;
        window.clear();
        let inspect_payload = p.flow.is_none_or(|f| f.payload_inspection);
        if let (Some(f), false) = (p.flow, inspect_payload) {
            // Encrypted: no stream windows any more.
            if let Some(st) = self.flows.get_mut(&f.id) {
                st.tails = None;
            }
        }
        if let (Some(f), true) = (p.flow, inspect_payload) {
            for c in p.stream {
                let st = self.flows.entry(f.id).or_default();
                let tails = st.tails.get_or_insert_with(Default::default);
                let t = &mut tails[if c.to_server { 0 } else { 1 }];
                if t.next != c.offset {
                    t.bytes.clear();
                    t.hits.clear();
                    t.hits_valid = true;
                }
                let start = window.len();
                window.extend_from_slice(&t.bytes);
                let new_from = t.bytes.len();
                window.extend_from_slice(c.data);
                let end = window.len();
                let base = c.offset - new_from as u64;
                t.next = c.offset + c.data.len() as u64;
                let keep = engine.stream_window.min(end - start);
                let tail_start = t.next - keep as u64;
                t.bytes.clear();
                t.bytes.extend_from_slice(&window[end - keep..end]);
                if c.to_server != f.to_server {
                    // Not scanned on this packet: its bytes' occurrences
                    // are unknown, so the next window is scanned whole.
                    t.hits.clear();
                    t.hits_valid = false;
                    continue;
                }
                windows.push((start, end, base, new_from));
                // Occurrences in the kept earlier bytes were found when
                // those bytes were new; only occurrences ending in the new
                // bytes remain to be found.
                let scan_from = if t.hits_valid {
                    for &(_, id) in &t.hits {
                        mark(id);
                    }
                    new_from.saturating_sub(pf.max_len().saturating_sub(1))
                } else {
                    t.hits.clear();
                    0
                };
                let was_valid = t.hits_valid;
                t.hits.retain(|&(at, _)| at >= tail_start);
                let hits = &mut t.hits;
                pf.scan_at(cat, &window[start + scan_from..end], |id, pos| {
                    mark(id);
                    let at = scan_from + pos;
                    if (!was_valid || at + cat.pattern_len(id) > new_from)
                        && base + at as u64 >= tail_start
                    {
                        hits.push((base + at as u64, id));
                    }
                });
                if hits.len() > 1 {
                    hits.sort_unstable_by_key(|&(at, id)| (id, std::cmp::Reverse(at)));
                    hits.dedup_by_key(|h| h.1);
                }
                t.hits_valid = hits.len() <= MAX_TAIL_HITS;
                if !t.hits_valid {
                    hits.clear();
                }
            }
        }
        // In-order TCP data is scanned once, in its stream window (which
        // holds this packet's bytes); the packet payload only otherwise.
        if inspect_payload && (!p.payload_in_stream || windows.is_empty()) {
            pf.scan_at(cat, payload, |id, _| mark(id));
        }
        let window = std::mem::take(&mut self.window);
        self.cands.add_all(&group.always);
        if !group.iponly.is_empty() {
            let done = p.flow.is_some_and(|f| {
                self.flows
                    .get(&f.id)
                    .is_some_and(|s| s.flags & if f.to_server { 1 } else { 2 } != 0)
            });
            if !done {
                self.cands.add_all(&group.iponly);
            }
        }
        self.cands.add_all(engine.by_addr.get(ip.src));
        self.cands.add_all(engine.by_addr.get(ip.dst));
        self.cands.list.sort_unstable();
        let cands = std::mem::take(&mut self.cands.list);
        let first = hits.len();
        for &ri in &cands {
            let r = &engine.rules[ri as usize];
            self.counters.candidates += 1;
            let Some(stream) = self.eval(r, p, payload, &window, &windows) else {
                continue;
            };
            // Effects of a match, even without an alert.
            if let Some(f) = p.flow {
                if !r.fb_cmds.is_empty() {
                    let n = engine.flowbit_count.div_ceil(64);
                    let st = self.flows.entry(f.id).or_default();
                    if st.bits.len() < n {
                        st.bits.resize(n, 0);
                    }
                    for c in &r.fb_cmds {
                        match *c {
                            FbCmd::Set(b) => st.bits[b as usize / 64] |= 1 << (b % 64),
                            FbCmd::Unset(b) => st.bits[b as usize / 64] &= !(1 << (b % 64)),
                            FbCmd::Toggle(b) => st.bits[b as usize / 64] ^= 1 << (b % 64),
                        }
                    }
                }
            }
            if r.action == Action::Pass {
                // A pass rule ends inspection of the packet and its flow.
                hits.truncate(first);
                if let Some(f) = p.flow {
                    self.flows.entry(f.id).or_default().flags |= 4;
                }
                break;
            }
            if r.noalert {
                continue;
            }
            if hits.len() - first >= MAX_ALERTS_PER_PACKET {
                self.counters.alert_overflow += 1;
                continue;
            }
            self.counters.alerts += 1;
            hits.push(Hit { rule: ri, stream });
        }
        self.cands.list = cands;
        self.window = window;
        // Data on a SYN is inspected here as a packet; when the handshake
        // completes the reassembler delivers it again as stream offset 0.
        if let (Some(f), Transport::Tcp(t)) = (p.flow, d.transport) {
            if t.flags & 0x02 != 0 && !payload.is_empty() && !p.payload_in_stream {
                let st = self.flows.entry(f.id).or_default();
                let tails = st.tails.get_or_insert_with(Default::default);
                let t = &mut tails[if f.to_server { 0 } else { 1 }];
                t.inspected = t.inspected.max(payload.len() as u64);
            }
        }
        if let Some(f) = p.flow {
            if let Some(st) = self.flows.get_mut(&f.id) {
                st.flags |= if f.to_server { 1 } else { 2 };
            } else if engine.has_iponly {
                self.flows.entry(f.id).or_default().flags |= if f.to_server { 1 } else { 2 };
            }
        }
    }

    /// Runs the transaction rules on a transaction the app layer output on
    /// this packet: its to_server rules the first time the transaction is
    /// seen, its to_client rules once it is complete (Suricata runs rules
    /// once per transaction and direction).
    pub fn inspect_tx(
        &mut self,
        p: &PacketView<'_>,
        tx: &zonewatch_applayer::Transaction,
        hits: &mut Vec<Hit>,
    ) {
        let (Some(f), Some(ip)) = (p.flow, p.decoded.ip) else {
            return;
        };
        let engine = self.engine.clone();
        let st = self.flows.entry(f.id).or_default();
        if st.flags & 4 != 0 {
            return;
        }
        let ts_done = st.tx_ts_done.contains(&tx.id);
        let (run_ts, run_tc) = (!ts_done, tx.complete);
        if tx.complete {
            st.tx_ts_done.retain(|&x| x != tx.id);
        } else if !ts_done {
            if st.tx_ts_done.len() >= 64 {
                st.tx_ts_done.remove(0);
            }
            st.tx_ts_done.push(tx.id);
        }
        self.cands.start();
        {
            let cands = &mut self.cands;
            let mut mark = |rules: &[u32]| cands.add_all(rules);
            for (b, dir, bytes) in tx.all_buffers() {
                // Each side's rules read a buffer in one direction only
                // (`buffer_side`), and run only when their side is due.
                for to_client in [false, true] {
                    let due = if to_client { run_tc } else { run_ts };
                    if !due || buffer_side(b, !to_client) != dir {
                        continue;
                    }
                    if let Some(pf) = engine.tx_prefilter.get(&(b, to_client)) {
                        pf.scan(bytes, &mut mark);
                    }
                }
            }
            if let Some(list) = engine.tx_always.get(&tx.proto) {
                mark(list);
            }
        }
        self.cands.list.sort_unstable();
        let cands = std::mem::take(&mut self.cands.list);
        let payload = payload_of(p);
        let (sp, dp) = ports(p.decoded);
        let first = hits.len();
        for &ri in &cands {
            let r = &engine.rules[ri as usize];
            if r.app != Some(tx.proto)
                || (r.tx_to_client && !run_tc)
                || (!r.tx_to_client && !run_ts)
            {
                continue;
            }
            self.counters.candidates += 1;
            // The rule's side decides which way the packet's addresses read.
            let rule_to_server = !r.tx_to_client;
            let (src, s_port, dst, d_port) = if rule_to_server == f.to_server {
                (ip.src, sp, ip.dst, dp)
            } else {
                (ip.dst, dp, ip.src, sp)
            };
            let proto_ok = match r.proto {
                Proto::Tcp | Proto::TcpPkt | Proto::TcpStream => ip.proto == 6,
                Proto::Udp => ip.proto == 17,
                Proto::V4 => ip.version == 4,
                Proto::V6 => ip.version == 6,
                _ => true,
            };
            if !proto_ok
                || !(addr_ok(r, src, s_port, dst, d_port)
                    || r.bidir && addr_ok(r, dst, d_port, src, s_port))
            {
                continue;
            }
            if (r.flow.established && !f.established) || (r.flow.not_established && f.established) {
                continue;
            }
            if !self.flowbits_ok(r, Some(f)) {
                continue;
            }
            if let Some((neg, want)) = r.app_layer_protocol {
                if (Some(tx.proto) == want) == neg {
                    continue;
                }
            }
            let nums_ok = r.tx_tests.iter().all(|t| match t {
                zonewatch_rules::TxTest::Urilen(c, raw) => {
                    let n = if *raw {
                        tx.nums.urilen_raw
                    } else {
                        tx.nums.urilen
                    };
                    n.is_some_and(|n| c.test(n as u64))
                }
                zonewatch_rules::TxTest::DnsOpcode(c) => {
                    tx.nums.dns_opcode.is_some_and(|n| c.test(n as u64))
                }
            });
            if !nums_ok {
                continue;
            }
            let mut vars = [0i64; MAX_VARS];
            let all = r.app_progs.iter().all(|(b, prog)| {
                tx.buffers_in(*b, buffer_side(*b, rule_to_server))
                    .any(|v| prog.run(v, &mut vars).is_some())
            });
            if !all {
                continue;
            }
            if let Some(prog) = &r.payload {
                if payload.is_empty() || prog.run(payload, &mut vars).is_none() {
                    continue;
                }
            }
            self.apply_flowbits(r, Some(f));
            if r.action == Action::Pass {
                hits.truncate(first);
                self.flows.entry(f.id).or_default().flags |= 4;
                break;
            }
            if r.noalert {
                continue;
            }
            if hits.len() - first >= MAX_ALERTS_PER_PACKET {
                self.counters.alert_overflow += 1;
                continue;
            }
            self.counters.alerts += 1;
            hits.push(Hit {
                rule: ri,
                stream: false,
            });
        }
        self.cands.list = cands;
    }

    fn flowbits_ok(&self, r: &Rule, f: Option<FlowView>) -> bool {
        if r.fb_checks.is_empty() {
            return true;
        }
        let bits = f
            .and_then(|f| self.flows.get(&f.id))
            .map(|s| s.bits.as_slice())
            .unwrap_or(&[]);
        let isset = |b: u32| {
            bits.get(b as usize / 64)
                .is_some_and(|w| w & (1 << (b % 64)) != 0)
        };
        r.fb_checks.iter().all(|c| match c {
            FbCheck::IsSet(ns, true) => ns.iter().all(|&b| isset(b)),
            FbCheck::IsSet(ns, false) => ns.iter().any(|&b| isset(b)),
            FbCheck::IsNotSet(ns, true) => !ns.iter().all(|&b| isset(b)),
            FbCheck::IsNotSet(ns, false) => ns.iter().all(|&b| !isset(b)),
        })
    }

    fn apply_flowbits(&mut self, r: &Rule, f: Option<FlowView>) {
        let Some(f) = f else { return };
        if r.fb_cmds.is_empty() {
            return;
        }
        let n = self.engine.flowbit_count.div_ceil(64);
        let st = self.flows.entry(f.id).or_default();
        if st.bits.len() < n {
            st.bits.resize(n, 0);
        }
        for c in &r.fb_cmds {
            match *c {
                FbCmd::Set(b) => st.bits[b as usize / 64] |= 1 << (b % 64),
                FbCmd::Unset(b) => st.bits[b as usize / 64] &= !(1 << (b % 64)),
                FbCmd::Toggle(b) => st.bits[b as usize / 64] ^= 1 << (b % 64),
            }
        }
    }

    fn inspect_no_ip(&mut self, p: &PacketView<'_>, hits: &mut Vec<Hit>) {
        if p.decoded.events.is_empty() {
            return;
        }
        let engine = self.engine.clone();
        for &ri in &engine.no_ip {
            let r = &engine.rules[ri as usize];
            if r.decode_events
                .iter()
                .all(|n| p.decoded.events.iter().any(|e| e.name() == n))
                && !r.noalert
                && !hits.iter().any(|h| h.rule == ri)
            {
                self.counters.alerts += 1;
                hits.push(Hit {
                    rule: ri,
                    stream: false,
                });
            }
        }
    }

    /// Full verification of one candidate. `Some(stream)` on a match.
    fn eval(
        &self,
        r: &Rule,
        p: &PacketView<'_>,
        payload: &[u8],
        window: &[u8],
        windows: &[(usize, usize, u64, usize)],
    ) -> Option<bool> {
        let d = p.decoded;
        let ip = d.ip?;
        // Protocol.
        let ok = match r.proto {
            Proto::Any => true,
            Proto::V4 => ip.version == 4,
            Proto::V6 => ip.version == 6,
            Proto::Tcp | Proto::TcpPkt | Proto::TcpStream => ip.proto == 6,
            Proto::Udp => ip.proto == 17,
            Proto::Icmp => ip.proto == 1 || ip.proto == 58,
            Proto::Icmp4 => ip.proto == 1,
            Proto::Icmp6 => ip.proto == 58,
            Proto::Sctp => ip.proto == 132,
        };
        if !ok {
            return None;
        }
        // Payload and stream data are inspected when they become contiguous
        // (not when acknowledged, as in Suricata), so rules that inspect them
        // use the protocol as soon as it is identified; the others wait for
        // the acknowledgement, as Suricata's packet rules do.
        let app_proto = p
            .flow
            .filter(|f| f.app_proto_acked || r.payload.is_some())
            .and_then(|f| f.app_proto);
        if r.app.is_some() && app_proto != r.app {
            return None;
        }
        if let Some((neg, want)) = r.app_layer_protocol {
            if (app_proto == want) == neg {
                return None;
            }
        }
        if r.flow.only_frag && !p.reassembled || r.flow.no_frag && p.reassembled {
            return None;
        }
        // Addresses and ports, either way round for `<>`.
        let (sp, dp) = ports(d);
        let fwd = addr_ok(r, ip.src, sp, ip.dst, dp);
        if !(fwd || r.bidir && addr_ok(r, ip.dst, dp, ip.src, sp)) {
            return None;
        }
        // Flow.
        if r.flow.to_server || r.flow.to_client || r.flow.established || r.flow.not_established {
            let f = p.flow?;
            if r.flow.to_server && !f.to_server || r.flow.to_client && f.to_server {
                return None;
            }
            if r.flow.established && !f.established || r.flow.not_established && f.established {
                return None;
            }
        }
        if r.iponly {
            if let Some(f) = p.flow {
                let done = self
                    .flows
                    .get(&f.id)
                    .is_some_and(|s| s.flags & if f.to_server { 1 } else { 2 } != 0);
                if done {
                    return None;
                }
            }
        }
        for t in &r.tests {
            if !header_test(t, p, payload) {
                return None;
            }
        }
        for e in &r.decode_events {
            if !d.events.iter().any(|x| x.name() == e) {
                return None;
            }
        }
        for e in &r.stream_events {
            if !p.stream_events.contains(&e.as_str()) {
                return None;
            }
        }
        if !r.fb_checks.is_empty() {
            let bits = p
                .flow
                .and_then(|f| self.flows.get(&f.id))
                .map(|s| s.bits.as_slice())
                .unwrap_or(&[]);
            let isset = |b: u32| {
                bits.get(b as usize / 64)
                    .is_some_and(|w| w & (1 << (b % 64)) != 0)
            };
            for c in &r.fb_checks {
                let ok = match c {
                    FbCheck::IsSet(ns, true) => ns.iter().all(|&b| isset(b)),
                    FbCheck::IsSet(ns, false) => ns.iter().any(|&b| isset(b)),
                    FbCheck::IsNotSet(ns, true) => !ns.iter().all(|&b| isset(b)),
                    FbCheck::IsNotSet(ns, false) => ns.iter().all(|&b| !isset(b)),
                };
                if !ok {
                    return None;
                }
            }
        }
        let mut vars = [0i64; MAX_VARS];
        for (which, prog) in &r.hdr {
            let buf = header_buffer(*which, p)?;
            prog.run(buf, &mut vars)?;
        }
        let Some(prog) = &r.payload else {
            return Some(false);
        };
        if p.flow.is_some_and(|f| !f.payload_inspection) {
            return None;
        }
        let tcp = ip.proto == 6;
        let packet_only = r.flow.no_stream
            || r.proto == Proto::TcpPkt
            || r.tests.iter().any(|t| matches!(t, HeaderTest::Dsize(_)));
        let stream_only = r.flow.only_stream || r.proto == Proto::TcpStream;
        if tcp && !packet_only {
            for &(s, e, base, new_from) in windows {
                if prog.anchored && base != 0 {
                    // offset/depth count from the start of the data: past
                    // the stream's first byte, the start is this packet's
                    // new bytes (Suricata inspects them as one chunk).
                    if prog.run(&window[s + new_from..e], &mut vars).is_some() {
                        return Some(true);
                    }
                    continue;
                }
                if let Some(end) = prog.run(&window[s..e], &mut vars) {
                    // A program that moves no cursor (byte_test, isdataat,
                    // ... without content) reports end 0: it matched the
                    // window as a whole, new bytes included.
                    let end = if end == 0 { e - s } else { end };
                    let seen = p
                        .flow
                        .and_then(|f| self.flows.get(&f.id))
                        .and_then(|st| st.tails.as_ref())
                        .map_or(0, |t| {
                            t[if p.flow.is_some_and(|f| f.to_server) {
                                0
                            } else {
                                1
                            }]
                            .inspected
                        });
                    if end > new_from && base + end as u64 > seen {
                        return Some(true);
                    }
                }
            }
        }
        if stream_only || payload.is_empty() {
            return None;
        }
        if tcp && p.payload_in_stream && !packet_only {
            return None;
        }
        prog.run(payload, &mut vars).map(|_| false)
    }
}

/// The direction of a transaction buffer's instance that a rule inspects:
/// the buffer's own for one-sided buffers (`http.uri`, `file.data` of a
/// response), the rule's side for those both sides have (`http.header`).
fn buffer_side(b: zonewatch_applayer::Buffer, rule_to_server: bool) -> zonewatch_types::Direction {
    match b.dir() {
        zonewatch_applayer::BufferDir::ToServer => zonewatch_types::Direction::ToServer,
        zonewatch_applayer::BufferDir::ToClient => zonewatch_types::Direction::ToClient,
        zonewatch_applayer::BufferDir::Both => {
            if rule_to_server {
                zonewatch_types::Direction::ToServer
            } else {
                zonewatch_types::Direction::ToClient
            }
        }
    }
}

fn ports(d: &Decoded) -> (Option<u16>, Option<u16>) {
    match d.transport {
        Transport::Tcp(t) => (Some(t.sport), Some(t.dport)),
        Transport::Udp { sport, dport, .. } => (Some(sport), Some(dport)),
        _ => (None, None),
    }
}

fn addr_ok(r: &Rule, src: IpAddr, sp: Option<u16>, dst: IpAddr, dp: Option<u16>) -> bool {
    r.src.contains(src)
        && r.dst.contains(dst)
        && sp.is_none_or(|p| r.sport.contains(p))
        && dp.is_none_or(|p| r.dport.contains(p))
        && (sp.is_some() || r.sport.is_any())
        && (dp.is_some() || r.dport.is_any())
}

fn payload_of<'a>(p: &PacketView<'a>) -> &'a [u8] {
    p.decoded.payload(p.data)
}

fn ipv4_header<'a>(p: &PacketView<'a>) -> Option<&'a [u8]> {
    let ip = p.decoded.ip?;
    if ip.version != 4 {
        return None;
    }
    p.data
        .get(ip.offset as usize..(ip.offset + ip.header_len) as usize)
}

fn header_buffer<'a>(which: HdrBuf, p: &PacketView<'a>) -> Option<&'a [u8]> {
    let ip = p.decoded.ip?;
    let l4 = (ip.offset + ip.header_len) as usize;
    match (which, p.decoded.transport) {
        (HdrBuf::Ipv4, _) => ipv4_header(p),
        (HdrBuf::Ipv6, _) if ip.version == 6 => {
            p.data.get(ip.offset as usize..ip.offset as usize + 40)
        }
        (HdrBuf::Tcp, Transport::Tcp(t)) => p.data.get(l4..t.payload_offset as usize),
        (HdrBuf::Udp, Transport::Udp { payload_offset, .. }) => p
            .data
            .get(payload_offset as usize - 8..payload_offset as usize),
        (HdrBuf::Icmp4, Transport::Icmp { payload_offset, .. }) if ip.version == 4 => {
            p.data.get(l4..payload_offset as usize)
        }
        (HdrBuf::Icmp6, Transport::Icmp { payload_offset, .. }) if ip.version == 6 => {
            p.data.get(l4..payload_offset as usize)
        }
        _ => None,
    }
}

fn bits_ok(mode: BitsMode, have: u8, want: u8) -> bool {
    match mode {
        BitsMode::Exact => have == want,
        BitsMode::All => have & want == want,
        BitsMode::Any => have & want != 0 || want == 0,
        BitsMode::Not => have & want != want,
    }
}

fn header_test(t: &HeaderTest, p: &PacketView<'_>, payload: &[u8]) -> bool {
    let d = p.decoded;
    let Some(ip) = d.ip else { return false };
    let tcp = match d.transport {
        Transport::Tcp(t) => Some(t),
        _ => None,
    };
    let icmp = match d.transport {
        Transport::Icmp {
            icmp_type,
            icmp_code,
            echo,
            payload_offset,
            ..
        } => Some((icmp_type, icmp_code, echo, payload_offset)),
        _ => None,
    };
    let v4 = ipv4_header(p);
    match t {
        HeaderTest::Ttl(c) => c.test(ip.ttl as u64),
        HeaderTest::Tos(c) => {
            let tos = match v4 {
                Some(h) => h.get(1).copied(),
                None => p
                    .data
                    .get(ip.offset as usize..ip.offset as usize + 2)
                    .map(|b| (b[0] << 4) | (b[1] >> 4)),
            };
            tos.is_some_and(|v| c.test(v as u64))
        }
        HeaderTest::IpProto(c) => c.test(ip.proto as u64),
        HeaderTest::IpOpts(name) => v4.is_some_and(|h| has_ipopt(&h[20.min(h.len())..], name)),
        HeaderTest::FragBits(mode, want) => v4.is_some_and(|h| {
            let f = h.get(6).copied().unwrap_or(0);
            // R = 0x80, D = 0x40, M = 0x20 in the header byte.
            let have =
                (f & 0x20 != 0) as u8 | ((f & 0x40 != 0) as u8) << 1 | ((f & 0x80 != 0) as u8) << 2;
            bits_ok(*mode, have, *want)
        }),
        HeaderTest::FragOffset(c) => {
            let off = ip.frag.map(|f| f.offset as u64).unwrap_or(0);
            c.test(off)
        }
        HeaderTest::Id(c) => match v4 {
            Some(h) if h.len() >= 6 => c.test(u16::from_be_bytes([h[4], h[5]]) as u64),
            _ => ip.frag.is_some_and(|f| c.test(f.id as u64)),
        },
        HeaderTest::Seq(c) => tcp.is_some_and(|t| c.test(t.seq as u64)),
        HeaderTest::Ack(c) => tcp.is_some_and(|t| c.test(t.ack as u64)),
        HeaderTest::Window(c) => tcp.is_some_and(|t| c.test(t.window as u64)),
        HeaderTest::Flags(mode, want, ignore) => tcp.is_some_and(|t| {
            let have = t.flags & !ignore;
            if *want == 0 {
                return have == 0;
            }
            bits_ok(*mode, have, *want)
        }),
        HeaderTest::IType(c) => icmp.is_some_and(|i| c.test(i.0 as u64)),
        HeaderTest::ICode(c) => icmp.is_some_and(|i| c.test(i.1 as u64)),
        HeaderTest::IcmpId(c) => icmp.is_some_and(|i| i.2.is_some_and(|(id, _)| c.test(id as u64))),
        HeaderTest::IcmpSeq(c) => {
            icmp.is_some_and(|i| i.2.is_some_and(|(_, seq)| c.test(seq as u64)))
        }
        HeaderTest::SameIp => ip.src == ip.dst,
        HeaderTest::Dsize(c) => c.test(payload.len() as u64),
        HeaderTest::TcpMss(c) => tcp.is_some_and(|t| t.mss.is_some_and(|m| c.test(m as u64))),
        HeaderTest::Icmpv6Mtu(c) => icmp.is_some_and(|i| {
            ip.version == 6
                && i.0 == 2
                && p.data
                    .get(i.3 as usize - 4..i.3 as usize)
                    .is_some_and(|b| c.test(u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as u64))
        }),
        HeaderTest::StreamSize(side, c) => {
            p.stream_sizes.is_some_and(|[cl, sv]| match side.as_str() {
                "client" => c.test(cl),
                "server" => c.test(sv),
                "both" => c.test(cl) && c.test(sv),
                _ => c.test(cl) || c.test(sv),
            })
        }
    }
}

fn has_ipopt(mut opts: &[u8], name: &str) -> bool {
    let want: &[u8] = match name {
        "eol" => &[0],
        "nop" => &[1],
        "rr" => &[7],
        "ts" => &[68],
        "sec" => &[130],
        "esec" => &[133],
        "lsrr" => &[131],
        "ssrr" => &[137],
        "satid" => &[136],
        _ => &[],
    };
    while let Some(&t) = opts.first() {
        if name == "any" || want.contains(&t) {
            return true;
        }
        if t == 0 {
            return false;
        }
        if t == 1 {
            opts = &opts[1..];
            continue;
        }
        let len = opts.get(1).copied().unwrap_or(0) as usize;
        if len < 2 || len > opts.len() {
            return false;
        }
        opts = &opts[len..];
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DetectConfig;

    /// Raw IPv4/TCP packet 10.0.0.1:40000 -> 10.0.0.2:80 (ACK|PSH) with `payload`.
    fn packet(payload: &[u8]) -> Vec<u8> {
        let total = 40 + payload.len();
        let mut p = vec![
            0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ];
        p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
        p.extend_from_slice(&[
            0x9c, 0x40, 0, 80, 0, 0, 0, 1, 0, 0, 0, 1, 0x50, 0x18, 0xff, 0xff,
        ]);
        p.extend_from_slice(&[0, 0, 0, 0]);
        p.extend_from_slice(payload);
        p
    }

    /// Sids of the rules `rules` raises on one in-stream packet whose
    /// payload is stream offset `offset` of the client's stream.
    fn stream_hits(rules: &str, payload: &[u8], offset: u64) -> Vec<u64> {
        hits_with(rules, payload, offset, None, false)
    }

    fn hits_with(
        rules: &str,
        payload: &[u8],
        offset: u64,
        app_proto: Option<zonewatch_applayer::AppProto>,
        app_proto_acked: bool,
    ) -> Vec<u64> {
        let mut out = run_stream(
            &[("t.rules", rules)],
            offset,
            &[payload],
            app_proto,
            app_proto_acked,
        );
        out.pop().unwrap_or_default()
    }

    /// Sids raised on each of consecutive in-order packets of the client's
    /// stream, one segment each, through one detector.
    fn stream_sequence(rules: &str, segments: &[&[u8]]) -> Vec<Vec<u64>> {
        stream_sequence_files(&[("t.rules", rules)], segments)
    }

    fn stream_sequence_files(files: &[(&str, &str)], segments: &[&[u8]]) -> Vec<Vec<u64>> {
        run_stream(files, 0, segments, None, false)
    }

    /// Sids raised on each of consecutive in-order packets of the client's
    /// stream from stream offset `start`, through one detector.
    fn run_stream(
        files: &[(&str, &str)],
        start: u64,
        segments: &[&[u8]],
        app_proto: Option<zonewatch_applayer::AppProto>,
        app_proto_acked: bool,
    ) -> Vec<Vec<u64>> {
        let engine = Arc::new(Engine::from_texts(files, &DetectConfig::default()));
        let mut det = Detector::new(engine.clone());
        let mut offset = start;
        let mut out = Vec::new();
        for seg in segments {
            let data = packet(seg);
            let decoded =
                zonewatch_decode::decode(zonewatch_decode::LinkType::Raw, &data, data.len());
            let chunk = [StreamChunk {
                to_server: true,
                offset,
                data: seg,
            }];
            offset += seg.len() as u64;
            let view = PacketView {
                data: &data,
                decoded: &decoded,
                ts: Timestamp::default(),
                flow: Some(FlowView {
                    id: 1,
                    to_server: true,
                    established: true,
                    first_in_dir: offset == start + seg.len() as u64,
                    app_proto,
                    app_proto_acked,
                    payload_inspection: true,
                }),
                stream: &chunk,
                payload_in_stream: true,
                reassembled: false,
                stream_events: &[],
                stream_sizes: None,
            };
            let mut hits = Vec::new();
            det.inspect(&view, &mut hits);
            out.push(hits.iter().map(|h| engine.meta(h.rule).sid).collect());
        }
        out
    }

    /// Only each window's new bytes are scanned for fast patterns; those
    /// in the kept earlier bytes are remembered. A rule whose fast pattern
    /// arrived packets before the rest of its match must still be found,
    /// exactly as long as the pattern lies within the stream window.
    #[test]
    fn fast_patterns_in_earlier_segments_still_select_their_rules() {
        let rule = "alert tcp any any -> any any (content:\"MAGICWORD\"; fast_pattern; content:\"tail\"; distance:0; sid:1;)\n";
        let none: Vec<u64> = Vec::new();
        // Fast pattern wholly in the previous segment.
        assert_eq!(
            stream_sequence(rule, &[b"xxMAGICWORDxx", b"yy tail"]),
            vec![none.clone(), vec![1]]
        );
        // Split across the segment boundary.
        assert_eq!(
            stream_sequence(rule, &[b"....MAGIC", b"WORD tail"]),
            vec![none.clone(), vec![1]]
        );
        // Two packets back, still within the 1 KiB window.
        let filler = vec![b'.'; 200];
        assert_eq!(
            stream_sequence(rule, &[b"MAGICWORD", &filler, b"tail"]),
            vec![none.clone(), none.clone(), vec![1]]
        );
        // Out of the window: as if the whole window had been rescanned.
        let filler = vec![b'.'; 2000];
        assert_eq!(
            stream_sequence(rule, &[b"MAGICWORD", &filler, b"tail"]),
            vec![none.clone(), none.clone(), none.clone()]
        );
        // More distinct patterns in the window than a tail remembers: the
        // next window is scanned whole and still finds the rule.
        let mut rules = rule.to_string();
        let mut first = b"MAGICWORD".to_vec();
        for i in 0..300 {
            rules.push_str(&format!(
                "alert tcp any any -> any any (content:\"{i:03}\"; fast_pattern; content:\"never-there\"; sid:{};)\n",
                100 + i
            ));
            first.extend_from_slice(format!("{i:03}").as_bytes());
        }
        assert!(first.len() <= 1024);
        assert_eq!(
            stream_sequence(&rules, &[&first, b"tail"]),
            vec![none.clone(), vec![1]]
        );
    }

    /// Files are compiled in parallel, each thread numbering flowbits its
    /// own way; the merge must give a name one id across files.
    #[test]
    fn flowbits_set_in_one_file_are_seen_by_rules_of_another() {
        // `a` is the larger file, so with two or more cores `b` goes to
        // another thread, where `logged_in` is the first name (local id 0).
        let a = format!(
            "{}{}",
            "# padding\n".repeat(100),
            "\
alert tcp any any -> any any (content:\"hello\"; flowbits:set,a1; flowbits:set,a2; flowbits:noalert; sid:1;)
alert tcp any any -> any any (content:\"login\"; flowbits:set,logged_in; flowbits:noalert; sid:2;)
"
        );
        let b = "\
alert tcp any any -> any any (content:\"secret\"; flowbits:isset,logged_in; sid:4;)
alert tcp any any -> any any (content:\"secret\"; flowbits:isset,a1; sid:5;)
";
        let none: Vec<u64> = Vec::new();
        assert_eq!(
            stream_sequence_files(
                &[("a.rules", &a), ("b.rules", b)],
                &[b"login ok", b"the secret"]
            ),
            vec![none.clone(), vec![4]]
        );
    }

    /// IP-only rules (Suricata's: no payload, ports or flow keywords; only
    /// `flowbits:set`, as ET's reputation rules have) run on the first
    /// packet of each flow direction only.
    #[test]
    fn ip_only_rules_with_flowbit_set_run_once_per_direction() {
        let rules = "\
alert ip any any -> any any (msg:\"reputation\"; flowbits:set,evil; sid:9;)
alert ip any any -> any any (flowbits:isset,evil; sid:10;)
";
        assert_eq!(
            stream_sequence(rules, &[b"first", b"second"]),
            vec![vec![9, 10], vec![10]]
        );
    }

    /// suricata-verify detect-bytetest-02 sid 2: a payload program without
    /// content (byte_jump / byte_test / isdataat) matched in-stream data
    /// but reported no cursor end and was dropped as "already inspected".
    #[test]
    fn contentless_programs_match_stream_data() {
        let rules = "\
alert tcp any any -> any any (byte_jump:1,11,string,dec; byte_test:1,=,0,0,relative,string,dec; sid:2;)
alert tcp any any -> any any (byte_test:1,=,1,11,string,dec; sid:7;)
alert tcp any any -> any any (isdataat:10; sid:10;)
alert tcp any any -> any any (byte_test:1,=,9,11,string,dec; sid:11;)
";
        let payload = b"GET / HTTP/1.0\r\n";
        assert_eq!(stream_hits(rules, payload, 0), vec![2, 7, 10]);
        // Past the stream's first byte as well.
        assert_eq!(stream_hits(rules, payload, 5000), vec![2, 7, 10]);
    }

    /// suricata-verify detect-engine-proto: `alert http ... (flow:to_server;)`
    /// matches only once the data that identified HTTP was acknowledged
    /// (Suricata parses it then); rules inspecting the payload see the
    /// protocol at once, as zonewatch inspects stream data at once.
    #[test]
    fn app_proto_rules_without_payload_wait_for_the_ack() {
        let rules = "\
alert http any any -> any any (flow:to_server; sid:4;)
alert tcp any any -> any any (app-layer-protocol:http; sid:5;)
alert http any any -> any any (content:\"GET\"; sid:6;)
";
        let http = Some(zonewatch_applayer::AppProto::Http);
        let payload = b"GET / HTTP/1.0\r\n";
        assert_eq!(hits_with(rules, payload, 0, http, false), vec![6]);
        assert_eq!(hits_with(rules, payload, 0, http, true), vec![4, 5, 6]);
        assert!(hits_with(rules, payload, 0, None, true).is_empty());
    }
}
