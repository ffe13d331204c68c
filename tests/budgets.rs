//! Issue 10, item 6 (budgets and plain logs): a text log written to a file carries no ANSI
//! colour codes. (HEAD wherever the catalog allows the GET is in adversarial_paths.rs.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::{Duration, Instant};
use support::*;

#[tokio::test]
async fn a_log_written_to_a_file_has_no_colour_codes() {
    let env = Env::standard().await;
    let r = env
        .post_as(
            "proj_eu",
            "/v1/chat/completions",
            r#"{"model":"gpt-4o-2024-08-06","messages":[]}"#,
        )
        .await;
    assert_eq!(r.status, 200, "{r:#?}");
    // The request's line is written when its response ends: wait for it.
    let deadline = Instant::now() + Duration::from_secs(10);
    let log = loop {
        let s = env.proxy.stderr();
        if s.contains("/v1/chat/completions") {
            break s;
        }
        assert!(Instant::now() < deadline, "no request log line:\n{s}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(!log.contains('\u{1b}'), "colour codes in a log file:\n{log:?}");
}

fn chat_body(len: usize) -> String {
    let head = r#"{"model":"gpt-4o-2024-08-06","messages":[{"role":"user","content":""#;
    let tail = r#""}]}"#;
    format!("{head}{}{tail}", "x".repeat(len - head.len() - tail.len()))
}

/// `limits.max_buffered_bytes` caps the bytes held for inspection across requests: while one
/// inspected 1000-byte body is held (its upstream is slow to answer), a 700-byte body is a 503
/// `proxy_overloaded` (counted) that reaches no upstream; once the first is answered, the
/// same body passes.
#[tokio::test]
async fn bytes_held_for_inspection_are_capped_across_requests() {
    let env = Env::with(
        "[limits]\nmax_body_bytes = 1000\nmax_buffered_bytes = 1500\n",
        &standard_projects(),
        &standard_env(),
    )
    .await;
    let held = chat_body(1000);
    let first = build_request(
        env.proxy.addr,
        "POST",
        "/v1/chat/completions",
        &[
            ("Content-Type", "application/json"),
            ("OpenAI-Project", "proj_us"),
            ("Authorization", "Bearer sk-client-x"),
            // The mock holds its answer: the proxy holds the body until the answer comes.
            ("x-mock-behavior", "delay:8000"),
        ],
        held.as_bytes(),
    );
    let mut conn = Conn::open(env.proxy.addr, &first).await;
    // The event: the upstream has the first body, so the proxy has read (and charged) it.
    let deadline = Instant::now() + Duration::from_secs(20);
    while env.us.request_count() < 1 {
        assert!(
            Instant::now() < deadline,
            "the first request never reached the upstream"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let other = chat_body(700);
    let refused = env.post_as("proj_us", "/v1/chat/completions", &other).await;
    refused.assert_error(503, "proxy_overloaded");
    assert!(
        refused.text().contains("max_buffered_bytes"),
        "{}",
        refused.text()
    );
    assert_eq!(env.us.request_count(), 1, "a refused body reached the upstream");
    let metrics = reqwest_like_metrics(&env).await;
    assert!(
        metrics.contains("residency_proxy_buffer_budget_refusals_total 1"),
        "{metrics}"
    );

    // The first is answered; its bytes return to the budget.
    let done = conn.response(false).await.expect("the first request is answered");
    assert_eq!(done.status, 200, "{done:#?}");
    let again = env.post_as("proj_us", "/v1/chat/completions", &other).await;
    assert_eq!(again.status, 200, "{again:#?}");
}

async fn reqwest_like_metrics(env: &Env) -> String {
    let req = format!(
        "GET /metrics HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        env.proxy.admin
    );
    send_raw(env.proxy.admin, req.as_bytes()).await.text()
}

/// A streamed (uninspected) upload that goes silent is ended after
/// `timeouts.request_body_secs` instead of holding its slot and upstream connection until
/// the upstream's own timeout (600 s by default).
#[tokio::test]
async fn a_silent_streamed_upload_is_ended_after_the_body_timeout() {
    let env = Env::with(
        "[timeouts]\nrequest_body_secs = 1\n",
        &standard_projects(),
        &standard_env(),
    )
    .await;
    let body = b"--B\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nassistants\r\n--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.txt\"\r\n\r\nhello";
    let req = build_request(
        env.proxy.addr,
        "POST",
        "/v1/files",
        &[
            ("Content-Type", "multipart/form-data; boundary=B"),
            ("OpenAI-Project", "proj_us"),
            ("Content-Length", "100000"),
        ],
        body,
    );
    let started = Instant::now();
    let mut conn = Conn::open(env.proxy.addr, &req).await;
    let r = tokio::time::timeout(Duration::from_secs(20), conn.response(false))
        .await
        .expect("a silent upload was never ended");
    let took = started.elapsed();
    if let Some(r) = &r {
        assert_ne!(r.status, 200, "{r:#?}");
    }
    assert!(
        took >= Duration::from_millis(900),
        "ended before the timeout: {took:?}"
    );
    println!(
        "SILENT UPLOAD ended after {took:?}: {:?}",
        r.as_ref().map(|r| (r.status, r.text()))
    );
}
