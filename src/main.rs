//! `zonewatch`: command line, configuration and exit codes. Everything else
//! lives in the library crates; this file only wires them together.

mod aggregate_cmd;
mod kafka_sink;
mod privileges;
mod reload;
mod report_cmd;
mod report_html;
mod report_kafka;
mod rules_cmd;
mod rules_profile;
mod rules_test;

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use zonewatch_config::Config;
use zonewatch_output::{EveContext, EventIdSource, EventWriter, LineSink};

use zonewatch_pipeline::{Inputs, RunOptions};

/// Network and log sensor for a city's internet zone.
#[derive(Parser)]
#[command(name = "zonewatch", version, about)]
struct Cli {
    /// Log lines on stderr: text (for a person) or json (one JSON object
    /// per line, for a journal or a log shipper).
    #[arg(long, global = true, value_enum, default_value = "text")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Read captures or interfaces, write events.
    Run(RunArgs),
    /// Configuration tools.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Tools for rule writers: check rule files of every kind, run rule tests.
    #[command(subcommand)]
    Rules(rules_cmd::RulesCommand),
    /// The security cloud's aggregator: consume the sensors' alerts and stats from Kafka
    /// in a consumer group, correlate them, publish incidents (docs/aggregate.md).
    Aggregate(aggregate_cmd::AggregateArgs),
    /// A self-contained HTML report (inline SVG charts) and report.json, for one tenant or
    /// all, from EVE files or the Kafka topics.
    Report(report_cmd::ReportArgs),
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Validate a configuration and the rules it names (signatures, Sigma,
    /// detectors, zone policy, threshold and classification files, syslog TLS
    /// files, the Kafka spool directory) without starting capture or
    /// listeners. Takes run's options; inputs are not opened. Exit 0 when
    /// clean, 1 on any error.
    Check(CheckArgs),
}

#[derive(Args)]
struct CheckArgs {
    /// Warnings count as errors (exit 1).
    #[arg(long)]
    strict: bool,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Args, Clone)]
struct RunArgs {
    /// Configuration file (YAML); see zonewatch.example.yaml.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Override any configuration key, e.g. --set flow.memcap=512mb.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Capture file or directory (files in name order); repeatable.
    #[arg(long, value_name = "PATH")]
    pcap: Vec<PathBuf>,
    /// Live interface; repeatable.
    #[arg(long, value_name = "IF")]
    interface: Vec<String>,
    /// BPF filter for files and interfaces alike.
    #[arg(long, value_name = "EXPR")]
    bpf: Option<String>,
    /// Rule files or directories: signatures (`.rules`), Sigma rules
    /// (`.yml`/`.yaml` with `detection:`) and detector files (`detector:`).
    #[arg(long, value_name = "PATH")]
    rules: Vec<PathBuf>,
    /// Syslog listener: udp://ADDR:PORT, tcp://ADDR:PORT or tls://ADDR:PORT
    /// (TLS files from syslog.tls.*); repeatable.
    #[arg(long, value_name = "URL")]
    syslog_listen: Vec<String>,
    /// Log file to replay (syslog frames or plain log lines; - = stdin);
    /// repeatable, read one after the other.
    #[arg(long, value_name = "PATH")]
    syslog_file: Vec<PathBuf>,
    /// Where events go: a file (created/truncated) or - for stdout.
    #[arg(long, value_name = "PATH|-")]
    output: Option<String>,
    /// Worker threads (default: number of cores).
    #[arg(long, value_name = "N")]
    workers: Option<usize>,
    /// Seconds between periodic stats events (0: only at the end).
    #[arg(long, value_name = "SECS")]
    stats_interval: Option<u64>,
    /// Serve Prometheus metrics at http://ADDR:PORT/metrics, e.g.
    /// 127.0.0.1:9187 (config `metrics.listen`; off by default).
    #[arg(long, value_name = "ADDR:PORT")]
    metrics_listen: Option<String>,
    /// Also publish events to Kafka (comma-separated brokers); see the
    /// `kafka:` section of the configuration for topics, keys and TLS/SASL.
    #[arg(long, value_name = "BROKERS")]
    kafka: Option<String>,
    /// Directory of the Kafka sink's on-disk spool (events the broker has
    /// not acknowledged survive restarts here).
    #[arg(long, value_name = "DIR")]
    spool_dir: Option<PathBuf>,
    /// Checksum validation (Suricata's -k): auto, all or none.
    #[arg(long, value_name = "MODE", default_value = "auto")]
    checksum_checks: ChecksumMode,
    /// How --interface is read: pcap (libpcap, one reader thread, portable) or af-packet
    /// (Linux: each worker reads its own ring of a fanout group); config `capture.method`.
    #[arg(long, value_name = "METHOD")]
    capture: Option<CaptureMethod>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum CaptureMethod {
    Pcap,
    AfPacket,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ChecksumMode {
    Auto,
    All,
    None,
}

fn main() {
    let cli = Cli::parse();
    let mut filter = tracing_subscriber::EnvFilter::try_from_env("ZONEWATCH_LOG")
        .unwrap_or_else(|_| "warn".into());
    if matches!(cli.command, Command::Config(_) | Command::Rules(_)) {
        // The Sigma loader logs each rule it skips; `config check` and
        // `rules check` list them themselves, with the other problems.
        filter = filter.add_directive("zonewatch_sigma=error".parse().expect("directive"));
    }
    let fmt = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_target(false);
    match cli.log_format {
        LogFormat::Text => fmt
            // Colour codes only for a person at a terminal, never in a
            // journal or a log file.
            .with_ansi(std::io::stderr().is_terminal())
            .with_env_filter(filter)
            .init(),
        LogFormat::Json => {
            JSON_LOGS.store(true, Ordering::Relaxed);
            fmt.json()
                .with_ansi(false)
                // The summary lines (`say`) are said whatever ZONEWATCH_LOG is.
                .with_env_filter(
                    filter.add_directive(format!("{SAY}=info").parse().expect("directive")),
                )
                .init()
        }
    }
    let r = match cli.command {
        Command::Run(a) => run(a).map(|c| c as i32),
        Command::Config(ConfigCommand::Check(a)) => check(a).map(|c| c as i32),
        Command::Rules(c) => rules_cmd::rules(c),
        Command::Aggregate(a) => aggregate_cmd::aggregate(a),
        Command::Report(a) => report_cmd::report(a),
    };
    match r {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            // One line: the reason and its causes, each said once (an
            // io::Error's text is often repeated by the context around it).
            let mut parts: Vec<String> = Vec::new();
            for c in e.chain() {
                let t = c.to_string();
                if !parts.iter().any(|p| p.contains(&t)) {
                    parts.push(t);
                }
            }
            say(Say::Error, format_args!("{}", parts.join(": ")));
            std::process::exit(1);
        }
    }
}

/// Where what the loaders find goes. `run` (the default) logs warnings and
/// stops at the first error; `config check` collects both, goes on loading
/// and lists them all. Both call the same loaders with it, so what `check`
/// accepts `run` accepts.
#[derive(Default)]
struct Findings {
    /// Collect instead of logging and stopping (`config check`).
    collect: bool,
    /// A reload (with `collect`): what `unusable` finds goes to `skipped`
    /// only, for the reload to compare with what the running rules skipped.
    reload: bool,
    errors: Vec<String>,
    /// Warnings (logged too when not collecting).
    warnings: Vec<String>,
    /// What `unusable` found, in every mode.
    skipped: Vec<String>,
}

impl Findings {
    fn warn(&mut self, w: impl std::fmt::Display) {
        let w = w.to_string();
        if !self.collect {
            tracing::warn!("{w}");
        }
        self.warnings.push(w);
    }

    /// Something `run` goes on without (a warning), but that `config check`
    /// reports as an error: a rule that does not parse, a threshold file
    /// that cannot be read.
    fn unusable(&mut self, w: impl std::fmt::Display) {
        let w = w.to_string();
        if !self.collect {
            tracing::warn!("{w}");
        } else if !self.reload {
            self.errors.push(w.clone());
        }
        self.skipped.push(w);
    }

    /// An error: `run` stops with it, `config check` notes it and goes on.
    fn error(&mut self, e: anyhow::Error) -> anyhow::Result<()> {
        if self.collect {
            self.errors.push(one_line(&e));
            Ok(())
        } else {
            Err(e)
        }
    }

    /// A configuration error: one finding per problem (each with its
    /// file:line).
    fn config_error(&mut self, e: zonewatch_config::ConfigError) -> anyhow::Result<()> {
        if self.collect {
            self.errors.extend(e.problems.iter().map(|p| p.to_string()));
            Ok(())
        } else {
            Err(e.into())
        }
    }

    /// A load summary line (`rules: 10 loaded, ...`): said by `run`;
    /// `config check` says one line for all at the end.
    fn said(&self, line: std::fmt::Arguments) {
        if !self.collect {
            say(Say::Info, line);
        }
    }
}

/// An error and its causes on one line, each said once (an io::Error's
/// text is often repeated by the context around it).
fn one_line(e: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for c in e.chain() {
        let t = c.to_string();
        if !parts.iter().any(|p| p.contains(&t)) {
            parts.push(t);
        }
    }
    parts.join(": ")
}

/// `--log-format json`: the lines said to the operator are JSON log lines too.
static JSON_LOGS: AtomicBool = AtomicBool::new(false);
/// The tracing target of those lines (always enabled at info).
const SAY: &str = "zonewatch::say";

#[derive(Clone, Copy)]
enum Say {
    Info,
    Warning,
    Error,
}

/// A line for the operator on stderr: `zonewatch: ...` (`zonewatch:
/// warning: ...`, `zonewatch: error: ...`) in text mode; with
/// `--log-format json`, a JSON log line of that level.
fn say(level: Say, line: std::fmt::Arguments) {
    if JSON_LOGS.load(Ordering::Relaxed) {
        match level {
            Say::Info => tracing::info!(target: SAY, "{line}"),
            Say::Warning => tracing::warn!(target: SAY, "{line}"),
            Say::Error => tracing::error!(target: SAY, "{line}"),
        }
    } else {
        match level {
            Say::Info => eprintln!("zonewatch: {line}"),
            Say::Warning => eprintln!("zonewatch: warning: {line}"),
            Say::Error => eprintln!("zonewatch: error: {line}"),
        }
    }
}

fn load_config(a: &RunArgs, f: &mut Findings) -> anyhow::Result<Config> {
    let mut cfg = match &a.config {
        Some(p) => match Config::from_file(p) {
            Ok((c, warnings)) => {
                for w in warnings {
                    f.warn(w);
                }
                c
            }
            Err(e) => {
                // `config check` goes on with the defaults.
                f.config_error(e)?;
                Config::default()
            }
        },
        None => Config::default(),
    };
    for kv in &a.set {
        match cfg.apply_override(kv) {
            Ok(Some(w)) => f.warn(w),
            Ok(None) => {}
            Err(e) => f.config_error(e)?,
        }
    }
    if let Some(b) = &a.bpf {
        cfg.capture.bpf = Some(b.clone());
    }
    // Numbers from the command line pass the same range checks as the file's.
    if let Some(w) = a.workers {
        if let Err(e) = cfg.apply_flag("--workers", "workers", &w.to_string()) {
            f.config_error(e)?;
        }
    }
    if let Some(s) = a.stats_interval {
        if let Err(e) = cfg.apply_flag("--stats-interval", "stats.interval", &s.to_string()) {
            f.config_error(e)?;
        }
    }
    if let Some(m) = &a.metrics_listen {
        if let Err(e) = cfg.apply_flag("--metrics-listen", "metrics.listen", m) {
            f.config_error(e)?;
        }
    }
    if let Some(o) = &a.output {
        cfg.output.path = Some(o.clone());
    }
    let workers = match cfg.pipeline.workers {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    if let Err(e) = cfg.check_totals(workers) {
        f.config_error(e)?;
    }
    Ok(cfg)
}

/// One walk of the --rules paths for the three loaders (signatures, Sigma,
/// detectors), each taking its own kind of file; what it skips (symbolic
/// link loops, directories too deep, unreadable entries) is named once.
fn walk_rules(a: &RunArgs, f: &mut Findings) -> anyhow::Result<zonewatch_rulefiles::RuleFiles> {
    let mut paths = Vec::new();
    for r in &a.rules {
        if r.exists() {
            paths.push(r.clone());
        } else {
            f.error(anyhow::anyhow!(
                "{}: no such rule file or directory",
                r.display()
            ))?;
        }
    }
    let rule_files = match zonewatch_rulefiles::collect(&paths).context("--rules") {
        Ok(w) => w,
        Err(e) => {
            f.error(e)?;
            Default::default()
        }
    };
    for s in &rule_files.skipped {
        f.warn(format_args!("rules: {s}"));
    }
    Ok(rule_files)
}

/// `zonewatch config check`: the loaders of `run`, collecting what they
/// find instead of stopping at the first error; nothing is captured,
/// listened on or written (but a probe file in the Kafka spool directory).
fn check(c: CheckArgs) -> anyhow::Result<ExitCode> {
    let a = &c.run;
    let mut f = Findings {
        collect: true,
        ..Default::default()
    };
    let cfg = load_config(a, &mut f)?;
    let rule_files = walk_rules(a, &mut f)?;
    let signatures = load_rules(
        &rule_files.of(zonewatch_rulefiles::Kind::Signatures),
        &cfg,
        &mut f,
    )?;
    let yaml = rule_files.of(zonewatch_rulefiles::Kind::Yaml);
    let detectors = load_detectors(a, &yaml, &cfg, &mut f)?;
    let tls = log_inputs(a, &cfg, &mut f)?;
    if let Some(t) = &tls {
        // What a tls:// listener loads when it starts.
        if let Err(e) = zonewatch_syslog::server_config(t) {
            f.error(anyhow::Error::new(e).context("syslog.tls"))?;
        }
    } else if cfg.syslog.tls_cert.is_some() != cfg.syslog.tls_key.is_some() {
        f.warn("syslog.tls: cert and key go together; without both, tls:// listeners cannot start");
    }
    let sigma = load_sigma(a, &cfg, &mut f)?;
    if a.kafka.is_some() || cfg.kafka.is_some() {
        match kafka_sink::config(&cfg, a.kafka.as_deref(), a.spool_dir.clone()) {
            Ok(k) => {
                if let Err(e) = k.check() {
                    f.error(anyhow::Error::new(e).context("kafka"))?;
                }
            }
            Err(e) => f.error(e.context("kafka"))?,
        }
    }
    if cfg.aggregate.is_some() {
        if let Err(e) = aggregate_cmd::section(&cfg) {
            f.error(e.context("aggregate"))?;
        }
    }
    if let Some(o) = cfg.output.path.as_deref().filter(|o| *o != "-") {
        let parent = std::path::Path::new(o)
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(std::path::Path::new("."));
        if !parent.is_dir() {
            f.error(anyhow::anyhow!(
                "output {o}: directory {} does not exist",
                parent.display()
            ))?;
        }
    }
    for w in &f.warnings {
        say(Say::Warning, format_args!("{w}"));
    }
    for e in &f.errors {
        say(Say::Error, format_args!("{e}"));
    }
    let (sig_loaded, sig_skipped, sig_app) = signatures.as_ref().map_or((0, 0, 0), |e| {
        let r = &e.report;
        (r.loaded, r.skipped, r.skipped_app_layer)
    });
    let detectors = match detectors {
        Some(d) => format!("{} loaded from {} file(s)", d.active().len(), d.files.len()),
        None if f.errors.iter().any(|e| e.starts_with("detector files:")) => {
            "not loaded (errors above)".to_string()
        }
        None => "0 loaded".to_string(),
    };
    let failed = !f.errors.is_empty() || (c.strict && !f.warnings.is_empty());
    let what = a
        .config
        .as_ref()
        .map_or("(defaults)".to_string(), |p| p.display().to_string());
    say(
        if failed { Say::Error } else { Say::Info },
        format_args!(
            "config check: {what}: {}: {} error(s), {} warning(s){}; signatures: {sig_loaded} loaded, {sig_skipped} skipped ({sig_app} wait for an app-layer parser); sigma: {} loaded, {} skipped; detectors: {detectors}",
            if failed { "FAILED" } else { "ok" },
            f.errors.len(),
            f.warnings.len(),
            if c.strict { " (--strict)" } else { "" },
            sigma.0,
            sigma.1,
        ),
    );
    Ok(if failed {
        ExitCode::CheckFailed
    } else {
        ExitCode::Ok
    })
}

fn run(a: RunArgs) -> anyhow::Result<ExitCode> {
    run_pipeline(a, None)
}

/// What `rules profile` changes in a run: the signature engine profiles
/// its rules, and events go to `sink` instead of `--output`.
pub(crate) struct ProfiledRun {
    /// Where the run's events go (taken by the run).
    pub(crate) sink: Option<Box<dyn zonewatch_output::EventSink>>,
    /// The profiled engine, once the run loaded it.
    pub(crate) engine: Option<Arc<zonewatch_detect::Engine>>,
}

/// `run`, or with `profile`, the run `rules profile` makes: the same
/// loaders and pipeline, so what it profiles is what `run` does.
pub(crate) fn run_pipeline(
    a: RunArgs,
    mut profile: Option<&mut ProfiledRun>,
) -> anyhow::Result<ExitCode> {
    // `run` logs warnings and stops at the first error.
    let mut f = Findings::default();
    let mut cfg = load_config(&a, &mut f)?;
    let logs_given = !a.syslog_listen.is_empty() || !a.syslog_file.is_empty();
    if a.pcap.is_empty() && a.interface.is_empty() && !logs_given {
        bail!("nothing to read: give --pcap PATH, --interface IF, --syslog-listen URL or --syslog-file PATH");
    }
    if !a.pcap.is_empty() && !a.interface.is_empty() {
        bail!("give either --pcap or --interface, not both");
    }
    // Before anything is loaded: a signal from then on ends the run
    // cleanly (SIGINT, SIGTERM) or waits for the reload thread (SIGHUP).
    let Signals {
        stop,
        reopen,
        stats_now,
        reload,
    } = install_signal_handlers()?;
    let rule_files = walk_rules(&a, &mut f)?;
    // Least privilege (`run-as`): decided and checked before anything is
    // opened or any thread started; dropped by the pipeline's ready hook.
    let privileges = privileges::Plan::new(&a, &cfg, &rule_files)?;
    // Signatures and detectors look at packets: not loaded for logs-only runs.
    let packets_given = !a.pcap.is_empty() || !a.interface.is_empty();
    let mut detect = if packets_given {
        load_rules(
            &rule_files.of(zonewatch_rulefiles::Kind::Signatures),
            &cfg,
            &mut f,
        )?
    } else {
        None
    };
    if let (Some(p), Some(e)) = (profile.as_deref_mut(), detect.as_mut()) {
        Arc::get_mut(e)
            .expect("the engine is not shared before the run")
            .enable_profiling();
        p.engine = Some(e.clone());
    }
    let anomaly = if packets_given {
        load_detectors(
            &a,
            &rule_files.of(zonewatch_rulefiles::Kind::Yaml),
            &cfg,
            &mut f,
        )?
    } else {
        None
    };
    cfg.stream.checksum_validation = match a.checksum_checks {
        ChecksumMode::Auto => cfg.stream.checksum_validation,
        ChecksumMode::All => zonewatch_config::ChecksumMode::All,
        ChecksumMode::None => zonewatch_config::ChecksumMode::None,
    };
    let logs = if logs_given {
        Some(start_logs(&a, &cfg, &mut f)?)
    } else {
        None
    };
    let (inputs, ids) = inputs_and_event_ids(&a, &cfg)?;
    let out_path = cfg.output.path.clone().unwrap_or_else(|| "-".into());
    let sink: Box<dyn zonewatch_output::EventSink> = match profile.and_then(|p| p.sink.take()) {
        Some(s) => s,
        None => Box::new(
            LineSink::open(&out_path).with_context(|| format!("cannot open output {out_path}"))?,
        ),
    };
    let ctx = EveContext::new(
        &cfg.sensor.name,
        cfg.sensor.tenant.as_deref(),
        cfg.sensor.timezone,
        cfg.zone_map(),
        ids,
        &cfg.output.types,
    );
    let mut sinks: Vec<Box<dyn zonewatch_output::EventSink>> = vec![sink];
    if a.kafka.is_some() || cfg.kafka.is_some() {
        let kcfg = kafka_sink::config(&cfg, a.kafka.as_deref(), a.spool_dir.clone())?;
        let k = zonewatch_kafka::KafkaSink::start(kcfg).context("starting the Kafka sink")?;
        sinks.push(Box::new(kafka_sink::KafkaEventSink { sink: Some(k) }));
    }
    let writer = EventWriter::new(ctx, sinks);
    let workers = match cfg.pipeline.workers {
        _ if a.pcap.is_empty() && a.interface.is_empty() => 1,
        0 => std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        n => n,
    };
    let live = inputs.is_live();
    // The Prometheus endpoint, bound before privileges are dropped.
    let metrics = start_metrics(&cfg, detect.as_deref(), anomaly.as_ref())?;
    // SIGHUP reloads the rules on a thread of its own.
    let slot = zonewatch_pipeline::RuleSlot::default();
    reload::Reloader::new(&a, &cfg, &slot, metrics.clone(), &f).start(reload)?;
    let hooks = zonewatch_pipeline::Hooks {
        metrics,
        stats_now: Some(stats_now),
        reopen: Some(reopen),
        rules: Some(slot),
    };
    let ready = ready_hook(privileges.hook(), &inputs);
    let opts = RunOptions {
        stage: zonewatch_pipeline::Stage::Full,
        inputs,
        workers,
        stats_interval: cfg.output.stats_interval_secs,
        progress: !live
            && !a.pcap.is_empty()
            && std::io::stderr().is_terminal()
            && out_path != "-"
            && !JSON_LOGS.load(Ordering::Relaxed),
        stop,
        detect,
        anomaly,
        logs,
        ready,
    };
    let started = std::time::Instant::now();
    let report = zonewatch_pipeline::run_with(&cfg, opts, writer, hooks)?;
    print_summary(&report.stats, started.elapsed(), workers);
    for w in &report.warnings {
        say(Say::Warning, format_args!("{w}"));
    }
    if report.lost > 0 {
        say(
            Say::Error,
            format_args!(
                "{} event(s) were accepted and then lost by an output (see the messages above and the stats event)",
                report.lost
            ),
        );
        return Ok(ExitCode::EventsLost);
    }
    Ok(ExitCode::Ok)
}

/// The Prometheus endpoint, when configured; bound before privileges are
/// dropped.
fn start_metrics(
    cfg: &Config,
    detect: Option<&zonewatch_detect::Engine>,
    anomaly: Option<&zonewatch_anomaly::DetectorSet>,
) -> anyhow::Result<Option<zonewatch_metrics::Metrics>> {
    let Some(addr) = cfg.output.metrics_listen else {
        return Ok(None);
    };
    let m = zonewatch_metrics::Metrics::new(env!("CARGO_PKG_VERSION"));
    if let Some(e) = detect {
        m.set_rules(
            "signatures",
            e.report.loaded as u64,
            e.report.skipped as u64,
        );
    }
    if let Some(d) = anomaly {
        m.set_rules("detectors", d.active().len() as u64, 0);
    }
    let bound = m
        .serve(addr)
        .with_context(|| format!("metrics endpoint {addr}"))?;
    say(
        Say::Info,
        format_args!("metrics: serving http://{bound}/metrics"),
    );
    Ok(Some(m))
}

/// The exit status (documented in `docs/operations.md`). Failures to start
/// (bad configuration, unreadable input) and an output that failed for
/// good during the run exit with 1 and a one-line reason; clap's usage
/// errors exit with 2.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum ExitCode {
    /// Every event accepted was written.
    Ok = 0,
    /// The run ended, but a sink lost events it had accepted (counted in
    /// the final stats event and summarised on stderr).
    EventsLost = 3,
    /// `config check` found errors (or warnings, with `--strict`).
    CheckFailed = 1,
}

/// Loads the signature files under the `--rules` paths. Rules that cannot
/// be used are skipped with a warning each (file:line, sid, reason) and a
/// summary; only an unreadable path is an error. `config check` loads the
/// engine even without signature files, for the threshold and
/// classification files, and counts rules that do not parse as errors.
fn load_rules(
    paths: &[PathBuf],
    config: &Config,
    f: &mut Findings,
) -> anyhow::Result<Option<Arc<zonewatch_detect::Engine>>> {
    if paths.is_empty() && !f.collect {
        return Ok(None);
    }
    let cfg = zonewatch_detect::DetectConfig {
        address_groups: config
            .address_groups
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        port_groups: config
            .port_groups
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        classification_file: config.detect.classification_file.clone(),
        threshold_file: config.detect.threshold_file.clone(),
        stream_window: config.detect.stream_window_bytes as usize,
    };
    let engine = match zonewatch_detect::Engine::load(paths, &cfg).context("loading rules") {
        Ok(e) => e,
        Err(e) => {
            f.error(e)?;
            return Ok(None);
        }
    };
    let r = &engine.report;
    for w in &r.config_warnings {
        f.unusable(w);
    }
    // Rules waiting for the app-layer parsers are many in ET Open; they are
    // listed at info level (ZONEWATCH_LOG=info), every other skip warns
    // (and is an error for `config check` when the rule does not parse).
    for e in &r.errors {
        if zonewatch_detect::needs_app_layer(e) {
            tracing::info!("rule skipped: {e}");
        } else if e.reason().starts_with("unsupported") {
            f.warn(format_args!("rule skipped: {e}"));
        } else {
            f.unusable(format_args!("rule skipped: {e}"));
        }
    }
    let mut top: Vec<(&String, &usize)> = r.reasons.iter().collect();
    top.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    let top: Vec<String> = top
        .iter()
        .take(5)
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    tracing::info!(
        "rules without a fast pattern (tcp, udp, icmp, other): {:?}",
        r.no_fast_pattern
    );
    f.said(format_args!(
        "rules: {} loaded, {} skipped from {} file(s) in {:.2}s{}",
        r.loaded,
        r.skipped,
        r.files.len(),
        r.load_time.as_secs_f64(),
        if top.is_empty() {
            String::new()
        } else {
            format!(" (top reasons: {})", top.join(", "))
        }
    ));
    if !r.waiting.is_empty() {
        let mut w: Vec<(&String, &usize)> = r.waiting.iter().collect();
        w.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        let w: Vec<String> = w.iter().map(|(k, v)| format!("{k} {v}")).collect();
        f.said(format_args!(
            "rules: {} wait for an app-layer parser zonewatch does not have: {}",
            r.skipped_app_layer,
            w.join(", ")
        ));
    }
    if r.loaded > 0 {
        f.said(format_args!(
            "rules: {} per packet/stream ({} IP-only) in {} signature groups (largest: {} fast patterns), {} per transaction",
            r.packet_rules,
            r.ip_only,
            r.groups,
            r.largest_group_patterns,
            r.loaded - r.packet_rules
        ));
    }
    Ok(Some(Arc::new(engine)))
}

/// Loads the Sigma rules under the `--rules` paths (directories searched
/// for `.yml`/`.yaml`; documents without `detection:`/`correlation:`, such
/// as detector files, are not rules; `.rules` files are the signature
/// engine's) and starts the syslog listeners and file replay. Rules that
/// cannot be compiled are skipped with a warning each.
fn start_logs(
    a: &RunArgs,
    cfg: &Config,
    f: &mut Findings,
) -> anyhow::Result<zonewatch_pipeline::logs::LogInputs> {
    let tls = log_inputs(a, cfg, f)?;
    let (_, skipped, rules) = load_sigma(a, cfg, f)?;
    let parse = zonewatch_syslog::ParseOptions {
        sensor_offset: cfg.sensor.timezone,
        extract_fields: true,
    };
    let lcfg = zonewatch_pipeline::logs::LogConfig {
        listen: a.syslog_listen.clone(),
        tls,
        files: a.syslog_file.clone(),
        listener: zonewatch_syslog::ListenerConfig {
            name: String::new(),
            max_frame_bytes: cfg.syslog.max_frame_bytes,
            idle_timeout: std::time::Duration::from_secs(cfg.syslog.idle_timeout_secs),
            max_connections: cfg.syslog.max_connections,
            max_connections_per_source: cfg.syslog.max_connections_per_source,
            frame_timeout: std::time::Duration::from_secs(cfg.syslog.frame_timeout_secs),
            buffer_memcap: cfg.syslog.buffer_memcap_bytes,
            parse,
        },
        channel_records: cfg.syslog.channel_records,
        rules: Arc::new(rules),
        rules_skipped: skipped as u64,
        limits: zonewatch_sigma::CorrelationLimits {
            hash_seed: cfg.flow.hash_seed,
            ..Default::default()
        },
        include_message: cfg.syslog.include_message,
        offset: cfg.sensor.timezone,
    };
    let inputs = zonewatch_pipeline::logs::LogInputs::start(lcfg)?;
    for (url, addr) in inputs.local_addrs() {
        say(Say::Info, format_args!("syslog: {url} listening on {addr}"));
    }
    Ok(inputs)
}

/// The syslog inputs of the command line checked (listener URLs, TLS files
/// named for `tls://`, log files to replay) and the TLS files, if set.
fn log_inputs(
    a: &RunArgs,
    cfg: &Config,
    f: &mut Findings,
) -> anyhow::Result<Option<zonewatch_syslog::TlsFiles>> {
    let tls = match (&cfg.syslog.tls_cert, &cfg.syslog.tls_key) {
        (Some(cert), Some(key)) => Some(zonewatch_syslog::TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
            client_ca: cfg.syslog.tls_client_ca.clone(),
        }),
        _ => None,
    };
    if tls.is_none() && a.syslog_listen.iter().any(|u| u.starts_with("tls://")) {
        f.error(anyhow::anyhow!(
            "tls:// syslog listeners need syslog.tls.cert and syslog.tls.key in the configuration"
        ))?;
    }
    for u in &a.syslog_listen {
        if tls.is_none() && u.starts_with("tls://") {
            continue; // said above
        }
        if let Err(e) = zonewatch_syslog::ListenSpec::parse(u, tls.clone())
            .with_context(|| format!("--syslog-listen {u}"))
        {
            f.error(e)?;
        }
    }
    for l in &a.syslog_file {
        if l.as_os_str() != "-" && !l.is_file() {
            f.error(anyhow::anyhow!("{}: no such log file", l.display()))?;
        }
    }
    Ok(tls)
}

/// Loads the Sigma rules under the `--rules` paths: (loaded, skipped,
/// rules). A rule that cannot be compiled is skipped with a warning (an
/// error for `config check`).
fn load_sigma(
    a: &RunArgs,
    _cfg: &Config,
    f: &mut Findings,
) -> anyhow::Result<(usize, usize, zonewatch_sigma::RuleSet)> {
    let paths = sigma_files(&a.rules);
    let t0 = std::time::Instant::now();
    let report =
        zonewatch_sigma::RuleSet::load_paths(&paths, &zonewatch_sigma::SigmaConfig::default());
    // `run`: the loader has already logged each skipped rule (file:line: id:
    // reason); `config check` silences it and lists them here.
    if f.collect {
        for e in &report.errors {
            f.unusable(e);
        }
    } else {
        f.skipped
            .extend(report.errors.iter().map(|e| e.to_string()));
    }
    let rules = report.rules;
    let (det, corr) = (rules.detections.len(), rules.correlations.len());
    let logs_given = !a.syslog_listen.is_empty() || !a.syslog_file.is_empty();
    if det + corr == 0 && logs_given {
        f.warn("no Sigma rules under the --rules paths: logs are parsed and counted, nothing raises alerts");
    }
    f.said(format_args!(
        "sigma: {} rules loaded ({det} detections, {corr} correlations; {} inactive on syslog), {} skipped from {} file(s) in {:.2}s",
        det + corr,
        rules.inactive,
        report.errors.len(),
        report.files,
        t0.elapsed().as_secs_f64(),
    ));
    Ok((det + corr, report.errors.len(), rules))
}

/// The `.yml`/`.yaml` files under the `--rules` paths, by the walk all rule
/// loaders share (directories recursively, in name order, symbolic link
/// loops ended, each file once even when paths overlap). What the walk skips
/// is named once by `run`.
fn sigma_files(paths: &[PathBuf]) -> Vec<PathBuf> {
    zonewatch_rulefiles::collect(paths)
        .map(|w| w.of(zonewatch_rulefiles::Kind::Yaml))
        .unwrap_or_default()
}

/// Loads the anomaly detectors whose files (`detector:` YAML, among `files`,
/// the YAML files of the `--rules` walk) are given, with the zone policy of
/// the configuration file, and says what was loaded. None when no detector
/// file is given. A broken detector file is an error naming file:line.
fn load_detectors(
    a: &RunArgs,
    files: &[PathBuf],
    cfg: &Config,
    f: &mut Findings,
) -> anyhow::Result<Option<zonewatch_anomaly::DetectorSet>> {
    // `config check` reads the zone policy even without --rules.
    if a.rules.is_empty() && !f.collect {
        return Ok(None);
    }
    // With a configuration file, the zone policy is its `zone-policy:` section (none:
    // no rules, default allow) over its zones, both as the config crate read them.
    let policy = match &cfg.file {
        Some(origin) => {
            let section = cfg.zone_policy.as_ref();
            match zonewatch_anomaly::ZonePolicy::read(section, cfg.zone_map(), origin) {
                Ok(policy) => Some(policy),
                Err(e) => {
                    if f.collect {
                        // One finding per problem, each with its file:line.
                        for m in e {
                            f.error(anyhow::anyhow!("zone policy: {m}"))?;
                        }
                    } else {
                        f.error(anyhow::anyhow!("zone policy: {}", e.join("; ")))?;
                    }
                    None
                }
            }
        }
        None => None,
    };
    let set = match zonewatch_anomaly::DetectorSet::load(files, policy) {
        Ok(set) => set,
        Err(errs) => {
            let msgs: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
            if f.collect {
                for m in msgs {
                    f.error(anyhow::anyhow!("detector files: {m}"))?;
                }
            } else {
                f.error(anyhow::anyhow!("detector files: {}", msgs.join("; ")))?;
            }
            return Ok(None);
        }
    };
    for w in &set.warnings {
        f.warn(format_args!("detectors: {w}"));
    }
    let active = set.active();
    f.said(format_args!(
        "detectors: {} loaded from {} file(s){}",
        active.len(),
        set.files.len(),
        if active.is_empty() {
            String::new()
        } else {
            format!(" ({})", active.join(", "))
        }
    ));
    Ok((!set.is_empty()).then_some(set))
}

/// A short, readable summary on stderr.
fn print_summary(s: &serde_json::Value, took: std::time::Duration, workers: usize) {
    let g = |path: &str| -> u64 {
        path.split('.')
            .try_fold(s, |v, k| v.get(k))
            .and_then(|v| v.as_u64())
            .unwrap_or(0)
    };
    let secs = took.as_secs_f64().max(1e-6);
    let pkts = g("decoder.pkts");
    let bytes = g("decoder.bytes");
    say(
        Say::Info,
        format_args!(
        "{pkts} packets, {bytes} bytes in {secs:.2}s ({:.0} pkt/s, {:.3} Gbit/s) on {workers} worker(s)",
        pkts as f64 / secs,
        bytes as f64 * 8.0 / secs / 1e9
    ));
    say(
        Say::Info,
        format_args!(
        "flows {} (tcp {}, udp {}, icmp {}), ended: timeout {}, forced {}, shutdown {}; invalid packets {}",
        g("flow.total"),
        g("flow.tcp"),
        g("flow.udp"),
        g("flow.icmpv4") + g("flow.icmpv6"),
        g("flow.end.timeout"),
        g("flow.end.forced"),
        g("flow.end.shutdown"),
        g("decoder.invalid"),
    ));
    let events = s
        .get("output")
        .and_then(|o| o.get("events"))
        .and_then(|e| e.as_object())
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k} {}", v.as_u64().unwrap_or(0)))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default();
    if s.get("syslog").is_some() {
        say(Say::Info, format_args!(
            "logs: {} records received, {} parsed, {} truncated, {} dropped; sigma: {} matches, {} correlation alerts, {} correlation evictions",
            g("syslog.received"),
            g("syslog.parsed"),
            g("syslog.truncated"),
            g("syslog.dropped"),
            g("sigma.matches"),
            g("sigma.correlation_alerts"),
            g("sigma.correlation_evictions"),
        ));
    }
    say(
        Say::Info,
        format_args!(
            "events written: {events}; queue waits {}, queue drops {}, kernel drops {}",
            g("pipeline.queue_full_waits"),
            g("pipeline.queue_drops"),
            g("capture.kernel_drops"),
        ),
    );
}

/// The flags the signal handlers set.
struct Signals {
    /// SIGINT/SIGTERM: end the run cleanly.
    stop: Arc<AtomicBool>,
    /// SIGHUP: reopen the output file.
    reopen: Arc<AtomicBool>,
    /// SIGHUP: reload the rules (one message per signal).
    reload: std::sync::mpsc::Receiver<()>,
    /// SIGUSR1: write a stats event now.
    stats_now: Arc<AtomicBool>,
}

/// Installs the signal handlers of a run.
fn install_signal_handlers() -> anyhow::Result<Signals> {
    let stop = Arc::new(AtomicBool::new(false));
    // SIGINT/SIGTERM: the first ends the run cleanly (flows flushed, sinks
    // settled); a second one, for an operator who cannot wait, exits at
    // once. SIGHUP: the output file is reopened (log rotation, as Suricata
    // does) and the rules are reloaded; the run goes on. Handled on a
    // thread of their own, so the handlers can log.
    let reopen = Arc::new(AtomicBool::new(false));
    let (reload_tx, reload) = std::sync::mpsc::channel::<()>();
    {
        use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
        let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP])
            .context("installing the signal handlers")?;
        let (stop, reopen) = (stop.clone(), reopen.clone());
        std::thread::Builder::new()
            .name("zw-signals".into())
            .spawn(move || {
                for sig in signals.forever() {
                    if sig == SIGHUP {
                        reopen.store(true, Ordering::Relaxed);
                        let _ = reload_tx.send(());
                    } else if stop.swap(true, Ordering::Relaxed) {
                        say(
                            Say::Info,
                            format_args!("second signal: exiting now, without flushing"),
                        );
                        std::process::exit(130);
                    }
                }
            })
            .context("starting the signal thread")?;
    }
    // SIGUSR1 writes a stats event at once (the output thread looks at the
    // flag four times a second).
    let stats_now = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGUSR1, stats_now.clone())
        .context("installing the SIGUSR1 handler")?;
    Ok(Signals {
        stop,
        reopen,
        stats_now,
        reload,
    })
}

/// The packet inputs of the command line and what event ids derive from: the inputs'
/// names and sizes when every input is a file (ids reproducible), else this run.
fn inputs_and_event_ids(a: &RunArgs, cfg: &Config) -> anyhow::Result<(Inputs, EventIdSource)> {
    let log_files: Vec<(String, u64)> = a
        .syslog_file
        .iter()
        .map(|f| {
            let name = f
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "-".into());
            (
                format!("log:{name}"),
                std::fs::metadata(f).map(|m| m.len()).unwrap_or(0),
            )
        })
        .collect();
    // Event ids are reproducible only when every input is a file.
    let replayable = a.interface.is_empty()
        && !a.pcap.iter().any(|p| zonewatch_capture::is_stream(p))
        && a.syslog_listen.is_empty()
        && !a.syslog_file.iter().any(|f| f.as_os_str() == "-");
    let run_id = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
            ^ ((std::process::id() as u128) << 96)
    };
    let (inputs, ids) = if a.pcap.is_empty() && a.interface.is_empty() {
        // Logs only: no packet input; one idle worker.
        let ids = if replayable {
            EventIdSource::Inputs(log_files.clone())
        } else {
            EventIdSource::Run(run_id())
        };
        (Inputs::Files(Vec::new()), ids)
    } else if a.pcap.is_empty() {
        (live_inputs(a, cfg)?, EventIdSource::Run(run_id()))
    } else {
        let (files, skipped) = zonewatch_capture::expand_inputs(&a.pcap)?;
        for s in skipped {
            tracing::warn!("{}: not a capture; skipped", s.display());
        }
        if files.is_empty() {
            bail!("no capture files found in the given --pcap paths");
        }
        let mut ids: Vec<(String, u64)> = files
            .iter()
            .map(|f| {
                let name = f
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                (name, std::fs::metadata(f).map(|m| m.len()).unwrap_or(0))
            })
            .collect();
        ids.extend(log_files.iter().cloned());
        let ids = if replayable {
            EventIdSource::Inputs(ids)
        } else {
            EventIdSource::Run(run_id())
        };
        (Inputs::Files(files), ids)
    };
    Ok((inputs, ids))
}

/// The live inputs: libpcap's reader or AF_PACKET rings per worker
/// (`--capture` or `capture.method`).
fn live_inputs(a: &RunArgs, cfg: &Config) -> anyhow::Result<Inputs> {
    let method = match a.capture {
        Some(CaptureMethod::Pcap) => zonewatch_config::CaptureMethod::Pcap,
        Some(CaptureMethod::AfPacket) => zonewatch_config::CaptureMethod::AfPacket,
        None => cfg.capture.method,
    };
    if method != zonewatch_config::CaptureMethod::AfPacket {
        return Ok(Inputs::Interfaces(a.interface.clone()));
    }
    if !cfg!(target_os = "linux") {
        bail!("capture method af-packet needs Linux; use --capture pcap");
    }
    Ok(Inputs::AfPacket {
        interfaces: a.interface.clone(),
        rings: zonewatch_pipeline::RingSettings {
            ring_bytes: cfg.capture.af_packet.ring_bytes,
            block_bytes: cfg.capture.af_packet.block_bytes,
            block_timeout_ms: cfg.capture.af_packet.block_timeout_ms,
            cluster_id: cfg.capture.af_packet.cluster_id,
        },
    })
}

/// What runs once every capture handle is open: the privilege drop, then,
/// for live capture, the line that says packets are being read (operators
/// and scripts wait for it).
fn ready_hook(
    drop_privileges: Option<zonewatch_pipeline::ReadyHook>,
    inputs: &Inputs,
) -> Option<zonewatch_pipeline::ReadyHook> {
    let started = match inputs {
        Inputs::Interfaces(i) => Some(format!("capture started on {} (libpcap)", i.join(", "))),
        Inputs::AfPacket { interfaces, .. } => Some(format!(
            "capture started on {} (af-packet, a ring per worker)",
            interfaces.join(", ")
        )),
        Inputs::Files(_) => None,
    };
    if drop_privileges.is_none() && started.is_none() {
        return None;
    }
    Some(Box::new(move || {
        if let Some(h) = &drop_privileges {
            h()?;
        }
        if let Some(line) = &started {
            say(Say::Info, format_args!("{line}"));
        }
        Ok(())
    }))
}
