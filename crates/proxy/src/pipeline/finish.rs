//! Phase 5, finish: runs once the response body has ended (its last byte sent, the client
//! gone, or the upstream failing mid-stream), not when the head is sent, so the log line, the
//! metrics and the audit record carry the whole duration, the response bytes and how the body
//! ended. [`Tracked`] is the response body that calls it.

use super::Ctx;
use crate::audit::{AuditLog, AuditRecord, KindLabel};
use crate::body::{BoxError, Coalesce, ProxyBody};
use crate::metrics::Metrics;
use bytes::Bytes;
use http::HeaderValue;
use http_body::{Body, Frame, SizeHint};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

/// What every request shares for the life of the process.
pub struct Services {
    pub metrics: Metrics,
    pub audit: Option<AuditLog>,
    /// `limits.max_concurrent_requests`: past it, 503 rather than unbounded queueing.
    pub inflight: Arc<tokio::sync::Semaphore>,
    /// `limits.max_buffered_bytes`: past it, 503 rather than unbounded memory.
    pub buffered: crate::budget::BufferBudget,
}

/// How a response body ended (the audit's outcome records say the same).
pub use crate::audit::BodyEnd;

/// Everything [`finish`] needs, carried by the response body until it ends.
pub struct Finish {
    pub ctx: Ctx,
    pub services: Arc<Services>,
    pub started: Instant,
    pub request_id: RequestId,
    pub method: http::Method,
}

/// The response body as sent to the client: holds the request's `max_concurrent_requests`
/// slot until it ends (a stream is in flight until its last byte), counts its bytes, ends an
/// upstream body that sends nothing for `timeouts.upstream_idle_secs` (with an error, so the
/// client's stream is cut rather than completed), and runs [`finish`] exactly once, at its end
/// or when it is dropped before.
pub struct Tracked {
    body: Coalesce<ProxyBody>,
    slot: Option<tokio::sync::OwnedSemaphorePermit>,
    finish: Option<Finish>,
    bytes: u64,
    idle: Option<Idle>,
}

/// The silence allowed between an upstream body's frames; the timer exists once it waited.
struct Idle {
    limit: std::time::Duration,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl Tracked {
    pub fn new(body: ProxyBody, slot: Option<tokio::sync::OwnedSemaphorePermit>, finish: Finish) -> Tracked {
        // Only an upstream's body can go silent (a 101's body is empty: frames go elsewhere).
        let idle = finish
            .ctx
            .upstream_status
            .filter(|s| *s != http::StatusCode::SWITCHING_PROTOCOLS)
            .map(|_| Idle {
                limit: finish.ctx.snap.config.timeouts.upstream_idle,
                sleep: None,
            });
        // Only bodies read from an upstream arrive frame by frame; the others are whole.
        let coalesce = matches!(body, ProxyBody::Incoming(_) | ProxyBody::Pooled(_));
        Tracked {
            body: Coalesce::new(body, coalesce),
            slot,
            finish: Some(finish),
            bytes: 0,
            idle,
        }
    }

    /// Polls the idle timer of a body that has nothing yet; true when it ran out.
    fn idle_expired(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(idle) = self.idle.as_mut() else {
            return false;
        };
        let limit = idle.limit;
        let sleep = idle
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        if std::future::Future::poll(sleep.as_mut(), cx).is_pending() {
            return false;
        }
        self.idle = None;
        if let Some(f) = &self.finish {
            f.services
                .metrics
                .timeouts
                .get_or_create(&KindLabel {
                    kind: "upstream_idle",
                })
                .inc();
        }
        true
    }

    fn end(&mut self, how: BodyEnd) {
        self.slot = None;
        if let Some(f) = self.finish.take() {
            finish(f, how, self.bytes);
        }
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        // hyper may drop a body it knows is over without polling it to its end.
        let how = if self.body.is_end_stream() {
            BodyEnd::Complete
        } else {
            BodyEnd::ClientGone
        };
        self.end(how);
    }
}

impl Body for Tracked {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.body).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                this.bytes += frame.data_ref().map_or(0, |d| d.len() as u64);
                if let Some(Idle {
                    sleep: Some(s),
                    limit,
                }) = this.idle.as_mut()
                {
                    s.as_mut().reset(tokio::time::Instant::now() + *limit);
                }
            }
            Poll::Ready(Some(Err(_))) => this.end(BodyEnd::UpstreamError),
            Poll::Ready(None) => this.end(BodyEnd::Complete),
            Poll::Pending => {
                if this.idle_expired(cx) {
                    this.end(BodyEnd::UpstreamIdle);
                    return Poll::Ready(Some(Err("the upstream response body went silent".into())));
                }
            }
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

/// Phase 5: one log line, the metrics and the audit record, without content or credentials.
/// Changes nothing.
pub fn finish(f: Finish, how: BodyEnd, bytes: u64) {
    let Finish {
        ctx,
        services,
        started,
        request_id,
        method,
    } = f;
    let elapsed = started.elapsed();
    let snap = &ctx.snap;
    let metrics = &services.metrics;
    let project = ctx.project.map(|i| &snap.config.projects.projects[i]);
    let endpoint = ctx.op.map_or("unknown", |op| {
        snap.config.catalog.operation(op).template.as_str()
    });
    let (verdict, rules) = match &ctx.decision {
        Some(d) => (d.verdict.as_str(), d.rules),
        None => ("error", policy::RuleSet::default()),
    };
    // The line's fields (the model lookup, the id's text) are worked out only when it is written.
    if tracing::enabled!(target: "residency_proxy::request", tracing::Level::INFO) {
        // A model outside the catalog is the client's free text: log it only if the catalog knows it.
        let model = catalog_model(&ctx);
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
            status = ctx.status.as_u16(),
            upstream_status = ctx.upstream_status.map_or(0, |s| s.as_u16()),
            error = ctx.error.unwrap_or("-"),
            response_bytes = bytes,
            body = how.as_str(),
            latency_ms = elapsed.as_secs_f64() * 1000.0,
        );
    }
    snap.labels
        .count_request(metrics, ctx.project, ctx.op, verdict, rules);
    // An upstream response is metered to its last byte.
    if ctx.upstream_status.is_some() {
        if let Some((_, duration)) = ctx
            .project
            .and_then(|p| snap.labels.region_histograms(metrics, p))
        {
            metrics.response_bytes.inc_by(bytes);
            duration.observe(elapsed.as_secs_f64());
        }
    }
    // Reset or truncated upstream bodies and silent ones are errors: logged and counted.
    if how != BodyEnd::Complete {
        metrics
            .response_errors
            .get_or_create(&KindLabel { kind: how.as_str() })
            .inc();
        if matches!(how, BodyEnd::UpstreamError | BodyEnd::UpstreamIdle) {
            tracing::warn!(
                request_id = %request_id,
                status = ctx.status.as_u16(),
                response_bytes = bytes,
                body = how.as_str(),
                "response did not end complete"
            );
        }
    }
    // A forwarded request's decision was recorded before forwarding: its outcome follows.
    // Any other request gets its one record, with its status, now. Never waits.
    if let Some(audit) = &services.audit {
        match ctx.audit_ticket {
            Some(ticket) => audit.record_outcome(ticket, ctx.status.as_u16(), bytes, how, elapsed),
            None => audit.record(audit_record(
                &ctx,
                &method,
                request_id.to_string(),
                Some(ctx.status.as_u16()),
            )),
        }
    }
}

/// The client's `x-request-id` when it is short printable ASCII, else our own `rp-<hex>`.
/// Kept unformatted: it is turned into text only for a log line or audit record written.
pub enum RequestId {
    Client(HeaderValue),
    Ours(u64),
}

impl RequestId {
    pub fn of(headers: &http::HeaderMap) -> RequestId {
        match headers
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

/// The decision record of a request: `status` is None for a request about to be forwarded.
pub fn audit_record(
    ctx: &Ctx,
    method: &http::Method,
    request_id: String,
    status: Option<u16>,
) -> AuditRecord {
    let snap = &ctx.snap;
    let project = ctx.project.map(|i| &snap.config.projects.projects[i]);
    AuditRecord {
        request_id,
        method: method.as_str().to_string(),
        project: project.map_or_else(|| "-".into(), |p| p.name.clone()),
        region: project.map_or_else(|| "-".into(), |p| p.region.clone()),
        endpoint: ctx.op.map_or_else(
            || "unknown".into(),
            |op| snap.config.catalog.operation(op).template.clone(),
        ),
        model: catalog_model(ctx).map(str::to_string),
        decision: ctx.decision.as_ref().map_or("error", |d| d.verdict.as_str()),
        rule: ctx
            .decision
            .as_ref()
            .map_or_else(String::new, |d| d.rules.header_value()),
        status,
    }
}

/// The request's model, only when the catalog lists it for the endpoint: a name outside the
/// catalog is the client's free text, which is never logged.
fn catalog_model(ctx: &Ctx) -> Option<&str> {
    let snap = &ctx.snap;
    ctx.model.as_deref().filter(|m| {
        ctx.op.is_some_and(|op| {
            snap.config
                .catalog
                .endpoint_of(op)
                .models
                .as_ref()
                .is_some_and(|l| l.iter().any(|x| x == m))
        })
    })
}
