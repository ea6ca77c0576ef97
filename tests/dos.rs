//! The denial-of-service detector end to end: `zonewatch run --rules rules/detectors/dos.yaml`
//! on captures made with real tools in network namespaces (fixtures/attacks/make-dos.sh) and
//! on the DDoS captures of ../shared/data: one alert per victim and attack kind, nothing on
//! benign traffic.

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use common::{root, run_zonewatch};
use serde_json::Value;

/// The detector's alerts (first alerts and updates) on one capture with one detector file.
fn dos_alerts(cap: &Path, rules: &Path) -> Vec<Value> {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.json");
    let s = run_zonewatch(cap, &["--rules", rules.to_str().unwrap()], &out)
        .unwrap_or_else(|e| panic!("{}: {e}", cap.display()));
    s.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["event_type"] == "alert" && e["alert"]["category"] == "Denial of Service")
        .collect()
}

/// (sid, victim) of the first alerts (not updates).
fn started(alerts: &[Value]) -> Vec<(u64, String)> {
    alerts
        .iter()
        .filter(|e| e["alert"]["update"] != true && e["evidence"]["state"] == "started")
        .map(|e| {
            (
                e["alert"]["signature_id"].as_u64().unwrap(),
                e["dest_ip"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

fn repo_rules() -> std::path::PathBuf {
    root().join("rules/detectors/dos.yaml")
}

/// The repository's file with `protected` set to the city host of the captures, for the
/// "city host taking part" kinds.
fn protected_rules(dir: &Path) -> std::path::PathBuf {
    let text = std::fs::read_to_string(repo_rules()).unwrap();
    let text = text.replace("protected: []", "protected: [10.66.0.2/32]");
    assert!(text.contains("protected: [10.66.0.2/32]"));
    let p = dir.join("dos.yaml");
    std::fs::write(&p, text).unwrap();
    p
}

/// A capture, the (sid, victim) of its first alerts, and whether it needs `protected`.
type Case = (&'static str, &'static [(u64, &'static str)], bool);

#[test]
fn each_kind_gives_one_alert_per_victim_and_kind() {
    let dir = tempfile::tempdir().unwrap();
    let protected = protected_rules(dir.path());
    const V: &str = "10.66.0.2";
    let cases: [Case; 19] = [
        ("syn-spoofed", &[(9000800, V)], false),
        ("ack-flood", &[(9000801, V)], false),
        ("rst-flood", &[(9000802, V)], false),
        ("synack-backscatter", &[(9000803, V)], false),
        ("udp-flood", &[(9000804, V)], false),
        ("icmp-flood", &[(9000805, V)], false),
        ("fragment-flood", &[(9000806, V)], false),
        ("reflect-dns", &[(9000807, V)], false),
        ("reflect-ntp", &[(9000808, V)], false),
        ("reflect-ssdp", &[(9000809, V)], false),
        ("reflect-cldap", &[(9000810, V)], false),
        ("reflect-memcached", &[(9000811, V)], false),
        ("reflect-snmp", &[(9000812, V)], false),
        ("reflect-isakmp", &[(9000813, V)], false),
        ("reflect-natt", &[(9000813, V)], false),
        ("reflect-chargen", &[(9000814, V)], false),
        ("carpet", &[(9000820, "10.66.0.0")], false),
        ("part-reflector", &[(9000816, "10.66.0.77")], true),
        ("part-bot", &[(9000817, "10.66.0.77")], true),
    ];
    let mut failures = Vec::new();
    for (name, want, part) in cases {
        let cap = root().join(format!("fixtures/attacks/dos/{name}.pcap"));
        let rules = if part {
            protected.clone()
        } else {
            repo_rules()
        };
        let a = dos_alerts(&cap, &rules);
        let mut got = started(&a);
        got.sort();
        let want: Vec<(u64, String)> = want.iter().map(|(s, d)| (*s, d.to_string())).collect();
        if got != want {
            failures.push(format!("{name}: want {want:?}, got {got:?}"));
            continue;
        }
        // The attack's last alert says it ended, with its size.
        let last = a.last().unwrap();
        let ev = &last["evidence"];
        if ev["state"] != "ended" || ev["peak_pps"].as_u64().unwrap_or(0) == 0 {
            failures.push(format!("{name}: last alert {last}"));
        }
        if ev["detector"] != "dos"
            || !(1..=4).contains(&last["alert"]["severity"].as_u64().unwrap())
        {
            failures.push(format!("{name}: alert fields {last}"));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

/// The DoS captures of ../shared/data: each attack at its victim, once.
#[test]
fn shared_ddos_captures() {
    let Some(shared) = common::shared_data() else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "../shared/data missing on CI"
        );
        eprintln!("shared_ddos_captures: ../shared absent; skipped");
        return;
    };
    let victim = "10.10.10.10";
    for (cap, want) in [
        (
            "pcaps/stopddos/amp.TCP.reflection.SYNACK.pcap",
            vec![(9000803, victim)],
        ),
        (
            "pcaps/stopddos/amp.dns.RRSIG.fragmented.pcap",
            vec![(9000807, victim)],
        ),
        (
            "pcaps/stopddos/pkt.TCP.DOMINATE.syn.ecn.cwr.pcapng",
            vec![(9000800, victim)],
        ),
        (
            "pcaps/suricata-verify-synflood/input.pcap",
            vec![(9000800, "198.51.100.5")],
        ),
    ] {
        let a = dos_alerts(&shared.join(cap), &repo_rules());
        let mut got = started(&a);
        got.sort();
        let want: Vec<(u64, String)> = want.iter().map(|(s, d)| (*s, d.to_string())).collect();
        assert_eq!(got, want, "{cap}");
    }
}

/// No DoS alert on the benign captures of ../shared/data (by manifest category) nor on
/// the repository's benign fixtures; port scans (one source, many ports) are not floods.
#[test]
fn benign_traffic_raises_no_dos_alert() {
    let mut caps = vec![
        root().join("fixtures/attacks/benign.pcap"),
        root().join("fixtures/demo.pcap"),
        root().join("fixtures/attacks/beacon.pcap"),
        root().join("fixtures/attacks/volume-exfil.pcap"),
        root().join("fixtures/attacks/nmap-syn.pcap"),
        root().join("fixtures/attacks/nmap-ack.pcap"),
        root().join("fixtures/attacks/masscan.pcap"),
    ];
    if let Some(shared) = common::shared_data() {
        // No DoS on these either: malware, command and control, exploits,
        // brute force and DNS tunnels are not floods.
        let more = ["malware", "c2", "exploit", "bruteforce", "dns-tunnel"];
        let quiet: Vec<&str> = common::QUIET_CATEGORIES
            .iter()
            .chain(&more)
            .copied()
            .collect();
        let manifest = std::fs::read_to_string(shared.join("MANIFEST.tsv")).unwrap();
        for line in manifest.lines().skip(1) {
            let cols: Vec<&str> = line.split('\t').collect();
            if cols.len() >= 2
                && cols[0].starts_with("pcaps/")
                && quiet.contains(&cols[1].trim_start_matches("pcap:"))
            {
                caps.push(shared.join(cols[0]));
            }
        }
    } else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "../shared/data missing on CI"
        );
    }
    let mut fired = BTreeSet::new();
    for cap in caps.iter().filter(|c| c.is_file()) {
        let a = dos_alerts(cap, &repo_rules());
        if !a.is_empty() {
            fired.insert(format!("{}: {:?}", cap.display(), started(&a)));
        }
    }
    assert!(fired.is_empty(), "{fired:#?}");
}
