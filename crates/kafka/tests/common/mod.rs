//! Test helpers: a tansu broker on a free loopback port, and an `assign()` consumer.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Headers;
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use zonewatch_kafka::{KafkaConfig, Metrics};

pub fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/tansu.sh")
}

/// Installs tansu once per test binary. `None` means: skip (only with ZW_SKIP_KAFKA=1).
pub fn install() -> Option<PathBuf> {
    let level = if std::env::var("ZW_TEST_DEBUG").is_ok() {
        tracing::Level::DEBUG
    } else {
        tracing::Level::INFO
    };
    let _ = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_test_writer()
        .try_init();
    static BIN: OnceLock<Option<PathBuf>> = OnceLock::new();
    BIN.get_or_init(|| {
        let out = Command::new("bash").arg(script()).arg("install").output();
        match out {
            Ok(o) if o.status.success() => {
                let p = String::from_utf8_lossy(&o.stdout).trim().to_string();
                Some(PathBuf::from(p))
            }
            other => {
                let why = match other {
                    Ok(o) => String::from_utf8_lossy(&o.stderr).into_owned(),
                    Err(e) => e.to_string(),
                };
                if std::env::var("ZW_SKIP_KAFKA").as_deref() == Ok("1") {
                    eprintln!("SKIPPED: tansu not installable and ZW_SKIP_KAFKA=1: {why}");
                    None
                } else {
                    panic!("cannot install tansu (set ZW_SKIP_KAFKA=1 to skip): {why}");
                }
            }
        }
    })
    .clone()
}

pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

fn run(args: &[&str]) {
    let out = Command::new("bash")
        .arg(script())
        .args(args)
        .env("ZW_TANSU_PARENT_PID", std::process::id().to_string())
        .output()
        .expect("run tansu.sh");
    assert!(
        out.status.success(),
        "tansu.sh {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A tansu broker, stopped on drop (also when the test panics).
pub struct Broker {
    pub port: u16,
    datadir: tempfile::TempDir,
}

impl Broker {
    /// Starts a broker on a free port; `None` when Kafka tests are skipped.
    pub fn start() -> Option<Broker> {
        install()?;
        let b = Broker {
            port: free_port(),
            datadir: tempfile::tempdir().expect("tempdir"),
        };
        b.start_again();
        Some(b)
    }

    /// A broker object for a port on which nothing runs yet (see `start_again`).
    pub fn not_started() -> Option<Broker> {
        install()?;
        Some(Broker {
            port: free_port(),
            datadir: tempfile::tempdir().expect("tempdir"),
        })
    }

    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn start_again(&self) {
        let port = self.port.to_string();
        let dir = self.datadir.path().to_string_lossy().into_owned();
        run(&["start", &port, &dir]);
    }

    pub fn pause(&self) {
        run(&["pause", &self.port.to_string()]);
    }

    pub fn resume(&self) {
        run(&["resume", &self.port.to_string()]);
    }

    pub fn kill(&self) {
        run(&["kill", &self.port.to_string()]);
    }

    pub fn create_topic(&self, name: &str) {
        run(&["create-topic", name, &self.port.to_string(), "3"]);
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(script())
            .arg("stop")
            .arg(self.port.to_string())
            .output();
    }
}

/// A sink configuration for tests: short timeouts, a private spool directory.
pub fn test_config(bootstrap: &str, spool: &std::path::Path) -> KafkaConfig {
    let mut c = KafkaConfig {
        brokers: bootstrap.to_string(),
        sensor: "sensor-test".into(),
        tenant: "tenant-a".into(),
        schema_version: "7".into(),
        message_timeout_ms: 4000,
        unreachable_after_ms: 1000,
        probe_interval_ms: 200,
        flush_timeout_ms: 10_000,
        ..KafkaConfig::default()
    };
    c.spool.dir = spool.to_path_buf();
    c.librdkafka
        .insert("reconnect.backoff.max.ms".into(), "500".into());
    if let Ok(d) = std::env::var("ZW_TEST_DEBUG") {
        c.librdkafka.insert("debug".into(), d);
    }
    c
}

/// Prints librdkafka's log lines of the test consumer (with ZW_CONSUMER_DEBUG).
pub struct PrintLogs;

impl rdkafka::client::ClientContext for PrintLogs {
    fn log(&self, _level: rdkafka::config::RDKafkaLogLevel, fac: &str, msg: &str) {
        eprintln!("consumer librdkafka {fac}: {msg}");
    }
}

impl rdkafka::consumer::ConsumerContext for PrintLogs {}

/// One consumed message.
#[derive(Debug, Clone)]
pub struct Got {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<String>,
    pub value: String,
    pub headers: HashMap<String, String>,
}

impl Got {
    pub fn id(&self) -> &str {
        &self.headers["event_id"]
    }
}

/// Reads `topic` from the beginning of every partition (assign, no group) until `done`
/// says so or `timeout` passes.
pub fn consume(
    bootstrap: &str,
    topic: &str,
    timeout: Duration,
    mut done: impl FnMut(&[Got]) -> bool,
) -> Vec<Got> {
    let mut cc = ClientConfig::new();
    cc.set("bootstrap.servers", bootstrap)
        .set("group.id", "zw-test-reader")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false");
    if let Ok(d) = std::env::var("ZW_CONSUMER_DEBUG") {
        cc.set("debug", d);
        cc.set_log_level(rdkafka::config::RDKafkaLogLevel::Debug);
    }
    let c: BaseConsumer<PrintLogs> = cc.create_with_context(PrintLogs).expect("consumer");
    let deadline = Instant::now() + timeout;
    let md = loop {
        match c.fetch_metadata(Some(topic), Duration::from_secs(5)) {
            Ok(md)
                if md
                    .topics()
                    .first()
                    .is_some_and(|t| t.error().is_none() && !t.partitions().is_empty()) =>
            {
                break md
            }
            _ if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(200)),
            other => panic!("no metadata for {topic}: {:?}", other.err()),
        }
    };
    let mut tpl = TopicPartitionList::new();
    for p in md.topics()[0].partitions() {
        tpl.add_partition_offset(topic, p.id(), Offset::Beginning)
            .expect("tpl");
    }
    c.assign(&tpl).expect("assign");
    let mut got = Vec::new();
    // `done` may be expensive: ask it only when the consumer is idle or every 2000 messages.
    let mut check = true;
    while Instant::now() < deadline {
        if check {
            if done(&got) {
                break;
            }
            check = false;
        }
        match c.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                let mut headers = HashMap::new();
                if let Some(h) = m.headers() {
                    for h in h.iter() {
                        headers.insert(
                            h.key.to_string(),
                            String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned(),
                        );
                    }
                }
                check = got.len() % 2000 == 1999;
                got.push(Got {
                    partition: m.partition(),
                    offset: m.offset(),
                    key: m.key().map(|k| String::from_utf8_lossy(k).into_owned()),
                    value: String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned(),
                    headers,
                });
            }
            Some(Err(e)) => eprintln!("consumer error: {e}"),
            None => check = true,
        }
    }
    got
}

/// Waits until the sink has nothing left to replay and nothing in flight.
pub fn wait_drained(metrics: impl Fn() -> Metrics, timeout: Duration) -> Metrics {
    let deadline = Instant::now() + timeout;
    loop {
        let m = metrics();
        if !m.spooling && m.spool_backlog_bytes == 0 && m.in_flight == 0 {
            return m;
        }
        if Instant::now() >= deadline {
            panic!("sink not drained after {timeout:?}: {m:#?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// An alert-like event of about 600 bytes with a payload and a My Number in it.
pub fn alert_json(i: u64, src_ip: &str) -> String {
    format!(
        concat!(
            r#"{{"timestamp":"2026-11-25T10:00:00.{:06}+0900","flow_id":{},"in_iface":"eth0","#,
            r#""event_type":"alert","src_ip":"{}","src_port":{},"dest_ip":"203.0.113.7","dest_port":443,"#,
            r#""proto":"TCP","community_id":"1:abcdefghijklmnopqrstuvwxyz0=","#,
            r#""alert":{{"action":"allowed","gid":1,"signature_id":2100498,"rev":7,"#,
            r#""signature":"GPL ATTACK_RESPONSE id check returned root","category":"Potentially Bad Traffic","severity":2}},"#,
            r#""http":{{"hostname":"portal.example.lg.jp","url":"/apply?mynumber=123456789012","http_user_agent":"Mozilla/5.0","#,
            r#""http_request_body":"bXlubWJlcj0xMjM0NTY3ODkwMTI=","status":200,"length":1234}},"#,
            r#""payload":"R0VUIC8gSFRUUC8xLjENCkhvc3Q6IGV4YW1wbGUNCg0K","payload_printable":"GET / HTTP/1.1","#,
            r#""stream":0,"seq":{}}}"#
        ),
        i % 1_000_000,
        1_000_000_000 + i,
        src_ip,
        1024 + (i % 60000),
        i
    )
}
