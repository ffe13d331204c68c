//! Shared harness for the black-box tests: two recording mocks (regions eu and us), the real
//! `residency-proxy` binary started on a generated config, and a raw HTTP/1.1 client.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub use mock_openai::MockUpstream;
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

pub const BIN: &str = env!("CARGO_BIN_EXE_residency-proxy");

/// Client bearer tokens whose hashes select projects in [`STANDARD`].
pub const EU_CLIENT_KEY: &str = "sk-client-eu-zdr-0001";
pub const US_CLIENT_KEY: &str = "sk-client-us-0001";
/// The upstream keys the proxy injects for those projects.
pub const EU_UPSTREAM_KEY: &str = "sk-upstream-eu-SECRET";
pub const US_UPSTREAM_KEY: &str = "sk-upstream-us-SECRET";

pub fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

/// A unique, fresh directory under the system temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let dir = std::env::temp_dir().join(format!(
            "rp-test-{tag}-{}-{}-{nanos}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn write(&self, name: &str, contents: &str) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, contents).unwrap();
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The projects most tests use. Requests select them by client key or `OpenAI-Project`.
///
/// | project     | region | retention | selected by                          | notes |
/// |-------------|--------|-----------|--------------------------------------|-------|
/// | eu-zdr      | eu     | zdr       | EU_CLIENT_KEY, proj_eu, default      | injects EU_UPSTREAM_KEY, alias gpt-4o |
/// | us-std      | us     | default   | US_CLIENT_KEY, proj_us               | injects US_UPSTREAM_KEY |
/// | eu-mam      | eu     | MAM       | proj_eu_mam                          | store rewrite |
/// | eu-reject   | eu     | zdr       | proj_eu_reject                       | store = "reject" |
/// | eu-report   | eu     | zdr       | proj_eu_report                       | mode = "report" |
/// | eu-img      | eu     | zdr       | proj_eu_img                          | image_inputs = true |
/// | us-hipaa    | us     | zdr       | proj_us_hipaa                        | hipaa = true |
/// | us-zdr      | us     | zdr       | proj_us_zdr                          | |
pub fn standard_projects() -> String {
    format!(
        r#"
[[projects]]
name = "eu-zdr"
region = "eu"
retention = "zdr"
store = "rewrite"
mode = "enforce"
default = true
openai_project = "proj_eu"
api_key_sha256 = ["{eu}"]
upstream_api_key_env = "RP_TEST_UPSTREAM_KEY_EU"
aliases = {{ "gpt-4o" = "gpt-4o-2024-08-06" }}
image_inputs = false
hipaa = false

[[projects]]
name = "us-std"
region = "us"
retention = "default"
openai_project = "proj_us"
api_key_sha256 = ["{us}"]
upstream_api_key_env = "RP_TEST_UPSTREAM_KEY_US"

[[projects]]
name = "eu-mam"
region = "eu"
retention = "modified_abuse_monitoring"
store = "rewrite"
openai_project = "proj_eu_mam"

[[projects]]
name = "eu-reject"
region = "eu"
retention = "zdr"
store = "reject"
openai_project = "proj_eu_reject"

[[projects]]
name = "eu-report"
region = "eu"
retention = "zdr"
mode = "report"
openai_project = "proj_eu_report"

[[projects]]
name = "eu-img"
region = "eu"
retention = "zdr"
image_inputs = true
openai_project = "proj_eu_img"

[[projects]]
name = "us-hipaa"
region = "us"
retention = "zdr"
hipaa = true
openai_project = "proj_us_hipaa"

[[projects]]
name = "us-zdr"
region = "us"
retention = "zdr"
openai_project = "proj_us_zdr"
"#,
        eu = sha256_hex(EU_CLIENT_KEY),
        us = sha256_hex(US_CLIENT_KEY),
    )
}

/// The environment the standard projects need.
pub fn standard_env() -> Vec<(String, String)> {
    vec![
        ("RP_TEST_UPSTREAM_KEY_EU".into(), EU_UPSTREAM_KEY.into()),
        ("RP_TEST_UPSTREAM_KEY_US".into(), US_UPSTREAM_KEY.into()),
    ]
}

/// A running proxy; killed on drop.
pub struct Proxy {
    child: Child,
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    pub config: PathBuf,
    pub stderr_path: PathBuf,
    _dir: TempDir,
}

impl Proxy {
    /// Starts `residency-proxy serve --config FILE` where FILE is `listen`/`admin_listen` on
    /// port 0, then `body` verbatim (tables: `[upstream]`, `[limits]`, `[[projects]]`, ...).
    pub async fn start(body: &str, env: &[(String, String)]) -> Proxy {
        let dir = TempDir::new("proxy");
        let config = dir.write(
            "config.toml",
            &format!("listen = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n{body}"),
        );
        let stderr_path = dir.path().join("stderr.log");
        let stderr = std::fs::File::create(&stderr_path).unwrap();
        let mut cmd = Command::new(BIN);
        cmd.arg("serve")
            .arg("--config")
            .arg(&config)
            .env_remove("RESIDENCY_CONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr))
            .kill_on_drop(true);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let deadline = Instant::now() + Duration::from_secs(30);
        let (addr, admin) = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = match tokio::time::timeout(left, lines.next_line()).await {
                Ok(Ok(Some(line))) => line,
                Ok(_) => panic!(
                    "residency-proxy exited before listening ({:?}); stderr:\n{}\nconfig:\n{}",
                    child.try_wait(),
                    std::fs::read_to_string(&stderr_path).unwrap_or_default(),
                    std::fs::read_to_string(&config).unwrap_or_default()
                ),
                Err(_) => panic!(
                    "residency-proxy did not print its listening line in 30 s; stderr:\n{}",
                    std::fs::read_to_string(&stderr_path).unwrap_or_default()
                ),
            };
            if let Some(parsed) = parse_listening(&line) {
                break parsed;
            }
        };
        // Keep draining stdout so the child never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Proxy {
            child,
            addr,
            admin,
            config,
            stderr_path,
            _dir: dir,
        }
    }

    /// What the proxy wrote to stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// `listening proxy=127.0.0.1:PORT admin=127.0.0.1:PORT` -> the two addresses.
pub fn parse_listening(line: &str) -> Option<(SocketAddr, SocketAddr)> {
    let rest = line.trim().strip_prefix("listening proxy=")?;
    let (proxy, admin) = rest.split_once(" admin=")?;
    Some((proxy.parse().ok()?, admin.trim().parse().ok()?))
}

/// Two mocks (eu, us) and a proxy routing `eu` and `us` to them.
pub struct Env {
    pub eu: MockUpstream,
    pub us: MockUpstream,
    pub proxy: Proxy,
}

impl Env {
    /// The standard projects, plus `extra` tables (e.g. `[limits]`) before them.
    pub async fn standard() -> Env {
        Env::with("", &standard_projects(), &standard_env()).await
    }

    /// `tables` (e.g. `[limits]\nmax_body_bytes = 100`) and `projects` after `[upstream]`.
    pub async fn with(tables: &str, projects: &str, env: &[(String, String)]) -> Env {
        let eu = MockUpstream::start("eu").await;
        let us = MockUpstream::start("us").await;
        let body = format!(
            "[upstream]\nbase_urls = {{ eu = \"{}\", us = \"{}\" }}\n\n{tables}\n{projects}",
            eu.base_url(),
            us.base_url()
        );
        let proxy = Proxy::start(&body, env).await;
        Env { eu, us, proxy }
    }

    /// Every request either mock recorded.
    pub fn upstream_total(&self) -> usize {
        self.eu.request_count() + self.us.request_count()
    }

    /// Sends raw request bytes to the proxy.
    pub async fn raw(&self, request: &[u8]) -> Resp {
        send_raw(self.proxy.addr, request).await
    }

    /// Sends a request built from parts to the proxy.
    pub async fn send(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Resp {
        self.raw(&build_request(self.proxy.addr, method, path, headers, body))
            .await
    }

    /// POSTs a JSON body with `Authorization: Bearer key` and extra headers.
    pub async fn post_json(&self, path: &str, headers: &[(&str, &str)], body: &str) -> Resp {
        let mut h = vec![("Content-Type", "application/json")];
        h.extend_from_slice(headers);
        self.send("POST", path, &h, body.as_bytes()).await
    }

    /// POSTs JSON as project `openai_project` (header selection).
    pub async fn post_as(&self, openai_project: &str, path: &str, body: &str) -> Resp {
        self.post_json(
            path,
            &[
                ("OpenAI-Project", openai_project),
                ("Authorization", "Bearer sk-client-x"),
            ],
            body,
        )
        .await
    }

    /// Asserts no mock received anything (waiting briefly so a late forward would be seen).
    pub async fn assert_nothing_forwarded(&self) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(
            self.upstream_total(),
            0,
            "a denied request reached an upstream: eu={:?} us={:?}",
            self.eu
                .requests()
                .iter()
                .map(|r| &r.path_and_query)
                .collect::<Vec<_>>(),
            self.us
                .requests()
                .iter()
                .map(|r| &r.path_and_query)
                .collect::<Vec<_>>()
        );
    }
}

/// Builds an HTTP/1.1 request: request line, `Host: <proxy>`, `headers` in order, and
/// `Content-Length` when there is a body or the method is POST/PUT/PATCH.
pub fn build_request(
    host: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Vec<u8> {
    let mut out = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\n");
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    let has_len = headers.iter().any(|(k, _)| {
        k.eq_ignore_ascii_case("content-length") || k.eq_ignore_ascii_case("transfer-encoding")
    });
    if !has_len && (!body.is_empty() || matches!(method, "POST" | "PUT" | "PATCH")) {
        out.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    out.push_str("\r\n");
    let mut out = out.into_bytes();
    out.extend_from_slice(body);
    out
}

/// A response as read off the wire.
#[derive(Clone)]
pub struct Resp {
    pub status: u16,
    /// Names as sent (case preserved) and values.
    pub headers: Vec<(String, String)>,
    /// The de-chunked body.
    pub body: Vec<u8>,
    /// Whether the body was chunked.
    pub chunked: bool,
}

impl std::fmt::Debug for Resp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resp")
            .field("status", &self.status)
            .field("headers", &self.headers)
            .field("body", &String::from_utf8_lossy(&self.body))
            .field("chunked", &self.chunked)
            .finish()
    }
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {:?}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// `x-residency-rule` split on commas.
    pub fn rules(&self) -> Vec<String> {
        self.header("x-residency-rule")
            .map(|r| {
                r.split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Asserts the three residency headers every response carries.
    pub fn assert_residency(&self, decision: &str, project: &str, region: &str) {
        assert_eq!(
            self.header("x-residency-decision"),
            Some(decision),
            "decision; {self:#?}"
        );
        assert_eq!(
            self.header("x-residency-project"),
            Some(project),
            "project; {self:#?}"
        );
        assert_eq!(
            self.header("x-residency-region"),
            Some(region),
            "region; {self:#?}"
        );
    }

    /// Asserts a policy denial: 403, x-should-retry false, the error shape, the rule.
    pub fn assert_denied(&self, rule: &str, param: Option<&str>) -> Value {
        assert_eq!(self.status, 403, "{self:#?}");
        assert_eq!(self.header("x-residency-decision"), Some("deny"), "{self:#?}");
        assert!(
            self.rules().iter().any(|r| r == rule),
            "rule {rule} not in {:?}",
            self.rules()
        );
        assert_eq!(self.header("x-should-retry"), Some("false"), "{self:#?}");
        assert!(
            self.header("content-type")
                .is_some_and(|c| c.starts_with("application/json")),
            "{self:#?}"
        );
        let v = self.json();
        let e = &v["error"];
        assert_eq!(e["type"], "invalid_request_error", "{v}");
        assert_eq!(e["code"], "residency_policy_violation", "{v}");
        assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
        match param {
            Some(p) => assert_eq!(e["param"], p, "param; {v}"),
            None => assert!(e["param"].is_null() || e["param"].is_string(), "{v}"),
        }
        assert_eq!(v.as_object().unwrap().len(), 1, "only `error` at the top: {v}");
        v
    }

    /// Asserts a non-policy error: status, code, error shape.
    pub fn assert_error(&self, status: u16, code: &str) -> Value {
        assert_eq!(self.status, status, "{self:#?}");
        let v = self.json();
        let e = &v["error"];
        assert_eq!(e["code"], code, "{v}");
        assert!(e["type"].is_string(), "{v}");
        assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
        assert!(e.get("param").is_some(), "param key present: {v}");
        v
    }
}

/// An open connection that reads a response incrementally.
pub struct Conn {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

impl Conn {
    pub async fn open(addr: SocketAddr, request: &[u8]) -> Conn {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(request).await.unwrap();
        Conn {
            stream,
            buf: Vec::new(),
        }
    }

    /// Reads more bytes into the buffer; false on EOF or error.
    async fn fill(&mut self) -> bool {
        let mut tmp = [0u8; 16384];
        match self.stream.read(&mut tmp).await {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                self.buf.extend_from_slice(&tmp[..n]);
                true
            }
        }
    }

    /// Reads the status line and headers.
    pub async fn head(&mut self) -> Option<(u16, Vec<(String, String)>)> {
        loop {
            if let Some(end) = find(&self.buf, b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.buf[..end]).into_owned();
                self.buf.drain(..end + 4);
                let mut lines = head.split("\r\n");
                let status_line = lines.next()?;
                let status = status_line.split(' ').nth(1)?.parse().ok()?;
                let headers = lines
                    .filter_map(|l| l.split_once(':'))
                    .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                    .collect();
                return Some((status, headers));
            }
            if !self.fill().await {
                return None;
            }
        }
    }

    /// Reads the next chunk of a chunked body; None at the last chunk or EOF.
    pub async fn chunk(&mut self) -> Option<Vec<u8>> {
        loop {
            if let Some(line_end) = find(&self.buf, b"\r\n") {
                let size_str = String::from_utf8_lossy(&self.buf[..line_end]).into_owned();
                let size = usize::from_str_radix(size_str.split(';').next()?.trim(), 16).ok()?;
                if size == 0 {
                    return None;
                }
                if self.buf.len() >= line_end + 2 + size + 2 {
                    let data = self.buf[line_end + 2..line_end + 2 + size].to_vec();
                    self.buf.drain(..line_end + 2 + size + 2);
                    return Some(data);
                }
            }
            if !self.fill().await {
                return None;
            }
        }
    }

    /// Reads exactly `n` body bytes (fewer on EOF).
    pub async fn exact(&mut self, n: usize) -> Vec<u8> {
        while self.buf.len() < n {
            if !self.fill().await {
                break;
            }
        }
        let n = n.min(self.buf.len());
        self.buf.drain(..n).collect()
    }

    /// Reads until EOF.
    pub async fn read_rest(&mut self) -> Vec<u8> {
        while self.fill().await {}
        std::mem::take(&mut self.buf)
    }

    /// Reads one whole response.
    pub async fn response(&mut self, head_request: bool) -> Option<Resp> {
        let (status, headers) = self.head().await?;
        let get = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
        };
        let chunked = get("transfer-encoding").is_some_and(|t| t.to_ascii_lowercase().contains("chunked"));
        let body = if head_request || status == 204 || status == 304 || (100..200).contains(&status) {
            Vec::new()
        } else if chunked {
            let mut body = Vec::new();
            while let Some(c) = self.chunk().await {
                body.extend_from_slice(&c);
            }
            body
        } else if let Some(len) = get("content-length").and_then(|l| l.parse::<usize>().ok()) {
            self.exact(len).await
        } else {
            self.read_rest().await
        };
        Some(Resp {
            status,
            headers,
            body,
            chunked,
        })
    }
}

/// Sends `request`, reads one response (30 s limit).
pub async fn send_raw(addr: SocketAddr, request: &[u8]) -> Resp {
    let head = request.starts_with(b"HEAD ");
    let fut = async {
        let mut c = Conn::open(addr, request).await;
        c.response(head).await
    };
    match tokio::time::timeout(Duration::from_secs(30), fut).await {
        Ok(Some(r)) => r,
        Ok(None) => panic!("the proxy closed the connection without a response"),
        Err(_) => panic!("no response within 30 s"),
    }
}

/// Runs the binary to completion (30 s limit) with `args`, `env`, optional stdin.
pub fn run(args: &[&str], env: &[(&str, &str)], stdin: Option<&[u8]>) -> std::process::Output {
    use std::io::Write;
    let mut cmd = std::process::Command::new(BIN);
    cmd.args(args)
        .env_remove("RESIDENCY_CONFIG")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    if let Some(input) = stdin {
        let mut w = child.stdin.take().unwrap();
        // A child that stops reading early (it refused its arguments) shows in its output.
        let _ = w.write_all(input);
    }
    let start = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if start.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            panic!("residency-proxy {args:?} did not finish in 30 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Proxy {
    /// Waits for the process to exit; its exit code.
    pub async fn wait(&mut self) -> Option<i32> {
        self.child.wait().await.ok().and_then(|s| s.code())
    }
}
