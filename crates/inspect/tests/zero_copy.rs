//! Scanning a body and rewriting it allocates O(fields), not O(body): a counting global
//! allocator measures scan + splice + apply on 64 KiB and 1 MiB chat requests.
//! Run with `--nocapture` to see the figures.
#![allow(unsafe_code)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use bytes::Bytes;
use inspect::{scan_json, JsonSpec, Marker, Splice, Value};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

struct Counting;

// Per thread: the tests of this file run in parallel, and a shared counter reset by one
// would count the other's allocations.
thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCS: Counter = const { Counter(Cell::new(0)) };
    static BYTES: Counter = const { Counter(Cell::new(0)) };
}

/// A per-thread counter with the two calls the tests use.
struct Counter(Cell<usize>);

impl Counter {
    fn store(&self, v: usize) {
        self.0.set(v);
    }
    fn load(&self) -> usize {
        self.0.get()
    }
}

fn note(size: usize) {
    if COUNTING.with(Cell::get) {
        ALLOCS.with(|a| a.0.set(a.0.get() + 1));
        BYTES.with(|b| b.0.set(b.0.get() + size));
    }
}

// SAFETY: defers every operation to `System`; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const FIELDS: &[&str] = &[
    "model",
    "store",
    "previous_response_id",
    "conversation",
    "background",
    "web_search_options",
];
const MARKERS: &[Marker<'static>] = &[
    Marker {
        key: "type",
        values: &["image_url", "input_image"],
    },
    Marker {
        key: "type",
        values: &["web_search", "web_search_preview"],
    },
];

/// A chat-completion request of about `size` bytes: many messages, some with image parts.
fn chat_body(size: usize) -> Bytes {
    let mut s = String::from(r#"{"model":"gpt-4o-2024-08-06","store":true,"temperature":0.7,"messages":["#);
    let mut i = 0;
    while s.len() < size {
        if i > 0 {
            s.push(',');
        }
        if i % 10 == 3 {
            s.push_str(r#"{"role":"user","content":[{"type":"text","text":"what is this?"},{"type":"image_url","image_url":{"url":"https://example.invalid/i.png","detail":"low"}}]}"#);
        } else {
            s.push_str(&format!(
                r#"{{"role":"{}","content":"Message {i}: the quick brown fox jumps over the lazy dog, \"quoted\" and caf\u00e9 – naïve 😀"}}"#,
                if i % 2 == 0 { "user" } else { "assistant" }
            ));
        }
        i += 1;
    }
    s.push_str(r#"],"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object","properties":{}}}}]}"#);
    Bytes::from(s)
}

struct Figures {
    allocs: usize,
    bytes: usize,
    parts: usize,
}

fn measure(body: &Bytes) -> Figures {
    ALLOCS.with(|a| a.store(0));
    BYTES.with(|b| b.store(0));
    COUNTING.with(|c| c.set(true));
    let scan = scan_json(
        body,
        &JsonSpec {
            fields: FIELDS,
            markers: MARKERS,
        },
    );
    let out = scan.as_ref().ok().and_then(|scan| {
        let store = scan.field(1)?;
        let mut splice = Splice::new();
        splice.replace(store.value_span.clone(), Bytes::from_static(b"false"));
        splice.apply(body).ok()
    });
    COUNTING.with(|c| c.set(false));
    let scan = scan.expect("scan");
    assert_eq!(
        scan.field(0).map(|f| f.value.clone()),
        Some(Value::String("gpt-4o-2024-08-06".into()))
    );
    assert_eq!(scan.field(1).map(|f| f.value.clone()), Some(Value::Bool(true)));
    assert_eq!(scan.markers_hit, vec![true, false]);
    let out = out.expect("splice");
    let joined = out.concat();
    let v: serde_json::Value = serde_json::from_slice(&joined).expect("rewritten body parses");
    assert_eq!(v["store"], serde_json::Value::Bool(false));
    // The outgoing chunks are slices of the original: same memory, no copy.
    let base = body.as_ptr() as usize;
    for chunk in &out {
        let p = chunk.as_ptr() as usize;
        assert!(chunk.as_ref() == b"false" || (p >= base && p + chunk.len() <= base + body.len()));
    }
    Figures {
        allocs: ALLOCS.with(|a| a.load()),
        bytes: BYTES.with(|b| b.load()),
        parts: out.len(),
    }
}

#[test]
fn scan_and_rewrite_allocate_o_fields() {
    let mut seen = Vec::new();
    for size in [1 << 10, 64 << 10, 1 << 20] {
        let body = chat_body(size);
        let f = measure(&body);
        println!(
            "zero-copy: body {:>8} bytes: {} allocations, {} bytes allocated, {} outgoing chunks",
            body.len(),
            f.allocs,
            f.bytes,
            f.parts
        );
        assert!(f.allocs <= 32, "{} allocations", f.allocs);
        assert!(f.bytes <= 16 << 10, "{} bytes allocated", f.bytes);
        assert_eq!(f.parts, 3);
        seen.push((f.allocs, f.bytes));
    }
    // Independent of body size.
    assert_eq!(seen[1], seen[2], "64 KiB vs 1 MiB");
}

/// A requested field whose value is a large array or object (`messages`, `input`) is reported
/// as one span: its escaped strings are not unescaped into owned values one by one.
#[test]
fn requested_containers_are_not_decoded() {
    let mut counts = Vec::new();
    for n in [100, 2000] {
        let mut s = String::from(r#"{"model":"m","input":["#);
        for i in 0..n {
            if i > 0 {
                s.push(',');
            }
            s.push_str(&format!(
                r#"{{"type":"input_text","text":"line {i}\nwith \"escapes\" \u00e9"}}"#
            ));
        }
        s.push_str(r#"],"store":true}"#);
        let spec = JsonSpec {
            fields: &["model", "input", "store"],
            markers: MARKERS,
        };
        // The scanner keeps its container stack and key list per thread between scans: a
        // first scan on this thread takes them (two allocations counted once), so warm up.
        let _ = scan_json(br#"{"model":"m"}"#, &spec);
        ALLOCS.with(|a| a.store(0));
        COUNTING.with(|c| c.set(true));
        let scan = scan_json(s.as_bytes(), &spec);
        COUNTING.with(|c| c.set(false));
        let allocs = ALLOCS.with(|a| a.load());
        let scan = scan.expect("scan");
        assert_eq!(scan.field(1).map(|f| f.value.clone()), Some(Value::Array));
        assert!(allocs <= 32, "{n} strings: {allocs} allocations");
        counts.push(allocs);
    }
    assert_eq!(counts[0], counts[1], "allocations grow with the array");
}

/// The container stack and key list are kept per thread: once a thread has scanned, a body
/// of nested containers (no field requested, no string to decode) allocates nothing.
#[test]
fn a_second_scan_on_a_thread_reuses_the_scan_buffers() {
    let spec = JsonSpec {
        fields: &[],
        markers: &[],
    };
    let body = br#"{"a":{"b":[1,{"c":[true,null]}],"d":2},"e":[[],{}]}"#;
    scan_json(body, &spec).expect("scan");
    ALLOCS.with(|a| a.store(0));
    COUNTING.with(|c| c.set(true));
    let scan = scan_json(body, &spec);
    COUNTING.with(|c| c.set(false));
    scan.expect("scan");
    assert_eq!(ALLOCS.with(|a| a.load()), 0);
}

/// A key list that grew past 1,024 entries is freed, not kept for the thread's next scan;
/// one that reached exactly 1,024 is kept.
#[test]
fn only_scan_buffers_up_to_their_limit_are_kept() {
    let spec = JsonSpec {
        fields: &[],
        markers: &[],
    };
    let small = br#"{"a":[{"b":1}]}"#;
    for (keys, kept) in [(600, true), (1500, false)] {
        let body = format!(
            "{{{}}}",
            (0..keys)
                .map(|i| format!("\"k{i}\":{i}"))
                .collect::<Vec<_>>()
                .join(",")
        );
        scan_json(body.as_bytes(), &spec).expect("scan");
        ALLOCS.with(|a| a.store(0));
        COUNTING.with(|c| c.set(true));
        let scan = scan_json(small, &spec);
        COUNTING.with(|c| c.set(false));
        scan.expect("scan");
        let allocs = ALLOCS.with(|a| a.load());
        assert_eq!(allocs == 0, kept, "{keys} keys, then {allocs} allocations");
    }
}

/// The scanner stops at 127 open containers, so its stack never grows past 128 frames: even
/// the deepest body's stack is kept for the thread's next scan.
#[test]
fn the_deepest_stack_is_kept() {
    let spec = JsonSpec {
        fields: &[],
        markers: &[],
    };
    let deep = format!("{{\"a\":{}{}}}", "[".repeat(120), "]".repeat(120));
    scan_json(deep.as_bytes(), &spec).expect("scan");
    ALLOCS.with(|a| a.store(0));
    COUNTING.with(|c| c.set(true));
    let scan = scan_json(br#"{"a":[{"b":1}]}"#, &spec);
    COUNTING.with(|c| c.set(false));
    scan.expect("scan");
    assert_eq!(ALLOCS.with(|a| a.load()), 0);
}
