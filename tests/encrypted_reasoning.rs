//! Stateless reasoning under ZDR, opt-in (`responses_encrypted_reasoning = true`): what reaches
//! the upstream, byte for byte, and what is refused before it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use support::*;

const RESPONSES: &str = "/v1/responses";

const PROJECTS: &str = r#"
[[projects]]
name = "eu-reasoning"
region = "eu"
retention = "zdr"
default = true
openai_project = "proj_eu_reasoning"
aliases = { "o3" = "o3-2025-04-16" }
responses_encrypted_reasoning = true

[[projects]]
name = "eu-plain"
region = "eu"
retention = "zdr"
openai_project = "proj_eu_plain"

[[projects]]
name = "eu-mam-reasoning"
region = "eu"
retention = "modified_abuse_monitoring"
openai_project = "proj_eu_mam_reasoning"
responses_encrypted_reasoning = true
"#;

async fn env() -> Env {
    Env::with("", PROJECTS, &[]).await
}

/// Sends `body` as the opted-in project; asserts the decision and the bytes OpenAI received.
async fn forwarded(env: &Env, project: &str, body: &str, decision: &str, rules: &[&str], expected: &str) {
    let before = env.eu.requests().len();
    let r = env.post_as(project, RESPONSES, body).await;
    assert_eq!(r.status, 200, "{body}: {r:#?}");
    assert_eq!(r.header("x-residency-decision"), Some(decision), "{body}");
    assert_eq!(r.rules(), rules, "{body}");
    let got = env.eu.requests();
    assert_eq!(got.len(), before + 1, "{body}");
    let last = got.last().unwrap();
    assert_eq!(String::from_utf8_lossy(&last.body), expected, "{body}");
    assert_eq!(
        last.header("content-length"),
        Some(expected.len().to_string()),
        "{body}"
    );
}

#[tokio::test]
async fn the_value_is_spliced_into_include_keeping_the_clients_entries() {
    let env = env().await;
    let p = "proj_eu_reasoning";
    // No include (and no store, which ZDR needs false): both members are added at the start.
    forwarded(
        &env,
        p,
        r#"{"model":"o3-2025-04-16","input":"hi"}"#,
        "rewrite",
        &["store", "encrypted_reasoning"],
        r#"{"store":false,"include":["reasoning.encrypted_content"],"model":"o3-2025-04-16","input":"hi"}"#,
    )
    .await;
    // The client's entries stay, with their spacing; the value is appended before `]`.
    forwarded(
        &env,
        p,
        "{\"model\":\"o3\", \"include\" : [ \"file_search_call.results\" ] ,\"store\":false,\"input\":\"include\"}",
        "rewrite",
        &["alias", "encrypted_reasoning"],
        "{\"model\":\"o3-2025-04-16\", \"include\" : [ \"file_search_call.results\" ,\"reasoning.encrypted_content\"] ,\"store\":false,\"input\":\"include\"}",
    )
    .await;
    // Empty and null become the one value.
    forwarded(
        &env,
        p,
        r#"{"model":"o3-2025-04-16","store":false,"include":[]}"#,
        "rewrite",
        &["encrypted_reasoning"],
        r#"{"model":"o3-2025-04-16","store":false,"include":["reasoning.encrypted_content"]}"#,
    )
    .await;
    forwarded(
        &env,
        p,
        r#"{"include":null,"model":"o3-2025-04-16","store":false}"#,
        "rewrite",
        &["encrypted_reasoning"],
        r#"{"include":["reasoning.encrypted_content"],"model":"o3-2025-04-16","store":false}"#,
    )
    .await;
    // Already there (even escaped): never twice, the body goes as sent.
    let sent = r#"{"model":"o3-2025-04-16","store":false,"include":["reasoning\u002eencrypted_content"]}"#;
    forwarded(&env, p, sent, "allow", &[], sent).await;
    // Not a reasoning model: nothing added (OpenAI may refuse the value for it).
    let sent = r#"{"model":"gpt-4o-2024-08-06","store":false}"#;
    forwarded(&env, p, sent, "allow", &[], sent).await;
    // A project without the option: nothing added.
    let sent = r#"{"model":"o3-2025-04-16","store":false}"#;
    forwarded(&env, "proj_eu_plain", sent, "allow", &[], sent).await;
}

#[tokio::test]
async fn an_include_that_is_not_an_array_of_strings_is_refused_before_openai() {
    let env = env().await;
    for body in [
        r#"{"model":"o3-2025-04-16","store":false,"include":["file_search_call.results",1]}"#,
        r#"{"model":"o3-2025-04-16","store":false,"include":"reasoning.encrypted_content"}"#,
        r#"{"model":"o3-2025-04-16","store":false,"include":{"a":"b"}}"#,
    ] {
        let r = env.post_as("proj_eu_reasoning", RESPONSES, body).await;
        let v = r.assert_denied("encrypted_reasoning", Some("include"));
        let m = v["error"]["message"].as_str().unwrap();
        assert!(m.contains("include must be an array of strings"), "{m}");
    }
    env.assert_nothing_forwarded().await;
}

#[tokio::test]
async fn the_previous_response_id_refusal_points_to_the_option() {
    let env = env().await;
    let r = env
        .post_as(
            "proj_eu_plain",
            RESPONSES,
            r#"{"model":"o3-2025-04-16","store":false,"previous_response_id":"resp_1"}"#,
        )
        .await;
    let v = r.assert_denied("stateful_feature", Some("previous_response_id"));
    let m = v["error"]["message"].as_str().unwrap();
    assert!(m.contains("\"reasoning.encrypted_content\""), "{m}");
    assert!(m.contains("responses_encrypted_reasoning = true"), "{m}");
    env.assert_nothing_forwarded().await;
}

/// `explain` names the edit `serve` makes (the value added, the client's entries not echoed).
#[tokio::test]
async fn explain_lists_the_include_edit() {
    let env = env().await;
    let config = env.proxy.config.to_str().unwrap().to_string();
    let body = br#"{"model":"o3","input":"x","include":["file_search_call.results"]}"#;
    let o = run(
        &["explain", "--config", &config, "POST", RESPONSES, "--body", "-"],
        &[],
        Some(body),
    );
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["decision"], "rewrite", "{v}");
    assert_eq!(v["rule"], "store,alias,encrypted_reasoning", "{v}");
    assert_eq!(
        v["rewrites"],
        serde_json::json!([
            {"field": "model", "from": "o3", "to": "o3-2025-04-16"},
            {"field": "store", "from": null, "to": false},
            {"field": "include", "add": "reasoning.encrypted_content"}
        ]),
        "{v}"
    );
    let r = env
        .post_as("proj_eu_reasoning", RESPONSES, std::str::from_utf8(body).unwrap())
        .await;
    assert_eq!(
        r.header("x-residency-rule"),
        Some("store,alias,encrypted_reasoning")
    );
    assert_eq!(
        String::from_utf8_lossy(&env.eu.requests()[0].body),
        r#"{"store":false,"model":"o3-2025-04-16","input":"x","include":["file_search_call.results","reasoning.encrypted_content"]}"#
    );
}

/// A batch input line is not edited (the file streams through, and a batch has no next turn):
/// a reasoning model's line passes as it is instead of being refused for a rewrite it needs.
#[tokio::test]
async fn batch_lines_are_not_edited_nor_refused_for_the_edit() {
    let env = env().await;
    let line = r#"{"custom_id":"1","method":"POST","url":"/v1/responses","body":{"model":"o3-2025-04-16","input":"x"}}"#;
    let body = format!(
        "--XyZ\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nbatch\r\n--XyZ\r\n\
         Content-Disposition: form-data; name=\"file\"; filename=\"b.jsonl\"\r\nContent-Type: application/jsonl\r\n\r\n\
         {line}\n\r\n--XyZ--\r\n"
    );
    let r = env
        .send(
            "POST",
            "/v1/files",
            &[
                ("Content-Type", "multipart/form-data; boundary=XyZ"),
                ("OpenAI-Project", "proj_eu_mam_reasoning"),
            ],
            body.as_bytes(),
        )
        .await;
    assert_eq!(r.status, 200, "{r:#?}");
    assert_eq!(&env.eu.requests()[0].body[..], body.as_bytes());
}
