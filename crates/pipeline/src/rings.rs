//! AF_PACKET capture: every worker thread reads its own rings — one per
//! interface, each in that interface's fanout group — decodes, and hands
//! the packets to its own worker, with no reader thread in between. The
//! kernel's symmetric flow hash (defragmenting first) picks the ring, so a
//! flow and every fragment of its datagrams reach one worker, as the
//! reader's hash does for files and libpcap.
//!
//! Each ring thread runs a [`Dispatcher`] of its own whose only worker is
//! its own, and takes input positions `id, id + n, id + 2n, ...`: event
//! keys (hence event ids) stay unique across workers.

use crate::output::OutMsg;
use crate::reader::Dispatcher;
use crate::stats::RingCounters;
use crate::worker::{Worker, WorkerConfig};
use crate::{Batch, RunError, WorkMsg};
use crossbeam_channel::{bounded, Receiver, Sender};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use zonewatch_capture::afpacket::{self, AfPacketOptions, Ring};
use zonewatch_capture::{CaptureError, Next};
use zonewatch_config::Config;
use zonewatch_decode::LinkType;

/// Settings of the AF_PACKET rings (`capture.af-packet.*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RingSettings {
    /// Bytes of each ring (one per worker and interface).
    pub ring_bytes: usize,
    /// Bytes of a ring block.
    pub block_bytes: usize,
    /// Milliseconds before the kernel hands over a block that is not full.
    pub block_timeout_ms: u32,
    /// Fanout group id of the first interface; the next ones take the
    /// following ids (a group belongs to one interface).
    pub cluster_id: u16,
}

impl Default for RingSettings {
    fn default() -> Self {
        RingSettings {
            ring_bytes: 32 << 20,
            block_bytes: 1 << 20,
            block_timeout_ms: 10,
            cluster_id: 99,
        }
    }
}

/// One ring of a worker, with what decoding its frames needs.
pub(crate) struct WorkerRing {
    iface: u16,
    name: Arc<str>,
    link: LinkType,
    ring: Ring,
}

/// Opens `workers` rings on every interface; returns each worker's rings.
pub(crate) fn open(
    cfg: &Config,
    interfaces: &[String],
    settings: &RingSettings,
    workers: usize,
) -> Result<Vec<Vec<WorkerRing>>, RunError> {
    let mut per_worker: Vec<Vec<WorkerRing>> = (0..workers).map(|_| Vec::new()).collect();
    for (i, name) in interfaces.iter().enumerate() {
        let opts = AfPacketOptions {
            interface: name.clone(),
            rings: workers,
            ring_bytes: settings.ring_bytes,
            block_bytes: settings.block_bytes,
            block_timeout_ms: settings.block_timeout_ms,
            cluster_id: settings.cluster_id.wrapping_add(i as u16),
            promisc: cfg.capture.promisc,
        };
        let rings = afpacket::open_fanout(&opts, cfg.capture.bpf.as_deref())?;
        let shared: Arc<str> = Arc::from(name.as_str());
        for (w, ring) in rings.into_iter().enumerate() {
            let link = LinkType::from_dlt(ring.datalink()).ok_or_else(|| CaptureError::Pcap {
                what: name.clone(),
                msg: format!("link type {} is not decoded", ring.datalink()),
            })?;
            per_worker[w].push(WorkerRing {
                iface: i as u16,
                name: shared.clone(),
                link,
                ring,
            });
        }
        tracing::info!(
            "capture started: {name} (af-packet, {workers} ring(s) of {} MiB, fanout group {})",
            settings.ring_bytes >> 20,
            opts.cluster_id
        );
    }
    Ok(per_worker)
}

/// Packets a ring may hand over before the next ring (and the worker's
/// queue) get their turn.
const RING_QUOTA: usize = 1024;

/// The worker thread of AF_PACKET capture: reads its rings until `stop`,
/// then ends its flows and reports.
pub(crate) fn run_worker(
    (id, workers): (usize, usize),
    cfg: &Config,
    mut rings: Vec<WorkerRing>,
    wcfg: WorkerConfig,
    out: Sender<OutMsg>,
    stop: Arc<AtomicBool>,
) {
    // The dispatcher's queue to this same thread's worker: drained after
    // every round, so it holds a few batches at most.
    let (tx, rx) = bounded::<WorkMsg>(cfg.pipeline.queue_batches.max(16));
    let (free_tx, free_rx) = bounded::<Batch>(cfg.pipeline.queue_batches + 16);
    let txs = [tx];
    let mut d = Dispatcher::new(cfg, &txs, &free_rx, &out, true, (id, workers));
    let mut w = Worker::new(id, wcfg, out.clone());
    let mut last_wall_tick = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        let mut idle = true;
        for r in rings.iter_mut() {
            for _ in 0..RING_QUOTA {
                match r.ring.next_packet(0) {
                    Next::Packet(p) => {
                        idle = false;
                        d.packet(r.iface, r.link, p.ts, p.data, p.wire_len);
                    }
                    Next::Truncated(m) => {
                        tracing::warn!("{m}");
                        break;
                    }
                    Next::Timeout | Next::End => break,
                }
            }
        }
        if idle {
            // Quiet link: what is pending goes to the worker now.
            d.flush_all();
        }
        drain(&rx, &mut w, &free_tx);
        if last_wall_tick.elapsed() >= Duration::from_secs(1) {
            last_wall_tick = Instant::now();
            d.wall_tick();
            kernel_counters(&mut d, &mut rings);
            d.publish();
            drain(&rx, &mut w, &free_tx);
        }
        if idle {
            let refs: Vec<&Ring> = rings.iter().map(|r| &r.ring).collect();
            afpacket::wait_any(&refs, 10);
        }
    }
    kernel_counters(&mut d, &mut rings);
    d.finish();
    drain(&rx, &mut w, &free_tx);
    w.finish();
}

/// Runs what the dispatcher queued for this thread's worker.
fn drain(rx: &Receiver<WorkMsg>, w: &mut Worker, free: &Sender<Batch>) {
    while let Ok(msg) = rx.try_recv() {
        w.handle(msg, free);
    }
}

/// The kernel's counters of this worker's rings, into the reader stats.
fn kernel_counters(d: &mut Dispatcher<'_>, rings: &mut [WorkerRing]) {
    let mut sums = (0, 0, 0);
    d.stats.rings.clear();
    for r in rings.iter_mut() {
        let k = r.ring.stats();
        sums.0 += k.packets;
        sums.1 += k.drops;
        d.stats.rings.push(RingCounters {
            interface: r.name.clone(),
            ring: d.id,
            kernel: k,
        });
    }
    d.stats.kernel = sums;
}
