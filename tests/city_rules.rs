//! The city's ruleset (`rules/`) end to end through the binary: the README's
//! `--rules rules/` loads signatures, Sigma and detectors; `rules check
//! --strict rules/` is clean; each signature fires on
//! `fixtures/attacks/web-attacks.pcap` or `fixtures/attacks/city-attacks.pcap`
//! exactly as often as the capture calls for; no rule of any kind fires on
//! benign traffic or benign logs (the bundled captures and, when
//! `../shared/data` is there, the MANIFEST's benign captures and logs).

mod common;

use common::{root, run_zonewatch, shared_data};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const RULES: &str = "rules/signatures/city-internet-zone.rules";
const WEB_ATTACKS: &str = "fixtures/attacks/web-attacks.pcap";
const CITY_ATTACKS: &str = "fixtures/attacks/city-attacks.pcap";

/// The sids of the city rule file, in file order.
fn city_sids() -> Vec<u64> {
    let text = std::fs::read_to_string(root().join(RULES)).unwrap();
    let sids: Vec<u64> = text
        .lines()
        .filter(|l| l.starts_with("alert "))
        .map(|l| {
            let at = l.find("; sid:").expect("rule without sid") + "; sid:".len();
            let digits: String = l[at..].chars().take_while(char::is_ascii_digit).collect();
            digits.parse().unwrap()
        })
        .collect();
    assert!(sids.len() >= 24, "{sids:?}");
    sids
}

fn alerts(eve: &str) -> Vec<Value> {
    eve.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["event_type"] == "alert")
        .collect()
}

fn sid(a: &Value) -> u64 {
    a["alert"]["signature_id"].as_u64().unwrap()
}

/// The city rules alone on one capture; `extra` is added to the command line.
fn city_alerts(cap: &Path, extra: &[&str]) -> Vec<Value> {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("eve.json");
    let rules = root().join(RULES);
    let mut args = vec!["--rules", rules.to_str().unwrap()];
    args.extend_from_slice(extra);
    let eve = run_zonewatch(cap, &args, &out).unwrap_or_else(|e| panic!("{}: {e}", cap.display()));
    alerts(&eve)
}

/// The number that follows `prefix` on the stderr line that has it, and the
/// rest of that line.
fn count_after<'a>(stderr: &'a str, prefix: &str) -> Option<(u64, &'a str)> {
    let line = stderr.lines().find(|l| l.starts_with(prefix))?;
    let rest = &line[prefix.len()..];
    let end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    Some((rest[..end].parse().ok()?, &rest[end..]))
}

/// (a) The README's live example, `--rules rules/`, run from the repository
/// root as written; the capture stands in for `--interface eth1` and a log
/// file for the syslog listeners (Sigma is loaded when a log input is given).
#[test]
fn readme_rules_directory_loads_signatures_sigma_and_detectors() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("eve.json");
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_zonewatch"))
        .current_dir(root())
        .args(["run", "--syslog-file", "fixtures/logs/auth.log"])
        .args(["--pcap", WEB_ATTACKS, "--rules", "rules/", "--output"])
        .arg(&out)
        .args(["--workers", "2", "--set", "stats.interval=0"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{}: {stderr}", o.status);

    let (n, rest) = count_after(&stderr, "zonewatch: rules: ")
        .unwrap_or_else(|| panic!("no signature load line: {stderr}"));
    assert!(n > 0 && rest.starts_with(" loaded, 0 skipped"), "{stderr}");
    assert!(n as usize >= city_sids().len(), "{stderr}");
    let (n, rest) = count_after(&stderr, "zonewatch: sigma: ")
        .unwrap_or_else(|| panic!("no Sigma load line: {stderr}"));
    assert!(n > 0 && rest.starts_with(" rules loaded"), "{stderr}");
    let (n, rest) = count_after(&stderr, "zonewatch: detectors: ")
        .unwrap_or_else(|| panic!("no detector load line: {stderr}"));
    assert!(n > 0 && rest.starts_with(" loaded"), "{stderr}");

    // And the signatures loaded that way are the ones that alert.
    let eve = std::fs::read_to_string(&out).unwrap();
    let mut fired: Vec<u64> = alerts(&eve).iter().map(sid).collect();
    fired.retain(|s| city_sids().contains(s));
    fired.sort();
    fired.dedup();
    let want: Vec<u64> = web_attacks_want().into_keys().collect();
    assert_eq!(fired, want, "{stderr}");
}

/// `zonewatch rules check --strict rules/` is clean: every rule loads, and
/// no warning (a pcre without a literal beside it, a missing fast pattern, a
/// Sigma rule that can never match, ...) is left.
#[test]
fn strict_check_of_the_city_rules_is_clean() {
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_zonewatch"))
        .args(["rules", "check", "--strict"])
        .arg(root().join("rules"))
        .output()
        .unwrap();
    let out = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(
        out.contains("rules check: 0 error(s), 0 warning(s)"),
        "{out}"
    );
    assert!(out.contains(" loaded, 0 skipped"), "{out}");
}

/// What fixtures/attacks/web-attacks.pcap holds (fixtures/make-fixtures.py,
/// `web_attack_packets`), and so how often each city rule must fire on it:
/// each rule alerts once per HTTP request (transaction) that matches it.
fn web_attacks_want() -> BTreeMap<u64, usize> {
    [
        // URI, percent-encoded: ${jndi:ldap://...} (203.0.113.10) and
        // ${${::-j}${::-n}${::-d}${::-i}:rmi://...} (203.0.113.11).
        (9200001, 2),
        // Headers: User-Agent ${jndi:ldap://...}, X-Api-Version
        // ${${lower:j}ndi:${lower:l}dap://...}.
        (9200002, 2),
        // Raw URI with "..": /static/../../../../etc/passwd and
        // ?file=..%5c..%5cwindows%5cwin.ini (not ?page=c:/windows/win.ini: no
        // traversal there).
        (9200003, 2),
        // /etc/passwd after decoding: the ../ path and the %2f-encoded query.
        (9200004, 2),
        // win.ini: the ..%5c one and c:/windows/win.ini.
        (9200005, 2),
        // UNION ALL SELECT (%20) and union/**/select (+).
        (9200006, 2),
        // shell.php?cmd=id, a.php?pass=1&cmd=uname+-a.
        (9200007, 2),
        // 12 POSTs to /wp-login.php and /admin/login from 203.0.113.50 within
        // 10 s: `type threshold, count 10` alerts on the 10th only; 4 POSTs
        // from 203.0.113.60 stay under the threshold.
        (9200008, 1),
        // One FTP login (PASS) from 10.20.40.15 to 198.51.100.21:21.
        (9200009, 1),
        // One Telnet login prompt from 198.51.100.23:23 to 10.20.40.16 (the
        // later "Last login:" line is no prompt).
        (9200010, 1),
        // x.jsp?exec=whoami.
        (9200015, 1),
        // Encoded dots: /cgi-bin/.%2e/%2e%2e/... and ?doc=%2e%2e%2f%2e%2e%2f...
        (9200024, 2),
    ]
    .into_iter()
    .collect()
}

/// What fixtures/attacks/city-attacks.pcap holds (`city_attack_packets`):
/// the attacks, one alert each unless said; its near misses raise nothing.
fn city_attacks_want() -> BTreeMap<u64, usize> {
    [
        (9200011, 2), // SLEEP(5), pg_sleep(3)
        (9200012, 1), // BENCHMARK(5000000,MD5(1))
        (9200013, 1), // UNION SELECT in a POST body
        (9200014, 2), // c99.php, wso2.5.php
        (9200015, 1), // x.jsp?exec=whoami
        (9200016, 2), // China Chopper, plain and percent-encoded
        (9200017, 1), // 6 failed SMTP AUTH connections: the 5th alerts
        (9200018, 1), // invoice.pdf.exe attached
        (9200019, 1), // PE download
        (9200020, 1), // WindowsPowerShell user agent
        (9200021, 1), // Net.WebClient DownloadString in a URI
        (9200022, 1), // CertUtil URL Agent
        (9200023, 1), // sqlmap user agent
        (9200025, 1), // 12 SSH sessions in 33 s: `type both` alerts once
    ]
    .into_iter()
    .collect()
}

/// (b) Each city rule fires on the capture written for it
/// (`web_attacks_want`, `city_attacks_want`) exactly as often as it should,
/// and every rule of the file is expected on one of the two.
#[test]
fn each_city_signature_fires_as_often_as_the_capture_calls_for() {
    let (web, city) = (web_attacks_want(), city_attacks_want());
    let mut covered: Vec<u64> = web.keys().chain(city.keys()).copied().collect();
    covered.sort();
    covered.dedup();
    assert_eq!(
        covered,
        city_sids()
            .into_iter()
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect::<Vec<_>>(),
        "every rule of the file has its expectation here"
    );

    for workers in ["1", "2"] {
        let alerts = city_alerts(&root().join(WEB_ATTACKS), &["--workers", workers]);
        let mut got: BTreeMap<u64, usize> = BTreeMap::new();
        for a in &alerts {
            *got.entry(sid(a)).or_default() += 1;
        }
        assert_eq!(got, web, "{workers} worker(s)");

        for a in &alerts {
            let msg = a["alert"]["signature"].as_str().unwrap();
            assert!(msg.starts_with("ZW CITY "), "{a}");
            assert!(a["alert"]["category"].as_str().is_some(), "{a}");
            // The citizen's requests (a UNION in a search, cmd_view=, a POST
            // to /contact, a GET of /wp-login.php) raise nothing.
            assert_ne!(a["src_ip"], "198.51.100.77", "{a}");
            match sid(a) {
                9200008 => {
                    assert_eq!(a["src_ip"], "203.0.113.50", "{a}");
                    // The 10th POST is the second of the second session.
                    assert_eq!(a["http"]["url"], "/admin/login", "{a}");
                }
                9200009 => {
                    assert_eq!(a["src_ip"], "10.20.40.15", "{a}");
                    assert_eq!(a["dest_port"], 21, "{a}");
                }
                9200010 => {
                    assert_eq!(a["src_ip"], "198.51.100.23", "{a}");
                    assert_eq!(a["src_port"], 23, "{a}");
                }
                9200001..=9200007 | 9200015 | 9200024 => {
                    let src = a["src_ip"].as_str().unwrap();
                    assert!(src.starts_with("203.0.113."), "{a}");
                    assert_eq!(a["dest_ip"], "10.20.30.80", "{a}");
                    assert_eq!(a["app_proto"], "http", "{a}");
                }
                s => panic!("unexpected sid {s}"),
            }
        }

        let alerts = city_alerts(&root().join(CITY_ATTACKS), &["--workers", workers]);
        let mut got: BTreeMap<u64, usize> = BTreeMap::new();
        for a in &alerts {
            *got.entry(sid(a)).or_default() += 1;
        }
        assert_eq!(got, city, "{workers} worker(s)");
        for a in &alerts {
            assert!(
                a["alert"]["signature"]
                    .as_str()
                    .unwrap()
                    .starts_with("ZW CITY "),
                "{a}"
            );
            // The near misses: a citizen (198.51.100.78), a mailer sending a
            // PDF (198.51.100.80), a user mistyping their SMTP password twice
            // (198.51.100.79) and a city PC fetching a PDF and a text file
            // starting "MZ" (10.20.40.33) and an administrator's three SSH
            // sessions (198.51.100.81).
            for quiet in [
                "198.51.100.78",
                "198.51.100.79",
                "198.51.100.80",
                "10.20.40.33",
                "198.51.100.43",
                "198.51.100.81",
            ] {
                assert_ne!(a["src_ip"], quiet, "{a}");
                assert_ne!(a["dest_ip"], quiet, "{a}");
            }
            match sid(a) {
                // Outbound: a city client's request.
                9200020 | 9200022 => {
                    assert!(
                        a["src_ip"].as_str().unwrap().starts_with("10.20.40."),
                        "{a}"
                    )
                }
                // The PE comes from the internet server to the city client.
                9200019 => {
                    assert_eq!(a["src_ip"], "198.51.100.40", "{a}");
                    assert_eq!(a["dest_ip"], "10.20.40.30", "{a}");
                }
                // The mail server's 535 to the guessing client.
                9200017 => {
                    assert_eq!(a["src_ip"], "10.20.30.25", "{a}");
                    assert_eq!(a["dest_ip"], "203.0.113.51", "{a}");
                }
                9200018 => assert_eq!(a["dest_port"], 25, "{a}"),
                9200025 => {
                    assert_eq!(a["src_ip"], "203.0.113.44", "{a}");
                    assert_eq!(a["dest_port"], 22, "{a}");
                }
                _ => {
                    assert!(
                        a["src_ip"].as_str().unwrap().starts_with("203.0.113."),
                        "{a}"
                    );
                    assert_eq!(a["dest_ip"], "10.20.30.80", "{a}");
                }
            }
        }
    }
}

/// `../shared/data`, or None (skip) when it is absent; in CI it must be there.
fn shared_or_skip(what: &str) -> Option<PathBuf> {
    match shared_data() {
        Some(d) => Some(d),
        None if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("CI=true but ../shared/data is absent: {what} cannot run")
        }
        None => {
            eprintln!("../shared/data absent: skipping {what}");
            None
        }
    }
}

/// Captures of MANIFEST.tsv (columns `local_file`, `category`, ...) whose
/// category is `want`, as paths under `data`.
fn manifest_captures(data: &Path, want: impl Fn(&str, &str) -> bool) -> Vec<PathBuf> {
    let text = std::fs::read_to_string(data.join("MANIFEST.tsv")).unwrap();
    let mut lines = text.lines();
    let head: Vec<&str> = lines.next().unwrap().split('\t').collect();
    let col = |name: &str| head.iter().position(|h| *h == name).unwrap();
    let (file, category) = (col("local_file"), col("category"));
    lines
        .map(|l| l.split('\t').collect::<Vec<_>>())
        .filter(|r| r.len() > file.max(category) && want(r[category], r[file]))
        .map(|r| data.join(r[file]))
        .collect()
}

/// (c) No city signature fires on benign traffic. The address variables are
/// opened to `any` and checksums are not validated, so neither the rules'
/// direction (`$EXTERNAL_NET -> $HOME_NET`) nor a capture taken with checksum
/// offloading can hide a content false positive: this is stricter than the
/// deployed defaults.
#[test]
fn city_signatures_stay_quiet_on_benign_traffic() {
    let mut caps = vec![
        root().join("fixtures/demo.pcap"),
        root().join("fixtures/attacks/benign.pcap"),
    ];
    if let Some(data) = shared_or_skip("the shared corpus' benign captures") {
        let benign = manifest_captures(&data, |category, _| category == "pcap:benign");
        assert!(
            !benign.is_empty(),
            "MANIFEST.tsv lists no pcap:benign capture"
        );
        caps.extend(benign);
    }
    let sids = city_sids();
    for cap in &caps {
        assert!(cap.is_file(), "{} missing", cap.display());
        let fired: Vec<Value> = city_alerts(
            cap,
            &[
                "--checksum-checks",
                "none",
                "--set",
                "vars.address-groups.HOME_NET=any",
                "--set",
                "vars.address-groups.EXTERNAL_NET=any",
            ],
        )
        .into_iter()
        .filter(|a| sids.contains(&sid(a)))
        .collect();
        assert!(fired.is_empty(), "{}: {fired:#?}", cap.display());
    }
}

/// The Log4Shell rules on the real exploit captures of the shared corpus
/// (obfuscation variants in the URI and the User-Agent): each raises one
/// alert, in the URI (9200001) or the header (9200002) rule. The one whose
/// payload is base64 in `Authorization: Basic` is out of reach
/// (`base64_decode` is not supported) and raises none.
#[test]
fn log4shell_rules_catch_the_shared_exploit_captures() {
    let Some(data) = shared_or_skip("the shared Log4Shell captures") else {
        return;
    };
    let caps = manifest_captures(&data, |category, file| {
        category == "pcap:http-attack" && file.contains("log4shell")
    });
    assert!(caps.len() >= 10, "{caps:?}");
    for cap in &caps {
        let name = cap.file_name().unwrap().to_str().unwrap();
        let want: &[u64] = if name.contains("basic-auth") {
            &[]
        } else if name.contains("uri-params") {
            &[9200001]
        } else {
            &[9200002]
        };
        let got: Vec<u64> = city_alerts(
            cap,
            &[
                "--checksum-checks",
                "none",
                "--set",
                "vars.address-groups.HOME_NET=any",
                "--set",
                "vars.address-groups.EXTERNAL_NET=any",
            ],
        )
        .iter()
        .map(sid)
        .collect();
        assert_eq!(got, want, "{name}");
    }
}

/// MANIFEST.tsv categories of ordinary traffic: the captures the whole
/// ruleset must stay quiet on. Left out, because they hold what the rules are
/// for or are not traffic: the attack categories (`portscan`, `http-attack`,
/// `exploit`, `malware`, `c2`, `dns-tunnel`, `syn-flood`,
/// `ddos-amplification`, `bruteforce`, `arp` poisoning), `malformed` (fuzzer
/// reproducers: bad headers are what protocol-anomaly reports) and `ftp` /
/// `telnet` (cleartext logins, which the city's policy signatures 9200009 /
/// 9200010 flag by design).
const BENIGN_PCAP_CATEGORIES: &[&str] = &[
    "pcap:benign",
    "pcap:http",
    "pcap:dns",
    "pcap:icmp",
    "pcap:ipv6",
    "pcap:ip-fragments",
    "pcap:linktype",
    "pcap:ssh",
    "pcap:syslog-net",
    "pcap:tcp-flags",
    "pcap:tcp-stream",
    "pcap:tunnel",
    "pcap:vlan",
];

/// MANIFEST.tsv categories of ordinary logs (files only: READMEs, licences
/// and loghub's parsed `.csv` ground truth are not logs). Left out:
/// `log:fail2ban`, whose every sample line is an attack fail2ban must ban.
const BENIGN_LOG_CATEGORIES: &[&str] = &[
    "log:beats",
    "log:loghub",
    "log:syslog-format",
    "log:syslog-parse-pairs",
];

/// A file pinned to its alerts: (path under `../shared/data`, rule → count
/// (`None`: at least one), why it is no benign sample).
type Pinned = (
    &'static str,
    Vec<(&'static str, Option<usize>)>,
    &'static str,
);

/// Files of the benign categories that record the very events the rules are
/// written for, with the alerts they must raise (rule → count; `None`: at
/// least one) and nothing else. Pinned so that the exception is checked, not
/// just skipped.
// (`pcaps/zeek/tcp/payload-syn.pcap` carries an LFI request as data on a
// SYN without a Fast Open option: not the application's, as Suricata reads
// it, so it raises nothing and stays among the benign files.)
fn not_benign() -> Vec<Pinned> {
    vec![
        (
            "pcaps/zeek/mpls-in-vlan.pcap",
            vec![("sid:9000610", Some(2))],
            "anonymised: both ends rewritten to 65.65.65.65, so every packet is a land packet on the wire",
        ),
        (
            "pcaps/zeek/ipv4/fragmented-4.pcap",
            vec![("sid:9000601", Some(1)), ("sid:9000604", Some(1))],
            "overlapping-fragment test trace (decoder event ipv4.frag_overlap): the overlap rewrites the TCP flags to none and FIN",
        ),
        (
            "logs/rsyslog-parser-tests/rfc3164.parse1",
            vec![("sigma:6f1b8c62-2a0e-4c1e-9b43-3f7d2f1a0020", Some(1))],
            "RFC 3164's example message is a failed `su root` (the correlation generates each failure's alert)",
        ),
        (
            "logs/loghub/Linux/Linux_2k.log",
            vec![
                ("sigma:6f1b8c62-2a0e-4c1e-9b43-3f7d2f1a0010", None),
                ("sigma:6f1b8c62-2a0e-4c1e-9b43-3f7d2f1a0013", None),
            ],
            "a real server's log with SSH brute force from the internet (sshd pam_unix failures from 218.188.2.4 and others)",
        ),
    ]
}

/// An alert's rule: `sid:N` for signatures and detectors, `sigma:ID` for Sigma.
fn rule_of(a: &Value) -> String {
    match a["alert"]["metadata"]["sigma_id"][0].as_str() {
        Some(id) => format!("sigma:{id}"),
        None => format!("sid:{}", sid(a)),
    }
}

/// The whole ruleset (`--rules rules/`: signatures, Sigma, detectors) on one
/// capture or log, with the city's zone policy loaded so the zone-policy
/// detector runs too; counts of alerts by rule.
fn ruleset_alerts(input: &[&str]) -> BTreeMap<String, usize> {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("eve.json");
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_zonewatch"))
        .arg("run")
        .arg("--config")
        .arg(root().join("rules/tests/detector-zone-policy/zonewatch.yaml"))
        .args(input)
        .arg("--rules")
        .arg(root().join("rules"))
        .arg("--output")
        .arg(&out)
        .args(["--workers", "2", "--set", "stats.interval=0"])
        .args(["--checksum-checks", "none"])
        .args(["--set", "vars.address-groups.HOME_NET=any"])
        .args(["--set", "vars.address-groups.EXTERNAL_NET=any"])
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{input:?}: {}: {}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    let eve = std::fs::read_to_string(&out).unwrap();
    let mut got = BTreeMap::new();
    for a in alerts(&eve) {
        *got.entry(rule_of(&a)).or_default() += 1;
    }
    got
}

/// (d) The CI proof of no false positives: every rule of `rules/` —
/// signatures, Sigma rules and detectors, loaded as the README runs them
/// (`--rules rules/`) — stays quiet on
///
/// - the bundled benign captures (`fixtures/demo.pcap`,
///   `fixtures/attacks/benign.pcap`), always;
/// - with `../shared/data`: every capture of MANIFEST.tsv whose category is
///   in `BENIGN_PCAP_CATEGORIES` (ordinary traffic: `pcap:benign`, HTTP,
///   DNS, ICMP, IPv6, fragments, link types, SSH, syslog over the network,
///   TCP flags and streams, tunnels, VLANs) and every log file whose category
///   is in `BENIGN_LOG_CATEGORIES` (filebeat samples, loghub's Apache, HDFS,
///   Linux and Mac logs, the syslog wire formats and rsyslog's parser cases).
///
/// The files of those categories listed in `not_benign()` record real attacks
/// or anomalies (an LFI in a SYN payload, an anonymised land capture, a
/// fragment-overlap trace, RFC 3164's failed `su`, a server under SSH brute
/// force): each must raise exactly the alerts pinned there and nothing else.
/// Stricter than the deployed defaults: `$HOME_NET`/`$EXTERNAL_NET` are
/// opened to `any` and checksums are not validated, so neither a rule's
/// direction nor checksum offloading hides a content false positive; the
/// city's zone policy (rules/tests/detector-zone-policy/zonewatch.yaml) is
/// loaded. With CI=true a missing `../shared/data` fails the test; elsewhere
/// the shared part is skipped.
#[test]
fn whole_ruleset_stays_quiet_on_benign_captures_and_logs() {
    let mut inputs: Vec<(String, Vec<String>)> =
        ["fixtures/demo.pcap", "fixtures/attacks/benign.pcap"]
            .iter()
            .map(|f| {
                (
                    f.to_string(),
                    vec!["--pcap".into(), root().join(f).display().to_string()],
                )
            })
            .collect();
    let exceptions = not_benign();
    let mut seen_exceptions = 0;
    if let Some(data) = shared_or_skip("the shared corpus' benign captures and logs") {
        let caps = manifest_captures(&data, |category, _| {
            BENIGN_PCAP_CATEGORIES.contains(&category)
        });
        let logs = manifest_captures(&data, |category, file| {
            BENIGN_LOG_CATEGORIES.contains(&category)
                && !file.ends_with(".md")
                && !file.ends_with(".csv")
                && !file.ends_with("LICENSE")
        });
        assert!(caps.len() >= 50, "{} benign captures", caps.len());
        assert!(logs.len() >= 25, "{} benign logs", logs.len());
        for (flag, files) in [("--pcap", caps), ("--syslog-file", logs)] {
            for f in files {
                assert!(f.is_file(), "{} missing", f.display());
                let rel = f.strip_prefix(&data).unwrap().display().to_string();
                inputs.push((rel, vec![flag.into(), f.display().to_string()]));
            }
        }
    }
    let mut failures = Vec::new();
    for (name, args) in &inputs {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let got = ruleset_alerts(&args);
        match exceptions.iter().find(|(f, _, _)| f == name) {
            None => {
                if !got.is_empty() {
                    failures.push(format!("{name}: {got:?}"));
                }
            }
            Some((_, want, why)) => {
                seen_exceptions += 1;
                let ok = got.len() == want.len()
                    && want.iter().all(|(rule, n)| match (got.get(*rule), n) {
                        (Some(g), Some(n)) => g == n,
                        (Some(g), None) => *g > 0,
                        (None, _) => false,
                    });
                if !ok {
                    failures.push(format!("{name} ({why}): want {want:?}, got {got:?}"));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "alerts on benign input:\n{}",
        failures.join("\n")
    );
    if inputs.len() > 2 {
        assert_eq!(
            seen_exceptions,
            exceptions.len(),
            "a pinned file left the benign categories"
        );
    }
}

/// The SSH brute-force rule (9200025) on the shared corpus' password-guessing
/// capture (pcap:bruteforce, 11 SSH sessions from one client in 66 s): one
/// alert, for that client.
#[test]
fn ssh_bruteforce_rule_catches_the_shared_guessing_capture() {
    let Some(data) = shared_or_skip("the shared SSH guessing capture") else {
        return;
    };
    let caps = manifest_captures(&data, |category, file| {
        category == "pcap:bruteforce" && file.ends_with("sshguess.pcap")
    });
    assert_eq!(caps.len(), 1, "{caps:?}");
    let got = city_alerts(
        &caps[0],
        &[
            "--checksum-checks",
            "none",
            "--set",
            "vars.address-groups.HOME_NET=any",
            "--set",
            "vars.address-groups.EXTERNAL_NET=any",
        ],
    );
    let sids: Vec<u64> = got.iter().map(sid).collect();
    assert_eq!(sids, [9200025], "{got:#?}");
    assert_eq!(got[0]["src_ip"], "192.168.56.1");
}
