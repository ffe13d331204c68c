//! Table-driven adversarial cases over raw TCP, shared by `adversarial_*.rs`.
//!
//! Each case is the exact bytes written to the proxy and what must follow: either a refusal
//! (status, error code, and nothing at all reaching any upstream) or a forward (the one
//! mock of the expected region received exactly one request with exactly this path and body).
//! Failures are collected so one run shows every case that is wrong, not just the first.
use std::time::Duration;

use super::*;

/// What must happen to a case.
#[derive(Debug, Clone)]
pub enum Expect {
    /// The proxy answers `status` with the OpenAI-shaped error `code`; nothing is forwarded.
    Refused(u16, &'static str),
    /// A policy denial (403, residency_policy_violation) naming `rule`; nothing is forwarded.
    Denied(&'static str),
    /// A refusal by the HTTP layer itself, before any handler runs: one of `statuses` (or the
    /// connection closed without a response when `statuses` contains 0); nothing is forwarded.
    /// Used only for framing that hyper rejects while parsing, where no error body is written.
    Rejected(&'static [u16]),
    /// Forwarded to the mock of `region` with path-and-query `path` and exactly `body`.
    Forwarded {
        region: &'static str,
        path: String,
        body: Vec<u8>,
    },
}

pub struct Case {
    pub name: String,
    pub raw: Vec<u8>,
    pub expect: Expect,
}

impl Case {
    pub fn new(name: impl Into<String>, raw: Vec<u8>, expect: Expect) -> Case {
        Case {
            name: name.into(),
            raw,
            expect,
        }
    }
}

/// Forwarded unchanged: the body the policy read is the body sent.
pub fn same(region: &'static str, path: &str, body: &[u8]) -> Expect {
    Expect::Forwarded {
        region,
        path: path.to_string(),
        body: body.to_vec(),
    }
}

/// Forwarded with a different body (a rewrite, a decompression).
pub fn rewritten(region: &'static str, path: &str, body: &[u8]) -> Expect {
    same(region, path, body)
}

/// A raw request with `Host`, the given headers in order, and Content-Length unless a
/// Content-Length or Transfer-Encoding header is given.
pub fn raw(env: &Env, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    build_request(env.proxy.addr, method, path, headers, body)
}

/// A JSON POST as project `project` (by `OpenAI-Project`).
pub fn json_post(env: &Env, project: &str, path: &str, body: &[u8]) -> Vec<u8> {
    raw(
        env,
        "POST",
        path,
        &[("Content-Type", "application/json"), ("OpenAI-Project", project)],
        body,
    )
}

/// Reads one response to `request`, or None when the proxy closed the connection first.
async fn exchange(env: &Env, request: &[u8]) -> Option<Resp> {
    let head = request.starts_with(b"HEAD ");
    let fut = async {
        let mut c = Conn::open(env.proxy.addr, request).await;
        c.response(head).await
    };
    tokio::time::timeout(Duration::from_secs(20), fut)
        .await
        .unwrap_or_else(|_| panic!("no response within 20 s"))
}

fn recorded(env: &Env) -> Vec<(&'static str, mock_openai::Recorded)> {
    let mut all: Vec<_> = env.eu.requests().into_iter().map(|r| ("eu", r)).collect();
    all.extend(env.us.requests().into_iter().map(|r| ("us", r)));
    all
}

/// Runs every case in order and panics listing each case that did not behave as expected.
/// Returns how many cases ran.
pub async fn run_cases(env: &Env, cases: Vec<Case>) -> usize {
    let mut failures = Vec::new();
    let n = cases.len();
    for case in cases {
        env.eu.clear();
        env.us.clear();
        let resp = exchange(env, &case.raw).await;
        if let Err(why) = check(env, &case, resp.as_ref()).await {
            failures.push(format!("- {}: {why}", case.name));
        }
    }
    // A late forward of any refused case would show up here.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        failures.is_empty(),
        "{} of {n} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    n
}

async fn check(env: &Env, case: &Case, resp: Option<&Resp>) -> Result<(), String> {
    match &case.expect {
        Expect::Rejected(statuses) => {
            match resp {
                None if statuses.contains(&0) => {}
                None => return Err("connection closed without a response".into()),
                Some(r) if statuses.contains(&r.status) => {}
                Some(r) => return Err(format!("expected one of {statuses:?}, got {r:?}")),
            }
            nothing_forwarded(env)
        }
        Expect::Refused(status, code) => {
            let r = resp.ok_or("connection closed without a response")?;
            error_shape(r, *status, code)?;
            nothing_forwarded(env)
        }
        Expect::Denied(rule) => {
            let r = resp.ok_or("connection closed without a response")?;
            error_shape(r, 403, "residency_policy_violation")?;
            if !r.rules().iter().any(|x| x == rule) {
                return Err(format!("rule {rule} not in {:?}", r.rules()));
            }
            if r.header("x-residency-decision") != Some("deny") {
                return Err(format!("decision header: {r:?}"));
            }
            nothing_forwarded(env)
        }
        Expect::Forwarded { region, path, body } => {
            let r = resp.ok_or("connection closed without a response")?;
            if r.status != 200 {
                return Err(format!("expected 200, got {r:?}"));
            }
            let mock = if *region == "eu" { &env.eu } else { &env.us };
            // The mock records before it answers, so the request is there already.
            let got = recorded(env);
            if got.len() != 1 || got[0].0 != *region {
                return Err(format!(
                    "expected one request at {region}, got {:?}",
                    got.iter()
                        .map(|(m, r)| format!("{m} {}", r.path_and_query))
                        .collect::<Vec<_>>()
                ));
            }
            let rec = &mock.requests()[0];
            if rec.path_and_query != *path {
                return Err(format!(
                    "upstream path {:?}, expected {path:?}",
                    rec.path_and_query
                ));
            }
            if rec.body[..] != body[..] {
                return Err(format!(
                    "upstream body differs:\n  got      {:?}\n  expected {:?}",
                    String::from_utf8_lossy(&rec.body),
                    String::from_utf8_lossy(body)
                ));
            }
            let cl = rec.header("content-length");
            if !body.is_empty() && cl != Some(body.len().to_string()) {
                return Err(format!("upstream content-length {cl:?} for {} bytes", body.len()));
            }
            // The body forwarded is the decoded one the policy read: no encoding may remain.
            if rec
                .header("content-encoding")
                .is_some_and(|e| !e.eq_ignore_ascii_case("identity"))
            {
                return Err("forwarded body still says Content-Encoding".into());
            }
            Ok(())
        }
    }
}

fn nothing_forwarded(env: &Env) -> Result<(), String> {
    let got = recorded(env);
    if got.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "refused, yet reached an upstream: {:?}",
            got.iter()
                .map(|(m, r)| format!("{m} {} {:?}", r.path_and_query, String::from_utf8_lossy(&r.body)))
                .collect::<Vec<_>>()
        ))
    }
}

/// The OpenAI error shape with `status` and `code`.
pub fn error_shape(r: &Resp, status: u16, code: &str) -> Result<(), String> {
    if r.status != status {
        return Err(format!("expected {status} {code}, got {r:?}"));
    }
    let v: serde_json::Value =
        serde_json::from_slice(&r.body).map_err(|e| format!("error body is not JSON ({e}): {r:?}"))?;
    let e = &v["error"];
    let ok = e["code"] == code
        && e["type"].is_string()
        && e["message"].as_str().is_some_and(|m| !m.is_empty())
        && e.get("param").is_some()
        && v.as_object().is_some_and(|o| o.len() == 1);
    if !ok {
        return Err(format!("not the error shape with code {code}: {v}"));
    }
    if r.header("x-residency-decision").is_none() {
        return Err(format!("no x-residency-decision: {r:?}"));
    }
    Ok(())
}

/// Whether the proxy still answers a normal request promptly (after abuse).
pub async fn assert_healthy(env: &Env) {
    env.eu.clear();
    let body = br#"{"model":"gpt-4o-2024-08-06","messages":[{"role":"user","content":"ok?"}]}"#;
    let r = tokio::time::timeout(
        Duration::from_secs(5),
        send_raw(
            env.proxy.addr,
            &json_post(env, "proj_eu", "/v1/chat/completions", body),
        ),
    )
    .await
    .expect("the proxy did not answer a normal request within 5 s");
    assert_eq!(r.status, 200, "{r:#?}");
    assert_eq!(&env.eu.requests()[0].body[..], &body[..]);
}

/// The standard projects plus `glob-zdr` (region global, ZDR, selected by `proj_glob`), whose
/// traffic goes to the `us` mock: images edits are offered only there.
pub async fn env_with(tables: &str) -> Env {
    let (eu, us) = mocks().await;
    let body = format!(
        "[upstream]\nbase_urls = {{ eu = \"{}\", us = \"{}\", global = \"{}\" }}\n\n{tables}\n{}\n\
[[projects]]\nname = \"glob-zdr\"\nregion = \"global\"\nretention = \"zdr\"\nopenai_project = \"proj_glob\"\n",
        eu.base_url(),
        us.base_url(),
        us.base_url(),
        standard_projects()
    );
    let proxy = Proxy::start(&body, &standard_env()).await;
    Env { eu, us, proxy }
}
