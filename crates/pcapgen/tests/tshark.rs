//! Cross-checks a generated bench capture with tshark (skipped when tshark is absent).

use std::path::{Path, PathBuf};
use std::process::Command;

const TSHARK: &str = "/usr/bin/tshark";

/// Expert warnings that tshark raises for perfectly normal traffic.
const BENIGN_WARNINGS: &[&str] = &[
    "Connection reset (RST)",
    "Previous segment(s) not captured",
    "previous segment not captured",
    "ACKed segment that wasn't captured",
];

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn tshark(file: &Path, filter: &str, fields: &[&str]) -> Vec<String> {
    let mut cmd = Command::new(TSHARK);
    cmd.arg("-n").arg("-r").arg(file);
    for pref in [
        "tcp.check_checksum:TRUE",
        "udp.check_checksum:TRUE",
        "ip.check_checksum:TRUE",
    ] {
        cmd.args(["-o", pref]);
    }
    cmd.args(["-Y", filter, "-T", "fields"]);
    for f in fields {
        cmd.args(["-e", f]);
    }
    let out = cmd.output().expect("running tshark");
    assert!(
        out.status.success(),
        "tshark failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_owned)
        .collect()
}

#[test]
fn tshark_reports_no_checksum_errors_or_malformed_packets() {
    if !Path::new(TSHARK).exists() {
        eprintln!("note: {TSHARK} not installed; skipping the tshark cross-check");
        return;
    }
    let dir =
        TempDir(std::env::temp_dir().join(format!("zw-pcapgen-tshark-{}", std::process::id())));
    std::fs::create_dir_all(&dir.0).unwrap();
    let file = dir.0.join("bench-5m.pcap");
    let out = Command::new(env!("CARGO_BIN_EXE_zw-pcapgen"))
        .args([
            "bench",
            "--size-mb",
            "5",
            "--flows",
            "300",
            "--active",
            "100",
            "--seed",
            "5",
            "--out",
        ])
        .arg(&file)
        .output()
        .expect("running zw-pcapgen");
    assert!(
        out.status.success(),
        "zw-pcapgen failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary = String::from_utf8_lossy(&out.stdout);
    let packets: usize = summary
        .split_whitespace()
        .find_map(|w| w.strip_prefix("packets="))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no packet count in {summary:?}"));

    // Hard failures: any bad checksum, malformed packet or error-level expert info.
    let bad = tshark(
        &file,
        r#"ip.checksum.status == "Bad" || tcp.checksum.status == "Bad" || udp.checksum.status == "Bad" || _ws.malformed || _ws.expert.severity == error"#,
        &["frame.number", "_ws.col.Protocol", "_ws.col.Info"],
    );
    assert!(
        bad.is_empty(),
        "{} bad frames, e.g.:\n{}",
        bad.len(),
        bad[..bad.len().min(10)].join("\n")
    );

    // tshark really verified every transport checksum (and every IPv4 header checksum).
    let good_l4 = tshark(
        &file,
        r#"tcp.checksum.status == "Good" || udp.checksum.status == "Good""#,
        &["frame.number"],
    );
    assert_eq!(
        good_l4.len(),
        packets,
        "every frame must carry a verified-good TCP/UDP checksum"
    );
    let good_ip = tshark(
        &file,
        r#"ipv6 || ip.checksum.status == "Good""#,
        &["frame.number"],
    );
    assert_eq!(good_ip.len(), packets);

    // Warnings: only the benign kinds, plus at most a handful of anything else.
    let warnings = tshark(
        &file,
        "_ws.expert.severity >= warning",
        &["frame.number", "_ws.expert.message"],
    );
    let mut unexpected = Vec::new();
    for line in &warnings {
        let msgs = line.split_once('\t').map_or("", |(_, m)| m);
        if msgs
            .split(',')
            .any(|m| !BENIGN_WARNINGS.iter().any(|b| m.contains(b)))
        {
            unexpected.push(line.clone());
        }
    }
    eprintln!(
        "tshark: {packets} packets, {} expert warnings ({} not benign)",
        warnings.len(),
        unexpected.len()
    );
    assert!(
        unexpected.len() <= 5,
        "unexpected tshark warnings:\n{}",
        unexpected.join("\n")
    );
}
