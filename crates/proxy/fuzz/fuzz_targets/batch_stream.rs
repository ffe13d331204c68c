//! The push parser that watches uploads (`proxy::batch::multipart_stream`) on arbitrary bodies
//! cut at arbitrary points: the client controls how its bytes arrive, so the parts it reports
//! must not depend on the cuts. And whatever it accepts, the buffered scanner
//! (`inspect::scan_multipart`) must read as the same parts: two readings of one upload inside
//! the proxy would be one too many.
#![no_main]

use libfuzzer_sys::fuzz_target;
use proxy::batch::multipart_stream::{Event, MultipartStream};

const BOUNDARY: &str = "XyZ";

/// (name, filename, data) per part, or the error.
fn parse(body: &[u8], cuts: &[usize]) -> Result<Vec<(String, Option<String>, Vec<u8>)>, String> {
    let mut p = MultipartStream::new(BOUNDARY);
    let mut parts: Vec<(String, Option<String>, Vec<u8>)> = Vec::new();
    let mut start = 0;
    let mut ends: Vec<usize> = cuts.iter().map(|c| c % (body.len() + 1)).collect();
    ends.push(body.len());
    ends.sort_unstable();
    for end in ends {
        if end < start {
            continue;
        }
        p.push(&body[start..end], &mut |e| match e {
            Event::Part { name, filename } => parts.push((name, filename, Vec::new())),
            Event::Data(d) => {
                if let Some(last) = parts.last_mut() {
                    last.2.extend_from_slice(d);
                }
            }
            Event::PartEnd => {}
        })?;
        start = end;
    }
    p.finish()?;
    Ok(parts)
}

fuzz_target!(|data: &[u8]| {
    // The first byte says how many cut points follow (two bytes each); the rest is the body.
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let n = usize::from(n % 8);
    if rest.len() < 2 * n {
        return;
    }
    let (cut_bytes, body) = rest.split_at(2 * n);
    let cuts: Vec<usize> = cut_bytes
        .chunks(2)
        .map(|c| usize::from(u16::from_le_bytes([c[0], c[1]])))
        .collect();
    let whole = parse(body, &[]);
    let split = parse(body, &cuts);
    assert_eq!(
        whole.is_ok(),
        split.is_ok(),
        "cuts {cuts:?} change acceptance: {whole:?} vs {split:?}"
    );
    if let (Ok(a), Ok(b)) = (&whole, &split) {
        assert_eq!(a, b, "cuts {cuts:?} change the parts");
    }
    let Ok(parts) = whole else { return };
    // Same parts as the buffered scanner, when it accepts the body too.
    if let Ok(scan) = inspect::scan_multipart(body, BOUNDARY, &[]) {
        let theirs: Vec<(String, Option<String>, Vec<u8>)> = scan
            .parts
            .iter()
            .map(|p| {
                (
                    p.name.to_string(),
                    p.filename.as_ref().map(|f| f.to_string()),
                    body[p.body_span.clone()].to_vec(),
                )
            })
            .collect();
        assert_eq!(
            parts.iter().map(|p| (&p.0, &p.2)).collect::<Vec<_>>(),
            theirs.iter().map(|p| (&p.0, &p.2)).collect::<Vec<_>>(),
            "stream and buffered scanner disagree on {:?}",
            String::from_utf8_lossy(body)
        );
    }
});
