//! Everything a request needs, loaded and validated as one unit and swapped whole on reload.
//! A request takes the snapshot once at its start and keeps it to the end, so a reload never
//! changes the rules under a request in flight.

use crate::client;
use crate::config::Config;
use crate::pool::UpstreamPool;
use arc_swap::ArcSwap;
use std::collections::HashSet;
use std::sync::Arc;

pub struct Snapshot {
    pub config: Config,
    /// Whether any project selects by client key: the bearer token is hashed only then.
    pub any_client_keys: bool,
    /// Every configured client key hash (for `auth.require_client_key`).
    pub client_keys: HashSet<[u8; 32]>,
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
        let client_keys: HashSet<[u8; 32]> = config
            .projects
            .projects
            .iter()
            .flat_map(|p| p.api_key_sha256.iter().copied())
            .collect();
        let tls = match &config.tls {
            Some(files) => Some(tokio_rustls::TlsAcceptor::from(crate::tls::load_server_config(
                files,
            )?)),
            None => None,
        };
        Ok(Snapshot {
            labels: crate::metrics::LabelValues::new(&config),
            any_client_keys: !client_keys.is_empty(),
            client_keys,
            upstream,
            tls,
            config,
        })
    }
}

/// The current snapshot, replaced atomically by reloads.
pub type SharedSnapshot = Arc<ArcSwap<Snapshot>>;
