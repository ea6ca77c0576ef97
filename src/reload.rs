//! SIGHUP: rules reloaded while the sensor runs.
//!
//! A thread of its own waits for the signal, reads every rule file again
//! through the same loaders as the start (signatures with the threshold and
//! classification files, detector files, Sigma rules), and hands the
//! complete set to the running pipeline ([`zonewatch_pipeline::RuleSlot`]),
//! which swaps it in between batches with flow, stream, flowbit, threshold,
//! detector and correlation state carried over. The configuration file is
//! not read again: its other settings (vars, zones, memcaps, outputs) take
//! effect at a restart.
//!
//! A reload fails, and the running rules stay, when a file cannot be read,
//! a detector or threshold file has an error, or a rule that loaded before
//! no longer does or a new rule does not load (a typo in the rule an
//! analyst just edited). Rules that already failed to load at the start or
//! at the last reload (ET Open has a few Suricata rejects too) do not fail
//! it. Every problem is logged with its file:line, and the outcome goes to
//! the stats (`reload.*`) and the metrics.

use super::{load_detectors, load_rules, load_sigma, say, walk_rules, Findings, RunArgs, Say};
use anyhow::Context;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Instant;
use zonewatch_config::Config;
use zonewatch_pipeline::{NewRules, ReloadOutcome, RuleSlot};

/// What a reload reads again and where it sends the result.
pub(crate) struct Reloader {
    args: RunArgs,
    cfg: Config,
    slot: RuleSlot,
    metrics: Option<zonewatch_metrics::Metrics>,
    /// Packets are read: signatures and detectors are loaded.
    packets: bool,
    /// Logs are read: Sigma rules are loaded.
    logs: bool,
    /// Rules that did not load last time, without their line numbers (an
    /// edit above them moves them).
    known_skips: BTreeSet<String>,
}

/// A loader's message without the `:line` or `:line:column` after its file
/// name, so the same rule's problem is recognised after lines moved.
pub(crate) fn without_position(msg: &str) -> String {
    let b = msg.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b':' && b.get(i + 1).is_some_and(u8::is_ascii_digit) {
            let mut j = i + 1;
            // `:line` and then perhaps `:column`.
            for _ in 0..2 {
                while b.get(j).is_some_and(u8::is_ascii_digit) {
                    j += 1;
                }
                if b.get(j) == Some(&b':') && b.get(j + 1).is_some_and(u8::is_ascii_digit) {
                    j += 1;
                } else {
                    break;
                }
            }
            return format!("{}{}", &msg[..i], &msg[j..]);
        }
        i += 1;
    }
    msg.to_string()
}

impl Reloader {
    /// A reloader for the run of `args`, whose start found `f`: the rules
    /// that did not load then are known and do not fail a reload.
    pub(crate) fn new(
        args: &RunArgs,
        cfg: &Config,
        slot: &RuleSlot,
        metrics: Option<zonewatch_metrics::Metrics>,
        f: &Findings,
    ) -> Reloader {
        Reloader {
            args: args.clone(),
            cfg: cfg.clone(),
            slot: slot.clone(),
            metrics,
            packets: !args.pcap.is_empty() || !args.interface.is_empty(),
            logs: !args.syslog_listen.is_empty() || !args.syslog_file.is_empty(),
            known_skips: f
                .skipped
                .iter()
                .chain(&f.warnings)
                .map(|s| without_position(s))
                .collect(),
        }
    }

    /// Starts the reload thread; each message on `rx` asks for one reload
    /// (several waiting make one).
    pub(crate) fn start(mut self, rx: std::sync::mpsc::Receiver<()>) -> anyhow::Result<()> {
        std::thread::Builder::new()
            .name("zw-reload".into())
            .spawn(move || {
                while rx.recv().is_ok() {
                    while rx.try_recv().is_ok() {}
                    self.reload();
                }
            })
            .context("starting the reload thread")?;
        Ok(())
    }

    fn reload(&mut self) {
        say(
            Say::Info,
            format_args!("reload: reading the rules again (SIGHUP)"),
        );
        let t0 = Instant::now();
        let mut f = Findings {
            collect: true,
            reload: true,
            ..Default::default()
        };
        let built = self.load(&mut f);
        let duration_s = t0.elapsed().as_secs_f64();
        let skips: BTreeSet<String> = f.skipped.iter().map(|s| without_position(s)).collect();
        let mut problems: Vec<String> = f.errors.clone();
        problems.extend(
            f.skipped
                .iter()
                .filter(|s| !self.known_skips.contains(&without_position(s)))
                .cloned(),
        );
        let unix_time = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        let rules = match built {
            Ok(rules) if problems.is_empty() => rules,
            other => {
                if let Err(e) = other {
                    problems.push(format!("{e:#}"));
                }
                for p in &problems {
                    say(Say::Error, format_args!("reload: {p}"));
                }
                say(
                    Say::Error,
                    format_args!(
                        "reload failed: {} problem(s) (above); the running rules stay",
                        problems.len()
                    ),
                );
                self.slot.record(ReloadOutcome {
                    ok: false,
                    unix_time,
                    duration_s,
                    error: problems.first().cloned(),
                    ..Default::default()
                });
                return;
            }
        };
        for w in &f.warnings {
            if !self.known_skips.contains(&without_position(w)) {
                say(Say::Warning, format_args!("reload: {w}"));
            }
        }
        let signatures = rules.detect.as_ref().map_or(0, |e| e.report.loaded as u64);
        let skipped = rules.detect.as_ref().map_or(0, |e| e.report.skipped as u64);
        let detectors = rules
            .anomaly
            .as_ref()
            .map_or(0, |d| d.active().len() as u64);
        let sigma = rules.sigma.as_ref().map_or(0, |(r, _)| {
            (r.detections.len() + r.correlations.len()) as u64
        });
        if let Some(m) = &self.metrics {
            m.set_rules("signatures", signatures, skipped);
            m.set_rules("detectors", detectors, 0);
        }
        self.known_skips = skips;
        self.known_skips
            .extend(f.warnings.iter().map(|w| without_position(w)));
        self.slot.publish(
            rules,
            ReloadOutcome {
                ok: true,
                unix_time,
                duration_s,
                signatures,
                sigma,
                detectors,
                error: None,
            },
        );
        say(
            Say::Info,
            format_args!(
                "reload: done in {duration_s:.2}s: {signatures} signatures ({skipped} skipped), {sigma} Sigma rules, {detectors} detectors; taken over between batches"
            ),
        );
    }

    /// Every rule kind the run uses, loaded as at the start.
    fn load(&self, f: &mut Findings) -> anyhow::Result<NewRules> {
        let a = &self.args;
        let files = walk_rules(a, f)?;
        let mut rules = NewRules {
            detect: None,
            anomaly: None,
            sigma: None,
        };
        if self.packets {
            let sigs = files.of(zonewatch_rulefiles::Kind::Signatures);
            if !sigs.is_empty() {
                rules.detect = load_rules(&sigs, &self.cfg, f)?;
            }
            let yaml = files.of(zonewatch_rulefiles::Kind::Yaml);
            rules.anomaly = load_detectors(a, &yaml, &self.cfg, f)?;
        }
        if self.logs {
            let (_, skipped, set) = load_sigma(a, &self.cfg, f)?;
            rules.sigma = Some((Arc::new(set), skipped as u64));
        }
        Ok(rules)
    }
}

#[cfg(test)]
mod tests {
    use super::without_position;

    #[test]
    fn positions_are_dropped_from_messages() {
        assert_eq!(
            without_position("rules/a.rules:12:30 sid 5: invalid: x"),
            "rules/a.rules sid 5: invalid: x"
        );
        assert_eq!(
            without_position("sigma/b.yml:4: r1: unknown modifier"),
            "sigma/b.yml: r1: unknown modifier"
        );
        assert_eq!(without_position("no position: 12x"), "no position: 12x");
    }
}
