//! Issue 10, item 6 (budgets and plain logs): a text log written to a file carries no ANSI
//! colour codes. (HEAD wherever the catalog allows the GET is in adversarial_paths.rs.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use std::time::{Duration, Instant};

#[tokio::test]
async fn a_log_written_to_a_file_has_no_colour_codes() {
    let env = Env::standard().await;
    let r = env
        .post_as(
            "proj_eu",
            "/v1/chat/completions",
            r#"{"model":"gpt-4o-2024-08-06","messages":[]}"#,
        )
        .await;
    assert_eq!(r.status, 200, "{r:#?}");
    // The request's line is written when its response ends: wait for it.
    let deadline = Instant::now() + Duration::from_secs(10);
    let log = loop {
        let s = env.proxy.stderr();
        if s.contains("/v1/chat/completions") {
            break s;
        }
        assert!(Instant::now() < deadline, "no request log line:\n{s}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(!log.contains('\u{1b}'), "colour codes in a log file:\n{log:?}");
}
