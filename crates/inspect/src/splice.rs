//! Rewrites as byte splices: the outgoing body is a chain of `Bytes` slices of the original
//! plus small inserted literals. Nothing is re-serialised.

use bytes::Bytes;
use std::ops::Range;

/// A set of edits against one original body.
#[derive(Debug, Default, Clone)]
pub struct Splice {
    edits: Vec<(Range<usize>, Bytes)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpliceError {
    /// Two edits touch the same bytes.
    Overlap,
    /// An edit lies outside the body.
    OutOfBounds,
}

impl std::fmt::Display for SpliceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SpliceError::Overlap => write!(f, "overlapping edits"),
            SpliceError::OutOfBounds => write!(f, "edit outside the body"),
        }
    }
}

impl std::error::Error for SpliceError {}

impl Splice {
    pub fn new() -> Self {
        Self::default()
    }
    /// Replaces `range` of the original with `with`.
    pub fn replace(&mut self, range: Range<usize>, with: impl Into<Bytes>) {
        self.edits.push((range, with.into()));
    }
    /// Inserts `what` at offset `at` of the original.
    pub fn insert(&mut self, at: usize, what: impl Into<Bytes>) {
        self.edits.push((at..at, what.into()));
    }
    pub fn is_empty(&self) -> bool {
        self.edits.is_empty()
    }
    /// The outgoing body as slices of `body` and the inserted literals, in order. Empty
    /// slices are omitted.
    pub fn apply(mut self, body: &Bytes) -> Result<Vec<Bytes>, SpliceError> {
        self.edits.sort_by_key(|(r, _)| (r.start, r.end));
        let mut out = Vec::with_capacity(self.edits.len() * 2 + 1);
        let mut pos = 0usize;
        for (range, with) in self.edits {
            if range.start < pos {
                return Err(SpliceError::Overlap);
            }
            if range.end > body.len() || range.start > range.end {
                return Err(SpliceError::OutOfBounds);
            }
            if range.start > pos {
                out.push(body.slice(pos..range.start));
            }
            if !with.is_empty() {
                out.push(with);
            }
            pos = range.end;
        }
        if pos < body.len() {
            out.push(body.slice(pos..));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(body: &'static [u8], s: Splice) -> Result<Vec<u8>, SpliceError> {
        let body = Bytes::from_static(body);
        s.apply(&body).map(|parts| {
            assert!(parts.iter().all(|p| !p.is_empty()), "empty slice in {parts:?}");
            parts.concat()
        })
    }

    #[test]
    fn no_edits_is_the_body() {
        assert_eq!(run(b"abc", Splice::new()).unwrap(), b"abc");
        assert!(Splice::new().is_empty());
        assert_eq!(run(b"", Splice::new()).unwrap(), b"");
        assert_eq!(Splice::new().apply(&Bytes::new()).unwrap().len(), 0);
    }

    #[test]
    fn replace_and_insert() {
        let mut s = Splice::new();
        s.replace(9..13, "false");
        s.insert(1, &b"\"x\":1,"[..]);
        assert!(!s.is_empty());
        assert_eq!(run(br#"{"store":true}"#, s).unwrap(), br#"{"x":1,"store":false}"#);
    }

    #[test]
    fn insert_at_start_and_end_and_into_empty() {
        let mut s = Splice::new();
        s.insert(0, "<");
        s.insert(3, ">");
        assert_eq!(run(b"abc", s).unwrap(), b"<abc>");
        let mut s = Splice::new();
        s.insert(0, "x");
        assert_eq!(run(b"", s).unwrap(), b"x");
        // Two inserts at one offset keep their order.
        let mut s = Splice::new();
        s.insert(1, "1");
        s.insert(1, "2");
        assert_eq!(run(b"ab", s).unwrap(), b"a12b");
    }

    #[test]
    fn delete_and_adjacent_edits() {
        let mut s = Splice::new();
        s.replace(0..1, "");
        s.replace(1..2, "B");
        s.replace(2..3, "");
        assert_eq!(run(b"abc", s).unwrap(), b"B");
    }

    #[test]
    fn overlap_rejected() {
        let mut s = Splice::new();
        s.replace(0..3, "x");
        s.replace(2..4, "y");
        assert_eq!(run(b"abcd", s), Err(SpliceError::Overlap));
        let mut s = Splice::new();
        s.replace(1..3, "x");
        s.insert(2, "y");
        assert_eq!(run(b"abcd", s), Err(SpliceError::Overlap));
    }

    #[test]
    fn out_of_bounds_rejected() {
        let mut s = Splice::new();
        s.replace(2..5, "x");
        assert_eq!(run(b"abcd", s), Err(SpliceError::OutOfBounds));
        let mut s = Splice::new();
        s.insert(5, "x");
        assert_eq!(run(b"abcd", s), Err(SpliceError::OutOfBounds));
        let mut s = Splice::new();
        s.insert(1, "x");
        assert_eq!(run(b"", s), Err(SpliceError::OutOfBounds));
        #[allow(clippy::reversed_empty_ranges)]
        let r = 3..1;
        let mut s = Splice::new();
        s.replace(r, "x");
        assert_eq!(run(b"abcd", s), Err(SpliceError::OutOfBounds));
        assert_eq!(SpliceError::Overlap.to_string(), "overlapping edits");
    }
}
