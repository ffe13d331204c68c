//! `residency-proxy explain`: the decision the proxy would take for one request, offline,
//! through the same code path as `serve` (`evaluate::early` + `evaluate::inspect`).

use crate::config::Config;
use crate::error::ProxyError;
use crate::evaluate::{self, EarlyRefusal, Matched};
use crate::snapshot::Snapshot;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};
use policy::{Decision, StoreRewrite, Verdict};
use serde_json::{json, Value};
use std::io::Read;
use std::path::Path;

pub fn run(
    config: &Path,
    project: Option<&str>,
    headers: &[String],
    body: Option<&Path>,
    method: &str,
    path: &str,
) -> i32 {
    match explain(config, project, headers, body, method, path) {
        Ok((out, denied)) => {
            println!("{out}");
            if denied {
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

fn explain(
    config: &Path,
    project: Option<&str>,
    raw_headers: &[String],
    body: Option<&Path>,
    method: &str,
    path: &str,
) -> Result<(String, bool), String> {
    let config = Config::load(Some(config)).map_err(|e| e.to_string())?;
    let snap = Snapshot::new(config)?;
    let method = Method::from_bytes(method.to_ascii_uppercase().as_bytes())
        .map_err(|_| "invalid method".to_string())?;
    let uri: Uri = path.parse().map_err(|_| format!("invalid path {path:?}"))?;
    let mut headers = HeaderMap::new();
    for h in raw_headers {
        let (name, value) = h
            .split_once(':')
            .ok_or_else(|| format!("header {h:?} is not `Name: value`"))?;
        let name = HeaderName::from_bytes(name.trim().as_bytes())
            .map_err(|_| format!("invalid header name in {h:?}"))?;
        let value =
            HeaderValue::from_str(value.trim()).map_err(|_| format!("invalid header value in {h:?}"))?;
        headers.append(name, value);
    }
    let body = match body {
        None => None,
        Some(p) if p == Path::new("-") => {
            let mut buf = Vec::new();
            std::io::stdin()
                .read_to_end(&mut buf)
                .map_err(|e| format!("reading standard input: {e}"))?;
            Some(Bytes::from(buf))
        }
        Some(p) => Some(Bytes::from(
            std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()))?,
        )),
    };

    let Some(name) = project else {
        return Ok(decide(&snap, &method, &uri, &headers, body.as_ref()));
    };
    // --project NAME: that project is the only candidate, then the same phases run.
    let idx = snap
        .config
        .projects
        .projects
        .iter()
        .position(|p| p.name == name)
        .ok_or_else(|| format!("no project named {name:?}"))?;
    let mut forced = snap.config.clone();
    forced.projects = policy::ProjectSet::new(vec![policy::Project {
        default: true,
        api_key_sha256: vec![],
        openai_project: None,
        ..snap.config.projects.projects[idx].clone()
    }])
    .map_err(|e| e.join("; "))?;
    forced.upstreams = vec![snap.config.upstreams[idx].clone()];
    let forced = Snapshot::new(forced)?;
    let mut headers = headers;
    headers.remove("openai-project");
    Ok(decide(&forced, &method, &uri, &headers, body.as_ref()))
}

fn decide(
    snap: &Snapshot,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Option<&Bytes>,
) -> (String, bool) {
    let early = evaluate::early(snap, method, uri, headers);
    let (project, op, decision, model, error) = match early {
        Err(refusal) => {
            let EarlyRefusal {
                project,
                op,
                decision,
                error,
            } = *refusal;
            // Refused before the body is read, but `explain` still names the model it carries.
            let model = match (project, op) {
                (Some(project), Some(op)) => {
                    let ct = content_type(snap, headers, op, body);
                    evaluate::inspect(snap, Matched { project, op }, uri, ct, body)
                        .ok()
                        .and_then(|i| i.model)
                }
                _ => None,
            };
            (project, op, error.is_none().then_some(decision), model, error)
        }
        Ok(Matched { project, op }) => {
            let ct = content_type(snap, headers, op, body);
            match evaluate::inspect(snap, Matched { project, op }, uri, ct, body) {
                Ok(i) => (Some(project), Some(op), Some(i.decision), i.model, None),
                Err(e) => (Some(project), Some(op), None, None, Some(e)),
            }
        }
    };
    // The header checks `serve` applies before policy (repeated Content-Type, Connection
    // naming a body header, ...) refuse here too.
    let (decision, error) = match crate::handler::check_framing(&probe(method, uri, headers)) {
        Err(e) => (None, Some(e)),
        Ok(()) => (decision, error),
    };
    let p = project.map(|i| (&snap.config.projects.projects[i], &snap.config.upstreams[i]));
    let endpoint = op.map(|o| snap.config.catalog.operation(o).template.clone());
    let denied_by_policy = decision.as_ref().is_some_and(|d| d.verdict == Verdict::Deny);
    // A denied request is not rewritten: nothing to list.
    let edits = match &decision {
        Some(d) if !denied_by_policy => rewrites(d),
        _ => Vec::new(),
    };
    let mut out = Ordered::default();
    out.put(
        "decision",
        decision.as_ref().map_or("error", |d| d.verdict.as_str()),
    );
    out.put("project", p.map(|(p, _)| p.name.clone()));
    out.put("region", p.map(|(p, _)| p.region.clone()));
    out.put("endpoint", endpoint);
    out.put("model", model);
    out.put(
        "rule",
        decision
            .as_ref()
            .and_then(|d| (!d.rules.is_empty()).then(|| d.rules.header_value())),
    );
    out.put("message", message(decision.as_ref(), error.as_ref()));
    out.put("upstream", p.map(|(_, u)| u.base_url.clone()));
    out.put("rewrites", edits);
    out.put("catalog", snap.config.catalog.edition.clone());
    if let Some(e) = &error {
        out.put(
            "error",
            json!({"status": http::StatusCode::from(e).as_u16(), "code": e.code()}),
        );
    }
    let denied = error.is_some() || denied_by_policy;
    (out.finish(), denied)
}

/// The request as the server would see it over HTTP/1.1, without a body.
fn probe(method: &Method, uri: &Uri, headers: &HeaderMap) -> http::Request<()> {
    let mut req = http::Request::new(());
    *req.method_mut() = method.clone();
    *req.uri_mut() = uri.clone();
    *req.headers_mut() = headers.clone();
    req
}

/// A JSON object written in the order its keys were put (the documented order of `explain`).
#[derive(Default)]
struct Ordered(String);

impl Ordered {
    fn put(&mut self, key: &str, value: impl Into<Value>) {
        self.0.push(if self.0.is_empty() { '{' } else { ',' });
        self.0.push_str(&Value::from(key).to_string());
        self.0.push(':');
        self.0.push_str(&value.into().to_string());
    }

    fn finish(mut self) -> String {
        self.0.push('}');
        self.0
    }
}

/// The request's Content-Type, or the endpoint's natural one for `explain --body` without it.
fn content_type<'a>(
    snap: &Snapshot,
    headers: &'a HeaderMap,
    op: policy::OpId,
    body: Option<&Bytes>,
) -> Option<&'a str> {
    let ct = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    ct.or(if evaluate::needs_body(snap, op) && body.is_some() {
        default_ct(snap, op)
    } else {
        None
    })
}

/// `explain --body` without a Content-Type header means the endpoint's natural one.
fn default_ct(snap: &Snapshot, op: policy::OpId) -> Option<&'static str> {
    match snap.config.catalog.operation(op).plan.source {
        policy::BodySource::Json => Some("application/json"),
        _ => None,
    }
}

fn message(d: Option<&Decision>, e: Option<&ProxyError>) -> Value {
    if let Some(e) = e {
        return Value::String(e.message());
    }
    match d.and_then(|d| d.denial.as_ref()) {
        Some(den) => Value::String(den.message.clone()),
        None => Value::Null,
    }
}

fn rewrites(d: &Decision) -> Vec<Value> {
    let mut out = Vec::new();
    if let Some(m) = &d.rewrites.model {
        out.push(json!({"field": "model", "from": m.from, "to": m.to}));
    }
    match d.rewrites.store {
        Some(StoreRewrite::Replace) => out.push(json!({"field": "store", "from": true, "to": false})),
        Some(StoreRewrite::Insert) => out.push(json!({"field": "store", "from": null, "to": false})),
        None => {}
    }
    out
}
