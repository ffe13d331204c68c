//! The writer thread: the only code that touches the audit file. It takes records from a
//! bounded queue in batches, chains them, writes each batch with one `write` (records are
//! acknowledged when it returned), then `fdatasync`s the batch. It never runs on a runtime
//! thread, so a slow or full disk slows the audit, not the proxy.
//!
//! A failed write is cut back to the last complete record (no torn line is left), the log is
//! marked unwritable (`/readyz` fails) and every record that arrives meanwhile is counted.
//! Every 200 ms it tries again by writing the gap record that says how many were lost.

use super::record::{chain, now_rfc3339, Entry, Gap};
use super::{Inner, Job, Msg};
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often an unwritable log is tried again.
const RETRY: Duration = Duration::from_millis(200);
/// Records written together (one write, one fsync).
const BATCH: usize = 256;

pub(super) struct Writer {
    pub path: PathBuf,
    pub file: Option<std::fs::File>,
    pub seq: u64,
    pub prev: String,
    pub inner: Arc<Inner>,
    /// What could not be written since the last record that could; Some while unwritable.
    pub gap: Option<Gap>,
    pub last_try: Instant,
    /// Notices to write first (a torn tail moved aside at start).
    pub notices: Vec<String>,
}

impl Writer {
    pub fn run(mut self, rx: Receiver<Msg>) {
        let mut batch = Vec::with_capacity(BATCH);
        // Notices from start-up (a torn tail moved aside) go first.
        self.write_batch(&mut batch);
        loop {
            let first = if self.gap.is_some() {
                match rx.recv_timeout(RETRY) {
                    Ok(m) => Some(m),
                    Err(RecvTimeoutError::Timeout) => None,
                    Err(RecvTimeoutError::Disconnected) => return self.close(),
                }
            } else {
                match rx.recv() {
                    Ok(m) => Some(m),
                    Err(_) => return self.close(),
                }
            };
            let mut control = None;
            if let Some(m) = first {
                match m {
                    Msg::Record(job) => batch.push(job),
                    other => control = Some(other),
                }
            }
            while control.is_none() && batch.len() < BATCH {
                match rx.try_recv() {
                    Ok(Msg::Record(job)) => batch.push(job),
                    Ok(other) => control = Some(other),
                    Err(_) => break,
                }
            }
            self.inner
                .metrics
                .depth
                .dec_by(i64::try_from(batch.len()).unwrap_or(0));
            self.write_batch(&mut batch);
            match control {
                None => {}
                Some(Msg::Reopen(path)) => self.reopen(path),
                Some(Msg::Close(done)) => {
                    self.close();
                    let _ = done.send(());
                    return;
                }
                Some(Msg::Record(_)) => {}
            }
        }
    }

    fn close(&mut self) {
        if let Some(f) = &self.file {
            let _ = f.sync_data();
        }
    }

    /// Writes the batch (after any pending gap or notice), or counts it as not written.
    fn write_batch(&mut self, batch: &mut Vec<Job>) {
        if self.gap.is_some() && self.last_try.elapsed() < RETRY && !batch.is_empty() {
            return self.fail(batch, None);
        }
        if batch.is_empty() && self.gap.is_none() && self.notices.is_empty() {
            return;
        }
        self.last_try = Instant::now();
        let mut entries: Vec<Entry> = Vec::with_capacity(batch.len() + 2);
        // Overflow counted by the senders since the last batch.
        let overflow = self.inner.overflow.swap(0, Ordering::AcqRel);
        let overflow_fwd = self.inner.overflow_forwarded.swap(0, Ordering::AcqRel);
        let refused = self.inner.refused.swap(0, Ordering::AcqRel);
        if overflow + refused > 0 || self.gap.is_some() {
            let g = self.gap.get_or_insert_with(|| Gap {
                since: now_rfc3339(),
                error: "queue_full".into(),
                ..Gap::default()
            });
            g.lost += overflow;
            g.lost_forwarded += overflow_fwd;
            g.refused += refused;
        }
        let gap = self.gap.clone();
        if let Some(g) = &gap {
            entries.push(Entry::Gap(g.clone()));
        }
        let notices = std::mem::take(&mut self.notices);
        entries.extend(notices.iter().cloned().map(Entry::Notice));
        let first_job = entries.len();
        entries.extend(batch.iter_mut().filter_map(|j| j.entry.take()));

        let mut buf = Vec::with_capacity(entries.len() * 320);
        let (mut seq, mut prev) = (self.seq, self.prev.clone());
        for e in &entries {
            seq += 1;
            let (line, hash) = chain(seq, &prev, e);
            buf.extend_from_slice(line.as_bytes());
            buf.push(b'\n');
            prev = hash;
        }
        match self.append(&buf) {
            Ok(()) => {
                for (i, e) in entries.iter().enumerate() {
                    self.inner
                        .metrics
                        .written
                        .get_or_create(&super::KindLabel { kind: e.kind() })
                        .inc();
                    if i >= first_job {
                        if let Some(ack) = batch[i - first_job].ack.take() {
                            let _ = ack.send(Some(self.seq + 1 + i as u64));
                        }
                    }
                }
                if !self.inner.writable.load(Ordering::Acquire) {
                    tracing::warn!(path = %self.path.display(), lost = gap.as_ref().map_or(0, |g| g.lost), "audit log writable again; the gap is recorded");
                    self.inner.set_writable(true);
                }
                self.gap = None;
                self.seq = seq;
                self.prev = prev;
                batch.clear();
                // Acknowledged at write; made durable per batch.
                if let Some(f) = &self.file {
                    if let Err(e) = f.sync_data() {
                        self.count_error(&e);
                        tracing::error!(path = %self.path.display(), error = %e, "audit log fsync failed");
                    }
                }
            }
            Err(e) => {
                self.notices = notices;
                self.fail(batch, Some(&e));
            }
        }
    }

    /// Appends `buf` whole or not at all: a partial write is cut back.
    fn append(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.follow_path()?;
        let Some(file) = self.file.as_mut() else {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "the audit file is not open",
            ));
        };
        let before = file.metadata()?.len();
        if let Err(e) = file.write_all(buf) {
            let _ = file.set_len(before);
            return Err(e);
        }
        Ok(())
    }

    /// The path must still name the open file: after a rename (logrotate `create` without a
    /// signal) the new file at the path is opened; after a deletion the file is created again
    /// (or writes fail if its directory is gone): records never go to an unlinked file.
    fn follow_path(&mut self) -> std::io::Result<()> {
        let current = std::fs::metadata(&self.path);
        let same = match (&current, &self.file) {
            (Ok(m), Some(f)) => same_file(m, &f.metadata()?),
            _ => false,
        };
        if !same {
            self.file = Some(super::open_append(&self.path)?);
        }
        Ok(())
    }

    fn reopen(&mut self, path: Option<PathBuf>) {
        if let Some(p) = path {
            self.path = p;
        }
        self.file = None;
        match super::open_append(&self.path) {
            Ok(f) => {
                self.file = Some(f);
                tracing::info!(path = %self.path.display(), seq = self.seq, "audit log reopened; the chain continues");
            }
            Err(e) => {
                tracing::error!(path = %self.path.display(), error = %e, "audit log cannot be reopened");
            }
        }
    }

    /// Counts a batch that was not written; refuse-mode decisions are answered "no".
    fn fail(&mut self, batch: &mut Vec<Job>, err: Option<&std::io::Error>) {
        let first = err.is_some() && self.inner.writable.load(Ordering::Acquire);
        let g = self.gap.get_or_insert_with(|| Gap {
            since: now_rfc3339(),
            error: err.map_or("unknown", error_kind).to_string(),
            ..Gap::default()
        });
        if let (Some(e), "queue_full") = (err, g.error.as_str()) {
            g.error = error_kind(e).to_string();
        }
        for job in batch.drain(..) {
            match job.ack {
                // The request is refused (503) and records its refusal; this one is not lost.
                Some(ack) => {
                    let _ = ack.send(None);
                }
                None => {
                    g.lost += 1;
                    g.lost_forwarded += u64::from(job.forwarded);
                    self.inner.metrics.lost.inc();
                }
            }
        }
        if let Some(e) = err {
            self.count_error(e);
            if first {
                tracing::error!(path = %self.path.display(), error = %e, kind = error_kind(e), "audit log write failed; the log is unwritable until a write succeeds");
            }
        }
        if first {
            self.inner.set_writable(false);
        }
    }

    fn count_error(&self, e: &std::io::Error) {
        self.inner
            .metrics
            .errors
            .get_or_create(&super::KindLabel { kind: error_kind(e) })
            .inc();
    }
}

#[cfg(unix)]
fn same_file(a: &std::fs::Metadata, b: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    a.dev() == b.dev() && a.ino() == b.ino()
}

#[cfg(not(unix))]
fn same_file(_: &std::fs::Metadata, _: &std::fs::Metadata) -> bool {
    true
}

/// The metrics label of an I/O error.
pub fn error_kind(e: &std::io::Error) -> &'static str {
    use std::io::ErrorKind as K;
    match e.kind() {
        K::StorageFull => "no_space",
        K::FileTooLarge => "file_too_large",
        K::NotFound => "not_found",
        K::PermissionDenied => "permission_denied",
        K::ReadOnlyFilesystem => "read_only",
        _ => "other",
    }
}
