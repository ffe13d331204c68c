//! The admin status page (`GET /`) rendered by a real browser: Debian's `chromium` in headless
//! mode dumps the DOM it built from the page. Without chromium the test says so and skips,
//! except under CI, where a missing browser is a failure (.ci/install-test-deps.sh installs it).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;
use support::{in_ci, mocks, two_project_config, Proxy, TempDir, EU_PROJECT};

fn chromium() -> Option<PathBuf> {
    for name in ["chromium", "chromium-browser", "google-chrome"] {
        for dir in std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
            .unwrap_or_default()
        {
            let p = dir.join(name);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    None
}

/// The DOM chromium built from `url`, as HTML.
fn dump_dom(browser: &PathBuf, url: &str) -> String {
    let profile = TempDir::new("chromium-profile");
    let mut child = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("--dump-dom")
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start chromium");
    // Read both pipes on threads so a chatty stderr cannot block the browser.
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out_t = std::thread::spawn(move || support::read_all(&mut out));
    let err_t = std::thread::spawn(move || support::read_all(&mut err));
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish within 90 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let dom = out_t.join().unwrap();
    let stderr = err_t.join().unwrap();
    assert!(status.success(), "chromium failed ({status}):\n{stderr}");
    assert!(!dom.trim().is_empty(), "chromium dumped nothing:\n{stderr}");
    dom
}

/// The request count in the decision table's row for (project, decision, rule).
fn count(dom: &str, project: &str, decision: &str, rule: &str) -> u64 {
    let key = format!("data-project=\"{project}\" data-decision=\"{decision}\" data-rule=\"{rule}\"");
    let Some(at) = dom.find(&key) else {
        return 0;
    };
    let row = &dom[at..];
    let row = &row[..row.find("</tr>").unwrap()];
    let cell = row.rfind("<td class=\"n\">").unwrap();
    let n = &row[cell + "<td class=\"n\">".len()..];
    n[..n.find('<').unwrap()].trim().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_page_renders_in_a_real_browser_and_counts_move() {
    let Some(browser) = chromium() else {
        assert!(
            !in_ci(),
            "CI is set but chromium is not installed: .ci/install-test-deps.sh must install it"
        );
        eprintln!("SKIPPED status_page_renders_in_a_real_browser_and_counts_move: chromium is not installed (apt-get install chromium); CI runs it");
        return;
    };
    let (eu, us) = mocks().await;
    let proxy = Proxy::start(&two_project_config(&eu.base_url(), &us.base_url(), ""), &[]).await;
    let page = format!("{}/", proxy.admin_url());

    let before = tokio::task::spawn_blocking({
        let (b, p) = (browser.clone(), page.clone());
        move || dump_dom(&b, &p)
    })
    .await
    .unwrap();
    assert!(before.contains("<h1>residency-proxy status</h1>"), "{before}");
    assert!(before.contains("id=\"edition\">seed-004</strong>"), "{before}");
    for name in ["eu-zdr", "us-mam", "eu-mam"] {
        assert!(
            before.contains(&format!("<details id=\"p-{name}\"")),
            "{name}: {before}"
        );
        assert!(
            before.contains(&format!("href=\"#p-{name}\">{name}</a>")),
            "{name}"
        );
    }
    // The matrix comes from decide: a ZDR project may not list files.
    assert!(before.contains("https://platform.openai.com/docs/guides/your-data"));
    let denied_before = count(&before, "eu-zdr", "deny", "zdr_endpoint");

    // One request the proxy refuses: a ZDR project listing files.
    let res = support::http1_request(
        proxy.addr,
        "GET",
        "/v1/files",
        &[
            ("OpenAI-Project", EU_PROJECT),
            ("Authorization", "Bearer sk-test"),
        ],
        b"",
    )
    .await;
    assert_eq!(res.status, 403);
    assert_eq!(res.header("x-residency-rule"), Some("zdr_endpoint"));

    let after = tokio::task::spawn_blocking(move || dump_dom(&browser, &page))
        .await
        .unwrap();
    assert_eq!(
        count(&after, "eu-zdr", "deny", "zdr_endpoint"),
        denied_before + 1,
        "{after}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edition_is_named_in_metrics_start_log_and_status_page() {
    let (eu, us) = mocks().await;
    let proxy = Proxy::start(
        &two_project_config(
            &eu.base_url(),
            &us.base_url(),
            "[catalog]\nedition = \"seed-004\"\n",
        ),
        &[],
    )
    .await;
    let metrics = proxy.metrics().await;
    assert!(
        metrics.contains("residency_proxy_catalog_info{edition=\"seed-004\",date=\"2026-11-22\"} 1"),
        "{metrics}"
    );
    let page = support::http1_request(proxy.admin, "GET", "/", &[], b"").await;
    assert_eq!(page.status, 200);
    assert_eq!(page.header("content-type"), Some("text/html; charset=utf-8"));
    let html = page.text();
    assert!(html.contains("id=\"edition\">seed-004</strong>"), "{html}");
    assert!(!html.contains("<script"), "the page needs no script");
    assert!(!html.contains("src=\""), "the page loads no external asset");
    // The start line names the edition.
    let log = proxy.stderr();
    let started = log
        .lines()
        .find(|l| l.contains("residency-proxy started"))
        .unwrap_or_else(|| panic!("{log}"));
    // (The text log may colour field names, so the field and its value are looked for apart.)
    assert!(
        started.contains("catalog") && started.contains("seed-004"),
        "{started}"
    );
}
