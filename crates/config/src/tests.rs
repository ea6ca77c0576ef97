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
    assert_eq!(c.timeouts_tcp.established, 600);
    assert!(!c.stream_midstream);
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
    assert_eq!(c.sensor_name, "city-a");
    assert_eq!(c.tenant.as_deref(), Some("131016"));
    assert_eq!(c.timezone.0, 9 * 3600);
    assert_eq!(c.flow_memcap, 64 << 20);
    assert_eq!(c.timeouts_tcp.established, 120);
    assert_eq!(c.zone_of("10.10.3.4".parse().unwrap()), Some("mynumber"));
    assert_eq!(c.zone_of("8.8.8.8".parse().unwrap()), Some("internet"));
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
    assert_eq!(c.stream_policy, "linux");
    assert!(c.apply_override("defrag.policy=plan9").is_err());
    assert_eq!(c.stream_reassembly_depth, 2 << 20);
    c.apply_override("output.types=alert,flow").unwrap();
    assert!(c.type_enabled("flow") && !c.type_enabled("stats"));
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
        assert!(c.zones.iter().any(|(n, _)| n == z), "zone {z} missing");
    }
}

#[test]
fn syslog_keys() {
    let mut c = Config::default();
    assert_eq!(c.syslog_max_frame_bytes, 64 << 10);
    assert!(!c.syslog_include_message);
    let text = "syslog:\n  tls:\n    cert: /etc/zw/s.crt\n    key: /etc/zw/s.key\n    client-ca: /etc/zw/ca.crt\n  max-frame-size: 8kb\n  channel-size: 1024\n  idle-timeout: 60\n  max-connections: 2000\n  include-message: true\n";
    let problems = c.apply_yaml(text, "t.yaml").unwrap();
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(
        c.syslog_tls_cert.as_deref(),
        Some(std::path::Path::new("/etc/zw/s.crt"))
    );
    assert_eq!(
        c.syslog_tls_key.as_deref(),
        Some(std::path::Path::new("/etc/zw/s.key"))
    );
    assert_eq!(
        c.syslog_tls_client_ca.as_deref(),
        Some(std::path::Path::new("/etc/zw/ca.crt"))
    );
    assert_eq!(c.syslog_max_frame_bytes, 8 << 10);
    assert_eq!(c.syslog_channel_records, 1024);
    assert_eq!(c.syslog_idle_timeout, 60);
    assert_eq!(c.syslog_max_connections, 2000);
    assert!(c.syslog_include_message);
    assert!(c.apply_override("syslog.max-frame-sise=1kb").is_err());
}

#[test]
fn encryption_handling_as_suricata_names_it() {
    let mut c = Config::default();
    assert_eq!(c.inspect_encrypted, [false, false]);
    c.apply_override("app-layer.protocols.ssh.encryption-handling=full")
        .unwrap();
    assert_eq!(c.inspect_encrypted, [false, true]);
    // Suricata 6's spelling for TLS.
    c.apply_override("app-layer.protocols.tls.encrypt-handling=full")
        .unwrap();
    assert_eq!(c.inspect_encrypted, [true, true]);
    c.apply_override("app-layer.protocols.tls.encryption-handling=bypass")
        .unwrap();
    assert_eq!(c.inspect_encrypted, [false, true]);
    assert!(c
        .apply_override("app-layer.protocols.tls.encryption-handling=maybe")
        .is_err());
}
