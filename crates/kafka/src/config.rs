//! Configuration of the Kafka sink.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use rdkafka::ClientConfig;
use serde::{Deserialize, Serialize};

use crate::Error;

/// The default redaction pattern: a 12-digit number (optionally written in three groups of
/// four separated by a space or `-`) that is not part of a longer run of digits — the shape
/// of a Japanese My Number (個人番号). Group 1 is what gets masked.
pub const MY_NUMBER_PATTERN: &str = r"(?:^|[^0-9])([0-9]{4}[ -]?[0-9]{4}[ -]?[0-9]{4})(?:[^0-9]|$)";

/// Complete configuration of a [`KafkaSink`](crate::KafkaSink).
///
/// Every field has a default (see [`KafkaConfig::default`]), and the struct deserializes
/// with `serde` from a partial document (unknown keys are rejected), so it can be embedded
/// in zonewatch's configuration file.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct KafkaConfig {
    /// Bootstrap brokers, comma separated `host:port` (librdkafka `bootstrap.servers`).
    pub brokers: String,
    /// Per event type overrides of the topic and of payload inclusion, keyed by
    /// `event_type`. Types without an entry use [`KafkaConfig::topic_for`]'s defaults.
    pub topics: BTreeMap<String, TopicConfig>,
    /// Prefix of the topic of an event type that has neither an entry in `topics` nor a
    /// built-in name (`alert`, `flow`, `stats`): the topic is `<prefix><event_type>`.
    pub topic_prefix: String,
    /// Create the topics the sink writes to when they are missing (at start, for a new
    /// event type, and again after the broker came back without them).
    pub create_topics: bool,
    /// Partitions of topics created by the sink.
    pub topic_partitions: i32,
    /// Replication factor of topics created by the sink (default 1, right for a single
    /// test broker; use 3 on a production cluster, or -1 for the broker's default).
    pub topic_replication: i32,
    /// What the Kafka message key is made of.
    pub key: KeyField,
    /// Compression codec of produced batches.
    pub compression: Compression,
    /// TLS and SASL settings.
    pub security: SecurityConfig,
    /// Extra librdkafka properties, applied last (they override everything above).
    /// `enable.idempotence` and `acks` cannot be weakened here.
    pub librdkafka: BTreeMap<String, String>,
    /// Value of the `sensor` header. Defaults to the host name.
    pub sensor: String,
    /// Value of the `tenant` header.
    pub tenant: String,
    /// Value of the `schema_version` header.
    pub schema_version: String,
    /// Regular expressions (Rust `regex` syntax) whose matches inside JSON strings are
    /// masked with `*`, one `*` per character. If a pattern has a capture group, only
    /// group 1 is masked. Defaults to [`MY_NUMBER_PATTERN`].
    pub redact: Vec<String>,
    /// The on-disk spool.
    pub spool: SpoolConfig,
    /// At [`KafkaSink::shutdown`](crate::KafkaSink::shutdown), how long to wait for
    /// outstanding deliveries before spooling what is left.
    pub flush_timeout_ms: u64,
    /// librdkafka `message.timeout.ms`: a message not acknowledged within this time fails
    /// its delivery and is spooled.
    pub message_timeout_ms: u64,
    /// When librdkafka reports all brokers down for this long, new events go straight to
    /// the spool (and queued ones are moved there) until a probe succeeds.
    pub unreachable_after_ms: u64,
    /// How often the background thread probes the brokers (metadata request) while the
    /// sink is spooling.
    pub probe_interval_ms: u64,
    /// How long `send` waits for room when librdkafka's queue is full before it spools the
    /// event instead.
    pub queue_full_wait_ms: u64,
    /// Upper bound of spool records being replayed (produced, not yet acknowledged).
    pub replay_max_in_flight: usize,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig {
            brokers: "127.0.0.1:9092".to_string(),
            topics: BTreeMap::new(),
            topic_prefix: "zonewatch-".to_string(),
            create_topics: true,
            topic_partitions: 3,
            topic_replication: 1,
            key: KeyField::default(),
            compression: Compression::default(),
            security: SecurityConfig::default(),
            librdkafka: BTreeMap::new(),
            sensor: default_sensor(),
            tenant: String::new(),
            schema_version: "1".to_string(),
            redact: vec![MY_NUMBER_PATTERN.to_string()],
            spool: SpoolConfig::default(),
            flush_timeout_ms: 10_000,
            message_timeout_ms: 60_000,
            unreachable_after_ms: 10_000,
            probe_interval_ms: 1_000,
            queue_full_wait_ms: 500,
            replay_max_in_flight: 20_000,
        }
    }
}

fn default_sensor() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "zonewatch".to_string())
}

/// Per event type settings.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct TopicConfig {
    /// Topic name; `None` keeps the default name of the event type.
    pub topic: Option<String>,
    /// Keep packet payloads, HTTP bodies and raw log lines in events of this type.
    /// Off by default: they are removed before the event leaves the sensor.
    pub include_payload: bool,
}

/// Source of the Kafka message key (which decides the partition).
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum KeyField {
    /// [`OutEvent::src_ip`](crate::OutEvent::src_ip): all events of a host in one partition.
    #[default]
    SrcIp,
    /// [`OutEvent::flow_id`](crate::OutEvent::flow_id), as decimal text.
    FlowId,
    /// [`OutEvent::community_id`](crate::OutEvent::community_id).
    CommunityId,
}

/// Compression codec (librdkafka `compression.codec`).
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Compression {
    /// zstd.
    #[default]
    Zstd,
    /// lz4.
    Lz4,
    /// No compression.
    None,
}

impl Compression {
    fn as_librdkafka(self) -> &'static str {
        match self {
            Compression::Zstd => "zstd",
            Compression::Lz4 => "lz4",
            Compression::None => "none",
        }
    }
}

/// librdkafka `security.protocol`.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum SecurityProtocol {
    /// No TLS, no authentication.
    #[default]
    Plaintext,
    /// TLS (optionally with a client certificate).
    Ssl,
    /// SASL without TLS.
    SaslPlaintext,
    /// SASL over TLS.
    SaslSsl,
}

impl SecurityProtocol {
    fn as_librdkafka(self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "plaintext",
            SecurityProtocol::Ssl => "ssl",
            SecurityProtocol::SaslPlaintext => "sasl_plaintext",
            SecurityProtocol::SaslSsl => "sasl_ssl",
        }
    }

    fn uses_sasl(self) -> bool {
        matches!(
            self,
            SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl
        )
    }
}

/// SASL mechanism (librdkafka `sasl.mechanism`).
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub enum SaslMechanism {
    /// `PLAIN` (use it over TLS only).
    #[serde(rename = "PLAIN")]
    Plain,
    /// `SCRAM-SHA-256`.
    #[serde(rename = "SCRAM-SHA-256")]
    ScramSha256,
    /// `SCRAM-SHA-512`.
    #[serde(rename = "SCRAM-SHA-512")]
    ScramSha512,
}

impl SaslMechanism {
    fn as_librdkafka(self) -> &'static str {
        match self {
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::ScramSha256 => "SCRAM-SHA-256",
            SaslMechanism::ScramSha512 => "SCRAM-SHA-512",
        }
    }
}

/// A string that is never printed by `Debug` (passwords).
#[derive(Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"***\"")
    }
}

/// TLS and SASL settings.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct SecurityConfig {
    /// librdkafka `security.protocol`.
    pub protocol: SecurityProtocol,
    /// CA bundle that signs the brokers' certificates (`ssl.ca.location`).
    pub ca_location: Option<PathBuf>,
    /// Client certificate (`ssl.certificate.location`), for mutual TLS.
    pub certificate_location: Option<PathBuf>,
    /// Client private key (`ssl.key.location`).
    pub key_location: Option<PathBuf>,
    /// Password of the client private key (`ssl.key.password`).
    pub key_password: Option<Secret>,
    /// SASL mechanism; required with the `sasl_*` protocols.
    pub sasl_mechanism: Option<SaslMechanism>,
    /// SASL user name.
    pub username: Option<String>,
    /// SASL password.
    pub password: Option<Secret>,
}

/// When the spool calls `fsync` (`File::sync_data`).
///
/// Every spool record is handed to the kernel with one `write` before `send` returns (or
/// before the delivery failure is forgotten), so a killed process loses nothing that was
/// spooled; this policy only decides what survives a power loss or kernel crash.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum FsyncPolicy {
    /// After every record.
    Always,
    /// After every N records (and when a segment is closed).
    Every(u64),
    /// Never explicitly (the kernel writes back on its own schedule).
    Never,
}

impl Default for FsyncPolicy {
    fn default() -> Self {
        FsyncPolicy::Every(1000)
    }
}

/// What happens to a record that does not fit in a full spool.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum FullPolicy {
    /// Drop the record being written (keeps the oldest, already spooled events).
    #[default]
    DropNewest,
    /// Delete the oldest segment(s) to make room (keeps the most recent events).
    DropOldest,
    /// Make `send` wait until replay frees room. Records coming from failed deliveries
    /// (on librdkafka's callback thread, which must not block) are written anyway and may
    /// exceed `max_bytes` by at most librdkafka's queue size.
    Block,
}

/// The on-disk spool (see the crate documentation).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct SpoolConfig {
    /// Directory of the segment files; created if missing. One sink per directory.
    pub dir: PathBuf,
    /// Upper bound of the total size of the segment files.
    pub max_bytes: u64,
    /// Size at which a segment file is closed and a new one started (at most a quarter of
    /// `max_bytes` is used).
    pub segment_bytes: u64,
    /// When to `fsync`.
    pub fsync: FsyncPolicy,
    /// What to do when the spool is full.
    pub full_policy: FullPolicy,
    /// Write every event to the spool before producing it, and advance the spool only
    /// when the broker acknowledged it: nothing handed to `send` is lost when the process
    /// is killed, at the cost of one `write` per event.
    pub write_ahead: bool,
}

impl Default for SpoolConfig {
    fn default() -> Self {
        SpoolConfig {
            dir: PathBuf::from("/var/spool/zonewatch/kafka"),
            max_bytes: 1 << 30,
            segment_bytes: 16 << 20,
            fsync: FsyncPolicy::default(),
            full_policy: FullPolicy::default(),
            write_ahead: false,
        }
    }
}

impl SpoolConfig {
    /// The segment size actually used.
    pub(crate) fn effective_segment_bytes(&self) -> u64 {
        self.segment_bytes.min(self.max_bytes / 4).max(4096)
    }
}

/// Built-in topic names.
fn builtin_topic(event_type: &str) -> Option<&'static str> {
    match event_type {
        "alert" => Some("zonewatch-alerts"),
        "flow" => Some("zonewatch-flows"),
        "stats" => Some("zonewatch-stats"),
        _ => None,
    }
}

impl KafkaConfig {
    /// The topic of an event type: the `topics` entry if it names one, else
    /// `zonewatch-alerts` / `zonewatch-flows` / `zonewatch-stats` for `alert` / `flow` /
    /// `stats`, else `<topic_prefix><event_type>` with characters Kafka does not allow in
    /// topic names replaced by `_`.
    pub fn topic_for(&self, event_type: &str) -> String {
        if let Some(t) = self.topics.get(event_type).and_then(|t| t.topic.as_ref()) {
            return t.clone();
        }
        if let Some(t) = builtin_topic(event_type) {
            return t.to_string();
        }
        let mut name = self.topic_prefix.clone();
        name.extend(event_type.chars().map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        }));
        name.truncate(249);
        name
    }

    /// Whether payloads are kept for an event type.
    pub fn include_payload(&self, event_type: &str) -> bool {
        self.topics
            .get(event_type)
            .is_some_and(|t| t.include_payload)
    }

    /// Checks what [`crate::KafkaSink::start`] checks, without connecting or opening the
    /// spool (`zonewatch config check`): the settings, the redact patterns, and that the
    /// spool directory can be written (or, when missing, created).
    pub fn check(&self) -> Result<(), Error> {
        self.validate()?;
        crate::filter::Filter::new(&self.redact).map_err(|e| Error::Config(e.to_string()))?;
        crate::spool::check_dir(&self.spool.dir).map_err(Error::Io)
    }

    /// Checks the settings that librdkafka would only reject later (or not at all).
    pub(crate) fn validate(&self) -> Result<(), Error> {
        let bad = |m: String| Err(Error::Config(m));
        if self.brokers.trim().is_empty() {
            return bad("brokers is empty".into());
        }
        if self.topic_partitions < 1 {
            return bad("topic_partitions must be at least 1".into());
        }
        if self.topic_replication < 1 && self.topic_replication != -1 {
            return bad(
                "topic_replication must be at least 1 (or -1 for the broker default)".into(),
            );
        }
        if self.spool.max_bytes < 16 * 1024 {
            return bad("spool.max_bytes must be at least 16 KiB".into());
        }
        if let FsyncPolicy::Every(0) = self.spool.fsync {
            return bad("spool.fsync every: N needs N >= 1".into());
        }
        if self.replay_max_in_flight == 0 {
            return bad("replay_max_in_flight must be at least 1".into());
        }
        let sec = &self.security;
        if sec.protocol.uses_sasl() {
            if sec.sasl_mechanism.is_none() {
                return bad("security.sasl_mechanism is required with a sasl_* protocol".into());
            }
            if sec.username.is_none() || sec.password.is_none() {
                return bad(
                    "security.username and security.password are required with SASL".into(),
                );
            }
        } else if sec.sasl_mechanism.is_some() {
            return bad(
                "security.sasl_mechanism is set but security.protocol is not sasl_*".into(),
            );
        }
        for (what, p) in [
            ("ca_location", &sec.ca_location),
            ("certificate_location", &sec.certificate_location),
            ("key_location", &sec.key_location),
        ] {
            if let Some(p) = p {
                if !p.exists() {
                    return bad(format!("security.{what} {} does not exist", p.display()));
                }
            }
        }
        for key in ["enable.idempotence", "acks", "request.required.acks"] {
            if let Some(v) = self.librdkafka.get(key) {
                let ok = match key {
                    "enable.idempotence" => v == "true",
                    _ => v == "all" || v == "-1",
                };
                if !ok {
                    return bad(format!(
                        "librdkafka.{key}={v} would give up the no-loss guarantee"
                    ));
                }
            }
        }
        for p in &self.redact {
            regex::Regex::new(p)
                .map_err(|e| Error::Config(format!("redact pattern {p:?}: {e}")))?;
        }
        Ok(())
    }

    /// The librdkafka configuration the sink's producer uses (also handy to print the
    /// effective settings, or to build a comparable plain producer).
    pub fn client_config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.brokers)
            .set("client.id", format!("zonewatch-{}", self.sensor))
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("compression.codec", self.compression.as_librdkafka())
            .set("message.timeout.ms", self.message_timeout_ms.to_string())
            .set("linger.ms", "5")
            .set("security.protocol", self.security.protocol.as_librdkafka());
        let sec = &self.security;
        if let Some(p) = &sec.ca_location {
            c.set("ssl.ca.location", p.to_string_lossy());
        }
        if let Some(p) = &sec.certificate_location {
            c.set("ssl.certificate.location", p.to_string_lossy());
        }
        if let Some(p) = &sec.key_location {
            c.set("ssl.key.location", p.to_string_lossy());
        }
        if let Some(p) = &sec.key_password {
            c.set("ssl.key.password", &p.0);
        }
        if let Some(m) = sec.sasl_mechanism {
            c.set("sasl.mechanism", m.as_librdkafka());
        }
        if let Some(u) = &sec.username {
            c.set("sasl.username", u);
        }
        if let Some(p) = &sec.password {
            c.set("sasl.password", &p.0);
        }
        for (k, v) in &self.librdkafka {
            c.set(k, v);
        }
        // librdkafka's log lines are forwarded to `tracing` (target "librdkafka"): let
        // through what the subscriber would record.
        use rdkafka::config::RDKafkaLogLevel as L;
        let level = if tracing::enabled!(target: "librdkafka", tracing::Level::DEBUG) {
            L::Debug
        } else if tracing::enabled!(target: "librdkafka", tracing::Level::INFO) {
            L::Info
        } else {
            L::Warning
        };
        c.set_log_level(level);
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_defaults_and_overrides() {
        let mut c = KafkaConfig::default();
        assert_eq!(c.topic_for("alert"), "zonewatch-alerts");
        assert_eq!(c.topic_for("flow"), "zonewatch-flows");
        assert_eq!(c.topic_for("stats"), "zonewatch-stats");
        assert_eq!(c.topic_for("dns"), "zonewatch-dns");
        assert_eq!(c.topic_for("we ird/type"), "zonewatch-we_ird_type");
        c.topics.insert(
            "alert".into(),
            TopicConfig {
                topic: Some("soc-alerts".into()),
                include_payload: true,
            },
        );
        c.topics.insert(
            "http".into(),
            TopicConfig {
                topic: None,
                include_payload: true,
            },
        );
        assert_eq!(c.topic_for("alert"), "soc-alerts");
        assert_eq!(c.topic_for("http"), "zonewatch-http");
        assert!(c.include_payload("alert"));
        assert!(!c.include_payload("flow"));
    }

    #[test]
    fn deserializes_partial_config() {
        let c: KafkaConfig = serde_json::from_str(
            r#"{"brokers":"k1:9093,k2:9093","compression":"lz4","key":"community_id",
                "security":{"protocol":"sasl_ssl","sasl_mechanism":"SCRAM-SHA-512",
                            "username":"zw","password":"pw"},
                "spool":{"dir":"/tmp/x","fsync":{"every":10},"full_policy":"drop_oldest"}}"#,
        )
        .unwrap();
        assert_eq!(c.compression, Compression::Lz4);
        assert_eq!(c.key, KeyField::CommunityId);
        assert_eq!(c.spool.fsync, FsyncPolicy::Every(10));
        assert_eq!(c.spool.full_policy, FullPolicy::DropOldest);
        assert_eq!(c.topic_partitions, 3);
        c.validate().unwrap();
        assert!(
            !format!("{c:?}").contains("pw\""),
            "password must not be printed"
        );
        let cc = c.client_config();
        assert_eq!(cc.get("sasl.mechanism"), Some("SCRAM-SHA-512"));
        assert_eq!(cc.get("security.protocol"), Some("sasl_ssl"));
        assert_eq!(cc.get("enable.idempotence"), Some("true"));
        assert!(serde_json::from_str::<KafkaConfig>(r#"{"brokerz":"x"}"#).is_err());
    }

    #[test]
    fn rejects_weakened_guarantees_and_bad_sasl() {
        let mut c = KafkaConfig::default();
        c.librdkafka.insert("acks".into(), "1".into());
        assert!(c.validate().is_err());
        let mut c = KafkaConfig::default();
        c.security.protocol = SecurityProtocol::SaslSsl;
        assert!(c.validate().is_err());
        let mut c = KafkaConfig::default();
        c.redact.push("(".into());
        assert!(c.validate().is_err());
    }
}
