//! What the aggregator reads: a sensor's `alert` or `stats` event (one Kafka message value,
//! docs/events.md) with the message headers, parsed without trusting a byte of it.

use serde::Deserialize;

/// The Kafka headers the sensor sets (crates/kafka/src/sink.rs); absent ones are `None`.
#[derive(Clone, Debug, Default)]
pub struct Headers<'a> {
    /// `sensor`.
    pub sensor: Option<&'a str>,
    /// `tenant`.
    pub tenant: Option<&'a str>,
}

/// An event the correlator takes.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// An `alert`.
    Alert(AlertEvent),
    /// A `stats` event.
    Stats(StatsEvent),
}

impl Event {
    /// The event's time, microseconds since the epoch.
    pub fn time_us(&self) -> i64 {
        match self {
            Event::Alert(a) => a.time_us,
            Event::Stats(s) => s.time_us,
        }
    }

    /// The `event_id`.
    pub fn event_id(&self) -> &str {
        match self {
            Event::Alert(a) => &a.event_id,
            Event::Stats(s) => &s.event_id,
        }
    }

    /// The tenant (empty when the sensor has none).
    pub fn tenant(&self) -> &str {
        match self {
            Event::Alert(a) => &a.tenant,
            Event::Stats(s) => &s.tenant,
        }
    }

    /// The sensor (`host`).
    pub fn sensor(&self) -> &str {
        match self {
            Event::Alert(a) => &a.sensor,
            Event::Stats(s) => &s.sensor,
        }
    }
}

/// The fields of an `alert` the correlator uses.
#[derive(Clone, Debug, PartialEq)]
pub struct AlertEvent {
    /// `event_id`.
    pub event_id: String,
    /// `timestamp`, microseconds since the epoch.
    pub time_us: i64,
    /// `tenant` ("" when absent).
    pub tenant: String,
    /// `host`: the sensor's name.
    pub sensor: String,
    /// `src_ip` ("" when absent: such alerts count for storms only).
    pub src_ip: String,
    /// `alert.signature`.
    pub signature: String,
    /// `alert.severity` (1 = most severe).
    pub severity: u8,
}

/// The counters of a `stats` event the health checks use.
#[derive(Clone, Debug, PartialEq)]
pub struct StatsEvent {
    /// `event_id`.
    pub event_id: String,
    /// `timestamp`, microseconds since the epoch.
    pub time_us: i64,
    /// `tenant` ("" when absent).
    pub tenant: String,
    /// `host`: the sensor's name.
    pub sensor: String,
    /// `stats.uptime` (a smaller value than the last one: the sensor restarted).
    pub uptime: u64,
    /// Packets seen: `capture.kernel_packets` when live, else `decoder.pkts`.
    pub packets: u64,
    /// Packets lost: `capture.kernel_drops` + `capture.kernel_ifdrops` +
    /// `pipeline.queue_drops`.
    pub dropped: u64,
    /// `kafka.spool_backlog_bytes`, when the sensor publishes to Kafka.
    pub spool_backlog_bytes: Option<u64>,
}

/// Why a message was refused (the dead-letter `reason` header and the counter's name).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reject {
    /// Not a JSON object, or a field of the wrong type.
    Malformed,
    /// `event_type` is neither `alert` nor `stats`.
    WrongType,
    /// `timestamp` is missing or not an EVE timestamp.
    BadTimestamp,
    /// `event_id` or `host` missing or empty.
    MissingField,
    /// The `sensor` header disagrees with `host`, or the `tenant` header with `tenant`.
    HeaderMismatch,
    /// The sensor is not in `aggregate.sensors`, or not for this tenant.
    TenantNotAllowed,
    /// Larger than `aggregate.max-message-bytes`.
    Oversized,
}

impl Reject {
    /// Name used for counters and the dead-letter `reason` header.
    pub fn as_str(self) -> &'static str {
        match self {
            Reject::Malformed => "malformed",
            Reject::WrongType => "wrong_type",
            Reject::BadTimestamp => "bad_timestamp",
            Reject::MissingField => "missing_field",
            Reject::HeaderMismatch => "header_mismatch",
            Reject::TenantNotAllowed => "tenant_not_allowed",
            Reject::Oversized => "oversized",
        }
    }
}

/// Longest string kept from an event (signature, names): longer ones are cut, so a hostile
/// sensor cannot make one state entry large.
const MAX_FIELD_CHARS: usize = 256;

#[derive(Deserialize)]
struct RawEvent<'a> {
    #[serde(borrow)]
    event_type: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)]
    event_id: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)]
    timestamp: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)]
    host: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)]
    tenant: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)]
    src_ip: Option<std::borrow::Cow<'a, str>>,
    alert: Option<RawAlert>,
    stats: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct RawAlert {
    signature: Option<String>,
    severity: Option<u64>,
}

fn cut(s: &str) -> String {
    match s.char_indices().nth(MAX_FIELD_CHARS) {
        Some((at, _)) => s[..at].to_string(),
        None => s.to_string(),
    }
}

fn counter(v: &serde_json::Value, path: &[&str]) -> Option<u64> {
    path.iter().try_fold(v, |v, k| v.get(k))?.as_u64()
}

/// Parses one message value. `headers` are checked against the value: a `sensor` or
/// `tenant` header that disagrees with `host` / `tenant` is [`Reject::HeaderMismatch`]
/// (absent headers are not checked: the events may come from a file).
pub fn parse_event(value: &[u8], headers: &Headers<'_>) -> Result<Event, Reject> {
    let raw: RawEvent<'_> = serde_json::from_slice(value).map_err(|_| Reject::Malformed)?;
    let event_id = raw.event_id.as_deref().unwrap_or("");
    let host = raw.host.as_deref().unwrap_or("");
    if event_id.is_empty() || host.is_empty() {
        return Err(Reject::MissingField);
    }
    let time_us = raw
        .timestamp
        .as_deref()
        .and_then(parse_timestamp)
        .ok_or(Reject::BadTimestamp)?;
    let tenant = raw.tenant.as_deref().unwrap_or("");
    if headers.sensor.is_some_and(|s| s != host) || headers.tenant.is_some_and(|t| t != tenant) {
        return Err(Reject::HeaderMismatch);
    }
    match raw.event_type.as_deref() {
        Some("alert") => {
            let alert = raw.alert.ok_or(Reject::Malformed)?;
            let src_ip = raw.src_ip.as_deref().unwrap_or("");
            if !src_ip.is_empty() && src_ip.parse::<std::net::IpAddr>().is_err() {
                return Err(Reject::Malformed);
            }
            Ok(Event::Alert(AlertEvent {
                event_id: cut(event_id),
                time_us,
                tenant: cut(tenant),
                sensor: cut(host),
                src_ip: src_ip.to_string(),
                signature: cut(alert.signature.as_deref().unwrap_or("")),
                severity: alert.severity.unwrap_or(3).clamp(1, 255) as u8,
            }))
        }
        Some("stats") => {
            let s = raw.stats.ok_or(Reject::Malformed)?;
            if !s.is_object() {
                return Err(Reject::Malformed);
            }
            let live = counter(&s, &["capture", "kernel_packets"]);
            let packets = live
                .or_else(|| counter(&s, &["decoder", "pkts"]))
                .unwrap_or(0);
            let dropped = [
                counter(&s, &["capture", "kernel_drops"]),
                counter(&s, &["capture", "kernel_ifdrops"]),
                counter(&s, &["pipeline", "queue_drops"]),
            ]
            .into_iter()
            .flatten()
            .fold(0u64, u64::saturating_add);
            Ok(Event::Stats(StatsEvent {
                event_id: cut(event_id),
                time_us,
                tenant: cut(tenant),
                sensor: cut(host),
                uptime: counter(&s, &["uptime"]).unwrap_or(0),
                packets,
                dropped,
                spool_backlog_bytes: counter(&s, &["kafka", "spool_backlog_bytes"]),
            }))
        }
        _ => Err(Reject::WrongType),
    }
}

fn digits(b: &[u8]) -> Option<i64> {
    if b.is_empty() || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(b.iter().fold(0i64, |n, d| n * 10 + (d - b'0') as i64))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// An EVE timestamp (`2026-11-25T20:30:45.123456+0900`; also `Z` or `+09:00`, and any
/// number of fraction digits) as microseconds since the epoch, UTC.
pub fn parse_timestamp(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let (y, mo, d) = (digits(&b[0..4])?, digits(&b[5..7])?, digits(&b[8..10])?);
    let (h, mi, sec) = (
        digits(&b[11..13])?,
        digits(&b[14..16])?,
        digits(&b[17..19])?,
    );
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut rest = &b[19..];
    let mut micros = 0i64;
    if rest.first() == Some(&b'.') {
        let n = rest[1..].iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 {
            return None;
        }
        let frac = &rest[1..1 + n];
        for i in 0..6 {
            micros = micros * 10 + frac.get(i).map_or(0, |d| (d - b'0') as i64);
        }
        rest = &rest[1 + n..];
    }
    let offset_secs = match rest {
        [b'Z'] => 0,
        [sign @ (b'+' | b'-'), hh @ ..] if hh.len() == 4 || (hh.len() == 5 && hh[2] == b':') => {
            let oh = digits(&hh[0..2])?;
            let om = digits(&hh[hh.len() - 2..])?;
            if oh > 23 || om > 59 {
                return None;
            }
            let o = oh * 3600 + om * 60;
            if *sign == b'-' {
                -o
            } else {
                o
            }
        }
        _ => return None,
    };
    let secs = days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + sec - offset_secs;
    Some(secs * 1_000_000 + micros)
}
