//! What a project may call: every operation of a catalog run through [`decide`] on synthetic
//! facts, one request per candidate model and per body marker.
//!
//! `catalog show`, `catalog diff` and the status page read their answers from here, so they
//! say exactly what the proxy would decide: nothing re-reads the catalog's lists to guess.

use crate::catalog::{Catalog, CheckKind, FieldRole, MarkerRole, OpId};
use crate::decide::{decide, upload_purpose, Decision};
use crate::facts::{CheckFacts, Facts, FieldValue, OtherValue};
use crate::project::Project;
use crate::rule::{Rule, RuleSet};

/// A model name that no catalog lists: when it passes, the operation takes any model (no
/// residency model check applies, e.g. the `global` region).
pub const ANY_MODEL: &str = "*";

/// One candidate model and what `decide` says of a request naming it.
#[derive(Debug, Clone)]
pub struct ModelOutcome {
    pub model: String,
    pub decision: Decision,
}

/// One body marker (e.g. web search) and what `decide` says of a request carrying it.
#[derive(Debug, Clone)]
pub struct MarkerOutcome {
    /// `image_input` or `web_search`.
    pub role: &'static str,
    /// The `key` values that mark it, e.g. `web_search`, `web_search_preview`.
    pub values: Vec<String>,
    pub decision: Decision,
}

impl MarkerOutcome {
    pub fn allowed(&self) -> bool {
        !refused(&self.decision)
    }
}

/// One tool type of a `tools` allow-list and what `decide` says of a request using it.
#[derive(Debug, Clone)]
pub struct ToolOutcome {
    /// The tool type, or [`OTHER_TOOL`] for a type the allow-list does not name.
    pub tool: String,
    pub decision: Decision,
}

impl ToolOutcome {
    pub fn allowed(&self) -> bool {
        !refused(&self.decision)
    }
}

/// One upload purpose and what is decided of an upload naming it (`POST /v1/files`, whose
/// purpose is judged as it streams, and `POST /v1/uploads`).
#[derive(Debug, Clone)]
pub struct PurposeOutcome {
    pub purpose: String,
    pub decision: Decision,
}

impl PurposeOutcome {
    pub fn allowed(&self) -> bool {
        !refused(&self.decision)
    }
}

/// The tool type that stands for every type an allow-list does not name.
pub const OTHER_TOOL: &str = "(any other tool)";

/// What a project may do with one operation.
#[derive(Debug, Clone)]
pub struct OpEligibility {
    pub op: OpId,
    /// A request with nothing in its body (no model, no store, no stateful field).
    pub base: Decision,
    /// None: the operation reads no model. Otherwise one outcome per candidate, in order.
    pub models: Option<Vec<ModelOutcome>>,
    /// Markers looked for in the body, each tried with the first allowed model.
    pub markers: Vec<MarkerOutcome>,
    /// Each tool type of the operation's tool allow-lists (and one unlisted type), tried
    /// alone with the first allowed model.
    pub tools: Vec<ToolOutcome>,
    /// Each purpose an upload may name (accepted or refused), for operations that read one.
    pub purposes: Vec<PurposeOutcome>,
}

fn refused(d: &Decision) -> bool {
    d.denial.is_some()
}

impl OpEligibility {
    /// Whether some request to the operation passes (for a model operation: some model).
    pub fn allowed(&self) -> bool {
        match &self.models {
            None => !refused(&self.base),
            Some(ms) => ms.iter().any(|m| !refused(&m.decision)),
        }
    }

    /// Models a request may name (after aliases); `[ANY_MODEL]` when any model passes.
    pub fn allowed_models(&self) -> Vec<&str> {
        let Some(ms) = &self.models else {
            return Vec::new();
        };
        if ms.iter().any(|m| m.model == ANY_MODEL && !refused(&m.decision)) {
            return vec![ANY_MODEL];
        }
        ms.iter()
            .filter(|m| !refused(&m.decision))
            .map(|m| m.model.as_str())
            .collect()
    }

    /// Whether a request naming `model` passes (None: the operation reads no model).
    pub fn model_allowed(&self, model: &str) -> Option<bool> {
        let ms = self.models.as_ref()?;
        let of = |name: &str| ms.iter().find(|m| m.model == name).map(|m| !refused(&m.decision));
        Some(of(model).or_else(|| of(ANY_MODEL)).unwrap_or(false))
    }

    /// The rules that refuse the operation when nothing passes (empty when allowed).
    pub fn refusing_rules(&self) -> RuleSet {
        let mut rules = RuleSet::default();
        if self.allowed() {
            return rules;
        }
        let first = |d: &Decision| d.denial.as_ref().map(|x| x.rule);
        match &self.models {
            None => first(&self.base).into_iter().for_each(|r| rules.insert(r)),
            Some(ms) => ms
                .iter()
                .filter_map(|m| first(&m.decision))
                .for_each(|r| rules.insert(r)),
        }
        rules
    }

    /// The rules of an allowed request that rewrite it (store, alias), from the first allowed
    /// one.
    pub fn rewrite_rules(&self) -> RuleSet {
        let passing = match &self.models {
            None => Some(&self.base).filter(|d| !refused(d)),
            Some(ms) => ms.iter().map(|m| &m.decision).find(|d| !refused(d)),
        };
        let mut out = RuleSet::default();
        for r in passing.map(|d| d.rules).unwrap_or_default().iter() {
            if matches!(r, Rule::Store | Rule::Alias) {
                out.insert(r);
            }
        }
        out
    }
}

/// Every model name the catalogs list (eligible and ZDR lists), the project's alias names, and
/// [`ANY_MODEL`]; sorted, without duplicates.
pub fn candidate_models(catalogs: &[&Catalog], project: &Project) -> Vec<String> {
    let mut out: Vec<String> = catalogs
        .iter()
        .flat_map(|c| c.endpoints.iter())
        .flat_map(|e| e.models.iter().flatten().chain(e.zdr_models.iter().flatten()))
        .cloned()
        .chain(project.aliases.keys().cloned())
        .chain(std::iter::once(ANY_MODEL.to_owned()))
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Runs `decide` for every operation of `catalog` as `project` would, one request per model of
/// `candidates` (see [`candidate_models`]).
pub fn eligibility(catalog: &Catalog, project: &Project, candidates: &[String]) -> Vec<OpEligibility> {
    (0..catalog.operations.len())
        .map(|op| of_operation(catalog, project, op, candidates))
        .collect()
}

fn of_operation(catalog: &Catalog, project: &Project, op: OpId, candidates: &[String]) -> OpEligibility {
    let operation = catalog.operation(op);
    let plan = &operation.plan;
    let mut absent = vec![FieldValue::Absent; plan.fields.len()];
    // An upload names an accepted purpose: what is probed is the operation, not a bad purpose.
    if let (Some(pi), Some(p)) = (
        plan.field_with(FieldRole::Purpose),
        operation.purposes.as_ref().and_then(|p| p.values.first()),
    ) {
        absent[pi] = FieldValue::String(p);
    }
    let no_markers = vec![false; plan.markers.len()];
    // Where the model is read: a top-level field, else a model check inside the body.
    let model_field = plan.field_with(FieldRole::Model);
    let model_check = match model_field {
        Some(_) => None,
        None => plan.checks.iter().position(|c| c.kind == CheckKind::Model),
    };
    // The model as a model check reports it.
    fn model_hit<'m>(n: usize, model_check: Option<usize>, m: &'m str) -> Vec<CheckFacts<'m>> {
        let mut checks = vec![CheckFacts::default(); n];
        if let Some(c) = model_check.and_then(|ci| checks.get_mut(ci)) {
            c.other = Some(OtherValue::String(m));
        }
        checks
    }
    let n_checks = plan.checks.len();
    let run = |fields: &[FieldValue<'_>], markers: &[bool]| {
        decide(
            catalog,
            project,
            op,
            &Facts {
                fields,
                markers,
                checks: &[],
                include: None,
            },
        )
    };
    // One body check hit (`hit` at check `i`), the others quiet (the model check says
    // `model`), no markers.
    let run_check = |fields: &[FieldValue<'_>], model: Option<&str>, i: usize, hit: CheckFacts<'_>| {
        let mut checks = model.map_or_else(
            || vec![CheckFacts::default(); plan.checks.len()],
            |m| model_hit(n_checks, model_check, m),
        );
        checks[i] = hit;
        decide(
            catalog,
            project,
            op,
            &Facts {
                fields,
                markers: &no_markers,
                checks: &checks,
                include: None,
            },
        )
    };
    let base = run(&absent, &no_markers);
    let models = (model_field.is_some() || model_check.is_some()).then(|| {
        candidates
            .iter()
            .map(|m| {
                let mut fields = absent.clone();
                let decision = match model_field {
                    Some(mi) => {
                        fields[mi] = FieldValue::String(m);
                        run(&fields, &no_markers)
                    }
                    None => decide(
                        catalog,
                        project,
                        op,
                        &Facts {
                            fields: &fields,
                            markers: &no_markers,
                            checks: &model_hit(n_checks, model_check, m),
                            include: None,
                        },
                    ),
                };
                ModelOutcome {
                    model: m.clone(),
                    decision,
                }
            })
            .collect::<Vec<_>>()
    });
    // Markers are tried on a request that passes otherwise, so the marker's own rule shows.
    let passing_model = models
        .as_ref()
        .and_then(|ms| ms.iter().find(|m| m.model != ANY_MODEL && !refused(&m.decision)))
        .map(|m| m.model.as_str());
    let mut fields = absent.clone();
    if let (Some(mi), Some(m)) = (model_field, passing_model) {
        fields[mi] = FieldValue::String(m);
    }
    let mut markers: Vec<MarkerOutcome> = plan
        .markers
        .iter()
        .enumerate()
        .map(|(i, spec)| {
            let mut hit = no_markers.clone();
            hit[i] = true;
            MarkerOutcome {
                role: match spec.role {
                    MarkerRole::ImageInput => "image_input",
                    MarkerRole::WebSearch => "web_search",
                },
                values: spec.values.clone(),
                decision: run(&fields, &hit),
            }
        })
        .collect();
    // The body checks answer the same questions: an image carrier (a type not listed as
    // image-free) and a tool outside the BAA (web search), each tried once per operation.
    for (i, c) in plan.checks.iter().enumerate() {
        let (role, hit, values) = match &c.kind {
            CheckKind::Types { image_free, .. } => {
                let not_free = (0..c.values.len()).filter(|b| image_free & (1u64 << b) == 0);
                let values = not_free.filter_map(|b| c.values.get(b).cloned()).collect();
                let hit = CheckFacts {
                    other: Some(OtherValue::String("(a type not listed as image-free)")),
                    ..CheckFacts::default()
                };
                ("image_input", hit, values)
            }
            CheckKind::Tools(tools) => match tools.iter().position(|t| !t.hipaa) {
                Some(t) => {
                    let hit = CheckFacts {
                        seen: 1u64 << t,
                        ..CheckFacts::default()
                    };
                    let values = c
                        .values
                        .iter()
                        .zip(tools)
                        .filter(|(_, t)| !t.hipaa)
                        .map(|(v, _)| v.clone())
                        .collect();
                    ("web_search", hit, values)
                }
                None => continue,
            },
            CheckKind::Stateful | CheckKind::Model | CheckKind::RowModel { .. } => continue,
        };
        if markers.iter().any(|m| m.role == role) {
            continue;
        }
        let decision = run_check(&fields, passing_model, i, hit);
        markers.push(MarkerOutcome {
            role,
            values,
            decision,
        });
    }
    let mut tools = Vec::new();
    for (i, c) in plan.checks.iter().enumerate() {
        if !matches!(c.kind, CheckKind::Tools(_)) {
            continue;
        }
        let probes = (0..c.values.len())
            .map(|b| {
                let hit = CheckFacts {
                    seen: 1u64 << b,
                    ..CheckFacts::default()
                };
                (c.values[b].clone(), hit)
            })
            .chain(std::iter::once((
                OTHER_TOOL.to_owned(),
                CheckFacts {
                    other: Some(OtherValue::String(OTHER_TOOL)),
                    ..CheckFacts::default()
                },
            )));
        for (tool, hit) in probes {
            if tools.iter().any(|t: &ToolOutcome| t.tool == tool) {
                continue;
            }
            let decision = run_check(&fields, passing_model, i, hit);
            tools.push(ToolOutcome { tool, decision });
        }
    }
    let purposes = purposes(catalog, project, op, &base, &absent);
    OpEligibility {
        op,
        base,
        models,
        markers,
        tools,
        purposes,
    }
}

/// Every purpose of an upload operation through what decides it: `upload_purpose` for an
/// upload whose purpose is read as it streams, `decide` with the purpose field otherwise.
fn purposes(
    catalog: &Catalog,
    project: &Project,
    op: OpId,
    base: &Decision,
    absent: &[FieldValue<'_>],
) -> Vec<PurposeOutcome> {
    let operation = catalog.operation(op);
    if let Some(b) = &operation.batch_input {
        return b
            .purposes
            .iter()
            .map(|p| {
                let decision = match upload_purpose(catalog, project, op, p) {
                    Some(d) if base.denial.is_none() => Decision::deny(d.rule, d.message, d.param),
                    _ => base.clone(),
                };
                PurposeOutcome {
                    purpose: p.clone(),
                    decision,
                }
            })
            .collect();
    }
    let (Some(pi), Some(ps)) = (operation.plan.field_with(FieldRole::Purpose), &operation.purposes) else {
        return Vec::new();
    };
    ps.values
        .iter()
        .chain(ps.refused.iter().map(|(p, _)| p))
        .map(|p| {
            let mut fields = absent.to_vec();
            fields[pi] = FieldValue::String(p);
            let decision = decide(
                catalog,
                project,
                op,
                &Facts {
                    fields: &fields,
                    markers: &[],
                    checks: &[],
                    include: None,
                },
            );
            PurposeOutcome {
                purpose: p.clone(),
                decision,
            }
        })
        .collect()
}
