//! One request → allow / rewrite / deny.

mod body;
mod reasoning;

use crate::catalog::{
    Catalog, CheckKind, Endpoint, FieldRole, MarkerRole, OpId, Operation, Region, StoreRule,
};
use crate::facts::{Facts, FieldValue, OtherValue};
use crate::project::{Mode, Project, Retention, StoreMode};
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

/// The endpoint's encrypted-reasoning value is added to the include array.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncludeRewrite {
    /// The member was absent: it is added with the value as its one element.
    Insert,
    /// The member was null: it becomes an array of the value.
    ReplaceNull,
    /// The value is appended to the client's array (its entries kept).
    Append,
}

/// Edits to apply to the request before forwarding.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rewrites {
    pub store: Option<StoreRewrite>,
    pub model: Option<ModelRewrite>,
    pub include: Option<IncludeRewrite>,
}

impl Rewrites {
    pub fn is_empty(&self) -> bool {
        self.store.is_none() && self.model.is_none() && self.include.is_none()
    }
}

/// The outcome for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub verdict: Verdict,
    /// The rules that applied: on Deny the denying rules only (nothing was rewritten);
    /// otherwise denials (report mode) and rewrites.
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

/// Rules found so far; the message of a denial is only built for the first one.
struct Acc {
    /// Rules that deny.
    rules: RuleSet,
    /// Rules that rewrite (store, alias): reported unless the request is denied, since a denied
    /// request is not rewritten.
    rewrite_rules: RuleSet,
    denial: Option<Denial>,
}

impl Acc {
    fn new() -> Acc {
        Acc {
            rules: RuleSet::default(),
            rewrite_rules: RuleSet::default(),
            denial: None,
        }
    }

    #[inline]
    fn deny(&mut self, rule: Rule, why: impl FnOnce() -> (String, Option<String>)) {
        self.rules.insert(rule);
        if self.denial.is_none() {
            self.first_denial(rule, why);
        }
    }

    /// Builds the denial's message. Out of line and cold: the formatting code of every denial
    /// would otherwise sit inside `decide`, between the instructions an allowed request runs
    /// (and in its instruction cache).
    #[cold]
    #[inline(never)]
    fn first_denial(&mut self, rule: Rule, why: impl FnOnce() -> (String, Option<String>)) {
        let (message, param) = why();
        self.denial = Some(Denial { rule, message, param });
    }

    /// Adds `other`'s denials after this one's.
    fn absorb(&mut self, other: Acc) {
        self.rules.extend(other.rules);
        if self.denial.is_none() {
            self.denial = other.denial;
        }
    }

    fn finish(self, project: &Project, rewrites: Rewrites) -> Decision {
        let verdict = match (&self.denial, project.mode) {
            (Some(_), Mode::Enforce) => Verdict::Deny,
            (Some(_), Mode::Report) => Verdict::ReportDeny,
            (None, _) if !rewrites.is_empty() => Verdict::Rewrite,
            (None, _) => Verdict::Allow,
        };
        let mut rules = self.rules;
        if verdict != Verdict::Deny {
            rules.extend(self.rewrite_rules);
        }
        Decision {
            verdict,
            rules,
            denial: self.denial,
            rewrites,
        }
    }
}

/// The longest model name quoted back in a message.
const MAX_QUOTED: usize = 128;

/// `"name"`, escaped (no control characters reach logs) and shortened when very long.
fn quoted(s: &str) -> String {
    let mut end = s.len().min(MAX_QUOTED);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    let cut = if end < s.len() { "…" } else { "" };
    format!("\"{}{cut}\"", s.get(..end).unwrap_or("").escape_debug())
}

fn region_label(project: &Project, region: Option<&Region>) -> String {
    match region {
        Some(r) => format!("region \"{}\" ({})", r.id, r.name),
        None => format!("region \"{}\"", project.region),
    }
}

fn field_ref<'a>(facts: &Facts<'a>, i: usize) -> FieldValue<'a> {
    facts.fields.get(i).copied().unwrap_or(FieldValue::Absent)
}

/// The checks that need no body, shared by [`precheck`] and [`decide`]: those of the
/// operation's row, unless the row it is `also_offered_with` admits it. An upload admitted by
/// the other row for one purpose only passes here; [`upload_purpose`] judges it once the
/// purpose is read.
fn body_free(
    acc: &mut Acc,
    catalog: &Catalog,
    project: &Project,
    region: Option<&Region>,
    endpoint: &Endpoint,
    op: &Operation,
) {
    let mut own = Acc::new();
    row_checks(&mut own, project, region, endpoint, op);
    if own.denial.is_some() && other_row_admits(catalog, project, region, op) {
        return;
    }
    acc.absorb(own);
}

/// Whether the row the operation is `also_offered_with` admits it (false when it has none).
fn other_row_admits(catalog: &Catalog, project: &Project, region: Option<&Region>, op: &Operation) -> bool {
    let Some(other) = op
        .also_offered_with
        .as_ref()
        .and_then(|a| catalog.endpoints.get(a.endpoint))
    else {
        return false;
    };
    let mut alt = Acc::new();
    row_checks(&mut alt, project, region, other, op);
    alt.denial.is_none()
}

/// An upload whose purpose is read as it streams (`POST /v1/files`): Some(denial) when the
/// purpose is refused here. A purpose is judged on the operation's row, or on the row it is
/// `also_offered_with` when that names this purpose (or no purpose). The caller holds the
/// upload back until the purpose is known whenever some purpose of the operation is refused.
pub fn upload_purpose(catalog: &Catalog, project: &Project, op: OpId, purpose: &str) -> Option<Denial> {
    let Some((operation, endpoint)) = lookup(catalog, op) else {
        return unknown_op().denial;
    };
    let region = catalog.region(&project.region);
    let mut own = Acc::new();
    row_checks(&mut own, project, region, endpoint, operation);
    let mut denial = own.denial?;
    let mut row = endpoint;
    let also = operation.also_offered_with.as_ref();
    let other_row = also
        .filter(|a| a.purpose.as_deref().is_none_or(|p| p == purpose))
        .and_then(|a| catalog.endpoints.get(a.endpoint));
    if let Some(other) = other_row {
        // This purpose is judged on the other row: allowed if it allows, else its refusal.
        let mut alt = Acc::new();
        row_checks(&mut alt, project, region, other, operation);
        match alt.denial {
            None => return None,
            Some(d) => {
                denial = d;
                row = other;
            }
        }
    }
    let other = other_row
        .is_none()
        .then_some(also)
        .flatten()
        .and_then(|a| Some((catalog.endpoints.get(a.endpoint)?, a.purpose.as_deref()?)))
        .map_or(String::new(), |(row, p)| {
            format!(
                " Only uploads with purpose {} are offered here too, as part of {}.",
                quoted(p),
                row.id
            )
        });
    Some(Denial {
        message: format!(
            "An upload with purpose {} is judged on the {} row: {}{other}",
            quoted(purpose),
            row.id,
            denial.message
        ),
        param: Some("purpose".to_owned()),
        ..denial
    })
}

/// The checks of one row that need no body.
fn row_checks(
    acc: &mut Acc,
    project: &Project,
    region: Option<&Region>,
    endpoint: &Endpoint,
    op: &Operation,
) {
    // endpoint_region: residency regions only; an unknown region fails closed.
    let residency = region.is_none_or(|r| r.residency);
    if residency && !endpoint.offered_in(&project.region) {
        acc.deny(Rule::EndpointRegion, || {
            let offered = if endpoint.regions.is_empty() {
                "it is not offered with data residency in any region".to_owned()
            } else {
                format!(
                    "it is offered with data residency in: {}",
                    endpoint.regions.join(", ")
                )
            };
            (
                format!(
                    "{} is not available with data residency in {} of project \"{}\"; {offered}.",
                    endpoint.id,
                    region_label(project, region),
                    project.name
                ),
                None,
            )
        });
    }
    if project.retention == Retention::Zdr && (!endpoint.zdr_eligible || op.stateful) {
        acc.deny(Rule::ZdrEndpoint, || {
            let what = if endpoint.zdr_eligible {
                format!(
                    "{} {} reads or keeps stored application state",
                    op.method, op.template
                )
            } else {
                format!("{} keeps application state", endpoint.id)
            };
            (
                format!(
                    "{what}, which is not available to zero-data-retention project \"{}\" ({}).",
                    project.name,
                    region_label(project, region)
                ),
                None,
            )
        });
    }
    if endpoint.always_image_input && !image_inputs(project, region) {
        acc.deny(Rule::ImageInput, || {
            image_message(project, region, endpoint, Some("image".to_owned()))
        });
    }
}

fn image_inputs(project: &Project, region: Option<&Region>) -> bool {
    project
        .image_inputs
        .unwrap_or(region.is_some_and(|r| r.image_inputs_default))
}

fn image_message(
    project: &Project,
    region: Option<&Region>,
    endpoint: &Endpoint,
    param: Option<String>,
) -> (String, Option<String>) {
    (
        format!(
            "{} request carries an image input, and image inputs are not approved for project \"{}\" in {} \
             (they need OpenAI's enhanced ZDR or modified abuse monitoring approval; set image_inputs = true \
             once approved).",
            endpoint.id,
            project.name,
            region_label(project, region)
        ),
        param,
    )
}

/// The checks that need no request body (endpoint_region, zdr_endpoint, …). Some(decision)
/// when the request is denied whatever its body says; the proxy then need not read it.
/// In report mode this still returns the would-be denial (verdict ReportDeny).
pub fn precheck(catalog: &Catalog, project: &Project, op: OpId) -> Option<Decision> {
    let Some((operation, endpoint)) = lookup(catalog, op) else {
        return Some(unknown_op());
    };
    if endpoint.content_free {
        return None;
    }
    let region = catalog.region(&project.region);
    let mut acc = Acc::new();
    body_free(&mut acc, catalog, project, region, endpoint, operation);
    acc.denial
        .is_some()
        .then(|| acc.finish(project, Rewrites::default()))
}

fn lookup(catalog: &Catalog, op: OpId) -> Option<(&Operation, &Endpoint)> {
    let operation = catalog.operations.get(op)?;
    let endpoint = catalog.endpoints.get(operation.endpoint)?;
    Some((operation, endpoint))
}

fn unknown_op() -> Decision {
    Decision::deny(
        Rule::UnknownEndpoint,
        "The operation is not in the catalog.".to_owned(),
        None,
    )
}

/// The full decision for one request.
pub fn decide(catalog: &Catalog, project: &Project, op: OpId, facts: &Facts<'_>) -> Decision {
    let Some((operation, endpoint)) = lookup(catalog, op) else {
        return unknown_op();
    };
    if endpoint.content_free {
        return Acc::new().finish(project, Rewrites::default());
    }
    let region = catalog.region(&project.region);
    let residency = region.is_none_or(|r| r.residency);
    let zdr = project.retention == Retention::Zdr;
    let plan = &operation.plan;
    let mut acc = Acc::new();
    let mut rewrites = Rewrites::default();

    body_free(&mut acc, catalog, project, region, endpoint, operation);

    // The upload purpose, where the body names it.
    if let (Some(pi), Some(purposes)) = (plan.field_with(FieldRole::Purpose), &operation.purposes) {
        let name = plan.fields.get(pi).map_or("purpose", String::as_str);
        let v = field_ref(facts, pi);
        let accepted = matches!(v, FieldValue::String(p) if purposes.values.iter().any(|x| x == p));
        if !accepted {
            let refused = match v {
                FieldValue::String(p) => purposes.refused.iter().find(|(k, _)| k == p),
                _ => None,
            };
            acc.deny(Rule::UnknownEndpoint, || {
                let message = match (v, refused) {
                    (FieldValue::String(p), Some((_, why))) => format!(
                        "{} {} with {name} {} is refused: {why}",
                        operation.method,
                        operation.template,
                        quoted(p)
                    ),
                    _ => format!(
                        "{} {} needs {name} to be exactly one of: {}.",
                        operation.method,
                        operation.template,
                        purposes.values.join(", ")
                    ),
                };
                (message, Some(name.to_owned()))
            });
        }
    }

    // The model, after aliases: a top-level field, or a member inside the body (a model check:
    // judged as sent, since aliases cannot be rewritten there).
    let model_at = match plan.field_with(FieldRole::Model) {
        Some(mi) => Some((field_ref(facts, mi), None)),
        None => plan
            .checks
            .iter()
            .position(|c| c.kind == CheckKind::Model)
            .map(|ci| {
                let f = facts.checks.get(ci).copied().unwrap_or_default();
                let v = match f.other {
                    Some(OtherValue::String(m)) => FieldValue::String(m),
                    Some(OtherValue::NotString) => FieldValue::Object,
                    None => FieldValue::Absent,
                };
                (v, plan.checks.get(ci))
            }),
    };
    let mut model_used: Option<&str> = None;
    if let Some((raw, at)) = model_at {
        // Built only for a denial: the allow path does not allocate.
        let param = || at.map_or_else(|| "model".to_owned(), |c| c.display());
        let aliasable = at.is_none();
        let model: Option<&str> = match raw {
            FieldValue::String(m) => match project.aliases.get(m).filter(|_| aliasable) {
                Some(to) => {
                    acc.rewrite_rules.insert(Rule::Alias);
                    rewrites.model = Some(ModelRewrite {
                        from: m.to_owned(),
                        to: to.clone(),
                    });
                    Some(to.as_str())
                }
                None => Some(m),
            },
            // Absent (not null): the model OpenAI documents it uses, if the catalog names one.
            FieldValue::Absent => plan.model_default.as_deref(),
            _ => None,
        };
        model_used = model;
        let described = || match (raw, model) {
            (FieldValue::String(from), Some(to)) if from != to => {
                format!("model {} (alias of {})", quoted(to), quoted(from))
            }
            (FieldValue::Absent, Some(m)) => {
                format!("model {} (OpenAI's default when model is absent)", quoted(m))
            }
            (_, Some(m)) if !aliasable => {
                let unaliased = if project.aliases.contains_key(m) {
                    "; aliases are applied to a top-level model field only"
                } else {
                    ""
                };
                format!("model {} (at {}{unaliased})", quoted(m), param())
            }
            (_, Some(m)) => format!("model {}", quoted(m)),
            (FieldValue::Absent | FieldValue::Null, None) if aliasable => {
                "a request without a model".to_owned()
            }
            (FieldValue::Absent | FieldValue::Null, None) => format!("a request without {}", param()),
            (_, None) => "a model that is not a string".to_owned(),
        };
        if residency {
            if let Some(models) = &endpoint.models {
                if !model.is_some_and(|m| models.iter().any(|x| x == m)) {
                    acc.deny(Rule::ModelNotEligible, || {
                        (
                            format!(
                                "{} is not eligible for data residency on {} in {}; eligible snapshots: {}.",
                                described(),
                                endpoint.id,
                                region_label(project, region),
                                models.join(", ")
                            ),
                            Some(param()),
                        )
                    });
                }
            }
        }
        if zdr {
            if let Some(zm) = &endpoint.zdr_models {
                if !model.is_some_and(|m| zm.iter().any(|x| x == m)) {
                    acc.deny(Rule::ZdrModel, || {
                        (
                            format!(
                                "{} is not zero-data-retention compatible on {} (project \"{}\", {}); \
                                 ZDR-compatible models: {}.",
                                described(),
                                endpoint.id,
                                project.name,
                                region_label(project, region),
                                zm.join(", ")
                            ),
                            Some(param()),
                        )
                    });
                }
            }
        }
    }

    // Stateful fields and web search fields.
    let mut web_search_field: Option<&str> = None;
    for (i, role) in plan.roles.iter().enumerate() {
        let v = field_ref(facts, i);
        match *role {
            // Typed in every project: `"background": "true"` is `true` to a lenient reader.
            FieldRole::Stateful(s) if !endpoint.stateful_fields.get(s).is_none_or(|f| f.admits(v)) => {
                let name = plan.fields.get(i).map_or("", String::as_str);
                acc.deny(Rule::StatefulFeature, || {
                    let types: Vec<&str> = endpoint
                        .stateful_fields
                        .get(s)
                        .map(|f| f.types.iter().map(|t| t.as_str()).collect())
                        .unwrap_or_default();
                    (
                        format!(
                            "{name} must be a JSON {} (or null) on {}.",
                            types.join(" or "),
                            endpoint.id
                        ),
                        Some(name.to_owned()),
                    )
                });
            }
            FieldRole::Stateful(s) if zdr => {
                let only_true = endpoint.stateful_fields.get(s).is_none_or(|f| f.only_true);
                let hit = if only_true {
                    v == FieldValue::Bool(true)
                } else {
                    !matches!(v, FieldValue::Absent | FieldValue::Null)
                };
                if hit {
                    let name = plan.fields.get(i).map_or("", String::as_str);
                    acc.deny(Rule::StatefulFeature, || {
                        let shown = if only_true {
                            format!("{name}: true")
                        } else {
                            name.to_owned()
                        };
                        (
                            format!(
                                "{shown} needs stored application state, which is not kept for \
                                 zero-data-retention project \"{}\" ({}, {}).{}",
                                project.name,
                                endpoint.id,
                                region_label(project, region),
                                reasoning::instead(endpoint, s)
                            ),
                            Some(name.to_owned()),
                        )
                    });
                }
            }
            FieldRole::WebSearch if !matches!(v, FieldValue::Absent | FieldValue::Null) => {
                web_search_field = web_search_field.or(plan.fields.get(i).map(String::as_str));
            }
            _ => {}
        }
    }

    // store.
    if let (Some(rule), Some(si)) = (&endpoint.store, plan.field_with(FieldRole::Store)) {
        let v = field_ref(facts, si);
        let effective = match v {
            FieldValue::Bool(b) => Some(b),
            FieldValue::Absent | FieldValue::Null => Some(rule.default),
            _ => None,
        };
        match effective {
            None => acc.deny(Rule::Store, || {
                ("store must be a boolean.".to_owned(), Some("store".to_owned()))
            }),
            Some(true) => {
                let region_allows = rule
                    .true_allowed_regions
                    .as_ref()
                    .is_none_or(|r| r.contains(&project.region));
                if zdr || !region_allows {
                    match project.store {
                        StoreMode::Rewrite => {
                            acc.rewrite_rules.insert(Rule::Store);
                            rewrites.store = Some(if v == FieldValue::Absent {
                                StoreRewrite::Insert
                            } else {
                                StoreRewrite::Replace
                            });
                        }
                        StoreMode::Reject => acc.deny(Rule::Store, || {
                            store_message(project, region, endpoint, rule, v, zdr)
                        }),
                    }
                }
            }
            Some(false) => {}
        }
    }

    // Stateless reasoning (opt-in): the include array gets the encrypted reasoning.
    reasoning::include(
        &mut acc,
        &mut rewrites,
        project,
        endpoint,
        plan,
        facts,
        model_used,
    );

    // image_input (markers; always_image_input was checked without the body).
    if !endpoint.always_image_input && !image_inputs(project, region) {
        let hit =
            plan.markers.iter().enumerate().any(|(i, m)| {
                m.role == MarkerRole::ImageInput && facts.markers.get(i).copied().unwrap_or(false)
            });
        if hit {
            acc.deny(Rule::ImageInput, || {
                image_message(project, region, endpoint, None)
            });
        }
    }

    // What lives inside the body: tools, content types, references to stored state.
    body::check(
        &mut acc,
        project,
        region,
        endpoint,
        &plan.checks,
        facts,
        model_used,
    );

    // hipaa.
    if project.hipaa {
        let marker =
            plan.markers.iter().enumerate().any(|(i, m)| {
                m.role == MarkerRole::WebSearch && facts.markers.get(i).copied().unwrap_or(false)
            });
        if marker || web_search_field.is_some() {
            acc.deny(Rule::Hipaa, || {
                let param = web_search_field.unwrap_or("tools").to_owned();
                (
                    format!(
                        "Web search is not HIPAA eligible and not covered by a BAA; it is refused for hipaa \
                         project \"{}\" ({}, {}).",
                        project.name,
                        endpoint.id,
                        region_label(project, region)
                    ),
                    Some(param),
                )
            });
        }
    }

    acc.finish(project, rewrites)
}

fn store_message(
    project: &Project,
    region: Option<&Region>,
    endpoint: &Endpoint,
    rule: &StoreRule,
    v: FieldValue<'_>,
    zdr: bool,
) -> (String, Option<String>) {
    let why = if zdr {
        format!("zero-data-retention project \"{}\"", project.name)
    } else {
        let allowed = rule
            .true_allowed_regions
            .as_ref()
            .map_or(String::new(), |r| r.join(", "));
        format!(
            "{} (store=true is allowed only in: {allowed})",
            region_label(project, region)
        )
    };
    let what = if v == FieldValue::Absent {
        format!(
            "{} stores by default, so the request must send \"store\": false for {why}.",
            endpoint.id
        )
    } else {
        format!("store must be false on {} for {why}.", endpoint.id)
    };
    (what, Some("store".to_owned()))
}

/// A batch input line for operation `line_op`, whose own decision passed: it must also fit the
/// batches row (the catalog endpoint with `batch_line_endpoints`): its endpoint must be
/// batchable, and under residency its model (`model`, or the operation's documented default)
/// must be one the batches row lists for the region. None: the line passes.
pub fn batch_line(
    catalog: &Catalog,
    project: &Project,
    line_op: OpId,
    model: Option<&str>,
) -> Option<Denial> {
    let (operation, endpoint) = lookup(catalog, line_op)?;
    let region = catalog.region(&project.region);
    let Some((batches, batchable)) = catalog
        .endpoints
        .iter()
        .find_map(|e| e.batch_line_endpoints.as_ref().map(|l| (e, l)))
    else {
        return Some(Denial {
            rule: Rule::UnknownEndpoint,
            message: "The catalog names no batchable endpoints: batch input lines are refused.".to_owned(),
            param: None,
        });
    };
    if !batchable.contains(&endpoint.id) {
        return Some(Denial {
            rule: Rule::UnknownEndpoint,
            message: format!(
                "{} cannot be the endpoint of a batch input line; batchable endpoints: {}.",
                endpoint.id,
                batchable.join(", ")
            ),
            param: Some("url".to_owned()),
        });
    }
    let model = model.or(operation.plan.model_default.as_deref());
    let residency = region.is_none_or(|r| r.residency);
    match &batches.models {
        Some(models) if residency && !model.is_some_and(|m| models.iter().any(|x| x == m)) => Some(Denial {
            rule: Rule::ModelNotEligible,
            message: format!(
                "{} is not eligible for data residency on {} in {}, which every batch input line must \
                 also meet; eligible snapshots: {}.",
                model.map_or_else(
                    || "a line without a model".to_owned(),
                    |m| format!("model {}", quoted(m))
                ),
                batches.id,
                region_label(project, region),
                models.join(", ")
            ),
            param: Some("model".to_owned()),
        }),
        _ => None,
    }
}
