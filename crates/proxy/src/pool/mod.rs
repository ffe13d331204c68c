//! The upstream connection pool: per upstream origin, a stack of idle HTTP/1.1 connections or
//! one shared HTTP/2 connection, driven through hyper's `client::conn` directly.
//!
//! Why not hyper-util's pooled client: per request it hashes the pool key twice (checkout and
//! put-back), boxes a lazy connect future, rewrites the URI, and spawns a task to return the
//! connection once it is idle again. Our origins are known when the config is loaded, so a
//! request finds its pool by index, and an HTTP/1.1 connection goes back on its stack from the
//! response body, the moment the body ends.
//!
//! What the pool guarantees:
//! - a request is retried on another connection when hyper hands it back unsent (the pooled
//!   connection had closed). A connection whose close arrives just as it is reused may have
//!   had the request written: a GET, HEAD or OPTIONS without a body is then sent again on
//!   another connection; anything else fails that one request (502), never sent twice;
//! - a connection whose response body was not read to its end is never reused (dropping the
//!   body drops the sender, and hyper closes the connection);
//! - on a cold start, concurrent requests to an `https` origin wait for one connect: if ALPN
//!   gives h2 they share it; if HTTP/1.1 or a failure, each then connects on its own;
//! - at most `pool_max_idle_per_host` idle connections per origin, none idle for longer than
//!   `timeouts.idle_secs` (a background task closes expired ones).

use crate::client::Https;
use crate::BoxError;
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Request, Response, Uri};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper_util::client::legacy::connect::Connection as _;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// What the pool needs of the body type it carries both ways (the request bodies it sends, the
/// response bodies it hands back). The pool is generic over it so that it does not depend on
/// the proxy's body type, which itself holds a [`PooledBody`]: no `body` <-> `pool` cycle.
pub trait PoolBody: Body<Data = bytes::Bytes, Error = BoxError> + Send + Unpin + Sized + 'static {
    /// An empty body (a safe request sent again).
    fn empty() -> Self;
    /// Whether this is the empty body: only such a request may be sent again.
    fn is_empty_body(&self) -> bool;
    /// A response body read straight off its connection (HTTP/2, or a 101 upgrade).
    fn incoming(body: Incoming) -> Self;
    /// A response body that returns its HTTP/1.1 connection to the pool when it ends.
    fn pooled(body: PooledBody<Self>) -> Self;
}

/// Why a request got no upstream response.
#[derive(Debug)]
pub enum UpstreamError {
    /// No connection could be made (DNS, TCP, TLS, the CONNECT proxy).
    Connect(BoxError),
    /// The connection failed while sending or before a response head arrived.
    Request(hyper::Error),
}

impl std::fmt::Display for UpstreamError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UpstreamError::Connect(e) => write!(f, "connect: {e}"),
            UpstreamError::Request(e) => write!(f, "request: {e}"),
        }
    }
}

/// An upstream that cannot be an origin to connect to.
#[derive(Debug, thiserror::Error)]
#[error("upstream {origin}: {source}")]
pub struct BadOrigin {
    origin: String,
    source: http::Error,
}

/// The pools of every upstream origin of one config snapshot.
pub struct UpstreamPool<B> {
    connector: Https,
    origins: Vec<Arc<Origin<B>>>,
    /// For each upstream given to [`UpstreamPool::new`], in that order, its origin's index:
    /// upstreams with the same origin share its connections.
    origin_of: Vec<usize>,
}

/// One upstream origin (`scheme://authority`) and its connections.
pub struct Origin<B> {
    /// What the connector dials.
    target: Uri,
    scheme: Scheme,
    authority: Authority,
    max_idle: usize,
    idle_timeout: Duration,
    state: Mutex<Idle<B>>,
    /// Whether the task that closes expired idle connections runs (started on first connect,
    /// which is always inside the runtime).
    reaper: std::sync::atomic::AtomicBool,
    /// Held by the request that is connecting while the origin may still speak h2, so that
    /// requests arriving meanwhile wait for its connection instead of opening their own.
    connecting: tokio::sync::Mutex<()>,
    /// An `https` origin that answered ALPN with HTTP/1.1: connects need not wait for each
    /// other any more.
    speaks_h1: std::sync::atomic::AtomicBool,
}

struct Idle<B> {
    /// Most recently used last: checkout takes from the back, so the least used age out at
    /// the front.
    h1: VecDeque<(http1::SendRequest<B>, Instant)>,
    /// An HTTP/2 connection carries every request at once; with when it was last used.
    h2: Option<(http2::SendRequest<B>, Instant)>,
}

impl<B> Default for Idle<B> {
    fn default() -> Self {
        Idle {
            h1: VecDeque::new(),
            h2: None,
        }
    }
}

enum Conn<B> {
    H1(http1::SendRequest<B>),
    H2(http2::SendRequest<B>),
}

impl<B: PoolBody> UpstreamPool<B> {
    /// One pool per distinct `(scheme, authority)` among `upstreams`; requests then name an
    /// upstream by its position in `upstreams`.
    pub fn new(
        connector: Https,
        upstreams: impl IntoIterator<Item = (Scheme, Authority)>,
        max_idle: usize,
        idle_timeout: Duration,
    ) -> Result<UpstreamPool<B>, BadOrigin> {
        let mut pools: Vec<Arc<Origin<B>>> = Vec::new();
        let mut origin_of = Vec::new();
        for (scheme, authority) in upstreams {
            if let Some(i) = pools
                .iter()
                .position(|o| o.scheme == scheme && o.authority == authority)
            {
                origin_of.push(i);
                continue;
            }
            let target = Uri::builder()
                .scheme(scheme.clone())
                .authority(authority.clone())
                .path_and_query("/")
                .build()
                .map_err(|source| BadOrigin {
                    origin: format!("{scheme}://{authority}"),
                    source,
                })?;
            origin_of.push(pools.len());
            pools.push(Arc::new(Origin {
                target,
                scheme,
                authority,
                max_idle,
                idle_timeout,
                state: Mutex::new(Idle::default()),
                reaper: std::sync::atomic::AtomicBool::new(false),
                connecting: tokio::sync::Mutex::new(()),
                speaks_h1: std::sync::atomic::AtomicBool::new(false),
            }));
        }
        Ok(UpstreamPool {
            connector,
            origins: pools,
            origin_of,
        })
    }

    /// Sends `req` (origin-form target, `Host` set) to upstream `upstream` (its position in
    /// [`UpstreamPool::new`]): on an idle connection when there is one, else on a new one.
    pub async fn send(&self, upstream: usize, mut req: Request<B>) -> Result<Response<B>, UpstreamError> {
        let Some(origin) = self.origin_of.get(upstream).and_then(|&i| self.origins.get(i)) else {
            return Err(UpstreamError::Connect("no such upstream".into()));
        };
        let mut replayed = false;
        let mut waited = false;
        let gate = loop {
            // Each pooled connection that turns out closed hands the request back unsent;
            // then the next one is tried, and finally a new one.
            while let Some(conn) = origin.checkout() {
                // Once at most: the shared h2 connection stays checked out until it reports
                // closed.
                let replay = if replayed { None } else { replayable(&req) };
                match origin.send_on(conn, req).await {
                    Ok(res) => return Ok(res),
                    Err((Some(unsent), _)) => req = unsent,
                    // A safe request without a body may go out again when the reused
                    // connection turns out closed under it (RFC 9110 §9.2.2): sending it
                    // twice changes nothing.
                    Err((None, e)) => match replay {
                        Some(again) if closed_under_us(&e) => {
                            replayed = true;
                            req = again;
                        }
                        _ => return Err(UpstreamError::Request(e)),
                    },
                }
            }
            // On a cold start, concurrent requests to an origin that may speak h2 would each
            // open a connection of which the pool keeps one. Instead, one connects and the
            // others wait for it, then look again for a connection to share. Each waits once:
            // after an HTTP/1.1 answer or a failure they connect side by side, not in a chain.
            if waited || !origin.may_speak_h2() {
                break None;
            }
            match origin.connecting.try_lock() {
                Ok(g) => break Some(g),
                Err(_) => {
                    drop(origin.connecting.lock().await);
                    waited = true;
                }
            }
        };
        // Boxed: connecting (TCP, TLS, a CONNECT tunnel) is a large future that the common
        // path, a pooled connection, would otherwise carry and copy on every request.
        let conn = Box::pin(self.connect(origin)).await;
        drop(gate);
        let conn = conn?;
        match origin.send_on(conn, req).await {
            Ok(res) => Ok(res),
            Err((_, e)) => Err(UpstreamError::Request(e)),
        }
    }

    async fn connect(&self, origin: &Arc<Origin<B>>) -> Result<Conn<B>, UpstreamError> {
        use tower::ServiceExt;
        origin.start_reaper();
        let io = self
            .connector
            .clone()
            .oneshot(origin.target.clone())
            .await
            .map_err(UpstreamError::Connect)?;
        if io.connected().is_negotiated_h2() {
            let (tx, conn) = http2::Builder::new(TokioExecutor::new())
                .timer(TokioTimer::new())
                .handshake(io)
                .await
                .map_err(|e| UpstreamError::Connect(e.into()))?;
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    tracing::debug!(error = %e, "upstream h2 connection ended");
                }
            });
            if let Ok(mut idle) = origin.state.lock() {
                idle.h2 = Some((tx.clone(), Instant::now()));
            }
            Ok(Conn::H2(tx))
        } else {
            origin.speaks_h1.store(true, std::sync::atomic::Ordering::Relaxed);
            let (tx, conn) = http1::Builder::new()
                .handshake(io)
                .await
                .map_err(|e| UpstreamError::Connect(e.into()))?;
            // With upgrades: a realtime websocket continues on this connection after its 101.
            tokio::spawn(async move {
                if let Err(e) = conn.with_upgrades().await {
                    tracing::debug!(error = %e, "upstream connection ended");
                }
            });
            Ok(Conn::H1(tx))
        }
    }
}

/// A copy of `req` to send again if its connection fails, for safe methods without a body.
fn replayable<B: PoolBody>(req: &Request<B>) -> Option<Request<B>> {
    let safe = matches!(
        *req.method(),
        http::Method::GET | http::Method::HEAD | http::Method::OPTIONS
    );
    if !safe || !req.body().is_empty_body() {
        return None;
    }
    let mut copy = Request::new(B::empty());
    *copy.method_mut() = req.method().clone();
    *copy.uri_mut() = req.uri().clone();
    *copy.version_mut() = req.version();
    *copy.headers_mut() = req.headers().clone();
    Some(copy)
}

/// Whether a request failed because its (reused) connection was closed or reset, rather than
/// because of what the upstream answered.
fn closed_under_us(e: &hyper::Error) -> bool {
    use std::error::Error as _;
    e.is_incomplete_message()
        || e.source()
            .and_then(|s| s.downcast_ref::<std::io::Error>())
            .is_some_and(|io| {
                matches!(
                    io.kind(),
                    std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
                )
            })
}

impl<B: PoolBody> Origin<B> {
    /// Whether a new connection may turn out to be HTTP/2 (ALPN, so only over TLS).
    fn may_speak_h2(&self) -> bool {
        self.scheme == Scheme::HTTPS && !self.speaks_h1.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// A connection to send on: the shared HTTP/2 one, or the most recently used idle
    /// HTTP/1.1 one that is still open and not past the idle timeout.
    fn checkout(&self) -> Option<Conn<B>> {
        let mut idle = self.state.lock().ok()?;
        let now = Instant::now();
        if let Some((h2, used)) = &mut idle.h2 {
            if !h2.is_closed() {
                *used = now;
                return Some(Conn::H2(h2.clone()));
            }
            idle.h2 = None;
        }
        while let Some((tx, since)) = idle.h1.pop_back() {
            if tx.is_ready() && now.duration_since(since) < self.idle_timeout {
                return Some(Conn::H1(tx));
            }
        }
        None
    }

    /// Puts an idle HTTP/1.1 connection back, dropping the oldest past `max_idle` and any
    /// past the idle timeout.
    fn checkin(&self, tx: http1::SendRequest<B>) {
        let Ok(mut idle) = self.state.lock() else {
            return;
        };
        let now = Instant::now();
        self.expire(&mut idle, now);
        if self.max_idle == 0 {
            return;
        }
        if idle.h1.len() >= self.max_idle {
            idle.h1.pop_front();
        }
        idle.h1.push_back((tx, now));
    }

    /// Drops the connections idle for longer than the timeout: they are at the front. Dropping
    /// the last sender of an idle HTTP/1.1 connection makes hyper close it.
    fn expire(&self, idle: &mut Idle<B>, now: Instant) {
        // Dropping the pool's HTTP/2 sender lets hyper close the connection once its streams
        // in flight are done.
        if idle
            .h2
            .as_ref()
            .is_some_and(|(_, used)| now.duration_since(*used) >= self.idle_timeout)
        {
            idle.h2 = None;
        }
        while idle
            .h1
            .front()
            .is_some_and(|(_, since)| now.duration_since(*since) >= self.idle_timeout)
        {
            idle.h1.pop_front();
        }
    }

    /// Closes expired idle connections even when no request comes to reuse them. The task
    /// holds the origin weakly and ends once the snapshot that owns the pool is gone.
    fn start_reaper(self: &Arc<Self>) {
        use std::sync::atomic::Ordering;
        if self.reaper.swap(true, Ordering::Relaxed) {
            return;
        }
        let origin = Arc::downgrade(self);
        let every = (self.idle_timeout / 2).clamp(Duration::from_millis(50), Duration::from_secs(30));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(live) = origin.upgrade() else { return };
                if let Ok(mut idle) = live.state.lock() {
                    live.expire(&mut idle, Instant::now());
                };
            }
        });
    }

    /// Sends on `conn`. On failure, the request comes back when hyper never sent it.
    async fn send_on(
        self: &Arc<Self>,
        conn: Conn<B>,
        mut req: Request<B>,
    ) -> Result<Response<B>, (Option<Request<B>>, hyper::Error)> {
        match conn {
            Conn::H1(mut tx) => match tx.try_send_request(req).await {
                // After a 101 the connection belongs to the upgrade, not to the pool.
                Ok(res) if res.status() == http::StatusCode::SWITCHING_PROTOCOLS => Ok(res.map(B::incoming)),
                Ok(res) => Ok(res.map(|body| PooledBody::start(body, self, tx))),
                Err(mut e) => Err((e.take_message(), e.into_error())),
            },
            Conn::H2(mut tx) => {
                // HTTP/2 carries the scheme and authority as pseudo-headers: absolute form.
                let pq = req
                    .uri()
                    .path_and_query()
                    .cloned()
                    .unwrap_or_else(|| PathAndQuery::from_static("/"));
                let mut parts = http::uri::Parts::default();
                parts.scheme = Some(self.scheme.clone());
                parts.authority = Some(self.authority.clone());
                parts.path_and_query = Some(pq);
                if let Ok(uri) = Uri::from_parts(parts) {
                    *req.uri_mut() = uri;
                }
                match tx.try_send_request(req).await {
                    Ok(res) => Ok(res.map(B::incoming)),
                    Err(mut e) => Err((e.take_message(), e.into_error())),
                }
            }
        }
    }

    /// Returns a connection whose response is complete: at once when hyper is ready for the
    /// next request on it, else as soon as it is (still in flight: the request body may be
    /// streaming after an early response).
    fn release(self: &Arc<Self>, mut tx: http1::SendRequest<B>) {
        if tx.is_ready() {
            self.checkin(tx);
        } else if !tx.is_closed() {
            let origin = self.clone();
            tokio::spawn(async move {
                if tx.ready().await.is_ok() {
                    origin.checkin(tx);
                }
            });
        }
    }
}

/// An HTTP/1.1 response body that returns its connection to the pool when it ends.
pub struct PooledBody<B> {
    body: Incoming,
    back: Option<(Arc<Origin<B>>, http1::SendRequest<B>)>,
}

impl<B: PoolBody> PooledBody<B> {
    fn start(body: Incoming, origin: &Arc<Origin<B>>, tx: http1::SendRequest<B>) -> B {
        let mut pooled = PooledBody {
            body,
            back: Some((origin.clone(), tx)),
        };
        if pooled.body.is_end_stream() {
            pooled.release();
        }
        B::pooled(pooled)
    }

    fn release(&mut self) {
        if let Some((origin, tx)) = self.back.take() {
            origin.release(tx);
        }
    }
}

impl<B: PoolBody> Body for PooledBody<B> {
    type Data = bytes::Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<bytes::Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        match &polled {
            // Servers stop polling a body that says it has ended, so release on the last
            // frame rather than waiting for a `None` that may never be asked for.
            Poll::Ready(Some(Ok(_))) if self.body.is_end_stream() => self.release(),
            Poll::Ready(None) => self.release(),
            // An error leaves the connection unusable: dropping the sender closes it.
            Poll::Ready(Some(Err(_))) => self.back = None,
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests;
