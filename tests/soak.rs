//! Issue 6, part 4: a soak. Sustained mixed load (allowed, rewritten, denied, invalid, streamed,
//! buffered uploads, streamed uploads) for `SOAK_SECS` seconds (default 20, so CI stays fast),
//! sampling the proxy's VmRSS every second. The RSS must stay bounded: after a warm-up, the
//! end of the run may not sit clearly above its early plateau.
//!
//! A long run: `SOAK_SECS=300 cargo test --test soak -- --nocapture`.
//!
//! Recorded 2026-11-29 (debug build, 6 workers, niced, sharing 2 cores with fuzzers): 300 s,
//! 62 885 requests (210/s: 18 863 allowed, 6 288 rewritten, 6 288 denied, 6 289 invalid,
//! 12 578 streamed, 6 290 audio uploads of 64 KiB, 6 289 file uploads of 256 KiB); VmRSS
//! 15.6 MiB before the load, 18.7–19.6 MiB throughout (peak 19.6 MiB), 19.2 MiB at the end.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::*;
use tokio::io::AsyncWriteExt;

const WORKERS: usize = 6;

/// The request kinds, their share of the mix, and what each must answer.
#[derive(Clone, Copy, Debug)]
enum Kind {
    Allowed,
    Rewritten,
    Denied,
    Invalid,
    Streamed,
    AudioUpload,
    FileUpload,
}

const MIX: [Kind; 10] = [
    Kind::Allowed,
    Kind::Allowed,
    Kind::Rewritten,
    Kind::Denied,
    Kind::Invalid,
    Kind::Streamed,
    Kind::Streamed,
    Kind::AudioUpload,
    Kind::FileUpload,
    Kind::Allowed,
];

fn multipart(parts: &[(&str, Option<&str>, &[u8])]) -> Vec<u8> {
    let mut b = Vec::new();
    for (name, filename, content) in parts {
        b.extend_from_slice(b"--SoakB\r\nContent-Disposition: form-data; name=\"");
        b.extend_from_slice(name.as_bytes());
        b.push(b'"');
        if let Some(f) = filename {
            b.extend_from_slice(
                format!("; filename=\"{f}\"\r\nContent-Type: application/octet-stream").as_bytes(),
            );
        }
        b.extend_from_slice(b"\r\n\r\n");
        b.extend_from_slice(content);
        b.extend_from_slice(b"\r\n");
    }
    b.extend_from_slice(b"--SoakB--\r\n");
    b
}

/// The request bytes for `kind` (iteration `i` varies the content) and the expected status.
fn request(addr: SocketAddr, kind: Kind, i: u64) -> (Vec<u8>, u16) {
    let json = |project: &str, body: String| {
        build_request(
            addr,
            "POST",
            "/v1/chat/completions",
            &[("OpenAI-Project", project), ("Content-Type", "application/json")],
            body.as_bytes(),
        )
    };
    let msg = format!("soak message {i} {}", "x".repeat((i % 512) as usize));
    match kind {
        Kind::Allowed => (
            json(
                "proj_eu",
                format!(
                    r#"{{"model":"gpt-4o-2024-08-06","messages":[{{"role":"user","content":"{msg}"}}]}}"#
                ),
            ),
            200,
        ),
        Kind::Rewritten => (
            json(
                "proj_eu",
                format!(
                    r#"{{"model":"gpt-4o","store":true,"messages":[{{"role":"user","content":"{msg}"}}]}}"#
                ),
            ),
            200,
        ),
        Kind::Denied => (
            json(
                "proj_eu",
                format!(r#"{{"model":"gpt-4","messages":[{{"role":"user","content":"{msg}"}}]}}"#),
            ),
            403,
        ),
        Kind::Invalid => (
            json(
                "proj_eu",
                format!(r#"{{"model":"gpt-4o-2024-08-06","model":"{i}"}}"#),
            ),
            400,
        ),
        Kind::Streamed => (
            json(
                "proj_eu",
                format!(
                    r#"{{"model":"gpt-4o-2024-08-06","stream":true,"messages":[{{"role":"user","content":"{msg}"}}]}}"#
                ),
            ),
            200,
        ),
        Kind::AudioUpload => {
            let audio = vec![(i % 251) as u8; 64 * 1024];
            let body = multipart(&[("model", None, b"whisper-1"), ("file", Some("a.wav"), &audio)]);
            (
                build_request(
                    addr,
                    "POST",
                    "/v1/audio/transcriptions",
                    &[
                        ("OpenAI-Project", "proj_eu"),
                        ("Content-Type", "multipart/form-data; boundary=SoakB"),
                    ],
                    &body,
                ),
                200,
            )
        }
        Kind::FileUpload => {
            let data = vec![b'f'; 256 * 1024];
            let body = multipart(&[("purpose", None, b"assistants"), ("file", Some("f.bin"), &data)]);
            (
                build_request(
                    addr,
                    "POST",
                    "/v1/files",
                    &[
                        ("OpenAI-Project", "proj_us"),
                        ("Content-Type", "multipart/form-data; boundary=SoakB"),
                    ],
                    &body,
                ),
                200,
            )
        }
    }
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

fn median(mut v: Vec<u64>) -> u64 {
    v.sort_unstable();
    v[v.len() / 2]
}

/// One worker: keep-alive connections, reopened when the proxy closes one.
async fn worker(
    addr: SocketAddr,
    seed: u64,
    stop: Arc<AtomicBool>,
    done: Arc<AtomicU64>,
    counts: Arc<[AtomicU64; 7]>,
) {
    let mut conn: Option<Conn> = None;
    let mut i = seed;
    while !stop.load(Ordering::Relaxed) {
        i += 1;
        let kind = MIX[(i as usize) % MIX.len()];
        let (req, want) = request(addr, kind, i);
        // A kept-alive connection may be closed under us; a fresh one must answer.
        let mut answer = None;
        for _ in 0..2 {
            let mut c = match conn.take() {
                Some(c) => c,
                None => Conn::open(addr, b"").await,
            };
            if c.stream().write_all(&req).await.is_err() {
                continue;
            }
            match tokio::time::timeout(Duration::from_secs(20), c.response(false)).await {
                Ok(Some(r)) => {
                    answer = Some((r, c));
                    break;
                }
                Ok(None) => continue,
                Err(_) => panic!("{kind:?}: no response in 20 s"),
            }
        }
        let (r, c) = answer.unwrap_or_else(|| panic!("{kind:?}: no response on a fresh connection"));
        assert_eq!(r.status, want, "{kind:?}: {r:#?}");
        if let Kind::Streamed = kind {
            assert!(r.text().ends_with("data: [DONE]\n\n"), "{}", r.text());
        }
        counts[kind as usize].fetch_add(1, Ordering::Relaxed);
        done.fetch_add(1, Ordering::Relaxed);
        // The harness reads a chunked body up to its last chunk, not past it: do not reuse.
        if r.header("connection") != Some("close") && !r.chunked {
            conn = Some(c);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_rss_stays_bounded() {
    let secs: u64 = std::env::var("SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let env = Env::standard().await;
    let pid = env.proxy.pid();
    let addr = env.proxy.addr;
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let counts: Arc<[AtomicU64; 7]> = Arc::new(Default::default());
    let start_rss = rss_kib(pid);
    let tasks: Vec<_> = (0..WORKERS as u64)
        .map(|w| {
            tokio::spawn(worker(
                addr,
                w * 1_000_003,
                stop.clone(),
                done.clone(),
                counts.clone(),
            ))
        })
        .collect();
    let started = Instant::now();
    let mut samples = Vec::new();
    while started.elapsed() < Duration::from_secs(secs) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        // The mocks record every request: forget them so only the proxy's memory is measured.
        env.eu.clear();
        env.us.clear();
        samples.push(rss_kib(pid));
    }
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    let total = done.load(Ordering::Relaxed);
    let n = samples.len();
    let peak = *samples.iter().max().unwrap();
    let end = *samples.last().unwrap();
    // Early plateau: 25–50 % of the run (after warm-up); late: the last 25 %.
    let early = median(samples[n / 4..n / 2].to_vec());
    let late = median(samples[n * 3 / 4..].to_vec());
    let kinds: Vec<String> = [
        "allowed",
        "rewritten",
        "denied",
        "invalid",
        "streamed",
        "audio",
        "file",
    ]
    .iter()
    .zip(counts.iter())
    .map(|(k, c)| format!("{k}={}", c.load(Ordering::Relaxed)))
    .collect();
    println!(
        "SOAK ({} build): {secs} s, {total} requests ({:.0}/s; {}), VmRSS KiB start {start_rss} early {early} \
         peak {peak} late {late} end {end}",
        if cfg!(debug_assertions) { "debug" } else { "release" },
        total as f64 / secs as f64,
        kinds.join(" ")
    );
    println!("SOAK samples (KiB, 1/s): {samples:?}");
    assert!(total > secs * 20, "the load did not run: {total} requests");
    assert!(
        late <= early + early / 5 + 4096,
        "RSS grows: early plateau {early} KiB, last quarter {late} KiB"
    );
    assert!(peak < 256 * 1024, "peak RSS {peak} KiB");
    // Still healthy afterwards.
    let r = env
        .post_as(
            "proj_eu",
            "/v1/chat/completions",
            r#"{"model":"gpt-4o-2024-08-06","messages":[]}"#,
        )
        .await;
    assert_eq!(r.status, 200);
}
