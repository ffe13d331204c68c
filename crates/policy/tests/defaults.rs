//! Defaults OpenAI documents: an absent model is judged as the model OpenAI would use, where
//! the catalog names one (`/v1/moderations` → `omni-moderation-latest`); elsewhere absent stays
//! refused.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{catalog, decide, op, project, rules, Req};
use policy::{FieldValue, Retention, Verdict};

#[test]
fn an_absent_moderation_model_is_omni_moderation_latest() {
    let c = catalog();
    let m = op(&c, "POST", "/v1/moderations");
    assert_eq!(
        c.operation(m).plan.model_default.as_deref(),
        Some("omni-moderation-latest")
    );
    for region in common::TABLE2_ALL {
        let p = project(region, Retention::Zdr);
        assert_eq!(decide(&c, &p, m, &Req::new()).verdict, Verdict::Allow, "{region}");
        // null is not absent: still refused.
        let d = decide(&c, &p, m, &Req::new().field("model", FieldValue::Null));
        assert_eq!(rules(&d), ["model_not_eligible"], "{region}");
    }
    // Where the default is not eligible the message says it was the default.
    let jp = project("au", Retention::Zdr);
    let d = decide(&c, &jp, m, &Req::new());
    assert_eq!(rules(&d), ["endpoint_region"]);
}

#[test]
fn without_a_documented_default_absent_stays_refused() {
    let c = catalog();
    let eu = project("eu", Retention::ModifiedAbuseMonitoring);
    for (method, path) in [
        ("POST", "/v1/embeddings"),
        ("POST", "/v1/chat/completions"),
        ("POST", "/v1/images/generations"),
        ("POST", "/v1/audio/speech"),
    ] {
        let o = op(&c, method, path);
        assert_eq!(c.operation(o).plan.model_default, None, "{path}");
        let d = decide(&c, &eu, o, &Req::new());
        assert!(rules(&d).contains(&"model_not_eligible"), "{path}: {d:?}");
        assert!(
            d.denial.unwrap().message.contains("a request without a model"),
            "{path}"
        );
    }
}

/// Issue 12 item 2: a batch input line meets its endpoint's row and the /v1/batches row.
#[test]
fn batch_lines_meet_the_batches_row_too() {
    let c = catalog();
    let eu = project("eu", Retention::ModifiedAbuseMonitoring);
    let line = |m, p| policy::batch_line(&c, &eu, op(&c, m, p), None);
    // Embeddings and moderations snapshots are not on the /v1/batches row.
    for (path, model) in [
        ("/v1/embeddings", Some("text-embedding-3-small")),
        ("/v1/moderations", Some("omni-moderation-latest")),
        ("/v1/moderations", None),
    ] {
        let d = policy::batch_line(&c, &eu, op(&c, "POST", path), model).unwrap();
        assert_eq!(d.rule, policy::Rule::ModelNotEligible, "{path}");
        assert!(d.message.contains("/v1/batches"), "{}", d.message);
    }
    let chat = op(&c, "POST", "/v1/chat/completions");
    assert_eq!(policy::batch_line(&c, &eu, chat, Some("gpt-4o-2024-08-06")), None);
    // Not batchable at all.
    let d = line("POST", "/v1/audio/speech").unwrap();
    assert_eq!(d.rule, policy::Rule::UnknownEndpoint);
    assert!(d.message.contains("batchable endpoints:"), "{}", d.message);
    // Without residency the batches row's model list does not apply.
    let g = project("global", Retention::Default);
    let emb = op(&c, "POST", "/v1/embeddings");
    assert_eq!(
        policy::batch_line(&c, &g, emb, Some("text-embedding-3-small")),
        None
    );
}
