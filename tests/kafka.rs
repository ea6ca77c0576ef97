//! `zonewatch run --kafka` against a real Kafka-compatible broker (tansu) on
//! loopback, through the binary:
//! - every event written to the file output arrives on the broker, one
//!   message per event, the value byte-identical to the file line and keyed
//!   by source address;
//! - the broker killed in the middle of a run and restarted on persistent
//!   (SQLite) storage: every alert arrives, duplicates only with the same id;
//! - zonewatch killed with SIGKILL and restarted delivers everything that
//!   reached its spool; with `kafka.spool.write-ahead` also what a hung
//!   broker had not acknowledged.
//!
//! Without tansu: fails, unless ZW_SKIP_KAFKA=1.

#[path = "common/kafka.rs"]
mod kafka_common;

use kafka_common::{
    alert_ids, assert_all_arrived, consume_ids, consumer, parse_events, partition_ids, Broker,
};
use rdkafka::consumer::Consumer;
use rdkafka::{Message, Offset, TopicPartitionList};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One consumed message as the envelope `docs/schema/kafka-message.schema.json`
/// describes: topic, key, headers, value.
fn envelope(m: &rdkafka::message::BorrowedMessage<'_>) -> serde_json::Value {
    use rdkafka::message::Headers;
    let mut headers = serde_json::Map::new();
    if let Some(h) = m.headers() {
        for hd in h.iter() {
            let v = String::from_utf8_lossy(hd.value.unwrap_or_default()).into_owned();
            headers.insert(hd.key.to_string(), v.into());
        }
    }
    let value: serde_json::Value =
        serde_json::from_slice(m.payload().unwrap_or_default()).expect("value is JSON");
    serde_json::json!({
        "topic": m.topic(),
        "key": m.key().map(|k| String::from_utf8_lossy(k).into_owned()),
        "headers": headers,
        "value": value,
    })
}

fn consume_all(brokers: &str, topic: &str, want: usize) -> Vec<(Option<String>, String)> {
    let c = consumer(brokers);
    // Every partition the broker has for the topic (a topic first created by
    // the broker's auto-creation may have another count than the sink's 3).
    let md = c
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("metadata");
    let parts: Vec<i32> = partition_ids(&md, topic);
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
            check_envelope(&envelope(&m));
            let key = m.key().map(|k| String::from_utf8_lossy(k).into_owned());
            let val = String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned();
            got.push((key, val));
        }
    }
    got
}

#[test]
fn every_event_of_a_replayed_capture_arrives_on_the_broker() {
    let Some(broker) = Broker::new(false) else {
        return;
    };
    broker.start();
    let brokers = broker.brokers();
    let dir = tempfile::tempdir().unwrap();
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

/// The message matches docs/schema/kafka-message.schema.json, and its headers
/// agree with the value.
fn check_envelope(msg: &serde_json::Value) {
    use std::sync::OnceLock;
    static SCHEMA: OnceLock<jsonschema::Validator> = OnceLock::new();
    let v = SCHEMA.get_or_init(|| {
        let p =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/schema/kafka-message.schema.json");
        let schema: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap();
        jsonschema::meta::validate(&schema).expect("a valid schema");
        jsonschema::options()
            .with_draft(jsonschema::Draft::Draft202012)
            .build(&schema)
            .expect("schema compiles")
    });
    if let Err(e) = v.validate(msg) {
        panic!("message does not match kafka-message.schema.json: {e}\n{msg}");
    }
    let h = &msg["headers"];
    assert_eq!(h["event_id"], msg["value"]["event_id"]);
    assert_eq!(h["event_type"], msg["value"]["event_type"]);
    assert_eq!(h["sensor"], "kafka-test");
    assert_eq!(h["schema_version"], "1");
}

/// A Sigma rule that turns every log line with the marker into one alert, so
/// the number of alerts is the number of lines sent.
const MARKER_RULE: &str = "title: Kafka Test Marker
id: 0b5e7a2c-0000-4000-8000-00000000ca1a
status: test
logsource:
    product: linux
detection:
    keywords:
        - 'zwkafkamarker'
    condition: keywords
level: high
";

/// zonewatch listening for syslog on a loopback TCP port, publishing to Kafka,
/// with a stats event every second (the tests watch the sink's counters in
/// the file output).
struct Zw {
    child: Child,
    syslog: std::net::SocketAddr,
    stderr: Option<std::thread::JoinHandle<String>>,
}

impl Drop for Zw {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_zonewatch(dir: &Path, brokers: &str, extra: &[&str]) -> Zw {
    let rule = dir.join("marker.yml");
    std::fs::write(&rule, MARKER_RULE).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_zonewatch"))
        .arg("run")
        .args(["--syslog-listen", "tcp://127.0.0.1:0"])
        .args(["--rules", rule.to_str().unwrap()])
        .args(["--output", dir.join("out.json").to_str().unwrap()])
        .args(["--stats-interval", "1"])
        .args(["--kafka", brokers])
        .args(["--spool-dir", dir.join("spool").to_str().unwrap()])
        // Notice a dead broker within a second, probe it often.
        .args(["--set", "kafka.unreachable-after-ms=1000"])
        .args(["--set", "kafka.probe-interval-ms=200"])
        .args(["--set", "kafka.message-timeout-ms=5000"])
        .args(extra)
        .stderr(Stdio::piped())
        .spawn()
        .expect("start zonewatch");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = String::new();
    let syslog = loop {
        let Some(Ok(l)) = lines.next() else {
            panic!("zonewatch ended before listening: {seen}");
        };
        seen.push_str(&l);
        seen.push('\n');
        if let Some((_, addr)) = l.split_once(" listening on ") {
            break addr.parse().expect("listening address");
        }
    };
    let stderr = std::thread::spawn(move || {
        for l in lines.map_while(Result::ok) {
            seen.push_str(&l);
            seen.push('\n');
        }
        seen
    });
    Zw {
        child,
        syslog,
        stderr: Some(stderr),
    }
}

impl Zw {
    /// SIGTERM and wait (the sink flushes, spools the rest); returns stderr.
    fn stop(mut self) -> String {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            assert!(Instant::now() < deadline, "zonewatch did not stop");
            std::thread::sleep(Duration::from_millis(50));
        };
        let err = self.stderr.take().unwrap().join().unwrap();
        assert!(status.success(), "zonewatch failed: {err}");
        err
    }

    /// SIGKILL: no flush, no shutdown of the sink.
    fn crash(mut self) {
        self.child.kill().unwrap();
        let _ = self.child.wait();
    }
}

/// Sends `n` marker lines (numbered from `first`) over one TCP connection,
/// newline-framed, in bursts of 100.
fn send_lines(to: std::net::SocketAddr, first: u64, n: u64) {
    let mut s = std::net::TcpStream::connect(to).unwrap();
    let mut buf = String::new();
    for i in first..first + n {
        buf.push_str(&format!(
            "<38>Nov 26 03:15:10 gw01 app[42]: zwkafkamarker n={i} from 192.0.2.{}\n",
            1 + i % 200
        ));
        if (i + 1) % 100 == 0 {
            s.write_all(buf.as_bytes()).unwrap();
            buf.clear();
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    s.write_all(buf.as_bytes()).unwrap();
}

/// The complete lines of the output file so far, parsed.
fn events(dir: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(dir.join("out.json")).unwrap_or_default();
    parse_events(&text[..text.rfind('\n').map_or(0, |i| i + 1)])
}

/// Waits until the output file holds `alerts` alerts followed by a stats
/// event whose Kafka counters satisfy `ok`; returns that stats object.
fn wait_for_stats(
    dir: &Path,
    alerts: usize,
    what: &str,
    ok: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let evs = events(dir);
        let n = evs.iter().filter(|v| v["event_type"] == "alert").count();
        let last_alert = evs.iter().rposition(|v| v["event_type"] == "alert");
        let k = evs
            .iter()
            .enumerate()
            .rev()
            .find(|(i, v)| v["event_type"] == "stats" && Some(*i) > last_alert)
            .map(|(_, v)| v["stats"]["kafka"].clone());
        if n == alerts {
            if let Some(k) = k.as_ref().filter(|k| ok(k)) {
                return k.clone();
            }
        }
        assert!(
            Instant::now() < deadline,
            "{what}: {n} of {alerts} alerts; last kafka stats {k:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn broker_killed_mid_run_and_restarted_on_persistent_storage_loses_no_alert() {
    let Some(broker) = Broker::new(true) else {
        return;
    };
    broker.start();
    let dir = tempfile::tempdir().unwrap();
    let zw = start_zonewatch(dir.path(), &broker.brokers(), &[]);
    send_lines(zw.syslog, 0, 3000);
    // Some of it acknowledged by the first broker before it dies.
    wait_for_stats(dir.path(), 3000, "before the kill", |k| {
        k["delivered"].as_u64() > Some(0)
    });
    broker.kill();
    send_lines(zw.syslog, 3000, 3000);
    // The sink notices and spools.
    wait_for_stats(dir.path(), 6000, "while the broker is dead", |k| {
        k["spooling"] == 1 && k["spooled"].as_u64() > Some(0)
    });
    broker.start(); // the same SQLite data
    send_lines(zw.syslog, 6000, 3000);
    let k = wait_for_stats(dir.path(), 9000, "after the restart", |k| {
        k["spooling"] == 0 && k["in_flight"] == 0 && k["spool_backlog_bytes"] == 0
    });
    eprintln!("kafka stats when drained: {k}");
    assert!(k["replayed"].as_u64() > Some(0), "{k}");
    let err = zw.stop();
    assert!(err.contains("kafka: delivered"), "{err}");
    let evs = events(dir.path());
    let want = alert_ids(&evs);
    assert_eq!(want.len(), 9000);
    let last = &evs.last().unwrap()["stats"]["kafka"];
    assert_eq!(last["dropped_spool_full"], 0, "{last}");
    assert_eq!(last["dropped_io_error"], 0, "{last}");
    assert_eq!(last["rejected"], 0, "{last}");
    let got = consume_ids(&broker.brokers(), "zonewatch-alerts", &want);
    let dups = assert_all_arrived(&got, &want);
    eprintln!("9000 alerts, all on the broker; {dups} duplicates (same id, same bytes)");
}

#[test]
fn sigkill_then_restart_delivers_everything_spooled() {
    // No broker yet: the sink spools from the start.
    let Some(broker) = Broker::new(false) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let zw = start_zonewatch(dir.path(), &broker.brokers(), &[]);
    send_lines(zw.syslog, 0, 2000);
    // A stats event after the last alert, with nothing in librdkafka's memory:
    // every alert in the file reached the spool.
    let k = wait_for_stats(dir.path(), 2000, "spooled", |k| {
        k["spooling"] == 1 && k["in_flight"] == 0 && k["spooled"].as_u64() >= Some(2000)
    });
    eprintln!("kafka stats before SIGKILL: {k}");
    zw.crash();
    let want = alert_ids(&events(dir.path()));
    assert_eq!(want.len(), 2000);
    std::fs::rename(dir.path().join("out.json"), dir.path().join("before.json")).unwrap();
    broker.start();
    // The restarted sensor replays the spool on start.
    let zw = start_zonewatch(dir.path(), &broker.brokers(), &[]);
    let got = consume_ids(&broker.brokers(), "zonewatch-alerts", &want);
    let err = zw.stop();
    let after = events(dir.path());
    let last = &after.last().unwrap()["stats"]["kafka"];
    eprintln!("after restart: {last}\n{err}");
    let dups = assert_all_arrived(&got, &want);
    assert!(last["replayed"].as_u64() >= Some(2000), "{last}");
    eprintln!("2000 spooled alerts delivered after SIGKILL and restart; {dups} duplicates");
}

#[test]
fn sigkill_with_write_ahead_delivers_what_a_hung_broker_never_acknowledged() {
    let Some(broker) = Broker::new(false) else {
        return;
    };
    broker.start();
    let dir = tempfile::tempdir().unwrap();
    // A message timeout longer than the test: nothing leaves librdkafka's
    // memory for the spool on its own.
    let wal = [
        "--set",
        "kafka.spool.write-ahead=true",
        "--set",
        "kafka.message-timeout-ms=60000",
    ];
    let zw = start_zonewatch(dir.path(), &broker.brokers(), &wal);
    send_lines(zw.syslog, 0, 500);
    wait_for_stats(dir.path(), 500, "first alerts delivered", |k| {
        k["delivered"].as_u64() >= Some(500)
    });
    // A hung broker: what follows sits unacknowledged in librdkafka's memory,
    // and the sensor dies before the message timeout moves it to the spool.
    broker.pause();
    send_lines(zw.syslog, 500, 2000);
    let k = wait_for_stats(dir.path(), 2500, "sent to the hung broker", |k| {
        k["in_flight"].as_u64() >= Some(2000)
    });
    eprintln!("kafka stats before SIGKILL: {k}");
    zw.crash();
    let want = alert_ids(&events(dir.path()));
    assert_eq!(want.len(), 2500);
    std::fs::rename(dir.path().join("out.json"), dir.path().join("before.json")).unwrap();
    broker.resume();
    let zw = start_zonewatch(dir.path(), &broker.brokers(), &wal);
    let got = consume_ids(&broker.brokers(), "zonewatch-alerts", &want);
    let err = zw.stop();
    let after = events(dir.path());
    eprintln!(
        "after restart: {}\n{err}",
        after.last().unwrap()["stats"]["kafka"]
    );
    assert!(err.contains("kafka: delivered"), "{err}");
    let dups = assert_all_arrived(&got, &want);
    eprintln!("2500 alerts delivered after SIGKILL with write-ahead; {dups} duplicates");
}
