//! `zw-pcapgen`: writes synthetic pcap captures for zonewatch benchmarks and memory tests.

use std::fs::{self, File};
use std::io::{BufReader, BufWriter};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use zonewatch_pcapgen::{bench, floods, verify};

/// Output buffer size: large writes keep the generator at hundreds of MB/s.
const WRITE_BUF: usize = 8 << 20;

#[derive(Parser)]
#[command(
    name = "zw-pcapgen",
    version,
    about = "Synthetic pcap traffic generator (deterministic per seed)"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Realistic HTTP/TLS/DNS/SSH mix of many interleaved flows, up to a file size.
    Bench {
        #[arg(long)]
        out: PathBuf,
        /// Target file size in MiB.
        #[arg(long, default_value_t = 1024)]
        size_mb: u64,
        /// Target number of flows (at least this many are written).
        #[arg(long, default_value_t = 60_000)]
        flows: u64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Concurrently active flows.
        #[arg(long, default_value_t = 2000)]
        active: usize,
    },
    /// One TCP SYN per packet from distinct spoofed sources to 198.51.100.10:80.
    Synflood {
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 2_000_000)]
        flows: u64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// IPv4 first fragments whose later fragments never arrive.
    Fragflood {
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 1_000_000)]
        count: u64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Established TCP flows whose data never becomes contiguous (first segment missing).
    Segflood {
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 1000)]
        flows: u64,
        #[arg(long, default_value_t = 200_000)]
        segments: u64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Parse a capture back and check lengths and IPv4/TCP/UDP checksums.
    Verify { file: PathBuf },
}

/// Writes through `FILE.tmp` and renames on success, so a partial file is never left under the final name.
fn write_atomically<T>(
    out: &Path,
    f: impl FnOnce(&mut BufWriter<File>) -> std::io::Result<T>,
) -> Result<T> {
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let tmp = PathBuf::from(format!("{}.tmp", out.display()));
    let file = File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let mut w = BufWriter::with_capacity(WRITE_BUF, file);
    let res = f(&mut w).and_then(|r| {
        let file = w.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        Ok(r)
    });
    match res {
        Ok(r) => {
            fs::rename(&tmp, out)
                .with_context(|| format!("renaming {} to {}", tmp.display(), out.display()))?;
            Ok(r)
        }
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            Err(e).with_context(|| format!("writing {}", out.display()))
        }
    }
}

fn rate(bytes: u64, start: Instant) -> String {
    let secs = start.elapsed().as_secs_f64();
    format!(
        "{secs:.2}s, {:.0} MB/s",
        bytes as f64 / 1e6 / secs.max(1e-9)
    )
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let start = Instant::now();
    match cli.cmd {
        Cmd::Bench {
            out,
            size_mb,
            flows,
            seed,
            active,
        } => {
            if size_mb == 0 {
                bail!("--size-mb must be positive");
            }
            let mut cfg = bench::BenchConfig::new(size_mb << 20, flows, seed);
            cfg.active = active.max(1);
            let s = write_atomically(&out, |w| bench::generate(w, &cfg))?;
            println!("{}: {s} [{}]", out.display(), rate(s.file_bytes, start));
        }
        Cmd::Synflood { out, flows, seed } => {
            let s = write_atomically(&out, |w| floods::synflood(w, flows, seed))?;
            println!(
                "{}: synflood {s} [{}]",
                out.display(),
                rate(s.file_bytes, start)
            );
        }
        Cmd::Fragflood { out, count, seed } => {
            let s = write_atomically(&out, |w| floods::fragflood(w, count, seed))?;
            println!(
                "{}: fragflood {s} [{}]",
                out.display(),
                rate(s.file_bytes, start)
            );
        }
        Cmd::Segflood {
            out,
            flows,
            segments,
            seed,
        } => {
            if flows == 0 {
                bail!("--flows must be positive");
            }
            let s = write_atomically(&out, |w| floods::segflood(w, flows, segments, seed))?;
            println!(
                "{}: segflood {s} [{}]",
                out.display(),
                rate(s.file_bytes, start)
            );
        }
        Cmd::Verify { file } => {
            let f = File::open(&file).with_context(|| format!("opening {}", file.display()))?;
            let rep = verify::verify_pcap(BufReader::with_capacity(WRITE_BUF, f))
                .with_context(|| format!("reading {}", file.display()))?;
            println!(
                "{}: {rep} [{}]",
                file.display(),
                rate(rep.frame_bytes, start)
            );
            for e in &rep.errors {
                eprintln!("  {e}");
            }
            if rep.error_count() > 0 {
                bail!("{} errors", rep.error_count());
            }
        }
    }
    Ok(())
}
