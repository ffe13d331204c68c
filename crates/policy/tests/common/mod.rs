//! Helpers shared by the policy tests.
#![allow(dead_code, clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;

use policy::{
    Catalog, Decision, FieldRole, FieldValue, MarkerRole, Mode, OpId, Project, Retention, StoreMode,
};

pub const TABLE2_ALL: [&str; 7] = ["us", "eu", "ca", "jp", "in", "sg", "kr"];
pub const ALL_REGIONS: [&str; 11] = [
    "global", "us", "eu", "ca", "jp", "in", "sg", "kr", "au", "gb", "ae",
];

pub fn catalog() -> Catalog {
    Catalog::builtin().unwrap_or_else(|e| panic!("builtin catalog: {e}"))
}

pub fn project(region: &str, retention: Retention) -> Project {
    Project {
        name: format!("p-{region}"),
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
    }
}

pub fn op(c: &Catalog, method: &str, template: &str) -> OpId {
    c.operation_by_template(method, template)
        .unwrap_or_else(|| panic!("no operation {method} {template}"))
}

/// A request's facts by field name and marker role.
#[derive(Default, Clone)]
pub struct Req {
    pub fields: Vec<(&'static str, FieldValue<'static>)>,
    pub markers: Vec<MarkerRole>,
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
    pub fn marker(mut self, role: MarkerRole) -> Req {
        self.markers.push(role);
        self
    }
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
    for r in &req.markers {
        assert!(
            plan.markers.iter().any(|m| m.role == *r),
            "marker {r:?} not in the plan"
        );
    }
    policy::decide(
        c,
        p,
        op,
        &policy::Facts {
            fields: &fields,
            markers: &markers,
        },
    )
}

pub fn model_field(c: &Catalog, op: OpId) -> bool {
    c.operation(op).plan.field_with(FieldRole::Model).is_some()
}

pub fn rules(d: &Decision) -> Vec<&'static str> {
    d.rules.iter().map(|r| r.as_str()).collect()
}
