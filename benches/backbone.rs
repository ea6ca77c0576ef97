//! Backbone benchmark: plain file read, decode only, and decode + flows, with
//! 1 and 2 workers, each as a ratio to plain file read measured in the same
//! run. Prints figures; asserts the stages agree on packet counts.
//!
//! Input: `ZW_BENCH_PCAP` or `bench-data/bench-1g.pcap` (make it with
//! `benches/gen-bench-pcap.sh`; it is not committed and not run in CI).
//! Run: `cargo bench --bench backbone`.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;
use zonewatch_capture::{Next, PacketSource};
use zonewatch_config::Config;
use zonewatch_decode::{decode, LinkType};
use zonewatch_output::{EveContext, EventIdSource, EventWriter, LineSink};
use zonewatch_pipeline::{Inputs, RunOptions, Stage};

struct Figure {
    name: String,
    pkts: u64,
    bytes: u64,
    secs: f64,
}

impl Figure {
    fn pps(&self) -> f64 {
        self.pkts as f64 / self.secs
    }
    fn gbps(&self) -> f64 {
        self.bytes as f64 * 8.0 / self.secs / 1e9
    }
}

fn plain_read(path: &Path) -> Figure {
    let t = Instant::now();
    let mut src = PacketSource::open_file(path, None).expect("open bench capture");
    let (mut pkts, mut bytes) = (0u64, 0u64);
    while let Next::Packet(p) = src.next_packet() {
        pkts += 1;
        bytes += p.wire_len as u64;
    }
    Figure {
        name: "plain file read".into(),
        pkts,
        bytes,
        secs: t.elapsed().as_secs_f64(),
    }
}

fn decode_inline(path: &Path) -> Figure {
    let t = Instant::now();
    let mut src = PacketSource::open_file(path, None).expect("open bench capture");
    let link = LinkType::from_dlt(src.datalink()).expect("decodable link type");
    let (mut pkts, mut bytes, mut tcp) = (0u64, 0u64, 0u64);
    while let Next::Packet(p) = src.next_packet() {
        let d = decode(link, p.data, p.wire_len as usize);
        tcp += (d.layers & zonewatch_decode::layer::TCP != 0) as u64;
        pkts += 1;
        bytes += p.wire_len as u64;
    }
    std::hint::black_box(tcp);
    Figure {
        name: "read + decode, 1 thread".into(),
        pkts,
        bytes,
        secs: t.elapsed().as_secs_f64(),
    }
}

fn pipeline(path: &Path, stage: Stage, workers: usize) -> (Figure, serde_json::Value) {
    let cfg = Config::default();
    let ctx = EveContext::new(
        "bench",
        None,
        cfg.sensor.timezone,
        zonewatch_config::ZoneMap::default(),
        EventIdSource::Run(1),
        &cfg.output.types,
    );
    let writer = EventWriter::new(ctx, vec![Box::new(LineSink::open("/dev/null").unwrap())]);
    let opts = RunOptions {
        stage,
        inputs: Inputs::Files(vec![path.to_path_buf()]),
        workers,
        stats_interval: 0,
        progress: false,
        stop: Arc::new(AtomicBool::new(false)),
        detect: None,
        anomaly: None,
        logs: None,
        ready: None,
    };
    let t = Instant::now();
    let r = zonewatch_pipeline::run(&cfg, opts, writer).expect("pipeline run");
    let secs = t.elapsed().as_secs_f64();
    let g = |a: &str, b: &str| r.stats[a][b].as_u64().unwrap_or(0);
    let name = match stage {
        Stage::DecodeOnly => format!("pipeline decode only, {workers} worker(s)"),
        Stage::Flows => format!("pipeline decode + flows, {workers} worker(s)"),
        Stage::Full => format!("+ defrag + reassembly, {workers} worker(s)"),
    };
    (
        Figure {
            name,
            pkts: g("decoder", "pkts"),
            bytes: g("decoder", "bytes"),
            secs,
        },
        r.stats,
    )
}

fn main() {
    let path = std::env::var_os("ZW_BENCH_PCAP")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("bench-data/bench-1g.pcap")
        });
    if !path.exists() {
        eprintln!(
            "backbone bench: {} not found; make it with benches/gen-bench-pcap.sh (skipped)",
            path.display()
        );
        return;
    }
    // Warm the page cache so the first stage does not pay for the disk.
    let _ = plain_read(&path);
    let base = plain_read(&path);
    let mut figs = vec![decode_inline(&path)];
    let mut flow_stats = Vec::new();
    for stage in [Stage::DecodeOnly, Stage::Flows, Stage::Full] {
        for w in [1, 2] {
            let (f, s) = pipeline(&path, stage, w);
            if stage == Stage::Full {
                flow_stats.push((w, s));
            }
            figs.push(f);
        }
    }
    println!(
        "capture: {} ({} packets, {} bytes)",
        path.display(),
        base.pkts,
        base.bytes
    );
    println!(
        "{:<40} {:>12} {:>10} {:>8} {:>9}",
        "stage", "pkt/s", "Gbit/s", "secs", "vs read"
    );
    let row = |f: &Figure| {
        println!(
            "{:<40} {:>12.0} {:>10.2} {:>8.2} {:>8.1}%",
            f.name,
            f.pps(),
            f.gbps(),
            f.secs,
            100.0 * f.pps() / base.pps()
        )
    };
    row(&base);
    for f in &figs {
        assert_eq!(
            f.pkts, base.pkts,
            "{}: packet count differs from plain read",
            f.name
        );
        row(f);
    }
    // figs: [inline, decode-only 1, 2, flows 1, 2, full 1, 2]
    for w in [1usize, 2] {
        let flows = &figs[2 + w];
        let full = &figs[4 + w];
        println!(
            "{w} worker(s): + defrag + reassembly runs at {:.1}% of decode + flows",
            100.0 * full.pps() / flows.pps()
        );
    }
    for (w, s) in flow_stats {
        println!(
            "full, {w} worker(s): flows {} (tcp {}, udp {}), forced evictions {}, flow pkts {}; tcp sessions {}, reassembled bytes {}, gaps {}, memcap gaps {}",
            s["flow"]["total"],
            s["flow"]["tcp"],
            s["flow"]["udp"],
            s["flow"]["end"]["forced"],
            s["flow"]["pkts"],
            s["tcp"]["sessions"],
            s["tcp"]["reassembled_bytes"],
            s["tcp"]["reassembly_gap"],
            s["tcp"]["reassembly_memcap_gaps"]
        );
        // The defaults are sized so that this capture loses nothing to memcaps.
        assert_eq!(s["tcp"]["reassembly_memcap_gaps"], 0);
        assert_eq!(s["tcp"]["ssn_memcap_drop"], 0);
        assert_eq!(s["flow"]["end"]["forced"], 0);
    }
}
