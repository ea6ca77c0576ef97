//! The log path: syslog listeners and file/stdin replay feed one bounded
//! channel; one log thread runs the Sigma engine over it, in arrival order,
//! and hands alert events to the output thread.
//!
//! ```text
//! udp/tcp/tls listeners ─┐
//! file/stdin replay ─────┴─records─► zw-logs (Sigma engine) ──OutMsg::Logs──► output
//! ```
//!
//! Backpressure: listeners drop and count when the channel is full (a network
//! sender cannot be slowed without losing data elsewhere); replay waits.
//! Files are replayed one after the other on one thread, so a logs-only
//! replay gives the same alerts, in the same order, with the same event ids
//! on every run (correlation runs on record time).
//!
//! Receive → alert latency: for records from network listeners (whose
//! `received` is the wall-clock time the listener parsed the frame), the
//! time from receipt to the alert leaving the Sigma engine is recorded in an
//! hdrhistogram (µs) and reported as `sigma.latency_us` in the stats. Replayed
//! records carry their own time as `received` and are not timed.
//!
//! Event keys: `EventKey { pos: n, sub: LOG_SUB + k }` where `n` is the
//! 1-based number of the record (in arrival order on the log thread) that
//! raised the alert and `k` its order among that record's alerts; alerts
//! from windows closed at the end of input take `n` = records + 1. `LOG_SUB`
//! (2^63) is above every `sub` the packet path uses, so log and packet
//! events never share an event id.

use crate::output::OutMsg;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use serde_json::{json, Map, Value};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use zonewatch_sigma::{CorrelationLimits, Engine, RuleSet, SigmaMatch};
use zonewatch_syslog::{
    Counters, ListenError, ListenSpec, Listener, ListenerConfig, LogRecord, ParseOptions,
    ReplayConfig, Shutdown, TlsFiles,
};
use zonewatch_types::{AddrInfo, AlertRecord, Event, EventBody, EventKey, Timestamp, UtcOffset};

/// `sub` of log alerts: [`EventKey::LOG`], above every packet-path `sub`.
pub const LOG_SUB: u64 = EventKey::LOG;

/// First `signature_id` of Sigma alerts: `SIGMA_SID_BASE` + FNV-1a-32 of the
/// lowercased rule id, modulo 10^9 (so 2 000 000 000 – 2 999 999 999).
pub const SIGMA_SID_BASE: u64 = 2_000_000_000;

/// Everything the log path needs.
#[derive(Debug, Clone)]
pub struct LogConfig {
    /// Listener URLs (`udp://ADDR:PORT`, `tcp://...`, `tls://...`).
    pub listen: Vec<String>,
    /// Certificate, key and optional client CA of `tls://` listeners.
    pub tls: Option<TlsFiles>,
    /// Files replayed one after the other (`-` = stdin).
    pub files: Vec<PathBuf>,
    /// Listener settings (frame size, idle timeout, connection cap, parsing);
    /// `name` is set per listener.
    pub listener: ListenerConfig,
    /// Records queued between inputs and the Sigma thread.
    pub channel_records: usize,
    /// The compiled Sigma rules.
    pub rules: Arc<RuleSet>,
    /// Sigma rules that could not be compiled (for the stats).
    pub rules_skipped: u64,
    /// Correlation state bounds (and hash seed).
    pub limits: CorrelationLimits,
    /// Write the raw message in the alerts' evidence.
    pub include_message: bool,
    /// Offset used to render times inside the evidence.
    pub offset: UtcOffset,
}

/// Why the log inputs could not start.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// A listener URL is malformed or could not be bound.
    #[error("syslog listener {url}: {source}")]
    Listen {
        /// The URL as given.
        url: String,
        /// Why.
        source: ListenError,
    },
    /// A replay file could not be opened.
    #[error("syslog file {path}: {source}")]
    File {
        /// The path.
        path: String,
        /// Why.
        source: std::io::Error,
    },
}

/// Started log inputs: bound listeners and the replay thread, delivering to
/// the channel the log thread reads.
pub struct LogInputs {
    cfg: LogConfig,
    rx: Receiver<LogRecord>,
    shutdown: Shutdown,
    listeners: Vec<(String, Listener)>,
    replay: Option<ReplayHandle>,
}

struct ReplayHandle {
    counters: Vec<(String, Arc<Counters>)>,
    thread: JoinHandle<Vec<String>>,
}

impl std::fmt::Debug for LogInputs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogInputs")
            .field("listeners", &self.local_addrs())
            .field("files", &self.cfg.files)
            .finish_non_exhaustive()
    }
}

impl LogInputs {
    /// Binds every listener and opens every file (all before reading any),
    /// then starts them.
    pub fn start(cfg: LogConfig) -> Result<LogInputs, LogError> {
        let (tx, rx) = crossbeam_channel::bounded::<LogRecord>(cfg.channel_records.max(1));
        let shutdown = Shutdown::new();
        // Open files first: nothing is started if one is missing.
        let mut opened: Vec<(String, Box<dyn std::io::Read + Send>, Timestamp)> = Vec::new();
        for p in &cfg.files {
            if p.as_os_str() == "-" {
                opened.push((
                    "stdin".into(),
                    Box::new(std::io::stdin()),
                    zonewatch_syslog::now(),
                ));
                continue;
            }
            let err = |source| LogError::File {
                path: p.display().to_string(),
                source,
            };
            let f = std::fs::File::open(p).map_err(err)?;
            let reference = f
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| Timestamp::from_parts(d.as_secs() as i64, d.subsec_nanos()))
                .unwrap_or_else(zonewatch_syslog::now);
            opened.push((
                format!("file:{}", p.display()),
                Box::new(std::io::BufReader::with_capacity(256 << 10, f)),
                reference,
            ));
        }
        let mut listeners = Vec::new();
        for url in &cfg.listen {
            let err = |source| LogError::Listen {
                url: url.clone(),
                source,
            };
            let spec = ListenSpec::parse(url, cfg.tls.clone()).map_err(err)?;
            let lcfg = ListenerConfig {
                name: url.clone(),
                parse: input_parse(&cfg.listener.parse),
                ..cfg.listener.clone()
            };
            match zonewatch_syslog::spawn(&spec, lcfg, tx.clone(), shutdown.clone()) {
                Ok(l) => listeners.push((url.clone(), l)),
                Err(e) => {
                    shutdown.shutdown();
                    for (_, l) in listeners {
                        l.join();
                    }
                    return Err(err(e));
                }
            }
        }
        let replay = (!opened.is_empty()).then(|| {
            let counters: Vec<(String, Arc<Counters>)> = opened
                .iter()
                .map(|(n, _, _)| (n.clone(), Arc::new(Counters::default())))
                .collect();
            let c2 = counters.clone();
            let (max_frame_bytes, parse) = (
                cfg.listener.max_frame_bytes,
                input_parse(&cfg.listener.parse),
            );
            let sd = shutdown.clone();
            let tx = tx.clone();
            let thread = std::thread::Builder::new()
                .name("zw-log-replay".into())
                .spawn(move || replay_all(opened, &c2, max_frame_bytes, parse, &tx, &sd))
                .expect("spawn replay thread");
            ReplayHandle { counters, thread }
        });
        drop(tx);
        Ok(LogInputs {
            cfg,
            rx,
            shutdown,
            listeners,
            replay,
        })
    }

    /// The listeners' bound addresses (useful with port 0), by URL.
    pub fn local_addrs(&self) -> Vec<(String, SocketAddr)> {
        self.listeners
            .iter()
            .map(|(n, l)| (n.clone(), l.local_addr()))
            .collect()
    }

    /// Whether input ends by itself (files only, no listener).
    pub fn finite(&self) -> bool {
        self.listeners.is_empty()
    }
}

/// Replays the files one after the other on this thread; returns warnings.
fn replay_all(
    files: Vec<(String, Box<dyn std::io::Read + Send>, Timestamp)>,
    counters: &[(String, Arc<Counters>)],
    max_frame_bytes: usize,
    parse: ParseOptions,
    tx: &Sender<LogRecord>,
    sd: &Shutdown,
) -> Vec<String> {
    let mut warnings = Vec::new();
    for ((name, r, reference), (_, c)) in files.into_iter().zip(counters) {
        let rc = ReplayConfig {
            max_frame_bytes,
            parse,
            reference,
        };
        if let Err(e) = zonewatch_syslog::replay(r, &rc, tx, c, sd) {
            let w = format!("{name}: read error: {e}");
            tracing::warn!("{w}");
            warnings.push(w);
        }
        if sd.is_shutdown() {
            break;
        }
    }
    warnings
}

/// Parse options of the listeners and the replay thread: body fields are not extracted
/// there but on the log thread, by [`Engine::process_deferred`], and only for records that a
/// rule reading fields could match (or that match). Records reach the engine, and alerts the
/// output, with the same fields as if extracted at parse time.
fn input_parse(p: &ParseOptions) -> ParseOptions {
    ParseOptions {
        extract_fields: false,
        ..*p
    }
}

/// The log thread: Sigma over every record until input ends (files) or
/// `stop` is set (then the listeners are shut down and what they had
/// received is still evaluated); then open correlation windows are flushed.
/// Returns warnings (replay read errors).
pub(crate) fn run(
    inputs: LogInputs,
    out: Sender<OutMsg>,
    stop: Arc<AtomicBool>,
    rules: Option<crate::RuleSlot>,
) -> Vec<String> {
    let LogInputs {
        cfg,
        rx,
        shutdown,
        listeners,
        replay,
    } = inputs;
    let mut engine = Engine::new(Arc::clone(&cfg.rules), cfg.limits);
    let mut rules_skipped = cfg.rules_skipped;
    let mut watch = rules.map(crate::reload::Watch::new);
    let conv = Convert {
        include_message: cfg.include_message,
        offset: cfg.offset,
    };
    // The inputs parse without field extraction (`input_parse`): extract here if configured.
    let extract = cfg.listener.parse.extract_fields;
    let process = |e: &mut Engine, rec: &mut LogRecord, m: &mut Vec<SigmaMatch>| {
        if extract {
            e.process_deferred(rec, m);
        } else {
            e.process(rec, m);
        }
    };
    let mut matches: Vec<SigmaMatch> = Vec::new();
    let mut pending: Vec<Event> = Vec::new();
    let mut latency = Latency::new();
    let mut seq = 0u64;
    let mut last_send = Instant::now();
    let mut last_stats = Instant::now();
    let mut stopping: Option<Instant> = None;
    let stats = |engine: &Engine, rules_skipped: u64, latency: &Latency| {
        build_stats(
            &listeners,
            replay.as_ref().map(|r| &r.counters[..]).unwrap_or(&[]),
            engine,
            rules_skipped,
            latency,
        )
    };
    loop {
        // Reloaded Sigma rules take over between records; unchanged
        // correlations keep their windows.
        if let Some((rules, skipped)) = watch.as_mut().and_then(|w| w.poll()?.sigma.clone()) {
            let kept = engine.replace_rules(rules);
            rules_skipped = skipped;
            tracing::info!(
                "reload: sigma rules replaced, {kept} correlation(s) kept their windows"
            );
        }
        match rx.recv_timeout(zonewatch_syslog::POLL) {
            Ok(mut rec) => {
                seq += 1;
                process(&mut engine, &mut rec, &mut matches);
                latency.alerts(&rec, matches.len());
                conv.events(seq, &mut matches, &mut pending);
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        if stopping.is_none() && stop.load(Ordering::Relaxed) {
            shutdown.shutdown();
            stopping = Some(Instant::now());
        }
        // Connection threads end within about POLL of the shutdown; do not
        // wait for a stuck one forever.
        if stopping.is_some_and(|t| t.elapsed() > Duration::from_secs(3)) {
            while let Ok(mut rec) = rx.try_recv() {
                seq += 1;
                process(&mut engine, &mut rec, &mut matches);
                latency.alerts(&rec, matches.len());
                conv.events(seq, &mut matches, &mut pending);
            }
            break;
        }
        let now = Instant::now();
        let stats_due = now.duration_since(last_stats) >= Duration::from_secs(1);
        if !pending.is_empty()
            && (pending.len() >= 256
                || rx.is_empty()
                || now.duration_since(last_send) >= Duration::from_millis(50))
            || stats_due
        {
            let s = stats_due.then(|| Box::new(stats(&engine, rules_skipped, &latency)));
            if stats_due {
                last_stats = now;
            }
            last_send = now;
            if out
                .send(OutMsg::Logs(std::mem::take(&mut pending), s))
                .is_err()
            {
                shutdown.shutdown();
                break;
            }
        }
    }
    shutdown.shutdown();
    engine.flush(&mut matches);
    conv.events(seq + 1, &mut matches, &mut pending);
    let mut warnings = Vec::new();
    let replay_counters = match replay {
        Some(r) => {
            // The receiver is still open here, so a replay blocked on a full
            // channel cannot hang: it sees the shutdown after its send.
            drop(rx);
            warnings = r.thread.join().unwrap_or_default();
            r.counters
        }
        None => Vec::new(),
    };
    let final_stats = build_stats(
        &listeners,
        &replay_counters,
        &engine,
        rules_skipped,
        &latency,
    );
    for (_, l) in listeners {
        l.join();
    }
    if !pending.is_empty() {
        let _ = out.send(OutMsg::Logs(pending, None));
    }
    let _ = out.send(OutMsg::LogsDone(Box::new(final_stats)));
    warnings
}

/// Receive → alert latency of records from network listeners (µs).
struct Latency(hdrhistogram::Histogram<u64>);

impl Latency {
    /// Largest recorded latency: one hour.
    const MAX_US: u64 = 3_600_000_000;

    fn new() -> Latency {
        Latency(
            hdrhistogram::Histogram::new_with_bounds(1, Self::MAX_US, 2)
                .expect("valid histogram bounds"),
        )
    }

    /// Records `alerts` alerts raised by `rec` now. Replayed records (no
    /// peer address; `received` is the record's own time) are not timed.
    fn alerts(&mut self, rec: &LogRecord, alerts: usize) {
        if alerts == 0 || rec.source.is_none() {
            return;
        }
        let ns = zonewatch_syslog::now().0.saturating_sub(rec.received.0);
        let us = (ns.max(0) as u64 / 1000).clamp(1, Self::MAX_US);
        let _ = self.0.record_n(us, alerts as u64);
    }

    fn json(&self) -> Value {
        let h = &self.0;
        json!({
            "count": h.len(),
            "p50": h.value_at_quantile(0.5),
            "p99": h.value_at_quantile(0.99),
            "max": h.max(),
        })
    }
}

/// `syslog` and `sigma` sections of the stats event.
fn build_stats(
    listeners: &[(String, Listener)],
    replay: &[(String, Arc<Counters>)],
    engine: &Engine,
    rules_skipped: u64,
    latency: &Latency,
) -> Value {
    let mut per = Map::new();
    let mut totals = [0u64; 12];
    let all = listeners
        .iter()
        .map(|(n, l)| (n, l.counters()))
        .chain(replay.iter().map(|(n, c)| (n, Arc::clone(c))));
    for (name, c) in all {
        let s = c.snapshot();
        for (t, v) in totals.iter_mut().zip([
            s.received,
            s.parsed,
            s.truncated,
            s.dropped,
            s.bytes,
            s.connections_refused,
            s.refused_per_source,
            s.fd_exhausted,
            s.frame_timeouts,
            s.memcap_closed,
            s.oversize_counts,
            s.discarded_bytes,
        ]) {
            *t += v;
        }
        per.insert(
            name.clone(),
            json!({
                "received": s.received,
                "bytes": s.bytes,
                "parsed": s.parsed,
                "no_timestamp": s.no_timestamp,
                "truncated": s.truncated,
                "discarded_bytes": s.discarded_bytes,
                "oversize_counts": s.oversize_counts,
                "dropped": s.dropped,
                "connections": s.connections,
                "connections_refused": s.connections_refused,
                "refused_per_source": s.refused_per_source,
                "fd_exhausted": s.fd_exhausted,
                "frame_timeouts": s.frame_timeouts,
                "memcap_closed": s.memcap_closed,
                "buffered_bytes": s.buffered_bytes,
                "connections_open": s.connections_open,
                "idle_closed": s.idle_closed,
                "tls_errors": s.tls_errors,
                "read_errors": s.read_errors,
            }),
        );
    }
    let e = engine.stats();
    let rules = engine.rules();
    json!({
        "syslog": {
            "received": totals[0],
            "parsed": totals[1],
            "truncated": totals[2],
            "dropped": totals[3],
            "bytes": totals[4],
            "refused": totals[5],
            "refused_per_source": totals[6],
            "fd_exhausted": totals[7],
            "frame_timeouts": totals[8],
            "memcap_closed": totals[9],
            "oversize_counts": totals[10],
            "discarded_bytes": totals[11],
            "inputs": per,
        },
        "sigma": {
            "rules_loaded": (rules.detections.len() + rules.correlations.len()) as u64,
            "rules_inactive": rules.inactive as u64,
            "rules_skipped": rules_skipped,
            "records": e.records,
            "matches": e.detection_matches,
            "correlation_alerts": e.correlation_alerts,
            "correlation_evictions": e.groups_evicted,
            "correlation_missing_group_field": e.missing_group_field,
            "correlation_groups_open": e.groups_open,
            "latency_us": latency.json(),
        },
    })
}

/// Turns Sigma matches into alert events.
struct Convert {
    include_message: bool,
    offset: UtcOffset,
}

impl Convert {
    fn events(&self, pos: u64, matches: &mut Vec<SigmaMatch>, out: &mut Vec<Event>) {
        for (k, m) in matches.drain(..).enumerate() {
            let key = EventKey {
                pos,
                sub: LOG_SUB + k as u64,
            };
            out.push(self.event(m, key));
        }
    }

    fn event(&self, m: SigmaMatch, key: EventKey) -> Event {
        let ip = |name: &str| {
            m.record
                .as_ref()
                .and_then(|r| r.field(name))
                .and_then(|v| v.trim().parse::<IpAddr>().ok())
        };
        let group_ip = || {
            m.correlation.as_ref().and_then(|c| {
                c.group
                    .iter()
                    .find_map(|(_, v)| v.trim().parse::<IpAddr>().ok())
            })
        };
        let src = ip("src_ip").or_else(group_ip);
        let dest = ["dest_ip", "dst_ip", "dst", "DST"]
            .iter()
            .find_map(|n| ip(n))
            .filter(|d| src.is_some_and(|s| s.is_ipv4() == d.is_ipv4()));
        let addr = src.map(|s| AddrInfo {
            src_ip: s,
            src_port: None,
            dest_ip: dest.unwrap_or(match s {
                IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            }),
            dest_port: None,
            proto: 0,
            vlan: [0, 0],
        });
        let mut metadata = vec![
            ("sigma_id".to_string(), m.rule_id.clone()),
            ("sigma_level".to_string(), m.level.as_str().to_string()),
        ];
        metadata.extend(m.tags.iter().map(|t| ("tags".to_string(), t.clone())));
        let evidence = self.evidence(&m);
        let log = m.record.as_ref().map(|r| Box::new(self.log(r)));
        Event {
            key,
            ts: m.timestamp,
            flow_id: None,
            addr,
            community_id: None,
            in_iface: None,
            body: EventBody::Alert(Box::new(AlertRecord {
                rule: AlertRecord::NOT_A_SIGNATURE,
                rule_action: "alert",
                gid: 1,
                signature_id: sigma_sid(&m.rule_id),
                rev: 1,
                signature: Arc::from(m.title.as_str()),
                category: Arc::from(category(&m.tags).as_str()),
                severity: m.severity,
                metadata: Arc::from(metadata),
                stream: false,
                to_server: None,
                pcap_cnt: None,
                target_dest: None,
                icmp: None,
                evidence: Some(Box::new(evidence)),
                app: None,
                bytes: None,
                log,
            })),
        }
    }

    fn evidence(&self, m: &SigmaMatch) -> Value {
        let mut sigma = Map::new();
        sigma.insert("rule_id".into(), m.rule_id.clone().into());
        sigma.insert("level".into(), m.level.as_str().into());
        sigma.insert("tags".into(), m.tags.clone().into());
        if let Some(c) = &m.correlation {
            let group: Map<String, Value> = c
                .group
                .iter()
                .map(|(k, v)| (k.clone(), Value::from(v.clone())))
                .collect();
            sigma.insert(
                "correlation".into(),
                json!({
                    "type": c.kind.as_str(),
                    "group": group,
                    "count": c.count,
                    "window_start": c.window_start.to_eve(self.offset),
                    "window_end": c.window_end.to_eve(self.offset),
                    "rules": c.rules,
                }),
            );
        }
        let mut ev = Map::new();
        ev.insert("sigma".into(), Value::Object(sigma));
        Value::Object(ev)
    }

    fn log(&self, r: &LogRecord) -> Value {
        let mut o = Map::new();
        o.insert("timestamp".into(), r.timestamp.to_eve(self.offset).into());
        let format = match r.format {
            zonewatch_syslog::Format::Rfc3164 => "rfc3164",
            zonewatch_syslog::Format::Rfc5424 => "rfc5424",
            zonewatch_syslog::Format::Plain => "plain",
        };
        o.insert("format".into(), format.into());
        o.insert("facility".into(), r.facility_name().into());
        o.insert("severity".into(), r.severity_name().into());
        for (k, v) in [
            ("hostname", &r.hostname),
            ("program", &r.app_name),
            ("pid", &r.procid),
            ("msgid", &r.msgid),
        ] {
            if let Some(v) = v {
                o.insert(k.into(), v.clone().into());
            }
        }
        if let Some(s) = r.source {
            o.insert("source".into(), s.to_string().into());
        }
        if !r.fields.is_empty() {
            let mut f = Map::new();
            for (k, v) in &r.fields {
                f.entry(k.clone()).or_insert_with(|| Value::from(v.clone()));
            }
            o.insert("fields".into(), Value::Object(f));
        }
        if self.include_message {
            o.insert("raw".into(), r.message.clone().into());
        }
        Value::Object(o)
    }
}

/// `signature_id` of a Sigma rule: stable across runs and machines. Two rule
/// ids can share one (a 1-in-10^9 chance per pair); the rule id itself is in
/// `alert.metadata.sigma_id` and `evidence.sigma.rule_id`.
pub fn sigma_sid(rule_id: &str) -> u64 {
    let mut h: u32 = 0x811c_9dc5;
    for b in rule_id.trim().bytes() {
        h ^= b.to_ascii_lowercase() as u32;
        h = h.wrapping_mul(0x0100_0193);
    }
    SIGMA_SID_BASE + (h as u64 % 1_000_000_000)
}

/// `alert.category` of a Sigma alert: `Log: <ATT&CK tactic>` from the first
/// `attack.<tactic>` tag (e.g. `Log: credential-access`), else `Log: sigma`.
fn category(tags: &[String]) -> String {
    let tactic = tags.iter().find_map(|t| {
        let rest = t.strip_prefix("attack.")?;
        let technique = rest.len() > 1
            && matches!(rest.as_bytes()[0], b't' | b'T' | b'g' | b'G' | b's' | b'S')
            && rest.as_bytes()[1].is_ascii_digit();
        (!technique && !rest.is_empty()).then(|| rest.replace('_', "-"))
    });
    format!("Log: {}", tactic.as_deref().unwrap_or("sigma"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sids_are_stable_and_in_range() {
        let a = sigma_sid("6f1b8c62-2a0e-4c1e-9b43-3f7d2f1a0010");
        assert_eq!(a, sigma_sid("6F1B8C62-2A0E-4C1E-9B43-3F7D2F1A0010"));
        assert!((SIGMA_SID_BASE..SIGMA_SID_BASE + 1_000_000_000).contains(&a));
        assert_ne!(a, sigma_sid("6f1b8c62-2a0e-4c1e-9b43-3f7d2f1a0011"));
    }

    #[test]
    fn latency_times_network_records_only() {
        let mut l = Latency::new();
        let replayed = LogRecord {
            received: Timestamp::from_parts(1_000, 0),
            ..LogRecord::default()
        };
        l.alerts(&replayed, 3);
        assert_eq!(l.json()["count"], 0);
        let received = zonewatch_syslog::now();
        let net = LogRecord {
            received,
            source: Some("127.0.0.1:514".parse().unwrap()),
            ..LogRecord::default()
        };
        l.alerts(&net, 0);
        l.alerts(&net, 2);
        let j = l.json();
        assert_eq!(j["count"], 2);
        // Two significant digits: a recorded value may read up to 1 % higher.
        let waited_us = (zonewatch_syslog::now().0 - received.0) as u64 / 1000;
        assert!(j["max"].as_u64().unwrap() <= waited_us + waited_us / 50 + 2);
        assert!(j["p50"].as_u64().unwrap() >= 1);
    }

    #[test]
    fn category_names_the_tactic() {
        let t = |v: &[&str]| category(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(
            t(&["attack.t1110", "attack.credential_access"]),
            "Log: credential-access"
        );
        assert_eq!(t(&["attack.t1110.001"]), "Log: sigma");
        assert_eq!(t(&[]), "Log: sigma");
    }
}
