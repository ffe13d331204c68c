//! A raw HTTP/1.1 client: the exact request bytes a test wants on the wire (no client library
//! normalising them), and a reader for one response at a time off a kept-alive connection.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// Builds an HTTP/1.1 request: request line, `Host: <host>`, `headers` in order, and
/// `Content-Length` when there is a body or the method is POST/PUT/PATCH (unless a
/// Content-Length or Transfer-Encoding header is given).
pub fn build_request(
    host: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Vec<u8> {
    let mut out = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\n");
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    let has_len = headers.iter().any(|(k, _)| {
        k.eq_ignore_ascii_case("content-length") || k.eq_ignore_ascii_case("transfer-encoding")
    });
    if !has_len && (!body.is_empty() || matches!(method, "POST" | "PUT" | "PATCH")) {
        out.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    out.push_str("\r\n");
    let mut out = out.into_bytes();
    out.extend_from_slice(body);
    out
}

/// A response as read off the wire.
#[derive(Clone)]
pub struct Resp {
    pub status: u16,
    /// `HTTP/1.1` or `HTTP/1.0`.
    pub version: String,
    /// Names as sent (case preserved) and values.
    pub headers: Vec<(String, String)>,
    /// The de-chunked body.
    pub body: Vec<u8>,
    /// Whether the body was chunked.
    pub chunked: bool,
}

impl std::fmt::Debug for Resp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resp")
            .field("status", &self.status)
            .field("headers", &self.headers)
            .field("body", &String::from_utf8_lossy(&self.body))
            .field("chunked", &self.chunked)
            .finish()
    }
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {:?}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// `x-residency-rule` split on commas.
    pub fn rules(&self) -> Vec<String> {
        self.header("x-residency-rule")
            .map(|r| {
                r.split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Asserts the three residency headers every response carries.
    pub fn assert_residency(&self, decision: &str, project: &str, region: &str) {
        assert_eq!(
            self.header("x-residency-decision"),
            Some(decision),
            "decision; {self:#?}"
        );
        assert_eq!(
            self.header("x-residency-project"),
            Some(project),
            "project; {self:#?}"
        );
        assert_eq!(
            self.header("x-residency-region"),
            Some(region),
            "region; {self:#?}"
        );
    }

    /// Asserts a policy denial: 403, x-should-retry false, the error shape, the rule.
    pub fn assert_denied(&self, rule: &str, param: Option<&str>) -> Value {
        assert_eq!(self.status, 403, "{self:#?}");
        assert_eq!(self.header("x-residency-decision"), Some("deny"), "{self:#?}");
        assert!(
            self.rules().iter().any(|r| r == rule),
            "rule {rule} not in {:?}",
            self.rules()
        );
        assert_eq!(self.header("x-should-retry"), Some("false"), "{self:#?}");
        assert!(
            self.header("content-type")
                .is_some_and(|c| c.starts_with("application/json")),
            "{self:#?}"
        );
        let v = self.json();
        let e = &v["error"];
        assert_eq!(e["type"], "invalid_request_error", "{v}");
        assert_eq!(e["code"], "residency_policy_violation", "{v}");
        assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
        match param {
            Some(p) => assert_eq!(e["param"], p, "param; {v}"),
            None => assert!(e["param"].is_null() || e["param"].is_string(), "{v}"),
        }
        assert_eq!(v.as_object().unwrap().len(), 1, "only `error` at the top: {v}");
        v
    }

    /// Asserts a non-policy error: status, code, error shape.
    pub fn assert_error(&self, status: u16, code: &str) -> Value {
        assert_eq!(self.status, status, "{self:#?}");
        let v = self.json();
        let e = &v["error"];
        assert_eq!(e["code"], code, "{v}");
        assert!(e["type"].is_string(), "{v}");
        assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
        assert!(e.get("param").is_some(), "param key present: {v}");
        v
    }
}

/// Reads the status line and headers: (status, version, headers).
pub async fn read_head<R: AsyncBufRead + Unpin>(
    r: &mut R,
) -> std::io::Result<(u16, String, Vec<(String, String)>)> {
    let mut line = String::new();
    if r.read_line(&mut line).await? == 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "no status line",
        ));
    }
    let mut parts = line.trim_end().splitn(3, ' ');
    let version = parts.next().unwrap_or_default().to_string();
    let status: u16 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line {line:?}")))?;
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).await? == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "eof in head",
            ));
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    Ok((status, version, headers))
}

/// Reads the next chunk of a chunked body; None at the last chunk (its trailers consumed).
pub async fn read_chunk<R: AsyncBufRead + Unpin>(r: &mut R) -> std::io::Result<Option<Vec<u8>>> {
    let mut size = String::new();
    if r.read_line(&mut size).await? == 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "eof before a chunk size",
        ));
    }
    let n = usize::from_str_radix(size.trim().split(';').next().unwrap_or("0").trim(), 16)
        .map_err(|e| std::io::Error::other(format!("bad chunk size {size:?}: {e}")))?;
    if n == 0 {
        // Trailers, then the empty line.
        loop {
            let mut t = String::new();
            if r.read_line(&mut t).await? == 0 || t.trim_end().is_empty() {
                return Ok(None);
            }
        }
    }
    let mut data = vec![0u8; n];
    r.read_exact(&mut data).await?;
    let mut crlf = [0u8; 2];
    r.read_exact(&mut crlf).await?;
    Ok(Some(data))
}

/// Reads one whole response (Content-Length, chunked, or until EOF); a body cut short is an
/// error.
pub async fn read_response<R: AsyncBufRead + Unpin>(r: &mut R, head_only: bool) -> std::io::Result<Resp> {
    read_response_body(r, head_only, false).await
}

/// [`read_response`]; with `cut_ok`, a body cut short (the connection ended, a chunked body
/// without its last chunk) is what arrived, not an error: a truncated stream is a result.
async fn read_response_body<R: AsyncBufRead + Unpin>(
    r: &mut R,
    head_only: bool,
    cut_ok: bool,
) -> std::io::Result<Resp> {
    let (status, version, headers) = read_head(r).await?;
    let get = |n: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(n))
            .map(|(_, v)| v.clone())
    };
    let chunked = get("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    let mut body = Vec::new();
    if head_only || status == 204 || status == 304 || (100..200).contains(&status) {
    } else if chunked {
        loop {
            match read_chunk(r).await {
                Ok(Some(c)) => body.extend_from_slice(&c),
                Ok(None) => break,
                Err(_) if cut_ok => break,
                Err(e) => return Err(e),
            }
        }
    } else if let Some(len) = get("content-length") {
        let n: u64 = len
            .parse()
            .map_err(|_| std::io::Error::other("bad content-length"))?;
        (&mut *r).take(n).read_to_end(&mut body).await?;
        if (body.len() as u64) < n && !cut_ok {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "body shorter than its content-length",
            ));
        }
    } else {
        r.read_to_end(&mut body).await?;
    }
    Ok(Resp {
        status,
        version,
        headers,
        body,
        chunked,
    })
}

/// An open connection that reads a response incrementally.
pub struct Conn {
    r: BufReader<TcpStream>,
}

impl Conn {
    /// Connects to `addr` and writes `request`.
    pub async fn open(addr: SocketAddr, request: &[u8]) -> Conn {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(request).await.unwrap();
        Conn {
            r: BufReader::new(stream),
        }
    }

    /// The socket, to write more (a pipelined request, the rest of a body).
    pub fn stream(&mut self) -> &mut TcpStream {
        self.r.get_mut()
    }

    /// Reads the status line and headers; None on EOF or a malformed head.
    pub async fn head(&mut self) -> Option<(u16, Vec<(String, String)>)> {
        read_head(&mut self.r).await.ok().map(|(s, _, h)| (s, h))
    }

    /// Reads the next chunk of a chunked body; None at the last chunk or EOF.
    pub async fn chunk(&mut self) -> Option<Vec<u8>> {
        read_chunk(&mut self.r).await.ok().flatten()
    }

    /// Reads exactly `n` body bytes (fewer on EOF).
    pub async fn exact(&mut self, n: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(n);
        let _ = (&mut self.r).take(n as u64).read_to_end(&mut out).await;
        out
    }

    /// Reads until EOF.
    pub async fn read_rest(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        let _ = self.r.read_to_end(&mut out).await;
        out
    }

    /// Reads one whole response; None when the connection ends before its head. A body cut
    /// short is returned as far as it came.
    pub async fn response(&mut self, head_request: bool) -> Option<Resp> {
        read_response_body(&mut self.r, head_request, true).await.ok()
    }
}

/// Sends `request` on a fresh connection, reads one response (30 s limit).
pub async fn send_raw(addr: SocketAddr, request: &[u8]) -> Resp {
    let head = request.starts_with(b"HEAD ");
    let fut = async {
        let mut c = Conn::open(addr, request).await;
        c.response(head).await
    };
    match tokio::time::timeout(Duration::from_secs(30), fut).await {
        Ok(Some(r)) => r,
        Ok(None) => panic!("the proxy closed the connection without a response"),
        Err(_) => panic!("no response within 30 s"),
    }
}

/// One request built from parts, on a fresh connection.
pub async fn http1_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Resp {
    send_raw(addr, &build_request(addr, method, path, headers, body)).await
}

/// Reads a response from a raw stream until EOF, a whole Content-Length response, or
/// `limit`, tolerating a reset after the response; the bytes read.
pub async fn read_until_close(stream: &mut TcpStream, limit: Duration) -> Vec<u8> {
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(limit, async {
        let mut tmp = [0u8; 8192];
        loop {
            match stream.read(&mut tmp).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    buf.extend_from_slice(&tmp[..n]);
                    if response_complete(&buf) {
                        break;
                    }
                }
            }
        }
    })
    .await;
    buf
}

/// Whether `buf` holds a whole response with a Content-Length body.
fn response_complete(buf: &[u8]) -> bool {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
    let len = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok());
    len.is_some_and(|n| buf.len() >= end + 4 + n)
}

/// The status of raw response bytes.
pub fn status_of(raw: &[u8]) -> Option<u16> {
    let s = String::from_utf8_lossy(raw);
    s.lines().next()?.split(' ').nth(1)?.parse().ok()
}

/// The JSON body of raw response bytes.
pub fn body_of(raw: &[u8]) -> Value {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    serde_json::from_slice(&raw[end + 4..])
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(raw)))
}
