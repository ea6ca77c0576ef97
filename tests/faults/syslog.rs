//! Fault tests: syslog abuse through the binary on 127.0.0.1 (ephemeral ports; at most 2,000
//! connections, seconds each).
//!
//! - 2,000 clients each sending 60 KB without a newline: zonewatch's memory stays within
//!   `syslog.buffer-memcap` plus its baseline, it runs a handful of threads, and a legitimate
//!   client's message still raises its Sigma alert. Lost: the clients' unfinished frames,
//!   counted (`memcap_closed`, `discarded_bytes`).
//! - a slowloris client (one byte every 200 ms) is cut at `syslog.frame-timeout` and counted.
//! - `syslog.max-connections-per-source`: the excess is refused, counted, and logged once (not
//!   once per connection); the source is served again when it is under the limit.
//! - `ulimit -n 64`: zonewatch warns at start, accept failures for want of descriptors are
//!   counted and logged, the listener does not spin and serves again when descriptors free up.
//! - a plain line starting `DIGITS SP <` (an octet count of 1.7 GB) swallows nothing: every
//!   line after it is received; what is discarded (the rest of an over-long line) is counted.

use super::{wait_with_deadline, zonewatch};
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// "SSH Login Accepted" (rules/sigma/zonewatch/ssh_login_success.yml).
const LOGIN_RULE_ID: &str = "6f1b8c62-2a0e-4c1e-9b43-3f7d2f1a0002";

fn login_rule() -> PathBuf {
    super::common::root().join("rules/sigma/zonewatch/ssh_login_success.yml")
}

fn login_line(user: &str) -> String {
    format!(
        "<38>Nov 25 20:30:45 web01 sshd[4242]: Accepted password for {user} from 198.51.100.7 port 50022 ssh2\n"
    )
}

/// A running zonewatch with one TCP listener.
struct Zw {
    child: Child,
    addr: SocketAddr,
    stderr: std::sync::Arc<std::sync::Mutex<String>>,
    out: PathBuf,
}

impl Drop for Zw {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `zonewatch run --syslog-listen tcp://127.0.0.1:0 --rules <login rule> --set K=V...`,
/// under `ulimit -n` when given; waits for the listening line.
fn start(dir: &Path, sets: &[&str], ulimit_n: Option<u32>) -> Zw {
    let out = dir.join("eve.json");
    let mut args: Vec<String> = vec![
        "run".into(),
        "--syslog-listen".into(),
        "tcp://127.0.0.1:0".into(),
        "--rules".into(),
        login_rule().display().to_string(),
        "--output".into(),
        out.display().to_string(),
    ];
    for s in sets {
        args.push("--set".into());
        args.push(s.to_string());
    }
    let mut cmd = match ulimit_n {
        None => {
            let mut c = zonewatch();
            c.args(&args);
            c
        }
        Some(n) => {
            let mut c = Command::new("sh");
            c.env_remove("ZONEWATCH_LOG")
                .arg("-c")
                .arg(format!("ulimit -n {n} && exec \"$0\" \"$@\""))
                .arg(env!("CARGO_BIN_EXE_zonewatch"))
                .args(&args);
            c
        }
    };
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start zonewatch");
    let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let (tx, rx) = std::sync::mpsc::channel();
    let lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let s2 = std::sync::Arc::clone(&stderr);
    std::thread::spawn(move || {
        for l in lines.map_while(Result::ok) {
            if let Some((_, a)) = l.split_once(" listening on ") {
                let _ = tx.send(a.parse::<SocketAddr>().expect("address"));
            }
            let mut s = s2.lock().unwrap();
            s.push_str(&l);
            s.push('\n');
        }
    });
    let addr = match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(a) => a,
        Err(_) => {
            let _ = child.kill();
            panic!("zonewatch did not listen: {}", stderr.lock().unwrap());
        }
    };
    Zw {
        child,
        addr,
        stderr,
        out,
    }
}

impl Zw {
    /// A field of /proc/PID/status, in its first unit (kB for memory).
    fn status(&self, key: &str) -> u64 {
        let s = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("/proc status");
        s.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or_else(|| panic!("no {key} in status"))
    }

    /// CPU time used so far (user + system), in clock ticks.
    fn cpu_ticks(&self) -> u64 {
        let s = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap();
        let rest = &s[s.rfind(')').unwrap() + 2..];
        let f: Vec<&str> = rest.split(' ').collect();
        // Fields 14 and 15 (utime, stime), counted from the state (field 3).
        f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// SIGTERM, wait, and return the final stats event and all events.
    fn stop(mut self) -> (Value, Vec<Value>, String) {
        let st = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(st.success());
        let status = wait_with_deadline(&mut self.child, Duration::from_secs(30), "zonewatch");
        // Let the stderr reader see the last lines.
        std::thread::sleep(Duration::from_millis(100));
        let err = self.stderr();
        assert!(status.success(), "zonewatch exited with {status}: {err}");
        let text = std::fs::read_to_string(&self.out).expect("output");
        let events: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("JSON event"))
            .collect();
        let stats = events
            .iter()
            .rev()
            .find(|e| e["event_type"] == "stats")
            .cloned()
            .unwrap_or_else(|| panic!("no stats event: {err}"));
        (stats, events, err)
    }
}

fn syslog_counter(stats: &Value, key: &str) -> u64 {
    stats["stats"]["syslog"][key]
        .as_u64()
        .unwrap_or_else(|| panic!("stats.syslog.{key} missing: {}", stats["stats"]["syslog"]))
}

fn login_alerts(events: &[Value], user: &str) -> usize {
    events
        .iter()
        .filter(|e| {
            e["event_type"] == "alert"
                && e["evidence"]["sigma"]["rule_id"] == LOGIN_RULE_ID
                && e["log"]["fields"]["user"] == user
        })
        .count()
}

/// Soft limit on open files of this test process.
fn own_fd_limit() -> u64 {
    std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3)?.parse().ok())
        })
        .unwrap_or(1024)
}

fn wait_until(what: &str, within: Duration, mut f: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !f() {
        assert!(t0.elapsed() < within, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Sends a legitimate login line on a fresh connection and closes it.
fn send_login(addr: SocketAddr, user: &str) {
    let mut s = TcpStream::connect(addr).expect("legitimate client connects");
    s.write_all(login_line(user).as_bytes())
        .expect("legitimate client sends");
}

#[test]
fn syslog_clients_without_newline_keep_memory_and_threads_bounded() {
    const MEMCAP_MB: u64 = 16;
    let dir = tempfile::tempdir().unwrap();
    let memcap = format!("syslog.buffer-memcap={MEMCAP_MB}mb");
    let zw = start(
        dir.path(),
        &[
            &memcap,
            "syslog.max-connections-per-source=0",
            "syslog.max-frame-size=64kb",
        ],
        None,
    );
    // Baseline: listening, rules loaded.
    std::thread::sleep(Duration::from_millis(300));
    let base_kb = zw.status("VmRSS");
    let n = 2000.min(own_fd_limit().saturating_sub(100) as usize);
    assert!(n >= 500, "open file limit of the test too low");
    let junk = vec![b'x'; 60_000];
    let mut hogs = Vec::with_capacity(n);
    let t0 = Instant::now();
    for _ in 0..n {
        let Ok(mut s) = TcpStream::connect(zw.addr) else {
            continue;
        };
        s.set_write_timeout(Some(Duration::from_secs(2))).unwrap();
        let _ = s.write_all(&junk);
        hogs.push(s);
    }
    let secs = t0.elapsed().as_secs_f64();
    eprintln!(
        "{n} clients x 60 KB in {secs:.1}s ({:.0} connections/s)",
        n as f64 / secs
    );
    // While they are connected (or being closed), a legitimate client is served.
    send_login(zw.addr, "alice");
    std::thread::sleep(Duration::from_millis(500));
    let rss_kb = zw.status("VmRSS");
    let hwm_kb = zw.status("VmHWM");
    let threads = zw.status("Threads");
    eprintln!("baseline {base_kb} kB; with {n} clients: RSS {rss_kb} kB, peak {hwm_kb} kB, {threads} threads");
    // Unfinished frames are bounded by the memcap; allow as much again for allocator slack,
    // socket bookkeeping and the records in flight.
    let bound_kb = base_kb + 2 * MEMCAP_MB * 1024 + 16 * 1024;
    assert!(
        hwm_kb <= bound_kb,
        "peak RSS {hwm_kb} kB over {bound_kb} kB (baseline {base_kb} kB, memcap {MEMCAP_MB} MB)"
    );
    assert!(threads <= 24, "{threads} threads for {n} clients");
    drop(hogs);
    let (stats, events, _) = zw.stop();
    assert_eq!(login_alerts(&events, "alice"), 1, "legitimate login alert");
    let s = &stats["stats"]["syslog"];
    let input = &s["inputs"]["tcp://127.0.0.1:0"];
    assert!(
        syslog_counter(&stats, "memcap_closed") > 0,
        "memcap closures counted: {s}"
    );
    // What the closed connections held was dropped and counted.
    assert!(syslog_counter(&stats, "discarded_bytes") >= 60_000, "{s}");
    assert!(syslog_counter(&stats, "received") >= 1, "{s}");
    assert_eq!(input["connections_refused"], 0, "{s}");
    assert_eq!(input["connections_open"], 0, "{s}");
}

#[test]
fn syslog_slowloris_is_cut_at_the_frame_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let zw = start(
        dir.path(),
        &["syslog.frame-timeout=1", "syslog.idle-timeout=60"],
        None,
    );
    let mut slow = TcpStream::connect(zw.addr).unwrap();
    slow.set_read_timeout(Some(Duration::from_millis(10)))
        .unwrap();
    let t0 = Instant::now();
    let msg = login_line("mallory");
    let mut closed_after = None;
    // One byte every 200 ms: the idle timeout (60 s) never fires; the frame timeout must.
    for b in msg.as_bytes().iter().cycle().take(50) {
        if slow.write_all(&[*b]).is_err() {
            closed_after = Some(t0.elapsed());
            break;
        }
        let mut buf = [0u8; 1];
        match slow.read(&mut buf) {
            Ok(0) => {
                closed_after = Some(t0.elapsed());
                break;
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => {
                closed_after = Some(t0.elapsed());
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(190));
    }
    let closed_after = closed_after.expect("slow client never disconnected (10 s)");
    assert!(
        closed_after >= Duration::from_millis(900) && closed_after < Duration::from_secs(4),
        "closed after {closed_after:?}, frame timeout 1 s"
    );
    // Others are served meanwhile and after.
    send_login(zw.addr, "alice");
    std::thread::sleep(Duration::from_millis(300));
    let (stats, events, err) = zw.stop();
    assert_eq!(syslog_counter(&stats, "frame_timeouts"), 1);
    assert_eq!(login_alerts(&events, "alice"), 1);
    // The cut frame was delivered (flagged truncated): 2 records.
    assert_eq!(syslog_counter(&stats, "received"), 2);
    assert!(err.contains("closed at frame-timeout"), "{err}");
}

#[test]
fn syslog_per_source_limit_refuses_counts_and_logs_once() {
    let dir = tempfile::tempdir().unwrap();
    let zw = start(dir.path(), &["syslog.max-connections-per-source=5"], None);
    let mut held: Vec<TcpStream> = (0..20)
        .map(|_| TcpStream::connect(zw.addr).unwrap())
        .collect();
    // The 15 over the limit are closed at once.
    let mut closed = 0;
    for s in &mut held {
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    }
    for s in held.iter_mut().skip(5) {
        let mut b = [0u8; 1];
        if matches!(s.read(&mut b), Ok(0) | Err(_)) {
            closed += 1;
        }
    }
    assert_eq!(closed, 15);
    // The admitted ones are served.
    held[0].write_all(login_line("alice").as_bytes()).unwrap();
    wait_until("refusal warning", Duration::from_secs(5), || {
        zw.stderr().contains("max-connections-per-source")
    });
    // Under the limit again: served again.
    drop(held);
    std::thread::sleep(Duration::from_millis(300));
    send_login(zw.addr, "bob");
    std::thread::sleep(Duration::from_millis(300));
    let (stats, events, err) = zw.stop();
    assert_eq!(syslog_counter(&stats, "refused_per_source"), 15);
    assert_eq!(syslog_counter(&stats, "refused"), 15);
    assert_eq!(login_alerts(&events, "alice"), 1);
    assert_eq!(login_alerts(&events, "bob"), 1);
    // Logged, but not once per connection: the first refusal at once, the rest summed in the
    // next warning (at most one per 10 s; here at shutdown).
    let counts: Vec<u64> = err
        .lines()
        .filter_map(|l| {
            let (head, _) = l.split_once(" refused at max-connections-per-source")?;
            head.rsplit(' ').next()?.parse().ok()
        })
        .collect();
    assert!(
        !counts.is_empty() && counts.len() <= 2,
        "{counts:?} warnings: {err}"
    );
    assert_eq!(counts.iter().sum::<u64>(), 15, "{err}");
}

#[test]
fn syslog_low_fd_limit_is_counted_logged_and_survived() {
    let dir = tempfile::tempdir().unwrap();
    let zw = start(
        dir.path(),
        &["syslog.max-connections-per-source=0"],
        Some(64),
    );
    wait_until(
        "the fd limit warning at start",
        Duration::from_secs(5),
        || zw.stderr().contains("open file limit is 64"),
    );
    // 100 clients at once: more than 64 descriptors.
    let mut held: Vec<TcpStream> = (0..100)
        .filter_map(|_| TcpStream::connect(zw.addr).ok())
        .collect();
    wait_until("fd exhaustion warning", Duration::from_secs(5), || {
        zw.stderr().contains("refused for want of file descriptors")
    });
    // Some were admitted and are served.
    let mut served = 0;
    for s in held.iter_mut().take(10) {
        if s.write_all(login_line("carol").as_bytes()).is_ok() {
            served += 1;
        }
    }
    assert!(served > 0);
    // Out of descriptors with connections waiting: the listener backs off, it does not spin.
    for _ in 0..50 {
        let _ = TcpStream::connect(zw.addr).map(|s| held.push(s));
    }
    let ticks0 = zw.cpu_ticks();
    std::thread::sleep(Duration::from_secs(2));
    let ticks = zw.cpu_ticks() - ticks0;
    // Clock ticks are 1/100 s: 2 s of spinning would be 200.
    assert!(
        ticks < 40,
        "{ticks} ticks of CPU in 2 s while out of descriptors"
    );
    let clients = held.len();
    // Descriptors free again: served again.
    drop(held);
    std::thread::sleep(Duration::from_millis(500));
    send_login(zw.addr, "dave");
    std::thread::sleep(Duration::from_millis(300));
    let (stats, events, _) = zw.stop();
    let s = &stats["stats"]["syslog"];
    // Every connection was either admitted or refused for want of descriptors, and counted.
    let refused = syslog_counter(&stats, "refused");
    assert!(refused > 0, "{s}");
    assert_eq!(syslog_counter(&stats, "fd_exhausted"), refused, "{s}");
    let input = &s["inputs"]["tcp://127.0.0.1:0"];
    assert_eq!(
        input["connections"].as_u64().unwrap() + refused,
        clients as u64 + 1,
        "{s}"
    );
    assert!(login_alerts(&events, "carol") >= 1);
    assert_eq!(login_alerts(&events, "dave"), 1, "{s}");
}

#[test]
fn syslog_line_starting_with_a_huge_octet_count_swallows_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let zw = start(dir.path(), &["syslog.max-frame-size=64kb"], None);
    let mut s = TcpStream::connect(zw.addr).unwrap();
    let mut data = Vec::new();
    // The line, and one whose count is followed by a real `<PRI>`.
    data.extend_from_slice(b"1701948000 <alice@example.org> mailbox full\n");
    data.extend_from_slice(b"1701948000 <13>Nov 25 20:30:45 mx01 postfix: mailbox full\n");
    for i in 0..20 {
        data.extend_from_slice(login_line(&format!("user{i}")).as_bytes());
    }
    // One over-long line: cut at 64 KiB, the rest discarded and counted.
    let long = format!("<13>Nov 25 20:30:45 h app: {}", "y".repeat(100_000));
    data.extend_from_slice(long.as_bytes());
    data.push(b'\n');
    data.extend_from_slice(login_line("last").as_bytes());
    s.write_all(&data).unwrap();
    drop(s);
    std::thread::sleep(Duration::from_millis(500));
    let (stats, events, _) = zw.stop();
    let sy = &stats["stats"]["syslog"];
    assert_eq!(syslog_counter(&stats, "received"), 2 + 20 + 1 + 1, "{sy}");
    for i in 0..20 {
        assert_eq!(login_alerts(&events, &format!("user{i}")), 1, "user{i}");
    }
    assert_eq!(login_alerts(&events, "last"), 1);
    assert_eq!(syslog_counter(&stats, "oversize_counts"), 1, "{sy}");
    assert_eq!(syslog_counter(&stats, "truncated"), 1, "{sy}");
    assert_eq!(
        syslog_counter(&stats, "discarded_bytes"),
        (long.len() - 65536) as u64,
        "{sy}"
    );
}
