//! Issue 10, items 3-4: a form is read one way, and what is inspected is what the upstream
//! decodes. Multipart charsets (the form's `charset` parameter, a part's charset, RFC 7578 §4.6
//! `_charset_`) that a server such as Starlette + python-multipart would decode by are refused;
//! purposes are exact; an upload checked as it streams may not carry a Content-Encoding.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use support::cases::*;
use support::*;

const AUDIO: &str = "/v1/audio/transcriptions";
const CT: &str = "multipart/form-data; boundary=XyZ";
const INVALID: Expect = Expect::Refused(400, "invalid_body");

fn part(headers: &str, content: &str) -> String {
    format!("--XyZ\r\n{headers}\r\n\r\n{content}\r\n")
}

fn named(name: &str, content: &str) -> String {
    part(
        &format!("Content-Disposition: form-data; name=\"{name}\""),
        content,
    )
}

fn file(name: &str, content: &str) -> String {
    part(
        &format!(
            "Content-Disposition: form-data; name=\"{name}\"; filename=\"a.jsonl\"\r\nContent-Type: application/octet-stream"
        ),
        content,
    )
}

fn form(parts: &[String]) -> String {
    format!("{}--XyZ--\r\n", parts.concat())
}

/// Starlette decodes every field by the form's `charset`: in UTF-7 `+AG0-odel` is `model`, so
/// a second model the proxy never saw. Only `boundary` and `charset=utf-8` are accepted.
fn charset_cases(env: &Env) -> Vec<Case> {
    let ok = form(&[named("model", "whisper-1"), file("file", "RIFF")]);
    let smuggled = form(&[
        named("model", "whisper-1"),
        named("+AG0-odel", "gpt-4o-transcribe"),
        file("file", "RIFF"),
    ]);
    let post = |ct: &str, body: &str| {
        raw(
            env,
            "POST",
            AUDIO,
            &[("OpenAI-Project", "proj_eu"), ("Content-Type", ct)],
            body.as_bytes(),
        )
    };
    let mut cases = vec![
        Case::new("baseline", post(CT, &ok), same("eu", AUDIO, ok.as_bytes())),
        Case::new(
            "charset=utf-8 is UTF-8",
            post(&format!("{CT}; charset=UTF-8"), &ok),
            same("eu", AUDIO, ok.as_bytes()),
        ),
    ];
    for ct in [
        format!("{CT}; charset=utf-7"),
        "multipart/form-data; charset=\"utf-7\"; boundary=XyZ".to_string(),
        format!("{CT}; charset=latin1"),
        format!("{CT}; charset*=utf-7''"),
        format!("{CT}; x-other=1"),
    ] {
        cases.push(Case::new(
            format!("Content-Type {ct:?}"),
            post(&ct, &smuggled),
            INVALID,
        ));
    }
    // RFC 7578 §4.6: a `_charset_` field names the charset of the others.
    cases.push(Case::new(
        "_charset_ field",
        post(
            CT,
            &form(&[
                named("_charset_", "utf-7"),
                named("model", "whisper-1"),
                file("file", "RIFF"),
            ]),
        ),
        INVALID,
    ));
    cases.push(Case::new(
        "_CHARSET_ field",
        post(
            CT,
            &form(&[
                named("model", "whisper-1"),
                named("_CHARSET_", "utf-7"),
                file("file", "RIFF"),
            ]),
        ),
        INVALID,
    ));
    // A part's own charset: a server decoding the field by it reads another value.
    for pct in [
        "text/plain; charset=utf-7",
        "text/plain;charset=\"UTF-16\"",
        "text/plain; charset*=utf-7''",
    ] {
        let body = form(&[
            part(
                &format!("Content-Disposition: form-data; name=\"model\"\r\nContent-Type: {pct}"),
                "whisper-1",
            ),
            file("file", "RIFF"),
        ]);
        cases.push(Case::new(
            format!("part Content-Type {pct:?}"),
            post(CT, &body),
            INVALID,
        ));
    }
    let utf8_part = form(&[
        part(
            "Content-Disposition: form-data; name=\"model\"\r\nContent-Type: text/plain; charset=utf-8",
            "whisper-1",
        ),
        file("file", "RIFF"),
    ]);
    cases.push(Case::new(
        "part charset=utf-8",
        post(CT, &utf8_part),
        same("eu", AUDIO, utf8_part.as_bytes()),
    ));
    cases
}

#[tokio::test]
async fn multipart_charsets_are_refused_unless_utf8() {
    let env = env_with("").await;
    let n = run_cases(&env, charset_cases(&env)).await;
    println!("charset cases: {n}");
    assert_healthy(&env).await;
}

/// `POST /v1/files` streams through watched: a purpose that is not exactly a known one, a
/// charset, or a coding the watcher does not read is refused, and the refused upload never
/// completes upstream.
#[tokio::test]
async fn uploads_checked_as_they_stream_are_read_one_way() {
    let env = env_with("").await;
    let bad_line = r#"{"custom_id":"1","method":"POST","url":"/v1/chat/completions","body":{"model":"gpt-4","messages":[]}}"#;
    let upload = |purpose: &str| form(&[named("purpose", purpose), file("file", &format!("{bad_line}\n"))]);
    // The issue's gzip: a member whose header (FNAME) holds a good form and whose data is a
    // bad batch. Read as bytes it is a form with purpose=assistants.
    let decoy = format!("\r\n{}", form(&[named("purpose", "assistants")]));
    let gz = {
        use std::io::Write;
        let mut e = flate2::GzBuilder::new()
            .filename(decoy.as_bytes())
            .write(Vec::new(), flate2::Compression::default());
        e.write_all(upload("batch").as_bytes()).unwrap();
        e.finish().unwrap()
    };
    type UploadCase = (
        String,
        Vec<(&'static str, String)>,
        Vec<u8>,
        Option<(u16, &'static str)>,
    );
    let mut cases: Vec<UploadCase> = vec![
        ("purpose assistants".into(), vec![], upload("assistants").into_bytes(), None),
        ("purpose fine-tune".into(), vec![], upload("fine-tune").into_bytes(), None),
        (
            "purpose batch (the bad line)".into(),
            vec![],
            upload("batch").into_bytes(),
            Some((403, "residency_policy_violation")),
        ),
        (
            "gzip member with a decoy form in its header".into(),
            vec![("Content-Encoding", "gzip".into())],
            gz,
            Some((415, "unsupported_content_encoding")),
        ),
        (
            "deflate-encoded upload".into(),
            vec![("Content-Encoding", "deflate".into())],
            upload("assistants").into_bytes(),
            Some((415, "unsupported_content_encoding")),
        ),
        (
            "charset=utf-7 upload".into(),
            vec![("Content-Type", format!("{CT}; charset=utf-7"))],
            form(&[named("purpose", "+AGI-atch"), file("file", &format!("{bad_line}\n"))]).into_bytes(),
            Some((400, "invalid_body")),
        ),
        (
            "_charset_ part".into(),
            vec![],
            form(&[
                named("_charset_", "utf-7"),
                named("purpose", "+AGI-atch"),
                file("file", &format!("{bad_line}\n")),
            ])
            .into_bytes(),
            Some((400, "invalid_body")),
        ),
        (
            "purpose part with charset=utf-7".into(),
            vec![],
            form(&[
                part(
                    "Content-Disposition: form-data; name=\"purpose\"\r\nContent-Type: text/plain; charset=utf-7",
                    "+AGI-atch",
                ),
                file("file", &format!("{bad_line}\n")),
            ])
            .into_bytes(),
            Some((400, "invalid_body")),
        ),
    ];
    for p in [
        "Batch",
        "BATCH",
        " batch",
        "batch ",
        "batch\t",
        "batch\u{0}",
        "batches",
        "",
    ] {
        cases.push((
            format!("purpose {p:?}"),
            vec![],
            upload(p).into_bytes(),
            Some((400, "invalid_body")),
        ));
    }
    let mut failures = Vec::new();
    for (name, extra, body, refusal) in cases {
        env.us.clear();
        env.eu.clear();
        let mut h: Vec<(&str, &str)> = vec![("OpenAI-Project", "proj_us")];
        if !extra.iter().any(|(k, _)| *k == "Content-Type") {
            h.push(("Content-Type", CT));
        }
        h.extend(extra.iter().map(|(k, v)| (*k, v.as_str())));
        let r = send_raw(env.proxy.addr, &raw(&env, "POST", "/v1/files", &h, &body)).await;
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let complete = env.us.requests().iter().any(|x| x.body[..] == body[..]);
        let outcome = match refusal {
            None if r.status == 200 && complete => Ok(()),
            None => Err(format!("not forwarded byte for byte: {r:?}")),
            Some((status, code)) => error_shape(&r, status, code).and_then(|()| {
                if complete {
                    Err("the refused upload completed upstream".to_string())
                } else {
                    Ok(())
                }
            }),
        };
        if let Err(why) = outcome {
            failures.push(format!("- {name}: {why}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
