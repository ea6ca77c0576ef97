//! Counters and the delivery latency histogram.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use hdrhistogram::Histogram;
use serde::Serialize;

/// A snapshot of the sink's counters, as returned by [`KafkaSink::metrics`] and
/// [`KafkaSink::shutdown`].
///
/// [`KafkaSink::metrics`]: crate::KafkaSink::metrics
/// [`KafkaSink::shutdown`]: crate::KafkaSink::shutdown
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Metrics {
    /// Events handed to [`KafkaSink::send`](crate::KafkaSink::send).
    pub accepted: u64,
    /// Messages acknowledged by the broker (replayed ones included).
    pub delivered: u64,
    /// Deliveries that failed (timeout, broker error, purge at shutdown) and were left in
    /// or put into the spool for another attempt.
    pub retried: u64,
    /// Records written to the spool (with `write_ahead`, every event).
    pub spooled: u64,
    /// Spool records produced again by the replayer and acknowledged.
    pub replayed: u64,
    /// Events lost because the spool was full (`drop_newest`, or records deleted by
    /// `drop_oldest`).
    pub dropped_spool_full: u64,
    /// Events lost because the spool could not be written (I/O error, e.g. disk full).
    pub dropped_io_error: u64,
    /// Spool records (or damaged regions) skipped because their CRC, length or framing was
    /// wrong.
    pub corrupt_spool_records: u64,
    /// Events the broker or librdkafka refused for good (e.g. larger than
    /// `message.max.bytes`). Each is written to the dead-letter file `rejected.jsonl` in
    /// the spool directory (kept, not lost) unless that fails ([`Metrics::dead_letter_failed`]).
    pub rejected: u64,
    /// Rejected events that could not be written to the dead-letter file either (write
    /// error, or the file reached its 64 MiB cap): lost.
    pub dead_letter_failed: u64,
    /// Messages librdkafka neither acknowledged nor handed back (for the spool) when the
    /// producer was shut down: lost. 0 unless librdkafka failed to report a delivery.
    pub lost_at_shutdown: u64,
    /// Messages in librdkafka's queues (produced, not yet acknowledged or failed).
    pub in_flight: u64,
    /// Total size of the spool's segment files.
    pub spool_bytes: u64,
    /// Spooled bytes not yet acknowledged by the broker.
    pub spool_backlog_bytes: u64,
    /// Whether new events currently go to the spool instead of the broker.
    pub spooling: bool,
    /// Latency from `send` to the broker's acknowledgement, over all delivered events
    /// (for replayed events it includes the time spent in the spool).
    pub latency: LatencySummary,
}

impl Metrics {
    /// Events this sink accepted and then lost, neither delivered nor kept in the spool
    /// or the dead-letter file: `dropped_spool_full + dropped_io_error +
    /// dead_letter_failed + corrupt_spool_records + lost_at_shutdown`. (A corrupt spool
    /// record may stem from an earlier run; it is lost all the same.)
    pub fn lost(&self) -> u64 {
        self.dropped_spool_full
            + self.dropped_io_error
            + self.dead_letter_failed
            + self.corrupt_spool_records
            + self.lost_at_shutdown
    }
}

/// Percentiles of the send → acknowledgement latency, in microseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct LatencySummary {
    /// Number of samples.
    pub count: u64,
    /// Median.
    pub p50_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// 99.9th percentile.
    pub p999_us: u64,
    /// Maximum (values above one hour are recorded as one hour).
    pub max_us: u64,
}

/// Largest recorded latency: one hour.
const MAX_LATENCY_US: u64 = 3_600_000_000;

/// A counter on its own cache line, so that the sending threads and librdkafka's callback
/// thread do not slow each other down.
#[derive(Debug, Default)]
#[repr(align(64))]
pub(crate) struct Padded(pub AtomicU64);

#[derive(Debug, Default)]
pub(crate) struct Counters {
    /// Written by the sending threads.
    pub accepted: Padded,
    /// The rest mostly by the callback thread.
    pub delivered: AtomicU64,
    pub retried: AtomicU64,
    pub replayed: AtomicU64,
    pub dropped_io_error: AtomicU64,
    pub rejected: AtomicU64,
    pub dead_letter_failed: AtomicU64,
    /// Messages librdkafka accepted (`produce` succeeded), and those whose delivery was
    /// reported (acknowledged or failed): the difference after the producer is gone was
    /// never reported.
    pub produced: AtomicU64,
    pub resolved: AtomicU64,
}

impl Counters {
    pub(crate) fn inc(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }
}

pub(crate) struct Latency(Mutex<Histogram<u64>>);

impl std::fmt::Debug for Latency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Latency")
    }
}

impl Latency {
    pub(crate) fn new() -> Latency {
        Latency(Mutex::new(
            // Two significant digits (1 % resolution) keep the histogram small, so that
            // computing a summary does not hold up the delivery callbacks for long.
            Histogram::new_with_bounds(1, MAX_LATENCY_US, 2).expect("valid histogram bounds"),
        ))
    }

    pub(crate) fn record(&self, us: u64) {
        let mut h = self.0.lock().unwrap_or_else(|e| e.into_inner());
        h.saturating_record(us.clamp(1, MAX_LATENCY_US));
    }

    pub(crate) fn summary(&self) -> LatencySummary {
        let h = self.0.lock().unwrap_or_else(|e| e.into_inner());
        summarize(&h)
    }
}

/// Summary of a histogram of microseconds.
pub(crate) fn summarize(h: &Histogram<u64>) -> LatencySummary {
    if h.is_empty() {
        return LatencySummary::default();
    }
    LatencySummary {
        count: h.len(),
        p50_us: h.value_at_quantile(0.50),
        p99_us: h.value_at_quantile(0.99),
        p999_us: h.value_at_quantile(0.999),
        max_us: h.max(),
    }
}
