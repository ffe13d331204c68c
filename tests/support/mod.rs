//! Helpers shared by tests/sdk.rs and tests/transport.rs: start the real `residency-proxy`
//! binary on ephemeral ports, scrape its admin endpoints, read its memory use, speak raw
//! HTTP/1.1, and small self-contained upstreams for what the recording mock cannot observe
//! (connection state, streaming hashes of very large bodies).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use sha2::{Digest, Sha256};
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader as TokioBufReader};
use tokio::net::{TcpListener, TcpStream};

/// The eu ZDR project: default, selected by `OpenAI-Project: proj_eu`.
pub const EU_PROJECT: &str = "proj_eu";
/// The us project with modified abuse monitoring (images with dall-e-3, files, realtime).
pub const US_PROJECT: &str = "proj_us";
/// The eu project with modified abuse monitoring (files and batch inputs, which ZDR refuses).
pub const EU_MAM_PROJECT: &str = "proj_eu_mam";
pub const REALTIME_MODEL: &str = "gpt-4o-realtime-preview-2024-12-17";

/// A unique scratch directory under the system temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let dir = std::env::temp_dir().join(format!("rp-{tag}-{}-{n}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The standard config: `eu-zdr` (default, eu, ZDR), `us-mam` (us, modified abuse
/// monitoring) and `eu-mam` (eu, modified abuse monitoring), both regions pointed at local upstreams. `extra` is appended before the
/// projects (top-level keys go first: pass e.g. `[tls]` tables).
pub fn two_project_config(eu_base: &str, us_base: &str, extra: &str) -> String {
    format!(
        r#"listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"

[upstream]
base_urls = {{ eu = "{eu_base}", us = "{us_base}" }}

{extra}

[[projects]]
name = "eu-zdr"
region = "eu"
retention = "zdr"
store = "rewrite"
mode = "enforce"
default = true
openai_project = "{EU_PROJECT}"

[[projects]]
name = "us-mam"
region = "us"
retention = "modified_abuse_monitoring"
store = "rewrite"
mode = "enforce"
openai_project = "{US_PROJECT}"

[[projects]]
name = "eu-mam"
region = "eu"
retention = "modified_abuse_monitoring"
store = "rewrite"
mode = "enforce"
openai_project = "{EU_MAM_PROJECT}"
"#
    )
}

/// A running `residency-proxy serve` child; killed on drop.
pub struct Proxy {
    pub child: Child,
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    pub dir: TempDir,
    stderr_path: PathBuf,
}

impl Proxy {
    pub fn start(config: &str) -> Proxy {
        Proxy::start_with_env(config, &[])
    }

    pub fn start_with_env(config: &str, env: &[(&str, &str)]) -> Proxy {
        Proxy::start_wrapped(config, env, &[])
    }

    /// Starts the proxy as the last arguments of `wrapper` (e.g. a shell that mounts a small
    /// tmpfs in a private mount namespace, then `exec "$@"`s), so the child's pid is the proxy's.
    pub fn start_wrapped(config: &str, env: &[(&str, &str)], wrapper: &[&str]) -> Proxy {
        let dir = TempDir::new("proxy");
        let cfg = dir.path().join("proxy.toml");
        std::fs::write(&cfg, config).unwrap();
        let stderr_path = dir.path().join("stderr.log");
        let stderr = std::fs::File::create(&stderr_path).unwrap();
        let mut cmd = match wrapper.split_first() {
            None => Command::new(env!("CARGO_BIN_EXE_residency-proxy")),
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(env!("CARGO_BIN_EXE_residency-proxy"));
                c
            }
        };
        cmd.arg("serve")
            .arg("--config")
            .arg(&cfg)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr));
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn residency-proxy");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let first = lines.next().and_then(|l| l.ok());
            let _ = tx.send(first);
            // Keep draining so the child never blocks on a full pipe.
            for _ in lines {}
        });
        let line = match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(Some(l)) => l,
            other => {
                let _ = child.kill();
                let _ = child.wait();
                let err = std::fs::read_to_string(&stderr_path).unwrap_or_default();
                panic!("residency-proxy did not announce its listeners ({other:?}); stderr:\n{err}\nconfig:\n{config}");
            }
        };
        let (addr, admin) = parse_listening(&line)
            .unwrap_or_else(|| panic!("unexpected first stdout line from residency-proxy: {line:?}"));
        Proxy {
            child,
            addr,
            admin,
            dir,
            stderr_path,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The config file the proxy runs on (rewrite it to reload).
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("proxy.toml")
    }

    /// Sends a signal (`TERM`, `HUP`) to the proxy.
    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.pid().to_string())
            .status()
            .unwrap();
        assert!(ok.success(), "kill -{sig}");
    }

    /// Waits until stderr holds `needle` (an event, not a sleep); false after `limit`.
    pub async fn wait_log(&self, needle: &str, limit: Duration) -> bool {
        wait_until(limit, || self.stderr().contains(needle)).await
    }

    /// Waits for the process to exit; None after `limit`.
    pub async fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let t0 = Instant::now();
        loop {
            if let Ok(Some(st)) = self.child.try_wait() {
                return Some(st);
            }
            if t0.elapsed() > limit {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// `http://127.0.0.1:PORT/v1`, what OPENAI_BASE_URL is set to.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    pub fn admin_url(&self) -> String {
        format!("http://{}", self.admin)
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// The Prometheus text from the admin listener.
    pub async fn metrics(&self) -> String {
        let res = http1_request(self.admin, "GET", "/metrics", &[], b"").await;
        assert_eq!(res.status, 200, "GET /metrics");
        String::from_utf8_lossy(&res.body).into_owned()
    }

    /// Sum of `residency_proxy_requests_total` samples whose labels contain every `want`
    /// fragment (e.g. `decision="deny"`).
    pub async fn requests_total(&self, want: &[&str]) -> u64 {
        sum_requests(&self.metrics().await, want)
    }

    /// VmRSS and VmHWM of the proxy process, in KiB.
    pub fn memory_kib(&self) -> (u64, u64) {
        proc_memory_kib(self.pid())
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `cond` every 20 ms until it holds (true) or `limit` passes (false).
pub async fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let t0 = Instant::now();
    loop {
        if cond() {
            return true;
        }
        if t0.elapsed() > limit {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub fn parse_listening(line: &str) -> Option<(SocketAddr, SocketAddr)> {
    let rest = line.trim().strip_prefix("listening proxy=")?;
    let (proxy, admin) = rest.split_once(" admin=")?;
    Some((proxy.parse().ok()?, admin.parse().ok()?))
}

pub fn sum_requests(metrics: &str, want: &[&str]) -> u64 {
    metrics
        .lines()
        .filter(|l| l.starts_with("residency_proxy_requests_total{"))
        .filter(|l| want.iter().all(|w| l.contains(w)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|v| v as u64)
        .sum()
}

pub fn proc_memory_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

// ---------------------------------------------------------------------------------------------
// Raw HTTP/1.1 client
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
pub struct RawResponse {
    pub status: u16,
    pub version: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "response body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Writes one request head (Host and, for a non-empty body, Content-Length are added unless
/// given) and the body.
pub fn request_bytes(method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut out = format!("{method} {path} HTTP/1.1\r\n");
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        out.push_str("Host: proxy.test\r\n");
    }
    let has_len = headers.iter().any(|(k, _)| {
        k.eq_ignore_ascii_case("content-length") || k.eq_ignore_ascii_case("transfer-encoding")
    });
    if !has_len && (!body.is_empty() || method == "POST") {
        out.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// One request on a fresh connection.
pub async fn http1_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> RawResponse {
    let stream = TcpStream::connect(addr).await.unwrap();
    let mut conn = TokioBufReader::new(stream);
    conn.get_mut()
        .write_all(&request_bytes(method, path, headers, body))
        .await
        .unwrap();
    tokio::time::timeout(
        Duration::from_secs(30),
        read_response(&mut conn, method == "HEAD"),
    )
    .await
    .expect("response within 30 s")
    .expect("a complete HTTP/1.1 response")
}

/// Reads the status line and headers.
pub async fn read_head<R: tokio::io::AsyncBufRead + Unpin>(
    r: &mut R,
) -> std::io::Result<(u16, String, Vec<(String, String)>)> {
    let mut line = String::new();
    if r.read_line(&mut line).await? == 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "no status line",
        ));
    }
    let mut parts = line.trim_end().splitn(3, ' ');
    let version = parts.next().unwrap_or_default().to_string();
    let status: u16 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line {line:?}")))?;
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).await? == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "eof in head",
            ));
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    Ok((status, version, headers))
}

/// Reads one whole response (Content-Length, chunked, or until EOF).
pub async fn read_response<R: tokio::io::AsyncBufRead + Unpin>(
    r: &mut R,
    head_only: bool,
) -> std::io::Result<RawResponse> {
    let (status, version, headers) = read_head(r).await?;
    let get = |n: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(n))
            .map(|(_, v)| v.clone())
    };
    let mut body = Vec::new();
    if head_only || status == 204 || status == 304 || (100..200).contains(&status) {
    } else if get("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked")) {
        loop {
            let mut size = String::new();
            r.read_line(&mut size).await?;
            let n = usize::from_str_radix(size.trim().split(';').next().unwrap_or("0"), 16)
                .map_err(|e| std::io::Error::other(format!("bad chunk size {size:?}: {e}")))?;
            if n == 0 {
                // Trailers, then the empty line.
                loop {
                    let mut t = String::new();
                    if r.read_line(&mut t).await? == 0 || t.trim_end().is_empty() {
                        break;
                    }
                }
                break;
            }
            let start = body.len();
            body.resize(start + n, 0);
            r.read_exact(&mut body[start..]).await?;
            let mut crlf = [0u8; 2];
            r.read_exact(&mut crlf).await?;
        }
    } else if let Some(len) = get("content-length") {
        let n: usize = len
            .parse()
            .map_err(|_| std::io::Error::other("bad content-length"))?;
        body.resize(n, 0);
        r.read_exact(&mut body).await?;
    } else {
        r.read_to_end(&mut body).await?;
    }
    Ok(RawResponse {
        status,
        version,
        headers,
        body,
    })
}

// ---------------------------------------------------------------------------------------------
// Test-owned upstreams
// ---------------------------------------------------------------------------------------------

/// What [`HashingUpstream`] saw of one request.
#[derive(Debug, Clone, Default)]
pub struct HashedRequest {
    pub head: String,
    pub body_len: u64,
    /// sha256 of the body (empty when a [`BodyCheck`] was given instead).
    pub body_sha256: String,
    /// With a [`BodyCheck`]: the offset of the first byte that differed from the expected
    /// body, if any.
    pub first_mismatch: Option<u64>,
}

/// Compares body bytes at an offset with what was sent (cheaper than hashing in a debug build).
pub type BodyCheck = Arc<dyn Fn(u64, &[u8]) -> bool + Send + Sync>;

/// A tiny HTTP/1.1 upstream that hashes (or, with a [`BodyCheck`], compares) request bodies
/// as they stream in, never holding them, and answers `200 {"id":"file-hashed"}`. Understands
/// Content-Length and chunked bodies.
pub struct HashingUpstream {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<HashedRequest>>>,
    /// Body bytes received so far for the request in progress.
    pub progress: Arc<AtomicU64>,
}

impl HashingUpstream {
    pub async fn start() -> HashingUpstream {
        HashingUpstream::start_with(None).await
    }

    pub async fn start_with(check: Option<BodyCheck>) -> HashingUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let progress = Arc::new(AtomicU64::new(0));
        let (s, p) = (seen.clone(), progress.clone());
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (s, p, c) = (s.clone(), p.clone(), check.clone());
                tokio::spawn(async move {
                    let _ = hashing_conn(stream, s, p, c).await;
                });
            }
        });
        HashingUpstream { addr, seen, progress }
    }
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

async fn hashing_conn(
    stream: TcpStream,
    seen: Arc<Mutex<Vec<HashedRequest>>>,
    progress: Arc<AtomicU64>,
    check: Option<BodyCheck>,
) -> std::io::Result<()> {
    let mut r = TokioBufReader::with_capacity(256 * 1024, stream);
    loop {
        let mut head = String::new();
        loop {
            let mut line = String::new();
            if r.read_line(&mut line).await? == 0 {
                return Ok(());
            }
            if line == "\r\n" || line == "\n" {
                break;
            }
            head.push_str(&line);
        }
        let lower = head.to_ascii_lowercase();
        let header = |n: &str| {
            lower
                .lines()
                .find_map(|l| l.strip_prefix(&format!("{n}:")).map(|v| v.trim().to_string()))
        };
        if header("expect").is_some_and(|v| v == "100-continue") {
            r.get_mut().write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await?;
        }
        let mut hasher = Sha256::new();
        let mut first_mismatch = None;
        let mut feed = |at: u64, data: &[u8]| match &check {
            None => hasher.update(data),
            Some(c) => {
                if first_mismatch.is_none() && !c(at, data) {
                    first_mismatch = Some(at);
                }
            }
        };
        let mut total = 0u64;
        progress.store(0, Ordering::Relaxed);
        let mut buf = vec![0u8; 256 * 1024];
        if header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
            loop {
                let mut size = String::new();
                r.read_line(&mut size).await?;
                let n = u64::from_str_radix(size.trim().split(';').next().unwrap_or("0"), 16)
                    .map_err(std::io::Error::other)?;
                if n == 0 {
                    let mut t = String::new();
                    while r.read_line(&mut t).await? > 0 && !t.trim_end().is_empty() {
                        t.clear();
                    }
                    break;
                }
                let mut left = n;
                while left > 0 {
                    let k = (left as usize).min(buf.len());
                    r.read_exact(&mut buf[..k]).await?;
                    feed(total, &buf[..k]);
                    left -= k as u64;
                    total += k as u64;
                    progress.store(total, Ordering::Relaxed);
                }
                let mut crlf = [0u8; 2];
                r.read_exact(&mut crlf).await?;
            }
        } else {
            let mut left: u64 = header("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
            while left > 0 {
                let k = (left as usize).min(buf.len());
                let got = r.read(&mut buf[..k]).await?;
                if got == 0 {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "short body",
                    ));
                }
                feed(total, &buf[..got]);
                left -= got as u64;
                total += got as u64;
                progress.store(total, Ordering::Relaxed);
            }
        }
        seen.lock().unwrap().push(HashedRequest {
            head: head.clone(),
            body_len: total,
            body_sha256: if check.is_none() {
                hex::encode(hasher.finalize())
            } else {
                String::new()
            },
            first_mismatch,
        });
        let body = br#"{"id":"file-hashed","object":"file","bytes":0,"created_at":0,"filename":"big.jsonl","purpose":"assistants","status":"processed"}"#;
        let res = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
            body.len()
        );
        r.get_mut().write_all(res.as_bytes()).await?;
        r.get_mut().write_all(body).await?;
    }
}

/// Events from [`WatchingUpstream`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamEvent {
    Request(String),
    /// The proxy closed the upstream connection (read returned EOF or error) while the
    /// upstream was still streaming.
    ClientGone {
        events_sent: usize,
        after: Duration,
    },
    Finished {
        events_sent: usize,
    },
}

/// An upstream that answers every request with an endless-ish SSE stream (one event every
/// `interval`, up to `max_events`) and reports when the peer (the proxy) goes away.
pub struct WatchingUpstream {
    pub addr: SocketAddr,
    pub events: tokio::sync::mpsc::UnboundedReceiver<UpstreamEvent>,
}

impl WatchingUpstream {
    pub async fn start(interval: Duration, max_events: usize) -> WatchingUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, events) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let tx = tx.clone();
                tokio::spawn(async move {
                    let _ = watching_conn(stream, tx, interval, max_events).await;
                });
            }
        });
        WatchingUpstream { addr, events }
    }
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

async fn watching_conn(
    stream: TcpStream,
    tx: tokio::sync::mpsc::UnboundedSender<UpstreamEvent>,
    interval: Duration,
    max_events: usize,
) -> std::io::Result<()> {
    let mut r = TokioBufReader::new(stream);
    let mut head = String::new();
    let mut len = 0usize;
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        if line == "\r\n" {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            len = v.trim().parse().unwrap_or(0);
        }
        head.push_str(&line);
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).await?;
    let _ = tx.send(UpstreamEvent::Request(head));
    let (mut rd, mut wr) = r.into_inner().into_split();
    wr.write_all(
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\ntransfer-encoding: chunked\r\n\r\n",
    )
    .await?;
    let started = Instant::now();
    let mut sent = 0usize;
    let mut probe = [0u8; 64];
    while sent < max_events {
        let ev = format!(
            "data: {{\"id\":\"chatcmpl-w\",\"object\":\"chat.completion.chunk\",\"created\":0,\"model\":\"gpt-4o-2024-08-06\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"tick {sent} \"}},\"finish_reason\":null}}]}}\n\n"
        );
        let chunk = format!("{:x}\r\n{ev}\r\n", ev.len());
        if wr.write_all(chunk.as_bytes()).await.is_err() {
            let _ = tx.send(UpstreamEvent::ClientGone {
                events_sent: sent,
                after: started.elapsed(),
            });
            return Ok(());
        }
        sent += 1;
        // Wait for the next tick, but notice a closed peer (EOF/reset) at once.
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            r = rd.read(&mut probe) => {
                if matches!(r, Ok(0) | Err(_)) {
                    let _ = tx.send(UpstreamEvent::ClientGone { events_sent: sent, after: started.elapsed() });
                    return Ok(());
                }
            }
        }
    }
    wr.write_all(b"1a\r\ndata: [DONE]\n\n\r\n0\r\n\r\n").await?;
    let _ = tx.send(UpstreamEvent::Finished { events_sent: sent });
    Ok(())
}

/// sha256 hex of bytes.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// A small valid mono 16-bit PCM WAV (a 440 Hz-ish square wave), `ms` long at 8 kHz.
pub fn wav(ms: u32) -> Vec<u8> {
    let rate = 8000u32;
    let samples = rate * ms / 1000;
    let data_len = samples * 2;
    let mut v = Vec::with_capacity(44 + data_len as usize);
    v.extend_from_slice(b"RIFF");
    v.extend_from_slice(&(36 + data_len).to_le_bytes());
    v.extend_from_slice(b"WAVEfmt ");
    v.extend_from_slice(&16u32.to_le_bytes());
    v.extend_from_slice(&1u16.to_le_bytes());
    v.extend_from_slice(&1u16.to_le_bytes());
    v.extend_from_slice(&rate.to_le_bytes());
    v.extend_from_slice(&(rate * 2).to_le_bytes());
    v.extend_from_slice(&2u16.to_le_bytes());
    v.extend_from_slice(&16u16.to_le_bytes());
    v.extend_from_slice(b"data");
    v.extend_from_slice(&data_len.to_le_bytes());
    for i in 0..samples {
        let s: i16 = if (i / 9) % 2 == 0 { 8000 } else { -8000 };
        v.extend_from_slice(&s.to_le_bytes());
    }
    v
}

/// Is `CI` set (to anything but empty/"0"/"false")?
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && v != "false")
}

/// Reads a whole file from a blocking reader, for child process output.
pub fn read_all(mut r: impl Read) -> String {
    let mut s = String::new();
    let _ = r.read_to_string(&mut s);
    s
}
