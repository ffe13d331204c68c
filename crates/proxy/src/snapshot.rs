//! Everything a request needs, loaded and validated as one unit and swapped whole on reload.
//! A request takes the snapshot once at its start and keeps it to the end, so a reload never
//! changes the rules under a request in flight.

use crate::client::{self, UpstreamClient};
use crate::config::Config;
use arc_swap::ArcSwap;
use std::sync::Arc;

pub struct Snapshot {
    pub config: Config,
    /// Whether any project selects by client key: the bearer token is hashed only then.
    pub any_client_keys: bool,
    pub client: UpstreamClient,
}

impl Snapshot {
    pub fn new(config: Config) -> Result<Snapshot, String> {
        let client = client::build(&config)?;
        let any_client_keys = config
            .projects
            .projects
            .iter()
            .any(|p| !p.api_key_sha256.is_empty());
        Ok(Snapshot {
            config,
            any_client_keys,
            client,
        })
    }
}

/// The current snapshot, replaced atomically by reloads.
pub type SharedSnapshot = Arc<ArcSwap<Snapshot>>;
