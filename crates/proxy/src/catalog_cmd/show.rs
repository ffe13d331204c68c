//! `catalog show`: every operation of the catalog, allowed or refused for one project, with
//! the refusing rule, the models a request may name and the body markers it may carry.

use super::{retention_id, EXIT_USAGE};
use policy::eligibility::{self, OpEligibility, ANY_MODEL};
use policy::{Catalog, Mode, Project, Retention, StoreMode};
use serde_json::{json, Value};

/// One operation as a project sees it.
#[derive(Debug, Clone)]
pub struct Row {
    pub method: String,
    pub path: String,
    pub endpoint: String,
    /// `allow`, `rewrite`, `deny` or (report mode) `report-deny`, as `x-residency-decision`.
    pub decision: &'static str,
    /// The refusing rules (deny) or the rewriting ones (rewrite).
    pub rules: Vec<&'static str>,
    /// None: the operation reads no model. `["*"]`: any model.
    pub models: Option<Vec<String>>,
    /// (marker, allowed, refusing rule).
    pub markers: Vec<(&'static str, bool, Option<&'static str>)>,
    /// (tool type, allowed, refusing rule), from the operation's tool allow-lists.
    pub tools: Vec<(String, bool, Option<&'static str>)>,
    /// (purpose, allowed, refusing rule), for an upload that names one.
    pub purposes: Vec<(String, bool, Option<&'static str>)>,
    /// The source ids of the endpoint row (provenance).
    pub sources: Vec<String>,
}

impl Row {
    pub fn allowed(&self) -> bool {
        matches!(self.decision, "allow" | "rewrite")
    }

    /// The models cell: `-` (no model), `any`, or the list.
    pub fn models_text(&self) -> String {
        match &self.models {
            None => "-".to_owned(),
            Some(_) if !self.allowed() => "-".to_owned(),
            Some(m) if m.iter().any(|x| x == ANY_MODEL) => "any model".to_owned(),
            Some(m) if m.is_empty() => "none".to_owned(),
            Some(m) => m.join(", "),
        }
    }

    /// `web_search, file_search; refused: code_interpreter (tool_not_eligible)`, or `-`.
    pub fn tools_text(&self) -> String {
        if self.tools.is_empty() {
            return "-".to_owned();
        }
        let ok: Vec<&str> = self.tools.iter().filter(|t| t.1).map(|t| t.0.as_str()).collect();
        let no: Vec<String> = self
            .tools
            .iter()
            .filter(|t| !t.1)
            .map(|(t, _, r)| match r {
                Some(r) => format!("{t} ({r})"),
                None => t.clone(),
            })
            .collect();
        let mut out = if ok.is_empty() {
            "none".to_owned()
        } else {
            ok.join(", ")
        };
        if !no.is_empty() {
            out.push_str("; refused: ");
            out.push_str(&no.join(", "));
        }
        out
    }

    /// `batch; refused: assistants, fine-tune (endpoint_region)`, or `-`.
    pub fn purposes_text(&self) -> String {
        if self.purposes.is_empty() {
            return "-".to_owned();
        }
        let ok: Vec<&str> = self
            .purposes
            .iter()
            .filter(|p| p.1)
            .map(|p| p.0.as_str())
            .collect();
        let mut out = if ok.is_empty() {
            "none".to_owned()
        } else {
            ok.join(", ")
        };
        // Refused purposes grouped by rule, in the catalog's order.
        let mut by_rule: Vec<(Option<&str>, Vec<&str>)> = Vec::new();
        for (p, _, r) in self.purposes.iter().filter(|p| !p.1) {
            match by_rule.iter_mut().find(|(x, _)| x == r) {
                Some((_, ps)) => ps.push(p),
                None => by_rule.push((*r, vec![p])),
            }
        }
        for (r, ps) in by_rule {
            out.push_str("; refused: ");
            out.push_str(&ps.join(", "));
            if let Some(r) = r {
                out.push_str(&format!(" ({r})"));
            }
        }
        out
    }

    pub fn markers_text(&self) -> String {
        let parts: Vec<String> = self
            .markers
            .iter()
            .map(|(m, ok, rule)| match (ok, rule) {
                (true, _) => format!("{m}: allowed"),
                (false, Some(r)) => format!("{m}: refused ({r})"),
                (false, None) => format!("{m}: refused"),
            })
            .collect();
        if parts.is_empty() {
            "-".to_owned()
        } else {
            parts.join("; ")
        }
    }
}

/// The rows of every operation of `catalog` for `project`, from `decide`.
pub fn rows(catalog: &Catalog, project: &Project) -> Vec<Row> {
    let candidates = eligibility::candidate_models(&[catalog], project);
    eligibility::eligibility(catalog, project, &candidates)
        .iter()
        .map(|e| row(catalog, project, e))
        .collect()
}

fn row(catalog: &Catalog, project: &Project, e: &OpEligibility) -> Row {
    let op = catalog.operation(e.op);
    let allowed = e.allowed();
    let (decision, rules) = if allowed {
        let rw = e.rewrite_rules();
        let d = if rw.is_empty() { "allow" } else { "rewrite" };
        (d, rw.iter().map(|r| r.as_str()).collect())
    } else {
        let d = match project.mode {
            Mode::Enforce => "deny",
            Mode::Report => "report-deny",
        };
        (d, e.refusing_rules().iter().map(|r| r.as_str()).collect())
    };
    let models = e
        .models
        .as_ref()
        .map(|_| e.allowed_models().into_iter().map(str::to_owned).collect());
    let markers = if allowed {
        e.markers
            .iter()
            .map(|m| {
                (
                    m.role,
                    m.allowed(),
                    m.decision.denial.as_ref().map(|d| d.rule.as_str()),
                )
            })
            .collect()
    } else {
        Vec::new()
    };
    let tools = if allowed {
        e.tools
            .iter()
            .map(|t| {
                (
                    t.tool.clone(),
                    t.allowed(),
                    t.decision.denial.as_ref().map(|d| d.rule.as_str()),
                )
            })
            .collect()
    } else {
        Vec::new()
    };
    let purposes = if allowed {
        e.purposes
            .iter()
            .map(|p| {
                (
                    p.purpose.clone(),
                    p.allowed(),
                    p.decision.denial.as_ref().map(|d| d.rule.as_str()),
                )
            })
            .collect()
    } else {
        Vec::new()
    };
    Row {
        tools,
        purposes,
        method: op.method.clone(),
        path: op.template.clone(),
        endpoint: catalog.endpoint_of(e.op).id.clone(),
        sources: catalog.endpoint_of(e.op).sources.clone(),
        decision,
        rules,
        models,
        markers,
    }
}

/// `region "eu", retention zdr, store rewrite, mode enforce`.
pub fn project_summary(catalog: &Catalog, project: &Project) -> String {
    let region = catalog
        .region(&project.region)
        .map_or(String::new(), |r| format!(" ({})", r.name));
    format!(
        "region {}{region}, retention {}, store {}, mode {}",
        project.region,
        retention_id(project.retention),
        match project.store {
            StoreMode::Rewrite => "rewrite",
            StoreMode::Reject => "reject",
        },
        match project.mode {
            Mode::Enforce => "enforce",
            Mode::Report => "report",
        }
    )
}

pub fn table(catalog: &Catalog, project: &Project, rows: &[Row]) -> String {
    let mut out = format!(
        "catalog {} ({}); project \"{}\": {}\n",
        catalog.edition,
        catalog.date,
        project.name,
        project_summary(catalog, project)
    );
    let allowed = rows.iter().filter(|r| r.allowed()).count();
    out.push_str(&format!("{allowed} of {} operations allowed\n\n", rows.len()));
    let header = ["OPERATION", "DECISION", "RULE", "MODELS", "BODY MARKERS", "TOOLS"];
    let cells: Vec<[String; 6]> = rows
        .iter()
        .map(|r| {
            [
                format!("{} {}", r.method, r.path),
                r.decision.to_owned(),
                if r.rules.is_empty() {
                    "-".to_owned()
                } else {
                    r.rules.join(",")
                },
                r.models_text(),
                r.markers_text(),
                match (r.tools_text().as_str(), r.purposes_text().as_str()) {
                    ("-", "-") => "-".to_owned(),
                    (t, "-") => format!("tools: {t}"),
                    (_, p) => format!("purposes: {p}"),
                },
            ]
        })
        .collect();
    let mut width = header.map(str::len);
    for c in &cells {
        for (w, cell) in width.iter_mut().zip(c.iter()).take(3) {
            *w = (*w).max(cell.chars().count());
        }
    }
    // OPERATION, DECISION and RULE are padded; MODELS is long and comes last but for the
    // body markers, in brackets, and the tools, in braces.
    let line = |c: [&str; 6]| {
        let mut s = format!(
            "{:<w0$}  {:<w1$}  {:<w2$}  {}",
            c[0],
            c[1],
            c[2],
            c[3],
            w0 = width[0],
            w1 = width[1],
            w2 = width[2]
        );
        if c[4] != "-" {
            s.push_str(&format!("  [{}]", c[4]));
        }
        if c[5] != "-" {
            s.push_str(&format!("  {{{}}}", c[5]));
        }
        s.trim_end().to_owned() + "\n"
    };
    out.push_str(&line(header));
    for c in &cells {
        out.push_str(&line([&c[0], &c[1], &c[2], &c[3], &c[4], &c[5]]));
    }
    out
}

pub fn json(catalog: &Catalog, project: &Project, rows: &[Row]) -> Value {
    json!({
        "catalog": {"edition": catalog.edition, "date": catalog.date},
        "project": {
            "name": project.name,
            "region": project.region,
            "retention": retention_id(project.retention),
            "store": match project.store { StoreMode::Rewrite => "rewrite", StoreMode::Reject => "reject" },
            "mode": match project.mode { Mode::Enforce => "enforce", Mode::Report => "report" },
        },
        "operations": rows.iter().map(|r| {
            let any = r.models.as_ref().is_some_and(|m| m.iter().any(|x| x == ANY_MODEL));
            json!({
                "method": r.method,
                "path": r.path,
                "endpoint": r.endpoint,
                "sources": r.sources,
                "decision": r.decision,
                "rules": r.rules,
                "any_model": any,
                "models": if any { Some(Vec::new()) } else { r.models.clone() },
                "markers": r.markers.iter().map(|(m, ok, rule)| json!({
                    "marker": m, "allowed": ok, "rule": rule,
                })).collect::<Vec<_>>(),
                "tools": r.tools.iter().map(|(t, ok, rule)| json!({
                    "tool": t, "allowed": ok, "rule": rule,
                })).collect::<Vec<_>>(),
                "purposes": r.purposes.iter().map(|(p, ok, rule)| json!({
                    "purpose": p, "allowed": ok, "rule": rule,
                })).collect::<Vec<_>>(),
            })
        }).collect::<Vec<_>>(),
    })
}

/// The command: a project from a config, or a region and retention of a catalog.
pub fn run(
    config: Option<&std::path::Path>,
    project: Option<&str>,
    catalog: Option<&str>,
    region: Option<&str>,
    retention: Option<&str>,
    format: &str,
) -> i32 {
    let (catalog, project) = match (catalog, config) {
        (None, Some(path)) => {
            let config = match super::load_config(path) {
                Ok(c) => c,
                Err(p) => return super::print_problems(&p),
            };
            let names: Vec<&str> = config.projects.projects.iter().map(|p| p.name.as_str()).collect();
            let Some(name) = project else {
                eprintln!(
                    "residency-proxy: --project is needed with --config (projects: {})",
                    names.join(", ")
                );
                return EXIT_USAGE;
            };
            let Some(i) = config.projects.by_name(name) else {
                eprintln!(
                    "residency-proxy: no project \"{name}\" in the config (projects: {})",
                    names.join(", ")
                );
                return EXIT_USAGE;
            };
            let p = config.projects.projects[i].clone();
            ((*config.catalog).clone(), p)
        }
        (Some(file), _) => {
            let catalog = match super::load_catalog(file) {
                Ok(c) => c,
                Err(p) => return super::print_problems(&p),
            };
            let (Some(region), Some(retention)) = (region, retention) else {
                eprintln!("residency-proxy: --catalog needs --region and --retention");
                return EXIT_USAGE;
            };
            let Some(retention) = super::parse_retention(retention) else {
                eprintln!(
                    "residency-proxy: --retention {retention:?}: one of zdr, modified_abuse_monitoring, default"
                );
                return EXIT_USAGE;
            };
            let Some(r) = catalog.region(region) else {
                let ids: Vec<&str> = catalog.regions.iter().map(|r| r.id.as_str()).collect();
                eprintln!(
                    "residency-proxy: --region {region:?} is not a region of the catalog ({})",
                    ids.join(", ")
                );
                return EXIT_USAGE;
            };
            if retention == Retention::Default && r.requires_mam_or_zdr {
                eprintln!(
                    "residency-proxy: region \"{region}\" requires modified_abuse_monitoring or zdr, not retention default"
                );
                return EXIT_USAGE;
            }
            let p = super::synthetic_project(region, retention);
            (catalog, p)
        }
        _ => {
            eprintln!("residency-proxy: give either --config FILE --project NAME or --catalog FILE --region R --retention X");
            return EXIT_USAGE;
        }
    };
    let rows = rows(&catalog, &project);
    match format {
        "json" => println!("{}", json(&catalog, &project, &rows)),
        _ => print!("{}", table(&catalog, &project, &rows)),
    }
    0
}
