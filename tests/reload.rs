//! Hot reload as an operator sees it, driving the real binary against two recording mocks:
//! each trigger (a file rewrite, SIGHUP, a Kubernetes ConfigMap symlink swap) routes new
//! requests by the new config while an in-flight one finishes on the old; the upstream pool is
//! kept unless its settings change; a startup-only change is named; an invalid config is
//! refused while the old one keeps serving.
//!
//! Run with `--nocapture` to see the measured reload times.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::*;

/// JSON logs, both mocks routed, and one default ZDR project `app` in `region`.
fn reload_body(eu: &MockUpstream, us: &MockUpstream, region: &str) -> String {
    format!(
        "[log]\nformat = \"json\"\n{}\n{}",
        upstream_table(eu, us),
        app_project(region)
    )
}

/// The "config reloaded" log lines so far.
fn reloaded_lines(stderr: &str) -> Vec<Value> {
    json_lines(stderr)
        .into_iter()
        .filter(|l| {
            l["message"]
                .as_str()
                .is_some_and(|m| m.contains("config reloaded"))
        })
        .collect()
}

/// The `elapsed_ms` of the last "config reloaded" line with `trigger`, waiting up to 2 s: the
/// swap comes before its log line, so a request can see the new config a moment before it.
async fn wait_reload_log(p: &Proxy, trigger: &str) -> Option<f64> {
    let mut found = None;
    wait_until(Duration::from_secs(2), || {
        found = reloaded_lines(&p.stderr())
            .into_iter()
            .rev()
            .find(|l| l["trigger"] == trigger)
            .and_then(|l| l["elapsed_ms"].as_f64());
        found.is_some()
    })
    .await;
    found
}

async fn reload_count(p: &Proxy, result: &str) -> f64 {
    let text = p.metrics().await;
    sample(
        &parse_metrics(&text),
        "residency_proxy_config_reloads_total",
        &[("result", result)],
    )
    .map_or(0.0, |s| s.value)
}

/// Polls the reload counter for `result` until it reaches `n` (3 s at most); its last value.
async fn wait_reload_count(p: &Proxy, result: &str, n: f64) -> f64 {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let got = reload_count(p, result).await;
        if got >= n || Instant::now() >= deadline {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Sends chats until one is answered by the mock of `region` (3 s at most); the time from
/// `since` to that answer.
async fn first_routed_to(p: &Proxy, region: &str, since: Instant) -> Option<Duration> {
    while since.elapsed() < Duration::from_secs(3) {
        let r = p.chat(&[], &chat_json(false, "after")).await;
        if r.header("x-mock-upstream") == Some(region) {
            r.assert_residency("allow", "app", region);
            return Some(since.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

/// How a reload is set off: one row of [`each_trigger_routes_new_requests_by_the_new_config`].
#[derive(Clone, Copy, Debug)]
enum Trigger {
    /// The file is rewritten in place; the watcher notices. A request in flight at the
    /// upstream (delayed head) during the change finishes on the old config.
    FileChange,
    /// The file changes but keeps its size and modification time, so only SIGHUP can notice.
    Sighup,
    /// The Kubernetes ConfigMap layout: `config.toml -> ..data/config.toml`, `..data -> ..TS`;
    /// an update writes a new `..TS2` directory and renames a new `..data` link over the old.
    ConfigMapSwap,
}

impl Trigger {
    /// The `trigger` field of the "config reloaded" log line.
    fn logged_as(self) -> &'static str {
        match self {
            Trigger::FileChange | Trigger::ConfigMapSwap => "file_change",
            Trigger::Sighup => "sighup",
        }
    }
}

/// Starts the proxy routing to eu, as the row's layout wants.
async fn start(trigger: Trigger, dir: &TempDir, eu: &MockUpstream, us: &MockUpstream) -> Proxy {
    match trigger {
        Trigger::FileChange | Trigger::Sighup => {
            Proxy::start_in(dir, "a", &reload_body(eu, us, "eu"), &[]).await
        }
        Trigger::ConfigMapSwap => {
            use std::os::unix::fs::symlink;
            let cm = dir.path().join("cm");
            write_configmap_version(&cm, "..2026_01_01", &reload_body(eu, us, "eu"));
            symlink("..2026_01_01", cm.join("..data")).unwrap();
            symlink("..data/config.toml", cm.join("config.toml")).unwrap();
            Proxy::start_at(dir, "a", cm.join("config.toml"), &[]).await
        }
    }
}

fn write_configmap_version(cm: &Path, version: &str, body: &str) {
    std::fs::create_dir_all(cm.join(version)).unwrap();
    std::fs::write(cm.join(version).join("config.toml"), config_text(body)).unwrap();
}

/// Switches the config to region us the row's way; when that happened.
async fn switch_to_us(
    trigger: Trigger,
    p: &Proxy,
    dir: &TempDir,
    eu: &MockUpstream,
    us: &MockUpstream,
) -> Instant {
    let new = reload_body(eu, us, "us");
    match trigger {
        Trigger::FileChange => {
            let written = Instant::now();
            p.rewrite_config(&new);
            written
        }
        Trigger::Sighup => {
            let mtime = std::fs::metadata(&p.config).unwrap().modified().unwrap();
            assert_eq!(new.len(), reload_body(eu, us, "eu").len());
            p.rewrite_config(&new);
            let f = std::fs::File::options().write(true).open(&p.config).unwrap();
            f.set_modified(mtime).unwrap();
            drop(f);
            // A negative: nothing may reload without the signal (a watcher poll is ~1 s).
            tokio::time::sleep(Duration::from_millis(1200)).await;
            let r = p.chat(&[], &chat_json(false, "still eu")).await;
            assert_eq!(
                r.header("x-mock-upstream"),
                Some("eu"),
                "no reload without a trigger: {r:?}"
            );
            let sent = Instant::now();
            p.signal("HUP");
            sent
        }
        Trigger::ConfigMapSwap => {
            use std::os::unix::fs::symlink;
            let cm = dir.path().join("cm");
            write_configmap_version(&cm, "..2026_01_02", &new);
            symlink("..2026_01_02", cm.join("..data_tmp")).unwrap();
            let swapped = Instant::now();
            std::fs::rename(cm.join("..data_tmp"), cm.join("..data")).unwrap();
            std::fs::remove_dir_all(cm.join("..2026_01_01")).unwrap();
            swapped
        }
    }
}

async fn reload_row(trigger: Trigger) {
    let (eu, us) = mocks().await;
    let dir = TempDir::new("reload");
    let p = start(trigger, &dir, &eu, &us).await;
    let r = p.chat(&[], &chat_json(false, "before")).await;
    assert_eq!(r.header("x-mock-upstream"), Some("eu"), "{trigger:?}: {r:?}");
    r.assert_residency("allow", "app", "eu");

    let inflight = matches!(trigger, Trigger::FileChange).then(|| {
        let addr = p.addr;
        tokio::spawn(async move {
            let req = build_request(
                addr,
                "POST",
                "/v1/chat/completions",
                &[
                    ("Content-Type", "application/json"),
                    ("x-mock-behavior", "delay:1500"),
                ],
                chat_json(false, "in flight").as_bytes(),
            );
            send_raw(addr, &req).await
        })
    });
    if inflight.is_some() {
        let got = eu.wait_for(2, Duration::from_secs(3)).await;
        assert_eq!(got.len(), 2, "the in-flight request reached eu");
    }

    let since = switch_to_us(trigger, &p, &dir, &eu, &us).await;
    let routed = first_routed_to(&p, "us", since).await.unwrap_or_else(|| {
        panic!(
            "{trigger:?}: new requests not routed to us within 3 s; stderr:\n{}",
            p.stderr()
        )
    });
    if let Some(inflight) = inflight {
        assert!(routed < Duration::from_secs(2), "reload took {routed:?}");
        let old = inflight.await.unwrap();
        assert_eq!(old.status, 200, "the in-flight request completes: {old:?}");
        assert_eq!(old.header("x-mock-upstream"), Some("eu"), "{old:?}");
        old.assert_residency("allow", "app", "eu");
        assert_eq!(
            us.requests()
                .iter()
                .filter(|r| r.body.windows(9).any(|w| w == b"in flight"))
                .count(),
            0
        );
    }
    let elapsed = wait_reload_log(&p, trigger.logged_as()).await.unwrap_or_else(|| {
        panic!(
            "{trigger:?}: no \"config reloaded\" line for {}:\n{}",
            trigger.logged_as(),
            p.stderr()
        )
    });
    // The swap renames a link and removes a directory: the watcher may see two events.
    if !matches!(trigger, Trigger::ConfigMapSwap) {
        assert_eq!(reload_count(&p, "success").await, 1.0, "{trigger:?}");
    }
    println!(
        "RELOAD {trigger:?}: change -> first request on new config {:.1} ms; reload itself elapsed_ms={elapsed:.3}",
        routed.as_secs_f64() * 1000.0
    );
}

/// Rows (were one test each): `reload_on_file_change_routes_new_requests_and_keeps_in_flight_ones`,
/// `reload_on_sighup`, `reload_follows_a_configmap_symlink_swap`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_trigger_routes_new_requests_by_the_new_config() {
    for trigger in [Trigger::FileChange, Trigger::Sighup, Trigger::ConfigMapSwap] {
        reload_row(trigger).await;
    }
}

/// Writes `text` as the whole config file, sends SIGHUP (a rewrite of the same size within
/// the file's mtime granularity is not seen by the watcher) and waits for the reload; its line.
async fn reload_to(p: &Proxy, text: &str) -> Value {
    let before = reloaded_lines(&p.stderr()).len();
    std::fs::write(&p.config, text).unwrap();
    p.signal("HUP");
    assert!(
        wait_until(Duration::from_secs(5), || reloaded_lines(&p.stderr()).len()
            > before)
        .await,
        "no reload:\n{}",
        p.stderr()
    );
    reloaded_lines(&p.stderr()).pop().unwrap()
}

/// A reload that leaves the upstream settings alone (here it changes `max_body_bytes`) keeps the
/// pool and its warm connection: the mock sees no second connection. One that changes them (the
/// pool size) builds a new pool for new requests, and the old pool's connection is closed once
/// no request uses it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_keeps_the_upstream_pool_unless_its_settings_change() {
    let (eu, us) = mocks().await;
    let dir = TempDir::new("reload-pool");
    let p = Proxy::start_in(&dir, "a", &reload_body(&eu, &us, "eu"), &[]).await;
    let chat = || async { p.chat(&[], &chat_json(false, "pool")).await };
    assert_eq!(chat().await.header("x-mock-upstream"), Some("eu"));
    assert_eq!(eu.connections(), 1);

    let kept = reload_to(
        &p,
        &config_text(&format!(
            "[limits]\nmax_body_bytes = 1000000\n{}",
            reload_body(&eu, &us, "eu")
        )),
    )
    .await;
    for _ in 0..3 {
        assert_eq!(chat().await.header("x-mock-upstream"), Some("eu"));
    }
    assert_eq!(
        eu.connections(),
        1,
        "the reload dropped the warm upstream connection"
    );
    assert_eq!(kept["upstream_pool"], "kept", "{kept}");

    let body =
        reload_body(&eu, &us, "eu").replace("[[projects]]", "pool_max_idle_per_host = 7\n[[projects]]");
    let rebuilt = reload_to(&p, &config_text(&body)).await;
    assert_eq!(rebuilt["upstream_pool"], "rebuilt", "{rebuilt}");
    assert_eq!(chat().await.header("x-mock-upstream"), Some("eu"));
    assert_eq!(eu.connections(), 2, "new requests use the new pool");
    assert!(
        wait_until(Duration::from_secs(3), || eu.open_connections() == 1).await,
        "the old pool's connection is still open ({} open)",
        eu.open_connections()
    );
}

/// A reload that changes a startup-only key names it in the log and in a metric, and the
/// process keeps running as it started (here: still on its first listener).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_names_startup_only_changes() {
    let (eu, us) = mocks().await;
    let dir = TempDir::new("reload-startup");
    let p = Proxy::start_in(&dir, "a", &reload_body(&eu, &us, "eu"), &[]).await;
    // Each row: the changed text and the key the log must name.
    let rows: [(&str, &str); 4] = [
        (
            "listen = \"127.0.0.1:1\"\nadmin_listen = \"127.0.0.1:0\"\n",
            "listen",
        ),
        (
            "listen = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\nworkers = 3\n",
            "workers",
        ),
        (
            "listen = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n[limits]\nmax_connections = 5\n",
            "limits.max_connections",
        ),
        (
            "listen = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n[timeouts]\nrequest_header_secs = 3\n",
            "timeouts.request_header_secs",
        ),
    ];
    for (head, key) in rows {
        reload_to(&p, &format!("{head}{}", reload_body(&eu, &us, "eu"))).await;
        let said = format!("`{key}` changed: takes effect at restart");
        assert!(p.stderr().contains(&said), "no {said:?} in:\n{}", p.stderr());
        let text = p.metrics().await;
        let n = sample(
            &parse_metrics(&text),
            "residency_proxy_config_restart_required_total",
            &[("key", key)],
        )
        .map_or(0.0, |s| s.value);
        assert!(n >= 1.0, "{key}: not counted:\n{text}");
    }
    // Still serving where it started, on the reloaded config.
    let r = p.chat(&[], &chat_json(false, "after")).await;
    assert_eq!(r.status, 200, "{r:?}");
    // One reload a row at least (the file watcher may see a rewrite too).
    assert!(reload_count(&p, "success").await >= 4.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_reload_is_refused_and_the_old_config_keeps_serving() {
    let (eu, us) = mocks().await;
    let dir = TempDir::new("reload-bad");
    let p = Proxy::start_in(&dir, "a", &reload_body(&eu, &us, "eu"), &[]).await;
    let r = p.chat(&[], &chat_json(false, "before")).await;
    assert_eq!(r.header("x-mock-upstream"), Some("eu"));

    p.rewrite_config(&reload_body(&eu, &us, "uk"));
    let failures = wait_reload_count(&p, "failure", 1.0).await;
    assert_eq!(
        failures,
        1.0,
        "reload failure not counted; stderr:\n{}",
        p.stderr()
    );
    let text = p.metrics().await;
    let s = parse_metrics(&text);
    assert_eq!(
        sample(&s, "residency_proxy_config_last_reload_success", &[]).map(|x| x.value),
        Some(0.0),
        "{text}"
    );
    assert_eq!(reload_count(&p, "success").await, 0.0);
    // The old config keeps serving.
    for _ in 0..3 {
        let r = p.chat(&[], &chat_json(false, "still")).await;
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(r.header("x-mock-upstream"), Some("eu"), "{r:?}");
        r.assert_residency("allow", "app", "eu");
    }
    assert_eq!(us.request_count(), 0);
    let r = p.admin_get("/readyz").await;
    assert_eq!(r.status, 200, "still ready on the old config");
    // The problem is logged, naming the bad value.
    let stderr = p.stderr();
    let logged = json_lines(&stderr).into_iter().any(|l| {
        let s = l.to_string();
        l["level"]
            .as_str()
            .is_some_and(|lv| lv.eq_ignore_ascii_case("error"))
            && s.contains("uk")
    });
    assert!(logged, "no error log naming the problem:\n{stderr}");

    // A fixed config is taken again and the gauge recovers.
    p.rewrite_config(&reload_body(&eu, &us, "us"));
    assert!(
        wait_reload_count(&p, "success", 1.0).await >= 1.0,
        "the fixed config was not loaded; stderr:\n{}",
        p.stderr()
    );
    let s = parse_metrics(&p.metrics().await);
    assert_eq!(
        sample(&s, "residency_proxy_config_last_reload_success", &[]).map(|x| x.value),
        Some(1.0)
    );
    let r = p.chat(&[], &chat_json(false, "now us")).await;
    assert_eq!(r.header("x-mock-upstream"), Some("us"), "{r:?}");
}
