//! Message bodies: character-set detection (UTF-8, Shift_JIS, EUC-JP, else lossy) and field
//! extraction (`key=value`, JSON objects, SSH/PAM authentication lines, web access logs).

use crate::record::Flags;
use encoding_rs::{EUC_JP, SHIFT_JIS};
use std::net::IpAddr;

/// At most this many fields are extracted from one body.
pub const MAX_FIELDS: usize = 64;
/// Values longer than this are cut (at a char boundary) when extracted.
const MAX_VALUE: usize = 1024;

/// Decodes a body to UTF-8. Valid UTF-8 is kept as is; otherwise Shift_JIS and EUC-JP are tried
/// (strictly: any invalid sequence rejects the candidate); otherwise invalid bytes become U+FFFD
/// and [`Flags::LOSSY`] is set.
pub fn decode(bytes: &[u8], flags: &mut Flags) -> String {
    if let Ok(s) = std::str::from_utf8(bytes) {
        return s.to_owned();
    }
    // EUC-JP uses 0xA1..=0xFE for both bytes (plus SS2 0x8E / SS3 0x8F); Shift_JIS lead bytes
    // 0x81..=0x9F occur only there. Try the more likely one first.
    let sjis_lead = bytes
        .iter()
        .any(|&b| (0x81..=0x9F).contains(&b) && b != 0x8E && b != 0x8F);
    let order = if sjis_lead {
        [(SHIFT_JIS, Flags::SHIFT_JIS), (EUC_JP, Flags::EUC_JP)]
    } else {
        [(EUC_JP, Flags::EUC_JP), (SHIFT_JIS, Flags::SHIFT_JIS)]
    };
    for (enc, flag) in order {
        if let Some(s) = enc.decode_without_bom_handling_and_without_replacement(bytes) {
            flags.insert(flag);
            return s.into_owned();
        }
    }
    flags.insert(Flags::LOSSY);
    String::from_utf8_lossy(bytes).into_owned()
}

fn cut(s: &str) -> &str {
    if s.len() <= MAX_VALUE {
        return s;
    }
    let mut n = MAX_VALUE;
    while !s.is_char_boundary(n) {
        n -= 1;
    }
    &s[..n]
}

fn push(fields: &mut Vec<(String, String)>, flags: &mut Flags, k: &str, v: &str) {
    if fields.iter().any(|(kk, _)| kk == k) {
        return;
    }
    if fields.len() >= MAX_FIELDS {
        flags.insert(Flags::FIELDS_CAPPED);
        return;
    }
    fields.push((cut(k).to_owned(), cut(v).to_owned()));
}

/// Extracts fields from `msg` into `fields` (first occurrence of a name wins).
pub fn extract(msg: &str, fields: &mut Vec<(String, String)>, flags: &mut Flags) {
    let t = msg.trim_start();
    let json = t.strip_prefix("@cee:").map(str::trim_start).unwrap_or(t);
    if json.starts_with('{') {
        if let Ok(serde_json::Value::Object(map)) = serde_json::from_str(json.trim_end()) {
            flags.insert(Flags::JSON_BODY);
            let mut key = String::new();
            for (k, v) in &map {
                flatten(&mut key, k, v, fields, flags, 0);
            }
            well_known(msg, fields, flags);
            return;
        }
    }
    if kv(msg, fields, flags) > 0 {
        flags.insert(Flags::KV_BODY);
    }
    well_known(msg, fields, flags);
}

fn flatten(
    prefix: &mut String,
    k: &str,
    v: &serde_json::Value,
    fields: &mut Vec<(String, String)>,
    flags: &mut Flags,
    depth: usize,
) {
    let len = prefix.len();
    if !prefix.is_empty() {
        prefix.push('.');
    }
    prefix.push_str(k);
    match v {
        serde_json::Value::Object(m) if depth < 8 => {
            for (k2, v2) in m {
                flatten(prefix, k2, v2, fields, flags, depth + 1);
            }
        }
        serde_json::Value::String(s) => push(fields, flags, prefix, s),
        serde_json::Value::Null => push(fields, flags, prefix, ""),
        other => push(fields, flags, prefix, &other.to_string()),
    }
    prefix.truncate(len);
}

fn is_key_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-')
}

/// `key=value` / `key="quoted value"` pairs; returns how many were found.
fn kv(msg: &str, fields: &mut Vec<(String, String)>, flags: &mut Flags) -> usize {
    let b = msg.as_bytes();
    let mut found = 0;
    let mut from = 0;
    while let Some(rel) = memchr::memchr(b'=', &b[from..]) {
        let eq = from + rel;
        let mut ks = eq;
        while ks > 0 && is_key_byte(b[ks - 1]) {
            ks -= 1;
        }
        let key_ok = ks < eq && (ks == 0 || matches!(b[ks - 1], b' ' | b'\t' | b',' | b';' | b'['));
        let mut end = eq + 1;
        let value;
        if b.get(end) == Some(&b'"') {
            let vs = end + 1;
            end = vs;
            while end < b.len() && b[end] != b'"' {
                if b[end] == b'\\' {
                    end += 1;
                }
                end += 1;
            }
            let ve = end.min(b.len());
            value = msg.get(vs..ve).unwrap_or("");
            end = (ve + 1).min(b.len());
        } else {
            while end < b.len() && !matches!(b[end], b' ' | b'\t' | b',' | b';') {
                end += 1;
            }
            value = msg.get(eq + 1..end).unwrap_or("");
        }
        if key_ok {
            if let Some(k) = msg.get(ks..eq) {
                push(fields, flags, k, value);
                found += 1;
            }
        }
        from = end.max(eq + 1);
        if from >= b.len() {
            break;
        }
    }
    found
}

/// The token after `marker` (up to whitespace), with trailing punctuation removed.
/// The last occurrence is used: text before it may be attacker-controlled (a user name
/// containing ` from 10.0.0.1`), the daemon's own suffix is not.
fn token_after<'a>(msg: &'a str, marker: &str) -> Option<&'a str> {
    let i = memchr::memmem::rfind(msg.as_bytes(), marker.as_bytes())? + marker.len();
    token_at(msg, i)
}

/// [`token_after`] with a prebuilt searcher.
fn token_after_rev<'a>(msg: &'a str, marker: &memchr::memmem::FinderRev<'_>) -> Option<&'a str> {
    let i = marker.rfind(msg.as_bytes())? + marker.needle().len();
    token_at(msg, i)
}

/// The token starting at byte `i` (up to whitespace), with trailing punctuation removed.
fn token_at(msg: &str, i: usize) -> Option<&str> {
    let rest = msg.get(i..)?;
    let end = rest.find(|c: char| c.is_whitespace()).unwrap_or(rest.len());
    let t = rest[..end].trim_end_matches([',', ';', ':', '.', ')', '\'', '"', ']']);
    let t = t.trim_start_matches(['[', '(', '\'', '"']);
    (!t.is_empty()).then_some(t)
}

fn looks_like_host(t: &str) -> bool {
    t.len() <= 255
        && t.bytes().any(|b| b.is_ascii_alphanumeric())
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'_' | b'%'))
}

/// sshd: the first ` from HOST port N[ sshN]` that is followed by the end of the message or
/// `: ` (sshd's own suffix). Text before it (user names) and after it (auth info) can be
/// attacker-controlled and may itself contain ` from X port N`.
fn sshd_from(msg: &str) -> Option<&str> {
    static FROM: std::sync::OnceLock<memchr::memmem::Finder<'static>> = std::sync::OnceLock::new();
    let from = FROM.get_or_init(|| memchr::memmem::Finder::new(" from ").into_owned());
    for i in from.find_iter(msg.as_bytes()) {
        let rest = &msg[i + 6..];
        let end = rest.find(' ').unwrap_or(rest.len());
        let Some(p) = rest[end..].strip_prefix(" port ") else {
            continue;
        };
        let digits = p.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            continue;
        }
        let mut tail = &p[digits..];
        if let Some(t) = tail.strip_prefix(" ssh") {
            tail = t.trim_start_matches(|c: char| c.is_ascii_digit());
        }
        if tail.is_empty() || tail.starts_with(": ") || tail.starts_with(" [preauth]") {
            return Some(&rest[..end]);
        }
    }
    None
}

/// Like [`token_after`] but at the first occurrence.
fn first_token_after<'a>(msg: &'a str, marker: &str) -> Option<&'a str> {
    let i = memchr::memmem::find(msg.as_bytes(), marker.as_bytes())?;
    let end = msg[i..].find(']').map_or(msg.len(), |e| i + e + 1);
    token_after(msg.get(i..end)?, marker)
}

/// `... 192.0.2.7 port 49941`: an address right before the first ` port ` (at `p`).
fn ip_before_port(msg: &str, p: usize) -> Option<&str> {
    let before = msg[..p].rsplit(' ').next()?;
    before.parse::<IpAddr>().is_ok().then_some(before)
}

/// Sets `src_host` (as written) and `src_ip` (when it is an address); false if `host` does not
/// look like a host.
fn set_src(host: &str, fields: &mut Vec<(String, String)>, flags: &mut Flags) -> bool {
    // `name@address` (tcpd's `refused connect from user@host`).
    let host = host.rsplit('@').next().unwrap_or(host);
    let h = host.strip_prefix("::ffff:").unwrap_or(host);
    let h = h.trim_start_matches('/');
    let h = h
        .strip_prefix('[')
        .and_then(|x| x.strip_suffix(']'))
        .unwrap_or(h);
    if !looks_like_host(h) {
        return false;
    }
    push(fields, flags, "src_host", h);
    if h.parse::<IpAddr>().is_ok() {
        push(fields, flags, "src_ip", h);
    }
    true
}

/// Fields the Sigma rules rely on: `src_host`/`src_ip`, `user`, and for web access logs
/// `http.method`, `http.uri`, `http.status`, `http.user_agent`, `http.referer`, `http.bytes`.
fn well_known(msg: &str, fields: &mut Vec<(String, String)>, flags: &mut Flags) {
    if let Some(clf) = parse_clf(msg) {
        set_src(clf.client, fields, flags);
        if clf.user != "-" {
            push(fields, flags, "user", clf.user);
        }
        push(fields, flags, "http.method", clf.method);
        push(fields, flags, "http.uri", clf.uri);
        push(fields, flags, "http.status", clf.status);
        push(fields, flags, "http.bytes", clf.bytes);
        if let Some(r) = clf.referer {
            push(fields, flags, "http.referer", r);
        }
        if let Some(ua) = clf.user_agent {
            push(fields, flags, "http.user_agent", ua);
        }
        return;
    }
    let m = Markers::scan(msg);
    if !m.any {
        return;
    }
    let has = |k: &str, fields: &Vec<(String, String)>| fields.iter().any(|(kk, _)| kk == k);
    if !has("src_host", fields) {
        // In this order: sshd's own `from HOST port N`, Apache's `[client X]`, the last
        // occurrence of each marker, an address before ` port `.
        let last =
            |at: Option<usize>, marker: &str| at.and_then(|i| token_at(msg, i + marker.len()));
        let cands = std::iter::once_with(|| m.from.and_then(|_| sshd_from(msg)))
            .chain(std::iter::once_with(|| {
                m.client_bracket
                    .and_then(|_| first_token_after(msg, "[client "))
            }))
            .chain(std::iter::once_with(|| last(m.client_colon, "client: ")))
            .chain(std::iter::once_with(|| last(m.rhost, "rhost=")))
            .chain(std::iter::once_with(|| last(m.from, " from ")))
            .chain(std::iter::once_with(|| last(m.from_upper, " FROM ")))
            .chain(std::iter::once_with(|| last(m.src_upper, "SRC=")))
            .chain(std::iter::once_with(|| last(m.src, "src=")))
            .chain(std::iter::once_with(|| last(m.srcip, "srcip=")))
            .chain(std::iter::once_with(|| last(m.rip, "rip=")))
            .chain(std::iter::once_with(|| {
                m.port.and_then(|p| ip_before_port(msg, p))
            }));
        for c in cands.flatten() {
            let h = match c.rsplit_once(':') {
                Some((a, p))
                    if !a.contains(':')
                        && !p.is_empty()
                        && p.bytes().all(|b| b.is_ascii_digit()) =>
                {
                    a
                }
                _ => c,
            };
            if set_src(h, fields, flags) {
                break;
            }
        }
    }
    if !has("user", fields) {
        static USER: std::sync::OnceLock<[memchr::memmem::FinderRev<'static>; 3]> =
            std::sync::OnceLock::new();
        let [invalid, invalid_upper, for_] = USER.get_or_init(|| {
            [
                memchr::memmem::FinderRev::new("invalid user ").into_owned(),
                memchr::memmem::FinderRev::new("Invalid user ").into_owned(),
                memchr::memmem::FinderRev::new(" for ").into_owned(),
            ]
        });
        let u = m
            .user
            .and_then(|_| {
                token_after_rev(msg, invalid).or_else(|| token_after_rev(msg, invalid_upper))
            })
            .or_else(|| {
                let f = m.from?;
                m.for_?;
                token_after_rev(&msg[..f], for_)
            })
            .or_else(|| m.user.and_then(|i| token_at(msg, i + " user ".len())));
        if let Some(u) = u {
            push(fields, flags, "user", u);
        }
    }
}

/// Where the markers of [`well_known`] occur, found in one pass over the spaces, one over the
/// `=` signs and one search for `client` (instead of one search per marker).
#[derive(Debug, Default)]
struct Markers {
    /// Any marker at all.
    any: bool,
    /// Last ` from `, ` FROM `, `client: `, `rhost=`, `SRC=`, `src=`, `srcip=`, `rip=`.
    from: Option<usize>,
    from_upper: Option<usize>,
    client_colon: Option<usize>,
    rhost: Option<usize>,
    src_upper: Option<usize>,
    src: Option<usize>,
    srcip: Option<usize>,
    rip: Option<usize>,
    /// First `[client `, first ` port `.
    client_bracket: Option<usize>,
    port: Option<usize>,
    /// Last ` user `; some ` for `.
    user: Option<usize>,
    for_: Option<usize>,
}

impl Markers {
    fn scan(msg: &str) -> Markers {
        let b = msg.as_bytes();
        let mut m = Markers::default();
        for p in memchr::memchr_iter(b' ', b) {
            let rest = &b[p + 1..];
            match rest.first() {
                Some(b'f') if rest.starts_with(b"from ") => m.from = Some(p),
                Some(b'f') if rest.starts_with(b"for ") => m.for_ = Some(p),
                Some(b'F') if rest.starts_with(b"FROM ") => m.from_upper = Some(p),
                Some(b'p') if rest.starts_with(b"port ") => {
                    m.port.get_or_insert(p);
                }
                Some(b'u') if rest.starts_with(b"user ") => m.user = Some(p),
                _ => {}
            }
        }
        for q in memchr::memchr_iter(b'=', b) {
            let key = &b[..q];
            if key.ends_with(b"rhost") {
                m.rhost = Some(q - 5);
            }
            if key.ends_with(b"SRC") {
                m.src_upper = Some(q - 3);
            }
            if key.ends_with(b"src") {
                m.src = Some(q - 3);
            }
            if key.ends_with(b"srcip") {
                m.srcip = Some(q - 5);
            }
            if key.ends_with(b"rip") {
                m.rip = Some(q - 3);
            }
        }
        static CLIENT: std::sync::OnceLock<memchr::memmem::Finder<'static>> =
            std::sync::OnceLock::new();
        let client = CLIENT.get_or_init(|| memchr::memmem::Finder::new("client").into_owned());
        for p in client.find_iter(b) {
            if p > 0 && b[p - 1] == b'[' && b.get(p + 6) == Some(&b' ') {
                m.client_bracket.get_or_insert(p - 1);
            }
            if b[p + 6..].starts_with(b": ") {
                m.client_colon = Some(p);
            }
        }
        m.any = [
            m.from,
            m.from_upper,
            m.client_colon,
            m.rhost,
            m.src_upper,
            m.src,
            m.srcip,
            m.rip,
            m.client_bracket,
            m.port,
            m.user,
            m.for_,
        ]
        .iter()
        .any(Option::is_some);
        m
    }
}

/// A parsed Common/Combined Log Format line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Clf<'a> {
    /// Client address (first token).
    pub client: &'a str,
    /// Authenticated user (`-` if none).
    pub user: &'a str,
    /// `10/Oct/2000:13:55:36 -0700`.
    pub time: &'a str,
    /// Request method.
    pub method: &'a str,
    /// Request target.
    pub uri: &'a str,
    /// Status code.
    pub status: &'a str,
    /// Response size.
    pub bytes: &'a str,
    /// Referer (combined format).
    pub referer: Option<&'a str>,
    /// User agent (combined format).
    pub user_agent: Option<&'a str>,
}

/// Parses `host ident user [time] "METHOD uri PROTO" status bytes ["referer" "agent"]`.
pub fn parse_clf(line: &str) -> Option<Clf<'_>> {
    let line = line.trim_start();
    let (client, rest) = line.split_once(' ')?;
    if !looks_like_host(client) {
        return None;
    }
    let (_ident, rest) = rest.split_once(' ')?;
    let (user, rest) = rest.split_once(' ')?;
    let rest = rest.strip_prefix('[')?;
    let (time, rest) = rest.split_once("] \"")?;
    let (req, rest) = rest.split_once("\" ")?;
    let mut rp = req.splitn(3, ' ');
    let method = rp.next()?;
    let uri = rp.next().unwrap_or("");
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase() || b == b'-') {
        return None;
    }
    let mut it = rest.splitn(3, ' ');
    let status = it.next()?;
    if status.len() != 3 || !status.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let bytes = it.next().unwrap_or("-");
    let (referer, user_agent) = match it.next() {
        Some(tail) => {
            let mut q = tail.split('"');
            q.next();
            let r = q.next();
            q.next();
            (r, q.next())
        }
        None => (None, None),
    };
    Some(Clf {
        client,
        user,
        time,
        method,
        uri,
        status,
        bytes,
        referer,
        user_agent,
    })
}

/// `10/Oct/2000:13:55:36 -0700` → (epoch seconds UTC).
pub(crate) fn clf_time(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let d = s.get(0..2)?.parse::<u32>().ok()?;
    let mon = crate::time::parse_bsd(format!("{} 01 00:00:00", s.get(3..6)?).as_bytes())?
        .0
        .month;
    let y = s.get(7..11)?.parse::<i64>().ok()?;
    if b.get(2) != Some(&b'/') || b.get(6) != Some(&b'/') || b.get(11) != Some(&b':') {
        return None;
    }
    let h = s.get(12..14)?.parse::<i64>().ok()?;
    let mi = s.get(15..17)?.parse::<i64>().ok()?;
    let se = s.get(18..20)?.parse::<i64>().ok()?;
    let z = s.get(21..26)?;
    let sign = match z.as_bytes().first() {
        Some(b'-') => -1,
        Some(b'+') => 1,
        _ => return None,
    };
    let zh = z.get(1..3)?.parse::<i64>().ok()?;
    let zm = z.get(3..5)?.parse::<i64>().ok()?;
    if !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 || !(1970..=9999).contains(&y) {
        return None;
    }
    let days = crate::time::days_from_civil(y, mon, d);
    Some(days * 86_400 + h * 3600 + mi * 60 + se - sign * (zh * 3600 + zm * 60))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(msg: &str) -> (Vec<(String, String)>, Flags) {
        let mut f = Vec::new();
        let mut fl = Flags::default();
        extract(msg, &mut f, &mut fl);
        (f, fl)
    }
    fn get<'a>(f: &'a [(String, String)], k: &str) -> Option<&'a str> {
        f.iter().find(|(a, _)| a == k).map(|(_, v)| v.as_str())
    }

    #[test]
    fn shift_jis_and_euc_jp_are_transcoded() {
        let text = "ログイン失敗 ユーザー=管理者";
        let (sjis, _, _) = SHIFT_JIS.encode(text);
        let mut fl = Flags::default();
        assert_eq!(decode(&sjis, &mut fl), text);
        assert!(fl.contains(Flags::SHIFT_JIS));
        let (euc, _, _) = EUC_JP.encode(text);
        let mut fl = Flags::default();
        assert_eq!(decode(&euc, &mut fl), text);
        assert!(fl.contains(Flags::EUC_JP));
        let mut fl = Flags::default();
        let s = decode(b"ok \xff\xfe\x80 end", &mut fl);
        assert!(fl.contains(Flags::LOSSY));
        assert!(s.starts_with("ok ") && s.ends_with(" end"));
    }

    #[test]
    fn kv_and_quoted_values() {
        let (f, fl) = fields(r#"date=2026-11-25 srcip=203.0.113.9 action="deny all" dstport=22"#);
        assert!(fl.contains(Flags::KV_BODY));
        assert_eq!(get(&f, "action"), Some("deny all"));
        assert_eq!(get(&f, "dstport"), Some("22"));
        assert_eq!(get(&f, "src_ip"), Some("203.0.113.9"));
    }

    #[test]
    fn json_body_is_flattened() {
        let (f, fl) = fields(r#"{"user":{"name":"taro"},"src":"10.0.0.1","n":3}"#);
        assert!(fl.contains(Flags::JSON_BODY));
        assert_eq!(get(&f, "user.name"), Some("taro"));
        assert_eq!(get(&f, "n"), Some("3"));
    }

    #[test]
    fn sshd_failures_name_the_source() {
        let (f, _) =
            fields("Failed password for invalid user admin from 198.51.100.7 port 4242 ssh2");
        assert_eq!(get(&f, "src_ip"), Some("198.51.100.7"));
        assert_eq!(get(&f, "user"), Some("admin"));
        let (f, _) = fields("Failed password for invalid user test from 10.10.1.2 port 5 ssh2 from 127.0.0.1 port 58946 ssh2");
        assert_eq!(get(&f, "src_ip"), Some("127.0.0.1"));
        let (f, _) = fields("Failed password for invalid user test from 127.0.0.1 port 58946 ssh2: from 10.10.1.2 port 5 ssh2");
        assert_eq!(get(&f, "src_ip"), Some("127.0.0.1"));
        let (f, _) = fields("Failed password for root from aaaa:bbbb:cccc:1234::1:1 port 1 ssh2");
        assert_eq!(get(&f, "src_ip"), Some("aaaa:bbbb:cccc:1234::1:1"));
        assert_eq!(get(&f, "user"), Some("root"));
    }

    #[test]
    fn access_log() {
        let l = r#"192.0.2.4 - bob [10/Oct/2000:13:55:36 -0700] "GET /a?b=1 HTTP/1.0" 404 2326 "-" "curl/8""#;
        let (f, _) = fields(l);
        assert_eq!(get(&f, "src_ip"), Some("192.0.2.4"));
        assert_eq!(get(&f, "http.uri"), Some("/a?b=1"));
        assert_eq!(get(&f, "http.status"), Some("404"));
        assert_eq!(get(&f, "http.user_agent"), Some("curl/8"));
        assert_eq!(clf_time("10/Oct/2000:13:55:36 -0700"), Some(971_211_336));
        assert_eq!(clf_time("10/Oct/2000:13:55"), None);
    }

    #[test]
    fn field_cap_holds() {
        let msg: String = (0..500).map(|i| format!("k{i}=v ")).collect();
        let (f, fl) = fields(&msg);
        assert_eq!(f.len(), MAX_FIELDS);
        assert!(fl.contains(Flags::FIELDS_CAPPED));
    }
}
