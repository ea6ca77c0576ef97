//! Signature benchmark: throughput of the full pipeline with 0, 100, 1,000
//! and all loadable Emerging Threats Open rules, as a ratio to the run
//! without rules measured in the same process; rule load time; alert counts
//! (checked equal for 1 and 2 workers).
//!
//! Input: `ZW_BENCH_PCAP` or `bench-data/bench-1g.pcap` (see
//! benches/gen-bench-pcap.sh), rules from `ZW_BENCH_RULES` or
//! `../shared/data/rules/et-open`. Not run in CI.
//! Run: `cargo bench --bench signatures` (`ZW_BENCH_WORKERS=2` for two
//! workers).

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;
use zonewatch_config::Config;
use zonewatch_detect::{DetectConfig, Engine};
use zonewatch_output::{EveContext, EventIdSource, EventWriter, LineSink};
use zonewatch_pipeline::{Inputs, RunOptions, Stage};

struct Run {
    pkts: u64,
    bytes: u64,
    secs: f64,
    alerts: u64,
}

fn run(path: &Path, engine: Option<Arc<Engine>>, workers: usize) -> Run {
    let cfg = Config::default();
    let ctx = EveContext::new(
        "bench",
        None,
        cfg.sensor.timezone,
        zonewatch_config::ZoneMap::default(),
        EventIdSource::Run(1),
        &cfg.output.types,
    );
    let writer = EventWriter::new(ctx, vec![Box::new(LineSink::open("/dev/null").unwrap())]);
    let opts = RunOptions {
        stage: Stage::Full,
        inputs: Inputs::Files(vec![path.to_path_buf()]),
        workers,
        stats_interval: 0,
        progress: false,
        stop: Arc::new(AtomicBool::new(false)),
        detect: engine,
        anomaly: None,
        logs: None,
        ready: None,
    };
    let t = Instant::now();
    let r = zonewatch_pipeline::run(&cfg, opts, writer).expect("pipeline run");
    let secs = t.elapsed().as_secs_f64();
    Run {
        pkts: r.stats["decoder"]["pkts"].as_u64().unwrap_or(0),
        bytes: r.stats["decoder"]["bytes"].as_u64().unwrap_or(0),
        secs,
        alerts: r.stats["output"]["events"]["alert"].as_u64().unwrap_or(0),
    }
}

/// The text of every rule under `dir` that the engine loads, in file order.
fn loadable_rules(dir: &Path) -> Vec<String> {
    let all = Engine::load(&[dir.to_path_buf()], &DetectConfig::default()).expect("load rules");
    let skipped: std::collections::HashSet<(String, usize)> = all
        .report
        .errors
        .iter()
        .map(|e| (e.origin.file.to_string(), e.origin.line))
        .collect();
    let mut out = Vec::new();
    for f in &all.report.files {
        let text = String::from_utf8_lossy(&std::fs::read(f).unwrap()).into_owned();
        let name = f.display().to_string();
        for r in zonewatch_rules::split_rules(&text) {
            if !skipped.contains(&(name.clone(), r.line)) {
                out.push(r.text);
            }
        }
    }
    out
}

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let path = std::env::var_os("ZW_BENCH_PCAP")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("bench-data/bench-1g.pcap"));
    let rules_dir = std::env::var_os("ZW_BENCH_RULES")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("../shared/data/rules/et-open"));
    if !path.exists() || !rules_dir.exists() {
        eprintln!(
            "signatures bench: {} or {} missing (skipped)",
            path.display(),
            rules_dir.display()
        );
        return;
    }
    let t = Instant::now();
    let full =
        Engine::load(std::slice::from_ref(&rules_dir), &DetectConfig::default()).expect("load");
    let load_secs = t.elapsed().as_secs_f64();
    println!(
        "rules: {} loaded, {} skipped from {} in {:.2}s (wall, incl. reading files)",
        full.report.loaded,
        full.report.skipped,
        rules_dir.display(),
        load_secs
    );
    let texts = loadable_rules(&rules_dir);
    let workers: usize = std::env::var("ZW_BENCH_WORKERS")
        .ok()
        .and_then(|w| w.parse().ok())
        .unwrap_or(1);
    // Warm the page cache.
    let _ = run(&path, None, workers);
    let base = run(&path, None, workers);
    println!(
        "capture: {} ({} packets, {} bytes), {workers} worker(s)",
        path.display(),
        base.pkts,
        base.bytes
    );
    println!(
        "{:<14} {:>12} {:>10} {:>8} {:>9} {:>9}",
        "rules", "pkt/s", "Gbit/s", "secs", "vs none", "alerts"
    );
    let row = |name: &str, r: &Run| {
        println!(
            "{:<14} {:>12.0} {:>10.2} {:>8.2} {:>8.1}% {:>9}",
            name,
            r.pkts as f64 / r.secs,
            r.bytes as f64 * 8.0 / r.secs / 1e9,
            r.secs,
            100.0 * base.secs / r.secs,
            r.alerts
        )
    };
    row("0", &base);
    let mut last = None;
    for n in [100usize, 1000, texts.len()] {
        let n = n.min(texts.len());
        let joined = texts[..n].join("\n");
        let e = Arc::new(Engine::from_texts(
            &[("bench.rules", &joined)],
            &DetectConfig::default(),
        ));
        let r = run(&path, Some(e.clone()), workers);
        assert_eq!(r.pkts, base.pkts);
        row(&format!("{n}"), &r);
        last = Some((e, r.alerts, r.secs));
    }
    if let Some((_, _, secs)) = &last {
        // Issue #4 compares wall time with rule loading included against
        // Suricata 7.0.17 with all ET Open rules on the same machine type:
        // ~15 s loading, then 1.6-2.0 Gbit/s. Suricata is not installable
        // here, so its side is that arithmetic on this capture's bytes.
        let total = load_secs + secs;
        let bits = base.bytes as f64 * 8.0;
        let (slow, fast) = (15.0 + bits / 1.6e9, 15.0 + bits / 2.0e9);
        println!(
            "all rules, loading included: {total:.2}s ({:.2} Gbit/s); Suricata 7.0.17 by the issue's \
             figures: {fast:.1}-{slow:.1}s, so {:.2}-{:.2}x Suricata's throughput",
            bits / total / 1e9,
            fast / total,
            slow / total
        );
    }
    if let Some((e, alerts, _)) = last {
        let other = if workers == 1 { 2 } else { 1 };
        let r = run(&path, Some(e), other);
        assert_eq!(
            r.alerts, alerts,
            "alert count differs between {workers} and {other} workers"
        );
        println!("all rules, {other} worker(s): {} alerts (same)", r.alerts);
    }
}
