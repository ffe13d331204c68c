//! Issue 6, part 1: request bodies that could mean one thing to the proxy and another to
//! OpenAI. Every case is raw bytes on a socket; a refused body must reach no upstream, an
//! accepted one must reach it with exactly the bytes the policy read (plus the decided splices).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::io::Write;

use support::cases::*;
use support::*;

const CHAT: &str = "/v1/chat/completions";
const RESPONSES: &str = "/v1/responses";
const M: &str = "gpt-4o-2024-08-06";

/// `{"model":M,"messages":[...],EXTRA}` with EXTRA spliced in before the closing brace.
fn chat(extra: &str) -> String {
    format!(r#"{{"model":"{M}","messages":[{{"role":"user","content":"hi"}}]{extra}}}"#)
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn zlib(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// JSON whose meaning depends on how escapes, duplicates, types and framing are read.
fn json_cases(env: &Env) -> Vec<Case> {
    let mut cases = Vec::new();
    let mut fwd = |name: &str, body: &str| {
        cases.push(Case::new(
            name,
            json_post(env, "proj_eu", CHAT, body.as_bytes()),
            same("eu", CHAT, body.as_bytes()),
        ));
    };
    // Escapes are read after unescaping, like OpenAI does; allowed bodies go byte for byte.
    fwd(
        "escaped key mod\\u0065l",
        &format!(r#"{{"mod\u0065l":"{M}","messages":[]}}"#),
    );
    fwd(
        "escaped model value",
        r#"{"model":"gpt\u002d4o\u002D2024-08-06","messages":[]}"#,
    );
    fwd(
        "escaped solidus in value",
        r#"{"model":"gpt-4o-2024-08-06","user":"a\/b","messages":[]}"#,
    );
    fwd(
        "store false escaped key",
        &format!(r#"{{"model":"{M}","st\u006fre":false}}"#),
    );
    fwd("store null on chat (default false)", &chat(r#","store":null"#));
    fwd("trailing whitespace", &format!("{}  \r\n\t", chat("")));
    fwd("leading whitespace", &format!(" \n{}", chat("")));
    fwd(
        "depth 126 inside the object",
        &chat(&format!(",\"x\":{}{}", "[".repeat(125), "]".repeat(125))),
    );
    fwd(
        "big integer within f64",
        &chat(r#","seed":123456789012345678901234567890"#),
    );
    fwd(
        "exponent forms",
        &chat(r#","temperature":1E0,"top_p":5e-1,"n":-0"#),
    );
    fwd("max f64", &chat(r#","x":1.7976931348623157e308"#));

    let mut refuse = |name: &str, body: &[u8], status: u16, code: &'static str| {
        cases.push(Case::new(
            name,
            json_post(env, "proj_eu", CHAT, body),
            Expect::Refused(status, code),
        ));
    };
    // Duplicates, compared after unescaping, at any depth.
    let dup = [
        ("duplicate model", format!(r#"{{"model":"{M}","model":"gpt-4"}}"#)),
        (
            "duplicate model via escape",
            format!(r#"{{"model":"{M}","mod\u0065l":"gpt-4"}}"#),
        ),
        (
            "duplicate store",
            format!(r#"{{"model":"{M}","store":false,"store":true}}"#),
        ),
        (
            "duplicate store via escape",
            format!(r#"{{"model":"{M}","store":false,"\u0073tore":true}}"#),
        ),
        ("duplicate nested key", chat(r#","metadata":{"a":"1","a":"2"}"#)),
        (
            "duplicate key in a message",
            format!(r#"{{"model":"{M}","messages":[{{"role":"user","role":"system","content":"x"}}]}}"#),
        ),
        ("duplicate deep key", chat(r#","x":[[{"k":{"z":1,"\u007a":2}}]]"#)),
    ];
    for (name, body) in &dup {
        refuse(name, body.as_bytes(), 400, "invalid_json");
    }
    // Not exactly one JSON object.
    let bad: Vec<(&str, Vec<u8>)> = vec![
        ("BOM", [&b"\xEF\xBB\xBF"[..], chat("").as_bytes()].concat()),
        ("trailing object", format!("{}{{}}", chat("")).into_bytes()),
        ("trailing garbage", format!("{}x", chat("")).into_bytes()),
        ("trailing NUL", format!("{}\0", chat("")).into_bytes()),
        ("trailing comma", format!("{},", chat("")).into_bytes()),
        ("top-level array", format!("[{}]", chat("")).into_bytes()),
        ("top-level string", b"\"{\\\"model\\\":1}\"".to_vec()),
        ("top-level null", b"null".to_vec()),
        ("top-level number", b"1".to_vec()),
        ("empty body", b"".to_vec()),
        ("only whitespace", b"  \n".to_vec()),
        ("comment", format!("/*x*/{}", chat("")).into_bytes()),
        ("single quotes", b"{'model':'gpt-4o-2024-08-06'}".to_vec()),
        (
            "trailing comma in object",
            format!(r#"{{"model":"{M}",}}"#).into_bytes(),
        ),
        (
            "invalid UTF-8 in value",
            [&br#"{"model":"gpt-4o-2024-08-06","user":""#[..], b"\xff\"}"].concat(),
        ),
        (
            "overlong UTF-8 slash",
            [&br#"{"model":"gpt-4o-2024-08-06","user":""#[..], b"\xC0\xAF\"}"].concat(),
        ),
        (
            "UTF-8 surrogate bytes",
            [
                &br#"{"model":"gpt-4o-2024-08-06","user":""#[..],
                b"\xED\xA0\x80\"}",
            ]
            .concat(),
        ),
        (
            "invalid UTF-8 in key",
            [&br#"{"model":"gpt-4o-2024-08-06",""#[..], b"\xfe\":1}"].concat(),
        ),
        ("lone surrogate escape", chat(r#","user":"\ud800""#).into_bytes()),
        ("bad escape", chat(r#","user":"\x41""#).into_bytes()),
        (
            "raw control char in string",
            chat(",\"user\":\"a\nb\"").into_bytes(),
        ),
        ("number overflow", chat(r#","temperature":1e400"#).into_bytes()),
        (
            "400-digit integer",
            chat(&format!(",\"seed\":1{}", "0".repeat(400))).into_bytes(),
        ),
        ("leading zero", chat(r#","n":01"#).into_bytes()),
        ("NaN", chat(r#","temperature":NaN"#).into_bytes()),
        ("Infinity", chat(r#","temperature":Infinity"#).into_bytes()),
        ("plus sign", chat(r#","temperature":+1"#).into_bytes()),
        ("hex number", chat(r#","n":0x1"#).into_bytes()),
        ("TRUE", format!(r#"{{"model":"{M}","store":TRUE}}"#).into_bytes()),
        (
            "depth 128",
            chat(&format!(",\"x\":{}{}", "[".repeat(127), "]".repeat(127))).into_bytes(),
        ),
        (
            "depth 100000 arrays",
            format!("{{\"x\":{}", "[".repeat(100_000)).into_bytes(),
        ),
        ("depth 50000 objects", "{\"a\":".repeat(50_000).into_bytes()),
        ("unterminated", format!(r#"{{"model":"{M}""#).into_bytes()),
    ];
    for (name, body) in &bad {
        refuse(name, body, 400, "invalid_json");
    }

    let mut deny = |name: &str, body: &str, rule: &'static str| {
        cases.push(Case::new(
            name,
            json_post(env, "proj_eu", CHAT, body.as_bytes()),
            Expect::Denied(rule),
        ));
    };
    // Non-boolean store is refused, never guessed at.
    for v in [r#""true""#, r#""false""#, "1", "0", "[]", "{}", r#""""#] {
        deny(&format!("store {v}"), &chat(&format!(",\"store\":{v}")), "store");
    }
    // Model spellings that are not the eligible snapshot, whatever OpenAI would make of them.
    for v in [
        r#""GPT-4O-2024-08-06""#,
        r#""gpt-4o-2024-08-06 ""#,
        r#""gpt-4o-2024-08-06\u0000""#,
        r#"" gpt-4o-2024-08-06""#,
        r#""gpt-4o-2024-08-06\n""#,
        r#""gpt\u2010 4o""#,
        r#""gpt-4""#,
        "null",
        r#"["gpt-4o-2024-08-06"]"#,
        r#"{"id":"gpt-4o-2024-08-06"}"#,
    ] {
        deny(
            &format!("model {v}"),
            &format!(r#"{{"model":{v},"messages":[]}}"#),
            "model_not_eligible",
        );
    }
    deny("model missing", r#"{"messages":[]}"#, "model_not_eligible");
    // Image parts are found after unescaping, at any depth (eu-zdr has no image approval).
    deny(
        "escaped image_url type",
        &format!(
            r#"{{"model":"{M}","messages":[{{"role":"user","content":[{{"type":"image_\u0075rl","image_url":{{"url":"x"}}}}]}}]}}"#
        ),
        "image_input",
    );
    deny(
        "escaped type key",
        &format!(
            r#"{{"model":"{M}","messages":[{{"role":"user","content":[{{"t\u0079pe":"image_url","image_url":{{"url":"x"}}}}]}}]}}"#
        ),
        "image_input",
    );
    deny(
        "model only in a nested object",
        &format!(r#"{{"x":{{"model":"{M}"}}}}"#),
        "model_not_eligible",
    );

    // Rewrites are splices at the spans the scan read, escaped keys included.
    let mut rw = |name: &str, path: &str, body: &str, expected: &str| {
        cases.push(Case::new(
            name,
            json_post(env, "proj_eu", path, body.as_bytes()),
            rewritten("eu", path, expected.as_bytes()),
        ));
    };
    rw(
        "alias under an escaped key",
        CHAT,
        r#"{"mod\u0065l":"gpt-4o","messages":[]}"#,
        r#"{"mod\u0065l":"gpt-4o-2024-08-06","messages":[]}"#,
    );
    rw(
        "alias given with escapes",
        CHAT,
        r#"{"model":"gpt\u002d4o","messages":[]}"#,
        r#"{"model":"gpt-4o-2024-08-06","messages":[]}"#,
    );
    rw(
        "store true under an escaped key",
        CHAT,
        &format!(r#"{{"model":"{M}","st\u006fre":true}}"#),
        &format!(r#"{{"model":"{M}","st\u006fre":false}}"#),
    );
    rw(
        "responses store null (default true) under ZDR",
        RESPONSES,
        &format!(r#"{{"model":"{M}","input":"hi","store":null}}"#),
        &format!(r#"{{"model":"{M}","input":"hi","store":false}}"#),
    );
    rw(
        "responses store missing, escaped lookalike key present",
        RESPONSES,
        &format!(r#"{{"model":"{M}","input":"hi","stor\u0065d":true}}"#),
        &format!(r#"{{"store":false,"model":"{M}","input":"hi","stor\u0065d":true}}"#),
    );
    cases
}

#[tokio::test]
async fn json_bodies_have_one_reading_or_none() {
    let env = env_with("").await;
    let n = run_cases(&env, json_cases(&env)).await;
    println!("JSON body cases: {n}");
    // A 100 000-deep body did not take the proxy down.
    assert_healthy(&env).await;
}

/// Declared types and encodings of a JSON body.
#[tokio::test]
async fn content_type_and_encoding_of_json_bodies() {
    let env = env_with("[limits]\nmax_body_bytes = 1048576\n").await;
    let body = chat("");
    let b = body.as_bytes();
    let post = |headers: &[(&str, &str)], payload: &[u8]| {
        let mut h = vec![("OpenAI-Project", "proj_eu")];
        h.extend_from_slice(headers);
        raw(&env, "POST", CHAT, &h, payload)
    };
    let ct = ("Content-Type", "application/json");
    let mut cases = vec![
        Case::new("application/json", post(&[ct], b), same("eu", CHAT, b)),
        Case::new(
            "case and utf-8 charset",
            post(&[("Content-Type", "Application/JSON; charset=UTF-8")], b),
            same("eu", CHAT, b),
        ),
        Case::new(
            "missing content-type",
            post(&[], b),
            Expect::Refused(400, "invalid_json"),
        ),
        Case::new(
            "text/plain",
            post(&[("Content-Type", "text/plain")], b),
            Expect::Refused(400, "invalid_json"),
        ),
        Case::new(
            "form-urlencoded",
            post(&[("Content-Type", "application/x-www-form-urlencoded")], b),
            Expect::Refused(400, "invalid_json"),
        ),
        Case::new(
            "json with latin1 charset",
            post(&[("Content-Type", "application/json; charset=latin1")], b),
            Expect::Refused(400, "invalid_json"),
        ),
        Case::new(
            "json with utf-16 charset",
            post(&[("Content-Type", "application/json; charset=utf-16")], b),
            Expect::Refused(400, "invalid_json"),
        ),
        Case::new(
            "application/jsonx",
            post(&[("Content-Type", "application/jsonx")], b),
            Expect::Refused(400, "invalid_json"),
        ),
        Case::new(
            "two content-types",
            post(&[ct, ("Content-Type", "text/plain")], b),
            Expect::Refused(400, "invalid_request"),
        ),
        Case::new(
            "two content-types, json second",
            post(&[("Content-Type", "text/plain"), ct], b),
            Expect::Refused(400, "invalid_request"),
        ),
        // Compressed bodies are inspected decompressed and forwarded as inspected.
        Case::new(
            "gzip",
            post(&[ct, ("Content-Encoding", "gzip")], &gzip(b)),
            same("eu", CHAT, b),
        ),
        Case::new(
            "x-gzip, upper case",
            post(&[ct, ("Content-Encoding", "X-GZIP")], &gzip(b)),
            same("eu", CHAT, b),
        ),
        Case::new(
            "deflate (zlib)",
            post(&[ct, ("Content-Encoding", "deflate")], &zlib(b)),
            same("eu", CHAT, b),
        ),
        Case::new(
            "identity",
            post(&[ct, ("Content-Encoding", "identity")], b),
            same("eu", CHAT, b),
        ),
        Case::new(
            "gzip with store true is rewritten after decompression",
            post(
                &[ct, ("Content-Encoding", "gzip")],
                &gzip(chat(",\"store\":true").as_bytes()),
            ),
            rewritten("eu", CHAT, chat(",\"store\":false").as_bytes()),
        ),
        Case::new(
            "gzip hiding a duplicate key",
            post(
                &[ct, ("Content-Encoding", "gzip")],
                &gzip(format!(r#"{{"model":"{M}","model":"gpt-4"}}"#).as_bytes()),
            ),
            Expect::Refused(400, "invalid_json"),
        ),
        Case::new(
            "gzip hiding an ineligible model",
            post(
                &[ct, ("Content-Encoding", "gzip")],
                &gzip(br#"{"model":"gpt-4","messages":[]}"#),
            ),
            Expect::Denied("model_not_eligible"),
        ),
        Case::new(
            "gzip declared, plain body",
            post(&[ct, ("Content-Encoding", "gzip")], b),
            Expect::Refused(400, "invalid_body"),
        ),
        Case::new(
            "truncated gzip",
            post(&[ct, ("Content-Encoding", "gzip")], &gzip(b)[..20]),
            Expect::Refused(400, "invalid_body"),
        ),
        Case::new(
            "br",
            post(&[ct, ("Content-Encoding", "br")], b),
            Expect::Refused(415, "unsupported_content_encoding"),
        ),
        Case::new(
            "zstd",
            post(&[ct, ("Content-Encoding", "zstd")], b),
            Expect::Refused(415, "unsupported_content_encoding"),
        ),
        Case::new(
            "unknown encoding",
            post(&[ct, ("Content-Encoding", "x-custom")], b),
            Expect::Refused(415, "unsupported_content_encoding"),
        ),
        Case::new(
            "stacked gzip, gzip",
            post(&[ct, ("Content-Encoding", "gzip, gzip")], &gzip(&gzip(b))),
            Expect::Refused(415, "unsupported_content_encoding"),
        ),
        Case::new(
            "two content-encoding headers",
            post(
                &[ct, ("Content-Encoding", "gzip"), ("Content-Encoding", "gzip")],
                &gzip(&gzip(b)),
            ),
            Expect::Refused(415, "unsupported_content_encoding"),
        ),
    ];
    // A bomb: 64 MiB of JSON whitespace in ~64 KiB of gzip, limit 1 MiB.
    let mut bomb_plain = chat("").into_bytes();
    bomb_plain.extend(std::iter::repeat_n(b' ', 64 << 20));
    let bomb = gzip(&bomb_plain);
    assert!(
        bomb.len() < 1 << 20,
        "the bomb itself is under the limit: {}",
        bomb.len()
    );
    cases.push(Case::new(
        "gzip bomb",
        post(&[ct, ("Content-Encoding", "gzip")], &bomb),
        Expect::Refused(413, "request_too_large"),
    ));
    let zbomb = zlib(&bomb_plain);
    cases.push(Case::new(
        "deflate bomb",
        post(&[ct, ("Content-Encoding", "deflate")], &zbomb),
        Expect::Refused(413, "request_too_large"),
    ));
    // Concatenated gzip members are one body (RFC 1952): both decompressed and inspected.
    let (first, second) = b.split_at(10);
    cases.push(Case::new(
        "two gzip members",
        post(
            &[ct, ("Content-Encoding", "gzip")],
            &[gzip(first), gzip(second)].concat(),
        ),
        same("eu", CHAT, b),
    ));
    let n = run_cases(&env, cases).await;
    println!("content-type/encoding cases: {n}");
    assert_healthy(&env).await;
}

/// Issue 10 (item 4): a body that decodes past 64 KiB finishes decoding off the runtime thread
/// (`pipeline::decode_body`); it is decided exactly as a small one. The content is varied text,
/// so the compressed bodies are large too.
#[tokio::test]
async fn large_encoded_bodies_are_decided_like_small_ones() {
    let env = env_with("[limits]\nmax_body_bytes = 1048576\n").await;
    let post = |encoding: &str, payload: &[u8]| {
        let h = [
            ("OpenAI-Project", "proj_eu"),
            ("Content-Type", "application/json"),
            ("Content-Encoding", encoding),
        ];
        raw(&env, "POST", CHAT, &h, payload)
    };
    // ~300 KiB of text that compresses to well over 64 KiB.
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let text: String = (0..300_000)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            char::from(b"abcdefghijklmnopqrstuvwxyz0123456789 "[(state % 37) as usize])
        })
        .collect();
    let long = |model: &str, extra: &str| {
        format!(r#"{{"model":"{model}","messages":[{{"role":"user","content":"{text}"}}]{extra}}}"#)
    };
    let plain = long(M, "");
    let coded = gzip(plain.as_bytes());
    assert!(coded.len() > 64 << 10, "compressed: {}", coded.len());
    let cases = vec![
        Case::new(
            "large gzip",
            post("gzip", &coded),
            same("eu", CHAT, plain.as_bytes()),
        ),
        Case::new(
            "large deflate",
            post("deflate", &zlib(plain.as_bytes())),
            same("eu", CHAT, plain.as_bytes()),
        ),
        Case::new(
            "large gzip, store true at the end is rewritten",
            post("gzip", &gzip(long(M, r#","store":true"#).as_bytes())),
            rewritten("eu", CHAT, long(M, r#","store":false"#).as_bytes()),
        ),
        Case::new(
            "large gzip, a duplicate model at the end",
            post("gzip", &gzip(long(M, r#","model":"gpt-4""#).as_bytes())),
            Expect::Refused(400, "invalid_json"),
        ),
        Case::new(
            "large gzip, an ineligible model",
            post("gzip", &gzip(long("gpt-4", "").as_bytes())),
            Expect::Denied("model_not_eligible"),
        ),
        Case::new(
            "large gzip, truncated past 64 KiB of output",
            post("gzip", &coded[..coded.len() - 1000]),
            Expect::Refused(400, "invalid_body"),
        ),
        Case::new(
            "large gzip, past the limit once decoded",
            post(
                "gzip",
                &gzip(long(M, &format!(r#","user":"{text}{text}{text}""#)).as_bytes()),
            ),
            Expect::Refused(413, "request_too_large"),
        ),
    ];
    let n = run_cases(&env, cases).await;
    println!("large encoded cases: {n}");
    assert_healthy(&env).await;
}
