//! Fuzzes what the aggregator does with an untrusted Kafka message: parsing (with and
//! without headers) must never panic, an accepted event's strings stay bounded, and
//! feeding accepted events to the correlator must never panic, and feeding the recent
//! ones again (duplicates) must produce nothing.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zonewatch_aggregate::{parse_event, parse_timestamp, AggregateConfig, Correlator, Event, Headers};

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = parse_timestamp(s);
    }
    let mut core = Correlator::new(AggregateConfig::default());
    let mut accepted = Vec::new();
    for line in data.split(|b| *b == b'\n') {
        let h = Headers {
            sensor: Some("s"),
            tenant: Some("t"),
        };
        let _ = parse_event(line, &h);
        if let Ok(ev) = parse_event(line, &Headers::default()) {
            if let Event::Alert(a) = &ev {
                assert!(a.signature.chars().count() <= 256 && a.tenant.chars().count() <= 256);
            }
            core.ingest(&ev);
            accepted.push(ev);
        }
    }
    // Ids within the dedup horizon of the final time are remembered (older ones may be
    // forgotten by design; the id cap is far above what one input holds).
    let horizon = AggregateConfig::default().dedup.horizon_secs as i64 * 1_000_000;
    let recent = core.watermark_us().saturating_sub(horizon);
    for ev in accepted.iter().filter(|e| e.time_us() >= recent) {
        assert!(core.ingest(ev).is_empty(), "a duplicate made an incident");
    }
});
