//! The catalog document as written (`config/catalog.json`): serde types that mirror the JSON
//! one to one, with `deny_unknown_fields` everywhere so a typo is an error, not a silently
//! ignored rule. [`Catalog::from_json`](super::Catalog::from_json) validates these into the
//! types of [`catalog`](super).
//!
//! Besides what the policy enforces, the document keeps the remaining cells of OpenAI's
//! tables (retention columns, Table 1 flags, Table 2 tool rows) so that a test can check the
//! catalog against the source text row by row.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The whole document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCatalog {
    /// A name for this edition of the tables, e.g. `seed-004`.
    pub edition: String,
    /// When the catalog was compiled (YYYY-MM-DD).
    pub date: String,
    /// Free text for people editing the document.
    #[serde(default)]
    pub notes: Vec<String>,
    pub sources: Vec<RawSource>,
    /// Named region lists; `"@name"` in a `regions` list stands for the set.
    #[serde(default)]
    pub region_sets: BTreeMap<String, Vec<String>>,
    pub regions: Vec<RawRegion>,
    /// Named body markers, referenced by name from operations.
    #[serde(default)]
    pub markers: BTreeMap<String, RawMarker>,
    /// Tool and feature rows of Table 2 (not endpoints).
    #[serde(default)]
    pub features: Vec<RawFeature>,
    /// Named allow-lists for what a body may contain (tool types, image-free content types,
    /// members that point at stored state), referenced by name from operations.
    #[serde(default)]
    pub body_checks: BTreeMap<String, RawBodyCheck>,
    pub endpoints: Vec<RawEndpoint>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RawCheckKind {
    /// `key` names a type: `image_free` lists the types known to carry no image, `stateful`
    /// the types that point at stored state. Any other type needs image approval.
    Types,
    /// `key` names a tool type: `tools` lists the eligible ones with what each needs.
    Tools,
    /// Any non-null `key` points at stored state (refused under ZDR).
    Stateful,
    /// `key` at `path` (no `[]`) is the request's model, for operations that carry it nested
    /// (realtime `session.model`). On a multipart operation the path's first step is the form
    /// field whose value is a JSON object. Lists nothing; judged like a top-level model field
    /// (aliases are not applied: the value cannot be rewritten in place).
    Model,
}

/// "For every object at `path`, its member `key` …" (see [`RawCheckKind`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBodyCheck {
    /// Member names from the top-level object joined by `.`, `[]` for every element of an
    /// array, e.g. `input[].content[]`; empty: the top-level object.
    pub path: String,
    pub key: String,
    pub kind: RawCheckKind,
    #[serde(default)]
    pub image_free: Vec<String>,
    #[serde(default)]
    pub stateful: Vec<String>,
    /// The type OpenAI assumes when `key` is absent (documented defaults only, e.g. an input
    /// item without `type` is a `message`); absent and not set: not known to be image-free.
    #[serde(default)]
    pub absent: Option<String>,
    /// For `tools`: the eligible tool types.
    #[serde(default)]
    pub tools: BTreeMap<String, RawTool>,
    /// For `model`: the member is not the request's model but a second one, judged on this
    /// endpoint row's models (e.g. a realtime session's input transcription model on
    /// `/v1/audio/transcriptions`); absent from the body: nothing to judge.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub row: Option<String>,
    #[serde(default)]
    pub notes: Vec<String>,
}

/// An eligible tool type and what it needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTool {
    /// The Table 2 row (a `features` id) it is offered under: its regions and HIPAA cell apply.
    #[serde(default)]
    pub feature: Option<String>,
    /// Regions (`@set` allowed) when there is no feature row; absent: wherever the endpoint is.
    #[serde(default)]
    pub regions: Option<Vec<String>>,
    /// The models it may be used with under residency; absent: any eligible model.
    #[serde(default)]
    pub models: Option<Vec<String>>,
    /// false: refused for zero-data-retention projects.
    #[serde(default = "yes")]
    pub zdr: bool,
    #[serde(default)]
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSource {
    pub id: String,
    pub title: String,
    pub url: String,
    /// Publication or retrieval date (YYYY-MM-DD), or a year.
    pub date: String,
    /// A copy of the source text in the repository, relative to the catalog file.
    #[serde(default)]
    pub file: Option<String>,
    #[serde(default)]
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRegion {
    pub id: String,
    /// As in Table 1 where the region is there (e.g. `Europe (EEA + Switzerland)`).
    pub name: String,
    pub host: String,
    /// false only for `global`.
    pub residency: bool,
    /// Table 1 "Regional storage".
    pub regional_storage: bool,
    /// Table 1 "Regional processing".
    pub regional_processing: bool,
    /// Table 1 "Requires modified abuse monitoring or ZDR".
    pub requires_mam_or_zdr: bool,
    /// Table 1 "Default modes of entry": Image without the `*` footnote.
    pub image_inputs_default: bool,
    /// Table 1 "Default modes of entry", e.g. `["Text", "Audio", "Voice", "Image*"]`.
    #[serde(default)]
    pub default_modes: Vec<String>,
    /// Ids of the sources this row comes from.
    #[serde(default)]
    pub sources: Vec<String>,
    #[serde(default)]
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RawMarkerRole {
    ImageInput,
    WebSearch,
}

/// An object member `key` whose string value is one of `values`, at any depth of a JSON body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMarker {
    pub key: String,
    pub values: Vec<String>,
    pub role: RawMarkerRole,
    #[serde(default)]
    pub notes: Vec<String>,
}

/// A tool or feature row of Table 2.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFeature {
    pub id: String,
    /// The "Supported services" cell, verbatim.
    pub name: String,
    /// Regions where it is offered with residency (`@set` allowed).
    #[serde(default)]
    pub regions: Vec<String>,
    /// A condition attached to the region cell (e.g. `when used with base64 file uploads`).
    #[serde(default)]
    pub condition: Option<String>,
    /// For "Supported Input Modalities": the modalities listed instead of regions.
    #[serde(default)]
    pub modalities: Option<Vec<String>>,
    /// false: not covered by a BAA (a `hipaa = true` project refuses it).
    #[serde(default = "yes")]
    pub hipaa_eligible: bool,
    /// Ids of the sources this row comes from.
    #[serde(default)]
    pub sources: Vec<String>,
    #[serde(default)]
    pub notes: Vec<String>,
}

fn yes() -> bool {
    true
}

/// The seed's ZDR/retention table columns for one endpoint, verbatim.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRetention {
    /// "Data used for training".
    pub training: String,
    /// "Abuse monitoring retention".
    pub abuse_monitoring: String,
    /// "Application state retention".
    pub application_state: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStoreRule {
    pub field: String,
    pub default: bool,
    /// Regions where `true` is allowed without ZDR; absent: every region.
    #[serde(default)]
    pub true_allowed_regions: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStatefulField {
    pub field: String,
    /// true: only the value `true` counts (e.g. `background`).
    #[serde(default)]
    pub only_true: bool,
    /// The JSON types OpenAI documents for the field; any other (`"background": "true"`) is
    /// refused, since a lenient reader could take it for the flag.
    pub types: Vec<JsonType>,
}

impl JsonType {
    pub fn as_str(self) -> &'static str {
        match self {
            JsonType::Boolean => "boolean",
            JsonType::String => "string",
            JsonType::Number => "number",
            JsonType::Object => "object",
            JsonType::Array => "array",
        }
    }
}

/// A JSON value type, as the API reference names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JsonType {
    Boolean,
    String,
    Number,
    Object,
    Array,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEndpoint {
    /// The row name without any `(beta)`, e.g. `/v1/realtime`.
    pub id: String,
    /// The row is marked `(beta)` in the seed.
    #[serde(default)]
    pub beta: bool,
    /// Table 2 "Supported region" (`@set` allowed); empty: no residency region.
    #[serde(default)]
    pub regions: Vec<String>,
    /// Table 2 "Supported model snapshots" in the seed's order; absent: no model list.
    #[serde(default)]
    pub models: Option<Vec<String>>,
    /// The ZDR table's retention columns; absent for endpoints not in that table.
    #[serde(default)]
    pub retention: Option<RawRetention>,
    pub zdr_eligible: bool,
    /// The rest of the ZDR eligibility cell after "Yes"/"No", e.g. `see below for limitations`.
    #[serde(default)]
    pub zdr_note: Option<String>,
    /// Models allowed under ZDR; absent: any.
    #[serde(default)]
    pub zdr_models: Option<Vec<String>>,
    #[serde(default)]
    pub store: Option<RawStoreRule>,
    #[serde(default)]
    pub stateful_fields: Vec<RawStatefulField>,
    #[serde(default)]
    pub always_image_input: bool,
    #[serde(default)]
    pub content_free: bool,
    /// On the batches row: the endpoints a batch input line may name (OpenAI's batchable
    /// endpoints). A line meets both its own endpoint's row and this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_line_endpoints: Option<Vec<String>>,
    /// Stateless reasoning: the value a project with `responses_encrypted_reasoning` adds to
    /// a request's include list when its model is a reasoning model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encrypted_reasoning: Option<RawEncryptedReasoning>,
    /// Ids of the sources this row comes from (required: every row says where it is from).
    #[serde(default)]
    pub sources: Vec<String>,
    /// Per-model sources where a snapshot comes from another source than the row (e.g. a
    /// model page); a model not listed here comes from the row's `sources`.
    #[serde(default)]
    pub model_sources: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    pub notes: Vec<String>,
    pub operations: Vec<RawOperation>,
}

/// Reasoning without stored state (e.g. `/v1/responses`: `include:
/// ["reasoning.encrypted_content"]` returns the reasoning encrypted, to be sent back in the
/// next request's input instead of `previous_response_id`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEncryptedReasoning {
    /// The top-level array member the value is added to (an operation field with role
    /// `include`).
    pub field: String,
    pub value: String,
    /// The models that return reasoning items (exact names); any other model gets no edit,
    /// since OpenAI may refuse the value for a model without reasoning.
    pub models: Vec<String>,
    /// Stateful fields (of the same endpoint) whose ZDR refusal points to this option.
    #[serde(default)]
    pub instead_of: Vec<String>,
    /// Ids of the sources the list comes from.
    pub sources: Vec<String>,
    #[serde(default)]
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RawBodySource {
    None,
    Json,
    Multipart,
    Query,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RawFieldRole {
    Model,
    Store,
    /// One of the endpoint's `stateful_fields` (by `name`).
    Stateful,
    WebSearch,
    /// The upload purpose, judged by the operation's `purposes` (e.g. `POST /v1/uploads`).
    Purpose,
    /// The array the endpoint's `encrypted_reasoning` value is added to.
    Include,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawField {
    pub name: String,
    pub role: RawFieldRole,
    /// For the model: the value OpenAI documents it uses when the field is absent (e.g.
    /// `/v1/moderations` → `omni-moderation-latest`). Only where OpenAI documents one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOperation {
    pub method: String,
    /// Path template with the `/v1` prefix; `{name}` is one path segment.
    pub path: String,
    #[serde(default)]
    pub stateful: bool,
    /// Served as a WebSocket (`Upgrade: websocket`, e.g. `GET /v1/realtime`).
    #[serde(default)]
    pub websocket: bool,
    #[serde(default = "no_source")]
    pub source: RawBodySource,
    #[serde(default)]
    pub fields: Vec<RawField>,
    /// Names of `markers`.
    #[serde(default)]
    pub markers: Vec<String>,
    /// Names of `body_checks`.
    #[serde(default)]
    pub body_checks: Vec<String>,
    /// An upload that can be a batch input file whose lines are requests (e.g. `POST /v1/files`
    /// with `purpose=batch`).
    pub batch_input: Option<RawBatchInput>,
    /// Another row the operation is also offered under: allowed wherever its own row or this
    /// one allows it (e.g. a batch's file reads wherever `/v1/batches` is offered).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub also_offered_with: Option<RawAlsoOffered>,
    /// For an operation with a `purpose` field: the purposes accepted, and those refused with
    /// their reason (e.g. `POST /v1/uploads` with `batch`). Any other value is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purposes: Option<RawPurposes>,
    #[serde(default)]
    pub notes: Vec<String>,
}

/// See [`RawOperation::also_offered_with`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAlsoOffered {
    /// The endpoint row (an `endpoints[].id`) whose regions and ZDR eligibility also admit it.
    pub endpoint: String,
    /// Only for an upload with this purpose (one of its `batch_input.purposes`): the other
    /// purposes keep the operation's own row.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purpose: Option<String>,
    #[serde(default)]
    pub notes: Vec<String>,
}

/// See [`RawOperation::purposes`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPurposes {
    /// The purposes accepted (judged on the operation's row), exactly.
    pub values: Vec<String>,
    /// Purposes refused whatever the project, with the reason given to the client.
    #[serde(default)]
    pub refused: BTreeMap<String, String>,
    #[serde(default)]
    pub notes: Vec<String>,
}

/// Which multipart parts of an upload make it a batch input, and which part holds the lines.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawBatchInput {
    pub purpose_field: String,
    pub purpose_value: String,
    /// Every purpose the upload may name, exactly (case and spaces included); any other value
    /// is refused, so `Batch` or ` batch` cannot skip the batch check.
    pub purposes: Vec<String>,
    pub file_field: String,
    /// Where each line names its request: the method, the path and the body's members.
    pub method_field: String,
    pub url_field: String,
    pub body_field: String,
}

fn no_source() -> RawBodySource {
    RawBodySource::None
}
