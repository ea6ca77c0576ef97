//! Prometheus text exposition format 0.0.4: metric families with their
//! `# HELP` and `# TYPE` lines, samples grouped under them.

use std::collections::BTreeMap;
use std::fmt::Write;

/// A metric family's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up (restarts from 0 with the process); name ends in `_total`.
    Counter,
    /// A current value.
    Gauge,
    /// Cumulative `_bucket{le=...}` counts, `_sum` and `_count`.
    Histogram,
    /// `{quantile=...}` samples, `_count` (and `_sum` when known).
    Summary,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
            Kind::Summary => "summary",
        }
    }
}

/// A sample value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Num {
    /// Exact integer (counters).
    U(u64),
    /// Anything else (seconds, ratios).
    F(f64),
}

impl Num {
    pub(crate) fn write_to(self, out: &mut String) {
        match self {
            Num::U(v) => {
                let _ = write!(out, "{v}");
            }
            Num::F(v) if v.is_nan() => out.push_str("NaN"),
            Num::F(v) if v == f64::INFINITY => out.push_str("+Inf"),
            Num::F(v) if v == f64::NEG_INFINITY => out.push_str("-Inf"),
            Num::F(v) => {
                let _ = write!(out, "{v}");
            }
        }
    }
}

#[derive(Debug)]
struct Sample {
    /// `""`, `_bucket`, `_sum` or `_count`.
    suffix: &'static str,
    labels: Vec<(String, String)>,
    value: Num,
}

#[derive(Debug)]
struct Family {
    kind: Kind,
    help: String,
    samples: Vec<Sample>,
}

/// Metric families being collected, rendered sorted by name.
#[derive(Debug, Default)]
pub struct Families {
    map: BTreeMap<String, Family>,
}

/// Whether `name` is a valid metric name (`[a-zA-Z_:][a-zA-Z0-9_:]*`).
pub fn valid_name(name: &str) -> bool {
    let mut c = name.chars();
    matches!(c.next(), Some(ch) if ch.is_ascii_alphabetic() || ch == '_' || ch == ':')
        && c.all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == ':')
}

/// `name` with every character a metric name cannot hold replaced by `_`.
pub fn sanitize(name: &str) -> String {
    let mut s: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if s.starts_with(|c: char| c.is_ascii_digit()) {
        s.insert(0, '_');
    }
    s
}

impl Families {
    /// Adds a sample. The first family of a name fixes its type and help; a
    /// sample of another type under the same name, or a second sample with
    /// the same suffix and labels, is left out (a family must be written
    /// once, and a series once).
    pub fn add(
        &mut self,
        name: &str,
        kind: Kind,
        help: &str,
        suffix: &'static str,
        labels: Vec<(String, String)>,
        value: Num,
    ) {
        debug_assert!(valid_name(name), "{name}");
        let f = self.map.entry(name.to_string()).or_insert_with(|| Family {
            kind,
            help: help.to_string(),
            samples: Vec::new(),
        });
        if f.kind != kind {
            return;
        }
        if f.samples
            .iter()
            .any(|s| s.suffix == suffix && s.labels == labels)
        {
            return;
        }
        f.samples.push(Sample {
            suffix,
            labels,
            value,
        });
    }

    /// Whether a family of this name is present.
    pub fn contains(&self, name: &str) -> bool {
        self.map.contains_key(name)
    }

    /// The families' names, types and help texts, sorted by name.
    pub fn describe(&self) -> Vec<(String, Kind, String)> {
        self.map
            .iter()
            .map(|(n, f)| (n.clone(), f.kind, f.help.clone()))
            .collect()
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(self.map.len() * 160);
        for (name, f) in &self.map {
            out.push_str("# HELP ");
            out.push_str(name);
            out.push(' ');
            escape_help(&f.help, &mut out);
            out.push_str("\n# TYPE ");
            out.push_str(name);
            out.push(' ');
            out.push_str(f.kind.as_str());
            out.push('\n');
            for s in &f.samples {
                out.push_str(name);
                out.push_str(s.suffix);
                if !s.labels.is_empty() {
                    out.push('{');
                    for (i, (k, v)) in s.labels.iter().enumerate() {
                        if i > 0 {
                            out.push(',');
                        }
                        out.push_str(k);
                        out.push_str("=\"");
                        escape_label(v, &mut out);
                        out.push('"');
                    }
                    out.push('}');
                }
                out.push(' ');
                s.value.write_to(&mut out);
                out.push('\n');
            }
        }
        out
    }
}

fn escape_help(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

fn escape_label(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' => out.push_str("\\\""),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_groups() {
        let mut f = Families::default();
        f.add(
            "a_total",
            Kind::Counter,
            "back\\slash\nnew line",
            "",
            vec![("input".into(), "tcp://\"x\"\\\n".into())],
            Num::U(3),
        );
        f.add("a_total", Kind::Counter, "other", "", vec![], Num::U(1));
        // Another type under the same name, and a repeated series: left out.
        f.add("a_total", Kind::Gauge, "g", "", vec![], Num::U(9));
        f.add("a_total", Kind::Counter, "x", "", vec![], Num::U(2));
        f.add("b", Kind::Gauge, "g", "", vec![], Num::F(0.25));
        f.add("c", Kind::Gauge, "g", "", vec![], Num::F(f64::INFINITY));
        assert_eq!(
            f.render(),
            "# HELP a_total back\\\\slash\\nnew line\n# TYPE a_total counter\n\
             a_total{input=\"tcp://\\\"x\\\"\\\\\\n\"} 3\na_total 1\n\
             # HELP b g\n# TYPE b gauge\nb 0.25\n# HELP c g\n# TYPE c gauge\nc +Inf\n"
        );
    }

    #[test]
    fn names() {
        assert!(valid_name("zonewatch_a_b_total"));
        assert!(!valid_name("1a"));
        assert!(!valid_name("a-b"));
        assert_eq!(sanitize("dns-tunnel.x"), "dns_tunnel_x");
        assert_eq!(sanitize("9x"), "_9x");
    }
}
