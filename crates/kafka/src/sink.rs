//! The sink: producer, delivery tracking, spooling and replay.

use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap};
use std::fs::OpenOptions;
use std::io::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, DeliveryResult, Header, Headers, OwnedHeaders};
use rdkafka::producer::{BaseRecord, Producer, ProducerContext, PurgeConfig, ThreadedProducer};
use rdkafka::Message;

use crate::config::{FullPolicy, KafkaConfig, KeyField};
use crate::filter::Filter;
use crate::metrics::{Counters, Latency, Metrics};
use crate::spool::{Appended, OwnedRecord, Record, Spool};
use crate::{Error, OutEvent};

type Prod = ThreadedProducer<SinkContext>;

/// Called with the `event_id` of every event the broker acknowledged.
pub(crate) type DeliveryHook = Box<dyn Fn(&str) + Send + Sync>;

/// Bookkeeping carried through librdkafka with every message.
pub(crate) struct Tracked {
    sent: Instant,
    /// Time the event spent before `sent` (in the spool), added to the latency.
    backdate_us: u64,
    /// Spool position, for spooled (replayed or write-ahead) records.
    pos: Option<u64>,
    replay: bool,
}

/// Topic and payload policy of an event type.
struct Route {
    topic: String,
    include_payload: bool,
}

/// Rate limiter for repetitive log lines: at most `burst` lines per window; the lines
/// left out are counted and reported (`suppressed`) with the next line that is logged.
#[derive(Default)]
struct Throttle {
    state: Mutex<ThrottleState>,
}

#[derive(Default)]
struct ThrottleState {
    window: Option<Instant>,
    in_window: u32,
    suppressed: u64,
}

impl Throttle {
    /// `Some(n)` when a message may be logged now; `n` were suppressed before it.
    fn allow(&self, every: Duration) -> Option<u64> {
        self.allow_burst(every, 1)
    }

    /// Like [`Throttle::allow`], letting `burst` messages through per `every`.
    fn allow_burst(&self, every: Duration, burst: u32) -> Option<u64> {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if s.window.is_none_or(|w| now.duration_since(w) >= every) {
            s.window = Some(now);
            s.in_window = 0;
        }
        if s.in_window < burst {
            s.in_window += 1;
            Some(std::mem::take(&mut s.suppressed))
        } else {
            s.suppressed += 1;
            None
        }
    }
}

const WARN_EVERY: Duration = Duration::from_secs(10);
/// Rejected events logged one by one (with their `event_id`) per `WARN_EVERY`; the rest
/// are counted in the next line and listed in the dead-letter file.
const REJECTED_LOG_BURST: u32 = 10;
const MAX_REJECTED_FILE: u64 = 64 << 20;
/// The dead-letter file in the spool directory: one JSON object per rejected event.
pub(crate) const DEAD_LETTER_FILE: &str = "rejected.jsonl";

pub(crate) struct Shared {
    cfg: KafkaConfig,
    filter: Filter,
    routes: RwLock<HashMap<String, Arc<Route>>>,
    pub(crate) counters: Counters,
    pub(crate) latency: Latency,
    /// New events go to the spool (broker considered unavailable, or a backlog exists).
    spooling: AtomicBool,
    /// Incremented whenever spooling starts, so the supervisor probes before replaying.
    spool_epoch: AtomicU64,
    spool: Mutex<Spool>,
    /// Signalled when the spool shrinks (for the `block` policy).
    space: Condvar,
    producer: RwLock<Option<Prod>>,
    /// Milliseconds since `epoch` + 1 when librdkafka last said all brokers are down; 0 when up.
    down_since: AtomicU64,
    fatal: AtomicBool,
    closing: AtomicBool,
    stop: AtomicBool,
    /// Set by `settle`: the supervisor starts no more replay steps.
    settling: AtomicBool,
    /// Held by the supervisor during a replay step, so `settle` can wait for it.
    replay_gate: Mutex<()>,
    wake: (Mutex<bool>, Condvar),
    topics_to_check: Mutex<BTreeSet<String>>,
    epoch: Instant,
    hook: Option<DeliveryHook>,
    warn_spool_full: Throttle,
    warn_delivery: Throttle,
    warn_queue_full: Throttle,
    warn_unparsable: Throttle,
    warn_rejected: Throttle,
    warn_dead_letter: Throttle,
    warn_spool_io: Throttle,
    warn_cursor: Throttle,
    /// The last spool write failed (cleared, with a log line, by the next one that works).
    spool_failing: AtomicBool,
    /// Serialises appends to the dead-letter file.
    dead_letter: Mutex<()>,
    /// Set at shutdown: messages librdkafka never reported.
    lost_at_shutdown: AtomicU64,
}

/// librdkafka context: delivery reports and client errors.
pub(crate) struct SinkContext {
    shared: Arc<Shared>,
}

impl ClientContext for SinkContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, msg: &str) {
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => tracing::error!(target: "librdkafka", fac, "{msg}"),
            RDKafkaLogLevel::Warning => tracing::warn!(target: "librdkafka", fac, "{msg}"),
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
                tracing::info!(target: "librdkafka", fac, "{msg}")
            }
            RDKafkaLogLevel::Debug => tracing::debug!(target: "librdkafka", fac, "{msg}"),
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        let sh = &self.shared;
        match error.rdkafka_error_code() {
            Some(RDKafkaErrorCode::AllBrokersDown) => {
                let now = sh.epoch.elapsed().as_millis() as u64 + 1;
                if sh
                    .down_since
                    .compare_exchange(0, now, Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok()
                {
                    tracing::warn!(reason, "Kafka: all brokers down");
                }
            }
            // librdkafka logs these itself.
            Some(
                RDKafkaErrorCode::BrokerTransportFailure
                | RDKafkaErrorCode::Resolve
                | RDKafkaErrorCode::BrokerDestroy,
            ) => tracing::debug!(error = %error, reason, "Kafka client error"),
            Some(RDKafkaErrorCode::Fatal) => {
                sh.fatal.store(true, Ordering::Release);
                tracing::error!(reason, "Kafka producer fatal error: it will be recreated");
                sh.enter_spooling("fatal producer error");
            }
            _ => tracing::warn!(error = %error, reason, "Kafka client error"),
        }
    }
}

impl ProducerContext for SinkContext {
    type DeliveryOpaque = Box<Tracked>;

    fn delivery(&self, result: &DeliveryResult<'_>, t: Box<Tracked>) {
        let sh = &self.shared;
        Counters::inc(&sh.counters.resolved);
        match result {
            Ok(m) => {
                Counters::inc(&sh.counters.delivered);
                if t.replay {
                    Counters::inc(&sh.counters.replayed);
                }
                sh.latency
                    .record(t.sent.elapsed().as_micros() as u64 + t.backdate_us);
                if sh.down_since.load(Ordering::Relaxed) != 0 {
                    sh.down_since.store(0, Ordering::Relaxed);
                }
                if let Some(pos) = t.pos {
                    sh.spool_ack(pos);
                }
                if let Some(hook) = &sh.hook {
                    if let Some(id) = header(m, "event_id") {
                        hook(&String::from_utf8_lossy(id));
                    }
                }
            }
            Err((e, m)) => {
                let code = e.rdkafka_error_code();
                if is_permanent(code) {
                    sh.reject(&record_from_message(m), &e.to_string());
                    if let Some(pos) = t.pos {
                        sh.spool_ack(pos);
                    }
                    return;
                }
                Counters::inc(&sh.counters.retried);
                if needs_new_producer(code) && !sh.fatal.swap(true, Ordering::AcqRel) {
                    tracing::warn!(error = %e, "Kafka producer identity rejected by the broker: it will be recreated");
                }
                if !matches!(
                    code,
                    Some(RDKafkaErrorCode::PurgeQueue | RDKafkaErrorCode::PurgeInflight)
                ) || !sh.closing.load(Ordering::Relaxed)
                {
                    sh.enter_spooling("delivery failed");
                }
                let kept = match t.pos {
                    Some(pos) => {
                        // Already in the spool: replayed from there.
                        sh.spool_nack(pos);
                        true
                    }
                    // Never blocks here: this is librdkafka's polling thread. A spool
                    // that is full or cannot be written logs and counts the loss itself.
                    None => sh
                        .spool_write(&record_from_message(m), true)
                        .unwrap_or(false),
                };
                if kept {
                    if let Some(n) = sh.warn_delivery.allow(WARN_EVERY) {
                        tracing::warn!(error = %e, suppressed = n, "Kafka delivery failed: event kept in the spool for replay");
                    }
                }
            }
        }
    }
}

fn header<'a>(m: &'a BorrowedMessage<'_>, name: &str) -> Option<&'a [u8]> {
    let h = m.headers()?;
    h.iter().find(|h| h.key == name).and_then(|h| h.value)
}

/// Rebuilds the spool record of a message that failed delivery.
fn record_from_message<'a>(m: &'a BorrowedMessage<'_>) -> Record<'a> {
    let s = |name: &str| -> Cow<'a, str> {
        header(m, name).map_or(Cow::Borrowed(""), String::from_utf8_lossy)
    };
    let wall_us = m
        .timestamp()
        .to_millis()
        .map_or_else(now_wall_us, |ms| (ms.max(0) as u64) * 1000);
    Record {
        wall_us,
        event_type: s("event_type"),
        event_id: s("event_id"),
        sensor: s("sensor"),
        tenant: s("tenant"),
        schema_version: s("schema_version"),
        key: m.key().map(Cow::Borrowed),
        value: Cow::Borrowed(m.payload().unwrap_or_default()),
    }
}

/// Errors that no retry can fix (the message itself is the problem); everything else is
/// retried through the spool.
fn is_permanent(code: Option<RDKafkaErrorCode>) -> bool {
    matches!(
        code,
        Some(
            RDKafkaErrorCode::MessageSizeTooLarge
                | RDKafkaErrorCode::MessageBatchTooLarge
                | RDKafkaErrorCode::InvalidTimestamp
                | RDKafkaErrorCode::InvalidMessageSize
                | RDKafkaErrorCode::InvalidMessage
                | RDKafkaErrorCode::InvalidRecord
                | RDKafkaErrorCode::BadMessage
                | RDKafkaErrorCode::InvalidArgument
        )
    )
}

/// Errors after which the idempotent producer's id/epoch is unusable on this broker
/// (e.g. it lost its producer state, or fenced us after an epoch bump): only a new
/// producer instance gets going again.
fn needs_new_producer(code: Option<RDKafkaErrorCode>) -> bool {
    matches!(
        code,
        Some(
            RDKafkaErrorCode::ProducerFenced
                | RDKafkaErrorCode::InvalidProducerEpoch
                | RDKafkaErrorCode::InvalidProducerIdMapping
                | RDKafkaErrorCode::UnknownProducerId
                | RDKafkaErrorCode::OutOfOrderSequenceNumber
                | RDKafkaErrorCode::Fatal
        )
    )
}

fn now_wall_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// A key: borrowed text or a formatted flow id.
enum KeyBuf<'a> {
    None,
    Str(&'a str),
    Num([u8; 20], usize),
}

impl KeyBuf<'_> {
    fn bytes(&self) -> Option<&[u8]> {
        match self {
            KeyBuf::None => None,
            KeyBuf::Str(s) => Some(s.as_bytes()),
            KeyBuf::Num(b, start) => Some(&b[*start..]),
        }
    }
}

fn key_of<'a>(field: KeyField, ev: &OutEvent<'a>) -> KeyBuf<'a> {
    match field {
        KeyField::SrcIp => ev.src_ip.map_or(KeyBuf::None, KeyBuf::Str),
        KeyField::CommunityId => ev.community_id.map_or(KeyBuf::None, KeyBuf::Str),
        KeyField::FlowId => match ev.flow_id {
            None => KeyBuf::None,
            Some(mut n) => {
                let mut b = [0u8; 20];
                let mut i = b.len();
                loop {
                    i -= 1;
                    b[i] = b'0' + (n % 10) as u8;
                    n /= 10;
                    if n == 0 {
                        break;
                    }
                }
                KeyBuf::Num(b, i)
            }
        },
    }
}

/// How a produce attempt failed.
enum ProduceError {
    /// Try again later (via the spool).
    Retry(KafkaError),
    /// Never deliverable.
    Permanent(KafkaError),
}

impl Shared {
    fn lock_spool(&self) -> MutexGuard<'_, Spool> {
        self.spool.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn wake_supervisor(&self) {
        let (m, c) = &self.wake;
        *m.lock().unwrap_or_else(|e| e.into_inner()) = true;
        c.notify_one();
    }

    fn enter_spooling(&self, reason: &str) {
        if !self.spooling.swap(true, Ordering::AcqRel) {
            self.spool_epoch.fetch_add(1, Ordering::AcqRel);
            tracing::warn!(
                reason,
                "Kafka sink: spooling events to disk until the broker is back"
            );
            self.wake_supervisor();
        }
    }

    fn route(&self, event_type: &str) -> Arc<Route> {
        if let Some(r) = self
            .routes
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(event_type)
        {
            return r.clone();
        }
        let r = Arc::new(Route {
            topic: self.cfg.topic_for(event_type),
            include_payload: self.cfg.include_payload(event_type),
        });
        if self.cfg.create_topics {
            self.topics_to_check
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(r.topic.clone());
            self.wake_supervisor();
        }
        self.routes
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .entry(event_type.to_string())
            .or_insert(r)
            .clone()
    }

    fn known_topics(&self) -> BTreeSet<String> {
        let mut t: BTreeSet<String> = self
            .routes
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .map(|r| r.topic.clone())
            .collect();
        // Event types zonewatch writes today; others are created when first
        // seen (a broker that auto-creates topics may win that race).
        for et in ["alert", "flow", "anomaly", "stats"] {
            t.insert(self.cfg.topic_for(et));
        }
        for et in self.cfg.topics.keys() {
            t.insert(self.cfg.topic_for(et));
        }
        t
    }

    /// Produces one message. `wait` bounds the time spent retrying on a full queue.
    #[allow(clippy::too_many_arguments)]
    fn produce(
        &self,
        topic: &str,
        key: Option<&[u8]>,
        value: &[u8],
        hdr: [&str; 5],
        wall_us: u64,
        t: Box<Tracked>,
        wait: Duration,
    ) -> Result<(), ProduceError> {
        let guard = self.producer.read().unwrap_or_else(|e| e.into_inner());
        let Some(p) = guard.as_ref() else {
            drop(t);
            return Err(ProduceError::Retry(KafkaError::Canceled));
        };
        let headers = OwnedHeaders::new_with_capacity(5)
            .insert(Header {
                key: "sensor",
                value: Some(hdr[0]),
            })
            .insert(Header {
                key: "tenant",
                value: Some(hdr[1]),
            })
            .insert(Header {
                key: "schema_version",
                value: Some(hdr[2]),
            })
            .insert(Header {
                key: "event_type",
                value: Some(hdr[3]),
            })
            .insert(Header {
                key: "event_id",
                value: Some(hdr[4]),
            });
        let mut rec: BaseRecord<'_, [u8], [u8], Box<Tracked>> =
            BaseRecord::with_opaque_to(topic, t)
                .payload(value)
                .headers(headers)
                .timestamp((wall_us / 1000) as i64);
        if let Some(k) = key {
            rec = rec.key(k);
        }
        let mut deadline: Option<Instant> = None;
        loop {
            match p.send(rec) {
                Ok(()) => {
                    Counters::inc(&self.counters.produced);
                    return Ok(());
                }
                Err((e, r)) => {
                    let code = e.rdkafka_error_code();
                    if code == Some(RDKafkaErrorCode::QueueFull)
                        && !self.stop.load(Ordering::Relaxed)
                    {
                        let d = *deadline.get_or_insert_with(|| Instant::now() + wait);
                        if Instant::now() < d {
                            rec = r;
                            thread::sleep(Duration::from_micros(200));
                            continue;
                        }
                        if let Some(n) = self.warn_queue_full.allow(WARN_EVERY) {
                            tracing::warn!(suppressed = n, "librdkafka queue full");
                        }
                    }
                    drop(r);
                    return Err(if is_permanent(code) {
                        ProduceError::Permanent(e)
                    } else {
                        ProduceError::Retry(e)
                    });
                }
            }
        }
    }

    fn produce_record(
        &self,
        rec: &Record<'_>,
        t: Box<Tracked>,
        wait: Duration,
    ) -> Result<(), ProduceError> {
        let topic = self.route(&rec.event_type);
        self.produce(
            &topic.topic,
            rec.key.as_deref(),
            &rec.value,
            [
                &rec.sensor,
                &rec.tenant,
                &rec.schema_version,
                &rec.event_type,
                &rec.event_id,
            ],
            rec.wall_us,
            t,
            wait,
        )
    }

    /// Writes a record to the spool, applying the full policy. `from_callback`: on
    /// librdkafka's thread, which must not block. `Ok(true)`: stored; `Ok(false)`:
    /// dropped by the full policy (counted, logged); `Err`: the spool could not be written
    /// (counted in `dropped_io_error`, logged).
    fn spool_write(&self, rec: &Record<'_>, from_callback: bool) -> Result<bool, Error> {
        let mut sp = self.lock_spool();
        let mut waited = Instant::now();
        loop {
            let force = (from_callback || self.closing.load(Ordering::Relaxed))
                && self.cfg.spool.full_policy == FullPolicy::Block;
            let dropped_before = sp.counters().dropped_full;
            match sp.append(rec, force) {
                Ok(Appended::At(_)) => {
                    let lost = sp.counters().dropped_full - dropped_before;
                    if lost > 0 {
                        self.warn_full(lost);
                    }
                    drop(sp);
                    self.spool_recovered();
                    self.wake_supervisor();
                    return Ok(true);
                }
                Ok(Appended::DroppedFull) => {
                    self.warn_full(1);
                    return Ok(false);
                }
                Ok(Appended::WouldBlock) => {
                    if waited.elapsed() >= WARN_EVERY {
                        tracing::warn!(
                            "spool full (full_policy = block): send() is waiting for replay"
                        );
                        waited = Instant::now();
                    }
                    sp = self
                        .space
                        .wait_timeout(sp, Duration::from_millis(200))
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
                Err(e) => {
                    drop(sp);
                    self.spool_io_error(&e, &rec.event_id);
                    return Err(Error::Io(e));
                }
            }
        }
    }

    /// An event that could not be written to the spool: counted and logged, at most one
    /// line per `WARN_EVERY` (with the number of losses left out since the last one).
    fn spool_io_error(&self, e: &std::io::Error, event_id: &str) {
        let lost = self
            .counters
            .dropped_io_error
            .fetch_add(1, Ordering::Relaxed)
            + 1;
        self.spool_failing.store(true, Ordering::Relaxed);
        if let Some(n) = self.warn_spool_io.allow(WARN_EVERY) {
            tracing::error!(
                error = %e,
                dir = %self.cfg.spool.dir.display(),
                event_id,
                lost_so_far = lost,
                suppressed = n,
                "cannot write to the Kafka spool: event lost (counted in kafka.dropped_io_error; one line per 10 s)"
            );
        }
    }

    /// A spool write worked after failures: say so once.
    fn spool_recovered(&self) {
        if self.spool_failing.swap(false, Ordering::Relaxed) {
            tracing::warn!(
                dir = %self.cfg.spool.dir.display(),
                lost_so_far = self.counters.dropped_io_error.load(Ordering::Relaxed),
                "the Kafka spool is writable again"
            );
        }
    }

    fn warn_full(&self, n: u64) {
        if let Some(s) = self.warn_spool_full.allow(WARN_EVERY) {
            tracing::warn!(
                dropped = n,
                suppressed = s,
                policy = ?self.cfg.spool.full_policy,
                "spool full: events dropped"
            );
        }
    }

    fn spool_ack(&self, pos: u64) {
        let mut sp = self.lock_spool();
        let before = sp.bytes();
        if let Err(e) = sp.ack(pos) {
            if let Some(n) = self.warn_cursor.allow(WARN_EVERY) {
                tracing::error!(error = %e, suppressed = n, "spool: cannot advance the cursor (acknowledged records may be replayed again after a restart)");
            }
        }
        if sp.bytes() < before {
            self.space.notify_all();
        }
    }

    fn spool_nack(&self, pos: u64) {
        self.lock_spool().nack(pos);
    }

    /// An event that can never be delivered: counted, logged with its `event_id` (at most
    /// `REJECTED_LOG_BURST` lines per `WARN_EVERY`) and kept in the dead-letter file
    /// `rejected.jsonl` of the spool directory. Returns whether it was kept there; if not,
    /// it is lost and counted in `dead_letter_failed`.
    fn reject(&self, rec: &Record<'_>, reason: &str) -> bool {
        Counters::inc(&self.counters.rejected);
        let path = self.cfg.spool.dir.join(DEAD_LETTER_FILE);
        match self.dead_letter(&path, rec, reason) {
            Ok(()) => {
                if let Some(n) = self
                    .warn_rejected
                    .allow_burst(WARN_EVERY, REJECTED_LOG_BURST)
                {
                    tracing::error!(
                        event_id = %rec.event_id,
                        event_type = %rec.event_type,
                        reason,
                        suppressed = n,
                        file = %path.display(),
                        "event rejected by Kafka for good: kept in the dead-letter file"
                    );
                }
                true
            }
            Err(e) => {
                Counters::inc(&self.counters.dead_letter_failed);
                if let Some(n) = self
                    .warn_dead_letter
                    .allow_burst(WARN_EVERY, REJECTED_LOG_BURST)
                {
                    tracing::error!(
                        event_id = %rec.event_id,
                        event_type = %rec.event_type,
                        reason,
                        error = %e,
                        suppressed = n,
                        file = %path.display(),
                        "event rejected by Kafka for good and not written to the dead-letter file: lost"
                    );
                }
                false
            }
        }
    }

    /// Appends one JSON line for a rejected event to the dead-letter file.
    fn dead_letter(
        &self,
        path: &std::path::Path,
        rec: &Record<'_>,
        reason: &str,
    ) -> std::io::Result<()> {
        let _guard = self.dead_letter.lock().unwrap_or_else(|e| e.into_inner());
        if std::fs::metadata(path).is_ok_and(|m| m.len() >= MAX_REJECTED_FILE) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::StorageFull,
                format!("the dead-letter file reached its limit of {MAX_REJECTED_FILE} bytes"),
            ));
        }
        let value = String::from_utf8_lossy(&rec.value);
        let value_json = if serde_json::from_str::<&serde_json::value::RawValue>(&value).is_ok() {
            value.into_owned()
        } else {
            serde_json::to_string(&value).unwrap_or_default()
        };
        let js = |v: &str| serde_json::to_string(v).unwrap_or_default();
        let line = format!(
            "{{\"time_us\":{},\"reason\":{},\"event_type\":{},\"event_id\":{},\"sensor\":{},\"tenant\":{},\"value\":{}}}\n",
            rec.wall_us,
            js(reason),
            js(&rec.event_type),
            js(&rec.event_id),
            js(&rec.sensor),
            js(&rec.tenant),
            value_json
        );
        let mut f = OpenOptions::new().create(true).append(true).open(path)?;
        // One write: a line is never interleaved with another's.
        f.write_all(line.as_bytes())
    }
}

/// The sink. See the crate documentation.
pub struct KafkaSink {
    shared: Arc<Shared>,
    supervisor: Option<JoinHandle<()>>,
    closed: bool,
}

impl std::fmt::Debug for KafkaSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaSink")
            .field("brokers", &self.shared.cfg.brokers)
            .field("spooling", &self.shared.spooling.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl KafkaSink {
    /// Validates the configuration, opens the spool, creates the producer and starts the
    /// background thread (which creates missing topics and replays the spool).
    ///
    /// Does not wait for the brokers: if they are unreachable, events are queued and, after
    /// `unreachable_after_ms`, spooled. If the spool holds events from an earlier run, new
    /// events are spooled behind them until the replay has caught up, so that they reach
    /// the broker in order.
    pub fn start(cfg: KafkaConfig) -> Result<KafkaSink, Error> {
        Self::start_inner(cfg, None)
    }

    /// Like [`KafkaSink::start`], and calls `hook` with the `event_id` of every event the
    /// broker acknowledged (on librdkafka's polling thread: keep it short). Useful to
    /// commit upstream read positions only once events are safe.
    pub fn start_with_delivery_hook(
        cfg: KafkaConfig,
        hook: impl Fn(&str) + Send + Sync + 'static,
    ) -> Result<KafkaSink, Error> {
        Self::start_inner(cfg, Some(Box::new(hook)))
    }

    fn start_inner(cfg: KafkaConfig, hook: Option<DeliveryHook>) -> Result<KafkaSink, Error> {
        cfg.validate()?;
        let filter = Filter::new(&cfg.redact).map_err(|e| Error::Config(e.to_string()))?;
        let spool = Spool::open(&cfg.spool).map_err(Error::Io)?;
        let backlog = spool.has_undispatched();
        let corrupt_at_open = spool.counters().corrupt;
        let client_config = cfg.client_config();
        let shared = Arc::new(Shared {
            filter,
            routes: RwLock::new(HashMap::new()),
            counters: Counters::default(),
            latency: Latency::new(),
            spooling: AtomicBool::new(backlog),
            spool_epoch: AtomicU64::new(1),
            spool: Mutex::new(spool),
            space: Condvar::new(),
            producer: RwLock::new(None),
            down_since: AtomicU64::new(0),
            fatal: AtomicBool::new(false),
            closing: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            settling: AtomicBool::new(false),
            replay_gate: Mutex::new(()),
            wake: (Mutex::new(false), Condvar::new()),
            topics_to_check: Mutex::new(BTreeSet::new()),
            epoch: Instant::now(),
            hook,
            warn_spool_full: Throttle::default(),
            warn_delivery: Throttle::default(),
            warn_queue_full: Throttle::default(),
            warn_unparsable: Throttle::default(),
            warn_rejected: Throttle::default(),
            warn_dead_letter: Throttle::default(),
            warn_spool_io: Throttle::default(),
            warn_cursor: Throttle::default(),
            spool_failing: AtomicBool::new(false),
            dead_letter: Mutex::new(()),
            lost_at_shutdown: AtomicU64::new(0),
            cfg,
        });
        if backlog {
            tracing::info!(
                backlog_bytes = shared.lock_spool().backlog_bytes(),
                corrupt = corrupt_at_open,
                "Kafka sink: replaying the spool before new events"
            );
        }
        let producer: Prod = client_config
            .create_with_context(SinkContext {
                shared: shared.clone(),
            })
            .map_err(Error::Kafka)?;
        *shared.producer.write().unwrap_or_else(|e| e.into_inner()) = Some(producer);
        let admin = if shared.cfg.create_topics {
            let admin: AdminClient<DefaultClientContext> =
                client_config.create().map_err(Error::Kafka)?;
            Some(admin)
        } else {
            None
        };
        let mut sink = KafkaSink {
            shared: shared.clone(),
            supervisor: None,
            closed: false,
        };
        // Create the built-in topics now when the brokers answer quickly, so the first
        // events do not wait for them.
        if let Some(admin) = &admin {
            let sup = Supervisor::new(shared.clone(), None);
            match sup.probe(Duration::from_secs(3)) {
                Some(md_topics) => {
                    let known = shared.known_topics();
                    ensure_topics(&shared, admin, &md_topics, &known);
                    // Load the topics' metadata into the producer now, so the first events
                    // do not wait for it.
                    if let Some(p) = shared
                        .producer
                        .read()
                        .unwrap_or_else(|e| e.into_inner())
                        .as_ref()
                    {
                        for t in &known {
                            let _ = p.client().fetch_metadata(Some(t), Duration::from_secs(2));
                        }
                    }
                }
                None => tracing::warn!(
                    brokers = %shared.cfg.brokers,
                    "Kafka brokers not reachable at start; events will be queued and spooled"
                ),
            }
        }
        let admin_for_thread = admin;
        sink.supervisor = Some(
            thread::Builder::new()
                .name("zw-kafka-supervisor".into())
                .spawn(move || Supervisor::new(shared, admin_for_thread).run())
                .map_err(Error::Io)?,
        );
        Ok(sink)
    }

    /// Hands one event to the sink. Never blocks on the network: the event is queued in
    /// librdkafka, or written to the spool when the broker is unavailable or the queue stays
    /// full for `queue_full_wait_ms`. Blocks only under `full_policy = block` with a full
    /// spool.
    ///
    /// Returns an error when the event did not go on its way to the broker: the spool
    /// could not be written ([`Error::Io`]: lost, counted in `dropped_io_error`), the event
    /// can never be delivered ([`Error::Rejected`], e.g. larger than `message.max.bytes`:
    /// kept in the dead-letter file `rejected.jsonl` and counted in `rejected`, or lost and
    /// counted in `dead_letter_failed` when even that file cannot be written), or the sink
    /// is shutting down ([`Error::Closed`]). The first two concern this event only
    /// ([`Error::is_per_event`]): the sink goes on. A drop because the spool is full is not
    /// an error: it follows the configured policy and is counted and logged.
    pub fn send(&self, ev: &OutEvent<'_>) -> Result<(), Error> {
        let sh = &*self.shared;
        if sh.closing.load(Ordering::Relaxed) {
            return Err(Error::Closed);
        }
        let sent = Instant::now();
        Counters::inc(&sh.counters.accepted.0);
        let route = sh.route(ev.event_type);
        let filtered = sh.filter.apply(ev.json, route.include_payload);
        if filtered.unparsable {
            if let Some(n) = sh.warn_unparsable.allow(WARN_EVERY) {
                tracing::warn!(
                    event_id = ev.event_id,
                    suppressed = n,
                    "event JSON does not parse: sent without payload filtering"
                );
            }
        }
        let key = key_of(sh.cfg.key, ev);
        let wall_us = now_wall_us();
        let cfg = &sh.cfg;
        let hdr = [
            cfg.sensor.as_str(),
            cfg.tenant.as_str(),
            cfg.schema_version.as_str(),
            ev.event_type,
            ev.event_id,
        ];
        let record = || Record {
            wall_us,
            event_type: Cow::Borrowed(ev.event_type),
            event_id: Cow::Borrowed(ev.event_id),
            sensor: Cow::Borrowed(&cfg.sensor),
            tenant: Cow::Borrowed(&cfg.tenant),
            schema_version: Cow::Borrowed(&cfg.schema_version),
            key: key.bytes().map(Cow::Borrowed),
            value: Cow::Borrowed(filtered.json.as_bytes()),
        };
        if cfg.spool.write_ahead {
            return self.send_write_ahead(&record(), &route, sent);
        }
        let wait = Duration::from_millis(cfg.queue_full_wait_ms);
        loop {
            if !sh.spooling.load(Ordering::Acquire) {
                let t = Box::new(Tracked {
                    sent,
                    backdate_us: 0,
                    pos: None,
                    replay: false,
                });
                match sh.produce(
                    &route.topic,
                    key.bytes(),
                    filtered.json.as_bytes(),
                    hdr,
                    wall_us,
                    t,
                    wait,
                ) {
                    Ok(()) => return Ok(()),
                    Err(ProduceError::Permanent(e)) => {
                        sh.reject(&record(), &e.to_string());
                        return Err(Error::Rejected(e.to_string()));
                    }
                    Err(ProduceError::Retry(e)) => {
                        if e.rdkafka_error_code() == Some(RDKafkaErrorCode::QueueFull) {
                            sh.enter_spooling("librdkafka queue full");
                        } else {
                            sh.enter_spooling("produce failed");
                        }
                        Counters::inc(&sh.counters.retried);
                    }
                }
            }
            // Spool, unless the replayer caught up in the meantime.
            {
                let sp = sh.lock_spool();
                if !sh.spooling.load(Ordering::Acquire) {
                    continue;
                }
                drop(sp);
            }
            return sh.spool_write(&record(), false).map(|_| ());
        }
    }

    fn send_write_ahead(
        &self,
        rec: &Record<'_>,
        route: &Route,
        sent: Instant,
    ) -> Result<(), Error> {
        let sh = &*self.shared;
        let mut sp = sh.lock_spool();
        loop {
            let appended = if sh.spooling.load(Ordering::Acquire) {
                sp.append(
                    rec,
                    sh.closing.load(Ordering::Relaxed)
                        && sh.cfg.spool.full_policy == FullPolicy::Block,
                )
                .map(|a| (a, false))
            } else {
                sp.append_dispatch(rec)
            };
            match appended {
                Ok((Appended::At(pos), dispatched)) => {
                    sh.spool_recovered();
                    if !dispatched {
                        drop(sp);
                        sh.wake_supervisor();
                        return Ok(());
                    }
                    let t = Box::new(Tracked {
                        sent,
                        backdate_us: 0,
                        pos: Some(pos),
                        replay: false,
                    });
                    return match sh.produce(
                        &route.topic,
                        rec.key.as_deref(),
                        &rec.value,
                        [
                            &rec.sensor,
                            &rec.tenant,
                            &rec.schema_version,
                            &rec.event_type,
                            &rec.event_id,
                        ],
                        rec.wall_us,
                        t,
                        Duration::ZERO,
                    ) {
                        Ok(()) => Ok(()),
                        Err(ProduceError::Permanent(e)) => {
                            sp.undispatch_last(pos);
                            // Skip it in the spool: acknowledge it as handled.
                            let _ = sp.read_batch(1, usize::MAX).map(|b| {
                                for (p, _) in b {
                                    let _ = sp.ack(p);
                                }
                            });
                            drop(sp);
                            sh.reject(rec, &e.to_string());
                            Err(Error::Rejected(e.to_string()))
                        }
                        Err(ProduceError::Retry(_)) => {
                            sp.undispatch_last(pos);
                            drop(sp);
                            sh.enter_spooling("librdkafka queue full or produce failed");
                            Ok(())
                        }
                    };
                }
                Ok((Appended::DroppedFull, _)) => {
                    drop(sp);
                    sh.warn_full(1);
                    return Ok(());
                }
                Ok((Appended::WouldBlock, _)) => {
                    sp = sh
                        .space
                        .wait_timeout(sp, Duration::from_millis(200))
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
                Err(e) => {
                    drop(sp);
                    sh.spool_io_error(&e, &rec.event_id);
                    return Err(Error::Io(e));
                }
            }
        }
    }

    /// A snapshot of the counters. Takes a few locks and computes the latency percentiles:
    /// fine to call every second or so, not once per event.
    pub fn metrics(&self) -> Metrics {
        self.shared.metrics()
    }

    /// Brings the counters to their final state for the events sent so far, without
    /// closing the sink: waits up to `flush_timeout_ms` for librdkafka to deliver what it
    /// holds, then moves what is still undelivered to the spool (its delivery fails as
    /// purged, and the report spools it; new events then go to the spool too). The replay
    /// of the spool stops here (what is left is replayed by the next start). Afterwards
    /// [`Metrics::in_flight`] is 0 and every event sent so far is counted as delivered,
    /// spooled, rejected or lost. Events can still be sent (e.g. a last stats event);
    /// [`KafkaSink::close`] follows.
    pub fn settle(&self) {
        if self.closed {
            return;
        }
        let sh = &*self.shared;
        sh.settling.store(true, Ordering::Release);
        // A replay step under way finishes first; no other starts.
        drop(sh.replay_gate.lock().unwrap_or_else(|e| e.into_inner()));
        let guard = sh.producer.read().unwrap_or_else(|e| e.into_inner());
        if let Some(p) = guard.as_ref() {
            if p.flush(Duration::from_millis(sh.cfg.flush_timeout_ms))
                .is_err()
            {
                tracing::warn!(
                    undelivered = p.in_flight_count(),
                    "Kafka flush timed out at the end of the run: undelivered events go to the spool"
                );
                p.purge(PurgeConfig::default().queue().inflight());
                let _ = p.flush(Duration::from_secs(2));
            }
        }
    }

    /// Stops the sink: waits up to `flush_timeout_ms` for outstanding deliveries, moves
    /// whatever is still undelivered to the spool, syncs the spool and returns the final
    /// metrics. Dropping the sink does the same, discarding errors.
    pub fn shutdown(mut self) -> Result<Metrics, Error> {
        self.close()
    }

    /// [`KafkaSink::shutdown`] in place: afterwards [`KafkaSink::send`] returns
    /// [`Error::Closed`] and [`KafkaSink::metrics`] returns the final counters (also when
    /// closing the spool failed, e.g. its cursor could not be written on a full disk).
    /// Calling it again returns the final counters.
    pub fn close(&mut self) -> Result<Metrics, Error> {
        if self.closed {
            return Ok(self.metrics());
        }
        let (m, r) = self.stop();
        r.map(|()| m)
    }

    /// The dead-letter file: events the broker can never accept, one JSON object per
    /// line (`time_us`, `reason`, `event_type`, `event_id`, `sensor`, `tenant`, `value`).
    pub fn dead_letter_path(&self) -> std::path::PathBuf {
        self.shared.cfg.spool.dir.join(DEAD_LETTER_FILE)
    }

    /// Whether [`KafkaSink::close`] (or `shutdown`) was called.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    fn stop(&mut self) -> (Metrics, Result<(), Error>) {
        self.closed = true;
        let sh = &*self.shared;
        sh.closing.store(true, Ordering::Release);
        sh.stop.store(true, Ordering::Release);
        sh.space.notify_all();
        sh.wake_supervisor();
        if let Some(h) = self.supervisor.take() {
            let _ = h.join();
        }
        let producer = sh
            .producer
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(p) = producer {
            let timeout = Duration::from_millis(sh.cfg.flush_timeout_ms);
            if p.flush(timeout).is_err() {
                tracing::warn!(
                    undelivered = p.in_flight_count(),
                    "Kafka flush timed out at shutdown: undelivered events go to the spool"
                );
                p.purge(PurgeConfig::default().queue().inflight());
                let _ = p.flush(Duration::from_secs(2));
            }
            drop(p);
        }
        let res = sh.lock_spool().close();
        // Every message librdkafka took was reported by now (dropping the producer purges
        // and flushes it); what was not is gone with it.
        let produced = sh.counters.produced.load(Ordering::Relaxed);
        let resolved = sh.counters.resolved.load(Ordering::Relaxed);
        let unresolved = produced.saturating_sub(resolved);
        sh.lost_at_shutdown.store(unresolved, Ordering::Relaxed);
        if unresolved > 0 {
            tracing::error!(
                lost = unresolved,
                "Kafka sink: librdkafka never reported these messages at shutdown: lost"
            );
        }
        let m = sh.metrics();
        tracing::info!(
            delivered = m.delivered,
            spooled = m.spooled,
            backlog_bytes = m.spool_backlog_bytes,
            lost = m.lost(),
            "Kafka sink stopped"
        );
        (m, res.map_err(Error::Io))
    }
}

impl Drop for KafkaSink {
    fn drop(&mut self) {
        if !self.closed {
            let _ = self.stop();
        }
    }
}

impl Shared {
    fn metrics(&self) -> Metrics {
        let (sc, bytes, backlog) = {
            let sp = self.lock_spool();
            (sp.counters(), sp.bytes(), sp.backlog_bytes())
        };
        let in_flight = self
            .producer
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map_or(0, |p| p.in_flight_count().max(0) as u64);
        let c = &self.counters;
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Metrics {
            accepted: g(&c.accepted.0),
            delivered: g(&c.delivered),
            retried: g(&c.retried),
            spooled: sc.appended,
            replayed: g(&c.replayed),
            dropped_spool_full: sc.dropped_full,
            dropped_io_error: g(&c.dropped_io_error),
            corrupt_spool_records: sc.corrupt,
            rejected: g(&c.rejected),
            dead_letter_failed: g(&c.dead_letter_failed),
            lost_at_shutdown: self.lost_at_shutdown.load(Ordering::Relaxed),
            in_flight,
            spool_bytes: bytes,
            spool_backlog_bytes: backlog,
            spooling: self.spooling.load(Ordering::Relaxed),
            latency: self.latency.summary(),
        }
    }
}

/// Creates the topics of `wanted` that are not in `existing`.
fn ensure_topics(
    sh: &Shared,
    admin: &AdminClient<DefaultClientContext>,
    existing: &BTreeSet<String>,
    wanted: &BTreeSet<String>,
) {
    let missing: Vec<&String> = wanted.iter().filter(|t| !existing.contains(*t)).collect();
    if missing.is_empty() {
        return;
    }
    let new: Vec<NewTopic<'_>> = missing
        .iter()
        .map(|t| {
            NewTopic::new(
                t,
                sh.cfg.topic_partitions,
                TopicReplication::Fixed(sh.cfg.topic_replication),
            )
        })
        .collect();
    let opts = AdminOptions::new()
        .operation_timeout(Some(Duration::from_secs(5)))
        .request_timeout(Some(Duration::from_secs(5)));
    match futures_executor::block_on(admin.create_topics(new.iter(), &opts)) {
        Ok(results) => {
            for r in results {
                match r {
                    Ok(t) => {
                        tracing::info!(topic = %t, partitions = sh.cfg.topic_partitions, "created Kafka topic")
                    }
                    Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                    Err((t, e)) => {
                        tracing::warn!(topic = %t, error = %e, "cannot create Kafka topic")
                    }
                }
            }
        }
        Err(e) => tracing::warn!(error = %e, "cannot create Kafka topics"),
    }
}

/// The background thread: health probes, topic creation, replay, producer recreation.
struct Supervisor {
    sh: Arc<Shared>,
    admin: Option<AdminClient<DefaultClientContext>>,
    healthy_epoch: u64,
    last_probe: Option<Instant>,
    last_topic_check: Instant,
    /// `delivered` when the current replay started.
    delivered_mark: u64,
    /// A replay failed without a single delivery although the brokers answer probes: the
    /// producer is likely stuck (e.g. a broker that lost its producer state keeps
    /// rejecting our producer id); recreate it before the next attempt.
    suspect_producer: bool,
    /// `spool_epoch` when the current producer was created.
    producer_epoch: u64,
}

enum Step {
    Progress,
    Wait,
    NeedProbe,
    Idle,
}

impl Supervisor {
    fn new(sh: Arc<Shared>, admin: Option<AdminClient<DefaultClientContext>>) -> Supervisor {
        Supervisor {
            sh,
            admin,
            healthy_epoch: 0,
            last_probe: None,
            last_topic_check: Instant::now(),
            delivered_mark: 0,
            suspect_producer: false,
            producer_epoch: 0,
        }
    }

    /// Metadata request; the names of the existing topics on success.
    fn probe(&self, timeout: Duration) -> Option<BTreeSet<String>> {
        let guard = self.sh.producer.read().unwrap_or_else(|e| e.into_inner());
        let p = guard.as_ref()?;
        match p.client().fetch_metadata(None, timeout) {
            Ok(md) => {
                let topics = md
                    .topics()
                    .iter()
                    .filter(|t| t.error().is_none() && !t.partitions().is_empty())
                    .map(|t| t.name().to_string())
                    .collect();
                self.sh.down_since.store(0, Ordering::Relaxed);
                Some(topics)
            }
            Err(e) => {
                tracing::debug!(error = %e, "Kafka probe failed");
                None
            }
        }
    }

    fn probe_and_prepare(&mut self) -> bool {
        let timeout = Duration::from_millis(self.sh.cfg.probe_interval_ms.clamp(200, 5000));
        self.last_probe = Some(Instant::now());
        match self.probe(timeout) {
            Some(existing) => {
                if let Some(admin) = &self.admin {
                    ensure_topics(&self.sh, admin, &existing, &self.sh.known_topics());
                }
                true
            }
            None => false,
        }
    }

    fn probe_due(&self) -> bool {
        self.last_probe
            .is_none_or(|t| t.elapsed() >= Duration::from_millis(self.sh.cfg.probe_interval_ms))
    }

    fn run(mut self) {
        let sh = self.sh.clone();
        let tick = Duration::from_millis(self.sh.cfg.probe_interval_ms.clamp(10, 100));
        while !sh.stop.load(Ordering::Acquire) {
            if sh.fatal.load(Ordering::Acquire) {
                self.recreate_producer("fatal producer error");
            }
            self.check_unreachable();
            self.check_new_topics();
            let spooling = sh.spooling.load(Ordering::Acquire);
            let has_work = spooling || sh.lock_spool().has_undispatched();
            if has_work {
                let epoch = sh.spool_epoch.load(Ordering::Acquire);
                if self.healthy_epoch != epoch && self.probe_due() && self.probe_and_prepare() {
                    if self.producer_epoch < epoch {
                        // The producer lived through the failure that started this spooling
                        // period: replay with a fresh one (see `check_unreachable`).
                        self.recreate_producer("producer from before the outage");
                    }
                    if self.suspect_producer {
                        tracing::warn!("Kafka replay made no progress although the brokers answer: recreating the producer");
                        self.suspect_producer = false;
                        self.recreate_producer("replay made no progress");
                    }
                    tracing::info!("Kafka brokers reachable: replaying the spool");
                    self.healthy_epoch = sh.spool_epoch.load(Ordering::Acquire);
                    self.delivered_mark = sh.counters.delivered.load(Ordering::Relaxed);
                }
                if self.healthy_epoch == epoch {
                    self.replay();
                }
            } else if sh.down_since.load(Ordering::Relaxed) != 0 && self.probe_due() {
                // Clears the flag when the brokers answer again before anything failed.
                self.probe_and_prepare();
            } else if self.sh.cfg.create_topics
                && self.last_topic_check.elapsed() >= Duration::from_secs(30)
            {
                self.last_topic_check = Instant::now();
                self.probe_and_prepare();
            }
            let (m, c) = &sh.wake;
            let mut woken = m.lock().unwrap_or_else(|e| e.into_inner());
            if !*woken {
                woken = c
                    .wait_timeout(woken, tick)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
            *woken = false;
        }
    }

    fn check_new_topics(&mut self) {
        let Some(admin) = &self.admin else { return };
        let wanted: BTreeSet<String> = std::mem::take(
            &mut *self
                .sh
                .topics_to_check
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
        );
        if wanted.is_empty() {
            return;
        }
        match self.probe(Duration::from_secs(2)) {
            Some(existing) => ensure_topics(&self.sh, admin, &existing, &wanted),
            None => {
                // Retried with the next probe (known_topics includes them).
            }
        }
    }

    fn check_unreachable(&mut self) {
        let sh = &self.sh;
        let since = sh.down_since.load(Ordering::Relaxed);
        if since == 0 || sh.spooling.load(Ordering::Acquire) {
            return;
        }
        let down_ms = (sh.epoch.elapsed().as_millis() as u64 + 1).saturating_sub(since);
        if down_ms < sh.cfg.unreachable_after_ms {
            return;
        }
        // Confirm with a probe before switching.
        if self.probe(Duration::from_millis(500)).is_some() {
            return;
        }
        // A fresh producer for the time after the outage: dropping the old one moves what
        // waits in librdkafka's queues, and what was in flight to the dead broker, to the
        // spool now rather than after message.timeout.ms (less to lose if the process dies
        // during the outage). It also means no stale retry, with the old producer id and
        // sequence numbers, reaches a restarted broker: tansu's SQLite storage (0.6.0)
        // answers one with OutOfOrderSequenceNumber and its storage task then panics,
        // leaving a broker that accepts connections but stores nothing. A message that was
        // in flight and did reach the broker arrives twice, with the same event_id.
        self.recreate_producer("all brokers down");
    }

    fn recreate_producer(&mut self, reason: &str) {
        let sh = &self.sh;
        sh.enter_spooling(reason);
        let new: Result<Prod, _> = sh
            .cfg
            .client_config()
            .create_with_context(SinkContext { shared: sh.clone() });
        match new {
            Ok(p) => {
                let old = sh
                    .producer
                    .write()
                    .unwrap_or_else(|e| e.into_inner())
                    .replace(p);
                // Dropping purges the old producer: its messages fail and are spooled
                // (or rewound), possibly raising the flag again: clear it afterwards.
                drop(old);
                sh.fatal.store(false, Ordering::Release);
                self.producer_epoch = sh.spool_epoch.load(Ordering::Acquire);
                tracing::warn!("Kafka producer recreated");
            }
            Err(e) => tracing::error!(error = %e, "cannot recreate the Kafka producer"),
        }
    }

    /// Replays spooled records while the brokers look healthy.
    fn replay(&mut self) {
        let deadline = Instant::now() + Duration::from_millis(500);
        while !self.sh.stop.load(Ordering::Acquire) && Instant::now() < deadline {
            let sh = self.sh.clone();
            let _gate = sh.replay_gate.lock().unwrap_or_else(|e| e.into_inner());
            if sh.settling.load(Ordering::Acquire) {
                return;
            }
            match self.replay_step() {
                Step::Progress => {}
                Step::Wait => thread::sleep(Duration::from_millis(2)),
                Step::NeedProbe => {
                    if self.sh.counters.delivered.load(Ordering::Relaxed) == self.delivered_mark {
                        self.suspect_producer = true;
                    }
                    // Back off: the next attempt waits for the next probe.
                    self.healthy_epoch = 0;
                    self.last_probe = Some(Instant::now());
                    return;
                }
                Step::Idle => return,
            }
        }
    }

    fn replay_step(&mut self) -> Step {
        let sh = &self.sh;
        let max = sh.cfg.replay_max_in_flight;
        let batch: Vec<(u64, OwnedRecord)> = {
            let mut sp = sh.lock_spool();
            if sp.rewind_pending() {
                return if sp.apply_rewind() {
                    Step::NeedProbe
                } else {
                    Step::Wait
                };
            }
            let outstanding = sp.outstanding();
            if outstanding >= max {
                return Step::Wait;
            }
            match sp.read_batch((max - outstanding).min(2000), 2 << 20) {
                Ok(b) if b.is_empty() => {
                    if sp.caught_up() && sh.spooling.swap(false, Ordering::AcqRel) {
                        tracing::info!("Kafka sink: spool replayed, back to direct delivery");
                    }
                    return Step::Idle;
                }
                Ok(b) => b,
                Err(e) => {
                    tracing::error!(error = %e, "cannot read the spool");
                    return Step::Wait;
                }
            }
        };
        let now_us = now_wall_us();
        let mut failed = false;
        for (pos, rec) in batch {
            if failed || sh.stop.load(Ordering::Acquire) {
                sh.spool_nack(pos);
                failed = true;
                continue;
            }
            let t = Box::new(Tracked {
                sent: Instant::now(),
                backdate_us: now_us.saturating_sub(rec.wall_us),
                pos: Some(pos),
                replay: true,
            });
            match sh.produce_record(&rec, t, Duration::from_secs(3600)) {
                Ok(()) => {}
                Err(ProduceError::Permanent(e)) => {
                    sh.reject(&rec, &e.to_string());
                    sh.spool_ack(pos);
                }
                Err(ProduceError::Retry(e)) => {
                    tracing::debug!(error = %e, "replay produce failed");
                    sh.spool_nack(pos);
                    failed = true;
                }
            }
        }
        Step::Progress
    }
}
