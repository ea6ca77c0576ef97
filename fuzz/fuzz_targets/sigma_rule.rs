//! Fuzzes the Sigma loader (YAML, detections, conditions, modifiers, correlations) and runs the
//! rules that load over a few records. Nothing may panic; bad rules are errors.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;
use std::sync::Arc;
use zonewatch_sigma::{CorrelationLimits, Engine, RuleSet, SigmaConfig};
use zonewatch_syslog::{parse, ParseOptions, Timestamp};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let r = RuleSet::load_texts(&[(Path::new("fuzz.yml"), text)], &SigmaConfig::default());
    for e in &r.errors {
        assert!(e.line >= 1);
    }
    let rules = Arc::new(r.rules);
    let mut engine = Engine::new(
        rules,
        CorrelationLimits {
            max_groups: 8,
            max_values_per_group: 8,
            max_events_per_group: 8,
            ..Default::default()
        },
    );
    let mut out = Vec::new();
    for (i, line) in [
        &b"<38>Nov 25 20:30:45 h sshd[1]: Failed password for root from 192.0.2.1 port 22 ssh2"[..],
        b"<13>1 2026-11-25T11:30:45Z h app - - [x@1 a=\"b\"] {\"k\":\"v\",\"n\":1}",
        b"192.0.2.4 - - [10/Oct/2000:13:55:36 -0700] \"GET /../etc/passwd HTTP/1.0\" 404 1 \"-\" \"sqlmap\"",
    ]
    .iter()
    .enumerate()
    {
        let mut rec = parse(line, Timestamp(0), None, &ParseOptions::default());
        rec.timestamp = Timestamp::from_parts(i as i64, 0);
        engine.process(&rec, &mut out);
    }
    engine.flush(&mut out);
});
