//! Hand-picked inputs at the edges of `scan_json`, each checked against serde_json through the
//! differential oracle (acceptance, field values and spans, markers). They pin behaviour that
//! the random documents of `differential.rs` reach only by luck: `cargo mutants` showed that a
//! broken literal check, long-key or large-object duplicate detection, surrogate-pair
//! validation or the word-at-a-time string scan could each pass the suite without them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support {
    #[path = "oracle.rs"]
    pub mod oracle;
}

use inspect::json::{string_literal, JsonErrorKind};
use inspect::{scan_json, JsonSpec, Marker, Value};
use proptest::prelude::*;
use support::oracle;

const NO_SPEC: JsonSpec<'static> = JsonSpec {
    fields: &[],
    markers: &[],
};

/// scan_json and serde_json agree on `body` (see the oracle).
fn agree(body: &[u8]) {
    if let Err(why) = oracle::check(body) {
        panic!("{why}\nbody: {:?}", String::from_utf8_lossy(body));
    }
}

fn serde_ok(body: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(body).is_ok()
}

/// Both parsers refuse `body`, and we say why with `kind`.
fn refused(body: &[u8], kind: impl Fn(&JsonErrorKind) -> bool) {
    let shown = String::from_utf8_lossy(body);
    assert!(!serde_ok(body), "serde accepts {shown:?}");
    match scan_json(body, &NO_SPEC) {
        Ok(s) => panic!("accepted {shown:?}: {s:?}"),
        Err(e) => assert!(kind(&e.kind), "{shown:?}: {e}"),
    }
}

fn syntax(k: &JsonErrorKind) -> bool {
    matches!(k, JsonErrorKind::Syntax(_))
}

fn invalid_escape(k: &JsonErrorKind) -> bool {
    *k == JsonErrorKind::InvalidEscape
}

fn invalid_utf8(k: &JsonErrorKind) -> bool {
    *k == JsonErrorKind::InvalidUtf8
}

/// `"store": tru,` must not pass because the four bytes after the `t` are *some* four bytes:
/// every one-byte corruption of each literal is refused even when valid JSON follows it.
#[test]
fn literals_are_compared_byte_for_byte() {
    for lit in ["true", "false", "null"] {
        let mut variants: Vec<String> = Vec::new();
        for at in 1..lit.len() {
            let mut bad = lit.as_bytes().to_vec();
            bad[at] = b'x';
            variants.push(String::from_utf8(bad).unwrap());
            // Truncated: the missing byte is taken from what follows.
            variants.push(format!("{}{}", &lit[..at], ",".repeat(lit.len() - at)));
        }
        variants.push(lit.to_uppercase());
        for bad in &variants {
            for body in [
                format!("{{\"store\":{bad},\"model\":\"m\"}}"),
                format!("{{\"store\":[{bad},1,2,3,4]}}"),
                format!("{{\"a\":{{\"b\":{bad} }}}}"),
            ] {
                refused(body.as_bytes(), syntax);
            }
        }
        for body in [
            format!("{{\"store\":{lit},\"model\":\"m\"}}"),
            format!("{{\"store\":[{lit},1]}}"),
        ] {
            agree(body.as_bytes());
        }
    }
    // The literal's value is reported as written.
    let spec = JsonSpec {
        fields: &["a", "b", "c"],
        markers: &[],
    };
    let s = scan_json(br#"{"a":true,"b":false,"c":null}"#, &spec).unwrap();
    let values: Vec<&Value<'_>> = s.fields.iter().map(|f| &f.value).collect();
    assert_eq!(values, [&Value::Bool(true), &Value::Bool(false), &Value::Null]);
}

/// Keys up to 16 bytes and longer ones are compared by different code; both must see a
/// duplicate (`previous_response_id` is 20 bytes), and neither may see one that is not there.
#[test]
fn duplicate_keys_of_every_length() {
    for len in 1..=40 {
        let key: String = (0..len).map(|i| (b'a' + (i % 26) as u8) as char).collect();
        let dup = format!("{{\"{key}\":1,\"{key}\":2}}");
        assert_eq!(
            scan_json(dup.as_bytes(), &NO_SPEC).map_err(|e| e.kind),
            Err(JsonErrorKind::DuplicateKey(key.clone())),
            "{dup}"
        );
        agree(dup.as_bytes());
        // Same length, last byte differs; one byte longer; a prefix.
        let mut other = key.clone().into_bytes();
        *other.last_mut().unwrap() = b'Z';
        let other = String::from_utf8(other).unwrap();
        for k2 in [other, format!("{key}a"), key[..len - 1].to_owned()] {
            let body = format!("{{\"{key}\":1,\"{k2}\":2}}");
            agree(body.as_bytes());
            assert!(scan_json(body.as_bytes(), &NO_SPEC).is_ok(), "{body}");
        }
        // One of them escaped.
        let esc = format!("{{\"{key}\":1,\"\\u{:04x}{}\":2}}", key.as_bytes()[0], &key[1..]);
        assert!(matches!(
            scan_json(esc.as_bytes(), &NO_SPEC).map_err(|e| e.kind),
            Err(JsonErrorKind::DuplicateKey(_))
        ));
        agree(esc.as_bytes());
    }
    for body in [
        &br#"{"previous_response_id":"a","store":false,"previous_response_id":"b"}"#[..],
        br#"{"input":[{"previous_response_id":1,"x":2,"previous_response_id":3}]}"#,
        br#"{"previous_response_id":1,"previous_response_i\u0064":2}"#,
    ] {
        assert!(
            matches!(
                scan_json(body, &NO_SPEC).map_err(|e| e.kind),
                Err(JsonErrorKind::DuplicateKey(k)) if k == "previous_response_id"
            ),
            "{}",
            String::from_utf8_lossy(body)
        );
        agree(body);
    }
}

/// Objects of every size around the point where duplicate detection changes method, with the
/// duplicate of every earlier key, long and short keys, escaped spellings, and nested objects
/// of that size inside each other.
#[test]
fn duplicate_keys_around_the_hash_map_threshold() {
    for n in 1..=40 {
        for long in [false, true] {
            let key = |i: usize| {
                if long {
                    format!("previous_response_id_{i}")
                } else {
                    format!("k{i}")
                }
            };
            let members: Vec<String> = (0..n).map(|i| format!("\"{}\":{i}", key(i))).collect();
            let good = format!("{{{}}}", members.join(","));
            assert!(scan_json(good.as_bytes(), &NO_SPEC).is_ok(), "{good}");
            for d in 0..n {
                let k = key(d);
                for spelled in [k.clone(), format!("\\u{:04x}{}", k.as_bytes()[0], &k[1..])] {
                    let body = format!("{{{},\"{spelled}\":0}}", members.join(","));
                    assert_eq!(
                        scan_json(body.as_bytes(), &NO_SPEC).map_err(|e| e.kind),
                        Err(JsonErrorKind::DuplicateKey(k.clone())),
                        "{body}"
                    );
                }
                // Also when more keys follow the duplicate.
                let mut with_dup = members.clone();
                with_dup.insert(n, format!("\"{k}\":0"));
                with_dup.push("\"last\":1".to_owned());
                let body = format!("{{{}}}", with_dup.join(","));
                assert_eq!(
                    scan_json(body.as_bytes(), &NO_SPEC).map_err(|e| e.kind),
                    Err(JsonErrorKind::DuplicateKey(k.clone())),
                    "{body}"
                );
            }
        }
    }
    // Large objects nested in large objects: each level keeps its own keys. Sibling large
    // objects reuse a map, which must start empty.
    let keys = |prefix: &str| -> String {
        let k: Vec<String> = (0..20).map(|i| format!("\"{prefix}{i}\":{i}")).collect();
        k.join(",")
    };
    let level = |inner: &str| format!("{{{},\"in\":{inner}}}", keys("a"));
    let deep = level(&level(&level("1")));
    let two = format!("{{\"x\":{deep},\"y\":{deep}}}");
    agree(two.as_bytes());
    assert!(scan_json(two.as_bytes(), &NO_SPEC).is_ok());
    let inner_dup = level(&level(&format!("{{{},\"in\":1,\"a5\":0}}", keys("a"))));
    assert_eq!(
        scan_json(inner_dup.as_bytes(), &NO_SPEC).map_err(|e| e.kind),
        Err(JsonErrorKind::DuplicateKey("a5".into()))
    );
    let outer_dup = format!("{},\"a7\":0}}", &deep[..deep.len() - 1]);
    assert_eq!(
        scan_json(outer_dup.as_bytes(), &NO_SPEC).map_err(|e| e.kind),
        Err(JsonErrorKind::DuplicateKey("a7".into()))
    );
    let arr = format!("{{\"x\":[{deep},{deep},{deep}],\"x\":1}}");
    assert_eq!(
        scan_json(arr.as_bytes(), &NO_SPEC).map_err(|e| e.kind),
        Err(JsonErrorKind::DuplicateKey("x".into()))
    );
}

/// A high surrogate escape must be followed by `\u` and a low surrogate, nothing else.
#[test]
fn surrogate_pairs() {
    for bad in [
        r#"{"a":"\ud800"}"#,
        r#"{"a":"\ud800x"}"#,
        r#"{"a":"\ud800\xdc00"}"#,
        r#"{"a":"\ud800Xudc00"}"#,
        r#"{"a":"\ud800uudc00"}"#,
        r#"{"a":"\ud800\\udc00"}"#,
        r#"{"a":"\ud800\ud800"}"#,
        r#"{"a":"\ud800\u0041"}"#,
        r#"{"a":"\ud800\ue000"}"#,
        r#"{"a":"\udbff\u"}"#,
        r#"{"a":"\udbff\udc0"}"#,
        r#"{"a":"\udc00\ud800"}"#,
        r#"{"a":"\udfff"}"#,
        r#"{"\ud83d":1}"#,
        r#"{"\ud83d\u0020":1}"#,
    ] {
        refused(bad.as_bytes(), |k| invalid_escape(k) || syntax(k));
        agree(bad.as_bytes());
    }
    for good in [
        r#"{"a":"\ud800\udc00"}"#,
        r#"{"a":"\udbff\udfff"}"#,
        r#"{"a":"\uD83D\uDE00 \ud83d\ude00"}"#,
        r#"{"a":"x\uD834\uDD1Ey"}"#,
        r#"{"\ud83d\ude00":"\ud83d\ude00"}"#,
        r#"{"a":"\ud7ff\ue000"}"#,
    ] {
        agree(good.as_bytes());
        assert!(scan_json(good.as_bytes(), &NO_SPEC).is_ok(), "{good}");
    }
}

/// Every escape decodes to what serde_json decodes it to: in reported values, in keys that
/// select fields, and in marker values.
#[test]
fn escapes_decode_like_serde() {
    let mut escapes: Vec<String> = [
        r#"\""#, r#"\\"#, r#"\/"#, r#"\b"#, r#"\f"#, r#"\n"#, r#"\r"#, r#"\t"#,
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    for unit in [
        0x0000u32, 0x0001, 0x001f, 0x0020, 0x0041, 0x007f, 0x0080, 0x00e9, 0x0123, 0x07ff, 0x0800, 0x4567,
        0x89ab, 0xcdef, 0xd7ff, 0xe000, 0xfeff, 0xfffd, 0xffff,
    ] {
        escapes.push(format!("\\u{unit:04x}"));
        escapes.push(format!("\\u{unit:04X}"));
    }
    for (hi, lo) in [
        (0xd800u32, 0xdc00u32),
        (0xd800, 0xdfff),
        (0xdbff, 0xdc00),
        (0xdbff, 0xdfff),
        (0xd83d, 0xde00),
        (0xd834, 0xdd1e),
        (0xda6f, 0xdd5a),
        (0xd9ff, 0xdeb7),
    ] {
        escapes.push(format!("\\u{hi:04x}\\u{lo:04x}"));
        escapes.push(format!("\\u{hi:04X}\\u{lo:04X}"));
    }
    for e in &escapes {
        for (pre, post) in [
            ("", ""),
            ("ab", ""),
            ("", "yz"),
            ("pq", "rs"),
            ("0123456789abcdef", "é"),
        ] {
            let s = format!("{pre}{e}{post}");
            let value = format!("{{\"model\":\"{s}\"}}");
            agree(value.as_bytes());
            let expected: String = serde_json::from_str(&format!("\"{s}\"")).unwrap();
            let spec = JsonSpec {
                fields: &["model"],
                markers: &[],
            };
            let scan = scan_json(value.as_bytes(), &spec).unwrap();
            assert_eq!(
                scan.field(0).map(|f| f.value.clone()),
                Some(Value::String(expected.clone().into())),
                "{value}"
            );
            // As a key: selects the field of that decoded name, and is a duplicate of it.
            let key = format!("{{\"{s}\":1}}");
            agree(key.as_bytes());
            let fields = [expected.as_str()];
            let spec = JsonSpec {
                fields: &fields,
                markers: &[],
            };
            let scan = scan_json(key.as_bytes(), &spec).unwrap();
            assert_eq!(scan.fields.len(), 1, "{key}");
            let dup = format!("{{\"{s}\":1,{}:2}}", string_literal(&expected));
            assert_eq!(
                scan_json(dup.as_bytes(), &NO_SPEC).map_err(|e| e.kind),
                Err(JsonErrorKind::DuplicateKey(expected.clone())),
                "{dup}"
            );
            // As a marker value, nested.
            let markers = [Marker {
                key: "type",
                values: &[expected.as_str()],
            }];
            let spec = JsonSpec {
                fields: &[],
                markers: &markers,
            };
            let nested = format!("{{\"a\":[{{\"type\":\"{s}\"}}]}}");
            assert_eq!(
                scan_json(nested.as_bytes(), &spec).unwrap().markers_hit,
                [true],
                "{nested}"
            );
        }
    }
}

/// Markers match on the key and the value: a wanted value under another key is no hit.
#[test]
fn markers_need_their_key() {
    let markers = [
        Marker {
            key: "type",
            values: &["image_url", "input_image"],
        },
        Marker {
            key: "kind",
            values: &["x"],
        },
    ];
    let spec = JsonSpec {
        fields: &[],
        markers: &markers,
    };
    let hit = |b: &str| scan_json(b.as_bytes(), &spec).unwrap().markers_hit;
    assert_eq!(hit(r#"{"kind":"image_url","type":"x"}"#), [false, false]);
    assert_eq!(
        hit(r#"{"a":{"typ":"image_url","types":"input_image"}}"#),
        [false, false]
    );
    assert_eq!(hit(r#"{"a":{"type":"image_ur","kind":"xx"}}"#), [false, false]);
    assert_eq!(
        hit(r#"{"kind":"image_url","a":[{"type":"input_image"}]}"#),
        [true, false]
    );
    assert_eq!(hit(r#"{"type":"x","kind":"x"}"#), [false, true]);
    agree(br#"{"b":"b","x":"x","a":"c"}"#);
    agree(br#"{"b":"","":"b","a":{"":"x"}}"#);
}

/// A body built so that each 16-byte block of a string literal holds its stop bytes (quote,
/// backslash, control character) at the same position in both 8-byte halves, or only in the
/// second half, or nowhere but in a non-ASCII byte.
#[test]
fn string_scan_blocks() {
    let halves: &[&[u8]] = &[
        b"aaaaaaaa",
        b"\\naaaaaa",
        b"aaa\\naaa",
        b"aaaaaa\\n",
        b"a\"aaaaaa",
        b"aaaaaaa\"",
        b"\x01aaaaaaa",
        b"aaaa\x1faaa",
        b"aaaaaaa\n",
        b"\\\\aaaaaa",
        b"aa\\u00e9a",
        b"\xc3\xa9aaaaaa",
        b"aaaaa\xe2\x82\xac",
        b"\x80aaaaaaa",
        b"aaaaaaa\xff",
    ];
    for h1 in halves {
        for h2 in halves {
            for lead in 0..3 {
                for tail in ["", "a", "aaaaaaaaaaaaaaaa", "\\\"", "\u{e9}"] {
                    let mut body = b"{\"k\":\"".to_vec();
                    body.extend(std::iter::repeat_n(b'z', lead));
                    body.extend_from_slice(h1);
                    body.extend_from_slice(h2);
                    body.extend_from_slice(tail.as_bytes());
                    body.extend_from_slice(b"\",\"model\":\"");
                    body.extend_from_slice(h2);
                    body.extend_from_slice(h1);
                    body.extend_from_slice(b"\"}");
                    agree(&body);
                }
            }
        }
    }
}

/// Invalid UTF-8 anywhere in a long string is found, also when every byte of a block is the
/// same non-ASCII byte; the error names the offset of the first bad byte.
#[test]
fn invalid_utf8_in_long_strings() {
    for bad in [
        &b"\x80"[..],
        b"\xbf",
        b"\xc0",
        b"\xc3",
        b"\xed\xa0\x80",
        b"\xf8",
        b"\xff",
    ] {
        for n in [1usize, 7, 8, 9, 15, 16, 17, 31, 32, 33] {
            let run: Vec<u8> = bad.iter().copied().cycle().take(n * bad.len()).collect();
            for pre in [&b""[..], b"a", b"0123456789abcdef"] {
                let mut body = b"{\"k\":\"".to_vec();
                body.extend_from_slice(pre);
                body.extend_from_slice(&run);
                body.extend_from_slice(b"\"}");
                refused(&body, invalid_utf8);
                let e = scan_json(&body, &NO_SPEC).unwrap_err();
                assert_eq!(e.offset, 6 + pre.len(), "{body:?}");
            }
        }
    }
    // Valid multi-byte text before the bad byte moves the offset by its length.
    for (body, at) in [
        (&b"{\"k\":\"\xc3\xa9\xff\"}"[..], 8),
        (b"{\"k\":\"a\xc3\xa9\xe2\x82\xac\xff\"}", 12),
        (b"{\"k\":\"0123456789abcdef\xc3\xa9\xc3\"}", 24),
        (
            b"{\"k\":\"\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\"}",
            24,
        ),
    ] {
        let e = scan_json(body, &NO_SPEC).unwrap_err();
        assert_eq!((e.kind, e.offset), (JsonErrorKind::InvalidUtf8, at), "{body:?}");
    }
}

/// `string_literal` escapes exactly what JSON requires (what the proxy writes into bodies).
#[test]
fn string_literal_is_minimal() {
    assert_eq!(string_literal("gpt-4o mini"), "\"gpt-4o mini\"");
    assert_eq!(string_literal(" ~\u{7f}é😀"), "\" ~\u{7f}é😀\"");
    assert_eq!(string_literal("\u{0}\u{1f}\n"), "\"\\u0000\\u001f\\u000a\"");
    assert_eq!(string_literal("a\"b\\"), "\"a\\\"b\\\\\"");
    assert_eq!(string_literal(""), "\"\"");
}

fn stop_heavy_string() -> impl Strategy<Value = Vec<u8>> {
    // Valid pieces: stop bytes only inside escapes, UTF-8 of every length, bytes next to the
    // stop values ('!' and '#' around '"', '[' and ']' around '\\', ' ' above the controls).
    let valid = prop::sample::select(vec![
        &b"a"[..],
        b" ",
        b"!",
        b"#",
        b"[",
        b"]",
        b"\x7f",
        b"\\\"",
        b"\\\\",
        b"\\n",
        b"\\/",
        b"\\u00e9",
        b"\\u0000",
        b"\\ud83d\\ude00",
        b"\xc3\xa9",
        b"\xe2\x82\xac",
        b"\xf0\x9f\x98\x80",
    ]);
    // Invalid ones: raw stop bytes, lone surrogates, broken UTF-8.
    let invalid = prop::sample::select(vec![
        &b"\""[..],
        b"\\",
        b"\\x",
        b"\\ud83d",
        b"\\udc00",
        b"\x00",
        b"\x1f",
        b"\n",
        b"\xc3",
        b"\x80",
        b"\xff",
    ]);
    let piece = prop_oneof![40 => valid, 1 => invalid];
    prop::collection::vec(piece, 0..40).prop_map(|v| v.concat())
}

proptest! {
    /// String literals built from stop bytes, escapes and UTF-8 pieces, as a value, a key and
    /// a marker value, after a prefix that shifts them against the 16-byte blocks.
    #[test]
    fn stop_heavy_strings_agree(s in stop_heavy_string(), lead in 0usize..16) {
        let pad = "p".repeat(lead);
        for (pre, post) in [
            (format!("{{\"{pad}\":1,\"model\":\""), "\"}".to_owned()),
            (format!("{{\"{pad}\":1,\""), "\":\"a\"}".to_owned()),
            (format!("{{\"{pad}\":[{{\"type\":\""), "\"}]}".to_owned()),
            (format!("{{\"{pad}\":[{{\"a\":\""), "\"}]}".to_owned()),
        ] {
            let mut body = pre.into_bytes();
            body.extend_from_slice(&s);
            body.extend_from_slice(post.as_bytes());
            if let Err(why) = oracle::check(&body) {
                prop_assert!(false, "{why}\nbody: {:?}", String::from_utf8_lossy(&body));
            }
        }
    }
}

/// Numbers far below the smallest double are zero to serde_json, however long the exponent
/// and fraction: the range check walks them down without overflowing its exponent.
#[test]
fn tiny_numbers_are_accepted() {
    for n in [
        "1e-30000",
        "123456789e-99999",
        "0.1e-2147483647",
        "18446744073709551615e-2147483647",
        "-1.5e-400",
    ] {
        agree(format!("{{\"n\":{n}}}").as_bytes());
        assert!(
            scan_json(format!("{{\"n\":{n}}}").as_bytes(), &NO_SPEC).is_ok(),
            "{n}"
        );
    }
}
