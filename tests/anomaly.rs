//! Anomaly detectors end to end: `zonewatch run --rules rules/detectors` on
//! the attack captures made with real tools (fixtures/attacks/make-attacks.sh).

mod common;

use common::{root, run_zonewatch};
use serde_json::Value;

fn alerts(cap: &str, workers: &str) -> (Vec<Value>, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.json");
    let rules = root().join("rules/detectors");
    let s = run_zonewatch(
        &root().join("fixtures/attacks").join(cap),
        &["--rules", rules.to_str().unwrap(), "--workers", workers],
        &out,
    )
    .unwrap();
    let lines: Vec<String> = s
        .lines()
        .filter(|l| !l.contains("\"event_type\":\"stats\""))
        .map(str::to_string)
        .collect();
    let a = lines
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["event_type"] == "alert")
        .collect();
    (a, lines)
}

#[test]
fn each_attack_raises_its_category_and_benign_traffic_none() {
    for (cap, category, sid) in [
        ("nmap-syn.pcap", "Port Scan", 9000100),
        ("nmap-udp.pcap", "Port Scan", 9000160),
        ("nmap-xmas.pcap", "Protocol Anomaly", 9000600),
        ("hping-syn-flood.pcap", "Flood", 9000200),
        ("hping-icmp-flood.pcap", "Flood", 9000202),
        ("dns-tunnel.pcap", "DNS Tunnel", 9000301),
        ("beacon.pcap", "Beaconing", 9000400),
        ("hping-land.pcap", "Protocol Anomaly", 9000610),
    ] {
        let (a, _) = alerts(cap, "2");
        let hit = a.iter().any(|e| {
            e["alert"]["category"] == category && (sid == 0 || e["alert"]["signature_id"] == sid)
        });
        assert!(hit, "{cap}: no {category} alert {sid}; got {a:?}");
        let e = a
            .iter()
            .find(|e| e["alert"]["category"] == category)
            .unwrap();
        assert!(e["evidence"]["detector"].is_string(), "{e}");
        let sev = e["alert"]["severity"].as_u64().unwrap();
        assert!((1..=4).contains(&sev));
    }
    let (a, _) = alerts("benign.pcap", "2");
    assert!(a.is_empty(), "benign capture alerted: {a:?}");
    let (a, _) = alerts("../demo.pcap", "2");
    assert!(a.is_empty(), "demo capture alerted: {a:?}");
}

/// One detector set sees every flow, in input order: same alerts whatever
/// the worker count.
#[test]
fn anomaly_alerts_do_not_depend_on_worker_count() {
    for cap in ["nmap-syn.pcap", "hping-syn-spoofed.pcap", "nmap-sweep.pcap"] {
        let (a1, l1) = alerts(cap, "1");
        let (_, l3) = alerts(cap, "3");
        assert!(!a1.is_empty(), "{cap}");
        assert_eq!(l1, l3, "{cap}");
    }
}
