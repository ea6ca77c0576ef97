//! `zonewatch rules test`, end to end: the city's rule test cases under
//! `rules/tests/` pass, every city rule has a case, and a failing or broken
//! case fails with expected vs actual (text and JUnit).

mod common;
use common::process::{path, zonewatch};
use common::root;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Output;

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn cases() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(root().join("rules/tests"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("test.yaml").is_file())
        .collect();
    v.sort();
    v
}

#[test]
fn city_rule_tests_pass() {
    let o = zonewatch(&["rules", "test", path(&root().join("rules/tests"))]);
    let out = stdout(&o);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let n = cases().len();
    assert!(n >= 10, "{n} cases");
    let passed = out
        .lines()
        .filter(|l| l.split_whitespace().nth(1) == Some("pass"))
        .count();
    assert_eq!(passed, n, "{out}");
    assert!(
        out.ends_with(&format!("rules test: {n} passed, 0 failed of {n}\n")),
        "{out}"
    );
}

/// Every city signature sid, every Sigma rule and every detector file has
/// a case that checks it. A Sigma detection that only feeds correlations
/// (no alerts of its own) counts through a checked correlation that names it.
#[test]
fn every_city_rule_has_a_case() {
    let r = root();
    let tests: String = cases()
        .iter()
        .map(|c| std::fs::read_to_string(c.join("test.yaml")).unwrap())
        .collect();
    let checked = |needle: &str| tests.contains(needle);
    let sigs =
        std::fs::read_to_string(r.join("rules/signatures/city-internet-zone.rules")).unwrap();
    let sids: Vec<&str> = sigs
        .split("sid:")
        .skip(1)
        .map(|s| s.split(';').next().unwrap().trim())
        .collect();
    assert!(sids.len() >= 24);
    for sid in sids {
        assert!(
            checked(&format!("sid: {sid}\n")),
            "no case checks sid {sid}"
        );
    }
    let mut sigma = Vec::new();
    for e in std::fs::read_dir(r.join("rules/sigma/zonewatch"))
        .unwrap()
        .flatten()
    {
        sigma.push(std::fs::read_to_string(e.path()).unwrap());
    }
    let field = |text: &str, key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{key}: ")))
            .map(|v| v.trim().to_string())
    };
    // Names referenced by a correlation whose id a case checks.
    let mut fed: BTreeSet<String> = BTreeSet::new();
    for t in &sigma {
        if t.contains("correlation:") && checked(&field(t, "id").unwrap()) {
            let refs = t.split("rules:").nth(1).unwrap_or("");
            for l in refs.lines().skip(1) {
                match l.trim().strip_prefix("- ") {
                    Some(n) => {
                        fed.insert(n.to_string());
                    }
                    None => break,
                }
            }
        }
    }
    for t in &sigma {
        let id = field(t, "id").unwrap();
        let name = field(t, "name");
        assert!(
            checked(&id) || name.as_ref().is_some_and(|n| fed.contains(n)),
            "no case checks Sigma rule {id} ({name:?})"
        );
    }
    // Detector files: every one has a case (volume and zone-policy since
    // fixtures/attacks/volume-exfil.pcap and zone-policy.pcap).
    let mut uncovered = Vec::new();
    for e in std::fs::read_dir(r.join("rules/detectors"))
        .unwrap()
        .flatten()
    {
        let f = e.file_name().to_string_lossy().into_owned();
        if !checked(&format!("../../detectors/{f}")) {
            uncovered.push(f);
        }
    }
    uncovered.sort();
    assert!(
        uncovered.is_empty(),
        "detector files without a case: {uncovered:?}"
    );
}

fn case(dir: &Path, name: &str, yaml: &str) -> PathBuf {
    let d = dir.join(name);
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("test.yaml"), yaml).unwrap();
    d
}

#[test]
fn a_failing_case_shows_expected_and_actual() {
    let dir = tempfile::tempdir().unwrap();
    let pcap = root().join("fixtures/attacks/web-attacks.pcap");
    let rules = root().join("rules/signatures");
    let good = format!(
        "pcap: {}\nrules: [{}]\nchecks:\n  - sid: 9200008\n    count: 1\n",
        path(&pcap),
        path(&rules)
    );
    let bad = format!(
        "pcap: {}\nrules: [{}]\nchecks:\n  - sid: 9200008\n  - sid: 9200001\n    count: 3\n",
        path(&pcap),
        path(&rules)
    );
    case(dir.path(), "a-good", &good);
    case(dir.path(), "b-bad", &bad);
    case(
        dir.path(),
        "c-broken",
        "pcap: x.pcap\nchecks:\n  - sid: 1\n  - bogus: 2\n",
    );
    let o = zonewatch(&["rules", "test", path(dir.path())]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[1].starts_with("a-good") && lines[1].contains(" pass "),
        "{out}"
    );
    assert!(
        lines[2].starts_with("b-bad") && lines[2].contains(" FAIL "),
        "{out}"
    );
    assert!(
        lines[3].ends_with(
            "b-bad/test.yaml:5: event_type=\"alert\" alert.signature_id=9200001: expected 3, got 2"
        ),
        "{out}"
    );
    assert!(
        lines[4].contains("actual alerts: sid 9200001 x2, "),
        "{out}"
    );
    assert!(out.contains("c-broken"), "{out}");
    assert!(
        out.contains("c-broken/test.yaml:4: unknown check key `bogus`"),
        "{out}"
    );
    assert!(
        out.ends_with("rules test: 1 passed, 2 failed of 3\n"),
        "{out}"
    );

    let o = zonewatch(&["rules", "test", "--format", "junit", path(dir.path())]);
    let xml = stdout(&o);
    assert_eq!(o.status.code(), Some(1));
    assert!(xml.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuite name=\"zonewatch rules test\" tests=\"3\" failures=\"1\" errors=\"1\""), "{xml}");
    assert!(
        xml.contains("<testcase classname=\"rules\" name=\"a-good\""),
        "{xml}"
    );
    assert!(
        xml.contains("<failure message=\"1 check(s) failed\">"),
        "{xml}"
    );
    assert!(
        xml.contains("event_type=&quot;alert&quot;"),
        "quotes escaped: {xml}"
    );
    assert!(xml.contains("<error message=\"could not run\">"), "{xml}");
    assert!(xml.trim_end().ends_with("</testsuite>"));
    assert_eq!(xml.matches("<testcase ").count(), 3);
}

#[test]
fn no_cases_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let o = zonewatch(&["rules", "test", path(dir.path())]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no test.yaml"));
}

/// `config:` (relative to the case) is the run's configuration: the city's
/// rules aim at $HOME_NET, so with the capture's servers outside it they
/// stay silent.
#[test]
fn a_case_config_reaches_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let pcap = root().join("fixtures/attacks/web-attacks.pcap");
    let rules = root().join("rules/signatures");
    let yaml = format!(
        "pcap: {}\nconfig: zw.yaml\nrules: [{}]\nchecks:\n  - sid: 9200008\n",
        path(&pcap),
        path(&rules)
    );
    let d = case(dir.path(), "with-config", &yaml);
    let run = |home: &str| {
        std::fs::write(
            d.join("zw.yaml"),
            format!("vars:\n  address-groups:\n    HOME_NET: \"[{home}]\"\n"),
        )
        .unwrap();
        zonewatch(&["rules", "test", path(&d)]).status.code()
    };
    assert_eq!(run("10.0.0.0/8,172.16.0.0/12,192.168.0.0/16"), Some(0));
    assert_eq!(run("192.0.2.0/24"), Some(1));
}
