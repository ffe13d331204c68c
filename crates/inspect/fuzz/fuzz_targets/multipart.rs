//! scan_multipart must never panic; every reported span lies within the body and the reported
//! values are exactly the bytes at their spans.
#![no_main]

use libfuzzer_sys::fuzz_target;

const FIELDS: &[&str] = &["model", "purpose", "file", ""];

fuzz_target!(|data: &[u8]| {
    // First line (up to '\n', at most 80 bytes) is the content type; the rest is the body.
    let split = data.iter().take(80).position(|&b| b == b'\n');
    let (ct, body) = match split {
        Some(p) => (&data[..p], &data[p + 1..]),
        None => (&b"multipart/form-data; boundary=XyZ"[..], data),
    };
    let Ok(ct) = std::str::from_utf8(ct) else { return };
    let boundary = match inspect::boundary_from_content_type(ct) {
        Ok(b) => {
            assert!(!b.is_empty() && b.len() <= 70, "boundary {b:?}");
            assert!(ct.contains(b), "boundary {b:?} not in {ct:?}");
            b
        }
        Err(_) => "XyZ",
    };
    if let Ok(scan) = inspect::scan_multipart(body, boundary, FIELDS) {
        let mut last = 0;
        for p in &scan.parts {
            assert!(p.body_span.start <= p.body_span.end && p.body_span.end <= body.len());
            assert!(p.body_span.start >= last, "parts out of order");
            last = p.body_span.end;
            assert!(body[p.body_span.end..].starts_with(b"\r\n--"));
            assert!(body[p.body_span.end + 4..].starts_with(boundary.as_bytes()));
        }
        let mut seen = std::collections::HashSet::new();
        for f in &scan.fields {
            assert!(f.index < FIELDS.len());
            assert!(seen.insert(f.index), "field reported twice");
            assert!(f.value_span.end <= body.len());
            assert_eq!(&body[f.value_span.clone()], f.value.as_bytes());
            let part = scan.parts.iter().find(|p| p.body_span == f.value_span);
            assert!(
                part.is_some_and(|p| p.name == FIELDS[f.index]),
                "no part named {:?} at the span",
                FIELDS[f.index]
            );
        }
    }
});
