//! Black-box tests of the machine breaking under the proxy, one fault at a time (issue 13):
//! the audit log on a full filesystem (a small tmpfs) in both `on_failure` modes with space
//! returning, logrotate-style rotation, a torn last line, a FIFO as the audit path, config
//! errors that must not echo a secret, oversized configs, silent connections (proxy and admin
//! listeners), a silent upstream body, an upstream reset mid-body, and the SIGTERM drain.
//!
//! Every wait is on an event (a log line, a status, a closed socket) with a generous limit;
//! timing assertions only bound from below what the proxy must wait, and from above loosely.
//! Run with `--nocapture` to see the figures (time to close, records lost, memory).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const MODEL: &str = "gpt-4o-2024-08-06";

fn chat_body(stream: bool) -> Vec<u8> {
    json!({"model": MODEL, "stream": stream, "messages": [{"role": "user", "content": "hi"}]})
        .to_string()
        .into_bytes()
}

async fn chat_with(p: &Proxy, id: &str, extra: &[(&str, &str)]) -> Resp {
    let mut h = vec![
        ("content-type", "application/json"),
        ("openai-project", EU_PROJECT),
        ("x-request-id", id),
    ];
    h.extend_from_slice(extra);
    http1_request(p.addr, "POST", "/v1/chat/completions", &h, &chat_body(false)).await
}

async fn chat(p: &Proxy, id: &str) -> Resp {
    chat_with(p, id, &[]).await
}

async fn readyz(p: &Proxy) -> u16 {
    http1_request(p.admin, "GET", "/readyz", &[], b"").await.status
}

fn verify(files: &[&Path]) -> (Option<i32>, String) {
    let out = verify_audit(files);
    (out.status.code(), output_text(&out))
}

// ---------------------------------------------------------------------------------------------
// Item 1: the audit log on a full filesystem
// ---------------------------------------------------------------------------------------------

/// The wrapper that runs the proxy in a private mount namespace with a 256 KiB tmpfs at
/// `mnt`; None when this machine cannot (no root, no user namespaces).
fn tmpfs_wrapper(mnt: &Path) -> Option<Vec<String>> {
    let probe = Command::new("unshare")
        .args(["-m", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs \"$0\""])
        .arg(mnt)
        .status();
    if !probe.is_ok_and(|s| s.success()) {
        return None;
    }
    Some(
        [
            "unshare",
            "-m",
            "sh",
            "-c",
            "mount -t tmpfs -o size=256k tmpfs \"$0\" && exec \"$@\"",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain(std::iter::once(mnt.display().to_string()))
        .collect(),
    )
}

/// Fills the filesystem of `dir` (seen through /proc/PID/root) until a write fails.
fn fill(dir: &Path) -> PathBuf {
    use std::io::Write;
    let filler = dir.join("filler");
    let mut f = std::fs::File::create(&filler).unwrap();
    let block = vec![0u8; 4096];
    while f.write_all(&block).and_then(|()| f.flush()).is_ok() {}
    // Bytes may remain in the last page; a 1-byte loop takes them too.
    while f.write_all(b"x").and_then(|()| f.flush()).is_ok() {}
    filler
}

async fn wait_ready(p: &Proxy, want: u16, limit: Duration) -> bool {
    let t0 = Instant::now();
    while t0.elapsed() < limit {
        if readyz(p).await == want {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

struct FullDisk {
    /// Requests answered while the disk was full, by status.
    during: Vec<u16>,
    gap: Value,
    verify_out: (Option<i32>, String),
    forwarded_while_full: usize,
    lost_metric: f64,
    no_space_errors: f64,
}

/// Runs the proxy with its audit log on a 256 KiB tmpfs; fills it, sends `n` requests, frees
/// it, sends one more; returns what happened. None when no tmpfs can be mounted here.
async fn full_disk(mode: &str, n: usize) -> Option<FullDisk> {
    let (eu, us) = mocks().await;
    let scratch = TempDir::new("auditfs");
    let mnt = scratch.path().join("mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    let Some(wrapper) = tmpfs_wrapper(&mnt) else {
        eprintln!("SKIPPED: cannot mount a tmpfs here (needs root or user namespaces)");
        return None;
    };
    let audit = mnt.join("audit.jsonl");
    let extra = format!(
        "[timeouts]\nshutdown_drain_delay_secs = 0\n[audit]\npath = \"{}\"\non_failure = \"{mode}\"\n",
        audit.display()
    );
    let wrapper: Vec<&str> = wrapper.iter().map(String::as_str).collect();
    let mut p = Proxy::start_wrapped(
        &two_project_config(&eu.base_url(), &us.base_url(), &extra),
        &[],
        &wrapper,
    )
    .await;
    let seen_dir = PathBuf::from(format!("/proc/{}/root{}", p.pid(), mnt.display()));
    let seen = seen_dir.join("audit.jsonl");
    assert_eq!(chat(&p, "before").await.status, 200);
    assert!(
        wait_until(Duration::from_secs(5), || jsonl_file(&seen).len() >= 3).await,
        "start notice, decision and outcome: {:?}",
        jsonl_file(&seen)
    );
    let filler = fill(&seen_dir);
    let forwarded = eu.request_count();
    let mut during = Vec::new();
    for i in 0..n {
        let r = chat(&p, &format!("full-{i}")).await;
        if r.status == 503 {
            assert_eq!(r.json()["error"]["code"], "audit_unavailable", "{}", r.text());
        }
        during.push(r.status);
    }
    let forwarded_while_full = eu.request_count() - forwarded;
    // Whatever was written is whole: every line is a record, the file ends with a newline.
    let text = std::fs::read_to_string(&seen).unwrap();
    assert!(
        text.ends_with('\n'),
        "a torn line on a full disk: {:?}",
        &text[text.len().saturating_sub(200)..]
    );
    let _ = jsonl_file(&seen);
    let m = p.metrics().await;
    let no_space_errors = metric(&m, "residency_proxy_audit_write_errors_total{kind=\"no_space\"}");
    assert!(no_space_errors >= 1.0, "{m}");
    if mode == "refuse" {
        assert_eq!(metric(&m, "residency_proxy_audit_writable"), 0.0, "{m}");
        assert_eq!(
            readyz(&p).await,
            503,
            "/readyz must fail while nothing can be recorded"
        );
    } else {
        assert_eq!(readyz(&p).await, 200, "continue mode keeps serving");
    }

    std::fs::remove_file(&filler).unwrap();
    assert!(
        wait_ready(&p, 200, Duration::from_secs(10)).await,
        "/readyz did not recover after space returned; stderr:\n{}",
        p.stderr()
    );
    let m = p.metrics().await;
    assert!(
        wait_until(Duration::from_secs(5), || jsonl_file(&seen)
            .iter()
            .any(|r| r["kind"] == "gap"))
        .await,
        "no gap record: {:?}",
        jsonl_file(&seen)
    );
    assert_eq!(chat(&p, "after").await.status, 200);
    assert!(
        wait_until(Duration::from_secs(5), || jsonl_file(&seen)
            .iter()
            .any(|r| r["kind"] == "outcome" && r["request_id"] == "after"))
        .await
    );
    let copy = scratch.path().join("audit.copy");
    std::fs::copy(&seen, &copy).unwrap();
    let gap = jsonl_file(&copy)
        .into_iter()
        .find(|r| r["kind"] == "gap")
        .unwrap();
    let verify_out = verify(&[&copy]);
    let lost_metric = metric(&m, "residency_proxy_audit_records_lost_total");
    p.signal("TERM");
    p.assert_exits_zero(Duration::from_secs(15), "exit after SIGTERM")
        .await;
    let stderr = p.stderr();
    assert!(
        stderr.contains("audit log write failed") && stderr.contains("no_space"),
        "the failure is logged with its OS error kind:\n{stderr}"
    );
    Some(FullDisk {
        during,
        gap,
        verify_out,
        forwarded_while_full,
        lost_metric,
        no_space_errors,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_disk_in_refuse_mode_forwards_nothing_unrecorded_and_recovers() {
    let Some(r) = full_disk("refuse", 12).await else {
        return;
    };
    let refused = r.during.iter().filter(|&&s| s == 503).count();
    // A few records may still fit in the last page of the file; once a write fails, every
    // request is refused and none is forwarded.
    let first_refused = r
        .during
        .iter()
        .position(|&s| s == 503)
        .expect("no request was refused");
    assert!(
        r.during[first_refused..].iter().all(|&s| s == 503),
        "{:?}",
        r.during
    );
    assert_eq!(
        r.forwarded_while_full, first_refused,
        "a refused request reached the upstream"
    );
    assert_eq!(r.gap["lost_forwarded"], 0, "{}", r.gap);
    assert_eq!(r.gap["refused"], refused, "{}", r.gap);
    // The refusals' own records could not be written either (plus, at most, the outcome of
    // the last request forwarded before the first failure): counted, not silent.
    let lost = r.gap["lost"].as_u64().unwrap() as usize;
    assert!(lost == refused || lost == refused + 1, "{}", r.gap);
    assert_eq!(r.lost_metric, lost as f64);
    assert_eq!(
        r.verify_out.0,
        Some(2),
        "intact with a recorded gap: {}",
        r.verify_out.1
    );
    assert!(
        r.verify_out
            .1
            .contains(&format!("{lost} records lost between seq")),
        "{}",
        r.verify_out.1
    );
    println!(
        "FULL DISK (refuse): {:?}; {refused} refused with 503, 0 forwarded decisions lost, {} refusal records lost; write errors {}; verify: {}",
        r.during,
        r.gap["lost"],
        r.no_space_errors,
        r.verify_out.1.trim()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_disk_in_continue_mode_counts_lost_records_in_a_signed_gap() {
    let Some(r) = full_disk("continue", 12).await else {
        return;
    };
    assert!(r.during.iter().all(|&s| s == 200), "{:?}", r.during);
    assert_eq!(r.forwarded_while_full, 12);
    let lost = r.gap["lost"].as_u64().unwrap();
    let lost_fwd = r.gap["lost_forwarded"].as_u64().unwrap();
    assert!(lost_fwd >= 1, "{}", r.gap);
    // Each forwarded request that was not recorded lost its decision and its outcome.
    assert!(lost >= 2 * lost_fwd && lost <= 24, "{}", r.gap);
    assert_eq!(r.lost_metric, lost as f64);
    assert_eq!(r.verify_out.0, Some(2), "{}", r.verify_out.1);
    assert!(
        r.verify_out
            .1
            .contains(&format!("{lost} records lost between seq")),
        "{}",
        r.verify_out.1
    );
    println!(
        "FULL DISK (continue): 12 forwarded, {lost} records lost ({lost_fwd} decisions of forwarded requests); verify: {}",
        r.verify_out.1.trim()
    );
}

// ---------------------------------------------------------------------------------------------
// Item 2: rotation and recovery
// ---------------------------------------------------------------------------------------------

fn audit_config(eu: &MockUpstream, us: &MockUpstream, path: &Path) -> String {
    two_project_config(
        &eu.base_url(),
        &us.base_url(),
        &format!(
            "[timeouts]\nshutdown_drain_delay_secs = 0\n[audit]\npath = \"{}\"\n",
            path.display()
        ),
    )
}

async fn recorded(p: &Proxy, path: &Path, id: &str) {
    assert_eq!(chat(p, id).await.status, 200);
    assert!(
        wait_until(Duration::from_secs(5), || jsonl_file(path)
            .iter()
            .any(|r| r["kind"] == "outcome" && r["request_id"] == id))
        .await,
        "{id} not recorded in {}: {:?}\n{}",
        path.display(),
        jsonl_file(path),
        p.stderr()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_by_create_copytruncate_rename_and_new_path_keeps_one_chain() {
    let (eu, us) = mocks().await;
    let dir = TempDir::new("rotate");
    let audit = dir.path().join("audit.jsonl");
    let p = Proxy::start(&audit_config(&eu, &us, &audit), &[]).await;
    recorded(&p, &audit, "a1").await;
    recorded(&p, &audit, "a2").await;

    // logrotate `create`: rename, create an empty file, signal.
    let r1 = dir.path().join("audit.jsonl.1");
    std::fs::rename(&audit, &r1).unwrap();
    std::fs::File::create(&audit).unwrap();
    p.signal("HUP");
    assert!(
        p.wait_log("audit log reopened", Duration::from_secs(5)).await,
        "{}",
        p.stderr()
    );
    recorded(&p, &audit, "b1").await;
    assert!(
        jsonl_file(&r1).iter().all(|r| r["request_id"] != "b1"),
        "written to the rotated file"
    );

    // logrotate `copytruncate`: copy, truncate in place (no signal).
    let r2 = dir.path().join("audit.jsonl.2");
    std::fs::copy(&audit, &r2).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&audit)
        .unwrap();
    recorded(&p, &audit, "c1").await;
    let text = std::fs::read(&audit).unwrap();
    assert_ne!(
        text.first(),
        Some(&0u8),
        "a copytruncate must not leave a hole of zeros"
    );

    // Renamed without a signal: the proxy notices before its next write.
    let r3 = dir.path().join("audit.jsonl.3");
    std::fs::rename(&audit, &r3).unwrap();
    recorded(&p, &audit, "d1").await;

    // A new [audit] path by reload.
    let moved = dir.path().join("audit-new.jsonl");
    let r4 = dir.path().join("audit.jsonl.4");
    p.rewrite_config(&audit_config(&eu, &us, &moved));
    assert!(
        p.wait_log("audit.path changed", Duration::from_secs(10)).await,
        "{}",
        p.stderr()
    );
    recorded(&p, &moved, "e1").await;
    std::fs::rename(&audit, &r4).unwrap();

    let all: Vec<&Path> = vec![&r1, &r2, &r3, &r4, &moved];
    let total: usize = all.iter().map(|f| jsonl_file(f).len()).sum();
    let (code, out) = verify(&all);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains(&format!("ok, {total} record(s) in 5 file(s)")),
        "{out}"
    );
    let (code, out) = verify(&[&r2]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("the chain starts at seq"), "{out}");
    // Out of order, the second file reads as a chain that starts again: not "ok".
    let (code, out) = verify(&[&r2, &r1]);
    assert_ne!(code, Some(0), "files out of order: {out}");
    println!("ROTATION: {total} records across 5 files verify as one chain");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_torn_last_line_is_moved_aside_and_the_chain_continues() {
    let (eu, us) = mocks().await;
    let dir = TempDir::new("torn");
    let audit = dir.path().join("audit.jsonl");
    let mut p = Proxy::start(&audit_config(&eu, &us, &audit), &[]).await;
    recorded(&p, &audit, "t1").await;
    p.signal("TERM");
    p.wait_exit(Duration::from_secs(15)).await.expect("exit");
    drop(p);
    // A crash mid-write.
    const TORN: &[u8] = b"{\"seq\":4,\"ts\":\"2026-";
    let mut text = std::fs::read(&audit).unwrap();
    let complete = jsonl_file(&audit).len();
    text.extend_from_slice(TORN);
    std::fs::write(&audit, &text).unwrap();

    let p = Proxy::start(&audit_config(&eu, &us, &audit), &[]).await;
    assert!(
        p.wait_log("torn last line", Duration::from_secs(5)).await,
        "{}",
        p.stderr()
    );
    recorded(&p, &audit, "t2").await;
    let recs = jsonl_file(&audit);
    let notice = &recs[complete];
    assert_eq!(notice["kind"], "notice", "{notice}");
    let said = format!("torn last line of {} bytes", TORN.len());
    assert!(notice["notice"].as_str().unwrap().contains(&said), "{notice}");
    let side: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("audit.jsonl.torn-"))
        .collect();
    assert_eq!(side.len(), 1);
    assert_eq!(std::fs::read(side[0].path()).unwrap(), TORN);
    let (code, out) = verify(&[&audit]);
    assert_eq!(code, Some(0), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_and_serve_refuse_a_fifo_and_a_missing_directory_without_blocking() {
    let dir = TempDir::new("fifo");
    let fifo = dir.path().join("audit.fifo");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let write = |path: &Path| {
        let cfg = dir.path().join("proxy.toml");
        std::fs::write(
            &cfg,
            format!(
                "listen = \"127.0.0.1:0\"\n[audit]\npath = \"{}\"\n[[projects]]\nname = \"p\"\nregion = \"us\"\nretention = \"zdr\"\ndefault = true\n",
                path.display()
            ),
        )
        .unwrap();
        cfg
    };
    let cfg = write(&fifo);
    let (code, out) = run_args(&["check", "--config", cfg.to_str().unwrap()]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("not a regular file"), "{out}");
    // `serve` must refuse it too, not block opening the FIFO.
    let mut child = Command::new(BIN)
        .args(["serve", "--config", cfg.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break Some(st);
        }
        if t0.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            break None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let status = status.expect("serve blocked on a FIFO audit path");
    assert_eq!(status.code(), Some(1));

    let cfg = write(&dir.path().join("no-such-dir/audit.jsonl"));
    let (code, out) = run_args(&["check", "--config", cfg.to_str().unwrap()]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("no-such-dir"), "{out}");
    let cfg = write(&dir.path().join("audit.jsonl"));
    let (code, out) = run_args(&["check", "--config", cfg.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{out}");
}

// ---------------------------------------------------------------------------------------------
// Item 3: config safety
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_errors_name_file_line_and_key_but_never_the_value_and_size_is_capped() {
    const SECRET: &str = "sk-proj-TOPSECRET0123456789";
    let (eu, us) = mocks().await;
    let good = two_project_config(&eu.base_url(), &us.base_url(), "");
    let dir = TempDir::new("cfgsafe");
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, format!("[limits]\nmax_connections = \"{SECRET}\"\n")).unwrap();
    let (code, out) = run_args(&["check", "--config", bad.to_str().unwrap()]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("bad.toml: line 2, column"), "{out}");
    assert!(out.contains("key `limits.max_connections`"), "{out}");
    assert!(!out.contains("TOPSECRET"), "the value is echoed: {out}");
    std::fs::write(&bad, format!("listen = \"127.0.0.1:0\"\n{SECRET}\n")).unwrap();
    let (code, out) = run_args(&["check", "--config", bad.to_str().unwrap()]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("line 2") && !out.contains("TOPSECRET"), "{out}");

    // A reload with a secret on a bad line: refused, logged without it.
    let p = Proxy::start(&good, &[]).await;
    let (_, hwm_before) = p.memory_kib();
    p.rewrite_config(&format!("{good}\n[auth]\nrequire_client_key = \"{SECRET}\"\n"));
    assert!(
        p.wait_log("config reload refused", Duration::from_secs(60)).await,
        "{}",
        p.stderr()
    );
    assert!(!p.stderr().contains("TOPSECRET"), "{}", p.stderr());
    assert!(p.stderr().contains("auth.require_client_key"), "{}", p.stderr());

    // A 12 MB config is refused before it is parsed (or read whole).
    let mut big = good.clone();
    big.push_str(&format!("# {}\n", "x".repeat(12 * 1024 * 1024)));
    p.rewrite_config(&big);
    assert!(
        p.wait_log("1048576-byte limit", Duration::from_secs(60)).await,
        "{}",
        p.stderr()
    );
    let (_, hwm_after) = p.memory_kib();
    assert!(
        hwm_after < hwm_before + 8 * 1024,
        "peak RSS grew from {hwm_before} to {hwm_after} KiB on a refused 12 MB config"
    );
    assert_eq!(
        chat(&p, "still").await.status,
        200,
        "the old config keeps serving"
    );
    println!("OVERSIZED CONFIG: 12 MB refused; peak RSS {hwm_before} KiB -> {hwm_after} KiB");
    let (code, out) = run_args(&["check", "--config", p.config.to_str().unwrap()]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("1048576-byte limit"), "{out}");
}

// ---------------------------------------------------------------------------------------------
// Item 4: every wait bounded
// ---------------------------------------------------------------------------------------------

/// Reads until the peer closes; the time it took, or None after `limit`.
async fn closed_within(s: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let t0 = Instant::now();
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout(limit.saturating_sub(t0.elapsed()), s.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0) | Err(_)) => return Some(t0.elapsed()),
            Ok(Ok(_)) => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_connections_are_closed_from_accept_on_both_listeners() {
    let (eu, us) = mocks().await;
    let extra = "[timeouts]\nrequest_header_secs = 1\n[limits]\nadmin_max_connections = 3\n";
    let p = Proxy::start(&two_project_config(&eu.base_url(), &us.base_url(), extra), &[]).await;

    // A connection that sends nothing, and one that sends half a head.
    let mut silent = TcpStream::connect(p.addr).await.unwrap();
    let mut partial = TcpStream::connect(p.addr).await.unwrap();
    partial
        .write_all(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let took = closed_within(&mut silent, Duration::from_secs(10))
        .await
        .expect("silent connection never closed");
    assert!(
        took >= Duration::from_millis(900),
        "closed after {took:?}, before request_header_secs"
    );
    closed_within(&mut partial, Duration::from_secs(10))
        .await
        .expect("partial head never closed");

    // Silent admin connections: more than its cap. The proxy port still serves meanwhile, and
    // they are closed too, after which the admin listener answers again.
    let mut admin_conns = Vec::new();
    for _ in 0..6 {
        admin_conns.push(TcpStream::connect(p.admin).await.unwrap());
    }
    assert_eq!(chat(&p, "meanwhile").await.status, 200);
    let t0 = Instant::now();
    assert!(
        closed_within(&mut admin_conns[0], Duration::from_secs(10))
            .await
            .is_some(),
        "a silent admin connection was never closed"
    );
    assert_eq!(readyz(&p).await, 200);
    let m = p.metrics().await;
    assert!(
        metric(&m, "residency_proxy_timeouts_total{kind=\"request_header\"}") >= 2.0,
        "{m}"
    );
    assert!(
        metric(&m, "residency_proxy_timeouts_total{kind=\"admin_header\"}") >= 3.0,
        "{m}"
    );
    println!(
        "SILENT CONNECTION: closed {took:?} after connect (request_header_secs = 1); admin: {:?}",
        t0.elapsed()
    );

    // Limits that cannot work are refused by `check`.
    let dir = TempDir::new("limits");
    for (line, key) in [
        (
            "[limits]\nmax_connections = 0",
            "limits.max_connections: must be between 1 and",
        ),
        (
            "[limits]\nmax_concurrent_requests = 0",
            "limits.max_concurrent_requests: must be between 1 and",
        ),
        (
            "[timeouts]\nrequest_header_secs = 0",
            "timeouts.request_header_secs: must be a number of seconds between 1 and",
        ),
        (
            "[timeouts]\nupstream_idle_secs = 0",
            "timeouts.upstream_idle_secs: must be a number of seconds between 1 and",
        ),
    ] {
        let cfg = dir.path().join("c.toml");
        std::fs::write(
            &cfg,
            config_text(&two_project_config(&eu.base_url(), &us.base_url(), line)),
        )
        .unwrap();
        let (code, out) = run_args(&["check", "--config", cfg.to_str().unwrap()]);
        assert_eq!(code, Some(1), "{line}: {out}");
        assert!(out.contains(key), "{line}: {out}");
    }
}

/// An upstream that answers every request with a streaming head and one event, then says
/// nothing more (the connection stays open).
async fn stalling_upstream() -> (String, tokio::task::JoinHandle<()>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((mut s, _)) = l.accept().await {
            let mut buf = vec![0u8; 65536];
            let mut got = Vec::new();
            while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                }
            }
            let event = "data: {\"a\":1}\n\n";
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n{:x}\r\n{event}\r\n",
                event.len()
            );
            let _ = s.write_all(head.as_bytes()).await;
            held.push(s);
        }
    });
    (format!("http://{addr}"), task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_upstream_body_is_ended_after_upstream_idle_secs_and_recorded() {
    let (base, _task) = stalling_upstream().await;
    let us = MockUpstream::start("us").await;
    let dir = TempDir::new("idle");
    let audit = dir.path().join("audit.jsonl");
    let extra = format!(
        "[timeouts]\nupstream_idle_secs = 1\n[audit]\npath = \"{}\"\n",
        audit.display()
    );
    let p = Proxy::start(&two_project_config(&base, &us.base_url(), &extra), &[]).await;
    let mut s = TcpStream::connect(p.addr).await.unwrap();
    let req = build_request(
        p.addr,
        "POST",
        "/v1/chat/completions",
        &[
            ("content-type", "application/json"),
            ("openai-project", EU_PROJECT),
            ("x-request-id", "stall-1"),
        ],
        &chat_body(true),
    );
    s.write_all(&req).await.unwrap();
    let t0 = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let closed = tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    let took = t0.elapsed();
    assert!(
        closed.is_ok(),
        "the client still waits after 15 s: {}",
        String::from_utf8_lossy(&got)
    );
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("data: {\"a\":1}"), "{text}");
    assert!(!text.ends_with("0\r\n\r\n"), "ended as if complete: {text:?}");
    assert!(took >= Duration::from_millis(900), "ended after {took:?}");
    assert!(
        wait_until(Duration::from_secs(5), || jsonl_file(&audit)
            .iter()
            .any(|r| r["kind"] == "outcome" && r["body"] == "upstream_idle_timeout"))
        .await,
        "{:?}",
        jsonl_file(&audit)
    );
    let m = p.metrics().await;
    assert_eq!(
        metric(&m, "residency_proxy_timeouts_total{kind=\"upstream_idle\"}"),
        1.0,
        "{m}"
    );
    assert_eq!(
        metric(
            &m,
            "residency_proxy_response_body_errors_total{kind=\"upstream_idle_timeout\"}"
        ),
        1.0
    );
    assert!(
        p.stderr().contains("response did not end complete"),
        "{}",
        p.stderr()
    );
    println!("SILENT UPSTREAM: client stream ended {took:?} after the request (upstream_idle_secs = 1)");
}

// ---------------------------------------------------------------------------------------------
// Item 5: drain and upstream errors mid-body
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_reset_mid_body_is_logged_counted_and_recorded() {
    let (eu, us) = mocks().await;
    let dir = TempDir::new("reset");
    let audit = dir.path().join("audit.jsonl");
    let p = Proxy::start(&audit_config(&eu, &us, &audit), &[]).await;
    let mut s = TcpStream::connect(p.addr).await.unwrap();
    let req = build_request(
        p.addr,
        "POST",
        "/v1/chat/completions",
        &[
            ("content-type", "application/json"),
            ("openai-project", EU_PROJECT),
            ("x-request-id", "cut-1"),
            ("x-mock-behavior", "drop-mid-stream"),
        ],
        &chat_body(true),
    );
    s.write_all(&req).await.unwrap();
    closed_within(&mut s, Duration::from_secs(15))
        .await
        .expect("the cut stream was not ended");
    assert!(
        wait_until(Duration::from_secs(5), || jsonl_file(&audit).iter().any(|r| r
            ["kind"]
            == "outcome"
            && r["request_id"] == "cut-1"
            && r["body"] == "upstream_error"))
        .await,
        "{:?}",
        jsonl_file(&audit)
    );
    let m = p.metrics().await;
    assert_eq!(
        metric(
            &m,
            "residency_proxy_response_body_errors_total{kind=\"upstream_error\"}"
        ),
        1.0,
        "{m}"
    );
    assert!(p.stderr().contains("upstream_error"), "{}", p.stderr());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_fails_readyz_while_serving_for_the_drain_delay_then_stops_accepting() {
    let (eu, us) = mocks().await;
    let extra = "[timeouts]\nshutdown_drain_delay_secs = 2\nshutdown_grace_secs = 10\n";
    let mut p = Proxy::start(&two_project_config(&eu.base_url(), &us.base_url(), extra), &[]).await;
    assert_eq!(readyz(&p).await, 200);
    p.signal("TERM");
    let t0 = Instant::now();
    assert!(
        p.wait_log("still serving during the drain delay", Duration::from_secs(5))
            .await,
        "{}",
        p.stderr()
    );
    // During the delay: not ready, but new connections are still served.
    assert_eq!(readyz(&p).await, 503);
    assert_eq!(chat(&p, "during-delay").await.status, 200);
    assert!(
        t0.elapsed() < Duration::from_secs(2),
        "the checks above took the whole delay; inconclusive"
    );
    assert!(
        p.wait_log("stopped accepting", Duration::from_secs(10)).await,
        "{}",
        p.stderr()
    );
    assert!(
        t0.elapsed() >= Duration::from_millis(1900),
        "the drain delay was cut short"
    );
    // The admin listener still answers 503 while the drain runs; then the process exits 0.
    p.assert_exits_zero(Duration::from_secs(15), "exit after the drain")
        .await;
    println!(
        "DRAIN: readyz 503 and serving for the 2 s delay; exited after {:?}",
        t0.elapsed()
    );
}
