//! Single-pass, validating JSON scan (RFC 8259) yielding top-level fields with byte spans.
//!
//! CONTRACT (pinned; the proxy is written against it):
//! - `scan_json` accepts exactly one JSON object (optional surrounding JSON whitespace),
//!   and rejects everything `serde_json::from_slice::<serde_json::Value>` rejects, plus
//!   duplicate keys at any depth (compared after unescaping). Depth limit and number range
//!   match serde_json (128 levels; numbers that overflow f64 are rejected).
//! - It never allocates per byte of input: allocations are O(number of fields reported +
//!   nesting depth), and string values without escapes are borrowed from the body.

use std::borrow::Cow;
use std::ops::Range;

/// What a caller wants out of a body.
#[derive(Debug, Clone, Copy)]
pub struct JsonSpec<'s> {
    /// Top-level member names whose values are reported in [`JsonScan::fields`].
    pub fields: &'s [&'s str],
    /// Key/value pairs looked for at any depth (see [`Marker`]).
    pub markers: &'s [Marker<'s>],
}

/// An object member `key` whose value is a string equal to one of `values` (compared after
/// unescaping), at any depth. Used for "does this body carry an image part / a web search tool".
#[derive(Debug, Clone, Copy)]
pub struct Marker<'s> {
    pub key: &'s str,
    pub values: &'s [&'s str],
}

/// The value of a reported top-level field.
#[derive(Debug, Clone, PartialEq)]
pub enum Value<'a> {
    Null,
    Bool(bool),
    /// The number's literal text, exactly as in the body.
    Number(&'a str),
    /// The unescaped string; borrowed when the literal has no escapes.
    String(Cow<'a, str>),
    Object,
    Array,
}

/// One reported top-level member.
#[derive(Debug, Clone, PartialEq)]
pub struct Field<'a> {
    /// Index into [`JsonSpec::fields`].
    pub index: usize,
    /// Span of the key literal, quotes included.
    pub key_span: Range<usize>,
    /// Span of the value literal (quotes included for strings; whole object/array for those).
    pub value_span: Range<usize>,
    pub value: Value<'a>,
}

/// Result of a successful scan.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonScan<'a> {
    /// Byte offset just after the top-level `{`: where a new member can be inserted.
    pub object_start: usize,
    /// Whether the top-level object has no members (an insert then needs no comma).
    pub empty: bool,
    /// The requested top-level fields that are present, in body order.
    pub fields: Vec<Field<'a>>,
    /// `markers_hit[i]` is true when `JsonSpec::markers[i]` matched somewhere.
    pub markers_hit: Vec<bool>,
}

impl<'a> JsonScan<'a> {
    /// The field reported for `JsonSpec::fields[index]`, if present.
    pub fn field(&self, index: usize) -> Option<&Field<'a>> {
        self.fields.iter().find(|f| f.index == index)
    }
}

/// Why a body is not exactly one valid JSON object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonError {
    /// Byte offset where the problem was found.
    pub offset: usize,
    pub kind: JsonErrorKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JsonErrorKind {
    Empty,
    ByteOrderMark,
    NotAnObject,
    Syntax(&'static str),
    InvalidUtf8,
    InvalidEscape,
    InvalidNumber,
    TooDeep,
    TrailingData,
    /// The duplicated key, unescaped.
    DuplicateKey(String),
}

impl std::fmt::Display for JsonError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.kind {
            JsonErrorKind::Empty => write!(f, "body is empty, expected a JSON object"),
            JsonErrorKind::ByteOrderMark => write!(f, "body starts with a byte-order mark"),
            JsonErrorKind::NotAnObject => write!(f, "body is not a JSON object (byte {})", self.offset),
            JsonErrorKind::Syntax(what) => write!(f, "invalid JSON at byte {}: {what}", self.offset),
            JsonErrorKind::InvalidUtf8 => write!(f, "invalid UTF-8 at byte {}", self.offset),
            JsonErrorKind::InvalidEscape => write!(f, "invalid escape at byte {}", self.offset),
            JsonErrorKind::InvalidNumber => {
                write!(f, "invalid or out-of-range number at byte {}", self.offset)
            }
            JsonErrorKind::TooDeep => write!(f, "JSON nested too deeply at byte {}", self.offset),
            JsonErrorKind::TrailingData => write!(f, "data after the JSON object at byte {}", self.offset),
            JsonErrorKind::DuplicateKey(k) => write!(f, "duplicate key {k:?} at byte {}", self.offset),
        }
    }
}

impl std::error::Error for JsonError {}

/// Scans `body` as one JSON object. See the module contract.
pub fn scan_json<'a>(body: &'a [u8], spec: &JsonSpec<'_>) -> Result<JsonScan<'a>, JsonError> {
    let _ = spec;
    Err(JsonError {
        offset: 0,
        kind: JsonErrorKind::Syntax(if body.is_empty() {
            "empty"
        } else {
            "scanner not built yet"
        }),
    })
}

/// The JSON string literal (quotes included) for `s`, escaped per RFC 8259.
pub fn string_literal(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
