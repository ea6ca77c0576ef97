//! Captures that arrive through a pipe: `--pcap -` (stdin), a FIFO,
//! `/dev/stdin` or a shell's `<(...)`. Such inputs can be read only once
//! (the format is told from the first bytes, which are then handed to the
//! reader, not re-read), and both opening a FIFO and reading a quiet pipe
//! block in the kernel. A pump thread does the blocking calls and hands
//! chunks over a bounded channel; the reader waits on the channel with a
//! timeout, so a stop request (SIGTERM) ends the input within 100 ms even
//! when no writer has come yet.

use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::Duration;

const CHUNK: usize = 256 * 1024;
/// Chunks in flight between the pump and the reader (4 MiB).
const DEPTH: usize = 16;
const WAKE: Duration = Duration::from_millis(100);

/// Whether a `--pcap` path is a stream rather than a regular file: `-`,
/// or anything that is neither a file nor a directory (a FIFO, a character
/// device such as `/dev/stdin` on a terminal, a socket).
pub fn is_stream(path: &Path) -> bool {
    if path.as_os_str() == "-" {
        return true;
    }
    match std::fs::metadata(path) {
        Ok(m) => !m.is_file() && !m.is_dir(),
        Err(_) => false,
    }
}

/// The path to open for a stream input (`-` is stdin).
fn open_path(path: &Path) -> PathBuf {
    if path.as_os_str() == "-" {
        PathBuf::from("/dev/stdin")
    } else {
        path.to_path_buf()
    }
}

/// A stream read through a pump thread; ends (as if the input had ended)
/// when `stop` is set.
pub(crate) struct Pumped {
    rx: Receiver<io::Result<Vec<u8>>>,
    cur: Vec<u8>,
    pos: usize,
    stop: Arc<AtomicBool>,
    ended: bool,
}

impl Pumped {
    /// Starts the pump on `path` (opened by the pump: opening a FIFO waits
    /// for its writer).
    pub(crate) fn start(path: &Path, stop: Arc<AtomicBool>) -> io::Result<Pumped> {
        let (tx, rx) = sync_channel::<io::Result<Vec<u8>>>(DEPTH);
        let open = open_path(path);
        std::thread::Builder::new()
            .name("zw-pcap-pipe".into())
            .spawn(move || {
                let mut f = match std::fs::File::open(&open) {
                    Ok(f) => f,
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        return;
                    }
                };
                loop {
                    let mut buf = vec![0u8; CHUNK];
                    match f.read(&mut buf) {
                        Ok(0) => return,
                        Ok(n) => {
                            buf.truncate(n);
                            if tx.send(Ok(buf)).is_err() {
                                return;
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => {
                            let _ = tx.send(Err(e));
                            return;
                        }
                    }
                }
            })?;
        Ok(Pumped {
            rx,
            cur: Vec::new(),
            pos: 0,
            stop,
            ended: false,
        })
    }
}

impl Read for Pumped {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.cur.len() {
            if self.ended {
                return Ok(0);
            }
            if self.stop.load(Ordering::Relaxed) {
                self.ended = true;
                return Ok(0);
            }
            match self.rx.recv_timeout(WAKE) {
                Ok(Ok(chunk)) => {
                    self.cur = chunk;
                    self.pos = 0;
                }
                Ok(Err(e)) => {
                    self.ended = true;
                    return Err(e);
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => self.ended = true,
            }
        }
        let n = out.len().min(self.cur.len() - self.pos);
        out[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}
