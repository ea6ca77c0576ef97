//! zonewatch's Prometheus endpoint: the counters of the `stats` event (and a
//! few values only the running process has: queue depths, the processing
//! latency histogram, rules loaded, build info, uptime) in the Prometheus
//! text format, served at `GET /metrics` by [`Metrics::serve`].
//!
//! The output thread publishes a [`Snapshot`] at most once a second
//! ([`Metrics::publish`]); a scrape renders the latest one. Rendering
//! happens on the server's thread, so an idle endpoint costs the pipeline
//! one stats object a second and nothing else.
//!
//! How stats names become metric names: the `names` module and
//! `docs/metrics.md`.
#![deny(missing_docs)]

mod http;
mod names;
mod text;

pub use http::{CONTENT_TYPE, MAX_REQUEST, REQUEST_DEADLINE};
pub use names::{add_stats, example_stats};
pub use text::{Families, Kind, Num};

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

/// Upper bounds (seconds) of the latency histograms' buckets, `+Inf` aside.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0,
];

/// A Prometheus histogram.
#[derive(Debug, Clone)]
pub struct Histogram {
    /// Metric name (ends in the unit, e.g. `_seconds`).
    pub name: &'static str,
    /// Help text.
    pub help: &'static str,
    /// (upper bound, observations at or below it), ascending; `+Inf` is
    /// added from `count`.
    pub buckets: Vec<(f64, u64)>,
    /// Sum of the observations.
    pub sum: f64,
    /// Number of observations.
    pub count: u64,
}

impl Histogram {
    /// From an hdrhistogram of microseconds, with [`LATENCY_BUCKETS`] in
    /// seconds. Bucket bounds and the sum are as exact as the hdrhistogram
    /// (its significant digits).
    pub fn from_micros(
        name: &'static str,
        help: &'static str,
        h: &hdrhistogram::Histogram<u64>,
    ) -> Histogram {
        let mut counts = vec![0u64; LATENCY_BUCKETS.len()];
        for v in h.iter_recorded() {
            let us = h.lowest_equivalent(v.value_iterated_to());
            let secs = us as f64 / 1e6;
            if let Some(i) = LATENCY_BUCKETS.iter().position(|b| secs <= *b) {
                counts[i] += v.count_at_value();
            }
        }
        let mut cum = 0;
        let buckets = LATENCY_BUCKETS
            .iter()
            .zip(counts)
            .map(|(b, c)| {
                cum += c;
                (*b, cum)
            })
            .collect();
        Histogram {
            name,
            help,
            buckets,
            sum: if h.is_empty() {
                0.0
            } else {
                h.mean() * h.len() as f64 / 1e6
            },
            count: h.len(),
        }
    }
}

/// A gauge only the running process knows (not in the stats event).
#[derive(Debug, Clone)]
pub struct Gauge {
    /// Metric name.
    pub name: &'static str,
    /// Help text.
    pub help: &'static str,
    /// Labels.
    pub labels: Vec<(&'static str, String)>,
    /// Value.
    pub value: f64,
}

/// What the output thread publishes.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// The stats object, as in a `stats` event.
    pub stats: serde_json::Value,
    /// Histograms the stats object only has percentiles of.
    pub histograms: Vec<Histogram>,
    /// Gauges that are not in the stats object (queue depths).
    pub gauges: Vec<Gauge>,
}

/// The shared slot between the output thread and the endpoint; cheap to
/// clone.
#[derive(Clone)]
pub struct Metrics(Arc<Inner>);

struct Inner {
    version: String,
    start_unix: f64,
    start: Instant,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    snapshot: Option<(Arc<Snapshot>, Instant)>,
    /// kind → (loaded, skipped)
    rules: BTreeMap<String, (u64, u64)>,
}

impl Metrics {
    /// A slot for a process of this version, started now.
    pub fn new(version: &str) -> Metrics {
        Metrics(Arc::new(Inner {
            version: version.to_string(),
            start_unix: SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0),
            start: Instant::now(),
            state: Mutex::new(State::default()),
        }))
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.0.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Replaces the published snapshot.
    pub fn publish(&self, s: Snapshot) {
        let new = Some((Arc::new(s), Instant::now()));
        // The old snapshot is dropped after the lock is released.
        let _old = std::mem::replace(&mut self.state().snapshot, new);
    }

    /// Records how many rules of a kind (`signatures`, `detectors`, ...)
    /// were loaded and skipped. Sigma's come from the stats object.
    pub fn set_rules(&self, kind: &str, loaded: u64, skipped: u64) {
        self.state()
            .rules
            .insert(kind.to_string(), (loaded, skipped));
    }

    /// The exposition text of the latest snapshot.
    pub fn render(&self) -> String {
        let (snap, rules) = {
            let st = self.state();
            (st.snapshot.clone(), st.rules.clone())
        };
        let mut f = Families::default();
        let i = &self.0;
        f.add(
            "zonewatch_build_info",
            Kind::Gauge,
            "The running zonewatch's version (value 1).",
            "",
            vec![("version".into(), i.version.clone())],
            Num::U(1),
        );
        f.add(
            "zonewatch_start_time_seconds",
            Kind::Gauge,
            "When the process started, in seconds since the Unix epoch.",
            "",
            vec![],
            Num::F(i.start_unix),
        );
        f.add(
            "zonewatch_uptime_seconds",
            Kind::Gauge,
            "Seconds since the process started. Stats: uptime.",
            "",
            vec![],
            Num::F(i.start.elapsed().as_secs_f64()),
        );
        let mut rules: Vec<(String, (u64, u64))> = rules.into_iter().collect();
        if let Some((s, _)) = &snap {
            let g = |k: &str| s.stats.get("sigma")?.get(k)?.as_u64();
            if let Some(l) = g("rules_loaded") {
                rules.push(("sigma".into(), (l, g("rules_skipped").unwrap_or(0))));
            }
        }
        for (kind, (loaded, skipped)) in rules {
            let l = vec![("kind".to_string(), kind)];
            f.add(
                "zonewatch_rules_loaded",
                Kind::Gauge,
                "Rules in use, by kind (signatures, detectors, sigma).",
                "",
                l.clone(),
                Num::U(loaded),
            );
            f.add(
                "zonewatch_rules_skipped",
                Kind::Gauge,
                "Rules skipped at load (each logged with file:line and reason), by kind.",
                "",
                l,
                Num::U(skipped),
            );
        }
        if let Some((s, at)) = &snap {
            f.add(
                "zonewatch_stats_age_seconds",
                Kind::Gauge,
                "Seconds since the output thread published these values (at most about 1 s; growing: the output thread is stuck, e.g. on a blocked output).",
                "",
                vec![],
                Num::F(at.elapsed().as_secs_f64()),
            );
            add_snapshot(s, &mut f);
        }
        f.render()
    }

    /// Serves `GET /metrics` on `addr` from a thread of its own until the
    /// process ends; the bound address (port 0 picks a free one).
    pub fn serve(&self, addr: SocketAddr) -> std::io::Result<SocketAddr> {
        let m = self.clone();
        http::serve(addr, Box::new(move || m.render()))
    }
}

fn add_snapshot(s: &Snapshot, f: &mut Families) {
    add_stats(&s.stats, f);
    for h in &s.histograms {
        for (le, c) in &h.buckets {
            f.add(
                h.name,
                Kind::Histogram,
                h.help,
                "_bucket",
                vec![("le".into(), fmt_f64(*le))],
                Num::U(*c),
            );
        }
        f.add(
            h.name,
            Kind::Histogram,
            h.help,
            "_bucket",
            vec![("le".into(), "+Inf".into())],
            Num::U(h.count),
        );
        f.add(
            h.name,
            Kind::Histogram,
            h.help,
            "_sum",
            vec![],
            Num::F(h.sum),
        );
        f.add(
            h.name,
            Kind::Histogram,
            h.help,
            "_count",
            vec![],
            Num::U(h.count),
        );
    }
    for g in &s.gauges {
        f.add(
            g.name,
            Kind::Gauge,
            g.help,
            "",
            g.labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
            Num::F(g.value),
        );
    }
}

fn fmt_f64(v: f64) -> String {
    let mut s = String::new();
    Num::F(v).write_to(&mut s);
    s
}

/// The metrics of a stats object alone (no process values, histograms or
/// gauges): what an endpoint serving `stats` would show for its counters.
pub fn render_stats(stats: &serde_json::Value) -> String {
    let mut f = Families::default();
    add_stats(stats, &mut f);
    f.render()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_from_micros() {
        let mut h = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
        for us in [40, 50, 60, 1_000, 2_000_000, 30_000_000] {
            h.record(us).unwrap();
        }
        let p = Histogram::from_micros("x_seconds", "x", &h);
        let b: BTreeMap<String, u64> = p.buckets.iter().map(|(l, c)| (fmt_f64(*l), *c)).collect();
        assert_eq!(b["0.00005"], 2);
        assert_eq!(b["0.0001"], 3);
        assert_eq!(b["0.001"], 4);
        assert_eq!(b["2.5"], 5);
        assert_eq!(b["10"], 5);
        assert_eq!(p.count, 6);
        assert!((p.sum - 32.00115).abs() < 0.04, "{}", p.sum);
    }

    #[test]
    #[ignore = "prints the metric list for docs/metrics.md"]
    fn print_families() {
        let m = Metrics::new("0.0.0");
        m.publish(Snapshot {
            stats: example_stats(),
            ..Default::default()
        });
        let mut f = Families::default();
        add_stats(&example_stats(), &mut f);
        for (name, kind, help) in f.describe() {
            println!("| `{name}` | {kind:?} | {help} |");
        }
    }

    #[test]
    fn every_example_metric_is_documented() {
        let m = Metrics::new("0.0.0");
        m.set_rules("signatures", 3, 1);
        let mut h = hdrhistogram::Histogram::<u64>::new(3).unwrap();
        h.record(5).unwrap();
        m.publish(Snapshot {
            stats: example_stats(),
            histograms: vec![Histogram::from_micros(
                "zonewatch_pipeline_latency_seconds",
                "h",
                &h,
            )],
            gauges: vec![],
        });
        let text = m.render();
        let doc = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/metrics.md"),
        )
        .expect("docs/metrics.md");
        let mut missing = Vec::new();
        for l in text.lines() {
            if let Some(rest) = l.strip_prefix("# TYPE ") {
                let name = rest.split(' ').next().unwrap();
                // example_stats() names the decoder layers `x`; the real
                // ones are checked by tests/metrics.rs.
                if name != "zonewatch_decoder_x_total" && !doc.contains(&format!("`{name}`")) {
                    missing.push(name.to_string());
                }
            }
        }
        assert!(missing.is_empty(), "not in docs/metrics.md: {missing:?}");
    }

    #[test]
    fn parses_with_a_prometheus_parser() {
        let m = Metrics::new("0.1.0");
        let mut h = hdrhistogram::Histogram::<u64>::new(3).unwrap();
        h.record(70).unwrap();
        m.publish(Snapshot {
            stats: example_stats(),
            histograms: vec![Histogram::from_micros(
                "zonewatch_pipeline_latency_seconds",
                "h",
                &h,
            )],
            gauges: vec![Gauge {
                name: "zonewatch_pipeline_queue_depth",
                help: "q",
                labels: vec![("queue", "worker-0".into())],
                value: 2.0,
            }],
        });
        let text = m.render();
        let lines = text.lines().map(|l| Ok(l.to_string()));
        let s = prometheus_parse::Scrape::parse(lines).expect("parses");
        assert!(s.samples.len() > 100);
        for x in &s.samples {
            // The parser keeps `_sum` and `_count` as samples of their own.
            let family = ["_sum", "_count"]
                .iter()
                .find_map(|suf| x.metric.strip_suffix(suf))
                .filter(|base| s.docs.contains_key(*base))
                .unwrap_or(&x.metric);
            assert!(s.docs.contains_key(family), "no HELP for {}", x.metric);
        }
        let hist = s
            .samples
            .iter()
            .find(|x| x.metric == "zonewatch_pipeline_latency_seconds")
            .expect("histogram");
        match &hist.value {
            prometheus_parse::Value::Histogram(b) => {
                assert_eq!(b.len(), LATENCY_BUCKETS.len() + 1);
                assert_eq!(b[0].count, 0.0);
                assert_eq!(b[1].count, 1.0);
            }
            v => panic!("not a histogram: {v:?}"),
        }
    }
}
