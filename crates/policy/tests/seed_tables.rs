//! Walks every row of seed 004's tables (the ZDR/retention table, Table 1 and Table 2) and
//! checks the builtin catalog against each one.
//!
//! The seed is read from `config/sources/seed-004-your-data.txt`; when the shared seeds are
//! next to the repository, the copy must be byte-identical to `shared/seeds/004_*.txt`.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use policy::catalog::raw::RawCatalog;
use policy::catalog::BUILTIN_JSON;
use policy::Catalog;

const TABLE2_ALL: [&str; 7] = ["us", "eu", "ca", "jp", "in", "sg", "kr"];

fn manifest() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn seed_text() -> String {
    let path = manifest().join("../../config/sources/seed-004-your-data.txt");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn find_seed_004(dir: &Path) -> Option<PathBuf> {
    let entries = std::fs::read_dir(dir).ok()?;
    entries.filter_map(Result::ok).map(|e| e.path()).find(|p| {
        p.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("004_") && n.ends_with(".txt"))
    })
}

#[test]
fn sources_copy_is_byte_identical_to_the_shared_seed() {
    let ours = std::fs::read(manifest().join("../../config/sources/seed-004-your-data.txt")).unwrap();
    let mut compared = 0;
    for dir in [
        PathBuf::from("/work/shared/seeds"),
        manifest().join("../../../shared/seeds"),
    ] {
        if let Some(p) = find_seed_004(&dir) {
            let theirs = std::fs::read(&p).unwrap();
            assert!(
                ours == theirs,
                "config/sources/seed-004-your-data.txt differs from {}",
                p.display()
            );
            compared += 1;
        }
    }
    println!("seed copy compared with {compared} shared cop(ies)");
    // The catalog cites the copy.
    let raw: RawCatalog = serde_json::from_str(BUILTIN_JSON).unwrap();
    let s = raw.sources.iter().find(|s| s.id == "seed-004").unwrap();
    assert_eq!(s.file.as_deref(), Some("sources/seed-004-your-data.txt"));
    assert_eq!(s.url, "https://platform.openai.com/docs/guides/your-data");
    assert_eq!(s.title, "Data controls in the OpenAI platform");
    let s1 = raw.sources.iter().find(|s| s.id == "seed-001").unwrap();
    assert_eq!(s1.date, "2025-11-25");
    assert_eq!(raw.date, "2026-11-22");
}

/// The rows of the markdown table whose header line starts with `header`.
fn table<'a>(text: &'a str, header: &str) -> Vec<&'a str> {
    let mut lines = text.lines().skip_while(|l| !l.starts_with(header));
    assert!(lines.next().is_some(), "table {header:?} not found");
    let sep = lines.next().unwrap();
    assert!(sep.starts_with("|---"), "{sep}");
    lines.take_while(|l| l.starts_with('|')).collect()
}

/// Cells of a row; `\|` stays inside its cell (as a literal `|`).
fn cells(row: &str) -> Vec<String> {
    const SENTINEL: &str = "\u{1}";
    let inner = row.trim().strip_prefix('|').unwrap().strip_suffix('|').unwrap();
    inner
        .replace("\\|", SENTINEL)
        .split('|')
        .map(|c| c.replace(SENTINEL, "|"))
        .collect()
}

fn regions_of(cell: &str) -> BTreeSet<String> {
    let all = || TABLE2_ALL.iter().map(|s| s.to_string()).collect();
    match cell {
        "All" => all(),
        "US, EU" => ["us", "eu"].iter().map(|s| s.to_string()).collect(),
        "US" => ["us"].iter().map(|s| s.to_string()).collect(),
        other => panic!("region cell {other:?} not understood"),
    }
}

fn endpoint_ids(cell: &str) -> Vec<(String, bool)> {
    let (cell, beta) = match cell.strip_suffix(" (beta)") {
        Some(c) => (c, true),
        None => (cell, false),
    };
    cell.split_whitespace().map(|s| (s.to_owned(), beta)).collect()
}

#[test]
fn zdr_table() {
    let text = seed_text();
    let raw: RawCatalog = serde_json::from_str(BUILTIN_JSON).unwrap();
    let rows = table(
        &text,
        "|Endpoint|Data used for training|Abuse monitoring retention|Application state retention|Zero Data Retention eligibility|",
    );
    let mut seen = BTreeSet::new();
    for row in &rows {
        let c = cells(row);
        assert_eq!(c.len(), 5, "{row}");
        let ids = endpoint_ids(&c[0]);
        assert_eq!(ids.len(), 1, "{row}");
        let (id, beta) = &ids[0];
        let e = raw
            .endpoints
            .iter()
            .find(|e| &e.id == id)
            .unwrap_or_else(|| panic!("no endpoint {id}"));
        assert_eq!(e.beta, *beta, "{id}");
        let r = e
            .retention
            .as_ref()
            .unwrap_or_else(|| panic!("{id} has no retention columns"));
        assert_eq!(
            (
                r.training.as_str(),
                r.abuse_monitoring.as_str(),
                r.application_state.as_str()
            ),
            (c[1].as_str(), c[2].as_str(), c[3].as_str()),
            "{id}"
        );
        let elig = if e.zdr_eligible { "Yes" } else { "No" };
        let cell = match &e.zdr_note {
            Some(n) => format!("{elig}, {n}"),
            None => elig.to_owned(),
        };
        assert_eq!(cell, c[4], "{id} ZDR eligibility");
        seen.insert(id.clone());
    }
    // Every catalog endpoint but the content-free one comes from this table.
    for e in &raw.endpoints {
        assert_eq!(seen.contains(&e.id), !e.content_free, "{} in the ZDR table", e.id);
    }
    assert_eq!(rows.len(), 21);
    println!("ZDR table: {} rows checked", rows.len());
}

#[test]
fn table_1_regions() {
    let text = seed_text();
    let raw: RawCatalog = serde_json::from_str(BUILTIN_JSON).unwrap();
    let cat = Catalog::builtin().unwrap();
    let rows = table(
        &text,
        "|Region|Regional storage|Regional processing|Requires modified abuse monitoring or ZDR|Default modes of entry|",
    );
    let flag = |s: &str| match s {
        "✅" => true,
        "❌" => false,
        o => panic!("flag {o:?}"),
    };
    let mut ids = BTreeSet::new();
    for row in &rows {
        let c = cells(row);
        assert_eq!(c.len(), 5, "{row}");
        let r = raw
            .regions
            .iter()
            .find(|r| r.name == c[0])
            .unwrap_or_else(|| panic!("no region named {:?}", c[0]));
        assert!(r.residency, "{}", r.id);
        assert_eq!(r.regional_storage, flag(&c[1]), "{} storage", r.id);
        assert_eq!(r.regional_processing, flag(&c[2]), "{} processing", r.id);
        assert_eq!(r.requires_mam_or_zdr, flag(&c[3]), "{} MAM/ZDR", r.id);
        assert_eq!(r.default_modes.join(", "), c[4], "{} modes", r.id);
        // Image* (footnote: needs approval) ⇔ image inputs not approved by default.
        assert_eq!(
            r.image_inputs_default,
            c[4].split(", ").any(|m| m == "Image"),
            "{} images",
            r.id
        );
        // The validated region agrees.
        let v = cat.region(&r.id).unwrap();
        assert_eq!(v.regional_processing, r.regional_processing);
        assert_eq!(v.requires_mam_or_zdr, r.requires_mam_or_zdr);
        assert_eq!(v.image_inputs_default, r.image_inputs_default);
        assert_eq!(v.host, format!("{}.api.openai.com", r.id));
        ids.insert(r.id.clone());
    }
    // Table 2's "All" is exactly Table 1's regions.
    let all: BTreeSet<String> = raw.region_sets["table2_all"].iter().cloned().collect();
    assert_eq!(ids, all);
    assert_eq!(all, TABLE2_ALL.iter().map(|s| s.to_string()).collect());
    // Regions after the tables (seed 001) and global.
    let g = cat.region("global").unwrap();
    assert!(!g.residency && g.image_inputs_default && !g.requires_mam_or_zdr);
    assert_eq!(g.host, "api.openai.com");
    for id in ["au", "gb", "ae"] {
        let r = cat.region(id).unwrap();
        assert!(
            r.residency && r.requires_mam_or_zdr && !r.image_inputs_default && !r.regional_processing,
            "{id}"
        );
        assert_eq!(r.host, format!("{id}.api.openai.com"));
        assert!(
            cat.endpoints.iter().all(|e| !e.offered_in(id)),
            "{id} has endpoint rows"
        );
    }
    assert!(text.contains("you must be approved for abuse monitoring controls"));
    assert_eq!(rows.len(), 7);
    println!("Table 1: {} rows checked", rows.len());
}

#[test]
fn table_2_endpoints_and_tools() {
    let text = seed_text();
    let raw: RawCatalog = serde_json::from_str(BUILTIN_JSON).unwrap();
    let cat = Catalog::builtin().unwrap();
    let rows = table(
        &text,
        "|Supported services|Supported model snapshots|Supported region|",
    );
    let (mut endpoint_rows, mut feature_rows, mut endpoints_checked) = (0, 0, 0);
    let mut offered = BTreeSet::new();
    for row in &rows {
        let mut c = cells(row);
        // Rows with models write "service\|models|region": split the first cell.
        if c.len() == 2 {
            let (svc, models) = c[0].split_once('|').unwrap_or_else(|| panic!("{row}"));
            c = vec![svc.to_owned(), models.to_owned(), c[1].clone()];
        }
        assert_eq!(c.len(), 3, "{row}");
        let (svc, models, region) = (&c[0], &c[1], &c[2]);
        if let Some(f) = raw.features.iter().find(|f| &f.name == svc) {
            assert!(models.is_empty(), "{row}");
            match &f.modalities {
                Some(m) => {
                    assert_eq!(&m.join(" "), region, "{svc}");
                    assert!(f.regions.is_empty());
                }
                None => {
                    let (regions, cond) = match region.split_once(", ") {
                        Some((r, cond)) => (r, Some(cond)),
                        None => (region.as_str(), None),
                    };
                    assert_eq!(f.condition.as_deref(), cond, "{svc}");
                    let v = cat.features.iter().find(|v| v.id == f.id).unwrap();
                    assert_eq!(
                        v.regions.iter().cloned().collect::<BTreeSet<_>>(),
                        regions_of(regions),
                        "{svc}"
                    );
                }
            }
            feature_rows += 1;
            continue;
        }
        for (id, beta) in endpoint_ids(svc) {
            let e = cat
                .endpoint(&id)
                .unwrap_or_else(|| panic!("Table 2 row {svc:?}: no endpoint {id}"));
            let r = raw.endpoints.iter().find(|r| r.id == id).unwrap();
            assert_eq!(r.beta, beta, "{id}");
            assert_eq!(
                e.regions.iter().cloned().collect::<BTreeSet<_>>(),
                regions_of(region),
                "{id} regions"
            );
            assert_eq!(e.regions.len(), regions_of(region).len(), "{id}: no duplicates");
            match &e.models {
                Some(list) => assert_eq!(&list.concat(), models, "{id}: models in the seed's order"),
                None => assert!(
                    models.is_empty(),
                    "{id} has no models but the seed lists {models}"
                ),
            }
            offered.insert(id);
            endpoints_checked += 1;
        }
        endpoint_rows += 1;
    }
    // Endpoints absent from Table 2 have no residency region and no model list.
    for e in &cat.endpoints {
        if !offered.contains(&e.id) {
            assert!(
                e.regions.is_empty() && e.models.is_none(),
                "{} is not in Table 2",
                e.id
            );
        }
    }
    // The web search row is the one the hipaa rule relies on.
    let ws = cat
        .features
        .iter()
        .find(|f| f.name == "/v1/responses Web Search")
        .unwrap();
    assert!(!ws.hipaa_eligible);
    assert!(text.contains("Web Search is not HIPAA eligible and is not covered by a BAA."));
    assert_eq!(cat.features.iter().filter(|f| !f.hipaa_eligible).count(), 1);
    assert_eq!(rows.len(), 17);
    println!(
        "Table 2: {} rows checked ({endpoint_rows} endpoint rows covering {endpoints_checked} endpoints, {feature_rows} tool rows)",
        rows.len()
    );
}

#[test]
fn notes_below_the_tables() {
    let text = seed_text();
    let cat = Catalog::builtin().unwrap();
    // "Cannot set store=true in non-US regions" (chat completions).
    assert!(text.contains("Cannot set store=true in non-US regions"));
    let chat = cat
        .endpoint("/v1/chat/completions")
        .unwrap()
        .store
        .clone()
        .unwrap();
    assert!(!chat.default);
    assert_eq!(
        chat.true_allowed_regions.as_deref(),
        Some(&["global".to_owned(), "us".to_owned()][..])
    );
    // Responses stores by default.
    assert!(text.contains("The Responses API has a 30 day Application State retention period by default"));
    let resp = cat.endpoint("/v1/responses").unwrap().store.clone().unwrap();
    assert!(resp.default && resp.true_allowed_regions.is_none());
    // Images: ZDR compatible with gpt-image-1 only.
    assert!(text.contains("Image generation is Zero Data Retention compatible when using `gpt-image-1`, not when using `dall-e-3` or `dall-e-2`."));
    for id in [
        "/v1/images/generations",
        "/v1/images/edits",
        "/v1/images/variations",
    ] {
        assert_eq!(
            cat.endpoint(id).unwrap().zdr_models.as_deref(),
            Some(&["gpt-image-1".to_owned()][..]),
            "{id}"
        );
    }
    // EU host.
    assert!(text.contains("https://eu.api.openai.com/"));
    assert_eq!(cat.region("eu").unwrap().host, "eu.api.openai.com");
    println!("notes: 4 checked");
}
