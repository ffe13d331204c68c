//! `catalog diff OLD NEW`: every (operation, model, scope) that becomes allowed or refused,
//! where a scope is a configured project (`--config`) or a region and retention. Both catalogs
//! are asked through `decide` ([`policy::eligibility`]) with the same candidate models.

use super::{retention_id, synthetic_project, RETENTIONS};
use policy::eligibility::{self, OpEligibility, ANY_MODEL};
use policy::{Catalog, Project, Retention, Rule};
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// One scope a change is seen in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    /// A project name, or a region id.
    pub name: String,
    /// The retention for region scopes; None for configured projects.
    pub retention: Option<Retention>,
}

impl Scope {
    fn label(&self) -> String {
        match self.retention {
            Some(r) => format!("{}/{}", self.name, retention_id(r)),
            None => self.name.clone(),
        }
    }
}

/// The prefix of a group key that is an upload purpose, not a model.
const PURPOSE: &str = "purpose ";

/// Changes of one direction for one operation and one refusing rule.
#[derive(Debug, Default)]
pub struct Group {
    /// Model ("-" for operations without one, "*" for any other model, "purpose X" for an
    /// upload purpose) → scopes.
    pub models: BTreeMap<String, Vec<Scope>>,
}

/// (allowed now, "METHOD path", rule that refuses on the refused side) → group.
pub type Changes = BTreeMap<(bool, String, String), Group>;

fn verdict_of(e: Option<&OpEligibility>, model: &str) -> (bool, String) {
    let Some(e) = e else {
        return (false, Rule::UnknownEndpoint.as_str().to_owned());
    };
    if let Some(purpose) = model.strip_prefix(PURPOSE) {
        // A purpose the operation does not name is refused (unknown_endpoint).
        return match e.purposes.iter().find(|p| p.purpose == purpose) {
            Some(p) if p.allowed() => (true, String::new()),
            Some(p) => (
                false,
                p.decision.denial.as_ref().map_or_else(
                    || e.refusing_rules().header_value(),
                    |d| d.rule.as_str().to_owned(),
                ),
            ),
            None => (false, Rule::UnknownEndpoint.as_str().to_owned()),
        };
    }
    let allowed = e.model_allowed(model).unwrap_or_else(|| e.allowed());
    if allowed {
        return (true, String::new());
    }
    // The rule of this model's own decision, else the operation's.
    let own = e
        .models
        .as_ref()
        .and_then(|ms| {
            ms.iter()
                .find(|m| m.model == model)
                .or_else(|| ms.iter().find(|m| m.model == ANY_MODEL))
        })
        .map(|m| &m.decision)
        .unwrap_or(&e.base);
    let rule = own.denial.as_ref().map_or_else(
        || e.refusing_rules().header_value(),
        |d| d.rule.as_str().to_owned(),
    );
    (false, rule)
}

/// Adds every flip between `old` and `new` for one scope.
pub fn compare(changes: &mut Changes, old: &Catalog, new: &Catalog, scope: &Scope, project: &Project) {
    let candidates = eligibility::candidate_models(&[old, new], project);
    let old_e = eligibility::eligibility(old, project, &candidates);
    let new_e = eligibility::eligibility(new, project, &candidates);
    let key = |c: &Catalog, e: &OpEligibility| {
        let op = c.operation(e.op);
        format!("{} {}", op.method, op.template)
    };
    let mut ops: BTreeMap<String, (Option<&OpEligibility>, Option<&OpEligibility>)> = BTreeMap::new();
    for e in &old_e {
        ops.entry(key(old, e)).or_default().0 = Some(e);
    }
    for e in &new_e {
        ops.entry(key(new, e)).or_default().1 = Some(e);
    }
    for (op, (o, n)) in ops {
        let reads_model = o.is_some_and(|e| e.models.is_some()) || n.is_some_and(|e| e.models.is_some());
        // An upload that names a purpose flips per purpose (the purposes cover the request).
        let mut purposes: Vec<&str> = Vec::new();
        for e in [o, n].into_iter().flatten() {
            for p in &e.purposes {
                if !purposes.contains(&p.purpose.as_str()) {
                    purposes.push(&p.purpose);
                }
            }
        }
        let models: Vec<String> = if reads_model {
            candidates.clone()
        } else if !purposes.is_empty() {
            purposes.iter().map(|p| format!("{PURPOSE}{p}")).collect()
        } else {
            vec!["-".to_owned()]
        };
        for m in &models {
            let m = m.as_str();
            let (was, was_rule) = verdict_of(o, m);
            let (is, is_rule) = verdict_of(n, m);
            if was == is {
                continue;
            }
            let rule = if is { was_rule } else { is_rule };
            changes
                .entry((is, op.clone(), rule))
                .or_default()
                .models
                .entry(m.to_owned())
                .or_default()
                .push(scope.clone());
        }
    }
}

/// The scopes without a config: every region of either catalog with each retention it admits.
pub fn region_scopes(old: &Catalog, new: &Catalog) -> Vec<(Scope, Project)> {
    let mut ids: Vec<&str> = Vec::new();
    for r in old.regions.iter().chain(new.regions.iter()) {
        if !ids.contains(&r.id.as_str()) {
            ids.push(&r.id);
        }
    }
    let mut out = Vec::new();
    for id in ids {
        let needs = [old.region(id), new.region(id)]
            .iter()
            .flatten()
            .all(|r| r.requires_mam_or_zdr);
        for ret in RETENTIONS {
            if ret == Retention::Default && needs {
                continue;
            }
            out.push((
                Scope {
                    name: id.to_owned(),
                    retention: Some(ret),
                },
                synthetic_project(id, ret),
            ));
        }
    }
    out
}

/// `eu` when every retention a region admits is in `scopes`, else `eu/zdr`; config projects by
/// name.
fn scopes_text(scopes: &[Scope], all: &[Scope]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut done: Vec<&str> = Vec::new();
    for s in scopes {
        if s.retention.is_none() {
            out.push(s.name.clone());
            continue;
        }
        if done.contains(&s.name.as_str()) {
            continue;
        }
        let of_region = |list: &[Scope]| list.iter().filter(|x| x.name == s.name).count();
        if of_region(scopes) == of_region(all) {
            out.push(s.name.clone());
            done.push(&s.name);
        } else {
            out.push(s.label());
        }
    }
    out.join(" ")
}

fn model_text(m: &str) -> &str {
    match m {
        ANY_MODEL => "(any other model)",
        "-" => "(no model)",
        m => m,
    }
}

pub fn count(changes: &Changes, allowed: bool) -> usize {
    changes
        .iter()
        .filter(|((a, _, _), _)| *a == allowed)
        .map(|(_, g)| g.models.values().map(Vec::len).sum::<usize>())
        .sum()
}

/// Region facts that change no decision of a request but matter to an operator (where traffic
/// goes, which retention a project may use, image approval, processing): `region: what`.
pub fn region_changes(old: &Catalog, new: &Catalog) -> Vec<String> {
    let mut out = Vec::new();
    for r in &old.regions {
        if new.region(&r.id).is_none() {
            out.push(format!("{}: removed", r.id));
        }
    }
    for n in &new.regions {
        let Some(o) = old.region(&n.id) else {
            out.push(format!("{}: added (host {})", n.id, n.host));
            continue;
        };
        let mut facts: Vec<String> = Vec::new();
        if o.host != n.host {
            facts.push(format!("host {} -> {}", o.host, n.host));
        }
        for (name, a, b) in [
            (
                "regional_processing",
                o.regional_processing,
                n.regional_processing,
            ),
            (
                "requires_mam_or_zdr",
                o.requires_mam_or_zdr,
                n.requires_mam_or_zdr,
            ),
            (
                "image_inputs_default",
                o.image_inputs_default,
                n.image_inputs_default,
            ),
        ] {
            if a != b {
                facts.push(format!("{name} {a} -> {b}"));
            }
        }
        let (mut os, mut ns) = (o.sources.clone(), n.sources.clone());
        os.sort();
        ns.sort();
        if os != ns {
            facts.push(format!("sources [{}] -> [{}]", os.join(", "), ns.join(", ")));
        }
        if !facts.is_empty() {
            out.push(format!("{}: {}", n.id, facts.join("; ")));
        }
    }
    out
}

pub fn text(old: &Catalog, new: &Catalog, per: &str, changes: &Changes, all: &[Scope]) -> String {
    let mut out = format!(
        "catalog diff: {} ({}) -> {} ({}), per {per}\n",
        old.edition, old.date, new.edition, new.date
    );
    if changes.is_empty() {
        out.push_str("no change: every (operation, model) is allowed or refused as before\n");
    }
    let regions = region_changes(old, new);
    if !regions.is_empty() {
        out.push_str("\nregion facts that change no decision (routing, retention, provenance):\n");
        for r in regions {
            out.push_str(&format!("  {r}\n"));
        }
    }
    if changes.is_empty() {
        return out;
    }
    for allowed in [true, false] {
        let n = count(changes, allowed);
        if n == 0 {
            continue;
        }
        let what = if allowed { "newly allowed" } else { "newly refused" };
        out.push_str(&format!("\n{what}: {n} (operation, model, {per}) change(s)\n"));
        for ((a, op, rule), g) in changes {
            if *a != allowed {
                continue;
            }
            let k: usize = g.models.values().map(Vec::len).sum();
            let why = if allowed {
                format!("was refused by {rule}")
            } else {
                format!("refused by {rule}")
            };
            out.push_str(&format!("  {op}  ({why}): {k}\n"));
            for (m, scopes) in &g.models {
                out.push_str(&format!("    {}: {}\n", model_text(m), scopes_text(scopes, all)));
            }
        }
    }
    out
}

pub fn json(old: &Catalog, new: &Catalog, changes: &Changes) -> Value {
    let list = |allowed: bool| {
        changes
            .iter()
            .filter(|((a, _, _), _)| *a == allowed)
            .flat_map(|((_, op, rule), g)| {
                g.models.iter().flat_map(move |(m, scopes)| {
                    scopes.iter().map(move |s| {
                        json!({
                            "operation": op,
                            "model": if m == "-" || m.starts_with(PURPOSE) { None } else { Some(m) },
                            "purpose": m.strip_prefix(PURPOSE),
                            "scope": s.label(),
                            "rule": rule,
                        })
                    })
                })
            })
            .collect::<Vec<_>>()
    };
    json!({
        "old": {"edition": old.edition, "date": old.date},
        "new": {"edition": new.edition, "date": new.date},
        "allowed": list(true),
        "refused": list(false),
        "regions": region_changes(old, new),
    })
}

/// The command: exit 0 when no (operation, model, scope) flips, 1 when one does, 2 on unusable
/// input. Region facts are listed but do not change the exit code.
pub fn run(old: &str, new: &str, config: Option<&std::path::Path>, format: &str) -> i32 {
    let (old_c, new_c) = match (super::load_catalog(old), super::load_catalog(new)) {
        (Ok(o), Ok(n)) => (o, n),
        (o, n) => {
            let mut problems = o.err().unwrap_or_default();
            problems.extend(n.err().unwrap_or_default());
            return super::print_problems(&problems);
        }
    };
    let (scopes, per) = match config {
        Some(path) => match super::load_config(path) {
            Ok(c) => (
                c.projects
                    .projects
                    .iter()
                    .map(|p| {
                        (
                            Scope {
                                name: p.name.clone(),
                                retention: None,
                            },
                            p.clone(),
                        )
                    })
                    .collect::<Vec<_>>(),
                "project",
            ),
            Err(p) => return super::print_problems(&p),
        },
        None => (region_scopes(&old_c, &new_c), "region and retention"),
    };
    let mut changes = Changes::new();
    for (scope, project) in &scopes {
        compare(&mut changes, &old_c, &new_c, scope, project);
    }
    let all: Vec<Scope> = scopes.into_iter().map(|(s, _)| s).collect();
    match format {
        "json" => println!("{}", json(&old_c, &new_c, &changes)),
        _ => print!("{}", text(&old_c, &new_c, per, &changes, &all)),
    }
    i32::from(!changes.is_empty())
}
