//! Fuzzes the syslog parser and the RFC 6587 framer. Neither may panic; the framer must never
//! emit a frame longer than its maximum, nor hold more than the maximum plus one push, and
//! splitting the stream anywhere must give the same frames.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zonewatch_syslog::{parse, Framer, ParseOptions, Timestamp, UtcOffset};

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
    }
    let whole = frames(&[data]);
    let cut = data.first().map_or(0, |&b| b as usize % (data.len() + 1));
    let (a, b) = data.split_at(cut);
    assert_eq!(frames(&[a, b]), whole);
});
