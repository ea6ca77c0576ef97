//! `zonewatch aggregate`, the security cloud's aggregator, through the binary against a
//! real Kafka-compatible broker (tansu) on loopback:
//! - three `zonewatch run --kafka` sensors of three tenants share an attacker address:
//!   exactly one `multi_tenant_source` incident names all three tenants; a forged event
//!   (a sensor writing another tenant's events) and a malformed one are refused and
//!   dead-lettered, and change nothing;
//! - the aggregator SIGKILLed mid-stream and restarted: every source's incident counts
//!   each distinct alert exactly once (no alert lost, none double-counted, duplicates in
//!   the stream ignored), and the incident events published again carry the same ids;
//! - every incident event matches docs/schema/incident.schema.json (also checked without
//!   a broker, for every incident kind, from the correlation core).
//!
//! Without tansu: fails, unless ZW_SKIP_KAFKA=1. tansu's consumer-group join takes about
//! 20 s, so each aggregator start costs that much.

#[path = "common/kafka.rs"]
mod kafka_common;

use kafka_common::{consumer, partition_ids, Broker};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{ClientConfig, Message, Offset};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const BASE: &str = "file:///zonewatch/docs/schema/";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn incident_validator() -> jsonschema::Validator {
    let load = |n: &str| -> Value {
        let p = root().join("docs/schema").join(n);
        serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap()
    };
    let schema = load("incident.schema.json");
    jsonschema::meta::validate(&schema).expect("incident.schema.json is a valid schema");
    let common = jsonschema::Resource::from_contents(load("common.schema.json")).unwrap();
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .should_validate_formats(true)
        .with_base_uri(format!("{BASE}incident.schema.json"))
        .with_resource(format!("{BASE}common.schema.json"), common)
        .build(&schema)
        .expect("incident.schema.json compiles")
}

fn assert_valid(v: &jsonschema::Validator, ev: &Value) {
    let errs: Vec<String> = v.iter_errors(ev).map(|e| e.to_string()).collect();
    assert!(errs.is_empty(), "{ev}\n{errs:#?}");
}

/// A running `zonewatch aggregate`: its stderr collected, killed on drop.
struct Aggregator {
    child: Child,
    log: Arc<Mutex<String>>,
}

impl Aggregator {
    fn start(brokers: &str, group: &str, extra: &[&str]) -> Aggregator {
        let mut child = Command::new(env!("CARGO_BIN_EXE_zonewatch"))
            .args(["aggregate", "--kafka", brokers, "--group", group])
            .args(["--set", "aggregate.commit-interval-ms=200"])
            .args(extra)
            .env_remove("ZONEWATCH_LOG")
            .stderr(Stdio::piped())
            .spawn()
            .expect("start zonewatch aggregate");
        let log = Arc::new(Mutex::new(String::new()));
        let err = child.stderr.take().unwrap();
        let sink = log.clone();
        std::thread::spawn(move || {
            for l in BufReader::new(err).lines().map_while(Result::ok) {
                eprintln!("aggregate: {l}");
                let mut s = sink.lock().unwrap();
                s.push_str(&l);
                s.push('\n');
            }
        });
        let a = Aggregator { child, log };
        a.wait_for("zonewatch: aggregate: group", Duration::from_secs(30));
        a
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    fn wait_for(&self, text: &str, limit: Duration) {
        let deadline = Instant::now() + limit;
        while !self.log().contains(text) {
            assert!(
                Instant::now() < deadline,
                "no {text:?} from the aggregator:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {sig}");
    }

    /// SIGTERM; the exit status and stderr.
    fn stop(mut self) -> (ExitStatus, String) {
        self.signal("-TERM");
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            assert!(
                Instant::now() < deadline,
                "aggregate did not stop:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        };
        std::thread::sleep(Duration::from_millis(300));
        (status, self.log())
    }
}

impl Drop for Aggregator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads a topic from the beginning, every partition.
struct TopicReader {
    c: BaseConsumer,
    topic: String,
    parts: BTreeSet<i32>,
    got: Vec<(Vec<(String, String)>, Value)>,
}

impl TopicReader {
    fn new(brokers: &str, topic: &str) -> TopicReader {
        TopicReader {
            c: consumer(brokers),
            topic: topic.to_string(),
            parts: BTreeSet::new(),
            got: Vec::new(),
        }
    }

    fn refresh(&mut self) {
        let Ok(md) = self
            .c
            .fetch_metadata(Some(&self.topic), Duration::from_secs(5))
        else {
            return;
        };
        let parts: BTreeSet<i32> = partition_ids(&md, &self.topic);
        if parts.is_empty() || parts == self.parts {
            return;
        }
        let mut tpl = self.c.assignment().unwrap_or_default();
        for p in parts.difference(&self.parts) {
            tpl.add_partition_offset(&self.topic, *p, Offset::Beginning)
                .unwrap();
        }
        self.c.assign(&tpl).expect("assign");
        self.parts = parts;
    }

    /// Reads until `done` holds for what was read (then one more second), or `limit`.
    fn read_until(&mut self, limit: Duration, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        use rdkafka::message::Headers;
        let deadline = Instant::now() + limit;
        let mut last_refresh: Option<Instant> = None;
        let mut done_at: Option<Instant> = None;
        while Instant::now() < deadline
            && done_at.is_none_or(|t| t.elapsed() < Duration::from_secs(1))
        {
            if last_refresh.is_none_or(|t| t.elapsed() > Duration::from_secs(1)) {
                self.refresh();
                last_refresh = Some(Instant::now());
            }
            if let Some(Ok(m)) = self.c.poll(Duration::from_millis(100)) {
                let headers = m.headers().map_or(Vec::new(), |h| {
                    h.iter()
                        .map(|x| {
                            (
                                x.key.to_string(),
                                String::from_utf8_lossy(x.value.unwrap_or_default()).into_owned(),
                            )
                        })
                        .collect()
                });
                let v =
                    serde_json::from_slice(m.payload().unwrap_or_default()).unwrap_or_else(|_| {
                        Value::String(
                            String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned(),
                        )
                    });
                self.got.push((headers, v));
            }
            let values: Vec<Value> = self.got.iter().map(|(_, v)| v.clone()).collect();
            if done_at.is_none() && done(&values) {
                done_at = Some(Instant::now());
            }
        }
        self.got.iter().map(|(_, v)| v.clone()).collect()
    }
}

fn multi_tenant(evs: &[Value]) -> Vec<&Value> {
    evs.iter()
        .filter(|e| e["incident"]["kind"] == "multi_tenant_source")
        .collect()
}

fn tenants_of(e: &Value) -> Vec<String> {
    e["incident"]["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_string())
        .collect()
}

fn produce(p: &BaseProducer, topic: &str, key: &str, headers: &[(&str, &str)], value: &str) {
    let mut h = OwnedHeaders::new();
    for (k, v) in headers {
        h = h.insert(Header {
            key: k,
            value: Some(*v),
        });
    }
    let mut rec = BaseRecord::to(topic).key(key).payload(value).headers(h);
    loop {
        match p.send(rec) {
            Ok(()) => return,
            Err((_, r)) => {
                p.poll(Duration::from_millis(10));
                rec = r;
            }
        }
    }
}

fn producer(brokers: &str) -> BaseProducer {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .create()
        .expect("producer")
}

const ATTACKER: &str = "203.0.113.66";
const TENANTS: [(&str, &str); 3] = [
    ("city-a", "131016"),
    ("city-b", "132012"),
    ("city-c", "133001"),
];

#[test]
fn three_sensors_of_three_tenants_make_one_multi_tenant_incident() {
    let Some(broker) = Broker::new(false) else {
        return;
    };
    broker.start();
    let brokers = broker.brokers();
    let mapping: Vec<String> = TENANTS
        .iter()
        .map(|(s, t)| format!("aggregate.sensors.{s}={t}"))
        .collect();
    let mut extra: Vec<&str> = Vec::new();
    for m in &mapping {
        extra.extend(["--set", m.as_str()]);
    }
    // Once everything is read, time moves on to the wall clock: the 2023 capture's
    // incident closes and the three sensors are found silent.
    let mut with_idle = extra.clone();
    with_idle.extend(["--set", "aggregate.idle-advance-secs=2"]);
    let agg = Aggregator::start(&brokers, "e2e", &with_idle);
    let dir = tempfile::tempdir().unwrap();
    let cap = root().join("fixtures/demo.pcap");
    let rules = root().join("fixtures/rules/demo.rules");
    // city-a sees the whole capture (several sources), city-b and city-c only the
    // attacker: it is the one source seen in three tenants.
    for (i, (sensor, tenant)) in TENANTS.iter().enumerate() {
        let spool = dir.path().join(format!("spool-{sensor}"));
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_zonewatch"));
        cmd.args([
            "run",
            "--pcap",
            cap.to_str().unwrap(),
            "--rules",
            rules.to_str().unwrap(),
        ])
        .args([
            "--output",
            "/dev/null",
            "--kafka",
            &brokers,
            "--spool-dir",
            spool.to_str().unwrap(),
        ])
        .args([
            "--set",
            &format!("sensor.name={sensor}"),
            "--set",
            &format!("sensor.tenant={tenant}"),
        ]);
        if i > 0 {
            cmd.args(["--bpf", &format!("host {ATTACKER}")]);
        }
        let o = cmd.output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    // A sensor writing another tenant's events, and garbage: refused, dead-lettered.
    let p = producer(&brokers);
    let forged = json!({"timestamp":"2023-11-14T22:14:19.000000+0000","event_type":"alert",
        "event_id":"00000000-0000-0000-0000-00000000f0f0","host":"city-b","tenant":"139999",
        "src_ip":ATTACKER,"dest_ip":"10.0.0.1","proto":"TCP",
        "alert":{"signature":"forged","severity":1}});
    produce(
        &p,
        "zonewatch-alerts",
        ATTACKER,
        &[("sensor", "city-b"), ("tenant", "139999")],
        &forged.to_string(),
    );
    produce(
        &p,
        "zonewatch-alerts",
        ATTACKER,
        &[("sensor", "city-b")],
        "{not json",
    );
    p.flush(Duration::from_secs(10)).unwrap();

    let mut incidents = TopicReader::new(&brokers, "zonewatch-incidents");
    let evs = incidents.read_until(Duration::from_secs(120), |evs| {
        let silent = evs
            .iter()
            .filter(|e| e["incident"]["kind"] == "sensor_silent")
            .count();
        multi_tenant(evs)
            .iter()
            .any(|e| e["incident"]["state"] == "closed")
            && silent >= 3
    });
    let (status, log) = agg.stop();
    assert!(status.success(), "{log}");
    let validator = incident_validator();
    for e in &evs {
        assert_valid(&validator, e);
    }
    let mt = multi_tenant(&evs);
    let ids: BTreeSet<&str> = mt
        .iter()
        .map(|e| e["incident"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 1, "one incident, several events: {mt:#?}");
    let last = mt.last().unwrap();
    assert_eq!(last["incident"]["src_ip"], ATTACKER);
    assert_eq!(tenants_of(last), ["131016", "132012", "133001"]);
    assert_eq!(
        last["incident"]["sensors"],
        json!(["city-a", "city-b", "city-c"])
    );
    assert!(
        last["incident"]["alert_count"].as_u64().unwrap() >= 3,
        "{last}"
    );
    assert_eq!(mt[0]["incident"]["state"], "open");
    assert_eq!(last["incident"]["state"], "closed", "{mt:#?}");
    let silent: BTreeSet<&str> = evs
        .iter()
        .filter(|e| e["incident"]["kind"] == "sensor_silent")
        .map(|e| e["incident"]["sensors"][0].as_str().unwrap())
        .collect();
    assert_eq!(silent, BTreeSet::from(["city-a", "city-b", "city-c"]));
    assert!(
        log.contains("rejected 2 (malformed 1, tenant_not_allowed 1)"),
        "{log}"
    );
    let mut dead = TopicReader::new(&brokers, "zonewatch-deadletter");
    dead.read_until(Duration::from_secs(30), |evs| evs.len() >= 2);
    let reasons: BTreeSet<String> = dead
        .got
        .iter()
        .filter_map(|(h, _)| {
            h.iter()
                .find(|(k, _)| k == "reason")
                .map(|(_, v)| v.clone())
        })
        .collect();
    assert_eq!(
        reasons,
        BTreeSet::from(["malformed".to_string(), "tenant_not_allowed".to_string()])
    );
    // city-b's report from the broker: its sensor, its alert, the incident with the other
    // tenants as a count only.
    let out = dir.path().join("report-132012");
    let o = Command::new(env!("CARGO_BIN_EXE_zonewatch"))
        .args([
            "report",
            "--kafka",
            &brokers,
            "--tenant",
            "132012",
            "--out",
            out.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let rep: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(rep["sensors"].as_array().unwrap().len(), 1, "{rep}");
    assert_eq!(rep["sensors"][0]["sensor"], "city-b");
    assert_eq!(rep["totals"]["alerts"], 1, "{rep}");
    assert_eq!(rep["top_sources"][0]["ip"], ATTACKER);
    // The shared incident (the other tenants a count only) and city-b's own silence.
    let incidents = rep["incidents"].as_array().unwrap();
    let kinds: BTreeSet<&str> = incidents
        .iter()
        .map(|i| i["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        BTreeSet::from(["multi_tenant_source", "sensor_silent"]),
        "{rep}"
    );
    for i in incidents {
        assert_eq!(i["tenants"], json!(["132012"]), "{rep}");
    }
    let shared = incidents
        .iter()
        .find(|i| i["kind"] == "multi_tenant_source")
        .unwrap();
    assert_eq!(shared["other_tenants"], 2, "{rep}");
    let text = rep.to_string() + &std::fs::read_to_string(out.join("index.html")).unwrap();
    for other in ["131016", "133001", "139999", "city-a", "city-c"] {
        assert!(!text.contains(other), "city-b's report names {other}");
    }
    // The prefecture's report, with the sensor -> tenant mapping: the forged event is
    // refused as the aggregator refused it; the malformed one is a skipped line.
    let out = dir.path().join("report-all");
    let o = Command::new(env!("CARGO_BIN_EXE_zonewatch"))
        .args([
            "report",
            "--kafka",
            &brokers,
            "--out",
            out.to_str().unwrap(),
        ])
        .args(&extra)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let all: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(all["totals"]["refused_messages"], 1, "{}", all["totals"]);
    assert_eq!(all["totals"]["skipped_lines"], 1, "{}", all["totals"]);
    assert_eq!(all["sensors"].as_array().unwrap().len(), 3);
    assert!(!all.to_string().contains("139999"));
}

/// A synthetic alert as a sensor of `tenant` would publish it.
fn alert_json(id: u64, secs: u64, src: &str, sensor: &str, tenant: &str) -> String {
    let t = 1_700_000_000 + secs;
    let (d, s) = (t / 86_400, t % 86_400);
    // 2023-11-14 is day 19675 since the epoch: the test's times stay within it.
    assert_eq!(d, 19_675);
    json!({
        "timestamp": format!("2023-11-14T{:02}:{:02}:{:02}.000000+0000", s / 3600, s / 60 % 60, s % 60),
        "event_type": "alert",
        "event_id": format!("00000000-0000-0000-0000-{id:012x}"),
        "host": sensor, "tenant": tenant,
        "src_ip": src, "dest_ip": "10.0.0.1", "proto": "TCP",
        "alert": {"signature": format!("probe {}", id % 4), "severity": 3},
    })
    .to_string()
}

const PER_SOURCE: u64 = 300;

/// (key, sensor, tenant, value) of each alert: alert k of a source is at second k, from
/// tenant k % 3; ids unique across sources; sources interleaved.
fn synthetic_stream(sources: &[String]) -> Vec<(String, String, String, String)> {
    (0..PER_SOURCE)
        .flat_map(|k| {
            sources.iter().enumerate().map(move |(si, src)| {
                let (sensor, tenant) = TENANTS[(k % 3) as usize];
                let id = si as u64 * 100_000 + k;
                (
                    src.clone(),
                    sensor.to_string(),
                    tenant.to_string(),
                    alert_json(id, k, src, sensor, tenant),
                )
            })
        })
        .collect()
}

/// The sources whose multi_tenant_source incident is closed.
fn closed_sources(evs: &[Value]) -> BTreeSet<String> {
    multi_tenant(evs)
        .iter()
        .filter(|e| e["incident"]["state"] == "closed")
        .map(|e| e["incident"]["src_ip"].as_str().unwrap().to_string())
        .collect()
}

/// An alert an hour and more after the stream, from elsewhere: time moves past every
/// source's quiet period, and their incidents close with their final counts.
fn send_late_alert(p: &BaseProducer) {
    let late = alert_json(
        9_999_999,
        PER_SOURCE + 3_700,
        "192.0.2.200",
        "city-a",
        "131016",
    );
    let h = [("sensor", "city-a"), ("tenant", "131016")];
    produce(p, "zonewatch-alerts", "192.0.2.200", &h, &late);
    p.flush(Duration::from_secs(10)).unwrap();
}

#[test]
fn sigkill_mid_stream_loses_no_alert_and_counts_none_twice() {
    let Some(broker) = Broker::new(false) else {
        return;
    };
    broker.start();
    let brokers = broker.brokers();
    broker.run(&[
        "create-topic",
        "zonewatch-alerts",
        &broker.port.to_string(),
        "3",
    ]);
    broker.run(&[
        "create-topic",
        "zonewatch-stats",
        &broker.port.to_string(),
        "3",
    ]);
    let sources: Vec<String> = (1..=6).map(|i| format!("198.51.100.{i}")).collect();
    let all = synthetic_stream(&sources);
    let p = producer(&brokers);
    let send = |batch: &[(String, String, String, String)]| {
        for (src, sensor, tenant, v) in batch {
            produce(
                &p,
                "zonewatch-alerts",
                src,
                &[("sensor", sensor), ("tenant", tenant)],
                v,
            );
        }
        p.flush(Duration::from_secs(30)).unwrap();
    };
    let half = all.len() / 2;
    send(&all[..half]);
    // Redelivered duplicates (a sensor's at-least-once): must not count.
    send(&all[half - 200..half]);
    // Commits every 1.5 s: the kill below lands after the first batch was committed and,
    // most likely, before the second one is.
    let first = Aggregator::start(
        &brokers,
        "crash",
        &["--set", "aggregate.commit-interval-ms=1500"],
    );
    let mut incidents = TopicReader::new(&brokers, "zonewatch-incidents");
    incidents.read_until(Duration::from_secs(120), |evs| multi_tenant(evs).len() >= 6);
    // Mid-stream: more alerts arriving while it is killed.
    send(&all[half..half + 300]);
    std::thread::sleep(Duration::from_millis(100));
    first.signal("-KILL");
    drop(first);
    send(&all[half + 300..]);
    send(&all[half + 300..half + 400]);
    let second = Aggregator::start(&brokers, "crash", &[]);
    second.wait_for("assigned", Duration::from_secs(90));
    send_late_alert(&p);
    let evs = incidents.read_until(Duration::from_secs(120), |evs| {
        closed_sources(evs).len() == sources.len()
    });
    let (status, log) = second.stop();
    assert!(status.success(), "{log}");
    // The restarted instance rebuilt its state from what the first had committed.
    let replayed: u64 = log
        .split("replayed ")
        .nth(1)
        .and_then(|r| r.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(replayed >= half as u64, "{log}");
    check_counts(&evs, &sources, PER_SOURCE);
}

#[test]
fn two_instances_share_the_partitions_and_the_survivor_takes_over() {
    let Some(broker) = Broker::new(false) else {
        return;
    };
    broker.start();
    let brokers = broker.brokers();
    let port = broker.port.to_string();
    broker.run(&["create-topic", "zonewatch-alerts", &port, "4"]);
    broker.run(&["create-topic", "zonewatch-stats", &port, "2"]);
    let sources: Vec<String> = (1..=8).map(|i| format!("198.51.100.{i}")).collect();
    let all = synthetic_stream(&sources);
    let p = producer(&brokers);
    let send = |batch: &[(String, String, String, String)]| {
        for (src, sensor, tenant, v) in batch {
            let h = [("sensor", sensor.as_str()), ("tenant", tenant.as_str())];
            produce(&p, "zonewatch-alerts", src, &h, v);
        }
        p.flush(Duration::from_secs(30)).unwrap();
    };
    let half = all.len() / 2;
    send(&all[..half]);
    let a = Aggregator::start(&brokers, "pair", &[]);
    let b = Aggregator::start(&brokers, "pair", &[]);
    // Both hold a share: the group has rebalanced to two members.
    let deadline = Instant::now() + Duration::from_secs(120);
    let share = |x: &Aggregator| {
        x.log()
            .lines()
            .rfind(|l| l.contains("assigned"))
            .map(str::to_string)
    };
    while !(share(&a).is_some_and(|l| !l.contains(" 6 "))
        && share(&b).is_some_and(|l| !l.contains(" 6 ")))
    {
        assert!(
            Instant::now() < deadline,
            "no two-way split:\n{}\n{}",
            a.log(),
            b.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let mut incidents = TopicReader::new(&brokers, "zonewatch-incidents");
    incidents.read_until(Duration::from_secs(120), |evs| {
        multi_tenant(evs).len() >= sources.len()
    });
    b.signal("-KILL");
    drop(b);
    send(&all[half..]);
    // The survivor gets every partition once the dead member's session times out.
    a.wait_for("assigned 6 partitions", Duration::from_secs(120));
    send_late_alert(&p);
    let evs = incidents.read_until(Duration::from_secs(120), |evs| {
        closed_sources(evs).len() == sources.len()
    });
    let (status, log) = a.stop();
    assert!(status.success(), "{log}");
    check_counts(&evs, &sources, PER_SOURCE);
}

/// Every source has one incident, closed with every distinct alert counted once, and an
/// incident event published more than once is the same event each time.
fn check_counts(evs: &[Value], sources: &[String], per_source: u64) {
    let validator = incident_validator();
    let mut by_source: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
    for e in multi_tenant(evs) {
        assert_valid(&validator, e);
        by_source
            .entry(e["incident"]["src_ip"].as_str().unwrap().to_string())
            .or_default()
            .push(e);
    }
    assert_eq!(by_source.keys().cloned().collect::<Vec<_>>(), sources);
    for (src, evs) in &by_source {
        let ids: BTreeSet<&str> = evs
            .iter()
            .map(|e| e["incident"]["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids.len(), 1, "{src}: one incident");
        let counts: Vec<u64> = evs
            .iter()
            .map(|e| e["incident"]["alert_count"].as_u64().unwrap())
            .collect();
        assert!(
            counts.iter().all(|c| *c <= per_source),
            "{src}: counted twice: {counts:?}"
        );
        let closed: Vec<&&Value> = evs
            .iter()
            .filter(|e| e["incident"]["state"] == "closed")
            .collect();
        assert!(!closed.is_empty(), "{src}: not closed");
        for c in &closed {
            assert_eq!(c["incident"]["alert_count"], per_source, "{src}: {c}");
            assert_eq!(tenants_of(c), ["131016", "132012", "133001"]);
        }
        // Published again after the restart, an incident event is the same event.
        let mut by_event: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
        for e in evs {
            by_event
                .entry(e["event_id"].as_str().unwrap())
                .or_default()
                .insert(e.to_string());
        }
        for (id, versions) in by_event {
            assert_eq!(
                versions.len(),
                1,
                "{src}: event {id} published with different contents: {versions:#?}"
            );
        }
    }
}

#[test]
fn every_incident_kind_matches_the_schema() {
    use zonewatch_aggregate::{
        AggregateConfig, AlertEvent, Correlator, Event, StatsEvent, StormConfig,
    };
    let validator = incident_validator();
    let mut c = Correlator::new(AggregateConfig {
        storm: StormConfig {
            warmup_buckets: 2,
            min_alerts: 10,
            ..Default::default()
        },
        ..Default::default()
    });
    let t0 = 1_700_000_040_000_000i64;
    let mut n = 0u64;
    let mut alert = |secs: i64, tenant: &str, src: &str| {
        n += 1;
        Event::Alert(AlertEvent {
            event_id: format!("a{n}"),
            time_us: t0 + secs * 1_000_000,
            tenant: tenant.into(),
            sensor: format!("s{tenant}"),
            src_ip: src.into(),
            signature: "probe".into(),
            severity: 2,
        })
    };
    let stats = |id: &str, secs: i64, sensor: &str, packets: u64, dropped: u64| {
        Event::Stats(StatsEvent {
            event_id: id.into(),
            time_us: t0 + secs * 1_000_000,
            tenant: "131016".into(),
            sensor: sensor.into(),
            uptime: secs as u64,
            packets,
            dropped,
            spool_backlog_bytes: Some(0),
        })
    };
    let mut out = Vec::new();
    out.extend(c.ingest(&stats("s0", 0, "city-a", 0, 0)));
    out.extend(c.ingest(&stats("s1", 60, "city-a", 100_000, 5_000)));
    for m in 0..4 {
        out.extend(c.ingest(&alert(m * 60, "131016", "192.0.2.1")));
    }
    for k in 0..50 {
        out.extend(c.ingest(&alert(240 + k, "131016", "192.0.2.2")));
    }
    out.extend(c.ingest(&alert(300, "132012", "192.0.2.2")));
    out.extend(c.advance(t0 + 10_000 * 1_000_000));
    let kinds: BTreeSet<String> = out.iter().map(|i| i.kind.as_str().to_string()).collect();
    assert_eq!(kinds.len(), 4, "{kinds:?}");
    for i in &out {
        assert_valid(&validator, &i.to_json("cloud-aggregate"));
    }
    // The schema refuses what the aggregator must never write.
    let mut bad = out[0].to_json("cloud-aggregate");
    bad["incident"]["state"] = json!("reopened");
    assert!(!validator.is_valid(&bad));
    let mut bad = out[0].to_json("cloud-aggregate");
    bad["incident"]["extra"] = json!(1);
    assert!(!validator.is_valid(&bad));
}

/// Configuration errors stop the aggregator before it connects, naming the key.
#[test]
fn aggregate_configuration_errors_name_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("zw.yaml");
    std::fs::write(
        &file,
        "aggregate:\n  multi-tenant:\n    min-tenants: 3\n  sensors:\n    city.a: \"131016\"\n",
    )
    .unwrap();
    let run = |extra: &[&str]| {
        let o = Command::new(env!("CARGO_BIN_EXE_zonewatch"))
            .args([
                "aggregate",
                "--kafka",
                "127.0.0.1:9",
                "--config",
                file.to_str().unwrap(),
            ])
            .args(extra)
            .output()
            .unwrap();
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let (code, err) = run(&["--set", "aggregate.multi-tenant.min-tenant=3"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("min_tenant"), "{err}");
    let (code, err) = run(&["--set", "aggregate.storm.alpha=2"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("`aggregate.storm.alpha` is 2, outside"),
        "{err}"
    );
    let (code, err) = run(&["--set", "aggregate.multi-tenant.window-secs=soon"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("aggregate.multi-tenant.window-secs") && err.contains("not a number"),
        "{err}"
    );
    // The file's section is read (a bad value there is found), and --set goes over it.
    std::fs::write(&file, "aggregate:\n  storm:\n    factor: 0.5\n").unwrap();
    let (code, err) = run(&[]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("`aggregate.storm.factor` is 0.5, outside"),
        "{err}"
    );
    // `config check` finds it too, without a broker.
    let o = Command::new(env!("CARGO_BIN_EXE_zonewatch"))
        .args(["config", "check", "--config", file.to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("`aggregate.storm.factor` is 0.5, outside"),
        "{err}"
    );
    let fixed = [
        "--set",
        "aggregate.storm.factor=6",
        "--set",
        "aggregate.dedup.horizon-secs=0",
    ];
    let (code, err) = run(&fixed);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("`aggregate.dedup.horizon-secs` is 0"), "{err}");
}
