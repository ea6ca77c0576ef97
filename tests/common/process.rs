//! Running commands and the sensor from tests: root checks, quiet shell
//! commands, a child killed if the test fails, and a bounded wait.

use std::io::{BufRead, BufReader};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Runs the zonewatch binary with `args` to the end (`ZONEWATCH_LOG` unset,
/// so its stderr is what an operator sees by default).
pub fn zonewatch(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_zonewatch"))
        .args(args)
        .env_remove("ZONEWATCH_LOG")
        .output()
        .expect("run zonewatch")
}

/// A path as a command-line argument.
pub fn path(p: &std::path::Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

/// Runs a command quietly; whether it succeeded.
pub fn sh(args: &[&str]) -> bool {
    Command::new(args[0])
        .args(&args[1..])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Whether this process runs as root (real uid 0).
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .map(|v| v.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

/// A child process killed (and reaped) if the test ends before it does.
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl KillOnDrop {
    /// Waits for the child to exit, failing the test after `limit`.
    pub fn wait_exit(&mut self, limit: Duration, what: &str) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(s) = self.0.try_wait().unwrap() {
                return s;
            }
            assert!(Instant::now() < deadline, "{what}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// The running sensor: its stderr, line by line, and a kill on drop.
pub struct Sensor {
    pub child: std::process::Child,
    lines: mpsc::Receiver<String>,
    seen: String,
}

impl Sensor {
    pub fn start(args: &[&str]) -> Sensor {
        let mut child = Command::new(env!("CARGO_BIN_EXE_zonewatch"))
            .arg("run")
            .args(args)
            .stderr(Stdio::piped())
            .spawn()
            .expect("start zonewatch");
        let (tx, lines) = mpsc::channel();
        let err = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for l in BufReader::new(err).lines().map_while(Result::ok) {
                let _ = tx.send(l);
            }
        });
        Sensor {
            child,
            lines,
            seen: String::new(),
        }
    }

    /// Waits for a stderr line starting with `prefix`.
    pub fn wait_for(&mut self, prefix: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => {
                    self.seen.push_str(&l);
                    self.seen.push('\n');
                    if l.starts_with(prefix) {
                        return l;
                    }
                }
                Err(_) => panic!("no line {prefix:?} from zonewatch; stderr:\n{}", self.seen),
            }
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, then the exit status and the rest of stderr.
    pub fn stop(&mut self) -> (ExitStatus, String) {
        assert!(sh(&["kill", "-TERM", &self.pid().to_string()]));
        self.finish(Duration::from_secs(20), "zonewatch did not stop on SIGTERM")
    }

    /// Waits for it to end by itself (failing the test after `limit`);
    /// the exit status and the rest of stderr.
    pub fn finish(&mut self, limit: Duration, what: &str) -> (ExitStatus, String) {
        let deadline = Instant::now() + limit;
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            assert!(Instant::now() < deadline, "{what}");
            std::thread::sleep(Duration::from_millis(50));
        };
        while let Ok(l) = self.lines.recv_timeout(Duration::from_secs(2)) {
            self.seen.push_str(&l);
            self.seen.push('\n');
        }
        (status, self.seen.clone())
    }
}

impl Drop for Sensor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
