//! The decision audit log: an append-only JSON-lines file without content or credentials.
//! Each record carries the hash of the previous one and its own hash over (previous hash,
//! record), so deleting, reordering or editing any line breaks the chain that
//! `residency-proxy audit verify FILE...` checks.
//!
//! A forwarded request has two records: its **decision**, written before anything is
//! forwarded, and its **outcome** (status, bytes, how the body ended) when the response ends.
//! A request refused by the proxy has one decision record carrying the refusal's status.
//!
//! The request path never touches the file: records go over a bounded queue to a dedicated
//! thread ([`writer`]). With `on_failure = "refuse"` (the default) a request waits until its
//! decision record's write returned, and is refused (503 `audit_unavailable`) when it cannot
//! be written; with `"continue"` it does not wait, and records that cannot be written are
//! counted and announced by a signed gap record. A full queue is never waited on: it is the
//! same failure, counted as `queue_full`.

mod record;
mod verify;
mod writer;

pub use record::{AuditRecord, BodyEnd, OutcomeRecord, GENESIS};
pub use verify::{tail, verify, Report, Tail};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use record::Entry;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::Duration;

/// Records waiting for the writer; past it a record is refused or counted lost, never waited on.
pub const QUEUE: usize = 8192;
/// The longest a request waits for its decision record (a hung disk refuses, it does not hang).
pub const DECISION_WAIT: Duration = Duration::from_secs(5);

/// `[audit] on_failure`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnFailure {
    /// No request is forwarded before its decision record was written.
    #[default]
    Refuse,
    /// Requests go on; lost records are counted and announced by a gap record.
    Continue,
}

/// The decision record could not be written: the request is refused with 503.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuditUnavailable;

/// A forwarded request's decision, to be completed by its outcome.
#[derive(Debug)]
pub struct Ticket {
    request_id: String,
    seq: Option<u64>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: &'static str,
}

/// The audit's series: records written by kind, write errors by kind, queue depth, records
/// lost and requests refused, and whether the log is writable.
#[derive(Clone, Default)]
pub struct AuditMetrics {
    pub written: Family<KindLabel, Counter>,
    pub errors: Family<KindLabel, Counter>,
    pub depth: Gauge,
    pub lost: Counter,
    pub refused: Counter,
    pub writable: Gauge,
}

impl AuditMetrics {
    pub fn register(registry: &mut Registry) -> AuditMetrics {
        let m = AuditMetrics::default();
        registry.register(
            "audit_records",
            "Audit records written, by kind",
            m.written.clone(),
        );
        registry.register(
            "audit_write_errors",
            "Audit write failures by kind (no_space, file_too_large, not_found, queue_full, ...)",
            m.errors.clone(),
        );
        registry.register(
            "audit_queue_depth",
            "Audit records waiting for the writer",
            m.depth.clone(),
        );
        registry.register(
            "audit_records_lost",
            "Audit records not written (on_failure = continue, or refusals while unwritable)",
            m.lost.clone(),
        );
        registry.register(
            "audit_refused_requests",
            "Requests refused because their decision record could not be written",
            m.refused.clone(),
        );
        registry.register(
            "audit_writable",
            "1 while the audit log can be written",
            m.writable.clone(),
        );
        for kind in ["decision", "outcome", "gap", "notice"] {
            let _ = m.written.get_or_create(&KindLabel { kind });
        }
        for kind in ["no_space", "queue_full"] {
            let _ = m.errors.get_or_create(&KindLabel { kind });
        }
        m
    }
}

pub(crate) struct Inner {
    mode: AtomicU8,
    writable: AtomicBool,
    /// Counted by senders when the queue is full (all kinds / forwarded decisions).
    overflow: AtomicU64,
    overflow_forwarded: AtomicU64,
    /// Requests refused while unwritable, for the next gap record.
    refused: AtomicU64,
    metrics: AuditMetrics,
}

impl Inner {
    fn set_writable(&self, w: bool) {
        self.writable.store(w, Ordering::Release);
        self.metrics.writable.set(i64::from(w));
    }

    fn mode(&self) -> OnFailure {
        if self.mode.load(Ordering::Relaxed) == 1 {
            OnFailure::Continue
        } else {
            OnFailure::Refuse
        }
    }
}

pub(crate) struct Job {
    entry: Option<Entry>,
    /// Answered with the record's seq once written, None if it could not be (refuse mode).
    ack: Option<tokio::sync::oneshot::Sender<Option<u64>>>,
    /// A decision of a request that is forwarded without waiting (continue mode).
    forwarded: bool,
}

pub(crate) enum Msg {
    Record(Job),
    Reopen(Option<PathBuf>),
    Close(tokio::sync::oneshot::Sender<()>),
}

/// Sends records to the writer thread.
#[derive(Clone)]
pub struct AuditLog {
    tx: SyncSender<Msg>,
    inner: Arc<Inner>,
}

/// Opens `path` for appending. A path that exists and is not a regular file (a FIFO, a
/// device) is refused before it is opened: opening a FIFO would block.
pub(crate) fn open_append(path: &Path) -> std::io::Result<std::fs::File> {
    if let Ok(m) = std::fs::metadata(path) {
        if !m.is_file() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "not a regular file",
            ));
        }
    }
    std::fs::OpenOptions::new().create(true).append(true).open(path)
}

/// What `check` says about an audit path: its directory exists and is writable, and the path
/// is a regular file or absent.
pub fn check_path(path: &Path) -> Result<(), String> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return Err(format!("audit.path: {} is not a directory", dir.display())),
        Err(e) => return Err(format!("audit.path: directory {}: {e}", dir.display())),
    }
    if let Ok(m) = std::fs::symlink_metadata(path).and_then(|_| std::fs::metadata(path)) {
        if !m.is_file() {
            return Err(format!(
                "audit.path: {} exists and is not a regular file",
                path.display()
            ));
        }
        if m.permissions().readonly() {
            return Err(format!("audit.path: {} is read-only", path.display()));
        }
    }
    // Writable: create (and remove) a probe file in the directory.
    let probe = dir.join(format!(".residency-proxy-check-{}", std::process::id()));
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
    {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            Ok(())
        }
        Err(e) => Err(format!(
            "audit.path: directory {} is not writable: {e}",
            dir.display()
        )),
    }
}

impl AuditLog {
    /// Opens (or continues) the log at `path` and starts its writer thread.
    pub fn open(path: &Path, mode: OnFailure, metrics: AuditMetrics) -> Result<AuditLog, String> {
        let Tail { seq, prev, torn } = tail(path)?;
        let file = open_append(path).map_err(|e| format!("audit.path {}: {e}", path.display()))?;
        let mut notices = Vec::new();
        if seq == 0 {
            // Says that this chain starts here on purpose (verify tells it from files given
            // out of order).
            notices.push(format!("a new chain starts in {}", path.display()));
        }
        if let Some((bytes, side)) = torn {
            tracing::warn!(path = %path.display(), bytes, moved_to = %side.display(), "audit log: a torn last line was moved aside; the chain continues from the last complete record");
            notices.push(format!(
                "a torn last line of {bytes} bytes was moved to {}",
                side.display()
            ));
        }
        let inner = Arc::new(Inner {
            mode: AtomicU8::new(0),
            writable: AtomicBool::new(true),
            overflow: AtomicU64::new(0),
            overflow_forwarded: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            metrics,
        });
        inner.set_writable(true);
        let (tx, rx) = sync_channel(QUEUE);
        let w = writer::Writer {
            path: path.to_path_buf(),
            file: Some(file),
            seq,
            prev,
            inner: inner.clone(),
            gap: None,
            last_try: std::time::Instant::now(),
            notices,
        };
        std::thread::Builder::new()
            .name("audit-writer".into())
            .spawn(move || w.run(rx))
            .map_err(|e| format!("audit: cannot start the writer thread: {e}"))?;
        let log = AuditLog { tx, inner };
        log.set_on_failure(mode);
        Ok(log)
    }

    pub fn set_on_failure(&self, mode: OnFailure) {
        self.inner
            .mode
            .store(u8::from(mode == OnFailure::Continue), Ordering::Relaxed);
    }

    /// False while records cannot be written (`/readyz` fails in refuse mode).
    pub fn writable(&self) -> bool {
        self.inner.writable.load(Ordering::Acquire)
    }

    pub fn on_failure(&self) -> OnFailure {
        self.inner.mode()
    }

    /// Records the decision of a request about to be forwarded. In refuse mode, returns once
    /// the record's write returned, or `AuditUnavailable`; in continue mode at once.
    pub async fn record_decision(&self, r: AuditRecord) -> Result<Ticket, AuditUnavailable> {
        let request_id = r.request_id.clone();
        if self.inner.mode() == OnFailure::Continue {
            self.send(Entry::Decision(r), None, true);
            return Ok(Ticket {
                request_id,
                seq: None,
            });
        }
        if !self.writable() {
            return Err(self.refused());
        }
        let (ack, done) = tokio::sync::oneshot::channel();
        if !self.send(Entry::Decision(r), Some(ack), false) {
            return Err(self.refused());
        }
        match tokio::time::timeout(DECISION_WAIT, done).await {
            Ok(Ok(Some(seq))) => Ok(Ticket {
                request_id,
                seq: Some(seq),
            }),
            _ => Err(self.refused()),
        }
    }

    /// Records a request that was not forwarded (a denial or refusal), without waiting.
    pub fn record(&self, r: AuditRecord) {
        self.send(Entry::Decision(r), None, false);
    }

    /// Records how a forwarded request's response ended, without waiting.
    pub fn record_outcome(&self, t: Ticket, status: u16, bytes: u64, body: BodyEnd, duration: Duration) {
        let o = OutcomeRecord {
            request_id: t.request_id,
            decision_seq: t.seq,
            status,
            bytes,
            body,
            duration_ms: u64::try_from(duration.as_millis()).unwrap_or(u64::MAX),
        };
        self.send(Entry::Outcome(o), None, false);
    }

    /// Reopens the file (SIGHUP, logrotate `create`), at `path` when it changed.
    pub fn reopen(&self, path: Option<PathBuf>) {
        let _ = self.tx.try_send(Msg::Reopen(path));
    }

    /// Writes what is queued, fsyncs and stops the writer (at shutdown), waiting at most `wait`.
    pub async fn close(&self, wait: Duration) {
        let (done, closed) = tokio::sync::oneshot::channel();
        let tx = self.tx.clone();
        // `send` may wait for room in the queue: off the runtime threads.
        let sent = tokio::task::spawn_blocking(move || tx.send(Msg::Close(done)).is_ok());
        if let Ok(Ok(true)) = tokio::time::timeout(wait, sent).await {
            let _ = tokio::time::timeout(wait, closed).await;
        }
    }

    fn refused(&self) -> AuditUnavailable {
        self.inner.refused.fetch_add(1, Ordering::AcqRel);
        self.inner.metrics.refused.inc();
        AuditUnavailable
    }

    /// Queues a record; a full queue counts it (never waits). False if not queued.
    fn send(
        &self,
        entry: Entry,
        ack: Option<tokio::sync::oneshot::Sender<Option<u64>>>,
        forwarded: bool,
    ) -> bool {
        let job = Job {
            entry: Some(entry),
            ack,
            forwarded,
        };
        match self.tx.try_send(Msg::Record(job)) {
            Ok(()) => {
                self.inner.metrics.depth.inc();
                true
            }
            Err(TrySendError::Full(Msg::Record(job))) | Err(TrySendError::Disconnected(Msg::Record(job))) => {
                self.inner
                    .metrics
                    .errors
                    .get_or_create(&KindLabel { kind: "queue_full" })
                    .inc();
                if job.ack.is_none() {
                    let before = self.inner.overflow.fetch_add(1, Ordering::AcqRel);
                    self.inner
                        .overflow_forwarded
                        .fetch_add(u64::from(forwarded), Ordering::AcqRel);
                    self.inner.metrics.lost.inc();
                    // Once per gap, not once per record.
                    if before == 0 {
                        tracing::warn!(
                            "audit queue full: records are counted as lost until the writer catches up"
                        );
                    }
                }
                false
            }
            Err(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::record::chain;
    use super::*;

    fn rec(i: u16) -> AuditRecord {
        AuditRecord {
            request_id: format!("r{i}"),
            method: "POST".into(),
            project: "eu-prod".into(),
            region: "eu".into(),
            endpoint: "/v1/chat/completions".into(),
            model: Some("gpt-4o-2024-08-06".into()),
            decision: "allow",
            rule: String::new(),
            status: Some(403),
        }
    }

    fn write_chain(path: &Path, n: u16) {
        let mut prev = GENESIS.to_string();
        let mut text = String::new();
        for i in 1..=n {
            let (line, h) = chain(u64::from(i), &prev, &Entry::Decision(rec(i)));
            prev = h;
            text.push_str(&line);
            text.push('\n');
        }
        std::fs::write(path, text).unwrap();
    }

    fn tmp(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("rp-audit-{}-{name}", std::process::id()))
    }

    fn v(p: &Path) -> Result<u64, String> {
        verify(&[p.to_path_buf()]).map(|r| r.records)
    }

    #[test]
    fn an_intact_chain_verifies() {
        let p = tmp("ok");
        write_chain(&p, 5);
        assert_eq!(v(&p), Ok(5));
        assert_eq!(tail(&p).unwrap().seq, 5);
    }

    #[test]
    fn edits_deletions_and_reordering_are_detected() {
        let p = tmp("bad");
        write_chain(&p, 4);
        let lines: Vec<String> = std::fs::read_to_string(&p)
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect();
        let edited = lines
            .join("\n")
            .replacen("\"decision\":\"allow\"", "\"decision\":\"deny\"", 1);
        std::fs::write(&p, edited).unwrap();
        assert!(v(&p).unwrap_err().contains("line 1: the record was modified"));
        let mut removed = lines.clone();
        removed.remove(1);
        std::fs::write(&p, removed.join("\n")).unwrap();
        assert!(v(&p).unwrap_err().contains("line 2: the chain is broken"));
        let mut swapped = lines.clone();
        swapped.swap(2, 3);
        std::fs::write(&p, swapped.join("\n")).unwrap();
        assert!(v(&p).is_err());
        std::fs::write(&p, lines[..3].join("\n")).unwrap();
        assert_eq!(
            v(&p),
            Ok(3),
            "a log cut at a record boundary still verifies its prefix"
        );
    }

    #[test]
    fn a_torn_tail_is_moved_aside_and_the_chain_continues_before_it() {
        let p = tmp("torn");
        write_chain(&p, 3);
        let mut text = std::fs::read(&p).unwrap();
        text.extend_from_slice(b"{\"seq\":4,\"ts\":\"20");
        std::fs::write(&p, &text).unwrap();
        let t = tail(&p).unwrap();
        assert_eq!(t.seq, 3);
        let (bytes, side) = t.torn.unwrap();
        assert_eq!(bytes, 17);
        assert_eq!(std::fs::read(&side).unwrap(), b"{\"seq\":4,\"ts\":\"20");
        assert_eq!(v(&p), Ok(3));
        let _ = std::fs::remove_file(side);
    }

    #[test]
    fn a_chain_continues_across_files() {
        let (a, b) = (tmp("files-a"), tmp("files-b"));
        write_chain(&a, 4);
        let text = std::fs::read_to_string(&a).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        std::fs::write(&a, lines[..2].join("\n") + "\n").unwrap();
        std::fs::write(&b, lines[2..].join("\n") + "\n").unwrap();
        assert_eq!(verify(&[a.clone(), b.clone()]).map(|r| r.records), Ok(4));
        let alone = verify(std::slice::from_ref(&b)).unwrap();
        assert!(alone.remarks[0].contains("starts at seq 3"), "{alone:?}");
        assert!(verify(&[b, a]).is_err(), "files out of order break the chain");
    }

    #[tokio::test]
    async fn the_writer_continues_an_existing_chain_and_records_outcomes() {
        let p = tmp("cont");
        write_chain(&p, 2);
        let log = AuditLog::open(&p, OnFailure::Refuse, AuditMetrics::default()).unwrap();
        let mut r = rec(3);
        r.status = None;
        let t = log.record_decision(r).await.unwrap();
        assert_eq!(
            t.seq,
            Some(3),
            "refuse mode waits for the write and knows the seq"
        );
        log.record_outcome(t, 200, 12, BodyEnd::Complete, Duration::from_millis(5));
        log.close(Duration::from_secs(5)).await;
        assert_eq!(v(&p), Ok(4));
        let text = std::fs::read_to_string(&p).unwrap();
        let last: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
        assert_eq!(last["kind"], "outcome");
        assert_eq!(last["decision_seq"], 3);
        assert_eq!(last["body"], "complete");
    }

    #[test]
    fn check_path_refuses_a_fifo_a_missing_directory_and_a_directory() {
        let dir = tmp("check-dir");
        std::fs::create_dir_all(&dir).unwrap();
        assert_eq!(check_path(&dir.join("audit.jsonl")), Ok(()));
        assert!(check_path(&dir.join("nope/audit.jsonl"))
            .unwrap_err()
            .contains("nope"));
        assert!(check_path(&dir).unwrap_err().contains("not a regular file"));
        let fifo = dir.join("fifo");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        if made.is_ok_and(|s| s.success()) {
            assert!(check_path(&fifo).unwrap_err().contains("not a regular file"));
            assert!(
                open_append(&fifo).is_err(),
                "a FIFO is refused, never opened (it would block)"
            );
        }
    }
}
