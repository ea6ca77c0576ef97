//! Real sockets on 127.0.0.1 (ephemeral ports): UDP, TCP (1000 concurrent clients), TLS with a
//! generated CA and optional client certificates, idle timeouts, full channel, shutdown, replay.

use crossbeam_channel::{bounded, Receiver};
use std::io::Write;
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};
use zonewatch_syslog::{
    replay, spawn, Counters, Flags, ListenSpec, Listener, ListenerConfig, LogRecord, ReplayConfig,
    Shutdown, Timestamp, TlsFiles,
};

fn local() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

fn recv_n(rx: &Receiver<LogRecord>, n: usize) -> Vec<LogRecord> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut out = Vec::new();
    while out.len() < n {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(r) => out.push(r),
            Err(_) => panic!("only {} of {n} records arrived", out.len()),
        }
    }
    out
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn stop(sd: Shutdown, l: Listener) {
    sd.shutdown();
    l.join();
}

/// A listener on `spec` delivering into a channel of `cap` records.
fn start(
    spec: &ListenSpec,
    cfg: ListenerConfig,
    cap: usize,
) -> (Receiver<LogRecord>, Shutdown, Listener) {
    let (tx, rx) = bounded(cap);
    let sd = Shutdown::new();
    let l = spawn(spec, cfg, tx, sd.clone()).unwrap();
    (rx, sd, l)
}

/// The listener closed `s`: reading it gives end of stream.
fn assert_closed_by_peer(s: &mut TcpStream) {
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut b = [0u8; 1];
    assert_eq!(std::io::Read::read(s, &mut b).unwrap(), 0);
}

#[test]
fn udp_datagrams_with_source_and_truncation() {
    let cfg = ListenerConfig {
        max_frame_bytes: 64,
        ..Default::default()
    };
    let (rx, sd, l) = start(&ListenSpec::Udp(local()), cfg, 100);
    let s = UdpSocket::bind(local()).unwrap();
    s.send_to(
        b"<34>Oct 11 22:14:15 mymachine su: 'su root' failed",
        l.local_addr(),
    )
    .unwrap();
    let long = format!("<13>1 - h app - - - {}", "x".repeat(200));
    s.send_to(long.as_bytes(), l.local_addr()).unwrap();
    let recs = recv_n(&rx, 2);
    assert_eq!(recs[0].app_name.as_deref(), Some("su"));
    assert_eq!(recs[0].source, Some(s.local_addr().unwrap()));
    assert!(recs[1].flags.contains(Flags::TRUNCATED));
    assert_eq!(recs[1].message.len(), 64 - "<13>1 - h app - - - ".len());
    let c = l.counters().snapshot();
    assert_eq!((c.received, c.parsed, c.truncated), (2, 2, 1));
    stop(sd, l);
}

#[test]
fn tcp_mixed_framing_and_truncation_counted() {
    let cfg = ListenerConfig {
        max_frame_bytes: 100,
        ..Default::default()
    };
    let (rx, sd, l) = start(&ListenSpec::Tcp(local()), cfg, 100);
    let mut c = TcpStream::connect(l.local_addr()).unwrap();
    let big = "y".repeat(500);
    let one = "<13>1 - h a - - - one";
    let stream = format!(
        "{} {one}<13>Jan  1 00:00:00 h b: two\n<13>1 - h c - - - {big}\n<13>1 - h d - - - four\0",
        one.len()
    );
    for chunk in stream.as_bytes().chunks(7) {
        c.write_all(chunk).unwrap();
    }
    c.flush().unwrap();
    let recs = recv_n(&rx, 4);
    let apps: Vec<_> = recs.iter().map(|r| r.app_name.clone().unwrap()).collect();
    assert_eq!(apps, ["a", "b", "c", "d"]);
    assert_eq!(recs[0].message, "one");
    assert_eq!(recs[1].message, "two");
    assert!(recs[2].flags.contains(Flags::TRUNCATED));
    assert_eq!(recs[3].message, "four");
    wait_for("counters", || l.counters().snapshot().truncated == 1);
    stop(sd, l);
}

#[test]
fn tcp_thousand_concurrent_clients() {
    const N: usize = 1000;
    // All clients come from 127.0.0.1: no per-source limit here.
    let cfg = ListenerConfig {
        max_connections_per_source: 0,
        ..Default::default()
    };
    let (rx, sd, l) = start(&ListenSpec::Tcp(local()), cfg, 4 * N);
    let addr = l.local_addr();
    // Open all connections first, so they are concurrent.
    let mut conns: Vec<TcpStream> = (0..N).map(|_| TcpStream::connect(addr).unwrap()).collect();
    let counters = l.counters();
    wait_for("1000 open connections", || {
        counters.snapshot().connections_open == N as u64
    });
    for (i, c) in conns.iter_mut().enumerate() {
        writeln!(c, "<13>Nov 25 20:30:45 host{i} app: hello {i}").unwrap();
    }
    let recs = recv_n(&rx, N);
    let mut hosts: Vec<usize> = recs
        .iter()
        .map(|r| r.hostname.as_ref().unwrap()[4..].parse().unwrap())
        .collect();
    hosts.sort_unstable();
    assert_eq!(hosts, (0..N).collect::<Vec<_>>());
    let c = counters.snapshot();
    assert_eq!(
        (c.connections, c.connections_refused, c.dropped),
        (N as u64, 0, 0)
    );
    drop(conns);
    wait_for("connections closed", || {
        counters.snapshot().connections_open == 0
    });
    stop(sd, l);
}

#[test]
fn idle_timeout_and_connection_cap() {
    let cfg = ListenerConfig {
        idle_timeout: Duration::from_millis(300),
        max_connections: 2,
        ..Default::default()
    };
    let (_rx, sd, l) = start(&ListenSpec::Tcp(local()), cfg, 10);
    let c = l.counters();
    let _a = TcpStream::connect(l.local_addr()).unwrap();
    let _b = TcpStream::connect(l.local_addr()).unwrap();
    wait_for("two open", || c.snapshot().connections_open == 2);
    let _third = TcpStream::connect(l.local_addr()).unwrap();
    wait_for("refused", || c.snapshot().connections_refused == 1);
    wait_for("idle close", || c.snapshot().idle_closed == 2);
    assert_eq!(c.snapshot().connections_open, 0);
    stop(sd, l);
}

#[test]
fn per_source_limit_refuses_and_counts() {
    let cfg = ListenerConfig {
        max_connections_per_source: 3,
        ..Default::default()
    };
    let (rx, sd, l) = start(&ListenSpec::Tcp(local()), cfg, 10);
    let c = l.counters();
    let mut held: Vec<TcpStream> = (0..5)
        .map(|_| TcpStream::connect(l.local_addr()).unwrap())
        .collect();
    wait_for("two refused", || c.snapshot().refused_per_source == 2);
    let s = c.snapshot();
    assert_eq!((s.connections_open, s.connections_refused), (3, 2));
    // The refused ones were closed: reading gives end of stream.
    assert_closed_by_peer(&mut held[4]);
    // One admitted connection leaves: the source may connect again.
    held.truncate(2);
    wait_for("one closed", || c.snapshot().connections_open == 2);
    let mut again = TcpStream::connect(l.local_addr()).unwrap();
    writeln!(again, "<13>Nov 25 20:30:45 host app: admitted").unwrap();
    assert_eq!(recv_n(&rx, 1)[0].message, "admitted");
    assert_eq!(c.snapshot().refused_per_source, 2);
    stop(sd, l);
}

#[test]
fn slowloris_frame_is_cut_at_the_frame_timeout_but_slow_lines_are_not() {
    let cfg = ListenerConfig {
        frame_timeout: Duration::from_millis(600),
        idle_timeout: Duration::from_secs(60),
        ..Default::default()
    };
    let (rx, sd, l) = start(&ListenSpec::Tcp(local()), cfg, 100);
    let c = l.counters();
    let mut slow = TcpStream::connect(l.local_addr()).unwrap();
    let mut lines = TcpStream::connect(l.local_addr()).unwrap();
    let t0 = Instant::now();
    let mut n_lines = 0;
    // One byte every 50 ms (the idle timeout never fires), and a complete line every 250 ms.
    for (k, b) in b"<13>Nov 25 20:30:45 host app: never ends"
        .iter()
        .enumerate()
    {
        if slow.write_all(&[*b]).is_err() {
            break;
        }
        if k % 5 == 0 {
            writeln!(lines, "<13>Nov 25 20:30:45 host app: line {n_lines}").unwrap();
            n_lines += 1;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    wait_for("frame timeout", || c.snapshot().frame_timeouts == 1);
    let cut_after = t0.elapsed();
    assert!(cut_after >= Duration::from_millis(600), "{cut_after:?}");
    let recs = recv_n(&rx, n_lines + 1);
    let cut: Vec<_> = recs
        .iter()
        .filter(|r| r.flags.contains(Flags::TRUNCATED))
        .collect();
    assert_eq!(cut.len(), 1);
    assert_eq!(cut[0].source, Some(slow.local_addr().unwrap()));
    // The line client is still connected and served.
    writeln!(lines, "<13>Nov 25 20:30:45 host app: still here").unwrap();
    assert_eq!(recv_n(&rx, 1)[0].message, "still here");
    let s = c.snapshot();
    assert_eq!(
        (s.frame_timeouts, s.connections_open, s.truncated),
        (1, 1, 0)
    );
    stop(sd, l);
}

#[test]
fn unfinished_frames_stay_within_the_buffer_memcap() {
    let cfg = ListenerConfig {
        max_frame_bytes: 16 << 10,
        buffer_memcap: 64 << 10,
        max_connections_per_source: 0,
        ..Default::default()
    };
    let (rx, sd, l) = start(&ListenSpec::Tcp(local()), cfg, 1000);
    let c = l.counters();
    // 40 clients with 12 KiB each of a frame that never ends: 480 KiB asked for, 64 KiB allowed.
    let junk = vec![b'x'; 12 << 10];
    let mut hogs = Vec::new();
    for _ in 0..40 {
        let mut s = TcpStream::connect(l.local_addr()).unwrap();
        let _ = s.write_all(&junk);
        hogs.push(s);
        assert!(c.snapshot().buffered_bytes <= 64 << 10);
    }
    wait_for("hogs closed", || c.snapshot().memcap_closed >= 30);
    let s = c.snapshot();
    assert!(s.buffered_bytes <= 64 << 10, "{s:?}");
    // A client with a complete message is served.
    let mut ok = TcpStream::connect(l.local_addr()).unwrap();
    writeln!(ok, "<13>Nov 25 20:30:45 host app: legitimate").unwrap();
    // The hogs' unfinished frames were dropped, not delivered.
    let r = rx.recv_timeout(Duration::from_secs(20)).expect("record");
    assert_eq!(r.message, "legitimate", "{r:?}");
    let s = c.snapshot();
    assert!(s.discarded_bytes >= 30 * 1024, "{s:?}");
    stop(sd, l);
}

#[test]
fn full_channel_drops_and_counts() {
    let (rx, sd, l) = start(&ListenSpec::Tcp(local()), ListenerConfig::default(), 2);
    let mut c = TcpStream::connect(l.local_addr()).unwrap();
    for i in 0..10 {
        writeln!(c, "<13>1 - h a - - - m{i}").unwrap();
    }
    let counters = l.counters();
    wait_for("ten frames", || counters.snapshot().received == 10);
    let s = counters.snapshot();
    assert_eq!((s.parsed, s.dropped), (2, 8));
    assert_eq!(rx.try_iter().count(), 2);
    stop(sd, l);
}

fn write(dir: &std::path::Path, name: &str, body: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, body).unwrap();
    p
}

struct Pki {
    ca: rcgen::Certificate,
    ca_key: rcgen::KeyPair,
}

impl Pki {
    fn new() -> Self {
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let ca = p.self_signed(&ca_key).unwrap();
        Pki { ca, ca_key }
    }
    fn leaf(&self, name: &str) -> (rcgen::Certificate, rcgen::KeyPair) {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec![name.to_owned()])
            .unwrap()
            .signed_by(&key, &self.ca, &self.ca_key)
            .unwrap();
        (cert, key)
    }

    /// Server certificate and key for "localhost", written to `dir`; no client CA.
    fn server_files(&self, dir: &std::path::Path) -> TlsFiles {
        let (srv, srv_key) = self.leaf("localhost");
        TlsFiles {
            cert: write(dir, "srv.pem", &srv.pem()),
            key: write(dir, "srv.key", &srv_key.serialize_pem()),
            client_ca: None,
        }
    }
}

fn tls_client(
    addr: SocketAddr,
    pki: &Pki,
    client_cert: Option<(&rcgen::Certificate, &rcgen::KeyPair)>,
) -> rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(pki.ca.der().clone()).unwrap();
    let b = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots);
    let cfg = match client_cert {
        None => b.with_no_client_auth(),
        Some((c, k)) => b
            .with_client_auth_cert(
                vec![c.der().clone()],
                rustls_pki_types::PrivateKeyDer::try_from(k.serialize_der()).unwrap(),
            )
            .unwrap(),
    };
    let conn = rustls::ClientConnection::new(
        Arc::new(cfg),
        rustls_pki_types::ServerName::try_from("localhost").unwrap(),
    )
    .unwrap();
    rustls::StreamOwned::new(conn, TcpStream::connect(addr).unwrap())
}

#[test]
fn tls_with_and_without_client_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new();
    let files = pki.server_files(dir.path());
    // Server without client authentication.
    let (rx, sd, l) = start(
        &ListenSpec::Tls(local(), files.clone()),
        ListenerConfig::default(),
        10,
    );
    let mut c = tls_client(l.local_addr(), &pki, None);
    let m = "<13>1 - h tlsapp - - - hello";
    c.write_all(format!("{} {m}", m.len()).as_bytes()).unwrap();
    c.flush().unwrap();
    let r = recv_n(&rx, 1);
    assert_eq!(r[0].app_name.as_deref(), Some("tlsapp"));
    assert_eq!(r[0].message, "hello");
    stop(sd, l);

    // Server requiring client certificates from our CA.
    let mut files_auth = files;
    files_auth.client_ca = Some(write(dir.path(), "ca.pem", &pki.ca.pem()));
    let (rx, sd, l) = start(
        &ListenSpec::Tls(local(), files_auth),
        ListenerConfig::default(),
        10,
    );
    let (cc, ck) = pki.leaf("client");
    let mut ok = tls_client(l.local_addr(), &pki, Some((&cc, &ck)));
    ok.write_all(b"<13>1 - h authed - - - with cert\n").unwrap();
    ok.flush().unwrap();
    assert_eq!(recv_n(&rx, 1)[0].app_name.as_deref(), Some("authed"));
    // Without a client certificate the handshake fails and nothing is delivered.
    let mut bad = tls_client(l.local_addr(), &pki, None);
    let _ = bad.write_all(b"<13>1 - h anon - - - no cert\n");
    let _ = bad.flush();
    let counters = l.counters();
    wait_for("tls error counted", || counters.snapshot().tls_errors >= 1);
    assert!(rx.recv_timeout(Duration::from_millis(300)).is_err());
    stop(sd, l);

    // Bad files are errors, not panics.
    let bad_files = TlsFiles {
        cert: dir.path().join("missing.pem"),
        key: dir.path().join("missing.key"),
        client_ca: None,
    };
    let (tx, _rx) = bounded(1);
    assert!(spawn(
        &ListenSpec::Tls(local(), bad_files),
        ListenerConfig::default(),
        tx,
        Shutdown::new()
    )
    .is_err());
}

#[test]
fn replay_uses_record_time_and_blocks_instead_of_dropping() {
    let text =
        "Nov 25 20:30:45 web1 sshd[1]: Failed password for root from 203.0.113.5 port 22 ssh2\n\
                <13>1 2026-11-25T11:31:00Z h app - - - five424\n\
                19 <13>1 - - - - - - x";
    let (tx, rx) = bounded(1); // smaller than the input: replay must wait, not drop
    let cfg = ReplayConfig {
        max_frame_bytes: 1 << 16,
        parse: Default::default(),
        reference: Timestamp::from_parts(1_795_606_245, 0),
    };
    let counters = Arc::new(Counters::default());
    let c2 = Arc::clone(&counters);
    let t = std::thread::spawn(move || {
        replay(text.as_bytes(), &cfg, &tx, &c2, &Shutdown::new()).unwrap();
    });
    let recs = recv_n(&rx, 3);
    t.join().unwrap();
    assert_eq!(recs[0].timestamp.secs(), 1_795_606_245); // JST 20:30:45 = 11:30:45Z
    assert_eq!(recs[0].received, recs[0].timestamp);
    assert_eq!(recs[0].field("src_ip"), Some("203.0.113.5"));
    assert_eq!(recs[1].timestamp.secs(), 1_795_606_260);
    assert_eq!(recs[2].message, "x");
    let s = counters.snapshot();
    assert_eq!((s.received, s.parsed, s.dropped), (3, 3, 0));
}

#[test]
fn tls_many_clients_one_thread_and_stalled_handshakes_time_out() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new();
    let files = pki.server_files(dir.path());
    let cfg = ListenerConfig {
        frame_timeout: Duration::from_millis(800),
        max_connections_per_source: 0,
        ..Default::default()
    };
    let (rx, sd, l) = start(&ListenSpec::Tls(local(), files), cfg, 1000);
    let c = l.counters();
    // A client that connects and never says anything: its handshake times out.
    let mut stalled = TcpStream::connect(l.local_addr()).unwrap();
    // 50 TLS clients at once, each with a 40 KB message written in pieces, and a line.
    let mut clients: Vec<_> = (0..50)
        .map(|_| tls_client(l.local_addr(), &pki, None))
        .collect();
    let big = format!("<13>1 - h big - - - {}\n", "z".repeat(40_000));
    for piece in big.as_bytes().chunks(7_000) {
        for cl in clients.iter_mut() {
            cl.write_all(piece).unwrap();
            cl.flush().unwrap();
        }
    }
    for (i, cl) in clients.iter_mut().enumerate() {
        writeln!(cl, "<13>1 - h small{i} - - - done").unwrap();
        cl.flush().unwrap();
    }
    let recs = recv_n(&rx, 100);
    assert_eq!(
        recs.iter().filter(|r| r.message.len() == 40_000).count(),
        50
    );
    assert_eq!(recs.iter().filter(|r| r.message == "done").count(), 50);
    wait_for("stalled handshake closed", || {
        c.snapshot().frame_timeouts == 1
    });
    assert_closed_by_peer(&mut stalled);
    let s = c.snapshot();
    assert_eq!(
        (s.tls_errors, s.connections, s.connections_open),
        (0, 51, 50)
    );
    // Clients that close cleanly (close_notify) are closed here too.
    for cl in clients.iter_mut() {
        cl.conn.send_close_notify();
        let _ = cl.flush();
    }
    drop(clients);
    wait_for("all closed", || c.snapshot().connections_open == 0);
    stop(sd, l);
}
