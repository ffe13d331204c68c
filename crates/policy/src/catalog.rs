//! OpenAI's residency and retention tables as data.
//!
//! The catalog is a JSON document (`config/catalog.json`, embedded as [`Catalog::builtin`])
//! read into raw serde types with `deny_unknown_fields`, then validated into the types below.
//! Nothing about OpenAI's rules lives in code: every list of models, regions and fields
//! comes from the document.

pub mod raw;
mod validate;

/// Index of an operation in [`Catalog::operations`].
pub type OpId = usize;

/// A region users can pin a project to.
#[derive(Debug, Clone, PartialEq)]
pub struct Region {
    /// `global`, `us`, `eu`, …
    pub id: String,
    pub name: String,
    /// API host, e.g. `eu.api.openai.com`.
    pub host: String,
    /// false for `global`: residency checks (endpoint_region, model_not_eligible) don't apply.
    pub residency: bool,
    pub regional_processing: bool,
    /// Using the region needs modified abuse monitoring or ZDR (retention `default` refused).
    pub requires_mam_or_zdr: bool,
    /// Whether image inputs are approved by default (false: needs enhanced ZDR/MAM approval).
    pub image_inputs_default: bool,
    /// Ids of the [`Source`]s this row comes from.
    pub sources: Vec<String>,
}

/// Where an operation's request content is read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodySource {
    /// Nothing to inspect: the body (if any) streams through untouched.
    None,
    /// A JSON object body.
    Json,
    /// A multipart/form-data body.
    Multipart,
    /// The query string (e.g. realtime `?model=`); the body streams through.
    Query,
}

/// What a field in an [`InspectPlan`] means to the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldRole {
    Model,
    Store,
    /// `Endpoint::stateful_fields[i]`.
    Stateful(usize),
    /// A top-level field whose presence means web search (e.g. chat `web_search_options`).
    WebSearch,
    /// The upload purpose, judged by [`Operation::purposes`].
    Purpose,
    /// The array `Endpoint::encrypted_reasoning` adds its value to (Responses `include`).
    Include,
}

/// What a marker in an [`InspectPlan`] means to the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarkerRole {
    ImageInput,
    WebSearch,
}

/// An object member `key` with a string value in `values`, anywhere in the body.
#[derive(Debug, Clone, PartialEq)]
pub struct MarkerSpec {
    pub key: String,
    pub values: Vec<String>,
    pub role: MarkerRole,
}

/// What the proxy must read from a request for this operation.
#[derive(Debug, Clone, PartialEq)]
pub struct InspectPlan {
    pub source: BodySource,
    /// Top-level JSON members, multipart text fields, or query parameters to read.
    pub fields: Vec<String>,
    /// `roles[i]` says what `fields[i]` is.
    pub roles: Vec<FieldRole>,
    /// Markers looked for at any depth (JSON only).
    pub markers: Vec<MarkerSpec>,
    /// Allow-list checks of members inside the body (JSON only); `Facts::checks[i]` answers
    /// `checks[i]`.
    pub checks: Vec<BodyCheck>,
    /// The model OpenAI uses when the request has none (documented defaults only).
    pub model_default: Option<String>,
}

/// The step of a [`BodyCheck`] path that means "every element of an array".
pub const EACH: &str = "[]";

/// "For every object at `path`, its member `key`": judged by allow-lists (see [`CheckKind`]).
#[derive(Debug, Clone, PartialEq)]
pub struct BodyCheck {
    /// The catalog's name for the check, e.g. `responses_tools`.
    pub name: String,
    /// Member names and [`EACH`] from the top-level object.
    pub path: Vec<String>,
    pub key: String,
    /// The values the scan reports by index (at most 64): `Facts` bit `i` is `values[i]`.
    pub values: Vec<String>,
    pub kind: CheckKind,
}

impl BodyCheck {
    /// The path as written in the catalog, e.g. `input[].content[].type`.
    pub fn display(&self) -> String {
        let mut out = String::new();
        for step in &self.path {
            if step == EACH {
                out.push_str(EACH);
            } else {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(step);
            }
        }
        if !out.is_empty() {
            out.push('.');
        }
        out.push_str(&self.key);
        out
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum CheckKind {
    /// `values` are types. Bits of `image_free` are the types known to carry no image, bits of
    /// `stateful` the types that point at stored state; `absent` is the index of the type
    /// OpenAI assumes when the member is missing.
    Types {
        image_free: u64,
        stateful: u64,
        absent: Option<usize>,
    },
    /// `values[i]` is an eligible tool type needing `tools[i]`.
    Tools(Vec<ToolRule>),
    /// Any non-null value points at stored state.
    Stateful,
    /// The member is the request's model (the operation has no top-level model field): the
    /// scan reports it as the check's first other value.
    Model,
    /// The member, when present, is a second model judged on another row's `models` (None:
    /// that row lists none, any model).
    RowModel {
        row: String,
        models: Option<Vec<String>>,
    },
}

/// What an eligible tool needs.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolRule {
    /// Regions where it is offered with residency; None: wherever its endpoint is.
    pub regions: Option<Vec<String>>,
    /// Models it may be used with under residency; None: any eligible model.
    pub models: Option<Vec<String>>,
    pub zdr: bool,
    pub hipaa: bool,
}

impl InspectPlan {
    /// Index in `fields` of the field with `role`, if any.
    pub fn field_with(&self, role: FieldRole) -> Option<usize> {
        self.roles.iter().position(|r| *r == role)
    }
}

/// A stateful field of an endpoint (e.g. `/v1/responses` `previous_response_id`).
#[derive(Debug, Clone, PartialEq)]
pub struct StatefulField {
    pub field: String,
    /// true: only `true` counts (e.g. `background`); false: any non-null value counts.
    pub only_true: bool,
    /// The documented JSON types; a non-null value of another type is refused.
    pub types: Vec<raw::JsonType>,
}

impl StatefulField {
    /// Whether `v` is absent, null or of one of the documented types.
    pub fn admits(&self, v: crate::FieldValue<'_>) -> bool {
        use crate::FieldValue as V;
        use raw::JsonType as T;
        match v {
            V::Absent | V::Null => true,
            V::Bool(_) => self.types.contains(&T::Boolean),
            V::String(_) => self.types.contains(&T::String),
            V::Number => self.types.contains(&T::Number),
            V::Object => self.types.contains(&T::Object),
            V::Array => self.types.contains(&T::Array),
        }
    }
}

/// Reasoning without stored state: `value` added to the array `field` of a request whose
/// model is one of `models`, for a project that opts in.
#[derive(Debug, Clone, PartialEq)]
pub struct EncryptedReasoning {
    pub field: String,
    /// e.g. `reasoning.encrypted_content`.
    pub value: String,
    /// The reasoning models (exact names, after aliases).
    pub models: Vec<String>,
    /// Indexes into the endpoint's `stateful_fields` whose ZDR refusal points to the option.
    pub instead_of: Vec<usize>,
}

/// How an endpoint treats `store`.
#[derive(Debug, Clone, PartialEq)]
pub struct StoreRule {
    pub field: String,
    /// OpenAI's default when the field is absent or null.
    pub default: bool,
    /// Regions where `store: true` is allowed without ZDR (None: all regions).
    pub true_allowed_regions: Option<Vec<String>>,
}

impl Region {
    /// `https://{host}`: where the region's traffic goes unless the config overrides it.
    pub fn base_url(&self) -> String {
        format!("https://{}", self.host)
    }
}

impl Endpoint {
    /// Whether the endpoint is offered with residency in `region` (a region id).
    pub fn offered_in(&self, region: &str) -> bool {
        self.regions.iter().any(|r| r == region)
    }

    /// Whether `model` is an eligible snapshot (true when the endpoint has no model list).
    pub fn model_eligible(&self, model: &str) -> bool {
        self.models.as_ref().is_none_or(|m| m.iter().any(|x| x == model))
    }

    /// The source ids of one of the endpoint's models: its own, else the row's.
    pub fn sources_of_model(&self, model: &str) -> &[String] {
        self.model_sources
            .iter()
            .find(|(m, _)| m == model)
            .map_or(self.sources.as_slice(), |(_, s)| s.as_slice())
    }
}

/// A service of OpenAI's tables (one row of seed 004's tables, e.g. `/v1/chat/completions`).
#[derive(Debug, Clone, PartialEq)]
pub struct Endpoint {
    /// The row's name, e.g. `/v1/chat/completions`.
    pub id: String,
    /// Regions where it is offered with residency.
    pub regions: Vec<String>,
    /// Eligible model snapshots with residency; None: the endpoint takes no model.
    pub models: Option<Vec<String>>,
    /// Whether the endpoint may be used by a ZDR project.
    pub zdr_eligible: bool,
    /// Models allowed under ZDR; None: any eligible model.
    pub zdr_models: Option<Vec<String>>,
    pub store: Option<StoreRule>,
    pub stateful_fields: Vec<StatefulField>,
    /// Requests always carry an image input (images edits/variations).
    pub always_image_input: bool,
    /// Content-free (e.g. `GET /v1/models`): allowed in every region and retention.
    pub content_free: bool,
    /// The batches row: the endpoints (ids) a batch input line may name.
    pub batch_line_endpoints: Option<Vec<String>>,
    /// Stateless reasoning, for projects that opt in (`responses_encrypted_reasoning`).
    pub encrypted_reasoning: Option<EncryptedReasoning>,
    /// Ids of the [`Source`]s this row comes from.
    pub sources: Vec<String>,
    /// Models whose sources differ from the row's, with theirs.
    pub model_sources: Vec<(String, Vec<String>)>,
}

/// One HTTP operation (method + path template) of an endpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct Operation {
    pub method: String,
    /// e.g. `/v1/threads/{thread_id}/runs`. Also the metrics label.
    pub template: String,
    /// Index into [`Catalog::endpoints`].
    pub endpoint: usize,
    /// This operation reads or keeps application state (e.g. `GET /v1/responses/{id}`):
    /// refused under ZDR even when its endpoint is ZDR-eligible.
    pub stateful: bool,
    /// Served as a WebSocket: the only operations a client may ask to upgrade. After the
    /// switch, bytes pass both ways unchecked.
    pub websocket: bool,
    pub plan: InspectPlan,
    /// When the upload can be a batch input file, how to find and read its lines.
    pub batch_input: Option<BatchInput>,
    /// Another row the operation is also offered under.
    pub also_offered_with: Option<AlsoOffered>,
    /// The purposes a `Purpose` field may name.
    pub purposes: Option<Purposes>,
}

/// The operation is also allowed wherever this row allows it (its regions, ZDR eligibility).
#[derive(Debug, Clone, PartialEq)]
pub struct AlsoOffered {
    /// Index into [`Catalog::endpoints`].
    pub endpoint: usize,
    /// Only for an upload with this purpose (read from the streamed upload by the caller, who
    /// asks [`crate::upload_purpose`] once it is known); None: for every request.
    pub purpose: Option<String>,
}

/// The purposes of an operation's `Purpose` field.
#[derive(Debug, Clone, PartialEq)]
pub struct Purposes {
    /// Accepted, exactly; judged on the operation's row.
    pub values: Vec<String>,
    /// Refused whatever the project: (purpose, reason).
    pub refused: Vec<(String, String)>,
}

/// A multipart upload that is a batch input when `purpose_field` is `purpose_value`: each line
/// of the `file_field` part is a JSON object naming a request (`method_field`, `url_field`)
/// whose body (`body_field`) is checked like a request of its own.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchInput {
    pub purpose_field: String,
    pub purpose_value: String,
    /// The purposes accepted, exactly; `purpose_value` is one of them.
    pub purposes: Vec<String>,
    pub file_field: String,
    pub method_field: String,
    pub url_field: String,
    pub body_field: String,
}

/// A source the catalog was built from.
#[derive(Debug, Clone, PartialEq)]
pub struct Source {
    pub id: String,
    pub title: String,
    pub url: String,
    pub date: String,
}

/// The validated catalog.
#[derive(Debug, Clone, PartialEq)]
pub struct Catalog {
    pub edition: String,
    /// When the catalog was compiled (YYYY-MM-DD).
    pub date: String,
    pub sources: Vec<Source>,
    pub regions: Vec<Region>,
    pub endpoints: Vec<Endpoint>,
    pub operations: Vec<Operation>,
    /// Tool and feature rows of Table 2 (Scale Tier, Web Search, …), as data.
    pub features: Vec<Feature>,
    /// Classification tables, built from `operations` by [`Catalog::from_json`].
    pub(crate) index: crate::classify::Index,
}

/// A tool or feature row of Table 2 (not an endpoint of its own).
#[derive(Debug, Clone, PartialEq)]
pub struct Feature {
    pub id: String,
    /// The seed's cell, e.g. `/v1/responses Web Search`.
    pub name: String,
    /// Regions where it is offered with residency.
    pub regions: Vec<String>,
    /// A condition on the regions (e.g. `when used with base64 file uploads`).
    pub condition: Option<String>,
    /// For the "Supported Input Modalities" row.
    pub modalities: Option<Vec<String>>,
    /// false: not covered by a BAA (web search).
    pub hipaa_eligible: bool,
    /// Ids of the [`Source`]s this row comes from.
    pub sources: Vec<String>,
}

/// A catalog document that is not valid, with the place of each problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogError {
    /// e.g. `endpoints[3].regions[1]: unknown region "uk"`.
    pub problems: Vec<String>,
}

impl std::fmt::Display for CatalogError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.problems.join("\n"))
    }
}

impl std::error::Error for CatalogError {}

/// The catalog document embedded in the binary.
pub const BUILTIN_JSON: &str = include_str!("../../../config/catalog.json");

/// The catalog editions embedded in the binary, by name (`[catalog] edition = "..."`). The
/// first is the default.
pub const EDITIONS: &[(&str, &str)] = &[
    ("seed-004", BUILTIN_JSON),
    (
        "openai-2026-12",
        include_str!("../../../config/catalog-2026.json"),
    ),
];

/// The embedded edition with this name, validated.
pub fn edition(name: &str) -> Option<Result<Catalog, CatalogError>> {
    EDITIONS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, json)| Catalog::from_json(json))
}

impl Catalog {
    /// The embedded default catalog.
    pub fn builtin() -> Result<Catalog, CatalogError> {
        Catalog::from_json(BUILTIN_JSON)
    }

    /// Reads and validates a catalog document.
    pub fn from_json(text: &str) -> Result<Catalog, CatalogError> {
        let raw: raw::RawCatalog = serde_json::from_str(text).map_err(|e| CatalogError {
            problems: vec![format!("catalog: {e}")],
        })?;
        Catalog::from_raw(&raw)
    }

    /// Validates a parsed catalog document.
    pub fn from_raw(raw: &raw::RawCatalog) -> Result<Catalog, CatalogError> {
        validate::validate(raw)
    }

    /// The endpoint with this id (e.g. `/v1/chat/completions`).
    pub fn endpoint(&self, id: &str) -> Option<&Endpoint> {
        self.endpoints.iter().find(|e| e.id == id)
    }

    /// The operation with exactly this method and template, e.g. `("POST", "/v1/responses")`.
    pub fn operation_by_template(&self, method: &str, template: &str) -> Option<OpId> {
        self.operations
            .iter()
            .position(|o| o.method == method && o.template == template)
    }

    /// The source the catalog cites by this id.
    pub fn source(&self, id: &str) -> Option<&Source> {
        self.sources.iter().find(|s| s.id == id)
    }

    pub fn region(&self, id: &str) -> Option<&Region> {
        self.regions.iter().find(|r| r.id == id)
    }

    pub fn operation(&self, id: OpId) -> &Operation {
        &self.operations[id]
    }

    pub fn endpoint_of(&self, id: OpId) -> &Endpoint {
        &self.endpoints[self.operations[id].endpoint]
    }
}
