//! Throughput measurement (ignored by default; run in release):
//!
//! ```sh
//! cargo test --release -p zonewatch-sigma --test throughput -- --ignored --nocapture
//! ```
//!
//! Corpus: the real lines of loghub (Linux, Mac, Apache) and fail2ban sshd, repeated to
//! `ZW_BENCH_LINES` (default 1,000,000) lines. Prints messages/s for parsing alone, for
//! matching alone (pre-parsed records) and for parse + match, with the 210 SigmaHQ linux rules
//! (log-source gated, and with every rule evaluated on every record) and with zonewatch's rules.
//! Each figure is checked against the match count of a first pass, so the benchmark is also a
//! correctness check.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;
use zonewatch_sigma::{CorrelationLimits, Engine, RuleSet, SigmaConfig};
use zonewatch_syslog::{parse, LogRecord, ParseOptions, Timestamp};

fn data() -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data");
    p.is_dir().then_some(p)
}

fn corpus(d: &Path, n: usize) -> Vec<Vec<u8>> {
    let mut base = Vec::new();
    for f in [
        "logs/loghub/Linux/Linux_2k.log",
        "logs/loghub/Mac/Mac_2k.log",
        "logs/loghub/Apache/Apache_2k.log",
        "logs/fail2ban/sshd",
    ] {
        let t = std::fs::read(d.join(f)).unwrap();
        base.extend(
            t.split(|&b| b == b'\n')
                .filter(|l| !l.is_empty() && l[0] != b'#')
                .map(<[u8]>::to_vec),
        );
    }
    base.iter().cycle().take(n).cloned().collect()
}

fn rate(n: usize, t: Instant) -> f64 {
    n as f64 / t.elapsed().as_secs_f64()
}

#[test]
#[ignore]
fn measure_throughput() {
    let Some(d) = data() else {
        eprintln!("skipping: ../shared/data absent");
        return;
    };
    let n: usize = std::env::var("ZW_BENCH_LINES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let lines = corpus(&d, n);
    let bytes: usize = lines.iter().map(Vec::len).sum();
    let opts = ParseOptions::default();
    let reference = Timestamp::from_parts(1_136_000_000, 0);
    println!("corpus: {n} lines, {:.1} MB", bytes as f64 / 1e6);

    // Parse only (best of 3: the machine is shared).
    let mut recs: Vec<LogRecord> = Vec::with_capacity(n);
    let mut best = 0f64;
    for _ in 0..3 {
        recs.clear();
        let t = Instant::now();
        for l in &lines {
            recs.push(parse(l, reference, None, &opts));
        }
        best = best.max(rate(n, t));
    }
    println!("parse only:                {best:>10.0} msg/s");

    let sigmahq = d.join("sigma/rules/linux");
    let ours = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../rules/sigma/zonewatch");
    let variants: [(&str, PathBuf, bool, bool); 5] = [
        ("SigmaHQ linux (gated)", sigmahq.clone(), false, true),
        ("SigmaHQ linux (all rules)", sigmahq.clone(), true, true),
        ("SigmaHQ all, no prefilter", sigmahq, true, false),
        ("zonewatch rules + corr.", ours.clone(), false, true),
        ("zonewatch, no prefilter", ours, false, false),
    ];
    let only = std::env::var("ZW_BENCH_ONLY").unwrap_or_default();
    for (name, path, all, prefilter) in variants {
        if !name.contains(only.as_str()) {
            continue;
        }
        let cfg = SigmaConfig {
            ignore_logsource: all,
            ..Default::default()
        };
        let r = RuleSet::load_paths(&[path], &cfg);
        let rules = Arc::new(if prefilter {
            r.rules
        } else {
            r.rules.without_prefilter()
        });
        // Match only (pre-parsed), like rsigma's library benchmark; then parse + match.
        let mut match_rate = 0f64;
        let mut both = 0f64;
        let mut alerts = 0usize;
        let mut matches = 0u64;
        for round in 0..3 {
            let t = Instant::now();
            let mut e = Engine::new(Arc::clone(&rules), CorrelationLimits::default());
            let mut out = Vec::new();
            let mut a1 = 0usize;
            for r in &recs {
                e.process(r, &mut out);
                a1 += out.len();
                out.clear();
            }
            e.flush(&mut out);
            a1 += out.len();
            out.clear();
            match_rate = match_rate.max(rate(n, t));
            let m1 = e.stats().detection_matches;
            let t = Instant::now();
            let mut e = Engine::new(Arc::clone(&rules), CorrelationLimits::default());
            let mut a2 = 0usize;
            for l in &lines {
                let r = parse(l, reference, None, &opts);
                e.process(&r, &mut out);
                a2 += out.len();
                out.clear();
            }
            e.flush(&mut out);
            a2 += out.len();
            both = both.max(rate(n, t));
            assert_eq!(e.stats().detection_matches, m1);
            assert_eq!(a1, a2);
            if round > 0 {
                assert_eq!((m1, a1), (matches, alerts));
            }
            matches = m1;
            alerts = a1;
        }
        println!(
            "{name:<26} match only {match_rate:>10.0} msg/s, parse+match {both:>10.0} msg/s ({} rules, {} detections, {alerts} alerts)",
            rules.detections.len() + rules.correlations.len(),
            matches
        );
    }
}
