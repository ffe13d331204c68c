//! Idle keep-alive connections without hyper's buffers.
//!
//! hyper's HTTP/1 server keeps an 8 KiB read buffer, an 8 KiB write buffer, its connection
//! state and a header timer for the whole life of a connection, also while it waits for the
//! next request of a keep-alive client: about 23 KiB per idle connection, against nginx's
//! 0.6 KiB (nginx frees its buffers between requests). So a plain HTTP/1 connection that has
//! waited [`PARK_AFTER`] for its next request is *parked*: hyper's connection is ended at that
//! request boundary without closing the socket (it was idle, so nothing is cut and no header
//! changes), and the socket waits for readability on its own, holding only the framing guard
//! (its tracker carries on, so its decisions are those of one unbroken byte stream). When bytes
//! arrive, a fresh hyper HTTP/1 connection serves them. A parked connection is closed when the
//! keep-alive wait reaches `request_header_secs`, as hyper's header timer would have done.
//!
//! Parking is decided at rest only: every request head the tracker passed was dispatched, every
//! dispatched response body was dropped by hyper (so its last byte was handed to hyper), every
//! byte hyper wrote was flushed, no head or body is part-read, and the socket has nothing to
//! read. HTTP/2, upgraded and TLS connections are never parked.

use crate::pipeline::Tracked;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// How long a connection waits for its next request inside hyper before it is parked. A busy
/// keep-alive connection (its next request arrives within a millisecond) never parks, so it
/// does not pay for a new hyper connection per request (parking at once cost 7% more
/// instructions per request under `wrk -c8`); a longer delay leaves more connections holding
/// hyper's buffers while many open at once, a peak glibc keeps (10,000 idle: 2.3 KiB per
/// connection at 10 ms, 3.5 KiB at 50 ms; 2,000 idle: 13 KiB at 500 ms).
pub const PARK_AFTER: Duration = Duration::from_millis(10);

/// What the service, the response bodies and the IO of one TCP connection tell each other.
#[derive(Debug, Default)]
pub struct Counters {
    /// Requests hyper handed to the service.
    dispatched: AtomicU64,
    /// Response bodies hyper dropped (after their end, or on an error).
    ended: AtomicU64,
    /// Set at rest, just before the driver asks hyper to end the connection: its shutdown then
    /// hands the IO back instead of closing it.
    park: AtomicBool,
}

impl Counters {
    /// Called by the service for each request.
    pub fn dispatch(&self) {
        self.dispatched.fetch_add(1, Ordering::Relaxed);
    }

    /// Whether the IO asked to be parked (the driver then ends hyper's connection).
    pub fn wants_park(&self) -> bool {
        self.park.load(Ordering::Acquire)
    }

    /// The parked IO is served again, by a new hyper connection.
    pub fn unpark(&self) {
        self.park.store(false, Ordering::Release);
    }
}

/// A response body that counts its end (its drop) on its connection's [`Counters`].
pub struct Counted {
    body: Tracked,
    counters: Arc<Counters>,
}

impl Counted {
    pub fn new(body: Tracked, counters: Arc<Counters>) -> Counted {
        Counted { body, counters }
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.counters.ended.fetch_add(1, Ordering::Release);
    }
}

impl Body for Counted {
    type Data = Bytes;
    type Error = crate::BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// An IO that can tell whether it is between requests with nothing left to read.
pub trait AtRest {
    /// Some(request heads passed so far) when at a request boundary with no byte held; None
    /// while inside a head or body, or when not following HTTP/1 (h2, upgraded, off).
    fn at_rest(&self) -> Option<u64>;
}

/// Where a parked IO is handed back, with the moment its idle wait began.
pub type Slot<T> = Arc<Mutex<Option<(T, Instant)>>>;

/// The IO given to hyper for a connection that may be parked.
pub struct Parkable<T> {
    io: Option<T>,
    counters: Arc<Counters>,
    slot: Slot<T>,
    /// A write went out since the last flush hyper asked for.
    dirty: bool,
    /// `dispatched` when the current idle wait began, and when.
    idle_mark: Option<(u64, Instant)>,
    timer: Option<Pin<Box<Sleep>>>,
}

impl<T: AsyncRead + AsyncWrite + AtRest + Unpin> Parkable<T> {
    pub fn new(io: T, counters: Arc<Counters>, slot: Slot<T>) -> Parkable<T> {
        Parkable {
            io: Some(io),
            counters,
            slot,
            dirty: false,
            idle_mark: None,
            timer: None,
        }
    }

    /// After a read found nothing: whether the connection is at rest and has been for
    /// [`PARK_AFTER`]. Arms (or moves) the timer that wakes the connection to check again.
    fn idle_long_enough(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(io) = self.io.as_ref() else {
            return false;
        };
        let dispatched = self.counters.dispatched.load(Ordering::Relaxed);
        // Before its first request a connection is hyper's version detection, not an idle
        // HTTP/1 connection (ending it would close the socket); `request_header_secs` bounds it.
        let at_rest = dispatched > 0
            && !self.dirty
            && io.at_rest() == Some(dispatched)
            && self.counters.ended.load(Ordering::Acquire) == dispatched;
        if !at_rest {
            return false;
        }
        let since = match self.idle_mark {
            Some((d, since)) if d == dispatched => since,
            _ => {
                let now = Instant::now();
                self.idle_mark = Some((dispatched, now));
                now
            }
        };
        let due = since + PARK_AFTER;
        // One timer per connection, moved only when it fires early: a busy connection
        // re-arms it at most once per PARK_AFTER, not once per request. It is polled (which
        // registers this task's waker) when armed or fired, not at every idle wait.
        let timer = match self.timer.as_mut() {
            Some(t) if !t.is_elapsed() => return false,
            Some(t) => t,
            None => self.timer.insert(Box::pin(tokio::time::sleep_until(due))),
        };
        loop {
            if timer.as_mut().poll(cx).is_pending() {
                return false;
            }
            if timer.deadline() >= due {
                return true;
            }
            timer.as_mut().reset(due);
        }
    }
}

impl<T: AsyncRead + AsyncWrite + AtRest + Unpin> AsyncRead for Parkable<T> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let Some(io) = this.io.as_mut() else {
            return Poll::Ready(Err(io::ErrorKind::NotConnected.into()));
        };
        let r = Pin::new(io).poll_read(cx, buf);
        if r.is_pending() && this.idle_long_enough(cx) {
            this.counters.park.store(true, Ordering::Release);
        }
        r
    }
}

impl<T: AsyncRead + AsyncWrite + AtRest + Unpin> AsyncWrite for Parkable<T> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.dirty = true;
        match this.io.as_mut() {
            Some(io) => Pin::new(io).poll_write(cx, buf),
            None => Poll::Ready(Err(io::ErrorKind::NotConnected.into())),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.dirty = true;
        match this.io.as_mut() {
            Some(io) => Pin::new(io).poll_write_vectored(cx, bufs),
            None => Poll::Ready(Err(io::ErrorKind::NotConnected.into())),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.io.as_ref().is_some_and(|io| io.is_write_vectored())
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let Some(io) = this.io.as_mut() else {
            return Poll::Ready(Ok(()));
        };
        let r = Pin::new(io).poll_flush(cx);
        if matches!(r, Poll::Ready(Ok(()))) {
            this.dirty = false;
        }
        r
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.counters.park.load(Ordering::Acquire) {
            // hyper ends the idle connection it was asked to end: keep the socket open.
            if let (Some(io), Some((_, since))) = (this.io.take(), this.idle_mark) {
                if let Ok(mut slot) = this.slot.lock() {
                    *slot = Some((io, since));
                }
            }
            return Poll::Ready(Ok(()));
        }
        match this.io.as_mut() {
            Some(io) => Pin::new(io).poll_shutdown(cx),
            None => Poll::Ready(Ok(())),
        }
    }
}

/// The end of the drain (SIGTERM): every connection watches it; `shutdown` tells them and
/// waits until each has ended. (hyper-util's `GracefulShutdown` watches one hyper connection
/// per watcher; a parked connection goes through several.)
pub struct Drain {
    tx: tokio::sync::watch::Sender<bool>,
}

impl Drain {
    pub fn new() -> Drain {
        Drain {
            tx: tokio::sync::watch::channel(false).0,
        }
    }

    /// Held by a connection for its whole life; its value turns true when the drain starts.
    pub fn watcher(&self) -> tokio::sync::watch::Receiver<bool> {
        self.tx.subscribe()
    }

    /// Tells every connection to finish (serving requests end their response, then close;
    /// idle and parked ones close now) and waits until all have.
    pub async fn shutdown(self) {
        let _ = self.tx.send(true);
        self.tx.closed().await;
    }
}

/// A hyper connection that can be asked to end gracefully.
pub trait Graceful {
    fn graceful_shutdown(self: Pin<&mut Self>);
}

impl<I, S, E, B> Graceful for hyper_util::server::conn::auto::UpgradeableConnection<'_, I, S, E>
where
    S: hyper::service::HttpService<hyper::body::Incoming, ResBody = B>,
    S::Error: Into<crate::BoxError>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin,
    B: Body + 'static,
    B::Error: Into<crate::BoxError>,
    E: hyper_util::server::conn::auto::HttpServerConnExec<S::Future, B>,
{
    fn graceful_shutdown(self: Pin<&mut Self>) {
        hyper_util::server::conn::auto::UpgradeableConnection::graceful_shutdown(self);
    }
}

impl<I, S, B> Graceful for hyper::server::conn::http1::UpgradeableConnection<I, S>
where
    S: hyper::service::HttpService<hyper::body::Incoming, ResBody = B>,
    S::Error: Into<crate::BoxError>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin,
    B: Body + 'static,
    B::Error: Into<crate::BoxError>,
{
    fn graceful_shutdown(self: Pin<&mut Self>) {
        hyper::server::conn::http1::UpgradeableConnection::graceful_shutdown(self);
    }
}

/// Drives one hyper connection to its end: gracefully when the drain starts, and when its IO
/// asks to be parked (hyper then ends the idle connection and hands the IO back).
pub async fn drive<C, E>(
    conn: C,
    counters: &Counters,
    drain: &mut tokio::sync::watch::Receiver<bool>,
) -> Result<(), crate::BoxError>
where
    C: std::future::Future<Output = Result<(), E>> + Graceful,
    E: Into<crate::BoxError>,
{
    let mut conn = std::pin::pin!(conn);
    // Started before this connection: end it at once (gracefully).
    let mut started = *drain.borrow();
    let changed = drain.changed();
    let mut changed = std::pin::pin!(changed);
    let (mut draining, mut parking) = (false, false);
    std::future::poll_fn(|cx| {
        if !draining && (started || changed.as_mut().poll(cx).is_ready()) {
            (draining, started) = (true, false);
            conn.as_mut().graceful_shutdown();
        }
        loop {
            match conn.as_mut().poll(cx) {
                Poll::Ready(r) => return Poll::Ready(r.map_err(Into::into)),
                Poll::Pending if !parking && counters.wants_park() => {
                    parking = true;
                    conn.as_mut().graceful_shutdown();
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    })
    .await
}

#[cfg(test)]
mod tests;
