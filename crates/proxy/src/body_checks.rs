//! The catalog's JSON body checks, compiled for the scanner once per snapshot rather than on
//! every request: the per-request cost of a check is then a few mask operations per member.

use inspect::{CheckSet, PathCheck, TooManyPositions};
use policy::{BodySource, Catalog};

/// An operation's checks do not fit the scanner (catalog validation refuses such catalogs, so
/// this names a catalog the validation let through).
#[derive(Debug, thiserror::Error)]
#[error("the body checks of {method} {template}: {source}")]
pub struct CompileError {
    method: String,
    template: String,
    source: TooManyPositions,
}

/// Each operation's compiled checks, indexed by [`policy::OpId`]; empty for operations whose
/// body is not scanned as one JSON object (multipart forms compile theirs per form field).
pub fn compile(catalog: &Catalog) -> Result<Vec<CheckSet>, CompileError> {
    catalog
        .operations
        .iter()
        .map(|op| {
            let plan = &op.plan;
            if plan.source != BodySource::Json {
                return Ok(CheckSet::default());
            }
            let paths: Vec<Vec<&str>> = plan
                .checks
                .iter()
                .map(|c| c.path.iter().map(String::as_str).collect())
                .collect();
            let values: Vec<Vec<&str>> = plan
                .checks
                .iter()
                .map(|c| c.values.iter().map(String::as_str).collect())
                .collect();
            let checks: Vec<PathCheck<'_>> = plan
                .checks
                .iter()
                .zip(paths.iter().zip(&values))
                .map(|(c, (path, values))| PathCheck {
                    path,
                    key: &c.key,
                    values,
                })
                .collect();
            CheckSet::new(&checks).map_err(|source| CompileError {
                method: op.method.clone(),
                template: op.template.clone(),
                source,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_json_operation_of_both_editions_compiles_with_its_checks() {
        for (name, _) in policy::catalog::EDITIONS {
            let catalog = policy::catalog::edition(name).unwrap().unwrap();
            let sets = compile(&catalog).unwrap();
            assert_eq!(sets.len(), catalog.operations.len());
            for (op, set) in catalog.operations.iter().zip(&sets) {
                let expected = if op.plan.source == BodySource::Json {
                    op.plan.checks.len()
                } else {
                    0
                };
                assert_eq!(set.len(), expected, "{} {}", op.method, op.template);
            }
        }
    }
}
