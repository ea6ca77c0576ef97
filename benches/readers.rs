//! Capture readers: zonewatch's classic-pcap and pcapng readers against
//! libpcap's offline reader on the same bytes, and the same capture read
//! through a pipe (`--pcap -`). Each figure is a ratio to libpcap on the
//! same format, measured in the same run. Prints figures; asserts that the
//! readers agree on packet and byte counts.
//!
//! Input: `ZW_BENCH_PCAP` or `bench-data/bench-1g.pcap` (make it with
//! `benches/gen-bench-pcap.sh`); the pcapng copy is made with `editcap`
//! (tshark's package) next to it. Not run in CI.
//! Run: `cargo bench --bench readers`.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;
use zonewatch_capture::{Next, PacketSource};

struct Figure {
    pkts: u64,
    bytes: u64,
    secs: f64,
}

fn ours(path: &Path) -> Figure {
    let t = Instant::now();
    let mut src = PacketSource::open_input(path, None, Arc::new(AtomicBool::new(false)))
        .expect("open capture");
    let (mut pkts, mut bytes) = (0u64, 0u64);
    while let Next::Packet(p) = src.next_packet() {
        pkts += 1;
        bytes += p.data.len() as u64;
    }
    Figure {
        pkts,
        bytes,
        secs: t.elapsed().as_secs_f64(),
    }
}

fn libpcap(path: &Path) -> Figure {
    let t = Instant::now();
    let mut cap = pcap::Capture::from_file_with_precision(path, pcap::Precision::Nano)
        .expect("libpcap opens the capture");
    let (mut pkts, mut bytes) = (0u64, 0u64);
    while let Ok(p) = cap.next_packet() {
        pkts += 1;
        bytes += p.data.len() as u64;
    }
    Figure {
        pkts,
        bytes,
        secs: t.elapsed().as_secs_f64(),
    }
}

/// Ours through a FIFO fed by `cat`, as `tcpdump -w - | zonewatch --pcap -`.
fn ours_piped(path: &Path, dir: &Path) -> Figure {
    let fifo = dir.join("bench.fifo");
    let _ = std::fs::remove_file(&fifo);
    assert!(std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo")
        .success());
    let mut cat = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("cat '{}' > '{}'", path.display(), fifo.display()))
        .spawn()
        .expect("cat");
    let f = ours(&fifo);
    let _ = cat.wait();
    let _ = std::fs::remove_file(&fifo);
    f
}

fn line(name: &str, f: &Figure, base: &Figure) {
    println!(
        "{name:<34} {:>10.0} pkt/s {:>7.2} Gbit/s  {:>5.2}x libpcap",
        f.pkts as f64 / f.secs,
        f.bytes as f64 * 8.0 / f.secs / 1e9,
        base.secs / f.secs
    );
}

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let pcap = std::env::var_os("ZW_BENCH_PCAP")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("bench-data/bench-1g.pcap"));
    if !pcap.is_file() {
        eprintln!(
            "readers bench: {} missing (benches/gen-bench-pcap.sh makes it)",
            pcap.display()
        );
        return;
    }
    let dir = pcap.parent().expect("a directory").to_path_buf();
    let ng = pcap.with_extension("pcapng");
    if !ng.is_file() {
        let ok = std::process::Command::new("editcap")
            .args(["-F", "pcapng"])
            .arg(&pcap)
            .arg(&ng)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("readers bench: editcap failed; pcapng figures skipped");
        }
    }
    // Warm the page cache so every reader sees the same cached bytes.
    let _ = ours(&pcap);
    let lib = libpcap(&pcap);
    let own = ours(&pcap);
    let piped = ours_piped(&pcap, &dir);
    assert_eq!((lib.pkts, lib.bytes), (own.pkts, own.bytes));
    assert_eq!((lib.pkts, lib.bytes), (piped.pkts, piped.bytes));
    println!("{} ({} packets)", pcap.display(), lib.pkts);
    line("classic pcap, libpcap", &lib, &lib);
    line("classic pcap, zonewatch", &own, &lib);
    line("classic pcap, zonewatch via a pipe", &piped, &lib);
    if ng.is_file() {
        let _ = ours(&ng);
        let lib = libpcap(&ng);
        let own = ours(&ng);
        let piped = ours_piped(&ng, &dir);
        assert_eq!((lib.pkts, lib.bytes), (own.pkts, own.bytes));
        assert_eq!((lib.pkts, lib.bytes), (piped.pkts, piped.bytes));
        line("pcapng, libpcap", &lib, &lib);
        line("pcapng, zonewatch", &own, &lib);
        line("pcapng, zonewatch via a pipe", &piped, &lib);
    }
}
