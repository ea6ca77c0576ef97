//! `zonewatch rules profile`: replays a capture through `run`'s pipeline
//! with the signature engine profiling its rules (as Suricata's rule
//! profiling), and reports per rule the prefilter hits, full evaluations,
//! matches, alerts and CPU ticks, and per signature group the packets,
//! candidates and ticks. `--format json` is for scripts; its schema is
//! `docs/schema/rules-profile.schema.json`.

use crate::{run_pipeline, ProfiledRun, RunArgs};
use clap::{Args, FromArgMatches};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use zonewatch_detect::{Engine, GroupCounts, RuleCounts, RuleProfile};
use zonewatch_output::{EventSink, Rendered};
use zonewatch_types::EventBody;

/// Version of the JSON output; raised only when a field changes meaning or
/// goes away.
const JSON_VERSION: u64 = 1;

/// What the tick counter is on this machine (the JSON's `clock`).
const CLOCK: &str = if cfg!(target_arch = "x86_64") {
    "rdtsc"
} else {
    "instant-ns"
};

#[derive(Args)]
pub(crate) struct RulesProfileArgs {
    /// Capture file or directory (files in name order); repeatable.
    #[arg(long, required = true, value_name = "PATH")]
    pcap: Vec<PathBuf>,
    /// Signature files or directories (searched recursively); repeatable.
    #[arg(long, required = true, value_name = "PATH")]
    rules: Vec<PathBuf>,
    /// Rules and signature groups shown in text output (JSON has all).
    #[arg(long, default_value_t = 20, value_name = "N",
          value_parser = clap::value_parser!(u64).range(1..))]
    top: u64,
    /// Output: text (tables) or json (one document; schema in
    /// docs/schema/rules-profile.schema.json).
    #[arg(long, value_enum, default_value = "text")]
    format: crate::rules_cmd::Format,
    /// Configuration (variables, classification and threshold files,
    /// workers) as for `run`.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Override a configuration key, e.g. --set workers=2.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
}

/// Counts the run's alerts per (gid, sid) and drops every event: the
/// profile reports what `run` would have alerted after thresholds, beside
/// the engine's matches.
struct AlertCounter(Arc<Mutex<HashMap<(u32, u64), u64>>>);

impl EventSink for AlertCounter {
    fn name(&self) -> &'static str {
        "rules-profile"
    }

    fn write_event(&mut self, ev: &Rendered<'_>) -> std::io::Result<()> {
        if let EventBody::Alert(a) = &ev.event.body {
            let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
            *m.entry((a.gid, a.signature_id)).or_default() += 1;
        }
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// `run`'s options for this profile (parsed, not built field by field, so
/// options added to `run` later take their defaults here).
fn run_args(a: &RulesProfileArgs) -> anyhow::Result<RunArgs> {
    let mut argv: Vec<std::ffi::OsString> = vec!["rules-profile".into()];
    let pairs = [
        ("--pcap", &a.pcap),
        ("--rules", &a.rules),
        ("--config", &a.config.iter().cloned().collect()),
    ];
    for (flag, paths) in pairs {
        for p in paths {
            argv.push(flag.into());
            argv.push(p.into());
        }
    }
    for s in &a.set {
        argv.push("--set".into());
        argv.push(s.into());
    }
    let cmd = <RunArgs as Args>::augment_args(clap::Command::new("rules-profile"));
    Ok(RunArgs::from_arg_matches(&cmd.try_get_matches_from(argv)?)?)
}

/// Runs the profile; the exit status: 0 done, 1 the run failed, 2 bad
/// arguments (a path that does not exist, no signature loaded).
pub(crate) fn profile(a: RulesProfileArgs) -> anyhow::Result<i32> {
    for p in a.pcap.iter().chain(&a.rules).chain(&a.config) {
        if !p.exists() {
            eprintln!(
                "zonewatch: error: {}: no such file or directory",
                p.display()
            );
            return Ok(2);
        }
    }
    let alerts = Arc::new(Mutex::new(HashMap::new()));
    let mut run = ProfiledRun {
        sink: Some(Box::new(AlertCounter(alerts.clone()))),
        engine: None,
    };
    let started = std::time::Instant::now();
    let status = run_pipeline(run_args(&a)?, Some(&mut run))?;
    let secs = started.elapsed().as_secs_f64();
    let Some(engine) = run.engine.filter(|e| !e.is_empty()) else {
        eprintln!(
            "zonewatch: error: no signature rule loaded from {}",
            a.rules
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
        return Ok(2);
    };
    let prof = engine
        .profile()
        .expect("the engine of a profiled run profiles");
    let alerts = alerts.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let report = Report::new(&engine, &prof, &alerts, secs);
    match a.format {
        crate::rules_cmd::Format::Json => println!("{:#}", report.json()),
        crate::rules_cmd::Format::Text => report.print_text(a.top as usize),
    }
    Ok(status as i32)
}

/// One rule's row.
struct RuleRow<'e> {
    meta: &'e zonewatch_detect::RuleMeta,
    counts: RuleCounts,
    alerts: u64,
}

/// The profile, sorted for reading.
struct Report<'e> {
    ticks_per_us: f64,
    seconds: f64,
    /// By ticks, most first.
    rules: Vec<RuleRow<'e>>,
    /// By ticks, most first.
    groups: Vec<(String, GroupCounts)>,
}

impl<'e> Report<'e> {
    fn new(
        engine: &'e Engine,
        prof: &RuleProfile,
        alerts: &HashMap<(u32, u64), u64>,
        seconds: f64,
    ) -> Report<'e> {
        let mut rules: Vec<RuleRow<'e>> = prof
            .rules
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let meta = engine.meta(i as u32);
                RuleRow {
                    meta,
                    counts: *c,
                    alerts: alerts.get(&(meta.gid, meta.sid)).copied().unwrap_or(0),
                }
            })
            .collect();
        rules.sort_by(|x, y| {
            (y.counts.ticks, x.meta.gid, x.meta.sid).cmp(&(x.counts.ticks, y.meta.gid, y.meta.sid))
        });
        let mut groups = prof.groups.clone();
        groups.sort_by(|x, y| y.1.ticks.cmp(&x.1.ticks).then_with(|| x.0.cmp(&y.0)));
        Report {
            ticks_per_us: prof.ticks_per_us,
            seconds,
            rules,
            groups,
        }
    }

    fn us(&self, ticks: u64) -> f64 {
        ticks as f64 / self.ticks_per_us
    }

    fn json(&self) -> Value {
        let rules: Vec<Value> = self
            .rules
            .iter()
            .map(|r| {
                let c = &r.counts;
                json!({
                    "gid": r.meta.gid,
                    "sid": r.meta.sid,
                    "rev": r.meta.rev,
                    "msg": &*r.meta.msg,
                    "prefilter_hits": c.prefilter_hits,
                    "evaluations": c.evaluations,
                    "matches": c.matches,
                    "alerts": r.alerts,
                    "ticks": c.ticks,
                    "avg_ticks": c.ticks.checked_div(c.evaluations).unwrap_or(0),
                    "time_us": self.us(c.ticks),
                })
            })
            .collect();
        let groups: Vec<Value> = self
            .groups
            .iter()
            .map(|(name, g)| {
                json!({
                    "group": name,
                    "packets": g.packets,
                    "candidates": g.candidates,
                    "ticks": g.ticks,
                    "time_us": self.us(g.ticks),
                })
            })
            .collect();
        json!({
            "version": JSON_VERSION,
            "clock": CLOCK,
            "ticks_per_us": self.ticks_per_us,
            "seconds": self.seconds,
            "rules": rules,
            "groups": groups,
        })
    }

    fn print_text(&self, top: usize) {
        let total: u64 = self.rules.iter().map(|r| r.counts.ticks).sum();
        println!(
            "{} rules, {} ticks in rule evaluation ({:.1} ms at {:.0} ticks/us, {CLOCK}); run took {:.2}s",
            self.rules.len(),
            total,
            self.us(total) / 1000.0,
            self.ticks_per_us,
            self.seconds
        );
        println!();
        println!(
            "{:>10} {:>4} {:>12} {:>9} {:>6} {:>10} {:>10} {:>8} {:>8} {:>9}  msg",
            "sid",
            "rev",
            "ticks",
            "time_us",
            "%",
            "prefilter",
            "evals",
            "matches",
            "alerts",
            "avg_ticks"
        );
        for r in self.rules.iter().take(top) {
            let c = &r.counts;
            println!(
                "{:>10} {:>4} {:>12} {:>9.1} {:>6.2} {:>10} {:>10} {:>8} {:>8} {:>9}  {}",
                r.meta.sid,
                r.meta.rev,
                c.ticks,
                self.us(c.ticks),
                100.0 * c.ticks as f64 / total.max(1) as f64,
                c.prefilter_hits,
                c.evaluations,
                c.matches,
                r.alerts,
                c.ticks.checked_div(c.evaluations).unwrap_or(0),
                r.meta.msg
            );
        }
        if self.rules.len() > top {
            println!(
                "({} more rules; --top N or --format json)",
                self.rules.len() - top
            );
        }
        println!();
        println!(
            "{:>10} {:>11} {:>12} {:>9}  signature group",
            "packets", "candidates", "ticks", "time_us"
        );
        let used: Vec<_> = self.groups.iter().filter(|(_, g)| g.packets > 0).collect();
        for (name, g) in used.iter().take(top) {
            println!(
                "{:>10} {:>11} {:>12} {:>9.1}  {name}",
                g.packets,
                g.candidates,
                g.ticks,
                self.us(g.ticks)
            );
        }
        if used.len() > top {
            println!("({} more groups)", used.len() - top);
        }
    }
}
