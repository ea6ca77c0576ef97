//! Rule buffers: one variant per Suricata sticky buffer, with the legacy
//! content-modifier names, the direction each belongs to and the protocol
//! that fills it.

use crate::AppProto;

/// Which side of a transaction a buffer is filled from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BufferDir {
    /// Only from to_server data (requests, queries, ClientHello, client banner).
    ToServer,
    /// Only from to_client data (responses, ServerHello, certificates, server banner).
    ToClient,
    /// From either side; [`crate::Transaction::buffer_in`] picks one.
    Both,
}

macro_rules! buffers {
    ($( $(#[$m:meta])* $v:ident = $name:literal, $proto:ident, $dir:ident, [$($legacy:literal),*] ;)*) => {
        /// A buffer a rule can inspect (Suricata sticky buffer).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Buffer {
            $( $(#[$m])* $v, )*
        }

        impl Buffer {
            /// Every buffer, in declaration order.
            pub const ALL: &'static [Buffer] = &[$(Buffer::$v),*];

            /// The sticky-buffer keyword (`http.uri`).
            pub fn name(self) -> &'static str {
                match self { $(Buffer::$v => $name,)* }
            }

            /// The protocol whose transactions fill this buffer.
            pub fn proto(self) -> AppProto {
                match self { $(Buffer::$v => AppProto::$proto,)* }
            }

            /// The side of the transaction that fills it.
            pub fn dir(self) -> BufferDir {
                match self { $(Buffer::$v => BufferDir::$dir,)* }
            }

            /// Legacy content modifiers / old keyword spellings for this buffer.
            pub fn legacy_names(self) -> &'static [&'static str] {
                match self { $(Buffer::$v => &[$($legacy),*],)* }
            }

            /// Looks a rule keyword up: sticky names (`http.uri`), legacy
            /// modifiers (`http_uri`, `uricontent`), and the underscore
            /// spellings Suricata also accepts (`http_host`, `tls_sni`,
            /// `ja3_hash`). Case-sensitive, as Suricata's keyword table is.
            pub fn from_keyword(kw: &str) -> Option<Buffer> {
                $(
                    if kw == $name $(|| kw == $legacy)* {
                        return Some(Buffer::$v);
                    }
                )*
                None
            }
        }
    };
}

buffers! {
    /// Request method (`GET`).
    HttpMethod = "http.method", Http, ToServer, ["http_method"];
    /// Normalized request URI (percent-decoded path and query, dot segments removed).
    HttpUri = "http.uri", Http, ToServer, ["http_uri", "uricontent"];
    /// The request-target exactly as on the request line.
    HttpUriRaw = "http.uri.raw", Http, ToServer, ["http_raw_uri"];
    /// Host header (or absolute-URI authority) lowercased, without port.
    HttpHost = "http.host", Http, ToServer, ["http_host"];
    /// Host header value as sent (case and port kept).
    HttpHostRaw = "http.host.raw", Http, ToServer, ["http_raw_host"];
    /// User-Agent value.
    HttpUserAgent = "http.user_agent", Http, ToServer, ["http_user_agent"];
    /// Normalized headers: `Name: value\r\n` per header (folded lines joined,
    /// surrounding whitespace trimmed, repeated names merged with `, `), no
    /// start line, without Cookie (request) / Set-Cookie (response), as
    /// Suricata builds it.
    HttpHeader = "http.header", Http, Both, ["http_header"];
    /// The header block as received (after the start line, up to and
    /// including the empty line).
    HttpHeaderRaw = "http.header.raw", Http, Both, ["http_raw_header"];
    /// `\r\nName1\r\nName2\r\n\r\n`: header names in order.
    HttpHeaderNames = "http.header_names", Http, Both, ["http_header_names"];
    /// Cookie (request) / Set-Cookie (response) value.
    HttpCookie = "http.cookie", Http, Both, ["http_cookie"];
    /// Content-Type value.
    HttpContentType = "http.content_type", Http, Both, ["http_content_type"];
    /// Content-Length value.
    HttpContentLen = "http.content_len", Http, Both, ["http_content_len"];
    /// Request line without CRLF.
    HttpRequestLine = "http.request_line", Http, ToServer, ["http_request_line"];
    /// Request body (de-chunked), up to the configured depth.
    HttpRequestBody = "http.request_body", Http, ToServer, ["http_client_body"];
    /// Status code (`200`).
    HttpStatCode = "http.stat_code", Http, ToClient, ["http_stat_code"];
    /// Status message (`OK`).
    HttpStatMsg = "http.stat_msg", Http, ToClient, ["http_stat_msg"];
    /// Response line without CRLF.
    HttpResponseLine = "http.response_line", Http, ToClient, ["http_response_line"];
    /// Response body (de-chunked, gzip/deflate decoded), up to the configured depth.
    HttpResponseBody = "http.response_body", Http, ToClient, ["http_server_body", "file_data", "file.data"];
    /// Protocol string of the start line (`HTTP/1.1`).
    HttpProtocol = "http.protocol", Http, Both, ["http_protocol"];
    /// Server header value.
    HttpServer = "http.server", Http, ToClient, ["http_server"];
    /// Location header value.
    HttpLocation = "http.location", Http, ToClient, ["http_location"];
    /// Accept header value.
    HttpAccept = "http.accept", Http, ToServer, ["http_accept"];
    /// Accept-Encoding header value.
    HttpAcceptEnc = "http.accept_enc", Http, ToServer, ["http_accept_enc"];
    /// Accept-Language header value.
    HttpAcceptLang = "http.accept_lang", Http, ToServer, ["http_accept_lang"];
    /// Connection header value.
    HttpConnection = "http.connection", Http, Both, ["http_connection"];
    /// Referer header value.
    HttpReferer = "http.referer", Http, ToServer, ["http_referer"];
    /// Start line, CRLF, normalized headers (cookies included), CRLF.
    HttpStart = "http.start", Http, Both, ["http_start"];
    /// One value per request header: `Name: value` (multi-valued).
    HttpRequestHeader = "http.request_header", Http, ToServer, [];
    /// One value per response header: `Name: value` (multi-valued).
    HttpResponseHeader = "http.response_header", Http, ToClient, [];
    /// DNS question name(s), dotted, as on the wire (multi-valued).
    DnsQuery = "dns.query", Dns, ToServer, ["dns_query"];
    /// TLS SNI host name.
    TlsSni = "tls.sni", Tls, ToServer, ["tls_sni"];
    /// Server certificate subject (`C=US, O=..., CN=...`).
    TlsCertSubject = "tls.cert_subject", Tls, ToClient, ["tls_cert_subject"];
    /// Server certificate issuer.
    TlsCertIssuer = "tls.cert_issuer", Tls, ToClient, ["tls_cert_issuer"];
    /// Server certificate serial (`0A:1B:...`).
    TlsCertSerial = "tls.cert_serial", Tls, ToClient, ["tls_cert_serial"];
    /// Server certificate SHA-1 fingerprint (`aa:bb:...`).
    TlsCertFingerprint = "tls.cert_fingerprint", Tls, ToClient, ["tls_cert_fingerprint"];
    /// Every certificate of the chain, DER (multi-valued).
    TlsCerts = "tls.certs", Tls, ToClient, [];
    /// JA3 hash (md5, lowercase hex).
    Ja3Hash = "ja3.hash", Tls, ToServer, ["ja3_hash"];
    /// JA3 string.
    Ja3String = "ja3.string", Tls, ToServer, ["ja3_string"];
    /// JA3S hash.
    Ja3sHash = "ja3s.hash", Tls, ToClient, ["ja3s_hash"];
    /// JA3S string.
    Ja3sString = "ja3s.string", Tls, ToClient, ["ja3s_string"];
    /// JA4 fingerprint (`t13d1516h2_8daaf6152771_b186095e22b6`).
    Ja4Hash = "ja4.hash", Tls, ToServer, [];
    /// ALPN protocols offered by the client (multi-valued).
    TlsAlpn = "tls.alpn", Tls, ToServer, [];
    /// SSH protocol version (`2.0`).
    SshProto = "ssh.proto", Ssh, Both, ["ssh_proto"];
    /// SSH software version (`OpenSSH_8.9p1`).
    SshSoftware = "ssh.software", Ssh, Both, ["ssh_software"];
    /// HASSH (client, md5 lowercase hex).
    SshHassh = "ssh.hassh", Ssh, ToServer, ["ssh_hassh"];
    /// HASSH string (client).
    SshHasshString = "ssh.hassh.string", Ssh, ToServer, ["ssh_hassh_string"];
    /// HASSH-server hash.
    SshHasshServer = "ssh.hassh.server", Ssh, ToClient, ["ssh_hassh_server"];
    /// HASSH-server string.
    SshHasshServerString = "ssh.hassh.server.string", Ssh, ToClient, ["ssh_hassh_server_string"];
    /// HELO/EHLO argument.
    SmtpHelo = "smtp.helo", Smtp, ToServer, [];
    /// MAIL FROM argument (`<a@b>`).
    SmtpMailFrom = "smtp.mail_from", Smtp, ToServer, [];
    /// RCPT TO arguments (multi-valued).
    SmtpRcptTo = "smtp.rcpt_to", Smtp, ToServer, [];
    /// The message's From header value.
    EmailFrom = "email.from", Smtp, ToServer, [];
    /// The message's Subject header value.
    EmailSubject = "email.subject", Smtp, ToServer, [];
    /// The message's To header value.
    EmailTo = "email.to", Smtp, ToServer, [];
    /// The message's Cc header value.
    EmailCc = "email.cc", Smtp, ToServer, [];
    /// Decoded attachment data, up to the configured depth, one value per
    /// attachment (`file_data` / `file.data` in an smtp rule).
    SmtpFileData = "smtp.file_data", Smtp, ToServer, [];
}

impl Buffer {
    /// Whether a transaction may hold several values of this buffer
    /// ([`crate::Transaction::buffers`] yields them all;
    /// [`crate::Transaction::buffer`] the first).
    pub fn multi_valued(self) -> bool {
        matches!(
            self,
            Buffer::DnsQuery
                | Buffer::TlsCerts
                | Buffer::TlsAlpn
                | Buffer::HttpRequestHeader
                | Buffer::HttpResponseHeader
                | Buffer::SmtpRcptTo
                | Buffer::SmtpFileData
        )
    }

    /// The buffer a protocol-neutral keyword means in a rule of protocol
    /// `proto`: `file_data` is the HTTP response body, or in an smtp rule
    /// the attachments' data.
    pub fn for_proto(self, proto: AppProto) -> Buffer {
        match (self, proto) {
            (Buffer::HttpResponseBody, AppProto::Smtp) => Buffer::SmtpFileData,
            (b, _) => b,
        }
    }
}
