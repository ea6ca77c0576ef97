//! RFC 6587 stream framing, decided per frame: a frame that starts with `DIGITS SP` is
//! octet-counted, anything else ends at LF or NUL (non-transparent framing; a trailing CR is
//! removed by the parser). Frames longer than the maximum are cut to the maximum, flagged
//! `truncated`, and the rest of the frame is discarded; memory stays bounded by the maximum
//! frame size plus one read.

/// Longest octet count accepted (digits); a longer digit run is not a count.
const MAX_COUNT_DIGITS: usize = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// At a frame boundary.
    Start,
    /// Discarding `n` more bytes of an over-long octet-counted frame.
    SkipCount(u64),
    /// Discarding up to the next LF/NUL of an over-long non-transparent frame.
    SkipDelim,
}

/// Splits a byte stream into syslog frames.
#[derive(Debug)]
pub struct Framer {
    buf: Vec<u8>,
    pos: usize,
    max_frame: usize,
    state: State,
}

impl Framer {
    /// A framer cutting frames at `max_frame` bytes (at least 16).
    pub fn new(max_frame: usize) -> Self {
        Framer {
            buf: Vec::new(),
            pos: 0,
            max_frame: max_frame.max(16),
            state: State::Start,
        }
    }

    /// Bytes held waiting for the rest of a frame.
    pub fn pending(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Feeds bytes; calls `emit(frame, truncated)` for each complete frame. Empty frames
    /// (blank lines) are skipped.
    pub fn push(&mut self, data: &[u8], emit: &mut dyn FnMut(&[u8], bool)) {
        self.buf.extend_from_slice(data);
        self.drain(emit, false);
        // Compact.
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
    }

    /// End of stream: emits a final unterminated frame, if any.
    pub fn finish(&mut self, emit: &mut dyn FnMut(&[u8], bool)) {
        self.drain(emit, true);
        self.buf.clear();
        self.pos = 0;
        self.state = State::Start;
    }

    fn drain(&mut self, emit: &mut dyn FnMut(&[u8], bool), eof: bool) {
        loop {
            let avail = &self.buf[self.pos..];
            if avail.is_empty() {
                return;
            }
            match self.state {
                State::SkipCount(n) => {
                    let k = (n as usize).min(avail.len());
                    self.pos += k;
                    let left = n - k as u64;
                    self.state = if left == 0 {
                        State::Start
                    } else {
                        State::SkipCount(left)
                    };
                }
                State::SkipDelim => match memchr::memchr2(b'\n', 0, avail) {
                    Some(p) => {
                        self.pos += p + 1;
                        self.state = State::Start;
                    }
                    None => self.pos = self.buf.len(),
                },
                State::Start => {
                    // Skip blank lines between frames.
                    if matches!(avail[0], b'\n' | 0 | b'\r') {
                        self.pos += 1;
                        continue;
                    }
                    match octet_count(avail) {
                        Count::Yes(n, hdr) => {
                            let body = &avail[hdr..];
                            if n as usize <= self.max_frame {
                                let n = n as usize;
                                if body.len() >= n {
                                    emit(&body[..n], false);
                                    self.pos += hdr + n;
                                } else if eof {
                                    emit(body, false);
                                    self.pos = self.buf.len();
                                } else {
                                    return;
                                }
                            } else if body.len() >= self.max_frame || eof {
                                let k = body.len().min(self.max_frame);
                                emit(&body[..k], true);
                                self.pos += hdr + k;
                                self.state = State::SkipCount(n - k as u64);
                            } else {
                                return;
                            }
                        }
                        Count::NeedMore if !eof => return,
                        Count::No | Count::NeedMore => match memchr::memchr2(b'\n', 0, avail) {
                            Some(p) if p <= self.max_frame => {
                                emit(&avail[..p], false);
                                self.pos += p + 1;
                            }
                            Some(_) => {
                                emit(&avail[..self.max_frame], true);
                                self.pos += self.max_frame;
                                self.state = State::SkipDelim;
                            }
                            None if avail.len() > self.max_frame => {
                                emit(&avail[..self.max_frame], true);
                                self.pos += self.max_frame;
                                self.state = State::SkipDelim;
                            }
                            None if eof => {
                                emit(avail, false);
                                self.pos = self.buf.len();
                            }
                            None => return,
                        },
                    }
                }
            }
        }
    }
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
                // An octet-counted frame starts with `<PRI>` right after the count; a plain
                // line that begins with a number (`12 users logged in`) does not.
                return match b.get(i + 1) {
                    Some(b'<') => Count::Yes(n, i + 1),
                    Some(_) => Count::No,
                    None => Count::NeedMore,
                };
            }
            _ => return Count::No,
        }
    }
    Count::NeedMore
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
        // Octet-counted oversize, delivered in small pieces.
        let mut s = b"103 <1>".to_vec();
        s.extend_from_slice(&long);
        s.extend_from_slice(b"4 <2>k");
        let pieces: Vec<&[u8]> = s.chunks(7).collect();
        let out = frames(32, &pieces);
        assert_eq!(out.len(), 2);
        assert!(out[0].1 && out[0].0.len() == 32);
        assert_eq!(out[1], (b"<2>k".to_vec(), false));
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
    }
}
