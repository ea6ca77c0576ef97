//! Kafka sink for zonewatch events.
//!
//! [`KafkaSink`] publishes the JSON events of the sensor to Kafka (or any broker speaking
//! the Kafka protocol) for the prefecture's security cloud, with an on-disk spool so that
//! broker outages do not lose events.
//!
//! ```no_run
//! use zonewatch_kafka::{KafkaConfig, KafkaSink, OutEvent};
//!
//! let mut cfg = KafkaConfig::default();
//! cfg.brokers = "kafka1.example:9093,kafka2.example:9093".into();
//! cfg.tenant = "city-a".into();
//! cfg.spool.dir = "/var/spool/zonewatch/kafka".into();
//! let sink = KafkaSink::start(cfg)?;
//! sink.send(&OutEvent {
//!     event_type: "alert",
//!     event_id: "7f1c…",
//!     json: r#"{"event_type":"alert","src_ip":"192.0.2.1","alert":{"signature":"…"}}"#,
//!     src_ip: Some("192.0.2.1"),
//!     flow_id: Some(1234567890),
//!     community_id: None,
//! })?;
//! let metrics = sink.shutdown()?;
//! println!("{} delivered, {} spooled", metrics.delivered, metrics.spooled);
//! # Ok::<(), zonewatch_kafka::Error>(())
//! ```
//!
//! # Messages
//!
//! * **Topic**: per event type, see [`KafkaConfig::topic_for`] (`zonewatch-alerts`,
//!   `zonewatch-flows`, `zonewatch-stats`, `zonewatch-<event_type>`). With
//!   `create_topics` the sink creates missing topics (`topic_partitions`, default 3) at
//!   start, when it sees a new event type, and when the broker comes back without them.
//!   Spooled events are routed with the configuration of the sink that replays them.
//! * **Key**: [`KeyField`] — the source IP by default, so a host's events stay in order in
//!   one partition.
//! * **Headers**: `sensor`, `tenant`, `schema_version`, `event_type`, `event_id`.
//! * **Timestamp**: the time the event was handed to [`KafkaSink::send`] (kept for
//!   spooled events).
//! * **Value**: the event JSON as given, after privacy filtering:
//!   1. unless `include_payload` is set for the event type, the top-level fields
//!      `payload`, `payload_printable` and `packet`, the `http` body fields (every key of
//!      the `http` object containing `body`, e.g. `http_request_body`,
//!      `http_response_body_printable`) and `log.raw` are removed. The JSON is parsed only
//!      when one of these names occurs in the text at all; other fields are copied byte for
//!      byte, in order.
//!   2. the `redact` regexes are applied; matches inside JSON strings are replaced with one
//!      `*` per character. The default masks 12-digit numbers that could be a My Number
//!      ([`MY_NUMBER_PATTERN`]). JSON numbers are left alone (masking them would produce
//!      invalid JSON or change the field's type).
//!
//!   An event whose JSON does not parse although it may contain such fields is sent
//!   unfiltered (masking still applies) and a warning is logged.
//!
//! The producer is idempotent (`enable.idempotence=true`, `acks=all`), compresses with zstd
//! by default, and supports TLS and SASL PLAIN / SCRAM-SHA-256 / SCRAM-SHA-512
//! ([`SecurityConfig`]); any librdkafka property can be passed through `librdkafka`.
//!
//! # Delivery guarantee
//!
//! At least once: every event handed to `send` is acknowledged by the broker, or stays in
//! the spool until it is, or is counted in [`Metrics`] as lost and logged
//! (`dropped_spool_full` under the configured full policy, `dropped_io_error` when the
//! spool cannot be written, `rejected` when the broker can never accept it — those are
//! kept in `rejected.jsonl` in the spool directory). Duplicates can happen, always as the
//! same message with the same `event_id` header; consumers deduplicate on it.
//!
//! Events go to the spool when:
//! * a delivery fails (message timeout — `message_timeout_ms` —, broker error, or a
//!   purge at shutdown): written from the delivery report, exactly once;
//! * librdkafka's queue stays full for `queue_full_wait_ms`;
//! * librdkafka reports all brokers down for `unreachable_after_ms` (confirmed by a
//!   metadata probe): from then on `send` writes to the spool, and the messages still
//!   waiting in librdkafka's queue are moved there too;
//! * the spool is not empty (so that newer events do not overtake older ones).
//!
//! A background thread probes the brokers every `probe_interval_ms` while spooling; once a
//! probe succeeds it (re)creates missing topics and replays the spool in order, with at
//! most `replay_max_in_flight` records unacknowledged. A spool record is only released
//! (its segment deleted, the `cursor` file advanced) when the broker acknowledged it; a
//! replayed record that fails again is not rewritten: replay rewinds to it once the records
//! in flight have resolved (acknowledged ones after it are skipped). When the replay has
//! caught up, `send` produces directly again. On [`KafkaSink::start`] a non-empty spool is
//! replayed before any new event.
//!
//! Order: events of one key reach the broker in `send` order, except around a failure:
//! messages that were in flight when the broker went away are spooled when their delivery
//! fails, possibly after newer events were already spooled.
//!
//! At [`KafkaSink::shutdown`] (or drop) the sink waits up to `flush_timeout_ms` for
//! outstanding deliveries, then purges librdkafka's queues: the purged messages go to the
//! spool, which is synced and replayed by the next start.
//!
//! ## What a crash can lose
//!
//! Every spool record is written to the kernel with one `write` before `send` returns (or,
//! for failed deliveries, inside the delivery report), so killing the process (`SIGKILL`,
//! OOM killer, panic with abort) never loses spooled events. The `spool.fsync` policy only
//! matters for a power loss or kernel crash: up to N−1 records with `every: N`, anything
//! the kernel had not written back with `never`, nothing with `always`.
//!
//! Without `write_ahead` (the default), what lives only in memory is lost on a kill: the
//! messages in librdkafka's queues that the broker has not acknowledged yet. That is
//! [`Metrics::in_flight`] at the moment of the kill — in steady state about the event rate
//! times the acknowledgement latency (a few milliseconds' worth: `linger.ms` is 5 plus the
//! broker round trip), at most `queue.buffering.max.messages` (librdkafka default
//! 100 000) / `queue.buffering.max.kbytes` (1 GiB); during an outage, until
//! `unreachable_after_ms` moves them to the spool, or up to `message_timeout_ms` if the
//! broker hangs without dropping connections. Lower these settings to lose less.
//!
//! With `spool.write_ahead = true`, every event is written to the spool before it is
//! produced and released only when acknowledged: a kill loses nothing (the next start
//! replays what was not acknowledged, so some events can be sent twice), at the cost of a
//! `write` per event and lower throughput.
//!
//! # Spool format
//!
//! Segment files `<position>.seg` in `spool.dir` hold length-prefixed records with a
//! CRC32; a damaged record (bad CRC or framing, a tail truncated by a crash) is skipped,
//! counted in `corrupt_spool_records`, logged, and reading resumes at the next valid record.
//! The total size is bounded by `spool.max_bytes`; `spool.full_policy` decides what happens
//! beyond ([`FullPolicy`]). The spool stores the filtered message, so payloads removed by
//! the privacy filter never reach the disk either.
#![warn(missing_docs)]

mod config;
mod filter;
mod metrics;
mod sink;
mod spool;

use std::fmt;

pub use config::{
    Compression, FsyncPolicy, FullPolicy, KafkaConfig, KeyField, SaslMechanism, Secret,
    SecurityConfig, SecurityProtocol, SpoolConfig, TopicConfig, MY_NUMBER_PATTERN,
};
pub use metrics::{LatencySummary, Metrics};
pub use sink::KafkaSink;

/// One event to publish. All fields are borrowed; `send` copies what it keeps.
#[derive(Clone, Copy, Debug)]
pub struct OutEvent<'a> {
    /// Event type (`alert`, `flow`, `dns`, …): selects the topic.
    pub event_type: &'a str,
    /// Unique id of the event; the `event_id` header, for deduplication downstream.
    pub event_id: &'a str,
    /// The event as one JSON object.
    pub json: &'a str,
    /// Source IP (message key with [`KeyField::SrcIp`]).
    pub src_ip: Option<&'a str>,
    /// Flow id (message key with [`KeyField::FlowId`]).
    pub flow_id: Option<u64>,
    /// Community ID (message key with [`KeyField::CommunityId`]).
    pub community_id: Option<&'a str>,
}

/// Errors of the sink.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// Invalid configuration.
    Config(String),
    /// Spool I/O error.
    Io(std::io::Error),
    /// librdkafka refused to create a client.
    Kafka(rdkafka::error::KafkaError),
    /// The event can never be delivered (e.g. larger than `message.max.bytes`); it was
    /// written to the dead-letter file `rejected.jsonl` in the spool directory (or, if
    /// that failed too, counted in `dead_letter_failed`).
    Rejected(String),
    /// The sink is shutting down.
    Closed,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Config(m) => write!(f, "invalid Kafka sink configuration: {m}"),
            Error::Io(e) => write!(f, "Kafka spool I/O error: {e}"),
            Error::Kafka(e) => write!(f, "Kafka client error: {e}"),
            Error::Rejected(m) => write!(f, "event rejected: {m}"),
            Error::Closed => f.write_str("Kafka sink is shut down"),
        }
    }
}

impl Error {
    /// Whether this error concerns one event only and the sink goes on: the event was
    /// rejected for good ([`Error::Rejected`]: kept in `rejected.jsonl`, or counted in
    /// `dead_letter_failed` when even that failed) or could not be spooled ([`Error::Io`]
    /// from [`KafkaSink::send`]: counted in `dropped_io_error`). Both are logged and
    /// counted in [`Metrics`]; a caller must not stop its other outputs for them.
    pub fn is_per_event(&self) -> bool {
        matches!(self, Error::Rejected(_) | Error::Io(_))
    }
}

// The Display of `Io` and `Kafka` already includes the inner error's text, so it is not
// also returned as `source` (an error chain printed with its causes would repeat it).
impl std::error::Error for Error {}
