//! Network listeners (UDP, TCP, TLS) and the replay reader, all delivering [`LogRecord`]s to a
//! bounded `crossbeam_channel::Sender`.
//!
//! **Full channel.** Network listeners never block on a full channel: the record is dropped and
//! counted in [`Counters::dropped`] (a sender that cannot be slowed down, such as UDP, would
//! otherwise lose data in the kernel instead, uncounted). Replay (files, stdin) blocks instead,
//! so no record is lost and output is deterministic.
//!
//! **Threads.** One thread per UDP socket; one event-driven thread per TCP/TLS listener however
//! many clients are connected (`crate::stream`), with per-source and total connection limits,
//! a frame-completion timeout, an idle timeout and a memory budget for unfinished frames. Every
//! listener thread wakes at least every [`POLL`] to check the shutdown flag and timeouts.

use crate::framing::Framer;
use crate::parse::{parse, ParseOptions};
use crate::record::{Flags, LogRecord};
use crossbeam_channel::{Sender, TrySendError};
use std::io::{self, Read};
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};
use zonewatch_types::Timestamp;

/// How often blocked threads wake to check for shutdown and idleness.
pub const POLL: Duration = Duration::from_millis(100);

/// Errors starting a listener.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    /// Binding or configuring the socket failed.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// Why.
        source: io::Error,
    },
    /// A TLS certificate, key or CA file could not be used.
    #[error("TLS setup: {path}: {reason}")]
    Tls {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A listen URL was not `udp://`, `tcp://` or `tls://` + `ADDR:PORT`.
    #[error(
        "bad listen address {0:?}: expected udp://ADDR:PORT, tcp://ADDR:PORT or tls://ADDR:PORT"
    )]
    BadUrl(String),
    /// Spawning a thread failed.
    #[error("cannot start listener thread: {0}")]
    Thread(io::Error),
}

/// Counters of one listener (or replay). All monotonic.
#[derive(Debug, Default)]
pub struct Counters {
    /// Frames (datagrams, stream frames, lines) received.
    pub received: AtomicU64,
    /// Bytes received.
    pub bytes: AtomicU64,
    /// Records parsed and handed to the channel.
    pub parsed: AtomicU64,
    /// Records whose timestamp could not be read (receive time used).
    pub no_timestamp: AtomicU64,
    /// Frames longer than the maximum frame size (cut, still delivered).
    pub truncated: AtomicU64,
    /// Bytes discarded: the rest of frames cut at the maximum frame size (or by the frame
    /// timeout beyond it), unfinished frames of connections closed over the buffer budget.
    pub discarded_bytes: AtomicU64,
    /// Lines starting like an octet count (`DIGITS SP <PRI>`) larger than the maximum frame
    /// size, read as plain lines instead of swallowing what follows.
    pub oversize_counts: AtomicU64,
    /// Records dropped because the channel was full.
    pub dropped: AtomicU64,
    /// Connections accepted (TCP/TLS).
    pub connections: AtomicU64,
    /// Connections refused (closed at once): `max_connections` open, the source's
    /// `max_connections_per_source` open, or no file descriptor free (see `fd_exhausted`).
    pub connections_refused: AtomicU64,
    /// Of those, refused because the source address had `max_connections_per_source` open.
    pub refused_per_source: AtomicU64,
    /// Connections refused for want of file descriptors (`accept` failing with EMFILE/ENFILE):
    /// closed at once through a reserved descriptor (also in `connections_refused`); when even
    /// that descriptor is gone, each 100 ms back-off is counted here instead.
    pub fd_exhausted: AtomicU64,
    /// Connections closed because a frame (or TLS handshake) was not complete within
    /// `frame_timeout`; the unfinished frame is delivered flagged truncated.
    pub frame_timeouts: AtomicU64,
    /// Connections closed because unfinished frames of all connections were over
    /// `buffer_memcap` and this one held more than its share; its frame is dropped (counted in
    /// `discarded_bytes`).
    pub memcap_closed: AtomicU64,
    /// Bytes of unfinished frames held now (gauge).
    pub buffered_bytes: AtomicU64,
    /// Connections open now.
    pub connections_open: AtomicU64,
    /// Connections closed for idleness.
    pub idle_closed: AtomicU64,
    /// TLS handshake or record errors.
    pub tls_errors: AtomicU64,
    /// Socket read errors (other than timeouts).
    pub read_errors: AtomicU64,
}

/// A plain copy of [`Counters`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct CounterSnapshot {
    pub received: u64,
    pub bytes: u64,
    pub parsed: u64,
    pub no_timestamp: u64,
    pub truncated: u64,
    pub discarded_bytes: u64,
    pub oversize_counts: u64,
    pub dropped: u64,
    pub connections: u64,
    pub connections_refused: u64,
    pub refused_per_source: u64,
    pub fd_exhausted: u64,
    pub frame_timeouts: u64,
    pub memcap_closed: u64,
    pub buffered_bytes: u64,
    pub connections_open: u64,
    pub idle_closed: u64,
    pub tls_errors: u64,
    pub read_errors: u64,
}

impl Counters {
    /// Reads every counter.
    pub fn snapshot(&self) -> CounterSnapshot {
        CounterSnapshot {
            received: self.received.load(Relaxed),
            bytes: self.bytes.load(Relaxed),
            parsed: self.parsed.load(Relaxed),
            no_timestamp: self.no_timestamp.load(Relaxed),
            truncated: self.truncated.load(Relaxed),
            discarded_bytes: self.discarded_bytes.load(Relaxed),
            oversize_counts: self.oversize_counts.load(Relaxed),
            dropped: self.dropped.load(Relaxed),
            connections: self.connections.load(Relaxed),
            connections_refused: self.connections_refused.load(Relaxed),
            refused_per_source: self.refused_per_source.load(Relaxed),
            fd_exhausted: self.fd_exhausted.load(Relaxed),
            frame_timeouts: self.frame_timeouts.load(Relaxed),
            memcap_closed: self.memcap_closed.load(Relaxed),
            buffered_bytes: self.buffered_bytes.load(Relaxed),
            connections_open: self.connections_open.load(Relaxed),
            idle_closed: self.idle_closed.load(Relaxed),
            tls_errors: self.tls_errors.load(Relaxed),
            read_errors: self.read_errors.load(Relaxed),
        }
    }
}

/// Stops listeners: clone it into each, call [`Shutdown::shutdown`] once.
#[derive(Debug, Clone, Default)]
pub struct Shutdown(Arc<AtomicBool>);

impl Shutdown {
    /// A handle not yet triggered.
    pub fn new() -> Self {
        Self::default()
    }
    /// Asks every listener holding a clone to stop (within about [`POLL`]).
    pub fn shutdown(&self) {
        self.0.store(true, Relaxed);
    }
    /// Whether shutdown was asked.
    pub fn is_shutdown(&self) -> bool {
        self.0.load(Relaxed)
    }
}

/// Listener settings.
#[derive(Debug, Clone)]
pub struct ListenerConfig {
    /// Name used in logs and stats (e.g. `tcp://0.0.0.0:514`).
    pub name: String,
    /// Frames longer than this are truncated (and counted).
    pub max_frame_bytes: usize,
    /// A TCP/TLS connection silent this long is closed.
    pub idle_timeout: Duration,
    /// Concurrent TCP/TLS connections allowed.
    pub max_connections: usize,
    /// Concurrent TCP/TLS connections allowed from one source address (0: no limit).
    pub max_connections_per_source: usize,
    /// A frame (or TLS handshake) not complete this long after its first byte is cut, counted
    /// (`frame_timeouts`) and its connection closed: a client trickling bytes cannot hold a
    /// connection.
    pub frame_timeout: Duration,
    /// Bytes of unfinished frames all TCP/TLS connections of the listener may hold together
    /// (at least the maximum frame size).
    pub buffer_memcap: usize,
    /// Parsing options (sensor zone, field extraction).
    pub parse: ParseOptions,
}

impl Default for ListenerConfig {
    fn default() -> Self {
        ListenerConfig {
            name: String::new(),
            max_frame_bytes: 64 * 1024,
            idle_timeout: Duration::from_secs(300),
            max_connections: 4096,
            max_connections_per_source: 64,
            frame_timeout: Duration::from_secs(10),
            buffer_memcap: 32 << 20,
            parse: ParseOptions::default(),
        }
    }
}

/// TLS files (PEM).
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// Certificate chain.
    pub cert: PathBuf,
    /// Private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// If set, clients must present a certificate signed by one of these CAs.
    pub client_ca: Option<PathBuf>,
}

/// What to listen on.
#[derive(Debug, Clone)]
pub enum ListenSpec {
    /// UDP, one datagram = one message.
    Udp(SocketAddr),
    /// TCP with RFC 6587 framing.
    Tcp(SocketAddr),
    /// TLS (RFC 5425) with RFC 6587 framing.
    Tls(SocketAddr, TlsFiles),
}

impl ListenSpec {
    /// Parses `udp://ADDR:PORT` / `tcp://...`; `tls://...` takes the files given.
    pub fn parse(url: &str, tls: Option<TlsFiles>) -> Result<Self, ListenError> {
        let bad = || ListenError::BadUrl(url.to_owned());
        let (scheme, addr) = url.split_once("://").ok_or_else(bad)?;
        let addr: SocketAddr = addr.parse().map_err(|_| bad())?;
        match scheme {
            "udp" => Ok(ListenSpec::Udp(addr)),
            "tcp" => Ok(ListenSpec::Tcp(addr)),
            "tls" => Ok(ListenSpec::Tls(addr, tls.ok_or_else(bad)?)),
            _ => Err(bad()),
        }
    }
}

/// A running listener.
#[derive(Debug)]
pub struct Listener {
    local_addr: SocketAddr,
    counters: Arc<Counters>,
    thread: Option<JoinHandle<()>>,
}

impl Listener {
    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }
    /// This listener's counters.
    pub fn counters(&self) -> Arc<Counters> {
        Arc::clone(&self.counters)
    }
    /// Waits for the listener thread (after [`Shutdown::shutdown`]); open TCP/TLS connections
    /// have delivered their last unterminated frame when it returns.
    pub fn join(mut self) {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Starts a listener.
pub fn spawn(
    spec: &ListenSpec,
    cfg: ListenerConfig,
    tx: Sender<LogRecord>,
    shutdown: Shutdown,
) -> Result<Listener, ListenError> {
    match spec {
        ListenSpec::Udp(a) => spawn_udp(*a, cfg, tx, shutdown),
        ListenSpec::Tcp(a) => spawn_stream(*a, None, cfg, tx, shutdown),
        ListenSpec::Tls(a, files) => {
            let tls = server_config(files)?;
            spawn_stream(*a, Some(tls), cfg, tx, shutdown)
        }
    }
}

/// Wall-clock now.
pub fn now() -> Timestamp {
    let d = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    Timestamp::from_parts(d.as_secs() as i64, d.subsec_nanos())
}

/// Parses a frame and offers it to the channel without blocking. `false` if the receiver is gone.
/// `truncated`: flagged [`Flags::TRUNCATED`]; counted in `truncated` unless `cut` (cut by a
/// timeout or the memory budget, counted there).
pub(crate) fn deliver(
    frame: &[u8],
    truncated: bool,
    cut: bool,
    peer: Option<SocketAddr>,
    cfg: &ListenerConfig,
    c: &Counters,
    tx: &Sender<LogRecord>,
) -> bool {
    c.received.fetch_add(1, Relaxed);
    let mut rec = parse(frame, now(), peer, &cfg.parse);
    if truncated {
        rec.flags.insert(Flags::TRUNCATED);
        if !cut {
            c.truncated.fetch_add(1, Relaxed);
        }
    }
    if rec.flags.contains(Flags::NO_TIMESTAMP) {
        c.no_timestamp.fetch_add(1, Relaxed);
    }
    match tx.try_send(rec) {
        Ok(()) => {
            c.parsed.fetch_add(1, Relaxed);
            true
        }
        Err(TrySendError::Full(_)) => {
            c.dropped.fetch_add(1, Relaxed);
            true
        }
        Err(TrySendError::Disconnected(_)) => false,
    }
}

fn bind_err(addr: SocketAddr) -> impl FnOnce(io::Error) -> ListenError {
    move |source| ListenError::Bind {
        addr: addr.to_string(),
        source,
    }
}

fn spawn_udp(
    addr: SocketAddr,
    cfg: ListenerConfig,
    tx: Sender<LogRecord>,
    shutdown: Shutdown,
) -> Result<Listener, ListenError> {
    let sock = UdpSocket::bind(addr).map_err(bind_err(addr))?;
    sock.set_read_timeout(Some(POLL)).map_err(bind_err(addr))?;
    let local_addr = sock.local_addr().map_err(bind_err(addr))?;
    let counters = Arc::new(Counters::default());
    let c = Arc::clone(&counters);
    let thread = std::thread::Builder::new()
        .name(format!("syslog-udp-{local_addr}"))
        .spawn(move || {
            let mut buf = vec![0u8; 65_536];
            while !shutdown.is_shutdown() {
                match sock.recv_from(&mut buf) {
                    Ok((n, peer)) => {
                        c.bytes.fetch_add(n as u64, Relaxed);
                        let k = n.min(cfg.max_frame_bytes);
                        c.discarded_bytes.fetch_add((n - k) as u64, Relaxed);
                        if !deliver(&buf[..k], n > k, false, Some(peer), &cfg, &c, &tx) {
                            return;
                        }
                    }
                    Err(e)
                        if matches!(
                            e.kind(),
                            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                        ) => {}
                    Err(_) => {
                        c.read_errors.fetch_add(1, Relaxed);
                    }
                }
            }
        })
        .map_err(ListenError::Thread)?;
    Ok(Listener {
        local_addr,
        counters,
        thread: Some(thread),
    })
}

fn tls_err(path: &Path, reason: impl ToString) -> ListenError {
    ListenError::Tls {
        path: path.to_owned(),
        reason: reason.to_string(),
    }
}

/// Builds the rustls server configuration (ring provider; TLS 1.2 and 1.3).
pub fn server_config(files: &TlsFiles) -> Result<Arc<rustls::ServerConfig>, ListenError> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .map_err(|e| tls_err(&files.cert, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| tls_err(&files.cert, e))?;
    if certs.is_empty() {
        return Err(tls_err(&files.cert, "no certificate in file"));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| tls_err(&files.key, e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_err(&files.cert, e))?;
    let builder = match &files.client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in CertificateDer::pem_file_iter(ca).map_err(|e| tls_err(ca, e))? {
                roots
                    .add(c.map_err(|e| tls_err(ca, e))?)
                    .map_err(|e| tls_err(ca, e))?;
            }
            let v = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .map_err(|e| tls_err(ca, e))?;
            builder.with_client_cert_verifier(v)
        }
    };
    let cfg = builder
        .with_single_cert(certs, key)
        .map_err(|e| tls_err(&files.key, e))?;
    Ok(Arc::new(cfg))
}

fn spawn_stream(
    addr: SocketAddr,
    tls: Option<Arc<rustls::ServerConfig>>,
    mut cfg: ListenerConfig,
    tx: Sender<LogRecord>,
    shutdown: Shutdown,
) -> Result<Listener, ListenError> {
    let listener = mio::net::TcpListener::bind(addr).map_err(bind_err(addr))?;
    let local_addr = listener.local_addr().map_err(bind_err(addr))?;
    let prepared = crate::stream::prepare(listener).map_err(bind_err(addr))?;
    cfg.max_connections = cfg.max_connections.max(1);
    cfg.buffer_memcap = cfg.buffer_memcap.max(cfg.max_frame_bytes.max(16));
    if cfg.name.is_empty() {
        cfg.name = format!(
            "{}://{local_addr}",
            if tls.is_some() { "tls" } else { "tcp" }
        );
    }
    let fd_limit = crate::stream::raise_fd_limit(&cfg.name, cfg.max_connections);
    let counters = Arc::new(Counters::default());
    let c = Arc::clone(&counters);
    let thread = std::thread::Builder::new()
        .name(format!("syslog-tcp-{local_addr}"))
        .spawn(move || crate::stream::run(prepared, tls, cfg, c, tx, shutdown, fd_limit))
        .map_err(ListenError::Thread)?;
    Ok(Listener {
        local_addr,
        counters,
        thread: Some(thread),
    })
}

/// Replay settings.
#[derive(Debug, Clone)]
pub struct ReplayConfig {
    /// Frames longer than this are truncated (and counted).
    pub max_frame_bytes: usize,
    /// Parsing options.
    pub parse: ParseOptions,
    /// Reference time for year inference of BSD timestamps (e.g. the file's modification
    /// time). Records without any timestamp also get this time.
    pub reference: Timestamp,
}

/// Reads frames (octet-counted or LF/NUL-terminated, per frame; `<PRI>` optional) from `r` and
/// sends the records, **blocking** when the channel is full. Each record's `received` is its own
/// timestamp, so replay output is deterministic. Returns when `r` ends, `shutdown` is triggered
/// or the receiver is gone.
pub fn replay<R: Read>(
    mut r: R,
    cfg: &ReplayConfig,
    tx: &Sender<LogRecord>,
    counters: &Counters,
    shutdown: &Shutdown,
) -> io::Result<()> {
    let mut framer = Framer::new(cfg.max_frame_bytes);
    let mut buf = vec![0u8; 64 * 1024];
    let open = std::cell::Cell::new(true);
    let mut emit = |f: &[u8], t: bool| {
        if !open.get() {
            return;
        }
        counters.received.fetch_add(1, Relaxed);
        let mut rec = parse(f, cfg.reference, None, &cfg.parse);
        rec.received = rec.timestamp;
        if t {
            rec.flags.insert(Flags::TRUNCATED);
            counters.truncated.fetch_add(1, Relaxed);
        }
        if rec.flags.contains(Flags::NO_TIMESTAMP) {
            counters.no_timestamp.fetch_add(1, Relaxed);
        }
        if tx.send(rec).is_err() {
            open.set(false);
        } else {
            counters.parsed.fetch_add(1, Relaxed);
        }
    };
    loop {
        if shutdown.is_shutdown() || !open.get() {
            return Ok(());
        }
        let n = match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        counters.bytes.fetch_add(n as u64, Relaxed);
        framer.push(&buf[..n], &mut emit);
        add_framer_stats(&mut framer, counters);
    }
    framer.finish(&mut emit);
    add_framer_stats(&mut framer, counters);
    Ok(())
}

fn add_framer_stats(framer: &mut Framer, c: &Counters) {
    let st = framer.take_stats();
    c.discarded_bytes.fetch_add(st.discarded_bytes, Relaxed);
    c.oversize_counts.fetch_add(st.oversize_counts, Relaxed);
}
