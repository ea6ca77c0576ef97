//! The read buffer both file readers share: records are handed out as
//! slices of one large buffer (no per-packet copy), refilled from any
//! `Read` — a file, a pipe, stdin.

use std::io::Read;

const BUF_SIZE: usize = 4 << 20;

/// What a reader had to skip to get past damage in its input.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Damage {
    /// Corrupt records or blocks met (each a point where the reader had to
    /// search for the next valid one).
    pub corrupt_records: u64,
    /// Bytes skipped while searching.
    pub skipped_bytes: u64,
}

pub(crate) struct Buffer<R> {
    src: R,
    pub(crate) buf: Vec<u8>,
    /// Unread bytes are `buf[start..end]`.
    pub(crate) start: usize,
    pub(crate) end: usize,
    eof: bool,
    /// Bytes consumed before `buf[0]` (the input offset of `buf[0]`).
    base: u64,
    pub(crate) damage: Damage,
}

impl<R: Read> Buffer<R> {
    pub(crate) fn new(src: R) -> Self {
        Buffer {
            src,
            buf: vec![0; BUF_SIZE],
            start: 0,
            end: 0,
            eof: false,
            base: 0,
            damage: Damage::default(),
        }
    }

    /// Unread bytes.
    pub(crate) fn available(&self) -> usize {
        self.end - self.start
    }

    /// The input offset of the next unread byte (for messages).
    pub(crate) fn offset(&self) -> u64 {
        self.base + self.start as u64
    }

    /// Makes at least `n` unread bytes available unless the input ends
    /// first (`n` must not exceed the buffer size).
    pub(crate) fn fill(&mut self, n: usize) -> std::io::Result<bool> {
        debug_assert!(n <= self.buf.len());
        while self.end - self.start < n {
            if self.eof {
                return Ok(false);
            }
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.base += self.start as u64;
                self.start = 0;
            }
            let got = match self.src.read(&mut self.buf[self.end..]) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if got == 0 {
                self.eof = true;
            }
            self.end += got;
        }
        Ok(true)
    }

    /// Skips one byte while searching for the next valid record.
    pub(crate) fn skip_byte(&mut self) {
        self.start += 1;
        self.damage.skipped_bytes += 1;
    }

    /// Skips every unread byte (damage that ends the input).
    pub(crate) fn skip_rest(&mut self) {
        self.damage.skipped_bytes += (self.end - self.start) as u64;
        self.start = self.end;
    }

    pub(crate) fn u32_at(&self, at: usize, big_endian: bool) -> u32 {
        let b = [
            self.buf[at],
            self.buf[at + 1],
            self.buf[at + 2],
            self.buf[at + 3],
        ];
        if big_endian {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        }
    }

    pub(crate) fn u16_at(&self, at: usize, big_endian: bool) -> u16 {
        let b = [self.buf[at], self.buf[at + 1]];
        if big_endian {
            u16::from_be_bytes(b)
        } else {
            u16::from_le_bytes(b)
        }
    }
}
