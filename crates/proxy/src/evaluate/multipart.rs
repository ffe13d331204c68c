//! Multipart forms: the fields the plan reads, and the JSON objects some form fields carry
//! (the realtime call's `session`), each checked on its own.

use super::{check_facts, checked_model, internal_mismatch, model_of, Ctx, Inspected};
use crate::error::ProxyError;
use bytes::Bytes;
use inspect::Splice;
use policy::{FieldRole, FieldValue, ModelRewrite};

/// Phase "request body" for a multipart form. Out of line: forms are rare, and their code
/// kept out of the JSON path's instruction cache.
#[inline(never)]
pub(super) fn inspect_form(
    cx: &Ctx<'_>,
    content_type: Option<&str>,
    body: Option<&Bytes>,
) -> Result<Inspected, ProxyError> {
    let Ctx {
        catalog,
        project,
        plan,
        field_names,
        m,
        ..
    } = *cx;
    let body = body.ok_or_else(|| ProxyError::InvalidBody("the multipart body is empty".into()))?;
    let ct = content_type
        .ok_or_else(|| ProxyError::InvalidBody("Content-Type multipart/form-data is required".into()))?;
    let boundary =
        inspect::boundary_from_content_type(ct).map_err(|e| ProxyError::InvalidBody(e.to_string()))?;
    // Besides its fields, the form fields that hold a JSON object a check reads (the
    // realtime call's `session`): the check's first step names the form field.
    let mut names: Vec<&str> = field_names.to_vec();
    for c in &plan.checks {
        if let Some(form_field) = c.path.first() {
            if !names.contains(&form_field.as_str()) {
                names.push(form_field);
            }
        }
    }
    let scan = inspect::scan_multipart(body, boundary, &names)
        .map_err(|e| ProxyError::InvalidBody(e.to_string()))?;
    let values: Vec<FieldValue<'_>> = (0..plan.fields.len())
        .map(|i| {
            scan.field(i)
                .map_or(FieldValue::Absent, |f| FieldValue::String(f.value))
        })
        .collect();
    // Each check's answer from its form field's JSON (none when the field is absent).
    let mut hits: Vec<Option<inspect::PathHits<'_>>> = Vec::with_capacity(plan.checks.len());
    for c in &plan.checks {
        let json = c
            .path
            .first()
            .and_then(|name| names.iter().position(|n| n == name))
            .and_then(|i| scan.field(i));
        let Some(json) = json else {
            hits.push(None);
            continue;
        };
        let path: Vec<&str> = c.path.iter().skip(1).map(String::as_str).collect();
        let values: Vec<&str> = c.values.iter().map(String::as_str).collect();
        let check = [inspect::PathCheck {
            path: &path,
            key: c.key.as_str(),
            values: &values,
        }];
        let empty = inspect::JsonSpec {
            fields: &[],
            markers: &[],
        };
        let found = inspect::scan_json_checked(json.value.as_bytes(), &empty, &check).map_err(|e| {
            ProxyError::InvalidJson(format!(
                "the form field {:?} is not one JSON object: {e}",
                c.path.first().map_or("", String::as_str)
            ))
        })?;
        hits.push(found.checks.into_iter().next());
    }
    let check_facts: Vec<policy::CheckFacts<'_>> = hits
        .iter()
        .map(|h| h.as_ref().map_or_else(policy::CheckFacts::default, check_facts))
        .collect();
    let facts = policy::Facts {
        fields: &values,
        markers: &[],
        checks: &check_facts,
        include: None,
    };
    let decision = policy::decide(catalog, project, m.op, &facts);
    let model = model_of(plan, &values).or_else(|| checked_model(plan, &check_facts));
    let mut splice = Splice::new();
    if let Some(ModelRewrite { to, .. }) = &decision.rewrites.model {
        let f = plan
            .field_with(FieldRole::Model)
            .and_then(|i| scan.field(i))
            .ok_or_else(internal_mismatch)?;
        splice.replace(f.value_span.clone(), to.clone().into_bytes());
    }
    if decision.rewrites.store.is_some() || decision.rewrites.include.is_some() {
        return Err(internal_mismatch());
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
