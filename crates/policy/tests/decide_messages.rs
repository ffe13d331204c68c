//! What a denial tells the client: the message names the model as it was read (and the alias
//! it came from), the region and the reason, and `param` names the field at fault. The rule
//! tests check which rule fires; these pin the words, which `cargo mutants` showed could
//! change unnoticed.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use policy::{Denial, FieldValue, MarkerRole, Retention, Rule, StoreMode};

fn denial(region: &str, retention: Retention, method: &str, template: &str, req: &Req) -> Denial {
    let c = catalog();
    let p = project(region, retention);
    decide(&c, &p, op(&c, method, template), req)
        .denial
        .unwrap_or_else(|| panic!("{method} {template} in {region} was not denied"))
}

#[test]
fn the_model_is_described_as_read() {
    let emb = |req: &Req| denial("eu", Retention::Zdr, "POST", "/v1/embeddings", req).message;
    assert!(emb(&Req::new().model("foo"))
        .starts_with("model \"foo\" is not eligible for data residency on /v1/embeddings in region \"eu\""));
    assert!(emb(&Req::new()).starts_with("a request without a model is not eligible"));
    assert!(emb(&Req::new().field("model", FieldValue::Null))
        .starts_with("a request without a model is not eligible"));
    assert!(emb(&Req::new().field("model", FieldValue::Number))
        .starts_with("a model that is not a string is not eligible"));
    // An alias: the name it resolved to, then the name that was sent.
    let c = catalog();
    let mut p = project("eu", Retention::Zdr);
    p.aliases.insert("gpt-5".into(), "gpt-5-2025-08-07".into());
    let d = decide(
        &c,
        &p,
        op(&c, "POST", "/v1/chat/completions"),
        &Req::new().model("gpt-5"),
    );
    let den = d.denial.unwrap();
    assert_eq!(
        (den.rule, den.param.as_deref()),
        (Rule::ModelNotEligible, Some("model"))
    );
    assert!(
        den.message
            .starts_with("model \"gpt-5-2025-08-07\" (alias of \"gpt-5\") is not eligible"),
        "{}",
        den.message
    );
}

#[test]
fn endpoint_region_says_where_the_endpoint_is_offered() {
    let m = denial("eu", Retention::Default, "GET", "/v1/assistants", &Req::new()).message;
    assert!(
        m.starts_with("/v1/assistants is not available with data residency in region \"eu\""),
        "{m}"
    );
    assert!(
        m.ends_with("of project \"p-eu\"; it is not offered with data residency in any region."),
        "{m}"
    );
    let m = denial("jp", Retention::Default, "GET", "/v1/files", &Req::new()).message;
    assert!(
        m.ends_with("; it is offered with data residency in: us, eu."),
        "{m}"
    );
}

#[test]
fn zdr_endpoint_says_what_keeps_state() {
    // Global projects have no residency checks, so this is the only denial.
    let d = denial("global", Retention::Zdr, "GET", "/v1/assistants", &Req::new());
    assert_eq!((d.rule, d.param), (Rule::ZdrEndpoint, None));
    assert!(
        d.message.starts_with("/v1/assistants keeps application state, which is not available to zero-data-retention project \"p-global\""),
        "{}",
        d.message
    );
    let d = denial(
        "global",
        Retention::Zdr,
        "GET",
        "/v1/chat/completions",
        &Req::new(),
    );
    assert!(
        d.message
            .starts_with("GET /v1/chat/completions reads or keeps stored application state, which"),
        "{}",
        d.message
    );
}

#[test]
fn stateful_fields_are_named() {
    let resp = |req: &Req| denial("us", Retention::Zdr, "POST", "/v1/responses", req);
    let d = resp(
        &Req::new()
            .model("gpt-4o-2024-08-06")
            .field("background", FieldValue::Bool(true)),
    );
    assert_eq!(
        (d.rule, d.param.as_deref()),
        (Rule::StatefulFeature, Some("background"))
    );
    assert!(
        d.message
            .starts_with("background: true needs stored application state"),
        "{}",
        d.message
    );
    let d = resp(
        &Req::new()
            .model("gpt-4o-2024-08-06")
            .field("previous_response_id", FieldValue::String("resp_1")),
    );
    assert_eq!(d.param.as_deref(), Some("previous_response_id"));
    assert!(
        d.message
            .starts_with("previous_response_id needs stored application state"),
        "{}",
        d.message
    );
    assert!(!d.message.contains("resp_1"));
}

#[test]
fn image_denials_name_the_parameter_that_carries_the_image() {
    let c = catalog();
    let mut p = project("global", Retention::Default);
    p.image_inputs = Some(false);
    let edits = op(&c, "POST", "/v1/images/edits");
    let d = decide(&c, &p, edits, &Req::new().model("gpt-image-1"))
        .denial
        .unwrap();
    assert_eq!((d.rule, d.param.as_deref()), (Rule::ImageInput, Some("image")));
    assert!(
        d.message
            .starts_with("/v1/images/edits request carries an image input"),
        "{}",
        d.message
    );
    let d = denial(
        "eu",
        Retention::Default,
        "POST",
        "/v1/chat/completions",
        &Req::new()
            .model("gpt-4o-2024-08-06")
            .marker(MarkerRole::ImageInput),
    );
    // Found by the chat_parts allow-list: the parameter is the one the part is under.
    assert_eq!((d.rule, d.param.as_deref()), (Rule::ImageInput, Some("messages")));
    assert!(
        d.message.contains("project \"p-eu\" in region \"eu\""),
        "{}",
        d.message
    );
}

#[test]
fn store_denials_say_why_store_must_be_false() {
    let c = catalog();
    let mut p = project("eu", Retention::Default);
    p.store = StoreMode::Reject;
    let chat = op(&c, "POST", "/v1/chat/completions");
    let req = Req::new()
        .model("gpt-4o-2024-08-06")
        .field("store", FieldValue::Bool(true));
    let d = decide(&c, &p, chat, &req).denial.unwrap();
    assert_eq!((d.rule, d.param.as_deref()), (Rule::Store, Some("store")));
    assert!(
        d.message
            .starts_with("store must be false on /v1/chat/completions for region \"eu\""),
        "{}",
        d.message
    );
    assert!(
        d.message
            .ends_with("(store=true is allowed only in: global, us)."),
        "{}",
        d.message
    );
    let mut z = project("eu", Retention::Zdr);
    z.store = StoreMode::Reject;
    let d = decide(
        &c,
        &z,
        op(&c, "POST", "/v1/responses"),
        &Req::new().model("gpt-4o-2024-08-06"),
    )
    .denial
    .unwrap();
    assert_eq!(
        d.message,
        "/v1/responses stores by default, so the request must send \"store\": false for zero-data-retention project \"p-eu\"."
    );
}

#[test]
fn hipaa_names_the_web_search_field_or_tools() {
    let c = catalog();
    let mut p = project("us", Retention::Default);
    p.hipaa = true;
    let chat = op(&c, "POST", "/v1/chat/completions");
    let base = Req::new().model("gpt-4o-2024-08-06");
    let d = decide(
        &c,
        &p,
        chat,
        &base.clone().field("web_search_options", FieldValue::Object),
    );
    let den = d.denial.unwrap();
    assert_eq!(
        (den.rule, den.param.as_deref()),
        (Rule::Hipaa, Some("web_search_options"))
    );
    // A web search tool is judged by the tools allow-list: on /v1/responses its feature row is
    // not HIPAA eligible (chat lists no web search tool at all).
    let resp = op(&c, "POST", "/v1/responses");
    let d = decide(
        &c,
        &p,
        resp,
        &Req::new()
            .model("gpt-4o-2024-08-06")
            .field("store", FieldValue::Bool(false))
            .marker(MarkerRole::WebSearch),
    );
    let den = d.denial.unwrap();
    assert_eq!((den.rule, den.param.as_deref()), (Rule::Hipaa, Some("tools")));
    // A null web_search_options is no web search.
    let d = decide(
        &c,
        &p,
        chat,
        &base.clone().field("web_search_options", FieldValue::Null),
    );
    assert!(d.denial.is_none(), "{d:?}");
}

/// A flag of the wrong JSON type (issue 10) is refused naming the types the catalog documents.
#[test]
fn mistyped_flags_name_their_documented_types() {
    let resp = |field: &'static str, v: FieldValue<'static>| {
        let req = Req::new().model("gpt-4o-2024-08-06").field(field, v);
        denial("us", Retention::Zdr, "POST", "/v1/responses", &req)
    };
    for (field, v, types) in [
        ("background", FieldValue::String("true"), "boolean"),
        ("conversation", FieldValue::Bool(true), "string or object"),
        ("prompt", FieldValue::Number, "object"),
        ("previous_response_id", FieldValue::Array, "string"),
    ] {
        let d = resp(field, v);
        assert_eq!((d.rule, d.param.as_deref()), (Rule::StatefulFeature, Some(field)));
        assert_eq!(
            d.message,
            format!("{field} must be a JSON {types} (or null) on /v1/responses.")
        );
    }
}
