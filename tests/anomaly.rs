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

/// The shared corpus by its manifest category: each attack capture raises
/// its category; captures of ordinary traffic raise no scan, flood, tunnel
/// or beacon alert (protocol anomalies may fire on malformed packets).
#[test]
fn shared_captures_by_category() {
    let Some(shared) = common::shared_data() else {
        eprintln!("shared_captures_by_category: ../shared absent; skipped");
        return;
    };
    let manifest = std::fs::read_to_string(shared.join("MANIFEST.tsv")).unwrap();
    let noisy = ["Port Scan", "Flood", "DNS Tunnel", "Beaconing"];
    let quiet_categories = common::QUIET_CATEGORIES;
    let mut per_category: std::collections::BTreeMap<
        String,
        std::collections::BTreeMap<String, u64>,
    > = Default::default();
    let mut failures = Vec::new();
    for line in manifest.lines().skip(1) {
        let cols: Vec<&str> = line.split('\t').collect();
        if cols.len() < 2 || !cols[0].starts_with("pcaps/") {
            continue;
        }
        let category = cols[1].trim_start_matches("pcap:");
        let cap = shared.join(cols[0]);
        if !cap.is_file() {
            continue;
        }
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("o.json");
        let rules = root().join("rules/detectors");
        let Ok(s) = run_zonewatch(&cap, &["--rules", rules.to_str().unwrap()], &out) else {
            continue;
        };
        let cats: Vec<String> = s
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|e| e["event_type"] == "alert")
            .map(|e| e["alert"]["category"].as_str().unwrap_or("").to_string())
            .collect();
        let counts = per_category.entry(category.to_string()).or_default();
        for c in &cats {
            *counts.entry(c.clone()).or_default() += 1;
        }
        let name = cap.file_name().unwrap().to_string_lossy().to_string();
        let has = |c: &str| cats.iter().any(|x| x == c);
        let expect = match (category, name.as_str()) {
            ("dns-tunnel", _) => Some("DNS Tunnel"),
            ("ddos-amplification", _) => Some("Flood"),
            ("syn-flood", n) if !n.contains("optionallyACK") => Some("Flood"),
            ("portscan", n) if n.ends_with("_SCAN.pcap") || n == "portscan.pcap" => {
                Some("Port Scan")
            }
            _ => None,
        };
        if let Some(c) = expect {
            if !has(c) {
                failures.push(format!("{category}/{name}: no {c} alert (got {cats:?})"));
            }
        }
        if quiet_categories.contains(&category) {
            if let Some(c) = cats.iter().find(|c| noisy.contains(&c.as_str())) {
                failures.push(format!("{category}/{name}: false positive {c}"));
            }
        }
    }
    eprintln!("anomaly alerts by manifest category: {per_category:?}");
    assert!(failures.is_empty(), "{failures:#?}");
}
