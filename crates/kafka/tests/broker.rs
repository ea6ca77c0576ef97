//! End-to-end tests against a real Kafka-compatible broker (tansu, installed by
//! `scripts/tansu.sh install`). Each test starts its own broker on a free loopback port and
//! stops it on drop. Set ZW_SKIP_KAFKA=1 to skip them where tansu cannot be installed.

mod common;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::sleep;
use std::time::{Duration, Instant};

use common::*;
use zonewatch_kafka::{FullPolicy, KafkaSink, OutEvent};

const ALERTS: &str = "zonewatch-alerts";

fn send_alert(sink: &KafkaSink, id: &str, ip: &str, i: u64) {
    let json = alert_json(i, ip);
    sink.send(&OutEvent {
        event_type: "alert",
        event_id: id,
        json: &json,
        src_ip: Some(ip),
        flow_id: Some(1_000_000_000 + i),
        community_id: None,
    })
    .expect("send");
}

fn ip_of(i: u64) -> String {
    format!("10.1.{}.{}", (i / 250) % 250, i % 250)
}

/// Set equality with a readable failure message.
fn assert_same_ids(got: &HashSet<String>, want: &HashSet<String>) {
    let mut missing: Vec<&String> = want.difference(got).collect();
    let mut extra: Vec<&String> = got.difference(want).collect();
    missing.sort();
    extra.sort();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "event_id sets differ: {} missing (e.g. {:?}), {} unexpected (e.g. {:?})",
        missing.len(),
        &missing[..missing.len().min(10)],
        extra.len(),
        &extra[..extra.len().min(10)]
    );
}

fn ids_of(got: &[Got]) -> HashSet<String> {
    got.iter().map(|g| g.id().to_string()).collect()
}

/// Every received message is one of ours, and duplicates are the same message.
fn check_duplicates(got: &[Got], sent: &HashSet<String>) -> usize {
    let mut by_id: HashMap<&str, &Got> = HashMap::new();
    let mut dups = 0;
    for g in got {
        assert!(sent.contains(g.id()), "unexpected event_id {}", g.id());
        if let Some(prev) = by_id.insert(g.id(), g) {
            dups += 1;
            assert_eq!(prev.value, g.value, "duplicate {} differs", g.id());
            assert_eq!(prev.key, g.key);
        }
    }
    dups
}

#[test]
fn a_events_arrive_with_headers_key_and_privacy_filter() {
    let Some(b) = Broker::start() else { return };
    let spool = tempfile::tempdir().unwrap();
    let sink = KafkaSink::start(test_config(&b.bootstrap(), spool.path())).unwrap();
    let n = 10_000u64;
    let mut sent = HashMap::new();
    for i in 0..n {
        let id = format!("a-{i:06}");
        let ip = ip_of(i);
        send_alert(&sink, &id, &ip, i);
        sent.insert(id, ip);
    }
    wait_drained(|| sink.metrics(), Duration::from_secs(60));
    let m = sink.shutdown().unwrap();
    assert_eq!(m.accepted, n);
    assert_eq!(m.delivered, n, "{m:#?}");
    assert_eq!(m.dropped_spool_full + m.dropped_io_error + m.rejected, 0);
    assert_eq!(m.latency.count, n);
    assert!(m.latency.p50_us > 0 && m.latency.p99_us >= m.latency.p50_us);

    let got = consume(&b.bootstrap(), ALERTS, Duration::from_secs(60), |g| {
        g.len() as u64 >= n
    });
    let want: HashSet<String> = sent.keys().cloned().collect();
    assert_same_ids(&ids_of(&got), &want);
    check_duplicates(&got, &want);
    for g in &got {
        let id = g.id();
        assert_eq!(g.headers["sensor"], "sensor-test");
        assert_eq!(g.headers["tenant"], "tenant-a");
        assert_eq!(g.headers["schema_version"], "7");
        assert_eq!(g.headers["event_type"], "alert");
        assert_eq!(g.key.as_deref(), Some(sent[id].as_str()), "key of {id}");
        let v: serde_json::Value = serde_json::from_str(&g.value).expect("valid JSON");
        assert!(v.get("payload").is_none() && v.get("payload_printable").is_none());
        assert!(v["http"].get("http_request_body").is_none());
        assert_eq!(v["http"]["url"], "/apply?mynumber=************");
        assert_eq!(v["alert"]["signature_id"], 2100498);
        assert_eq!(v["http"]["hostname"], "portal.example.lg.jp");
        assert!(!g.value.contains("123456789012"));
    }
    // All partitions are used (keys spread over 3 partitions).
    let parts: BTreeSet<i32> = got.iter().map(|g| g.partition).collect();
    assert_eq!(parts.len(), 3);
}

#[test]
fn b_broker_paused_mid_stream_loses_nothing() {
    let Some(b) = Broker::start() else { return };
    let spool = tempfile::tempdir().unwrap();
    let mut cfg = test_config(&b.bootstrap(), spool.path());
    cfg.message_timeout_ms = 2500;
    let sink = KafkaSink::start(cfg).unwrap();
    let mut sent = HashSet::new();
    let mut i = 0u64;
    let mut send_for = |sink: &KafkaSink, count: u64, pace: Duration| {
        for _ in 0..count {
            let id = format!("b-{i:06}");
            send_alert(sink, &id, &ip_of(i), i);
            sent.insert(id);
            i += 1;
            if i % 500 == 0 {
                sleep(pace);
            }
        }
    };
    send_for(&sink, 3000, Duration::from_millis(20));
    b.pause();
    let paused = Instant::now();
    // ~4.5 s of traffic while the broker hangs (longer than message_timeout_ms).
    send_for(&sink, 6000, Duration::from_millis(375));
    let during = sink.metrics();
    b.resume();
    eprintln!(
        "paused {:?}; metrics while paused: {during:#?}",
        paused.elapsed()
    );
    send_for(&sink, 3000, Duration::from_millis(20));
    wait_drained(|| sink.metrics(), Duration::from_secs(60));
    let m = sink.shutdown().unwrap();
    eprintln!("final: {m:#?}");
    assert_eq!(m.dropped_spool_full + m.dropped_io_error + m.rejected, 0);
    assert!(
        m.spooled > 0,
        "the pause should have spooled events: {m:#?}"
    );
    assert_eq!(m.spool_backlog_bytes, 0);

    let got = consume(&b.bootstrap(), ALERTS, Duration::from_secs(60), |g| {
        ids_of(g).len() == sent.len()
    });
    for p in 0..3 {
        let offs: Vec<i64> = got
            .iter()
            .filter(|g| g.partition == p)
            .map(|g| g.offset)
            .collect();
        eprintln!(
            "partition {p}: {} messages, offsets {:?}..{:?}",
            offs.len(),
            offs.iter().min(),
            offs.iter().max()
        );
    }
    assert_same_ids(&ids_of(&got), &sent);
    let dups = check_duplicates(&got, &sent);
    eprintln!("{} messages, {} duplicates", got.len(), dups);
}

#[test]
fn c_broker_killed_and_restarted_spool_replays_unacknowledged() {
    let Some(b) = Broker::start() else { return };
    let spool = tempfile::tempdir().unwrap();
    let acked: Arc<Mutex<HashSet<String>>> = Arc::default();
    let acked2 = acked.clone();
    let sink =
        KafkaSink::start_with_delivery_hook(test_config(&b.bootstrap(), spool.path()), move |id| {
            acked2.lock().unwrap().insert(id.to_string());
        })
        .unwrap();
    let mut sent = HashSet::new();
    let mut i = 0u64;
    let mut send_for = |sink: &KafkaSink, count: u64, pace: Duration| {
        for _ in 0..count {
            let id = format!("c-{i:06}");
            send_alert(sink, &id, &ip_of(i), i);
            sent.insert(id);
            i += 1;
            if i % 500 == 0 {
                sleep(pace);
            }
        }
    };
    send_for(&sink, 4000, Duration::from_millis(20));
    // Kill the broker while events are still being sent.
    b.kill();
    send_for(&sink, 4000, Duration::from_millis(250));
    sleep(Duration::from_millis(500));
    // No acknowledgement can arrive while the broker is dead: this is everything the first
    // broker acknowledged (and lost with its memory storage).
    let acked_before: HashSet<String> = acked.lock().unwrap().clone();
    let m = sink.metrics();
    eprintln!("acked before restart: {}; {m:#?}", acked_before.len());
    b.start_again(); // empty: the sink re-creates the topic
    send_for(&sink, 2000, Duration::from_millis(20));
    wait_drained(|| sink.metrics(), Duration::from_secs(90));
    let m = sink.shutdown().unwrap();
    eprintln!("final: {m:#?}");
    assert!(m.spooled + m.replayed > 0);
    assert!(m.spooled > 0 && m.replayed > 0, "{m:#?}");
    assert_eq!(m.dropped_spool_full + m.dropped_io_error + m.rejected, 0);

    let must: HashSet<String> = sent.difference(&acked_before).cloned().collect();
    assert!(!must.is_empty());
    let got = consume(&b.bootstrap(), ALERTS, Duration::from_secs(60), |g| {
        let ids = ids_of(g);
        must.iter().all(|id| ids.contains(id))
    });
    let ids = ids_of(&got);
    let missing: Vec<&String> = must.iter().filter(|id| !ids.contains(*id)).collect();
    assert!(
        missing.is_empty(),
        "{} unacknowledged events lost, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    check_duplicates(&got, &sent);
    // And every acknowledgement by the second broker is really there.
    let acked_after: HashSet<String> = acked
        .lock()
        .unwrap()
        .difference(&acked_before)
        .cloned()
        .collect();
    assert!(acked_after.iter().all(|id| ids.contains(id)));
}

/// A fixed-size alert, so every spool record has the same size.
fn fixed_json(i: u64) -> String {
    format!(
        r#"{{"event_type":"alert","seq":{i:08},"src_ip":"10.9.9.9","alert":{{"signature":"{}"}}}}"#,
        "x".repeat(500)
    )
}

fn wait_spooling(sink: &KafkaSink) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !sink.metrics().spooling {
        assert!(Instant::now() < deadline, "sink never started spooling");
        sleep(Duration::from_millis(50));
    }
}

#[test]
fn d_full_spool_drop_newest_counts_drops_exactly() {
    let Some(b) = Broker::not_started() else {
        return;
    };
    let spool = tempfile::tempdir().unwrap();
    let mut cfg = test_config(&b.bootstrap(), spool.path());
    cfg.unreachable_after_ms = 0;
    cfg.spool.max_bytes = 64 * 1024;
    cfg.spool.full_policy = FullPolicy::DropNewest;
    let sink = KafkaSink::start(cfg.clone()).unwrap();
    wait_spooling(&sink);
    let n = 1000u64;
    for i in 0..n {
        let json = fixed_json(i);
        sink.send(&OutEvent {
            event_type: "alert",
            event_id: &format!("d-{i:06}"),
            json: &json,
            src_ip: Some("10.9.9.9"),
            flow_id: None,
            community_id: None,
        })
        .unwrap();
    }
    let m = sink.metrics();
    eprintln!("{m:#?}");
    assert_eq!(m.accepted, n);
    assert_eq!(m.delivered, 0);
    assert!(m.dropped_spool_full > 0);
    assert_eq!(
        m.spooled + m.dropped_spool_full,
        n,
        "every event spooled or counted"
    );
    assert!(m.spool_bytes <= cfg.spool.max_bytes);
    let kept = m.spooled;
    // The broker comes up: exactly the oldest `kept` events arrive.
    b.start_again();
    wait_drained(|| sink.metrics(), Duration::from_secs(60));
    let m2 = sink.shutdown().unwrap();
    assert_eq!(m2.dropped_spool_full, n - kept);
    assert_eq!(m2.replayed, kept);
    assert_eq!(m2.delivered, kept);
    let got = consume(&b.bootstrap(), ALERTS, Duration::from_secs(30), |g| {
        g.len() as u64 >= kept
    });
    let want: HashSet<String> = (0..kept).map(|i| format!("d-{i:06}")).collect();
    assert_same_ids(&ids_of(&got), &want);
}

#[test]
fn e_corrupt_spool_record_skipped_and_replay_in_order() {
    let Some(b) = Broker::not_started() else {
        return;
    };
    let spool = tempfile::tempdir().unwrap();
    let mut cfg = test_config(&b.bootstrap(), spool.path());
    cfg.unreachable_after_ms = 0;
    // Phase 1: broker down, 300 events spooled.
    let sink = KafkaSink::start(cfg.clone()).unwrap();
    wait_spooling(&sink);
    let n = 300u64;
    for i in 0..n {
        let json = fixed_json(i);
        sink.send(&OutEvent {
            event_type: "alert",
            event_id: &format!("e-{i:06}"),
            json: &json,
            src_ip: Some("10.9.9.9"), // one key: one partition, order observable
            flow_id: None,
            community_id: None,
        })
        .unwrap();
    }
    let m = sink.shutdown().unwrap();
    assert_eq!(m.spooled, n);
    // Damage one record in the middle of the spool.
    let seg = seg_files(spool.path());
    assert_eq!(seg.len(), 1, "one segment expected");
    let mut data = std::fs::read(&seg[0]).unwrap();
    let mid = data.len() / 2;
    data[mid] ^= 0x55;
    std::fs::write(&seg[0], &data).unwrap();
    // Phase 2: broker up, a new sink replays the spool first.
    b.start_again();
    let sink = KafkaSink::start(cfg).unwrap();
    wait_drained(|| sink.metrics(), Duration::from_secs(60));
    let m = sink.shutdown().unwrap();
    assert_eq!(m.corrupt_spool_records, 1, "{m:#?}");
    assert_eq!(m.replayed, n - 1);
    let got = consume(&b.bootstrap(), ALERTS, Duration::from_secs(30), |g| {
        g.len() as u64 >= n - 1
    });
    assert_eq!(got.len() as u64, n - 1);
    let mut by_offset = got.clone();
    by_offset.sort_by_key(|g| (g.partition, g.offset));
    let seq: Vec<&str> = by_offset.iter().map(|g| g.id()).collect();
    let mut sorted = seq.clone();
    sorted.sort();
    assert_eq!(seq, sorted, "replay must keep the spool order");
    assert!(
        seg_files(spool.path()).is_empty(),
        "spool released after replay"
    );
}

fn seg_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    v.sort();
    v
}

/// Not a test on its own: the child process of `f_write_ahead_survives_sigkill`, which
/// sends events with `write_ahead` and prints each id once `send` returned, until killed.
#[test]
fn wal_child_process() {
    let (Ok(dir), Ok(bootstrap)) = (
        std::env::var("ZW_WAL_CHILD_SPOOL"),
        std::env::var("ZW_WAL_CHILD_BROKERS"),
    ) else {
        return;
    };
    let mut cfg = test_config(&bootstrap, Path::new(&dir));
    cfg.spool.write_ahead = true;
    let sink = KafkaSink::start(cfg).unwrap();
    let started = Instant::now();
    let mut i = 0u64;
    while started.elapsed() < Duration::from_secs(60) {
        let id = format!("f-{i:07}");
        send_alert(&sink, &id, &ip_of(i), i);
        println!("SENT {id}");
        i += 1;
    }
}

#[test]
fn f_write_ahead_survives_sigkill() {
    let Some(b) = Broker::start() else { return };
    let spool = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "wal_child_process",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("ZW_WAL_CHILD_SPOOL", spool.path())
        .env("ZW_WAL_CHILD_BROKERS", b.bootstrap())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut sent = HashSet::new();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let deadline = Instant::now() + Duration::from_secs(60);
    while sent.len() < 30_000 && Instant::now() < deadline {
        match lines.next() {
            Some(Ok(l)) => {
                if let Some(id) = l.strip_prefix("SENT ") {
                    sent.insert(id.to_string());
                }
            }
            _ => break,
        }
    }
    child.kill().unwrap(); // SIGKILL, in the middle of sending
    let _ = child.wait();
    assert!(sent.len() >= 1000, "child sent only {}", sent.len());
    // A new sink on the same spool replays what the broker had not acknowledged.
    let mut cfg = test_config(&b.bootstrap(), spool.path());
    cfg.spool.write_ahead = true;
    let sink = KafkaSink::start(cfg).unwrap();
    wait_drained(|| sink.metrics(), Duration::from_secs(60));
    let m = sink.shutdown().unwrap();
    eprintln!("sent {} before SIGKILL; after restart: {m:#?}", sent.len());
    let got = consume(&b.bootstrap(), ALERTS, Duration::from_secs(60), |g| {
        let ids = ids_of(g);
        sent.iter().all(|id| ids.contains(id))
    });
    let ids = ids_of(&got);
    let missing = sent.iter().filter(|id| !ids.contains(*id)).count();
    assert_eq!(missing, 0, "events lost despite write_ahead");
}
