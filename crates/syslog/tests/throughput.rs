//! Throughput of the TCP listener over loopback (ignored by default; run in release):
//!
//! ```sh
//! cargo test --release -p zonewatch-syslog --test throughput -- --ignored --nocapture
//! ```
//!
//! One client sends `ZW_BENCH_LINES` (default 500,000) octet-counted RFC 5424 and LF-framed
//! BSD messages; the consumer counts records until all have arrived. The rate includes framing
//! and parsing (done on the connection thread) and the channel hop.

use crossbeam_channel::bounded;
use std::io::{BufWriter, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};
use zonewatch_syslog::{spawn, ListenSpec, ListenerConfig, Shutdown};

#[test]
#[ignore]
fn tcp_loopback_rate() {
    let n: usize = std::env::var("ZW_BENCH_LINES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500_000);
    let (tx, rx) = bounded(65_536);
    let sd = Shutdown::new();
    let l = spawn(
        &ListenSpec::Tcp("127.0.0.1:0".parse().unwrap()),
        ListenerConfig::default(),
        tx,
        sd.clone(),
    )
    .unwrap();
    let addr = l.local_addr();
    let lines = [
        "<38>Nov 25 20:30:45 web1 sshd[4242]: Failed password for invalid user admin from 203.0.113.9 port 51234 ssh2\n".to_owned(),
        {
            let m = "<134>1 2026-11-25T20:30:45.123+09:00 fw01 filter 77 - [meta@1 zone=\"internet\"] date=2026-11-25 srcip=198.51.100.7 dstip=10.0.0.5 action=deny proto=6 dstport=445";
            format!("{} {m}", m.len())
        },
    ];
    let t = Instant::now();
    let sender = std::thread::spawn(move || {
        let mut w = BufWriter::with_capacity(1 << 16, TcpStream::connect(addr).unwrap());
        for i in 0..n {
            w.write_all(lines[i % 2].as_bytes()).unwrap();
        }
        w.flush().unwrap();
    });
    let mut got = 0;
    while got < n {
        match rx.recv_timeout(Duration::from_secs(10)) {
            Ok(_) => got += 1,
            Err(_) => break,
        }
    }
    let dt = t.elapsed().as_secs_f64();
    sender.join().unwrap();
    let c = l.counters().snapshot();
    println!(
        "TCP loopback: {got} of {n} records in {dt:.2}s = {:.0} msg/s (dropped {}, truncated {})",
        got as f64 / dt,
        c.dropped,
        c.truncated
    );
    sd.shutdown();
    l.join();
    assert_eq!(got as u64 + c.dropped, n as u64);
}
