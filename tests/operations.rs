//! Black-box tests of the operational features, driving the real `residency-proxy` binary
//! against recording mocks: admin endpoints and metrics, JSON request logs without secrets,
//! the hash-chained audit log, TLS on the listener, the shared-gateway key check, and the idle
//! memory footprint. Hot reload is in `reload.rs`, shutdown, timeouts and limits in
//! `shutdown_and_limits.rs`.
//!
//! Run with `--nocapture` to see the measured times and RSS.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use serde_json::Value;
use support::*;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

// ---------------------------------------------------------------------------------------------
// 1. Admin endpoints and metrics
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_health_ready_and_metrics() {
    let (eu, us) = mocks().await;
    let dir = TempDir::new("ops-admin");
    let p = Proxy::start_in(&dir, "a", &app_config(&eu, &us, ""), &[]).await;

    let h = p.admin_get("/healthz").await;
    assert_eq!(h.status, 200, "{h:?}");
    let r = p.admin_get("/readyz").await;
    assert_eq!(r.status, 200, "/readyz while serving: {r:?}");

    // A rewritten request (store=true under ZDR) and a raw path outside the catalog.
    let res = p.chat(&[], &chat_json(true, "metrics")).await;
    assert_eq!(res.status, 200, "{res:?}");
    res.assert_residency("rewrite", "app", "eu");
    let odd = p.send("GET", "/v1/does-not-exist/../x", &[], b"").await;
    assert_eq!(odd.status, 403, "{odd:?}");
    let odd2 = p.send("GET", "/v1/path-canary-4711/abc?secret=q", &[], b"").await;
    assert_eq!(odd2.status, 403, "{odd2:?}");
    assert_eq!(eu.request_count(), 1, "only the chat request is forwarded");

    // Hold a client connection open while scraping.
    let mut held = Conn::open(p.addr, &build_request(p.addr, "GET", "/v1/models", &[], b"")).await;
    let held_res = held.response(false).await.unwrap();
    assert!(held_res.status == 200 || held_res.status == 403, "{held_res:?}");

    let text = p.metrics().await;
    let s = parse_metrics(&text);
    let req = sample(
        &s,
        "residency_proxy_requests_total",
        &[
            ("project", "app"),
            ("region", "eu"),
            ("endpoint", "/v1/chat/completions"),
            ("decision", "rewrite"),
            ("rule", "store"),
        ],
    )
    .unwrap_or_else(|| panic!("no rewrite/store request counter:\n{text}"));
    assert_eq!(req.value, 1.0, "{text}");

    // The raw paths never become label values.
    let unknown = sample(
        &s,
        "residency_proxy_requests_total",
        &[("endpoint", "unknown"), ("rule", "unknown_endpoint")],
    )
    .unwrap_or_else(|| panic!("no endpoint=\"unknown\" counter:\n{text}"));
    assert_eq!(unknown.value, 2.0, "{text}");
    assert!(!text.contains("does-not-exist"), "raw path in metrics:\n{text}");
    assert!(!text.contains("path-canary"), "raw path in metrics:\n{text}");
    for smp in s.iter().filter(|x| x.name == "residency_proxy_requests_total") {
        let ep = &smp.labels["endpoint"];
        assert!(
            ep == "unknown" || ep.starts_with("/v1/"),
            "endpoint label {ep:?}:\n{text}"
        );
        assert!(!ep.contains(".."), "endpoint label {ep:?}");
    }

    // Upstream time-to-first-byte histogram for the region.
    let count = sample(
        &s,
        "residency_proxy_upstream_response_seconds_count",
        &[("region", "eu")],
    )
    .unwrap_or_else(|| panic!("no upstream latency histogram:\n{text}"));
    assert_eq!(
        count.value,
        eu.request_count() as f64,
        "one observation per forwarded request:\n{text}"
    );
    assert!(
        s.iter()
            .any(|x| x.name == "residency_proxy_upstream_response_seconds_bucket"
                && x.labels.contains_key("le")),
        "{text}"
    );
    // Open connections: at least the one held open.
    let open = sample(&s, "residency_proxy_open_connections", &[])
        .unwrap_or_else(|| panic!("no open connections gauge:\n{text}"));
    assert!(open.value >= 1.0, "open connections {}:\n{text}", open.value);
    // Reload health and build info.
    let last = sample(&s, "residency_proxy_config_last_reload_success", &[])
        .unwrap_or_else(|| panic!("no last reload gauge:\n{text}"));
    assert_eq!(last.value, 1.0);
    assert!(
        s.iter()
            .any(|x| x.name.starts_with("residency_proxy_build") && x.labels.contains_key("version")),
        "no build info:\n{text}"
    );
    // Upstream responses are metered to their last byte: duration histogram and bytes out.
    assert!(
        s.iter()
            .any(|x| x.name == "residency_proxy_upstream_duration_seconds_count"
                && x.labels.get("region").map(String::as_str) == Some("eu")
                && x.value >= 1.0),
        "no upstream duration histogram:\n{text}"
    );
    assert!(
        s.iter()
            .any(|x| x.name.starts_with("residency_proxy_response_body_bytes") && x.value > 0.0),
        "no response body bytes:\n{text}"
    );
    // Request body bytes were counted.
    assert!(
        s.iter()
            .any(|x| x.name.starts_with("residency_proxy_request_body_bytes") && x.value > 0.0),
        "no request body bytes:\n{text}"
    );
    drop(held);

    // The reload counters are exposed from the start (no reload has happened yet), so that
    // alerts and rate() on `result="failure"` work before the first failure.
    for result in ["success", "failure"] {
        let c = sample(&s, "residency_proxy_config_reloads_total", &[("result", result)]);
        assert_eq!(
            c.map(|x| x.value),
            Some(0.0),
            "residency_proxy_config_reloads_total{{result=\"{result}\"}} is not exposed before the first reload:\n{text}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 2. JSON logs: one line per request, no secrets, no content
// ---------------------------------------------------------------------------------------------

fn refs<'a>(h: &'a [(&'a str, String)]) -> Vec<(&'a str, &'a str)> {
    h.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

const CLIENT_SECRET: &str = "sk-SECRET-client-7f3a9c11d2";
const UPSTREAM_SECRET: &str = "sk-SECRET-upstream-b81d55e0";
const CONTENT_CANARY: &str = "CONTENT-CANARY-quartz-heron";
const SECRET_MODEL: &str = "my-secret-model-name";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_one_line_per_request_without_secrets() {
    let (eu, us) = mocks().await;
    let dir = TempDir::new("ops-logs");
    let body = format!(
        "[log]\nformat = \"json\"\n{}\n[[projects]]\nname = \"app\"\nregion = \"eu\"\nretention = \"zdr\"\n\
         default = true\nopenai_project = \"proj_app\"\nupstream_api_key_env = \"RP_OPS_UPSTREAM_KEY\"\n",
        upstream_table(&eu, &us)
    );
    let p = Proxy::start_in(&dir, "a", &body, &[("RP_OPS_UPSTREAM_KEY", UPSTREAM_SECRET)]).await;
    let auth = format!("Bearer {CLIENT_SECRET}");
    let hr = |id: &'static str| -> [(&'static str, String); 3] {
        [
            ("Authorization", auth.clone()),
            ("OpenAI-Project", "proj_app".to_string()),
            ("x-request-id", id.to_string()),
        ]
    };

    // 1: rewritten (store=true), with distinctive content.
    let h1 = hr("ops-log-1");
    let r1 = p.chat(&refs(&h1), &chat_json(true, CONTENT_CANARY)).await;
    assert_eq!(r1.status, 200, "{r1:?}");
    // 2: denied, free-text model name.
    let h2 = hr("ops-log-2");
    let deny_body = serde_json::json!({
        "model": SECRET_MODEL,
        "messages": [{"role": "user", "content": CONTENT_CANARY}],
    })
    .to_string();
    let r2 = p.chat(&refs(&h2), &deny_body).await;
    assert_eq!(r2.status, 403, "{r2:?}");
    // 3: allowed, streamed.
    let h3 = hr("ops-log-3");
    let mut sb: Value = serde_json::from_str(&stream_json()).unwrap();
    sb["user"] = Value::from(format!("user-{CONTENT_CANARY}"));
    sb["store"] = Value::from(false);
    let r3 = p.chat(&refs(&h3), &sb.to_string()).await;
    assert_eq!(r3.status, 200, "{r3:?}");
    assert!(r3.text().contains("[DONE]"));
    // 4: unknown endpoint with an identifying raw path.
    let h4 = hr("ops-log-4");
    let r4 = p.send("GET", "/v1/path-canary-4711/xyz", &refs(&h4), b"").await;
    assert_eq!(r4.status, 403, "{r4:?}");

    // The upstream got the injected key, never the client's.
    let recs = eu.requests();
    assert_eq!(recs.len(), 2);
    for r in &recs {
        assert_eq!(
            r.header("authorization").as_deref(),
            Some(format!("Bearer {UPSTREAM_SECRET}").as_str())
        );
    }

    // A request's line is written when its response body ends: wait for the fourth.
    assert!(
        wait_until(Duration::from_secs(5), || request_lines(&p.stderr()).len() >= 4).await,
        "{}",
        p.stderr()
    );
    let stderr = p.stderr();
    let lines = request_lines(&stderr);
    let ids: Vec<&str> = lines
        .iter()
        .map(|l| l["request_id"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        ids,
        ["ops-log-1", "ops-log-2", "ops-log-3", "ops-log-4"],
        "one line per request:\n{stderr}"
    );
    for l in &lines {
        for key in [
            "project",
            "region",
            "endpoint",
            "model",
            "decision",
            "rule",
            "status",
            "upstream_status",
            "latency_ms",
            "request_id",
        ] {
            assert!(l.get(key).is_some(), "log line lacks {key}: {l}");
        }
        assert!(l["latency_ms"].as_f64().is_some(), "{l}");
    }
    let l1 = &lines[0];
    assert_eq!(l1["project"], "app", "{l1}");
    assert_eq!(l1["region"], "eu", "{l1}");
    assert_eq!(l1["endpoint"], "/v1/chat/completions", "{l1}");
    assert_eq!(l1["model"], "gpt-4o-2024-08-06", "{l1}");
    assert_eq!(l1["decision"], "rewrite", "{l1}");
    assert_eq!(l1["rule"], "store", "{l1}");
    assert_eq!(l1["status"], 200, "{l1}");
    assert_eq!(l1["upstream_status"], 200, "{l1}");
    let l2 = &lines[1];
    assert_eq!(l2["decision"], "deny", "{l2}");
    assert_eq!(l2["rule"], "model_not_eligible", "{l2}");
    assert_eq!(l2["status"], 403, "{l2}");
    assert_ne!(l2["model"], SECRET_MODEL, "{l2}");
    assert_eq!(lines[2]["decision"], "allow", "{}", lines[2]);
    assert_eq!(lines[3]["endpoint"], "unknown", "{}", lines[3]);

    for secret in [CLIENT_SECRET, UPSTREAM_SECRET, CONTENT_CANARY, SECRET_MODEL] {
        assert!(
            !stderr.contains(secret),
            "{secret:?} appears in the logs:\n{stderr}"
        );
    }
    // Parts of the secrets too (e.g. a truncated or prefixed token).
    assert!(
        !stderr.contains("SECRET"),
        "a secret fragment appears in the logs:\n{stderr}"
    );
    assert!(
        !stderr.contains("path-canary"),
        "a raw request path appears in the logs:\n{stderr}"
    );
}

// ---------------------------------------------------------------------------------------------
// 3. Audit log
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_log_is_hash_chained_verifiable_and_continues_after_restart() {
    let (eu, us) = mocks().await;
    let dir = TempDir::new("ops-audit");
    let audit = dir.path().join("audit.jsonl");
    let body = app_config(
        &eu,
        &us,
        &format!(
            "[timeouts]\nshutdown_drain_delay_secs = 0\n[audit]\npath = \"{}\"\n",
            audit.display()
        ),
    );
    let mut p = Proxy::start_in(&dir, "a", &body, &[]).await;
    let allow = p
        .chat(&[("x-request-id", "aud-1")], &chat_json(false, CONTENT_CANARY))
        .await;
    assert_eq!(allow.status, 200, "{allow:?}");
    allow.assert_residency("allow", "app", "eu");
    let rewrite = p
        .chat(&[("x-request-id", "aud-2")], &chat_json(true, CONTENT_CANARY))
        .await;
    assert_eq!(rewrite.status, 200);
    rewrite.assert_residency("rewrite", "app", "eu");
    let deny_body =
        serde_json::json!({"model": SECRET_MODEL, "messages": [{"role": "user", "content": CONTENT_CANARY}]});
    let deny = p.chat(&[("x-request-id", "aud-3")], &deny_body.to_string()).await;
    assert_eq!(deny.status, 403);

    // A start notice; per forwarded request a decision (written before forwarding) and an
    // outcome (when the response ended); a denial has one decision record with its status.
    assert!(
        wait_until(Duration::from_secs(3), || jsonl_file(&audit).len() >= 6).await,
        "audit records not written: {:?}",
        std::fs::read_to_string(&audit)
    );
    let recs = jsonl_file(&audit);
    assert_eq!(recs.len(), 6, "{recs:#?}");
    assert_eq!(recs[0]["kind"], "notice", "{}", recs[0]);
    let decisions: Vec<&Value> = recs.iter().filter(|r| r["kind"] == "decision").collect();
    let expect = [
        ("aud-1", "allow", "", Value::Null),
        ("aud-2", "rewrite", "store", Value::Null),
        ("aud-3", "deny", "model_not_eligible", Value::from(403)),
    ];
    for (rec, (id, decision, rule, status)) in decisions.iter().zip(expect) {
        assert_eq!(rec["request_id"], id, "{rec}");
        assert_eq!(rec["decision"], decision, "{rec}");
        assert_eq!(rec["rule"], rule, "{rec}");
        assert_eq!(rec["endpoint"], "/v1/chat/completions", "{rec}");
        assert_eq!(rec["project"], "app", "{rec}");
        assert_eq!(rec["region"], "eu", "{rec}");
        assert_eq!(rec["status"], status, "{rec}");
        assert_eq!(rec["forwarded"], status.is_null(), "{rec}");
    }
    for id in ["aud-1", "aud-2"] {
        let outcome = recs
            .iter()
            .find(|r| r["kind"] == "outcome" && r["request_id"] == id)
            .unwrap_or_else(|| panic!("no outcome for {id}: {recs:#?}"));
        assert_eq!(outcome["status"], 200, "{outcome}");
        assert_eq!(outcome["body"], "complete", "{outcome}");
        let decision = recs
            .iter()
            .find(|r| r["kind"] == "decision" && r["request_id"] == id)
            .unwrap();
        assert_eq!(outcome["decision_seq"], decision["seq"], "{outcome}");
    }
    let text = std::fs::read_to_string(&audit).unwrap();
    assert!(
        !text.contains(CONTENT_CANARY),
        "content in the audit log:\n{text}"
    );
    assert!(
        !text.contains(SECRET_MODEL),
        "free-text model in the audit log:\n{text}"
    );

    let out = verify_audit(&[&audit]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(
        out.status.code(),
        Some(0),
        "verify: {stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("6 record"), "verify names the count: {stdout}");

    // One edited byte in record 2 is found and named.
    let original = text.clone();
    let mut lines: Vec<String> = original.lines().map(str::to_string).collect();
    assert!(lines[2].contains("\"status\":200"), "{}", lines[2]);
    lines[2] = lines[2].replacen("\"status\":200", "\"status\":201", 1);
    std::fs::write(&audit, lines.join("\n") + "\n").unwrap();
    let out = verify_audit(&[&audit]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "an edited record must fail verify: {stdout}"
    );
    assert!(stdout.contains("line 3"), "verify names the line: {stdout}");
    std::fs::write(&audit, &original).unwrap();

    // Restart on the same file: the chain continues.
    p.signal("TERM");
    let st = p.wait_exit(Duration::from_secs(10)).await;
    assert!(st.is_some(), "the proxy did not exit after SIGTERM");
    drop(p);
    let p2 = Proxy::start_in(&dir, "b", &body, &[]).await;
    let r = p2
        .chat(&[("x-request-id", "aud-4")], &chat_json(false, "again"))
        .await;
    assert_eq!(r.status, 200);
    let r = p2
        .chat(&[("x-request-id", "aud-5")], &chat_json(true, "again"))
        .await;
    assert_eq!(r.status, 200);
    assert!(
        wait_until(Duration::from_secs(3), || jsonl_file(&audit).len() >= 10).await,
        "audit records after restart not written: {:?}",
        std::fs::read_to_string(&audit)
    );
    let recs = jsonl_file(&audit);
    assert_eq!(recs.len(), 10);
    assert_eq!(recs[6]["seq"], 7, "{}", recs[6]);
    assert_eq!(
        recs[6]["kind"], "decision",
        "no new-chain notice on a continued chain: {}",
        recs[6]
    );
    assert_eq!(
        recs[6]["prev"], recs[5]["hash"],
        "the chain links across the restart"
    );
    let out = verify_audit(&[&audit]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(0), "verify after restart: {stdout}");
    assert!(stdout.contains("10 record"), "{stdout}");
}

// ---------------------------------------------------------------------------------------------
// 4. TLS on the listener
// ---------------------------------------------------------------------------------------------

/// Sends one chat request over `tls` with HTTP/1.1 or HTTP/2 (per the negotiated ALPN);
/// returns status, `x-mock-upstream`, `x-residency-decision`, body.
async fn tls_chat(tls: Tls, h2: bool, content: &str) -> (u16, Option<String>, Option<String>, Bytes) {
    let io = hyper_util::rt::TokioIo::new(tls);
    let body = Full::new(Bytes::from(chat_json(false, content)));
    let res = if h2 {
        let (mut sender, conn) =
            hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), io)
                .await
                .unwrap();
        tokio::spawn(conn);
        let req = http::Request::post("https://localhost/v1/chat/completions")
            .header("content-type", "application/json")
            .body(body)
            .unwrap();
        sender.send_request(req).await.unwrap()
    } else {
        let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
        tokio::spawn(conn);
        let req = http::Request::post("/v1/chat/completions")
            .header("host", "localhost")
            .header("content-type", "application/json")
            .body(body)
            .unwrap();
        sender.send_request(req).await.unwrap()
    };
    let status = res.status().as_u16();
    let h = |n: &str| res.headers().get(n).map(|v| v.to_str().unwrap().to_string());
    let (up, decision) = (h("x-mock-upstream"), h("x-residency-decision"));
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    (status, up, decision, bytes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_listener_http1_and_h2_and_certificate_reload() {
    let (eu, us) = mocks().await;
    let dir = TempDir::new("ops-tls");
    let cert = dir.path().join("tls.crt");
    let key = dir.path().join("tls.key");
    let first = TestCert::server(&cert, &key);
    let body = app_config(
        &eu,
        &us,
        &format!(
            "[tls]\ncert_file = \"{}\"\nkey_file = \"{}\"\n",
            cert.display(),
            key.display()
        ),
    );
    let p = Proxy::start_in(&dir, "a", &body, &[]).await;

    let tls = tls_connect(p.addr, &first, b"http/1.1")
        .await
        .expect("TLS handshake (http/1.1)");
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    let (status, up, decision, bytes) = tls_chat(tls, false, "over tls h1").await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&bytes));
    assert_eq!(up.as_deref(), Some("eu"));
    assert_eq!(decision.as_deref(), Some("allow"));

    // A renewed certificate, picked up by a reload: new connections see it.
    let second = TestCert::server(&cert, &key);
    p.signal("HUP");
    let t0 = Instant::now();
    let mut new_ok = false;
    while t0.elapsed() < Duration::from_secs(3) {
        if tls_connect(p.addr, &second, b"http/1.1").await.is_ok() {
            new_ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        new_ok,
        "the renewed certificate is not served after SIGHUP; stderr:\n{}",
        p.stderr()
    );
    assert!(
        tls_connect(p.addr, &first, b"http/1.1").await.is_err(),
        "the old certificate is still served to new connections"
    );
    let tls = tls_connect(p.addr, &second, b"http/1.1").await.unwrap();
    let (status, up, _, bytes) = tls_chat(tls, false, "after renewal").await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&bytes));
    assert_eq!(up.as_deref(), Some("eu"));

    // HTTP/2 over TLS (ALPN h2), as every h2 client sends it: :scheme and :authority.
    let tls = tls_connect(p.addr, &second, b"h2")
        .await
        .expect("TLS handshake (h2)");
    assert_eq!(
        tls.get_ref().1.alpn_protocol(),
        Some(&b"h2"[..]),
        "ALPN h2 negotiated"
    );
    let (status, up, decision, bytes) = tls_chat(tls, true, "over tls h2").await;
    assert_eq!(
        status,
        200,
        "HTTP/2 over TLS: {}",
        String::from_utf8_lossy(&bytes)
    );
    assert_eq!(up.as_deref(), Some("eu"));
    assert_eq!(decision.as_deref(), Some("allow"));

    let recs = eu.requests();
    let contents: Vec<String> = recs
        .iter()
        .map(|r| {
            r.json().unwrap()["messages"][0]["content"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(
        contents,
        ["over tls h1", "after renewal", "over tls h2"],
        "every request reached the plain-http mock"
    );
}

// ---------------------------------------------------------------------------------------------
// 5. Shared gateway: client keys
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_client_keys_select_projects_and_unknown_keys_get_401_before_the_body() {
    const KEY_EU: &str = "sk-gw-client-eu-1234";
    const KEY_US: &str = "sk-gw-client-us-5678";
    const UP_EU: &str = "sk-real-upstream-eu-aaaa";
    const UP_US: &str = "sk-real-upstream-us-bbbb";
    let (eu, us) = mocks().await;
    let dir = TempDir::new("ops-gw");
    let body = format!(
        "[auth]\nrequire_client_key = true\n{}\n\
         [[projects]]\nname = \"gw-eu\"\nregion = \"eu\"\nretention = \"zdr\"\napi_key_sha256 = [\"{}\"]\nupstream_api_key_env = \"RP_OPS_GW_EU\"\n\
         [[projects]]\nname = \"gw-us\"\nregion = \"us\"\nretention = \"zdr\"\ndefault = true\napi_key_sha256 = [\"{}\"]\nupstream_api_key_env = \"RP_OPS_GW_US\"\n",
        upstream_table(&eu, &us),
        sha256_hex(KEY_EU),
        sha256_hex(KEY_US)
    );
    let p = Proxy::start_in(
        &dir,
        "a",
        &body,
        &[("RP_OPS_GW_EU", UP_EU), ("RP_OPS_GW_US", UP_US)],
    )
    .await;

    let r = p
        .chat(
            &[("Authorization", &format!("Bearer {KEY_EU}"))],
            &chat_json(false, "eu key"),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    r.assert_residency("allow", "gw-eu", "eu");
    let r = p
        .chat(
            &[("Authorization", &format!("Bearer {KEY_US}"))],
            &chat_json(false, "us key"),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    r.assert_residency("allow", "gw-us", "us");
    let e = eu.requests();
    let u = us.requests();
    assert_eq!((e.len(), u.len()), (1, 1));
    assert_eq!(
        e[0].header("authorization").as_deref(),
        Some(format!("Bearer {UP_EU}").as_str())
    );
    assert_eq!(
        u[0].header("authorization").as_deref(),
        Some(format!("Bearer {UP_US}").as_str())
    );
    for rec in e.iter().chain(u.iter()) {
        for (_, v) in &rec.headers {
            let v = String::from_utf8_lossy(v);
            assert!(
                !v.contains("sk-gw-client"),
                "a client key reached the upstream: {v}"
            );
        }
    }

    // Unknown key (and no key): 401 without reading the body, even though the default
    // project exists.
    let r = p
        .chat(
            &[("Authorization", "Bearer sk-unknown-0000")],
            &chat_json(false, "x"),
        )
        .await;
    r.assert_error(401, "invalid_api_key");
    let r = p.chat(&[], &chat_json(false, "x")).await;
    r.assert_error(401, "invalid_api_key");

    let mut s = TcpStream::connect(p.addr).await.unwrap();
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer sk-unknown-1111\r\n\
         Content-Type: application/json\r\nContent-Length: 1000000\r\n\r\n",
        p.addr
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(br#"{"model":"gpt-4o-2024-08-06","messages":[{"role":"user","content":""#)
        .await
        .unwrap();
    let t0 = Instant::now();
    let raw = read_until_close(&mut s, Duration::from_secs(3)).await;
    let took = t0.elapsed();
    assert_eq!(
        status_of(&raw),
        Some(401),
        "{:?} after {took:?}",
        String::from_utf8_lossy(&raw)
    );
    assert_eq!(body_of(&raw)["error"]["code"], "invalid_api_key");
    assert!(
        took < Duration::from_millis(1000),
        "401 after {took:?}: the proxy waited for the body"
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        eu.request_count() + us.request_count(),
        2,
        "nothing more reached an upstream"
    );
}

// ---------------------------------------------------------------------------------------------
// 6. Idle memory
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_rss_is_small() {
    let (eu, us) = mocks().await;
    let dir = TempDir::new("ops-rss");
    let p = Proxy::start_in(&dir, "a", &app_config(&eu, &us, ""), &[]).await;
    for i in 0..20 {
        let r = p.chat(&[], &chat_json(i % 2 == 0, "rss")).await;
        assert_eq!(r.status, 200);
    }
    let _ = p.metrics().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let status = std::fs::read_to_string(format!("/proc/{}/status", p.pid())).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    let threads = status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .unwrap_or("?")
        .trim()
        .to_string();
    println!(
        "IDLE RSS ({} build): {:.1} MiB ({kib} KiB), {threads} threads",
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
        kib as f64 / 1024.0
    );
    assert!(kib < 64 * 1024, "idle RSS {kib} KiB");
}
