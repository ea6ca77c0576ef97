//! Compiling one parsed signature into the rule model ([`Rule`]): protocol,
//! addresses and ports resolved against the site's variables, inspection
//! programs built, flowbit names numbered, metadata for the alert record.

use crate::program::{CompileError, Program};
use crate::rule::{
    AppLayerProtocolTest, FastPattern, FbCheck, FbCmd, FlowbitId, HdrBuf, Proto, Rule, RuleMeta,
};
use std::sync::Arc;
use zonewatch_applayer::{AppProto, Buffer, BufferDir};
use zonewatch_ruleconf::{Classifications, PortSet, RuleThreshold, Vars};
use zonewatch_rules::{ErrorKind, Flowbit, Item, Origin, RuleError, Signature};

/// A rule error about keyword `keyword` of rule `sid`: `unsupported` for
/// what zonewatch does not do, else invalid.
pub(crate) fn err(
    origin: &Origin,
    sid: u64,
    keyword: &str,
    detail: String,
    unsupported: bool,
) -> RuleError {
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

/// Flowbit names numbered in order of first use; a name keeps its number.
#[derive(Debug, Default)]
pub(crate) struct FlowbitNames {
    ids: hashbrown::HashMap<String, FlowbitId>,
    names: Vec<String>,
}

impl FlowbitNames {
    /// The id of `name`, a new one if the name is new.
    pub(crate) fn intern(&mut self, name: &str) -> FlowbitId {
        if let Some(&id) = self.ids.get(name) {
            return id;
        }
        let id = self.names.len() as FlowbitId;
        self.names.push(name.to_string());
        self.ids.insert(name.to_string(), id);
        id
    }

    /// The name of id `id`.
    pub(crate) fn name(&self, id: FlowbitId) -> &str {
        &self.names[id as usize]
    }

    /// Number of names.
    pub(crate) fn len(&self) -> usize {
        self.names.len()
    }

    /// The names, by id.
    pub(crate) fn into_names(self) -> Vec<String> {
        self.names
    }
}

/// A compiled rule and its packet fast pattern (`None`: the rule has no
/// positive payload content; transaction rules find theirs in
/// [`tx_fast_pattern`]).
pub(crate) struct Compiled {
    pub rule: Rule,
    pub fast: Option<FastPattern>,
}

/// Compiles one signature. Flowbit names are numbered in `flowbits`.
pub(crate) fn compile(
    s: &Signature,
    vars: &Vars,
    classes: &Classifications,
    flowbits: &mut FlowbitNames,
) -> Result<Compiled, RuleError> {
    let o = &s.origin;
    let sid = s.sid;
    let proto = header_proto(s)?;
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
    let app_layer_protocol = app_layer_protocol_test(s)?;
    let bufs = Buffers::compile(s)?;
    let (fb_cmds, fb_checks) = compile_flowbits(&s.flowbits, flowbits);
    let threshold = threshold(s)?;
    let iponly = is_ip_only(s, proto, &sport, &dport);
    let meta = meta(s, classes)?;
    let rule = Rule {
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
        payload: bufs.payload,
        hdr: bufs.hdr,
        fb_checks,
        fb_cmds,
        threshold,
        decode_events: event_names("decoder.", &s.decode_events),
        stream_events: event_names("stream.", &s.stream_events),
        app_events: s.app_events.iter().map(|e| app_event_name(e)).collect(),
        flowints: s.flowints.clone(),
        iponly: iponly && bufs.app.is_none() && s.app_layer_protocol.is_none(),
        app_layer_protocol,
        tx_tests: s.tx_tests.clone(),
        app: bufs.app,
        app_progs: bufs.app_progs,
        tx_to_client: bufs.tx_to_client,
    };
    Ok(Compiled {
        rule,
        fast: bufs.fast,
    })
}

/// App-layer protocols a rule header may name that zonewatch does not parse.
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

/// The header's protocol. Of the app-layer protocols, those zonewatch
/// parses stand for `ip` plus the protocol (see [`Buffers::app`]).
fn header_proto(s: &Signature) -> Result<Proto, RuleError> {
    Ok(match s.header.proto.as_str() {
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
        "http" | "http1" | "dns" | "tls" | "ssl" | "ssh" | "smtp" => Proto::Any,
        p => {
            let detail = if APP_PROTOS.contains(&p) {
                format!("{p} (app-layer protocol)")
            } else {
                p.to_string()
            };
            return Err(err(&s.origin, s.sid, "protocol", detail, true));
        }
    })
}

/// The app-layer protocol the header names, if zonewatch parses it.
fn header_app_proto(s: &Signature) -> Option<AppProto> {
    match s.header.proto.as_str() {
        "http" | "http1" => Some(AppProto::Http),
        "dns" => Some(AppProto::Dns),
        "tls" | "ssl" => Some(AppProto::Tls),
        "ssh" => Some(AppProto::Ssh),
        "smtp" => Some(AppProto::Smtp),
        _ => None,
    }
}

/// `app-layer-protocol:[!]name`, for protocols zonewatch parses.
fn app_layer_protocol_test(s: &Signature) -> Result<Option<AppLayerProtocolTest>, RuleError> {
    let Some((negated, name)) = &s.app_layer_protocol else {
        return Ok(None);
    };
    let proto = match name.as_str() {
        "failed" | "unknown" => None,
        n => match AppProto::from_name(if n == "ssl" { "tls" } else { n }) {
            Some(p) => Some(p),
            None => {
                return Err(err(
                    &s.origin,
                    s.sid,
                    "app-layer-protocol",
                    format!("{n} (not parsed by zonewatch)"),
                    true,
                ))
            }
        },
    };
    Ok(Some(AppLayerProtocolTest {
        negated: *negated,
        proto,
    }))
}

/// A rule's inspection programs, by the buffer each inspects.
struct Buffers {
    /// The packet payload / stream (`pkt`).
    payload: Option<Program>,
    /// Its fast pattern.
    fast: Option<FastPattern>,
    /// Header buffers.
    hdr: Vec<(HdrBuf, Program)>,
    /// Transaction buffers.
    app_progs: Vec<(Buffer, Program)>,
    /// The app-layer protocol of the header or the transaction buffers.
    app: Option<AppProto>,
    /// Some buffer (or `flow:to_client`) makes it a to_client rule.
    tx_to_client: bool,
}

impl Buffers {
    fn compile(s: &Signature) -> Result<Buffers, RuleError> {
        let (o, sid) = (&s.origin, s.sid);
        let mut out = Buffers {
            payload: None,
            fast: None,
            hdr: Vec::new(),
            app_progs: Vec::new(),
            app: header_app_proto(s),
            tx_to_client: s.flow.to_client,
        };
        // `byte_extract` variables are shared by all buffers of a rule.
        let mut extract_vars = Vec::new();
        let cerr = |e: CompileError| err(o, sid, e.keyword, e.detail, e.unsupported);
        for b in &s.buffers {
            let prog = Program::compile(&b.items, &mut extract_vars)
                .and_then(|p| p.with_transforms(&b.transforms))
                .map_err(cerr)?;
            let hdr = match b.buffer.as_str() {
                "pkt" => {
                    out.fast = fast_pattern(&b.items);
                    out.payload = Some(prog);
                    continue;
                }
                "ipv4.hdr" => HdrBuf::Ipv4,
                "ipv6.hdr" => HdrBuf::Ipv6,
                "tcp.hdr" => HdrBuf::Tcp,
                "udp.hdr" => HdrBuf::Udp,
                "icmpv4.hdr" => HdrBuf::Icmp4,
                "icmpv6.hdr" => HdrBuf::Icmp6,
                other => {
                    out.push_app(s, other, prog)?;
                    continue;
                }
            };
            out.hdr.push((hdr, prog));
        }
        Ok(out)
    }

    /// A transaction buffer's program; all of a rule's must be of one
    /// protocol.
    fn push_app(&mut self, s: &Signature, keyword: &str, prog: Program) -> Result<(), RuleError> {
        let Some(mut buf) = Buffer::from_keyword(keyword) else {
            return Err(err(
                &s.origin,
                s.sid,
                keyword,
                "app-layer buffer".to_string(),
                true,
            ));
        };
        // `file_data` means the files of the header's protocol.
        if let Some(h) = header_app_proto(s) {
            buf = buf.for_proto(h);
        }
        let p = buf.proto();
        if let Some(a) = self.app.filter(|a| *a != p) {
            return Err(err(
                &s.origin,
                s.sid,
                keyword,
                format!("a {} buffer in a {} rule", p.name(), a.name()),
                false,
            ));
        }
        self.app = Some(p);
        if buf.dir() == BufferDir::ToClient {
            self.tx_to_client = true;
        }
        self.app_progs.push((buf, prog));
        Ok(())
    }
}

/// The rule's flowbit commands and checks, names numbered in `names`.
fn compile_flowbits(flowbits: &[Flowbit], names: &mut FlowbitNames) -> (Vec<FbCmd>, Vec<FbCheck>) {
    let mut cmds = Vec::new();
    let mut checks = Vec::new();
    for f in flowbits {
        match f {
            Flowbit::Set(n) => cmds.push(FbCmd::Set(names.intern(n))),
            Flowbit::Unset(n) => cmds.push(FbCmd::Unset(names.intern(n))),
            Flowbit::Toggle(n) => cmds.push(FbCmd::Toggle(names.intern(n))),
            Flowbit::IsSet(ns, all) => checks.push(FbCheck::IsSet(
                ns.iter().map(|n| names.intern(n)).collect(),
                *all,
            )),
            Flowbit::IsNotSet(ns, all) => checks.push(FbCheck::IsNotSet(
                ns.iter().map(|n| names.intern(n)).collect(),
                *all,
            )),
        }
    }
    (cmds, checks)
}

/// `threshold:` or, without it, `detection_filter:`.
fn threshold(s: &Signature) -> Result<Option<RuleThreshold>, RuleError> {
    let (o, sid) = (&s.origin, s.sid);
    Ok(match (&s.threshold, &s.detection_filter) {
        (Some(t), _) => Some(
            zonewatch_ruleconf::parse_threshold_keyword(t)
                .map_err(|e| err(o, sid, "threshold", e.to_string(), false))?,
        ),
        (None, Some(d)) => Some(
            zonewatch_ruleconf::parse_detection_filter_keyword(d)
                .map_err(|e| err(o, sid, "detection_filter", e.to_string(), false))?,
        ),
        (None, None) => None,
    })
}

/// Suricata's SignatureIsIPOnly, as far as the signature shows it (the
/// caller adds: no app-layer protocol). It admits flowbits that only `set`
/// (the IP reputation rules of ET: `flowbits:set,ET.Evil`).
fn is_ip_only(s: &Signature, proto: Proto, sport: &PortSet, dport: &PortSet) -> bool {
    s.buffers.is_empty()
        && s.header_tests.is_empty()
        && s.flowbits.iter().all(|f| matches!(f, Flowbit::Set(_)))
        && s.decode_events.is_empty()
        && s.stream_events.is_empty()
        && s.app_events.is_empty()
        && s.flowints.is_empty()
        && sport.is_any()
        && dport.is_any()
        && !s.flow.to_server
        && !s.flow.to_client
        && !s.flow.established
        && !s.flow.not_established
        && !s.flow.only_stream
        && !matches!(proto, Proto::TcpStream)
}

/// What the alert record says of the rule.
fn meta(s: &Signature, classes: &Classifications) -> Result<RuleMeta, RuleError> {
    let class = match &s.classtype {
        Some(c) => Some(classes.get(c).ok_or_else(|| {
            err(
                &s.origin,
                s.sid,
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
    Ok(RuleMeta {
        gid: s.gid,
        sid: s.sid,
        rev: s.rev,
        msg: Arc::from(s.msg.as_str()),
        category: Arc::from(class.map(|c| c.description.as_str()).unwrap_or("")),
        severity,
        action: s.header.action.name(),
        metadata: Arc::from(s.metadata.clone()),
        origin: s.origin.to_string(),
        target_dest: s.target.as_deref().map(|t| t == "dest_ip"),
    })
}

/// Event names with their family's prefix (`decoder.`, `stream.`), which
/// rules may leave out.
/// An `app-layer-event` name as the app layer raises it: Suricata writes
/// the protocol-independent ones `applayer_x`, the app layer `applayer.x`.
fn app_event_name(e: &str) -> String {
    match e.strip_prefix("applayer_") {
        Some(rest) => format!("applayer.{rest}"),
        None => e.to_string(),
    }
}

fn event_names(prefix: &str, names: &[String]) -> Vec<String> {
    names
        .iter()
        .map(|e| format!("{prefix}{}", e.strip_prefix(prefix).unwrap_or(e)))
        .collect()
}

/// A transaction rule's fast pattern: the content marked `fast_pattern`
/// in any of its buffers, else the longest positive content, with its buffer.
pub(crate) fn tx_fast_pattern(r: &Rule) -> Option<(Buffer, FastPattern)> {
    let mut best: Option<(Buffer, Vec<u8>, bool, bool)> = None;
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
    best.map(|(b, bytes, nocase, _)| (b, FastPattern { bytes, nocase }))
}

/// The rule's fast pattern: the content marked `fast_pattern`, else the
/// longest positive content (first of equals), as Suricata picks.
fn fast_pattern(items: &[Item]) -> Option<FastPattern> {
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
    let bytes = match c.fast_pattern.and_then(|f| f.chop) {
        Some((off, len)) => c.pattern[off as usize..(off + len) as usize].to_vec(),
        None => c.pattern.clone(),
    };
    Some(FastPattern {
        bytes,
        nocase: c.nocase,
    })
}
