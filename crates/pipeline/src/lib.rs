//! Threads and channels: readers capture and decode packets and hand them, in
//! batches, to the worker that owns their flow; workers run each packet
//! through their stages (flow, stream, app layer, signatures, observations
//! for the anomaly detectors) and produce events; one output thread merges
//! the workers' events into one stream, runs thresholds and the anomaly
//! detectors on it in input order, and writes it, along with periodic and
//! final stats. A log thread (optional) runs Sigma rules on syslog input.
//!
//! ```text
//! reader ──batches by flow hash──► worker 0..N-1 ──events──► output (merge, write, stats)
//!    ▲                                 │
//!    └──────── empty batches back ─────┘   (no allocation per packet in steady state)
//! ```
//!
//! Every edge is a bounded crossbeam channel. Files: a full worker queue makes
//! the reader wait (counted). Live capture: a full queue drops the batch
//! (counted, never silent).
//!
//! File-mode output is deterministic: every packet and every clock tick has an
//! input position; events carry the position that caused them, and the
//! output thread releases an event only when every worker has passed its
//! position, in key order. The clock is packet time, ticked to all workers
//! at once, so timeouts fire at the same input position whatever the number
//! of workers.
#![deny(missing_docs)]

pub mod logs;
mod output;
mod reader;
mod reload;
#[cfg(target_os = "linux")]
mod rings;
mod stats;
mod worker;

use crossbeam_channel::bounded;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use zonewatch_config::Config;
use zonewatch_output::EventWriter;
use zonewatch_types::Timestamp;

pub use reload::{NewRules, ReloadOutcome, RuleSlot};
pub use rings::RingSettings;
pub use stats::{ReaderStats, RingCounters, WorkerStats};

/// What to read.
#[derive(Debug, Clone)]
pub enum Inputs {
    /// Capture files, read one after the other in this order.
    Files(Vec<PathBuf>),
    /// Live interfaces through libpcap, read in turn by one reader thread.
    Interfaces(Vec<String>),
    /// Live interfaces through AF_PACKET rings (Linux): each worker reads
    /// its own ring of every interface ([`rings`]).
    AfPacket {
        /// Interface names.
        interfaces: Vec<String>,
        /// Ring sizes and fanout group.
        rings: RingSettings,
    },
}

impl Inputs {
    /// Whether packets come from live interfaces (events are written as
    /// they come, queues drop instead of waiting).
    pub fn is_live(&self) -> bool {
        !matches!(self, Inputs::Files(_))
    }
}

/// How far workers take each packet; benchmarks use the shorter stages to
/// see what each one costs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Stage {
    /// Capture and decode only: workers count packets and recycle batches.
    DecodeOnly,
    /// Decode and flows, without TCP reassembly.
    Flows,
    /// Everything: decode, flows and all later stages.
    #[default]
    Full,
}

/// Everything a run needs besides the configuration.
pub struct RunOptions {
    /// How far packets are processed (normally [`Stage::Full`]).
    pub stage: Stage,
    /// Inputs.
    pub inputs: Inputs,
    /// Worker threads (at least 1).
    pub workers: usize,
    /// Seconds between periodic stats events (0 = only the final one).
    pub stats_interval: u64,
    /// Show a progress bar on stderr (file mode).
    pub progress: bool,
    /// Set to stop early (Ctrl-C); readers finish their batch and the run
    /// ends as if the input had ended.
    pub stop: Arc<AtomicBool>,
    /// Signature engine, when rules were given.
    pub detect: Option<Arc<zonewatch_detect::Engine>>,
    /// Anomaly detectors, when detector files were given. They run on the
    /// output thread, fed in input order, so per-host state (scans,
    /// floods) sees every flow whatever the worker count.
    pub anomaly: Option<zonewatch_anomaly::DetectorSet>,
    /// Syslog inputs and Sigma rules, when logs are read. One log thread
    /// runs the rules and its alerts are written as they arrive, between
    /// the (still deterministic) packet events; see [`logs`].
    pub logs: Option<logs::LogInputs>,
    /// Called once every input that may need privileges is open (live
    /// capture handles; listeners are bound before the run) and before the
    /// first packet is read: the binary drops privileges here. An error
    /// ends the run before any packet is read.
    pub ready: Option<ReadyHook>,
}

/// See [`RunOptions::ready`].
pub type ReadyHook = Box<dyn Fn() -> Result<(), String> + Send + Sync>;

/// Runs the [`RunOptions::ready`] hook, if any.
pub(crate) fn ready(opts: &RunOptions) -> Result<(), RunError> {
    match &opts.ready {
        Some(f) => f().map_err(RunError::Ready),
        None => Ok(()),
    }
}

/// What workers tell the anomaly detectors.
// Packet observations are the common case and are sent inline: a box per
// packet cost more than the detectors themselves.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Obs {
    Packet(zonewatch_anomaly::PacketObs),
    Dns(Box<DnsMessage>),
    Tick(Timestamp),
}

/// A DNS message as the DNS-tunnel detector sees it (owned, to cross the
/// channel to the output thread): the app layer's typed observation and
/// who sent it to whom.
pub(crate) struct DnsMessage {
    pub ts: Timestamp,
    pub client: std::net::IpAddr,
    pub server: std::net::IpAddr,
    /// IP protocol of the flow the message came in (UDP or TCP).
    pub proto: u8,
    pub message: zonewatch_applayer::DnsObservation,
}

impl DnsMessage {
    /// The detector's view (borrowing the name).
    pub(crate) fn obs(&self) -> zonewatch_anomaly::DnsObs<'_> {
        let m = &self.message;
        let saturate = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        zonewatch_anomaly::DnsObs {
            ts: self.ts,
            client: self.client,
            server: self.server,
            proto: self.proto,
            qname: m.qname.trim_end_matches('.'),
            qtype: m.rrtype,
            response: m.response,
            rcode: m.rcode,
            answer_count: u16::try_from(m.answer_count).unwrap_or(u16::MAX),
            answer_bytes: saturate(m.answer_bytes),
            txt_null_bytes: saturate(m.txt_null_bytes),
        }
    }
}

/// What a run did.
#[derive(Debug, Clone)]
pub struct RunReport {
    /// The final counters, nested as in the `stats` event.
    pub stats: serde_json::Value,
    /// Warnings worth telling the operator (e.g. a capture that ends mid-record).
    pub warnings: Vec<String>,
    /// Events the sinks accepted and then lost (each logged and counted by
    /// its sink); non-zero means the run did not deliver everything.
    pub lost: u64,
}

/// Fails only on input that cannot be opened at all; per-packet problems are
/// counted, not fatal.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A capture file or interface could not be opened.
    #[error(transparent)]
    Capture(#[from] zonewatch_capture::CaptureError),
    /// A sink failed for good (disk full, closed pipe); the run stopped.
    #[error("output {0}")]
    Output(#[from] zonewatch_output::SinkError),
    /// The [`RunOptions::ready`] hook failed (e.g. dropping privileges).
    #[error("{0}")]
    Ready(String),
}

/// A batch of packets for one worker: metadata plus the packets' bytes in one
/// buffer.
pub(crate) struct Batch {
    pub created: std::time::Instant,
    pub packets: Vec<PacketMeta>,
    pub data: Vec<u8>,
}

pub(crate) struct PacketMeta {
    pub pos: u64,
    /// Packet number in the input (1-based; Suricata's `pcap_cnt`); a
    /// reassembled datagram carries its last fragment's.
    pub cnt: u64,
    /// Verify the TCP checksum before the stream engine takes the segment
    /// (checksum validation on, or `auto` not yet decided otherwise).
    pub verify_csum: bool,
    pub ts: Timestamp,
    /// Wire bytes; for a reassembled datagram, of all its fragments.
    pub wire_len: u32,
    /// Packets this entry stands for in its flow: 1, or for a reassembled
    /// datagram the number of fragments that made it.
    pub pkts: u32,
    /// A fragment: its datagram joins a flow once reassembled, not itself.
    pub fragment: bool,
    /// Where the packet's bytes sit in `Batch::data` (start, length); the
    /// worker's stages read them from there.
    pub start: u32,
    pub len: u32,
    pub iface: u16,
    pub decoded: zonewatch_decode::Decoded,
}

pub(crate) enum WorkMsg {
    Batch(Batch),
    /// The shared clock advanced to `ts`; `pos` is the tick's input position.
    Tick {
        pos: u64,
        ts: Timestamp,
    },
    /// End of input at position `pos`, clock `ts`.
    End {
        pos: u64,
        ts: Timestamp,
    },
}

/// What a long-running sensor adds to a run (none by default).
#[derive(Clone, Default)]
pub struct Hooks {
    /// Where the output thread publishes its counters, at most once a
    /// second, for the Prometheus endpoint (`--metrics-listen`).
    pub metrics: Option<zonewatch_metrics::Metrics>,
    /// Set (by SIGUSR1) to have a stats event written at once; the output
    /// thread looks at it four times a second and clears it.
    pub stats_now: Option<Arc<AtomicBool>>,
    /// Set (by SIGHUP) to have the outputs reopen their files (log
    /// rotation); the output thread looks at it four times a second.
    pub reopen: Option<Arc<AtomicBool>>,
    /// Where reloaded rules (SIGHUP) are handed to the running threads;
    /// also adds the `reload` section to the stats.
    pub rules: Option<RuleSlot>,
}

/// The worker queues as the metrics endpoint sees them: a second receiver
/// of each queue, only to read its length, given up when its worker ends
/// (also by a panic), so that a dead worker's queue still disconnects.
#[derive(Clone)]
pub(crate) struct QueueProbe(
    Arc<std::sync::Mutex<Vec<Option<crossbeam_channel::Receiver<WorkMsg>>>>>,
);

/// Held by a worker thread; gives up its queue's probe when dropped.
struct ProbeGuard(QueueProbe, usize);

impl Drop for ProbeGuard {
    fn drop(&mut self) {
        let mut q = (self.0).0.lock().unwrap_or_else(|e| e.into_inner());
        q[self.1] = None;
    }
}

impl QueueProbe {
    /// (worker, batches queued, capacity) of the queues still running.
    pub(crate) fn depths(&self) -> Vec<(usize, usize, usize)> {
        let q = self.0.lock().unwrap_or_else(|e| e.into_inner());
        q.iter()
            .enumerate()
            .filter_map(|(i, r)| r.as_ref().map(|r| (i, r.len(), r.capacity().unwrap_or(0))))
            .collect()
    }
}

/// Runs the pipeline to the end of its input.
pub fn run(cfg: &Config, opts: RunOptions, writer: EventWriter) -> Result<RunReport, RunError> {
    run_with(cfg, opts, writer, Hooks::default())
}

/// [`run`], publishing counters and answering stats requests as `hooks` say.
pub fn run_with(
    cfg: &Config,
    mut opts: RunOptions,
    writer: EventWriter,
    hooks: Hooks,
) -> Result<RunReport, RunError> {
    let n = opts.workers.max(1);
    // AF_PACKET: every ring is opened (and privileges may go) before any
    // thread starts; each worker then reads its own rings.
    let mut rings = match &opts.inputs {
        Inputs::AfPacket {
            interfaces,
            rings: settings,
        } => {
            let r = rings::open(cfg, interfaces, settings, n)?;
            ready(&opts)?;
            Some(r.into_iter())
        }
        _ => None,
    };
    let probe = hooks
        .metrics
        .is_some()
        .then(|| QueueProbe(Arc::new(std::sync::Mutex::new(vec![None; n]))));
    let ordered = matches!(opts.inputs, Inputs::Files(_));
    let rules_slot = hooks.rules.clone();
    let (out_tx, out_rx) = bounded::<output::OutMsg>(n * 64);
    let (free_tx, free_rx) = bounded::<Batch>(n * cfg.pipeline.queue_batches + 16);
    let mut work_txs = Vec::with_capacity(n);
    let mut handles = Vec::new();
    for w in 0..n {
        let mut wcfg = worker::WorkerConfig::from_config(cfg, n, &opts.inputs, opts.stage);
        wcfg.detect = opts.detect.clone();
        wcfg.observe = opts.anomaly.is_some();
        wcfg.rules = hooks.rules.clone();
        let out_tx = out_tx.clone();
        if let Some(mine) = rings.as_mut().and_then(|r| r.next()) {
            let (cfg, stop) = (cfg.clone(), opts.stop.clone());
            handles.push(
                std::thread::Builder::new()
                    .name(format!("zw-worker-{w}"))
                    .spawn(move || rings::run_worker((w, n), &cfg, mine, wcfg, out_tx, stop))
                    .expect("spawn worker thread"),
            );
            continue;
        }
        let (tx, rx) = bounded::<WorkMsg>(cfg.pipeline.queue_batches);
        let guard = probe.as_ref().map(|p| {
            p.0.lock().unwrap_or_else(|e| e.into_inner())[w] = Some(rx.clone());
            ProbeGuard(p.clone(), w)
        });
        work_txs.push(tx);
        let free_tx = free_tx.clone();
        handles.push(
            std::thread::Builder::new()
                .name(format!("zw-worker-{w}"))
                .spawn(move || {
                    let _probe = guard;
                    worker::run(w, wcfg, rx, out_tx, free_tx)
                })
                .expect("spawn worker thread"),
        );
    }
    drop(free_tx);
    let out_handle = {
        let o = output::OutputOptions {
            workers: n,
            readers: if rings.is_some() { n } else { 1 },
            ordered,
            stats_interval: opts.stats_interval,
            filter: opts.detect.clone().map(zonewatch_detect::AlertFilter::new),
            anomaly: opts.anomaly.take(),
            logs: opts.logs.is_some(),
            stop: opts.stop.clone(),
            hooks,
            queues: probe,
        };
        let out_tx_for_reader = out_tx.clone();
        drop(out_tx);
        let h = std::thread::Builder::new()
            .name("zw-output".into())
            .spawn(move || output::run(out_rx, writer, o))
            .expect("spawn output thread");
        (h, out_tx_for_reader)
    };
    let (out_handle, reader_out_tx) = out_handle;
    let logs_handle = opts.logs.take().map(|l| {
        let (out, stop) = (reader_out_tx.clone(), opts.stop.clone());
        let rules = rules_slot.clone();
        std::thread::Builder::new()
            .name("zw-logs".into())
            .spawn(move || logs::run(l, out, stop, rules))
            .expect("spawn log thread")
    });
    let reader_result = if rings.is_some() {
        Ok(Vec::new())
    } else {
        reader::run(cfg, &opts, &work_txs, &free_rx, &reader_out_tx)
    };
    drop(work_txs);
    drop(reader_out_tx);
    for h in handles {
        h.join().expect("worker thread panicked");
    }
    let log_warnings = logs_handle
        .map(|h| h.join().expect("log thread panicked"))
        .unwrap_or_default();
    let out_result = out_handle.join().expect("output thread panicked");
    let mut warnings = reader_result?;
    warnings.extend(log_warnings);
    let out = out_result?;
    Ok(RunReport {
        stats: out.stats,
        warnings,
        lost: out.lost,
    })
}
