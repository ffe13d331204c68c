//! Reading one array of strings inside a body (e.g. Responses `include`) so that a value can be
//! appended to it as a splice: whether the value is already there, and where the array closes.
//! Only the array's own bytes are read, after the one scan of the body located them.

use std::ops::Range;

/// An array whose elements are all strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StringArray {
    /// Whether the wanted value is one of the elements (compared after unescaping).
    pub contains: bool,
    /// The array has no elements.
    pub empty: bool,
    /// Offset in the body of the closing `]`: where an element is appended.
    pub close: usize,
}

/// The bytes at the span are not one array of strings (an element of another type, or no
/// array at all).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotStrings;

impl std::fmt::Display for NotStrings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "not an array of strings")
    }
}

impl std::error::Error for NotStrings {}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while matches!(b.get(i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        i += 1;
    }
    i
}

/// Reads the array at `span` of `body` (a value span a scan reported, so its JSON is already
/// validated): each element must be a string; `wanted` is looked for among them. Anything
/// unexpected is [`NotStrings`], never a guess.
pub fn string_array(body: &[u8], span: Range<usize>, wanted: &str) -> Result<StringArray, NotStrings> {
    let bytes = body.get(span.clone()).ok_or(NotStrings)?;
    let mut i = skip_ws(bytes, 0);
    if bytes.get(i) != Some(&b'[') {
        return Err(NotStrings);
    }
    i = skip_ws(bytes, i + 1);
    let mut out = StringArray {
        contains: false,
        empty: true,
        close: 0,
    };
    let mut scratch = Vec::new();
    if bytes.get(i) != Some(&b']') {
        loop {
            if bytes.get(i) != Some(&b'"') {
                return Err(NotStrings);
            }
            let start = i + 1;
            let mut j = start;
            let mut escaped = false;
            loop {
                match bytes.get(j) {
                    None => return Err(NotStrings),
                    Some(b'"') => break,
                    Some(b'\\') => {
                        escaped = true;
                        j += 2;
                    }
                    Some(_) => j += 1,
                }
            }
            let raw = bytes.get(start..j).ok_or(NotStrings)?;
            let equal = if escaped {
                scratch.clear();
                crate::json::unescape_into(raw, &mut scratch);
                scratch == wanted.as_bytes()
            } else {
                raw == wanted.as_bytes()
            };
            out.contains |= equal;
            out.empty = false;
            i = skip_ws(bytes, j + 1);
            match bytes.get(i) {
                Some(b',') => i = skip_ws(bytes, i + 1),
                Some(b']') => break,
                _ => return Err(NotStrings),
            }
        }
    }
    // `i` is at the closing bracket; only whitespace may follow it in the span.
    if skip_ws(bytes, i + 1) != bytes.len() {
        return Err(NotStrings);
    }
    out.close = span.start + i;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const WANTED: &str = "reasoning.encrypted_content";

    /// The array of `{"include": ARRAY}` as the scan would report its span.
    fn read(array: &str) -> Result<StringArray, NotStrings> {
        let body = format!("{{\"include\":{array}}}");
        let start = "{\"include\":".len();
        string_array(body.as_bytes(), start..start + array.len(), WANTED)
    }

    #[test]
    fn finds_the_close_and_whether_the_value_is_there() {
        let a = read(r#"["file_search_call.results"]"#).unwrap();
        assert_eq!((a.contains, a.empty), (false, false));
        assert_eq!(
            a.close,
            "{\"include\":".len() + r#"["file_search_call.results""#.len()
        );
        let a = read(r#"[ "x" , "reasoning.encrypted_content" ]"#).unwrap();
        assert!(a.contains && !a.empty);
        let a = read("[]").unwrap();
        assert_eq!((a.contains, a.empty), (false, true));
        assert_eq!(a.close, "{\"include\":[".len());
        let a = read("[ \n ]").unwrap();
        assert!(a.empty);
    }

    #[test]
    fn escaped_forms_of_the_value_are_the_value() {
        assert!(read(r#"["reasoning\u002eencrypted_content"]"#).unwrap().contains);
        assert!(
            read(r#"["reasoning.encrypted\u005fcontent","a\"b"]"#)
                .unwrap()
                .contains
        );
        assert!(!read(r#"["reasoning.encrypted_content\n"]"#).unwrap().contains);
        assert!(!read(r#"["a\\", "reasoning"]"#).unwrap().contains);
    }

    #[test]
    fn anything_but_an_array_of_strings_is_refused() {
        for bad in [
            "[1]",
            r#"["a", null]"#,
            r#"["a", ["b"]]"#,
            r#"[{"a":"b"}]"#,
            r#""reasoning.encrypted_content""#,
            "null",
            "{}",
            r#"["a""#,
            r#"["a" "b"]"#,
            r#"["a",]"#,
            r#"["a"] x"#,
            r#"["\"]"#,
        ] {
            assert_eq!(read(bad), Err(NotStrings), "{bad}");
        }
        assert_eq!(string_array(b"[]", 0..3, WANTED), Err(NotStrings));
        assert_eq!(NotStrings.to_string(), "not an array of strings");
    }
}
