//! The state every connection and the admin listener share for the life of the process.

use crate::config::ProcessSettings;
use crate::pipeline::Services;
use crate::snapshot::SharedSnapshot;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

pub struct Shared {
    pub snapshot: SharedSnapshot,
    pub services: Arc<Services>,
    pub ready: AtomicBool,
    pub config_path: Option<PathBuf>,
    /// The startup-only settings the process runs with (a reload does not change them).
    pub process: ProcessSettings,
}

impl Shared {
    /// `/readyz`: the listener is bound, not draining, and (with `on_failure = "refuse"`) the
    /// audit log can be written, since every request would be refused otherwise.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
            && self
                .services
                .audit
                .as_ref()
                .is_none_or(|a| a.writable() || a.on_failure() == crate::audit::OnFailure::Continue)
    }
}

/// Serves one connection, closing it if no request head arrived by `deadline` (`seen` is set
/// by the service on each request). After the first request, hyper's own header timer bounds
/// the idle keep-alive waits.
pub(crate) async fn first_request_within<F>(
    conn: F,
    seen: &AtomicBool,
    deadline: tokio::time::Instant,
    timeouts: &prometheus_client::metrics::family::Family<
        crate::audit::KindLabel,
        prometheus_client::metrics::counter::Counter,
    >,
    kind: &'static str,
) where
    F: std::future::Future<Output = Result<(), Box<dyn std::error::Error + Send + Sync>>>,
{
    let count = || timeouts.get_or_create(&crate::audit::KindLabel { kind }).inc();
    // hyper's own header timer (a partial head, an idle keep-alive) ends the connection with
    // a timeout error: counted the same.
    let ended = |r: Result<(), Box<dyn std::error::Error + Send + Sync>>| {
        if r.is_err_and(|e| {
            e.downcast_ref::<hyper::Error>()
                .is_some_and(hyper::Error::is_timeout)
        }) {
            count();
        }
    };
    tokio::pin!(conn);
    tokio::select! {
        r = &mut conn => return ended(r),
        _ = tokio::time::sleep_until(deadline) => {}
    }
    if seen.load(Ordering::Acquire) {
        ended(conn.await);
    } else {
        count();
        tracing::debug!(
            kind,
            "connection closed: no request head within request_header_secs"
        );
    }
}
