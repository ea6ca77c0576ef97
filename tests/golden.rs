//! Golden output: zonewatch with every rule we have (ET Open, Suricata's own
//! rules, the repository's signatures, detectors and Sigma rules) over every
//! shared capture and every shared log, all event types on, must write the
//! same bytes as when the golden files were made — event ids included.
//!
//! This is the guard for behaviour-preserving refactors (issue #20): a change
//! that alters any event fails here. A change that alters output *on purpose*
//! regenerates the golden files with `ZONEWATCH_UPDATE_GOLDEN=1 cargo test
//! --release --test golden` and says why in its commit.
//!
//! The golden files hold, per run, the SHA-256 of the normalised output and a
//! readable summary (events per type, alerts per signature, per Sigma rule
//! and per detector), so a failure shows *what* moved, not only that
//! something did. Normalisation drops only what depends on the machine's
//! speed or the time of the run: the stats events' `timestamp`, `stats.uptime`
//! and the `stats.pipeline` section (queue waits,
//! batch counts and latencies depend on thread timing); every other byte
//! counts.

mod common;

use common::{captures_under, root, shared_data};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

const ALL_TYPES: &str = "output.types=[alert,flow,anomaly,stats,http,dns,tls,ssh,smtp,fileinfo]";

/// `../shared/data`, or None (skip) when it is absent; in CI it must be there.
fn shared(what: &str) -> Option<PathBuf> {
    match shared_data() {
        Some(p) => Some(p),
        None if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("CI=true but ../shared/data is absent: {what} cannot run")
        }
        None => {
            eprintln!("skipped: ../shared/data is absent ({what})");
            None
        }
    }
}

/// `path` relative to `base` (inputs are named this way in stats events).
fn relative(base: &Path, path: &Path) -> String {
    path.strip_prefix(base).unwrap().display().to_string()
}

/// Log files under `dir`, recursively, sorted (licence and read-me files left out).
fn logs_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            if p.is_dir() {
                stack.push(p);
            } else if !["COPYING", "LICENSE", "README"]
                .iter()
                .any(|skip| name.starts_with(skip))
            {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Runs zonewatch in `data` with `workers` worker threads; see [`run`].
fn run_with_workers(data: &Path, args: &[String], workers: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("eve.json");
    let o = Command::new(env!("CARGO_BIN_EXE_zonewatch"))
        .current_dir(data)
        .arg("run")
        .args(args)
        .args([
            "--workers",
            workers,
            "--set",
            "stats.interval=0",
            "--set",
            ALL_TYPES,
        ])
        .arg("--output")
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "zonewatch failed ({}): {}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    std::fs::read_to_string(&out).unwrap()
}

/// Runs zonewatch in `data` (the shared data folder, so input paths, which
/// stats events name, are the same in every checkout) with `args` (2
/// workers, final stats only, every event type); returns its output.
fn run(data: &Path, args: &[String]) -> String {
    run_with_workers(data, args, "2")
}

/// The output with the thread-timing part of stats events removed, byte for
/// byte otherwise (other lines are not re-serialised).
fn normalise(eve: &str) -> String {
    let mut out = String::with_capacity(eve.len());
    for line in eve.lines() {
        if line.contains("\"event_type\":\"stats\"") {
            let mut v: Value = serde_json::from_str(line).unwrap();
            if let Some(s) = v["stats"].as_object_mut() {
                s.remove("pipeline");
                s.remove("uptime");
            }
            // Without packets, the final stats event is stamped with the
            // wall clock unless the logs' clock is ahead of it.
            v.as_object_mut().unwrap().remove("timestamp");
            out.push_str(&v.to_string());
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    out
}

/// A readable summary: line count, SHA-256, events per type, alerts per
/// signature / Sigma rule / detector.
fn summary(normalised: &str) -> String {
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    let mut lines = 0u64;
    for line in normalised.lines() {
        lines += 1;
        let v: Value = serde_json::from_str(line).unwrap();
        let t = v["event_type"].as_str().unwrap_or("?").to_string();
        *counts.entry(format!("type {t}")).or_default() += 1;
        if t == "alert" {
            let a = &v["alert"];
            let who = if let Some(sid) = a["signature_id"].as_u64() {
                format!("sid {sid}")
            } else {
                format!("alert {}", a["signature"].as_str().unwrap_or("?"))
            };
            *counts.entry(who).or_default() += 1;
        } else if t == "anomaly" {
            let a = &v["anomaly"];
            let what = format!(
                "{} {}",
                a["type"].as_str().unwrap_or("?"),
                a["event"].as_str().unwrap_or("")
            );
            *counts.entry(format!("anomaly {what}")).or_default() += 1;
        }
    }
    let mut s = format!(
        "lines {lines}\nsha256 {:x}\n",
        Sha256::digest(normalised.as_bytes())
    );
    for (k, n) in counts {
        s.push_str(&format!("{k}\t{n}\n"));
    }
    s
}

/// Compares `eve` with `tests/golden/<name>.summary`, or rewrites that file
/// when `ZONEWATCH_UPDATE_GOLDEN=1`. On a mismatch the actual output is kept
/// in `target/golden/<name>.jsonl` for diffing.
fn check(name: &str, eve: &str) {
    let normalised = normalise(eve);
    let got = summary(&normalised);
    let path = root().join("tests/golden").join(format!("{name}.summary"));
    if std::env::var("ZONEWATCH_UPDATE_GOLDEN").as_deref() == Ok("1") {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &got).unwrap();
        eprintln!("updated {}", path.display());
        return;
    }
    let want = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (make it with ZONEWATCH_UPDATE_GOLDEN=1)",
            path.display()
        )
    });
    if got != want {
        let keep = root().join("target/golden");
        std::fs::create_dir_all(&keep).unwrap();
        let kept = keep.join(format!("{name}.jsonl"));
        std::fs::write(&kept, &normalised).unwrap();
        let want_lines: Vec<&str> = want.lines().collect();
        let got_lines: Vec<&str> = got.lines().collect();
        let mut diff = String::new();
        for l in &want_lines {
            if !got_lines.contains(l) {
                diff.push_str(&format!("- {l}\n"));
            }
        }
        for l in &got_lines {
            if !want_lines.contains(l) {
                diff.push_str(&format!("+ {l}\n"));
            }
        }
        panic!(
            "{name}: output differs from {} (actual output kept in {}):\n{diff}",
            path.display(),
            kept.display()
        );
    }
}

#[test]
fn every_shared_capture_with_every_rule() {
    let Some(data) = shared("golden captures") else {
        return;
    };
    let caps = captures_under(&data.join("pcaps"));
    assert!(caps.len() > 100, "only {} captures found", caps.len());
    let mut args: Vec<String> = Vec::new();
    for c in &caps {
        args.push("--pcap".into());
        args.push(relative(&data, c));
    }
    for r in [
        data.join("rules/et-open"),
        data.join("rules/suricata"),
        root().join("rules"),
    ] {
        args.push("--rules".into());
        args.push(r.display().to_string());
    }
    check("captures", &run(&data, &args));
}

/// The same output, byte for byte, with 1 and 4 workers over every shared
/// capture in one run (many flows of unrelated captures end together when
/// the clock jumps between files: the case that once ordered one worker's
/// closing transactions differently).
#[test]
fn every_shared_capture_gives_the_same_output_with_1_and_4_workers() {
    let Some(data) = shared("worker-count determinism") else {
        return;
    };
    let mut args: Vec<String> = Vec::new();
    for c in &captures_under(&data.join("pcaps")) {
        args.push("--pcap".into());
        args.push(relative(&data, c));
    }
    args.extend(["--rules".into(), root().join("rules").display().to_string()]);
    let one = normalise(&run_with_workers(&data, &args, "1"));
    let four = normalise(&run_with_workers(&data, &args, "4"));
    assert!(one.lines().count() > 30_000);
    if one != four {
        let first = one.lines().zip(four.lines()).position(|(a, b)| a != b);
        panic!("1 and 4 workers differ, first at line {first:?}");
    }
}

#[test]
fn every_shared_log_with_every_sigma_rule() {
    let Some(data) = shared("golden logs") else {
        return;
    };
    // Syslog lines without a year take it from the file's modification
    // time: the logs are copied with one fixed time, so the output does not
    // depend on when this machine's copy of ../shared was written.
    let copy = tempfile::tempdir().unwrap();
    let fixed = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_767_225_600); // 2026-01-01
    let logs = logs_under(&data.join("logs"));
    assert!(logs.len() > 100, "only {} logs found", logs.len());
    let mut args: Vec<String> = Vec::new();
    for l in &logs {
        let rel = relative(&data, l);
        let to = copy.path().join(&rel);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(l, &to).unwrap();
        std::fs::File::options()
            .write(true)
            .open(&to)
            .unwrap()
            .set_modified(fixed)
            .unwrap();
        args.push("--syslog-file".into());
        args.push(rel);
    }
    for r in [data.join("sigma/rules"), root().join("rules")] {
        args.push("--rules".into());
        args.push(r.display().to_string());
    }
    check("logs", &run(copy.path(), &args));
}
