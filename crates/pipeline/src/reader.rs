//! The reader: capture, decode, pick the worker, batch, and drive the clock.

use crate::output::OutMsg;
use crate::stats::ReaderStats;
use crate::{Batch, Inputs, PacketMeta, RunError, RunOptions, WorkMsg};
use crossbeam_channel::{Receiver, Sender, TrySendError};
use siphasher::sip::SipHasher13;
use std::hash::Hasher;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use zonewatch_capture::{LiveOptions, Next, PacketSource};
use zonewatch_config::{ChecksumMode, Config};
use zonewatch_decode::{decode, LinkType};
use zonewatch_types::Timestamp;

/// How often the reader publishes its counters.
const PUBLISH_EVERY: Duration = Duration::from_millis(500);

/// Identifies a fragmented datagram for flow accounting (the same fields
/// the defragmenter keys its trackers by).
#[derive(Hash, PartialEq, Eq)]
struct FragKey {
    src: std::net::IpAddr,
    dst: std::net::IpAddr,
    id: u32,
    proto: u8,
    vlan: [u16; 2],
}

impl FragKey {
    fn of(d: &zonewatch_decode::Decoded) -> Option<FragKey> {
        let ip = d.ip?;
        Some(FragKey {
            src: ip.src,
            dst: ip.dst,
            id: ip.frag?.id,
            proto: ip.proto,
            vlan: d.vlan,
        })
    }
}

/// Packets and wire bytes of the fragments seen so far of one datagram, so
/// that its flow counts every fragment once the datagram is whole.
struct FragAcct {
    pkts: u32,
    bytes: u64,
    last: Timestamp,
}

/// Suricata's checksum modes. `auto` validates the first packets and turns
/// validation off for the rest of the run when more than 10 % of the first
/// 1,000 checkable TCP/UDP packets are wrong (checksum offloading on the
/// capturing host), as Suricata's `ChecksumAutoModeCheck` does. The
/// decision is made on the reader, in input order, so it is the same for
/// any number of workers.
pub(crate) struct CsumAuto {
    mode: ChecksumMode,
    seen: u32,
    bad: u32,
    decided: Option<bool>,
}

impl CsumAuto {
    const SAMPLE: u32 = 1000;

    pub(crate) fn new(mode: ChecksumMode) -> CsumAuto {
        CsumAuto {
            mode,
            seen: 0,
            bad: 0,
            decided: None,
        }
    }

    fn verify(&mut self, data: &[u8], d: &zonewatch_decode::Decoded) -> bool {
        match self.mode {
            ChecksumMode::All => true,
            ChecksumMode::None => false,
            ChecksumMode::Auto => {
                if let Some(on) = self.decided {
                    return on;
                }
                if let Some(ok) = zonewatch_decode::transport_checksum_ok(data, d) {
                    self.seen += 1;
                    self.bad += (!ok) as u32;
                    if self.seen >= Self::SAMPLE {
                        let on = self.bad * 10 <= self.seen;
                        self.decided = Some(on);
                        if !on {
                            tracing::warn!(
                                "checksum validation off: {} of the first {} TCP/UDP packets had bad checksums (checksum offloading on the capturing host?)",
                                self.bad,
                                self.seen
                            );
                        }
                    }
                }
                true
            }
        }
    }
}

impl CsumAuto {
    /// Fewest checkable packets for a verdict at the end of a short capture.
    const MIN_SAMPLE: u32 = 10;

    /// At the end of input in `auto` mode: when the packets sampled (all
    /// of a short capture, or the first 1,000) show offloading, the bad
    /// segments among them were kept out of the streams — say so, with the
    /// ratio and the remedy, as Suricata does.
    fn verdict(&self) -> Option<String> {
        if self.mode != ChecksumMode::Auto
            || self.seen < Self::MIN_SAMPLE
            || self.bad * 10 <= self.seen
        {
            return None;
        }
        let pct = 100.0 * self.bad as f64 / self.seen as f64;
        let when = if self.decided.is_some() {
            format!("of the first {} TCP/UDP packets", self.seen)
        } else {
            format!("of all {} checkable TCP/UDP packets", self.seen)
        };
        Some(format!(
            "{} {when} ({pct:.0} %) had bad checksums; their TCP segments were kept out of stream reassembly (no app-layer records or stream matches for them). The capture looks like it was taken on a host with checksum offloading: run with --checksum-checks none",
            self.bad
        ))
    }
}

pub(crate) struct Dispatcher<'a> {
    defrag: zonewatch_defrag::Defragmenter,
    frag_acct: std::collections::HashMap<FragKey, FragAcct>,
    max_frag_acct: usize,
    defrag_events: Vec<zonewatch_decode::DecodeEvent>,
    txs: &'a [Sender<WorkMsg>],
    free: &'a Receiver<Batch>,
    pending: Vec<Option<Batch>>,
    batch_packets: usize,
    seed: u64,
    live: bool,
    pub(crate) stats: ReaderStats,
    /// This reader's number (AF_PACKET: its worker's).
    pub(crate) id: usize,
    /// Next input position.
    pos: u64,
    /// Positions this reader takes: `pos`, `pos + stride`, ... (AF_PACKET
    /// readers interleave, so event keys stay unique across workers).
    stride: u64,
    /// Packets read so far (`pcap_cnt` of the last one).
    cnt: u64,
    /// Checksum validation: the configured mode and, in `auto`, the sample.
    csum: CsumAuto,
    /// The shared clock: the latest packet time seen.
    clock: Option<Timestamp>,
    out: &'a Sender<OutMsg>,
    last_publish: Instant,
}

impl<'a> Dispatcher<'a> {
    /// A reader numbered `id` that takes positions `first, first + stride, ...`.
    pub(crate) fn new(
        cfg: &Config,
        txs: &'a [Sender<WorkMsg>],
        free: &'a Receiver<Batch>,
        out: &'a Sender<OutMsg>,
        live: bool,
        (id, stride): (usize, usize),
    ) -> Self {
        Dispatcher {
            defrag: zonewatch_defrag::Defragmenter::new(cfg.defrag.build()),
            frag_acct: std::collections::HashMap::new(),
            max_frag_acct: cfg.defrag.trackers,
            defrag_events: Vec::new(),
            txs,
            free,
            pending: (0..txs.len()).map(|_| None).collect(),
            batch_packets: cfg.pipeline.batch_packets,
            seed: cfg.flow.hash_seed,
            live,
            stats: ReaderStats::new(),
            id,
            pos: id as u64,
            stride: stride as u64,
            cnt: 0,
            csum: CsumAuto::new(cfg.stream.checksum_validation),
            clock: None,
            out,
            last_publish: Instant::now(),
        }
    }

    fn worker_for(&self, d: &zonewatch_decode::Decoded) -> usize {
        if self.txs.len() == 1 {
            return 0;
        }
        match d.flow_tuple() {
            Some(t) => {
                // Symmetric: both directions hash the canonical tuple, packed
                // into one buffer so the keyed hash runs once over it.
                let (k, _) = t.canonical();
                let mut buf = [0u8; 41];
                let addr = |a: &std::net::IpAddr| match a {
                    std::net::IpAddr::V4(v) => v.to_ipv6_mapped().octets(),
                    std::net::IpAddr::V6(v) => v.octets(),
                };
                buf[..16].copy_from_slice(&addr(&k.src));
                buf[16..32].copy_from_slice(&addr(&k.dst));
                buf[32..34].copy_from_slice(&k.sport.to_be_bytes());
                buf[34..36].copy_from_slice(&k.dport.to_be_bytes());
                buf[36] = k.proto;
                buf[37..39].copy_from_slice(&k.vlan[0].to_be_bytes());
                buf[39..41].copy_from_slice(&k.vlan[1].to_be_bytes());
                let mut h = SipHasher13::new_with_keys(self.seed, 0x0077_6f72_6b65_7273);
                h.write(&buf);
                (h.finish() % self.txs.len() as u64) as usize
            }
            None => 0,
        }
    }

    fn take_batch(&self) -> Batch {
        match self.free.try_recv() {
            Ok(mut b) => {
                b.packets.clear();
                b.data.clear();
                b.created = Instant::now();
                b
            }
            Err(_) => Batch {
                created: Instant::now(),
                packets: Vec::with_capacity(self.batch_packets),
                data: Vec::with_capacity(self.batch_packets * 1600),
            },
        }
    }

    pub(crate) fn packet(
        &mut self,
        iface: u16,
        link: LinkType,
        ts: Timestamp,
        data: &[u8],
        wire_len: u32,
    ) {
        self.cnt += 1;
        // Advance the shared clock; a new second ticks every worker, so
        // timeouts fire at the same input position whatever the worker count.
        match self.clock {
            Some(c) if ts.secs() > c.secs() => {
                self.clock = Some(ts);
                self.tick(ts);
            }
            Some(c) if ts > c => self.clock = Some(ts),
            None => self.clock = Some(ts),
            _ => {}
        }
        let mut decoded = decode(link, data, wire_len as usize);
        self.stats.count(&decoded, wire_len);
        let fragment = decoded.ip.is_some_and(|ip| ip.frag.is_some()) && !decoded.invalid;
        let mut whole = None;
        if fragment {
            whole = self.defragment(ts, &mut decoded, data, wire_len);
        }
        self.enqueue(iface, ts, data, wire_len, 1, fragment, decoded);
        if let Some((buf, pkts, bytes, outer)) = whole {
            // The reassembled datagram: decoded anew, carrying the first
            // fragment's VLAN and tunnel context; it takes its own position.
            let mut d = decode(LinkType::Raw, &buf, buf.len());
            d.vlan = outer.vlan;
            d.tunnel = outer.tunnel;
            d.layers &= !zonewatch_decode::layer::RAW;
            for e in d.events.iter() {
                self.stats.events[e as usize] += 1;
            }
            self.enqueue(
                iface,
                ts,
                &buf,
                bytes.min(u32::MAX as u64) as u32,
                pkts,
                false,
                d,
            );
        }
    }

    /// Offers a fragment to the defragmenter; returns the whole datagram with
    /// the fragment count and wire bytes of its fragments when it completes.
    #[allow(clippy::type_complexity)]
    fn defragment(
        &mut self,
        ts: Timestamp,
        decoded: &mut zonewatch_decode::Decoded,
        data: &[u8],
        wire_len: u32,
    ) -> Option<(Vec<u8>, u32, u64, zonewatch_decode::Decoded)> {
        self.defrag_events.clear();
        let done = self.defrag.push(ts, decoded, data, &mut self.defrag_events);
        for &e in &self.defrag_events {
            decoded.events.push(e);
            self.stats.events[e as usize] += 1;
        }
        let key = FragKey::of(decoded)?;
        let (pkts, bytes) = match done {
            Some(_) => match self.frag_acct.remove(&key) {
                Some(a) => (a.pkts + 1, a.bytes + wire_len as u64),
                None => (1, wire_len as u64),
            },
            None => {
                if let Some(a) = self.frag_acct.get_mut(&key) {
                    a.pkts += 1;
                    a.bytes += wire_len as u64;
                    a.last = ts;
                } else if self.frag_acct.len() < self.max_frag_acct {
                    self.frag_acct.insert(
                        key,
                        FragAcct {
                            pkts: 1,
                            bytes: wire_len as u64,
                            last: ts,
                        },
                    );
                }
                return None;
            }
        };
        done.map(|buf| (buf, pkts, bytes, *decoded))
    }

    #[allow(clippy::too_many_arguments)]
    fn enqueue(
        &mut self,
        iface: u16,
        ts: Timestamp,
        data: &[u8],
        wire_len: u32,
        pkts: u32,
        fragment: bool,
        decoded: zonewatch_decode::Decoded,
    ) {
        let w = self.worker_for(&decoded);
        if self.pending[w].is_none() {
            self.pending[w] = Some(self.take_batch());
        }
        let b = self.pending[w].as_mut().expect("just filled");
        let start = b.data.len() as u32;
        b.data.extend_from_slice(data);
        b.packets.push(PacketMeta {
            pos: self.pos,
            cnt: self.cnt,
            verify_csum: self.csum.verify(data, &decoded),
            ts,
            wire_len,
            pkts,
            fragment,
            start,
            len: data.len() as u32,
            iface,
            decoded,
        });
        self.pos += self.stride;
        if b.packets.len() >= self.batch_packets {
            self.send(w);
        }
    }

    fn send(&mut self, w: usize) {
        let Some(b) = self.pending[w].take() else {
            return;
        };
        let n = b.packets.len() as u64;
        if self.live {
            if let Err(TrySendError::Full(_)) = self.txs[w].try_send(WorkMsg::Batch(b)) {
                self.stats.queue_drops += n;
            }
        } else {
            match self.txs[w].try_send(WorkMsg::Batch(b)) {
                Ok(()) => {}
                Err(TrySendError::Full(m)) => {
                    self.stats.queue_full_waits += 1;
                    let _ = self.txs[w].send(m);
                }
                Err(TrySendError::Disconnected(_)) => {}
            }
        }
        self.maybe_publish();
    }

    pub(crate) fn flush_all(&mut self) {
        for w in 0..self.pending.len() {
            self.send(w);
        }
    }

    /// Sends a clock tick to every worker after their pending packets.
    fn tick(&mut self, ts: Timestamp) {
        self.defrag.expire(ts);
        let timeout = self.defrag.config().timeout_secs as i64 * 1_000_000_000;
        self.frag_acct.retain(|_, a| ts.0 - a.last.0 < timeout);
        self.stats.defrag = self.defrag.counters();
        self.flush_all();
        let pos = self.pos;
        self.pos += self.stride;
        self.stats.ticks += 1;
        for tx in self.txs {
            let _ = tx.send(WorkMsg::Tick { pos, ts });
        }
    }

    fn maybe_publish(&mut self) {
        if self.last_publish.elapsed() >= PUBLISH_EVERY {
            self.publish();
        }
    }

    pub(crate) fn publish(&mut self) {
        self.last_publish = Instant::now();
        let _ = self
            .out
            .try_send(OutMsg::Reader(self.id, Box::new(self.stats.clone())));
    }

    /// The end of this reader's input: pending batches and the end message
    /// go to the workers, the final counters (blocking: they must arrive)
    /// and the end position to the output.
    pub(crate) fn finish(&mut self) {
        self.flush_all();
        self.stats.defrag = self.defrag.counters();
        let end_ts = self.clock.unwrap_or_default();
        let pos = self.pos;
        for tx in self.txs {
            let _ = tx.send(WorkMsg::End { pos, ts: end_ts });
        }
        self.publish();
        let _ = self
            .out
            .send(OutMsg::Reader(self.id, Box::new(self.stats.clone())));
        let _ = self.out.send(OutMsg::ReaderDone {
            end_pos: pos,
            end_ts,
        });
    }

    /// Moves the clock with wall time on a quiet link, so flows still time out.
    pub(crate) fn wall_tick(&mut self) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let ts = Timestamp::from_parts(now.as_secs() as i64, now.subsec_nanos());
        if self.clock.is_none_or(|c| ts > c) {
            self.clock = Some(ts);
        }
        let clock = self.clock.unwrap_or(ts);
        self.tick(clock);
    }
}

/// Reads every input to its end (or until stopped). Returns warnings.
pub(crate) fn run(
    cfg: &Config,
    opts: &RunOptions,
    txs: &[Sender<WorkMsg>],
    free: &Receiver<Batch>,
    out: &Sender<OutMsg>,
) -> Result<Vec<String>, RunError> {
    let live = matches!(opts.inputs, Inputs::Interfaces(_));
    let mut d = Dispatcher::new(cfg, txs, free, out, live, (0, 1));
    let mut warnings = Vec::new();
    let bpf = cfg.capture.bpf.as_deref();
    let result = match &opts.inputs {
        Inputs::Files(files) => {
            crate::ready(opts).and_then(|()| read_files(&mut d, files, bpf, opts, &mut warnings))
        }
        Inputs::Interfaces(ifaces) => read_live(&mut d, cfg, ifaces, bpf, opts),
        // Read by the workers themselves (crate::rings): no reader thread.
        Inputs::AfPacket { .. } => Ok(()),
    };
    if let Some(w) = d.csum.verdict() {
        tracing::warn!("{w}");
        warnings.push(w);
    }
    d.finish();
    result.map(|()| warnings)
}

fn progress_bar(total: u64) -> indicatif::ProgressBar {
    let pb = indicatif::ProgressBar::new(total);
    pb.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {percent:>3}% {msg} eta {eta}")
            .expect("valid template"),
    );
    pb
}

fn read_files(
    d: &mut Dispatcher<'_>,
    files: &[std::path::PathBuf],
    bpf: Option<&str>,
    opts: &RunOptions,
    warnings: &mut Vec<String>,
) -> Result<(), RunError> {
    let total: u64 = files
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.len())
        .sum();
    let pb = opts.progress.then(|| progress_bar(total));
    let started = Instant::now();
    let mut done_bytes = 0u64;
    for path in files {
        let mut src = PacketSource::open_input(path, bpf, opts.stop.clone())?;
        let Some(link) = LinkType::from_dlt(src.datalink()) else {
            let msg = format!(
                "{}: link type {} is not decoded; file skipped",
                path.display(),
                src.datalink()
            );
            tracing::warn!("{msg}");
            warnings.push(msg);
            d.stats.unsupported_link += 1;
            continue;
        };
        let mut n = 0u64;
        loop {
            if n % 4096 == 0 && opts.stop.load(Ordering::Relaxed) {
                return Ok(());
            }
            match src.next_packet() {
                Next::Packet(p) => {
                    n += 1;
                    done_bytes += p.data.len() as u64 + 16;
                    let (ts, wire) = (p.ts, p.wire_len);
                    d.packet(0, link, ts, p.data, wire);
                    if let Some(pb) = &pb {
                        if n % 8192 == 0 {
                            let secs = started.elapsed().as_secs_f64().max(1e-3);
                            pb.set_position(done_bytes.min(total));
                            pb.set_message(format!(
                                "{:.0} pkt/s {:.2} Gbit/s",
                                d.stats.pkts as f64 / secs,
                                d.stats.bytes as f64 * 8.0 / secs / 1e9
                            ));
                        }
                    }
                }
                Next::End | Next::Timeout => break,
                Next::Truncated(msg) => {
                    let w = format!("{}: capture ends mid-record ({msg})", src.name());
                    tracing::warn!("{w}");
                    warnings.push(w);
                    d.stats.truncated_files += 1;
                    break;
                }
            }
        }
        report_damage(d, &src, warnings);
    }
    if let Some(pb) = pb {
        pb.finish_and_clear();
    }
    Ok(())
}

/// Counts and reports what a file reader skipped: corrupt records it
/// resynchronised past, packets of a second link type.
fn report_damage(d: &mut Dispatcher<'_>, src: &PacketSource, warnings: &mut Vec<String>) {
    let dmg = src.damage();
    if dmg.corrupt_records > 0 {
        let w = format!(
            "{}: {} corrupt record(s); {} byte(s) skipped to resynchronise",
            src.name(),
            dmg.corrupt_records,
            dmg.skipped_bytes
        );
        tracing::warn!("{w}");
        warnings.push(w);
    }
    d.stats.corrupt_records += dmg.corrupt_records;
    d.stats.skipped_bytes += dmg.skipped_bytes;
    let other = src.other_linktype_packets();
    if other > 0 {
        let w = format!(
            "{}: {other} packet(s) of interfaces with another link type than the first (DLT {}) skipped",
            src.name(),
            src.datalink()
        );
        tracing::warn!("{w}");
        warnings.push(w);
        d.stats.other_linktype += other;
    }
}

fn read_live(
    d: &mut Dispatcher<'_>,
    cfg: &Config,
    ifaces: &[String],
    bpf: Option<&str>,
    opts: &RunOptions,
) -> Result<(), RunError> {
    // One reader thread reads every interface in turn with a short timeout;
    // more interfaces than this one thread can carry want AF_PACKET fanout
    // (planned), which will give each its own reader.
    let mut sources = Vec::new();
    for i in ifaces {
        let o = LiveOptions {
            interface: i.clone(),
            snaplen: cfg.capture.snaplen,
            promisc: cfg.capture.promisc,
            buffer_bytes: cfg.capture.buffer_bytes.min(i32::MAX as u64) as i32,
            timeout_ms: 100,
        };
        let s = PacketSource::open_live(&o, bpf)?;
        let link = LinkType::from_dlt(s.datalink()).ok_or_else(|| {
            zonewatch_capture::CaptureError::Pcap {
                what: i.clone(),
                msg: format!("link type {} is not decoded", s.datalink()),
            }
        })?;
        sources.push((s, link));
    }
    // Every handle is open: privileges can go before the first packet.
    crate::ready(opts)?;
    let mut last_wall_tick = Instant::now();
    while !opts.stop.load(Ordering::Relaxed) {
        let mut idle = true;
        for (idx, (src, link)) in sources.iter_mut().enumerate() {
            for _ in 0..1024 {
                match src.next_packet() {
                    Next::Packet(p) => {
                        idle = false;
                        let (ts, wire) = (p.ts, p.wire_len);
                        d.packet(idx as u16, *link, ts, p.data, wire);
                    }
                    _ => break,
                }
            }
        }
        if idle {
            std::thread::sleep(Duration::from_millis(1));
        }
        if idle || last_wall_tick.elapsed() >= Duration::from_secs(1) {
            // Quiet link: push out what is pending and keep the clock moving
            // with wall time so flows still time out.
            d.flush_all();
            if last_wall_tick.elapsed() >= Duration::from_secs(1) {
                last_wall_tick = Instant::now();
                d.wall_tick();
                let mut k = (0, 0, 0);
                for (src, _) in sources.iter_mut() {
                    if let Some(s) = src.stats() {
                        k.0 += s.received;
                        k.1 += s.dropped;
                        k.2 += s.if_dropped;
                    }
                }
                d.stats.kernel = k;
                d.publish();
            }
        }
    }
    Ok(())
}
