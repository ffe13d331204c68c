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

/// Phase 2, second half: decodes a buffered body (`raw`, as read within the limit, with its
/// encoding from [`body_plan`]; None when the body streams) and decides. A gzip or deflate body is decompressed (the limit applies to
/// the decompressed size) and forwarded decompressed, so that what is forwarded is exactly what
/// was inspected: that is the one change to the request here (its `Content-Encoding` goes).
/// Sets `ctx.model`; stops on a refusal or a policy denial.
pub fn request_body(
    ctx: &mut Ctx,
    m: Matched,
    parts: &mut http::request::Parts,
    raw: Option<(Bytes, Encoding)>,
) -> Result<(Inspected, Option<Bytes>), Stop> {
    let body = match raw {
        Some((raw, encoding @ (Encoding::Gzip | Encoding::Deflate))) => {
            let decoded = decompress(&raw, encoding, ctx.snap.config.limits.max_body_bytes)?;
            parts.headers.remove(http::header::CONTENT_ENCODING);
            Some(decoded)
        }
        Some((raw, Encoding::Identity)) => Some(raw),
        None => None,
    };
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

/// Decompresses within `limit` bytes of output (a small bomb cannot grow past it).
fn decompress(raw: &[u8], encoding: Encoding, limit: u64) -> Result<Bytes, ProxyError> {
    use std::io::Read;
    let reader: Box<dyn Read + '_> = match encoding {
        Encoding::Gzip => Box::new(flate2::read::MultiGzDecoder::new(raw)),
        _ => Box::new(flate2::read::ZlibDecoder::new(raw)),
    };
    let mut out = Vec::new();
    match reader.take(limit.saturating_add(1)).read_to_end(&mut out) {
        Ok(n) if n as u64 > limit => Err(ProxyError::TooLarge { limit }),
        Ok(_) => Ok(Bytes::from(out)),
        Err(_) => Err(ProxyError::InvalidBody(
            "the compressed request body is corrupt".into(),
        )),
    }
}
