//! Our own HTTP/1.1 client, for requests whose body is already in memory (every inspected
//! request, and bodiless ones). It runs in the task of the request that uses it: the head and
//! body go out in one vectored write, the response head is parsed with httparse where it was
//! read, and a response whose body arrived with its head goes back to the client without
//! another read or task wake-up.
//!
//! Why not hyper's client here: it drives each connection from a task of its own, so every
//! request crosses two channels and wakes a second task twice; on the benchmark's shared core
//! that machinery cost more than all of our inspection. Streaming request bodies and upgrades
//! still go through hyper (see `super`).
//!
//! What it refuses (each ends the connection; the request gets a 502): a response head that is
//! malformed or larger than [`MAX_HEAD_BYTES`], a `101` to a request that asked for no upgrade,
//! `Content-Length` values that disagree, a chunked body that breaks its framing, a connection
//! that closes before its body is complete.

use super::chunked::{ChunkedDecoder, Decoded};
use super::Origin;
use crate::body::{BoxError, ProxyBody};
use bytes::{Bytes, BytesMut};
use http::header::{HeaderName, HeaderValue, CONNECTION, CONTENT_LENGTH, TRANSFER_ENCODING};
use http::{HeaderMap, Method, Request, Response, StatusCode, Version};
use http_body::{Body, Frame, SizeHint};
use std::future::poll_fn;
use std::io::{self, IoSlice};
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite};

/// The largest response head accepted (as hyper's client).
pub const MAX_HEAD_BYTES: usize = 64 * 1024;
const MAX_HEADERS: usize = 100;
/// How much room a read asks for.
const READ_SIZE: usize = 16 * 1024;

/// A transport the client can run over: TCP, TLS, a tunnel.
pub trait Transport: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Transport for T {}

/// One HTTP/1.1 connection with its read buffer. Between requests the buffer is empty.
pub struct H1Conn {
    io: Box<dyn Transport>,
    buf: BytesMut,
    /// The request head being written; kept to reuse its allocation.
    head: Vec<u8>,
}

/// Why a request on an [`H1Conn`] failed.
#[derive(Debug)]
pub enum H1Error {
    Io(io::Error),
    /// The upstream answered something that is not a valid HTTP/1.1 response.
    Protocol(&'static str),
}

impl std::fmt::Display for H1Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            H1Error::Io(e) => write!(f, "{e}"),
            H1Error::Protocol(what) => f.write_str(what),
        }
    }
}

impl std::error::Error for H1Error {}

impl From<io::Error> for H1Error {
    fn from(e: io::Error) -> Self {
        H1Error::Io(e)
    }
}

/// How a response body is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Length {
    Empty,
    Fixed(u64),
    Chunked,
    /// Until the upstream closes: the connection cannot be reused.
    Close,
}

/// Whether `req` can go through this client: its body is in memory and it asks for no
/// protocol switch.
pub fn eligible(req: &Request<ProxyBody>) -> bool {
    matches!(
        req.body(),
        ProxyBody::Empty | ProxyBody::Full(_) | ProxyBody::Chunks { .. }
    ) && !req.headers().contains_key(http::header::UPGRADE)
        && req.method() != Method::CONNECT
}

impl H1Conn {
    pub fn new(io: impl Transport) -> H1Conn {
        H1Conn {
            io: Box::new(io),
            buf: BytesMut::new(),
            head: Vec::new(),
        }
    }

    /// Whether an idle connection is still usable: the upstream has neither closed it nor sent
    /// anything since its last response. It costs no system call while nothing arrived: the
    /// runtime's cached readiness answers.
    pub fn is_open(&mut self) -> bool {
        if !self.buf.is_empty() {
            return false;
        }
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let mut probe = [0u8; 1];
        let mut rb = tokio::io::ReadBuf::new(&mut probe);
        matches!(Pin::new(&mut self.io).poll_read(&mut cx, &mut rb), Poll::Pending)
    }

    /// Sends `req` (origin-form target, `Host` set) and reads the response head. The returned
    /// body gives the connection back to `origin` when it ends, if it can carry another request.
    pub async fn send(
        mut self,
        req: Request<ProxyBody>,
        origin: &Arc<Origin>,
    ) -> Result<Response<ProxyBody>, H1Error> {
        let (parts, body) = req.into_parts();
        let chunks: Vec<Bytes> = match body {
            ProxyBody::Full(Some(b)) => vec![b],
            ProxyBody::Chunks { chunks, .. } => chunks.collect(),
            _ => Vec::new(),
        };
        let body_len: u64 = chunks.iter().map(|c| c.len() as u64).sum();
        encode_head(&mut self.head, &parts, body_len);
        let head = std::mem::take(&mut self.head);
        tokio::task::yield_now().await;
        // The whole request, unless the upstream answered early (then the rest is not sent
        // and the connection is not reused).
        let complete = self.write_request(&head, &chunks).await?;
        self.head = head;
        let method_is_head = parts.method == Method::HEAD;
        let (response, length, keep_alive) = self.read_head(method_is_head).await?;
        let reusable = keep_alive && complete;
        Ok(self.into_response(response, length, reusable, origin))
    }

    /// Writes head and body in as few writes as the socket allows. While a write waits, a
    /// response that starts early ends the write: `Ok(false)`.
    async fn write_request(&mut self, head: &[u8], chunks: &[Bytes]) -> Result<bool, H1Error> {
        let mut written = 0usize;
        let total = head.len() + chunks.iter().map(Bytes::len).sum::<usize>();
        poll_fn(|cx| loop {
            if written == total {
                return Poll::Ready(Ok(true));
            }
            let mut slices: [IoSlice<'_>; 16] = std::array::from_fn(|_| IoSlice::new(&[]));
            let n = fill_slices(&mut slices, head, chunks, written);
            match Pin::new(&mut self.io).poll_write_vectored(cx, &slices[..n]) {
                Poll::Ready(Ok(0)) => {
                    return Poll::Ready(Err(io::Error::from(io::ErrorKind::WriteZero).into()))
                }
                Poll::Ready(Ok(w)) => written += w,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e.into())),
                Poll::Pending => {
                    return match ready!(self.poll_fill(cx)) {
                        Ok(0) => Poll::Ready(Err(H1Error::Protocol(
                            "the upstream closed the connection while the request was sent",
                        ))),
                        Ok(_) => Poll::Ready(Ok(false)),
                        Err(e) => Poll::Ready(Err(e.into())),
                    };
                }
            }
        })
        .await?;
        let complete = written == total;
        poll_fn(|cx| Pin::new(&mut self.io).poll_flush(cx)).await?;
        Ok(complete)
    }

    /// Reads more bytes into the buffer; `Ok(0)` at the end of the stream.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        if self.buf.capacity() - self.buf.len() < READ_SIZE / 4 {
            self.buf.reserve(READ_SIZE);
        }
        tokio_util::io::poll_read_buf(Pin::new(&mut self.io), cx, &mut self.buf)
    }

    /// Reads until a final response head is complete (interim 1xx heads are skipped) and
    /// takes it off the buffer.
    async fn read_head(&mut self, method_is_head: bool) -> Result<(Response<()>, Length, bool), H1Error> {
        loop {
            if !self.buf.is_empty() {
                match parse_head(&mut self.buf, method_is_head)? {
                    Some(Parsed::Interim) => continue,
                    Some(Parsed::Final(r, length, keep)) => return Ok((r, length, keep)),
                    None => {}
                }
            }
            if self.buf.len() > MAX_HEAD_BYTES {
                return Err(H1Error::Protocol("the response head is too large"));
            }
            if poll_fn(|cx| self.poll_fill(cx)).await? == 0 {
                return Err(H1Error::Protocol(
                    "the upstream closed the connection before a response",
                ));
            }
        }
    }

    fn into_response(
        mut self,
        head: Response<()>,
        length: Length,
        reusable: bool,
        origin: &Arc<Origin>,
    ) -> Response<ProxyBody> {
        // The common case: the whole body came with the head.
        let whole = match length {
            Length::Empty => Some(Bytes::new()),
            Length::Fixed(n) if self.buf.len() as u64 >= n => Some(self.buf.split_to(n as usize).freeze()),
            _ => None,
        };
        if let Some(body) = whole {
            // Bytes after a complete response were never asked for: the connection is not reused.
            if reusable && self.buf.is_empty() {
                origin.checkin_raw(self);
            }
            return head.map(|()| ProxyBody::full(body));
        }
        let state = match length {
            Length::Fixed(n) => BodyState::Fixed(n),
            Length::Chunked => BodyState::Chunked(ChunkedDecoder::new()),
            _ => BodyState::Close,
        };
        head.map(|()| {
            ProxyBody::Upstream(H1Body {
                conn: Some(self),
                state,
                back: reusable.then(|| origin.clone()),
            })
        })
    }
}

/// Fills `slices` with what is left to write after `written` bytes of `head ++ chunks`.
fn fill_slices<'a>(slices: &mut [IoSlice<'a>], head: &'a [u8], chunks: &'a [Bytes], written: usize) -> usize {
    let mut skip = written;
    let mut n = 0;
    for part in std::iter::once(head).chain(chunks.iter().map(|c| &c[..])) {
        if n == slices.len() {
            break;
        }
        if skip >= part.len() {
            skip -= part.len();
            continue;
        }
        if let Some(rest) = part.get(skip..) {
            slices[n] = IoSlice::new(rest);
            n += 1;
        }
        skip = 0;
    }
    n
}

/// The request head: request line, the headers as given except the framing ones, and our own
/// `Content-Length`.
fn encode_head(out: &mut Vec<u8>, parts: &http::request::Parts, body_len: u64) {
    out.clear();
    out.extend_from_slice(parts.method.as_str().as_bytes());
    out.push(b' ');
    let target = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    for (name, value) in &parts.headers {
        if name == CONTENT_LENGTH || name == TRANSFER_ENCODING {
            continue;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    // The body's own length is what frames it, whatever the headers said.
    let payload_method = matches!(parts.method, Method::POST | Method::PUT | Method::PATCH);
    if body_len > 0 || payload_method {
        out.extend_from_slice(b"content-length: ");
        push_decimal(out, body_len);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

fn push_decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

enum Parsed {
    /// A 1xx head, taken off the buffer.
    Interim,
    Final(Response<()>, Length, bool),
}

/// Parses a response head at the front of `buf`; `None` when it is not complete yet. A
/// complete head is split off the buffer, and the header values point into it (no copy).
fn parse_head(buf: &mut BytesMut, method_is_head: bool) -> Result<Option<Parsed>, H1Error> {
    let mut headers = [MaybeUninit::<httparse::Header<'_>>::uninit(); MAX_HEADERS];
    let mut res = httparse::Response::new(&mut []);
    let base = buf.as_ptr() as usize;
    let n = match httparse::ParserConfig::default().parse_response_with_uninit_headers(
        &mut res,
        buf,
        &mut headers,
    ) {
        Ok(httparse::Status::Complete(n)) if n <= MAX_HEAD_BYTES => n,
        Ok(httparse::Status::Complete(_)) => return Err(H1Error::Protocol("the response head is too large")),
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(H1Error::Protocol("the upstream sent a malformed response head")),
    };
    let code = res.code.unwrap_or(0);
    let status =
        StatusCode::from_u16(code).map_err(|_| H1Error::Protocol("the upstream sent an invalid status"))?;
    if status == StatusCode::SWITCHING_PROTOCOLS {
        return Err(H1Error::Protocol("the upstream switched protocols unasked"));
    }
    let version = if res.version == Some(0) {
        Version::HTTP_10
    } else {
        Version::HTTP_11
    };
    // Where each name and value lies in the head, so the values can share its memory.
    let mut spans = [(0usize, 0usize, 0usize, 0usize); MAX_HEADERS];
    let count = res.headers.len();
    for (span, h) in spans.iter_mut().zip(res.headers.iter()) {
        let name = h.name.as_ptr() as usize - base;
        let value = h.value.as_ptr() as usize - base;
        *span = (name, name + h.name.len(), value, value + h.value.len());
    }
    let head = buf.split_to(n).freeze();
    if status.is_informational() {
        return Ok(Some(Parsed::Interim));
    }
    let mut map = HeaderMap::with_capacity(count);
    for &(ns, ne, vs, ve) in spans.iter().take(count) {
        let name = head
            .get(ns..ne)
            .and_then(|b| HeaderName::from_bytes(b).ok())
            .ok_or(H1Error::Protocol("the upstream sent an invalid header name"))?;
        let value = HeaderValue::from_maybe_shared(head.slice(vs..ve))
            .map_err(|_| H1Error::Protocol("the upstream sent an invalid header value"))?;
        map.append(name, value);
    }
    let (length, framing_keep) = body_length(&map, status, method_is_head)?;
    let keep_alive = framing_keep && version == Version::HTTP_11 && !has_token(&map, CONNECTION, "close");
    let mut response = Response::new(());
    *response.status_mut() = status;
    *response.version_mut() = version;
    *response.headers_mut() = map;
    Ok(Some(Parsed::Final(response, length, keep_alive)))
}

/// How the body is delimited, and whether that framing lets the connection be reused.
fn body_length(
    headers: &HeaderMap,
    status: StatusCode,
    method_is_head: bool,
) -> Result<(Length, bool), H1Error> {
    if method_is_head || status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED {
        return Ok((Length::Empty, true));
    }
    if headers.contains_key(TRANSFER_ENCODING) {
        // The last coding decides; with a Content-Length too, the message is framed by the
        // coding and the connection closed after it (RFC 9112 §6.3).
        let chunked = headers
            .get_all(TRANSFER_ENCODING)
            .iter()
            .next_back()
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit(',').next())
            .is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"));
        let alone = !headers.contains_key(CONTENT_LENGTH);
        return Ok(if chunked {
            (Length::Chunked, alone)
        } else {
            (Length::Close, false)
        });
    }
    let mut length: Option<u64> = None;
    for value in headers.get_all(CONTENT_LENGTH) {
        for part in value.as_bytes().split(|&b| b == b',') {
            let n = parse_decimal(trim(part))
                .ok_or(H1Error::Protocol("the upstream sent an invalid Content-Length"))?;
            if length.is_some_and(|l| l != n) {
                return Err(H1Error::Protocol(
                    "the upstream sent conflicting Content-Length values",
                ));
            }
            length = Some(n);
        }
    }
    Ok(match length {
        Some(0) => (Length::Empty, true),
        Some(n) => (Length::Fixed(n), true),
        None => (Length::Close, false),
    })
}

fn trim(b: &[u8]) -> &[u8] {
    let start = b
        .iter()
        .position(|c| !matches!(c, b' ' | b'\t'))
        .unwrap_or(b.len());
    let end = b
        .iter()
        .rposition(|c| !matches!(c, b' ' | b'\t'))
        .map_or(start, |e| e + 1);
    b.get(start..end).unwrap_or_default()
}

fn parse_decimal(b: &[u8]) -> Option<u64> {
    if b.is_empty() || b.len() > 19 {
        return None;
    }
    b.iter().try_fold(0u64, |n, &c| {
        c.is_ascii_digit().then(|| n * 10 + u64::from(c - b'0'))
    })
}

fn has_token(headers: &HeaderMap, name: HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|v| {
        v.to_str()
            .is_ok_and(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    })
}

enum BodyState {
    Fixed(u64),
    Chunked(ChunkedDecoder),
    Close,
    Done,
}

/// A response body still arriving on its connection; it gives the connection back to the
/// pool when it ends, if it can carry another request.
pub struct H1Body {
    conn: Option<H1Conn>,
    state: BodyState,
    back: Option<Arc<Origin>>,
}

impl H1Body {
    fn finish(&mut self) {
        self.state = BodyState::Done;
        if let (Some(conn), Some(origin)) = (self.conn.take(), self.back.take()) {
            // Bytes beyond the body were never asked for: the connection is not reused.
            if conn.buf.is_empty() {
                origin.checkin_raw(conn);
            }
        }
    }

    fn fail(&mut self, e: H1Error) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.state = BodyState::Done;
        self.conn = None;
        Poll::Ready(Some(Err(Box::new(e))))
    }
}

impl Body for H1Body {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        loop {
            let Some(conn) = this.conn.as_mut() else {
                return Poll::Ready(None);
            };
            match &mut this.state {
                BodyState::Done => return Poll::Ready(None),
                BodyState::Fixed(remaining) => {
                    if !conn.buf.is_empty() {
                        let take = conn
                            .buf
                            .len()
                            .min(usize::try_from(*remaining).unwrap_or(usize::MAX));
                        let data = conn.buf.split_to(take).freeze();
                        *remaining -= take as u64;
                        if *remaining == 0 {
                            // Released with the last frame: servers stop polling a body
                            // that says it has ended.
                            this.finish();
                        }
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                }
                BodyState::Chunked(decoder) => match decoder.decode(&mut conn.buf) {
                    Ok(Decoded::Data(data)) => return Poll::Ready(Some(Ok(Frame::data(data)))),
                    Ok(Decoded::End { trailers }) => {
                        this.finish();
                        return Poll::Ready(if trailers.is_empty() {
                            None
                        } else {
                            Some(Ok(Frame::trailers(trailers)))
                        });
                    }
                    Ok(Decoded::NeedMore) => {}
                    Err(e) => return this.fail(H1Error::Protocol(e.0)),
                },
                BodyState::Close => {
                    if !conn.buf.is_empty() {
                        let data = conn.buf.split().freeze();
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                }
            }
            // Nothing buffered: read more.
            let Some(conn) = this.conn.as_mut() else {
                return Poll::Ready(None);
            };
            match ready!(conn.poll_fill(cx)) {
                Ok(0) => {
                    if matches!(this.state, BodyState::Close) {
                        this.state = BodyState::Done;
                        this.conn = None;
                        return Poll::Ready(None);
                    }
                    return this.fail(H1Error::Protocol(
                        "the upstream closed the connection before the body was complete",
                    ));
                }
                Ok(_) => {}
                Err(e) => return this.fail(H1Error::Io(e)),
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.state, BodyState::Done) || matches!(self.state, BodyState::Fixed(0))
    }

    fn size_hint(&self) -> SizeHint {
        match self.state {
            BodyState::Fixed(n) => SizeHint::with_exact(n),
            BodyState::Done => SizeHint::with_exact(0),
            _ => SizeHint::default(),
        }
    }
}

#[cfg(test)]
#[path = "h1_tests.rs"]
mod tests;
