//! The policy side of a configured project, and project selection.

use std::collections::HashMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retention {
    Zdr,
    ModifiedAbuseMonitoring,
    Default,
}

/// What to do when `store` must be false.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreMode {
    Rewrite,
    Reject,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Enforce,
    Report,
}

/// A project as the policy sees it (already validated against the catalog by the config).
#[derive(Debug, Clone, PartialEq)]
pub struct Project {
    pub name: String,
    /// A region id of the catalog.
    pub region: String,
    pub retention: Retention,
    pub store: StoreMode,
    pub mode: Mode,
    pub default: bool,
    pub openai_project: Option<String>,
    /// sha256 of client bearer tokens that select this project.
    pub api_key_sha256: Vec<[u8; 32]>,
    /// Model names rewritten before the eligibility check.
    pub aliases: HashMap<String, String>,
    /// Image input approval; None: the region's default.
    pub image_inputs: Option<bool>,
    pub hipaa: bool,
    /// `responses_encrypted_reasoning`: add the catalog's encrypted-reasoning value to the
    /// include list of a reasoning model's request (multi-turn reasoning without stored state).
    pub encrypted_reasoning: bool,
}

impl Project {
    /// A project with every setting at its config default (`store = "rewrite"`, `mode =
    /// "enforce"`, not the default project, no selectors, no aliases, the region's image
    /// default, no HIPAA): what `catalog show --region --retention` and tests start from.
    pub fn with_defaults(name: impl Into<String>, region: &str, retention: Retention) -> Project {
        Project {
            name: name.into(),
            region: region.to_owned(),
            retention,
            store: StoreMode::Rewrite,
            mode: Mode::Enforce,
            default: false,
            openai_project: None,
            api_key_sha256: Vec::new(),
            aliases: HashMap::new(),
            image_inputs: None,
            hipaa: false,
            encrypted_reasoning: false,
        }
    }
}

/// Why no single project was selected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SelectError {
    /// Nothing matched and there is no default project.
    NoProject,
    /// The request names projects in more than one way that disagree (why).
    Ambiguous(&'static str),
}

/// All projects, with lookup tables for selection.
#[derive(Debug, Clone, Default)]
pub struct ProjectSet {
    pub projects: Vec<Project>,
    by_key: HashMap<[u8; 32], usize>,
    by_header: HashMap<String, usize>,
    default: Option<usize>,
}

impl ProjectSet {
    /// Builds the lookup tables; errors name each conflict (two defaults, one key or header
    /// on two projects) with its place, e.g. `projects[2].default: ...`.
    pub fn new(projects: Vec<Project>) -> Result<ProjectSet, Vec<String>> {
        let mut problems = Vec::new();
        let mut by_key: HashMap<[u8; 32], usize> = HashMap::new();
        let mut by_header: HashMap<String, usize> = HashMap::new();
        let mut by_name: HashMap<&str, usize> = HashMap::new();
        let mut default: Option<usize> = None;
        for (i, p) in projects.iter().enumerate() {
            if let Some(first) = by_name.insert(p.name.as_str(), i) {
                problems.push(format!(
                    "projects[{i}].name: \"{}\" is also the name of projects[{first}]",
                    p.name
                ));
            }
            if p.default {
                match default {
                    Some(d) => problems.push(format!(
                        "projects[{i}].default: project \"{}\" is already the default; only one project can be",
                        name_of(&projects, d)
                    )),
                    None => default = Some(i),
                }
            }
            if let Some(h) = &p.openai_project {
                if h.trim().is_empty() || h.trim() != h {
                    problems.push(format!(
                        "projects[{i}].openai_project: \"{h}\" is empty or has surrounding spaces"
                    ));
                } else if let Some(&other) = by_header.get(h.as_str()) {
                    problems.push(format!(
                        "projects[{i}].openai_project: \"{h}\" also selects project \"{}\"",
                        name_of(&projects, other)
                    ));
                } else {
                    by_header.insert(h.clone(), i);
                }
            }
            for (k, key) in p.api_key_sha256.iter().enumerate() {
                match by_key.get(key) {
                    Some(&other) if other == i => problems.push(format!(
                        "projects[{i}].api_key_sha256[{k}]: listed twice in this project"
                    )),
                    Some(&other) => problems.push(format!(
                        "projects[{i}].api_key_sha256[{k}]: also selects project \"{}\"",
                        name_of(&projects, other)
                    )),
                    None => {
                        by_key.insert(*key, i);
                    }
                }
            }
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(ProjectSet {
            projects,
            by_key,
            by_header,
            default,
        })
    }

    /// Selects the project for a request: client key hash, then `OpenAI-Project` header
    /// (all values the request carried), then the default.
    ///
    /// Fails closed: more than one header value, a key and a header that select different
    /// projects, or a header naming no configured project while the project chosen by key or
    /// default is bound to another OpenAI project, are all [`SelectError::Ambiguous`].
    pub fn select(
        &self,
        key_sha256: Option<&[u8; 32]>,
        openai_project: &[&str],
    ) -> Result<usize, SelectError> {
        let header = match openai_project {
            [] => None,
            [one] => Some(one.trim_matches(|c| c == ' ' || c == '\t')),
            _ => return Err(SelectError::Ambiguous("more than one OpenAI-Project header")),
        };
        let by_header = header.and_then(|h| self.by_header.get(h).copied());
        let by_key = key_sha256.and_then(|k| self.by_key.get(k).copied());
        let chosen = match (by_key, by_header) {
            (Some(k), Some(h)) if k != h => {
                return Err(SelectError::Ambiguous(
                    "the API key and the OpenAI-Project header select different projects",
                ))
            }
            (Some(k), _) => k,
            (None, Some(h)) => return Ok(h),
            (None, None) => self.default.ok_or(SelectError::NoProject)?,
        };
        // The header (if any) named no project, or the same one the key chose.
        if let (Some(h), None) = (header, by_header) {
            let bound = self
                .projects
                .get(chosen)
                .and_then(|p| p.openai_project.as_deref());
            if bound.is_some_and(|b| b != h) {
                return Err(SelectError::Ambiguous(
                    "the OpenAI-Project header names a different OpenAI project than the selected project's",
                ));
            }
        }
        Ok(chosen)
    }

    /// The project a client key hash selects, if any.
    pub fn by_key(&self, key_sha256: &[u8; 32]) -> Option<usize> {
        self.by_key.get(key_sha256).copied()
    }

    /// The project with this name.
    pub fn by_name(&self, name: &str) -> Option<usize> {
        self.projects.iter().position(|p| p.name == name)
    }

    /// The default project, if one is configured.
    pub fn default_project(&self) -> Option<usize> {
        self.default
    }
}

fn name_of(projects: &[Project], i: usize) -> &str {
    projects.get(i).map_or("?", |p| p.name.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn with_defaults_is_the_config_default_project() {
        let p = Project::with_defaults("eu/zdr", "eu", Retention::Zdr);
        assert_eq!((p.name.as_str(), p.region.as_str()), ("eu/zdr", "eu"));
        assert_eq!(p.retention, Retention::Zdr);
        assert_eq!((p.store, p.mode), (StoreMode::Rewrite, Mode::Enforce));
        assert!(!p.default && !p.hipaa && !p.encrypted_reasoning);
        assert!(p.openai_project.is_none() && p.api_key_sha256.is_empty() && p.aliases.is_empty());
        assert_eq!(p.image_inputs, None);
    }
}
