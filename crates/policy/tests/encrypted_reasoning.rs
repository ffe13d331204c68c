//! Stateless reasoning, opt-in (`responses_encrypted_reasoning`): the catalog's value is added
//! to the include list of a reasoning model's request; the models and the value are catalog
//! data; an include that cannot be edited is refused.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use policy::catalog::{BUILTIN_JSON, EDITIONS};
use policy::{Catalog, Decision, FieldValue, IncludeRewrite, Project, Retention, Verdict};
use serde_json::Value;

const REASONING: &str = "o3-2025-04-16";

fn opted_in(region: &str, retention: Retention) -> Project {
    Project {
        encrypted_reasoning: true,
        ..project(region, retention)
    }
}

fn respond(c: &Catalog, p: &Project, req: &Req) -> Decision {
    decide(c, p, op(c, "POST", "/v1/responses"), req)
}

fn rules(d: &Decision) -> Vec<&'static str> {
    d.rules.iter().map(|r| r.as_str()).collect()
}

#[test]
fn off_by_default_nothing_is_added() {
    let c = catalog();
    let d = respond(&c, &project("eu", Retention::Zdr), &Req::new().model(REASONING));
    assert_eq!(d.rewrites.include, None);
    assert_eq!(rules(&d), ["store"]);
}

#[test]
fn absent_null_and_an_array_without_the_value_are_edited() {
    let c = catalog();
    let p = opted_in("eu", Retention::Zdr);
    let stored_false = |r: Req| r.field("store", FieldValue::Bool(false));
    let d = respond(&c, &p, &stored_false(Req::new().model(REASONING)));
    assert_eq!(d.rewrites.include, Some(IncludeRewrite::Insert));
    assert_eq!(
        (d.verdict, rules(&d)),
        (Verdict::Rewrite, vec!["encrypted_reasoning"])
    );
    let d = respond(
        &c,
        &p,
        &stored_false(Req::new().model(REASONING).field("include", FieldValue::Null)),
    );
    assert_eq!(d.rewrites.include, Some(IncludeRewrite::ReplaceNull));
    let array = || Req::new().model(REASONING).field("include", FieldValue::Array);
    let d = respond(&c, &p, &stored_false(array().include_strings(false)));
    assert_eq!(d.rewrites.include, Some(IncludeRewrite::Append));
    // Already there: nothing to do, the request is allowed as sent.
    let d = respond(&c, &p, &stored_false(array().include_strings(true)));
    assert_eq!((d.verdict, d.rewrites.include), (Verdict::Allow, None));
    // Alongside the store rewrite of a ZDR project: both rules.
    let d = respond(&c, &p, &Req::new().model(REASONING));
    assert_eq!(rules(&d), ["store", "encrypted_reasoning"]);
}

#[test]
fn only_the_catalogs_reasoning_models_after_aliases_and_in_every_region() {
    let c = catalog();
    let mut p = opted_in("eu", Retention::Zdr);
    let d = respond(&c, &p, &Req::new().model("gpt-4o-2024-08-06"));
    assert_eq!(d.rewrites.include, None, "not a reasoning model");
    p.aliases.insert("o3".into(), REASONING.into());
    let d = respond(&c, &p, &Req::new().model("o3"));
    assert_eq!(
        d.rewrites.include,
        Some(IncludeRewrite::Insert),
        "after the alias"
    );
    // A global ZDR project may send any name: the list decides.
    let g = opted_in("global", Retention::Zdr);
    for (m, edited) in [
        ("gpt-5", true),
        ("o4-mini", true),
        ("gpt-5-chat-latest", false),
        ("gpt-4.1", false),
    ] {
        let d = respond(&c, &g, &Req::new().model(m));
        assert_eq!(d.rewrites.include.is_some(), edited, "{m}");
    }
    // A request without a model gets no edit (and is judged by the other rules).
    let d = respond(&c, &g, &Req::new());
    assert_eq!(d.rewrites.include, None);
}

#[test]
fn an_include_that_is_not_an_array_of_strings_is_refused() {
    let c = catalog();
    let p = opted_in("eu", Retention::Zdr);
    for req in [
        Req::new().field("include", FieldValue::String("reasoning.encrypted_content")),
        Req::new().field("include", FieldValue::Object),
        Req::new().field("include", FieldValue::Number),
        Req::new()
            .field("include", FieldValue::Array)
            .include_not_strings(),
        // An array whose elements were not read: fail closed.
        Req::new().field("include", FieldValue::Array),
    ] {
        let d = respond(&c, &p, &req.model(REASONING));
        assert_eq!(d.verdict, Verdict::Deny);
        assert_eq!(rules(&d), ["encrypted_reasoning"]);
        let denial = d.denial.unwrap();
        assert_eq!(denial.param.as_deref(), Some("include"));
        assert!(
            denial.message.contains("include must be an array of strings"),
            "{}",
            denial.message
        );
        assert!(
            denial.message.contains("responses_encrypted_reasoning"),
            "{}",
            denial.message
        );
        assert_eq!(d.rewrites.include, None, "a denied request is not rewritten");
    }
    // Without the option, or for another model, the proxy does not judge include.
    let d = respond(
        &c,
        &project("eu", Retention::Zdr),
        &Req::new().model(REASONING).field("include", FieldValue::Object),
    );
    assert_ne!(d.verdict, Verdict::Deny);
}

#[test]
fn the_zdr_refusal_of_previous_response_id_points_to_the_option() {
    let c = catalog();
    for p in [project("eu", Retention::Zdr), opted_in("eu", Retention::Zdr)] {
        let d = respond(
            &c,
            &p,
            &Req::new()
                .model(REASONING)
                .field("previous_response_id", FieldValue::String("resp_1")),
        );
        assert_eq!(rules(&d), ["stateful_feature"]);
        let m = d.denial.unwrap().message;
        assert!(m.contains("\"reasoning.encrypted_content\""), "{m}");
        assert!(m.contains("responses_encrypted_reasoning = true"), "{m}");
    }
    // background is not replaced by it: its refusal does not point there.
    let d = respond(
        &c,
        &project("eu", Retention::Zdr),
        &Req::new()
            .model(REASONING)
            .field("background", FieldValue::Bool(true)),
    );
    assert!(!d.denial.unwrap().message.contains("encrypted"));
}

#[test]
fn both_editions_carry_the_same_reasoning_models_with_a_source() {
    let specs: Vec<_> = EDITIONS
        .iter()
        .map(|(name, json)| {
            let c = Catalog::from_json(json).unwrap();
            let e = c.endpoint("/v1/responses").unwrap().encrypted_reasoning.clone();
            (
                name,
                e.unwrap_or_else(|| panic!("{name}: no encrypted_reasoning")),
            )
        })
        .collect();
    for (name, s) in &specs {
        assert_eq!(
            (s.field.as_str(), s.value.as_str()),
            ("include", "reasoning.encrypted_content"),
            "{name}"
        );
        assert_eq!(s.instead_of.len(), 2, "{name}");
        assert_eq!(s.models, specs[0].1.models, "{name}");
    }
    let v: Value = serde_json::from_str(BUILTIN_JSON).unwrap();
    let e = v["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["id"] == "/v1/responses")
        .unwrap();
    assert_eq!(e["encrypted_reasoning"]["sources"][0], "openai-openapi-2026-08");
}

fn edited(f: impl FnOnce(&mut Value)) -> Vec<String> {
    let mut v: Value = serde_json::from_str(BUILTIN_JSON).unwrap();
    f(&mut v);
    Catalog::from_json(&v.to_string())
        .expect_err("should be invalid")
        .problems
}

fn responses(v: &mut Value) -> &mut Value {
    v["endpoints"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|e| e["id"] == "/v1/responses")
        .unwrap()
}

#[test]
fn the_catalog_block_is_validated() {
    let p = edited(|v| {
        let e = responses(v);
        e["encrypted_reasoning"]["models"] = serde_json::json!([]);
        e["encrypted_reasoning"]["instead_of"] = serde_json::json!(["previous_response"]);
        e["encrypted_reasoning"]["sources"] = serde_json::json!(["nowhere"]);
    });
    let joined = p.join("\n");
    assert!(
        joined.contains(".encrypted_reasoning.models: must list at least one model"),
        "{joined}"
    );
    assert!(
        joined.contains(".encrypted_reasoning.instead_of[0]: \"previous_response\""),
        "{joined}"
    );
    assert!(
        joined.contains(".encrypted_reasoning.sources[0]: unknown source \"nowhere\""),
        "{joined}"
    );
    // The include role needs the block, and the block's field.
    let p = edited(|v| {
        responses(v)
            .as_object_mut()
            .unwrap()
            .remove("encrypted_reasoning");
    });
    assert!(
        p.iter()
            .any(|x| x.ends_with("role include but the endpoint has no encrypted_reasoning")),
        "{p:?}"
    );
    let p = edited(|v| responses(v)["encrypted_reasoning"]["field"] = "includes".into());
    assert!(
        p.iter()
            .any(|x| x.contains("encrypted_reasoning field is \"includes\", not \"include\"")),
        "{p:?}"
    );
}
