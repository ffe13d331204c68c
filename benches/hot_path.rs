//! The request hot path: read the policy fields out of a chat-completion body, decide, and
//! rewrite `store` — against the obvious baseline (`serde_json::Value` round trip).
//!
//! - `proxy_evaluate`: exactly what the proxy runs per request (`proxy::evaluate::inspect` on a
//!   real config snapshot, then the splice applied), allocations included;
//! - `inspect_scan_decide_splice`: the same work with a spec and checks built once (the floor);
//! - `serde_value_roundtrip`: the baseline.
//!
//! `proxy_evaluate/image256KiB` is a 256 KiB body that is mostly one base64 image string.
//!
//! Run: `cargo bench --bench hot_path` (`-- --quick` for a fast look).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use inspect::{scan_json_with, CheckSet, JsonScan, JsonSpec, Other, PathCheck, Splice, Value};
use policy::{Catalog, CheckFacts, Facts, FieldValue, OpId, OtherValue, Project, Retention};
use std::hint::black_box;

const FIELDS: &[&str] = &[
    "model",
    "store",
    "previous_response_id",
    "conversation",
    "background",
    "web_search_options",
];
/// The chat plan's body checks (catalog `body_checks`), checked against the catalog below.
const CHECKS: &[PathCheck<'static>] = &[
    PathCheck {
        path: &["tools", "[]"],
        key: "type",
        values: &["custom", "function"],
    },
    PathCheck {
        path: &["messages", "[]", "content", "[]"],
        key: "type",
        values: &["text", "refusal", "input_audio"],
    },
    PathCheck {
        path: &["messages", "[]", "content", "[]", "file"],
        key: "file_id",
        values: &[],
    },
    PathCheck {
        path: &["messages", "[]"],
        key: "audio",
        values: &[],
    },
];

/// A chat-completion request of about `size` bytes with `"store": true`: a conversation of
/// text messages (with escapes and non-ASCII text), every tenth message an image part.
fn chat_body(size: usize) -> Bytes {
    let mut s = String::from("{\n  \"model\": \"gpt-4o-2024-08-06\",\n  \"store\": true,\n  \"temperature\": 0.7,\n  \"messages\": [\n");
    let mut i = 0;
    let tail = "\n  ],\n  \"max_tokens\": 512\n}\n";
    while s.len() + tail.len() < size {
        if i > 0 {
            s.push_str(",\n");
        }
        if i % 10 == 3 {
            s.push_str(r#"    {"role": "user", "content": [{"type": "text", "text": "What is in this image?"}, {"type": "image_url", "image_url": {"url": "https://example.invalid/cat.png", "detail": "low"}}]}"#);
        } else {
            s.push_str(&format!(
                r#"    {{"role": "{}", "content": "Message {i}. The quick brown fox jumps over the lazy dog; \"quoted\"\nline two, café – naïve 😀. Lorem ipsum dolor sit amet, consectetur adipiscing elit."}}"#,
                if i % 2 == 0 { "user" } else { "assistant" }
            ));
        }
        i += 1;
    }
    s.push_str(tail);
    Bytes::from(s)
}

/// A chat-completion request of about `size` bytes whose bulk is one base64 image (a data
/// URL), as the load script's inspected-body shape sends: one long string run.
fn image_body(size: usize) -> Bytes {
    let head = r#"{"model": "gpt-4o-2024-08-06", "store": true, "messages": [{"role": "user", "content": [{"type": "text", "text": "What is in this image?"}, {"type": "image_url", "image_url": {"url": "data:image/png;base64,"#;
    let tail = r#""}}]}]}"#;
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let n = size.saturating_sub(head.len() + tail.len());
    let mut s = String::with_capacity(size);
    s.push_str(head);
    s.extend((0..n).map(|i| char::from(alphabet[(i * 7 + i / 64) % 64])));
    s.push_str(tail);
    Bytes::from(s)
}

/// The policy side, when the policy crate can give it: catalog, operation, project, and for
/// each field of the operation's plan the index into `FIELDS`.
struct PolicyCtx {
    catalog: Catalog,
    op: OpId,
    project: Project,
    plan_fields: Vec<Option<usize>>,
}

fn policy_ctx() -> Option<PolicyCtx> {
    let catalog = Catalog::builtin().ok()?;
    let op = catalog.classify("POST", "/v1/chat/completions").ok()?;
    let plan = &catalog.operation(op).plan;
    let plan_fields = plan
        .fields
        .iter()
        .map(|f| FIELDS.iter().position(|n| n == f))
        .collect();
    // The facts' checks are the scan's in plan order.
    assert!(plan.markers.is_empty());
    let checks: Vec<(Vec<&str>, &str, Vec<&str>)> = plan
        .checks
        .iter()
        .map(|c| {
            (
                c.path.iter().map(String::as_str).collect(),
                c.key.as_str(),
                c.values.iter().map(String::as_str).collect(),
            )
        })
        .collect();
    let consts: Vec<(Vec<&str>, &str, Vec<&str>)> = CHECKS
        .iter()
        .map(|c| (c.path.to_vec(), c.key, c.values.to_vec()))
        .collect();
    assert_eq!(checks, consts, "chat plan checks changed");
    let project = Project {
        default: true,
        image_inputs: Some(true),
        ..Project::with_defaults("bench", "eu", Retention::Zdr)
    };
    Some(PolicyCtx {
        catalog,
        op,
        project,
        plan_fields,
    })
}

fn field_value<'a>(v: &'a Value<'a>) -> FieldValue<'a> {
    match v {
        Value::Null => FieldValue::Null,
        Value::Bool(b) => FieldValue::Bool(*b),
        Value::Number(_) => FieldValue::Number,
        Value::String(s) => FieldValue::String(s),
        Value::Object => FieldValue::Object,
        Value::Array => FieldValue::Array,
    }
}

/// The chat plan's facts from a scan, decided.
fn decide(ctx: &PolicyCtx, scan: &JsonScan<'_>) -> policy::Decision {
    let mut fields = [FieldValue::Absent; 8];
    for (slot, idx) in fields.iter_mut().zip(&ctx.plan_fields) {
        if let Some(f) = idx.and_then(|i| scan.field(i)) {
            *slot = field_value(&f.value);
        }
    }
    let mut checks = [CheckFacts::default(); 4];
    for (slot, h) in checks.iter_mut().zip(&scan.checks) {
        *slot = CheckFacts {
            seen: h.seen,
            other: h.other.as_ref().map(|o| match o {
                Other::String(s) => OtherValue::String(s),
                Other::NotString => OtherValue::NotString,
            }),
            absent: h.absent,
        };
    }
    let facts = Facts {
        fields: &fields[..ctx.plan_fields.len()],
        markers: &scan.markers_hit,
        checks: &checks[..scan.checks.len()],
        include: None,
    };
    policy::decide(&ctx.catalog, &ctx.project, ctx.op, &facts)
}

/// (a): scan, decide (when available), splice `store` to `false`, apply.
fn inspect_path(body: &Bytes, checks: &CheckSet, ctx: Option<&PolicyCtx>) -> usize {
    let scan = scan_json_with(
        body,
        &JsonSpec {
            fields: FIELDS,
            markers: &[],
        },
        checks,
    )
    .expect("valid body");
    if let Some(ctx) = ctx {
        black_box(decide(ctx, &scan));
    }
    let store = scan.field(1).expect("store present");
    let mut splice = Splice::new();
    splice.replace(store.value_span.clone(), Bytes::from_static(b"false"));
    let out = splice.apply(body).expect("splice applies");
    out.iter().map(Bytes::len).sum()
}

/// A snapshot as `serve` builds it: one ZDR project in `eu` (store rewritten), image inputs
/// approved so that the bench body (which has image parts) is rewritten, not denied.
fn proxy_snapshot() -> (proxy::snapshot::Snapshot, proxy::evaluate::Matched) {
    let toml = "[[projects]]\nname = \"bench\"\nregion = \"eu\"\nretention = \"zdr\"\n\
                default = true\nimage_inputs = true\n";
    let config = proxy::config::Config::from_toml(toml, None).expect("bench config");
    let snap = proxy::snapshot::Snapshot::new(config).expect("bench snapshot");
    let op = snap
        .config
        .catalog
        .classify("POST", "/v1/chat/completions")
        .expect("chat is in the catalog");
    (snap, proxy::evaluate::Matched { project: 0, op })
}

/// (a'): the proxy's own per-request path: `evaluate::inspect`, then the splice applied.
fn proxy_path(body: &Bytes, snap: &proxy::snapshot::Snapshot, m: proxy::evaluate::Matched) -> usize {
    let uri = http::Uri::from_static("/v1/chat/completions");
    let inspected =
        proxy::evaluate::inspect(snap, m, &uri, Some("application/json"), Some(body)).expect("inspectable");
    assert_eq!(inspected.decision.verdict, policy::Verdict::Rewrite);
    let splice = inspected.splice.expect("store is rewritten");
    splice
        .apply(body)
        .expect("splice applies")
        .iter()
        .map(Bytes::len)
        .sum()
}

/// (b): the baseline: DOM parse, modify, re-serialise.
fn serde_path(body: &Bytes) -> usize {
    let mut v: serde_json::Value = serde_json::from_slice(body).expect("valid body");
    let obj = v.as_object_mut().expect("object");
    black_box(obj.get("model"));
    obj.insert("store".into(), serde_json::Value::Bool(false));
    serde_json::to_vec(&v).expect("serialises").len()
}

fn hot_path(c: &mut Criterion) {
    let ctx = policy_ctx();
    if ctx.is_none() {
        eprintln!(
            "policy::Catalog::builtin() or classify failed: benchmarking inspect without policy::decide"
        );
    }
    let checks = CheckSet::new(CHECKS).unwrap();
    if let Some(ctx) = &ctx {
        let body = chat_body(1 << 10);
        let scan = scan_json_with(
            &body,
            &JsonSpec {
                fields: FIELDS,
                markers: &[],
            },
            &checks,
        )
        .unwrap();
        let d = decide(ctx, &scan);
        eprintln!(
            "policy::decide on the bench body: {:?} rewrites {:?}",
            d.verdict, d.rewrites
        );
    }
    let (snap, matched) = proxy_snapshot();
    let mut g = c.benchmark_group("hot_path");
    for (label, size) in [("1KiB", 1usize << 10), ("64KiB", 64 << 10), ("1MiB", 1 << 20)] {
        let body = chat_body(size);
        assert_eq!(inspect_path(&body, &checks, ctx.as_ref()), body.len() + 1);
        assert_eq!(proxy_path(&body, &snap, matched), body.len() + 1);
        assert!(serde_path(&body) > 0);
        g.throughput(Throughput::Bytes(body.len() as u64));
        g.bench_with_input(BenchmarkId::new("proxy_evaluate", label), &body, |b, body| {
            b.iter(|| proxy_path(black_box(body), &snap, matched))
        });
        g.bench_with_input(
            BenchmarkId::new("inspect_scan_decide_splice", label),
            &body,
            |b, body| b.iter(|| inspect_path(black_box(body), &checks, ctx.as_ref())),
        );
        g.bench_with_input(
            BenchmarkId::new("serde_value_roundtrip", label),
            &body,
            |b, body| b.iter(|| serde_path(black_box(body))),
        );
    }
    // One long string (a base64 image): the scan's long-run path.
    let body = image_body(256 << 10);
    assert_eq!(inspect_path(&body, &checks, ctx.as_ref()), body.len() + 1);
    assert_eq!(proxy_path(&body, &snap, matched), body.len() + 1);
    g.throughput(Throughput::Bytes(body.len() as u64));
    g.bench_with_input(
        BenchmarkId::new("proxy_evaluate", "image256KiB"),
        &body,
        |b, body| b.iter(|| proxy_path(black_box(body), &snap, matched)),
    );
    g.finish();
}

criterion_group!(benches, hot_path);
criterion_main!(benches);
