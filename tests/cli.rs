//! End-to-end behaviour of `zonewatch run`: exit codes, output files,
//! configuration, filters, determinism across worker counts.

mod common;
use common::root;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_zonewatch"))
}

fn shared() -> Option<PathBuf> {
    common::shared_data()
}

fn run(args: &[&str]) -> Output {
    bin().args(args).output().expect("run zonewatch")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A classic pcap (Ethernet) of the given frames, 1 s apart.
fn write_pcap(path: &Path, frames: &[Vec<u8>]) {
    let mut b = Vec::new();
    b.extend_from_slice(&0xa1b2c3d4u32.to_le_bytes());
    b.extend_from_slice(&2u16.to_le_bytes());
    b.extend_from_slice(&4u16.to_le_bytes());
    b.extend_from_slice(&[0; 8]);
    b.extend_from_slice(&65535u32.to_le_bytes());
    b.extend_from_slice(&1u32.to_le_bytes());
    for (i, f) in frames.iter().enumerate() {
        b.extend_from_slice(&(1_700_000_000u32 + i as u32).to_le_bytes());
        b.extend_from_slice(&0u32.to_le_bytes());
        b.extend_from_slice(&(f.len() as u32).to_le_bytes());
        b.extend_from_slice(&(f.len() as u32).to_le_bytes());
        b.extend_from_slice(f);
    }
    std::fs::write(path, b).unwrap();
}

/// An Ethernet/IPv4/UDP frame (checksums zero: valid for UDP, unchecked here).
fn udp_frame(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 0x08, 0x00];
    let total = 20 + 8 + payload.len();
    f.extend_from_slice(&[
        0x45,
        0,
        (total >> 8) as u8,
        total as u8,
        0,
        1,
        0,
        0,
        64,
        17,
        0,
        0,
    ]);
    f.extend_from_slice(&src);
    f.extend_from_slice(&dst);
    let ulen = 8 + payload.len();
    f.extend_from_slice(&sport.to_be_bytes());
    f.extend_from_slice(&dport.to_be_bytes());
    f.extend_from_slice(&(ulen as u16).to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(payload);
    f
}

fn events(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON {l}: {e}")))
        .collect()
}

#[test]
fn version_works() {
    let o = run(&["--version"]);
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stdout).starts_with("zonewatch "));
}

#[test]
fn flows_and_stats_from_a_small_capture() {
    let dir = tempfile::tempdir().unwrap();
    let cap = dir.path().join("a.pcap");
    let q = udp_frame([10, 0, 0, 1], [192, 0, 2, 53], 40000, 53, b"query");
    let r = udp_frame([192, 0, 2, 53], [10, 0, 0, 1], 53, 40000, b"answer!");
    let other = udp_frame([10, 0, 0, 2], [192, 0, 2, 53], 40001, 53, b"q2");
    write_pcap(&cap, &[q, r, other]);
    let out = dir.path().join("out.json");
    let o = run(&[
        "run",
        "--pcap",
        cap.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
        "--set",
        "sensor.name=s1",
        "--set",
        "sensor.tenant=131016",
        "--set",
        "zones.lgwan=10.0.0.0/8",
        "--set",
        "zones.internet=0.0.0.0/0",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let ev = events(&out);
    let flows: Vec<_> = ev.iter().filter(|e| e["event_type"] == "flow").collect();
    assert_eq!(flows.len(), 2);
    let f = flows[0];
    assert_eq!(f["src_ip"], "10.0.0.1");
    assert_eq!(f["dest_port"], 53);
    assert_eq!(f["proto"], "UDP");
    assert_eq!(f["flow"]["pkts_toserver"], 1);
    assert_eq!(f["flow"]["pkts_toclient"], 1);
    assert_eq!(f["flow"]["bytes_toserver"], 47);
    assert_eq!(f["flow"]["bytes_toclient"], 49);
    assert_eq!(f["flow"]["state"], "established");
    assert_eq!(f["flow"]["reason"], "shutdown");
    assert_eq!(f["host"], "s1");
    assert_eq!(f["tenant"], "131016");
    assert_eq!(f["src_zone"], "lgwan");
    assert_eq!(f["dest_zone"], "internet");
    assert!(f["community_id"].as_str().unwrap().starts_with("1:"));
    let stats = ev.last().unwrap();
    assert_eq!(stats["event_type"], "stats");
    assert_eq!(stats["stats"]["decoder"]["pkts"], 3);
    assert_eq!(stats["stats"]["decoder"]["udp"], 3);
    assert_eq!(stats["stats"]["flow"]["total"], 2);
    assert!(stderr(&o).contains("3 packets"), "{}", stderr(&o));
}

#[test]
fn output_file_is_created_even_without_events_and_types_switch_off() {
    let dir = tempfile::tempdir().unwrap();
    let cap = dir.path().join("a.pcap");
    write_pcap(&cap, &[udp_frame([10, 0, 0, 1], [10, 0, 0, 2], 1, 2, b"x")]);
    let out = dir.path().join("out.json");
    std::fs::write(&out, "stale content\n").unwrap();
    let o = run(&[
        "run",
        "--pcap",
        cap.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
        "--set",
        "output.types=alert",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "");
}

#[test]
fn bpf_filters_files() {
    let dir = tempfile::tempdir().unwrap();
    let cap = dir.path().join("a.pcap");
    write_pcap(
        &cap,
        &[
            udp_frame([10, 0, 0, 1], [10, 0, 0, 2], 1000, 53, b"dns"),
            udp_frame([10, 0, 0, 1], [10, 0, 0, 2], 1000, 123, b"ntp"),
        ],
    );
    let out = dir.path().join("out.json");
    let o = run(&[
        "run",
        "--pcap",
        cap.to_str().unwrap(),
        "--bpf",
        "udp port 123",
        "--output",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let flows: Vec<_> = events(&out)
        .into_iter()
        .filter(|e| e["event_type"] == "flow")
        .collect();
    assert_eq!(flows.len(), 1);
    assert_eq!(flows[0]["dest_port"], 123);
    let bad = run(&[
        "run",
        "--pcap",
        cap.to_str().unwrap(),
        "--bpf",
        "udp port banana",
        "--output",
        "-",
    ]);
    assert!(!bad.status.success());
    assert!(stderr(&bad).contains("BPF"), "{}", stderr(&bad));
}

#[test]
fn truncated_capture_warns_and_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let cap = dir.path().join("a.pcap");
    write_pcap(
        &cap,
        &[
            udp_frame([10, 0, 0, 1], [10, 0, 0, 2], 1, 2, b"first"),
            udp_frame([10, 0, 0, 1], [10, 0, 0, 2], 1, 2, b"second"),
        ],
    );
    let bytes = std::fs::read(&cap).unwrap();
    std::fs::write(&cap, &bytes[..bytes.len() - 10]).unwrap();
    let out = dir.path().join("out.json");
    let o = run(&[
        "run",
        "--pcap",
        cap.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("mid-record"), "{}", stderr(&o));
    let ev = events(&out);
    assert_eq!(ev.iter().filter(|e| e["event_type"] == "flow").count(), 1);
    assert_eq!(
        ev.last().unwrap()["stats"]["pipeline"]["truncated_files"],
        1
    );
}

#[test]
fn bad_inputs_fail_with_one_line_reason() {
    let dir = tempfile::tempdir().unwrap();
    let txt = dir.path().join("notes.txt");
    std::fs::write(&txt, "this is not a capture").unwrap();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec!["--pcap".into(), txt.display().to_string()],
            "not a pcap",
        ),
        (
            vec!["--pcap".into(), "/nonexistent/x.pcap".into()],
            "No such file",
        ),
        (
            vec![
                "--pcap".into(),
                txt.display().to_string(),
                "--set".into(),
                "flow.memcapp=1".into(),
            ],
            "unknown key `flow.memcapp`",
        ),
    ];
    for (args, want) in cases {
        let mut a = vec!["run".to_string()];
        a.extend(args);
        a.extend(["--output".into(), "-".into()]);
        let o = bin().args(&a).output().unwrap();
        assert!(!o.status.success(), "{a:?} should fail");
        let e = stderr(&o);
        let lines: Vec<_> = e
            .lines()
            .filter(|l| l.starts_with("zonewatch: error"))
            .collect();
        assert_eq!(lines.len(), 1, "{e}");
        assert!(lines[0].contains(want), "{a:?}: {e}");
    }
    let cfg = dir.path().join("bad.yaml");
    std::fs::write(&cfg, "flow:\n  memcap: 1mb\n  bogus: 2\n").unwrap();
    let o = run(&[
        "run",
        "--config",
        cfg.to_str().unwrap(),
        "--pcap",
        "x",
        "--output",
        "-",
    ]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("bad.yaml:3: unknown key `flow.bogus`"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn example_config_runs() {
    let dir = tempfile::tempdir().unwrap();
    let cap = dir.path().join("a.pcap");
    write_pcap(
        &cap,
        &[udp_frame([10, 20, 0, 1], [192, 0, 2, 9], 1, 2, b"x")],
    );
    let out = dir.path().join("o.json");
    let cfg = root().join("zonewatch.example.yaml");
    let o = run(&[
        "run",
        "--config",
        cfg.to_str().unwrap(),
        "--pcap",
        cap.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let ev = events(&out);
    assert_eq!(ev[0]["src_zone"], "lgwan");
    assert_eq!(ev[0]["dest_zone"], "dmz");
    assert_eq!(ev[0]["host"], "city-internet-zone-01");
    assert!(ev[0]["timestamp"].as_str().unwrap().ends_with("+0900"));
}

/// Every event except `stats` is byte-identical with 1 and 4 workers, and on
/// a second run (stable event ids).
#[test]
fn output_is_deterministic_across_worker_counts() {
    let mut caps: Vec<PathBuf> = Vec::new();
    let fixtures = root().join("fixtures");
    if let Ok(rd) = std::fs::read_dir(&fixtures) {
        caps.extend(
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "pcap" || x == "pcapng")),
        );
    }
    match shared() {
        Some(s) => {
            for sub in ["pcaps", "suricata-verify"] {
                caps.extend(common::captures_under(&s.join(sub)));
            }
        }
        None => eprintln!("note: ../shared/data absent; determinism checked on fixtures only"),
    }
    caps.sort();
    assert!(!caps.is_empty(), "no captures to check");
    let dir = tempfile::tempdir().unwrap();
    let mut checked = 0;
    for cap in &caps {
        let mut outs = Vec::new();
        for (i, w) in ["1", "4", "4"].iter().enumerate() {
            let out = dir.path().join(format!("o{i}.json"));
            let o = run(&[
                "run",
                "--pcap",
                cap.to_str().unwrap(),
                "--workers",
                w,
                "--output",
                out.to_str().unwrap(),
            ]);
            assert!(o.status.success(), "{}: {}", cap.display(), stderr(&o));
            let text = std::fs::read_to_string(&out).unwrap();
            let kept: Vec<&str> = text
                .lines()
                .filter(|l| !l.contains("\"event_type\":\"stats\""))
                .collect();
            outs.push(kept.join("\n"));
        }
        assert_eq!(outs[0], outs[1], "{}: 1 vs 4 workers differ", cap.display());
        assert_eq!(outs[1], outs[2], "{}: two runs differ", cap.display());
        checked += 1;
    }
    eprintln!("determinism: {checked} captures identical with 1 and 4 workers");
}

#[test]
fn a_directory_is_read_in_name_order_skipping_non_captures() {
    let dir = tempfile::tempdir().unwrap();
    let caps = dir.path().join("caps");
    std::fs::create_dir(&caps).unwrap();
    // b.pcap's packet is older than a.pcap's: name order, not time order.
    write_pcap(
        &caps.join("b.pcap"),
        &[udp_frame([10, 0, 0, 2], [10, 0, 0, 9], 2, 53, b"b")],
    );
    write_pcap(
        &caps.join("a.pcap"),
        &[udp_frame([10, 0, 0, 1], [10, 0, 0, 9], 1, 53, b"a")],
    );
    std::fs::write(caps.join("README.txt"), "notes").unwrap();
    let out = dir.path().join("out.json");
    let o = run(&[
        "run",
        "--pcap",
        caps.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("README.txt: not a capture; skipped"),
        "{}",
        stderr(&o)
    );
    let flows: Vec<_> = events(&out)
        .into_iter()
        .filter(|e| e["event_type"] == "flow")
        .map(|e| e["src_ip"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(flows, ["10.0.0.1", "10.0.0.2"]);
}

/// The demo command (`scripts/demo.sh`, run here with the binary under test
/// and the arguments taken from the script's `exec` line): the bundled
/// capture and SSH log raise signature alerts with their packet and a Sigma
/// brute-force correlation naming the attacker.
#[test]
fn demo_shows_signature_and_sigma_alerts() {
    let script = std::fs::read_to_string(root().join("scripts/demo.sh")).unwrap();
    let exec = script
        .split("exec ./target/release/zonewatch ")
        .nth(1)
        .expect("demo.sh ends with exec ./target/release/zonewatch ...");
    let args: Vec<&str> = exec
        .split_whitespace()
        .filter(|a| *a != "\\" && *a != "\"$@\"")
        .collect();
    let o = bin().current_dir(root()).args(&args).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let ev: Vec<serde_json::Value> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let alerts: Vec<&serde_json::Value> =
        ev.iter().filter(|e| e["event_type"] == "alert").collect();
    assert!(
        alerts
            .iter()
            .any(|a| a["alert"]["signature"] == "ZW demo HTTP GET" && a["pcap_cnt"].is_u64()),
        "no signature alert: {alerts:?}"
    );
    let brute = alerts
        .iter()
        .find(|a| a["alert"]["signature"] == "SSH Brute Force From One Source")
        .expect("no Sigma brute-force alert");
    assert!(brute["src_ip"].is_string(), "{brute}");
    assert!(ev.iter().any(|e| e["event_type"] == "flow"));
    assert_eq!(ev.last().unwrap()["event_type"], "stats");
}
