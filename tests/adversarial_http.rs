//! Issue 6, part 3: HTTP framing and headers that a proxy and an upstream could read
//! differently: conflicting lengths, transfer codings, absolute-form targets, CONNECT, oversized
//! and injected headers, Host, and project selection headers. Refused without forwarding
//! anything; the proxy only ever connects to its configured upstreams.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use support::cases::*;
use support::*;

const CHAT: &str = "/v1/chat/completions";
const BODY: &str = r#"{"model":"gpt-4o-2024-08-06","messages":[]}"#;

/// `POST /v1/chat/completions` as proj_eu with `extra` header lines (each ending CRLF) and
/// `tail` (the rest: more headers, the blank line, the body), verbatim.
fn head(env: &Env, extra: &str, tail: &str) -> Vec<u8> {
    format!(
        "POST {CHAT} HTTP/1.1\r\nHost: {}\r\nOpenAI-Project: proj_eu\r\nContent-Type: application/json\r\n{extra}{tail}",
        env.proxy.addr
    )
    .into_bytes()
}

fn with_len(env: &Env, extra: &str) -> Vec<u8> {
    head(
        env,
        extra,
        &format!("Content-Length: {}\r\n\r\n{BODY}", BODY.len()),
    )
}

fn chunked(env: &Env, te: &str) -> Vec<u8> {
    head(
        env,
        "",
        &format!(
            "Transfer-Encoding: {te}\r\n\r\n{:x}\r\n{BODY}\r\n0\r\n\r\n",
            BODY.len()
        ),
    )
}

const BAD_REQUEST: Expect = Expect::Refused(400, "invalid_request");
/// hyper's parser refuses these before any handler runs: a bare 400 (or a closed connection).
const PARSER: Expect = Expect::Rejected(&[400, 0]);

fn framing_cases(env: &Env) -> Vec<Case> {
    let n = BODY.len();
    let ok = || same("eu", CHAT, BODY.as_bytes());
    vec![
        Case::new("baseline content-length", with_len(env, ""), ok()),
        Case::new("baseline chunked", chunked(env, "chunked"), ok()),
        Case::new("chunked, upper case", chunked(env, "Chunked"), ok()),
        // Identical repeated lengths are one length (RFC 9110 §8.6): hyper keeps one, and the
        // upstream gets the length we set.
        Case::new(
            "two equal content-lengths",
            head(env, &format!("Content-Length: {n}\r\n"), &format!("Content-Length: {n}\r\n\r\n{BODY}")),
            ok(),
        ),
        Case::new(
            "two different content-lengths",
            head(env, "Content-Length: 5\r\n", &format!("Content-Length: {n}\r\n\r\n{BODY}")),
            PARSER,
        ),
        Case::new(
            "content-length list",
            head(env, "", &format!("Content-Length: {n}, {n}\r\n\r\n{BODY}")),
            PARSER,
        ),
        Case::new(
            "content-length and chunked",
            head(
                env,
                &format!("Content-Length: {n}\r\n"),
                &format!("Transfer-Encoding: chunked\r\n\r\n{n:x}\r\n{BODY}\r\n0\r\n\r\n"),
            ),
            // The request-smuggling shape. hyper would resolve it (drop the Content-Length,
            // read by chunked) before the handler sees it, so the framing guard in front of
            // hyper refuses the head itself; `te_and_cl_cannot_smuggle_a_second_request` pins
            // the pipelined form.
            BAD_REQUEST,
        ),
        Case::new(
            "chunked and content-length",
            head(
                env,
                "Transfer-Encoding: chunked\r\n",
                &format!("Content-Length: {n}\r\n\r\n{n:x}\r\n{BODY}\r\n0\r\n\r\n"),
            ),
            BAD_REQUEST,
        ),
        // Codings before the final chunked would reach us as undecoded body bytes.
        Case::new("chunked twice", chunked(env, "chunked, chunked"), BAD_REQUEST),
        Case::new("gzip, chunked", chunked(env, "gzip, chunked"), BAD_REQUEST),
        Case::new("chunked, gzip", chunked(env, "chunked, gzip"), PARSER),
        Case::new("identity coding", chunked(env, "identity"), PARSER),
        Case::new("xchunked", chunked(env, "xchunked"), PARSER),
        Case::new(
            "two transfer-encoding headers",
            head(
                env,
                "Transfer-Encoding: gzip\r\n",
                &format!("Transfer-Encoding: chunked\r\n\r\n{n:x}\r\n{BODY}\r\n0\r\n\r\n"),
            ),
            BAD_REQUEST,
        ),
        Case::new("negative length", head(env, "", &format!("Content-Length: -{n}\r\n\r\n{BODY}")), PARSER),
        Case::new("plus sign length", head(env, "", &format!("Content-Length: +{n}\r\n\r\n{BODY}")), PARSER),
        Case::new("hex length", head(env, "", &format!("Content-Length: 0x{n:x}\r\n\r\n{BODY}")), PARSER),
        Case::new(
            "huge length",
            head(env, "", &format!("Content-Length: 99999999999999999999999\r\n\r\n{BODY}")),
            PARSER,
        ),
        Case::new(
            "chunk size overflow",
            head(env, "", &format!("Transfer-Encoding: chunked\r\n\r\nfffffffffffffffff1\r\n{BODY}\r\n0\r\n\r\n")),
            PARSER,
        ),
        Case::new(
            "chunk size with garbage",
            head(env, "", &format!("Transfer-Encoding: chunked\r\n\r\n{n:x}z\r\n{BODY}\r\n0\r\n\r\n")),
            PARSER,
        ),
        Case::new(
            "chunk data longer than its size",
            head(env, "", &format!("Transfer-Encoding: chunked\r\n\r\n{:x}\r\n{BODY}\r\n0\r\n\r\n", n - 3)),
            PARSER,
        ),
        Case::new(
            "body shorter than content-length",
            head(env, "", &format!("Content-Length: {}\r\n\r\n{BODY}", n + 10)),
            BAD_REQUEST,
        ),
        Case::new(
            "chunked body without its last chunk",
            head(env, "", &format!("Transfer-Encoding: chunked\r\n\r\n{n:x}\r\n{BODY}\r\n")),
            BAD_REQUEST,
        ),
        Case::new(
            "HTTP/1.0 with chunked",
            format!(
                "POST {CHAT} HTTP/1.0\r\nOpenAI-Project: proj_eu\r\nContent-Type: application/json\r\n\
Transfer-Encoding: chunked\r\n\r\n{n:x}\r\n{BODY}\r\n0\r\n\r\n"
            )
            .into_bytes(),
            PARSER,
        ),
        Case::new(
            "HTTP/1.0 with content-length",
            format!(
                "POST {CHAT} HTTP/1.0\r\nOpenAI-Project: proj_eu\r\nContent-Type: application/json\r\n\
Content-Length: {n}\r\n\r\n{BODY}"
            )
            .into_bytes(),
            ok(),
        ),
        Case::new("HTTP/2.0 on an HTTP/1 connection", b"GET /v1/models HTTP/2.0\r\nHost: x\r\n\r\n".to_vec(), PARSER),
        Case::new("HTTP/0.9", b"GET /v1/models\r\n\r\n".to_vec(), PARSER),
        Case::new("HTTP/1.2", b"GET /v1/models HTTP/1.2\r\nHost: x\r\n\r\n".to_vec(), PARSER),
        // Targets that would make a forward proxy connect elsewhere.
        Case::new(
            "absolute-form to OpenAI",
            format!("POST https://api.openai.com{CHAT} HTTP/1.1\r\nHost: api.openai.com\r\nOpenAI-Project: proj_eu\r\nContent-Type: application/json\r\nContent-Length: {n}\r\n\r\n{BODY}").into_bytes(),
            BAD_REQUEST,
        ),
        Case::new(
            "absolute-form to the us mock",
            format!("GET http://{}/v1/models HTTP/1.1\r\nHost: {}\r\nOpenAI-Project: proj_eu\r\n\r\n", env.us.addr(), env.us.addr()).into_bytes(),
            BAD_REQUEST,
        ),
        Case::new(
            "absolute-form, http, Host differs",
            format!("GET http://evil.example/v1/models HTTP/1.1\r\nHost: {}\r\nOpenAI-Project: proj_eu\r\n\r\n", env.proxy.addr).into_bytes(),
            BAD_REQUEST,
        ),
        Case::new(
            "CONNECT to the us mock",
            format!("CONNECT {0} HTTP/1.1\r\nHost: {0}\r\nOpenAI-Project: proj_eu\r\n\r\n", env.us.addr()).into_bytes(),
            BAD_REQUEST,
        ),
        Case::new(
            "CONNECT to OpenAI",
            b"CONNECT api.openai.com:443 HTTP/1.1\r\nHost: api.openai.com:443\r\n\r\n".to_vec(),
            BAD_REQUEST,
        ),
    ]
}

#[tokio::test]
async fn ambiguous_framing_is_refused_without_forwarding() {
    let env = env_with("[timeouts]\nrequest_body_secs = 1\n").await;
    let n = run_cases(&env, framing_cases(&env)).await;
    println!("framing cases: {n}");
    assert_healthy(&env).await;
}

fn header_cases(env: &Env) -> Vec<Case> {
    let ok = || same("eu", CHAT, BODY.as_bytes());
    let deny_project = || Expect::Denied("no_project");
    let mut big = String::new();
    for i in 0..70 {
        big.push_str(&format!("X-Pad-{i}: {}\r\n", "a".repeat(1000)));
    }
    let many: String = (0..200).map(|i| format!("X-H{i}: v\r\n")).collect();
    vec![
        // Size.
        Case::new("70 KB of headers", with_len(env, &big), Expect::Rejected(&[431])),
        Case::new(
            "one 70 KB header",
            with_len(env, &format!("X-Big: {}\r\n", "b".repeat(70_000))),
            Expect::Rejected(&[431]),
        ),
        Case::new("200 headers", with_len(env, &many), Expect::Rejected(&[431])),
        // Injection: control characters in names and values.
        Case::new(
            "CR in a value",
            with_len(env, "X-A: a\rOpenAI-Project: proj_us\r\n"),
            PARSER,
        ),
        Case::new("NUL in a value", with_len(env, "X-A: a\0b\r\n"), PARSER),
        Case::new("NUL in a name", with_len(env, "X-\0A: b\r\n"), PARSER),
        Case::new(
            "obs-fold",
            with_len(env, "X-A: a\r\n OpenAI-Project: proj_us\r\n"),
            PARSER,
        ),
        Case::new(
            "space before colon",
            with_len(env, "OpenAI-Project : proj_us\r\n"),
            PARSER,
        ),
        Case::new("no colon", with_len(env, "OpenAI-Project proj_us\r\n"), PARSER),
        Case::new("empty name", with_len(env, ": x\r\n"), PARSER),
        // A bare LF ends a header line for every parser: it is two headers, read the same way
        // here and upstream (and two OpenAI-Project headers are refused).
        Case::new(
            "bare LF splits a second OpenAI-Project",
            with_len(env, "X-A: a\nOpenAI-Project: proj_us\r\n"),
            deny_project(),
        ),
        // Project selection: one reading or none.
        Case::new(
            "OpenAI-Project twice, different",
            with_len(env, "OpenAI-Project: proj_us\r\n"),
            deny_project(),
        ),
        Case::new(
            "OpenAI-Project twice, same",
            with_len(env, "OpenAI-Project: proj_eu\r\n"),
            deny_project(),
        ),
        Case::new(
            "OpenAI-Project, case-different name",
            with_len(env, "openai-project: proj_us\r\n"),
            deny_project(),
        ),
        Case::new(
            "key selects eu-zdr, header another project",
            with_len(env, &format!("Authorization: Bearer {US_CLIENT_KEY}\r\n")),
            deny_project(),
        ),
        Case::new(
            "two Authorization headers",
            with_len(
                env,
                &format!(
                    "Authorization: Bearer {EU_CLIENT_KEY}\r\nAuthorization: Bearer {US_CLIENT_KEY}\r\n"
                ),
            ),
            deny_project(),
        ),
        Case::new(
            "key of the same project",
            with_len(env, &format!("Authorization: Bearer {EU_CLIENT_KEY}\r\n")),
            ok(),
        ),
        Case::new(
            "Connection names Content-Length",
            with_len(env, "Connection: Content-Length\r\n"),
            ok(),
        ),
        // The type and encoding the body was read by may not be dropped on the way.
        Case::new(
            "Connection names Content-Type",
            with_len(env, "Connection: keep-alive, Content-Type\r\n"),
            BAD_REQUEST,
        ),
        Case::new(
            "Connection names Content-Encoding",
            with_len(env, "Connection: content-encoding\r\n"),
            BAD_REQUEST,
        ),
    ]
}

#[tokio::test]
async fn ambiguous_headers_are_refused_without_forwarding() {
    let env = env_with("").await;
    let mut cases = header_cases(&env);
    // Selection headers without the proj_eu one the other cases start with.
    let bare = |extra: &str| {
        format!(
            "POST {CHAT} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{extra}Content-Length: {}\r\n\r\n{BODY}",
            BODY.len()
        )
        .into_bytes()
    };
    cases.extend([
        Case::new(
            "one header, two projects",
            bare("OpenAI-Project: proj_eu, proj_us\r\n"),
            Expect::Denied("no_project"),
        ),
        Case::new(
            "unknown project, default bound elsewhere",
            bare("OpenAI-Project: proj_other\r\n"),
            Expect::Denied("no_project"),
        ),
        Case::new(
            "project header not UTF-8",
            bare("OpenAI-Project: proj_\u{e9}u\r\n"),
            Expect::Denied("no_project"),
        ),
        Case::new(
            "five OpenAI-Project headers",
            bare(&"OpenAI-Project: proj_eu\r\n".repeat(5)),
            Expect::Denied("no_project"),
        ),
        Case::new(
            "EU key, US project header",
            bare(&format!(
                "Authorization: Bearer {EU_CLIENT_KEY}\r\nOpenAI-Project: proj_us\r\n"
            )),
            Expect::Denied("no_project"),
        ),
    ]);
    let n = run_cases(&env, cases).await;
    println!("header cases: {n}");
    assert_healthy(&env).await;
}

/// Host and absolute-form never choose the upstream: the project's region does.
#[tokio::test]
async fn host_never_chooses_the_upstream() {
    let env = env_with("").await;
    for host in [
        "api.openai.com".to_string(),
        env.us.addr().to_string(),
        "127.0.0.1:1".to_string(),
        String::new(),
    ] {
        env.eu.clear();
        env.us.clear();
        let raw = format!("GET /v1/models HTTP/1.1\r\nHost: {host}\r\nOpenAI-Project: proj_eu\r\n\r\n");
        let r = send_raw(env.proxy.addr, raw.as_bytes()).await;
        assert_eq!(r.status, 200, "Host {host:?}: {r:#?}");
        assert_eq!(env.us.request_count(), 0, "Host {host:?} reached the us mock");
        let got = env.eu.requests();
        assert_eq!(got.len(), 1, "Host {host:?}");
        assert_eq!(got[0].host.as_deref(), Some(env.eu.addr().to_string().as_str()));
        assert_eq!(got[0].header_all("host").len(), 1);
    }
    // Two Host headers are ambiguous (RFC 9112 §3.2): refused by the parser or by us.
    env.eu.clear();
    let raw = format!(
        "GET /v1/models HTTP/1.1\r\nHost: {}\r\nHost: api.openai.com\r\nOpenAI-Project: proj_eu\r\n\r\n",
        env.proxy.addr
    );
    let r = send_raw(env.proxy.addr, raw.as_bytes()).await;
    assert_eq!(r.status, 400, "{r:#?}");
    assert_eq!(env.upstream_total(), 0);
}

/// The classic CL.TE smuggle: a Content-Length reading would swallow a second request, a
/// Transfer-Encoding reading makes it a pipelined one. hyper would resolve it by chunked, so
/// the framing guard in front of hyper refuses the head itself: a 400 with the JSON error,
/// the connection closed, and nothing (neither request) at any upstream.
#[tokio::test]
async fn te_and_cl_cannot_smuggle_a_second_request() {
    let env = env_with("").await;
    let smuggled = "GET /v1/models HTTP/1.1\r\nHost: x\r\nOpenAI-Project: proj_us\r\n\r\n";
    let chunked_body = format!("{:x}\r\n{BODY}\r\n0\r\n\r\n", BODY.len());
    for (first, second) in [
        (
            format!("Content-Length: {}\r\n", chunked_body.len() + smuggled.len()),
            "Transfer-Encoding: chunked\r\n",
        ),
        (
            "Transfer-Encoding: chunked\r\n".to_string(),
            "Content-Length: 4\r\n",
        ),
    ] {
        env.eu.clear();
        env.us.clear();
        let raw = format!(
            "POST {CHAT} HTTP/1.1\r\nHost: x\r\nOpenAI-Project: proj_eu\r\nContent-Type: application/json\r\n\
{first}{second}\r\n{chunked_body}{smuggled}"
        );
        let mut c = Conn::open(env.proxy.addr, raw.as_bytes()).await;
        let r = tokio::time::timeout(std::time::Duration::from_secs(10), c.response(false))
            .await
            .unwrap()
            .unwrap();
        error_shape(&r, 400, "invalid_request").unwrap();
        assert_eq!(r.header("connection"), Some("close"), "{r:#?}");
        let rest = tokio::time::timeout(std::time::Duration::from_secs(10), c.read_rest())
            .await
            .unwrap();
        assert!(
            rest.is_empty(),
            "a second response: {:?}",
            String::from_utf8_lossy(&rest)
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        assert_eq!(env.us.request_count(), 0, "the smuggled request was forwarded");
        assert_eq!(env.eu.request_count(), 0, "the refused request was forwarded");
    }
}

/// Pipelined behind a good request, the refused head is answered after the good one's
/// response, in order, and only the good request reaches an upstream.
#[tokio::test]
async fn te_and_cl_after_a_pipelined_request_is_refused_in_order() {
    let env = env_with("").await;
    let good = format!(
        "POST {CHAT} HTTP/1.1\r\nHost: x\r\nOpenAI-Project: proj_eu\r\nContent-Type: application/json\r\n\
Content-Length: {}\r\n\r\n{BODY}",
        BODY.len()
    );
    let bad = format!(
        "POST {CHAT} HTTP/1.1\r\nHost: x\r\nOpenAI-Project: proj_us\r\nContent-Type: application/json\r\n\
Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{BODY}\r\n0\r\n\r\n",
        BODY.len()
    );
    let raw = format!("{good}{bad}");
    let mut c = Conn::open(env.proxy.addr, raw.as_bytes()).await;
    let wait = std::time::Duration::from_secs(10);
    let first = tokio::time::timeout(wait, c.response(false))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.status, 200, "{first:#?}");
    let second = tokio::time::timeout(wait, c.response(false))
        .await
        .unwrap()
        .unwrap();
    error_shape(&second, 400, "invalid_request").unwrap();
    assert_eq!(second.header("connection"), Some("close"), "{second:#?}");
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert_eq!(env.eu.request_count(), 1);
    assert_eq!(env.us.request_count(), 0, "the refused request was forwarded");
}

/// A websocket upgrade is a tunnel no later request in it is checked on: only the realtime
/// endpoint, whose handshake is checked, may switch protocols.
#[tokio::test]
async fn websocket_upgrades_only_on_realtime() {
    let env = env_with("").await;
    for (path, project) in [
        ("/v1/models", "proj_eu"),
        ("/v1/models/gpt-4o-2024-08-06", "proj_us"),
    ] {
        env.eu.clear();
        env.us.clear();
        let raw = format!(
            "GET {path} HTTP/1.1\r\nHost: x\r\nOpenAI-Project: {project}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        );
        let r = send_raw(env.proxy.addr, raw.as_bytes()).await;
        if let Err(why) = error_shape(&r, 400, "invalid_request") {
            panic!("{path}: {why}");
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert_eq!(env.upstream_total(), 0, "{path}: forwarded");
    }
}

/// A request refused before its body is read: the unread body must be skipped or the
/// connection closed, never parsed as a next request (a body that looks like a request would
/// otherwise reach an upstream unchecked on the same connection).
#[tokio::test]
async fn an_unread_body_is_never_a_second_request() {
    let env = env_with("").await;
    let inner = "GET /v1/models HTTP/1.1\r\nHost: x\r\nOpenAI-Project: proj_us\r\n\r\n";
    for (method, path, framing) in [
        ("POST", "/v1/unknown", "cl"),
        ("POST", "/v1/fine_tuning/jobs", "cl"),
        ("POST", "/v1/unknown", "chunked"),
        ("POST", "/v1/fine_tuning/jobs", "chunked"),
    ] {
        env.eu.clear();
        env.us.clear();
        let body = match framing {
            "cl" => format!("Content-Length: {}\r\n\r\n{inner}", inner.len()),
            _ => format!(
                "Transfer-Encoding: chunked\r\n\r\n{:x}\r\n{inner}\r\n0\r\n\r\n",
                inner.len()
            ),
        };
        let raw = format!(
            "{method} {path} HTTP/1.1\r\nHost: x\r\nOpenAI-Project: proj_eu\r\nContent-Type: application/json\r\n{body}"
        );
        let mut c = Conn::open(env.proxy.addr, raw.as_bytes()).await;
        let r = tokio::time::timeout(std::time::Duration::from_secs(5), c.response(false))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(r.status, 403, "{path} {framing}: {r:#?}");
        // Nothing more comes back: either the connection closes or it idles.
        let more = tokio::time::timeout(std::time::Duration::from_millis(500), c.response(false)).await;
        if let Ok(Some(second)) = more {
            panic!("{path} {framing}: the body was answered as a request: {second:#?}");
        }
        assert_eq!(
            env.upstream_total(),
            0,
            "{path} {framing}: the body reached an upstream"
        );
    }
    // Control: the same inner request pipelined after a request whose body was read is
    // answered (so the checks above would see a smuggled one).
    env.us.clear();
    let raw = format!(
        "POST {CHAT} HTTP/1.1\r\nHost: x\r\nOpenAI-Project: proj_eu\r\nContent-Type: application/json\r\n\
Content-Length: {}\r\n\r\n{BODY}{inner}",
        BODY.len()
    );
    let mut c = Conn::open(env.proxy.addr, raw.as_bytes()).await;
    assert_eq!(c.response(false).await.unwrap().status, 200);
    assert_eq!(c.response(false).await.unwrap().status, 200);
    assert_eq!(env.us.request_count(), 1);
}
