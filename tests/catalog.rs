//! `catalog show` and `catalog diff` as a user runs them: the real binary, real catalog files.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Output;
use support::{config_text, output_text, two_project_config, TempDir};

fn seed_catalog() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("config/catalog.json")
}

fn run(args: &[&str]) -> Output {
    support::run(args, &[], None)
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn both(o: &Output) -> String {
    output_text(o)
}

fn write(dir: &TempDir, name: &str, text: &str) -> PathBuf {
    dir.write(name, text)
}

/// The seed catalog with `edit` applied to its JSON.
fn edited_catalog(dir: &TempDir, name: &str, edit: impl FnOnce(&mut Value)) -> PathBuf {
    let mut v: Value = serde_json::from_str(&std::fs::read_to_string(seed_catalog()).unwrap()).unwrap();
    edit(&mut v);
    write(dir, name, &v.to_string())
}

fn endpoint<'a>(v: &'a mut Value, id: &str) -> &'a mut Value {
    v["endpoints"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|e| e["id"] == id)
        .unwrap()
}

fn show_json(args: &[&str]) -> Value {
    let mut all = vec!["catalog", "show"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--format", "json"]);
    let o = run(&all);
    assert_eq!(o.status.code(), Some(0), "{}", both(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

fn op<'a>(v: &'a Value, method: &str, path: &str) -> &'a Value {
    v["operations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["method"] == method && o["path"] == path)
        .unwrap_or_else(|| panic!("{method} {path} not shown"))
}

fn strings(v: &Value) -> Vec<&str> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap())
        .collect()
}

#[test]
fn show_for_a_configured_project_agrees_with_explain() {
    let dir = TempDir::new("show-config");
    let cfg = write(
        &dir,
        "c.toml",
        &config_text(&two_project_config(
            "http://127.0.0.1:1",
            "http://127.0.0.1:2",
            "",
        )),
    );
    let cfg_s = cfg.to_str().unwrap();
    let v = show_json(&["--config", cfg_s, "--project", "eu-zdr"]);
    assert_eq!(v["project"]["region"], "eu");
    assert_eq!(v["project"]["retention"], "zdr");
    assert_eq!(v["catalog"]["edition"], "seed-004");

    let chat = op(&v, "POST", "/v1/chat/completions");
    assert_eq!(chat["decision"], "allow");
    assert_eq!(strings(&chat["sources"]), ["seed-004"]);
    assert!(strings(&chat["models"]).contains(&"gpt-4o-2024-08-06"));
    assert!(!strings(&chat["models"]).contains(&"gpt-4o"));
    // Under ZDR an absent store on /v1/responses is rewritten.
    let responses = op(&v, "POST", "/v1/responses");
    assert_eq!(responses["decision"], "rewrite");
    assert_eq!(strings(&responses["rules"]), ["store"]);
    let files = op(&v, "POST", "/v1/files");
    assert_eq!(files["decision"], "deny");
    assert_eq!(strings(&files["rules"]), ["zdr_endpoint"]);
    let images = op(&v, "POST", "/v1/images/generations");
    assert_eq!(images["decision"], "deny");
    assert!(strings(&images["rules"]).contains(&"zdr_model"), "{images}");
    // Image inputs are not approved in eu by default.
    let marker = chat["markers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["marker"] == "image_input")
        .unwrap();
    assert_eq!(marker["allowed"], false);
    assert_eq!(marker["rule"], "image_input");

    // Tools from the catalog's allow-lists, each through decide: listed ones pass, any other
    // type is refused as tool_not_eligible.
    let tool = |o: &Value, name: &str| -> Value {
        o["tools"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["tool"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("tool {name} not shown: {o}"))
    };
    assert_eq!(tool(responses, "function")["allowed"], true);
    let other = tool(responses, "(any other tool)");
    assert_eq!(other["allowed"], false);
    assert_eq!(other["rule"], "tool_not_eligible");

    // Every model `show` lists for a JSON model operation passes `explain`, and a model it
    // does not list is refused: the two commands decide through the same code.
    let body = dir.path().join("body.json");
    for (path, model, want) in [
        ("/v1/chat/completions", strings(&chat["models"])[0], 0),
        ("/v1/chat/completions", "gpt-4o", 3),
        ("/v1/embeddings", "text-embedding-3-small", 0),
        ("/v1/images/generations", "dall-e-3", 3),
    ] {
        std::fs::write(&body, format!("{{\"model\":\"{model}\"}}")).unwrap();
        let o = run(&[
            "explain",
            "--config",
            cfg_s,
            "--project",
            "eu-zdr",
            "POST",
            path,
            "--body",
            body.to_str().unwrap(),
        ]);
        assert_eq!(o.status.code(), Some(want), "{path} {model}: {}", both(&o));
        let shown = op(&v, "POST", path);
        let listed = strings(&shown["models"]).contains(&model);
        assert_eq!(listed, want == 0, "{path} {model}");
    }

    // The us project with modified abuse monitoring may use files and dall-e-3.
    let us = show_json(&["--config", cfg_s, "--project", "us-mam"]);
    assert_eq!(op(&us, "POST", "/v1/files")["decision"], "allow");
    assert_eq!(
        strings(&op(&us, "POST", "/v1/images/generations")["models"]),
        ["dall-e-3"]
    );

    // RESIDENCY_CONFIG stands in for --config; an explicit --catalog takes precedence over it.
    let with_env = |args: &[&str]| support::run(args, &[("RESIDENCY_CONFIG", cfg_s)], None);
    let o = with_env(&["catalog", "show", "--project", "us-mam"]);
    assert_eq!(o.status.code(), Some(0), "{}", both(&o));
    assert!(stdout(&o).contains("project \"us-mam\""), "{}", stdout(&o));
    let seed = seed_catalog();
    let o = with_env(&[
        "catalog",
        "show",
        "--catalog",
        seed.to_str().unwrap(),
        "--region",
        "jp",
        "--retention",
        "zdr",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", both(&o));
    assert!(stdout(&o).contains("project \"jp/zdr\""), "{}", stdout(&o));

    // A project that is not configured.
    let o = run(&["catalog", "show", "--config", cfg_s, "--project", "nope"]);
    assert_eq!(o.status.code(), Some(2), "{}", both(&o));
    assert!(both(&o).contains("no project \"nope\""), "{}", both(&o));
}

#[test]
fn show_for_a_region_and_retention_prints_an_aligned_table() {
    let cat = seed_catalog();
    let cat = cat.to_str().unwrap();
    let o = run(&[
        "catalog",
        "show",
        "--catalog",
        cat,
        "--region",
        "eu",
        "--retention",
        "zdr",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", both(&o));
    let text = stdout(&o);
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with("catalog seed-004 (2026-11-22); project \"eu/zdr\": region eu"),
        "{text}"
    );
    let header = lines.iter().position(|l| l.starts_with("OPERATION")).unwrap();
    let col = lines[header].find("DECISION").unwrap();
    let rule_col = lines[header].find("RULE").unwrap();
    for l in &lines[header + 1..] {
        // Every decision starts in the DECISION column, every rule in the RULE column.
        let d = &l[col..];
        assert!(
            ["allow ", "rewrite ", "deny "].iter().any(|p| d.starts_with(p)),
            "{l}"
        );
        assert_ne!(l.as_bytes()[rule_col], b' ', "{l}");
    }
    let files = lines.iter().find(|l| l.starts_with("POST /v1/files ")).unwrap();
    assert!(
        files.contains("deny") && files.contains("zdr_endpoint"),
        "{files}"
    );
    let chat = lines
        .iter()
        .find(|l| l.starts_with("POST /v1/chat/completions "))
        .unwrap();
    assert!(chat.contains("gpt-4.1-2025-04-14"), "{chat}");
    assert!(chat.contains("image_input: refused (image_input)"), "{chat}");

    // The global region checks no model list: any model.
    let v = show_json(&["--catalog", cat, "--region", "global", "--retention", "default"]);
    let chat = op(&v, "POST", "/v1/chat/completions");
    assert_eq!(chat["any_model"], true);
    // Realtime is us-only in the seed.
    let v = show_json(&[
        "--catalog",
        cat,
        "--region",
        "eu",
        "--retention",
        "modified_abuse_monitoring",
    ]);
    let rt = op(&v, "GET", "/v1/realtime");
    assert_eq!(rt["decision"], "deny");
    assert_eq!(strings(&rt["rules"]), ["endpoint_region"]);

    for (args, why) in [
        (
            vec!["--region", "uk", "--retention", "zdr"],
            "not a region of the catalog",
        ),
        (
            vec!["--region", "eu", "--retention", "default"],
            "requires modified_abuse_monitoring or zdr",
        ),
        (vec!["--region", "eu", "--retention", "forever"], "one of zdr"),
    ] {
        let mut all = vec!["catalog", "show", "--catalog", cat];
        all.extend(args);
        let o = run(&all);
        assert_eq!(o.status.code(), Some(2), "{}", both(&o));
        assert!(both(&o).contains(why), "{}", both(&o));
    }
}

#[test]
fn diff_of_a_catalog_edited_in_one_cell_names_exactly_that_change() {
    let dir = TempDir::new("diff-cell");
    let seed = seed_catalog();
    let seed = seed.to_str().unwrap();
    // One cell: /v1/files loses "eu" from its regions.
    let files_us_only = edited_catalog(&dir, "files.json", |v| {
        endpoint(v, "/v1/files")["regions"] = serde_json::json!(["us"]);
    });
    let o = run(&["catalog", "diff", seed, files_us_only.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", both(&o));
    let text = stdout(&o);
    assert!(!text.contains("newly allowed"), "{text}");
    // The /v1/files operations that no other row offers: the list and the Uploads API (one
    // change per purpose of its create call), and the upload for every purpose but batch, none
    // reads a model; eu admits zdr and mam, and under ZDR files were refused already
    // (zdr_endpoint), so only eu/mam flips. A batch's files stay offered with /v1/batches.
    assert!(text.contains("newly refused: 14 "), "{text}");
    assert!(
        text.contains("  GET /v1/files  (refused by endpoint_region): 1"),
        "{text}"
    );
    assert!(
        text.contains("  POST /v1/files  (refused by endpoint_region): 5"),
        "{text}"
    );
    assert!(
        text.contains("    purpose assistants: eu/modified_abuse_monitoring"),
        "{text}"
    );
    assert!(!text.contains("purpose batch"), "{text}");
    assert!(
        text.contains("  POST /v1/uploads  (refused by endpoint_region): 5"),
        "{text}"
    );
    assert!(!text.contains("/v1/files/{file_id}"), "{text}");
    assert!(
        text.contains("    (no model): eu/modified_abuse_monitoring"),
        "{text}"
    );
    assert!(!text.contains("/v1/fine_tuning"), "{text}");

    // The JSON form lists the same triples.
    let o = run(&[
        "catalog",
        "diff",
        seed,
        files_us_only.to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["allowed"].as_array().unwrap().len(), 0);
    let refused = v["refused"].as_array().unwrap();
    assert_eq!(refused.len(), 14, "{v}");
    assert_eq!(
        refused
            .iter()
            .filter(|c| c["operation"] == "POST /v1/files"
                && c["purpose"] == "assistants"
                && c["model"].is_null())
            .count(),
        1,
        "{v}"
    );
    assert!(refused
        .iter()
        .all(|c| c["scope"] == "eu/modified_abuse_monitoring" && c["rule"] == "endpoint_region"));

    // Another cell: a model added to the embeddings row is newly allowed in every region the
    // row lists, under every retention (any model already passes in global).
    let embeddings = edited_catalog(&dir, "emb.json", |v| {
        endpoint(v, "/v1/embeddings")["models"]
            .as_array_mut()
            .unwrap()
            .push("text-embedding-4".into());
    });
    let o = run(&["catalog", "diff", seed, embeddings.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", both(&o));
    let text = stdout(&o);
    assert!(
        text.contains("  POST /v1/embeddings  (was refused by model_not_eligible): 15"),
        "{text}"
    );
    assert!(
        text.contains("    text-embedding-4: us eu ca jp in sg kr"),
        "{text}"
    );
    assert!(!text.contains("newly refused"), "{text}");

    // A region fact that changes no decision (where eu traffic goes) is listed, exit 0.
    let moved = edited_catalog(&dir, "host.json", |v| {
        let eu = v["regions"]
            .as_array_mut()
            .unwrap()
            .iter_mut()
            .find(|r| r["id"] == "eu")
            .unwrap();
        eu["host"] = "eu2.api.openai.com".into();
    });
    let o = run(&["catalog", "diff", seed, moved.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", both(&o));
    assert!(
        stdout(&o).contains("  eu: host eu.api.openai.com -> eu2.api.openai.com\n"),
        "{}",
        stdout(&o)
    );

    // The same catalog twice, and a copy with only its provenance changed: no change, exit 0.
    let o = run(&["catalog", "diff", seed, seed]);
    assert_eq!(o.status.code(), Some(0), "{}", both(&o));
    assert!(stdout(&o).contains("no change"), "{}", stdout(&o));
    let renamed = edited_catalog(&dir, "renamed.json", |v| {
        v["edition"] = "seed-004-copy".into();
    });
    let o = run(&["catalog", "diff", seed, renamed.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", both(&o));

    // An invalid catalog is neither "no change" nor "changes".
    let broken = edited_catalog(&dir, "broken.json", |v| {
        endpoint(v, "/v1/files")["regions"] = serde_json::json!(["uk"]);
    });
    let o = run(&["catalog", "diff", seed, broken.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", both(&o));
    assert!(both(&o).contains("unknown region \"uk\""), "{}", both(&o));
}

#[test]
fn diff_per_configured_project() {
    let dir = TempDir::new("diff-config");
    let cfg = write(
        &dir,
        "c.toml",
        &config_text(&two_project_config(
            "http://127.0.0.1:1",
            "http://127.0.0.1:2",
            "",
        )),
    );
    let seed = seed_catalog();
    let seed = seed.to_str().unwrap();
    let files_us_only = edited_catalog(&dir, "files.json", |v| {
        endpoint(v, "/v1/files")["regions"] = serde_json::json!(["us"]);
    });
    let o = run(&[
        "catalog",
        "diff",
        seed,
        files_us_only.to_str().unwrap(),
        "--config",
        cfg.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", both(&o));
    let text = stdout(&o);
    assert!(text.contains("per project"), "{text}");
    // eu-mam loses files; eu-zdr never had them; us-mam keeps them.
    assert!(text.contains("    (no model): eu-mam\n"), "{text}");
    assert!(!text.contains("eu-zdr") && !text.contains("us-mam"), "{text}");
}

#[test]
fn config_selects_an_embedded_edition_and_commands_name_it() {
    let dir = TempDir::new("edition");
    let base = config_text(&two_project_config(
        "http://127.0.0.1:1",
        "http://127.0.0.1:2",
        "",
    ));
    let cfg = write(
        &dir,
        "c.toml",
        &base.replace("[upstream]", "[catalog]\nedition = \"seed-004\"\n\n[upstream]"),
    );
    let o = run(&["check", "--config", cfg.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", both(&o));
    assert!(
        stdout(&o).contains("catalog seed-004 of 2026-11-22"),
        "{}",
        both(&o)
    );
    let o = run(&["explain", "--config", cfg.to_str().unwrap(), "GET", "/v1/models"]);
    assert_eq!(o.status.code(), Some(0), "{}", both(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["catalog"], "seed-004");

    let unknown = write(
        &dir,
        "u.toml",
        &base.replace("[upstream]", "[catalog]\nedition = \"2099\"\n\n[upstream]"),
    );
    let o = run(&["check", "--config", unknown.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", both(&o));
    assert!(
        stdout(&o).contains("catalog.edition: unknown edition \"2099\" (embedded: seed-004"),
        "{}",
        both(&o)
    );

    let both_set = write(
        &dir,
        "b.toml",
        &base.replace(
            "[upstream]",
            "[catalog]\nedition = \"seed-004\"\npath = \"x.json\"\n\n[upstream]",
        ),
    );
    let o = run(&["check", "--config", both_set.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", both(&o));
    assert!(
        stdout(&o).contains("catalog: set path (a catalog file) or edition"),
        "{}",
        both(&o)
    );
}

#[test]
fn the_2026_edition_checks_and_its_readme_shows_the_diff_from_the_seed() {
    let dir = TempDir::new("edition-2026");
    let base = config_text(&two_project_config(
        "http://127.0.0.1:1",
        "http://127.0.0.1:2",
        "",
    ));
    let cfg = write(
        &dir,
        "c.toml",
        &base.replace(
            "[upstream]",
            "[catalog]\nedition = \"openai-2026-12\"\n\n[upstream]",
        ),
    );
    let o = run(&["check", "--config", cfg.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", both(&o));
    assert!(
        stdout(&o).contains("catalog openai-2026-12 of 2026-12-02"),
        "{}",
        both(&o)
    );

    let o = run(&["catalog", "diff", "seed-004", "openai-2026-12"]);
    let code = o.status.code();
    assert!(code == Some(0) || code == Some(1), "{}", both(&o));
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("config/sources/README.md"))
            .unwrap();
    let start = "<!-- catalog-diff seed-004 openai-2026-12 -->\n```\n";
    let a = readme.find(start).expect("the README has the diff block") + start.len();
    let b = a + readme[a..].find("```\n<!-- /catalog-diff -->").unwrap();
    assert_eq!(
        &readme[a..b],
        stdout(&o),
        "config/sources/README.md is out of date"
    );
    let exit_line = if code == Some(0) { "(exit 0;" } else { "(exit 1;" };
    assert!(readme.contains(exit_line), "the README states the exit code");
}
