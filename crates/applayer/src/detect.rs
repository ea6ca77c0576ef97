//! Protocol detection by content: the first bytes of a direction.

use crate::{AppConfig, AppProto, Direction};

pub(crate) enum Probe {
    /// The protocol, and whether the bytes belong to the other direction
    /// (a response seen on the to_server side: the capture missed the start).
    Match(AppProto, bool),
    NeedMore,
    NoMatch,
}

/// Methods that identify an HTTP request (RFC 9110, WebDAV and a few more).
pub(crate) const METHODS: &[&[u8]] = &[
    b"GET",
    b"POST",
    b"HEAD",
    b"PUT",
    b"DELETE",
    b"OPTIONS",
    b"CONNECT",
    b"TRACE",
    b"PATCH",
    b"PROPFIND",
    b"PROPPATCH",
    b"MKCOL",
    b"COPY",
    b"MOVE",
    b"LOCK",
    b"UNLOCK",
    b"SEARCH",
    b"REPORT",
    b"CHECKOUT",
    b"MERGE",
    b"MKACTIVITY",
    b"VERSION-CONTROL",
];

/// Compares a prefix: Some(true) full match, Some(false) data is a prefix of
/// `pat` (need more), None mismatch.
fn prefix(data: &[u8], pat: &[u8], nocase: bool) -> Option<bool> {
    let n = data.len().min(pat.len());
    let eq = if nocase {
        data[..n].eq_ignore_ascii_case(&pat[..n])
    } else {
        data[..n] == pat[..n]
    };
    if !eq {
        None
    } else {
        Some(data.len() >= pat.len())
    }
}

fn probe_http(data: &[u8], dir: Direction) -> Probe {
    // Leading blank lines are tolerated (libhtp skips them).
    let mut d = data;
    while let [b'\r' | b'\n', rest @ ..] = d {
        d = rest;
    }
    if d.is_empty() {
        return Probe::NeedMore;
    }
    let mut more = false;
    if dir == Direction::ToClient || d.starts_with(b"H") {
        match prefix(d, b"HTTP/", false) {
            Some(true) => return Probe::Match(AppProto::Http, dir == Direction::ToServer),
            Some(false) => more = true,
            None => {}
        }
    }
    for m in METHODS {
        let mut pat = m.to_vec();
        pat.push(b' ');
        match prefix(d, &pat, false) {
            Some(true) => return Probe::Match(AppProto::Http, dir == Direction::ToClient),
            Some(false) => more = true,
            None => {}
        }
        pat.pop();
        pat.push(b'\t');
        if prefix(d, &pat, false) == Some(true) {
            return Probe::Match(AppProto::Http, dir == Direction::ToClient);
        }
    }
    if more {
        Probe::NeedMore
    } else {
        Probe::NoMatch
    }
}

fn probe_tls(d: &[u8], dir: Direction) -> Probe {
    // Handshake record, SSLv3/TLS version, plausible length.
    match d {
        [] | [0x16] | [0x16, 0x03] => Probe::NeedMore,
        [0x16, 0x03, v, ..] if *v <= 4 => {
            if d.len() < 6 {
                return Probe::NeedMore;
            }
            let len = u16::from_be_bytes([d[3], d[4]]) as usize;
            if (4..=16384 + 2048).contains(&len) && matches!(d[5], 1 | 2) {
                // ClientHello from the server side, or ServerHello from the client.
                let rev = (d[5] == 1) != (dir == Direction::ToServer);
                Probe::Match(AppProto::Tls, rev)
            } else {
                Probe::NoMatch
            }
        }
        _ => Probe::NoMatch,
    }
}

fn probe_ssh(d: &[u8]) -> Probe {
    match prefix(d, b"SSH-", false) {
        Some(true) => Probe::Match(AppProto::Ssh, false),
        Some(false) => Probe::NeedMore,
        None => Probe::NoMatch,
    }
}

/// SMB over NetBIOS session service (TCP 139/445, any port here): a session
/// message (type 0, 17-bit length) whose data starts with an SMB1 (`\xffSMB`),
/// SMB2/3 (`\xfeSMB`) or SMB3 transform (`\xfdSMB`) header, as Suricata's
/// `rs_smb_probe_tcp`. The header's reply flag (SMB1 flags bit 0x80, SMB2
/// flags bit 0) tells which side sent it, so a midstream pickup that starts
/// with the server's response is reversed.
fn probe_smb(d: &[u8], dir: Direction) -> Probe {
    const NBSS: usize = 4;
    match d.first() {
        None => return Probe::NeedMore,
        Some(0) => {}
        Some(_) => return Probe::NoMatch,
    }
    if d.len() > 1 && d[1] & 0xfe != 0 {
        return Probe::NoMatch; // reserved NBSS flag bits
    }
    let magic = &d[NBSS.min(d.len())..d.len().min(NBSS + 4)];
    let kind = [b"\xffSMB", b"\xfeSMB", b"\xfdSMB"]
        .iter()
        .position(|m| m.starts_with(magic));
    let Some(kind) = kind else {
        return Probe::NoMatch;
    };
    // Where the reply flag is: SMB1 flags byte, SMB2 flags (little endian).
    let (at, bit) = match kind {
        0 => (NBSS + 9, 0x80),
        1 => (NBSS + 16, 0x01),
        _ => {
            return if d.len() < NBSS + 4 {
                Probe::NeedMore
            } else {
                Probe::Match(AppProto::Smb, false)
            }
        }
    };
    match d.get(at) {
        None => Probe::NeedMore,
        Some(f) => {
            let reply = f & bit != 0;
            Probe::Match(AppProto::Smb, reply == (dir == Direction::ToServer))
        }
    }
}

fn probe_dns_tcp(d: &[u8], dir: Direction) -> Probe {
    if d.len() < 2 {
        return Probe::NeedMore;
    }
    let len = u16::from_be_bytes([d[0], d[1]]) as usize;
    if len < 12 + 5 {
        return Probe::NoMatch;
    }
    if d.len() < 2 + 12 {
        return Probe::NeedMore;
    }
    let msg = &d[2..];
    let plausible = crate::dns::header_plausible(msg, dir);
    let rev = !plausible && crate::dns::header_plausible(msg, other(dir));
    if d.len() < 2 + len {
        // Header check only until the whole message is there.
        return if plausible || rev {
            Probe::NeedMore
        } else {
            Probe::NoMatch
        };
    }
    if (plausible || rev) && crate::dns::questions_ok(&msg[..len]) {
        Probe::Match(AppProto::Dns, rev)
    } else {
        Probe::NoMatch
    }
}

/// SMTP, as Suricata: a client's `EHLO `/`HELO ` (any port), or on the
/// mail ports (25, 587) the server's `220` greeting (FTP greets with the
/// same code, so a greeting alone decides only there).
fn probe_smtp(d: &[u8], dir: Direction, dport: u16) -> Probe {
    let mut more = false;
    if dir == Direction::ToServer {
        for p in [b"EHLO ", b"HELO "] {
            match prefix(d, p, true) {
                Some(true) => return Probe::Match(AppProto::Smtp, false),
                Some(false) => more = true,
                None => {}
            }
        }
    } else if matches!(dport, 25 | 587) {
        let greeting = d.len() >= 4 && d.starts_with(b"220") && matches!(d[3], b' ' | b'-');
        if greeting {
            return Probe::Match(AppProto::Smtp, false);
        }
        more = b"220 ".starts_with(d) || b"220-".starts_with(d);
    }
    if more {
        Probe::NeedMore
    } else {
        Probe::NoMatch
    }
}

pub(crate) fn probe_tcp(data: &[u8], dir: Direction, dport: u16, cfg: &AppConfig) -> Probe {
    let mut more = false;
    // DNS over TCP has no magic; it is probed by content last, where a DNS
    // header is the only plausible reading (any port).
    let results = [
        (cfg.tls, probe_tls(data, dir)),
        (cfg.ssh, probe_ssh(data)),
        (cfg.http, probe_http(data, dir)),
        (cfg.smb, probe_smb(data, dir)),
        (cfg.smtp, probe_smtp(data, dir, dport)),
        (cfg.dns, probe_dns_tcp(data, dir)),
    ];
    for (on, r) in results {
        if !on {
            continue;
        }
        match r {
            Probe::Match(p, r) => return Probe::Match(p, r),
            Probe::NeedMore => more = true,
            Probe::NoMatch => {}
        }
    }
    if more {
        Probe::NeedMore
    } else {
        Probe::NoMatch
    }
}

/// A UDP payload is DNS when it parses as one completely: on port 53 (either
/// side) a plausible header and questions suffice; elsewhere the message
/// must also be a query with opcode QUERY and exactly one question.
///
/// Returns whether it is DNS and whether the flow's first datagram was a
/// response (the query was not seen: directions are reversed).
pub(crate) fn probe_udp_dns(d: &[u8], dir: Direction, sport: u16, dport: u16) -> Option<bool> {
    if d.len() < 12 + 5 || !crate::dns::questions_ok(d) {
        return None;
    }
    // NetBIOS name service and LLMNR look like DNS but are not.
    if matches!(dport, 137 | 138 | 5355) || matches!(sport, 137 | 138 | 5355) {
        return None;
    }
    let qr = d[2] & 0x80 != 0;
    let rev = qr == (dir == Direction::ToServer);
    if dport == 53 || sport == 53 {
        return Some(rev);
    }
    let qd = u16::from_be_bytes([d[4], d[5]]);
    (!rev && crate::dns::header_plausible(d, dir) && qd == 1 && d[2] & 0x78 == 0).then_some(false)
}

pub(crate) fn other(d: Direction) -> Direction {
    match d {
        Direction::ToServer => Direction::ToClient,
        Direction::ToClient => Direction::ToServer,
    }
}
