//! Idle keep-alive connections are parked without hyper's buffers (issue 15): shortly after
//! coming to rest (`keepalive::PARK_AFTER`), a plain HTTP/1 connection waits on its socket alone, and its next request
//! is served by a new HTTP/1 connection on the same socket. The client sees one unbroken
//! keep-alive connection: same answers, the framing guard's refusal still applies, pipelined
//! requests are answered in order, and the keep-alive wait still ends at `request_header_secs`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};
use support::*;
use tokio::io::AsyncWriteExt;

const CHAT: &str = "/v1/chat/completions";
const BODY: &str = r#"{"model":"gpt-4o-2024-08-06","messages":[{"role":"user","content":"hi"}]}"#;

async fn gauge(admin: SocketAddr, name: &str) -> f64 {
    let r = send_raw(
        admin,
        format!("GET /metrics HTTP/1.1\r\nHost: {admin}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await;
    metric(&r.text(), &format!("residency_proxy_{name}"))
}

/// Waits (polling the metric, 10 s at most) until `parked_connections` is `n`.
async fn wait_parked(admin: SocketAddr, n: f64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let v = gauge(admin, "parked_connections").await;
        if v == n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "parked_connections stayed {v}, expected {n}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn chat(env: &Env) -> Vec<u8> {
    build_request(
        env.proxy.addr,
        "POST",
        CHAT,
        &[
            ("OpenAI-Project", "proj_eu"),
            ("Content-Type", "application/json"),
        ],
        BODY.as_bytes(),
    )
}

async fn answer(c: &mut Conn) -> Resp {
    tokio::time::timeout(Duration::from_secs(10), c.response(false))
        .await
        .expect("no response within 10 s")
        .expect("the proxy closed the connection")
}

#[tokio::test]
async fn a_parked_connection_serves_its_next_requests() {
    let env = Env::standard().await;
    let mut c = Conn::open(env.proxy.addr, &chat(&env)).await;
    assert_eq!(answer(&mut c).await.status, 200);
    wait_parked(env.proxy.admin, 1.0).await;
    // The next request wakes it: answered on the same connection, then parked again.
    c.stream().write_all(&chat(&env)).await.unwrap();
    let r = answer(&mut c).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("connection"), None, "no Connection: close was added");
    wait_parked(env.proxy.admin, 1.0).await;
    // Two pipelined requests in one write, after parking: both answered, in order.
    let mut two = chat(&env);
    two.extend_from_slice(&build_request(
        env.proxy.addr,
        "GET",
        "/v1/models",
        &[("OpenAI-Project", "proj_eu")],
        b"",
    ));
    c.stream().write_all(&two).await.unwrap();
    assert_eq!(answer(&mut c).await.status, 200);
    let models = answer(&mut c).await;
    assert_eq!(models.status, 200, "{}", models.text());
    assert_eq!(env.upstream_total(), 4);
    assert_eq!(
        gauge(env.proxy.admin, "open_connections").await,
        1.0,
        "still this one connection"
    );
}

#[tokio::test]
async fn a_parked_connection_still_refuses_both_lengths() {
    let env = Env::standard().await;
    let mut c = Conn::open(env.proxy.addr, &chat(&env)).await;
    assert_eq!(answer(&mut c).await.status, 200);
    wait_parked(env.proxy.admin, 1.0).await;
    let smuggle = format!(
        "POST {CHAT} HTTP/1.1\r\nHost: x\r\nOpenAI-Project: proj_eu\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nTransfer-Encoding: chunked\r\n\r\n{BODY}",
        BODY.len()
    );
    c.stream().write_all(smuggle.as_bytes()).await.unwrap();
    let r = answer(&mut c).await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(
        r.text().contains("Content-Length and Transfer-Encoding"),
        "{}",
        r.text()
    );
    assert_eq!(env.upstream_total(), 1, "the refused request was not forwarded");
}

#[tokio::test]
async fn a_parked_connection_closes_when_the_keep_alive_wait_ends() {
    let env = Env::with(
        "[timeouts]\nrequest_header_secs = 2\n",
        &standard_projects(),
        &standard_env(),
    )
    .await;
    let mut c = Conn::open(env.proxy.addr, &chat(&env)).await;
    assert_eq!(answer(&mut c).await.status, 200);
    let idle_from = Instant::now();
    wait_parked(env.proxy.admin, 1.0).await;
    let rest = tokio::time::timeout(Duration::from_secs(10), c.read_rest())
        .await
        .expect("still open 10 s later");
    let waited = idle_from.elapsed();
    assert!(rest.is_empty(), "{}", String::from_utf8_lossy(&rest));
    assert!(
        waited >= Duration::from_millis(1900) && waited < Duration::from_secs(5),
        "closed after {waited:?} of keep-alive wait (request_header_secs = 2)"
    );
    wait_parked(env.proxy.admin, 0.0).await;
}

#[tokio::test]
async fn a_new_connection_that_waits_before_its_first_request_is_served() {
    let env = Env::standard().await;
    let mut c = Conn::open(env.proxy.addr, b"").await;
    // The client itself is slow: it says nothing for far longer than the parking delay (a scenario,
    // not a wait for the proxy). Only a connection that served a request is ever parked.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    c.stream().write_all(&chat(&env)).await.unwrap();
    let r = answer(&mut c).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(env.upstream_total(), 1);
}
