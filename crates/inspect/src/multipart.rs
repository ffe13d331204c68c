//! Strict multipart/form-data scan (RFC 7578) for named text fields, over a buffered body.
//!
//! CONTRACT (pinned): a part's name must be given exactly once as `name="..."` in a
//! `Content-Disposition: form-data` header; repeated, unquoted, `name*=`, or otherwise
//! ambiguous names are errors, as are repeated parts for a requested field, a missing closing
//! boundary, and non-UTF-8 values of requested fields.

use std::borrow::Cow;
use std::ops::Range;

/// The boundary parameter of a `multipart/form-data` content type.
pub fn boundary_from_content_type(content_type: &str) -> Result<&str, MultipartError> {
    let _ = content_type;
    Err(MultipartError::NotMultipart)
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
    let _ = (body, boundary, fields);
    Err(MultipartError::BadBoundary)
}
