//! The output thread: merges the workers' event streams in input order
//! (file mode) or as they come (live), writes them, and emits stats events.

use crate::stats::{self, ReaderStats, WorkerStats};
use crossbeam_channel::{Receiver, RecvTimeoutError};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use zonewatch_output::{EventWriter, SinkError};
use zonewatch_types::{Event, EventBody, EventKey, Timestamp};

pub(crate) enum OutMsg {
    /// A worker's events for one message, sorted by key, and the position
    /// below which that worker has processed everything.
    Events {
        worker: usize,
        events: Vec<Event>,
        /// Observations for the anomaly detectors, sorted by key.
        obs: Vec<(EventKey, crate::Obs)>,
        done_below: EventKey,
    },
    Worker(usize, Box<WorkerStats>),
    WorkerDone(usize),
    /// A reader's latest counters (AF_PACKET: one reader per worker).
    Reader(usize, Box<ReaderStats>),
    ReaderDone {
        end_pos: u64,
        end_ts: Timestamp,
    },
    /// Sigma alerts from the log thread, written as they arrive (not merged
    /// with the packet events), and sometimes its latest counters.
    Logs(Vec<Event>, Option<Box<serde_json::Value>>),
    /// The log thread is done (inputs ended or stop); its final counters.
    LogsDone(Box<serde_json::Value>),
}

/// Applies thresholds to alerts in output order (so the result does not
/// depend on the worker count) and writes what passes.
/// Also runs the anomaly detectors on the observations and flow ends, in
/// the same order, and writes their alerts.
struct Filtered {
    filter: Option<zonewatch_detect::AlertFilter>,
    /// Alerts held back by thresholds or suppressions.
    held: u64,
    anomaly: Option<zonewatch_anomaly::DetectorSet>,
    /// Anomaly alerts written at the current position (their `sub`).
    anomaly_seq: (u64, u64),
    /// Packet time at which threshold trackers are next expired.
    next_expire: Timestamp,
    /// Reloaded rules (SIGHUP), taken between messages.
    rules: Option<crate::reload::Watch>,
    /// The reload counters, for the stats.
    reload: Option<crate::RuleSlot>,
}

/// How often live output is flushed.
const LIVE_FLUSH: Duration = Duration::from_secs(1);

/// Packet seconds between sweeps of finished threshold windows: each sweep
/// visits every tracker, so not on every event.
const EXPIRE_EVERY_SECS: u64 = 10;

impl Filtered {
    /// Takes reloaded rules, if there are new ones: the threshold filter
    /// goes on with the new engine (trackers kept), the detector set with
    /// the state of every detector whose file did not change.
    fn reload(&mut self) {
        let Some(u) = self.rules.as_mut().and_then(|w| w.poll()) else {
            return;
        };
        self.filter = match (self.filter.take(), u.detect.clone()) {
            (Some(mut f), Some(e)) => {
                f.replace_engine(e);
                Some(f)
            }
            (_, e) => e.map(zonewatch_detect::AlertFilter::new),
        };
        let mut set = u.take_anomaly();
        if let (Some(new), Some(old)) = (&mut set, self.anomaly.take()) {
            let kept = new.adopt_state(old);
            tracing::info!(
                "reload: detectors {:?} running, state kept by {kept:?}",
                new.active()
            );
        }
        self.anomaly = set;
    }

    fn observe(
        &mut self,
        w: &mut EventWriter,
        key: EventKey,
        o: crate::Obs,
    ) -> Result<(), SinkError> {
        if let Some(set) = &mut self.anomaly {
            match o {
                crate::Obs::Packet(p) => set.observe_packet(&p),
                crate::Obs::Dns(m) => set.observe_dns(&m.obs()),
                crate::Obs::Tick(ts) => set.tick(ts),
            }
        }
        self.anomaly_alerts(w, key.pos)
    }

    /// Ends the detectors' windows at the end of input.
    fn finish(&mut self, w: &mut EventWriter, pos: u64, ts: Timestamp) -> Result<(), SinkError> {
        if let Some(set) = &mut self.anomaly {
            set.finish(ts);
        }
        self.anomaly_alerts(w, pos)
    }

    fn anomaly_alerts(&mut self, w: &mut EventWriter, pos: u64) -> Result<(), SinkError> {
        let Some(set) = &mut self.anomaly else {
            return Ok(());
        };
        let alerts: Vec<_> = set.drain_alerts().collect();
        for a in alerts {
            if self.anomaly_seq.0 != pos {
                self.anomaly_seq = (pos, 0);
            }
            let key = EventKey {
                pos,
                sub: EventKey::ANOMALY + self.anomaly_seq.1,
            };
            self.anomaly_seq.1 += 1;
            w.write(&anomaly_event(a, key))?;
        }
        Ok(())
    }

    fn write(&mut self, w: &mut EventWriter, mut e: Event) -> Result<(), SinkError> {
        if let (Some(set), EventBody::Flow(f), Some(a)) = (&mut self.anomaly, &e.body, &e.addr) {
            set.observe_flow_end(&zonewatch_anomaly::FlowEndObs {
                src: a.src_ip,
                dst: a.dest_ip,
                sport: a.src_port.unwrap_or(0),
                dport: a.dest_port.unwrap_or(0),
                proto: a.proto,
                start: f.start,
                end: f.end,
                pkts_toserver: f.pkts_toserver,
                pkts_toclient: f.pkts_toclient,
                bytes_toserver: f.bytes_toserver,
                bytes_toclient: f.bytes_toclient,
                tcp_flags: f.tcp.map(|t| t.flags_ts | t.flags_tc).unwrap_or(0),
                established: f.state != "new",
            });
        }
        if let Some(f) = &mut self.filter {
            // Events come in input order: their time drives the expiry of
            // finished threshold windows (decisions do not change; the
            // table and the `detect.threshold` counters do).
            if e.ts >= self.next_expire {
                f.expire(e.ts);
                self.next_expire = e.ts.plus_secs(EXPIRE_EVERY_SECS);
            }
        }
        if let (Some(f), EventBody::Alert(a), Some(addr)) = (&mut self.filter, &mut e.body, &e.addr)
        {
            if a.rule == zonewatch_types::AlertRecord::NOT_A_SIGNATURE {
                return w.write(&e);
            }
            use zonewatch_detect::{Decision, NewAction};
            match f.decide(a.gid, a.signature_id, addr.src_ip, addr.dest_ip, e.ts) {
                Decision::Alert => {}
                Decision::AlertWithAction(n) => {
                    a.rule_action = match n {
                        NewAction::Drop | NewAction::Sdrop => "drop",
                        NewAction::Reject => "reject",
                        NewAction::Pass => "pass",
                        NewAction::Alert | NewAction::Log => "alert",
                    }
                }
                Decision::Silent | Decision::Discard => {
                    self.held += 1;
                    return Ok(());
                }
            }
        }
        if writes_record(&e) {
            w.write(&e)?;
        }
        if matches!(e.body, EventBody::Flow(_)) {
            self.anomaly_alerts(w, e.key.pos)?;
        }
        Ok(())
    }
}

/// Whether an event is written. The end of a flow Suricata would not have
/// (IGMP, OSPF, PIM, ...: [`zonewatch_decode::ip_proto_has_flow`]) is seen
/// by the anomaly detectors but makes no flow record.
fn writes_record(e: &Event) -> bool {
    match (&e.body, &e.addr) {
        (EventBody::Flow(_), Some(a)) => {
            zonewatch_decode::ip_proto_has_flow(if a.src_ip.is_ipv4() { 4 } else { 6 }, a.proto)
        }
        _ => true,
    }
}

/// An anomaly detector's alert as an EVE alert event. An alert about many
/// targets (a horizontal scan) has no single destination: `dest_ip` is then
/// the unspecified address of the source's family.
fn anomaly_event(a: zonewatch_anomaly::AnomalyAlert, key: EventKey) -> Event {
    let dest = a.dest_ip.unwrap_or(match a.src_ip {
        std::net::IpAddr::V4(_) => std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
        std::net::IpAddr::V6(_) => std::net::IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
    });
    let mut evidence = a.evidence;
    if let Some(o) = evidence.as_object_mut() {
        o.insert("detector".into(), a.detector.into());
        o.insert("update".into(), a.update.into());
    }
    Event {
        key,
        ts: a.ts,
        flow_id: None,
        addr: Some(zonewatch_types::AddrInfo {
            src_ip: a.src_ip,
            src_port: a.src_port,
            dest_ip: dest,
            dest_port: a.dest_port,
            proto: a.proto.unwrap_or(0),
            vlan: [0, 0],
        }),
        community_id: None,
        in_iface: None,
        body: EventBody::Alert(Box::new(zonewatch_types::AlertRecord {
            rule: zonewatch_types::AlertRecord::NOT_A_SIGNATURE,
            rule_action: "alert",
            gid: 1,
            signature_id: a.signature_id as u64,
            rev: 1,
            signature: std::sync::Arc::from(a.signature.as_str()),
            category: std::sync::Arc::from(a.category.as_str()),
            severity: a.severity,
            metadata: std::sync::Arc::from(Vec::new()),
            stream: false,
            to_server: None,
            pcap_cnt: None,
            target_dest: None,
            icmp: None,
            evidence: Some(Box::new(evidence)),
            app: None,
            bytes: None,
            log: None,
        })),
    }
}

// Events are the common item; boxing them would cost an allocation each.
#[allow(clippy::large_enum_variant)]
enum Item {
    Event(Event),
    Obs(EventKey, crate::Obs),
}

impl Item {
    fn key(&self) -> EventKey {
        match self {
            Item::Event(e) => e.key,
            Item::Obs(k, _) => *k,
        }
    }
}

/// Merges a worker's sorted events and sorted observations.
fn merged(events: Vec<Event>, obs: Vec<(EventKey, crate::Obs)>) -> Vec<Item> {
    if obs.is_empty() {
        return events.into_iter().map(Item::Event).collect();
    }
    let mut out = Vec::with_capacity(events.len() + obs.len());
    let mut e = events.into_iter().peekable();
    let mut o = obs.into_iter().peekable();
    loop {
        let take_event = match (e.peek(), o.peek()) {
            (Some(a), Some(b)) => a.key <= b.0,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => break,
        };
        if take_event {
            out.push(Item::Event(e.next().expect("peeked")));
        } else {
            let (k, x) = o.next().expect("peeked");
            out.push(Item::Obs(k, x));
        }
    }
    out
}

struct Merge {
    queues: Vec<VecDeque<Item>>,
    /// Per worker: every event it will still send sorts at or above this.
    done_below: Vec<EventKey>,
    ordered: bool,
}

impl Merge {
    /// Writes every event no worker can still precede.
    fn drain(&mut self, w: &mut EventWriter, f: &mut Filtered, all: bool) -> Result<(), SinkError> {
        let limit = if all {
            EventKey::MAX
        } else {
            self.done_below.iter().copied().min().unwrap_or_default()
        };
        let mut heap: BinaryHeap<Reverse<(EventKey, usize)>> = self
            .queues
            .iter()
            .enumerate()
            .filter_map(|(i, q)| q.front().map(|e| Reverse((e.key(), i))))
            .collect();
        while let Some(Reverse((key, i))) = heap.pop() {
            if key >= limit && !all {
                break;
            }
            let item = self.queues[i]
                .pop_front()
                .expect("heap mirrors queue heads");
            match item {
                Item::Event(e) => f.write(w, e)?,
                Item::Obs(k, o) => f.observe(w, k, o)?,
            }
            if let Some(n) = self.queues[i].front() {
                heap.push(Reverse((n.key(), i)));
            }
        }
        Ok(())
    }
}

/// What the output thread needs besides the channel and the writer.
pub(crate) struct OutputOptions {
    pub workers: usize,
    /// Threads that read packets (1; AF_PACKET: one per worker).
    pub readers: usize,
    /// File mode: merge the workers' events in input order.
    pub ordered: bool,
    pub stats_interval: u64,
    pub filter: Option<zonewatch_detect::AlertFilter>,
    pub anomaly: Option<zonewatch_anomaly::DetectorSet>,
    /// A log thread sends to this output.
    pub logs: bool,
    /// Set when a sink fails for good, so the inputs stop within a batch
    /// instead of feeding an output that can no longer write.
    pub stop: Arc<AtomicBool>,
    /// Metrics publishing and stats on request.
    pub hooks: crate::Hooks,
    /// The worker queues, for their depths (with metrics only).
    pub queues: Option<crate::QueueProbe>,
}

/// How often counters are published for the metrics endpoint.
const PUBLISH_EVERY: Duration = Duration::from_secs(1);

/// How often the stats-request flag (SIGUSR1) is looked at.
const STATS_NOW_POLL: Duration = Duration::from_millis(250);

/// What the metrics endpoint gets besides the stats object: the workers'
/// latency histogram (the stats event has only its percentiles) and the
/// queue depths. `lat` is a scratch histogram, reused.
fn snapshot(
    stats: serde_json::Value,
    wstats: &[Option<WorkerStats>],
    lat: &mut hdrhistogram::Histogram<u64>,
    queues: Option<&crate::QueueProbe>,
    out_rx: &Receiver<OutMsg>,
) -> zonewatch_metrics::Snapshot {
    use zonewatch_metrics::{Gauge, Histogram};
    lat.reset();
    for w in wstats.iter().flatten() {
        let _ = lat.add(&w.latency_us);
    }
    let mut gauges = Vec::new();
    let mut queue = |name: String, len: usize, cap: usize| {
        gauges.push(Gauge {
            name: "zonewatch_pipeline_queue_depth",
            help: "Messages waiting in a queue now: batches of packets for worker-N, worker events and log alerts for the output thread.",
            labels: vec![("queue", name.clone())],
            value: len as f64,
        });
        gauges.push(Gauge {
            name: "zonewatch_pipeline_queue_capacity",
            help: "Messages a queue holds at most (files: the reader then waits; live capture: the batch is dropped, zonewatch_pipeline_queue_drops_total).",
            labels: vec![("queue", name)],
            value: cap as f64,
        });
    };
    for (w, len, cap) in queues.map(|q| q.depths()).unwrap_or_default() {
        queue(format!("worker-{w}"), len, cap);
    }
    queue(
        "output".into(),
        out_rx.len(),
        out_rx.capacity().unwrap_or(0),
    );
    zonewatch_metrics::Snapshot {
        stats,
        histograms: vec![Histogram::from_micros(
            "zonewatch_pipeline_latency_seconds",
            "Seconds from a packet's batch leaving the reader to the batch processed by its worker, one observation per packet (cumulative over the run). Stats: pipeline.latency_us.",
            lat,
        )],
        gauges,
    }
}

/// What the output thread wrote: the final counters and the events sinks
/// accepted and then lost (counted by them).
pub(crate) struct OutputReport {
    pub stats: serde_json::Value,
    pub lost: u64,
}

/// Records the first sink failure: logged at once (the operator must not
/// learn of a full disk at shutdown), and the run is told to stop. Events
/// that arrive afterwards are read and discarded so that no thread blocks.
fn fail(result: &mut Result<(), SinkError>, e: SinkError, stop: &AtomicBool) {
    if result.is_ok() {
        tracing::error!("output {e}; stopping the run (events from now on are not written)");
        stop.store(true, Ordering::Relaxed);
        *result = Err(e);
    }
}

/// The output thread's state between messages.
struct OutputThread {
    writer: EventWriter,
    filtered: Filtered,
    merge: Merge,
    workers: usize,
    /// Each reader's latest counters (one reader, or one per AF_PACKET worker).
    readers: Vec<ReaderStats>,
    /// Readers that have finished.
    readers_done: usize,
    wstats: Vec<Option<WorkerStats>>,
    /// Workers that have finished.
    finished: usize,
    /// End of input (position, clock), once every reader is done (the
    /// largest position and clock of theirs).
    end: Option<(u64, Timestamp)>,
    /// Latest event time seen.
    last_clock: Timestamp,
    started: Instant,
    live: bool,
    /// `syslog` and `sigma` stats sections.
    log_stats: Option<serde_json::Value>,
    /// The log thread has finished (at once when there is none).
    logs_done: bool,
    stats_seq: u64,
    /// The first sink failure; from then on events are read and dropped.
    result: Result<(), SinkError>,
    stop: Arc<AtomicBool>,
}

impl OutputThread {
    /// Sets a result: the first failure stops the run.
    fn check(&mut self, r: Result<(), SinkError>) {
        if let Err(e) = r {
            fail(&mut self.result, e, &self.stop);
        }
    }

    /// Log rotation (SIGHUP): events written so far stay in the file that
    /// was moved away; the next ones go to a new one.
    fn reopen(&mut self) {
        if self.result.is_ok() {
            let r = self.writer.reopen();
            if r.is_ok() {
                tracing::info!("outputs reopened (SIGHUP)");
            }
            self.check(r);
        }
    }

    fn done(&self) -> bool {
        self.finished == self.workers && self.readers_done == self.readers.len() && self.logs_done
    }

    fn on_message(&mut self, msg: OutMsg) {
        self.filtered.reload();
        match msg {
            OutMsg::Events {
                worker,
                events,
                obs,
                done_below,
            } => self.on_events(worker, events, obs, done_below),
            OutMsg::Worker(i, s) => self.wstats[i] = Some(*s),
            OutMsg::WorkerDone(i) => {
                self.merge.done_below[i] = EventKey::MAX;
                self.finished += 1;
            }
            OutMsg::Reader(i, s) => self.readers[i] = *s,
            OutMsg::ReaderDone { end_pos, end_ts } => {
                self.readers_done += 1;
                let (p, t) = self.end.unwrap_or_default();
                self.end = Some((p.max(end_pos), t.max(end_ts)));
            }
            OutMsg::Logs(events, stats) => {
                for e in events {
                    self.last_clock = self.last_clock.max(e.ts);
                    if self.result.is_ok() {
                        let r = self.filtered.write(&mut self.writer, e);
                        self.check(r);
                    }
                }
                if let Some(s) = stats {
                    self.log_stats = Some(*s);
                }
            }
            OutMsg::LogsDone(stats) => {
                self.log_stats = Some(*stats);
                self.logs_done = true;
            }
        }
    }

    /// A worker's events: merged in input order (files) or written as
    /// they come (live).
    fn on_events(
        &mut self,
        worker: usize,
        events: Vec<Event>,
        obs: Vec<(EventKey, crate::Obs)>,
        done_below: EventKey,
    ) {
        if let Some(e) = events.last() {
            self.last_clock = self.last_clock.max(e.ts);
        }
        if self.merge.ordered {
            self.merge.queues[worker].extend(merged(events, obs));
            self.merge.done_below[worker] = done_below;
            if self.result.is_ok() {
                let r = self
                    .merge
                    .drain(&mut self.writer, &mut self.filtered, false);
                self.check(r);
            }
            return;
        }
        for item in merged(events, obs) {
            if self.result.is_ok() {
                let r = match item {
                    Item::Event(e) => self.filtered.write(&mut self.writer, e),
                    Item::Obs(k, o) => self.filtered.observe(&mut self.writer, k, o),
                };
                self.check(r);
            }
        }
    }

    fn stats(&self) -> serde_json::Value {
        current_stats(
            self.started,
            &ReaderStats::sum(&self.readers),
            &self.wstats,
            &self.writer,
            self.live,
            &self.filtered,
            self.log_stats.as_ref(),
        )
    }

    /// A periodic or requested stats event: it sorts after every event at
    /// the current position.
    fn write_stats_event(&mut self) {
        self.stats_seq += 1;
        let v = self.stats();
        let pos = self
            .merge
            .done_below
            .iter()
            .map(|k| k.pos)
            .min()
            .unwrap_or(0);
        // Before any packet or log record, the wall clock (as for the
        // final stats event), not 1970.
        let ts = if self.last_clock == Timestamp::default() {
            wall_clock()
        } else {
            self.last_clock
        };
        let ev = stats_event(pos, EventKey::STATS | self.stats_seq, ts, v);
        if self.result.is_ok() {
            let r = self.writer.write(&ev).and_then(|()| self.writer.flush());
            self.check(r);
        }
    }

    /// Writes what is left and the final stats event, then closes the
    /// sinks. `publish` gets the final counters (metrics).
    fn finish(
        mut self,
        publish: impl FnOnce(&serde_json::Value, &[Option<WorkerStats>]),
    ) -> Result<OutputReport, SinkError> {
        if self.result.is_ok() {
            let r = self.merge.drain(&mut self.writer, &mut self.filtered, true);
            self.check(r);
        }
        let last_clock = self.last_clock;
        if self.result.is_ok() {
            let (pos, ts) = self.end.unwrap_or((0, last_clock));
            let r = self
                .filtered
                .finish(&mut self.writer, pos, ts.max(last_clock));
            self.check(r);
        }
        let (end_pos, mut end_ts) = self.end.unwrap_or((0, last_clock));
        if end_ts == Timestamp::default() {
            // No packet at all: the only clock there is, is the wall clock.
            end_ts = wall_clock();
        }
        // Sinks deliver or store what they hold first, so the last stats
        // event carries their final counters (Kafka's in-flight and dropped).
        if self.result.is_ok() {
            let r = self.writer.settle();
            self.check(r);
        }
        let v = self.stats();
        publish(&v, &self.wstats);
        let ev = stats_event(
            end_pos + 1,
            EventKey::FINAL_STATS,
            end_ts.max(last_clock),
            v.clone(),
        );
        if self.result.is_ok() {
            let r = self.writer.write(&ev).and_then(|()| self.writer.flush());
            self.check(r);
        }
        // Closed even after a failure: the other sinks still deliver or
        // keep what they accepted.
        let r = self.writer.close();
        self.check(r);
        let lost = self.writer.lost();
        self.result.map(|()| OutputReport { stats: v, lost })
    }
}

pub(crate) fn run(
    rx: Receiver<OutMsg>,
    writer: EventWriter,
    o: OutputOptions,
) -> Result<OutputReport, SinkError> {
    let OutputOptions {
        workers,
        readers,
        ordered,
        stats_interval,
        filter,
        anomaly,
        logs,
        stop,
        hooks,
        queues,
    } = o;
    let mut next_publish = Instant::now();
    let mut lat_scratch = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)
        .expect("valid histogram bounds");
    let mut t = OutputThread {
        writer,
        filtered: Filtered {
            filter,
            held: 0,
            anomaly,
            anomaly_seq: (0, 0),
            next_expire: Timestamp::default(),
            rules: hooks.rules.clone().map(crate::reload::Watch::new),
            reload: hooks.rules.clone(),
        },
        merge: Merge {
            queues: (0..workers).map(|_| VecDeque::new()).collect(),
            done_below: vec![EventKey::default(); workers],
            ordered,
        },
        workers,
        readers: (0..readers.max(1)).map(|_| ReaderStats::new()).collect(),
        readers_done: 0,
        wstats: (0..workers).map(|_| None).collect(),
        finished: 0,
        end: None,
        last_clock: Timestamp::default(),
        started: Instant::now(),
        live: !ordered,
        log_stats: None,
        logs_done: !logs,
        stats_seq: 0,
        result: Ok(()),
        stop,
    };
    let interval = Duration::from_secs(stats_interval);
    let mut next_stats = Instant::now() + interval;
    // Inputs that never end by themselves (interfaces, listeners) are
    // flushed every second.
    let flush_often = t.live || logs;
    let mut next_flush = Instant::now() + LIVE_FLUSH;
    loop {
        // Wake for the next stats event, live for the next flush, and for
        // metrics and stats requests.
        let mut deadline: Option<Instant> = None;
        let mut wake = |at: Instant| deadline = Some(deadline.map_or(at, |d| d.min(at)));
        if stats_interval > 0 {
            wake(next_stats);
        }
        if flush_often {
            wake(next_flush);
        }
        if hooks.metrics.is_some() {
            wake(next_publish);
        }
        if hooks.stats_now.is_some() || hooks.reopen.is_some() {
            wake(Instant::now() + STATS_NOW_POLL);
        }
        let msg = match deadline {
            Some(d) => match rx.recv_timeout(d.saturating_duration_since(Instant::now())) {
                Ok(m) => Some(m),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => break,
            },
            None => match rx.recv() {
                Ok(m) => Some(m),
                Err(_) => break,
            },
        };
        if let Some(m) = msg {
            t.on_message(m);
        }
        // Live events reach the file (and a tailing SIEM) within a second,
        // and a failing output (a full disk) is noticed within a second,
        // however few events there are.
        if flush_often && Instant::now() >= next_flush {
            next_flush = Instant::now() + LIVE_FLUSH;
            if t.result.is_ok() {
                let r = t.writer.flush();
                t.check(r);
            }
        }
        if hooks
            .reopen
            .as_ref()
            .is_some_and(|f| f.swap(false, Ordering::Relaxed))
        {
            t.reopen();
        }
        let periodic = stats_interval > 0 && Instant::now() >= next_stats;
        // A stats request (SIGUSR1) writes one more, leaving the periodic
        // ones on their schedule.
        let asked = hooks
            .stats_now
            .as_ref()
            .is_some_and(|f| f.swap(false, Ordering::Relaxed));
        if periodic {
            next_stats = Instant::now() + interval;
        }
        if periodic || asked {
            t.write_stats_event();
        }
        if let Some(m) = &hooks.metrics {
            if Instant::now() >= next_publish {
                next_publish = Instant::now() + PUBLISH_EVERY;
                let v = t.stats();
                m.publish(snapshot(
                    v,
                    &t.wstats,
                    &mut lat_scratch,
                    queues.as_ref(),
                    &rx,
                ));
            }
        }
        if t.done() {
            break;
        }
    }
    t.finish(|v, wstats| {
        if let Some(m) = &hooks.metrics {
            m.publish(snapshot(
                v.clone(),
                wstats,
                &mut lat_scratch,
                queues.as_ref(),
                &rx,
            ));
        }
    })
}

/// The stats object as things stand (periodic and requested stats events,
/// metrics, the final event).
fn current_stats(
    started: Instant,
    reader: &ReaderStats,
    workers: &[Option<WorkerStats>],
    writer: &EventWriter,
    live: bool,
    filtered: &Filtered,
    logs: Option<&serde_json::Value>,
) -> serde_json::Value {
    stats::build(stats::StatsInput {
        uptime_s: started.elapsed().as_secs(),
        reader,
        workers,
        written: &writer.written,
        filtered: writer.filtered,
        live,
        sinks: with_held(writer.sink_stats(), filtered, logs),
    })
}

fn with_held(
    mut sinks: Vec<(&'static str, serde_json::Value)>,
    f: &Filtered,
    logs: Option<&serde_json::Value>,
) -> Vec<(&'static str, serde_json::Value)> {
    sinks.push(("detect.thresholded", serde_json::Value::from(f.held)));
    if let Some(r) = &f.reload {
        sinks.push(("reload", r.stats()));
    }
    if let Some(filter) = &f.filter {
        let t = filter.stats();
        sinks.push((
            "detect.threshold",
            serde_json::json!({
                "tracked": t.tracked,
                "evicted": t.evicted,
                "expired": t.expired,
                "suppressed": t.suppressed,
                "thresholded": t.thresholded,
                "rate_filtered": t.rate_filtered,
            }),
        ));
    }
    if let Some(l) = logs {
        for section in ["syslog", "sigma"] {
            if let Some(v) = l.get(section) {
                sinks.push((section, v.clone()));
            }
        }
    }
    if let Some(set) = &f.anomaly {
        let mut root = serde_json::Map::new();
        for (name, v) in set.counters() {
            let name = name.strip_prefix("anomaly.").unwrap_or(&name);
            stats::put(&mut root, name, serde_json::Value::from(v));
        }
        sinks.push(("anomaly", serde_json::Value::Object(root)));
    }
    sinks
}

fn wall_clock() -> Timestamp {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    Timestamp::from_parts(now.as_secs() as i64, now.subsec_nanos())
}

fn stats_event(pos: u64, sub: u64, ts: Timestamp, v: serde_json::Value) -> Event {
    Event {
        key: EventKey { pos, sub },
        ts,
        flow_id: None,
        addr: None,
        community_id: None,
        in_iface: None,
        body: EventBody::Stats(v),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zonewatch_types::{AddrInfo, FlowRecord};

    fn flow_end(proto: u8, src: &str) -> Event {
        Event {
            key: EventKey::default(),
            ts: Timestamp::default(),
            flow_id: Some(1),
            addr: Some(AddrInfo {
                src_ip: src.parse().unwrap(),
                src_port: None,
                dest_ip: src.parse().unwrap(),
                dest_port: None,
                proto,
                vlan: [0; 2],
            }),
            community_id: None,
            in_iface: None,
            body: EventBody::Flow(FlowRecord {
                pkts_toserver: 1,
                pkts_toclient: 0,
                bytes_toserver: 60,
                bytes_toclient: 0,
                start: Timestamp::default(),
                end: Timestamp::default(),
                state: "new",
                reason: "timeout",
                alerted: false,
                app_proto: None,
                tcp: None,
            }),
        }
    }

    /// suricata-verify bug-5162: the IGMP reports' flow is tracked (the
    /// anomaly detectors see its end) but written as no flow record.
    #[test]
    fn flows_suricata_does_not_have_write_no_record() {
        assert!(!writes_record(&flow_end(2, "192.168.56.102")));
        assert!(!writes_record(&flow_end(89, "10.0.0.1")));
        assert!(!writes_record(&flow_end(1, "fd00::1")));
        for p in [6, 17, 1, 47, 50, 132] {
            assert!(writes_record(&flow_end(p, "10.0.0.1")), "proto {p}");
        }
        assert!(writes_record(&flow_end(58, "fd00::1")));
    }
}
