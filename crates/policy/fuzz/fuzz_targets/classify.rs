//! The request classifier on arbitrary method + path bytes: it never panics, and whatever it
//! accepts is in the one canonical form and matches the template it names, segment by
//! segment — so no spelling of a path reaches the upstream as an endpoint the policy did not
//! check.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn catalog() -> &'static policy::Catalog {
    static C: OnceLock<policy::Catalog> = OnceLock::new();
    C.get_or_init(|| policy::Catalog::builtin().expect("the built-in catalog is valid"))
}

fuzz_target!(|data: &[u8]| {
    let (method, path) = match data.iter().position(|b| *b == b' ') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (&b"POST"[..], data),
    };
    let (Ok(method), Ok(path)) = (std::str::from_utf8(method), std::str::from_utf8(path)) else {
        return;
    };
    let c = catalog();
    if let Ok(op) = c.classify(method, path) {
        let op = c.operation(op);
        assert_eq!(op.method, method);
        let segs: Vec<&str> = path.split('/').collect();
        let tmpl: Vec<&str> = op.template.split('/').collect();
        assert_eq!(segs.len(), tmpl.len(), "{path} vs {}", op.template);
        for (s, t) in segs.iter().zip(&tmpl) {
            if t.starts_with('{') {
                assert!(!s.is_empty() && *s != "." && *s != "..", "{path}");
                assert!(s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~:@".contains(&b)), "{path}");
            } else {
                assert_eq!(s, t, "{path} vs {}", op.template);
            }
        }
    }
});
