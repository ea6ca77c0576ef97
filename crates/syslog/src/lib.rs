//! Syslog ingestion for zonewatch.
//!
//! Contract:
//! - [`parse`] turns any bytes into a [`LogRecord`] and never fails or panics: RFC 5424
//!   (structured data, BOM, NILVALUE), RFC 3164 (year inferred from the reference time, zone
//!   from [`ParseOptions::sensor_offset`] when the record has none), and plain log-file lines
//!   as rsyslog writes them (no `<PRI>`: user.notice, flagged [`Flags::NO_PRI`]). Missing
//!   hostnames, vendor timestamps, `key=value` and JSON bodies are tolerated; bodies that are
//!   not UTF-8 are transcoded from Shift_JIS or EUC-JP when they decode cleanly, else kept
//!   lossy with [`Flags::LOSSY`]. What was guessed or repaired is in [`LogRecord::flags`].
//! - [`Framer`] splits streams per RFC 6587, deciding per frame between octet counting and
//!   LF/NUL termination, with a maximum frame size (longer frames are cut, flagged and
//!   counted; memory stays bounded).
//! - [`spawn`] starts UDP, TCP or TLS (rustls) listeners and [`replay`] reads files/stdin; all
//!   deliver to a bounded `crossbeam_channel::Sender<LogRecord>`. Listeners drop and count on a
//!   full channel; replay blocks. [`Counters`] are per listener; [`Shutdown`] stops them all.
//!
//! Allocation per record is a handful of small strings; extracted fields are capped
//! ([`body::MAX_FIELDS`]) and values cut at 1 KiB.

#![deny(missing_docs)]

pub mod body;
mod framing;
mod listen;
mod parse;
mod record;
mod stream;
mod time;

pub use framing::{Framer, FramerStats};
pub use listen::{
    now, replay, server_config, spawn, CounterSnapshot, Counters, ListenError, ListenSpec,
    Listener, ListenerConfig, ReplayConfig, Shutdown, TlsFiles, POLL,
};
pub use parse::{extract_fields, parse, ParseOptions};
pub use record::{
    facility_from_name, facility_name, severity_name, Flags, Format, LogRecord, SdElement,
};
pub use stream::{raise_fd_limit, FD_MARGIN, LOG_EVERY};
pub use zonewatch_types::{Timestamp, UtcOffset};
