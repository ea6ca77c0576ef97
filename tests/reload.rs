//! SIGHUP reloads the rules of a running sensor (issue #15 item 4).
//!
//! - Live, on a veth pair in a namespace made here: state that spans the
//!   reload survives it (a flowbit set before and checked after, a
//!   threshold window, a Sigma correlation window), removed rules stop and
//!   new ones start, and a broken rule file keeps the running rules, says
//!   why with file:line and counts the failure in the stats.
//! - On files: a storm of reloads of the same rules during a replay of
//!   every shared capture with ET Open rules changes no event, byte for
//!   byte (every packet was inspected by one whole engine, and every piece
//!   of state carried over).

mod common;

use common::netns::Veth;
use common::process::{is_root, sh, Sensor};
use serde_json::Value;
use std::path::Path;
use std::time::{Duration, Instant};

fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

fn events(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Signature alerts by sid.
fn sid_count(ev: &[Value], sid: u64) -> usize {
    ev.iter()
        .filter(|e| e["event_type"] == "alert" && e["alert"]["signature_id"] == sid)
        .count()
}

/// Waits until `done` holds on the output's events (live output is flushed
/// every second).
fn wait_events(out: &Path, what: &str, done: impl Fn(&[Value]) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let ev = events(out);
        if done(&ev) {
            return;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

const RULES_BEFORE: &str = "\
alert udp any any -> any 9999 (msg:\"step 1 seen\"; content:\"STEP1\"; flowbits:set,zw.step1; flowbits:noalert; sid:1000001;)
alert udp any any -> any 9999 (msg:\"step 2 after step 1\"; content:\"STEP2\"; flowbits:isset,zw.step1; sid:1000002;)
alert udp any any -> any 9999 (msg:\"limited\"; content:\"LIMIT\"; threshold:type limit, track by_src, count 1, seconds 3600; sid:1000003;)
alert udp any any -> any 9999 (msg:\"removed by the reload\"; content:\"OLD\"; sid:1000004;)
";

/// The same rules, `OLD` gone, `NEW` added, and other flowbit names first
/// (so `zw.step1` has another id in the new engine).
const RULES_AFTER: &str = "\
alert udp any any -> any 7777 (msg:\"other bits\"; content:\"zz\"; flowbits:set,zw.a; flowbits:set,zw.b; flowbits:noalert; sid:1000009;)
alert udp any any -> any 9999 (msg:\"step 1 seen\"; content:\"STEP1\"; flowbits:set,zw.step1; flowbits:noalert; sid:1000001;)
alert udp any any -> any 9999 (msg:\"step 2 after step 1\"; content:\"STEP2\"; flowbits:isset,zw.step1; sid:1000002;)
alert udp any any -> any 9999 (msg:\"limited\"; content:\"LIMIT\"; threshold:type limit, track by_src, count 1, seconds 3600; sid:1000003;)
alert udp any any -> any 9999 (msg:\"added by the reload\"; content:\"NEW\"; sid:1000005;)
";

const SIGMA: &str = "\
title: ssh failure
id: 7d1e7e38-0000-4000-8000-000000000001
name: zw_reload_fail
level: low
logsource: {product: linux, service: sshd}
detection:
  k: ['Failed password']
  condition: k
---
title: three ssh failures from one address
id: 7d1e7e38-0000-4000-8000-000000000002
level: high
correlation:
  type: event_count
  rules: [zw_reload_fail]
  group-by: [src_ip]
  timespan: 1h
  condition: {gte: 3}
";

/// Datagrams from one socket (one flow) in the namespace to the host end.
fn send_udp(net: &Veth, payloads: &[&str]) {
    let list: Vec<String> = payloads.iter().map(|p| format!("b'{p}'")).collect();
    let program = format!(
        "import socket, time\n\
         s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
         s.bind(('0.0.0.0', 40000))\n\
         for p in [{}]:\n    s.sendto(p, ('{}', 9999)); time.sleep(0.05)\n",
        list.join(", "),
        net.host_ip
    );
    assert!(net.python(&program), "sending from the namespace failed");
}

/// sshd failures as syslog over UDP to the sensor's listener.
fn send_syslog(port: u16, n: usize) {
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    for i in 0..n {
        let line = format!(
            "<38>Dec  7 10:00:0{i} gw sshd[42]: Failed password for admin from 203.0.113.77 port 5{i}000 ssh2"
        );
        sock.send_to(line.as_bytes(), ("127.0.0.1", port)).unwrap();
    }
}

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn live_reload_keeps_state_and_a_broken_file_keeps_the_running_rules() {
    let Some(net) = (if is_root() {
        Veth::create("rld", 79)
    } else {
        None
    }) else {
        assert!(!ci(), "the reload test needs root and iproute2 in CI");
        eprintln!("skipped: needs root and iproute2 (ip netns)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules");
    std::fs::create_dir(&rules).unwrap();
    let sigs = rules.join("local.rules");
    std::fs::write(&sigs, RULES_BEFORE).unwrap();
    std::fs::write(rules.join("ssh.yml"), SIGMA).unwrap();
    let out = dir.path().join("eve.json");
    let port = free_udp_port();
    let mut zw = Sensor::start(&[
        "--interface",
        &net.host_if,
        "--bpf",
        "udp port 9999",
        "--rules",
        rules.to_str().unwrap(),
        "--syslog-listen",
        &format!("udp://127.0.0.1:{port}"),
        "--workers",
        "2",
        "--stats-interval",
        "0",
        "--output",
        out.to_str().unwrap(),
    ]);
    zw.wait_for("zonewatch: capture started");
    let pid = zw.pid().to_string();

    // Before the reload: a flowbit set, a threshold window opened, two of
    // the three failures of a correlation window.
    send_udp(&net, &["STEP1", "LIMIT", "OLD"]);
    send_syslog(port, 2);
    wait_events(&out, "the first alerts", |ev| {
        sid_count(ev, 1000003) == 1 && sid_count(ev, 1000004) == 1
    });

    std::fs::write(&sigs, RULES_AFTER).unwrap();
    assert!(sh(&["kill", "-HUP", &pid]));
    let done = zw.wait_for("zonewatch: reload: done");
    assert!(done.contains("5 signatures"), "{done}");

    // After it: the same flow (same socket, same ports).
    send_udp(&net, &["STEP2", "LIMIT", "OLD", "NEW"]);
    send_syslog(port, 1);
    wait_events(&out, "the alerts after the reload", |ev| {
        sid_count(ev, 1000002) == 1
            && sid_count(ev, 1000005) == 1
            && ev
                .iter()
                .any(|e| e["alert"]["signature"] == "three ssh failures from one address")
    });

    // A broken rule: the reload fails, says where, and the rules stay.
    let broken = format!(
        "{RULES_AFTER}alert udp any any -> any 9999 (msg:\"typo\"; content:\"BROKEN\" sid:1000006;)\n"
    );
    std::fs::write(&sigs, broken).unwrap();
    assert!(sh(&["kill", "-HUP", &pid]));
    let failed = zw.wait_for("zonewatch: error: reload failed");
    assert!(failed.contains("1 problem"), "{failed}");
    send_udp(&net, &["NEW", "BROKEN"]);
    wait_events(&out, "NEW after the failed reload", |ev| {
        sid_count(ev, 1000005) == 2
    });

    let (status, err) = zw.stop();
    assert!(status.success(), "{err}");
    assert!(
        err.contains("zonewatch: error: reload: rule skipped: ") && err.contains("local.rules:6:"),
        "the failed reload names the file and line:\n{err}"
    );
    let ev = events(&out);
    // The flowbit set before the reload was seen after it.
    assert_eq!(sid_count(&ev, 1000002), 1, "{err}");
    // The threshold window went on: LIMIT alerted once, not once per engine.
    assert_eq!(sid_count(&ev, 1000003), 1);
    // The removed rule stopped, the added one started.
    assert_eq!(sid_count(&ev, 1000004), 1);
    assert_eq!(sid_count(&ev, 1000005), 2);
    assert_eq!(sid_count(&ev, 1000006), 0);
    // Two failures before the reload and one after made the correlation.
    let corr = ev
        .iter()
        .filter(|e| e["alert"]["signature"] == "three ssh failures from one address")
        .count();
    assert_eq!(corr, 1);
    let stats = ev
        .iter()
        .rev()
        .find(|e| e["event_type"] == "stats")
        .expect("final stats");
    let r = &stats["stats"]["reload"];
    assert_eq!(r["ok"], 1, "{r}");
    assert_eq!(r["failed"], 1, "{r}");
    assert_eq!(r["last"]["success"], 0, "{r}");
    assert!(
        r["last"]["error"]
            .as_str()
            .is_some_and(|e| e.contains("local.rules:6:")),
        "{r}"
    );
    assert_eq!(stats["stats"]["sigma"]["rules_loaded"], 2);
}

/// The ET Open files whose rules raise nearly all alerts on the shared
/// captures (hunting, scans, reputation lists with their IP-only rules,
/// info and policy with most of ET's flowbits): 9,000 rules that load in
/// well under a second, so that many reloads fit in one replay.
const ET_FILES: [&str; 9] = [
    "emerging-hunting.rules",
    "emerging-info.rules",
    "emerging-policy.rules",
    "emerging-scan.rules",
    "emerging-icmp_info.rules",
    "drop.rules",
    "dshield.rules",
    "ciarmy.rules",
    "tor.rules",
];

/// Every shared capture, many times over, with those ET Open rules and the
/// repository's signatures and detectors; once without signals, once with
/// a SIGHUP every 200 ms. Same rules, so the output must be the same but
/// for the stats.
#[test]
fn a_storm_of_reloads_changes_no_event() {
    let Some(data) = common::shared_data() else {
        assert!(!ci(), "../shared/data is missing in CI");
        eprintln!("skipped: no ../shared/data");
        return;
    };
    let caps = common::captures_under(&data.join("pcaps"));
    assert!(caps.len() > 20, "{}", caps.len());
    let dir = tempfile::tempdir().unwrap();
    let run = |name: &str, storm: bool| {
        let out = dir.path().join(name);
        let mut args: Vec<String> = Vec::new();
        for _ in 0..30 {
            for c in &caps {
                args.extend(["--pcap".into(), c.display().to_string()]);
            }
        }
        let et = ET_FILES.iter().map(|f| data.join("rules/et-open").join(f));
        let ours = ["rules/signatures", "rules/detectors"].map(|d| common::root().join(d));
        for r in et.chain(ours) {
            args.extend(["--rules".into(), r.display().to_string()]);
        }
        args.extend(
            ["--workers", "2", "--stats-interval", "0", "--output"]
                .iter()
                .map(|s| s.to_string()),
        );
        args.push(out.display().to_string());
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut zw = Sensor::start(&refs);
        let mut reloads = 0;
        if storm {
            // Signal handlers are in place before the rules load.
            zw.wait_for("zonewatch: rules:");
            let pid = zw.pid().to_string();
            while zw.child.try_wait().unwrap().is_none() {
                sh(&["kill", "-HUP", &pid]);
                std::thread::sleep(Duration::from_millis(200));
            }
        }
        let (status, err) = zw.finish(Duration::from_secs(300), "the replay did not end");
        assert!(status.success(), "{err}");
        if storm {
            reloads = err.matches("zonewatch: reload: done").count();
            assert!(!err.contains("reload failed"), "{err}");
        }
        let text = std::fs::read_to_string(&out).unwrap();
        let (stats, rest): (Vec<&str>, Vec<&str>) = text
            .lines()
            .partition(|l| l.contains("\"event_type\":\"stats\""));
        let last: Value = serde_json::from_str(stats.last().expect("final stats")).unwrap();
        (rest.join("\n"), last, reloads)
    };
    let (quiet, _, _) = run("quiet.json", false);
    let (storm, stats, reloads) = run("storm.json", true);
    assert!(
        reloads >= 5,
        "only {reloads} reloads took effect during the replay: the test proves little"
    );
    assert_eq!(stats["stats"]["reload"]["ok"], reloads as u64);
    let alerts = quiet.matches("\"event_type\":\"alert\"").count();
    assert!(alerts > 1000, "{alerts} alerts");
    if quiet != storm {
        let q: Vec<&str> = quiet.lines().collect();
        let s: Vec<&str> = storm.lines().collect();
        let at = q
            .iter()
            .zip(&s)
            .position(|(a, b)| a != b)
            .unwrap_or(q.len().min(s.len()));
        panic!(
            "the reloads changed the output ({} vs {} lines) at line {at}:\n{}\n{}",
            q.len(),
            s.len(),
            q.get(at).unwrap_or(&""),
            s.get(at).unwrap_or(&"")
        );
    }
    eprintln!("{reloads} reloads during the replay, {alerts} alerts, output unchanged");
}
