//! `residency-proxy explain`: the decision the proxy would take for one request, offline. It
//! walks the same [`crate::pipeline`] phases as `serve` (framing, project, endpoint, websocket,
//! encoding, body, batch uploads line by line, the upstream request as built) and only skips
//! the network.

use crate::config::Config;
use crate::error::ProxyError;
use crate::evaluate::{self, Matched};
use crate::pipeline::{self, BodyPlan, Ctx, Outgoing, Stop};
use crate::snapshot::Snapshot;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Uri};
use policy::{Decision, StoreRewrite, Verdict};
use serde::Serialize;
use serde_json::{json, Value};
use std::io::Read;
use std::path::Path;
use std::sync::Arc;

pub fn run(
    config: &Path,
    project: Option<&str>,
    headers: &[String],
    body: Option<&Path>,
    method: &str,
    path: &str,
) -> i32 {
    match explain(config, project, headers, body, method, path) {
        Ok(out) => {
            println!("{}", serde_json::to_string(&out).unwrap_or_default());
            if out.refused() {
                3
            } else {
                0
            }
        }
        Err(e) => {
            eprintln!("residency-proxy explain: {e}");
            2
        }
    }
}

/// Why `explain` could not decide (exit 2): the config, or the request given on the command line.
#[derive(Debug, thiserror::Error)]
enum ExplainError {
    #[error("{0}")]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Snapshot(#[from] crate::snapshot::SnapshotError),
    #[error("invalid method")]
    Method,
    #[error("invalid path {0:?}")]
    Path(String),
    #[error("header {0:?} is not `Name: value`")]
    HeaderShape(String),
    #[error("invalid header name in {0:?}")]
    HeaderName(String),
    #[error("invalid header value in {0:?}")]
    HeaderValue(String),
    #[error("reading standard input: {0}")]
    Stdin(std::io::Error),
    #[error("{}: {source}", path.display())]
    Body {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("no project named {0:?}")]
    NoProject(String),
    /// The one project `--project` selects does not make a valid project set.
    #[error("{}", .0.join("; "))]
    Project(Vec<String>),
}

/// What `explain` prints, in its documented key order.
#[derive(Debug, Clone, Serialize)]
pub struct Explanation {
    /// `allow`, `rewrite`, `deny`, `report-deny`, or `error` for a refusal that is not a
    /// policy decision.
    pub decision: &'static str,
    pub project: Option<String>,
    pub region: Option<String>,
    pub endpoint: Option<String>,
    pub model: Option<String>,
    pub rule: Option<String>,
    pub message: Option<String>,
    pub upstream: Option<String>,
    pub rewrites: Vec<Value>,
    /// The catalog edition decided under.
    pub catalog: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorSummary>,
}

/// The refusal `serve` would answer with, when it is not a policy decision.
#[derive(Debug, Clone, Serialize)]
pub struct ErrorSummary {
    pub status: u16,
    pub code: &'static str,
}

impl Explanation {
    /// Whether `serve` would refuse the request (exit code 3).
    pub fn refused(&self) -> bool {
        self.error.is_some() || self.decision == Verdict::Deny.as_str()
    }
}

fn explain(
    config: &Path,
    project: Option<&str>,
    raw_headers: &[String],
    body: Option<&Path>,
    method: &str,
    path: &str,
) -> Result<Explanation, ExplainError> {
    // Offline: upstream keys are never read, so explain runs without production secrets.
    let config = Config::load_offline(config)?;
    let snap = Snapshot::new(config)?;
    let method =
        Method::from_bytes(method.to_ascii_uppercase().as_bytes()).map_err(|_| ExplainError::Method)?;
    let uri: Uri = path.parse().map_err(|_| ExplainError::Path(path.into()))?;
    let mut headers = HeaderMap::new();
    for h in raw_headers {
        let (name, value) = h
            .split_once(':')
            .ok_or_else(|| ExplainError::HeaderShape(h.clone()))?;
        let name = HeaderName::from_bytes(name.trim().as_bytes())
            .map_err(|_| ExplainError::HeaderName(h.clone()))?;
        let value = HeaderValue::from_str(value.trim()).map_err(|_| ExplainError::HeaderValue(h.clone()))?;
        headers.append(name, value);
    }
    let body = match body {
        None => None,
        Some(p) if p == Path::new("-") => {
            let mut buf = Vec::new();
            std::io::stdin()
                .read_to_end(&mut buf)
                .map_err(ExplainError::Stdin)?;
            Some(Bytes::from(buf))
        }
        Some(p) => Some(Bytes::from(std::fs::read(p).map_err(|source| {
            ExplainError::Body {
                path: p.to_path_buf(),
                source,
            }
        })?)),
    };
    let mut req = Request::new(body);
    *req.method_mut() = method;
    *req.uri_mut() = uri;
    *req.headers_mut() = headers;

    let Some(name) = project else {
        return Ok(decide(Arc::new(snap), req));
    };
    // --project NAME: that project is the only candidate, then the same phases run.
    let idx = snap
        .config
        .projects
        .projects
        .iter()
        .position(|p| p.name == name)
        .ok_or_else(|| ExplainError::NoProject(name.into()))?;
    let mut forced = snap.config.clone();
    forced.projects = policy::ProjectSet::new(vec![policy::Project {
        default: true,
        api_key_sha256: vec![],
        openai_project: None,
        ..snap.config.projects.projects[idx].clone()
    }])
    .map_err(ExplainError::Project)?;
    forced.upstreams = vec![snap.config.upstreams[idx].clone()];
    let forced = Snapshot::new(forced)?;
    req.headers_mut().remove("openai-project");
    Ok(decide(Arc::new(forced), req))
}

/// The decision `serve` takes for `req` (its body given whole), through the same phases.
pub fn decide(snap: Arc<Snapshot>, req: Request<Option<Bytes>>) -> Explanation {
    let mut ctx = Ctx::new(snap);
    let (parts, body) = req.into_parts();
    let mut refusal_message = None;
    let (status, model_hint) = match walk(&mut ctx, parts.clone(), body.clone()) {
        Ok(()) => (None, None),
        Err(stop) => {
            if let Stop::Refuse(e) = &stop {
                refusal_message = Some(e.message());
            }
            let status = ctx.stop(stop).status().as_u16();
            // Refused before the body was read, but `explain` still names the model it carries.
            let hint = match (ctx.project, ctx.op, &ctx.model) {
                (Some(project), Some(op), None) => {
                    let parts = with_default_content_type(&ctx.snap, op, parts, body.is_some());
                    let ct = parts
                        .headers
                        .get(http::header::CONTENT_TYPE)
                        .and_then(|v| v.to_str().ok());
                    evaluate::inspect(&ctx.snap, Matched { project, op }, &parts.uri, ct, body.as_ref())
                        .ok()
                        .and_then(|i| i.model)
                }
                _ => None,
            };
            (Some(status), hint)
        }
    };
    let snap = &ctx.snap;
    let p = ctx
        .project
        .map(|i| (&snap.config.projects.projects[i], &snap.config.upstreams[i]));
    let decision = ctx.decision.as_ref().filter(|_| ctx.error.is_none());
    let denied = decision.is_some_and(|d| d.verdict == Verdict::Deny);
    let error = ctx.error.map(|code| ErrorSummary {
        status: status.unwrap_or(500),
        code,
    });
    Explanation {
        decision: decision.map_or("error", |d| d.verdict.as_str()),
        project: p.map(|(p, _)| p.name.clone()),
        region: p.map(|(p, _)| p.region.clone()),
        endpoint: ctx.op.map(|o| snap.config.catalog.operation(o).template.clone()),
        model: ctx.model.clone().or(model_hint),
        rule: decision.and_then(|d| (!d.rules.is_empty()).then(|| d.rules.header_value())),
        message: refusal_message.or_else(|| {
            decision
                .and_then(|d| d.denial.as_ref())
                .map(|d| d.message.clone())
        }),
        upstream: p.map(|(_, u)| u.base_url.clone()),
        // A denied request is not rewritten: nothing to list.
        rewrites: decision
            .filter(|_| !denied)
            .map(|d| rewrites(d, ctx.op.map(|o| snap.config.catalog.endpoint_of(o))))
            .unwrap_or_default(),
        catalog: snap.config.catalog.edition.clone(),
        error,
    }
}

/// The phases, as `serve` runs them, with the body already in hand and no network.
fn walk(ctx: &mut Ctx, parts: http::request::Parts, body: Option<Bytes>) -> Result<(), Stop> {
    let m = pipeline::early_request(ctx, &Request::from_parts(parts.clone(), ()))?;
    let mut parts = with_default_content_type(&ctx.snap, m.op, parts, body.is_some());
    let mut batch_refusal = None;
    let (inspected, outgoing) = match pipeline::body_plan(ctx, m, &parts.headers)? {
        BodyPlan::Buffer(encoding) => {
            let raw = body.unwrap_or_default();
            let limit = ctx.snap.config.limits.max_body_bytes;
            if raw.len() as u64 > limit {
                return Err(ProxyError::TooLarge { limit }.into());
            }
            let decoded = pipeline::decode_body_now(&mut parts.headers, raw, encoding, limit)?;
            let (inspected, body) = pipeline::request_body(ctx, m, &mut parts, Some(decoded))?;
            (inspected, Outgoing::Buffered(body.unwrap_or_default()))
        }
        BodyPlan::Stream => {
            let (inspected, _) = pipeline::request_body(ctx, m, &mut parts, None)?;
            (inspected, Outgoing::Streaming(crate::body::ProxyBody::Empty))
        }
        BodyPlan::Batch(spec) => {
            let (inspected, _) = pipeline::request_body(ctx, m, &mut parts, None)?;
            let mut checker = pipeline::batch_checker(ctx, m, &parts.headers, &spec)?;
            checker.push(body.as_deref().unwrap_or_default());
            batch_refusal = checker.finish().err();
            (inspected, Outgoing::Streaming(crate::body::ProxyBody::Empty))
        }
    };
    // Built as it would be forwarded (a rewrite that cannot be made refuses here too), then
    // dropped: this is where `serve` goes to the network.
    pipeline::upstream_request(ctx, m, parts, inspected, outgoing)?;
    if let Some(stop) = batch_refusal.and_then(|r| pipeline::batch_verdict(ctx, r)) {
        return Err(stop);
    }
    Ok(())
}

/// `explain --body` without a Content-Type header means the endpoint's natural one (JSON).
fn with_default_content_type(
    snap: &Snapshot,
    op: policy::OpId,
    mut parts: http::request::Parts,
    has_body: bool,
) -> http::request::Parts {
    let json = snap.config.catalog.operation(op).plan.source == policy::BodySource::Json;
    if has_body && json && !parts.headers.contains_key(http::header::CONTENT_TYPE) {
        parts.headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
    }
    parts
}

fn rewrites(d: &Decision, endpoint: Option<&policy::Endpoint>) -> Vec<Value> {
    let mut out = Vec::new();
    if let Some(m) = &d.rewrites.model {
        out.push(json!({"field": "model", "from": m.from, "to": m.to}));
    }
    match d.rewrites.store {
        Some(StoreRewrite::Replace) => out.push(json!({"field": "store", "from": true, "to": false})),
        Some(StoreRewrite::Insert) => out.push(json!({"field": "store", "from": null, "to": false})),
        None => {}
    }
    // The value added to the client's include list (its own entries are kept, not echoed).
    if let (Some(_), Some(spec)) = (
        d.rewrites.include,
        endpoint.and_then(|e| e.encrypted_reasoning.as_ref()),
    ) {
        out.push(json!({"field": spec.field, "add": spec.value}));
    }
    out
}
