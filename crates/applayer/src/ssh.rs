//! SSH session start: banners (protocol and software version) and the
//! first KEXINIT of each side (HASSH / HASSH-server). After KEXINIT only
//! packet headers are read, to find each side's NEWKEYS: past both the
//! session is encrypted (payload inspection ends there, as in Suricata).
//! Everything after NEWKEYS is ignored.

use crate::util::{js, md5_hex, trim, HeaderWalk, Rd};
use crate::{di, AppConfig, AppProto, Buffer, Direction, Out, Transaction};
use serde_json::{json, Map, Value};

/// Longest banner line (RFC 4253 4.2: 255 bytes incl. CRLF).
const MAX_BANNER: usize = 255;
/// Non-banner lines a server may send before its banner.
const MAX_PRE_LINES: usize = 32;

#[derive(Default)]
struct Half {
    line: Vec<u8>,
    pre_lines: usize,
    proto: Option<Vec<u8>>,
    software: Option<Vec<u8>>,
    rec: Vec<u8>,
    hassh: Option<String>,
    done: bool,
    dead: bool,
    /// NEWKEYS sent: this side is encrypted.
    newkeys: bool,
    /// After KEXINIT: only packet headers are read.
    walk: HeaderWalk,
}

pub(crate) struct SshState {
    cfg: AppConfig,
    h: [Half; 2],
    id: Option<u64>,
    sent: bool,
}

/// HASSH string from a KEXINIT payload (after the message code): lists 0
/// (kex), 2/3 (encryption), 4/5 (mac), 6/7 (compression); client takes the
/// client-to-server lists, server the server-to-client ones.
pub(crate) fn hassh_string(payload: &[u8], server: bool) -> Option<String> {
    let mut r = Rd::new(payload);
    r.take(16)?;
    let mut lists: Vec<&[u8]> = Vec::with_capacity(10);
    for _ in 0..10 {
        let n = r.u32()? as usize;
        lists.push(r.take(n)?);
    }
    let o = usize::from(server);
    let parts = [lists[0], lists[2 + o], lists[4 + o], lists[6 + o]];
    Some(parts.iter().map(|p| js(p)).collect::<Vec<_>>().join(";"))
}

impl SshState {
    pub(crate) fn new(cfg: AppConfig) -> Self {
        SshState {
            cfg,
            h: [Half::default(), Half::default()],
            id: None,
            sent: false,
        }
    }

    /// Both sides sent NEWKEYS.
    pub(crate) fn encrypted(&self) -> bool {
        self.h[0].newkeys && self.h[1].newkeys
    }

    /// After KEXINIT: reads the clear-text key exchange packets' headers
    /// only (length, padding, message code), skipping their bodies, until
    /// NEWKEYS (21).
    fn watch(&mut self, d: usize, data: &[u8]) {
        let max = self.cfg.ssh_max_record_bytes;
        let h = &mut self.h[d];
        if h.newkeys || h.dead {
            return;
        }
        let mut newkeys = false;
        let going = h.walk.feed(data, 6, |hdr| {
            let plen = u32::from_be_bytes([hdr[0], hdr[1], hdr[2], hdr[3]]) as usize;
            if plen < 2 || plen > max {
                return None;
            }
            if hdr[5] == 21 {
                newkeys = true;
                return None;
            }
            // Past the padding length and message code.
            Some(plen - 2)
        });
        if newkeys {
            h.newkeys = true;
        } else if !going {
            // Not a clear-text packet: nothing to follow.
            h.dead = true;
        }
    }

    pub(crate) fn mem_bytes(&self) -> usize {
        self.h
            .iter()
            .map(|h| h.line.capacity() + h.rec.capacity())
            .sum()
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

    pub(crate) fn gap(&mut self, dir: Direction) {
        let h = &mut self.h[di(dir)];
        h.dead = true;
        h.rec = Vec::new();
        h.line = Vec::new();
    }

    fn stop(&mut self, dir: Direction, ev: &'static str, out: &mut Out<'_>) {
        let id = self.tx_id(out);
        out.event(ev, dir, Some(id));
        let h = &mut self.h[di(dir)];
        h.dead = true;
        h.rec = Vec::new();
        h.line = Vec::new();
        self.maybe_done(out);
    }

    pub(crate) fn input(&mut self, dir: Direction, mut data: &[u8], out: &mut Out<'_>) {
        let d = di(dir);
        while !data.is_empty() {
            let h = &mut self.h[d];
            if h.dead {
                return;
            }
            if h.done {
                if h.proto
                    .as_deref()
                    .is_some_and(|p| p.starts_with(b"2.") || p == b"1.99")
                {
                    self.watch(d, data);
                }
                return;
            }
            if h.proto.is_none() {
                let (chunk, nl) = match data.iter().position(|c| *c == b'\n') {
                    Some(i) => (&data[..=i], true),
                    None => (data, false),
                };
                data = &data[chunk.len()..];
                if h.line.len() + chunk.len() > MAX_BANNER + 1 {
                    let is_banner = h.line.starts_with(b"SSH-") || chunk.starts_with(b"SSH-");
                    if is_banner {
                        let room = (MAX_BANNER + 1).saturating_sub(h.line.len());
                        h.line.extend_from_slice(&chunk[..room.min(chunk.len())]);
                        let id = self.tx_id(out);
                        out.event("ssh.long_banner", dir, Some(id));
                        let h = &mut self.h[d];
                        if !nl {
                            // Keep what fits; skip the rest of the line.
                            h.pre_lines = usize::MAX;
                        }
                        let line = std::mem::take(&mut h.line);
                        self.banner(dir, &line, out);
                        continue;
                    }
                    h.line.clear();
                } else {
                    h.line.extend_from_slice(chunk);
                }
                if !nl {
                    return;
                }
                let h = &mut self.h[d];
                let line = std::mem::take(&mut h.line);
                if line.starts_with(b"SSH-") {
                    self.banner(dir, &line, out);
                } else {
                    h.pre_lines += 1;
                    if dir == Direction::ToServer || h.pre_lines > MAX_PRE_LINES {
                        self.stop(dir, "ssh.invalid_banner", out);
                        return;
                    }
                }
                continue;
            }
            // Binary packets until the first KEXINIT.
            if h.rec.len() < 5 {
                let n = (5 - h.rec.len()).min(data.len());
                h.rec.extend_from_slice(&data[..n]);
                data = &data[n..];
                if h.rec.len() < 5 {
                    return;
                }
            }
            let plen = u32::from_be_bytes([h.rec[0], h.rec[1], h.rec[2], h.rec[3]]) as usize;
            if plen < 2 || plen > self.cfg.ssh_max_record_bytes {
                let ev = if plen < 2 {
                    "ssh.invalid_record_length"
                } else {
                    "ssh.long_kex_record"
                };
                self.stop(dir, ev, out);
                return;
            }
            let need = 4 + plen - h.rec.len();
            let n = need.min(data.len());
            h.rec.extend_from_slice(&data[..n]);
            data = &data[n..];
            if h.rec.len() < 4 + plen {
                return;
            }
            let pad = h.rec[4] as usize;
            let rec = std::mem::take(&mut h.rec);
            let payload = rec.get(5..(4 + plen).saturating_sub(pad)).unwrap_or(&[]);
            match payload.first() {
                Some(20) => {
                    let server = dir == Direction::ToClient;
                    match hassh_string(&payload[1..], server) {
                        Some(s) => self.h[d].hassh = Some(s),
                        None => {
                            let id = self.tx_id(out);
                            out.event("ssh.invalid_record_length", dir, Some(id));
                        }
                    }
                    self.h[d].done = true;
                    self.maybe_done(out);
                    self.watch(d, data);
                    return;
                }
                Some(21) => {
                    self.h[d].done = true;
                    self.h[d].newkeys = true;
                    self.maybe_done(out);
                    return;
                }
                _ => {}
            }
        }
    }

    fn banner(&mut self, dir: Direction, line: &[u8], out: &mut Out<'_>) {
        let d = di(dir);
        let l = trim(line);
        let rest = &l[4.min(l.len())..];
        let (proto, sw) = match rest.iter().position(|c| *c == b'-') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, &b""[..]),
        };
        let sw = sw.split(|c| *c == b' ').next().unwrap_or(sw);
        if proto.is_empty() || sw.is_empty() {
            let id = self.tx_id(out);
            out.event("ssh.invalid_banner", dir, Some(id));
        }
        let h = &mut self.h[d];
        h.proto = Some(proto.to_vec());
        h.software = Some(sw.to_vec());
        if h.pre_lines == usize::MAX {
            // Rest of an over-long banner line must be skipped; give up on
            // this side's binary part.
            h.dead = true;
        }
        if !proto.starts_with(b"2.") && proto != b"1.99" {
            // SSH-1: no KEXINIT will follow.
            h.done = true;
        }
        self.maybe_done(out);
    }

    fn maybe_done(&mut self, out: &mut Out<'_>) {
        if self.sent {
            return;
        }
        let fin = |h: &Half| h.done || h.dead;
        if fin(&self.h[0]) && fin(&self.h[1]) {
            self.sent = true;
            let tx = self.build(out);
            out.tx(tx);
        }
    }

    pub(crate) fn close(&mut self, out: &mut Out<'_>) {
        if !self.sent && (self.h[0].proto.is_some() || self.h[1].proto.is_some()) {
            self.sent = true;
            let tx = self.build(out);
            out.tx(tx);
        }
    }

    fn build(&mut self, out: &mut Out<'_>) -> Transaction {
        let id = self.tx_id(out);
        let mut tx = Transaction::new(AppProto::Ssh, id);
        tx.complete = true;
        let mut e = Map::new();
        for (d, key) in [
            (Direction::ToServer, "client"),
            (Direction::ToClient, "server"),
        ] {
            let h = &self.h[di(d)];
            let Some(p) = &h.proto else {
                continue;
            };
            let mut o = Map::new();
            o.insert("proto_version".into(), js(p).into());
            tx.set(Buffer::SshProto, d, p);
            if let Some(s) = &h.software {
                o.insert("software_version".into(), js(s).into());
                tx.set(Buffer::SshSoftware, d, s);
            }
            if let Some(hs) = &h.hassh {
                let hash = md5_hex(hs.as_bytes());
                o.insert("hassh".into(), json!({"hash": hash, "string": hs}));
                let (bh, bs) = if d == Direction::ToServer {
                    (Buffer::SshHassh, Buffer::SshHasshString)
                } else {
                    (Buffer::SshHasshServer, Buffer::SshHasshServerString)
                };
                tx.set(bh, d, hash.as_bytes());
                tx.set(bs, d, hs.as_bytes());
            }
            e.insert(key.into(), Value::Object(o));
        }
        tx.eve = Value::Object(e);
        tx
    }
}
