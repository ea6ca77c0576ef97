//! Glue between the event writer and the Kafka sink: builds the sink's
//! configuration from the `kafka:` section (a YAML tree with lines, handed over
//! by the config crate with its `--set kafka.*` overrides) and the command line,
//! and adapts its `send` to the writer's `EventSink`.

use anyhow::{bail, Context};
use std::io;
use std::path::PathBuf;
use zonewatch_config::{Config, Kind, Node};
use zonewatch_kafka::{KafkaConfig, KafkaSink, Metrics, OutEvent, TopicConfig};
use zonewatch_output::{EventSink, Rendered};

/// Where a node of the `kafka:` section sits, for the JSON it becomes.
#[derive(Clone, Copy)]
enum Place<'a> {
    /// A field of the sink's configuration: what the defaults hold there, if anything.
    Field(Option<&'a serde_json::Value>),
    /// `topics:`, a mapping from event types (names, not fields) to topic settings.
    Topics,
    /// `librdkafka:`, librdkafka's own properties: names kept whole (they have dots and
    /// dashes), values strings.
    Properties,
}

/// The `kafka:` section (a YAML tree) as the JSON object serde reads into the sink's
/// configuration: `-` becomes `_` in zonewatch's own keys, and scalars become numbers or
/// booleans only where the defaults hold one there.
fn section_json(
    node: &Node,
    place: Place,
    topic_defaults: &serde_json::Value,
    path: &str,
) -> anyhow::Result<serde_json::Value> {
    match &node.kind {
        Kind::Scalar(raw) => {
            let template = match place {
                Place::Field(t) => t,
                Place::Topics | Place::Properties => None,
            };
            typed(raw, template, path, node.line)
        }
        // Every list of the section is a list of strings (`redact`).
        Kind::Seq(items) => items
            .iter()
            .map(|i| match &i.kind {
                Kind::Scalar(s) => Ok(serde_json::Value::from(s.as_str())),
                _ => bail!(
                    "kafka.{path} (line {}): lists of maps are not supported",
                    i.line
                ),
            })
            .collect(),
        Kind::Map(entries) => {
            let mut out = serde_json::Map::new();
            for (key, _, child) in entries {
                let (name, child_place) = match place {
                    Place::Properties => (key.clone(), Place::Properties),
                    Place::Topics => (key.replace('-', "_"), Place::Field(Some(topic_defaults))),
                    Place::Field(t) => {
                        let name = key.replace('-', "_");
                        let child_place = match name.as_str() {
                            "topics" if path.is_empty() => Place::Topics,
                            "librdkafka" if path.is_empty() => Place::Properties,
                            _ => Place::Field(t.and_then(|t| t.get(&name))),
                        };
                        (name, child_place)
                    }
                };
                let child_path = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                let v = section_json(child, child_place, topic_defaults, &child_path)?;
                out.insert(name, v);
            }
            Ok(serde_json::Value::Object(out))
        }
    }
}

/// A YAML scalar as the JSON value of the field it sets: numbers and booleans only
/// where the field is one (so an all-digit password, tenant or topic stays a string).
fn typed(
    raw: &str,
    template: Option<&serde_json::Value>,
    key: &str,
    line: usize,
) -> anyhow::Result<serde_json::Value> {
    Ok(match template {
        Some(serde_json::Value::Number(_)) => {
            if let Ok(n) = raw.parse::<u64>() {
                n.into()
            } else if let Ok(n) = raw.parse::<i64>() {
                n.into()
            } else {
                bail!("kafka.{key} (line {line}): {raw:?} is not a number")
            }
        }
        Some(serde_json::Value::Bool(_)) => match raw {
            "true" | "yes" | "on" => true.into(),
            "false" | "no" | "off" => false.into(),
            _ => bail!("kafka.{key} (line {line}): {raw:?} is not true or false"),
        },
        _ => raw.into(),
    })
}

/// The sink's configuration: its defaults, then the `kafka:` section (keys
/// may use `-` or `_`), then the command line.
pub fn config(
    cfg: &Config,
    brokers: Option<&str>,
    spool: Option<PathBuf>,
) -> anyhow::Result<KafkaConfig> {
    let defaults = serde_json::to_value(KafkaConfig::default()).context("kafka defaults")?;
    let topic_defaults = serde_json::to_value(TopicConfig::default()).context("kafka defaults")?;
    let root = match &cfg.kafka {
        Some(section) => section_json(section, Place::Field(Some(&defaults)), &topic_defaults, "")?,
        None => serde_json::Value::Object(Default::default()),
    };
    let mut k: KafkaConfig =
        serde_json::from_value(root).context("kafka section of the configuration")?;
    if let Some(b) = brokers {
        k.brokers = b.to_string();
    }
    if let Some(d) = spool {
        k.spool.dir = d;
    }
    k.sensor = cfg.sensor.name.clone();
    if let Some(t) = &cfg.sensor.tenant {
        k.tenant = t.clone();
    }
    Ok(k)
}

/// The Kafka sink as an event sink. Events Kafka rejects for good, and events the
/// spool cannot take, are the sink's own business (logged, counted in `kafka.*`,
/// reported by `lost()`): they never stop the other outputs.
pub struct KafkaEventSink {
    pub sink: Option<KafkaSink>,
}

impl KafkaEventSink {
    /// The stderr line at the end of a run: what was delivered, kept and lost.
    fn summary(&self, m: &Metrics) {
        let Some(s) = &self.sink else { return };
        let dead_letter = s.dead_letter_path();
        crate::say(crate::Say::Info, format_args!(
            "kafka: delivered {}, spooled {}, replayed {}, rejected {} (kept in {}), lost {} (spool full {}, spool write errors {}, dead-letter write errors {}, corrupt spool records {}, unreported at shutdown {}), in flight at exit {}; ack latency p50 {} µs, p99 {} µs",
            m.delivered,
            m.spooled,
            m.replayed,
            m.rejected,
            dead_letter.display(),
            m.lost(),
            m.dropped_spool_full,
            m.dropped_io_error,
            m.dead_letter_failed,
            m.corrupt_spool_records,
            m.lost_at_shutdown,
            m.in_flight,
            m.latency.p50_us,
            m.latency.p99_us
        ));
        if m.lost() > 0 {
            crate::say(
                crate::Say::Info,
                format_args!(
                "kafka: {} events were lost on their way to Kafka (they are in the --output file)",
                m.lost()
            ),
            );
        }
    }
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
        match sink.send(&out) {
            Ok(()) => Ok(()),
            // Rejected for good (dead-lettered) or not spooled: logged and counted by
            // the sink, reported by `lost()`; the run and the other outputs go on.
            Err(e) if e.is_per_event() => Ok(()),
            Err(zonewatch_kafka::Error::Closed) => {
                tracing::warn!(
                    event_id = ev.event_id,
                    "event written after the Kafka sink was closed: not sent to Kafka"
                );
                Ok(())
            }
            Err(e) => Err(io::Error::other(e.to_string())),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }

    /// Delivered, retried, spooled, replayed, dropped, in flight and the
    /// event → ack latency, for the `stats` event (`kafka.*`). After `close`, the
    /// final counters.
    fn stats(&self) -> Option<(&'static str, serde_json::Value)> {
        let m = self.sink.as_ref()?.metrics();
        let mut v = serde_json::to_value(&m).ok()?;
        // Every stats value is a counter: the spooling flag becomes 0/1.
        if let Some(o) = v.as_object_mut() {
            o.insert("spooling".into(), u64::from(m.spooling).into());
        }
        Some(("kafka", v))
    }

    /// Delivers what librdkafka holds (up to `flush-timeout-ms`) and spools the rest, so
    /// that the final stats event, built next, carries final counters (`in_flight` 0,
    /// drops counted).
    fn settle(&mut self) -> io::Result<()> {
        if let Some(s) = &self.sink {
            s.settle();
        }
        Ok(())
    }

    /// Shuts the Kafka sink down (delivers what it can within `flush-timeout-ms`, spools
    /// the rest) and prints the summary line; `stats()` then reports the final counters.
    /// A spool that cannot be closed cleanly (cursor not written) is logged: its records
    /// are on disk and replayed, possibly twice, by the next start.
    fn close(&mut self) -> io::Result<()> {
        let Some(s) = &mut self.sink else {
            return Ok(());
        };
        if s.is_closed() {
            return Ok(());
        }
        if let Err(e) = s.close() {
            crate::say(crate::Say::Info, format_args!("kafka: shutdown: {e}"));
        }
        let m = s.metrics();
        self.summary(&m);
        Ok(())
    }

    /// Events accepted and then lost (see `Metrics::lost`).
    fn lost(&self) -> u64 {
        self.sink.as_ref().map_or(0, |s| s.metrics().lost())
    }
}

impl Drop for KafkaEventSink {
    fn drop(&mut self) {
        let _ = self.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kafka_config(yaml: &str, set: &[&str]) -> anyhow::Result<KafkaConfig> {
        let mut cfg = Config::default();
        cfg.apply_yaml(yaml, "test.yaml")
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        for kv in set {
            cfg.apply_override(kv)
                .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        }
        config(&cfg, None, None)
    }

    #[test]
    fn librdkafka_properties_are_kept_whole_from_yaml_and_set() {
        let k = kafka_config(
            "kafka:\n  librdkafka:\n    message.max.bytes: 2000\n    queue.buffering.max.ms: 7\n",
            &["kafka.librdkafka.socket.keepalive.enable=true"],
        )
        .unwrap();
        assert_eq!(k.librdkafka["message.max.bytes"], "2000");
        assert_eq!(k.librdkafka["queue.buffering.max.ms"], "7");
        assert_eq!(k.librdkafka["socket.keepalive.enable"], "true");
        let cc = k.client_config();
        assert_eq!(cc.get("message.max.bytes"), Some("2000"));
    }

    #[test]
    fn string_fields_stay_strings_and_numbers_are_typed_by_field() {
        let k = kafka_config(
            "kafka:\n  security:\n    protocol: sasl_ssl\n    sasl-mechanism: SCRAM-SHA-512\n    username: 1001\n    password: \"0123456789\"\n  topic-prefix: 2026\n  topics:\n    alert:\n      topic: 42\n      include-payload: yes\n  redact: [\"123\", \"[0-9]{4}\"]\n",
            &[
                "kafka.flush-timeout-ms=1500",
                "kafka.spool.fsync.every=7",
                "kafka.spool.write-ahead=true",
            ],
        )
        .unwrap();
        assert_eq!(k.security.username.as_deref(), Some("1001"));
        assert_eq!(k.security.password.as_ref().unwrap().0, "0123456789");
        assert_eq!(k.topic_prefix, "2026");
        assert_eq!(k.topics["alert"].topic.as_deref(), Some("42"));
        assert!(k.topics["alert"].include_payload);
        assert_eq!(k.redact, vec!["123".to_string(), "[0-9]{4}".to_string()]);
        assert_eq!(k.flush_timeout_ms, 1500);
        assert_eq!(k.spool.fsync, zonewatch_kafka::FsyncPolicy::Every(7));
        assert!(k.spool.write_ahead);
        let k = kafka_config("", &["kafka.tenant=0042", "kafka.schema-version=2"]).unwrap();
        assert_eq!(k.tenant, "0042");
        assert_eq!(k.schema_version, "2");
    }

    #[test]
    fn a_number_field_with_text_names_the_key() {
        let e = kafka_config("", &["kafka.flush-timeout-ms=soon"]).unwrap_err();
        assert!(e.to_string().contains("kafka.flush-timeout-ms"), "{e}");
        let e = kafka_config("", &["kafka.brokerz=x"]).unwrap_err();
        assert!(format!("{e:#}").contains("brokerz"), "{e:#}");
    }

    #[test]
    fn set_overrides_the_file_and_errors_name_the_line() {
        let k = kafka_config(
            "kafka:\n  topic-prefix: a\n  spool:\n    max-bytes: 1000000\n",
            &["kafka.topic-prefix=b"],
        )
        .unwrap();
        assert_eq!(k.topic_prefix, "b");
        let e = kafka_config("kafka:\n  spool:\n    max-bytes: lots\n", &[]).unwrap_err();
        assert!(
            e.to_string().contains("kafka.spool.max-bytes (line 3)"),
            "{e}"
        );
        // No setting at all: no Kafka section.
        let mut cfg = Config::default();
        cfg.apply_yaml("kafka: {}\n", "t.yaml").unwrap();
        assert!(cfg.kafka.is_none());
    }
}
