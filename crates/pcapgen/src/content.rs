//! Application-layer payload builders: HTTP/1.1, TLS 1.3, DNS and SSH.

use std::collections::VecDeque;

use crate::rng::Rng;

/// A piece of an application message; large parts are generated lazily.
#[derive(Debug)]
pub enum Chunk {
    /// Literal bytes and the read position.
    Bytes(Vec<u8>, usize),
    /// `len` bytes of the shared text corpus starting at `off` (wrapping).
    Text { off: usize, len: usize },
    /// `len` random (encrypted-looking) bytes.
    Random(usize),
}

/// One application message sent in one direction (split into TCP segments).
#[derive(Debug)]
pub struct Msg {
    pub from_client: bool,
    pub remaining: usize,
    chunks: VecDeque<Chunk>,
}

impl Msg {
    pub fn len(&self) -> usize {
        self.remaining
    }

    pub fn is_empty(&self) -> bool {
        self.remaining == 0
    }

    /// Moves up to `n` bytes of the message into `out` (which is cleared first).
    pub fn take(&mut self, n: usize, out: &mut Vec<u8>, rng: &mut Rng, corpus: &[u8]) {
        out.clear();
        let mut want = n.min(self.remaining);
        self.remaining -= want;
        while want > 0 {
            let Some(front) = self.chunks.front_mut() else {
                break;
            };
            let done = match front {
                Chunk::Bytes(v, pos) => {
                    let k = want.min(v.len() - *pos);
                    out.extend_from_slice(&v[*pos..*pos + k]);
                    *pos += k;
                    want -= k;
                    *pos == v.len()
                }
                Chunk::Text { off, len } => {
                    let k = want.min(*len);
                    let mut left = k;
                    while left > 0 {
                        let start = *off % corpus.len();
                        let m = left.min(corpus.len() - start);
                        out.extend_from_slice(&corpus[start..start + m]);
                        *off += m;
                        left -= m;
                    }
                    *len -= k;
                    want -= k;
                    *len == 0
                }
                Chunk::Random(len) => {
                    let k = want.min(*len);
                    rng.extend(out, k);
                    *len -= k;
                    want -= k;
                    *len == 0
                }
            };
            if done {
                self.chunks.pop_front();
            }
        }
    }
}

/// Accumulates chunks of one message.
#[derive(Default)]
pub struct MsgBuilder {
    chunks: VecDeque<Chunk>,
    len: usize,
}

impl MsgBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn bytes(&mut self, v: Vec<u8>) -> &mut Self {
        if !v.is_empty() {
            self.len += v.len();
            self.chunks.push_back(Chunk::Bytes(v, 0));
        }
        self
    }

    pub fn text(&mut self, off: usize, len: usize) -> &mut Self {
        if len > 0 {
            self.len += len;
            self.chunks.push_back(Chunk::Text { off, len });
        }
        self
    }

    pub fn random(&mut self, len: usize) -> &mut Self {
        if len > 0 {
            self.len += len;
            self.chunks.push_back(Chunk::Random(len));
        }
        self
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn build(self, from_client: bool) -> Msg {
        Msg {
            from_client,
            remaining: self.len,
            chunks: self.chunks,
        }
    }
}

// ---------------------------------------------------------------- text corpus

const WORDS: &[&str] = &[
    "lorem",
    "ipsum",
    "dolor",
    "sit",
    "amet",
    "consectetur",
    "adipiscing",
    "elit",
    "sed",
    "do",
    "eiusmod",
    "tempor",
    "incididunt",
    "labore",
    "magna",
    "aliqua",
    "network",
    "zone",
    "city",
    "traffic",
    "sensor",
    "report",
    "weather",
    "market",
    "update",
    "council",
    "transport",
    "library",
    "festival",
    "river",
    "bridge",
    "station",
    "school",
    "harbour",
    "museum",
    "garden",
    "event",
    "ticket",
    "service",
    "notice",
];

/// Builds a deterministic HTML-ish text corpus that HTTP bodies are sliced from.
pub fn build_corpus(rng: &mut Rng, size: usize) -> Vec<u8> {
    let mut s = String::with_capacity(size + 512);
    s.push_str("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>City zone portal</title>\n");
    s.push_str("<link rel=\"stylesheet\" href=\"/static/css/main.css\"></head>\n<body>\n");
    let mut n = 0u32;
    while s.len() < size {
        n += 1;
        let w1 = rng.pick(WORDS);
        let w2 = rng.pick(WORDS);
        s.push_str(&format!(
            "<div class=\"item\" id=\"item-{n}\"><h2>{w1} {w2}</h2><p>"
        ));
        let words = rng.range(12, 60);
        for i in 0..words {
            if i > 0 {
                s.push(' ');
            }
            let w = *rng.pick(WORDS);
            s.push_str(w);
        }
        s.push_str(&format!(
            ".</p><a href=\"/p/{}\">read more</a></div>\n",
            rng.range(1000, 99999)
        ));
    }
    s.into_bytes()
}

// ---------------------------------------------------------------- HTTP/1.1

const USER_AGENTS: &[&str] = &[
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
    "Mozilla/5.0 (X11; Linux x86_64; rv:126.0) Gecko/20100101 Firefox/126.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Mobile Safari/537.36",
    "curl/8.5.0",
    "python-requests/2.31.0",
    "Wget/1.21.4",
];

const MONTHS: &[&str] = &[
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// RFC 7231 IMF-fixdate for a Unix time.
pub fn http_date(unix: u64) -> String {
    let days = (unix / 86_400) as i64;
    let secs = unix % 86_400;
    let wd = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][(days % 7) as usize];
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{wd}, {d:02} {} {y} {:02}:{:02}:{:02} GMT",
        MONTHS[(m - 1) as usize],
        secs / 3600,
        (secs / 60) % 60,
        secs % 60
    )
}

/// What kind of HTTP response body to send.
#[derive(Clone, Copy, Debug)]
pub enum BodyKind {
    Html,
    Script,
    Binary,
}

/// Builds an HTTP/1.1 request (GET, or POST with a form body).
/// `close`: `Connection: close` (one request per connection) instead of
/// keep-alive.
pub fn http_request(rng: &mut Rng, host: &str, post: bool, close: bool) -> Vec<u8> {
    let connection = if close { "close" } else { "keep-alive" };
    let path = match rng.below(8) {
        0 => "/".to_string(),
        1 => "/index.html".to_string(),
        2 => format!("/api/v1/items/{}", rng.range(1, 500_000)),
        3 => format!("/static/js/app.{:08x}.js", rng.next_u32()),
        4 => format!("/search?q={}&page={}", rng.pick(WORDS), rng.range(1, 20)),
        5 => format!(
            "/news/{}/{}-{}.html",
            rng.range(2015, 2024),
            rng.pick(WORDS),
            rng.pick(WORDS)
        ),
        6 => format!("/download/file{}.bin", rng.range(1, 9999)),
        _ => format!("/images/{}.webp", rng.range(1, 99_999)),
    };
    let ua = rng.pick(USER_AGENTS);
    let mut s = String::with_capacity(512);
    if post {
        let mut form = format!(
            "user={}{}&token={:016x}&action={}",
            rng.pick(WORDS),
            rng.range(1, 9999),
            rng.next_u64(),
            rng.pick(WORDS)
        );
        let extra = rng.range(0, 24);
        for i in 0..extra {
            form.push_str(&format!(
                "&field{i}={}+{}",
                rng.pick(WORDS),
                rng.pick(WORDS)
            ));
        }
        s.push_str(&format!(
            "POST {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: {ua}\r\n"
        ));
        s.push_str("Accept: */*\r\nAccept-Language: en-US,en;q=0.9\r\n");
        s.push_str("Content-Type: application/x-www-form-urlencoded\r\n");
        s.push_str(&format!(
            "Content-Length: {}\r\nConnection: {connection}\r\n\r\n",
            form.len()
        ));
        s.push_str(&form);
    } else {
        s.push_str(&format!(
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: {ua}\r\n"
        ));
        s.push_str("Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n");
        s.push_str("Accept-Language: en-US,en;q=0.9\r\nAccept-Encoding: gzip, deflate\r\n");
        if rng.chance(0.4) {
            s.push_str(&format!(
                "Cookie: session={:016x}{:016x}\r\n",
                rng.next_u64(),
                rng.next_u64()
            ));
        }
        s.push_str(&format!("Connection: {connection}\r\n\r\n"));
    }
    s.into_bytes()
}

/// Builds an HTTP/1.1 200 response with a body of `body_len` bytes.
pub fn http_response(
    rng: &mut Rng,
    unix: u64,
    body_len: usize,
    kind: BodyKind,
    corpus_len: usize,
    close: bool,
) -> MsgBuilder {
    let connection = if close { "close" } else { "keep-alive" };
    let ctype = match kind {
        BodyKind::Html => "text/html; charset=utf-8",
        BodyKind::Script => "application/javascript",
        BodyKind::Binary => "application/octet-stream",
    };
    let server = *rng.pick(&[
        "nginx/1.24.0",
        "Apache/2.4.58 (Debian)",
        "cloudflare",
        "Microsoft-IIS/10.0",
    ]);
    let mut h = format!(
        "HTTP/1.1 200 OK\r\nDate: {}\r\nServer: {server}\r\nContent-Type: {ctype}\r\nContent-Length: {body_len}\r\n",
        http_date(unix)
    );
    h.push_str(&format!(
        "Cache-Control: max-age={}\r\nETag: \"{:x}\"\r\nConnection: {connection}\r\n\r\n",
        rng.range(0, 86_400),
        rng.next_u64()
    ));
    let mut b = MsgBuilder::new();
    b.bytes(h.into_bytes());
    match kind {
        BodyKind::Html | BodyKind::Script => {
            let off = rng.index(corpus_len);
            b.text(off, body_len);
        }
        BodyKind::Binary => {
            b.random(body_len);
        }
    }
    b
}

// ---------------------------------------------------------------- TLS 1.3

fn push_u16(v: &mut Vec<u8>, x: usize) {
    v.extend_from_slice(&(x as u16).to_be_bytes());
}

fn push_u24(v: &mut Vec<u8>, x: usize) {
    v.extend_from_slice(&(x as u32).to_be_bytes()[1..]);
}

fn push_ext(v: &mut Vec<u8>, ty: u16, data: &[u8]) {
    v.extend_from_slice(&ty.to_be_bytes());
    push_u16(v, data.len());
    v.extend_from_slice(data);
}

/// A TLS record header for `len` bytes of content.
pub fn tls_record_header(content_type: u8, version: u16, len: usize) -> Vec<u8> {
    let mut v = vec![content_type];
    v.extend_from_slice(&version.to_be_bytes());
    push_u16(&mut v, len);
    v
}

/// TLS ClientHello record (TLS 1.3 capable) with SNI and ALPN.
/// Returns the record and the legacy session id (echoed by the server).
pub fn tls_client_hello(rng: &mut Rng, sni: &str, offer_h2: bool) -> (Vec<u8>, [u8; 32]) {
    let session_id: [u8; 32] = rng.bytes();
    let mut hs = vec![0x03, 0x03];
    hs.extend_from_slice(&rng.bytes::<32>());
    hs.push(32);
    hs.extend_from_slice(&session_id);
    let suites: [u16; 15] = [
        0x1301, 0x1302, 0x1303, 0xc02b, 0xc02f, 0xc02c, 0xc030, 0xcca9, 0xcca8, 0xc013, 0xc014,
        0x009c, 0x009d, 0x002f, 0x0035,
    ];
    push_u16(&mut hs, suites.len() * 2);
    for s in suites {
        hs.extend_from_slice(&s.to_be_bytes());
    }
    hs.extend_from_slice(&[1, 0]); // compression methods: null

    let mut ext = Vec::with_capacity(256);
    let mut sn = Vec::new();
    push_u16(&mut sn, sni.len() + 3);
    sn.push(0);
    push_u16(&mut sn, sni.len());
    sn.extend_from_slice(sni.as_bytes());
    push_ext(&mut ext, 0x0000, &sn); // server_name
    push_ext(&mut ext, 0x0017, &[]); // extended_master_secret
    push_ext(&mut ext, 0xff01, &[0]); // renegotiation_info
    push_ext(
        &mut ext,
        0x000a,
        &[0, 6, 0x00, 0x1d, 0x00, 0x17, 0x00, 0x18],
    ); // supported_groups
    push_ext(&mut ext, 0x000b, &[1, 0]); // ec_point_formats
    push_ext(&mut ext, 0x0023, &[]); // session_ticket
    let mut alpn = Vec::new();
    let protos: &[&str] = if offer_h2 {
        &["h2", "http/1.1"]
    } else {
        &["http/1.1"]
    };
    let list_len: usize = protos.iter().map(|p| p.len() + 1).sum();
    push_u16(&mut alpn, list_len);
    for p in protos {
        alpn.push(p.len() as u8);
        alpn.extend_from_slice(p.as_bytes());
    }
    push_ext(&mut ext, 0x0010, &alpn); // ALPN
    push_ext(&mut ext, 0x0005, &[1, 0, 0, 0, 0]); // status_request
    let sigalgs: [u16; 8] = [
        0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601,
    ];
    let mut sa = Vec::new();
    push_u16(&mut sa, sigalgs.len() * 2);
    for s in sigalgs {
        sa.extend_from_slice(&s.to_be_bytes());
    }
    push_ext(&mut ext, 0x000d, &sa); // signature_algorithms
    push_ext(&mut ext, 0x0012, &[]); // signed_certificate_timestamp
    let mut ks = Vec::new();
    push_u16(&mut ks, 36);
    ks.extend_from_slice(&[0x00, 0x1d, 0x00, 0x20]);
    ks.extend_from_slice(&rng.bytes::<32>());
    push_ext(&mut ext, 0x0033, &ks); // key_share (x25519)
    push_ext(&mut ext, 0x002d, &[1, 1]); // psk_key_exchange_modes
    push_ext(&mut ext, 0x002b, &[4, 0x03, 0x04, 0x03, 0x03]); // supported_versions
    push_u16(&mut hs, ext.len());
    hs.extend_from_slice(&ext);

    let mut msg = vec![0x01];
    push_u24(&mut msg, hs.len());
    msg.extend_from_slice(&hs);
    let mut rec = tls_record_header(0x16, 0x0301, msg.len());
    rec.extend_from_slice(&msg);
    (rec, session_id)
}

/// TLS 1.3 ServerHello record followed by a ChangeCipherSpec record.
pub fn tls_server_hello(rng: &mut Rng, session_id: &[u8; 32]) -> Vec<u8> {
    let mut hs = vec![0x03, 0x03];
    hs.extend_from_slice(&rng.bytes::<32>());
    hs.push(32);
    hs.extend_from_slice(session_id);
    hs.extend_from_slice(&[0x13, 0x01, 0x00]); // TLS_AES_128_GCM_SHA256, null compression
    let mut ext = Vec::new();
    push_ext(&mut ext, 0x002b, &[0x03, 0x04]); // supported_versions: TLS 1.3
    let mut ks = vec![0x00, 0x1d, 0x00, 0x20];
    ks.extend_from_slice(&rng.bytes::<32>());
    push_ext(&mut ext, 0x0033, &ks);
    push_u16(&mut hs, ext.len());
    hs.extend_from_slice(&ext);
    let mut msg = vec![0x02];
    push_u24(&mut msg, hs.len());
    msg.extend_from_slice(&hs);
    let mut rec = tls_record_header(0x16, 0x0303, msg.len());
    rec.extend_from_slice(&msg);
    rec.extend_from_slice(&tls_change_cipher_spec());
    rec
}

pub fn tls_change_cipher_spec() -> Vec<u8> {
    vec![0x14, 0x03, 0x03, 0x00, 0x01, 0x01]
}

/// Largest TLS 1.3 ciphertext record payload we emit (2^14 + content type + tag).
pub const TLS_MAX_RECORD: usize = 16_384 + 1 + 16;

/// Appends `total` bytes of encrypted application data, split into records.
pub fn tls_app_data(b: &mut MsgBuilder, mut total: usize) {
    while total > 0 {
        let len = total.clamp(17, TLS_MAX_RECORD);
        b.bytes(tls_record_header(0x17, 0x0303, len));
        b.random(len);
        total = total.saturating_sub(len);
    }
}

// ---------------------------------------------------------------- DNS

/// DNS question types used.
pub const DNS_A: u16 = 1;
pub const DNS_CNAME: u16 = 5;
pub const DNS_AAAA: u16 = 28;

fn push_name(v: &mut Vec<u8>, name: &str) {
    for label in name.split('.') {
        v.push(label.len() as u8);
        v.extend_from_slice(label.as_bytes());
    }
    v.push(0);
}

fn push_opt(v: &mut Vec<u8>) {
    // EDNS(0) OPT pseudo-RR: root name, type 41, UDP size 1232, no flags, no data.
    v.extend_from_slice(&[
        0x00, 0x00, 0x29, 0x04, 0xd0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    ]);
}

/// A recursive DNS query with an EDNS(0) OPT record.
pub fn dns_query(id: u16, name: &str, qtype: u16) -> Vec<u8> {
    let mut v = Vec::with_capacity(64);
    v.extend_from_slice(&id.to_be_bytes());
    v.extend_from_slice(&[0x01, 0x20, 0, 1, 0, 0, 0, 0, 0, 1]);
    push_name(&mut v, name);
    v.extend_from_slice(&qtype.to_be_bytes());
    v.extend_from_slice(&[0, 1]);
    push_opt(&mut v);
    v
}

/// One answer of a DNS response.
pub enum DnsAnswer<'a> {
    Addr(&'a [u8]),
    Cname(&'a str),
}

/// A DNS response. Answers are chained: a CNAME answer makes the following
/// answers refer to the CNAME target (via a compression pointer).
pub fn dns_response(
    id: u16,
    name: &str,
    qtype: u16,
    rcode: u8,
    ttl: u32,
    answers: &[DnsAnswer<'_>],
) -> Vec<u8> {
    let mut v = Vec::with_capacity(160);
    v.extend_from_slice(&id.to_be_bytes());
    v.extend_from_slice(&[0x81, 0x80 | (rcode & 0x0f), 0, 1]);
    push_u16(&mut v, answers.len());
    v.extend_from_slice(&[0, 0, 0, 1]);
    push_name(&mut v, name);
    v.extend_from_slice(&qtype.to_be_bytes());
    v.extend_from_slice(&[0, 1]);
    let mut owner: u16 = 12; // offset of the question name
    for a in answers {
        v.extend_from_slice(&(0xc000 | owner).to_be_bytes());
        match a {
            DnsAnswer::Addr(addr) => {
                let ty = if addr.len() == 4 { DNS_A } else { DNS_AAAA };
                v.extend_from_slice(&ty.to_be_bytes());
                v.extend_from_slice(&[0, 1]);
                v.extend_from_slice(&ttl.to_be_bytes());
                push_u16(&mut v, addr.len());
                v.extend_from_slice(addr);
            }
            DnsAnswer::Cname(target) => {
                v.extend_from_slice(&DNS_CNAME.to_be_bytes());
                v.extend_from_slice(&[0, 1]);
                v.extend_from_slice(&ttl.to_be_bytes());
                push_u16(&mut v, target.len() + 2);
                owner = v.len() as u16;
                push_name(&mut v, target);
            }
        }
    }
    push_opt(&mut v);
    v
}

// ---------------------------------------------------------------- SSH

pub const SSH_BANNER: &[u8] = b"SSH-2.0-OpenSSH_9.6\r\n";

fn push_string(v: &mut Vec<u8>, s: &[u8]) {
    v.extend_from_slice(&(s.len() as u32).to_be_bytes());
    v.extend_from_slice(s);
}

/// Wraps a payload in an unencrypted SSH binary packet (block size 8).
pub fn ssh_plain_packet(rng: &mut Rng, payload: &[u8]) -> Vec<u8> {
    let mut pad = 8 - (5 + payload.len()) % 8;
    if pad < 4 {
        pad += 8;
    }
    let mut v = Vec::with_capacity(5 + payload.len() + pad);
    v.extend_from_slice(&((1 + payload.len() + pad) as u32).to_be_bytes());
    v.push(pad as u8);
    v.extend_from_slice(payload);
    rng.extend(&mut v, pad);
    v
}

pub fn ssh_kexinit(rng: &mut Rng, client: bool) -> Vec<u8> {
    let mut p = vec![20u8];
    p.extend_from_slice(&rng.bytes::<16>());
    let kex: &[u8] = if client {
        b"curve25519-sha256,curve25519-sha256@libssh.org,ecdh-sha2-nistp256,diffie-hellman-group14-sha256,ext-info-c,kex-strict-c-v00@openssh.com"
    } else {
        b"curve25519-sha256,curve25519-sha256@libssh.org,ecdh-sha2-nistp256,diffie-hellman-group14-sha256,kex-strict-s-v00@openssh.com"
    };
    // A legacy appliance-style server (ssh-rsa host key, 3des-cbc, non-ETM
    // MAC); the client offers the OpenSSH defaults plus `Ciphers +3des-cbc`.
    // Why not chacha20/AES: tshark 4.x "decrypts" chacha20-poly1305, AES-GCM,
    // AES-CTR and AES-CBC sessions even without keys and then throws
    // "Malformed Packet" on roughly one random ciphertext in 10^4..10^5; with a
    // cipher it cannot decrypt it shows the packets as opaque data.
    let (enc, mac): (&[u8], &[u8]) = if client {
        (
            b"chacha20-poly1305@openssh.com,aes128-ctr,aes192-ctr,aes256-ctr,aes128-gcm@openssh.com,aes256-gcm@openssh.com,3des-cbc",
            b"umac-64-etm@openssh.com,umac-128-etm@openssh.com,hmac-sha2-256-etm@openssh.com,hmac-sha2-512-etm@openssh.com,hmac-sha2-256,hmac-sha2-512",
        )
    } else {
        (b"3des-cbc", b"hmac-sha2-256,hmac-sha2-512")
    };
    let lists: [&[u8]; 10] = [
        kex,
        if client {
            b"ssh-ed25519,ecdsa-sha2-nistp256,rsa-sha2-512,rsa-sha2-256,ssh-rsa"
        } else {
            b"ssh-rsa"
        },
        enc,
        enc,
        mac,
        mac,
        b"none,zlib@openssh.com",
        b"none,zlib@openssh.com",
        b"",
        b"",
    ];
    for l in lists {
        push_string(&mut p, l);
    }
    p.push(0);
    p.extend_from_slice(&[0, 0, 0, 0]);
    ssh_plain_packet(rng, &p)
}

pub fn ssh_ecdh_init(rng: &mut Rng) -> Vec<u8> {
    let mut p = vec![30u8];
    push_string(&mut p, &rng.bytes::<32>());
    ssh_plain_packet(rng, &p)
}

/// KEX_ECDH_REPLY (2048-bit RSA host key and signature) followed by NEWKEYS.
pub fn ssh_ecdh_reply_newkeys(rng: &mut Rng) -> Vec<u8> {
    let mut n = vec![0u8; 257];
    rng.fill(&mut n[1..]);
    n[1] |= 0x80; // positive mpint with the top bit set needs the leading zero
    let mut key = Vec::new();
    push_string(&mut key, b"ssh-rsa");
    push_string(&mut key, &[0x01, 0x00, 0x01]);
    push_string(&mut key, &n);
    let mut sig = Vec::new();
    push_string(&mut sig, b"ssh-rsa");
    let mut s = vec![0u8; 256];
    rng.fill(&mut s);
    push_string(&mut sig, &s);
    let mut p = vec![31u8];
    push_string(&mut p, &key);
    push_string(&mut p, &rng.bytes::<32>());
    push_string(&mut p, &sig);
    let mut v = ssh_plain_packet(rng, &p);
    v.extend_from_slice(&ssh_plain_packet(rng, &[21]));
    v
}

pub fn ssh_newkeys(rng: &mut Rng) -> Vec<u8> {
    ssh_plain_packet(rng, &[21])
}

/// Appends an encrypted SSH packet (3des-cbc + hmac-sha2-256) carrying
/// `payload_len` bytes of payload: ciphertext (length field included, at
/// least 4 bytes of padding, a multiple of the 8-byte block, 16 bytes minimum)
/// followed by a 32-byte MAC, all opaque on the wire.
pub fn ssh_encrypted(b: &mut MsgBuilder, payload_len: usize) {
    let len = (4 + 1 + payload_len + 4).div_ceil(8).max(2) * 8;
    b.random(len + 32);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn date_format() {
        assert_eq!(http_date(1_717_243_200), "Sat, 01 Jun 2024 12:00:00 GMT");
        assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(http_date(951_782_400), "Tue, 29 Feb 2000 00:00:00 GMT");
    }

    #[test]
    fn message_take_spans_chunks() {
        let mut rng = Rng::new(1);
        let corpus = b"abcdef".to_vec();
        let mut b = MsgBuilder::new();
        b.bytes(b"HDR".to_vec()).text(4, 5).random(3);
        let mut m = b.build(true);
        assert_eq!(m.len(), 11);
        let mut out = Vec::new();
        m.take(6, &mut out, &mut rng, &corpus);
        assert_eq!(&out, b"HDRefa");
        m.take(100, &mut out, &mut rng, &corpus);
        assert_eq!(out.len(), 5);
        assert_eq!(&out[..2], b"bc");
        assert!(m.is_empty());
    }
}
