//! Inputs at the edges of the multipart reader that the unit tests next to it did not pin
//! (found with `cargo mutants`): each is a place where a lenient reading would let a form
//! through with parts or names the policy never saw.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use inspect::multipart::MAX_BOUNDARY;
use inspect::{boundary_from_content_type, scan_multipart, MultipartError};

const F: &[&str] = &["model", "purpose"];

fn one_part(headers: &str, content: &str) -> Vec<u8> {
    format!("--XyZ\r\n{headers}\r\n\r\n{content}\r\n--XyZ--\r\n").into_bytes()
}

fn malformed(r: Result<impl std::fmt::Debug, MultipartError>, why: &str) {
    match r {
        Err(MultipartError::Malformed(w, _)) if w == why => {}
        other => panic!("expected Malformed({why:?}), got {other:?}"),
    }
}

fn ambiguous(body: &[u8]) -> bool {
    matches!(
        scan_multipart(body, "XyZ", F),
        Err(MultipartError::AmbiguousName(_))
    )
}

/// A quoted parameter may hold `\"`; parameters other than `boundary` and `charset=utf-8` are
/// refused (issue 10: a server decoding fields by another charset reads another form), so a
/// `boundary=` hidden in one is never read either way.
#[test]
fn quoted_parameters_with_escaped_quotes() {
    assert_eq!(
        boundary_from_content_type(r#"multipart/form-data; x="a\"; boundary=evil"; boundary=good"#),
        Err(MultipartError::Parameter)
    );
    assert_eq!(
        boundary_from_content_type(r#"multipart/form-data; x="\\"; boundary=b1"#),
        Err(MultipartError::Parameter)
    );
    assert_eq!(
        boundary_from_content_type(r#"multipart/form-data; charset="utf-8"; boundary=b2"#),
        Ok("b2")
    );
    // An escape at the very end never closes the string.
    assert_eq!(
        boundary_from_content_type(r#"multipart/form-data; boundary=b; x="a\""#),
        Err(MultipartError::BadBoundary)
    );
}

/// `scan_multipart` checks the boundary it is given as `boundary_from_content_type` does.
#[test]
fn scan_checks_its_boundary() {
    let b70 = "b".repeat(MAX_BOUNDARY);
    let body = format!("--{b70}\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nm\r\n--{b70}--\r\n");
    let s = scan_multipart(body.as_bytes(), &b70, F).unwrap();
    assert_eq!(s.field(0).map(|f| f.value), Some("m"));
    let b71 = "b".repeat(MAX_BOUNDARY + 1);
    let body = format!("--{b71}\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nm\r\n--{b71}--\r\n");
    assert_eq!(
        scan_multipart(body.as_bytes(), &b71, F),
        Err(MultipartError::BadBoundary)
    );
    let body = "--a@b\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nm\r\n--a@b--\r\n";
    assert_eq!(
        scan_multipart(body.as_bytes(), "a@b", F),
        Err(MultipartError::BadBoundary)
    );
    assert_eq!(
        scan_multipart(b"----\r\n", "", F),
        Err(MultipartError::BadBoundary)
    );
}

/// The delimiter must not hide in a part's headers, neither after a CRLF nor at their start.
#[test]
fn boundary_inside_part_headers() {
    let b = b"--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n--XyZ\r\nX: y\r\n\r\nv\r\n--XyZ--";
    malformed(scan_multipart(b, "XyZ", F), "boundary inside part headers");
    let b = b"--XyZ\r\n--XyZ\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nv\r\n--XyZ--";
    malformed(scan_multipart(b, "XyZ", F), "boundary inside part headers");
}

/// Bare CR, bare LF and NUL in a header line, and header names that are not tokens.
#[test]
fn header_lines_are_strict() {
    for bad in [
        "Content-Disposition: form-data; name=\"model\"\rX: y",
        "Content-Disposition: form-data; name=\"model\"\nX: y",
        "Content-Disposition: form-data; name=\"model\"\0",
        "X-A: \0\r\nContent-Disposition: form-data; name=\"model\"",
    ] {
        malformed(
            scan_multipart(&one_part(bad, "m"), "XyZ", F),
            "bare CR or LF in part headers",
        );
    }
    for bad in [
        "Content Disposition: form-data; name=\"model\"",
        ": form-data; name=\"model\"",
        "Content-Disposition: form-data; name=\"model\"\r\nX@Y: z",
        "Content-Disposition: form-data; name=\"model\"\r\nÜ: z",
    ] {
        malformed(
            scan_multipart(&one_part(bad, "m"), "XyZ", F),
            "invalid header name",
        );
    }
    // Token characters other than letters are fine in a header name.
    let ok = one_part(
        "Content-Disposition: form-data; name=\"model\"\r\nX-a.b_c~!#$%&'*+^`|: z",
        "m",
    );
    assert_eq!(
        scan_multipart(&ok, "XyZ", F).unwrap().field(0).map(|f| f.value),
        Some("m")
    );
}

/// Errors found in the Content-Disposition value point at it.
#[test]
fn disposition_errors_name_their_offset() {
    // "--XyZ\r\n" is 7 bytes; the value starts after "Content-Disposition:" (20 bytes).
    let b = one_part("Content-Disposition: form-data; name=model", "m");
    assert_eq!(
        scan_multipart(&b, "XyZ", F),
        Err(MultipartError::AmbiguousName(27))
    );
    let b = one_part("X: y\r\nContent-Disposition: attachment; name=\"model\"", "m");
    assert_eq!(
        scan_multipart(&b, "XyZ", F),
        Err(MultipartError::Malformed(
            "Content-Disposition is not form-data",
            33
        ))
    );
}

/// Names and filenames: which bytes they may hold.
#[test]
fn name_and_filename_bytes() {
    let cd = |p: &str| one_part(&format!("Content-Disposition: form-data; {p}"), "x");
    assert!(!ambiguous(&cd("name=\"my model\"")));
    assert!(!ambiguous(&cd("name=\"~\"")));
    assert!(ambiguous(&cd("name=\"mo\u{7f}del\"")));
    assert!(ambiguous(&cd("name=\"mo\u{1f}del\"")));
    assert!(ambiguous(&cd("name=\"mo\u{1}del\"")));
    assert!(!ambiguous(&cd("name=\"file\"; filename=\"a ~.txt\"")));
    assert!(ambiguous(&cd("name=\"file\"; filename=\"a\u{7f}.txt\"")));
    assert!(ambiguous(&cd("name=\"file\"; filename=\"a\u{1f}.txt\"")));
    assert!(ambiguous(&cd("name=\"file\"; filename=\"a\tb.txt\"")));
    assert!(!ambiguous(&cd("name=\"file\"; filename=a.txt")));
}
