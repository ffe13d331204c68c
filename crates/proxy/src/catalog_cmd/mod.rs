//! `residency-proxy catalog show` and `catalog diff`: what a project may call under a catalog,
//! and what changes between two catalogs. Both ask [`policy::eligibility`], which runs the
//! proxy's own `decide` on every operation and model.

pub mod diff;
pub mod show;

use crate::config::Config;
use policy::{Catalog, Project, Retention};
use std::path::Path;

/// Exit code of a command whose input is unusable (a catalog or config that does not load).
pub const EXIT_USAGE: i32 = 2;

/// A catalog named on the command line: a JSON file, or the name of an embedded edition.
pub fn load_catalog(arg: &str) -> Result<Catalog, Vec<String>> {
    let path = Path::new(arg);
    if !path.exists() {
        if let Some(c) = policy::catalog::edition(arg) {
            return c.map_err(|e| e.problems);
        }
    }
    let text = std::fs::read_to_string(path).map_err(|e| {
        vec![format!(
            "{arg}: cannot read: {e} (embedded editions: {})",
            policy::catalog::EDITIONS
                .iter()
                .map(|(name, _)| *name)
                .collect::<Vec<_>>()
                .join(", ")
        )]
    })?;
    Catalog::from_json(&text).map_err(|e| e.problems.iter().map(|p| format!("{arg}: {p}")).collect())
}

/// The config's catalog and projects (no upstream key is read).
pub fn load_config(path: &Path) -> Result<Config, Vec<String>> {
    Config::load_offline(path).map_err(|e| e.problems)
}

pub fn retention_id(r: Retention) -> &'static str {
    match r {
        Retention::Zdr => "zdr",
        Retention::ModifiedAbuseMonitoring => "modified_abuse_monitoring",
        Retention::Default => "default",
    }
}

pub const RETENTIONS: [Retention; 3] = [
    Retention::Zdr,
    Retention::ModifiedAbuseMonitoring,
    Retention::Default,
];

pub fn parse_retention(s: &str) -> Option<Retention> {
    RETENTIONS.into_iter().find(|r| retention_id(*r) == s)
}

/// A project that is only a region and a retention, with the config's defaults (store
/// rewrite, enforce, the region's image-input default, no aliases, not hipaa).
pub fn synthetic_project(region: &str, retention: Retention) -> Project {
    Project::with_defaults(format!("{region}/{}", retention_id(retention)), region, retention)
}

fn print_problems(problems: &[String]) -> i32 {
    for p in problems {
        eprintln!("residency-proxy: {p}");
    }
    EXIT_USAGE
}
