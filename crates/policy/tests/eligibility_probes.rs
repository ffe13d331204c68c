//! `eligibility` answers "what may this project call" (for `catalog show`, `catalog diff` and
//! the status page) by running `decide` on synthetic requests. These tests hold its answers to
//! what `decide` says of the same requests, written out independently here, so a probe that
//! sends the wrong facts (or a summary that reads them wrong) is noticed in this crate, not
//! only through the proxy's command tests (`cargo mutants` on `eligibility.rs` left them all
//! unnoticed by the policy tests).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{catalog, decide, op, project, rules, Req};
use policy::eligibility::{candidate_models, eligibility, OpEligibility, ANY_MODEL, OTHER_TOOL};
use policy::{Catalog, CheckKind, Decision, FieldValue, Mode, Project, Retention, Rule, Verdict};

fn of(c: &Catalog, p: &Project, method: &str, template: &str) -> OpEligibility {
    let id = op(c, method, template);
    let candidates = candidate_models(&[c], p);
    let all = eligibility(c, p, &candidates);
    assert_eq!(all.len(), c.operations.len());
    all.into_iter().find(|e| e.op == id).unwrap()
}

fn passes(d: &Decision) -> bool {
    matches!(d.verdict, Verdict::Allow | Verdict::Rewrite)
}

fn rule_names(r: policy::RuleSet) -> Vec<&'static str> {
    r.iter().map(|r| r.as_str()).collect()
}

/// The first candidate other than `*` that `decide` lets through with `req(model)`.
fn first_passing(c: &Catalog, p: &Project, id: usize, req: impl Fn(&'static str) -> Req) -> &'static str {
    let candidates = candidate_models(&[c], p);
    let found = candidates
        .iter()
        .filter(|m| *m != ANY_MODEL)
        .find(|m| passes(&decide(c, p, id, &req(leak(m)))))
        .unwrap();
    leak(found)
}

fn leak(s: &str) -> &'static str {
    Box::leak(s.to_owned().into_boxed_str())
}

#[test]
fn candidates_are_every_listed_model_and_alias_sorted_once() {
    let c = catalog();
    let mut p = project("eu", Retention::ModifiedAbuseMonitoring);
    p.aliases.insert("team-4o".into(), "gpt-4o-2024-08-06".into());
    let got = candidate_models(&[&c, &c], &p);
    assert!(got.windows(2).all(|w| w[0] < w[1]), "sorted, once: {got:?}");
    assert_eq!(got[0], ANY_MODEL);
    for want in ["team-4o", "gpt-4o-2024-08-06", "whisper-1", "gpt-image-1"] {
        assert!(got.iter().any(|m| m == want), "{want} in {got:?}");
    }
    for e in &c.endpoints {
        for m in e.models.iter().flatten().chain(e.zdr_models.iter().flatten()) {
            assert!(got.contains(m), "{m}");
        }
    }
}

#[test]
fn every_operation_is_answered_in_catalog_order() {
    let c = catalog();
    let p = project("us", Retention::Zdr);
    let all = eligibility(&c, &p, &candidate_models(&[&c], &p));
    assert_eq!(all.len(), c.operations.len());
    assert!(all.iter().enumerate().all(|(i, e)| e.op == i));
}

#[test]
fn a_model_operation_lists_what_decide_allows_per_model() {
    let c = catalog();
    let eu = project("eu", Retention::ModifiedAbuseMonitoring);
    let chat = op(&c, "POST", "/v1/chat/completions");
    let e = of(&c, &eu, "POST", "/v1/chat/completions");
    let models = e.models.as_ref().unwrap();
    assert_eq!(models.len(), candidate_models(&[&c], &eu).len());
    let mut allowed = Vec::new();
    for m in models {
        let d = decide(&c, &eu, chat, &Req::new().model(leak(&m.model)));
        assert_eq!(m.decision, d, "{}", m.model);
        if passes(&d) {
            allowed.push(m.model.as_str());
        }
    }
    assert!(allowed.contains(&"gpt-4o-2024-08-06") && !allowed.contains(&ANY_MODEL));
    assert_eq!(e.allowed_models(), allowed);
    assert!(e.allowed());
    assert!(e.refusing_rules().is_empty());
    assert_eq!(e.model_allowed("gpt-4o-2024-08-06"), Some(true));
    // Not a candidate: judged as any other model would be, and no unlisted model passes here.
    assert_eq!(e.model_allowed("gpt-5"), Some(false));
    assert_eq!(e.model_allowed("tomorrows-model"), Some(false));
    // Without residency any model passes: the answer is `*`.
    let global = project("global", Retention::Default);
    let e = of(&c, &global, "POST", "/v1/chat/completions");
    assert_eq!(e.allowed_models(), [ANY_MODEL]);
    assert_eq!(e.model_allowed("tomorrows-model"), Some(true));
    assert_eq!(e.model_allowed("gpt-4o-2024-08-06"), Some(true));
    // An operation that reads no model.
    let e = of(&c, &eu, "GET", "/v1/models");
    assert!(e.models.is_none() && e.allowed());
    assert!(e.allowed_models().is_empty());
    assert_eq!(e.model_allowed("gpt-4o-2024-08-06"), None);
}

#[test]
fn refused_operations_name_the_rules_that_refuse_them() {
    let c = catalog();
    let eu = project("eu", Retention::ModifiedAbuseMonitoring);
    // No model read: the request itself is refused.
    let e = of(&c, &eu, "GET", "/v1/assistants");
    assert!(!e.allowed());
    assert_eq!(rule_names(e.refusing_rules()), ["endpoint_region"]);
    // A model operation where every model is refused.
    let e = of(&c, &eu, "POST", "/v1/completions");
    assert!(e.models.as_ref().unwrap().iter().all(|m| !passes(&m.decision)));
    assert!(!e.allowed());
    assert!(e.allowed_models().is_empty());
    assert_eq!(e.model_allowed("gpt-3.5-turbo-instruct"), Some(false));
    assert_eq!(rule_names(e.refusing_rules()), ["endpoint_region"]);
    let zdr = project("us", Retention::Zdr);
    let e = of(&c, &zdr, "GET", "/v1/responses/{response_id}");
    assert_eq!(rule_names(e.refusing_rules()), ["zdr_endpoint"]);
}

#[test]
fn an_allowed_operation_names_the_rules_that_rewrite_it() {
    let c = catalog();
    // ZDR: store is rewritten to false on the first allowed model.
    let e = of(&c, &project("us", Retention::Zdr), "POST", "/v1/responses");
    assert_eq!(rule_names(e.rewrite_rules()), ["store"]);
    let e = of(
        &c,
        &project("eu", Retention::ModifiedAbuseMonitoring),
        "POST",
        "/v1/responses",
    );
    assert!(e.rewrite_rules().is_empty());
    // An operation that reads store but no model (a catalog edit): the request's own rewrite.
    let mut v: serde_json::Value = serde_json::from_str(policy::catalog::BUILTIN_JSON).unwrap();
    let resp = v["endpoints"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|e| e["id"] == "/v1/responses")
        .unwrap();
    resp["operations"][0]["fields"].as_array_mut().unwrap().remove(0);
    let edited = Catalog::from_json(&v.to_string()).unwrap_or_else(|e| panic!("{:#?}", e.problems));
    let zdr = project("us", Retention::Zdr);
    let e = of(&edited, &zdr, "POST", "/v1/responses");
    assert!(e.models.is_none());
    assert_eq!(e.base.verdict, Verdict::Rewrite);
    assert_eq!(rule_names(e.rewrite_rules()), ["store"]);
    // Refused: nothing is rewritten.
    let mut report = zdr.clone();
    report.mode = Mode::Report;
    let e = of(&edited, &report, "GET", "/v1/responses/{response_id}");
    assert!(!e.allowed() && e.rewrite_rules().is_empty());
}

/// The body checks of `POST /v1/responses`, each probed with the first allowed model.
#[test]
fn markers_and_tools_are_what_decide_says_of_one_hit_each() {
    let c = catalog();
    let resp = op(&c, "POST", "/v1/responses");
    let plan = &c.operation(resp).plan;
    let tool_list = plan.checks.iter().find(|k| k.name == "responses_tools").unwrap();
    let mut hipaa = project("us", Retention::Zdr);
    hipaa.hipaa = true;
    let mut eu = project("eu", Retention::ModifiedAbuseMonitoring);
    eu.image_inputs = None;
    for p in [eu, hipaa] {
        let e = of(&c, &p, "POST", "/v1/responses");
        let model = first_passing(&c, &p, resp, |m| Req::new().model(m));
        let with = |check: &'static str, v: &'static str| {
            decide(&c, &p, resp, &Req::new().model(model).check(check, Some(v)))
        };
        // One marker per role, from the first check that answers it.
        let roles: Vec<_> = e.markers.iter().map(|m| m.role).collect();
        assert_eq!(roles, ["web_search", "image_input"], "{}", p.name);
        let web = &e.markers[0];
        assert_eq!(
            web.values,
            [
                "web_search",
                "web_search_2025_08_26",
                "web_search_preview",
                "web_search_preview_2025_03_11"
            ]
        );
        assert_eq!(web.decision, with("responses_tools", "web_search"), "{}", p.name);
        assert_eq!(web.allowed(), passes(&web.decision));
        let image = &e.markers[1];
        assert_eq!(image.values, ["item_reference"]);
        let unlisted = "(a type not listed as image-free)";
        assert_eq!(image.decision, with("responses_items", unlisted), "{}", p.name);
        assert_eq!(image.allowed(), passes(&image.decision));
        // Every listed tool once (the item tools list the same), then any other.
        let names: Vec<_> = e.tools.iter().map(|t| t.tool.as_str()).collect();
        let mut want: Vec<_> = tool_list.values.iter().map(String::as_str).collect();
        want.push(OTHER_TOOL);
        assert_eq!(names, want);
        for t in &e.tools {
            let tool = leak(&t.tool);
            assert_eq!(t.decision, with("responses_tools", tool), "{} {tool}", p.name);
            assert_eq!(t.allowed(), passes(&t.decision), "{tool}");
        }
        let refused = |tool: &str| !e.tools.iter().find(|t| t.tool == tool).unwrap().allowed();
        assert!(refused(OTHER_TOOL) && !refused("function"));
        if p.hipaa {
            assert!(!web.allowed() && image.allowed());
            assert!(refused("web_search") && !refused("file_search"));
        } else {
            assert!(web.allowed() && !image.allowed());
            assert_eq!(image.decision.denial.as_ref().unwrap().rule, Rule::ImageInput);
        }
    }
    // Chat: function and custom tools only, tried with its first allowed model (the first
    // candidate, computer-use-preview, is one for responses but not for chat).
    let eu = project("eu", Retention::ModifiedAbuseMonitoring);
    let chat = op(&c, "POST", "/v1/chat/completions");
    let e = of(&c, &eu, "POST", "/v1/chat/completions");
    let names: Vec<_> = e.tools.iter().map(|t| t.tool.as_str()).collect();
    assert_eq!(names, ["custom", "function", OTHER_TOOL]);
    let model = first_passing(&c, &eu, chat, |m| Req::new().model(m));
    assert_ne!(model, "computer-use-preview");
    for t in &e.tools {
        let req = Req::new().model(model).check("chat_tools", Some(leak(&t.tool)));
        assert_eq!(t.decision, decide(&c, &eu, chat, &req), "{}", t.tool);
        assert_eq!(t.allowed(), t.tool != OTHER_TOOL, "{}", t.tool);
    }
}

/// Realtime sessions name their model inside the body (a model check).
#[test]
fn a_model_read_from_the_body_is_probed_there() {
    let c = catalog();
    let us = project("us", Retention::ModifiedAbuseMonitoring);
    for (template, check) in [
        ("/v1/realtime/client_secrets", "realtime_session_model"),
        (
            "/v1/realtime/transcription_sessions",
            "realtime_transcription_model",
        ),
    ] {
        let id = op(&c, "POST", template);
        let plan = &c.operation(id).plan;
        assert!(plan
            .checks
            .iter()
            .any(|k| k.name == check && k.kind == CheckKind::Model));
        let e = of(&c, &us, "POST", template);
        let models = e
            .models
            .as_ref()
            .unwrap_or_else(|| panic!("{template} reads a model"));
        for m in models {
            let d = decide(&c, &us, id, &Req::new().check(check, Some(leak(&m.model))));
            assert_eq!(m.decision, d, "{template} {}", m.model);
        }
        assert_eq!(
            e.allowed_models(),
            [
                "gpt-4o-mini-realtime-preview-2024-12-17",
                "gpt-4o-realtime-preview-2024-12-17"
            ],
            "{template}"
        );
    }
}

#[test]
fn upload_purposes_are_judged_as_uploads_naming_them() {
    let c = catalog();
    // Outside US/EU only batch inputs may be uploaded (on the /v1/batches row).
    let jp = project("jp", Retention::ModifiedAbuseMonitoring);
    let e = of(&c, &jp, "POST", "/v1/files");
    assert!(e.allowed());
    let names: Vec<_> = e.purposes.iter().map(|p| p.purpose.as_str()).collect();
    assert_eq!(
        names,
        ["assistants", "batch", "fine-tune", "vision", "user_data", "evals"]
    );
    for p in &e.purposes {
        assert_eq!(p.allowed(), p.purpose == "batch", "{}", p.purpose);
        assert_eq!(p.allowed(), passes(&p.decision));
        if !p.allowed() {
            assert_eq!(rules(&p.decision), ["endpoint_region"], "{}", p.purpose);
        }
    }
    // A refused upload refuses every purpose as it refuses the upload (here: report-deny).
    let mut report = project("us", Retention::Zdr);
    report.mode = Mode::Report;
    let e = of(&c, &report, "POST", "/v1/files");
    assert_eq!(e.base.verdict, Verdict::ReportDeny);
    assert!(!e.purposes.is_empty());
    for p in &e.purposes {
        assert_eq!(p.decision, e.base, "{}", p.purpose);
    }
    // A purpose read from a JSON body: accepted ones, then the refused ones.
    let eu = project("eu", Retention::ModifiedAbuseMonitoring);
    let uploads = op(&c, "POST", "/v1/uploads");
    let e = of(&c, &eu, "POST", "/v1/uploads");
    let names: Vec<_> = e.purposes.iter().map(|p| p.purpose.as_str()).collect();
    assert_eq!(
        names,
        ["assistants", "fine-tune", "vision", "user_data", "evals", "batch"]
    );
    for p in &e.purposes {
        let req = Req::new().field("purpose", FieldValue::String(leak(&p.purpose)));
        assert_eq!(p.decision, decide(&c, &eu, uploads, &req), "{}", p.purpose);
        assert_eq!(p.allowed(), p.purpose != "batch", "{}", p.purpose);
    }
}
