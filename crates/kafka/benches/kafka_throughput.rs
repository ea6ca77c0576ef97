//! Throughput and latency of `KafkaSink` against a plain rdkafka producer (the ceiling),
//! both publishing the same alert-like events to a local tansu broker.
//!
//! ```text
//! cargo bench -p zonewatch-kafka --bench kafka_throughput            # 200 000 events
//! cargo bench -p zonewatch-kafka --bench kafka_throughput -- 50000 3 # events, rounds (7)
//! ```
//!
//! Starts a fresh tansu broker (`scripts/tansu.sh`, memory storage, free loopback port) for
//! every run, so runs do not slow each other down; rounds alternate which of the plain
//! producer and the sink (default settings) goes first. The
//! events/s figure is from the first `send` to the last acknowledgement; "cpu" is the CPU
//! time of this process (send path + librdkafka threads) per event. The median round
//! of each is reported, then extra variants of the sink (payload filtering on every event,
//! `write_ahead`), then both again at a fixed 50 000 events/s for latency below
//! saturation (at full speed, latency is mostly queueing inside librdkafka).

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use rdkafka::client::ClientContext;
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::message::{DeliveryResult, Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, Producer, ProducerContext, ThreadedProducer};
use zonewatch_kafka::{KafkaConfig, KafkaSink, OutEvent, TopicConfig};

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/tansu.sh")
}

fn tansu(args: &[&str]) -> String {
    let out = Command::new("bash")
        .arg(script())
        .args(args)
        .env("ZW_TANSU_PARENT_PID", std::process::id().to_string())
        .output()
        .expect("run tansu.sh");
    assert!(
        out.status.success(),
        "tansu.sh {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

struct Broker(u16);

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(script())
            .args(["stop", &self.0.to_string()])
            .output();
    }
}

struct Event {
    id: String,
    ip: String,
    json: String,
}

/// Alert-like events of about 600 bytes. With `payload`, each also carries payload
/// fields, so the sink's privacy filter parses and rewrites every event.
fn events(n: usize, payload: bool) -> Vec<Event> {
    (0..n)
        .map(|i| {
            let ip = format!("10.{}.{}.{}", i % 7, (i / 250) % 250, i % 250);
            let extra = if payload {
                r#","payload":"R0VUIC8gSFRUUC8xLjENCkhvc3Q6IGV4YW1wbGUNCg0K","payload_printable":"GET / HTTP/1.1""#
            } else {
                ""
            };
            let json = format!(
                concat!(
                    r#"{{"timestamp":"2026-11-25T10:00:00.{:06}+0900","flow_id":{},"in_iface":"eth0","#,
                    r#""event_type":"alert","src_ip":"{}","src_port":{},"dest_ip":"203.0.113.7","dest_port":443,"#,
                    r#""proto":"TCP","community_id":"1:abcdefghijklmnopqrstuvwxyz0=","#,
                    r#""alert":{{"action":"allowed","gid":1,"signature_id":2100498,"rev":7,"#,
                    r#""signature":"GPL ATTACK_RESPONSE id check returned root","category":"Potentially Bad Traffic","severity":2}},"#,
                    r#""http":{{"hostname":"portal.example.lg.jp","url":"/index.html?q=abc","http_user_agent":"Mozilla/5.0 (X11; Linux x86_64)","#,
                    r#""http_method":"GET","protocol":"HTTP/1.1","status":200,"length":1234}},"app_proto":"http"{}}}"#
                ),
                i % 1_000_000,
                1_000_000_000_000u64 + i as u64,
                ip,
                1024 + i % 60000,
                extra
            );
            Event {
                id: format!("bench-{i:09}"),
                ip,
                json,
            }
        })
        .collect()
}

struct Ctx {
    hist: Mutex<Histogram<u64>>,
    acked: AtomicU64,
    failed: AtomicU64,
}

impl ClientContext for Ctx {}

impl ProducerContext for Ctx {
    type DeliveryOpaque = Box<Instant>;
    fn delivery(&self, r: &DeliveryResult<'_>, sent: Box<Instant>) {
        match r {
            Ok(_) => {
                let us = sent.elapsed().as_micros() as u64;
                self.hist.lock().unwrap().saturating_record(us.max(1));
                self.acked.fetch_add(1, Ordering::Relaxed);
            }
            Err(_) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

struct Run {
    name: String,
    rate: f64,
    p50: u64,
    p99: u64,
    max: u64,
    /// CPU time of the benchmark process (producer side: send path, librdkafka threads,
    /// compression) per event; the broker runs in another process.
    cpu_us_per_event: f64,
}

impl Run {
    fn print(&self) {
        println!(
            "{:<31} {:>8.0} events/s  p50 {:>7} us  p99 {:>7} us  max {:>7} us  cpu {:>5.2} us/event",
            self.name, self.rate, self.p50, self.p99, self.max, self.cpu_us_per_event
        );
    }
}

/// Sleeps so that event `i` is not sent before `i / rate` seconds after `start`.
fn pace(start: Instant, i: usize, rate: Option<f64>) {
    if let Some(r) = rate {
        if i % 64 == 0 {
            let due = start + Duration::from_secs_f64(i as f64 / r);
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
        }
    }
}

fn bare(cfg: &KafkaConfig, topic: &str, evs: &[Event], rate: Option<f64>) -> Run {
    let ctx = Ctx {
        hist: Mutex::new(Histogram::new_with_bounds(1, 3_600_000_000, 3).unwrap()),
        acked: AtomicU64::new(0),
        failed: AtomicU64::new(0),
    };
    let p: ThreadedProducer<Ctx> = cfg.client_config().create_with_context(ctx).unwrap();
    // Warm up the connection and the topic metadata.
    p.client()
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .unwrap();
    let start = Instant::now();
    for (i, e) in evs.iter().enumerate() {
        pace(start, i, rate);
        let headers = OwnedHeaders::new_with_capacity(5)
            .insert(Header {
                key: "sensor",
                value: Some(&cfg.sensor),
            })
            .insert(Header {
                key: "tenant",
                value: Some(&cfg.tenant),
            })
            .insert(Header {
                key: "schema_version",
                value: Some(&cfg.schema_version),
            })
            .insert(Header {
                key: "event_type",
                value: Some("alert"),
            })
            .insert(Header {
                key: "event_id",
                value: Some(&e.id),
            });
        let ts = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        let mut rec = BaseRecord::with_opaque_to(topic, Box::new(Instant::now()))
            .payload(&e.json)
            .key(&e.ip)
            .headers(headers)
            .timestamp(ts);
        loop {
            match p.send(rec) {
                Ok(()) => break,
                Err((err, r)) if err.rdkafka_error_code() == Some(RDKafkaErrorCode::QueueFull) => {
                    rec = r;
                    std::thread::sleep(Duration::from_micros(200));
                }
                Err((err, _)) => panic!("produce: {err}"),
            }
        }
    }
    // Same completion check as for the sink (flush() polls in 100 ms steps).
    let n = evs.len() as u64;
    let deadline = Instant::now() + Duration::from_secs(120);
    while p.context().acked.load(Ordering::Relaxed) + p.context().failed.load(Ordering::Relaxed) < n
    {
        assert!(Instant::now() < deadline, "plain producer did not finish");
        std::thread::sleep(Duration::from_millis(2));
    }
    let secs = start.elapsed().as_secs_f64();
    p.flush(Duration::from_secs(10)).unwrap();
    let ctx = p.context();
    assert_eq!(ctx.failed.load(Ordering::Relaxed), 0, "failed deliveries");
    assert_eq!(ctx.acked.load(Ordering::Relaxed), evs.len() as u64);
    let h = ctx.hist.lock().unwrap();
    Run {
        name: "plain rdkafka producer".into(),
        rate: evs.len() as f64 / secs,
        p50: h.value_at_quantile(0.5),
        p99: h.value_at_quantile(0.99),
        max: h.max(),
        cpu_us_per_event: 0.0,
    }
}

fn sink(
    name: &str,
    mut cfg: KafkaConfig,
    topic: &str,
    evs: &[Event],
    write_ahead: bool,
    rate: Option<f64>,
) -> Run {
    let spool = tempfile::tempdir().unwrap();
    cfg.spool.dir = spool.path().to_path_buf();
    cfg.spool.write_ahead = write_ahead;
    cfg.topics.insert(
        "alert".into(),
        TopicConfig {
            topic: Some(topic.to_string()),
            include_payload: false,
        },
    );
    let s = Arc::new(KafkaSink::start(cfg).unwrap());
    let start = Instant::now();
    for (i, e) in evs.iter().enumerate() {
        pace(start, i, rate);
        s.send(&OutEvent {
            event_type: "alert",
            event_id: &e.id,
            json: &e.json,
            src_ip: Some(&e.ip),
            flow_id: None,
            community_id: None,
        })
        .unwrap();
    }
    let n = evs.len() as u64;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let m = s.metrics();
        if m.delivered >= n {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "sink did not deliver everything: {m:#?}"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    let secs = start.elapsed().as_secs_f64();
    let m = Arc::try_unwrap(s).unwrap().shutdown().unwrap();
    assert_eq!(m.delivered, n);
    assert_eq!(m.dropped_spool_full + m.dropped_io_error + m.rejected, 0);
    if !write_ahead && m.spooled > 0 {
        eprintln!("note: {name}: {} events went through the spool", m.spooled);
    }
    Run {
        name: name.into(),
        rate: n as f64 / secs,
        p50: m.latency.p50_us,
        p99: m.latency.p99_us,
        max: m.latency.max_us,
        cpu_us_per_event: 0.0,
    }
}

/// The run with the median rate.
fn median(mut runs: Vec<Run>) -> Run {
    runs.sort_by(|a, b| a.rate.total_cmp(&b.rate));
    let mid = runs.len() / 2;
    runs.swap_remove(mid)
}

/// A fresh broker (memory storage) on a free port, stopped on drop; optionally pinned
/// with ZW_TANSU_CPUS (passed through from the environment).
fn fresh_broker() -> (Broker, tempfile::TempDir) {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let datadir = tempfile::tempdir().unwrap();
    tansu(&[
        "start",
        &port.to_string(),
        &datadir.path().to_string_lossy(),
    ]);
    (Broker(port), datadir)
}

fn config(port: u16) -> KafkaConfig {
    KafkaConfig {
        brokers: format!("127.0.0.1:{port}"),
        sensor: "bench-sensor".into(),
        tenant: "bench".into(),
        ..KafkaConfig::default()
    }
}

/// CPU time (user + system) of this process so far, from /proc/self/stat.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    // Fields 14 and 15 of stat(5) (utime, stime) are at 11 and 12 after the command name.
    let ticks = f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0);
    Duration::from_millis(ticks * 10) // USER_HZ = 100
}

/// Runs `f` against a fresh broker and adds this process's CPU time per event to the run.
fn measured(n: usize, f: impl FnOnce(u16) -> Run) -> Run {
    let (broker, _dir) = fresh_broker();
    let cpu0 = cpu_time();
    let mut run = f(broker.0);
    run.cpu_us_per_event = (cpu_time() - cpu0).as_secs_f64() * 1e6 / n as f64;
    run
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let n = args.first().copied().unwrap_or(200_000);
    let rounds = args.get(1).copied().unwrap_or(7).max(1);
    tansu(&["install"]);
    let plain = events(n, false);
    let avg = plain.iter().map(|e| e.json.len()).sum::<usize>() / n;
    println!(
        "{n} alert events of ~{avg} bytes, zstd, idempotent, acks=all; {rounds} rounds \
         (fresh broker per run, order alternating), median shown"
    );
    // Profiling aid: ZW_BENCH_ONLY=plain|sink runs just that, paced at 50 000 events/s.
    if let Ok(only) = std::env::var("ZW_BENCH_ONLY") {
        let r = measured(n, |port| {
            if only == "plain" {
                tansu(&["create-topic", "bench-bare", &port.to_string(), "3"]);
                bare(&config(port), "bench-bare", &plain, Some(50_000.0))
            } else {
                sink(
                    "KafkaSink (defaults)",
                    config(port),
                    "bench-sink",
                    &plain,
                    false,
                    Some(50_000.0),
                )
            }
        });
        r.print();
        return;
    }
    let mut bare_runs = Vec::new();
    let mut sink_runs = Vec::new();
    for r in 0..rounds {
        let run_bare = |bare_runs: &mut Vec<Run>| {
            bare_runs.push(measured(n, |port| {
                tansu(&["create-topic", "bench-bare", &port.to_string(), "3"]);
                bare(&config(port), "bench-bare", &plain, None)
            }))
        };
        let run_sink = |sink_runs: &mut Vec<Run>| {
            sink_runs.push(measured(n, |port| {
                sink(
                    "KafkaSink (defaults)",
                    config(port),
                    "bench-sink",
                    &plain,
                    false,
                    None,
                )
            }))
        };
        if r % 2 == 0 {
            run_bare(&mut bare_runs);
            run_sink(&mut sink_runs);
        } else {
            run_sink(&mut sink_runs);
            run_bare(&mut bare_runs);
        }
    }
    if std::env::var("ZW_BENCH_VERBOSE").is_ok() {
        for (i, (b, s)) in bare_runs.iter().zip(&sink_runs).enumerate() {
            println!("round {i}:");
            b.print();
            s.print();
        }
    }
    let ratios: Vec<String> = bare_runs
        .iter()
        .zip(&sink_runs)
        .map(|(b, s)| format!("{:.0}%", 100.0 * s.rate / b.rate))
        .collect();
    let b = median(bare_runs);
    let s = median(sink_runs);
    b.print();
    s.print();
    println!(
        "ratio sink / plain (medians): {:.1} %   (per round: {})",
        100.0 * s.rate / b.rate,
        ratios.join(" ")
    );

    let with_payload = events(n, true);
    measured(n, |port| {
        sink(
            "KafkaSink, payload stripped",
            config(port),
            "bench-sink-payload",
            &with_payload,
            false,
            None,
        )
    })
    .print();
    let wal_n = n.min(100_000);
    measured(wal_n, |port| {
        sink(
            &format!("KafkaSink write_ahead ({wal_n})"),
            config(port),
            "bench-sink-wal",
            &plain[..wal_n],
            true,
            None,
        )
    })
    .print();

    // Latency below saturation (the figures above include queueing in librdkafka).
    let rate = 50_000.0;
    let paced_n = n.min(100_000);
    println!("paced at {rate:.0} events/s ({paced_n} events):");
    measured(paced_n, |port| {
        tansu(&["create-topic", "bench-bare", &port.to_string(), "3"]);
        bare(&config(port), "bench-bare", &plain[..paced_n], Some(rate))
    })
    .print();
    measured(paced_n, |port| {
        sink(
            "KafkaSink (defaults)",
            config(port),
            "bench-sink-paced",
            &plain[..paced_n],
            false,
            Some(rate),
        )
    })
    .print();
}
