//! The batch guard (`proxy::batch::BatchGuard`) on uploads of good, bad and plain lines, in
//! either part order, cut into arbitrary chunks: a batch with a bad line is refused and no
//! byte from that line on is ever released; any other upload goes through whole.
#![no_main]

use bytes::Bytes;
use http_body::{Body, Frame};
use libfuzzer_sys::fuzz_target;
use proxy::batch::{verdict, BatchChecker, BatchGuard, BatchSpec, Refusal};
use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};

/// A body whose chunks are all there at once.
struct Chunks(VecDeque<Bytes>);

impl Body for Chunks {
    type Data = Bytes;
    type Error = std::convert::Infallible;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Poll::Ready(self.0.pop_front().map(|b| Ok(Frame::data(b))))
    }
}

fn upload(purpose: &str, lines: &str, purpose_first: bool) -> Vec<u8> {
    let p = format!("--B\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\n{purpose}\r\n");
    let f = format!(
        "--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"in.jsonl\"\r\n\r\n{lines}\r\n"
    );
    let (a, b) = if purpose_first { (p, f) } else { (f, p) };
    format!("{a}{b}--B--\r\n").into_bytes()
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else { return };
    let (is_batch, purpose_first, hold) = (flags & 1 != 0, flags & 2 != 0, flags & 4 != 0);
    let (kinds, cuts) = rest.split_at(rest.len() / 2);
    let lines: String = kinds
        .iter()
        .take(64)
        .enumerate()
        .map(|(i, k)| match k % 3 {
            0 => format!("{{\"ok\":{i}}}\n"),
            1 => format!("{{\"bad\":{i}}}\n"),
            _ => format!("plain {i}\n"),
        })
        .collect();
    let body = upload(if is_batch { "batch" } else { "assistants" }, &lines, purpose_first);
    let mut chunks = VecDeque::new();
    let (mut at, mut i) = (0, 0);
    while at < body.len() {
        let n = if cuts.is_empty() { 64 } else { 1 + usize::from(cuts[i % cuts.len()]) % 97 };
        let n = n.min(body.len() - at);
        chunks.push_back(Bytes::copy_from_slice(&body[at..at + n]));
        at += n;
        i += 1;
    }
    let spec = BatchSpec {
        purpose_field: "purpose".into(),
        purpose_value: "batch".into(),
        purposes: vec!["batch".into(), "assistants".into()],
        file_field: "file".into(),
        max_line: 1024,
        max_held: 1 << 20,
        hold_until_purpose: hold,
    };
    let check = Box::new(|l: &[u8]| {
        if l.windows(3).any(|w| w == b"bad") {
            Err(Refusal { rule: Some(policy::Rule::ModelNotEligible), message: "bad".into(), param: None })
        } else {
            Ok(())
        }
    });
    let checker = BatchChecker::new(spec, "B", check);
    let mut guard = BatchGuard::new(Chunks(chunks), checker, verdict().0, false);
    let mut cx = Context::from_waker(std::task::Waker::noop());
    let (mut sent, mut failed) = (Vec::new(), false);
    loop {
        match Pin::new(&mut guard).poll_frame(&mut cx) {
            Poll::Ready(Some(Ok(f))) => sent.extend_from_slice(&f.into_data().unwrap_or_default()),
            Poll::Ready(Some(Err(_))) => {
                failed = true;
                break;
            }
            Poll::Ready(None) => break,
            Poll::Pending => panic!("an always-ready body made the guard wait"),
        }
    }
    assert!(body.starts_with(&sent));
    let first_bad = body.windows(6).position(|w| w == b"{\"bad\"");
    match first_bad {
        Some(at) if is_batch => {
            assert!(failed, "a batch with a bad line went through");
            assert!(sent.len() <= at, "sent {} bytes, the bad line starts at {at}", sent.len());
        }
        _ => {
            assert!(!failed, "refused an upload without a bad batch line");
            assert_eq!(sent, body);
        }
    }
});
