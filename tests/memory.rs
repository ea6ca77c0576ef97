//! Bounded memory at default settings: a SYN flood of 2 million distinct
//! flows (random spoofed sources) must stay within the flow memcap plus a
//! fixed overhead, with the evictions visible in the counters.
//!
//! The fixed overhead (documented in docs/ARCHITECTURE.md) covers the worker
//! queues (queue-batches x batch-packets x workers packets in flight), the
//! output channel (64 messages of up to 1024 events per worker), the capture
//! read buffer, hash-index growth and the binary itself.

use std::process::Command;

/// Documented fixed overhead above the memcaps, bytes.
const FIXED_OVERHEAD: u64 = 160 << 20;

fn peak_rss_of_children_bytes() -> u64 {
    // ru_maxrss of the largest child waited for, in KiB on Linux.
    #[allow(unsafe_code)]
    // SAFETY: getrusage only writes into the zeroed struct we pass.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru);
        ru
    };
    ru.ru_maxrss as u64 * 1024
}

#[test]
fn syn_flood_of_two_million_flows_stays_within_memcap() {
    let dir = tempfile::tempdir().unwrap();
    let cap = dir.path().join("synflood.pcap");
    let f = std::io::BufWriter::new(std::fs::File::create(&cap).unwrap());
    zonewatch_pcapgen::floods::synflood(f, 2_000_000, 7).unwrap();
    let out = dir.path().join("out.json");
    let o = Command::new(env!("CARGO_BIN_EXE_zonewatch"))
        .args(["run", "--pcap", cap.to_str().unwrap(), "--workers", "2"])
        .args(["--output", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let rss = peak_rss_of_children_bytes();
    let cfg = zonewatch_config::Config::default();
    // Flows and their TCP sessions: the flow and stream memcaps.
    let memcap = cfg.flow.memcap_bytes + cfg.stream.memcap_bytes;
    let text = std::fs::read_to_string(&out).unwrap();
    let stats: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    let flow = &stats["stats"]["flow"];
    eprintln!(
        "peak RSS {} MiB (flow + stream memcaps {} MiB + {} MiB allowed); flows {} forced {} shutdown {}; tcp {}",
        rss >> 20,
        memcap >> 20,
        FIXED_OVERHEAD >> 20,
        flow["total"],
        flow["end"]["forced"],
        flow["end"]["shutdown"],
        stats["stats"]["tcp"]
    );
    assert_eq!(flow["total"], 2_000_000);
    assert_eq!(flow["pkts"], 2_000_000, "every packet in one flow");
    let forced = flow["end"]["forced"].as_u64().unwrap();
    let shutdown = flow["end"]["shutdown"].as_u64().unwrap();
    assert!(forced > 0, "the flood must have hit the memcap");
    assert_eq!(forced + shutdown, 2_000_000);
    assert!(flow["emerg_mode_entered"].as_u64().unwrap() >= 1);
    // Every flow was written, none lost.
    let flows = text
        .lines()
        .filter(|l| l.contains("\"event_type\":\"flow\""))
        .count();
    assert_eq!(flows, 2_000_000);
    assert!(
        rss < memcap + FIXED_OVERHEAD,
        "peak RSS {rss} exceeds memcap {memcap} + overhead {FIXED_OVERHEAD}"
    );
}

/// Fragments that never complete: the defragmenter stays within its memcap
/// (first fragments of 1480 bytes, five times what the default 32 MiB
/// holds), evicting the oldest trackers, counted; no fragment joins a flow.
#[test]
fn fragment_flood_stays_within_defrag_memcap() {
    let dir = tempfile::tempdir().unwrap();
    let cap = dir.path().join("fragflood.pcap");
    let f = std::io::BufWriter::new(std::fs::File::create(&cap).unwrap());
    zonewatch_pcapgen::floods::fragflood(f, 100_000, 3).unwrap();
    let out = dir.path().join("out.json");
    let o = Command::new(env!("CARGO_BIN_EXE_zonewatch"))
        .args(["run", "--pcap", cap.to_str().unwrap(), "--workers", "2"])
        .args([
            "--set",
            "output.types=stats",
            "--output",
            out.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = std::fs::read_to_string(&out).unwrap();
    let stats: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    let d = &stats["stats"]["defrag"];
    let cfg = zonewatch_config::Config::default();
    eprintln!("defrag: {d}");
    assert_eq!(d["fragments"], 100_000);
    assert_eq!(d["reassembled"], 0);
    assert!(d["mem_peak"].as_u64().unwrap() <= cfg.defrag.memcap_bytes);
    let evicted = d["tracker_evictions"].as_u64().unwrap() + d["timeouts"].as_u64().unwrap();
    assert!(evicted > 0, "the flood must have hit the memcap: {d}");
    assert_eq!(
        evicted + d["trackers_active"].as_u64().unwrap() + d["memcap_drops"].as_u64().unwrap(),
        100_000,
        "every fragment is either held, evicted with its tracker, or dropped: {d}"
    );
    assert_eq!(stats["stats"]["flow"]["total"], 0);
}

/// TCP segments that never become contiguous (each flow's first data segment
/// is missing): buffered out-of-order data stays within the reassembly
/// memcap, which a small memcap shows by forcing gaps, counted.
#[test]
fn segments_that_never_become_contiguous_stay_within_reassembly_memcap() {
    let dir = tempfile::tempdir().unwrap();
    let cap = dir.path().join("segflood.pcap");
    let f = std::io::BufWriter::new(std::fs::File::create(&cap).unwrap());
    zonewatch_pcapgen::floods::segflood(f, 1000, 150_000, 5).unwrap();
    for memcap_mb in [None, Some(16u64)] {
        let out = dir.path().join("out.json");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_zonewatch"));
        cmd.args(["run", "--pcap", cap.to_str().unwrap(), "--workers", "2"])
            .args([
                "--set",
                "output.types=stats",
                "--output",
                out.to_str().unwrap(),
            ]);
        if let Some(m) = memcap_mb {
            cmd.args(["--set", &format!("stream.reassembly.memcap={m}mb")]);
        }
        let o = cmd.output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let text = std::fs::read_to_string(&out).unwrap();
        let stats: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
        let tcp = &stats["stats"]["tcp"];
        eprintln!("memcap {memcap_mb:?} MiB: tcp {tcp}");
        let cfg = zonewatch_config::Config::default();
        let limit = memcap_mb
            .map(|m| m << 20)
            .unwrap_or(cfg.stream.reassembly_memcap_bytes);
        assert!(
            tcp["reassembly_memuse_peak"].as_u64().unwrap() <= limit + 2 * 65536, // each worker may pass its share by one segment (64 KiB) as it stores it
            "{tcp}"
        );
        assert_eq!(tcp["sessions"], 1000);
        if memcap_mb.is_some() {
            assert!(tcp["reassembly_memcap_gaps"].as_u64().unwrap() > 0, "{tcp}");
        }
        // Every session was closed at the end: nothing is still held.
        assert_eq!(tcp["reassembly_memuse"], 0, "{tcp}");
    }
}
