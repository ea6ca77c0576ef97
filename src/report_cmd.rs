//! `zonewatch report`: one self-contained HTML page (inline SVG charts, no script, no
//! external fetch) and the same figures in `report.json`, from EVE files (`--input`) or
//! the Kafka topics (`--kafka`), for one tenant or for every tenant. A per-tenant report
//! holds only that tenant's events; an incident spanning tenants shows the reader's own
//! tenant and how many others, never their names, sensors or counts.

use anyhow::{bail, Context as _};
use clap::Args;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, Read};
use std::path::PathBuf;
use zonewatch_aggregate::parse_timestamp;

/// `zonewatch report` options.
#[derive(Args, Clone)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["kafka", "input"])))]
pub struct ReportArgs {
    /// Read the alert, stats and incident topics (from their beginning to their end at
    /// start) from these brokers; TLS/SASL and topic names from the `kafka:` section.
    #[arg(
        long,
        value_name = "BROKERS",
        conflicts_with = "input",
        required_unless_present = "input"
    )]
    kafka: Option<String>,
    /// EVE JSON lines files (sensor outputs, incident dumps); repeatable.
    #[arg(long, value_name = "FILE", num_args = 1..)]
    input: Vec<PathBuf>,
    /// Only this tenant's events (and the incidents that involve it).
    #[arg(long, value_name = "CODE")]
    tenant: Option<String>,
    /// Only events at or after this time (EVE or RFC 3339 timestamp).
    #[arg(long, value_name = "T")]
    since: Option<String>,
    /// Only events before this time.
    #[arg(long, value_name = "T")]
    until: Option<String>,
    /// Directory for index.html and report.json (created if missing).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Configuration file (the `kafka:` section, with --kafka).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Override a configuration key.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
}

/// Distinct keys kept per ranking (sources, targets, signatures...); beyond, counted as
/// `(other)`, so a flood of spoofed sources cannot exhaust memory.
const MAX_KEYS: usize = 100_000;
/// Lines longer than this are skipped (counted).
const MAX_LINE: usize = 1 << 20;
const TOP: usize = 10;

#[derive(Default)]
struct Ranking(HashMap<String, u64>);

impl Ranking {
    fn add(&mut self, k: &str) {
        if let Some(v) = self.0.get_mut(k) {
            *v += 1;
        } else if self.0.len() < MAX_KEYS {
            self.0.insert(k.to_string(), 1);
        } else {
            *self.0.entry("(other)".into()).or_insert(0) += 1;
        }
    }

    fn top(&self, n: usize) -> Vec<(String, u64)> {
        let mut v: Vec<(String, u64)> = self.0.iter().map(|(k, c)| (k.clone(), *c)).collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        v.truncate(n);
        v
    }
}

#[derive(Default)]
struct SensorHealth {
    tenant: String,
    last_us: i64,
    stats_events: u64,
    packets: u64,
    dropped: u64,
    spool_backlog_bytes: u64,
    kafka_latency_p99_us: u64,
}

/// What the report counts, filled event by event.
#[derive(Default)]
pub(crate) struct Report {
    tenant: Option<String>,
    since_us: Option<i64>,
    until_us: Option<i64>,
    events: u64,
    skipped: u64,
    /// Kafka messages refused as the aggregator refuses them (forged tenant or sensor).
    pub(crate) refused: u64,
    alerts: u64,
    /// Alerts per minute (index: minute since the epoch), by severity 1..=4 (4: 4 and up).
    per_minute: BTreeMap<i64, [u64; 4]>,
    signatures: Ranking,
    categories: Ranking,
    sources: Ranking,
    targets: Ranking,
    zones: Ranking,
    incidents: BTreeMap<String, Value>,
    sensors: BTreeMap<String, SensorHealth>,
}

fn counter(v: &Value, path: &[&str]) -> u64 {
    path.iter()
        .try_fold(v, |v, k| v.get(k))
        .and_then(Value::as_u64)
        .unwrap_or(0)
}

impl Report {
    /// Takes one line of EVE JSON; false when it was skipped (not JSON, no time).
    fn line(&mut self, line: &str) -> bool {
        if line.len() > MAX_LINE {
            self.skipped += 1;
            return false;
        }
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            self.skipped += 1;
            return false;
        };
        let Some(t) = v["timestamp"].as_str().and_then(parse_timestamp) else {
            self.skipped += 1;
            return false;
        };
        self.event(&v, t);
        true
    }

    fn event(&mut self, v: &Value, t: i64) {
        if self.since_us.is_some_and(|s| t < s) || self.until_us.is_some_and(|u| t >= u) {
            return;
        }
        let tenant = v["tenant"].as_str().unwrap_or("");
        match v["event_type"].as_str() {
            Some("incident") => return self.incident(v),
            _ if self.tenant.as_deref().is_some_and(|want| want != tenant) => return,
            Some("alert") => self.alert(v, t),
            Some("stats") => self.stats(v, t, tenant),
            _ => {}
        }
        self.events += 1;
    }

    fn alert(&mut self, v: &Value, t: i64) {
        self.alerts += 1;
        let sev = v["alert"]["severity"].as_u64().unwrap_or(3).clamp(1, 4) as usize;
        self.per_minute.entry(t.div_euclid(60_000_000)).or_default()[sev - 1] += 1;
        let named = |k: &str| match v["alert"][k].as_str() {
            Some(s) if !s.is_empty() => s.to_string(),
            _ => "(none)".to_string(),
        };
        self.signatures.add(&named("signature"));
        self.categories.add(&named("category"));
        if let Some(s) = v["src_ip"].as_str() {
            self.sources.add(s);
        }
        if let Some(d) = v["dest_ip"].as_str() {
            self.targets.add(d);
        }
        for z in ["src_zone", "dest_zone"] {
            if let Some(z) = v[z].as_str() {
                self.zones.add(z);
            }
        }
    }

    fn stats(&mut self, v: &Value, t: i64, tenant: &str) {
        let Some(sensor) = v["host"].as_str() else {
            return;
        };
        let s = &v["stats"];
        let h = self.sensors.entry(sensor.to_string()).or_default();
        h.stats_events += 1;
        if t >= h.last_us {
            h.last_us = t;
            h.tenant = tenant.to_string();
            let live = counter(s, &["capture", "kernel_packets"]);
            h.packets = if live > 0 {
                live
            } else {
                counter(s, &["decoder", "pkts"])
            };
            h.dropped = counter(s, &["capture", "kernel_drops"])
                + counter(s, &["capture", "kernel_ifdrops"])
                + counter(s, &["pipeline", "queue_drops"]);
            h.spool_backlog_bytes = counter(s, &["kafka", "spool_backlog_bytes"]);
            h.kafka_latency_p99_us = counter(s, &["kafka", "latency", "p99_us"]);
        }
    }

    /// Keeps the latest event of each incident; for a per-tenant report only incidents
    /// involving the tenant, with the other tenants reduced to a count.
    fn incident(&mut self, v: &Value) {
        let inc = &v["incident"];
        let Some(id) = inc["id"].as_str() else {
            return;
        };
        let tenants: Vec<&str> = inc["tenants"]
            .as_array()
            .map_or(Vec::new(), |a| a.iter().filter_map(Value::as_str).collect());
        let mut row = json!({
            "id": id,
            "kind": inc["kind"],
            "state": inc["state"],
            "seq": inc["seq"],
            "severity": inc["severity"],
            "first_seen": inc["first_seen"],
            "last_seen": inc["last_seen"],
        });
        if let Some(src) = inc["src_ip"].as_str() {
            row["src_ip"] = src.into();
        }
        match &self.tenant {
            Some(want) => {
                if !tenants.contains(&want.as_str()) {
                    return;
                }
                row["tenants"] = json!([want]);
                row["other_tenants"] = (tenants.len() - 1).into();
                if tenants.len() == 1 {
                    row["alert_count"] = inc["alert_count"].clone();
                    row["sensors"] = inc["sensors"].clone();
                }
            }
            None => {
                row["tenants"] = json!(tenants);
                row["other_tenants"] = 0.into();
                row["alert_count"] = inc["alert_count"].clone();
                row["sensors"] = inc["sensors"].clone();
            }
        }
        let newer = self
            .incidents
            .get(id)
            .is_none_or(|old| old["seq"].as_u64() <= inc["seq"].as_u64());
        if newer {
            self.incidents.insert(id.to_string(), row);
        }
        self.events += 1;
    }
}

/// A bucket width that gives at most 60 bars over `span_min` minutes.
fn bucket_minutes(span_min: i64) -> i64 {
    [1, 5, 15, 60, 360, 1440, 10_080]
        .into_iter()
        .find(|w| span_min / w < 60)
        .unwrap_or(43_200)
}

fn eve(us: i64) -> String {
    zonewatch_aggregate::eve_time(us)
}

fn ranking_json(r: &Ranking, key: &str) -> Value {
    r.top(TOP)
        .into_iter()
        .map(|(k, c)| json!({ key: k, "count": c }))
        .collect()
}

impl Report {
    /// The report's figures (report.json; the HTML page draws the same).
    fn to_json(&self) -> Value {
        let first = self.per_minute.keys().next().copied().unwrap_or(0);
        let last = self.per_minute.keys().last().copied().unwrap_or(0);
        let width = bucket_minutes(last - first + 1);
        let mut buckets: BTreeMap<i64, [u64; 4]> = BTreeMap::new();
        for (m, c) in &self.per_minute {
            let b = buckets
                .entry(m - (m - first).rem_euclid(width))
                .or_default();
            for i in 0..4 {
                b[i] += c[i];
            }
        }
        let over_time: Vec<Value> = buckets
            .iter()
            .map(|(m, c)| json!({"start": eve(m * 60_000_000), "severity_1": c[0], "severity_2": c[1], "severity_3": c[2], "severity_4": c[3]}))
            .collect();
        let sensors: Vec<Value> = self
            .sensors
            .iter()
            .map(|(name, h)| {
                json!({"sensor": name, "tenant": h.tenant, "last_seen": eve(h.last_us), "stats_events": h.stats_events,
                       "packets": h.packets, "dropped": h.dropped, "spool_backlog_bytes": h.spool_backlog_bytes,
                       "kafka_latency_p99_us": h.kafka_latency_p99_us})
            })
            .collect();
        let incidents: Vec<&Value> = self.incidents.values().collect();
        json!({
            "generator": "zonewatch report",
            "scope": {
                "tenant": self.tenant,
                "since": self.since_us.map(eve),
                "until": self.until_us.map(eve),
            },
            "totals": {"events": self.events, "alerts": self.alerts, "incidents": self.incidents.len(), "skipped_lines": self.skipped, "refused_messages": self.refused},
            "alerts_over_time": {"bucket_minutes": width, "buckets": over_time},
            "top_signatures": ranking_json(&self.signatures, "signature"),
            "top_categories": ranking_json(&self.categories, "category"),
            "top_sources": ranking_json(&self.sources, "ip"),
            "top_targets": ranking_json(&self.targets, "ip"),
            "zones": ranking_json(&self.zones, "zone"),
            "incidents": incidents,
            "sensors": sensors,
        })
    }
}

/// Reads EVE lines files into the report, with a progress line every 100,000 lines.
fn read_files(r: &mut Report, files: &[PathBuf]) -> anyhow::Result<()> {
    let (mut n, mut said_at) = (0u64, 0u64);
    for f in files {
        let file = std::fs::File::open(f).with_context(|| format!("{}", f.display()))?;
        let mut reader = std::io::BufReader::new(file);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            let got = reader
                .by_ref()
                .take(MAX_LINE as u64 + 1)
                .read_until(b'\n', &mut buf)
                .with_context(|| format!("{}", f.display()))?;
            if got == 0 {
                break;
            }
            if buf.len() > MAX_LINE && buf.last() != Some(&b'\n') {
                // An over-long line: skip to its end.
                r.skipped += 1;
                let mut rest = Vec::new();
                reader.read_until(b'\n', &mut rest)?;
                continue;
            }
            let line = String::from_utf8_lossy(&buf);
            let line = line.trim();
            if !line.is_empty() {
                r.line(line);
            }
            n += 1;
            if n >= said_at + 100_000 {
                said_at = n;
                crate::say(
                    crate::Say::Info,
                    format_args!("report: {n} lines read ({})", f.display()),
                );
            }
        }
    }
    Ok(())
}

fn time_arg(s: &Option<String>, what: &str) -> anyhow::Result<Option<i64>> {
    match s {
        None => Ok(None),
        Some(t) => match parse_timestamp(t) {
            Some(us) => Ok(Some(us)),
            None => bail!("--{what} {t:?}: not a timestamp (e.g. 2026-11-25T20:30:45.000000+0900 or 2026-11-25T11:30:45Z)"),
        },
    }
}

/// Writes DIR/report.json and DIR/index.html.
pub fn report(a: ReportArgs) -> anyhow::Result<i32> {
    let mut r = Report {
        tenant: a.tenant.clone(),
        since_us: time_arg(&a.since, "since")?,
        until_us: time_arg(&a.until, "until")?,
        ..Report::default()
    };
    match &a.kafka {
        Some(brokers) => crate::report_kafka::read(&mut r, brokers, &a.config, &a.set)?,
        None => read_files(&mut r, &a.input)?,
    }
    let data = r.to_json();
    std::fs::create_dir_all(&a.out).with_context(|| format!("{}", a.out.display()))?;
    let json_path = a.out.join("report.json");
    std::fs::write(&json_path, serde_json::to_string_pretty(&data)? + "\n")
        .with_context(|| format!("{}", json_path.display()))?;
    let html_path = a.out.join("index.html");
    std::fs::write(&html_path, crate::report_html::page(&data))
        .with_context(|| format!("{}", html_path.display()))?;
    crate::say(
        crate::Say::Info,
        format_args!(
            "report: {} events ({} alerts, {} incidents, {} lines skipped) -> {}",
            r.events,
            r.alerts,
            r.incidents.len(),
            r.skipped,
            html_path.display()
        ),
    );
    Ok(0)
}

impl Report {
    /// Takes one Kafka message value (same rules as a line of a file).
    pub(crate) fn message(&mut self, value: &[u8]) {
        match std::str::from_utf8(value) {
            Ok(s) => {
                self.line(s);
            }
            Err(_) => self.skipped += 1,
        }
    }
}
