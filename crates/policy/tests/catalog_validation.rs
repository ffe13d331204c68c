//! The catalog document: every problem is reported with its place.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

use policy::catalog::BUILTIN_JSON;
use policy::{BodySource, Catalog, FieldRole};
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

#[test]
fn builtin_is_valid_and_complete() {
    let c = Catalog::builtin().unwrap();
    assert_eq!(c.edition, "seed-004");
    assert_eq!(c.date, "2026-11-22");
    let ids: Vec<&str> = c.regions.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(
        ids,
        ["global", "us", "eu", "ca", "jp", "in", "sg", "kr", "au", "gb", "ae"]
    );
    for r in &c.regions {
        let want_host = if r.id == "global" {
            "api.openai.com".to_owned()
        } else {
            format!("{}.api.openai.com", r.id)
        };
        assert_eq!(r.host, want_host);
        assert_eq!(r.base_url(), format!("https://{want_host}"));
        assert_eq!(r.residency, r.id != "global");
        assert_eq!(
            r.requires_mam_or_zdr,
            !matches!(r.id.as_str(), "global" | "us"),
            "{}",
            r.id
        );
        assert_eq!(
            r.image_inputs_default,
            matches!(r.id.as_str(), "global" | "us"),
            "{}",
            r.id
        );
        assert_eq!(
            r.regional_processing,
            matches!(r.id.as_str(), "us" | "eu"),
            "{}",
            r.id
        );
    }
    assert_eq!(c.endpoints.len(), 22);
    // Plans as the proxy needs them.
    let plan = |m: &str, t: &str| &c.operation(c.operation_by_template(m, t).unwrap()).plan;
    let chat = plan("POST", "/v1/chat/completions");
    assert_eq!(chat.source, BodySource::Json);
    assert_eq!(chat.fields, ["model", "store", "web_search_options"]);
    assert_eq!(
        chat.roles,
        [FieldRole::Model, FieldRole::Store, FieldRole::WebSearch]
    );
    // Body types are judged by allow-lists (body_checks), never by deny-list markers.
    assert!(chat.markers.is_empty());
    let names: Vec<&str> = chat.checks.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "chat_tools",
            "chat_parts",
            "chat_part_file_ids",
            "chat_audio_refs"
        ]
    );
    assert_eq!(chat.checks[1].display(), "messages[].content[].type");
    assert_eq!(chat.checks[0].values, ["custom", "function"]);
    let resp = plan("POST", "/v1/responses");
    assert_eq!(
        resp.fields,
        [
            "model",
            "store",
            "previous_response_id",
            "conversation",
            "background",
            "prompt",
            "include"
        ]
    );
    assert_eq!(
        resp.roles[2..],
        [
            FieldRole::Stateful(0),
            FieldRole::Stateful(1),
            FieldRole::Stateful(2),
            FieldRole::Stateful(3),
            FieldRole::Include
        ]
    );
    for t in [
        "/v1/audio/transcriptions",
        "/v1/audio/translations",
        "/v1/images/edits",
        "/v1/images/variations",
    ] {
        let p = plan("POST", t);
        assert_eq!(
            (p.source, p.fields.as_slice()),
            (BodySource::Multipart, &["model".to_owned()][..]),
            "{t}"
        );
    }
    let rt = plan("GET", "/v1/realtime");
    assert_eq!(
        (rt.source, rt.fields.as_slice()),
        (BodySource::Query, &["model".to_owned()][..])
    );
    assert_eq!(plan("POST", "/v1/realtime/sessions").source, BodySource::Json);
    assert_eq!(plan("POST", "/v1/files").source, BodySource::None);
    for op in &c.operations {
        if op.method != "POST" {
            assert_eq!(
                op.plan.source,
                if op.template == "/v1/realtime" {
                    BodySource::Query
                } else {
                    BodySource::None
                }
            );
        }
        assert_eq!(op.plan.fields.len(), op.plan.roles.len());
    }
}

#[test]
fn unknown_region_with_place_and_hint() {
    let mut v = doc();
    let i = ep_index(&v, "/v1/files");
    v["endpoints"][i]["regions"] = json!(["us", "uk", "mars"]);
    let p = problems(&v);
    assert!(
        p.contains(&format!(
            "endpoints[{i}].regions[1]: unknown region \"uk\", did you mean \"gb\"?"
        )),
        "{p:#?}"
    );
    assert!(
        p.contains(&format!("endpoints[{i}].regions[2]: unknown region \"mars\"")),
        "{p:#?}"
    );
}

#[test]
fn many_problems_at_once() {
    let mut v = doc();
    v["date"] = json!("22.11.2026");
    v["region_sets"]["table2_all"] = json!(["us", "us", "@nope"]);
    v["regions"][3]["host"] = json!("https://ca.api.openai.com");
    v["regions"][4]["id"] = json!("ca");
    let chat = ep_index(&v, "/v1/chat/completions");
    let resp = ep_index(&v, "/v1/responses");
    let files = ep_index(&v, "/v1/files");
    let models = ep_index(&v, "/v1/models");
    v["endpoints"][chat]["store"]["true_allowed_regions"] = json!(["global", "usa"]);
    v["endpoints"][chat]["operations"][0]["body_checks"] = json!(["chat_parts", "images", "chat_parts"]);
    v["body_checks"]["chat_parts"]["absent"] = json!("image_url");
    v["body_checks"]["chat_tools"]["tools"]["function"]["feature"] = json!("nope");
    v["body_checks"]["moderation_inputs"]["path"] = json!("input[]x");
    v["endpoints"][chat]["operations"][1]["path"] = json!("/v1/chat//completions");
    v["endpoints"][resp]["operations"][0]["fields"][2]["name"] = json!("previous_response");
    v["endpoints"][resp]["operations"][1]["method"] = json!("get");
    v["endpoints"][files]["operations"][0]["fields"] = json!([{"name": "store", "role": "store"}]);
    v["endpoints"][files]["operations"][1]["path"] = json!("/v1/files/{x}");
    v["endpoints"][files]["operations"][2]["path"] = json!("/v1/files/{file}");
    v["endpoints"][models]["operations"][0]["method"] = json!("POST");
    let p = problems(&v);
    let want = [
        "date: \"22.11.2026\" is not YYYY-MM-DD".to_owned(),
        "region_sets.table2_all[1]: region \"us\" listed twice".to_owned(),
        "region_sets.table2_all[2]: a region set lists region ids, not other sets".to_owned(),
        "regions[3].host: \"https://ca.api.openai.com\" is not a host name (no scheme, no path)".to_owned(),
        "regions[4].id: duplicate region \"ca\"".to_owned(),
        format!("endpoints[{chat}].store.true_allowed_regions[1]: unknown region \"usa\", did you mean \"us\"?"),
        format!("endpoints[{chat}].operations[0].body_checks[1]: unknown body check \"images\" (known: chat_audio_refs, chat_part_file_ids, chat_parts, chat_tools, realtime_input_transcription_model, realtime_session_model, realtime_session_transcription_model, realtime_transcription_model, responses_item_tools, responses_items, responses_output_file_ids, responses_output_parts, responses_part_file_ids, responses_parts, responses_screenshot_file_ids, responses_tool_vector_stores, responses_tools)"),
        format!("endpoints[{chat}].operations[0].body_checks[2]: \"chat_parts\" listed twice"),
        "body_checks.chat_parts.absent: \"image_url\" is not one of the listed types".to_owned(),
        "body_checks.chat_tools.tools.function.feature: unknown feature \"nope\"".to_owned(),
        "body_checks.moderation_inputs.path: \"input[]x\" is not member names joined by '.', each optionally followed by []".to_owned(),
        format!("endpoints[{chat}].operations[1].path: path \"/v1/chat//completions\" has an empty segment"),
        format!(
            "endpoints[{resp}].operations[0].fields[2].name: \"previous_response\" is not one of the endpoint's stateful_fields"
        ),
        format!("endpoints[{resp}].operations[1].method: \"get\" is not one of GET, POST, PUT, PATCH, DELETE"),
        format!("endpoints[{files}].operations[0].fields: fields need a source (json, multipart or query)"),
        format!("endpoints[{files}].operations[0].fields[0].role: role store but the endpoint has no store rule"),
        format!(
            "endpoints[{files}].operations[2].path: GET /v1/files/{{file}} is already defined at endpoints[{files}].operations[1]"
        ),
        format!(
            "endpoints[{models}].operations[0]: a content_free endpoint may only have GET operations without a body source"
        ),
    ];
    for w in &want {
        assert!(p.contains(w), "missing {w:?} in {p:#?}");
    }
}

#[test]
fn unknown_fields_are_errors() {
    let mut v = doc();
    v["endpoints"][0]["zdr_elegible"] = json!(true);
    let p = problems(&v);
    assert_eq!(p.len(), 1);
    assert!(p[0].starts_with("catalog: unknown field `zdr_elegible`"), "{p:?}");
    let mut v = doc();
    v["regions"][0]["colour"] = json!("blue");
    assert!(problems(&v)[0].contains("unknown field `colour`"));
    let mut v = doc();
    v["endpoints"][0]["operations"][0]["source"] = json!("xml");
    assert!(problems(&v)[0].contains("unknown variant `xml`"));
    assert!(Catalog::from_json("{").is_err());
    assert!(Catalog::from_json("[]").is_err());
}

#[test]
fn stateful_and_template_rules() {
    let mut v = doc();
    let resp = ep_index(&v, "/v1/responses");
    v["endpoints"][resp]["operations"][0]["path"] = json!("/v1/responses/{a}/{a}");
    v["endpoints"][resp]["operations"][1]["path"] = json!("/v2/responses");
    v["endpoints"][resp]["operations"][2]["path"] = json!("/v1/responses/%7B");
    v["endpoints"][resp]["operations"][3]["path"] = json!("/v1/responses/{ID}");
    let p = problems(&v);
    for w in [
        format!("endpoints[{resp}].operations[0].path: path \"/v1/responses/{{a}}/{{a}}\": parameter {{a}} appears twice"),
        format!("endpoints[{resp}].operations[1].path: path \"/v2/responses\" must start with /v1/"),
        format!("endpoints[{resp}].operations[2].path: path \"/v1/responses/%7B\": segment \"%7B\" is not a canonical literal"),
        format!("endpoints[{resp}].operations[3].path: path \"/v1/responses/{{ID}}\": parameter {{ID}} must be {{lowercase_name}}"),
    ] {
        assert!(p.contains(&w), "missing {w:?} in {p:#?}");
    }
}

#[test]
fn features_are_data() {
    let c = Catalog::builtin().unwrap();
    let names: Vec<&str> = c.features.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "Scale Tier",
            "Structured Outputs (excluding schema)",
            "/v1/responses File Search",
            "/v1/responses Web Search",
            "File Search",
            "File Uploads",
            "Supported Input Modalities"
        ]
    );
}

#[test]
fn every_row_needs_a_known_source() {
    // Each endpoint row, region and feature of the builtin catalog names a source it cites.
    let c = Catalog::builtin().unwrap();
    for e in &c.endpoints {
        assert!(!e.sources.is_empty(), "{}", e.id);
        for m in e.models.iter().flatten() {
            for s in e.sources_of_model(m) {
                assert!(c.source(s).is_some(), "{} {m}: {s}", e.id);
            }
        }
    }
    for r in &c.regions {
        assert!(!r.sources.is_empty(), "{}", r.id);
    }

    let mut v = doc();
    let chat = ep_index(&v, "/v1/chat/completions");
    v["endpoints"][chat]["sources"] = json!([]);
    v["regions"][2]["sources"] = json!(["nowhere"]);
    v["features"][0].as_object_mut().unwrap().remove("sources");
    let p = problems(&v);
    assert!(
        p.contains(&format!(
            "endpoints[{chat}].sources: every row needs at least one source (an id of `sources`)"
        )),
        "{p:?}"
    );
    assert!(
        p.contains(&"regions[2].sources[0]: unknown source \"nowhere\"".to_owned()),
        "{p:?}"
    );
    assert!(
        p.contains(
            &"features[0].sources: every row needs at least one source (an id of `sources`)".to_owned()
        ),
        "{p:?}"
    );
}

#[test]
fn model_sources_override_the_row_and_must_name_its_models() {
    let mut v = doc();
    let chat = ep_index(&v, "/v1/chat/completions");
    v["endpoints"][chat]["model_sources"] = json!({"gpt-4.1-2025-04-14": ["seed-001"]});
    let c = Catalog::from_json(&v.to_string()).unwrap();
    let e = c.endpoint("/v1/chat/completions").unwrap();
    assert_eq!(e.sources_of_model("gpt-4.1-2025-04-14"), ["seed-001"]);
    assert_eq!(e.sources_of_model("gpt-4o-2024-08-06"), ["seed-004"]);

    v["endpoints"][chat]["model_sources"] = json!({"gpt-9": ["seed-001"], "gpt-4o-2024-08-06": []});
    let p = problems(&v);
    assert!(
        p.contains(&format!(
            "endpoints[{chat}].model_sources.gpt-9: \"gpt-9\" is not one of the endpoint's models"
        )),
        "{p:?}"
    );
    assert!(
        p.contains(&format!(
            "endpoints[{chat}].model_sources.gpt-4o-2024-08-06: every row needs at least one source (an id of `sources`)"
        )),
        "{p:?}"
    );
}

#[test]
fn every_embedded_edition_is_valid_named_and_sourced() {
    assert_eq!(
        policy::catalog::EDITIONS[0].0,
        "seed-004",
        "the seed edition stays the default"
    );
    for (name, _) in policy::catalog::EDITIONS {
        let c = policy::catalog::edition(name).unwrap().unwrap();
        assert_eq!(&c.edition, name);
        for s in &c.sources {
            assert!(s.url.starts_with("https://"), "{name}: {}", s.id);
            assert!(!s.date.is_empty(), "{name}: {}", s.id);
        }
        for e in &c.endpoints {
            assert!(!e.sources.is_empty(), "{name}: {}", e.id);
        }
        for r in &c.regions {
            assert!(!r.sources.is_empty(), "{name}: {}", r.id);
        }
    }
    assert!(policy::catalog::edition("2099").is_none());
}

/// Issue 12: the rows an operation is also offered under, upload purposes and nested models
/// are data too, and their mistakes are reported with their place.
#[test]
fn other_rows_purposes_and_model_checks_are_validated() {
    let mut v = doc();
    let files = ep_index(&v, "/v1/files");
    let ops = v["endpoints"][files]["operations"].as_array().unwrap().clone();
    let at = |m: &str, t: &str| {
        ops.iter()
            .position(|o| o["method"] == m && o["path"] == t)
            .unwrap()
    };
    let (upload, read, create) = (
        at("POST", "/v1/files"),
        at("GET", "/v1/files/{file_id}"),
        at("POST", "/v1/uploads"),
    );
    v["endpoints"][files]["operations"][upload]["also_offered_with"] =
        json!({"endpoint": "/v1/batches", "purpose": "Batch"});
    v["endpoints"][files]["operations"][read]["also_offered_with"] = json!({"endpoint": "/v1/batch"});
    v["endpoints"][files]["operations"][create]["fields"] = json!([]);
    v["body_checks"]["realtime_session_model"]["path"] = json!("session[]");
    let realtime = ep_index(&v, "/v1/realtime");
    v["endpoints"][realtime]["operations"][1]["body_checks"] = json!(["realtime_transcription_model"]);
    let p = problems(&v);
    let want = [
        format!(
            "endpoints[{files}].operations[{upload}].also_offered_with.purpose: \"Batch\" is not one of the operation's batch_input purposes"
        ),
        format!("endpoints[{files}].operations[{read}].also_offered_with.endpoint: unknown endpoint \"/v1/batch\""),
        format!("endpoints[{files}].operations[{create}].purposes: purposes need a field with role purpose"),
        "body_checks.realtime_session_model.path: a model check's path has no []".to_owned(),
        format!(
            "endpoints[{realtime}].operations[1].body_checks: an operation's model is read in one place: one model field or one model check"
        ),
    ];
    for w in &want {
        assert!(p.contains(w), "missing {w:?} in {p:#?}");
    }
}

#[test]
fn a_model_judged_on_another_row_names_a_known_row() {
    let mut v = doc();
    v["body_checks"]["realtime_input_transcription_model"]["row"] = json!("/v1/audio/transcription");
    v["body_checks"]["chat_parts"]["row"] = json!("/v1/audio/transcriptions");
    let p = problems(&v);
    assert!(
        p.iter().any(|x| {
            x.starts_with(
            "body_checks.realtime_input_transcription_model.row: unknown endpoint \"/v1/audio/transcription\""
        )
        }),
        "{p:#?}"
    );
    assert!(
        p.contains(&"body_checks.chat_parts.row: only a model check is judged on another row".to_owned()),
        "{p:#?}"
    );
}
