//! `zonewatch rules check`: the analysts' check of rule files of every kind
//! (Suricata signatures, Sigma rules, detector files), with the loaders of
//! `run` — so a rule it counts as loaded is one `run` loads — plus lints
//! that `run` does not make (duplicate sids by content, slow or never
//! matching rules, flowbits without a partner). Every finding has a stable
//! `code`, `file:line:column`, the rule and a hint; `--format json` is the
//! editor interface, its schema in `docs/schema/rules-check.schema.json`.

use crate::{load_config, load_rules, walk_rules, Findings, RunArgs};
use clap::{Args, FromArgMatches, Subcommand};
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use zonewatch_rulefiles::Kind;

/// Version of the JSON output; raised only when a field changes meaning or
/// goes away (new fields and codes may appear without it).
const JSON_VERSION: u64 = 1;

#[derive(Subcommand)]
pub(crate) enum RulesCommand {
    /// Load every rule file of every kind (signatures, Sigma, detector
    /// files) and report each error and warning with file:line:column, the
    /// rule and a hint. Exit 0 when clean, 1 on warnings with --strict, 2 on
    /// errors.
    Check(RulesCheckArgs),
    /// Run rule test cases (directories with a test.yaml: a capture or log
    /// file, rules, options, expected events) and print pass/fail with
    /// expected vs actual. Exit 0 when all pass, 1 otherwise.
    Test(crate::rules_test::RulesTestArgs),
    /// Replay a capture through the full pipeline with the given signature
    /// rules and report, per rule, prefilter hits, evaluations, matches and
    /// CPU time, and per signature group packets, candidates and CPU time,
    /// costliest first. Exit 0 when done, 2 on bad arguments.
    Profile(crate::rules_profile::RulesProfileArgs),
}

#[derive(Args)]
pub(crate) struct RulesCheckArgs {
    /// Rule files or directories (searched recursively).
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<PathBuf>,
    /// Output: text (one line per finding) or json (one document; schema in
    /// docs/schema/rules-check.schema.json).
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
    /// Warnings fail the check too (exit 1).
    #[arg(long)]
    strict: bool,
    /// Configuration whose variables, classification and threshold files and
    /// zone policy the rules are checked against.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Override a configuration key, e.g. --set vars.address-groups.HOME_NET=10.0.0.0/8.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
}

/// Output of `rules check` and `rules profile`: text for people, one JSON
/// document for editors and CI.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Format {
    Text,
    Json,
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Severity {
    Error,
    Warning,
}

impl Severity {
    fn name(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        }
    }
}

/// One finding.
struct Diagnostic {
    severity: Severity,
    /// Stable identifier of the kind of finding (documented in the schema).
    code: &'static str,
    /// `signature`, `sigma`, `detector` or `config`.
    source: &'static str,
    file: Option<String>,
    line: Option<usize>,
    column: Option<usize>,
    sid: Option<u64>,
    rule_id: Option<String>,
    message: String,
    hint: Option<String>,
}

impl Diagnostic {
    fn json(&self) -> Value {
        json!({
            "severity": self.severity.name(),
            "code": self.code,
            "source": self.source,
            "file": self.file,
            "line": self.line,
            "column": self.column,
            "sid": self.sid,
            "rule_id": self.rule_id,
            "message": self.message,
            "hint": self.hint,
        })
    }

    fn text(&self) -> String {
        let mut s = String::new();
        if let Some(f) = &self.file {
            s.push_str(f);
            for n in [self.line, self.column].into_iter().flatten() {
                s.push_str(&format!(":{n}"));
            }
            s.push_str(": ");
        }
        s.push_str(&format!("{}[{}]: ", self.severity.name(), self.code));
        if let Some(sid) = self.sid {
            s.push_str(&format!("sid {sid}: "));
        } else if let Some(id) = &self.rule_id {
            s.push_str(&format!("rule {id}: "));
        }
        s.push_str(&self.message);
        if let Some(h) = &self.hint {
            s.push_str(&format!("\n    hint: {h}"));
        }
        s
    }
}

/// Loaded and skipped counts per kind, as `run` would load them.
#[derive(Default)]
struct Counts {
    signature_files: usize,
    signatures_loaded: usize,
    signatures_skipped: usize,
    signatures_app_layer: usize,
    sigma_files: usize,
    sigma_loaded: usize,
    sigma_skipped: usize,
    sigma_inactive: usize,
    detector_files: usize,
    detectors_loaded: usize,
}

pub(crate) fn rules(c: RulesCommand) -> anyhow::Result<i32> {
    match c {
        RulesCommand::Check(a) => check(a),
        RulesCommand::Test(a) => crate::rules_test::test(a),
        RulesCommand::Profile(a) => crate::rules_profile::profile(a),
    }
}

/// `run`'s options for these paths and configuration, so that the loaders
/// of `run` can be called as they are (parsed, not built field by field,
/// so options added to `run` later take their defaults here).
fn run_args(a: &RulesCheckArgs) -> anyhow::Result<RunArgs> {
    let mut argv: Vec<std::ffi::OsString> = vec!["rules-check".into()];
    if let Some(c) = &a.config {
        argv.push("--config".into());
        argv.push(c.into());
    }
    for s in &a.set {
        argv.push("--set".into());
        argv.push(s.into());
    }
    for p in &a.paths {
        argv.push("--rules".into());
        argv.push(p.into());
    }
    let cmd = <RunArgs as Args>::augment_args(clap::Command::new("rules-check"));
    Ok(RunArgs::from_arg_matches(&cmd.try_get_matches_from(argv)?)?)
}

fn check(a: RulesCheckArgs) -> anyhow::Result<i32> {
    let started = std::time::Instant::now();
    let run = run_args(&a)?;
    let mut f = Findings {
        collect: true,
        ..Default::default()
    };
    let mut diags = Vec::new();
    let mut counts = Counts::default();
    let cfg = load_config(&run, &mut f)?;
    let files = walk_rules(&run, &mut f)?;
    config_findings(&mut f, &mut diags);
    check_signatures(&files.of(Kind::Signatures), &cfg, &mut diags, &mut counts)?;
    let yaml = files.of(Kind::Yaml);
    check_sigma(&yaml, &mut diags, &mut counts);
    check_detectors(&yaml, &cfg, &mut diags, &mut counts);
    diags.sort_by(|x, y| {
        (&x.file, x.line, x.column, x.severity).cmp(&(&y.file, y.line, y.column, y.severity))
    });
    let errors = diags
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .count();
    let warnings = diags.len() - errors;
    let status = if errors > 0 {
        2
    } else if a.strict && warnings > 0 {
        1
    } else {
        0
    };
    let secs = started.elapsed().as_secs_f64();
    match a.format {
        Format::Json => print_json(&diags, &counts, status, secs),
        Format::Text => print_text(&diags, &counts, errors, warnings, secs),
    }
    Ok(status)
}

/// What the configuration and the walk of the paths found (strings with
/// their own file:line, from `config check`'s machinery).
fn config_findings(f: &mut Findings, diags: &mut Vec<Diagnostic>) {
    let errors = std::mem::take(&mut f.errors);
    let warnings = std::mem::take(&mut f.warnings);
    for (severity, list) in [(Severity::Error, errors), (Severity::Warning, warnings)] {
        for message in list {
            diags.push(Diagnostic {
                severity,
                code: "config",
                source: "config",
                file: None,
                line: None,
                column: None,
                sid: None,
                rule_id: None,
                message,
                hint: None,
            });
        }
    }
}

/// Signatures: the engine `run` builds (so the counts are `run`'s), its
/// skipped rules, then the lints over the rules it loaded.
fn check_signatures(
    paths: &[PathBuf],
    cfg: &zonewatch_config::Config,
    diags: &mut Vec<Diagnostic>,
    counts: &mut Counts,
) -> anyhow::Result<()> {
    if paths.is_empty() {
        return Ok(());
    }
    let mut f = Findings {
        collect: true,
        ..Default::default()
    };
    let Some(engine) = load_rules(paths, cfg, &mut f)? else {
        // The engine could not read the files at all: said by the loader.
        config_findings(&mut f, diags);
        return Ok(());
    };
    let r = &engine.report;
    counts.signature_files = r.files.len();
    counts.signatures_loaded = r.loaded;
    counts.signatures_skipped = r.skipped;
    counts.signatures_app_layer = r.skipped_app_layer;
    for w in &r.config_warnings {
        diags.push(Diagnostic {
            severity: Severity::Warning,
            code: "config",
            source: "signature",
            file: None,
            line: None,
            column: None,
            sid: None,
            rule_id: None,
            message: w.clone(),
            hint: None,
        });
    }
    let mut skipped: HashSet<(String, usize)> = HashSet::new();
    // Errors the compiler gives without a column (it sees the parsed rule,
    // not its text): placed on their keyword or token below.
    let mut unplaced: HashMap<(String, usize), Vec<(usize, &zonewatch_rules::RuleError)>> =
        HashMap::new();
    for e in &r.errors {
        let at = (e.origin.file.to_string(), e.origin.line);
        skipped.insert(at.clone());
        // Duplicates are reported by the linter, which tells identical
        // copies from different rules.
        if !is_duplicate(e) {
            if e.column == 1 {
                unplaced.entry(at).or_default().push((diags.len(), e));
            }
            diags.push(signature_error(e));
        }
    }
    let mut linter = zonewatch_rules::Linter::default();
    for file in &r.files {
        let bytes = std::fs::read(file)?;
        let name = file.display().to_string();
        // As the engine reads it (bytes that are not UTF-8 become U+FFFD).
        let text = String::from_utf8_lossy(&bytes);
        if unplaced.keys().any(|(f, _)| *f == name) {
            for raw in zonewatch_rules::split_rules(&text) {
                for (i, e) in unplaced
                    .get(&(name.clone(), raw.line))
                    .into_iter()
                    .flatten()
                {
                    diags[*i].column = Some(column_in_rule(&raw.text, e));
                }
            }
        }
        linter.file(&text, &name, |line| {
            !skipped.contains(&(name.clone(), line))
        });
    }
    for l in linter.finish() {
        let severity = match l.code {
            // The engine skips the second rule: the analyst loses one.
            zonewatch_rules::LintCode::DuplicateSidSame
            | zonewatch_rules::LintCode::DuplicateSidDifferent => Severity::Error,
            _ => Severity::Warning,
        };
        diags.push(Diagnostic {
            severity,
            code: l.code.name(),
            source: "signature",
            file: Some(l.origin.file.to_string()),
            line: Some(l.origin.line),
            column: Some(l.column),
            sid: Some(l.sid),
            rule_id: None,
            message: l.message,
            hint: Some(l.hint),
        });
    }
    Ok(())
}

/// 1-based column, on the rule's joined text, of what a compile error is
/// about: the quoted token of a header error (`` (`$FOO_NET`) ``), else the
/// keyword in the options; 1 when neither is found.
fn column_in_rule(text: &str, e: &zonewatch_rules::RuleError) -> usize {
    use zonewatch_rules::ErrorKind;
    let open = text.find('(').unwrap_or(text.len());
    let (keyword, detail) = match &e.kind {
        ErrorKind::Invalid(m) => (m.split(':').next().unwrap_or(""), m.as_str()),
        ErrorKind::Unsupported { keyword, detail } => (keyword.as_str(), detail.as_str()),
        ErrorKind::Syntax(_) => return e.column,
    };
    let token = detail
        .split_once("(`")
        .and_then(|(_, t)| t.split_once("`)"))
        .map(|(t, _)| t);
    if let Some(t) = token.filter(|t| !t.is_empty()) {
        if let Some(i) = text[..open].find(t) {
            return i + 1;
        }
    }
    let options = &text[open..];
    [format!("{keyword}:"), format!("{keyword};")]
        .iter()
        .filter(|k| k.len() > 1)
        .find_map(|k| options.find(k.as_str()))
        .map_or(1, |i| open + i + 1)
}

fn is_duplicate(e: &zonewatch_rules::RuleError) -> bool {
    matches!(&e.kind, zonewatch_rules::ErrorKind::Invalid(m) if m.starts_with("sid: duplicate of "))
}

/// A rule the engine skipped, with its code and a hint.
fn signature_error(e: &zonewatch_rules::RuleError) -> Diagnostic {
    use zonewatch_rules::ErrorKind;
    let (severity, code, message, hint) = match &e.kind {
        ErrorKind::Syntax(m) => (
            Severity::Error,
            "syntax",
            format!("syntax error: expected {m}"),
            Some("see docs/signatures.md for the rule language".to_string()),
        ),
        ErrorKind::Unsupported { keyword, detail } => {
            let message = if detail.is_empty() {
                format!("unsupported {keyword}; the rule is skipped")
            } else {
                format!("unsupported {keyword} ({detail}); the rule is skipped")
            };
            if zonewatch_detect::needs_app_layer(e) {
                (
                    Severity::Warning,
                    "needs-app-layer",
                    message,
                    Some(format!("{keyword} needs an app-layer parser zonewatch does not have (it parses HTTP/1, DNS, TLS, SSH: docs/applayer.md); the rule loads once one exists")),
                )
            } else {
                (
                    Severity::Warning,
                    "unsupported",
                    message,
                    Some(unsupported_hint(keyword, detail)),
                )
            }
        }
        ErrorKind::Invalid(m) if m.contains("unknown variable") => (
            Severity::Error,
            "undefined-variable",
            m.clone(),
            Some("define it in the configuration (vars.address-groups.NAME or vars.port-groups.NAME; --config or --set)".to_string()),
        ),
        ErrorKind::Invalid(m) => (Severity::Error, "invalid", format!("invalid: {m}"), None),
    };
    Diagnostic {
        severity,
        code,
        source: "signature",
        file: Some(e.origin.file.to_string()),
        line: Some(e.origin.line),
        column: Some(e.column),
        sid: e.sid,
        rule_id: None,
        message,
        hint,
    }
}

/// What would make a rule with an unsupported keyword load.
fn unsupported_hint(keyword: &str, detail: &str) -> String {
    match keyword {
        "pcre" => format!("rewrite the expression without PCRE-only syntax ({detail}): zonewatch runs linear-time regexes, and backreferences and look-around on a bounded backtracking engine (no recursion, callouts or {{,n}})"),
        "xbits" => "use flowbits when the bit is per flow (xbits per host/ip pair are not implemented)".into(),
        "flowint" | "byte_math" | "base64_decode" | "base64_data" | "asn1" => {
            format!("{keyword} is not implemented yet; remove it if the other options suffice")
        }
        "protocol" => "use one of the protocols docs/signatures.md lists (tcp, udp, http, dns, tls, ssh, ...)".into(),
        _ => format!("remove {keyword} or replace it with supported keywords (docs/signatures.md lists them)"),
    }
}

/// Sigma rules: the loader `run` uses; a rule it skips is an error (as in
/// `config check`).
fn check_sigma(files: &[PathBuf], diags: &mut Vec<Diagnostic>, counts: &mut Counts) {
    let report =
        zonewatch_sigma::RuleSet::load_paths(files, &zonewatch_sigma::SigmaConfig::default());
    let rules = &report.rules;
    counts.sigma_files = report.files;
    counts.sigma_loaded = rules.detections.len() + rules.correlations.len();
    counts.sigma_skipped = report.errors.len();
    counts.sigma_inactive = rules.inactive;
    for d in rules.inactive_detections() {
        diags.push(Diagnostic {
            severity: Severity::Warning,
            code: "sigma-inactive",
            source: "sigma",
            file: Some(d.meta.file.display().to_string()),
            line: Some(d.meta.line),
            column: None,
            sid: None,
            rule_id: Some(d.meta.id.clone()),
            message: "its log source never occurs on syslog: the rule loads but can never match".into(),
            hint: Some("zonewatch's Sigma rules see syslog records: use product linux with a service (sshd, sudo, auditd, ...) or category webserver, proxy or firewall (docs/sigma.md, \"Log sources\")".into()),
        });
    }
    for e in &report.errors {
        let unsupported = e.message.contains("unsupported");
        diags.push(Diagnostic {
            severity: Severity::Error,
            code: if unsupported {
                "sigma-unsupported"
            } else {
                "sigma-invalid"
            },
            source: "sigma",
            file: Some(e.file.display().to_string()),
            line: Some(e.line),
            column: None,
            sid: None,
            rule_id: e.rule_id.clone(),
            message: e.message.clone(),
            hint: Some(if unsupported {
                "docs/sigma.md lists the modifiers and correlation types zonewatch runs".into()
            } else {
                "see docs/sigma.md, \"Rules\"".into()
            }),
        });
    }
}

/// Detector files, with the zone policy of the configuration as `run`
/// reads it (the zone-policy detector runs only with one).
fn check_detectors(
    files: &[PathBuf],
    cfg: &zonewatch_config::Config,
    diags: &mut Vec<Diagnostic>,
    counts: &mut Counts,
) {
    let detector =
        |line: Option<usize>, file: Option<String>, message: String, severity| Diagnostic {
            severity,
            code: "detector",
            source: "detector",
            file,
            line: line.filter(|l| *l > 0),
            column: None,
            sid: None,
            rule_id: None,
            message,
            hint: Some("docs/detectors.md lists each detector's keys and ranges".into()),
        };
    let policy = cfg.file.as_ref().and_then(|origin| {
        match zonewatch_anomaly::ZonePolicy::read(cfg.zone_policy.as_ref(), cfg.zone_map(), origin)
        {
            Ok(p) => Some(p),
            Err(errs) => {
                for m in errs {
                    diags.push(detector(
                        None,
                        None,
                        format!("zone policy: {m}"),
                        Severity::Error,
                    ));
                }
                None
            }
        }
    });
    match zonewatch_anomaly::DetectorSet::load(files, policy) {
        Ok(set) => {
            counts.detector_files = set.files.len();
            counts.detectors_loaded = set.active().len();
            for w in &set.warnings {
                diags.push(detector(None, None, w.clone(), Severity::Warning));
            }
        }
        Err(errs) => {
            for e in errs {
                diags.push(detector(
                    Some(e.line),
                    Some(e.file.clone()),
                    e.message.clone(),
                    Severity::Error,
                ));
            }
        }
    }
}

fn counts_json(c: &Counts) -> Value {
    json!({
        "signatures": {
            "files": c.signature_files,
            "loaded": c.signatures_loaded,
            "skipped": c.signatures_skipped,
            "skipped_app_layer": c.signatures_app_layer,
        },
        "sigma": {
            "files": c.sigma_files,
            "loaded": c.sigma_loaded,
            "skipped": c.sigma_skipped,
            "inactive": c.sigma_inactive,
        },
        "detectors": {
            "files": c.detector_files,
            "loaded": c.detectors_loaded,
        },
    })
}

fn print_json(diags: &[Diagnostic], counts: &Counts, status: i32, secs: f64) {
    let errors = diags
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .count();
    let doc = json!({
        "version": JSON_VERSION,
        "status": status,
        "errors": errors,
        "warnings": diags.len() - errors,
        "seconds": secs,
        "counts": counts_json(counts),
        "diagnostics": diags.iter().map(Diagnostic::json).collect::<Vec<_>>(),
    });
    println!("{doc}");
}

fn print_text(diags: &[Diagnostic], c: &Counts, errors: usize, warnings: usize, secs: f64) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    for d in diags {
        // A closed pipe (`| head`) ends the listing, not the check.
        if writeln!(out, "{}", d.text()).is_err() {
            return;
        }
    }
    let _ = writeln!(
        out,
        "rules check: {errors} error(s), {warnings} warning(s) in {secs:.2}s; signatures: {} loaded, {} skipped ({} wait for an app-layer parser) from {} file(s); sigma: {} loaded, {} skipped from {} file(s); detectors: {} loaded from {} file(s)",
        c.signatures_loaded,
        c.signatures_skipped,
        c.signatures_app_layer,
        c.signature_files,
        c.sigma_loaded,
        c.sigma_skipped,
        c.sigma_files,
        c.detectors_loaded,
        c.detector_files,
    );
}
