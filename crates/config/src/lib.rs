//! The sensor's configuration: one YAML file plus `--set KEY=VALUE`
//! overrides, both applied through the same dotted-key table so that an
//! override can reach any setting. The file is read once, by zonewatch's
//! one YAML reader (`zonewatch_yamlread`), with the line of every key.
//!
//! What each component gets: typed sections that read their own keys
//! ([`SensorConfig`], [`FlowConfig`] with its [`FlowTimeouts`], [`CommunityIdConfig`],
//! [`AlertConfig`], [`OutputConfig`], [`DetectConfig`], [`CaptureConfig`],
//! [`PipelineConfig`], [`DefragConfig`], [`StreamConfig`] with its [`ChecksumMode`],
//! [`AppLayerConfig`], [`SyslogConfig`], [`RunAs`]; those with a component config type
//! make it with `build()`), the rule variables, the zones with their one lookup
//! ([`ZoneMap`], from `zonewatch_types` so that the EVE renderer shares it), and the
//! sections other crates type themselves handed over as trees with their lines
//! ([`Config::kafka`], with `--set kafka.*` laid over it; [`Config::zone_policy`]), so
//! their errors still name file:line. [`Config`] itself only dispatches a key to the
//! section that has it. Numeric settings' allowed ranges are one table (key, unit, min,
//! max, why) the sections consult as they read a number, so every range error reads
//! alike.
//!
//! Where zonewatch has a setting Suricata also has, the key is Suricata's
//! (`vars.address-groups.HOME_NET`, `flow.memcap`, `stream.reassembly.depth`,
//! `flow-timeouts.tcp.established`, ...), so a Suricata config or habit
//! carries over. Suricata keys with no meaning here are accepted with a
//! warning; keys neither knows are errors naming the key and its line.
#![deny(missing_docs)]

mod ranges;
mod sections;
mod yaml;

use ipnet::IpNet;
pub use sections::{
    AfPacketConfig, AlertConfig, AppLayerConfig, CaptureConfig, CaptureMethod, ChecksumMode,
    CommunityIdConfig, DefragConfig, DetectConfig, FlowConfig, FlowTimeouts, OutputConfig,
    PipelineConfig, ProtoTimeouts, RunAs, SensorConfig, StreamConfig, SyslogConfig,
};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;
pub use yaml::{flatten, Setting, Value};
pub use zonewatch_types::ZoneMap;
pub use zonewatch_yamlread::tree::{Kind, Node};

/// Event types that can be switched on or off.
pub const EVENT_TYPES: &[&str] = &[
    "alert", "flow", "anomaly", "stats", "http", "dns", "tls", "ssh", "smtp", "fileinfo",
];

/// The whole configuration, with Suricata-compatible defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `sensor:`: the sensor's name, tenant and time zone.
    pub sensor: SensorConfig,
    /// Address variables (`HOME_NET`, ...), as rule strings.
    pub address_groups: BTreeMap<String, String>,
    /// Port variables (`HTTP_PORTS`, ...), as rule strings.
    pub port_groups: BTreeMap<String, String>,
    /// `zones:`: name and CIDRs, in file order, with the lookup of an address's zone.
    pub zones: ZoneMap,
    /// `flow:` and `flow-timeouts:`: the flow tables.
    pub flow: FlowConfig,
    /// `community-id:`.
    pub community_id: CommunityIdConfig,
    /// `alert:`: what of the packet an alert carries.
    pub alert: AlertConfig,
    /// `output:`, `stats.interval`, `metrics.listen`.
    pub output: OutputConfig,
    /// The `kafka:` section as a tree with its lines (the file's keys with the
    /// `--set kafka.*` overrides laid over them), or None when no Kafka setting is
    /// given. Typed and checked by the Kafka sink's own configuration when it starts.
    pub kafka: Option<Node>,
    /// The `aggregate:` section (`zonewatch aggregate`) as a tree with its lines, with
    /// the `--set aggregate.*` overrides laid over it; None when not given. Typed and
    /// checked by the aggregator's own configuration (`zonewatch_aggregate`).
    pub aggregate: Option<Node>,
    /// `detect:` and the detection files.
    pub detect: DetectConfig,
    /// `syslog:`: the log inputs.
    pub syslog: SyslogConfig,
    /// `capture:`: live capture.
    pub capture: CaptureConfig,
    /// `pipeline:`: batches between the reader and the workers.
    pub pipeline: PipelineConfig,
    /// `defrag:`: IP fragment reassembly.
    pub defrag: DefragConfig,
    /// `app-layer.protocols:`: the application-layer parsers.
    pub app_layer: AppLayerConfig,
    /// `stream:`: TCP sessions and reassembly.
    pub stream: StreamConfig,
    /// `run-as:`: the account the sensor becomes after opening what needs root.
    pub run_as: RunAs,
    /// The `zone-policy:` section as a tree with its lines (read by the
    /// zone-policy detector, with [`Config::zone_map`]), None when the file has
    /// none. Taken from the one reading of the file, so a file that can be read
    /// only once (`--config <(...)`) keeps its policy.
    pub zone_policy: Option<Node>,
    /// The configuration file's name, as given to [`Config::from_file`].
    pub file: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        let mut ag = BTreeMap::new();
        // Suricata's shipped defaults.
        for (k, v) in [
            ("HOME_NET", "[192.168.0.0/16,10.0.0.0/8,172.16.0.0/12]"),
            ("EXTERNAL_NET", "!$HOME_NET"),
            ("HTTP_SERVERS", "$HOME_NET"),
            ("SMTP_SERVERS", "$HOME_NET"),
            ("SQL_SERVERS", "$HOME_NET"),
            ("DNS_SERVERS", "$HOME_NET"),
            ("TELNET_SERVERS", "$HOME_NET"),
            ("AIM_SERVERS", "$EXTERNAL_NET"),
            ("DC_SERVERS", "$HOME_NET"),
            ("DNP3_SERVER", "$HOME_NET"),
            ("DNP3_CLIENT", "$HOME_NET"),
            ("MODBUS_CLIENT", "$HOME_NET"),
            ("MODBUS_SERVER", "$HOME_NET"),
            ("ENIP_CLIENT", "$HOME_NET"),
            ("ENIP_SERVER", "$HOME_NET"),
        ] {
            ag.insert(k.to_string(), v.to_string());
        }
        let mut pg = BTreeMap::new();
        for (k, v) in [
            ("HTTP_PORTS", "80"),
            ("SHELLCODE_PORTS", "!80"),
            ("ORACLE_PORTS", "1521"),
            ("SSH_PORTS", "22"),
            ("DNP3_PORTS", "20000"),
            ("MODBUS_PORTS", "502"),
            ("FILE_DATA_PORTS", "[$HTTP_PORTS,110,143]"),
            ("FTP_PORTS", "21"),
            ("GENEVE_PORTS", "6081"),
            ("VXLAN_PORTS", "4789"),
            ("TEREDO_PORTS", "3544"),
        ] {
            pg.insert(k.to_string(), v.to_string());
        }
        Config {
            sensor: SensorConfig::default(),
            address_groups: ag,
            port_groups: pg,
            zones: ZoneMap::default(),
            flow: FlowConfig::default(),
            community_id: CommunityIdConfig::default(),
            alert: AlertConfig::default(),
            output: OutputConfig::default(),
            kafka: None,
            aggregate: None,
            detect: DetectConfig::default(),
            syslog: SyslogConfig::default(),
            capture: CaptureConfig::default(),
            pipeline: PipelineConfig::default(),
            defrag: DefragConfig::default(),
            app_layer: AppLayerConfig::default(),
            stream: StreamConfig::default(),
            run_as: RunAs::default(),
            zone_policy: None,
            file: None,
        }
    }
}

/// A problem in a configuration: where and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// File name, or `--set`.
    pub origin: String,
    /// Line (0 for `--set`).
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.line > 0 {
            write!(f, "{}:{}: {}", self.origin, self.line, self.message)
        } else {
            write!(f, "{}: {}", self.origin, self.message)
        }
    }
}

/// The configuration could not be used; every problem found is listed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .problems.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("; "))]
pub struct ConfigError {
    /// All problems found (not just the first).
    pub problems: Vec<Problem>,
}

/// Suricata settings that zonewatch accepts but does not use (whole sections
/// by their top-level key, single keys by their full path).
const SURICATA_IGNORED_SECTIONS: &[&str] = &[
    "%YAML",
    "suricata-version",
    "default-log-dir",
    "plugins",
    "outputs",
    "logging",
    "af-packet",
    "af-xdp",
    "dpdk",
    "pcap",
    "pfring",
    "ipfw",
    "napatech",
    "netmap",
    "nflog",
    "nfq",
    "pcap-file",
    "asn1-max-frames",
    "datasets",
    "security",
    "coredump",
    "host-mode",
    "max-pending-packets",
    "runmode",
    "autofp-scheduler",
    "default-packet-size",
    "unix-command",
    "geoip-database",
    "legacy",
    "engine-analysis",
    "pcre",
    "host-os-policy",
    "decoder",
    "mpm-algo",
    "spm-algo",
    "luajit",
    "profiling",
    "default-rule-path",
    "rule-files",
    "classification-file",
    "reference-config-file",
    "threshold-file",
    "magic-file",
    "action-order",
    "heartbeat",
    "host",
    "ippair",
    "exception-policy",
    "livedev",
    "vlan",
    "sensor-name",
    "include",
    "detect-engine",
    "packet-alert-max",
    "pid-file",
    "daemon-directory",
    "umask",
    "reputation-categories-file",
    "default-reputation-path",
    "reputation-files",
    "stream-events",
    "ftp",
];

const SURICATA_IGNORED_KEYS: &[&str] = &[
    "flow.hash-size",
    "flow.prealloc",
    "flow.emergency-recovery",
    "flow.managers",
    "flow.recyclers",
    "flow.memcap-policy",
    "flow.rate-tracking",
    "stats.enabled",
    "stats.decoder-events",
    "stats.decoder-events-prefix",
    "stats.stream-events",
    "stats.exception-policy",
    "stream.inline",
    "stream.bypass",
    "stream.drop-invalid",
    "stream.midstream-policy",
    "stream.memcap-policy",
    "stream.max-synack-queued",
    "stream.max-sessions",
    "stream.prealloc-sessions",
    "stream.reassembly.toserver-chunk-size",
    "stream.reassembly.toclient-chunk-size",
    "stream.reassembly.randomize-chunk-size",
    "stream.reassembly.randomize-chunk-range",
    "stream.reassembly.raw",
    "stream.reassembly.segment-prealloc",
    "stream.reassembly.max-regions",
    "stream.reassembly.memcap-policy",
    "defrag.hash-size",
    "defrag.max-frags",
    "defrag.prealloc",
    "defrag.host-config",
    "defrag.memcap-policy",
    // Not read by FlowConfig: zonewatch does not bypass flows.
    "flow-timeouts.tcp.bypassed",
    "flow-timeouts.udp.bypassed",
    "flow-timeouts.icmp.bypassed",
    "flow-timeouts.default.bypassed",
];

/// Suricata keys inside the sections zonewatch also reads (`detect`, `capture`,
/// `app-layer`, `threading`): accepted with a warning. Anything else in these
/// sections that is not a zonewatch key is an error, so a typo such as
/// `detect.stream-windw` is caught. `*` stands for one key component, a final
/// `**` for any number of them (the many settings of app-layer parsers
/// zonewatch does not have).
const SURICATA_IGNORED_PATTERNS: &[&str] = &[
    "detect.profile",
    "detect.custom-values.toclient-groups",
    "detect.custom-values.toserver-groups",
    "detect.sgh-mpm-context",
    "detect.sgh-mpm-caching",
    "detect.sgh-mpm-caching-path",
    "detect.inspection-recursion-limit",
    "detect.delayed-detect",
    "detect.prefilter.default",
    "detect.grouping.tcp-whitelist",
    "detect.grouping.udp-whitelist",
    "detect.grouping.tcp-priority-ports",
    "detect.grouping.udp-priority-ports",
    "detect.profiling.grouping.dump-to-disk",
    "detect.profiling.grouping.include-rules",
    "detect.profiling.grouping.include-mpm-stats",
    "detect.thresholds.hash-size",
    "detect.thresholds.memcap",
    "detect.stream-tx-log-limit",
    "detect.guess-applayer-tx",
    "detect.engines",
    "capture.disable-offloading",
    "capture.checksum-validation",
    "threading.set-cpu-affinity",
    "threading.cpu-affinity",
    "threading.detect-thread-ratio",
    "threading.stack-size",
    "threading.autopin",
    "app-layer.error-policy",
    "app-layer.protocols.*.detection-ports.dp",
    "app-layer.protocols.*.detection-ports.sp",
    "app-layer.protocols.http.memcap",
    "app-layer.protocols.http.byterange.memcap",
    "app-layer.protocols.http.byterange.timeout",
    "app-layer.protocols.http.libhtp.server-config",
    "app-layer.protocols.http.libhtp.default-config.personality",
    "app-layer.protocols.http.libhtp.default-config.request-body-minimal-inspect-size",
    "app-layer.protocols.http.libhtp.default-config.request-body-inspect-window",
    "app-layer.protocols.http.libhtp.default-config.response-body-minimal-inspect-size",
    "app-layer.protocols.http.libhtp.default-config.response-body-inspect-window",
    "app-layer.protocols.http.libhtp.default-config.response-body-decompress-layer-limit",
    "app-layer.protocols.http.libhtp.default-config.http-body-inline",
    "app-layer.protocols.http.libhtp.default-config.swf-decompression.*",
    "app-layer.protocols.http.libhtp.default-config.double-decode-path",
    "app-layer.protocols.http.libhtp.default-config.double-decode-query",
    "app-layer.protocols.http.libhtp.default-config.randomize-inspection-sizes",
    "app-layer.protocols.http.libhtp.default-config.randomize-inspection-range",
    "app-layer.protocols.http.libhtp.default-config.uri-include-all",
    "app-layer.protocols.http.libhtp.default-config.meta-field-limit",
    "app-layer.protocols.http.libhtp.default-config.lzma-memlimit",
    "app-layer.protocols.http.libhtp.default-config.lzma-enabled",
    "app-layer.protocols.http.libhtp.default-config.compression-bomb-limit",
    "app-layer.protocols.http.libhtp.default-config.decompression-time-limit",
    "app-layer.protocols.http.libhtp.default-config.max-tx",
    "app-layer.protocols.http.libhtp.default-config.headers-limit",
    "app-layer.protocols.tls.ja3-fingerprints",
    "app-layer.protocols.tls.ja4-fingerprints",
    "app-layer.protocols.ssh.hassh",
    "app-layer.protocols.dns.global-memcap",
    "app-layer.protocols.dns.state-memcap",
    "app-layer.protocols.dns.request-flood",
    "app-layer.protocols.dns.tcp.enabled",
    "app-layer.protocols.dns.tcp.detection-ports.dp",
    "app-layer.protocols.dns.udp.enabled",
    "app-layer.protocols.dns.udp.detection-ports.dp",
    // Parsers Suricata has and zonewatch does not: their settings are not checked.
    "app-layer.protocols.bittorrent-dht.**",
    "app-layer.protocols.dcerpc.**",
    "app-layer.protocols.dhcp.**",
    "app-layer.protocols.dnp3.**",
    "app-layer.protocols.doh2.**",
    "app-layer.protocols.enip.**",
    "app-layer.protocols.ftp.**",
    "app-layer.protocols.http2.**",
    "app-layer.protocols.ike.**",
    "app-layer.protocols.ikev2.**",
    "app-layer.protocols.imap.**",
    "app-layer.protocols.krb5.**",
    "app-layer.protocols.ldap.**",
    "app-layer.protocols.mdns.**",
    "app-layer.protocols.modbus.**",
    "app-layer.protocols.mqtt.**",
    "app-layer.protocols.msn.**",
    "app-layer.protocols.nfs.**",
    "app-layer.protocols.ntp.**",
    "app-layer.protocols.pgsql.**",
    "app-layer.protocols.pop3.**",
    "app-layer.protocols.quic.**",
    "app-layer.protocols.rdp.**",
    "app-layer.protocols.rfb.**",
    "app-layer.protocols.sip.**",
    "app-layer.protocols.smb.**",
    "app-layer.protocols.smtp.**",
    "app-layer.protocols.snmp.**",
    "app-layer.protocols.telnet.**",
    "app-layer.protocols.tftp.**",
    "app-layer.protocols.websocket.**",
];

/// Whether dotted `key` matches `pattern` (see [`SURICATA_IGNORED_PATTERNS`]).
fn key_matches(pattern: &str, key: &str) -> bool {
    let mut k = key.split('.');
    for p in pattern.split('.') {
        if p == "**" {
            return true;
        }
        match k.next() {
            Some(c) if p == "*" || p == c => {}
            _ => return false,
        }
    }
    k.next().is_none()
}

/// Queued batch slots (`workers` x `pipeline.queue-batches`) allocated at start:
/// about 100 bytes each.
const MAX_QUEUE_SLOTS: u64 = 1 << 20;

/// Parses a size: a number of bytes with an optional `kb`/`mb`/`gb` suffix
/// (case-insensitive, powers of 1024, as Suricata reads them).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim().to_ascii_lowercase();
    let (num, mult) = if let Some(n) = t.strip_suffix("gb").or_else(|| t.strip_suffix("g")) {
        (n, 1u64 << 30)
    } else if let Some(n) = t.strip_suffix("mb").or_else(|| t.strip_suffix("m")) {
        (n, 1 << 20)
    } else if let Some(n) = t.strip_suffix("kb").or_else(|| t.strip_suffix("k")) {
        (n, 1 << 10)
    } else {
        (t.strip_suffix('b').unwrap_or(&t), 1)
    };
    let n: u64 = num
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a size (e.g. 64mb)"))?;
    n.checked_mul(mult)
        .ok_or_else(|| format!("{s:?} is too large"))
}

fn parse_bool(s: &str) -> Result<bool, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "yes" | "true" | "on" | "1" => Ok(true),
        "no" | "false" | "off" | "0" => Ok(false),
        _ => Err(format!("{s:?} is not yes/no")),
    }
}

/// A user or group name (or numeric id) for `run-as.*`: non-empty, no
/// blanks, `:` or `/` (resolved against the system's accounts at start).
fn account_name(s: &str) -> Result<String, String> {
    let t = s.trim();
    if t.is_empty() || t.chars().any(|c| c.is_whitespace() || c == ':' || c == '/') {
        return Err(format!("{s:?} is not a user or group name"));
    }
    Ok(t.to_string())
}

/// `metrics.listen`: `ADDR:PORT` (`[::1]:9187` for IPv6), or `off`/empty
/// for no endpoint. Host names are not resolved: the address is bound as
/// written.
fn parse_listen(s: &str) -> Result<Option<std::net::SocketAddr>, String> {
    let t = s.trim();
    if t.is_empty() || matches!(t, "off" | "no" | "false") {
        return Ok(None);
    }
    t.parse()
        .map(Some)
        .map_err(|_| format!("{t:?} is not ADDR:PORT (e.g. 127.0.0.1:9187 or [::1]:9187) or off"))
}

fn parse_num<T: std::str::FromStr>(s: &str) -> Result<T, String> {
    s.trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a valid number here"))
}

fn parse_cidrs(items: &[String]) -> Result<Vec<IpNet>, String> {
    items
        .iter()
        .flat_map(|s| s.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<IpNet>()
                .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| format!("{s:?} is not an address or CIDR"))
        })
        .collect()
}

/// One setting being applied: its key and its value, read as the field it sets needs
/// (errors name the key).
struct KeyValue<'a> {
    key: &'a str,
    value: &'a Value,
}

impl KeyValue<'_> {
    fn scalar(&self) -> Result<&str, String> {
        match self.value {
            Value::Scalar(s) => Ok(s.as_str()),
            _ => Err(format!("`{}` takes a single value, not a list", self.key)),
        }
    }
    fn list(&self) -> Result<Vec<String>, String> {
        match self.value {
            Value::List(l) => Ok(l.clone()),
            Value::Scalar(s) => Ok(s.split(',').map(|x| x.trim().to_string()).collect()),
            Value::ListOfMaps => Err(format!("`{}` takes a list of values", self.key)),
        }
    }
    /// A size in bytes, within the key's range (if the table has one).
    fn size(&self) -> Result<u64, String> {
        self.ranged().and_then(parse_size)
    }
    /// Seconds, within the key's range (if the table has one).
    fn secs(&self) -> Result<u64, String> {
        self.num()
    }
    /// A number, within the key's range (if the table has one).
    fn num<T: std::str::FromStr>(&self) -> Result<T, String> {
        self.ranged().and_then(parse_num)
    }
    /// The scalar, once the range table accepts it for this key.
    fn ranged(&self) -> Result<&str, String> {
        let s = self.scalar()?;
        ranges::check_range(self.key, s)?;
        Ok(s)
    }
    fn bool(&self) -> Result<bool, String> {
        self.scalar().and_then(parse_bool)
    }
}

/// An overlap policy for fragments or TCP segments (Suricata's host-os-policy names).
fn overlap_policy(s: &str) -> Result<String, String> {
    const KNOWN: &[&str] = &[
        "bsd",
        "bsd-right",
        "linux",
        "old-linux",
        "windows",
        "vista",
        "windows2k3",
        "solaris",
        "old-solaris",
        "macos",
        "hpux10",
        "hpux11",
        "irix",
        "first",
        "last",
    ];
    let p = s.to_ascii_lowercase();
    if !KNOWN.contains(&p.as_str()) {
        return Err(format!(
            "unknown defrag policy {p:?} (known: {})",
            KNOWN.join(", ")
        ));
    }
    Ok(p)
}

/// What applying one setting did.
enum Applied {
    Ok,
    /// A Suricata key with no meaning here.
    Ignored,
}

impl Config {
    /// Loads a YAML file over the defaults. Returns warnings (ignored
    /// Suricata keys) or every problem found.
    pub fn from_file(path: &Path) -> Result<(Config, Vec<Problem>), ConfigError> {
        let origin = path.display().to_string();
        let problem = |line, message| ConfigError {
            problems: vec![Problem {
                origin: origin.clone(),
                line,
                message,
            }],
        };
        let bytes = zonewatch_yamlread::read_file(path).map_err(|e| problem(0, e.to_string()))?;
        let text = String::from_utf8(bytes).map_err(|e| {
            let at = e.utf8_error().valid_up_to();
            let line = 1 + e.as_bytes()[..at].iter().filter(|&&b| b == b'\n').count();
            problem(line, "not UTF-8 text".to_string())
        })?;
        let mut c = Config::default();
        let warnings = c.apply_yaml(&text, &origin)?;
        c.file = Some(origin);
        Ok((c, warnings))
    }

    /// Applies YAML text over this configuration.
    pub fn apply_yaml(&mut self, text: &str, origin: &str) -> Result<Vec<Problem>, ConfigError> {
        let settings = flatten(text).map_err(|e| ConfigError {
            problems: vec![Problem {
                origin: origin.into(),
                line: e.line,
                message: e.message,
            }],
        })?;
        let mut warnings = Vec::new();
        let mut problems = Vec::new();
        for s in settings {
            let p = |message| Problem {
                origin: origin.into(),
                line: s.line,
                message,
            };
            if s.key.starts_with("kafka.") || s.key.starts_with("aggregate.") {
                // The section is taken whole, as a tree, below.
                continue;
            }
            if s.key.starts_with("zone-policy.") || s.key == "zone-policy" {
                // The section is taken whole, as a tree, below.
                continue;
            }
            match self.apply(&s.key, &s.value) {
                Ok(Applied::Ok) => {}
                Ok(Applied::Ignored) => warnings.push(p(format!(
                    "Suricata setting `{}` has no meaning in zonewatch; ignored",
                    s.key
                ))),
                Err(m) => problems.push(p(m)),
            }
        }
        let tree = zonewatch_yamlread::tree::parse(text).map_err(|e| ConfigError {
            problems: vec![Problem {
                origin: origin.into(),
                line: e.line,
                message: e.message,
            }],
        })?;
        if let Some(policy) = tree.as_ref().and_then(|t| t.get("zone-policy")) {
            self.zone_policy = Some(policy.clone());
        }
        if let Some(agg) = tree.as_ref().and_then(|t| t.get("aggregate")) {
            if agg.has_values() && matches!(agg.kind, Kind::Map(_)) {
                Self::lay_over(&mut self.aggregate, &[], agg.clone());
            }
        }
        if let Some(kafka) = tree.as_ref().and_then(|t| t.get("kafka")) {
            if kafka.has_values() && matches!(kafka.kind, Kind::Map(_)) {
                self.set_kafka(&[], kafka.clone());
            }
        }
        if problems.is_empty() {
            Ok(warnings)
        } else {
            Err(ConfigError { problems })
        }
    }

    /// Lays `value` over the `kafka:` section at `path` (below `kafka`).
    fn set_kafka(&mut self, path: &[&str], value: Node) {
        Self::lay_over(&mut self.kafka, path, value);
    }

    /// Lays `value` over a section kept as a tree, at `path` below it.
    fn lay_over(tree: &mut Option<Node>, path: &[&str], value: Node) {
        let mut section = Node {
            line: 0,
            kind: Kind::Map(Vec::new()),
        };
        section.set_path(path, value, 0);
        match tree {
            Some(k) => k.merge(&section),
            None => *tree = Some(section),
        }
    }

    /// Applies a `--set KEY=VALUE` override (a comma-separated value sets a
    /// list). Returns a warning for ignored Suricata keys.
    pub fn apply_override(&mut self, kv: &str) -> Result<Option<Problem>, ConfigError> {
        let err = |message: String| ConfigError {
            problems: vec![Problem {
                origin: "--set".into(),
                line: 0,
                message,
            }],
        };
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| err(format!("{kv:?}: expected KEY=VALUE")))?;
        let (k, v) = (k.trim(), v.trim());
        if let Some(kk) = k.strip_prefix("kafka.") {
            // librdkafka's property names have dots: below `librdkafka.` the rest is one key.
            let path: Vec<&str> = match kk.strip_prefix("librdkafka.") {
                Some(prop) => vec!["librdkafka", prop],
                None => kk.split('.').collect(),
            };
            let value = Node {
                line: 0,
                kind: Kind::Scalar(v.to_string()),
            };
            self.set_kafka(&path, value);
            return Ok(None);
        }
        if let Some(kk) = k.strip_prefix("aggregate.") {
            // Below `sensors.` the rest is one key: a sensor name may have dots.
            let path: Vec<&str> = match kk.strip_prefix("sensors.") {
                Some(name) => vec!["sensors", name],
                None => kk.split('.').collect(),
            };
            let value = Node {
                line: 0,
                kind: Kind::Scalar(v.to_string()),
            };
            Self::lay_over(&mut self.aggregate, &path, value);
            return Ok(None);
        }
        let value = if Self::is_list_key(k) {
            let inner = v.trim_start_matches('[').trim_end_matches(']');
            Value::List(inner.split(',').map(|s| s.trim().to_string()).collect())
        } else {
            Value::Scalar(v.to_string())
        };
        match self.apply(k, &value) {
            Ok(Applied::Ok) => Ok(None),
            Ok(Applied::Ignored) => Ok(Some(Problem {
                origin: "--set".into(),
                line: 0,
                message: format!("Suricata setting `{k}` has no meaning in zonewatch; ignored"),
            })),
            Err(m) => Err(err(m)),
        }
    }

    fn is_list_key(k: &str) -> bool {
        k.starts_with("zones.") || k == "outputs.types" || k == "output.types"
    }

    /// Applies a value given on the command line (`--workers 4` as
    /// `flag`, `key`, `value`): the same checks as in the file, errors name
    /// the flag and the key.
    pub fn apply_flag(&mut self, flag: &str, key: &str, value: &str) -> Result<(), ConfigError> {
        self.apply(key, &Value::Scalar(value.to_string()))
            .map(|_| ())
            .map_err(|message| ConfigError {
                problems: vec![Problem {
                    origin: flag.into(),
                    line: 0,
                    message,
                }],
            })
    }

    /// Checks what no single key can: the queue slots allocated at start
    /// (`workers` x `pipeline.queue-batches`, with `workers` the resolved
    /// count of worker threads).
    pub fn check_totals(&self, workers: usize) -> Result<(), ConfigError> {
        let slots = workers as u64 * self.pipeline.queue_batches as u64;
        if slots > MAX_QUEUE_SLOTS {
            return Err(ConfigError {
                problems: vec![Problem {
                    origin: "configuration".into(),
                    line: 0,
                    message: format!(
                        "{workers} workers x `pipeline.queue-batches` {} = {slots} queued batches, more than {MAX_QUEUE_SLOTS}: lower `workers` or `pipeline.queue-batches`",
                        self.pipeline.queue_batches
                    ),
                }],
            });
        }
        Ok(())
    }

    /// Applies one setting (numbers are checked against the range table as the section
    /// reads them); every error names the key.
    fn apply(&mut self, key: &str, value: &Value) -> Result<Applied, String> {
        self.apply_key(key, value).map_err(|m| {
            if m.contains(&format!("`{key}`")) {
                m
            } else {
                format!("`{key}`: {m}")
            }
        })
    }

    /// Sets the field `key` names, trying each section's keys in turn; a key no section
    /// has is an ignored Suricata key (a warning) or an error.
    fn apply_key(&mut self, key: &str, value: &Value) -> Result<Applied, String> {
        let v = KeyValue { key, value };
        let known = self.sensor.apply(&v)?
            || self.flow.apply(&v)?
            || self.community_id.apply(&v)?
            || self.alert.apply(&v)?
            || self.output.apply(&v)?
            || self.detect.apply(&v)?
            || self.stream.apply(&v)?
            || self.app_layer.apply(&v)?
            || self.capture.apply(&v)?
            || self.pipeline.apply(&v)?
            || self.defrag.apply(&v)?
            || self.syslog.apply(&v)?
            || self.run_as.apply(&v)?
            || self.apply_vars_zones(&v)?;
        if known {
            return Ok(Applied::Ok);
        }
        let top = key.split('.').next().unwrap_or(key);
        if SURICATA_IGNORED_KEYS.contains(&key)
            || SURICATA_IGNORED_SECTIONS.contains(&top)
            || SURICATA_IGNORED_PATTERNS
                .iter()
                .any(|p| key_matches(p, key))
        {
            return Ok(Applied::Ignored);
        }
        Err(format!("unknown key `{key}`"))
    }

    /// Address and port variables and zones; false when `v.key` is none of them.
    fn apply_vars_zones(&mut self, v: &KeyValue) -> Result<bool, String> {
        // A list value is written back as a rule-language list.
        let group_value = || match v.value {
            Value::List(l) => Ok(format!("[{}]", l.join(","))),
            _ => v.scalar().map(str::to_string),
        };
        if let Some(name) = v.key.strip_prefix("vars.address-groups.") {
            self.address_groups.insert(name.to_string(), group_value()?);
        } else if let Some(name) = v.key.strip_prefix("vars.port-groups.") {
            self.port_groups.insert(name.to_string(), group_value()?);
        } else if let Some(name) = v.key.strip_prefix("zones.").filter(|n| !n.contains('.')) {
            self.zones.set(name, parse_cidrs(&v.list()?)?);
        } else {
            return Ok(false);
        }
        Ok(true)
    }

    /// The zones, with the lookup of an address's zone.
    pub fn zone_map(&self) -> ZoneMap {
        self.zones.clone()
    }
}

#[cfg(test)]
mod tests;
