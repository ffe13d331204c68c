//! Strict multipart/form-data scan (RFC 7578) for named text fields, over a buffered body.
//!
//! CONTRACT (pinned): a part's name must be given exactly once as `name="..."` in a
//! `Content-Disposition: form-data` header; repeated, unquoted, `name*=`, or otherwise
//! ambiguous names are errors, as are repeated parts for a requested field, a missing closing
//! boundary, and non-UTF-8 values of requested fields.

use std::borrow::Cow;
use std::ops::Range;

/// Longest boundary RFC 2046 allows.
pub const MAX_BOUNDARY: usize = 70;

/// The boundary parameter of a `multipart/form-data` content type.
///
/// The type and parameter names are case-insensitive; the boundary may be a token or a quoted
/// string (without backslash escapes, which would make the borrowed value ambiguous). A
/// missing, empty, over-long, repeated or otherwise invalid boundary is [`MultipartError::BadBoundary`].
pub fn boundary_from_content_type(content_type: &str) -> Result<&str, MultipartError> {
    let (mime, mut rest) = match content_type.find(';') {
        Some(p) => (&content_type[..p], &content_type[p..]),
        None => (content_type, ""),
    };
    if !mime
        .trim_matches(is_ows)
        .eq_ignore_ascii_case("multipart/form-data")
    {
        return Err(MultipartError::NotMultipart);
    }
    let mut boundary = None;
    loop {
        rest = rest.trim_start_matches(is_ows);
        if rest.is_empty() {
            break;
        }
        let Some(after) = rest.strip_prefix(';') else {
            return Err(MultipartError::BadBoundary);
        };
        let after = after.trim_start_matches(is_ows);
        if after.is_empty() {
            break;
        }
        let Some((name, value, tail)) = split_param(after) else {
            return Err(MultipartError::BadBoundary);
        };
        rest = tail;
        if name.eq_ignore_ascii_case("boundary") {
            if boundary.is_some() {
                return Err(MultipartError::BadBoundary);
            }
            let value = match value {
                ParamValue::Token(t) => t,
                ParamValue::Quoted(q) if !q.contains('\\') => q,
                ParamValue::Quoted(_) => return Err(MultipartError::BadBoundary),
            };
            boundary = Some(value);
        } else if !(name.eq_ignore_ascii_case("charset") && is_utf8_label(&value)) {
            // Starlette + python-multipart decode the form's fields by `charset` (utf-7 turns
            // `+AGI-atch` into `batch`); we read UTF-8. Anything but a boundary and
            // charset=utf-8 could be read another way.
            return Err(MultipartError::Parameter);
        }
    }
    let b = boundary.ok_or(MultipartError::BadBoundary)?;
    if b.is_empty() || b.len() > MAX_BOUNDARY || b.ends_with(' ') || !b.bytes().all(is_bchar) {
        return Err(MultipartError::BadBoundary);
    }
    Ok(b)
}

/// `utf-8` in any case, as a token or quoted.
fn is_utf8_label(v: &ParamValue<'_>) -> bool {
    match v {
        ParamValue::Token(t) | ParamValue::Quoted(t) => t.eq_ignore_ascii_case("utf-8"),
    }
}

/// A part's `Content-Type` may name no charset other than UTF-8: a server decoding a text
/// field by it would read another value than the bytes we checked.
pub fn part_charset_ok(content_type: &str) -> bool {
    let mut params = content_type.split(';');
    params.next();
    params.all(|p| match p.split_once('=') {
        Some((k, v)) if k.trim_matches(is_ows).eq_ignore_ascii_case("charset") => v
            .trim_matches(is_ows)
            .trim_matches('"')
            .eq_ignore_ascii_case("utf-8"),
        _ => !p.to_ascii_lowercase().contains("charset"),
    })
}

/// RFC 7578 §4.6: a `_charset_` field sets the charset of the other fields for servers that
/// honour it. Refused: we read them as UTF-8.
pub fn is_charset_field(name: &str) -> bool {
    name.eq_ignore_ascii_case("_charset_")
}

fn is_ows(c: char) -> bool {
    c == ' ' || c == '\t'
}

/// RFC 2046 `bchars`.
fn is_bchar(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"'()+_,-./:=? ".contains(&c)
}

/// RFC 7230 `tchar`.
fn is_tchar(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c)
}

enum ParamValue<'a> {
    Token(&'a str),
    /// The raw content between the quotes (backslashes not interpreted).
    Quoted(&'a str),
}

/// Splits `name=value` (token or quoted value) off the front of `s`; returns the rest, which
/// starts with optional whitespace then `;` or is empty. `None` when malformed.
fn split_param(s: &str) -> Option<(&str, ParamValue<'_>, &str)> {
    let name_end = s.bytes().position(|c| !is_tchar(c)).unwrap_or(s.len());
    let name = &s[..name_end];
    let rest = s[name_end..].trim_start_matches(is_ows).strip_prefix('=')?;
    let rest = rest.trim_start_matches(is_ows);
    if name.is_empty() {
        return None;
    }
    let (value, tail) = if let Some(q) = rest.strip_prefix('"') {
        // A backslash quotes the next character (so `\"` does not end the string).
        let bytes = q.as_bytes();
        let mut i = 0;
        loop {
            match bytes.get(i)? {
                b'"' => break,
                b'\\' => i += 2,
                _ => i += 1,
            }
        }
        (ParamValue::Quoted(q.get(..i)?), q.get(i + 1..)?)
    } else {
        let end = rest.bytes().position(|c| !is_tchar(c)).unwrap_or(rest.len());
        if end == 0 {
            return None;
        }
        (ParamValue::Token(&rest[..end]), &rest[end..])
    };
    let after = tail.trim_start_matches(is_ows);
    if !(after.is_empty() || after.starts_with(';')) {
        return None;
    }
    Some((name, value, tail))
}

/// One part of the body.
#[derive(Debug, Clone, PartialEq)]
pub struct Part<'a> {
    /// The form field name, unescaped.
    pub name: Cow<'a, str>,
    pub filename: Option<Cow<'a, str>>,
    pub content_type: Option<&'a str>,
    /// Span of the part's content (between its headers and the next boundary's CRLF).
    pub body_span: Range<usize>,
}

/// A requested text field.
#[derive(Debug, Clone, PartialEq)]
pub struct TextField<'a> {
    /// Index into the requested field names.
    pub index: usize,
    pub value_span: Range<usize>,
    pub value: &'a str,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MultipartScan<'a> {
    /// Every part, in body order.
    pub parts: Vec<Part<'a>>,
    /// The requested text fields that are present.
    pub fields: Vec<TextField<'a>>,
}

impl<'a> MultipartScan<'a> {
    pub fn field(&self, index: usize) -> Option<&TextField<'a>> {
        self.fields.iter().find(|f| f.index == index)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MultipartError {
    NotMultipart,
    BadBoundary,
    /// A `Content-Type` parameter other than `boundary` and `charset=utf-8`.
    Parameter,
    Malformed(&'static str, usize),
    AmbiguousName(usize),
    DuplicateField(String),
    InvalidUtf8(String),
}

impl std::fmt::Display for MultipartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MultipartError::NotMultipart => write!(f, "content type is not multipart/form-data"),
            MultipartError::BadBoundary => write!(f, "missing or invalid multipart boundary"),
            MultipartError::Parameter => write!(
                f,
                "multipart/form-data takes only a boundary (and charset=utf-8) parameter"
            ),
            MultipartError::Malformed(what, at) => write!(f, "malformed multipart body at byte {at}: {what}"),
            MultipartError::AmbiguousName(at) => write!(f, "ambiguous form field name at byte {at}"),
            MultipartError::DuplicateField(n) => write!(f, "form field {n:?} appears more than once"),
            MultipartError::InvalidUtf8(n) => write!(f, "form field {n:?} is not valid UTF-8"),
        }
    }
}

impl std::error::Error for MultipartError {}

/// Scans a whole multipart body. `fields` are the text fields to report.
pub fn scan_multipart<'a>(
    body: &'a [u8],
    boundary: &str,
    fields: &[&str],
) -> Result<MultipartScan<'a>, MultipartError> {
    if boundary.is_empty() || boundary.len() > MAX_BOUNDARY || !boundary.bytes().all(is_bchar) {
        return Err(MultipartError::BadBoundary);
    }
    // "\r\n--" boundary: the delimiter; the CRLF belongs to it, not to the part before.
    let mut needle = Vec::with_capacity(boundary.len() + 4);
    needle.extend_from_slice(b"\r\n--");
    needle.extend_from_slice(boundary.as_bytes());
    let finder = memchr::memmem::Finder::new(&needle);
    let dash_boundary = &needle[2..];

    // The first delimiter: at the very start, or after a preamble. A preamble must not hold
    // the boundary text itself: a lenient parser could start at such a line (e.g. after a bare
    // LF) and read parts we skipped as preamble.
    let mut pos = match memchr::memmem::find(body, dash_boundary) {
        Some(0) => dash_boundary.len(),
        Some(p) if p >= 2 && &body[p - 2..p] == b"\r\n" => p + dash_boundary.len(),
        Some(p) => return Err(MultipartError::Malformed("boundary text in the preamble", p)),
        None => return Err(MultipartError::Malformed("no boundary", 0)),
    };
    let mut scan = MultipartScan {
        parts: Vec::new(),
        fields: Vec::new(),
    };
    loop {
        // After a delimiter: "--" closes; else optional padding then CRLF.
        if body[pos..].starts_with(b"--") {
            if scan.parts.is_empty() {
                return Err(MultipartError::Malformed("no parts", pos));
            }
            return Ok(scan);
        }
        while matches!(body.get(pos), Some(b' ' | b'\t')) {
            pos += 1;
        }
        if !body[pos..].starts_with(b"\r\n") {
            return Err(MultipartError::Malformed("boundary not followed by CRLF", pos));
        }
        let part_start = pos + 2;
        let (part, next) = scan_part(body, part_start, &finder, dash_boundary)?;
        if let Some(index) = fields.iter().position(|f| **f == *part.name) {
            if scan.fields.iter().any(|f| f.index == index) {
                return Err(MultipartError::DuplicateField(part.name.into_owned()));
            }
            let value = std::str::from_utf8(&body[part.body_span.clone()])
                .map_err(|_| MultipartError::InvalidUtf8(part.name.to_string()))?;
            scan.fields.push(TextField {
                index,
                value_span: part.body_span.clone(),
                value,
            });
        }
        scan.parts.push(part);
        pos = next;
    }
}

/// Scans one part starting at `start` (just after the delimiter line); returns it and the
/// offset just after the next delimiter.
fn scan_part<'a>(
    body: &'a [u8],
    start: usize,
    finder: &memchr::memmem::Finder<'_>,
    dash_boundary: &[u8],
) -> Result<(Part<'a>, usize), MultipartError> {
    let rest = &body[start..];
    let headers_end = if rest.starts_with(b"\r\n") {
        start
    } else {
        match memchr::memmem::find(rest, b"\r\n\r\n") {
            Some(p) => start + p + 2,
            None => return Err(MultipartError::Malformed("unterminated part headers", start)),
        }
    };
    let content_start = headers_end + 2;
    let headers = &body[start..headers_end];
    if finder.find(headers).is_some() || headers.starts_with(dash_boundary) {
        return Err(MultipartError::Malformed("boundary inside part headers", start));
    }
    if body[content_start..].starts_with(dash_boundary) {
        return Err(MultipartError::Malformed(
            "boundary without CRLF after part headers",
            content_start,
        ));
    }
    let content_end = match finder.find(&body[content_start..]) {
        Some(p) => content_start + p,
        None => return Err(MultipartError::Malformed("missing closing boundary", body.len())),
    };

    let h = parse_part_headers(&body[start..headers_end], start)?;
    Ok((
        Part {
            name: Cow::Borrowed(h.name),
            filename: h.filename.map(Cow::Borrowed),
            content_type: h.content_type,
            body_span: content_start..content_end,
        },
        content_end + finder.needle().len(),
    ))
}

/// The headers of one part that matter, read the one way every reader in this project reads
/// them (the buffered scan here and the proxy's streaming batch parser).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartHeaders<'a> {
    pub name: &'a str,
    pub filename: Option<&'a str>,
    pub content_type: Option<&'a str>,
}

/// Reads one part's header block strictly: `block` is its header lines, each ending in CRLF
/// (empty for a part without headers), and `at` where the block starts in the body (for the
/// offsets in errors). Exactly one `Content-Disposition: form-data` with exactly one quoted
/// lower-case `name`; no folded lines, bare CR/LF or invalid header names; no
/// `Content-Transfer-Encoding` other than an identity one; at most one `Content-Type`, naming
/// no charset but UTF-8; no `_charset_` field.
pub fn parse_part_headers(block: &[u8], at: usize) -> Result<PartHeaders<'_>, MultipartError> {
    let mut disposition: Option<(&str, usize)> = None;
    let mut content_type: Option<&str> = None;
    let mut line_start = 0;
    while line_start < block.len() {
        let line_end = match memchr::memmem::find(&block[line_start..], b"\r\n") {
            Some(p) => line_start + p,
            None => {
                return Err(MultipartError::Malformed(
                    "header line without CRLF",
                    at + line_start,
                ))
            }
        };
        let line = &block[line_start..line_end];
        if line.iter().any(|&c| c == b'\r' || c == b'\n' || c == 0) {
            return Err(MultipartError::Malformed(
                "bare CR or LF in part headers",
                at + line_start,
            ));
        }
        if matches!(line.first(), Some(b' ' | b'\t')) {
            return Err(MultipartError::Malformed("folded header line", at + line_start));
        }
        let line = std::str::from_utf8(line)
            .map_err(|_| MultipartError::Malformed("part header is not UTF-8", at + line_start))?;
        let Some(colon) = line.find(':') else {
            return Err(MultipartError::Malformed(
                "header line without ':'",
                at + line_start,
            ));
        };
        let name = &line[..colon];
        if name.is_empty() || !name.bytes().all(is_tchar) {
            return Err(MultipartError::Malformed("invalid header name", at + line_start));
        }
        let value = line[colon + 1..].trim_matches(is_ows);
        let value_at = at + line_start + colon + 1;
        if name.eq_ignore_ascii_case("content-disposition") {
            if disposition.is_some() {
                return Err(MultipartError::AmbiguousName(at + line_start));
            }
            disposition = Some((value, value_at));
        } else if name.eq_ignore_ascii_case("content-transfer-encoding") {
            // RFC 7578 §4.7: senders must not use it. A server that honours base64 or
            // quoted-printable would read a value other than the bytes we checked.
            if !["7bit", "8bit", "binary"]
                .iter()
                .any(|e| value.eq_ignore_ascii_case(e))
            {
                return Err(MultipartError::Malformed(
                    "Content-Transfer-Encoding in a form part",
                    at + line_start,
                ));
            }
        } else if name.eq_ignore_ascii_case("content-type") {
            if content_type.is_some() {
                return Err(MultipartError::Malformed(
                    "repeated Content-Type",
                    at + line_start,
                ));
            }
            if !part_charset_ok(value) {
                return Err(MultipartError::Malformed(
                    "a part charset other than UTF-8",
                    at + line_start,
                ));
            }
            content_type = Some(value);
        }
        line_start = line_end + 2;
    }
    let Some((disposition, value_at)) = disposition else {
        return Err(MultipartError::AmbiguousName(at));
    };
    let (name, filename) = parse_disposition(disposition, value_at)?;
    if is_charset_field(name) {
        return Err(MultipartError::Malformed("a _charset_ field", value_at));
    }
    Ok(PartHeaders {
        name,
        filename,
        content_type,
    })
}

/// `form-data; name="..."[; filename="..."]` → (name, filename).
fn parse_disposition(v: &str, at: usize) -> Result<(&str, Option<&str>), MultipartError> {
    let (kind, mut rest) = match v.find(';') {
        Some(p) => (&v[..p], &v[p..]),
        None => (v, ""),
    };
    if !kind.trim_matches(is_ows).eq_ignore_ascii_case("form-data") {
        return Err(MultipartError::Malformed(
            "Content-Disposition is not form-data",
            at,
        ));
    }
    let mut name = None;
    let mut filename = None;
    loop {
        rest = rest.trim_start_matches(is_ows);
        if rest.is_empty() {
            break;
        }
        let Some(after) = rest.strip_prefix(';') else {
            return Err(MultipartError::AmbiguousName(at));
        };
        let after = after.trim_start_matches(is_ows);
        let Some((pname, value, tail)) = split_param(after) else {
            return Err(MultipartError::AmbiguousName(at));
        };
        rest = tail;
        // Parameter names are case-insensitive in RFC 2183 but not to every server (multer
        // ignores `NAME=`): only the lower-case spelling everyone reads alike is accepted.
        if (pname.eq_ignore_ascii_case("name") && pname != "name")
            || (pname.eq_ignore_ascii_case("filename") && pname != "filename")
        {
            return Err(MultipartError::AmbiguousName(at));
        }
        if pname == "name" {
            let ParamValue::Quoted(n) = value else {
                return Err(MultipartError::AmbiguousName(at));
            };
            if name.is_some() || n.bytes().any(|c| c == b'\\' || c < 0x20 || c == 0x7f) {
                return Err(MultipartError::AmbiguousName(at));
            }
            name = Some(n);
        } else if pname == "filename" {
            let f = match value {
                ParamValue::Quoted(f) | ParamValue::Token(f) => f,
            };
            if filename.is_some() || f.bytes().any(|c| c < 0x20 || c == 0x7f) {
                return Err(MultipartError::AmbiguousName(at));
            }
            filename = Some(f);
        } else {
            // Nothing else means anything in form-data, and other parameters confuse servers
            // that search for `name` (multer stops at `nameX=`); `name*=` / `filename*=`
            // (RFC 5987) would give a second, encoded spelling.
            return Err(MultipartError::AmbiguousName(at));
        }
    }
    // A parser that finds the name by searching for `name` after whitespace or `;` (multer)
    // must find it only where we did, not inside a filename.
    if name_like_positions(v) != 1 {
        return Err(MultipartError::AmbiguousName(at));
    }
    match name {
        Some(n) => Ok((n, filename)),
        None => Err(MultipartError::AmbiguousName(at)),
    }
}

/// Places `name` (any case) starts at the beginning of `v` or after whitespace or `;`.
fn name_like_positions(v: &str) -> usize {
    let b = v.as_bytes();
    (0..b.len().saturating_sub(3))
        .filter(|&i| {
            b[i..i + 4].eq_ignore_ascii_case(b"name")
                && (i == 0 || b[i - 1].is_ascii_whitespace() || b[i - 1] == b';')
        })
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    const F: &[&str] = &["model", "purpose"];

    fn body(parts: &[&str]) -> Vec<u8> {
        let mut b = Vec::new();
        for p in parts {
            b.extend_from_slice(b"--XyZ\r\n");
            b.extend_from_slice(p.as_bytes());
            b.extend_from_slice(b"\r\n");
        }
        b.extend_from_slice(b"--XyZ--\r\n");
        b
    }

    fn part(headers: &str, content: &str) -> String {
        format!("{headers}\r\n\r\n{content}")
    }

    fn cd(params: &str) -> String {
        format!("Content-Disposition: form-data; {params}")
    }

    #[test]
    fn boundary_parsing() {
        assert_eq!(
            boundary_from_content_type("multipart/form-data; boundary=abc"),
            Ok("abc")
        );
        assert_eq!(
            boundary_from_content_type("Multipart/Form-Data;BOUNDARY=abc"),
            Ok("abc")
        );
        assert_eq!(
            boundary_from_content_type("multipart/form-data; boundary=\"a b:c\""),
            Ok("a b:c")
        );
        assert_eq!(
            boundary_from_content_type("multipart/form-data; charset=UTF-8; boundary=----x123"),
            Ok("----x123")
        );
        // Only a boundary and charset=utf-8: a server decoding fields by another charset
        // (Starlette: utf-7 reads `+AGI-atch` as `batch`) reads another form.
        for ct in [
            "multipart/form-data; charset=utf-8; boundary=----x123; x=\"y;z\"",
            "multipart/form-data; boundary=B; charset=utf-7",
            "multipart/form-data; boundary=B; charset=\"latin1\"",
            "multipart/form-data; boundary=B; charset*=utf-8''",
        ] {
            assert_eq!(
                boundary_from_content_type(ct),
                Err(MultipartError::Parameter),
                "{ct}"
            );
        }
        assert_eq!(
            boundary_from_content_type("multipart/form-data ; boundary = abc ;"),
            Ok("abc")
        );
        let b70 = "b".repeat(70);
        assert_eq!(
            boundary_from_content_type(&format!("multipart/form-data; boundary={b70}")),
            Ok(&b70[..])
        );
        assert_eq!(
            boundary_from_content_type("application/json"),
            Err(MultipartError::NotMultipart)
        );
        assert_eq!(
            boundary_from_content_type("multipart/mixed; boundary=a"),
            Err(MultipartError::NotMultipart)
        );
        assert_eq!(
            boundary_from_content_type("multipart/form-data boundary=a"),
            Err(MultipartError::NotMultipart)
        );
        for bad in [
            "multipart/form-data",
            "multipart/form-data;",
            "multipart/form-data; boundary=",
            "multipart/form-data; boundary=\"\"",
            "multipart/form-data; boundary=a; boundary=a",
            "multipart/form-data; boundary=a; Boundary=b",
            "multipart/form-data; boundary=\"a\\\"b\"",
            "multipart/form-data; boundary=\"a",
            "multipart/form-data; boundary=\"trailing \"",
            "multipart/form-data; boundary=\"a@b\"",
            "multipart/form-data; boundary=a b",
            "multipart/form-data; boundary",
        ] {
            assert_eq!(
                boundary_from_content_type(bad),
                Err(MultipartError::BadBoundary),
                "{bad}"
            );
        }
        let b71 = "b".repeat(71);
        assert_eq!(
            boundary_from_content_type(&format!("multipart/form-data; boundary={b71}")),
            Err(MultipartError::BadBoundary)
        );
    }

    #[test]
    fn basic_scan() {
        let b = body(&[
            &part(&cd("name=\"model\""), "whisper-1"),
            &part(
                &format!(
                    "{}\r\nContent-Type: audio/wav",
                    cd("name=\"file\"; filename=\"a b.wav\"")
                ),
                "RIFF\0\u{ff}",
            ),
            &part(&cd("name=\"purpose\""), ""),
        ]);
        let s = scan_multipart(&b, "XyZ", F).unwrap();
        assert_eq!(s.parts.len(), 3);
        assert_eq!(s.parts[0].name, "model");
        assert_eq!(s.parts[1].name, "file");
        assert_eq!(s.parts[1].filename.as_deref(), Some("a b.wav"));
        assert_eq!(s.parts[1].content_type, Some("audio/wav"));
        assert_eq!(&b[s.parts[1].body_span.clone()], "RIFF\0\u{ff}".as_bytes());
        assert_eq!(s.field(0).map(|f| f.value), Some("whisper-1"));
        assert_eq!(
            s.field(0).map(|f| &b[f.value_span.clone()]),
            Some(&b"whisper-1"[..])
        );
        assert_eq!(s.field(1).map(|f| f.value), Some(""));
    }

    #[test]
    fn preamble_epilogue_padding_and_case() {
        let mut b = b"this is a preamble\r\n".to_vec();
        b.extend_from_slice(
            b"--XyZ  \t\r\ncontent-disposition: FORM-DATA;name=\"model\"\r\n\r\nm\r\n--XyZ--",
        );
        b.extend_from_slice(b"\r\nepilogue --XyZ garbage");
        let s = scan_multipart(&b, "XyZ", F).unwrap();
        assert_eq!(s.field(0).map(|f| f.value), Some("m"));
        // Content that merely contains the boundary text mid-line is fine.
        let b = body(&[&part(&cd("name=\"model\""), "a--XyZ\nb\r--XyZ")]);
        assert_eq!(
            scan_multipart(&b, "XyZ", F).unwrap().field(0).map(|f| f.value),
            Some("a--XyZ\nb\r--XyZ")
        );
        // A part without headers after the delimiter has no Content-Disposition.
        let b = b"--XyZ\r\n\r\nx\r\n--XyZ--".to_vec();
        assert_eq!(
            scan_multipart(&b, "XyZ", F),
            Err(MultipartError::AmbiguousName(7))
        );
    }

    #[test]
    fn boundary_text_in_the_preamble_is_refused() {
        // Issue 6: after a bare LF, some parsers take "--XyZ" as the first delimiter and would
        // read the model we treated as preamble.
        let hidden = part(&cd("name=\"model\""), "gpt-4");
        let mut b = format!("x\n--XyZ\r\n{hidden}\r\n").into_bytes();
        b.extend_from_slice(&body(&[&part(&cd("name=\"model\""), "whisper-1")]));
        assert!(matches!(
            scan_multipart(&b, "XyZ", F),
            Err(MultipartError::Malformed("boundary text in the preamble", 2))
        ));
        let mut b = b"a--XyZ\r\n".to_vec();
        b.extend_from_slice(&body(&[&part(&cd("name=\"model\""), "m")]));
        assert!(scan_multipart(&b, "XyZ", F).is_err());
        // A preamble without the boundary text, and a CRLF before the first delimiter, are fine.
        let mut b = b"\r\n".to_vec();
        b.extend_from_slice(&body(&[&part(&cd("name=\"model\""), "m")]));
        assert_eq!(
            scan_multipart(&b, "XyZ", F).unwrap().field(0).map(|f| f.value),
            Some("m")
        );
    }

    #[test]
    fn content_transfer_encoding_is_refused_unless_identity() {
        for cte in ["base64", "quoted-printable", "x-uuencode", ""] {
            let h = format!("{}\r\nContent-Transfer-Encoding: {cte}", cd("name=\"model\""));
            let b = body(&[&part(&h, "d2hpc3Blci0x")]);
            assert!(
                matches!(scan_multipart(&b, "XyZ", F), Err(MultipartError::Malformed(_, _))),
                "{cte}"
            );
        }
        for cte in ["binary", "8bit", "7BIT"] {
            let h = format!("{}\r\nContent-Transfer-Encoding: {cte}", cd("name=\"model\""));
            let b = body(&[&part(&h, "m")]);
            assert_eq!(
                scan_multipart(&b, "XyZ", F).unwrap().field(0).map(|f| f.value),
                Some("m")
            );
        }
    }

    #[test]
    fn malformed_bodies() {
        let m = |b: &[u8]| matches!(scan_multipart(b, "XyZ", F), Err(MultipartError::Malformed(..)));
        let good = body(&[&part(&cd("name=\"model\""), "x")]);
        assert!(scan_multipart(&good, "XyZ", F).is_ok());
        // Missing closing boundary.
        assert!(m(&good[..good.len() - 9]));
        assert!(m(
            b"--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nx\r\n--XyZ\r\n"
        ));
        assert!(m(b""));
        assert!(m(b"no boundary at all"));
        assert!(m(b"--XyZ--"));
        // Boundary followed by something other than CRLF / "--".
        assert!(m(
            b"--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nx\r\n--XyZextra\r\n--XyZ--"
        ));
        assert!(m(
            b"--XyZ\nContent-Disposition: form-data; name=\"a\"\n\nx\n--XyZ--"
        ));
        // Unterminated headers, bare LF, folded header, bad header line.
        assert!(m(
            b"--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n--XyZ--"
        ));
        assert!(m(
            b"--XyZ\r\nContent-Disposition: form-data; name=\"a\"\nX: y\r\n\r\nx\r\n--XyZ--"
        ));
        assert!(m(
            b"--XyZ\r\nContent-Disposition: form-data;\r\n name=\"a\"\r\n\r\nx\r\n--XyZ--"
        ));
        assert!(m(
            b"--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\nbogus\r\n\r\nx\r\n--XyZ--"
        ));
        assert!(m(
            b"--XyZ\r\nContent-Disposition: attachment; name=\"a\"\r\n\r\nx\r\n--XyZ--"
        ));
        assert!(m(b"--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\nContent-Type: a\r\ncontent-type: b\r\n\r\nx\r\n--XyZ--"));
        // Empty body with the part's CRLF missing: the delimiter would be read as content.
        assert!(m(
            b"--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n--XyZ--"
        ));
        assert_eq!(scan_multipart(&good, "", F), Err(MultipartError::BadBoundary));
    }

    #[test]
    fn ambiguous_names() {
        let amb = |params: &str| {
            let b = body(&[&part(&cd(params), "x")]);
            matches!(
                scan_multipart(&b, "XyZ", F),
                Err(MultipartError::AmbiguousName(_))
            )
        };
        assert!(!amb("name=\"model\""));
        assert!(!amb("name=\"mo;del\"; filename=\"f\""));
        assert!(!amb("filename=\"f\"; name=\"model\""));
        assert!(amb("name=model"));
        assert!(amb("name=\"a\"; name=\"b\""));
        assert!(amb("name=\"a\"; NAME=\"a\""));
        // Found by fuzzing against multer: it gives up at a parameter that starts with
        // `name`, and it would find `name=` inside a quoted filename.
        assert!(amb("nameame=x; name=\"model\""));
        assert!(amb("name=\"model\"; foo=bar"));
        assert!(amb("filename=\"a; name=model;\"; name=\"file\""));
        assert!(amb("name=\"file\"; filename=\"my name.wav\""));
        assert!(!amb("name=\"file\"; filename=\"my_name.wav\""));
        // Found by fuzzing against multer, which reads only the lower-case spelling.
        assert!(amb("NAME=\"model\""));
        assert!(amb("namE=\"model\""));
        assert!(amb("name=\"file\"; FILENAME=\"a\""));
        assert!(amb("name*=UTF-8''model"));
        assert!(amb("name=\"a\"; name*=UTF-8''model"));
        assert!(amb("name=\"mo\\del\""));
        assert!(amb("name=\"mo\\\"del\""));
        assert!(amb("name=\"mo\tdel\""));
        assert!(amb("name=\"model"));
        assert!(amb("name=\"model\"x"));
        assert!(amb("filename=\"f\""));
        assert!(amb("name=\"a\"; filename=\"1\"; filename=\"2\""));
        assert!(amb("name=\"a\"; filename*=UTF-8''x"));
        assert!(amb("name=\"a\" name=\"b\""));
        // Missing Content-Disposition, or two of them.
        let b = body(&[&part("Content-Type: text/plain", "x")]);
        assert!(matches!(
            scan_multipart(&b, "XyZ", F),
            Err(MultipartError::AmbiguousName(_))
        ));
        let b = body(&[&part(
            &format!("{}\r\n{}", cd("name=\"a\""), cd("name=\"b\"")),
            "x",
        )]);
        assert!(matches!(
            scan_multipart(&b, "XyZ", F),
            Err(MultipartError::AmbiguousName(_))
        ));
    }

    #[test]
    fn duplicate_and_invalid_fields() {
        let b = body(&[
            &part(&cd("name=\"model\""), "a"),
            &part(&cd("name=\"model\""), "b"),
        ]);
        assert_eq!(
            scan_multipart(&b, "XyZ", F),
            Err(MultipartError::DuplicateField("model".into()))
        );
        // Repeated parts of fields nobody asked for are fine.
        let b = body(&[&part(&cd("name=\"file\""), "a"), &part(&cd("name=\"file\""), "b")]);
        assert_eq!(scan_multipart(&b, "XyZ", F).map(|s| s.parts.len()), Ok(2));
        let mut b = b"--XyZ\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\n".to_vec();
        b.extend_from_slice(b"\xff\xfe\r\n--XyZ--");
        assert_eq!(
            scan_multipart(&b, "XyZ", F),
            Err(MultipartError::InvalidUtf8("model".into()))
        );
        assert!(MultipartError::DuplicateField("model".into())
            .to_string()
            .contains("more than once"));
    }

    #[test]
    fn utf8_names() {
        let b = body(&[&part(&cd("name=\"mödel\"; filename=\"ü.txt\""), "x")]);
        let s = scan_multipart(&b, "XyZ", &["mödel"]).unwrap();
        assert_eq!(s.parts[0].name, "mödel");
        assert_eq!(s.field(0).map(|f| f.value), Some("x"));
    }
}
