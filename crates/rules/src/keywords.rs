//! Typed rule options: what each keyword's value means.

use crate::text::RawOption;
use crate::{Action, ErrorKind, Header, Origin};

/// A parsed rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Signature {
    /// Where it was written.
    pub origin: Origin,
    /// Header.
    pub header: Header,
    /// Signature id.
    pub sid: u64,
    /// Generator id (1 unless given).
    pub gid: u32,
    /// Revision.
    pub rev: u32,
    /// Message.
    pub msg: String,
    /// Classification short name.
    pub classtype: Option<String>,
    /// Explicit priority (1 highest).
    pub priority: Option<u8>,
    /// References as written (`url,example.com`).
    pub references: Vec<String>,
    /// Metadata pairs, in order.
    pub metadata: Vec<(String, String)>,
    /// `target:src_ip|dest_ip`.
    pub target: Option<String>,
    /// `noalert` (or `flowbits:noalert`): match effects happen, no alert.
    pub noalert: bool,
    /// `flow:` options.
    pub flow: FlowOpts,
    /// Tests on header fields and packet properties.
    pub header_tests: Vec<HeaderTest>,
    /// Inspection lists, one per buffer, in order of first appearance.
    pub buffers: Vec<BufferMatch>,
    /// `flowbits` commands and checks, in order.
    pub flowbits: Vec<Flowbit>,
    /// `threshold:` value text.
    pub threshold: Option<String>,
    /// `detection_filter:` value text.
    pub detection_filter: Option<String>,
    /// `decode-event:` names.
    pub decode_events: Vec<String>,
    /// `stream-event:` names.
    pub stream_events: Vec<String>,
    /// `app-layer-event:` names (`tls.invalid_heartbeat_message`,
    /// `applayer_mismatch_protocol_both_directions`, ...).
    pub app_events: Vec<String>,
    /// `flowint` commands and checks, in order.
    pub flowints: Vec<Flowint>,
    /// Keywords accepted but without effect on matching (`tag`), for the record.
    pub ignored: Vec<String>,
    /// `app-layer-protocol:[!]name`.
    pub app_layer_protocol: Option<(bool, String)>,
    /// Tests on a transaction's numbers: `urilen` (with `raw`), `dns.opcode`.
    pub tx_tests: Vec<TxTest>,
}

/// A test on a number of the transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxTest {
    /// `urilen`: length of the normalized (or, with `raw`, raw) URI.
    Urilen(UintCmp, bool),
    /// `dns.opcode`.
    DnsOpcode(UintCmp),
}

/// `flow:` options.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FlowOpts {
    /// `established`.
    pub established: bool,
    /// `not_established`.
    pub not_established: bool,
    /// `to_server` / `from_client`.
    pub to_server: bool,
    /// `to_client` / `from_server`.
    pub to_client: bool,
    /// `only_stream`: only reassembled stream data.
    pub only_stream: bool,
    /// `no_stream`: only packets.
    pub no_stream: bool,
    /// `only_frag`: only reassembled datagrams.
    pub only_frag: bool,
    /// `no_frag`: never reassembled datagrams.
    pub no_frag: bool,
}

/// A number, literal or a `byte_extract` variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Num {
    /// A literal.
    Lit(i64),
    /// A variable set by `byte_extract`.
    Var(String),
}

/// `fast_pattern` on a content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FastPattern {
    /// `fast_pattern:only` (accepted, same as plain).
    pub only: bool,
    /// `fast_pattern:offset,length`: only that slice of the pattern.
    pub chop: Option<(u16, u16)>,
}

/// A `content` with its modifiers.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Content {
    /// The bytes.
    pub pattern: Vec<u8>,
    /// `content:!"..."`.
    pub negated: bool,
    /// `nocase`.
    pub nocase: bool,
    /// `offset`.
    pub offset: Option<Num>,
    /// `depth`.
    pub depth: Option<Num>,
    /// `distance`.
    pub distance: Option<Num>,
    /// `within`.
    pub within: Option<Num>,
    /// `fast_pattern`.
    pub fast_pattern: Option<FastPattern>,
    /// `startswith`.
    pub startswith: bool,
    /// `endswith`.
    pub endswith: bool,
}

impl Content {
    /// Whether the content is anchored to the previous match.
    pub fn is_relative(&self) -> bool {
        self.distance.is_some() || self.within.is_some()
    }
}

/// A `pcre`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pcre {
    /// The expression between the slashes.
    pub pattern: String,
    /// Flags `i`.
    pub caseless: bool,
    /// `s`.
    pub dotall: bool,
    /// `m`.
    pub multiline: bool,
    /// `x`.
    pub extended: bool,
    /// `A`: anchored at the search start.
    pub anchored: bool,
    /// `G`: ungreedy.
    pub ungreedy: bool,
    /// `R`: relative to the previous match.
    pub relative: bool,
    /// `pcre:!"..."`.
    pub negated: bool,
}

/// `isdataat`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IsDataAt {
    /// Position.
    pub pos: Num,
    /// Relative to the previous match.
    pub relative: bool,
    /// `!`.
    pub negated: bool,
}

/// How bytes turn into a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NumberFormat {
    /// Little endian (binary).
    pub little: bool,
    /// `string` with base 8, 10 or 16; `None` for binary.
    pub string_base: Option<u32>,
    /// `dce` (endianness from DCE/RPC; treated as little endian).
    pub dce: bool,
}

/// `byte_test`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ByteTest {
    /// Bytes to read.
    pub nbytes: u8,
    /// Operator: `<`, `>`, `=`, `<=`, `>=`, `&`, `^`.
    pub op: String,
    /// `!` before the operator.
    pub negated: bool,
    /// Value to compare with.
    pub value: Num,
    /// Offset.
    pub offset: Num,
    /// Relative.
    pub relative: bool,
    /// Format.
    pub format: NumberFormat,
    /// `bitmask`.
    pub bitmask: Option<u64>,
}

/// `byte_jump`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ByteJump {
    /// Bytes to read (0 = jump by `post_offset` alone).
    pub nbytes: Num,
    /// Offset.
    pub offset: Num,
    /// Relative.
    pub relative: bool,
    /// `multiplier`.
    pub multiplier: u64,
    /// Format.
    pub format: NumberFormat,
    /// `align` (to 4).
    pub align: bool,
    /// `from_beginning`.
    pub from_beginning: bool,
    /// `from_end`.
    pub from_end: bool,
    /// `post_offset`.
    pub post_offset: i64,
    /// `bitmask`.
    pub bitmask: Option<u64>,
}

/// `byte_extract`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ByteExtract {
    /// Bytes to read.
    pub nbytes: u8,
    /// Offset.
    pub offset: i64,
    /// Variable name.
    pub name: String,
    /// Relative.
    pub relative: bool,
    /// `multiplier`.
    pub multiplier: u64,
    /// Format.
    pub format: NumberFormat,
    /// `align` value (0 = none).
    pub align: u8,
    /// `bitmask`.
    pub bitmask: Option<u64>,
}

/// One step of an inspection list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// `content`.
    Content(Content),
    /// `pcre`.
    Pcre(Pcre),
    /// `isdataat`.
    IsDataAt(IsDataAt),
    /// `byte_test`.
    ByteTest(ByteTest),
    /// `byte_jump`.
    ByteJump(ByteJump),
    /// `byte_extract`.
    ByteExtract(ByteExtract),
    /// `bsize`: the buffer's length.
    Bsize(UintCmp),
}

/// The inspection list of one buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BufferMatch {
    /// `pkt` for the packet/stream payload, else the sticky buffer name
    /// (`tcp.hdr`, `http.uri`, ...).
    pub buffer: String,
    /// Steps, in rule order.
    pub items: Vec<Item>,
    /// Transforms applied to the buffer before inspection, in order
    /// (`dotprefix`, `to_lowercase`, ...).
    pub transforms: Vec<String>,
}

/// Comparison on an unsigned header field (Suricata's integer syntax).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UintCmp {
    /// `N`.
    Eq(u64),
    /// `!N`.
    Ne(u64),
    /// `<N`.
    Lt(u64),
    /// `<=N`.
    Le(u64),
    /// `>N`.
    Gt(u64),
    /// `>=N`.
    Ge(u64),
    /// `A<>B` or `A-B`: strictly between.
    Between(u64, u64),
}

impl UintCmp {
    /// Whether `v` satisfies the comparison.
    pub fn test(self, v: u64) -> bool {
        match self {
            UintCmp::Eq(a) => v == a,
            UintCmp::Ne(a) => v != a,
            UintCmp::Lt(a) => v < a,
            UintCmp::Le(a) => v <= a,
            UintCmp::Gt(a) => v > a,
            UintCmp::Ge(a) => v >= a,
            UintCmp::Between(a, b) => v > a && v < b,
        }
    }

    /// Parses Suricata's integer comparison syntax.
    pub fn parse(s: &str) -> Result<UintCmp, String> {
        let s = s.trim();
        let num = |t: &str| -> Result<u64, String> {
            let t = t.trim();
            if let Some(h) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
                u64::from_str_radix(h, 16).map_err(|_| format!("a number, found {t:?}"))
            } else {
                t.parse::<u64>()
                    .map_err(|_| format!("a number, found {t:?}"))
            }
        };
        if let Some((a, b)) = s.split_once("<>") {
            return Ok(UintCmp::Between(num(a)?, num(b)?));
        }
        if let Some(r) = s.strip_prefix("<=") {
            return Ok(UintCmp::Le(num(r)?));
        }
        if let Some(r) = s.strip_prefix(">=") {
            return Ok(UintCmp::Ge(num(r)?));
        }
        if let Some(r) = s.strip_prefix('<') {
            return Ok(UintCmp::Lt(num(r)?));
        }
        if let Some(r) = s.strip_prefix('>') {
            return Ok(UintCmp::Gt(num(r)?));
        }
        if let Some(r) = s.strip_prefix('!') {
            return Ok(UintCmp::Ne(num(r)?));
        }
        if let Some(r) = s.strip_prefix('=') {
            return Ok(UintCmp::Eq(num(r)?));
        }
        if let Some((a, b)) = s.split_once('-') {
            if !a.trim().is_empty() {
                return Ok(UintCmp::Between(num(a)?, num(b)?));
            }
        }
        Ok(UintCmp::Eq(num(s)?))
    }
}

/// How a set of flag bits is compared (`flags`, `fragbits`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BitsMode {
    /// Exactly these (after the ignore mask).
    Exact,
    /// At least these (`+`).
    All,
    /// Any of these (`*`).
    Any,
    /// Not all of these (`!`).
    Not,
}

/// A test on the packet's headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderTest {
    /// `ttl`.
    Ttl(UintCmp),
    /// `tos` (`!` allowed).
    Tos(UintCmp),
    /// `ip_proto`.
    IpProto(UintCmp),
    /// `ipopts` name.
    IpOpts(String),
    /// `fragbits`: mode, bits (M=1,D=2,R=4), ignore mask.
    FragBits(BitsMode, u8),
    /// `fragoffset`.
    FragOffset(UintCmp),
    /// `id`.
    Id(UintCmp),
    /// `seq`.
    Seq(UintCmp),
    /// `ack`.
    Ack(UintCmp),
    /// `window` (`!` allowed).
    Window(UintCmp),
    /// `flags`/`tcp.flags`: mode, bits, bits to ignore.
    Flags(BitsMode, u8, u8),
    /// `itype`.
    IType(UintCmp),
    /// `icode`.
    ICode(UintCmp),
    /// `icmp_id`.
    IcmpId(UintCmp),
    /// `icmp_seq`.
    IcmpSeq(UintCmp),
    /// `sameip`.
    SameIp,
    /// `dsize`.
    Dsize(UintCmp),
    /// `tcp.mss`.
    TcpMss(UintCmp),
    /// `icmpv6.mtu`.
    Icmpv6Mtu(UintCmp),
    /// `stream_size`: side (`server`, `client`, `both`, `either`) and test.
    StreamSize(String, UintCmp),
}

/// A `flowbits` command or check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Flowbit {
    /// `set`.
    Set(String),
    /// `unset`.
    Unset(String),
    /// `toggle`.
    Toggle(String),
    /// `isset` of any of the names (`a|b`) or all (`a&b`, second field).
    IsSet(Vec<String>, bool),
    /// `isnotset`.
    IsNotSet(Vec<String>, bool),
}

/// A `flowint` (a per-flow integer): `name, op[, value]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flowint {
    /// The variable's name.
    pub name: String,
    /// What the keyword does with it.
    pub op: FlowintOp,
}

/// What a `flowint` does: a command (`=`, `+`, `-`), run when the rule
/// matches, or a check (`==`, `!=`, `<`, `<=`, `>`, `>=`, `isset`,
/// `notset`), part of the match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlowintOp {
    /// `=`: set.
    Set(FlowintValue),
    /// `+`: add (an unset variable counts from 0).
    Add(FlowintValue),
    /// `-`: subtract.
    Sub(FlowintValue),
    /// A comparison (false when the variable is not set).
    Cmp(FlowintCmp, FlowintValue),
    /// `isset`.
    IsSet,
    /// `notset` / `isnotset`.
    NotSet,
}

/// A comparison of a `flowint` check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowintCmp {
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

/// A `flowint` operand: a number or another flowint of the flow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlowintValue {
    /// A number.
    Lit(i64),
    /// The value of another flowint of the same flow.
    Var(String),
}

/// Sticky buffers: the rule's later contents inspect this buffer.
pub const STICKY_BUFFERS: &[&str] = &[
    "pkt_data",
    "ipv4.hdr",
    "ipv6.hdr",
    "tcp.hdr",
    "udp.hdr",
    "icmpv4.hdr",
    "icmpv6.hdr",
    "http.method",
    "http.uri",
    "http.uri.raw",
    "http.host",
    "http.host.raw",
    "http.user_agent",
    "http.header",
    "http.header.raw",
    "http.header_names",
    "http.cookie",
    "http.content_type",
    "http.content_len",
    "http.request_line",
    "http.request_body",
    "http.stat_code",
    "http.stat_msg",
    "http.response_line",
    "http.response_body",
    "http.protocol",
    "http.server",
    "http.location",
    "http.accept",
    "http.accept_enc",
    "http.accept_lang",
    "http.connection",
    "http.referer",
    "http.start",
    "http.request_header",
    "http.response_header",
    "file.data",
    "file_data",
    "dns.query",
    "dns_query",
    "tls.sni",
    "tls_sni",
    "tls.cert_subject",
    "tls_cert_subject",
    "tls.cert_issuer",
    "tls_cert_issuer",
    "tls.cert_serial",
    "tls_cert_serial",
    "tls.cert_fingerprint",
    "tls_cert_fingerprint",
    "tls.certs",
    "ja3.hash",
    "ja3_hash",
    "ja3.string",
    "ja3_string",
    "ja3s.hash",
    "ja3s.string",
    "ja4.hash",
    "ssh.proto",
    "ssh_proto",
    "ssh.software",
    "ssh_software",
    "ssh.hassh",
    "ssh.hassh.string",
    "ssh.hassh.server",
    "ssh.hassh.server.string",
    "smtp.helo",
    "smtp.mail_from",
    "smtp.rcpt_to",
    "email.from",
    "email.subject",
    "email.to",
    "email.cc",
    "base64_data",
];

/// Legacy content modifiers and the sticky buffer they stand for.
pub const CONTENT_MODIFIERS: &[(&str, &str)] = &[
    ("http_uri", "http.uri"),
    ("http_raw_uri", "http.uri.raw"),
    ("http_header", "http.header"),
    ("http_raw_header", "http.header.raw"),
    ("http_cookie", "http.cookie"),
    ("http_method", "http.method"),
    ("http_stat_code", "http.stat_code"),
    ("http_stat_msg", "http.stat_msg"),
    ("http_client_body", "http.request_body"),
    ("http_server_body", "http.response_body"),
    ("http_user_agent", "http.user_agent"),
    ("http_host", "http.host"),
    ("http_raw_host", "http.host.raw"),
    ("http_header_names", "http.header_names"),
    ("http_request_line", "http.request_line"),
    ("http_response_line", "http.response_line"),
    ("http_content_type", "http.content_type"),
    ("http_content_len", "http.content_len"),
    ("http_protocol", "http.protocol"),
    ("http_server", "http.server"),
    ("http_location", "http.location"),
    ("http_accept", "http.accept"),
    ("http_referer", "http.referer"),
];

/// Keywords of app-layer protocols or buffers zonewatch does not support:
/// the rule is skipped, and counted among the rules that need the app layer.
pub const APP_LAYER_KEYWORDS: &[&str] = &[
    "filestore",
    "filemagic",
    "filename",
    "fileext",
    "filesize",
    "filemd5",
    "filesha1",
    "filesha256",
    "to_md5",
    "to_sha1",
    "to_sha256",
    "xor",
    "pcrexform",
    "header_lowercase",
    "strip_pseudo_headers",
    "tls.version",
    "tls_cert_notbefore",
    "tls_cert_notafter",
    "tls_cert_expired",
    "tls_cert_valid",
    "tls.store",
    "tls.fingerprint",
    "tls.subject",
    "tls.issuerdn",
    "ssl_version",
    "ssl_state",
    "dce_iface",
    "dce_opnum",
    "dce_stub_data",
    "smb.share",
    "smb.named_pipe",
    "krb5_cname",
    "krb5_sname",
    "krb5_err_code",
    "krb5_msg_type",
    "sip.method",
    "sip.uri",
    "modbus",
    "dnp3_func",
    "dnp3_ind",
    "dnp3_obj",
    "dnp3_data",
    "enip_command",
    "cip_service",
    "ftpdata_command",
    "snmp.community",
    "snmp.pdu_type",
    "snmp.version",
    "rfb.name",
    "rfb.secresult",
    "mqtt.type",
    "http2.header",
    "frame",
    "tls.random",
    "quic.sni",
    "quic.ua",
    "quic.version",
    "ike.vendor",
    "uricontent",
];

/// Other keywords zonewatch knows but does not support: the rule is skipped.
const UNSUPPORTED: &[&str] = &[
    "byte_math",
    "lua",
    "luajit",
    "xbits",
    "flowvar",
    "pktvar",
    "dataset",
    "datarep",
    "base64_decode",
    "asn1",
    "ftpbounce",
    "geoip",
    "iprep",
    "replace",
    "l3_proto",
    "config",
    "transform",
    "requires",
    "prefilter",
    "bypass",
    "engine-analysis",
    "tcp.hdr_len",
    "ipv6.flowlabel",
];

/// An option error: the 0-based column of the offending option and what is
/// wrong with it.
type OptError = (usize, ErrorKind);

/// One option as a keyword method sees it: its name, its value and the
/// column its errors point at.
struct Opt<'a> {
    raw: &'a RawOption,
}

impl<'a> Opt<'a> {
    fn name(&self) -> &'a str {
        self.raw.name.as_str()
    }

    /// The value, which the keyword requires.
    fn val(&self) -> Result<&'a str, OptError> {
        self.raw.value.as_deref().ok_or_else(|| {
            (
                self.raw.col,
                ErrorKind::Syntax(format!("a value after '{}:'", self.name())),
            )
        })
    }

    /// The value read as an unsigned comparison.
    fn uint_cmp(&self) -> Result<UintCmp, OptError> {
        cmp(self.val()?).map_err(|m| self.invalid(m))
    }

    /// The value read as a number; `what` says what was expected.
    fn number<T: std::str::FromStr>(&self, what: &str) -> Result<T, OptError> {
        self.val()?
            .trim()
            .parse()
            .map_err(|_| self.invalid(what.to_string()))
    }

    fn invalid(&self, m: String) -> OptError {
        (
            self.raw.col,
            ErrorKind::Invalid(format!("{}: {m}", self.name())),
        )
    }

    fn syntax(&self, expected: String) -> OptError {
        (self.raw.col, ErrorKind::Syntax(expected))
    }

    fn unsupported(&self, detail: &str) -> OptError {
        (
            self.raw.col,
            ErrorKind::Unsupported {
                keyword: self.name().to_string(),
                detail: detail.to_string(),
            },
        )
    }
}

/// Where an inspection item sits in [`Signature::buffers`].
#[derive(Debug, Clone, Copy)]
struct ItemAt {
    buffer: usize,
    item: usize,
}

/// Makes the header test of a keyword from its comparison.
type MakeHeaderTest = fn(UintCmp) -> HeaderTest;

/// Header tests that compare one unsigned field, by keyword.
const UINT_HEADER_TESTS: &[(&str, MakeHeaderTest)] = &[
    ("ttl", HeaderTest::Ttl),
    ("tos", HeaderTest::Tos),
    ("id", HeaderTest::Id),
    ("seq", HeaderTest::Seq),
    ("ack", HeaderTest::Ack),
    ("window", HeaderTest::Window),
    ("itype", HeaderTest::IType),
    ("icode", HeaderTest::ICode),
    ("icmp_id", HeaderTest::IcmpId),
    ("icmp_seq", HeaderTest::IcmpSeq),
    ("dsize", HeaderTest::Dsize),
    ("tcp.mss", HeaderTest::TcpMss),
    ("icmpv6.mtu", HeaderTest::Icmpv6Mtu),
    ("fragoffset", HeaderTest::FragOffset),
];

/// The method a keyword of [`ROUTES`] is applied by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    Meta,
    Alerting,
    Flow,
    Flowbits,
    Header,
    Content,
    Inspection,
    Transaction,
}

impl Family {
    fn kind(self) -> &'static str {
        match self {
            Family::Meta => "meta",
            Family::Alerting => "alerting and events",
            Family::Flow => "flow",
            Family::Flowbits => "flow state",
            Family::Header => "header",
            Family::Content => "payload",
            Family::Inspection => "payload",
            Family::Transaction => "transaction",
        }
    }
}

/// Keywords applied by one method of their family. With the lists below
/// (header comparisons, content modifiers, transforms, sticky buffers,
/// legacy modifiers) this is every keyword the parser accepts: the
/// parser routes by these tables and `keyword_table` lists them, so the
/// documented list cannot drift from the parser.
const ROUTES: &[(&str, Family)] = &[
    ("msg", Family::Meta),
    ("sid", Family::Meta),
    ("gid", Family::Meta),
    ("rev", Family::Meta),
    ("classtype", Family::Meta),
    ("priority", Family::Meta),
    ("reference", Family::Meta),
    ("metadata", Family::Meta),
    ("target", Family::Meta),
    ("noalert", Family::Alerting),
    ("tag", Family::Alerting),
    ("threshold", Family::Alerting),
    ("detection_filter", Family::Alerting),
    ("decode-event", Family::Alerting),
    ("stream-event", Family::Alerting),
    ("app-layer-event", Family::Alerting),
    ("flow", Family::Flow),
    ("flowbits", Family::Flowbits),
    ("flowint", Family::Flowbits),
    ("sameip", Family::Header),
    ("ip_proto", Family::Header),
    ("ipopts", Family::Header),
    ("fragbits", Family::Header),
    ("flags", Family::Header),
    ("tcp.flags", Family::Header),
    ("stream_size", Family::Header),
    ("content", Family::Content),
    ("pcre", Family::Inspection),
    ("isdataat", Family::Inspection),
    ("byte_test", Family::Inspection),
    ("byte_jump", Family::Inspection),
    ("bsize", Family::Inspection),
    ("byte_extract", Family::Inspection),
    ("urilen", Family::Transaction),
    ("dns.opcode", Family::Transaction),
    ("app-layer-protocol", Family::Transaction),
];

/// A keyword the parser knows, and what it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeywordInfo {
    /// The keyword as written in rules.
    pub name: &'static str,
    /// What it is: `meta`, `header`, `payload`, `content modifier`,
    /// `sticky buffer`, `legacy modifier`, `transform`, `transaction`, ...,
    /// or `not supported` / `app layer not supported` (the rule is skipped).
    pub kind: &'static str,
    /// For a legacy modifier, the sticky buffer it stands for.
    pub buffer: Option<&'static str>,
}

/// Every keyword the parser knows, from the tables it routes by, sorted by
/// name: the source of the keyword table in `docs/rules.md`.
pub fn keyword_table() -> Vec<KeywordInfo> {
    let k = |name, kind| KeywordInfo {
        name,
        kind,
        buffer: None,
    };
    let mut v: Vec<KeywordInfo> = ROUTES.iter().map(|&(n, f)| k(n, f.kind())).collect();
    v.extend(UINT_HEADER_TESTS.iter().map(|&(n, _)| k(n, "header")));
    v.extend(
        CONTENT_MODIFIER_KEYWORDS
            .iter()
            .map(|&n| k(n, "content modifier")),
    );
    v.extend(TRANSFORMS.iter().map(|&n| k(n, "transform")));
    v.extend(STICKY_BUFFERS.iter().map(|&n| k(n, "sticky buffer")));
    v.extend(CONTENT_MODIFIERS.iter().map(|&(n, b)| KeywordInfo {
        name: n,
        kind: "legacy modifier",
        buffer: Some(b),
    }));
    v.extend(UNSUPPORTED.iter().map(|&n| k(n, "not supported")));
    v.extend(
        APP_LAYER_KEYWORDS
            .iter()
            .map(|&n| k(n, "app layer not supported")),
    );
    v.sort_by_key(|i| i.name);
    v
}

/// Modifiers of the last `content`.
const CONTENT_MODIFIER_KEYWORDS: &[&str] = &[
    "nocase",
    "offset",
    "depth",
    "distance",
    "within",
    "rawbytes",
    "fast_pattern",
    "startswith",
    "endswith",
];

/// Transforms of the current sticky buffer.
const TRANSFORMS: &[&str] = &[
    "dotprefix",
    "strip_whitespace",
    "compress_whitespace",
    "to_lowercase",
    "to_uppercase",
    "url_decode",
];

/// TCP flag letters (`flags:SA`) and their bits in the TCP header.
const TCP_FLAG_LETTERS: &[u8] = b"FSRPAUCE";
const TCP_FLAG_BITS: &[u8] = &[1, 2, 4, 8, 16, 32, 128, 64];

/// Builds the typed signature from the parsed options. Errors carry the
/// 0-based column of the offending option.
pub(crate) fn build(
    header: Header,
    opts: &[RawOption],
    origin: Origin,
    sid: Option<u64>,
) -> Result<Signature, OptError> {
    let mut b = SignatureBuilder::new(header, origin);
    for raw in opts {
        b.apply(&Opt { raw })?;
    }
    b.finish(sid)
}

/// The signature being built, option by option, and the state options
/// depend on: the sticky buffer later inspection items go to, and the items
/// that later modifiers change.
struct SignatureBuilder {
    s: Signature,
    /// The current sticky buffer (`pkt` for the payload).
    cur: String,
    /// The last `content`, for its modifiers (`nocase`, `distance`, ...).
    last_content: Option<ItemAt>,
    /// The last `content` or `pcre` or byte keyword, for the legacy
    /// modifiers (`http_uri`) that move it to another buffer.
    last_any: Option<ItemAt>,
}

impl SignatureBuilder {
    fn new(header: Header, origin: Origin) -> SignatureBuilder {
        SignatureBuilder {
            s: Signature {
                origin,
                header,
                sid: 0,
                gid: 1,
                rev: 0,
                msg: String::new(),
                classtype: None,
                priority: None,
                references: Vec::new(),
                metadata: Vec::new(),
                target: None,
                noalert: false,
                flow: FlowOpts::default(),
                header_tests: Vec::new(),
                buffers: Vec::new(),
                flowbits: Vec::new(),
                threshold: None,
                detection_filter: None,
                decode_events: Vec::new(),
                stream_events: Vec::new(),
                app_events: Vec::new(),
                flowints: Vec::new(),
                ignored: Vec::new(),
                app_layer_protocol: None,
                tx_tests: Vec::new(),
            },
            cur: "pkt".to_string(),
            last_content: None,
            last_any: None,
        }
    }

    /// Applies one option: dispatches its keyword to its family's method.
    /// (A family method reports a keyword it does not know as unknown
    /// rather than panicking, should the two lists ever disagree.)
    fn apply(&mut self, o: &Opt<'_>) -> Result<(), OptError> {
        let name = o.name();
        if let Some(&(_, make)) = UINT_HEADER_TESTS.iter().find(|(k, _)| *k == name) {
            self.s.header_tests.push(make(o.uint_cmp()?));
            return Ok(());
        }
        if let Some(&(_, family)) = ROUTES.iter().find(|(k, _)| *k == name) {
            return match family {
                Family::Meta => self.meta(o),
                Family::Alerting => self.alerting_and_events(o),
                Family::Flow => self.flow(o),
                Family::Flowbits if o.name() == "flowint" => self.flowint(o),
                Family::Flowbits => self.flowbits(o),
                Family::Header => self.header_test(o),
                Family::Content => self.content(o),
                Family::Inspection => self.inspection_item(o),
                Family::Transaction => self.transaction(o),
            };
        }
        match name {
            _ if CONTENT_MODIFIER_KEYWORDS.contains(&name) => self.content_modifier(o),
            _ if TRANSFORMS.contains(&name) => self.transform(o),
            _ if STICKY_BUFFERS.contains(&name) => {
                self.cur = canonical_buffer(name).to_string();
                self.last_content = None;
                Ok(())
            }
            _ => match CONTENT_MODIFIERS.iter().find(|(m, _)| *m == name) {
                Some(&(_, target)) => self.legacy_modifier(o, target),
                None if UNSUPPORTED.contains(&name) || APP_LAYER_KEYWORDS.contains(&name) => {
                    Err(o.unsupported(""))
                }
                None => Err(o.unsupported("unknown keyword")),
            },
        }
    }

    /// The finished signature; `sid` is the one the rule's text names, if
    /// it could be read.
    fn finish(self, sid: Option<u64>) -> Result<Signature, OptError> {
        let mut s = self.s;
        if s.sid == 0 && sid.is_none() {
            return Err((0, ErrorKind::Syntax("a 'sid' option".into())));
        }
        if s.header.action == Action::Pass && s.noalert {
            // A pass rule never alerts anyway.
            s.noalert = false;
        }
        Ok(s)
    }

    /// What the rule says about itself: ids, message, classification,
    /// references, metadata, target.
    fn meta(&mut self, o: &Opt<'_>) -> Result<(), OptError> {
        let s = &mut self.s;
        match o.name() {
            "msg" => s.msg = unquote(o.val()?).map_err(|m| o.invalid(m))?,
            "sid" => s.sid = o.number("not a number")?,
            "gid" => s.gid = o.number("not a number")?,
            "rev" => s.rev = o.number("not a number")?,
            "classtype" => s.classtype = Some(o.val()?.trim().to_string()),
            "priority" => s.priority = Some(o.number::<u8>("not a number 1-255")?.max(1)),
            "reference" => s.references.push(o.val()?.trim().to_string()),
            "metadata" => {
                for part in o.val()?.split(',') {
                    let part = part.trim();
                    if part.is_empty() {
                        continue;
                    }
                    let (k, v) = part.split_once(char::is_whitespace).unwrap_or((part, ""));
                    s.metadata
                        .push((k.trim().to_string(), v.trim().to_string()));
                }
            }
            "target" => {
                let v = o.val()?.trim();
                if v != "src_ip" && v != "dest_ip" {
                    return Err(o.invalid("src_ip or dest_ip".into()));
                }
                s.target = Some(v.to_string());
            }
            _ => return Err(o.unsupported("unknown keyword")),
        }
        Ok(())
    }

    /// Whether and how often the rule alerts, and the events it needs.
    fn alerting_and_events(&mut self, o: &Opt<'_>) -> Result<(), OptError> {
        let s = &mut self.s;
        match o.name() {
            "noalert" => s.noalert = true,
            "tag" => s.ignored.push("tag".into()),
            "threshold" => s.threshold = Some(o.val()?.to_string()),
            "detection_filter" => s.detection_filter = Some(o.val()?.to_string()),
            "decode-event" => s.decode_events.push(o.val()?.trim().to_string()),
            "stream-event" => s.stream_events.push(o.val()?.trim().to_string()),
            "app-layer-event" => s.app_events.push(o.val()?.trim().to_string()),
            _ => return Err(o.unsupported("unknown keyword")),
        }
        Ok(())
    }

    /// `flow:`: direction and state of the packet's flow.
    fn flow(&mut self, o: &Opt<'_>) -> Result<(), OptError> {
        let flow = &mut self.s.flow;
        for w in o.val()?.split(',') {
            match w.trim() {
                "established" => flow.established = true,
                "not_established" => flow.not_established = true,
                "stateless" => {}
                "to_server" | "from_client" => flow.to_server = true,
                "to_client" | "from_server" => flow.to_client = true,
                "only_stream" => flow.only_stream = true,
                "no_stream" => flow.no_stream = true,
                "only_frag" => flow.only_frag = true,
                "no_frag" => flow.no_frag = true,
                other => return Err(o.invalid(format!("unknown flow option {other:?}"))),
            }
        }
        if flow.to_server && flow.to_client {
            return Err(o.invalid("to_server and to_client together".into()));
        }
        Ok(())
    }

    /// `flowint:name,op[,value]`.
    fn flowint(&mut self, o: &Opt<'_>) -> Result<(), OptError> {
        let v = o.val()?;
        let mut parts = v.splitn(3, ',').map(str::trim);
        let (Some(name), Some(op)) = (parts.next(), parts.next()) else {
            return Err(o.invalid("flowint:name,operator[,value]".into()));
        };
        if name.is_empty() {
            return Err(o.invalid("a flowint name".into()));
        }
        let value = || -> Result<FlowintValue, OptError> {
            let Some(t) = parts.clone().next().filter(|t| !t.is_empty()) else {
                return Err(o.invalid(format!("{op:?} needs a value")));
            };
            Ok(match t.parse::<i64>() {
                Ok(n) => FlowintValue::Lit(n),
                Err(_)
                    if t.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)) =>
                {
                    FlowintValue::Var(t.to_string())
                }
                Err(_) => return Err(o.invalid(format!("value {t:?}"))),
            })
        };
        let cmp = |c| -> Result<FlowintOp, OptError> { Ok(FlowintOp::Cmp(c, value()?)) };
        let op = match op {
            "=" => FlowintOp::Set(value()?),
            "+" => FlowintOp::Add(value()?),
            "-" => FlowintOp::Sub(value()?),
            "==" => cmp(FlowintCmp::Eq)?,
            "!=" => cmp(FlowintCmp::Ne)?,
            "<" => cmp(FlowintCmp::Lt)?,
            "<=" => cmp(FlowintCmp::Le)?,
            ">" => cmp(FlowintCmp::Gt)?,
            ">=" => cmp(FlowintCmp::Ge)?,
            "isset" => FlowintOp::IsSet,
            "notset" | "isnotset" => FlowintOp::NotSet,
            other => return Err(o.invalid(format!("unknown operator {other:?}"))),
        };
        self.s.flowints.push(Flowint {
            name: name.to_string(),
            op,
        });
        Ok(())
    }

    /// `flowbits:` commands and checks (and `flowbits:noalert`).
    fn flowbits(&mut self, o: &Opt<'_>) -> Result<(), OptError> {
        let v = o.val()?;
        let (cmd, names) = v.split_once(',').unwrap_or((v, ""));
        let names = names.trim();
        let cmd = cmd.trim();
        if cmd == "noalert" {
            self.s.noalert = true;
            return Ok(());
        }
        if names.is_empty() {
            return Err(o.invalid("a flowbit name".into()));
        }
        // `a&b`: all of the names; `a|b`: any of them.
        let all = names.contains('&');
        let list = || -> Vec<String> {
            names
                .split(if all { '&' } else { '|' })
                .map(|n| n.trim().to_string())
                .collect()
        };
        self.s.flowbits.push(match cmd {
            "set" => Flowbit::Set(names.to_string()),
            "unset" => Flowbit::Unset(names.to_string()),
            "toggle" => Flowbit::Toggle(names.to_string()),
            "isset" => Flowbit::IsSet(list(), all),
            "isnotset" => Flowbit::IsNotSet(list(), all),
            other => return Err(o.invalid(format!("unknown command {other:?}"))),
        });
        Ok(())
    }

    /// Header tests whose value is more than one comparison.
    fn header_test(&mut self, o: &Opt<'_>) -> Result<(), OptError> {
        let test = match o.name() {
            "sameip" => HeaderTest::SameIp,
            "ip_proto" => ip_proto_test(o.val()?).map_err(|m| o.invalid(m))?,
            "ipopts" => {
                let v = o.val()?.trim().to_ascii_lowercase();
                const NAMES: &[&str] = &[
                    "rr", "eol", "nop", "ts", "sec", "esec", "lsrr", "ssrr", "satid", "any",
                ];
                if !NAMES.contains(&v.as_str()) {
                    return Err(o.invalid(format!("unknown option {v:?}")));
                }
                HeaderTest::IpOpts(v)
            }
            "fragbits" => {
                let (mode, bits, _) =
                    parse_bits(o.val()?, b"MDR", &[1, 2, 4]).map_err(|m| o.invalid(m))?;
                HeaderTest::FragBits(mode, bits)
            }
            "flags" | "tcp.flags" => tcp_flags_test(o.val()?).map_err(|m| o.invalid(m))?,
            "stream_size" => stream_size_test(o.val()?).map_err(|m| o.invalid(m))?,
            _ => return Err(o.unsupported("unknown keyword")),
        };
        self.s.header_tests.push(test);
        Ok(())
    }

    /// Appends an inspection item to the buffer `buffer` (`None`: the
    /// current sticky buffer); where it went.
    fn push_item(&mut self, buffer: Option<&str>, item: Item) -> ItemAt {
        let bi = buffer_index(&mut self.s.buffers, buffer.unwrap_or(self.cur.as_str()));
        self.s.buffers[bi].items.push(item);
        ItemAt {
            buffer: bi,
            item: self.s.buffers[bi].items.len() - 1,
        }
    }

    /// `content:[!]"..."` in the current buffer.
    fn content(&mut self, o: &Opt<'_>) -> Result<(), OptError> {
        let v = o.val()?;
        let (negated, v) = match v.strip_prefix('!') {
            Some(r) => (true, r.trim()),
            None => (false, v),
        };
        let pattern = parse_content(v).map_err(|m| o.invalid(m))?;
        if pattern.is_empty() {
            return Err(o.invalid("empty content".into()));
        }
        let at = self.push_item(
            None,
            Item::Content(Content {
                pattern,
                negated,
                ..Default::default()
            }),
        );
        self.last_content = Some(at);
        self.last_any = Some(at);
        Ok(())
    }

    /// A modifier of the last content (`nocase`, `offset`, `fast_pattern`, ...).
    fn content_modifier(&mut self, o: &Opt<'_>) -> Result<(), OptError> {
        let name = o.name();
        let Some(at) = self.last_content else {
            return Err(o.syntax(format!("a 'content' before '{name}'")));
        };
        let Item::Content(c) = &mut self.s.buffers[at.buffer].items[at.item] else {
            unreachable!("last_content points at a content")
        };
        let number = || num(o.val()?).map_err(|m| o.invalid(m));
        match name {
            "nocase" => c.nocase = true,
            "rawbytes" => {}
            "startswith" => c.startswith = true,
            "endswith" => c.endswith = true,
            "offset" => c.offset = Some(number()?),
            "depth" => c.depth = Some(number()?),
            "distance" => c.distance = Some(number()?),
            "within" => c.within = Some(number()?),
            "fast_pattern" => {
                let fp = fast_pattern(o.raw.value.as_deref(), c.pattern.len());
                c.fast_pattern = Some(fp.map_err(|m| o.invalid(m))?);
            }
            _ => return Err(o.unsupported("unknown keyword")),
        }
        Ok(())
    }

    /// The inspection keywords other than `content`: `pcre`, `isdataat`,
    /// `byte_*`, `bsize`.
    fn inspection_item(&mut self, o: &Opt<'_>) -> Result<(), OptError> {
        let invalid = |m| o.invalid(m);
        // A pcre may name its own buffer by a flag (`/U`: http.uri).
        let mut buffer: Option<&str> = None;
        let item = match o.name() {
            "pcre" => {
                let (p, own_buffer) = parse_pcre(o.val()?).map_err(invalid)?;
                buffer = own_buffer;
                Item::Pcre(p)
            }
            "isdataat" => Item::IsDataAt(parse_isdataat(o.val()?).map_err(invalid)?),
            "byte_test" => Item::ByteTest(parse_byte_test(o.val()?).map_err(invalid)?),
            "byte_jump" => Item::ByteJump(parse_byte_jump(o.val()?).map_err(invalid)?),
            "byte_extract" => Item::ByteExtract(parse_byte_extract(o.val()?).map_err(invalid)?),
            "bsize" => Item::Bsize(o.uint_cmp()?),
            _ => return Err(o.unsupported("unknown keyword")),
        };
        let at = self.push_item(buffer, item);
        // `bsize` tests the buffer as a whole: no legacy modifier moves it.
        if o.name() != "bsize" {
            self.last_any = Some(at);
        }
        Ok(())
    }

    /// A transform of the current sticky buffer (`dotprefix`, ...).
    fn transform(&mut self, o: &Opt<'_>) -> Result<(), OptError> {
        if self.cur == "pkt" {
            return Err(o.invalid("a transform needs a sticky buffer before it".into()));
        }
        let bi = buffer_index(&mut self.s.buffers, &self.cur);
        self.s.buffers[bi].transforms.push(o.name().to_string());
        Ok(())
    }

    /// Tests on a transaction (`urilen`, `dns.opcode`) and its protocol
    /// (`app-layer-protocol`).
    fn transaction(&mut self, o: &Opt<'_>) -> Result<(), OptError> {
        let s = &mut self.s;
        match o.name() {
            "urilen" => {
                let v = o.val()?;
                let (c, raw) = match v.split_once(',') {
                    Some((c, r)) if r.trim() == "raw" => (c, true),
                    Some((c, r)) if r.trim() == "norm" => (c, false),
                    Some(_) => return Err(o.invalid("raw or norm after the number".into())),
                    None => (v, false),
                };
                s.tx_tests
                    .push(TxTest::Urilen(cmp(c).map_err(|m| o.invalid(m))?, raw));
                // urilen is an HTTP keyword: the rule runs per transaction.
                let _ = buffer_index(&mut s.buffers, "http.uri");
            }
            "dns.opcode" => {
                s.tx_tests.push(TxTest::DnsOpcode(o.uint_cmp()?));
                let _ = buffer_index(&mut s.buffers, "dns.query");
            }
            "app-layer-protocol" => {
                let v = o.val()?.trim();
                let (neg, name) = match v.strip_prefix('!') {
                    Some(n) => (true, n.trim()),
                    None => (false, v),
                };
                let name = name.split(',').next().unwrap_or("").trim();
                s.app_layer_protocol = Some((neg, name.to_string()));
            }
            _ => return Err(o.unsupported("unknown keyword")),
        }
        Ok(())
    }

    /// A legacy content modifier (`http_uri`): moves the last content (or
    /// pcre, byte keyword) to the buffer `target` it stands for.
    fn legacy_modifier(&mut self, o: &Opt<'_>, target: &str) -> Result<(), OptError> {
        let Some(at) = self.last_any else {
            return Err(o.syntax(format!("a 'content' before '{}'", o.name())));
        };
        let buffers = &mut self.s.buffers;
        if buffers[at.buffer].buffer == target {
            return Ok(());
        }
        let item = buffers[at.buffer].items.remove(at.item);
        if buffers[at.buffer].items.is_empty() {
            buffers.remove(at.buffer);
        }
        let is_content = matches!(item, Item::Content(_));
        let moved = self.push_item(Some(target), item);
        if is_content {
            self.last_content = Some(moved);
        }
        self.last_any = Some(moved);
        Ok(())
    }
}

/// `fast_pattern`'s value: none, `only`, or `offset,length` within a
/// pattern of `pattern_len` bytes.
fn fast_pattern(value: Option<&str>, pattern_len: usize) -> Result<FastPattern, String> {
    let mut fp = FastPattern::default();
    match value.map(str::trim) {
        None => {}
        Some("only") => fp.only = true,
        Some(v) => {
            let (a, b) = v
                .split_once(',')
                .ok_or_else(|| "only or offset,length".to_string())?;
            let a: u16 = a.trim().parse().map_err(|_| "offset".to_string())?;
            let b: u16 = b.trim().parse().map_err(|_| "length".to_string())?;
            if a as usize + b as usize > pattern_len || b == 0 {
                return Err("chop beyond the pattern".into());
            }
            fp.chop = Some((a, b));
        }
    }
    Ok(fp)
}

/// `ip_proto:[!<>]name-or-number`.
fn ip_proto_test(v: &str) -> Result<HeaderTest, String> {
    let v = v.trim();
    let (prefix, rest) = match v.find(|c: char| c.is_ascii_alphanumeric()) {
        Some(i) => v.split_at(i),
        None => return Err("a protocol".into()),
    };
    let n = match proto_number(rest) {
        Some(n) => n.to_string(),
        None => rest.to_string(),
    };
    Ok(HeaderTest::IpProto(UintCmp::parse(&format!(
        "{prefix}{n}"
    ))?))
}

/// `flags:[mode]letters[,ignored letters]`.
fn tcp_flags_test(v: &str) -> Result<HeaderTest, String> {
    let (spec, mask) = v.split_once(',').unwrap_or((v, ""));
    let (mode, bits, _) = parse_bits(spec, TCP_FLAG_LETTERS, TCP_FLAG_BITS)?;
    let ignore = if mask.trim().is_empty() {
        0
    } else {
        parse_bits(mask, TCP_FLAG_LETTERS, TCP_FLAG_BITS)?.1
    };
    Ok(HeaderTest::Flags(mode, bits, ignore))
}

/// `stream_size:side,operator,number`.
fn stream_size_test(v: &str) -> Result<HeaderTest, String> {
    let parts: Vec<&str> = v.split(',').map(str::trim).collect();
    if parts.len() != 3 {
        return Err("side,operator,number".into());
    }
    if !["server", "client", "both", "either"].contains(&parts[0]) {
        return Err("server, client, both or either".into());
    }
    let op = match parts[1] {
        "=" | "==" => "",
        o => o,
    };
    Ok(HeaderTest::StreamSize(
        parts[0].to_string(),
        UintCmp::parse(&format!("{op}{}", parts[2]))?,
    ))
}

/// `isdataat:[!]position[,relative][,rawbytes]`.
fn parse_isdataat(v: &str) -> Result<IsDataAt, String> {
    let (negated, v) = match v.trim().strip_prefix('!') {
        Some(r) => (true, r),
        None => (false, v),
    };
    let mut parts = v.split(',').map(str::trim);
    let pos = num(parts.next().unwrap_or(""))?;
    let mut relative = false;
    for p in parts {
        match p {
            "relative" => relative = true,
            "rawbytes" => {}
            o => return Err(format!("unknown option {o:?}")),
        }
    }
    Ok(IsDataAt {
        pos,
        relative,
        negated,
    })
}

fn canonical_buffer(name: &str) -> &str {
    match name {
        "pkt_data" => "pkt",
        "file_data" => "file.data",
        "dns_query" => "dns.query",
        "tls_sni" => "tls.sni",
        "tls_cert_subject" => "tls.cert_subject",
        "tls_cert_issuer" => "tls.cert_issuer",
        "tls_cert_serial" => "tls.cert_serial",
        "tls_cert_fingerprint" => "tls.cert_fingerprint",
        "ja3_hash" => "ja3.hash",
        "ja3_string" => "ja3.string",
        "ssh_proto" => "ssh.proto",
        "ssh_software" => "ssh.software",
        n => n,
    }
}

fn buffer_index(buffers: &mut Vec<BufferMatch>, name: &str) -> usize {
    if let Some(i) = buffers.iter().position(|b| b.buffer == name) {
        return i;
    }
    buffers.push(BufferMatch {
        buffer: name.to_string(),
        items: Vec::new(),
        transforms: Vec::new(),
    });
    buffers.len() - 1
}

fn cmp(v: &str) -> Result<UintCmp, String> {
    UintCmp::parse(v)
}

fn num(v: &str) -> Result<Num, String> {
    let v = v.trim();
    if let Ok(n) = v.parse::<i64>() {
        return Ok(Num::Lit(n));
    }
    if !v.is_empty() && v.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_') {
        return Ok(Num::Var(v.to_string()));
    }
    Err(format!("a number or byte_extract variable, found {v:?}"))
}

/// Protocol names `ip_proto` accepts.
fn proto_number(name: &str) -> Option<u8> {
    Some(match name.to_ascii_lowercase().as_str() {
        "icmp" => 1,
        "igmp" => 2,
        "ipip" => 4,
        "tcp" => 6,
        "udp" => 17,
        "ipv6" => 41,
        "ipv6-route" => 43,
        "ipv6-frag" => 44,
        "rsvp" => 46,
        "gre" => 47,
        "esp" => 50,
        "ah" => 51,
        "ipv6-icmp" | "icmpv6" => 58,
        "ipv6-nonxt" => 59,
        "ipv6-opts" => 60,
        "pim" => 103,
        "sctp" => 132,
        _ => return None,
    })
}

/// `[modifier]LETTERS` → mode, bits, and whether `0` (no bits) was given.
fn parse_bits(spec: &str, letters: &[u8], bits: &[u8]) -> Result<(BitsMode, u8, bool), String> {
    let mut mode = BitsMode::Exact;
    let mut v = 0u8;
    let mut zero = false;
    for c in spec.trim().bytes() {
        match c {
            b'+' => mode = BitsMode::All,
            b'*' => mode = BitsMode::Any,
            b'!' => mode = BitsMode::Not,
            b'0' => zero = true,
            b'1' if letters == b"FSRPAUCE" => v |= 128,
            b'2' if letters == b"FSRPAUCE" => v |= 64,
            b'N' if letters == b"FSRPAUCE" => {}
            c if c.is_ascii_whitespace() => {}
            c => match letters.iter().position(|&l| l == c.to_ascii_uppercase()) {
                Some(i) => v |= bits[i],
                None => return Err(format!("unknown flag {:?}", c as char)),
            },
        }
    }
    Ok((mode, v, zero))
}

/// Removes the quotes of a quoted value and resolves `\"`, `\;`, `\\`.
fn unquote(v: &str) -> Result<String, String> {
    let v = v.trim();
    let inner = if v.len() >= 2 && v.starts_with('"') && v.ends_with('"') {
        &v[1..v.len() - 1]
    } else {
        v
    };
    let mut out = String::with_capacity(inner.len());
    let mut it = inner.chars();
    while let Some(c) = it.next() {
        if c == '\\' {
            match it.next() {
                Some(n) => out.push(n),
                None => out.push('\\'),
            }
        } else {
            out.push(c);
        }
    }
    Ok(out)
}

/// Decodes a content string: quotes, `|hex|` runs, escapes.
pub fn parse_content(v: &str) -> Result<Vec<u8>, String> {
    let v = v.trim();
    if v.len() < 2 || !v.starts_with('"') || !v.ends_with('"') {
        return Err("a quoted string".into());
    }
    let b = &v.as_bytes()[1..v.len() - 1];
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    let mut hex = false;
    let mut nib: Option<u8> = None;
    while i < b.len() {
        let c = b[i];
        if hex {
            match c {
                b'|' => {
                    if nib.is_some() {
                        return Err("an even number of hex digits".into());
                    }
                    hex = false;
                }
                c if c.is_ascii_whitespace() => {}
                c if c.is_ascii_hexdigit() => {
                    let d = (c as char).to_digit(16).expect("hex digit") as u8;
                    match nib.take() {
                        Some(h) => out.push(h << 4 | d),
                        None => nib = Some(d),
                    }
                }
                c => return Err(format!("a hex digit, found {:?}", c as char)),
            }
        } else {
            match c {
                b'|' => hex = true,
                b'\\' => {
                    i += 1;
                    match b.get(i) {
                        Some(&n) if matches!(n, b'"' | b';' | b':' | b'\\' | b'|') => out.push(n),
                        Some(&n) => return Err(format!("a valid escape, found \\{}", n as char)),
                        None => return Err("a character after '\\'".into()),
                    }
                }
                b'"' => return Err("'\"' escaped as \\\"".into()),
                c => out.push(c),
            }
        }
        i += 1;
    }
    if hex {
        return Err("a closing '|'".into());
    }
    Ok(out)
}

/// Parses `"/re/flags"`; returns the buffer a buffer flag moves it to.
pub fn parse_pcre(v: &str) -> Result<(Pcre, Option<&'static str>), String> {
    let v = v.trim();
    let (negated, v) = match v.strip_prefix('!') {
        Some(r) => (true, r.trim()),
        None => (false, v),
    };
    if v.len() < 2 || !v.starts_with('"') || !v.ends_with('"') {
        return Err("a quoted /expression/".into());
    }
    let inner = &v[1..v.len() - 1];
    let inner = inner.strip_prefix('m').unwrap_or(inner);
    if !inner.starts_with('/') {
        return Err("an expression starting with '/'".into());
    }
    let end = inner.rfind('/').filter(|&e| e > 0).ok_or("a closing '/'")?;
    // `\"` in the rule is a quote in the expression.
    let pattern = inner[1..end].replace("\\\"", "\"");
    let mut p = Pcre {
        pattern,
        caseless: false,
        dotall: false,
        multiline: false,
        extended: false,
        anchored: false,
        ungreedy: false,
        relative: false,
        negated,
    };
    let mut buffer = None;
    for f in inner[end + 1..].chars() {
        match f {
            'i' => p.caseless = true,
            's' => p.dotall = true,
            'm' => p.multiline = true,
            'x' => p.extended = true,
            'A' => p.anchored = true,
            'E' | 'O' | 'B' => {}
            'G' => p.ungreedy = true,
            'R' => p.relative = true,
            'U' => buffer = Some("http.uri"),
            'I' => buffer = Some("http.uri.raw"),
            'H' => buffer = Some("http.header"),
            'D' => buffer = Some("http.header.raw"),
            'M' => buffer = Some("http.method"),
            'C' => buffer = Some("http.cookie"),
            'P' => buffer = Some("http.request_body"),
            'Q' => buffer = Some("file.data"),
            'S' => buffer = Some("http.stat_code"),
            'Y' => buffer = Some("http.stat_msg"),
            'V' => buffer = Some("http.user_agent"),
            'W' => buffer = Some("http.host"),
            'Z' => buffer = Some("http.host.raw"),
            c => return Err(format!("unknown flag {c:?}")),
        }
    }
    Ok((p, buffer))
}

fn number_format(opt: &str, f: &mut NumberFormat) -> bool {
    match opt {
        "big" => f.little = false,
        "little" => f.little = true,
        "dce" => {
            f.dce = true;
            f.little = true
        }
        "string" => {
            if f.string_base.is_none() {
                f.string_base = Some(10)
            }
        }
        "dec" => f.string_base = Some(10),
        "hex" => f.string_base = Some(16),
        "oct" => f.string_base = Some(8),
        _ => return false,
    }
    true
}

fn parse_u64(s: &str) -> Result<u64, String> {
    let s = s.trim();
    if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        u64::from_str_radix(h, 16).map_err(|_| format!("a number, found {s:?}"))
    } else {
        s.parse().map_err(|_| format!("a number, found {s:?}"))
    }
}

fn nbytes(s: &str, string: bool) -> Result<u8, String> {
    let n: u8 = s
        .trim()
        .parse()
        .map_err(|_| format!("a byte count, found {s:?}"))?;
    let max = if string { 23 } else { 8 };
    if n == 0 || n > max {
        return Err(format!("byte count 1..{max}"));
    }
    Ok(n)
}

fn parse_byte_test(v: &str) -> Result<ByteTest, String> {
    let parts: Vec<&str> = v.split(',').map(str::trim).collect();
    if parts.len() < 4 {
        return Err("bytes, operator, value, offset".into());
    }
    let mut op = parts[1].to_string();
    let mut negated = false;
    if let Some(r) = op.strip_prefix('!') {
        negated = true;
        op = if r.is_empty() {
            "=".into()
        } else {
            r.to_string()
        };
    }
    if !["<", ">", "=", "<=", ">=", "&", "^"].contains(&op.as_str()) {
        return Err(format!("an operator, found {:?}", parts[1]));
    }
    let mut t = ByteTest {
        nbytes: 0,
        op,
        negated,
        value: match parse_u64(parts[2]) {
            Ok(n) => Num::Lit(n as i64),
            Err(_) => num(parts[2])?,
        },
        offset: num(parts[3])?,
        relative: false,
        format: NumberFormat::default(),
        bitmask: None,
    };
    for p in &parts[4..] {
        if *p == "relative" {
            t.relative = true;
        } else if let Some(m) = p.strip_prefix("bitmask") {
            t.bitmask = Some(parse_u64(m)?);
        } else if !number_format(p, &mut t.format) {
            return Err(format!("unknown option {p:?}"));
        }
    }
    t.nbytes = nbytes(parts[0], t.format.string_base.is_some())?;
    Ok(t)
}

fn parse_byte_jump(v: &str) -> Result<ByteJump, String> {
    let parts: Vec<&str> = v.split(',').map(str::trim).collect();
    if parts.len() < 2 {
        return Err("bytes, offset".into());
    }
    let mut t = ByteJump {
        nbytes: Num::Lit(0),
        offset: num(parts[1])?,
        relative: false,
        multiplier: 1,
        format: NumberFormat::default(),
        align: false,
        from_beginning: false,
        from_end: false,
        post_offset: 0,
        bitmask: None,
    };
    for p in &parts[2..] {
        match *p {
            "relative" => t.relative = true,
            "align" => t.align = true,
            "from_beginning" => t.from_beginning = true,
            "from_end" => t.from_end = true,
            _ => {
                if let Some(m) = p.strip_prefix("multiplier") {
                    t.multiplier = parse_u64(m)?;
                } else if let Some(m) = p.strip_prefix("post_offset") {
                    t.post_offset = m
                        .trim()
                        .parse()
                        .map_err(|_| format!("post_offset number, found {m:?}"))?;
                } else if let Some(m) = p.strip_prefix("bitmask") {
                    t.bitmask = Some(parse_u64(m)?);
                } else if !number_format(p, &mut t.format) {
                    return Err(format!("unknown option {p:?}"));
                }
            }
        }
    }
    t.nbytes = match parts[0].trim() {
        "0" => Num::Lit(0),
        p if p.bytes().all(|c| c.is_ascii_digit()) => {
            Num::Lit(nbytes(p, t.format.string_base.is_some())? as i64)
        }
        p => num(p)?,
    };
    Ok(t)
}

fn parse_byte_extract(v: &str) -> Result<ByteExtract, String> {
    let parts: Vec<&str> = v.split(',').map(str::trim).collect();
    if parts.len() < 3 {
        return Err("bytes, offset, name".into());
    }
    let mut t = ByteExtract {
        nbytes: 0,
        offset: parts[1]
            .parse()
            .map_err(|_| format!("an offset, found {:?}", parts[1]))?,
        name: parts[2].to_string(),
        relative: false,
        multiplier: 1,
        format: NumberFormat::default(),
        align: 0,
        bitmask: None,
    };
    for p in &parts[3..] {
        if *p == "relative" {
            t.relative = true;
        } else if let Some(m) = p.strip_prefix("multiplier") {
            t.multiplier = parse_u64(m)?;
        } else if let Some(m) = p.strip_prefix("align") {
            t.align = m.trim().parse().map_err(|_| "align 2 or 4".to_string())?;
        } else if let Some(m) = p.strip_prefix("bitmask") {
            t.bitmask = Some(parse_u64(m)?);
        } else if !number_format(p, &mut t.format) {
            return Err(format!("unknown option {p:?}"));
        }
    }
    t.nbytes = nbytes(parts[0], t.format.string_base.is_some())?;
    Ok(t)
}
