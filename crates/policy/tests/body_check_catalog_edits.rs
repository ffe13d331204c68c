//! The body checks read their rules from the catalog: an edition may assume a type for an
//! object without one, or mark a tool as refused under ZDR. The builtin editions do neither in
//! every way the format allows, so these tests edit the builtin catalog and check that
//! `decide` follows the data (`cargo mutants` on `decide/body.rs` found both unpinned).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{decide, op, project, rules, Req};
use policy::catalog::BUILTIN_JSON;
use policy::{Catalog, FieldValue, Retention, Verdict};
use serde_json::{json, Value};

const RESP_MODEL: &str = "gpt-4.1-2025-04-14";

fn edited(edit: impl FnOnce(&mut Value)) -> Catalog {
    let mut v: Value = serde_json::from_str(BUILTIN_JSON).unwrap();
    edit(&mut v);
    Catalog::from_json(&v.to_string()).unwrap_or_else(|e| panic!("{:#?}", e.problems))
}

fn responses(extra: impl FnOnce(Req) -> Req) -> Req {
    extra(
        Req::new()
            .model(RESP_MODEL)
            .field("store", FieldValue::Bool(false)),
    )
}

/// An input item without a `type` is judged as the type the catalog says OpenAI assumes.
#[test]
fn an_item_without_a_type_is_judged_as_its_assumed_type() {
    let mut eu = project("eu", Retention::ModifiedAbuseMonitoring);
    eu.image_inputs = Some(false);
    let untyped = responses(|r| r.check("responses_items", None));
    let judged = |absent: &str, p: &policy::Project| {
        let c = edited(|v| v["body_checks"]["responses_items"]["absent"] = json!(absent));
        decide(&c, p, op(&c, "POST", "/v1/responses"), &untyped)
    };
    // The builtin assumption (a message, the first listed type) and another image-free type
    // further down the list: no image approval needed.
    for image_free in ["message", "function_call", "reasoning", "additional_tools"] {
        let d = judged(image_free, &eu);
        assert_eq!(d.verdict, Verdict::Allow, "{image_free}: {d:?}");
    }
    // An assumed type that is listed but not image-free needs the approval.
    let d = judged("item_reference", &eu);
    assert_eq!(rules(&d), ["image_input"], "{d:?}");
    let message = d.denial.unwrap().message;
    assert!(
        message.contains("has an object without a type at input[].type"),
        "{message}"
    );
    // With the approval it passes.
    eu.image_inputs = Some(true);
    assert_eq!(judged("item_reference", &eu).verdict, Verdict::Allow);
}

/// A check whose only image-free type is the assumed one.
#[test]
fn an_assumed_type_that_is_the_only_image_free_one_passes() {
    let c = edited(|v| {
        let items = &mut v["body_checks"]["responses_items"];
        items["image_free"] = json!(["message"]);
        items["absent"] = json!("message");
    });
    let mut eu = project("eu", Retention::ModifiedAbuseMonitoring);
    eu.image_inputs = Some(false);
    let resp = op(&c, "POST", "/v1/responses");
    let d = decide(&c, &eu, resp, &responses(|r| r.check("responses_items", None)));
    assert_eq!(d.verdict, Verdict::Allow, "{d:?}");
    let d = decide(
        &c,
        &eu,
        resp,
        &responses(|r| r.check("responses_items", Some("function_call"))),
    );
    assert_eq!(rules(&d), ["image_input"]);
}

/// A tool marked `"zdr": false` is refused for ZDR projects only.
#[test]
fn a_tool_refused_under_zdr_is_refused_for_zdr_projects_only() {
    let c = edited(|v| v["body_checks"]["responses_tools"]["tools"]["function"]["zdr"] = json!(false));
    let resp = op(&c, "POST", "/v1/responses");
    let function = responses(|r| r.check("responses_tools", Some("function")));
    let custom = responses(|r| r.check("responses_tools", Some("custom")));
    for region in ["eu", "us", "global"] {
        let zdr = project(region, Retention::Zdr);
        let d = decide(&c, &zdr, resp, &function);
        assert_eq!(rules(&d), ["tool_not_eligible"], "{region}: {d:?}");
        let den = d.denial.unwrap();
        assert_eq!(den.param.as_deref(), Some("tools"));
        assert!(
            den.message.starts_with(&format!(
                "tool \"function\" is not available to zero-data-retention project \"p-{region}\""
            )),
            "{}",
            den.message
        );
        assert_eq!(
            decide(&c, &zdr, resp, &custom).verdict,
            Verdict::Allow,
            "{region}"
        );
        for retention in [Retention::ModifiedAbuseMonitoring, Retention::Default] {
            let p = project(region, retention);
            assert_eq!(
                decide(&c, &p, resp, &function).verdict,
                Verdict::Allow,
                "{region} {retention:?}"
            );
        }
    }
}
