//! Unit tests: static bytes per protocol, every truncation, byte-by-byte
//! feeding, bounds, and hostile input.

use crate::*;
use serde_json::json;

const CS: Direction = Direction::ToServer;
const SC: Direction = Direction::ToClient;

pub(crate) fn txs(out: &[AppOutput]) -> Vec<&Transaction> {
    out.iter()
        .filter_map(|o| match o {
            AppOutput::Tx(t) => Some(&**t),
            _ => None,
        })
        .collect()
}

fn complete(out: &[AppOutput]) -> Vec<&Transaction> {
    txs(out).into_iter().filter(|t| t.complete).collect()
}

/// An HTTP 200 response carrying `body` (already gzip-compressed).
fn gzip_response(body: &[u8]) -> Vec<u8> {
    let mut resp = format!(
        "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    resp.extend_from_slice(body);
    resp
}

pub(crate) fn events(out: &[AppOutput]) -> Vec<&'static str> {
    out.iter()
        .filter_map(|o| match o {
            AppOutput::Event(e) => Some(e.name),
            _ => None,
        })
        .collect()
}

/// Feeds a TCP conversation: (direction, bytes) in order.
fn tcp(port: u16, parts: &[(Direction, &[u8])]) -> (AppState, Vec<AppOutput>) {
    tcp_cfg(AppConfig::default(), port, parts, usize::MAX)
}

fn tcp_cfg(
    cfg: AppConfig,
    port: u16,
    parts: &[(Direction, &[u8])],
    chunk: usize,
) -> (AppState, Vec<AppOutput>) {
    let mut st = AppState::new(cfg, 6, port);
    let mut out = Vec::new();
    for (d, b) in parts {
        for c in b.chunks(chunk.max(1)) {
            st.on_stream(*d, c, &mut out);
        }
    }
    (st, out)
}

fn s(b: Option<&[u8]>) -> &str {
    std::str::from_utf8(b.unwrap_or(b"<none>")).unwrap_or("<bin>")
}

// ---------------------------------------------------------------- HTTP

const REQ: &[u8] = b"GET /a/./b/../c%41.php?x=%41&y=1 HTTP/1.1\r\n\
Host: WWW.Example.COM:8080\r\n\
User-Agent: Mozilla/5.0\r\n\
\x20 (folded)\r\n\
Accept: */*\r\n\
Cookie: a=1\r\n\
Referer: http://ref.example/\r\n\
\r\n";

const RESP: &[u8] = b"HTTP/1.1 200 OK\r\n\
Server: nginx\r\n\
Content-Type: text/html; charset=utf-8\r\n\
Set-Cookie: s=2\r\n\
Content-Length: 5\r\n\
\r\n\
hello";

#[test]
fn http_request_response_buffers_and_eve() {
    let (st, out) = tcp(80, &[(CS, REQ), (SC, RESP)]);
    assert_eq!(st.app_proto(), Some(AppProto::Http));
    assert!(matches!(out[0], AppOutput::Detected(AppProto::Http)));
    let all = txs(&out);
    assert_eq!(all.len(), 2, "{out:?}");
    // First output: request side only.
    assert!(!all[0].complete);
    assert_eq!(all[0].id, 0);
    assert_eq!(all[0].buffer(Buffer::HttpStatCode), None);
    let t = all[1];
    assert!(t.complete);
    assert_eq!(t.id, 0);
    assert_eq!(s(t.buffer(Buffer::HttpMethod)), "GET");
    assert_eq!(s(t.buffer(Buffer::HttpUri)), "/a/cA.php?x=A&y=1");
    assert_eq!(
        s(t.buffer(Buffer::HttpUriRaw)),
        "/a/./b/../c%41.php?x=%41&y=1"
    );
    assert_eq!(s(t.buffer(Buffer::HttpHost)), "www.example.com");
    assert_eq!(s(t.buffer(Buffer::HttpHostRaw)), "WWW.Example.COM:8080");
    assert_eq!(s(t.buffer(Buffer::HttpUserAgent)), "Mozilla/5.0 (folded)");
    assert_eq!(
        s(t.buffer(Buffer::HttpRequestLine)),
        "GET /a/./b/../c%41.php?x=%41&y=1 HTTP/1.1"
    );
    assert_eq!(s(t.buffer_in(Buffer::HttpProtocol, CS)), "HTTP/1.1");
    assert_eq!(s(t.buffer_in(Buffer::HttpCookie, CS)), "a=1");
    assert_eq!(s(t.buffer_in(Buffer::HttpCookie, SC)), "s=2");
    assert_eq!(s(t.buffer(Buffer::HttpAccept)), "*/*");
    assert_eq!(s(t.buffer(Buffer::HttpReferer)), "http://ref.example/");
    assert_eq!(
        s(t.buffer_in(Buffer::HttpHeader, CS)),
        "Host: WWW.Example.COM:8080\r\nUser-Agent: Mozilla/5.0 (folded)\r\nAccept: */*\r\n\
         Referer: http://ref.example/\r\n"
    );
    assert!(s(t.buffer_in(Buffer::HttpStart, CS))
        .ends_with("Cookie: a=1\r\nReferer: http://ref.example/\r\n\r\n"));
    assert!(s(t.buffer_in(Buffer::HttpStart, CS))
        .starts_with("GET /a/./b/../c%41.php?x=%41&y=1 HTTP/1.1\r\nHost: "));
    assert_eq!(
        s(t.buffer_in(Buffer::HttpHeaderNames, CS)),
        "\r\nHost\r\nUser-Agent\r\nAccept\r\nCookie\r\nReferer\r\n\r\n"
    );
    let raw = t.buffer_in(Buffer::HttpHeaderRaw, CS).unwrap();
    assert!(raw.starts_with(b"Host: WWW"));
    assert!(raw.ends_with(b"\r\n\r\n"));
    let each: Vec<&[u8]> = t.buffers_in(Buffer::HttpRequestHeader, CS).collect();
    assert_eq!(each.len(), 5);
    assert_eq!(each[3], b"Cookie: a=1");
    assert_eq!(s(t.buffer(Buffer::HttpStatCode)), "200");
    assert_eq!(s(t.buffer(Buffer::HttpStatMsg)), "OK");
    assert_eq!(s(t.buffer(Buffer::HttpResponseLine)), "HTTP/1.1 200 OK");
    assert_eq!(s(t.buffer(Buffer::HttpServer)), "nginx");
    assert_eq!(s(t.buffer(Buffer::HttpResponseBody)), "hello");
    assert_eq!(s(t.buffer_in(Buffer::HttpContentLen, SC)), "5");
    assert_eq!(
        s(t.buffer_in(Buffer::HttpContentType, SC)),
        "text/html; charset=utf-8"
    );
    assert_eq!(t.nums.urilen, Some("/a/cA.php?x=A&y=1".len()));
    assert_eq!(t.nums.http_status, Some(200));
    assert_eq!(t.eve_key(), "http");
    assert_eq!(
        t.eve,
        json!({"hostname": "www.example.com", "http_port": 8080,
               "url": "/a/./b/../c%41.php?x=%41&y=1", "http_user_agent": "Mozilla/5.0 (folded)",
               "http_content_type": "text/html", "http_refer": "http://ref.example/",
               "http_method": "GET", "protocol": "HTTP/1.1", "status": 200, "length": 5})
    );
    assert!(events(&out).is_empty(), "{:?}", events(&out));
}

#[test]
fn http_byte_by_byte_equals_whole() {
    let (_, whole) = tcp(80, &[(CS, REQ), (SC, RESP)]);
    let (_, bytes) = tcp_cfg(AppConfig::default(), 80, &[(CS, REQ), (SC, RESP)], 1);
    assert_eq!(complete(&whole), complete(&bytes));
}

#[test]
fn http_pipelining_pairs_in_order() {
    let reqs = b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\nPOST /2 HTTP/1.1\r\nHost: b\r\nContent-Length: 3\r\n\r\nxyzHEAD /3 HTTP/1.1\r\nHost: c\r\n\r\n";
    let resps = b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\naHTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nbb\r\n0\r\n\r\nHTTP/1.1 204 No Content\r\nContent-Length: 99\r\n\r\n";
    let (_, out) = tcp(80, &[(CS, reqs), (SC, resps)]);
    let c = complete(&out);
    assert_eq!(c.len(), 3);
    let got: Vec<(u64, &str, &str, &str)> = c
        .iter()
        .map(|t| {
            (
                t.id,
                s(t.buffer(Buffer::HttpUri)),
                s(t.buffer(Buffer::HttpStatCode)),
                s(t.buffer(Buffer::HttpResponseBody)),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (0, "/1", "200", "a"),
            (1, "/2", "201", "bb"),
            (2, "/3", "204", "<none>")
        ]
    );
    assert_eq!(s(c[1].buffer(Buffer::HttpRequestBody)), "xyz");
}

fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

#[test]
fn http_chunked_gzip_body_is_decoded() {
    let body = gzip(b"<html>secret payload</html>");
    let mut resp =
        b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for c in body.chunks(7) {
        resp.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
        resp.extend_from_slice(c);
        resp.extend_from_slice(b"\r\n");
    }
    resp.extend_from_slice(b"0\r\n\r\n");
    let (_, out) = tcp(
        80,
        &[(CS, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"), (SC, &resp)],
    );
    let c = complete(&out);
    assert_eq!(c.len(), 1);
    assert_eq!(
        s(c[0].buffer(Buffer::HttpResponseBody)),
        "<html>secret payload</html>"
    );
    assert_eq!(c[0].eve["length"], json!(body.len()));
}

#[test]
fn http_deflate_zlib_and_raw() {
    use std::io::Write;
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    z.write_all(b"zlib body").unwrap();
    let z = z.finish().unwrap();
    let mut r = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    r.write_all(b"raw body").unwrap();
    let r = r.finish().unwrap();
    for (enc, want) in [(z, "zlib body"), (r, "raw body")] {
        let mut resp = format!(
            "HTTP/1.1 200 OK\r\nContent-Encoding: deflate\r\nContent-Length: {}\r\n\r\n",
            enc.len()
        )
        .into_bytes();
        resp.extend_from_slice(&enc);
        let (_, out) = tcp(80, &[(CS, b"GET / HTTP/1.0\r\n\r\n"), (SC, &resp)]);
        assert_eq!(s(complete(&out)[0].buffer(Buffer::HttpResponseBody)), want);
    }
}

#[test]
fn http_gzip_bomb_is_bounded() {
    let body = gzip(&vec![0u8; 20 << 20]);
    let cfg = AppConfig {
        http_response_body_limit: 1000,
        ..AppConfig::default()
    };
    let resp = gzip_response(&body);
    let (_, out) = tcp_cfg(
        cfg,
        80,
        &[(CS, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"), (SC, &resp)],
        4096,
    );
    let c = complete(&out);
    assert_eq!(
        c[0].buffer(Buffer::HttpResponseBody).map(|b| b.len()),
        Some(1000)
    );
}

#[test]
fn http_corrupt_gzip_raises_event() {
    let resp = b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 10\r\n\r\nnot-gzip!!";
    let (_, out) = tcp(
        80,
        &[(CS, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"), (SC, resp)],
    );
    assert!(events(&out).contains(&"http.gzip_decompression_failed"));
    assert_eq!(complete(&out).len(), 1);
}

#[test]
fn http_request_body_depth() {
    let cfg = AppConfig {
        http_request_body_limit: 4,
        ..AppConfig::default()
    };
    let req = b"POST /u HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\n0123456789GET /next HTTP/1.1\r\nHost: h\r\n\r\n";
    let (mut st, mut out) = tcp_cfg(cfg, 80, &[(CS, req)], 3);
    st.on_close(&mut out);
    let c = complete(&out);
    assert_eq!(c.len(), 2);
    assert_eq!(s(c[0].buffer(Buffer::HttpRequestBody)), "0123");
    assert_eq!(s(c[1].buffer(Buffer::HttpUri)), "/next");
}

#[test]
fn http_absolute_uri_and_oddities() {
    let req = b"\r\nGET  http://User@Proxy.Example.:3128/p/../q?%7e HTTP/1.0\r\nno colon here\r\nBad Name: x\r\n\r\n";
    let (mut st, mut out) = tcp(80, &[(CS, req)]);
    st.on_close(&mut out);
    let c = complete(&out);
    assert_eq!(c.len(), 1);
    assert_eq!(s(c[0].buffer(Buffer::HttpHost)), "proxy.example");
    assert_eq!(s(c[0].buffer(Buffer::HttpUri)), "/q?~");
    let ev = events(&out);
    assert!(ev.contains(&"http.method_delim_non_compliant"), "{ev:?}");
    assert!(ev.contains(&"http.request_field_missing_colon"), "{ev:?}");
    assert!(ev.contains(&"http.request_header_invalid"), "{ev:?}");
}

#[test]
fn http_events_for_bad_framing() {
    let req = b"GET / HTTP/1.1\r\n\r\n";
    let resp = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n";
    let (_, out) = tcp(80, &[(CS, req), (SC, resp)]);
    let ev = events(&out);
    assert!(ev.contains(&"http.missing_host_header"), "{ev:?}");
    assert!(ev.contains(&"http.invalid_response_chunk_len"), "{ev:?}");
    let req =
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: abc\r\nTransfer-Encoding: gzip\r\n\r\n";
    let (_, out) = tcp(80, &[(CS, req)]);
    let ev = events(&out);
    assert!(
        ev.contains(&"http.invalid_content_length_field_in_request"),
        "{ev:?}"
    );
    assert!(
        ev.contains(&"http.invalid_transfer_encoding_value_in_request"),
        "{ev:?}"
    );
    let req = b"GET / HTTP/1.1\r\n folded-first\r\nHost: a\r\nContent-Length: 0\r\nContent-Length: 5\r\n\r\n";
    let (_, out) = tcp(80, &[(CS, req)]);
    let ev = events(&out);
    assert!(ev.contains(&"http.invalid_request_field_folding"), "{ev:?}");
    assert!(
        ev.contains(&"http.duplicate_content_length_field_in_request"),
        "{ev:?}"
    );
}

#[test]
fn http_100_continue_and_response_without_request() {
    let (_, out) = tcp(
        80,
        &[
            (CS, b"PUT /f HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n"),
            (SC, b"HTTP/1.1 100 Continue\r\n\r\n"),
            (CS, b"ok"),
            (SC, b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
        ],
    );
    let c = complete(&out);
    assert_eq!(c.len(), 2);
    assert_eq!(s(c[0].buffer(Buffer::HttpStatCode)), "201");
    assert_eq!(s(c[0].buffer(Buffer::HttpRequestBody)), "ok");
    assert_eq!(c[1].buffer(Buffer::HttpMethod), None);
    assert!(events(&out).contains(&"http.unable_to_match_response_to_request"));
}

#[test]
fn http_long_line_is_cut_and_bounded() {
    let cfg = AppConfig {
        http_field_limit: 100,
        ..AppConfig::default()
    };
    let mut req = b"GET / HTTP/1.1\r\nHost: h\r\nX-Long: ".to_vec();
    req.extend(std::iter::repeat_n(b'A', 1 << 20));
    req.extend_from_slice(b"\r\n\r\n");
    let mut st = AppState::new(cfg, 6, 80);
    let mut out = Vec::new();
    for c in req.chunks(1000) {
        st.on_stream(CS, c, &mut out);
        assert!(st.mem_bytes() < 64 * 1024, "{}", st.mem_bytes());
    }
    assert!(events(&out).contains(&"http.request_field_too_long"));
    assert_eq!(txs(&out).len(), 1);
}

#[test]
fn http_gap_in_body_keeps_sync() {
    let mut st = AppState::new(AppConfig::default(), 6, 80);
    let mut out = Vec::new();
    st.on_stream(
        CS,
        b"POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\n012",
        &mut out,
    );
    st.on_gap(CS, 4, &mut out);
    st.on_stream(CS, b"789GET /b HTTP/1.1\r\nHost: h\r\n\r\n", &mut out);
    let uris: Vec<&str> = txs(&out)
        .iter()
        .map(|t| s(t.buffer(Buffer::HttpUri)))
        .collect();
    assert_eq!(uris, vec!["/a", "/b"]);
    // A gap in the headers: resync on the next request line.
    let mut st = AppState::new(AppConfig::default(), 6, 80);
    let mut out = Vec::new();
    st.on_stream(CS, b"GET /a HTTP/1.1\r\nHo", &mut out);
    st.on_gap(CS, 100, &mut out);
    st.on_stream(
        CS,
        b"junk\r\n<x \"DAV:y\">\r\nGET /c HTTP/1.1\r\nHost: h\r\n\r\n",
        &mut out,
    );
    let uris: Vec<&str> = txs(&out)
        .iter()
        .map(|t| s(t.buffer(Buffer::HttpUri)))
        .collect();
    assert_eq!(uris, vec!["/a", "/c"]);
}

#[test]
fn http_every_truncation_is_safe() {
    let mut conv = REQ.to_vec();
    conv.extend_from_slice(
        b"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    );
    for n in 0..=conv.len() {
        let (mut st, mut out) = tcp(80, &[(CS, &conv[..n]), (SC, &RESP[..n.min(RESP.len())])]);
        st.on_close(&mut out);
        for t in txs(&out) {
            // Buffers are copies of what was seen, a few times over at most.
            assert!(t.buffer_bytes() <= 8 * (conv.len() + RESP.len()));
        }
    }
}

#[test]
fn http_response_first_is_reversed() {
    // The capture starts with the server's bytes in the "to_server" direction.
    let mut st = AppState::new(AppConfig::default(), 6, 51000);
    let mut out = Vec::new();
    st.on_stream(
        CS,
        b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n",
        &mut out,
    );
    assert!(st.reversed());
    st.on_stream(SC, b"GET /late HTTP/1.1\r\nHost: h\r\n\r\n", &mut out);
    st.on_close(&mut out);
    assert!(events(&out).contains(&"applayer.wrong_direction_first_data"));
    let c = complete(&out);
    assert_eq!(s(c[0].buffer(Buffer::HttpStatCode)), "404");
}

// ---------------------------------------------------------- detection

/// An SMB1 header after a NetBIOS session header: `reply` sets the SMB1
/// reply flag.
fn smb1(reply: bool) -> Vec<u8> {
    let mut m = vec![0x00, 0x00, 0x00, 0x23];
    m.extend_from_slice(b"\xffSMB\x73\x00\x00\x00\x00");
    m.push(if reply { 0x98 } else { 0x18 });
    m.extend_from_slice(&[0; 22]);
    m
}

/// suricata-verify smb1-03-midstream: SMB is detected (flow `app_proto`
/// smb), and a pickup that starts with the server's reply is reversed.
#[test]
fn smb_is_detected_and_a_reply_first_reverses_the_flow() {
    let (st, out) = tcp(445, &[(CS, &smb1(false))]);
    assert_eq!(st.app_proto(), Some(AppProto::Smb));
    assert_eq!(AppProto::from_name("smb"), Some(AppProto::Smb));
    assert!(!st.reversed());
    assert!(out.contains(&AppOutput::Detected(AppProto::Smb)));
    let (st, _) = tcp(445, &[(CS, &smb1(true))]);
    assert_eq!(st.app_proto(), Some(AppProto::Smb));
    assert!(st.reversed());
    // SMB2: flags bit 0 at header offset 16 marks the response.
    let mut smb2 = vec![0x00, 0x00, 0x00, 0x40];
    smb2.extend_from_slice(b"\xfeSMB\x40\x00");
    smb2.extend_from_slice(&[0; 10]);
    smb2.extend_from_slice(&[0x01, 0, 0, 0]);
    smb2.extend_from_slice(&[0; 44]);
    let (st, _) = tcp(445, &[(CS, &smb2)]);
    assert!(st.reversed());
    // Byte by byte: detection waits for the flag, then decides the same.
    let (st, _) = tcp_cfg(AppConfig::default(), 445, &[(SC, &smb1(true))], 1);
    assert_eq!(st.app_proto(), Some(AppProto::Smb));
    assert!(!st.reversed());
    // Not SMB: another NetBIOS message type, or no magic.
    let (st, _) = tcp(445, &[(CS, b"\x85\x00\x00\x00xxxxxxxxxxxxxxxxxxxx")]);
    assert_eq!(st.app_proto(), None);
    let (st, _) = tcp(445, &[(CS, b"\x00\x00\x00\x10\xffSMA..............")]);
    assert_eq!(st.app_proto(), None);
    // Switched off.
    let cfg = AppConfig {
        smb: false,
        ..AppConfig::default()
    };
    let (st, _) = tcp_cfg(cfg, 445, &[(CS, &smb1(false))], usize::MAX);
    assert_ne!(st.app_proto(), Some(AppProto::Smb));
}

#[test]
fn detection_by_content_and_port_mismatch() {
    let (st, out) = tcp(80, &[(SC, b"SSH-2.0-OpenSSH_9.6\r\n")]);
    assert_eq!(st.app_proto(), Some(AppProto::Ssh));
    assert!(events(&out).contains(&"applayer.protocol_port_mismatch"));
    let (st, out) = tcp(4444, &[(CS, b"GET / HTTP/1.1\r\n")]);
    assert_eq!(st.app_proto(), Some(AppProto::Http));
    assert!(events(&out).is_empty());
    let (st, out) = tcp(443, &[(CS, b"POST /x HTTP/1.1\r\n")]);
    assert_eq!(st.app_proto(), Some(AppProto::Http));
    assert!(events(&out).contains(&"applayer.protocol_port_mismatch"));
    // Partial prefixes wait; garbage fails once both sides gave up.
    let (st, _) = tcp(80, &[(CS, b"GE")]);
    assert_eq!(st.app_proto(), None);
    assert!(!st.detection_failed());
    let (st, _) = tcp(
        80,
        &[
            (CS, b"\x00\x01garbage"),
            (SC, b"more garbage, longer than a DNS header"),
        ],
    );
    assert!(st.detection_failed());
    // Probe buffer is bounded.
    let big = vec![b'G'; 100_000];
    let (st, _) = tcp(80, &[(CS, b"GET"), (CS, &big)]);
    assert!(st.mem_bytes() <= AppConfig::default().probe_bytes * 2);
    // Disabled protocol is not detected.
    let cfg = AppConfig {
        ssh: false,
        ..AppConfig::default()
    };
    let (st, _) = tcp_cfg(
        cfg,
        22,
        &[(CS, b"SSH-2.0-x\r\n"), (SC, b"SSH-2.0-y\r\n")],
        100,
    );
    assert_eq!(st.app_proto(), None);
}

#[test]
fn keywords_map_to_buffers() {
    assert_eq!(Buffer::from_keyword("http.uri"), Some(Buffer::HttpUri));
    assert_eq!(Buffer::from_keyword("http_uri"), Some(Buffer::HttpUri));
    assert_eq!(Buffer::from_keyword("uricontent"), Some(Buffer::HttpUri));
    assert_eq!(
        Buffer::from_keyword("http_raw_header"),
        Some(Buffer::HttpHeaderRaw)
    );
    assert_eq!(
        Buffer::from_keyword("http_client_body"),
        Some(Buffer::HttpRequestBody)
    );
    assert_eq!(
        Buffer::from_keyword("http_server_body"),
        Some(Buffer::HttpResponseBody)
    );
    assert_eq!(
        Buffer::from_keyword("file.data"),
        Some(Buffer::HttpResponseBody)
    );
    assert_eq!(Buffer::from_keyword("dns_query"), Some(Buffer::DnsQuery));
    assert_eq!(
        Buffer::from_keyword("tls_cert_subject"),
        Some(Buffer::TlsCertSubject)
    );
    assert_eq!(Buffer::from_keyword("ja3.hash"), Some(Buffer::Ja3Hash));
    assert_eq!(Buffer::from_keyword("nope"), None);
    assert_eq!(
        Buffer::from_keyword("http_header_names"),
        Some(Buffer::HttpHeaderNames)
    );
    assert_eq!(
        Buffer::from_keyword("http.request_header"),
        Some(Buffer::HttpRequestHeader)
    );
    for b in Buffer::ALL {
        assert_eq!(Buffer::from_keyword(b.name()), Some(*b));
        for l in b.legacy_names() {
            assert_eq!(Buffer::from_keyword(l), Some(*b));
        }
    }
    assert_eq!(Buffer::HttpStatCode.dir(), BufferDir::ToClient);
    assert_eq!(Buffer::HttpHeader.dir(), BufferDir::Both);
    assert_eq!(Buffer::TlsSni.proto(), AppProto::Tls);
    assert!(Buffer::TlsCerts.multi_valued());
}

// ---------------------------------------------------------------- DNS

fn qname(n: &str) -> Vec<u8> {
    let mut v = Vec::new();
    for l in n.split('.').filter(|l| !l.is_empty()) {
        v.push(l.len() as u8);
        v.extend_from_slice(l.as_bytes());
    }
    v.push(0);
    v
}

fn dns_query(id: u16, name: &str, t: u16) -> Vec<u8> {
    let mut m = id.to_be_bytes().to_vec();
    m.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    m.extend(qname(name));
    m.extend_from_slice(&t.to_be_bytes());
    m.extend_from_slice(&[0, 1]);
    m
}

fn dns_response() -> Vec<u8> {
    let mut m = vec![0x12, 0x34, 0x81, 0x80, 0, 1, 0, 3, 0, 0, 0, 0];
    m.extend(qname("www.example.com"));
    m.extend_from_slice(&[0, 1, 0, 1]);
    // CNAME www -> cdn.example.com (compressed: "cdn" + pointer to example.com at 16)
    m.extend_from_slice(&[
        0xC0, 12, 0, 5, 0, 1, 0, 0, 0, 60, 0, 6, 3, b'c', b'd', b'n', 0xC0, 16,
    ]);
    let cdn = m.len() - 6;
    m.extend_from_slice(&[
        0xC0, cdn as u8, 0, 1, 0, 1, 0, 0, 0, 30, 0, 4, 93, 184, 216, 34,
    ]);
    // TXT with two strings.
    m.extend_from_slice(&[
        0xC0, 12, 0, 16, 0, 1, 0, 0, 0, 5, 0, 6, 2, b'h', b'i', 2, b'y', b'o',
    ]);
    m
}

#[test]
fn dns_query_over_udp() {
    let mut st = AppState::new(AppConfig::default(), 17, 53);
    let mut out = Vec::new();
    st.on_datagram(CS, &dns_query(0xabcd, "www.Example.com", 1), &mut out);
    assert_eq!(st.app_proto(), Some(AppProto::Dns));
    let t = txs(&out)[0];
    assert_eq!(s(t.buffer(Buffer::DnsQuery)), "www.Example.com");
    assert_eq!(t.nums.dns_opcode, Some(0));
    assert_eq!(
        t.eve,
        json!({"type": "query", "id": 0xabcd, "rrname": "www.Example.com", "rrtype": "A",
               "tx_id": 0, "opcode": 0})
    );
}

#[test]
fn dns_response_with_compression() {
    let mut st = AppState::new(AppConfig::default(), 17, 53);
    let mut out = Vec::new();
    st.on_datagram(CS, &dns_query(0x1234, "www.example.com", 1), &mut out);
    st.on_datagram(SC, &dns_response(), &mut out);
    let t = txs(&out)[1];
    assert_eq!(t.id, 1);
    assert_eq!(s(t.buffer_in(Buffer::DnsQuery, SC)), "www.example.com");
    assert_eq!(
        t.eve,
        json!({"version": 2, "type": "answer", "id": 0x1234, "flags": "8180", "qr": true,
            "rd": true, "ra": true, "opcode": 0, "rrname": "www.example.com", "rrtype": "A",
            "rcode": "NOERROR",
            "answers": [
                {"rrname": "www.example.com", "rrtype": "CNAME", "ttl": 60, "rdata": "cdn.example.com"},
                {"rrname": "cdn.example.com", "rrtype": "A", "ttl": 30, "rdata": "93.184.216.34"},
                {"rrname": "www.example.com", "rrtype": "TXT", "ttl": 5, "rdata": "hi"},
                {"rrname": "www.example.com", "rrtype": "TXT", "ttl": 5, "rdata": "yo"}],
            "grouped": {"CNAME": ["cdn.example.com"], "A": ["93.184.216.34"], "TXT": ["hi", "yo"]}})
    );
    assert!(events(&out).is_empty(), "{:?}", events(&out));
}

/// The DNS-tunnel detector's view is typed and measured on the wire: a
/// TXT string of binary bytes counts its bytes, not the four characters
/// of each `\\xNN` escape in the EVE record.
#[test]
fn dns_observation_counts_wire_bytes() {
    let mut st = AppState::new(AppConfig::default(), 17, 53);
    let mut out = Vec::new();
    st.on_datagram(CS, &dns_query(0x1234, "www.example.com", 1), &mut out);
    let q = txs(&out)[0].dns.clone().expect("a question");
    assert_eq!(
        (q.qname.as_str(), q.rrtype, q.response, q.answer_count),
        ("www.example.com", 1, false, 0)
    );
    st.on_datagram(SC, &dns_response(), &mut out);
    let a = txs(&out)[1].dns.clone().expect("a question");
    // CNAME (6 rdata bytes), A (4), TXT (6: two strings of 2 bytes).
    assert_eq!(
        (
            a.response,
            a.rcode,
            a.answer_count,
            a.answer_bytes,
            a.txt_null_bytes
        ),
        (true, 0, 3, 16, 4)
    );

    let mut st = AppState::new(AppConfig::default(), 17, 53);
    let mut out = Vec::new();
    st.on_datagram(CS, &dns_query(7, "t.example", 16), &mut out);
    let mut m = vec![0, 7, 0x81, 0x80, 0, 1, 0, 2, 0, 0, 0, 0];
    m.extend(qname("t.example"));
    m.extend_from_slice(&[0, 16, 0, 1]);
    // TXT: one string of 3 bytes that are not UTF-8.
    m.extend_from_slice(&[0xC0, 12, 0, 16, 0, 1, 0, 0, 0, 5, 0, 4, 3, 0xff, 0xfe, 0x80]);
    // NULL: 5 bytes.
    m.extend_from_slice(&[0xC0, 12, 0, 10, 0, 1, 0, 0, 0, 5, 0, 5, 1, 2, 3, 4, 0xff]);
    st.on_datagram(SC, &m, &mut out);
    let t = txs(&out)[1];
    assert_eq!(t.eve["answers"][0]["rdata"], "\\xFF\\xFE\\x80");
    let a = t.dns.clone().expect("a question");
    assert_eq!((a.rrtype, a.answer_count, a.txt_null_bytes), (16, 2, 3 + 5));
}

#[test]
fn dns_pointer_loop_and_truncations() {
    let mut m = vec![0, 1, 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0];
    m.extend_from_slice(&[0xC0, 12, 0, 1, 0, 1]); // points at itself
    let mut o = Vec::new();
    let mut next = 0;
    dns::parse_message(
        &m,
        SC,
        &AppConfig::default(),
        &mut Out {
            v: &mut o,
            next_tx: &mut next,
        },
    );
    assert!(
        events(&o).contains(&"dns.infinite_loop"),
        "{:?}",
        events(&o)
    );
    let full = dns_response();
    for n in 0..full.len() {
        let mut o = Vec::new();
        dns::parse_message(
            &full[..n],
            SC,
            &AppConfig::default(),
            &mut Out {
                v: &mut o,
                next_tx: &mut next,
            },
        );
        assert!(!events(&o).is_empty() || n >= full.len() - 1, "prefix {n}");
    }
}

#[test]
fn dns_over_tcp_split_and_batched() {
    let q1 = dns_query(1, "a.example", 28);
    let q2 = dns_query(2, "b.example", 15);
    let mut stream = Vec::new();
    for q in [&q1, &q2] {
        stream.extend_from_slice(&(q.len() as u16).to_be_bytes());
        stream.extend_from_slice(q);
    }
    for chunk in [1, 5, 1000] {
        let (st, out) = tcp_cfg(AppConfig::default(), 53, &[(CS, &stream)], chunk);
        assert_eq!(st.app_proto(), Some(AppProto::Dns), "chunk {chunk}");
        let names: Vec<&str> = txs(&out)
            .iter()
            .map(|t| s(t.buffer(Buffer::DnsQuery)))
            .collect();
        assert_eq!(names, vec!["a.example", "b.example"], "chunk {chunk}");
        assert_eq!(txs(&out)[0].eve["rrtype"], json!("AAAA"));
    }
}

#[test]
fn dns_udp_probe_rejects_non_dns() {
    let mut st = AppState::new(AppConfig::default(), 17, 9999);
    let mut out = Vec::new();
    st.on_datagram(
        CS,
        b"\x00\x01\x02random bytes that are not dns at all",
        &mut out,
    );
    assert_eq!(st.app_proto(), None);
    // NetBIOS name service is not DNS.
    let mut st = AppState::new(AppConfig::default(), 17, 137);
    st.on_datagram(CS, &dns_query(1, "ECFCFHEDDAEDECDD", 32), &mut out);
    assert_eq!(st.app_proto(), None);
    // A response first on port 53: reversed.
    let mut st = AppState::new(AppConfig::default(), 17, 40000).with_src_port(53);
    let mut out = Vec::new();
    st.on_datagram(CS, &dns_response(), &mut out);
    assert!(st.reversed());
    assert!(!events(&out).contains(&"dns.not_a_request"));
    assert_eq!(txs(&out)[0].eve["type"], json!("answer"));
}

// ---------------------------------------------------------------- TLS

fn ext(t: u16, body: &[u8]) -> Vec<u8> {
    let mut v = t.to_be_bytes().to_vec();
    v.extend_from_slice(&(body.len() as u16).to_be_bytes());
    v.extend_from_slice(body);
    v
}

fn u16s(v: &[u16], len_bytes: usize) -> Vec<u8> {
    let mut b = Vec::new();
    let n = v.len() * 2;
    if len_bytes == 2 {
        b.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        b.push(n as u8);
    }
    for x in v {
        b.extend_from_slice(&x.to_be_bytes());
    }
    b
}

/// The JA4 README's example hello: 15 ciphers, 16 extensions, h2, TLS 1.3.
fn client_hello() -> Vec<u8> {
    let ciphers: Vec<u16> = vec![
        0x0a0a, 0x1301, 0x1302, 0x1303, 0xc02b, 0xc02f, 0xc02c, 0xc030, 0xcca9, 0xcca8, 0xc013,
        0xc014, 0x009c, 0x009d, 0x002f, 0x0035,
    ];
    let mut exts = Vec::new();
    exts.extend(ext(0x0a0a, &[]));
    let mut sni = Vec::new();
    let name = b"www.example.org";
    sni.extend_from_slice(&((name.len() + 3) as u16).to_be_bytes());
    sni.push(0);
    sni.extend_from_slice(&(name.len() as u16).to_be_bytes());
    sni.extend_from_slice(name);
    exts.extend(ext(0x0000, &sni));
    exts.extend(ext(0x0017, &[]));
    exts.extend(ext(0xff01, &[0]));
    exts.extend(ext(0x000a, &u16s(&[0x2a2a, 0x001d, 0x0017, 0x0018], 2)));
    exts.extend(ext(0x000b, &[1, 0]));
    exts.extend(ext(0x0023, &[]));
    exts.extend(ext(
        0x0010,
        &[
            0, 12, 2, b'h', b'2', 8, b'h', b't', b't', b'p', b'/', b'1', b'.', b'1',
        ],
    ));
    exts.extend(ext(0x0005, &[1, 0, 0, 0, 0]));
    let sig = [
        0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601,
    ];
    exts.extend(ext(0x000d, &u16s(&sig, 2)));
    exts.extend(ext(0x0012, &[]));
    exts.extend(ext(0x0033, &[0, 0]));
    exts.extend(ext(0x002d, &[1, 1]));
    exts.extend(ext(0x002b, &u16s(&[0x1a1a, 0x0304, 0x0303], 1)));
    exts.extend(ext(0x001b, &[2, 0, 2]));
    exts.extend(ext(0x4469, &[]));
    exts.extend(ext(0x0015, &[0, 0]));
    let mut body = vec![0x03, 0x03];
    body.extend_from_slice(&[7u8; 32]);
    body.push(0);
    body.extend(u16s(&ciphers, 2));
    body.extend_from_slice(&[1, 0]);
    body.extend_from_slice(&(exts.len() as u16).to_be_bytes());
    body.extend(exts);
    handshake(1, &body)
}

fn handshake(t: u8, body: &[u8]) -> Vec<u8> {
    let mut h = vec![t, 0, (body.len() >> 8) as u8, body.len() as u8];
    h[1] = (body.len() >> 16) as u8;
    h.extend_from_slice(body);
    h
}

fn records(t: u8, payload: &[u8], max: usize) -> Vec<u8> {
    let mut v = Vec::new();
    for c in payload.chunks(max) {
        v.extend_from_slice(&[t, 3, 3]);
        v.extend_from_slice(&(c.len() as u16).to_be_bytes());
        v.extend_from_slice(c);
    }
    v
}

fn server_flight() -> Vec<u8> {
    let mut sh = vec![0x03, 0x03];
    sh.extend_from_slice(&[9u8; 32]);
    sh.push(0);
    sh.extend_from_slice(&[0xc0, 0x2f, 0]);
    let exts = [ext(0xff01, &[0]), ext(0x000b, &[1, 0]), ext(0x0023, &[])].concat();
    sh.extend_from_slice(&(exts.len() as u16).to_be_bytes());
    sh.extend(exts);
    let cert = include_bytes!("../tests/data/cert.der");
    let mut list = Vec::new();
    for _ in 0..2 {
        list.extend_from_slice(&[0, (cert.len() >> 8) as u8, cert.len() as u8]);
        list.extend_from_slice(cert);
    }
    let mut cm = vec![0, (list.len() >> 8) as u8, list.len() as u8];
    cm.extend(list);
    let mut hs = handshake(2, &sh);
    hs.extend(handshake(11, &cm));
    hs.extend(handshake(14, &[]));
    // Handshake messages split over small records.
    records(22, &hs, 300)
}

#[test]
fn tls_client_hello_sni_ja3_ja4() {
    let ch = records(22, &client_hello(), 100);
    for chunk in [1, 7, 10_000] {
        let (st, out) = tcp_cfg(AppConfig::default(), 443, &[(CS, &ch)], chunk);
        assert_eq!(st.app_proto(), Some(AppProto::Tls));
        let t = txs(&out);
        assert_eq!(t.len(), 1, "chunk {chunk}");
        let t = t[0];
        assert!(!t.complete);
        assert_eq!(s(t.buffer(Buffer::TlsSni)), "www.example.org");
        let alpn: Vec<&[u8]> = t.buffers_in(Buffer::TlsAlpn, CS).collect();
        assert_eq!(alpn, vec![&b"h2"[..], &b"http/1.1"[..]]);
        assert_eq!(
            s(t.buffer(Buffer::Ja3String)),
            "771,4865-4866-4867-49195-49199-49196-49200-52393-52392-49171-49172-156-157-47-53,\
             0-23-65281-10-11-35-16-5-13-18-51-45-43-27-17513-21,29-23-24,0"
        );
        assert_eq!(
            s(t.buffer(Buffer::Ja3Hash)),
            util::md5_hex(t.buffer(Buffer::Ja3String).unwrap())
        );
        assert_eq!(
            s(t.buffer(Buffer::Ja4Hash)),
            "t13d1516h2_8daaf6152771_e5627efa2ab1"
        );
        assert_eq!(t.eve["sni"], json!("www.example.org"));
    }
}

#[test]
fn tls_server_flight_certificate() {
    let (_, out) = tcp(
        443,
        &[
            (CS, &records(22, &client_hello(), 16384)),
            (SC, &server_flight()),
        ],
    );
    let c = complete(&out);
    assert_eq!(c.len(), 1);
    let t = c[0];
    assert_eq!(
        s(t.buffer(Buffer::TlsCertSubject)),
        "C=JP, O=Zonewatch Test, CN=www.example.org"
    );
    assert_eq!(
        s(t.buffer(Buffer::TlsCertIssuer)),
        "C=JP, O=Zonewatch Test, CN=www.example.org"
    );
    assert_eq!(s(t.buffer(Buffer::TlsCertSerial)), "01:23:45:67:89");
    assert_eq!(
        s(t.buffer(Buffer::TlsCertFingerprint)),
        "d2:f2:2f:01:e1:eb:05:f5:0b:78:f2:18:be:07:a4:5d:53:1d:99:8a"
    );
    assert_eq!(t.buffers_in(Buffer::TlsCerts, SC).count(), 2);
    assert_eq!(t.eve["notbefore"], json!("2026-11-26T00:57:45"));
    assert_eq!(t.eve["notafter"], json!("2036-11-23T00:57:45"));
    assert_eq!(t.nums.tls_not_before, Some(1795654665));
    assert_eq!(t.eve["version"], json!("TLS 1.2"));
    assert_eq!(t.nums.tls_version, Some(0x0303));
    assert_eq!(t.eve["ja3s"]["string"], json!("771,49199,65281-11-35"));
    assert_eq!(s(t.buffer(Buffer::Ja3sString)), "771,49199,65281-11-35");
    assert!(events(&out).is_empty(), "{:?}", events(&out));
}

#[test]
fn tls_bad_records_raise_events() {
    let (_, out) = tcp(
        443,
        &[
            (CS, &records(22, &client_hello(), 16384)),
            (
                SC,
                b"\x16\x03\x03\x00\x05\x63\x00\x00\x00\x00\x99\x03\x03\x00\x01",
            ),
        ],
    );
    assert!(
        events(&out).contains(&"tls.invalid_record_type"),
        "{:?}",
        events(&out)
    );
    let mut bad = records(22, &client_hello(), 16384);
    bad.extend_from_slice(b"\x16\x03\x03\xff\x00"); // length > 2^14 + 2048
    let (_, out) = tcp(443, &[(CS, &bad)]);
    assert!(
        events(&out).contains(&"tls.invalid_record_length"),
        "{:?}",
        events(&out)
    );
    let hs = handshake(1, &[3, 3, 0]);
    let (_, out) = tcp(443, &[(CS, &records(22, &hs, 100))]);
    assert!(events(&out).contains(&"tls.invalid_handshake_message"));
}

#[test]
fn tls_every_truncation_is_safe() {
    let ch = records(22, &client_hello(), 64);
    let sf = server_flight();
    for n in (0..sf.len()).step_by(3) {
        let (mut st, mut out) = tcp(443, &[(CS, &ch[..n.min(ch.len())]), (SC, &sf[..n])]);
        st.on_close(&mut out);
    }
    // A handshake message longer than the bound stops parsing, bounded.
    let cfg = AppConfig {
        tls_max_handshake_bytes: 1000,
        ..AppConfig::default()
    };
    let big = records(22, &handshake(11, &vec![0u8; 50_000]), 16000);
    let (st, out) = tcp_cfg(
        cfg,
        443,
        &[(CS, &records(22, &client_hello(), 16384)), (SC, &big)],
        1000,
    );
    assert!(events(&out).contains(&"tls.handshake_invalid_length"));
    assert!(st.mem_bytes() < 40_000);
}

// ---------------------------------------------------------------- SSH

/// Suricata's default `encryption-handling`: payload inspection of a TLS
/// flow ends at its first application data record, not at
/// ChangeCipherSpec or the encrypted Finished; `full` keeps it.
#[test]
fn tls_payload_inspection_ends_at_application_data() {
    let ch = records(22, &client_hello(), 16384);
    let sf = server_flight();
    let mut client_fin = records(20, &[1], 100);
    client_fin.extend(records(22, &[0x55; 40], 100));
    let mut server_fin = records(20, &[1], 100);
    server_fin.extend(records(22, &[0x66; 40], 100));
    let app = records(23, &[0x77; 3000], 1000);
    let handshake: Vec<(Direction, &[u8])> =
        vec![(CS, &ch), (SC, &sf), (CS, &client_fin), (SC, &server_fin)];
    for chunk in [1, 7, 10_000] {
        let (st, _) = tcp_cfg(AppConfig::default(), 443, &handshake, chunk);
        assert!(!st.payload_inspection_over(), "chunk {chunk}");
        for dir in [CS, SC] {
            let mut parts = handshake.clone();
            parts.push((dir, &app));
            let (st, out) = tcp_cfg(AppConfig::default(), 443, &parts, chunk);
            assert!(st.payload_inspection_over(), "chunk {chunk} {dir:?}");
            assert!(events(&out).is_empty(), "{:?}", events(&out));
            let full = AppConfig {
                tls_inspect_encrypted: true,
                ..AppConfig::default()
            };
            let (st, _) = tcp_cfg(full, 443, &parts, chunk);
            assert!(!st.payload_inspection_over());
        }
    }
    // Application data from the client before the server's hello (TLS 1.3
    // early data) does not end it.
    let early = records(23, &[0x77; 100], 100);
    let (st, _) = tcp(443, &[(CS, &ch), (CS, &early)]);
    assert!(!st.payload_inspection_over());
}

/// An SSH packet before encryption: length, padding length, `payload`,
/// padding.
fn ssh_packet(payload: &[u8]) -> Vec<u8> {
    let pad = 4usize;
    let mut v = ((payload.len() + 1 + pad) as u32).to_be_bytes().to_vec();
    v.push(pad as u8);
    v.extend_from_slice(payload);
    v.extend_from_slice(&[0; 4]);
    v
}

/// SSH payload inspection ends once both sides sent NEWKEYS (Suricata's
/// SshStateFinished both ways), past the key exchange packets.
#[test]
fn ssh_payload_inspection_ends_after_both_newkeys() {
    let lists = [
        "curve25519-sha256",
        "ssh-ed25519",
        "aes128-ctr",
        "aes128-ctr",
        "hmac-sha2-256",
        "hmac-sha2-256",
        "none",
        "none",
        "",
        "",
    ];
    let mut client = b"SSH-2.0-OpenSSH_9.6\r\n".to_vec();
    client.extend(ssh_kexinit(lists));
    client.extend(ssh_packet(&[30; 37]));
    let mut server = b"SSH-2.0-OpenSSH_9.6\r\n".to_vec();
    server.extend(ssh_kexinit(lists));
    server.extend(ssh_packet(&[[31u8].as_slice(), &[9; 600]].concat()));
    let newkeys = ssh_packet(&[21]);
    let encrypted = vec![0xEEu8; 500];
    for chunk in [1, 5, 10_000] {
        let parts: Vec<(Direction, &[u8])> = vec![
            (CS, &client),
            (SC, &server),
            (SC, &newkeys),
            (SC, &encrypted),
        ];
        let (st, _) = tcp_cfg(AppConfig::default(), 22, &parts, chunk);
        assert!(
            !st.payload_inspection_over(),
            "chunk {chunk}: one side only"
        );
        let mut both = parts.clone();
        both.push((CS, &newkeys));
        both.push((CS, &encrypted));
        let (st, out) = tcp_cfg(AppConfig::default(), 22, &both, chunk);
        assert!(st.payload_inspection_over(), "chunk {chunk}");
        assert_eq!(txs(&out).len(), 1);
        let full = AppConfig {
            ssh_inspect_encrypted: true,
            ..AppConfig::default()
        };
        let (st, _) = tcp_cfg(full, 22, &both, chunk);
        assert!(!st.payload_inspection_over());
    }
}

fn ssh_kexinit(lists: [&str; 10]) -> Vec<u8> {
    let mut p = vec![20u8];
    p.extend_from_slice(&[0xAA; 16]);
    for l in lists {
        p.extend_from_slice(&(l.len() as u32).to_be_bytes());
        p.extend_from_slice(l.as_bytes());
    }
    p.extend_from_slice(&[0, 0, 0, 0, 0]);
    let pad = 4u8;
    let len = (p.len() + 1 + pad as usize) as u32;
    let mut v = len.to_be_bytes().to_vec();
    v.push(pad);
    v.extend(p);
    v.extend_from_slice(&[0; 4]);
    v
}

#[test]
fn ssh_banners_and_hassh() {
    let lists = [
        "curve25519-sha256,diffie-hellman-group14-sha256",
        "ssh-ed25519",
        "aes128-ctr,aes256-ctr",
        "aes256-ctr",
        "hmac-sha2-256",
        "hmac-sha1",
        "none,zlib@openssh.com",
        "none",
        "",
        "",
    ];
    let mut client = b"SSH-2.0-OpenSSH_8.9p1 Ubuntu-3\r\n".to_vec();
    client.extend(ssh_kexinit(lists));
    let mut server = b"Welcome banner line\r\nSSH-2.0-dropbear_2022.83\r\n".to_vec();
    server.extend(ssh_kexinit(lists));
    for chunk in [1, 9, 10_000] {
        let (st, out) = tcp_cfg(
            AppConfig::default(),
            22,
            &[(SC, &server), (CS, &client)],
            chunk,
        );
        assert_eq!(st.app_proto(), Some(AppProto::Ssh));
        let t = txs(&out);
        assert_eq!(t.len(), 1, "chunk {chunk}: {out:?}");
        let t = t[0];
        assert_eq!(s(t.buffer_in(Buffer::SshProto, CS)), "2.0");
        assert_eq!(s(t.buffer_in(Buffer::SshSoftware, CS)), "OpenSSH_8.9p1");
        assert_eq!(s(t.buffer_in(Buffer::SshSoftware, SC)), "dropbear_2022.83");
        let hs = "curve25519-sha256,diffie-hellman-group14-sha256;aes128-ctr,aes256-ctr;hmac-sha2-256;none,zlib@openssh.com";
        assert_eq!(s(t.buffer(Buffer::SshHasshString)), hs);
        assert_eq!(s(t.buffer(Buffer::SshHassh)), util::md5_hex(hs.as_bytes()));
        assert_eq!(
            s(t.buffer(Buffer::SshHasshServerString)),
            "curve25519-sha256,diffie-hellman-group14-sha256;aes256-ctr;hmac-sha1;none"
        );
        assert_eq!(t.eve["client"]["proto_version"], json!("2.0"));
        assert_eq!(
            t.eve["server"]["software_version"],
            json!("dropbear_2022.83")
        );
        assert_eq!(t.eve["client"]["hassh"]["string"], json!(hs));
    }
}

#[test]
fn ssh_bad_input() {
    let (mut st, mut out) = tcp(
        22,
        &[
            (CS, b"SSH-2.0-x\r\n"),
            (SC, b"SSH-2.0-y\r\n\x00\x00\x00\x01\x00"),
        ],
    );
    st.on_close(&mut out);
    assert!(
        events(&out).contains(&"ssh.invalid_record_length"),
        "{:?}",
        events(&out)
    );
    let mut long = b"SSH-2.0-".to_vec();
    long.extend(std::iter::repeat_n(b'a', 5000));
    let (st, out) = tcp_cfg(AppConfig::default(), 22, &[(CS, &long)], 100);
    assert!(events(&out).contains(&"ssh.long_banner"));
    assert!(st.mem_bytes() < 4096);
    let (mut st, mut out) = tcp(22, &[(SC, b"SSH-2.0-y\r\n\x7f\xff\xff\xff\x00")]);
    st.on_close(&mut out);
    assert!(events(&out).contains(&"ssh.long_kex_record"));
}

// ------------------------------------------------------- hostile input

#[test]
fn random_input_never_panics_and_stays_bounded() {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut rnd = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let seeds: Vec<Vec<u8>> = vec![
        REQ.to_vec(),
        RESP.to_vec(),
        records(22, &client_hello(), 50),
        server_flight(),
        dns_response(),
        b"SSH-2.0-x\r\n".to_vec(),
    ];
    for i in 0..3000 {
        let mut a = seeds[(rnd() % seeds.len() as u64) as usize].clone();
        let mut b = seeds[(rnd() % seeds.len() as u64) as usize].clone();
        for buf in [&mut a, &mut b] {
            for _ in 0..(rnd() % 8) {
                if buf.is_empty() {
                    break;
                }
                let p = (rnd() % buf.len() as u64) as usize;
                buf[p] = rnd() as u8;
            }
            if rnd() % 4 == 0 {
                let n = (rnd() % (buf.len() as u64 + 1)) as usize;
                buf.truncate(n);
            }
        }
        let port = [80u16, 443, 22, 53][i % 4];
        let chunk = 1 + (rnd() % 40) as usize;
        let (mut st, mut out) = tcp_cfg(
            AppConfig::default(),
            port,
            &[(CS, &a), (SC, &b), (CS, &b)],
            chunk,
        );
        st.on_gap(SC, rnd() % 100, &mut out);
        st.on_stream(SC, &a, &mut out);
        st.on_close(&mut out);
        assert!(st.mem_bytes() < 1 << 20);
        let mut u = AppState::new(AppConfig::default(), 17, 53);
        u.on_datagram(CS, &a, &mut out);
        u.on_datagram(SC, &b, &mut out);
    }
}

#[test]
fn events_render_like_suricata_and_forced_protocol() {
    let e = AppEvent {
        name: "http.request_header_invalid",
        dir: CS,
        tx_id: Some(3),
    };
    assert_eq!(e.layer(), "http");
    assert_eq!(e.eve_event(), "REQUEST_HEADER_INVALID");
    assert_eq!(AppProto::from_name("http1"), Some(AppProto::Http));
    assert_eq!(AppProto::Tls.name(), "tls");
    // A configured protocol skips detection: HTTP bytes on a forced-TLS flow
    // are a TLS error, not HTTP.
    let mut st = AppState::with_proto(AppConfig::default(), 6, 8443, AppProto::Tls);
    let mut out = Vec::new();
    st.on_stream(CS, b"GET / HTTP/1.1\r\n\r\n", &mut out);
    assert_eq!(st.app_proto(), Some(AppProto::Tls));
    assert!(events(&out).contains(&"tls.invalid_record_type"));
}

#[test]
fn udp_non_dns_gives_up_after_four_datagrams() {
    let mut st = AppState::new(AppConfig::default(), 17, 4000);
    let mut out = Vec::new();
    for _ in 0..4 {
        assert!(!st.detection_failed());
        st.on_datagram(CS, b"definitely not a dns message, just noise", &mut out);
    }
    assert!(st.detection_failed());
    // Even a valid query is not looked at any more.
    st.on_datagram(CS, &dns_query(1, "late.example", 1), &mut out);
    assert_eq!(st.app_proto(), None);
    assert!(out.is_empty());
}

/// Heartbeats in the clear, as Suricata checks them: Heartbleed's request
/// (a payload length that fills the record, no padding) is invalid from
/// its first bytes, before the announced record arrives; a payload longer
/// than the record overflows it; a well-formed one raises nothing.
#[test]
fn tls_heartbeats_are_checked() {
    let ch = records(22, &client_hello(), 16384);
    // Record of 16,368 bytes announced, payload length 16,365: no padding.
    let mut bleed = ch.clone();
    bleed.extend_from_slice(b"\x18\x03\x02\x3f\xf0\x01\x3f\xed");
    let (_, out) = tcp(443, &[(CS, &bleed)]);
    assert!(
        events(&out).contains(&"tls.invalid_heartbeat_message"),
        "{:?}",
        events(&out)
    );
    // Payload length 100 in a 20-byte record.
    let mut over = ch.clone();
    over.extend_from_slice(b"\x18\x03\x03\x00\x14\x01\x00\x64");
    over.extend_from_slice(&[0u8; 17]);
    let (_, out) = tcp(443, &[(CS, &over)]);
    assert!(
        events(&out).contains(&"tls.overflow_heartbeat_message"),
        "{:?}",
        events(&out)
    );
    // Payload 4 bytes, padding 16: fine; then the server's answer.
    let mut ok = ch;
    ok.extend_from_slice(b"\x18\x03\x03\x00\x17\x01\x00\x04");
    ok.extend_from_slice(&[0u8; 20]);
    let answer = b"\x18\x03\x03\x00\x17\x02\x00\x04\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0";
    let (_, out) = tcp(443, &[(CS, &ok), (SC, answer)]);
    assert!(
        !events(&out).iter().any(|e| e.contains("heartbeat")),
        "{:?}",
        events(&out)
    );
}

// ---------------------------------------------------------------- files

pub(crate) fn files(out: &[AppOutput]) -> Vec<&FileInfo> {
    out.iter()
        .filter_map(|o| match o {
            AppOutput::File(f) => Some(&**f),
            _ => None,
        })
        .collect()
}

fn sha256_hex(b: &[u8]) -> String {
    use sha2::Digest;
    crate::util::hex(&sha2::Sha256::digest(b))
}

#[test]
fn http_files_are_whole_decoded_bodies_past_the_body_limit() {
    let exe: Vec<u8> = b"MZ"
        .iter()
        .copied()
        .chain((0..300_000u32).map(|i| (i % 253) as u8))
        .collect();
    let body = gzip(&exe);
    let mut resp = b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nTransfer-Encoding: chunked\r\nContent-Disposition: attachment; filename=\"setup.exe\"\r\n\r\n".to_vec();
    for c in body.chunks(1000) {
        resp.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
        resp.extend_from_slice(c);
        resp.extend_from_slice(b"\r\n");
    }
    resp.extend_from_slice(b"0\r\n\r\n");
    let plain = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
    let parts: &[(Direction, &[u8])] = &[
        (CS, b"GET /dl/a.bin?x=1 HTTP/1.1\r\nHost: x\r\n\r\nGET /p/b.txt HTTP/1.1\r\nHost: x\r\n\r\n"),
        (SC, &resp),
        (SC, plain),
    ];
    for chunk in [usize::MAX, 999] {
        let (_, out) = tcp_cfg(AppConfig::default(), 80, parts, chunk);
        let f = files(&out);
        assert_eq!(f.len(), 2);
        assert_eq!(f[0].filename, b"setup.exe");
        assert_eq!(f[0].sha256, sha256_hex(&exe));
        assert_eq!(f[0].size, exe.len() as u64);
        assert_eq!(f[0].state, FileState::Closed);
        assert_eq!(f[0].proto, AppProto::Http);
        assert_eq!(f[1].filename, b"/p/b.txt");
        assert_eq!(f[1].sha256, sha256_hex(b"hello"));
        // The file comes after its transaction's record.
        let pos = |want: &dyn Fn(&AppOutput) -> bool| out.iter().position(want);
        let tx0 = pos(&|o| matches!(o, AppOutput::Tx(t) if t.complete && t.id == 0));
        let f0 = pos(&|o| matches!(o, AppOutput::File(_)));
        assert!(tx0 < f0);
        // The rule buffer stays at its limit.
        let c = complete(&out);
        assert_eq!(
            c[0].buffer(Buffer::HttpResponseBody).map(<[u8]>::len),
            Some(100 * 1024)
        );
    }
}

#[test]
fn http_file_states_gap_close_and_bomb() {
    let resp = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789";
    let mut st = AppState::new(AppConfig::default(), 6, 80);
    let mut out = Vec::new();
    st.on_stream(CS, b"GET /f HTTP/1.1\r\nHost: x\r\n\r\n", &mut out);
    st.on_stream(SC, resp, &mut out);
    st.on_gap(SC, 10, &mut out);
    st.on_stream(SC, &[b'x'; 80], &mut out);
    let f = files(&out);
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].state, FileState::Truncated);
    // Hashing stops at the gap (the rest could not make the file's hash).
    assert_eq!(f[0].size, 10);
    // Cut by the flow's end.
    let (mut st, mut out) = tcp(80, &[(CS, b"GET /f HTTP/1.1\r\n\r\n"), (SC, resp)]);
    st.on_close(&mut out);
    assert_eq!(files(&out)[0].state, FileState::Truncated);
    // A bomb is hashed up to the decompression limit only.
    let body = gzip(&vec![0u8; 8 << 20]);
    let cfg = AppConfig {
        file_decompress_limit: 1 << 20,
        ..AppConfig::default()
    };
    let resp = gzip_response(&body);
    let (_, out) = tcp_cfg(
        cfg,
        80,
        &[(CS, b"GET / HTTP/1.1\r\n\r\n"), (SC, &resp)],
        4096,
    );
    let f = files(&out);
    assert_eq!(f[0].state, FileState::Truncated);
    assert_eq!(f[0].size, 1 << 20);
}

#[test]
fn magic_names_the_common_types() {
    assert_eq!(magic(b"%PDF-1.4\n"), Some("PDF document"));
    assert_eq!(magic(b"PK\x03\x04\x14\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\x13\0\0\0[Content_Types].xml"), Some("Microsoft OOXML"));
    assert_eq!(magic(b"PK\x03\x04"), Some("Zip archive data"));
    assert_eq!(magic(b"\x7fELF\x02\x01"), Some("ELF"));
    assert_eq!(magic(b"  <!DOCTYPE html><html>"), Some("HTML document"));
    assert_eq!(
        magic(b"CWS\x0a"),
        Some("Macromedia Flash data (compressed)")
    );
    assert_eq!(magic(b"\x00\x01\x02\xff"), None);
    let mut pe = vec![0u8; 0x100];
    pe[..2].copy_from_slice(b"MZ");
    pe[0x3c] = 0x80;
    pe[0x80..0x84].copy_from_slice(b"PE\0\0");
    pe[0x80 + 24] = 0x0b;
    pe[0x80 + 25] = 0x01;
    assert_eq!(magic(&pe), Some("PE32 executable"));
    pe[0x80 + 25] = 0x02;
    assert_eq!(magic(&pe), Some("PE32+ executable"));
}
