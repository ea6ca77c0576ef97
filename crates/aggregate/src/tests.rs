use super::*;

fn cfg() -> AggregateConfig {
    AggregateConfig::default()
}

// On a minute boundary, so that test minutes are storm buckets.
const T0: i64 = 1_699_999_980_000_000;

fn alert(id: &str, secs: i64, tenant: &str, src: &str, sig: &str) -> Event {
    Event::Alert(AlertEvent {
        event_id: id.into(),
        time_us: T0 + secs * 1_000_000,
        tenant: tenant.into(),
        sensor: format!("s-{tenant}"),
        src_ip: src.into(),
        signature: sig.into(),
        severity: 3,
    })
}

fn stats(
    id: &str,
    secs: i64,
    sensor: &str,
    packets: u64,
    dropped: u64,
    backlog: Option<u64>,
) -> Event {
    Event::Stats(StatsEvent {
        event_id: id.into(),
        time_us: T0 + secs * 1_000_000,
        tenant: "131016".into(),
        sensor: sensor.into(),
        uptime: secs as u64,
        packets,
        dropped,
        spool_backlog_bytes: backlog,
    })
}

fn run(c: &mut Correlator, evs: &[Event]) -> Vec<Incident> {
    evs.iter().flat_map(|e| c.ingest(e)).collect()
}

#[test]
fn one_source_in_three_tenants_is_one_incident_that_grows_and_closes() {
    let mut c = Correlator::new(cfg());
    let evs = [
        alert("a1", 0, "131016", "203.0.113.9", "SCAN"),
        alert("a2", 10, "131016", "203.0.113.9", "SCAN"),
        alert("b1", 20, "132012", "203.0.113.9", "SCAN"),
        alert("c1", 30, "133001", "203.0.113.9", "LFI"),
        alert("x1", 40, "133001", "198.51.100.1", "SCAN"),
    ];
    let out = run(&mut c, &evs);
    assert_eq!(out.len(), 2, "{out:#?}");
    assert_eq!(out[0].state, IncidentState::Open);
    assert_eq!(out[0].tenants, ["131016", "132012"]);
    assert_eq!(out[0].alert_count, 3);
    assert_eq!(out[1].state, IncidentState::Update);
    assert_eq!(out[1].id, out[0].id);
    assert_eq!(out[1].tenants, ["131016", "132012", "133001"]);
    assert_eq!(out[1].top_signatures[0].signature, "SCAN");
    assert_eq!(out[1].top_signatures[0].count, 3);
    // Severity rises with the spread: 3 (alerts) - 1 for two tenants.
    assert_eq!(out[0].severity, 2);
    // Nothing more until the quiet period passes; then exactly one close.
    let closing = c.advance(T0 + (30 + 3_601) * 1_000_000);
    assert_eq!(closing.len(), 1);
    assert_eq!(closing[0].state, IncidentState::Closed);
    assert_eq!(closing[0].id, out[0].id);
    assert_eq!(closing[0].alert_count, 4);
    assert_eq!(closing[0].time_us, T0 + (30 + 3_600) * 1_000_000);
    // A new alert after the close starts a new episode (a new id once it spreads).
    let again = run(
        &mut c,
        &[
            alert("a9", 8_000, "131016", "203.0.113.9", "SCAN"),
            alert("b9", 8_001, "132012", "203.0.113.9", "SCAN"),
        ],
    );
    assert_eq!(again.len(), 1);
    assert_ne!(again[0].id, out[0].id);
}

#[test]
fn alerts_outside_the_window_do_not_make_a_spread() {
    let mut c = Correlator::new(AggregateConfig {
        multi_tenant: MultiTenantConfig {
            window_secs: 60,
            quiet_secs: 10_000,
            ..Default::default()
        },
        ..cfg()
    });
    let out = run(
        &mut c,
        &[
            alert("a1", 0, "131016", "203.0.113.9", "SCAN"),
            alert("b1", 120, "132012", "203.0.113.9", "SCAN"),
        ],
    );
    assert!(out.is_empty(), "{out:#?}");
    let out = run(&mut c, &[alert("a2", 150, "131016", "203.0.113.9", "SCAN")]);
    assert_eq!(out.len(), 1);
    assert_eq!(
        out[0].first_seen_us, T0,
        "the episode starts at the first alert"
    );
}

#[test]
fn duplicates_are_not_counted_and_replay_gives_the_same_incidents() {
    let evs: Vec<Event> = (0..40)
        .map(|i| {
            let tenant = ["131016", "132012", "133001"][i % 3];
            alert(
                &format!("id{i}"),
                i as i64 * 7,
                tenant,
                "203.0.113.9",
                "SCAN",
            )
        })
        .collect();
    let mut once = Correlator::new(cfg());
    let a = run(&mut once, &evs);
    let mut twice = Correlator::new(cfg());
    let mut doubled = Vec::new();
    for e in &evs {
        doubled.push(e.clone());
        doubled.push(e.clone());
    }
    let b = run(&mut twice, &doubled);
    assert_eq!(a, b);
    assert_eq!(twice.counters().duplicates, 40);
    // Replaying a suffix into the same state changes nothing.
    assert!(run(&mut twice, &evs[20..]).is_empty());
    let close = twice.advance(T0 + 10_000 * 1_000_000);
    assert_eq!(close[0].alert_count, 40);
    // Rendered events are byte-identical.
    let ja: Vec<String> = a.iter().map(|i| i.to_json("agg").to_string()).collect();
    let jb: Vec<String> = b.iter().map(|i| i.to_json("agg").to_string()).collect();
    assert_eq!(ja, jb);
}

#[test]
fn dedup_forgets_after_the_horizon_and_at_its_cap() {
    let mut c = Correlator::new(AggregateConfig {
        dedup: DedupConfig {
            horizon_secs: 100,
            max_entries: 3,
        },
        ..cfg()
    });
    for (i, id) in ["a", "b", "c", "d"].iter().enumerate() {
        c.ingest(&alert(id, i as i64, "131016", "203.0.113.9", "S"));
    }
    assert_eq!(c.counters().dedup_evicted, 1);
    // "a" was evicted at the cap: taken again; "d" is still known.
    c.ingest(&alert("a", 5, "131016", "203.0.113.9", "S"));
    c.ingest(&alert("d", 5, "131016", "203.0.113.9", "S"));
    assert_eq!(c.counters().events, 5);
    assert_eq!(c.counters().duplicates, 1);
}

#[test]
fn source_cap_evicts_the_least_recently_seen() {
    let mut c = Correlator::new(AggregateConfig {
        multi_tenant: MultiTenantConfig {
            max_sources: 2,
            ..Default::default()
        },
        ..cfg()
    });
    c.ingest(&alert("1", 0, "131016", "10.0.0.1", "S"));
    c.ingest(&alert("2", 1, "131016", "10.0.0.2", "S"));
    c.ingest(&alert("3", 2, "131016", "10.0.0.3", "S"));
    assert_eq!(c.counters().sources_evicted, 1);
    // 10.0.0.1 was forgotten: its second tenant alone is no spread.
    assert!(c
        .ingest(&alert("4", 3, "132012", "10.0.0.1", "S"))
        .is_empty());
    // 10.0.0.3 is remembered.
    assert_eq!(c.ingest(&alert("5", 4, "132012", "10.0.0.3", "S")).len(), 1);
}

#[test]
fn a_storm_far_above_the_baseline_opens_and_ends() {
    let mut c = Correlator::new(AggregateConfig {
        storm: StormConfig {
            bucket_secs: 60,
            warmup_buckets: 5,
            min_alerts: 20,
            factor: 5.0,
            ..Default::default()
        },
        ..cfg()
    });
    let mut n = 0;
    let mut id = || {
        n += 1;
        format!("e{n}")
    };
    let mut out = Vec::new();
    // Ten quiet minutes with 3 alerts each: baseline 3.
    for m in 0..10 {
        for k in 0..3 {
            out.extend(c.ingest(&alert(&id(), m * 60 + k, "131016", "", "S")));
        }
    }
    assert!(out.is_empty(), "{out:#?}");
    // Minute 10: 100 alerts.
    for k in 0..100 {
        out.extend(c.ingest(&alert(&id(), 600 + k % 60, "131016", "", "FLOOD")));
    }
    // Minute 11 back to normal: its first alert closes minute 10 (storm opens).
    out.extend(c.ingest(&alert(&id(), 660, "131016", "", "S")));
    assert_eq!(out.len(), 1, "{out:#?}");
    assert_eq!(out[0].kind, IncidentKind::AlertStorm);
    assert_eq!(out[0].state, IncidentState::Open);
    assert_eq!(out[0].alert_count, 100);
    assert_eq!(out[0].tenants, ["131016"]);
    assert_eq!(out[0].top_signatures[0].signature, "FLOOD");
    let end = c.advance(T0 + 721 * 1_000_000);
    assert_eq!(end.len(), 1);
    assert_eq!(end[0].state, IncidentState::Closed);
    assert_eq!(end[0].id, out[0].id);
}

#[test]
fn silent_and_dropping_sensors() {
    let mut c = Correlator::new(cfg());
    let mut out = Vec::new();
    out.extend(c.ingest(&stats("s1", 0, "city-a", 10_000, 0, Some(0))));
    out.extend(c.ingest(&stats("s2", 0, "city-b", 10_000, 0, None)));
    out.extend(c.ingest(&stats("s3", 60, "city-a", 20_000, 0, Some(0))));
    assert!(out.is_empty());
    // city-b drops 5% in the next interval.
    let d = c.ingest(&stats("s4", 60, "city-b", 19_500, 500, None));
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].kind, IncidentKind::SensorDropping);
    assert_eq!(d[0].state, IncidentState::Open);
    assert_eq!(d[0].sensors, ["city-b"]);
    // city-a goes on; city-b falls silent: 300 s after its last stats it is silent.
    let mut out = Vec::new();
    for i in 2..8 {
        out.extend(c.ingest(&stats(
            &format!("a{i}"),
            i * 60,
            "city-a",
            10_000 * i as u64 + 10_000,
            0,
            Some(0),
        )));
    }
    let silent: Vec<_> = out
        .iter()
        .filter(|i| i.kind == IncidentKind::SensorSilent)
        .collect();
    assert_eq!(silent.len(), 1, "{out:#?}");
    assert_eq!(silent[0].sensors, ["city-b"]);
    assert_eq!(silent[0].time_us, T0 + 360 * 1_000_000);
    // It reports again: silence closed; drops stopped: dropping closed.
    let back = c.ingest(&stats("b9", 500, "city-b", 30_000, 500, None));
    let states: Vec<_> = back.iter().map(|i| (i.kind, i.state)).collect();
    assert_eq!(
        states,
        [
            (IncidentKind::SensorSilent, IncidentState::Closed),
            (IncidentKind::SensorDropping, IncidentState::Closed)
        ]
    );
}

#[test]
fn a_growing_spool_is_a_health_incident() {
    let mut c = Correlator::new(AggregateConfig {
        health: HealthConfig {
            spool_growth_events: 2,
            spool_min_bytes: 1000,
            ..Default::default()
        },
        ..cfg()
    });
    let mut out = Vec::new();
    for (i, b) in [0u64, 500, 1500, 4000].iter().enumerate() {
        out.extend(c.ingest(&stats(
            &format!("s{i}"),
            i as i64 * 10,
            "city-a",
            0,
            0,
            Some(*b),
        )));
    }
    assert_eq!(out.len(), 2, "{out:#?}");
    assert_eq!(out[0].state, IncidentState::Open);
    assert_eq!(out[0].details["spool_backlog_bytes"], 1500);
    assert_eq!(out[1].state, IncidentState::Update);
}

#[test]
fn parses_sensor_events_and_refuses_bad_ones() {
    let alert = br#"{"timestamp":"2026-11-19T18:15:26.390002+0900","event_type":"alert","event_id":"d9ef25dd-fd77-fb59-a2b7-421bd5e90553","host":"gw","tenant":"131016","src_ip":"203.0.113.50","alert":{"signature":"X","severity":2}}"#;
    let h = Headers {
        sensor: Some("gw"),
        tenant: Some("131016"),
    };
    let Ok(Event::Alert(a)) = parse_event(alert, &h) else {
        panic!("not parsed")
    };
    assert_eq!(a.src_ip, "203.0.113.50");
    assert_eq!(a.severity, 2);
    assert_eq!(
        a.time_us,
        parse_timestamp("2026-11-19T09:15:26.390002Z").unwrap()
    );
    let other = Headers {
        sensor: Some("gw"),
        tenant: Some("132012"),
    };
    assert_eq!(parse_event(alert, &other), Err(Reject::HeaderMismatch));
    assert_eq!(parse_event(b"{", &h), Err(Reject::Malformed));
    assert_eq!(parse_event(b"[1]", &h), Err(Reject::Malformed));
    assert_eq!(
        parse_event(br#"{"event_type":"flow","event_id":"x","host":"gw","timestamp":"2026-11-19T09:15:26Z"}"#, &Headers::default()),
        Err(Reject::WrongType)
    );
    assert_eq!(
        parse_event(br#"{"event_type":"alert","event_id":"x","host":"gw","timestamp":"yesterday","alert":{}}"#, &Headers::default()),
        Err(Reject::BadTimestamp)
    );
    for bad in [
        "2026-13-01T00:00:00Z",
        "2026-01-01T00:00:00.+0000",
        "2026-01-01T00:00:00+09",
        "2026-01-01T00:00:00",
    ] {
        assert_eq!(parse_timestamp(bad), None, "{bad}");
    }
    assert_eq!(
        parse_timestamp("1970-01-01T00:00:01.5+0000"),
        Some(1_500_000)
    );
    assert_eq!(parse_timestamp("1970-01-01T09:00:00.000000+09:00"), Some(0));
}

#[test]
fn config_ranges_and_unknown_keys() {
    assert!(AggregateConfig::default().validate().is_ok());
    let bad = AggregateConfig {
        multi_tenant: MultiTenantConfig {
            min_tenants: 1,
            ..Default::default()
        },
        ..cfg()
    };
    let e = bad.validate().unwrap_err();
    assert!(e.contains("aggregate.multi-tenant.min-tenants"), "{e}");
    let nan = AggregateConfig {
        storm: StormConfig {
            alpha: f64::NAN,
            ..Default::default()
        },
        ..cfg()
    };
    assert!(nan.validate().is_err());
    let e = serde_json::from_str::<AggregateConfig>(r#"{"multi_tenant":{"min_tenant":3}}"#)
        .unwrap_err()
        .to_string();
    assert!(e.contains("min_tenant"), "{e}");
}
