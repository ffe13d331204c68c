//! A recording mock of the OpenAI API.
//!
//! [`MockUpstream::start`] binds `127.0.0.1:0` and serves HTTP/1.1 and h2c. Every request is
//! recorded (method, path and query, version, host, headers, exact body bytes) *before* it is
//! answered, so tests can see what reached an upstream even when the answer is a fault.
//!
//! Answers follow the shapes the official SDKs parse (chat completions, responses, embeddings,
//! moderations, images, audio, files, models, batches, streaming for chat and responses, and
//! a realtime websocket echo). The request header `x-mock-behavior` selects a fault:
//! `slow-sse`, `hang`, `reset`, `garbage`, `status:NNN`, `drop-mid-stream`, `delay:MS`, and
//! `events:N` (the load benchmark's token stream: N compact ~100-byte `chat.completion.chunk`
//! events, each written on its own, with no gap).
#![forbid(unsafe_code)]

mod io;
pub mod multipart;
mod shapes;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Version};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde_json::{json, Value};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, Notify};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::io::SharedIo;

/// The request header that selects a fault behaviour.
pub const BEHAVIOR_HEADER: &str = "x-mock-behavior";
/// The response header naming the mock that answered.
pub const UPSTREAM_HEADER: &str = "x-mock-upstream";

/// Gap between events for `x-mock-behavior: slow-sse`.
pub const SLOW_SSE_GAP: Duration = Duration::from_millis(200);
/// Number of events for `x-mock-behavior: slow-sse` (before `data: [DONE]`).
pub const SLOW_SSE_EVENTS: usize = 10;

/// Most events `x-mock-behavior: events:N` streams.
pub const MAX_BENCH_EVENTS: usize = 100_000;

/// One request as the mock received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The request target, e.g. `/v1/models?limit=2`.
    pub path_and_query: String,
    /// HTTP/1.0, HTTP/1.1 or HTTP/2.
    pub version: Version,
    /// The `Host` header, or the `:authority` of an HTTP/2 request.
    pub host: Option<String>,
    /// Header names (lower case) and raw values, in the order received (repeated names are
    /// grouped at their first occurrence).
    pub headers: Vec<(String, Vec<u8>)>,
    /// The exact body bytes received (de-chunked). Partial if the body broke off.
    pub body: Bytes,
    /// Which accepted connection (0, 1, ...) carried the request.
    pub connection: usize,
}

impl Recorded {
    /// The first value of header `name` (case-insensitive), as lossy UTF-8.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    }

    /// Every value of header `name` (case-insensitive).
    pub fn header_all(&self, name: &str) -> Vec<String> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
            .collect()
    }

    /// Whether header `name` is present.
    pub fn has_header(&self, name: &str) -> bool {
        self.headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name))
    }

    /// The path without the query.
    pub fn path(&self) -> &str {
        self.path_and_query.split('?').next().unwrap_or("")
    }

    /// The body parsed as JSON, if it is JSON.
    pub fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    /// Close the connection with a TCP reset.
    Reset,
    /// Write bytes that are not HTTP, then close.
    Garbage,
}

/// Per-connection control: lets a request take the connection away from hyper.
#[derive(Default)]
struct ConnCtl {
    notify: Notify,
    fault: Mutex<Option<Fault>>,
}

impl ConnCtl {
    fn trigger(&self, fault: Fault) {
        *lock(&self.fault) = Some(fault);
        self.notify.notify_one();
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

struct State {
    name: String,
    base_url: String,
    requests: Mutex<Vec<Recorded>>,
    count: watch::Sender<usize>,
    connections: AtomicUsize,
    /// Connections accepted and not yet closed.
    open: AtomicUsize,
    seq: AtomicU64,
    files: Mutex<Vec<Value>>,
}

impl State {
    fn next_id(&self, prefix: &str) -> String {
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        format!("{prefix}mock{n:06}")
    }

    fn record(&self, r: Recorded) {
        let mut reqs = lock(&self.requests);
        reqs.push(r);
        let n = reqs.len();
        drop(reqs);
        self.count.send_replace(n);
    }
}

struct Inner {
    addr: SocketAddr,
    state: Arc<State>,
    // Dropping this stops the accept loop and every connection.
    _shutdown: watch::Sender<bool>,
}

/// A running mock upstream. Clones share it; it stops when the last clone is dropped.
#[derive(Clone)]
pub struct MockUpstream {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for MockUpstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MockUpstream")
            .field("name", &self.name())
            .field("addr", &self.addr())
            .finish()
    }
}

impl MockUpstream {
    /// Starts a mock named `name` on `127.0.0.1:0`.
    ///
    /// # Panics
    /// Never; if binding the loopback port fails, use [`MockUpstream::bind`] to see the error.
    pub async fn start(name: &str) -> MockUpstream {
        match Self::bind(name, SocketAddr::from(([127, 0, 0, 1], 0))).await {
            Ok(m) => m,
            Err(e) => {
                // Binding an ephemeral loopback port only fails when the host is out of ports;
                // retry once after a pause, then report through a mock that refuses everything.
                tokio::time::sleep(Duration::from_millis(50)).await;
                match Self::bind(name, SocketAddr::from(([127, 0, 0, 1], 0))).await {
                    Ok(m) => m,
                    Err(_) => Self::unbound(name, &e),
                }
            }
        }
    }

    fn unbound(name: &str, e: &std::io::Error) -> MockUpstream {
        eprintln!("mock-openai {name}: cannot bind 127.0.0.1:0: {e}");
        let (count, _) = watch::channel(0);
        let (shutdown, _) = watch::channel(false);
        let addr = SocketAddr::from(([127, 0, 0, 1], 9));
        MockUpstream {
            inner: Arc::new(Inner {
                addr,
                state: Arc::new(State {
                    name: name.to_string(),
                    base_url: format!("http://{addr}"),
                    requests: Mutex::new(Vec::new()),
                    count,
                    connections: AtomicUsize::new(0),
                    open: AtomicUsize::new(0),
                    seq: AtomicU64::new(0),
                    files: Mutex::new(Vec::new()),
                }),
                _shutdown: shutdown,
            }),
        }
    }

    /// Starts a mock named `name` on `addr`.
    pub async fn bind(name: &str, addr: SocketAddr) -> std::io::Result<MockUpstream> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let (count, _) = watch::channel(0);
        let (shutdown, shutdown_rx) = watch::channel(false);
        let state = Arc::new(State {
            name: name.to_string(),
            base_url: format!("http://{addr}"),
            requests: Mutex::new(Vec::new()),
            count,
            connections: AtomicUsize::new(0),
            open: AtomicUsize::new(0),
            seq: AtomicU64::new(0),
            files: Mutex::new(Vec::new()),
        });
        tokio::spawn(accept_loop(listener, state.clone(), shutdown_rx));
        Ok(MockUpstream {
            inner: Arc::new(Inner {
                addr,
                state,
                _shutdown: shutdown,
            }),
        })
    }

    /// The mock's name (sent back in `x-mock-upstream` and used in answers).
    pub fn name(&self) -> &str {
        &self.inner.state.name
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.inner.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        self.inner.state.base_url.clone()
    }

    /// Every request recorded so far, oldest first.
    pub fn requests(&self) -> Vec<Recorded> {
        lock(&self.inner.state.requests).clone()
    }

    /// How many requests have been recorded.
    pub fn request_count(&self) -> usize {
        lock(&self.inner.state.requests).len()
    }

    /// How many TCP connections have been accepted.
    pub fn connections(&self) -> usize {
        self.inner.state.connections.load(Ordering::SeqCst)
    }

    /// How many accepted TCP connections are still open.
    pub fn open_connections(&self) -> usize {
        self.inner.state.open.load(Ordering::SeqCst)
    }

    /// Forgets recorded requests (the connection count stays).
    pub fn clear(&self) {
        lock(&self.inner.state.requests).clear();
        self.inner.state.count.send_replace(0);
    }

    /// Waits until at least `n` requests are recorded or `timeout` passes, then returns what
    /// is recorded.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Recorded> {
        let mut rx = self.inner.state.count.subscribe();
        let _ = tokio::time::timeout(timeout, rx.wait_for(|c| *c >= n)).await;
        self.requests()
    }
}

async fn accept_loop(listener: TcpListener, state: Arc<State>, mut shutdown: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                match accepted {
                    Ok((stream, _)) => {
                        let id = state.connections.fetch_add(1, Ordering::SeqCst);
                        state.open.fetch_add(1, Ordering::SeqCst);
                        let conn_state = state.clone();
                        let conn = serve_connection(stream, id, state.clone(), shutdown.clone());
                        tokio::spawn(async move {
                            conn.await;
                            conn_state.open.fetch_sub(1, Ordering::SeqCst);
                        });
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                }
            }
            _ = shutdown.changed() => return,
        }
    }
}

async fn serve_connection(
    stream: TcpStream,
    id: usize,
    state: Arc<State>,
    mut shutdown: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let stream = Arc::new(stream);
    let ctl = Arc::new(ConnCtl::default());
    let svc_ctl = ctl.clone();
    let svc = service_fn(move |req| handle(state.clone(), svc_ctl.clone(), id, req));
    let builder = auto::Builder::new(TokioExecutor::new());
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(SharedIo(stream.clone())), svc);
    let fault = tokio::select! {
        _ = conn => None,
        _ = ctl.notify.notified() => *lock(&ctl.fault),
        _ = shutdown.changed() => None,
    };
    match fault {
        Some(Fault::Reset) => {
            let _ = stream.set_zero_linger();
        }
        Some(Fault::Garbage) => {
            let _ = io::write_all(&stream, b"\x00\x01\x02 this is not HTTP \xff\xfe\r\n\r\n").await;
        }
        None => {}
    }
}

type RespBody = BoxBody<Bytes, Infallible>;

/// A body fed by a channel: each message is one data frame; the body ends when the sender
/// is dropped.
struct ChanBody(mpsc::Receiver<Bytes>);

impl Body for ChanBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx).map(|o| o.map(|b| Ok(Frame::data(b))))
    }
}

fn full(b: impl Into<Bytes>) -> RespBody {
    Full::new(b.into()).boxed()
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn json_response(state: &State, status: StatusCode, v: &Value) -> Response<RespBody> {
    let mut r = Response::new(full(v.to_string()));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    common_headers(state, h);
    r
}

fn common_headers(state: &State, h: &mut HeaderMap) {
    if let Ok(v) = HeaderValue::from_str(&state.name) {
        h.insert(UPSTREAM_HEADER, v);
    }
    if let Ok(v) = HeaderValue::from_str(&state.next_id("req_")) {
        h.insert("x-request-id", v);
    }
    h.insert("openai-processing-ms", HeaderValue::from_static("1"));
    h.insert("openai-version", HeaderValue::from_static("2020-10-01"));
}

/// Streams `events` as `text/event-stream`, `gap` apart; after `abort_after` events the
/// connection is reset instead of finishing.
fn sse_response(
    state: &State,
    ctl: Arc<ConnCtl>,
    events: Vec<Bytes>,
    gap: Duration,
    abort_after: Option<usize>,
) -> Response<RespBody> {
    // Capacity 1: the connection task finds at most one event ready, so each event leaves in
    // its own write, as a model server sends tokens (the load benchmark's token-stream shape).
    let (tx, rx) = mpsc::channel(1);
    tokio::spawn(async move {
        for (i, ev) in events.into_iter().enumerate() {
            if abort_after == Some(i) {
                // Let the events already sent reach the client, then break the connection.
                tokio::time::sleep(Duration::from_millis(100)).await;
                ctl.trigger(Fault::Reset);
                // Keep the body open so it never ends cleanly; it closes with the connection.
                tx.closed().await;
                return;
            }
            if i > 0 && !gap.is_zero() {
                tokio::time::sleep(gap).await;
            }
            if tx.send(ev).await.is_err() {
                return;
            }
        }
    });
    let mut r = Response::new(ChanBody(rx).boxed());
    let h = r.headers_mut();
    h.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream; charset=utf-8"),
    );
    h.insert(http::header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    common_headers(state, h);
    r
}

fn is_websocket(req: &Request<Incoming>) -> bool {
    let has = |name: http::header::HeaderName, token: &str| {
        req.headers().get_all(name).iter().any(|v| {
            v.to_str()
                .is_ok_and(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
        })
    };
    req.method() == Method::GET
        && has(http::header::UPGRADE, "websocket")
        && req.headers().contains_key(http::header::SEC_WEBSOCKET_KEY)
}

async fn read_body(body: Incoming) -> Bytes {
    let mut body = body;
    let mut buf = Vec::new();
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(f) => {
                if let Ok(d) = f.into_data() {
                    buf.extend_from_slice(&d);
                }
            }
            Err(_) => break,
        }
    }
    Bytes::from(buf)
}

async fn handle(
    state: Arc<State>,
    ctl: Arc<ConnCtl>,
    conn: usize,
    mut req: Request<Incoming>,
) -> Result<Response<RespBody>, Infallible> {
    let upgrade = is_websocket(&req).then(|| hyper::upgrade::on(&mut req));
    let (parts, body) = req.into_parts();
    let host = parts
        .headers
        .get(http::header::HOST)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .or_else(|| parts.uri.authority().map(|a| a.to_string()));
    let path_and_query = parts
        .uri
        .path_and_query()
        .map_or_else(|| "/".to_string(), |p| p.to_string());
    let headers: Vec<(String, Vec<u8>)> = parts
        .headers
        .iter()
        .map(|(n, v)| (n.as_str().to_string(), v.as_bytes().to_vec()))
        .collect();
    let body = read_body(body).await;
    let rec = Recorded {
        method: parts.method.to_string(),
        path_and_query,
        version: parts.version,
        host,
        headers,
        body,
        connection: conn,
    };
    state.record(rec.clone());

    let behavior = rec.header(BEHAVIOR_HEADER).unwrap_or_default();
    let behavior = behavior.trim();
    match behavior {
        // The connection task drops this future when the mock stops or the client leaves.
        "hang" => std::future::pending::<()>().await,
        "reset" => {
            ctl.trigger(Fault::Reset);
            std::future::pending::<()>().await;
        }
        "garbage" => {
            ctl.trigger(Fault::Garbage);
            std::future::pending::<()>().await;
        }
        _ => {}
    }
    if let Some(code) = behavior.strip_prefix("status:") {
        let status = code
            .trim()
            .parse::<u16>()
            .ok()
            .and_then(|c| StatusCode::from_u16(c).ok());
        let status = status.unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return Ok(json_response(
            &state,
            status,
            &shapes::error_body(status.as_u16(), &state.name),
        ));
    }
    if let Some(ms) = behavior.strip_prefix("delay:") {
        let ms = ms.trim().parse::<u64>().unwrap_or(0);
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    if let Some(on_upgrade) = upgrade {
        return Ok(websocket(&state, &rec, on_upgrade));
    }
    if let Some(n) = behavior.strip_prefix("events:") {
        let n = n.trim().parse::<usize>().unwrap_or(0).min(MAX_BENCH_EVENTS);
        let events = shapes::bench_stream(&state.next_id("chatcmpl-"), n);
        return Ok(sse_response(&state, ctl, events, Duration::ZERO, None));
    }
    let stream = match behavior {
        "slow-sse" => Some((SLOW_SSE_GAP, None, SLOW_SSE_EVENTS)),
        "drop-mid-stream" => Some((Duration::ZERO, Some(2), SLOW_SSE_EVENTS)),
        _ => None,
    };
    Ok(route(&state, ctl, &rec, stream))
}

fn websocket(state: &State, rec: &Recorded, on_upgrade: hyper::upgrade::OnUpgrade) -> Response<RespBody> {
    let key = rec.header("sec-websocket-key").unwrap_or_default();
    let accept = derive_accept_key(key.trim().as_bytes());
    let model = query_param(&rec.path_and_query, "model").unwrap_or_default();
    let session_id = state.next_id("sess_");
    let event_id = state.next_id("event_");
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else { return };
        let mut ws = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
        let hello = json!({
            "type": "session.created",
            "event_id": event_id,
            "session": {"id": session_id, "object": "realtime.session", "model": model},
        });
        if ws.send(Message::text(hello.to_string())).await.is_err() {
            return;
        }
        while let Some(Ok(msg)) = ws.next().await {
            let echo = match msg {
                Message::Text(_) | Message::Binary(_) => msg,
                Message::Close(_) => break,
                _ => continue,
            };
            if ws.send(echo).await.is_err() {
                return;
            }
        }
        let _ = ws.close(None).await;
    });
    let mut r = Response::new(full(Bytes::new()));
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = r.headers_mut();
    h.insert(http::header::CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(http::header::UPGRADE, HeaderValue::from_static("websocket"));
    if let Ok(v) = HeaderValue::from_str(&accept) {
        h.insert(http::header::SEC_WEBSOCKET_ACCEPT, v);
    }
    common_headers(state, h);
    r
}

fn query_param(path_and_query: &str, key: &str) -> Option<String> {
    let (_, q) = path_and_query.split_once('?')?;
    q.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (k == key).then(|| v.to_string())
    })
}

/// Streaming parameters: (gap, abort after N events, number of deltas).
type StreamPlan = (Duration, Option<usize>, usize);

fn route(state: &State, ctl: Arc<ConnCtl>, rec: &Recorded, plan: Option<StreamPlan>) -> Response<RespBody> {
    let body = rec.json();
    let body = body.as_ref().filter(|v| v.is_object());
    let model_or = |d: &str| {
        body.and_then(|b| b.get("model"))
            .and_then(Value::as_str)
            .map_or_else(|| d.to_string(), str::to_string)
    };
    let wants_stream = body.and_then(|b| b.get("stream")).and_then(Value::as_bool) == Some(true);
    let created = now();
    let path = rec.path();
    let method = rec.method.as_str();
    let ok = |v: Value| json_response(state, StatusCode::OK, &v);

    // Streams: on request, or forced by a behaviour on any path.
    if wants_stream || plan.is_some() {
        let (gap, abort, n) = plan.unwrap_or((Duration::ZERO, None, 0));
        let mut deltas = shapes::words(&state.name);
        if n > deltas.len() {
            deltas.extend((deltas.len()..n).map(|i| format!(" w{i}")));
        }
        let events = if path == "/v1/responses" {
            let model = model_or("gpt-4o-2024-08-06");
            shapes::responses_stream(
                &state.next_id("resp_"),
                &state.next_id("msg_"),
                created,
                &model,
                &deltas,
                body,
            )
        } else {
            let model = model_or("gpt-4o-2024-08-06");
            let usage = body
                .and_then(|b| b.pointer("/stream_options/include_usage"))
                .and_then(Value::as_bool)
                .unwrap_or(false);
            shapes::chat_stream(&state.next_id("chatcmpl-"), created, &model, &deltas, usage)
        };
        return sse_response(state, ctl, events, gap, abort);
    }

    let text = shapes::words(&state.name).concat();
    match (method, path) {
        ("POST", "/v1/chat/completions") => ok(shapes::chat_completion(
            &state.next_id("chatcmpl-"),
            created,
            &model_or("gpt-4o-2024-08-06"),
            &text,
        )),
        ("POST", "/v1/responses") => ok(shapes::response_object(
            &state.next_id("resp_"),
            &state.next_id("msg_"),
            created,
            &model_or("gpt-4o-2024-08-06"),
            Some(&text),
            body,
        )),
        ("POST", "/v1/embeddings") => ok(shapes::embeddings(body, &model_or("text-embedding-3-small"))),
        ("POST", "/v1/moderations") => ok(shapes::moderation(
            &state.next_id("modr-"),
            body,
            &model_or("omni-moderation-latest"),
        )),
        ("POST", "/v1/images/generations") => ok(shapes::images(created, body, &state.base_url)),
        ("POST", "/v1/audio/transcriptions") | ("POST", "/v1/audio/translations") => {
            let parts = multipart_parts(rec);
            let format = field(&parts, "response_format").unwrap_or_default();
            let said = format!("mock transcript from {}", state.name);
            match format.as_str() {
                "text" | "srt" | "vtt" => {
                    let mut r = Response::new(full(format!("{said}\n")));
                    r.headers_mut()
                        .insert(http::header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
                    common_headers(state, r.headers_mut());
                    r
                }
                "verbose_json" => ok(json!({
                    "task": if path.ends_with("translations") { "translate" } else { "transcribe" },
                    "language": "english", "duration": 1.0, "text": said, "segments": [], "words": []
                })),
                _ => ok(json!({"text": said})),
            }
        }
        ("POST", "/v1/audio/speech") => {
            let mut r = Response::new(full(Bytes::from_static(shapes::MP3_BYTES)));
            r.headers_mut()
                .insert(http::header::CONTENT_TYPE, HeaderValue::from_static("audio/mpeg"));
            common_headers(state, r.headers_mut());
            r
        }
        ("POST", "/v1/files") => {
            let parts = multipart_parts(rec);
            let file = parts.iter().find(|p| p.name == "file");
            let purpose = field(&parts, "purpose").unwrap_or_else(|| "user_data".into());
            let filename = file
                .and_then(|f| f.filename.clone())
                .unwrap_or_else(|| "upload".into());
            let size = file.map_or(rec.body.len(), |f| f.data.len());
            let obj = shapes::file_object(&state.next_id("file-"), created, size, &filename, &purpose);
            lock(&state.files).push(obj.clone());
            ok(obj)
        }
        ("GET", "/v1/files") => ok(shapes::list(lock(&state.files).clone())),
        ("GET", "/v1/models") => ok(shapes::models()),
        ("GET", p) if p.starts_with("/v1/models/") => ok(shapes::model(&p["/v1/models/".len()..])),
        ("POST", "/v1/batches") => ok(shapes::batch(&state.next_id("batch_"), created, body)),
        _ => ok(json!({"ok": true, "path": rec.path_and_query, "upstream": state.name})),
    }
}

fn multipart_parts(rec: &Recorded) -> Vec<multipart::Part> {
    rec.header("content-type")
        .and_then(|ct| multipart::boundary(&ct))
        .map(|b| multipart::parse(&rec.body, &b))
        .unwrap_or_default()
}

fn field(parts: &[multipart::Part], name: &str) -> Option<String> {
    parts
        .iter()
        .find(|p| p.name == name)
        .map(|p| String::from_utf8_lossy(&p.data).into_owned())
}

#[cfg(test)]
mod tests;
