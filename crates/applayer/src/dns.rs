//! DNS messages (RFC 1035 and successors) over UDP and TCP; EVE in
//! Suricata 7's version-2 format.

use crate::util::{hex, js, Rd};
use crate::{di, AppConfig, AppProto, Buffer, Direction, DnsObservation, Out, Transaction};
use serde_json::{json, Map, Value};

/// Longest name (presentation form) kept; longer raises `dns.name_too_long`.
const MAX_NAME: usize = 1025;
/// Compression pointers followed per name before `dns.infinite_loop`.
const MAX_JUMPS: usize = 128;
/// Record types whose data the DNS-tunnel detector measures.
const RRTYPE_NULL: u16 = 10;
const RRTYPE_TXT: u16 = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NameErr {
    Truncated,
    Loop,
    TooLong,
    BadLabel,
}

/// Reads a (possibly compressed) name at `r.p`; advances past it in the
/// message. Labels are joined with `.`; the root is the empty string.
pub(crate) fn read_name(r: &mut Rd<'_>) -> Result<Vec<u8>, NameErr> {
    let msg = r.b;
    let mut out = Vec::new();
    let mut p = r.p;
    let mut jumped = false;
    let mut jumps = 0usize;
    loop {
        let len = *msg.get(p).ok_or(NameErr::Truncated)? as usize;
        match len & 0xC0 {
            0x00 => {
                if len == 0 {
                    if !jumped {
                        r.p = p + 1;
                    }
                    return Ok(out);
                }
                let lab = msg.get(p + 1..p + 1 + len).ok_or(NameErr::Truncated)?;
                if !out.is_empty() {
                    out.push(b'.');
                }
                if out.len() + len > MAX_NAME {
                    return Err(NameErr::TooLong);
                }
                out.extend_from_slice(lab);
                p += 1 + len;
            }
            0xC0 => {
                let lo = *msg.get(p + 1).ok_or(NameErr::Truncated)? as usize;
                if !jumped {
                    r.p = p + 2;
                    jumped = true;
                }
                jumps += 1;
                if jumps > MAX_JUMPS {
                    return Err(NameErr::Loop);
                }
                p = ((len & 0x3F) << 8) | lo;
            }
            _ => return Err(NameErr::BadLabel),
        }
    }
}

pub(crate) fn header_plausible(m: &[u8], dir: Direction) -> bool {
    if m.len() < 12 {
        return false;
    }
    let qr = m[2] & 0x80 != 0;
    let opcode = (m[2] >> 3) & 0x0F;
    let qd = u16::from_be_bytes([m[4], m[5]]);
    let an = u16::from_be_bytes([m[6], m[7]]);
    let ns = u16::from_be_bytes([m[8], m[9]]);
    (qr == (dir == Direction::ToClient))
        && opcode <= 6
        && (1..=16).contains(&qd)
        && (qr || (an == 0 && ns <= 16))
}

/// True when the header and every question parse.
pub(crate) fn questions_ok(m: &[u8]) -> bool {
    if m.len() < 12 {
        return false;
    }
    let qd = u16::from_be_bytes([m[4], m[5]]);
    if qd == 0 || qd > 16 {
        return false;
    }
    let mut r = Rd::new(m);
    r.p = 12;
    for _ in 0..qd {
        if read_name(&mut r).is_err() || r.take(4).is_none() {
            return false;
        }
    }
    true
}

pub(crate) fn rrtype_name(t: u16) -> String {
    let s = match t {
        1 => "A",
        2 => "NS",
        5 => "CNAME",
        6 => "SOA",
        10 => "NULL",
        11 => "WKS",
        12 => "PTR",
        13 => "HINFO",
        15 => "MX",
        16 => "TXT",
        17 => "RP",
        18 => "AFSDB",
        24 => "SIG",
        25 => "KEY",
        28 => "AAAA",
        29 => "LOC",
        33 => "SRV",
        35 => "NAPTR",
        39 => "DNAME",
        41 => "OPT",
        43 => "DS",
        44 => "SSHFP",
        46 => "RRSIG",
        47 => "NSEC",
        48 => "DNSKEY",
        50 => "NSEC3",
        51 => "NSEC3PARAM",
        52 => "TLSA",
        64 => "SVCB",
        65 => "HTTPS",
        99 => "SPF",
        249 => "TKEY",
        250 => "TSIG",
        251 => "IXFR",
        252 => "AXFR",
        255 => "ANY",
        257 => "CAA",
        _ => return t.to_string(),
    };
    s.to_string()
}

pub(crate) fn rcode_name(c: u16) -> String {
    let s = match c {
        0 => "NOERROR",
        1 => "FORMERR",
        2 => "SERVFAIL",
        3 => "NXDOMAIN",
        4 => "NOTIMP",
        5 => "REFUSED",
        6 => "YXDOMAIN",
        7 => "YXRRSET",
        8 => "NXRRSET",
        9 => "NOTAUTH",
        10 => "NOTZONE",
        _ => return c.to_string(),
    };
    s.to_string()
}

fn name_str(n: &[u8]) -> String {
    if n.is_empty() {
        "<root>".to_string()
    } else {
        js(n)
    }
}

/// One resource record as Suricata logs it, and its size on the wire.
struct Rr {
    rrtype: u16,
    /// Its EVE detail entries: one, or one per string for TXT.
    details: Vec<Value>,
    /// Its values under EVE `grouped`.
    grouped: Vec<Value>,
    /// Rdata bytes on the wire.
    rdata_len: usize,
    /// Data bytes of a TXT or NULL record (TXT: its strings without their
    /// length octets), as received, whatever EVE escapes.
    txt_null_bytes: usize,
}

fn read_rr(r: &mut Rd<'_>) -> Result<Rr, NameErr> {
    let name = read_name(r)?;
    let t = r.u16().ok_or(NameErr::Truncated)?;
    let _class = r.u16().ok_or(NameErr::Truncated)?;
    let ttl = r.u32().ok_or(NameErr::Truncated)?;
    let rdlen = r.u16().ok_or(NameErr::Truncated)? as usize;
    let start = r.p;
    let rdata = r.take(rdlen).ok_or(NameErr::Truncated)?;
    let mut o = Map::new();
    o.insert("rrname".into(), name_str(&name).into());
    o.insert("rrtype".into(), rrtype_name(t).into());
    o.insert("ttl".into(), ttl.into());
    // Names inside rdata may point anywhere in the message.
    let mut sub = Rd::new(&r.b[..start + rdlen]);
    sub.p = start;
    let mut grouped: Option<Value> = None;
    match t {
        1 if rdlen == 4 => {
            let a = std::net::Ipv4Addr::new(rdata[0], rdata[1], rdata[2], rdata[3]).to_string();
            grouped = Some(a.clone().into());
            o.insert("rdata".into(), a.into());
        }
        28 if rdlen == 16 => {
            let mut b = [0u8; 16];
            b.copy_from_slice(rdata);
            let a = std::net::Ipv6Addr::from(b).to_string();
            grouped = Some(a.clone().into());
            o.insert("rdata".into(), a.into());
        }
        2 | 5 | 12 | 39 => {
            let n = name_str(&read_name(&mut sub)?);
            grouped = Some(n.clone().into());
            o.insert("rdata".into(), n.into());
        }
        15 => {
            sub.u16().ok_or(NameErr::Truncated)?;
            let n = name_str(&read_name(&mut sub)?);
            grouped = Some(n.clone().into());
            o.insert("rdata".into(), n.into());
        }
        16 | 99 => {
            // One entry per character-string, as Suricata logs TXT.
            let mut tr = Rd::new(rdata);
            let mut details = Vec::new();
            let mut groups = Vec::new();
            let mut txt_bytes = 0;
            while let Some(l) = tr.u8() {
                let part = tr.take(l as usize).ok_or(NameErr::Truncated)?;
                txt_bytes += part.len();
                let v = js(part);
                let mut d = o.clone();
                d.insert("rdata".into(), v.clone().into());
                details.push(Value::Object(d));
                groups.push(Value::from(v));
            }
            return Ok(Rr {
                rrtype: t,
                details,
                grouped: groups,
                rdata_len: rdlen,
                txt_null_bytes: if t == RRTYPE_TXT { txt_bytes } else { 0 },
            });
        }
        6 => {
            let mname = name_str(&read_name(&mut sub)?);
            let rname = name_str(&read_name(&mut sub)?);
            let mut n = [0u32; 5];
            for x in n.iter_mut() {
                *x = sub.u32().ok_or(NameErr::Truncated)?;
            }
            let soa = json!({"mname": mname, "rname": rname, "serial": n[0], "refresh": n[1],
                "retry": n[2], "expire": n[3], "minimum": n[4]});
            grouped = Some(soa.clone());
            o.insert("soa".into(), soa);
        }
        33 => {
            let pri = sub.u16().ok_or(NameErr::Truncated)?;
            let w = sub.u16().ok_or(NameErr::Truncated)?;
            let port = sub.u16().ok_or(NameErr::Truncated)?;
            let n = name_str(&read_name(&mut sub)?);
            let srv = json!({"priority": pri, "weight": w, "port": port, "name": n});
            grouped = Some(srv.clone());
            o.insert("srv".into(), srv);
        }
        44 if rdlen >= 2 => {
            let fp = rdata[2..]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<Vec<_>>()
                .join(":");
            let v = json!({"fingerprint": fp, "algo": rdata[0], "type": rdata[1]});
            grouped = Some(v.clone());
            o.insert("sshfp".into(), v);
        }
        13 | 10 | 257 => {
            let v = js(rdata);
            grouped = Some(v.clone().into());
            o.insert("rdata".into(), v.into());
        }
        _ => {
            if rdlen > 0 {
                o.insert("rdata".into(), hex(rdata).into());
            }
        }
    }
    Ok(Rr {
        rrtype: t,
        details: vec![Value::Object(o)],
        grouped: grouped.into_iter().collect(),
        rdata_len: rdlen,
        txt_null_bytes: if t == RRTYPE_NULL { rdlen } else { 0 },
    })
}

fn name_event(e: NameErr) -> &'static str {
    match e {
        NameErr::Loop => "dns.infinite_loop",
        NameErr::TooLong => "dns.name_too_long",
        NameErr::Truncated | NameErr::BadLabel => "dns.malformed_data",
    }
}

/// Parses one DNS message and outputs its transaction (one per message:
/// a query or an answer) and events.
pub(crate) fn parse_message(m: &[u8], dir: Direction, cfg: &AppConfig, out: &mut Out<'_>) {
    if m.len() < 12 {
        out.event("dns.malformed_data", dir, None);
        return;
    }
    let id = u16::from_be_bytes([m[0], m[1]]);
    let flags = u16::from_be_bytes([m[2], m[3]]);
    let qr = flags & 0x8000 != 0;
    let opcode = ((flags >> 11) & 0x0F) as u8;
    let rcode = flags & 0x000F;
    let counts = [
        u16::from_be_bytes([m[4], m[5]]) as usize,
        u16::from_be_bytes([m[6], m[7]]) as usize,
        u16::from_be_bytes([m[8], m[9]]) as usize,
        u16::from_be_bytes([m[10], m[11]]) as usize,
    ];
    let txid = out.new_tx_id();
    let mut tx = Transaction::new(AppProto::Dns, txid);
    tx.complete = true;
    tx.nums.dns_opcode = Some(opcode);
    tx.nums.dns_rcode = Some(rcode as u8);
    if qr && dir == Direction::ToServer {
        out.event("dns.not_a_request", dir, Some(txid));
    } else if !qr && dir == Direction::ToClient {
        out.event("dns.not_a_response", dir, Some(txid));
    }
    if flags & 0x0040 != 0 {
        out.event("dns.z_flag_set", dir, Some(txid));
    }
    let mut r = Rd::new(m);
    r.p = 12;
    // The first question: its name (EVE `rrname`) and type.
    let mut first_q: Option<(String, u16)> = None;
    let mut bad = false;
    for _ in 0..counts[0].min(cfg.dns_max_records) {
        match read_name(&mut r) {
            Ok(n) => {
                let (Some(t), Some(_class)) = (r.u16(), r.u16()) else {
                    out.event("dns.malformed_data", dir, Some(txid));
                    bad = true;
                    break;
                };
                if first_q.is_none() {
                    first_q = Some((name_str(&n), t));
                }
                tx.push(Buffer::DnsQuery, dir, &n);
            }
            Err(e) => {
                out.event(name_event(e), dir, Some(txid));
                bad = true;
                break;
            }
        }
    }
    let mut e = Map::new();
    if qr {
        e.insert("version".into(), 2.into());
        e.insert("type".into(), "answer".into());
    } else {
        e.insert("type".into(), "query".into());
    }
    e.insert("id".into(), id.into());
    if qr {
        e.insert("flags".into(), format!("{flags:x}").into());
        for (bit, name) in [
            (0x8000u16, "qr"),
            (0x0400, "aa"),
            (0x0200, "tc"),
            (0x0100, "rd"),
            (0x0080, "ra"),
            (0x0040, "z"),
        ] {
            if flags & bit != 0 {
                e.insert(name.into(), true.into());
            }
        }
    }
    if let Some((n, t)) = &first_q {
        e.insert("rrname".into(), n.clone().into());
        e.insert("rrtype".into(), rrtype_name(*t).into());
    }
    if !qr {
        e.insert("tx_id".into(), txid.into());
        if flags & 0x0040 != 0 {
            e.insert("z".into(), true.into());
        }
    }
    e.insert("opcode".into(), opcode.into());
    let mut obs = first_q.map(|(qname, rrtype)| DnsObservation {
        qname,
        rrtype,
        response: qr,
        rcode: rcode as u8,
        ..Default::default()
    });
    if qr {
        e.insert("rcode".into(), rcode_name(rcode).into());
        let mut answers = Vec::new();
        let mut auths = Vec::new();
        let mut grouped: Map<String, Value> = Map::new();
        let mut budget = cfg.dns_max_records;
        'sections: for (sec, &n) in counts[1..3].iter().enumerate() {
            for _ in 0..n {
                if bad || budget == 0 {
                    break 'sections;
                }
                budget -= 1;
                match read_rr(&mut r) {
                    Ok(rr) => {
                        if sec == 0 {
                            if let Some(o) = &mut obs {
                                o.answer_count += 1;
                                o.answer_bytes += rr.rdata_len;
                                o.txt_null_bytes += rr.txt_null_bytes;
                            }
                            answers.extend(rr.details);
                            if !rr.grouped.is_empty() {
                                if let Value::Array(a) = grouped
                                    .entry(rrtype_name(rr.rrtype))
                                    .or_insert_with(|| Value::Array(Vec::new()))
                                {
                                    a.extend(rr.grouped);
                                }
                            }
                        } else {
                            auths.extend(rr.details);
                        }
                    }
                    Err(er) => {
                        out.event(name_event(er), dir, Some(txid));
                        bad = true;
                    }
                }
            }
        }
        if !answers.is_empty() {
            e.insert("answers".into(), answers.into());
            e.insert("grouped".into(), Value::Object(grouped));
        }
        if !auths.is_empty() {
            e.insert("authorities".into(), auths.into());
        }
    }
    tx.eve = Value::Object(e);
    tx.dns = obs;
    out.tx(tx);
}

/// DNS over TCP: 2-byte length prefix per message, per direction.
pub(crate) struct DnsTcp {
    cfg: AppConfig,
    buf: [Vec<u8>; 2],
    /// Bytes of an oversized message still to skip.
    skip: [usize; 2],
    dead: [bool; 2],
}

impl DnsTcp {
    pub(crate) fn new(cfg: AppConfig) -> Self {
        DnsTcp {
            cfg,
            buf: [Vec::new(), Vec::new()],
            skip: [0; 2],
            dead: [false; 2],
        }
    }

    pub(crate) fn mem_bytes(&self) -> usize {
        self.buf[0].capacity() + self.buf[1].capacity()
    }

    pub(crate) fn gap(&mut self, dir: Direction) {
        let d = di(dir);
        self.dead[d] = true;
        self.buf[d] = Vec::new();
    }

    pub(crate) fn input(&mut self, dir: Direction, mut data: &[u8], out: &mut Out<'_>) {
        let d = di(dir);
        while !data.is_empty() && !self.dead[d] {
            if self.skip[d] > 0 {
                let n = self.skip[d].min(data.len());
                self.skip[d] -= n;
                data = &data[n..];
                continue;
            }
            let b = &mut self.buf[d];
            if b.len() < 2 {
                let n = (2 - b.len()).min(data.len());
                b.extend_from_slice(&data[..n]);
                data = &data[n..];
                continue;
            }
            let len = u16::from_be_bytes([b[0], b[1]]) as usize;
            if len > self.cfg.dns_max_tcp_message || len < 12 {
                out.event("dns.malformed_data", dir, None);
                b.clear();
                if len < 12 {
                    // Framing is lost.
                    self.dead[d] = true;
                    return;
                }
                self.skip[d] = len;
                continue;
            }
            let need = 2 + len - b.len();
            let n = need.min(data.len());
            b.extend_from_slice(&data[..n]);
            data = &data[n..];
            if b.len() == 2 + len {
                let msg = std::mem::take(b);
                parse_message(&msg[2..], dir, &self.cfg, out);
                let mut msg = msg;
                msg.clear();
                self.buf[d] = msg;
            }
        }
    }
}
