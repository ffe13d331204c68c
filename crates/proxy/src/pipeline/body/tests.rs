#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
use std::io::Write;
use std::sync::Mutex;
use std::thread::ThreadId;

/// The callers of the decodes that [`decode_body`] handed to another thread: a test (on its own
/// thread) counts its own, whatever the tests beside it decode.
pub(super) static OFF_THREAD_DECODES: Mutex<Vec<ThreadId>> = Mutex::new(Vec::new());

fn moved_decodes() -> usize {
    let me = std::thread::current().id();
    OFF_THREAD_DECODES
        .lock()
        .unwrap()
        .iter()
        .filter(|id| **id == me)
        .count()
}

fn gzip(data: &[u8]) -> Bytes {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    Bytes::from(e.finish().unwrap())
}

fn zlib(data: &[u8]) -> Bytes {
    let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    Bytes::from(e.finish().unwrap())
}

fn encoded_headers() -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(http::header::CONTENT_ENCODING, "gzip".parse().unwrap());
    h
}

/// What a decode gave, comparable: the bytes, or the refusal's status and code.
fn outcome(r: Result<Bytes, Stop>) -> Result<Bytes, (u16, &'static str)> {
    r.map_err(|stop| match stop {
        Stop::Refuse(e) => (http::StatusCode::from(&e).as_u16(), e.code()),
        Stop::Deny(_) => panic!("decoding does not decide"),
    })
}

/// Plain bytes of `n` that do not compress to nothing (so sizes mean something).
fn plain(n: usize) -> Vec<u8> {
    (0..n)
        .map(|i| b"{}[]:,\" abcdefgh"[(i * 7 + i / 13) % 16])
        .collect()
}

#[tokio::test]
async fn large_bodies_decode_off_the_runtime_thread_small_ones_on_it() {
    let inline = usize::try_from(INLINE_DECODE_BYTES).unwrap();
    let before = moved_decodes();
    for n in [0, 1, 1000, inline - 1] {
        let body = plain(n);
        let got = decode_body(&mut encoded_headers(), gzip(&body), Encoding::Gzip, 1 << 20).await;
        assert_eq!(outcome(got).unwrap(), body);
    }
    assert_eq!(moved_decodes(), before, "small bodies stay inline");

    let body = plain(inline + 1);
    let mut headers = encoded_headers();
    let got = decode_body(&mut headers, gzip(&body), Encoding::Gzip, 1 << 20).await;
    assert_eq!(outcome(got).unwrap(), body);
    assert!(headers.get(http::header::CONTENT_ENCODING).is_none());
    assert_eq!(moved_decodes(), before + 1, "a large body moves");

    // A bomb is stopped at the limit on the other thread too.
    let bomb = gzip(&vec![b' '; 8 << 20]);
    let got = decode_body(&mut encoded_headers(), bomb, Encoding::Gzip, 1 << 20).await;
    assert_eq!(outcome(got), Err((413, "request_too_large")));
    assert_eq!(moved_decodes(), before + 2);
}

#[tokio::test]
async fn both_paths_decide_the_same() {
    let inline = usize::try_from(INLINE_DECODE_BYTES).unwrap();
    let limit = 3 * INLINE_DECODE_BYTES;
    let max = usize::try_from(limit).unwrap();
    let sizes = [
        0,
        10,
        inline - 1,
        inline,
        inline + 1,
        2 * inline,
        max - 1,
        max,
        max + 1,
        4 * inline,
    ];
    for n in sizes {
        let body = plain(n);
        for (encoding, coded) in [(Encoding::Gzip, gzip(&body)), (Encoding::Deflate, zlib(&body))] {
            let mut cases = vec![("whole", coded.clone())];
            // Cut inside the first 64 KiB of output and far past it: corrupt either way.
            for cut in [coded.len() / 8, coded.len() - 4] {
                cases.push(("truncated", coded.slice(..cut)));
            }
            let mut garbled = coded.to_vec();
            let middle = garbled.len() / 2;
            garbled[middle] ^= 0xff;
            cases.push(("garbled", Bytes::from(garbled)));
            for (what, raw) in cases {
                let (mut h1, mut h2) = (encoded_headers(), encoded_headers());
                let off = outcome(decode_body(&mut h1, raw.clone(), encoding, limit).await);
                let now = outcome(decode_body_now(&mut h2, raw, encoding, limit));
                assert_eq!(off, now, "{n} bytes, {encoding:?}, {what}");
                match what {
                    "whole" if n <= max => assert_eq!(off, Ok(Bytes::from(body.clone()))),
                    "whole" => assert_eq!(off, Err((413, "request_too_large"))),
                    // Cut past the limit, the limit may be reached before the cut (413 or 400);
                    // a garbled stream may decode to anything before its checksum fails.
                    _ if n > max || what == "garbled" => {
                        assert!(off.is_err(), "{n} bytes, {encoding:?}, {what}")
                    }
                    _ => assert_eq!(off, Err((400, "invalid_body")), "{n} bytes, {encoding:?}, {what}"),
                }
            }
        }
    }
}

#[tokio::test]
async fn an_identity_body_is_returned_as_read_with_its_header() {
    let raw = Bytes::from_static(b"\x1f\x8b not decoded");
    let mut headers = HeaderMap::new();
    headers.insert(http::header::CONTENT_ENCODING, "identity".parse().unwrap());
    let got = decode_body(&mut headers, raw.clone(), Encoding::Identity, 4).await;
    assert_eq!(
        outcome(got).unwrap(),
        raw,
        "the read limit is the caller's, not the decoder's"
    );
    assert!(headers.get(http::header::CONTENT_ENCODING).is_some());
}
