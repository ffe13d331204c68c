//! From a request's head and (when needed) its buffered body to a decision and the edits
//! that carry it out. Shared by the proxy handler and `explain`, so the offline answer is
//! the one the proxy gives. No I/O here.

use crate::error::ProxyError;
use crate::snapshot::Snapshot;
use bytes::Bytes;
use http::{HeaderMap, Method, Uri};
use inspect::{Marker, Splice};
mod multipart;

use policy::{
    BodySource, Decision, FieldRole, FieldValue, InspectPlan, ModelRewrite, OpId, Rule, StoreRewrite, Verdict,
};

/// The project and operation a request was matched to.
#[derive(Debug, Clone, Copy)]
pub struct Matched {
    pub project: usize,
    pub op: OpId,
}

/// A decision reached before the body was read (no project, unknown endpoint, or a
/// body-independent denial), with the project when one was selected.
#[derive(Debug)]
pub struct EarlyRefusal {
    pub project: Option<usize>,
    /// The operation, when the path was classified.
    pub op: Option<OpId>,
    pub decision: Decision,
    /// Set when the refusal is not a policy decision (unknown gateway key: 401).
    pub error: Option<ProxyError>,
}

/// The outcome of inspecting a request.
#[derive(Debug)]
pub struct Inspected {
    pub decision: Decision,
    /// The model as the client sent it (for logs and `explain`), when the operation has one.
    pub model: Option<String>,
    /// Body edits; None when the body is forwarded as it came.
    pub splice: Option<Splice>,
    /// A rewritten query string (realtime model alias).
    pub query: Option<String>,
    /// Whether the body must be buffered and inspected for this operation.
    pub buffered: bool,
}

/// Phase "early request": project selection, path classification and the checks that need
/// no body. Reads only the request head.
pub fn early(
    snap: &Snapshot,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
) -> Result<Matched, Box<EarlyRefusal>> {
    let project = select_project(snap, headers).map_err(|r| match r {
        Ok(decision) => Box::new(EarlyRefusal {
            project: None,
            op: None,
            decision,
            error: None,
        }),
        Err(e) => Box::new(EarlyRefusal {
            project: None,
            op: None,
            decision: Decision::deny(Rule::NoProject, e.message(), None),
            error: Some(e),
        }),
    })?;
    route(snap, project, method, uri).map_err(|decision| {
        Box::new(EarlyRefusal {
            project: Some(project),
            op: decision.op,
            decision: decision.decision,
            error: None,
        })
    })
}

/// A policy refusal from [`route`], with the operation when the path was classified.
pub struct RouteRefusal {
    pub op: Option<OpId>,
    pub decision: Decision,
}

/// The part of phase "early request" that follows project selection (and the whole of it for
/// a batch line, whose project is the upload's): path classification and the checks that need
/// no body.
/// The method the catalog lists an operation under: HEAD is GET without the content (RFC 9110
/// §9.3.2), so it is allowed, checked and forwarded wherever the catalog allows the GET.
fn catalog_method(method: &Method) -> &str {
    if method == Method::HEAD {
        "GET"
    } else {
        method.as_str()
    }
}

pub fn route(
    snap: &Snapshot,
    project: usize,
    method: &Method,
    uri: &Uri,
) -> Result<Matched, Box<RouteRefusal>> {
    let op = snap
        .config
        .catalog
        .classify(catalog_method(method), uri.path())
        .map_err(|e| {
            let message = match e {
                policy::ClassifyError::Unknown => format!(
                    "{method} {} is not an endpoint residency-proxy knows; it is refused so that nothing \
                 unchecked reaches OpenAI",
                    uri.path()
                ),
                policy::ClassifyError::NotCanonical(why) => {
                    format!("The request path is refused because it is not in canonical form: {why}")
                }
            };
            Box::new(RouteRefusal {
                op: None,
                decision: Decision::deny(Rule::UnknownEndpoint, message, None),
            })
        })?;
    let p = &snap.config.projects.projects[project];
    if let Some(d) = policy::precheck(&snap.config.catalog, p, op) {
        if d.verdict == Verdict::Deny {
            return Err(Box::new(RouteRefusal {
                op: Some(op),
                decision: d,
            }));
        }
    }
    Ok(Matched { project, op })
}

/// The selected project, or the refusal: Ok(decision) for a policy refusal (no_project),
/// Err(error) for a credential that cannot be read (400) or an unknown key on a shared
/// gateway (401). The reading itself is [`crate::identity::select`].
fn select_project(snap: &Snapshot, headers: &HeaderMap) -> Result<usize, Result<Decision, ProxyError>> {
    use crate::identity::{self, Refusal};
    let rules = identity::Rules {
        projects: &snap.config.projects,
        require_client_key: snap.config.require_client_key,
        underscores: snap.config.underscores,
    };
    identity::select(rules, headers).map_err(|r| match r {
        Refusal::NoProject => Ok(Decision::deny(
            Rule::NoProject,
            "No configured project matches this request (no matching client key, no matching \
             OpenAI-Project header, and no default project)."
                .into(),
            None,
        )),
        Refusal::Ambiguous(why) => Ok(Decision::deny(
            Rule::NoProject,
            format!("Project selection is ambiguous: {why}"),
            None,
        )),
        Refusal::Malformed(why) => Err(ProxyError::BadRequest(why.into())),
        Refusal::Unauthorized => Err(ProxyError::Unauthorized),
    })
}

/// Whether the operation's body must be buffered and inspected.
pub fn needs_body(snap: &Snapshot, op: OpId) -> bool {
    matches!(
        snap.config.catalog.operation(op).plan.source,
        BodySource::Json | BodySource::Multipart
    )
}

/// Phase "request body": reads the fields the operation's plan asks for, decides, and turns
/// the decision's rewrites into edits. `body` is the buffered body when [`needs_body`].
pub fn inspect(
    snap: &Snapshot,
    m: Matched,
    uri: &Uri,
    content_type: Option<&str>,
    body: Option<&Bytes>,
) -> Result<Inspected, ProxyError> {
    let catalog = &snap.config.catalog;
    let project = &snap.config.projects.projects[m.project];
    let plan = &catalog.operation(m.op).plan;
    // The spec borrows the catalog's strings; for the catalog's plans (a handful of fields and
    // markers) it lives on the stack: no allocation per request.
    let (mut names_stack, mut names_heap) = ([""; SMALL_FIELDS], Vec::new());
    let field_names = on_stack(
        plan.fields.len(),
        plan.fields.iter().map(String::as_str),
        &mut names_stack,
        &mut names_heap,
    );
    let cx = Ctx {
        snap,
        m,
        catalog,
        project,
        plan,
        field_names,
    };
    match plan.source {
        BodySource::None => {
            let decision = policy::decide(catalog, project, m.op, &policy::Facts::NONE);
            Ok(Inspected {
                decision,
                model: None,
                splice: None,
                query: None,
                buffered: false,
            })
        }
        BodySource::Query => inspect_query(&cx, uri.query().unwrap_or("")),
        BodySource::Json => inspect_json(&cx, content_type, body),
        BodySource::Multipart => multipart::inspect_form(&cx, content_type, body),
    }
}

/// What the inspection of every body source reads.
#[derive(Clone, Copy)]
struct Ctx<'r> {
    snap: &'r Snapshot,
    m: Matched,
    catalog: &'r policy::Catalog,
    project: &'r policy::Project,
    plan: &'r InspectPlan,
    /// The plan's field names, borrowed from the catalog.
    field_names: &'r [&'r str],
}

/// Query parameters (the realtime model).
#[inline(never)]
fn inspect_query(cx: &Ctx<'_>, query: &str) -> Result<Inspected, ProxyError> {
    let Ctx {
        catalog,
        project,
        plan,
        field_names,
        m,
        ..
    } = *cx;
    let mut values = Vec::with_capacity(plan.fields.len());
    let mut owned = Vec::with_capacity(plan.fields.len());
    for name in field_names {
        let v = inspect::query_param(query, name).map_err(|e| ProxyError::InvalidBody(e.to_string()))?;
        owned.push(v);
    }
    for v in &owned {
        values.push(v.as_deref().map_or(FieldValue::Absent, FieldValue::String));
    }
    let facts = policy::Facts {
        fields: &values,
        markers: &[],
        checks: &[],
        include: None,
    };
    let decision = policy::decide(catalog, project, m.op, &facts);
    let model = model_of(plan, &values);
    let query = match (&decision.rewrites.model, plan.field_with(FieldRole::Model)) {
        (Some(r), Some(i)) => Some(replace_query_param(query, &plan.fields[i], &r.to)?),
        _ => None,
    };
    Ok(Inspected {
        decision,
        model,
        splice: None,
        query,
        buffered: false,
    })
}

/// One JSON object: the hot path of nearly every request.
fn inspect_json(
    cx: &Ctx<'_>,
    content_type: Option<&str>,
    body: Option<&Bytes>,
) -> Result<Inspected, ProxyError> {
    let Ctx {
        snap,
        catalog,
        project,
        plan,
        field_names,
        m,
    } = *cx;
    let body = body.ok_or_else(|| ProxyError::InvalidJson("the body is empty".into()))?;
    check_content_type(content_type, "application/json")?;
    // Markers (deny-lists of the older catalogs; no shipped operation has any) are built on
    // the heap, and only when the plan has some: nothing per request otherwise.
    let marker_values: Vec<&str> = plan
        .markers
        .iter()
        .flat_map(|mk| mk.values.iter().map(String::as_str))
        .collect();
    let mut offset = 0;
    let markers: Vec<Marker<'_>> = plan
        .markers
        .iter()
        .map(|mk| {
            let values = marker_values.get(offset..offset + mk.values.len()).unwrap_or(&[]);
            offset += mk.values.len();
            Marker {
                key: mk.key.as_str(),
                values,
            }
        })
        .collect();
    let spec = inspect::JsonSpec {
        fields: field_names,
        markers: &markers,
    };
    // The plan's allow-list checks, compiled with the snapshot.
    let checks = snap.body_checks.get(m.op).ok_or_else(internal_mismatch)?;
    let scan =
        inspect::scan_json_with(body, &spec, checks).map_err(|e| ProxyError::InvalidJson(e.to_string()))?;
    let each_hit = scan.checks.iter().map(check_facts);
    let (mut hits_stack, mut hits_heap) = ([policy::CheckFacts::default(); SMALL_CHECKS], Vec::new());
    let check_facts = on_stack(scan.checks.len(), each_hit, &mut hits_stack, &mut hits_heap);
    let each_value =
        (0..plan.fields.len()).map(|i| scan.field(i).map_or(FieldValue::Absent, |f| json_value(&f.value)));
    let (mut fields_stack, mut fields_heap) = ([FieldValue::Absent; SMALL_FIELDS], Vec::new());
    let values = on_stack(plan.fields.len(), each_value, &mut fields_stack, &mut fields_heap);
    let endpoint = catalog.endpoint_of(m.op);
    let include = crate::include_edit::read(project, endpoint, plan, &scan, body);
    let facts = policy::Facts {
        fields: values,
        markers: &scan.markers_hit,
        checks: check_facts,
        include: crate::include_edit::facts(include.as_ref()),
    };
    let decision = policy::decide(catalog, project, m.op, &facts);
    let model = model_of(plan, values).or_else(|| checked_model(plan, check_facts));
    let mut splice = Splice::new();
    // Members added at the start of the object, joined into one insert.
    let mut added: [Option<String>; 2] = [None, None];
    if let Some(store) = decision.rewrites.store {
        let idx = plan.field_with(FieldRole::Store);
        match (store, idx.and_then(|i| scan.field(i))) {
            (StoreRewrite::Replace, Some(f)) => splice.replace(f.value_span.clone(), &b"false"[..]),
            (StoreRewrite::Insert, None) => {
                let name = idx.map_or("store", |i| plan.fields[i].as_str());
                added[0] = Some(format!("{}:false", inspect::json::string_literal(name)));
            }
            _ => return Err(internal_mismatch()),
        }
    }
    if let Some(edit) = decision.rewrites.include {
        added[1] = crate::include_edit::apply(edit, endpoint, plan, &scan, include.as_ref(), &mut splice)?;
    }
    if added.iter().any(Option::is_some) {
        let mut members: Vec<&str> = added.iter().flatten().map(String::as_str).collect();
        if !scan.empty {
            members.push("");
        }
        splice.insert(scan.object_start, members.join(",").into_bytes());
    }
    if let Some(ModelRewrite { to, .. }) = &decision.rewrites.model {
        let f = plan
            .field_with(FieldRole::Model)
            .and_then(|i| scan.field(i))
            .ok_or_else(internal_mismatch)?;
        splice.replace(
            f.value_span.clone(),
            inspect::json::string_literal(to).into_bytes(),
        );
    }
    let splice = (!splice.is_empty()).then_some(splice);
    Ok(Inspected {
        decision,
        model,
        splice,
        query: None,
        buffered: true,
    })
}

/// Plans with more fields or checks than these (none in the shipped catalogs: at most 7 and
/// 9) build their scan spec and facts on the heap; the arrays are filled on every request,
/// so they are no larger than that.
const SMALL_FIELDS: usize = 8;
const SMALL_CHECKS: usize = 12;

/// `items` (`n` of them) as a slice: in `stack` when they fit, else collected into `heap`.
fn on_stack<'b, T: Copy, const N: usize>(
    n: usize,
    items: impl Iterator<Item = T>,
    stack: &'b mut [T; N],
    heap: &'b mut Vec<T>,
) -> &'b [T] {
    if n <= N {
        for (slot, item) in stack.iter_mut().zip(items) {
            *slot = item;
        }
        &stack[..n]
    } else {
        heap.extend(items);
        heap
    }
}

/// What the scan found for one body check, as the policy reads it.
fn check_facts<'h>(h: &'h inspect::PathHits<'_>) -> policy::CheckFacts<'h> {
    policy::CheckFacts {
        seen: h.seen,
        other: h.other.as_ref().map(|o| match o {
            inspect::Other::String(s) => policy::OtherValue::String(s),
            inspect::Other::NotString => policy::OtherValue::NotString,
        }),
        absent: h.absent,
    }
}

/// A rewrite the policy asked for that the body cannot carry out: refuse rather than forward
/// something other than what was decided.
fn internal_mismatch() -> ProxyError {
    ProxyError::BadRequest("The request cannot be rewritten as the policy requires".into())
}

/// The model a model check read (an operation that carries it nested, e.g. `session.model`).
fn checked_model(plan: &InspectPlan, facts: &[policy::CheckFacts<'_>]) -> Option<String> {
    let i = plan
        .checks
        .iter()
        .position(|c| c.kind == policy::CheckKind::Model)?;
    match facts.get(i)?.other {
        Some(policy::OtherValue::String(s)) => Some(s.to_string()),
        _ => None,
    }
}

fn model_of(plan: &InspectPlan, values: &[FieldValue<'_>]) -> Option<String> {
    match plan.field_with(FieldRole::Model).and_then(|i| values.get(i)) {
        Some(FieldValue::String(s)) => Some((*s).to_string()),
        _ => None,
    }
}

fn json_value<'a>(v: &'a inspect::Value<'a>) -> FieldValue<'a> {
    match v {
        inspect::Value::Null => FieldValue::Null,
        inspect::Value::Bool(b) => FieldValue::Bool(*b),
        inspect::Value::Number(_) => FieldValue::Number,
        inspect::Value::String(s) => FieldValue::String(s),
        inspect::Value::Object => FieldValue::Object,
        inspect::Value::Array => FieldValue::Array,
    }
}

/// A JSON endpoint's body must say it is JSON: a body declared as something else could be read
/// differently upstream.
fn check_content_type(content_type: Option<&str>, expected: &str) -> Result<(), ProxyError> {
    let ok = content_type.is_some_and(|ct| {
        let mut parts = ct.split(';');
        let essence = parts.next().unwrap_or("").trim();
        essence.eq_ignore_ascii_case(expected)
            && parts.all(|p| {
                let p = p.trim();
                p.is_empty()
                    || p.eq_ignore_ascii_case("charset=utf-8")
                    || p.eq_ignore_ascii_case("charset=\"utf-8\"")
            })
    });
    if ok {
        Ok(())
    } else {
        Err(ProxyError::InvalidJson(format!(
            "Content-Type must be {expected} on this endpoint, got {:?}",
            content_type.unwrap_or("none")
        )))
    }
}

/// `query` with the `name=` parameter's value replaced by `value`, percent-encoded. The result
/// is read back: if it does not say exactly `value` (e.g. the name was itself encoded), the
/// request is refused rather than forwarded with the old value.
fn replace_query_param(query: &str, name: &str, value: &str) -> Result<String, ProxyError> {
    // RFC 3986 unreserved characters stay as they are; everything else is percent-encoded.
    const ESCAPED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~');
    let encoded = percent_encoding::utf8_percent_encode(value, ESCAPED).to_string();
    let out = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((key, _)) if key == name => format!("{key}={encoded}"),
            None if pair == name => format!("{pair}={encoded}"),
            _ => pair.to_string(),
        })
        .collect::<Vec<_>>()
        .join("&");
    match inspect::query_param(&out, name) {
        Ok(Some(v)) if v == value => Ok(out),
        _ => Err(internal_mismatch()),
    }
}

/// One line of a batch input file, checked as the request it names: the same early checks and
/// inspection as a request of its own, with the project of the upload. A line that would need
/// a rewrite is refused: the file streams through and is not edited.
pub fn batch_line(
    snap: &Snapshot,
    project: usize,
    spec: &policy::BatchInput,
    line: &[u8],
) -> Result<(), crate::batch::Refusal> {
    use crate::batch::Refusal;
    let fields = [
        spec.method_field.as_str(),
        spec.url_field.as_str(),
        spec.body_field.as_str(),
    ];
    let scan = inspect::scan_json(
        line,
        &inspect::JsonSpec {
            fields: &fields,
            markers: &[],
        },
    )
    .map_err(|e| Refusal::unreadable(format!("not a JSON object ({e})")))?;
    let text = |i: usize| match scan.field(i).map(|f| &f.value) {
        Some(inspect::Value::String(s)) => Ok(s.as_ref()),
        _ => Err(Refusal::unreadable(format!("{:?} must be a string", fields[i]))),
    };
    let (method, url) = (text(0)?, text(1)?);
    let body = match scan.field(2) {
        Some(f) if f.value == inspect::Value::Object => Bytes::copy_from_slice(&line[f.value_span.clone()]),
        _ => {
            return Err(Refusal::unreadable(format!(
                "{:?} must be a JSON object",
                fields[2]
            )))
        }
    };
    let uri: Uri = url
        .parse()
        .map_err(|_| Refusal::unreadable(format!("{:?} is not a request path", fields[1])))?;
    if uri.scheme().is_some() || uri.authority().is_some() {
        return Err(Refusal::unreadable(format!(
            "{:?} must be a path, not a URL",
            fields[1]
        )));
    }
    let method = Method::from_bytes(method.as_bytes()).map_err(|_| Refusal::unreadable("invalid method"))?;
    let deny = |d: Decision| {
        let rule = d.denial.as_ref().map(|x| x.rule);
        Refusal {
            param: None,
            rule,
            message: d.denial.map_or_else(|| "refused".into(), |x| x.message),
        }
    };
    let m = route(snap, project, &method, &uri).map_err(|r| deny(r.decision))?;
    let needs = needs_body(snap, m.op);
    let inspected =
        inspect(snap, m, &uri, Some("application/json"), needs.then_some(&body)).map_err(|e| match e {
            ProxyError::Denied(d) => Refusal {
                param: None,
                rule: Some(d.rule),
                message: d.message,
            },
            other => Refusal::unreadable(other.message()),
        })?;
    match inspected.decision.verdict {
        Verdict::Deny => Err(deny(inspected.decision)),
        // The include edit of encrypted reasoning is not needed in a batch (no next turn).
        _ if inspected.decision.rewrites.store.is_some() || inspected.decision.rewrites.model.is_some() => {
            Err(Refusal {
                param: None,
                rule: inspected
                    .decision
                    .rules
                    .iter()
                    .find(|r| matches!(r, Rule::Store | Rule::Alias)),
                message:
                    "the request would need a rewrite (store or model alias) that cannot be made inside a \
                      batch file; set it explicitly in the line"
                        .into(),
            })
        }
        // Each line also meets the batches row (batchable endpoint, the row's models).
        Verdict::Allow | Verdict::Rewrite => {
            let p = &snap.config.projects.projects[project];
            match policy::batch_line(&snap.config.catalog, p, m.op, inspected.model.as_deref()) {
                Some(d) => Err(Refusal {
                    param: None,
                    rule: Some(d.rule),
                    message: d.message,
                }),
                None => Ok(()),
            }
        }
        Verdict::ReportDeny => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shipped_plan_fits_the_stack_arrays() {
        // Not a limit (longer plans take the heap), a promise of the comment on SMALL_FIELDS:
        // no shipped operation pays an allocation for its spec or facts.
        for (name, _) in policy::catalog::EDITIONS {
            let catalog = policy::catalog::edition(name).unwrap().unwrap();
            for op in &catalog.operations {
                assert!(
                    op.plan.fields.len() <= SMALL_FIELDS,
                    "{name} {} {}",
                    op.method,
                    op.template
                );
                assert!(
                    op.plan.checks.len() <= SMALL_CHECKS,
                    "{name} {} {}",
                    op.method,
                    op.template
                );
                assert!(op.plan.markers.is_empty(), "{name} {} {}", op.method, op.template);
            }
        }
    }

    #[test]
    fn content_type_must_be_json() {
        assert!(check_content_type(Some("application/json"), "application/json").is_ok());
        assert!(check_content_type(Some("Application/JSON; charset=utf-8"), "application/json").is_ok());
        assert!(check_content_type(Some("text/plain"), "application/json").is_err());
        assert!(check_content_type(Some("application/json; charset=latin1"), "application/json").is_err());
        assert!(check_content_type(None, "application/json").is_err());
    }

    #[test]
    fn query_param_value_is_replaced_and_encoded() {
        assert_eq!(
            replace_query_param("model=gpt-4o&x=1", "model", "a b").unwrap(),
            "model=a%20b&x=1"
        );
        // Not present: nothing to say the new value, so refuse.
        assert!(replace_query_param("x=1", "model", "m").is_err());
    }
}
