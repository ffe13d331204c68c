//! Strict query-string reading (application/x-www-form-urlencoded as WHATWG URL parses it).

use std::borrow::Cow;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueryError {
    /// The parameter appears more than once.
    Duplicate(String),
    /// Percent-decoding yields invalid UTF-8 or a malformed escape.
    BadEncoding(String),
    /// A raw `;`: some servers split parameters on it too, and would see other pairs.
    Separator,
    /// A name that differs from the parameter only by case or brackets (`Model`, `model[]`):
    /// case-insensitive or PHP/Rails-style parsers read it as the parameter.
    Lookalike(String),
}

impl std::fmt::Display for QueryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            QueryError::Duplicate(n) => write!(f, "query parameter {n:?} appears more than once"),
            QueryError::BadEncoding(n) => {
                write!(f, "query parameter {n:?} is not valid percent-encoded UTF-8")
            }
            QueryError::Lookalike(n) => {
                write!(f, "a query parameter differs from {n:?} only by case or brackets")
            }
            QueryError::Separator => write!(
                f,
                "the query contains a raw ';' (a parameter separator to some servers)"
            ),
        }
    }
}

impl std::error::Error for QueryError {}

/// The decoded value of `name` in `query` (without the leading `?`). Names are compared after
/// decoding, so `mod%65l=x` is `model`; a parameter given twice is an error.
///
/// Pairs are split on `&` and at their first `=`; `+` decodes to a space. A malformed `%`
/// escape or invalid UTF-8 in any name (it could decode to `name`) or in the value of `name`
/// is [`QueryError::BadEncoding`]. The value is borrowed when it needs no decoding.
pub fn query_param<'a>(query: &'a str, name: &str) -> Result<Option<Cow<'a, str>>, QueryError> {
    // `a=1;model=x&model=y` is one `model` here and two to a server that splits on `;` as well.
    if query.contains(';') {
        return Err(QueryError::Separator);
    }
    let mut found: Option<&'a str> = None;
    for pair in query.split('&') {
        if pair.is_empty() {
            continue;
        }
        let (raw_name, raw_value) = match pair.find('=') {
            Some(p) => (&pair[..p], &pair[p + 1..]),
            None => (pair, ""),
        };
        let decoded = decode(raw_name).ok_or_else(|| QueryError::BadEncoding(raw_name.to_owned()))?;
        if decoded != name {
            if lookalike(&decoded, name) {
                return Err(QueryError::Lookalike(name.to_owned()));
            }
            continue;
        }
        if found.is_some() {
            return Err(QueryError::Duplicate(name.to_owned()));
        }
        found = Some(raw_value);
    }
    match found {
        None => Ok(None),
        Some(raw) => decode(raw)
            .map(Some)
            .ok_or_else(|| QueryError::BadEncoding(name.to_owned())),
    }
}

/// `decoded` is `name` to a parser that ignores case, spaces around names or a bracket suffix
/// (`name[]`, `name[0]`, `name[x][y]`).
fn lookalike(decoded: &str, name: &str) -> bool {
    let base = decoded.split_once('[').map_or(decoded, |(b, _)| b);
    base.trim().eq_ignore_ascii_case(name)
}

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Percent-decodes `s` (`+` is a space); `None` on a malformed escape or invalid UTF-8.
fn decode(s: &str) -> Option<Cow<'_, str>> {
    if !s.bytes().any(|c| c == b'%' || c == b'+') {
        return Some(Cow::Borrowed(s));
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        match c {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' => {
                let hi = hex(*b.get(i + 1)?)?;
                let lo = hex(*b.get(i + 2)?)?;
                out.push(hi << 4 | lo);
                i += 3;
            }
            _ => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok().map(Cow::Owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_and_borrowed() {
        assert_eq!(query_param("", "a"), Ok(None));
        assert_eq!(query_param("b=1&c", "a"), Ok(None));
        let v = query_param("a=xyz&b=2", "a").unwrap();
        assert!(matches!(v, Some(Cow::Borrowed("xyz"))));
        assert_eq!(query_param("b=2&&a=&c", "a"), Ok(Some(Cow::Borrowed(""))));
        assert_eq!(query_param("a", "a"), Ok(Some(Cow::Borrowed(""))));
        assert_eq!(query_param("a=1=2", "a"), Ok(Some(Cow::Borrowed("1=2"))));
    }

    #[test]
    fn decoding() {
        assert_eq!(
            query_param("a=x+y%20z%C3%A9", "a"),
            Ok(Some(Cow::Owned("x y zé".into())))
        );
        assert_eq!(
            query_param("mod%65l=gpt&x=1", "model"),
            Ok(Some(Cow::Borrowed("gpt")))
        );
        assert_eq!(query_param("my+key=1", "my key"), Ok(Some(Cow::Borrowed("1"))));
        assert_eq!(query_param("a=%2B", "a"), Ok(Some(Cow::Owned("+".into()))));
        assert_eq!(query_param("a%3D=1", "a="), Ok(Some(Cow::Borrowed("1"))));
    }

    #[test]
    fn duplicates() {
        assert_eq!(
            query_param("a=1&a=2", "a"),
            Err(QueryError::Duplicate("a".into()))
        );
        assert_eq!(
            query_param("a=1&%61=1", "a"),
            Err(QueryError::Duplicate("a".into()))
        );
        assert_eq!(query_param("a&a", "a"), Err(QueryError::Duplicate("a".into())));
        assert_eq!(query_param("b=1&b=2&a=3", "a"), Ok(Some(Cow::Borrowed("3"))));
    }

    #[test]
    fn lookalike_names_are_refused() {
        // Issue 10: `Model=` to a case-insensitive reader, `model[]=` to PHP/Rails/qs.
        for q in [
            "model=a&Model=b",
            "MODEL=b",
            "model[]=b",
            "model%5B%5D=b",
            "model[0]=b&model=a",
            "model[x][y]=b",
            "%4Dodel=b",
            "model+=b",
        ] {
            assert_eq!(
                query_param(q, "model"),
                Err(QueryError::Lookalike("model".into())),
                "{q}"
            );
        }
        assert_eq!(
            query_param("models=b&model=a", "model"),
            Ok(Some(Cow::Borrowed("a")))
        );
        assert_eq!(query_param("xmodel=b", "model"), Ok(None));
    }

    #[test]
    fn semicolons_are_refused() {
        // Issue 6: split on `&` alone this has one model; split on `;` too, it has two.
        assert_eq!(
            query_param("x=1;model=gpt-4&model=m", "model"),
            Err(QueryError::Separator)
        );
        assert_eq!(query_param("model=m;x", "model"), Err(QueryError::Separator));
        assert_eq!(
            query_param("model=m%3Bx", "model"),
            Ok(Some(Cow::Owned("m;x".into())))
        );
    }

    #[test]
    fn bad_encoding() {
        let bad = |q, n| matches!(query_param(q, n), Err(QueryError::BadEncoding(_)));
        assert!(bad("a=%", "a"));
        assert!(bad("a=%4", "a"));
        assert!(bad("a=%zz", "a"));
        assert!(bad("a=%ff", "a"));
        assert!(bad("a=%C3", "a"));
        // Any name that cannot be decoded might have been the requested one.
        assert!(bad("%zz=1&a=2", "a"));
        assert!(bad("%ff=1", "a"));
        // Other parameters' values are not our business.
        assert_eq!(query_param("b=%zz&a=2", "a"), Ok(Some(Cow::Borrowed("2"))));
        assert_eq!(
            query_param("a=%ff", "a").unwrap_err().to_string(),
            "query parameter \"a\" is not valid percent-encoded UTF-8"
        );
    }
}
