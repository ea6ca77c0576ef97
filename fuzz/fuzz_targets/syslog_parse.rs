//! Fuzzes the syslog parser and the RFC 6587 framer. Neither may panic; the framer must never
//! emit a frame longer than its maximum, nor hold more than the maximum plus one push, and
//! splitting the stream anywhere must give the same frames. Parsing without field extraction
//! and extracting afterwards (as the Sigma engine does) must give the record of parsing with it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zonewatch_syslog::{extract_fields, parse, Framer, ParseOptions, Timestamp, UtcOffset};

const MAX: usize = 256;

fn frames(chunks: &[&[u8]]) -> Vec<(Vec<u8>, bool)> {
    let mut f = Framer::new(MAX);
    let mut out = Vec::new();
    for c in chunks {
        f.push(c, &mut |b, t| {
            assert!(b.len() <= MAX, "frame of {} bytes", b.len());
            out.push((b.to_vec(), t));
        });
        assert!(
            f.pending() <= MAX + c.len() + 16,
            "framer holds {}",
            f.pending()
        );
    }
    f.finish(&mut |b, t| {
        assert!(b.len() <= MAX);
        out.push((b.to_vec(), t));
    });
    out
}

fuzz_target!(|data: &[u8]| {
    for offset in [0, 9 * 3600, -5 * 3600] {
        let opts = ParseOptions {
            sensor_offset: UtcOffset(offset),
            extract_fields: true,
        };
        let r = parse(data, Timestamp::from_parts(1_795_606_245, 0), None, &opts);
        assert!(r.facility < 24 && r.severity < 8);
        assert!(r.fields.len() <= zonewatch_syslog::body::MAX_FIELDS);
        // Extraction deferred to the Sigma engine gives the same record.
        let lazy = ParseOptions {
            extract_fields: false,
            ..opts
        };
        let mut d = parse(data, Timestamp::from_parts(1_795_606_245, 0), None, &lazy);
        extract_fields(&mut d);
        assert_eq!(d, r);
    }
    let whole = frames(&[data]);
    let cut = data.first().map_or(0, |&b| b as usize % (data.len() + 1));
    let (a, b) = data.split_at(cut);
    assert_eq!(frames(&[a, b]), whole);
});
