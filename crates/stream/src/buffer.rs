//! Storage of one direction: buffered out-of-order runs and the retained,
//! already delivered bytes.

/// Bytes accounted per buffered run on top of its data (map node, box and
/// origin), so that many tiny segments cost what they really cost.
pub const CHUNK_OVERHEAD_BYTES: u64 = 64;

/// A run of buffered bytes, all supplied by one segment.
#[derive(Debug, Clone)]
pub(crate) struct Chunk {
    pub data: Box<[u8]>,
    /// Start and end offset of the segment that supplied these bytes (for
    /// the overlap policy).
    pub origin: (u64, u64),
}

impl Chunk {
    pub fn cost(&self) -> u64 {
        self.data.len() as u64 + CHUNK_OVERHEAD_BYTES
    }
}

/// Delivered bytes `[start, start + len)` kept to compare retransmissions
/// with. A vector with a moving head: dropping from the front is O(1)
/// amortized and the content stays one slice.
#[derive(Debug, Clone, Default)]
pub(crate) struct History {
    buf: Vec<u8>,
    head: usize,
    /// Stream offset of the first kept byte.
    pub start: u64,
}

impl History {
    pub fn len(&self) -> u64 {
        (self.buf.len() - self.head) as u64
    }

    pub fn end(&self) -> u64 {
        self.start.saturating_add(self.len())
    }

    /// Forgets everything; the next kept byte will be at `off`. Returns the
    /// bytes released.
    pub fn clear_to(&mut self, off: u64) -> u64 {
        let n = self.len();
        self.buf = Vec::new();
        self.head = 0;
        self.start = off;
        n
    }

    /// Drops up to `n` bytes from the front; returns how many were dropped.
    pub fn drop_front(&mut self, n: u64) -> u64 {
        let n = n.min(self.len());
        self.head += n as usize;
        self.start = self.start.saturating_add(n);
        if self.head == self.buf.len() {
            self.buf.clear();
            self.head = 0;
        } else if self.head >= 4096 && self.head * 2 >= self.buf.len() {
            self.buf.drain(..self.head);
            self.head = 0;
        }
        n
    }

    /// Appends bytes that start at `end()`.
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The kept bytes of `[from, to)`, which must lie within the history.
    pub fn slice(&self, from: u64, to: u64) -> &[u8] {
        let a = self.head + (from - self.start) as usize;
        let b = self.head + (to - self.start) as usize;
        &self.buf[a..b]
    }
}
