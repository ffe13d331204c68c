//! Issue 6 over h2c (prior knowledge): the same one-reading-or-none rules hold when the request
//! arrives as HTTP/2 frames. `:authority` never chooses the upstream; repeated singleton headers
//! and non-canonical `:path`s are refused without forwarding.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use support::cases::*;
use support::*;

const CHAT: &str = "/v1/chat/completions";
const BODY: &str = r#"{"model":"gpt-4o-2024-08-06","messages":[]}"#;

/// Sends one h2c request; status, headers and body.
async fn h2(env: &Env, req: http::Request<Full<Bytes>>) -> (u16, http::HeaderMap, Bytes) {
    let tcp = tokio::net::TcpStream::connect(env.proxy.addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tcp),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let res = tokio::time::timeout(std::time::Duration::from_secs(10), sender.send_request(req))
        .await
        .unwrap()
        .unwrap();
    let (parts, body) = res.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    (parts.status.as_u16(), parts.headers, body)
}

fn chat(authority: &str, path: &str, extra: &[(&str, &str)]) -> http::Request<Full<Bytes>> {
    let mut b = http::Request::post(format!("http://{authority}{path}"))
        .version(http::Version::HTTP_2)
        .header("openai-project", "proj_eu")
        .header("content-type", "application/json");
    for (k, v) in extra {
        b = b.header(*k, *v);
    }
    b.body(Full::new(Bytes::from_static(BODY.as_bytes()))).unwrap()
}

fn code(body: &Bytes) -> String {
    let v: serde_json::Value = serde_json::from_slice(body).unwrap();
    v["error"]["code"].as_str().unwrap_or_default().to_string()
}

#[tokio::test]
async fn h2_requests_have_one_reading_or_none() {
    let env = env_with("").await;
    let proxy = env.proxy.addr.to_string();
    let us = env.us.addr().to_string();
    // Allowed, and :authority (the proxy's, OpenAI's, another mock's) never picks the upstream.
    for authority in [proxy.as_str(), "api.openai.com", us.as_str()] {
        env.eu.clear();
        env.us.clear();
        let (status, _, body) = h2(&env, chat(authority, CHAT, &[])).await;
        assert_eq!(status, 200, "{authority}: {}", String::from_utf8_lossy(&body));
        assert_eq!(env.us.request_count(), 0, "{authority}");
        let got = env.eu.requests();
        assert_eq!(got.len(), 1, "{authority}");
        assert_eq!(&got[0].body[..], BODY.as_bytes());
        assert_eq!(got[0].path_and_query, CHAT);
        assert_eq!(got[0].host.as_deref(), Some(env.eu.addr().to_string().as_str()));
    }
    // Refused, nothing forwarded.
    let cases: Vec<(&str, http::Request<Full<Bytes>>, u16, &str)> = vec![
        (
            "two content-types",
            chat(&proxy, CHAT, &[("content-type", "text/plain")]),
            400,
            "invalid_request",
        ),
        (
            "two openai-project headers",
            chat(&proxy, CHAT, &[("openai-project", "proj_us")]),
            403,
            "residency_policy_violation",
        ),
        (
            "encoded dot segment",
            chat(&proxy, "/v1/chat/%2e%2e/chat/completions", &[]),
            403,
            "residency_policy_violation",
        ),
        (
            "trailing slash",
            chat(&proxy, "/v1/chat/completions/", &[]),
            403,
            "residency_policy_violation",
        ),
        (
            "matrix parameter",
            chat(&proxy, "/v1/chat/completions;a", &[]),
            403,
            "residency_policy_violation",
        ),
        (
            "brotli body",
            chat(&proxy, CHAT, &[("content-encoding", "br")]),
            415,
            "unsupported_content_encoding",
        ),
    ];
    env.eu.clear();
    env.us.clear();
    for (name, req, status, want) in cases {
        let (got, headers, body) = h2(&env, req).await;
        assert_eq!(got, status, "{name}: {}", String::from_utf8_lossy(&body));
        assert_eq!(code(&body), want, "{name}");
        assert!(headers.contains_key("x-residency-decision"), "{name}");
    }
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert_eq!(env.upstream_total(), 0, "a refused h2 request was forwarded");
}
