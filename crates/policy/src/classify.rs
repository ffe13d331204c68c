//! Request target → catalog operation. Fail closed: a path that is not in canonical form,
//! or that matches no operation, is refused rather than guessed at.

use crate::catalog::{Catalog, OpId};

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

impl Catalog {
    /// The operation for `method` and `path` (the path only, without query).
    pub fn classify(&self, method: &str, path: &str) -> Result<OpId, ClassifyError> {
        let _ = (method, path);
        Err(ClassifyError::Unknown)
    }
}
