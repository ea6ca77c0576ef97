//! Loading rule files and compiling them into the engine.

use crate::program::{CompileError, Program};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use zonewatch_ruleconf::{
    AddressSet, Classifications, PortSet, RuleThreshold, ThresholdConfig, Vars,
};
use zonewatch_rules::{
    Action, ErrorKind, FlowOpts, Flowbit, HeaderTest, Item, Origin, RuleError, Signature,
};

/// Where the engine's site configuration comes from.
#[derive(Debug, Clone, Default)]
pub struct DetectConfig {
    /// Address-group overrides (`HOME_NET` → `[10.0.0.0/8]`).
    pub address_groups: Vec<(String, String)>,
    /// Port-group overrides.
    pub port_groups: Vec<(String, String)>,
    /// `classification.config` to use instead of the built-in one.
    pub classification_file: Option<PathBuf>,
    /// `threshold.config`, if any.
    pub threshold_file: Option<PathBuf>,
    /// Bytes of already inspected stream kept per direction so that a
    /// pattern split across segments still matches.
    pub stream_window: usize,
}

/// What a rule says about itself, for the alert record.
#[derive(Debug, Clone)]
pub struct RuleMeta {
    /// Generator id.
    pub gid: u32,
    /// Signature id.
    pub sid: u64,
    /// Revision.
    pub rev: u32,
    /// `msg`.
    pub msg: Arc<str>,
    /// Classification description ("" without classtype).
    pub category: Arc<str>,
    /// 1 (highest) to 4; from `priority`, else the classtype, else 3.
    pub severity: u8,
    /// Action word (`alert`, `drop`, `reject`, `pass`).
    pub action: &'static str,
    /// Metadata pairs.
    pub metadata: Arc<[(String, String)]>,
    /// Where the rule was written.
    pub origin: String,
    /// `target:` keyword: `Some(true)` when the target is the destination.
    pub target_dest: Option<bool>,
}

/// What loading found: counts, reasons, every skipped rule, time taken.
#[derive(Debug, Default, Clone)]
pub struct LoadReport {
    /// Rule files read.
    pub files: Vec<PathBuf>,
    /// Rules loaded.
    pub loaded: usize,
    /// Rules skipped.
    pub skipped: usize,
    /// Of those, rules that need the app-layer parsers (an app-layer
    /// protocol, buffer, transform or keyword).
    pub skipped_app_layer: usize,
    /// Skip reasons with their counts.
    pub reasons: BTreeMap<String, usize>,
    /// Every skipped rule.
    pub errors: Vec<RuleError>,
    /// Problems in classification/threshold files.
    pub config_warnings: Vec<String>,
    /// Time to read, parse and compile.
    pub load_time: Duration,
    /// Loaded rules without a fast pattern, checked on every packet of
    /// their protocol: tcp, udp, icmp, other.
    pub no_fast_pattern: [usize; 4],
    /// Rules run per packet and stream (the rest run per transaction).
    pub packet_rules: usize,
    /// Of those, IP-only rules (first packet of each flow direction).
    pub ip_only: usize,
    /// Signature groups the packet rules are split into.
    pub groups: usize,
    /// Distinct fast patterns in the largest group.
    pub largest_group_patterns: usize,
}

impl LoadReport {
    fn skip(&mut self, e: RuleError) {
        self.skipped += 1;
        if needs_app_layer(&e) {
            self.skipped_app_layer += 1;
        }
        *self.reasons.entry(e.reason()).or_default() += 1;
        self.errors.push(e);
    }
}

/// Whether a skipped rule needs the app-layer parsers (for the share of
/// packet-level rules that load).
pub fn needs_app_layer(e: &RuleError) -> bool {
    match &e.kind {
        ErrorKind::Unsupported { keyword, detail } => {
            zonewatch_rules::APP_LAYER_KEYWORDS.contains(&keyword.as_str())
                || detail.contains("app-layer")
                || keyword.starts_with("http")
                || keyword.starts_with("dns")
                || keyword.starts_with("tls")
                || keyword.starts_with("ssh")
                || keyword.starts_with("ja3")
                || keyword.starts_with("ja4")
                || keyword == "file.data"
        }
        _ => false,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Proto {
    Any,
    V4,
    V6,
    Tcp,
    TcpPkt,
    TcpStream,
    Udp,
    Icmp,
    Icmp4,
    Icmp6,
    Sctp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HdrBuf {
    Ipv4,
    Ipv6,
    Tcp,
    Udp,
    Icmp4,
    Icmp6,
}

#[derive(Debug)]
pub(crate) enum FbCheck {
    IsSet(Vec<u32>, bool),
    IsNotSet(Vec<u32>, bool),
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum FbCmd {
    Set(u32),
    Unset(u32),
    Toggle(u32),
}

pub(crate) struct Rule {
    pub meta: RuleMeta,
    pub action: Action,
    pub noalert: bool,
    pub proto: Proto,
    pub src: AddressSet,
    pub dst: AddressSet,
    pub sport: PortSet,
    pub dport: PortSet,
    pub bidir: bool,
    pub flow: FlowOpts,
    pub tests: Vec<HeaderTest>,
    pub payload: Option<Program>,
    pub hdr: Vec<(HdrBuf, Program)>,
    pub fb_checks: Vec<FbCheck>,
    pub fb_cmds: Vec<FbCmd>,
    pub threshold: Option<RuleThreshold>,
    pub decode_events: Vec<String>,
    pub stream_events: Vec<String>,
    /// Suricata's IP-only rules: checked on the first packet of each flow
    /// direction only.
    pub iponly: bool,
    /// The flow's app-layer protocol must be this (`alert http ...`, or
    /// implied by the buffers).
    pub app: Option<zonewatch_applayer::AppProto>,
    /// Inspection of transaction buffers: the rule runs per transaction.
    pub app_progs: Vec<(zonewatch_applayer::Buffer, Program)>,
    /// A transaction rule inspects the to_client side.
    pub tx_to_client: bool,
    /// `app-layer-protocol`: (negated, protocol).
    pub app_layer_protocol: Option<(bool, Option<zonewatch_applayer::AppProto>)>,
    /// Tests on the transaction's numbers.
    pub tx_tests: Vec<zonewatch_rules::TxTest>,
}

/// Coarse protocol classes for the rules checked on every packet.
pub(crate) const CLASSES: usize = 4;
pub(crate) fn class_of(proto: u8) -> usize {
    match proto {
        6 => 0,
        17 => 1,
        1 | 58 => 2,
        _ => 3,
    }
}

/// The compiled rule set, shared read-only by all workers.
pub struct Engine {
    pub(crate) rules: Vec<Rule>,
    /// Packet rules grouped by protocol class, direction and server port,
    /// each group with its prefilter.
    pub(crate) groups: crate::groups::Groups,
    /// Rules on decode events of packets without IP (`alert pkthdr`).
    pub(crate) no_ip: Vec<u32>,
    /// Rules without a fast pattern but with a narrow address side,
    /// found by the packet's addresses.
    pub(crate) by_addr: crate::addrindex::AddrIndex,
    /// Some rule is IP-only (flows then remember which directions were checked).
    pub(crate) has_iponly: bool,
    /// Transaction rules: prefilter per (buffer, rules inspect the
    /// to_client side), and rules without a fast pattern by app-layer
    /// protocol. Split by side because a transaction's request is
    /// inspected twice (its to_server rules when the request is complete,
    /// its to_client rules when the response is): the second time only
    /// the few to_client rules' patterns are scanned for.
    pub(crate) tx_prefilter:
        hashbrown::HashMap<(zonewatch_applayer::Buffer, bool), crate::prefilter::Prefilter>,
    pub(crate) tx_always: hashbrown::HashMap<zonewatch_applayer::AppProto, Vec<u32>>,
    pub(crate) flowbit_count: usize,
    pub(crate) threshold_cfg: Arc<ThresholdConfig>,
    pub(crate) stream_window: usize,
    /// The load report.
    pub report: LoadReport,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("rules", &self.rules.len())
            .finish()
    }
}

fn err(origin: &Origin, sid: u64, keyword: &str, detail: String, unsupported: bool) -> RuleError {
    RuleError {
        origin: origin.clone(),
        column: 1,
        sid: Some(sid),
        kind: if unsupported {
            ErrorKind::Unsupported {
                keyword: keyword.to_string(),
                detail,
            }
        } else {
            ErrorKind::Invalid(format!("{keyword}: {detail}"))
        },
    }
}

/// Signature files under the given paths, by the walk all rule loaders share
/// (`zonewatch_rulefiles`: files as given, directories searched recursively in
/// name order, symbolic link loops ended, each file once), and what the walk
/// skipped (one line each, naming the path).
fn rule_files(paths: &[PathBuf]) -> std::io::Result<(Vec<PathBuf>, Vec<String>)> {
    let w = zonewatch_rulefiles::collect(paths)?;
    let skipped = w.skipped.iter().map(|s| s.to_string()).collect();
    Ok((w.of(zonewatch_rulefiles::Kind::Signatures), skipped))
}

impl Engine {
    /// Reads and compiles every `.rules` file under `paths`. Fails only when
    /// a path cannot be read at all.
    pub fn load(paths: &[PathBuf], cfg: &DetectConfig) -> std::io::Result<Engine> {
        let t0 = Instant::now();
        let (files, skipped) = rule_files(paths)?;
        let mut texts = Vec::with_capacity(files.len());
        for f in &files {
            let bytes = std::fs::read(f)?;
            texts.push((
                f.display().to_string(),
                String::from_utf8_lossy(&bytes).into_owned(),
            ));
        }
        let refs: Vec<(&str, &str)> = texts
            .iter()
            .map(|(n, t)| (n.as_str(), t.as_str()))
            .collect();
        let mut e = Engine::from_texts(&refs, cfg);
        e.report.config_warnings.extend(skipped);
        e.report.files = files;
        e.report.load_time = t0.elapsed();
        Ok(e)
    }

    /// Compiles rules given as (file label, text) pairs.
    pub fn from_texts(texts: &[(&str, &str)], cfg: &DetectConfig) -> Engine {
        let t0 = Instant::now();
        let mut report = LoadReport::default();
        let (vars, var_errors) = Vars::build(
            cfg.address_groups
                .iter()
                .map(|(a, b)| (a.as_str(), b.as_str())),
            cfg.port_groups
                .iter()
                .map(|(a, b)| (a.as_str(), b.as_str())),
        );
        for e in var_errors {
            report.config_warnings.push(format!("vars: {e}"));
        }
        let classes = match &cfg.classification_file {
            Some(p) => match Classifications::load(p) {
                Ok((c, errs)) => {
                    for e in errs {
                        report.config_warnings.push(e.to_string());
                    }
                    c
                }
                Err(e) => {
                    report.config_warnings.push(e.to_string());
                    Classifications::builtin()
                }
            },
            None => Classifications::builtin(),
        };
        let threshold_cfg = match &cfg.threshold_file {
            Some(p) => match ThresholdConfig::load(p, &vars) {
                Ok((t, errs)) => {
                    for e in errs {
                        report.config_warnings.push(e.to_string());
                    }
                    t
                }
                Err(e) => {
                    report.config_warnings.push(e.to_string());
                    ThresholdConfig::empty()
                }
            },
            None => ThresholdConfig::empty(),
        };
        // Parsing and compiling (regexes above all) are most of the load
        // time: files are spread over the cores in contiguous runs and the
        // results merged in file order, so the engine and the report are
        // those of a sequential load. Flowbit names get their final ids in
        // the merge.
        // Only what the merge needs of each signature is kept: holding the
        // parsed signatures of all files at once cost ~80 MB with ET Open.
        type Parsed = (
            Vec<RuleError>,
            Vec<((u32, u64, Origin), Result<Compiled, RuleError>)>,
        );
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .clamp(1, texts.len().max(1));
        let total: usize = texts.iter().map(|(_, t)| t.len()).sum();
        let mut runs: Vec<&[(&str, &str)]> = Vec::new();
        let (mut from, mut size) = (0, 0);
        for (i, (_, t)) in texts.iter().enumerate() {
            size += t.len();
            if size * threads >= total * (runs.len() + 1) && runs.len() + 1 < threads {
                runs.push(&texts[from..=i]);
                from = i + 1;
            }
        }
        runs.push(&texts[from..]);
        let parsed: Vec<(Vec<Parsed>, Vec<String>)> = std::thread::scope(|scope| {
            let handles: Vec<_> = runs
                .iter()
                .map(|run| {
                    let (vars, classes) = (&vars, &classes);
                    scope.spawn(move || {
                        let mut local_bits: Vec<String> = Vec::new();
                        let files = run
                            .iter()
                            .map(|(file, text)| {
                                let (sigs, errs) = zonewatch_rules::parse_file(text, file);
                                let sigs = sigs
                                    .into_iter()
                                    .map(|s| {
                                        let c = compile(&s, vars, classes, &mut local_bits);
                                        ((s.gid, s.sid, s.origin), c)
                                    })
                                    .collect();
                                (errs, sigs)
                            })
                            .collect();
                        (files, local_bits)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("rule compilation does not panic"))
                .collect()
        });
        let mut flowbits: Vec<String> = Vec::new();
        let mut rules: Vec<(Rule, FastPat, usize)> = Vec::new();
        let mut seen: hashbrown::HashMap<(u32, u64), Origin> = hashbrown::HashMap::new();
        for (files, local_bits) in parsed {
            let mut global: Vec<Option<u32>> = vec![None; local_bits.len()];
            let mut remap = |b: &mut u32| {
                let g = *global[*b as usize].get_or_insert_with(|| {
                    let name = &local_bits[*b as usize];
                    match flowbits.iter().position(|n| n == name) {
                        Some(i) => i as u32,
                        None => {
                            flowbits.push(name.clone());
                            (flowbits.len() - 1) as u32
                        }
                    }
                });
                *b = g;
            };
            for (errs, sigs) in files {
                for e in errs {
                    report.skip(e);
                }
                for ((gid, sid, origin), compiled) in sigs {
                    if let Some(first) = seen.get(&(gid, sid)) {
                        let first = first.to_string();
                        report.skip(err(
                            &origin,
                            sid,
                            "sid",
                            format!("duplicate of {first}"),
                            false,
                        ));
                        continue;
                    }
                    match compiled {
                        Ok((mut r, fp)) => {
                            for c in &mut r.fb_cmds {
                                match c {
                                    FbCmd::Set(b) | FbCmd::Unset(b) | FbCmd::Toggle(b) => remap(b),
                                }
                            }
                            for c in &mut r.fb_checks {
                                match c {
                                    FbCheck::IsSet(bs, _) | FbCheck::IsNotSet(bs, _) => {
                                        bs.iter_mut().for_each(&mut remap)
                                    }
                                }
                            }
                            seen.insert((gid, sid), origin);
                            let n = rules.len();
                            rules.push((r, fp, n));
                            report.loaded += 1;
                        }
                        Err(e) => report.skip(e),
                    }
                }
            }
        }
        // Suricata's evaluation order: action (pass, drop, reject, alert),
        // flowbit setters before checkers, priority, then load order.
        rules.sort_by_key(|(r, _, n)| {
            let fb = match (r.fb_cmds.is_empty(), r.fb_checks.is_empty()) {
                (false, true) => 0,
                (false, false) => 1,
                (true, false) => 2,
                (true, true) => 3,
            };
            (r.action, fb, r.meta.severity, *n)
        });
        let mut members: Vec<crate::groups::Member> = Vec::new();
        let mut no_ip: Vec<u32> = Vec::new();
        let mut addr_items: Vec<(u32, bool)> = Vec::new();
        let mut no_fast_pattern = [0usize; CLASSES];
        let mut out = Vec::with_capacity(rules.len());
        type TxItems = Vec<(Vec<u8>, bool, u32)>;
        let mut tx_items: hashbrown::HashMap<(zonewatch_applayer::Buffer, bool), TxItems> =
            hashbrown::HashMap::new();
        let mut tx_always: hashbrown::HashMap<zonewatch_applayer::AppProto, Vec<u32>> =
            hashbrown::HashMap::new();
        for (i, (r, fp, _)) in rules.into_iter().enumerate() {
            let i = i as u32;
            if !r.app_progs.is_empty() {
                // A transaction rule: prefiltered on its buffers.
                match tx_fast_pattern(&r) {
                    Some((buf, pat, nocase)) => tx_items
                        .entry((buf, r.tx_to_client))
                        .or_default()
                        .push((pat, nocase, i)),
                    None => tx_always
                        .entry(r.app.expect("transaction rules have an app protocol"))
                        .or_default()
                        .push(i),
                }
                out.push(r);
                continue;
            }
            if fp.is_none() {
                if r.proto == Proto::Any && !r.decode_events.is_empty() {
                    no_ip.push(i);
                }
                if crate::addrindex::narrow(&r.src) {
                    addr_items.push((i, true));
                    out.push(r);
                    continue;
                }
                if crate::addrindex::narrow(&r.dst) {
                    addr_items.push((i, false));
                    out.push(r);
                    continue;
                }
                for (c, n) in no_fast_pattern.iter_mut().enumerate() {
                    if proto_in_class(r.proto, c) {
                        *n += 1;
                    }
                }
            }
            members.push(crate::groups::Member { rule: i, fast: fp });
            out.push(r);
        }
        let groups = crate::groups::Groups::build(&out, &members);
        report.packet_rules = out.iter().filter(|r| r.app_progs.is_empty()).count();
        report.ip_only = out.iter().filter(|r| r.iponly).count();
        report.groups = groups.len();
        report.largest_group_patterns = groups.largest_prefilter();
        for (p, list) in &tx_always {
            tracing::info!("{} rules without a fast pattern: {}", p.name(), list.len());
        }
        let by_addr = crate::addrindex::AddrIndex::build(
            &addr_items
                .iter()
                .map(|&(i, src)| {
                    let r = &out[i as usize];
                    (i, if src { &r.src } else { &r.dst })
                })
                .collect::<Vec<_>>(),
        );
        let has_iponly = out.iter().any(|r| r.iponly);
        let tx_prefilter = tx_items
            .into_iter()
            .map(|(b, items)| (b, crate::prefilter::Prefilter::build(&items)))
            .collect();
        report.load_time = t0.elapsed();
        report.no_fast_pattern = no_fast_pattern;
        Engine {
            rules: out,
            groups,
            no_ip,
            by_addr,
            has_iponly,
            tx_prefilter,
            tx_always,
            flowbit_count: flowbits.len(),
            threshold_cfg: Arc::new(threshold_cfg),
            stream_window: if cfg.stream_window == 0 {
                1024
            } else {
                cfg.stream_window
            },
            report,
        }
    }

    /// Number of rules loaded.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// Whether no rule loaded.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// A rule's metadata by its engine index (from [`crate::Hit`]).
    pub fn meta(&self, rule: u32) -> &RuleMeta {
        &self.rules[rule as usize].meta
    }
}

pub(crate) fn proto_in_class(p: Proto, class: usize) -> bool {
    match p {
        Proto::Any | Proto::V4 | Proto::V6 => true,
        Proto::Tcp | Proto::TcpPkt | Proto::TcpStream => class == 0,
        Proto::Udp => class == 1,
        Proto::Icmp | Proto::Icmp4 | Proto::Icmp6 => class == 2,
        Proto::Sctp => class == 3,
    }
}

const APP_PROTOS: &[&str] = &[
    "http",
    "http1",
    "http2",
    "dns",
    "tls",
    "ssl",
    "ssh",
    "ftp",
    "ftp-data",
    "smtp",
    "imap",
    "pop3",
    "smb",
    "dcerpc",
    "nfs",
    "tftp",
    "ntp",
    "dhcp",
    "krb5",
    "snmp",
    "sip",
    "rfb",
    "mqtt",
    "modbus",
    "dnp3",
    "enip",
    "ike",
    "ikev2",
    "rdp",
    "quic",
    "bittorrent-dht",
    "telnet",
    "pgsql",
    "websocket",
    "ldap",
    "irc",
    "jabber",
];

/// A rule's fast pattern and whether it is caseless.
type FastPat = Option<(Vec<u8>, bool)>;
type Compiled = (Rule, FastPat);

fn compile(
    s: &Signature,
    vars: &Vars,
    classes: &Classifications,
    flowbits: &mut Vec<String>,
) -> Result<Compiled, RuleError> {
    let o = &s.origin;
    let sid = s.sid;
    let proto = match s.header.proto.as_str() {
        "ip" | "pkthdr" => Proto::Any,
        "ipv4" | "ip4" => Proto::V4,
        "ipv6" | "ip6" => Proto::V6,
        "tcp" => Proto::Tcp,
        "tcp-pkt" => Proto::TcpPkt,
        "tcp-stream" => Proto::TcpStream,
        "udp" => Proto::Udp,
        "icmp" => Proto::Icmp,
        "icmpv4" => Proto::Icmp4,
        "icmpv6" => Proto::Icmp6,
        "sctp" => Proto::Sctp,
        "http" | "http1" | "dns" | "tls" | "ssl" | "ssh" => Proto::Any,
        p if APP_PROTOS.contains(&p) => {
            return Err(err(
                o,
                sid,
                "protocol",
                format!("{p} (app-layer protocol)"),
                true,
            ))
        }
        p => return Err(err(o, sid, "protocol", p.to_string(), true)),
    };
    let addr = |text: &str| {
        vars.address(text)
            .map_err(|e| err(o, sid, "address", e.to_string(), false))
    };
    let port = |text: &str| {
        vars.port(text)
            .map_err(|e| err(o, sid, "port", e.to_string(), false))
    };
    let src = addr(&s.header.src)?;
    let dst = addr(&s.header.dst)?;
    let sport = port(&s.header.sport)?;
    let dport = port(&s.header.dport)?;
    let mut app = match s.header.proto.as_str() {
        "http" | "http1" => Some(zonewatch_applayer::AppProto::Http),
        "dns" => Some(zonewatch_applayer::AppProto::Dns),
        "tls" | "ssl" => Some(zonewatch_applayer::AppProto::Tls),
        "ssh" => Some(zonewatch_applayer::AppProto::Ssh),
        _ => None,
    };
    let mut app_progs = Vec::new();
    let app_layer_protocol = match &s.app_layer_protocol {
        None => None,
        Some((neg, name)) => match name.as_str() {
            "failed" | "unknown" => Some((*neg, None)),
            n => {
                match zonewatch_applayer::AppProto::from_name(if n == "ssl" { "tls" } else { n }) {
                    Some(p) => Some((*neg, Some(p))),
                    None => {
                        return Err(err(
                            o,
                            sid,
                            "app-layer-protocol",
                            format!("{n} (not parsed by zonewatch)"),
                            true,
                        ))
                    }
                }
            }
        },
    };
    let mut tx_to_client = s.flow.to_client;
    let mut payload = None;
    let mut hdr = Vec::new();
    let mut fast: Option<(Vec<u8>, bool)> = None;
    let mut extract_vars = Vec::new();
    let cerr = |e: CompileError| err(o, sid, e.keyword, e.detail, e.unsupported);
    for b in &s.buffers {
        let prog = Program::compile(&b.items, &mut extract_vars)
            .and_then(|p| p.with_transforms(&b.transforms))
            .map_err(cerr)?;
        match b.buffer.as_str() {
            "pkt" => {
                fast = fast_pattern(&b.items);
                payload = Some(prog);
            }
            "ipv4.hdr" => hdr.push((HdrBuf::Ipv4, prog)),
            "ipv6.hdr" => hdr.push((HdrBuf::Ipv6, prog)),
            "tcp.hdr" => hdr.push((HdrBuf::Tcp, prog)),
            "udp.hdr" => hdr.push((HdrBuf::Udp, prog)),
            "icmpv4.hdr" => hdr.push((HdrBuf::Icmp4, prog)),
            "icmpv6.hdr" => hdr.push((HdrBuf::Icmp6, prog)),
            other => match zonewatch_applayer::Buffer::from_keyword(other) {
                Some(buf) => {
                    let p = buf.proto();
                    if let Some(a) = app.filter(|a| *a != p) {
                        return Err(err(
                            o,
                            sid,
                            other,
                            format!("a {} buffer in a {} rule", p.name(), a.name()),
                            false,
                        ));
                    }
                    app = Some(p);
                    if buf.dir() == zonewatch_applayer::BufferDir::ToClient {
                        tx_to_client = true;
                    }
                    app_progs.push((buf, prog));
                }
                None => return Err(err(o, sid, other, "app-layer buffer".to_string(), true)),
            },
        }
    }
    let mut intern = |name: &str| -> u32 {
        match flowbits.iter().position(|n| n == name) {
            Some(i) => i as u32,
            None => {
                flowbits.push(name.to_string());
                (flowbits.len() - 1) as u32
            }
        }
    };
    let mut fb_checks = Vec::new();
    let mut fb_cmds = Vec::new();
    for f in &s.flowbits {
        match f {
            Flowbit::Set(n) => fb_cmds.push(FbCmd::Set(intern(n))),
            Flowbit::Unset(n) => fb_cmds.push(FbCmd::Unset(intern(n))),
            Flowbit::Toggle(n) => fb_cmds.push(FbCmd::Toggle(intern(n))),
            Flowbit::IsSet(ns, all) => {
                fb_checks.push(FbCheck::IsSet(ns.iter().map(|n| intern(n)).collect(), *all))
            }
            Flowbit::IsNotSet(ns, all) => fb_checks.push(FbCheck::IsNotSet(
                ns.iter().map(|n| intern(n)).collect(),
                *all,
            )),
        }
    }
    let threshold = match (&s.threshold, &s.detection_filter) {
        (Some(t), _) => Some(
            zonewatch_ruleconf::parse_threshold_keyword(t)
                .map_err(|e| err(o, sid, "threshold", e.to_string(), false))?,
        ),
        (None, Some(d)) => Some(
            zonewatch_ruleconf::parse_detection_filter_keyword(d)
                .map_err(|e| err(o, sid, "detection_filter", e.to_string(), false))?,
        ),
        (None, None) => None,
    };
    let class = match &s.classtype {
        Some(c) => Some(classes.get(c).ok_or_else(|| {
            err(
                o,
                sid,
                "classtype",
                format!("unknown classtype {c:?}"),
                false,
            )
        })?),
        None => None,
    };
    let severity = s
        .priority
        .or(class.map(|c| c.priority.min(255) as u8))
        .unwrap_or(3)
        .clamp(1, 255);
    // Suricata's SignatureIsIPOnly admits flowbits that only `set` (the IP
    // reputation rules of ET: `flowbits:set,ET.Evil`).
    let iponly = s.buffers.is_empty()
        && s.header_tests.is_empty()
        && s.flowbits
            .iter()
            .all(|f| matches!(f, zonewatch_rules::Flowbit::Set(_)))
        && s.decode_events.is_empty()
        && s.stream_events.is_empty()
        && sport.is_any()
        && dport.is_any()
        && !s.flow.to_server
        && !s.flow.to_client
        && !s.flow.established
        && !s.flow.not_established
        && !s.flow.only_stream
        && !matches!(proto, Proto::TcpStream);
    let meta = RuleMeta {
        gid: s.gid,
        sid,
        rev: s.rev,
        msg: Arc::from(s.msg.as_str()),
        category: Arc::from(class.map(|c| c.description.as_str()).unwrap_or("")),
        severity,
        action: match s.header.action {
            Action::Alert => "alert",
            Action::Drop => "drop",
            Action::Reject => "reject",
            Action::Pass => "pass",
        },
        metadata: Arc::from(s.metadata.clone()),
        origin: s.origin.to_string(),
        target_dest: s.target.as_deref().map(|t| t == "dest_ip"),
    };
    Ok((
        Rule {
            meta,
            action: s.header.action,
            noalert: s.noalert,
            proto,
            src,
            dst,
            sport,
            dport,
            bidir: s.header.bidirectional,
            flow: s.flow,
            tests: s.header_tests.clone(),
            payload,
            hdr,
            fb_checks,
            fb_cmds,
            threshold,
            decode_events: s
                .decode_events
                .iter()
                .map(|e| {
                    let e = e.strip_prefix("decoder.").unwrap_or(e);
                    format!("decoder.{e}")
                })
                .collect(),
            stream_events: s
                .stream_events
                .iter()
                .map(|e| {
                    let e = e.strip_prefix("stream.").unwrap_or(e);
                    format!("stream.{e}")
                })
                .collect(),
            iponly: iponly && app.is_none() && s.app_layer_protocol.is_none(),
            app_layer_protocol,
            tx_tests: s.tx_tests.clone(),
            app,
            app_progs,
            tx_to_client,
        },
        fast,
    ))
}

/// A transaction rule's fast pattern: the content marked `fast_pattern`
/// in any of its buffers, else the longest positive content, with its buffer.
fn tx_fast_pattern(r: &Rule) -> Option<(zonewatch_applayer::Buffer, Vec<u8>, bool)> {
    let mut best: Option<(zonewatch_applayer::Buffer, Vec<u8>, bool, bool)> = None;
    for (b, prog) in &r.app_progs {
        if let Some((pat, nocase, explicit)) = prog.fast_pattern() {
            let better = match &best {
                None => true,
                Some((_, bp, _, bexp)) => {
                    (explicit && !bexp) || (explicit == *bexp && pat.len() > bp.len())
                }
            };
            if better {
                best = Some((*b, pat, nocase, explicit));
            }
        }
    }
    best.map(|(b, p, n, _)| (b, p, n))
}

/// The rule's fast pattern: the content marked `fast_pattern`, else the
/// longest positive content (first of equals), as Suricata picks.
fn fast_pattern(items: &[Item]) -> Option<(Vec<u8>, bool)> {
    let mut best: Option<&zonewatch_rules::Content> = None;
    for it in items {
        if let Item::Content(c) = it {
            if c.negated {
                continue;
            }
            if c.fast_pattern.is_some() {
                best = Some(c);
                break;
            }
            if best.is_none_or(|b| c.pattern.len() > b.pattern.len()) {
                best = Some(c);
            }
        }
    }
    let c = best?;
    let pat = match c.fast_pattern.and_then(|f| f.chop) {
        Some((off, len)) => c.pattern[off as usize..(off + len) as usize].to_vec(),
        None => c.pattern.clone(),
    };
    Some((pat, c.nocase))
}
