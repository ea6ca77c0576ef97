//! Fuzzes `zonewatch_ruleconf`: the input is split at `\n` into a vars
//! definition, an address group, a port group, threshold/detection_filter
//! option strings and a `threshold.config` text, and a few candidate
//! alerts are run through a small `ThresholdEngine`. Nothing may panic;
//! a group that parses must contain what it says (negation is the
//! complement), and the engine must stay under its bound.
#![no_main]

use std::net::IpAddr;
use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use zonewatch_ruleconf::{
    parse_detection_filter_keyword, parse_threshold_keyword, AddressSet, PortSet, ThresholdConfig,
    ThresholdEngine, Vars,
};
use zonewatch_types::Timestamp;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.splitn(6, '\n');
    let var_line = parts.next().unwrap_or("");
    let addr = parts.next().unwrap_or("");
    let port = parts.next().unwrap_or("");
    let keyword = parts.next().unwrap_or("");
    let df = parts.next().unwrap_or("");
    let conf = parts.next().unwrap_or("");

    // `A=value;B=value|P=value` defines address vars, then port vars.
    let (avars, pvars) = var_line.split_once('|').unwrap_or((var_line, ""));
    let pairs = |s: &str| -> Vec<(String, String)> {
        s.split(';')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let (vars, _errors) = Vars::build(pairs(avars), pairs(pvars));

    let probes: [IpAddr; 6] = [
        "10.0.0.1".parse().unwrap(),
        "192.168.1.1".parse().unwrap(),
        "0.0.0.0".parse().unwrap(),
        "255.255.255.255".parse().unwrap(),
        "::1".parse().unwrap(),
        "2001:db8::1".parse().unwrap(),
    ];
    if let Ok(set) = vars.address(addr) {
        assert!(!set.is_empty());
        if let Ok(neg) = vars.address(&format!("![{addr}]")) {
            for ip in probes {
                assert_ne!(set.contains(ip), neg.contains(ip));
            }
        }
    }
    let _ = AddressSet::parse_literal(addr);
    if let Ok(set) = vars.port(port) {
        assert!(!set.is_empty());
        if let Ok(neg) = vars.port(&format!("![{port}]")) {
            for p in [0u16, 1, 80, 443, 1023, 1024, 65535] {
                assert_ne!(set.contains(p), neg.contains(p));
            }
        }
    }
    let _ = PortSet::parse_literal(port);

    let rule = parse_threshold_keyword(keyword).ok();
    let rule_df = parse_detection_filter_keyword(df).ok();
    let (cfg, _errors) = ThresholdConfig::parse(conf, "fuzz", &vars);
    let mut engine = ThresholdEngine::new(Arc::new(cfg), 8);
    for (i, b) in data.iter().take(64).enumerate() {
        let src = probes[usize::from(*b) % probes.len()];
        let dst = probes[usize::from(*b / 7) % probes.len()];
        let ts = Timestamp::from_parts(i64::from(*b) * (i as i64), 0);
        let r = if b & 1 == 0 {
            rule.as_ref()
        } else {
            rule_df.as_ref()
        };
        let _ = engine.decide(u32::from(b & 3), u32::from(*b >> 2), src, dst, ts, r);
        assert!(engine.stats().tracked <= 8);
        if b & 0x40 != 0 {
            engine.expire(ts);
        }
    }
});
