//! Every event zonewatch writes must match the JSON Schema of its
//! `event_type` in `docs/schema/` (draft 2020-12), and every event of a run
//! must have its own `event_id`.
//!
//! The built binary runs on every capture under `fixtures/` and, when the
//! shared data set is there, under `../shared/data/pcaps` and
//! `../shared/data/suricata-verify/*/`. An event type without a schema is a
//! failure: a new type needs its schema (and its section in docs/events.md)
//! before it ships.

mod common;
use common::{captures_under, root};

use serde_json::Value;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// Event types with a schema file `docs/schema/<type>.schema.json`.
const TYPES: &[&str] = &[
    "flow", "anomaly", "stats", "alert", "http", "dns", "tls", "ssh", "smtp", "fileinfo",
];

/// The schemas refer to each other by relative URI (`common.schema.json`);
/// they are loaded from disk and registered under this base, so nothing is
/// fetched.
const BASE: &str = "file:///zonewatch/docs/schema/";

/// Settings that make the optional header fields appear (tenant, zones, a
/// non-UTC offset), for a second run over the fixtures.
const RICH: &[&str] = &[
    "--set",
    "sensor.name=city-internet-zone-01",
    "--set",
    "sensor.tenant=131016",
    "--set",
    "sensor.timezone=+09:00",
    "--set",
    "zones.lgwan=10.0.0.0/8",
    "--set",
    "zones.dmz=192.168.0.0/16",
    "--set",
    "zones.internet=0.0.0.0/0,::/0",
];

/// A note that shows even though the test harness captures output (skips
/// must be visible).
fn note(msg: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "note: {msg}");
}

fn schema_dir() -> PathBuf {
    root().join("docs/schema")
}

fn load_json(p: &Path) -> Value {
    let s = std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&s).unwrap_or_else(|e| panic!("{}: not JSON: {e}", p.display()))
}

/// One validator per event type, with the common schema registered.
fn validators() -> HashMap<&'static str, jsonschema::Validator> {
    let common = load_json(&schema_dir().join("common.schema.json"));
    let mut out = HashMap::new();
    for t in TYPES {
        let schema = load_json(&schema_dir().join(format!("{t}.schema.json")));
        if let Err(e) = jsonschema::meta::validate(&schema) {
            panic!("docs/schema/{t}.schema.json is not a valid schema: {e}");
        }
        let common_res = jsonschema::Resource::from_contents(common.clone())
            .expect("common.schema.json is a schema resource");
        let v = jsonschema::options()
            .with_draft(jsonschema::Draft::Draft202012)
            .should_validate_formats(true)
            .with_base_uri(format!("{BASE}{t}.schema.json"))
            .with_resource(format!("{BASE}common.schema.json"), common_res)
            .build(&schema)
            .unwrap_or_else(|e| panic!("docs/schema/{t}.schema.json does not compile: {e}"));
        out.insert(*t, v);
    }
    if let Err(e) = jsonschema::meta::validate(&common) {
        panic!("docs/schema/common.schema.json is not a valid schema: {e}");
    }
    out
}

/// What to run: (capture, display name, extra arguments).
fn inputs() -> Vec<(PathBuf, String, Vec<String>)> {
    let mut v = Vec::new();
    let fixtures = captures_under(&root().join("fixtures"));
    if fixtures.is_empty() {
        note("no captures under fixtures/ yet");
    }
    for f in fixtures {
        let name = format!("fixtures/{}", f.file_name().unwrap().to_string_lossy());
        // Attack captures run with the anomaly detectors, so their alerts are checked too.
        let extra = if f.parent().is_some_and(|d| d.ends_with("attacks")) {
            vec![
                "--rules".to_string(),
                root().join("rules/detectors").display().to_string(),
            ]
        } else {
            Vec::new()
        };
        v.push((f.clone(), name.clone(), extra));
        v.push((
            f,
            format!("{name} (tenant, zones, +09:00)"),
            RICH.iter().map(|s| s.to_string()).collect(),
        ));
    }
    // Logs beside packets: Sigma alerts from the log fixture, without and
    // with the raw message in `log.raw`.
    let demo = root().join("fixtures/demo.pcap");
    let logs = root().join("fixtures/logs/auth.log");
    if demo.is_file() && logs.is_file() {
        let mut extra: Vec<String> = vec![
            "--syslog-file".into(),
            logs.display().to_string(),
            "--rules".into(),
            root().join("rules/sigma").display().to_string(),
        ];
        v.push((
            demo.clone(),
            "fixtures/demo.pcap + fixtures/logs/auth.log".into(),
            extra.clone(),
        ));
        extra.extend(RICH.iter().map(|s| s.to_string()));
        extra.extend(["--set".into(), "syslog.include-message=true".into()]);
        v.push((
            demo,
            "fixtures/demo.pcap + fixtures/logs/auth.log (tenant, zones, message)".into(),
            extra,
        ));
    }
    let shared = root().join("../shared/data");
    if !shared.is_dir() {
        note(&format!(
            "{} is absent; only fixtures/ are checked",
            shared.display()
        ));
        return v;
    }
    let mut caps = captures_under(&shared.join("pcaps"));
    if let Ok(rd) = std::fs::read_dir(shared.join("suricata-verify")) {
        let mut dirs: Vec<PathBuf> = rd
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_dir())
            .collect();
        dirs.sort();
        for d in dirs {
            caps.extend(captures_under(&d));
        }
    }
    for c in caps {
        let name = c.strip_prefix(&shared).unwrap_or(&c).display().to_string();
        // Suricata-verify cases run with their rules, so alerts are checked too.
        let rules = c.parent().map(|d| d.join("test.rules"));
        let extra = match rules {
            Some(r) if r.is_file() => vec!["--rules".to_string(), r.display().to_string()],
            _ => Vec::new(),
        };
        v.push((c, name, extra));
    }
    v
}

/// Runs zonewatch on one capture and returns its output lines.
fn run(cap: &Path, extra: &[&str], out: &Path) -> Result<Vec<String>, String> {
    let s = common::run_zonewatch(cap, extra, out)?;
    Ok(s.lines().map(str::to_string).collect())
}

/// Problems of one run: (event_type, instance path, message) per bad line.
fn check_lines(
    v: &HashMap<&'static str, jsonschema::Validator>,
    lines: &[String],
) -> (Vec<(String, String, String, usize)>, usize) {
    let mut problems = Vec::new();
    let mut ids: HashSet<String> = HashSet::new();
    for (i, line) in lines.iter().enumerate() {
        let n = i + 1;
        let ev: Value = match serde_json::from_str(line) {
            Ok(ev) => ev,
            Err(e) => {
                problems.push(("?".into(), String::new(), format!("not JSON: {e}"), n));
                continue;
            }
        };
        let et = ev["event_type"].as_str().unwrap_or("?").to_string();
        match ev["event_id"].as_str() {
            Some(id) if !ids.insert(id.to_string()) => problems.push((
                et.clone(),
                "/event_id".into(),
                format!("event_id {id} repeats an earlier event of this run"),
                n,
            )),
            _ => {}
        }
        let Some(val) = v.get(et.as_str()) else {
            problems.push((
                et.clone(),
                "/event_type".into(),
                format!("no schema for event_type {et:?} (docs/schema/{et}.schema.json)"),
                n,
            ));
            continue;
        };
        // A failing `$ref` drops its annotations, so `unevaluatedProperties`
        // then lists every common field too: report it only when it is the
        // sole complaint (a truly unknown field).
        let errs: Vec<_> = val.iter_errors(&ev).collect();
        let unevaluated = |e: &jsonschema::ValidationError| {
            matches!(
                e.kind,
                jsonschema::error::ValidationErrorKind::UnevaluatedProperties { .. }
            )
        };
        let only_unevaluated = errs.iter().all(unevaluated);
        for err in errs
            .iter()
            .filter(|e| only_unevaluated || !unevaluated(e))
            .take(5)
        {
            problems.push((
                et.clone(),
                err.instance_path.to_string(),
                err.to_string(),
                n,
            ));
        }
    }
    (problems, lines.len())
}

/// (capture, line, event_type, instance path, message).
type Failure = (String, usize, String, String, String);

#[test]
fn every_event_matches_its_schema_and_ids_are_unique() {
    let v = validators();
    let work = inputs();
    let tmp = tempfile::tempdir().expect("temp dir");
    let next = AtomicUsize::new(0);
    let failures: Mutex<Vec<Failure>> = Mutex::new(Vec::new());
    let counts: Mutex<BTreeMap<String, usize>> = Mutex::new(BTreeMap::new());
    std::thread::scope(|s| {
        for t in 0..2 {
            let (v, work, next, failures, counts, tmp) =
                (&v, &work, &next, &failures, &counts, tmp.path());
            s.spawn(move || loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((cap, name, extra)) = work.get(i) else {
                    break;
                };
                let out = tmp.join(format!("{t}-{i}.json"));
                let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
                match run(cap, &extra, &out) {
                    Err(e) => failures.lock().unwrap().push((
                        name.clone(),
                        0,
                        String::new(),
                        String::new(),
                        e,
                    )),
                    Ok(lines) => {
                        for l in &lines {
                            if let Some(et) = serde_json::from_str::<Value>(l)
                                .ok()
                                .and_then(|e| e["event_type"].as_str().map(str::to_string))
                            {
                                *counts.lock().unwrap().entry(et).or_default() += 1;
                            }
                        }
                        let (problems, _) = check_lines(v, &lines);
                        let mut f = failures.lock().unwrap();
                        for (et, path, msg, n) in problems {
                            f.push((name.clone(), n, et, path, msg));
                        }
                    }
                }
                let _ = std::fs::remove_file(&out);
            });
        }
    });
    let counts = counts.into_inner().unwrap();
    eprintln!("schema: {} runs, events by type: {:?}", work.len(), counts);
    let mut failures = failures.into_inner().unwrap();
    if failures.is_empty() {
        return;
    }
    failures.sort();
    // Group by rule so that one bug reads as one line with its count.
    let mut groups: BTreeMap<(String, String, String), (usize, Vec<String>)> = BTreeMap::new();
    for (cap, n, et, path, msg) in &failures {
        let g = groups
            .entry((et.clone(), path.clone(), msg.clone()))
            .or_default();
        g.0 += 1;
        if g.1.len() < 3 {
            g.1.push(format!("{cap}:{n}"));
        }
    }
    let mut report = format!(
        "{} schema problem(s) in {} distinct form(s):\n",
        failures.len(),
        groups.len()
    );
    for ((et, path, msg), (count, examples)) in groups.iter().take(60) {
        report.push_str(&format!(
            "  {count:>5} x [{et}] at {path:?}: {msg}  (e.g. {})\n",
            examples.join(", ")
        ));
    }
    panic!("{report}");
}

/// The schemas are strict where it matters: a known-good event passes and
/// each of these single mistakes is caught.
#[test]
fn schemas_reject_malformed_events() {
    let v = validators();
    let good_flow: Value = serde_json::json!({
        "timestamp": "2026-11-25T20:30:45.123456+0900",
        "flow_id": 1215339140068083u64,
        "event_type": "flow",
        "event_id": "c2100b43-5f4e-c561-1277-c2e8245ba803",
        "host": "zonewatch",
        "tenant": "131016",
        "vlan": [100],
        "src_ip": "10.20.0.5",
        "src_port": 1234,
        "dest_ip": "2001:db8::1",
        "dest_port": 443,
        "proto": "TCP",
        "src_zone": "lgwan",
        "dest_zone": "internet",
        "community_id": "1:4zG9gmlT+toaxBFVYWah4siHhCk=",
        "flow": {
            "pkts_toserver": 3, "pkts_toclient": 2, "bytes_toserver": 200, "bytes_toclient": 100,
            "start": "2026-11-25T20:30:40.000000+0900", "end": "2026-11-25T20:30:45.000000+0900",
            "age": 5, "state": "closed", "reason": "timeout", "alerted": false
        },
        "tcp": {"tcp_flags": "1b", "tcp_flags_ts": "1b", "tcp_flags_tc": "13",
                "syn": true, "fin": true, "psh": true, "ack": true, "state": "closed"}
    });
    let good_anomaly: Value = serde_json::json!({
        "timestamp": "1999-11-28T02:12:38.548221+0000",
        "event_type": "anomaly",
        "event_id": "8dd467d1-7c24-8ca3-b0fb-528501f36d46",
        "host": "zonewatch",
        "src_ip": "1.1.1.1", "dest_ip": "2.2.2.2", "proto": "IGMP",
        "anomaly": {"type": "decode", "event": "decoder.ipv4.trunc_pkt"}
    });
    let flow = &v["flow"];
    let anomaly = &v["anomaly"];
    let errs = |val: &jsonschema::Validator, e: &Value| -> Vec<String> {
        val.iter_errors(e).map(|x| x.to_string()).collect()
    };
    assert!(
        errs(flow, &good_flow).is_empty(),
        "{:?}",
        errs(flow, &good_flow)
    );
    assert!(
        errs(anomaly, &good_anomaly).is_empty(),
        "{:?}",
        errs(anomaly, &good_anomaly)
    );

    type Edit = fn(&mut Value);
    let bad_flows: &[(&str, Edit)] = &[
        ("timestamp without µs", |e| {
            e["timestamp"] = "2026-11-25T20:30:45+09:00".into()
        }),
        ("offset with colon", |e| {
            e["timestamp"] = "2026-11-25T20:30:45.123456+09:00".into()
        }),
        ("flow_id as string", |e| e["flow_id"] = "42".into()),
        ("event_id upper case", |e| {
            e["event_id"] = "C2100B43-5F4E-C561-1277-C2E8245BA803".into()
        }),
        ("bad address", |e| e["src_ip"] = "10.20.0.256".into()),
        ("port out of range", |e| e["src_port"] = 70000.into()),
        ("proto as a number", |e| e["proto"] = 6.into()),
        ("proto number that has a name", |e| e["proto"] = "2".into()),
        ("lower-case proto", |e| e["proto"] = "tcp".into()),
        ("vlan 0", |e| e["vlan"] = serde_json::json!([0])),
        ("three vlans", |e| e["vlan"] = serde_json::json!([1, 2, 3])),
        ("missing flow_id", |e| {
            e.as_object_mut().unwrap().remove("flow_id");
        }),
        ("missing dest_port", |e| {
            e.as_object_mut().unwrap().remove("dest_port");
        }),
        ("unknown top-level field", |e| {
            e["app_protocol"] = "http".into()
        }),
        ("unknown flow field", |e| {
            e["flow"]["bypass"] = "local".into()
        }),
        ("flow.state bypassed", |e| {
            e["flow"]["state"] = "bypassed".into()
        }),
        ("flow.reason unknown", |e| {
            e["flow"]["reason"] = "idle".into()
        }),
        ("no packet to server", |e| {
            e["flow"]["pkts_toserver"] = 0.into()
        }),
        ("negative age", |e| e["flow"]["age"] = (-1).into()),
        ("tcp.state listen", |e| e["tcp"]["state"] = "listen".into()),
        ("tcp flag false", |e| e["tcp"]["rst"] = false.into()),
        ("tcp_flags upper case", |e| {
            e["tcp"]["tcp_flags"] = "1B".into()
        }),
        ("unknown tcp field", |e| e["tcp"]["gap_ts"] = true.into()),
        ("tcp object missing on TCP", |e| {
            e.as_object_mut().unwrap().remove("tcp");
        }),
        ("tcp object on UDP", |e| e["proto"] = "UDP".into()),
        ("ports on ICMP", |e| {
            e["proto"] = "ICMP".into();
            e.as_object_mut().unwrap().remove("tcp");
        }),
        ("bad community_id", |e| e["community_id"] = "2:abc".into()),
        ("stats object in a flow", |e| {
            e["stats"] = serde_json::json!({})
        }),
    ];
    for (what, edit) in bad_flows {
        let mut e = good_flow.clone();
        edit(&mut e);
        assert!(!errs(flow, &e).is_empty(), "flow schema accepted: {what}");
    }
    let bad_anomalies: &[(&str, Edit)] = &[
        ("anomaly.type unknown", |e| {
            e["anomaly"]["type"] = "decoder".into()
        }),
        ("decode event without prefix", |e| {
            e["anomaly"]["event"] = "ipv4.trunc_pkt".into()
        }),
        ("unknown anomaly field", |e| e["anomaly"]["code"] = 5.into()),
        ("ports on IGMP", |e| {
            e["src_port"] = 1.into();
            e["dest_port"] = 2.into();
        }),
        ("src_ip without dest_ip", |e| {
            e.as_object_mut().unwrap().remove("dest_ip");
        }),
        ("wrong event_type", |e| e["event_type"] = "flow".into()),
    ];
    for (what, edit) in bad_anomalies {
        let mut e = good_anomaly.clone();
        edit(&mut e);
        assert!(
            !errs(anomaly, &e).is_empty(),
            "anomaly schema accepted: {what}"
        );
    }
    // A Sigma alert from a log record (docs/events.md).
    let alert = &v["alert"];
    let good_sigma: Value = serde_json::json!({
        "timestamp": "2026-11-19T18:15:26.390002+0000",
        "event_type": "alert",
        "event_id": "d9ef25dd-fd77-fb59-a2b7-421bd5e90553",
        "host": "zonewatch",
        "src_ip": "203.0.113.50",
        "dest_ip": "0.0.0.0",
        "proto": "HOPOPT",
        "alert": {"action": "allowed", "gid": 1, "signature_id": 2809238297u64, "rev": 1,
            "signature": "SSH Brute Force From One Source",
            "category": "Log: credential-access", "severity": 2,
            "metadata": {"sigma_id": ["6f1b8c62-2a0e-4c1e-9b43-3f7d2f1a0010"]}},
        "stream": 0,
        "log": {"facility": "user", "format": "plain", "hostname": "gw01",
            "program": "sshd", "severity": "notice", "fields": {"user": "ubuntu"},
            "timestamp": "2026-11-19T18:15:26.390002+0000"},
        "evidence": {
            "sigma": {"rule_id": "6f1b8c62-2a0e-4c1e-9b43-3f7d2f1a0010", "level": "high",
                "tags": ["attack.t1110.001"],
                "correlation": {"type": "event_count", "count": 5,
                    "group": {"src_host": "203.0.113.50"},
                    "rules": ["6f1b8c62-2a0e-4c1e-9b43-3f7d2f1a0001"],
                    "window_start": "2026-11-19T18:15:10.518811+0000",
                    "window_end": "2026-11-19T18:15:26.390002+0000"}}
        }
    });
    assert_eq!(errs(alert, &good_sigma), Vec::<String>::new());
    let bad_sigma: &[(&str, Edit)] = &[
        ("unknown log field", |e| e["log"]["message"] = "x".into()),
        ("sigma level unknown", |e| {
            e["evidence"]["sigma"]["level"] = "severe".into()
        }),
        ("correlation type unknown", |e| {
            e["evidence"]["sigma"]["correlation"]["type"] = "count".into()
        }),
        ("evidence neither detector nor sigma", |e| {
            e["evidence"].as_object_mut().unwrap().remove("sigma");
        }),
        ("log timestamp not EVE", |e| {
            e["log"]["timestamp"] = "Nov 19 18:15:26".into()
        }),
    ];
    for (what, edit) in bad_sigma {
        let mut e = good_sigma.clone();
        edit(&mut e);
        assert!(!errs(alert, &e).is_empty(), "alert schema accepted: {what}");
    }
}
