//! The names a decision is reported under are part of the external contract
//! (INTERFACE.md: `x-residency-decision`, `x-residency-rule`), and so is how a model name is
//! quoted back. The proxy's black-box tests see them too, but only `cargo test -p policy`
//! runs when policy changes alone, and `cargo mutants` showed these could change unnoticed.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use policy::{Retention, Rule, RuleSet, Verdict};

#[test]
fn verdict_wire_values() {
    let got: Vec<&str> = [
        Verdict::Allow,
        Verdict::Rewrite,
        Verdict::Deny,
        Verdict::ReportDeny,
    ]
    .iter()
    .map(|v| v.as_str())
    .collect();
    assert_eq!(got, ["allow", "rewrite", "deny", "report-deny"]);
}

const IDS: [(Rule, &str); 12] = [
    (Rule::NoProject, "no_project"),
    (Rule::UnknownEndpoint, "unknown_endpoint"),
    (Rule::EndpointRegion, "endpoint_region"),
    (Rule::ModelNotEligible, "model_not_eligible"),
    (Rule::ZdrEndpoint, "zdr_endpoint"),
    (Rule::ZdrModel, "zdr_model"),
    (Rule::StatefulFeature, "stateful_feature"),
    (Rule::Store, "store"),
    (Rule::ImageInput, "image_input"),
    (Rule::Hipaa, "hipaa"),
    (Rule::Alias, "alias"),
    (Rule::EncryptedReasoning, "encrypted_reasoning"),
];

#[test]
fn rule_wire_ids() {
    for (rule, id) in IDS {
        assert_eq!(rule.as_str(), id);
    }
}

/// A rule set holds exactly the rules put in, lists them in `Rule::ALL` order and joins
/// their ids with commas.
#[test]
fn rule_sets() {
    let empty = RuleSet::default();
    assert!(empty.is_empty());
    assert_eq!(empty.iter().count(), 0);
    assert_eq!(empty.header_value(), "");
    for (i, (a, a_id)) in IDS.iter().enumerate() {
        let mut one = RuleSet::default();
        one.insert(*a);
        assert!(!one.is_empty());
        assert_eq!(one.header_value(), *a_id);
        assert_eq!(one.iter().collect::<Vec<_>>(), [*a]);
        for (b, _) in IDS {
            assert_eq!(one.contains(b), b == *a, "{a:?} {b:?}");
        }
        for (b, b_id) in &IDS[i + 1..] {
            let mut two = RuleSet::default();
            two.insert(*b);
            two.insert(*a);
            two.insert(*b);
            assert_eq!(two.header_value(), format!("{a_id},{b_id}"));
            assert_eq!(two.iter().collect::<Vec<_>>(), [*a, *b]);
        }
    }
}

fn model_message(model: &'static str) -> String {
    let c = catalog();
    let d = decide(
        &c,
        &project("eu", Retention::Zdr),
        op(&c, "POST", "/v1/embeddings"),
        &Req::new().model(model),
    );
    d.denial.unwrap().message
}

/// Long model names are cut at 128 bytes, on a character boundary, and marked with `…`.
#[test]
fn long_model_names_are_cut_on_a_char_boundary() {
    let leak = |s: String| -> &'static str { Box::leak(s.into_boxed_str()) };
    let x128 = "x".repeat(128);
    let m = model_message(leak(x128.clone()));
    assert!(m.starts_with(&format!("model \"{x128}\" is not eligible")), "{m}");
    let m = model_message(leak("x".repeat(129)));
    assert!(
        m.starts_with(&format!("model \"{x128}…\" is not eligible")),
        "{m}"
    );
    // 'é' is 2 bytes: 64 of them end exactly at 128; after an 'a' the 128th byte is inside one.
    let e64 = "é".repeat(64);
    let m = model_message(leak("é".repeat(100)));
    assert!(m.starts_with(&format!("model \"{e64}…\" is not eligible")), "{m}");
    let m = model_message(leak(format!("a{}", "é".repeat(100))));
    assert!(
        m.starts_with(&format!("model \"a{}…\" is not eligible", "é".repeat(63))),
        "{m}"
    );
    let m = model_message(leak(format!("a{}", "é".repeat(63))));
    assert!(
        m.starts_with(&format!("model \"a{}\" is not eligible", "é".repeat(63))),
        "{m}"
    );
}

/// A refused path says why (the message reaches the client).
#[test]
fn non_canonical_path_messages() {
    let c = catalog();
    let why = |p: &str| c.classify("GET", p).unwrap_err().to_string();
    for (p, reason) in [
        ("v1/models", "the path must start with /"),
        ("/v1//models", "empty path segment (// or a trailing /)"),
        ("/v1/models/", "empty path segment (// or a trailing /)"),
        ("/v1/./models", "dot segment (. or ..)"),
        ("/v1/../models", "dot segment (. or ..)"),
        ("/v1/mod%65ls", "percent-encoding is not accepted"),
        ("/v1/models;x", "path parameters (;) are not accepted"),
        ("/v1\\models", "backslash in the path"),
        ("/v1/models/a b", "character outside A-Za-z0-9-._~:@ in the path"),
    ] {
        assert_eq!(why(p), format!("request path is not canonical: {reason}"), "{p}");
    }
    assert_eq!(why("/v1/nothing"), "endpoint is not in the catalog");
}
