//! Sigma semantics on synthetic records: modifiers, keywords, conditions, correlations, bounds.

use std::path::Path;
use std::sync::Arc;
use zonewatch_sigma::{
    CorrelationLimits, CorrelationType, Engine, Level, RuleSet, SigmaConfig, SigmaMatch,
};
use zonewatch_syslog::{parse, LogRecord, ParseOptions, Timestamp, UtcOffset};

fn load(yaml: &str) -> Arc<RuleSet> {
    let r = RuleSet::load_texts(&[(Path::new("t.yml"), yaml)], &SigmaConfig::default());
    assert!(r.errors.is_empty(), "{:#?}", r.errors);
    Arc::new(r.rules)
}

fn rec(line: &str) -> LogRecord {
    let opts = ParseOptions {
        sensor_offset: UtcOffset(9 * 3600),
        extract_fields: true,
    };
    parse(
        line.as_bytes(),
        Timestamp::from_parts(1_795_606_245, 0),
        None,
        &opts,
    )
}

fn at(line: &str, secs: i64) -> LogRecord {
    let mut r = rec(line);
    r.timestamp = Timestamp::from_parts(secs, 0);
    r
}

fn hits(rules: &RuleSet, line: &str) -> bool {
    let mut out = Vec::new();
    Engine::matching_rules(rules, &rec(line), &mut out);
    !out.is_empty()
}

fn rule(detection: &str) -> Arc<RuleSet> {
    load(&format!(
        "title: t\nid: t1\nlevel: high\ndetection:\n{detection}"
    ))
}

#[test]
fn keywords_search_the_message_not_derived_fields() {
    let r = rule("  k:\n    - '2026'\n    - 'web1'\n  condition: k\n");
    // Year, host name and timestamp are not in the message.
    assert!(!hits(&r, "<13>1 2026-11-25T11:30:45Z web1 app - - - hello"));
    assert!(hits(
        &r,
        "<13>1 2026-11-25T11:30:45Z web1 app - - - in 2026"
    ));
    // Keywords are case-insensitive and substring matches, with wildcards.
    let r = rule("  k:\n    - 'FAILED * for'\n  condition: k\n");
    assert!(hits(
        &r,
        "<13>Nov 25 20:30:45 h sshd[1]: failed password for root"
    ));
    assert!(!hits(&r, "<13>Nov 25 20:30:45 h sshd[1]: failed password"));
}

#[test]
fn modifiers() {
    let m = |sel: &str, line: &str| hits(&rule(&format!("  s:\n{sel}\n  condition: s\n")), line);
    let kv = "<13>Nov 25 20:30:45 fw kernel: SRC=10.1.2.3 DST=8.8.8.8 DPT=445 user=Admin cmd=cG93ZXJzaGVsbCAtZW5j";
    assert!(m("    SRC|cidr: 10.0.0.0/8", kv));
    assert!(!m("    SRC|cidr: 192.168.0.0/16", kv));
    assert!(m("    DPT|gte: 445", kv) && !m("    DPT|gt: 445", kv) && m("    DPT|lt: 1000", kv));
    assert!(
        m("    user: admin", kv)
            && !m("    user|cased: admin", kv)
            && m("    user|cased: Admin", kv)
    );
    assert!(m("    user|startswith: ad", kv) && m("    user|endswith: MIN", kv));
    assert!(m("    nope|exists: false", kv) && m("    user|exists: true", kv));
    assert!(m("    nope: null", kv) && !m("    user: null", kv));
    assert!(m(
        "    message|contains|all:\n      - SRC=\n      - DPT=445",
        kv
    ));
    assert!(!m(
        "    message|contains|all:\n      - SRC=\n      - DPT=22",
        kv
    ));
    assert!(m("    message|re: 'DPT=4\\d5'", kv));
    assert!(m("    message|re|i: 'dpt=445'", kv) && !m("    message|re: 'dpt=445'", kv));
    // base64: "powershell -enc" encoded in the field.
    assert!(m("    cmd|base64offset|contains: 'powershell'", kv));
    assert!(m(
        "    cmd|base64|startswith: 'powershell -e'",
        &kv.replace("cG93ZXJzaGVsbCAtZW5j", "cG93ZXJzaGVsbCAtZQ==")
    ));
    // windash: '-enc' also matches '/enc'.
    let l = "<13>Nov 25 20:30:45 h app: run x.exe /enc AAAA";
    assert!(m("    message|windash|contains: ' -enc '", l));
    assert!(!m("    message|contains: ' -enc '", l));
}

#[test]
fn conditions_with_quantifiers() {
    let r = rule(
        "  sel_a:\n    message|contains: alpha\n  sel_b:\n    message|contains: beta\n  filter_x:\n    message|contains: noise\n  condition: 1 of sel_* and not filter_x\n",
    );
    assert!(hits(&r, "<13>Nov 25 20:30:45 h a: alpha"));
    assert!(!hits(&r, "<13>Nov 25 20:30:45 h a: alpha noise"));
    assert!(!hits(&r, "<13>Nov 25 20:30:45 h a: gamma"));
    let r = rule("  sel_a:\n    message|contains: alpha\n  sel_b:\n    message|contains: beta\n  condition: all of them\n");
    assert!(hits(&r, "<13>Nov 25 20:30:45 h a: beta alpha"));
    assert!(!hits(&r, "<13>Nov 25 20:30:45 h a: beta"));
}

#[test]
fn logsource_gates_by_program_and_facility() {
    let r = load("title: t\nlogsource: {product: linux, service: sshd}\ndetection:\n  k: [boom]\n  condition: k\n");
    assert!(hits(&r, "<38>Nov 25 20:30:45 h sshd[1]: boom"));
    assert!(hits(&r, "<38>Nov 25 20:30:45 h sshd(pam_unix)[1]: boom"));
    assert!(!hits(&r, "<38>Nov 25 20:30:45 h sshdx[1]: boom"));
    assert!(!hits(&r, "<38>Nov 25 20:30:45 h cron[1]: boom"));
    let r = load("title: t\nlogsource: {product: linux, service: auth}\ndetection:\n  k: [boom]\n  condition: k\n");
    assert!(hits(&r, "<38>Nov 25 20:30:45 h whatever: boom")); // facility auth (4)
    assert!(!hits(&r, "<13>Nov 25 20:30:45 h whatever: boom"));
    let r =
        load("title: t\nlogsource: {product: windows}\ndetection:\n  k: [boom]\n  condition: k\n");
    assert!(!hits(&r, "<38>Nov 25 20:30:45 h sshd[1]: boom"));
    assert_eq!(r.inactive, 1);
}

const BASE: &str = "title: fail\nid: f1\nname: fail\nlevel: low\ndetection:\n  k: ['Failed password']\n  condition: k\n";

fn corr(body: &str) -> Arc<RuleSet> {
    load(&format!("{BASE}---\ntitle: corr\nid: c1\nlevel: critical\ntags: [attack.t1110]\ncorrelation:\n{body}"))
}

fn fail(ip: &str, user: &str, t: i64) -> LogRecord {
    at(
        &format!(
            "<38>Nov 25 20:30:45 h sshd[1]: Failed password for {user} from {ip} port 22 ssh2"
        ),
        t,
    )
}

fn run(
    rules: &Arc<RuleSet>,
    recs: &[LogRecord],
    limits: CorrelationLimits,
) -> (Vec<SigmaMatch>, Engine) {
    let mut e = Engine::new(Arc::clone(rules), limits);
    let mut out = Vec::new();
    for r in recs {
        e.process(r, &mut out);
    }
    e.flush(&mut out);
    (out, e)
}

#[test]
fn event_count_sliding_window_per_group() {
    let r = corr("  type: event_count\n  rules: [fail]\n  group-by: [src_ip]\n  timespan: 60s\n  condition: {gte: 3}\n");
    let recs = vec![
        fail("203.0.113.1", "a", 0),
        fail("203.0.113.2", "a", 1),
        fail("203.0.113.1", "a", 30),
        fail("203.0.113.1", "a", 100), // first one has left the window: 2 in window
        fail("203.0.113.1", "a", 120), // 30? no: 100,120 + 30 is 90s old -> 2... then
        fail("203.0.113.1", "a", 125), // 100,120,125 -> fires
        fail("203.0.113.2", "a", 500),
    ];
    let (out, e) = run(&r, &recs, CorrelationLimits::default());
    // The base rule is consumed by the correlation (generate: false): only correlation alerts.
    assert_eq!(out.len(), 1, "{out:#?}");
    let a = &out[0];
    assert_eq!(
        (a.rule_id.as_str(), a.level, a.severity),
        ("c1", Level::Critical, 1)
    );
    let c = a.correlation.as_ref().unwrap();
    assert_eq!(c.kind, CorrelationType::EventCount);
    assert_eq!(
        c.group,
        vec![("src_ip".to_owned(), "203.0.113.1".to_owned())]
    );
    assert_eq!(c.count, 3);
    assert_eq!((c.window_start.secs(), c.window_end.secs()), (100, 125));
    assert_eq!(a.record.as_ref().unwrap().timestamp.secs(), 125);
    assert_eq!(e.stats().detection_matches, 7);
}

#[test]
fn value_count_password_spraying_and_success_only_never_named() {
    let r = corr("  type: value_count\n  rules: [fail]\n  group-by: [src_ip]\n  timespan: 1h\n  condition: {field: user, gte: 4}\n");
    let mut recs: Vec<LogRecord> = ["root", "admin", "root", "oracle", "test"]
        .iter()
        .enumerate()
        .map(|(i, u)| fail("198.51.100.9", u, i as i64 * 60))
        .collect();
    // A legitimate user logging in many times is never a failure.
    for i in 0..50 {
        recs.push(at(&format!("<38>Nov 25 20:30:45 h sshd[1]: Accepted password for u{i} from 192.0.2.50 port 22 ssh2"), 400 + i));
    }
    let (out, _) = run(&r, &recs, CorrelationLimits::default());
    assert_eq!(out.len(), 1, "{out:#?}");
    let c = out[0].correlation.as_ref().unwrap();
    assert_eq!((c.count, c.group[0].1.as_str()), (4, "198.51.100.9"));
    assert!(out
        .iter()
        .all(|a| a.correlation.as_ref().unwrap().group[0].1 != "192.0.2.50"));
}

#[test]
fn temporal_ordered_and_generate() {
    let yaml = format!(
        "{BASE}---\ntitle: ok\nid: s1\nname: ok\ndetection:\n  k: ['Accepted password']\n  condition: k\n---\ntitle: corr\nid: c1\ncorrelation:\n  type: temporal_ordered\n  rules: [fail, ok]\n  group-by: [src_ip]\n  timespan: 10m\n  generate: true\n"
    );
    let r = load(&yaml);
    let ok = |ip: &str, t| {
        at(
            &format!(
                "<38>Nov 25 20:30:45 h sshd[1]: Accepted password for x from {ip} port 22 ssh2"
            ),
            t,
        )
    };
    let recs = vec![
        ok("192.0.2.1", 0),
        fail("192.0.2.1", "x", 10),
        ok("192.0.2.2", 20),
        fail("192.0.2.3", "x", 30),
        ok("192.0.2.3", 40),
    ];
    let (out, _) = run(&r, &recs, CorrelationLimits::default());
    let corr: Vec<_> = out.iter().filter(|a| a.correlation.is_some()).collect();
    // 192.0.2.1: success before failure (wrong order) -> no alert; .3 in order -> alert.
    assert_eq!(corr.len(), 1);
    assert_eq!(
        corr[0].correlation.as_ref().unwrap().group[0].1,
        "192.0.2.3"
    );
    // generate: true keeps the base alerts.
    assert_eq!(out.len() - corr.len(), 5);
}

#[test]
fn upper_bounded_windows_close_on_flush_or_expiry() {
    let r = corr("  type: event_count\n  rules: [fail]\n  group-by: [src_ip]\n  timespan: 10m\n  condition: {gte: 2, lte: 3}\n");
    let recs = vec![
        fail("10.0.0.1", "a", 0),
        fail("10.0.0.1", "a", 1),
        fail("10.0.0.2", "a", 2),
    ];
    let mut e = Engine::new(Arc::clone(&r), CorrelationLimits::default());
    let mut out = Vec::new();
    for x in &recs {
        e.process(x, &mut out);
    }
    assert!(out.is_empty(), "cannot decide before the window ends");
    e.flush(&mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].correlation.as_ref().unwrap().count, 2);
    assert!(out[0].record.is_none());
    // Expiry by a later record of another group closes the window too.
    let mut recs = vec![fail("10.0.0.1", "a", 0), fail("10.0.0.1", "a", 1)];
    recs.push(fail("10.0.0.9", "a", 2000));
    let mut e = Engine::new(r, CorrelationLimits::default());
    let mut out = Vec::new();
    for x in &recs {
        e.process(x, &mut out);
    }
    assert_eq!(out.len(), 1);
}

#[test]
fn group_state_is_bounded_and_evictions_counted() {
    let r = corr("  type: event_count\n  rules: [fail]\n  group-by: [src_ip]\n  timespan: 1h\n  condition: {gte: 3}\n");
    let limits = CorrelationLimits {
        max_groups: 100,
        ..Default::default()
    };
    let recs: Vec<LogRecord> = (0..1000)
        .map(|i| fail(&format!("10.0.{}.{}", i / 256, i % 256), "a", i))
        .collect();
    let (out, e) = run(&r, &recs, limits);
    assert!(out.is_empty());
    let s = e.stats();
    assert_eq!(s.groups_evicted, 900);
    assert_eq!(s.groups_open, 0); // flush cleared
}

#[test]
fn records_missing_group_field_are_skipped_and_counted() {
    let r = corr("  type: event_count\n  rules: [fail]\n  group-by: [src_ip]\n  timespan: 1h\n  condition: {gte: 2}\n");
    let recs: Vec<LogRecord> = (0..5)
        .map(|i| at("<38>Nov 25 20:30:45 h sshd[1]: Failed password for x", i))
        .collect();
    let (out, e) = run(&r, &recs, CorrelationLimits::default());
    assert!(out.is_empty());
    assert_eq!(e.stats().missing_group_field, 5);
}

#[test]
fn bad_rules_are_skipped_with_reasons() {
    let yaml = "title: a\nid: a\ndetection:\n  s:\n    f|re: '(unclosed'\n  condition: s\n---\ntitle: b\nid: b\ndetection:\n  s:\n    f|expand: x\n  condition: s\n---\ntitle: c\nid: c\ncorrelation:\n  type: event_count\n  rules: [nope]\n  timespan: 5m\n  condition: {gte: 1}\n---\ntitle: d\nid: d\ndetection:\n  s: {f: x}\n  condition: s | count() > 5\n---\ntitle: ok\nid: ok\ndetection:\n  s: {f: x}\n  condition: s\n";
    let r = RuleSet::load_texts(&[(Path::new("bad.yml"), yaml)], &SigmaConfig::default());
    assert_eq!(r.rules.detections.len(), 1);
    let ids: Vec<_> = r
        .errors
        .iter()
        .map(|e| e.rule_id.clone().unwrap())
        .collect();
    assert_eq!(ids, ["a", "b", "d", "c"]);
    assert_eq!(r.errors[0].line, 5);
    assert!(r.errors[1].message.contains("expand"));
    assert!(r.errors[3].message.contains("unknown rule `nope`"));
    // Broken YAML: one error, with its line.
    let r = RuleSet::load_texts(
        &[(Path::new("y.yml"), "title: x\ndetection: [\n")],
        &SigmaConfig::default(),
    );
    assert_eq!(r.errors.len(), 1);
    assert!(r.errors[0].line >= 2);
}

/// Records parsed without field extraction and given to `process_deferred`: fields are
/// extracted only when a rule reading them is open for the record or the record matches, and
/// alerts (records, correlation groups) and counters are those of eager extraction.
#[test]
fn deferred_extraction_matches_eager_extraction() {
    let yaml = format!(
        "{BASE}---\ntitle: exec\nid: a1\nlogsource: {{product: linux, service: auditd}}\ndetection:\n  s:\n    type: EXECVE\n  condition: s\n---\ntitle: corr\nid: c1\ncorrelation:\n  type: event_count\n  rules: [fail]\n  group-by: [src_ip]\n  timespan: 10m\n  condition: {{gte: 2}}\n  generate: true\n"
    );
    let r = load(&yaml);
    let lines = [
        "<38>Nov 25 20:30:45 h sshd[1]: Failed password for root from 192.0.2.7 port 22 ssh2",
        "<38>Nov 25 20:30:46 h sshd[1]: Accepted password for x from 192.0.2.9 port 22 ssh2",
        "<38>Nov 25 20:30:47 h sshd[1]: Failed password for bob from 192.0.2.7 port 22 ssh2",
        "<14>Nov 25 20:30:48 h auditd[2]: type=EXECVE msg=audit(1.0:7): argc=1 a0=\"id\"",
        "<14>Nov 25 20:30:49 h auditd[2]: type=SYSCALL msg=audit(1.0:8): exe=\"/bin/id\"",
    ];
    let eager = ParseOptions {
        sensor_offset: UtcOffset(9 * 3600),
        extract_fields: true,
    };
    let lazy = ParseOptions {
        extract_fields: false,
        ..eager
    };
    let reference = Timestamp::from_parts(1_795_606_245, 0);
    let mut a = Engine::new(Arc::clone(&r), CorrelationLimits::default());
    let mut b = Engine::new(Arc::clone(&r), CorrelationLimits::default());
    let (mut oa, mut ob) = (Vec::new(), Vec::new());
    let mut extracted = Vec::new();
    for l in lines {
        a.process(&parse(l.as_bytes(), reference, None, &eager), &mut oa);
        let mut rec = parse(l.as_bytes(), reference, None, &lazy);
        b.process_deferred(&mut rec, &mut ob);
        extracted.push(!rec.fields.is_empty());
    }
    a.flush(&mut oa);
    b.flush(&mut ob);
    assert_eq!(oa, ob);
    assert_eq!(a.stats(), b.stats());
    // Matches: the two failures (one alert each, then the correlation) and the EXECVE line.
    assert_eq!(a.stats().detection_matches, 3);
    let corr = ob
        .iter()
        .find(|m| m.correlation.is_some())
        .expect("correlation");
    assert_eq!(
        corr.correlation.as_ref().unwrap().group,
        vec![("src_ip".to_owned(), "192.0.2.7".to_owned())]
    );
    assert!(ob
        .iter()
        .all(|m| m.record.as_ref().is_none_or(|r| !r.fields.is_empty())));
    // The `Accepted` line matched nothing and no open rule reads fields: never extracted. The
    // auditd lines were (the auditd rule reads `type`).
    assert_eq!(extracted, [true, false, true, true, true]);
}

/// A reload (`Engine::replace_rules`) keeps an unchanged correlation's open
/// windows: two failures before it and one after make the third of a
/// `gte: 3` window. A correlation whose threshold changed starts empty.
#[test]
fn reload_keeps_unchanged_correlation_windows() {
    let body = "  type: event_count\n  rules: [fail]\n  group-by: [src_ip]\n  timespan: 60s\n  condition: {gte: 3}\n";
    let before = corr(body);
    let corr_alerts = |out: &[SigmaMatch]| out.iter().filter(|a| a.correlation.is_some()).count();
    let feed = |e: &mut Engine, recs: &[LogRecord]| {
        let mut out = Vec::new();
        for r in recs {
            e.process(r, &mut out);
        }
        out
    };
    let first = [fail("203.0.113.9", "a", 0), fail("203.0.113.9", "b", 5)];
    let third = [fail("203.0.113.9", "c", 10)];

    let mut e = Engine::new(Arc::clone(&before), CorrelationLimits::default());
    assert_eq!(corr_alerts(&feed(&mut e, &first)), 0);
    // The same rules loaded anew, as a reload reads them.
    assert_eq!(e.replace_rules(corr(body)), 1);
    assert_eq!(corr_alerts(&feed(&mut e, &third)), 1);

    let mut e = Engine::new(before, CorrelationLimits::default());
    feed(&mut e, &first);
    let changed = body.replace("gte: 3", "gte: 2");
    assert_eq!(e.replace_rules(corr(&changed)), 0);
    assert_eq!(
        corr_alerts(&feed(&mut e, &third)),
        0,
        "a changed correlation starts empty"
    );
    assert_eq!(e.stats().records, 3, "counters go on");
}
