//! Catalog lookups other crates call (`catalog show`, the proxy's `[catalog] edition`), pinned
//! where `cargo mutants` found them untested in this crate.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::catalog;
use policy::catalog::edition;
use policy::{Catalog, CatalogError};

#[test]
fn editions_by_name() {
    let seed = edition("seed-004").expect("seed-004 is embedded").expect("valid");
    assert_eq!(seed, Catalog::builtin().unwrap());
    assert!(edition("seed-003").is_none());
    assert!(edition("").is_none());
}

#[test]
fn model_eligibility_per_endpoint() {
    let c = catalog();
    let chat = c.endpoint("/v1/chat/completions").unwrap();
    assert!(chat.model_eligible("gpt-4o-2024-08-06"));
    assert!(!chat.model_eligible("gpt-4o"));
    assert!(!chat.model_eligible(""));
    // No model list: every model.
    let without = c
        .endpoints
        .iter()
        .find(|e| e.models.is_none())
        .expect("an endpoint without a model list");
    assert!(without.model_eligible("anything"));
}

#[test]
fn errors_list_every_problem_on_its_own_line() {
    let e = CatalogError {
        problems: vec!["a: one".into(), "b: two".into()],
    };
    assert_eq!(e.to_string(), "a: one\nb: two");
    let e = Catalog::from_json("{").unwrap_err();
    assert!(e.to_string().starts_with("catalog: "), "{e}");
}

#[test]
fn sources_by_id() {
    let c = catalog();
    assert!(c.sources.len() >= 2);
    for s in &c.sources {
        assert_eq!(c.source(&s.id).map(|f| &f.id), Some(&s.id));
    }
    assert!(c.source("no-such-source").is_none());
}
