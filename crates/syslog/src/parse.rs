//! One frame (or one log-file line) → [`LogRecord`]. Never fails: whatever cannot be read
//! becomes part of the message and is noted in [`Flags`].

use crate::body;
use crate::record::{Flags, Format, LogRecord, SdElement};
use crate::time;
use std::net::SocketAddr;
use zonewatch_types::{Timestamp, UtcOffset};

/// How to parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParseOptions {
    /// Zone for timestamps that carry none (BSD syslog, plain lines), e.g. `+09:00`.
    pub sensor_offset: UtcOffset,
    /// Extract `key=value`, JSON and well-known fields from the message into `fields`.
    pub extract_fields: bool,
}

impl Default for ParseOptions {
    fn default() -> Self {
        ParseOptions {
            sensor_offset: UtcOffset(9 * 3600),
            extract_fields: true,
        }
    }
}

/// At most this many structured-data elements / params per element are kept.
const MAX_SD_ELEMENTS: usize = 32;
const MAX_SD_PARAMS: usize = 64;

fn lossy(b: &[u8]) -> String {
    match std::str::from_utf8(b) {
        Ok(s) => s.to_owned(),
        Err(_) => String::from_utf8_lossy(b).into_owned(),
    }
}

fn skip_spaces(s: &[u8], mut i: usize) -> usize {
    while s.get(i) == Some(&b' ') {
        i += 1;
    }
    i
}

/// `<PRI>` → (pri, bytes consumed). `None` if absent or invalid.
fn parse_pri(s: &[u8]) -> Option<(u8, usize)> {
    if s.first() != Some(&b'<') {
        return None;
    }
    let mut v: u32 = 0;
    let mut i = 1;
    while i < 5 {
        match s.get(i) {
            Some(c) if c.is_ascii_digit() => v = v * 10 + (c - b'0') as u32,
            Some(b'>') if i > 1 => {
                return (v <= 191).then_some((v as u8, i + 1));
            }
            _ => return None,
        }
        i += 1;
    }
    None
}

/// Parses one frame. `received` is the receive time (the reference for year inference and the
/// timestamp if the frame has none); `source` the peer, if any.
pub fn parse(
    frame: &[u8],
    received: Timestamp,
    source: Option<SocketAddr>,
    opts: &ParseOptions,
) -> LogRecord {
    let mut end = frame.len();
    while end > 0 && matches!(frame[end - 1], b'\n' | b'\r' | 0) {
        end -= 1;
    }
    let s = &frame[..end];
    let mut rec = LogRecord {
        timestamp: received,
        received,
        source,
        facility: 1,
        severity: 5,
        ..LogRecord::default()
    };
    let mut i = 0;
    match parse_pri(s) {
        Some((pri, n)) => {
            rec.facility = pri / 8;
            rec.severity = pri % 8;
            i = n;
            rec.format = Format::Rfc3164;
            if s.get(i) == Some(&b'1') && matches!(s.get(i + 1), Some(b' ')) {
                rec.format = Format::Rfc5424;
                parse_5424(s, i + 2, &mut rec, opts);
                finish(&mut rec, opts);
                return rec;
            }
        }
        None => {
            rec.flags.insert(Flags::NO_PRI);
            if s.first() == Some(&b'<') {
                rec.flags.insert(Flags::BAD_PRI);
            }
        }
    }
    parse_bsd(s, i, &mut rec, opts);
    finish(&mut rec, opts);
    rec
}

/// Extracts the body fields (`key=value`, JSON, well-known) of a record parsed with
/// `extract_fields: false`, as [`parse`] with `extract_fields: true` would have: afterwards
/// `fields` and `flags` are exactly what that parse gives. Call it once per record (a second
/// call leaves `fields` unchanged but wastes the work).
pub fn extract_fields(rec: &mut LogRecord) {
    let mut fields = std::mem::take(&mut rec.fields);
    body::extract(&rec.message, &mut fields, &mut rec.flags);
    rec.fields = fields;
}

fn finish(rec: &mut LogRecord, opts: &ParseOptions) {
    if opts.extract_fields {
        extract_fields(rec);
    }
    if rec.flags.contains(Flags::NO_TIMESTAMP) {
        if let Some(t) = body::parse_clf(&rec.message).and_then(|c| body::clf_time(c.time)) {
            rec.timestamp = Timestamp::from_parts(t, 0);
            rec.flags.0 &= !Flags::NO_TIMESTAMP.0;
        }
    }
}

fn set_time(rec: &mut LogRecord, c: &time::Civil, opts: &ParseOptions) {
    let (t, year_inferred, zone_inferred) = c.resolve(rec.received, opts.sensor_offset.0);
    rec.timestamp = t;
    if year_inferred {
        rec.flags.insert(Flags::YEAR_INFERRED);
    }
    if zone_inferred {
        rec.flags.insert(Flags::ZONE_INFERRED);
    }
}

/// `[name]:` or `[name] ` where name is a program, not a log level (`[error]`).
fn bracket_tag(s: &[u8], i: usize) -> Option<(String, usize)> {
    let rest = s.get(i..)?.strip_prefix(b"[")?;
    let close = rest.iter().position(|&b| b == b']')?;
    let name = &rest[..close];
    const LEVELS: [&[u8]; 10] = [
        b"error", b"warn", b"warning", b"notice", b"info", b"debug", b"crit", b"alert", b"emerg",
        b"client",
    ];
    if name.is_empty()
        || name.len() > 48
        || !name[0].is_ascii_alphabetic()
        || !name
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        || LEVELS.iter().any(|l| name.eq_ignore_ascii_case(l))
    {
        return None;
    }
    let mut next = i + 1 + close + 1;
    if s.get(next) == Some(&b':') {
        next += 1;
    }
    if s.get(next) == Some(&b' ') {
        next += 1;
    } else if next < s.len() {
        return None;
    }
    Some((String::from_utf8_lossy(name).into_owned(), next))
}

fn is_tag(tok: &[u8]) -> bool {
    let Some(body) = tok.strip_suffix(b":") else {
        return false;
    };
    let name_end = body.iter().position(|&b| b == b'[').unwrap_or(body.len());
    let (name, pid) = body.split_at(name_end);
    !name.is_empty()
        && name.len() <= 48
        && name[0].is_ascii_alphabetic()
        && name.iter().all(|&b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'/' | b'(' | b')')
        })
        && (pid.is_empty()
            || (pid.len() >= 3
                && pid.ends_with(b"]")
                && pid[1..pid.len() - 1].iter().all(u8::is_ascii_digit)))
}

/// Where the hostname starts if `s[i..]` is `[HOST ]TAG: ...` without a timestamp.
fn untimed_header(s: &[u8], i: usize) -> Option<usize> {
    let rest = &s[i..];
    let first_end = memchr::memchr(b' ', rest)?;
    let first = &rest[..first_end];
    if is_tag(first) {
        return Some(i);
    }
    let second = rest[first_end + 1..].split(|&b| b == b' ').next()?;
    (hostname_like(first) && is_tag(second)).then_some(i)
}

fn hostname_like(tok: &[u8]) -> bool {
    !tok.is_empty()
        && tok.len() <= 255
        && *tok.last().unwrap_or(&b':') != b':'
        && !tok.contains(&b'[')
        && tok
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':' | b'%'))
}

/// BSD header (and plain log-file lines): `[TIMESTAMP ][HOSTNAME ]TAG[: ]MSG`.
fn parse_bsd(s: &[u8], start: usize, rec: &mut LogRecord, opts: &ParseOptions) {
    let mut i = skip_spaces(s, start);
    match time::parse_any(&s[i..]) {
        Some((c, n)) => {
            set_time(rec, &c, opts);
            i += n;
        }
        None => {
            rec.flags.insert(Flags::NO_TIMESTAMP);
            // Journal-style `HOST prog[pid]: msg` or `prog[pid]: msg` without a timestamp:
            // taken only when a tag with its `:` is clearly there.
            if let Some(at) = untimed_header(s, i) {
                i = at;
            } else {
                rec.flags.insert(Flags::NO_HOSTNAME);
                rec.message = body::decode(&s[start..], &mut rec.flags);
                return;
            }
        }
    }
    i = skip_spaces(s, i);
    // `[sshd]: ...` / `[sshd] ...`: a bracketed program name.
    if let Some((name, next)) = bracket_tag(s, i) {
        rec.flags.insert(Flags::NO_HOSTNAME);
        rec.app_name = Some(name);
        rec.message = body::decode(s.get(next..).unwrap_or(b""), &mut rec.flags);
        return;
    }
    // `[error] ...` (web-server error logs): no hostname or tag, the rest is the message.
    if s.get(i) == Some(&b'[') {
        rec.flags.insert(Flags::NO_HOSTNAME);
        rec.message = body::decode(&s[i..], &mut rec.flags);
        return;
    }
    // Hostname: the next word, unless it is clearly the tag (`su:`, `sshd[1]:`).
    let tok_end = memchr::memchr(b' ', &s[i..]).map_or(s.len(), |p| i + p);
    let tok = &s[i..tok_end];
    if hostname_like(tok) {
        rec.hostname = Some(lossy(tok));
        i = tok_end;
        if i < s.len() {
            i += 1;
        }
    } else {
        rec.flags.insert(Flags::NO_HOSTNAME);
    }
    // Tag: up to a space, or up to and including the first ':'.
    let mut j = i;
    while j < s.len() && s[j] != b' ' {
        if s[j] == b':' {
            j += 1;
            break;
        }
        j += 1;
    }
    let tag = &s[i..j];
    if !tag.is_empty() {
        let name_end = tag
            .iter()
            .position(|&b| b == b'[' || b == b':')
            .unwrap_or(tag.len());
        if name_end > 0 {
            rec.app_name = Some(lossy(&tag[..name_end]));
        }
        if tag.get(name_end) == Some(&b'[') {
            if let Some(close) = tag[name_end..].iter().position(|&b| b == b']') {
                let pid = &tag[name_end + 1..name_end + close];
                if !pid.is_empty() {
                    rec.procid = Some(lossy(pid));
                }
            }
        }
    }
    let mut m = j;
    if s.get(m) == Some(&b' ') {
        m += 1;
    }
    rec.message = body::decode(s.get(m..).unwrap_or(b""), &mut rec.flags);
}

/// A header field: `-` → None.
fn field5424(s: &[u8], i: &mut usize) -> Option<String> {
    let start = *i;
    let end = memchr::memchr(b' ', &s[start..]).map_or(s.len(), |p| start + p);
    *i = (end + 1).min(s.len());
    let t = &s[start..end];
    (t != b"-" && !t.is_empty()).then(|| lossy(t))
}

fn parse_5424(s: &[u8], start: usize, rec: &mut LogRecord, opts: &ParseOptions) {
    let mut i = start;
    if s.get(i) == Some(&b'-') {
        rec.flags.insert(Flags::NO_TIMESTAMP);
        i += 1;
    } else {
        match time::parse_iso(&s[i..]) {
            Some((c, n)) => {
                set_time(rec, &c, opts);
                i += n;
            }
            None => {
                rec.flags.insert(Flags::NO_TIMESTAMP);
                i = memchr::memchr(b' ', &s[i..]).map_or(s.len(), |p| i + p);
            }
        }
    }
    if s.get(i) == Some(&b' ') {
        i += 1;
    }
    rec.hostname = field5424(s, &mut i);
    if rec.hostname.is_none() {
        rec.flags.insert(Flags::NO_HOSTNAME);
    }
    rec.app_name = field5424(s, &mut i);
    rec.procid = field5424(s, &mut i);
    rec.msgid = field5424(s, &mut i);
    // Structured data.
    if s.get(i) == Some(&b'-') {
        i += 1;
    } else {
        while s.get(i) == Some(&b'[') {
            match parse_sd_element(s, i + 1) {
                Some((el, next)) => {
                    if rec.structured_data.len() < MAX_SD_ELEMENTS {
                        rec.structured_data.push(el);
                    }
                    i = next;
                }
                None => {
                    rec.flags.insert(Flags::BAD_SD);
                    // Skip to the closing bracket (or the end).
                    i = memchr::memchr(b']', &s[i..]).map_or(s.len(), |p| i + p + 1);
                }
            }
        }
    }
    if s.get(i) == Some(&b' ') {
        i += 1;
    }
    let mut msg = s.get(i..).unwrap_or(b"");
    if let Some(rest) = msg.strip_prefix(b"\xEF\xBB\xBF") {
        rec.flags.insert(Flags::BOM);
        msg = rest;
    }
    rec.message = body::decode(msg, &mut rec.flags);
}

/// Parses `id name="value" ...]` starting after `[`; returns the element and the index after `]`.
/// Tolerates spaces around `=` (seen in the wild).
fn parse_sd_element(s: &[u8], mut i: usize) -> Option<(SdElement, usize)> {
    let id_end = i + s[i..]
        .iter()
        .position(|&b| b == b' ' || b == b']' || b == b'=' || b == b'"')?;
    if id_end == i {
        return None;
    }
    let mut el = SdElement {
        id: lossy(&s[i..id_end]),
        params: Vec::new(),
    };
    i = id_end;
    loop {
        i = skip_spaces(s, i);
        match s.get(i)? {
            b']' => return Some((el, i + 1)),
            _ => {
                let ns = i;
                while !matches!(s.get(i)?, b'=' | b' ' | b']' | b'"') {
                    i += 1;
                }
                let name = lossy(&s[ns..i]);
                i = skip_spaces(s, i);
                if s.get(i)? != &b'=' {
                    return None;
                }
                i = skip_spaces(s, i + 1);
                if s.get(i)? != &b'"' {
                    return None;
                }
                i += 1;
                let mut v = Vec::new();
                loop {
                    match *s.get(i)? {
                        b'\\' if matches!(s.get(i + 1), Some(b'"' | b'\\' | b']')) => {
                            v.push(s[i + 1]);
                            i += 2;
                        }
                        b'"' => {
                            i += 1;
                            break;
                        }
                        c => {
                            v.push(c);
                            i += 1;
                        }
                    }
                }
                if el.params.len() < MAX_SD_PARAMS && !name.is_empty() {
                    el.params
                        .push((name, String::from_utf8_lossy(&v).into_owned()));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &[u8]) -> LogRecord {
        parse(s, Timestamp(0), None, &ParseOptions::default())
    }

    #[test]
    fn rfc5424_full() {
        let r = p(b"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut=\"3\" eventSource=\"Appli\\\"cation\"][x@1 a=\"b\"] \xEF\xBB\xBFAn event");
        assert_eq!(r.format, Format::Rfc5424);
        assert_eq!((r.facility, r.severity), (20, 5));
        assert_eq!(r.hostname.as_deref(), Some("mymachine.example.com"));
        assert_eq!(r.app_name.as_deref(), Some("evntslog"));
        assert_eq!(r.procid, None);
        assert_eq!(r.msgid.as_deref(), Some("ID47"));
        assert_eq!(
            r.sd_param("exampleSDID@32473", "eventSource"),
            Some("Appli\"cation")
        );
        assert_eq!(r.sd_param("x@1", "a"), Some("b"));
        assert_eq!(r.message, "An event");
        assert!(r.flags.contains(Flags::BOM));
        assert_eq!(r.timestamp.secs(), 1_065_910_455);
    }

    #[test]
    fn rfc5424_nil_everything() {
        let r = p(b"<13>1 - - - - - - minimal");
        assert_eq!(r.format, Format::Rfc5424);
        assert!(r.flags.contains(Flags::NO_TIMESTAMP));
        assert_eq!(r.hostname, None);
        assert_eq!(r.message, "minimal");
        let r = p(b"<13>1 - - - - - [bad");
        assert!(r.flags.contains(Flags::BAD_SD));
    }

    #[test]
    fn bsd_tag_pid_and_missing_hostname() {
        let r = p(b"<38>Mar 27 19:06:53 source_server sshd(pam_unix)[12750]: session opened");
        assert_eq!(r.hostname.as_deref(), Some("source_server"));
        assert_eq!(r.app_name.as_deref(), Some("sshd(pam_unix)"));
        assert_eq!(r.procid.as_deref(), Some("12750"));
        assert_eq!(r.message, "session opened");
        let r = p(b"<134>Nov 25 20:30:45 %ASA-6-302013: Built inbound");
        assert_eq!(r.hostname, None);
        assert!(r.flags.contains(Flags::NO_HOSTNAME));
        assert_eq!(r.app_name.as_deref(), Some("%ASA-6-302013"));
        assert_eq!(r.message, "Built inbound");
    }

    #[test]
    fn plain_line_and_sensor_zone() {
        let opts = ParseOptions {
            sensor_offset: UtcOffset(9 * 3600),
            extract_fields: true,
        };
        // Reference: 2026-11-25 in JST.
        let reference = Timestamp::from_parts(1_795_606_245, 0);
        let r = parse(
            b"Nov 25 20:30:45 web1 sshd[7]: Failed password for root from 203.0.113.5 port 1 ssh2\n",
            reference,
            None,
            &opts,
        );
        assert_eq!(r.format, Format::Plain);
        assert!(r.flags.contains(Flags::NO_PRI));
        assert_eq!(r.pri(), 13);
        assert_eq!(r.timestamp.secs(), 1_795_606_245); // 11:30:45Z
        assert_eq!(r.field("src_ip"), Some("203.0.113.5"));
    }

    #[test]
    fn hostile_inputs_do_not_panic() {
        for s in [
            &b""[..],
            b"<",
            b"<999>x",
            b"<1",
            b"<13>1 ",
            b"<13>1 2003-10-11T22:14:15Z h a p m [x a=\"\\",
            b"<13>1 - - - - - [x a  =  \"v\"]   m",
            b"Jan  1 00:00:00",
            b"\xff\xfe<13>",
        ] {
            let _ = p(s);
        }
        let r = p(b"srv sshd[13709]: error: PAM: failure");
        assert!(r.flags.contains(Flags::NO_TIMESTAMP));
        assert_eq!(r.hostname.as_deref(), Some("srv"));
        assert_eq!(r.app_name.as_deref(), Some("sshd"));
        assert_eq!(r.message, "error: PAM: failure");
        let r = p(b"just some words: here");
        assert_eq!((r.hostname, r.app_name), (None, None));
        let r = p(b"<999>x");
        assert!(r.flags.contains(Flags::BAD_PRI));
        assert_eq!(r.message, "<999>x");
    }
}
