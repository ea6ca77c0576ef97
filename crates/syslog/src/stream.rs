//! TCP and TLS listeners: one event-driven thread per listener (`mio`), however many clients.
//!
//! Every connection is a non-blocking socket in one `mio::Poll`; TLS runs rustls over it
//! (`read_tls` / `process_new_packets` / `reader` / `write_tls`). The thread wakes when a
//! socket is ready, and at least every [`POLL`] for shutdown and timeouts. Abuse is bounded and
//! counted (see [`Counters`]):
//!
//! - `max_connections` open connections and `max_connections_per_source` from one address;
//!   further connections are accepted and closed at once (`connections_refused`,
//!   `refused_per_source`);
//! - a frame not complete within `frame_timeout` of its first byte (slowloris; also a TLS
//!   handshake not done by then) is cut, delivered flagged truncated, and the connection closed
//!   (`frame_timeouts`); `idle_timeout` closes connections that send nothing (`idle_closed`);
//! - unfinished frames of all connections together hold at most `buffer_memcap` bytes: when
//!   the total is over, connections holding more than their share (memcap / open connections)
//!   are closed and their unfinished frame dropped (`memcap_closed`, `discarded_bytes`): under
//!   memory pressure no more records are made of it;
//! - accept failing for want of file descriptors (EMFILE/ENFILE) is counted (`fd_exhausted`):
//!   pending connections are closed at once through a reserved descriptor, or the listener backs
//!   off [`POLL`] and tries again; it never spins and never stops serving.
//!
//! Refusals and closings are logged as one warning per [`LOG_EVERY`] at most, with counts.

use crate::framing::Framer;
use crate::listen::{deliver, Counters, ListenerConfig, POLL};
use crate::record::LogRecord;
use crossbeam_channel::Sender;
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use std::collections::HashMap;
use std::io::{self, Read};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Warnings about refused or closed connections are summarised at most this often.
pub const LOG_EVERY: Duration = Duration::from_secs(10);
const LISTENER: Token = Token(0);
const READ_CHUNK: usize = 64 * 1024;
/// Bytes read from one connection before the others get their turn.
const READ_BUDGET: usize = 256 * 1024;
/// Connections accepted per wake-up before sockets already open are served again.
const ACCEPT_BUDGET: usize = 256;
/// Descriptors the rest of zonewatch needs besides the syslog connections.
pub const FD_MARGIN: u64 = 256;

/// Why a connection ends.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Close {
    /// The peer closed (or the listener stops): the last unterminated frame is delivered.
    Eof,
    /// A read or TLS error: the last frame is delivered.
    Error,
    /// Idle: nothing pending.
    Idle,
    /// The frame under way is cut (delivered truncated).
    Cut,
    /// The frame under way is dropped (counted in `discarded_bytes`).
    Discard,
}

struct Conn {
    stream: TcpStream,
    peer: SocketAddr,
    tls: Option<Box<rustls::ServerConnection>>,
    framer: Framer,
    /// Bytes of the framer's buffer accounted in the listener's total.
    held: usize,
    opened: Instant,
    last_read: Instant,
    /// When the frame under way got its first byte.
    frame_start: Option<Instant>,
    /// Also interested in writability (TLS output pending).
    writing: bool,
    /// Queued to be read again (its read budget ran out).
    queued: bool,
}

/// Refusals and closings since the last warning.
#[derive(Default)]
struct Pending {
    max: u64,
    per_source: u64,
    fd: u64,
    frame_timeouts: u64,
    memcap: u64,
    top_source: Option<IpAddr>,
}

struct Loop {
    poll: Poll,
    listener: TcpListener,
    conns: Vec<Option<Conn>>,
    free: Vec<usize>,
    open: usize,
    per_source: HashMap<IpAddr, usize>,
    held_total: usize,
    ready: Vec<usize>,
    buf: Vec<u8>,
    cfg: Arc<ListenerConfig>,
    c: Arc<Counters>,
    tx: Sender<LogRecord>,
    tls: Option<Arc<rustls::ServerConfig>>,
    /// Reserved descriptor, given up to accept-and-close a connection when out of descriptors.
    reserve: Option<std::fs::File>,
    accept_paused_until: Option<Instant>,
    /// The channel's receiver is gone: stop.
    gone: bool,
    pending: Pending,
    last_log: Option<Instant>,
    fd_limit: u64,
}

/// Connections asked for by all stream listeners of this process, for the descriptor limit.
static FDS_WANTED: AtomicU64 = AtomicU64::new(0);

/// Raises the soft open-file limit towards the hard limit as far as the stream listeners need
/// (`max_connections` each, plus [`FD_MARGIN`]), and warns when it stays below that. Returns the
/// soft limit now in force.
pub fn raise_fd_limit(name: &str, max_connections: usize) -> u64 {
    let wanted = FDS_WANTED.fetch_add(max_connections as u64, Relaxed) + max_connections as u64;
    let need = wanted.saturating_add(FD_MARGIN);
    let soft = match rlimit::increase_nofile_limit(need) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!("syslog {name}: cannot read or raise the open file limit: {e}");
            return rlimit::getrlimit(rlimit::Resource::NOFILE)
                .map(|(s, _)| s)
                .unwrap_or(u64::MAX);
        }
    };
    if soft < need {
        let in_use = std::fs::read_dir("/proc/self/fd")
            .map(|d| d.count() as u64)
            .unwrap_or(0);
        tracing::warn!(
            "syslog {name}: the open file limit is {soft} (hard limit reached), below the {wanted} \
             syslog max-connections of all listeners + {FD_MARGIN} for the rest of zonewatch \
             ({in_use} open now): connections beyond about {} at once will be refused and \
             counted (fd_exhausted); raise it with `ulimit -n` or LimitNOFILE=",
            soft.saturating_sub(in_use + 16)
        );
    }
    soft
}

/// The event loop's poll set with the listening socket in it (errors are the caller's, before
/// any thread starts).
pub(crate) fn prepare(mut listener: TcpListener) -> io::Result<(Poll, TcpListener)> {
    let poll = Poll::new()?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    Ok((poll, listener))
}

/// Runs a TCP/TLS listener on this thread until `shutdown` (or the receiver is gone); open
/// connections then deliver their last unterminated frame.
pub(crate) fn run(
    (poll, listener): (Poll, TcpListener),
    tls: Option<Arc<rustls::ServerConfig>>,
    cfg: ListenerConfig,
    c: Arc<Counters>,
    tx: Sender<LogRecord>,
    shutdown: crate::listen::Shutdown,
    fd_limit: u64,
) {
    let mut l = Loop {
        poll,
        listener,
        conns: Vec::new(),
        free: Vec::new(),
        open: 0,
        per_source: HashMap::new(),
        held_total: 0,
        ready: Vec::new(),
        buf: vec![0u8; READ_CHUNK],
        cfg: Arc::new(cfg),
        c,
        tx,
        tls,
        reserve: std::fs::File::open("/dev/null").ok(),
        accept_paused_until: None,
        gone: false,
        pending: Pending::default(),
        last_log: None,
        fd_limit,
    };
    let mut events = Events::with_capacity(1024);
    let mut last_sweep = Instant::now();
    while !shutdown.is_shutdown() && !l.gone {
        let timeout = if l.ready.is_empty() {
            POLL
        } else {
            Duration::ZERO
        };
        if let Err(e) = l.poll.poll(&mut events, Some(timeout)) {
            if e.kind() != io::ErrorKind::Interrupted {
                tracing::error!("syslog {}: event loop: {e}", l.cfg.name);
                std::thread::sleep(POLL);
            }
            continue;
        }
        for ev in events.iter() {
            if ev.token() == LISTENER {
                if l.accept_paused_until.is_none() {
                    l.accept_all();
                }
                continue;
            }
            let i = ev.token().0 - 1;
            if ev.is_writable() {
                l.flush(i);
            }
            if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                l.service(i);
            }
        }
        // Connections whose read budget ran out: one more turn each.
        for i in std::mem::take(&mut l.ready) {
            if let Some(conn) = l.conns.get_mut(i).and_then(|c| c.as_mut()) {
                conn.queued = false;
                l.service(i);
            }
        }
        // The gauge, once per turn: after the memory budget was enforced.
        l.c.buffered_bytes.store(l.held_total as u64, Relaxed);
        let now = Instant::now();
        if l.accept_paused_until.is_some_and(|t| now >= t) {
            l.accept_paused_until = None;
            l.accept_all();
        }
        if now.duration_since(last_sweep) >= POLL {
            last_sweep = now;
            l.sweep(now);
            l.log_refusals(now, false);
        }
    }
    for i in 0..l.conns.len() {
        if l.conns[i].is_some() {
            l.close(i, Close::Eof);
        }
    }
    l.c.buffered_bytes.store(0, Relaxed);
    l.log_refusals(Instant::now(), true);
    FDS_WANTED.fetch_sub(l.cfg.max_connections as u64, Relaxed);
}

fn is_fd_exhaustion(e: &io::Error) -> bool {
    // EMFILE, ENFILE, ENOBUFS, ENOMEM (Linux numbering).
    matches!(e.raw_os_error(), Some(24 | 23 | 105 | 12))
}

impl Loop {
    fn accept_all(&mut self) {
        for _ in 0..ACCEPT_BUDGET {
            match self.listener.accept() {
                Ok((stream, peer)) => self.admit(stream, peer),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if is_fd_exhaustion(&e) => {
                    // (accept fails so whether or not a connection is waiting.) Give up the
                    // reserved descriptor to accept and close a waiting connection at once, so
                    // its client is told now instead of waiting in the queue.
                    if self.reserve.take().is_some() {
                        let shed = self.listener.accept().map(drop);
                        self.reserve = std::fs::File::open("/dev/null").ok();
                        match shed {
                            Ok(()) => {
                                self.refused_for_fds();
                                if self.reserve.is_some() {
                                    continue;
                                }
                            }
                            // Nothing waiting: nothing refused.
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                                if self.reserve.is_some() {
                                    return;
                                }
                            }
                            Err(_) => {}
                        }
                    } else {
                        // No spare descriptor: a connection may be waiting in the queue.
                        self.c.fd_exhausted.fetch_add(1, Relaxed);
                        self.pending.fd += 1;
                    }
                    // Try again later, without spinning.
                    self.accept_paused_until = Some(Instant::now() + POLL);
                    self.log_refusals(Instant::now(), false);
                    return;
                }
                Err(e) => {
                    // ECONNABORTED and the like concern one connection; others back off.
                    self.c.read_errors.fetch_add(1, Relaxed);
                    if e.kind() != io::ErrorKind::ConnectionAborted {
                        self.accept_paused_until = Some(Instant::now() + POLL);
                        return;
                    }
                }
            }
        }
        // More may be waiting: come back after serving the open connections.
        self.accept_paused_until = Some(Instant::now());
    }

    fn refused_for_fds(&mut self) {
        self.c.fd_exhausted.fetch_add(1, Relaxed);
        self.c.connections_refused.fetch_add(1, Relaxed);
        self.pending.fd += 1;
        self.log_refusals(Instant::now(), false);
    }

    fn admit(&mut self, mut stream: TcpStream, peer: SocketAddr) {
        let c = &self.c;
        if self.open >= self.cfg.max_connections {
            c.connections_refused.fetch_add(1, Relaxed);
            self.pending.max += 1;
            self.log_refusals(Instant::now(), false);
            return;
        }
        let ip = peer.ip();
        let from_source = self.per_source.get(&ip).copied().unwrap_or(0);
        if self.cfg.max_connections_per_source > 0
            && from_source >= self.cfg.max_connections_per_source
        {
            c.connections_refused.fetch_add(1, Relaxed);
            c.refused_per_source.fetch_add(1, Relaxed);
            self.pending.per_source += 1;
            self.pending.top_source = Some(ip);
            self.log_refusals(Instant::now(), false);
            return;
        }
        let tls = match &self.tls {
            None => None,
            Some(cfg) => match rustls::ServerConnection::new(Arc::clone(cfg)) {
                Ok(t) => Some(Box::new(t)),
                Err(_) => {
                    c.tls_errors.fetch_add(1, Relaxed);
                    return;
                }
            },
        };
        let i = self.free.pop().unwrap_or_else(|| {
            self.conns.push(None);
            self.conns.len() - 1
        });
        if self
            .poll
            .registry()
            .register(&mut stream, Token(i + 1), Interest::READABLE)
            .is_err()
        {
            c.read_errors.fetch_add(1, Relaxed);
            self.free.push(i);
            return;
        }
        let now = Instant::now();
        self.conns[i] = Some(Conn {
            stream,
            peer,
            tls,
            framer: Framer::new(self.cfg.max_frame_bytes),
            held: 0,
            opened: now,
            last_read: now,
            frame_start: None,
            writing: false,
            queued: false,
        });
        self.open += 1;
        *self.per_source.entry(ip).or_insert(0) += 1;
        c.connections.fetch_add(1, Relaxed);
        c.connections_open.fetch_add(1, Relaxed);
        // Data that arrived with the connection is read on its first readiness event.
    }

    /// Reads what connection `i` has (up to [`READ_BUDGET`]) and frames it.
    fn service(&mut self, i: usize) {
        let mut budget = READ_BUDGET;
        loop {
            let Some(conn) = self.conns.get_mut(i).and_then(|c| c.as_mut()) else {
                return;
            };
            let r = match conn.tls.as_deref_mut() {
                None => read_plain(&mut conn.stream, &mut self.buf),
                Some(tls) => read_tls(tls, &mut conn.stream, &mut self.buf),
            };
            match r {
                Ok(Got::Data(n)) => {
                    self.c.bytes.fetch_add(n as u64, Relaxed);
                    self.frame(i, n);
                    budget = budget.saturating_sub(n.max(1));
                    if budget == 0 {
                        if let Some(conn) = self.conns[i].as_mut() {
                            if !conn.queued {
                                conn.queued = true;
                                self.ready.push(i);
                            }
                        }
                        return;
                    }
                }
                Ok(Got::Progress) => {}
                Ok(Got::Blocked) => {
                    self.want_write(i);
                    return;
                }
                Ok(Got::Eof) => return self.close(i, Close::Eof),
                Err(e) => {
                    if conn.tls.is_some() {
                        self.c.tls_errors.fetch_add(1, Relaxed);
                    } else if e.kind() != io::ErrorKind::ConnectionReset {
                        self.c.read_errors.fetch_add(1, Relaxed);
                    }
                    return self.close(i, Close::Error);
                }
            }
        }
    }

    /// Frames the `n` bytes in the read buffer for connection `i`; enforces the memory budget.
    fn frame(&mut self, i: usize, n: usize) {
        let Some(conn) = self.conns[i].as_mut() else {
            return;
        };
        let now = Instant::now();
        conn.last_read = now;
        let before = conn.framer.boundaries();
        let (cfg, c, tx) = (&*self.cfg, &*self.c, &self.tx);
        let peer = conn.peer;
        let mut alive = true;
        conn.framer.push(&self.buf[..n], &mut |f, t| {
            if alive && !deliver(f, t, false, Some(peer), cfg, c, tx) {
                alive = false;
            }
        });
        self.gone |= !alive;
        let st = conn.framer.take_stats();
        c.discarded_bytes.fetch_add(st.discarded_bytes, Relaxed);
        c.oversize_counts.fetch_add(st.oversize_counts, Relaxed);
        if !conn.framer.in_frame() {
            conn.frame_start = None;
        } else if conn.frame_start.is_none() || conn.framer.boundaries() != before {
            conn.frame_start = Some(now);
        }
        let held = conn.framer.held();
        self.held_total = self.held_total - conn.held + held;
        conn.held = held;
        if self.held_total > self.cfg.buffer_memcap {
            self.enforce_memcap(Some(i));
        }
    }

    /// Over the budget: closes the connections holding more than their share (their frame is
    /// dropped), the one that just grew first.
    fn enforce_memcap(&mut self, first: Option<usize>) {
        let share = self.cfg.buffer_memcap / self.open.max(1);
        let over = |conn: &Option<Conn>| conn.as_ref().is_some_and(|c| c.held > share);
        if let Some(i) = first.filter(|&i| over(&self.conns[i])) {
            self.memcap_close(i);
        }
        let mut i = 0;
        while self.held_total > self.cfg.buffer_memcap && i < self.conns.len() {
            if over(&self.conns[i]) {
                self.memcap_close(i);
            }
            i += 1;
        }
    }

    fn memcap_close(&mut self, i: usize) {
        self.c.memcap_closed.fetch_add(1, Relaxed);
        self.pending.memcap += 1;
        self.close(i, Close::Discard);
    }

    /// Timeouts: frames under way too long (and TLS handshakes), idle connections.
    fn sweep(&mut self, now: Instant) {
        let frame_timeout = self.cfg.frame_timeout;
        let idle_timeout = self.cfg.idle_timeout;
        for i in 0..self.conns.len() {
            let Some(conn) = self.conns[i].as_ref() else {
                continue;
            };
            let handshake_late = conn.tls.as_ref().is_some_and(|t| t.is_handshaking())
                && now.duration_since(conn.opened) >= frame_timeout;
            let frame_late = conn
                .frame_start
                .is_some_and(|t| now.duration_since(t) >= frame_timeout);
            if handshake_late || frame_late {
                self.c.frame_timeouts.fetch_add(1, Relaxed);
                self.pending.frame_timeouts += 1;
                self.close(i, Close::Cut);
            } else if now.duration_since(conn.last_read) >= idle_timeout {
                self.c.idle_closed.fetch_add(1, Relaxed);
                self.close(i, Close::Idle);
            }
        }
    }

    fn close(&mut self, i: usize, how: Close) {
        let Some(mut conn) = self.conns[i].take() else {
            return;
        };
        let (cfg, c, tx) = (&*self.cfg, &*self.c, &self.tx);
        let peer = conn.peer;
        let mut alive = !self.gone;
        let mut emit = |f: &[u8], t: bool| {
            if alive && !deliver(f, t, false, Some(peer), cfg, c, tx) {
                alive = false;
            }
        };
        match how {
            Close::Eof | Close::Error => conn.framer.finish(&mut emit),
            Close::Cut => {
                conn.framer.cut(&mut |f, _| {
                    if alive && !deliver(f, true, true, Some(peer), cfg, c, tx) {
                        alive = false;
                    }
                });
            }
            Close::Discard => conn.framer.discard(),
            Close::Idle => {}
        }
        self.gone |= !alive;
        let st = conn.framer.take_stats();
        c.discarded_bytes.fetch_add(st.discarded_bytes, Relaxed);
        c.oversize_counts.fetch_add(st.oversize_counts, Relaxed);
        if let Some(tls) = conn.tls.as_deref_mut() {
            if how == Close::Eof {
                tls.send_close_notify();
            }
            let _ = tls.write_tls(&mut conn.stream);
        }
        let _ = self.poll.registry().deregister(&mut conn.stream);
        self.held_total -= conn.held;
        self.open -= 1;
        c.connections_open.fetch_sub(1, Relaxed);
        let ip = peer.ip();
        if let Some(n) = self.per_source.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                self.per_source.remove(&ip);
            }
        }
        self.free.push(i);
    }

    /// TLS: writes what rustls has to send; asks for writability while some is left.
    fn flush(&mut self, i: usize) {
        let Some(conn) = self.conns.get_mut(i).and_then(|c| c.as_mut()) else {
            return;
        };
        if let Some(tls) = conn.tls.as_deref_mut() {
            while tls.wants_write() {
                match tls.write_tls(&mut conn.stream) {
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => {
                        self.c.tls_errors.fetch_add(1, Relaxed);
                        return self.close(i, Close::Error);
                    }
                }
            }
        }
        self.want_write(i);
    }

    /// Registers writability interest exactly while TLS output is pending.
    fn want_write(&mut self, i: usize) {
        let Some(conn) = self.conns.get_mut(i).and_then(|c| c.as_mut()) else {
            return;
        };
        let wants = conn.tls.as_ref().is_some_and(|t| t.wants_write());
        if wants && !conn.writing {
            // Try at once; register only if the socket is full.
            if let Some(tls) = conn.tls.as_deref_mut() {
                while tls.wants_write() {
                    match tls.write_tls(&mut conn.stream) {
                        Ok(_) => {}
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(_) => break,
                    }
                }
                if !tls.wants_write() {
                    return;
                }
            }
        }
        if wants != conn.writing {
            let interest = if wants {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            if self
                .poll
                .registry()
                .reregister(&mut conn.stream, Token(i + 1), interest)
                .is_ok()
            {
                conn.writing = wants;
            }
        }
    }

    /// One warning per [`LOG_EVERY`] at most, summing what was refused or closed.
    fn log_refusals(&mut self, now: Instant, last: bool) {
        let p = &self.pending;
        if p.max + p.per_source + p.fd + p.frame_timeouts + p.memcap == 0 {
            return;
        }
        if !last
            && self
                .last_log
                .is_some_and(|t| now.duration_since(t) < LOG_EVERY)
        {
            return;
        }
        let p = std::mem::take(&mut self.pending);
        let since = self
            .last_log
            .map(|t| format!("in the last {}s", now.duration_since(t).as_secs().max(1)))
            .unwrap_or_else(|| "since start".into());
        self.last_log = Some(now);
        // (how many, what happened to them), said only for the causes that occurred.
        let c = &self.cfg;
        let source = p.top_source.map(|a| a.to_string()).unwrap_or_default();
        let parts: Vec<String> = [
            (
                p.max,
                format!("refused at max-connections {}", c.max_connections),
            ),
            (
                p.per_source,
                format!(
                    "refused at max-connections-per-source {} (last from {source})",
                    c.max_connections_per_source
                ),
            ),
            (
                p.fd,
                format!(
                    "refused for want of file descriptors (open file limit {})",
                    self.fd_limit
                ),
            ),
            (
                p.frame_timeouts,
                format!("closed at frame-timeout {:?}", c.frame_timeout),
            ),
            (
                p.memcap,
                format!(
                    "closed over their share of buffer-memcap {} bytes",
                    c.buffer_memcap
                ),
            ),
        ]
        .into_iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, what)| format!("{n} {what}"))
        .collect();
        tracing::warn!(
            "syslog {}: connections {since}: {}",
            self.cfg.name,
            parts.join("; ")
        );
    }
}

enum Got {
    /// Bytes in the read buffer.
    Data(usize),
    /// TLS records processed, no application data yet: read again.
    Progress,
    /// Nothing more now.
    Blocked,
    /// The peer closed.
    Eof,
}

fn read_plain(s: &mut TcpStream, buf: &mut [u8]) -> io::Result<Got> {
    loop {
        return match s.read(buf) {
            Ok(0) => Ok(Got::Eof),
            Ok(n) => Ok(Got::Data(n)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(Got::Blocked),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => Err(e),
        };
    }
}

fn read_tls(
    tls: &mut rustls::ServerConnection,
    s: &mut TcpStream,
    buf: &mut [u8],
) -> io::Result<Got> {
    // Plaintext already decrypted first.
    match tls.reader().read(buf) {
        Ok(0) => return Ok(Got::Eof),
        Ok(n) => return Ok(Got::Data(n)),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(Got::Eof),
        Err(e) => return Err(e),
    }
    let eof = loop {
        match tls.read_tls(s) {
            Ok(0) => break true,
            Ok(_) => break false,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Got::Blocked),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    };
    if let Err(e) = tls.process_new_packets() {
        // Tell the peer (alert), then fail.
        let _ = tls.write_tls(s);
        return Err(io::Error::new(io::ErrorKind::InvalidData, e));
    }
    if tls.wants_write() {
        while tls.wants_write() {
            match tls.write_tls(s) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // The socket is full: the event loop registers for writability.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e),
            }
        }
    }
    match tls.reader().read(buf) {
        Ok(0) => Ok(Got::Eof),
        Ok(n) => Ok(Got::Data(n)),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
            if eof {
                Ok(Got::Eof)
            } else {
                Ok(Got::Progress)
            }
        }
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(Got::Eof),
        Err(e) => Err(e),
    }
}
