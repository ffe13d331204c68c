//! The body's allow-list checks (catalog `body_checks`): tool types, image-free content types
//! and members that point at stored state.

use super::{image_inputs, image_message, quoted, region_label, Acc};
use crate::catalog::{BodyCheck, CheckKind, Endpoint, Region, ToolRule};
use crate::facts::{CheckFacts, Facts, OtherValue};
use crate::project::{Project, Retention};
use crate::rule::Rule;

/// Checks every `BodyCheck` of the plan against what the scan found. `model` is the model
/// after aliases (tools may need one).
pub(super) fn check(
    acc: &mut Acc,
    project: &Project,
    region: Option<&Region>,
    endpoint: &Endpoint,
    checks: &[BodyCheck],
    facts: &Facts<'_>,
    model: Option<&str>,
) {
    let residency = region.is_none_or(|r| r.residency);
    let zdr = project.retention == Retention::Zdr;
    let images_ok = image_inputs(project, region);
    for (i, c) in checks.iter().enumerate() {
        let f = facts.checks.get(i).copied().unwrap_or_default();
        match &c.kind {
            CheckKind::Types {
                image_free,
                stateful,
                absent,
            } => {
                if zdr && f.seen & stateful != 0 {
                    let name = first_value(c, f.seen & stateful);
                    acc.deny(Rule::StatefulFeature, || {
                        stateful_message(project, region, endpoint, c, Some(name))
                    });
                }
                if !images_ok {
                    let absent_ok = absent.is_some_and(|a| image_free & (1u64 << a) != 0);
                    let bad_seen = f.seen & !image_free;
                    if f.other.is_some() || bad_seen != 0 || (f.absent && !absent_ok) {
                        acc.deny(Rule::ImageInput, || {
                            let what = match (f.other, bad_seen) {
                                (Some(o), _) => described(o),
                                (None, b) if b != 0 => format!("type {}", quoted(first_value(c, b))),
                                _ => "an object without a type".to_owned(),
                            };
                            let (msg, _) = image_message(project, region, endpoint, None);
                            (
                                format!(
                                    "{} has {what} at {}, which is not known to be free of images. {msg}",
                                    endpoint.id,
                                    c.display()
                                ),
                                Some(param(c)),
                            )
                        });
                    }
                }
            }
            CheckKind::Stateful => {
                if zdr && f.other.is_some() {
                    acc.deny(Rule::StatefulFeature, || {
                        stateful_message(project, region, endpoint, c, None)
                    });
                }
            }
            CheckKind::Tools(rules) => tools(acc, project, region, endpoint, c, rules, f, model, residency),
            // The request's model: judged with the model (see `decide`).
            CheckKind::Model => {}
            CheckKind::RowModel { row, models } => {
                let bad = match f.other {
                    Some(OtherValue::String(m)) => {
                        models.as_ref().is_some_and(|ms| !ms.iter().any(|x| x == m))
                    }
                    Some(OtherValue::NotString) => true,
                    None => false,
                };
                if residency && bad {
                    acc.deny(Rule::ModelNotEligible, || {
                        let what = match f.other {
                            Some(OtherValue::String(m)) => format!("model {}", quoted(m)),
                            _ => "a model that is not a string".to_owned(),
                        };
                        (
                            format!(
                                "{what} at {} is judged on {row}, and is not eligible for data residency there in {} \
                                 of project \"{}\" ({}); eligible snapshots: {}.",
                                c.display(),
                                region_label(project, region),
                                project.name,
                                endpoint.id,
                                models.as_ref().map_or_else(String::new, |m| m.join(", "))
                            ),
                            Some(c.display()),
                        )
                    });
                }
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn tools(
    acc: &mut Acc,
    project: &Project,
    region: Option<&Region>,
    endpoint: &Endpoint,
    c: &BodyCheck,
    rules: &[ToolRule],
    f: CheckFacts<'_>,
    model: Option<&str>,
    residency: bool,
) {
    let zdr = project.retention == Retention::Zdr;
    let not_eligible = |acc: &mut Acc, why: &dyn Fn() -> String| {
        acc.deny(Rule::ToolNotEligible, || (why(), Some(param(c))));
    };
    if residency && (f.other.is_some() || f.absent) {
        not_eligible(acc, &|| {
            let what = match f.other {
                Some(o) => described(o),
                None => "a tool without a type".to_owned(),
            };
            format!(
                "{what} at {} is not eligible for data residency on {} in {} of project \"{}\"; \
                 eligible tool types: {}.",
                c.display(),
                endpoint.id,
                region_label(project, region),
                project.name,
                c.values.join(", ")
            )
        });
    }
    for (i, (name, rule)) in c.values.iter().zip(rules).enumerate() {
        if f.seen & (1u64 << i) == 0 {
            continue;
        }
        if residency {
            if let Some(regions) = rule.regions.as_ref().filter(|r| !r.contains(&project.region)) {
                not_eligible(acc, &|| {
                    format!(
                        "tool {} is not offered with data residency in {} of project \"{}\" on {}; it is \
                         offered in: {}.",
                        quoted(name),
                        region_label(project, region),
                        project.name,
                        endpoint.id,
                        regions.join(", ")
                    )
                });
            }
            if let Some(models) = rule
                .models
                .as_ref()
                .filter(|m| !model.is_some_and(|x| m.iter().any(|y| y == x)))
            {
                not_eligible(acc, &|| {
                    format!(
                        "tool {} is eligible for data residency on {} only with model {}; the request uses {}.",
                        quoted(name),
                        endpoint.id,
                        models.join(", "),
                        model.map_or_else(|| "no model".to_owned(), quoted)
                    )
                });
            }
        }
        if zdr && !rule.zdr {
            not_eligible(acc, &|| {
                format!(
                    "tool {} is not available to zero-data-retention project \"{}\" ({}, {}).",
                    quoted(name),
                    project.name,
                    endpoint.id,
                    region_label(project, region)
                )
            });
        }
        if project.hipaa && !rule.hipaa {
            acc.deny(Rule::Hipaa, || {
                (
                    format!(
                        "tool {} is not HIPAA eligible and not covered by a BAA; it is refused for hipaa \
                         project \"{}\" ({}, {}).",
                        quoted(name),
                        project.name,
                        endpoint.id,
                        region_label(project, region)
                    ),
                    Some(param(c)),
                )
            });
        }
    }
}

fn stateful_message(
    project: &Project,
    region: Option<&Region>,
    endpoint: &Endpoint,
    c: &BodyCheck,
    value: Option<&str>,
) -> (String, Option<String>) {
    let what = match value {
        Some(v) => format!("{} {}", c.display(), quoted(v)),
        None => c.display(),
    };
    (
        format!(
            "{what} points at stored application state, which is not kept for zero-data-retention \
             project \"{}\" ({}, {}).",
            project.name,
            endpoint.id,
            region_label(project, region)
        ),
        Some(param(c)),
    )
}

/// The first of `c.values` whose bit is in `bits`.
fn first_value(c: &BodyCheck, bits: u64) -> &str {
    let i = bits.trailing_zeros() as usize;
    c.values.get(i).map_or("", String::as_str)
}

fn described(o: OtherValue<'_>) -> String {
    match o {
        OtherValue::String(s) => format!("type {}", quoted(s)),
        OtherValue::NotString => "a type that is not a string".to_owned(),
    }
}

/// The top-level request parameter the check is under (OpenAI's `param`), e.g. `tools`.
fn param(c: &BodyCheck) -> String {
    c.path.first().unwrap_or(&c.key).clone()
}
