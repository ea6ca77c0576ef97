//! Fault injection: runs the `zonewatch` binary against the faults an
//! operator meets (a full disk, `/dev/full`, a read-only spool, a broker
//! that vanishes and returns, pipes and FIFOs, symlink loops, YAML bombs,
//! syslog abuse, a low `ulimit -n`, SIGTERM/SIGKILL with the spool) and
//! checks what each one may lose: nothing, or exactly what is counted.
//! `docs/operations.md` has the failure table these tests keep true.
//!
//! Tests that need root (a private mount namespace for a small tmpfs) skip
//! when not root, and fail when not root under `CI=true`.

#[path = "../common/mod.rs"]
mod common;

mod inputs;
mod kafka;
mod output;
mod rules;
mod syslog;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// The binary under test.
pub fn zonewatch() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_zonewatch"));
    c.env_remove("ZONEWATCH_LOG");
    c
}

/// A bundled capture every fault test can replay.
pub fn demo_pcap() -> PathBuf {
    common::root().join("fixtures/demo.pcap")
}

/// Whether this process is root (needed for mount namespaces). Under
/// `CI=true` a test that needs root and is not root fails.
pub fn is_root_or_skip(test: &str) -> bool {
    // SAFETY-free: geteuid through /proc to keep `unsafe` out of tests.
    let root = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false);
    if !root {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{test}: needs root under CI"
        );
        eprintln!("{test}: skipped (needs root)");
    }
    root
}

/// Waits for a child with a deadline; kills it and panics when it is late.
pub fn wait_with_deadline(
    child: &mut std::process::Child,
    within: Duration,
    what: &str,
) -> std::process::ExitStatus {
    let t0 = Instant::now();
    loop {
        if let Some(s) = child.try_wait().expect("try_wait") {
            return s;
        }
        if t0.elapsed() > within {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what}: still running after {within:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The `stats` object of the last stats event in an EVE output.
pub fn final_stats(out: &str) -> serde_json::Value {
    let last = out
        .lines()
        .rev()
        .find(|l| l.contains("\"event_type\":\"stats\""))
        .expect("a final stats event");
    serde_json::from_str::<serde_json::Value>(last).expect("stats JSON")["stats"].clone()
}
