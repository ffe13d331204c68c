//! Issue 6, part 1 (multipart): form bodies on audio transcriptions (eu, ZDR: `whisper-1`
//! eligible) and images edits (global ZDR: only `gpt-image-1`) whose field names or framing
//! could be read two ways. Refused bodies reach no upstream; accepted ones arrive byte for byte.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use support::cases::*;
use support::*;

const AUDIO: &str = "/v1/audio/transcriptions";
const EDITS: &str = "/v1/images/edits";
const CT: &str = "multipart/form-data; boundary=XyZ";

/// A part: its header lines (without the trailing CRLF CRLF) and content.
fn part(headers: &str, content: &str) -> String {
    format!("--XyZ\r\n{headers}\r\n\r\n{content}\r\n")
}

fn named(name: &str, content: &str) -> String {
    part(
        &format!("Content-Disposition: form-data; name=\"{name}\""),
        content,
    )
}

fn file(name: &str) -> String {
    part(
        &format!("Content-Disposition: form-data; name=\"{name}\"; filename=\"a.bin\"\r\nContent-Type: application/octet-stream"),
        "\u{1}\u{2}RIFF--XyZ-not-a-boundary",
    )
}

/// Parts then the closing delimiter.
fn form(parts: &[String]) -> String {
    format!("{}--XyZ--\r\n", parts.concat())
}

fn post(env: &Env, project: &str, path: &str, ct: &[&str], body: &[u8]) -> Vec<u8> {
    let mut h = vec![("OpenAI-Project", project)];
    h.extend(ct.iter().map(|c| ("Content-Type", *c)));
    raw(env, "POST", path, &h, body)
}

fn audio_cases(env: &Env) -> Vec<Case> {
    let ok_form = form(&[named("model", "whisper-1"), file("file")]);
    let mut cases = Vec::new();
    let mut fwd = |name: &str, ct: &str, body: &str| {
        cases.push(Case::new(
            name,
            post(env, "proj_eu", AUDIO, &[ct], body.as_bytes()),
            same("eu", AUDIO, body.as_bytes()),
        ));
    };
    fwd("baseline", CT, &ok_form);
    fwd(
        "quoted boundary, odd case",
        "Multipart/Form-Data; BOUNDARY=\"XyZ\"",
        &ok_form,
    );
    fwd(
        "header name and disposition type in other case",
        CT,
        &form(&[
            part("content-disposition: FORM-DATA; name=\"model\"", "whisper-1"),
            file("file"),
        ]),
    );
    fwd(
        "lookalike names are other fields",
        CT,
        &form(&[
            named("model", "whisper-1"),
            named("Model", "gpt-4"),
            named("model ", "gpt-4"),
            named("model[]", "gpt-4"),
            file("file"),
        ]),
    );

    let mut bad = |name: &str, ct: &[&str], body: &str| {
        cases.push(Case::new(
            name,
            post(env, "proj_eu", AUDIO, ct, body.as_bytes()),
            Expect::Refused(400, "invalid_body"),
        ));
    };
    let two = |a: &str, b: &str| form(&[named("model", a), named("model", b), file("file")]);
    bad("model twice, same value", &[CT], &two("whisper-1", "whisper-1"));
    bad("model twice, eligible first", &[CT], &two("whisper-1", "gpt-4"));
    bad("model twice, eligible last", &[CT], &two("gpt-4", "whisper-1"));
    let cd = |params: &str| {
        form(&[
            part(&format!("Content-Disposition: form-data; {params}"), "whisper-1"),
            file("file"),
        ])
    };
    bad("unquoted name", &[CT], &cd("name=model"));
    // Parameter names are case-insensitive to some servers and not to others (multer).
    bad("upper-case NAME parameter", &[CT], &cd("NAME=\"model\""));
    bad("mixed-case name parameter", &[CT], &cd("namE=\"model\""));
    // Servers that search for `name` (multer) stop at `nameX=`, or find one in a filename.
    bad(
        "parameter starting with name",
        &[CT],
        &cd("nameame=x; name=\"model\""),
    );
    bad("unknown parameter", &[CT], &cd("name=\"model\"; charset=utf-8"));
    bad(
        "name= inside a quoted filename",
        &[CT],
        &form(&[
            part(
                "Content-Disposition: form-data; filename=\"a; name=model;\"; name=\"prompt\"",
                "gpt-4",
            ),
            named("model", "whisper-1"),
            file("file"),
        ]),
    );
    bad("two name parameters", &[CT], &cd("name=\"x\"; name=\"model\""));
    bad("name* (RFC 5987)", &[CT], &cd("name*=utf-8''model"));
    bad("name and name*", &[CT], &cd("name=\"x\"; name*=utf-8''model"));
    bad("escaped quote in name", &[CT], &cd("name=\"mod\\\"el\""));
    bad("backslash in name", &[CT], &cd("name=\"mod\\el\""));
    bad("unterminated quoted name", &[CT], &cd("name=\"model"));
    bad("single-quoted name", &[CT], &cd("name='model'"));
    bad("no name", &[CT], &cd("filename=\"x\""));
    bad(
        "two Content-Disposition headers",
        &[CT],
        &form(&[
            part(
                "Content-Disposition: form-data; name=\"x\"\r\nContent-Disposition: form-data; name=\"model\"",
                "gpt-4",
            ),
            named("model", "whisper-1"),
            file("file"),
        ]),
    );
    bad(
        "folded Content-Disposition",
        &[CT],
        &form(&[
            part("Content-Disposition: form-data;\r\n name=\"model\"", "whisper-1"),
            file("file"),
        ]),
    );
    bad(
        "not form-data",
        &[CT],
        &form(&[
            part("Content-Disposition: attachment; name=\"model\"", "whisper-1"),
            file("file"),
        ]),
    );
    bad(
        "base64 transfer encoding on model",
        &[CT],
        &form(&[
            part(
                "Content-Disposition: form-data; name=\"model\"\r\nContent-Transfer-Encoding: base64",
                "whisper-1",
            ),
            file("file"),
        ]),
    );
    bad(
        "quoted-printable transfer encoding on model",
        &[CT],
        &form(&[
            part(
                "Content-Disposition: form-data; name=\"model\"\r\nContent-Transfer-Encoding: quoted-printable",
                "whisper-1",
            ),
            file("file"),
        ]),
    );
    bad(
        "preamble hiding a part",
        &[CT],
        &format!(
            "x\n{}",
            form(&[named("model", "gpt-4"), named("model", "whisper-1"), file("file")])
        ),
    );
    bad(
        "preamble hiding an earlier model",
        &[CT],
        &format!(
            "x\n--XyZ\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\ngpt-4\r\n{}",
            ok_form
        ),
    );
    bad(
        "missing closing delimiter",
        &[CT],
        &[named("model", "whisper-1"), file("file")].concat(),
    );
    bad("no parts", &[CT], "--XyZ--\r\n");
    bad(
        "boundary not followed by CRLF",
        &[CT],
        &ok_form.replacen("--XyZ\r\n", "--XyZ\n", 1),
    );
    bad(
        "LF-only part headers",
        &[CT],
        &ok_form.replace("\"model\"\r\n\r\n", "\"model\"\n\n"),
    );
    bad("no boundary parameter", &["multipart/form-data"], &ok_form);
    bad(
        "two boundary parameters",
        &["multipart/form-data; boundary=XyZ; boundary=Other"],
        &ok_form,
    );
    bad("empty boundary", &["multipart/form-data; boundary="], &ok_form);
    bad(
        "escaped quoted boundary",
        &["multipart/form-data; boundary=\"X\\yZ\""],
        &ok_form,
    );
    bad("multipart/mixed", &["multipart/mixed; boundary=XyZ"], &ok_form);
    bad("json content-type", &["application/json"], &ok_form);
    bad("no content-type", &[], &ok_form);

    let mut deny = |name: &str, body: &str| {
        cases.push(Case::new(
            name,
            post(env, "proj_eu", AUDIO, &[CT], body.as_bytes()),
            Expect::Denied("model_not_eligible"),
        ));
    };
    deny(
        "ineligible model",
        &form(&[named("model", "gpt-4"), file("file")]),
    );
    deny(
        "model with trailing CRLF",
        &form(&[named("model", "whisper-1\r\n"), file("file")]),
    );
    deny(
        "model with trailing space",
        &form(&[named("model", "whisper-1 "), file("file")]),
    );
    deny(
        "model upper case",
        &form(&[named("model", "WHISPER-1"), file("file")]),
    );
    deny("model missing", &form(&[file("file")]));
    deny(
        "model only under a lookalike name",
        &form(&[named("Model", "whisper-1"), file("file")]),
    );
    // Content-Type is a singleton: a second one is ambiguous framing, refused up front.
    for (name, ct) in [
        (
            "two content-types with other boundaries",
            [CT, "multipart/form-data; boundary=Other"],
        ),
        ("two identical content-types", [CT, CT]),
    ] {
        cases.push(Case::new(
            name,
            post(env, "proj_eu", AUDIO, &ct, ok_form.as_bytes()),
            Expect::Refused(400, "invalid_request"),
        ));
    }
    // A compressed form is inspected decompressed and forwarded as inspected.
    let gz = {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(ok_form.as_bytes()).unwrap();
        e.finish().unwrap()
    };
    let enc = |coding: &str, body: &[u8]| {
        raw(
            env,
            "POST",
            AUDIO,
            &[
                ("OpenAI-Project", "proj_eu"),
                ("Content-Type", CT),
                ("Content-Encoding", coding),
            ],
            body,
        )
    };
    cases.push(Case::new(
        "gzip form",
        enc("gzip", &gz),
        same("eu", AUDIO, ok_form.as_bytes()),
    ));
    cases.push(Case::new(
        "br form",
        enc("br", ok_form.as_bytes()),
        Expect::Refused(415, "unsupported_content_encoding"),
    ));
    let mut invalid_utf8 = form(&[named("model", "whisper-X"), file("file")]).into_bytes();
    let at = invalid_utf8.windows(9).position(|w| w == b"whisper-X").unwrap() + 8;
    invalid_utf8[at] = 0xff;
    cases.push(Case::new(
        "invalid UTF-8 model",
        post(env, "proj_eu", AUDIO, &[CT], &invalid_utf8),
        Expect::Refused(400, "invalid_body"),
    ));
    cases
}

#[tokio::test]
async fn audio_transcription_forms_have_one_reading_or_none() {
    let env = env_with("").await;
    let n = run_cases(&env, audio_cases(&env)).await;
    println!("audio multipart cases: {n}");
    assert_healthy(&env).await;
}

#[tokio::test]
async fn images_edits_forms_have_one_reading_or_none() {
    let env = env_with("").await;
    let ok = form(&[
        named("model", "gpt-image-1"),
        named("prompt", "a cat"),
        file("image"),
    ]);
    let p = |body: &str| post(&env, "proj_glob", EDITS, &[CT], body.as_bytes());
    let cases = vec![
        Case::new("baseline gpt-image-1", p(&ok), same("us", EDITS, ok.as_bytes())),
        Case::new(
            "dall-e-2 is not ZDR-compatible",
            p(&form(&[named("model", "dall-e-2"), file("image")])),
            Expect::Denied("zdr_model"),
        ),
        Case::new(
            "model repeated: gpt-image-1 then dall-e-2",
            p(&form(&[
                named("model", "gpt-image-1"),
                named("model", "dall-e-2"),
                file("image"),
            ])),
            Expect::Refused(400, "invalid_body"),
        ),
        Case::new(
            "image[] parts repeat freely; model once",
            p(&form(&[
                named("model", "gpt-image-1"),
                file("image[]"),
                file("image[]"),
            ])),
            same(
                "us",
                EDITS,
                form(&[named("model", "gpt-image-1"), file("image[]"), file("image[]")]).as_bytes(),
            ),
        ),
        Case::new(
            "model as name* only",
            p(&form(&[
                part("Content-Disposition: form-data; name*=UTF-8''model", "dall-e-2"),
                file("image"),
            ])),
            Expect::Refused(400, "invalid_body"),
        ),
        Case::new(
            "JSON body on the multipart endpoint",
            raw(
                &env,
                "POST",
                EDITS,
                &[
                    ("OpenAI-Project", "proj_glob"),
                    ("Content-Type", "application/json"),
                ],
                br#"{"model":"dall-e-2","prompt":"x"}"#,
            ),
            Expect::Refused(400, "invalid_body"),
        ),
    ];
    let n = run_cases(&env, cases).await;
    println!("images edits multipart cases: {n}");
}

/// Batch inputs stream through watched (`POST /v1/files`, purpose=batch): a `purpose` or file
/// the watcher reads differently from the upstream would let an unchecked batch through.
/// A refused upload never completes upstream (its last bytes are held back).
#[tokio::test]
async fn batch_uploads_are_read_once_or_refused() {
    let env = env_with("").await;
    let bad_line = r#"{"custom_id":"1","method":"POST","url":"/v1/chat/completions","body":{"model":"gpt-4","messages":[]}}"#;
    // A line meets its endpoint's row and the /v1/batches row (issue 12): a chat snapshot both list.
    let good_line = r#"{"custom_id":"1","method":"POST","url":"/v1/chat/completions","body":{"model":"gpt-4o-2024-08-06","messages":[]}}"#;
    let upload = |purpose_part: &str, line: &str| {
        format!(
            "{purpose_part}{}--XyZ--\r\n",
            part(
                "Content-Disposition: form-data; name=\"file\"; filename=\"b.jsonl\"\r\nContent-Type: application/jsonl",
                &format!("{line}\n"),
            )
        )
    };
    let batch = named("purpose", "batch");
    let b64 = part(
        "Content-Disposition: form-data; name=\"purpose\"\r\nContent-Transfer-Encoding: base64",
        "YmF0Y2g=",
    );
    let gz = {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(upload(&batch, bad_line).as_bytes()).unwrap();
        e.finish().unwrap()
    };
    type BatchCase<'a> = (&'a str, Vec<(&'a str, &'a str)>, Vec<u8>, Option<(u16, &'a str)>);
    let cases: Vec<BatchCase> = vec![
        ("good batch", vec![], upload(&batch, good_line).into_bytes(), None),
        (
            "bad line",
            vec![],
            upload(&batch, bad_line).into_bytes(),
            Some((403, "residency_policy_violation")),
        ),
        (
            "base64 purpose",
            vec![],
            upload(&b64, bad_line).into_bytes(),
            Some((400, "invalid_body")),
        ),
        (
            "purpose=batch hidden in the preamble",
            vec![],
            format!("x\n{batch}{}", upload(&named("purpose", "assistants"), bad_line)).into_bytes(),
            Some((400, "invalid_body")),
        ),
        (
            // Issue 10: refused for its coding (415), not by chance of the gzip bytes.
            "gzip-encoded upload",
            vec![("Content-Encoding", "gzip")],
            gz,
            Some((415, "unsupported_content_encoding")),
        ),
    ];
    for (name, extra, body, refusal) in cases {
        env.us.clear();
        env.eu.clear();
        let mut h = vec![("OpenAI-Project", "proj_us"), ("Content-Type", CT)];
        h.extend(extra);
        let r = send_raw(env.proxy.addr, &raw(&env, "POST", "/v1/files", &h, &body)).await;
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let complete = env.us.requests().iter().any(|x| x.body[..] == body[..]);
        match refusal {
            None => {
                assert_eq!(r.status, 200, "{name}: {r:#?}");
                assert!(complete, "{name}: not forwarded byte for byte");
            }
            Some((status, code)) => {
                if let Err(why) = error_shape(&r, status, code) {
                    panic!("{name}: {why}");
                }
                assert!(!complete, "{name}: the refused upload completed upstream");
            }
        }
        assert_eq!(env.eu.request_count(), 0, "{name}");
    }
}
