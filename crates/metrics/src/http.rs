//! A minimal HTTP/1.1 server for one resource: `GET /metrics`.
//!
//! One thread accepts and answers connections one at a time: a Prometheus
//! server scrapes every few seconds, so there is nothing to gain from more,
//! and one thread bounds what a misbehaving client can cost. Each request is
//! read with a deadline ([`REQUEST_DEADLINE`] for the whole head, not per
//! read) and a size bound ([`MAX_REQUEST`]); the connection is closed after
//! every reply. A client that sends nothing holds the server for at most
//! the deadline.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

/// Largest request head read (request line and headers).
pub const MAX_REQUEST: usize = 8 * 1024;
/// Time a client has to send its request head.
pub const REQUEST_DEADLINE: Duration = Duration::from_secs(2);
/// Time a client has to take the reply.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// The content type of the Prometheus text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// What to answer.
#[derive(Debug, PartialEq, Eq)]
enum Route {
    Metrics { head: bool },
    NotFound,
    MethodNotAllowed,
    BadRequest,
    TooLarge,
    Timeout,
}

/// Reads one request head and decides what it asks for.
fn read_request(s: &mut TcpStream) -> Route {
    let deadline = Instant::now() + REQUEST_DEADLINE;
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    let end = loop {
        if let Some(i) = find_head_end(&buf) {
            break i;
        }
        if buf.len() >= MAX_REQUEST {
            return Route::TooLarge;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || s.set_read_timeout(Some(left)).is_err() {
            return Route::Timeout;
        }
        match s.read(&mut chunk) {
            Ok(0) => return Route::BadRequest,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Route::Timeout
            }
            Err(_) => return Route::BadRequest,
        }
    };
    route(&buf[..end])
}

fn find_head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").or_else(|| {
        // Bare LF line ends, as some hand-typed clients send.
        buf.windows(2).position(|w| w == b"\n\n")
    })
}

fn route(head: &[u8]) -> Route {
    let Ok(head) = std::str::from_utf8(head) else {
        return Route::BadRequest;
    };
    let line = head.lines().next().unwrap_or("");
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Route::BadRequest;
    };
    if !version.starts_with("HTTP/1.") || method.is_empty() {
        return Route::BadRequest;
    }
    // Prometheus may add a query string; the path decides.
    let path = target.split('?').next().unwrap_or("");
    if path != "/metrics" {
        return Route::NotFound;
    }
    match method {
        "GET" => Route::Metrics { head: false },
        "HEAD" => Route::Metrics { head: true },
        _ => Route::MethodNotAllowed,
    }
}

fn reply(s: &mut TcpStream, status: &str, ctype: &str, extra: &str, body: &[u8], head: bool) {
    let _ = s.set_write_timeout(Some(WRITE_TIMEOUT));
    let h = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n",
        body.len()
    );
    let mut out = Vec::with_capacity(h.len() + body.len());
    out.extend_from_slice(h.as_bytes());
    if !head {
        out.extend_from_slice(body);
    }
    let _ = s.write_all(&out);
    let _ = s.flush();
    // Tell the client we are done, and read what it still sends (at most
    // DRAIN_BYTES within DRAIN_TIME), so that closing with unread request
    // bytes does not reset the connection before the client reads the reply.
    let _ = s.shutdown(std::net::Shutdown::Write);
    let _ = s.set_read_timeout(Some(Duration::from_millis(100)));
    let until = Instant::now() + DRAIN_TIME;
    let mut sink = [0u8; 8192];
    let mut drained = 0;
    while drained < DRAIN_BYTES && Instant::now() < until {
        match s.read(&mut sink) {
            Ok(n) if n > 0 => drained += n,
            _ => break,
        }
    }
}

/// Bytes read after a reply before closing.
const DRAIN_BYTES: usize = 1 << 20;
/// Time spent reading them at most.
const DRAIN_TIME: Duration = Duration::from_millis(500);

/// Answers one connection.
pub(crate) fn handle(mut s: TcpStream, render: &dyn Fn() -> String) {
    let text = "text/plain; charset=utf-8";
    match read_request(&mut s) {
        Route::Metrics { head } => {
            let body = render();
            reply(&mut s, "200 OK", CONTENT_TYPE, "", body.as_bytes(), head);
        }
        Route::NotFound => reply(
            &mut s,
            "404 Not Found",
            text,
            "",
            b"not found: zonewatch serves GET /metrics only\n",
            false,
        ),
        Route::MethodNotAllowed => reply(
            &mut s,
            "405 Method Not Allowed",
            text,
            "Allow: GET, HEAD\r\n",
            b"method not allowed\n",
            false,
        ),
        Route::BadRequest => reply(&mut s, "400 Bad Request", text, "", b"bad request\n", false),
        Route::TooLarge => reply(
            &mut s,
            "431 Request Header Fields Too Large",
            text,
            "",
            b"request too large\n",
            false,
        ),
        Route::Timeout => reply(
            &mut s,
            "408 Request Timeout",
            text,
            "",
            b"request timeout\n",
            false,
        ),
    }
}

/// Binds `addr` and answers on a thread named `zw-metrics` until the
/// process ends. Returns the bound address (port 0 picks a free one).
pub(crate) fn serve(
    addr: SocketAddr,
    render: Box<dyn Fn() -> String + Send>,
) -> io::Result<SocketAddr> {
    let l = TcpListener::bind(addr)?;
    let local = l.local_addr()?;
    std::thread::Builder::new()
        .name("zw-metrics".into())
        .spawn(move || {
            for c in l.incoming() {
                match c {
                    Ok(s) => handle(s, &*render),
                    // Out of descriptors or an aborted connection: wait a
                    // little rather than spin, and go on.
                    Err(_) => std::thread::sleep(Duration::from_millis(50)),
                }
            }
        })?;
    Ok(local)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(
            route(b"GET /metrics HTTP/1.1\r\nHost: x"),
            Route::Metrics { head: false }
        );
        assert_eq!(
            route(b"GET /metrics?x=1 HTTP/1.0"),
            Route::Metrics { head: false }
        );
        assert_eq!(
            route(b"HEAD /metrics HTTP/1.1"),
            Route::Metrics { head: true }
        );
        assert_eq!(route(b"GET / HTTP/1.1"), Route::NotFound);
        assert_eq!(route(b"GET /metricsx HTTP/1.1"), Route::NotFound);
        assert_eq!(route(b"POST /metrics HTTP/1.1"), Route::MethodNotAllowed);
        assert_eq!(route(b"GET /metrics"), Route::BadRequest);
        assert_eq!(route(b"GET /metrics SPDY/3"), Route::BadRequest);
        assert_eq!(route(b"\xff\xfe"), Route::BadRequest);
        assert_eq!(route(b"GET  /metrics HTTP/1.1"), Route::BadRequest);
    }
}
