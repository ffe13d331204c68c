//! Configuration: TOML → [`raw::RawConfig`] (unknown keys refused) → validated [`Config`].
//!
//! Validation never stops at the first problem: `residency-proxy check` prints them all,
//! each with its place (`projects[1].region: unknown region "uk", did you mean "gb"?`).

pub mod raw;
pub mod safe;
mod suggest;
mod upstream;

use policy::{Catalog, Mode, Project, ProjectSet, Retention, StoreMode};
use raw::{LogFormat, RawConfig, RawMode, RawProject, RawRetention, RawStoreMode};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use upstream::{parse_base_url, upstream_key, validate_base_urls, Secrets, SecretsCtx};

pub use crate::tls::TlsFiles;

/// The config used when `serve` is given none: one `global` project on 127.0.0.1:8080.
pub const DEFAULT_TOML: &str = include_str!("../../../../config/default.toml");

/// A validated configuration: the part a reload applies (everything a request needs,
/// precomputed), and in [`Config::process`] the settings read once at start.
#[derive(Debug, Clone)]
pub struct Config {
    /// Startup-only: a reload that changes one logs it and counts it, and it takes effect at
    /// the next restart.
    pub process: ProcessSettings,
    pub limits: Limits,
    pub timeouts: Timeouts,
    pub catalog: Arc<Catalog>,
    pub projects: ProjectSet,
    /// Parallel to `projects.projects`.
    pub upstreams: Vec<ProjectUpstream>,
    pub upstream_ca_file: Option<PathBuf>,
    pub connect_proxy: Option<http::Uri>,
    pub pool_max_idle_per_host: usize,
    /// Refuse client keys that select no project (shared gateway).
    pub require_client_key: bool,
    /// What the proxy does with request header names that contain `_`.
    pub underscores: crate::identity::Underscores,
    pub audit_path: Option<PathBuf>,
    pub audit_on_failure: crate::audit::OnFailure,
    pub tls: Option<TlsFiles>,
    /// Where the config came from (None: the embedded default).
    pub source: Option<PathBuf>,
}

/// The settings the process reads once at start (sockets, runtime, logging,
/// connection limits). A reload never applies them: see [`ProcessSettings::changed_keys`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessSettings {
    pub listen: SocketAddr,
    pub admin_listen: Option<SocketAddr>,
    /// 0: one per available CPU.
    pub workers: usize,
    pub log_format: LogFormat,
    pub log_level: Option<String>,
    pub max_connections: usize,
    pub max_concurrent_requests: usize,
    /// `limits.max_buffered_bytes`: the bytes held for inspection across all requests.
    pub max_buffered_bytes: u64,
    /// `timeouts.request_header_secs`, set on the listener's connection builder.
    pub request_header: Duration,
}

impl ProcessSettings {
    /// The config keys whose value differs in `new` (as written in the file).
    pub fn changed_keys(&self, new: &ProcessSettings) -> Vec<&'static str> {
        let mut keys = Vec::new();
        let mut check = |changed: bool, key: &'static str| {
            if changed {
                keys.push(key);
            }
        };
        check(self.listen != new.listen, "listen");
        check(self.admin_listen != new.admin_listen, "admin_listen");
        check(self.workers != new.workers, "workers");
        check(self.log_format != new.log_format, "log.format");
        check(self.log_level != new.log_level, "log.level");
        check(
            self.max_connections != new.max_connections,
            "limits.max_connections",
        );
        check(
            self.max_concurrent_requests != new.max_concurrent_requests,
            "limits.max_concurrent_requests",
        );
        check(
            self.max_buffered_bytes != new.max_buffered_bytes,
            "limits.max_buffered_bytes",
        );
        check(
            self.request_header != new.request_header,
            "timeouts.request_header_secs",
        );
        keys
    }
}

/// Reloadable limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_body_bytes: u64,
    /// Startup-only like `max_connections`, kept here with the admin listener's settings.
    pub admin_max_connections: usize,
}

/// Reloadable timeouts (`request_header_secs` is a [`ProcessSettings`] one).
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub connect: Duration,
    pub upstream_response: Duration,
    /// Reading a body that must be inspected (a slow client cannot hold a slot forever).
    pub request_body: Duration,
    pub idle: Duration,
    pub shutdown_grace: Duration,
    pub upstream_idle: Duration,
    pub shutdown_drain_delay: Duration,
}

/// Where a project's requests go and what is injected on the way.
#[derive(Debug, Clone)]
pub struct ProjectUpstream {
    /// e.g. `https://eu.api.openai.com` or an `upstream.base_urls` override.
    pub base_url: String,
    pub scheme: http::uri::Scheme,
    pub authority: http::uri::Authority,
    /// The `Host` sent upstream.
    pub host_header: http::HeaderValue,
    /// `Authorization: Bearer …` replacing the client's, when a key is configured.
    pub authorization: Option<http::HeaderValue>,
    /// `OpenAI-Project` sent upstream, when configured.
    pub openai_project: Option<http::HeaderValue>,
    /// Precomputed `x-residency-project` / `x-residency-region` values.
    pub project_header: http::HeaderValue,
    pub region_header: http::HeaderValue,
}

/// Every problem found, each with its place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub problems: Vec<String>,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.problems.join("\n"))
    }
}

impl std::error::Error for ConfigError {}

impl ConfigError {
    fn one(problem: String) -> ConfigError {
        ConfigError {
            problems: vec![problem],
        }
    }
}

impl Config {
    /// Loads the file at `path`, or the embedded default when None.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        match path {
            None => Config::from_toml(DEFAULT_TOML, None),
            Some(p) => {
                let text = safe::read_capped(p, safe::MAX_CONFIG_BYTES, "the config file")
                    .map_err(ConfigError::one)?;
                Config::from_toml(&text, Some(p))
            }
        }
    }

    /// Loads a config for offline questions about its policy (`explain`, `catalog show`, `catalog diff`):
    /// upstream keys are not read, so no production secret is needed.
    pub fn load_offline(path: &Path) -> Result<Config, ConfigError> {
        let text =
            safe::read_capped(path, safe::MAX_CONFIG_BYTES, "the config file").map_err(ConfigError::one)?;
        let mut raw: RawConfig =
            toml::from_str(&text).map_err(|e| ConfigError::one(safe::toml_error(&text, Some(path), &e)))?;
        for p in &mut raw.projects {
            p.upstream_api_key_env = None;
            p.upstream_api_key_file = None;
        }
        validate(raw, Some(path), Secrets::Required, &mut Vec::new())
    }

    /// Loads a config for `check`, which runs where the production secrets may not be (CI, a
    /// laptop): an unset `upstream_api_key_env` or a missing key file is returned as a warning
    /// instead of a problem. Everything else is validated exactly as [`Config::load`] does.
    pub fn load_for_check(path: &Path) -> (Result<Config, ConfigError>, Vec<String>) {
        let text = match safe::read_capped(path, safe::MAX_CONFIG_BYTES, "the config file") {
            Ok(t) => t,
            Err(e) => return (Err(ConfigError::one(e)), Vec::new()),
        };
        let raw: RawConfig = match toml::from_str(&text) {
            Ok(r) => r,
            Err(e) => {
                return (
                    Err(ConfigError::one(safe::toml_error(&text, Some(path), &e))),
                    Vec::new(),
                )
            }
        };
        let mut missing = Vec::new();
        let result = validate(raw, Some(path), Secrets::MayBeMissing, &mut missing);
        (result, missing)
    }

    /// Parses and validates `text`; `source` is used for relative paths and messages.
    pub fn from_toml(text: &str, source: Option<&Path>) -> Result<Config, ConfigError> {
        let raw: RawConfig =
            toml::from_str(text).map_err(|e| ConfigError::one(safe::toml_error(text, source, &e)))?;
        validate(raw, source, Secrets::Required, &mut Vec::new())
    }
}

fn parse_addr(problems: &mut Vec<String>, place: &str, value: &str) -> Option<SocketAddr> {
    match value.parse::<SocketAddr>() {
        Ok(a) => Some(a),
        Err(_) => {
            problems.push(format!("{place}: is not an address like \"127.0.0.1:8080\""));
            None
        }
    }
}

/// A timeout: 0 would fire at once (or, read as "none", never), so the range starts at 1 s.
fn secs(problems: &mut Vec<String>, place: &str, value: Option<f64>, default: f64) -> Duration {
    bounded_secs(problems, place, value, default, 1.0)
}

fn bounded_secs(
    problems: &mut Vec<String>,
    place: &str,
    value: Option<f64>,
    default: f64,
    min: f64,
) -> Duration {
    let v = value.unwrap_or(default);
    if !(v.is_finite() && v >= min && v <= 86_400.0) {
        problems.push(format!(
            "{place}: must be a number of seconds between {min} and 86400, got {v}"
        ));
        return Duration::from_secs_f64(default);
    }
    Duration::from_secs_f64(v)
}

/// A count that must be at least 1 (0 would never accept or never serve).
fn count(problems: &mut Vec<String>, place: &str, value: Option<usize>, default: usize) -> usize {
    let v = value.unwrap_or(default);
    if !(1..=1_000_000).contains(&v) {
        problems.push(format!("{place}: must be between 1 and 1000000, got {v}"));
        return default;
    }
    v
}

fn load_catalog(raw: &raw::RawCatalog, base: Option<&Path>) -> Result<Catalog, Vec<String>> {
    match (&raw.path, &raw.edition) {
        (Some(_), Some(_)) => Err(vec![
            "catalog: set path (a catalog file) or edition (an embedded one), not both".to_owned(),
        ]),
        (None, None) => Catalog::builtin().map_err(|e| {
            e.problems
                .iter()
                .map(|p| format!("builtin catalog: {p}"))
                .collect()
        }),
        (None, Some(name)) => match policy::catalog::edition(name) {
            Some(c) => c.map_err(|e| {
                e.problems
                    .iter()
                    .map(|p| format!("catalog.edition ({name}): {p}"))
                    .collect()
            }),
            None => Err(vec![format!(
                "catalog.edition: unknown edition {name:?} (embedded: {})",
                policy::catalog::EDITIONS
                    .iter()
                    .map(|(n, _)| *n)
                    .collect::<Vec<_>>()
                    .join(", ")
            )]),
        },
        (Some(p), None) => {
            let p = relative_to(base, p);
            let text = safe::read_capped(&p, safe::MAX_CATALOG_BYTES, "the catalog")
                .map_err(|e| vec![format!("catalog.path: {e}")])?;
            Catalog::from_json(&text).map_err(|e| {
                e.problems
                    .iter()
                    .map(|q| format!("catalog.path ({}): {q}", p.display()))
                    .collect()
            })
        }
    }
}

/// Paths in a config file are relative to the file's directory.
fn relative_to(config_file: Option<&Path>, p: &Path) -> PathBuf {
    match config_file.and_then(Path::parent) {
        Some(dir) if p.is_relative() => dir.join(p),
        _ => p.to_path_buf(),
    }
}

fn validate(
    raw: RawConfig,
    source: Option<&Path>,
    secrets: Secrets,
    missing_secrets: &mut Vec<String>,
) -> Result<Config, ConfigError> {
    let mut problems = Vec::new();
    let listen = parse_addr(
        &mut problems,
        "listen",
        raw.listen.as_deref().unwrap_or("127.0.0.1:8080"),
    );
    let admin_listen = match raw.admin_listen.as_deref() {
        None => None,
        Some(a) => parse_addr(&mut problems, "admin_listen", a),
    };
    let catalog = match load_catalog(&raw.catalog, source) {
        Ok(c) => Arc::new(c),
        Err(mut p) => {
            problems.append(&mut p);
            return Err(ConfigError { problems });
        }
    };

    let l = &raw.limits;
    let max_connections = count(&mut problems, "limits.max_connections", l.max_connections, 10_000);
    let max_concurrent_requests = count(
        &mut problems,
        "limits.max_concurrent_requests",
        l.max_concurrent_requests,
        10_000,
    );
    let limits = Limits {
        max_body_bytes: raw.limits.max_body_bytes.unwrap_or(32 * 1024 * 1024),
        admin_max_connections: count(
            &mut problems,
            "limits.admin_max_connections",
            l.admin_max_connections,
            64,
        ),
    };
    if limits.max_body_bytes == 0 {
        problems.push("limits.max_body_bytes: must be greater than 0".into());
    }
    // 256 MiB: eight bodies of the default 32 MiB limit held at once.
    let max_buffered_bytes = l.max_buffered_bytes.unwrap_or(256 * 1024 * 1024);
    if max_buffered_bytes < limits.max_body_bytes {
        problems.push(format!(
            "limits.max_buffered_bytes: must be at least limits.max_body_bytes ({}), or no body of the largest size could ever be inspected",
            limits.max_body_bytes
        ));
    }
    let t = &raw.timeouts;
    let request_header = secs(
        &mut problems,
        "timeouts.request_header_secs",
        t.request_header_secs,
        30.0,
    );
    let timeouts = Timeouts {
        connect: secs(&mut problems, "timeouts.connect_secs", t.connect_secs, 10.0),
        upstream_response: secs(
            &mut problems,
            "timeouts.upstream_response_secs",
            t.upstream_response_secs,
            600.0,
        ),
        request_body: secs(
            &mut problems,
            "timeouts.request_body_secs",
            t.request_body_secs,
            60.0,
        ),
        idle: secs(&mut problems, "timeouts.idle_secs", t.idle_secs, 300.0),
        shutdown_grace: secs(
            &mut problems,
            "timeouts.shutdown_grace_secs",
            t.shutdown_grace_secs,
            30.0,
        ),
        upstream_idle: secs(
            &mut problems,
            "timeouts.upstream_idle_secs",
            t.upstream_idle_secs,
            300.0,
        ),
        // 0 is allowed here: no delay (e.g. nothing load-balances this proxy).
        shutdown_drain_delay: bounded_secs(
            &mut problems,
            "timeouts.shutdown_drain_delay_secs",
            t.shutdown_drain_delay_secs,
            5.0,
            0.0,
        ),
    };

    let base_urls = validate_base_urls(&mut problems, &catalog, &raw.upstream.base_urls);
    let connect_proxy = raw
        .upstream
        .connect_proxy
        .as_deref()
        .and_then(|u| match parse_base_url(u) {
            Ok((scheme, _)) if scheme == http::uri::Scheme::HTTP => u.parse::<http::Uri>().ok(),
            Ok(_) => {
                problems.push("upstream.connect_proxy: must be an http:// proxy address".to_string());
                None
            }
            Err(why) => {
                problems.push(format!("upstream.connect_proxy: the URL {why}"));
                None
            }
        });
    let tls = raw.tls.as_ref().map(|t| TlsFiles {
        cert_file: relative_to(source, &t.cert_file),
        key_file: relative_to(source, &t.key_file),
    });
    if let Some(t) = &tls {
        if let Err(e) = crate::tls::load_server_config(t) {
            problems.push(format!("tls: {e}"));
        }
    }
    if raw.projects.is_empty() {
        problems.push("projects: at least one [[projects]] entry is required".into());
    }
    let mut projects = Vec::new();
    let mut upstreams = Vec::new();
    let mut names = BTreeMap::new();
    for (i, p) in raw.projects.iter().enumerate() {
        if let Some(first) = names.insert(p.name.as_str(), i) {
            problems.push(format!(
                "projects[{i}].name: {:?} is already the name of projects[{first}]",
                p.name
            ));
        }
        let secrets = SecretsCtx {
            mode: secrets,
            missing: &mut *missing_secrets,
            source,
        };
        if let Some((project, upstream)) =
            validate_project(&mut problems, &catalog, &base_urls, i, p, secrets)
        {
            projects.push(project);
            upstreams.push(upstream);
        }
    }
    let projects = match ProjectSet::new(projects) {
        Ok(set) => set,
        Err(mut p) => {
            problems.append(&mut p);
            ProjectSet::default()
        }
    };
    if !problems.is_empty() {
        return Err(ConfigError { problems });
    }
    Ok(Config {
        process: ProcessSettings {
            listen: listen.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080))),
            admin_listen,
            workers: raw.workers.unwrap_or(0),
            log_format: raw.log.format.unwrap_or_default(),
            log_level: raw.log.level.clone(),
            max_connections,
            max_concurrent_requests,
            max_buffered_bytes,
            request_header,
        },
        limits,
        timeouts,
        catalog,
        projects,
        upstreams,
        upstream_ca_file: raw.upstream.ca_file.as_deref().map(|p| relative_to(source, p)),
        connect_proxy,
        pool_max_idle_per_host: raw.upstream.pool_max_idle_per_host.unwrap_or(1024),
        require_client_key: raw.auth.require_client_key,
        underscores: raw.headers.underscores.unwrap_or_default(),
        audit_path: raw.audit.path.as_deref().map(|p| relative_to(source, p)),
        audit_on_failure: raw.audit.on_failure.unwrap_or_default(),
        tls,
        source: source.map(Path::to_path_buf),
    })
}

fn validate_project(
    problems: &mut Vec<String>,
    catalog: &Catalog,
    base_urls: &BTreeMap<String, (http::uri::Scheme, http::uri::Authority)>,
    i: usize,
    p: &RawProject,
    secrets: SecretsCtx<'_>,
) -> Option<(Project, ProjectUpstream)> {
    let place = format!("projects[{i}]");
    let before = problems.len();
    if p.name.is_empty() || !p.name.bytes().all(|b| b.is_ascii_graphic()) {
        problems.push(format!(
            "{place}.name: must be non-empty printable ASCII without spaces"
        ));
    }
    let region = catalog.region(&p.region);
    match region {
        None => problems.push(format!(
            "{place}.region: {}",
            suggest::unknown_region(catalog, &p.region)
        )),
        Some(r) => {
            if matches!(p.retention, RawRetention::Default) && r.requires_mam_or_zdr {
                problems.push(format!(
                    "{place}.retention: \"default\" is not allowed in region {:?}: OpenAI requires \
                     modified abuse monitoring or zero data retention outside the US \
                     (use \"modified_abuse_monitoring\" or \"zdr\")",
                    r.id
                ));
            }
        }
    }
    let mut keys = Vec::new();
    for (k, h) in p.api_key_sha256.iter().enumerate() {
        let mut buf = [0u8; 32];
        match hex::decode_to_slice(h.trim(), &mut buf) {
            Ok(()) => keys.push(buf),
            Err(_) => problems.push(format!(
                "{place}.api_key_sha256[{k}]: must be 64 hex digits (sha256 of the key)"
            )),
        }
    }
    if let Some(op) = &p.openai_project {
        // Only an id a request can name one way is selectable (see `crate::identity`).
        if op.is_empty() || !op.bytes().all(crate::identity::is_id_byte) {
            problems.push(format!(
                "{place}.openai_project: must be a non-empty project id of letters, digits, '-', '_' and '.'"
            ));
        }
    }
    let authorization = upstream_key(problems, &place, p, secrets);
    if p.responses_encrypted_reasoning && !catalog.endpoints.iter().any(|e| e.encrypted_reasoning.is_some()) {
        problems.push(format!(
            "{place}.responses_encrypted_reasoning: catalog {} names no encrypted_reasoning value for any \
             endpoint, so the option would do nothing",
            catalog.edition
        ));
    }
    for (from, to) in &p.aliases {
        if from.is_empty() || to.is_empty() {
            problems.push(format!("{place}.aliases: empty model name in {from:?} = {to:?}"));
        }
    }
    if problems.len() > before {
        return None;
    }
    let region = region?;
    let (scheme, authority) = match base_urls.get(&region.id) {
        Some((s, a)) => (s.clone(), a.clone()),
        None => match http::uri::Authority::try_from(region.host.as_str()) {
            Ok(a) => (http::uri::Scheme::HTTPS, a),
            Err(_) => {
                problems.push(format!(
                    "{place}.region: catalog host {:?} is not a valid host",
                    region.host
                ));
                return None;
            }
        },
    };
    let project = Project {
        name: p.name.clone(),
        region: region.id.clone(),
        retention: match p.retention {
            RawRetention::Zdr => Retention::Zdr,
            RawRetention::ModifiedAbuseMonitoring => Retention::ModifiedAbuseMonitoring,
            RawRetention::Default => Retention::Default,
        },
        store: match p.store {
            RawStoreMode::Rewrite => StoreMode::Rewrite,
            RawStoreMode::Reject => StoreMode::Reject,
        },
        mode: match p.mode {
            RawMode::Enforce => Mode::Enforce,
            RawMode::Report => Mode::Report,
        },
        default: p.default,
        openai_project: p.openai_project.clone(),
        api_key_sha256: keys,
        aliases: p.aliases.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        image_inputs: p.image_inputs,
        hipaa: p.hipaa,
        encrypted_reasoning: p.responses_encrypted_reasoning,
    };
    let upstream = ProjectUpstream {
        base_url: format!("{scheme}://{authority}"),
        host_header: http::HeaderValue::from_str(authority.as_str()).ok()?,
        scheme,
        authority,
        authorization,
        openai_project: p
            .openai_project
            .as_deref()
            .and_then(|v| http::HeaderValue::from_str(v).ok()),
        project_header: http::HeaderValue::from_str(&p.name).ok()?,
        region_header: http::HeaderValue::from_str(&region.id).ok()?,
    };
    Some((project, upstream))
}

/// Things that are valid but probably not what the operator meant.
pub fn warnings(config: &Config) -> Vec<String> {
    let mut out = Vec::new();
    for (i, p) in config.projects.projects.iter().enumerate() {
        let offered = config
            .catalog
            .endpoints
            .iter()
            .any(|e| !e.content_free && e.regions.contains(&p.region));
        let residency = config.catalog.region(&p.region).is_some_and(|r| r.residency);
        if residency && !offered {
            out.push(format!(
                "projects[{i}].region: catalog {} offers no endpoint with residency in {:?}; every \
                 request of project {:?} except model listing will be refused",
                config.catalog.edition, p.region, p.name
            ));
        }
    }
    if !config.projects.projects.iter().any(|p| p.default) {
        out.push("projects: no project has default = true; requests that match no key or OpenAI-Project header are refused (no_project)".into());
    }
    out
}

#[cfg(test)]
mod tests;
