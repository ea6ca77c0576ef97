//! The built-in classic-pcap and pcapng readers return exactly what libpcap
//! returns (timestamps, bytes, wire lengths, truncation) on every real
//! capture. Where libpcap gives up on damage, ours may resynchronise: the
//! comparison ends there.

use std::path::{Path, PathBuf};
use zonewatch_capture::{Next, PacketSource};

fn captures(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            captures(&p, out);
        } else if p
            .extension()
            .is_some_and(|x| x == "pcap" || x == "cap" || x == "pcapng")
        {
            out.push(p);
        }
    }
}

#[test]
fn classic_reader_matches_libpcap() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut files = Vec::new();
    captures(&root.join("fixtures"), &mut files);
    captures(&root.join("../shared/data"), &mut files);
    if files.is_empty() {
        eprintln!("skipped: no captures (fixtures/ or ../shared/data)");
        return;
    }
    let mut compared = 0;
    for f in &files {
        let Ok(mut lib) = pcap::Capture::from_file_with_precision(f, pcap::Precision::Nano) else {
            continue;
        };
        let mut ours = PacketSource::open_file(f, None).expect("open");
        let mut n = 0;
        let mut libpcap_stopped = None;
        loop {
            let a = lib.next_packet();
            match (a, ours.next_packet()) {
                (Ok(p), Next::Packet(q)) => {
                    assert_eq!(p.data, q.data, "{}: packet {n} bytes", f.display());
                    assert_eq!(
                        p.header.len.max(p.header.caplen),
                        q.wire_len,
                        "{}: packet {n}",
                        f.display()
                    );
                    assert_eq!(
                        p.header.ts.tv_sec,
                        q.ts.secs(),
                        "{}: packet {n}",
                        f.display()
                    );
                    assert_eq!(
                        p.header.ts.tv_usec as u32,
                        q.ts.subsec_nanos(),
                        "{}: packet {n}",
                        f.display()
                    );
                }
                (Err(pcap::Error::NoMorePackets), Next::End) => break,
                (Err(_), Next::Truncated(_)) => break,
                (Err(e), _) => libpcap_stopped = Some(e.to_string()),
                (a, b) => panic!("{}: packet {n}: libpcap {a:?} vs ours {b:?}", f.display()),
            }
            if let Some(e) = libpcap_stopped.take() {
                // Only damage lets ours read on where libpcap stops.
                assert!(
                    ours.damage().corrupt_records > 0,
                    "{}: packet {n}: libpcap stops ({e}), ours reads on",
                    f.display()
                );
                eprintln!("{}: libpcap stops ({e}); ours resynchronised", f.display());
                break;
            }
            n += 1;
        }
        compared += 1;
    }
    eprintln!("compared {compared} captures with libpcap");
    assert!(compared > 0);
}
