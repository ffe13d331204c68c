//! The include edit of stateless reasoning (`responses_encrypted_reasoning`): reading the
//! client's include array when the project may need to add to it, and the byte splice that
//! adds the catalog's value (the client's entries kept, nothing re-serialised).

use crate::error::ProxyError;
use inspect::{JsonScan, Splice, StringArray};
use policy::{Endpoint, FieldRole, IncludeList, IncludeRewrite, InspectPlan, Project};

/// The include array as read: None when the project does not ask for encrypted reasoning, the
/// operation has no include field, or the member is not an array (the policy judges its type).
pub fn read(
    project: &Project,
    endpoint: &Endpoint,
    plan: &InspectPlan,
    scan: &JsonScan<'_>,
    body: &[u8],
) -> Option<Result<StringArray, inspect::NotStrings>> {
    if !project.encrypted_reasoning {
        return None;
    }
    let spec = endpoint.encrypted_reasoning.as_ref()?;
    let field = scan.field(plan.field_with(FieldRole::Include)?)?;
    (field.value == inspect::Value::Array)
        .then(|| inspect::string_array(body, field.value_span.clone(), &spec.value))
}

/// What the policy needs to know of the array read by [`read`].
pub fn facts(read: Option<&Result<StringArray, inspect::NotStrings>>) -> Option<IncludeList> {
    read.map(|r| match r {
        Ok(a) => IncludeList::Strings {
            has_value: a.contains,
        },
        Err(_) => IncludeList::NotStrings,
    })
}

/// Carries out `rewrite`: appends to the array, replaces a null, or returns the member to add
/// at the object's start (the caller joins it with any other added member).
pub fn apply(
    rewrite: IncludeRewrite,
    endpoint: &Endpoint,
    plan: &InspectPlan,
    scan: &JsonScan<'_>,
    read: Option<&Result<StringArray, inspect::NotStrings>>,
    splice: &mut Splice,
) -> Result<Option<String>, ProxyError> {
    let spec = endpoint.encrypted_reasoning.as_ref().ok_or_else(mismatch)?;
    let value = inspect::json::string_literal(&spec.value);
    let field = plan.field_with(FieldRole::Include).and_then(|i| scan.field(i));
    match (rewrite, field, read) {
        (IncludeRewrite::Insert, None, _) => Ok(Some(format!(
            "{}:[{value}]",
            inspect::json::string_literal(&spec.field)
        ))),
        (IncludeRewrite::ReplaceNull, Some(f), _) if f.value == inspect::Value::Null => {
            splice.replace(f.value_span.clone(), format!("[{value}]").into_bytes());
            Ok(None)
        }
        (IncludeRewrite::Append, Some(_), Some(Ok(array))) if !array.contains => {
            let sep = if array.empty { "" } else { "," };
            splice.insert(array.close, format!("{sep}{value}").into_bytes());
            Ok(None)
        }
        _ => Err(mismatch()),
    }
}

/// A rewrite the policy asked for that the body cannot carry out: refuse rather than forward
/// something other than what was decided.
fn mismatch() -> ProxyError {
    ProxyError::BadRequest("The request cannot be rewritten as the policy requires".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn responses() -> (policy::Catalog, policy::OpId) {
        let c = policy::Catalog::builtin().unwrap();
        let op = c.operation_by_template("POST", "/v1/responses").unwrap();
        (c, op)
    }

    /// The edit `rewrite` makes to `body`, through the same scan the proxy runs.
    fn edit(rewrite: IncludeRewrite, body: &'static str) -> Result<String, ProxyError> {
        let (c, op) = responses();
        let plan = &c.operation(op).plan;
        let endpoint = c.endpoint_of(op);
        let names: Vec<&str> = plan.fields.iter().map(String::as_str).collect();
        let spec = inspect::JsonSpec {
            fields: &names,
            markers: &[],
        };
        let scan = inspect::scan_json(body.as_bytes(), &spec).unwrap();
        let p = Project {
            encrypted_reasoning: true,
            ..Project::with_defaults("p", "eu", policy::Retention::Zdr)
        };
        let read = read(&p, endpoint, plan, &scan, body.as_bytes());
        let mut splice = Splice::new();
        let added = apply(rewrite, endpoint, plan, &scan, read.as_ref(), &mut splice)?;
        let out = splice
            .apply(&bytes::Bytes::from_static(body.as_bytes()))
            .unwrap()
            .concat();
        Ok(format!(
            "{}{}",
            added.unwrap_or_default(),
            String::from_utf8(out).unwrap()
        ))
    }

    #[test]
    fn each_edit_is_a_splice_of_the_original() {
        assert_eq!(
            edit(IncludeRewrite::Insert, r#"{"model":"o3"}"#).unwrap(),
            r#""include":["reasoning.encrypted_content"]{"model":"o3"}"#
        );
        assert_eq!(
            edit(IncludeRewrite::ReplaceNull, r#"{"include" : null }"#).unwrap(),
            r#"{"include" : ["reasoning.encrypted_content"] }"#
        );
        assert_eq!(
            edit(IncludeRewrite::Append, r#"{"include":["a"]}"#).unwrap(),
            r#"{"include":["a","reasoning.encrypted_content"]}"#
        );
        assert_eq!(
            edit(IncludeRewrite::Append, r#"{"include":[ ]}"#).unwrap(),
            r#"{"include":[ "reasoning.encrypted_content"]}"#
        );
    }

    #[test]
    fn an_edit_the_body_cannot_carry_is_refused_not_guessed() {
        for (rewrite, body) in [
            (IncludeRewrite::Insert, r#"{"include":[]}"#),
            (IncludeRewrite::ReplaceNull, r#"{"include":[]}"#),
            (IncludeRewrite::ReplaceNull, r#"{"model":"o3"}"#),
            (IncludeRewrite::Append, r#"{"include":null}"#),
            (
                IncludeRewrite::Append,
                r#"{"include":["reasoning.encrypted_content"]}"#,
            ),
            (IncludeRewrite::Append, r#"{"include":[1]}"#),
        ] {
            assert!(edit(rewrite, body).is_err(), "{rewrite:?} {body}");
        }
    }

    #[test]
    fn nothing_is_read_for_a_project_without_the_option() {
        let (c, op) = responses();
        let plan = &c.operation(op).plan;
        let names: Vec<&str> = plan.fields.iter().map(String::as_str).collect();
        let spec = inspect::JsonSpec {
            fields: &names,
            markers: &[],
        };
        let body = br#"{"include":["a"]}"#;
        let scan = inspect::scan_json(body, &spec).unwrap();
        let off = Project::with_defaults("p", "eu", policy::Retention::Zdr);
        assert!(read(&off, c.endpoint_of(op), plan, &scan, body).is_none());
        assert_eq!(facts(None), None);
        let on = Project {
            encrypted_reasoning: true,
            ..off
        };
        let got = read(&on, c.endpoint_of(op), plan, &scan, body);
        assert_eq!(
            facts(got.as_ref()),
            Some(IncludeList::Strings { has_value: false })
        );
    }
}
