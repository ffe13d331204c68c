//! Region routing and project selection.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use serde_json::json;
use support::*;

const CHAT: &str = "/v1/chat/completions";

fn chat() -> String {
    json!({"model": "gpt-4o-2024-08-06", "messages": [{"role": "user", "content": "hi"}]}).to_string()
}

#[tokio::test]
async fn eu_project_goes_to_eu_only() {
    let env = Env::standard().await;
    let r = env.post_as("proj_eu", CHAT, &chat()).await;
    assert_eq!(r.status, 200, "{r:#?}");
    r.assert_residency("allow", "eu-zdr", "eu");
    assert_eq!(r.header("x-mock-upstream"), Some("eu"));
    assert_eq!(r.json()["object"], "chat.completion");
    assert_eq!(env.eu.request_count(), 1);
    assert_eq!(env.us.request_count(), 0);
    let got = &env.eu.requests()[0];
    assert_eq!(got.path_and_query, CHAT);
    assert_eq!(got.host.as_deref(), Some(env.eu.addr().to_string().as_str()));
}

#[tokio::test]
async fn us_project_goes_to_us_only() {
    let env = Env::standard().await;
    let r = env.post_as("proj_us", CHAT, &chat()).await;
    assert_eq!(r.status, 200, "{r:#?}");
    r.assert_residency("allow", "us-std", "us");
    assert_eq!(r.header("x-mock-upstream"), Some("us"));
    assert_eq!(env.us.request_count(), 1);
    assert_eq!(env.eu.request_count(), 0);
    assert_eq!(
        env.us.requests()[0].host.as_deref(),
        Some(env.us.addr().to_string().as_str())
    );
}

#[tokio::test]
async fn many_requests_keep_their_regions() {
    let env = Env::standard().await;
    let mut tasks = Vec::new();
    for i in 0..20 {
        let project = if i % 2 == 0 { "proj_eu" } else { "proj_us" };
        let req = build_request(
            env.proxy.addr,
            "POST",
            CHAT,
            &[
                ("Content-Type", "application/json"),
                ("OpenAI-Project", project),
                ("X-Seq", &i.to_string()),
            ],
            chat().as_bytes(),
        );
        let addr = env.proxy.addr;
        tasks.push(tokio::spawn(async move { (i, send_raw(addr, &req).await) }));
    }
    for t in tasks {
        let (i, r) = t.await.unwrap();
        assert_eq!(r.status, 200);
        let region = if i % 2 == 0 { "eu" } else { "us" };
        assert_eq!(r.header("x-residency-region"), Some(region));
        assert_eq!(r.header("x-mock-upstream"), Some(region));
    }
    for r in env.eu.requests() {
        assert_eq!(r.header("x-seq").unwrap().parse::<u32>().unwrap() % 2, 0);
    }
    for r in env.us.requests() {
        assert_eq!(r.header("x-seq").unwrap().parse::<u32>().unwrap() % 2, 1);
    }
    assert_eq!(env.eu.request_count(), 10);
    assert_eq!(env.us.request_count(), 10);
}

#[tokio::test]
async fn selection_by_client_key_hash() {
    let env = Env::standard().await;
    let r = env
        .post_json(
            CHAT,
            &[("Authorization", &format!("Bearer {US_CLIENT_KEY}"))],
            &chat(),
        )
        .await;
    r.assert_residency("allow", "us-std", "us");
    let r = env
        .post_json(
            CHAT,
            &[("Authorization", &format!("Bearer {EU_CLIENT_KEY}"))],
            &chat(),
        )
        .await;
    r.assert_residency("allow", "eu-zdr", "eu");
    // A key and an OpenAI-Project header naming the same project agree.
    let r = env
        .post_json(
            CHAT,
            &[
                ("Authorization", &format!("Bearer {US_CLIENT_KEY}")),
                ("OpenAI-Project", "proj_us"),
            ],
            &chat(),
        )
        .await;
    r.assert_residency("allow", "us-std", "us");
    assert_eq!(env.us.request_count(), 2);
    assert_eq!(env.us.requests()[1].header_all("openai-project"), ["proj_us"]);
    // A key and a header naming different projects are ambiguous: refused, not guessed.
    let r = env
        .post_json(
            CHAT,
            &[
                ("Authorization", &format!("Bearer {US_CLIENT_KEY}")),
                ("OpenAI-Project", "proj_eu_mam"),
            ],
            &chat(),
        )
        .await;
    let v = r.assert_denied("no_project", None);
    assert!(
        v["error"]["message"].as_str().unwrap().contains("ambiguous"),
        "{v}"
    );
    assert_eq!(env.us.request_count(), 2);
    assert_eq!(env.eu.request_count(), 1);
}

#[tokio::test]
async fn selection_by_openai_project_header() {
    let env = Env::standard().await;
    for (header, name, region) in [
        ("proj_eu_mam", "eu-mam", "eu"),
        ("proj_us_zdr", "us-zdr", "us"),
        ("proj_eu_img", "eu-img", "eu"),
    ] {
        let r = env
            .post_json(
                CHAT,
                &[("Authorization", "Bearer sk-unknown"), ("OpenAI-Project", header)],
                &chat(),
            )
            .await;
        assert_eq!(r.status, 200, "{r:#?}");
        r.assert_residency("allow", name, region);
    }
    assert_eq!(env.eu.request_count(), 2);
    assert_eq!(env.us.request_count(), 1);
}

#[tokio::test]
async fn default_project_when_nothing_matches() {
    let env = Env::standard().await;
    let r = env
        .post_json(CHAT, &[("Authorization", "Bearer sk-unknown")], &chat())
        .await;
    assert_eq!(r.status, 200, "{r:#?}");
    r.assert_residency("allow", "eu-zdr", "eu");
    let r = env.post_json(CHAT, &[], &chat()).await;
    r.assert_residency("allow", "eu-zdr", "eu");
    let got = env.eu.requests();
    assert_eq!(got.len(), 2);
    assert_eq!(got[1].header_all("openai-project"), ["proj_eu"]);
    // An OpenAI-Project header naming an OpenAI project no configured project has is not
    // silently sent under the default project's OpenAI project: refused as ambiguous.
    let r = env
        .post_json(CHAT, &[("OpenAI-Project", "proj_someone_else")], &chat())
        .await;
    r.assert_denied("no_project", None);
    assert_eq!(env.eu.request_count(), 2);
    assert_eq!(env.us.request_count(), 0);
}

#[tokio::test]
async fn keep_alive_connection_serves_several_projects() {
    let env = Env::standard().await;
    let mut req = build_request(
        env.proxy.addr,
        "POST",
        CHAT,
        &[
            ("Content-Type", "application/json"),
            ("OpenAI-Project", "proj_eu"),
        ],
        chat().as_bytes(),
    );
    req.extend(build_request(
        env.proxy.addr,
        "POST",
        CHAT,
        &[
            ("Content-Type", "application/json"),
            ("OpenAI-Project", "proj_us"),
        ],
        chat().as_bytes(),
    ));
    let mut c = Conn::open(env.proxy.addr, &req).await;
    let a = c.response(false).await.unwrap();
    let b = c.response(false).await.unwrap();
    a.assert_residency("allow", "eu-zdr", "eu");
    b.assert_residency("allow", "us-std", "us");
    assert_eq!(env.eu.request_count(), 1);
    assert_eq!(env.us.request_count(), 1);
}
