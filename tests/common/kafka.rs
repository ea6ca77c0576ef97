//! A tansu broker for the tests that run zonewatch against Kafka
//! (`tests/kafka.rs`, `tests/faults/kafka.rs`), and reading what arrived.
#![allow(dead_code)]

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::metadata::Metadata;
use rdkafka::{ClientConfig, Message, Offset};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

pub fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/tansu.sh")
}

pub fn tansu(args: &[&str], persistent: bool) -> std::process::Output {
    let mut c = Command::new("bash");
    c.arg(script())
        .args(args)
        .env("ZW_TANSU_PARENT_PID", std::process::id().to_string());
    if persistent {
        c.env("ZW_TANSU_PERSISTENT", "1");
    }
    c.output().expect("run tansu.sh")
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A tansu broker on a free loopback port, stopped on drop. `persistent`:
/// the SQLite build, whose data survive a kill and restart.
pub struct Broker {
    pub port: u16,
    pub persistent: bool,
    pub data: tempfile::TempDir,
}

impl Broker {
    /// Installs tansu; `None` (skip) only when it is not installable and
    /// ZW_SKIP_KAFKA=1.
    pub fn new(persistent: bool) -> Option<Broker> {
        let what = if persistent {
            "install-persistent"
        } else {
            "install"
        };
        let inst = tansu(&[what], false);
        if !inst.status.success() {
            if std::env::var("ZW_SKIP_KAFKA").as_deref() == Ok("1") {
                eprintln!("skipped: tansu ({what}) not installable and ZW_SKIP_KAFKA=1");
                return None;
            }
            panic!(
                "cannot install tansu ({what}): {}",
                String::from_utf8_lossy(&inst.stderr)
            );
        }
        Some(Broker {
            port: free_port(),
            persistent,
            data: tempfile::tempdir().unwrap(),
        })
    }

    pub fn run(&self, args: &[&str]) {
        let o = tansu(args, self.persistent);
        assert!(
            o.status.success(),
            "tansu.sh {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }

    /// Starts (or restarts, on the same data) the broker.
    pub fn start(&self) {
        let port = self.port.to_string();
        self.run(&["start", &port, self.data.path().to_str().unwrap()]);
    }

    pub fn kill(&self) {
        self.run(&["kill", &self.port.to_string()]);
    }

    pub fn pause(&self) {
        self.run(&["pause", &self.port.to_string()]);
    }

    pub fn resume(&self) {
        self.run(&["resume", &self.port.to_string()]);
    }

    pub fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = tansu(&["stop", &self.port.to_string()], self.persistent);
    }
}

/// A consumer of `brokers` that commits nothing (partitions are assigned by hand).
pub fn consumer(brokers: &str) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "zonewatch-test")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer")
}

/// The ids of the partitions `md` lists for `topic`.
pub fn partition_ids<B: FromIterator<i32>>(md: &Metadata, topic: &str) -> B {
    md.topics()
        .iter()
        .filter(|t| t.name() == topic)
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect()
}

/// EVE lines, parsed.
pub fn parse_events(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).expect("event JSON"))
        .collect()
}

/// The event ids of the alerts among `evs`.
pub fn alert_ids(evs: &[serde_json::Value]) -> BTreeSet<String> {
    evs.iter()
        .filter(|v| v["event_type"] == "alert")
        .map(|v| v["event_id"].as_str().unwrap().to_string())
        .collect()
}

/// Reads the topic from the beginning until every id in `want` was seen
/// (then a little longer, to catch anything unexpected); returns each id
/// with every value it arrived with.
pub fn consume_ids(
    brokers: &str,
    topic: &str,
    want: &BTreeSet<String>,
) -> BTreeMap<String, Vec<String>> {
    let c = consumer(brokers);
    // The sink creates its topics once it reaches the broker, which may be
    // after this starts: look for (new) partitions every second.
    let mut assigned: BTreeSet<i32> = BTreeSet::new();
    let refresh = |c: &BaseConsumer, assigned: &mut BTreeSet<i32>| {
        let Ok(md) = c.fetch_metadata(Some(topic), Duration::from_secs(5)) else {
            return;
        };
        let parts: BTreeSet<i32> = partition_ids(&md, topic);
        if parts.is_empty() || parts == *assigned {
            return;
        }
        // Partitions already read keep their position; new ones start at the beginning.
        let mut tpl = c.assignment().unwrap_or_default();
        for p in parts.difference(assigned) {
            tpl.add_partition_offset(topic, *p, Offset::Beginning)
                .unwrap();
        }
        c.assign(&tpl).expect("assign");
        eprintln!("{topic}: reading partitions {parts:?}");
        *assigned = parts;
    };
    let mut last_refresh = Instant::now();
    refresh(&c, &mut assigned);
    let mut got: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut complete_at: Option<Instant> = None;
    while Instant::now() < deadline {
        if last_refresh.elapsed() > Duration::from_secs(1) {
            refresh(&c, &mut assigned);
            last_refresh = Instant::now();
        }
        if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
            let val = String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned();
            let v: serde_json::Value = serde_json::from_str(&val).unwrap();
            got.entry(v["event_id"].as_str().unwrap().to_string())
                .or_default()
                .push(val);
        }
        if complete_at.is_none() && want.iter().all(|id| got.contains_key(id)) {
            complete_at = Some(Instant::now());
        }
        if complete_at.is_some_and(|t| t.elapsed() > Duration::from_secs(2)) {
            break;
        }
    }
    got
}

/// Every wanted alert arrived, nothing else did, and an id that arrived more
/// than once arrived with the same bytes each time (at-least-once).
pub fn assert_all_arrived(got: &BTreeMap<String, Vec<String>>, want: &BTreeSet<String>) -> usize {
    let missing: Vec<&String> = want.iter().filter(|id| !got.contains_key(*id)).collect();
    assert!(
        missing.is_empty(),
        "{} of {} alerts never arrived, e.g. {:?}",
        missing.len(),
        want.len(),
        &missing[..missing.len().min(5)]
    );
    let unknown: Vec<&String> = got.keys().filter(|id| !want.contains(*id)).collect();
    assert!(unknown.is_empty(), "unexpected alerts {unknown:?}");
    let mut dups = 0;
    for (id, vals) in got {
        assert!(
            vals.iter().all(|v| v == &vals[0]),
            "{id} arrived with different values"
        );
        dups += vals.len() - 1;
    }
    dups
}
