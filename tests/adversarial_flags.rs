//! Issue 10, item 5: flags are typed. Every stateful flag the catalog names is refused when
//! it is not of its documented JSON type (`"background": "true"` is `true` to a lenient
//! reader), in every project; realtime query keys that differ from `model` only by case or
//! brackets (`Model=`, `model[]=`: case-insensitive and PHP/Rails/qs-style readers) are refused.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use support::cases::*;
use support::*;

const RESPONSES: &str = "/v1/responses";

fn responses(model: &str, extra: &str) -> String {
    format!(r#"{{"model":"{model}","input":"hi","store":false{extra}}}"#)
}

fn flag_cases(env: &Env) -> Vec<Case> {
    let eu = "gpt-4o-2024-08-06";
    let mut cases = Vec::new();
    for (project, region) in [("proj_eu", "eu"), ("proj_us", "us")] {
        // Documented types pass (background false everywhere, the others outside ZDR).
        let ok = responses(eu, r#","background":false"#);
        cases.push(Case::new(
            format!("{project}: background false"),
            json_post(env, project, RESPONSES, ok.as_bytes()),
            same(region, RESPONSES, ok.as_bytes()),
        ));
        for bad in [
            r#","background":"true""#,
            r#","background":"false""#,
            r#","background":1"#,
            r#","background":0"#,
            r#","background":{}"#,
            r#","background":[true]"#,
            r#","previous_response_id":1"#,
            r#","previous_response_id":true"#,
            r#","previous_response_id":["resp_1"]"#,
            r#","conversation":true"#,
            r#","conversation":7"#,
            r#","conversation":["conv_1"]"#,
        ] {
            cases.push(Case::new(
                format!("{project}: {bad}"),
                json_post(env, project, RESPONSES, responses(eu, bad).as_bytes()),
                Expect::Denied("stateful_feature"),
            ));
        }
    }
    for good in [
        r#","previous_response_id":"resp_1""#,
        r#","conversation":"conv_1""#,
        r#","conversation":{"id":"conv_1"}"#,
        r#","background":true"#,
        r#","previous_response_id":null"#,
    ] {
        let body = responses("gpt-4o-2024-08-06", good);
        cases.push(Case::new(
            format!("proj_us: {good}"),
            json_post(env, "proj_us", RESPONSES, body.as_bytes()),
            same("us", RESPONSES, body.as_bytes()),
        ));
    }
    cases
}

#[tokio::test]
async fn stateful_flags_of_another_json_type_are_refused() {
    let env = env_with("").await;
    let n = run_cases(&env, flag_cases(&env)).await;
    println!("flag cases: {n}");
    assert_healthy(&env).await;
}

#[tokio::test]
async fn realtime_query_keys_that_alias_model_are_refused() {
    let env = env_with("").await;
    let model = "gpt-4o-realtime-preview-2024-12-17";
    let ws = |query: &str| {
        raw(
            &env,
            "GET",
            &format!("/v1/realtime?{query}"),
            &[
                ("OpenAI-Project", "proj_us"),
                ("Connection", "Upgrade"),
                ("Upgrade", "websocket"),
                ("Sec-WebSocket-Version", "13"),
                ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
            ],
            b"",
        )
    };
    let mut cases = Vec::new();
    for q in [
        format!("model={model}&Model=gpt-4o-realtime-preview"),
        format!("model={model}&MODEL=gpt-4o-realtime-preview"),
        format!("model={model}&model[]=gpt-4o-realtime-preview"),
        format!("model={model}&model%5B%5D=gpt-4o-realtime-preview"),
        format!("model[0]=gpt-4o-realtime-preview&model={model}"),
        "Model=gpt-4o-realtime-preview".to_string(),
    ] {
        cases.push(Case::new(q.clone(), ws(&q), Expect::Refused(400, "invalid_body")));
    }
    run_cases(&env, cases).await;
    // The plain spelling still opens.
    let mut c = Conn::open(env.proxy.addr, &ws(&format!("model={model}"))).await;
    let (status, _) = c.head().await.unwrap();
    assert_eq!(status, 101);
}
