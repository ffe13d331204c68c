//! Issue 6, part 2: request targets. Every spelling of a path either is the one canonical
//! form of a catalog endpoint, forwarded exactly as it came, or is refused before anything is
//! forwarded. What reached the upstream is asserted for every case.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use support::cases::*;
use support::*;

const BODY: &[u8] = br#"{"model":"gpt-4o-2024-08-06","messages":[]}"#;

fn get(env: &Env, target: &str) -> Vec<u8> {
    format!(
        "GET {target} HTTP/1.1\r\nHost: {}\r\nOpenAI-Project: proj_eu\r\n\r\n",
        env.proxy.addr
    )
    .into_bytes()
}

fn post(env: &Env, target: &str) -> Vec<u8> {
    let mut r = format!(
        "POST {target} HTTP/1.1\r\nHost: {}\r\nOpenAI-Project: proj_eu\r\nContent-Type: application/json\r\n\
Content-Length: {}\r\n\r\n",
        env.proxy.addr,
        BODY.len()
    )
    .into_bytes();
    r.extend_from_slice(BODY);
    r
}

/// A refusal by policy (unknown or non-canonical endpoint) or by the HTTP parser: either way
/// nothing is forwarded. The parser answers a bare 400 (no JSON body, no handler ran).
const PARSER_400: Expect = Expect::Rejected(&[400]);

#[tokio::test]
async fn paths_map_to_one_endpoint_in_canonical_form_or_are_refused() {
    let env = env_with("").await;
    let fwd = |target: &str| (target.to_string(), get(&env, target), same("eu", target, b""));
    let unknown = |target: &str| {
        (
            target.to_string(),
            get(&env, target),
            Expect::Denied("unknown_endpoint"),
        )
    };
    let mut table: Vec<(String, Vec<u8>, Expect)> = vec![
        fwd("/v1/models"),
        fwd("/v1/models/gpt-4o-2024-08-06"),
        fwd("/v1/models?limit=2&after=a%2Fb"),
        fwd("/v1/models/ft:gpt-4o:org@x"),
        fwd("/v1/models?"),
        fwd("/v1/models?a=%2e%2e%2f"),
        // Trailing slash, repeated slashes.
        unknown("/v1/models/"),
        unknown("//v1/models"),
        unknown("/v1//models"),
        unknown("/v1/models//"),
        unknown("/v1/models/gpt-4o-2024-08-06/"),
        // Dot segments, raw and encoded.
        unknown("/v1/./models"),
        unknown("/v1/../v1/models"),
        unknown("/v1/models/.."),
        unknown("/v1/models/."),
        unknown("/v1/x/../models"),
        unknown("/v1/models/%2e%2e"),
        unknown("/v1/models/.%2e"),
        unknown("/v1/%2e/models"),
        // Percent-encoding, encoded slashes and backslashes.
        unknown("/v1/%6dodels"),
        unknown("/v1/mode%6Cs"),
        unknown("/v1%2fmodels"),
        unknown("/v1/models%2Fgpt-4o-2024-08-06"),
        unknown("/v1/models/a%2F..%2F..%2Fchat"),
        unknown("/v1/models%5C"),
        unknown("/v1/models/%00"),
        unknown("/v1/models%20"),
        // Case.
        unknown("/V1/models"),
        unknown("/v1/Models"),
        unknown("/v1/MODELS"),
        // Matrix parameters.
        unknown("/v1/models;x=1"),
        unknown("/v1;a/models"),
        unknown("/v1/models/gpt-4o;v=1"),
        // Other characters outside the canonical set.
        unknown("/v1/models/a+b"),
        unknown("/v1/models/a!b"),
        unknown("/v1/models/a$b"),
        unknown("/v1/models/a,b"),
        unknown("/v1/models/a'b"),
        unknown("/v1/models/a*b"),
        unknown("/v1/models/a(b)"),
        unknown("/v1/models/a=b"),
        unknown("/v1/models/a&b"),
        unknown("/v1/models.json"),
        unknown("/v2/models"),
        unknown("/models"),
        unknown("/"),
    ];
    // Bytes outside the URI grammar that the HTTP parser lets through: the classifier refuses.
    for target in [
        "/v1\\models",
        "/v1/models\\",
        "/v1/models\\..\\chat",
        "/v1/mod\u{e8}ls",
        "/v1/models\"",
        "/v1/models{x}",
        "/v1/models|x",
        "/v1/models^x",
    ] {
        table.push((
            target.to_string(),
            get(&env, target),
            Expect::Denied("unknown_endpoint"),
        ));
    }
    // Bytes the HTTP parser itself refuses as a request target.
    for target in [
        "/v1/mo dels",
        "/v1/models\u{7f}",
        "v1/models",
        "/v1/models<x>",
        "/v1/models`x",
    ] {
        table.push((target.to_string(), get(&env, target), PARSER_400));
    }
    // A fragment is not part of a request target: it is dropped, and the rest is forwarded
    // exactly as the policy read it.
    table.push((
        "fragment".into(),
        get(&env, "/v1/models#frag"),
        same("eu", "/v1/models", b""),
    ));
    table.push((
        "fragment after a query".into(),
        get(&env, "/v1/models?x=1#y&z"),
        same("eu", "/v1/models?x=1", b""),
    ));
    table.push((
        "fragment hiding a dot segment".into(),
        get(&env, "/v1/models/..#/x"),
        Expect::Denied("unknown_endpoint"),
    ));
    // The same on a POST with a body that would be allowed on the canonical path.
    for target in [
        "/v1/chat/completions/",
        "/v1/chat//completions",
        "/v1/chat/./completions",
        "/v1/chat/x/../completions",
        "/v1/chat/%63ompletions",
        "/v1/chat%2Fcompletions",
        "/v1/Chat/completions",
        "/v1/chat/completions;store=true",
        "/v1/models/../chat/completions",
    ] {
        table.push((
            target.to_string(),
            post(&env, target),
            Expect::Denied("unknown_endpoint"),
        ));
    }
    table.push((
        "/v1/chat/completions".into(),
        post(&env, "/v1/chat/completions"),
        same("eu", "/v1/chat/completions", BODY),
    ));
    table.push((
        "/v1/chat/completions?x=%2F..".into(),
        post(&env, "/v1/chat/completions?x=%2F.."),
        same("eu", "/v1/chat/completions?x=%2F..", BODY),
    ));
    // Methods: exact and upper case only. HEAD goes wherever the catalog allows the GET
    // (issue 10; RFC 9110 §9.3.2).
    table.push((
        "HEAD".into(),
        b"HEAD /v1/models HTTP/1.1\r\nHost: x\r\nOpenAI-Project: proj_eu\r\n\r\n".to_vec(),
        same("eu", "/v1/models", b""),
    ));
    // A HEAD refusal has no body to carry the error: its status and headers say it.
    table.push((
        "HEAD of an endpoint with no GET".into(),
        b"HEAD /v1/embeddings HTTP/1.1\r\nHost: x\r\nOpenAI-Project: proj_eu\r\n\r\n".to_vec(),
        Expect::Rejected(&[403]),
    ));
    for (name, method) in [
        ("lower-case get", "get"),
        ("PUT", "PUT"),
        ("Get", "Get"),
        ("DELETE", "DELETE"),
    ] {
        table.push((
            name.into(),
            format!("{method} /v1/models HTTP/1.1\r\nHost: x\r\nOpenAI-Project: proj_eu\r\n\r\n")
                .into_bytes(),
            Expect::Denied("unknown_endpoint"),
        ));
    }
    table.push((
        "OPTIONS *".into(),
        b"OPTIONS * HTTP/1.1\r\nHost: x\r\nOpenAI-Project: proj_eu\r\n\r\n".to_vec(),
        Expect::Denied("unknown_endpoint"),
    ));
    let cases = table
        .into_iter()
        .map(|(name, raw, expect)| Case::new(name, raw, expect))
        .collect();
    let n = run_cases(&env, cases).await;
    println!("path cases: {n}");
    assert_healthy(&env).await;
}

#[tokio::test]
async fn realtime_query_model_is_read_once() {
    // Realtime is offered in the US only; the model comes from the query.
    let env = env_with("").await;
    let target = |q: &str| format!("/v1/realtime?{q}");
    let req = |q: &str| {
        format!(
            "GET {} HTTP/1.1\r\nHost: x\r\nOpenAI-Project: proj_us\r\n\r\n",
            target(q)
        )
        .into_bytes()
    };
    let bad = Expect::Refused(400, "invalid_body");
    let cases = vec![
        Case::new(
            "model twice",
            req("model=gpt-4o-realtime-preview-2024-12-17&model=gpt-4"),
            bad.clone(),
        ),
        Case::new("model twice, same", req("model=a&model=a"), bad.clone()),
        Case::new("encoded key lookalike", req("model=gpt-4&mod%65l=x"), bad.clone()),
        Case::new("bad percent-encoding", req("model=gpt%zz"), bad.clone()),
        Case::new(
            "semicolon separator hiding a model",
            req("x=1;model=gpt-4&model=gpt-4o-realtime-preview-2024-12-17"),
            bad.clone(),
        ),
        Case::new(
            "encoded NUL",
            req("model=gpt-4o%00"),
            Expect::Denied("model_not_eligible"),
        ),
        Case::new("no model", req("x=1"), Expect::Denied("model_not_eligible")),
        Case::new(
            "ineligible model",
            req("model=gpt-4"),
            Expect::Denied("model_not_eligible"),
        ),
    ];
    let n = run_cases(&env, cases).await;
    println!("realtime query cases: {n}");
}
