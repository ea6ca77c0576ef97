//! `zonewatch run --kafka`: every event written to the file output arrives
//! on the broker (a real Kafka-compatible broker, tansu, on loopback), one
//! message per event, the value byte-identical to the file line and keyed
//! by source address. Without tansu: fails, unless ZW_SKIP_KAFKA=1.

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/tansu.sh")
}

fn tansu(args: &[&str]) -> std::process::Output {
    Command::new("bash")
        .arg(script())
        .args(args)
        .env("ZW_TANSU_PARENT_PID", std::process::id().to_string())
        .output()
        .expect("run tansu.sh")
}

struct Broker(u16);

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = tansu(&["stop", &self.0.to_string()]);
    }
}

fn consume_all(brokers: &str, topic: &str, want: usize) -> Vec<(Option<String>, String)> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "zonewatch-test")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    // Every partition the broker has for the topic (a topic first created by
    // the broker's auto-creation may have another count than the sink's 3).
    let md = c
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("metadata");
    let parts: Vec<i32> = md
        .topics()
        .iter()
        .filter(|t| t.name() == topic)
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    eprintln!("{topic}: partitions {parts:?}");
    assert!(!parts.is_empty(), "topic {topic} has no partitions");
    let mut tpl = TopicPartitionList::new();
    for p in parts {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    c.assign(&tpl).expect("assign");
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while got.len() < want && Instant::now() < deadline {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(200)) {
            let key = m.key().map(|k| String::from_utf8_lossy(k).into_owned());
            let val = String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned();
            got.push((key, val));
        }
    }
    got
}

#[test]
fn every_event_of_a_replayed_capture_arrives_on_the_broker() {
    let inst = tansu(&["install"]);
    if !inst.status.success() {
        if std::env::var("ZW_SKIP_KAFKA").as_deref() == Ok("1") {
            eprintln!("skipped: tansu not installable and ZW_SKIP_KAFKA=1");
            return;
        }
        panic!(
            "cannot install tansu: {}",
            String::from_utf8_lossy(&inst.stderr)
        );
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let st = tansu(&[
        "start",
        &port.to_string(),
        dir.path().join("data").to_str().unwrap(),
    ]);
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    let _broker = Broker(port);
    let brokers = format!("127.0.0.1:{port}");
    let out = dir.path().join("out.json");
    let cap = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/demo.pcap");
    let rules = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/rules/demo.rules");
    let o = Command::new(env!("CARGO_BIN_EXE_zonewatch"))
        .args([
            "run",
            "--pcap",
            cap.to_str().unwrap(),
            "--rules",
            rules.to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
        ])
        .args([
            "--kafka",
            &brokers,
            "--spool-dir",
            dir.path().join("spool").to_str().unwrap(),
        ])
        .args([
            "--set",
            "sensor.name=kafka-test",
            "--set",
            "kafka.key=src_ip",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("kafka: delivered"), "{err}");
    let text = std::fs::read_to_string(&out).unwrap();
    let mut by_type: BTreeMap<String, Vec<serde_json::Value>> = BTreeMap::new();
    for l in text.lines() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        by_type
            .entry(v["event_type"].as_str().unwrap().to_string())
            .or_default()
            .push(v);
    }
    assert!(by_type["flow"].len() >= 10);
    // The final stats event carries the sink's counters.
    let k = &by_type["stats"].last().unwrap()["stats"]["kafka"];
    let sent = (by_type["flow"].len() + by_type["anomaly"].len()) as u64;
    assert!(k["accepted"].as_u64().unwrap() >= sent, "{k}");
    assert!(k["latency"]["p50_us"].is_u64(), "{k}");
    assert_eq!(k["dropped_spool_full"], 0, "{k}");
    assert!(by_type["alert"].len() >= 6);
    for (et, topic) in [
        ("alert", "zonewatch-alerts"),
        ("flow", "zonewatch-flows"),
        ("anomaly", "zonewatch-anomaly"),
    ] {
        let file_events = &by_type[et];
        let msgs = consume_all(&brokers, topic, file_events.len());
        let mut want: Vec<String> = file_events
            .iter()
            .map(|v| v["event_id"].as_str().unwrap().to_string())
            .collect();
        let mut got: Vec<String> = msgs
            .iter()
            .map(|(_, v)| {
                serde_json::from_str::<serde_json::Value>(v).unwrap()["event_id"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
        want.sort();
        got.sort();
        got.dedup();
        assert_eq!(
            got, want,
            "{et}: event ids on the broker differ from the file"
        );
        // The value is the file line itself; the key is the source address.
        for (key, val) in &msgs {
            let v: serde_json::Value = serde_json::from_str(val).unwrap();
            assert!(
                text.lines().any(|l| l == val),
                "message not byte-identical to a file line: {val}"
            );
            if let Some(src) = v["src_ip"].as_str() {
                assert_eq!(key.as_deref(), Some(src));
            }
        }
    }
}
