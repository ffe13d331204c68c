//! One request, start to end. The phases, in order, and what each may change:
//!
//! 1. **early request** ([`evaluate::early`]): selects the project and the catalog operation
//!    from the request head; may refuse (no project, unknown endpoint, a denial that needs no
//!    body). Changes nothing.
//! 2. **request body** ([`read_body`] + [`evaluate::inspect`]): only for operations whose
//!    body carries policy fields, buffers it within `limits.max_body_bytes` and inspects it;
//!    decides. May refuse (400/403/413/415). Other bodies are not touched: they stream.
//! 3. **upstream request** ([`upstream_request`]): builds what is forwarded: the region's
//!    URI with the same path and query, `Host`, hop-by-hop headers removed, the project's key
//!    and `OpenAI-Project`, and the decided rewrites as byte splices. The only phase that edits
//!    the request.
//! 4. **response** ([`respond`]): streams the upstream's response back as it arrives, with
//!    hop-by-hop headers removed and the `x-residency-*` headers added. Never buffers.
//! 5. **logging** ([`log_request`]): one line and the metrics, without content or credentials.

use crate::audit::{AuditLog, AuditRecord};
use crate::batch;
use crate::body::{Held, ProxyBody, ResponseMeter};
use crate::error::ProxyError;
use crate::evaluate::{self, EarlyRefusal, Inspected, Matched};
use crate::headers;
use crate::metrics::Metrics;
use crate::snapshot::Snapshot;
use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, Uri};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use policy::{Decision, Verdict};
use std::sync::Arc;
use std::time::Instant;

/// What is known about a request for its log line and metrics.
struct Outcome<'a> {
    snap: &'a Snapshot,
    project: Option<usize>,
    op: Option<policy::OpId>,
    decision: Option<Decision>,
    model: Option<String>,
    status: StatusCode,
    upstream_status: Option<StatusCode>,
    error: Option<&'static str>,
}

/// What every request shares for the life of the process.
pub struct Services {
    pub metrics: Metrics,
    pub audit: Option<AuditLog>,
    /// `limits.max_concurrent_requests`: past it, 503 rather than unbounded queueing.
    pub inflight: Arc<tokio::sync::Semaphore>,
}

/// Handles one request on `snap`, the snapshot taken when the request arrived.
pub async fn handle(snap: Arc<Snapshot>, services: &Services, req: Request<Incoming>) -> Response<Held> {
    let started = Instant::now();
    let request_id = RequestId::of(&req);
    let method = req.method().clone();
    // The slot goes with the response body: a stream holds it until its last byte.
    let (res, outcome, slot) = match services.inflight.clone().try_acquire_owned() {
        Ok(slot) => {
            let (res, out) = proxy(&snap, &services.metrics, req).await;
            (res, out, Some(slot))
        }
        Err(_) => {
            let mut out = Outcome::new(&snap);
            (refuse(&mut out, ProxyError::Overloaded), out, None)
        }
    };
    log_request(&outcome, &services.metrics, started, &request_id);
    if let Some(audit) = &services.audit {
        audit
            .record(audit_record(&outcome, &method, request_id.to_string()))
            .await;
    }
    // An upstream response is metered to its last byte.
    let histograms = outcome
        .project
        .and_then(|p| snap.labels.region_histograms(&services.metrics, p));
    let meter = match (outcome.upstream_status, histograms) {
        (Some(_), Some((_, duration))) => Some(ResponseMeter {
            started,
            bytes: 0,
            bytes_total: services.metrics.response_bytes.clone(),
            duration: duration.clone(),
        }),
        _ => None,
    };
    res.map(|body| Held::new(body, slot, meter))
}

impl<'a> Outcome<'a> {
    fn new(snap: &'a Snapshot) -> Outcome<'a> {
        Outcome {
            snap,
            project: None,
            op: None,
            decision: None,
            model: None,
            status: StatusCode::OK,
            upstream_status: None,
            error: None,
        }
    }
}

async fn proxy<'s>(
    snap: &'s Arc<Snapshot>,
    metrics: &Metrics,
    req: Request<Incoming>,
) -> (Response<ProxyBody>, Outcome<'s>) {
    let mut out = Outcome::new(snap);
    // Phase 1: early request.
    if let Err(e) = check_framing(&req) {
        return (refuse(&mut out, e), out);
    }
    let m = match evaluate::early(snap, req.method(), req.uri(), req.headers()) {
        Ok(m) => m,
        Err(refusal) => {
            let EarlyRefusal {
                project,
                op,
                decision,
                error,
            } = *refusal;
            out.project = project;
            out.op = op;
            return match error {
                Some(e) => (refuse(&mut out, e), out),
                None => (deny(&mut out, decision), out),
            };
        }
    };
    out.project = Some(m.project);
    out.op = Some(m.op);
    // After a switch, bytes pass both ways unchecked: only an operation the catalog serves as
    // a WebSocket (realtime, whose query was checked) may ask the upstream for one.
    if is_websocket_upgrade(req.headers()) && !snap.config.catalog.operation(m.op).websocket {
        return (
            refuse(
                &mut out,
                ProxyError::BadRequest(
                    "a websocket upgrade is accepted only on the catalog's websocket endpoints (GET /v1/realtime)"
                        .into(),
                ),
            ),
            out,
        );
    }

    // Phase 2: request body.
    let (mut parts, body) = req.into_parts();
    let upgrade = if is_websocket_upgrade(&parts.headers) {
        parts.extensions.remove::<hyper::upgrade::OnUpgrade>()
    } else {
        None
    };
    let (buffered, streaming) = if evaluate::needs_body(snap, m.op) {
        match read_body(snap, &mut parts, body).await {
            Ok(b) => {
                metrics.bytes_in.inc_by(b.len() as u64);
                (Some(b), None)
            }
            Err(e) => return (refuse(&mut out, e), out),
        }
    } else {
        (None, Some(body))
    };
    let content_type = parts
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let mut inspected = match evaluate::inspect(snap, m, &parts.uri, content_type, buffered.as_ref()) {
        Ok(i) => i,
        Err(e) => return (refuse(&mut out, e), out),
    };
    out.model = inspected.model.take();
    if inspected.decision.verdict == Verdict::Deny {
        return (deny(&mut out, inspected.decision), out);
    }

    // A possible batch input streams through watched, line by line.
    let mut batch_verdict = None;
    let streaming = match (streaming, &snap.config.catalog.operation(m.op).batch_input) {
        (Some(incoming), Some(spec)) => match watch_batch(snap, m, &parts, incoming, spec) {
            Ok((body, verdict)) => {
                batch_verdict = Some(verdict);
                Some(body)
            }
            Err(e) => return (refuse(&mut out, e), out),
        },
        (s, _) => s.map(ProxyBody::Incoming),
    };

    // Phase 3: upstream request.
    let fwd = match upstream_request(snap, m, parts, &inspected, buffered, streaming) {
        Ok(r) => r,
        Err(e) => return (refuse(&mut out, e), out),
    };
    if let ProxyBody::Chunks { remaining, .. } = fwd.body() {
        metrics.bytes_out.inc_by(*remaining);
    }
    let sent = Instant::now();
    let timeout = snap.config.timeouts.upstream_response;
    let result = tokio::time::timeout(timeout, snap.upstream.send(m.project, fwd)).await;
    if let Some((first_byte, _)) = snap.labels.region_histograms(metrics, m.project) {
        first_byte.observe(sent.elapsed().as_secs_f64());
    }
    out.decision = Some(inspected.decision);
    if let Some(refusal) = batch_verdict.and_then(|v| v.lock().ok().and_then(|mut r| r.take())) {
        if let Some(r) = batch_refusal(&mut out, refusal) {
            return (r, out);
        }
    }
    let upstream = match result {
        Err(_) => return (refuse(&mut out, ProxyError::UpstreamTimeout), out),
        Ok(Err(e)) => return (refuse(&mut out, upstream_error(&e)), out),
        Ok(Ok(res)) => res,
    };

    // Phase 4: response.
    out.upstream_status = Some(upstream.status());
    let res = respond(&mut out, m, upstream, upgrade);
    (res, out)
}

/// Requests we refuse before looking at policy: forms a proxy could read differently from
/// the upstream, or targets that would make us connect elsewhere.
pub(crate) fn check_framing<B>(req: &Request<B>) -> Result<(), ProxyError> {
    if req.method() == http::Method::CONNECT {
        return Err(ProxyError::BadRequest("CONNECT is not supported".into()));
    }
    // HTTP/2 always carries :scheme and :authority; in HTTP/1.x they mean an absolute-form
    // target, which a reverse proxy must not follow.
    if req.version() < http::Version::HTTP_2
        && (req.uri().scheme().is_some() || req.uri().authority().is_some())
    {
        return Err(ProxyError::BadRequest(
            "absolute-form request targets are not accepted".into(),
        ));
    }
    let h = req.headers();
    if h.get_all(http::header::CONTENT_LENGTH).iter().count() > 1 {
        return Err(ProxyError::BadRequest(
            "more than one Content-Length header".into(),
        ));
    }
    // We inspect under the first Content-Type; an upstream could read the body under another.
    if h.get_all(http::header::CONTENT_TYPE).iter().count() > 1 {
        return Err(ProxyError::BadRequest("more than one Content-Type header".into()));
    }
    // Content-Length with Transfer-Encoding never gets here: hyper drops the length, so
    // `crate::framing` refuses it in the bytes before hyper parses them.
    // hyper decodes only a final `chunked` and passes any other coding through as body bytes,
    // which we would inspect (and forward) without the coding the client meant.
    let mut te = h.get_all(http::header::TRANSFER_ENCODING).iter();
    if let Some(v) = te.next() {
        if te.next().is_some() || !v.as_bytes().trim_ascii().eq_ignore_ascii_case(b"chunked") {
            return Err(ProxyError::BadRequest(
                "Transfer-Encoding other than a single chunked".into(),
            ));
        }
    }
    // A Connection option naming Content-Type or Content-Encoding would have us drop the field
    // we read the body by (RFC 9110 §7.6.1): the upstream would read it without.
    let drops_framing = h
        .get_all(http::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|n| {
            let n = n.trim();
            n.eq_ignore_ascii_case("content-type") || n.eq_ignore_ascii_case("content-encoding")
        });
    if drops_framing {
        return Err(ProxyError::BadRequest(
            "Connection may not name Content-Type or Content-Encoding".into(),
        ));
    }
    // RFC 9112 §3.2: more than one Host is a 400.
    if h.get_all(http::header::HOST).iter().count() > 1 {
        return Err(ProxyError::BadRequest("more than one Host header".into()));
    }
    Ok(())
}

fn is_websocket_upgrade(h: &http::HeaderMap) -> bool {
    h.get(http::header::UPGRADE)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"websocket"))
}

/// Buffers a body that must be inspected, within the limit. A gzip or deflate body is
/// decompressed (the limit applies to the decompressed size) and forwarded decompressed,
/// so that what is forwarded is exactly what was inspected.
async fn read_body(
    snap: &Snapshot,
    parts: &mut http::request::Parts,
    body: Incoming,
) -> Result<Bytes, ProxyError> {
    let limit = snap.config.limits.max_body_bytes;
    let encoding = match parts.headers.get(http::header::CONTENT_ENCODING) {
        None => Encoding::Identity,
        Some(v) => match v.as_bytes().to_ascii_lowercase().as_slice() {
            b"identity" => Encoding::Identity,
            b"gzip" | b"x-gzip" => Encoding::Gzip,
            b"deflate" => Encoding::Deflate,
            other => {
                return Err(ProxyError::UnsupportedEncoding(
                    String::from_utf8_lossy(other).into_owned(),
                ))
            }
        },
    };
    if parts
        .headers
        .get_all(http::header::CONTENT_ENCODING)
        .iter()
        .count()
        > 1
    {
        return Err(ProxyError::UnsupportedEncoding("more than one encoding".into()));
    }
    let declared = parts
        .headers
        .get(http::header::CONTENT_LENGTH)
        .map(|v| v.to_str().ok().and_then(|s| s.parse::<u64>().ok()))
        .map(|n| n.ok_or_else(|| ProxyError::BadRequest("invalid Content-Length".into())))
        .transpose()?;
    if declared.is_some_and(|n| n > limit) {
        return Err(ProxyError::TooLarge { limit });
    }
    let limited = http_body_util::Limited::new(body, usize::try_from(limit).unwrap_or(usize::MAX));
    let timeout = snap.config.timeouts.request_body;
    let raw = match tokio::time::timeout(timeout, limited.collect()).await {
        Err(_) => {
            return Err(ProxyError::BadRequest(
                "the request body was not received in time".into(),
            ))
        }
        Ok(Ok(c)) => c.to_bytes(),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
            return Err(ProxyError::TooLarge { limit })
        }
        Ok(Err(_)) => {
            return Err(ProxyError::BadRequest(
                "the request body could not be read".into(),
            ))
        }
    };
    match encoding {
        Encoding::Identity => Ok(raw),
        Encoding::Gzip | Encoding::Deflate => {
            let decoded = decompress(&raw, encoding, limit)?;
            parts.headers.remove(http::header::CONTENT_ENCODING);
            Ok(decoded)
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Identity,
    Gzip,
    Deflate,
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

/// Phase 3: the request as it goes upstream.
fn upstream_request(
    snap: &Snapshot,
    m: Matched,
    mut parts: http::request::Parts,
    inspected: &Inspected,
    buffered: Option<Bytes>,
    streaming: Option<ProxyBody>,
) -> Result<Request<ProxyBody>, ProxyError> {
    let up = &snap.config.upstreams[m.project];
    // The original path and query are reused as they are (no copy) unless the query was rewritten.
    let path_and_query = match &inspected.query {
        Some(q) => http::uri::PathAndQuery::try_from(format!("{}?{q}", parts.uri.path()))
            .map_err(|_| ProxyError::BadRequest("the request target cannot be forwarded".into()))?,
        None => parts
            .uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| http::uri::PathAndQuery::from_static("/")),
    };
    // Origin-form: the pool knows the origin (and writes the absolute form for HTTP/2).
    let uri = Uri::from(path_and_query);
    let websocket = is_websocket_upgrade(&parts.headers);
    let h = &mut parts.headers;
    headers::strip_hop_by_hop(h, websocket);
    h.insert(http::header::HOST, up.host_header.clone());
    crate::identity::forward(
        h,
        snap.config.underscores,
        up.authorization.is_some(),
        up.openai_project.is_some(),
    );
    if let Some(auth) = &up.authorization {
        h.insert(http::header::AUTHORIZATION, auth.clone());
    }
    if let Some(p) = &up.openai_project {
        h.insert("openai-project", p.clone());
    }
    let body = match (buffered, streaming) {
        (Some(bytes), _) => {
            let chunks = match &inspected.splice {
                Some(s) => s
                    .clone()
                    .apply(&bytes)
                    .map_err(|_| ProxyError::BadRequest("rewrite failed".into()))?,
                None => vec![bytes],
            };
            let body = ProxyBody::chunks(chunks);
            if let Some(len) = http_body::Body::size_hint(&body).exact() {
                h.insert(http::header::CONTENT_LENGTH, HeaderValue::from(len));
            }
            body
        }
        (None, Some(body)) => body,
        (None, None) => ProxyBody::Empty,
    };
    parts.uri = uri;
    parts.version = http::Version::HTTP_11;
    Ok(Request::from_parts(parts, body))
}

/// Wraps an upload that may be a batch input in its guard (see `crate::batch`).
fn watch_batch(
    snap: &Arc<Snapshot>,
    m: Matched,
    parts: &http::request::Parts,
    incoming: Incoming,
    spec: &policy::BatchInput,
) -> Result<(ProxyBody, batch::Verdict), ProxyError> {
    let ct = parts
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let boundary = inspect::boundary_from_content_type(ct)
        .map_err(|e| ProxyError::InvalidBody(format!("this upload must be multipart/form-data: {e}")))?;
    let line_snap = snap.clone();
    let line_spec = spec.clone();
    let check: batch::LineCheck =
        Box::new(move |line| evaluate::batch_line(&line_snap, m.project, &line_spec, line));
    let limits = batch::BatchSpec {
        purpose_field: spec.purpose_field.clone(),
        purpose_value: spec.purpose_value.clone(),
        file_field: spec.file_field.clone(),
        max_line: usize::try_from(snap.config.limits.max_body_bytes).unwrap_or(usize::MAX),
        max_held: usize::try_from(snap.config.limits.max_body_bytes).unwrap_or(usize::MAX),
    };
    let checker = batch::BatchChecker::new(limits, boundary, check);
    let verdict = batch::Verdict::default();
    let report = snap.config.projects.projects[m.project].mode == policy::Mode::Report;
    let guard = batch::BatchGuard::new(incoming, checker, verdict.clone(), report);
    Ok((ProxyBody::Batch(Box::new(guard)), verdict))
}

/// A refused batch input: 403 for a policy rule, 400 for an unreadable upload; in report mode
/// the upload went through and the decision is marked instead.
fn batch_refusal(out: &mut Outcome<'_>, r: batch::Refusal) -> Option<Response<ProxyBody>> {
    let report = out
        .project
        .is_some_and(|i| out.snap.config.projects.projects[i].mode == policy::Mode::Report);
    if report {
        if let (Some(d), Some(rule)) = (out.decision.as_mut(), r.rule) {
            d.verdict = Verdict::ReportDeny;
            d.rules.insert(rule);
        }
        return None;
    }
    Some(match r.rule {
        Some(rule) => deny(out, Decision::deny(rule, r.message, Some("file".into()))),
        None => refuse(out, ProxyError::InvalidBody(r.message)),
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

/// Phase 4: the upstream's response, streamed back.
fn respond(
    out: &mut Outcome<'_>,
    m: Matched,
    upstream: Response<ProxyBody>,
    upgrade: Option<hyper::upgrade::OnUpgrade>,
) -> Response<ProxyBody> {
    let up = &out.snap.config.upstreams[m.project];
    let switching = upstream.status() == StatusCode::SWITCHING_PROTOCOLS;
    let (mut parts, body) = upstream.into_parts();
    if switching {
        let upstream_side = parts.extensions.remove::<hyper::upgrade::OnUpgrade>();
        if let (Some(client_side), Some(upstream_side)) = (upgrade, upstream_side) {
            tokio::spawn(splice_upgraded(client_side, upstream_side));
        }
    }
    headers::strip_hop_by_hop(&mut parts.headers, switching);
    if let Some(d) = &out.decision {
        headers::set_residency(
            &mut parts.headers,
            d,
            Some(&up.project_header),
            Some(&up.region_header),
        );
    }
    out.status = parts.status;
    Response::from_parts(parts, if switching { ProxyBody::Empty } else { body })
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

fn deny(out: &mut Outcome<'_>, decision: Decision) -> Response<ProxyBody> {
    let denial = decision.denial.clone().unwrap_or_else(|| policy::Denial {
        rule: policy::Rule::UnknownEndpoint,
        message: "Refused by policy.".into(),
        param: None,
    });
    let mut res = ProxyError::Denied(denial).into_response();
    let (p, r) = project_headers(out);
    headers::set_residency(res.headers_mut(), &decision, p, r);
    out.status = res.status();
    out.decision = Some(decision);
    res
}

fn refuse(out: &mut Outcome<'_>, e: ProxyError) -> Response<ProxyBody> {
    let mut res = e.into_response();
    let decision = out.decision.clone().unwrap_or(Decision {
        verdict: Verdict::Deny,
        rules: policy::RuleSet::default(),
        denial: None,
        rewrites: policy::Rewrites::default(),
    });
    let (p, r) = project_headers(out);
    headers::set_residency(res.headers_mut(), &decision, p, r);
    out.status = res.status();
    out.error = Some(e.code());
    res
}

fn project_headers<'a>(out: &Outcome<'a>) -> (Option<&'a HeaderValue>, Option<&'a HeaderValue>) {
    let snap: &'a Snapshot = out.snap;
    match out.project {
        Some(i) => (
            Some(&snap.config.upstreams[i].project_header),
            Some(&snap.config.upstreams[i].region_header),
        ),
        None => (None, None),
    }
}

/// The client's `x-request-id` when it is short printable ASCII, else our own `rp-<hex>`.
/// Kept unformatted: it is turned into text only for a log line or audit record written.
enum RequestId {
    Client(HeaderValue),
    Ours(u64),
}

impl RequestId {
    fn of(req: &Request<Incoming>) -> RequestId {
        match req
            .headers()
            .get("x-request-id")
            .filter(|v| v.len() <= 128 && v.as_bytes().iter().all(|b| b.is_ascii_graphic()))
        {
            Some(v) => RequestId::Client(v.clone()),
            None => {
                use std::sync::atomic::{AtomicU64, Ordering};
                static NEXT: AtomicU64 = AtomicU64::new(1);
                RequestId::Ours(NEXT.fetch_add(1, Ordering::Relaxed))
            }
        }
    }
}

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            // Checked printable ASCII in `of`.
            RequestId::Client(v) => f.write_str(v.to_str().unwrap_or("-")),
            RequestId::Ours(n) => write!(f, "rp-{n:x}"),
        }
    }
}

fn audit_record(out: &Outcome<'_>, method: &http::Method, request_id: String) -> AuditRecord {
    let snap = out.snap;
    let project = out.project.map(|i| &snap.config.projects.projects[i]);
    AuditRecord {
        request_id,
        method: method.as_str().to_string(),
        project: project.map_or_else(|| "-".into(), |p| p.name.clone()),
        region: project.map_or_else(|| "-".into(), |p| p.region.clone()),
        endpoint: out.op.map_or_else(
            || "unknown".into(),
            |op| snap.config.catalog.operation(op).template.clone(),
        ),
        model: catalog_model(out).map(str::to_string),
        decision: out.decision.as_ref().map_or("error", |d| d.verdict.as_str()),
        rule: out
            .decision
            .as_ref()
            .map_or_else(String::new, |d| d.rules.header_value()),
        status: out.status.as_u16(),
    }
}

/// The request's model, only when the catalog lists it for the endpoint: a name outside the
/// catalog is the client's free text, which is never logged.
fn catalog_model<'a>(out: &'a Outcome<'_>) -> Option<&'a str> {
    let snap = out.snap;
    out.model.as_deref().filter(|m| {
        out.op.is_some_and(|op| {
            snap.config
                .catalog
                .endpoint_of(op)
                .models
                .as_ref()
                .is_some_and(|l| l.iter().any(|x| x == m))
        })
    })
}

/// Phase 5: one log line and the metrics. No content, no credentials.
fn log_request(out: &Outcome<'_>, metrics: &Metrics, started: Instant, request_id: &RequestId) {
    let snap = out.snap;
    let project = out.project.map(|i| &snap.config.projects.projects[i]);
    let endpoint = out.op.map_or("unknown", |op| {
        snap.config.catalog.operation(op).template.as_str()
    });
    let (verdict, rules) = match &out.decision {
        Some(d) => (d.verdict.as_str(), d.rules),
        None => ("error", policy::RuleSet::default()),
    };
    // The line's fields (the model lookup, the id's text) are worked out only when it is written.
    if tracing::enabled!(target: "residency_proxy::request", tracing::Level::INFO) {
        // A model outside the catalog is the client's free text: log it only if the catalog knows it.
        let model = catalog_model(out);
        let request_id = request_id.to_string();
        let rules = rules.header_value();
        tracing::info!(
            target: "residency_proxy::request",
            request_id = request_id.as_str(),
            project = project.map_or("-", |p| p.name.as_str()),
            region = project.map_or("-", |p| p.region.as_str()),
            endpoint,
            model = model.unwrap_or("-"),
            decision = verdict,
            rule = rules.as_str(),
            status = out.status.as_u16(),
            upstream_status = out.upstream_status.map_or(0, |s| s.as_u16()),
            error = out.error.unwrap_or("-"),
            latency_ms = started.elapsed().as_secs_f64() * 1000.0,
        );
    }
    snap.labels
        .count_request(metrics, out.project, out.op, verdict, rules);
}
