//! Strict query-string reading (application/x-www-form-urlencoded as WHATWG URL parses it).

use std::borrow::Cow;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueryError {
    /// The parameter appears more than once.
    Duplicate(String),
    /// Percent-decoding yields invalid UTF-8 or a malformed escape.
    BadEncoding(String),
}

impl std::fmt::Display for QueryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            QueryError::Duplicate(n) => write!(f, "query parameter {n:?} appears more than once"),
            QueryError::BadEncoding(n) => {
                write!(f, "query parameter {n:?} is not valid percent-encoded UTF-8")
            }
        }
    }
}

impl std::error::Error for QueryError {}

/// The decoded value of `name` in `query` (without the leading `?`). Names are compared after
/// decoding, so `mod%65l=x` is `model`; a parameter given twice is an error.
pub fn query_param<'a>(query: &'a str, name: &str) -> Result<Option<Cow<'a, str>>, QueryError> {
    let _ = (query, name);
    Ok(None)
}
