//! Black-box tests of the process lifecycle and its limits, driving the real binary against
//! recording mocks: SIGTERM drains an in-flight stream (and gives up on a hung request after
//! the grace period), the upstream response timeout, the concurrency limit (a stream counts
//! until it ends), a stalled request body, an oversized request head.
//!
//! Run with `--nocapture` to see the measured times.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::{Duration, Instant};

use support::*;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

// ---------------------------------------------------------------------------------------------
// 1. Graceful shutdown
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_an_in_flight_stream_and_exits_zero() {
    let (eu, us) = mocks().await;
    let dir = TempDir::new("ops-term");
    let body = app_config(
        &eu,
        &us,
        "[timeouts]\nshutdown_grace_secs = 8\nshutdown_drain_delay_secs = 0\n",
    );
    let mut p = Proxy::start_in(&dir, "a", &body, &[]).await;
    let req = build_request(
        p.addr,
        "POST",
        "/v1/chat/completions",
        &[
            ("Content-Type", "application/json"),
            ("x-mock-behavior", "slow-sse"),
        ],
        stream_json().as_bytes(),
    );
    let mut c = Conn::open(p.addr, &req).await;
    let (status, _) = c.head().await.expect("stream head");
    assert_eq!(status, 200);
    let first = c.chunk().await.expect("first event");
    let mut streamed = first;

    p.signal("TERM");
    let t0 = Instant::now();

    // Not ready (503) or the admin listener is gone.
    let mut not_ready = false;
    while t0.elapsed() < Duration::from_secs(1) {
        match TcpStream::connect(p.admin).await {
            Err(_) => {
                not_ready = true;
                break;
            }
            Ok(mut s) => {
                let _ = s
                    .write_all(&build_request(p.admin, "GET", "/readyz", &[], b""))
                    .await;
                let raw = read_until_close(&mut s, Duration::from_millis(500)).await;
                if status_of(&raw) != Some(200) {
                    not_ready = true;
                    break;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(not_ready, "/readyz still 200 after SIGTERM");
    // New connections are refused.
    let mut refused = false;
    while t0.elapsed() < Duration::from_secs(1) {
        match TcpStream::connect(p.addr).await {
            Err(_) => {
                refused = true;
                break;
            }
            Ok(mut s) => {
                // Accepted by the kernel backlog at most: it must not be served.
                let _ = s
                    .write_all(&build_request(p.addr, "GET", "/v1/models", &[], b""))
                    .await;
                let raw = read_until_close(&mut s, Duration::from_millis(300)).await;
                if raw.is_empty() {
                    refused = true;
                    break;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(refused, "new connections are still served after SIGTERM");

    // The stream in flight completes.
    let rest = tokio::time::timeout(Duration::from_secs(6), async {
        while let Some(chunk) = c.chunk().await {
            streamed.extend_from_slice(&chunk);
        }
    })
    .await;
    let text = String::from_utf8_lossy(&streamed).into_owned();
    assert!(rest.is_ok(), "the stream did not end within 6 s: {text}");
    assert!(
        text.contains("data: [DONE]"),
        "the in-flight stream was cut by shutdown after {:?}: {text:?}",
        t0.elapsed()
    );
    p.assert_exits_zero(Duration::from_secs(9), "exit within the grace period")
        .await;
    println!(
        "SHUTDOWN: stream drained and process exited {:?} after SIGTERM",
        t0.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_a_hung_request_exits_zero_after_the_grace_period() {
    let (eu, us) = mocks().await;
    let dir = TempDir::new("ops-term-hang");
    let body = app_config(
        &eu,
        &us,
        "[timeouts]\nshutdown_grace_secs = 1\nshutdown_drain_delay_secs = 0\nupstream_response_secs = 60\n",
    );
    let mut p = Proxy::start_in(&dir, "a", &body, &[]).await;
    let req = build_request(
        p.addr,
        "POST",
        "/v1/chat/completions",
        &[("Content-Type", "application/json"), ("x-mock-behavior", "hang")],
        chat_json(false, "hang").as_bytes(),
    );
    let mut c = Conn::open(p.addr, &req).await;
    assert_eq!(
        eu.wait_for(1, Duration::from_secs(3)).await.len(),
        1,
        "the request reached the upstream"
    );
    p.signal("TERM");
    let t0 = Instant::now();
    let st = p.wait_exit(Duration::from_secs(5)).await;
    let took = t0.elapsed();
    let st = st.unwrap_or_else(|| panic!("still running 5 s after SIGTERM with grace 1 s"));
    assert_eq!(st.code(), Some(0), "{st:?}; stderr:\n{}", p.stderr());
    assert!(
        took < Duration::from_millis(2500),
        "exit took {took:?} with a 1 s grace period"
    );
    assert!(
        took >= Duration::from_millis(800),
        "exited after {took:?}: the in-flight request was not given the grace period"
    );
    // The client's connection was closed, not answered with a success.
    let r = tokio::time::timeout(Duration::from_secs(2), c.response(false)).await;
    assert!(!matches!(r, Ok(Some(ref x)) if x.status == 200), "{r:?}");
    println!("SHUTDOWN (hung request, grace 1 s): exited after {took:?}");
}

// ---------------------------------------------------------------------------------------------
// 2. Timeouts and limits
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_response_timeout_is_504() {
    let (eu, us) = mocks().await;
    let dir = TempDir::new("ops-504");
    let body = app_config(&eu, &us, "[timeouts]\nupstream_response_secs = 1\n");
    let p = Proxy::start_in(&dir, "a", &body, &[]).await;
    let t0 = Instant::now();
    let r = p
        .chat(&[("x-mock-behavior", "hang")], &chat_json(false, "hang"))
        .await;
    let took = t0.elapsed();
    r.assert_error(504, "upstream_timeout");
    assert!(took < Duration::from_millis(1500), "504 after {took:?}");
    assert!(
        took >= Duration::from_millis(900),
        "504 after {took:?}: too early"
    );
    assert_eq!(eu.request_count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_limit_is_503() {
    let (eu, us) = mocks().await;
    let dir = TempDir::new("ops-503");
    let body = app_config(
        &eu,
        &us,
        "[limits]\nmax_concurrent_requests = 1\n[timeouts]\nupstream_response_secs = 30\n",
    );
    let p = Proxy::start_in(&dir, "a", &body, &[]).await;
    let req = build_request(
        p.addr,
        "POST",
        "/v1/chat/completions",
        &[("Content-Type", "application/json"), ("x-mock-behavior", "hang")],
        chat_json(false, "hang").as_bytes(),
    );
    let hung = Conn::open(p.addr, &req).await;
    assert_eq!(eu.wait_for(1, Duration::from_secs(3)).await.len(), 1);
    let r = p.chat(&[], &chat_json(false, "second")).await;
    r.assert_error(503, "proxy_overloaded");
    assert_eq!(eu.request_count(), 1, "the refused request was not forwarded");
    // The slot comes back once the hung request is gone.
    drop(hung);
    let mut ok = false;
    for _ in 0..40 {
        let r = p.chat(&[], &chat_json(false, "third")).await;
        if r.status == 200 {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ok, "the concurrency slot was not released after the client left");
}

/// A streamed response is a request in flight until its last byte: with the limit at 1, a
/// second request while a stream is still flowing is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_limit_counts_a_streaming_response_until_it_ends() {
    let (eu, us) = mocks().await;
    let dir = TempDir::new("ops-503-stream");
    let body = app_config(&eu, &us, "[limits]\nmax_concurrent_requests = 1\n");
    let p = Proxy::start_in(&dir, "a", &body, &[]).await;
    let req = build_request(
        p.addr,
        "POST",
        "/v1/chat/completions",
        &[
            ("Content-Type", "application/json"),
            ("x-mock-behavior", "slow-sse"),
        ],
        stream_json().as_bytes(),
    );
    let mut c = Conn::open(p.addr, &req).await;
    let (status, _) = c.head().await.expect("stream head");
    assert_eq!(status, 200);
    assert!(c.chunk().await.is_some(), "first event");
    let r = p.chat(&[], &chat_json(false, "while streaming")).await;
    let refused = r.status == 503;
    // Let the stream finish, then the slot is free again.
    while c.chunk().await.is_some() {}
    let after = p.chat(&[], &chat_json(false, "after the stream")).await;
    assert_eq!(after.status, 200, "{after:?}");
    assert!(
        refused,
        "a second request was served ({}) while a streamed response held the only slot",
        r.status
    );
    r.assert_error(503, "proxy_overloaded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_request_body_is_400_after_request_body_secs() {
    let (eu, us) = mocks().await;
    let dir = TempDir::new("ops-body-timeout");
    let body = app_config(&eu, &us, "[timeouts]\nrequest_body_secs = 1\n");
    let p = Proxy::start_in(&dir, "a", &body, &[]).await;
    let mut s = TcpStream::connect(p.addr).await.unwrap();
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n",
        p.addr
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(br#"{"model":"gpt-4o-2024-08-06","messages":[{"role":"user","#)
        .await
        .unwrap();
    let t0 = Instant::now();
    let raw = read_until_close(&mut s, Duration::from_secs(4)).await;
    let took = t0.elapsed();
    assert_eq!(status_of(&raw), Some(400), "{:?}", String::from_utf8_lossy(&raw));
    assert!(took < Duration::from_millis(1500), "400 after {took:?}");
    assert!(
        took >= Duration::from_millis(900),
        "400 after {took:?}: too early"
    );
    assert!(body_of(&raw)["error"]["code"].is_string());
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(eu.request_count() + us.request_count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_request_head_is_refused() {
    let (eu, us) = mocks().await;
    let dir = TempDir::new("ops-head");
    let p = Proxy::start_in(&dir, "a", &app_config(&eu, &us, ""), &[]).await;
    let mut head = format!("GET /v1/models HTTP/1.1\r\nHost: {}\r\n", p.addr);
    let pad = "a".repeat(1000);
    for i in 0..70 {
        head.push_str(&format!("X-Pad-{i}: {pad}\r\n"));
    }
    head.push_str("\r\n");
    assert!(head.len() > 64 * 1024);
    let mut s = TcpStream::connect(p.addr).await.unwrap();
    let _ = s.write_all(head.as_bytes()).await;
    let raw = read_until_close(&mut s, Duration::from_secs(5)).await;
    let status = status_of(&raw);
    println!("OVERSIZED HEAD ({} bytes): status {status:?}", head.len());
    assert!(
        matches!(status, Some(431) | Some(400)),
        "a {} byte head: {:?}",
        head.len(),
        String::from_utf8_lossy(&raw)
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        eu.request_count() + us.request_count(),
        0,
        "an oversized head reached an upstream"
    );
    // A normal request still works afterwards.
    let r = p.send("GET", "/v1/models", &[], b"").await;
    assert!(r.status == 200 || r.status == 403, "{r:?}");
}
