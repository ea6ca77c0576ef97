//! Anomaly detectors benchmark: the full pipeline on the benchmark capture
//! with every detector of `rules/detectors/` on, as a ratio to the same
//! run with detectors off (same process, alternating, best of 3 each), and
//! the alerts per category on that benign capture (false positives).
//!
//! Input: `ZW_BENCH_PCAP` or `bench-data/bench-1g.pcap` (benches/gen-bench-pcap.sh).
//! Run: `cargo bench --bench detectors`. Not run in CI.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;
use zonewatch_config::Config;
use zonewatch_output::{EveContext, EventIdSource, EventWriter, LineSink};
use zonewatch_pipeline::{Inputs, RunOptions, Stage};

fn run(path: &std::path::Path, on: bool, out: &str) -> (f64, u64, serde_json::Value) {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let cfg = Config::default();
    let ctx = EveContext::new(
        "bench",
        None,
        cfg.sensor.timezone,
        zonewatch_config::ZoneMap::default(),
        EventIdSource::Run(1),
        &cfg.output.types,
    );
    let writer = EventWriter::new(ctx, vec![Box::new(LineSink::open(out).unwrap())]);
    let anomaly = on.then(|| {
        zonewatch_anomaly::DetectorSet::load(&[root.join("rules/detectors")], None)
            .expect("detector files load")
    });
    let opts = RunOptions {
        stage: Stage::Full,
        inputs: Inputs::Files(vec![path.to_path_buf()]),
        workers: 1,
        stats_interval: 0,
        progress: false,
        stop: Arc::new(AtomicBool::new(false)),
        detect: None,
        anomaly,
        logs: None,
        ready: None,
    };
    let t = Instant::now();
    let r = zonewatch_pipeline::run(&cfg, opts, writer).expect("pipeline run");
    let secs = t.elapsed().as_secs_f64();
    let pkts = r.stats["decoder"]["pkts"].as_u64().unwrap_or(0);
    (secs, pkts, r.stats)
}

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let path = std::env::var_os("ZW_BENCH_PCAP")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("bench-data/bench-1g.pcap"));
    if !path.exists() {
        eprintln!("detectors bench: {} missing (skipped)", path.display());
        return;
    }
    let _ = run(&path, false, "/dev/null");
    let (mut off, mut on) = (f64::MAX, f64::MAX);
    let mut pkts = 0;
    let alerts_file = std::env::temp_dir().join("zw-detectors-bench.json");
    let alerts_path = alerts_file.to_str().unwrap().to_string();
    let mut stats = serde_json::Value::Null;
    for _ in 0..3 {
        let (s, p, _) = run(&path, false, "/dev/null");
        off = off.min(s);
        pkts = p;
        let (s, _, st) = run(&path, true, &alerts_path);
        on = on.min(s);
        stats = st;
    }
    println!("capture: {} ({pkts} packets), 1 worker", path.display());
    println!(
        "detectors off: {:.2}s ({:.0} pkt/s)",
        off,
        pkts as f64 / off
    );
    println!(
        "detectors on:  {:.2}s ({:.0} pkt/s) = {:.1}% of off",
        on,
        pkts as f64 / on,
        100.0 * off / on
    );
    let mut per: std::collections::BTreeMap<String, u64> = Default::default();
    for l in std::fs::read_to_string(&alerts_file)
        .unwrap_or_default()
        .lines()
    {
        if let Ok(e) = serde_json::from_str::<serde_json::Value>(l) {
            if e["event_type"] == "alert" {
                *per.entry(e["alert"]["category"].as_str().unwrap_or("").to_string())
                    .or_default() += 1;
            }
        }
    }
    println!("alerts on the benchmark capture by category: {per:?}");
    println!("detector state: {}", stats["anomaly"]);
    let _ = std::fs::remove_file(&alerts_file);
}
