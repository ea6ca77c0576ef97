//! How the counters of a `stats` event become Prometheus metrics.
//!
//! The rules (also in `docs/metrics.md`):
//!
//! - a counter `a.b.c` is `zonewatch_a_b_c_total` (a counter);
//! - values that go down (flows active now, memory held, queue depth) are
//!   gauges named without `_total`, with their unit (`_bytes`, `_seconds`);
//! - maps whose keys are data (syslog inputs, capture interfaces, event
//!   names, detectors) become labels of one metric, not metric names;
//! - latencies are in seconds: summaries (`quantile` labels) from the
//!   percentiles of the stats event, or a histogram where the output thread
//!   has the histogram itself (`pipeline.latency_us`, see the crate docs).
//!
//! A counter that is not in [`KNOWN`] still becomes a metric by the first
//! rule, with a help text naming its stats path.

use crate::text::{sanitize, Families, Kind, Num};
use serde_json::{Map, Value};

/// A known stats value: its path (`*` stands for one key), its type, its
/// metric name (empty: `zonewatch_` + the path without its labelled keys
/// joined by `_`, plus `_total` for counters) and its help text (`{}`: the
/// key `*` matched, for paths whose `*` is not a label).
struct Known(&'static str, Kind, &'static str, &'static str);

use Kind::{Counter as C, Gauge as G};

#[rustfmt::skip]
const KNOWN: &[Known] = &[
    Known("capture.kernel_packets", C, "", "Live capture: packets libpcap received."),
    Known("capture.kernel_drops", C, "", "Live capture: packets dropped by the kernel (buffer full)."),
    Known("capture.kernel_ifdrops", C, "", "Live capture: packets dropped by the interface."),
    Known("capture.corrupt_records", C, "", "Capture files: corrupt records or blocks skipped (resynchronised)."),
    Known("capture.skipped_bytes", C, "", "Capture files: bytes skipped to get past corrupt records."),
    Known("capture.other_linktype_packets", C, "", "pcapng packets skipped: their interface has another link type."),
    Known("decoder.pkts", C, "", "Packets read."),
    Known("decoder.bytes", C, "", "Wire bytes of the packets read."),
    Known("decoder.invalid", C, "", "Packets a decoder event made unusable (they joined no flow)."),
    Known("decoder.max_pkt_size", G, "zonewatch_decoder_max_pkt_size_bytes", "Largest wire length seen."),
    Known("decoder.avg_pkt_size", G, "zonewatch_decoder_avg_pkt_size_bytes", "Mean wire length."),
    Known("decoder.event_overflow", C, "", "Decoder events beyond four on one packet (counted, no anomaly event)."),
    Known("flow.total", C, "zonewatch_flows_total", "Flows created (all protocols)."),
    Known("flow.tcp", C, "", "TCP flows created."),
    Known("flow.udp", C, "", "UDP flows created."),
    Known("flow.icmpv4", C, "", "ICMPv4 flows created."),
    Known("flow.icmpv6", C, "", "ICMPv6 flows created."),
    Known("flow.other", C, "", "Flows of other IP protocols created."),
    Known("flow.active", G, "zonewatch_flow_active", "Flows open now (all workers)."),
    Known("flow.active_max", G, "zonewatch_flow_active_max", "Most flows open at once (summed over the workers' tables)."),
    Known("flow.emerg_mode_entered", C, "", "Times a flow table reached its memory cap."),
    Known("flow.tcp_reuse", C, "", "TCP flows ended because a new connection reused their tuple (a SYN on a finished session)."),
    Known("flow.pkts", C, "", "Packets that joined a flow."),
    Known("defrag.fragments", C, "", "IP fragments offered to defragmentation."),
    Known("defrag.reassembled", C, "", "IP datagrams reassembled."),
    Known("defrag.timeouts", C, "", "Fragment trackers timed out."),
    Known("defrag.memcap_drops", C, "", "Fragments dropped at the defrag memcap or per-tracker limit."),
    Known("defrag.tracker_evictions", C, "", "Fragment trackers evicted to make room."),
    Known("defrag.overlaps", C, "", "Overlapping fragments."),
    Known("defrag.too_large", C, "", "Reassembled datagrams over 65535 bytes."),
    Known("defrag.ignored", C, "", "Unusable fragments."),
    Known("defrag.trackers_active", G, "zonewatch_defrag_trackers_active", "Datagrams waiting for fragments now."),
    Known("defrag.mem_used", G, "zonewatch_defrag_mem_used_bytes", "Bytes held by defragmentation now."),
    Known("defrag.mem_peak", G, "zonewatch_defrag_mem_peak_bytes", "Most bytes held by defragmentation at once."),
    Known("tcp.sessions", C, "", "TCP sessions started by reassembly."),
    Known("tcp.segments", C, "", "TCP segments fed to reassembly."),
    Known("tcp.not_tracked", C, "", "Segments of untracked sessions (no handshake, midstream off)."),
    Known("tcp.rejected", C, "", "Segments rejected by a check (each raised a stream event)."),
    Known("tcp.rst_with_data", C, "", "RST segments with data (not reassembled)."),
    Known("tcp.reassembly_gap", C, "", "Holes skipped in reassembled streams (any cause)."),
    Known("tcp.reassembly_gap_bytes", C, "", "Bytes of the holes skipped."),
    Known("tcp.reassembly_memcap_gaps", C, "", "Holes forced by the reassembly memcap."),
    Known("tcp.reassembly_segment_limit_gaps", C, "", "Holes forced by the per-direction segment limit."),
    Known("tcp.overlap", C, "", "Overlapping TCP segments."),
    Known("tcp.overlap_diff_data", C, "", "Overlapping TCP segments with different data."),
    Known("tcp.retransmissions", C, "", "TCP segments that added nothing new."),
    Known("tcp.depth_reached", C, "", "Stream directions that reached stream.reassembly.depth."),
    Known("tcp.midstream_pickups", C, "", "TCP sessions picked up without a handshake."),
    Known("tcp.midstream_ignored", C, "", "TCP sessions not picked up because stream.midstream is off."),
    Known("tcp.reassembly_memuse", G, "zonewatch_tcp_reassembly_memuse_bytes", "Bytes buffered by TCP reassembly now."),
    Known("tcp.reassembly_memuse_peak", G, "zonewatch_tcp_reassembly_memuse_peak_bytes", "Most bytes buffered by TCP reassembly at once."),
    Known("tcp.reassembled_bytes", C, "", "Bytes delivered in order after reassembly."),
    Known("tcp.ssn_memcap_drop", C, "", "TCP sessions not started because stream.memcap was reached."),
    Known("tcp.invalid_checksum", C, "", "TCP segments with a bad checksum, kept from reassembly."),
    Known("pipeline.pkts_processed", C, "", "Packets the workers handled."),
    Known("pipeline.batches", C, "", "Batches the workers handled."),
    Known("pipeline.queue_full_waits", C, "", "Files: times the reader waited for a full worker queue."),
    Known("pipeline.queue_drops", C, "", "Live capture: packets dropped because a worker queue was full."),
    Known("pipeline.clock_ticks", C, "", "Clock ticks sent to the workers."),
    Known("pipeline.truncated_files", C, "", "Capture files that ended in the middle of a record."),
    Known("pipeline.unsupported_link_files", C, "", "Capture files skipped because their link type is not decoded."),
    Known("output.filtered", C, "", "Events not written because their type is off (output.types)."),
    Known("detect.packets", C, "", "Packets inspected by signatures."),
    Known("detect.candidates", C, "", "Signatures fully verified (prefilter candidates)."),
    Known("detect.matches", C, "", "Signature matches."),
    Known("detect.alert_queue_overflow", C, "", "Alerts beyond the per-packet alert queue."),
    Known("detect.thresholded", C, "", "Alerts held back by thresholds or suppressions."),
    Known("reload.ok", C, "zonewatch_reloads_total", "Rule reloads (SIGHUP) that took effect."),
    Known("reload.failed", C, "zonewatch_reload_failures_total", "Rule reloads that failed; the running rules stayed (each problem logged with file:line)."),
    Known("reload.last.success", G, "zonewatch_reload_last_success", "1 if the last rule reload took effect, 0 if it failed."),
    Known("reload.last.unix_time_s", G, "zonewatch_reload_last_timestamp_seconds", "When the last rule reload ended, in seconds since the Unix epoch."),
    Known("reload.last.duration_s", G, "zonewatch_reload_last_duration_seconds", "How long the last rule reload took to load the rules."),
    Known("reload.last.signatures", G, "zonewatch_reload_last_signatures", "Signatures the last rule reload loaded (0 when it failed; rules in use: zonewatch_rules_loaded)."),
    Known("reload.last.sigma", G, "zonewatch_reload_last_sigma_rules", "Sigma rules the last rule reload loaded (0 when it failed)."),
    Known("reload.last.detectors", G, "zonewatch_reload_last_detectors", "Anomaly detectors the last rule reload loaded (0 when it failed)."),
    Known("detect.threshold.tracked", G, "zonewatch_detect_threshold_tracked", "Threshold trackers held now."),
    Known("detect.threshold.evicted", C, "", "Threshold trackers evicted at the table's bound."),
    Known("detect.threshold.expired", C, "", "Threshold trackers removed when their window ended."),
    Known("detect.threshold.suppressed", C, "", "Alerts suppressed."),
    Known("detect.threshold.thresholded", C, "", "Alerts held back by thresholds."),
    Known("detect.threshold.rate_filtered", C, "", "Alerts whose action a rate_filter changed."),
    Known("syslog.received", C, "", "Syslog frames received (all inputs)."),
    Known("syslog.parsed", C, "", "Syslog records handed to the Sigma thread (all inputs)."),
    Known("syslog.truncated", C, "", "Syslog frames cut at syslog.max-frame-size (all inputs)."),
    Known("syslog.dropped", C, "", "Syslog records dropped because the channel was full (all inputs)."),
    Known("syslog.bytes", C, "", "Syslog bytes read (all inputs)."),
    Known("syslog.refused", C, "", "Syslog connections refused, any reason (all listeners)."),
    Known("syslog.refused_per_source", C, "", "Syslog connections refused over max-connections-per-source."),
    Known("syslog.fd_exhausted", C, "", "Syslog connections refused for want of file descriptors."),
    Known("syslog.frame_timeouts", C, "", "Syslog connections cut at frame-timeout."),
    Known("syslog.memcap_closed", C, "", "Syslog connections closed over buffer-memcap."),
    Known("syslog.oversize_counts", C, "", "Octet counts over max-frame-size read as plain lines."),
    Known("syslog.discarded_bytes", C, "", "Syslog bytes discarded (cut frames, dropped unfinished frames)."),
    Known("syslog.inputs.*.received", C, "", "Syslog frames received by this input."),
    Known("syslog.inputs.*.parsed", C, "", "Syslog records of this input handed to the Sigma thread."),
    Known("syslog.inputs.*.truncated", C, "", "Syslog frames of this input cut at syslog.max-frame-size."),
    Known("syslog.inputs.*.dropped", C, "", "Syslog records of this input dropped (channel full)."),
    Known("syslog.inputs.*.bytes", C, "", "Bytes read by this input."),
    Known("syslog.inputs.*.no_timestamp", C, "", "Records of this input without a timestamp."),
    Known("syslog.inputs.*.connections", C, "", "Connections accepted by this listener."),
    Known("syslog.inputs.*.connections_refused", C, "", "Connections refused by this listener."),
    Known("syslog.inputs.*.connections_open", G, "zonewatch_syslog_input_connections_open", "Connections open now on this listener."),
    Known("syslog.inputs.*.idle_closed", C, "", "Connections of this listener closed at idle-timeout."),
    Known("syslog.inputs.*.tls_errors", C, "", "TLS errors on this listener."),
    Known("syslog.inputs.*.read_errors", C, "", "Read errors on this input."),
    Known("syslog.inputs.*.buffered_bytes", G, "zonewatch_syslog_input_buffered_bytes", "Bytes of unfinished frames this listener holds now."),
    Known("syslog.inputs.*.refused_per_source", C, "", "Connections refused over max-connections-per-source."),
    Known("syslog.inputs.*.fd_exhausted", C, "", "Connections refused for want of file descriptors."),
    Known("syslog.inputs.*.frame_timeouts", C, "", "Connections cut at frame-timeout."),
    Known("syslog.inputs.*.memcap_closed", C, "", "Connections closed over buffer-memcap."),
    Known("syslog.inputs.*.oversize_counts", C, "", "Octet counts over max-frame-size read as plain lines."),
    Known("syslog.inputs.*.discarded_bytes", C, "", "Bytes discarded by this input."),
    Known("sigma.rules_loaded", G, "zonewatch_sigma_rules_loaded", "Sigma rules compiled (detections and correlations)."),
    Known("sigma.rules_inactive", G, "zonewatch_sigma_rules_inactive", "Sigma rules never evaluated (log source cannot occur in syslog)."),
    Known("sigma.rules_skipped", G, "zonewatch_sigma_rules_skipped", "Sigma rules skipped with an error."),
    Known("sigma.records", C, "", "Log records evaluated by the Sigma rules."),
    Known("sigma.matches", C, "", "Sigma detection-rule matches."),
    Known("sigma.correlation_alerts", C, "", "Sigma correlation alerts."),
    Known("sigma.correlation_evictions", C, "", "Sigma correlation groups evicted at the group cap."),
    Known("sigma.correlation_missing_group_field", C, "", "Records a correlation skipped for lack of a group-by field."),
    Known("sigma.correlation_groups_open", G, "zonewatch_sigma_correlation_groups_open", "Sigma correlation groups open now."),
    Known("kafka.accepted", C, "", "Kafka sink: events accepted."),
    Known("kafka.delivered", C, "", "Kafka sink: messages acknowledged by the broker."),
    Known("kafka.retried", C, "", "Kafka sink: deliveries that failed and were spooled for another attempt."),
    Known("kafka.spooled", C, "", "Kafka sink: records written to the spool."),
    Known("kafka.replayed", C, "", "Kafka sink: spool records produced again and acknowledged."),
    Known("kafka.dropped_spool_full", C, "", "Kafka sink: events lost because the spool was full."),
    Known("kafka.dropped_io_error", C, "", "Kafka sink: events lost because the spool could not be written."),
    Known("kafka.corrupt_spool_records", C, "", "Kafka sink: spool records skipped as corrupt."),
    Known("kafka.rejected", C, "", "Kafka sink: events refused for good (written to the dead-letter file)."),
    Known("kafka.dead_letter_failed", C, "", "Kafka sink: rejected events the dead-letter file could not take (lost)."),
    Known("kafka.lost_at_shutdown", C, "", "Kafka sink: messages never reported by librdkafka at shutdown (lost)."),
    Known("kafka.in_flight", G, "zonewatch_kafka_in_flight", "Kafka sink: messages produced and not yet acknowledged or failed."),
    Known("kafka.spool_bytes", G, "zonewatch_kafka_spool_bytes", "Kafka sink: size of the spool's segment files."),
    Known("kafka.spool_backlog_bytes", G, "zonewatch_kafka_spool_backlog_bytes", "Kafka sink: spooled bytes not yet acknowledged."),
    Known("kafka.spooling", G, "zonewatch_kafka_spooling", "Kafka sink: 1 while new events go to the spool instead of the broker."),
    Known("anomaly.*.entries", G, "zonewatch_anomaly_table_entries", "Entries in this detector's table now."),
    Known("anomaly.*.cap", G, "zonewatch_anomaly_table_capacity", "Capacity of this detector's table."),
    Known("anomaly.*.peak", G, "zonewatch_anomaly_table_peak", "Most entries this detector's table held at once."),
    Known("anomaly.*.bytes", G, "zonewatch_anomaly_table_bytes", "Bytes held by this detector's table."),
    Known("anomaly.*.inserts", C, "zonewatch_anomaly_table_inserts_total", "Entries inserted into this detector's table."),
    Known("anomaly.*.evictions", C, "zonewatch_anomaly_table_evictions_total", "Entries evicted from this detector's table at its bound."),
    Known("anomaly.*.expired", C, "zonewatch_anomaly_table_expired_total", "Entries expired from this detector's table."),
    Known("anomaly.*.alerts", C, "zonewatch_anomaly_alerts_total", "Alerts raised by this detector."),
    Known("anomaly.*.suppressed", C, "zonewatch_anomaly_suppressed_total", "Zone-policy violations suppressed."),
    // Last: the layer counters (decoder.ipv4, ...), after decoder's own.
    Known("decoder.*", C, "", "Packets in which the {} layer was seen."),
];

/// How a map whose keys are data becomes labels.
#[derive(Clone, Copy)]
enum Shape {
    /// `path.<key>` = counter: one metric, label = key.
    Leaf,
    /// `path.<a>.<b>` = counter: one metric, label = the keys below `path`
    /// joined by dots (`a.b`).
    Rest,
    /// `path.<key>.<name>` = value: one metric per `name`, label = key.
    Object,
}

struct Labelled {
    path: &'static str,
    label: &'static str,
    /// The metric (`Leaf`, `Rest`) or the prefix of the metrics (`Object`).
    metric: &'static str,
    shape: Shape,
    help: &'static str,
}

#[rustfmt::skip]
const LABELLED: &[Labelled] = &[
    Labelled { path: "decoder.event", label: "event", metric: "zonewatch_decoder_events_total", shape: Shape::Rest,
        help: "Decoder events by Suricata name (decoder-events.rules without the decoder. prefix)." },
    Labelled { path: "stream.events", label: "event", metric: "zonewatch_stream_events_total", shape: Shape::Leaf,
        help: "Stream events by Suricata name (without the stream. prefix), alerting or not." },
    Labelled { path: "app_layer.events", label: "event", metric: "zonewatch_app_layer_events_total", shape: Shape::Leaf,
        help: "App-layer anomaly events by name." },
    Labelled { path: "output.events", label: "event_type", metric: "zonewatch_output_events_total", shape: Shape::Leaf,
        help: "Events written, by event_type (a stats event is counted once written)." },
    Labelled { path: "flow.end", label: "reason", metric: "zonewatch_flow_end_total", shape: Shape::Leaf,
        help: "Flows ended, by reason (timeout, forced, shutdown)." },
    Labelled { path: "syslog.inputs", label: "input", metric: "zonewatch_syslog_input", shape: Shape::Object, help: "" },
    Labelled { path: "capture.interfaces", label: "interface", metric: "zonewatch_capture_interface", shape: Shape::Object, help: "" },
    Labelled { path: "anomaly", label: "detector", metric: "zonewatch_anomaly", shape: Shape::Object, help: "" },
];

/// A latency section with percentiles in microseconds.
struct Latency {
    path: &'static str,
    /// Summary made of the percentiles; none when a histogram of the same
    /// values is published instead.
    summary: Option<&'static str>,
    help: &'static str,
    /// (stats key, quantile label)
    quantiles: &'static [(&'static str, &'static str)],
    count: Option<&'static str>,
    /// (stats key, gauge name, help)
    max: (&'static str, &'static str, &'static str),
}

#[rustfmt::skip]
const LATENCY: &[Latency] = &[
    Latency {
        path: "pipeline.latency_us",
        summary: None,
        help: "Seconds from a packet's batch leaving the reader to the batch processed by its worker.",
        quantiles: &[("p50", ""), ("p99", "")],
        count: None,
        max: ("max", "zonewatch_pipeline_latency_max_seconds", "Longest time from a batch leaving the reader to its processing by a worker, in seconds."),
    },
    Latency {
        path: "sigma.latency_us",
        summary: Some("zonewatch_sigma_alert_latency_seconds"),
        help: "Seconds from a network listener parsing a syslog frame to the alert leaving the Sigma engine (cumulative over the run).",
        quantiles: &[("p50", "0.5"), ("p99", "0.99")],
        count: Some("count"),
        max: ("max", "zonewatch_sigma_alert_latency_max_seconds", "Longest receive-to-alert time of a syslog record, in seconds."),
    },
    Latency {
        path: "kafka.latency",
        summary: Some("zonewatch_kafka_ack_latency_seconds"),
        help: "Kafka sink: seconds from an event to the broker's acknowledgement (cumulative over the run).",
        quantiles: &[("p50_us", "0.5"), ("p99_us", "0.99"), ("p999_us", "0.999")],
        count: Some("count"),
        max: ("max_us", "zonewatch_kafka_ack_latency_max_seconds", "Kafka sink: longest event-to-acknowledgement time, in seconds."),
    },
];

/// Stats values that are not rendered from the stats object (`uptime`: the
/// endpoint computes `zonewatch_uptime_seconds` at each scrape).
const SKIPPED: &[&str] = &["uptime"];

/// Whether `pattern` (`*` = one key) matches `path`; the key `*` matched.
fn matches<'p>(pattern: &str, path: &'p str) -> Option<Option<&'p str>> {
    let mut pp = pattern.split('.');
    let mut xs = path.split('.');
    let mut star = None;
    loop {
        match (pp.next(), xs.next()) {
            (None, None) => return Some(star),
            (Some("*"), Some(x)) => star = Some(x),
            (Some(p), Some(x)) if p == x => {}
            _ => return None,
        }
    }
}

fn num(v: &Value) -> Option<Num> {
    match v {
        Value::Number(n) => n.as_u64().map(Num::U).or_else(|| n.as_f64().map(Num::F)),
        Value::Bool(b) => Some(Num::U(u64::from(*b))),
        _ => None,
    }
}

fn micros_to_seconds(v: &Value) -> Option<Num> {
    v.as_f64().map(|us| Num::F(us / 1e6))
}

/// Adds the metrics of a stats object (the `stats` member of a stats event).
pub fn add_stats(stats: &Value, f: &mut Families) {
    if let Some(root) = stats.as_object() {
        walk(root, &mut Vec::new(), f);
    }
}

fn walk(obj: &Map<String, Value>, path: &mut Vec<String>, f: &mut Families) {
    for (k, v) in obj {
        path.push(k.clone());
        let p = path.join(".");
        if SKIPPED.contains(&p.as_str()) {
        } else if let Some(l) = LABELLED.iter().find(|l| l.path == p) {
            labelled(l, v, f);
        } else if let (Some(lat), Some(o)) = (LATENCY.iter().find(|l| l.path == p), v.as_object()) {
            latency(lat, o, f);
        } else if let Value::Object(o) = v {
            walk(o, path, f);
        } else {
            leaf(&p, &p, None, v, f);
        }
        path.pop();
    }
}

/// A single value at `path`; `pattern_path` is `path` with a labelled key
/// replaced by `*`, `label` that key's label.
fn leaf(
    path: &str,
    pattern_path: &str,
    label: Option<(&Labelled, &str)>,
    v: &Value,
    f: &mut Families,
) {
    let Some(value) = num(v) else {
        return;
    };
    let labels = label
        .map(|(l, key)| vec![(l.label.to_string(), key.to_string())])
        .unwrap_or_default();
    let stats_path = match label {
        Some((l, _)) => pattern_path.replacen('*', &format!("<{}>", l.label), 1),
        None => path.to_string(),
    };
    let known = KNOWN
        .iter()
        .find_map(|k| matches(k.0, pattern_path).map(|star| (k, star)));
    // The name without labelled keys: zonewatch_syslog_input_received.
    let derived = || match label {
        Some((l, _)) => {
            let rest = pattern_path
                .strip_prefix(l.path)
                .and_then(|r| r.strip_prefix(".*."))
                .unwrap_or(pattern_path);
            format!("{}_{}", l.metric, sanitize(rest))
        }
        None => format!("zonewatch_{}", sanitize(path)),
    };
    let (name, kind, help) = match known {
        Some((k, star)) => {
            let name = match (k.2, k.1) {
                ("", C) => format!("{}_total", derived()),
                ("", _) => derived(),
                (n, _) => n.to_string(),
            };
            let help = match star {
                Some(s) if label.is_none() => k.3.replace("{}", s),
                _ => k.3.to_string(),
            };
            (name, k.1, help)
        }
        None => (
            format!("{}_total", derived()),
            C,
            "A zonewatch counter (docs/events.md).".to_string(),
        ),
    };
    let help = format!("{help} Stats: {stats_path}.");
    f.add(&name, kind, &help, "", labels, value);
}

fn labelled(l: &Labelled, v: &Value, f: &mut Families) {
    let Some(o) = v.as_object() else {
        return;
    };
    let help = format!("{} Stats: {}.<{}>.", l.help, l.path, l.label);
    match l.shape {
        Shape::Leaf | Shape::Rest => {
            let mut leaves = Vec::new();
            flatten(o, "", &mut leaves);
            for (key, x) in leaves {
                if let Some(value) = num(x) {
                    f.add(
                        l.metric,
                        C,
                        &help,
                        "",
                        vec![(l.label.to_string(), key)],
                        value,
                    );
                }
            }
        }
        Shape::Object => {
            for (key, child) in o {
                let mut leaves = Vec::new();
                match child.as_object() {
                    Some(c) => flatten(c, "", &mut leaves),
                    None => leaves.push((String::new(), child)),
                }
                for (rest, x) in leaves {
                    let (path, pattern) = if rest.is_empty() {
                        (format!("{}.{key}", l.path), format!("{}.*", l.path))
                    } else {
                        (
                            format!("{}.{key}.{rest}", l.path),
                            format!("{}.*.{rest}", l.path),
                        )
                    };
                    leaf(&path, &pattern, Some((l, key)), x, f);
                }
            }
        }
    }
}

/// The leaves below `o` with their dotted names.
fn flatten<'v>(o: &'v Map<String, Value>, prefix: &str, out: &mut Vec<(String, &'v Value)>) {
    for (k, v) in o {
        let name = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            Value::Object(c) => flatten(c, &name, out),
            _ => out.push((name, v)),
        }
    }
}

fn latency(l: &Latency, o: &Map<String, Value>, f: &mut Families) {
    let help = format!("{} Stats: {}.", l.help, l.path);
    for (k, v) in o {
        if let Some((_, q)) = l.quantiles.iter().find(|(key, _)| key == k) {
            if let (Some(name), Some(value)) = (l.summary, micros_to_seconds(v)) {
                f.add(
                    name,
                    Kind::Summary,
                    &help,
                    "",
                    vec![("quantile".into(), q.to_string())],
                    value,
                );
            }
        } else if Some(k.as_str()) == l.count {
            if let (Some(name), Some(value)) = (l.summary, num(v)) {
                f.add(name, Kind::Summary, &help, "_count", vec![], value);
            }
        } else if k == l.max.0 {
            if let Some(value) = micros_to_seconds(v) {
                let h = format!("{} Stats: {}.{k}.", l.max.2, l.path);
                f.add(l.max.1, G, &h, "", vec![], value);
            }
        } else {
            // Not a known percentile: a counter like any other.
            let p = format!("{}.{k}", l.path);
            leaf(&p, &p, None, v, f);
        }
    }
}

/// A stats object with every known path set to 1 (labelled keys `x`), for
/// checking that every metric is documented.
pub fn example_stats() -> Value {
    let mut root = Map::new();
    let mut put = |path: &str, v: Value| {
        let parts: Vec<&str> = path.split('.').collect();
        let mut cur = &mut root;
        for p in &parts[..parts.len() - 1] {
            cur = cur
                .entry(p.to_string())
                .or_insert_with(|| Value::Object(Map::new()))
                .as_object_mut()
                .expect("objects only");
        }
        cur.insert(parts[parts.len() - 1].to_string(), v);
    };
    for k in KNOWN {
        put(&k.0.replace('*', "x"), 1.into());
    }
    for l in LABELLED {
        if !matches!(l.shape, Shape::Object) {
            put(&format!("{}.x", l.path), 1.into());
        }
    }
    for l in LATENCY {
        for (q, _) in l.quantiles {
            put(&format!("{}.{q}", l.path), 1.into());
        }
        if let Some(c) = l.count {
            put(&format!("{}.{c}", l.path), 1.into());
        }
        put(&format!("{}.{}", l.path, l.max.0), 1.into());
    }
    put("uptime", 1.into());
    Value::Object(root)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn render(v: Value) -> String {
        let mut f = Families::default();
        add_stats(&v, &mut f);
        f.render()
    }

    #[test]
    fn counters_gauges_and_labels() {
        let t = render(json!({
            "uptime": 5,
            "decoder": {"pkts": 10, "ipv4": 7, "max_pkt_size": 1514,
                        "event": {"ipv4": {"trunc_pkt": 2}}},
            "flow": {"active": 3, "end": {"timeout": 1}},
            "output": {"events": {"flow": 4}},
            "syslog": {"received": 9, "inputs": {"udp://127.0.0.1:0": {"received": 9, "connections_open": 0}}},
            "anomaly": {"dns-tunnel": {"alerts": 1, "entries": 2}},
            "new_section": {"thing": 8},
        }));
        for want in [
            "# TYPE zonewatch_decoder_pkts_total counter\nzonewatch_decoder_pkts_total 10\n",
            "# HELP zonewatch_decoder_ipv4_total Packets in which the ipv4 layer was seen. Stats: decoder.ipv4.\n",
            "zonewatch_decoder_ipv4_total 7\n",
            "# TYPE zonewatch_decoder_max_pkt_size_bytes gauge\nzonewatch_decoder_max_pkt_size_bytes 1514\n",
            "zonewatch_decoder_events_total{event=\"ipv4.trunc_pkt\"} 2\n",
            "# TYPE zonewatch_flow_active gauge\nzonewatch_flow_active 3\n",
            "zonewatch_flow_end_total{reason=\"timeout\"} 1\n",
            "zonewatch_output_events_total{event_type=\"flow\"} 4\n",
            "zonewatch_syslog_received_total 9\n",
            "zonewatch_syslog_input_received_total{input=\"udp://127.0.0.1:0\"} 9\n",
            "# HELP zonewatch_syslog_input_received_total Syslog frames received by this input. Stats: syslog.inputs.<input>.received.\n",
            "zonewatch_syslog_input_connections_open{input=\"udp://127.0.0.1:0\"} 0\n",
            "zonewatch_anomaly_alerts_total{detector=\"dns-tunnel\"} 1\n",
            "zonewatch_anomaly_table_entries{detector=\"dns-tunnel\"} 2\n",
            "# HELP zonewatch_new_section_thing_total A zonewatch counter (docs/events.md). Stats: new_section.thing.\n",
        ] {
            assert!(t.contains(want), "{want:?} not in\n{t}");
        }
        assert!(!t.contains("uptime"));
    }

    #[test]
    fn latencies_in_seconds() {
        let t = render(json!({
            "pipeline": {"latency_us": {"p50": 100, "p99": 2000, "max": 1_500_000}},
            "kafka": {"latency": {"count": 3, "p50_us": 4400, "p99_us": 216000, "p999_us": 300000, "max_us": 400000}},
        }));
        for want in [
            "# TYPE zonewatch_pipeline_latency_max_seconds gauge\nzonewatch_pipeline_latency_max_seconds 1.5\n",
            "# TYPE zonewatch_kafka_ack_latency_seconds summary\n",
            "zonewatch_kafka_ack_latency_seconds{quantile=\"0.5\"} 0.0044\n",
            "zonewatch_kafka_ack_latency_seconds{quantile=\"0.999\"} 0.3\n",
            "zonewatch_kafka_ack_latency_seconds_count 3\n",
            "zonewatch_kafka_ack_latency_max_seconds 0.4\n",
        ] {
            assert!(t.contains(want), "{want:?} not in\n{t}");
        }
        // The pipeline's percentiles come from the histogram, not from here.
        assert!(!t.contains("quantile=\"0.99\"} 0.002"));
    }

    #[test]
    fn every_known_path_renders_once_without_fallback() {
        let mut f = Families::default();
        add_stats(&example_stats(), &mut f);
        for (name, kind, help) in f.describe() {
            assert!(
                !help.starts_with("A zonewatch counter"),
                "{name} fell back to the generic rule"
            );
            if kind == Kind::Counter {
                assert!(name.ends_with("_total"), "{name}");
            } else {
                assert!(!name.ends_with("_total"), "{name}");
            }
        }
    }
}
