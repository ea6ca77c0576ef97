//! The output thread: merges the workers' event streams in input order
//! (file mode) or as they come (live), writes them, and emits stats events.

use crate::stats::{self, ReaderStats, WorkerStats};
use crossbeam_channel::{Receiver, RecvTimeoutError};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::time::{Duration, Instant};
use zonewatch_output::EventWriter;
use zonewatch_types::{Event, EventBody, EventKey, Timestamp};

pub(crate) enum OutMsg {
    /// A worker's events for one message, sorted by key, and the position
    /// below which that worker has processed everything.
    Events {
        worker: usize,
        events: Vec<Event>,
        done_below: EventKey,
    },
    Worker(usize, Box<WorkerStats>),
    WorkerDone(usize),
    Reader(Box<ReaderStats>),
    ReaderDone {
        end_pos: u64,
        end_ts: Timestamp,
    },
}

/// Applies thresholds to alerts in output order (so the result does not
/// depend on the worker count) and writes what passes.
struct Filtered {
    filter: Option<zonewatch_detect::AlertFilter>,
    /// Alerts held back by thresholds or suppressions.
    held: u64,
}

impl Filtered {
    fn write(&mut self, w: &mut EventWriter, mut e: Event) -> std::io::Result<()> {
        if let (Some(f), EventBody::Alert(a), Some(addr)) = (&mut self.filter, &mut e.body, &e.addr)
        {
            use zonewatch_detect::{Decision, NewAction};
            match f.decide(a.rule, addr.src_ip, addr.dest_ip, e.ts) {
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
        w.write(&e)
    }
}

struct Merge {
    queues: Vec<VecDeque<Event>>,
    /// Per worker: every event it will still send sorts at or above this.
    done_below: Vec<EventKey>,
    ordered: bool,
}

impl Merge {
    /// Writes every event no worker can still precede.
    fn drain(&mut self, w: &mut EventWriter, f: &mut Filtered, all: bool) -> std::io::Result<()> {
        let limit = if all {
            EventKey {
                pos: u64::MAX,
                sub: u64::MAX,
            }
        } else {
            self.done_below.iter().copied().min().unwrap_or_default()
        };
        let mut heap: BinaryHeap<Reverse<(EventKey, usize)>> = self
            .queues
            .iter()
            .enumerate()
            .filter_map(|(i, q)| q.front().map(|e| Reverse((e.key, i))))
            .collect();
        while let Some(Reverse((key, i))) = heap.pop() {
            if key >= limit && !all {
                break;
            }
            let e = self.queues[i]
                .pop_front()
                .expect("heap mirrors queue heads");
            f.write(w, e)?;
            if let Some(n) = self.queues[i].front() {
                heap.push(Reverse((n.key, i)));
            }
        }
        Ok(())
    }
}

pub(crate) fn run(
    rx: Receiver<OutMsg>,
    mut writer: EventWriter,
    workers: usize,
    ordered: bool,
    stats_interval: u64,
    filter: Option<zonewatch_detect::AlertFilter>,
) -> Result<serde_json::Value, std::io::Error> {
    let mut filtered = Filtered { filter, held: 0 };
    let started = Instant::now();
    let mut merge = Merge {
        queues: (0..workers).map(|_| VecDeque::new()).collect(),
        done_below: vec![EventKey::default(); workers],
        ordered,
    };
    let mut reader = ReaderStats::new();
    let mut wstats: Vec<Option<WorkerStats>> = (0..workers).map(|_| None).collect();
    let mut finished = 0;
    let mut end: Option<(u64, Timestamp)> = None;
    let mut last_clock = Timestamp::default();
    let interval = Duration::from_secs(stats_interval);
    let mut next_stats = Instant::now() + interval;
    let mut stats_seq = 0u64;
    let mut result: std::io::Result<()> = Ok(());
    let live = !ordered;
    loop {
        let msg = if stats_interval > 0 {
            match rx.recv_timeout(next_stats.saturating_duration_since(Instant::now())) {
                Ok(m) => Some(m),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => break,
            }
        } else {
            match rx.recv() {
                Ok(m) => Some(m),
                Err(_) => break,
            }
        };
        match msg {
            Some(OutMsg::Events {
                worker,
                events,
                done_below,
            }) => {
                if let Some(e) = events.last() {
                    last_clock = last_clock.max(e.ts);
                }
                if merge.ordered {
                    merge.queues[worker].extend(events);
                    merge.done_below[worker] = done_below;
                    if result.is_ok() {
                        result = merge.drain(&mut writer, &mut filtered, false);
                    }
                } else {
                    for e in events {
                        if result.is_ok() {
                            result = filtered.write(&mut writer, e);
                        }
                    }
                }
            }
            Some(OutMsg::Worker(i, s)) => wstats[i] = Some(*s),
            Some(OutMsg::WorkerDone(i)) => {
                merge.done_below[i] = EventKey {
                    pos: u64::MAX,
                    sub: u64::MAX,
                };
                finished += 1;
            }
            Some(OutMsg::Reader(s)) => reader = *s,
            Some(OutMsg::ReaderDone { end_pos, end_ts }) => end = Some((end_pos, end_ts)),
            None => {}
        }
        if stats_interval > 0 && Instant::now() >= next_stats {
            next_stats = Instant::now() + interval;
            stats_seq += 1;
            let v = stats::build(
                started.elapsed().as_secs(),
                &reader,
                &wstats,
                &writer.written,
                writer.filtered,
                live,
                with_held(writer.sink_stats(), filtered.held),
            );
            // Periodic stats sort after every event at the current position.
            let pos = merge.done_below.iter().map(|k| k.pos).min().unwrap_or(0);
            let ev = stats_event(pos, EventKey::STATS | stats_seq, last_clock, v);
            if result.is_ok() {
                result = writer.write(&ev).and_then(|()| writer.flush());
            }
        }
        if finished == workers && end.is_some() {
            break;
        }
    }
    if result.is_ok() {
        result = merge.drain(&mut writer, &mut filtered, true);
    }
    let (end_pos, mut end_ts) = end.unwrap_or((0, last_clock));
    if end_ts == Timestamp::default() {
        // No packet at all: the only clock there is, is the wall clock.
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        end_ts = Timestamp::from_parts(now.as_secs() as i64, now.subsec_nanos());
    }
    let v = stats::build(
        started.elapsed().as_secs(),
        &reader,
        &wstats,
        &writer.written,
        writer.filtered,
        live,
        with_held(writer.sink_stats(), filtered.held),
    );
    let ev = stats_event(end_pos + 1, u64::MAX, end_ts.max(last_clock), v.clone());
    if result.is_ok() {
        result = writer.write(&ev);
    }
    if result.is_ok() {
        result = writer.flush();
    }
    result.map(|()| v)
}

fn with_held(
    mut sinks: Vec<(&'static str, serde_json::Value)>,
    held: u64,
) -> Vec<(&'static str, serde_json::Value)> {
    sinks.push(("detect.thresholded", serde_json::Value::from(held)));
    sinks
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
