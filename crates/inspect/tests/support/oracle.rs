//! The differential oracle shared by `tests/differential.rs` and the `json_differential` fuzz
//! target: compares `inspect::scan_json` with serde_json on one input.
#![allow(dead_code)]

use inspect::json::{Field, JsonErrorKind, JsonScan};
use inspect::{scan_json, JsonSpec, Marker, Value};
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use std::collections::HashSet;

/// Deserializes anything serde_json's `Value` does, but fails on duplicate keys at any depth.
pub struct Strict;

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Strict;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<Strict, E> {
        Ok(Strict)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Strict, E> {
        Ok(Strict)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Strict, E> {
        Ok(Strict)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Strict, E> {
        Ok(Strict)
    }
    fn visit_str<E>(self, _: &str) -> Result<Strict, E> {
        Ok(Strict)
    }
    fn visit_unit<E>(self) -> Result<Strict, E> {
        Ok(Strict)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Strict, A::Error> {
        while seq.next_element::<Strict>()?.is_some() {}
        Ok(Strict)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Strict, A::Error> {
        let mut seen = HashSet::new();
        while let Some(k) = map.next_key::<String>()? {
            if !seen.insert(k) {
                return Err(de::Error::custom("duplicate key"));
            }
            map.next_value::<Strict>()?;
        }
        Ok(Strict)
    }
}

pub const MARKERS: &[Marker<'static>] = &[
    Marker {
        key: "type",
        values: &["image_url", "input_image"],
    },
    Marker {
        key: "a",
        values: &["", "b", "é"],
    },
    Marker {
        key: "",
        values: &["x"],
    },
];

pub const FIXED_FIELDS: &[&str] = &["model", "store", "a", "b", "", "é", "\u{0}", "\"", "k0"];

fn expected_markers(v: &serde_json::Value, hit: &mut [bool]) {
    let mut stack = vec![v];
    while let Some(v) = stack.pop() {
        match v {
            serde_json::Value::Object(m) => {
                for (k, v) in m {
                    if let serde_json::Value::String(s) = v {
                        for (i, mk) in MARKERS.iter().enumerate() {
                            if mk.key == k && mk.values.contains(&s.as_str()) {
                                hit[i] = true;
                            }
                        }
                    }
                    stack.push(v);
                }
            }
            serde_json::Value::Array(a) => stack.extend(a.iter()),
            _ => {}
        }
    }
}

fn same_value(ours: &Value<'_>, theirs: &serde_json::Value) -> bool {
    match (ours, theirs) {
        (Value::Null, serde_json::Value::Null) => true,
        (Value::Bool(a), serde_json::Value::Bool(b)) => a == b,
        (Value::String(a), serde_json::Value::String(b)) => a == b,
        (Value::Object, serde_json::Value::Object(_)) => true,
        (Value::Array, serde_json::Value::Array(_)) => true,
        (Value::Number(lit), serde_json::Value::Number(n)) => {
            if let Some(u) = n.as_u64() {
                lit.parse::<u64>().ok() == Some(u)
            } else if let Some(i) = n.as_i64() {
                lit.parse::<i64>().ok() == Some(i)
            } else {
                let (Ok(a), Some(b)) = (lit.parse::<f64>(), n.as_f64()) else {
                    return false;
                };
                a == b
                    || (a - b).abs() <= 1e-9 * a.abs().max(b.abs())
                    || (a.abs() < 1e-300 && b.abs() < 1e-300)
            }
        }
        _ => false,
    }
}

fn check_field(body: &[u8], name: &str, f: &Field<'_>, theirs: &serde_json::Value) -> Result<(), String> {
    if !same_value(&f.value, theirs) {
        return Err(format!("field {name:?}: ours {:?}, serde {theirs:?}", f.value));
    }
    let key: String = serde_json::from_slice(&body[f.key_span.clone()])
        .map_err(|e| format!("field {name:?}: key span does not parse: {e}"))?;
    if key != name {
        return Err(format!("field {name:?}: key span holds {key:?}"));
    }
    let v: serde_json::Value = serde_json::from_slice(&body[f.value_span.clone()])
        .map_err(|e| format!("field {name:?}: value span does not parse: {e}"))?;
    if &v != theirs {
        return Err(format!(
            "field {name:?}: value span holds {v:?}, serde {theirs:?}"
        ));
    }
    Ok(())
}

/// `Ok(Some(scan))` when both accept, `Ok(None)` when the outcome agrees otherwise, `Err` on
/// disagreement.
pub fn check(body: &[u8]) -> Result<(), String> {
    let serde = serde_json::from_slice::<serde_json::Value>(body);
    let names: Vec<String> = match &serde {
        Ok(serde_json::Value::Object(m)) => m.keys().cloned().collect(),
        _ => Vec::new(),
    };
    let mut fields: Vec<&str> = FIXED_FIELDS.to_vec();
    fields.extend(
        names
            .iter()
            .map(String::as_str)
            .filter(|n| !FIXED_FIELDS.contains(n)),
    );
    let spec = JsonSpec {
        fields: &fields,
        markers: MARKERS,
    };
    let ours = scan_json(body, &spec);
    match (&serde, ours) {
        (Err(e), Ok(_)) => Err(format!("serde rejects ({e}) but scan_json accepts")),
        (Err(_), Err(_)) => Ok(()),
        (Ok(v), Err(e)) if !v.is_object() => {
            if e.kind == JsonErrorKind::NotAnObject {
                Ok(())
            } else {
                Err(format!(
                    "serde accepts non-object {v:?}; ours: {e} (expected NotAnObject)"
                ))
            }
        }
        (Ok(v), Ok(s)) if !v.is_object() => Err(format!("serde parses non-object {v:?}; we accept {s:?}")),
        (Ok(_), Err(e)) => {
            let dup = serde_json::from_slice::<Strict>(body).is_err();
            match (&e.kind, dup) {
                (JsonErrorKind::DuplicateKey(_), true) => Ok(()),
                _ => Err(format!(
                    "serde accepts object (duplicates: {dup}); ours rejects: {e}"
                )),
            }
        }
        (Ok(v), Ok(s)) => {
            if serde_json::from_slice::<Strict>(body).is_err() {
                return Err("object has duplicate keys but scan_json accepts".into());
            }
            compare_scan(body, v, &fields, &s)
        }
    }
}

fn compare_scan(body: &[u8], v: &serde_json::Value, fields: &[&str], s: &JsonScan<'_>) -> Result<(), String> {
    let Some(obj) = v.as_object() else {
        return Err("not an object".into());
    };
    if s.empty != obj.is_empty() {
        return Err(format!("empty: ours {}, serde {}", s.empty, obj.is_empty()));
    }
    let open = body.iter().position(|b| !b" \t\r\n".contains(b));
    if open.map(|o| o + 1) != Some(s.object_start) {
        return Err(format!(
            "object_start {} but the '{{' is at {open:?}",
            s.object_start
        ));
    }
    for (i, name) in fields.iter().enumerate() {
        match (s.field(i), obj.get(*name)) {
            (None, None) => {}
            (Some(f), Some(theirs)) => check_field(body, name, f, theirs)?,
            (a, b) => return Err(format!("field {name:?}: ours {a:?}, serde {b:?}")),
        }
    }
    let mut last = 0;
    for f in &s.fields {
        if f.key_span.start < last {
            return Err("fields not in body order".into());
        }
        last = f.value_span.end;
    }
    let mut hit = vec![false; MARKERS.len()];
    expected_markers(v, &mut hit);
    if hit != s.markers_hit {
        return Err(format!("markers: ours {:?}, serde {hit:?}", s.markers_hit));
    }
    Ok(())
}
