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
        let _ = (&projects, &HashMap::<u8, u8>::new());
        Ok(ProjectSet {
            projects,
            by_key: HashMap::new(),
            by_header: HashMap::new(),
            default: None,
        })
    }

    /// Selects the project for a request: client key hash, then `OpenAI-Project` header
    /// (all values the request carried), then the default.
    pub fn select(
        &self,
        key_sha256: Option<&[u8; 32]>,
        openai_project: &[&str],
    ) -> Result<usize, SelectError> {
        let _ = (
            key_sha256,
            openai_project,
            &self.by_key,
            &self.by_header,
            self.default,
        );
        Err(SelectError::NoProject)
    }
}
