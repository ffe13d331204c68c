//! The pool against real upstream sockets: plain HTTP/1.1, and TLS with and without h2.
use super::*;
use crate::body::ProxyBody;
use http_body_util::BodyExt;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Counts of what a test upstream saw.
#[derive(Default)]
struct Seen {
    conns: AtomicUsize,
    reqs: AtomicUsize,
    /// Connections the proxy side closed.
    closed: AtomicUsize,
}

/// An upstream that answers every request on a connection with `body`, then closes the
/// connection after `per_conn` requests; counts what it saw.
async fn upstream(body: &'static str, per_conn: usize) -> (Authority, Arc<Seen>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let seen = Arc::new(Seen::default());
    let counts = seen.clone();
    tokio::spawn(async move {
        loop {
            let (mut s, _) = l.accept().await.unwrap();
            counts.conns.fetch_add(1, Ordering::SeqCst);
            let counts = counts.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                for _ in 0..per_conn {
                    // Requests here have no body: a head ends at the blank line.
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        let mut chunk = [0u8; 1024];
                        match s.read(&mut chunk).await {
                            Ok(0) | Err(_) => {
                                counts.closed.fetch_add(1, Ordering::SeqCst);
                                return;
                            }
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let end = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
                    buf.drain(..end);
                    counts.reqs.fetch_add(1, Ordering::SeqCst);
                    let head = format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n", body.len());
                    if s.write_all(head.as_bytes()).await.is_err()
                        || s.write_all(body.as_bytes()).await.is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    (Authority::try_from(addr.to_string()).unwrap(), seen)
}

fn pool(authority: &Authority, max_idle: usize, idle: Duration) -> UpstreamPool<ProxyBody> {
    let text = "[[projects]]\nname = \"p\"\nregion = \"eu\"\nretention = \"zdr\"\ndefault = true\n";
    let config = crate::config::Config::from_toml(text, None).unwrap();
    let connector = crate::client::connector(&config).unwrap();
    UpstreamPool::new(connector, [(Scheme::HTTP, authority.clone())], max_idle, idle).unwrap()
}

fn get(authority: &Authority) -> Request<ProxyBody> {
    Request::get("/v1/models")
        .header(http::header::HOST, authority.as_str())
        .body(ProxyBody::Empty)
        .unwrap()
}

async fn text(res: Response<ProxyBody>) -> String {
    String::from_utf8(res.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap()
}

fn idle_count(pool: &UpstreamPool<ProxyBody>) -> usize {
    pool.origins[0].state.lock().unwrap().h1.len()
}

#[tokio::test]
async fn a_finished_response_returns_its_connection_for_the_next_request() {
    let (auth, seen) = upstream("ok", usize::MAX).await;
    let pool = pool(&auth, 8, Duration::from_secs(60));
    for _ in 0..5 {
        let res = pool.send(0, get(&auth)).await.unwrap();
        assert_eq!(text(res).await, "ok");
    }
    assert_eq!(seen.conns.load(Ordering::SeqCst), 1);
    assert_eq!(seen.reqs.load(Ordering::SeqCst), 5);
    assert_eq!(idle_count(&pool), 1);
}

#[tokio::test]
async fn a_body_dropped_before_its_end_never_goes_back() {
    let (auth, seen) = upstream("a body that is never read", usize::MAX).await;
    let pool = pool(&auth, 8, Duration::from_secs(60));
    let res = pool.send(0, get(&auth)).await.unwrap();
    drop(res);
    assert_eq!(idle_count(&pool), 0);
    let res = pool.send(0, get(&auth)).await.unwrap();
    assert_eq!(text(res).await, "a body that is never read");
    assert_eq!(seen.conns.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_connection_the_upstream_closed_while_idle_is_not_reused() {
    // One request per connection, then the upstream closes it.
    let (auth, seen) = upstream("ok", 1).await;
    let pool = pool(&auth, 8, Duration::from_secs(60));
    for _ in 0..4 {
        let res = pool.send(0, get(&auth)).await.unwrap();
        assert_eq!(text(res).await, "ok");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(seen.reqs.load(Ordering::SeqCst), 4);
    assert_eq!(seen.conns.load(Ordering::SeqCst), 4);
}

/// An upstream on its own thread (it runs while the test's runtime is blocked) that answers
/// each connection's first request with `ok` and closes the connection 50 ms later.
fn closing_upstream() -> (Authority, Arc<Seen>) {
    use std::io::{Read, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let auth = Authority::try_from(l.local_addr().unwrap().to_string()).unwrap();
    let seen = Arc::new(Seen::default());
    let counts = seen.clone();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { return };
            counts.conns.fetch_add(1, Ordering::SeqCst);
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") {
                if s.read(&mut byte).unwrap_or(0) == 0 {
                    break;
                }
                head.push(byte[0]);
            }
            counts.reqs.fetch_add(1, Ordering::SeqCst);
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok");
            // Close a moment later: after the response was read and the connection pooled.
            std::thread::sleep(Duration::from_millis(50));
            drop(s);
        }
    });
    (auth, seen)
}

fn post_without_body(authority: &Authority) -> Request<ProxyBody> {
    Request::post("/v1/models")
        .header(http::header::HOST, authority.as_str())
        .body(ProxyBody::Empty)
        .unwrap()
}

/// A pool holding one idle connection to [`closing_upstream`] that the upstream has closed
/// while the runtime was blocked, so hyper's connection task has not seen the close and the
/// connection still looks ready at checkout.
async fn pool_with_a_connection_closed_unnoticed() -> (UpstreamPool<ProxyBody>, Authority, Arc<Seen>) {
    let (auth, seen) = closing_upstream();
    let pool = pool(&auth, 8, Duration::from_secs(60));
    assert_eq!(text(pool.send(0, get(&auth)).await.unwrap()).await, "ok");
    assert_eq!(idle_count(&pool), 1);
    std::thread::sleep(Duration::from_millis(200));
    (pool, auth, seen)
}

/// hyper writes the request before it reads the close, so the request may have been sent: a
/// POST fails (a 502 for the client) rather than going out twice, and the dead connection is
/// not used again.
#[tokio::test]
async fn a_post_on_a_connection_closed_unnoticed_fails_once_and_is_not_retried() {
    let (pool, auth, seen) = pool_with_a_connection_closed_unnoticed().await;
    let Err(e) = pool.send(0, post_without_body(&auth)).await else {
        panic!("a request on a closed connection succeeded");
    };
    assert!(matches!(e, UpstreamError::Request(_)), "{e}");
    assert_eq!(idle_count(&pool), 0);
    assert_eq!(text(pool.send(0, get(&auth)).await.unwrap()).await, "ok");
    assert_eq!(seen.conns.load(Ordering::SeqCst), 2);
    assert_eq!(seen.reqs.load(Ordering::SeqCst), 2);
}

/// The same race with a GET: sending it again changes nothing, so it goes out again on a
/// new connection and the client gets its answer.
#[tokio::test]
async fn a_get_on_a_connection_closed_unnoticed_is_sent_again_on_a_new_one() {
    let (pool, auth, seen) = pool_with_a_connection_closed_unnoticed().await;
    let res = pool.send(0, get(&auth)).await.expect("the GET is sent again");
    assert_eq!(text(res).await, "ok");
    assert_eq!(seen.conns.load(Ordering::SeqCst), 2);
    assert_eq!(seen.reqs.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn idle_connections_are_capped_and_expire() {
    let (auth, seen) = upstream("ok", usize::MAX).await;
    let pool = pool(&auth, 2, Duration::from_millis(200));
    let all = futures_util::future::join_all((0..4).map(|_| async {
        let res = pool.send(0, get(&auth)).await.unwrap();
        text(res).await
    }))
    .await;
    assert!(all.iter().all(|t| t == "ok"));
    assert_eq!(seen.conns.load(Ordering::SeqCst), 4);
    assert_eq!(idle_count(&pool), 2);
    // Past the cap, the two extra connections were closed at once.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(seen.closed.load(Ordering::SeqCst), 2);
    // With no request to reuse them, the idle ones are closed once they expire.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(idle_count(&pool), 0);
    assert_eq!(
        seen.closed.load(Ordering::SeqCst),
        4,
        "expired idle connections are closed"
    );
    let res = pool.send(0, get(&auth)).await.unwrap();
    assert_eq!(text(res).await, "ok");
    assert_eq!(
        seen.conns.load(Ordering::SeqCst),
        5,
        "expired connections are not reused"
    );
    assert_eq!(idle_count(&pool), 1);
}

#[tokio::test]
async fn upstreams_with_the_same_origin_share_its_connections() {
    let (auth, seen) = upstream("ok", usize::MAX).await;
    let (other, other_seen) = upstream("other", usize::MAX).await;
    let toml = "[[projects]]\nname = \"p\"\nregion = \"eu\"\nretention = \"zdr\"\ndefault = true\n";
    let config = crate::config::Config::from_toml(toml, None).unwrap();
    let connector = crate::client::connector(&config).unwrap();
    let upstreams = [
        (Scheme::HTTP, auth.clone()),
        (Scheme::HTTP, other.clone()),
        (Scheme::HTTP, auth.clone()),
    ];
    let pool = UpstreamPool::new(connector, upstreams, 8, Duration::from_secs(60)).unwrap();
    for (upstream, expect) in [(0, "ok"), (2, "ok"), (1, "other"), (0, "ok"), (2, "ok")] {
        let host = if upstream == 1 { &other } else { &auth };
        assert_eq!(text(pool.send(upstream, get(host)).await.unwrap()).await, expect);
    }
    assert_eq!(seen.conns.load(Ordering::SeqCst), 1);
    assert_eq!(seen.reqs.load(Ordering::SeqCst), 4);
    assert_eq!(other_seen.reqs.load(Ordering::SeqCst), 1);
    assert!(matches!(
        pool.send(3, get(&auth)).await,
        Err(UpstreamError::Connect(_))
    ));
}

#[tokio::test]
async fn the_reaper_does_not_keep_its_pool_alive() {
    let (auth, seen) = upstream("ok", usize::MAX).await;
    let pool = pool(&auth, 2, Duration::from_secs(60));
    let res = pool.send(0, get(&auth)).await.unwrap();
    assert_eq!(text(res).await, "ok");
    let origin = Arc::downgrade(&pool.origins[0]);
    drop(pool);
    // The pool's idle connection is closed with it, and nothing keeps the origin alive.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(seen.closed.load(Ordering::SeqCst), 1);
    assert!(origin.upgrade().is_none());
}

#[tokio::test]
async fn no_listener_is_a_connect_error() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let auth = Authority::try_from(l.local_addr().unwrap().to_string()).unwrap();
    drop(l);
    let pool = pool(&auth, 8, Duration::from_secs(60));
    let Err(e) = pool.send(0, get(&auth)).await else {
        panic!("a request to a closed port succeeded");
    };
    assert!(matches!(e, UpstreamError::Connect(_)), "{e}");
    assert!(matches!(
        pool.send(7, get(&auth)).await,
        Err(UpstreamError::Connect(_))
    ));
}

/// A TLS upstream offering `alpn`, answering with the request's version, authority and
/// Host; returns the config text that trusts it (with `idle_secs`) and what it saw.
async fn tls_upstream(alpn: &[&[u8]], idle_secs: f64) -> (String, Arc<Seen>) {
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::SeqCst);
    let dir = std::env::temp_dir().join(format!("rp-pool-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ck = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();
    let files = crate::config::TlsFiles {
        cert_file: cert.clone(),
        key_file: key,
    };
    let mut tls = (*crate::tls::load_server_config(&files).unwrap()).clone();
    tls.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let seen = Arc::new(Seen::default());
    let counts = seen.clone();
    tokio::spawn(async move {
        loop {
            let (s, _) = l.accept().await.unwrap();
            counts.conns.fetch_add(1, Ordering::SeqCst);
            let acceptor = acceptor.clone();
            let counts = counts.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(s).await else { return };
                let svc = hyper::service::service_fn(|req: Request<Incoming>| async move {
                    let host = req
                        .headers()
                        .get(http::header::HOST)
                        .map(|h| h.to_str().unwrap().to_string());
                    let seen = format!(
                        "{:?} {} {} host={}",
                        req.version(),
                        req.uri().authority().map_or("-", |a| a.as_str()),
                        req.uri().path(),
                        host.as_deref().unwrap_or("-")
                    );
                    Ok::<_, std::convert::Infallible>(Response::new(ProxyBody::full(seen)))
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), svc)
                    .await;
                counts.closed.fetch_add(1, Ordering::SeqCst);
            });
        }
    });
    let text = format!(
        "[timeouts]\nidle_secs = {idle_secs}\n[upstream]\nbase_urls = {{ eu = \"https://127.0.0.1:{port}\" }}\nca_file = \"{}\"\n\
         [[projects]]\nname = \"p\"\nregion = \"eu\"\nretention = \"zdr\"\ndefault = true\n",
        cert.display()
    );
    (text, seen)
}

/// One request, then three at once: what the upstream saw, and how many connections.
async fn over_tls(alpn: &[&[u8]]) -> (Vec<String>, usize) {
    let (config_text, counts) = tls_upstream(alpn, 60.0).await;
    let config = crate::config::Config::from_toml(&config_text, None).unwrap();
    let pool = crate::snapshot::build_pool(&config).unwrap();
    let host = config.upstreams[0].host_header.clone();
    let req = |path: String| {
        Request::get(path)
            .header(http::header::HOST, host.clone())
            .body(ProxyBody::Empty)
            .unwrap()
    };
    let mut seen = vec![text(pool.send(0, req("/v1/models/first".into())).await.unwrap()).await];
    let pool = &pool;
    seen.extend(
        futures_util::future::join_all(
            (0..3).map(
                |i| async move { text(pool.send(0, req(format!("/v1/models/{i}"))).await.unwrap()).await },
            ),
        )
        .await,
    );
    (seen, counts.conns.load(Ordering::SeqCst))
}

#[tokio::test]
async fn an_upstream_offering_h2_gets_every_request_on_one_connection_in_absolute_form() {
    let (seen, conns) = over_tls(&[b"h2", b"http/1.1"]).await;
    let port = seen[0].split(' ').nth(1).unwrap();
    assert!(port.starts_with("127.0.0.1:"), "{seen:?}");
    assert_eq!(seen[0], format!("HTTP/2.0 {port} /v1/models/first host={port}"));
    for (i, s) in seen[1..].iter().enumerate() {
        assert_eq!(s, &format!("HTTP/2.0 {port} /v1/models/{i} host={port}"));
    }
    assert_eq!(conns, 1, "{seen:?}");
}

#[tokio::test]
async fn an_upstream_offering_only_http1_over_tls_gets_pooled_http1() {
    let (seen, conns) = over_tls(&[b"http/1.1"]).await;
    assert!(
        seen[0].starts_with("HTTP/1.1 - /v1/models/first host=127.0.0.1:"),
        "{seen:?}"
    );
    for (i, s) in seen[1..].iter().enumerate() {
        assert!(
            s.starts_with(&format!("HTTP/1.1 - /v1/models/{i} host=127.0.0.1:")),
            "{s}"
        );
    }
    // The first connection is reused by one of the three; the other two open their own.
    assert_eq!(conns, 3, "{seen:?}");
}

/// Four GETs at once on a cold pool for the config's first upstream.
async fn cold_burst(config_text: &str) -> Vec<Result<Response<ProxyBody>, UpstreamError>> {
    let config = crate::config::Config::from_toml(config_text, None).unwrap();
    let pool = crate::snapshot::build_pool(&config).unwrap();
    let host = config.upstreams[0].host_header.clone();
    let pool = &pool;
    futures_util::future::join_all((0..4).map(|_| {
        let req = Request::get("/v1/models")
            .header(http::header::HOST, host.clone())
            .body(ProxyBody::Empty)
            .unwrap();
        async move { pool.send(0, req).await }
    }))
    .await
}

/// How many of a cold burst to a TLS upstream offering `alpn` succeeded, and how many
/// connections the upstream saw.
async fn cold_burst_over_tls(alpn: &[&[u8]]) -> (usize, usize) {
    let (config_text, counts) = tls_upstream(alpn, 60.0).await;
    let ok = cold_burst(&config_text)
        .await
        .iter()
        .filter(|r| r.is_ok())
        .count();
    (ok, counts.conns.load(Ordering::SeqCst))
}

#[tokio::test]
async fn a_burst_on_a_cold_pool_shares_one_h2_connection() {
    assert_eq!(cold_burst_over_tls(&[b"h2", b"http/1.1"]).await, (4, 1));
}

#[tokio::test]
async fn a_burst_on_a_cold_pool_to_an_http1_upstream_opens_a_connection_each() {
    // The first connect is waited for; once it is HTTP/1.1, the others open their own.
    assert_eq!(cold_burst_over_tls(&[b"http/1.1"]).await, (4, 4));
}

/// An upstream whose TLS handshakes fail after 400 ms: the requests that waited for the first
/// connect then connect side by side, not one after another (that would take 1.6 s).
#[tokio::test]
async fn a_burst_on_a_cold_pool_waits_for_a_failing_connect_once_not_in_a_chain() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let (s, _) = l.accept().await.unwrap();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(400)).await;
                drop(s);
            });
        }
    });
    let text = format!(
        "[upstream]\nbase_urls = {{ eu = \"https://127.0.0.1:{port}\" }}\n\
         [[projects]]\nname = \"p\"\nregion = \"eu\"\nretention = \"zdr\"\ndefault = true\n"
    );
    let started = Instant::now();
    let all = cold_burst(&text).await;
    assert!(all.iter().all(|r| matches!(r, Err(UpstreamError::Connect(_)))));
    let took = started.elapsed();
    assert!(took < Duration::from_millis(1300), "{took:?}");
}

#[tokio::test]
async fn an_idle_h2_connection_is_closed_after_the_idle_timeout() {
    // Timeouts are at least 1 s (`check` refuses less).
    let (config_text, seen) = tls_upstream(&[b"h2"], 1.0).await;
    let config = crate::config::Config::from_toml(&config_text, None).unwrap();
    let pool = crate::snapshot::build_pool(&config).unwrap();
    let host = config.upstreams[0].host_header.clone();
    let req = || {
        Request::get("/v1/models")
            .header(http::header::HOST, host.clone())
            .body(ProxyBody::Empty)
            .unwrap()
    };
    assert!(text(pool.send(0, req()).await.unwrap())
        .await
        .starts_with("HTTP/2.0"));
    let t0 = Instant::now();
    while seen.closed.load(Ordering::SeqCst) == 0 && t0.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        seen.closed.load(Ordering::SeqCst),
        1,
        "the idle h2 connection was closed"
    );
    assert!(text(pool.send(0, req()).await.unwrap())
        .await
        .starts_with("HTTP/2.0"));
    assert_eq!(seen.conns.load(Ordering::SeqCst), 2);
}
