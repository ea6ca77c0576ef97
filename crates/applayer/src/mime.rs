//! MIME message decoding (RFC 2045/2046) for mail: the message's headers,
//! multipart bodies with nested boundaries, base64 and quoted-printable
//! transfer encodings. Parts with a file name (Content-Disposition
//! `filename`, or Content-Type `name`, as Suricata) become files, hashed
//! as they are decoded; URLs are collected from text parts.
//!
//! Fed with the message bytes in chunks of any size (already dot-unstuffed
//! by SMTP), it works line by line with a bounded line buffer: a longer
//! line is handled in pieces. Everything it keeps is bounded: header
//! values, headers kept, boundaries, attachment names, URLs, files open at
//! once (one). A bound raises an event and drops, it does not grow.

use crate::files::{FileHashes, FileState, FileTrack};

/// Longest line handled whole; longer ones are handled in pieces.
const MAX_LINE: usize = 8192;
/// Longest header name before `mime_long_header_name` (RFC 2045).
const MAX_HEADER_NAME: usize = 75;
/// Longest boundary before `mime_long_boundary` (RFC 2046: 70; Suricata 254).
const MAX_BOUNDARY: usize = 254;
/// Longest file name kept (Suricata's token limit).
const MAX_FILENAME: usize = 255;
/// Nested multiparts followed.
const MAX_BOUNDARIES: usize = 16;

/// The bounds of one message.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MimeLimits {
    /// Longest header value kept (longer: cut, `mime_long_header_value`).
    pub(crate) header_value: usize,
    /// Headers of the message kept (the part headers are read, not kept).
    pub(crate) max_headers: usize,
    /// Decoded bytes of each attachment kept for `file_data`.
    pub(crate) file_keep: usize,
    /// Attachments (names and files) per message.
    pub(crate) max_files: usize,
    /// URLs kept per message.
    pub(crate) max_urls: usize,
    /// Extra hashes of files.
    pub(crate) hashes: FileHashes,
}

#[derive(Clone, Copy, PartialEq, Eq, Default)]
enum Enc {
    #[default]
    Plain,
    Base64,
    Qp,
}

#[derive(Default)]
struct PartHeaders {
    enc: Enc,
    text: bool,
    filename: Option<Vec<u8>>,
    boundary: Option<Vec<u8>>,
}

/// The decoding state of the current part's body.
#[derive(Default)]
struct Body {
    enc: Enc,
    /// Text part: decoded lines are searched for URLs.
    text: bool,
    /// A line break is owed before the next content (a break just before
    /// a boundary belongs to the boundary, RFC 2046 5.1.1).
    crlf_owed: bool,
    b64: [u8; 4],
    b64_n: usize,
    /// The container of a multipart: preamble and epilogue are skipped.
    skip: bool,
}

/// Decoded output of a body line: to the open file, and for text parts to
/// the URL search.
struct Sink<'a> {
    file: Option<&'a mut FileTrack>,
    text: Option<&'a mut Vec<u8>>,
}

impl Sink<'_> {
    fn put(&mut self, b: &[u8]) {
        if let Some(f) = self.file.as_deref_mut() {
            f.append(b);
        }
        if let Some(t) = self.text.as_deref_mut() {
            let room = MAX_LINE.saturating_sub(t.len());
            t.extend_from_slice(&b[..room.min(b.len())]);
        }
    }
}

/// One message being decoded.
pub(crate) struct Mime {
    lim: MimeLimits,
    line: Vec<u8>,
    /// The line buffer continues a line whose start was handled already.
    mid_line: bool,
    in_headers: bool,
    /// The headers being read are the message's (not a part's).
    main: bool,
    /// Headers of the message: name (lowercase), value.
    pub(crate) headers: Vec<(Vec<u8>, Vec<u8>)>,
    /// The current part's headers, while they are read.
    cur: Vec<(Vec<u8>, Vec<u8>)>,
    boundaries: Vec<Vec<u8>>,
    body: Body,
    file: Option<FileTrack>,
    /// Files finished, with how they ended.
    pub(crate) files: Vec<(FileTrack, FileState)>,
    /// Attachment names, in order.
    pub(crate) attachments: Vec<Vec<u8>>,
    /// URLs found in text parts, in order.
    pub(crate) urls: Vec<Vec<u8>>,
    /// Events raised (Suricata's `smtp.mime_*` names), each once.
    pub(crate) events: Vec<&'static str>,
    text_buf: Vec<u8>,
}

fn lower(b: &[u8]) -> Vec<u8> {
    b.iter().map(u8::to_ascii_lowercase).collect()
}

/// The value of parameter `name` in a header value (`type/sub; name="v"`),
/// quotes removed.
pub(crate) fn param<'a>(value: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    for p in value.split(|&c| c == b';').skip(1) {
        let p = p.trim_ascii();
        let Some(eq) = p.iter().position(|&c| c == b'=') else {
            continue;
        };
        if !p[..eq].trim_ascii().eq_ignore_ascii_case(name) {
            continue;
        }
        let v = p[eq + 1..].trim_ascii();
        let v = v.strip_prefix(b"\"").unwrap_or(v);
        let v = v.strip_suffix(b"\"").unwrap_or(v);
        return Some(v);
    }
    None
}

fn b64_val(c: u8) -> Option<u8> {
    match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    }
}

fn hexval(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|v| v as u8)
}

impl Mime {
    pub(crate) fn new(lim: MimeLimits) -> Self {
        Mime {
            lim,
            line: Vec::new(),
            mid_line: false,
            in_headers: true,
            main: true,
            headers: Vec::new(),
            cur: Vec::new(),
            boundaries: Vec::new(),
            body: Body::default(),
            file: None,
            files: Vec::new(),
            attachments: Vec::new(),
            urls: Vec::new(),
            events: Vec::new(),
            text_buf: Vec::new(),
        }
    }

    pub(crate) fn mem_bytes(&self) -> usize {
        let h: usize = self.headers.iter().map(|(n, v)| n.len() + v.len()).sum();
        let c: usize = self.cur.iter().map(|(n, v)| n.len() + v.len()).sum();
        let u: usize = self.urls.iter().map(Vec::len).sum();
        let a: usize = self.attachments.iter().map(Vec::len).sum();
        let f: usize = self.files.iter().map(|(f, _)| f.mem_bytes()).sum();
        self.line.capacity()
            + h
            + c
            + u
            + a
            + f
            + self.file.as_ref().map_or(0, FileTrack::mem_bytes)
            + self.text_buf.capacity()
    }

    fn event(&mut self, name: &'static str) {
        if !self.events.contains(&name) {
            self.events.push(name);
        }
    }

    /// The first value of a message header (name lowercase).
    pub(crate) fn header(&self, name: &[u8]) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
    }

    /// Message bytes, in order, any chunking.
    pub(crate) fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            let nl = data.iter().position(|&c| c == b'\n');
            let end = nl.unwrap_or(data.len());
            let room = MAX_LINE - self.line.len();
            if end > room {
                // Too long: handle what fits as a piece of the line.
                self.line.extend_from_slice(&data[..room]);
                data = &data[room..];
                self.flush_line(false);
                continue;
            }
            self.line.extend_from_slice(&data[..end]);
            match nl {
                Some(i) => {
                    data = &data[i + 1..];
                    self.flush_line(true);
                }
                None => data = &[],
            }
        }
    }

    fn flush_line(&mut self, eol: bool) {
        let mut l = std::mem::take(&mut self.line);
        if eol && l.last() == Some(&b'\r') {
            l.pop();
        }
        let at_start = !self.mid_line;
        self.mid_line = !eol;
        if !eol && at_start {
            self.event("smtp.mime_long_line");
        }
        self.on_line(&l, at_start, eol);
        l.clear();
        self.line = l;
    }

    /// The message ended: a file still open is closed (the message is
    /// whole) or truncated (`complete` false: the transfer broke off).
    pub(crate) fn finish(&mut self, complete: bool) {
        if !self.line.is_empty() {
            self.flush_line(true);
        }
        self.flush_b64();
        self.close_file(if complete {
            FileState::Closed
        } else {
            FileState::Truncated
        });
    }

    fn on_line(&mut self, l: &[u8], at_start: bool, eol: bool) {
        if self.in_headers {
            self.header_line(l, at_start);
            return;
        }
        if at_start && l.starts_with(b"--") && self.boundary_line(l) {
            return;
        }
        self.body_line(l, at_start, eol);
    }

    /// A boundary of an open multipart (`--b` or `--b--`); true when `l`
    /// is one.
    fn boundary_line(&mut self, l: &[u8]) -> bool {
        let rest = &l[2..];
        let Some(i) = self.boundaries.iter().rposition(|b| rest.starts_with(b)) else {
            return false;
        };
        let after = &rest[self.boundaries[i].len()..];
        let closing = after.starts_with(b"--");
        if !closing && !after.trim_ascii().is_empty() {
            return false;
        }
        self.flush_b64();
        self.close_file(FileState::Closed);
        if closing {
            // The multipart ends: what follows is its epilogue.
            self.boundaries.truncate(i);
            self.body = Body {
                skip: true,
                ..Body::default()
            };
        } else {
            self.boundaries.truncate(i + 1);
            self.in_headers = true;
            self.cur.clear();
        }
        true
    }

    fn header_line(&mut self, l: &[u8], at_start: bool) {
        if l.is_empty() && at_start {
            self.headers_done();
            return;
        }
        let cap = self.lim.header_value;
        let list = if self.main {
            &mut self.headers
        } else {
            &mut self.cur
        };
        if !at_start || matches!(l.first(), Some(b' ' | b'\t')) {
            // Folded (or the rest of a long line): joins the last header.
            let add = if at_start { &l[1..] } else { l };
            let Some((_, v)) = list.last_mut() else {
                return;
            };
            let room = cap.saturating_sub(v.len());
            if add.len() > room {
                v.extend_from_slice(&add[..room]);
                self.event("smtp.mime_long_header_value");
            } else {
                v.extend_from_slice(add);
            }
            return;
        }
        let Some(colon) = l.iter().position(|&c| c == b':') else {
            return;
        };
        let name = l[..colon].trim_ascii();
        let mut value = l[colon + 1..].trim_ascii_start();
        let long_name = name.len() > MAX_HEADER_NAME;
        let long_value = value.len() > cap;
        value = &value[..value.len().min(cap)];
        let full = list.len() >= self.lim.max_headers;
        if !full {
            list.push((lower(name), value.to_vec()));
        }
        if long_name {
            self.event("smtp.mime_long_header_name");
        }
        if long_value {
            self.event("smtp.mime_long_header_value");
        }
    }

    /// The part's (or message's) headers: encoding, text or not, a file
    /// name, a boundary.
    fn part_headers(&mut self) -> PartHeaders {
        let list = if self.main { &self.headers } else { &self.cur };
        let mut p = PartHeaders::default();
        let mut long_boundary = false;
        let mut long_name = false;
        for (n, v) in list {
            match n.as_slice() {
                b"content-transfer-encoding" => {
                    let v = v.trim_ascii();
                    if v.eq_ignore_ascii_case(b"base64") {
                        p.enc = Enc::Base64;
                    } else if v.eq_ignore_ascii_case(b"quoted-printable") {
                        p.enc = Enc::Qp;
                    }
                }
                b"content-type" => {
                    let ct = v.split(|&c| c == b';').next().unwrap_or(&[]).trim_ascii();
                    p.text = ct.eq_ignore_ascii_case(b"text/plain")
                        || ct.eq_ignore_ascii_case(b"text/html");
                    if let Some(b) = param(v, b"boundary").filter(|b| !b.is_empty()) {
                        long_boundary |= b.len() > MAX_BOUNDARY;
                        p.boundary = Some(b.to_vec());
                    }
                    if p.filename.is_none() {
                        p.filename = param(v, b"name").map(<[u8]>::to_vec);
                    }
                }
                b"content-disposition" => {
                    if let Some(f) = param(v, b"filename") {
                        p.filename = Some(f.to_vec());
                    }
                }
                _ => {}
            }
        }
        if let Some(f) = &mut p.filename {
            if f.len() > MAX_FILENAME {
                f.truncate(MAX_FILENAME);
                long_name = true;
            }
        }
        if long_boundary {
            self.event("smtp.mime_long_boundary");
        }
        if long_name {
            self.event("smtp.mime_long_filename");
        }
        p
    }

    fn headers_done(&mut self) {
        let p = self.part_headers();
        self.main = false;
        self.in_headers = false;
        self.cur.clear();
        self.body = Body {
            enc: p.enc,
            text: p.text,
            ..Body::default()
        };
        if let Some(b) = p.boundary {
            if self.boundaries.len() < MAX_BOUNDARIES {
                self.boundaries.push(b);
            }
            self.body.skip = true;
            return;
        }
        if let Some(name) = p.filename {
            if self.attachments.len() < self.lim.max_files {
                self.attachments.push(name.clone());
                self.file = Some(FileTrack::new(name, self.lim.hashes, self.lim.file_keep));
            }
        }
    }

    fn close_file(&mut self, state: FileState) {
        if let Some(f) = self.file.take() {
            self.files.push((f, state));
        }
    }

    fn body_line(&mut self, l: &[u8], at_start: bool, eol: bool) {
        if self.body.skip || (self.file.is_none() && !self.body.text) {
            return;
        }
        let mut text = std::mem::take(&mut self.text_buf);
        text.clear();
        let mut sink = Sink {
            file: self.file.as_mut(),
            text: self.body.text.then_some(&mut text),
        };
        let b = &mut self.body;
        let mut bad = None;
        match b.enc {
            Enc::Plain => {
                if at_start && b.crlf_owed {
                    sink.put(b"\r\n");
                }
                sink.put(l);
                b.crlf_owed = eol;
            }
            Enc::Qp => {
                if at_start && b.crlf_owed {
                    sink.put(b"\r\n");
                }
                let (soft, ok) = qp_decode(l, &mut sink);
                if !ok {
                    bad = Some("smtp.mime_invalid_qp");
                }
                b.crlf_owed = eol && !soft;
            }
            Enc::Base64 => {
                if !b64_decode(b, l, &mut sink) {
                    bad = Some("smtp.mime_invalid_base64");
                }
            }
        }
        if let Some(e) = bad {
            self.event(e);
        }
        if self.body.text {
            self.find_urls(&text);
        }
        self.text_buf = text;
    }

    /// Decodes what is left of a base64 quantum at the end of a part.
    fn flush_b64(&mut self) {
        if self.body.enc != Enc::Base64 || self.body.b64_n < 2 {
            self.body.b64_n = 0;
            return;
        }
        let mut sink = Sink {
            file: self.file.as_mut(),
            text: None,
        };
        let b = &mut self.body;
        let mut q = b.b64;
        q[b.b64_n..].fill(0);
        let out = [
            (q[0] << 2) | (q[1] >> 4),
            (q[1] << 4) | (q[2] >> 2),
            (q[2] << 6) | q[3],
        ];
        sink.put(&out[..b.b64_n - 1]);
        b.b64_n = 0;
    }

    /// URLs with the schemes Suricata extracts by default, ended by a
    /// space, quote, angle bracket or `]` (as Suricata).
    fn find_urls(&mut self, text: &[u8]) {
        const SCHEMES: &[&[u8]] = &[b"http://", b"https://", b"ftp://", b"mailto:"];
        let low = lower(text);
        for s in SCHEMES {
            let mut at = 0;
            while let Some(i) = find(&low[at..], s) {
                let start = at + i;
                let end = text[start..]
                    .iter()
                    .position(|&c| matches!(c, b' ' | b'"' | b'\'' | b'<' | b'>' | b']' | b'\t'))
                    .map_or(text.len(), |e| start + e);
                if self.urls.len() < self.lim.max_urls {
                    self.urls.push(text[start..end].to_vec());
                }
                at = end.max(start + s.len());
            }
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Quoted-printable line: `=XX` decoded, a final `=` is a soft break.
/// Returns (soft break, well-formed).
fn qp_decode(l: &[u8], sink: &mut Sink<'_>) -> (bool, bool) {
    let l = l.trim_ascii_end();
    let mut out = Vec::with_capacity(l.len());
    let mut ok = true;
    let mut soft = false;
    let mut i = 0;
    while i < l.len() {
        let c = l[i];
        if c != b'=' {
            out.push(c);
            i += 1;
            continue;
        }
        if i + 1 == l.len() {
            soft = true;
            break;
        }
        match (
            l.get(i + 1).and_then(|&c| hexval(c)),
            l.get(i + 2).and_then(|&c| hexval(c)),
        ) {
            (Some(h), Some(lo)) => {
                out.push((h << 4) | lo);
                i += 3;
            }
            _ => {
                ok = false;
                out.push(c);
                i += 1;
            }
        }
    }
    sink.put(&out);
    (soft, ok)
}

/// Base64 characters of a line (whitespace ignored, padding ends a
/// quantum); false when a character outside the alphabet was skipped.
fn b64_decode(b: &mut Body, l: &[u8], sink: &mut Sink<'_>) -> bool {
    let mut out = Vec::with_capacity(l.len() * 3 / 4 + 3);
    let mut ok = true;
    for &c in l {
        if c == b'=' {
            if b.b64_n >= 2 {
                let q = &mut b.b64;
                q[b.b64_n..].fill(0);
                let dec = [
                    (q[0] << 2) | (q[1] >> 4),
                    (q[1] << 4) | (q[2] >> 2),
                    (q[2] << 6) | q[3],
                ];
                out.extend_from_slice(&dec[..b.b64_n - 1]);
            }
            b.b64_n = 0;
            continue;
        }
        let Some(v) = b64_val(c) else {
            if !c.is_ascii_whitespace() {
                ok = false;
            }
            continue;
        };
        b.b64[b.b64_n] = v;
        b.b64_n += 1;
        if b.b64_n == 4 {
            let q = b.b64;
            out.push((q[0] << 2) | (q[1] >> 4));
            out.push((q[1] << 4) | (q[2] >> 2));
            out.push((q[2] << 6) | q[3]);
            b.b64_n = 0;
        }
    }
    sink.put(&out);
    ok
}
