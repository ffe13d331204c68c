//! Black-box tests of the operational features, driving the real `residency-proxy` binary
//! against recording mocks: admin endpoints and metrics, JSON request logs without secrets,
//! the hash-chained audit log, hot reload (file change and SIGHUP, in-flight requests, invalid
//! configs), graceful shutdown, timeouts and limits, TLS on the listener, the shared-gateway
//! key check, and the idle memory footprint.
//!
//! Run with `--nocapture` to see the measured reload times and RSS.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{build_request, send_raw, sha256_hex, Conn, MockUpstream, Resp, TempDir, BIN};
use http_body_util::{BodyExt, Full};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

// ---------------------------------------------------------------------------------------------
// A process harness that keeps the child (exit status, signals, config rewrites, restarts).
// ---------------------------------------------------------------------------------------------

/// A running `residency-proxy serve`; killed on drop.
struct Proc {
    child: Child,
    pid: u32,
    addr: SocketAddr,
    admin: SocketAddr,
    config: PathBuf,
    stderr_path: PathBuf,
}

fn config_text(body: &str) -> String {
    format!("listen = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n{body}")
}

impl Proc {
    /// Writes `dir/config.toml` (listeners on port 0, then `body`) and starts the binary on
    /// it; stderr goes to `dir/stderr-<tag>.log`.
    async fn start(dir: &TempDir, tag: &str, body: &str, env: &[(&str, &str)]) -> Proc {
        let config = dir.path().join("config.toml");
        std::fs::write(&config, config_text(body)).unwrap();
        Proc::start_at(dir, tag, config, env).await
    }

    /// Starts the binary on an existing config file (e.g. a symlink).
    async fn start_at(dir: &TempDir, tag: &str, config: PathBuf, env: &[(&str, &str)]) -> Proc {
        let stderr_path = dir.path().join(format!("stderr-{tag}.log"));
        let stderr = std::fs::File::create(&stderr_path).unwrap();
        let mut cmd = Command::new(BIN);
        cmd.arg("serve")
            .arg("--config")
            .arg(&config)
            .env_remove("RESIDENCY_CONFIG")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr))
            .kill_on_drop(true);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let pid = child.id().unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let deadline = Instant::now() + Duration::from_secs(20);
        let (addr, admin) = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, lines.next_line()).await {
                Ok(Ok(Some(line))) => {
                    if let Some(a) = common::parse_listening(&line) {
                        break a;
                    }
                }
                other => panic!(
                    "no listening line ({other:?}); stderr:\n{}",
                    std::fs::read_to_string(&stderr_path).unwrap_or_default()
                ),
            }
        };
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Proc {
            child,
            pid,
            addr,
            admin,
            config,
            stderr_path,
        }
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// Replaces the config file (listeners on port 0, then `body`).
    fn rewrite_config(&self, body: &str) {
        std::fs::write(&self.config, config_text(body)).unwrap();
    }

    fn signal(&self, sig: &str) {
        let st = std::process::Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.pid.to_string())
            .status()
            .unwrap();
        assert!(st.success(), "kill -{sig} {}", self.pid);
    }

    /// Waits for the process to exit, at most `limit`.
    async fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        tokio::time::timeout(limit, self.child.wait())
            .await
            .ok()
            .map(|r| r.unwrap())
    }

    async fn send(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Resp {
        send_raw(self.addr, &build_request(self.addr, method, path, headers, body)).await
    }

    async fn chat(&self, headers: &[(&str, &str)], body: &str) -> Resp {
        let mut h = vec![("Content-Type", "application/json")];
        h.extend_from_slice(headers);
        self.send("POST", "/v1/chat/completions", &h, body.as_bytes())
            .await
    }

    async fn admin_get(&self, path: &str) -> Resp {
        send_raw(self.admin, &build_request(self.admin, "GET", path, &[], b"")).await
    }

    async fn metrics(&self) -> String {
        let r = self.admin_get("/metrics").await;
        assert_eq!(r.status, 200, "{r:?}");
        r.text()
    }
}

/// A chat completion: eligible EU/US snapshot, `store` as given, `content` as the message.
fn chat_body(store: bool, content: &str) -> String {
    serde_json::json!({
        "model": "gpt-4o-2024-08-06",
        "store": store,
        "messages": [{"role": "user", "content": content}],
    })
    .to_string()
}

fn stream_body() -> String {
    serde_json::json!({
        "model": "gpt-4o-2024-08-06",
        "stream": true,
        "messages": [{"role": "user", "content": "stream please"}],
    })
    .to_string()
}

/// `[upstream]` routing eu and us to the two mocks.
fn upstream(eu: &MockUpstream, us: &MockUpstream) -> String {
    format!(
        "[upstream]\nbase_urls = {{ eu = \"{}\", us = \"{}\" }}\n",
        eu.base_url(),
        us.base_url()
    )
}

/// One default ZDR project in `region`.
fn app_project(region: &str) -> String {
    format!("[[projects]]\nname = \"app\"\nregion = \"{region}\"\nretention = \"zdr\"\ndefault = true\n")
}

async fn mocks() -> (MockUpstream, MockUpstream) {
    (MockUpstream::start("eu").await, MockUpstream::start("us").await)
}

/// One sample of the Prometheus text: name, labels, value.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

fn parse_metrics(text: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap();
        let value: f64 = value.parse().unwrap_or(f64::NAN);
        let (name, labels) = match series.split_once('{') {
            None => (series.to_string(), BTreeMap::new()),
            Some((name, rest)) => {
                let body = rest.strip_suffix('}').unwrap();
                let mut labels = BTreeMap::new();
                let mut s = body;
                while !s.is_empty() {
                    let (k, rest) = s.split_once("=\"").unwrap();
                    let mut v = String::new();
                    let mut chars = rest.char_indices();
                    let mut end = rest.len();
                    while let Some((i, c)) = chars.next() {
                        match c {
                            '\\' => {
                                if let Some((_, n)) = chars.next() {
                                    v.push(n);
                                }
                            }
                            '"' => {
                                end = i;
                                break;
                            }
                            c => v.push(c),
                        }
                    }
                    labels.insert(k.to_string(), v);
                    s = rest[end + 1..].trim_start_matches(',');
                }
                (name.to_string(), labels)
            }
        };
        out.push(Sample { name, labels, value });
    }
    out
}

fn sample<'a>(samples: &'a [Sample], name: &str, labels: &[(&str, &str)]) -> Option<&'a Sample> {
    samples.iter().find(|s| {
        s.name == name
            && labels
                .iter()
                .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
    })
}

/// Polls `f` every 25 ms until it is true or `limit` passes; returns whether it became true.
async fn eventually<F: FnMut() -> bool>(limit: Duration, mut f: F) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if f() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// The JSON lines of a `[log] format = "json"` stderr (every line must be JSON).
fn json_lines(stderr: &str) -> Vec<Value> {
    stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("log line is not JSON ({e}): {l}")))
        .collect()
}

fn request_lines(stderr: &str) -> Vec<Value> {
    json_lines(stderr)
        .into_iter()
        .filter(|v| v["target"] == "residency_proxy::request")
        .collect()
}

/// Reads an HTTP/1.1 response from a raw stream until EOF or `limit`, tolerating a reset
/// after the response; returns the bytes read.
async fn read_until_close(stream: &mut TcpStream, limit: Duration) -> Vec<u8> {
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(limit, async {
        let mut tmp = [0u8; 8192];
        loop {
            match stream.read(&mut tmp).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    buf.extend_from_slice(&tmp[..n]);
                    if response_complete(&buf) {
                        break;
                    }
                }
            }
        }
    })
    .await;
    buf
}

/// Whether `buf` holds a whole response with a Content-Length body.
fn response_complete(buf: &[u8]) -> bool {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
    let len = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok());
    len.is_some_and(|n| buf.len() >= end + 4 + n)
}

fn status_of(raw: &[u8]) -> Option<u16> {
    let s = String::from_utf8_lossy(raw);
    s.lines().next()?.split(' ').nth(1)?.parse().ok()
}

fn body_of(raw: &[u8]) -> Value {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    serde_json::from_slice(&raw[end + 4..])
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(raw)))
}

// ---------------------------------------------------------------------------------------------
// 1. Admin endpoints and metrics
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_health_ready_and_metrics() {
    let (eu, us) = mocks().await;
    let dir = TempDir::new("ops-admin");
    let p = Proc::start(
        &dir,
        "a",
        &format!("{}\n{}", upstream(&eu, &us), app_project("eu")),
        &[],
    )
    .await;

    let h = p.admin_get("/healthz").await;
    assert_eq!(h.status, 200, "{h:?}");
    let r = p.admin_get("/readyz").await;
    assert_eq!(r.status, 200, "/readyz while serving: {r:?}");

    // A rewritten request (store=true under ZDR) and a raw path outside the catalog.
    let res = p.chat(&[], &chat_body(true, "metrics")).await;
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
        upstream(&eu, &us)
    );
    let p = Proc::start(&dir, "a", &body, &[("RP_OPS_UPSTREAM_KEY", UPSTREAM_SECRET)]).await;
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
    let r1 = p.chat(&refs(&h1), &chat_body(true, CONTENT_CANARY)).await;
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
    let mut sb: Value = serde_json::from_str(&stream_body()).unwrap();
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
        eventually(Duration::from_secs(5), || request_lines(&p.stderr()).len() >= 4).await,
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

fn audit_lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn verify(path: &Path) -> std::process::Output {
    common::run(&["audit", "verify", path.to_str().unwrap()], &[], None)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_log_is_hash_chained_verifiable_and_continues_after_restart() {
    let (eu, us) = mocks().await;
    let dir = TempDir::new("ops-audit");
    let audit = dir.path().join("audit.jsonl");
    let body = format!(
        "[timeouts]\nshutdown_drain_delay_secs = 0\n[audit]\npath = \"{}\"\n{}\n{}",
        audit.display(),
        upstream(&eu, &us),
        app_project("eu")
    );
    let mut p = Proc::start(&dir, "a", &body, &[]).await;
    let allow = p
        .chat(&[("x-request-id", "aud-1")], &chat_body(false, CONTENT_CANARY))
        .await;
    assert_eq!(allow.status, 200, "{allow:?}");
    allow.assert_residency("allow", "app", "eu");
    let rewrite = p
        .chat(&[("x-request-id", "aud-2")], &chat_body(true, CONTENT_CANARY))
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
        eventually(Duration::from_secs(3), || audit_lines(&audit).len() >= 6).await,
        "audit records not written: {:?}",
        std::fs::read_to_string(&audit)
    );
    let recs = audit_lines(&audit);
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

    let out = verify(&audit);
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
    let out = verify(&audit);
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
    let p2 = Proc::start(&dir, "b", &body, &[]).await;
    let r = p2
        .chat(&[("x-request-id", "aud-4")], &chat_body(false, "again"))
        .await;
    assert_eq!(r.status, 200);
    let r = p2
        .chat(&[("x-request-id", "aud-5")], &chat_body(true, "again"))
        .await;
    assert_eq!(r.status, 200);
    assert!(
        eventually(Duration::from_secs(3), || audit_lines(&audit).len() >= 10).await,
        "audit records after restart not written: {:?}",
        std::fs::read_to_string(&audit)
    );
    let recs = audit_lines(&audit);
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
    let out = verify(&audit);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(0), "verify after restart: {stdout}");
    assert!(stdout.contains("10 record"), "{stdout}");
}

// ---------------------------------------------------------------------------------------------
// 4. Hot reload
// ---------------------------------------------------------------------------------------------

fn reload_body(eu: &MockUpstream, us: &MockUpstream, region: &str) -> String {
    format!(
        "[log]\nformat = \"json\"\n{}\n{}",
        upstream(eu, us),
        app_project(region)
    )
}

/// The `elapsed_ms` of the last "config reloaded" log line with `trigger`.
fn reload_log(stderr: &str, trigger: &str) -> Option<f64> {
    json_lines(stderr)
        .iter()
        .rev()
        .find(|l| {
            l["message"]
                .as_str()
                .is_some_and(|m| m.contains("config reloaded"))
                && l["trigger"] == trigger
        })
        .and_then(|l| l["elapsed_ms"].as_f64())
}

/// `reload_log`, waiting up to 2 s: the swap comes before its log line, so a request can see the
/// new config a moment before the line is written.
async fn wait_reload_log(p: &Proc, trigger: &str) -> Option<f64> {
    let mut found = None;
    eventually(Duration::from_secs(2), || {
        found = reload_log(&p.stderr(), trigger);
        found.is_some()
    })
    .await;
    found
}

async fn reload_count(p: &Proc, result: &str) -> f64 {
    let text = p.metrics().await;
    sample(
        &parse_metrics(&text),
        "residency_proxy_config_reloads_total",
        &[("result", result)],
    )
    .map_or(0.0, |s| s.value)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_on_file_change_routes_new_requests_and_keeps_in_flight_ones() {
    let (eu, us) = mocks().await;
    let dir = TempDir::new("ops-reload-file");
    let p = Proc::start(&dir, "a", &reload_body(&eu, &us, "eu"), &[]).await;
    let r = p.chat(&[], &chat_body(false, "before")).await;
    assert_eq!(r.header("x-mock-upstream"), Some("eu"), "{r:?}");
    r.assert_residency("allow", "app", "eu");

    // A request in flight at the upstream (delayed head) while the config changes.
    let addr = p.addr;
    let inflight = tokio::spawn(async move {
        let req = build_request(
            addr,
            "POST",
            "/v1/chat/completions",
            &[
                ("Content-Type", "application/json"),
                ("x-mock-behavior", "delay:1500"),
            ],
            chat_body(false, "in flight").as_bytes(),
        );
        send_raw(addr, &req).await
    });
    let got = eu.wait_for(2, Duration::from_secs(3)).await;
    assert_eq!(got.len(), 2, "the in-flight request reached eu");

    let written = Instant::now();
    p.rewrite_config(&reload_body(&eu, &us, "us"));
    // The first request routed by the new config.
    let mut routed = None;
    while written.elapsed() < Duration::from_secs(3) {
        let r = p.chat(&[], &chat_body(false, "after")).await;
        if r.header("x-mock-upstream") == Some("us") {
            r.assert_residency("allow", "app", "us");
            routed = Some(written.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let routed = routed.unwrap_or_else(|| {
        panic!(
            "new requests not routed to us within 3 s; stderr:\n{}",
            p.stderr()
        )
    });
    assert!(routed < Duration::from_secs(2), "reload took {routed:?}");

    let old = inflight.await.unwrap();
    assert_eq!(old.status, 200, "the in-flight request completes: {old:?}");
    assert_eq!(old.header("x-mock-upstream"), Some("eu"), "{old:?}");
    old.assert_residency("allow", "app", "eu");
    assert_eq!(
        us.requests()
            .iter()
            .filter(|r| r.body.windows(9).any(|w| w == b"in flight"))
            .count(),
        0
    );

    let elapsed = wait_reload_log(&p, "file_change")
        .await
        .unwrap_or_else(|| panic!("no \"config reloaded\" line for file_change:\n{}", p.stderr()));
    assert_eq!(reload_count(&p, "success").await, 1.0);
    println!(
        "RELOAD file_change: write -> first request on new config {:.1} ms; reload itself elapsed_ms={elapsed:.3}",
        routed.as_secs_f64() * 1000.0
    );
}

/// The "config reloaded" log lines so far.
fn reloaded_lines(stderr: &str) -> Vec<Value> {
    json_lines(stderr)
        .into_iter()
        .filter(|l| {
            l["message"]
                .as_str()
                .is_some_and(|m| m.contains("config reloaded"))
        })
        .collect()
}

/// Writes `text` as the whole config file, sends SIGHUP (a rewrite of the same size within
/// the file's mtime granularity is not seen by the watcher) and waits for the reload; its line.
async fn reload_to(p: &Proc, text: &str) -> Value {
    let before = reloaded_lines(&p.stderr()).len();
    std::fs::write(&p.config, text).unwrap();
    p.signal("HUP");
    assert!(
        eventually(Duration::from_secs(5), || reloaded_lines(&p.stderr()).len()
            > before)
        .await,
        "no reload:\n{}",
        p.stderr()
    );
    reloaded_lines(&p.stderr()).pop().unwrap()
}

/// A reload that leaves the upstream settings alone (here it changes `max_body_bytes`) keeps the
/// pool and its warm connection: the mock sees no second connection. One that changes them (the
/// pool size) builds a new pool for new requests, and the old pool's connection is closed once
/// no request uses it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_keeps_the_upstream_pool_unless_its_settings_change() {
    let (eu, us) = mocks().await;
    let dir = TempDir::new("ops-reload-pool");
    let p = Proc::start(&dir, "a", &reload_body(&eu, &us, "eu"), &[]).await;
    let chat = || async { p.chat(&[], &chat_body(false, "pool")).await };
    assert_eq!(chat().await.header("x-mock-upstream"), Some("eu"));
    assert_eq!(eu.connections(), 1);

    let kept = reload_to(
        &p,
        &config_text(&format!(
            "[limits]\nmax_body_bytes = 1000000\n{}",
            reload_body(&eu, &us, "eu")
        )),
    )
    .await;
    for _ in 0..3 {
        assert_eq!(chat().await.header("x-mock-upstream"), Some("eu"));
    }
    assert_eq!(
        eu.connections(),
        1,
        "the reload dropped the warm upstream connection"
    );
    assert_eq!(kept["upstream_pool"], "kept", "{kept}");

    let body = format!(
        "[log]\nformat = \"json\"\n{}pool_max_idle_per_host = 7\n{}",
        upstream(&eu, &us),
        app_project("eu")
    );
    let rebuilt = reload_to(&p, &config_text(&body)).await;
    assert_eq!(rebuilt["upstream_pool"], "rebuilt", "{rebuilt}");
    assert_eq!(chat().await.header("x-mock-upstream"), Some("eu"));
    assert_eq!(eu.connections(), 2, "new requests use the new pool");
    assert!(
        eventually(Duration::from_secs(3), || eu.open_connections() == 1).await,
        "the old pool's connection is still open ({} open)",
        eu.open_connections()
    );
}

/// A reload that changes a startup-only key names it in the log and in a metric, and the
/// process keeps running as it started (here: still on its first listener).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_names_startup_only_changes() {
    let (eu, us) = mocks().await;
    let dir = TempDir::new("ops-reload-startup");
    let p = Proc::start(&dir, "a", &reload_body(&eu, &us, "eu"), &[]).await;
    // Each row: the changed text and the key the log must name.
    let rows: [(&str, &str); 4] = [
        (
            "listen = \"127.0.0.1:1\"\nadmin_listen = \"127.0.0.1:0\"\n",
            "listen",
        ),
        (
            "listen = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\nworkers = 3\n",
            "workers",
        ),
        (
            "listen = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n[limits]\nmax_connections = 5\n",
            "limits.max_connections",
        ),
        (
            "listen = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n[timeouts]\nrequest_header_secs = 3\n",
            "timeouts.request_header_secs",
        ),
    ];
    for (head, key) in rows {
        reload_to(&p, &format!("{head}{}", reload_body(&eu, &us, "eu"))).await;
        let said = format!("`{key}` changed: takes effect at restart");
        assert!(p.stderr().contains(&said), "no {said:?} in:\n{}", p.stderr());
        let text = p.metrics().await;
        let n = sample(
            &parse_metrics(&text),
            "residency_proxy_config_restart_required_total",
            &[("key", key)],
        )
        .map_or(0.0, |s| s.value);
        assert!(n >= 1.0, "{key}: not counted:\n{text}");
    }
    // Still serving where it started, on the reloaded config.
    let r = p.chat(&[], &chat_body(false, "after")).await;
    assert_eq!(r.status, 200, "{r:?}");
    // One reload a row at least (the file watcher may see a rewrite too).
    assert!(reload_count(&p, "success").await >= 4.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_on_sighup() {
    let (eu, us) = mocks().await;
    let dir = TempDir::new("ops-reload-hup");
    let p = Proc::start(&dir, "a", &reload_body(&eu, &us, "eu"), &[]).await;
    let r = p.chat(&[], &chat_body(false, "before")).await;
    assert_eq!(r.header("x-mock-upstream"), Some("eu"), "{r:?}");

    // Change the file but keep its modification time and size, so only SIGHUP can notice.
    let mtime = std::fs::metadata(&p.config).unwrap().modified().unwrap();
    let new = reload_body(&eu, &us, "us");
    assert_eq!(new.len(), reload_body(&eu, &us, "eu").len());
    p.rewrite_config(&new);
    let f = std::fs::File::options().write(true).open(&p.config).unwrap();
    f.set_modified(mtime).unwrap();
    drop(f);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let r = p.chat(&[], &chat_body(false, "still eu")).await;
    assert_eq!(
        r.header("x-mock-upstream"),
        Some("eu"),
        "no reload without a trigger: {r:?}"
    );

    let sent = Instant::now();
    p.signal("HUP");
    let mut routed = None;
    while sent.elapsed() < Duration::from_secs(3) {
        let r = p.chat(&[], &chat_body(false, "after")).await;
        if r.header("x-mock-upstream") == Some("us") {
            routed = Some(sent.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let routed =
        routed.unwrap_or_else(|| panic!("SIGHUP did not reload within 3 s; stderr:\n{}", p.stderr()));
    let elapsed = wait_reload_log(&p, "sighup")
        .await
        .unwrap_or_else(|| panic!("no \"config reloaded\" line for sighup:\n{}", p.stderr()));
    assert_eq!(reload_count(&p, "success").await, 1.0);
    println!(
        "RELOAD sighup: signal -> first request on new config {:.1} ms; reload itself elapsed_ms={elapsed:.3}",
        routed.as_secs_f64() * 1000.0
    );
}

/// The Kubernetes ConfigMap layout: `config.toml -> ..data/config.toml`, `..data -> ..TS`;
/// an update writes a new `..TS2` directory and renames a new `..data` link over the old one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_follows_a_configmap_symlink_swap() {
    use std::os::unix::fs::symlink;
    let (eu, us) = mocks().await;
    let dir = TempDir::new("ops-reload-cm");
    let cm = dir.path().join("cm");
    std::fs::create_dir_all(cm.join("..2026_01_01")).unwrap();
    std::fs::write(
        cm.join("..2026_01_01/config.toml"),
        config_text(&reload_body(&eu, &us, "eu")),
    )
    .unwrap();
    symlink("..2026_01_01", cm.join("..data")).unwrap();
    symlink("..data/config.toml", cm.join("config.toml")).unwrap();
    let p = Proc::start_at(&dir, "a", cm.join("config.toml"), &[]).await;
    let r = p.chat(&[], &chat_body(false, "before")).await;
    assert_eq!(r.header("x-mock-upstream"), Some("eu"), "{r:?}");

    std::fs::create_dir_all(cm.join("..2026_01_02")).unwrap();
    std::fs::write(
        cm.join("..2026_01_02/config.toml"),
        config_text(&reload_body(&eu, &us, "us")),
    )
    .unwrap();
    symlink("..2026_01_02", cm.join("..data_tmp")).unwrap();
    let swapped = Instant::now();
    std::fs::rename(cm.join("..data_tmp"), cm.join("..data")).unwrap();
    std::fs::remove_dir_all(cm.join("..2026_01_01")).unwrap();
    let mut routed = None;
    while swapped.elapsed() < Duration::from_secs(3) {
        let r = p.chat(&[], &chat_body(false, "after")).await;
        if r.header("x-mock-upstream") == Some("us") {
            routed = Some(swapped.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let routed = routed.unwrap_or_else(|| {
        panic!(
            "the ConfigMap symlink swap was not picked up within 3 s; stderr:\n{}",
            p.stderr()
        )
    });
    assert!(
        wait_reload_log(&p, "file_change").await.is_some(),
        "{}",
        p.stderr()
    );
    println!(
        "RELOAD configmap swap: swap -> first request on new config {:.1} ms",
        routed.as_secs_f64() * 1000.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_reload_is_refused_and_the_old_config_keeps_serving() {
    let (eu, us) = mocks().await;
    let dir = TempDir::new("ops-reload-bad");
    let p = Proc::start(&dir, "a", &reload_body(&eu, &us, "eu"), &[]).await;
    let r = p.chat(&[], &chat_body(false, "before")).await;
    assert_eq!(r.header("x-mock-upstream"), Some("eu"));

    p.rewrite_config(&reload_body(&eu, &us, "uk"));
    let mut failures = 0.0;
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        failures = reload_count(&p, "failure").await;
        if failures >= 1.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        failures,
        1.0,
        "reload failure not counted; stderr:\n{}",
        p.stderr()
    );
    let text = p.metrics().await;
    let s = parse_metrics(&text);
    assert_eq!(
        sample(&s, "residency_proxy_config_last_reload_success", &[]).map(|x| x.value),
        Some(0.0),
        "{text}"
    );
    assert_eq!(reload_count(&p, "success").await, 0.0);
    // The old config keeps serving.
    for _ in 0..3 {
        let r = p.chat(&[], &chat_body(false, "still")).await;
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(r.header("x-mock-upstream"), Some("eu"), "{r:?}");
        r.assert_residency("allow", "app", "eu");
    }
    assert_eq!(us.request_count(), 0);
    let r = p.admin_get("/readyz").await;
    assert_eq!(r.status, 200, "still ready on the old config");
    // The problem is logged, naming the bad value.
    let stderr = p.stderr();
    let logged = json_lines(&stderr).into_iter().any(|l| {
        let s = l.to_string();
        l["level"]
            .as_str()
            .is_some_and(|lv| lv.eq_ignore_ascii_case("error"))
            && s.contains("uk")
    });
    assert!(logged, "no error log naming the problem:\n{stderr}");

    // A fixed config is taken again and the gauge recovers.
    p.rewrite_config(&reload_body(&eu, &us, "us"));
    assert!(
        {
            let mut ok = false;
            let deadline = Instant::now() + Duration::from_secs(3);
            while Instant::now() < deadline {
                if reload_count(&p, "success").await >= 1.0 {
                    ok = true;
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            ok
        },
        "the fixed config was not loaded; stderr:\n{}",
        p.stderr()
    );
    let s = parse_metrics(&p.metrics().await);
    assert_eq!(
        sample(&s, "residency_proxy_config_last_reload_success", &[]).map(|x| x.value),
        Some(1.0)
    );
    let r = p.chat(&[], &chat_body(false, "now us")).await;
    assert_eq!(r.header("x-mock-upstream"), Some("us"), "{r:?}");
}

// ---------------------------------------------------------------------------------------------
// 5. Graceful shutdown
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_an_in_flight_stream_and_exits_zero() {
    let (eu, us) = mocks().await;
    let dir = TempDir::new("ops-term");
    let body = format!(
        "[timeouts]\nshutdown_grace_secs = 8\nshutdown_drain_delay_secs = 0\n{}\n{}",
        upstream(&eu, &us),
        app_project("eu")
    );
    let mut p = Proc::start(&dir, "a", &body, &[]).await;
    let req = build_request(
        p.addr,
        "POST",
        "/v1/chat/completions",
        &[
            ("Content-Type", "application/json"),
            ("x-mock-behavior", "slow-sse"),
        ],
        stream_body().as_bytes(),
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
    let st = p
        .wait_exit(Duration::from_secs(9))
        .await
        .expect("exit within the grace period");
    assert_eq!(st.code(), Some(0), "{st:?}; stderr:\n{}", p.stderr());
    println!(
        "SHUTDOWN: stream drained and process exited {:?} after SIGTERM",
        t0.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_a_hung_request_exits_zero_after_the_grace_period() {
    let (eu, us) = mocks().await;
    let dir = TempDir::new("ops-term-hang");
    let body = format!(
        "[timeouts]\nshutdown_grace_secs = 1\nshutdown_drain_delay_secs = 0\nupstream_response_secs = 60\n{}\n{}",
        upstream(&eu, &us),
        app_project("eu")
    );
    let mut p = Proc::start(&dir, "a", &body, &[]).await;
    let req = build_request(
        p.addr,
        "POST",
        "/v1/chat/completions",
        &[("Content-Type", "application/json"), ("x-mock-behavior", "hang")],
        chat_body(false, "hang").as_bytes(),
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
// 6. Timeouts and limits
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_response_timeout_is_504() {
    let (eu, us) = mocks().await;
    let dir = TempDir::new("ops-504");
    let body = format!(
        "[timeouts]\nupstream_response_secs = 1\n{}\n{}",
        upstream(&eu, &us),
        app_project("eu")
    );
    let p = Proc::start(&dir, "a", &body, &[]).await;
    let t0 = Instant::now();
    let r = p
        .chat(&[("x-mock-behavior", "hang")], &chat_body(false, "hang"))
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
    let body = format!(
        "[limits]\nmax_concurrent_requests = 1\n[timeouts]\nupstream_response_secs = 30\n{}\n{}",
        upstream(&eu, &us),
        app_project("eu")
    );
    let p = Proc::start(&dir, "a", &body, &[]).await;
    let req = build_request(
        p.addr,
        "POST",
        "/v1/chat/completions",
        &[("Content-Type", "application/json"), ("x-mock-behavior", "hang")],
        chat_body(false, "hang").as_bytes(),
    );
    let hung = Conn::open(p.addr, &req).await;
    assert_eq!(eu.wait_for(1, Duration::from_secs(3)).await.len(), 1);
    let r = p.chat(&[], &chat_body(false, "second")).await;
    r.assert_error(503, "proxy_overloaded");
    assert_eq!(eu.request_count(), 1, "the refused request was not forwarded");
    // The slot comes back once the hung request is gone.
    drop(hung);
    let mut ok = false;
    for _ in 0..40 {
        let r = p.chat(&[], &chat_body(false, "third")).await;
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
    let body = format!(
        "[limits]\nmax_concurrent_requests = 1\n{}\n{}",
        upstream(&eu, &us),
        app_project("eu")
    );
    let p = Proc::start(&dir, "a", &body, &[]).await;
    let req = build_request(
        p.addr,
        "POST",
        "/v1/chat/completions",
        &[
            ("Content-Type", "application/json"),
            ("x-mock-behavior", "slow-sse"),
        ],
        stream_body().as_bytes(),
    );
    let mut c = Conn::open(p.addr, &req).await;
    let (status, _) = c.head().await.expect("stream head");
    assert_eq!(status, 200);
    assert!(c.chunk().await.is_some(), "first event");
    let r = p.chat(&[], &chat_body(false, "while streaming")).await;
    let refused = r.status == 503;
    // Let the stream finish, then the slot is free again.
    while c.chunk().await.is_some() {}
    let after = p.chat(&[], &chat_body(false, "after the stream")).await;
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
    let body = format!(
        "[timeouts]\nrequest_body_secs = 1\n{}\n{}",
        upstream(&eu, &us),
        app_project("eu")
    );
    let p = Proc::start(&dir, "a", &body, &[]).await;
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
    let p = Proc::start(
        &dir,
        "a",
        &format!("{}\n{}", upstream(&eu, &us), app_project("eu")),
        &[],
    )
    .await;
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

// ---------------------------------------------------------------------------------------------
// 7. TLS on the listener
// ---------------------------------------------------------------------------------------------

struct TestCert {
    der: rustls::pki_types::CertificateDer<'static>,
}

fn write_cert(cert: &Path, key: &Path) -> TestCert {
    let ck =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    std::fs::write(cert, ck.cert.pem()).unwrap();
    std::fs::write(key, ck.signing_key.serialize_pem()).unwrap();
    TestCert {
        der: ck.cert.der().clone(),
    }
}

type Tls = tokio_rustls::client::TlsStream<TcpStream>;

async fn tls_connect(addr: SocketAddr, trust: &TestCert, alpn: &[u8]) -> std::io::Result<Tls> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(trust.der.clone()).unwrap();
    let mut cfg =
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
    cfg.alpn_protocols = vec![alpn.to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(cfg));
    let tcp = TcpStream::connect(addr).await?;
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    tokio::time::timeout(Duration::from_secs(5), connector.connect(name, tcp))
        .await
        .map_err(|_| std::io::Error::other("TLS handshake timed out"))?
}

/// Sends one chat request over `tls` with HTTP/1.1 or HTTP/2 (per the negotiated ALPN);
/// returns status, `x-mock-upstream`, `x-residency-decision`, body.
async fn tls_chat(tls: Tls, h2: bool, content: &str) -> (u16, Option<String>, Option<String>, Bytes) {
    let io = hyper_util::rt::TokioIo::new(tls);
    let body = Full::new(Bytes::from(chat_body(false, content)));
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
    let first = write_cert(&cert, &key);
    let body = format!(
        "[tls]\ncert_file = \"{}\"\nkey_file = \"{}\"\n{}\n{}",
        cert.display(),
        key.display(),
        upstream(&eu, &us),
        app_project("eu")
    );
    let p = Proc::start(&dir, "a", &body, &[]).await;

    let tls = tls_connect(p.addr, &first, b"http/1.1")
        .await
        .expect("TLS handshake (http/1.1)");
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    let (status, up, decision, bytes) = tls_chat(tls, false, "over tls h1").await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&bytes));
    assert_eq!(up.as_deref(), Some("eu"));
    assert_eq!(decision.as_deref(), Some("allow"));

    // A renewed certificate, picked up by a reload: new connections see it.
    let second = write_cert(&cert, &key);
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
// 8. Shared gateway: client keys
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
        upstream(&eu, &us),
        sha256_hex(KEY_EU),
        sha256_hex(KEY_US)
    );
    let p = Proc::start(
        &dir,
        "a",
        &body,
        &[("RP_OPS_GW_EU", UP_EU), ("RP_OPS_GW_US", UP_US)],
    )
    .await;

    let r = p
        .chat(
            &[("Authorization", &format!("Bearer {KEY_EU}"))],
            &chat_body(false, "eu key"),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    r.assert_residency("allow", "gw-eu", "eu");
    let r = p
        .chat(
            &[("Authorization", &format!("Bearer {KEY_US}"))],
            &chat_body(false, "us key"),
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
            &chat_body(false, "x"),
        )
        .await;
    r.assert_error(401, "invalid_api_key");
    let r = p.chat(&[], &chat_body(false, "x")).await;
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
// 9. Idle memory
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_rss_is_small() {
    let (eu, us) = mocks().await;
    let dir = TempDir::new("ops-rss");
    let p = Proc::start(
        &dir,
        "a",
        &format!("{}\n{}", upstream(&eu, &us), app_project("eu")),
        &[],
    )
    .await;
    for i in 0..20 {
        let r = p.chat(&[], &chat_body(i % 2 == 0, "rss")).await;
        assert_eq!(r.status, 200);
    }
    let _ = p.metrics().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let status = std::fs::read_to_string(format!("/proc/{}/status", p.pid)).unwrap();
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
