//! Issue 6: chunked request trailers. A trailer field could name what a header names
//! (`OpenAI-Project`, `Content-Type`), and an upstream that merges trailers into its headers
//! would read a request we never checked. The proxy must not forward request trailers.
//! The upstream here is a raw socket, so the exact bytes forwarded are seen.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::Duration;

use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A one-shot raw upstream: records the bytes of the first request (until the end of a chunked
/// body or a pause) and answers 200.
async fn raw_upstream() -> (std::net::SocketAddr, tokio::task::JoinHandle<Vec<u8>>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let h = tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 65536];
        loop {
            match tokio::time::timeout(Duration::from_millis(500), s.read(&mut buf)).await {
                Ok(Ok(n)) if n > 0 => {
                    got.extend_from_slice(&buf[..n]);
                    if got.ends_with(b"\r\n\r\n") && got.windows(4).filter(|w| w == b"\r\n\r\n").count() >= 2
                    {
                        break;
                    }
                }
                _ => break,
            }
        }
        let _ = s
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}")
            .await;
        got
    });
    (addr, h)
}

#[tokio::test]
async fn request_trailers_are_not_forwarded() {
    for (path, project, ct, body) in [
        (
            "/v1/files",
            "proj_us",
            "multipart/form-data; boundary=B",
            "--B\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nassistants\r\n--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a\"\r\n\r\nabc\r\n--B--\r\n",
        ),
        (
            "/v1/chat/completions",
            "proj_us",
            "application/json",
            r#"{"model":"gpt-4o-2024-08-06","messages":[]}"#,
        ),
    ] {
        let (up, recorded) = raw_upstream().await;
        let cfg = format!(
            "[upstream]\nbase_urls = {{ eu = \"http://{up}\", us = \"http://{up}\" }}\n{}",
            standard_projects()
        );
        let proxy = Proxy::start(&cfg, &standard_env()).await;
        let raw = format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nOpenAI-Project: {project}\r\nContent-Type: {ct}\r\n\
Transfer-Encoding: chunked\r\nTrailer: OpenAI-Project, X-Trailer\r\n\r\n{:x}\r\n{body}\r\n0\r\nOpenAI-Project: proj_eu\r\nX-Trailer: smuggled\r\n\r\n",
            body.len()
        );
        let r = send_raw(proxy.addr, raw.as_bytes()).await;
        let got = tokio::time::timeout(Duration::from_secs(5), recorded).await.unwrap().unwrap();
        let text = String::from_utf8_lossy(&got);
        println!("{path}: {} -> upstream got:\n{text}", r.status);
        assert_eq!(r.status, 200, "{path}: {r:#?}");
        assert!(text.contains(body), "{path}: body not forwarded: {text}");
        assert!(!text.contains("smuggled") && !text.to_ascii_lowercase().contains("proj_eu"), "{path}: trailers forwarded:\n{text}");
        assert!(!text.to_ascii_lowercase().contains("\r\ntrailer:"), "{path}: Trailer header forwarded:\n{text}");
    }
}
