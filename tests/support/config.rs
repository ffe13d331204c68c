//! The configs the tests run the proxy on: the standard projects (eight, one per policy
//! feature) and a smaller three-project config, with the keys that select them.

use sha2::{Digest, Sha256};

use mock_openai::MockUpstream;

/// Client bearer tokens whose hashes select projects in [`standard_projects`].
pub const EU_CLIENT_KEY: &str = "sk-client-eu-zdr-0001";
pub const US_CLIENT_KEY: &str = "sk-client-us-0001";
/// The upstream keys the proxy injects for those projects.
pub const EU_UPSTREAM_KEY: &str = "sk-upstream-eu-SECRET";
pub const US_UPSTREAM_KEY: &str = "sk-upstream-us-SECRET";

/// The eu ZDR project: default, selected by `OpenAI-Project: proj_eu`.
pub const EU_PROJECT: &str = "proj_eu";
/// The us project with modified abuse monitoring (images with dall-e-3, files, realtime).
pub const US_PROJECT: &str = "proj_us";
/// The eu project with modified abuse monitoring (files and batch inputs, which ZDR refuses).
pub const EU_MAM_PROJECT: &str = "proj_eu_mam";
pub const REALTIME_MODEL: &str = "gpt-4o-realtime-preview-2024-12-17";

/// The default project of both configs: eu, ZDR, store rewritten, selected by `proj_eu`.
const EU_ZDR_PROJECT: &str = r#"[[projects]]
name = "eu-zdr"
region = "eu"
retention = "zdr"
store = "rewrite"
mode = "enforce"
default = true
openai_project = "proj_eu"
"#;

/// `[upstream]` routing regions eu and us to the two mocks.
pub fn upstream_table(eu: &MockUpstream, us: &MockUpstream) -> String {
    format!(
        "[upstream]\nbase_urls = {{ eu = \"{}\", us = \"{}\" }}\n",
        eu.base_url(),
        us.base_url()
    )
}

/// A chat completion on a snapshot eligible in eu and us: `store` as given, `content` as the
/// message.
pub fn chat_json(store: bool, content: &str) -> String {
    serde_json::json!({
        "model": "gpt-4o-2024-08-06",
        "store": store,
        "messages": [{"role": "user", "content": content}],
    })
    .to_string()
}

/// A streamed chat completion (`"stream": true`).
pub fn stream_json() -> String {
    serde_json::json!({
        "model": "gpt-4o-2024-08-06",
        "stream": true,
        "messages": [{"role": "user", "content": "stream please"}],
    })
    .to_string()
}

/// One default ZDR project `app` in `region`.
pub fn app_project(region: &str) -> String {
    format!("[[projects]]\nname = \"app\"\nregion = \"{region}\"\nretention = \"zdr\"\ndefault = true\n")
}

/// `tables`, then both mocks routed and the project `app` in eu.
pub fn app_config(eu: &MockUpstream, us: &MockUpstream, tables: &str) -> String {
    format!("{tables}{}\n{}", upstream_table(eu, us), app_project("eu"))
}

/// The projects most tests use. Requests select them by client key or `OpenAI-Project`.
///
/// | project     | region | retention | selected by                          | notes |
/// |-------------|--------|-----------|--------------------------------------|-------|
/// | eu-zdr      | eu     | zdr       | EU_CLIENT_KEY, proj_eu, default      | injects EU_UPSTREAM_KEY, alias gpt-4o |
/// | us-std      | us     | default   | US_CLIENT_KEY, proj_us               | injects US_UPSTREAM_KEY |
/// | eu-mam      | eu     | MAM       | proj_eu_mam                          | store rewrite |
/// | eu-reject   | eu     | zdr       | proj_eu_reject                       | store = "reject" |
/// | eu-report   | eu     | zdr       | proj_eu_report                       | mode = "report" |
/// | eu-img      | eu     | zdr       | proj_eu_img                          | image_inputs = true |
/// | us-hipaa    | us     | zdr       | proj_us_hipaa                        | hipaa = true |
/// | us-zdr      | us     | zdr       | proj_us_zdr                          | |
pub fn standard_projects() -> String {
    format!(
        r#"
{EU_ZDR_PROJECT}api_key_sha256 = ["{eu}"]
upstream_api_key_env = "RP_TEST_UPSTREAM_KEY_EU"
aliases = {{ "gpt-4o" = "gpt-4o-2024-08-06" }}
image_inputs = false
hipaa = false

[[projects]]
name = "us-std"
region = "us"
retention = "default"
openai_project = "proj_us"
api_key_sha256 = ["{us}"]
upstream_api_key_env = "RP_TEST_UPSTREAM_KEY_US"

[[projects]]
name = "eu-mam"
region = "eu"
retention = "modified_abuse_monitoring"
store = "rewrite"
openai_project = "proj_eu_mam"

[[projects]]
name = "eu-reject"
region = "eu"
retention = "zdr"
store = "reject"
openai_project = "proj_eu_reject"

[[projects]]
name = "eu-report"
region = "eu"
retention = "zdr"
mode = "report"
openai_project = "proj_eu_report"

[[projects]]
name = "eu-img"
region = "eu"
retention = "zdr"
image_inputs = true
openai_project = "proj_eu_img"

[[projects]]
name = "us-hipaa"
region = "us"
retention = "zdr"
hipaa = true
openai_project = "proj_us_hipaa"

[[projects]]
name = "us-zdr"
region = "us"
retention = "zdr"
openai_project = "proj_us_zdr"
"#,
        eu = sha256_hex(EU_CLIENT_KEY),
        us = sha256_hex(US_CLIENT_KEY),
    )
}

/// The environment the standard projects need.
pub fn standard_env() -> [(&'static str, &'static str); 2] {
    [
        ("RP_TEST_UPSTREAM_KEY_EU", EU_UPSTREAM_KEY),
        ("RP_TEST_UPSTREAM_KEY_US", US_UPSTREAM_KEY),
    ]
}

/// A smaller config (without listeners: [`super::Proxy::start`] adds them): `eu-zdr`
/// (default, eu, ZDR), `us-mam` (us, modified abuse monitoring) and `eu-mam` (eu, modified
/// abuse monitoring), both regions pointed at local upstreams. `extra` goes before the projects
/// (pass tables such as `[tls]`).
pub fn two_project_config(eu_base: &str, us_base: &str, extra: &str) -> String {
    format!(
        r#"[upstream]
base_urls = {{ eu = "{eu_base}", us = "{us_base}" }}

{extra}

{EU_ZDR_PROJECT}
[[projects]]
name = "us-mam"
region = "us"
retention = "modified_abuse_monitoring"
store = "rewrite"
mode = "enforce"
openai_project = "{US_PROJECT}"

[[projects]]
name = "eu-mam"
region = "eu"
retention = "modified_abuse_monitoring"
store = "rewrite"
mode = "enforce"
openai_project = "{EU_MAM_PROJECT}"
"#
    )
}

/// sha256 hex of bytes (a client key's hash in `api_key_sha256`, a body's digest).
pub fn sha256_hex(data: impl AsRef<[u8]>) -> String {
    hex::encode(Sha256::digest(data.as_ref()))
}
