//! Glue between the event writer and the Kafka sink: builds the sink's
//! configuration from the `kafka:` section and the command line, and adapts
//! its `send` to the writer's `EventSink`.

use anyhow::Context;
use std::io;
use std::path::PathBuf;
use zonewatch_config::{Config, Value};
use zonewatch_kafka::{KafkaConfig, KafkaSink, OutEvent};
use zonewatch_output::{EventSink, Rendered};

/// A YAML scalar as the JSON value serde expects (numbers and booleans
/// typed, everything else a string).
fn typed(s: &str) -> serde_json::Value {
    if let Ok(n) = s.parse::<i64>() {
        return n.into();
    }
    match s {
        "true" | "yes" | "on" => true.into(),
        "false" | "no" | "off" => false.into(),
        _ => s.into(),
    }
}

/// The sink's configuration: its defaults, then the `kafka:` section (keys
/// may use `-` or `_`), then the command line.
pub fn config(
    cfg: &Config,
    brokers: Option<&str>,
    spool: Option<PathBuf>,
) -> anyhow::Result<KafkaConfig> {
    let mut root = serde_json::Map::new();
    for (key, value, line) in &cfg.kafka {
        let v = match value {
            Value::Scalar(s) => typed(s),
            Value::List(l) => l.iter().map(|s| typed(s)).collect(),
            Value::ListOfMaps => {
                anyhow::bail!("kafka.{key} (line {line}): lists of maps are not supported")
            }
        };
        let parts: Vec<String> = key.split('.').map(|p| p.replace('-', "_")).collect();
        let mut cur = &mut root;
        for p in &parts[..parts.len() - 1] {
            cur = cur
                .entry(p.clone())
                .or_insert_with(|| serde_json::Value::Object(Default::default()))
                .as_object_mut()
                .with_context(|| format!("kafka.{key} (line {line}): {p} is not a section"))?;
        }
        cur.insert(parts[parts.len() - 1].clone(), v);
    }
    let mut k: KafkaConfig = serde_json::from_value(serde_json::Value::Object(root))
        .context("kafka section of the configuration")?;
    if let Some(b) = brokers {
        k.brokers = b.to_string();
    }
    if let Some(d) = spool {
        k.spool.dir = d;
    }
    k.sensor = cfg.sensor_name.clone();
    if let Some(t) = &cfg.tenant {
        k.tenant = t.clone();
    }
    Ok(k)
}

/// The Kafka sink as an event sink.
pub struct KafkaEventSink {
    pub sink: Option<KafkaSink>,
}

impl EventSink for KafkaEventSink {
    fn name(&self) -> &'static str {
        "kafka"
    }

    fn write_event(&mut self, ev: &Rendered<'_>) -> io::Result<()> {
        let Some(sink) = &self.sink else {
            return Ok(());
        };
        let src = ev.event.addr.map(|a| a.src_ip.to_string());
        let out = OutEvent {
            event_type: ev.event_type,
            event_id: ev.event_id,
            json: ev.json,
            src_ip: src.as_deref(),
            flow_id: ev.event.flow_id,
            community_id: ev.event.community_id.as_deref(),
        };
        // The sink spools what it cannot deliver; an error here means even
        // the spool refused it, which must stop the run rather than lose it.
        sink.send(&out).map_err(|e| io::Error::other(e.to_string()))
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }

    /// Delivered, retried, spooled, replayed, dropped, in flight and the
    /// event → ack latency, for the `stats` event (`kafka.*`).
    fn stats(&self) -> Option<(&'static str, serde_json::Value)> {
        let m = self.sink.as_ref()?.metrics();
        let mut v = serde_json::to_value(&m).ok()?;
        // Every stats value is a counter: the spooling flag becomes 0/1.
        if let Some(o) = v.as_object_mut() {
            o.insert("spooling".into(), u64::from(m.spooling).into());
        }
        Some(("kafka", v))
    }
}

impl Drop for KafkaEventSink {
    fn drop(&mut self) {
        if let Some(s) = self.sink.take() {
            match s.shutdown() {
                Ok(m) => eprintln!(
                    "zonewatch: kafka: delivered {}, spooled {}, replayed {}, dropped {}, in flight at exit {}; ack latency p50 {} µs, p99 {} µs",
                    m.delivered, m.spooled, m.replayed, m.dropped_spool_full, m.in_flight, m.latency.p50_us, m.latency.p99_us
                ),
                Err(e) => eprintln!("zonewatch: kafka: shutdown: {e}"),
            }
        }
    }
}
