//! `zonewatch aggregate`: the Kafka shell around the correlation core
//! (`zonewatch_aggregate::Correlator`). It consumes the sensors' alert and stats topics in a
//! consumer group, feeds every accepted event to the core, publishes the incidents, and
//! commits offsets only after the incidents produced so far are acknowledged by the broker.
//! After a restart or a rebalance it rebuilds the core's state by replaying up to
//! `aggregate.replay-messages` messages before each partition's committed offset, without
//! publishing again what those messages produced. Design and reasons: docs/aggregate.md.

use anyhow::{bail, Context as _};
use clap::Args;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::message::{BorrowedMessage, Header, Headers as _, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::{ClientConfig, ClientContext, Message, Offset, TopicPartitionList};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use zonewatch_aggregate::{
    parse_event, AggregateConfig, Correlator, Event, Headers, Incident, Reject,
};
use zonewatch_config::{Config, Kind, Node};
use zonewatch_kafka::KafkaConfig;

/// `zonewatch aggregate` options.
#[derive(Args, Clone)]
pub struct AggregateArgs {
    /// Brokers (comma-separated host:port); TLS/SASL from the `kafka:` section.
    #[arg(long, value_name = "BROKERS")]
    kafka: String,
    /// Consumer group (default `aggregate.group`, `zonewatch-aggregate`): instances in one
    /// group share the partitions.
    #[arg(long, value_name = "NAME")]
    group: Option<String>,
    /// Configuration file (YAML): the `kafka:` and `aggregate:` sections are read.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Override any configuration key, e.g. --set aggregate.multi-tenant.min-tenants=3.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
}

/// An event from further in the future than this (by the wall clock) is refused: one bad
/// timestamp would otherwise move the correlator's time on and close every window.
const MAX_FUTURE_US: i64 = 86_400 * 1_000_000;

/// The `aggregate:` section (a YAML tree) as JSON for serde: `-` becomes `_` in keys except
/// below `sensors` (sensor names), and scalars become numbers or booleans where the
/// defaults hold one.
fn section_json(
    node: &Node,
    template: Option<&serde_json::Value>,
    path: &str,
) -> anyhow::Result<serde_json::Value> {
    Ok(match &node.kind {
        Kind::Scalar(raw) => match template {
            Some(serde_json::Value::Number(_)) => {
                if let Ok(n) = raw.parse::<u64>() {
                    n.into()
                } else if let Ok(f) = raw.parse::<f64>() {
                    f.into()
                } else {
                    bail!(
                        "aggregate.{path} (line {}): {raw:?} is not a number",
                        node.line
                    )
                }
            }
            Some(serde_json::Value::Bool(_)) => match raw.as_str() {
                "true" | "yes" | "on" => true.into(),
                "false" | "no" | "off" => false.into(),
                _ => bail!(
                    "aggregate.{path} (line {}): {raw:?} is not true or false",
                    node.line
                ),
            },
            _ => raw.as_str().into(),
        },
        Kind::Seq(_) => bail!(
            "aggregate.{path} (line {}): a list is not expected here",
            node.line
        ),
        Kind::Map(entries) => {
            let names = path == "sensors";
            let mut out = serde_json::Map::new();
            for (key, _, child) in entries {
                let name = if names {
                    key.clone()
                } else {
                    key.replace('-', "_")
                };
                let child_path = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                let t = if names {
                    None
                } else {
                    template.and_then(|t| t.get(&name))
                };
                out.insert(name, section_json(child, t, &child_path)?);
            }
            serde_json::Value::Object(out)
        }
    })
}

/// The configuration file with the overrides, then the two sections typed.
fn load(a: &AggregateArgs) -> anyhow::Result<(AggregateConfig, KafkaConfig)> {
    let (mut agg, kafka) = load_sections(&a.config, &a.set, &a.kafka)?;
    if let Some(g) = &a.group {
        agg.group = g.clone();
    }
    Ok((agg, kafka))
}

/// The `aggregate:` and `kafka:` sections of a configuration file with `--set` overrides
/// (also used by `zonewatch report --kafka`).
pub fn load_sections(
    config: &Option<PathBuf>,
    set: &[String],
    brokers: &str,
) -> anyhow::Result<(AggregateConfig, KafkaConfig)> {
    let mut cfg = match config {
        Some(p) => {
            let (c, warnings) = Config::from_file(p).map_err(|e| anyhow::anyhow!("{e}"))?;
            for w in warnings {
                crate::say(crate::Say::Warning, format_args!("{w}"));
            }
            c
        }
        None => Config::default(),
    };
    for kv in set {
        if let Some(w) = cfg.apply_override(kv).map_err(|e| anyhow::anyhow!("{e}"))? {
            crate::say(crate::Say::Warning, format_args!("{w}"));
        }
    }
    let agg = section(&cfg)?;
    let kafka = crate::kafka_sink::config(&cfg, Some(brokers), None)?;
    Ok((agg, kafka))
}

/// The `aggregate:` section typed and checked (also by `zonewatch config check`).
pub fn section(cfg: &Config) -> anyhow::Result<AggregateConfig> {
    let defaults =
        serde_json::to_value(AggregateConfig::default()).context("aggregate defaults")?;
    let root = match &cfg.aggregate {
        Some(section) => section_json(section, Some(&defaults), "")?,
        None => serde_json::Value::Object(Default::default()),
    };
    let mut agg: AggregateConfig =
        serde_json::from_value(root).context("aggregate section of the configuration")?;
    if agg.name.is_empty() {
        agg.name = format!("{}-aggregate", cfg.sensor.name);
    }
    agg.validate().map_err(|e| anyhow::anyhow!(e))?;
    Ok(agg)
}

/// Delivery outcomes of the incident producer since the last commit.
#[derive(Default)]
struct Deliveries {
    failed: AtomicU64,
    delivered: AtomicU64,
}

struct ProducerCtx(Arc<Deliveries>);

impl ClientContext for ProducerCtx {}

impl ProducerContext for ProducerCtx {
    type DeliveryOpaque = ();
    fn delivery(&self, r: &DeliveryResult<'_>, _: ()) {
        match r {
            Ok(_) => self.0.delivered.fetch_add(1, Ordering::Relaxed),
            Err((e, _)) => {
                tracing::error!(error = %e, "incident not delivered");
                self.0.failed.fetch_add(1, Ordering::Relaxed)
            }
        };
    }
}

type IncidentProducer = BaseProducer<ProducerCtx>;

/// What the consumer's rebalance callbacks share with the loop.
struct Shared {
    producer: Arc<IncidentProducer>,
    deliveries: Arc<Deliveries>,
    replay_messages: u64,
    /// Next offset to commit per (topic, partition): one past the last message handled.
    positions: Mutex<HashMap<(String, i32), i64>>,
    /// Per (topic, partition): messages below this offset are a replay (state only).
    replay_until: Mutex<HashMap<(String, i32), i64>>,
    /// Set when a delivery failed: nothing is committed any more, the process exits and
    /// a restart replays from the last good commit.
    broken: AtomicBool,
    assigned: AtomicU64,
}

impl Shared {
    /// Waits for every incident produced so far to be acknowledged, then commits the
    /// positions of `only` (all when None). False when that was not possible.
    fn commit(
        &self,
        consumer: &BaseConsumer<ConsumerCtx>,
        only: Option<&TopicPartitionList>,
    ) -> bool {
        if self.broken.load(Ordering::Relaxed) {
            return false;
        }
        if let Err(e) = self.producer.flush(Duration::from_secs(30)) {
            tracing::warn!(error = %e, "incidents not yet acknowledged; offsets not committed");
            return false;
        }
        if self.deliveries.failed.load(Ordering::Relaxed) > 0 {
            self.broken.store(true, Ordering::Relaxed);
            return false;
        }
        let mut pos = self.positions.lock().unwrap_or_else(|e| e.into_inner());
        let mut tpl = TopicPartitionList::new();
        for ((t, p), o) in pos.iter() {
            let wanted = only.is_none_or(|l| l.find_partition(t, *p).is_some());
            if wanted {
                let _ = tpl.add_partition_offset(t, *p, Offset::Offset(*o));
            }
        }
        if tpl.count() == 0 {
            return true;
        }
        match consumer.commit(&tpl, CommitMode::Sync) {
            Ok(()) => {
                for e in tpl.elements() {
                    pos.remove(&(e.topic().to_string(), e.partition()));
                }
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, "offset commit failed; retried later");
                false
            }
        }
    }
}

struct ConsumerCtx(Arc<Shared>);

impl ClientContext for ConsumerCtx {}

impl ConsumerContext for ConsumerCtx {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, r: &Rebalance<'_>) {
        match r {
            Rebalance::Revoke(tpl) => {
                // What this instance handled of the partitions it loses is committed now
                // (after its incidents are acknowledged), so the next owner replays it as
                // state only.
                self.0.commit(consumer, Some(tpl));
                let mut pos = self.0.positions.lock().unwrap_or_else(|e| e.into_inner());
                for e in tpl.elements() {
                    pos.remove(&(e.topic().to_string(), e.partition()));
                }
            }
            Rebalance::Assign(tpl) => self.start_positions(consumer, tpl),
            Rebalance::Error(e) => tracing::warn!(error = %e, "rebalance error"),
        }
    }

    fn post_rebalance(&self, _: &BaseConsumer<Self>, r: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = r {
            self.0.assigned.fetch_add(1, Ordering::Relaxed);
            crate::say(
                crate::Say::Info,
                format_args!("aggregate: assigned {} partitions", tpl.count()),
            );
        }
    }
}

impl ConsumerCtx {
    /// Starts each assigned partition `replay-messages` before its committed offset (the
    /// state is rebuilt from there); a partition never committed starts at its beginning.
    fn start_positions(&self, consumer: &BaseConsumer<Self>, tpl: &TopicPartitionList) {
        let committed = match consumer.committed_offsets(tpl.clone(), Duration::from_secs(30)) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read committed offsets; starting at the reset position");
                return;
            }
        };
        let mut replay = self
            .0
            .replay_until
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        for mut e in tpl.elements() {
            let key = (e.topic().to_string(), e.partition());
            let at = committed.find_partition(&key.0, key.1).map(|c| c.offset());
            let start = match at {
                Some(Offset::Offset(c)) if c > 0 => {
                    replay.insert(key, c);
                    Offset::Offset(c.saturating_sub(self.0.replay_messages as i64).max(0))
                }
                _ => Offset::Beginning,
            };
            if let Err(err) = e.set_offset(start) {
                tracing::warn!(error = %err, "cannot set the start offset");
            }
        }
    }
}

/// The librdkafka settings both clients share: brokers and TLS/SASL, as the sensor's sink
/// sets them (`kafka.security.*`).
pub(crate) fn common_config(k: &KafkaConfig) -> ClientConfig {
    let sink = k.client_config();
    let mut c = ClientConfig::new();
    for key in [
        "bootstrap.servers",
        "security.protocol",
        "ssl.ca.location",
        "ssl.certificate.location",
        "ssl.key.location",
        "ssl.key.password",
        "sasl.mechanism",
        "sasl.username",
        "sasl.password",
    ] {
        if let Some(v) = sink.get(key) {
            c.set(key, v);
        }
    }
    c.set_log_level(sink.log_level);
    c
}

/// Counts of what the loop did, for the summary line.
#[derive(Default)]
struct Tally {
    consumed: u64,
    replayed: u64,
    published: u64,
    dead_lettered: u64,
    rejected: BTreeMap<&'static str, u64>,
}

struct Service {
    agg: AggregateConfig,
    core: Correlator,
    shared: Arc<Shared>,
    incidents_topic: String,
    tally: Tally,
}

fn header<'a>(m: &'a BorrowedMessage<'_>, name: &str) -> Option<&'a str> {
    let h = m.headers()?;
    h.iter()
        .find(|x| x.key == name)
        .and_then(|x| std::str::from_utf8(x.value?).ok())
}

fn wall_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

impl Service {
    /// Decides whether a message is accepted, and why not.
    fn accept(&self, m: &BorrowedMessage<'_>) -> Result<Event, Reject> {
        let value = m.payload().unwrap_or_default();
        if value.len() > self.agg.max_message_bytes {
            return Err(Reject::Oversized);
        }
        let headers = Headers {
            sensor: header(m, "sensor"),
            tenant: header(m, "tenant"),
        };
        let ev = parse_event(value, &headers)?;
        if ev.time_us() > wall_us().saturating_add(MAX_FUTURE_US) {
            return Err(Reject::BadTimestamp);
        }
        if !self.agg.sensors.is_empty()
            && self.agg.sensors.get(ev.sensor()).map(String::as_str) != Some(ev.tenant())
        {
            return Err(Reject::TenantNotAllowed);
        }
        Ok(ev)
    }

    /// One consumed message: accepted events go to the core; refused ones are counted and
    /// copied to the dead-letter topic (not during a replay: they were copied before).
    fn handle(&mut self, m: &BorrowedMessage<'_>) {
        let key = (m.topic().to_string(), m.partition());
        let replay = self
            .shared
            .replay_until
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
            .is_some_and(|until| m.offset() < *until);
        if replay {
            self.tally.replayed += 1;
        } else {
            self.tally.consumed += 1;
        }
        match self.accept(m) {
            Ok(ev) => {
                let incidents = self.core.ingest(&ev);
                if !replay {
                    for i in &incidents {
                        self.publish(i);
                    }
                }
            }
            Err(why) => {
                if !replay {
                    *self.tally.rejected.entry(why.as_str()).or_insert(0) += 1;
                    self.dead_letter(m, why);
                }
            }
        }
        if !replay {
            // Only forward: a replayed message must never move a committed offset back.
            let mut pos = self
                .shared
                .positions
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            pos.insert(key, m.offset() + 1);
        }
    }

    fn send(&self, topic: &str, key: &[u8], value: &[u8], headers: OwnedHeaders) {
        let mut rec = BaseRecord::to(topic)
            .key(key)
            .payload(value)
            .headers(headers);
        loop {
            match self.shared.producer.send(rec) {
                Ok(()) => return,
                Err((e, r)) => {
                    if e.rdkafka_error_code() == Some(rdkafka::types::RDKafkaErrorCode::QueueFull) {
                        self.shared.producer.poll(Duration::from_millis(10));
                        rec = r;
                        continue;
                    }
                    tracing::error!(error = %e, topic, "cannot produce");
                    self.shared
                        .deliveries
                        .failed
                        .fetch_add(1, Ordering::Relaxed);
                    return;
                }
            }
        }
    }

    fn publish(&mut self, i: &Incident) {
        let json = i.to_json(&self.agg.name).to_string();
        let event_id = i.event_id();
        let headers = OwnedHeaders::new_with_capacity(3)
            .insert(Header {
                key: "event_type",
                value: Some("incident"),
            })
            .insert(Header {
                key: "event_id",
                value: Some(event_id.as_str()),
            })
            .insert(Header {
                key: "sensor",
                value: Some(self.agg.name.as_str()),
            });
        self.send(
            &self.incidents_topic,
            i.id.as_bytes(),
            json.as_bytes(),
            headers,
        );
        self.tally.published += 1;
    }

    fn dead_letter(&mut self, m: &BorrowedMessage<'_>, why: Reject) {
        if self.agg.dead_letter_topic.is_empty() {
            return;
        }
        let value = m.payload().unwrap_or_default();
        // An oversized message is not copied whole: its size and origin say enough.
        let value = if why == Reject::Oversized {
            &value[..0]
        } else {
            value
        };
        let (partition, offset) = (m.partition().to_string(), m.offset().to_string());
        let size = m.payload_len().to_string();
        let mut headers = OwnedHeaders::new_with_capacity(6);
        for (k, v) in [
            ("reason", why.as_str()),
            ("source_topic", m.topic()),
            ("source_partition", partition.as_str()),
            ("source_offset", offset.as_str()),
            ("source_size", size.as_str()),
            ("sensor", header(m, "sensor").unwrap_or("")),
        ] {
            headers = headers.insert(Header {
                key: k,
                value: Some(v),
            });
        }
        let key = m.key().unwrap_or_default().to_vec();
        let topic = self.agg.dead_letter_topic.clone();
        self.send(&topic, &key, value, headers);
        self.tally.dead_lettered += 1;
    }

    /// With `idle-advance-secs`: nothing arrived for that long, so time moves on to the
    /// wall clock minus that delay (closing quiet windows, finding silent sensors).
    fn idle(&mut self, quiet: Duration) {
        let delay = self.agg.idle_advance_secs;
        if delay == 0 || quiet < Duration::from_secs(delay) {
            return;
        }
        let now = wall_us().saturating_sub((delay as i64).saturating_mul(1_000_000));
        for i in self.core.advance(now) {
            self.publish(&i);
        }
    }

    fn summary(&self) {
        let c = self.core.counters();
        let rejected: Vec<String> = self
            .tally
            .rejected
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        crate::say(
            crate::Say::Info,
            format_args!(
                "aggregate: consumed {}, replayed {}, duplicates {}, incidents published {}, rejected {} ({}), dead-lettered {}, delivery failures {}",
                self.tally.consumed,
                self.tally.replayed,
                c.duplicates,
                self.tally.published,
                self.tally.rejected.values().sum::<u64>(),
                if rejected.is_empty() { "none".to_string() } else { rejected.join(", ") },
                self.tally.dead_lettered,
                self.shared.deliveries.failed.load(Ordering::Relaxed),
            ),
        );
    }
}

/// Creates the incident and dead-letter topics when missing (as the sensor's sink does).
fn ensure_topics(k: &KafkaConfig, topics: &[&str]) {
    let Ok(admin) = common_config(k).create::<AdminClient<DefaultClientContext>>() else {
        return;
    };
    let new: Vec<NewTopic<'_>> = topics
        .iter()
        .filter(|t| !t.is_empty())
        .map(|t| {
            NewTopic::new(
                t,
                k.topic_partitions,
                TopicReplication::Fixed(k.topic_replication),
            )
        })
        .collect();
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    match futures_executor::block_on(admin.create_topics(new.iter(), &opts)) {
        Ok(results) => {
            for r in results {
                if let Err((t, e)) = r {
                    if e != rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists {
                        tracing::warn!(topic = %t, error = %e, "cannot create topic");
                    }
                }
            }
        }
        Err(e) => tracing::warn!(error = %e, "cannot create topics"),
    }
}

/// Runs the service until SIGINT or SIGTERM; exit code 0 after a clean stop (offsets of
/// everything published committed), 1 when incidents could not be delivered.
pub fn aggregate(a: AggregateArgs) -> anyhow::Result<i32> {
    let (agg, kafka) = load(&a)?;
    let inputs = [kafka.topic_for("alert"), kafka.topic_for("stats")];
    let incidents_topic = kafka
        .topics
        .get("incident")
        .and_then(|t| t.topic.clone())
        .unwrap_or_else(|| agg.incidents_topic.clone());
    if kafka.create_topics {
        // The input topics too: a group subscribed to a missing topic gets no partitions
        // until its next metadata refresh, although sensors create them on first use.
        let wanted = [
            &inputs[0],
            &inputs[1],
            &incidents_topic,
            &agg.dead_letter_topic,
        ];
        ensure_topics(&kafka, &wanted.map(String::as_str));
    }
    let deliveries = Arc::new(Deliveries::default());
    let mut pc = kafka.client_config();
    pc.set("client.id", format!("{}-producer", agg.name));
    let producer: IncidentProducer = pc
        .create_with_context(ProducerCtx(deliveries.clone()))
        .context("incident producer")?;
    let shared = Arc::new(Shared {
        producer: Arc::new(producer),
        deliveries,
        replay_messages: agg.replay_messages,
        positions: Mutex::new(HashMap::new()),
        replay_until: Mutex::new(HashMap::new()),
        broken: AtomicBool::new(false),
        assigned: AtomicU64::new(0),
    });
    let mut cc = common_config(&kafka);
    cc.set("group.id", &agg.group)
        .set("client.id", format!("{}-consumer", agg.name))
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        // An incident waits at most this long for a fetch that has nothing more to bring
        // (librdkafka's default is 500 ms); idle, it costs ten small requests a second.
        .set("fetch.wait.max.ms", "100")
        // Partitions added to the input topics are picked up within this time.
        .set("topic.metadata.refresh.interval.ms", "10000")
        .set("session.timeout.ms", agg.session_timeout_ms.to_string())
        .set(
            "fetch.message.max.bytes",
            agg.max_message_bytes.max(1 << 20).to_string(),
        );
    let consumer: BaseConsumer<ConsumerCtx> = cc
        .create_with_context(ConsumerCtx(shared.clone()))
        .context("consumer")?;
    let topics: Vec<&str> = inputs.iter().map(String::as_str).collect();
    consumer.subscribe(&topics).context("subscribe")?;
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone()).context("signal handler")?;
    }
    crate::say(
        crate::Say::Info,
        format_args!(
            "aggregate: group {}, consuming {}, publishing to {}",
            agg.group,
            topics.join(", "),
            incidents_topic
        ),
    );
    let commit_every = Duration::from_millis(agg.commit_interval_ms);
    let mut svc = Service {
        core: Correlator::new(agg.clone()),
        agg,
        shared,
        incidents_topic,
        tally: Tally::default(),
    };
    let mut last_commit = Instant::now();
    let mut last_message = Instant::now();
    while !stop.load(Ordering::Relaxed) && !svc.shared.broken.load(Ordering::Relaxed) {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                svc.handle(&m);
                last_message = Instant::now();
            }
            Some(Err(e)) => tracing::warn!(error = %e, "consumer error"),
            None => svc.idle(last_message.elapsed()),
        }
        svc.shared.producer.poll(Duration::ZERO);
        if last_commit.elapsed() >= commit_every {
            svc.shared.commit(&consumer, None);
            last_commit = Instant::now();
        }
    }
    let clean = svc.shared.commit(&consumer, None);
    svc.summary();
    if !clean {
        crate::say(
            crate::Say::Error,
            format_args!("aggregate: incidents not acknowledged; offsets since the last commit are not committed (a restart replays them)"),
        );
        return Ok(1);
    }
    Ok(0)
}
