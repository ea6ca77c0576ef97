//! `zonewatch aggregate` through a real broker (tansu on loopback), with one and with two
//! instances in one consumer group:
//! - throughput: a backlog of 100,000 alerts (2,000 sources, each seen in two tenants) is
//!   on the broker before the instances start; alerts/s is measured from the first
//!   partition assignment to the last `multi_tenant_source` incident received (the group
//!   join before it excluded; a rebalance after it, with two instances, included);
//! - end-to-end lag: then 500 new sources each send an alert from two tenants at about
//!   1,000 alerts/s; lag = incident received by a consumer - second alert handed to the
//!   producer, p50/p99 (hdrhistogram).
//!
//! Needs tansu (scripts/tansu.sh install). Run: `cargo bench --bench aggregate`. Not run in
//! CI. The instances, the broker and this process share the machine's cores.

#[path = "../tests/common/kafka.rs"]
mod kafka_common;

use kafka_common::{partition_ids, Broker};
use rdkafka::consumer::Consumer;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const SOURCES: u64 = 2_000;
const PER_SOURCE: u64 = 50;
const LIVE_SOURCES: u64 = 500;

fn alert(i: u64, src: &str, tenant: &str) -> String {
    let t = 1_700_000_000_000 + i;
    format!(
        r#"{{"timestamp":"2023-11-14T{:02}:{:02}:{:02}.{:03}000+0000","event_type":"alert","event_id":"00000000-0000-0000-0000-{i:012x}","host":"s{tenant}","tenant":"{tenant}","src_ip":"{src}","dest_ip":"192.0.2.1","proto":"TCP","alert":{{"signature":"probe","category":"x","severity":2}}}}"#,
        (t / 3_600_000) % 24,
        (t / 60_000) % 60,
        (t / 1000) % 60,
        t % 1000
    )
}

fn send(p: &BaseProducer, src: &str, tenant: &str, value: &str) {
    let sensor = format!("s{tenant}");
    let h = OwnedHeaders::new()
        .insert(Header {
            key: "sensor",
            value: Some(&sensor),
        })
        .insert(Header {
            key: "tenant",
            value: Some(tenant),
        });
    let mut rec = BaseRecord::to("zonewatch-alerts")
        .key(src)
        .payload(value)
        .headers(h);
    loop {
        match p.send(rec) {
            Ok(()) => return,
            Err((_, r)) => {
                p.poll(Duration::from_millis(5));
                rec = r;
            }
        }
    }
}

fn src_ip(s: u64) -> String {
    format!("10.{}.{}.{}", s >> 16 & 255, s >> 8 & 255, s & 255)
}

/// Starts an instance; its first partition assignment is timed into `assigned`.
fn start(brokers: &str, assigned: &Arc<Mutex<Vec<Instant>>>) -> Child {
    let mut child = Command::new(env!("CARGO_BIN_EXE_zonewatch"))
        .args(["aggregate", "--kafka", brokers, "--group", "bench"])
        .stderr(Stdio::piped())
        .spawn()
        .expect("zonewatch aggregate");
    let err = child.stderr.take().unwrap();
    let assigned = assigned.clone();
    std::thread::spawn(move || {
        for l in BufReader::new(err).lines().map_while(Result::ok) {
            if l.contains("assigned") {
                assigned.lock().unwrap().push(Instant::now());
            }
        }
    });
    child
}

fn run(instances: usize) {
    let Some(broker) = Broker::new(false) else {
        return;
    };
    broker.start();
    let brokers = broker.brokers();
    let port = broker.port.to_string();
    broker.run(&["create-topic", "zonewatch-alerts", &port, "4"]);
    broker.run(&["create-topic", "zonewatch-stats", &port, "1"]);
    broker.run(&["create-topic", "zonewatch-incidents", &port, "4"]);
    let p: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("linger.ms", "1")
        .create()
        .unwrap();
    let mut i = 0;
    for s in 0..SOURCES {
        for k in 0..PER_SOURCE {
            let tenant = if k % 2 == 0 { "131016" } else { "132012" };
            send(&p, &src_ip(s), tenant, &alert(i, &src_ip(s), tenant));
            i += 1;
        }
    }
    p.flush(Duration::from_secs(60)).unwrap();
    let c: rdkafka::consumer::BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("group.id", "bench-reader")
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "10")
        .create()
        .unwrap();
    let md = c
        .fetch_metadata(Some("zonewatch-incidents"), Duration::from_secs(10))
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for part in partition_ids::<Vec<i32>>(&md, "zonewatch-incidents") {
        tpl.add_partition_offset("zonewatch-incidents", part, Offset::Beginning)
            .unwrap();
    }
    c.assign(&tpl).unwrap();
    let assigned = Arc::new(Mutex::new(Vec::new()));
    let mut children: Vec<Child> = (0..instances).map(|_| start(&brokers, &assigned)).collect();
    let mut opened: HashMap<String, Instant> = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(600);
    while (opened.len() as u64) < SOURCES && Instant::now() < deadline {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(50)) {
            let v: serde_json::Value =
                serde_json::from_slice(m.payload().unwrap_or_default()).unwrap();
            if v["incident"]["state"] == "open" {
                opened.insert(
                    v["incident"]["src_ip"].as_str().unwrap().to_string(),
                    Instant::now(),
                );
            }
        }
    }
    // From the first partition assignment (the backlog is all there) to the last incident:
    // fetch start-up and the incidents' own delivery included.
    let first = assigned.lock().unwrap().iter().min().copied().unwrap();
    let last = opened.values().max().copied().unwrap();
    let alerts = SOURCES * PER_SOURCE;
    let rate = alerts as f64 / (last - first).as_secs_f64();
    // Live: the second alert of each new source, timed from the producer's hand-over.
    let mut sent: HashMap<String, Instant> = HashMap::new();
    let mut lag = hdrhistogram::Histogram::<u64>::new(3).unwrap();
    let start_live = Instant::now();
    let mut s = SOURCES;
    while lag.len() < LIVE_SOURCES && start_live.elapsed() < Duration::from_secs(120) {
        let due = (start_live.elapsed().as_secs_f64() * 500.0) as u64 + SOURCES;
        while s < due.min(SOURCES + LIVE_SOURCES) {
            let ip = src_ip(s);
            send(&p, &ip, "131016", &alert(i, &ip, "131016"));
            send(&p, &ip, "132012", &alert(i + 1, &ip, "132012"));
            sent.insert(ip, Instant::now());
            i += 2;
            s += 1;
        }
        p.poll(Duration::ZERO);
        if let Some(Ok(m)) = c.poll(Duration::from_millis(1)) {
            let v: serde_json::Value =
                serde_json::from_slice(m.payload().unwrap_or_default()).unwrap();
            let src = v["incident"]["src_ip"].as_str().unwrap_or("").to_string();
            if v["incident"]["state"] == "open" {
                if let Some(t) = sent.remove(&src) {
                    lag.record(t.elapsed().as_micros() as u64).unwrap();
                }
            }
        }
    }
    println!(
        "{instances} instance(s): backlog {alerts} alerts in {:.2} s = {rate:.0} alerts/s; live lag over {} incidents: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        (last - first).as_secs_f64(),
        lag.len(),
        lag.value_at_quantile(0.5) as f64 / 1000.0,
        lag.value_at_quantile(0.99) as f64 / 1000.0,
        lag.max() as f64 / 1000.0
    );
    for ch in &mut children {
        let _ = Command::new("kill")
            .args(["-TERM", &ch.id().to_string()])
            .status();
        let _ = ch.wait();
    }
}

fn main() {
    run(1);
    run(2);
}
