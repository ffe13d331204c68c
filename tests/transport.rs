//! Transports through the proxy: streaming responses (timing, cancellation both ways),
//! realtime websockets, large streamed uploads (memory bound, byte exactness), and client
//! protocol variants (HTTP/1.1 keep-alive, h2c prior knowledge, `Expect: 100-continue`,
//! chunked request bodies, TLS with ALPN h2).
//!
//! Upstreams are the recording mock (`mock-openai`) or, where a test must observe something
//! the mock does not record (the proxy closing an upstream stream; hashing 256 MiB as it
//! streams), small upstreams in tests/support.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
// Test plumbing: a websocket error is large, and a multipart part is a tuple on purpose.
#![allow(clippy::result_large_err, clippy::type_complexity)]

mod support;

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::{self, client::IntoClientRequest, Error as WsError, Message, WebSocket};

const CHAT_MODEL: &str = "gpt-4o-2024-08-06";

async fn mocks_and_proxy() -> (MockUpstream, MockUpstream, Proxy) {
    let (eu, us) = mocks().await;
    let proxy = Proxy::start(&two_project_config(&eu.base_url(), &us.base_url(), ""), &[]).await;
    (eu, us, proxy)
}

fn chat_body(content: &str, stream: bool) -> String {
    serde_json::json!({
        "model": CHAT_MODEL,
        "stream": stream,
        "messages": [{"role": "user", "content": content}],
    })
    .to_string()
}

fn assert_denied(res: &Resp, what: &str) {
    assert_eq!(res.status, 403, "{what}: status; body {}", res.text());
    assert_eq!(
        res.header("x-should-retry"),
        Some("false"),
        "{what}: x-should-retry"
    );
    assert_eq!(
        res.header("x-residency-decision"),
        Some("deny"),
        "{what}: decision"
    );
    let v = res.json();
    assert_eq!(v["error"]["code"], "residency_policy_violation", "{what}: {v}");
    assert_eq!(v["error"]["type"], "invalid_request_error", "{what}: {v}");
    assert!(v["error"]["message"].is_string(), "{what}: {v}");
    assert!(v["error"].get("param").is_some(), "{what}: {v}");
}

/// The SSE stream of a raw HTTP/1.1 response, as it arrives: the time of the first `data:`
/// line, and how the stream ended.
struct StreamTiming {
    first_event: Option<Duration>,
    events: usize,
    total: Duration,
    /// The response ended with the chunked terminator (a complete body).
    clean_end: bool,
    /// The read timed out before the stream ended.
    timed_out: bool,
    raw: Vec<u8>,
}

async fn send_and_time_stream(
    addr: SocketAddr,
    headers: &[(&str, &str)],
    body: &str,
    limit: Duration,
) -> (u16, Vec<(String, String)>, StreamTiming) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let started = Instant::now();
    stream
        .write_all(&build_request(
            addr,
            "POST",
            "/v1/chat/completions",
            headers,
            body.as_bytes(),
        ))
        .await
        .unwrap();
    let mut r = BufReader::new(stream);
    let (status, _, head) = tokio::time::timeout(limit, support::read_head(&mut r))
        .await
        .expect("response head in time")
        .expect("response head");
    let mut raw = Vec::new();
    let mut first_event = None;
    let mut buf = [0u8; 8192];
    let mut timed_out = false;
    loop {
        let left = limit.saturating_sub(started.elapsed());
        match tokio::time::timeout(left, r.read(&mut buf)).await {
            Err(_) => {
                timed_out = true;
                break;
            }
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => {
                raw.extend_from_slice(&buf[..n]);
                if first_event.is_none() && contains(&raw, b"data:") {
                    first_event = Some(started.elapsed());
                }
                if raw.ends_with(b"\r\n0\r\n\r\n") || raw == b"0\r\n\r\n" {
                    break;
                }
            }
        }
    }
    let events = count(&raw, b"data:");
    let clean_end = raw.ends_with(b"0\r\n\r\n");
    (
        status,
        head,
        StreamTiming {
            first_event,
            events,
            total: started.elapsed(),
            clean_end,
            timed_out,
            raw,
        },
    )
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn count(hay: &[u8], needle: &[u8]) -> usize {
    hay.windows(needle.len()).filter(|w| *w == needle).count()
}

// ---------------------------------------------------------------------------------------------
// Streaming
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_events_reach_the_client_while_the_upstream_is_still_sending() {
    let (eu, _us, proxy) = mocks_and_proxy().await;
    let (status, head, t) = send_and_time_stream(
        proxy.addr,
        &[
            ("Content-Type", "application/json"),
            ("x-mock-behavior", "slow-sse"),
        ],
        &chat_body("slow stream", true),
        Duration::from_secs(15),
    )
    .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&t.raw));
    let get = |n: &str| {
        head.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(n))
            .map(|(_, v)| v.as_str())
    };
    assert!(get("content-type").is_some_and(|v| v.starts_with("text/event-stream")));
    assert_eq!(get("x-residency-decision"), Some("allow"));
    let first = t.first_event.expect("an SSE event");
    println!(
        "slow-sse: first event after {first:?}, {} events in {:?}",
        t.events, t.total
    );
    // The mock spaces its 10 events 200 ms apart (about 1.8 s of streaming).
    let spread = mock_openai::SLOW_SSE_GAP * (mock_openai::SLOW_SSE_EVENTS as u32 - 1);
    assert!(t.clean_end && !t.timed_out, "the stream completes");
    assert!(
        t.total >= spread,
        "the stream took {:?}, expected at least {spread:?}",
        t.total
    );
    assert!(
        first < Duration::from_millis(700) && first * 3 < t.total,
        "first event after {first:?} of {:?}: the proxy is buffering the stream",
        t.total
    );
    assert!(contains(&t.raw, b"[DONE]"), "the [DONE] sentinel is forwarded");
    assert_eq!(eu.requests().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_disconnect_mid_stream_cancels_the_upstream_request() {
    let mut up = WatchingUpstream::start(Duration::from_millis(100), 300).await;
    let proxy = Proxy::start(&two_project_config(&up.base_url(), &up.base_url(), ""), &[]).await;
    let mut stream = TcpStream::connect(proxy.addr).await.unwrap();
    let body = chat_body("cancel me", true);
    stream
        .write_all(&build_request(
            proxy.addr,
            "POST",
            "/v1/chat/completions",
            &[("Content-Type", "application/json")],
            body.as_bytes(),
        ))
        .await
        .unwrap();
    // Read until two events have arrived, then hang up.
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(10);
    while count(&raw, b"data:") < 2 {
        let n = tokio::time::timeout_at(deadline.into(), stream.read(&mut buf))
            .await
            .expect("two events within 10 s")
            .unwrap();
        assert!(n > 0, "proxy closed early: {}", String::from_utf8_lossy(&raw));
        raw.extend_from_slice(&buf[..n]);
    }
    assert!(
        raw.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&raw)
    );
    match up.events.recv().await {
        Some(UpstreamEvent::Request(head)) => assert!(head.starts_with("POST /v1/chat/completions")),
        other => panic!("expected the request at the upstream, got {other:?}"),
    }
    let hung_up = Instant::now();
    drop(stream);
    let ev = tokio::time::timeout(Duration::from_secs(3), up.events.recv())
        .await
        .expect("the proxy must close the upstream request within 3 s of the client leaving");
    match ev {
        Some(UpstreamEvent::ClientGone { events_sent, .. }) => {
            println!(
                "upstream saw the proxy hang up {:?} after the client did ({events_sent} events sent)",
                hung_up.elapsed()
            );
            assert!(events_sent < 300);
        }
        other => panic!("expected the upstream connection to be closed, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_disconnect_mid_stream_ends_the_client_stream_promptly() {
    let (eu, _us, proxy) = mocks_and_proxy().await;
    let (status, _, t) = send_and_time_stream(
        proxy.addr,
        &[
            ("Content-Type", "application/json"),
            ("x-mock-behavior", "drop-mid-stream"),
        ],
        &chat_body("drop me", true),
        Duration::from_secs(5),
    )
    .await;
    println!(
        "drop-mid-stream: status {status}, {} events, ended after {:?}, clean_end={}, timed_out={}",
        t.events, t.total, t.clean_end, t.timed_out
    );
    assert_eq!(eu.requests().len(), 1);
    assert!(!t.timed_out, "the client stream hung after the upstream dropped");
    assert!(
        t.total < Duration::from_secs(2),
        "the client stream ended after {:?}",
        t.total
    );
    if status == 200 {
        assert!(t.events >= 1, "the events sent before the drop are forwarded");
        assert!(!contains(&t.raw, b"[DONE]"));
        // A broken upstream body must not be passed off as a complete response.
        assert!(
            !t.clean_end,
            "the proxy ended the chunked body cleanly after the upstream broke off: the client cannot tell it was truncated"
        );
    } else {
        assert!(status == 502 || status == 504, "status {status}");
    }
}

// ---------------------------------------------------------------------------------------------
// Realtime websockets
// ---------------------------------------------------------------------------------------------

fn ws_request(proxy: &Proxy, project: &str, model: &str) -> http::Request<()> {
    let url = format!("ws://{}/v1/realtime?model={model}", proxy.addr);
    let mut req = url.into_client_request().unwrap();
    let h = req.headers_mut();
    h.insert("authorization", "Bearer sk-test-realtime".parse().unwrap());
    h.insert("openai-project", project.parse().unwrap());
    h.insert("openai-beta", "realtime=v1".parse().unwrap());
    req
}

type WsResult = Result<
    (
        WebSocket<std::net::TcpStream>,
        tungstenite::handshake::client::Response,
    ),
    tungstenite::HandshakeError<tungstenite::ClientHandshake<std::net::TcpStream>>,
>;

/// A blocking websocket client handshake (tungstenite) through the proxy.
fn ws_connect(addr: SocketAddr, req: http::Request<()>) -> WsResult {
    let tcp = std::net::TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    tungstenite::client(req, tcp)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn realtime_websocket_frames_pass_both_ways_untouched() {
    let (eu, us, proxy) = mocks_and_proxy().await;
    let (addr, req) = (proxy.addr, ws_request(&proxy, US_PROJECT, REALTIME_MODEL));
    tokio::task::spawn_blocking(move || {
        let (mut ws, res) = match ws_connect(addr, req) {
            Ok(ok) => ok,
            Err(tungstenite::HandshakeError::Failure(WsError::Http(res))) => panic!(
                "websocket upgrade refused: {} {}",
                res.status(),
                String::from_utf8_lossy(res.body().as_deref().unwrap_or_default())
            ),
            Err(e) => panic!("websocket handshake through the proxy: {e}"),
        };
        assert_eq!(res.status(), 101);
        assert_eq!(
            res.headers()
                .get("x-residency-region")
                .and_then(|v| v.to_str().ok()),
            Some("us"),
            "the 101 carries the residency headers"
        );
        let hello = ws.read().expect("session.created from the upstream");
        let hello: serde_json::Value = serde_json::from_str(hello.to_text().unwrap()).unwrap();
        assert_eq!(hello["type"], "session.created");
        assert_eq!(hello["session"]["model"], REALTIME_MODEL);

        let text = r#"{"type":"session.update","session":{"instructions":"ünïcødé ✓ \u0000 kept"}}"#;
        ws.send(Message::text(text)).unwrap();
        assert_eq!(
            ws.read().unwrap(),
            Message::text(text),
            "text frame echoed unchanged"
        );

        let binary: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
        ws.send(Message::binary(binary.clone())).unwrap();
        assert_eq!(
            ws.read().unwrap(),
            Message::binary(binary),
            "binary frame (70 kB) echoed unchanged"
        );

        for i in 0..20 {
            ws.write(Message::text(format!("{{\"type\":\"ping\",\"n\":{i}}}")))
                .unwrap();
        }
        ws.flush().unwrap();
        for i in 0..20 {
            assert_eq!(
                ws.read().unwrap(),
                Message::text(format!("{{\"type\":\"ping\",\"n\":{i}}}"))
            );
        }
        ws.close(None).unwrap();
        // Drain until the close handshake completes.
        while ws.read().is_ok() {}
    })
    .await
    .unwrap();

    let recs = us.requests();
    assert_eq!(recs.len(), 1, "one upgrade request at the us upstream");
    let r = &recs[0];
    assert_eq!(r.method, "GET");
    assert_eq!(r.path_and_query, format!("/v1/realtime?model={REALTIME_MODEL}"));
    assert_eq!(r.host.as_deref(), Some(us.addr().to_string().as_str()));
    assert!(r
        .header("upgrade")
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket")));
    assert_eq!(eu.connections(), 0, "nothing reached the eu upstream");
}

async fn expect_ws_denied(proxy: &Proxy, project: &str, model: &str, what: &'static str) {
    let (addr, req) = (proxy.addr, ws_request(proxy, project, model));
    let res = tokio::task::spawn_blocking(move || match ws_connect(addr, req) {
        Ok(_) => panic!("{what}: the upgrade was accepted"),
        Err(tungstenite::HandshakeError::Failure(WsError::Http(res))) => res,
        Err(e) => panic!("{what}: expected an HTTP refusal, got {e}"),
    })
    .await
    .unwrap();
    let raw = Resp {
        status: res.status().as_u16(),
        version: format!("{:?}", res.version()),
        headers: res
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
            .collect(),
        body: res.body().clone().unwrap_or_default(),
        chunked: false,
    };
    assert_denied(&raw, what);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn realtime_upgrade_is_refused_outside_its_region_or_model() {
    let (eu, us, proxy) = mocks_and_proxy().await;
    expect_ws_denied(&proxy, EU_PROJECT, REALTIME_MODEL, "realtime in an eu project").await;
    expect_ws_denied(
        &proxy,
        US_PROJECT,
        "gpt-4o-realtime-preview",
        "a realtime alias, not a snapshot",
    )
    .await;
    expect_ws_denied(&proxy, US_PROJECT, CHAT_MODEL, "a non-realtime model").await;
    assert_eq!(
        eu.connections() + us.connections(),
        0,
        "a refused upgrade opens no upstream connection"
    );
}

// ---------------------------------------------------------------------------------------------
// Uploads
// ---------------------------------------------------------------------------------------------

/// A large multipart upload generated block by block: `pre`, then `blocks` copies of `base`
/// each stamped with its index in its first 8 bytes, then `epi`. Never held in memory whole;
/// [`Upload::check`] compares any received range with what was sent (memcmp speed, where
/// hashing 256 MiB twice in a debug build takes most of a minute).
struct Upload {
    pre: Vec<u8>,
    base: Vec<u8>,
    epi: Vec<u8>,
    blocks: u64,
}

impl Upload {
    fn new(pre: &str, epi: &str, block: usize, blocks: u64) -> Upload {
        let mut base = vec![0u8; block];
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        for word in base.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            word.copy_from_slice(&x.to_le_bytes()[..word.len()]);
        }
        Upload {
            pre: pre.as_bytes().to_vec(),
            base,
            epi: epi.as_bytes().to_vec(),
            blocks,
        }
    }

    fn total(&self) -> u64 {
        self.pre.len() as u64 + self.base.len() as u64 * self.blocks + self.epi.len() as u64
    }

    fn block(&self, i: u64, out: &mut Vec<u8>) {
        out.clear();
        out.extend_from_slice(&self.base);
        out[..8].copy_from_slice(&i.to_le_bytes());
    }

    /// Whether `data`, received at offset `at`, is what was sent there.
    fn check(&self, mut at: u64, mut data: &[u8]) -> bool {
        let pre = self.pre.len() as u64;
        let bl = self.base.len() as u64;
        let body_end = pre + bl * self.blocks;
        while !data.is_empty() {
            let n;
            if at < pre {
                let want = &self.pre[at as usize..];
                n = want.len().min(data.len());
                if want[..n] != data[..n] {
                    return false;
                }
            } else if at < body_end {
                let off = at - pre;
                let (i, inb) = (off / bl, (off % bl) as usize);
                n = (bl as usize - inb).min(data.len());
                let stamp = i.to_le_bytes();
                let mut j = 0;
                while inb + j < 8 && j < n {
                    if data[j] != stamp[inb + j] {
                        return false;
                    }
                    j += 1;
                }
                if data[j..n] != self.base[inb + j..inb + n] {
                    return false;
                }
            } else {
                let k = (at - body_end) as usize;
                if k >= self.epi.len() {
                    return false;
                }
                let want = &self.epi[k..];
                n = want.len().min(data.len());
                if want[..n] != data[..n] {
                    return false;
                }
            }
            at += n as u64;
            data = &data[n..];
        }
        true
    }
}

#[test]
fn the_upload_checker_notices_a_changed_byte() {
    let u = Upload::new("PRE", "EPI", 64, 3);
    let mut all = u.pre.clone();
    let mut b = Vec::new();
    for i in 0..u.blocks {
        u.block(i, &mut b);
        all.extend_from_slice(&b);
    }
    all.extend_from_slice(&u.epi);
    assert_eq!(all.len() as u64, u.total());
    assert!(u.check(0, &all));
    for split in [1, 3, 5, 67, 70, 131, 190, 197] {
        assert!(
            u.check(0, &all[..split]) && u.check(split as u64, &all[split..]),
            "split {split}"
        );
    }
    for at in [0, 3, 4, 10, 67, 100, 195, all.len() - 1] {
        let mut bad = all.clone();
        bad[at] ^= 1;
        assert!(!u.check(0, &bad), "a flipped byte at {at} went unnoticed");
    }
    assert!(
        !u.check(0, &[all.clone(), b"x".to_vec()].concat()),
        "a trailing extra byte"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_256_mib_file_upload_streams_through_in_bounded_memory() {
    const SIZE: u64 = 256 * 1024 * 1024;
    const BLOCK: usize = 1024 * 1024;
    let boundary = "----rp-transport-upload-7d1f0c";
    let preamble = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nassistants\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n"
    );
    let epilogue = format!("\r\n--{boundary}--\r\n");
    let upload = Arc::new(Upload::new(&preamble, &epilogue, BLOCK, SIZE / BLOCK as u64));
    let total = upload.total();
    let check = upload.clone();
    let up = HashingUpstream::start_with(Some(Arc::new(move |at, data: &[u8]| check.check(at, data)))).await;
    let proxy = Proxy::start(&two_project_config(&up.base_url(), &up.base_url(), ""), &[]).await;
    let (rss_before, _) = proxy.memory_kib();

    // Sample the proxy's RSS while the upload runs.
    let pid = proxy.pid();
    let stop = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(AtomicU64::new(0));
    let sampler = {
        let (stop, peak) = (stop.clone(), peak.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let (rss, _) = support::proc_memory_kib(pid);
                peak.fetch_max(rss, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };

    let ctype = format!("multipart/form-data; boundary={boundary}");
    let head = format!(
        "POST /v1/files HTTP/1.1\r\nHost: proxy.test\r\nAuthorization: Bearer sk-test\r\nOpenAI-Project: {US_PROJECT}\r\nContent-Type: {ctype}\r\nContent-Length: {total}\r\n\r\n"
    );

    let started = Instant::now();
    let stream = TcpStream::connect(proxy.addr).await.unwrap();
    let (rd, mut wr) = stream.into_split();
    // Read the response concurrently: a proxy may answer early (e.g. a refusal).
    let reader = tokio::spawn(async move {
        let mut r = BufReader::new(rd);
        read_response(&mut r, false).await
    });
    wr.write_all(head.as_bytes()).await.unwrap();
    wr.write_all(&upload.pre).await.unwrap();
    let mut block = Vec::with_capacity(BLOCK);
    let mut write_error = None;
    for i in 0..upload.blocks {
        upload.block(i, &mut block);
        if let Err(e) = wr.write_all(&block).await {
            write_error = Some((i, e));
            break;
        }
    }
    if write_error.is_none() {
        wr.write_all(&upload.epi).await.unwrap();
    }
    let res = tokio::time::timeout(Duration::from_secs(120), reader)
        .await
        .expect("a response within 120 s")
        .unwrap();
    let elapsed = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    sampler.await.unwrap();
    let (rss_after, hwm) = proxy.memory_kib();
    let peak_kib = peak.load(Ordering::Relaxed).max(rss_after);
    println!(
        "256 MiB upload: {:.1} s ({:.0} MiB/s); proxy RSS before {} KiB, sampled peak {} KiB, after {} KiB, VmHWM {} KiB",
        elapsed.as_secs_f64(),
        (total as f64 / 1048576.0) / elapsed.as_secs_f64(),
        rss_before,
        peak_kib,
        rss_after,
        hwm
    );
    let res = res.unwrap_or_else(|e| panic!("no response to the upload ({e}); write error: {write_error:?}"));
    assert_eq!(res.status, 200, "upload status; body {}", res.text());
    assert!(
        write_error.is_none(),
        "the proxy stopped reading the upload: {write_error:?}"
    );
    let seen = up.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1, "one request upstream");
    assert_eq!(seen[0].body_len, total, "every byte reached the upstream");
    assert_eq!(
        seen[0].first_mismatch, None,
        "the upstream received exactly the bytes sent"
    );
    assert!(
        seen[0]
            .head
            .to_ascii_lowercase()
            .contains(&format!("content-type: {ctype}").to_ascii_lowercase()),
        "multipart content-type (boundary) forwarded: {}",
        seen[0].head
    );
    assert!(hwm > 0, "could not read /proc/{pid}/status");
    assert!(
        hwm < 64 * 1024,
        "the proxy's peak RSS was {hwm} KiB while streaming 256 MiB: it buffers the upload"
    );
}

fn multipart(boundary: &str, parts: &[(&str, Option<(&str, &str)>, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, file, data) in parts {
        out.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        match file {
            Some((filename, ctype)) => out.extend_from_slice(
                format!(
                    "Content-Disposition: form-data; name=\"{name}\"; filename=\"{filename}\"\r\nContent-Type: {ctype}\r\n\r\n"
                )
                .as_bytes(),
            ),
            None => out.extend_from_slice(format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes()),
        }
        out.extend_from_slice(data);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multipart_audio_transcription_is_forwarded_byte_for_byte() {
    let (eu, _us, proxy) = mocks_and_proxy().await;
    let boundary = "rp-audio-boundary-0a1b2c";
    let wav = support::wav(1500);
    let body = multipart(
        boundary,
        &[
            ("file", Some(("tone.wav", "audio/wav")), &wav),
            ("model", None, b"whisper-1"),
            ("response_format", None, b"json"),
            ("language", None, b"en"),
        ],
    );
    let ctype = format!("multipart/form-data; boundary={boundary}");
    let res = http1_request(
        proxy.addr,
        "POST",
        "/v1/audio/transcriptions",
        &[("Content-Type", &ctype), ("Authorization", "Bearer sk-test")],
        &body,
    )
    .await;
    assert_eq!(res.status, 200, "{}", res.text());
    assert_eq!(res.header("x-residency-decision"), Some("allow"));
    assert!(res.json()["text"].is_string());
    let recs = eu.requests();
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].header("content-type").as_deref(), Some(ctype.as_str()));
    assert_eq!(recs[0].body.len(), body.len(), "length");
    assert!(
        recs[0].body[..] == body[..],
        "the multipart body reached the upstream unchanged"
    );

    // The same upload with a model that is not eligible is refused and never forwarded.
    let bad = multipart(
        boundary,
        &[
            ("file", Some(("tone.wav", "audio/wav")), &wav),
            ("model", None, b"whisper-2"),
        ],
    );
    let res = http1_request(
        proxy.addr,
        "POST",
        "/v1/audio/transcriptions",
        &[("Content-Type", &ctype)],
        &bad,
    )
    .await;
    assert_denied(&res, "ineligible transcription model");
    assert_eq!(eu.requests().len(), 1);
}

// ---------------------------------------------------------------------------------------------
// Client protocols
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http1_keep_alive_serves_many_requests_on_one_connection() {
    let (eu, _us, proxy) = mocks_and_proxy().await;
    let stream = TcpStream::connect(proxy.addr).await.unwrap();
    let mut conn = BufReader::new(stream);
    let chat = chat_body("keep-alive", false);
    let embed = r#"{"model":"text-embedding-3-small","input":"keep-alive"}"#;
    let denied = r#"{"model":"gpt-4o","messages":[{"role":"user","content":"keep-alive deny"}]}"#;
    let steps: Vec<(&str, &str, &str, u16)> = vec![
        ("GET", "/v1/models", "", 200),
        ("POST", "/v1/chat/completions", &chat, 200),
        ("POST", "/v1/chat/completions", denied, 403),
        ("POST", "/v1/embeddings", embed, 200),
        ("GET", "/v1/models/gpt-4o-2024-08-06", "", 200),
    ];
    for (i, (method, path, body, want)) in steps.iter().enumerate() {
        let req = build_request(
            proxy.addr,
            method,
            path,
            &[("Content-Type", "application/json")],
            body.as_bytes(),
        );
        conn.get_mut().write_all(&req).await.unwrap();
        let res = tokio::time::timeout(Duration::from_secs(10), read_response(&mut conn, false))
            .await
            .expect("response in time")
            .unwrap_or_else(|e| panic!("request {i} ({method} {path}) on the kept-alive connection: {e}"));
        assert_eq!(res.status, *want, "request {i} {method} {path}: {}", res.text());
        assert_eq!(res.version, "HTTP/1.1");
        assert!(
            !res.header("connection")
                .is_some_and(|v| v.eq_ignore_ascii_case("close")),
            "request {i}: the proxy closed a keep-alive connection"
        );
    }
    // Pipelined: two requests written at once, answered in order.
    let mut two = build_request(proxy.addr, "GET", "/v1/models", &[], b"");
    two.extend(build_request(
        proxy.addr,
        "POST",
        "/v1/embeddings",
        &[("Content-Type", "application/json")],
        embed.as_bytes(),
    ));
    conn.get_mut().write_all(&two).await.unwrap();
    let a = read_response(&mut conn, false).await.unwrap();
    let b = read_response(&mut conn, false).await.unwrap();
    assert_eq!((a.status, b.status), (200, 200));
    assert_eq!(a.json()["object"], "list");
    assert_eq!(b.json()["data"][0]["object"], "embedding");
    assert_eq!(
        eu.requests().len(),
        6,
        "every allowed request reached the upstream once"
    );
}

/// Runs curl (the real HTTP/2 client used here); None after a skip message when absent.
async fn curl(args: &[&str]) -> Option<(String, Vec<u8>)> {
    let out = tokio::process::Command::new("curl")
        .args(["-sS", "--max-time", "20", "-D", "-"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .await;
    match out {
        Ok(out) => {
            assert!(
                out.status.success(),
                "curl {args:?} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let all = out.stdout;
            let split = all
                .windows(4)
                .rposition(|w| w == b"\r\n\r\n")
                .map_or(all.len(), |p| p + 4);
            // -D - writes every head (including a 100 Continue) before the body.
            let head = String::from_utf8_lossy(&all[..split]).into_owned();
            Some((head, all[split..].to_vec()))
        }
        Err(e) => {
            if support::in_ci() {
                panic!("curl is needed for the HTTP/2 tests under CI: {e}");
            }
            eprintln!("SKIPPED: curl not available ({e})");
            None
        }
    }
}

fn curl_header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().rev().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_prior_knowledge_requests_and_streams() {
    let (eu, _us, proxy) = mocks_and_proxy().await;
    let base = format!("http://{}/v1", proxy.addr);
    let chat = chat_body("over h2c", false);
    let Some((head, body)) = curl(&[
        "--http2-prior-knowledge",
        "-H",
        "Content-Type: application/json",
        "--data-binary",
        &chat,
        &format!("{base}/chat/completions"),
    ])
    .await
    else {
        return;
    };
    assert!(head.starts_with("HTTP/2 200"), "h2c response head: {head}");
    assert_eq!(curl_header(&head, "x-residency-decision"), Some("allow"));
    assert_eq!(curl_header(&head, "x-residency-region"), Some("eu"));
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["object"], "chat.completion");

    let (head, body) = curl(&[
        "--http2-prior-knowledge",
        "-N",
        "-H",
        "Content-Type: application/json",
        "--data-binary",
        &chat_body("stream over h2c", true),
        &format!("{base}/chat/completions"),
    ])
    .await
    .unwrap();
    assert!(head.starts_with("HTTP/2 200"), "{head}");
    assert!(contains(&body, b"chat.completion.chunk") && contains(&body, b"data: [DONE]"));

    let denied = r#"{"model":"gpt-4o","messages":[]}"#;
    let (head, body) = curl(&[
        "--http2-prior-knowledge",
        "-H",
        "Content-Type: application/json",
        "--data-binary",
        denied,
        &format!("{base}/chat/completions"),
    ])
    .await
    .unwrap();
    assert!(head.starts_with("HTTP/2 403"), "{head}");
    assert_eq!(curl_header(&head, "x-should-retry"), Some("false"));
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["error"]["code"], "residency_policy_violation");

    let recs = eu.requests();
    assert_eq!(recs.len(), 2, "two allowed h2c requests reached the upstream");
    assert_eq!(recs[0].host.as_deref(), Some(eu.addr().to_string().as_str()));
    assert_eq!(recs[0].json().unwrap()["messages"][0]["content"], "over h2c");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expect_100_continue_is_answered_before_the_body() {
    let (eu, _us, proxy) = mocks_and_proxy().await;
    let body = chat_body("expect continue", false);
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: proxy.test\r\nContent-Type: application/json\r\nContent-Length: {}\r\nExpect: 100-continue\r\n\r\n",
        body.len()
    );
    let stream = TcpStream::connect(proxy.addr).await.unwrap();
    let mut conn = BufReader::new(stream);
    conn.get_mut().write_all(head.as_bytes()).await.unwrap();
    let interim = tokio::time::timeout(Duration::from_secs(3), support::read_head(&mut conn))
        .await
        .expect("an interim response within 3 s, before any body byte is sent")
        .unwrap();
    assert_eq!(interim.0, 100, "interim status: {interim:?}");
    assert_eq!(interim.1, "HTTP/1.1");
    conn.get_mut().write_all(body.as_bytes()).await.unwrap();
    let res = tokio::time::timeout(Duration::from_secs(10), read_response(&mut conn, false))
        .await
        .expect("final response")
        .unwrap();
    assert_eq!(res.status, 200, "{}", res.text());
    assert_eq!(res.json()["object"], "chat.completion");
    let recs = eu.requests();
    assert_eq!(recs.len(), 1);
    assert_eq!(
        recs[0].json().unwrap()["messages"][0]["content"],
        "expect continue"
    );

    // The same through curl, which sends Expect: 100-continue itself for a large body.
    let big_content = "x".repeat(1_100_000);
    let big = chat_body(&big_content, false);
    let dir = TempDir::new("expect");
    let file = dir.path().join("body.json");
    std::fs::write(&file, &big).unwrap();
    if let Some((head, _)) = curl(&[
        "-H",
        "Content-Type: application/json",
        "-H",
        "Expect: 100-continue",
        "--expect100-timeout",
        "10",
        "--data-binary",
        &format!("@{}", file.display()),
        &format!("http://{}/v1/chat/completions", proxy.addr),
    ])
    .await
    {
        assert!(head.starts_with("HTTP/1.1 100"), "curl saw: {head}");
        assert!(head.contains("HTTP/1.1 200"), "curl saw: {head}");
        let recs = eu.requests();
        assert_eq!(recs.len(), 2);
        assert_eq!(recs[1].body.len(), big.len(), "the large body arrived whole");
    }
}

fn chunked(body: &[u8], sizes: &[usize]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = body;
    let mut i = 0;
    while !rest.is_empty() {
        let n = sizes[i % sizes.len()].min(rest.len());
        out.extend_from_slice(format!("{n:x}\r\n").as_bytes());
        out.extend_from_slice(&rest[..n]);
        out.extend_from_slice(b"\r\n");
        rest = &rest[n..];
        i += 1;
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_request_bodies_are_inspected_and_forwarded() {
    let (eu, _us, proxy) = mocks_and_proxy().await;
    let body = chat_body("chunked ✓ body", false);
    // Chunk boundaries that split the model name, a UTF-8 sequence and the closing brace.
    let wire = chunked(body.as_bytes(), &[1, 7, 13, 3, 64]);
    let mut stream = TcpStream::connect(proxy.addr).await.unwrap();
    let head = "POST /v1/chat/completions HTTP/1.1\r\nHost: proxy.test\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
    stream.write_all(head.as_bytes()).await.unwrap();
    // Dribble the chunks in several writes.
    for piece in wire.chunks(17) {
        stream.write_all(piece).await.unwrap();
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let mut conn = BufReader::new(stream);
    let res = tokio::time::timeout(Duration::from_secs(10), read_response(&mut conn, false))
        .await
        .expect("response")
        .unwrap();
    assert_eq!(res.status, 200, "{}", res.text());
    assert_eq!(res.header("x-residency-decision"), Some("allow"));
    let recs = eu.requests();
    assert_eq!(recs.len(), 1);
    let r = &recs[0];
    let sent: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(r.json(), Some(sent), "the de-chunked JSON reached the upstream");
    let framed = match r.header("content-length") {
        Some(n) => n.parse::<usize>().ok() == Some(r.body.len()),
        None => r
            .header("transfer-encoding")
            .is_some_and(|v| v.contains("chunked")),
    };
    assert!(framed, "upstream request framing: {:?}", r.headers);

    // A chunked body with an ineligible model is refused like any other.
    let bad = r#"{"model":"gpt-4o","messages":[{"role":"user","content":"chunked deny"}]}"#;
    let wire = chunked(bad.as_bytes(), &[5, 2, 9]);
    let mut req = head.as_bytes().to_vec();
    req.extend_from_slice(&wire);
    let stream = TcpStream::connect(proxy.addr).await.unwrap();
    let mut conn = BufReader::new(stream);
    conn.get_mut().write_all(&req).await.unwrap();
    let res = read_response(&mut conn, false).await.unwrap();
    assert_denied(&res, "chunked body with a bare model alias");
    assert_eq!(
        eu.requests().len(),
        1,
        "the denied chunked request was not forwarded"
    );
}

// ---------------------------------------------------------------------------------------------
// TLS on the listener
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_listener_serves_http1_and_h2_by_alpn() {
    let (eu, us) = mocks().await;
    let dir = TempDir::new("tls-transport");
    // curl (OpenSSL underneath) trusts it as its CA file.
    let cert = TestCert::self_signed_ca(&dir.path().join("cert.pem"), &dir.path().join("key.pem"));
    let extra = cert.tls_table();
    let proxy = Proxy::start(&two_project_config(&eu.base_url(), &us.base_url(), &extra), &[]).await;
    let url = format!("https://127.0.0.1:{}/v1/chat/completions", proxy.addr.port());
    let cacert = cert.cert.display().to_string();
    for (flag, want) in [("--http1.1", "HTTP/1.1 200"), ("--http2", "HTTP/2 200")] {
        let Some((head, body)) = curl(&[
            flag,
            "--cacert",
            &cacert,
            "-H",
            "Content-Type: application/json",
            "--data-binary",
            &chat_body(&format!("tls {flag}"), false),
            &url,
        ])
        .await
        else {
            return;
        };
        assert!(head.starts_with(want), "{flag}: {head}");
        assert_eq!(curl_header(&head, "x-residency-decision"), Some("allow"));
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["object"], "chat.completion");
    }
    // Plain HTTP to a TLS listener is not served.
    let plain = TcpStream::connect(proxy.addr).await.unwrap();
    let mut conn = BufReader::new(plain);
    conn.get_mut()
        .write_all(&build_request(proxy.addr, "GET", "/v1/models", &[], b""))
        .await
        .unwrap();
    let r = tokio::time::timeout(Duration::from_secs(15), read_response(&mut conn, false)).await;
    assert!(
        !matches!(r, Ok(Ok(ref res)) if res.status == 200),
        "a plaintext request was served on the TLS listener"
    );
    assert_eq!(eu.requests().len(), 2);
}
