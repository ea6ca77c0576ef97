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
    /// libpcap: packets received / dropped by kernel / dropped by interface.
    pub kernel: (u64, u64, u64),
    /// Defragmentation counters.
    pub defrag: zonewatch_defrag::DefragCounters,
}

impl ReaderStats {
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

/// Builds the nested stats object.
pub(crate) fn build(
    uptime_s: u64,
    reader: &ReaderStats,
    workers: &[Option<WorkerStats>],
    written: &std::collections::BTreeMap<&'static str, u64>,
    filtered: u64,
    live: bool,
    sinks: Vec<(&'static str, Value)>,
) -> Value {
    let mut m = Map::new();
    let n = |v: u64| Value::from(v);
    put(&mut m, "uptime", n(uptime_s));
    if live {
        put(&mut m, "capture.kernel_packets", n(reader.kernel.0));
        put(&mut m, "capture.kernel_drops", n(reader.kernel.1));
        put(&mut m, "capture.kernel_ifdrops", n(reader.kernel.2));
    }
    put(&mut m, "decoder.pkts", n(reader.pkts));
    put(&mut m, "decoder.bytes", n(reader.bytes));
    put(&mut m, "decoder.invalid", n(reader.invalid));
    put(&mut m, "decoder.max_pkt_size", n(reader.max_pkt_size));
    put(
        &mut m,
        "decoder.avg_pkt_size",
        n(reader.bytes.checked_div(reader.pkts).unwrap_or(0)),
    );
    for (i, name) in layer::NAMES.iter().enumerate() {
        put(&mut m, &format!("decoder.{name}"), n(reader.layers[i]));
    }
    put(
        &mut m,
        "pipeline.unsupported_link_files",
        n(reader.unsupported_link),
    );
    for (i, e) in DecodeEvent::ALL.iter().enumerate() {
        if reader.events[i] > 0 {
            // Suricata: decoder.event.ipv4.trunc_pkt
            put(
                &mut m,
                &format!("decoder.event.{}", e.rule_name()),
                n(reader.events[i]),
            );
        }
    }
    put(&mut m, "decoder.event_overflow", n(reader.events_overflow));
    let dg = &reader.defrag;
    for (k, v) in [
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
    ] {
        put(&mut m, &format!("defrag.{k}"), n(v));
    }
    let mut f = FlowCounters::default();
    let mut pkts = 0;
    let mut flow_pkts = 0;
    let mut batches = 0;
    let mut lat = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)
        .expect("valid histogram bounds");
    for w in workers.iter().flatten() {
        f.add(&w.flow);
        pkts += w.pkts;
        flow_pkts += w.flow_pkts;
        batches += w.batches;
        let _ = lat.add(&w.latency_us);
    }
    let mut st = zonewatch_stream::StreamCounters::default();
    let mut ssn_drop = 0;
    let mut sev: std::collections::BTreeMap<&str, u64> = Default::default();
    for w in workers.iter().flatten() {
        st.add(&w.stream);
        ssn_drop += w.ssn_memcap_drop;
        for (k, v) in &w.stream_events {
            *sev.entry(k).or_default() += v;
        }
    }
    // Suricata's names (tcp.*) where the meaning is the same.
    for (k, v) in [
        ("tcp.sessions", st.sessions),
        ("tcp.segments", st.segments),
        ("tcp.not_tracked", st.not_tracked),
        ("tcp.rejected", st.rejected),
        ("tcp.rst_with_data", st.rst_with_data),
        ("tcp.reassembly_gap", st.gaps),
        ("tcp.reassembly_gap_bytes", st.gap_bytes),
        ("tcp.reassembly_memcap_gaps", st.memcap_gaps),
        ("tcp.reassembly_segment_limit_gaps", st.segment_limit_gaps),
        ("tcp.overlap", st.overlaps),
        ("tcp.overlap_diff_data", st.overlaps_different),
        ("tcp.retransmissions", st.retransmissions),
        ("tcp.depth_reached", st.depth_reached),
        ("tcp.midstream_pickups", st.midstream_pickups),
        ("tcp.midstream_ignored", st.midstream_ignored),
        ("tcp.reassembly_memuse", st.mem_used),
        ("tcp.reassembly_memuse_peak", st.mem_peak),
        ("tcp.reassembled_bytes", st.bytes_delivered),
        ("tcp.ssn_memcap_drop", ssn_drop),
        (
            "tcp.invalid_checksum",
            workers.iter().flatten().map(|w| w.invalid_checksum).sum(),
        ),
    ] {
        put(&mut m, k, n(v));
    }
    put(&mut m, "stream.events", Value::Object(Map::new()));
    for (k, v) in sev {
        // stream.reassembly_seq_gap -> stream.events.reassembly_seq_gap
        put(
            &mut m,
            &format!("stream.events.{}", k.trim_start_matches("stream.")),
            n(v),
        );
    }
    put(&mut m, "flow.total", n(f.total));
    put(&mut m, "flow.tcp", n(f.tcp));
    put(&mut m, "flow.udp", n(f.udp));
    put(&mut m, "flow.icmpv4", n(f.icmpv4));
    put(&mut m, "flow.icmpv6", n(f.icmpv6));
    put(&mut m, "flow.other", n(f.other));
    put(&mut m, "flow.active", n(f.active));
    put(&mut m, "flow.active_max", n(f.active_max));
    put(&mut m, "flow.emerg_mode_entered", n(f.emerg_mode_entered));
    put(&mut m, "flow.end.timeout", n(f.end_timeout));
    put(&mut m, "flow.end.forced", n(f.end_forced));
    put(&mut m, "flow.end.shutdown", n(f.end_shutdown));
    put(&mut m, "flow.pkts", n(flow_pkts));
    put(&mut m, "pipeline.pkts_processed", n(pkts));
    put(&mut m, "pipeline.batches", n(batches));
    put(
        &mut m,
        "pipeline.queue_full_waits",
        n(reader.queue_full_waits),
    );
    put(&mut m, "pipeline.queue_drops", n(reader.queue_drops));
    put(&mut m, "pipeline.clock_ticks", n(reader.ticks));
    put(
        &mut m,
        "pipeline.truncated_files",
        n(reader.truncated_files),
    );
    put(&mut m, "capture.corrupt_records", n(reader.corrupt_records));
    put(&mut m, "capture.skipped_bytes", n(reader.skipped_bytes));
    put(
        &mut m,
        "capture.other_linktype_packets",
        n(reader.other_linktype),
    );
    put(
        &mut m,
        "pipeline.latency_us.p50",
        n(lat.value_at_quantile(0.5)),
    );
    put(
        &mut m,
        "pipeline.latency_us.p99",
        n(lat.value_at_quantile(0.99)),
    );
    put(&mut m, "pipeline.latency_us.max", n(lat.max()));
    put(&mut m, "output.events", Value::Object(Map::new()));
    for (t, c) in written {
        put(&mut m, &format!("output.events.{t}"), n(*c));
    }
    put(&mut m, "output.filtered", n(filtered));
    let mut d = zonewatch_detect::DetectCounters::default();
    for w in workers.iter().flatten() {
        d.packets += w.detect.packets;
        d.candidates += w.detect.candidates;
        d.alerts += w.detect.alerts;
        d.alert_overflow += w.detect.alert_overflow;
    }
    let mut aev: std::collections::BTreeMap<&str, u64> = Default::default();
    for w in workers.iter().flatten() {
        for (k, v) in &w.app_events {
            *aev.entry(k).or_default() += v;
        }
    }
    put(&mut m, "app_layer.events", Value::Object(Map::new()));
    for (k, v) in aev {
        put(
            &mut m,
            &format!("app_layer.events.{}", k.replace('.', "_")),
            n(v),
        );
    }
    put(&mut m, "detect.packets", n(d.packets));
    put(&mut m, "detect.candidates", n(d.candidates));
    put(&mut m, "detect.matches", n(d.alerts));
    put(&mut m, "detect.alert_queue_overflow", n(d.alert_overflow));
    for (section, v) in sinks {
        put(&mut m, section, v);
    }
    Value::Object(m)
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
