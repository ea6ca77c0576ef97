//! `zonewatch`: command line, configuration and exit codes. Everything else
//! lives in the library crates; this file only wires them together.

mod kafka_sink;
mod privileges;

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use zonewatch_config::Config;
use zonewatch_output::{EveContext, EventIdSource, EventWriter, LineSink, Zones};

use zonewatch_pipeline::{Inputs, RunOptions};

/// Network and log sensor for a city's internet zone.
#[derive(Parser)]
#[command(name = "zonewatch", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Read captures or interfaces, write events.
    Run(RunArgs),
}

#[derive(Args)]
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
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ChecksumMode {
    Auto,
    All,
    None,
}

fn main() {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("ZONEWATCH_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_target(false)
        // Colour codes only for a person at a terminal, never in a journal
        // or a log file.
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let r = match cli.command {
        Command::Run(a) => run(a),
    };
    match r {
        Ok(code) => std::process::exit(code as i32),
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
            eprintln!("zonewatch: error: {}", parts.join(": "));
            std::process::exit(1);
        }
    }
}

fn load_config(a: &RunArgs) -> anyhow::Result<Config> {
    let mut cfg = match &a.config {
        Some(p) => {
            let (c, warnings) = Config::from_file(p)?;
            for w in warnings {
                tracing::warn!("{w}");
            }
            c
        }
        None => Config::default(),
    };
    for kv in &a.set {
        if let Some(w) = cfg.apply_override(kv)? {
            tracing::warn!("{w}");
        }
    }
    if let Some(b) = &a.bpf {
        cfg.bpf = Some(b.clone());
    }
    // Numbers from the command line pass the same range checks as the file's.
    if let Some(w) = a.workers {
        cfg.apply_flag("--workers", "workers", &w.to_string())?;
    }
    if let Some(s) = a.stats_interval {
        cfg.apply_flag("--stats-interval", "stats.interval", &s.to_string())?;
    }
    if let Some(m) = &a.metrics_listen {
        cfg.apply_flag("--metrics-listen", "metrics.listen", m)?;
    }
    if let Some(o) = &a.output {
        cfg.output_path = Some(o.clone());
    }
    let workers = match cfg.workers {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    cfg.check_totals(workers)?;
    Ok(cfg)
}

fn run(a: RunArgs) -> anyhow::Result<ExitCode> {
    let mut cfg = load_config(&a)?;
    let logs_given = !a.syslog_listen.is_empty() || !a.syslog_file.is_empty();
    if a.pcap.is_empty() && a.interface.is_empty() && !logs_given {
        bail!("nothing to read: give --pcap PATH, --interface IF, --syslog-listen URL or --syslog-file PATH");
    }
    if !a.pcap.is_empty() && !a.interface.is_empty() {
        bail!("give either --pcap or --interface, not both");
    }
    for r in &a.rules {
        if !r.exists() {
            bail!("{}: no such rule file or directory", r.display());
        }
    }
    // One walk of the --rules paths for the three loaders (signatures, Sigma,
    // detectors), each taking its own kind of file; what it skips (symbolic
    // link loops, directories too deep, unreadable entries) is named once.
    let rule_files = zonewatch_rulefiles::collect(&a.rules).context("--rules")?;
    for s in &rule_files.skipped {
        tracing::warn!("rules: {s}");
    }
    // Least privilege (`run-as`): decided and checked before anything is
    // opened or any thread started; dropped by the pipeline's ready hook.
    let privileges = privileges::Plan::new(&a, &cfg, &rule_files)?;
    // Signatures and detectors look at packets: not loaded for logs-only runs.
    let packets_given = !a.pcap.is_empty() || !a.interface.is_empty();
    let detect = if packets_given {
        load_rules(&rule_files.of(zonewatch_rulefiles::Kind::Signatures), &cfg)?
    } else {
        None
    };
    let anomaly = if packets_given {
        load_detectors(&a, &rule_files.of(zonewatch_rulefiles::Kind::Yaml), &cfg)?
    } else {
        None
    };
    cfg.checksum_checks = match a.checksum_checks {
        ChecksumMode::Auto => cfg.checksum_checks.clone(),
        ChecksumMode::All => "all".into(),
        ChecksumMode::None => "none".into(),
    };
    // Before the listeners start: a signal from then on ends the run cleanly.
    let stop = Arc::new(AtomicBool::new(false));
    {
        // The first signal ends the run cleanly (flows flushed, sinks
        // settled); a second one, for an operator who cannot wait, exits
        // at once.
        let stop = stop.clone();
        let _ = ctrlc::set_handler(move || {
            if stop.swap(true, Ordering::Relaxed) {
                eprintln!("zonewatch: second signal: exiting now, without flushing");
                std::process::exit(130);
            }
        });
    }
    // SIGUSR1 writes a stats event at once (the output thread looks at the
    // flag four times a second); INT/TERM stay ctrlc's.
    let stats_now = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGUSR1, stats_now.clone())
        .context("installing the SIGUSR1 handler")?;
    let logs = if logs_given {
        Some(start_logs(&a, &cfg)?)
    } else {
        None
    };
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
        (
            Inputs::Interfaces(a.interface.clone()),
            EventIdSource::Run(run_id()),
        )
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
    let out_path = cfg.output_path.clone().unwrap_or_else(|| "-".into());
    let sink =
        LineSink::open(&out_path).with_context(|| format!("cannot open output {out_path}"))?;
    let ctx = EveContext::new(
        &cfg.sensor_name,
        cfg.tenant.as_deref(),
        cfg.timezone,
        Zones::new(&cfg.zones),
        ids,
        &cfg.output_types,
    );
    let mut sinks: Vec<Box<dyn zonewatch_output::EventSink>> = vec![Box::new(sink)];
    if a.kafka.is_some() || !cfg.kafka.is_empty() {
        let kcfg = kafka_sink::config(&cfg, a.kafka.as_deref(), a.spool_dir.clone())?;
        let k = zonewatch_kafka::KafkaSink::start(kcfg).context("starting the Kafka sink")?;
        sinks.push(Box::new(kafka_sink::KafkaEventSink { sink: Some(k) }));
    }
    let writer = EventWriter::new(ctx, sinks);
    let workers = match cfg.workers {
        _ if a.pcap.is_empty() && a.interface.is_empty() => 1,
        0 => std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        n => n,
    };
    let live = matches!(inputs, Inputs::Interfaces(_));
    // The Prometheus endpoint, bound before privileges are dropped.
    let metrics = match cfg.metrics_listen {
        Some(addr) => {
            let m = zonewatch_metrics::Metrics::new(env!("CARGO_PKG_VERSION"));
            if let Some(e) = &detect {
                m.set_rules(
                    "signatures",
                    e.report.loaded as u64,
                    e.report.skipped as u64,
                );
            }
            if let Some(d) = &anomaly {
                m.set_rules("detectors", d.active().len() as u64, 0);
            }
            let bound = m
                .serve(addr)
                .with_context(|| format!("metrics endpoint {addr}"))?;
            eprintln!("zonewatch: metrics: serving http://{bound}/metrics");
            Some(m)
        }
        None => None,
    };
    let hooks = zonewatch_pipeline::Hooks {
        metrics,
        stats_now: Some(stats_now),
    };
    let opts = RunOptions {
        stage: zonewatch_pipeline::Stage::Full,
        inputs,
        workers,
        stats_interval: cfg.stats_interval,
        progress: !live && !a.pcap.is_empty() && std::io::stderr().is_terminal() && out_path != "-",
        stop,
        detect,
        anomaly,
        logs,
        ready: privileges.hook(),
    };
    let started = std::time::Instant::now();
    let report = zonewatch_pipeline::run_with(&cfg, opts, writer, hooks)?;
    print_summary(&report.stats, started.elapsed(), workers);
    for w in &report.warnings {
        eprintln!("zonewatch: warning: {w}");
    }
    if report.lost > 0 {
        eprintln!(
            "zonewatch: error: {} event(s) were accepted and then lost by an output (see the messages above and the stats event)",
            report.lost
        );
        return Ok(ExitCode::EventsLost);
    }
    Ok(ExitCode::Ok)
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
}

/// Loads the signature files under the `--rules` paths. Rules that cannot
/// be used are skipped with a warning each (file:line, sid, reason) and a
/// summary; only an unreadable path is an error.
fn load_rules(
    paths: &[PathBuf],
    config: &Config,
) -> anyhow::Result<Option<Arc<zonewatch_detect::Engine>>> {
    if paths.is_empty() {
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
        classification_file: config.classification_file.clone(),
        threshold_file: config.threshold_file.clone(),
        stream_window: config.detect_stream_window as usize,
    };
    let engine = zonewatch_detect::Engine::load(paths, &cfg).context("loading rules")?;
    let r = &engine.report;
    for w in &r.config_warnings {
        tracing::warn!("{w}");
    }
    // Rules waiting for the app-layer parsers are many in ET Open; they are
    // listed at info level (ZONEWATCH_LOG=info), every other skip warns.
    for e in &r.errors {
        if zonewatch_detect::needs_app_layer(e) {
            tracing::info!("rule skipped: {e}");
        } else {
            tracing::warn!("rule skipped: {e}");
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
    eprintln!(
        "zonewatch: rules: {} loaded, {} skipped from {} file(s) in {:.2}s{}",
        r.loaded,
        r.skipped,
        r.files.len(),
        r.load_time.as_secs_f64(),
        if top.is_empty() {
            String::new()
        } else {
            format!(" (top reasons: {})", top.join(", "))
        }
    );
    if r.loaded > 0 {
        eprintln!(
            "zonewatch: rules: {} per packet/stream ({} IP-only) in {} signature groups (largest: {} fast patterns), {} per transaction",
            r.packet_rules,
            r.ip_only,
            r.groups,
            r.largest_group_patterns,
            r.loaded - r.packet_rules
        );
    }
    Ok(Some(Arc::new(engine)))
}

/// Loads the Sigma rules under the `--rules` paths (directories searched
/// for `.yml`/`.yaml`; documents without `detection:`/`correlation:`, such
/// as detector files, are not rules; `.rules` files are the signature
/// engine's) and starts the syslog listeners and file replay. Rules that
/// cannot be compiled are skipped with a warning each.
fn start_logs(a: &RunArgs, cfg: &Config) -> anyhow::Result<zonewatch_pipeline::logs::LogInputs> {
    let tls = match (&cfg.syslog_tls_cert, &cfg.syslog_tls_key) {
        (Some(cert), Some(key)) => Some(zonewatch_syslog::TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
            client_ca: cfg.syslog_tls_client_ca.clone(),
        }),
        _ => None,
    };
    if tls.is_none() && a.syslog_listen.iter().any(|u| u.starts_with("tls://")) {
        bail!(
            "tls:// syslog listeners need syslog.tls.cert and syslog.tls.key in the configuration"
        );
    }
    for u in &a.syslog_listen {
        zonewatch_syslog::ListenSpec::parse(u, tls.clone())
            .with_context(|| format!("--syslog-listen {u}"))?;
    }
    for f in &a.syslog_file {
        if f.as_os_str() != "-" && !f.is_file() {
            bail!("{}: no such log file", f.display());
        }
    }
    let paths = sigma_files(&a.rules);
    let t0 = std::time::Instant::now();
    let report =
        zonewatch_sigma::RuleSet::load_paths(&paths, &zonewatch_sigma::SigmaConfig::default());
    // The loader has already logged each skipped rule (file:line: id: reason).
    let rules = report.rules;
    let (det, corr) = (rules.detections.len(), rules.correlations.len());
    if det + corr == 0 {
        tracing::warn!("no Sigma rules under the --rules paths: logs are parsed and counted, nothing raises alerts");
    }
    eprintln!(
        "zonewatch: sigma: {} rules loaded ({det} detections, {corr} correlations; {} inactive on syslog), {} skipped from {} file(s) in {:.2}s",
        det + corr,
        rules.inactive,
        report.errors.len(),
        report.files,
        t0.elapsed().as_secs_f64(),
    );
    let parse = zonewatch_syslog::ParseOptions {
        sensor_offset: cfg.timezone,
        extract_fields: true,
    };
    let lcfg = zonewatch_pipeline::logs::LogConfig {
        listen: a.syslog_listen.clone(),
        tls,
        files: a.syslog_file.clone(),
        listener: zonewatch_syslog::ListenerConfig {
            name: String::new(),
            max_frame_bytes: cfg.syslog_max_frame_bytes,
            idle_timeout: std::time::Duration::from_secs(cfg.syslog_idle_timeout),
            max_connections: cfg.syslog_max_connections,
            max_connections_per_source: cfg.syslog_max_connections_per_source,
            frame_timeout: std::time::Duration::from_secs(cfg.syslog_frame_timeout),
            buffer_memcap: cfg.syslog_buffer_memcap,
            parse,
        },
        channel_records: cfg.syslog_channel_records,
        rules: Arc::new(rules),
        rules_skipped: report.errors.len() as u64,
        limits: zonewatch_sigma::CorrelationLimits {
            hash_seed: cfg.flow_hash_seed,
            ..Default::default()
        },
        include_message: cfg.syslog_include_message,
        offset: cfg.timezone,
    };
    let inputs = zonewatch_pipeline::logs::LogInputs::start(lcfg)?;
    for (url, addr) in inputs.local_addrs() {
        eprintln!("zonewatch: syslog: {url} listening on {addr}");
    }
    Ok(inputs)
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
) -> anyhow::Result<Option<zonewatch_anomaly::DetectorSet>> {
    if a.rules.is_empty() {
        return Ok(None);
    }
    let policy = match &a.config {
        Some(p) => {
            let text =
                std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            let policy =
                zonewatch_anomaly::ZonePolicy::from_config_yaml(&text, &p.display().to_string())
                    .map_err(|e| anyhow::anyhow!("zone policy: {}", e.join("; ")))?;
            Some(policy.with_zones(&cfg.zones))
        }
        None => None,
    };
    let set = zonewatch_anomaly::DetectorSet::load(files, policy).map_err(|errs| {
        let msgs: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
        anyhow::anyhow!("detector files: {}", msgs.join("; "))
    })?;
    for w in &set.warnings {
        tracing::warn!("detectors: {w}");
    }
    let active = set.active();
    eprintln!(
        "zonewatch: detectors: {} loaded from {} file(s){}",
        active.len(),
        set.files.len(),
        if active.is_empty() {
            String::new()
        } else {
            format!(" ({})", active.join(", "))
        }
    );
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
    eprintln!(
        "zonewatch: {pkts} packets, {bytes} bytes in {secs:.2}s ({:.0} pkt/s, {:.3} Gbit/s) on {workers} worker(s)",
        pkts as f64 / secs,
        bytes as f64 * 8.0 / secs / 1e9
    );
    eprintln!(
        "zonewatch: flows {} (tcp {}, udp {}, icmp {}), ended: timeout {}, forced {}, shutdown {}; invalid packets {}",
        g("flow.total"),
        g("flow.tcp"),
        g("flow.udp"),
        g("flow.icmpv4") + g("flow.icmpv6"),
        g("flow.end.timeout"),
        g("flow.end.forced"),
        g("flow.end.shutdown"),
        g("decoder.invalid"),
    );
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
        eprintln!(
            "zonewatch: logs: {} records received, {} parsed, {} truncated, {} dropped; sigma: {} matches, {} correlation alerts, {} correlation evictions",
            g("syslog.received"),
            g("syslog.parsed"),
            g("syslog.truncated"),
            g("syslog.dropped"),
            g("sigma.matches"),
            g("sigma.correlation_alerts"),
            g("sigma.correlation_evictions"),
        );
    }
    eprintln!(
        "zonewatch: events written: {events}; queue waits {}, queue drops {}, kernel drops {}",
        g("pipeline.queue_full_waits"),
        g("pipeline.queue_drops"),
        g("capture.kernel_drops"),
    );
}
