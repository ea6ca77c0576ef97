//! Live capture on a veth pair whose far end sits in a network namespace
//! made by this test (no default route; traffic never leaves the pair).
//! Needs root and iproute2; skips otherwise (fails under CI=true).

mod common;

use common::netns::Veth;
use common::process::{is_root, sh, KillOnDrop};
use std::process::{Command, Stdio};
use std::time::Duration;

#[test]
fn live_interface_sees_flows_and_reports_libpcap_counters() {
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    let Some(net) = (if is_root() {
        Veth::create("live", 77)
    } else {
        None
    }) else {
        assert!(!ci, "live test needs root and iproute2 in CI");
        eprintln!("skipped: needs root and iproute2 (ip netns)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("live.json");
    let mut zw = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_zonewatch"))
            .args([
                "run",
                "--interface",
                &net.host_if,
                "--output",
                out.to_str().unwrap(),
                "--workers",
                "2",
                "--stats-interval",
                "1",
                "--bpf",
                "icmp or udp",
            ])
            .stderr(Stdio::piped())
            .spawn()
            .expect("start zonewatch"),
    );
    std::thread::sleep(Duration::from_millis(1500));
    // ICMP echo and a UDP datagram from the namespace to the host end.
    assert!(sh(&[
        "ip",
        "netns",
        "exec",
        &net.ns,
        "ping",
        "-c",
        "3",
        "-i",
        "0.2",
        "-W",
        "1",
        "10.250.77.1"
    ]));
    let _ = Command::new("ip")
        .args(["netns", "exec", &net.ns, "python3", "-c"])
        .arg("import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); [s.sendto(b'zonewatch', ('10.250.77.1', 9999)) for _ in range(5)]")
        .status();
    std::thread::sleep(Duration::from_millis(2500));
    // Stop as an operator would (SIGINT): the run ends as if input ended.
    sh(&["kill", "-INT", &zw.0.id().to_string()]);
    let status = zw.wait_exit(Duration::from_secs(20), "zonewatch did not stop on SIGINT");
    let mut err = String::new();
    use std::io::Read;
    zw.0.stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(status.success(), "{err}");
    let text = std::fs::read_to_string(&out).unwrap();
    let ev: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let icmp = ev
        .iter()
        .find(|e| e["event_type"] == "flow" && e["proto"] == "ICMP")
        .unwrap_or_else(|| panic!("no ICMP flow in {text}"));
    assert_eq!(icmp["flow"]["pkts_toserver"], 3);
    assert_eq!(icmp["flow"]["pkts_toclient"], 3);
    assert_eq!(icmp["in_iface"], net.host_if.as_str());
    let udp = ev
        .iter()
        .find(|e| e["event_type"] == "flow" && e["proto"] == "UDP" && e["dest_port"] == 9999)
        .unwrap_or_else(|| panic!("no UDP flow in {text}"));
    assert_eq!(udp["flow"]["pkts_toserver"], 5);
    let stats: Vec<_> = ev.iter().filter(|e| e["event_type"] == "stats").collect();
    assert!(
        stats.len() >= 2,
        "periodic and final stats expected: {}",
        stats.len()
    );
    let last = stats.last().unwrap();
    assert!(
        last["stats"]["capture"]["kernel_packets"].as_u64().unwrap() >= 11,
        "{last}"
    );
    assert_eq!(last["stats"]["capture"]["kernel_drops"], 0);
}
