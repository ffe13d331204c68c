//! `serve`'s side of the pipeline: the phases of [`crate::pipeline`] in order, with the
//! network between them (reading a body that is inspected, sending upstream, splicing an
//! upgraded websocket). Every decision is a phase function's; what is here is I/O.

use crate::body::ProxyBody;
use crate::error::ProxyError;
use crate::pipeline::{self, BodyPlan, Ctx, Finish, Outgoing, RequestId, Services, Stop, Tracked};
use crate::snapshot::Snapshot;
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use std::sync::Arc;
use std::time::Instant;

/// Handles one request on `snap`, the snapshot taken when the request arrived. The response
/// body runs the finish phase when it ends.
pub async fn handle(
    snap: Arc<Snapshot>,
    services: &Arc<Services>,
    req: Request<Incoming>,
) -> Response<Tracked> {
    let started = Instant::now();
    let request_id = RequestId::of(req.headers());
    let method = req.method().clone();
    let mut ctx = Ctx::new(snap);
    // The slot goes with the response body: a stream holds it until its last byte.
    let (res, slot) = match services.inflight.clone().try_acquire_owned() {
        Ok(slot) => (proxy(&mut ctx, services, &request_id, req).await, Some(slot)),
        Err(_) => (ctx.stop(Stop::Refuse(ProxyError::Overloaded)), None),
    };
    let finish = Finish {
        ctx,
        services: services.clone(),
        started,
        request_id,
        method,
    };
    res.map(|body| Tracked::new(body, slot, finish))
}

async fn proxy(
    ctx: &mut Ctx,
    services: &Services,
    request_id: &RequestId,
    req: Request<Incoming>,
) -> Response<ProxyBody> {
    match forward(ctx, services, request_id, req).await {
        Ok(res) => res,
        Err(stop) => ctx.stop(stop),
    }
}

async fn forward(
    ctx: &mut Ctx,
    services: &Services,
    request_id: &RequestId,
    req: Request<Incoming>,
) -> Result<Response<ProxyBody>, Stop> {
    let metrics = &services.metrics;
    let m = pipeline::early_request(ctx, &req)?;
    let method = req.method().clone();

    let (mut parts, incoming) = req.into_parts();
    let upgrade = if pipeline::is_websocket_upgrade(&parts.headers) {
        parts.extensions.remove::<hyper::upgrade::OnUpgrade>()
    } else {
        None
    };
    let mut batch_verdict = None;
    // Bytes held for inspection, released when the upstream has answered (the body was sent).
    let mut charge = crate::budget::Charge::default();
    let (inspected, body) = match pipeline::body_plan(ctx, m, &parts.headers)? {
        BodyPlan::Buffer(encoding) => {
            let raw = read_body(&ctx.snap, services, &mut charge, incoming).await?;
            metrics.bytes_in.inc_by(raw.len() as u64);
            let encoded = encoding != pipeline::Encoding::Identity;
            let limit = ctx.snap.config.limits.max_body_bytes;
            let decoded = pipeline::decode_body(&mut parts.headers, raw, encoding, limit).await?;
            let (inspected, body) = pipeline::request_body(ctx, m, &mut parts, Some(decoded))?;
            // The decoded copy is held beside the compressed one until the send ends.
            if let (true, Some(decoded)) = (encoded, &body) {
                take_budget(services, &mut charge, decoded.len())?;
            }
            (inspected, Outgoing::Buffered(body.unwrap_or_default()))
        }
        BodyPlan::Stream => {
            let (inspected, _) = pipeline::request_body(ctx, m, &mut parts, None)?;
            // Most streamed requests (GETs) have no body: no timer, no allocation for them.
            let body = if http_body::Body::is_end_stream(&incoming) {
                ProxyBody::Incoming(incoming)
            } else {
                let limit = ctx.snap.config.timeouts.request_body;
                ProxyBody::Upload(Box::new(crate::body::IdleTimed::new(incoming, limit)))
            };
            (inspected, Outgoing::Streaming(body))
        }
        BodyPlan::Batch(spec) => {
            let (inspected, _) = pipeline::request_body(ctx, m, &mut parts, None)?;
            // The upload streams through watched, line by line (see `crate::batch`).
            let checker = pipeline::batch_checker(ctx, m, &parts.headers, &spec)?;
            let (verdict_tx, verdict_rx) = crate::batch::verdict();
            let report = ctx.snap.config.projects.projects[m.project].mode == policy::Mode::Report;
            let upload = crate::body::IdleTimed::new(incoming, ctx.snap.config.timeouts.request_body);
            let guard = crate::batch::BatchGuard::new(upload, checker, verdict_tx, report);
            batch_verdict = Some(verdict_rx);
            (inspected, Outgoing::Streaming(ProxyBody::Batch(Box::new(guard))))
        }
    };

    let fwd = pipeline::upstream_request(ctx, m, parts, inspected, body)?;
    if let ProxyBody::Chunks { remaining, .. } = fwd.body() {
        metrics.bytes_out.inc_by(*remaining);
    }
    // Nothing is forwarded before its decision is recorded (on_failure = "refuse": the
    // record's write returned; "continue": it is queued).
    if let Some(audit) = &services.audit {
        let record = pipeline::audit_record(ctx, &method, request_id.to_string(), None);
        match audit.record_decision(record).await {
            Ok(ticket) => ctx.audit_ticket = Some(ticket),
            Err(crate::audit::AuditUnavailable) => {
                ctx.decision = None;
                return Err(ProxyError::AuditUnavailable.into());
            }
        }
    }
    let sent = Instant::now();
    let timeout = ctx.snap.config.timeouts.upstream_response;
    let result = tokio::time::timeout(timeout, ctx.snap.upstream.send(m.project, fwd)).await;
    if let Some((first_byte, _)) = ctx.snap.labels.region_histograms(metrics, m.project) {
        first_byte.observe(sent.elapsed().as_secs_f64());
    }
    // A refused batch aborted its upload: the guard left its refusal before the send ended.
    if let Some(refusal) = batch_verdict.and_then(|v| v.take()) {
        if let Some(stop) = pipeline::batch_verdict(ctx, refusal) {
            return Err(stop);
        }
    }
    let upstream = match result {
        Err(_) => return Err(ProxyError::UpstreamTimeout.into()),
        Ok(Err(e)) => return Err(upstream_error(&e).into()),
        Ok(Ok(res)) => res,
    };

    let (mut parts, body) = upstream.into_parts();
    pipeline::response(ctx, m, &mut parts);
    if parts.status == http::StatusCode::SWITCHING_PROTOCOLS {
        let upstream_side = parts.extensions.remove::<hyper::upgrade::OnUpgrade>();
        if let (Some(client_side), Some(upstream_side)) = (upgrade, upstream_side) {
            tokio::spawn(splice_upgraded(client_side, upstream_side));
        }
        return Ok(Response::from_parts(parts, ProxyBody::Empty));
    }
    Ok(Response::from_parts(parts, body))
}

/// Reads a body that must be inspected, within `limits.max_body_bytes`,
/// `timeouts.request_body` and the process-wide `limits.max_buffered_bytes` (each frame is
/// charged as it arrives, so a burst of large bodies is refused before it is held).
async fn read_body(
    snap: &Snapshot,
    services: &Services,
    charge: &mut crate::budget::Charge,
    body: Incoming,
) -> Result<Bytes, ProxyError> {
    let limit = snap.config.limits.max_body_bytes;
    let mut limited = http_body_util::Limited::new(body, usize::try_from(limit).unwrap_or(usize::MAX));
    let timeout = snap.config.timeouts.request_body;
    let read = async {
        let mut chunks: Vec<Bytes> = Vec::new();
        while let Some(frame) = limited.frame().await {
            let frame = match frame {
                Ok(f) => f,
                Err(e) if e.is::<http_body_util::LengthLimitError>() => {
                    return Err(ProxyError::TooLarge { limit })
                }
                Err(_) => {
                    return Err(ProxyError::BadRequest(
                        "the request body could not be read".into(),
                    ))
                }
            };
            if let Ok(data) = frame.into_data() {
                take_budget(services, charge, data.len())?;
                chunks.push(data);
            }
        }
        Ok(match chunks.len() {
            0 => Bytes::new(),
            1 => chunks.swap_remove(0),
            _ => {
                let mut all = bytes::BytesMut::with_capacity(chunks.iter().map(Bytes::len).sum());
                for c in &chunks {
                    all.extend_from_slice(c);
                }
                all.freeze()
            }
        })
    };
    match tokio::time::timeout(timeout, read).await {
        Err(_) => Err(ProxyError::BadRequest(
            "the request body was not received in time".into(),
        )),
        Ok(r) => r,
    }
}

fn take_budget(services: &Services, charge: &mut crate::budget::Charge, n: usize) -> Result<(), ProxyError> {
    services.buffered.take(charge, n).inspect_err(|_| {
        services.metrics.buffer_refusals.inc();
    })
}

fn upstream_error(e: &crate::pool::UpstreamError) -> ProxyError {
    match e {
        crate::pool::UpstreamError::Connect(_) => ProxyError::UpstreamUnavailable("connection failed".into()),
        crate::pool::UpstreamError::Request(_) => ProxyError::UpstreamUnavailable(
            "the upstream closed the connection or answered invalid HTTP".into(),
        ),
    }
}

/// Realtime websockets: after both sides agreed to switch protocols, frames pass both ways
/// untouched.
async fn splice_upgraded(client: hyper::upgrade::OnUpgrade, upstream: hyper::upgrade::OnUpgrade) {
    let (Ok(client), Ok(upstream)) = (client.await, upstream.await) else {
        return;
    };
    let mut client = hyper_util::rt::TokioIo::new(client);
    let mut upstream = hyper_util::rt::TokioIo::new(upstream);
    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
}
