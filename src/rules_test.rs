//! `zonewatch rules test DIR...`: runs rule test cases, each a directory
//! with a `test.yaml` modelled on suricata-verify's: a capture or a log
//! file, the rules, extra `run` options, and the expected events. Each case
//! is one `zonewatch run` of this binary (so it tests exactly what ships),
//! its EVE output compared with the checks. Format: `rules/tests/README.md`.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Instant;
use zonewatch_yamlread::tree::{Kind, Node, Scalar};

#[derive(clap::Args)]
pub(crate) struct RulesTestArgs {
    /// Test case directories (with a test.yaml), or directories holding
    /// them (searched recursively).
    #[arg(required = true, value_name = "DIR")]
    dirs: Vec<PathBuf>,
    /// Output: text (a table, with expected vs actual for failures) or
    /// junit (JUnit XML for CI systems).
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Format {
    Text,
    Junit,
}

/// One expected count of matching events.
struct Check {
    /// 1-based line of the check in test.yaml.
    line: usize,
    /// Field (dotted path) → value every counted event has.
    matches: Vec<(String, Value)>,
    /// Exact count; None: at least one.
    count: Option<u64>,
}

/// A parsed test.yaml.
struct Case {
    name: String,
    file: PathBuf,
    pcap: Option<PathBuf>,
    log: Option<PathBuf>,
    config: Option<PathBuf>,
    rules: Vec<PathBuf>,
    args: Vec<String>,
    checks: Vec<Check>,
}

/// How a case ended.
enum Outcome {
    Pass,
    /// The checks that did not hold, each "expected vs actual".
    Fail(Vec<String>),
    /// The case could not be run (bad test.yaml, run failed).
    Error(String),
}

struct Result_ {
    name: String,
    outcome: Outcome,
    seconds: f64,
}

pub(crate) fn test(a: RulesTestArgs) -> anyhow::Result<i32> {
    let mut files = Vec::new();
    for d in &a.dirs {
        find_cases(d, 0, &mut files);
    }
    files.sort();
    files.dedup();
    if files.is_empty() {
        anyhow::bail!("no test.yaml under the given directories");
    }
    let results: Vec<Result_> = files.iter().map(|f| run_file(f)).collect();
    match a.format {
        Format::Text => print_text(&results),
        Format::Junit => print_junit(&results),
    }
    let ok = results.iter().all(|r| matches!(r.outcome, Outcome::Pass));
    Ok(if ok { 0 } else { 1 })
}

/// test.yaml files at or under `dir` (depth-bounded: a symbolic link loop
/// ends).
fn find_cases(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) {
    let t = dir.join("test.yaml");
    if t.is_file() {
        out.push(t);
        return;
    }
    if depth > 16 {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        if e.path().is_dir() {
            find_cases(&e.path(), depth + 1, out);
        }
    }
}

fn run_file(file: &Path) -> Result_ {
    let started = Instant::now();
    let name = file.parent().and_then(|d| d.file_name()).map_or_else(
        || file.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let outcome = match parse_case(file, name.clone()) {
        Ok(case) => match run_case(&case) {
            Ok(events) => {
                let diffs = evaluate(&case, &events);
                if diffs.is_empty() {
                    Outcome::Pass
                } else {
                    Outcome::Fail(diffs)
                }
            }
            Err(e) => Outcome::Error(e),
        },
        Err(e) => Outcome::Error(e),
    };
    Result_ {
        name,
        outcome,
        seconds: started.elapsed().as_secs_f64(),
    }
}

fn parse_case(file: &Path, name: String) -> Result<Case, String> {
    let bytes = std::fs::read(file).map_err(|e| format!("{}: {e}", file.display()))?;
    parse_text(file, &String::from_utf8_lossy(&bytes), name)
}

fn parse_text(file: &Path, text: &str, name: String) -> Result<Case, String> {
    let at = |line: usize, m: String| format!("{}:{line}: {m}", file.display());
    let docs = zonewatch_yamlread::tree::documents(text, &zonewatch_yamlread::LIMITS)
        .map_err(|e| format!("{}: {e}", file.display()))?;
    let top = docs.into_iter().next().and_then(|d| d.root);
    let Some(Node {
        kind: Kind::Map(top),
        ..
    }) = top
    else {
        return Err(at(
            1,
            "expected a mapping (pcap/log, rules, args, checks)".into(),
        ));
    };
    let dir = file.parent().unwrap_or(Path::new("."));
    let mut case = Case {
        name,
        file: file.to_path_buf(),
        pcap: None,
        log: None,
        config: None,
        rules: Vec::new(),
        args: Vec::new(),
        checks: Vec::new(),
    };
    let mut checks_line = 1;
    for (k, line, v) in &top {
        let key = match k {
            Scalar::Str(s) => s.as_str(),
            _ => "",
        };
        let line = *line;
        let strings = || -> Result<Vec<String>, String> {
            match &v.kind {
                Kind::Scalar(Scalar::Str(s)) => Ok(vec![s.clone()]),
                Kind::Seq(a) => a
                    .iter()
                    .map(|x| match &x.kind {
                        Kind::Scalar(Scalar::Str(s)) => Some(s.clone()),
                        _ => None,
                    })
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| at(line, format!("`{key}`: a list of strings"))),
                _ => Err(at(line, format!("`{key}`: a string or a list of strings"))),
            }
        };
        match key {
            "pcap" => case.pcap = strings()?.first().map(|p| dir.join(p)),
            "log" => case.log = strings()?.first().map(|p| dir.join(p)),
            "config" => case.config = strings()?.first().map(|p| dir.join(p)),
            "rules" => case.rules = strings()?.iter().map(|p| dir.join(p)).collect(),
            // As suricata-verify's: each entry may hold several words.
            "args" => {
                case.args = strings()?
                    .iter()
                    .flat_map(|s| s.split_whitespace().map(str::to_string))
                    .collect()
            }
            "checks" => {
                checks_line = line;
                case.checks = parse_checks(v, line, &at)?
            }
            // Free text for the reader.
            "description" | "requires" => {}
            _ => {
                return Err(at(
                    line,
                    format!(
                        "unknown key `{key}` (pcap, log, config, rules, args, checks, description)"
                    ),
                ))
            }
        }
    }
    if case.pcap.is_none() && case.log.is_none() {
        return Err(at(1, "give `pcap` or `log` (or both)".into()));
    }
    if case.checks.is_empty() {
        return Err(at(
            checks_line,
            "no `checks`: a test must expect something".into(),
        ));
    }
    Ok(case)
}

/// The string key of a mapping entry ("" for other keys).
fn key_str(k: &Scalar) -> &str {
    match k {
        Scalar::Str(s) => s,
        _ => "",
    }
}

/// `checks:` entries: `sid: N`, `sigma: ID` (shorthands for alerts) or
/// suricata-verify's `filter: {count, match: {field: value}}`; `count`
/// beside `sid`/`sigma`. Each check names the line of its list item.
fn parse_checks(
    v: &Node<Scalar>,
    checks_line: usize,
    at: &dyn Fn(usize, String) -> String,
) -> Result<Vec<Check>, String> {
    let Kind::Seq(items) = &v.kind else {
        return Err(at(checks_line, "`checks`: a list".into()));
    };
    let mut out = Vec::new();
    for item in items {
        let line = item.line;
        let Kind::Map(h) = &item.kind else {
            return Err(at(
                line,
                "a check is a mapping (sid, sigma or filter)".into(),
            ));
        };
        let mut c = Check {
            line,
            matches: Vec::new(),
            count: None,
        };
        for (k, _, v) in h {
            match key_str(k) {
                "sid" => {
                    c.matches.push(("event_type".into(), Value::from("alert")));
                    c.matches.push(("alert.signature_id".into(), json_of(v)));
                }
                "sigma" => {
                    c.matches.push(("event_type".into(), Value::from("alert")));
                    c.matches
                        .push(("alert.metadata.sigma_id".into(), json_of(v)));
                }
                "count" => {
                    c.count = Some(count_of(v).ok_or_else(|| at(line, "`count`: a number".into()))?)
                }
                "filter" => parse_filter(v, line, &mut c, at)?,
                other => {
                    return Err(at(
                        line,
                        format!("unknown check key `{other}` (sid, sigma, count, filter)"),
                    ))
                }
            }
        }
        if c.matches.is_empty() {
            return Err(at(line, "a check needs sid, sigma or filter.match".into()));
        }
        out.push(c);
    }
    Ok(out)
}

/// A check's `filter: {count, match: {field: value}}`.
fn parse_filter(
    v: &Node<Scalar>,
    line: usize,
    c: &mut Check,
    at: &dyn Fn(usize, String) -> String,
) -> Result<(), String> {
    let Kind::Map(f) = &v.kind else {
        return Err(at(line, "`filter`: a mapping (count, match)".into()));
    };
    for (fk, _, fv) in f {
        match (key_str(fk), &fv.kind) {
            ("count", _) => {
                c.count = Some(count_of(fv).ok_or_else(|| at(line, "`count`: a number".into()))?)
            }
            ("match", Kind::Map(m)) => {
                for (mk, _, mv) in m {
                    let field = match mk {
                        Scalar::Str(s) => s.clone(),
                        _ => return Err(at(line, "`match` keys are field names".into())),
                    };
                    c.matches.push((field, json_of(mv)));
                }
            }
            (other, _) => {
                return Err(at(
                    line,
                    format!("unknown filter key `{other}` (count, match)"),
                ))
            }
        }
    }
    Ok(())
}

fn count_of(v: &Node<Scalar>) -> Option<u64> {
    match v.scalar()? {
        Scalar::Int(n) => u64::try_from(*n).ok(),
        _ => None,
    }
}

fn json_of(v: &Node<Scalar>) -> Value {
    match &v.kind {
        Kind::Scalar(Scalar::Int(n)) => Value::from(*n),
        Kind::Scalar(Scalar::Real(r)) => r
            .parse::<f64>()
            .map_or(Value::from(r.as_str()), Value::from),
        Kind::Scalar(Scalar::Bool(b)) => Value::from(*b),
        Kind::Scalar(Scalar::Str(s)) => Value::from(s.as_str()),
        Kind::Scalar(Scalar::Null) => Value::Null,
        other => Value::from(format!("{other:?}")),
    }
}

fn run_case(case: &Case) -> Result<Vec<Value>, String> {
    let exe = std::env::current_exe().map_err(|e| format!("own executable: {e}"))?;
    let out = std::env::temp_dir().join(format!(
        "zonewatch-rules-test-{}-{}.json",
        std::process::id(),
        case.name.replace('/', "_")
    ));
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("run")
        .arg("--workers")
        .arg("1")
        .arg("--output")
        .arg(&out);
    if let Some(p) = &case.pcap {
        cmd.arg("--pcap").arg(p);
    }
    if let Some(l) = &case.log {
        cmd.arg("--syslog-file").arg(l);
    }
    if let Some(c) = &case.config {
        cmd.arg("--config").arg(c);
    }
    for r in &case.rules {
        cmd.arg("--rules").arg(r);
    }
    cmd.args(&case.args);
    let o = cmd
        .output()
        .map_err(|e| format!("starting zonewatch run: {e}"))?;
    let text = std::fs::read_to_string(&out).unwrap_or_default();
    let _ = std::fs::remove_file(&out);
    if !o.status.success() {
        let err = String::from_utf8_lossy(&o.stderr);
        return Err(format!(
            "{}: zonewatch run failed ({}): {}",
            case.file.display(),
            o.status,
            err.lines().last().unwrap_or("")
        ));
    }
    text.lines()
        .map(|l| serde_json::from_str(l).map_err(|e| format!("output not JSON: {e}")))
        .collect()
}

/// Whether the event's field at a dotted path is `want` (an array holds it
/// if an element is; numbers and strings compare by their text, as a YAML
/// author writes `src_port: "80"` or `80` alike).
fn field_is(event: &Value, path: &str, want: &Value) -> bool {
    let got = path.split('.').try_fold(event, |v, k| v.get(k));
    let same = |g: &Value| {
        g == want
            || match (g, want) {
                (Value::Number(a), Value::String(b)) | (Value::String(b), Value::Number(a)) => {
                    a.to_string() == *b
                }
                _ => false,
            }
    };
    match got {
        Some(Value::Array(items)) => items.iter().any(same) || same(got.unwrap_or(&Value::Null)),
        Some(g) => same(g),
        None => want.is_null(),
    }
}

/// The checks that do not hold, each as "expected vs actual".
fn evaluate(case: &Case, events: &[Value]) -> Vec<String> {
    let mut diffs = Vec::new();
    for c in &case.checks {
        let n = events
            .iter()
            .filter(|e| c.matches.iter().all(|(p, v)| field_is(e, p, v)))
            .count() as u64;
        let ok = match c.count {
            Some(want) => n == want,
            None => n > 0,
        };
        if !ok {
            let what: Vec<String> = c.matches.iter().map(|(p, v)| format!("{p}={v}")).collect();
            diffs.push(format!(
                "{}:{}: {}: expected {}, got {n}",
                case.file.display(),
                c.line,
                what.join(" "),
                c.count.map_or("at least 1".to_string(), |w| w.to_string()),
            ));
        }
    }
    if !diffs.is_empty() {
        diffs.push(format!("actual alerts: {}", alert_summary(events)));
    }
    diffs
}

/// `sid × count, ...` of the run's alerts, for the diff.
fn alert_summary(events: &[Value]) -> String {
    let mut by: std::collections::BTreeMap<String, usize> = Default::default();
    for e in events.iter().filter(|e| e["event_type"] == "alert") {
        let a = &e["alert"];
        let key = match a["metadata"]["sigma_id"].get(0).and_then(Value::as_str) {
            Some(id) => format!("sigma {id}"),
            None => format!("sid {}", a["signature_id"]),
        };
        *by.entry(key).or_default() += 1;
    }
    if by.is_empty() {
        return "none".into();
    }
    by.iter()
        .map(|(k, n)| format!("{k} x{n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn print_text(results: &[Result_]) {
    let width = results
        .iter()
        .map(|r| r.name.len())
        .max()
        .unwrap_or(4)
        .max(4);
    println!("{:<width$}  result  seconds", "test");
    for r in results {
        let (word, detail): (&str, Vec<String>) = match &r.outcome {
            Outcome::Pass => ("pass", Vec::new()),
            Outcome::Fail(d) => ("FAIL", d.clone()),
            Outcome::Error(e) => ("ERROR", vec![e.clone()]),
        };
        println!("{:<width$}  {word:<6}  {:.2}", r.name, r.seconds);
        for d in detail {
            println!("    {d}");
        }
    }
    let passed = results
        .iter()
        .filter(|r| matches!(r.outcome, Outcome::Pass))
        .count();
    println!(
        "rules test: {passed} passed, {} failed of {}",
        results.len() - passed,
        results.len()
    );
}

fn xml(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '&' => "&amp;".to_string(),
            '<' => "&lt;".to_string(),
            '>' => "&gt;".to_string(),
            '"' => "&quot;".to_string(),
            c if (c as u32) < 0x20 && c != '\n' && c != '\t' => " ".to_string(),
            c => c.to_string(),
        })
        .collect()
}

fn print_junit(results: &[Result_]) {
    let failures = results
        .iter()
        .filter(|r| matches!(r.outcome, Outcome::Fail(_)))
        .count();
    let errors = results
        .iter()
        .filter(|r| matches!(r.outcome, Outcome::Error(_)))
        .count();
    let total: f64 = results.iter().map(|r| r.seconds).sum();
    println!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>");
    println!(
        "<testsuite name=\"zonewatch rules test\" tests=\"{}\" failures=\"{failures}\" errors=\"{errors}\" time=\"{total:.3}\">",
        results.len()
    );
    for r in results {
        print!(
            "  <testcase classname=\"rules\" name=\"{}\" time=\"{:.3}\"",
            xml(&r.name),
            r.seconds
        );
        match &r.outcome {
            Outcome::Pass => println!("/>"),
            Outcome::Fail(d) => println!(
                "><failure message=\"{} check(s) failed\">{}</failure></testcase>",
                d.len().saturating_sub(1),
                xml(&d.join("\n"))
            ),
            Outcome::Error(e) => println!(
                "><error message=\"could not run\">{}</error></testcase>",
                xml(e)
            ),
        }
    }
    println!("</testsuite>");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arbitrary_test_yaml_does_not_panic() {
        let alphabet =
            b"pcap: log rules checks sid sigma count filter match - [ ] { } & * ! 1 \n  \"'#";
        let mut seed = 11u64;
        for _ in 0..3000 {
            let mut s = Vec::new();
            for _ in 0..(seed % 120) {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                s.push(alphabet[(seed % alphabet.len() as u64) as usize]);
            }
            let text = String::from_utf8_lossy(&s);
            let _ = parse_text(Path::new("t/test.yaml"), &text, "t".into());
        }
    }

    #[test]
    fn checks_name_the_line_of_their_list_item() {
        let text = "pcap: a\nchecks:\n  # c\n  - sid: 1\n    count: 2\n  - filter:\n      match:\n        x: 1\n  - sid: 3\nrules: []\n";
        let case = parse_text(Path::new("t/test.yaml"), text, "t".into()).unwrap();
        let lines: Vec<usize> = case.checks.iter().map(|c| c.line).collect();
        assert_eq!(lines, [4, 6, 9]);
        let bogus = "pcap: a\nchecks:\n  - bogus: 1\n";
        let Err(err) = parse_text(Path::new("t/test.yaml"), bogus, "t".into()) else {
            panic!("an unknown check key must be refused");
        };
        assert!(
            err.starts_with("t/test.yaml:3: unknown check key `bogus`"),
            "{err}"
        );
    }
}
