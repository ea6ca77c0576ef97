//! The Prometheus endpoint (`--metrics-listen`) and SIGUSR1, end to end
//! through the real binary on 127.0.0.1 (ephemeral ports):
//!
//! - a scrape with `curl` and the text parsed by a Prometheus parser
//!   (`prometheus-parse`) and by a strict check of the format: every sample
//!   under a `# HELP` and `# TYPE`, counters ending in `_total`, every
//!   family documented in `docs/metrics.md`;
//! - the scraped values equal the counters of the same run's final stats
//!   event (syslog listeners receiving N messages; a capture replayed while
//!   a listener keeps the process up);
//! - 404 for other paths, 405 for other methods, and bogus, oversized,
//!   idle and half-sent requests leave the server answering;
//! - SIGUSR1 writes a stats event at once with `--stats-interval 0`.

mod common;
use common::root;

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

/// A running zonewatch and what it said on stderr.
struct Zw {
    child: std::process::Child,
    syslog: Vec<SocketAddr>,
    metrics: Option<SocketAddr>,
    stderr: Arc<Mutex<String>>,
}

impl Drop for Zw {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `zonewatch run ARGS --output OUT` and waits (at most 30 s) for
/// its listeners' and metrics endpoint's addresses on stderr.
fn start(args: &[&str], out: &Path) -> Zw {
    let mut child = Command::new(env!("CARGO_BIN_EXE_zonewatch"))
        .arg("run")
        .args(args)
        .arg("--output")
        .arg(out)
        .env_remove("ZONEWATCH_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start zonewatch");
    let want_syslog = args.iter().filter(|a| **a == "--syslog-listen").count();
    let want_metrics =
        args.contains(&"--metrics-listen") || args.iter().any(|a| a.starts_with("metrics.listen="));
    let stderr = Arc::new(Mutex::new(String::new()));
    let (tx, rx) = mpsc::channel();
    let lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let s2 = Arc::clone(&stderr);
    std::thread::spawn(move || {
        for l in lines.map_while(Result::ok) {
            if let Some(rest) = l.strip_prefix("zonewatch: syslog: ") {
                if let Some((_, a)) = rest.split_once(" listening on ") {
                    let _ = tx.send((false, a.parse::<SocketAddr>().expect("address")));
                }
            }
            if let Some(rest) = l.strip_prefix("zonewatch: metrics: serving http://") {
                let a = rest.strip_suffix("/metrics").expect("metrics line");
                let _ = tx.send((true, a.parse::<SocketAddr>().expect("address")));
            }
            let mut s = s2.lock().unwrap();
            s.push_str(&l);
            s.push('\n');
        }
    });
    let mut zw = Zw {
        child,
        syslog: Vec::new(),
        metrics: None,
        stderr,
    };
    let t0 = Instant::now();
    while zw.syslog.len() < want_syslog || (want_metrics && zw.metrics.is_none()) {
        match rx.recv_timeout(Duration::from_secs(30).saturating_sub(t0.elapsed())) {
            Ok((true, a)) => zw.metrics = Some(a),
            Ok((false, a)) => zw.syslog.push(a),
            Err(_) => panic!(
                "zonewatch did not start listening: {}",
                zw.stderr.lock().unwrap()
            ),
        }
    }
    zw
}

impl Zw {
    fn signal(&self, sig: &str) {
        let st = Command::new("kill")
            .args([&format!("-{sig}"), &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(st.success(), "kill -{sig}");
    }

    /// SIGTERM; waits (at most 20 s) for exit status 0.
    fn stop(&mut self) {
        self.signal("TERM");
        let t0 = Instant::now();
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                assert!(
                    s.success(),
                    "zonewatch exited with {s}: {}",
                    self.stderr.lock().unwrap()
                );
                return;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "zonewatch did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

/// Sends raw bytes, then reads the reply until the server closes (at most
/// 10 s); the status line's code and the whole reply.
fn http_raw(addr: SocketAddr, request: &[u8]) -> (u16, String) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // The server may answer (and close) before taking everything.
    let _ = s.write_all(request);
    let mut reply = Vec::new();
    let _ = s.read_to_end(&mut reply);
    let reply = String::from_utf8_lossy(&reply).into_owned();
    let code = reply
        .strip_prefix("HTTP/1.1 ")
        .and_then(|r| r.get(..3))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, reply)
}

/// `GET /metrics` by hand; the body.
fn scrape_raw(addr: SocketAddr) -> String {
    let (code, reply) = http_raw(addr, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(code, 200, "{reply}");
    reply
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default()
}

/// A scrape with curl: (status, content type, body).
fn curl(addr: SocketAddr, path: &str, extra: &[&str]) -> (u16, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let body = dir.path().join("body");
    let o = Command::new("curl")
        .args(["-sS", "--max-time", "10", "-o"])
        .arg(&body)
        .args(["-w", "%{http_code} %{content_type}"])
        .args(extra)
        .arg(format!("http://{addr}{path}"))
        .output()
        .expect("curl (installed by scripts/install-deps.sh)");
    assert!(
        o.status.success(),
        "curl failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let w = String::from_utf8(o.stdout).unwrap();
    let (code, ctype) = w.split_once(' ').unwrap_or((&w, ""));
    (
        code.parse().unwrap(),
        ctype.to_string(),
        std::fs::read_to_string(&body).unwrap_or_default(),
    )
}

/// Checks the exposition format strictly; returns family → type.
fn check_format(text: &str) -> BTreeMap<String, String> {
    let mut help = BTreeSet::new();
    let mut types: BTreeMap<String, String> = BTreeMap::new();
    let mut current = String::new();
    let mut series = BTreeSet::new();
    for line in text.lines() {
        if let Some(r) = line.strip_prefix("# HELP ") {
            let (name, h) = r.split_once(' ').expect("HELP name text");
            assert!(!h.trim().is_empty(), "empty HELP for {name}");
            assert!(help.insert(name.to_string()), "two HELP lines for {name}");
            continue;
        }
        if let Some(r) = line.strip_prefix("# TYPE ") {
            let (name, t) = r.split_once(' ').expect("TYPE name type");
            assert!(help.contains(name), "TYPE without HELP before it: {name}");
            assert!(
                ["counter", "gauge", "histogram", "summary"].contains(&t),
                "{line}"
            );
            assert_eq!(
                name.ends_with("_total"),
                t == "counter",
                "counters and only counters end in _total: {line}"
            );
            assert!(
                name.starts_with("zonewatch_")
                    && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                "{name}"
            );
            assert!(
                types.insert(name.to_string(), t.to_string()).is_none(),
                "two TYPE lines for {name}"
            );
            current = name.to_string();
            continue;
        }
        assert!(!line.starts_with('#') && !line.is_empty(), "{line:?}");
        let name_end = line.find(['{', ' ']).expect("sample");
        let name = &line[..name_end];
        let family = match types.get(&current).map(String::as_str) {
            Some("histogram") => name
                .strip_prefix(current.as_str())
                .filter(|s| ["_bucket", "_sum", "_count"].contains(s))
                .map(|_| current.as_str()),
            Some("summary") => name
                .strip_prefix(current.as_str())
                .filter(|s| ["", "_sum", "_count"].contains(s))
                .map(|_| current.as_str()),
            _ => (name == current).then_some(current.as_str()),
        };
        assert!(
            family.is_some(),
            "sample outside its family's HELP/TYPE block: {line}"
        );
        let value = line.rsplit(' ').next().unwrap();
        assert!(
            value.parse::<f64>().is_ok() || value == "+Inf" || value == "NaN",
            "{line}"
        );
        let key = &line[..line.len() - value.len()];
        assert!(series.insert(key.to_string()), "series twice: {line}");
    }
    types
}

/// Parses with the Prometheus parser crate and checks that every sample
/// has HELP text; sample metric name (and labels) → value(s).
fn parse(text: &str) -> prometheus_parse::Scrape {
    let s = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
        .expect("Prometheus text parses");
    assert!(!s.samples.is_empty());
    for x in &s.samples {
        // The parser keeps a histogram's or summary's `_sum` and `_count`
        // as samples of their own.
        let family = ["_sum", "_count"]
            .iter()
            .find_map(|suf| x.metric.strip_suffix(suf))
            .filter(|b| s.docs.contains_key(*b))
            .unwrap_or(&x.metric);
        assert!(s.docs.contains_key(family), "no HELP for {}", x.metric);
    }
    s
}

/// A counter's or gauge's value in a parsed scrape, if present.
fn try_value(s: &prometheus_parse::Scrape, metric: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let x = s.samples.iter().find(|x| {
        x.metric == metric
            && labels
                .iter()
                .all(|(k, v)| x.labels.get(k).is_some_and(|l| l == *v))
    })?;
    match x.value {
        prometheus_parse::Value::Counter(v)
        | prometheus_parse::Value::Gauge(v)
        | prometheus_parse::Value::Untyped(v) => Some(v),
        ref v => panic!("{metric} is {v:?}"),
    }
}

/// A counter's or gauge's value in a parsed scrape.
fn value(s: &prometheus_parse::Scrape, metric: &str, labels: &[(&str, &str)]) -> f64 {
    try_value(s, metric, labels).unwrap_or_else(|| panic!("no sample {metric}{labels:?}"))
}

/// Every family is named in docs/metrics.md.
fn check_documented(types: &BTreeMap<String, String>) {
    let doc = std::fs::read_to_string(root().join("docs/metrics.md")).expect("docs/metrics.md");
    let missing: Vec<&String> = types
        .keys()
        .filter(|n| !doc.contains(&format!("`{n}`")))
        .collect();
    assert!(missing.is_empty(), "not in docs/metrics.md: {missing:?}");
}

/// The sample lines of the stats-derived metrics.
fn stats_lines(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .map(str::to_string)
        .collect()
}

/// Scrapes until two scrapes at least 1.1 s apart agree on every sample
/// derived from the stats object and `ready` holds (at most 15 s): the
/// counters have settled.
fn settled(addr: SocketAddr, ready: impl Fn(&prometheus_parse::Scrape) -> bool) -> String {
    let t0 = Instant::now();
    let mut last: Option<BTreeSet<String>> = None;
    loop {
        let text = scrape_raw(addr);
        let s = parse(&text);
        let now: BTreeSet<String> = stats_lines(&text)
            .into_iter()
            .filter(|l| {
                !["zonewatch_uptime_seconds", "zonewatch_stats_age_seconds"]
                    .iter()
                    .any(|p| l.starts_with(p))
            })
            .collect();
        if ready(&s) && last.as_ref() == Some(&now) {
            return text;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(15),
            "counters did not settle:\n{text}"
        );
        last = Some(now);
        std::thread::sleep(Duration::from_millis(1100));
    }
}

fn events(out: &Path) -> Vec<Value> {
    std::fs::read_to_string(out)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect()
}

fn stats_events(out: &Path) -> Vec<Value> {
    events(out)
        .into_iter()
        .filter(|e| e["event_type"] == "stats")
        .collect()
}

/// Every sample the final stats event's counters make is in the scrape,
/// with the same value.
fn assert_scrape_is_final_stats(scrape: &str, out: &Path) {
    let last = stats_events(out).pop().expect("final stats event");
    let want = zonewatch_metrics::render_stats(&last["stats"]);
    let got = stats_lines(scrape);
    let want_lines = stats_lines(&want);
    assert!(want_lines.len() > 100, "{want}");
    let missing: Vec<&String> = want_lines.difference(&got).collect();
    assert!(
        missing.is_empty(),
        "scraped values differ from the final stats event: {missing:#?}"
    );
}

#[test]
fn syslog_counters_scraped_with_curl_equal_the_final_stats() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o.json");
    let mut zw = start(
        &[
            "--syslog-listen",
            "udp://127.0.0.1:0",
            "--syslog-listen",
            "tcp://127.0.0.1:0",
            "--metrics-listen",
            "127.0.0.1:0",
            "--stats-interval",
            "0",
        ],
        &out,
    );
    let m = zw.metrics.unwrap();
    const UDP: usize = 25;
    const TCP: usize = 10;
    let u = UdpSocket::bind("127.0.0.1:0").unwrap();
    for i in 0..UDP {
        let msg = format!("<38>Nov 20 03:15:{i:02} gw01 sshd[4200]: Failed password for root from 192.0.2.77 port 41000 ssh2");
        u.send_to(msg.as_bytes(), zw.syslog[0]).unwrap();
        // Loopback UDP does not drop at this pace.
        std::thread::sleep(Duration::from_millis(2));
    }
    {
        let mut c = TcpStream::connect(zw.syslog[1]).unwrap();
        for i in 0..TCP {
            writeln!(
                c,
                "<38>1 2026-11-20T03:15:{i:02}+09:00 gw02 sshd 43 - - Accepted publickey for u{i}"
            )
            .unwrap();
        }
    }
    let text = settled(m, |s| {
        let n = Some((UDP + TCP) as f64);
        try_value(s, "zonewatch_syslog_received_total", &[]) == n
            && try_value(s, "zonewatch_sigma_records_total", &[]) == n
            && try_value(
                s,
                "zonewatch_syslog_input_connections_open",
                &[("input", "tcp://127.0.0.1:0")],
            ) == Some(0.0)
    });

    // curl: the real scrape.
    let (code, ctype, body) = curl(m, "/metrics", &[]);
    assert_eq!(code, 200);
    assert!(ctype.starts_with("text/plain; version=0.0.4"), "{ctype}");
    let types = check_format(&body);
    check_documented(&types);
    let s = parse(&body);
    assert_eq!(
        value(&s, "zonewatch_syslog_received_total", &[]),
        (UDP + TCP) as f64
    );
    assert_eq!(
        value(
            &s,
            "zonewatch_syslog_input_received_total",
            &[("input", "udp://127.0.0.1:0")]
        ),
        UDP as f64
    );
    assert_eq!(
        value(
            &s,
            "zonewatch_syslog_input_received_total",
            &[("input", "tcp://127.0.0.1:0")]
        ),
        TCP as f64
    );
    assert_eq!(
        value(
            &s,
            "zonewatch_syslog_input_connections_total",
            &[("input", "tcp://127.0.0.1:0")]
        ),
        1.0
    );
    assert_eq!(
        value(
            &s,
            "zonewatch_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        1.0
    );
    assert!(value(&s, "zonewatch_uptime_seconds", &[]) > 0.0);
    assert!(value(&s, "zonewatch_stats_age_seconds", &[]) < 3.0);
    assert_eq!(
        value(&s, "zonewatch_rules_loaded", &[("kind", "sigma")]),
        0.0
    );
    // The log thread's queue to the output thread, and its bound.
    assert!(
        value(
            &s,
            "zonewatch_pipeline_queue_capacity",
            &[("queue", "output")]
        ) > 0.0
    );
    assert_eq!(types["zonewatch_pipeline_latency_seconds"], "histogram");
    assert_eq!(types["zonewatch_sigma_alert_latency_seconds"], "summary");
    assert_eq!(types["zonewatch_flow_active"], "gauge");

    // Other paths and methods.
    for p in ["/", "/metrics/", "/metricsx", "/favicon.ico", "/stats"] {
        assert_eq!(curl(m, p, &[]).0, 404, "{p}");
    }
    assert_eq!(curl(m, "/metrics", &["-X", "POST"]).0, 405);
    assert_eq!(curl(m, "/metrics?name[]=x", &["-g"]).0, 200);
    assert_eq!(curl(m, "/metrics", &["-I"]).0, 200);

    // Abuse: none of it stops the server.
    assert_eq!(http_raw(m, b"\x00\x01\x02 hello\r\n\r\n").0, 400);
    assert_eq!(http_raw(m, b"GET /metrics\r\n\r\n").0, 400);
    let huge = format!(
        "GET /metrics HTTP/1.1\r\nX-Long: {}\r\n\r\n",
        "a".repeat(100_000)
    );
    assert_eq!(http_raw(m, huge.as_bytes()).0, 431);
    // Half a request, then the client goes away.
    let _ = TcpStream::connect(m).unwrap().write_all(b"GET /met");
    // A client that connects and sends nothing holds the server for at
    // most its 2 s deadline; the next scrape is answered after it.
    let idle = TcpStream::connect(m).unwrap();
    let t0 = Instant::now();
    let (code, _, _) = curl(m, "/metrics", &[]);
    assert_eq!(code, 200);
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    drop(idle);
    // A slow client that sends a byte at a time past the deadline.
    let mut slow = TcpStream::connect(m).unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let t0 = Instant::now();
    for b in b"GET /metrics HTTP/1.1\r\n" {
        if slow.write_all(&[*b]).is_err() {
            break;
        }
        std::thread::sleep(Duration::from_millis(150));
    }
    let mut reply = String::new();
    let _ = slow.read_to_string(&mut reply);
    assert!(reply.starts_with("HTTP/1.1 408"), "{reply:?}");
    assert!(t0.elapsed() < Duration::from_secs(6));
    assert!(zw.alive());
    assert_eq!(parse(&scrape_raw(m)).samples.len(), s.samples.len());

    zw.stop();
    assert_scrape_is_final_stats(&text, &out);
    let last = stats_events(&out).pop().unwrap();
    assert_eq!(last["stats"]["syslog"]["received"], (UDP + TCP) as u64);
}

#[test]
fn capture_counters_and_latency_histogram_equal_the_final_stats() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o.json");
    let cap = root().join("fixtures/demo.pcap");
    // The listener keeps the process up after the capture ends; the
    // endpoint's address from the configuration key.
    let mut zw = start(
        &[
            "--pcap",
            cap.to_str().unwrap(),
            "--syslog-listen",
            "udp://127.0.0.1:0",
            "--workers",
            "2",
            "--set",
            "metrics.listen=127.0.0.1:0",
            "--stats-interval",
            "0",
        ],
        &out,
    );
    let m = zw.metrics.unwrap();
    let text = settled(m, |s| {
        try_value(s, "zonewatch_decoder_pkts_total", &[]).is_some_and(|n| n > 0.0)
            && try_value(s, "zonewatch_flow_active", &[]) == Some(0.0)
            && try_value(s, "zonewatch_syslog_received_total", &[]).is_some()
    });
    let types = check_format(&text);
    check_documented(&types);
    let s = parse(&text);
    let pkts = value(&s, "zonewatch_decoder_pkts_total", &[]);
    assert_eq!(
        value(&s, "zonewatch_pipeline_pkts_processed_total", &[]),
        pkts
    );
    // The latency histogram: one observation per packet, cumulative
    // buckets ending in +Inf = count.
    let h = s
        .samples
        .iter()
        .find(|x| x.metric == "zonewatch_pipeline_latency_seconds")
        .expect("latency histogram");
    let prometheus_parse::Value::Histogram(b) = &h.value else {
        panic!("not a histogram: {h:?}");
    };
    assert!(b
        .windows(2)
        .all(|w| w[0].count <= w[1].count && w[0].less_than < w[1].less_than));
    let inf = b.last().unwrap();
    assert!(inf.less_than.is_infinite());
    assert_eq!(inf.count, pkts);
    assert_eq!(
        value(&s, "zonewatch_pipeline_latency_seconds_count", &[]),
        pkts
    );
    assert!(value(&s, "zonewatch_pipeline_latency_seconds_sum", &[]) > 0.0);
    assert!(value(&s, "zonewatch_flows_total", &[]) > 0.0);
    assert!(
        value(
            &s,
            "zonewatch_output_events_total",
            &[("event_type", "flow")]
        ) > 0.0
    );
    assert!(
        value(
            &s,
            "zonewatch_decoder_events_total",
            &[("event", "ipv4.trunc_pkt")]
        ) > 0.0
    );

    zw.stop();
    assert_scrape_is_final_stats(&text, &out);
    let last = stats_events(&out).pop().unwrap();
    assert_eq!(
        last["stats"]["decoder"]["pkts"].as_u64().unwrap() as f64,
        pkts
    );
}

#[test]
fn sigusr1_writes_a_stats_event_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o.json");
    let mut zw = start(
        &[
            "--syslog-listen",
            "udp://127.0.0.1:0",
            "--stats-interval",
            "0",
        ],
        &out,
    );
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(stats_events(&out).len(), 0, "no periodic stats");
    for n in 1..=2 {
        let t0 = Instant::now();
        zw.signal("USR1");
        while stats_events(&out).len() < n {
            assert!(zw.alive(), "SIGUSR1 ended zonewatch");
            assert!(
                t0.elapsed() < Duration::from_secs(2),
                "no stats event within 2 s of SIGUSR1"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!("stats event {n} after {:?}", t0.elapsed());
    }
    assert!(zw.alive());
    zw.stop();
    let st = stats_events(&out);
    assert_eq!(st.len(), 3, "two on request and the final one");
    // Each has the counters, and a time of now, not of 1970.
    for e in &st {
        assert!(e["stats"]["decoder"]["pkts"].is_u64(), "{e}");
        assert!(!e["timestamp"].as_str().unwrap().starts_with("1970"), "{e}");
    }
    assert!(st[2]["stats"]["syslog"]["received"].is_u64());
}

#[test]
fn bad_or_busy_metrics_address_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o.json");
    let run = |addr: &str| {
        Command::new(env!("CARGO_BIN_EXE_zonewatch"))
            .args(["run", "--syslog-listen", "udp://127.0.0.1:0"])
            .args(["--metrics-listen", addr, "--output"])
            .arg(&out)
            .output()
            .unwrap()
    };
    let o = run("localhost:9187");
    assert_eq!(o.status.code(), Some(1));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("--metrics-listen") && e.contains("ADDR:PORT"),
        "{e}"
    );
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let o = run(&busy.local_addr().unwrap().to_string());
    assert_eq!(o.status.code(), Some(1));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("metrics endpoint"), "{e}");
}
