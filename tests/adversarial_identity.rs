//! Issue 10, items 1-2: who is asking. A request's project is read from every credential and
//! selector it carries (`Authorization` in any spelling RFC 9110 allows, the realtime
//! `Sec-WebSocket-Protocol` entries, `OpenAI-Project`, `OpenAI-Organization`, and their `_`
//! aliases); a recognised key always wins, and anything read two ways is refused without
//! reaching an upstream.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use support::cases::*;
use support::*;

const CHAT: &str = "/v1/chat/completions";
/// Allowed in the us project as it is; under eu-zdr `store` would be rewritten.
const STORED: &str = r#"{"model":"gpt-4o-2024-08-06","store":true,"messages":[]}"#;
const BODY: &str = r#"{"model":"gpt-4o-2024-08-06","messages":[]}"#;
const REALTIME: &str = "/v1/realtime?model=gpt-4o-realtime-preview-2024-12-17";

fn chat(env: &Env, headers: &[(&str, &str)], body: &str) -> Vec<u8> {
    let mut h = vec![("Content-Type", "application/json")];
    h.extend_from_slice(headers);
    raw(env, "POST", CHAT, &h, body.as_bytes())
}

fn websocket(env: &Env, headers: &[(&str, &str)]) -> Vec<u8> {
    let mut h = vec![
        ("Connection", "Upgrade"),
        ("Upgrade", "websocket"),
        ("Sec-WebSocket-Version", "13"),
        ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ];
    h.extend_from_slice(headers);
    raw(env, "GET", REALTIME, &h, b"")
}

const MALFORMED: Expect = Expect::Refused(400, "invalid_request");

/// RFC 9110 §11.1 (the scheme is case-insensitive) and §11.6.2 (`1*SP` before the token):
/// every spelling of `Bearer <EU key>` is the EU key, so a US project header is a refusal.
fn authorization_cases(env: &Env) -> Vec<Case> {
    let mut cases = Vec::new();
    for scheme in [
        "Bearer ",
        "bearer ",
        "BEARER ",
        "Bearer  ",
        "Bearer\t",
        "bEARER \t",
    ] {
        let auth = format!("{scheme}{EU_CLIENT_KEY}");
        cases.push(Case::new(
            format!("{scheme:?} EU key + OpenAI-Project proj_us, store:true"),
            chat(
                env,
                &[("Authorization", &auth), ("OpenAI-Project", "proj_us")],
                STORED,
            ),
            Expect::Denied("no_project"),
        ));
        let us = format!("{scheme}{US_CLIENT_KEY}");
        cases.push(Case::new(
            format!("{scheme:?} US key alone goes to us"),
            chat(env, &[("Authorization", &us)], BODY),
            same("us", CHAT, BODY.as_bytes()),
        ));
    }
    // Not absent: a value an upstream could still read a key in is refused.
    for v in [
        format!("Basic {EU_CLIENT_KEY}"),
        US_CLIENT_KEY.to_string(),
        format!("Bearer {US_CLIENT_KEY} extra"),
        "Bearer".to_string(),
        format!("Bearer \"{US_CLIENT_KEY}\""),
    ] {
        cases.push(Case::new(
            format!("malformed Authorization {v:?}"),
            chat(env, &[("Authorization", &v), ("OpenAI-Project", "proj_us")], BODY),
            MALFORMED,
        ));
    }
    cases
}

/// RFC 6455 §4.1 / §11.3.4: `Sec-WebSocket-Protocol` is a list, over one or more lines; the
/// realtime browser client puts its key, project and organization in it.
fn subprotocol_cases(env: &Env) -> Vec<Case> {
    let eu_key = format!("realtime, openai-insecure-api-key.{EU_CLIENT_KEY}, openai-beta.realtime-v1");
    let us_key = format!("openai-insecure-api-key.{US_CLIENT_KEY}");
    vec![
        Case::new(
            "EU key as subprotocol + OpenAI-Project proj_us",
            websocket(
                env,
                &[("Sec-WebSocket-Protocol", &eu_key), ("OpenAI-Project", "proj_us")],
            ),
            Expect::Denied("no_project"),
        ),
        Case::new(
            "EU key as subprotocol in capitals + project entry proj_us",
            websocket(
                env,
                &[(
                    "Sec-WebSocket-Protocol",
                    &format!("realtime, OPENAI-INSECURE-API-KEY.{EU_CLIENT_KEY}, openai-project.proj_us"),
                )],
            ),
            Expect::Denied("no_project"),
        ),
        Case::new(
            "EU key as subprotocol on its second line + OpenAI-Project proj_us",
            websocket(
                env,
                &[
                    ("Sec-WebSocket-Protocol", "realtime"),
                    (
                        "Sec-WebSocket-Protocol",
                        &format!("openai-insecure-api-key.{EU_CLIENT_KEY}"),
                    ),
                    ("OpenAI-Project", "proj_us"),
                ],
            ),
            Expect::Denied("no_project"),
        ),
        Case::new(
            "Authorization EU key, subprotocol US key",
            websocket(
                env,
                &[
                    ("Authorization", &format!("Bearer {EU_CLIENT_KEY}")),
                    ("Sec-WebSocket-Protocol", &us_key),
                ],
            ),
            Expect::Denied("no_project"),
        ),
        Case::new(
            "US key twice in the subprotocol list",
            websocket(env, &[("Sec-WebSocket-Protocol", &format!("{us_key}, {us_key}"))]),
            Expect::Denied("no_project"),
        ),
        Case::new(
            "subprotocol project entry and header disagree",
            websocket(
                env,
                &[
                    ("Sec-WebSocket-Protocol", "realtime, openai-project.proj_us"),
                    ("OpenAI-Project", "proj_eu_mam"),
                ],
            ),
            Expect::Denied("no_project"),
        ),
        Case::new(
            "empty subprotocol key",
            websocket(
                env,
                &[
                    ("Sec-WebSocket-Protocol", "realtime, openai-insecure-api-key."),
                    ("OpenAI-Project", "proj_us"),
                ],
            ),
            MALFORMED,
        ),
        Case::new(
            "unknown openai- subprotocol entry",
            websocket(
                env,
                &[
                    (
                        "Sec-WebSocket-Protocol",
                        &format!("realtime, openai-api-key.{EU_CLIENT_KEY}"),
                    ),
                    ("OpenAI-Project", "proj_us"),
                ],
            ),
            MALFORMED,
        ),
    ]
}

/// Selectors that are one header line with one id, or refused; `_` names that servers with
/// CGI-style header mapping read as the `-` name (nginx drops them: `underscores_in_headers
/// off`) are refused when they alias a header we read.
fn selector_cases(env: &Env) -> Vec<Case> {
    vec![
        Case::new(
            "OpenAI-Organization comma-listed",
            chat(env, &[("OpenAI-Organization", "org-a, org-b")], BODY),
            Expect::Denied("no_project"),
        ),
        Case::new(
            "OpenAI-Organization twice",
            chat(
                env,
                &[("OpenAI-Organization", "org-a"), ("OpenAI-Organization", "org-a")],
                BODY,
            ),
            Expect::Denied("no_project"),
        ),
        Case::new(
            "OpenAI-Organization and subprotocol organization differ",
            websocket(
                env,
                &[
                    ("OpenAI-Project", "proj_us"),
                    ("OpenAI-Organization", "org-a"),
                    ("Sec-WebSocket-Protocol", "realtime, openai-organization.org-b"),
                ],
            ),
            Expect::Denied("no_project"),
        ),
        Case::new(
            "OpenAI-Project plus OpenAI_Project",
            chat(
                env,
                &[("OpenAI-Project", "proj_eu"), ("OpenAI_Project", "proj_us")],
                BODY,
            ),
            MALFORMED,
        ),
        Case::new(
            "OpenAI_Project alone",
            chat(env, &[("OpenAI_Project", "proj_us")], STORED),
            MALFORMED,
        ),
        Case::new(
            "Content_Type beside Content-Type",
            chat(env, &[("Content_Type", "text/plain")], BODY),
            MALFORMED,
        ),
        Case::new(
            "Authorization twice, second in capitals",
            chat(
                env,
                &[
                    ("Authorization", &format!("Bearer {EU_CLIENT_KEY}")),
                    ("AUTHORIZATION", &format!("Bearer {EU_CLIENT_KEY}")),
                ],
                BODY,
            ),
            Expect::Denied("no_project"),
        ),
    ]
}

#[tokio::test]
async fn every_spelling_of_a_key_selects_its_project_or_is_refused() {
    let env = env_with("").await;
    let mut cases = authorization_cases(&env);
    cases.extend(subprotocol_cases(&env));
    cases.extend(selector_cases(&env));
    let n = run_cases(&env, cases).await;
    println!("identity cases: {n}");
    assert_healthy(&env).await;
}

/// The issue's example: with a default project that is bound to no OpenAI project, a
/// comma-listed `OpenAI-Project` used to reach the default project's upstream as it was.
#[tokio::test]
async fn a_comma_listed_project_header_is_refused_even_without_a_bound_default() {
    let projects = r#"
[[projects]]
name = "eu-open"
region = "eu"
retention = "zdr"
default = true

[[projects]]
name = "us-std"
region = "us"
retention = "default"
openai_project = "proj_us"
"#;
    let env = Env::with("", projects, &[]).await;
    let cases = vec![
        Case::new(
            "one header, two projects",
            chat(&env, &[("OpenAI-Project", "proj_us, proj_eumam")], STORED),
            Expect::Denied("no_project"),
        ),
        Case::new(
            "a project id with a space",
            chat(&env, &[("OpenAI-Project", "proj_us proj_eumam")], STORED),
            Expect::Denied("no_project"),
        ),
        Case::new(
            "one id: selected",
            chat(&env, &[("OpenAI-Project", "proj_us")], BODY),
            same("us", CHAT, BODY.as_bytes()),
        ),
    ];
    run_cases(&env, cases).await;
}

/// Names with `_` that alias nothing we read are dropped before forwarding (nginx's default),
/// or refused with `headers.underscores = "refuse"`.
#[tokio::test]
async fn underscore_header_names_are_dropped_or_refused_as_configured() {
    let env = env_with("").await;
    let r = send_raw(
        env.proxy.addr,
        &chat(
            &env,
            &[("OpenAI-Project", "proj_eu"), ("X_Trace", "1"), ("X-Kept", "1")],
            BODY,
        ),
    )
    .await;
    assert_eq!(r.status, 200, "{r:#?}");
    let got = &env.eu.requests()[0];
    assert!(got.header("x_trace").is_none(), "x_trace was forwarded");
    assert_eq!(got.header("x-kept").as_deref(), Some("1"));

    let strict = env_with("[headers]\nunderscores = \"refuse\"\n").await;
    let cases = vec![Case::new(
        "X_Trace under underscores = refuse",
        chat(&strict, &[("OpenAI-Project", "proj_eu"), ("X_Trace", "1")], BODY),
        MALFORMED,
    )];
    run_cases(&strict, cases).await;
}

/// A project that injects its upstream key replaces the client's subprotocol key too: the
/// upstream sees one identity, and never the client's key.
#[tokio::test]
async fn an_injected_upstream_key_replaces_the_subprotocol_key() {
    let env = Env::standard().await;
    let protocols = format!("realtime, openai-insecure-api-key.{US_CLIENT_KEY}, openai-beta.realtime-v1");
    let mut c = Conn::open(
        env.proxy.addr,
        &websocket(&env, &[("Sec-WebSocket-Protocol", &protocols)]),
    )
    .await;
    let (status, headers) = tokio::time::timeout(std::time::Duration::from_secs(10), c.head())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status, 101, "{headers:?}");
    assert!(
        headers
            .iter()
            .any(|(k, v)| k.eq_ignore_ascii_case("x-residency-project") && v == "us-std"),
        "{headers:?}"
    );
    let got = &env.us.requests()[0];
    assert_eq!(
        got.header("authorization").as_deref(),
        Some(format!("Bearer {US_UPSTREAM_KEY}").as_str())
    );
    let forwarded = got.header_all("sec-websocket-protocol").join(", ");
    assert_eq!(forwarded, "realtime, openai-beta.realtime-v1");
    assert!(!forwarded.contains(US_CLIENT_KEY));
}
