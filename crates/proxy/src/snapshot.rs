//! Everything a request needs, loaded and validated as one unit and swapped whole on reload.
//! A request takes the snapshot once at its start and keeps it to the end, so a reload never
//! changes the rules under a request in flight.

use crate::body::ProxyBody;
use crate::client;
use crate::config::Config;
use crate::pool::UpstreamPool;
use arc_swap::ArcSwap;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::Duration;

pub struct Snapshot {
    pub config: Config,
    /// The connections to the upstreams, by project index. Shared with the next snapshot when
    /// a reload leaves [`UpstreamSettings`] as they were, so warm connections survive it.
    pub upstream: Arc<UpstreamPool<ProxyBody>>,
    /// What `upstream` was built from.
    upstream_settings: UpstreamSettings,
    /// TLS for the proxy listener, when configured; reloaded with the config.
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    /// The metrics label values of this config.
    pub labels: crate::metrics::LabelValues,
    /// The catalog's JSON body checks compiled for the scanner, by operation.
    pub body_checks: Vec<inspect::CheckSet>,
}

/// Everything the upstream pool is built from: the origin of each project in order, the
/// extra CA (its path and the hash of its contents: a renewed file at the same path counts
/// as a change), the CONNECT proxy, the pool size and the connection timeouts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamSettings {
    origins: Vec<(http::uri::Scheme, http::uri::Authority)>,
    ca_file: Option<(std::path::PathBuf, Option<[u8; 32]>)>,
    connect_proxy: Option<http::Uri>,
    max_idle_per_host: usize,
    connect: Duration,
    idle: Duration,
}

impl UpstreamSettings {
    pub fn of(config: &Config) -> UpstreamSettings {
        UpstreamSettings {
            origins: config
                .upstreams
                .iter()
                .map(|u| (u.scheme.clone(), u.authority.clone()))
                .collect(),
            ca_file: config.upstream_ca_file.as_ref().map(|p| {
                let hash = std::fs::read(p)
                    .ok()
                    .map(|pem| <[u8; 32]>::from(Sha256::digest(pem)));
                (p.clone(), hash)
            }),
            connect_proxy: config.connect_proxy.clone(),
            max_idle_per_host: config.pool_max_idle_per_host,
            connect: config.timeouts.connect,
            idle: config.timeouts.idle,
        }
    }
}

/// Why a config could not become a snapshot: each error names the setting or file at fault.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error(transparent)]
    Connector(#[from] client::ConnectorError),
    #[error(transparent)]
    Origin(#[from] crate::pool::BadOrigin),
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    #[error(transparent)]
    BodyChecks(#[from] crate::body_checks::CompileError),
}

/// The pool of every upstream origin of `config`, addressed by project index. Errors name the
/// CA file that could not be used.
pub fn build_pool(config: &Config) -> Result<UpstreamPool<ProxyBody>, SnapshotError> {
    let origins = config
        .upstreams
        .iter()
        .map(|u| (u.scheme.clone(), u.authority.clone()));
    Ok(UpstreamPool::new(
        client::connector(config)?,
        origins,
        config.pool_max_idle_per_host,
        config.timeouts.idle,
    )?)
}

/// Whether a reload kept the upstream pool or built a new one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pool {
    Kept,
    /// New requests use the new pool; the old one drains with the requests still using it.
    Rebuilt,
}

impl Snapshot {
    pub fn new(config: Config) -> Result<Snapshot, SnapshotError> {
        let settings = UpstreamSettings::of(&config);
        let upstream = Arc::new(build_pool(&config)?);
        Snapshot::with_pool(config, upstream, settings)
    }

    /// The snapshot of `config` loaded while `old` serves: `old`'s upstream pool is kept when
    /// the upstream settings did not change.
    pub fn reloaded(config: Config, old: &Snapshot) -> Result<(Snapshot, Pool), SnapshotError> {
        let settings = UpstreamSettings::of(&config);
        if settings == old.upstream_settings {
            let snap = Snapshot::with_pool(config, old.upstream.clone(), settings)?;
            return Ok((snap, Pool::Kept));
        }
        let upstream = Arc::new(build_pool(&config)?);
        Ok((Snapshot::with_pool(config, upstream, settings)?, Pool::Rebuilt))
    }

    fn with_pool(
        config: Config,
        upstream: Arc<UpstreamPool<ProxyBody>>,
        upstream_settings: UpstreamSettings,
    ) -> Result<Snapshot, SnapshotError> {
        let tls = match &config.tls {
            Some(files) => Some(tokio_rustls::TlsAcceptor::from(crate::tls::load_server_config(
                files,
            )?)),
            None => None,
        };
        Ok(Snapshot {
            body_checks: crate::body_checks::compile(&config.catalog)?,
            labels: crate::metrics::LabelValues::new(&config),
            upstream,
            upstream_settings,
            tls,
            config,
        })
    }
}

/// The current snapshot, replaced atomically by reloads.
pub type SharedSnapshot = Arc<ArcSwap<Snapshot>>;
