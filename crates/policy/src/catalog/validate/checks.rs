//! `body_checks`: allow-lists for what a JSON body may contain, validated into [`BodyCheck`]s.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::super::raw::{RawBodyCheck, RawCheckKind};
use super::super::{BodyCheck, CheckKind, Feature, ToolRule, EACH};
use super::Ctx;

/// The scanner follows at most this many path positions (sum of path lengths + 1) per
/// operation, and reports at most this many values per check (both are bit masks).
pub(super) const MAX_POSITIONS: usize = 64;

/// `input[].content[]` → `["input", "[]", "content", "[]"]`; None when malformed.
fn parse_path(path: &str) -> Option<Vec<String>> {
    let mut out = Vec::new();
    if path.is_empty() {
        return Some(out);
    }
    for seg in path.split('.') {
        let mut name = seg;
        let mut each = 0;
        while let Some(rest) = name.strip_suffix(EACH) {
            name = rest;
            each += 1;
        }
        if name.is_empty()
            || !name
                .bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_')
        {
            return None;
        }
        out.push(name.to_owned());
        for _ in 0..each {
            out.push(EACH.to_owned());
        }
    }
    Some(out)
}

/// `v`'s bit in a mask over `values`; none past the 64th value (such a check is reported as
/// having too many values, but its masks are computed first and must not overflow).
fn bit_of(values: &[String], v: &str) -> u64 {
    values
        .iter()
        .position(|x| x == v)
        .and_then(|i| 1u64.checked_shl(u32::try_from(i).ok()?))
        .unwrap_or(0)
}

pub(super) fn body_checks(
    cx: &mut Ctx<'_>,
    raw: &BTreeMap<String, RawBodyCheck>,
    features: &[Feature],
) -> HashMap<String, BodyCheck> {
    let mut out = HashMap::new();
    for (name, c) in raw {
        let place = format!("body_checks.{name}");
        let Some(path) = parse_path(&c.path) else {
            cx.problem(
                format!("{place}.path"),
                format!(
                    "\"{}\" is not member names joined by '.', each optionally followed by []",
                    c.path
                ),
            );
            continue;
        };
        cx.non_empty(&format!("{place}.key"), &c.key);
        if c.row.is_some() && c.kind != RawCheckKind::Model {
            cx.problem(
                format!("{place}.row"),
                "only a model check is judged on another row",
            );
        }
        let lists_types = !c.image_free.is_empty() || !c.stateful.is_empty() || c.absent.is_some();
        let kind = match c.kind {
            RawCheckKind::Types => {
                cx.names(&format!("{place}.image_free"), &c.image_free);
                cx.names(&format!("{place}.stateful"), &c.stateful);
                let mut values = c.image_free.clone();
                for s in &c.stateful {
                    if !values.contains(s) {
                        values.push(s.clone());
                    }
                }
                if values.is_empty() {
                    cx.problem(&place, "a types check lists image_free or stateful types");
                }
                let image_free = c.image_free.iter().fold(0, |m, v| m | bit_of(&values, v));
                let stateful = c.stateful.iter().fold(0, |m, v| m | bit_of(&values, v));
                let absent = match &c.absent {
                    None => None,
                    Some(a) => {
                        let i = values.iter().position(|v| v == a);
                        if i.is_none() {
                            cx.problem(
                                format!("{place}.absent"),
                                format!("\"{a}\" is not one of the listed types"),
                            );
                        }
                        i
                    }
                };
                if !c.tools.is_empty() {
                    cx.problem(format!("{place}.tools"), "tools belong to a tools check");
                }
                (
                    values,
                    CheckKind::Types {
                        image_free,
                        stateful,
                        absent,
                    },
                )
            }
            RawCheckKind::Tools => {
                if lists_types {
                    cx.problem(
                        &place,
                        "a tools check lists tools, not image_free/stateful/absent",
                    );
                }
                if c.tools.is_empty() {
                    cx.problem(format!("{place}.tools"), "must list at least one tool");
                }
                let mut values = Vec::with_capacity(c.tools.len());
                let mut rules = Vec::with_capacity(c.tools.len());
                for (t, tool) in &c.tools {
                    let tplace = format!("{place}.tools.{t}");
                    let feature = tool.feature.as_ref().and_then(|f| {
                        let found = features.iter().find(|x| &x.id == f);
                        if found.is_none() {
                            cx.problem(format!("{tplace}.feature"), format!("unknown feature \"{f}\""));
                        }
                        found
                    });
                    if feature.is_some() && tool.regions.is_some() {
                        cx.problem(
                            &tplace,
                            "regions come from the feature row; give one or the other",
                        );
                    }
                    let regions = match (&tool.regions, feature) {
                        (Some(r), _) => Some(cx.regions(&format!("{tplace}.regions"), r)),
                        (None, Some(f)) => Some(f.regions.clone()),
                        (None, None) => None,
                    };
                    if let Some(m) = &tool.models {
                        cx.names(&format!("{tplace}.models"), m);
                    }
                    values.push(t.clone());
                    rules.push(ToolRule {
                        regions,
                        models: tool.models.clone(),
                        zdr: tool.zdr,
                        hipaa: feature.is_none_or(|f| f.hipaa_eligible),
                    });
                }
                (values, CheckKind::Tools(rules))
            }
            RawCheckKind::Stateful => {
                if lists_types || !c.tools.is_empty() {
                    cx.problem(
                        &place,
                        "a stateful check lists nothing: any non-null value counts",
                    );
                }
                (Vec::new(), CheckKind::Stateful)
            }
            RawCheckKind::Model => {
                if lists_types || !c.tools.is_empty() {
                    cx.problem(&place, "a model check lists nothing: the member is the model");
                }
                // One object at most: the scan reports the first value only.
                if path.iter().any(|s| s == EACH) {
                    cx.problem(format!("{place}.path"), "a model check's path has no []");
                }
                match &c.row {
                    // The row's models are filled in once every endpoint is known.
                    Some(row) => (
                        Vec::new(),
                        CheckKind::RowModel {
                            row: row.clone(),
                            models: None,
                        },
                    ),
                    None => (Vec::new(), CheckKind::Model),
                }
            }
        };
        let (values, kind) = kind;
        if values.len() > MAX_POSITIONS {
            cx.problem(&place, format!("at most {MAX_POSITIONS} values per check"));
        }
        out.insert(
            name.clone(),
            BodyCheck {
                name: name.clone(),
                path,
                key: c.key.clone(),
                values,
                kind,
            },
        );
    }
    out
}

/// The operation's checks by name, in order; problems for unknown or repeated names and for
/// more positions than the scanner follows.
pub(super) fn resolve(
    cx: &mut Ctx<'_>,
    place: &str,
    names: &[String],
    checks: &HashMap<String, BodyCheck>,
) -> Vec<BodyCheck> {
    let mut out = Vec::with_capacity(names.len());
    let mut seen = HashSet::new();
    for (k, name) in names.iter().enumerate() {
        if !seen.insert(name.as_str()) {
            cx.problem(
                format!("{place}.body_checks[{k}]"),
                format!("\"{name}\" listed twice"),
            );
            continue;
        }
        match checks.get(name) {
            Some(c) => out.push(c.clone()),
            None => {
                let mut known: Vec<&str> = checks.keys().map(String::as_str).collect();
                known.sort_unstable();
                cx.problem(
                    format!("{place}.body_checks[{k}]"),
                    format!("unknown body check \"{name}\" (known: {})", known.join(", ")),
                );
            }
        }
    }
    let positions: usize = out.iter().map(|c| c.path.len() + 1).sum();
    if positions > MAX_POSITIONS {
        cx.problem(
            format!("{place}.body_checks"),
            format!("{positions} path positions; the scanner follows at most {MAX_POSITIONS}"),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::parse_path;

    #[test]
    fn paths_parse_into_steps() {
        assert_eq!(parse_path(""), Some(vec![]));
        assert_eq!(parse_path("tools[]"), Some(vec!["tools".into(), "[]".into()]));
        assert_eq!(
            parse_path("input[].content[]"),
            Some(vec!["input".into(), "[]".into(), "content".into(), "[]".into()])
        );
        assert_eq!(
            parse_path("input[].output"),
            Some(vec!["input".into(), "[]".into(), "output".into()])
        );
        for bad in ["[]", "a..b", "a.", "A", "a b", "a[", "a[]b"] {
            assert_eq!(parse_path(bad), None, "{bad}");
        }
    }

    #[test]
    fn member_names_take_digits_and_underscores() {
        assert_eq!(parse_path("file_id"), Some(vec!["file_id".into()]));
        assert_eq!(parse_path("v2[]"), Some(vec!["v2".into(), "[]".into()]));
    }
}
