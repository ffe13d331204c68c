//! Request target → catalog operation. Fail closed: a path that is not in canonical form,
//! or that matches no operation, is refused rather than guessed at.

use std::collections::HashMap;

use crate::catalog::{Catalog, OpId, Operation};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClassifyError {
    /// The path is not in the one canonical form we accept (why).
    NotCanonical(&'static str),
    /// No operation of the catalog has this method and path.
    Unknown,
}

impl std::fmt::Display for ClassifyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClassifyError::NotCanonical(why) => write!(f, "request path is not canonical: {why}"),
            ClassifyError::Unknown => write!(f, "endpoint is not in the catalog"),
        }
    }
}

impl std::error::Error for ClassifyError {}

/// The bytes a canonical path segment may hold: RFC 3986 unreserved characters plus `:` and
/// `@`, never percent-encoded.
pub(crate) fn is_segment_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b':' | b'@')
}

/// Checks the canonical form; returns the number of segments.
fn canonical(path: &str) -> Result<usize, ClassifyError> {
    let Some(rest) = path.strip_prefix('/') else {
        return Err(ClassifyError::NotCanonical("the path must start with /"));
    };
    let mut count = 0;
    for seg in rest.split('/') {
        count += 1;
        if seg.is_empty() {
            return Err(ClassifyError::NotCanonical(
                "empty path segment (// or a trailing /)",
            ));
        }
        if seg == "." || seg == ".." {
            return Err(ClassifyError::NotCanonical("dot segment (. or ..)"));
        }
        for b in seg.bytes() {
            if !is_segment_byte(b) {
                return Err(ClassifyError::NotCanonical(match b {
                    b'%' => "percent-encoding is not accepted",
                    b';' => "path parameters (;) are not accepted",
                    b'\\' => "backslash in the path",
                    _ => "character outside A-Za-z0-9-._~:@ in the path",
                }));
            }
        }
    }
    Ok(count)
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    Lit(String),
    Param,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Pattern {
    segs: Vec<Seg>,
    method: String,
    op: OpId,
}

impl Pattern {
    fn matches(&self, method: &str, path: &str) -> bool {
        self.method == method
            && self
                .segs
                .iter()
                .zip(path.get(1..).unwrap_or("").split('/'))
                .all(|(s, p)| match s {
                    Seg::Lit(l) => l == p,
                    Seg::Param => true,
                })
    }
}

/// Lookup tables for [`Catalog::classify`], built once from the operations.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Index {
    /// Templates without parameters: path → (method, op).
    literal: HashMap<String, Vec<(String, OpId)>>,
    /// Templates with parameters, by number of segments; within one length, templates with
    /// a literal earlier come first (so `/v1/threads/runs` beats `/v1/threads/{thread_id}`).
    params: Vec<Vec<Pattern>>,
}

impl Index {
    pub(crate) fn build(ops: &[Operation]) -> Index {
        let mut index = Index::default();
        for (id, op) in ops.iter().enumerate() {
            if !op.template.contains('{') {
                index
                    .literal
                    .entry(op.template.clone())
                    .or_default()
                    .push((op.method.clone(), id));
                continue;
            }
            let segs: Vec<Seg> = op
                .template
                .trim_start_matches('/')
                .split('/')
                .map(|s| {
                    if s.starts_with('{') {
                        Seg::Param
                    } else {
                        Seg::Lit(s.to_owned())
                    }
                })
                .collect();
            let n = segs.len();
            if index.params.len() <= n {
                index.params.resize(n + 1, Vec::new());
            }
            if let Some(bucket) = index.params.get_mut(n) {
                bucket.push(Pattern {
                    segs,
                    method: op.method.clone(),
                    op: id,
                });
            }
        }
        for bucket in &mut index.params {
            // Literal (false) sorts before Param (true), segment by segment.
            bucket.sort_by(|a, b| {
                let ka = a.segs.iter().map(|s| matches!(s, Seg::Param));
                let kb = b.segs.iter().map(|s| matches!(s, Seg::Param));
                ka.cmp(kb).then(a.op.cmp(&b.op))
            });
        }
        index
    }
}

impl Catalog {
    /// The operation for `method` and `path` (the path only, without query).
    pub fn classify(&self, method: &str, path: &str) -> Result<OpId, ClassifyError> {
        let n = canonical(path)?;
        if let Some(ops) = self.index.literal.get(path) {
            if let Some((_, id)) = ops.iter().find(|(m, _)| m == method) {
                return Ok(*id);
            }
        }
        self.index
            .params
            .get(n)
            .and_then(|bucket| bucket.iter().find(|p| p.matches(method, path)))
            .map(|p| p.op)
            .ok_or(ClassifyError::Unknown)
    }
}
