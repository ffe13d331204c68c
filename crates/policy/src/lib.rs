//! The residency and retention policy of residency-proxy, as a pure function of data.
//!
//! - [`catalog`]: OpenAI's tables as data (`config/catalog.json`, embedded as the default):
//!   regions and hosts, endpoints with their operations, eligible models, ZDR limits.
//! - [`classify`]: method + path → the catalog operation (fail closed on anything else).
//! - [`project`]: the policy side of a configured project, and project selection.
//! - [`decide`]: one request's facts → allow / rewrite / deny, with rule ids.
//! - [`eligibility`]: every operation and model through `decide`: what a project may call.
//!
//! Nothing here does I/O; the proxy extracts [`Facts`] from a request with the `inspect`
//! crate according to the operation's [`InspectPlan`], and applies the [`Rewrites`].
#![forbid(unsafe_code)]

pub mod catalog;
pub mod classify;
pub mod decide;
pub mod eligibility;
pub mod facts;
pub mod project;
pub mod rule;

pub use catalog::EncryptedReasoning;
pub use catalog::{
    AlsoOffered, BodyCheck, CheckKind, Feature, Purposes, Source, StatefulField, StoreRule, ToolRule,
};
pub use catalog::{
    BatchInput, BodySource, Catalog, CatalogError, Endpoint, FieldRole, InspectPlan, MarkerRole, MarkerSpec,
    OpId, Operation, Region,
};
pub use classify::ClassifyError;
pub use decide::{
    batch_line, decide, precheck, upload_purpose, Decision, Denial, IncludeRewrite, ModelRewrite, Rewrites,
    StoreRewrite, Verdict,
};
pub use facts::{CheckFacts, Facts, FieldValue, IncludeList, OtherValue};
pub use project::{Mode, Project, ProjectSet, Retention, SelectError, StoreMode};
pub use rule::{Rule, RuleSet};
