//! Files carried by a transaction (an HTTP body, an SMTP attachment):
//! hashed as their bytes arrive, typed by their first bytes, sized. A file
//! in progress holds its hash states, the first [`MAGIC_BYTES`] bytes and
//! at most the configured inspection depth of data for `file_data`
//! rules; never the whole file.

use crate::util::hex;
use crate::AppProto;
use md5::Md5;
use serde_json::{json, Map, Value};
use sha1::Sha1;
use sha2::{Digest, Sha256};

/// Bytes kept from a file's start to tell its type.
pub(crate) const MAGIC_BYTES: usize = 512;

/// How a file ended (EVE `fileinfo.state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileState {
    /// Seen whole.
    Closed,
    /// Its transaction or flow ended before the file did (a gap, a
    /// close mid-body, a limit).
    Truncated,
    /// The data could not be decoded (broken compression or encoding).
    Error,
}

impl FileState {
    /// Suricata's spelling.
    pub fn name(self) -> &'static str {
        match self {
            FileState::Closed => "CLOSED",
            FileState::Truncated => "TRUNCATED",
            FileState::Error => "ERROR",
        }
    }
}

/// A finished file: what a `fileinfo` record says about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileInfo {
    /// Protocol that carried it.
    pub proto: AppProto,
    /// Transaction it belongs to.
    pub tx_id: u64,
    /// Name (URI path for HTTP, attachment name for mail), raw bytes.
    pub filename: Vec<u8>,
    /// Bytes seen (after transfer decoding).
    pub size: u64,
    /// How it ended.
    pub state: FileState,
    /// SHA-256, lowercase hex.
    pub sha256: String,
    /// MD5 when configured (`force-hash`).
    pub md5: Option<String>,
    /// SHA-1 when configured.
    pub sha1: Option<String>,
    /// Type from the first bytes ([`magic`]), `None` when unknown.
    pub magic: Option<&'static str>,
}

impl FileInfo {
    /// The object under EVE `fileinfo`, Suricata's field names.
    pub fn eve(&self) -> Value {
        let mut m = Map::new();
        m.insert("filename".into(), crate::util::js(&self.filename).into());
        if let Some(t) = self.magic {
            m.insert("magic".into(), t.into());
        }
        m.insert("gaps".into(), json!(self.state == FileState::Truncated));
        m.insert("state".into(), self.state.name().into());
        if let Some(h) = &self.md5 {
            m.insert("md5".into(), h.as_str().into());
        }
        if let Some(h) = &self.sha1 {
            m.insert("sha1".into(), h.as_str().into());
        }
        m.insert("sha256".into(), self.sha256.as_str().into());
        m.insert("stored".into(), false.into());
        m.insert("size".into(), self.size.into());
        m.insert("tx_id".into(), self.tx_id.into());
        Value::Object(m)
    }
}

/// Which hashes to compute besides SHA-256.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FileHashes {
    /// MD5 (Suricata `force-hash: [md5]`).
    pub md5: bool,
    /// SHA-1.
    pub sha1: bool,
}

/// A file in progress.
pub(crate) struct FileTrack {
    name: Vec<u8>,
    size: u64,
    sha256: Sha256,
    md5: Option<Md5>,
    sha1: Option<Sha1>,
    head: Vec<u8>,
    keep: Vec<u8>,
    keep_limit: usize,
}

impl FileTrack {
    /// A new file; `keep_limit` bytes of its data are kept for `file_data`.
    pub(crate) fn new(name: Vec<u8>, hashes: FileHashes, keep_limit: usize) -> Self {
        FileTrack {
            name,
            size: 0,
            sha256: Sha256::new(),
            md5: hashes.md5.then(Md5::new),
            sha1: hashes.sha1.then(Sha1::new),
            head: Vec::new(),
            keep: Vec::new(),
            keep_limit,
        }
    }

    pub(crate) fn append(&mut self, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        self.size = self.size.saturating_add(data.len() as u64);
        self.sha256.update(data);
        if let Some(h) = &mut self.md5 {
            h.update(data);
        }
        if let Some(h) = &mut self.sha1 {
            h.update(data);
        }
        let room = MAGIC_BYTES.saturating_sub(self.head.len());
        self.head.extend_from_slice(&data[..room.min(data.len())]);
        let room = self.keep_limit.saturating_sub(self.keep.len());
        self.keep.extend_from_slice(&data[..room.min(data.len())]);
    }

    pub(crate) fn mem_bytes(&self) -> usize {
        self.name.capacity() + self.head.capacity() + self.keep.capacity() + 256
    }

    /// The finished file and the data kept for `file_data`.
    pub(crate) fn finish(
        self,
        state: FileState,
        proto: AppProto,
        tx_id: u64,
    ) -> (FileInfo, Vec<u8>) {
        let magic = magic(&self.head);
        let info = FileInfo {
            proto,
            tx_id,
            filename: self.name,
            size: self.size,
            state,
            sha256: hex(&self.sha256.finalize()),
            md5: self.md5.map(|h| hex(&h.finalize())),
            sha1: self.sha1.map(|h| hex(&h.finalize())),
            magic,
        };
        (info, self.keep)
    }
}

fn le16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

fn le32(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at + 4)?;
    Some(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

/// A Windows executable: `MZ`, then the PE header where `e_lfanew` points
/// (within the bytes kept), its optional header magic telling PE32 from
/// PE32+. Written as the start of what `file(1)` prints.
fn magic_pe(b: &[u8]) -> &'static str {
    let pe = le32(b, 0x3c).map(|o| o as usize);
    let Some(pe) = pe.filter(|&o| b.get(o..o + 4) == Some(b"PE\0\0")) else {
        return "MS-DOS executable";
    };
    let chars = le16(b, pe + 22).unwrap_or(0);
    let dll = chars & 0x2000 != 0;
    match (le16(b, pe + 24), dll) {
        (Some(0x20b), false) => "PE32+ executable",
        (Some(0x20b), true) => "PE32+ executable (DLL)",
        (Some(0x10b), false) => "PE32 executable",
        (Some(0x10b), true) => "PE32 executable (DLL)",
        _ => "PE Unknown PE signature",
    }
}

/// Zip archives that are really Office documents or Java archives, told by
/// the first member's name as `file(1)` does.
fn magic_zip(b: &[u8]) -> &'static str {
    let name_len = le16(b, 26).unwrap_or(0) as usize;
    let name = b.get(30..30 + name_len).unwrap_or(&[]);
    if name == b"[Content_Types].xml"
        || name.starts_with(b"_rels/")
        || name.starts_with(b"docProps/")
    {
        "Microsoft OOXML"
    } else if name == b"META-INF/MANIFEST.MF" || name == b"META-INF/" {
        "Java archive data (JAR)"
    } else if name == b"mimetype" {
        "OpenDocument"
    } else {
        "Zip archive data"
    }
}

/// Text types by content: HTML markers, a script's `#!`, else plain text
/// when the bytes kept are printable.
fn magic_text(b: &[u8]) -> Option<&'static str> {
    // The tags `file(1)` takes for HTML at the start (whitespace skipped).
    const HTML: &[&[u8]] = &[
        b"<!doctype html",
        b"<html",
        b"<head",
        b"<title",
        b"<script",
        b"<style",
        b"<table",
        b"<a href=",
    ];
    let t = b.trim_ascii_start();
    let low: Vec<u8> = t.iter().take(64).map(u8::to_ascii_lowercase).collect();
    if HTML.iter().any(|h| low.starts_with(h)) {
        return Some("HTML document");
    }
    if low.starts_with(b"<?xml") {
        return Some("XML");
    }
    if b.starts_with(b"#!") {
        return Some("script");
    }
    if b.starts_with(b"-----BEGIN CERTIFICATE-----") {
        return Some("PEM certificate");
    }
    if is_text(b) {
        Some("ASCII text")
    } else if std::str::from_utf8(b).is_ok() && !b.is_empty() {
        Some("Unicode text")
    } else {
        None
    }
}

/// Printable ASCII with the usual control characters only.
fn is_text(b: &[u8]) -> bool {
    !b.is_empty()
        && b.iter()
            .all(|&c| c.is_ascii_graphic() || matches!(c, b' ' | b'\t' | b'\r' | b'\n' | 0x0c))
}

/// The type of a file from its first bytes: a short table of the types
/// that matter on the wire (executables, archives, documents, images,
/// Flash, HTML and text), named as the start of `file -b`'s answer.
pub fn magic(b: &[u8]) -> Option<&'static str> {
    const TABLE: &[(&[u8], &str)] = &[
        (b"\x7fELF", "ELF"),
        (b"%PDF-", "PDF document"),
        (b"\x1f\x8b", "gzip compressed data"),
        (b"\x89PNG\r\n\x1a\n", "PNG image data"),
        (b"\xff\xd8\xff", "JPEG image data"),
        (b"GIF87a", "GIF image data"),
        (b"GIF89a", "GIF image data"),
        (b"FWS", "Macromedia Flash data"),
        (b"CWS", "Macromedia Flash data (compressed)"),
        (b"ZWS", "Macromedia Flash data (LZMA compressed)"),
        (
            b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1",
            "Composite Document File V2 Document",
        ),
        (b"Rar!\x1a\x07", "RAR archive data"),
        (b"7z\xbc\xaf\x27\x1c", "7-zip archive data"),
        (b"\xca\xfe\xba\xbe", "compiled Java class data"),
        (b"BZh", "bzip2 compressed data"),
        (b"\xfd7zXZ\0", "XZ compressed data"),
        (b"{\\rtf", "Rich Text Format data"),
        (b"RIFF", "RIFF (little-endian) data"),
        (b"MSCF", "Microsoft Cabinet archive data"),
        (b"\0\0\x01\0", "MS Windows icon resource"),
        (b"wOFF", "Web Open Font Format"),
        (b"wOF2", "Web Open Font Format (Version 2)"),
        (b"\x78\x9c", "zlib compressed data"),
        (b"\x78\xda", "zlib compressed data"),
        (b"\x78\x01", "zlib compressed data"),
    ];
    if b.starts_with(b"MZ") && !is_text(b) {
        return Some(magic_pe(b));
    }
    if b.starts_with(b"PK\x03\x04") {
        return Some(magic_zip(b));
    }
    if let Some((_, name)) = TABLE.iter().find(|(m, _)| b.starts_with(m)) {
        return Some(name);
    }
    magic_text(b)
}
