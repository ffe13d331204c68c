//! What lives inside a body is judged by the catalog's allow-lists (`body_checks`): tool
//! types, image-free item and part types, members that point at stored state.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{catalog, decide, op, project, rules, Req};
use policy::{FieldValue, Retention, Rule, Verdict};

const RESP_MODEL: &str = "gpt-4.1-2025-04-14";

#[test]
fn a_tool_type_not_on_the_list_is_refused_under_residency() {
    let c = catalog();
    let resp = op(&c, "POST", "/v1/responses");
    let eu = project("eu", Retention::ModifiedAbuseMonitoring);
    for tool in [
        "code_interpreter",
        "image_generation",
        "mcp",
        "local_shell",
        "computer",
        "tomorrows_tool",
    ] {
        let req = Req::new()
            .model(RESP_MODEL)
            .field("store", FieldValue::Bool(false))
            .check("responses_tools", Some("function"))
            .check("responses_tools", Some(tool));
        let d = decide(&c, &eu, resp, &req);
        assert_eq!(d.verdict, Verdict::Deny, "{tool}: {d:?}");
        assert_eq!(rules(&d), ["tool_not_eligible"], "{tool}");
        let den = d.denial.unwrap();
        assert_eq!(den.param.as_deref(), Some("tools"));
        assert!(
            den.message.contains(&format!("type \"{tool}\"")),
            "{}",
            den.message
        );
        assert!(
            den.message.contains(
                "eligible tool types: computer_use_preview, custom, file_search, function, web_search"
            ),
            "{}",
            den.message
        );
    }
    // Listed tools pass, in every Table 2 region.
    for region in common::TABLE2_ALL {
        let p = project(region, Retention::Zdr);
        let req = Req::new()
            .model(RESP_MODEL)
            .field("store", FieldValue::Bool(false))
            .check("responses_tools", Some("function"))
            .check("responses_tools", Some("web_search_preview"))
            .check("responses_tools", Some("custom"));
        assert_eq!(decide(&c, &p, resp, &req).verdict, Verdict::Allow, "{region}");
    }
    // Tools smuggled in through an input item are judged by the same list.
    let req = Req::new()
        .model(RESP_MODEL)
        .field("store", FieldValue::Bool(false))
        .check("responses_item_tools", Some("mcp"));
    assert_eq!(rules(&decide(&c, &eu, resp, &req)), ["tool_not_eligible"]);
    // A tool without a type is not known: refused.
    let req = Req::new()
        .model(RESP_MODEL)
        .field("store", FieldValue::Bool(false))
        .check("responses_tools", None);
    assert_eq!(rules(&decide(&c, &eu, resp, &req)), ["tool_not_eligible"]);
}

#[test]
fn without_residency_the_tool_list_does_not_apply() {
    let c = catalog();
    let resp = op(&c, "POST", "/v1/responses");
    let g = project("global", Retention::Default);
    let req = Req::new()
        .model("gpt-5")
        .check("responses_tools", Some("code_interpreter"));
    assert_eq!(decide(&c, &g, resp, &req).verdict, Verdict::Allow);
}

#[test]
fn computer_use_needs_its_model() {
    let c = catalog();
    let resp = op(&c, "POST", "/v1/responses");
    let us = project("us", Retention::Default);
    let tool = |m| {
        Req::new()
            .model(m)
            .check("responses_tools", Some("computer_use_preview"))
    };
    assert_eq!(
        decide(&c, &us, resp, &tool("computer-use-preview")).verdict,
        Verdict::Allow
    );
    let d = decide(&c, &us, resp, &tool(RESP_MODEL));
    assert_eq!(rules(&d), ["tool_not_eligible"]);
    assert!(d
        .denial
        .unwrap()
        .message
        .contains("only with model computer-use-preview"));
}

#[test]
fn chat_takes_function_and_custom_tools_only() {
    let c = catalog();
    let chat = op(&c, "POST", "/v1/chat/completions");
    let eu = project("eu", Retention::ModifiedAbuseMonitoring);
    let req = |t| Req::new().model("gpt-4o-2024-08-06").check("chat_tools", Some(t));
    assert_eq!(decide(&c, &eu, chat, &req("function")).verdict, Verdict::Allow);
    assert_eq!(
        rules(&decide(&c, &eu, chat, &req("web_search"))),
        ["tool_not_eligible"]
    );
}

#[test]
fn web_search_tools_are_refused_for_hipaa_by_their_feature_row() {
    let c = catalog();
    let resp = op(&c, "POST", "/v1/responses");
    let mut p = project("us", Retention::Zdr);
    p.hipaa = true;
    for t in [
        "web_search",
        "web_search_2025_08_26",
        "web_search_preview",
        "web_search_preview_2025_03_11",
    ] {
        let req = Req::new()
            .model(RESP_MODEL)
            .field("store", FieldValue::Bool(false))
            .check("responses_tools", Some(t));
        let d = decide(&c, &p, resp, &req);
        assert_eq!(rules(&d), ["hipaa"], "{t}");
        assert!(d.denial.unwrap().message.contains("not HIPAA eligible"));
    }
    let req = Req::new()
        .model(RESP_MODEL)
        .field("store", FieldValue::Bool(false))
        .check("responses_tools", Some("file_search"));
    assert_eq!(decide(&c, &p, resp, &req).verdict, Verdict::Allow);
}

#[test]
fn a_type_not_known_image_free_needs_image_approval() {
    let c = catalog();
    let resp = op(&c, "POST", "/v1/responses");
    let mut eu = project("eu", Retention::ModifiedAbuseMonitoring);
    let cases = [
        ("responses_items", Some("computer_call_output")),
        ("responses_items", Some("image_generation_call")),
        ("responses_items", Some("code_interpreter_call")),
        ("responses_items", Some("item_reference")),
        ("responses_items", Some("a_type_from_tomorrow")),
        ("responses_parts", Some("input_image")),
        ("responses_parts", Some("input_file")),
        ("responses_parts", None),
        ("responses_output_parts", Some("input_image")),
    ];
    for (check, value) in cases {
        let req = Req::new()
            .model(RESP_MODEL)
            .field("store", FieldValue::Bool(false))
            .check(check, value);
        eu.image_inputs = None;
        let d = decide(&c, &eu, resp, &req);
        assert_eq!(rules(&d), ["image_input"], "{check} {value:?}");
        let den = d.denial.unwrap();
        assert_eq!(den.param.as_deref(), Some("input"));
        assert!(
            den.message.contains("not known to be free of images"),
            "{}",
            den.message
        );
        eu.image_inputs = Some(true);
        assert_eq!(
            decide(&c, &eu, resp, &req).verdict,
            Verdict::Allow,
            "{check} {value:?}"
        );
    }
    // Image-free types, and an item without a type (a message), pass without approval.
    eu.image_inputs = None;
    let req = Req::new()
        .model(RESP_MODEL)
        .field("store", FieldValue::Bool(false))
        .check("responses_items", None)
        .check("responses_items", Some("function_call_output"))
        .check("responses_items", Some("reasoning"))
        .check("responses_parts", Some("input_text"))
        .check("responses_parts", Some("output_text"))
        .check("responses_output_parts", Some("input_text"));
    assert_eq!(decide(&c, &eu, resp, &req).verdict, Verdict::Allow);
    // Chat and moderations.
    let chat = op(&c, "POST", "/v1/chat/completions");
    for part in ["image_url", "file"] {
        let req = Req::new()
            .model("gpt-4o-2024-08-06")
            .check("chat_parts", Some(part));
        assert_eq!(rules(&decide(&c, &eu, chat, &req)), ["image_input"], "{part}");
    }
    let req = Req::new()
        .model("gpt-4o-2024-08-06")
        .check("chat_parts", Some("text"))
        .check("chat_parts", Some("input_audio"));
    assert_eq!(decide(&c, &eu, chat, &req).verdict, Verdict::Allow);
    let moderations = op(&c, "POST", "/v1/moderations");
    let req = Req::new()
        .model("omni-moderation-latest")
        .check("moderation_inputs", Some("image_url"));
    assert_eq!(rules(&decide(&c, &eu, moderations, &req)), ["image_input"]);
}

#[test]
fn references_to_stored_state_are_refused_under_zdr() {
    let c = catalog();
    let resp = op(&c, "POST", "/v1/responses");
    let mut zdr = project("eu", Retention::Zdr);
    zdr.image_inputs = Some(true);
    let mam = {
        let mut p = project("eu", Retention::ModifiedAbuseMonitoring);
        p.image_inputs = Some(true);
        p
    };
    let base = || {
        Req::new()
            .model(RESP_MODEL)
            .field("store", FieldValue::Bool(false))
    };
    let cases = [
        (
            base().check("responses_items", Some("item_reference")),
            "input",
            "item_reference",
        ),
        (
            base().check("responses_tool_vector_stores", Some("vs_1")),
            "tools",
            "vector_store_ids",
        ),
        (
            base().check("responses_part_file_ids", Some("file-1")),
            "input",
            "file_id",
        ),
        (
            base().check("responses_output_file_ids", Some("file-1")),
            "input",
            "file_id",
        ),
        (
            base().check("responses_screenshot_file_ids", Some("file-1")),
            "input",
            "file_id",
        ),
        (base().field("prompt", FieldValue::Object), "prompt", "prompt"),
    ];
    for (req, param, named) in cases {
        let d = decide(&c, &zdr, resp, &req);
        assert_eq!(rules(&d), ["stateful_feature"], "{named}");
        let den = d.denial.unwrap();
        assert_eq!(den.param.as_deref(), Some(param));
        assert!(den.message.contains(named), "{}", den.message);
        assert_eq!(decide(&c, &mam, resp, &req).verdict, Verdict::Allow, "{named}");
    }
    let chat = op(&c, "POST", "/v1/chat/completions");
    for check in ["chat_part_file_ids", "chat_audio_refs"] {
        let req = Req::new().model("gpt-4o-2024-08-06").check(check, Some("x"));
        assert_eq!(
            rules(&decide(&c, &zdr, chat, &req)),
            ["stateful_feature"],
            "{check}"
        );
    }
    // Absent or null members point at nothing.
    let req = base().check("responses_part_file_ids", None);
    assert_eq!(decide(&c, &zdr, resp, &req).verdict, Verdict::Allow);
    assert!(Rule::ALL.contains(&Rule::ToolNotEligible));
}
