//! The `check`, `explain` and `serve` commands as a user runs them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::Duration;

use serde_json::{json, Value};
use support::*;

const EXPLAIN_CONFIG: &str = r#"
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"

[[projects]]
name = "eu-prod"
region = "eu"
retention = "zdr"
store = "rewrite"
default = true
openai_project = "proj_eu"
aliases = { "gpt-4o" = "gpt-4o-2024-08-06" }

[[projects]]
name = "us-std"
region = "us"
retention = "default"
openai_project = "proj_us"
"#;

#[test]
fn check_accepts_a_valid_config() {
    let dir = TempDir::new("check-ok");
    let cfg = dir.write(
        "c.toml",
        &format!(
            "listen = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n[limits]\nmax_body_bytes = 1048576\n\
[timeouts]\nupstream_response_secs = 30\n\
[upstream]\nbase_urls = {{ eu = \"http://127.0.0.1:1\", us = \"http://127.0.0.1:2\" }}\n{}",
            standard_projects()
        ),
    );
    let env: Vec<(&str, &str)> = vec![
        ("RP_TEST_UPSTREAM_KEY_EU", EU_UPSTREAM_KEY),
        ("RP_TEST_UPSTREAM_KEY_US", US_UPSTREAM_KEY),
    ];
    let o = run(&["check", "--config", cfg.to_str().unwrap()], &env, None);
    assert_eq!(o.status.code(), Some(0), "{}", output_text(&o));
    // RESIDENCY_CONFIG stands in for --config.
    let mut env2 = env.clone();
    env2.push(("RESIDENCY_CONFIG", cfg.to_str().unwrap()));
    let o = run(&["check"], &env2, None);
    assert_eq!(o.status.code(), Some(0), "{}", output_text(&o));
    // The shipped default config is valid.
    let o = run(
        &[
            "check",
            "--config",
            concat!(env!("CARGO_MANIFEST_DIR"), "/config/default.toml"),
        ],
        &[],
        None,
    );
    assert_eq!(o.status.code(), Some(0), "{}", output_text(&o));
}

#[test]
fn check_names_unknown_region_with_suggestion() {
    let dir = TempDir::new("check-uk");
    let cfg = dir.write(
        "c.toml",
        "[[projects]]\nname = \"uk\"\nregion = \"uk\"\nretention = \"zdr\"\ndefault = true\n",
    );
    let o = run(&["check", "--config", cfg.to_str().unwrap()], &[], None);
    assert_eq!(o.status.code(), Some(1), "{}", output_text(&o));
    let text = output_text(&o);
    assert!(
        text.lines()
            .any(|l| l.trim() == r#"projects[0].region: unknown region "uk", did you mean "gb"?"#),
        "{text}"
    );
}

#[test]
fn check_reports_every_problem_with_its_place() {
    let dir = TempDir::new("check-many");
    let cfg = dir.write(
        "c.toml",
        r#"
[[projects]]
name = "a"
region = "eu"
retention = "zdr"
default = true

[[projects]]
name = "b"
region = "eu"
retention = "default"

[[projects]]
name = "c"
region = "uk"
retention = "zdr"

[[projects]]
name = "d"
region = "us"
retention = "zdr"
upstream_api_key_env = "RP_TEST_SURELY_UNSET_VAR"
"#,
    );
    let o = run(&["check", "--config", cfg.to_str().unwrap()], &[], None);
    assert_eq!(o.status.code(), Some(1), "{}", output_text(&o));
    let text = output_text(&o);
    assert!(
        text.lines()
            .any(|l| l.trim_start().starts_with("projects[1].retention")),
        "{text}"
    );
    assert!(
        text.contains(r#"projects[2].region: unknown region "uk", did you mean "gb"?"#),
        "{text}"
    );
    // A key that is not there is a warning for `check` (see check_runs_without_production_secrets).
    assert!(
        text.lines().any(|l| l
            .trim_start()
            .starts_with("warning: projects[3].upstream_api_key_env")),
        "{text}"
    );
    assert!(!text.contains("projects[0]"), "project 0 is fine: {text}");
}

#[test]
fn check_rejects_default_retention_outside_us() {
    for region in ["eu", "jp", "ca"] {
        let dir = TempDir::new("check-ret");
        let cfg = dir.write(
            "c.toml",
            &format!("[[projects]]\nname = \"p\"\nregion = \"{region}\"\nretention = \"default\"\ndefault = true\n"),
        );
        let o = run(&["check", "--config", cfg.to_str().unwrap()], &[], None);
        assert_eq!(o.status.code(), Some(1), "{region}: {}", output_text(&o));
        assert!(
            output_text(&o).contains("projects[0].retention"),
            "{region}: {}",
            output_text(&o)
        );
    }
    for region in ["us", "global"] {
        let dir = TempDir::new("check-ret-ok");
        let cfg = dir.write(
            "c.toml",
            &format!("[[projects]]\nname = \"p\"\nregion = \"{region}\"\nretention = \"default\"\ndefault = true\n"),
        );
        let o = run(&["check", "--config", cfg.to_str().unwrap()], &[], None);
        assert_eq!(o.status.code(), Some(0), "{region}: {}", output_text(&o));
    }
}

#[test]
fn check_rejects_ambiguous_selection() {
    let dir = TempDir::new("check-amb");
    let h = sha256_hex("sk-shared");
    let cfg = dir.write(
        "c.toml",
        &format!(
            r#"
[[projects]]
name = "a"
region = "us"
retention = "zdr"
default = true
api_key_sha256 = ["{h}"]
openai_project = "proj_x"

[[projects]]
name = "b"
region = "eu"
retention = "zdr"
default = true
api_key_sha256 = ["{h}"]
openai_project = "proj_x"
"#
        ),
    );
    let o = run(&["check", "--config", cfg.to_str().unwrap()], &[], None);
    assert_eq!(
        o.status.code(),
        Some(1),
        "a key, a header and default=true in two projects: {}",
        output_text(&o)
    );
    assert!(output_text(&o).contains("projects[1]"), "{}", output_text(&o));
}

#[test]
fn check_rejects_unknown_keys_and_bad_toml() {
    let dir = TempDir::new("check-bad");
    let cfg = dir.write(
        "c.toml",
        "[[projects]]\nname = \"p\"\nregion = \"us\"\nretention = \"default\"\nregoin = \"eu\"\n",
    );
    let o = run(&["check", "--config", cfg.to_str().unwrap()], &[], None);
    assert_eq!(o.status.code(), Some(1), "{}", output_text(&o));
    assert!(output_text(&o).contains("regoin"), "{}", output_text(&o));
    let cfg = dir.write("d.toml", "[[projects]\nname = ");
    let o = run(&["check", "--config", cfg.to_str().unwrap()], &[], None);
    assert_eq!(o.status.code(), Some(1), "{}", output_text(&o));
    let o = run(
        &[
            "check",
            "--config",
            dir.path().join("missing.toml").to_str().unwrap(),
        ],
        &[],
        None,
    );
    assert_eq!(o.status.code(), Some(1), "{}", output_text(&o));
}

fn explain(args: &[&str], stdin: Option<&[u8]>) -> (Option<i32>, Value, String) {
    let dir = TempDir::new("explain");
    let cfg = dir.write("c.toml", EXPLAIN_CONFIG);
    let mut full = vec!["explain", "--config", cfg.to_str().unwrap()];
    full.extend_from_slice(args);
    let o = run(&full, &[], stdin);
    let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
    let v: Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("explain prints one JSON object ({e}): {}", output_text(&o)));
    (o.status.code(), v, output_text(&o))
}

fn assert_explain_keys(v: &Value) {
    for k in [
        "decision", "project", "region", "endpoint", "model", "rule", "message", "upstream", "rewrites",
    ] {
        assert!(v.get(k).is_some(), "explain output lacks {k}: {v}");
    }
    assert!(v["rewrites"].is_array(), "{v}");
}

/// How a row hands `explain` its body.
enum Body {
    None,
    /// Written to a file, passed as `--body FILE`.
    File(Value),
    /// Piped in, passed as `--body -`.
    Stdin(&'static str),
}

/// One `explain` run: its arguments before the body, the exit code, the output fields that
/// must be equal, and any further check.
struct ExplainRow {
    /// The test this row was before it joined the table.
    name: &'static str,
    args: &'static [&'static str],
    body: Body,
    code: i32,
    /// Whether every key of the documented output must be present.
    all_keys: bool,
    fields: Vec<(&'static str, Value)>,
    check: fn(&Value),
}

fn explain_rows() -> Vec<ExplainRow> {
    let none: fn(&Value) = |_| {};
    vec![
        ExplainRow {
            name: "explain_deny_exits_3",
            args: &["POST", "/v1/fine_tuning/jobs"],
            body: Body::File(json!({"model": "gpt-4o-2024-08-06", "training_file": "file-1"})),
            code: 3,
            all_keys: true,
            fields: vec![
                ("decision", json!("deny")),
                ("project", json!("eu-prod")),
                ("region", json!("eu")),
                ("endpoint", json!("/v1/fine_tuning/jobs")),
                ("model", json!("gpt-4o-2024-08-06")),
                ("rule", json!("zdr_endpoint")),
                ("upstream", json!("https://eu.api.openai.com")),
                ("rewrites", json!([])),
            ],
            check: |v| assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}"),
        },
        ExplainRow {
            name: "explain_allow_and_header_selection_exit_0",
            args: &[
                "--header",
                "OpenAI-Project: proj_us",
                "POST",
                "/v1/chat/completions",
            ],
            body: Body::File(json!({"model": "gpt-4o-2024-08-06", "messages": [], "store": true})),
            code: 0,
            all_keys: true,
            fields: vec![
                ("decision", json!("allow")),
                ("project", json!("us-std")),
                ("region", json!("us")),
                ("endpoint", json!("/v1/chat/completions")),
                ("model", json!("gpt-4o-2024-08-06")),
                ("upstream", json!("https://us.api.openai.com")),
                ("rewrites", json!([])),
            ],
            check: none,
        },
        // --project picks a project by name.
        ExplainRow {
            name: "explain_allow_and_header_selection_exit_0 (--project)",
            args: &["--project", "us-std", "GET", "/v1/models"],
            body: Body::None,
            code: 0,
            all_keys: false,
            fields: vec![("decision", json!("allow")), ("project", json!("us-std"))],
            check: none,
        },
        ExplainRow {
            name: "explain_rewrite_lists_edits_from_stdin",
            args: &["POST", "/v1/chat/completions"],
            body: Body::Stdin(r#"{"model":"gpt-4o","store":true,"messages":[]}"#),
            code: 0,
            all_keys: true,
            fields: vec![("decision", json!("rewrite")), ("project", json!("eu-prod"))],
            check: |v| {
                // `model` may be the client's name or the effective one; the alias edit must be listed.
                assert!(v["model"] == "gpt-4o" || v["model"] == "gpt-4o-2024-08-06", "{v}");
                let rules: Vec<&str> = v["rule"].as_str().unwrap().split(',').map(str::trim).collect();
                assert!(rules.contains(&"store") && rules.contains(&"alias"), "{v}");
                let rewrites = v["rewrites"].as_array().unwrap();
                assert!(
                    rewrites.contains(&json!({"field": "store", "from": true, "to": false})),
                    "{v}"
                );
                assert!(
                    rewrites
                        .contains(&json!({"field": "model", "from": "gpt-4o", "to": "gpt-4o-2024-08-06"})),
                    "{v}"
                );
            },
        },
        ExplainRow {
            name: "explain_image_and_stateful_denials (stateful)",
            args: &["POST", "/v1/responses"],
            body: Body::Stdin(
                r#"{"model":"gpt-4.1-2025-04-14","input":"x","previous_response_id":"resp_1","store":false}"#,
            ),
            code: 3,
            all_keys: false,
            fields: vec![("rule", json!("stateful_feature"))],
            check: none,
        },
        ExplainRow {
            name: "explain_image_and_stateful_denials (unknown endpoint)",
            args: &["POST", "/v1/nope"],
            body: Body::None,
            code: 3,
            all_keys: false,
            fields: vec![("rule", json!("unknown_endpoint"))],
            check: none,
        },
        // `explain` applies the header checks `serve` applies before policy: two Content-Type
        // headers are a 400 there, so an error (exit 3) here, not an allow.
        ExplainRow {
            name: "explain_refuses_what_serve_refuses_at_the_headers",
            args: &[
                "--header",
                "Content-Type: application/json",
                "--header",
                "Content-Type: text/plain",
                "POST",
                "/v1/chat/completions",
            ],
            body: Body::File(json!({"model": "gpt-4o-2024-08-06", "messages": [], "store": false})),
            code: 3,
            all_keys: false,
            fields: vec![("decision", json!("error"))],
            check: |v| assert_eq!(v["error"]["status"], 400, "{v}"),
        },
    ]
}

#[test]
fn explain_decides_each_row_with_its_exit_code() {
    let dir = TempDir::new("explain-rows");
    for row in explain_rows() {
        let body_file;
        let mut args = row.args.to_vec();
        let stdin = match &row.body {
            Body::None => None,
            Body::File(v) => {
                body_file = dir.write("body.json", &v.to_string());
                args.extend(["--body", body_file.to_str().unwrap()]);
                None
            }
            Body::Stdin(s) => {
                args.extend(["--body", "-"]);
                Some(s.as_bytes())
            }
        };
        let (code, v, text) = explain(&args, stdin);
        assert_eq!(code, Some(row.code), "{}: {text}", row.name);
        if row.all_keys {
            assert_explain_keys(&v);
        }
        for (field, want) in &row.fields {
            assert_eq!(&v[*field], want, "{}: {field} in {text}", row.name);
        }
        (row.check)(&v);
    }
}

#[test]
fn help_on_every_command() {
    for args in [
        vec!["--help"],
        vec!["serve", "--help"],
        vec!["check", "--help"],
        vec!["explain", "--help"],
    ] {
        let o = run(&args, &[], None);
        assert_eq!(o.status.code(), Some(0), "{args:?}: {}", output_text(&o));
        assert!(!o.stdout.is_empty(), "{args:?}");
    }
}

#[tokio::test]
async fn serve_without_config_binds_8080() {
    // Skip when either default port is taken on this machine.
    for port in [8080u16, 9464] {
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_err() {
            eprintln!("skipping: 127.0.0.1:{port} is in use");
            return;
        }
    }
    let mut child = tokio::process::Command::new(BIN)
        .arg("serve")
        .env_remove("RESIDENCY_CONFIG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stdout));
    let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let (proxy, _admin) = parse_listening(&line).unwrap_or_else(|| panic!("unexpected line {line:?}"));
    assert_eq!(proxy.to_string(), "127.0.0.1:8080");
    // The default project is `global`: models are allowed (its upstream is not reachable here,
    // so only the residency headers are checked).
    let r = send_raw(proxy, &build_request(proxy, "POST", "/v1/unknown", &[], b"{}")).await;
    r.assert_denied("unknown_endpoint", None);
    r.assert_residency("deny", "default", "global");
    let _ = child.start_kill();
}

#[tokio::test]
async fn admin_health_and_metrics() {
    let env = Env::standard().await;
    let admin = env.proxy.admin;
    let r = send_raw(admin, &build_request(admin, "GET", "/healthz", &[], b"")).await;
    assert_eq!(r.status, 200, "{r:#?}");
    let _ = env.post_as("proj_eu", "/v1/nope", "{}").await;
    let r = send_raw(admin, &build_request(admin, "GET", "/metrics", &[], b"")).await;
    assert_eq!(r.status, 200, "{r:#?}");
    assert!(
        r.text().contains("unknown_endpoint"),
        "metrics count denials by rule:\n{}",
        r.text()
    );
}

#[tokio::test]
async fn sigterm_drains_in_flight_requests_and_exits_0() {
    let env = Env::standard().await;
    let pid = env.proxy.pid();
    let addr = env.proxy.addr;
    let req = build_request(
        addr,
        "POST",
        "/v1/chat/completions",
        &[
            ("Content-Type", "application/json"),
            ("OpenAI-Project", "proj_eu"),
            ("x-mock-behavior", "delay:800"),
        ],
        json!({"model": "gpt-4o-2024-08-06", "messages": []})
            .to_string()
            .as_bytes(),
    );
    let in_flight = tokio::spawn(async move {
        let mut c = Conn::open(addr, &req).await;
        tokio::time::timeout(Duration::from_secs(20), c.response(false))
            .await
            .ok()
            .flatten()
    });
    env.eu.wait_for(1, Duration::from_secs(5)).await;
    let kill = std::process::Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(kill.success());
    let r = in_flight.await.unwrap();
    let mut proxy = env.proxy;
    let status = tokio::time::timeout(Duration::from_secs(20), proxy.wait())
        .await
        .unwrap();
    let r = r.unwrap_or_else(|| {
        panic!(
            "in-flight request got no response; exit {status:?}; stderr:\n{}",
            proxy.stderr()
        )
    });
    assert_eq!(r.status, 200, "the in-flight request completes: {r:#?}");
    assert_eq!(status, Some(0), "stderr: {}", proxy.stderr());
}

#[tokio::test]
async fn sigterm_when_idle_exits_0() {
    let env = Env::standard().await;
    let pid = env.proxy.pid();
    let kill = std::process::Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(kill.success());
    let mut proxy = env.proxy;
    let status = tokio::time::timeout(Duration::from_secs(20), proxy.wait())
        .await
        .unwrap();
    assert_eq!(status, Some(0), "stderr: {}", proxy.stderr());
}

/// `explain` is an offline tool: it runs without the production secrets `serve` needs (an
/// unset `upstream_api_key_env`, a missing key file), deciding exactly as with them.
#[test]
fn explain_runs_without_production_secrets() {
    let dir = TempDir::new("explain-nosecret");
    let cfg = dir.write(
        "c.toml",
        "[[projects]]\nname = \"eu\"\nregion = \"eu\"\nretention = \"zdr\"\ndefault = true\nupstream_api_key_env = \"RP_TEST_SURELY_UNSET_VAR\"\n\n[[projects]]\nname = \"us\"\nregion = \"us\"\nretention = \"default\"\nopenai_project = \"proj_us\"\nupstream_api_key_file = \"/nonexistent/rp-key\"\n",
    );
    let body = br#"{"model":"gpt-4o-2024-08-06","messages":[],"store":true}"#;
    let o = run(
        &[
            "explain",
            "--config",
            cfg.to_str().unwrap(),
            "POST",
            "/v1/chat/completions",
            "--body",
            "-",
        ],
        &[],
        Some(body),
    );
    assert_eq!(o.status.code(), Some(0), "{}", output_text(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["decision"], "rewrite", "{v}");
    assert_eq!(v["project"], "eu", "{v}");
    let o = run(
        &[
            "explain",
            "--config",
            cfg.to_str().unwrap(),
            "--header",
            "OpenAI-Project: proj_us",
            "POST",
            "/v1/chat/completions",
            "--body",
            "-",
        ],
        &[],
        Some(body),
    );
    assert_eq!(o.status.code(), Some(0), "{}", output_text(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["project"], "us", "{v}");
}

/// `check` runs without production secrets too: an unset `upstream_api_key_env` or a missing
/// key file is a warning naming the place (exit 0); `serve` refuses to start without them.
#[test]
fn check_runs_without_production_secrets_and_serve_refuses_to_start_without_them() {
    let dir = TempDir::new("check-nosecret");
    let cfg = dir.write(
        "c.toml",
        "listen = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n\n[[projects]]\nname = \"eu\"\nregion = \"eu\"\nretention = \"zdr\"\ndefault = true\nupstream_api_key_env = \"RP_TEST_SURELY_UNSET_VAR\"\n\n[[projects]]\nname = \"us\"\nregion = \"us\"\nretention = \"default\"\nopenai_project = \"proj_us\"\nupstream_api_key_file = \"/nonexistent/rp-key\"\n",
    );
    let o = run(&["check", "--config", cfg.to_str().unwrap()], &[], None);
    let text = output_text(&o);
    assert_eq!(o.status.code(), Some(0), "{text}");
    let warning = |place: &str| {
        text.lines().any(|l| {
            l.starts_with(&format!("warning: {place}: "))
                && l.ends_with("serve will refuse to start without it")
        })
    };
    assert!(warning("projects[0].upstream_api_key_env"), "{text}");
    assert!(warning("projects[1].upstream_api_key_file"), "{text}");
    assert!(text.contains("RP_TEST_SURELY_UNSET_VAR is not set"), "{text}");
    assert!(text.contains(": ok (2 project(s)"), "{text}");
    // With the secrets there, no warning.
    let key = dir.write("key", "sk-upstream-us-SECRET\n");
    let with_key = dir.write(
        "d.toml",
        &std::fs::read_to_string(&cfg)
            .unwrap()
            .replace("/nonexistent/rp-key", key.to_str().unwrap()),
    );
    let o = run(
        &["check", "--config", with_key.to_str().unwrap()],
        &[("RP_TEST_SURELY_UNSET_VAR", "sk-upstream-eu-SECRET")],
        None,
    );
    assert_eq!(o.status.code(), Some(0), "{}", output_text(&o));
    assert!(
        !output_text(&o).contains("warning: projects"),
        "{}",
        output_text(&o)
    );
    assert!(
        !output_text(&o).contains("SECRET"),
        "a key never reaches the output: {}",
        output_text(&o)
    );
    // `serve` loads the same file and refuses it, naming both places.
    let o = run(&["serve", "--config", cfg.to_str().unwrap()], &[], None);
    let text = output_text(&o);
    assert_eq!(o.status.code(), Some(1), "{text}");
    assert!(
        text.contains(
            "projects[0].upstream_api_key_env: environment variable RP_TEST_SURELY_UNSET_VAR is not set"
        ),
        "{text}"
    );
    assert!(text.contains("projects[1].upstream_api_key_file: "), "{text}");
    assert!(!text.contains("serve will refuse"), "{text}");
}

/// `check` guards the routing itself: a residency region sent to another region's OpenAI host
/// (from the catalog's table of regions and hosts) is a problem naming the right host, and
/// `serve` refuses the same config. Hosts that are no region's stay allowed.
#[test]
fn check_and_serve_refuse_a_region_routed_to_another_regions_openai_host() {
    let dir = TempDir::new("check-misrouted");
    let config = |urls: &str| {
        format!(
            "listen = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n[upstream]\nbase_urls = {{ {urls} }}\n\n\
             [[projects]]\nname = \"eu\"\nregion = \"eu\"\nretention = \"zdr\"\ndefault = true\n\n\
             [[projects]]\nname = \"us\"\nregion = \"us\"\nretention = \"default\"\nopenai_project = \"proj_us\"\n"
        )
    };
    let bad = dir.write(
        "bad.toml",
        &config("eu = \"https://api.openai.com\", us = \"https://eu.api.openai.com\""),
    );
    let o = run(&["check", "--config", bad.to_str().unwrap()], &[], None);
    let text = output_text(&o);
    assert_eq!(o.status.code(), Some(1), "{text}");
    for (region, owner, right) in [
        ("eu", "global", "https://eu.api.openai.com"),
        ("us", "eu", "https://us.api.openai.com"),
    ] {
        assert!(
            text.lines()
                .any(|l| l.starts_with(&format!("upstream.base_urls.{region}: "))
                    && l.contains(&format!("OpenAI's host for region \"{owner}\""))
                    && l.contains(&format!("must go to {right}"))),
            "{region}: {text}"
        );
    }
    assert!(text.contains("2 problem(s)"), "{text}");
    let o = run(&["serve", "--config", bad.to_str().unwrap()], &[], None);
    assert_eq!(o.status.code(), Some(1), "{}", output_text(&o));
    assert!(
        output_text(&o).contains("upstream.base_urls.eu: "),
        "{}",
        output_text(&o)
    );
    // The regions' own hosts, an egress proxy and a test server are fine.
    let good = dir.write(
        "good.toml",
        &config("eu = \"https://eu.api.openai.com\", us = \"https://egress.corp.example:8443\", global = \"http://127.0.0.1:1\""),
    );
    let o = run(&["check", "--config", good.to_str().unwrap()], &[], None);
    assert_eq!(o.status.code(), Some(0), "{}", output_text(&o));
}
