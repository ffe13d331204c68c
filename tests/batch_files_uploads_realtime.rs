//! Issue 12, items 3 to 5, against the recording mocks: a batch's files follow the /v1/batches
//! row (a Japan project uploads its batch input and reads its results), the Uploads API follows
//! /v1/files by the purpose of its create call (a batch input through it is refused, naming
//! POST /v1/files), and realtime's newer operations follow the /v1/realtime row with the model
//! read where each carries it. Every case goes to `serve` and to `explain`, which must agree;
//! a refused request must reach no upstream, an allowed one the project's region.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use mock_openai::MockUpstream;
use serde_json::{json, Value};
use support::*;

const MULTIPART: &str = "multipart/form-data; boundary=XyZ";
const REALTIME: &str = "gpt-4o-realtime-preview-2024-12-17";
const GOOD_LINE: &str = r#"{"custom_id":"1","method":"POST","url":"/v1/chat/completions","body":{"model":"gpt-4o-2024-08-06","messages":[]}}"#;
const BAD_LINE: &str = r#"{"custom_id":"2","method":"POST","url":"/v1/chat/completions","body":{"model":"gpt-4","messages":[]}}"#;

/// Mocks for eu, us and jp, and a proxy routing each region to its mock.
struct Regions {
    eu: MockUpstream,
    us: MockUpstream,
    jp: MockUpstream,
    proxy: Proxy,
}

const PROJECTS: &str = r#"
[[projects]]
name = "jp-mam"
region = "jp"
retention = "modified_abuse_monitoring"
openai_project = "proj_jp"

[[projects]]
name = "jp-report"
region = "jp"
retention = "modified_abuse_monitoring"
mode = "report"
openai_project = "proj_jp_report"

[[projects]]
name = "us-std"
region = "us"
retention = "default"
openai_project = "proj_us"
aliases = { "realtime" = "gpt-4o-realtime-preview-2024-12-17" }

[[projects]]
name = "eu-zdr"
region = "eu"
retention = "zdr"
openai_project = "proj_eu"
"#;

impl Regions {
    async fn start() -> Regions {
        let eu = MockUpstream::start("eu").await;
        let us = MockUpstream::start("us").await;
        let jp = MockUpstream::start("jp").await;
        let body = format!(
            "[upstream]\nbase_urls = {{ eu = \"{}\", us = \"{}\", jp = \"{}\" }}\n{PROJECTS}",
            eu.base_url(),
            us.base_url(),
            jp.base_url()
        );
        let proxy = Proxy::start(&body, &[]).await;
        Regions { eu, us, jp, proxy }
    }

    fn total(&self) -> usize {
        self.eu.request_count() + self.us.request_count() + self.jp.request_count()
    }
}

/// One request as a client sends it.
struct Case {
    method: &'static str,
    path: &'static str,
    project: &'static str,
    content_type: Option<&'static str>,
    body: Vec<u8>,
}

fn get(method: &'static str, path: &'static str, project: &'static str) -> Case {
    Case {
        method,
        path,
        project,
        content_type: None,
        body: Vec::new(),
    }
}

fn json_post(path: &'static str, project: &'static str, body: Value) -> Case {
    Case {
        method: "POST",
        path,
        project,
        content_type: Some("application/json"),
        body: body.to_string().into_bytes(),
    }
}

fn form_post(path: &'static str, project: &'static str, body: Vec<u8>) -> Case {
    Case {
        method: "POST",
        path,
        project,
        content_type: Some(MULTIPART),
        body,
    }
}

fn part(name: &str, content_type: Option<&str>, value: &str) -> String {
    let ct = content_type.map_or(String::new(), |t| format!("Content-Type: {t}\r\n"));
    format!("--XyZ\r\nContent-Disposition: form-data; name=\"{name}\"\r\n{ct}\r\n{value}\r\n")
}

/// A `POST /v1/files` form: purpose then file, or (as the Node SDK sends it) file then purpose.
fn upload(purpose: &str, lines: &[&str], purpose_first: bool) -> Vec<u8> {
    let p = part("purpose", None, purpose);
    let f = format!(
        "--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"in.jsonl\"\r\n\
         Content-Type: application/jsonl\r\n\r\n{}\n\r\n",
        lines.join("\n")
    );
    let body = if purpose_first { p + &f } else { f + &p };
    (body + "--XyZ--\r\n").into_bytes()
}

/// A WebRTC call form: the SDP offer and the session JSON.
fn call(session: Option<Value>) -> Vec<u8> {
    let mut body = part(
        "sdp",
        Some("application/sdp"),
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-",
    );
    if let Some(s) = session {
        body += &part("session", Some("application/json"), &s.to_string());
    }
    (body + "--XyZ--\r\n").into_bytes()
}

/// What `serve` and `explain` said of one case.
#[derive(Debug)]
struct Outcome {
    status: u16,
    decision: String,
    rule: Option<String>,
    /// The refusal's body (403 or another error), when the proxy answered itself.
    error: Option<Value>,
    /// The mock the request reached, if any.
    reached: Option<String>,
}

/// Sends `c` to `serve` and to `explain`; they must agree on the decision, the rule and, for a
/// refusal, the message and status, and a refused request must reach no upstream.
async fn both(env: &Regions, c: &Case) -> Outcome {
    for m in [&env.eu, &env.us, &env.jp] {
        m.clear();
    }
    let mut headers = vec![("OpenAI-Project", c.project)];
    if let Some(ct) = c.content_type {
        headers.push(("Content-Type", ct));
    }
    let r = send_raw(
        env.proxy.addr,
        &build_request(env.proxy.addr, c.method, c.path, &headers, &c.body),
    )
    .await;
    let reached = r.header("x-mock-upstream").map(str::to_owned);
    let error = reached.is_none().then(|| r.json());
    if reached.is_none() {
        // A refused upload is aborted before it completes: the mock records nothing.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert_eq!(
            env.total(),
            0,
            "{} {}: a refused request reached an upstream",
            c.method,
            c.path
        );
    }
    let out = Outcome {
        status: r.status,
        decision: r.header("x-residency-decision").unwrap_or("-").to_owned(),
        rule: r.header("x-residency-rule").map(str::to_owned),
        error,
        reached,
    };

    let config = env.proxy.config.to_str().unwrap();
    let flags: Vec<String> = headers.iter().map(|(k, v)| format!("{k}: {v}")).collect();
    let mut args = vec!["explain", "--config", config];
    for f in &flags {
        args.extend(["--header", f.as_str()]);
    }
    args.extend([c.method, c.path]);
    if !c.body.is_empty() {
        args.extend(["--body", "-"]);
    }
    let o = run(&args, &[], (!c.body.is_empty()).then_some(&c.body[..]));
    let e: Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|err| {
        panic!(
            "explain printed no JSON ({err}): {}",
            String::from_utf8_lossy(&o.stderr)
        )
    });
    let what = format!(
        "{} {} as {}: serve {out:?}, explain {e}",
        c.method, c.path, c.project
    );
    match &e["error"] {
        Value::Null => {
            assert_eq!(e["decision"].as_str(), Some(out.decision.as_str()), "{what}");
            assert_eq!(e["rule"].as_str(), out.rule.as_deref(), "{what}");
        }
        err => {
            assert_eq!(err["status"].as_u64(), Some(u64::from(out.status)), "{what}");
            assert_eq!(e["decision"], "error", "{what}");
        }
    }
    if let Some(body) = &out.error {
        assert_eq!(e["message"], body["error"]["message"], "{what}");
    }
    assert_eq!(
        o.status.code(),
        Some(if out.reached.is_some() { 0 } else { 3 }),
        "{what}"
    );
    out
}

fn assert_reached(o: &Outcome, region: &str) {
    assert_eq!(o.reached.as_deref(), Some(region), "{o:?}");
    assert_eq!(o.status, 200, "{o:?}");
}

fn assert_refused(o: &Outcome, rule: &str) -> String {
    assert_eq!(o.status, 403, "{o:?}");
    assert_eq!(o.decision, "deny", "{o:?}");
    assert_eq!(o.rule.as_deref(), Some(rule), "{o:?}");
    let body = o.error.as_ref().unwrap();
    assert_eq!(body["error"]["code"], "residency_policy_violation");
    body["error"]["message"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_japan_project_uploads_its_batch_input_and_reads_the_results() {
    let env = Regions::start().await;
    // A batch input is checked line by line and goes to the project's region, in either order.
    for first in [true, false] {
        let good = form_post("/v1/files", "proj_jp", upload("batch", &[GOOD_LINE], first));
        let o = both(&env, &good).await;
        assert_reached(&o, "jp");
        assert_eq!(env.jp.requests()[0].body, good.body, "forwarded as sent");
        let bad = form_post(
            "/v1/files",
            "proj_jp",
            upload("batch", &[GOOD_LINE, BAD_LINE], first),
        );
        let message = assert_refused(&both(&env, &bad).await, "model_not_eligible");
        assert!(message.contains("line 2"), "{message}");
    }
    // Every other purpose keeps the /v1/files row (US, EU), whichever part comes first: the
    // upload is held until its purpose is read.
    for purpose in ["assistants", "fine-tune", "user_data"] {
        for first in [true, false] {
            let c = form_post("/v1/files", "proj_jp", upload(purpose, &[GOOD_LINE], first));
            let o = both(&env, &c).await;
            let message = assert_refused(&o, "endpoint_region");
            assert_eq!(o.error.as_ref().unwrap()["error"]["param"], "purpose");
            assert!(message.contains(&format!("purpose \"{purpose}\"")), "{message}");
            assert!(
                message.contains("Only uploads with purpose \"batch\""),
                "{message}"
            );
        }
    }
    // Report mode forwards and marks it.
    let c = form_post(
        "/v1/files",
        "proj_jp_report",
        upload("assistants", &[GOOD_LINE], false),
    );
    let o = both(&env, &c).await;
    assert_reached(&o, "jp");
    assert_eq!(o.decision, "report-deny");
    // The batch's files: retrieve, content (output and error files), delete. Not the list.
    for (m, p) in [
        ("GET", "/v1/files/file-out"),
        ("GET", "/v1/files/file-out/content"),
        ("DELETE", "/v1/files/file-in"),
    ] {
        assert_reached(&both(&env, &get(m, p, "proj_jp")).await, "jp");
    }
    assert_refused(
        &both(&env, &get("GET", "/v1/files", "proj_jp")).await,
        "endpoint_region",
    );
    // Under ZDR neither row is offered.
    for (m, p) in [
        ("GET", "/v1/files/file-out/content"),
        ("DELETE", "/v1/files/file-in"),
    ] {
        assert_refused(&both(&env, &get(m, p, "proj_eu")).await, "zdr_endpoint");
    }
    // In US/EU nothing changed: any purpose, checked lines for batch.
    let c = form_post("/v1/files", "proj_us", upload("assistants", &[BAD_LINE], false));
    assert_reached(&both(&env, &c).await, "us");
}

#[tokio::test]
async fn uploads_follow_the_files_row_and_refuse_batch_inputs() {
    let env = Regions::start().await;
    let create = |project, purpose: &str| {
        json_post(
            "/v1/uploads",
            project,
            json!({"purpose": purpose, "bytes": 10, "filename": "in.jsonl", "mime_type": "text/jsonl"}),
        )
    };
    assert_reached(&both(&env, &create("proj_us", "assistants")).await, "us");
    assert_reached(&both(&env, &create("proj_us", "fine-tune")).await, "us");
    let message = assert_refused(&both(&env, &create("proj_us", "batch")).await, "unknown_endpoint");
    assert!(message.contains("POST /v1/files"), "{message}");
    let message = assert_refused(&both(&env, &create("proj_us", "Batch")).await, "unknown_endpoint");
    assert!(message.contains("exactly one of"), "{message}");
    assert_refused(
        &both(&env, &create("proj_jp", "assistants")).await,
        "endpoint_region",
    );
    assert_refused(&both(&env, &create("proj_jp", "batch")).await, "endpoint_region");
    assert_refused(
        &both(&env, &create("proj_eu", "assistants")).await,
        "zdr_endpoint",
    );

    // Parts, complete and cancel carry no purpose: the /v1/files row.
    let parts = || {
        form_post(
            "/v1/uploads/upload_1/parts",
            "proj_us",
            (part("data", None, "abc") + "--XyZ--\r\n").into_bytes(),
        )
    };
    assert_reached(&both(&env, &parts()).await, "us");
    for project in ["proj_jp", "proj_eu"] {
        let c = Case { project, ..parts() };
        let rule = if project == "proj_jp" {
            "endpoint_region"
        } else {
            "zdr_endpoint"
        };
        assert_refused(&both(&env, &c).await, rule);
    }
    let complete = |project| {
        json_post(
            "/v1/uploads/upload_1/complete",
            project,
            json!({"part_ids": ["part_1"]}),
        )
    };
    assert_reached(&both(&env, &complete("proj_us")).await, "us");
    assert_refused(&both(&env, &complete("proj_jp")).await, "endpoint_region");
    assert_reached(
        &both(&env, &get("POST", "/v1/uploads/upload_1/cancel", "proj_us")).await,
        "us",
    );
    assert_refused(
        &both(&env, &get("POST", "/v1/uploads/upload_1/cancel", "proj_eu")).await,
        "zdr_endpoint",
    );
}

#[tokio::test]
async fn realtime_operations_follow_the_realtime_row() {
    let env = Regions::start().await;
    let secret = |project, session: Value| {
        json_post(
            "/v1/realtime/client_secrets",
            project,
            json!({"session": session}),
        )
    };
    let o = both(
        &env,
        &secret("proj_us", json!({"type": "realtime", "model": REALTIME})),
    )
    .await;
    assert_reached(&o, "us");
    for session in [
        json!({"type": "realtime", "model": "gpt-realtime"}),
        json!({"type": "realtime", "model": "realtime"}),
        json!({"type": "realtime"}),
        json!({"type": "transcription", "audio": {"input": {"transcription": {"model": "gpt-4o-transcribe"}}}}),
        json!({"type": "realtime", "model": ["x"]}),
    ] {
        let o = both(&env, &secret("proj_us", session.clone())).await;
        assert_refused(&o, "model_not_eligible");
        assert_eq!(o.error.unwrap()["error"]["param"], "session.model", "{session}");
    }
    // A session's input transcription model is judged on the /v1/audio/transcriptions row.
    let transcribing = |m: &str| json!({"type": "realtime", "model": REALTIME, "audio": {"input": {"transcription": {"model": m}}}});
    assert_reached(
        &both(&env, &secret("proj_us", transcribing("gpt-4o-transcribe"))).await,
        "us",
    );
    let o = both(
        &env,
        &secret("proj_us", transcribing("gpt-4o-transcribe-diarize")),
    )
    .await;
    let message = assert_refused(&o, "model_not_eligible");
    assert!(message.contains("/v1/audio/transcriptions"), "{message}");
    assert_eq!(
        o.error.unwrap()["error"]["param"],
        "session.audio.input.transcription.model"
    );
    let o = both(
        &env,
        &form_post(
            "/v1/realtime/calls",
            "proj_us",
            call(Some(transcribing("x-transcribe"))),
        ),
    )
    .await;
    assert_refused(&o, "model_not_eligible");
    let o = both(
        &env,
        &json_post(
            "/v1/realtime/client_secrets",
            "proj_us",
            json!({"model": REALTIME}),
        ),
    )
    .await;
    assert_refused(&o, "model_not_eligible");
    let o = both(
        &env,
        &secret("proj_jp", json!({"type": "realtime", "model": REALTIME})),
    )
    .await;
    assert_refused(&o, "endpoint_region");

    // WebRTC calls: the session form field's model.
    let calls = |session| form_post("/v1/realtime/calls", "proj_us", call(session));
    assert_reached(
        &both(&env, &calls(Some(json!({"type": "realtime", "model": REALTIME})))).await,
        "us",
    );
    assert_refused(
        &both(
            &env,
            &calls(Some(json!({"type": "realtime", "model": "gpt-realtime"}))),
        )
        .await,
        "model_not_eligible",
    );
    assert_refused(&both(&env, &calls(None)).await, "model_not_eligible");
    // The SDP-only variant names no model the proxy can read: refused.
    let sdp = Case {
        content_type: Some("application/sdp"),
        body: b"v=0\r\n".to_vec(),
        ..calls(None)
    };
    let o = both(&env, &sdp).await;
    assert_eq!(o.status, 400, "{o:?}");
    assert_eq!(o.error.unwrap()["error"]["code"], "invalid_body");

    // A transcription session names a transcription model, not a listed realtime snapshot.
    let t = json_post(
        "/v1/realtime/transcription_sessions",
        "proj_us",
        json!({"input_audio_transcription": {"model": "gpt-4o-transcribe"}}),
    );
    let message = assert_refused(&both(&env, &t).await, "model_not_eligible");
    assert!(message.contains("gpt-4o-transcribe"), "{message}");
}

/// `catalog show` says what `serve` does: in Japan the upload is allowed for the batch purpose
/// only, a batch's files are allowed, the list and the Uploads API are not; in the US the
/// Uploads API refuses the batch purpose, and realtime names the row's snapshots.
#[tokio::test]
async fn catalog_show_names_the_purposes_an_upload_may_carry() {
    let env = Regions::start().await;
    let config = env.proxy.config.to_str().unwrap().to_owned();
    let show = |project: &str| -> Value {
        let o = run(
            &[
                "catalog",
                "show",
                "--config",
                &config,
                "--project",
                project,
                "--format",
                "json",
            ],
            &[],
            None,
        );
        assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
        serde_json::from_slice(&o.stdout).unwrap()
    };
    let op = |v: &Value, m: &str, p: &str| -> Value {
        v["operations"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["method"] == m && o["path"] == p)
            .unwrap_or_else(|| panic!("{m} {p} not shown"))
            .clone()
    };
    let purposes = |o: &Value| -> Vec<(String, bool, Value)> {
        o["purposes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p["purpose"].as_str().unwrap().to_owned(),
                    p["allowed"] == true,
                    p["rule"].clone(),
                )
            })
            .collect()
    };
    let jp = show("jp-mam");
    let upload = op(&jp, "POST", "/v1/files");
    assert_eq!(upload["decision"], "allow");
    for (p, allowed, rule) in purposes(&upload) {
        assert_eq!(allowed, p == "batch", "{p}");
        if !allowed {
            assert_eq!(rule, "endpoint_region", "{p}");
        }
        // serve agrees, purpose by purpose.
        let c = form_post("/v1/files", "proj_jp", upload_of(&p));
        let o = both(&env, &c).await;
        assert_eq!(o.reached.is_some(), allowed, "{p}: {o:?}");
    }
    for (m, p, decision) in [
        ("GET", "/v1/files/{file_id}/content", "allow"),
        ("DELETE", "/v1/files/{file_id}", "allow"),
        ("GET", "/v1/files", "deny"),
        ("POST", "/v1/uploads", "deny"),
        ("POST", "/v1/realtime/client_secrets", "deny"),
    ] {
        assert_eq!(op(&jp, m, p)["decision"], decision, "{m} {p}");
    }
    let us = show("us-std");
    let uploads = purposes(&op(&us, "POST", "/v1/uploads"));
    assert!(
        uploads.contains(&("batch".into(), false, json!("unknown_endpoint"))),
        "{uploads:?}"
    );
    assert!(
        uploads.contains(&("assistants".into(), true, Value::Null)),
        "{uploads:?}"
    );
    let secrets = op(&us, "POST", "/v1/realtime/client_secrets");
    assert_eq!(
        secrets["models"],
        json!([
            "gpt-4o-mini-realtime-preview-2024-12-17",
            "gpt-4o-realtime-preview-2024-12-17"
        ])
    );
}

/// A one-line upload with `purpose`, purpose first.
fn upload_of(purpose: &str) -> Vec<u8> {
    upload(purpose, &[GOOD_LINE], true)
}
