//! AF_PACKET capture end to end: captures replayed with tcpreplay into one
//! end of a veth pair, zonewatch (`--capture af-packet`, 2 workers) reading
//! the other, both inside a network namespace made by the test (no
//! addresses, no routes). What the live run writes must match a file run of
//! the same captures: the same signature alerts, the same flows (each flow
//! once: the kernel's fanout kept both directions in one worker), unique
//! event ids, and the kernel's counters per ring.
//!
//! Needs root, iproute2 and tcpreplay; skips without them (fails under CI=true).

mod common;

use common::process::{is_root, sh, KillOnDrop};
use common::root;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

/// A namespace with a veth pair `zwl0` <-> `zwl1`, both up, no addresses.
struct Netns(String);

impl Netns {
    fn create(tag: &str) -> Option<Netns> {
        let root = is_root();
        let tools = sh(&["tcpreplay", "--version"]) && sh(&["ip", "-V"]);
        if !root || !tools {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI=true: the AF_PACKET tests need root, iproute2 and tcpreplay"
            );
            eprintln!("skipped: needs root, iproute2 and tcpreplay");
            return None;
        }
        let ns = Netns(format!("zwafp{tag}{}", std::process::id() % 100_000));
        let n = ns.0.as_str();
        sh(&["ip", "netns", "del", n]);
        assert!(sh(&["ip", "netns", "add", n]));
        assert!(sh(&[
            "ip", "-n", n, "link", "add", "zwl0", "type", "veth", "peer", "name", "zwl1"
        ]));
        for dev in ["zwl0", "zwl1"] {
            assert!(sh(&["ip", "-n", n, "link", "set", dev, "up"]));
            sh(&[
                "ip",
                "netns",
                "exec",
                n,
                "sysctl",
                "-qw",
                &format!("net.ipv6.conf.{dev}.disable_ipv6=1"),
            ]);
        }
        Some(ns)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        sh(&["ip", "netns", "del", &self.0]);
    }
}

fn events(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Signature alerts by sid.
fn alert_counts(ev: &[Value]) -> BTreeMap<u64, usize> {
    let mut m = BTreeMap::new();
    for e in ev.iter().filter(|e| e["event_type"] == "alert") {
        *m.entry(e["alert"]["signature_id"].as_u64().unwrap())
            .or_default() += 1;
    }
    m
}

/// Flows as (proto, endpoints, packets each way, bytes each way), sorted.
fn flows(ev: &[Value]) -> Vec<String> {
    let mut v: Vec<String> = ev
        .iter()
        .filter(|e| e["event_type"] == "flow")
        .map(|e| {
            let f = &e["flow"];
            format!(
                "{} {}:{} > {}:{} {}/{} {}/{}",
                e["proto"],
                e["src_ip"],
                e["src_port"],
                e["dest_ip"],
                e["dest_port"],
                f["pkts_toserver"],
                f["pkts_toclient"],
                f["bytes_toserver"],
                f["bytes_toclient"]
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn af_packet_capture_writes_what_the_file_run_writes() {
    let Some(ns) = Netns::create("e2e") else {
        return;
    };
    let caps = [
        root().join("fixtures/demo.pcap"),
        root().join("fixtures/attacks/web-attacks.pcap"),
    ];
    let rules = [
        root().join("fixtures/rules/demo.rules"),
        root().join("rules/signatures"),
    ];
    let dir = tempfile::tempdir().unwrap();
    let common_args = |out: &std::path::Path| {
        let mut a: Vec<String> = vec!["run".into(), "--workers".into(), "2".into()];
        for r in &rules {
            a.push("--rules".into());
            a.push(r.display().to_string());
        }
        a.extend(["--set".into(), "output.types=[alert,flow,stats]".into()]);
        a.extend(["--output".into(), out.display().to_string()]);
        a
    };

    // The file run.
    let file_out = dir.path().join("file.json");
    let mut args = common_args(&file_out);
    for c in &caps {
        args.push("--pcap".into());
        args.push(c.display().to_string());
    }
    let o = Command::new(env!("CARGO_BIN_EXE_zonewatch"))
        .args(&args)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let file = events(&std::fs::read_to_string(&file_out).unwrap());

    // The live run.
    let live_out = dir.path().join("live.json");
    let mut args = common_args(&live_out);
    args.extend([
        "--interface".into(),
        "zwl1".into(),
        "--capture".into(),
        "af-packet".into(),
    ]);
    let mut zw = KillOnDrop(
        Command::new("ip")
            .args(["netns", "exec", &ns.0, env!("CARGO_BIN_EXE_zonewatch")])
            .args(&args)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    // Wait for the line that says the rings are open and read.
    let (tx, rx) = std::sync::mpsc::channel();
    let stderr = zw.0.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("capture started") {
                let _ = tx.send(());
            }
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    rx.recv_timeout(Duration::from_secs(30))
        .expect("zonewatch did not start capturing");
    let mut replay = vec![
        "netns",
        "exec",
        &ns.0,
        "tcpreplay",
        "-i",
        "zwl0",
        "--pps",
        "2000",
    ];
    let cap_names: Vec<String> = caps.iter().map(|c| c.display().to_string()).collect();
    replay.extend(cap_names.iter().map(String::as_str));
    let r = Command::new("ip").args(&replay).output().unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    std::thread::sleep(Duration::from_millis(1500));
    assert!(sh(&["kill", "-INT", &zw.0.id().to_string()]));
    let status = zw.wait_exit(Duration::from_secs(30), "zonewatch did not stop on SIGINT");
    let err = reader.join().unwrap();
    assert!(status.success(), "{err}");
    assert!(err.contains("af-packet"), "{err}");
    let live = events(&std::fs::read_to_string(&live_out).unwrap());

    assert!(!alert_counts(&file).is_empty());
    assert_eq!(alert_counts(&live), alert_counts(&file), "alerts differ");
    assert_eq!(
        flows(&live),
        flows(&file),
        "flows differ (a flow split over workers?)"
    );
    let ids: BTreeSet<&str> = live
        .iter()
        .map(|e| e["event_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), live.len(), "event ids repeat across workers");

    let stats = &live
        .iter()
        .rev()
        .find(|e| e["event_type"] == "stats")
        .unwrap()["stats"];
    let sent = file
        .iter()
        .rev()
        .find(|e| e["event_type"] == "stats")
        .unwrap()["stats"]["decoder"]["pkts"]
        .as_u64()
        .unwrap();
    let cap = &stats["capture"];
    assert_eq!(cap["kernel_packets"].as_u64(), Some(sent), "{cap}");
    assert_eq!(cap["kernel_drops"], 0, "{cap}");
    assert_eq!(
        cap["interfaces"]["zwl1"]["kernel_packets"].as_u64(),
        Some(sent),
        "{cap}"
    );
    let rings = cap["rings"].as_object().unwrap();
    assert_eq!(
        rings.keys().cloned().collect::<Vec<_>>(),
        ["zwl1:0", "zwl1:1"],
        "{cap}"
    );
    assert!(
        rings
            .values()
            .all(|r| r["kernel_packets"].as_u64().unwrap() > 0),
        "a ring got nothing: {cap}"
    );
    assert_eq!(stats["decoder"]["pkts"].as_u64(), Some(sent));
}

#[test]
fn af_packet_on_a_missing_interface_is_a_clear_error() {
    let Some(ns) = Netns::create("err") else {
        return;
    };
    let o = Command::new("ip")
        .args(["netns", "exec", &ns.0, env!("CARGO_BIN_EXE_zonewatch")])
        .args(["run", "--interface", "nosuch0", "--capture", "af-packet"])
        .args(["--output", "/dev/null"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("nosuch0"), "{err}");
}
