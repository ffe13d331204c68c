//! The real `residency-proxy` binary: `serve` started on port 0 (ready when it prints its
//! `listening` line), and the one-shot commands (`check`, `explain`, `catalog`, `audit`) run to
//! completion.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use super::http1::{build_request, send_raw, Resp};
use super::metrics::sum_requests;
use super::{wait_until, TempDir, BIN};

/// `listen` and `admin_listen` on port 0, then `body` (tables: `[upstream]`, `[[projects]]`...).
pub fn config_text(body: &str) -> String {
    format!("listen = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n{body}")
}

/// `listening proxy=127.0.0.1:PORT admin=127.0.0.1:PORT` -> the two addresses.
pub fn parse_listening(line: &str) -> Option<(SocketAddr, SocketAddr)> {
    let rest = line.trim().strip_prefix("listening proxy=")?;
    let (proxy, admin) = rest.split_once(" admin=")?;
    Some((proxy.parse().ok()?, admin.trim().parse().ok()?))
}

/// A running `residency-proxy serve`; killed on drop.
pub struct Proxy {
    child: Child,
    pid: u32,
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    /// The config file it runs on: rewrite it (or [`Proxy::rewrite_config`]) to reload.
    pub config: PathBuf,
    pub stderr_path: PathBuf,
    _dir: Option<TempDir>,
}

impl Proxy {
    /// Starts `serve` on [`config_text`]`(body)` in a fresh directory, with `env` added.
    pub async fn start(body: &str, env: &[(&str, &str)]) -> Proxy {
        Proxy::start_wrapped(body, env, &[]).await
    }

    /// As [`Proxy::start`], the binary run as the last arguments of `wrapper` (e.g. a shell
    /// that mounts a small tmpfs in a private mount namespace, then `exec "$@"`s).
    pub async fn start_wrapped(body: &str, env: &[(&str, &str)], wrapper: &[&str]) -> Proxy {
        let dir = TempDir::new("proxy");
        let config = dir.write("config.toml", &config_text(body));
        let stderr = dir.path().join("stderr.log");
        let mut p = Proxy::launch(config, stderr, env, wrapper).await;
        p._dir = Some(dir);
        p
    }

    /// Writes `dir/config.toml` ([`config_text`]`(body)`) and starts `serve` on it; stderr goes
    /// to `dir/stderr-<tag>.log`, so a restart in the same directory keeps both logs.
    pub async fn start_in(dir: &TempDir, tag: &str, body: &str, env: &[(&str, &str)]) -> Proxy {
        let config = dir.write("config.toml", &config_text(body));
        Proxy::start_at(dir, tag, config, env).await
    }

    /// Starts `serve` on an existing config file (e.g. a symlink); stderr as [`Proxy::start_in`].
    pub async fn start_at(dir: &TempDir, tag: &str, config: PathBuf, env: &[(&str, &str)]) -> Proxy {
        let stderr = dir.path().join(format!("stderr-{tag}.log"));
        Proxy::launch(config, stderr, env, &[]).await
    }

    async fn launch(config: PathBuf, stderr_path: PathBuf, env: &[(&str, &str)], wrapper: &[&str]) -> Proxy {
        let stderr = std::fs::File::create(&stderr_path).unwrap();
        let mut cmd = match wrapper.split_first() {
            None => Command::new(BIN),
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(BIN);
                c
            }
        };
        cmd.arg("serve")
            .arg("--config")
            .arg(&config)
            .env_remove("RESIDENCY_CONFIG")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr))
            .kill_on_drop(true);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let pid = child.id().unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let deadline = Instant::now() + Duration::from_secs(30);
        let (addr, admin) = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, lines.next_line()).await {
                Ok(Ok(Some(line))) => {
                    if let Some(parsed) = parse_listening(&line) {
                        break parsed;
                    }
                }
                other => panic!(
                    "residency-proxy did not print its listening line ({other:?}, exit {:?}); stderr:\n{}\nconfig:\n{}",
                    child.try_wait(),
                    std::fs::read_to_string(&stderr_path).unwrap_or_default(),
                    std::fs::read_to_string(&config).unwrap_or_default()
                ),
            }
        };
        // Keep draining stdout so the child never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Proxy {
            child,
            pid,
            addr,
            admin,
            config,
            stderr_path,
            _dir: None,
        }
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// What the proxy wrote to stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `http://127.0.0.1:PORT/v1`, what OPENAI_BASE_URL is set to.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    pub fn admin_url(&self) -> String {
        format!("http://{}", self.admin)
    }

    /// Replaces the config file with [`config_text`]`(body)`.
    pub fn rewrite_config(&self, body: &str) {
        std::fs::write(&self.config, config_text(body)).unwrap();
    }

    /// Sends a signal (`TERM`, `HUP`) to the proxy.
    pub fn signal(&self, sig: &str) {
        let st = std::process::Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.pid.to_string())
            .status()
            .unwrap();
        assert!(st.success(), "kill -{sig} {}", self.pid);
    }

    /// Waits until stderr holds `needle` (an event, not a sleep); false after `limit`.
    pub async fn wait_log(&self, needle: &str, limit: Duration) -> bool {
        wait_until(limit, || self.stderr().contains(needle)).await
    }

    /// Waits for the process to exit, at most `limit`.
    pub async fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        tokio::time::timeout(limit, self.child.wait())
            .await
            .ok()
            .map(|r| r.unwrap())
    }

    /// Asserts that the process exits 0 within `limit` (`what`: the wait, for the message).
    pub async fn assert_exits_zero(&mut self, limit: Duration, what: &str) {
        let st = self
            .wait_exit(limit)
            .await
            .unwrap_or_else(|| panic!("no {what} within {limit:?}; stderr:\n{}", self.stderr()));
        assert_eq!(st.code(), Some(0), "{st:?}; stderr:\n{}", self.stderr());
    }

    /// Waits for the process to exit; its exit code.
    pub async fn wait(&mut self) -> Option<i32> {
        self.child.wait().await.ok().and_then(|s| s.code())
    }

    /// A request built from parts, on a fresh connection.
    pub async fn send(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Resp {
        send_raw(self.addr, &build_request(self.addr, method, path, headers, body)).await
    }

    /// A JSON POST with `headers` added after `Content-Type`.
    pub async fn post_json(&self, path: &str, headers: &[(&str, &str)], body: &str) -> Resp {
        let mut h = vec![("Content-Type", "application/json")];
        h.extend_from_slice(headers);
        self.send("POST", path, &h, body.as_bytes()).await
    }

    /// A chat completion POST with `headers` added after `Content-Type`.
    pub async fn chat(&self, headers: &[(&str, &str)], body: &str) -> Resp {
        self.post_json("/v1/chat/completions", headers, body).await
    }

    /// `GET path` on the admin listener.
    pub async fn admin_get(&self, path: &str) -> Resp {
        send_raw(self.admin, &build_request(self.admin, "GET", path, &[], b"")).await
    }

    /// The Prometheus text from the admin listener.
    pub async fn metrics(&self) -> String {
        let r = self.admin_get("/metrics").await;
        assert_eq!(r.status, 200, "GET /metrics: {r:?}");
        r.text()
    }

    /// Sum of `residency_proxy_requests_total` samples whose labels contain every `want`
    /// fragment (e.g. `decision="deny"`).
    pub async fn requests_total(&self, want: &[&str]) -> u64 {
        sum_requests(&self.metrics().await, want)
    }

    /// VmRSS and VmHWM of the proxy process, in KiB.
    pub fn memory_kib(&self) -> (u64, u64) {
        proc_memory_kib(self.pid)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// VmRSS and VmHWM of process `pid`, in KiB.
pub fn proc_memory_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Runs the binary to completion (30 s limit) with `args`, `env`, optional stdin.
pub fn run(args: &[&str], env: &[(&str, &str)], stdin: Option<&[u8]>) -> std::process::Output {
    use std::io::Write;
    let mut cmd = std::process::Command::new(BIN);
    cmd.args(args)
        .env_remove("RESIDENCY_CONFIG")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    if let Some(input) = stdin {
        let mut w = child.stdin.take().unwrap();
        // A child that stops reading early (it refused its arguments) shows in its output.
        let _ = w.write_all(input);
    }
    let start = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if start.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            panic!("residency-proxy {args:?} did not finish in 30 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// [`run`] without env or stdin: the exit code and stdout followed by stderr.
pub fn run_args(args: &[&str]) -> (Option<i32>, String) {
    let out = run(args, &[], None);
    (out.status.code(), output_text(&out))
}

/// Stdout followed by stderr, as text.
pub fn output_text(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

/// `residency-proxy audit verify FILE...`.
pub fn verify_audit(files: &[&Path]) -> std::process::Output {
    let mut args = vec!["audit", "verify"];
    let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    args.extend(names.iter().map(String::as_str));
    run(&args, &[], None)
}
