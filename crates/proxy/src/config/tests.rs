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
