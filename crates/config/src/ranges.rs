//! The one table of numeric settings' allowed ranges: the section readers consult it as
//! they read a value (`KeyValue::num`, `size` and `secs`), so every
//! out-of-range value is refused with the same message, naming the key, its range with
//! the unit and why (never clamped, a panic or a huge allocation at start).

use crate::{key_matches, parse_num, parse_size};

/// How a bounded number is read and shown.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Unit {
    Count,
    Bytes,
    Seconds,
}

/// The allowed range of a numeric key (keys as in `SURICATA_IGNORED_PATTERNS`)
/// and why: values outside are errors naming the key, never clamped, panics,
/// aborts or huge allocations at start.
pub(crate) struct Range {
    pub(crate) keys: &'static [&'static str],
    unit: Unit,
    pub(crate) min: u64,
    max: u64,
    why: &'static str,
}

const KIB: u64 = 1 << 10;
const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;
const TIB: u64 = 1 << 40;
const DAY: u64 = 86_400;

pub(crate) const RANGES: &[Range] = &[
    Range {
        keys: &["workers", "threading.workers"],
        unit: Unit::Count,
        min: 0,
        max: 1024,
        why: "worker threads; 0 = one per core",
    },
    Range {
        keys: &["capture.snaplen"],
        unit: Unit::Count,
        min: 0,
        max: 262_144,
        why: "libpcap's largest snap length; 0 = libpcap's default",
    },
    Range {
        keys: &["capture.af-packet.ring-size"],
        unit: Unit::Bytes,
        min: 64 * KIB,
        max: 16 * GIB,
        why: "one ring per worker and interface, at least one block",
    },
    Range {
        keys: &["capture.af-packet.block-size"],
        unit: Unit::Bytes,
        min: 4 * KIB,
        max: 256 * MIB,
        why: "a block holds whole packets; a multiple of the 4 KiB page",
    },
    Range {
        keys: &["capture.af-packet.block-timeout"],
        unit: Unit::Count,
        min: 1,
        max: 10_000,
        why: "milliseconds before the kernel hands over a block that is not full",
    },
    Range {
        keys: &["capture.af-packet.cluster-id"],
        unit: Unit::Count,
        min: 0,
        max: 65_535,
        why: "PACKET_FANOUT group ids are 16 bits",
    },
    Range {
        keys: &["capture.buffer-size"],
        unit: Unit::Bytes,
        min: 0,
        max: 2 * GIB - 1,
        why: "libpcap takes the kernel buffer size as a 32-bit int",
    },
    Range {
        keys: &[
            "flow.memcap",
            "stream.memcap",
            "stream.reassembly.memcap",
            "defrag.memcap",
            "syslog.buffer-memcap",
        ],
        unit: Unit::Bytes,
        min: 64 * KIB,
        max: TIB,
        why: "a memory cap",
    },
    Range {
        keys: &["stream.reassembly.depth"],
        unit: Unit::Bytes,
        min: 0,
        max: TIB,
        why: "bytes per direction; 0 = no limit",
    },
    Range {
        keys: &[
            "app-layer.protocols.http.libhtp.default-config.request-body-limit",
            "app-layer.protocols.http.libhtp.default-config.response-body-limit",
        ],
        unit: Unit::Bytes,
        min: 0,
        max: GIB,
        why: "bytes of one HTTP body kept per transaction",
    },
    Range {
        keys: &["detect.stream-window"],
        unit: Unit::Bytes,
        min: 0,
        max: MIB,
        why: "bytes of inspected stream kept per direction",
    },
    Range {
        keys: &["defrag.timeout"],
        unit: Unit::Seconds,
        min: 1,
        max: DAY,
        why: "seconds a fragment waits for the rest",
    },
    Range {
        keys: &["defrag.trackers"],
        unit: Unit::Count,
        min: 1,
        max: 1 << 24,
        why: "fragment trackers at once",
    },
    Range {
        keys: &[
            "flow-timeouts.*.new",
            "flow-timeouts.*.established",
            "flow-timeouts.*.closed",
            "flow-timeouts.*.emergency-new",
            "flow-timeouts.*.emergency-established",
            "flow-timeouts.*.emergency-closed",
        ],
        unit: Unit::Seconds,
        min: 0,
        max: 7 * DAY,
        why: "a flow timeout of at most a week",
    },
    Range {
        keys: &["stats.interval"],
        unit: Unit::Seconds,
        min: 0,
        max: DAY,
        why: "seconds between stats events, at most a day; 0 = only at the end",
    },
    Range {
        keys: &["community-id.seed", "community-id-seed"],
        unit: Unit::Count,
        min: 0,
        max: 65_535,
        why: "Community ID seeds are 16-bit",
    },
    Range {
        keys: &["pipeline.batch-packets"],
        unit: Unit::Count,
        min: 1,
        max: 4096,
        why: "packets per batch",
    },
    Range {
        keys: &["pipeline.queue-batches"],
        unit: Unit::Count,
        min: 1,
        max: 65_536,
        why: "batches queued per worker",
    },
    Range {
        keys: &["syslog.max-frame-size"],
        unit: Unit::Bytes,
        min: 256,
        max: 16 * MIB,
        why: "bytes of one syslog frame",
    },
    Range {
        keys: &["syslog.channel-size"],
        unit: Unit::Count,
        min: 16,
        max: 1 << 20,
        why: "records queued for the Sigma thread, allocated at start (about 240 bytes each)",
    },
    Range {
        keys: &["syslog.idle-timeout"],
        unit: Unit::Seconds,
        min: 1,
        max: DAY,
        why: "seconds a silent connection stays open",
    },
    Range {
        keys: &["syslog.frame-timeout"],
        unit: Unit::Seconds,
        min: 1,
        max: 3600,
        why: "seconds one frame may take",
    },
    Range {
        keys: &["syslog.max-connections"],
        unit: Unit::Count,
        min: 1,
        max: 1 << 20,
        why: "connections at once per listener",
    },
    Range {
        keys: &["syslog.max-connections-per-source"],
        unit: Unit::Count,
        min: 0,
        max: 1 << 20,
        why: "connections at once from one address; 0 = no limit",
    },
];

fn show(v: u64, unit: Unit) -> String {
    match unit {
        Unit::Bytes if v >= GIB && v % GIB == 0 => format!("{}gb", v / GIB),
        Unit::Bytes if v >= MIB && v % MIB == 0 => format!("{}mb", v / MIB),
        Unit::Bytes if v >= KIB && v % KIB == 0 => format!("{}kb", v / KIB),
        _ => v.to_string(),
    }
}

/// Checks a numeric key's value against [`RANGES`] (other keys pass).
pub(crate) fn check_range(key: &str, s: &str) -> Result<(), String> {
    let Some(r) = RANGES
        .iter()
        .find(|r| r.keys.iter().any(|p| key_matches(p, key)))
    else {
        return Ok(());
    };
    let v = match r.unit {
        Unit::Bytes => parse_size(s)?,
        _ => parse_num::<u64>(s)?,
    };
    if v < r.min || v > r.max {
        let max = if r.unit == Unit::Bytes && r.max == 2 * GIB - 1 {
            "2gb - 1".to_string()
        } else {
            show(r.max, r.unit)
        };
        return Err(format!(
            "{:?} is out of range {}..={max} ({})",
            s.trim(),
            show(r.min, r.unit),
            r.why
        ));
    }
    Ok(())
}
