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
use std::pin::Pin;
use std::task::{Context, Poll};

/// The error type of every body here.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

pub enum ProxyBody {
    Empty,
    Full(Option<Bytes>),
    Chunks {
        chunks: std::vec::IntoIter<Bytes>,
        remaining: u64,
    },
    Incoming(Incoming),
    /// An upstream HTTP/1.1 response, which gives its connection back to the pool at its end.
    Pooled(crate::pool::PooledBody),
    /// An upload watched as a possible batch input (see `crate::batch`).
    Batch(Box<crate::batch::BatchGuard<Incoming>>),
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
            ProxyBody::Batch(b) => b.size_hint(),
        }
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
