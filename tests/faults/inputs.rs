//! Fault tests: captures from pipes and FIFOs, damaged captures, and
//! captures with checksum offloading.

use crate::{demo_pcap, wait_with_deadline, zonewatch};
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Events without `event_id` and `stats` (ids depend on the input's name
/// and size, which a pipe does not have).
fn comparable(out: &str) -> Vec<String> {
    out.lines()
        .filter(|l| !l.contains("\"event_type\":\"stats\""))
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            v.as_object_mut().unwrap().remove("event_id");
            v.to_string()
        })
        .collect()
}

fn file_run(cap: &Path) -> String {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("eve.json");
    crate::common::run_zonewatch(cap, &[], &out).unwrap()
}

/// `tcpdump -w - | zonewatch run --pcap -`: classic pcap and pcapng on
/// stdin give the events of the same file read from disk. Before, the
/// format check consumed the first bytes (or `-` was no such file).
#[test]
fn capture_on_stdin_gives_the_file_runs_events() {
    for cap in ["fixtures/demo.pcap", "fixtures/demo-ns.pcapng"] {
        let cap = crate::common::root().join(cap);
        let want = comparable(&file_run(&cap));
        assert!(want.len() > 10);
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("eve.json");
        let mut child = zonewatch()
            .args([
                "run",
                "--pcap",
                "-",
                "--workers",
                "2",
                "--stats-interval",
                "0",
            ])
            .arg("--output")
            .arg(&out)
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let bytes = std::fs::read(&cap).unwrap();
        let mut stdin = child.stdin.take().unwrap();
        // In pieces, as a capturing process writes.
        for chunk in bytes.chunks(1000) {
            stdin.write_all(chunk).unwrap();
        }
        drop(stdin);
        let status = wait_with_deadline(&mut child, Duration::from_secs(30), "stdin run");
        assert!(status.success(), "{}", cap.display());
        let got = comparable(&std::fs::read_to_string(&out).unwrap());
        assert_eq!(got, want, "{}", cap.display());
    }
}

/// A FIFO whose writer comes later, and a shell's `<(...)`.
#[test]
fn fifo_and_process_substitution() {
    let want = comparable(&file_run(&demo_pcap()));
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("cap.fifo");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let out = dir.path().join("eve.json");
    let mut child = zonewatch()
        .args(["run", "--workers", "2", "--stats-interval", "0", "--pcap"])
        .arg(&fifo)
        .arg("--output")
        .arg(&out)
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    std::fs::write(&fifo, std::fs::read(demo_pcap()).unwrap()).unwrap();
    let status = wait_with_deadline(&mut child, Duration::from_secs(30), "fifo run");
    assert!(status.success());
    assert_eq!(comparable(&std::fs::read_to_string(&out).unwrap()), want);

    let out2 = dir.path().join("eve2.json");
    let o = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "exec \"$0\" run --workers 2 --stats-interval 0 --pcap <(cat {}) --output {}",
            demo_pcap().display(),
            out2.display()
        ))
        .arg(env!("CARGO_BIN_EXE_zonewatch"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(comparable(&std::fs::read_to_string(&out2).unwrap()), want);
}

/// A FIFO nobody writes to: SIGTERM ends the run within a second or two
/// (before: the process hung in open() and ignored SIGTERM).
#[test]
fn sigterm_while_waiting_for_a_fifo_writer() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("idle.fifo");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let mut child = zonewatch()
        .args(["run", "--pcap"])
        .arg(&fifo)
        .args(["--output", "/dev/null"])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(700));
    assert!(child.try_wait().unwrap().is_none(), "waits for the writer");
    let t0 = Instant::now();
    assert!(Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success());
    let status = wait_with_deadline(&mut child, Duration::from_secs(5), "SIGTERM on FIFO");
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
    // Stopped before any capture data: the input was not a capture.
    assert!(status.code().is_some(), "exited, not killed: {status:?}");
}

/// Classic pcap record offsets (after the 24-byte header).
fn records(bytes: &[u8]) -> Vec<(usize, usize)> {
    let mut at = 24;
    let mut out = Vec::new();
    while at + 16 <= bytes.len() {
        let caplen = u32::from_le_bytes(bytes[at + 8..at + 12].try_into().unwrap()) as usize;
        out.push((at, caplen));
        at += 16 + caplen;
    }
    out
}

/// Runs a damaged capture, which must succeed (damage is a warning);
/// stderr and the final stats.
fn run_damaged(cap: &Path) -> (String, serde_json::Value) {
    let out = cap.with_extension("json");
    let o = zonewatch()
        .args(["run", "--workers", "2", "--stats-interval", "0", "--pcap"])
        .arg(cap)
        .arg("--output")
        .arg(&out)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "{err}");
    let stats = crate::final_stats(&std::fs::read_to_string(&out).unwrap());
    (err, stats)
}

/// A corrupt record in the middle (caplen 0xffffffff): the records after
/// it are still read, the damage is counted in stats and reported on
/// stderr. Before: the rest of the file was skipped, silently, exit 0.
#[test]
fn corrupt_record_in_the_middle_of_a_pcap() {
    let mut bytes = std::fs::read(demo_pcap()).unwrap();
    let recs = records(&bytes);
    let (at, caplen) = recs[recs.len() / 2];
    bytes[at + 8..at + 12].copy_from_slice(&u32::MAX.to_le_bytes());
    let dir = tempfile::tempdir().unwrap();
    let cap = dir.path().join("corrupt.pcap");
    std::fs::write(&cap, &bytes).unwrap();
    let (err, s) = run_damaged(&cap);
    assert_eq!(s["decoder"]["pkts"], recs.len() as u64 - 1, "{err}");
    assert_eq!(s["capture"]["corrupt_records"], 1);
    assert_eq!(s["capture"]["skipped_bytes"], 16 + caplen as u64);
    assert!(err.contains("1 corrupt record(s)"), "{err}");
}

/// A pcapng block with a bogus length: the packets after it are read and
/// the skip is counted. Before: 0 packets, exit 0.
#[test]
fn bogus_block_length_in_a_pcapng() {
    let cap = crate::common::root().join("fixtures/demo-ns.pcapng");
    let mut bytes = std::fs::read(&cap).unwrap();
    let total = crate::final_stats(&file_run(&cap))["decoder"]["pkts"]
        .as_u64()
        .unwrap();
    // The first enhanced packet block (type 6): its length becomes absurd.
    let mut at = 0;
    let epb = loop {
        let t = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
        let len = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().unwrap()) as usize;
        if t == 6 {
            break at;
        }
        at += len;
    };
    bytes[epb + 4..epb + 8].copy_from_slice(&0x7fff_fff0u32.to_le_bytes());
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bogus.pcapng");
    std::fs::write(&bad, &bytes).unwrap();
    let (err, s) = run_damaged(&bad);
    assert_eq!(s["decoder"]["pkts"], total - 1, "{err}");
    assert_eq!(s["capture"]["corrupt_records"], 1);
    assert!(err.contains("corrupt record"), "{err}");
}

/// A capture taken on a host with checksum offloading: every TCP checksum
/// is wrong. `--checksum-checks auto` keeps those segments out of the
/// streams (as Suricata does), and now says so with the ratio and the
/// remedy; with `none` the HTTP records appear.
#[test]
fn checksum_offloading_is_explained() {
    let mut bytes = std::fs::read(demo_pcap()).unwrap();
    let mut tcp = 0;
    for (at, caplen) in records(&bytes) {
        let p = at + 16;
        if caplen < 14 + 20 + 20 || bytes[p + 12..p + 14] != [0x08, 0x00] || bytes[p + 23] != 6 {
            continue;
        }
        let ihl = usize::from(bytes[p + 14] & 0x0f) * 4;
        let csum = p + 14 + ihl + 16;
        if csum + 2 <= p + caplen {
            bytes[csum] ^= 0x5a;
            tcp += 1;
        }
    }
    assert!(tcp > 20);
    let dir = tempfile::tempdir().unwrap();
    let cap = dir.path().join("offload.pcap");
    std::fs::write(&cap, &bytes).unwrap();
    let run = |mode: &str| {
        let out = dir.path().join(format!("{mode}.json"));
        let o = zonewatch()
            .args(["run", "--workers", "2", "--stats-interval", "0", "--pcap"])
            .arg(&cap)
            .args(["--checksum-checks", mode, "--output"])
            .arg(&out)
            .output()
            .unwrap();
        assert!(o.status.success());
        (
            String::from_utf8_lossy(&o.stderr).into_owned(),
            std::fs::read_to_string(&out).unwrap(),
        )
    };
    let http = |out: &str| out.matches("\"event_type\":\"http\"").count();
    let (err, out) = run("auto");
    let http_auto = http(&out);
    let line = err
        .lines()
        .find(|l| l.contains("bad checksums"))
        .unwrap_or_else(|| panic!("no checksum warning: {err}"));
    assert!(
        line.contains('%') && line.contains("--checksum-checks none"),
        "{line}"
    );
    let (err, out) = run("none");
    // Plain-Ethernet IPv4 HTTP lost its records in auto mode (the capture's
    // tunnelled, VLAN and IPv6 HTTP was not altered).
    assert!(http(&out) > http_auto, "{} vs {http_auto}", http(&out));
    assert!(!err.contains("bad checksums"), "{err}");
}

/// `--config <(...)` (a pipe, readable once) with `--rules`: the zone
/// policy comes from the one read of the file. Before, the detector loader
/// read the file a second time, got nothing, and ran without the policy.
#[test]
fn config_through_a_pipe_keeps_its_zone_policy() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("zones.yaml");
    std::fs::write(
        &cfg,
        "zones:\n  internet: [10.0.0.0/16]\n  dmz: [192.0.2.0/24]\nzone-policy:\n  default: allow\n  rules:\n    - name: no-web-into-dmz\n      from: internet\n      to: dmz\n      action: deny\n",
    )
    .unwrap();
    let rules = crate::common::root().join("rules/detectors");
    let policy_alerts = |config_arg: &str, out: &Path| -> usize {
        let o = Command::new("bash")
            .arg("-c")
            .arg(format!(
                "exec \"$0\" run --workers 2 --stats-interval 0 --config {config_arg} --rules {} --pcap {} --output {}",
                rules.display(),
                demo_pcap().display(),
                out.display()
            ))
            .arg(env!("CARGO_BIN_EXE_zonewatch"))
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        std::fs::read_to_string(out)
            .unwrap()
            .lines()
            .filter(|l| l.contains("\"event_type\":\"alert\"") && l.contains("no-web-into-dmz"))
            .count()
    };
    let from_file = policy_alerts(&cfg.display().to_string(), &dir.path().join("a.json"));
    assert!(
        from_file > 0,
        "the policy raises alerts on the demo capture"
    );
    let from_pipe = policy_alerts(
        &format!("<(cat {})", cfg.display()),
        &dir.path().join("b.json"),
    );
    assert_eq!(from_pipe, from_file);
}
