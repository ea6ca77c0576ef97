//! `zonewatch config check`, `--log-format json` and the files in `dist/` (the systemd unit
//! and the production configuration), end to end through the binary.

mod common;

use common::process::{path, zonewatch};
use std::path::PathBuf;
use std::process::{Command, Output};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_zonewatch"))
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The one summary line of `config check`.
fn summary(err: &str) -> &str {
    err.lines()
        .find(|l| l.contains("config check:"))
        .unwrap_or_else(|| panic!("no summary line in:\n{err}"))
}

#[test]
fn repo_rules_and_example_config_pass() {
    let r = root();
    let o = zonewatch(&[
        "config",
        "check",
        "--config",
        path(&r.join("zonewatch.example.yaml")),
        "--rules",
        path(&r.join("rules")),
    ]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    let s = summary(&err);
    assert!(s.contains(": ok: 0 error(s), 0 warning(s)"), "{s}");
    // The city's signatures, Sigma rules and detectors, per kind.
    assert!(s.contains("signatures: 25 loaded, 0 skipped"), "{s}");
    assert!(s.contains("sigma: 24 loaded, 0 skipped"), "{s}");
    assert!(s.contains("detectors: 8 loaded from 8 file(s)"), "{s}");
    // Nothing else: no capture, no listener, no load lines of `run`.
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(o.stdout.is_empty());
}

#[test]
fn defaults_without_any_file_pass() {
    let o = zonewatch(&["config", "check"]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(summary(&err).contains("(defaults): ok"), "{err}");
}

#[test]
fn production_config_passes_check() {
    let r = root();
    let dir = tempfile::tempdir().unwrap();
    // The paths of the service (/var/lib/zonewatch, /var/log/zonewatch) are the installed
    // machine's; here they point into a temporary directory.
    let spool = dir.path().join("spool");
    let out = dir.path().join("eve.json");
    let o = zonewatch(&[
        "config",
        "check",
        "--strict",
        "--config",
        path(&r.join("dist/zonewatch.production.yaml")),
        "--rules",
        path(&r.join("rules")),
        "--spool-dir",
        path(&spool),
        "--output",
        path(&out),
        // Named on the command line, as the unit does: not opened by check.
        "--interface",
        "zw-no-such-if0",
    ]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    let s = summary(&err);
    assert!(
        s.contains(": ok: 0 error(s), 0 warning(s) (--strict)"),
        "{s}"
    );
    assert!(s.contains("detectors: 8 loaded"), "{s}");
    // Check creates nothing: the spool directory is created by `run`.
    assert!(!spool.exists());
    assert!(!out.exists());
}

#[test]
fn production_config_runs_on_the_demo_capture() {
    let r = root();
    let dir = tempfile::tempdir().unwrap();
    // Without a broker here: the same file less its `kafka:` section.
    let text = std::fs::read_to_string(r.join("dist/zonewatch.production.yaml")).unwrap();
    let mut kept = Vec::new();
    let mut in_kafka = false;
    for l in text.lines() {
        if !l.starts_with(' ') && !l.starts_with('#') && !l.is_empty() {
            in_kafka = l.starts_with("kafka:");
        }
        if !in_kafka {
            kept.push(l);
        }
    }
    let cfg = dir.path().join("production-no-kafka.yaml");
    std::fs::write(&cfg, kept.join("\n")).unwrap();
    let out = dir.path().join("eve.json");
    let o = zonewatch(&[
        "run",
        "--config",
        path(&cfg),
        "--rules",
        path(&r.join("rules")),
        "--pcap",
        path(&r.join("fixtures/demo.pcap")),
        "--output",
        path(&out),
    ]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    let events = std::fs::read_to_string(&out).unwrap();
    let mut types = std::collections::BTreeSet::new();
    for l in events.lines() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        assert_eq!(v["host"], "city-internet-zone-01");
        assert_eq!(v["tenant"], "131016");
        types.insert(v["event_type"].as_str().unwrap().to_string());
    }
    assert!(
        types.contains("flow") && types.contains("stats"),
        "{types:?}"
    );
    assert!(err.contains("detectors: 8 loaded"), "{err}");
}

#[test]
fn unknown_key_and_broken_signature_are_both_reported_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("sensor.yaml");
    std::fs::write(
        &cfg,
        "sensor:\n  name: s1\nflow:\n  memcapp: 1gb\nstream:\n  midstream: true\n",
    )
    .unwrap();
    let rules = dir.path().join("rules");
    std::fs::create_dir(&rules).unwrap();
    std::fs::write(
        rules.join("local.rules"),
        "alert tcp any any -> any 80 (msg:\"good\"; content:\"GET\"; sid:1; rev:1;)\n\
         alert tcp any any -> any 80 (msg:\"broken\"; content:\"GET\"; sid:2; rev:1;\n",
    )
    .unwrap();
    let o = zonewatch(&[
        "config",
        "check",
        "--config",
        path(&cfg),
        "--rules",
        path(&rules),
    ]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    let cfg_line = format!(
        "zonewatch: error: {}:4: unknown key `flow.memcapp`",
        cfg.display()
    );
    assert!(err.contains(&cfg_line), "{err}");
    let rule_line = format!("{}:2:", rules.join("local.rules").display());
    assert!(
        err.lines()
            .any(|l| l.starts_with("zonewatch: error: rule skipped: ") && l.contains(&rule_line)),
        "{err}"
    );
    let s = summary(&err);
    assert!(s.contains("FAILED: 2 error(s), 0 warning(s)"), "{s}");
    assert!(s.contains("signatures: 1 loaded, 1 skipped"), "{s}");
    // `run` refuses the same configuration.
    let o = zonewatch(&[
        "run",
        "--config",
        path(&cfg),
        "--pcap",
        path(&root().join("fixtures/demo.pcap")),
        "--output",
        path(&dir.path().join("eve.json")),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("unknown key `flow.memcapp`"));
}

#[test]
fn every_error_is_listed_not_just_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.yaml");
    std::fs::write(
        &cfg,
        "zones:\n  lgwan: [10.20.0.0/16]\nzone-policy:\n  default: maybe\nthreshold-file: /nonexistent/threshold.config\n",
    )
    .unwrap();
    let det = dir.path().join("det");
    std::fs::create_dir(&det).unwrap();
    std::fs::write(det.join("scan.yaml"), "detector:\n  type: portscann\n").unwrap();
    let o = zonewatch(&[
        "config",
        "check",
        "--config",
        path(&cfg),
        "--rules",
        path(&det),
        "--set",
        "workers=100000",
        "--syslog-listen",
        "tls://127.0.0.1:6514",
    ]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    for want in [
        "--set: `workers`",
        &format!("zone policy: {}:4:", cfg.display()),
        "/nonexistent/threshold.config",
        &format!("{}:2:", det.join("scan.yaml").display()),
        "tls:// syslog listeners need syslog.tls.cert",
    ] {
        assert!(
            err.lines()
                .any(|l| l.starts_with("zonewatch: error: ") && l.contains(want)),
            "{want:?} missing in:\n{err}"
        );
    }
    assert!(summary(&err).contains("detectors: not loaded"), "{err}");
}

#[test]
fn strict_turns_warnings_into_a_failure() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("suricata-ish.yaml");
    // A Suricata key with no meaning here: a warning.
    std::fs::write(&cfg, "mpm-algo: hs\nsensor:\n  name: s1\n").unwrap();
    let o = zonewatch(&["config", "check", "--config", path(&cfg)]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(err.contains("zonewatch: warning: "), "{err}");
    assert!(err.contains("mpm-algo"), "{err}");
    assert!(
        summary(&err).contains(": ok: 0 error(s), 1 warning(s)"),
        "{err}"
    );
    let o = zonewatch(&["config", "check", "--strict", "--config", path(&cfg)]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        summary(&err).contains("FAILED: 0 error(s), 1 warning(s) (--strict)"),
        "{err}"
    );
}

#[test]
fn kafka_spool_directory_must_be_writable() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, "x").unwrap();
    let spool = file.join("spool");
    let o = zonewatch(&[
        "config",
        "check",
        "--kafka",
        "127.0.0.1:9",
        "--spool-dir",
        path(&spool),
    ]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("spool directory"), "{err}");
    // A directory that does not exist yet, under one that can be written: fine, and not created.
    let spool = dir.path().join("a/b/spool");
    let o = zonewatch(&[
        "config",
        "check",
        "--kafka",
        "127.0.0.1:9",
        "--spool-dir",
        path(&spool),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(!dir.path().join("a").exists());
}

/// Every stderr line of a run and of a check is a JSON object with a level and a message.
#[test]
fn log_format_json_makes_every_stderr_line_json() {
    let r = root();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.yaml");
    // A warning (ignored Suricata key) and a skipped rule, so WARN lines are there too.
    std::fs::write(&cfg, "mpm-algo: hs\n").unwrap();
    let rules = dir.path().join("r.rules");
    std::fs::write(
        &rules,
        "alert tcp any any -> any any (msg:\"x\"; lua:foo.lua; sid:7; rev:1;)\n",
    )
    .unwrap();
    let runs: [Vec<String>; 3] = [
        vec![
            "--log-format".into(),
            "json".into(),
            "run".into(),
            "--config".into(),
            path(&cfg).into(),
            "--rules".into(),
            path(&rules).into(),
            "--pcap".into(),
            path(&r.join("fixtures/demo.pcap")).into(),
            "--output".into(),
            path(&dir.path().join("eve.json")).into(),
        ],
        // The flag after the subcommand works too.
        vec![
            "config".into(),
            "check".into(),
            "--log-format".into(),
            "json".into(),
            "--config".into(),
            path(&cfg).into(),
            "--rules".into(),
            path(&rules).into(),
        ],
        // A failure to start is a JSON line as well.
        vec![
            "--log-format".into(),
            "json".into(),
            "run".into(),
            "--pcap".into(),
            path(&r.join("fixtures/not-a-capture.txt")).into(),
        ],
    ];
    for args in runs {
        let o = bin()
            .args(&args)
            .env_remove("ZONEWATCH_LOG")
            .output()
            .unwrap();
        let err = stderr(&o);
        assert!(!err.is_empty(), "{args:?}");
        let mut levels = std::collections::BTreeSet::new();
        for l in err.lines() {
            let v: serde_json::Value = serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {l}\n{err}"));
            let level = v["level"]
                .as_str()
                .unwrap_or_else(|| panic!("no level: {l}"));
            levels.insert(level.to_string());
            let msg = v["fields"]["message"]
                .as_str()
                .unwrap_or_else(|| panic!("no fields.message: {l}"));
            assert!(!msg.is_empty());
            assert!(v["timestamp"].is_string(), "{l}");
            assert!(!l.contains('\u{1b}'), "ANSI escape in {l}");
        }
        match args[2].as_str() {
            "run" if o.status.code() == Some(0) => {
                // The summary lines of text mode, as INFO lines.
                assert!(levels.contains("WARN") && levels.contains("INFO"), "{err}");
                assert!(err.contains("packets,"), "{err}");
                assert!(err.contains("events written:"), "{err}");
            }
            "run" => {
                assert_eq!(o.status.code(), Some(1), "{err}");
                assert!(levels.contains("ERROR"), "{err}");
            }
            _ => {
                assert_eq!(o.status.code(), Some(0), "{err}");
                assert!(err.contains("config check:"), "{err}");
            }
        }
    }
}

#[test]
fn log_format_text_keeps_the_summary_lines() {
    let r = root();
    let dir = tempfile::tempdir().unwrap();
    let o = zonewatch(&[
        "--log-format",
        "text",
        "run",
        "--pcap",
        path(&r.join("fixtures/demo.pcap")),
        "--output",
        path(&dir.path().join("eve.json")),
    ]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(
        err.lines()
            .any(|l| l.starts_with("zonewatch: 122 packets,")),
        "{err}"
    );
    assert!(!err.contains('\u{1b}'), "no colours off a terminal: {err}");
    let o = zonewatch(&["--log-format", "yaml", "run"]);
    assert_eq!(o.status.code(), Some(2));
}

/// The unit's key = value settings (comments and sections left out).
fn unit_settings(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with('['))
        .map(|l| {
            let (k, v) = l
                .split_once('=')
                .unwrap_or_else(|| panic!("not key=value: {l}"));
            (k.trim().to_string(), v.trim().to_string())
        })
        .collect()
}

#[test]
fn systemd_unit_has_the_hardening() {
    let text = std::fs::read_to_string(root().join("dist/zonewatch.service")).unwrap();
    let settings = unit_settings(&text);
    let get = |k: &str| -> Vec<&str> {
        settings
            .iter()
            .filter(|(kk, _)| kk == k)
            .map(|(_, v)| v.as_str())
            .collect()
    };
    for (k, v) in [
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("NoNewPrivileges", "yes"),
        ("CapabilityBoundingSet", "CAP_NET_RAW CAP_NET_ADMIN"),
        ("AmbientCapabilities", "CAP_NET_RAW CAP_NET_ADMIN"),
        ("ReadWritePaths", "/var/lib/zonewatch /var/log/zonewatch"),
        ("Restart", "on-failure"),
        ("User", "zonewatch"),
    ] {
        assert_eq!(get(k), vec![v], "{k}");
    }
    // `systemctl reload` is SIGHUP: the rules reload (tests/reload.rs).
    assert_eq!(get("ExecReload"), vec!["/bin/kill -HUP $MAINPID"]);
    // Sections in order.
    let sections: Vec<&str> = text.lines().filter(|l| l.starts_with('[')).collect();
    assert_eq!(sections, ["[Unit]", "[Service]", "[Install]"]);
    // The open-file limit fits two stream listeners at the production config's
    // syslog.max-connections, plus zonewatch's own margin (256).
    let prod = std::fs::read_to_string(root().join("dist/zonewatch.production.yaml")).unwrap();
    let max_conn: u64 = prod
        .lines()
        .find_map(|l| l.trim().strip_prefix("max-connections:"))
        .and_then(|v| v.split('#').next())
        .and_then(|v| v.trim().parse().ok())
        .expect("syslog.max-connections in the production config");
    let nofile: u64 = get("LimitNOFILE")[0].parse().unwrap();
    assert!(
        nofile >= 2 * max_conn + 256,
        "{nofile} < 2 x {max_conn} + 256"
    );
    // The spool and the output of the production config are where the unit may write.
    assert!(prod.contains("dir: /var/lib/zonewatch/spool"));
    assert!(prod.contains("path: /var/log/zonewatch/eve.json"));
    // ExecStartPre checks what ExecStart runs.
    let start = get("ExecStart")[0];
    let pre = get("ExecStartPre")[0];
    assert!(
        pre.contains(
            " config check --config /etc/zonewatch/zonewatch.yaml --rules /etc/zonewatch/rules"
        ),
        "{pre}"
    );
    assert!(
        start.contains(" run --config /etc/zonewatch/zonewatch.yaml --rules /etc/zonewatch/rules"),
        "{start}"
    );
}

/// `systemd-analyze verify` on the unit, with the binary path pointed at the one built here
/// (verify checks that ExecStart's program exists). Skipped when systemd-analyze is absent.
#[test]
fn systemd_analyze_verifies_the_unit() {
    let probe = Command::new("systemd-analyze").arg("--version").output();
    if !probe.is_ok_and(|o| o.status.success()) {
        eprintln!("systemd-analyze not installed: skipped");
        return;
    }
    let text = std::fs::read_to_string(root().join("dist/zonewatch.service")).unwrap();
    let text = text.replace("/usr/local/bin/zonewatch", env!("CARGO_BIN_EXE_zonewatch"));
    let dir = tempfile::tempdir().unwrap();
    let unit = dir.path().join("zonewatch.service");
    std::fs::write(&unit, text).unwrap();
    let o = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit)
        .output()
        .unwrap();
    let out = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    // Lines about units other than ours (the host's) are not this test's business.
    let ours: Vec<&str> = out
        .lines()
        .filter(|l| l.contains("zonewatch.service"))
        .collect();
    assert!(o.status.success() && ours.is_empty(), "{out}");
}

#[test]
fn capture_method_and_ring_settings_are_checked_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("c.yaml");
    std::fs::write(
        &f,
        "capture:\n  method: af_packet\n  af-packet:\n    ring-size: 16kb\n    block-timeout: 0\n    cluster-id: 70000\n    ring-siz: 1mb\n",
    )
    .unwrap();
    let o = zonewatch(&["config", "check", "--config", path(&f)]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    for want in [
        "c.yaml:2: `capture.method` is pcap or af-packet, not \"af_packet\"",
        "c.yaml:4: `capture.af-packet.ring-size`",
        "c.yaml:5: `capture.af-packet.block-timeout`",
        "c.yaml:6: `capture.af-packet.cluster-id`",
        "c.yaml:7: unknown key `capture.af-packet.ring-siz`",
    ] {
        assert!(err.contains(want), "missing {want:?} in:\n{err}");
    }
    assert!(summary(&err).contains("5 error(s)"), "{err}");
    // The good values pass.
    std::fs::write(
        &f,
        "capture:\n  method: af-packet\n  af-packet:\n    ring-size: 64mb\n    block-size: 2mb\n    block-timeout: 20\n    cluster-id: 7\n",
    )
    .unwrap();
    let o = zonewatch(&["config", "check", "--config", path(&f)]);
    assert!(o.status.success(), "{}", stderr(&o));
}
