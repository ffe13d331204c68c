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
