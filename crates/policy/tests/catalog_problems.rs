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

#[test]
fn stateful_fields_name_their_types() {
    let mut v = doc();
    let i = ep_index(&v, "/v1/responses");
    let fields = v["endpoints"][i]["stateful_fields"].as_array().unwrap().clone();
    let k = fields.iter().position(|f| f["field"] == "background").unwrap();
    let want = format!(
        "endpoints[{i}].stateful_fields[{k}].types: must name the field's JSON types (boolean among them when only_true)"
    );
    v["endpoints"][i]["stateful_fields"][k]["types"] = json!([]);
    has(&problems(&v), &want);
    v["endpoints"][i]["stateful_fields"][k]["types"] = json!(["string"]);
    has(&problems(&v), &want);
}

#[test]
fn a_content_free_endpoint_carries_no_content_rules() {
    let extras = [
        ("models", json!(["gpt-4o"])),
        ("store", json!({"field": "store", "default": false})),
        ("stateful_fields", json!([{"field": "x", "types": ["string"]}])),
        ("always_image_input", json!(true)),
    ];
    for (key, value) in extras {
        let mut v = doc();
        let i = ep_index(&v, "/v1/models");
        assert_eq!(v["endpoints"][i]["content_free"], json!(true));
        v["endpoints"][i][key] = value;
        has(
            &problems(&v),
            &format!("endpoints[{i}]: a content_free endpoint cannot have models, store, stateful_fields or image input"),
        );
    }
}

#[test]
fn a_store_field_is_the_endpoints_store_field() {
    let mut v = doc();
    let i = ep_index(&v, "/v1/chat/completions");
    let fields = v["endpoints"][i]["operations"][0]["fields"]
        .as_array()
        .unwrap()
        .clone();
    let k = fields.iter().position(|f| f["role"] == "store").unwrap();
    v["endpoints"][i]["operations"][0]["fields"][k]["name"] = json!("store2");
    has(
        &problems(&v),
        &format!("endpoints[{i}].operations[0].fields[{k}].name: the endpoint's store field is \"store\", not \"store2\""),
    );
}

/// Named markers: referenced once each, from json operations only.
#[test]
fn markers_are_named_once_on_json_operations() {
    let mut v = doc();
    v["markers"] = json!({"img": {"key": "type", "values": ["input_image"], "role": "image_input"}});
    let chat = ep_index(&v, "/v1/chat/completions");
    assert_eq!(v["endpoints"][chat]["operations"][0]["source"], json!("json"));
    v["endpoints"][chat]["operations"][0]["markers"] = json!(["img"]);
    Catalog::from_json(&v.to_string()).unwrap_or_else(|e| panic!("{:#?}", e.problems));

    v["endpoints"][chat]["operations"][0]["markers"] = json!(["img", "img"]);
    has(
        &problems(&v),
        &format!("endpoints[{chat}].operations[0].markers[1]: marker \"img\" listed twice"),
    );

    let mut v = doc();
    v["markers"] = json!({"img": {"key": "type", "values": ["input_image"], "role": "image_input"}});
    let files = ep_index(&v, "/v1/audio/transcriptions");
    assert_eq!(
        v["endpoints"][files]["operations"][0]["source"],
        json!("multipart")
    );
    v["endpoints"][files]["operations"][0]["markers"] = json!(["img"]);
    has(
        &problems(&v),
        &format!("endpoints[{files}].operations[0].markers: markers are only looked for in json bodies"),
    );
}

#[test]
fn a_stateful_check_lists_no_types() {
    for (key, value) in [
        ("image_free", json!(["input_text"])),
        ("stateful", json!(["input_audio"])),
        ("absent", json!("input_audio")),
        ("tools", json!({"function": {}})),
    ] {
        let mut v = doc();
        assert_eq!(v["body_checks"]["chat_audio_refs"]["kind"], json!("stateful"));
        v["body_checks"]["chat_audio_refs"][key] = value;
        has(
            &problems(&v),
            "body_checks.chat_audio_refs: a stateful check lists nothing: any non-null value counts",
        );
    }
}

/// The scanner follows at most 64 path positions per operation (one per step, plus the key).
#[test]
fn body_check_positions_are_capped() {
    let with_steps = |n: usize| {
        let mut v = doc();
        let path = vec!["a"; n].join(".");
        v["body_checks"]["deep"] = json!({"path": path, "key": "k", "kind": "stateful"});
        let i = ep_index(&v, "/v1/embeddings");
        v["endpoints"][i]["operations"][0]["body_checks"] = json!(["deep"]);
        (v, i)
    };
    let (v, _) = with_steps(63);
    Catalog::from_json(&v.to_string()).unwrap_or_else(|e| panic!("{:#?}", e.problems));
    let (v, i) = with_steps(64);
    assert_eq!(
        problems(&v),
        [format!(
            "endpoints[{i}].operations[0].body_checks: 65 path positions; the scanner follows at most 64"
        )]
    );
}

#[test]
fn a_check_lists_at_most_64_values() {
    let with_values = |n: usize| {
        let mut v = doc();
        let types: Vec<String> = (0..n).map(|i| format!("t{i}")).collect();
        v["body_checks"]["chat_parts"]["image_free"] = json!(types);
        v
    };
    let want = "body_checks.chat_parts: at most 64 values per check".to_owned();
    let v = with_values(64);
    if let Err(e) = Catalog::from_json(&v.to_string()) {
        assert!(!e.problems.contains(&want), "{:#?}", e.problems);
    }
    has(&problems(&with_values(65)), &want);
}

#[test]
fn a_model_check_lists_nothing() {
    for (key, value) in [
        ("image_free", json!(["input_text"])),
        ("tools", json!({"function": {}})),
    ] {
        let mut v = doc();
        assert_eq!(v["body_checks"]["realtime_session_model"]["kind"], json!("model"));
        v["body_checks"]["realtime_session_model"][key] = value;
        has(
            &problems(&v),
            "body_checks.realtime_session_model: a model check lists nothing: the member is the model",
        );
    }
}
