//! Stateless reasoning for zero-data-retention projects: a project with
//! `responses_encrypted_reasoning` has the endpoint's value (`reasoning.encrypted_content`)
//! added to the include array of each request whose model is one of the catalog's reasoning
//! models, so that the reasoning comes back encrypted and can be sent again in the next
//! request's input instead of `previous_response_id`.

use super::{field_ref, Acc, IncludeRewrite, Rewrites};
use crate::catalog::{Endpoint, FieldRole, InspectPlan};
use crate::facts::{Facts, FieldValue, IncludeList};
use crate::project::Project;
use crate::rule::Rule;

/// The include edit for this request, or the refusal of an include that cannot be edited.
pub(super) fn include(
    acc: &mut Acc,
    rewrites: &mut Rewrites,
    project: &Project,
    endpoint: &Endpoint,
    plan: &InspectPlan,
    facts: &Facts<'_>,
    model: Option<&str>,
) {
    if !project.encrypted_reasoning {
        return;
    }
    let (Some(spec), Some(i)) = (&endpoint.encrypted_reasoning, plan.field_with(FieldRole::Include)) else {
        return;
    };
    // Only a reasoning model returns reasoning items: OpenAI may refuse the value for another.
    if !model.is_some_and(|m| spec.models.iter().any(|x| x == m)) {
        return;
    }
    let edit = match (field_ref(facts, i), facts.include) {
        (FieldValue::Absent, _) => Some(IncludeRewrite::Insert),
        (FieldValue::Null, _) => Some(IncludeRewrite::ReplaceNull),
        (FieldValue::Array, Some(IncludeList::Strings { has_value: true })) => None,
        (FieldValue::Array, Some(IncludeList::Strings { has_value: false })) => Some(IncludeRewrite::Append),
        _ => {
            acc.deny(Rule::EncryptedReasoning, || {
                (
                    format!(
                        "{} must be an array of strings on {}: project \"{}\" adds \"{}\" to it \
                         (responses_encrypted_reasoning).",
                        spec.field, endpoint.id, project.name, spec.value
                    ),
                    Some(spec.field.clone()),
                )
            });
            return;
        }
    };
    if let Some(edit) = edit {
        rewrites.include = Some(edit);
        acc.rewrite_rules.insert(Rule::EncryptedReasoning);
    }
}

/// For a stateful field the catalog names as replaced by stateless reasoning (e.g.
/// `previous_response_id`), the way to go without stored state; else empty.
pub(super) fn instead(endpoint: &Endpoint, stateful: usize) -> String {
    match &endpoint.encrypted_reasoning {
        Some(spec) if spec.instead_of.contains(&stateful) => format!(
            " Send the earlier turns' output items back in input instead; with a reasoning model, \
             add \"{}\" to {} (a project with responses_encrypted_reasoning = true has it added) so \
             that its reasoning carries over without stored state.",
            spec.value, spec.field
        ),
        _ => String::new(),
    }
}
