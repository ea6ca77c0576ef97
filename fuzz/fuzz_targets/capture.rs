//! Fuzzes the capture readers (classic pcap and pcapng, with their
//! resynchronisation past damage) on arbitrary bytes: no panic, every
//! packet inside the input's size, the damage counters bounded by the
//! input, and the reader always ends.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zonewatch_capture::{Next, PacketSource};

fuzz_target!(|data: &[u8]| {
    let len = data.len();
    let Ok(mut src) = PacketSource::from_bytes(data.to_vec(), None) else {
        return;
    };
    let mut total = 0usize;
    let mut n = 0usize;
    loop {
        match src.next_packet() {
            Next::Packet(p) => {
                total += p.data.len();
                assert!(p.data.len() <= len);
                assert!(p.wire_len as usize >= p.data.len());
                n += 1;
                assert!(n <= len / 12 + 1, "more packets than the input can hold");
            }
            Next::End | Next::Truncated(_) | Next::Timeout => break,
        }
    }
    assert!(total <= len);
    assert!(src.damage().skipped_bytes as usize <= len);
});
