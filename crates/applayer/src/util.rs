//! Small helpers: a bounds-checked reader, hex, string escaping.

/// Cursor over hostile bytes: every read is checked, nothing panics.
pub(crate) struct Rd<'a> {
    pub(crate) b: &'a [u8],
    pub(crate) p: usize,
}

impl<'a> Rd<'a> {
    pub(crate) fn new(b: &'a [u8]) -> Self {
        Rd { b, p: 0 }
    }
    pub(crate) fn left(&self) -> usize {
        self.b.len().saturating_sub(self.p)
    }
    pub(crate) fn u8(&mut self) -> Option<u8> {
        let v = *self.b.get(self.p)?;
        self.p += 1;
        Some(v)
    }
    pub(crate) fn u16(&mut self) -> Option<u16> {
        let s = self.take(2)?;
        Some(u16::from_be_bytes([s[0], s[1]]))
    }
    pub(crate) fn u24(&mut self) -> Option<usize> {
        let s = self.take(3)?;
        Some(((s[0] as usize) << 16) | ((s[1] as usize) << 8) | s[2] as usize)
    }
    pub(crate) fn u32(&mut self) -> Option<u32> {
        let s = self.take(4)?;
        Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
    }
    pub(crate) fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.p.checked_add(n)?;
        let s = self.b.get(self.p..end)?;
        self.p = end;
        Some(s)
    }
}

/// Follows a stream of length-prefixed records reading only their headers
/// and skipping their bodies (TLS records once encrypted, SSH packets of
/// the key exchange): a few bytes of state, whatever the record sizes.
#[derive(Default)]
pub(crate) struct HeaderWalk {
    hdr: [u8; 8],
    have: usize,
    skip: usize,
}

impl HeaderWalk {
    /// Feeds the next bytes. `on_header` gets each complete header of
    /// `len` bytes (at most 8) and returns the length of the body that
    /// follows it, or `None` to stop. False once stopped.
    pub(crate) fn feed(
        &mut self,
        mut data: &[u8],
        len: usize,
        mut on_header: impl FnMut(&[u8]) -> Option<usize>,
    ) -> bool {
        loop {
            let n = self.skip.min(data.len());
            self.skip -= n;
            data = &data[n..];
            if data.is_empty() {
                return true;
            }
            let n = (len - self.have).min(data.len());
            self.hdr[self.have..self.have + n].copy_from_slice(&data[..n]);
            self.have += n;
            data = &data[n..];
            if self.have < len {
                return true;
            }
            self.have = 0;
            match on_header(&self.hdr[..len]) {
                Some(body) => self.skip = body,
                None => return false,
            }
        }
    }
}

pub(crate) fn hex(b: &[u8]) -> String {
    const H: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(b.len() * 2);
    for &x in b {
        s.push(H[(x >> 4) as usize] as char);
        s.push(H[(x & 15) as usize] as char);
    }
    s
}

/// Bytes as a JSON string: valid UTF-8 as is, other bytes as `\xNN`
/// (Suricata escapes non-printable bytes similarly).
pub(crate) fn js(b: &[u8]) -> String {
    match std::str::from_utf8(b) {
        Ok(s) => s.to_string(),
        Err(_) => {
            let mut s = String::with_capacity(b.len() + 8);
            for &x in b {
                if x.is_ascii() {
                    s.push(x as char);
                } else {
                    s.push_str(&format!("\\x{x:02X}"));
                }
            }
            s
        }
    }
}

pub(crate) fn md5_hex(s: &[u8]) -> String {
    use md5::{Digest, Md5};
    hex(&Md5::digest(s))
}

pub(crate) fn trim(mut b: &[u8]) -> &[u8] {
    while let [f, rest @ ..] = b {
        if *f == b' ' || *f == b'\t' {
            b = rest;
        } else {
            break;
        }
    }
    while let [rest @ .., l] = b {
        if *l == b' ' || *l == b'\t' || *l == b'\r' || *l == b'\n' {
            b = rest;
        } else {
            break;
        }
    }
    b
}
