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
