//! A small blocking HTTP/1.1 client for the webhook and HEC transports, over
//! the same TCP connect and rustls setup as syslog+tls. One request per
//! connection (`Connection: close`): no pooled connection can go stale
//! between batches, and each request has one deadline that covers connect,
//! TLS handshake, sending and the whole response.
//!
//! The receiver is not trusted: the response head is at most
//! [`MAX_HEAD`] bytes, the body at most [`MAX_BODY`], and every read and
//! write is bounded by the request's deadline, so a receiver that stalls,
//! drips bytes or sends garbage costs at most the timeout and yields an
//! error, never a hang or a panic.

use std::{
    io::{self, Read, Write},
    net::TcpStream,
    sync::Arc,
    time::{Duration, Instant},
};

use rustls::{ClientConfig, ClientConnection, StreamOwned};

use crate::{
    ShipError,
    dest::Destination,
    tls,
    transport::{tcp_connect, transport_error},
};

/// Longest response head (status line and headers) accepted.
pub const MAX_HEAD: usize = 16 << 10;
/// Longest response body accepted (HEC answers are tiny; webhooks' bodies
/// are ignored beyond an excerpt).
pub const MAX_BODY: usize = 1 << 20;
/// Most interim (1xx) responses skipped before the final one.
const MAX_INTERIM: usize = 8;

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum HttpError {
    #[error("malformed HTTP response: {0}")]
    Malformed(String),
    #[error("HTTP response too large: {0}")]
    TooLarge(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub reason: String,
    /// Header names lowercased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The start of the body as one line of printable text, for errors.
    pub fn excerpt(&self) -> String {
        let s: String = String::from_utf8_lossy(&self.body[..self.body.len().min(300)])
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        s.trim().to_string()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Length(usize),
    Chunked,
    UntilClose,
}

fn malformed(why: impl Into<String>) -> HttpError {
    HttpError::Malformed(why.into())
}

fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Parses a response head at the start of `buf`: Ok(None) while it is
/// incomplete, else (status, reason, headers, head length).
#[allow(clippy::type_complexity)]
fn parse_head(
    buf: &[u8],
) -> Result<Option<(u16, String, Vec<(String, String)>, usize)>, HttpError> {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        if buf.len() > MAX_HEAD {
            return Err(HttpError::TooLarge(format!(
                "no end of the header within {MAX_HEAD} bytes"
            )));
        }
        return Ok(None);
    };
    if end + 4 > MAX_HEAD {
        return Err(HttpError::TooLarge(format!(
            "a header of {} bytes (at most {MAX_HEAD})",
            end + 4
        )));
    }
    let head =
        std::str::from_utf8(&buf[..end]).map_err(|_| malformed("the header is not UTF-8"))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let rest = status_line
        .strip_prefix("HTTP/1.1 ")
        .or_else(|| status_line.strip_prefix("HTTP/1.0 "))
        .ok_or_else(|| malformed(format!("not an HTTP/1.x status line: {status_line:.80}")))?;
    let (code, reason) = rest.split_once(' ').unwrap_or((rest, ""));
    if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(malformed(format!("bad status code `{code:.10}`")));
    }
    let status: u16 = code.parse().map_err(|_| malformed("bad status code"))?;
    if !(100..=599).contains(&status) {
        return Err(malformed(format!("status code {status} out of range")));
    }
    let mut headers = Vec::new();
    for line in lines {
        if line.starts_with([' ', '\t']) {
            return Err(malformed("folded header lines are not allowed"));
        }
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| malformed(format!("a header line without `:`: {line:.80}")))?;
        if name.is_empty() || !name.bytes().all(is_token_char) {
            return Err(malformed(format!("bad header name `{name:.40}`")));
        }
        if value.bytes().any(|b| b.is_ascii_control() && b != b'\t') {
            return Err(malformed(format!("control characters in header `{name}`")));
        }
        headers.push((name.to_ascii_lowercase(), value.trim().to_string()));
    }
    Ok(Some((status, reason.trim().to_string(), headers, end + 4)))
}

fn framing(
    status: u16,
    headers: &[(String, String)],
    head_request: bool,
) -> Result<Framing, HttpError> {
    if head_request || status == 204 || status == 304 || (100..200).contains(&status) {
        return Ok(Framing::Length(0));
    }
    let te: Vec<&str> = headers
        .iter()
        .filter(|(n, _)| n == "transfer-encoding")
        .map(|(_, v)| v.as_str())
        .collect();
    if !te.is_empty() {
        if te.len() == 1 && te[0].eq_ignore_ascii_case("chunked") {
            return Ok(Framing::Chunked);
        }
        return Err(malformed(format!(
            "unsupported Transfer-Encoding `{:.60}`",
            te.join(", ")
        )));
    }
    let mut len = None;
    for (_, v) in headers.iter().filter(|(n, _)| n == "content-length") {
        if v.is_empty() || v.len() > 19 || !v.bytes().all(|b| b.is_ascii_digit()) {
            return Err(malformed(format!("bad Content-Length `{v:.30}`")));
        }
        let n: u64 = v.parse().map_err(|_| malformed("bad Content-Length"))?;
        if len.is_some_and(|l| l != n) {
            return Err(malformed("conflicting Content-Length headers"));
        }
        len = Some(n);
    }
    match len {
        Some(n) if n > MAX_BODY as u64 => Err(HttpError::TooLarge(format!(
            "a body of {n} bytes (at most {MAX_BODY})"
        ))),
        Some(n) => Ok(Framing::Length(n as usize)),
        None => Ok(Framing::UntilClose),
    }
}

/// Decodes a chunked body at the start of `buf`: Ok(None) while incomplete.
fn parse_chunked(buf: &[u8]) -> Result<Option<Vec<u8>>, HttpError> {
    let mut body = Vec::new();
    let mut i = 0;
    loop {
        let Some(nl) = buf[i..].windows(2).position(|w| w == b"\r\n") else {
            if buf.len() - i > 1024 {
                return Err(malformed("a chunk-size line longer than 1 KiB"));
            }
            return Ok(None);
        };
        let line = &buf[i..i + nl];
        let size_text = line.split(|&b| b == b';').next().unwrap_or(b"");
        let size_text = std::str::from_utf8(size_text)
            .map_err(|_| malformed("a chunk size is not text"))?
            .trim_end_matches([' ', '\t']);
        if size_text.is_empty()
            || size_text.len() > 8
            || !size_text.bytes().all(|b| b.is_ascii_hexdigit())
        {
            return Err(malformed(format!("bad chunk size `{size_text:.20}`")));
        }
        let size = usize::from_str_radix(size_text, 16).map_err(|_| malformed("bad chunk size"))?;
        if body.len() + size > MAX_BODY {
            return Err(HttpError::TooLarge(format!(
                "a chunked body over {MAX_BODY} bytes"
            )));
        }
        i += nl + 2;
        if size == 0 {
            // Trailers, then an empty line.
            loop {
                let Some(nl) = buf[i..].windows(2).position(|w| w == b"\r\n") else {
                    if buf.len() - i > MAX_HEAD {
                        return Err(HttpError::TooLarge("chunked trailers".into()));
                    }
                    return Ok(None);
                };
                i += nl + 2;
                if nl == 0 {
                    return Ok(Some(body));
                }
            }
        }
        if buf.len() < i + size + 2 {
            return Ok(None);
        }
        body.extend_from_slice(&buf[i..i + size]);
        i += size;
        if &buf[i..i + 2] != b"\r\n" {
            return Err(malformed("a chunk does not end with CRLF"));
        }
        i += 2;
    }
}

/// Parses a whole response from what was read so far; `eof`: the server
/// closed its side. Ok(None): read more. Interim 1xx responses are skipped.
pub fn parse_response(buf: &[u8], eof: bool) -> Result<Option<Response>, HttpError> {
    let mut start = 0;
    for _ in 0..=MAX_INTERIM {
        let Some((status, reason, headers, used)) = parse_head(&buf[start..])? else {
            return if eof {
                Err(malformed(if start == buf.len() && start == 0 {
                    "the server closed the connection without a response".to_string()
                } else {
                    "the server closed the connection inside the header".to_string()
                }))
            } else {
                Ok(None)
            };
        };
        let body_at = start + used;
        if (100..200).contains(&status) {
            if status == 101 {
                return Err(malformed("the server switched protocols (101)"));
            }
            start = body_at;
            continue;
        }
        let rest = &buf[body_at..];
        let body = match framing(status, &headers, false)? {
            Framing::Length(n) => {
                if rest.len() < n {
                    if eof {
                        return Err(malformed(format!(
                            "the body ended after {} of {n} bytes",
                            rest.len()
                        )));
                    }
                    return Ok(None);
                }
                rest[..n].to_vec()
            }
            Framing::Chunked => match parse_chunked(rest)? {
                Some(b) => b,
                None if eof => return Err(malformed("the chunked body was cut off")),
                None => return Ok(None),
            },
            Framing::UntilClose => {
                if rest.len() > MAX_BODY {
                    return Err(HttpError::TooLarge(format!("a body over {MAX_BODY} bytes")));
                }
                if !eof {
                    return Ok(None);
                }
                rest.to_vec()
            }
        };
        return Ok(Some(Response {
            status,
            reason,
            headers,
            body,
        }));
    }
    Err(malformed(format!(
        "more than {MAX_INTERIM} interim (1xx) responses"
    )))
}

/// Where and how to send requests for one destination.
pub struct Client {
    pub dest: Destination,
    pub tls: Option<Arc<ClientConfig>>,
    pub server_name: Option<String>,
    pub connect_timeout: Duration,
    /// The whole request: connect, handshake, send, response.
    pub timeout: Duration,
}

enum Stream {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
}

impl Stream {
    fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(s) => s,
            Stream::Tls(s) => s.get_ref(),
        }
    }
}

fn left(deadline: Instant) -> Option<Duration> {
    let d = deadline.saturating_duration_since(Instant::now());
    (!d.is_zero()).then_some(d)
}

impl Client {
    fn err(&self, why: impl std::fmt::Display) -> ShipError {
        transport_error(&self.dest, why)
    }

    fn timed_out(&self, what: &str) -> ShipError {
        self.err(format!(
            "no complete HTTP response within {} ms ({what})",
            self.timeout.as_millis()
        ))
    }

    fn open(&self, deadline: Instant) -> Result<Stream, ShipError> {
        let connect = self
            .connect_timeout
            .min(left(deadline).ok_or_else(|| self.timed_out("connecting"))?);
        let sock = tcp_connect(&self.dest, connect)?;
        let Some(cfg) = self.tls.clone() else {
            return Ok(Stream::Plain(sock));
        };
        let name = tls::server_name(self.server_name.as_deref().unwrap_or(&self.dest.host))?;
        let mut conn =
            ClientConnection::new(cfg, name).map_err(|e| self.err(format!("TLS: {e}")))?;
        let mut sock = sock;
        while conn.is_handshaking() {
            let d = left(deadline).ok_or_else(|| self.timed_out("TLS handshake"))?;
            let _ = sock.set_read_timeout(Some(d));
            let _ = sock.set_write_timeout(Some(d));
            conn.complete_io(&mut sock).map_err(|e| {
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) {
                    self.timed_out("TLS handshake")
                } else {
                    self.err(format!(
                        "TLS handshake with {} failed: {e}",
                        self.dest.addr()
                    ))
                }
            })?;
        }
        Ok(Stream::Tls(Box::new(StreamOwned::new(conn, sock))))
    }

    /// Sends one request and reads its response, all within the timeout.
    /// `headers` must be header-safe (the callers build them).
    pub fn request(
        &self,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<Response, ShipError> {
        let deadline = Instant::now() + self.timeout;
        let mut s = self.open(deadline)?;
        let mut head = format!(
            "{method} {target} HTTP/1.1\r\nHost: {}\r\nUser-Agent: sandbox-audit/{}\r\n\
             Connection: close\r\nContent-Length: {}\r\n",
            self.dest.addr(),
            env!("CARGO_PKG_VERSION"),
            body.len()
        );
        for (n, v) in headers {
            head.push_str(n);
            head.push_str(": ");
            head.push_str(v);
            head.push_str("\r\n");
        }
        head.push_str("\r\n");
        let mut out = head.into_bytes();
        out.extend_from_slice(body);
        // Bounded pieces: a receiver that reads slowly cannot stretch a
        // write past the deadline.
        for piece in out.chunks(64 << 10) {
            let d = left(deadline).ok_or_else(|| self.timed_out("sending the request"))?;
            let _ = s.tcp().set_write_timeout(Some(d));
            let r = match &mut s {
                Stream::Plain(t) => t.write_all(piece),
                Stream::Tls(t) => t.write_all(piece).and_then(|_| t.flush()),
            };
            r.map_err(|e| match e.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
                    self.timed_out("sending the request")
                }
                _ => self.err(format!("sending the request: {e}")),
            })?;
        }
        let mut buf = Vec::new();
        let mut chunk = [0u8; 16 << 10];
        loop {
            let d = left(deadline).ok_or_else(|| self.timed_out("waiting for the response"))?;
            let _ = s.tcp().set_read_timeout(Some(d));
            let r = match &mut s {
                Stream::Plain(t) => t.read(&mut chunk),
                Stream::Tls(t) => t.read(&mut chunk),
            };
            let eof = match r {
                Ok(0) => true,
                Ok(n) => {
                    buf.extend_from_slice(&chunk[..n]);
                    false
                }
                // A TLS peer that hangs up without close_notify: the end
                // of what it sent.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => true,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err(self.timed_out("waiting for the response"));
                }
                Err(e) => return Err(self.err(format!("reading the response: {e}"))),
            };
            match parse_response(&buf, eof) {
                Ok(Some(r)) => {
                    if let Stream::Tls(t) = &mut s {
                        t.conn.send_close_notify();
                        let _ = t.flush();
                    }
                    let _ = s.tcp().shutdown(std::net::Shutdown::Both);
                    return Ok(r);
                }
                Ok(None) => {}
                Err(e) => return Err(self.err(e)),
            }
        }
    }
}

/// How a status code is handled: 2xx accepted; 408, 429 and 5xx are worth
/// retrying; anything else (3xx, other 4xx) will not get better by
/// resending the same batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Accepted,
    Retry,
    Permanent,
}

pub fn verdict(status: u16) -> Verdict {
    match status {
        200..=299 => Verdict::Accepted,
        408 | 429 | 500..=599 => Verdict::Retry,
        _ => Verdict::Permanent,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &[u8]) -> Response {
        parse_response(s, false).unwrap().unwrap()
    }

    #[test]
    fn parses_length_chunked_and_until_close_bodies() {
        let r = ok(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: b \r\n\r\nhello");
        assert_eq!((r.status, r.reason.as_str()), (200, "OK"));
        assert_eq!(r.body, b"hello");
        assert_eq!(r.header("x-a"), Some("b"));
        let r = ok(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
                     3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nTrailer: x\r\n\r\n");
        assert_eq!(r.body, b"abcde");
        assert_eq!(
            parse_response(b"HTTP/1.0 503 Busy\r\n\r\npartial", false),
            Ok(None)
        );
        let r = parse_response(b"HTTP/1.0 503 Busy\r\n\r\npartial", true)
            .unwrap()
            .unwrap();
        assert_eq!((r.status, r.body.as_slice()), (503, &b"partial"[..]));
        let r = ok(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n");
        assert_eq!((r.status, r.body.len()), (204, 0));
    }

    #[test]
    fn incomplete_responses_wait() {
        let full = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc";
        for n in 0..full.len() {
            assert_eq!(parse_response(&full[..n], false), Ok(None), "{n}");
            assert!(parse_response(&full[..n], true).is_err(), "{n} at eof");
        }
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
        for n in 0..chunked.len() {
            assert_eq!(parse_response(&chunked[..n], false), Ok(None), "{n}");
        }
    }

    #[test]
    fn malformed_responses_are_errors_not_panics() {
        let cases: &[&[u8]] = &[
            b"HTTP/2 200 OK\r\n\r\n",
            b"SSH-2.0-OpenSSH\r\n\r\n",
            b"HTTP/1.1 20 OK\r\n\r\n",
            b"HTTP/1.1 2000 OK\r\n\r\n",
            b"HTTP/1.1 abc OK\r\n\r\n",
            b"HTTP/1.1 099 Low\r\n\r\n",
            b"HTTP/1.1 600 High\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
            b"HTTP/1.1 200 OK\r\n: empty name\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nX: a\r\n folded\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nX: a\x01b\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 1e3\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nabc",
            b"HTTP/1.1 200 OK\r\nContent-Length: 2000000\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n123456789\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcXY0\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1fffff\r\n",
            b"HTTP/1.1 101 Switching\r\n\r\n",
            b"HTTP/1.1 200 \xff\xfe\r\n\r\n",
        ];
        for c in cases {
            assert!(
                parse_response(c, false).is_err(),
                "{:?}",
                String::from_utf8_lossy(c)
            );
        }
        // Endless interim responses, an endless header, an endless body.
        let interim = b"HTTP/1.1 100 Continue\r\n\r\n".repeat(MAX_INTERIM + 2);
        assert!(parse_response(&interim, false).is_err());
        let mut endless = b"HTTP/1.1 200 OK\r\n".to_vec();
        endless.extend(b"X: y\r\n".repeat(MAX_HEAD / 6 + 1));
        assert!(matches!(
            parse_response(&endless, false),
            Err(HttpError::TooLarge(_))
        ));
        let mut long = b"HTTP/1.1 200 OK\r\n\r\n".to_vec();
        long.extend(vec![b'a'; MAX_BODY + 1]);
        assert!(matches!(
            parse_response(&long, false),
            Err(HttpError::TooLarge(_))
        ));
        let mut chunks = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        for _ in 0..(MAX_BODY / 0xffff + 2) {
            chunks.extend(b"ffff\r\n");
            chunks.extend(vec![b'a'; 0xffff]);
            chunks.extend(b"\r\n");
        }
        assert!(matches!(
            parse_response(&chunks, false),
            Err(HttpError::TooLarge(_))
        ));
        assert!(
            parse_response(b"", true)
                .unwrap_err()
                .to_string()
                .contains("without a response")
        );
    }

    #[test]
    fn status_verdicts() {
        assert_eq!(verdict(200), Verdict::Accepted);
        assert_eq!(verdict(204), Verdict::Accepted);
        for s in [408, 429, 500, 502, 503, 504] {
            assert_eq!(verdict(s), Verdict::Retry, "{s}");
        }
        for s in [301, 400, 401, 403, 404, 413] {
            assert_eq!(verdict(s), Verdict::Permanent, "{s}");
        }
    }
}
