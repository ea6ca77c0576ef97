//! Per-worker detection state and the per-packet evaluation.

use crate::engine::Engine;
use crate::groups::Group;
use crate::prefilter::Catalogue;
use crate::profile::{GroupKey, Probe, Profile};
use crate::program::{Program, MAX_VARS};
use crate::rule::{class_of, FbCheck, FbCmd, HdrBuf, Proto, Rule, IPPROTO_TCP, IPPROTO_UDP};
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
    /// App-layer event names raised by the data of this packet
    /// (`tls.invalid_heartbeat_message`, `applayer.wrong_direction_first_data`).
    pub app_events: &'a [&'static str],
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

/// Transactions of a flow whose to_server rules ran, remembered at most
/// (the oldest is forgotten first).
const MAX_OPEN_TRANSACTIONS: usize = 64;

/// The end of a direction's stream that the next window starts with.
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

/// Bits of [`FlowState::flags`]: IP-only rules were checked on the flow's
/// first packet to the server / to the client.
const IPONLY_DONE_TO_SERVER: u8 = 1;
const IPONLY_DONE_TO_CLIENT: u8 = 2;
/// A pass rule matched: the flow is not inspected any more.
const PASSED: u8 = 4;

/// The [`FlowState::flags`] bit of IP-only rules done in a direction.
fn iponly_done_bit(to_server: bool) -> u8 {
    if to_server {
        IPONLY_DONE_TO_SERVER
    } else {
        IPONLY_DONE_TO_CLIENT
    }
}

/// Index of a direction's [`Tail`]: to the server 0, to the client 1.
fn tail_index(to_server: bool) -> usize {
    if to_server {
        0
    } else {
        1
    }
}

/// Signature state of one flow.
#[derive(Default)]
struct FlowState {
    /// `IPONLY_DONE_*` and `PASSED` bits.
    flags: u8,
    /// Flowbits, one bit per engine flowbit id.
    bits: Vec<u64>,
    tails: Option<Box<[Tail; 2]>>,
    /// Transactions whose to_server rules already ran.
    tx_ts_done: Vec<u64>,
    /// `flowint` variables: (name, value). A handful per flow at most.
    ints: Vec<(Box<str>, i64)>,
}

/// The signature state of a worker's flows, by flow id.
#[derive(Default)]
struct FlowTable {
    map: hashbrown::HashMap<u64, FlowState>,
}

impl FlowTable {
    fn get(&self, id: u64) -> Option<&FlowState> {
        self.map.get(&id)
    }

    /// The flow's state, made if it has none yet.
    fn entry(&mut self, id: u64) -> &mut FlowState {
        self.map.entry(id).or_default()
    }

    /// Whether a pass rule ended inspection of the flow.
    fn passed(&self, id: u64) -> bool {
        self.get(id).is_some_and(|s| s.flags & PASSED != 0)
    }

    /// Whether IP-only rules were already checked in the packet's direction.
    fn iponly_done(&self, f: FlowView) -> bool {
        self.get(f.id)
            .is_some_and(|s| s.flags & iponly_done_bit(f.to_server) != 0)
    }

    /// Stream bytes of the packet's direction already inspected as packets.
    fn inspected_upto(&self, f: FlowView) -> u64 {
        self.get(f.id)
            .and_then(|st| st.tails.as_ref())
            .map_or(0, |t| t[tail_index(f.to_server)].inspected)
    }

    /// Whether the rule's flowbit checks hold on the flow.
    fn flowbits_ok(&self, r: &Rule, f: Option<FlowView>) -> bool {
        if r.fb_checks.is_empty() {
            return true;
        }
        let bits = f
            .and_then(|f| self.get(f.id))
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

    /// Whether the rule's `flowint` checks hold on the flow (a check of an
    /// unset variable fails, as in Suricata).
    fn flowints_ok(&self, r: &Rule, f: Option<FlowView>) -> bool {
        use zonewatch_rules::{FlowintCmp as C, FlowintOp as Op};
        if r.flowints.is_empty() {
            return true;
        }
        let ints = f
            .and_then(|f| self.get(f.id))
            .map(|s| s.ints.as_slice())
            .unwrap_or(&[]);
        r.flowints.iter().all(|fi| {
            let cur = flowint_get(ints, &fi.name);
            match &fi.op {
                Op::IsSet => cur.is_some(),
                Op::NotSet => cur.is_none(),
                Op::Cmp(c, v) => match (cur, flowint_value(ints, v)) {
                    (Some(a), Some(b)) => match c {
                        C::Eq => a == b,
                        C::Ne => a != b,
                        C::Lt => a < b,
                        C::Le => a <= b,
                        C::Gt => a > b,
                        C::Ge => a >= b,
                    },
                    _ => false,
                },
                Op::Set(_) | Op::Add(_) | Op::Sub(_) => true,
            }
        })
    }

    /// Runs the matched rule's `flowint` commands on the flow (`+` and `-`
    /// on an unset variable set it, as Suricata does; an unset operand
    /// variable leaves it alone).
    fn apply_flowints(&mut self, r: &Rule, f: Option<FlowView>) {
        use zonewatch_rules::FlowintOp as Op;
        let Some(f) = f else { return };
        if !r
            .flowints
            .iter()
            .any(|fi| matches!(fi.op, Op::Set(_) | Op::Add(_) | Op::Sub(_)))
        {
            return;
        }
        let ints = &mut self.entry(f.id).ints;
        for fi in &r.flowints {
            let (v, how) = match &fi.op {
                Op::Set(v) => (v, 0),
                Op::Add(v) => (v, 1),
                Op::Sub(v) => (v, -1),
                _ => continue,
            };
            let Some(v) = flowint_value(ints, v) else {
                continue;
            };
            match ints.iter_mut().find(|(n, _)| **n == *fi.name) {
                Some((_, cur)) if how != 0 => *cur = cur.wrapping_add(how * v),
                Some((_, cur)) => *cur = v,
                None => ints.push((fi.name.as_str().into(), v)),
            }
        }
    }

    /// Runs the matched rule's flowbit commands on the flow.
    fn apply_flowbits(&mut self, r: &Rule, f: Option<FlowView>, flowbit_count: usize) {
        let Some(f) = f else { return };
        if r.fb_cmds.is_empty() {
            return;
        }
        let n = flowbit_count.div_ceil(64);
        let st = self.entry(f.id);
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

    /// The rules of fast pattern `id` that are in the packet's group.
    #[inline]
    fn add_pattern(&mut self, cat: &Catalogue, group: &Group, id: u32) {
        for &r in cat.rules(id) {
            if group.has_rule(r) {
                self.add(r);
            }
        }
    }
}

/// One stream window of the packet, in [`Scratch::window`]: earlier bytes
/// of its direction followed by the ones this packet made contiguous.
#[derive(Debug, Clone, Copy)]
struct StreamWindow {
    /// Its bytes are `window[start..end]`.
    start: usize,
    end: usize,
    /// Stream offset of `window[start]`.
    base: u64,
    /// The new bytes start at `window[start + new_from]`.
    new_from: usize,
}

/// Per-packet working memory, kept between packets so that inspection
/// allocates nothing in the steady state.
#[derive(Default)]
struct Scratch {
    cands: Candidates,
    /// The bytes of the packet's stream windows, back to back.
    window: Vec<u8>,
    windows: Vec<StreamWindow>,
}

/// One worker's detection state. Not shared: each worker owns one.
pub struct Detector {
    engine: Arc<Engine>,
    state: WorkerState,
    /// Counters.
    pub counters: DetectCounters,
    /// This worker's rule profile, when the engine profiles.
    profile: Option<Box<Profile>>,
}

/// What a detector holds besides the engine: the flows' signature state and
/// the scratch memory. Its methods take the engine by reference, as the
/// `regex` crate's searches take their cache.
struct WorkerState {
    flows: FlowTable,
    scratch: Scratch,
}

impl Detector {
    /// A detector for one worker.
    pub fn new(engine: Arc<Engine>) -> Detector {
        let n = engine.rules.len();
        Detector {
            state: WorkerState {
                flows: FlowTable::default(),
                scratch: Scratch {
                    cands: Candidates {
                        stamp: vec![0; n],
                        ..Default::default()
                    },
                    ..Default::default()
                },
            },
            counters: DetectCounters::default(),
            profile: engine
                .profiler
                .is_some()
                .then(|| Box::new(Profile::new(n, engine.groups.len()))),
            engine,
        }
    }

    /// The engine.
    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// Goes on with `engine` in place of the current one (a rule reload),
    /// keeping what the flows carry: each flow's flowbits move to the new
    /// engine's ids by name (bits the new rules no longer name are
    /// dropped); pass and IP-only marks, stream tails and transactions
    /// already inspected stay. The tails' remembered fast-pattern hits name
    /// the old engine's patterns, so each tail's next window is scanned
    /// whole. Counters go on.
    pub fn replace_engine(&mut self, engine: Arc<Engine>) {
        let old = std::mem::replace(&mut self.engine, engine);
        let new = &self.engine;
        let ids: hashbrown::HashMap<&str, u32> = new
            .flowbit_names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.as_str(), i as u32))
            .collect();
        // Old id -> new id, once for all flows.
        let remap: Vec<Option<u32>> = old
            .flowbit_names
            .iter()
            .map(|n| ids.get(n.as_str()).copied())
            .collect();
        let words = new.flowbit_count.div_ceil(64);
        for st in self.state.flows.map.values_mut() {
            if !st.bits.is_empty() {
                let mut bits = vec![0u64; words];
                for (old_id, to) in remap.iter().enumerate() {
                    let set = st
                        .bits
                        .get(old_id / 64)
                        .is_some_and(|w| w & (1 << (old_id % 64)) != 0);
                    if let (true, Some(b)) = (set, to) {
                        bits[*b as usize / 64] |= 1 << (b % 64);
                    }
                }
                st.bits = bits;
            }
            if let Some(tails) = &mut st.tails {
                for t in tails.iter_mut() {
                    t.hits.clear();
                    t.hits_valid = false;
                }
            }
        }
        let s = &mut self.state.scratch;
        s.cands = Candidates {
            stamp: vec![0; new.rules.len()],
            ..Default::default()
        };
    }

    /// Forgets a flow that ended.
    pub fn flow_end(&mut self, id: u64) {
        self.state.flows.map.remove(&id);
    }

    /// Inspects one packet; matching rules are appended to `hits` in
    /// evaluation order.
    pub fn inspect(&mut self, p: &PacketView<'_>, hits: &mut Vec<Hit>) {
        self.counters.packets += 1;
        // Profiling is decided here, once per packet: the loops are
        // generic, and `()` makes every probe call vanish.
        let (e, c) = (&self.engine, &mut self.counters);
        match self.profile.as_deref_mut() {
            None => self.state.inspect(e, c, p, hits, &mut ()),
            Some(prof) => self.state.inspect(e, c, p, hits, prof),
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
        let (e, c) = (&self.engine, &mut self.counters);
        match self.profile.as_deref_mut() {
            None => self.state.inspect_tx(e, c, p, tx, hits, &mut ()),
            Some(prof) => self.state.inspect_tx(e, c, p, tx, hits, prof),
        }
    }
}

impl Drop for Detector {
    /// Hands the worker's profile to the engine's collector: a run's
    /// workers drop their detectors as they end, so the profile is complete
    /// when the run returns, with any number of workers.
    fn drop(&mut self) {
        if let (Some(p), Some(c)) = (&self.profile, &self.engine.profiler) {
            c.merge(p);
        }
    }
}

impl WorkerState {
    // The no-op instantiation must compile as this function did before
    // profiling existed: as a generic it is code-generated apart from its
    // callees, and LLVM then kept `scan_stream`, `eval` and
    // `note_packet_seen` out of line (+1.1% instructions in detection under
    // callgrind). With those `inline(always)` and this function out of
    // line, the count is main's again (-0.07%).
    #[inline(never)]
    fn inspect<P: Probe>(
        &mut self,
        engine: &Engine,
        counters: &mut DetectCounters,
        p: &PacketView<'_>,
        hits: &mut Vec<Hit>,
        probe: &mut P,
    ) {
        let d = p.decoded;
        let Some(ip) = d.ip else {
            // Only packet-header rules (decode events) apply without IP.
            inspect_no_ip(engine, counters, p, hits, probe);
            return;
        };
        if p.flow.is_some_and(|f| self.flows.passed(f.id)) {
            return;
        }
        let since = P::mark();
        let payload = payload_of(p);
        let group = engine
            .groups
            .select(class_of(ip.proto), p.flow.map(|f| f.to_server), ports(d));
        self.scratch.cands.start();
        self.scratch.window.clear();
        self.scratch.windows.clear();
        let inspect_payload = p.flow.is_none_or(|f| f.payload_inspection);
        if let Some(f) = p.flow {
            if inspect_payload {
                self.scan_stream(engine, group, p, f);
            } else if let Some(st) = self.flows.map.get_mut(&f.id) {
                // Encrypted: no stream windows any more.
                st.tails = None;
            }
        }
        // In-order TCP data is scanned once, in its stream window (which
        // holds this packet's bytes); the packet payload only otherwise.
        let cat = &engine.groups.catalogue;
        if inspect_payload && (!p.payload_in_stream || self.scratch.windows.is_empty()) {
            let cands = &mut self.scratch.cands;
            group
                .filter
                .scan_at(cat, payload, |id, _| cands.add_pattern(cat, group, id));
        }
        let cands = &mut self.scratch.cands;
        cands.add_all(&group.always);
        if !group.iponly.is_empty() && !p.flow.is_some_and(|f| self.flows.iponly_done(f)) {
            cands.add_all(&group.iponly);
        }
        cands.add_all(engine.by_addr.get(ip.src));
        cands.add_all(engine.by_addr.get(ip.dst));
        if !p.app_events.is_empty() {
            cands.add_all(&engine.app_event_rules);
        }
        cands.list.sort_unstable();
        probe.candidates(&cands.list);
        let n = cands.list.len();
        self.run_packet_rules(engine, counters, p, payload, hits, probe);
        probe.inspected(GroupKey::Packet(group.id), since, n);
        self.note_packet_seen(engine, p, payload);
    }

    /// Extends the flow's stream windows by the bytes this packet made
    /// contiguous, lays the windows of the packet's direction out in the
    /// scratch, and marks the rules whose fast patterns occur in them.
    #[inline(always)]
    fn scan_stream(&mut self, engine: &Engine, group: &Group, p: &PacketView<'_>, f: FlowView) {
        let (pf, cat) = (&group.filter, &engine.groups.catalogue);
        let Scratch {
            cands,
            window,
            windows,
        } = &mut self.scratch;
        for c in p.stream {
            let st = self.flows.entry(f.id);
            let tails = st.tails.get_or_insert_with(Default::default);
            let t = &mut tails[tail_index(c.to_server)];
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
            windows.push(StreamWindow {
                start,
                end,
                base,
                new_from,
            });
            // Occurrences in the kept earlier bytes were found when
            // those bytes were new; only occurrences ending in the new
            // bytes remain to be found.
            let scan_from = if t.hits_valid {
                for &(_, id) in &t.hits {
                    cands.add_pattern(cat, group, id);
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
                cands.add_pattern(cat, group, id);
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

    /// Evaluates the packet's candidates (sorted, in the scratch) in
    /// evaluation order.
    fn run_packet_rules<P: Probe>(
        &mut self,
        engine: &Engine,
        counters: &mut DetectCounters,
        p: &PacketView<'_>,
        payload: &[u8],
        hits: &mut Vec<Hit>,
        probe: &mut P,
    ) {
        let cands = std::mem::take(&mut self.scratch.cands.list);
        let mut alerts = PacketAlerts::new(hits);
        for &ri in &cands {
            let since = P::mark();
            let r = &engine.rules[ri as usize];
            counters.candidates += 1;
            let Some(stream) = self.eval(r, p, payload) else {
                probe.evaluated(ri, since, false);
                continue;
            };
            let hit = Hit { rule: ri, stream };
            let go_on = self.record_match(engine, counters, r, hit, p.flow, &mut alerts);
            probe.evaluated(ri, since, true);
            if !go_on {
                break;
            }
        }
        self.scratch.cands.list = cands;
    }

    /// The effects of a match of rule `r` (`hit`), even without an alert:
    /// its flowbits; a pass rule drops the packet's alerts and ends
    /// inspection of the flow; other rules alert, up to the per-packet cap.
    /// Returns whether evaluation goes on.
    #[inline]
    fn record_match(
        &mut self,
        engine: &Engine,
        counters: &mut DetectCounters,
        r: &Rule,
        hit: Hit,
        flow: Option<FlowView>,
        alerts: &mut PacketAlerts<'_>,
    ) -> bool {
        self.flows.apply_flowbits(r, flow, engine.flowbit_count);
        self.flows.apply_flowints(r, flow);
        let PacketAlerts { hits, first } = alerts;
        let first = *first;
        if r.action == Action::Pass {
            hits.truncate(first);
            if let Some(f) = flow {
                self.flows.entry(f.id).flags |= PASSED;
            }
            return false;
        }
        if r.noalert {
            return true;
        }
        if hits.len() - first >= MAX_ALERTS_PER_PACKET {
            counters.alert_overflow += 1;
            return true;
        }
        counters.alerts += 1;
        hits.push(hit);
        true
    }

    /// What the flow remembers of an inspected packet: data on a SYN, and
    /// that IP-only rules ran in its direction.
    #[inline(always)]
    fn note_packet_seen(&mut self, engine: &Engine, p: &PacketView<'_>, payload: &[u8]) {
        let Some(f) = p.flow else { return };
        // Data on a SYN is inspected here as a packet; when the handshake
        // completes the reassembler delivers it again as stream offset 0.
        if let Transport::Tcp(t) = p.decoded.transport {
            if t.flags & TCP_SYN != 0 && !payload.is_empty() && !p.payload_in_stream {
                let st = self.flows.entry(f.id);
                let tails = st.tails.get_or_insert_with(Default::default);
                let t = &mut tails[tail_index(f.to_server)];
                t.inspected = t.inspected.max(payload.len() as u64);
            }
        }
        if let Some(st) = self.flows.map.get_mut(&f.id) {
            st.flags |= iponly_done_bit(f.to_server);
        } else if engine.has_iponly {
            self.flows.entry(f.id).flags |= iponly_done_bit(f.to_server);
        }
    }

    fn inspect_tx<P: Probe>(
        &mut self,
        engine: &Engine,
        counters: &mut DetectCounters,
        p: &PacketView<'_>,
        tx: &zonewatch_applayer::Transaction,
        hits: &mut Vec<Hit>,
        probe: &mut P,
    ) {
        let (Some(f), Some(ip)) = (p.flow, p.decoded.ip) else {
            return;
        };
        let st = self.flows.entry(f.id);
        if st.flags & PASSED != 0 {
            return;
        }
        let ts_done = st.tx_ts_done.contains(&tx.id);
        let (run_ts, run_tc) = (!ts_done, tx.complete);
        if tx.complete {
            st.tx_ts_done.retain(|&x| x != tx.id);
        } else if !ts_done {
            if st.tx_ts_done.len() >= MAX_OPEN_TRANSACTIONS {
                st.tx_ts_done.remove(0);
            }
            st.tx_ts_done.push(tx.id);
        }
        let started = P::mark();
        self.tx_candidates(engine, tx, run_ts, run_tc);
        let cands = std::mem::take(&mut self.scratch.cands.list);
        probe.candidates(&cands);
        let payload = payload_of(p);
        let ports = ports(p.decoded);
        let mut alerts = PacketAlerts::new(hits);
        for &ri in &cands {
            let r = &engine.rules[ri as usize];
            if r.app != Some(tx.proto)
                || (r.tx_to_client && !run_tc)
                || (!r.tx_to_client && !run_ts)
            {
                continue;
            }
            counters.candidates += 1;
            let since = P::mark();
            if !self.tx_eval(r, f, &ip, ports, tx, payload) {
                probe.evaluated(ri, since, false);
                continue;
            }
            let hit = Hit {
                rule: ri,
                stream: false,
            };
            let go_on = self.record_match(engine, counters, r, hit, Some(f), &mut alerts);
            probe.evaluated(ri, since, true);
            if !go_on {
                break;
            }
        }
        probe.inspected(GroupKey::Tx(tx.proto), started, cands.len());
        self.scratch.cands.list = cands;
    }

    /// Full verification of transaction rule `r` (of the transaction's
    /// protocol and a side that is due) on the transaction and the packet
    /// that completed it (its IP header and ports).
    fn tx_eval(
        &self,
        r: &Rule,
        f: FlowView,
        ip: &zonewatch_decode::IpInfo,
        (sp, dp): (Option<u16>, Option<u16>),
        tx: &zonewatch_applayer::Transaction,
        payload: &[u8],
    ) -> bool {
        // The rule's side decides which way the packet's addresses read.
        let rule_to_server = !r.tx_to_client;
        let (src, s_port, dst, d_port) = if rule_to_server == f.to_server {
            (ip.src, sp, ip.dst, dp)
        } else {
            (ip.dst, dp, ip.src, sp)
        };
        let proto_ok = match r.proto {
            Proto::Tcp | Proto::TcpPkt | Proto::TcpStream => ip.proto == IPPROTO_TCP,
            Proto::Udp => ip.proto == IPPROTO_UDP,
            Proto::V4 => ip.version == 4,
            Proto::V6 => ip.version == 6,
            _ => true,
        };
        if !proto_ok
            || !(addr_ok(r, src, s_port, dst, d_port)
                || r.bidir && addr_ok(r, dst, d_port, src, s_port))
        {
            return false;
        }
        if (r.flow.established && !f.established) || (r.flow.not_established && f.established) {
            return false;
        }
        if !self.flows.flowbits_ok(r, Some(f))
            || r.app_layer_protocol
                .is_some_and(|t| !t.admits(Some(tx.proto)))
            || !tx_numbers_ok(r, tx)
        {
            return false;
        }
        let mut vars = [0i64; MAX_VARS];
        let all = r.app_progs.iter().all(|(b, prog)| {
            tx.buffers_in(*b, buffer_side(*b, rule_to_server))
                .any(|v| prog.run(v, &mut vars).is_some())
        });
        if !all {
            return false;
        }
        match &r.payload {
            Some(prog) => !payload.is_empty() && prog.run(payload, &mut vars).is_some(),
            None => true,
        }
    }

    /// Marks the transaction's candidate rules: by the prefilters of its
    /// buffers, for each side that is due, and its protocol's rules without
    /// a fast pattern. Leaves them sorted in the scratch.
    fn tx_candidates(
        &mut self,
        engine: &Engine,
        tx: &zonewatch_applayer::Transaction,
        run_ts: bool,
        run_tc: bool,
    ) {
        let cands = &mut self.scratch.cands;
        cands.start();
        let mut mark = |rules: &[u32]| cands.add_all(rules);
        for (b, dir, bytes) in tx.all_buffers() {
            // Each side's rules read a buffer in one direction only
            // (`buffer_side`), and run only when their side is due.
            for to_client in [false, true] {
                let due = if to_client { run_tc } else { run_ts };
                if !due || buffer_side(b, !to_client) != dir {
                    continue;
                }
                if let Some(pf) = engine.tx_prefilter.get(b, to_client) {
                    pf.scan(bytes, &mut mark);
                }
            }
        }
        if let Some(list) = engine.tx_always.get(&tx.proto) {
            mark(list);
        }
        cands.list.sort_unstable();
    }

    /// Full verification of one candidate. `Some(stream)` on a match.
    #[inline(always)]
    fn eval(&self, r: &Rule, p: &PacketView<'_>, payload: &[u8]) -> Option<bool> {
        if !self.packet_matches(r, p, payload) {
            return None;
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
        let tcp = p.decoded.ip.is_some_and(|ip| ip.proto == IPPROTO_TCP);
        let packet_only = r.flow.no_stream
            || r.proto == Proto::TcpPkt
            || r.tests.iter().any(|t| matches!(t, HeaderTest::Dsize(_)));
        let stream_only = r.flow.only_stream || r.proto == Proto::TcpStream;
        if tcp && !packet_only && self.stream_matches(prog, p, &mut vars) {
            return Some(true);
        }
        if stream_only || payload.is_empty() {
            return None;
        }
        if tcp && p.payload_in_stream && !packet_only {
            return None;
        }
        prog.run(payload, &mut vars).map(|_| false)
    }

    /// Everything of a candidate but its inspection programs: protocol,
    /// app-layer protocol, addresses and ports, flow, IP-only, header tests,
    /// events and flowbits.
    fn packet_matches(&self, r: &Rule, p: &PacketView<'_>, payload: &[u8]) -> bool {
        let d = p.decoded;
        let Some(ip) = d.ip else { return false };
        if !r.proto.admits(ip.version, ip.proto) {
            return false;
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
            return false;
        }
        if r.app_layer_protocol.is_some_and(|t| !t.admits(app_proto)) {
            return false;
        }
        if r.flow.only_frag && !p.reassembled || r.flow.no_frag && p.reassembled {
            return false;
        }
        // Addresses and ports, either way round for `<>`.
        let (sp, dp) = ports(d);
        let fwd = addr_ok(r, ip.src, sp, ip.dst, dp);
        if !(fwd || r.bidir && addr_ok(r, ip.dst, dp, ip.src, sp)) {
            return false;
        }
        if !flow_ok(r, p.flow) {
            return false;
        }
        if r.iponly && p.flow.is_some_and(|f| self.flows.iponly_done(f)) {
            return false;
        }
        r.tests.iter().all(|t| header_test(t, p, payload))
            && r.decode_events
                .iter()
                .all(|e| d.events.iter().any(|x| x.name() == e))
            && r.stream_events
                .iter()
                .all(|e| p.stream_events.contains(&e.as_str()))
            && r.app_events
                .iter()
                .all(|e| p.app_events.contains(&e.as_str()))
            && self.flows.flowbits_ok(r, p.flow)
            && self.flows.flowints_ok(r, p.flow)
    }

    /// Whether the payload program matches one of the packet's stream
    /// windows with a match that ends in this packet's new bytes, past what
    /// was already inspected as a packet.
    fn stream_matches(
        &self,
        prog: &Program,
        p: &PacketView<'_>,
        vars: &mut [i64; MAX_VARS],
    ) -> bool {
        let window = &self.scratch.window;
        for w in &self.scratch.windows {
            if prog.anchored && w.base + w.new_from as u64 != 0 {
                // offset/depth/startswith count from the start of the
                // data: past the stream's first byte, the start is this
                // packet's new bytes, as Suricata's raw stream inspection
                // starts each chunk where the last one ended (its progress),
                // also while the window still holds the stream's start.
                if prog
                    .run(&window[w.start + w.new_from..w.end], vars)
                    .is_some()
                {
                    return true;
                }
                continue;
            }
            if let Some(end) = prog.run(&window[w.start..w.end], vars) {
                // A program that moves no cursor (byte_test, isdataat,
                // ... without content) reports end 0: it matched the
                // window as a whole, new bytes included.
                let end = if end == 0 { w.end - w.start } else { end };
                let seen = p.flow.map_or(0, |f| self.flows.inspected_upto(f));
                if end > w.new_from && w.base + end as u64 > seen {
                    return true;
                }
            }
        }
        false
    }
}

/// The alerts one packet raised: those in `hits` from `first` on.
struct PacketAlerts<'h> {
    hits: &'h mut Vec<Hit>,
    first: usize,
}

impl<'h> PacketAlerts<'h> {
    fn new(hits: &'h mut Vec<Hit>) -> PacketAlerts<'h> {
        let first = hits.len();
        PacketAlerts { hits, first }
    }
}

fn flowint_get(ints: &[(Box<str>, i64)], name: &str) -> Option<i64> {
    ints.iter().find(|(n, _)| **n == *name).map(|(_, v)| *v)
}

fn flowint_value(ints: &[(Box<str>, i64)], v: &zonewatch_rules::FlowintValue) -> Option<i64> {
    match v {
        zonewatch_rules::FlowintValue::Lit(n) => Some(*n),
        zonewatch_rules::FlowintValue::Var(name) => flowint_get(ints, name),
    }
}

/// TCP's SYN flag.
const TCP_SYN: u8 = 0x02;

/// Rules on decode events of a packet without IP.
fn inspect_no_ip<P: Probe>(
    engine: &Engine,
    counters: &mut DetectCounters,
    p: &PacketView<'_>,
    hits: &mut Vec<Hit>,
    probe: &mut P,
) {
    if p.decoded.events.is_empty() {
        return;
    }
    let started = P::mark();
    probe.candidates(&engine.no_ip);
    for &ri in &engine.no_ip {
        let since = P::mark();
        let r = &engine.rules[ri as usize];
        let matched = r
            .decode_events
            .iter()
            .all(|n| p.decoded.events.iter().any(|e| e.name() == n));
        if matched && !r.noalert && !hits.iter().any(|h| h.rule == ri) {
            counters.alerts += 1;
            hits.push(Hit {
                rule: ri,
                stream: false,
            });
        }
        probe.evaluated(ri, since, matched);
    }
    probe.inspected(GroupKey::NoIp, started, engine.no_ip.len());
}

/// The rule's `flow:` direction and state, which need a flow.
fn flow_ok(r: &Rule, flow: Option<FlowView>) -> bool {
    if !(r.flow.to_server || r.flow.to_client || r.flow.established || r.flow.not_established) {
        return true;
    }
    let Some(f) = flow else { return false };
    !(r.flow.to_server && !f.to_server
        || r.flow.to_client && f.to_server
        || r.flow.established && !f.established
        || r.flow.not_established && f.established)
}

/// Tests on the transaction's numbers (`urilen`, `dns.opcode`).
fn tx_numbers_ok(r: &Rule, tx: &zonewatch_applayer::Transaction) -> bool {
    r.tx_tests.iter().all(|t| match t {
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
    })
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
        run_stream_on(&engine, start, segments, app_proto, app_proto_acked)
    }

    /// [`run_stream`] on a given engine.
    fn run_stream_on(
        engine: &Arc<Engine>,
        start: u64,
        segments: &[&[u8]],
        app_proto: Option<zonewatch_applayer::AppProto>,
        app_proto_acked: bool,
    ) -> Vec<Vec<u64>> {
        run_stream_reloading(engine, None, start, segments, app_proto, app_proto_acked)
    }

    /// [`run_stream_on`], the detector going on with the engine of `reload`
    /// from segment `.0` on (a rule reload mid-flow).
    fn run_stream_reloading(
        engine: &Arc<Engine>,
        reload: Option<(usize, &Arc<Engine>)>,
        start: u64,
        segments: &[&[u8]],
        app_proto: Option<zonewatch_applayer::AppProto>,
        app_proto_acked: bool,
    ) -> Vec<Vec<u64>> {
        let mut det = Detector::new(engine.clone());
        let mut offset = start;
        let mut out = Vec::new();
        for (i, seg) in segments.iter().enumerate() {
            if let Some((_, e)) = reload.filter(|r| r.0 == i) {
                det.replace_engine(e.clone());
            }
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
                app_events: &[],
                stream_sizes: None,
            };
            let mut hits = Vec::new();
            det.inspect(&view, &mut hits);
            let e = det.engine();
            out.push(hits.iter().map(|h| e.meta(h.rule).sid).collect());
        }
        out
    }

    /// Profiling changes no alert: the same packets through an engine with
    /// and without it raise the same sids, and the profile's counts agree
    /// with them (and with each other) after two detectors were merged.
    #[test]
    fn profiling_changes_no_alert() {
        let rules = "\
alert tcp any any -> any any (msg:\"set\"; content:\"login\"; flowbits:set,in; flowbits:noalert; sid:1;)
alert tcp any any -> any any (msg:\"after login\"; content:\"cmd\"; flowbits:isset,in; sid:2;)
alert tcp any any -> any 80 (msg:\"two parts\"; content:\"GET\"; content:\"evil\"; distance:0; sid:3;)
alert tcp any any -> any any (msg:\"no fast pattern\"; dsize:>30; sid:4;)
alert tcp any any -> any 81 (msg:\"other port\"; content:\"evil\"; sid:5;)
alert tcp any any -> any any (msg:\"never\"; content:\"GETx\"; content:\"nothere\"; sid:6;)
";
        let words: [&[u8]; 6] = [b"login ", b"cmd ", b"GET ", b"evil ", b"GETx ", b"......."];
        let mut rng = crate::test_rng(7);
        let segments: Vec<Vec<u8>> = (0..300)
            .map(|_| {
                (0..1 + rng(6))
                    .flat_map(|_| words[rng(words.len() as u64) as usize].to_vec())
                    .collect()
            })
            .collect();
        let segs: Vec<&[u8]> = segments.iter().map(|s| s.as_slice()).collect();
        let plain = Arc::new(Engine::from_texts(
            &[("t.rules", rules)],
            &DetectConfig::default(),
        ));
        let mut profiled = Engine::from_texts(&[("t.rules", rules)], &DetectConfig::default());
        profiled.enable_profiling();
        let profiled = Arc::new(profiled);
        assert!(plain.profile().is_none());
        let (half_a, half_b) = segs.split_at(150);
        let off = half_a.iter().map(|s| s.len() as u64).sum();
        let want: Vec<Vec<u64>> = [
            run_stream_on(&plain, 0, half_a, None, false),
            run_stream_on(&plain, off, half_b, None, false),
        ]
        .concat();
        // Two detectors, as two workers: the profile is their sum.
        let got: Vec<Vec<u64>> = [
            run_stream_on(&profiled, 0, half_a, None, false),
            run_stream_on(&profiled, off, half_b, None, false),
        ]
        .concat();
        assert_eq!(got, want);
        let prof = profiled.profile().expect("profiling enabled");
        let alerts = |sid: u64| want.iter().flatten().filter(|&&s| s == sid).count() as u64;
        assert!(alerts(2) > 0 && alerts(3) > 0 && alerts(4) > 0, "{want:?}");
        for (i, c) in prof.rules.iter().enumerate() {
            let sid = profiled.meta(i as u32).sid;
            assert!(c.prefilter_hits >= c.evaluations && c.evaluations >= c.matches);
            if sid == 1 {
                assert!(c.matches > 0 && alerts(1) == 0, "noalert still matches");
            } else {
                assert_eq!(c.matches, alerts(sid), "sid {sid}");
            }
        }
        // sid 4 has no fast pattern: a candidate on every packet; sid 5
        // is in no group of port 80's packets.
        let by_sid =
            |sid: u64| prof.rules[(0..6).find(|&i| profiled.meta(i).sid == sid).unwrap() as usize];
        assert_eq!(by_sid(4).prefilter_hits, segs.len() as u64);
        assert_eq!(by_sid(5).prefilter_hits, 0);
        let packets: u64 = prof.groups.iter().map(|(_, g)| g.packets).sum();
        let cands: u64 = prof.groups.iter().map(|(_, g)| g.candidates).sum();
        assert_eq!(packets, segs.len() as u64);
        assert_eq!(
            cands,
            prof.rules.iter().map(|c| c.prefilter_hits).sum::<u64>()
        );
        assert!(prof.ticks_per_us > 0.0);
        let (label, _) = prof.groups.iter().find(|(_, g)| g.packets > 0).unwrap();
        assert_eq!(label, "tcp to_server port 80");
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

    /// A rule reload in the middle of a flow: flowbits set under the old
    /// engine are seen under the new one, whose ids for the same names
    /// differ, and a pattern split across the reload is still found in the
    /// stream window (the tail's remembered hits named old patterns).
    #[test]
    fn replace_engine_carries_flowbits_and_stream_windows() {
        let old = "\
alert tcp any any -> any any (content:\"login\"; flowbits:set,logged_in; flowbits:noalert; sid:2;)
alert tcp any any -> any any (content:\"secret\"; flowbits:isset,logged_in; sid:4;)
";
        // Other names first: `logged_in` gets another id here.
        let new = format!(
            "alert tcp any any -> any any (content:\"zz\"; flowbits:set,first; flowbits:set,second; flowbits:noalert; sid:9;)\n{old}"
        );
        let a = Arc::new(Engine::from_texts(
            &[("a.rules", old)],
            &DetectConfig::default(),
        ));
        let b = Arc::new(Engine::from_texts(
            &[("b.rules", &new)],
            &DetectConfig::default(),
        ));
        assert_ne!(
            a.flowbit_names.iter().position(|n| n == "logged_in"),
            b.flowbit_names.iter().position(|n| n == "logged_in")
        );
        let segments: [&[u8]; 3] = [b"login ok ", b"the sec", b"ret"];
        let run = |reload: Option<usize>| {
            run_stream_reloading(&a, reload.map(|i| (i, &b)), 0, &segments, None, false)
        };
        let want = vec![vec![], vec![], vec![4]];
        assert_eq!(run(None), want);
        for at in 1..=2 {
            assert_eq!(run(Some(at)), want, "reload before segment {at}");
        }
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
