//! One or more black-box tests per rule id: status, headers, error body, param, and where the
//! request went (a denied request must reach no upstream).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use serde_json::{json, Value};
use support::*;

const CHAT: &str = "/v1/chat/completions";
const RESPONSES: &str = "/v1/responses";

fn chat_body(model: &str) -> String {
    json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}).to_string()
}

#[tokio::test]
async fn no_project_without_default() {
    let projects = format!(
        r#"
[[projects]]
name = "eu-only"
region = "eu"
retention = "zdr"
openai_project = "proj_eu"
api_key_sha256 = ["{}"]
"#,
        sha256_hex(EU_CLIENT_KEY)
    );
    let env = Env::with("", &projects, &[]).await;
    let r = env
        .post_json(
            CHAT,
            &[("Authorization", "Bearer sk-someone-else")],
            &chat_body("gpt-4o-2024-08-06"),
        )
        .await;
    r.assert_denied("no_project", None);
    assert!(r.header("x-residency-project").is_some(), "{r:#?}");
    assert!(r.header("x-residency-region").is_some(), "{r:#?}");
    // An OpenAI-Project header naming no project is no better.
    let r = env
        .post_json(
            CHAT,
            &[("OpenAI-Project", "proj_nobody")],
            &chat_body("gpt-4o-2024-08-06"),
        )
        .await;
    r.assert_denied("no_project", None);
    // The same project is reachable by its key and by its header.
    let ok = env
        .post_json(
            CHAT,
            &[("Authorization", &format!("Bearer {EU_CLIENT_KEY}"))],
            &chat_body("gpt-4o-2024-08-06"),
        )
        .await;
    assert_eq!(ok.status, 200, "{ok:#?}");
    ok.assert_residency("allow", "eu-only", "eu");
    assert_eq!(env.eu.request_count(), 1);
    env.eu.clear();
    env.assert_nothing_forwarded().await;
}

#[tokio::test]
async fn ambiguous_selection_is_no_project() {
    let env = Env::standard().await;
    let r = env
        .send(
            "POST",
            CHAT,
            &[
                ("Content-Type", "application/json"),
                ("OpenAI-Project", "proj_eu"),
                ("OpenAI-Project", "proj_us"),
            ],
            chat_body("gpt-4o-2024-08-06").as_bytes(),
        )
        .await;
    r.assert_denied("no_project", None);
    env.assert_nothing_forwarded().await;
}

#[tokio::test]
async fn unknown_endpoint_fails_closed() {
    let env = Env::standard().await;
    for (method, path) in [
        ("POST", "/v1/not/a/thing"),
        ("GET", "/v1/conversations"),
        ("POST", "/v2/chat/completions"),
        ("PUT", CHAT),
    ] {
        let r = env
            .send(
                method,
                path,
                &[
                    ("Content-Type", "application/json"),
                    ("OpenAI-Project", "proj_us"),
                ],
                b"{}",
            )
            .await;
        let v = r.assert_denied("unknown_endpoint", None);
        assert_eq!(r.rules(), ["unknown_endpoint"], "{method} {path}");
        r.assert_residency("deny", "us-std", "us");
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .contains(path.split('?').next().unwrap()),
            "{v}"
        );
    }
    env.assert_nothing_forwarded().await;
}

#[tokio::test]
async fn endpoint_region_realtime_is_us_only() {
    let env = Env::standard().await;
    let body = json!({"model": "gpt-4o-realtime-preview-2024-12-17"}).to_string();
    let r = env.post_as("proj_eu_mam", "/v1/realtime/sessions", &body).await;
    let v = r.assert_denied("endpoint_region", None);
    r.assert_residency("deny", "eu-mam", "eu");
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("eu") && msg.contains("/v1/realtime"),
        "message names region and endpoint: {msg}"
    );
    // The websocket handshake is refused before any upgrade.
    let r = env
        .send(
            "GET",
            "/v1/realtime?model=gpt-4o-realtime-preview-2024-12-17",
            &[
                ("OpenAI-Project", "proj_eu_mam"),
                ("Connection", "Upgrade"),
                ("Upgrade", "websocket"),
                ("Sec-WebSocket-Version", "13"),
                ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
            ],
            b"",
        )
        .await;
    r.assert_denied("endpoint_region", None);
    env.assert_nothing_forwarded().await;
    // In the US the same session request goes to the us upstream.
    let r = env.post_as("proj_us", "/v1/realtime/sessions", &body).await;
    assert_eq!(r.status, 200, "{r:#?}");
    r.assert_residency("allow", "us-std", "us");
    assert_eq!(env.us.request_count(), 1);
    assert_eq!(env.eu.request_count(), 0);
}

#[tokio::test]
async fn model_not_eligible_alias_and_missing_model() {
    let env = Env::standard().await;
    // "gpt-4o" is an alias, not an eligible snapshot (eu-mam has no aliases).
    let r = env.post_as("proj_eu_mam", CHAT, &chat_body("gpt-4o")).await;
    let v = r.assert_denied("model_not_eligible", Some("model"));
    assert!(v["error"]["message"].as_str().unwrap().contains("gpt-4o"), "{v}");
    r.assert_residency("deny", "eu-mam", "eu");
    // Also in the US, which is a residency region too.
    let r = env
        .post_as(
            "proj_us",
            RESPONSES,
            &json!({"model": "gpt-4o", "input": "hi"}).to_string(),
        )
        .await;
    r.assert_denied("model_not_eligible", Some("model"));
    // No model at all.
    let r = env
        .post_as("proj_us", CHAT, &json!({"messages": []}).to_string())
        .await;
    r.assert_denied("model_not_eligible", Some("model"));
    // A model that is not an embeddings model.
    let r = env
        .post_as(
            "proj_eu_mam",
            "/v1/embeddings",
            &json!({"model": "text-embedding-9", "input": "x"}).to_string(),
        )
        .await;
    r.assert_denied("model_not_eligible", Some("model"));
    // Images: only dall-e-3 is listed (gpt-image-1 is not, outside ZDR).
    let r = env
        .post_as(
            "proj_eu_mam",
            "/v1/images/generations",
            &json!({"model": "gpt-image-1", "prompt": "x"}).to_string(),
        )
        .await;
    r.assert_denied("model_not_eligible", Some("model"));
    env.assert_nothing_forwarded().await;

    // The eligible snapshots pass.
    for (path, body) in [
        (CHAT, chat_body("gpt-4o-2024-08-06")),
        (CHAT, chat_body("gpt-4.1-2025-04-14")),
        (CHAT, chat_body("gpt-4o-mini-2024-07-18")),
        (
            "/v1/embeddings",
            json!({"model": "text-embedding-3-small", "input": "x"}).to_string(),
        ),
        (
            "/v1/images/generations",
            json!({"model": "dall-e-3", "prompt": "x"}).to_string(),
        ),
    ] {
        let r = env.post_as("proj_eu_mam", path, &body).await;
        assert_eq!(r.status, 200, "{path} {body}: {r:#?}");
        r.assert_residency("allow", "eu-mam", "eu");
    }
    assert_eq!(env.eu.request_count(), 5);
    assert_eq!(env.us.request_count(), 0);
}

#[tokio::test]
async fn zdr_endpoint_stateful_apis() {
    let env = Env::standard().await;
    let ft = json!({"model": "gpt-4o-2024-08-06", "training_file": "file-abc"}).to_string();
    let r = env.post_as("proj_eu", "/v1/fine_tuning/jobs", &ft).await;
    let v = r.assert_denied("zdr_endpoint", None);
    r.assert_residency("deny", "eu-zdr", "eu");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("/v1/fine_tuning/jobs"),
        "{v}"
    );
    for (method, path, body) in [
        (
            "POST",
            "/v1/assistants",
            json!({"model": "gpt-4o-2024-08-06"}).to_string(),
        ),
        ("POST", "/v1/threads", "{}".to_string()),
        ("POST", "/v1/vector_stores", json!({"name": "x"}).to_string()),
        ("GET", "/v1/files", String::new()),
        (
            "POST",
            "/v1/batches",
            json!({"input_file_id": "file-1", "endpoint": CHAT, "completion_window": "24h"}).to_string(),
        ),
    ] {
        let r = env
            .send(
                method,
                path,
                &[
                    ("Content-Type", "application/json"),
                    ("OpenAI-Project", "proj_eu"),
                ],
                body.as_bytes(),
            )
            .await;
        r.assert_denied("zdr_endpoint", None);
        r.assert_residency("deny", "eu-zdr", "eu");
    }
    // The same in a US ZDR project.
    let r = env.post_as("proj_us_zdr", "/v1/fine_tuning/jobs", &ft).await;
    r.assert_denied("zdr_endpoint", None);
    env.assert_nothing_forwarded().await;
    // Without ZDR (modified abuse monitoring) fine-tuning is offered in the EU.
    let r = env.post_as("proj_eu_mam", "/v1/fine_tuning/jobs", &ft).await;
    assert_eq!(r.status, 200, "{r:#?}");
    r.assert_residency("allow", "eu-mam", "eu");
    assert_eq!(env.eu.requests()[0].path(), "/v1/fine_tuning/jobs");
}

#[tokio::test]
async fn zdr_model_dall_e_3_and_eu_zdr_images_always_denied() {
    let env = Env::standard().await;
    let r = env
        .post_as(
            "proj_eu",
            "/v1/images/generations",
            &json!({"model": "dall-e-3", "prompt": "a cat"}).to_string(),
        )
        .await;
    r.assert_denied("zdr_model", Some("model"));
    r.assert_residency("deny", "eu-zdr", "eu");
    let r = env
        .post_as(
            "proj_us_zdr",
            "/v1/images/generations",
            &json!({"model": "dall-e-3", "prompt": "a cat"}).to_string(),
        )
        .await;
    r.assert_denied("zdr_model", Some("model"));
    // gpt-image-1 is ZDR-compatible but not an eligible residency model: still denied in eu.
    let r = env
        .post_as(
            "proj_eu",
            "/v1/images/generations",
            &json!({"model": "gpt-image-1", "prompt": "a cat"}).to_string(),
        )
        .await;
    assert_eq!(r.status, 403, "{r:#?}");
    assert_eq!(r.header("x-residency-decision"), Some("deny"));
    env.assert_nothing_forwarded().await;
}

#[tokio::test]
async fn stateful_feature_under_zdr() {
    let env = Env::standard().await;
    for (field, value) in [
        ("previous_response_id", json!("resp_123")),
        ("conversation", json!("conv_123")),
        ("background", json!(true)),
    ] {
        let mut body = json!({"model": "gpt-4.1-2025-04-14", "input": "hi", "store": false});
        body[field] = value;
        let r = env.post_as("proj_eu", RESPONSES, &body.to_string()).await;
        let v = r.assert_denied("stateful_feature", Some(field));
        r.assert_residency("deny", "eu-zdr", "eu");
        assert!(v["error"]["message"].as_str().unwrap().contains(field), "{v}");
    }
    env.assert_nothing_forwarded().await;
    // background: false needs no state.
    let body = json!({"model": "gpt-4.1-2025-04-14", "input": "hi", "store": false, "background": false});
    let r = env.post_as("proj_eu", RESPONSES, &body.to_string()).await;
    assert_eq!(r.status, 200, "{r:#?}");
    r.assert_residency("allow", "eu-zdr", "eu");
    // Without ZDR, state is allowed (it stays in region).
    let body = json!({"model": "gpt-4.1-2025-04-14", "input": "hi", "previous_response_id": "resp_1"});
    let r = env.post_as("proj_eu_mam", RESPONSES, &body.to_string()).await;
    assert_eq!(r.status, 200, "{r:#?}");
    assert_eq!(env.eu.request_count(), 2);
}

#[tokio::test]
async fn stored_response_retrieval_is_denied_under_zdr() {
    let env = Env::standard().await;
    let r = env
        .send(
            "GET",
            "/v1/responses/resp_123",
            &[("OpenAI-Project", "proj_eu")],
            b"",
        )
        .await;
    assert_eq!(r.status, 403, "{r:#?}");
    assert_eq!(r.header("x-residency-decision"), Some("deny"));
    let rules = r.rules();
    assert!(
        rules
            .iter()
            .any(|x| x == "stateful_feature" || x == "zdr_endpoint"),
        "GET /v1/responses/{{id}} needs stored state: {rules:?}"
    );
    env.assert_nothing_forwarded().await;
}

#[tokio::test]
async fn store_rewrite_and_reject() {
    let env = Env::standard().await;
    // Chat completions: store=true outside the US is rewritten (eu-zdr, eu-mam) ...
    for project in ["proj_eu", "proj_eu_mam"] {
        let body = r#"{"model":"gpt-4o-2024-08-06","store":true,"messages":[]}"#;
        let r = env.post_as(project, CHAT, body).await;
        assert_eq!(r.status, 200, "{r:#?}");
        assert_eq!(r.header("x-residency-decision"), Some("rewrite"));
        assert_eq!(r.rules(), ["store"]);
    }
    let got = env.eu.requests();
    assert_eq!(got.len(), 2);
    for g in &got {
        assert_eq!(
            &g.body[..],
            br#"{"model":"gpt-4o-2024-08-06","store":false,"messages":[]}"#
        );
    }
    // ... refused with store = "reject" ...
    let r = env
        .post_as(
            "proj_eu_reject",
            CHAT,
            r#"{"model":"gpt-4o-2024-08-06","store":true,"messages":[]}"#,
        )
        .await;
    r.assert_denied("store", Some("store"));
    r.assert_residency("deny", "eu-reject", "eu");
    assert_eq!(env.eu.request_count(), 2);
    // ... and allowed in a US project without ZDR.
    let body = r#"{"model":"gpt-4o-2024-08-06","store":true,"messages":[]}"#;
    let r = env.post_as("proj_us", CHAT, body).await;
    assert_eq!(r.status, 200, "{r:#?}");
    r.assert_residency("allow", "us-std", "us");
    assert_eq!(&env.us.requests()[0].body[..], body.as_bytes());
    // Under ZDR in the US store is still treated as false.
    let r = env.post_as("proj_us_zdr", CHAT, body).await;
    assert_eq!(r.header("x-residency-decision"), Some("rewrite"), "{r:#?}");
    assert_eq!(r.rules(), ["store"]);
    assert_eq!(env.us.requests()[1].json().unwrap()["store"], false);
    // store=false is left alone.
    env.eu.clear();
    let body = r#"{"model":"gpt-4o-2024-08-06","store":false,"messages":[]}"#;
    let r = env.post_as("proj_eu", CHAT, body).await;
    r.assert_residency("allow", "eu-zdr", "eu");
    assert_eq!(&env.eu.requests()[0].body[..], body.as_bytes());
}

#[tokio::test]
async fn responses_store_false_inserted_under_zdr() {
    let env = Env::standard().await;
    let body = json!({"model": "gpt-4.1-2025-04-14", "input": "hello", "temperature": 0.5});
    let r = env.post_as("proj_eu", RESPONSES, &body.to_string()).await;
    assert_eq!(r.status, 200, "{r:#?}");
    r.assert_residency("rewrite", "eu-zdr", "eu");
    assert_eq!(r.rules(), ["store"]);
    let got = env.eu.requests();
    assert_eq!(got.len(), 1);
    let mut expected = body.clone();
    expected["store"] = json!(false);
    assert_eq!(got[0].json().unwrap(), expected);
    assert_eq!(
        got[0].header("content-length"),
        Some(got[0].body.len().to_string())
    );
    // With store = "reject", a response that would be stored (default true) is refused.
    let r = env.post_as("proj_eu_reject", RESPONSES, &body.to_string()).await;
    r.assert_denied("store", Some("store"));
    // Outside ZDR, responses may store in region: forwarded untouched.
    let r = env.post_as("proj_eu_mam", RESPONSES, &body.to_string()).await;
    assert_eq!(r.status, 200, "{r:#?}");
    r.assert_residency("allow", "eu-mam", "eu");
    assert_eq!(&env.eu.requests()[1].body[..], body.to_string().as_bytes());
}

#[tokio::test]
async fn image_input_needs_approval_outside_us() {
    let env = Env::standard().await;
    let chat = json!({"model": "gpt-4o-2024-08-06", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "what is this"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
    ]}]})
    .to_string();
    let responses =
        json!({"model": "gpt-4.1-2025-04-14", "store": false, "input": [{"role": "user", "content": [
            {"type": "input_text", "text": "what is this"},
            {"type": "input_image", "image_url": "https://example.com/cat.png"}
        ]}]})
        .to_string();
    let r = env.post_as("proj_eu", CHAT, &chat).await;
    let v = r.assert_denied("image_input", None);
    r.assert_residency("deny", "eu-zdr", "eu");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("image"),
        "{v}"
    );
    let r = env.post_as("proj_eu", RESPONSES, &responses).await;
    r.assert_denied("image_input", None);
    let r = env.post_as("proj_eu_mam", CHAT, &chat).await;
    r.assert_denied("image_input", None);
    env.assert_nothing_forwarded().await;
    // Approved EU project, and the US: forwarded byte for byte.
    let r = env.post_as("proj_eu_img", CHAT, &chat).await;
    assert_eq!(r.status, 200, "{r:#?}");
    r.assert_residency("allow", "eu-img", "eu");
    assert_eq!(&env.eu.requests()[0].body[..], chat.as_bytes());
    let r = env.post_as("proj_us", CHAT, &chat).await;
    assert_eq!(r.status, 200, "{r:#?}");
    r.assert_residency("allow", "us-std", "us");
    // Text that merely mentions image_url is not an image.
    let text =
        json!({"model": "gpt-4o-2024-08-06", "messages": [{"role": "user", "content": "type image_url"}]});
    let r = env.post_as("proj_eu", CHAT, &text.to_string()).await;
    assert_eq!(r.status, 200, "{r:#?}");
}

#[tokio::test]
async fn hipaa_refuses_web_search() {
    let env = Env::standard().await;
    let body = json!({"model": "gpt-4.1-2025-04-14", "input": "news?", "store": false,
                      "tools": [{"type": "web_search_preview"}]});
    let r = env.post_as("proj_us_hipaa", RESPONSES, &body.to_string()).await;
    let v = r.assert_denied("hipaa", None);
    r.assert_residency("deny", "us-hipaa", "us");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("search"),
        "{v}"
    );
    let chat = json!({"model": "gpt-4o-2024-08-06", "messages": [], "web_search_options": {}});
    let r = env.post_as("proj_us_hipaa", CHAT, &chat.to_string()).await;
    r.assert_denied("hipaa", None);
    env.assert_nothing_forwarded().await;
    // Other tools are fine; web search is fine without hipaa.
    let ok = json!({"model": "gpt-4.1-2025-04-14", "input": "x", "store": false,
                    "tools": [{"type": "function", "name": "f", "parameters": {}}]});
    let r = env.post_as("proj_us_hipaa", RESPONSES, &ok.to_string()).await;
    assert_eq!(r.status, 200, "{r:#?}");
    let r = env.post_as("proj_us", RESPONSES, &body.to_string()).await;
    assert_eq!(r.status, 200, "{r:#?}");
    r.assert_residency("allow", "us-std", "us");
    assert_eq!(env.us.request_count(), 2);
}

#[tokio::test]
async fn report_mode_forwards_and_marks() {
    let env = Env::standard().await;
    let ft = json!({"model": "gpt-4o-2024-08-06", "training_file": "file-abc"}).to_string();
    let r = env.post_as("proj_eu_report", "/v1/fine_tuning/jobs", &ft).await;
    assert_eq!(r.status, 200, "report mode forwards: {r:#?}");
    r.assert_residency("report-deny", "eu-report", "eu");
    assert_eq!(r.rules(), ["zdr_endpoint"]);
    assert_eq!(r.header("x-mock-upstream"), Some("eu"));
    let got = env.eu.requests();
    assert_eq!(got.len(), 1);
    assert_eq!(&got[0].body[..], ft.as_bytes());
    // A compliant request in report mode is a plain allow.
    let r = env
        .post_as("proj_eu_report", CHAT, &chat_body("gpt-4o-2024-08-06"))
        .await;
    r.assert_residency("allow", "eu-report", "eu");
}

#[tokio::test]
async fn models_listing_is_allowed_everywhere() {
    let env = Env::standard().await;
    for (project, name, region) in [
        ("proj_eu", "eu-zdr", "eu"),
        ("proj_us", "us-std", "us"),
        ("proj_us_hipaa", "us-hipaa", "us"),
    ] {
        for path in ["/v1/models", "/v1/models/gpt-4o", "/v1/models/dall-e-2"] {
            let r = env.send("GET", path, &[("OpenAI-Project", project)], b"").await;
            assert_eq!(r.status, 200, "{project} {path}: {r:#?}");
            r.assert_residency("allow", name, region);
            assert!(r.header("x-residency-rule").is_none(), "{r:#?}");
        }
    }
    assert_eq!(env.eu.request_count(), 3);
    assert_eq!(env.us.request_count(), 6);
    let v: Value = serde_json::from_slice(&env.eu.requests()[0].body).unwrap_or(Value::Null);
    assert!(v.is_null(), "GET has no body");
}

#[tokio::test]
async fn several_rules_are_comma_separated() {
    let env = Env::standard().await;
    let r = env
        .post_as(
            "proj_eu",
            CHAT,
            r#"{"model":"gpt-4o","store":true,"messages":[]}"#,
        )
        .await;
    assert_eq!(r.status, 200, "{r:#?}");
    r.assert_residency("rewrite", "eu-zdr", "eu");
    let mut rules = r.rules();
    rules.sort();
    assert_eq!(
        rules,
        ["alias", "store"],
        "raw header: {:?}",
        r.header("x-residency-rule")
    );
    assert_eq!(
        &env.eu.requests()[0].body[..],
        br#"{"model":"gpt-4o-2024-08-06","store":false,"messages":[]}"#
    );
}
