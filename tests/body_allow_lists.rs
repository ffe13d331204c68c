//! What lives inside a body is judged by the catalog's allow-lists (issue 12): tool types,
//! image-free item and part types, and members that point at stored state. Each case goes to
//! `serve` (a refused request must reach no upstream) and to `explain`, which must agree.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use serde_json::{json, Value};
use support::*;

const RESPONSES: &str = "/v1/responses";
const CHAT: &str = "/v1/chat/completions";
const MODEL: &str = "gpt-4.1-2025-04-14";

/// `explain` for the same request, as the proxy's project `openai_project` would see it.
fn explain(env: &Env, openai_project: &str, path: &str, body: &str) -> Value {
    let cfg = env.proxy.config.to_str().unwrap().to_owned();
    let header = format!("OpenAI-Project: {openai_project}");
    let o = run(
        &[
            "explain", "--config", &cfg, "-H", &header, "POST", path, "--body", "-",
        ],
        &[
            ("RP_TEST_UPSTREAM_KEY_EU", EU_UPSTREAM_KEY),
            ("RP_TEST_UPSTREAM_KEY_US", US_UPSTREAM_KEY),
        ],
        Some(body.as_bytes()),
    );
    let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "explain output ({e}): {stdout} {}",
            String::from_utf8_lossy(&o.stderr)
        )
    })
}

/// Sends the request to `serve` and to `explain`; asserts they agree on decision and rules and,
/// for a denial, that nothing reached an upstream. Returns serve's response.
async fn both(env: &Env, openai_project: &str, path: &str, body: &Value) -> Resp {
    let body = body.to_string();
    let before = env.upstream_total();
    let r = env.post_as(openai_project, path, &body).await;
    let e = explain(env, openai_project, path, &body);
    assert_eq!(
        e["decision"].as_str(),
        r.header("x-residency-decision"),
        "explain {e} vs serve {r:#?}"
    );
    assert_eq!(
        e["rule"].as_str(),
        r.header("x-residency-rule"),
        "explain {e} vs serve {r:#?}"
    );
    if r.status == 403 {
        assert_eq!(e["message"], r.json()["error"]["message"], "{e}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert_eq!(
            env.upstream_total(),
            before,
            "a refused request reached an upstream"
        );
    }
    r
}

fn responses(extra: Value) -> Value {
    let mut b = json!({"model": MODEL, "store": false, "input": "hi"});
    for (k, v) in extra.as_object().unwrap() {
        b[k] = v.clone();
    }
    b
}

#[tokio::test]
async fn tools_off_the_list_are_tool_not_eligible() {
    let env = Env::standard().await;
    for tool in [
        json!({"type": "code_interpreter", "container": {"type": "auto"}}),
        json!({"type": "image_generation"}),
        json!({"type": "mcp", "server_label": "x", "server_url": "https://mcp.example"}),
        json!({"type": "local_shell"}),
        json!({"type": "a_tool_from_tomorrow"}),
    ] {
        let body = responses(json!({"tools": [{"type": "function", "name": "f", "parameters": {}}, tool]}));
        let r = both(&env, "proj_eu_mam", RESPONSES, &body).await;
        let v = r.assert_denied("tool_not_eligible", Some("tools"));
        let msg = v["error"]["message"].as_str().unwrap();
        assert!(msg.contains(tool["type"].as_str().unwrap()), "{msg}");
        assert!(msg.contains("eligible tool types:"), "{msg}");
    }
    // The same tool smuggled in through an input item.
    let body = responses(json!({"input": [{"type": "additional_tools", "tools": [{"type": "mcp"}]}]}));
    both(&env, "proj_eu_mam", RESPONSES, &body)
        .await
        .assert_denied("tool_not_eligible", Some("input"));
    // Listed tools pass and reach the EU upstream.
    let body = responses(json!({"tools": [
        {"type": "function", "name": "f", "parameters": {"type": "object", "properties": {"type": {"type": "string"}}}},
        {"type": "web_search_preview"}
    ]}));
    let r = both(&env, "proj_eu_mam", RESPONSES, &body).await;
    assert_eq!(r.status, 200, "{r:#?}");
    assert_eq!(env.eu.request_count(), 1);
    // Chat has no web search tool (its web search is web_search_options).
    let chat = json!({"model": "gpt-4o-2024-08-06", "messages": [{"role": "user", "content": "hi"}],
                      "tools": [{"type": "web_search"}]});
    both(&env, "proj_eu_mam", CHAT, &chat)
        .await
        .assert_denied("tool_not_eligible", Some("tools"));
    // computer_use_preview needs its model.
    let cu = json!({"model": MODEL, "input": "hi", "tools": [{"type": "computer_use_preview",
                    "display_width": 1, "display_height": 1, "environment": "browser"}]});
    both(&env, "proj_us", RESPONSES, &cu)
        .await
        .assert_denied("tool_not_eligible", Some("tools"));
    let mut ok = cu.clone();
    ok["model"] = json!("computer-use-preview");
    assert_eq!(both(&env, "proj_us", RESPONSES, &ok).await.status, 200);
}

#[tokio::test]
async fn web_search_tools_are_hipaa_by_their_feature_row() {
    let env = Env::standard().await;
    let body = responses(json!({"tools": [{"type": "web_search_2025_08_26"}]}));
    both(&env, "proj_us_hipaa", RESPONSES, &body)
        .await
        .assert_denied("hipaa", Some("tools"));
    env.assert_nothing_forwarded().await;
}

#[tokio::test]
async fn image_carriers_not_on_the_image_free_list_need_approval() {
    let env = Env::standard().await;
    let screenshot = json!({"type": "computer_call_output", "call_id": "c1",
        "output": {"type": "computer_screenshot", "image_url": "data:image/png;base64,AAAA"}});
    let generated =
        json!({"type": "image_generation_call", "id": "ig_1", "status": "completed", "result": "AAAA"});
    let by_url =
        json!({"role": "user", "content": [{"type": "input_file", "file_url": "https://x.example/a.pdf"}]});
    let tool_image = json!({"type": "function_call_output", "call_id": "c1",
        "output": [{"type": "input_image", "image_url": "data:image/png;base64,AAAA"}]});
    let unknown = json!({"type": "a_type_from_tomorrow"});
    for item in [&screenshot, &generated, &by_url, &tool_image, &unknown] {
        let body = responses(json!({"input": [item]}));
        let r = both(&env, "proj_eu", RESPONSES, &body).await;
        let v = r.assert_denied("image_input", Some("input"));
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .contains("not known to be free of images"),
            "{v}"
        );
        // With image approval the same body passes (eu-img is ZDR too).
        let r = both(&env, "proj_eu_img", RESPONSES, &body).await;
        assert_eq!(r.status, 200, "{item}: {r:#?}");
    }
    assert_eq!(env.eu.request_count(), 5);
    // Text-only items, including one without a type (a message), pass without approval.
    let body = responses(json!({"input": [
        {"role": "user", "content": "hi"},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "x"}]},
        {"type": "function_call_output", "call_id": "c1", "output": "{\"type\": \"input_image\"}"}
    ]}));
    assert_eq!(both(&env, "proj_eu", RESPONSES, &body).await.status, 200);
    // Chat: file parts are not image-free either.
    let chat = json!({"model": "gpt-4o-2024-08-06", "messages": [{"role": "user", "content": [
        {"type": "file", "file": {"file_data": "data:application/pdf;base64,AAAA", "filename": "a.pdf"}}]}]});
    both(&env, "proj_eu", CHAT, &chat)
        .await
        .assert_denied("image_input", Some("messages"));
}

#[tokio::test]
async fn references_to_stored_state_are_stateful_under_zdr() {
    let env = Env::standard().await;
    let cases = [
        (
            json!({"input": [{"type": "item_reference", "id": "msg_1"}]}),
            "input",
        ),
        (
            json!({"tools": [{"type": "file_search", "vector_store_ids": ["vs_1"]}]}),
            "tools",
        ),
        (
            json!({"input": [{"role": "user", "content": [{"type": "input_image", "file_id": "file-1"}]}]}),
            "input",
        ),
        (json!({"prompt": {"id": "pmpt_1"}}), "prompt"),
    ];
    for (extra, param) in cases {
        let body = responses(extra);
        // eu-img: ZDR with image approval, so only the stored state is at fault.
        let r = both(&env, "proj_eu_img", RESPONSES, &body).await;
        r.assert_denied("stateful_feature", Some(param));
        // The same body in a non-ZDR project with images approved (us-std) is forwarded.
        let r = both(&env, "proj_us", RESPONSES, &body).await;
        assert_eq!(r.status, 200, "{body}: {r:#?}");
    }
    assert_eq!(env.eu.request_count(), 0);
    let chat = json!({"model": "gpt-4o-2024-08-06", "messages": [
        {"role": "assistant", "audio": {"id": "audio_1"}}, {"role": "user", "content": "again"}]});
    both(&env, "proj_eu", CHAT, &chat)
        .await
        .assert_denied("stateful_feature", Some("messages"));
}

#[tokio::test]
async fn an_absent_moderation_model_is_the_documented_default() {
    let env = Env::standard().await;
    let body = json!({"input": "hello"});
    let r = both(&env, "proj_eu", "/v1/moderations", &body).await;
    assert_eq!(r.status, 200, "{r:#?}");
    // Forwarded as sent: the default is OpenAI's, nothing is added.
    let sent = env.eu.requests();
    assert_eq!(sent.len(), 1);
    assert_eq!(serde_json::from_slice::<Value>(&sent[0].body).unwrap(), body);
    // No documented default: absent stays refused.
    let r = both(&env, "proj_eu", "/v1/embeddings", &json!({"input": "hello"})).await;
    r.assert_denied("model_not_eligible", Some("model"));
    assert_eq!(env.eu.request_count(), 1);
}

/// Issue 12 item 2: every batch input line meets its own endpoint's row and the /v1/batches
/// row; a line naming an endpoint that cannot be batched is refused.
#[tokio::test]
async fn batch_lines_meet_both_rows() {
    let env = Env::standard().await;
    let upload = |line: &str| {
        format!(
            "--XyZ\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nbatch\r\n\
             --XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"b.jsonl\"\r\n\
             Content-Type: application/jsonl\r\n\r\n{line}\n\r\n--XyZ--\r\n"
        )
    };
    let env = &env;
    let send = |body: String| async move {
        env.send(
            "POST",
            "/v1/files",
            &[
                ("OpenAI-Project", "proj_eu_mam"),
                ("Content-Type", "multipart/form-data; boundary=XyZ"),
            ],
            body.as_bytes(),
        )
        .await
    };
    let emb = r#"{"custom_id":"1","method":"POST","url":"/v1/embeddings","body":{"model":"text-embedding-3-small","input":"x"}}"#;
    let r = send(upload(emb)).await;
    let v = r.assert_denied("model_not_eligible", None);
    assert!(
        v["error"]["message"].as_str().unwrap().contains("/v1/batches"),
        "{v}"
    );
    let speech = r#"{"custom_id":"1","method":"POST","url":"/v1/audio/speech","body":{"model":"tts-1","input":"x","voice":"alloy"}}"#;
    send(upload(speech)).await.assert_denied("unknown_endpoint", None);
    assert_eq!(env.eu.request_count(), 0, "a refused upload completed upstream");
    let chat = r#"{"custom_id":"1","method":"POST","url":"/v1/chat/completions","body":{"model":"gpt-4o-2024-08-06","messages":[]}}"#;
    let r = send(upload(chat)).await;
    assert_eq!(r.status, 200, "{r:#?}");
}
