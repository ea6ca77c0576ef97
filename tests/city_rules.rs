//! The city's internet-zone signatures (`rules/signatures/city-internet-zone.rules`)
//! end to end through the binary: the README's `--rules rules/` loads
//! signatures, Sigma and detectors; each signature fires on
//! `fixtures/attacks/web-attacks.pcap` exactly as often as the capture calls
//! for; none fires on benign traffic (the bundled captures and, when
//! `../shared/data` is there, every capture its MANIFEST files as benign).

mod common;

use common::{root, run_zonewatch, shared_data};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const RULES: &str = "rules/signatures/city-internet-zone.rules";
const WEB_ATTACKS: &str = "fixtures/attacks/web-attacks.pcap";

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
    assert!((6..=10).contains(&sids.len()), "{sids:?}");
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
    assert_eq!(fired, city_sids(), "{stderr}");
}

/// (b) What fixtures/attacks/web-attacks.pcap holds (fixtures/make-fixtures.py,
/// `web_attack_packets`), and so how often each city rule must fire: each
/// rule alerts once per HTTP request (transaction) that matches it.
#[test]
fn each_city_signature_fires_as_often_as_the_capture_calls_for() {
    let want: BTreeMap<u64, usize> = [
        // URI, percent-encoded: ${jndi:ldap://...} (203.0.113.10) and
        // ${${::-j}${::-n}${::-d}${::-i}:rmi://...} (203.0.113.11).
        (9200001, 2),
        // Headers: User-Agent ${jndi:ldap://...}, X-Api-Version
        // ${${lower:j}ndi:${lower:l}dap://...}.
        (9200002, 2),
        // Raw URI: /static/../../../../etc/passwd, /cgi-bin/.%2e/%2e%2e/...,
        // ?doc=%2e%2e%2f%2e%2e%2fetc%2fpasswd, ?file=..%5c..%5cwindows%5cwin.ini
        // (not ?page=c:/windows/win.ini: no traversal there).
        (9200003, 4),
        // /etc/passwd after decoding: the ../ path and the %2f-encoded query.
        (9200004, 2),
        // win.ini: the ..%5c one and c:/windows/win.ini.
        (9200005, 2),
        // UNION ALL SELECT (%20) and union/**/select (+).
        (9200006, 2),
        // shell.php?cmd=id, x.jsp?exec=whoami, a.php?pass=1&cmd=uname+-a.
        (9200007, 3),
        // 12 POSTs to /wp-login.php and /admin/login from 203.0.113.50 within
        // 10 s: `type threshold, count 10` alerts on the 10th only; 4 POSTs
        // from 203.0.113.60 stay under the threshold.
        (9200008, 1),
        // One FTP login (PASS) from 10.20.40.15 to 198.51.100.21:21.
        (9200009, 1),
        // One Telnet login prompt from 198.51.100.23:23 to 10.20.40.16 (the
        // later "Last login:" line is no prompt).
        (9200010, 1),
    ]
    .into_iter()
    .collect();
    assert_eq!(
        want.keys().copied().collect::<Vec<_>>(),
        city_sids(),
        "every rule of the file has its expectation here"
    );

    for workers in ["1", "2"] {
        let alerts = city_alerts(&root().join(WEB_ATTACKS), &["--workers", workers]);
        let mut got: BTreeMap<u64, usize> = BTreeMap::new();
        for a in &alerts {
            *got.entry(sid(a)).or_default() += 1;
        }
        assert_eq!(got, want, "{workers} worker(s)");

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
                9200001..=9200007 => {
                    let src = a["src_ip"].as_str().unwrap();
                    assert!(src.starts_with("203.0.113."), "{a}");
                    assert_eq!(a["dest_ip"], "10.20.30.80", "{a}");
                    assert_eq!(a["app_proto"], "http", "{a}");
                }
                s => panic!("unexpected sid {s}"),
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
