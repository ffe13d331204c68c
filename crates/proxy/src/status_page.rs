//! `GET /` on the admin listener: one server-rendered HTML page (no script, no external asset)
//! with what an operator asks first: which projects exist and how a request selects them, which
//! catalog edition is in use and where it comes from, what each project may call (from
//! `decide`, as `catalog show`), and the decisions made since start (from the same counters as
//! `/metrics`).

use crate::catalog_cmd::retention_id;
use crate::catalog_cmd::show::{self, Row};
use crate::shared::Shared;
use policy::{Catalog, Mode, Project, StoreMode};
use std::collections::BTreeMap;
use std::fmt::Write;

/// `&`, `<`, `>`, `"` and `'` escaped for text and attribute values.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#111}\
table{border-collapse:collapse;margin:.5em 0 1.5em}\
th,td{border:1px solid #bbb;padding:2px 8px;text-align:left;vertical-align:top}\
th{background:#e8e8f0}tr.deny td,tr.report-deny td{background:#fbe3e3}\
tr.allow td,tr.rewrite td{background:#e6f4e6}td.n{text-align:right;font-variant-numeric:tabular-nums}\
code{font-size:12px}summary{font-weight:bold;cursor:pointer}";

/// The whole page.
pub fn render(shared: &Shared) -> String {
    let snap = shared.snapshot.load();
    let config = &snap.config;
    let catalog = &config.catalog;
    let mut h = String::with_capacity(64 * 1024);
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>residency-proxy status</title><style>{STYLE}</style></head><body>\n\
         <h1>residency-proxy status</h1>\n<p>version {} &middot; catalog edition <strong id=\"edition\">{}</strong> ({}) \
         &middot; {} project(s)</p>\n",
        esc(env!("CARGO_PKG_VERSION")),
        esc(&catalog.edition),
        esc(&catalog.date),
        config.projects.projects.len(),
    );
    projects(&mut h, shared);
    decisions(&mut h, &shared.services.metrics.encode());
    sources(&mut h, catalog);
    eligibility(&mut h, catalog, &config.projects.projects);
    h.push_str("</body></html>\n");
    h
}

fn selected_by(p: &Project, default: bool) -> String {
    let mut ways = Vec::new();
    if !p.api_key_sha256.is_empty() {
        ways.push(format!("{} client key(s) (sha256)", p.api_key_sha256.len()));
    }
    if let Some(h) = &p.openai_project {
        ways.push(format!("OpenAI-Project: <code>{}</code>", esc(h)));
    }
    if default {
        ways.push("default (requests that match no other)".to_owned());
    }
    if ways.is_empty() {
        "nothing (unreachable)".to_owned()
    } else {
        ways.join("<br>")
    }
}

fn projects(h: &mut String, shared: &Shared) {
    let snap = shared.snapshot.load();
    let config = &snap.config;
    h.push_str(
        "<h2 id=\"projects\">Projects</h2>\n<table><tr><th>project</th><th>region</th><th>upstream host</th>\
         <th>retention</th><th>store</th><th>mode</th><th>selected by</th><th>image inputs</th><th>hipaa</th></tr>\n",
    );
    let default = config.projects.default_project();
    for (i, p) in config.projects.projects.iter().enumerate() {
        let region = config
            .catalog
            .region(&p.region)
            .map_or(String::new(), |r| format!(" ({})", esc(&r.name)));
        let upstream = config.upstreams.get(i).map_or("", |u| u.base_url.as_str());
        let image = match p.image_inputs {
            Some(true) => "approved".to_owned(),
            Some(false) => "not approved".to_owned(),
            None => format!(
                "region default ({})",
                if config
                    .catalog
                    .region(&p.region)
                    .is_some_and(|r| r.image_inputs_default)
                {
                    "approved"
                } else {
                    "not approved"
                }
            ),
        };
        let _ = writeln!(
            h,
            "<tr class=\"project\"><td><a href=\"#p-{n}\">{n}</a></td><td>{r}{region}</td><td><code>{u}</code></td>\
             <td>{ret}</td><td>{st}</td><td>{m}</td><td>{sel}</td><td>{image}</td><td>{hip}</td></tr>",
            n = esc(&p.name),
            r = esc(&p.region),
            u = esc(upstream),
            ret = retention_id(p.retention),
            st = match p.store {
                StoreMode::Rewrite => "rewrite",
                StoreMode::Reject => "reject",
            },
            m = match p.mode {
                Mode::Enforce => "enforce",
                Mode::Report => "report",
            },
            sel = selected_by(p, default == Some(i)),
            hip = if p.hipaa { "yes" } else { "no" },
        );
    }
    h.push_str("</table>\n");
}

/// `residency_proxy_requests_total` samples of the Prometheus text: (labels, value).
pub fn request_samples(metrics: &str) -> Vec<(BTreeMap<String, String>, u64)> {
    let mut out = Vec::new();
    for line in metrics.lines() {
        let Some(rest) = line.strip_prefix("residency_proxy_requests_total{") else {
            continue;
        };
        let Some((labels, value)) = parse_labels(rest) else {
            continue;
        };
        if let Ok(v) = value.trim().parse::<f64>() {
            // Counters are whole numbers; the cast saturates.
            out.push((labels, v as u64));
        }
    }
    out
}

/// `k="v",k2="v2"} rest` → (labels, rest), with the exposition format's escapes undone.
fn parse_labels(s: &str) -> Option<(BTreeMap<String, String>, &str)> {
    let mut labels = BTreeMap::new();
    let mut rest = s;
    loop {
        if let Some(after) = rest.strip_prefix('}') {
            return Some((labels, after));
        }
        rest = rest.strip_prefix(',').unwrap_or(rest);
        let (key, after) = rest.split_once("=\"")?;
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            let (i, c) = chars.next()?;
            match c {
                '\\' => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                '"' => break i,
                c => value.push(c),
            }
        };
        labels.insert(key.to_owned(), value);
        rest = after.get(end + 1..)?;
    }
}

fn decisions(h: &mut String, metrics: &str) {
    // (project, decision, rule) → requests, summed over regions and endpoints.
    let mut counts: BTreeMap<(String, String, String), u64> = BTreeMap::new();
    for (labels, v) in request_samples(metrics) {
        let get = |k: &str| labels.get(k).cloned().unwrap_or_default();
        *counts
            .entry((get("project"), get("decision"), get("rule")))
            .or_default() += v;
    }
    let total: u64 = counts.values().sum();
    let _ = writeln!(
        h,
        "<h2 id=\"decisions\">Decisions since start</h2>\n<p>{total} request(s), from \
         <code>residency_proxy_requests_total</code> (<a href=\"/metrics\">/metrics</a>); project <code>-</code>: \
         no project selected.</p>"
    );
    h.push_str(
        "<table id=\"decision-counts\"><tr><th>project</th><th>decision</th><th>rule</th><th>requests</th></tr>\n",
    );
    if counts.is_empty() {
        h.push_str("<tr><td colspan=\"4\">no request yet</td></tr>\n");
    }
    for ((project, decision, rule), n) in &counts {
        let rule = if rule.is_empty() { "-" } else { rule.as_str() };
        let _ = writeln!(
            h,
            "<tr class=\"{d}\" data-project=\"{p}\" data-decision=\"{d}\" data-rule=\"{r}\"><td>{p}</td><td>{d}</td>\
             <td>{r}</td><td class=\"n\">{n}</td></tr>",
            p = esc(project),
            d = esc(decision),
            r = esc(rule),
        );
    }
    h.push_str("</table>\n");
}

fn sources(h: &mut String, catalog: &Catalog) {
    let _ = writeln!(
        h,
        "<h2 id=\"catalog\">Catalog {} ({})</h2>\n<p>{} region(s), {} endpoint row(s), {} operation(s). \
         Every row names its source.</p>",
        esc(&catalog.edition),
        esc(&catalog.date),
        catalog.regions.len(),
        catalog.endpoints.len(),
        catalog.operations.len()
    );
    h.push_str("<table id=\"sources\"><tr><th>source</th><th>title</th><th>address</th><th>date</th><th>rows citing it</th></tr>\n");
    for s in &catalog.sources {
        let rows = catalog
            .endpoints
            .iter()
            .filter(|e| e.sources.contains(&s.id))
            .count()
            + catalog
                .regions
                .iter()
                .filter(|r| r.sources.contains(&s.id))
                .count();
        let _ = writeln!(
            h,
            "<tr><td><code>{id}</code></td><td>{t}</td><td><a href=\"{u}\">{u}</a></td><td>{d}</td><td class=\"n\">{rows}</td></tr>",
            id = esc(&s.id),
            t = esc(&s.title),
            u = esc(&s.url),
            d = esc(&s.date),
        );
    }
    h.push_str("</table>\n");
}

fn eligibility(h: &mut String, catalog: &Catalog, projects: &[Project]) {
    h.push_str(
        "<h2 id=\"eligibility\">What each project may call</h2>\n<p>Every catalog operation run through the \
         proxy's own decision with each model the catalog names (as <code>residency-proxy catalog show</code>).</p>\n",
    );
    for p in projects {
        let rows: Vec<Row> = show::rows(catalog, p);
        let allowed = rows.iter().filter(|r| r.allowed()).count();
        let _ = writeln!(
            h,
            "<details id=\"p-{n}\" open><summary>{n}: {allowed} of {total} operations allowed ({summary})</summary>\n\
             <table class=\"matrix\"><tr><th>operation</th><th>decision</th><th>rule</th><th>models</th><th>body markers</th><th>tools</th><th>source</th></tr>",
            n = esc(&p.name),
            total = rows.len(),
            summary = esc(&show::project_summary(catalog, p)),
        );
        for r in &rows {
            let _ = writeln!(
                h,
                "<tr class=\"{d}\"><td><code>{m} {path}</code></td><td>{d}</td><td>{rule}</td><td>{models}</td><td>{markers}</td><td>{tools}</td><td>{src}</td></tr>",
                d = r.decision,
                m = esc(&r.method),
                path = esc(&r.path),
                rule = if r.rules.is_empty() { "-".to_owned() } else { r.rules.join(",") },
                models = esc(&r.models_text()),
                markers = esc(&r.markers_text()),
                tools = esc(&r.tools_text()),
                src = esc(&r.sources.join(", ")),
            );
        }
        h.push_str("</table></details>\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_samples_undo_label_escapes() {
        let text = "# TYPE residency_proxy_requests counter\n\
            residency_proxy_requests_total{project=\"a\\\"b\\\\c\",region=\"eu\",endpoint=\"/v1/x\",decision=\"deny\",rule=\"store,alias\"} 3\n\
            residency_proxy_requests_total{project=\"-\",region=\"-\",endpoint=\"unknown\",decision=\"deny\",rule=\"no_project\"} 1\n\
            residency_proxy_requests_created{project=\"a\"} 1.7e9\n";
        let s = request_samples(text);
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].0["project"], "a\"b\\c");
        assert_eq!(s[0].0["rule"], "store,alias");
        assert_eq!(s[0].1, 3);
        assert_eq!(s[1].0["rule"], "no_project");
    }

    #[test]
    fn esc_escapes_markup() {
        assert_eq!(esc("<a href=\"x\">&'"), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;");
    }
}
