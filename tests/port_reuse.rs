//! TCP port reuse (issue #16 item 7): a client whose ports come round again
//! opens a new connection on the 5-tuple of one that closed moments ago.
//! `fixtures/port-reuse.pcapng` (made by `fixtures/make-port-reuse.sh`: 600
//! HTTP requests with `Connection: close` over loopback in a namespace whose
//! ephemeral range is 50 ports wide, each port reused up to 34 times) must
//! give one flow per connection, one HTTP record per request and one alert
//! per request for a user-agent rule — what tshark sees in the capture and
//! what Suricata 7.0.17 writes (600 / 600 / 600 with the same rule).

mod common;

use common::{root, run_zonewatch};
use std::process::Command;

const CAPTURE: &str = "fixtures/port-reuse.pcapng";

/// tshark's lines for the packets matching a display filter (with
/// `field`, that field of each).
fn tshark(filter: &str, field: Option<&str>) -> Option<Vec<String>> {
    let mut cmd = Command::new("tshark");
    cmd.args(["-r", root().join(CAPTURE).to_str().unwrap(), "-Y", filter]);
    if let Some(f) = field {
        cmd.args(["-T", "fields", "-e", f]);
    }
    let out = cmd.output().ok()?;
    out.status.success().then(|| {
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect()
    })
}

#[test]
fn every_reused_connection_is_its_own_flow_with_its_records_and_alerts() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("ua.rules");
    std::fs::write(
        &rules,
        "alert http any any -> any any (msg:\"python-requests UA\"; flow:established,to_server; http.user_agent; content:\"python-requests/\"; startswith; sid:1;)\n",
    )
    .unwrap();
    let out = dir.path().join("eve.json");
    let text = run_zonewatch(
        &root().join(CAPTURE),
        // Captured on loopback: checksums are left to the NIC that is not there.
        &[
            "--rules",
            rules.to_str().unwrap(),
            "--checksum-checks",
            "none",
        ],
        &out,
    )
    .unwrap();
    let count = |t: &str| text.matches(&format!("\"event_type\":\"{t}\"")).count();
    let syn = "tcp.flags.syn == 1 && tcp.flags.ack == 0";
    let Some(syn_ports) = tshark(syn, Some("tcp.srcport")) else {
        assert!(
            std::env::var("CI").map_or(true, |v| v != "true"),
            "tshark is missing in CI"
        );
        eprintln!("skipped: needs tshark");
        return;
    };
    let requests = tshark("http.request", None).unwrap().len();
    let syns = syn_ports.len();
    let ports: std::collections::BTreeSet<&String> = syn_ports.iter().collect();
    assert_eq!(syns, 600, "the fixture has one SYN per request");
    assert_eq!(count("flow"), syns, "one flow per connection");
    assert_eq!(count("http"), requests, "one HTTP record per request");
    assert_eq!(count("alert"), requests, "one alert per request");
    let stats = text
        .lines()
        .rev()
        .find(|l| l.contains("\"event_type\":\"stats\""))
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(stats).unwrap();
    // Every connection but the first on each port reuses a tuple (the
    // capture lasts seconds: no closed flow times out in between).
    assert_eq!(
        v["stats"]["flow"]["tcp_reuse"],
        (syns - ports.len()) as u64,
        "{stats}"
    );
}
