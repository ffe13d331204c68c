//! Raw document → validated [`Catalog`], collecting every problem with its place.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::raw::{
    RawBodySource, RawCatalog, RawEndpoint, RawFieldRole, RawMarker, RawMarkerRole, RawOperation,
};
use super::{
    AlsoOffered, BodySource, Catalog, CatalogError, CheckKind, Endpoint, Feature, FieldRole, InspectPlan,
    MarkerRole, MarkerSpec, Operation, Purposes, Region, Source, StatefulField, StoreRule,
};

mod checks;

const METHODS: [&str; 5] = ["GET", "POST", "PUT", "PATCH", "DELETE"];

struct Ctx<'a> {
    problems: Vec<String>,
    region_ids: HashSet<&'a str>,
    sets: &'a BTreeMap<String, Vec<String>>,
}

impl Ctx<'_> {
    fn problem(&mut self, place: impl std::fmt::Display, what: impl std::fmt::Display) {
        self.problems.push(format!("{place}: {what}"));
    }

    /// A `regions` list with `@set` references expanded, each entry checked.
    fn regions(&mut self, place: &str, list: &[String]) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for (i, r) in list.iter().enumerate() {
            let here = format!("{place}[{i}]");
            let expanded: Vec<String> = if let Some(set) = r.strip_prefix('@') {
                match self.sets.get(set) {
                    Some(ids) => ids.clone(),
                    None => {
                        let known: Vec<&str> = self.sets.keys().map(String::as_str).collect();
                        self.problem(
                            &here,
                            format!("unknown region set \"{set}\" (known: {})", known.join(", ")),
                        );
                        continue;
                    }
                }
            } else {
                if !self.region_ids.contains(r.as_str()) {
                    self.problem(
                        &here,
                        format!("unknown region \"{r}\"{}", suggest(r, &self.region_ids)),
                    );
                    continue;
                }
                vec![r.clone()]
            };
            for id in expanded {
                if out.contains(&id) {
                    self.problem(&here, format!("region \"{id}\" listed twice"));
                } else {
                    out.push(id);
                }
            }
        }
        out
    }

    fn non_empty(&mut self, place: &str, value: &str) {
        if value.trim().is_empty() {
            self.problem(place, "must not be empty");
        }
    }

    /// A `sources` list: at least one id, each naming a source of the document. Every row
    /// says where it comes from, so a reader can check it against the source.
    fn sources(&mut self, place: &str, list: &[String], known: &HashSet<&str>) {
        if list.is_empty() {
            self.problem(place, "every row needs at least one source (an id of `sources`)");
        }
        for (j, s) in list.iter().enumerate() {
            if !known.contains(s.as_str()) {
                self.problem(format!("{place}[{j}]"), format!("unknown source \"{s}\""));
            }
        }
    }

    fn names(&mut self, place: &str, list: &[String]) {
        let mut seen = HashSet::new();
        for (i, m) in list.iter().enumerate() {
            if m.trim().is_empty() || m.trim() != m {
                self.problem(
                    format!("{place}[{i}]"),
                    format!("\"{m}\" is empty or has surrounding spaces"),
                );
            } else if !seen.insert(m.as_str()) {
                self.problem(format!("{place}[{i}]"), format!("\"{m}\" listed twice"));
            }
        }
    }
}

/// ` (did you mean "gb"?)` for a near miss, else empty.
fn suggest(name: &str, known: &HashSet<&str>) -> String {
    let alias = match name {
        "uk" => Some("gb"),
        "europe" => Some("eu"),
        "usa" => Some("us"),
        "japan" => Some("jp"),
        "korea" => Some("kr"),
        _ => None,
    };
    match alias {
        Some(a) if known.contains(a) => format!(", did you mean \"{a}\"?"),
        _ => String::new(),
    }
}

fn is_date(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 10
        && b.iter().enumerate().all(|(i, c)| {
            if i == 4 || i == 7 {
                *c == b'-'
            } else {
                c.is_ascii_digit()
            }
        })
}

fn is_id(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_' || c == b'-')
}

/// Why a path template is malformed, if it is.
fn template_problem(t: &str) -> Option<String> {
    let Some(rest) = t.strip_prefix("/v1/") else {
        return Some(format!("path \"{t}\" must start with /v1/"));
    };
    let mut params = HashSet::new();
    for seg in rest.split('/') {
        if seg.is_empty() {
            return Some(format!("path \"{t}\" has an empty segment"));
        }
        if let Some(name) = seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            if !is_id(name) {
                return Some(format!(
                    "path \"{t}\": parameter {seg} must be {{lowercase_name}}"
                ));
            }
            if !params.insert(name) {
                return Some(format!("path \"{t}\": parameter {seg} appears twice"));
            }
        } else if seg == "." || seg == ".." || !seg.bytes().all(crate::classify::is_segment_byte) {
            return Some(format!(
                "path \"{t}\": segment \"{seg}\" is not a canonical literal"
            ));
        }
    }
    None
}

pub(super) fn validate(raw: &RawCatalog) -> Result<Catalog, CatalogError> {
    let mut cx = Ctx {
        problems: Vec::new(),
        region_ids: HashSet::new(),
        sets: &raw.region_sets,
    };

    cx.non_empty("edition", &raw.edition);
    if !is_date(&raw.date) {
        cx.problem("date", format!("\"{}\" is not YYYY-MM-DD", raw.date));
    }

    // Sources.
    let mut source_ids = HashSet::new();
    let mut sources = Vec::with_capacity(raw.sources.len());
    for (i, s) in raw.sources.iter().enumerate() {
        let place = format!("sources[{i}]");
        if !is_id(&s.id) {
            cx.problem(
                format!("{place}.id"),
                format!("\"{}\" is not a lowercase id", s.id),
            );
        } else if !source_ids.insert(s.id.as_str()) {
            cx.problem(format!("{place}.id"), format!("duplicate source \"{}\"", s.id));
        }
        cx.non_empty(&format!("{place}.title"), &s.title);
        if !s.url.starts_with("https://") {
            cx.problem(
                format!("{place}.url"),
                format!("\"{}\" is not an https URL", s.url),
            );
        }
        cx.non_empty(&format!("{place}.date"), &s.date);
        sources.push(Source {
            id: s.id.clone(),
            title: s.title.clone(),
            url: s.url.clone(),
            date: s.date.clone(),
        });
    }

    // Regions.
    let mut regions = Vec::with_capacity(raw.regions.len());
    for (i, r) in raw.regions.iter().enumerate() {
        let place = format!("regions[{i}]");
        if !is_id(&r.id) {
            cx.problem(
                format!("{place}.id"),
                format!("\"{}\" is not a lowercase id", r.id),
            );
        } else if !cx.region_ids.insert(r.id.as_str()) {
            cx.problem(format!("{place}.id"), format!("duplicate region \"{}\"", r.id));
        }
        cx.non_empty(&format!("{place}.name"), &r.name);
        let host_ok = !r.host.is_empty()
            && r.host
                .bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'.' || c == b'-');
        if !host_ok {
            cx.problem(
                format!("{place}.host"),
                format!("\"{}\" is not a host name (no scheme, no path)", r.host),
            );
        }
        if !r.residency && (r.regional_storage || r.regional_processing) {
            cx.problem(
                &place,
                "a region without residency cannot have regional storage or processing",
            );
        }
        cx.sources(&format!("{place}.sources"), &r.sources, &source_ids);
        regions.push(Region {
            id: r.id.clone(),
            name: r.name.clone(),
            host: r.host.clone(),
            residency: r.residency,
            regional_processing: r.regional_processing,
            requires_mam_or_zdr: r.requires_mam_or_zdr,
            image_inputs_default: r.image_inputs_default,
            sources: r.sources.clone(),
        });
    }

    // Region sets (only plain region ids inside).
    for (name, ids) in &raw.region_sets {
        let place = format!("region_sets.{name}");
        if !is_id(name) {
            cx.problem(&place, "set names are lowercase ids");
        }
        for (i, id) in ids.iter().enumerate() {
            if id.starts_with('@') {
                cx.problem(
                    format!("{place}[{i}]"),
                    "a region set lists region ids, not other sets",
                );
            }
        }
        let _ = cx.regions(&place, ids);
    }

    // Markers.
    let mut markers: HashMap<&str, MarkerSpec> = HashMap::new();
    for (name, m) in &raw.markers {
        let RawMarker {
            key, values, role, ..
        } = m;
        let place = format!("markers.{name}");
        cx.non_empty(&format!("{place}.key"), key);
        if values.is_empty() {
            cx.problem(format!("{place}.values"), "must list at least one value");
        }
        cx.names(&format!("{place}.values"), values);
        let role = match role {
            RawMarkerRole::ImageInput => MarkerRole::ImageInput,
            RawMarkerRole::WebSearch => MarkerRole::WebSearch,
        };
        markers.insert(
            name.as_str(),
            MarkerSpec {
                key: key.clone(),
                values: values.clone(),
                role,
            },
        );
    }

    // Features.
    let mut features = Vec::with_capacity(raw.features.len());
    let mut feature_ids = HashSet::new();
    for (i, f) in raw.features.iter().enumerate() {
        let place = format!("features[{i}]");
        if !is_id(&f.id) {
            cx.problem(
                format!("{place}.id"),
                format!("\"{}\" is not a lowercase id", f.id),
            );
        } else if !feature_ids.insert(f.id.as_str()) {
            cx.problem(format!("{place}.id"), format!("duplicate feature \"{}\"", f.id));
        }
        cx.non_empty(&format!("{place}.name"), &f.name);
        cx.sources(&format!("{place}.sources"), &f.sources, &source_ids);
        let regions = cx.regions(&format!("{place}.regions"), &f.regions);
        if let Some(m) = &f.modalities {
            cx.names(&format!("{place}.modalities"), m);
        }
        features.push(Feature {
            id: f.id.clone(),
            name: f.name.clone(),
            regions,
            condition: f.condition.clone(),
            modalities: f.modalities.clone(),
            hipaa_eligible: f.hipaa_eligible,
            sources: f.sources.clone(),
        });
    }

    let body_checks = checks::body_checks(&mut cx, &raw.body_checks, &features);

    // Endpoints and their operations.
    let mut endpoints = Vec::with_capacity(raw.endpoints.len());
    let mut operations = Vec::new();
    let mut endpoint_ids = HashSet::new();
    // method + template with parameter names erased → place of first definition.
    let mut shapes: HashMap<(String, String), String> = HashMap::new();
    // Operations with another row: (index, place, raw), resolved once every endpoint is known.
    let mut also_offered = Vec::new();
    for (i, e) in raw.endpoints.iter().enumerate() {
        let place = format!("endpoints[{i}]");
        if !e.id.starts_with("/v1/") || e.id.contains(char::is_whitespace) {
            cx.problem(
                format!("{place}.id"),
                format!("\"{}\" must be a path starting with /v1/", e.id),
            );
        } else if !endpoint_ids.insert(e.id.as_str()) {
            cx.problem(format!("{place}.id"), format!("duplicate endpoint \"{}\"", e.id));
        }
        let endpoint = endpoint_of(&mut cx, &place, e, &source_ids);
        if e.operations.is_empty() {
            cx.problem(
                format!("{place}.operations"),
                "an endpoint needs at least one operation",
            );
        }
        for (j, o) in e.operations.iter().enumerate() {
            let oplace = format!("{place}.operations[{j}]");
            if let Some(op) = operation_of(&mut cx, &oplace, &endpoint, i, o, &markers, &body_checks) {
                let shape = (op.method.clone(), erase_params(&op.template));
                if let Some(first) = shapes.get(&shape) {
                    cx.problem(
                        format!("{oplace}.path"),
                        format!("{} {} is already defined at {first}", op.method, op.template),
                    );
                } else {
                    shapes.insert(shape, oplace.clone());
                }
                if let Some(a) = &o.also_offered_with {
                    also_offered.push((operations.len(), oplace, a));
                }
                operations.push(op);
            }
        }
        endpoints.push(endpoint);
    }

    // Rows named by `also_offered_with`, now that every endpoint is known.
    for (k, place, a) in also_offered {
        match endpoints.iter().position(|e| e.id == a.endpoint) {
            Some(endpoint) => {
                if let Some(op) = operations.get_mut(k) {
                    op.also_offered_with = Some(AlsoOffered {
                        endpoint,
                        purpose: a.purpose.clone(),
                    });
                }
            }
            None => cx.problem(
                format!("{place}.also_offered_with.endpoint"),
                format!("unknown endpoint \"{}\"", a.endpoint),
            ),
        }
    }

    // A model judged on another row takes that row's models, now that every row is known.
    for (k, op) in operations.iter_mut().enumerate() {
        for c in &mut op.plan.checks {
            if let CheckKind::RowModel { row, models } = &mut c.kind {
                match endpoints.iter().find(|e| &e.id == row) {
                    Some(e) => *models = e.models.clone(),
                    None => cx.problem(
                        format!("body_checks.{}.row", c.name),
                        format!("unknown endpoint \"{row}\" (operation {k})"),
                    ),
                }
            }
        }
    }

    if !cx.problems.is_empty() {
        return Err(CatalogError {
            problems: cx.problems,
        });
    }
    let index = crate::classify::Index::build(&operations);
    Ok(Catalog {
        edition: raw.edition.clone(),
        date: raw.date.clone(),
        sources,
        regions,
        endpoints,
        operations,
        features,
        index,
    })
}

fn erase_params(t: &str) -> String {
    t.split('/')
        .map(|s| if s.starts_with('{') { "{}" } else { s })
        .collect::<Vec<_>>()
        .join("/")
}

fn endpoint_of(cx: &mut Ctx<'_>, place: &str, e: &RawEndpoint, source_ids: &HashSet<&str>) -> Endpoint {
    let regions = cx.regions(&format!("{place}.regions"), &e.regions);
    cx.sources(&format!("{place}.sources"), &e.sources, source_ids);
    for (model, ids) in &e.model_sources {
        let mplace = format!("{place}.model_sources.{model}");
        let listed = e.models.iter().flatten().chain(e.zdr_models.iter().flatten());
        if !listed.into_iter().any(|m| m == model) {
            cx.problem(
                &mplace,
                format!("\"{model}\" is not one of the endpoint's models"),
            );
        }
        cx.sources(&mplace, ids, source_ids);
    }
    if let Some(m) = &e.models {
        cx.names(&format!("{place}.models"), m);
    }
    if let Some(m) = &e.zdr_models {
        cx.names(&format!("{place}.zdr_models"), m);
    }
    let store = e.store.as_ref().map(|s| {
        cx.non_empty(&format!("{place}.store.field"), &s.field);
        let allowed = s
            .true_allowed_regions
            .as_ref()
            .map(|r| cx.regions(&format!("{place}.store.true_allowed_regions"), r));
        StoreRule {
            field: s.field.clone(),
            default: s.default,
            true_allowed_regions: allowed,
        }
    });
    let names: Vec<String> = e.stateful_fields.iter().map(|f| f.field.clone()).collect();
    cx.names(&format!("{place}.stateful_fields"), &names);
    for (k, f) in e.stateful_fields.iter().enumerate() {
        if f.types.is_empty() || (f.only_true && !f.types.contains(&super::raw::JsonType::Boolean)) {
            cx.problem(
                format!("{place}.stateful_fields[{k}].types"),
                "must name the field's JSON types (boolean among them when only_true)",
            );
        }
    }
    if e.content_free
        && (e.models.is_some() || e.store.is_some() || !e.stateful_fields.is_empty() || e.always_image_input)
    {
        cx.problem(
            place,
            "a content_free endpoint cannot have models, store, stateful_fields or image input",
        );
    }
    if e.zdr_models.is_some() && !e.zdr_eligible {
        cx.problem(
            format!("{place}.zdr_models"),
            "zdr_models on an endpoint that is not zdr_eligible",
        );
    }
    let encrypted_reasoning = e.encrypted_reasoning.as_ref().map(|r| {
        let rplace = format!("{place}.encrypted_reasoning");
        cx.non_empty(&format!("{rplace}.field"), &r.field);
        cx.non_empty(&format!("{rplace}.value"), &r.value);
        if r.models.is_empty() {
            cx.problem(format!("{rplace}.models"), "must list at least one model");
        }
        cx.names(&format!("{rplace}.models"), &r.models);
        cx.sources(&format!("{rplace}.sources"), &r.sources, source_ids);
        let mut instead_of = Vec::with_capacity(r.instead_of.len());
        for (k, name) in r.instead_of.iter().enumerate() {
            match e.stateful_fields.iter().position(|f| &f.field == name) {
                Some(i) => instead_of.push(i),
                None => cx.problem(
                    format!("{rplace}.instead_of[{k}]"),
                    format!("\"{name}\" is not one of the endpoint's stateful_fields"),
                ),
            }
        }
        super::EncryptedReasoning {
            field: r.field.clone(),
            value: r.value.clone(),
            models: r.models.clone(),
            instead_of,
        }
    });
    Endpoint {
        id: e.id.clone(),
        regions,
        models: e.models.clone(),
        zdr_eligible: e.zdr_eligible,
        zdr_models: e.zdr_models.clone(),
        store,
        stateful_fields: e
            .stateful_fields
            .iter()
            .map(|f| StatefulField {
                field: f.field.clone(),
                only_true: f.only_true,
                types: f.types.clone(),
            })
            .collect(),
        always_image_input: e.always_image_input,
        content_free: e.content_free,
        batch_line_endpoints: e.batch_line_endpoints.clone(),
        encrypted_reasoning,
        sources: e.sources.clone(),
        model_sources: e
            .model_sources
            .iter()
            .map(|(m, s)| (m.clone(), s.clone()))
            .collect(),
    }
}

fn operation_of(
    cx: &mut Ctx<'_>,
    place: &str,
    endpoint: &Endpoint,
    endpoint_index: usize,
    o: &RawOperation,
    markers: &HashMap<&str, MarkerSpec>,
    body_checks: &HashMap<String, super::BodyCheck>,
) -> Option<Operation> {
    let mut ok = true;
    if !METHODS.contains(&o.method.as_str()) {
        cx.problem(
            format!("{place}.method"),
            format!("\"{}\" is not one of {}", o.method, METHODS.join(", ")),
        );
        ok = false;
    }
    if let Some(why) = template_problem(&o.path) {
        cx.problem(format!("{place}.path"), why);
        ok = false;
    }
    let source = match o.source {
        RawBodySource::None => BodySource::None,
        RawBodySource::Json => BodySource::Json,
        RawBodySource::Multipart => BodySource::Multipart,
        RawBodySource::Query => BodySource::Query,
    };
    if endpoint.content_free && (o.method != "GET" || source != BodySource::None) {
        cx.problem(
            place,
            "a content_free endpoint may only have GET operations without a body source",
        );
    }
    if source == BodySource::None && !o.fields.is_empty() {
        cx.problem(
            format!("{place}.fields"),
            "fields need a source (json, multipart or query)",
        );
    }
    let mut fields = Vec::with_capacity(o.fields.len());
    let mut roles = Vec::with_capacity(o.fields.len());
    let mut model_default = None;
    for (k, f) in o.fields.iter().enumerate() {
        let fplace = format!("{place}.fields[{k}]");
        if f.name.is_empty() {
            cx.problem(format!("{fplace}.name"), "must not be empty");
        }
        if fields.contains(&f.name) {
            cx.problem(
                format!("{fplace}.name"),
                format!("field \"{}\" listed twice", f.name),
            );
        }
        let role = match f.role {
            RawFieldRole::Model => FieldRole::Model,
            RawFieldRole::WebSearch => FieldRole::WebSearch,
            RawFieldRole::Purpose => {
                if o.purposes.is_none() {
                    cx.problem(
                        format!("{fplace}.role"),
                        "role purpose needs the operation's purposes",
                    );
                }
                FieldRole::Purpose
            }
            RawFieldRole::Include => {
                match &endpoint.encrypted_reasoning {
                    None => cx.problem(
                        format!("{fplace}.role"),
                        "role include but the endpoint has no encrypted_reasoning",
                    ),
                    Some(r) if r.field != f.name => cx.problem(
                        format!("{fplace}.name"),
                        format!(
                            "the endpoint's encrypted_reasoning field is \"{}\", not \"{}\"",
                            r.field, f.name
                        ),
                    ),
                    Some(_) => {}
                }
                if source != BodySource::Json {
                    cx.problem(
                        format!("{fplace}.role"),
                        "include can only be edited in a json body",
                    );
                }
                FieldRole::Include
            }
            RawFieldRole::Store => {
                match &endpoint.store {
                    None => cx.problem(
                        format!("{fplace}.role"),
                        "role store but the endpoint has no store rule",
                    ),
                    Some(s) if s.field != f.name => cx.problem(
                        format!("{fplace}.name"),
                        format!(
                            "the endpoint's store field is \"{}\", not \"{}\"",
                            s.field, f.name
                        ),
                    ),
                    Some(_) => {}
                }
                if source != BodySource::Json {
                    cx.problem(
                        format!("{fplace}.role"),
                        "store can only be rewritten in a json body",
                    );
                }
                FieldRole::Store
            }
            RawFieldRole::Stateful => match endpoint.stateful_fields.iter().position(|s| s.field == f.name) {
                Some(idx) => FieldRole::Stateful(idx),
                None => {
                    cx.problem(
                        format!("{fplace}.name"),
                        format!("\"{}\" is not one of the endpoint's stateful_fields", f.name),
                    );
                    FieldRole::Stateful(usize::MAX)
                }
            },
        };
        if matches!(
            role,
            FieldRole::Model | FieldRole::Store | FieldRole::Purpose | FieldRole::Include
        ) && roles.contains(&role)
        {
            cx.problem(
                format!("{fplace}.role"),
                "at most one field per operation has this role",
            );
        }
        if f.default.is_some() && role != FieldRole::Model {
            cx.problem(format!("{fplace}.default"), "only the model field has a default");
        }
        if let (FieldRole::Model, Some(d)) = (role, &f.default) {
            cx.non_empty(&format!("{fplace}.default"), d);
            model_default = Some(d.clone());
        }
        fields.push(f.name.clone());
        roles.push(role);
    }
    if !o.markers.is_empty() && source != BodySource::Json {
        cx.problem(
            format!("{place}.markers"),
            "markers are only looked for in json bodies",
        );
    }
    if let Some(b) = &o.batch_input {
        if !b.purposes.contains(&b.purpose_value) {
            cx.problem(
                format!("{place}.batch_input.purposes"),
                format!("must list the purpose_value \"{}\"", b.purpose_value),
            );
        }
    }
    let mut specs = Vec::with_capacity(o.markers.len());
    for (k, name) in o.markers.iter().enumerate() {
        match markers.get(name.as_str()) {
            Some(m) if !specs.contains(m) => specs.push(m.clone()),
            Some(_) => cx.problem(
                format!("{place}.markers[{k}]"),
                format!("marker \"{name}\" listed twice"),
            ),
            None => {
                let mut known: Vec<&str> = markers.keys().copied().collect();
                known.sort_unstable();
                cx.problem(
                    format!("{place}.markers[{k}]"),
                    format!("unknown marker \"{name}\" (known: {})", known.join(", ")),
                );
            }
        }
    }
    let checks = checks::resolve(cx, place, &o.body_checks, body_checks);
    // A multipart form is read for its model only: a model check whose first step is the form
    // field holding a JSON object.
    let form_model_checks_only = checks
        .iter()
        .all(|c| matches!(c.kind, CheckKind::Model | CheckKind::RowModel { .. }) && !c.path.is_empty());
    let readable = match source {
        BodySource::Json => true,
        BodySource::Multipart => form_model_checks_only,
        BodySource::None | BodySource::Query => checks.is_empty(),
    };
    if !readable {
        cx.problem(
            format!("{place}.body_checks"),
            "body checks are only made in json bodies (and a model check in a multipart form field)",
        );
    }
    let model_checks = checks.iter().filter(|c| c.kind == CheckKind::Model).count();
    if model_checks > 1 || model_checks == 1 && roles.contains(&FieldRole::Model) {
        cx.problem(
            format!("{place}.body_checks"),
            "an operation's model is read in one place: one model field or one model check",
        );
    }
    if o.purposes.is_some() && !roles.contains(&FieldRole::Purpose) {
        cx.problem(
            format!("{place}.purposes"),
            "purposes need a field with role purpose",
        );
    }
    let purposes = o.purposes.as_ref().map(|p| {
        cx.names(&format!("{place}.purposes.values"), &p.values);
        if p.values.is_empty() {
            cx.problem(
                format!("{place}.purposes.values"),
                "must list at least one purpose",
            );
        }
        for (k, why) in &p.refused {
            if p.values.contains(k) {
                cx.problem(
                    format!("{place}.purposes.refused.{k}"),
                    "a purpose is either accepted or refused",
                );
            }
            cx.non_empty(&format!("{place}.purposes.refused.{k}"), why);
        }
        Purposes {
            values: p.values.clone(),
            refused: p.refused.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        }
    });
    if let Some(a) = &o.also_offered_with {
        let aplace = format!("{place}.also_offered_with");
        if let Some(p) = &a.purpose {
            if !o.batch_input.as_ref().is_some_and(|b| b.purposes.contains(p)) {
                cx.problem(
                    format!("{aplace}.purpose"),
                    format!("\"{p}\" is not one of the operation's batch_input purposes"),
                );
            }
        }
        if a.endpoint == endpoint.id {
            cx.problem(format!("{aplace}.endpoint"), "names the operation's own row");
        }
    }
    ok.then(|| Operation {
        method: o.method.clone(),
        template: o.path.clone(),
        endpoint: endpoint_index,
        stateful: o.stateful,
        websocket: o.websocket,
        plan: InspectPlan {
            source,
            fields,
            roles,
            markers: specs,
            checks,
            model_default,
        },
        batch_input: o.batch_input.as_ref().map(|b| crate::catalog::BatchInput {
            purpose_field: b.purpose_field.clone(),
            purpose_value: b.purpose_value.clone(),
            purposes: b.purposes.clone(),
            file_field: b.file_field.clone(),
            method_field: b.method_field.clone(),
            url_field: b.url_field.clone(),
            body_field: b.body_field.clone(),
        }),
        // Resolved once every endpoint is known (see `validate`).
        also_offered_with: None,
        purposes,
    })
}
