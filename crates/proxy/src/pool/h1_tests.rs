//! Our HTTP/1.1 client against scripted upstreams: what goes on the wire, how each response
//! framing is read, and when a connection may carry the next request.
use super::super::*;
use super::*;
use http_body_util::BodyExt;
use std::sync::Mutex as StdMutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// One scripted answer: its pieces are written with a pause between them; `close` ends the
/// connection after it.
#[derive(Clone)]
struct Answer {
    pieces: Vec<&'static [u8]>,
    close: bool,
}

fn answer(pieces: &[&'static [u8]]) -> Answer {
    Answer {
        pieces: pieces.to_vec(),
        close: false,
    }
}

/// What the scripted upstream saw: the raw requests, and how many connections.
#[derive(Default)]
struct Wire {
    requests: StdMutex<Vec<Vec<u8>>>,
    conns: std::sync::atomic::AtomicUsize,
}

/// An upstream that reads one request (head, then a `content-length` body) per answer in
/// turn, across connections, and writes the answer.
async fn scripted(answers: Vec<Answer>) -> (Authority, Arc<Wire>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let auth = Authority::try_from(l.local_addr().unwrap().to_string()).unwrap();
    let wire = Arc::new(Wire::default());
    let seen = wire.clone();
    let answers = Arc::new(StdMutex::new(std::collections::VecDeque::from(answers)));
    tokio::spawn(async move {
        loop {
            let (mut s, _) = l.accept().await.unwrap();
            seen.conns.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let (seen, answers) = (seen.clone(), answers.clone());
            tokio::spawn(async move {
                let mut buf = Vec::new();
                loop {
                    let Some(req) = read_request(&mut s, &mut buf).await else {
                        return;
                    };
                    seen.requests.lock().unwrap().push(req);
                    let Some(a) = answers.lock().unwrap().pop_front() else {
                        return;
                    };
                    for (i, piece) in a.pieces.iter().enumerate() {
                        if i > 0 {
                            tokio::time::sleep(Duration::from_millis(30)).await;
                        }
                        if s.write_all(piece).await.is_err() {
                            return;
                        }
                    }
                    if a.close {
                        return;
                    }
                }
            });
        }
    });
    (auth, wire)
}

async fn read_request(s: &mut tokio::net::TcpStream, buf: &mut Vec<u8>) -> Option<Vec<u8>> {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length: "))
                .map_or(0, |v| v.trim().parse().unwrap());
            if buf.len() >= end + 4 + len {
                return Some(buf.drain(..end + 4 + len).collect());
            }
        }
        let mut chunk = [0u8; 4096];
        match s.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

fn pool_for(auth: &Authority) -> UpstreamPool {
    let text = "[[projects]]\nname = \"p\"\nregion = \"eu\"\nretention = \"zdr\"\ndefault = true\n";
    let config = crate::config::Config::from_toml(text, None).unwrap();
    let connector = crate::client::connector(&config).unwrap();
    UpstreamPool::new(
        connector,
        [(Scheme::HTTP, auth.clone())],
        8,
        Duration::from_secs(60),
    )
    .unwrap()
}

fn request(method: &str, auth: &Authority, body: ProxyBody) -> Request<ProxyBody> {
    Request::builder()
        .method(method)
        .uri("/v1/chat/completions?x=1")
        .header(http::header::HOST, auth.as_str())
        .body(body)
        .unwrap()
}

fn idle(pool: &UpstreamPool) -> usize {
    pool.origins[0].state.lock().unwrap().raw.len()
}

/// Sends, reads the whole body, returns (status, body, trailers).
async fn exchange(pool: &UpstreamPool, req: Request<ProxyBody>) -> (u16, String, Option<HeaderMap>) {
    let res = pool.send(0, req).await.unwrap();
    let status = res.status().as_u16();
    let collected = res.into_body().collect().await.unwrap();
    let trailers = collected.trailers().cloned();
    (
        status,
        String::from_utf8(collected.to_bytes().to_vec()).unwrap(),
        trailers,
    )
}

#[tokio::test]
async fn the_request_goes_out_with_its_own_length_in_one_piece() {
    let (auth, wire) = scripted(vec![answer(&[b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"])]).await;
    let pool = pool_for(&auth);
    let body = ProxyBody::chunks(vec![
        Bytes::from_static(b"{\"a\":"),
        Bytes::from_static(b"false}"),
    ]);
    let mut req = request("POST", &auth, body);
    // A stale length from the client side is not what frames the body.
    req.headers_mut()
        .insert(CONTENT_LENGTH, HeaderValue::from_static("999"));
    req.headers_mut().insert("x-test", HeaderValue::from_static("1"));
    assert_eq!(exchange(&pool, req).await.1, "ok");
    let sent = String::from_utf8(wire.requests.lock().unwrap()[0].clone()).unwrap();
    assert_eq!(
        sent,
        format!(
            "POST /v1/chat/completions?x=1 HTTP/1.1\r\nhost: {auth}\r\nx-test: 1\r\ncontent-length: 11\r\n\r\n{{\"a\":false}}"
        )
    );
}

#[tokio::test]
async fn bodiless_requests_carry_a_length_only_for_methods_with_a_payload() {
    let ok: &'static [u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
    let (auth, wire) = scripted(vec![answer(&[ok]), answer(&[ok])]).await;
    let pool = pool_for(&auth);
    exchange(&pool, request("GET", &auth, ProxyBody::Empty)).await;
    exchange(&pool, request("POST", &auth, ProxyBody::Empty)).await;
    let sent = wire.requests.lock().unwrap().clone();
    assert!(!String::from_utf8_lossy(&sent[0]).contains("content-length"));
    assert!(String::from_utf8_lossy(&sent[1]).ends_with("content-length: 0\r\n\r\n"));
    assert_eq!(wire.conns.load(std::sync::atomic::Ordering::SeqCst), 1);
}

#[tokio::test]
async fn every_reusable_framing_is_read_whole_and_gives_the_connection_back() {
    let (auth, wire) = scripted(vec![
        // Length, all with the head.
        answer(&[b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello"]),
        // Length, the body in later reads.
        answer(&[
            b"HTTP/1.1 200 OK\r\ncontent-length: 11\r\n\r\nhel",
            b"lo ",
            b"world",
        ]),
        // Chunked, in pieces that cut the framing, with a trailer.
        answer(&[
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhel",
            b"lo\r\n6\r\n world\r\n0\r",
            b"\nx-trailer: t\r\n\r\n",
        ]),
        // Interim responses before the final one.
        answer(&[
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\n",
            b"HTTP/1.1 201 Created\r\ncontent-length: 2\r\n\r\nok",
        ]),
        // No body.
        answer(&[b"HTTP/1.1 204 No Content\r\n\r\n"]),
    ])
    .await;
    let pool = pool_for(&auth);
    let get = || request("GET", &auth, ProxyBody::Empty);
    assert_eq!(exchange(&pool, get()).await.1, "hello");
    assert_eq!(idle(&pool), 1);
    assert_eq!(exchange(&pool, get()).await.1, "hello world");
    assert_eq!(idle(&pool), 1);
    let (_, body, trailers) = exchange(&pool, get()).await;
    assert_eq!(body, "hello world");
    assert_eq!(trailers.unwrap().get("x-trailer").unwrap(), "t");
    assert_eq!(idle(&pool), 1);
    assert_eq!(exchange(&pool, get()).await, (201, "ok".into(), None));
    assert_eq!(exchange(&pool, get()).await, (204, String::new(), None));
    assert_eq!(idle(&pool), 1);
    assert_eq!(
        wire.conns.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "one connection for all"
    );
}

#[tokio::test]
async fn a_head_response_has_no_body_whatever_its_length_says() {
    let (auth, wire) = scripted(vec![
        answer(&[b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n"]),
        answer(&[b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"]),
    ])
    .await;
    let pool = pool_for(&auth);
    assert_eq!(
        exchange(&pool, request("HEAD", &auth, ProxyBody::Empty)).await.1,
        ""
    );
    assert_eq!(
        exchange(&pool, request("GET", &auth, ProxyBody::Empty)).await.1,
        "ok"
    );
    assert_eq!(wire.conns.load(std::sync::atomic::Ordering::SeqCst), 1);
}

#[tokio::test]
async fn framings_that_cannot_be_followed_by_another_response_end_the_connection() {
    let close_delimited = Answer {
        pieces: vec![b"HTTP/1.1 200 OK\r\n\r\nuntil ", b"the end"],
        close: true,
    };
    let (auth, wire) = scripted(vec![
        close_delimited,
        answer(&[b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\nok"]),
        answer(&[b"HTTP/1.0 200 OK\r\ncontent-length: 2\r\n\r\nok"]),
        // Bytes after the response were never asked for.
        answer(&[b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nokHTTP/1.1 200 OK\r\n"]),
        answer(&[b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"]),
    ])
    .await;
    let pool = pool_for(&auth);
    let get = || request("GET", &auth, ProxyBody::Empty);
    assert_eq!(exchange(&pool, get()).await.1, "until the end");
    assert_eq!(idle(&pool), 0);
    for _ in 0..3 {
        assert_eq!(exchange(&pool, get()).await.1, "ok");
        assert_eq!(idle(&pool), 0);
    }
    assert_eq!(exchange(&pool, get()).await.1, "ok");
    assert_eq!(idle(&pool), 1);
    assert_eq!(wire.conns.load(std::sync::atomic::Ordering::SeqCst), 5);
}

#[tokio::test]
async fn invalid_responses_are_errors_and_end_the_connection() {
    let cases: [&'static [u8]; 6] = [
        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-length: 3\r\n\r\nok",
        b"HTTP/1.1 200 OK\r\ncontent-length: 2x\r\n\r\nok",
        b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\n\r\n",
        b"HTTP/1.1 2000 OK\r\n\r\n",
        b"NOT HTTP AT ALL\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nbad header\r\n\r\n",
    ];
    for case in cases {
        let (auth, _) = scripted(vec![answer(&[case])]).await;
        let pool = pool_for(&auth);
        let e = pool.send(0, request("GET", &auth, ProxyBody::Empty)).await;
        assert!(
            matches!(e, Err(UpstreamError::Exchange(H1Error::Protocol(_)))),
            "{}: {:?}",
            String::from_utf8_lossy(case),
            e.map(|r| r.status())
        );
        assert_eq!(idle(&pool), 0);
    }
}

#[tokio::test]
async fn a_response_head_past_the_limit_is_refused() {
    let big: &'static [u8] = Box::leak(
        format!("HTTP/1.1 200 OK\r\nx-big: {}\r\n\r\n", "a".repeat(MAX_HEAD_BYTES))
            .into_bytes()
            .into_boxed_slice(),
    );
    let (auth, _) = scripted(vec![answer(&[big])]).await;
    let pool = pool_for(&auth);
    let e = pool.send(0, request("GET", &auth, ProxyBody::Empty)).await;
    assert!(
        matches!(&e, Err(UpstreamError::Exchange(H1Error::Protocol(m))) if m.contains("too large")),
        "{:?}",
        e.map(|r| r.status())
    );
}

#[tokio::test]
async fn a_body_cut_short_is_an_error_not_an_end() {
    for pieces in [
        &[b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nshort".as_slice()][..],
        &[b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhel".as_slice()][..],
    ] {
        let (auth, _) = scripted(vec![Answer {
            pieces: pieces.to_vec(),
            close: true,
        }])
        .await;
        let pool = pool_for(&auth);
        let res = pool
            .send(0, request("GET", &auth, ProxyBody::Empty))
            .await
            .unwrap();
        assert!(res.into_body().collect().await.is_err());
        assert_eq!(idle(&pool), 0);
    }
}

#[tokio::test]
async fn a_body_dropped_before_its_end_never_goes_back() {
    let (auth, wire) = scripted(vec![
        answer(&[b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nhello", b"world"]),
        answer(&[b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"]),
    ])
    .await;
    let pool = pool_for(&auth);
    let res = pool
        .send(0, request("GET", &auth, ProxyBody::Empty))
        .await
        .unwrap();
    drop(res);
    assert_eq!(idle(&pool), 0);
    assert_eq!(
        exchange(&pool, request("GET", &auth, ProxyBody::Empty)).await.1,
        "ok"
    );
    assert_eq!(wire.conns.load(std::sync::atomic::Ordering::SeqCst), 2);
}

/// An upstream that refuses a large body without reading it: its answer is read while the
/// write waits, and the connection is not reused.
#[tokio::test]
async fn an_early_answer_to_a_large_body_is_read_while_the_write_waits() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let auth = Authority::try_from(l.local_addr().unwrap().to_string()).unwrap();
    tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        let mut head = [0u8; 512];
        let _ = s.read(&mut head).await;
        s.write_all(b"HTTP/1.1 413 Payload Too Large\r\ncontent-length: 3\r\nconnection: close\r\n\r\nbig")
            .await
            .unwrap();
        // Keep the connection open, unread, until the test ends.
        tokio::time::sleep(Duration::from_secs(30)).await;
    });
    let pool = pool_for(&auth);
    let body = ProxyBody::full(vec![b'x'; 64 << 20]);
    let (status, text, _) = tokio::time::timeout(
        Duration::from_secs(10),
        exchange(&pool, request("POST", &auth, body)),
    )
    .await
    .expect("the early answer is read while the write waits");
    assert_eq!((status, text.as_str()), (413, "big"));
    assert_eq!(idle(&pool), 0);
}

#[test]
fn write_slices_resume_where_the_last_write_stopped() {
    let chunks = [Bytes::from_static(b"bc"), Bytes::from_static(b"def")];
    let mut slices: [IoSlice<'_>; 16] = std::array::from_fn(|_| IoSlice::new(&[]));
    for (written, expect) in [
        (0, "abcdef"),
        (1, "bcdef"),
        (2, "cdef"),
        (3, "def"),
        (5, "f"),
        (6, ""),
    ] {
        let n = fill_slices(&mut slices, b"a", &chunks, written);
        let got: Vec<u8> = slices[..n].iter().flat_map(|s| s.iter().copied()).collect();
        assert_eq!(got, expect.as_bytes(), "after {written}");
    }
}
