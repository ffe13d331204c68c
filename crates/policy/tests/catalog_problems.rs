//! Catalog problems that `catalog_validation.rs` did not pin, found with `cargo mutants` on
//! `catalog/validate.rs`: each is a check that could stop reporting a broken row unnoticed.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use policy::catalog::BUILTIN_JSON;
use policy::Catalog;
use serde_json::{json, Value};

fn doc() -> Value {
    serde_json::from_str(BUILTIN_JSON).unwrap()
}

fn problems(v: &Value) -> Vec<String> {
    Catalog::from_json(&v.to_string())
        .expect_err("should be invalid")
        .problems
}

fn ep_index(v: &Value, id: &str) -> usize {
    v["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .position(|e| e["id"] == id)
        .unwrap()
}

fn has(p: &[String], want: &str) {
    assert!(p.iter().any(|x| x == want), "missing {want:?} in {p:#?}");
}

#[test]
fn empty_texts_are_reported() {
    for edition in ["", "  "] {
        let mut v = doc();
        v["edition"] = json!(edition);
        has(&problems(&v), "edition: must not be empty");
    }
}

#[test]
fn model_lists_refuse_blank_spaced_and_repeated_names() {
    let mut v = doc();
    let i = ep_index(&v, "/v1/embeddings");
    v["endpoints"][i]["models"] = json!(["", " text-embedding-3-small", "text-embedding-3-large ", "a", "a"]);
    let p = problems(&v);
    let place = format!("endpoints[{i}].models");
    has(
        &p,
        &format!("{place}[0]: \"\" is empty or has surrounding spaces"),
    );
    has(
        &p,
        &format!("{place}[1]: \" text-embedding-3-small\" is empty or has surrounding spaces"),
    );
    has(
        &p,
        &format!("{place}[2]: \"text-embedding-3-large \" is empty or has surrounding spaces"),
    );
    has(&p, &format!("{place}[4]: \"a\" listed twice"));
    assert!(!p.iter().any(|x| x.starts_with(&format!("{place}[3]"))), "{p:#?}");
}

#[test]
fn near_miss_regions_get_a_hint_only_when_the_hinted_region_exists() {
    let hints = [
        ("uk", "gb"),
        ("europe", "eu"),
        ("usa", "us"),
        ("japan", "jp"),
        ("korea", "kr"),
    ];
    let mut v = doc();
    let i = ep_index(&v, "/v1/files");
    v["endpoints"][i]["regions"] = json!(hints.iter().map(|(name, _)| *name).collect::<Vec<_>>());
    let p = problems(&v);
    for (j, (name, hint)) in hints.iter().enumerate() {
        has(
            &p,
            &format!("endpoints[{i}].regions[{j}]: unknown region \"{name}\", did you mean \"{hint}\"?"),
        );
    }
    // Without a `kr` region, "korea" gets no hint towards it.
    let mut v = doc();
    let regions = v["regions"].as_array_mut().unwrap();
    regions.retain(|r| r["id"] != "kr");
    v["endpoints"][i]["regions"] = json!(["korea"]);
    has(
        &problems(&v),
        &format!("endpoints[{i}].regions[0]: unknown region \"korea\""),
    );
}

#[test]
fn dot_segments_are_not_literals() {
    for seg in [".", ".."] {
        let mut v = doc();
        let i = ep_index(&v, "/v1/files");
        let path = format!("/v1/files/{seg}/content");
        v["endpoints"][i]["operations"][0]["path"] = json!(path);
        has(
            &problems(&v),
            &format!(
                "endpoints[{i}].operations[0].path: path \"{path}\": segment \"{seg}\" is not a canonical literal"
            ),
        );
    }
}

#[test]
fn a_region_without_residency_has_no_regional_storage_or_processing() {
    for flag in ["regional_storage", "regional_processing"] {
        let mut v = doc();
        assert_eq!(v["regions"][0]["residency"], json!(false));
        v["regions"][0]["regional_storage"] = json!(false);
        v["regions"][0]["regional_processing"] = json!(false);
        v["regions"][0][flag] = json!(true);
        has(
            &problems(&v),
            "regions[0]: a region without residency cannot have regional storage or processing",
        );
    }
}

#[test]
fn endpoint_ids_are_v1_paths_without_spaces() {
    for id in ["/v2/files", "v1/files", "/v1/fi les"] {
        let mut v = doc();
        let i = ep_index(&v, "/v1/files");
        v["endpoints"][i]["id"] = json!(id);
        has(
            &problems(&v),
            &format!("endpoints[{i}].id: \"{id}\" must be a path starting with /v1/"),
        );
    }
}
