//! The admin listener: `/healthz` (the process is up), `/readyz` (config loaded and the proxy
//! listener bound; not ready while draining), `/metrics` (Prometheus text), and `/`: the
//! status page ([`crate::status_page`]).

use crate::body::ProxyBody;
use crate::shared::Shared;
use http::{HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

/// Serves the admin endpoints until `stop`. The listener has its own budget,
/// `limits.admin_max_connections` (at it, accepting pauses), and a connection that sends no
/// request head within `timeouts.request_header_secs` is closed: silent admin connections
/// cannot hold file descriptors the proxy port needs.
pub async fn serve(listener: TcpListener, shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let max_conns = shared.snapshot.load().config.limits.admin_max_connections;
    let header_timeout = shared.process.request_header;
    let permits = Arc::new(Semaphore::new(max_conns));
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout);
    loop {
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => return },
            _ = stop.changed() => return,
        };
        let stream = tokio::select! {
            r = listener.accept() => match r { Ok((s, _)) => s, Err(_) => continue },
            _ = stop.changed() => return,
        };
        let accepted = tokio::time::Instant::now();
        let seen = Arc::new(AtomicBool::new(false));
        let svc_seen = seen.clone();
        let svc_shared = shared.clone();
        let svc = service_fn(move |req| {
            let shared = svc_shared.clone();
            svc_seen.store(true, Ordering::Release);
            async move { Ok::<_, std::convert::Infallible>(route(&shared, &req)) }
        });
        let conn = builder.serve_connection(TokioIo::new(stream), svc).into_owned();
        let timeouts = shared.services.metrics.timeouts.clone();
        tokio::spawn(async move {
            crate::shared::first_request_within(
                conn,
                &seen,
                accepted + header_timeout,
                &timeouts,
                "admin_header",
            )
            .await;
            drop(permit);
        });
    }
}

fn route(shared: &Shared, req: &Request<Incoming>) -> Response<ProxyBody> {
    let (status, ctype, body) = match req.uri().path() {
        "/" => (
            StatusCode::OK,
            "text/html; charset=utf-8",
            crate::status_page::render(shared),
        ),
        "/healthz" => (StatusCode::OK, "text/plain", "ok\n".to_string()),
        "/readyz" if shared.is_ready() => (StatusCode::OK, "text/plain", "ready\n".to_string()),
        "/readyz" => (
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain",
            "not ready\n".to_string(),
        ),
        "/metrics" => (
            StatusCode::OK,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            shared.services.metrics.encode(),
        ),
        _ => (StatusCode::NOT_FOUND, "text/plain", "not found\n".to_string()),
    };
    let mut res = Response::new(ProxyBody::full(body));
    *res.status_mut() = status;
    res.headers_mut()
        .insert(http::header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    res
}
