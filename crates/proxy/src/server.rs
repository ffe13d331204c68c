//! The listeners and the process lifecycle: accept connections (HTTP/1.1 and h2c), serve the
//! admin endpoints, reload on SIGHUP or config change, drain on SIGTERM/SIGINT.
//!
//! Every wait has an end: a connection that has not sent a complete request head within
//! `request_header_secs` of its accept (or of the end of its TLS handshake) is closed, idle
//! keep-alive connections likewise (hyper's header timer), and the admin listener has its own
//! connection budget so silent admin connections cannot use up the proxy's.

use crate::admin;
use crate::audit::AuditLog;
use crate::config::Config;
use crate::framing::FramingGuard;
use crate::handler;
use crate::keepalive::{self, Counted, Counters, Drain, Parkable, Slot};
use crate::metrics::{KeyLabels, Metrics, ReloadLabels};
use crate::pipeline::Services;
use crate::shared::Shared;
use crate::snapshot::Snapshot;
use arc_swap::ArcSwap;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use std::future::Future;
use std::io::Write;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};

// Largest request head accepted (HTTP/1.1 read buffer, HTTP/2 header list); the framing
// guard uses the same bound, so a longer head is hyper's to refuse.
use crate::framing::MAX_HEAD_BYTES;

/// Runs the proxy until SIGTERM/SIGINT, then drains. Err: the listeners, the audit log or the
/// first snapshot could not be set up.
pub async fn serve(config: Config) -> Result<(), String> {
    let process = config.process.clone();
    let listen = process.listen;
    let admin_listen = process.admin_listen;
    let grace = config.timeouts.shutdown_grace;
    let drain_delay = config.timeouts.shutdown_drain_delay;
    let config_path = config.source.clone();
    let metrics = Metrics::new();
    let audit = match &config.audit_path {
        Some(p) => Some(AuditLog::open(p, config.audit_on_failure, metrics.audit.clone())?),
        None => None,
    };
    let inflight = Arc::new(tokio::sync::Semaphore::new(process.max_concurrent_requests));
    let catalog = config.catalog.clone();
    let snapshot = Snapshot::new(config).map_err(|e| e.to_string())?;
    let shared = Arc::new(Shared {
        snapshot: Arc::new(ArcSwap::from_pointee(snapshot)),
        services: Arc::new(Services {
            metrics,
            audit,
            inflight,
            buffered: crate::budget::BufferBudget::new(process.max_buffered_bytes),
        }),
        ready: AtomicBool::new(false),
        config_path,
        process,
    });
    shared.services.metrics.set_catalog(&catalog);

    let listener = TcpListener::bind(listen)
        .await
        .map_err(|e| format!("listen {listen}: {e}"))?;
    let proxy_addr = listener.local_addr().map_err(|e| e.to_string())?;
    let admin = match admin_listen {
        Some(a) => Some(
            TcpListener::bind(a)
                .await
                .map_err(|e| format!("admin_listen {a}: {e}"))?,
        ),
        None => None,
    };
    let admin_addr = admin.as_ref().and_then(|l| l.local_addr().ok());
    // Installed before the listeners are announced: a SIGTERM sent as soon as the harness
    // sees the announcement must find the handler, not the default action (kill).
    let mut signals = ShutdownSignals::install();
    let (stop_tx, stop_rx) = watch::channel(false);
    // The admin listener outlives the drain: /readyz answers 503 until the process exits.
    let (admin_stop_tx, admin_stop_rx) = watch::channel(false);
    if let Some(admin) = admin {
        tokio::spawn(admin::serve(admin, shared.clone(), admin_stop_rx));
    }
    tokio::spawn(watch_config(shared.clone(), stop_rx.clone()));
    shared.ready.store(true, Ordering::Release);
    announce(proxy_addr, admin_addr);
    tracing::info!(
        %proxy_addr,
        admin_addr = ?admin_addr,
        catalog = %catalog.edition,
        catalog_date = %catalog.date,
        "residency-proxy started"
    );

    let accept = tokio::spawn(accept_loop(listener, shared.clone(), stop_rx));
    signals.wait(&shared).await;
    shared.ready.store(false, Ordering::Release);
    // Load balancers see /readyz fail and stop sending; meanwhile requests are still served.
    // A second TERM/INT ends the delay early.
    tracing::info!(
        drain_delay_secs = drain_delay.as_secs_f64(),
        "shutting down: /readyz answers 503; still serving during the drain delay"
    );
    tokio::select! {
        _ = tokio::time::sleep(drain_delay) => {}
        _ = signals.wait(&shared) => {}
    }
    let _ = stop_tx.send(true);
    tracing::info!(
        grace_secs = grace.as_secs_f64(),
        "stopped accepting: draining in-flight requests"
    );
    // The accept loop returns the watcher of live connections once it stops accepting.
    if let Ok(graceful) = accept.await {
        drain(graceful, grace).await;
    }
    if let Some(audit) = &shared.services.audit {
        audit.close(Duration::from_secs(5)).await;
    }
    let _ = admin_stop_tx.send(true);
    tracing::info!("shutdown complete");
    Ok(())
}

/// The line test harnesses and operators wait for: both listeners are bound.
fn announce(proxy: std::net::SocketAddr, admin: Option<std::net::SocketAddr>) {
    let admin = admin.map_or_else(|| "-".to_string(), |a| a.to_string());
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "listening proxy={proxy} admin={admin}");
    let _ = out.flush();
}

async fn drain(graceful: Drain, grace: Duration) {
    if tokio::time::timeout(grace, graceful.shutdown()).await.is_err() {
        tracing::warn!("shutdown grace period ended with requests still in flight");
    }
}

/// Accepts connections until told to stop; returns the watcher of live connections so the
/// caller can drain them.
async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, mut stop: watch::Receiver<bool>) -> Drain {
    let drain = Drain::new();
    let (max_conns, header_timeout) = (shared.process.max_connections, shared.process.request_header);
    let permits = Arc::new(Semaphore::new(max_conns));
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .keep_alive(true)
        // Bounds a request head (and the read buffer): oversized heads are refused by hyper.
        .max_buf_size(MAX_HEAD_BYTES);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(256)
        .max_header_list_size(MAX_HEAD_BYTES as u32);
    // A parked connection is served on by HTTP/1 alone, with the same settings.
    let mut h1 = http1::Builder::new();
    h1.timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .keep_alive(true)
        .max_buf_size(MAX_HEAD_BYTES);
    let builders = Arc::new((builder, h1));
    loop {
        // Backpressure: at max_connections, stop accepting and let the kernel queue.
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            _ = stop.changed() => break,
        };
        let (stream, _) = tokio::select! {
            r = listener.accept() => match r {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stop.changed() => break,
        };
        let accepted = tokio::time::Instant::now();
        let _ = stream.set_nodelay(true);
        shared.services.metrics.open_connections.inc();
        let tls = shared.snapshot.load().tls.clone();
        let mut drain_rx = drain.watcher();
        let conn_shared = shared.clone();
        let builders = builders.clone();
        let task = async move {
            let (auto, h1) = &*builders;
            match tls {
                None => serve_plain(stream, &conn_shared, auto, h1, &mut drain_rx, accepted).await,
                // Boxed: the task's size is that of its largest state, and a TLS connection
                // holds rustls and hyper inline; a parked plain connection should not.
                Some(acceptor) => {
                    Box::pin(async {
                        let timeouts = &conn_shared.services.metrics.timeouts;
                        // The handshake is bounded like a request head: a silent client cannot hold a slot.
                        let handshake = tokio::time::timeout(header_timeout, acceptor.accept(stream)).await;
                        if handshake.is_err() {
                            timeouts
                                .get_or_create(&crate::audit::KindLabel {
                                    kind: "request_header",
                                })
                                .inc();
                        }
                        if let Ok(Ok(tls)) = handshake {
                            let handshake_done = tokio::time::Instant::now();
                            // HTTP/2 has no such framing ambiguity: only HTTP/1 bytes are followed.
                            let io = if tls.get_ref().1.alpn_protocol() == Some(b"h2") {
                                FramingGuard::passthrough(tls)
                            } else {
                                FramingGuard::new(tls)
                            };
                            let (counters, seen) =
                                (Arc::new(Counters::default()), Arc::new(AtomicBool::new(false)));
                            let svc = service(conn_shared.clone(), counters.clone(), seen.clone());
                            let conn = auto.serve_connection_with_upgrades(TokioIo::new(io), svc);
                            crate::shared::first_request_within(
                                keepalive::drive(conn, &counters, &mut drain_rx),
                                &seen,
                                handshake_done + header_timeout,
                                timeouts,
                                "request_header",
                            )
                            .await;
                        }
                    })
                    .await
                }
            }
            conn_shared.services.metrics.open_connections.dec();
            drop(permit);
        };
        tokio::spawn(task);
    }
    drain
}

/// What the service of a connection answers, and the boxed future it answers with.
type Answer = Result<http::Response<Counted>, std::convert::Infallible>;
type AnswerFuture = Pin<Box<dyn Future<Output = Answer> + Send>>;

/// The service of one hyper connection: each request is handled on the snapshot current when
/// it arrives; `seen` turns true at the first, and `counters` follow dispatches and ends.
fn service(
    shared: Arc<Shared>,
    counters: Arc<Counters>,
    seen: Arc<AtomicBool>,
) -> impl hyper::service::Service<
    http::Request<hyper::body::Incoming>,
    Response = http::Response<Counted>,
    Error = std::convert::Infallible,
    Future = AnswerFuture,
> {
    service_fn(move |req| {
        let shared = shared.clone();
        let counters = counters.clone();
        seen.store(true, Ordering::Release);
        counters.dispatch();
        // Boxed: hyper keeps a slot of the service future's size for the whole life of a
        // connection, so an idle keep-alive connection would hold one request's worth of
        // handler state. Boxed, it holds a pointer, and the state lives only while a request does.
        Box::pin(async move {
            // The snapshot is taken once per request: a reload never changes a request in flight.
            let snap = shared.snapshot.load_full();
            let res = handler::handle(snap, &shared.services, req).await;
            Ok::<_, std::convert::Infallible>(res.map(|body| Counted::new(body, counters)))
        }) as AnswerFuture
    })
}

/// Serves a plain (not TLS) connection: hyper's auto connection first (HTTP/1.1 or h2c), then,
/// each time an HTTP/1 connection was parked at rest (see [`keepalive`]), a new HTTP/1
/// connection once bytes arrive, until the client closes, the keep-alive wait reaches
/// `request_header_secs`, or the drain.
async fn serve_plain(
    stream: TcpStream,
    shared: &Arc<Shared>,
    auto: &auto::Builder<TokioExecutor>,
    h1: &http1::Builder,
    drain: &mut watch::Receiver<bool>,
    accepted: tokio::time::Instant,
) {
    let header_timeout = shared.process.request_header;
    let timeouts = &shared.services.metrics.timeouts;
    let counters = Arc::new(Counters::default());
    // hyper resolves Content-Length + Transfer-Encoding itself; the guard refuses it first.
    let mut guard = FramingGuard::new(stream);
    let mut deadline = accepted + header_timeout;
    let mut first = true;
    loop {
        // Per hyper connection: a parked connection holds neither.
        let slot: Slot<FramingGuard<TcpStream>> = Arc::default();
        let seen = Arc::new(AtomicBool::new(false));
        let svc = service(shared.clone(), counters.clone(), seen.clone());
        let io = TokioIo::new(Parkable::new(guard, counters.clone(), slot.clone()));
        // Boxed: while parked, the task holds the socket and the guard, not hyper's state.
        let served: Pin<Box<dyn Future<Output = ()> + Send + '_>> = if first {
            let conn = auto.serve_connection_with_upgrades(io, svc);
            let conn = keepalive::drive(conn, &counters, drain);
            Box::pin(crate::shared::first_request_within(
                conn,
                &seen,
                deadline,
                timeouts,
                "request_header",
            ))
        } else {
            let conn = h1.serve_connection(io, svc).with_upgrades();
            let conn = keepalive::drive(conn, &counters, drain);
            Box::pin(crate::shared::first_request_within(
                conn,
                &seen,
                deadline,
                timeouts,
                "request_header",
            ))
        };
        served.await;
        let Some((parked, since)) = slot.lock().ok().and_then(|mut s| s.take()) else {
            return;
        };
        drop((slot, seen));
        guard = parked;
        guard.release();
        counters.unpark();
        // The keep-alive wait ends where hyper's header timer would have ended it.
        deadline = since + header_timeout;
        if *drain.borrow() {
            return;
        }
        let parked = &shared.services.metrics.parked_connections;
        parked.inc();
        let woken = tokio::select! {
            r = guard.get_ref().readable() => r.is_ok(),
            _ = tokio::time::sleep_until(deadline) => {
                timeouts.get_or_create(&crate::audit::KindLabel { kind: "request_header" }).inc();
                false
            }
            _ = drain.changed() => false,
        };
        parked.dec();
        if !woken {
            return;
        }
        first = false;
    }
}

/// The signals that stop (TERM, INT) or reload (HUP) the server.
#[cfg(unix)]
struct ShutdownSignals(Option<[tokio::signal::unix::Signal; 3]>);

#[cfg(unix)]
impl ShutdownSignals {
    fn install() -> Self {
        use tokio::signal::unix::{signal, SignalKind};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
            signal(SignalKind::hangup()),
        ) {
            (Ok(term), Ok(int), Ok(hup)) => Self(Some([term, int, hup])),
            _ => {
                tracing::error!("cannot install signal handlers");
                Self(None)
            }
        }
    }

    /// Returns on TERM or INT; reloads the config (and reopens the audit log) on each HUP.
    async fn wait(&mut self, shared: &Shared) {
        let Some([term, int, hup]) = self.0.as_mut() else {
            return std::future::pending().await;
        };
        loop {
            tokio::select! {
                _ = term.recv() => return,
                _ = int.recv() => return,
                _ = hup.recv() => {
                    reload(shared, "sighup");
                    // logrotate's `create`: the file was renamed and a new one made; reopen it.
                    if let Some(audit) = &shared.services.audit {
                        audit.reopen(None);
                    }
                }
            }
        }
    }
}

#[cfg(not(unix))]
struct ShutdownSignals;

#[cfg(not(unix))]
impl ShutdownSignals {
    fn install() -> Self {
        Self
    }

    async fn wait(&mut self, _shared: &Shared) {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Loads and validates the config and swaps the snapshot: the reloadable part applies to
/// every request that starts after it; the upstream pool is kept when its settings did not
/// change. A startup-only key that changed is named in the log and counted, and takes effect
/// at the next restart. An invalid config is refused, logged and counted, and the running
/// snapshot keeps serving.
pub fn reload(shared: &Shared, trigger: &'static str) {
    let Some(path) = shared.config_path.as_deref() else {
        tracing::info!(trigger, "reload ignored: running on the embedded default config");
        return;
    };
    let started = std::time::Instant::now();
    let metrics = &shared.services.metrics;
    let result = Config::load(Some(path))
        .map_err(|e| e.to_string())
        .and_then(|config| Snapshot::reloaded(config, &shared.snapshot.load()).map_err(|e| e.to_string()));
    match result {
        Ok((snap, pool)) => {
            if let Some(audit) = &shared.services.audit {
                apply_audit_settings(audit, &shared.snapshot.load().config, &snap.config);
            }
            for key in shared.process.changed_keys(&snap.config.process) {
                metrics.restart_required.get_or_create(&KeyLabels { key }).inc();
                tracing::warn!(trigger, key, "`{key}` changed: takes effect at restart");
            }
            let catalog = snap.config.catalog.clone();
            shared.snapshot.store(Arc::new(snap));
            metrics.set_catalog(&catalog);
            metrics
                .reloads
                .get_or_create(&ReloadLabels { result: "success" })
                .inc();
            metrics.last_reload_ok.set(1);
            tracing::info!(
                trigger,
                elapsed_ms = started.elapsed().as_secs_f64() * 1000.0,
                catalog = %catalog.edition,
                upstream_pool = match pool {
                    crate::snapshot::Pool::Kept => "kept",
                    crate::snapshot::Pool::Rebuilt => "rebuilt",
                },
                "config reloaded"
            );
        }
        Err(problems) => {
            metrics
                .reloads
                .get_or_create(&ReloadLabels { result: "failure" })
                .inc();
            metrics.last_reload_ok.set(0);
            tracing::error!(trigger, problems = %problems.replace('\n', "; "), "config reload refused; the previous config keeps serving");
        }
    }
}

/// Reloads when the config file's modification time or size changes (polled: works the same
/// on every filesystem, including Kubernetes ConfigMap symlink swaps). The first stamp is taken
/// at the call, before the listeners are announced, not when the task first runs: a change
/// made as soon as the proxy says it listens is then a change, not the baseline.
fn watch_config(
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) -> impl std::future::Future<Output = ()> {
    let path = shared.config_path.clone();
    let mut last = path.as_deref().and_then(file_stamp);
    async move {
        let Some(path) = path else {
            return;
        };
        loop {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                _ = stop.changed() => return,
            }
            let now = file_stamp(&path);
            if now != last && now.is_some() {
                last = now;
                reload(&shared, "file_change");
            }
        }
    }
}

fn file_stamp(p: &std::path::Path) -> Option<(SystemTime, u64)> {
    let m = std::fs::metadata(p).ok()?;
    Some((m.modified().ok()?, m.len()))
}

/// The reloadable `[audit]` settings: `on_failure`, and a new `path` (the file is reopened
/// there and the chain continues). Turning the audit on or off takes effect at restart.
fn apply_audit_settings(audit: &AuditLog, old: &Config, new: &Config) {
    audit.set_on_failure(new.audit_on_failure);
    match (&old.audit_path, &new.audit_path) {
        (Some(a), Some(b)) if a != b => {
            tracing::info!(from = %a.display(), to = %b.display(), "audit.path changed: reopening");
            audit.reopen(Some(b.clone()));
        }
        (Some(_), None) => {
            tracing::warn!("audit.path removed: takes effect at restart; the audit log stays open");
        }
        (None, Some(_)) => {
            tracing::warn!("audit.path added: takes effect at restart");
        }
        _ => {}
    }
}
