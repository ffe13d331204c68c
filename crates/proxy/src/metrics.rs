//! Prometheus metrics. Labels are low-cardinality by construction: project names and regions
//! come from the config, endpoints are catalog templates (or "unknown"), decisions and rules
//! are fixed sets. Never a raw path, never a model name outside the catalog.

use policy::RuleSet;
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

/// A label value shared by every request that carries it: counting a request clones a
/// pointer, never the text.
pub type Label = std::sync::Arc<str>;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub project: Label,
    pub region: Label,
    pub endpoint: Label,
    pub decision: &'static str,
    pub rule: RuleLabel,
}

/// The rules as a label value, `store,alias` (as in `x-residency-rule`), written out when
/// scraped rather than per request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RuleLabel(pub RuleSet);

impl EncodeLabelValue for RuleLabel {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        use std::fmt::Write;
        for (i, rule) in self.0.iter().enumerate() {
            if i > 0 {
                encoder.write_char(',')?;
            }
            encoder.write_str(rule.as_str())?;
        }
        Ok(())
    }
}

/// The label values of a config, made once per snapshot.
pub struct LabelValues {
    /// (name, region) by project index.
    pub projects: Vec<(Label, Label)>,
    /// Templates by catalog operation id.
    pub endpoints: Vec<Label>,
    /// No project selected.
    pub none: Label,
    /// No operation matched.
    pub unknown: Label,
    /// The series a request touches, found once per snapshot rather than hashed per request.
    handles: Handles,
}

/// A request series already found: (decision, rules) and its counter.
type SeenSeries = (&'static str, RuleSet, Counter);

fn find_series<'a>(seen: &'a [SeenSeries], decision: &str, rules: RuleSet) -> Option<&'a Counter> {
    seen.iter()
        .find(|(d, r, _)| *d == decision && *r == rules)
        .map(|(_, _, c)| c)
}

/// Metric handles cached per config snapshot. A prometheus `Family` finds a series by hashing
/// its labels (SipHash, every label) under a lock; a handle is a shared reference to the same
/// series, so counting through it is one atomic add.
struct Handles {
    /// By project index: the region's (time to first byte, duration) histograms.
    regions: Vec<std::sync::OnceLock<(Histogram, Histogram)>>,
    region_labels: Vec<RegionLabels>,
    /// By (project or none) × (operation or unknown): the request counters seen so far, keyed
    /// by (decision, rules). Few per slot, so a short list.
    requests: Vec<std::sync::RwLock<Vec<SeenSeries>>>,
    ops: usize,
}

impl LabelValues {
    pub fn new(config: &crate::config::Config) -> LabelValues {
        LabelValues {
            projects: config
                .projects
                .projects
                .iter()
                .map(|p| (Label::from(p.name.as_str()), Label::from(p.region.as_str())))
                .collect(),
            endpoints: config
                .catalog
                .operations
                .iter()
                .map(|op| Label::from(op.template.as_str()))
                .collect(),
            none: Label::from("-"),
            unknown: Label::from("unknown"),
            handles: Handles {
                regions: config
                    .upstreams
                    .iter()
                    .map(|_| std::sync::OnceLock::new())
                    .collect(),
                region_labels: config
                    .projects
                    .projects
                    .iter()
                    .map(|p| RegionLabels {
                        region: p.region.clone(),
                    })
                    .collect(),
                requests: (0..(config.projects.projects.len() + 1) * (config.catalog.operations.len() + 1))
                    .map(|_| std::sync::RwLock::new(Vec::new()))
                    .collect(),
                ops: config.catalog.operations.len() + 1,
            },
        }
    }

    /// Counts one request in `requests_total`.
    pub fn count_request(
        &self,
        metrics: &Metrics,
        project: Option<usize>,
        op: Option<policy::OpId>,
        decision: &'static str,
        rules: RuleSet,
    ) {
        let h = &self.handles;
        let row = project.filter(|&p| p < self.projects.len()).map_or(0, |p| p + 1);
        let col = op.filter(|&o| o < h.ops - 1).map_or(0, |o| o + 1);
        // In range by construction: row ≤ projects, col < ops, and there are (projects + 1) × ops.
        let slot = &h.requests[row * h.ops + col];
        // Read-locked: workers counting the same endpoint share the lock. The write lock is
        // taken only the first time a (decision, rules) pair is seen here.
        if let Ok(seen) = slot.read() {
            if let Some(c) = find_series(&seen, decision, rules) {
                c.inc();
                return;
            }
        }
        let c = metrics
            .requests
            .get_or_create(&self.request(project, op, decision, rules))
            .clone();
        c.inc();
        if let Ok(mut seen) = slot.write() {
            if find_series(&seen, decision, rules).is_none() {
                seen.push((decision, rules, c));
            }
        }
    }

    /// The (time to first byte, duration) histograms of `project`'s region.
    pub fn region_histograms(&self, metrics: &Metrics, project: usize) -> Option<&(Histogram, Histogram)> {
        let h = &self.handles;
        let label = h.region_labels.get(project)?;
        Some(h.regions.get(project)?.get_or_init(|| {
            (
                metrics.upstream_seconds.get_or_create(label).clone(),
                metrics.response_seconds.get_or_create(label).clone(),
            )
        }))
    }

    /// The labels of one request.
    pub fn request(
        &self,
        project: Option<usize>,
        op: Option<policy::OpId>,
        decision: &'static str,
        rules: RuleSet,
    ) -> RequestLabels {
        let (project, region) = project
            .and_then(|i| self.projects.get(i))
            .cloned()
            .unwrap_or_else(|| (self.none.clone(), self.none.clone()));
        RequestLabels {
            project,
            region,
            endpoint: op
                .and_then(|op| self.endpoints.get(op))
                .unwrap_or(&self.unknown)
                .clone(),
            decision,
            rule: RuleLabel(rules),
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RegionLabels {
    pub region: String,
}

/// The catalog edition in use (`catalog_info`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CatalogLabels {
    pub edition: String,
    pub date: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReloadLabels {
    pub result: &'static str,
}

/// A startup-only config key (`listen`, `limits.max_connections`, ...).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KeyLabels {
    pub key: &'static str,
}

pub struct Metrics {
    pub registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub upstream_seconds: Family<RegionLabels, Histogram>,
    pub response_seconds: Family<RegionLabels, Histogram>,
    pub response_bytes: Counter,
    /// Requests refused because `limits.max_buffered_bytes` was held.
    pub buffer_refusals: Counter,
    pub bytes_in: Counter,
    pub bytes_out: Counter,
    pub open_connections: Gauge,
    /// Idle keep-alive connections waiting without a hyper connection (see `keepalive`).
    pub parked_connections: Gauge,
    pub reloads: Family<ReloadLabels, Counter>,
    pub last_reload_ok: Gauge,
    /// 1 for the catalog edition in use; replaced on reload.
    pub catalog_info: Family<CatalogLabels, Gauge>,
    pub audit: crate::audit::AuditMetrics,
    /// Waits that ran out: `request_header` (no request head from accept or after the TLS
    /// handshake), `admin_header`, `upstream_idle` (an upstream body that went silent).
    pub timeouts: Family<crate::audit::KindLabel, Counter>,
    /// Forwarded responses that did not end complete, by how: `upstream_error` (reset or
    /// truncated), `upstream_idle_timeout`, `client_gone`.
    pub response_errors: Family<crate::audit::KindLabel, Counter>,
    /// Reloads that changed a startup-only key, by key: it applies at the next restart.
    pub restart_required: Family<KeyLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("residency_proxy");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "requests",
            "Requests by project, region, endpoint template, decision and rule",
            requests.clone(),
        );
        let upstream_seconds = Family::<RegionLabels, Histogram>::new_with_constructor(
            (|| Histogram::new(exponential_buckets(0.001, 2.0, 18))) as fn() -> Histogram,
        );
        registry.register(
            "upstream_response_seconds",
            "Time from forwarding to the upstream's response head (time to first byte)",
            upstream_seconds.clone(),
        );
        let response_seconds = Family::<RegionLabels, Histogram>::new_with_constructor(
            (|| Histogram::new(exponential_buckets(0.001, 2.0, 20))) as fn() -> Histogram,
        );
        registry.register(
            "upstream_duration_seconds",
            "Time from request arrival to the last byte of the upstream's response (streams included)",
            response_seconds.clone(),
        );
        let response_bytes = Counter::default();
        registry.register(
            "response_body_bytes",
            "Upstream response body bytes sent to clients",
            response_bytes.clone(),
        );
        let buffer_refusals = Counter::default();
        registry.register(
            "buffer_budget_refusals",
            "Requests refused with 503 because limits.max_buffered_bytes was held by other requests",
            buffer_refusals.clone(),
        );
        let bytes_in = Counter::default();
        registry.register(
            "request_body_bytes",
            "Request body bytes inspected",
            bytes_in.clone(),
        );
        let bytes_out = Counter::default();
        registry.register(
            "forwarded_body_bytes",
            "Request body bytes forwarded after inspection",
            bytes_out.clone(),
        );
        let open_connections = Gauge::default();
        registry.register(
            "open_connections",
            "Client connections currently open",
            open_connections.clone(),
        );
        let parked_connections = Gauge::default();
        registry.register(
            "parked_connections",
            "Idle keep-alive client connections parked without HTTP buffers until their next request",
            parked_connections.clone(),
        );
        let reloads = Family::<ReloadLabels, Counter>::default();
        registry.register("config_reloads", "Config reloads by result", reloads.clone());
        // Both series exist from the start, so alerts on `result="failure"` work before one.
        for result in ["success", "failure"] {
            let _ = reloads.get_or_create(&ReloadLabels { result });
        }
        let last_reload_ok = Gauge::default();
        registry.register(
            "config_last_reload_success",
            "1 if the last reload succeeded",
            last_reload_ok.clone(),
        );
        last_reload_ok.set(1);
        let catalog_info = Family::<CatalogLabels, Gauge>::default();
        registry.register(
            "catalog_info",
            "The catalog edition in use (1), with its compilation date",
            catalog_info.clone(),
        );
        let restart_required = Family::<KeyLabels, Counter>::default();
        registry.register(
            "config_restart_required",
            "Reloads that changed a startup-only key (it takes effect at the next restart), by key",
            restart_required.clone(),
        );
        registry.register(
            "build",
            "Build information",
            Info::new(vec![("version", env!("CARGO_PKG_VERSION"))]),
        );
        let audit = crate::audit::AuditMetrics::register(&mut registry);
        let timeouts = Family::<crate::audit::KindLabel, Counter>::default();
        registry.register("timeouts", "Waits that ran out, by kind", timeouts.clone());
        let response_errors = Family::<crate::audit::KindLabel, Counter>::default();
        registry.register(
            "response_body_errors",
            "Forwarded responses that did not end complete, by how they ended",
            response_errors.clone(),
        );
        for kind in ["request_header", "admin_header", "upstream_idle"] {
            let _ = timeouts.get_or_create(&crate::audit::KindLabel { kind });
        }
        for kind in ["upstream_error", "upstream_idle_timeout", "client_gone"] {
            let _ = response_errors.get_or_create(&crate::audit::KindLabel { kind });
        }
        Metrics {
            audit,
            timeouts,
            response_errors,
            registry,
            requests,
            upstream_seconds,
            response_seconds,
            response_bytes,
            buffer_refusals,
            bytes_in,
            bytes_out,
            open_connections,
            parked_connections,
            reloads,
            last_reload_ok,
            catalog_info,
            restart_required,
        }
    }

    /// Names the catalog edition in use; the previous edition's series goes.
    pub fn set_catalog(&self, catalog: &policy::Catalog) {
        self.catalog_info.clear();
        self.catalog_info
            .get_or_create(&CatalogLabels {
                edition: catalog.edition.clone(),
                date: catalog.date.clone(),
            })
            .set(1);
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn config() -> Config {
        let text = "[[projects]]\nname = \"p\"\nregion = \"eu\"\nretention = \"zdr\"\ndefault = true\n";
        Config::from_toml(text, None).unwrap()
    }

    fn scrape(m: &Metrics) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &m.registry).unwrap();
        out
    }

    #[test]
    fn cached_handles_count_into_the_same_series_as_the_family() {
        let config = config();
        let labels = LabelValues::new(&config);
        let m = Metrics::new();
        let mut store = RuleSet::default();
        store.insert(policy::Rule::Store);
        for _ in 0..3 {
            labels.count_request(&m, Some(0), Some(0), "rewrite", store);
        }
        labels.count_request(&m, Some(0), Some(0), "allow", RuleSet::default());
        labels.count_request(&m, None, None, "error", RuleSet::default());
        // Out-of-range indexes fall back to the family, never panic.
        labels.count_request(&m, Some(99), Some(usize::MAX), "error", RuleSet::default());
        let text = scrape(&m);
        let endpoint = config.catalog.operations[0].template.as_str();
        let series = |decision: &str, rule: &str| {
            format!(
                "residency_proxy_requests_total{{project=\"p\",region=\"eu\",endpoint=\"{endpoint}\",decision=\"{decision}\",rule=\"{rule}\"}}"
            )
        };
        assert!(
            text.contains(&format!("{} 3\n", series("rewrite", "store"))),
            "{text}"
        );
        assert!(text.contains(&format!("{} 1\n", series("allow", ""))), "{text}");
        assert!(text.contains(
            "residency_proxy_requests_total{project=\"-\",region=\"-\",endpoint=\"unknown\",decision=\"error\",rule=\"\"} 2\n"
        ), "{text}");

        let (first_byte, _) = labels.region_histograms(&m, 0).unwrap();
        first_byte.observe(0.01);
        let again = labels.region_histograms(&m, 0).unwrap();
        again.0.observe(0.01);
        assert!(scrape(&m).contains("residency_proxy_upstream_response_seconds_count{region=\"eu\"} 2\n"));
        assert!(labels.region_histograms(&m, 5).is_none());
    }
}
