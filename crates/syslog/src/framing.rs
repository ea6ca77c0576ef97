//! RFC 6587 stream framing, decided per frame: a frame that starts with `DIGITS SP <` is
//! octet-counted, anything else ends at LF or NUL (non-transparent framing; a trailing CR is
//! removed by the parser). Frames longer than the maximum are cut to the maximum, flagged
//! `truncated`, and the rest of the frame is discarded (counted in bytes). An octet count larger
//! than the maximum frame is **not** a frame header: such a line (`1701948000 <alice@…> mailbox
//! full`) is read as a plain line, and counted ([`Framer::take_stats`]). Memory stays bounded by
//! the maximum frame size: only the unfinished tail of a read is kept, and a framer with nothing
//! pending holds no buffer.

/// Longest octet count accepted (digits); a longer digit run is not a count.
const MAX_COUNT_DIGITS: usize = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// At a frame boundary.
    Start,
    /// Discarding up to the next LF/NUL of an over-long non-transparent frame.
    SkipDelim,
}

/// What a framer discarded or reinterpreted since the last [`Framer::take_stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FramerStats {
    /// Bytes thrown away: the rest of frames cut at the maximum frame size.
    pub discarded_bytes: u64,
    /// Lines that looked like an octet-count header (`DIGITS SP <`) with a count larger than the
    /// maximum frame size, read as plain lines instead.
    pub oversize_counts: u64,
}

/// Splits a byte stream into syslog frames.
#[derive(Debug)]
pub struct Framer {
    buf: Vec<u8>,
    max_frame: usize,
    state: State,
    stats: FramerStats,
    boundaries: u64,
    /// Bytes at the start of `buf` already searched for a delimiter (a line under way), so that
    /// a line arriving a byte at a time is not searched again from its start on every push.
    scanned: usize,
}

/// Buffers with nothing pending and more capacity than this are released.
const KEEP_CAPACITY: usize = 4096;

impl Framer {
    /// A framer cutting frames at `max_frame` bytes (at least 16).
    pub fn new(max_frame: usize) -> Self {
        Framer {
            buf: Vec::new(),
            max_frame: max_frame.max(16),
            state: State::Start,
            stats: FramerStats::default(),
            boundaries: 0,
            scanned: 0,
        }
    }

    /// Bytes held waiting for the rest of a frame.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    /// Bytes of memory the framer's buffer holds (its capacity).
    pub fn held(&self) -> usize {
        self.buf.capacity()
    }

    /// Whether a frame is under way: bytes are pending, or the rest of a cut frame is being
    /// discarded.
    pub fn in_frame(&self) -> bool {
        !self.buf.is_empty() || self.state != State::Start
    }

    /// Frame boundaries passed so far (frames emitted, cut frames ended, blank lines). A change
    /// across [`Framer::push`] means the frame now under way began in that push.
    pub fn boundaries(&self) -> u64 {
        self.boundaries
    }

    /// Returns what was discarded since the last call, and resets it.
    pub fn take_stats(&mut self) -> FramerStats {
        std::mem::take(&mut self.stats)
    }

    /// Feeds bytes; calls `emit(frame, truncated)` for each complete frame. Empty frames
    /// (blank lines) are skipped.
    pub fn push(&mut self, data: &[u8], emit: &mut dyn FnMut(&[u8], bool)) {
        if self.buf.is_empty() {
            // Frame straight from the caller's buffer; keep only the unfinished tail.
            let used = self.drain(data, emit, false);
            self.buf.extend_from_slice(&data[used..]);
        } else {
            self.buf.extend_from_slice(data);
            let buf = std::mem::take(&mut self.buf);
            let used = self.drain(&buf, emit, false);
            self.buf = buf;
            self.buf.drain(..used);
        }
        if self.buf.is_empty() && self.buf.capacity() > KEEP_CAPACITY {
            self.buf = Vec::new();
        }
    }

    /// End of stream: emits a final unterminated frame, if any.
    pub fn finish(&mut self, emit: &mut dyn FnMut(&[u8], bool)) {
        let buf = std::mem::take(&mut self.buf);
        self.drain(&buf, emit, true);
        self.state = State::Start;
        self.scanned = 0;
    }

    /// Cuts the frame under way (frame timeout, memory budget): emits what is pending, flagged
    /// truncated, and forgets it. Returns whether anything was emitted.
    pub fn cut(&mut self, emit: &mut dyn FnMut(&[u8], bool)) -> bool {
        let buf = std::mem::take(&mut self.buf);
        self.state = State::Start;
        self.scanned = 0;
        let k = buf.len().min(self.max_frame);
        let data = &buf[..k];
        let data = match data.iter().position(|&b| !matches!(b, b'\n' | 0 | b'\r')) {
            Some(p) => &data[p..],
            None => return false,
        };
        emit(data, true);
        self.stats.discarded_bytes += (buf.len() - k) as u64;
        self.boundaries += 1;
        true
    }

    /// Drops the frame under way (counted as discarded bytes), as at a frame boundary.
    pub fn discard(&mut self) {
        self.stats.discarded_bytes += self.buf.len() as u64;
        self.buf = Vec::new();
        self.state = State::Start;
        self.scanned = 0;
    }

    /// Frames `data` from its start; returns the bytes used (the rest is an unfinished frame).
    fn drain(&mut self, data: &[u8], emit: &mut dyn FnMut(&[u8], bool), eof: bool) -> usize {
        let mut pos = 0;
        let scanned = std::mem::take(&mut self.scanned);
        loop {
            let avail = &data[pos..];
            if avail.is_empty() {
                return pos;
            }
            match self.state {
                State::SkipDelim => match memchr::memchr2(b'\n', 0, avail) {
                    Some(p) => {
                        self.stats.discarded_bytes += p as u64;
                        pos += p + 1;
                        self.state = State::Start;
                        self.boundaries += 1;
                    }
                    None => {
                        self.stats.discarded_bytes += avail.len() as u64;
                        return data.len();
                    }
                },
                State::Start => {
                    // Skip blank lines between frames.
                    if matches!(avail[0], b'\n' | 0 | b'\r') {
                        pos += 1;
                        self.boundaries += 1;
                        continue;
                    }
                    let line = match octet_count(avail) {
                        Count::Yes(n, hdr) if n as usize <= self.max_frame => {
                            let n = n as usize;
                            let body = &avail[hdr..];
                            if body.len() >= n {
                                emit(&body[..n], false);
                                pos += hdr + n;
                                self.boundaries += 1;
                                continue;
                            } else if eof {
                                emit(body, false);
                                return data.len();
                            } else {
                                return pos;
                            }
                        }
                        // Larger than any frame we accept: not a count, a line that starts
                        // with a number.
                        Count::Yes(..) => Line::OversizeCount,
                        Count::NeedMore if !eof => return pos,
                        Count::No | Count::NeedMore => Line::Plain,
                    };
                    let done = |s: &mut Self| {
                        if line == Line::OversizeCount {
                            s.stats.oversize_counts += 1;
                        }
                    };
                    let from = if pos == 0 {
                        scanned.min(avail.len())
                    } else {
                        0
                    };
                    match memchr::memchr2(b'\n', 0, &avail[from..]).map(|p| p + from) {
                        Some(p) if p <= self.max_frame => {
                            emit(&avail[..p], false);
                            pos += p + 1;
                            self.boundaries += 1;
                            done(self);
                        }
                        Some(_) => {
                            emit(&avail[..self.max_frame], true);
                            pos += self.max_frame;
                            self.state = State::SkipDelim;
                            done(self);
                        }
                        None if avail.len() > self.max_frame => {
                            emit(&avail[..self.max_frame], true);
                            pos += self.max_frame;
                            self.state = State::SkipDelim;
                            done(self);
                        }
                        None if eof => {
                            emit(avail, false);
                            done(self);
                            return data.len();
                        }
                        None => {
                            self.scanned = avail.len();
                            return pos;
                        }
                    }
                }
            }
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Line {
    Plain,
    OversizeCount,
}

enum Count {
    /// Octet count and header length (digits + space).
    Yes(u64, usize),
    No,
    NeedMore,
}

fn octet_count(b: &[u8]) -> Count {
    let mut n: u64 = 0;
    for (i, &c) in b.iter().enumerate() {
        match c {
            b'0'..=b'9' if i < MAX_COUNT_DIGITS => {
                if i == 0 && c == b'0' {
                    return Count::No;
                }
                n = n * 10 + (c - b'0') as u64;
            }
            b' ' if i > 0 => {
                // An octet-counted frame starts with `<PRI>` (1-3 digits) right after the
                // count; a plain line that begins with a number (`12 users logged in`,
                // `1701948000 <alice@example.org> mailbox full`) does not.
                return match pri_at(&b[i + 1..]) {
                    Some(true) => Count::Yes(n, i + 1),
                    Some(false) => Count::No,
                    None => Count::NeedMore,
                };
            }
            _ => return Count::No,
        }
    }
    Count::NeedMore
}

/// Whether `b` starts with `<PRI>` (1-3 digits); `None` when more bytes are needed to tell.
fn pri_at(b: &[u8]) -> Option<bool> {
    match b.first() {
        None => return None,
        Some(b'<') => {}
        Some(_) => return Some(false),
    }
    for (i, &c) in b.iter().enumerate().skip(1) {
        match c {
            b'0'..=b'9' if i <= 3 => {}
            b'>' => return Some(i > 1),
            _ => return Some(false),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(max: usize, chunks: &[&[u8]]) -> Vec<(Vec<u8>, bool)> {
        let mut f = Framer::new(max);
        let mut out = Vec::new();
        for c in chunks {
            f.push(c, &mut |b, t| out.push((b.to_vec(), t)));
        }
        f.finish(&mut |b, t| out.push((b.to_vec(), t)));
        out
    }

    #[test]
    fn mixed_framing_per_frame() {
        let out = frames(
            1024,
            &[
                b"5 <1>ab",
                b"c<2>lf line\n",
                b"<3>nul\x006 <4>xy",
                b"z\n\n<5>last",
            ],
        );
        let got: Vec<_> = out.iter().map(|(b, _)| b.as_slice()).collect();
        assert_eq!(
            got,
            vec![
                &b"<1>ab"[..],
                b"c<2>lf line",
                b"<3>nul",
                b"<4>xyz",
                b"<5>last"
            ]
        );
    }

    #[test]
    fn split_anywhere_gives_same_frames() {
        let stream: &[u8] = b"11 <13>hello w<14>line two\n3 <1>\n<15>x\x00";
        let whole = frames(64, &[stream]);
        for cut in 0..stream.len() {
            let (a, b) = stream.split_at(cut);
            assert_eq!(frames(64, &[a, b]), whole, "cut at {cut}");
        }
    }

    #[test]
    fn oversize_frames_are_truncated_and_counted() {
        let long = vec![b'a'; 100];
        let mut s = b"<1>".to_vec();
        s.extend_from_slice(&long);
        s.extend_from_slice(b"\n<2>ok\n");
        let out = frames(32, &[&s]);
        assert_eq!(out.len(), 2);
        assert!(out[0].1 && out[0].0.len() == 32);
        assert_eq!(out[1], (b"<2>ok".to_vec(), false));
        // An octet count over the maximum is not a frame: the line is read as a line (cut at
        // the maximum, the rest up to the LF discarded), and the next frame is intact.
        let mut s = b"103 <1>".to_vec();
        s.extend_from_slice(&long);
        s.extend_from_slice(b"\n4 <2>k");
        let pieces: Vec<&[u8]> = s.chunks(7).collect();
        let out = frames(32, &pieces);
        assert_eq!(out.len(), 2);
        assert!(out[0].1 && out[0].0.starts_with(b"103 <1>aaa") && out[0].0.len() == 32);
        assert_eq!(out[1], (b"<2>k".to_vec(), false));
    }

    /// Feeds `chunks`; returns the frames and the stats.
    fn frames_stats(max: usize, chunks: &[&[u8]]) -> (Vec<(Vec<u8>, bool)>, FramerStats) {
        let mut f = Framer::new(max);
        let mut out = Vec::new();
        for c in chunks {
            f.push(c, &mut |b, t| out.push((b.to_vec(), t)));
        }
        f.finish(&mut |b, t| out.push((b.to_vec(), t)));
        (out, f.take_stats())
    }

    #[test]
    fn a_line_starting_with_a_huge_count_is_a_line_and_swallows_nothing() {
        // Issue #14 item 10: this was taken as a 1.7 GB frame that swallowed all that followed.
        let mut s = b"1701948000 <13>mailbox full for alice\n".to_vec();
        for i in 0..50 {
            s.extend_from_slice(format!("<14>line {i}\n").as_bytes());
        }
        for cut in [1usize, 3, 7, 64, s.len()] {
            let pieces: Vec<&[u8]> = s.chunks(cut).collect();
            let (out, st) = frames_stats(1024, &pieces);
            assert_eq!(out.len(), 51, "chunks of {cut}");
            assert_eq!(
                out[0],
                (b"1701948000 <13>mailbox full for alice".to_vec(), false)
            );
            assert_eq!(out[50], (b"<14>line 49".to_vec(), false));
            assert_eq!(st.oversize_counts, 1);
            assert_eq!(st.discarded_bytes, 0);
        }
        // Without a `<PRI>` after the count it is a plain line whatever the count.
        let (out, st) = frames_stats(1024, &[b"17 <alice@example.org> mailbox full\n<14>next\n"]);
        assert_eq!(
            out,
            vec![
                (b"17 <alice@example.org> mailbox full".to_vec(), false),
                (b"<14>next".to_vec(), false)
            ]
        );
        assert_eq!(st, FramerStats::default());
    }

    #[test]
    fn discarded_bytes_are_counted() {
        // A 300-byte line with a 64-byte maximum: 64 delivered, 236 discarded, in any split.
        let mut s = vec![b'x'; 300];
        s.extend_from_slice(b"\n<1>ok\n");
        for cut in [1usize, 5, 64, 65, 299, s.len()] {
            let pieces: Vec<&[u8]> = s.chunks(cut).collect();
            let (out, st) = frames_stats(64, &pieces);
            assert_eq!(out.len(), 2, "chunks of {cut}");
            assert!(out[0].1 && out[0].0.len() == 64);
            assert_eq!(out[1], (b"<1>ok".to_vec(), false));
            assert_eq!(st.discarded_bytes, 236, "chunks of {cut}");
        }
    }

    #[test]
    fn frame_progress_and_cut() {
        let mut f = Framer::new(64);
        let mut out = Vec::new();
        assert!(!f.in_frame());
        f.push(b"<1>a\n<2>par", &mut |b, t| out.push((b.to_vec(), t)));
        assert!(f.in_frame());
        let b0 = f.boundaries();
        assert!(b0 >= 1);
        // No boundary passed: the frame under way is the same one.
        f.push(b"tial", &mut |b, t| out.push((b.to_vec(), t)));
        assert_eq!(f.boundaries(), b0);
        assert!(f.cut(&mut |b, t| out.push((b.to_vec(), t))));
        assert!(!f.in_frame() && f.pending() == 0);
        assert_eq!(
            out,
            vec![(b"<1>a".to_vec(), false), (b"<2>partial".to_vec(), true)]
        );
        // Nothing under way: nothing to cut.
        assert!(!f.cut(&mut |_, _| panic!("nothing pending")));
    }

    #[test]
    fn discard_drops_and_counts_the_frame_under_way() {
        let mut f = Framer::new(64);
        let mut out = Vec::new();
        f.push(b"<1>a\n<2>never ends", &mut |b, _| out.push(b.to_vec()));
        f.discard();
        assert!(!f.in_frame());
        f.push(b"<3>b\n", &mut |b, _| out.push(b.to_vec()));
        assert_eq!(out, vec![b"<1>a".to_vec(), b"<3>b".to_vec()]);
        assert_eq!(f.take_stats().discarded_bytes, 13);
    }

    #[test]
    fn idle_framer_holds_no_buffer() {
        let mut f = Framer::new(64 << 10);
        let mut n = 0;
        f.push(&vec![b'y'; 50_000], &mut |_, _| n += 1);
        assert!(f.held() >= 50_000);
        f.push(b"\n", &mut |_, _| n += 1);
        assert_eq!((n, f.pending(), f.held()), (1, 0, 0));
    }

    #[test]
    fn memory_is_bounded_without_delimiters() {
        let mut f = Framer::new(1024);
        let chunk = vec![b'x'; 4096];
        let mut n = 0;
        for _ in 0..1000 {
            f.push(&chunk, &mut |_, t| {
                assert!(t);
                n += 1;
            });
            assert!(f.pending() <= 1024 + 4096);
        }
        assert_eq!(n, 1);
        assert_eq!(f.take_stats().discarded_bytes, 4096 * 1000 - 1024);
    }
}
