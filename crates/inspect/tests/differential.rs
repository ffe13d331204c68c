//! Differential property tests: `scan_json` against serde_json on generated JSON documents
//! (random whitespace, random escaping) and on mutations of them, plus splice round trips.

mod support {
    #[path = "oracle.rs"]
    pub mod oracle;
}

use bytes::Bytes;
use inspect::{scan_json, JsonSpec, Splice};
use proptest::prelude::*;
use support::oracle;

#[derive(Debug, Clone)]
enum J {
    Null,
    Bool(bool),
    Num(String),
    Str(String),
    Arr(Vec<J>),
    Obj(Vec<(String, J)>),
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => Just(String::new()),
        3 => prop::sample::select(vec!["a", "b", "type", "model", "store", "image_url", "input_image", "é", "x", "k0", "\"", "\u{0}"])
            .prop_map(String::from),
        4 => "[a-c\u{e9}\u{20ac}\u{1F600}\"\\\\/\n\t\u{1}\u{7f} ]{0,6}",
        1 => any::<String>(),
    ]
}

fn number() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<i64>().prop_map(|n| n.to_string()),
        any::<u64>().prop_map(|n| n.to_string()),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| format!("{f:e}")),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| format!("{f:?}")),
        "-?(0|[1-9][0-9]{0,25})(\\.[0-9]{1,22})?([eE][+-]?[0-9]{1,3})?",
        "-?[1-9][0-9]{0,3}(\\.[0-9]{1,3})?[eE]\\+?30[0-9]",
        "-?[0-9]{1,3}[eE][0-9]{10,12}",
    ]
}

fn json() -> impl Strategy<Value = J> {
    let leaf = prop_oneof![
        Just(J::Null),
        any::<bool>().prop_map(J::Bool),
        number().prop_map(J::Num),
        text().prop_map(J::Str),
    ];
    leaf.prop_recursive(5, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(J::Arr),
            prop::collection::vec((text(), inner), 0..6).prop_map(J::Obj),
        ]
    })
}

fn document() -> impl Strategy<Value = J> {
    prop::collection::vec((text(), json()), 0..8).prop_map(J::Obj)
}

/// A tiny deterministic RNG for serialisation choices.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn one_in(&mut self, n: u64) -> bool {
        self.next() % n == 0
    }
}

fn ws(out: &mut String, r: &mut Rng) {
    const WS: [&str; 6] = ["", "", "", " ", "\n  ", "\t\r\n"];
    out.push_str(WS[(r.next() % WS.len() as u64) as usize]);
}

fn hex_escape(out: &mut String, unit: u16, r: &mut Rng) {
    let h = format!("{unit:04x}");
    out.push_str("\\u");
    out.push_str(&if r.one_in(2) { h.to_uppercase() } else { h });
}

fn string(out: &mut String, s: &str, r: &mut Rng) {
    out.push('"');
    for c in s.chars() {
        let must = c == '"' || c == '\\' || (c as u32) < 0x20;
        if (c as u32) < 0x20 && r.one_in(24) {
            // A raw control character: invalid JSON on purpose.
            out.push(c);
        } else if must || r.one_in(6) {
            match c {
                '"' if r.one_in(2) => out.push_str("\\\""),
                '\\' if r.one_in(2) => out.push_str("\\\\"),
                '/' if r.one_in(2) => out.push_str("\\/"),
                '\n' if r.one_in(2) => out.push_str("\\n"),
                '\t' if r.one_in(2) => out.push_str("\\t"),
                _ => {
                    let mut units = [0u16; 2];
                    for u in c.encode_utf16(&mut units) {
                        hex_escape(out, *u, r);
                    }
                }
            }
        } else {
            out.push(c);
        }
    }
    out.push('"');
}

fn serialise(j: &J, out: &mut String, r: &mut Rng) {
    ws(out, r);
    match j {
        J::Null => out.push_str("null"),
        J::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        J::Num(n) => out.push_str(n),
        J::Str(s) => string(out, s, r),
        J::Arr(a) => {
            out.push('[');
            for (i, v) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                serialise(v, out, r);
            }
            ws(out, r);
            out.push(']');
        }
        J::Obj(m) => {
            out.push('{');
            for (i, (k, v)) in m.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                ws(out, r);
                string(out, k, r);
                ws(out, r);
                out.push(':');
                serialise(v, out, r);
            }
            ws(out, r);
            out.push('}');
        }
    }
    ws(out, r);
}

fn render(j: &J, seed: u64) -> Vec<u8> {
    let mut out = String::new();
    serialise(j, &mut out, &mut Rng(seed | 1));
    out.into_bytes()
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    Insert(usize, u8),
    Delete(usize),
    Truncate(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let interesting = prop::sample::select(
        b"{}[],:\"\\u0123456789eE.+- \n\tntfl\x00\x1f\x7f\xff\xc3\xa9\x80\xed\xa0\xef\xbb\xbf".to_vec(),
    );
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(p, b)| Mutation::Flip(p, b)),
        (any::<usize>(), interesting).prop_map(|(p, b)| Mutation::Insert(p, b)),
        any::<usize>().prop_map(Mutation::Delete),
        any::<usize>().prop_map(Mutation::Truncate),
    ]
}

fn mutate(mut doc: Vec<u8>, ms: &[Mutation]) -> Vec<u8> {
    for m in ms {
        let n = doc.len().max(1);
        match *m {
            Mutation::Flip(p, b) if !doc.is_empty() => doc[p % n] ^= b.max(1),
            Mutation::Insert(p, b) => doc.insert(p % (doc.len() + 1), b),
            Mutation::Delete(p) if !doc.is_empty() => {
                doc.remove(p % n);
            }
            Mutation::Truncate(p) => doc.truncate(p % (doc.len() + 1)),
            _ => {}
        }
    }
    doc
}

fn concat(parts: Vec<Bytes>) -> Vec<u8> {
    parts.concat()
}

proptest! {
    #[test]
    fn generated_documents_agree(doc in document(), seed in any::<u64>()) {
        let body = render(&doc, seed);
        if let Err(why) = oracle::check(&body) {
            prop_assert!(false, "{why}\nbody: {:?}", String::from_utf8_lossy(&body));
        }
    }

    #[test]
    fn generated_values_agree(v in json(), seed in any::<u64>()) {
        // Mostly non-objects at the top: serde accepts, we say NotAnObject.
        let body = render(&v, seed);
        if let Err(why) = oracle::check(&body) {
            prop_assert!(false, "{why}\nbody: {:?}", String::from_utf8_lossy(&body));
        }
    }

    #[test]
    fn mutated_documents_agree(
        doc in document(),
        seed in any::<u64>(),
        ms in prop::collection::vec(mutation(), 1..4),
    ) {
        let body = mutate(render(&doc, seed), &ms);
        if let Err(why) = oracle::check(&body) {
            prop_assert!(false, "{why}\nbody: {:?}", String::from_utf8_lossy(&body));
        }
    }

    #[test]
    fn splice_round_trips(doc in document(), seed in any::<u64>(), pick in any::<usize>()) {
        let body = Bytes::from(render(&doc, seed));
        let Ok(serde_json::Value::Object(original)) = serde_json::from_slice::<serde_json::Value>(&body) else {
            return Ok(());
        };
        let names: Vec<&str> = original.keys().map(String::as_str).collect();
        let fields: Vec<&str> = names.iter().copied().chain(["store"]).collect();
        let Ok(scan) = scan_json(&body, &JsonSpec { fields: &fields, markers: &[] }) else {
            // Duplicate keys: rejected, nothing to rewrite.
            return Ok(());
        };

        // (1) Replace one top-level member's value with `false`.
        if !names.is_empty() {
            let i = pick % names.len();
            let f = scan.field(i).expect("every top-level key is reported");
            let mut s = Splice::new();
            s.replace(f.value_span.clone(), &b"false"[..]);
            let out = concat(s.apply(&body).expect("splice applies"));
            let got: serde_json::Value = serde_json::from_slice(&out).expect("rewritten body parses");
            let mut want = original.clone();
            want.insert(names[i].to_owned(), serde_json::Value::Bool(false));
            prop_assert_eq!(got, serde_json::Value::Object(want));
        }

        // (2) Force "store": false — insert at object_start, or replace the existing value.
        let store = fields.len() - 1;
        let mut s = Splice::new();
        match scan.field(store).or_else(|| names.iter().position(|n| *n == "store").and_then(|i| scan.field(i))) {
            Some(f) => s.replace(f.value_span.clone(), &b"false"[..]),
            None if scan.empty => s.insert(scan.object_start, &b"\"store\":false"[..]),
            None => s.insert(scan.object_start, &b"\"store\":false,"[..]),
        }
        let out = concat(s.apply(&body).expect("splice applies"));
        let got: serde_json::Value = serde_json::from_slice(&out).expect("rewritten body parses");
        let mut want = original.clone();
        want.insert("store".to_owned(), serde_json::Value::Bool(false));
        prop_assert_eq!(got, serde_json::Value::Object(want));
        // And our own scanner accepts what we produced.
        let rescan = scan_json(&out, &JsonSpec { fields: &[], markers: &[] });
        prop_assert!(rescan.is_ok(), "{:?}", rescan);
    }

    #[test]
    fn nesting_around_the_limit_agrees(depth in 1usize..140, kinds in any::<u64>()) {
        let mut open = String::from("{\"a\":");
        let mut close = String::from("}");
        for d in 1..depth {
            if kinds >> (d % 64) & 1 == 0 {
                open.push('[');
                close.insert(0, ']');
            } else {
                open.push_str("{\"a\":");
                close.insert(0, '}');
            }
        }
        let body = format!("{open}1{close}");
        if let Err(why) = oracle::check(body.as_bytes()) {
            prop_assert!(false, "{why}\ndepth {depth}");
        }
    }
}

/// Inputs that once disagreed or are easy to get wrong.
#[test]
fn regressions() {
    for body in [
        &b"{\"a\":1.7976931348623158e308}"[..],
        b"{\"a\":17976931348623157e292}",
        b"{\"a\":18446744073709551616.5e290}",
        b"{\"a\":184467440737095516151.5}",
        b"{\"a\":0.00000000000000000000000000000000000000000001e400}",
        b"{\"a\":0e2147483648}",
        b"{\"a\":1e-2147483649}",
        b"{\"a\":\"\\ud83d\\ude00\",\"\\ud83d\\ude00\":\"\\uD83D\\uDE00\"}",
        b"{\"\":1,\"\\u0000\":2,\"\\\"\":3}",
        b"[1,2]",
        b"  \"x\"  ",
        b"{}",
        b"{\"a\":{},\"b\":[],\"type\":\"image_url\",\"c\":{\"a\":\"b\"}}",
    ] {
        if let Err(why) = oracle::check(body) {
            panic!("{why}\nbody: {:?}", String::from_utf8_lossy(body));
        }
    }
}
