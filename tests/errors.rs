//! Errors the proxy produces itself: 400, 413, 502, 504, and broken upstream streams.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::{Duration, Instant};

use serde_json::json;
use support::*;

const CHAT: &str = "/v1/chat/completions";

fn chat() -> String {
    json!({"model": "gpt-4o-2024-08-06", "messages": [{"role": "user", "content": "hi"}]}).to_string()
}

#[tokio::test]
async fn invalid_json_is_400() {
    let env = Env::standard().await;
    for body in [
        r#"{"model":"gpt-4o-2024-08-06","#,
        "[1,2,3]",
        "not json",
        "",
        r#"{"a":1} {"b":2}"#,
    ] {
        let r = env.post_as("proj_eu", CHAT, body).await;
        let v = r.assert_error(400, "invalid_json");
        assert_eq!(v["error"]["type"], "invalid_request_error", "{body:?}: {v}");
        assert_eq!(r.header("x-residency-project"), Some("eu-zdr"), "{body:?}");
        assert_eq!(r.header("x-residency-region"), Some("eu"), "{body:?}");
        assert!(r.header("x-residency-decision").is_some(), "{body:?}");
    }
    env.assert_nothing_forwarded().await;
}

#[tokio::test]
async fn body_over_limit_is_413() {
    let env = Env::with(
        "[limits]\nmax_body_bytes = 1024\n",
        &standard_projects(),
        &standard_env(),
    )
    .await;
    let big =
        json!({"model": "gpt-4o-2024-08-06", "messages": [{"role": "user", "content": "x".repeat(2000)}]})
            .to_string();
    let r = env.post_as("proj_eu", CHAT, &big).await;
    r.assert_error(413, "request_too_large");
    assert_eq!(r.header("x-residency-project"), Some("eu-zdr"));
    // Chunked, with no length up front.
    let (a, b) = big.split_at(900);
    let raw = format!(
        "POST {CHAT} HTTP/1.1\r\nHost: {}\r\nOpenAI-Project: proj_eu\r\nContent-Type: application/json\r\n\
Transfer-Encoding: chunked\r\n\r\n{:x}\r\n{a}\r\n{:x}\r\n{b}\r\n0\r\n\r\n",
        env.proxy.addr,
        a.len(),
        b.len()
    );
    let r = env.raw(raw.as_bytes()).await;
    r.assert_error(413, "request_too_large");
    env.assert_nothing_forwarded().await;
    // Just under the limit is fine.
    let ok =
        json!({"model": "gpt-4o-2024-08-06", "messages": [{"role": "user", "content": "x".repeat(900)}]})
            .to_string();
    assert!(ok.len() <= 1024);
    let r = env.post_as("proj_eu", CHAT, &ok).await;
    assert_eq!(r.status, 200, "{r:#?}");
}

async fn behaviour(env: &Env, behavior: &str) -> Resp {
    env.post_json(
        CHAT,
        &[("OpenAI-Project", "proj_eu"), ("x-mock-behavior", behavior)],
        &chat(),
    )
    .await
}

#[tokio::test]
async fn upstream_reset_and_garbage_are_502() {
    let env = Env::standard().await;
    for b in ["reset", "garbage"] {
        let r = behaviour(&env, b).await;
        r.assert_error(502, "upstream_unavailable");
        r.assert_residency("allow", "eu-zdr", "eu");
    }
    // The mock saw the requests (it records before failing).
    assert!(env.eu.request_count() >= 2);
}

#[tokio::test]
async fn upstream_refusing_connections_is_502() {
    // Bind and drop a listener to get a port that refuses connections.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let us = MockUpstream::start("us").await;
    let body = format!(
        "[upstream]\nbase_urls = {{ eu = \"http://{closed}\", us = \"{}\" }}\n\n[timeouts]\nconnect_secs = 2\n{}",
        us.base_url(),
        standard_projects()
    );
    let proxy = Proxy::start(&body, &standard_env()).await;
    let start = Instant::now();
    let r = send_raw(
        proxy.addr,
        &build_request(
            proxy.addr,
            "POST",
            CHAT,
            &[
                ("OpenAI-Project", "proj_eu"),
                ("Content-Type", "application/json"),
            ],
            chat().as_bytes(),
        ),
    )
    .await;
    r.assert_error(502, "upstream_unavailable");
    r.assert_residency("allow", "eu-zdr", "eu");
    assert!(start.elapsed() < Duration::from_secs(10));
    assert_eq!(us.request_count(), 0);
}

#[tokio::test]
async fn upstream_hang_is_504_after_response_timeout() {
    let env = Env::with(
        "[timeouts]\nupstream_response_secs = 1\n",
        &standard_projects(),
        &standard_env(),
    )
    .await;
    let start = Instant::now();
    let r = behaviour(&env, "hang").await;
    let took = start.elapsed();
    r.assert_error(504, "upstream_timeout");
    r.assert_residency("allow", "eu-zdr", "eu");
    assert!(took >= Duration::from_millis(900), "{took:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert_eq!(env.eu.request_count(), 1);
    // A response head inside the timeout is fine.
    let r = behaviour(&env, "delay:200").await;
    assert_eq!(r.status, 200, "{r:#?}");
    // The timeout covers the response head, not the whole stream (slow-sse takes ~2 s).
    let body = json!({"model": "gpt-4o-2024-08-06", "messages": [], "stream": true}).to_string();
    let r = env
        .post_json(
            CHAT,
            &[("OpenAI-Project", "proj_eu"), ("x-mock-behavior", "slow-sse")],
            &body,
        )
        .await;
    assert_eq!(r.status, 200, "{r:#?}");
    assert!(r.text().ends_with("data: [DONE]\n\n"), "{}", r.text());
}

#[tokio::test]
async fn upstream_errors_are_not_rewritten() {
    let env = Env::standard().await;
    for code in [400u16, 401, 404, 500, 503] {
        let r = behaviour(&env, &format!("status:{code}")).await;
        assert_eq!(r.status, code, "{r:#?}");
        assert!(r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("mock-openai"));
        r.assert_residency("allow", "eu-zdr", "eu");
    }
}

#[tokio::test]
async fn stream_dropped_mid_way_is_not_completed() {
    let env = Env::standard().await;
    let body = json!({"model": "gpt-4o-2024-08-06", "messages": [], "stream": true}).to_string();
    let req = build_request(
        env.proxy.addr,
        "POST",
        CHAT,
        &[
            ("Content-Type", "application/json"),
            ("OpenAI-Project", "proj_eu"),
            ("x-mock-behavior", "drop-mid-stream"),
        ],
        body.as_bytes(),
    );
    let mut c = Conn::open(env.proxy.addr, &req).await;
    let (status, _) = tokio::time::timeout(Duration::from_secs(10), c.head())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status, 200);
    // Read the rest raw: the two events must arrive, and the chunked body must NOT end with
    // the terminating zero-size chunk (a truncated stream must look truncated to the client).
    let rest = tokio::time::timeout(Duration::from_secs(10), c.read_rest())
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&rest);
    assert_eq!(text.matches("data: ").count(), 2, "{text}");
    assert!(
        !rest.ends_with(b"\r\n0\r\n\r\n") && !rest.starts_with(b"0\r\n"),
        "clean end after upstream abort: {text:?}"
    );
}
