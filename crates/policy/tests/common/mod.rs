//! Helpers shared by the policy tests.
#![allow(dead_code, clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use policy::{
    Catalog, CheckFacts, CheckKind, Decision, FieldRole, FieldValue, IncludeList, MarkerRole, OpId,
    OtherValue, Project, Retention,
};

pub const TABLE2_ALL: [&str; 7] = ["us", "eu", "ca", "jp", "in", "sg", "kr"];
pub const ALL_REGIONS: [&str; 11] = [
    "global", "us", "eu", "ca", "jp", "in", "sg", "kr", "au", "gb", "ae",
];

pub fn catalog() -> Catalog {
    Catalog::builtin().unwrap_or_else(|e| panic!("builtin catalog: {e}"))
}

pub fn project(region: &str, retention: Retention) -> Project {
    Project::with_defaults(format!("p-{region}"), region, retention)
}

pub fn op(c: &Catalog, method: &str, template: &str) -> OpId {
    c.operation_by_template(method, template)
        .unwrap_or_else(|| panic!("no operation {method} {template}"))
}

/// A request's facts by field name, marker role and body check name.
#[derive(Default, Clone)]
pub struct Req {
    pub fields: Vec<(&'static str, FieldValue<'static>)>,
    pub markers: Vec<MarkerRole>,
    /// (check name, value found): a value not in the check's list is an `other`; None: an
    /// object at the path without the member.
    pub checks: Vec<(&'static str, Option<&'static str>)>,
    /// What the include array holds (when the request has one and the project reads it).
    pub include: Option<IncludeList>,
}

impl Req {
    pub fn new() -> Req {
        Req::default()
    }
    pub fn model(self, m: &'static str) -> Req {
        self.field("model", FieldValue::String(m))
    }
    pub fn field(mut self, name: &'static str, v: FieldValue<'static>) -> Req {
        self.fields.push((name, v));
        self
    }
    /// The request carries what the role used to be a marker for: an image part (a value of a
    /// types check that is not image-free) or a web search tool. Kept so the rules' tests read
    /// as before; the catalog now answers them with `body_checks`.
    pub fn marker(mut self, role: MarkerRole) -> Req {
        self.markers.push(role);
        self
    }
    /// The include array holds only strings, `has_value` says whether the catalog's value too.
    pub fn include_strings(mut self, has_value: bool) -> Req {
        self.include = Some(IncludeList::Strings { has_value });
        self
    }
    /// The include array holds something other than a string.
    pub fn include_not_strings(mut self) -> Req {
        self.include = Some(IncludeList::NotStrings);
        self
    }
    /// The body check `name` finds `value` (None: an object without the member).
    pub fn check(mut self, name: &'static str, value: Option<&'static str>) -> Req {
        self.checks.push((name, value));
        self
    }
}

/// The facts of one body check for `values` found.
fn check_facts(values: &[String], found: &[Option<&'static str>]) -> CheckFacts<'static> {
    let mut f = CheckFacts::default();
    for v in found {
        match v {
            None => f.absent = true,
            Some(v) => match values.iter().position(|x| x == v) {
                Some(i) => f.seen |= 1 << i,
                None => f.other = f.other.or(Some(OtherValue::String(v))),
            },
        }
    }
    f
}

/// Runs `decide` with facts laid out as the operation's plan asks.
pub fn decide(c: &Catalog, p: &Project, op: OpId, req: &Req) -> Decision {
    let plan = &c.operation(op).plan;
    let fields: Vec<FieldValue<'static>> = plan
        .fields
        .iter()
        .map(|f| {
            req.fields
                .iter()
                .find(|(n, _)| n == f)
                .map_or(FieldValue::Absent, |(_, v)| *v)
        })
        .collect();
    for (n, _) in &req.fields {
        assert!(
            plan.fields.iter().any(|f| f == n),
            "field {n} is not in the plan of {}",
            c.operation(op).template
        );
    }
    let markers: Vec<bool> = plan
        .markers
        .iter()
        .map(|m| req.markers.contains(&m.role))
        .collect();
    let mut found: Vec<Vec<Option<&'static str>>> = vec![Vec::new(); plan.checks.len()];
    for r in &req.markers {
        let (kind_matches, value): (fn(&CheckKind) -> bool, &'static str) = match r {
            MarkerRole::ImageInput => (|k| matches!(k, CheckKind::Types { .. }), "input_image"),
            MarkerRole::WebSearch => (|k| matches!(k, CheckKind::Tools(_)), "web_search"),
        };
        let in_markers = plan.markers.iter().any(|m| m.role == *r);
        let at = plan.checks.iter().position(|c| {
            kind_matches(&c.kind) && (value != "web_search" || c.values.iter().any(|v| v == value))
        });
        assert!(in_markers || at.is_some(), "marker {r:?} not in the plan");
        if let (false, Some(i)) = (in_markers, at) {
            found[i].push(Some(value));
        }
    }
    for (name, v) in &req.checks {
        let i = plan
            .checks
            .iter()
            .position(|c| c.name == *name)
            .unwrap_or_else(|| {
                panic!(
                    "body check {name} is not in the plan of {}",
                    c.operation(op).template
                )
            });
        found[i].push(*v);
    }
    let checks: Vec<CheckFacts<'static>> = plan
        .checks
        .iter()
        .zip(&found)
        .map(|(c, f)| check_facts(&c.values, f))
        .collect();
    policy::decide(
        c,
        p,
        op,
        &policy::Facts {
            fields: &fields,
            markers: &markers,
            checks: &checks,
            include: req.include,
        },
    )
}

pub fn model_field(c: &Catalog, op: OpId) -> bool {
    c.operation(op).plan.field_with(FieldRole::Model).is_some()
}

pub fn rules(d: &Decision) -> Vec<&'static str> {
    d.rules.iter().map(|r| r.as_str()).collect()
}
