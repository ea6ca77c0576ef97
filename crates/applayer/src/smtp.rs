//! SMTP (RFC 5321): client commands and server replies matched in order
//! (pipelining), the message of DATA (dot-unstuffed) or BDAT chunks
//! decoded as MIME ([`crate::mime`]), STARTTLS handed to the TLS parser.
//!
//! One transaction per mail: from the first command after the previous
//! mail ended to the end of its message (the `.` line, `BDAT ... LAST`),
//! or RSET/QUIT, or the flow's end. Its record holds Suricata's `smtp`
//! object (`helo`, `mail_from`, `rcpt_to`) and `email` object (`from`,
//! `to`, `cc`, `status`, `attachment`, `url`; `subject` only when
//! configured: personal data); its attachments become files.

use crate::files::FileInfo;
use crate::mime::{Mime, MimeLimits};
use crate::util::js;
use crate::{di, AppConfig, AppProto, Buffer, Direction, Out, Transaction};
use serde_json::{Map, Value};
use std::collections::VecDeque;

/// Longest command or reply line (Suricata's line buffer limit).
const MAX_LINE: usize = 4096;
/// Longest line of message data handled whole (longer: in pieces).
const MAX_DATA_LINE: usize = 8192;
/// Commands awaiting their reply (pipelining); beyond, the oldest is
/// forgotten.
const MAX_PENDING: usize = 64;
/// Client bytes kept after STARTTLS until its reply says what they are.
const MAX_STASH: usize = 64 * 1024;
/// Recipients kept per mail.
const MAX_RCPT: usize = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmd {
    StartTls,
    Data,
    Bdat,
    Other,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Command,
    /// After DATA: lines up to `.`.
    Data,
    /// After BDAT: `left` raw bytes; `last` ends the message.
    Bdat {
        left: u64,
        last: bool,
    },
}

#[derive(Default)]
struct MailTx {
    id: u64,
    mail_from: Option<Vec<u8>>,
    rcpt_to: Vec<Vec<u8>>,
    mime: Option<Box<Mime>>,
    /// The message ended completely (`.` or BDAT LAST).
    message_done: bool,
}

pub(crate) struct SmtpState {
    cfg: AppConfig,
    line: [Vec<u8>; 2],
    /// The rest of a too-long line is being skipped (per direction).
    skipping: [bool; 2],
    /// Data mode: the line buffer continues a line handled in part.
    data_mid_line: bool,
    helo: Option<Vec<u8>>,
    tx: Option<MailTx>,
    pending: VecDeque<Cmd>,
    mode: Mode,
    first_reply_seen: bool,
    in_multiline: bool,
    starttls_pending: bool,
    stash: Vec<u8>,
    /// STARTTLS accepted: the flow is TLS from here; the client bytes
    /// already seen after the command, and the server's after the reply,
    /// are the first TLS bytes.
    handoff: Option<(Vec<u8>, Vec<u8>)>,
}

/// The argument of `HELO x`, `MAIL FROM: x`, `RCPT TO: x`: spaces
/// skipped, up to the next space (ESMTP parameters follow it), as
/// Suricata.
fn cmd_param(line: &[u8], prefix: usize) -> Vec<u8> {
    let rest = line.get(prefix + 1..).unwrap_or(&[]);
    let rest = &rest[rest.iter().take_while(|&&c| c == b' ').count()..];
    let end = rest.iter().position(|&c| c == b' ').unwrap_or(rest.len());
    rest[..end].to_vec()
}

fn starts_ci(l: &[u8], p: &[u8]) -> bool {
    l.len() >= p.len() && l[..p.len()].eq_ignore_ascii_case(p)
}

impl SmtpState {
    pub(crate) fn new(cfg: AppConfig) -> Self {
        SmtpState {
            cfg,
            line: [Vec::new(), Vec::new()],
            skipping: [false; 2],
            data_mid_line: false,
            helo: None,
            tx: None,
            pending: VecDeque::new(),
            mode: Mode::Command,
            first_reply_seen: false,
            in_multiline: false,
            starttls_pending: false,
            stash: Vec::new(),
            handoff: None,
        }
    }

    /// STARTTLS was accepted: the client and server bytes to replay into
    /// TLS.
    pub(crate) fn take_handoff(&mut self) -> Option<(Vec<u8>, Vec<u8>)> {
        self.handoff.take()
    }

    pub(crate) fn mem_bytes(&self) -> usize {
        let tx = self.tx.as_ref().map_or(0, |t| {
            t.rcpt_to.iter().map(Vec::len).sum::<usize>()
                + t.mime.as_ref().map_or(0, |m| m.mem_bytes())
        });
        self.line[0].capacity() + self.line[1].capacity() + self.stash.capacity() + tx
    }

    fn mime_limits(&self) -> MimeLimits {
        MimeLimits {
            header_value: self.cfg.smtp_max_header_value,
            max_headers: self.cfg.smtp_max_headers,
            file_keep: self.cfg.smtp_file_data_depth,
            max_files: 64,
            max_urls: 64,
            hashes: self.cfg.file_hashes,
        }
    }

    fn tx_mut(&mut self, out: &mut Out<'_>) -> &mut MailTx {
        self.tx.get_or_insert_with(|| MailTx {
            id: out.new_tx_id(),
            ..MailTx::default()
        })
    }

    pub(crate) fn input(&mut self, dir: Direction, data: &[u8], out: &mut Out<'_>) {
        match dir {
            Direction::ToServer => self.client(data, out),
            Direction::ToClient => self.server(data, out),
        }
    }

    pub(crate) fn gap(&mut self, dir: Direction, out: &mut Out<'_>) {
        self.line[di(dir)].clear();
        if dir == Direction::ToServer {
            if self.mode != Mode::Command {
                // The message lost bytes: its files are truncated.
                self.end_message(false, out);
            }
            self.skipping[0] = true;
        } else {
            self.skipping[1] = true;
        }
    }

    pub(crate) fn close(&mut self, out: &mut Out<'_>) {
        if self.mode != Mode::Command {
            self.end_message(false, out);
        }
        self.finish_tx(out);
    }

    /// One line of `data` (without its end) for direction `d`, at most
    /// `max` bytes: returns the bytes consumed and the line with whether
    /// it ended (false: a piece of a longer line, or more is needed).
    fn take_line(&mut self, d: usize, data: &[u8], max: usize) -> (usize, Option<(Vec<u8>, bool)>) {
        let nl = data.iter().position(|&c| c == b'\n');
        let end = nl.unwrap_or(data.len());
        let room = max.saturating_sub(self.line[d].len());
        if end > room {
            self.line[d].extend_from_slice(&data[..room]);
            return (room, Some((std::mem::take(&mut self.line[d]), false)));
        }
        self.line[d].extend_from_slice(&data[..end]);
        match nl {
            Some(i) => {
                let mut l = std::mem::take(&mut self.line[d]);
                if l.last() == Some(&b'\r') {
                    l.pop();
                }
                (i + 1, Some((l, true)))
            }
            None => (data.len(), None),
        }
    }

    fn client(&mut self, mut data: &[u8], out: &mut Out<'_>) {
        while !data.is_empty() {
            if self.starttls_pending {
                let room = MAX_STASH.saturating_sub(self.stash.len());
                self.stash.extend_from_slice(&data[..room.min(data.len())]);
                return;
            }
            if let Mode::Bdat { left, last } = self.mode {
                let n = (left.min(data.len() as u64)) as usize;
                if let Some(m) = self.tx.as_mut().and_then(|t| t.mime.as_mut()) {
                    m.feed(&data[..n]);
                }
                data = &data[n..];
                let left = left - n as u64;
                self.mode = Mode::Bdat { left, last };
                if left == 0 {
                    self.mode = Mode::Command;
                    if last {
                        self.end_message(true, out);
                    }
                }
                continue;
            }
            let max = if self.mode == Mode::Data {
                MAX_DATA_LINE
            } else {
                MAX_LINE
            };
            let (used, line) = self.take_line(0, data, max);
            data = &data[used..];
            let Some((line, eol)) = line else { continue };
            if self.mode == Mode::Data {
                self.data_line(&line, eol, out);
            } else if self.skipping[0] {
                self.skipping[0] = !eol;
            } else {
                if !eol {
                    out.event(
                        "smtp.max_command_line_len_exceeded",
                        Direction::ToServer,
                        self.tx.as_ref().map(|t| t.id),
                    );
                    self.skipping[0] = true;
                }
                self.command(&line, out);
            }
        }
    }

    /// A line of the message after DATA: `.` ends it, a leading dot is
    /// removed (dot-stuffing), the rest goes to the MIME decoder with its
    /// line break.
    fn data_line(&mut self, line: &[u8], eol: bool, out: &mut Out<'_>) {
        let at_start = !self.data_mid_line;
        self.data_mid_line = !eol;
        if at_start && eol && line == b"." {
            self.mode = Mode::Command;
            // The server replies to the end of the message.
            if self.pending.len() >= MAX_PENDING {
                self.pending.pop_front();
            }
            self.pending.push_back(Cmd::Other);
            self.end_message(true, out);
            return;
        }
        let body = if at_start && line.first() == Some(&b'.') {
            &line[1..]
        } else {
            line
        };
        if let Some(m) = self.tx.as_mut().and_then(|t| t.mime.as_mut()) {
            m.feed(body);
            if eol {
                m.feed(b"\r\n");
            }
        }
    }

    fn start_message(&mut self, out: &mut Out<'_>) {
        let lim = self.mime_limits();
        let t = self.tx_mut(out);
        if t.mime.is_none() {
            t.mime = Some(Box::new(Mime::new(lim)));
        }
    }

    fn command(&mut self, line: &[u8], out: &mut Out<'_>) {
        let mut kind = Cmd::Other;
        if !starts_ci(line, b"mail from") {
            // Every command belongs to a transaction, as in Suricata.
            self.tx_mut(out);
        }
        if starts_ci(line, b"helo") || starts_ci(line, b"ehlo") {
            self.helo = Some(cmd_param(line, 4));
        } else if starts_ci(line, b"mail from") {
            // A new mail after a finished one starts a new transaction.
            if self
                .tx
                .as_ref()
                .is_some_and(|t| t.mail_from.is_some() || t.message_done)
            {
                self.finish_tx(out);
            }
            let v = cmd_param(line, 9);
            let t = self.tx_mut(out);
            if t.mail_from.is_some() {
                out.event("smtp.duplicate_fields", Direction::ToServer, Some(t.id));
            }
            t.mail_from = Some(v);
        } else if starts_ci(line, b"rcpt to") {
            let v = cmd_param(line, 7);
            let t = self.tx_mut(out);
            if t.rcpt_to.len() < MAX_RCPT {
                t.rcpt_to.push(v);
            }
        } else if starts_ci(line, b"data") && line[4..].trim_ascii().is_empty() {
            kind = Cmd::Data;
            self.start_message(out);
            self.mode = Mode::Data;
            self.data_mid_line = false;
        } else if starts_ci(line, b"bdat") {
            kind = Cmd::Bdat;
            self.bdat(line, out);
        } else if starts_ci(line, b"starttls") {
            kind = Cmd::StartTls;
            self.starttls_pending = true;
        } else if starts_ci(line, b"rset") || starts_ci(line, b"quit") {
            self.finish_tx(out);
        }
        if self.pending.len() >= MAX_PENDING {
            self.pending.pop_front();
        }
        self.pending.push_back(kind);
    }

    /// `BDAT <size> [LAST]`: the next `size` bytes are message data.
    fn bdat(&mut self, line: &[u8], out: &mut Out<'_>) {
        let mut parts = line[4..].split(|&c| c == b' ').filter(|p| !p.is_empty());
        let size = parts
            .next()
            .and_then(|p| std::str::from_utf8(p).ok())
            .and_then(|s| s.parse::<u64>().ok());
        let last = parts
            .next()
            .is_some_and(|p| p.eq_ignore_ascii_case(b"last"));
        self.start_message(out);
        match size {
            Some(left) if left > 0 => self.mode = Mode::Bdat { left, last },
            Some(_) if last => self.end_message(true, out),
            Some(_) => {}
            None => {
                let id = self.tx.as_ref().map(|t| t.id);
                out.event("smtp.invalid_bdat", Direction::ToServer, id);
            }
        }
    }

    fn server(&mut self, mut data: &[u8], out: &mut Out<'_>) {
        while !data.is_empty() {
            let (used, line) = self.take_line(1, data, MAX_LINE);
            data = &data[used..];
            let Some((line, eol)) = line else { continue };
            if self.skipping[1] {
                self.skipping[1] = !eol;
                continue;
            }
            if !eol {
                out.event(
                    "smtp.max_reply_line_len_exceeded",
                    Direction::ToClient,
                    self.tx.as_ref().map(|t| t.id),
                );
                self.skipping[1] = true;
            }
            self.reply(&line, out);
            if let Some((_, server)) = &mut self.handoff {
                // The rest is TLS; the caller switches parsers.
                server.extend_from_slice(data);
                return;
            }
        }
    }

    fn reply(&mut self, line: &[u8], out: &mut Out<'_>) {
        if line.is_empty() {
            return;
        }
        let id = self.tx.as_ref().map(|t| t.id);
        let code = match line.get(..3) {
            Some(c) if c.iter().all(u8::is_ascii_digit) => {
                (c[0] - b'0') as u16 * 100 + (c[1] - b'0') as u16 * 10 + (c[2] - b'0') as u16
            }
            _ => {
                out.event("smtp.invalid_reply", Direction::ToClient, id);
                return;
            }
        };
        self.in_multiline = line.get(3) == Some(&b'-');
        if self.in_multiline {
            return;
        }
        let Some(cmd) = self.pending.pop_front() else {
            if !self.first_reply_seen {
                self.first_reply_seen = true;
                if code != 220 {
                    out.event("smtp.invalid_reply", Direction::ToClient, id);
                }
            } else {
                out.event(
                    "smtp.unable_to_match_reply_with_request",
                    Direction::ToClient,
                    id,
                );
            }
            return;
        };
        if !self.first_reply_seen {
            self.first_reply_seen = true;
            out.event("smtp.no_server_welcome_message", Direction::ToClient, id);
        }
        match cmd {
            Cmd::StartTls => {
                self.starttls_pending = false;
                let stash = std::mem::take(&mut self.stash);
                if code == 220 {
                    self.finish_tx(out);
                    self.handoff = Some((stash, Vec::new()));
                } else {
                    out.event("smtp.tls_rejected", Direction::ToClient, id);
                    self.client(&stash, out);
                }
            }
            Cmd::Data if code != 354 => {
                out.event("smtp.data_command_rejected", Direction::ToClient, id);
                if self.mode == Mode::Data {
                    self.mode = Mode::Command;
                    if let Some(t) = self.tx.as_mut() {
                        t.mime = None;
                    }
                }
            }
            _ => {}
        }
    }

    /// The message ended (`complete`: by its end marker; else cut by a gap
    /// or the flow's end).
    fn end_message(&mut self, complete: bool, out: &mut Out<'_>) {
        self.mode = Mode::Command;
        self.data_mid_line = false;
        self.line[0].clear();
        if let Some(t) = self.tx.as_mut() {
            t.message_done = complete;
            if let Some(m) = t.mime.as_mut() {
                m.finish(complete);
            }
        }
        if complete {
            self.finish_tx(out);
        }
    }

    /// Outputs the open transaction (complete), its events and files.
    fn finish_tx(&mut self, out: &mut Out<'_>) {
        let Some(mut t) = self.tx.take() else { return };
        let mut tx = Transaction::new(AppProto::Smtp, t.id);
        tx.complete = true;
        let mut smtp = Map::new();
        if let Some(h) = &self.helo {
            smtp.insert("helo".into(), js(h).into());
            tx.set(Buffer::SmtpHelo, Direction::ToServer, h);
        }
        if let Some(m) = &t.mail_from {
            smtp.insert("mail_from".into(), js(m).into());
            tx.set(Buffer::SmtpMailFrom, Direction::ToServer, m);
        }
        if !t.rcpt_to.is_empty() {
            let v: Vec<Value> = t.rcpt_to.iter().map(|r| js(r).into()).collect();
            smtp.insert("rcpt_to".into(), v.into());
            for r in &t.rcpt_to {
                tx.push(Buffer::SmtpRcptTo, Direction::ToServer, r);
            }
        }
        let mut eve = Map::new();
        eve.insert("smtp".into(), Value::Object(smtp));
        let mut files: Vec<FileInfo> = Vec::new();
        if let Some(m) = t.mime.as_mut() {
            if !t.message_done {
                m.finish(false);
            }
            eve.insert("email".into(), Value::Object(self.email(m, &mut tx)));
            for e in std::mem::take(&mut m.events) {
                out.event(e, Direction::ToServer, Some(t.id));
            }
            for (f, state) in std::mem::take(&mut m.files) {
                let (info, keep) = f.finish(state, AppProto::Smtp, t.id);
                if !keep.is_empty() {
                    tx.push(Buffer::SmtpFileData, Direction::ToServer, &keep);
                }
                files.push(info);
            }
        }
        tx.eve = Value::Object(eve);
        out.tx(tx);
        for f in files {
            out.file(f);
        }
    }

    /// The `email` object and the `email.*` buffers.
    fn email(&self, m: &Mime, tx: &mut Transaction) -> Map<String, Value> {
        let mut e = Map::new();
        if let Some(v) = m.header(b"from") {
            e.insert("from".into(), js(v).into());
            tx.set(Buffer::EmailFrom, Direction::ToServer, v);
        }
        for (name, buf) in [("to", Buffer::EmailTo), ("cc", Buffer::EmailCc)] {
            if let Some(v) = m.header(name.as_bytes()) {
                let list = split_addresses(v);
                if !list.is_empty() {
                    e.insert(
                        name.into(),
                        list.iter().map(|a| Value::from(js(a))).collect(),
                    );
                }
                tx.set(buf, Direction::ToServer, v);
            }
        }
        if let Some(v) = m.header(b"subject") {
            tx.set(Buffer::EmailSubject, Direction::ToServer, v);
            if self.cfg.smtp_log_subject {
                e.insert("subject".into(), js(v).into());
            }
        }
        e.insert("status".into(), "PARSE_DONE".into());
        if !m.attachments.is_empty() {
            let v: Vec<Value> = m.attachments.iter().map(|a| js(a).into()).collect();
            e.insert("attachment".into(), v.into());
        }
        if !m.urls.is_empty() {
            // Suricata lists them last found first.
            let v: Vec<Value> = m.urls.iter().rev().map(|u| js(u).into()).collect();
            e.insert("url".into(), v.into());
        }
        e
    }
}

/// A To/Cc header split at commas outside quotes, each trimmed, as
/// Suricata's `email.to` array.
fn split_addresses(v: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut cur = Vec::new();
    let mut quoted = false;
    for &c in v {
        match c {
            b'"' => {
                quoted = !quoted;
                cur.push(c);
            }
            b',' if !quoted => {
                let t = cur.trim_ascii();
                if !t.is_empty() {
                    out.push(t.to_vec());
                }
                cur.clear();
            }
            _ => cur.push(c),
        }
    }
    let t = cur.trim_ascii();
    if !t.is_empty() {
        out.push(t.to_vec());
    }
    out
}

#[cfg(test)]
mod tests {
    use crate::tests::{events, files, txs};
    use crate::*;
    use sha2::{Digest, Sha256};

    const CS: Direction = Direction::ToServer;
    const SC: Direction = Direction::ToClient;

    /// An attachment whose base64 lines wrap at 76 characters.
    fn payload() -> Vec<u8> {
        let mut p = b"MZ".to_vec();
        p.extend((0..3000u32).map(|i| (i * 7 % 251) as u8));
        p
    }

    fn b64(data: &[u8]) -> String {
        const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut s = String::new();
        for c in data.chunks(3) {
            let b = [c[0], *c.get(1).unwrap_or(&0), *c.get(2).unwrap_or(&0)];
            let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
            for i in 0..4 {
                if i <= c.len() {
                    s.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
                } else {
                    s.push('=');
                }
            }
        }
        s.as_bytes()
            .chunks(76)
            .map(|l| std::str::from_utf8(l).unwrap_or(""))
            .collect::<Vec<_>>()
            .join("\r\n")
    }

    fn message() -> Vec<u8> {
        format!(
            "From: Alice <alice@example.org>\r\n\
             To: bob@example.net, \"Doe, John\" <john@example.net>\r\n\
             Cc: carol@example.com\r\n\
             Subject: quarterly\r\n\
             MIME-Version: 1.0\r\n\
             Content-Type: multipart/mixed;\r\n boundary=\"XYZ\"\r\n\
             \r\n\
             preamble\r\n\
             --XYZ\r\n\
             Content-Type: text/plain; charset=utf-8\r\n\
             Content-Transfer-Encoding: quoted-printable\r\n\
             \r\n\
             see http://evil.example/a?b=3D1 now=\r\n\
             !\r\n\
             ..dotted line\r\n\
             --XYZ\r\n\
             Content-Type: application/octet-stream; name=\"x.exe\"\r\n\
             Content-Disposition: attachment; filename=\"invoice.exe\"\r\n\
             Content-Transfer-Encoding: base64\r\n\
             \r\n\
             {}\r\n\
             --XYZ\r\n\
             Content-Type: text/plain; name=notes.txt\r\n\
             \r\n\
             line one\r\n\
             ..line two\r\n\
             --XYZ--\r\n\
             epilogue\r\n",
            b64(&payload())
        )
        .into_bytes()
    }

    fn session() -> Vec<(Direction, Vec<u8>)> {
        let mut data = message();
        data.extend_from_slice(b".\r\n");
        vec![
            (SC, b"220 mx.example.net ESMTP\r\n".to_vec()),
            (CS, b"EHLO client.example.org\r\n".to_vec()),
            (SC, b"250-mx.example.net\r\n250-PIPELINING\r\n250 8BITMIME\r\n".to_vec()),
            // Pipelined: MAIL, RCPT, RCPT and DATA in one write.
            (
                CS,
                b"MAIL FROM:<alice@example.org> SIZE=1000\r\nRCPT TO:<bob@example.net>\r\nRCPT TO:<john@example.net>\r\nDATA\r\n".to_vec(),
            ),
            (SC, b"250 ok\r\n250 ok\r\n250 ok\r\n354 go ahead\r\n".to_vec()),
            (CS, data),
            (SC, b"250 queued\r\n".to_vec()),
            (CS, b"QUIT\r\n".to_vec()),
            (SC, b"221 bye\r\n".to_vec()),
        ]
    }

    fn run(
        cfg: AppConfig,
        port: u16,
        parts: &[(Direction, Vec<u8>)],
        chunk: usize,
    ) -> Vec<AppOutput> {
        let mut st = AppState::new(cfg, 6, port);
        let mut out = Vec::new();
        for (d, b) in parts {
            for c in b.chunks(chunk.max(1)) {
                st.on_stream(*d, c, &mut out);
            }
        }
        st.on_close(&mut out);
        out
    }

    fn sha256(b: &[u8]) -> String {
        crate::util::hex(&Sha256::digest(b))
    }

    #[test]
    fn mail_record_buffers_and_attachments() {
        let out = run(AppConfig::default(), 25, &session(), usize::MAX);
        assert!(matches!(out[0], AppOutput::Detected(AppProto::Smtp)));
        let t = txs(&out);
        assert_eq!(t.len(), 2, "the mail, then QUIT's transaction");
        let m = t[0];
        assert!(m.complete);
        assert_eq!(m.eve["smtp"]["helo"], "client.example.org");
        assert_eq!(m.eve["smtp"]["mail_from"], "<alice@example.org>");
        assert_eq!(
            m.eve["smtp"]["rcpt_to"],
            serde_json::json!(["<bob@example.net>", "<john@example.net>"])
        );
        let e = &m.eve["email"];
        assert_eq!(e["from"], "Alice <alice@example.org>");
        assert_eq!(
            e["to"],
            serde_json::json!(["bob@example.net", "\"Doe, John\" <john@example.net>"])
        );
        assert_eq!(e["cc"], serde_json::json!(["carol@example.com"]));
        assert_eq!(e["status"], "PARSE_DONE");
        assert!(e.get("subject").is_none(), "subject is personal data");
        assert_eq!(
            e["attachment"],
            serde_json::json!(["invoice.exe", "notes.txt"])
        );
        assert_eq!(e["url"], serde_json::json!(["http://evil.example/a?b=1"]));
        assert_eq!(m.buffer(Buffer::SmtpHelo), Some(&b"client.example.org"[..]));
        assert_eq!(m.buffer(Buffer::EmailSubject), Some(&b"quarterly"[..]));
        assert_eq!(m.buffers_in(Buffer::SmtpRcptTo, CS).count(), 2);
        let f = files(&out);
        assert_eq!(f.len(), 2);
        assert_eq!(f[0].filename, b"invoice.exe");
        assert_eq!(f[0].sha256, sha256(&payload()));
        assert_eq!(f[0].size, payload().len() as u64);
        assert_eq!(f[0].state, FileState::Closed);
        assert_eq!(f[0].magic, Some("MS-DOS executable"));
        assert_eq!(f[0].tx_id, m.id);
        // Plain part: dot-unstuffed, the break before the boundary excluded.
        assert_eq!(f[1].sha256, sha256(b"line one\r\n.line two"));
        assert_eq!(f[1].magic, Some("ASCII text"));
        let data: Vec<&[u8]> = m.buffers_in(Buffer::SmtpFileData, CS).collect();
        assert_eq!(data, vec![&payload()[..], b"line one\r\n.line two"]);
        assert!(events(&out).is_empty(), "{:?}", events(&out));
        assert_eq!(t[1].eve["smtp"]["helo"], "client.example.org");
        assert!(t[1].eve.get("email").is_none());
    }

    #[test]
    fn byte_by_byte_equals_whole() {
        let whole = run(AppConfig::default(), 25, &session(), usize::MAX);
        for chunk in [1, 2, 3, 7, 100] {
            assert_eq!(
                run(AppConfig::default(), 25, &session(), chunk),
                whole,
                "chunk {chunk}"
            );
        }
    }

    #[test]
    fn subject_logged_only_when_allowed() {
        let cfg = AppConfig {
            smtp_log_subject: true,
            ..AppConfig::default()
        };
        let out = run(cfg, 25, &session(), usize::MAX);
        assert_eq!(txs(&out)[0].eve["email"]["subject"], "quarterly");
    }

    #[test]
    fn force_hash_adds_md5_and_sha1() {
        let cfg = AppConfig {
            file_hashes: FileHashes {
                md5: true,
                sha1: true,
            },
            ..AppConfig::default()
        };
        let out = run(cfg, 25, &session(), usize::MAX);
        let f = files(&out);
        assert_eq!(
            f[1].md5.as_deref(),
            Some(crate::util::md5_hex(b"line one\r\n.line two").as_str())
        );
        assert_eq!(f[1].sha1.as_ref().map(String::len), Some(40));
    }

    #[test]
    fn bdat_chunks_make_the_message() {
        let msg = message();
        let (a, b) = msg.split_at(msg.len() / 3);
        let parts = vec![
            (SC, b"220 mx ESMTP\r\n".to_vec()),
            (
                CS,
                b"EHLO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\n".to_vec(),
            ),
            (SC, b"250 mx\r\n250 ok\r\n250 ok\r\n".to_vec()),
            (CS, [format!("BDAT {}\r\n", a.len()).as_bytes(), a].concat()),
            (SC, b"250 ok\r\n".to_vec()),
            (
                CS,
                [format!("BDAT {} LAST\r\n", b.len()).as_bytes(), b].concat(),
            ),
            (SC, b"250 ok\r\n".to_vec()),
        ];
        for chunk in [usize::MAX, 5] {
            let out = run(AppConfig::default(), 587, &parts, chunk);
            let f = files(&out);
            assert_eq!(f.len(), 2);
            assert_eq!(f[0].sha256, sha256(&payload()));
            assert_eq!(txs(&out)[0].eve["email"]["attachment"][0], "invoice.exe");
        }
    }

    fn client_hello_sni(name: &[u8]) -> Vec<u8> {
        let mut sni = ((name.len() + 3) as u16).to_be_bytes().to_vec();
        sni.push(0);
        sni.extend_from_slice(&(name.len() as u16).to_be_bytes());
        sni.extend_from_slice(name);
        let mut ext = vec![0, 0];
        ext.extend_from_slice(&(sni.len() as u16).to_be_bytes());
        ext.extend(sni);
        let mut body = vec![3, 3];
        body.extend_from_slice(&[1u8; 32]);
        body.extend_from_slice(&[0, 0, 2, 0x13, 0x01, 1, 0]);
        body.extend_from_slice(&(ext.len() as u16).to_be_bytes());
        body.extend(ext);
        let mut hs = vec![1, 0, (body.len() >> 8) as u8, body.len() as u8];
        hs.extend(body);
        let mut rec = vec![0x16, 3, 1, (hs.len() >> 8) as u8, hs.len() as u8];
        rec.extend(hs);
        rec
    }

    #[test]
    fn starttls_hands_the_flow_to_tls() {
        let hello = client_hello_sni(b"mx.example.net");
        let parts = vec![
            (SC, b"220 mx ESMTP\r\n".to_vec()),
            (CS, b"EHLO c.example\r\n".to_vec()),
            (SC, b"250-mx\r\n250 STARTTLS\r\n".to_vec()),
            // The ClientHello comes before the reply was seen: kept.
            (CS, [&b"STARTTLS\r\n"[..], &hello].concat()),
            (SC, b"220 ready\r\n".to_vec()),
        ];
        let out = run(AppConfig::default(), 25, &parts, usize::MAX);
        let t = txs(&out);
        assert_eq!(t[0].proto, AppProto::Smtp);
        assert_eq!(t[0].eve["smtp"]["helo"], "c.example");
        let tls = t
            .iter()
            .find(|t| t.proto == AppProto::Tls)
            .expect("a TLS transaction");
        assert_eq!(tls.buffer(Buffer::TlsSni), Some(&b"mx.example.net"[..]));
        // Rejected: the bytes after STARTTLS are commands again.
        let parts = vec![
            (SC, b"220 mx ESMTP\r\n".to_vec()),
            (CS, b"EHLO c\r\nSTARTTLS\r\nMAIL FROM:<x@y>\r\n".to_vec()),
            (SC, b"250 mx\r\n454 no tls\r\n250 ok\r\n".to_vec()),
        ];
        let out = run(AppConfig::default(), 25, &parts, usize::MAX);
        assert!(events(&out).contains(&"smtp.tls_rejected"));
        assert_eq!(txs(&out)[0].eve["smtp"]["mail_from"], "<x@y>");
    }

    #[test]
    fn detection_by_greeting_on_mail_ports_and_by_ehlo_anywhere() {
        let greet = vec![(SC, b"220 host ESMTP\r\n".to_vec())];
        let out = run(AppConfig::default(), 25, &greet, usize::MAX);
        assert!(matches!(out[0], AppOutput::Detected(AppProto::Smtp)));
        // FTP greets the same way: not SMTP on 21.
        let out = run(AppConfig::default(), 21, &greet, usize::MAX);
        assert!(!out.iter().any(|o| matches!(o, AppOutput::Detected(_))));
        let ehlo = vec![(CS, b"ehlo me\r\n".to_vec())];
        let out = run(AppConfig::default(), 2525, &ehlo, usize::MAX);
        assert!(matches!(out[0], AppOutput::Detected(AppProto::Smtp)));
    }

    #[test]
    fn events_for_bad_replies_and_rejected_data() {
        let parts = vec![
            (SC, b"220 mx\r\n".to_vec()),
            (CS, b"HELO c\r\nMAIL FROM:<a@b>\r\nDATA\r\n".to_vec()),
            (
                SC,
                b"250 ok\r\n250 ok\r\n554 no\r\nxyz\r\n250 extra\r\n".to_vec(),
            ),
            (CS, b"NOOP\r\n".to_vec()),
        ];
        let out = run(AppConfig::default(), 25, &parts, usize::MAX);
        let ev = events(&out);
        for e in [
            "smtp.data_command_rejected",
            "smtp.invalid_reply",
            "smtp.unable_to_match_reply_with_request",
        ] {
            assert!(ev.contains(&e), "{e} in {ev:?}");
        }
        let long = vec![(SC, b"220 mx\r\n".to_vec()), (CS, vec![b'A'; 10_000])];
        let out = run(AppConfig::default(), 25, &long, usize::MAX);
        assert!(events(&out).contains(&"smtp.max_command_line_len_exceeded"));
    }

    #[test]
    fn cut_message_truncates_its_file() {
        let mut s = session();
        let data = s[5].1.clone();
        s[5].1 = data[..data.len() / 2].to_vec();
        s.truncate(6);
        let out = run(AppConfig::default(), 25, &s, usize::MAX);
        let f = files(&out);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].state, FileState::Truncated);
        assert_eq!(txs(&out).len(), 1);
    }

    #[test]
    fn every_truncation_and_hostile_bytes_are_safe() {
        let s = session();
        let flat: Vec<(Direction, Vec<u8>)> = s.clone();
        let total: usize = flat.iter().map(|(_, b)| b.len()).sum();
        for cut in (0..total).step_by(37) {
            let mut left = cut;
            let mut parts = Vec::new();
            for (d, b) in &flat {
                let n = left.min(b.len());
                parts.push((*d, b[..n].to_vec()));
                left -= n;
            }
            let _ = run(AppConfig::default(), 25, &parts, 11);
        }
        let mut x: u32 = 7;
        let mut junk = Vec::new();
        for _ in 0..20_000 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            junk.push(
                b"\r\n.-=:;\" <>abcDATABDAT 3 LAST--boundary0123456789+/"[(x >> 16) as usize % 51],
            );
        }
        let parts = vec![
            (SC, b"220 mx\r\n".to_vec()),
            (CS, b"EHLO a\r\nDATA\r\n".to_vec()),
            (CS, junk.clone()),
            (SC, junk),
        ];
        let mut st = AppState::new(AppConfig::default(), 6, 25);
        let mut out = Vec::new();
        for (d, b) in &parts {
            st.on_stream(*d, b, &mut out);
        }
        assert!(st.mem_bytes() < 256 * 1024, "{}", st.mem_bytes());
        st.on_close(&mut out);
    }
}
