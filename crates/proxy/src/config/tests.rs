use super::*;

fn load(text: &str) -> Result<Config, ConfigError> {
    Config::from_toml(text, None)
}

const EU: &str = r#"
[[projects]]
name = "eu-prod"
region = "eu"
retention = "zdr"
default = true
"#;

#[test]
fn embedded_default_is_valid() {
    let c = Config::load(None).unwrap();
    assert_eq!(c.process.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(
        c.process.admin_listen.map(|a| a.to_string()).as_deref(),
        Some("127.0.0.1:9464")
    );
    assert_eq!(c.projects.projects.len(), 1);
    assert_eq!(c.projects.projects[0].region, "global");
    assert_eq!(c.upstreams[0].base_url, "https://api.openai.com");
}

#[test]
fn a_minimal_eu_project_routes_to_the_eu_host() {
    let c = load(EU).unwrap();
    assert_eq!(c.upstreams[0].base_url, "https://eu.api.openai.com");
    assert_eq!(c.upstreams[0].region_header, "eu");
}

#[test]
fn base_url_override_replaces_the_catalog_host() {
    // `base_urls = …` after [[projects]] belongs to the project, where it is an unknown key.
    let text = format!("{EU}base_urls = {{ eu = \"http://127.0.0.1:18081\" }}\n");
    let c = load(&format!(
        "[upstream]\nbase_urls = {{ eu = \"http://127.0.0.1:18081\" }}\n{EU}"
    ))
    .unwrap();
    assert_eq!(c.upstreams[0].base_url, "http://127.0.0.1:18081");
    assert!(
        load(&text).is_err(),
        "keys after [[projects]] belong to the project and are unknown there"
    );
}

#[test]
fn unknown_region_suggests_the_right_id() {
    let e = load(&EU.replace("\"eu\"", "\"uk\"")).unwrap_err();
    assert_eq!(
        e.problems,
        vec![r#"projects[0].region: unknown region "uk", did you mean "gb"?"#.to_string()]
    );
    let e = load(&EU.replace("\"eu\"", "\"Europe\"")).unwrap_err();
    assert!(e.problems[0].contains(r#"did you mean "eu"?"#), "{e}");
    let e = load(&EU.replace("\"eu\"", "\"mars\"")).unwrap_err();
    assert!(e.problems[0].contains("known: "), "{e}");
}

#[test]
fn default_retention_outside_us_is_refused() {
    let e = load(&EU.replace("\"zdr\"", "\"default\"")).unwrap_err();
    assert!(e.problems[0].starts_with("projects[0].retention:"), "{e}");
    assert!(load(&EU.replace("\"zdr\"", "\"default\"").replace("\"eu\"", "\"us\"")).is_ok());
}

#[test]
fn every_problem_is_reported_with_its_place() {
    let text = r#"
listen = "nowhere"
[upstream]
base_urls = { mars = "http://127.0.0.1:1", eu = "ftp://x" }
[[projects]]
name = "a"
region = "uk"
retention = "zdr"
api_key_sha256 = ["zz"]
[[projects]]
name = "a"
region = "eu"
retention = "default"
"#;
    let e = load(text).unwrap_err();
    let joined = e.to_string();
    for needle in [
        "listen:",
        "upstream.base_urls.mars:",
        "upstream.base_urls.eu:",
        "projects[0].region:",
        "projects[0].api_key_sha256[0]:",
        "projects[1].name:",
        "projects[1].retention:",
    ] {
        assert!(joined.contains(needle), "missing {needle} in:\n{joined}");
    }
}

#[test]
fn unknown_keys_are_refused_with_their_line() {
    let e = load(&format!("{EU}regoin = \"eu\"\n")).unwrap_err();
    assert!(e.to_string().contains("regoin"), "{e}");
    assert!(e.to_string().contains("line"), "{e}");
}

#[test]
fn upstream_key_comes_from_the_environment_and_is_sensitive() {
    std::env::set_var("RP_TEST_KEY_PRESENT", "sk-test-123");
    let c = load(&format!("{EU}upstream_api_key_env = \"RP_TEST_KEY_PRESENT\"\n")).unwrap();
    let auth = c.upstreams[0].authorization.as_ref().unwrap();
    assert_eq!(auth, "Bearer sk-test-123");
    assert!(auth.is_sensitive());
    let e = load(&format!(
        "{EU}upstream_api_key_env = \"RP_TEST_KEY_ABSENT_XYZ\"\n"
    ))
    .unwrap_err();
    assert!(e.problems[0].contains("RP_TEST_KEY_ABSENT_XYZ is not set"), "{e}");
}

#[test]
fn timeouts_must_be_positive() {
    let e = load(&format!("[timeouts]\nupstream_response_secs = 0\n{EU}")).unwrap_err();
    assert!(
        e.problems[0].starts_with("timeouts.upstream_response_secs"),
        "{e}"
    );
}

/// A file in a fresh temporary directory (removed by the caller's `remove_dir_all`).
fn temp_file(tag: &str, name: &str, text: &str) -> (PathBuf, PathBuf) {
    let dir = std::env::temp_dir().join(format!("rp-config-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join(name);
    std::fs::write(&file, text).unwrap();
    (dir, file)
}

#[test]
fn a_residency_region_sent_to_another_regions_openai_host_is_refused_naming_its_own() {
    let cases = [
        (
            "eu",
            "https://api.openai.com",
            "global",
            "https://eu.api.openai.com",
        ),
        (
            "us",
            "https://eu.api.openai.com",
            "eu",
            "https://us.api.openai.com",
        ),
        (
            "jp",
            "https://EU.api.openai.com.:443",
            "eu",
            "https://jp.api.openai.com",
        ),
        (
            "eu",
            "http://us.api.openai.com:8443",
            "us",
            "https://eu.api.openai.com",
        ),
    ];
    for (region, url, owner, right) in cases {
        let text = format!(
            "[upstream]\nbase_urls = {{ {region} = \"{url}\" }}\n{}",
            EU.replace("\"eu\"", &format!("\"{region}\""))
        );
        let e = load(&text).unwrap_err();
        assert_eq!(e.problems.len(), 1, "{region} = {url}: {e}");
        let p = &e.problems[0];
        assert!(p.starts_with(&format!("upstream.base_urls.{region}: ")), "{p}");
        assert!(p.contains(&format!("host for region \"{owner}\"")), "{p}");
        assert!(p.contains(&format!("must go to {right}")), "{p}");
    }
}

#[test]
fn private_endpoints_proxies_test_servers_and_the_regions_own_host_stay_allowed() {
    for url in [
        "https://eu.api.openai.com",
        "https://openai-egress.corp.example",
        "http://127.0.0.1:18081",
        "https://mtls-eu.api.openai.com",
    ] {
        let text = format!("[upstream]\nbase_urls = {{ eu = \"{url}\" }}\n{EU}");
        let c = load(&text).unwrap_or_else(|e| panic!("{url}: {e}"));
        assert_eq!(c.upstreams[0].base_url, url.to_ascii_lowercase(), "{url}");
    }
    // `global` is no residency region: its traffic may go to a regional host.
    let global = EU.replace("\"eu\"", "\"global\"");
    let text = format!("[upstream]\nbase_urls = {{ global = \"https://eu.api.openai.com\" }}\n{global}");
    assert!(load(&text).is_ok());
}

#[test]
fn the_region_to_host_table_is_the_catalogs() {
    // A catalog whose EU host is another: the old host is no region's any more (allowed), the
    // new one is the EU's (refused for the US).
    let json = policy::catalog::BUILTIN_JSON.replace("\"eu.api.openai.com\"", "\"eu.openai.example\"");
    let (dir, file) = temp_file("hosts", "catalog.json", &json);
    let with = |urls: &str, region: &str| {
        format!(
            "[catalog]\npath = \"{}\"\n[upstream]\nbase_urls = {{ {urls} }}\n{}",
            file.display(),
            EU.replace("\"eu\"", &format!("\"{region}\""))
        )
    };
    assert!(load(&with("eu = \"https://eu.api.openai.com\"", "eu")).is_ok());
    let e = load(&with("us = \"https://eu.openai.example\"", "us")).unwrap_err();
    assert!(e.problems[0].contains("host for region \"eu\""), "{e}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn check_loads_without_the_upstream_keys_and_says_serve_needs_them() {
    let text = format!(
        "{EU}upstream_api_key_env = \"RP_TEST_CHECK_KEY_ABSENT\"\n\n[[projects]]\nname = \"us\"\nregion = \"us\"\n\
         retention = \"zdr\"\nopenai_project = \"proj_us\"\nupstream_api_key_file = \"missing-key\"\n"
    );
    let (dir, file) = temp_file("secrets", "c.toml", &text);
    let (config, warnings) = Config::load_for_check(&file);
    let config = config.unwrap();
    assert_eq!(config.projects.projects.len(), 2);
    assert!(config.upstreams.iter().all(|u| u.authorization.is_none()));
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(
        warnings[0].starts_with(
            "projects[0].upstream_api_key_env: environment variable RP_TEST_CHECK_KEY_ABSENT is not set"
        ),
        "{warnings:?}"
    );
    assert!(
        warnings[1].starts_with("projects[1].upstream_api_key_file: "),
        "{warnings:?}"
    );
    assert!(
        warnings
            .iter()
            .all(|w| w.ends_with("serve will refuse to start without it")),
        "{warnings:?}"
    );
    // What serve and a reload load: the same file is refused.
    let e = Config::load(Some(&file)).unwrap_err();
    assert_eq!(e.problems.len(), 2, "{e}");
    assert!(!e.problems.iter().any(|p| p.contains("serve will refuse")), "{e}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn check_still_refuses_a_key_that_is_there_but_unusable() {
    let (dir, file) = temp_file("badkey", "k", "");
    let both = format!("{EU}upstream_api_key_env = \"X\"\nupstream_api_key_file = \"k\"\n");
    let empty = format!("{EU}upstream_api_key_file = \"k\"\n");
    for text in [both, empty] {
        let cfg = dir.join("c.toml");
        std::fs::write(&cfg, &text).unwrap();
        let (config, warnings) = Config::load_for_check(&cfg);
        assert!(config.is_err(), "{text}");
        assert!(warnings.is_empty(), "{warnings:?}");
    }
    drop(file);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn encrypted_reasoning_is_read_and_needs_a_catalog_that_names_the_value() {
    let on = format!("{EU}responses_encrypted_reasoning = true\n");
    assert!(load(&on).unwrap().projects.projects[0].encrypted_reasoning);
    assert!(!load(EU).unwrap().projects.projects[0].encrypted_reasoning);
    let e = load(&format!("{EU}responses_encrypted_reasoning = \"yes\"\n")).unwrap_err();
    assert!(e.to_string().contains("responses_encrypted_reasoning"), "{e}");
    // A catalog without the block: the option would do nothing, so it is refused.
    let mut v: serde_json::Value = serde_json::from_str(policy::catalog::BUILTIN_JSON).unwrap();
    for e in v["endpoints"].as_array_mut().unwrap() {
        e.as_object_mut().unwrap().remove("encrypted_reasoning");
        for o in e["operations"].as_array_mut().unwrap() {
            if let Some(f) = o.get_mut("fields").and_then(|f| f.as_array_mut()) {
                f.retain(|f| f["role"] != "include");
            }
        }
    }
    let (dir, file) = temp_file("noreasoning", "catalog.json", &v.to_string());
    let with = |project: &str| format!("[catalog]\npath = \"{}\"\n{project}", file.display());
    assert!(load(&with(EU)).is_ok());
    let e = load(&with(&on)).unwrap_err();
    assert_eq!(e.problems.len(), 1, "{e}");
    assert!(
        e.problems[0].starts_with("projects[0].responses_encrypted_reasoning: catalog seed-004 names no"),
        "{e}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}
