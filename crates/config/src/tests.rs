use super::*;

#[test]
fn defaults_match_suricata() {
    let c = Config::default();
    assert_eq!(
        c.address_groups["HOME_NET"],
        "[192.168.0.0/16,10.0.0.0/8,172.16.0.0/12]"
    );
    assert_eq!(c.address_groups["EXTERNAL_NET"], "!$HOME_NET");
    assert_eq!(c.port_groups["HTTP_PORTS"], "80");
    assert_eq!(c.flow.timeouts.tcp.established, 600);
    assert!(!c.stream.midstream);
}

#[test]
fn yaml_sets_values_and_zones() {
    let mut c = Config::default();
    let w = c
        .apply_yaml(
            "sensor:\n  name: city-a\n  tenant: \"131016\"\n  timezone: \"+09:00\"\nflow:\n  memcap: 64mb\nzones:\n  mynumber: [10.10.0.0/16]\n  lgwan: [10.20.0.0/16]\n  internet: [0.0.0.0/0]\nflow-timeouts:\n  tcp:\n    established: 120\n",
            "t.yaml",
        )
        .unwrap();
    assert!(w.is_empty());
    assert_eq!(c.sensor.name, "city-a");
    assert_eq!(c.sensor.tenant.as_deref(), Some("131016"));
    assert_eq!(c.sensor.timezone.0, 9 * 3600);
    assert_eq!(c.flow.memcap_bytes, 64 << 20);
    assert_eq!(c.flow.timeouts.tcp.established, 120);
    let zone = |name: &str| {
        c.zones
            .zones()
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, nets)| nets)
    };
    assert_eq!(
        zone("mynumber").unwrap(),
        &["10.10.0.0/16".parse().unwrap()]
    );
    assert_eq!(zone("internet").unwrap(), &["0.0.0.0/0".parse().unwrap()]);
}

#[test]
fn unknown_keys_are_errors_with_lines_and_all_are_reported() {
    let mut c = Config::default();
    let e = c
        .apply_yaml("flow:\n  memcapp: 1mb\nworkers: 2\nbogus: 1\n", "z.yaml")
        .unwrap_err();
    assert_eq!(e.problems.len(), 2);
    assert_eq!(
        e.problems[0].to_string(),
        "z.yaml:2: unknown key `flow.memcapp`"
    );
    assert_eq!(e.problems[1].line, 4);
}

#[test]
fn suricata_keys_warn_and_bad_values_error() {
    let mut c = Config::default();
    let w = c
        .apply_yaml(
            "mpm-algo: hs\nflow:\n  hash-size: 65536\noutputs:\n  - eve-log:\n      enabled: yes\n",
            "s.yaml",
        )
        .unwrap();
    assert_eq!(w.len(), 3);
    assert!(w[0].message.contains("mpm-algo"));
    let e = c
        .apply_yaml("flow:\n  memcap: lots\n", "s.yaml")
        .unwrap_err();
    assert!(e.problems[0].message.contains("not a size"), "{e}");
}

#[test]
fn overrides_reach_any_key_including_suricata_names() {
    let mut c = Config::default();
    c.apply_override("vars.address-groups.HOME_NET=[10.1.0.0/16]")
        .unwrap();
    assert_eq!(c.address_groups["HOME_NET"], "[10.1.0.0/16]");
    c.apply_override("stream.reassembly.depth=2mb").unwrap();
    c.apply_override("stream.reassembly.policy=linux").unwrap();
    assert_eq!(c.stream.policy, zonewatch_stream::OverlapPolicy::Linux);
    assert!(c.apply_override("defrag.policy=plan9").is_err());
    assert_eq!(c.stream.reassembly_depth_bytes, 2 << 20);
    c.apply_override("output.types=alert,flow").unwrap();
    assert_eq!(c.output.types, ["alert", "flow"]);
    assert!(c.apply_override("mpm-algo=hs").unwrap().is_some());
    assert!(c.apply_override("nope.key=1").is_err());
    assert!(c.apply_override("output.types=alert,bogus").is_err());
    assert!(c.apply_override("noequals").is_err());
}

#[test]
fn sizes() {
    assert_eq!(parse_size("32mb").unwrap(), 32 << 20);
    assert_eq!(parse_size("1GB").unwrap(), 1 << 30);
    assert_eq!(parse_size("4096").unwrap(), 4096);
    assert!(parse_size("-1").is_err());
    assert!(parse_size("99999999999gb").is_err());
}

#[test]
fn example_config_in_repo_loads() {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../zonewatch.example.yaml");
    let (c, warnings) = Config::from_file(&p).unwrap_or_else(|e| panic!("{e}"));
    assert!(warnings.is_empty(), "{warnings:?}");
    for z in ["mynumber", "lgwan", "internet", "dmz"] {
        assert!(c.zones.names().any(|n| n == z), "zone {z} missing");
    }
}

#[test]
fn syslog_keys() {
    let mut c = Config::default();
    assert_eq!(c.syslog.max_frame_bytes, 64 << 10);
    assert!(!c.syslog.include_message);
    let text = "syslog:\n  tls:\n    cert: /etc/zw/s.crt\n    key: /etc/zw/s.key\n    client-ca: /etc/zw/ca.crt\n  max-frame-size: 8kb\n  channel-size: 1024\n  idle-timeout: 60\n  max-connections: 2000\n  include-message: true\n";
    let problems = c.apply_yaml(text, "t.yaml").unwrap();
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(
        c.syslog.tls_cert.as_deref(),
        Some(std::path::Path::new("/etc/zw/s.crt"))
    );
    assert_eq!(
        c.syslog.tls_key.as_deref(),
        Some(std::path::Path::new("/etc/zw/s.key"))
    );
    assert_eq!(
        c.syslog.tls_client_ca.as_deref(),
        Some(std::path::Path::new("/etc/zw/ca.crt"))
    );
    assert_eq!(c.syslog.max_frame_bytes, 8 << 10);
    assert_eq!(c.syslog.channel_records, 1024);
    assert_eq!(c.syslog.idle_timeout_secs, 60);
    assert_eq!(c.syslog.max_connections, 2000);
    assert!(c.syslog.include_message);
    assert!(c.apply_override("syslog.max-frame-sise=1kb").is_err());
}

#[test]
fn encryption_handling_as_suricata_names_it() {
    let mut c = Config::default();
    assert_eq!(
        (
            c.app_layer.tls_inspect_encrypted,
            c.app_layer.ssh_inspect_encrypted
        ),
        (false, false)
    );
    c.apply_override("app-layer.protocols.ssh.encryption-handling=full")
        .unwrap();
    assert_eq!(
        (
            c.app_layer.tls_inspect_encrypted,
            c.app_layer.ssh_inspect_encrypted
        ),
        (false, true)
    );
    // Suricata 6's spelling for TLS.
    c.apply_override("app-layer.protocols.tls.encrypt-handling=full")
        .unwrap();
    assert_eq!(
        (
            c.app_layer.tls_inspect_encrypted,
            c.app_layer.ssh_inspect_encrypted
        ),
        (true, true)
    );
    c.apply_override("app-layer.protocols.tls.encryption-handling=bypass")
        .unwrap();
    assert_eq!(
        (
            c.app_layer.tls_inspect_encrypted,
            c.app_layer.ssh_inspect_encrypted
        ),
        (false, true)
    );
    assert!(c
        .apply_override("app-layer.protocols.tls.encryption-handling=maybe")
        .is_err());
}

#[test]
fn numbers_out_of_range_are_errors_naming_the_key_and_line() {
    let mut c = Config::default();
    let e = c
        .apply_yaml(
            "workers: 100000\nstats:\n  interval: 18446744073709551615\nsyslog:\n  channel-size: 1000000000\nflow:\n  memcap: 2tb\n",
            "r.yaml",
        )
        .unwrap_err();
    let got: Vec<String> = e.problems.iter().map(|p| p.to_string()).collect();
    assert_eq!(got.len(), 4, "{got:?}");
    assert!(
        got[0].starts_with("r.yaml:1: `workers`: \"100000\" is out of range 0..=1024"),
        "{got:?}"
    );
    assert!(
        got[1].starts_with(
            "r.yaml:3: `stats.interval`: \"18446744073709551615\" is out of range 0..=86400"
        ),
        "{got:?}"
    );
    assert!(
        got[2].starts_with("r.yaml:5: `syslog.channel-size`"),
        "{got:?}"
    );
    // "2tb" is not a size zonewatch reads; the message still names the key.
    assert!(got[3].starts_with("r.yaml:7: `flow.memcap`"), "{got:?}");
    // Nothing was clamped into place.
    assert_eq!(c.pipeline.workers, Config::default().pipeline.workers);
    assert_eq!(c.syslog.channel_records, 65_536);

    let e = c.apply_override("workers=100000").unwrap_err();
    assert!(e.to_string().starts_with("--set: `workers`: "), "{e}");
    let e = c.apply_override("flow.memcap=4096gb").unwrap_err();
    assert!(e.to_string().contains("out of range 64kb..=1024gb"), "{e}");
    let e = c
        .apply_flag("--stats-interval", "stats.interval", "18446744073709551615")
        .unwrap_err();
    assert!(
        e.to_string().starts_with(
            "--stats-interval: `stats.interval`: \"18446744073709551615\" is out of range"
        ),
        "{e}"
    );
    assert!(c.apply_override("capture.buffer-size=2gb").is_err());
    assert!(c.apply_override("flow-timeouts.udp.new=1000000").is_err());
    assert!(c.apply_override("community-id.seed=70000").is_err());
    assert!(c.apply_override("detect.stream-window=2mb").is_err());
    // Values in range still apply.
    c.apply_flag("--workers", "workers", "1024").unwrap();
    c.apply_override("syslog.channel-size=1048576").unwrap();
    c.apply_override("stats.interval=86400").unwrap();
    c.apply_override("flow-timeouts.udp.new=604800").unwrap();
    assert_eq!(
        (c.pipeline.workers, c.syslog.channel_records),
        (1024, 1 << 20)
    );
    assert_eq!(
        (c.output.stats_interval_secs, c.flow.timeouts.udp.new),
        (86_400, 604_800)
    );
    // Bad numbers of any key name it.
    let e = c.apply_override("flow.hash-seed=-1").unwrap_err();
    assert!(e.to_string().contains("`flow.hash-seed`"), "{e}");
}

#[test]
fn queue_slots_are_bounded_across_keys() {
    let mut c = Config::default();
    c.apply_override("pipeline.queue-batches=65536").unwrap();
    assert!(c.check_totals(16).is_ok());
    let e = c.check_totals(1024).unwrap_err();
    assert!(e.to_string().contains("pipeline.queue-batches"), "{e}");
}

#[test]
fn detect_capture_and_app_layer_typos_are_errors_suricata_keys_warn() {
    let mut c = Config::default();
    let text = "detect:\n  stream-windw: 2kb\n  profile: medium\ncapture:\n  disable-offloading: yes\n  snaplenn: 1500\napp-layer:\n  protocols:\n    tls:\n      ja3-fingerprints: auto\n      encryption-handlin: full\n    smb:\n      enabled: yes\n    gopher:\n      enabled: yes\n    http:\n      libhtp:\n        default-config:\n          personality: IDS\n          request-body-limt: 1kb\nthreading:\n  set-cpu-affinity: no\n  workers: 2\n";
    let e = c.apply_yaml(text, "s.yaml").unwrap_err();
    let got: Vec<String> = e.problems.iter().map(|p| p.to_string()).collect();
    assert_eq!(
        got,
        [
            "s.yaml:2: unknown key `detect.stream-windw`",
            "s.yaml:6: unknown key `capture.snaplenn`",
            "s.yaml:11: unknown key `app-layer.protocols.tls.encryption-handlin`",
            "s.yaml:15: unknown key `app-layer.protocols.gopher.enabled`",
            "s.yaml:20: unknown key `app-layer.protocols.http.libhtp.default-config.request-body-limt`",
        ]
    );
    let ok = "detect:\n  stream-window: 2kb\n  profile: medium\n  grouping:\n    tcp-whitelist: 53, 80\ncapture:\n  disable-offloading: yes\napp-layer:\n  error-policy: ignore\n  protocols:\n    tls:\n      ja3-fingerprints: auto\n      detection-ports:\n        dp: 443\n    smb:\n      enabled: yes\n      detection-ports:\n        dp: 139, 445\n    http:\n      libhtp:\n        default-config:\n          personality: IDS\n        server-config:\n          - apache:\n              address: [192.168.1.0/24]\nthreading:\n  set-cpu-affinity: no\n  workers: 2\n";
    let mut c = Config::default();
    let w = c.apply_yaml(ok, "s.yaml").unwrap();
    let keys: Vec<usize> = w.iter().map(|p| p.line).collect();
    assert_eq!(keys, [3, 5, 7, 9, 12, 14, 16, 18, 22, 23, 27], "{w:?}");
    assert_eq!(
        (c.detect.stream_window_bytes, c.pipeline.workers),
        (2048, 2)
    );
}

#[test]
fn all_digit_tenant_stays_a_string_and_aliases_work() {
    let mut c = Config::default();
    c.apply_yaml("sensor:\n  tenant: 013100\n", "t.yaml")
        .unwrap();
    assert_eq!(c.sensor.tenant.as_deref(), Some("013100"));
    let mut c = Config::default();
    c.apply_yaml(
        "sensor:\n  name: &code 13100\n  tenant: *code\n  timezone: \"+09:00\"\n",
        "t.yaml",
    )
    .unwrap();
    assert_eq!(c.sensor.tenant.as_deref(), Some("13100"));
    assert_eq!(c.sensor.name, "13100");
    assert_eq!(c.sensor.timezone.0, 9 * 3600);
    c.apply_override("sensor.tenant=13100").unwrap();
    assert_eq!(c.sensor.tenant.as_deref(), Some("13100"));
}

#[test]
fn alias_bomb_in_a_config_file_is_refused_with_file_and_line() {
    let dir = std::env::temp_dir().join(format!("zw-config-bomb-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("bomb.yaml");
    let mut text =
        String::from("sensor:\n  name: x\nvars:\n  l0: &l0 [a, a, a, a, a, a, a, a, a, a]\n");
    for i in 1..10 {
        let q = i - 1;
        text.push_str(&format!(
            "  l{i}: &l{i} [*l{q}, *l{q}, *l{q}, *l{q}, *l{q}, *l{q}, *l{q}, *l{q}, *l{q}, *l{q}]\n"
        ));
    }
    std::fs::write(&p, &text).unwrap();
    let t0 = std::time::Instant::now();
    let e = Config::from_file(&p).unwrap_err();
    assert!(t0.elapsed() < std::time::Duration::from_secs(2));
    assert_eq!(e.problems.len(), 1);
    let msg = e.to_string();
    assert!(
        msg.starts_with(&format!("{}:7: YAML alias *l2 expands", p.display())),
        "{msg}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn config_file_must_be_utf8_text_of_sane_size() {
    let dir = std::env::temp_dir().join(format!("zw-config-utf8-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("latin1.yaml");
    std::fs::write(&p, b"sensor:\n  name: caf\xe9\n".as_slice()).unwrap();
    let e = Config::from_file(&p).unwrap_err();
    assert_eq!(e.to_string(), format!("{}:2: not UTF-8 text", p.display()));
    let e = Config::from_file(std::path::Path::new("/dev/zero")).unwrap_err();
    assert_eq!(e.to_string(), "/dev/zero: larger than 16 MiB");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn run_as_keys() {
    let mut c = Config::default();
    assert_eq!(
        (c.run_as.user.as_deref(), c.run_as.group.as_deref()),
        (None, None)
    );
    // The example file's commented section, as an operator would write it.
    let w = c
        .apply_yaml("run-as:\n  user: zonewatch\n  group: \"1234\"\n", "t.yaml")
        .unwrap();
    assert!(w.is_empty(), "run-as is a real section now: {w:?}");
    assert_eq!(c.run_as.user.as_deref(), Some("zonewatch"));
    assert_eq!(c.run_as.group.as_deref(), Some("1234"));
    for bad in ["run-as.user=", "run-as.user=a b", "run-as.group=x:y"] {
        let e = c.apply_override(bad).unwrap_err().to_string();
        assert!(e.contains("run-as."), "{bad}: {e}");
    }
    let e = c.apply_yaml("run-as:\n  uid: 5\n", "t.yaml").unwrap_err();
    assert!(e.to_string().contains("unknown key `run-as.uid`"), "{e}");
}

#[test]
fn metrics_listen_key() {
    let mut c = Config::default();
    assert_eq!(c.output.metrics_listen, None);
    let problems = c
        .apply_yaml("metrics:\n  listen: 127.0.0.1:9187\n", "t.yaml")
        .unwrap();
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(
        c.output.metrics_listen,
        Some("127.0.0.1:9187".parse().unwrap())
    );
    c.apply_override("metrics.listen=[::1]:0").unwrap();
    assert_eq!(c.output.metrics_listen, Some("[::1]:0".parse().unwrap()));
    c.apply_override("metrics.listen=off").unwrap();
    assert_eq!(c.output.metrics_listen, None);
    let e = c
        .apply_override("metrics.listen=localhost:9187")
        .unwrap_err();
    assert!(e.to_string().contains("metrics.listen"), "{e}");
    assert!(e.to_string().contains("ADDR:PORT"), "{e}");
    let e = c.apply_override("metrics.listen=127.0.0.1").unwrap_err();
    assert!(e.to_string().contains("ADDR:PORT"), "{e}");
}

#[test]
fn every_key_of_the_range_table_is_read_by_a_section() {
    // A range whose key no section reads would never be consulted.
    for r in ranges::RANGES {
        for k in r.keys {
            let key = k.replace('*', "tcp");
            let kv = format!("{key}={}", r.min);
            let mut c = Config::default();
            assert_eq!(c.apply_override(&kv), Ok(None), "{kv}");
        }
    }
}

#[test]
fn checksum_validation_is_a_mode() {
    let mut c = Config::default();
    assert_eq!(c.stream.checksum_validation, ChecksumMode::Auto);
    c.apply_yaml("stream:\n  checksum-validation: no\n", "c.yaml")
        .unwrap();
    assert_eq!(c.stream.checksum_validation, ChecksumMode::None);
    c.apply_override("stream.checksum-validation=yes").unwrap();
    assert_eq!(c.stream.checksum_validation, ChecksumMode::All);
    c.apply_override("stream.checksum-validation=auto").unwrap();
    assert_eq!(c.stream.checksum_validation, ChecksumMode::Auto);
    assert!(c
        .apply_override("stream.checksum-validation=maybe")
        .is_err());
}

#[test]
fn flow_timeouts_by_protocol_and_state() {
    let mut c = Config::default();
    c.apply_override("flow-timeouts.icmp.emergency-closed=7")
        .unwrap();
    assert_eq!(c.flow.timeouts.icmp.emergency_closed, 7);
    // Suricata's bypass timeouts mean nothing here: a warning, not an error.
    assert!(c
        .apply_override("flow-timeouts.udp.bypassed=10")
        .unwrap()
        .is_some());
    let e = c
        .apply_override("flow-timeouts.tcp.half-open=10")
        .unwrap_err();
    assert!(e.to_string().contains("unknown key"), "{e}");
    assert!(c.apply_override("flow-timeouts.sctp.new=10").is_err());
    assert!(c.apply_override("flow-timeouts.tcp=10").is_err());
}

#[test]
fn every_key_of_the_new_sections_can_be_set_from_the_command_line() {
    // Each override must land somewhere: the configuration differs from the defaults.
    for kv in [
        "sensor.name=s2",
        "sensor-name=s2",
        "sensor.tenant=0042",
        "sensor.timezone=+09:00",
        "workers=3",
        "threading.workers=3",
        "flow.memcap=1mb",
        "flow.hash-seed=7",
        "flow-timeouts.default.closed=9",
        "community-id.enabled=no",
        "community-id=no",
        "community-id.seed=5",
        "community-id-seed=5",
        "alert.payload=yes",
        "alert.payload-printable=yes",
        "alert.packet=yes",
        "output.path=/tmp/e.json",
        "output.types=alert",
        "stats.interval=10",
        "metrics.listen=127.0.0.1:9187",
        "detect.stream-window=4kb",
        "classification-file=/etc/c.config",
        "threshold-file=/etc/t.config",
        "stream.checksum-validation=no",
    ] {
        let mut c = Config::default();
        assert_eq!(c.apply_override(kv), Ok(None), "{kv}");
        assert_ne!(c, Config::default(), "{kv} changed nothing");
    }
    let mut c = Config::default();
    c.apply_override("community-id.seed=5").unwrap();
    assert_eq!(c.community_id.seed_if_enabled(), Some(5));
    c.apply_override("community-id=no").unwrap();
    assert_eq!(c.community_id.seed_if_enabled(), None);
}

#[test]
fn smtp_and_file_settings() {
    let mut c = Config::default();
    let a = c.app_layer.build();
    assert!(a.smtp && !a.smtp_log_subject);
    assert_eq!((a.file_hashes.md5, a.file_hashes.sha1), (false, false));
    c.apply_yaml(
        "app-layer:\n  files:\n    force-hash: [md5, sha1]\n  protocols:\n    smtp:\n      log-subject: yes\n      mime:\n        header-value-depth: 500\n      inspected-tracker:\n        content-limit: 4kb\n",
        "test",
    )
    .unwrap();
    let a = c.app_layer.build();
    assert!(a.smtp_log_subject);
    assert_eq!((a.file_hashes.md5, a.file_hashes.sha1), (true, true));
    assert_eq!(a.smtp_max_header_value, 500);
    assert_eq!(a.smtp_file_data_depth, 4096);
    assert!(c
        .apply_override("app-layer.files.force-hash=[crc32]")
        .is_err());
    c.apply_override("app-layer.protocols.smtp.enabled=no")
        .unwrap();
    assert!(!c.app_layer.build().smtp);
}
