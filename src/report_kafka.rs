//! `zonewatch report --kafka`: reads the alert, stats and incident topics from their
//! beginning up to their end at start (high watermarks), without a consumer group and
//! without committing anything.

use anyhow::Context as _;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use zonewatch_config::Config;

use crate::report_cmd::Report;

/// Reads every message present at start into `r`.
pub fn read(
    r: &mut Report,
    brokers: &str,
    config: &Option<PathBuf>,
    set: &[String],
) -> anyhow::Result<()> {
    let mut cfg = match config {
        Some(p) => Config::from_file(p).map_err(|e| anyhow::anyhow!("{e}"))?.0,
        None => Config::default(),
    };
    for kv in set {
        cfg.apply_override(kv).map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    let k = crate::kafka_sink::config(&cfg, Some(brokers), None)?;
    let sink = k.client_config();
    let mut cc = ClientConfig::new();
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
            cc.set(key, v);
        }
    }
    cc.set("group.id", "zonewatch-report")
        .set("enable.auto.commit", "false");
    let c: BaseConsumer = cc.create().context("consumer")?;
    let incidents = k
        .topics
        .get("incident")
        .and_then(|t| t.topic.clone())
        .unwrap_or_else(|| "zonewatch-incidents".to_string());
    let topics = [k.topic_for("alert"), k.topic_for("stats"), incidents];
    let mut tpl = TopicPartitionList::new();
    let mut end: HashMap<(String, i32), i64> = HashMap::new();
    for t in &topics {
        let md = c
            .fetch_metadata(Some(t), Duration::from_secs(10))
            .context("metadata")?;
        for mt in md.topics().iter().filter(|m| m.name() == t) {
            for p in mt.partitions() {
                let (_, high) = c
                    .fetch_watermarks(t, p.id(), Duration::from_secs(10))
                    .context("watermarks")?;
                if high > 0 {
                    end.insert((t.clone(), p.id()), high);
                    tpl.add_partition_offset(t, p.id(), Offset::Beginning)?;
                }
            }
        }
    }
    if end.is_empty() {
        return Ok(());
    }
    c.assign(&tpl).context("assign")?;
    let total: i64 = end.values().sum();
    let (mut n, mut last_say) = (0i64, Instant::now());
    // A quiet broker for this long with partitions still unread: give up with what came.
    // Once every partition reached its end at start, a second without messages ends the
    // read (what arrives meanwhile is taken too: the end offsets a broker reports may
    // count batches rather than records).
    let mut idle_since = Instant::now();
    loop {
        let idle = idle_since.elapsed();
        if idle > Duration::from_secs(30) || (end.is_empty() && idle > Duration::from_secs(1)) {
            break;
        }
        let Some(m) = c.poll(Duration::from_millis(200)) else {
            continue;
        };
        let m = m.context("consume")?;
        idle_since = Instant::now();
        r.message(m.payload().unwrap_or_default());
        n += 1;
        let key = (m.topic().to_string(), m.partition());
        if end.get(&key).is_some_and(|high| m.offset() + 1 >= *high) {
            end.remove(&key);
        }
        if last_say.elapsed() > Duration::from_secs(2) {
            crate::say(
                crate::Say::Info,
                format_args!("report: {n} of about {total} messages read"),
            );
            last_say = Instant::now();
        }
    }
    Ok(())
}
