//! The upstreams a test runs the proxy against: the recording mock of `crates/mock-openai`
//! (two of them, regions eu and us, in [`Env`]), and two small ones for what the mock cannot
//! observe (connection state, streaming hashes of very large bodies).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use mock_openai::MockUpstream;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader as TokioBufReader};
use tokio::net::{TcpListener, TcpStream};

use super::config::{standard_env, standard_projects, upstream_table};
use super::http1::{send_raw, Resp};
use super::process::Proxy;

/// Two recording mocks, regions eu and us.
pub async fn mocks() -> (MockUpstream, MockUpstream) {
    (MockUpstream::start("eu").await, MockUpstream::start("us").await)
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
    pub async fn with(tables: &str, projects: &str, env: &[(&str, &str)]) -> Env {
        let (eu, us) = mocks().await;
        let body = format!("{}\n{tables}\n{projects}", upstream_table(&eu, &us));
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
        self.proxy.send(method, path, headers, body).await
    }

    /// POSTs a JSON body with `headers` added after `Content-Type`.
    pub async fn post_json(&self, path: &str, headers: &[(&str, &str)], body: &str) -> Resp {
        self.proxy.post_json(path, headers, body).await
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
