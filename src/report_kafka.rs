//! `zonewatch report --kafka`: reads the alert, stats and incident topics from their
//! beginning up to their end at start (high watermarks), without a consumer group and
//! without committing anything.

use anyhow::Context as _;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Message, Offset, TopicPartitionList};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::report_cmd::Report;

/// Whether a sensor's message may be reported under its tenant, as the aggregator decides
/// (`sensor`/`tenant` headers agree with `host`/`tenant`, and with `aggregate.sensors` when
/// given). Incidents (no such headers' counterparts) pass.
fn trusted(m: &rdkafka::message::BorrowedMessage<'_>, sensors: &BTreeMap<String, String>) -> bool {
    use rdkafka::message::Headers as _;
    let header = |name: &str| {
        m.headers()
            .and_then(|h| h.iter().find(|x| x.key == name))
            .and_then(|x| std::str::from_utf8(x.value?).ok())
    };
    if header("event_type") == Some("incident") {
        return true;
    }
    let headers = zonewatch_aggregate::Headers {
        sensor: header("sensor"),
        tenant: header("tenant"),
    };
    match zonewatch_aggregate::parse_event(m.payload().unwrap_or_default(), &headers) {
        Ok(ev) => {
            sensors.is_empty() || sensors.get(ev.sensor()).map(String::as_str) == Some(ev.tenant())
        }
        // Not an alert or stats event (or not one the aggregator would take): the report
        // reads only what it knows, and an unparsable line is counted as skipped there.
        Err(zonewatch_aggregate::Reject::WrongType) => true,
        Err(zonewatch_aggregate::Reject::HeaderMismatch) => false,
        Err(_) => true,
    }
}

/// Reads every message present at start into `r`.
pub fn read(
    r: &mut Report,
    brokers: &str,
    config: &Option<PathBuf>,
    set: &[String],
) -> anyhow::Result<()> {
    let (agg, k) = crate::aggregate_cmd::load_sections(config, set, brokers)?;
    let mut cc = crate::aggregate_cmd::common_config(&k);
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
        if trusted(&m, &agg.sensors) {
            r.message(m.payload().unwrap_or_default());
        } else {
            r.refused += 1;
        }
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
