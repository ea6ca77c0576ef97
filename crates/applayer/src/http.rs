//! HTTP/1.x over a reassembled stream, both directions: pipelining,
//! Content-Length and chunked bodies, gzip/deflate within a bound, header
//! folding, lenient request lines, URI normalization, gap recovery.

use crate::files::{FileState, FileTrack};
use crate::util::{js, trim};
use crate::{di, AppConfig, AppProto, Buffer, Direction, Out, Transaction};
use serde_json::{Map, Value};
use std::collections::VecDeque;
use std::io::Write;

const CS: Direction = Direction::ToServer;
const SC: Direction = Direction::ToClient;
/// Decoded bytes one write to a decoder may produce while a file is
/// hashed; more (only a compression bomb does that) truncates the file.
const DECODE_PER_WRITE: usize = 1 << 20;

/// Keeps at most `cap` bytes; accepts (and drops) the rest.
struct Capped {
    buf: Vec<u8>,
    cap: usize,
    full: bool,
}

impl Write for Capped {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        let room = self.cap.saturating_sub(self.buf.len());
        if b.len() > room {
            self.full = true;
        }
        self.buf.extend_from_slice(&b[..room.min(b.len())]);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

enum Decoder {
    Gzip(flate2::write::GzDecoder<Capped>),
    Zlib(flate2::write::ZlibDecoder<Capped>),
    Deflate(flate2::write::DeflateDecoder<Capped>),
    /// `deflate` before the first byte says zlib or raw.
    DeflateUnknown(usize),
    Failed,
}

impl Decoder {
    fn sink(&mut self) -> Option<&mut Capped> {
        match self {
            Decoder::Gzip(d) => Some(d.get_mut()),
            Decoder::Zlib(d) => Some(d.get_mut()),
            Decoder::Deflate(d) => Some(d.get_mut()),
            _ => None,
        }
    }
}

#[derive(Default)]
struct Msg {
    /// Start line without CRLF.
    line: Vec<u8>,
    /// Method / protocol of a response.
    a: Vec<u8>,
    /// URI / status code.
    b: Vec<u8>,
    /// Protocol / status message.
    c: Vec<u8>,
    /// Merged headers, in first-seen order.
    headers: Vec<(Vec<u8>, Vec<u8>)>,
    raw_headers: Vec<u8>,
    header_lines: usize,
    body: Vec<u8>,
    body_len: u64,
    body_trunc: bool,
    /// The body as a file (hashed whole, decoded), from its first byte.
    file: Option<FileTrack>,
    /// How the file ends when not whole (a gap, a failed decoding).
    file_state: Option<FileState>,
    /// Decoded bytes given to the file (bounded by the decompression limit).
    file_bytes: u64,
}

impl Msg {
    fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| v.as_slice())
    }
    fn mem(&self) -> usize {
        self.line.capacity()
            + self.a.capacity()
            + self.b.capacity()
            + self.c.capacity()
            + self.raw_headers.capacity()
            + self.body.capacity()
            + self.file.as_ref().map_or(0, FileTrack::mem_bytes)
            + self
                .headers
                .iter()
                .map(|(n, v)| n.capacity() + v.capacity() + 48)
                .sum::<usize>()
    }
}

struct HttpTx {
    id: u64,
    /// Files of its messages that ended, output after the transaction.
    files: Vec<crate::files::FileInfo>,
    req: Option<Box<Msg>>,
    resp: Option<Box<Msg>>,
    req_done: bool,
    resp_done: bool,
    sent_req: bool,
    http09: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Chunk {
    Size,
    Data(u64),
    DataEnd,
    Trailer,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Phase {
    Start,
    Headers,
    Len(u64),
    Chunked(Chunk),
    Close,
    /// After a gap: skip to the next line that is a start line.
    Resync,
    /// Tunnel (CONNECT / 101 Switching Protocols) or hopeless: ignore.
    Dead,
}

struct Side {
    phase: Phase,
    line: Vec<u8>,
    line_cut: bool,
    /// Transaction this side is filling.
    tx: Option<u64>,
    dec: Option<Decoder>,
}

impl Side {
    fn new() -> Self {
        Side {
            phase: Phase::Start,
            line: Vec::new(),
            line_cut: false,
            tx: None,
            dec: None,
        }
    }
}

pub(crate) struct HttpState {
    cfg: AppConfig,
    sides: [Side; 2],
    txs: VecDeque<HttpTx>,
}

fn is_method_line(l: &[u8]) -> bool {
    let tok = l
        .iter()
        .take_while(|c| c.is_ascii_alphabetic() || **c == b'-')
        .count();
    tok > 0 && tok <= 20 && matches!(l.get(tok), Some(b' ' | b'\t'))
}

fn eq_ci(a: &[u8], b: &str) -> bool {
    a.eq_ignore_ascii_case(b.as_bytes())
}

fn hexval(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

fn pct_decode(s: &[u8]) -> Vec<u8> {
    let mut o = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'%' && i + 2 < s.len() {
            if let (Some(h), Some(l)) = (hexval(s[i + 1]), hexval(s[i + 2])) {
                o.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        o.push(s[i]);
        i += 1;
    }
    o
}

/// RFC 3986 5.2.4 remove_dot_segments.
fn remove_dots(p: &[u8]) -> Vec<u8> {
    let mut segs: Vec<&[u8]> = Vec::new();
    let absolute = p.first() == Some(&b'/');
    let parts: Vec<&[u8]> = p.split(|c| *c == b'/').collect();
    let n = parts.len();
    for (i, s) in parts.iter().enumerate() {
        let last = i + 1 == n;
        match *s {
            b"." => {
                if last {
                    segs.push(b"");
                }
            }
            b".." => {
                if segs.len() > usize::from(absolute) {
                    segs.pop();
                }
                if last {
                    segs.push(b"");
                }
            }
            _ => segs.push(s),
        }
    }
    let mut o = Vec::with_capacity(p.len());
    for (i, s) in segs.iter().enumerate() {
        if i > 0 {
            o.push(b'/');
        }
        o.extend_from_slice(s);
    }
    if absolute && o.first() != Some(&b'/') {
        o.insert(0, b'/');
    }
    o
}

/// Splits an absolute-form target into (authority, rest).
fn split_absolute(raw: &[u8]) -> Option<(&[u8], &[u8])> {
    let i = raw.windows(3).position(|w| w == b"://")?;
    let scheme = &raw[..i];
    if scheme.is_empty()
        || !scheme
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || b"+-.".contains(c))
    {
        return None;
    }
    let rest = &raw[i + 3..];
    let end = rest
        .iter()
        .position(|c| matches!(c, b'/' | b'?' | b'#'))
        .unwrap_or(rest.len());
    Some((&rest[..end], &rest[end..]))
}

/// Suricata's `http.uri`: path and query, percent-decoded, dot segments
/// removed; scheme and authority of an absolute URI dropped.
pub(crate) fn normalize_uri(raw: &[u8]) -> Vec<u8> {
    let rel = match split_absolute(raw) {
        Some((_, b"")) => &b"/"[..],
        Some((_, rest)) => rest,
        None => raw,
    };
    let (path, query) = match rel.iter().position(|c| *c == b'?') {
        Some(q) => (&rel[..q], Some(&rel[q + 1..])),
        None => (rel, None),
    };
    let mut o = remove_dots(&pct_decode(path));
    if let Some(q) = query {
        o.push(b'?');
        o.extend_from_slice(&pct_decode(q));
    }
    o
}

/// Host lowercased, without port and trailing dot; and the port if any.
pub(crate) fn normalize_host(h: &[u8]) -> (Vec<u8>, Option<u16>) {
    let h = trim(h);
    let h = match h.iter().rposition(|c| *c == b'@') {
        Some(i) => &h[i + 1..],
        None => h,
    };
    let (host, port) = if h.first() == Some(&b'[') {
        match h.iter().position(|c| *c == b']') {
            Some(e) => {
                let port = h.get(e + 1..).and_then(|r| r.strip_prefix(b":"));
                (&h[..=e], port)
            }
            None => (h, None),
        }
    } else {
        match h.iter().position(|c| *c == b':') {
            Some(i) => (&h[..i], Some(&h[i + 1..])),
            None => (h, None),
        }
    };
    let mut host = host.to_ascii_lowercase();
    while host.last() == Some(&b'.') {
        host.pop();
    }
    let port = port
        .and_then(|p| std::str::from_utf8(p).ok())
        .and_then(|p| p.parse::<u16>().ok());
    (host, port)
}

impl HttpState {
    pub(crate) fn new(cfg: AppConfig) -> Self {
        HttpState {
            cfg,
            sides: [Side::new(), Side::new()],
            txs: VecDeque::new(),
        }
    }

    pub(crate) fn mem_bytes(&self) -> usize {
        self.sides.iter().map(|s| s.line.capacity()).sum::<usize>()
            + self
                .txs
                .iter()
                .map(|t| {
                    64 + t.req.as_ref().map_or(0, |m| m.mem())
                        + t.resp.as_ref().map_or(0, |m| m.mem())
                })
                .sum::<usize>()
    }

    fn tx_mut(&mut self, id: Option<u64>) -> Option<&mut HttpTx> {
        let id = id?;
        self.txs.iter_mut().find(|t| t.id == id)
    }

    fn msg_mut(&mut self, dir: Direction) -> Option<&mut Msg> {
        let id = self.sides[di(dir)].tx;
        let t = self.tx_mut(id)?;
        match dir {
            CS => t.req.as_deref_mut(),
            SC => t.resp.as_deref_mut(),
        }
    }

    pub(crate) fn input(&mut self, dir: Direction, data: &[u8], out: &mut Out<'_>) {
        let d = di(dir);
        let mut pos = 0usize;
        let mut guard = 0usize;
        while pos < data.len() {
            guard += 1;
            if guard > data.len() * 2 + 16 {
                break; // cannot happen: every step consumes or changes phase
            }
            match self.sides[d].phase {
                Phase::Dead => return,
                Phase::Start
                | Phase::Headers
                | Phase::Resync
                | Phase::Chunked(Chunk::Size)
                | Phase::Chunked(Chunk::DataEnd)
                | Phase::Chunked(Chunk::Trailer) => {
                    let Some(line) = self.take_line(dir, data, &mut pos, out) else {
                        return;
                    };
                    self.on_line(dir, &line, out);
                }
                Phase::Len(rem) => {
                    let n = (rem.min((data.len() - pos) as u64)) as usize;
                    self.body(dir, &data[pos..pos + n], out);
                    pos += n;
                    let rem = rem - n as u64;
                    if rem == 0 {
                        self.msg_done(dir, out);
                    } else {
                        self.sides[d].phase = Phase::Len(rem);
                    }
                }
                Phase::Chunked(Chunk::Data(rem)) => {
                    let n = (rem.min((data.len() - pos) as u64)) as usize;
                    self.body(dir, &data[pos..pos + n], out);
                    pos += n;
                    let rem = rem - n as u64;
                    self.sides[d].phase = if rem == 0 {
                        Phase::Chunked(Chunk::DataEnd)
                    } else {
                        Phase::Chunked(Chunk::Data(rem))
                    };
                }
                Phase::Close => {
                    self.body(dir, &data[pos..], out);
                    pos = data.len();
                }
            }
        }
    }

    /// Next complete line (with its terminator) or None when more data is
    /// needed; lines longer than the field limit are cut.
    fn take_line(
        &mut self,
        dir: Direction,
        data: &[u8],
        pos: &mut usize,
        out: &mut Out<'_>,
    ) -> Option<Vec<u8>> {
        let limit = self.cfg.http_field_limit.max(64);
        let s = &mut self.sides[di(dir)];
        let rest = &data[*pos..];
        let (chunk, done) = match rest.iter().position(|c| *c == b'\n') {
            Some(i) => (&rest[..=i], true),
            None => (rest, false),
        };
        *pos += chunk.len();
        let room = limit.saturating_sub(s.line.len());
        if chunk.len() > room && !s.line_cut {
            s.line_cut = true;
            let name = if dir == CS {
                "http.request_field_too_long"
            } else {
                "http.response_field_too_long"
            };
            let id = s.tx;
            out.event(name, dir, id);
        }
        let s = &mut self.sides[di(dir)];
        if done {
            let keep = chunk.len().min(room);
            s.line.extend_from_slice(&chunk[..keep]);
            if keep < chunk.len() {
                s.line.push(b'\n');
            }
            s.line_cut = false;
            Some(std::mem::take(&mut s.line))
        } else {
            s.line.extend_from_slice(&chunk[..chunk.len().min(room)]);
            None
        }
    }

    fn on_line(&mut self, dir: Direction, raw: &[u8], out: &mut Out<'_>) {
        let d = di(dir);
        let line = raw
            .strip_suffix(b"\r\n")
            .or_else(|| raw.strip_suffix(b"\n"))
            .unwrap_or(raw);
        match self.sides[d].phase {
            Phase::Resync => {
                // Only a line that is unmistakably a start line ends the
                // resync: a known method and an HTTP/x.y protocol.
                let ok = if dir == CS {
                    is_method_line(line)
                        && crate::detect::METHODS
                            .iter()
                            .any(|m| line.starts_with(m) && matches!(line.get(m.len()), Some(b' ')))
                        && line
                            .rsplit(|c| *c == b' ')
                            .next()
                            .is_some_and(|p| p.starts_with(b"HTTP/"))
                } else {
                    line.starts_with(b"HTTP/")
                };
                if ok {
                    self.sides[d].phase = Phase::Start;
                    self.start_line(dir, line, out);
                }
            }
            Phase::Start => {
                if trim(line).is_empty() {
                    return; // blank lines between messages are tolerated
                }
                self.start_line(dir, line, out);
            }
            Phase::Headers => self.header_line(dir, raw, line, out),
            Phase::Chunked(Chunk::Size) => {
                let t = trim(line);
                let digits = t.iter().take_while(|c| hexval(**c).is_some()).count();
                let ext_ok = digits < t.len() && matches!(t[digits], b';' | b' ' | b'\t');
                if digits == 0 || digits > 15 || (digits < t.len() && !ext_ok) {
                    let name = if dir == CS {
                        "http.invalid_request_chunk_len"
                    } else {
                        "http.invalid_response_chunk_len"
                    };
                    let id = self.sides[d].tx;
                    out.event(name, dir, id);
                    // Framing lost: rest of the stream is body.
                    self.sides[d].phase = if dir == SC {
                        Phase::Close
                    } else {
                        self.msg_done(dir, out);
                        Phase::Resync
                    };
                    return;
                }
                let n = t[..digits]
                    .iter()
                    .fold(0u64, |a, c| a * 16 + u64::from(hexval(*c).unwrap_or(0)));
                self.sides[d].phase = if n == 0 {
                    Phase::Chunked(Chunk::Trailer)
                } else {
                    Phase::Chunked(Chunk::Data(n))
                };
            }
            Phase::Chunked(Chunk::DataEnd) => {
                self.sides[d].phase = Phase::Chunked(Chunk::Size);
                if !trim(line).is_empty() {
                    // Missing CRLF after chunk data: treat this as the size line.
                    self.on_line(dir, raw, out);
                }
            }
            Phase::Chunked(Chunk::Trailer) if trim(line).is_empty() => {
                self.msg_done(dir, out);
            }
            _ => {}
        }
    }

    fn start_line(&mut self, dir: Direction, line: &[u8], out: &mut Out<'_>) {
        let d = di(dir);
        let mut m = Msg {
            line: line.to_vec(),
            ..Default::default()
        };
        let lead = line
            .iter()
            .take_while(|c| **c == b' ' || **c == b'\t')
            .count();
        let body = &line[lead..];
        let toks: Vec<&[u8]> = body
            .split(|c| *c == b' ' || *c == b'\t')
            .filter(|t| !t.is_empty())
            .collect();
        if dir == CS {
            let id = out.new_tx_id();
            if lead > 0 {
                out.event("http.request_line_leading_whitespace", dir, Some(id));
            }
            let mut http09 = false;
            match toks.len() {
                0 | 1 => {
                    out.event("http.request_line_invalid", dir, Some(id));
                    m.a = toks.first().map(|t| t.to_vec()).unwrap_or_default();
                }
                2 => {
                    m.a = toks[0].to_vec();
                    m.b = toks[1].to_vec();
                    http09 = true;
                }
                _ => {
                    m.a = toks[0].to_vec();
                    // A URI with spaces: everything between the method and the
                    // last token (libhtp keeps it whole).
                    let last = toks[toks.len() - 1];
                    if last.len() >= 5 && last[..5].eq_ignore_ascii_case(b"HTTP/") {
                        let s = toks[1].as_ptr() as usize - body.as_ptr() as usize;
                        let e = last.as_ptr() as usize - body.as_ptr() as usize;
                        m.b = trim(&body[s..e]).to_vec();
                        m.c = last.to_vec();
                        if toks.len() > 3 {
                            out.event("http.uri_delim_non_compliant", dir, Some(id));
                        }
                    } else {
                        m.b = toks[1].to_vec();
                        m.c = toks[2..].join(&b' ');
                        out.event("http.request_line_invalid", dir, Some(id));
                    }
                }
            }
            if !m.a.iter().all(|c| c.is_ascii_graphic()) {
                out.event("http.request_line_invalid", dir, Some(id));
            }
            // Exactly one SP after the method (libhtp's METHOD_DELIM_NON_COMPLIANT).
            let ws = body[m.a.len().min(body.len())..]
                .iter()
                .take_while(|c| **c == b' ' || **c == b'\t')
                .collect::<Vec<_>>();
            if !m.b.is_empty() && (ws.len() != 1 || *ws[0] != b' ') {
                out.event("http.method_delim_non_compliant", dir, Some(id));
            }
            self.txs.push_back(HttpTx {
                files: Vec::new(),
                id,
                req: Some(Box::new(m)),
                resp: None,
                req_done: false,
                resp_done: false,
                sent_req: false,
                http09,
            });
            self.sides[d].tx = Some(id);
            if http09 {
                self.msg_done(dir, out);
            } else {
                self.sides[d].phase = Phase::Headers;
            }
            self.bound_pending(out);
        } else {
            // Response: attach to the oldest transaction without one.
            let tx_id = match self.txs.iter().find(|t| t.resp.is_none() && !t.resp_done) {
                Some(t) => t.id,
                None => {
                    let id = out.new_tx_id();
                    out.event("http.unable_to_match_response_to_request", dir, Some(id));
                    self.txs.push_back(HttpTx {
                        files: Vec::new(),
                        id,
                        req: None,
                        resp: None,
                        req_done: true,
                        resp_done: false,
                        sent_req: true,
                        http09: false,
                    });
                    id
                }
            };
            let http09 = self.tx_mut(Some(tx_id)).is_some_and(|t| t.http09);
            if !body.starts_with(b"HTTP/")
                && !body[..body.len().min(5)].eq_ignore_ascii_case(b"HTTP/")
            {
                // Not a status line: HTTP/0.9 style body, until close.
                if !http09 {
                    out.event("http.response_invalid_protocol", dir, Some(tx_id));
                }
                m.line.clear();
                let mut raw = line.to_vec();
                raw.extend_from_slice(b"\r\n");
                m.body_len = 0;
                if let Some(t) = self.tx_mut(Some(tx_id)) {
                    t.resp = Some(Box::new(m));
                }
                self.sides[d].tx = Some(tx_id);
                self.sides[d].phase = Phase::Close;
                self.body(dir, &raw, out);
                return;
            }
            m.a = toks.first().map(|t| t.to_vec()).unwrap_or_default();
            m.b = toks.get(1).map(|t| t.to_vec()).unwrap_or_default();
            if let Some(s) = toks.get(2) {
                let off = s.as_ptr() as usize - body.as_ptr() as usize;
                m.c = trim(&body[off..]).to_vec();
            }
            if m.b.len() != 3 || !m.b.iter().all(u8::is_ascii_digit) {
                out.event("http.response_invalid_status", dir, Some(tx_id));
            }
            if let Some(t) = self.tx_mut(Some(tx_id)) {
                t.resp = Some(Box::new(m));
            }
            self.sides[d].tx = Some(tx_id);
            self.sides[d].phase = Phase::Headers;
        }
    }

    fn header_line(&mut self, dir: Direction, raw: &[u8], line: &[u8], out: &mut Out<'_>) {
        let d = di(dir);
        let id = self.sides[d].tx;
        let max_bytes = self.cfg.http_max_header_bytes;
        let max_headers = self.cfg.http_max_headers;
        let req = dir == CS;
        let Some(m) = self.msg_mut(dir) else {
            self.sides[d].phase = Phase::Resync;
            return;
        };
        let room = max_bytes.saturating_sub(m.raw_headers.len());
        m.raw_headers.extend_from_slice(&raw[..raw.len().min(room)]);
        if line.is_empty() || (line.len() == 1 && line[0] == b'\r') {
            self.headers_done(dir, out);
            return;
        }
        if matches!(line[0], b' ' | b'\t') {
            // Folded continuation of the previous header.
            match m.headers.last_mut() {
                Some((_, v)) if v.len() < max_bytes => {
                    let t = trim(line);
                    if !t.is_empty() {
                        if !v.is_empty() {
                            v.push(b' ');
                        }
                        v.extend_from_slice(&t[..t.len().min(max_bytes - v.len().min(max_bytes))]);
                    }
                }
                Some(_) => {}
                None => {
                    let n = if req {
                        "http.invalid_request_field_folding"
                    } else {
                        "http.invalid_response_field_folding"
                    };
                    out.event(n, dir, id);
                }
            }
            return;
        }
        m.header_lines += 1;
        if m.header_lines > max_headers {
            if m.header_lines == max_headers + 1 {
                let n = if req {
                    "http.request_too_many_headers"
                } else {
                    "http.response_too_many_headers"
                };
                out.event(n, dir, id);
            }
            return;
        }
        let Some(colon) = line.iter().position(|c| *c == b':') else {
            let n = if req {
                "http.request_field_missing_colon"
            } else {
                "http.response_field_missing_colon"
            };
            out.event(n, dir, id);
            return;
        };
        let rawname = &line[..colon];
        let name = trim(rawname);
        let value = trim(&line[colon + 1..]);
        if name.is_empty()
            || name.len() != rawname.len()
            || !name.iter().all(|c| c.is_ascii_graphic())
        {
            let n = if req {
                "http.request_header_invalid"
            } else {
                "http.response_header_invalid"
            };
            out.event(n, dir, id);
            if name.is_empty() {
                return;
            }
        }
        let mut dup_cl = false;
        let used: usize = m.headers.iter().map(|(n, v)| n.len() + v.len()).sum();
        if used + name.len() + value.len() > max_bytes {
            return;
        }
        match m
            .headers
            .iter_mut()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
        {
            Some((n, v)) => {
                if eq_ci(n, "content-length") {
                    dup_cl = v.as_slice() != value;
                } else {
                    v.extend_from_slice(b", ");
                    v.extend_from_slice(value);
                }
            }
            None => m.headers.push((name.to_vec(), value.to_vec())),
        }
        if dup_cl {
            let n = if req {
                "http.duplicate_content_length_field_in_request"
            } else {
                "http.duplicate_content_length_field_in_response"
            };
            out.event(n, dir, id);
        }
    }

    fn headers_done(&mut self, dir: Direction, out: &mut Out<'_>) {
        let d = di(dir);
        let id = self.sides[d].tx;
        let req = dir == CS;
        let (te, cl, ce, status, method) = {
            let Some(t) = self.tx_mut(id) else {
                return;
            };
            let method = t.req.as_ref().map(|m| m.a.clone()).unwrap_or_default();
            let Some(m) = (if req {
                t.req.as_deref()
            } else {
                t.resp.as_deref()
            }) else {
                return;
            };
            let status = if req {
                0
            } else {
                std::str::from_utf8(&m.b)
                    .ok()
                    .and_then(|s| s.parse::<u16>().ok())
                    .unwrap_or(0)
            };
            (
                m.header("transfer-encoding")
                    .map(|v| v.to_ascii_lowercase()),
                m.header("content-length").map(|v| v.to_vec()),
                m.header("content-encoding").map(|v| v.to_ascii_lowercase()),
                status,
                method,
            )
        };
        if req {
            let has_host = self
                .tx_mut(id)
                .and_then(|t| t.req.as_deref())
                .is_some_and(|m| m.header("host").is_some() || split_absolute(&m.b).is_some());
            let v11 = self
                .tx_mut(id)
                .and_then(|t| t.req.as_deref())
                .is_some_and(|m| m.c.eq_ignore_ascii_case(b"HTTP/1.1"));
            if v11 && !has_host {
                out.event("http.missing_host_header", dir, id);
            }
        }
        if !req && (100..200).contains(&status) {
            if status == 101 {
                self.msg_done(dir, out);
                self.sides[0].phase = Phase::Dead;
                self.sides[1].phase = Phase::Dead;
                return;
            }
            // Interim response: wait for the final one on this transaction.
            if let Some(t) = self.tx_mut(id) {
                t.resp = None;
            }
            self.sides[d].phase = Phase::Start;
            return;
        }
        if !req && eq_ci(&method, "CONNECT") && (200..300).contains(&status) {
            self.msg_done(dir, out);
            self.sides[0].phase = Phase::Dead;
            self.sides[1].phase = Phase::Dead;
            return;
        }
        let chunked = te
            .as_deref()
            .is_some_and(|t| t.split(|c| *c == b',').any(|p| trim(p) == b"chunked"));
        if te.is_some() && !chunked {
            let n = if req {
                "http.invalid_transfer_encoding_value_in_request"
            } else {
                "http.invalid_transfer_encoding_value_in_response"
            };
            out.event(n, dir, id);
        }
        let cl_val = cl.as_deref().map(|v| {
            let t = trim(v);
            if !t.is_empty() && t.len() <= 18 && t.iter().all(u8::is_ascii_digit) {
                std::str::from_utf8(t)
                    .ok()
                    .and_then(|s| s.parse::<u64>().ok())
            } else {
                None
            }
        });
        if let Some(None) = cl_val {
            let n = if req {
                "http.invalid_content_length_field_in_request"
            } else {
                "http.invalid_content_length_field_in_response"
            };
            out.event(n, dir, id);
        }
        let no_body = !req && (eq_ci(&method, "HEAD") || status == 204 || status == 304);
        if !req && !no_body {
            self.sides[d].dec = match ce.as_deref() {
                Some(b"gzip") | Some(b"x-gzip") => {
                    Some(Decoder::Gzip(flate2::write::GzDecoder::new(Capped {
                        buf: Vec::new(),
                        cap: DECODE_PER_WRITE,
                        full: false,
                    })))
                }
                Some(b"deflate") => Some(Decoder::DeflateUnknown(DECODE_PER_WRITE)),
                _ => None,
            };
        }
        // Every body is a file, request bodies (POST forms, PUT uploads)
        // included, as in Suricata 7.
        if !no_body && self.cfg.track_files {
            let name = self.file_name(id, req);
            let hashes = self.cfg.file_hashes;
            if let Some(m) = self.msg_mut(dir) {
                m.file = Some(FileTrack::new(name, hashes, 0));
            }
        }
        let phase = if no_body {
            None
        } else if chunked {
            Some(Phase::Chunked(Chunk::Size))
        } else if let Some(Some(n)) = cl_val {
            if n == 0 {
                None
            } else {
                Some(Phase::Len(n))
            }
        } else if req {
            None
        } else {
            Some(Phase::Close)
        };
        match phase {
            Some(p) => self.sides[d].phase = p,
            None => self.msg_done(dir, out),
        }
    }

    /// A body's file name: the response's Content-Disposition `filename`,
    /// else the request's normalized path (without query), as Suricata.
    fn file_name(&mut self, id: Option<u64>, req: bool) -> Vec<u8> {
        let Some(t) = self.tx_mut(id) else {
            return Vec::new();
        };
        if !req {
            let cd = t
                .resp
                .as_ref()
                .and_then(|m| m.header("Content-Disposition"));
            if let Some(f) = cd.and_then(|v| crate::mime::param(v, b"filename")) {
                return f.to_vec();
            }
        }
        let uri = t
            .req
            .as_ref()
            .map(|m| normalize_uri(&m.b))
            .unwrap_or_default();
        let end = uri.iter().position(|&c| c == b'?').unwrap_or(uri.len());
        uri[..end].to_vec()
    }

    fn body(&mut self, dir: Direction, data: &[u8], out: &mut Out<'_>) {
        if data.is_empty() {
            return;
        }
        let file_limit = self.cfg.file_decompress_limit;
        let d = di(dir);
        let limit = if dir == CS {
            self.cfg.http_request_body_limit
        } else {
            self.cfg.http_response_body_limit
        };
        let mut dec = self.sides[d].dec.take();
        let id = self.sides[d].tx;
        let Some(m) = self.msg_mut(dir) else {
            return;
        };
        m.body_len = m.body_len.saturating_add(data.len() as u64);
        if let Some(Decoder::DeflateUnknown(cap)) = dec {
            let sink = Capped {
                buf: Vec::new(),
                cap,
                full: false,
            };
            dec = Some(if (data[0] & 0x0F) == 8 && data[0] >> 4 <= 7 {
                Decoder::Zlib(flate2::write::ZlibDecoder::new(sink))
            } else {
                Decoder::Deflate(flate2::write::DeflateDecoder::new(sink))
            });
        }
        match &mut dec {
            None => {
                if let Some(f) = m.file.as_mut() {
                    f.append(data);
                }
                let room = limit.saturating_sub(m.body.len());
                if data.len() > room {
                    m.body_trunc = true;
                }
                m.body.extend_from_slice(&data[..room.min(data.len())]);
            }
            Some(Decoder::Failed) | Some(Decoder::DeflateUnknown(_)) => {}
            Some(dd) => {
                if !decode_body(dd, m, data, limit, file_limit) {
                    out.event("http.gzip_decompression_failed", dir, id);
                    dec = Some(Decoder::Failed);
                    if m.file.is_some() {
                        m.file_state = Some(FileState::Error);
                    }
                }
            }
        }
        self.sides[d].dec = dec;
    }

    fn msg_done(&mut self, dir: Direction, out: &mut Out<'_>) {
        let d = di(dir);
        let id = self.sides[d].tx.take();
        self.sides[d].dec = None;
        if self.sides[d].phase != Phase::Dead {
            self.sides[d].phase = Phase::Start;
        }
        if let Some(t) = self.tx_mut(id) {
            let m = if dir == CS { &mut t.req } else { &mut t.resp };
            if let Some(f) = m
                .as_deref_mut()
                .and_then(|m| finish_file(m, FileState::Closed, t.id))
            {
                t.files.push(f);
            }
        }
        if let Some(t) = self.tx_mut(id) {
            if dir == CS {
                t.req_done = true;
                if !t.resp_done && !t.sent_req {
                    t.sent_req = true;
                    out.tx(build(t, false));
                }
            } else {
                t.resp_done = true;
            }
        }
        self.flush(out);
    }

    fn flush(&mut self, out: &mut Out<'_>) {
        while let Some(t) = self.txs.front() {
            if !(t.req_done && t.resp_done) {
                break;
            }
            if let Some(t) = self.txs.pop_front() {
                emit_final(t, out);
            }
        }
    }

    fn bound_pending(&mut self, out: &mut Out<'_>) {
        while self.txs.len() > self.cfg.http_max_pending.max(1) {
            if let Some(t) = self.txs.pop_front() {
                for s in self.sides.iter_mut() {
                    if s.tx == Some(t.id) {
                        s.tx = None;
                        if s.phase != Phase::Dead {
                            s.phase = Phase::Resync;
                        }
                    }
                }
                emit_final(t, out);
            }
        }
    }

    pub(crate) fn gap(&mut self, dir: Direction, len: u64, out: &mut Out<'_>) {
        let d = di(dir);
        let id = self.sides[d].tx;
        if let Some(m) = self.msg_mut(dir).filter(|m| m.file.is_some()) {
            // Bytes of the file are missing.
            m.file_state = Some(FileState::Truncated);
        }
        match self.sides[d].phase {
            Phase::Len(rem) if len < rem => {
                self.sides[d].phase = Phase::Len(rem - len);
                self.sides[d].dec = Some(Decoder::Failed);
                if let Some(m) = self.msg_mut(dir) {
                    m.body_trunc = true;
                }
            }
            Phase::Len(rem) if len == rem => {
                self.msg_done(dir, out);
            }
            Phase::Chunked(Chunk::Data(rem)) if len < rem => {
                self.sides[d].phase = Phase::Chunked(Chunk::Data(rem - len));
                self.sides[d].dec = Some(Decoder::Failed);
            }
            Phase::Close | Phase::Dead => {
                self.sides[d].dec = Some(Decoder::Failed);
            }
            Phase::Start | Phase::Resync => {
                self.sides[d].line.clear();
                self.sides[d].phase = Phase::Resync;
            }
            _ => {
                if id.is_some() {
                    self.msg_done(dir, out);
                }
                self.sides[d].line.clear();
                self.sides[d].phase = Phase::Resync;
            }
        }
    }

    pub(crate) fn close(&mut self, out: &mut Out<'_>) {
        while let Some(t) = self.txs.pop_front() {
            emit_final(t, out);
        }
        self.sides = [Side::new(), Side::new()];
    }
}

fn set_hdr(tx: &mut Transaction, m: &Msg, dir: Direction, name: &str, b: Buffer) {
    if let Some(v) = m.header(name) {
        tx.set(b, dir, v);
    }
}

fn fill_common(tx: &mut Transaction, m: &Msg, dir: Direction) {
    // Suricata: `http.header` is `Name: value\r\n` per header without the
    // Cookie (request) / Set-Cookie (response) header; `http.start` is the
    // start line, CRLF, every header (cookies included) and a final CRLF.
    // Each buffer is written straight into the transaction's arena.
    let cookie = if dir == CS { "cookie" } else { "set-cookie" };
    let each = if dir == CS {
        Buffer::HttpRequestHeader
    } else {
        Buffer::HttpResponseHeader
    };
    for (n, v) in &m.headers {
        tx.push_with(each, dir, |o| {
            o.extend_from_slice(n);
            o.extend_from_slice(b": ");
            o.extend_from_slice(v);
        });
    }
    let header = |o: &mut Vec<u8>, n: &[u8], v: &[u8]| {
        o.extend_from_slice(n);
        o.extend_from_slice(b": ");
        o.extend_from_slice(v);
        o.extend_from_slice(b"\r\n");
    };
    if m.headers.iter().any(|(n, _)| !eq_ci(n, cookie)) {
        tx.set_with(Buffer::HttpHeader, dir, |o| {
            for (n, v) in m.headers.iter().filter(|(n, _)| !eq_ci(n, cookie)) {
                header(o, n, v);
            }
        });
    }
    if !m.headers.is_empty() {
        tx.set_with(Buffer::HttpHeaderNames, dir, |o| {
            o.extend_from_slice(b"\r\n");
            for (n, _) in &m.headers {
                o.extend_from_slice(n);
                o.extend_from_slice(b"\r\n");
            }
            o.extend_from_slice(b"\r\n");
        });
    }
    if !m.raw_headers.is_empty() {
        tx.set(Buffer::HttpHeaderRaw, dir, &m.raw_headers);
    }
    if !m.line.is_empty() {
        tx.set_with(Buffer::HttpStart, dir, |o| {
            o.extend_from_slice(&m.line);
            o.extend_from_slice(b"\r\n");
            for (n, v) in &m.headers {
                header(o, n, v);
            }
            o.extend_from_slice(b"\r\n");
        });
    }
    set_hdr(tx, m, dir, cookie, Buffer::HttpCookie);
    set_hdr(tx, m, dir, "content-type", Buffer::HttpContentType);
    set_hdr(tx, m, dir, "content-length", Buffer::HttpContentLen);
    set_hdr(tx, m, dir, "connection", Buffer::HttpConnection);
}

/// Decodes `data` through a gzip/deflate decoder into the body (up to
/// `limit`) and the body's file (up to `file_limit` decoded bytes); false
/// when the data does not decode. Decoding stops once neither wants more.
fn decode_body(dd: &mut Decoder, m: &mut Msg, data: &[u8], limit: usize, file_limit: u64) -> bool {
    let file_on = m.file.is_some() && m.file_state.is_none();
    let room = limit.saturating_sub(m.body.len());
    if room == 0 && !file_on {
        return true;
    }
    if let Some(s) = dd.sink() {
        s.full = false;
        s.cap = if file_on { DECODE_PER_WRITE } else { room };
    }
    // flush() makes the decoder hand over what it has decoded so far
    // instead of holding it until the next write.
    let r = match dd {
        Decoder::Gzip(x) => x.write_all(data).and_then(|_| x.flush()),
        Decoder::Zlib(x) => x.write_all(data).and_then(|_| x.flush()),
        Decoder::Deflate(x) => x.write_all(data).and_then(|_| x.flush()),
        _ => Ok(()),
    };
    if let Some(s) = dd.sink() {
        let buf = std::mem::take(&mut s.buf);
        if file_on {
            let budget = file_limit.saturating_sub(m.file_bytes) as usize;
            if s.full || buf.len() > budget {
                m.file_state = Some(FileState::Truncated);
            }
            let n = budget.min(buf.len());
            m.file_bytes += n as u64;
            if let Some(f) = m.file.as_mut() {
                f.append(&buf[..n]);
            }
        }
        if buf.len() > room || (s.full && !file_on) {
            m.body_trunc = true;
        }
        m.body.extend_from_slice(&buf[..room.min(buf.len())]);
    }
    r.is_ok()
}

/// The message's file, ended (`state` unless something went wrong with
/// it before); none for an empty body.
fn finish_file(m: &mut Msg, state: FileState, tx_id: u64) -> Option<crate::files::FileInfo> {
    let f = m.file.take()?;
    let state = m.file_state.unwrap_or(state);
    let (info, _) = f.finish(state, AppProto::Http, tx_id);
    (info.size > 0).then_some(info)
}

/// Outputs the complete transaction, then the files of its messages
/// (those still open were cut short: truncated).
fn emit_final(mut t: HttpTx, out: &mut Out<'_>) {
    let mut files = std::mem::take(&mut t.files);
    let id = t.id;
    for m in [t.req.as_deref_mut(), t.resp.as_deref_mut()]
        .into_iter()
        .flatten()
    {
        files.extend(finish_file(m, FileState::Truncated, id));
    }
    out.tx(build_final(t));
    for f in files {
        out.file(f);
    }
}

/// The complete transaction, built from the message it consumes: its
/// bodies (up to the body limits, 100 KiB each by default) move into the
/// rule buffers instead of being copied.
fn build_final(mut t: HttpTx) -> Transaction {
    let bodies = [
        t.req.as_mut().map(|m| std::mem::take(&mut m.body)),
        t.resp.as_mut().map(|m| std::mem::take(&mut m.body)),
    ];
    let mut tx = build(&t, true);
    let [req, resp] = bodies;
    if let Some(b) = req.filter(|b| !b.is_empty()) {
        tx.set_owned(Buffer::HttpRequestBody, CS, b);
    }
    if let Some(b) = resp.filter(|b| !b.is_empty()) {
        tx.set_owned(Buffer::HttpResponseBody, SC, b);
    }
    tx
}

fn build(t: &HttpTx, complete: bool) -> Transaction {
    let mut tx = Transaction::new(AppProto::Http, t.id);
    tx.complete = complete;
    let mut e = Map::new();
    if let Some(m) = t.req.as_deref() {
        let (host, port) = match split_absolute(&m.b) {
            Some((auth, _)) if !auth.is_empty() => normalize_host(auth),
            _ => match m.header("host") {
                Some(h) => normalize_host(h),
                None => (Vec::new(), None),
            },
        };
        if let Some(h) = m.header("host") {
            tx.set(Buffer::HttpHostRaw, CS, h);
        }
        if !host.is_empty() || m.header("host").is_some() {
            e.insert("hostname".into(), js(&host).into());
            tx.set(Buffer::HttpHost, CS, &host);
        }
        if let Some(p) = port {
            e.insert("http_port".into(), p.into());
        }
        if !m.b.is_empty() {
            let norm = normalize_uri(&m.b);
            tx.nums.urilen = Some(norm.len());
            tx.nums.urilen_raw = Some(m.b.len());
            e.insert("url".into(), js(&m.b).into());
            tx.set(Buffer::HttpUri, CS, &norm);
            tx.set(Buffer::HttpUriRaw, CS, &m.b);
        }
        if let Some(ua) = m.header("user-agent") {
            e.insert("http_user_agent".into(), js(ua).into());
            tx.set(Buffer::HttpUserAgent, CS, ua);
        }
        if !m.a.is_empty() {
            tx.set(Buffer::HttpMethod, CS, &m.a);
        }
        tx.set(Buffer::HttpRequestLine, CS, &m.line);
        if !m.c.is_empty() {
            tx.set(Buffer::HttpProtocol, CS, &m.c);
        }
        if !m.body.is_empty() {
            tx.set(Buffer::HttpRequestBody, CS, &m.body);
        }
        set_hdr(&mut tx, m, CS, "accept", Buffer::HttpAccept);
        set_hdr(&mut tx, m, CS, "accept-encoding", Buffer::HttpAcceptEnc);
        set_hdr(&mut tx, m, CS, "accept-language", Buffer::HttpAcceptLang);
        set_hdr(&mut tx, m, CS, "referer", Buffer::HttpReferer);
        fill_common(&mut tx, m, CS);
        if let Some(xff) = m.header("x-forwarded-for") {
            e.insert("xff".into(), js(xff).into());
        }
    }
    let resp = t.resp.as_deref().filter(|_| complete);
    if let Some(m) = resp {
        if let Some(ct) = m.header("content-type") {
            let ct = ct.split(|c| *c == b';').next().unwrap_or(ct);
            e.insert("http_content_type".into(), js(trim(ct)).into());
        }
    }
    if let Some(m) = t.req.as_deref() {
        if let Some(r) = m.header("referer") {
            e.insert("http_refer".into(), js(r).into());
        }
        if !m.a.is_empty() {
            e.insert("http_method".into(), js(&m.a).into());
        }
        if !m.c.is_empty() {
            e.insert("protocol".into(), js(&m.c).into());
        }
    }
    if let Some(m) = resp {
        if !m.line.is_empty() {
            tx.set(Buffer::HttpResponseLine, SC, &m.line);
        }
        if !m.a.is_empty() {
            tx.set(Buffer::HttpProtocol, SC, &m.a);
            if t.req.is_none() {
                e.insert("protocol".into(), js(&m.a).into());
            }
        }
        if !m.b.is_empty() {
            tx.set(Buffer::HttpStatCode, SC, &m.b);
            if let Some(s) = std::str::from_utf8(&m.b)
                .ok()
                .and_then(|s| s.parse::<u16>().ok())
            {
                tx.nums.http_status = Some(s);
                e.insert("status".into(), s.into());
            }
        }
        if !m.c.is_empty() {
            tx.set(Buffer::HttpStatMsg, SC, &m.c);
        }
        if let Some(l) = m.header("location") {
            e.insert("redirect".into(), js(l).into());
            tx.set(Buffer::HttpLocation, SC, l);
        }
        set_hdr(&mut tx, m, SC, "server", Buffer::HttpServer);
        if !m.body.is_empty() {
            tx.set(Buffer::HttpResponseBody, SC, &m.body);
        }
        fill_common(&mut tx, m, SC);
        e.insert("length".into(), m.body_len.into());
    }
    tx.eve = Value::Object(e);
    tx
}
