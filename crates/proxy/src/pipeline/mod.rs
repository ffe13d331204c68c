//! The request pipeline: one per-request context ([`Ctx`]) and the named phases every request
//! walks, in this order. `serve` ([`crate::handler`]) runs them around the network, `explain`
//! ([`crate::explain`]) runs the same functions on a request given on the command line and
//! only skips the network, and each line of a batch input runs the deciding ones
//! ([`route`], the second half of [`early_request`], and [`crate::evaluate::inspect`]) as a
//! request of its own.
//!
//! | phase | reads | may change |
//! |---|---|---|
//! | [`early_request`] | the request head | `ctx.project`, `ctx.op`; may stop (framing, no project, unknown endpoint, a denial that needs no body, a websocket upgrade off the catalog's websocket endpoints) |
//! | [`request_body`] ([`body_plan`] first, then [`decode_body`]) | head, the body when the operation's plan inspects it | the request's `Content-Encoding` (a decoded body is forwarded decoded), `ctx.model`; may stop (400/403/413/415) |
//! | [`batch_checker`] / [`batch_verdict`] | an upload the catalog says may be a batch input, line by line | `ctx.decision` (report mode marks it); may stop (403 for a line's rule, 400 for an unreadable upload) |
//! | [`upstream_request`] | the decision's edits | the request: URI, `Host`, hop-by-hop headers, the project's key and `OpenAI-Project`, the body as byte splices; sets `ctx.decision`. Every edit of the forwarded request but one (`request_body` drops the `Content-Encoding` of a body it decoded) |
//! | [`response`] | the upstream's response head | the response's hop-by-hop and `x-residency-*` headers, `ctx.status`, `ctx.upstream_status`. Never the body, which streams |
//! | [`finish`] | the whole exchange, when the response body has ended | nothing: writes the log line, the metrics and the audit record |
//!
//! A phase that refuses returns a [`Stop`]; [`Ctx::stop`] turns it into the OpenAI-shaped
//! answer, so `serve` and `explain` give the same status for the same stop.

mod body;
mod finish;

/// Phase 1 for a line of a batch input, whose project is the upload's.
pub use crate::evaluate::route;
pub use body::{body_plan, decode_body, decode_body_now, request_body, BodyPlan, Encoding};
pub use finish::{audit_record, finish, BodyEnd, Finish, RequestId, Services, Tracked};

use crate::batch;
use crate::body::ProxyBody;
use crate::error::ProxyError;
use crate::evaluate::{self, EarlyRefusal, Inspected, Matched};
use crate::headers;
use crate::snapshot::Snapshot;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode, Uri};
use policy::{Decision, Verdict};
use std::sync::Arc;

/// What the phases have learned about one request. Each phase's doc says which fields it sets.
pub struct Ctx {
    /// The snapshot taken when the request arrived: a reload never changes a request in flight.
    pub snap: Arc<Snapshot>,
    pub project: Option<usize>,
    pub op: Option<policy::OpId>,
    pub decision: Option<Decision>,
    /// The model as the client sent it; logged only when the catalog lists it.
    pub model: Option<String>,
    /// The status sent to the client.
    pub status: StatusCode,
    pub upstream_status: Option<StatusCode>,
    /// The error code of a refusal that is not a policy decision.
    pub error: Option<&'static str>,
    /// The decision record of a forwarded request; its outcome is recorded in [`finish`].
    pub audit_ticket: Option<crate::audit::Ticket>,
}

/// Why a phase ends the request before the upstream: a policy denial (403 with the rule) or
/// any other refusal (its status and OpenAI error code).
#[derive(Debug)]
pub enum Stop {
    Deny(Decision),
    Refuse(ProxyError),
}

impl From<ProxyError> for Stop {
    fn from(e: ProxyError) -> Stop {
        Stop::Refuse(e)
    }
}

impl Ctx {
    pub fn new(snap: Arc<Snapshot>) -> Ctx {
        Ctx {
            snap,
            project: None,
            op: None,
            decision: None,
            model: None,
            status: StatusCode::OK,
            upstream_status: None,
            error: None,
            audit_ticket: None,
        }
    }

    /// The answer to a stopped request; records its status, decision or error.
    pub fn stop(&mut self, stop: Stop) -> Response<ProxyBody> {
        match stop {
            Stop::Deny(decision) => {
                let denial = decision.denial.clone().unwrap_or_else(|| policy::Denial {
                    rule: policy::Rule::UnknownEndpoint,
                    message: "Refused by policy.".into(),
                    param: None,
                });
                let mut res = ProxyError::Denied(denial).into_response();
                let (p, r) = self.project_headers();
                headers::set_residency(res.headers_mut(), &decision, p, r);
                self.status = res.status();
                self.decision = Some(decision);
                res
            }
            Stop::Refuse(e) => {
                let mut res = e.into_response();
                let (p, r) = self.project_headers();
                match &self.decision {
                    Some(d) => headers::set_residency(res.headers_mut(), d, p, r),
                    None => headers::set_residency(res.headers_mut(), &refused(), p, r),
                }
                self.status = res.status();
                self.error = Some(e.code());
                res
            }
        }
    }

    fn project_headers(&self) -> (Option<&HeaderValue>, Option<&HeaderValue>) {
        match self.project.and_then(|i| self.snap.config.upstreams.get(i)) {
            Some(up) => (Some(&up.project_header), Some(&up.region_header)),
            None => (None, None),
        }
    }

    /// Whether the selected project only reports (forwards what it would refuse).
    fn report_mode(&self) -> bool {
        self.project
            .is_some_and(|i| self.snap.config.projects.projects[i].mode == policy::Mode::Report)
    }
}

/// The decision headers of a refusal that is not a policy decision.
fn refused() -> Decision {
    Decision {
        verdict: Verdict::Deny,
        rules: policy::RuleSet::default(),
        denial: None,
        rewrites: policy::Rewrites::default(),
    }
}

/// Phase 1, early request. Reads the request head only: framing checks, project selection,
/// path classification, the checks that need no body, and whether a websocket upgrade is
/// allowed here. Sets `ctx.project` and `ctx.op`. Changes nothing in the request.
pub fn early_request<B>(ctx: &mut Ctx, req: &Request<B>) -> Result<Matched, Stop> {
    check_framing(req)?;
    let m = match evaluate::early(&ctx.snap, req.method(), req.uri(), req.headers()) {
        Ok(m) => m,
        Err(refusal) => {
            let EarlyRefusal {
                project,
                op,
                decision,
                error,
            } = *refusal;
            ctx.project = project;
            ctx.op = op;
            return Err(match error {
                Some(e) => Stop::Refuse(e),
                None => Stop::Deny(decision),
            });
        }
    };
    ctx.project = Some(m.project);
    ctx.op = Some(m.op);
    // After a switch, bytes pass both ways unchecked: only an operation the catalog serves as
    // a WebSocket (realtime, whose query was checked) may ask the upstream for one.
    if is_websocket_upgrade(req.headers()) && !ctx.snap.config.catalog.operation(m.op).websocket {
        return Err(Stop::Refuse(ProxyError::BadRequest(
            "a websocket upgrade is accepted only on the catalog's websocket endpoints (GET /v1/realtime)"
                .into(),
        )));
    }
    Ok(m)
}

/// Requests we refuse before looking at policy: forms a proxy could read differently from
/// the upstream, or targets that would make us connect elsewhere.
fn check_framing<B>(req: &Request<B>) -> Result<(), ProxyError> {
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

pub fn is_websocket_upgrade(h: &HeaderMap) -> bool {
    h.get(http::header::UPGRADE)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"websocket"))
}

/// Batch inputs, phase 2 for an upload the catalog says may be one: the checker that follows
/// it line by line, each line decided by [`crate::evaluate::batch_line`] (the same phase
/// functions as a request of its own). `serve` feeds it as the upload streams through,
/// `explain` all at once; either way [`batch_verdict`] turns its refusal into the answer.
pub fn batch_checker(
    ctx: &Ctx,
    m: Matched,
    headers: &HeaderMap,
    spec: &policy::BatchInput,
) -> Result<batch::BatchChecker, Stop> {
    // The checker reads the bytes as they come: a coded body would be read as its coding's
    // bytes while the upstream decodes it (a gzip header can hold a good form, its data a bad
    // batch). Refused rather than decoded: the upload streams and is never buffered.
    let mut codings = headers.get_all(http::header::CONTENT_ENCODING).iter();
    if let Some(coding) = codings.next() {
        if codings.next().is_some() || !coding.as_bytes().trim_ascii().eq_ignore_ascii_case(b"identity") {
            return Err(ProxyError::UnsupportedEncoding(
                String::from_utf8_lossy(coding.as_bytes()).into_owned(),
            )
            .into());
        }
    }
    let ct = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let boundary = inspect::boundary_from_content_type(ct)
        .map_err(|e| ProxyError::InvalidBody(format!("this upload must be multipart/form-data: {e}")))?;
    let line_snap = ctx.snap.clone();
    let line_spec = spec.clone();
    let check: batch::LineCheck =
        Box::new(move |line| evaluate::batch_line(&line_snap, m.project, &line_spec, line));
    // The purpose decides the row an upload is judged on (a batch input is also offered with
    // /v1/batches): where some purpose is refused, nothing goes before the purpose is read.
    let catalog = &ctx.snap.config.catalog;
    let project = &ctx.snap.config.projects.projects[m.project];
    let hold = spec
        .purposes
        .iter()
        .any(|p| policy::upload_purpose(catalog, project, m.op, p).is_some());
    let purpose_snap = ctx.snap.clone();
    let purpose_check: batch::PurposeCheck = Box::new(move |purpose| {
        let project = &purpose_snap.config.projects.projects[m.project];
        match policy::upload_purpose(&purpose_snap.config.catalog, project, m.op, purpose) {
            Some(d) => Err(batch::Refusal {
                param: Some("purpose"),
                rule: Some(d.rule),
                message: d.message,
            }),
            None => Ok(()),
        }
    });
    let max = usize::try_from(ctx.snap.config.limits.max_body_bytes).unwrap_or(usize::MAX);
    let limits = batch::BatchSpec {
        purpose_field: spec.purpose_field.clone(),
        purpose_value: spec.purpose_value.clone(),
        purposes: spec.purposes.clone(),
        file_field: spec.file_field.clone(),
        max_line: max,
        max_held: max,
        hold_until_purpose: hold,
    };
    Ok(batch::BatchChecker::new(limits, boundary, check).with_purpose_check(purpose_check))
}

/// A refused batch input: 403 for a policy rule, 400 for an unreadable upload; in report mode
/// the upload went through and `ctx.decision` is marked instead (None: nothing to stop).
pub fn batch_verdict(ctx: &mut Ctx, r: batch::Refusal) -> Option<Stop> {
    if ctx.report_mode() {
        if let (Some(d), Some(rule)) = (ctx.decision.as_mut(), r.rule) {
            d.verdict = Verdict::ReportDeny;
            d.rules.insert(rule);
        }
        return None;
    }
    Some(match r.rule {
        Some(rule) => Stop::Deny(Decision::deny(
            rule,
            r.message,
            Some(r.param.unwrap_or("file").into()),
        )),
        None => {
            // An upload that cannot be read was not decided, like any unreadable body.
            ctx.decision = None;
            Stop::Refuse(ProxyError::InvalidBody(r.message))
        }
    })
}

/// What goes upstream as the body: the inspected bytes (edited by the decision's splices),
/// or a stream that is not inspected.
pub enum Outgoing {
    Buffered(Bytes),
    Streaming(ProxyBody),
}

/// Phase 3, upstream request: builds what is forwarded: the region's URI with the same path
/// and query (the query rewritten when the decision says so), `Host`, hop-by-hop headers
/// removed, the project's key and `OpenAI-Project`, and the decided rewrites as byte splices.
/// Sets `ctx.decision`. Every edit of the forwarded request is made here but one: [`request_body`]
/// drops the `Content-Encoding` of a body it decoded.
pub fn upstream_request(
    ctx: &mut Ctx,
    m: Matched,
    mut parts: http::request::Parts,
    inspected: Inspected,
    body: Outgoing,
) -> Result<Request<ProxyBody>, Stop> {
    let up = &ctx.snap.config.upstreams[m.project];
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
        ctx.snap.config.underscores,
        up.authorization.is_some(),
        up.openai_project.is_some(),
    );
    if let Some(auth) = &up.authorization {
        h.insert(http::header::AUTHORIZATION, auth.clone());
    }
    if let Some(p) = &up.openai_project {
        h.insert("openai-project", p.clone());
    }
    let body = match body {
        Outgoing::Buffered(bytes) => {
            let chunks = match inspected.splice {
                Some(s) => s
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
        Outgoing::Streaming(body) => body,
    };
    parts.uri = uri;
    parts.version = http::Version::HTTP_11;
    ctx.decision = Some(inspected.decision);
    Ok(Request::from_parts(parts, body))
}

/// Phase 4, response: the upstream's response head as it goes to the client: hop-by-hop
/// headers removed (kept for a protocol switch) and the `x-residency-*` headers added. Sets
/// `ctx.status` and `ctx.upstream_status`. The body is never touched: it streams.
pub fn response(ctx: &mut Ctx, m: Matched, parts: &mut http::response::Parts) {
    let switching = parts.status == StatusCode::SWITCHING_PROTOCOLS;
    headers::strip_hop_by_hop(&mut parts.headers, switching);
    if let Some(d) = &ctx.decision {
        let up = &ctx.snap.config.upstreams[m.project];
        headers::set_residency(
            &mut parts.headers,
            d,
            Some(&up.project_header),
            Some(&up.region_header),
        );
    }
    ctx.upstream_status = Some(parts.status);
    ctx.status = parts.status;
}
