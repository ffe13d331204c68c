//! The one harness of the black-box tests in `tests/*.rs` (each file says `mod support;`):
//!
//! - [`process`]: the real `residency-proxy` binary, `serve` on port 0 (ready on its
//!   `listening` line, killed on drop) and the one-shot commands;
//! - [`http1`]: a raw HTTP/1.1 client (exact request bytes, one response at a time);
//! - [`upstreams`]: the recording mock (`crates/mock-openai`), [`Env`] (two mocks and a proxy
//!   routing to them) and two small upstreams for what the mock cannot observe;
//! - [`config`]: the configs tests run on and the keys that select their projects;
//! - [`metrics`]: Prometheus text and JSON log lines;
//! - [`certs`]: TLS certificates made with `rcgen`;
//! - [`cases`]: the table runner of the adversarial suites (raw bytes in, refusal or exact
//!   forward out).
//!
//! Tests wait on events (a log line, a port, the mock's request count), never on sleeps:
//! [`wait_until`] polls a condition with a deadline.
#![allow(
    dead_code,
    unused_imports,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

pub mod cases;
pub mod certs;
pub mod config;
pub mod http1;
pub mod metrics;
pub mod process;
pub mod upstreams;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub use certs::*;
pub use config::*;
pub use http1::*;
pub use metrics::*;
pub use process::*;
pub use upstreams::*;

pub const BIN: &str = env!("CARGO_BIN_EXE_residency-proxy");

/// A unique, fresh directory under the system temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let dir = std::env::temp_dir().join(format!(
            "rp-test-{tag}-{}-{}-{nanos}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Writes `dir/name`; its path.
    pub fn write(&self, name: &str, contents: &str) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, contents).unwrap();
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Polls `cond` every 20 ms until it holds (true) or `limit` passes (false).
pub async fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let t0 = Instant::now();
    loop {
        if cond() {
            return true;
        }
        if t0.elapsed() > limit {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Is `CI` set (to anything but empty/"0"/"false")?
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && v != "false")
}

/// Reads a whole child-process stream as text.
pub fn read_all(mut r: impl Read) -> String {
    let mut s = String::new();
    let _ = r.read_to_string(&mut s);
    s
}

/// A small valid mono 16-bit PCM WAV (a 440 Hz-ish square wave), `ms` long at 8 kHz.
pub fn wav(ms: u32) -> Vec<u8> {
    let rate = 8000u32;
    let samples = rate * ms / 1000;
    let data_len = samples * 2;
    let mut v = Vec::with_capacity(44 + data_len as usize);
    v.extend_from_slice(b"RIFF");
    v.extend_from_slice(&(36 + data_len).to_le_bytes());
    v.extend_from_slice(b"WAVEfmt ");
    v.extend_from_slice(&16u32.to_le_bytes());
    v.extend_from_slice(&1u16.to_le_bytes());
    v.extend_from_slice(&1u16.to_le_bytes());
    v.extend_from_slice(&rate.to_le_bytes());
    v.extend_from_slice(&(rate * 2).to_le_bytes());
    v.extend_from_slice(&2u16.to_le_bytes());
    v.extend_from_slice(&16u16.to_le_bytes());
    v.extend_from_slice(b"data");
    v.extend_from_slice(&data_len.to_le_bytes());
    for i in 0..samples {
        let s: i16 = if (i / 9) % 2 == 0 { 8000 } else { -8000 };
        v.extend_from_slice(&s.to_le_bytes());
    }
    v
}
