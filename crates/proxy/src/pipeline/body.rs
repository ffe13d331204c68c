//! Phase 2, request body: what to do with the body ([`body_plan`], from the head), then the
//! decision over the buffered body ([`request_body`]). Reading the body is the caller's: `serve`
//! reads the socket within the timeout, `explain` a file.

use super::{Ctx, Stop};
use crate::error::ProxyError;
use crate::evaluate::{self, Inspected, Matched};
use bytes::Bytes;
use http::HeaderMap;
use policy::Verdict;

/// How the request body is handled, decided from the head before a byte of it is read.
pub enum BodyPlan {
    /// Buffered (within `limits.max_body_bytes`, after decoding) and inspected.
    Buffer(Encoding),
    /// Streams through unread.
    Stream,
    /// Streams through, watched line by line as a possible batch input.
    Batch(policy::BatchInput),
}

/// A request body's `Content-Encoding` that the proxy can inspect through.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Encoding {
    Identity,
    Gzip,
    Deflate,
}

/// Phase 2, first half: from the head, whether the body is buffered (an operation whose plan
/// reads its fields), watched as a batch input, or streamed. For a buffered body, refuses an
/// encoding it cannot read through (415) and a declared length past the limit (413) before
/// anything is read. Changes nothing.
pub fn body_plan(ctx: &Ctx, m: Matched, headers: &HeaderMap) -> Result<BodyPlan, Stop> {
    let snap = &ctx.snap;
    if !evaluate::needs_body(snap, m.op) {
        return Ok(match &snap.config.catalog.operation(m.op).batch_input {
            Some(spec) => BodyPlan::Batch(spec.clone()),
            None => BodyPlan::Stream,
        });
    }
    let limit = snap.config.limits.max_body_bytes;
    let encoding = match headers.get(http::header::CONTENT_ENCODING) {
        None => Encoding::Identity,
        Some(v) => match v.as_bytes().to_ascii_lowercase().as_slice() {
            b"identity" => Encoding::Identity,
            b"gzip" | b"x-gzip" => Encoding::Gzip,
            b"deflate" => Encoding::Deflate,
            other => {
                return Err(
                    ProxyError::UnsupportedEncoding(String::from_utf8_lossy(other).into_owned()).into(),
                )
            }
        },
    };
    if headers.get_all(http::header::CONTENT_ENCODING).iter().count() > 1 {
        return Err(ProxyError::UnsupportedEncoding("more than one encoding".into()).into());
    }
    let declared = headers
        .get(http::header::CONTENT_LENGTH)
        .map(|v| v.to_str().ok().and_then(|s| s.parse::<u64>().ok()))
        .map(|n| n.ok_or_else(|| ProxyError::BadRequest("invalid Content-Length".into())))
        .transpose()?;
    if declared.is_some_and(|n| n > limit) {
        return Err(ProxyError::TooLarge { limit }.into());
    }
    Ok(BodyPlan::Buffer(encoding))
}

/// Decoded output a body may reach on the runtime thread. Past it, [`decode_body`] finishes
/// the decoding on tokio's blocking pool, so that a large (or highly compressed) body does not
/// hold up the other connections of its worker thread; 64 KiB inflates in well under a
/// millisecond, so the usual small request keeps the fast path (no thread hop).
pub const INLINE_DECODE_BYTES: u64 = 64 * 1024;

/// Phase 2, between reading and deciding, for `serve`: a gzip or deflate body is decompressed
/// (`limit` applies to the decompressed size: a small bomb cannot grow past it) and its
/// `Content-Encoding` removed, since it is forwarded decompressed, exactly as inspected. An
/// identity body is returned as read. Decoding starts here and, past [`INLINE_DECODE_BYTES`]
/// of output, continues off the runtime thread; either way through [`Decoder::run`], so the
/// result is [`decode_body_now`]'s (which `explain` uses).
pub async fn decode_body(
    headers: &mut HeaderMap,
    raw: Bytes,
    encoding: Encoding,
    limit: u64,
) -> Result<Bytes, Stop> {
    let mut decoder = match start_decoding(headers, raw, encoding, limit) {
        Ok(decoder) => decoder,
        Err(identity) => return Ok(identity),
    };
    if decoder.run(INLINE_DECODE_BYTES)? {
        return Ok(decoder.finish());
    }
    #[cfg(test)]
    let caller = std::thread::current().id();
    let rest = tokio::task::spawn_blocking(move || {
        #[cfg(test)]
        if std::thread::current().id() != caller {
            if let Ok(mut moved) = tests::OFF_THREAD_DECODES.lock() {
                moved.push(caller);
            }
        }
        decoder.run(u64::MAX).map(|_| decoder.finish())
    })
    .await;
    // The blocking pool refuses work only while the runtime shuts down.
    Ok(rest.map_err(|_| ProxyError::Overloaded)??)
}

/// [`decode_body`] on the calling thread, for `explain` (no runtime, one request).
pub fn decode_body_now(
    headers: &mut HeaderMap,
    raw: Bytes,
    encoding: Encoding,
    limit: u64,
) -> Result<Bytes, Stop> {
    let mut decoder = match start_decoding(headers, raw, encoding, limit) {
        Ok(decoder) => decoder,
        Err(identity) => return Ok(identity),
    };
    decoder.run(u64::MAX)?;
    Ok(decoder.finish())
}

/// The decoder of an encoded body, whose `Content-Encoding` goes (the body is forwarded
/// decoded); Err: an identity body, returned as read.
fn start_decoding(
    headers: &mut HeaderMap,
    raw: Bytes,
    encoding: Encoding,
    limit: u64,
) -> Result<Decoder, Bytes> {
    if matches!(encoding, Encoding::Identity) {
        // The usual request: no Bytes clone, no decoder.
        return Err(raw);
    }
    let decoder = Decoder::new(raw.clone(), encoding, limit).ok_or(raw)?;
    headers.remove(http::header::CONTENT_ENCODING);
    Ok(decoder)
}

/// Phase 2, second half: decides over a buffered body (`body`, decoded by [`decode_body`];
/// None when the body streams). Sets `ctx.model`; stops on a refusal or a policy denial.
pub fn request_body(
    ctx: &mut Ctx,
    m: Matched,
    parts: &mut http::request::Parts,
    body: Option<Bytes>,
) -> Result<(Inspected, Option<Bytes>), Stop> {
    let content_type = parts
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let mut inspected = evaluate::inspect(&ctx.snap, m, &parts.uri, content_type, body.as_ref())?;
    ctx.model = inspected.model.take();
    if inspected.decision.verdict == Verdict::Deny {
        return Err(Stop::Deny(inspected.decision));
    }
    Ok((inspected, body))
}

/// A gzip or deflate decompression in progress, within `limit` bytes of output. It owns its
/// input, so that it can move to another thread halfway.
struct Decoder {
    reader: Box<dyn std::io::Read + Send>,
    out: Vec<u8>,
    limit: u64,
}

impl Decoder {
    /// None for an identity body (nothing to decode).
    fn new(raw: Bytes, encoding: Encoding, limit: u64) -> Option<Decoder> {
        use bytes::Buf;
        let reader: Box<dyn std::io::Read + Send> = match encoding {
            Encoding::Identity => return None,
            Encoding::Gzip => Box::new(flate2::read::MultiGzDecoder::new(raw.reader())),
            Encoding::Deflate => Box::new(flate2::read::ZlibDecoder::new(raw.reader())),
        };
        Some(Decoder {
            reader,
            out: Vec::new(),
            limit,
        })
    }

    /// Decodes up to `budget` more bytes of output: true when the body has ended within it.
    fn run(&mut self, budget: u64) -> Result<bool, ProxyError> {
        use std::io::Read;
        // One byte past the limit tells a body of exactly `limit` bytes from a larger one.
        let room = self.limit.saturating_add(1).saturating_sub(self.out.len() as u64);
        let want = budget.min(room);
        match (&mut self.reader).take(want).read_to_end(&mut self.out) {
            Ok(_) if self.out.len() as u64 > self.limit => Err(ProxyError::TooLarge { limit: self.limit }),
            Ok(n) => Ok((n as u64) < want),
            Err(_) => Err(ProxyError::InvalidBody(
                "the compressed request body is corrupt".into(),
            )),
        }
    }

    fn finish(self) -> Bytes {
        Bytes::from(self.out)
    }
}

#[cfg(test)]
mod tests;
