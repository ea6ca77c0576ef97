//! Fault tests: rules and configuration. Hostile YAML (alias bombs) in each
//! of the three places YAML is read, symbolic link loops and deep trees under
//! `--rules`, the README's `--rules rules/` loading all three rule kinds,
//! non-UTF-8 signature files, out-of-range numbers and unknown keys.
//!
//! What may be lost: a Sigma rule file that cannot be used is skipped and
//! named (the run goes on, counted in `sigma.rules_skipped`); a bad
//! configuration or detector file stops the start with exit 1 and a one-line
//! reason naming file:line. Nothing is lost silently, nothing hangs, memory
//! stays bounded (every run here is under a 1 GiB address-space limit).

use super::{demo_pcap, wait_with_deadline, zonewatch};
use crate::common::root;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// What a run left: exit status, stderr, the events written.
struct Run {
    status: ExitStatus,
    stderr: String,
    events: Vec<serde_json::Value>,
    took: Duration,
}

impl Run {
    fn code(&self) -> Option<i32> {
        self.status.code()
    }

    fn stats(&self) -> &serde_json::Value {
        let s = self
            .events
            .iter()
            .rev()
            .find(|e| e["event_type"] == "stats")
            .unwrap_or_else(|| panic!("no stats event; stderr: {}", self.stderr));
        &s["stats"]
    }
}

/// Runs `zonewatch run ARGS --output DIR/out.json` under a 1 GiB address
/// space limit (`ulimit -v`: a run that tries to grow past it fails instead
/// of taking the machine) and a deadline.
fn run_bounded(dir: &Path, args: &[&str], within: Duration) -> Run {
    let out = dir.join("out.json");
    let err = dir.join("stderr.txt");
    let bin = zonewatch().get_program().to_owned();
    let mut c = Command::new("sh");
    c.arg("-c")
        .arg("ulimit -v 1048576; exec \"$0\" \"$@\"")
        .arg(bin)
        .arg("run")
        .args(args)
        .arg("--output")
        .arg(&out)
        .env_remove("ZONEWATCH_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&err).unwrap());
    let t0 = Instant::now();
    let mut child = c.spawn().expect("spawn zonewatch");
    let status = wait_with_deadline(&mut child, within, &format!("zonewatch {args:?}"));
    let took = t0.elapsed();
    let stderr = std::fs::read_to_string(&err).unwrap_or_default();
    let events = std::fs::read_to_string(&out)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("event lines are JSON"))
        .collect();
    Run {
        status,
        stderr,
        events,
        took,
    }
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn auth_log() -> PathBuf {
    root().join("fixtures/logs/auth.log")
}

/// A "billion laughs": level 0 is a list of ten strings, each further level
/// a list of ten aliases of the level below; `levels` = 10 gives 10^10
/// nodes once expanded, from about 1 KB. Keys are indented by `indent`.
fn bomb(levels: usize, indent: &str) -> String {
    let mut t = format!("{indent}l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for i in 1..=levels {
        let p = i - 1;
        t.push_str(&format!(
            "{indent}l{i}: &l{i} [*l{p}, *l{p}, *l{p}, *l{p}, *l{p}, *l{p}, *l{p}, *l{p}, *l{p}, *l{p}]\n"
        ));
    }
    t
}

/// The line of the alias that crosses the 10,000-node budget in `bomb`
/// placed at line `first` (aliases at levels 1 and 2 make 1,220 nodes; the
/// eighth `*l2` on level 3's line passes 10,000).
fn bomb_line(first: usize) -> usize {
    first + 3
}

/// Writes `text` to `dir/name`; returns the path.
fn write_file(dir: &Path, name: &str, text: impl AsRef<[u8]>) -> PathBuf {
    let f = dir.join(name);
    std::fs::write(&f, text).unwrap();
    f
}

/// Copies the project's file `from` (relative to its root) to `to`.
fn copy_from_root(from: &str, to: &Path) {
    std::fs::copy(root().join(from), to).unwrap();
}

/// Runs the demo capture with the configuration file `cfg`.
fn run_with_config(dir: &Path, cfg: &Path) -> Run {
    run_bounded(
        dir,
        &["--config", s(cfg), "--pcap", s(&demo_pcap())],
        Duration::from_secs(30),
    )
}

/// Runs the demo capture with `--rules rules`.
fn run_pcap_with_rules(dir: &Path, rules: &Path) -> Run {
    run_bounded(
        dir,
        &["--pcap", s(&demo_pcap()), "--rules", s(rules)],
        Duration::from_secs(30),
    )
}

/// Runs the auth log with `--rules rules`.
fn run_log_with_rules(dir: &Path, rules: &Path) -> Run {
    run_bounded(
        dir,
        &["--syslog-file", s(&auth_log()), "--rules", s(rules)],
        Duration::from_secs(30),
    )
}

/// Runs the demo capture and the auth log with `--rules rules`.
fn run_pcap_and_log_with_rules(dir: &Path, rules: &Path) -> Run {
    run_bounded(
        dir,
        &[
            "--pcap",
            s(&demo_pcap()),
            "--syslog-file",
            s(&auth_log()),
            "--rules",
            s(rules),
        ],
        Duration::from_secs(60),
    )
}

#[track_caller]
fn assert_stderr_has(r: &Run, want: &str) {
    assert!(r.stderr.contains(want), "no {want:?} in: {}", r.stderr);
}

fn assert_no_panic(r: &Run) {
    assert!(
        !r.stderr.contains("panicked") && r.code() != Some(101) && r.code().is_some(),
        "status {:?}: {}",
        r.status,
        r.stderr
    );
}

/// A Sigma rule file with an alias bomb: skipped with a warning naming
/// file:line within seconds, the other rules load and match; memory bounded.
/// Before: the loader expanded the aliases (GBs, SIGTERM ignored).
#[test]
fn sigma_alias_bomb_is_skipped_naming_file_and_line() {
    let t = tempfile::tempdir().unwrap();
    let rules = t.path().join("rules");
    std::fs::create_dir(&rules).unwrap();
    copy_from_root(
        "rules/sigma/zonewatch/ssh_auth_failure.yml",
        &rules.join("good.yml"),
    );
    let bad = format!(
        "title: laughs\nid: 8a1f0c1e-0000-4000-8000-000000000001\nlogsource: {{product: linux}}\n{}detection:\n  sel:\n    message|contains: lol\n  condition: sel\n",
        bomb(10, "")
    );
    assert!(bad.len() < 1200, "{}", bad.len());
    let bomb_file = rules.join("bomb.yml");
    std::fs::write(&bomb_file, &bad).unwrap();
    let r = run_log_with_rules(t.path(), &rules);
    assert_no_panic(&r);
    assert_eq!(r.code(), Some(0), "{}", r.stderr);
    assert!(r.took < Duration::from_secs(20), "took {:?}", r.took);
    let want = format!(
        "{}:{}: rule ?: YAML alias *l2 expands",
        bomb_file.display(),
        bomb_line(4)
    );
    assert_stderr_has(&r, &want);
    assert!(
        r.stderr.contains("sigma: 1 rules loaded") && r.stderr.contains("1 skipped"),
        "{}",
        r.stderr
    );
    assert_eq!(r.stats()["sigma"]["rules_skipped"], 1);
    assert!(
        r.events
            .iter()
            .any(|e| e["event_type"] == "alert" && e["alert"]["signature_id"].is_u64()),
        "the good rule raises no alert: {}",
        r.stderr
    );
}

/// A detector file with an alias bomb: exit 1 with file:line, fast.
/// Before: aliases were dropped and the file misread.
#[test]
fn detector_alias_bomb_is_an_error_naming_file_and_line() {
    let t = tempfile::tempdir().unwrap();
    let f = write_file(
        t.path(),
        "scan.yaml",
        format!("detector:\n  type: portscan\n{}", bomb(10, "  ")),
    );
    let r = run_pcap_with_rules(t.path(), &f);
    assert_no_panic(&r);
    assert_eq!(r.code(), Some(1), "{}", r.stderr);
    let want = format!("{}:{}: YAML alias *l2 expands", f.display(), bomb_line(3));
    assert_stderr_has(&r, &want);
    assert!(r.took < Duration::from_secs(20), "took {:?}", r.took);
}

/// A configuration file with an alias bomb: exit 1 with file:line, fast.
/// Before: aliases were dropped silently.
#[test]
fn config_alias_bomb_is_an_error_naming_file_and_line() {
    let t = tempfile::tempdir().unwrap();
    let f = write_file(
        t.path(),
        "zonewatch.yaml",
        format!(
            "sensor:\n  name: s1\nvars:\n  address-groups:\n{}",
            bomb(10, "    ")
        ),
    );
    let r = run_with_config(t.path(), &f);
    assert_no_panic(&r);
    assert_eq!(r.code(), Some(1), "{}", r.stderr);
    let want = format!("{}:{}: YAML alias *l2 expands", f.display(), bomb_line(5));
    assert_stderr_has(&r, &want);
    assert!(r.events.is_empty());
}

/// `tenant: *code` gives the anchored value (before: no tenant at all), and
/// an all-digit tenant is the string "13100", not a number.
#[test]
fn config_alias_and_all_digit_tenant() {
    let t = tempfile::tempdir().unwrap();
    for (name, text) in [
        ("digits.yaml", "sensor:\n  tenant: 13100\n"),
        (
            "alias.yaml",
            "sensor:\n  name: &code 13100\n  tenant: *code\n",
        ),
    ] {
        let f = write_file(t.path(), name, text);
        let r = run_with_config(t.path(), &f);
        assert_eq!(r.code(), Some(0), "{name}: {}", r.stderr);
        assert!(!r.events.is_empty(), "{name}");
        for e in &r.events {
            assert_eq!(e["tenant"], "13100", "{name}: {e}");
        }
    }
}

/// Two symbolic links back up the tree under `--rules`: before, the
/// signature and Sigma walks followed them 2^40 ways (hung). Now the load
/// ends at once, each file is loaded once, the loops are named.
#[test]
fn symlink_loops_under_rules_end_and_load_each_file_once() {
    let t = tempfile::tempdir().unwrap();
    let rules = t.path().join("rules");
    std::fs::create_dir_all(rules.join("sig/sub")).unwrap();
    std::fs::create_dir_all(rules.join("sigma")).unwrap();
    std::fs::create_dir_all(rules.join("detectors")).unwrap();
    copy_from_root("fixtures/rules/demo.rules", &rules.join("sig/demo.rules"));
    copy_from_root(
        "rules/sigma/zonewatch/ssh_auth_failure.yml",
        &rules.join("sigma/ssh.yml"),
    );
    copy_from_root(
        "rules/detectors/portscan.yaml",
        &rules.join("detectors/portscan.yaml"),
    );
    std::os::unix::fs::symlink(&rules, rules.join("sig/sub/up")).unwrap();
    std::os::unix::fs::symlink("..", rules.join("sig/sub/parent")).unwrap();
    std::os::unix::fs::symlink(&rules, rules.join("sigma/again")).unwrap();
    let r = run_pcap_and_log_with_rules(t.path(), &rules);
    assert_no_panic(&r);
    assert_eq!(r.code(), Some(0), "{}", r.stderr);
    assert!(r.took < Duration::from_secs(30), "took {:?}", r.took);
    for l in ["sig/sub/parent", "sig/sub/up", "sigma/again"] {
        let want = format!("{}: symbolic link loop", rules.join(l).display());
        assert_eq!(r.stderr.matches(&want).count(), 1, "{want}: {}", r.stderr);
    }
    assert!(r.stderr.contains("skipped from 1 file(s)"), "{}", r.stderr);
    assert!(
        r.stderr.contains("sigma: 1 rules loaded") && r.stderr.contains("from 1 file(s)"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains("detectors: 1 loaded from 1 file(s) (portscan)"),
        "{}",
        r.stderr
    );
    // Each signature once: no duplicate-sid skips.
    assert!(!r.stderr.contains("duplicate"), "{}", r.stderr);
}

/// The README's live example `--rules rules/` with signatures beside the
/// project's Sigma rules and detector files: all three kinds load (before:
/// the detector loader did not recurse and loaded none).
#[test]
fn rules_directory_loads_signatures_sigma_and_detectors() {
    let t = tempfile::tempdir().unwrap();
    let rules = t.path().join("rules");
    let mut dirs = vec![root().join("rules")];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            let to = rules.join(p.strip_prefix(root().join("rules")).unwrap());
            if p.is_dir() {
                dirs.push(p);
            } else {
                std::fs::create_dir_all(to.parent().unwrap()).unwrap();
                std::fs::copy(&p, &to).unwrap();
            }
        }
    }
    std::fs::create_dir_all(rules.join("signatures")).unwrap();
    copy_from_root(
        "fixtures/rules/demo.rules",
        &rules.join("signatures/demo.rules"),
    );
    let r = run_pcap_and_log_with_rules(t.path(), &rules);
    assert_eq!(r.code(), Some(0), "{}", r.stderr);
    let signatures = r
        .stderr
        .lines()
        .find(|l| l.starts_with("zonewatch: rules: ") && l.contains(" loaded, "))
        .unwrap_or_else(|| panic!("no signature load line: {}", r.stderr));
    // rules/signatures/city-internet-zone.rules and the demo rules added.
    assert!(
        signatures.contains("from 2 file(s)") && signatures.contains(", 0 skipped"),
        "{signatures}"
    );
    assert!(r.stderr.contains("sigma: 24 rules loaded"), "{}", r.stderr);
    assert!(
        r.stderr.contains(
            "detectors: 7 loaded from 8 file(s) (portscan, flood, dns-tunnel, beaconing, volume, protocol-anomaly, dos)"
        ),
        "{}",
        r.stderr
    );
    let stats = r.stats();
    assert!(stats["detect"]["matches"].as_u64().unwrap() > 0, "{stats}");
    assert_eq!(stats["sigma"]["rules_loaded"], 24);
    assert!(
        stats["anomaly"]["portscan"]["inserts"].as_u64().unwrap() > 0,
        "{stats}"
    );
    // The project's own rules directory as the README writes it.
    let r = run_bounded(
        t.path(),
        &[
            "--pcap",
            s(&demo_pcap()),
            "--rules",
            s(&root().join("rules")),
        ],
        Duration::from_secs(60),
    );
    assert_eq!(r.code(), Some(0), "{}", r.stderr);
    assert!(r.stderr.contains("detectors: 7 loaded"), "{}", r.stderr);
    assert!(r.stats()["anomaly"]["flood"].is_object());
}

/// A signature file with a Latin-1 byte in a `msg`, given directly: it
/// loads and alerts (before: the detector loader read it as UTF-8 YAML and
/// the run failed).
#[test]
fn latin1_byte_in_a_signature_msg_loads() {
    let t = tempfile::tempdir().unwrap();
    let mut text = b"alert http any any -> any any (msg:\"Caf\xe9 GET \xe0 la carte\"; flow:established,to_server; http.method; content:\"GET\"; sid:9000001; rev:1;)\n".to_vec();
    text.extend_from_slice(b"# detector: not a key here\n");
    let f = write_file(t.path(), "local.rules", text);
    let r = run_pcap_with_rules(t.path(), &f);
    assert_eq!(r.code(), Some(0), "{}", r.stderr);
    assert!(
        r.stderr.contains("rules: 1 loaded, 0 skipped"),
        "{}",
        r.stderr
    );
    let alert = r
        .events
        .iter()
        .find(|e| e["event_type"] == "alert" && e["alert"]["signature_id"] == 9000001)
        .unwrap_or_else(|| panic!("no alert: {}", r.stderr));
    assert_eq!(
        alert["alert"]["signature"],
        "Caf\u{fffd} GET \u{fffd} la carte"
    );
}

/// A Sigma file deeper than the walk goes is named (before: dropped
/// without a word).
#[test]
fn rule_files_too_deep_are_named() {
    let t = tempfile::tempdir().unwrap();
    let rules = t.path().join("rules");
    let mut d = rules.clone();
    for i in 0..40 {
        d = d.join(format!("d{i}"));
    }
    std::fs::create_dir_all(&d).unwrap();
    let deep = rules.join(
        (0..33)
            .map(|i| format!("d{i}"))
            .collect::<Vec<_>>()
            .join("/"),
    );
    copy_from_root(
        "rules/sigma/zonewatch/ssh_auth_failure.yml",
        &deep.join("deep.yml"),
    );
    let r = run_log_with_rules(t.path(), &rules);
    assert_eq!(r.code(), Some(0), "{}", r.stderr);
    let want = format!(
        "{}: rule file more than 32 directory levels below a --rules directory; skipped",
        deep.join("deep.yml").display()
    );
    assert_stderr_has(&r, &want);
}

/// Numbers out of range from the command line, `--set` and the file: exit
/// 1 with an error naming the key (and file:line), never a panic (101), an
/// abort or GBs allocated at start.
#[test]
fn numbers_out_of_range_are_errors_naming_the_key() {
    let t = tempfile::tempdir().unwrap();
    let cfg = write_file(
        t.path(),
        "zonewatch.yaml",
        "sensor:\n  name: s1\nworkers: 5000\nflow:\n  memcap: 99999gb\nflow-timeouts:\n  tcp:\n    established: 18446744073709551615\n",
    );
    let pcap = demo_pcap();
    let log = auth_log();
    let cases: Vec<(Vec<&str>, Vec<String>)> = vec![
        (
            vec!["--pcap", s(&pcap), "--stats-interval", "18446744073709551615"],
            vec!["--stats-interval: `stats.interval`: \"18446744073709551615\" is out of range".into()],
        ),
        (
            vec!["--pcap", s(&pcap), "--set", "workers=100000"],
            vec!["--set: `workers`: \"100000\" is out of range 0..=1024".into()],
        ),
        (
            vec!["--pcap", s(&pcap), "--workers", "100000"],
            vec!["--workers: `workers`".into()],
        ),
        (
            vec!["--syslog-file", s(&log), "--set", "syslog.channel-size=1000000000"],
            vec!["--set: `syslog.channel-size`: \"1000000000\" is out of range 16..=1048576".into()],
        ),
        (
            vec!["--pcap", s(&pcap), "--set", "pipeline.queue-batches=65536", "--workers", "1024"],
            vec!["pipeline.queue-batches".into()],
        ),
        (
            vec!["--pcap", s(&pcap), "--config", s(&cfg)],
            vec![
                format!("{}:3: `workers`: \"5000\" is out of range", cfg.display()),
                format!("{}:5: `flow.memcap`: \"99999gb\" is out of range", cfg.display()),
                format!(
                    "{}:8: `flow-timeouts.tcp.established`: \"18446744073709551615\" is out of range",
                    cfg.display()
                ),
            ],
        ),
    ];
    for (args, wants) in cases {
        let r = run_bounded(t.path(), &args, Duration::from_secs(30));
        assert_no_panic(&r);
        assert_eq!(r.code(), Some(1), "{args:?}: {}", r.stderr);
        let line = r
            .stderr
            .lines()
            .find(|l| l.starts_with("zonewatch: error: "))
            .unwrap_or_else(|| panic!("{args:?}: no error line: {}", r.stderr));
        for w in wants {
            assert!(line.contains(&w), "{args:?}: no {w:?} in {line:?}");
        }
        assert!(
            r.took < Duration::from_secs(10),
            "{args:?}: took {:?}",
            r.took
        );
    }
}

/// A typo under `detect`, `capture` or `app-layer` is an error naming
/// file:line (before: a warning, and the setting silently not applied); a
/// Suricata key there still only warns; every problem is reported.
#[test]
fn unknown_keys_in_suricata_sections_are_errors_with_file_and_line() {
    let t = tempfile::tempdir().unwrap();
    let cfg = write_file(
        t.path(),
        "zonewatch.yaml",
        "detect:\n  stream-windw: 4kb\n  profile: medium\ncapture:\n  snaplenn: 1500\napp-layer:\n  protocols:\n    tls:\n      encryption-handlng: full\n",
    );
    let r = run_with_config(t.path(), &cfg);
    assert_eq!(r.code(), Some(1), "{}", r.stderr);
    let c = cfg.display();
    for w in [
        format!("{c}:2: unknown key `detect.stream-windw`"),
        format!("{c}:5: unknown key `capture.snaplenn`"),
        format!("{c}:9: unknown key `app-layer.protocols.tls.encryption-handlng`"),
    ] {
        assert_stderr_has(&r, &w);
    }
    assert!(!r.stderr.contains("detect.profile`"), "{}", r.stderr);
    // Without the typos: Suricata's key warns, the run goes on.
    std::fs::write(&cfg, "detect:\n  stream-window: 4kb\n  profile: medium\n").unwrap();
    let r = run_with_config(t.path(), &cfg);
    assert_eq!(r.code(), Some(0), "{}", r.stderr);
    assert!(
        r.stderr.contains(&format!(
            "{c}:3: Suricata setting `detect.profile` has no meaning"
        )),
        "{}",
        r.stderr
    );
}
