//! Alerts per second through the correlation core alone (no Kafka): parsing the JSON
//! value and correlating, and correlating already parsed events. The stream: 20 tenants,
//! 50,000 sources (a few hundred of them seen in several tenants), one alert per
//! millisecond of event time, unique ids plus 5% redelivered duplicates.
//!
//! Run: `cargo bench -p zonewatch-aggregate --bench core`. Not run in CI.

use std::time::Instant;
use zonewatch_aggregate::{parse_event, AggregateConfig, Correlator, Event, Headers};

fn stream(n: u64) -> Vec<String> {
    let mut out = Vec::with_capacity(n as usize);
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    for i in 0..n {
        // xorshift: deterministic pseudo-random picks.
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        // Every 100th alert comes from one of 300 wide-spread sources (any tenant); the
        // others from a source of one tenant.
        let wide = x % 100 == 0;
        let src = if wide {
            (x >> 24) % 300
        } else {
            1000 + (x >> 8) % 50_000
        };
        let tenant = 131_000 + if wide { (x >> 20) % 20 } else { src % 20 };
        let id = if i % 20 == 19 { i - 7 } else { i };
        let t = 1_700_000_000_000 + i;
        out.push(format!(
            r#"{{"timestamp":"2023-11-14T{:02}:{:02}:{:02}.{:03}000+0000","event_type":"alert","event_id":"00000000-0000-0000-0000-{id:012x}","host":"s{tenant}","tenant":"{tenant}","src_ip":"10.{}.{}.{}","dest_ip":"192.0.2.1","proto":"TCP","alert":{{"signature":"sig {}","category":"x","severity":{}}}}}"#,
            (t / 3_600_000) % 24,
            (t / 60_000) % 60,
            (t / 1000) % 60,
            t % 1000,
            (src >> 16) & 255,
            (src >> 8) & 255,
            src & 255,
            x % 50,
            1 + x % 3
        ));
    }
    out
}

fn main() {
    let n = 1_000_000;
    let lines = stream(n);
    for round in 0..3 {
        let mut c = Correlator::new(AggregateConfig::default());
        let t = Instant::now();
        let mut incidents = 0;
        for l in &lines {
            if let Ok(ev) = parse_event(l.as_bytes(), &Headers::default()) {
                incidents += c.ingest(&ev).len();
            }
        }
        let parse_and_correlate = t.elapsed().as_secs_f64();
        let events: Vec<Event> = lines
            .iter()
            .filter_map(|l| parse_event(l.as_bytes(), &Headers::default()).ok())
            .collect();
        let mut c = Correlator::new(AggregateConfig::default());
        let t = Instant::now();
        for e in &events {
            c.ingest(e);
        }
        let correlate = t.elapsed().as_secs_f64();
        println!(
            "round {round}: {n} alerts ({} duplicates, {incidents} incident events): parse+correlate {:.0} alerts/s, correlate only {:.0} alerts/s",
            c.counters().duplicates,
            n as f64 / parse_and_correlate,
            n as f64 / correlate
        );
    }
}
