//! App-layer protocol detection and parsers for HTTP/1.x, DNS (UDP and TCP),
//! TLS, SSH and SMTP (with MIME): per-flow state fed with reassembled stream
//! bytes or datagrams, producing transactions (EVE records with Suricata's
//! field names, plus the rule buffers Suricata's sticky buffers name), the
//! files they carry ([`FileInfo`]: hashes, type, size, state) and app-layer
//! anomaly events.
//!
//! # Contract
//!
//! * One [`AppState`] per flow, made with [`AppState::new`] from the flow's
//!   IP protocol (6 or 17) and destination port (of the flow's first
//!   packet), optionally [`AppState::with_src_port`]; or with
//!   [`AppState::with_proto`] when the protocol is configured. It is owned
//!   by the worker that owns the flow; no locks.
//! * TCP: call [`AppState::on_stream`] with every chunk the reassembler
//!   delivers, in order, per direction ([`Direction::ToServer`] = from the
//!   flow's first sender). When the reassembler's offset jumps (a gap), call
//!   [`AppState::on_gap`] with the number of missing bytes first. UDP: call
//!   [`AppState::on_datagram`] with each payload. At flow end call
//!   [`AppState::on_close`] (flushes transactions still open).
//! * A file ([`AppOutput::File`]) is output after the transaction it belongs
//!   to; it holds hash states and its first 512 bytes while in progress,
//!   never its data.
//! * Outputs of a call are appended to the caller's vector and belong to the
//!   packet that caused the call: a transaction record is attributed to the
//!   packet whose bytes completed it, like Suricata's per-packet logging.
//! * A transaction can be output twice: once when its to_server side is done
//!   ([`Transaction::complete`] false: run to_server rules) and once when it
//!   is done ([`Transaction::complete`] true: run to_client rules, log the
//!   EVE record). [`Transaction::id`] is stable across both, so "rules run
//!   once per transaction" is keyed by `(flow, tx id, direction)`.
//! * When the first bytes seen are the server's (capture started late),
//!   [`AppState::reversed`] becomes true and the state swaps directions
//!   itself; outputs are then in real client/server terms.
//! * Protocol detection is by content (first bytes of either direction),
//!   never by port alone; when the content disagrees with a well-known port
//!   (SSH on 80, HTTP on 443, ...) the event
//!   `applayer.protocol_port_mismatch` is output once.
//! * Buffers: [`Transaction::buffer`] / [`Transaction::buffer_in`] /
//!   [`Transaction::buffers_in`] with a [`Buffer`] (one per Suricata sticky
//!   buffer; [`Buffer::from_keyword`] maps rule keywords, legacy modifiers
//!   included); numbers in [`Transaction::nums`]; the EVE object in
//!   [`Transaction::eve`] under [`Transaction::eve_key`]; for DNS, the
//!   typed [`Transaction::dns`] ([`DnsObservation`]) that the anomaly
//!   detectors read instead of the EVE text.
//! * Nothing panics on any input. Memory per flow is bounded by
//!   [`AppConfig`]: probing bytes, line and header sizes, body depth,
//!   decompressed bytes, pending pipelined transactions, TLS handshake
//!   message size, certificates kept, SSH banner and KEXINIT size. At a
//!   bound the parser raises an event and skips, it does not grow.
//! * Malformed input raises an [`AppEvent`] (Suricata's app-layer event
//!   names, `http.request_header_invalid`, `dns.malformed_data`,
//!   `tls.invalid_record_type`, `ssh.invalid_banner`, ...); see
//!   `docs/applayer.md` for the list.
#![deny(missing_docs)]

mod buffer;
mod detect;
mod dns;
mod files;
mod http;
mod mime;
mod smtp;
mod ssh;
mod tls;
mod util;

#[cfg(test)]
mod tests;

pub use buffer::{Buffer, BufferDir};
pub use files::{magic, FileHashes, FileInfo, FileState};
pub use zonewatch_types::Direction;

use serde_json::Value;

/// An application protocol zonewatch parses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AppProto {
    /// HTTP/1.x.
    Http,
    /// DNS over UDP or TCP.
    Dns,
    /// TLS (and SSLv3).
    Tls,
    /// SSH.
    Ssh,
    /// SMB (detected only: flow `app_proto`, no records or buffers).
    Smb,
    /// SMTP (mail: `smtp` and `email` records, attachments as files).
    Smtp,
}

impl AppProto {
    /// Suricata's name (EVE `app_proto`, `app-layer-protocol:` keyword).
    pub fn name(self) -> &'static str {
        match self {
            AppProto::Http => "http",
            AppProto::Dns => "dns",
            AppProto::Tls => "tls",
            AppProto::Ssh => "ssh",
            AppProto::Smb => "smb",
            AppProto::Smtp => "smtp",
        }
    }

    /// Parses a Suricata app-layer protocol name (`http1` and `http` alike).
    pub fn from_name(s: &str) -> Option<AppProto> {
        match s {
            "http" | "http1" => Some(AppProto::Http),
            "dns" => Some(AppProto::Dns),
            "tls" => Some(AppProto::Tls),
            "ssh" => Some(AppProto::Ssh),
            "smb" => Some(AppProto::Smb),
            "smtp" => Some(AppProto::Smtp),
            _ => None,
        }
    }
}

/// Bounds and switches of the app layer (one copy per flow; cheap to copy).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppConfig {
    /// Parse HTTP (`app-layer.protocols.http.enabled`).
    pub http: bool,
    /// Parse DNS.
    pub dns: bool,
    /// Parse TLS.
    pub tls: bool,
    /// Parse SSH.
    pub ssh: bool,
    /// Detect SMB (no parser: the flow's `app_proto` and direction only).
    pub smb: bool,
    /// Bytes of each direction kept for protocol detection before giving up.
    pub probe_bytes: usize,
    /// Request body bytes kept per transaction (Suricata `request-body-limit`).
    pub http_request_body_limit: usize,
    /// Response body bytes kept per transaction, after decompression
    /// (Suricata `response-body-limit`). Decompression stops there.
    pub http_response_body_limit: usize,
    /// Longest start or header line kept (libhtp `field-limit`); longer ones
    /// are cut and raise `*_field_too_long`.
    pub http_field_limit: usize,
    /// Headers kept per message (libhtp `headers-limit`).
    pub http_max_headers: usize,
    /// Raw header bytes kept per message.
    pub http_max_header_bytes: usize,
    /// Requests waiting for their response (pipelining); past it the oldest
    /// is output without response.
    pub http_max_pending: usize,
    /// Largest TLS handshake message parsed (a bigger one raises
    /// `tls.handshake_invalid_length` and stops that direction).
    pub tls_max_handshake_bytes: usize,
    /// Certificates of a chain kept (`tls.certs`).
    pub tls_max_certs: usize,
    /// Largest SSH packet parsed before key exchange (KEXINIT).
    pub ssh_max_record_bytes: usize,
    /// Keep inspecting TLS payload with content rules once the session is
    /// encrypted (Suricata's `app-layer.protocols.tls.encryption-handling:
    /// full`); by default (`default`) payload inspection of the flow ends
    /// at its first application data record, as in Suricata.
    pub tls_inspect_encrypted: bool,
    /// The same for SSH (payload inspection ends once both sides sent
    /// NEWKEYS).
    pub ssh_inspect_encrypted: bool,
    /// Largest DNS message over TCP kept (length prefix up to 65535).
    pub dns_max_tcp_message: usize,
    /// Answers, authorities and additionals parsed per DNS message.
    pub dns_max_records: usize,
    /// Parse SMTP.
    pub smtp: bool,
    /// Longest mail header value kept (Suricata `header-value-depth`,
    /// 2000); longer ones are cut and raise `smtp.mime_long_header_value`.
    pub smtp_max_header_value: usize,
    /// Headers of a message kept (for `email` and its buffers).
    pub smtp_max_headers: usize,
    /// Decoded bytes of each attachment kept for `file_data` rules.
    pub smtp_file_data_depth: usize,
    /// Write the mail's subject in the `email` record (personal data: off
    /// by default; the `email.subject` buffer is filled either way).
    pub smtp_log_subject: bool,
    /// Hashes of files besides SHA-256 (Suricata `force-hash`).
    pub file_hashes: FileHashes,
    /// HTTP bodies are tracked as files (hashed, typed, `fileinfo`): off
    /// when nothing reads files (no `fileinfo` records written), which
    /// saves hashing every body.
    pub track_files: bool,
    /// Decoded (gzip/deflate) bytes of one HTTP body hashed as a file;
    /// past it the file is TRUNCATED and decoding stops (compression
    /// bombs cost at most this much hashing).
    pub file_decompress_limit: u64,
}

impl Default for AppConfig {
    fn default() -> Self {
        AppConfig {
            http: true,
            dns: true,
            tls: true,
            ssh: true,
            smb: true,
            probe_bytes: 2048,
            http_request_body_limit: 100 * 1024,
            http_response_body_limit: 100 * 1024,
            http_field_limit: 18000,
            http_max_headers: 1024,
            http_max_header_bytes: 64 * 1024,
            http_max_pending: 16,
            tls_max_handshake_bytes: 256 * 1024,
            tls_max_certs: 16,
            ssh_max_record_bytes: 64 * 1024,
            tls_inspect_encrypted: false,
            ssh_inspect_encrypted: false,
            dns_max_tcp_message: 65535,
            dns_max_records: 256,
            smtp: true,
            smtp_max_header_value: 2000,
            smtp_max_headers: 256,
            smtp_file_data_depth: 100 * 1024,
            smtp_log_subject: false,
            file_hashes: FileHashes::default(),
            track_files: true,
            file_decompress_limit: 128 << 20,
        }
    }
}

/// An app-layer anomaly (Suricata app-layer event).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppEvent {
    /// Rule keyword form, as in `app-layer-event:` (`http.request_header_invalid`,
    /// `applayer.protocol_port_mismatch`).
    pub name: &'static str,
    /// Direction of the data that raised it.
    pub dir: Direction,
    /// Transaction it belongs to, when there is one.
    pub tx_id: Option<u64>,
}

impl AppEvent {
    /// The protocol prefix (`http`, `dns`, `tls`, `ssh`, `applayer`).
    pub fn layer(&self) -> &'static str {
        self.name.split('.').next().unwrap_or("")
    }

    /// EVE `anomaly.event` spelling: the part after the prefix, upper case
    /// (`REQUEST_HEADER_INVALID`), as Suricata writes app-layer anomalies.
    pub fn eve_event(&self) -> String {
        self.name
            .split_once('.')
            .map(|(_, e)| e)
            .unwrap_or(self.name)
            .to_ascii_uppercase()
    }
}

/// Numeric fields rules test directly.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TxNums {
    /// Length of the normalized URI (`urilen`); the raw length is
    /// [`TxNums::urilen_raw`].
    pub urilen: Option<usize>,
    /// Length of the raw URI (`urilen:...,raw`).
    pub urilen_raw: Option<usize>,
    /// HTTP status code.
    pub http_status: Option<u16>,
    /// DNS opcode (`dns.opcode`).
    pub dns_opcode: Option<u8>,
    /// DNS rcode.
    pub dns_rcode: Option<u8>,
    /// TLS version negotiated (server's, incl. supported_versions), else the
    /// client's legacy version; `0x0304` = TLS 1.3.
    pub tls_version: Option<u16>,
    /// Server certificate notBefore, Unix seconds (`tls_cert_notbefore`).
    pub tls_not_before: Option<i64>,
    /// Server certificate notAfter, Unix seconds (`tls_cert_notafter`).
    pub tls_not_after: Option<i64>,
}

/// One parsed transaction: an HTTP request/response pair, a DNS message, a
/// TLS handshake or an SSH session start.
#[derive(Debug, Clone, PartialEq)]
pub struct Transaction {
    /// Protocol.
    pub proto: AppProto,
    /// Per-flow transaction number, from 0 (EVE `tx_id`).
    pub id: u64,
    /// False when only the to_server side is done (output early so
    /// to_server rules run); true once the transaction is done.
    pub complete: bool,
    /// The EVE object for the protocol key (`{"hostname": ..}` for the
    /// `"http"` key); see [`Transaction::eve_key`].
    pub eve: Value,
    /// Numeric fields.
    pub nums: TxNums,
    /// DNS: the message as the DNS-tunnel detector measures it (with a
    /// question only).
    pub dns: Option<DnsObservation>,
    bufs: Vec<(Buffer, Direction, Bytes)>,
    /// The bytes of every [`Bytes::Shared`] buffer, one after the other:
    /// a transaction has tens of buffers of a few bytes each, and one
    /// allocation for all of them instead of one each is what keeps
    /// building transactions cheap (allocation was a quarter of the
    /// per-packet CPU without rules).
    arena: Vec<u8>,
}

/// Where one buffer's bytes are.
#[derive(Debug, Clone, PartialEq)]
enum Bytes {
    /// `arena[start..start + len]`.
    Shared { start: u32, len: u32 },
    /// Its own allocation: bodies, moved in whole rather than copied.
    Own(Vec<u8>),
}

/// One DNS message (query or response) as the DNS-tunnel detector sees
/// it: typed and measured on the wire, not read back from the EVE record
/// (whose `\xNN` escapes would count a binary byte as four).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DnsObservation {
    /// The first question's name, as EVE `rrname` writes it.
    pub qname: String,
    /// The first question's type (1 A, 16 TXT, 10 NULL, ...).
    pub rrtype: u16,
    /// A response (QR bit set).
    pub response: bool,
    /// Response code (4 bits).
    pub rcode: u8,
    /// Answer records parsed (responses).
    pub answer_count: usize,
    /// Rdata bytes of those answer records.
    pub answer_bytes: usize,
    /// Data bytes of TXT (strings without their length octets) and NULL
    /// answer records.
    pub txt_null_bytes: usize,
}

impl Transaction {
    pub(crate) fn new(proto: AppProto, id: u64) -> Self {
        Transaction {
            proto,
            id,
            complete: false,
            eve: Value::Object(Default::default()),
            nums: TxNums::default(),
            dns: None,
            bufs: Vec::with_capacity(16),
            arena: Vec::new(),
        }
    }

    fn bytes<'a>(&'a self, b: &'a Bytes) -> &'a [u8] {
        match b {
            Bytes::Shared { start, len } => {
                &self.arena[*start as usize..(*start as usize + *len as usize)]
            }
            Bytes::Own(v) => v,
        }
    }

    /// The EVE key (and `event_type`) of [`Transaction::eve`]: `http`, `dns`, `tls`, `ssh`.
    pub fn eve_key(&self) -> &'static str {
        self.proto.name()
    }

    /// The first value of a buffer, from the side it belongs to
    /// ([`Buffer::dir`]); for [`BufferDir::Both`] buffers the to_server
    /// value if there is one, else the to_client one. (A DNS response's
    /// question names are under `buffers_in(Buffer::DnsQuery, ToClient)`;
    /// `buffer(Buffer::DnsQuery)` only gives queries, as Suricata's
    /// `dns.query` only inspects requests.)
    pub fn buffer(&self, b: Buffer) -> Option<&[u8]> {
        match b.dir() {
            BufferDir::ToServer => self.buffer_in(b, Direction::ToServer),
            BufferDir::ToClient => self.buffer_in(b, Direction::ToClient),
            BufferDir::Both => self
                .buffer_in(b, Direction::ToServer)
                .or_else(|| self.buffer_in(b, Direction::ToClient)),
        }
    }

    /// The first value of a buffer filled from direction `dir`.
    pub fn buffer_in(&self, b: Buffer, dir: Direction) -> Option<&[u8]> {
        self.buffers_in(b, dir).next()
    }

    /// Every value of a buffer from one direction, in order
    /// (multi-valued buffers: `dns.query` per question, `tls.certs` per
    /// certificate of the chain, `tls.alpn` per protocol).
    pub fn buffers_in(&self, b: Buffer, dir: Direction) -> impl Iterator<Item = &[u8]> {
        self.bufs
            .iter()
            .filter(move |(x, d, _)| *x == b && *d == dir)
            .map(|(_, _, v)| self.bytes(v))
    }

    /// Every `(buffer, direction, bytes)` the transaction holds (for the
    /// multi-pattern prefilter).
    pub fn all_buffers(&self) -> impl Iterator<Item = (Buffer, Direction, &[u8])> {
        self.bufs.iter().map(|(b, d, v)| (*b, *d, self.bytes(v)))
    }

    /// Sets a buffer (replacing its value) to a copy of `v`.
    pub(crate) fn set(&mut self, b: Buffer, dir: Direction, v: &[u8]) {
        self.set_with(b, dir, |out| out.extend_from_slice(v));
    }

    /// Sets a buffer to the bytes `fill` appends to the vector it is given
    /// (which may already hold other buffers' bytes: append only).
    pub(crate) fn set_with(&mut self, b: Buffer, dir: Direction, fill: impl FnOnce(&mut Vec<u8>)) {
        self.unset(b, dir);
        self.push_with(b, dir, fill);
    }

    /// Sets a buffer to `v` itself (no copy: for bodies).
    pub(crate) fn set_owned(&mut self, b: Buffer, dir: Direction, v: Vec<u8>) {
        self.unset(b, dir);
        self.bufs.push((b, dir, Bytes::Own(v)));
    }

    /// Adds one more value to a multi-valued buffer.
    pub(crate) fn push(&mut self, b: Buffer, dir: Direction, v: &[u8]) {
        self.push_with(b, dir, |out| out.extend_from_slice(v));
    }

    pub(crate) fn push_with(&mut self, b: Buffer, dir: Direction, fill: impl FnOnce(&mut Vec<u8>)) {
        if self.arena.capacity() == 0 {
            self.arena.reserve(1024);
        }
        let start = self.arena.len();
        fill(&mut self.arena);
        let len = self.arena.len() - start;
        // Past 4 GiB the offsets would not fit: such a value (never seen:
        // buffers are bounded far below) gets its own allocation.
        match (u32::try_from(start), u32::try_from(len)) {
            (Ok(start), Ok(len)) => self.bufs.push((b, dir, Bytes::Shared { start, len })),
            _ => {
                let own = self.arena.split_off(start);
                self.bufs.push((b, dir, Bytes::Own(own)));
            }
        }
    }

    fn unset(&mut self, b: Buffer, dir: Direction) {
        // The bytes of a replaced shared value stay in the arena until the
        // transaction is dropped (values are replaced rarely and are small).
        self.bufs.retain(|(x, d, _)| !(*x == b && *d == dir));
    }

    /// Bytes held by the buffers (memory accounting).
    pub fn buffer_bytes(&self) -> usize {
        self.arena.len()
            + self
                .bufs
                .iter()
                .map(|(_, _, v)| match v {
                    Bytes::Own(v) => v.len(),
                    Bytes::Shared { .. } => 0,
                })
                .sum::<usize>()
    }
}

/// What a call to the state produced.
#[derive(Debug, Clone, PartialEq)]
pub enum AppOutput {
    /// The flow's protocol was identified (once per flow).
    Detected(AppProto),
    /// A transaction is ready (see the crate docs for the two outputs).
    Tx(Box<Transaction>),
    /// An anomaly.
    Event(AppEvent),
    /// A file of a transaction ended (EVE `fileinfo`); output after its
    /// transaction.
    File(Box<FileInfo>),
}

/// The protocol a well-known port promises (`None`: no promise).
pub fn expected_proto(ipproto: u8, port: u16) -> Option<AppProto> {
    match (ipproto, port) {
        (6, 80 | 8080 | 8000 | 3128) => Some(AppProto::Http),
        (6, 443 | 8443 | 465 | 636 | 853 | 993 | 995) => Some(AppProto::Tls),
        (6, 22) => Some(AppProto::Ssh),
        (6, 25 | 587) => Some(AppProto::Smtp),
        (6 | 17, 53) => Some(AppProto::Dns),
        _ => None,
    }
}

enum Parser {
    None,
    Http(Box<http::HttpState>),
    Dns(Box<dns::DnsTcp>),
    Tls(Box<tls::TlsState>),
    Ssh(Box<ssh::SshState>),
    Smtp(Box<smtp::SmtpState>),
}

/// Per-flow app-layer state.
pub struct AppState {
    cfg: AppConfig,
    ipproto: u8,
    dport: u16,
    sport: u16,
    reversed: bool,
    proto: Option<AppProto>,
    failed: bool,
    probe: [Vec<u8>; 2],
    probe_done: [bool; 2],
    /// Bytes of a direction dropped while waiting for detection.
    probe_lost: [bool; 2],
    /// A gap came before the bytes kept for a direction that gave up.
    probe_gap_first: [bool; 2],
    udp_misses: u8,
    parser: Parser,
    next_tx: u64,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("ipproto", &self.ipproto)
            .field("dport", &self.dport)
            .field("proto", &self.proto)
            .field("failed", &self.failed)
            .finish()
    }
}

pub(crate) fn di(d: Direction) -> usize {
    match d {
        Direction::ToServer => 0,
        Direction::ToClient => 1,
    }
}

/// Collects outputs of one call and numbers transactions.
pub(crate) struct Out<'a> {
    pub(crate) v: &'a mut Vec<AppOutput>,
    pub(crate) next_tx: &'a mut u64,
}

impl Out<'_> {
    pub(crate) fn event(&mut self, name: &'static str, dir: Direction, tx_id: Option<u64>) {
        self.v.push(AppOutput::Event(AppEvent { name, dir, tx_id }));
    }
    pub(crate) fn tx(&mut self, tx: Transaction) {
        self.v.push(AppOutput::Tx(Box::new(tx)));
    }
    pub(crate) fn file(&mut self, f: FileInfo) {
        self.v.push(AppOutput::File(Box::new(f)));
    }
    pub(crate) fn new_tx_id(&mut self) -> u64 {
        let id = *self.next_tx;
        *self.next_tx += 1;
        id
    }
}

impl AppState {
    /// State for a new flow: `ipproto` 6 (TCP) or 17 (UDP), `dst_port` the
    /// server port. Other protocols are accepted and never detect anything.
    pub fn new(cfg: AppConfig, ipproto: u8, dst_port: u16) -> Self {
        AppState {
            cfg,
            ipproto,
            dport: dst_port,
            sport: 0,
            reversed: false,
            proto: None,
            failed: false,
            probe: [Vec::new(), Vec::new()],
            probe_done: [false; 2],
            probe_lost: [false; 2],
            probe_gap_first: [false; 2],
            udp_misses: 0,
            parser: Parser::None,
            next_tx: 0,
        }
    }

    /// State for a flow whose protocol is already known (configured by
    /// port, or for fuzzing a parser): no detection, no mismatch event.
    /// For UDP only [`AppProto::Dns`] is meaningful.
    pub fn with_proto(cfg: AppConfig, ipproto: u8, dst_port: u16, proto: AppProto) -> Self {
        let mut s = AppState::new(cfg, ipproto, dst_port);
        let mut sink = Vec::new();
        if ipproto == 17 {
            s.proto = Some(proto);
        } else {
            s.start(proto, &mut sink);
        }
        s
    }

    /// Also tells the state the flow's source port (of its first packet):
    /// used to recognise a server port on either side (DNS on UDP 53 where
    /// the first datagram seen was the response, NetBIOS excluded).
    pub fn with_src_port(mut self, sport: u16) -> Self {
        self.sport = sport;
        self
    }

    /// True when detection found the flow's first sender to be the server
    /// (the capture missed the client's first bytes, e.g. a response seen
    /// first). From then on, the state swaps directions itself: callers keep
    /// passing the flow's directions, and every [`Transaction`] buffer and
    /// [`AppEvent::dir`] is in the *swapped* (real client/server) sense; an
    /// EVE writer should swap src/dest for app-layer records of this flow,
    /// as Suricata does. `applayer.wrong_direction_first_data` is raised.
    pub fn reversed(&self) -> bool {
        self.reversed
    }

    /// The protocol detected, if any.
    pub fn app_proto(&self) -> Option<AppProto> {
        self.proto
    }

    /// The session is encrypted from here on and its payload is no longer
    /// inspected by content rules (Suricata's default `encryption-handling`
    /// for TLS, and SSH after NEWKEYS): the flow's packets and stream then
    /// only meet header, flow and transaction rules.
    pub fn payload_inspection_over(&self) -> bool {
        match &self.parser {
            Parser::Tls(t) => !self.cfg.tls_inspect_encrypted && t.app_data_seen(),
            Parser::Ssh(s) => !self.cfg.ssh_inspect_encrypted && s.encrypted(),
            _ => false,
        }
    }

    /// True when detection gave up on this flow (no parser will run).
    pub fn detection_failed(&self) -> bool {
        self.failed
    }

    /// Approximate heap bytes held by this flow's state.
    pub fn mem_bytes(&self) -> usize {
        let p = self.probe[0].capacity() + self.probe[1].capacity();
        p + match &self.parser {
            Parser::None => 0,
            Parser::Http(h) => h.mem_bytes(),
            Parser::Dns(d) => d.mem_bytes(),
            Parser::Tls(t) => t.mem_bytes(),
            Parser::Ssh(s) => s.mem_bytes(),
            Parser::Smtp(s) => s.mem_bytes(),
        }
    }

    /// Feeds in-order reassembled TCP bytes of one direction.
    pub fn on_stream(&mut self, dir: Direction, data: &[u8], out: &mut Vec<AppOutput>) {
        if data.is_empty() || self.failed || self.ipproto != 6 {
            return;
        }
        let dir = if self.reversed {
            detect::other(dir)
        } else {
            dir
        };
        if self.proto.is_none() {
            let d = di(dir);
            let room = self.cfg.probe_bytes.saturating_sub(self.probe[d].len());
            let take = room.min(data.len());
            if self.probe_done[d] {
                // This side gave up; keep its bytes (bounded) for the parser
                // in case the other side identifies the protocol.
                self.probe[d].extend_from_slice(&data[..take]);
                if take < data.len() {
                    self.probe_lost[d] = true;
                }
                return;
            }
            self.probe[d].extend_from_slice(&data[..take]);
            match detect::probe_tcp(&self.probe[d], dir, self.dport, &self.cfg) {
                detect::Probe::Match(p, rev) => {
                    self.start(p, out);
                    let (d, dir) = if rev {
                        self.reverse(out);
                        self.probe.swap(0, 1);
                        self.probe_lost.swap(0, 1);
                        self.probe_gap_first.swap(0, 1);
                        (1 - d, detect::other(dir))
                    } else {
                        (d, dir)
                    };
                    self.check_port(dir, out);
                    // Replay what both sides sent so far, this side's first.
                    let mine = std::mem::take(&mut self.probe[d]);
                    let other = std::mem::take(&mut self.probe[1 - d]);
                    let other_lost = self.probe_lost[1 - d];
                    let odir = detect::other(dir);
                    self.probe = [Vec::new(), Vec::new()];
                    self.feed(dir, &mine, out);
                    if take < data.len() {
                        self.feed(dir, &data[take..], out);
                    }
                    if self.probe_gap_first[1 - d] {
                        self.on_gap_inner(odir, 0, out);
                    }
                    if !other.is_empty() {
                        self.feed(odir, &other, out);
                    }
                    if other_lost {
                        self.on_gap_inner(odir, 0, out);
                    }
                }
                detect::Probe::NeedMore if self.probe[d].len() < self.cfg.probe_bytes => {}
                _ => {
                    self.probe_done[d] = true;
                    if take < data.len() {
                        self.probe_lost[d] = true;
                    }
                    if self.probe_done[0] && self.probe_done[1] {
                        self.failed = true;
                        self.probe = [Vec::new(), Vec::new()];
                    }
                }
            }
            return;
        }
        self.feed(dir, data, out);
    }

    /// `len` bytes of direction `dir` will never be seen (reassembly gap).
    pub fn on_gap(&mut self, dir: Direction, len: u64, out: &mut Vec<AppOutput>) {
        let dir = if self.reversed {
            detect::other(dir)
        } else {
            dir
        };
        self.on_gap_inner(dir, len, out);
    }

    fn on_gap_inner(&mut self, dir: Direction, len: u64, out: &mut Vec<AppOutput>) {
        let mut o = Out {
            v: out,
            next_tx: &mut self.next_tx,
        };
        match &mut self.parser {
            Parser::None => {
                // Detection cannot continue on this side.
                let d = di(dir);
                self.probe_done[d] = true;
                self.probe[d] = Vec::new();
                self.probe_gap_first[d] = true;
                if self.proto.is_none() && self.probe_done[0] && self.probe_done[1] {
                    self.failed = true;
                }
            }
            Parser::Http(h) => h.gap(dir, len, &mut o),
            Parser::Dns(x) => x.gap(dir),
            Parser::Tls(t) => t.gap(dir),
            Parser::Ssh(s) => s.gap(dir),
            Parser::Smtp(s) => s.gap(dir, &mut o),
        }
    }

    /// Feeds one UDP payload.
    pub fn on_datagram(&mut self, dir: Direction, payload: &[u8], out: &mut Vec<AppOutput>) {
        if self.ipproto != 17 || !self.cfg.dns || self.failed {
            return;
        }
        if self.proto.is_none() {
            match detect::probe_udp_dns(payload, dir, self.sport, self.dport) {
                Some(rev) => {
                    self.proto = Some(AppProto::Dns);
                    out.push(AppOutput::Detected(AppProto::Dns));
                    if rev {
                        self.reverse(out);
                    }
                    self.check_port(dir, out);
                }
                None => {
                    // Give up after a few datagrams that are not DNS.
                    self.probe_done[di(dir)] = true;
                    self.udp_misses = self.udp_misses.saturating_add(1);
                    if self.udp_misses >= 4 {
                        self.failed = true;
                    }
                    return;
                }
            }
        }
        let dir = if self.reversed {
            detect::other(dir)
        } else {
            dir
        };
        let mut o = Out {
            v: out,
            next_tx: &mut self.next_tx,
        };
        dns::parse_message(payload, dir, &self.cfg, &mut o);
    }

    /// Flow ended: outputs transactions still open (complete, with what was
    /// seen).
    pub fn on_close(&mut self, out: &mut Vec<AppOutput>) {
        let mut o = Out {
            v: out,
            next_tx: &mut self.next_tx,
        };
        match &mut self.parser {
            Parser::Http(h) => h.close(&mut o),
            Parser::Tls(t) => t.close(&mut o),
            Parser::Ssh(s) => s.close(&mut o),
            Parser::Smtp(s) => s.close(&mut o),
            Parser::Dns(_) | Parser::None => {}
        }
    }

    fn reverse(&mut self, out: &mut Vec<AppOutput>) {
        self.reversed = true;
        std::mem::swap(&mut self.sport, &mut self.dport);
        out.push(AppOutput::Event(AppEvent {
            name: "applayer.wrong_direction_first_data",
            dir: Direction::ToServer,
            tx_id: None,
        }));
    }

    fn check_port(&self, dir: Direction, out: &mut Vec<AppOutput>) {
        if let (Some(p), Some(e)) = (self.proto, expected_proto(self.ipproto, self.dport)) {
            if p != e {
                out.push(AppOutput::Event(AppEvent {
                    name: "applayer.protocol_port_mismatch",
                    dir,
                    tx_id: None,
                }));
            }
        }
    }

    fn start(&mut self, p: AppProto, out: &mut Vec<AppOutput>) {
        self.proto = Some(p);
        out.push(AppOutput::Detected(p));
        self.parser = match p {
            AppProto::Http => Parser::Http(Box::new(http::HttpState::new(self.cfg))),
            AppProto::Dns => Parser::Dns(Box::new(dns::DnsTcp::new(self.cfg))),
            AppProto::Tls => Parser::Tls(Box::new(tls::TlsState::new(self.cfg))),
            AppProto::Ssh => Parser::Ssh(Box::new(ssh::SshState::new(self.cfg))),
            AppProto::Smtp => Parser::Smtp(Box::new(smtp::SmtpState::new(self.cfg))),
            AppProto::Smb => Parser::None,
        };
    }

    fn feed(&mut self, dir: Direction, data: &[u8], out: &mut Vec<AppOutput>) {
        let mut o = Out {
            v: out,
            next_tx: &mut self.next_tx,
        };
        match &mut self.parser {
            Parser::None => {}
            Parser::Http(h) => h.input(dir, data, &mut o),
            Parser::Dns(x) => x.input(dir, data, &mut o),
            Parser::Tls(t) => t.input(dir, data, &mut o),
            Parser::Ssh(s) => s.input(dir, data, &mut o),
            Parser::Smtp(s) => s.input(dir, data, &mut o),
        }
        let handoff = match &mut self.parser {
            Parser::Smtp(s) => s.take_handoff(),
            _ => None,
        };
        if let Some((client, server)) = handoff {
            self.starttls(client, server, out);
        }
    }

    /// STARTTLS was accepted: the flow continues as TLS, as Suricata's
    /// protocol upgrade. The client bytes that came after the command and
    /// the server's after its reply are the first TLS bytes of each side.
    /// The flow's protocol stays SMTP; the TLS records follow it.
    fn starttls(&mut self, client: Vec<u8>, server: Vec<u8>, out: &mut Vec<AppOutput>) {
        self.parser = Parser::Tls(Box::new(tls::TlsState::new(self.cfg)));
        if !client.is_empty() {
            self.feed(Direction::ToServer, &client, out);
        }
        if !server.is_empty() {
            self.feed(Direction::ToClient, &server, out);
        }
    }
}
