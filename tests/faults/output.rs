//! Fault tests: the EVE output fails (`/dev/full`, a full tmpfs) and the
//! operator must hear of it at once: a log line naming the output, the run
//! stopped, exit status 1. Threshold trackers expire and say so in stats.

use crate::{demo_pcap, is_root_or_skip, wait_with_deadline, zonewatch};
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// File input, `--output /dev/full`: exit 1 with one line naming the
/// output and the reason, said once (not "…(os error 28): …(os error 28)").
#[test]
fn dev_full_output_fails_the_run_with_one_clear_line() {
    let o = zonewatch()
        .args(["run", "--pcap"])
        .arg(demo_pcap())
        .args(["--output", "/dev/full", "--workers", "2"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    let line = err
        .lines()
        .find(|l| l.starts_with("zonewatch: error:"))
        .unwrap_or_else(|| panic!("no error line: {err}"));
    assert!(line.contains("/dev/full"), "{line}");
    assert_eq!(line.matches("os error 28").count(), 1, "said twice: {line}");
    // Colour codes only on a terminal (stderr is a pipe here).
    assert!(!err.contains('\u{1b}'), "ANSI escapes on a pipe: {err:?}");
}

/// A syslog listener (a run that never ends by itself) writing to
/// `/dev/full`: the failure is noticed within seconds of the first event
/// (the output is flushed every second), logged, and the process exits 1.
/// Before: it read on and discarded everything until SIGTERM.
#[test]
fn listener_with_failing_output_exits_within_seconds() {
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = zonewatch()
        .args(["run", "--syslog-listen"])
        .arg(format!("udp://127.0.0.1:{port}"))
        .arg("--rules")
        .arg(crate::common::root().join("rules/sigma"))
        .args(["--output", "/dev/full", "--stats-interval", "0"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let t0 = Instant::now();
    let mut exited = None;
    // Send until the sensor notices (it must, within seconds).
    while t0.elapsed() < Duration::from_secs(15) {
        let line = "<38>Nov 25 20:30:45 web1 sshd[4242]: Failed password for root from 203.0.113.9 port 51234 ssh2";
        let _ = sock.send_to(line.as_bytes(), ("127.0.0.1", port));
        if let Some(s) = child.try_wait().unwrap() {
            exited = Some(s);
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let status = match exited {
        Some(s) => s,
        None => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("still running 15 s after its output failed");
        }
    };
    let mut err = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(err.contains("ERROR") && err.contains("/dev/full"), "{err}");
}

/// A real full disk: the output on a 16 KiB tmpfs in a private mount
/// namespace. The run stops with exit 1 and says "No space left"; what was
/// written before is whole JSON lines up to the point of failure.
#[test]
fn full_disk_under_the_output_stops_the_run() {
    if !is_root_or_skip("full_disk_under_the_output_stops_the_run") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let script = format!(
        "mount -t tmpfs -o size=16k tmpfs {m} && exec \"$0\" run --pcap {p} --output {m}/eve.json --workers 2 --stats-interval 0; ",
        m = mnt.display(),
        p = demo_pcap().display()
    );
    // A capture big enough to overflow 16 KiB of events: the demo, 8 times.
    let caps: Vec<String> = (0..8).map(|_| demo_pcap().display().to_string()).collect();
    let script = script.replace(
        &format!("--pcap {}", demo_pcap().display()),
        &caps
            .iter()
            .map(|c| format!("--pcap {c}"))
            .collect::<Vec<_>>()
            .join(" "),
    );
    let mut child = std::process::Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", &script])
        .arg(env!("CARGO_BIN_EXE_zonewatch"))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = wait_with_deadline(&mut child, Duration::from_secs(60), "full-disk run");
    let mut err = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(err.contains("No space left on device"), "{err}");
    assert!(err.contains("eve.json"), "the error names the file: {err}");
}

/// Thresholds: finished windows are swept on the packet clock and the
/// trackers' counters reach the stats event (`detect.threshold`). Before,
/// `AlertFilter::expire` was never called and evictions never reported.
#[test]
fn threshold_trackers_expire_and_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("t.rules");
    let mut f = std::fs::File::create(&rules).unwrap();
    writeln!(
        f,
        "alert ip any any -> any any (msg:\"zw threshold probe\"; threshold: type limit, track by_src, count 1, seconds 2; sid:9100001; rev:1;)"
    )
    .unwrap();
    let out = dir.path().join("eve.json");
    let text =
        crate::common::run_zonewatch(&demo_pcap(), &["--rules", rules.to_str().unwrap()], &out)
            .unwrap();
    let t = &crate::final_stats(&text)["detect"]["threshold"];
    let alerts = text
        .lines()
        .filter(|l| l.contains("zw threshold probe"))
        .count() as u64;
    assert!(alerts > 0);
    assert!(t["expired"].as_u64().unwrap() > 0, "{t}");
    // Every alert held back by the limit was counted.
    assert!(t["thresholded"].as_u64().unwrap() > 0, "{t}");
    assert!(
        t["tracked"].as_u64().is_some() && t["evicted"].as_u64().is_some(),
        "{t}"
    );
}

/// Log rotation: the output file moved away, SIGHUP, and the sensor goes on
/// writing into a new file at the path; the moved file keeps what was
/// written before, nothing is lost or written twice. Before, SIGHUP ended
/// the run (and `logrotate`'s usual `postrotate` would have stopped it).
#[test]
fn sighup_reopens_the_output_after_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("eve.json");
    let rotated = dir.path().join("eve.json.1");
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // A rule of its own: every probe line is an alert.
    let rule = dir.path().join("probe.yml");
    std::fs::write(
        &rule,
        "title: Rotation probe\nid: 5d0c3a52-7a3e-4f0e-9a51-2b9c1f0e7a01\nstatus: test\nlogsource:\n    product: linux\n    service: sshd\ndetection:\n    probe:\n        message|contains: 'zw-rotation-probe'\n    condition: probe\nlevel: low\n",
    )
    .unwrap();
    let mut child = zonewatch()
        .args(["run", "--syslog-listen"])
        .arg(format!("udp://127.0.0.1:{port}"))
        .arg("--rules")
        .arg(&rule)
        .args(["--stats-interval", "0", "--output"])
        .arg(&out)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let login =
        |user: &str| format!("<38>Nov 25 20:30:45 web1 sshd[4242]: zw-rotation-probe for {user}");
    let alerts = |path: &Path| -> Vec<String> {
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("\"event_type\":\"alert\""))
            .map(String::from)
            .collect()
    };
    // Until the listener is up and the first alert is on disk.
    let t0 = Instant::now();
    while alerts(&out).is_empty() {
        assert!(
            t0.elapsed() < Duration::from_secs(15),
            "no alert before rotation"
        );
        let _ = sock.send_to(login("alice").as_bytes(), ("127.0.0.1", port));
        std::thread::sleep(Duration::from_millis(300));
    }
    // Let the listener go quiet, then rotate as logrotate does.
    std::thread::sleep(Duration::from_millis(1500));
    std::fs::rename(&out, &rotated).unwrap();
    let hup = Command::new("kill")
        .args(["-HUP", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    std::thread::sleep(Duration::from_millis(800));
    assert!(child.try_wait().unwrap().is_none(), "SIGHUP ended the run");
    let t0 = Instant::now();
    while alerts(&out).is_empty() {
        assert!(
            t0.elapsed() < Duration::from_secs(15),
            "no alert after rotation"
        );
        let _ = sock.send_to(login("bob").as_bytes(), ("127.0.0.1", port));
        std::thread::sleep(Duration::from_millis(300));
    }
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let status = wait_with_deadline(&mut child, Duration::from_secs(15), "SIGTERM after HUP");
    assert_eq!(status.code(), Some(0));
    let before = alerts(&rotated);
    let after = alerts(&out);
    assert!(!before.is_empty() && !after.is_empty());
    // Every probe received made one alert, in one of the two files: none
    // lost at the rotation, none written twice. The final stats event
    // went to the new file.
    let text = std::fs::read_to_string(&out).unwrap();
    let stats = crate::final_stats(&text);
    let received = stats["syslog"]["received"].as_u64().unwrap();
    assert_eq!((before.len() + after.len()) as u64, received, "{stats}");
    assert!(before.iter().all(|l| !after.contains(l)));
}
