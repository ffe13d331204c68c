use std::time::Instant;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;

/// Sends raw bytes, reads until the server closes (or `limit` passes).
async fn raw(mock: &MockUpstream, request: &[u8], limit: Duration) -> (Vec<u8>, bool) {
    let mut s = TcpStream::connect(mock.addr()).await.unwrap();
    s.write_all(request).await.unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Ok(Ok(0)) => return (out, true),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Ok(Err(_)) => return (out, true),
            Err(_) => return (out, false),
        }
    }
}

fn split_response(resp: &[u8]) -> (String, Vec<u8>) {
    let at = resp.windows(4).position(|w| w == b"\r\n\r\n").expect("head end");
    (
        String::from_utf8_lossy(&resp[..at]).into_owned(),
        resp[at + 4..].to_vec(),
    )
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line_end = b.windows(2).position(|w| w == b"\r\n").expect("chunk size line");
        let size = usize::from_str_radix(std::str::from_utf8(&b[..line_end]).unwrap().trim(), 16).unwrap();
        b = &b[line_end + 2..];
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&b[..size]);
        b = &b[size + 2..];
    }
}

fn post(path: &str, headers: &str, body: &str) -> Vec<u8> {
    format!(
        "POST {path} HTTP/1.1\r\nHost: example.test\r\nContent-Type: application/json\r\n{headers}\
Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

#[tokio::test]
async fn records_exact_request_and_answers_chat() {
    let mock = MockUpstream::start("eu").await;
    assert_eq!(
        mock.base_url(),
        format!("http://127.0.0.1:{}", mock.addr().port())
    );
    let req = b"POST /v1/chat/completions?x=1&y=%20 HTTP/1.1\r\nHost: up.example:443\r\n\
X-First: a\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nX-Multi: 1\r\n\
X-Multi: 2\r\nConnection: close\r\n\r\n\
10\r\n{\"model\": \"gpt-4\r\n9\r\no-2024-08\r\nd\r\n-06\" , \"a\":1}\r\n0\r\n\r\n";
    let (resp, closed) = raw(&mock, req, Duration::from_secs(5)).await;
    assert!(closed);
    let (head, body) = split_response(&resp);
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    assert!(head.to_ascii_lowercase().contains("x-mock-upstream: eu"));
    let body = if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        dechunk(&body)
    } else {
        body
    };
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["model"], "gpt-4o-2024-08-06");
    assert_eq!(v["choices"][0]["message"]["role"], "assistant");
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert!(v["usage"]["total_tokens"].as_u64().unwrap() > 0);

    let reqs = mock.requests();
    assert_eq!(reqs.len(), 1);
    let r = &reqs[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.path_and_query, "/v1/chat/completions?x=1&y=%20");
    assert_eq!(r.path(), "/v1/chat/completions");
    assert_eq!(r.version, Version::HTTP_11);
    assert_eq!(r.host.as_deref(), Some("up.example:443"));
    assert_eq!(&r.body[..], b"{\"model\": \"gpt-4o-2024-08-06\" , \"a\":1}");
    let names: Vec<&str> = r.headers.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "host",
            "x-first",
            "content-type",
            "transfer-encoding",
            "x-multi",
            "x-multi",
            "connection"
        ]
    );
    assert_eq!(r.header_all("X-Multi"), ["1", "2"]);
    assert_eq!(r.connection, 0);
    assert_eq!(mock.connections(), 1);
    mock.clear();
    assert!(mock.requests().is_empty());
}

#[tokio::test]
async fn h2c_requests_are_recorded_with_authority() {
    let mock = MockUpstream::start("us").await;
    let tcp = TcpStream::connect(mock.addr()).await.unwrap();
    let (mut send, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = Request::post(format!("http://{}/v1/embeddings", mock.addr()))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(
            b"{\"model\":\"text-embedding-3-small\",\"input\":[\"a\",\"b\"]}",
        )))
        .unwrap();
    let resp = send.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    let v: Value = serde_json::from_slice(&resp.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(v["object"], "list");
    assert_eq!(v["data"].as_array().unwrap().len(), 2);
    assert_eq!(v["data"][1]["object"], "embedding");
    assert!(v["data"][0]["embedding"].as_array().unwrap()[0].is_f64());
    let r = &mock.requests()[0];
    assert_eq!(r.version, Version::HTTP_2);
    assert_eq!(r.host.as_deref(), Some(mock.addr().to_string().as_str()));
}

#[tokio::test]
async fn embeddings_base64_is_little_endian_f32() {
    let mock = MockUpstream::start("m").await;
    let (resp, _) = raw(
        &mock,
        &post(
            "/v1/embeddings",
            "",
            r#"{"model":"text-embedding-3-small","input":"hi","encoding_format":"base64"}"#,
        ),
        Duration::from_secs(5),
    )
    .await;
    let (_, body) = split_response(&resp);
    let v: Value = serde_json::from_slice(&body).unwrap();
    let b64 = v["data"][0]["embedding"].as_str().unwrap();
    let expected: Vec<u8> = shapes::embedding_vector(0, 8)
        .iter()
        .flat_map(|f| f.to_le_bytes())
        .collect();
    assert_eq!(b64, shapes::base64(&expected));
}

#[tokio::test]
async fn chat_stream_is_sse_with_done() {
    let mock = MockUpstream::start("m").await;
    let (resp, _) = raw(
        &mock,
        &post(
            "/v1/chat/completions",
            "",
            r#"{"model":"gpt-4o-mini-2024-07-18","stream":true}"#,
        ),
        Duration::from_secs(5),
    )
    .await;
    let (head, body) = split_response(&resp);
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/event-stream"),
        "{head}"
    );
    let text = String::from_utf8(dechunk(&body)).unwrap();
    let events: Vec<&str> = text.split("\n\n").filter(|e| !e.is_empty()).collect();
    assert!(events.len() >= 4);
    assert_eq!(*events.last().unwrap(), "data: [DONE]");
    let first: Value = serde_json::from_str(events[0].strip_prefix("data: ").unwrap()).unwrap();
    assert_eq!(first["object"], "chat.completion.chunk");
    assert_eq!(first["model"], "gpt-4o-mini-2024-07-18");
}

#[tokio::test]
async fn responses_object_and_stream() {
    let mock = MockUpstream::start("m").await;
    let (resp, _) = raw(
        &mock,
        &post(
            "/v1/responses",
            "",
            r#"{"model":"gpt-4.1-2025-04-14","input":"hi","store":false}"#,
        ),
        Duration::from_secs(5),
    )
    .await;
    let v: Value = serde_json::from_slice(&split_response(&resp).1).unwrap();
    assert_eq!(v["object"], "response");
    assert_eq!(v["status"], "completed");
    assert_eq!(v["store"], false);
    assert_eq!(v["output"][0]["content"][0]["type"], "output_text");
    let (resp, _) = raw(
        &mock,
        &post(
            "/v1/responses",
            "",
            r#"{"model":"gpt-4.1-2025-04-14","input":"hi","stream":true}"#,
        ),
        Duration::from_secs(5),
    )
    .await;
    let text = String::from_utf8(dechunk(&split_response(&resp).1)).unwrap();
    let names: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("event: ")).collect();
    assert_eq!(names.first(), Some(&"response.created"));
    assert!(names.contains(&"response.output_text.delta"));
    assert_eq!(names.last(), Some(&"response.completed"));
}

#[tokio::test]
async fn multipart_upload_and_listing() {
    let mock = MockUpstream::start("m").await;
    let body = "--B\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nbatch\r\n--B\r\n\
Content-Disposition: form-data; name=\"file\"; filename=\"in.jsonl\"\r\n\r\n12345\r\n--B--\r\n";
    let req = format!(
        "POST /v1/files HTTP/1.1\r\nHost: h\r\nContent-Type: multipart/form-data; boundary=B\r\n\
Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let (resp, _) = raw(&mock, req.as_bytes(), Duration::from_secs(5)).await;
    let v: Value = serde_json::from_slice(&split_response(&resp).1).unwrap();
    assert_eq!(v["object"], "file");
    assert_eq!(v["bytes"], 5);
    assert_eq!(v["filename"], "in.jsonl");
    assert_eq!(v["purpose"], "batch");
    let (resp, _) = raw(
        &mock,
        b"GET /v1/files HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
        Duration::from_secs(5),
    )
    .await;
    let v: Value = serde_json::from_slice(&split_response(&resp).1).unwrap();
    assert_eq!(v["data"][0]["filename"], "in.jsonl");
}

#[tokio::test]
async fn status_fault_answers_openai_error_and_records() {
    let mock = MockUpstream::start("m").await;
    let (resp, _) = raw(
        &mock,
        &post("/v1/chat/completions", "x-mock-behavior: status:429\r\n", "{}"),
        Duration::from_secs(5),
    )
    .await;
    let (head, body) = split_response(&resp);
    assert!(head.starts_with("HTTP/1.1 429"), "{head}");
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["error"]["code"], "rate_limit_exceeded");
    assert_eq!(mock.requests().len(), 1);
}

#[tokio::test]
async fn reset_and_garbage_close_without_http() {
    let mock = MockUpstream::start("m").await;
    let (resp, closed) = raw(
        &mock,
        &post("/v1/chat/completions", "x-mock-behavior: reset\r\n", "{\"a\":1}"),
        Duration::from_secs(5),
    )
    .await;
    assert!(closed);
    assert!(resp.is_empty(), "{resp:?}");
    let (resp, closed) = raw(
        &mock,
        &post(
            "/v1/chat/completions",
            "x-mock-behavior: garbage\r\n",
            "{\"a\":1}",
        ),
        Duration::from_secs(5),
    )
    .await;
    assert!(closed);
    assert!(!resp.is_empty());
    assert!(!resp.starts_with(b"HTTP/"));
    let reqs = mock.requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(&reqs[1].body[..], b"{\"a\":1}");
}

#[tokio::test]
async fn hang_never_answers_and_delay_delays() {
    let mock = MockUpstream::start("m").await;
    let (resp, closed) = raw(
        &mock,
        &post("/v1/chat/completions", "x-mock-behavior: hang\r\n", "{}"),
        Duration::from_millis(500),
    )
    .await;
    assert!(!closed);
    assert!(resp.is_empty());
    assert_eq!(mock.requests().len(), 1);
    let t = Instant::now();
    let (resp, _) = raw(
        &mock,
        &post("/v1/models", "x-mock-behavior: delay:300\r\n", ""),
        Duration::from_secs(5),
    )
    .await;
    assert!(t.elapsed() >= Duration::from_millis(300));
    assert!(resp.starts_with(b"HTTP/1.1 200"));
}

#[tokio::test]
async fn slow_sse_spaces_events_and_drop_mid_stream_aborts() {
    let mock = MockUpstream::start("m").await;
    let mut s = TcpStream::connect(mock.addr()).await.unwrap();
    s.write_all(&post(
        "/v1/chat/completions",
        "x-mock-behavior: slow-sse\r\n",
        "{\"model\":\"x\"}",
    ))
    .await
    .unwrap();
    let t = Instant::now();
    let mut buf = vec![0u8; 65536];
    let n = s.read(&mut buf).await.unwrap();
    assert!(n > 0);
    let first_at = t.elapsed();
    let mut all = buf[..n].to_vec();
    loop {
        let n = s.read(&mut buf).await.unwrap();
        if n == 0 {
            break;
        }
        all.extend_from_slice(&buf[..n]);
    }
    let total = t.elapsed();
    assert!(first_at < Duration::from_millis(500), "{first_at:?}");
    assert!(total >= SLOW_SSE_GAP * (SLOW_SSE_EVENTS as u32), "{total:?}");
    let text = String::from_utf8(dechunk(&split_response(&all).1)).unwrap();
    assert!(text.ends_with("data: [DONE]\n\n"));

    let (resp, closed) = raw(
        &mock,
        &post(
            "/v1/chat/completions",
            "x-mock-behavior: drop-mid-stream\r\n",
            "{}",
        ),
        Duration::from_secs(5),
    )
    .await;
    assert!(closed);
    let (head, body) = split_response(&resp);
    assert!(head.starts_with("HTTP/1.1 200"));
    let text = String::from_utf8_lossy(&body);
    assert_eq!(text.matches("data: ").count(), 2, "{text}");
    assert!(!body.ends_with(b"0\r\n\r\n"));
}

#[tokio::test]
async fn realtime_websocket_echoes() {
    let mock = MockUpstream::start("us").await;
    let tcp = TcpStream::connect(mock.addr()).await.unwrap();
    let url = format!(
        "ws://{}/v1/realtime?model=gpt-4o-realtime-preview-2024-12-17",
        mock.addr()
    );
    let (mut ws, resp) = tokio_tungstenite::client_async(url, tcp).await.unwrap();
    assert_eq!(resp.status(), 101);
    let hello = ws.next().await.unwrap().unwrap();
    let v: Value = serde_json::from_str(hello.to_text().unwrap()).unwrap();
    assert_eq!(v["type"], "session.created");
    assert_eq!(v["session"]["model"], "gpt-4o-realtime-preview-2024-12-17");
    ws.send(Message::text("{\"type\":\"x\"}")).await.unwrap();
    assert_eq!(
        ws.next().await.unwrap().unwrap(),
        Message::text("{\"type\":\"x\"}")
    );
    ws.send(Message::binary(vec![1u8, 2, 3])).await.unwrap();
    assert_eq!(
        ws.next().await.unwrap().unwrap(),
        Message::binary(vec![1u8, 2, 3])
    );
    let r = &mock.requests()[0];
    assert_eq!(
        r.path_and_query,
        "/v1/realtime?model=gpt-4o-realtime-preview-2024-12-17"
    );
    assert_eq!(r.header("upgrade").as_deref(), Some("websocket"));
}

#[tokio::test]
async fn wait_for_returns_when_enough_requests_arrive() {
    let mock = MockUpstream::start("m").await;
    let m2 = mock.clone();
    let waiter = tokio::spawn(async move { m2.wait_for(2, Duration::from_secs(5)).await.len() });
    for _ in 0..2 {
        raw(
            &mock,
            b"GET /v1/models/gpt-4o HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
            Duration::from_secs(5),
        )
        .await;
    }
    assert_eq!(waiter.await.unwrap(), 2);
    let t = Instant::now();
    assert_eq!(mock.wait_for(3, Duration::from_millis(100)).await.len(), 2);
    assert!(t.elapsed() >= Duration::from_millis(100));
    assert_eq!(mock.connections(), 2);
}

#[tokio::test]
async fn other_paths_answer_ok_with_path() {
    let mock = MockUpstream::start("m").await;
    let (resp, _) = raw(
        &mock,
        b"DELETE /v1/whatever/x?q=1 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
        Duration::from_secs(5),
    )
    .await;
    let v: Value = serde_json::from_slice(&split_response(&resp).1).unwrap();
    assert_eq!(v["ok"], true);
    assert_eq!(v["path"], "/v1/whatever/x?q=1");
}

#[tokio::test]
async fn bench_events_stream_n_compact_chunks_then_done() {
    let mock = MockUpstream::start("m").await;
    let (resp, closed) = raw(
        &mock,
        &post("/v1/chat/completions", "x-mock-behavior: events:300\r\n", "{}"),
        Duration::from_secs(5),
    )
    .await;
    assert!(closed);
    let (head, body) = split_response(&resp);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.contains("text/event-stream"), "{head}");
    let text = String::from_utf8(dechunk(&body)).unwrap();
    let events: Vec<&str> = text.split_terminator("\n\n").collect();
    assert_eq!(events.len(), 301);
    assert_eq!(events[300], "data: [DONE]");
    for e in &events[..300] {
        let v: Value = serde_json::from_str(e.strip_prefix("data: ").unwrap()).unwrap();
        assert_eq!(v["object"], "chat.completion.chunk");
        assert!((90..=140).contains(&(e.len() + 2)), "{} bytes: {e}", e.len() + 2);
    }
    assert!(events[1].contains("\" w1\""));
    assert!(events[299].contains("\"finish_reason\":\"stop\""));
}
