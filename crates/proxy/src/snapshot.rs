//! Everything a request needs, loaded and validated as one unit and swapped whole on reload.
//! A request takes the snapshot once at its start and keeps it to the end, so a reload never
//! changes the rules under a request in flight.

use crate::client;
use crate::config::Config;
use crate::pool::UpstreamPool;
use arc_swap::ArcSwap;
use std::sync::Arc;

pub struct Snapshot {
    pub config: Config,
    /// The connections to the upstreams (rebuilt with the snapshot), by project index.
    pub upstream: UpstreamPool,
    /// TLS for the proxy listener, when configured; reloaded with the config.
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    /// The metrics label values of this config.
    pub labels: crate::metrics::LabelValues,
}

impl Snapshot {
    pub fn new(config: Config) -> Result<Snapshot, String> {
        let upstream = client::build(&config)?;
        let tls = match &config.tls {
            Some(files) => Some(tokio_rustls::TlsAcceptor::from(crate::tls::load_server_config(
                files,
            )?)),
            None => None,
        };
        Ok(Snapshot {
            labels: crate::metrics::LabelValues::new(&config),
            upstream,
            tls,
            config,
        })
    }
}

/// The current snapshot, replaced atomically by reloads.
pub type SharedSnapshot = Arc<ArcSwap<Snapshot>>;
