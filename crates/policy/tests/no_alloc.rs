//! The allow path allocates nothing: classify + precheck + decide for common requests.
#![allow(unsafe_code)] // the counting allocator (workspace lints deny unsafe elsewhere)
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

use policy::{Catalog, CheckFacts, Facts, FieldValue, Project, Retention, Verdict};

struct Counting;

static ALLOCS: AtomicUsize = AtomicUsize::new(0);
thread_local! {
    static ON: Cell<bool> = const { Cell::new(false) };
}

// SAFETY: forwards to the system allocator; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if ON.with(Cell::get) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn count<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let before = ALLOCS.load(Ordering::Relaxed);
    ON.with(|c| c.set(true));
    let out = f();
    ON.with(|c| c.set(false));
    (out, ALLOCS.load(Ordering::Relaxed) - before)
}

#[test]
fn allow_path_does_not_allocate() {
    let c = Catalog::builtin().unwrap();
    let p = Project {
        default: true,
        aliases: [("gpt-4o".to_owned(), "gpt-4o-2024-08-06".to_owned())]
            .into_iter()
            .collect(),
        hipaa: true,
        ..Project::with_defaults("eu", "eu", Retention::Zdr)
    };
    let fields = [
        FieldValue::String("gpt-4o-2024-08-06"),
        FieldValue::Bool(false),
        FieldValue::Absent,
    ];
    let markers = [];
    // The chat plan's body checks: a text part and a function tool, nothing else.
    let checks = [
        CheckFacts {
            seen: 1,
            ..CheckFacts::default()
        },
        CheckFacts {
            seen: 1,
            ..CheckFacts::default()
        },
        CheckFacts::default(),
        CheckFacts::default(),
    ];
    let facts = Facts {
        fields: &fields,
        markers: &markers,
        checks: &checks,
        include: None,
    };
    let (verdict, n) = count(|| {
        let op = c.classify("POST", "/v1/chat/completions").unwrap();
        assert!(policy::precheck(&c, &p, op).is_none());
        policy::decide(&c, &p, op, &facts).verdict
    });
    assert_eq!((verdict, n), (Verdict::Allow, 0));
    // A parameterised path and a body-less decision.
    let g = Project {
        region: "global".into(),
        retention: Retention::Default,
        ..p.clone()
    };
    let (verdict, n) = count(|| {
        let op = c
            .classify("GET", "/v1/threads/thread_abc/runs/run_1/steps")
            .unwrap();
        policy::decide(&c, &g, op, &Facts::NONE).verdict
    });
    assert_eq!((verdict, n), (Verdict::Allow, 0));
    // Denials may allocate (the message), rewrites too (the alias).
    let fields = [
        FieldValue::String("gpt-4o"),
        FieldValue::Bool(false),
        FieldValue::Absent,
    ];
    let facts = Facts {
        fields: &fields,
        markers: &markers,
        checks: &checks,
        include: None,
    };
    let (d, n) = count(|| {
        policy::decide(
            &c,
            &p,
            c.classify("POST", "/v1/chat/completions").unwrap(),
            &facts,
        )
    });
    assert_eq!(d.verdict, Verdict::Rewrite);
    assert!(n > 0);
}
