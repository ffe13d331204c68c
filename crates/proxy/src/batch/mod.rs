//! Batch inputs: a JSONL file uploaded with `purpose=batch` is a list of requests OpenAI will
//! run later, so each line is checked against the project's policy like a request of its own.
//! A batch must not become a way around the rules.
//!
//! The upload streams through (it can be hundreds of MiB): [`BatchGuard`] watches it with a
//! push parser, checks lines as they pass, and holds back the body's final chunk until the
//! verdict. A refused upload never completes upstream (its closing boundary is never sent and
//! the upstream request is aborted), so no file is created, and the client gets a 403 that
//! names the first bad line.
//!
//! A bad line does not leave the machine either. The chunks that hold a line that may be a
//! request (only those: a large batch still streams) wait until the line is checked, and once
//! the upload is known to be a batch, the first bad line aborts the upload before its bytes
//! are sent. When the file comes before `purpose`
//! (the Node SDK's order), a line that breaks a rule makes the guard hold everything from
//! there on (within `max_held` bytes) until `purpose` says whether it matters.

pub mod multipart_stream;

use crate::BoxError;
use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use multipart_stream::{Event, MultipartStream};
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::sync::oneshot;

/// Which parts of the upload matter (from the catalog).
#[derive(Debug, Clone)]
pub struct BatchSpec {
    pub purpose_field: String,
    pub purpose_value: String,
    /// Every purpose accepted, exactly; another value is refused.
    pub purposes: Vec<String>,
    pub file_field: String,
    /// Longest line checked; longer lines are refused (in a batch upload).
    pub max_line: usize,
    /// Most bytes held back while a suspect upload waits for its `purpose`; past it, refused.
    pub max_held: usize,
    /// Some purpose is refused for this project (e.g. every purpose but `batch` outside US/EU):
    /// nothing is forwarded until the purpose is known.
    pub hold_until_purpose: bool,
}

/// Why an upload is refused: the policy rule a line broke, or None when the upload itself
/// cannot be read (malformed multipart, a line that is not a request).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub rule: Option<policy::Rule>,
    pub message: String,
    /// The request field at fault; None: the file (a line of it).
    pub param: Option<&'static str>,
}

impl Refusal {
    pub fn unreadable(message: impl Into<String>) -> Refusal {
        Refusal {
            param: None,
            rule: None,
            message: message.into(),
        }
    }
}

/// Checks one line of a batch file; the refusal names what is wrong (without content).
pub type LineCheck = Box<dyn FnMut(&[u8]) -> Result<(), Refusal> + Send>;

/// Checks the upload's purpose once it is known (a purpose the project's region does not
/// offer is refused, e.g. `assistants` outside US/EU).
pub type PurposeCheck = Box<dyn FnMut(&str) -> Result<(), Refusal> + Send>;

/// Follows the multipart upload and decides whether it is an acceptable batch.
pub struct BatchChecker {
    spec: BatchSpec,
    /// Taken out while it pushes its events into the rest of the checker (always there
    /// otherwise): the events borrow the chunk and are read in place, not copied.
    parser: Option<MultipartStream>,
    check: LineCheck,
    purpose_check: Option<PurposeCheck>,
    /// The purpose was read and is refused.
    purpose_refused: Option<Refusal>,
    current: Option<Current>,
    purpose: Option<String>,
    purpose_done: bool,
    purpose_parts: usize,
    file_parts: usize,
    line: BytesMut,
    line_no: usize,
    /// Bytes of the body pushed so far.
    pushed: u64,
    /// The first problem with the file as a batch (line number and why).
    first_bad: Option<Refusal>,
    /// A structural problem: refused whatever the purpose.
    malformed: Option<String>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Current {
    Purpose,
    File,
    Other,
}

impl BatchChecker {
    pub fn new(spec: BatchSpec, boundary: &str, check: LineCheck) -> BatchChecker {
        BatchChecker {
            parser: Some(MultipartStream::new(boundary)),
            spec,
            check,
            purpose_check: None,
            purpose_refused: None,
            current: None,
            purpose: None,
            purpose_done: false,
            purpose_parts: 0,
            file_parts: 0,
            line: BytesMut::new(),
            line_no: 0,
            pushed: 0,
            first_bad: None,
            malformed: None,
        }
    }

    /// Judges the purpose with `check` once it is read.
    pub fn with_purpose_check(mut self, check: PurposeCheck) -> BatchChecker {
        self.purpose_check = Some(check);
        self
    }

    /// Bytes pushed that the parser has not yet turned into events.
    fn undecided(&self) -> usize {
        self.parser.as_ref().map_or(0, MultipartStream::undecided)
    }

    /// Known once the `purpose` part has ended (a prefix of it proves nothing).
    fn is_batch_known(&self) -> Option<bool> {
        if !self.purpose_done {
            return None;
        }
        self.purpose.as_deref().map(|p| p == self.spec.purpose_value)
    }

    pub fn push(&mut self, chunk: &[u8]) {
        self.pushed += chunk.len() as u64;
        if self.malformed.is_some() {
            return;
        }
        let Some(mut parser) = self.parser.take() else {
            return;
        };
        let result = parser.push(chunk, &mut |e| self.on_event(e));
        self.parser = Some(parser);
        if let Err(e) = result {
            self.malformed = Some(e);
        }
    }

    fn on_event(&mut self, e: Event<'_>) {
        match e {
            Event::Part { name, .. } => {
                self.current = Some(if name == self.spec.purpose_field {
                    self.purpose_parts += 1;
                    Current::Purpose
                } else if name == self.spec.file_field {
                    self.file_parts += 1;
                    Current::File
                } else {
                    Current::Other
                });
                if self.purpose_parts > 1 || self.file_parts > 1 {
                    self.malformed = Some(format!(
                        "the upload has more than one {:?} or {:?} part",
                        self.spec.purpose_field, self.spec.file_field
                    ));
                }
            }
            Event::Data(d) => match self.current {
                Some(Current::Purpose) => {
                    let p = self.purpose.get_or_insert_with(String::new);
                    if p.len() + d.len() <= 256 {
                        p.push_str(&String::from_utf8_lossy(d));
                    }
                }
                Some(Current::File) => self.file_data(d),
                _ => {}
            },
            Event::PartEnd => {
                if self.current == Some(Current::Purpose) {
                    self.purpose_done = true;
                    // Exactly a known purpose or nothing: `Batch` or ` batch` could be read
                    // as `batch` by a lenient upstream and skip the line checks here.
                    let known = self
                        .purpose
                        .as_deref()
                        .is_some_and(|p| self.spec.purposes.iter().any(|k| k == p));
                    if !known && self.malformed.is_none() {
                        self.malformed = Some(format!(
                            "the {:?} part is not exactly one of: {}",
                            self.spec.purpose_field,
                            self.spec.purposes.join(", ")
                        ));
                    }
                    if let (true, Some(check), Some(p)) =
                        (known, self.purpose_check.as_mut(), self.purpose.as_deref())
                    {
                        self.purpose_refused = check(p).err();
                    }
                }
                if self.current == Some(Current::File) && !self.line.is_empty() {
                    let line = std::mem::take(&mut self.line);
                    self.check_line(&line);
                }
                self.current = None;
            }
        }
    }

    fn file_data(&mut self, mut d: &[u8]) {
        // Once the upload is known not to be a batch, its lines do not matter.
        if self.is_batch_known() == Some(false) || self.first_bad.is_some() {
            return;
        }
        while let Some(i) = memchr::memchr(b'\n', d) {
            if self.line.is_empty() {
                self.check_line(&d[..i]);
            } else {
                self.line.extend_from_slice(&d[..i]);
                let line = std::mem::take(&mut self.line);
                self.check_line(&line);
            }
            d = &d[i + 1..];
            if self.first_bad.is_some() {
                return;
            }
        }
        if self.line.len() + d.len() > self.spec.max_line {
            self.line_no += 1;
            self.first_bad = Some(Refusal::unreadable(format!(
                "line {} is longer than {} bytes",
                self.line_no, self.spec.max_line
            )));
            self.line.clear();
            return;
        }
        self.line.extend_from_slice(d);
    }

    fn check_line(&mut self, line: &[u8]) {
        self.line_no += 1;
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(u8::is_ascii_whitespace) || self.first_bad.is_some() {
            return;
        }
        if let Err(why) = (self.check)(line) {
            self.first_bad = Some(Refusal {
                param: None,
                rule: why.rule,
                message: format!("line {}: {}", self.line_no, why.message),
            });
        }
    }

    /// The refusal already certain, whatever follows: malformed, or a batch with a bad line.
    fn refused_now(&mut self) -> Option<Refusal> {
        if let Some(m) = &self.malformed {
            return Some(Refusal::unreadable(m.clone()));
        }
        if let Some(r) = &self.purpose_refused {
            return Some(r.clone());
        }
        if self.is_batch_known() != Some(true) {
            return None;
        }
        self.first_bad.take().map(|bad| Refusal {
            param: None,
            rule: bad.rule,
            message: format!("The batch input file is refused: {}", bad.message),
        })
    }

    /// The purpose is not yet known, and either a line broke a rule or some purpose is
    /// refused here: nothing may go until it is.
    fn suspect(&self) -> bool {
        self.is_batch_known().is_none()
            && (self.spec.hold_until_purpose || self.first_bad.as_ref().is_some_and(|b| b.rule.is_some()))
    }

    /// Where a line that may be a batch request, only partly read, starts in the body: its
    /// bytes wait until it is checked. Before `purpose` is known (file first) that is every
    /// line that could be a request, a JSON object; other lines (a text or binary file) cannot
    /// run as a batch request and stream on.
    fn pending_line_start(&self) -> Option<u64> {
        let pending = match self.is_batch_known() {
            Some(false) => false,
            Some(true) => !self.line.is_empty(),
            None => {
                !self.line.is_empty()
                    && self
                        .line
                        .iter()
                        .find(|b| !b.is_ascii_whitespace())
                        .is_none_or(|&b| b == b'{')
            }
        };
        // While a line is open, the file part is too: the parser has emitted every byte before
        // its undecided tail, and the open line's bytes are the last of them.
        pending.then(|| {
            self.pushed
                .saturating_sub(self.undecided() as u64)
                .saturating_sub(self.line.len() as u64)
        })
    }

    /// The verdict once the whole body has been seen: Err(why) refuses the upload.
    pub fn finish(&mut self) -> Result<(), Refusal> {
        if let Some(why) = self.refused_now() {
            return Err(why);
        }
        // Held whole because some purpose is refused here: without a purpose it stays unjudged.
        if self.spec.hold_until_purpose && self.is_batch_known().is_none() {
            return Err(Refusal::unreadable(format!(
                "the upload names no {:?}, and in this project's region only some purposes may be uploaded",
                self.spec.purpose_field
            )));
        }
        match &self.parser {
            Some(parser) => parser.finish().map_err(Refusal::unreadable),
            None => Err(Refusal::unreadable("the multipart body could not be followed")),
        }
    }
}

/// Where the guard leaves its first refusal for the handler.
pub struct VerdictTx(Option<oneshot::Sender<Refusal>>);

/// The handler's end of [`VerdictTx`].
pub struct VerdictRx(oneshot::Receiver<Refusal>);

/// A channel for one upload's verdict.
pub fn verdict() -> (VerdictTx, VerdictRx) {
    let (tx, rx) = oneshot::channel();
    (VerdictTx(Some(tx)), VerdictRx(rx))
}

impl VerdictTx {
    fn send(&mut self, why: Refusal) {
        if let Some(tx) = self.0.take() {
            let _ = tx.send(why);
        }
    }
}

impl VerdictRx {
    /// The refusal, if the guard left one.
    pub fn take(mut self) -> Option<Refusal> {
        self.0.try_recv().ok()
    }
}

/// The upload as it is forwarded: every chunk passes on as it arrives, except the last, which
/// waits for the verdict, and those held while a line is unchecked or the upload is suspect.
pub struct BatchGuard<B> {
    inner: B,
    checker: BatchChecker,
    /// Chunks read but not yet forwarded, oldest first.
    queue: std::collections::VecDeque<Bytes>,
    queued: usize,
    verdict: VerdictTx,
    finished: bool,
    /// Report mode: a refusal is recorded but the upload completes.
    report_only: bool,
}

impl<B> BatchGuard<B> {
    pub fn new(inner: B, checker: BatchChecker, verdict: VerdictTx, report_only: bool) -> BatchGuard<B> {
        BatchGuard {
            inner,
            checker,
            queue: std::collections::VecDeque::new(),
            queued: 0,
            verdict,
            finished: false,
            report_only,
        }
    }

    fn pop(&mut self) -> Option<Bytes> {
        let b = self.queue.pop_front()?;
        self.queued -= b.len();
        Some(b)
    }

    /// Whether the oldest queued chunk may go now: never the last one before the end, none
    /// whose bytes the parser has not decided yet (a line's end may be among them), none that
    /// holds bytes of a line not yet checked, and nothing while the upload is suspect (report
    /// mode does not hold for those last two).
    fn may_release(&self) -> bool {
        if self.finished {
            return true;
        }
        let Some(front) = self.queue.front() else {
            return false;
        };
        // Where the front chunk ends in the body: it may go only if it ends before any line
        // still waiting for its check.
        let front_end = self.checker.pushed - self.queued as u64 + front.len() as u64;
        self.queue.len() > 1
            && self.queued - front.len() >= self.checker.undecided()
            && (self.report_only
                || !(self.checker.suspect()
                    || self
                        .checker
                        .pending_line_start()
                        .is_some_and(|start| front_end > start)))
    }

    /// Records the refusal; outside report mode, drops what was held and aborts the upload.
    fn refuse(&mut self, why: Refusal) -> Option<BoxError> {
        self.verdict.send(why);
        if self.report_only {
            return None;
        }
        self.finished = true;
        self.queue.clear();
        self.queued = 0;
        Some(Box::new(BatchRefused))
    }
}

/// The error that aborts the upstream request of a refused batch.
#[derive(Debug)]
pub struct BatchRefused;

impl std::fmt::Display for BatchRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "batch input refused by policy")
    }
}

impl std::error::Error for BatchRefused {}

impl<B> Body for BatchGuard<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        loop {
            if this.may_release() {
                if let Some(b) = this.pop() {
                    return Poll::Ready(Some(Ok(Frame::data(b))));
                }
            }
            if this.finished {
                return Poll::Ready(None);
            }
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e.into()))),
                Poll::Ready(Some(Ok(frame))) => {
                    let Ok(data) = frame.into_data() else { continue };
                    if data.is_empty() {
                        continue;
                    }
                    this.checker.push(&data);
                    this.queued += data.len();
                    this.queue.push_back(data);
                    let refusal = if let Some(why) = this.checker.refused_now() {
                        Some(why)
                    } else if this.queued > this.checker.spec.max_held && !this.report_only {
                        Some(Refusal::unreadable(if this.checker.spec.hold_until_purpose {
                            format!(
                                "in this project's region only some purposes may be uploaded, and the \
                                 upload's purpose is not known within {} bytes (send the purpose field \
                                 before the file)",
                                this.checker.spec.max_held
                            )
                        } else {
                            format!(
                                "the upload holds a line that would be refused in a batch, and its \
                                 purpose is not known within {} bytes",
                                this.checker.spec.max_held
                            )
                        }))
                    } else {
                        None
                    };
                    if let Some(why) = refusal {
                        if let Some(e) = this.refuse(why) {
                            return Poll::Ready(Some(Err(e)));
                        }
                    }
                }
                Poll::Ready(None) => {
                    this.finished = true;
                    if let Err(why) = this.checker.finish() {
                        if let Some(e) = this.refuse(why) {
                            return Poll::Ready(Some(Err(e)));
                        }
                    }
                }
            }
        }
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a guard lets through, and whether it ended in an error.
    async fn drain_guard<B>(guard: &mut B) -> (Vec<u8>, bool)
    where
        B: Body<Data = Bytes> + Unpin,
    {
        use http_body_util::BodyExt;
        let mut sent = Vec::new();
        while let Some(frame) = guard.frame().await {
            match frame {
                Ok(f) => sent.extend_from_slice(&f.into_data().unwrap()),
                Err(_) => return (sent, true),
            }
        }
        (sent, false)
    }

    fn spec() -> BatchSpec {
        BatchSpec {
            purpose_field: "purpose".into(),
            purpose_value: "batch".into(),
            purposes: ["batch", "assistants", "fine-tune", "user_data"]
                .map(String::from)
                .to_vec(),
            file_field: "file".into(),
            max_line: 1024,
            max_held: 4096,
            hold_until_purpose: false,
        }
    }

    /// A line is bad when it mentions "bad".
    fn checker() -> BatchChecker {
        BatchChecker::new(
            spec(),
            "B",
            Box::new(|l: &[u8]| {
                if memchr::memmem::find(l, b"bad").is_some() {
                    Err(Refusal {
                        param: None,
                        rule: Some(policy::Rule::ModelNotEligible),
                        message: "bad model".into(),
                    })
                } else {
                    Ok(())
                }
            }),
        )
    }

    fn upload(purpose: &str, lines: &str, purpose_first: bool) -> Vec<u8> {
        let p = format!("--B\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\n{purpose}\r\n");
        let f = format!(
            "--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"in.jsonl\"\r\n\r\n{lines}\r\n"
        );
        let body = if purpose_first {
            format!("{p}{f}--B--\r\n")
        } else {
            format!("{f}{p}--B--\r\n")
        };
        body.into_bytes()
    }

    fn verdict(body: &[u8], chunk: usize) -> Result<(), String> {
        let mut c = checker();
        for part in body.chunks(chunk) {
            c.push(part);
        }
        c.finish().map_err(|r| r.message)
    }

    #[test]
    fn the_first_bad_line_is_named_whatever_the_order_and_chunking() {
        let lines = "{\"ok\":1}\n{\"ok\":2}\n{\"bad\":3}\n{\"bad\":4}";
        for purpose_first in [true, false] {
            for chunk in [1, 3, 7, 64, 4096] {
                let e = verdict(&upload("batch", lines, purpose_first), chunk).unwrap_err();
                assert!(e.contains("line 3: bad model"), "{e}");
            }
        }
    }

    #[test]
    fn other_purposes_and_good_batches_pass() {
        assert!(verdict(&upload("fine-tune", "{\"bad\":1}", true), 5).is_ok());
        assert!(verdict(&upload("fine-tune", "{\"bad\":1}", false), 5).is_ok());
        assert!(verdict(&upload("batch", "{\"ok\":1}\r\n{\"ok\":2}\r\n", false), 5).is_ok());
    }

    #[test]
    fn a_purpose_that_is_not_exactly_known_is_refused() {
        for p in ["Batch", " batch", "batch ", "batch\t", "", "batches"] {
            for first in [true, false] {
                let e = verdict(&upload(p, "{\"bad\":1}", first), 7).unwrap_err();
                assert!(e.contains("not exactly one of"), "{p:?}: {e}");
            }
        }
    }

    #[test]
    fn repeated_parts_and_long_lines_are_refused() {
        let mut twice = upload("batch", "{\"ok\":1}", true);
        let extra = b"--B\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nuser_data\r\n".to_vec();
        twice.splice(0..0, extra);
        assert!(verdict(&twice, 9).unwrap_err().contains("more than one"));
        let long = "x".repeat(2000);
        assert!(verdict(&upload("batch", &long, true), 100)
            .unwrap_err()
            .contains("longer than"));
    }

    #[tokio::test]
    async fn a_refused_batch_never_sends_its_last_chunk() {
        let body = upload("batch", "{\"ok\":1}\n{\"bad\":2}", true);
        let (sent, failed, refusal) = drive(&body, 10, spec()).await;
        assert!(failed);
        assert!(sent.len() < body.len() && body.starts_with(&sent));
        assert!(!sent.ends_with(b"--B--\r\n"));
        let refusal = refusal.unwrap();
        assert!(refusal.message.contains("line 2"), "{refusal:?}");
        assert_eq!(refusal.rule, Some(policy::Rule::ModelNotEligible));
    }

    /// Forwards `body` cut into `chunk`-byte pieces through a guard: what was sent, whether the
    /// upload was aborted, and the recorded refusal.
    async fn drive(body: &[u8], chunk: usize, spec: BatchSpec) -> (Vec<u8>, bool, Option<Refusal>) {
        drive_pieces(body.chunks(chunk).collect(), spec).await
    }

    async fn drive_pieces(pieces: Vec<&[u8]>, spec: BatchSpec) -> (Vec<u8>, bool, Option<Refusal>) {
        let chunks: Vec<Result<Frame<Bytes>, std::convert::Infallible>> = pieces
            .into_iter()
            .map(|c| Ok(Frame::data(Bytes::copy_from_slice(c))))
            .collect();
        let inner = http_body_util::StreamBody::new(futures_util::stream::iter(chunks));
        let mut c = checker();
        c.spec = spec;
        let (tx, rx) = crate::batch::verdict();
        let mut guard = BatchGuard::new(inner, c, tx, false);
        let (sent, failed) = drain_guard(&mut guard).await;
        (sent, failed, rx.take())
    }

    #[tokio::test]
    async fn no_byte_of_a_bad_line_is_sent_whatever_the_order_and_chunking() {
        let lines = "{\"ok\":1}\n{\"ok\":2}\n{\"bad\":3}\n{\"ok\":4}\n";
        for purpose_first in [true, false] {
            let body = upload("batch", lines, purpose_first);
            // Exact in both orders and for any chunking: a line's chunks wait for its check.
            for chunk in [1, 2, 3, 5, 7, 10, 16, 64] {
                let (sent, failed, refusal) = drive(&body, chunk, spec()).await;
                assert!(failed, "order {purpose_first} chunk {chunk}");
                assert!(body.starts_with(&sent));
                assert!(
                    memchr::memmem::find(&sent, b"bad").is_none() && !sent.ends_with(b"{\"ba"),
                    "order {purpose_first} chunk {chunk}: sent {:?}",
                    String::from_utf8_lossy(&sent)
                );
                assert!(refusal.unwrap().message.contains("line 3"));
            }
        }
    }

    /// undici (the Node SDK) writes a part's closing CRLF as a chunk of its own: the line's end
    /// is decided only with a later chunk, and the chunk holding the line must wait for it.
    #[tokio::test]
    async fn a_bad_line_whose_end_comes_in_a_later_tiny_chunk_is_not_sent() {
        let file = "--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x.jsonl\"\r\n\r\n";
        let pieces: Vec<&[u8]> = vec![
            file.as_bytes(),
            b"{\"ok\":1}\n{\"bad\":2}\n",
            b"\r\n",
            b"--B\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\n",
            b"batch",
            b"\r\n",
            b"--B--\r\n",
        ];
        let (sent, _, refusal) = drive_pieces(pieces, spec()).await;
        assert!(
            memchr::memmem::find(&sent, b"bad").is_none(),
            "{:?}",
            String::from_utf8_lossy(&sent)
        );
        assert!(refusal.is_some());
    }

    /// Forwards `body` in 64-byte chunks: what was sent, whether it was aborted, and how many
    /// chunks had been read when the first bytes went out.
    async fn stream_through(body: &[u8], spec: BatchSpec) -> (Vec<u8>, bool, usize) {
        use http_body_util::BodyExt;
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::sync::Arc;
        let pulled = Arc::new(AtomicUsize::new(0));
        let counter = pulled.clone();
        let chunks: Vec<Bytes> = body.chunks(64).map(Bytes::copy_from_slice).collect();
        let stream = futures_util::stream::iter(chunks.into_iter().map(move |c| {
            counter.fetch_add(1, Ordering::SeqCst);
            Ok::<_, std::convert::Infallible>(Frame::data(c))
        }));
        let mut c = checker();
        c.spec = spec;
        let mut guard = BatchGuard::new(
            http_body_util::StreamBody::new(stream),
            c,
            crate::batch::verdict().0,
            false,
        );
        let (mut sent, mut failed, mut first_at) = (Vec::new(), false, None);
        while let Some(frame) = guard.frame().await {
            first_at.get_or_insert(pulled.load(Ordering::SeqCst));
            match frame {
                Ok(f) => sent.extend_from_slice(&f.into_data().unwrap()),
                Err(_) => {
                    failed = true;
                    break;
                }
            }
        }
        (sent, failed, first_at.unwrap_or(usize::MAX))
    }

    /// Before `purpose` is known, only lines that could be requests wait for their check, and
    /// only the chunks that hold them: a text, binary or JSONL file streams on.
    #[tokio::test]
    async fn a_file_first_upload_streams_as_its_lines_are_checked() {
        let text = "plain text, not a request\n".repeat(200);
        let binary = "x".repeat(5000);
        let json = "{\"messages\":[]}\n".repeat(200);
        for content in [&text, &binary, &json] {
            let body = upload("assistants", content, false);
            let (sent, failed, first_at) = stream_through(&body, spec()).await;
            assert!(!failed);
            assert_eq!(sent, body);
            assert!(
                first_at <= 3,
                "{:?}: first bytes went out after chunk {first_at}",
                &content[..10]
            );
        }
    }

    /// A batch far larger than `max_held` streams through: only the chunks of the line being
    /// read wait, never the whole file.
    #[tokio::test]
    async fn a_large_good_batch_streams_in_either_order() {
        let lines = "{\"ok\":1,\"pad\":\"0123456789\"}\n".repeat(300);
        let spec = BatchSpec {
            max_held: 512,
            ..spec()
        };
        for purpose_first in [true, false] {
            let body = upload("batch", &lines, purpose_first);
            assert!(body.len() > 10 * spec.max_held);
            let (sent, failed, first_at) = stream_through(&body, spec.clone()).await;
            assert!(!failed, "order {purpose_first}");
            assert_eq!(sent, body);
            assert!(
                first_at <= 3,
                "order {purpose_first}: first bytes after chunk {first_at}"
            );
        }
    }

    #[tokio::test]
    async fn a_suspect_upload_that_is_not_a_batch_is_forwarded_whole() {
        let body = upload("fine-tune", "{\"bad\":1}\n{\"ok\":2}\n", false);
        for chunk in [1, 5, 64] {
            let (sent, failed, refusal) = drive(&body, chunk, spec()).await;
            assert!(!failed && refusal.is_none(), "chunk {chunk}");
            assert_eq!(sent, body, "chunk {chunk}");
        }
    }

    #[tokio::test]
    async fn a_suspect_upload_held_past_max_held_is_refused() {
        let lines = format!("{{\"bad\":1}}\n{}", "{\"ok\":2}\n".repeat(100));
        let body = upload("fine-tune", &lines, false);
        let spec = BatchSpec {
            max_held: 256,
            ..spec()
        };
        let (sent, failed, refusal) = drive(&body, 16, spec).await;
        assert!(failed);
        assert!(memchr::memmem::find(&sent, b"bad").is_none());
        assert!(refusal.unwrap().message.contains("purpose is not known"));
    }

    /// Where some purpose is refused (every purpose but batch outside US/EU), nothing of the
    /// file goes before the purpose is read: a refused purpose sends no byte of it, whatever
    /// the order and chunking, and a batch goes whole.
    #[tokio::test]
    async fn a_refused_purpose_sends_nothing_of_the_file() {
        let spec = BatchSpec {
            hold_until_purpose: true,
            ..spec()
        };
        let lines = "{\"ok\":1}\nplain text\n";
        for purpose_first in [true, false] {
            for chunk in [1, 7, 64, 4096] {
                let refused = upload("assistants", lines, purpose_first);
                let (sent, failed, refusal) = drive_checked(&refused, chunk, spec.clone()).await;
                assert!(failed, "order {purpose_first} chunk {chunk}");
                assert!(
                    memchr::memmem::find(&sent, b"plain").is_none()
                        && memchr::memmem::find(&sent, b"ok").is_none(),
                    "order {purpose_first} chunk {chunk}: sent {:?}",
                    String::from_utf8_lossy(&sent)
                );
                let refusal = refusal.unwrap();
                assert_eq!(refusal.rule, Some(policy::Rule::EndpointRegion));
                let batch = upload("batch", lines.trim_end_matches("plain text\n"), purpose_first);
                let (sent, failed, refusal) = drive_checked(&batch, chunk, spec.clone()).await;
                assert!(
                    !failed && refusal.is_none(),
                    "order {purpose_first} chunk {chunk}"
                );
                assert_eq!(sent, batch);
            }
        }
    }

    /// Held for its purpose, an upload that names none is refused at its end, and nothing of
    /// it was sent.
    #[tokio::test]
    async fn a_held_upload_without_a_purpose_is_refused() {
        let held = BatchSpec {
            hold_until_purpose: true,
            ..spec()
        };
        let body = b"--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"in.jsonl\"\r\n\r\n{\"ok\":1}\r\n--B--\r\n";
        for chunk in [1, 7, 4096] {
            let (sent, failed, refusal) = drive_checked(body, chunk, held.clone()).await;
            assert!(failed, "chunk {chunk}");
            assert!(memchr::memmem::find(&sent, b"ok").is_none(), "chunk {chunk}");
            assert!(refusal.unwrap().message.contains("names no \"purpose\""));
        }
        // Without the hold (US/EU), nothing changes: OpenAI answers a missing purpose itself.
        let (sent, failed, _) = drive_checked(body, 7, spec()).await;
        assert!(!failed);
        assert_eq!(sent, body);
    }

    /// [`drive`] with a purpose check that refuses every purpose but `batch`.
    async fn drive_checked(body: &[u8], chunk: usize, spec: BatchSpec) -> (Vec<u8>, bool, Option<Refusal>) {
        let chunks: Vec<Result<Frame<Bytes>, std::convert::Infallible>> = body
            .chunks(chunk)
            .map(|c| Ok(Frame::data(Bytes::copy_from_slice(c))))
            .collect();
        let inner = http_body_util::StreamBody::new(futures_util::stream::iter(chunks));
        let mut c = checker().with_purpose_check(Box::new(|p: &str| {
            if p == "batch" {
                Ok(())
            } else {
                Err(Refusal {
                    param: None,
                    rule: Some(policy::Rule::EndpointRegion),
                    message: "not here".into(),
                })
            }
        }));
        c.spec = spec;
        let (tx, rx) = crate::batch::verdict();
        let mut guard = BatchGuard::new(inner, c, tx, false);
        let (sent, failed) = drain_guard(&mut guard).await;
        (sent, failed, rx.take())
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]

        /// Whatever the lines, the part order and the chunking: a batch with a bad line is
        /// refused and no byte of that line (or after it) is sent; anything else goes whole.
        #[test]
        fn no_bad_line_leaves_and_everything_else_goes_whole(
            kinds in proptest::collection::vec(0u8..3, 0..30),
            is_batch: bool,
            purpose_first: bool,
            // Tiny cuts are what split a line across many chunks: weight them.
            cuts in proptest::collection::vec(proptest::prop_oneof![1usize..4, 1usize..80], 1..40),
        ) {
            let lines: String = kinds
                .iter()
                .enumerate()
                .map(|(i, k)| match k {
                    0 => format!("{{\"ok\":{i}}}\n"),
                    1 => format!("{{\"bad\":{i}}}\n"),
                    _ => format!("plain {i}\n"),
                })
                .collect();
            let body = upload(if is_batch { "batch" } else { "assistants" }, &lines, purpose_first);
            let mut pieces = Vec::new();
            let (mut at, mut i) = (0, 0);
            while at < body.len() {
                let n = cuts[i % cuts.len()].min(body.len() - at);
                pieces.push(&body[at..at + n]);
                at += n;
                i += 1;
            }
            let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
            let (sent, failed, refusal) = rt.block_on(drive_pieces(pieces, spec()));
            proptest::prop_assert!(body.starts_with(&sent));
            match memchr::memmem::find(&body, b"{\"bad\"") {
                Some(first_bad) if is_batch => {
                    proptest::prop_assert!(failed);
                    proptest::prop_assert!(sent.len() <= first_bad, "sent {} bytes, bad line at {first_bad}", sent.len());
                    proptest::prop_assert!(refusal.is_some());
                }
                _ => {
                    proptest::prop_assert!(!failed, "{refusal:?}");
                    proptest::prop_assert_eq!(sent, body);
                }
            }
        }
    }
}
