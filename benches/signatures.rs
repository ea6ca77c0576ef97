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
//!
//! Then, when `../shared/tools/suricata/` is there (and `ZW_BENCH_SURICATA`
//! is not `0`), the side-by-side part: the `zonewatch` binary with 1 and 2
//! workers against the reference Suricata 7.0.17 in its `single` and
//! `autofp` runmodes, all ET Open rules and no rules, alert output only,
//! `-k none`, the same HOME_NET (`ZW_BENCH_HOME_NET`), interleaved
//! (`benches/side_by_side.rs`); it prints both, the ratios the issue's
//! targets name, and the alert multiset difference.

#[path = "side_by_side.rs"]
mod side_by_side;

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
    let parts = std::env::var("ZW_BENCH_PARTS").unwrap_or_else(|_| "engine,suricata".into());
    if parts.contains("engine") {
        in_process(&path, &rules_dir);
    }
    let suricata = root.join("../shared/tools/suricata/suricata.sh");
    if parts.contains("suricata") && std::env::var("ZW_BENCH_SURICATA").as_deref() != Ok("0") {
        if suricata.exists() {
            versus_suricata(&root, &suricata, &path, &rules_dir);
        } else {
            eprintln!("side by side: {} missing (skipped)", suricata.display());
        }
    }
}

/// The engine alone, in this process: throughput with 0, 100, 1,000 and all
/// rules as a ratio to no rules.
fn in_process(path: &Path, rules_dir: &Path) {
    let path = path.to_path_buf();
    let rules_dir = rules_dir.to_path_buf();
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
        last = Some((e, r.alerts));
    }
    if let Some((e, alerts)) = last {
        let other = if workers == 1 { 2 } else { 1 };
        let r = run(&path, Some(e), other);
        assert_eq!(
            r.alerts, alerts,
            "alert count differs between {workers} and {other} workers"
        );
        println!("all rules, {other} worker(s): {} alerts (same)", r.alerts);
    }
}

fn arg(s: impl Into<String>) -> String {
    s.into()
}

/// One side-by-side configuration: the zonewatch binary or Suricata.
fn contender(name: &str, argv: Vec<String>) -> side_by_side::Contender {
    side_by_side::Contender {
        name: name.into(),
        argv,
    }
}

/// Whole processes, interleaved: zonewatch 1 and 2 workers, Suricata single
/// and autofp, with all ET Open rules and with none.
fn versus_suricata(root: &Path, suricata: &Path, cap: &Path, rules_dir: &Path) {
    let zw = root.join("target/release/zonewatch");
    if !zw.exists() {
        eprintln!("side by side: build the binary first (cargo build --release)");
        return;
    }
    let work = root.join("bench-data/side-by-side");
    std::fs::create_dir_all(&work).unwrap();
    // One file for both: Suricata's -S takes one.
    let all = work.join("all.rules");
    let mut files: Vec<PathBuf> = std::fs::read_dir(rules_dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "rules"))
        .collect();
    files.sort();
    let mut text = Vec::new();
    for f in &files {
        text.extend(std::fs::read(f).unwrap());
        text.push(b'\n');
    }
    std::fs::write(&all, text).unwrap();
    let none = work.join("none.rules");
    std::fs::write(&none, "").unwrap();
    let home = std::env::var("ZW_BENCH_HOME_NET")
        .unwrap_or_else(|_| "[192.168.0.0/16,10.0.0.0/8,172.16.0.0/12]".into());
    let zonewatch = |workers: usize, rules: &Path| -> Vec<String> {
        vec![
            zw.display().to_string(),
            arg("run"),
            arg("--pcap"),
            arg("{CAP}"),
            arg("--rules"),
            rules.display().to_string(),
            arg("--workers"),
            workers.to_string(),
            arg("--checksum-checks"),
            arg("none"),
            arg("--set"),
            arg("output.types=[alert]"),
            arg("--set"),
            format!("vars.address-groups.HOME_NET={home}"),
            arg("--output"),
            arg("{OUT}/eve.json"),
        ]
    };
    let suri = |runmode: &str, rules: &Path| -> Vec<String> {
        vec![
            suricata.display().to_string(),
            arg("--alert-only"),
            arg("-S"),
            rules.display().to_string(),
            arg("-r"),
            arg("{CAP}"),
            arg("-k"),
            arg("none"),
            arg("-l"),
            arg("{OUT}"),
            arg("--runmode"),
            runmode.into(),
            arg("--set"),
            format!("vars.address-groups.HOME_NET={home}"),
            arg("--set"),
            arg("stream.memcap=1gb"),
            arg("--set"),
            arg("stream.reassembly.memcap=2gb"),
        ]
    };
    let contenders = vec![
        contender("zonewatch 1 worker, ET", zonewatch(1, &all)),
        contender("zonewatch 2 workers, ET", zonewatch(2, &all)),
        contender("suricata single, ET", suri("single", &all)),
        contender("suricata autofp, ET", suri("autofp", &all)),
        contender("zonewatch 1 worker, none", zonewatch(1, &none)),
        contender("zonewatch 2 workers, none", zonewatch(2, &none)),
        contender("suricata single, none", suri("single", &none)),
        contender("suricata autofp, none", suri("autofp", &none)),
    ];
    let rounds: usize = std::env::var("ZW_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3);
    let bytes = std::fs::metadata(cap).unwrap().len() as f64;
    println!(
        "side by side: {} ({:.0} MB), HOME_NET {home}, {rounds} interleaved rounds, medians",
        cap.display(),
        bytes / 1e6
    );
    let res = side_by_side::race(&contenders, cap, &work, rounds);
    println!(
        "{:<27} {:>10} {:>8} {:>10} {:>9} {:>11} {:>8}",
        "run", "process s", "Gbit/s", "whole s", "CPU s", "CPU s/GB", "RSS MB"
    );
    for (c, (f, _)) in contenders.iter().zip(&res) {
        println!(
            "{:<27} {:>10.2} {:>8.2} {:>10.2} {:>9.2} {:>11.2} {:>8.0}",
            c.name,
            f.processing,
            bytes * 8.0 / f.processing / 1e9,
            f.whole_wall,
            f.whole_cpu,
            f.processing_cpu / (bytes / 1e9),
            f.rss_mb
        );
    }
    let p = |i: usize| res[i].0.processing;
    let best_et = p(2).min(p(3));
    let best_none = p(6).min(p(7));
    let target = |what: &str, ratio: f64, goal: f64| {
        println!(
            "  {what}: {ratio:.2}x (target {goal:.1}x: {})",
            if ratio >= goal { "met" } else { "not met" }
        );
    };
    println!("ratios (processing throughput, zonewatch / suricata):");
    target("ET, 2 workers vs suricata's best", best_et / p(1), 2.0);
    target("ET, 1 worker vs suricata single", p(2) / p(0), 1.0);
    target(
        "no rules, 2 workers vs suricata's best",
        best_none / p(5),
        2.0,
    );
    let cpu_gb = |i: usize| res[i].0.processing_cpu / (bytes / 1e9);
    println!(
        "  ET, processing CPU s/GB: zonewatch 2 workers {:.2}, suricata single {:.2} ({})",
        cpu_gb(1),
        cpu_gb(2),
        if cpu_gb(1) < cpu_gb(2) {
            "below: met"
        } else {
            "not below: not met"
        }
    );
    println!(
        "  ET, whole process CPU s: zonewatch 2 workers {:.2}, suricata single {:.2}, autofp {:.2}",
        res[1].0.whole_cpu, res[2].0.whole_cpu, res[3].0.whole_cpu
    );
    side_by_side::compare_alerts(&res[1].1.join("eve.json"), &res[2].1.join("eve.json"));
}
