//! Logs beside packets: `zonewatch run --syslog-file/--syslog-listen` with the
//! Sigma rules under `rules/sigma`, end to end through the real binary.
//!
//! - replay of the committed fixture `fixtures/logs/auth.log` (an SSH brute
//!   force that ends in a login) and of the real SSH logs in
//!   `../shared/data/logs` (skipped when absent): the expected correlation
//!   alerts, naming the attacker, the same bytes on every run;
//! - UDP and TCP listeners on 127.0.0.1 (ephemeral ports) stopped with
//!   SIGTERM: what was received is evaluated and open windows are flushed;
//! - logs and a capture in one run: the packet events are those of a
//!   packet-only run.

mod common;
use common::{root, shared_data};

use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BRUTE_FORCE: &str = "6f1b8c62-2a0e-4c1e-9b43-3f7d2f1a0010";
const REPEATED: &str = "6f1b8c62-2a0e-4c1e-9b43-3f7d2f1a0013";
const SPRAYING: &str = "6f1b8c62-2a0e-4c1e-9b43-3f7d2f1a0011";
const SUCCESS_AFTER: &str = "6f1b8c62-2a0e-4c1e-9b43-3f7d2f1a0012";

/// A correlation with an upper bound: it can only be decided when its window
/// ends, so its alert appears only if zonewatch flushes at the end.
const FLUSH_ONLY_RULE: &str = "title: Test Few SSH Failures In An Hour
id: 0b5e7a2c-0000-4000-8000-00000000f1f1
status: test
correlation:
    type: event_count
    rules:
        - zw_ssh_auth_failure
    group-by:
        - src_host
    timespan: 1h
    condition:
        gte: 2
        lte: 1000
level: low
";

fn note(msg: &str) {
    let _ = writeln!(std::io::stderr(), "note: {msg}");
}

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_zonewatch"))
}

/// Runs `zonewatch run ARGS --output OUT`; returns the events written.
fn run(args: &[&str], out: &Path) -> Vec<Value> {
    let o = bin()
        .arg("run")
        .args(args)
        .arg("--output")
        .arg(out)
        .output()
        .expect("run zonewatch");
    assert!(
        o.status.success(),
        "zonewatch {args:?} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    parse(&std::fs::read_to_string(out).expect("read output"))
}

fn parse(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

/// Sigma alerts: (rule id, src_ip, correlation count).
fn sigma_alerts(ev: &[Value]) -> Vec<(String, String, u64)> {
    ev.iter()
        .filter(|e| e["event_type"] == "alert" && e["evidence"]["sigma"].is_object())
        .map(|e| {
            let s = &e["evidence"]["sigma"];
            (
                s["rule_id"].as_str().unwrap_or_default().to_string(),
                e["src_ip"].as_str().unwrap_or_default().to_string(),
                s["correlation"]["count"].as_u64().unwrap_or(0),
            )
        })
        .collect()
}

fn stats(ev: &[Value]) -> &Value {
    &ev.iter()
        .rev()
        .find(|e| e["event_type"] == "stats")
        .expect("a stats event")["stats"]
}

/// Every line but the stats events (uptime and wall-clock times differ).
fn without_stats(text: &str) -> String {
    text.lines()
        .filter(|l| !l.contains("\"event_type\":\"stats\""))
        .collect::<Vec<_>>()
        .join("\n")
}

fn sigma_rules() -> String {
    root().join("rules/sigma").display().to_string()
}

fn auth_log() -> PathBuf {
    root().join("fixtures/logs/auth.log")
}

/// Runs `--syslog-file LOG --rules <the project's Sigma rules> EXTRA`; returns
/// the events written to `out`.
fn run_log_with_sigma(log: &Path, extra: &[&str], out: &Path) -> Vec<Value> {
    let rules = sigma_rules();
    let mut args = vec!["--syslog-file", log.to_str().unwrap(), "--rules", &rules];
    args.extend_from_slice(extra);
    run(&args, out)
}

#[test]
fn fixture_auth_log_replay_raises_the_brute_force_alerts_deterministically() {
    let dir = tempfile::tempdir().unwrap();
    let log = auth_log();
    let args = [
        "--syslog-file",
        log.to_str().unwrap(),
        "--rules",
        &sigma_rules(),
    ];
    let a = dir.path().join("a.json");
    let ev = run(&args, &a);
    let got = sigma_alerts(&ev);
    let attacker = "203.0.113.50".to_string();
    let want = vec![
        (REPEATED.to_string(), attacker.clone(), 3),
        (BRUTE_FORCE.to_string(), attacker.clone(), 5),
        (SPRAYING.to_string(), attacker.clone(), 5),
        (REPEATED.to_string(), attacker.clone(), 3),
        (SUCCESS_AFTER.to_string(), attacker.clone(), 2),
    ];
    assert_eq!(got, want);
    // The user who only ever logged in successfully is never named.
    let text = std::fs::read_to_string(&a).unwrap();
    assert!(!text.contains("198.51.100.7"), "legitimate user named");
    // Record time, EVE fields, the Sigma mapping and the privacy default.
    let bf = ev
        .iter()
        .find(|e| e["evidence"]["sigma"]["rule_id"] == BRUTE_FORCE)
        .unwrap();
    assert_eq!(bf["timestamp"], "2026-11-19T18:15:26.390002+0000");
    assert_eq!(bf["alert"]["signature"], "SSH Brute Force From One Source");
    assert_eq!(bf["alert"]["severity"], 2);
    assert_eq!(bf["alert"]["gid"], 1);
    assert_eq!(bf["alert"]["category"], "Log: credential-access");
    let sid = bf["alert"]["signature_id"].as_u64().unwrap();
    assert!((2_000_000_000..3_000_000_000).contains(&sid), "{sid}");
    assert_eq!(bf["alert"]["metadata"]["sigma_id"][0], BRUTE_FORCE);
    assert_eq!(
        bf["evidence"]["sigma"]["correlation"]["group"]["src_host"],
        "203.0.113.50"
    );
    assert_eq!(bf["log"]["hostname"], "gw01");
    assert_eq!(bf["log"]["program"], "sshd");
    assert_eq!(bf["log"]["fields"]["user"], "ubuntu");
    assert!(bf["log"].get("raw").is_none());
    let st = stats(&ev);
    assert_eq!(st["syslog"]["received"], 13);
    assert_eq!(st["syslog"]["parsed"], 13);
    assert_eq!(st["syslog"]["dropped"], 0);
    assert_eq!(st["sigma"]["rules_loaded"], 24);
    assert_eq!(st["sigma"]["rules_skipped"], 0);
    assert_eq!(st["sigma"]["correlation_alerts"], 5);
    assert_eq!(st["output"]["events"]["alert"], 5);
    // Same bytes (ids included) on a second run.
    let b = dir.path().join("b.json");
    run(&args, &b);
    assert_eq!(
        without_stats(&text),
        without_stats(&std::fs::read_to_string(&b).unwrap())
    );
    // The raw message only when allowed.
    let c = dir.path().join("c.json");
    let mut with_msg = args.to_vec();
    with_msg.extend(["--set", "syslog.include-message=true"]);
    let ev = run(&with_msg, &c);
    let bf = ev
        .iter()
        .find(|e| e["evidence"]["sigma"]["rule_id"] == BRUTE_FORCE)
        .unwrap();
    assert_eq!(
        bf["log"]["raw"],
        "Failed password for invalid user ubuntu from 203.0.113.50 port 41009 ssh2"
    );
}

#[test]
fn end_of_file_input_flushes_open_correlation_windows() {
    let dir = tempfile::tempdir().unwrap();
    let rule = dir.path().join("few_failures.yml");
    std::fs::write(&rule, FLUSH_ONLY_RULE).unwrap();
    let log = auth_log();
    let out = dir.path().join("o.json");
    let ev = run_log_with_sigma(&log, &["--rules", rule.to_str().unwrap()], &out);
    let got = sigma_alerts(&ev);
    let last = got.last().expect("alerts");
    assert_eq!(
        last,
        &(
            "0b5e7a2c-0000-4000-8000-00000000f1f1".to_string(),
            "203.0.113.50".to_string(),
            6
        ),
        "{got:?}"
    );
    // Written after every record's alerts, before the final stats.
    assert_eq!(ev[ev.len() - 2]["evidence"]["sigma"]["rule_id"], last.0);
}

#[test]
fn real_ssh_logs_raise_correlations_naming_the_attacker() {
    let Some(data) = shared_data() else {
        note("../shared/data absent: real-log replay skipped");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // (file, an attacker a brute-force correlation must name)
    let cases: [(PathBuf, &str); 3] = [
        (data.join("logs/loghub/Linux/Linux_2k.log"), "218.188.2.4"),
        (data.join("logs/fail2ban/sshd"), "127.0.0.1"),
        (data.join("logs/fail2ban/sshd-journal"), "127.0.0.1"),
    ];
    let correlations = [BRUTE_FORCE, REPEATED, SPRAYING];
    for (i, (file, attacker)) in cases.iter().enumerate() {
        if !file.is_file() {
            note(&format!("{} absent: skipped", file.display()));
            continue;
        }
        let args = [
            "--syslog-file",
            file.to_str().unwrap(),
            "--rules",
            &sigma_rules(),
        ];
        let a = dir.path().join(format!("{i}a.json"));
        let ev = run(&args, &a);
        let got = sigma_alerts(&ev);
        let named: Vec<&str> = ev
            .iter()
            .filter(|e| {
                correlations.contains(&e["evidence"]["sigma"]["rule_id"].as_str().unwrap_or(""))
            })
            .filter_map(|e| e["evidence"]["sigma"]["correlation"]["group"]["src_host"].as_str())
            .collect();
        assert!(
            named.contains(attacker),
            "{}: no brute-force correlation names {attacker}: {got:?}",
            file.display()
        );
        // Alerts naming an address carry it as src_ip.
        for e in ev.iter().filter(|e| e["event_type"] == "alert") {
            if let Some(h) = e["evidence"]["sigma"]["correlation"]["group"]["src_host"].as_str() {
                if h.parse::<std::net::IpAddr>().is_ok() {
                    assert_eq!(e["src_ip"], h);
                }
            }
        }
        let st = stats(&ev);
        assert_eq!(st["syslog"]["received"], st["syslog"]["parsed"]);
        assert!(st["syslog"]["received"].as_u64().unwrap() > 0);
        // Deterministic: same bytes on a second run.
        let b = dir.path().join(format!("{i}b.json"));
        run(&args, &b);
        assert_eq!(
            without_stats(&std::fs::read_to_string(&a).unwrap()),
            without_stats(&std::fs::read_to_string(&b).unwrap()),
            "{}: output differs between runs",
            file.display()
        );
        note(&format!(
            "{}: {} Sigma alerts, attackers named: {}",
            file.display(),
            got.len(),
            {
                let mut n = named.clone();
                n.sort();
                n.dedup();
                n.len()
            }
        ));
    }
}

/// A running zonewatch with its listeners' addresses.
struct Zw {
    child: std::process::Child,
    addrs: Vec<(String, std::net::SocketAddr)>,
    stderr: std::thread::JoinHandle<String>,
}

impl Drop for Zw {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_listening(args: &[&str], out: &Path) -> Zw {
    let mut child = bin()
        .arg("run")
        .args(args)
        .arg("--output")
        .arg(out)
        .stderr(Stdio::piped())
        .spawn()
        .expect("start zonewatch");
    let want = args.iter().filter(|a| **a == "--syslog-listen").count();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut addrs = Vec::new();
    let mut seen = String::new();
    // "zonewatch: syslog: URL listening on ADDR"
    while addrs.len() < want {
        let Some(Ok(l)) = lines.next() else {
            panic!("zonewatch ended before listening: {seen}");
        };
        seen.push_str(&l);
        seen.push('\n');
        if let Some(rest) = l.strip_prefix("zonewatch: syslog: ") {
            let (url, addr) = rest.split_once(" listening on ").expect("listening line");
            addrs.push((url.to_string(), addr.parse().expect("address")));
        }
    }
    let stderr = std::thread::spawn(move || {
        let mut s = seen;
        for l in lines.map_while(Result::ok) {
            s.push_str(&l);
            s.push('\n');
        }
        s
    });
    Zw {
        child,
        addrs,
        stderr,
    }
}

fn stop(mut zw: Zw) -> String {
    let pid = zw.child.id().to_string();
    let st = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(st.success());
    let t0 = Instant::now();
    loop {
        if let Some(s) = zw.child.try_wait().unwrap() {
            assert!(s.success(), "zonewatch exited with {s}");
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "zonewatch did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let h = std::mem::replace(&mut zw.stderr, std::thread::spawn(String::new));
    h.join().unwrap()
}

#[test]
fn udp_and_tcp_listeners_alert_and_flush_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let rule = dir.path().join("few_failures.yml");
    std::fs::write(&rule, FLUSH_ONLY_RULE).unwrap();
    let out = dir.path().join("o.json");
    let zw = start_listening(
        &[
            "--syslog-listen",
            "udp://127.0.0.1:0",
            "--syslog-listen",
            "tcp://127.0.0.1:0",
            "--rules",
            &sigma_rules(),
            "--rules",
            rule.to_str().unwrap(),
            "--set",
            "syslog.max-frame-size=512",
        ],
        &out,
    );
    let udp = zw.addrs[0].1;
    let tcp = zw.addrs[1].1;
    assert_eq!(zw.addrs[0].0, "udp://127.0.0.1:0");
    // UDP: three BSD-syslog failures from 192.0.2.77 (3 in 2 minutes).
    let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    for i in 0..3 {
        let m = format!(
            "<38>Nov 20 03:15:1{i} gw01 sshd[420{i}]: Failed password for root from 192.0.2.77 port 4100{i} ssh2"
        );
        s.send_to(m.as_bytes(), udp).unwrap();
        std::thread::sleep(Duration::from_millis(20));
    }
    // TCP: five RFC 5424 failures from 192.0.2.88, octet-counted and
    // LF-terminated frames mixed, five user names (spraying), and one frame
    // longer than the maximum (truncated and counted, still delivered).
    let mut c = std::net::TcpStream::connect(tcp).unwrap();
    for i in 0..5 {
        let m = format!(
            "<38>1 2026-11-20T03:15:2{i}+09:00 gw02 sshd 43{i} - - Failed password for invalid user u{i} from 192.0.2.88 port 4200{i} ssh2"
        );
        if i % 2 == 0 {
            write!(c, "{} {m}", m.len()).unwrap();
        } else {
            writeln!(c, "{m}").unwrap();
        }
    }
    writeln!(
        c,
        "<38>1 2026-11-20T03:16:00+09:00 gw02 app - - - {}",
        "x".repeat(2000)
    )
    .unwrap();
    drop(c);
    // Wait until everything has arrived (UDP on loopback is not lost at
    // this rate), then stop as an operator would.
    std::thread::sleep(Duration::from_millis(800));
    let stderr = stop(zw);
    let ev = parse(&std::fs::read_to_string(&out).unwrap());
    let got = sigma_alerts(&ev);
    let has =
        |rule: &str, ip: &str, n: u64| got.iter().any(|g| g.0 == rule && g.1 == ip && g.2 == n);
    assert!(has(REPEATED, "192.0.2.77", 3), "{got:?}\n{stderr}");
    assert!(has(REPEATED, "192.0.2.88", 3), "{got:?}");
    assert!(has(BRUTE_FORCE, "192.0.2.88", 5), "{got:?}");
    assert!(has(SPRAYING, "192.0.2.88", 5), "{got:?}");
    // Flushed at shutdown: the upper-bounded window of each source.
    let flush_id = "0b5e7a2c-0000-4000-8000-00000000f1f1";
    assert!(has(flush_id, "192.0.2.77", 3), "{got:?}");
    assert!(has(flush_id, "192.0.2.88", 5), "{got:?}");
    // The sender's address is in the evidence.
    let a = ev.iter().find(|e| e["src_ip"] == "192.0.2.77").unwrap();
    assert!(a["log"]["source"]
        .as_str()
        .unwrap()
        .starts_with("127.0.0.1:"));
    let st = stats(&ev);
    let u = &st["syslog"]["inputs"]["udp://127.0.0.1:0"];
    let t = &st["syslog"]["inputs"]["tcp://127.0.0.1:0"];
    assert_eq!(u["received"], 3, "{st}");
    assert_eq!(u["parsed"], 3);
    assert_eq!(u["dropped"], 0);
    assert_eq!(t["received"], 6, "{st}");
    assert_eq!(t["parsed"], 6);
    assert_eq!(t["truncated"], 1);
    assert_eq!(t["connections"], 1);
    assert_eq!(st["syslog"]["received"], 9);
    assert_eq!(st["syslog"]["truncated"], 1);
    assert_eq!(st["sigma"]["records"], 9);
    assert_eq!(st["sigma"]["matches"], 8);
    assert!(
        stderr.contains("zonewatch: logs: 9 records received"),
        "{stderr}"
    );
}

#[test]
fn logs_and_a_capture_in_one_run() {
    let dir = tempfile::tempdir().unwrap();
    let cap = root().join("fixtures/demo.pcap");
    let log = auth_log();
    let only = dir.path().join("pcap.json");
    let both = dir.path().join("both.json");
    let base = [
        "--pcap",
        cap.to_str().unwrap(),
        "--workers",
        "2",
        "--set",
        "stats.interval=0",
    ];
    let ev_only = run(&base, &only);
    let mut args = base.to_vec();
    let rules = sigma_rules();
    args.extend(["--syslog-file", log.to_str().unwrap(), "--rules", &rules]);
    let ev = run(&args, &both);
    assert_eq!(sigma_alerts(&ev).len(), 5);
    // The packet events are those of the packet-only run, in the same order
    // (event ids differ: the log file is one of the inputs).
    let packets = |ev: &[Value]| -> Vec<Value> {
        ev.iter()
            .filter(|e| e["event_type"] != "stats" && e["evidence"]["sigma"].is_null())
            .map(|e| {
                let mut e = e.clone();
                e.as_object_mut().unwrap().remove("event_id");
                e
            })
            .collect()
    };
    let p_only = packets(&ev_only);
    assert!(p_only.iter().any(|e| e["event_type"] == "flow"));
    assert_eq!(p_only, packets(&ev));
    let st = stats(&ev);
    assert!(st["decoder"]["pkts"].as_u64().unwrap() > 0);
    assert_eq!(st["syslog"]["received"], 13);
    // A second mixed run writes the same events with the same ids; only
    // where the log alerts fall between the packet events may differ
    // (they are written as they arrive).
    let again = dir.path().join("again.json");
    run(&args, &again);
    let sorted = |p: &Path| {
        let t = without_stats(&std::fs::read_to_string(p).unwrap());
        let mut v: Vec<String> = t.lines().map(str::to_string).collect();
        v.sort();
        v
    };
    assert_eq!(sorted(&both), sorted(&again));
}

#[test]
fn logs_from_stdin_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o.json");
    let mut child = bin()
        .args([
            "run",
            "--syslog-file",
            "-",
            "--rules",
            &sigma_rules(),
            "--output",
        ])
        .arg(&out)
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&std::fs::read(auth_log()).unwrap())
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        sigma_alerts(&parse(&std::fs::read_to_string(&out).unwrap())).len(),
        5
    );
    // A missing log file and a TLS listener without certificate are errors.
    for args in [
        &["run", "--syslog-file", "/nonexistent/auth.log"][..],
        &["run", "--syslog-listen", "tls://127.0.0.1:0"][..],
        &["run", "--syslog-listen", "ftp://127.0.0.1:0"][..],
    ] {
        let o = bin().args(args).arg("--output").arg(&out).output().unwrap();
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        let e = String::from_utf8_lossy(&o.stderr);
        let last = e.lines().last().unwrap_or_default();
        assert!(last.starts_with("zonewatch: error: "), "{e}");
    }
}

/// Issue #14 item 10, in files: a plain line that starts like an octet count (`DIGITS SP <`)
/// is a line, whatever the count, and swallows nothing; what is cut is counted.
#[test]
fn replayed_lines_starting_with_a_huge_count_swallow_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("mail.log");
    let mut text = String::new();
    text.push_str("1701948000 <alice@example.org> mailbox full\n");
    text.push_str("1701948000 <22>Nov 25 20:30:45 mx01 postfix/local[7]: mailbox full\n");
    for i in 0..30 {
        text.push_str(&format!(
            "Nov 25 20:31:{i:02} web01 sshd[4242]: Failed password for root from 203.0.113.{i} port 4{i:04} ssh2\n"
        ));
    }
    let long = format!("Nov 25 20:32:00 web01 app: {}", "y".repeat(10_000));
    text.push_str(&long);
    text.push('\n');
    text.push_str("Nov 25 20:33:00 web01 app: the last line\n");
    std::fs::write(&log, &text).unwrap();
    let out = dir.path().join("o.json");
    let ev = run_log_with_sigma(&log, &["--set", "syslog.max-frame-size=4kb"], &out);
    let s = &stats(&ev)["syslog"];
    assert_eq!(s["received"], 2 + 30 + 1 + 1, "{s}");
    assert_eq!(s["oversize_counts"], 1, "{s}");
    assert_eq!(s["truncated"], 1, "{s}");
    assert_eq!(s["discarded_bytes"], (long.len() - 4096) as u64, "{s}");
    // The 30 failures after the count line reached the Sigma rules.
    assert!(
        stats(&ev)["sigma"]["matches"].as_u64().unwrap() >= 30,
        "{}",
        stats(&ev)["sigma"]
    );
}
