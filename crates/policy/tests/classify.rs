//! Method + path → operation; canonical form only.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

mod common;

use common::catalog;
use policy::ClassifyError;

fn concrete(template: &str) -> String {
    template
        .split('/')
        .map(|s| if s.starts_with('{') { "id_1-x.y~:@z" } else { s })
        .collect::<Vec<_>>()
        .join("/")
}

#[test]
fn every_operation_classifies_to_itself() {
    let c = catalog();
    for (id, op) in c.operations.iter().enumerate() {
        assert_eq!(
            c.classify(&op.method, &concrete(&op.template)),
            Ok(id),
            "{} {}",
            op.method,
            op.template
        );
        assert_eq!(
            c.classify(&op.method, &op.template).is_ok(),
            !op.template.contains('{'),
            "{}",
            op.template
        );
    }
    println!("{} operations round-trip", c.operations.len());
}

#[test]
fn known_paths() {
    let c = catalog();
    let ep = |m: &str, p: &str| {
        c.classify(m, p)
            .map(|id| (c.endpoint_of(id).id.clone(), c.operation(id).template.clone()))
    };
    let ok = |e: &str, t: &str| Ok((e.to_owned(), t.to_owned()));
    assert_eq!(
        ep("POST", "/v1/chat/completions"),
        ok("/v1/chat/completions", "/v1/chat/completions")
    );
    assert_eq!(
        ep("GET", "/v1/chat/completions"),
        ok("/v1/chat/completions", "/v1/chat/completions")
    );
    assert_eq!(
        ep("POST", "/v1/threads/runs"),
        ok("/v1/threads/runs", "/v1/threads/runs")
    );
    assert_eq!(
        ep("GET", "/v1/threads/thread_abc"),
        ok("/v1/threads", "/v1/threads/{thread_id}")
    );
    assert_eq!(
        ep("GET", "/v1/threads/t1/runs/r1/steps/s1"),
        ok(
            "/v1/threads/runs/steps",
            "/v1/threads/{thread_id}/runs/{run_id}/steps/{step_id}"
        )
    );
    assert_eq!(
        ep("POST", "/v1/threads/t1/messages"),
        ok("/v1/threads/messages", "/v1/threads/{thread_id}/messages")
    );
    assert_eq!(ep("GET", "/v1/realtime"), ok("/v1/realtime", "/v1/realtime"));
    assert_eq!(
        ep("GET", "/v1/models/gpt-4o"),
        ok("/v1/models", "/v1/models/{model}")
    );
    assert_eq!(
        ep("GET", "/v1/models/ft:gpt-4o-mini:org:x:abc"),
        ok("/v1/models", "/v1/models/{model}")
    );
    assert_eq!(
        ep("POST", "/v1/responses/resp_1/cancel"),
        ok("/v1/responses", "/v1/responses/{response_id}/cancel")
    );
    assert_eq!(
        ep("GET", "/v1/files/file-abc/content"),
        ok("/v1/files", "/v1/files/{file_id}/content")
    );
}

#[test]
fn unknown_operations() {
    let c = catalog();
    for (m, p) in [
        ("PUT", "/v1/chat/completions"),
        ("post", "/v1/chat/completions"),
        ("POST", "/V1/chat/completions"),
        ("POST", "/v1/Chat/completions"),
        ("POST", "/v1/chat/completions.json"),
        ("POST", "/v2/chat/completions"),
        ("POST", "/chat/completions"),
        ("POST", "/v1/conversations"),
        ("POST", "/v1/evals"),
        ("GET", "/v1/uploads"),
        ("POST", "/v1/realtime/translations/client_secrets"),
        ("POST", "/v1/responses/input_tokens"),
        ("DELETE", "/v1/models/ft:x"),
        ("GET", "/v1/models/a/b"),
        ("POST", "/v1/fine_tuning/alpha/graders/run"),
        ("GET", "/v1"),
        ("GET", "/v1/files/a/content/extra"),
    ] {
        assert_eq!(c.classify(m, p), Err(ClassifyError::Unknown), "{m} {p}");
    }
}

#[test]
fn non_canonical_paths_are_refused() {
    let c = catalog();
    for p in [
        "",
        "v1/chat/completions",
        "/",
        "//v1/chat/completions",
        "/v1//chat/completions",
        "/v1/chat/completions/",
        "/v1/./chat/completions",
        "/v1/chat/../chat/completions",
        "/v1/files/..",
        "/v1/files/.",
        "/v1/chat%2Fcompletions",
        "/v1/chat/completion%73",
        "/v1/files/file%2D1",
        "/v1/files/a;b",
        "/v1/chat/completions;x=1",
        "/v1/files/a b",
        "/v1/files/a\tb",
        "/v1/files/\u{e4}",
        "/v1/files/a\\b",
        "/v1\\chat\\completions",
        "/v1/files/a?b",
        "/v1/files/a#b",
        "/v1/files/{file_id}",
        "/v1/files/a+b",
        "/v1/files/a,b",
        "/v1/files/a'b",
        "/v1/files/a\"b",
        "/v1/files/a\0b",
    ] {
        assert!(
            matches!(c.classify("GET", p), Err(ClassifyError::NotCanonical(_))),
            "{p:?}: {:?}",
            c.classify("GET", p)
        );
    }
    assert_eq!(
        c.classify("GET", "/v1/files/a%2e").unwrap_err().to_string(),
        "request path is not canonical: percent-encoding is not accepted"
    );
}
