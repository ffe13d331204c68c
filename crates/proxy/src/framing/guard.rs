//! The IO wrapper between an accepted HTTP/1 stream and hyper: it runs the [`Tracker`] over
//! the bytes hyper reads and, on a refused head, answers 400 itself and ends the input there,
//! so hyper never sees (and never dispatches) that request.

use super::{Step, Tracker};
use crate::error::ProxyError;
use crate::headers;
use policy::{Decision, Verdict};
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Wraps the server side of one connection. Pass-through once the tracker stops following.
#[derive(Debug)]
pub struct FramingGuard<T> {
    inner: T,
    /// None: every byte passes unchanged (h2, upgraded, or off).
    tracker: Option<Tracker>,
    /// Bytes read from `inner` and not yet given to hyper: the first `ready` may be; the rest
    /// are a request head not yet complete, held so hyper never buffers part of a refused one.
    held: Vec<u8>,
    ready: usize,
    /// After `ready` is drained, report EOF (the client's EOF, or a refusal).
    eof: bool,
    reply: Option<Reply>,
}

#[derive(Debug)]
struct Reply {
    bytes: Vec<u8>,
    written: usize,
    /// Written as soon as the refusal is seen: no earlier request on this connection can
    /// still be answering. Otherwise it waits until hyper shuts the connection down after
    /// its last response, so the answers stay in order.
    now: bool,
}

impl<T> FramingGuard<T> {
    /// Follows HTTP/1 framing (plain connections, and TLS without h2 negotiated).
    pub fn new(inner: T) -> FramingGuard<T> {
        Self::with(inner, Some(Tracker::new()))
    }

    /// Passes every byte unchanged (TLS with h2 negotiated).
    pub fn passthrough(inner: T) -> FramingGuard<T> {
        Self::with(inner, None)
    }

    fn with(inner: T, tracker: Option<Tracker>) -> FramingGuard<T> {
        FramingGuard {
            inner,
            tracker,
            held: Vec::new(),
            ready: 0,
            eof: false,
            reply: None,
        }
    }
}

impl<T> FramingGuard<T> {
    /// The stream underneath.
    pub fn get_ref(&self) -> &T {
        &self.inner
    }

    /// Gives back the memory of emptied buffers (before the connection waits parked).
    pub fn release(&mut self) {
        if self.held.is_empty() {
            self.held = Vec::new();
        }
        if let Some(t) = self.tracker.as_mut() {
            t.release();
        }
    }
}

impl<T> crate::keepalive::AtRest for FramingGuard<T> {
    fn at_rest(&self) -> Option<u64> {
        let tracker = self.tracker.as_ref()?;
        let quiet = self.held.is_empty() && self.ready == 0 && !self.eof && self.reply.is_none();
        (quiet && tracker.at_boundary()).then(|| tracker.requests())
    }
}

/// The complete `400 invalid_request` response, with the headers every refusal carries.
pub fn refusal_bytes() -> Vec<u8> {
    let e =
        ProxyError::BadRequest("a request may not carry both Content-Length and Transfer-Encoding".into());
    let mut res = e.into_response();
    let decision = Decision {
        verdict: Verdict::Deny,
        rules: policy::RuleSet::default(),
        denial: None,
        rewrites: policy::Rewrites::default(),
    };
    headers::set_residency(res.headers_mut(), &decision, None, None);
    let body = e.body_json();
    let status = res.status();
    let mut out = format!(
        "HTTP/1.1 {} {}\r\n",
        status.as_str(),
        status.canonical_reason().unwrap_or("")
    )
    .into_bytes();
    for (name, value) in res.headers() {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("content-length: {}\r\nconnection: close\r\n\r\n", body.len()).as_bytes());
    out.extend_from_slice(body.as_bytes());
    out
}

impl<T: AsyncRead + AsyncWrite + Unpin> FramingGuard<T> {
    fn refuse(&mut self, now: bool) {
        tracing::info!("refused a request head with both Content-Length and Transfer-Encoding");
        self.tracker = None;
        self.eof = true;
        if !now {
            // hyper (without half-close) drops in-flight requests when it reads EOF mid-message,
            // but never reads while its buffer holds bytes. An empty line keeps its buffer
            // non-empty until the earlier requests are answered, and it skips that line
            // before it reads our EOF, closes cleanly, and shuts down: then the 400 goes out.
            self.held.extend_from_slice(b"\r\n");
            self.ready = self.held.len();
        }
        self.reply = Some(Reply {
            bytes: refusal_bytes(),
            written: 0,
            now,
        });
    }

    fn poll_reply(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let Some(r) = &mut self.reply {
            while r.written < r.bytes.len() {
                let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &r.bytes[r.written..]))?;
                if n == 0 {
                    return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                }
                r.written += n;
            }
            ready!(Pin::new(&mut self.inner).poll_flush(cx))?;
            self.reply = None;
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncRead for FramingGuard<T> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.ready > 0 {
                let n = this.ready.min(buf.remaining());
                buf.put_slice(&this.held[..n]);
                this.held.drain(..n);
                this.ready -= n;
                return Poll::Ready(Ok(()));
            }
            if this.reply.as_ref().is_some_and(|r| r.now) {
                ready!(this.poll_reply(cx))?;
            }
            if this.eof {
                return Poll::Ready(Ok(()));
            }
            let Some(tracker) = this.tracker.as_mut() else {
                return Pin::new(&mut this.inner).poll_read(cx, buf);
            };
            if this.held.is_empty() {
                // The common case: read straight into hyper's buffer, hold back only a partial head.
                let before = buf.filled().len();
                ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
                let n = buf.filled().len() - before;
                if n == 0 {
                    return Poll::Ready(Ok(()));
                }
                match tracker.feed(&buf.filled()[before..]) {
                    Step::Pass => {
                        let hold = tracker.held().min(n);
                        if tracker.is_off() {
                            this.tracker = None;
                        }
                        if hold > 0 {
                            this.held.extend_from_slice(&buf.filled()[before + n - hold..]);
                            buf.set_filled(before + n - hold);
                        }
                        if n > hold {
                            return Poll::Ready(Ok(()));
                        }
                    }
                    Step::Refuse { keep } => {
                        let first = tracker.requests() == 0;
                        buf.set_filled(before + keep.min(n));
                        this.refuse(first);
                        if keep > 0 {
                            return Poll::Ready(Ok(()));
                        }
                    }
                }
            } else {
                let mut scratch = [0u8; 8192];
                let mut rb = ReadBuf::new(&mut scratch);
                ready!(Pin::new(&mut this.inner).poll_read(cx, &mut rb))?;
                let new = rb.filled();
                if new.is_empty() {
                    // EOF inside a head: hyper gets what it would have had, and judges it.
                    this.ready = this.held.len();
                    this.eof = true;
                    this.tracker = None;
                    continue;
                }
                match tracker.feed(new) {
                    Step::Pass => {
                        this.held.extend_from_slice(new);
                        this.ready = this.held.len() - tracker.held().min(this.held.len());
                        if tracker.is_off() {
                            this.tracker = None;
                            this.ready = this.held.len();
                        }
                    }
                    Step::Refuse { keep } => {
                        let first = tracker.requests() == 0;
                        // keep > 0: the held head completed in this read, before the refused
                        // one began. keep == 0: everything held was the refused head.
                        if keep == 0 {
                            this.held.clear();
                        }
                        this.held.extend_from_slice(&new[..keep.min(new.len())]);
                        this.ready = this.held.len();
                        this.refuse(first);
                    }
                }
            }
        }
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncWrite for FramingGuard<T> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        // A deferred refusal goes out after hyper's last response; a failed write still closes.
        if ready!(this.poll_reply(cx)).is_err() {
            this.reply = None;
        }
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}
