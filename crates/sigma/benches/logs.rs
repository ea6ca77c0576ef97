//! Log ingestion + Sigma benchmark (issue #6, item 6), with a Debian peer in the same run.
//!
//! ```sh
//! export CARGO_TARGET_DIR=/work/target-syslog
//! cargo bench -p zonewatch-sigma --bench logs
//! ```
//!
//! Settings (environment): `ZW_BENCH_LINES` (corpus size), `ZW_BENCH_ROUNDS` (best of),
//! `ZW_BENCH_RATES` (paced latency runs, msg/s, default `100000,300000`), `ZW_BENCH_ONLY` (comma-separated sections:
//! `memory`, `file`, `tcp`, `peer`; default all — ratios need `memory`, `tcp` and `peer`).
//!
//! Corpus: the real lines of loghub Linux, Mac and Apache and fail2ban `sshd` (6,155 lines),
//! repeated to `ZW_BENCH_LINES` (default 500,000) lines, in memory and written to a temporary
//! file (removed at the end). Rules: the SigmaHQ linux rules (`../shared/data/sigma/rules/linux`)
//! and zonewatch's own (`rules/sigma`). Every figure is the best of `ZW_BENCH_ROUNDS`
//! (default 3) rounds; each round checks its detection and alert counts against the first, and
//! every mode (in memory, file replay, TCP) against the in-memory counts, so the benchmark is
//! also a correctness check.
//!
//! Measured, one core unless said otherwise:
//! - parse only (`zonewatch_syslog::parse`, fields extracted);
//! - match only (pre-parsed records) and parse + match, per rule set: parse + match as the
//!   binary runs it (parsed without field extraction, `Engine::process_deferred` extracting
//!   when a rule may need the fields), and with every record's fields extracted at parse time;
//! - file replay: `zonewatch_syslog::replay` (framing + parsing) on one thread, the Sigma
//!   engine on another, as the binary runs it;
//! - TCP loopback: one client sends every line as an LF-terminated `<13>` frame to
//!   `zonewatch_syslog::spawn` (lines that already start with `<PRI>` are sent as they are) (framing + parsing on the connection thread); the consumer
//!   only counts (parse), or runs the engine (parse + match);
//! - receive → alert latency (hdrhistogram, µs): from the record's receive time (taken by the
//!   listener when it parsed the frame) to the alert leaving the engine, at paced rates
//!   (`ZW_BENCH_RATES`), with the binary's channel size (at full speed the figure would only
//!   measure the queue);
//! - the peer: Debian's rsyslogd (`-n`, its own config and port on 127.0.0.1, imtcp → omfile
//!   with the traditional file format) receiving the same frames over TCP loopback into a file;
//!   reported as msg/s and zonewatch/rsyslog ratios. If rsyslogd is missing, the bench says so
//!   and continues.

use crossbeam_channel::bounded;
use hdrhistogram::Histogram;
use std::io::{BufRead, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use zonewatch_sigma::{CorrelationLimits, Engine, RuleSet, SigmaConfig, SigmaMatch};
use zonewatch_syslog::{
    now, parse, replay, spawn, Counters, ListenSpec, ListenerConfig, LogRecord, ParseOptions,
    ReplayConfig, Shutdown, Timestamp,
};

/// Year reference of the in-memory and replay runs (BSD timestamps carry no year).
const REFERENCE: Timestamp = Timestamp(1_136_000_000 * 1_000_000_000);

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(default)
}

fn corpus(data: &Path, n: usize) -> Vec<Vec<u8>> {
    let mut base = Vec::new();
    for f in [
        "logs/loghub/Linux/Linux_2k.log",
        "logs/loghub/Mac/Mac_2k.log",
        "logs/loghub/Apache/Apache_2k.log",
        "logs/fail2ban/sshd",
    ] {
        let t = std::fs::read(data.join(f)).expect("corpus file");
        base.extend(
            t.split(|&b| b == b'\n')
                .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
                .filter(|l| !l.is_empty() && l[0] != b'#')
                .map(<[u8]>::to_vec),
        );
    }
    base.iter().cycle().take(n).cloned().collect()
}

/// Detection matches and alerts of one pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Counts {
    matches: u64,
    alerts: u64,
}

/// Best rate over rounds; the counts of every round must agree.
#[derive(Default)]
struct Best {
    rate: f64,
    counts: Option<Counts>,
}

impl Best {
    fn add(&mut self, what: &str, n: usize, secs: f64, c: Counts) {
        self.rate = self.rate.max(n as f64 / secs);
        match self.counts {
            None => self.counts = Some(c),
            Some(prev) => assert_eq!(prev, c, "{what}: counts differ between rounds"),
        }
    }
    fn counts(&self) -> Counts {
        self.counts.unwrap_or_default()
    }
}

fn drain(out: &mut Vec<SigmaMatch>, alerts: &mut u64) {
    *alerts += out.len() as u64;
    out.clear();
}

fn finish(mut e: Engine, out: &mut Vec<SigmaMatch>, mut alerts: u64) -> Counts {
    e.flush(out);
    alerts += out.len() as u64;
    out.clear();
    Counts {
        matches: e.stats().detection_matches,
        alerts,
    }
}

fn match_only(rules: &Arc<RuleSet>, recs: &[LogRecord]) -> (f64, Counts) {
    let t = Instant::now();
    let mut e = Engine::new(Arc::clone(rules), CorrelationLimits::default());
    let mut out = Vec::new();
    let mut alerts = 0;
    for r in recs {
        e.process(r, &mut out);
        drain(&mut out, &mut alerts);
    }
    let c = finish(e, &mut out, alerts);
    (t.elapsed().as_secs_f64(), c)
}

/// Parse + match. `deferred`: as the binary runs it — parsed without field extraction,
/// fields extracted by the engine only when a rule may need them
/// ([`Engine::process_deferred`]); else every record's fields are extracted at parse time.
fn parse_and_match(
    rules: &Arc<RuleSet>,
    lines: &[Vec<u8>],
    opts: &ParseOptions,
    deferred: bool,
) -> (f64, Counts) {
    let popts = input_parse(opts, deferred);
    let t = Instant::now();
    let mut e = Engine::new(Arc::clone(rules), CorrelationLimits::default());
    let mut out = Vec::new();
    let mut alerts = 0;
    for l in lines {
        let mut r = parse(l, REFERENCE, None, &popts);
        if deferred {
            e.process_deferred(&mut r, &mut out);
        } else {
            e.process(&r, &mut out);
        }
        drain(&mut out, &mut alerts);
    }
    let c = finish(e, &mut out, alerts);
    (t.elapsed().as_secs_f64(), c)
}

/// Parse options of the inputs: with `deferred`, no extraction at parse time (the engine's
/// `process_deferred` extracts when needed), as `crates/pipeline/src/logs.rs` does.
fn input_parse(opts: &ParseOptions, deferred: bool) -> ParseOptions {
    ParseOptions {
        extract_fields: opts.extract_fields && !deferred,
        ..*opts
    }
}

/// Replay of the corpus file on one thread, the engine on this one (as the binary: fields
/// extracted by the engine when needed).
fn file_replay(rules: &Arc<RuleSet>, file: &Path, opts: &ParseOptions, n: usize) -> (f64, Counts) {
    let (tx, rx) = bounded::<LogRecord>(65_536);
    let t = Instant::now();
    let f = std::fs::File::open(file).expect("corpus file");
    let opts = input_parse(opts, true);
    let reader = std::thread::spawn(move || {
        let cfg = ReplayConfig {
            max_frame_bytes: 64 * 1024,
            parse: opts,
            reference: REFERENCE,
        };
        let c = Counters::default();
        replay(
            std::io::BufReader::with_capacity(256 << 10, f),
            &cfg,
            &tx,
            &c,
            &Shutdown::new(),
        )
        .expect("replay");
    });
    let mut e = Engine::new(Arc::clone(rules), CorrelationLimits::default());
    let mut out = Vec::new();
    let mut alerts = 0;
    let mut got = 0;
    for mut r in rx.iter() {
        got += 1;
        e.process_deferred(&mut r, &mut out);
        drain(&mut out, &mut alerts);
    }
    reader.join().expect("replay thread");
    assert_eq!(got, n, "file replay: records");
    let c = finish(e, &mut out, alerts);
    (t.elapsed().as_secs_f64(), c)
}

fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("histogram bounds")
}

/// Sends `frames` (whole buffer) to `addr`; `rate` > 0 paces to about that many frames/s
/// (in slices of 1 ms).
fn send(addr: std::net::SocketAddr, frames: Arc<Vec<u8>>, n: usize, rate: usize) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_nodelay(rate > 0).ok();
    if rate == 0 {
        for chunk in frames.chunks(64 << 10) {
            s.write_all(chunk).expect("send");
        }
        return;
    }
    let per_ms = (rate / 1000).max(1);
    let t = Instant::now();
    let mut sent = 0usize;
    let mut pos = 0usize;
    while sent < n {
        let mut end = pos;
        let mut k = 0;
        while k < per_ms && end < frames.len() {
            end += memchr::memchr(b'\n', &frames[end..]).map_or(frames.len() - end, |p| p + 1);
            k += 1;
        }
        s.write_all(&frames[pos..end]).expect("send");
        pos = end;
        sent += k;
        let due = Duration::from_secs_f64(sent as f64 / rate as f64);
        let el = t.elapsed();
        if due > el {
            std::thread::sleep(due - el);
        }
    }
}

/// What a TCP run measured.
struct TcpRun {
    secs: f64,
    counts: Counts,
    latency: Histogram<u64>,
    /// Records dropped by the listener on a full channel.
    dropped: u64,
}

/// One client → zonewatch's TCP listener → channel → this thread (`rules` None: only count).
fn tcp_run(
    rules: Option<&Arc<RuleSet>>,
    frames: &Arc<Vec<u8>>,
    n: usize,
    rate: usize,
    channel: usize,
) -> TcpRun {
    let (tx, rx) = bounded::<LogRecord>(channel);
    let sd = Shutdown::new();
    // As the binary: without rules (parse only) fields are extracted by the listener; with
    // rules the engine extracts them when needed.
    let lcfg = ListenerConfig::default();
    let lcfg = ListenerConfig {
        parse: input_parse(&lcfg.parse, rules.is_some()),
        ..lcfg
    };
    let l = spawn(
        &ListenSpec::Tcp("127.0.0.1:0".parse().expect("addr")),
        lcfg,
        tx,
        sd.clone(),
    )
    .expect("listener");
    let addr = l.local_addr();
    let mut engine = rules.map(|r| Engine::new(Arc::clone(r), CorrelationLimits::default()));
    let mut out = Vec::new();
    let mut alerts = 0;
    let mut latency = new_histogram();
    let frames2 = Arc::clone(frames);
    let t = Instant::now();
    let sender = std::thread::spawn(move || send(addr, frames2, n, rate));
    let mut got = 0;
    let mut secs = 0.0f64;
    let mut idle = Instant::now();
    while got < n {
        let Ok(mut r) = rx.recv_timeout(Duration::from_millis(100)) else {
            // Dropped records never arrive: stop when every record is accounted for.
            if got as u64 + l.counters().snapshot().dropped >= n as u64
                || idle.elapsed() > Duration::from_secs(20)
            {
                break;
            }
            continue;
        };
        idle = Instant::now();
        got += 1;
        if let Some(e) = engine.as_mut() {
            e.process_deferred(&mut r, &mut out);
            if !out.is_empty() {
                let us = now().0.saturating_sub(r.received.0).max(0) as u64 / 1000;
                for _ in 0..out.len() {
                    latency.saturating_record(us.max(1));
                }
                alerts += out.len() as u64;
                out.clear();
            }
        }
        secs = t.elapsed().as_secs_f64();
    }
    sender.join().expect("sender");
    let c = l.counters().snapshot();
    sd.shutdown();
    l.join();
    assert_eq!(got as u64 + c.dropped, n as u64, "TCP: records lost");
    let counts = match engine {
        Some(e) => finish(e, &mut out, alerts),
        None => Counts::default(),
    };
    TcpRun {
        secs,
        counts,
        latency,
        dropped: c.dropped,
    }
}

/// rsyslogd in the foreground with its own config, port and work directory.
struct Rsyslog {
    child: Child,
    out: PathBuf,
    port: u16,
}

fn rsyslogd() -> Option<PathBuf> {
    ["/usr/sbin/rsyslogd", "/sbin/rsyslogd"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

impl Rsyslog {
    fn start(bin: &Path, dir: &Path) -> std::io::Result<Rsyslog> {
        let work = dir.join("rsyslog");
        let _ = std::fs::remove_dir_all(&work);
        std::fs::create_dir_all(&work)?;
        let port = {
            let l = TcpListener::bind("127.0.0.1:0")?;
            l.local_addr()?.port()
        };
        let out = work.join("out.log");
        let conf = work.join("rsyslog.conf");
        std::fs::write(
            &conf,
            format!(
                "global(workDirectory=\"{w}\" maxMessageSize=\"64k\")\n\
                 module(load=\"imtcp\")\n\
                 input(type=\"imtcp\" address=\"127.0.0.1\" port=\"{port}\")\n\
                 *.* action(type=\"omfile\" file=\"{o}\" template=\"RSYSLOG_TraditionalFileFormat\")\n",
                w = work.display(),
                o = out.display(),
            ),
        )?;
        let child = Command::new(bin)
            .arg("-n")
            .arg("-f")
            .arg(&conf)
            .arg("-i")
            .arg(work.join("rsyslogd.pid"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()?;
        let mut r = Rsyslog { child, out, port };
        let t = Instant::now();
        loop {
            if TcpStream::connect(("127.0.0.1", r.port)).is_ok() {
                return Ok(r);
            }
            if let Ok(Some(st)) = r.child.try_wait() {
                let mut err = String::new();
                if let Some(mut e) = r.child.stderr.take() {
                    let _ = e.read_to_string(&mut err);
                }
                return Err(std::io::Error::other(format!(
                    "rsyslogd exited ({st}): {}",
                    err.trim()
                )));
            }
            if t.elapsed() > Duration::from_secs(10) {
                r.stop();
                return Err(std::io::Error::other("rsyslogd did not listen within 10 s"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends the frames and waits until `n` lines are in the output file.
    fn run(&mut self, frames: &Arc<Vec<u8>>, n: usize) -> Option<f64> {
        // The probe connection of `start` logged nothing; the file may not exist yet.
        let addr = ("127.0.0.1", self.port)
            .to_socket_addrs_first()
            .expect("address");
        let frames2 = Arc::clone(frames);
        let t = Instant::now();
        let sender = std::thread::spawn(move || send(addr, frames2, n, 0));
        let mut lines = 0usize;
        let mut offset = 0u64;
        let mut buf = vec![0u8; 1 << 20];
        let deadline = Duration::from_secs(120);
        let mut done = None;
        while t.elapsed() < deadline {
            if let Ok(mut f) = std::fs::File::open(&self.out) {
                use std::io::Seek;
                if f.seek(std::io::SeekFrom::Start(offset)).is_ok() {
                    while let Ok(k) = f.read(&mut buf) {
                        if k == 0 {
                            break;
                        }
                        offset += k as u64;
                        lines += memchr::memchr_iter(b'\n', &buf[..k]).count();
                    }
                }
            }
            if lines >= n {
                done = Some(t.elapsed().as_secs_f64());
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        sender.join().expect("sender");
        if done.is_none() {
            eprintln!("rsyslog: only {lines} of {n} lines arrived within {deadline:?}");
        }
        done
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        self.stop();
    }
}

trait FirstAddr {
    fn to_socket_addrs_first(&self) -> Option<std::net::SocketAddr>;
}

impl FirstAddr for (&str, u16) {
    fn to_socket_addrs_first(&self) -> Option<std::net::SocketAddr> {
        use std::net::ToSocketAddrs;
        self.to_socket_addrs().ok()?.next()
    }
}

fn percentiles(h: &Histogram<u64>) -> String {
    if h.is_empty() {
        return "no alerts".into();
    }
    format!(
        "p50 {} µs, p99 {} µs, p99.9 {} µs, max {} µs ({} alerts)",
        h.value_at_quantile(0.5),
        h.value_at_quantile(0.99),
        h.value_at_quantile(0.999),
        h.max(),
        h.len()
    )
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let data = root.join("../shared/data");
    if !data.is_dir() {
        eprintln!("logs bench: {} absent (skipped)", data.display());
        return;
    }
    // `cargo bench` passes `--bench`; a filter argument is not supported.
    let n = env_usize("ZW_BENCH_LINES", 500_000);
    let rounds = env_usize("ZW_BENCH_ROUNDS", 3).max(1);
    let rates: Vec<usize> = std::env::var("ZW_BENCH_RATES")
        .unwrap_or_else(|_| "100000,300000".into())
        .split(',')
        .filter_map(|v| v.trim().replace('_', "").parse().ok())
        .filter(|&r: &usize| r > 0)
        .collect();
    let only = std::env::var("ZW_BENCH_ONLY").unwrap_or_default();
    let run = |section: &str| only.is_empty() || only.split(',').any(|s| s.trim() == section);
    let lines = corpus(&data, n);
    let bytes: usize = lines.iter().map(|l| l.len() + 1).sum();
    let dir = std::env::temp_dir().join(format!("zw-logs-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("corpus.log");
    {
        let mut w = std::io::BufWriter::new(std::fs::File::create(&file).expect("corpus file"));
        for l in &lines {
            w.write_all(l)
                .and_then(|_| w.write_all(b"\n"))
                .expect("write");
        }
        w.flush().expect("write");
    }
    let mut frames = Vec::with_capacity(bytes + 4 * n);
    for l in &lines {
        // Lines that already carry a `<PRI>` (fail2ban's RFC 5424 samples) are sent as they are.
        let has_pri =
            l.first() == Some(&b'<') && l.iter().take(5).skip(1).position(|&b| b == b'>').is_some();
        if !has_pri {
            frames.extend_from_slice(b"<13>");
        }
        frames.extend_from_slice(l);
        frames.push(b'\n');
    }
    let frames = Arc::new(frames);
    let cores = std::thread::available_parallelism().map_or(0, |c| c.get());
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "corpus: {n} lines, {:.1} MB (loghub Linux/Mac/Apache + fail2ban sshd, repeated); \
         best of {rounds}; {cores} cores, load average {}",
        bytes as f64 / 1e6,
        load.split(' ').take(3).collect::<Vec<_>>().join(" ")
    );

    let opts = ParseOptions::default();
    let load_rules = |paths: &[PathBuf]| {
        let r = RuleSet::load_paths(paths, &SigmaConfig::default());
        (Arc::new(r.rules), r.errors.len())
    };
    let sigmahq = data.join("sigma/rules/linux");
    let ours = root.join("rules/sigma");
    let sets: Vec<(&str, Arc<RuleSet>, usize)> = [
        ("SigmaHQ linux", vec![sigmahq.clone()]),
        ("zonewatch rules", vec![ours.clone()]),
        ("SigmaHQ linux + zonewatch", vec![sigmahq, ours]),
    ]
    .into_iter()
    .map(|(name, p)| {
        let (r, errs) = load_rules(&p);
        (name, r, errs)
    })
    .collect();
    for (name, r, errs) in &sets {
        println!(
            "rules: {name}: {} detections + {} correlations loaded ({} inactive on syslog), {errs} skipped",
            r.detections.len(),
            r.correlations.len(),
            r.inactive
        );
    }
    let full = Arc::clone(&sets[2].1);

    // Reference counts of the full set (every other mode must agree with them).
    let (_, full_counts) = parse_and_match(&full, &lines, &opts, false);
    let mut parse_match_rate = None;
    if run("memory") {
        // Parse only: each record is dropped after parsing, as after matching.
        let mut parse_best = Best::default();
        for _ in 0..rounds {
            let t = Instant::now();
            let mut fields = 0u64;
            for l in &lines {
                let r = std::hint::black_box(parse(l, REFERENCE, None, &opts));
                fields += r.fields.len() as u64;
            }
            let secs = t.elapsed().as_secs_f64();
            parse_best.add(
                "parse",
                n,
                secs,
                Counts {
                    matches: fields,
                    alerts: 0,
                },
            );
        }
        let recs: Vec<LogRecord> = lines
            .iter()
            .map(|l| parse(l, REFERENCE, None, &opts))
            .collect();
        println!("\n== one core, in memory (msg/s) ==");
        println!(
            "{:<28} {:>10.0}   ({} fields extracted)",
            "parse only",
            parse_best.rate,
            parse_best.counts().matches
        );
        for (name, rules, _) in &sets {
            let (mut mo, mut pm, mut pe) = (Best::default(), Best::default(), Best::default());
            for _ in 0..rounds {
                let (s, c) = match_only(rules, &recs);
                mo.add(name, n, s, c);
                let (s, c2) = parse_and_match(rules, &lines, &opts, true);
                assert_eq!(c, c2, "{name}: match only vs parse + match");
                pm.add(name, n, s, c2);
                let (s, c3) = parse_and_match(rules, &lines, &opts, false);
                assert_eq!(c, c3, "{name}: match only vs parse (all fields) + match");
                pe.add(name, n, s, c3);
            }
            let c = pm.counts();
            println!(
                "{name:<28} match only {:>10.0}   parse + match {:>10.0}   ({} matches, {} alerts; \
                 every record's fields extracted at parse time: {:.0})",
                mo.rate, pm.rate, c.matches, c.alerts, pe.rate
            );
            if Arc::ptr_eq(rules, &full) {
                assert_eq!(c, full_counts, "{name}: counts");
                parse_match_rate = Some(pm.rate);
            }
        }
    }

    let mut file_rate = None;
    if run("file") {
        println!("\n== file replay (replay thread parses, engine thread matches; SigmaHQ + zonewatch) ==");
        let mut fr = Best::default();
        for _ in 0..rounds {
            let (s, c) = file_replay(&full, &file, &opts, n);
            assert_eq!(c, full_counts, "file replay vs in memory");
            fr.add("file", n, s, c);
        }
        println!(
            "{:<28} {:>10.0} msg/s ({} matches, {} alerts: as in memory)",
            "file → parse + match", fr.rate, full_counts.matches, full_counts.alerts
        );
        file_rate = Some(fr.rate);
    }

    let mut tcp_rates = None;
    if run("tcp") {
        println!("\n== TCP loopback, one client, LF-framed <PRI> frames ==");
        let mut tcp_parse = Best::default();
        let mut tcp_full = Best::default();
        for _ in 0..rounds {
            // A channel that holds the whole corpus: the listener drops nothing (it drops
            // the newest record on a full channel rather than stall the sender), so the
            // rate is the end-to-end one and the counts can be checked.
            let r = tcp_run(None, &frames, n, 0, n);
            assert_eq!(r.dropped, 0, "TCP parse: drops");
            tcp_parse.add("tcp parse", n, r.secs, Counts::default());
            let r = tcp_run(Some(&full), &frames, n, 0, n);
            assert_eq!(r.dropped, 0, "TCP parse + match: drops");
            // Receive times differ from the replay reference: only detections must agree
            // (correlation windows depend on the inferred year).
            assert_eq!(
                r.counts.matches, full_counts.matches,
                "TCP detections vs in memory"
            );
            tcp_full.add(
                "tcp full",
                n,
                r.secs,
                Counts {
                    matches: r.counts.matches,
                    alerts: 0,
                },
            );
        }
        println!("{:<28} {:>10.0} msg/s", "TCP → parse", tcp_parse.rate);
        println!(
            "{:<28} {:>10.0} msg/s ({} matches, as in memory)",
            "TCP → parse + match", tcp_full.rate, full_counts.matches
        );
        // Latency at paced rates, with the binary's channel size (65,536 records).
        for rate in &rates {
            let paced_n = n.min(rate * 5).max(1000);
            let r = tcp_run(Some(&full), &frames, paced_n, *rate, 65_536);
            println!(
                "receive → alert, {rate} msg/s offered ({paced_n} msgs, {:.0} msg/s, {} dropped): {}",
                paced_n as f64 / r.secs,
                r.dropped,
                percentiles(&r.latency)
            );
        }
        tcp_rates = Some((tcp_parse.rate, tcp_full.rate));
    }

    if run("peer") {
        println!("\n== peer: rsyslogd, TCP loopback → file, same frames ==");
        match rsyslogd() {
            None => println!(
                "rsyslogd not installed (apt-get install rsyslog): peer not measured, no ratios"
            ),
            Some(bin) => peer(&bin, &dir, &frames, n, rounds, |best| {
                let mut parts = Vec::new();
                if let Some((p, f)) = tcp_rates {
                    parts.push(format!("TCP parse {:.2}", p / best));
                    parts.push(format!("TCP parse + match {:.2}", f / best));
                }
                if let Some(f) = file_rate {
                    parts.push(format!("file parse + match {:.2}", f / best));
                }
                if let Some(m) = parse_match_rate {
                    parts.push(format!("in-memory parse + match, one core {:.2}", m / best));
                }
                if !parts.is_empty() {
                    println!("ratio zonewatch/rsyslogd: {}", parts.join(", "));
                }
            }),
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Best of `rounds` rsyslogd runs; `ratios` gets its rate.
fn peer(
    bin: &Path,
    dir: &Path,
    frames: &Arc<Vec<u8>>,
    n: usize,
    rounds: usize,
    ratios: impl FnOnce(f64),
) {
    let mut best = 0f64;
    let mut failed = None;
    for _ in 0..rounds {
        match Rsyslog::start(bin, dir) {
            Ok(mut r) => {
                let s = r.run(frames, n);
                r.stop();
                match s {
                    Some(s) => best = best.max(n as f64 / s),
                    None => failed = Some("not every line arrived".to_string()),
                }
            }
            Err(e) => {
                failed = Some(e.to_string());
                break;
            }
        }
    }
    if best == 0.0 {
        println!(
            "rsyslogd could not be measured: {}",
            failed.unwrap_or_default()
        );
        return;
    }
    let v = Command::new(bin)
        .arg("-v")
        .output()
        .ok()
        .and_then(|o| {
            o.stdout
                .lines()
                .next()
                .and_then(Result::ok)
                .map(|l| l.split_whitespace().take(2).collect::<Vec<_>>().join(" "))
        })
        .unwrap_or_default();
    println!("{:<28} {:>10.0} msg/s ({v})", "rsyslogd TCP → file", best);
    if let Some(why) = failed {
        println!("(some rsyslogd rounds failed: {why})");
    }
    ratios(best);
}
