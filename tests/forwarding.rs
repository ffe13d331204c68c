//! What reaches the upstream: bytes, headers, Host, keys; and what comes back.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use support::*;
use tokio_tungstenite::tungstenite::Message;

const CHAT: &str = "/v1/chat/completions";

#[tokio::test]
async fn body_forwarded_byte_for_byte() {
    let env = Env::standard().await;
    // Odd whitespace, escapes, key order, number spellings, duplicate-free but unusual JSON.
    let body =
        "{ \"messages\" :[ {\"role\":\"user\",\"content\":\"h\\u00e9llo \\\"q\\\" \\ud83d\\ude00 ✓\"}],\n\t\
\"model\": \"gpt-4o-2024-08-06\" , \"temperature\": 1.0e0, \"top_p\":0.50, \"n\" : 1 }  ";
    let r = env.post_as("proj_eu", CHAT, body).await;
    assert_eq!(r.status, 200, "{r:#?}");
    r.assert_residency("allow", "eu-zdr", "eu");
    let got = env.eu.requests();
    assert_eq!(got.len(), 1);
    assert_eq!(String::from_utf8_lossy(&got[0].body), body);
    assert_eq!(&got[0].body[..], body.as_bytes());
    assert_eq!(got[0].method, "POST");
    assert_eq!(got[0].path_and_query, CHAT);
}

#[tokio::test]
async fn chunked_request_body_arrives_whole() {
    let env = Env::standard().await;
    let body = r#"{"model":"text-embedding-3-small","input":["a","b"]}"#;
    let (a, b) = body.split_at(20);
    let raw = format!(
        "POST /v1/embeddings HTTP/1.1\r\nHost: {}\r\nOpenAI-Project: proj_eu\r\nContent-Type: application/json\r\n\
Transfer-Encoding: chunked\r\n\r\n{:x}\r\n{a}\r\n{:x}\r\n{b}\r\n0\r\n\r\n",
        env.proxy.addr,
        a.len(),
        b.len()
    );
    let r = env.raw(raw.as_bytes()).await;
    assert_eq!(r.status, 200, "{r:#?}");
    assert_eq!(&env.eu.requests()[0].body[..], body.as_bytes());
}

#[tokio::test]
async fn store_rewrite_is_a_byte_splice() {
    let env = Env::standard().await;
    let body = "{\n  \"model\" : \"gpt-4o-2024-08-06\",\n  \"store\"  :  true ,\n  \"messages\":[{\"role\":\"user\",\
\"content\":\"store: true\"}],  \"metadata\" : {\"store\":\"true\"}\n}";
    let expected = "{\n  \"model\" : \"gpt-4o-2024-08-06\",\n  \"store\"  :  false ,\n  \"messages\":[{\"role\":\"user\",\
\"content\":\"store: true\"}],  \"metadata\" : {\"store\":\"true\"}\n}";
    let r = env.post_as("proj_eu", CHAT, body).await;
    assert_eq!(r.status, 200, "{r:#?}");
    r.assert_residency("rewrite", "eu-zdr", "eu");
    assert_eq!(r.rules(), ["store"]);
    let got = env.eu.requests();
    assert_eq!(String::from_utf8_lossy(&got[0].body), expected);
    assert_eq!(got[0].header("content-length"), Some(expected.len().to_string()));
}

#[tokio::test]
async fn alias_rewrites_model_in_forwarded_bytes() {
    let env = Env::standard().await;
    let body = r#"{"messages":[{"role":"user","content":"gpt-4o"}], "model" : "gpt-4o" ,"stream":false}"#;
    let expected =
        r#"{"messages":[{"role":"user","content":"gpt-4o"}], "model" : "gpt-4o-2024-08-06" ,"stream":false}"#;
    let r = env.post_as("proj_eu", CHAT, body).await;
    assert_eq!(r.status, 200, "{r:#?}");
    r.assert_residency("rewrite", "eu-zdr", "eu");
    assert_eq!(r.rules(), ["alias"]);
    let got = env.eu.requests();
    assert_eq!(String::from_utf8_lossy(&got[0].body), expected);
    assert_eq!(got[0].header("content-length"), Some(expected.len().to_string()));
    // The mock echoes the model it received.
    assert_eq!(r.json()["model"], "gpt-4o-2024-08-06");
}

#[tokio::test]
async fn host_path_and_query_preserved() {
    let env = Env::standard().await;
    let r = env
        .send(
            "GET",
            "/v1/models?limit=2&after=a%20b&x=%E2%9C%93",
            &[("OpenAI-Project", "proj_us")],
            b"",
        )
        .await;
    assert_eq!(r.status, 200, "{r:#?}");
    let got = env.us.requests();
    assert_eq!(got.len(), 1);
    assert_eq!(
        got[0].path_and_query,
        "/v1/models?limit=2&after=a%20b&x=%E2%9C%93"
    );
    assert_eq!(got[0].host.as_deref(), Some(env.us.addr().to_string().as_str()));
    assert_eq!(got[0].header_all("host").len(), 1);
}

#[tokio::test]
async fn upstream_key_injected_and_project_header_set() {
    let env = Env::standard().await;
    let body = json!({"model": "gpt-4o-2024-08-06", "messages": []}).to_string();
    let r = env
        .post_json(
            CHAT,
            &[("Authorization", &format!("Bearer {EU_CLIENT_KEY}"))],
            &body,
        )
        .await;
    assert_eq!(r.status, 200, "{r:#?}");
    r.assert_residency("allow", "eu-zdr", "eu");
    let got = &env.eu.requests()[0];
    assert_eq!(
        got.header_all("authorization"),
        [format!("Bearer {EU_UPSTREAM_KEY}")]
    );
    assert_eq!(got.header_all("openai-project"), ["proj_eu"]);
    for (name, value) in &got.headers {
        assert!(
            !String::from_utf8_lossy(value).contains(EU_CLIENT_KEY),
            "client key leaked upstream in {name}"
        );
    }
    let r = env
        .post_json(
            CHAT,
            &[("Authorization", &format!("Bearer {US_CLIENT_KEY}"))],
            &body,
        )
        .await;
    r.assert_residency("allow", "us-std", "us");
    let got = &env.us.requests()[0];
    assert_eq!(
        got.header_all("authorization"),
        [format!("Bearer {US_UPSTREAM_KEY}")]
    );
    assert_eq!(got.header_all("openai-project"), ["proj_us"]);
}

#[tokio::test]
async fn client_key_passes_through_without_upstream_key() {
    let env = Env::standard().await;
    let body = json!({"model": "gpt-4o-2024-08-06", "messages": []}).to_string();
    let r = env
        .post_json(
            CHAT,
            &[
                ("Authorization", "Bearer sk-client-own"),
                ("OpenAI-Project", "proj_eu_mam"),
            ],
            &body,
        )
        .await;
    r.assert_residency("allow", "eu-mam", "eu");
    let got = &env.eu.requests()[0];
    assert_eq!(got.header_all("authorization"), ["Bearer sk-client-own"]);
    assert_eq!(got.header_all("openai-project"), ["proj_eu_mam"]);
}

#[tokio::test]
async fn hop_by_hop_headers_are_not_forwarded() {
    let env = Env::standard().await;
    let body = json!({"model": "gpt-4o-2024-08-06", "messages": []}).to_string();
    let r = env
        .send(
            "POST",
            CHAT,
            &[
                ("Content-Type", "application/json"),
                ("OpenAI-Project", "proj_us"),
                ("Connection", "keep-alive, X-Custom-Hop, Upgrade"),
                ("Keep-Alive", "timeout=5, max=100"),
                ("TE", "trailers"),
                ("Trailer", "X-Checksum"),
                ("Upgrade", "h2c"),
                ("Proxy-Authorization", "Basic dXNlcjpwYXNz"),
                ("Proxy-Connection", "keep-alive"),
                ("X-Custom-Hop", "secret-hop"),
                ("X-End-To-End", "kept"),
                ("X-Multi", "one"),
                ("X-Multi", "two"),
                ("OpenAI-Organization", "org-123"),
                ("User-Agent", "OpenAI/Python 1.99.0"),
            ],
            body.as_bytes(),
        )
        .await;
    assert_eq!(r.status, 200, "{r:#?}");
    let got = &env.us.requests()[0];
    for h in [
        "connection",
        "keep-alive",
        "te",
        "trailer",
        "upgrade",
        "proxy-authorization",
        "proxy-connection",
        "x-custom-hop",
    ] {
        assert!(!got.has_header(h), "{h} was forwarded: {:?}", got.headers);
    }
    assert_eq!(got.header_all("x-end-to-end"), ["kept"]);
    assert_eq!(got.header_all("x-multi"), ["one", "two"]);
    assert_eq!(got.header_all("openai-organization"), ["org-123"]);
    assert_eq!(got.header_all("user-agent"), ["OpenAI/Python 1.99.0"]);
    assert_eq!(got.header_all("content-type"), ["application/json"]);
    assert_eq!(&got.body[..], body.as_bytes());
    // Nothing hop-by-hop from the client leaks into the response either.
    assert!(r.header("x-custom-hop").is_none());
}

#[tokio::test]
async fn response_passes_through() {
    let env = Env::standard().await;
    let body = json!({"model": "text-embedding-3-small", "input": ["a", "b", "c"]}).to_string();
    // The mock's embeddings answer is deterministic: compare with asking the mock directly.
    let direct = send_raw(
        env.eu.addr(),
        &build_request(env.eu.addr(), "POST", "/v1/embeddings", &[], body.as_bytes()),
    )
    .await;
    env.eu.clear();
    let r = env.post_as("proj_eu", "/v1/embeddings", &body).await;
    assert_eq!(r.status, 200, "{r:#?}");
    assert_eq!(r.body, direct.body);
    assert_eq!(r.header("x-mock-upstream"), Some("eu"));
    assert!(r.header("x-request-id").is_some_and(|v| v.starts_with("req_")));
    assert_eq!(r.header("content-type"), Some("application/json"));
    // Upstream errors keep their status and body and still carry the residency headers.
    let r = env
        .post_json(
            CHAT,
            &[("OpenAI-Project", "proj_eu"), ("x-mock-behavior", "status:429")],
            &json!({"model": "gpt-4o-2024-08-06", "messages": []}).to_string(),
        )
        .await;
    assert_eq!(r.status, 429, "{r:#?}");
    r.assert_residency("allow", "eu-zdr", "eu");
    assert_eq!(r.json()["error"]["code"], "rate_limit_exceeded");
    // Binary bodies too.
    let r = env
        .post_as(
            "proj_eu",
            "/v1/audio/speech",
            &json!({"model": "tts-1", "input": "hi", "voice": "alloy"}).to_string(),
        )
        .await;
    assert_eq!(r.status, 200, "{r:#?}");
    assert_eq!(r.header("content-type"), Some("audio/mpeg"));
    assert!(r.body.starts_with(b"ID3"));
}

#[tokio::test]
async fn multipart_upload_forwarded_exactly() {
    let env = Env::standard().await;
    let mut body = Vec::new();
    body.extend_from_slice(
        b"--XyZ\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nwhisper-1\r\n--XyZ\r\n\
Content-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\nContent-Type: audio/wav\r\n\r\n",
    );
    body.extend((0u8..=255).cycle().take(4000));
    body.extend_from_slice(b"\r\n--XyZ--\r\n");
    let r = env
        .send(
            "POST",
            "/v1/audio/transcriptions",
            &[
                ("OpenAI-Project", "proj_eu"),
                ("Content-Type", "multipart/form-data; boundary=XyZ"),
            ],
            &body,
        )
        .await;
    assert_eq!(r.status, 200, "{r:#?}");
    r.assert_residency("allow", "eu-zdr", "eu");
    assert!(r.json()["text"].is_string());
    assert_eq!(&env.eu.requests()[0].body[..], &body[..]);
}

#[tokio::test]
async fn sse_streams_through_without_buffering() {
    let env = Env::standard().await;
    let body = json!({"model": "gpt-4o-2024-08-06", "messages": [], "stream": true}).to_string();
    let req = build_request(
        env.proxy.addr,
        "POST",
        CHAT,
        &[
            ("Content-Type", "application/json"),
            ("OpenAI-Project", "proj_eu"),
            ("x-mock-behavior", "slow-sse"),
        ],
        body.as_bytes(),
    );
    let start = Instant::now();
    let mut c = Conn::open(env.proxy.addr, &req).await;
    let (status, headers) = tokio::time::timeout(Duration::from_secs(10), c.head())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status, 200);
    let get = |n: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(n))
            .map(|(_, v)| v.clone())
    };
    assert!(get("content-type").unwrap().starts_with("text/event-stream"));
    assert_eq!(get("x-residency-decision").as_deref(), Some("allow"));
    assert_eq!(get("x-residency-project").as_deref(), Some("eu-zdr"));
    assert_eq!(get("x-residency-region").as_deref(), Some("eu"));
    assert!(
        get("transfer-encoding").is_some_and(|t| t.contains("chunked")),
        "{headers:?}"
    );
    let first = tokio::time::timeout(Duration::from_secs(10), c.chunk())
        .await
        .unwrap()
        .unwrap();
    let first_at = start.elapsed();
    assert!(String::from_utf8_lossy(&first).starts_with("data: "));
    let mut all = first;
    while let Some(chunk) = tokio::time::timeout(Duration::from_secs(10), c.chunk())
        .await
        .unwrap()
    {
        all.extend_from_slice(&chunk);
    }
    let total = start.elapsed();
    let text = String::from_utf8(all).unwrap();
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    // The stream takes >= 10 x 200 ms; its first event must not wait for the end.
    assert!(total >= Duration::from_millis(1800), "{total:?}");
    assert!(
        first_at < Duration::from_millis(1000),
        "first event after {first_at:?} (total {total:?})"
    );
    let events = text.split("\n\n").filter(|e| !e.is_empty()).count();
    assert!(events >= 11, "{events} events");
}

#[tokio::test]
async fn responses_stream_with_store_insert() {
    let env = Env::standard().await;
    let body = json!({"model": "gpt-4.1-2025-04-14", "input": "hi", "stream": true}).to_string();
    let r = env.post_as("proj_eu", "/v1/responses", &body).await;
    assert_eq!(r.status, 200, "{r:#?}");
    r.assert_residency("rewrite", "eu-zdr", "eu");
    let text = r.text();
    assert!(text.starts_with("event: response.created\n"), "{text}");
    assert!(text.contains("event: response.completed\n"));
    assert_eq!(env.eu.requests()[0].json().unwrap()["store"], false);
}

#[tokio::test]
async fn realtime_websocket_through_proxy_us() {
    let env = Env::standard().await;
    let tcp = tokio::net::TcpStream::connect(env.proxy.addr).await.unwrap();
    let url = format!(
        "ws://{}/v1/realtime?model=gpt-4o-realtime-preview-2024-12-17",
        env.proxy.addr
    );
    let mut req =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(url).unwrap();
    req.headers_mut()
        .insert("OpenAI-Project", "proj_us".parse().unwrap());
    req.headers_mut().insert(
        "Authorization",
        format!("Bearer {US_CLIENT_KEY}").parse().unwrap(),
    );
    let (mut ws, resp) =
        tokio::time::timeout(Duration::from_secs(10), tokio_tungstenite::client_async(req, tcp))
            .await
            .unwrap()
            .unwrap();
    assert_eq!(resp.status(), 101);
    assert_eq!(
        resp.headers()
            .get("x-residency-decision")
            .and_then(|v| v.to_str().ok()),
        Some("allow")
    );
    let hello = tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(hello.to_text().unwrap().contains("session.created"));
    ws.send(Message::text(r#"{"type":"response.create"}"#))
        .await
        .unwrap();
    let echo = tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(echo, Message::text(r#"{"type":"response.create"}"#));
    let got = env.us.requests();
    assert_eq!(got.len(), 1);
    assert_eq!(
        got[0].path_and_query,
        "/v1/realtime?model=gpt-4o-realtime-preview-2024-12-17"
    );
    assert_eq!(
        got[0]
            .header("upgrade")
            .map(|u| u.to_ascii_lowercase())
            .as_deref(),
        Some("websocket")
    );
    assert_eq!(
        got[0].header_all("authorization"),
        [format!("Bearer {US_UPSTREAM_KEY}")]
    );
    assert_eq!(env.eu.request_count(), 0);
}
