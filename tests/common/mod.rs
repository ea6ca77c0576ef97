//! Helpers shared by the end-to-end tests.
#![allow(dead_code)]

pub mod netns;
pub mod process;

use std::path::{Path, PathBuf};

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `../shared/data`, when present (tests skip cleanly without it).
pub fn shared_data() -> Option<PathBuf> {
    let p = root().join("../shared/data");
    p.is_dir().then_some(p)
}

/// Capture files (by magic number, as zonewatch tells them) under `dir`,
/// recursively, sorted.
pub fn captures_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if zonewatch_capture::looks_like_capture(&p).unwrap_or(false) {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Runs `zonewatch run` on one capture (2 workers, no periodic stats) with
/// extra arguments; returns what it wrote to `out`, or why it failed.
pub fn run_zonewatch(cap: &Path, extra: &[&str], out: &Path) -> Result<String, String> {
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_zonewatch"))
        .arg("run")
        .arg("--pcap")
        .arg(cap)
        .arg("--output")
        .arg(out)
        .args(if extra.contains(&"--workers") {
            &["--set", "stats.interval=0"][..]
        } else {
            &["--workers", "2", "--set", "stats.interval=0"][..]
        })
        .args(extra)
        .output()
        .map_err(|e| format!("cannot run zonewatch: {e}"))?;
    if !o.status.success() {
        return Err(format!(
            "zonewatch exited with {}: {}",
            o.status,
            String::from_utf8_lossy(&o.stderr).trim()
        ));
    }
    std::fs::read_to_string(out).map_err(|e| format!("reading output: {e}"))
}

/// Capture categories of `../shared/data/MANIFEST.tsv` (column 2, without
/// `pcap:`) with no scan, flood, tunnel or beacon in them: the detectors'
/// false-positive checks run on these.
pub const QUIET_CATEGORIES: &[&str] = &[
    "benign",
    "dns",
    "http",
    "http-attack",
    "icmp",
    "ip-fragments",
    "ipv6",
    "linktype",
    "malformed",
    "ssh",
    "tcp-stream",
    "vlan",
    "tunnel",
    "telnet",
    "ftp",
    "syslog-net",
    "arp",
    "tcp-flags",
];
