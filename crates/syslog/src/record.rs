//! The parsed log record.

use std::net::SocketAddr;
use zonewatch_types::Timestamp;

/// Which syntax a record was parsed as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// `<PRI>` followed by a BSD (RFC 3164) header.
    Rfc3164,
    /// `<PRI>1 ...` (RFC 5424).
    Rfc5424,
    /// A log-file line as rsyslog writes it: no `<PRI>`, BSD or RFC 3339 timestamp first.
    #[default]
    Plain,
}

/// Bit flags describing how a record was parsed (what was guessed, repaired or missing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Flags(pub u32);

impl Flags {
    /// No `<PRI>`: facility/severity default to user.notice (13), as rsyslog does.
    pub const NO_PRI: Flags = Flags(1);
    /// No timestamp could be parsed: the receive (or replay) time is used.
    pub const NO_TIMESTAMP: Flags = Flags(1 << 1);
    /// The year was inferred (BSD timestamps carry none).
    pub const YEAR_INFERRED: Flags = Flags(1 << 2);
    /// The time zone was not in the record: the sensor's zone was used.
    pub const ZONE_INFERRED: Flags = Flags(1 << 3);
    /// No hostname in the header.
    pub const NO_HOSTNAME: Flags = Flags(1 << 4);
    /// The frame was longer than the maximum frame size and was cut.
    pub const TRUNCATED: Flags = Flags(1 << 5);
    /// The body was Shift_JIS and was transcoded to UTF-8.
    pub const SHIFT_JIS: Flags = Flags(1 << 6);
    /// The body was EUC-JP and was transcoded to UTF-8.
    pub const EUC_JP: Flags = Flags(1 << 7);
    /// The body was neither UTF-8 nor a detected Japanese encoding: invalid bytes became U+FFFD.
    pub const LOSSY: Flags = Flags(1 << 8);
    /// RFC 5424 message started with a UTF-8 BOM (removed).
    pub const BOM: Flags = Flags(1 << 9);
    /// RFC 5424 structured data was malformed; what could be read was kept.
    pub const BAD_SD: Flags = Flags(1 << 10);
    /// The message body was a JSON object (its members are in `fields`).
    pub const JSON_BODY: Flags = Flags(1 << 11);
    /// The message body held `key=value` pairs (they are in `fields`).
    pub const KV_BODY: Flags = Flags(1 << 12);
    /// Field extraction stopped at its cap (some fields were not extracted).
    pub const FIELDS_CAPPED: Flags = Flags(1 << 13);
    /// `<PRI>` was present but invalid (kept as text; user.notice used).
    pub const BAD_PRI: Flags = Flags(1 << 14);

    /// Whether every bit of `other` is set.
    pub fn contains(self, other: Flags) -> bool {
        self.0 & other.0 == other.0
    }
    /// Sets the bits of `other`.
    pub fn insert(&mut self, other: Flags) {
        self.0 |= other.0;
    }
}

/// One RFC 5424 structured-data element: `[id name="value" ...]`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SdElement {
    /// SD-ID, e.g. `exampleSDID@32473`.
    pub id: String,
    /// Parameters in order, values unescaped.
    pub params: Vec<(String, String)>,
}

/// A parsed syslog message or log-file line.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LogRecord {
    /// Event time: the record's own timestamp, or the receive time if it had none.
    pub timestamp: Timestamp,
    /// When zonewatch received it (in file replay: equal to `timestamp`, so output is deterministic).
    pub received: Timestamp,
    /// Peer address (network listeners); `None` for file/stdin replay.
    pub source: Option<SocketAddr>,
    /// Which syntax it was parsed as.
    pub format: Format,
    /// Facility 0..=23 (`<PRI>` / 8); 1 (user) if there was no `<PRI>`.
    pub facility: u8,
    /// Severity 0..=7 (`<PRI>` % 8); 5 (notice) if there was no `<PRI>`.
    pub severity: u8,
    /// HOSTNAME, if present.
    pub hostname: Option<String>,
    /// APP-NAME (RFC 5424) or the program name from the BSD tag (`sshd` in `sshd[42]:`).
    pub app_name: Option<String>,
    /// PROCID (RFC 5424) or the pid in the BSD tag.
    pub procid: Option<String>,
    /// MSGID (RFC 5424 only).
    pub msgid: Option<String>,
    /// RFC 5424 structured data.
    pub structured_data: Vec<SdElement>,
    /// The free-text message (UTF-8; transcoded or lossy per `flags`).
    pub message: String,
    /// Fields extracted from the body: `key=value` pairs, flattened JSON members (`a.b`),
    /// and well-known ones (`src_ip`, `user`, HTTP access-log fields). First occurrence wins.
    pub fields: Vec<(String, String)>,
    /// How it was parsed.
    pub flags: Flags,
}

impl LogRecord {
    /// `facility * 8 + severity`.
    pub fn pri(&self) -> u8 {
        self.facility
            .saturating_mul(8)
            .saturating_add(self.severity)
    }
    /// An extracted field by exact name.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
    /// A structured-data parameter.
    pub fn sd_param(&self, id: &str, name: &str) -> Option<&str> {
        self.structured_data
            .iter()
            .filter(|e| e.id == id)
            .flat_map(|e| e.params.iter())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
    /// Facility keyword (`auth`, `local4`, ...).
    pub fn facility_name(&self) -> &'static str {
        facility_name(self.facility)
    }
    /// Severity keyword (`crit`, `info`, ...).
    pub fn severity_name(&self) -> &'static str {
        severity_name(self.severity)
    }
}

/// rsyslog's facility keywords.
pub fn facility_name(f: u8) -> &'static str {
    const N: [&str; 24] = [
        "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron",
        "authpriv", "ftp", "ntp", "audit", "alert", "clock", "local0", "local1", "local2",
        "local3", "local4", "local5", "local6", "local7",
    ];
    N.get(f as usize).copied().unwrap_or("invalid")
}

/// rsyslog's severity keywords.
pub fn severity_name(s: u8) -> &'static str {
    const N: [&str; 8] = [
        "emerg", "alert", "crit", "err", "warning", "notice", "info", "debug",
    ];
    N.get(s as usize).copied().unwrap_or("invalid")
}

/// Facility number for a keyword (also accepts `security` = 4, `authpriv` = 10).
pub fn facility_from_name(name: &str) -> Option<u8> {
    let n = name.to_ascii_lowercase();
    if n == "security" {
        return Some(4);
    }
    (0..24u8).find(|f| facility_name(*f) == n)
}
