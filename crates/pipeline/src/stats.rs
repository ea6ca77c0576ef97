//! Counters of each stage, and how they are nested into a `stats` event with
//! Suricata's names where the meaning is the same.

use serde_json::{Map, Value};
use zonewatch_decode::{layer, DecodeEvent, Decoded};
use zonewatch_flow::FlowCounters;

/// Reader counters (capture and decode happen on the reader thread).
#[derive(Debug, Clone, Default)]
pub struct ReaderStats {
    /// Packets read.
    pub pkts: u64,
    /// Wire bytes of packets read.
    pub bytes: u64,
    /// Largest packet.
    pub max_pkt_size: u64,
    /// Packets with a decoder event that made them unusable.
    pub invalid: u64,
    /// Packets per layer, indexed like [`layer::NAMES`].
    pub layers: Vec<u64>,
    /// Decoder events, indexed by `DecodeEvent as usize`.
    pub events: Vec<u64>,
    /// Events that did not fit a packet's event set.
    pub events_overflow: u64,
    /// Capture files skipped because their link type is not decoded.
    pub unsupported_link: u64,
    /// Files that ended mid-record.
    pub truncated_files: u64,
    /// Corrupt records or blocks the file readers skipped (resynchronised).
    pub corrupt_records: u64,
    /// Bytes skipped to get past them.
    pub skipped_bytes: u64,
    /// pcapng packets skipped: their interface has another link type.
    pub other_linktype: u64,
    /// Times the reader waited for a full worker queue (files).
    pub queue_full_waits: u64,
    /// Packets dropped because a worker queue was full (live capture).
    pub queue_drops: u64,
    /// Clock ticks sent.
    pub ticks: u64,
    /// Live capture: packets received / dropped by the kernel / dropped by
    /// the interface (AF_PACKET: the sums over this reader's rings).
    pub kernel: (u64, u64, u64),
    /// AF_PACKET: each ring this reader reads, with the kernel's counters.
    pub rings: Vec<RingCounters>,
    /// Defragmentation counters.
    pub defrag: zonewatch_defrag::DefragCounters,
}

/// The kernel's counters of one AF_PACKET ring.
#[derive(Debug, Clone, Default)]
pub struct RingCounters {
    /// Interface name.
    pub interface: std::sync::Arc<str>,
    /// Ring number within the interface's fanout group (= worker).
    pub ring: usize,
    /// The kernel's counters.
    pub kernel: zonewatch_capture::afpacket::RingStats,
}

impl ReaderStats {
    /// The counters of several readers (AF_PACKET: one per worker) as one.
    pub(crate) fn sum(readers: &[ReaderStats]) -> ReaderStats {
        let mut t = ReaderStats::new();
        for r in readers {
            t.add(r);
        }
        t
    }

    fn add(&mut self, o: &ReaderStats) {
        self.pkts += o.pkts;
        self.bytes += o.bytes;
        self.max_pkt_size = self.max_pkt_size.max(o.max_pkt_size);
        self.invalid += o.invalid;
        for (a, b) in self.layers.iter_mut().zip(&o.layers) {
            *a += b;
        }
        for (a, b) in self.events.iter_mut().zip(&o.events) {
            *a += b;
        }
        self.events_overflow += o.events_overflow;
        self.unsupported_link += o.unsupported_link;
        self.truncated_files += o.truncated_files;
        self.corrupt_records += o.corrupt_records;
        self.skipped_bytes += o.skipped_bytes;
        self.other_linktype += o.other_linktype;
        self.queue_full_waits += o.queue_full_waits;
        self.queue_drops += o.queue_drops;
        self.ticks += o.ticks;
        self.kernel.0 += o.kernel.0;
        self.kernel.1 += o.kernel.1;
        self.kernel.2 += o.kernel.2;
        self.rings.extend(o.rings.iter().cloned());
        let (d, e) = (&mut self.defrag, &o.defrag);
        d.fragments += e.fragments;
        d.reassembled += e.reassembled;
        d.timeouts += e.timeouts;
        d.memcap_drops += e.memcap_drops;
        d.tracker_evictions += e.tracker_evictions;
        d.overlaps += e.overlaps;
        d.too_large += e.too_large;
        d.ignored += e.ignored;
        d.trackers_active += e.trackers_active;
        d.mem_used += e.mem_used;
        d.mem_peak += e.mem_peak;
    }

    pub(crate) fn new() -> Self {
        ReaderStats {
            layers: vec![0; layer::NAMES.len()],
            events: vec![0; DecodeEvent::ALL.len()],
            ..Default::default()
        }
    }

    pub(crate) fn count(&mut self, d: &Decoded, wire_len: u32) {
        self.pkts += 1;
        self.bytes += wire_len as u64;
        self.max_pkt_size = self.max_pkt_size.max(wire_len as u64);
        let mut bits = d.layers;
        while bits != 0 {
            let i = bits.trailing_zeros() as usize;
            if let Some(c) = self.layers.get_mut(i) {
                *c += 1;
            }
            bits &= bits - 1;
        }
        if !d.events.is_empty() {
            for e in d.events.iter() {
                self.events[e as usize] += 1;
            }
            self.events_overflow += d.events.overflow as u64;
        }
        if d.invalid {
            self.invalid += 1;
        }
    }
}

/// Worker counters.
#[derive(Debug, Clone)]
pub struct WorkerStats {
    /// Packets processed.
    pub pkts: u64,
    /// Packets that joined a flow.
    pub flow_pkts: u64,
    /// Flow table counters.
    pub flow: FlowCounters,
    /// Batches processed.
    pub batches: u64,
    /// Latency from batch creation on the reader to processed, µs.
    pub latency_us: hdrhistogram::Histogram<u64>,
    /// TCP reassembly counters.
    pub stream: zonewatch_stream::StreamCounters,
    /// TCP sessions not started because the stream memcap was reached.
    pub ssn_memcap_drop: u64,
    /// Stream events raised, by Suricata name.
    pub stream_events: std::collections::BTreeMap<&'static str, u64>,
    /// Signature detection counters.
    pub detect: zonewatch_detect::DetectCounters,
    /// App-layer anomaly events, by name.
    pub app_events: std::collections::BTreeMap<&'static str, u64>,
    /// TCP segments with a bad checksum, not given to the stream engine.
    pub invalid_checksum: u64,
}

impl WorkerStats {
    pub(crate) fn new() -> Self {
        WorkerStats {
            pkts: 0,
            flow_pkts: 0,
            flow: FlowCounters::default(),
            batches: 0,
            latency_us: hdrhistogram::Histogram::new_with_bounds(1, 60_000_000, 3)
                .expect("valid histogram bounds"),
            stream: Default::default(),
            ssn_memcap_drop: 0,
            stream_events: Default::default(),
            detect: Default::default(),
            app_events: Default::default(),
            invalid_checksum: 0,
        }
    }
}

/// Sets `root.a.b.c = v` for the dotted name `a.b.c`.
pub(crate) fn put(root: &mut Map<String, Value>, dotted: &str, v: Value) {
    let mut parts = dotted.split('.').peekable();
    let mut cur = root;
    while let Some(p) = parts.next() {
        if parts.peek().is_none() {
            cur.insert(p.to_string(), v);
            return;
        }
        let entry = cur
            .entry(p.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        if !entry.is_object() {
            *entry = Value::Object(Map::new());
        }
        cur = entry.as_object_mut().expect("just made an object");
    }
}

/// Everything a stats event is made of.
pub(crate) struct StatsInput<'a> {
    pub uptime_s: u64,
    pub reader: &'a ReaderStats,
    /// The workers' latest counters (`None` before a worker's first).
    pub workers: &'a [Option<WorkerStats>],
    /// Events written, by type.
    pub written: &'a std::collections::BTreeMap<&'static str, u64>,
    /// Events not written because their type is off.
    pub filtered: u64,
    /// Live capture: the kernel's counters too.
    pub live: bool,
    /// Sections of the sinks, thresholds, logs and anomaly detectors.
    pub sinks: Vec<(&'static str, Value)>,
}

/// Builds the nested stats object.
pub(crate) fn build(input: StatsInput<'_>) -> Value {
    let mut m = Map::new();
    put(&mut m, "uptime", Value::from(input.uptime_s));
    reader_section(&mut m, input.reader, input.live);
    defrag_section(&mut m, &input.reader.defrag);
    let w = WorkerTotals::sum(input.workers);
    tcp_section(&mut m, &w);
    flow_section(&mut m, &w);
    pipeline_section(&mut m, input.reader, &w);
    put(&mut m, "output.events", Value::Object(Map::new()));
    for (t, c) in input.written {
        put(&mut m, &format!("output.events.{t}"), Value::from(*c));
    }
    put(&mut m, "output.filtered", Value::from(input.filtered));
    put(&mut m, "app_layer.events", Value::Object(Map::new()));
    for (k, v) in &w.app_events {
        put(
            &mut m,
            &format!("app_layer.events.{}", k.replace('.', "_")),
            Value::from(*v),
        );
    }
    let d = &w.detect;
    put(&mut m, "detect.packets", Value::from(d.packets));
    put(&mut m, "detect.candidates", Value::from(d.candidates));
    put(&mut m, "detect.matches", Value::from(d.alerts));
    put(
        &mut m,
        "detect.alert_queue_overflow",
        Value::from(d.alert_overflow),
    );
    for (section, v) in input.sinks {
        put(&mut m, section, v);
    }
    Value::Object(m)
}

/// Sets each `prefix.name` to its counter.
fn put_all(m: &mut Map<String, Value>, prefix: &str, counters: &[(&str, u64)]) {
    for (k, v) in counters {
        put(m, &format!("{prefix}.{k}"), Value::from(*v));
    }
}

/// AF_PACKET: `capture.interfaces.<if>.*` (sums over the interface's rings)
/// and `capture.rings.<if>:<n>.*` (each ring), so a drop shows which ring,
/// hence which worker, fell behind.
fn rings_section(m: &mut Map<String, Value>, rings: &[RingCounters]) {
    if rings.is_empty() {
        return;
    }
    // Built as objects, not dotted paths: interface names may hold dots (eth1.100).
    let counters = |t: [u64; 3]| {
        let mut o = Map::new();
        o.insert("kernel_packets".into(), Value::from(t[0]));
        o.insert("kernel_drops".into(), Value::from(t[1]));
        o.insert("kernel_freeze_q".into(), Value::from(t[2]));
        Value::Object(o)
    };
    let mut per_if: std::collections::BTreeMap<&str, [u64; 3]> = Default::default();
    let mut per_ring = Map::new();
    for r in rings {
        let k = &r.kernel;
        let t = per_if.entry(&r.interface).or_default();
        t[0] += k.packets;
        t[1] += k.drops;
        t[2] += k.freeze_q;
        per_ring.insert(
            format!("{}:{}", r.interface, r.ring),
            counters([k.packets, k.drops, k.freeze_q]),
        );
    }
    let per_if: Map<String, Value> = per_if
        .into_iter()
        .map(|(name, t)| (name.to_string(), counters(t)))
        .collect();
    put(m, "capture.interfaces", Value::Object(per_if));
    put(m, "capture.rings", Value::Object(per_ring));
}

/// `capture.*` (kernel, file reading) and `decoder.*`.
fn reader_section(m: &mut Map<String, Value>, reader: &ReaderStats, live: bool) {
    if live {
        put_all(
            m,
            "capture",
            &[
                ("kernel_packets", reader.kernel.0),
                ("kernel_drops", reader.kernel.1),
                ("kernel_ifdrops", reader.kernel.2),
            ],
        );
        rings_section(m, &reader.rings);
    }
    put_all(
        m,
        "decoder",
        &[
            ("pkts", reader.pkts),
            ("bytes", reader.bytes),
            ("invalid", reader.invalid),
            ("max_pkt_size", reader.max_pkt_size),
            (
                "avg_pkt_size",
                reader.bytes.checked_div(reader.pkts).unwrap_or(0),
            ),
            ("event_overflow", reader.events_overflow),
        ],
    );
    for (i, name) in layer::NAMES.iter().enumerate() {
        put(m, &format!("decoder.{name}"), Value::from(reader.layers[i]));
    }
    for (i, e) in DecodeEvent::ALL.iter().enumerate() {
        if reader.events[i] > 0 {
            // Suricata: decoder.event.ipv4.trunc_pkt
            put(
                m,
                &format!("decoder.event.{}", e.rule_name()),
                Value::from(reader.events[i]),
            );
        }
    }
    put_all(
        m,
        "capture",
        &[
            ("corrupt_records", reader.corrupt_records),
            ("skipped_bytes", reader.skipped_bytes),
            ("other_linktype_packets", reader.other_linktype),
        ],
    );
}

fn defrag_section(m: &mut Map<String, Value>, dg: &zonewatch_defrag::DefragCounters) {
    put_all(
        m,
        "defrag",
        &[
            ("fragments", dg.fragments),
            ("reassembled", dg.reassembled),
            ("timeouts", dg.timeouts),
            ("memcap_drops", dg.memcap_drops),
            ("tracker_evictions", dg.tracker_evictions),
            ("overlaps", dg.overlaps),
            ("too_large", dg.too_large),
            ("ignored", dg.ignored),
            ("trackers_active", dg.trackers_active),
            ("mem_used", dg.mem_used),
            ("mem_peak", dg.mem_peak),
        ],
    );
}

/// The workers' counters added up.
struct WorkerTotals {
    pkts: u64,
    flow_pkts: u64,
    batches: u64,
    latency_us: hdrhistogram::Histogram<u64>,
    flow: FlowCounters,
    stream: zonewatch_stream::StreamCounters,
    ssn_memcap_drop: u64,
    invalid_checksum: u64,
    stream_events: std::collections::BTreeMap<&'static str, u64>,
    detect: zonewatch_detect::DetectCounters,
    app_events: std::collections::BTreeMap<&'static str, u64>,
}

impl WorkerTotals {
    fn sum(workers: &[Option<WorkerStats>]) -> Self {
        let mut t = WorkerTotals {
            pkts: 0,
            flow_pkts: 0,
            batches: 0,
            latency_us: hdrhistogram::Histogram::new_with_bounds(1, 60_000_000, 3)
                .expect("valid histogram bounds"),
            flow: FlowCounters::default(),
            stream: Default::default(),
            ssn_memcap_drop: 0,
            invalid_checksum: 0,
            stream_events: Default::default(),
            detect: Default::default(),
            app_events: Default::default(),
        };
        for w in workers.iter().flatten() {
            t.pkts += w.pkts;
            t.flow_pkts += w.flow_pkts;
            t.batches += w.batches;
            let _ = t.latency_us.add(&w.latency_us);
            t.flow.add(&w.flow);
            t.stream.add(&w.stream);
            t.ssn_memcap_drop += w.ssn_memcap_drop;
            t.invalid_checksum += w.invalid_checksum;
            for (k, v) in &w.stream_events {
                *t.stream_events.entry(k).or_default() += v;
            }
            t.detect.packets += w.detect.packets;
            t.detect.candidates += w.detect.candidates;
            t.detect.alerts += w.detect.alerts;
            t.detect.alert_overflow += w.detect.alert_overflow;
            for (k, v) in &w.app_events {
                *t.app_events.entry(k).or_default() += v;
            }
        }
        t
    }
}

/// `tcp.*` (Suricata's names where the meaning is the same) and
/// `stream.events.*`.
fn tcp_section(m: &mut Map<String, Value>, w: &WorkerTotals) {
    let st = &w.stream;
    put_all(
        m,
        "tcp",
        &[
            ("sessions", st.sessions),
            ("segments", st.segments),
            ("not_tracked", st.not_tracked),
            ("rejected", st.rejected),
            ("rst_with_data", st.rst_with_data),
            ("reassembly_gap", st.gaps),
            ("reassembly_gap_bytes", st.gap_bytes),
            ("reassembly_memcap_gaps", st.memcap_gaps),
            ("reassembly_segment_limit_gaps", st.segment_limit_gaps),
            ("overlap", st.overlaps),
            ("overlap_diff_data", st.overlaps_different),
            ("retransmissions", st.retransmissions),
            ("depth_reached", st.depth_reached),
            ("midstream_pickups", st.midstream_pickups),
            ("midstream_ignored", st.midstream_ignored),
            ("reassembly_memuse", st.mem_used),
            ("reassembly_memuse_peak", st.mem_peak),
            ("reassembled_bytes", st.bytes_delivered),
            ("ssn_memcap_drop", w.ssn_memcap_drop),
            ("invalid_checksum", w.invalid_checksum),
        ],
    );
    put(m, "stream.events", Value::Object(Map::new()));
    for (k, v) in &w.stream_events {
        // stream.reassembly_seq_gap -> stream.events.reassembly_seq_gap
        put(
            m,
            &format!("stream.events.{}", k.trim_start_matches("stream.")),
            Value::from(*v),
        );
    }
}

fn flow_section(m: &mut Map<String, Value>, w: &WorkerTotals) {
    let f = &w.flow;
    put_all(
        m,
        "flow",
        &[
            ("total", f.total),
            ("tcp", f.tcp),
            ("udp", f.udp),
            ("icmpv4", f.icmpv4),
            ("icmpv6", f.icmpv6),
            ("other", f.other),
            ("active", f.active),
            ("active_max", f.active_max),
            ("emerg_mode_entered", f.emerg_mode_entered),
            ("tcp_reuse", f.tcp_reuse),
            ("end.timeout", f.end_timeout),
            ("end.forced", f.end_forced),
            ("end.shutdown", f.end_shutdown),
            ("pkts", w.flow_pkts),
        ],
    );
}

fn pipeline_section(m: &mut Map<String, Value>, reader: &ReaderStats, w: &WorkerTotals) {
    let lat = &w.latency_us;
    put_all(
        m,
        "pipeline",
        &[
            ("unsupported_link_files", reader.unsupported_link),
            ("pkts_processed", w.pkts),
            ("batches", w.batches),
            ("queue_full_waits", reader.queue_full_waits),
            ("queue_drops", reader.queue_drops),
            ("clock_ticks", reader.ticks),
            ("truncated_files", reader.truncated_files),
            ("latency_us.p50", lat.value_at_quantile(0.5)),
            ("latency_us.p99", lat.value_at_quantile(0.99)),
            ("latency_us.max", lat.max()),
        ],
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotted_names_nest() {
        let mut m = Map::new();
        put(&mut m, "decoder.pkts", 3.into());
        put(&mut m, "decoder.event.ipv4.trunc_pkt", 1.into());
        let v = Value::Object(m);
        assert_eq!(v["decoder"]["pkts"], 3);
        assert_eq!(v["decoder"]["event"]["ipv4"]["trunc_pkt"], 1);
    }
}
