//! The official OpenAI SDKs (PyPI `openai`, npm `openai`) through the proxy.
//!
//! Each test starts two recording mocks (the eu and us upstreams) and the real
//! `residency-proxy` binary, runs one SDK script from tests/sdk with nothing but the SDK's own
//! environment variables pointing it at the proxy, requires every case to print `PASS`, and
//! then checks what reached the mocks. The SDKs are installed by .ci/install-test-deps.sh
//! (.ci/venv and tests/sdk/node_modules). When one is missing the test fails under CI
//! (`CI` set) and is skipped with a message elsewhere.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use mock_openai::{MockUpstream, Recorded};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;
use support::{
    in_ci, mocks, two_project_config, Proxy, TempDir, TestCert, EU_MAM_PROJECT, EU_PROJECT, US_PROJECT,
};

const API_KEY: &str = "sk-test-sdk-client-key";

const ALL_CASES: &[&str] = &[
    "models_list",
    "chat",
    "chat_stream",
    "responses",
    "responses_stream",
    "embeddings",
    "moderations",
    "images",
    "audio_transcription",
    "file_upload",
    "batch_upload_allowed",
    "batch_upload_denied",
    "uploads_batch_denied",
    "denial_not_retried",
    "upstream_5xx_retried",
];

/// Realtime over the SDK's own websocket client.
const REALTIME_CASES: &[&str] = &["realtime", "realtime_denied"];

/// The cases run again over TLS: one of each transport shape (JSON, SSE, multipart, denial).
const TLS_CASES: &[&str] = &[
    "models_list",
    "chat",
    "chat_stream",
    "audio_transcription",
    "denial_not_retried",
];

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Sdk {
    Python,
    Node,
}

impl Sdk {
    fn tag(self) -> &'static str {
        match self {
            Sdk::Python => "sdk-python",
            Sdk::Node => "sdk-node",
        }
    }
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Says why an SDK cannot run: a failure under CI, a loud skip elsewhere. Returns false.
fn unavailable(what: &str) -> bool {
    let msg = format!("{what}; install with `bash .ci/install-test-deps.sh`");
    if in_ci() {
        panic!("CI is set and {msg}");
    }
    eprintln!("SKIPPED: {msg}");
    false
}

/// The interpreter and script for an SDK, or None (after [`unavailable`]) when not installed.
fn command_for(sdk: Sdk) -> Option<tokio::process::Command> {
    match sdk {
        Sdk::Python => {
            let venv = repo().join(".ci/venv/bin/python");
            let python = if venv.exists() {
                venv
            } else {
                PathBuf::from("python3")
            };
            let probe = std::process::Command::new(&python)
                .args(["-c", "import openai"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            if !probe.is_ok_and(|s| s.success()) {
                unavailable(&format!(
                    "the Python `openai` package is not importable by {}",
                    python.display()
                ));
                return None;
            }
            let mut cmd = tokio::process::Command::new(python);
            cmd.arg(repo().join("tests/sdk/python_sdk.py"));
            Some(cmd)
        }
        Sdk::Node => {
            let dir = repo().join("tests/sdk");
            if !dir.join("node_modules/openai/package.json").exists() {
                unavailable("the npm `openai` package is not installed in tests/sdk/node_modules");
                return None;
            }
            let probe = std::process::Command::new("node")
                .arg("--version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            if !probe.is_ok_and(|s| s.success()) {
                unavailable("`node` is not on PATH");
                return None;
            }
            let mut cmd = tokio::process::Command::new("node");
            cmd.arg("node_sdk.mjs").current_dir(dir);
            Some(cmd)
        }
    }
}

struct Setup {
    eu: MockUpstream,
    us: MockUpstream,
    proxy: Proxy,
    scheme: &'static str,
    ca_file: Option<PathBuf>,
    _tls_dir: Option<TempDir>,
}

async fn setup(tls: bool) -> Setup {
    let (eu, us) = mocks().await;
    let (extra, tls_dir, ca_file) = if tls {
        let dir = TempDir::new("tls");
        // The SDKs (OpenSSL underneath) trust it as their CA file.
        let cert = TestCert::self_signed_ca(&dir.path().join("cert.pem"), &dir.path().join("key.pem"));
        (cert.tls_table(), Some(dir), Some(cert.cert))
    } else {
        (String::new(), None, None)
    };
    let proxy = Proxy::start(&two_project_config(&eu.base_url(), &us.base_url(), &extra), &[]).await;
    Setup {
        eu,
        us,
        proxy,
        scheme: if tls { "https" } else { "http" },
        ca_file,
        _tls_dir: tls_dir,
    }
}

struct Run {
    passed: Vec<String>,
    failed: Vec<String>,
    stdout: String,
    stderr: String,
    success: bool,
}

async fn run_sdk(sdk: Sdk, s: &Setup, only: &[&str]) -> Option<Run> {
    let mut cmd = command_for(sdk)?;
    for var in [
        "OPENAI_ORG_ID",
        "OPENAI_ADMIN_KEY",
        "OPENAI_WEBHOOK_SECRET",
        "OPENAI_LOG",
        "NODE_OPTIONS",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("OPENAI_BASE_URL", format!("{}://{}/v1", s.scheme, s.proxy.addr))
        .env("OPENAI_API_KEY", API_KEY)
        .env("OPENAI_PROJECT_ID", EU_PROJECT)
        .env("RP_US_PROJECT", US_PROJECT)
        .env("RP_EU_MAM_PROJECT", EU_MAM_PROJECT)
        .env("RP_ADMIN_URL", s.proxy.admin_url())
        .env("RP_ONLY", only.join(","))
        .env("PYTHONUNBUFFERED", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some(ca) = &s.ca_file {
        cmd.env("RP_CA_FILE", ca).env("NODE_EXTRA_CA_CERTS", ca);
    }
    let child = cmd.spawn().expect("spawn the SDK script");
    let out = tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("{sdk:?} SDK script did not finish within 120 s"))
        .expect("wait for the SDK script");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    println!("--- {sdk:?} SDK stdout ---\n{stdout}");
    if !out.status.success() {
        println!("--- {sdk:?} SDK stderr ---\n{stderr}");
        println!("--- proxy stderr ---\n{}", s.proxy.stderr());
    }
    let mut passed = Vec::new();
    let mut failed = Vec::new();
    for line in stdout.lines() {
        if let Some(name) = line.strip_prefix("PASS ") {
            passed.push(name.trim().to_string());
        } else if line.starts_with("FAIL ") {
            failed.push(line.to_string());
        }
    }
    Some(Run {
        passed,
        failed,
        stdout,
        stderr,
        success: out.status.success(),
    })
}

fn assert_all_passed(sdk: Sdk, run: &Run, cases: &[&str]) {
    let missing: Vec<&&str> = cases
        .iter()
        .filter(|c| !run.passed.iter().any(|p| p == *c))
        .collect();
    assert!(
        run.failed.is_empty() && missing.is_empty() && run.success,
        "{sdk:?} SDK through the proxy:\n  failed: {:#?}\n  not passed: {missing:?}\n  exit ok: {}\nstdout:\n{}\nstderr (tail):\n{}",
        run.failed,
        run.success,
        run.stdout,
        tail(&run.stderr, 4000),
    );
}

fn tail(s: &str, n: usize) -> &str {
    let start = s.len().saturating_sub(n);
    let mut i = start;
    while !s.is_char_boundary(i) {
        i += 1;
    }
    &s[i..]
}

fn body_has(r: &Recorded, needle: &str) -> bool {
    contains(&r.body, needle.as_bytes())
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || hay.windows(needle.len()).any(|w| w == needle)
}

/// The one request at `mock` for `path` whose body contains `marker`.
fn one(mock: &MockUpstream, method: &str, path: &str, marker: &str) -> Recorded {
    let found: Vec<Recorded> = mock
        .requests()
        .into_iter()
        .filter(|r| r.method == method && r.path() == path && body_has(r, marker))
        .collect();
    assert_eq!(
        found.len(),
        1,
        "{} mock: wanted exactly one {method} {path} carrying {marker:?}; it recorded {:?}",
        mock.name(),
        mock.requests()
            .iter()
            .map(|r| format!("{} {}", r.method, r.path_and_query))
            .collect::<Vec<_>>()
    );
    found.into_iter().next().unwrap()
}

fn assert_forwarded_to(mock: &MockUpstream, r: &Recorded) {
    assert_eq!(
        r.host.as_deref(),
        Some(mock.addr().to_string().as_str()),
        "Host at the {} upstream must be the upstream's own",
        mock.name()
    );
    assert_eq!(
        r.header("authorization").as_deref(),
        Some(format!("Bearer {API_KEY}").as_str()),
        "the client's key is forwarded when the project sets no upstream key"
    );
}

/// What every full SDK run must have done at the upstreams.
fn check_upstreams(sdk: Sdk, s: &Setup) {
    let tag = sdk.tag();
    let (eu, us) = (&s.eu, &s.us);

    // Chat and responses, plain and streamed, reached the eu upstream with its own Host.
    let chat = one(eu, "POST", "/v1/chat/completions", &format!("\"{tag} chat\""));
    assert_forwarded_to(eu, &chat);
    let v = chat.json().expect("chat body is JSON");
    assert_eq!(v["model"], "gpt-4o-2024-08-06");
    let stream = one(eu, "POST", "/v1/chat/completions", &format!("{tag} chat stream"));
    assert_eq!(stream.json().unwrap()["stream"], true);

    // Responses under ZDR: the proxy made store=false explicit.
    for marker in [format!("\"{tag} responses\""), format!("{tag} responses stream")] {
        let r = one(eu, "POST", "/v1/responses", &marker);
        assert_forwarded_to(eu, &r);
        assert_eq!(
            r.json().unwrap().get("store"),
            Some(&serde_json::Value::Bool(false)),
            "a ZDR project's responses request must reach the upstream with store=false"
        );
    }

    for (path, marker) in [
        ("/v1/embeddings", format!("\"{tag}\"")),
        ("/v1/moderations", format!("\"{tag}\"")),
    ] {
        let r = one(eu, "POST", path, &marker);
        assert_forwarded_to(eu, &r);
    }
    assert!(
        eu.requests()
            .iter()
            .any(|r| r.method == "GET" && r.path() == "/v1/models"),
        "GET /v1/models reached the eu upstream"
    );

    // Audio: the multipart upload arrived byte for byte (the WAV the script generated).
    let audio = one(eu, "POST", "/v1/audio/transcriptions", &format!("{tag}.wav"));
    assert_forwarded_to(eu, &audio);
    let ctype = audio.header("content-type").unwrap_or_default();
    assert!(
        ctype.starts_with("multipart/form-data"),
        "audio content-type {ctype:?}"
    );
    assert!(
        contains(&audio.body, &support::wav(250)),
        "the WAV file bytes reached the upstream unchanged"
    );
    let parts = mock_openai::multipart::parse(
        &audio.body,
        &mock_openai::multipart::boundary(&ctype).expect("boundary"),
    );
    assert!(
        parts
            .iter()
            .any(|p| p.name == "model" && &p.data[..] == b"whisper-1"),
        "model part forwarded"
    );

    // Images and files went to the us upstream (the us project).
    let img = one(us, "POST", "/v1/images/generations", &format!("{tag} image"));
    assert_forwarded_to(us, &img);
    let file = one(us, "POST", "/v1/files", &format!("{tag} file"));
    assert_forwarded_to(us, &file);

    // The allowed batch input went to eu, all three lines; the denied one never completed
    // upstream with its bad line.
    let batch = one(eu, "POST", "/v1/files", &format!("{tag}-batch.jsonl"));
    for i in 0..3 {
        assert!(
            body_has(&batch, &format!("\"req-{i}\"")),
            "batch line {i} forwarded"
        );
    }

    // Denials never reached an upstream, and the retried 500 reached it three times.
    for mock in [eu, us] {
        assert!(
            !mock
                .requests()
                .iter()
                .any(|r| body_has(r, &format!("{tag} deny"))),
            "a denied request reached the {} upstream",
            mock.name()
        );
        assert!(
            !mock.requests().iter().any(|r| body_has(r, "\"gpt-4o\"")),
            "a request with the bare gpt-4o model reached the {} upstream: {:?}",
            mock.name(),
            mock.requests()
                .iter()
                .filter(|r| body_has(r, "\"gpt-4o\""))
                .map(|r| (
                    r.method.clone(),
                    r.path_and_query.clone(),
                    String::from_utf8_lossy(&r.body).into_owned()
                ))
                .collect::<Vec<_>>()
        );
    }
    let retried = eu
        .requests()
        .into_iter()
        .filter(|r| r.path() == "/v1/embeddings" && body_has(r, &format!("{tag} retry")))
        .count();
    assert_eq!(
        retried, 3,
        "the SDK's retries of an upstream 500 each reached the upstream"
    );
    if sdk == Sdk::Python {
        let rt = one(us, "GET", "/v1/realtime", "");
        assert_eq!(
            rt.path_and_query,
            "/v1/realtime?model=gpt-4o-realtime-preview-2024-12-17"
        );
        assert_forwarded_to(us, &rt);
    }
    assert_eq!(
        us.requests()
            .iter()
            .filter(|r| !["/v1/images/generations", "/v1/files", "/v1/realtime"].contains(&r.path()))
            .count(),
        0,
        "only the us project's requests reach the us upstream"
    );
}

async fn full_run(sdk: Sdk) {
    let s = setup(false).await;
    let mut cases = ALL_CASES.to_vec();
    // openai-node 7 opens realtime sockets with wss: only (it rewrites ws: and refuses custom
    // ws: URLs), so Node's realtime cases run in the TLS test.
    if sdk == Sdk::Python {
        cases.extend(REALTIME_CASES);
    }
    let Some(run) = run_sdk(sdk, &s, &cases).await else {
        return;
    };
    assert_all_passed(sdk, &run, &cases);
    check_upstreams(sdk, &s);
}

async fn tls_run(sdk: Sdk) {
    let s = setup(true).await;
    let mut cases = TLS_CASES.to_vec();
    if sdk == Sdk::Node {
        cases.extend(REALTIME_CASES);
    }
    let Some(run) = run_sdk(sdk, &s, &cases).await else {
        return;
    };
    assert_all_passed(sdk, &run, &cases);
    let chat = one(
        &s.eu,
        "POST",
        "/v1/chat/completions",
        &format!("\"{} chat\"", sdk.tag()),
    );
    assert_forwarded_to(&s.eu, &chat);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_every_endpoint() {
    full_run(Sdk::Python).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_sdk_every_endpoint() {
    full_run(Sdk::Node).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_over_tls() {
    tls_run(Sdk::Python).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_sdk_over_tls() {
    tls_run(Sdk::Node).await;
}
