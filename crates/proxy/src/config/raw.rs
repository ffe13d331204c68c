//! The config file as written: serde types that refuse unknown keys. Validation into
//! [`super::Config`] happens in `super::validate`, which reports every problem with its place.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub listen: Option<String>,
    pub admin_listen: Option<String>,
    /// Runtime worker threads; 0 or absent: one per CPU the process may run on, and a
    /// single-threaded runtime when that is one CPU (taskset, cgroup limit). 1 runs a
    /// single-threaded runtime (lowest overhead when the proxy is pinned to one core).
    pub workers: Option<usize>,
    #[serde(default)]
    pub limits: RawLimits,
    #[serde(default)]
    pub catalog: RawCatalog,
    #[serde(default)]
    pub upstream: RawUpstream,
    #[serde(default)]
    pub timeouts: RawTimeouts,
    #[serde(default)]
    pub log: RawLog,
    #[serde(default)]
    pub auth: RawAuth,
    #[serde(default)]
    pub audit: RawAudit,
    #[serde(default)]
    pub headers: RawHeaders,
    pub tls: Option<RawTls>,
    #[serde(default)]
    pub projects: Vec<RawProject>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    pub max_body_bytes: Option<u64>,
    pub max_connections: Option<usize>,
    pub max_concurrent_requests: Option<usize>,
    pub max_buffered_bytes: Option<u64>,
    /// Connections to the admin listener (its own budget: it cannot starve the proxy port).
    pub admin_max_connections: Option<usize>,
}

/// Shared-gateway authentication.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAuth {
    /// true: a client bearer token whose sha256 is in no project's `api_key_sha256` is refused
    /// (401) before any body is read.
    #[serde(default)]
    pub require_client_key: bool,
}

/// Request header handling.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHeaders {
    /// Header names with `_`: "drop" (default, as nginx), "refuse" or "forward". A name that
    /// aliases a header the proxy reads (`OpenAI_Project`) is refused whatever this says.
    pub underscores: Option<crate::identity::Underscores>,
}

/// The decision audit log.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAudit {
    /// Append-only JSON-lines file of decisions, hash-chained.
    pub path: Option<PathBuf>,
    /// "refuse" (default): nothing is forwarded whose decision was not written; "continue":
    /// requests go on and lost records are counted and announced by a gap record.
    pub on_failure: Option<crate::audit::OnFailure>,
}

/// TLS on the proxy listener.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCatalog {
    /// A catalog JSON file.
    pub path: Option<PathBuf>,
    /// The name of a catalog edition embedded in the binary (e.g. `seed-004`); not with `path`.
    pub edition: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUpstream {
    #[serde(default)]
    pub base_urls: BTreeMap<String, String>,
    /// Extra PEM CA bundle trusted for upstream TLS, in addition to the webpki roots.
    pub ca_file: Option<PathBuf>,
    /// Outbound HTTP CONNECT proxy for egress-controlled networks, e.g. `http://10.0.0.1:3128`.
    pub connect_proxy: Option<String>,
    /// Idle upstream connections kept per host.
    pub pool_max_idle_per_host: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTimeouts {
    pub connect_secs: Option<f64>,
    pub upstream_response_secs: Option<f64>,
    pub request_header_secs: Option<f64>,
    pub request_body_secs: Option<f64>,
    pub idle_secs: Option<f64>,
    pub shutdown_grace_secs: Option<f64>,
    /// An upstream response body that sends nothing for this long is ended (with an error).
    pub upstream_idle_secs: Option<f64>,
    /// After SIGTERM, /readyz answers 503 while the proxy keeps serving for this long.
    pub shutdown_drain_delay_secs: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLog {
    pub format: Option<LogFormat>,
    pub level: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RawRetention {
    Zdr,
    ModifiedAbuseMonitoring,
    Default,
}

#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RawStoreMode {
    #[default]
    Rewrite,
    Reject,
}

#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RawMode {
    #[default]
    Enforce,
    Report,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProject {
    pub name: String,
    pub region: String,
    pub retention: RawRetention,
    #[serde(default)]
    pub store: RawStoreMode,
    #[serde(default)]
    pub mode: RawMode,
    #[serde(default)]
    pub default: bool,
    pub openai_project: Option<String>,
    #[serde(default)]
    pub api_key_sha256: Vec<String>,
    pub upstream_api_key_env: Option<String>,
    pub upstream_api_key_file: Option<PathBuf>,
    #[serde(default)]
    pub aliases: BTreeMap<String, String>,
    pub image_inputs: Option<bool>,
    #[serde(default)]
    pub hipaa: bool,
    /// Add the catalog's encrypted-reasoning value (`reasoning.encrypted_content`) to the
    /// include list of requests with a reasoning model: multi-turn reasoning without stored
    /// state.
    #[serde(default)]
    pub responses_encrypted_reasoning: bool,
}
