//! The one body type that flows through the proxy in both directions.
//!
//! - `Incoming`: a stream we do not inspect (uploads, upstream responses): frames pass through
//!   as they arrive, never buffered.
//! - `Pooled`: an upstream HTTP/1.1 response that returns its connection to the pool at its end.
//! - `Chunks`: an inspected request body, forwarded as the slices of the original buffer plus
//!   the spliced-in literals, with an exact length.
//! - `Full`: a body the proxy produced itself (errors, admin pages).

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::pool::{PoolBody, PooledBody};
pub use crate::BoxError;

pub enum ProxyBody {
    Empty,
    Full(Option<Bytes>),
    Chunks {
        chunks: std::vec::IntoIter<Bytes>,
        remaining: u64,
    },
    Incoming(Incoming),
    /// An upstream HTTP/1.1 response, which gives its connection back to the pool at its end.
    Pooled(PooledBody<ProxyBody>),
    /// A client's request body streamed upstream uninspected, ended when it goes silent.
    Upload(Box<IdleTimed<Incoming>>),
    /// An upload watched as a possible batch input (see `crate::batch`).
    Batch(Box<crate::batch::BatchGuard<IdleTimed<Incoming>>>),
}

impl ProxyBody {
    pub fn full(b: impl Into<Bytes>) -> ProxyBody {
        let b = b.into();
        if b.is_empty() {
            ProxyBody::Empty
        } else {
            ProxyBody::Full(Some(b))
        }
    }

    pub fn chunks(chunks: Vec<Bytes>) -> ProxyBody {
        let remaining = chunks.iter().map(|c| c.len() as u64).sum();
        ProxyBody::Chunks {
            chunks: chunks.into_iter(),
            remaining,
        }
    }
}

impl PoolBody for ProxyBody {
    fn empty() -> Self {
        ProxyBody::Empty
    }

    fn is_empty_body(&self) -> bool {
        matches!(self, ProxyBody::Empty)
    }

    fn incoming(body: Incoming) -> Self {
        ProxyBody::Incoming(body)
    }

    fn pooled(body: PooledBody<Self>) -> Self {
        ProxyBody::Pooled(body)
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            ProxyBody::Empty => Poll::Ready(None),
            ProxyBody::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            ProxyBody::Chunks { chunks, remaining } => match chunks.next() {
                Some(c) => {
                    *remaining -= c.len() as u64;
                    Poll::Ready(Some(Ok(Frame::data(c))))
                }
                None => Poll::Ready(None),
            },
            ProxyBody::Incoming(b) => Pin::new(b).poll_frame(cx).map_err(Into::into),
            ProxyBody::Pooled(b) => Pin::new(b).poll_frame(cx).map_err(Into::into),
            ProxyBody::Upload(b) => Pin::new(b.as_mut()).poll_frame(cx),
            ProxyBody::Batch(b) => Pin::new(b.as_mut()).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ProxyBody::Empty => true,
            ProxyBody::Full(b) => b.is_none(),
            ProxyBody::Chunks { remaining, chunks } => *remaining == 0 && chunks.len() == 0,
            ProxyBody::Incoming(b) => b.is_end_stream(),
            ProxyBody::Pooled(b) => b.is_end_stream(),
            ProxyBody::Upload(b) => b.inner.is_end_stream(),
            ProxyBody::Batch(_) => false,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ProxyBody::Empty => SizeHint::with_exact(0),
            ProxyBody::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            ProxyBody::Chunks { remaining, .. } => SizeHint::with_exact(*remaining),
            ProxyBody::Incoming(b) => b.size_hint(),
            ProxyBody::Pooled(b) => b.size_hint(),
            ProxyBody::Upload(b) => b.inner.size_hint(),
            ProxyBody::Batch(b) => b.size_hint(),
        }
    }
}

/// A streamed request body that fails once it has sent nothing for `limit`
/// (`timeouts.request_body_secs`): a client that opens an upload and goes silent would
/// otherwise hold its request slot, and the upstream connection, forever.
pub struct IdleTimed<B> {
    inner: B,
    limit: std::time::Duration,
    timer: Pin<Box<tokio::time::Sleep>>,
}

impl<B> IdleTimed<B> {
    pub fn new(inner: B, limit: std::time::Duration) -> IdleTimed<B> {
        IdleTimed {
            inner,
            limit,
            timer: Box::pin(tokio::time::sleep(limit)),
        }
    }
}

/// The error an [`IdleTimed`] body ends with.
#[derive(Debug)]
pub struct RequestBodyIdle(pub std::time::Duration);

impl std::fmt::Display for RequestBodyIdle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the request body sent nothing for {:?}", self.0)
    }
}

impl std::error::Error for RequestBodyIdle {}

impl<B> Body for IdleTimed<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                let deadline = tokio::time::Instant::now() + this.limit;
                this.timer.as_mut().reset(deadline);
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending => match this.timer.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(RequestBodyIdle(this.limit))))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Most bytes [`Coalesce`] joins into one frame.
const MAX_COALESCE: usize = 64 * 1024;

/// Hands hyper, as one frame, the data frames of a body that have already arrived.
///
/// hyper's HTTP/1 client passes a response body on one frame per hand-off between its
/// connection task and ours, and hyper's server writes whenever the body is not ready: so a
/// token stream whose events an upstream read brought in together went out as one `writev`
/// per event (43k `writev` against 710 `recvfrom` in a 3 s `events:500` run: the syscalls were
/// the cost). Here, once a frame is in hand and the body is not ready, the task yields so the
/// upstream connection task can pass on what it already read; the frames gathered are sent as
/// one. hyper's HTTP/1 server polls a pending body a second time in the same turn (it re-checks
/// the write side after a flush), so what is held goes out only after two polls that bring
/// nothing: the first may be that same-turn re-check, the second comes after the feeding task
/// had its turn. Nothing waits for data that has not arrived: a stream is delayed by at most
/// two scheduler turns, never by time. The first frame is passed without a copy; later ones are
/// appended to one buffer per body.
pub struct Coalesce<B> {
    body: B,
    on: bool,
    first: Option<Bytes>,
    more: bytes::BytesMut,
    /// Polls since the last frame that brought nothing.
    idle_polls: u8,
    /// What the body returned after data that is still held (its end, trailers or an error).
    after: Option<Option<Result<Frame<Bytes>, BoxError>>>,
}

impl<B> Coalesce<B> {
    pub fn new(body: B, on: bool) -> Coalesce<B> {
        Coalesce {
            body,
            on,
            first: None,
            more: bytes::BytesMut::new(),
            idle_polls: 0,
            after: None,
        }
    }

    fn held(&self) -> usize {
        self.first.as_ref().map_or(0, Bytes::len) + self.more.len()
    }

    fn hold(&mut self, data: Bytes) {
        if self.first.is_none() && self.more.is_empty() {
            self.first = Some(data);
            return;
        }
        if let Some(first) = self.first.take() {
            self.more.reserve(first.len() + data.len());
            self.more.extend_from_slice(&first);
        }
        self.more.extend_from_slice(&data);
    }

    fn take(&mut self) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.idle_polls = 0;
        let data = match self.first.take() {
            Some(first) => first,
            None => self.more.split().freeze(),
        };
        Poll::Ready(Some(Ok(Frame::data(data))))
    }
}

impl<B> Body for Coalesce<B>
where
    B: Body<Data = Bytes, Error = BoxError> + Unpin,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if !this.on {
            return Pin::new(&mut this.body).poll_frame(cx);
        }
        if let Some(after) = this.after.take() {
            return Poll::Ready(after);
        }
        loop {
            let polled = Pin::new(&mut this.body).poll_frame(cx);
            let held = this.held() > 0;
            match polled {
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => {
                        this.hold(data);
                        this.idle_polls = 0;
                        if this.held() >= MAX_COALESCE || this.body.is_end_stream() {
                            return this.take();
                        }
                    }
                    Err(trailers) if held => {
                        this.after = Some(Some(Ok(trailers)));
                        return this.take();
                    }
                    Err(trailers) => return Poll::Ready(Some(Ok(trailers))),
                },
                Poll::Ready(end) if held => {
                    this.after = Some(end);
                    return this.take();
                }
                Poll::Ready(end) => return Poll::Ready(end),
                Poll::Pending if !held => return Poll::Pending,
                Poll::Pending if this.idle_polls < 2 => {
                    // A turn for the task that feeds the body; we are polled again after it.
                    this.idle_polls += 1;
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
                Poll::Pending => return this.take(),
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.held() == 0
            && match &self.after {
                Some(after) => after.is_none(),
                None => self.body.is_end_stream(),
            }
    }

    fn size_hint(&self) -> SizeHint {
        let inner = self.body.size_hint();
        let held = self.held() as u64;
        let mut hint = SizeHint::new();
        hint.set_lower(inner.lower().saturating_add(held));
        if let Some(upper) = inner.upper() {
            hint.set_upper(upper.saturating_add(held));
        }
        hint
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn chunks_have_exact_size_and_order() {
        let body = ProxyBody::chunks(vec![
            Bytes::from_static(b"{\"a\":"),
            Bytes::from_static(b"false}"),
        ]);
        assert_eq!(body.size_hint().exact(), Some(11));
        let all = body.collect().await.unwrap().to_bytes();
        assert_eq!(&all[..], b"{\"a\":false}");
    }
}

#[cfg(test)]
mod coalesce_tests {
    use super::*;
    use std::collections::VecDeque;
    use std::future::poll_fn;

    /// A body that answers each poll with the next scripted step; `None` in the script is
    /// `Pending` (after waking the task, as a channel would when its sender runs).
    type Step = Option<Option<Result<Frame<Bytes>, BoxError>>>;
    struct Script(VecDeque<Step>);

    impl Body for Script {
        type Data = Bytes;
        type Error = BoxError;
        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
            match self.0.pop_front() {
                Some(Some(step)) => Poll::Ready(step),
                Some(None) => {
                    cx.waker().wake_by_ref();
                    Poll::Pending
                }
                None => Poll::Ready(None),
            }
        }
        fn is_end_stream(&self) -> bool {
            self.0.is_empty()
        }
    }

    fn data(s: &'static str) -> Step {
        Some(Some(Ok(Frame::data(Bytes::from_static(s.as_bytes())))))
    }

    /// Every poll's outcome: `Ok(Some(bytes))` a data frame, `Ok(None)` trailers,
    /// `Err(())` pending; the end stops the list.
    async fn polls(mut body: Coalesce<Script>) -> Vec<Result<Option<Vec<u8>>, ()>> {
        let mut out = Vec::new();
        loop {
            let step = poll_fn(|cx| Poll::Ready(Pin::new(&mut body).poll_frame(cx))).await;
            match step {
                Poll::Ready(Some(Ok(f))) => out.push(Ok(f.into_data().ok().map(|d| d.to_vec()))),
                Poll::Ready(Some(Err(_))) => {
                    out.push(Ok(Some(b"<error>".to_vec())));
                    return out;
                }
                Poll::Ready(None) => return out,
                Poll::Pending => out.push(Err(())),
            }
        }
    }

    #[tokio::test]
    async fn frames_already_arrived_go_out_as_one_after_two_idle_polls() {
        let script = Script(VecDeque::from([
            data("a"),
            data("b"),
            None,
            data("c"),
            None,
            None,
            None,
            data("d"),
            None,
            None,
            None,
        ]));
        let got = polls(Coalesce::new(script, true)).await;
        let want: Vec<Result<Option<Vec<u8>>, ()>> = vec![
            Err(()),                   // a, b held; a turn for the sender
            Err(()),                   // c arrived in that turn; another turn
            Err(()),                   // nothing new: one more poll (hyper's same-turn re-check)
            Ok(Some(b"abc".to_vec())), // nothing again: out
            Err(()),                   // d held, a turn
            Err(()),                   // nothing new
            Ok(Some(b"d".to_vec())),   // out, uncopied
        ];
        assert_eq!(got, want);
    }

    #[tokio::test]
    async fn end_trailers_and_errors_follow_the_held_data_in_order() {
        let trailers = Some(Some(Ok(Frame::trailers(http::HeaderMap::new()))));
        let script = Script(VecDeque::from([data("a"), data("b"), trailers]));
        assert_eq!(
            polls(Coalesce::new(script, true)).await,
            vec![Ok(Some(b"ab".to_vec())), Ok(None)]
        );
        let error: BoxError = "upstream reset".into();
        let script = Script(VecDeque::from([data("a"), Some(Some(Err(error)))]));
        assert_eq!(
            polls(Coalesce::new(script, true)).await,
            vec![Ok(Some(b"a".to_vec())), Ok(Some(b"<error>".to_vec()))]
        );
        // Off: every frame as it comes, pending as it comes.
        let script = Script(VecDeque::from([data("a"), data("b"), None, data("c")]));
        assert_eq!(
            polls(Coalesce::new(script, false)).await,
            vec![
                Ok(Some(b"a".to_vec())),
                Ok(Some(b"b".to_vec())),
                Err(()),
                Ok(Some(b"c".to_vec()))
            ]
        );
    }

    #[tokio::test]
    async fn the_last_frame_of_a_body_is_not_held() {
        let script = Script(VecDeque::from([data("a"), data("b")]));
        let body = Coalesce::new(script, true);
        // b empties the script, so the body says it has ended: no turn is spent.
        assert_eq!(polls(body).await, vec![Ok(Some(b"ab".to_vec()))]);
    }

    /// Through a real hyper client connection: 50 events that reach the proxy in one read
    /// leave in far fewer frames (each frame is one write to the client).
    #[tokio::test(flavor = "current_thread")]
    async fn events_read_together_leave_together() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let up = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = up.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = up.accept().await.unwrap();
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf).await.unwrap();
            let mut out =
                b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
                    .to_vec();
            for i in 0..50 {
                let ev = format!("data: {i}\n\n");
                out.extend(format!("{:x}\r\n{ev}\r\n", ev.len()).bytes());
            }
            out.extend(b"0\r\n\r\n");
            s.write_all(&out).await.unwrap();
            let _ = s.read(&mut buf).await;
        });
        let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (mut tx, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(conn);
        let req = http::Request::builder()
            .uri("/")
            .header("host", "x")
            .body(http_body_util::Empty::<Bytes>::new())
            .unwrap();
        let res = tx.send_request(req).await.unwrap();
        let mut body = Coalesce::new(ProxyBody::Incoming(res.into_body()), true);
        let (mut frames, mut all) = (0, Vec::new());
        // Polled as hyper's HTTP/1 server does: a pending body is polled again in the same turn.
        while let Some(f) = std::future::poll_fn(|cx| match Pin::new(&mut body).poll_frame(cx) {
            Poll::Pending => Pin::new(&mut body).poll_frame(cx),
            ready => ready,
        })
        .await
        {
            frames += 1;
            all.extend_from_slice(&f.unwrap().into_data().unwrap());
        }
        let want: String = (0..50).map(|i| format!("data: {i}\n\n")).collect();
        assert_eq!(String::from_utf8(all).unwrap(), want);
        assert!(frames <= 5, "{frames} frames for 50 events read together");
    }
}
