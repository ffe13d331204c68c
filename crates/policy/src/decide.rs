//! One request → allow / rewrite / deny.

use crate::catalog::{Catalog, OpId};
use crate::facts::Facts;
use crate::project::Project;
use crate::rule::{Rule, RuleSet};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    Rewrite,
    Deny,
    /// Report mode: would have been denied, forwarded anyway.
    ReportDeny,
}

impl Verdict {
    /// The wire value (`x-residency-decision`).
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Allow => "allow",
            Verdict::Rewrite => "rewrite",
            Verdict::Deny => "deny",
            Verdict::ReportDeny => "report-deny",
        }
    }
}

/// The first denial: what the client is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    pub rule: Rule,
    /// Names region / endpoint / model; never request content other than the model name.
    pub message: String,
    /// The request field at fault (`model`, `store`, …), if any.
    pub param: Option<String>,
}

/// `store` is set to false.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreRewrite {
    /// `"store": true` (or `null` where the default is true) replaced by `false`.
    Replace,
    /// The field was absent and its default is true: `"store": false` is added.
    Insert,
}

/// The model name is rewritten by an alias.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelRewrite {
    pub from: String,
    pub to: String,
}

/// Edits to apply to the request before forwarding.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rewrites {
    pub store: Option<StoreRewrite>,
    pub model: Option<ModelRewrite>,
}

impl Rewrites {
    pub fn is_empty(&self) -> bool {
        self.store.is_none() && self.model.is_none()
    }
}

/// The outcome for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub verdict: Verdict,
    /// Every rule that applied: denials and rewrites.
    pub rules: RuleSet,
    /// The first denial (Deny and ReportDeny).
    pub denial: Option<Denial>,
    /// Applied when the request is forwarded (also in report mode).
    pub rewrites: Rewrites,
}

impl Decision {
    /// A denial that needs no project or operation (no_project, unknown_endpoint).
    pub fn deny(rule: Rule, message: String, param: Option<String>) -> Decision {
        let mut rules = RuleSet::default();
        rules.insert(rule);
        Decision {
            verdict: Verdict::Deny,
            rules,
            denial: Some(Denial { rule, message, param }),
            rewrites: Rewrites::default(),
        }
    }
}

/// The checks that need no request body (endpoint_region, zdr_endpoint, …). Some(decision)
/// when the request is denied whatever its body says; the proxy then need not read it.
/// In report mode this still returns the would-be denial (verdict ReportDeny).
pub fn precheck(catalog: &Catalog, project: &Project, op: OpId) -> Option<Decision> {
    let _ = (catalog, project, op);
    None
}

/// The full decision for one request.
pub fn decide(catalog: &Catalog, project: &Project, op: OpId, facts: &Facts<'_>) -> Decision {
    let _ = (catalog, project, op, facts);
    Decision::deny(Rule::UnknownEndpoint, "policy not built yet".into(), None)
}
