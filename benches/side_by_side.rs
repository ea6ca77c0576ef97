//! zonewatch and the reference Suricata 7.0.17 (`../shared/tools/suricata/`)
//! as whole processes on the same capture, rules and variables, interleaved
//! run by run so that machine noise hits both alike.
//!
//! Processing time is what each program reports itself, from its engine
//! start (rules loaded) to the end of the capture: Suricata's `time elapsed`
//! in `suricata.log`, zonewatch's `N packets, B bytes in S s` on stderr.
//! Whole-process wall, CPU seconds and peak RSS come from `/usr/bin/time`
//! (Debian `time`). Each configuration also runs on the first 100 packets
//! of the capture (loading, start and shutdown), so that processing CPU is
//! the difference of the two runs' CPU seconds. The figures are medians over
//! `ZW_BENCH_ROUNDS` rounds (default 3).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// One process run, as `/usr/bin/time` saw it.
#[derive(Clone, Copy, Default)]
pub struct Proc {
    /// As the program reports it (see the top of this file).
    pub processing: f64,
    pub wall: f64,
    pub cpu: f64,
    pub rss_mb: f64,
}

/// Who runs and how.
#[derive(Clone)]
pub struct Contender {
    pub name: String,
    /// `{CAP}` and `{OUT}` are replaced per run; both programs write
    /// `{OUT}/eve.json`.
    pub argv: Vec<String>,
}

fn timed(argv: &[String], cap: &Path, out: &Path) -> Proc {
    let _ = std::fs::remove_dir_all(out);
    std::fs::create_dir_all(out).unwrap();
    let tfile = out.join("time.txt");
    let args: Vec<String> = argv
        .iter()
        .map(|a| {
            a.replace("{CAP}", &cap.display().to_string())
                .replace("{OUT}", &out.display().to_string())
        })
        .collect();
    let status = Command::new("/usr/bin/time")
        .arg("-f")
        .arg("%e %U %S %M")
        .arg("-o")
        .arg(&tfile)
        .args(&args)
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(out.join("stderr.txt")).unwrap())
        .status()
        .expect("run /usr/bin/time (Debian package `time`)");
    assert!(
        status.success(),
        "{} failed ({status}); see {}",
        args.join(" "),
        out.join("stderr.txt").display()
    );
    let t = std::fs::read_to_string(&tfile).unwrap();
    let f: Vec<f64> = t
        .lines()
        .last()
        .unwrap_or("")
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    assert_eq!(f.len(), 4, "unexpected /usr/bin/time output: {t}");
    Proc {
        processing: reported_processing(out),
        wall: f[0],
        cpu: f[1] + f[2],
        rss_mb: f[3] / 1024.0,
    }
}

/// The processing seconds a run reported: Suricata's `time elapsed 1.234s`
/// or zonewatch's `... bytes in 1.23s (`.
fn reported_processing(out: &Path) -> f64 {
    let suricata = std::fs::read_to_string(out.join("suricata.log")).unwrap_or_default();
    if let Some(at) = suricata.rfind("time elapsed ") {
        let rest = &suricata[at + "time elapsed ".len()..];
        return rest
            .split('s')
            .next()
            .and_then(|x| x.parse().ok())
            .unwrap_or(f64::NAN);
    }
    let zw = std::fs::read_to_string(out.join("stderr.txt")).unwrap_or_default();
    zw.lines()
        .find(|l| l.starts_with("zonewatch: ") && l.contains(" bytes in "))
        .and_then(|l| l.split(" bytes in ").nth(1))
        .and_then(|r| r.split('s').next())
        .and_then(|x| x.parse().ok())
        .unwrap_or(f64::NAN)
}

/// Copies the first `n` packets of a classic pcap file (the start-up probe).
pub fn head_of_pcap(src: &Path, dst: &Path, n: usize) {
    let data = std::fs::read(src).unwrap();
    assert!(data.len() >= 24, "{} is not a pcap file", src.display());
    let le = match data[..4] {
        [0xd4, 0xc3, 0xb2, 0xa1] | [0x4d, 0x3c, 0xb2, 0xa1] => true,
        [0xa1, 0xb2, 0xc3, 0xd4] | [0xa1, 0xb2, 0x3c, 0x4d] => false,
        _ => panic!("{}: side-by-side runs need a classic pcap", src.display()),
    };
    let mut at = 24;
    for _ in 0..n {
        if at + 16 > data.len() {
            break;
        }
        let b: [u8; 4] = data[at + 8..at + 12].try_into().unwrap();
        let caplen = if le {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        } as usize;
        at = (at + 16 + caplen).min(data.len());
    }
    std::fs::write(dst, &data[..at]).unwrap();
}

/// (sid, lower endpoint, upper endpoint): the alert's rule and its flow,
/// direction-free, since the two programs may name either side source.
type AlertKey = (u64, String, String);

fn alert_multiset(eve: &Path) -> BTreeMap<AlertKey, u64> {
    let mut out = BTreeMap::new();
    let Ok(text) = std::fs::read_to_string(eve) else {
        return out;
    };
    for line in text.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if v["event_type"] != "alert" {
            continue;
        }
        let end = |ip: &str, port: &str| {
            format!(
                "{}:{}",
                v[ip].as_str().unwrap_or(""),
                v[port].as_u64().unwrap_or(0)
            )
        };
        let (a, b) = (end("src_ip", "src_port"), end("dest_ip", "dest_port"));
        let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
        let sid = v["alert"]["signature_id"].as_u64().unwrap_or(0);
        *out.entry((sid, lo, hi)).or_insert(0) += 1;
    }
    out
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Medians of one contender's runs.
#[derive(Default, Clone, Copy)]
pub struct Figures {
    pub processing: f64,
    pub whole_wall: f64,
    pub whole_cpu: f64,
    pub processing_cpu: f64,
    pub rss_mb: f64,
}

/// Runs every contender `rounds` times, interleaved, on `cap` and on its
/// first 100 packets; returns the medians and the output directory of each
/// contender's last full run.
pub fn race(
    contenders: &[Contender],
    cap: &Path,
    work: &Path,
    rounds: usize,
) -> Vec<(Figures, PathBuf)> {
    let head = work.join("head.pcap");
    head_of_pcap(cap, &head, 100);
    let mut full: Vec<Vec<Proc>> = vec![Vec::new(); contenders.len()];
    let mut start: Vec<Vec<Proc>> = vec![Vec::new(); contenders.len()];
    for round in 0..rounds {
        for (i, c) in contenders.iter().enumerate() {
            let out = work.join(format!("{i}-head"));
            start[i].push(timed(&c.argv, &head, &out));
            let out = work.join(format!("{i}-full"));
            let p = timed(&c.argv, cap, &out);
            eprintln!(
                "  round {}: {:<28} {:>7.2}s processing {:>7.2}s wall {:>7.2}s cpu",
                round + 1,
                c.name,
                p.processing,
                p.wall,
                p.cpu
            );
            full[i].push(p);
        }
    }
    contenders
        .iter()
        .enumerate()
        .map(|(i, _)| {
            let w = median(full[i].iter().map(|p| p.wall).collect());
            let processing = median(full[i].iter().map(|p| p.processing).collect());
            let c = median(full[i].iter().map(|p| p.cpu).collect());
            let sc = median(start[i].iter().map(|p| p.cpu).collect());
            let figures = Figures {
                processing: processing.max(0.001),
                whole_wall: w,
                whole_cpu: c,
                processing_cpu: (c - sc).max(0.0),
                rss_mb: median(full[i].iter().map(|p| p.rss_mb).collect()),
            };
            (figures, work.join(format!("{i}-full")))
        })
        .collect()
}

/// Prints how the alerts of two runs differ, as multisets of
/// (sid, flow endpoints).
pub fn compare_alerts(zw_eve: &Path, suricata_eve: &Path) {
    let z = alert_multiset(zw_eve);
    let s = alert_multiset(suricata_eve);
    let (mut both, mut only_z, mut only_s) = (0u64, 0u64, 0u64);
    let mut by_sid: BTreeMap<u64, (u64, u64)> = BTreeMap::new();
    let keys: std::collections::BTreeSet<&AlertKey> = z.keys().chain(s.keys()).collect();
    for k in keys {
        let (a, b) = (
            z.get(k).copied().unwrap_or(0),
            s.get(k).copied().unwrap_or(0),
        );
        both += a.min(b);
        only_z += a.saturating_sub(b);
        only_s += b.saturating_sub(a);
        let e = by_sid.entry(k.0).or_default();
        e.0 += a;
        e.1 += b;
    }
    println!(
        "alerts (sid + flow, multiset): zonewatch {}, suricata {}; both {both}, only zonewatch {only_z}, only suricata {only_s}",
        z.values().sum::<u64>(),
        s.values().sum::<u64>()
    );
    let mut diff: Vec<(u64, u64, u64)> = by_sid
        .into_iter()
        .filter(|(_, (a, b))| a != b)
        .map(|(sid, (a, b))| (sid, a, b))
        .collect();
    diff.sort_by_key(|&(sid, a, b)| (std::cmp::Reverse(a.abs_diff(b)), sid));
    for (sid, a, b) in diff.iter().take(10) {
        println!("  sid {sid:>8}: zonewatch {a:>6}, suricata {b:>6}");
    }
    if diff.len() > 10 {
        println!("  ... {} more sids differ", diff.len() - 10);
    }
}
