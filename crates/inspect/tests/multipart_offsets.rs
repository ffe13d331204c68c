//! The byte offsets in multipart errors ("malformed multipart body at byte N" in the 400's
//! message) point at the line at fault, whichever line of a part's headers it is and wherever
//! the part sits in the body (found with `cargo mutants`: an offset computed as `at - line`
//! or `at * line` passed every other test).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use inspect::{parse_part_headers, scan_multipart, MultipartError};

const GOOD: &str = "Content-Disposition: form-data; name=\"a\"\r\n";
/// Where the block starts in its body: not 0 or 1, so `+`, `-` and `*` give different offsets.
const AT: usize = 100;

/// The block `GOOD` + `bad`, and the offset of `bad` in the body.
fn second_line(bad: &str) -> (String, usize) {
    (format!("{GOOD}{bad}"), AT + GOOD.len())
}

#[test]
fn malformed_lines_are_reported_where_they_start() {
    let cases = [
        ("X-Trailing: no line end", "header line without CRLF"),
        ("X-Bare: a\rb\r\n", "bare CR or LF in part headers"),
        (" folded\r\n", "folded header line"),
        ("X-Latin: caf\u{e9}\r\n", "ok: UTF-8 is read"),
        ("no colon\r\n", "header line without ':'"),
        ("Bad Name: x\r\n", "invalid header name"),
        (
            "Content-Transfer-Encoding: base64\r\n",
            "Content-Transfer-Encoding in a form part",
        ),
        (
            "Content-Type: text/plain; charset=latin1\r\n",
            "a part charset other than UTF-8",
        ),
    ];
    for (bad, why) in cases {
        let (block, at) = second_line(bad);
        let got = parse_part_headers(block.as_bytes(), AT);
        if why.starts_with("ok") {
            assert!(got.is_ok(), "{bad:?}: {got:?}");
            continue;
        }
        assert_eq!(got, Err(MultipartError::Malformed(why, at)), "{bad:?}");
    }
    // Invalid UTF-8 needs raw bytes.
    let mut block = GOOD.as_bytes().to_vec();
    block.extend_from_slice(b"X-Raw: \xff\r\n");
    assert_eq!(
        parse_part_headers(&block, AT),
        Err(MultipartError::Malformed(
            "part header is not UTF-8",
            AT + GOOD.len()
        ))
    );
    // A repeated Content-Type is reported at the repetition, the third line.
    let ct = "Content-Type: text/plain\r\n";
    let block = format!("{GOOD}{ct}{ct}");
    assert_eq!(
        parse_part_headers(block.as_bytes(), AT),
        Err(MultipartError::Malformed(
            "repeated Content-Type",
            AT + GOOD.len() + ct.len()
        ))
    );
}

#[test]
fn ambiguous_names_are_reported_at_their_header_or_value() {
    // A second Content-Disposition: at its line.
    let (block, at) = second_line(GOOD);
    assert_eq!(
        parse_part_headers(block.as_bytes(), AT),
        Err(MultipartError::AmbiguousName(at))
    );
    // A disposition that does not parse: at its value (just after the colon), on any line.
    let other = "X-Other: 1\r\n";
    for bad in [
        "Content-Disposition: form-data; name*=utf-8''a\r\n",
        "Content-Disposition: form-data; NAME=\"a\"\r\n",
        "Content-Disposition: form-data\r\n",
    ] {
        let block = format!("{other}{bad}");
        let value_at = AT + other.len() + "Content-Disposition:".len();
        assert_eq!(
            parse_part_headers(block.as_bytes(), AT),
            Err(MultipartError::AmbiguousName(value_at)),
            "{bad:?}"
        );
    }
    let block = format!("{other}Content-Disposition: attachment; name=\"a\"\r\n");
    assert_eq!(
        parse_part_headers(block.as_bytes(), AT),
        Err(MultipartError::Malformed(
            "Content-Disposition is not form-data",
            AT + other.len() + "Content-Disposition:".len()
        ))
    );
    let block = format!("{other}Content-Disposition: form-data; name=\"_charset_\"\r\n");
    assert_eq!(
        parse_part_headers(block.as_bytes(), AT),
        Err(MultipartError::Malformed(
            "a _charset_ field",
            AT + other.len() + "Content-Disposition:".len()
        ))
    );
    // No disposition at all: at the block.
    assert_eq!(
        parse_part_headers(other.as_bytes(), AT),
        Err(MultipartError::AmbiguousName(AT))
    );
}

/// Through the body scan: offsets are counted from the start of the body, for the second part.
#[test]
fn offsets_count_from_the_start_of_the_body() {
    let first = "--XyZ\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nm\r\n";
    let second_head = "--XyZ\r\n";
    let body = format!("{first}{second_head}{GOOD} folded\r\n\r\nx\r\n--XyZ--\r\n");
    let at = first.len() + second_head.len() + GOOD.len();
    assert_eq!(
        scan_multipart(body.as_bytes(), "XyZ", &["model"]).map(|_| ()),
        Err(MultipartError::Malformed("folded header line", at))
    );
    assert_eq!(
        MultipartError::Malformed("folded header line", at).to_string(),
        format!("malformed multipart body at byte {at}: folded header line")
    );
}
