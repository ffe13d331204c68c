//! `serve` and `explain` walk the same pipeline: one corpus (every rule id, batch uploads with
//! a bad line, gzip bodies, websocket handshakes, framing and body refusals) sent through the
//! real proxy against the mock and given to `explain`, which must give the same decision, the
//! same rule and, for a refusal, the same status and error code.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use serde_json::{json, Value};
use support::*;

const CHAT: &str = "/v1/chat/completions";
const RESPONSES: &str = "/v1/responses";
const MULTIPART: &str = "multipart/form-data; boundary=XyZ";

struct Case {
    name: &'static str,
    method: &'static str,
    path: String,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
}

fn case(
    name: &'static str,
    method: &'static str,
    path: &str,
    headers: &[(&'static str, &str)],
    body: impl Into<Vec<u8>>,
) -> Case {
    Case {
        name,
        method,
        path: path.to_string(),
        headers: headers.iter().map(|(k, v)| (*k, v.to_string())).collect(),
        body: body.into(),
    }
}

/// A JSON POST as project `openai_project`.
fn post(name: &'static str, project: &str, path: &str, body: Value) -> Case {
    let mut c = case(
        name,
        "POST",
        path,
        &[("Content-Type", "application/json")],
        body.to_string(),
    );
    c.headers.push(("OpenAI-Project", project.to_string()));
    c
}

fn chat(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "hi"}]})
}

fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// A `POST /v1/files` upload with `purpose` first and one JSONL file.
fn upload(purpose_part: &str, lines: &[&str]) -> Vec<u8> {
    let mut file = lines.join("\n");
    file.push('\n');
    format!(
        "{purpose_part}--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"b.jsonl\"\r\n\
         Content-Type: application/jsonl\r\n\r\n{file}\r\n--XyZ--\r\n"
    )
    .into_bytes()
}

fn purpose(value: &str) -> String {
    format!("--XyZ\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\n{value}\r\n")
}

fn files(name: &'static str, project: &str, body: Vec<u8>) -> Case {
    case(
        name,
        "POST",
        "/v1/files",
        &[("Content-Type", MULTIPART), ("OpenAI-Project", project)],
        body,
    )
}

fn websocket(name: &'static str, method: &'static str, path: &str, project: &str) -> Case {
    case(
        name,
        method,
        path,
        &[
            ("OpenAI-Project", project),
            ("Connection", "Upgrade"),
            ("Upgrade", "websocket"),
            ("Sec-WebSocket-Version", "13"),
            ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ],
        Vec::new(),
    )
}

fn corpus() -> Vec<Case> {
    // Eligible on its own row and on the /v1/batches row (issue 12).
    let good_line = r#"{"custom_id":"1","method":"POST","url":"/v1/chat/completions","body":{"model":"gpt-4o-2024-08-06","messages":[]}}"#;
    let bad_line = r#"{"custom_id":"2","method":"POST","url":"/v1/chat/completions","body":{"model":"gpt-4","messages":[]}}"#;
    let eligible = chat("gpt-4o-2024-08-06").to_string();
    let image_chat = json!({"model": "gpt-4o-2024-08-06", "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
    ]}]});
    let mut cases = vec![
        // Every rule id, and the decisions around them.
        post("allow", "proj_us", CHAT, chat("gpt-4o-2024-08-06")),
        case("allow without a body", "GET", "/v1/models", &[("OpenAI-Project", "proj_eu")], Vec::new()),
        case(
            "no_project: ambiguous headers",
            "POST",
            CHAT,
            &[
                ("Content-Type", "application/json"),
                ("OpenAI-Project", "proj_eu"),
                ("OpenAI-Project", "proj_us"),
            ],
            eligible.clone(),
        ),
        post("no_project: unknown project header", "proj_nobody", CHAT, chat("gpt-4o-2024-08-06")),
        post("unknown_endpoint", "proj_us", "/v1/not/a/thing", json!({})),
        post("unknown_endpoint: not canonical", "proj_us", "/v1//chat/completions", chat("gpt-4o")),
        post(
            "endpoint_region",
            "proj_eu_mam",
            "/v1/realtime/sessions",
            json!({"model": "gpt-4o-realtime-preview-2024-12-17"}),
        ),
        post("model_not_eligible", "proj_eu", CHAT, chat("gpt-4")),
        post("model_not_eligible: missing model", "proj_eu", CHAT, json!({"messages": []})),
        post(
            "zdr_endpoint",
            "proj_eu",
            "/v1/fine_tuning/jobs",
            json!({"model": "gpt-4o-2024-08-06", "training_file": "file-1"}),
        ),
        post(
            "zdr_model",
            "proj_eu",
            "/v1/images/generations",
            json!({"model": "dall-e-3", "prompt": "a cat"}),
        ),
        post(
            "stateful_feature",
            "proj_eu",
            RESPONSES,
            json!({"model": "gpt-4.1-2025-04-14", "input": "x", "previous_response_id": "resp_1", "store": false}),
        ),
        post(
            "store: rewrite",
            "proj_eu_mam",
            CHAT,
            json!({"model": "gpt-4o-2024-08-06", "store": true, "messages": []}),
        ),
        post(
            "store: reject",
            "proj_eu_reject",
            CHAT,
            json!({"model": "gpt-4o-2024-08-06", "store": true, "messages": []}),
        ),
        post("image_input", "proj_eu", CHAT, image_chat.clone()),
        post("image_input: approved", "proj_eu_img", CHAT, image_chat),
        post(
            "hipaa",
            "proj_us_hipaa",
            RESPONSES,
            json!({"model": "gpt-4.1-2025-04-14", "input": "x", "store": false, "tools": [{"type": "web_search_preview"}]}),
        ),
        post("alias", "proj_eu", CHAT, chat("gpt-4o")),
        post(
            "tool_not_eligible",
            "proj_eu",
            RESPONSES,
            json!({"model": "gpt-4.1-2025-04-14", "input": "x", "store": false, "tools": [{"type": "code_interpreter", "container": {"type": "auto"}}]}),
        ),
        // Stateless reasoning (issue 12 item 8): the include edit, and an include it cannot edit.
        post(
            "encrypted_reasoning: rewrite",
            "proj_eu_reasoning",
            RESPONSES,
            json!({"model": "o3-2025-04-16", "input": "x", "include": ["file_search_call.results"]}),
        ),
        post(
            "encrypted_reasoning: include not an array of strings",
            "proj_eu_reasoning",
            RESPONSES,
            json!({"model": "o3-2025-04-16", "input": "x", "store": false, "include": [1]}),
        ),
        post(
            "report mode",
            "proj_eu_report",
            "/v1/fine_tuning/jobs",
            json!({"model": "gpt-4o-2024-08-06", "training_file": "file-1"}),
        ),
        // Batch inputs, line by line.
        files("batch: good", "proj_us", upload(&purpose("batch"), &[good_line])),
        files("batch: a bad line", "proj_us", upload(&purpose("batch"), &[good_line, bad_line])),
        files("batch: a bad line, report mode", "proj_eu_report", upload(&purpose("batch"), &[bad_line])),
        files("not a batch", "proj_us", upload(&purpose("assistants"), &[bad_line])),
        files(
            "batch: unreadable purpose",
            "proj_us",
            upload(
                "--XyZ\r\nContent-Disposition: form-data; name=\"purpose\"\r\nContent-Transfer-Encoding: base64\r\n\r\nYmF0Y2g=\r\n",
                &[bad_line],
            ),
        ),
        // Issue 12: uploads by purpose, realtime models read where each operation carries them.
        post(
            "unknown_endpoint: a batch input through the Uploads API",
            "proj_us",
            "/v1/uploads",
            json!({"purpose": "batch", "bytes": 10, "filename": "b.jsonl", "mime_type": "text/jsonl"}),
        ),
        post(
            "allow: an upload for assistants",
            "proj_us",
            "/v1/uploads",
            json!({"purpose": "assistants", "bytes": 10, "filename": "a.txt", "mime_type": "text/plain"}),
        ),
        post(
            "allow: session.model",
            "proj_us",
            "/v1/realtime/client_secrets",
            json!({"session": {"type": "realtime", "model": "gpt-4o-realtime-preview-2024-12-17"}}),
        ),
        post(
            "model_not_eligible: session.model",
            "proj_us",
            "/v1/realtime/client_secrets",
            json!({"session": {"type": "realtime", "model": "gpt-realtime"}}),
        ),
        case(
            "model_not_eligible: a call's session field",
            "POST",
            "/v1/realtime/calls",
            &[("Content-Type", MULTIPART), ("OpenAI-Project", "proj_us")],
            "--XyZ\r\nContent-Disposition: form-data; name=\"sdp\"\r\n\r\nv=0\r\n--XyZ\r\n\
             Content-Disposition: form-data; name=\"session\"\r\nContent-Type: application/json\r\n\r\n\
             {\"model\":\"gpt-realtime\"}\r\n--XyZ--\r\n",
        ),
        // Encodings.
        {
            let mut c = post("gzip: allowed", "proj_us", CHAT, Value::Null);
            c.headers.push(("Content-Encoding", "gzip".into()));
            c.body = gzip(eligible.as_bytes());
            c
        },
        {
            let mut c = post("gzip: denied inside", "proj_eu", CHAT, Value::Null);
            c.headers.push(("Content-Encoding", "gzip".into()));
            c.body = gzip(chat("gpt-4").to_string().as_bytes());
            c
        },
        {
            let mut c = post("gzip: corrupt", "proj_us", CHAT, Value::Null);
            c.headers.push(("Content-Encoding", "gzip".into()));
            c.body = b"\x1f\x8b\x08\x00not gzip".to_vec();
            c
        },
        {
            let mut c = post("unsupported encoding", "proj_us", CHAT, chat("gpt-4o-2024-08-06"));
            c.headers.push(("Content-Encoding", "br".into()));
            c
        },
        {
            let mut c = files("gzip batch upload", "proj_us", gzip(&upload(&purpose("batch"), &[bad_line])));
            c.headers.push(("Content-Encoding", "gzip".into()));
            c
        },
        // Websockets.
        websocket("websocket off the catalog's websocket endpoints", "GET", "/v1/models", "proj_us"),
        websocket(
            "websocket: endpoint_region",
            "GET",
            "/v1/realtime?model=gpt-4o-realtime-preview-2024-12-17",
            "proj_eu_mam",
        ),
        websocket(
            "websocket: model_not_eligible",
            "GET",
            "/v1/realtime?model=gpt-4",
            "proj_us",
        ),
        // Framing and body refusals.
        {
            let mut c = post("two Content-Type headers", "proj_us", CHAT, chat("gpt-4o-2024-08-06"));
            c.headers.push(("Content-Type", "text/plain".into()));
            c
        },
        {
            let mut c = post("Connection names Content-Type", "proj_us", CHAT, chat("gpt-4o-2024-08-06"));
            c.headers.push(("Connection", "content-type".into()));
            c
        },
        case(
            "not JSON",
            "POST",
            CHAT,
            &[("Content-Type", "application/json"), ("OpenAI-Project", "proj_us")],
            "{\"model\": ",
        ),
        case(
            "not declared JSON",
            "POST",
            CHAT,
            &[("Content-Type", "text/plain"), ("OpenAI-Project", "proj_us")],
            eligible.clone(),
        ),
        {
            let mut c = post("too large", "proj_us", CHAT, Value::Null);
            c.body = json!({"model": "gpt-4o-2024-08-06", "messages": [{"role": "user", "content": "x".repeat(70_000)}]})
                .to_string()
                .into_bytes();
            c
        },
    ];
    cases.retain(|c| !c.name.is_empty());
    cases
}

/// A project with stateless reasoning, after the standard ones.
const REASONING_PROJECT: &str = "
[[projects]]
name = \"eu-reasoning\"
region = \"eu\"
retention = \"zdr\"
openai_project = \"proj_eu_reasoning\"
responses_encrypted_reasoning = true
";

/// What one side said: decision (`x-residency-decision` / explain's `decision`), rule, and the
/// status and error code when the proxy answers itself.
#[derive(Debug, PartialEq)]
struct Said {
    decision: String,
    rule: Option<String>,
    refusal: Option<(u16, String)>,
}

#[tokio::test]
async fn serve_and_explain_decide_alike_on_the_corpus() {
    let env = Env::with(
        "[limits]\nmax_body_bytes = 65536\n",
        &format!("{}{REASONING_PROJECT}", standard_projects()),
        &standard_env(),
    )
    .await;
    let config = env.proxy.config.to_str().unwrap().to_string();
    let mut failures = Vec::new();
    let cases = corpus();
    for c in &cases {
        let headers: Vec<(&str, &str)> = c.headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        env.eu.clear();
        env.us.clear();
        let r = env.send(c.method, &c.path, &headers, &c.body).await;
        let forwarded = r.header("x-mock-upstream").is_some();
        let served = Said {
            // A refusal that is not a policy decision says `deny` in the header, `error` in explain.
            decision: match (r.header("x-residency-decision"), forwarded, r.status) {
                (Some("deny"), false, s) if s != 403 => "error".into(),
                (d, _, _) => d.unwrap_or("-").to_string(),
            },
            rule: r.header("x-residency-rule").map(str::to_string),
            refusal: (!forwarded).then(|| {
                (
                    r.status,
                    r.json()["error"]["code"].as_str().unwrap_or("-").to_string(),
                )
            }),
        };

        let mut args = vec!["explain", "--config", config.as_str()];
        let flags: Vec<String> = c.headers.iter().map(|(k, v)| format!("{k}: {v}")).collect();
        for f in &flags {
            args.extend(["--header", f.as_str()]);
        }
        args.extend([c.method, c.path.as_str()]);
        let with_body = !c.body.is_empty();
        if with_body {
            args.extend(["--body", "-"]);
        }
        let o = run(&args, &standard_env(), with_body.then_some(&c.body[..]));
        let v: Value = match serde_json::from_slice(&o.stdout) {
            Ok(v) => v,
            Err(e) => {
                failures.push(format!(
                    "{}: explain printed no JSON ({e}): {}",
                    c.name,
                    String::from_utf8_lossy(&o.stderr)
                ));
                continue;
            }
        };
        let decision = v["decision"].as_str().unwrap_or("-").to_string();
        let refusal = if let Some(e) = v.get("error") {
            Some((
                e["status"].as_u64().unwrap_or(0) as u16,
                e["code"].as_str().unwrap_or("-").to_string(),
            ))
        } else if decision == "deny" {
            Some((403, "residency_policy_violation".to_string()))
        } else {
            None
        };
        let explained = Said {
            decision,
            rule: v["rule"].as_str().map(str::to_string),
            refusal,
        };
        // Exit 3 exactly when the proxy refuses.
        let exit_ok = o.status.code() == Some(if explained.refusal.is_some() { 3 } else { 0 });
        if std::env::var("PIPELINE_SHOW").is_ok() {
            eprintln!("{}: {served:?} / {explained:?}", c.name);
        }
        if served != explained || !exit_ok {
            failures.push(format!(
                "{}:\n  serve   {served:?} (status {})\n  explain {explained:?} (exit {:?}) {v}",
                c.name,
                r.status,
                o.status.code()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases differ:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

/// The request log line of `request_id`, once the proxy has written it (it is written when
/// the response body ends, which may be just after the client has read it).
async fn log_line(env: &Env, request_id: &str) -> Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let found = env
            .proxy
            .stderr()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|v| v["target"] == "residency_proxy::request" && v["request_id"] == request_id);
        if let Some(v) = found {
            return v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no log line for {request_id}:\n{}",
            env.proxy.stderr()
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// The finish phase runs when the response body ends: a streamed response's log line carries
/// its whole duration and its bytes, and says how the body ended.
#[tokio::test]
async fn a_streamed_response_is_logged_when_it_ends() {
    let env = Env::with(
        "[log]\nformat = \"json\"\n",
        &standard_projects(),
        &standard_env(),
    )
    .await;
    let stream = json!({"model": "gpt-4o-2024-08-06", "stream": true, "messages": []}).to_string();
    let headers = |behavior: &'static str, id: &'static str| {
        vec![
            ("Content-Type", "application/json"),
            ("OpenAI-Project", "proj_us"),
            ("x-mock-behavior", behavior),
            ("x-request-id", id),
        ]
    };
    let whole = mock_openai::SLOW_SSE_GAP * mock_openai::SLOW_SSE_EVENTS as u32;

    // Complete: ~2 s of events.
    let r = env
        .send(
            "POST",
            CHAT,
            &headers("slow-sse", "fin-complete"),
            stream.as_bytes(),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.text().contains("[DONE]"), "{r:?}");
    let line = log_line(&env, "fin-complete").await;
    assert_eq!(line["body"], "complete", "{line}");
    assert_eq!(line["response_bytes"], r.body.len() as u64, "{line}");
    let ms = line["latency_ms"].as_f64().unwrap();
    assert!(
        ms >= whole.as_millis() as f64 * 0.9,
        "a {whole:?} stream logged {ms} ms: {line}"
    );

    // The upstream drops the stream after two events.
    let r = env
        .send(
            "POST",
            CHAT,
            &headers("drop-mid-stream", "fin-upstream"),
            stream.as_bytes(),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let line = log_line(&env, "fin-upstream").await;
    assert_eq!(line["body"], "upstream_error", "{line}");

    // The client reads the head and one chunk, then goes away.
    let request = build_request(
        env.proxy.addr,
        "POST",
        CHAT,
        &headers("slow-sse", "fin-gone"),
        stream.as_bytes(),
    );
    let mut conn = Conn::open(env.proxy.addr, &request).await;
    let (status, _) = conn.head().await.unwrap();
    assert_eq!(status, 200);
    assert!(conn.chunk().await.is_some());
    let left = std::time::Instant::now();
    drop(conn);
    let line = log_line(&env, "fin-gone").await;
    assert_eq!(line["body"], "client_gone", "{line}");
    assert!(
        left.elapsed() < whole,
        "the client's going was noticed only at the stream's end: {line}"
    );
}
