//! TLS handshake: records split over segments, handshake messages split
//! over records; ClientHello (SNI, ALPN, versions, JA3, JA4), ServerHello
//! (JA3S, negotiated version), Certificate (subject, issuer, serial, SHA-1
//! fingerprint, validity). Parsing of a direction stops once it is
//! encrypted (ChangeCipherSpec or application data).

use crate::util::{hex, js, md5_hex, HeaderWalk, Rd};
use crate::{di, AppConfig, AppProto, Buffer, Direction, Out, Transaction};
use serde_json::{json, Map, Value};

const CS: Direction = Direction::ToServer;
const SC: Direction = Direction::ToClient;
/// Largest record body allowed (2^14 + 2048, RFC 5246 6.2.3).
const MAX_RECORD: usize = 16384 + 2048;

fn grease(v: u16) -> bool {
    (v & 0x0f0f) == 0x0a0a && (v >> 8) == (v & 0xff)
}

/// Suricata's names for `tls.version` in EVE.
pub(crate) fn version_name(v: u16) -> String {
    match v {
        0x0200 => "SSLv2".into(),
        0x0300 => "SSLv3".into(),
        0x0301 => "TLS 1.0".into(),
        0x0302 => "TLS 1.1".into(),
        0x0303 => "TLS 1.2".into(),
        0x0304 => "TLS 1.3".into(),
        v if v & 0xff00 == 0x7f00 => format!("TLS 1.3 draft-{}", v & 0xff),
        _ => "UNDETERMINED".into(),
    }
}

#[derive(Default, Debug, Clone)]
pub(crate) struct ClientHello {
    pub(crate) version: u16,
    pub(crate) ciphers: Vec<u16>,
    pub(crate) exts: Vec<u16>,
    pub(crate) groups: Vec<u16>,
    pub(crate) point_formats: Vec<u8>,
    pub(crate) sig_algs: Vec<u16>,
    pub(crate) sni: Option<Vec<u8>>,
    pub(crate) alpn: Vec<Vec<u8>>,
    pub(crate) versions: Vec<u16>,
}

impl ClientHello {
    pub(crate) fn ja3_string(&self) -> String {
        fn j<T: ToString + Copy>(v: &[T]) -> String {
            v.iter()
                .map(|x| x.to_string())
                .collect::<Vec<_>>()
                .join("-")
        }
        let c: Vec<u16> = self
            .ciphers
            .iter()
            .copied()
            .filter(|v| !grease(*v))
            .collect();
        let e: Vec<u16> = self.exts.iter().copied().filter(|v| !grease(*v)).collect();
        let g: Vec<u16> = self
            .groups
            .iter()
            .copied()
            .filter(|v| !grease(*v))
            .collect();
        format!(
            "{},{},{},{},{}",
            self.version,
            j(&c),
            j(&e),
            j(&g),
            j(&self.point_formats)
        )
    }

    /// JA4 (FoxIO spec) for TLS over TCP.
    pub(crate) fn ja4(&self) -> String {
        use sha2::{Digest, Sha256};
        let v = self
            .versions
            .iter()
            .copied()
            .filter(|v| !grease(*v))
            .max()
            .unwrap_or(self.version);
        let ver = match v {
            0x0304 => "13",
            0x0303 => "12",
            0x0302 => "11",
            0x0301 => "10",
            0x0300 => "s3",
            0x0200 => "s2",
            _ => "00",
        };
        let sni = if self.sni.is_some() { 'd' } else { 'i' };
        let ciphers: Vec<u16> = self
            .ciphers
            .iter()
            .copied()
            .filter(|v| !grease(*v))
            .collect();
        let exts: Vec<u16> = self.exts.iter().copied().filter(|v| !grease(*v)).collect();
        let alpn = match self.alpn.first() {
            Some(a) if !a.is_empty() => {
                let (f, l) = (a[0], a[a.len() - 1]);
                if f.is_ascii_alphanumeric() && l.is_ascii_alphanumeric() {
                    format!("{}{}", f as char, l as char)
                } else {
                    let h = hex(&[f, l]);
                    format!("{}{}", &h[0..1], &h[3..4])
                }
            }
            _ => "00".into(),
        };
        let a = format!(
            "t{ver}{sni}{:02}{:02}{alpn}",
            ciphers.len().min(99),
            exts.len().min(99)
        );
        let h12 = |s: &str| -> String {
            if s.is_empty() {
                "000000000000".into()
            } else {
                hex(&Sha256::digest(s.as_bytes()))[..12].to_string()
            }
        };
        let mut cs = ciphers.clone();
        cs.sort_unstable();
        let b = cs
            .iter()
            .map(|c| format!("{c:04x}"))
            .collect::<Vec<_>>()
            .join(",");
        let mut es: Vec<u16> = exts
            .iter()
            .copied()
            .filter(|e| *e != 0 && *e != 16)
            .collect();
        es.sort_unstable();
        let mut c = es
            .iter()
            .map(|e| format!("{e:04x}"))
            .collect::<Vec<_>>()
            .join(",");
        let sa: Vec<String> = self
            .sig_algs
            .iter()
            .filter(|v| !grease(**v))
            .map(|s| format!("{s:04x}"))
            .collect();
        if !sa.is_empty() {
            c.push('_');
            c.push_str(&sa.join(","));
        }
        format!(
            "{a}_{}_{}",
            h12(&b),
            if es.is_empty() {
                "000000000000".into()
            } else {
                h12(&c)
            }
        )
    }
}

#[derive(Default, Debug, Clone)]
struct ServerHello {
    version: u16,
    cipher: u16,
    exts: Vec<u16>,
    selected: Option<u16>,
}

#[derive(Default, Debug, Clone)]
struct Cert {
    subject: String,
    issuer: String,
    serial: String,
    fingerprint: String,
    not_before: Option<i64>,
    not_after: Option<i64>,
}

struct Half {
    rec: Vec<u8>,
    hs: Vec<u8>,
    encrypted: bool,
    dead: bool,
    /// Once encrypted: only record headers are read, to find the first
    /// application data.
    walk: HeaderWalk,
}

impl Half {
    fn new() -> Self {
        Half {
            rec: Vec::new(),
            hs: Vec::new(),
            encrypted: false,
            dead: false,
            walk: HeaderWalk::default(),
        }
    }
}

pub(crate) struct TlsState {
    cfg: AppConfig,
    h: [Half; 2],
    ch: Option<ClientHello>,
    /// JA3 string, JA3 hash and JA4 of `ch`, once worked out.
    ch_prints: Option<(String, String, String)>,
    sh: Option<ServerHello>,
    certs: Vec<Vec<u8>>,
    cert: Option<Cert>,
    id: Option<u64>,
    sent_req: bool,
    done: bool,
    /// An application data record was seen (after the server's hello, or
    /// from the server): Suricata's cue to stop payload inspection.
    app_data: bool,
    /// A ChangeCipherSpec was seen (either side): heartbeats are
    /// encrypted from then on.
    ccs: bool,
    /// A heartbeat in flight: who sent it and, once encrypted, its record
    /// length (a longer answer is Heartbleed's data leak).
    heartbeat: Option<(Direction, usize)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HelloErr {
    Invalid,
    SniType,
    SniLen,
}

/// Parses a ClientHello body (after the 4-byte handshake header).
pub(crate) fn parse_client_hello(b: &[u8]) -> Result<ClientHello, HelloErr> {
    let mut r = Rd::new(b);
    let mut ch = ClientHello {
        version: r.u16().ok_or(HelloErr::Invalid)?,
        ..Default::default()
    };
    r.take(32).ok_or(HelloErr::Invalid)?;
    let sl = r.u8().ok_or(HelloErr::Invalid)? as usize;
    r.take(sl).ok_or(HelloErr::Invalid)?;
    let cl = r.u16().ok_or(HelloErr::Invalid)? as usize;
    let mut c = Rd::new(r.take(cl).ok_or(HelloErr::Invalid)?);
    while let Some(x) = c.u16() {
        ch.ciphers.push(x);
    }
    let ml = r.u8().ok_or(HelloErr::Invalid)? as usize;
    r.take(ml).ok_or(HelloErr::Invalid)?;
    if r.left() == 0 {
        return Ok(ch);
    }
    let el = r.u16().ok_or(HelloErr::Invalid)? as usize;
    let mut e = Rd::new(r.take(el).ok_or(HelloErr::Invalid)?);
    let mut err = None;
    while e.left() >= 4 {
        let (Some(t), Some(l)) = (e.u16(), e.u16()) else {
            break;
        };
        let Some(body) = e.take(l as usize) else {
            return Err(HelloErr::Invalid);
        };
        ch.exts.push(t);
        let mut x = Rd::new(body);
        match t {
            0 => {
                let _list = x.u16();
                match (x.u8(), x.u16()) {
                    (Some(0), Some(n)) => match x.take(n as usize) {
                        Some(name) => ch.sni = Some(name.to_vec()),
                        None => err = Some(HelloErr::SniLen),
                    },
                    (Some(_), _) => err = Some(HelloErr::SniType),
                    _ => {}
                }
            }
            10 => {
                let n = x.u16().unwrap_or(0) as usize;
                let mut l = Rd::new(x.take(n).unwrap_or(&[]));
                while let Some(g) = l.u16() {
                    ch.groups.push(g);
                }
            }
            11 => {
                let n = x.u8().unwrap_or(0) as usize;
                ch.point_formats.extend_from_slice(x.take(n).unwrap_or(&[]));
            }
            13 => {
                let n = x.u16().unwrap_or(0) as usize;
                let mut l = Rd::new(x.take(n).unwrap_or(&[]));
                while let Some(g) = l.u16() {
                    ch.sig_algs.push(g);
                }
            }
            16 => {
                let n = x.u16().unwrap_or(0) as usize;
                let mut l = Rd::new(x.take(n).unwrap_or(&[]));
                while let Some(k) = l.u8() {
                    match l.take(k as usize) {
                        Some(p) => ch.alpn.push(p.to_vec()),
                        None => break,
                    }
                }
            }
            43 => {
                let n = x.u8().unwrap_or(0) as usize;
                let mut l = Rd::new(x.take(n).unwrap_or(&[]));
                while let Some(g) = l.u16() {
                    ch.versions.push(g);
                }
            }
            _ => {}
        }
    }
    match err {
        Some(e) if ch.sni.is_none() => Err(e),
        _ => Ok(ch),
    }
}

fn parse_server_hello(b: &[u8]) -> Option<ServerHello> {
    let mut r = Rd::new(b);
    let mut sh = ServerHello {
        version: r.u16()?,
        ..Default::default()
    };
    r.take(32)?;
    let sl = r.u8()? as usize;
    r.take(sl)?;
    sh.cipher = r.u16()?;
    r.u8()?;
    if r.left() == 0 {
        return Some(sh);
    }
    let el = r.u16()? as usize;
    let mut e = Rd::new(r.take(el)?);
    while e.left() >= 4 {
        let t = e.u16()?;
        let l = e.u16()? as usize;
        let body = e.take(l)?;
        sh.exts.push(t);
        if t == 43 && body.len() == 2 {
            sh.selected = Some(u16::from_be_bytes([body[0], body[1]]));
        }
    }
    Some(sh)
}

/// Subject/issuer/serial/fingerprint/validity of a DER certificate, as
/// Suricata writes them.
fn parse_cert(der: &[u8]) -> Option<Cert> {
    use sha1::{Digest, Sha1};
    let fp = Sha1::digest(der)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":");
    let (_, x) = x509_parser::parse_x509_certificate(der).ok()?;
    let serial = x
        .tbs_certificate
        .raw_serial()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":");
    Some(Cert {
        subject: x.subject().to_string(),
        issuer: x.issuer().to_string(),
        serial,
        fingerprint: fp,
        not_before: Some(x.validity().not_before.timestamp()),
        not_after: Some(x.validity().not_after.timestamp()),
    })
}

fn fmt_time(t: i64) -> String {
    // Civil date from Unix seconds (Howard Hinnant's algorithm), UTC.
    let days = t.div_euclid(86400);
    let secs = t.rem_euclid(86400);
    let z = days + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        secs / 3600,
        (secs / 60) % 60,
        secs % 60
    )
}

impl TlsState {
    pub(crate) fn new(cfg: AppConfig) -> Self {
        TlsState {
            cfg,
            h: [Half::new(), Half::new()],
            ch: None,
            ch_prints: None,
            ccs: false,
            heartbeat: None,
            sh: None,
            certs: Vec::new(),
            cert: None,
            id: None,
            sent_req: false,
            done: false,
            app_data: false,
        }
    }

    /// See [`crate::AppState::payload_inspection_over`].
    pub(crate) fn app_data_seen(&self) -> bool {
        self.app_data
    }

    /// Application data from the server, or from the client once the
    /// server's hello was seen (client data before it is TLS 1.3 early
    /// data, which Suricata keeps inspecting).
    fn note_app_data(&mut self, d: usize) {
        if d == 1 || self.sh.is_some() {
            self.app_data = true;
        }
    }

    /// After encryption: reads record headers only, skipping bodies, until
    /// the first application data record.
    fn watch(&mut self, d: usize, data: &[u8]) {
        if self.app_data || self.h[d].dead {
            return;
        }
        let server_hello = self.sh.is_some();
        let mut app = false;
        let h = &mut self.h[d];
        let going = h.walk.feed(data, 5, |hdr| {
            let t = hdr[0];
            if !(20..=24).contains(&t) || hdr[1] != 3 {
                return None;
            }
            // As `note_app_data`.
            if t == 23 && (d == 1 || server_hello) {
                app = true;
                return None;
            }
            Some(u16::from_be_bytes([hdr[3], hdr[4]]) as usize)
        });
        if app {
            self.app_data = true;
        } else if !going {
            // Not TLS records any more: nothing to follow.
            h.dead = true;
        }
    }

    pub(crate) fn mem_bytes(&self) -> usize {
        self.h
            .iter()
            .map(|h| h.rec.capacity() + h.hs.capacity())
            .sum::<usize>()
            + self.certs.iter().map(|c| c.capacity()).sum::<usize>()
    }

    pub(crate) fn gap(&mut self, dir: Direction) {
        let h = &mut self.h[di(dir)];
        h.dead = true;
        h.rec = Vec::new();
        h.hs = Vec::new();
    }

    fn tx_id(&mut self, out: &mut Out<'_>) -> u64 {
        match self.id {
            Some(i) => i,
            None => {
                let i = out.new_tx_id();
                self.id = Some(i);
                i
            }
        }
    }

    fn kill(&mut self, dir: Direction, ev: &'static str, out: &mut Out<'_>) {
        let id = self.tx_id(out);
        out.event(ev, dir, Some(id));
        let h = &mut self.h[di(dir)];
        h.dead = true;
        h.rec = Vec::new();
        h.hs = Vec::new();
        self.maybe_done(out);
    }

    pub(crate) fn input(&mut self, dir: Direction, mut data: &[u8], out: &mut Out<'_>) {
        let d = di(dir);
        while !data.is_empty() {
            let h = &mut self.h[d];
            if h.dead {
                return;
            }
            if h.encrypted {
                self.watch(d, data);
                return;
            }
            if h.rec.len() < 5 {
                let n = (5 - h.rec.len()).min(data.len());
                h.rec.extend_from_slice(&data[..n]);
                data = &data[n..];
                if h.rec.len() < 5 {
                    return;
                }
                let (t, major, len) = (
                    h.rec[0],
                    h.rec[1],
                    u16::from_be_bytes([h.rec[3], h.rec[4]]) as usize,
                );
                if !(20..=24).contains(&t) {
                    self.kill(dir, "tls.invalid_record_type", out);
                    return;
                }
                if major != 3 {
                    self.kill(dir, "tls.invalid_record_version", out);
                    return;
                }
                if len > MAX_RECORD {
                    self.kill(dir, "tls.invalid_record_length", out);
                    return;
                }
            }
            let h = &mut self.h[d];
            let len = u16::from_be_bytes([h.rec[3], h.rec[4]]) as usize;
            let need = 5 + len - h.rec.len();
            let n = need.min(data.len());
            let had = h.rec.len();
            h.rec.extend_from_slice(&data[..n]);
            data = &data[n..];
            if h.rec[0] == 24 && had < 8 && h.rec.len() >= 8 {
                let head = [h.rec[5], h.rec[6], h.rec[7]];
                self.heartbeat(dir, len, head, out);
                if self.h[d].dead {
                    return;
                }
            }
            let h = &mut self.h[d];
            if h.rec.len() < 5 + len {
                return;
            }
            let rec = std::mem::take(&mut h.rec);
            self.record(dir, rec[0], &rec[5..], out);
            let h = &mut self.h[d];
            if h.rec.capacity() == 0 {
                h.rec = rec;
                h.rec.clear();
            }
        }
    }

    fn record(&mut self, dir: Direction, t: u8, body: &[u8], out: &mut Out<'_>) {
        let d = di(dir);
        match t {
            20 | 23 => {
                if t == 23 {
                    self.note_app_data(d);
                } else {
                    self.ccs = true;
                }
                self.h[d].encrypted = true;
                self.h[d].hs = Vec::new();
                self.maybe_done(out);
            }
            22 => {
                let h = &mut self.h[d];
                if h.hs.len() + body.len() > self.cfg.tls_max_handshake_bytes + 4 {
                    self.kill(dir, "tls.handshake_invalid_length", out);
                    return;
                }
                h.hs.extend_from_slice(body);
                let mut pos = 0;
                loop {
                    let hs = &self.h[d].hs;
                    if hs.len() - pos < 4 {
                        break;
                    }
                    let mt = hs[pos];
                    let ml = ((hs[pos + 1] as usize) << 16)
                        | ((hs[pos + 2] as usize) << 8)
                        | hs[pos + 3] as usize;
                    if ml > self.cfg.tls_max_handshake_bytes {
                        self.kill(dir, "tls.handshake_invalid_length", out);
                        return;
                    }
                    if hs.len() - pos < 4 + ml {
                        break;
                    }
                    let msg = hs[pos + 4..pos + 4 + ml].to_vec();
                    pos += 4 + ml;
                    self.handshake(dir, mt, &msg, out);
                    if self.h[d].dead {
                        return;
                    }
                }
                self.h[d].hs.drain(..pos);
            }
            // Heartbeats are checked from their first bytes (`input`): the
            // record an attacker announces need never arrive whole.
            _ => {}
        }
    }

    /// A heartbeat record (RFC 6520), checked as Suricata does: in the
    /// clear, a known type and a payload length that fits the record with
    /// at least 16 bytes of padding (CVE-2014-0160 asks for more than it
    /// sends); one heartbeat in flight per side; encrypted, an answer no
    /// longer than the request.
    fn heartbeat(&mut self, dir: Direction, record_len: usize, head: [u8; 3], out: &mut Out<'_>) {
        let [hb_type, hi, lo] = head;
        if !self.ccs && !matches!(hb_type, 1 | 2) {
            return self.kill(dir, "tls.invalid_heartbeat_message", out);
        }
        match self.heartbeat {
            None if self.ccs => self.heartbeat = Some((dir, record_len)),
            None => {
                self.heartbeat = Some((dir, 0));
                let payload = usize::from(u16::from_be_bytes([hi, lo]));
                if payload + 3 > record_len {
                    self.kill(dir, "tls.overflow_heartbeat_message", out);
                } else if record_len - payload - 3 < 16 {
                    self.kill(dir, "tls.invalid_heartbeat_message", out);
                }
            }
            Some((from, _)) if from == dir => self.kill(dir, "tls.invalid_heartbeat_message", out),
            Some((_, request)) => {
                self.heartbeat = None;
                if self.ccs && request > 0 && request < record_len {
                    self.kill(dir, "tls.dataleak_heartbeat_mismatch", out);
                }
            }
        }
    }

    fn handshake(&mut self, dir: Direction, mt: u8, m: &[u8], out: &mut Out<'_>) {
        match (dir, mt) {
            (CS, 1) => {
                if self.ch.is_some() {
                    return; // renegotiation / HRR retry: keep the first
                }
                match parse_client_hello(m) {
                    Ok(ch) => {
                        self.ch = Some(ch);
                        self.ch_prints = None;
                        if !self.sent_req {
                            self.sent_req = true;
                            let tx = self.build(out, false);
                            out.tx(tx);
                        }
                    }
                    Err(HelloErr::SniType) => self.kill(dir, "tls.invalid_sni_type", out),
                    Err(HelloErr::SniLen) => self.kill(dir, "tls.invalid_sni_length", out),
                    Err(HelloErr::Invalid) => self.kill(dir, "tls.invalid_handshake_message", out),
                }
            }
            (SC, 2) => {
                if self.sh.is_some() {
                    return;
                }
                match parse_server_hello(m) {
                    Some(sh) => self.sh = Some(sh),
                    None => self.kill(dir, "tls.invalid_handshake_message", out),
                }
            }
            (SC, 11) => {
                if !self.certs.is_empty() {
                    return;
                }
                let mut r = Rd::new(m);
                let Some(total) = r.u24() else {
                    self.kill(dir, "tls.invalid_certificate", out);
                    return;
                };
                let Some(list) = r.take(total) else {
                    self.kill(dir, "tls.certificate_invalid_length", out);
                    return;
                };
                let mut l = Rd::new(list);
                while l.left() > 0 {
                    let Some(n) = l.u24() else {
                        self.kill(dir, "tls.certificate_invalid_length", out);
                        return;
                    };
                    let Some(der) = l.take(n) else {
                        self.kill(dir, "tls.certificate_invalid_length", out);
                        return;
                    };
                    if self.certs.len() < self.cfg.tls_max_certs {
                        self.certs.push(der.to_vec());
                    }
                }
                if let Some(first) = self.certs.first() {
                    match parse_cert(first) {
                        Some(c) => self.cert = Some(c),
                        None => {
                            let id = self.tx_id(out);
                            out.event("tls.certificate_invalid_der", dir, Some(id));
                        }
                    }
                }
            }
            (SC, 14) => {
                // ServerHelloDone: the server's clear-text part is over.
                self.h[1].encrypted = true;
                self.maybe_done(out);
            }
            _ => {}
        }
    }

    fn maybe_done(&mut self, out: &mut Out<'_>) {
        if self.done {
            return;
        }
        let s = &self.h[1];
        if (s.encrypted || s.dead) && (self.ch.is_some() || self.h[0].dead || self.h[0].encrypted) {
            self.done = true;
            let tx = self.build(out, true);
            out.tx(tx);
        }
    }

    pub(crate) fn close(&mut self, out: &mut Out<'_>) {
        if !self.done && (self.ch.is_some() || self.sh.is_some()) {
            self.done = true;
            let tx = self.build(out, true);
            out.tx(tx);
        }
    }

    fn build(&mut self, out: &mut Out<'_>, complete: bool) -> Transaction {
        let id = self.tx_id(out);
        let mut tx = Transaction::new(AppProto::Tls, id);
        tx.complete = complete;
        let mut e = Map::new();
        if let Some(c) = self.cert.as_ref().filter(|_| complete) {
            e.insert("subject".into(), c.subject.clone().into());
            e.insert("issuerdn".into(), c.issuer.clone().into());
            e.insert("serial".into(), c.serial.clone().into());
            e.insert("fingerprint".into(), c.fingerprint.clone().into());
            tx.set(Buffer::TlsCertSubject, SC, c.subject.as_bytes());
            tx.set(Buffer::TlsCertIssuer, SC, c.issuer.as_bytes());
            tx.set(Buffer::TlsCertSerial, SC, c.serial.as_bytes());
            tx.set(Buffer::TlsCertFingerprint, SC, c.fingerprint.as_bytes());
            tx.nums.tls_not_before = c.not_before;
            tx.nums.tls_not_after = c.not_after;
        }
        if complete {
            for c in &self.certs {
                tx.push(Buffer::TlsCerts, SC, c);
            }
        }
        if let Some(ch) = &self.ch {
            if let Some(sni) = &ch.sni {
                e.insert("sni".into(), js(sni).into());
                tx.set(Buffer::TlsSni, CS, sni);
            }
            for a in &ch.alpn {
                tx.push(Buffer::TlsAlpn, CS, a);
            }
            tx.nums.tls_version = Some(ch.version);
        }
        let sh = self.sh.as_ref().filter(|_| complete);
        if let Some(sh) = sh {
            tx.nums.tls_version = Some(sh.selected.unwrap_or(sh.version));
        }
        if let Some(v) = tx.nums.tls_version {
            e.insert("version".into(), version_name(v).into());
        }
        if let Some(c) = self.cert.as_ref().filter(|_| complete) {
            if let Some(t) = c.not_before {
                e.insert("notbefore".into(), fmt_time(t).into());
            }
            if let Some(t) = c.not_after {
                e.insert("notafter".into(), fmt_time(t).into());
            }
        }
        if let Some(ch) = &self.ch {
            // A session is built twice (client side done, then complete):
            // the fingerprints are worked out once per ClientHello.
            let f = self.ch_prints.get_or_insert_with(|| {
                let s = ch.ja3_string();
                let h = md5_hex(s.as_bytes());
                (s, h, ch.ja4())
            });
            let (s, h, j4) = (&f.0, &f.1, &f.2);
            tx.set(Buffer::Ja3Hash, CS, h.as_bytes());
            tx.set(Buffer::Ja3String, CS, s.as_bytes());
            tx.set(Buffer::Ja4Hash, CS, j4.as_bytes());
            e.insert("ja3".into(), json!({"hash": h, "string": s}));
            e.insert("ja4".into(), j4.clone().into());
        }
        if let Some(sh) = sh {
            let ex: Vec<String> = sh
                .exts
                .iter()
                .filter(|v| !grease(**v))
                .map(|v| v.to_string())
                .collect();
            let s = format!("{},{},{}", sh.version, sh.cipher, ex.join("-"));
            let h = md5_hex(s.as_bytes());
            e.insert("ja3s".into(), json!({"hash": h, "string": s}));
            tx.set(Buffer::Ja3sHash, SC, h.as_bytes());
            tx.set(Buffer::Ja3sString, SC, s.as_bytes());
        }
        tx.eve = Value::Object(e);
        tx
    }
}
