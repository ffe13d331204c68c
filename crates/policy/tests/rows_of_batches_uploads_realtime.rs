//! Issue 12, items 3 to 5, through `decide`: a batch's files follow the /v1/batches row, the
//! Uploads API follows /v1/files by the purpose of its create call, and realtime's newer
//! operations follow the /v1/realtime row with the model read where each one carries it.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use policy::{precheck, upload_purpose, FieldValue, Retention, Rule, Verdict};

const MAM: Retention = Retention::ModifiedAbuseMonitoring;
const REALTIME: &str = "gpt-4o-realtime-preview-2024-12-17";

fn denied_by(d: &policy::Decision) -> Option<Rule> {
    d.denial.as_ref().map(|x| x.rule)
}

#[test]
fn a_batch_file_is_offered_wherever_batches_are() {
    let c = catalog();
    let by_id = [
        ("GET", "/v1/files/{file_id}"),
        ("GET", "/v1/files/{file_id}/content"),
        ("DELETE", "/v1/files/{file_id}"),
    ];
    for region in TABLE2_ALL {
        let p = project(region, MAM);
        for (m, t) in by_id {
            let d = decide(&c, &p, op(&c, m, t), &Req::new());
            assert_eq!(d.verdict, Verdict::Allow, "{m} {t} in {region}: {d:?}");
        }
        // The upload passes before its purpose is read, and a batch input passes once it is.
        let upload = op(&c, "POST", "/v1/files");
        assert!(precheck(&c, &p, upload).is_none(), "{region}");
        assert_eq!(decide(&c, &p, upload, &Req::new()).verdict, Verdict::Allow);
        assert_eq!(upload_purpose(&c, &p, upload, "batch"), None, "{region}");
        // Every other purpose keeps the /v1/files row: US and EU only.
        for purpose in ["assistants", "fine-tune", "vision", "user_data", "evals"] {
            let refusal = upload_purpose(&c, &p, upload, purpose);
            if ["us", "eu"].contains(&region) {
                assert_eq!(refusal, None, "{purpose} in {region}");
            } else {
                let r = refusal.unwrap_or_else(|| panic!("{purpose} in {region} passed"));
                assert_eq!(r.rule, Rule::EndpointRegion);
                assert_eq!(r.param.as_deref(), Some("purpose"));
                assert!(
                    r.message.contains(&format!("purpose \"{purpose}\"")),
                    "{}",
                    r.message
                );
                assert!(
                    r.message.contains("Only uploads with purpose \"batch\""),
                    "{}",
                    r.message
                );
            }
        }
        // Listing every file is not a batch's need: it keeps the /v1/files row.
        let list = decide(&c, &p, op(&c, "GET", "/v1/files"), &Req::new());
        let expect = (!["us", "eu"].contains(&region)).then_some(Rule::EndpointRegion);
        assert_eq!(denied_by(&list), expect, "GET /v1/files in {region}");
    }
}

#[test]
fn a_batch_file_is_refused_where_neither_row_is_offered_and_under_zdr() {
    let c = catalog();
    let files = [
        ("POST", "/v1/files"),
        ("GET", "/v1/files/{file_id}"),
        ("GET", "/v1/files/{file_id}/content"),
        ("DELETE", "/v1/files/{file_id}"),
    ];
    for (m, t) in files {
        let id = op(&c, m, t);
        // gb has no rows in the seed edition: neither /v1/files nor /v1/batches.
        let gb = precheck(&c, &project("gb", MAM), id).expect("refused in gb");
        assert_eq!(denied_by(&gb), Some(Rule::EndpointRegion), "{m} {t}");
        // Both rows keep application state: "No, if used application state will be stored".
        for region in ["jp", "eu", "us", "global"] {
            let d = precheck(&c, &project(region, Retention::Zdr), id).expect("refused under ZDR");
            assert!(d.rules.contains(Rule::ZdrEndpoint), "{m} {t} in {region}: {d:?}");
        }
    }
    // The purpose cannot reopen what the rows refuse.
    let upload = op(&c, "POST", "/v1/files");
    let r = upload_purpose(&c, &project("jp", Retention::Zdr), upload, "batch").unwrap();
    assert_eq!(r.rule, Rule::ZdrEndpoint);
    assert!(
        r.message.contains("judged on the /v1/batches row"),
        "{}",
        r.message
    );
}

#[test]
fn uploads_follow_the_files_row_by_purpose() {
    let c = catalog();
    let create = op(&c, "POST", "/v1/uploads");
    let purpose = |p: &'static str| Req::new().field("purpose", FieldValue::String(p));
    let us = project("us", MAM);
    for p in ["assistants", "fine-tune", "vision", "user_data", "evals"] {
        let d = decide(&c, &us, create, &purpose(p));
        assert_eq!(d.verdict, Verdict::Allow, "{p}: {d:?}");
        for region in ["jp", "ca", "gb"] {
            let d = decide(&c, &project(region, MAM), create, &purpose(p));
            assert_eq!(denied_by(&d), Some(Rule::EndpointRegion), "{p} in {region}");
        }
        let d = decide(&c, &project("eu", Retention::Zdr), create, &purpose(p));
        assert_eq!(denied_by(&d), Some(Rule::ZdrEndpoint), "{p} under ZDR");
    }
    // A batch input cannot be checked across parts: refused everywhere, naming POST /v1/files.
    for region in ["us", "eu", "global", "jp"] {
        let d = decide(&c, &project(region, MAM), create, &purpose("batch"));
        assert_eq!(d.verdict, Verdict::Deny, "{region}");
        assert!(d.rules.contains(Rule::UnknownEndpoint), "{region}: {d:?}");
    }
    let d = decide(&c, &us, create, &purpose("batch"));
    let denial = d.denial.unwrap();
    assert_eq!(denial.param.as_deref(), Some("purpose"));
    assert!(denial.message.contains("POST /v1/files"), "{}", denial.message);
    // Anything that is not exactly an accepted purpose is refused.
    for bad in [
        Req::new(),
        purpose("Batch"),
        purpose("batch "),
        purpose("fine_tune"),
        Req::new().field("purpose", FieldValue::Null),
        Req::new().field("purpose", FieldValue::Number),
    ] {
        let d = decide(&c, &us, create, &bad);
        assert_eq!(denied_by(&d), Some(Rule::UnknownEndpoint), "{:?}", bad.fields);
        assert!(d.denial.unwrap().message.contains("exactly one of"));
    }
}

#[test]
fn upload_parts_complete_and_cancel_follow_the_files_row() {
    let c = catalog();
    for t in [
        "/v1/uploads/{upload_id}/parts",
        "/v1/uploads/{upload_id}/complete",
        "/v1/uploads/{upload_id}/cancel",
    ] {
        let id = op(&c, "POST", t);
        for (region, retention, expect) in [
            ("us", MAM, None),
            ("eu", MAM, None),
            ("global", Retention::Default, None),
            ("jp", MAM, Some(Rule::EndpointRegion)),
            ("kr", MAM, Some(Rule::EndpointRegion)),
            ("eu", Retention::Zdr, Some(Rule::ZdrEndpoint)),
        ] {
            let d = decide(&c, &project(region, retention), id, &Req::new());
            assert_eq!(denied_by(&d), expect, "{t} in {region} {retention:?}");
        }
    }
}

#[test]
fn realtime_operations_read_the_model_where_they_carry_it() {
    let c = catalog();
    let us = project("us", MAM);
    for (t, check) in [
        ("/v1/realtime/client_secrets", "realtime_session_model"),
        ("/v1/realtime/calls", "realtime_session_model"),
    ] {
        let id = op(&c, "POST", t);
        let ok = decide(&c, &us, id, &Req::new().check(check, Some(REALTIME)));
        assert_eq!(ok.verdict, Verdict::Allow, "{t}: {ok:?}");
        let mini = Req::new().check(check, Some("gpt-4o-mini-realtime-preview-2024-12-17"));
        assert_eq!(decide(&c, &us, id, &mini).verdict, Verdict::Allow, "{t}");
        // Not a listed snapshot, no model in the session, no session at all: refused.
        for req in [
            Req::new().check(check, Some("gpt-realtime")),
            Req::new().check(check, None),
            Req::new(),
        ] {
            let d = decide(&c, &us, id, &req);
            assert_eq!(
                denied_by(&d),
                Some(Rule::ModelNotEligible),
                "{t} {:?}",
                req.checks
            );
            assert_eq!(d.denial.unwrap().param.as_deref(), Some("session.model"));
        }
        // US only.
        for region in ["eu", "jp", "gb"] {
            let d = decide(
                &c,
                &project(region, MAM),
                id,
                &Req::new().check(check, Some(REALTIME)),
            );
            assert_eq!(denied_by(&d), Some(Rule::EndpointRegion), "{t} in {region}");
        }
        // Global is not a residency region: any model; realtime is ZDR-eligible.
        let global = project("global", Retention::Zdr);
        let d = decide(&c, &global, id, &Req::new().check(check, Some("gpt-realtime")));
        assert_eq!(d.verdict, Verdict::Allow, "{t} in global: {d:?}");
    }
}

#[test]
fn a_nested_model_is_judged_as_sent_not_through_aliases() {
    let c = catalog();
    let mut p = project("us", MAM);
    p.aliases.insert("rt".into(), REALTIME.into());
    let id = op(&c, "POST", "/v1/realtime/client_secrets");
    let d = decide(
        &c,
        &p,
        id,
        &Req::new().check("realtime_session_model", Some("rt")),
    );
    assert_eq!(denied_by(&d), Some(Rule::ModelNotEligible));
    assert!(d.rewrites.model.is_none());
    let message = d.denial.unwrap().message;
    assert!(
        message.contains("aliases are applied to a top-level model field only"),
        "{message}"
    );
}

#[test]
fn a_transcription_session_names_no_realtime_snapshot() {
    let c = catalog();
    let id = op(&c, "POST", "/v1/realtime/transcription_sessions");
    let check = "realtime_transcription_model";
    for model in ["gpt-4o-transcribe", "whisper-1", REALTIME] {
        let d = decide(&c, &project("us", MAM), id, &Req::new().check(check, Some(model)));
        let expect = (model != REALTIME).then_some(Rule::ModelNotEligible);
        assert_eq!(denied_by(&d), expect, "{model}: {d:?}");
    }
    let d = decide(&c, &project("us", MAM), id, &Req::new());
    assert_eq!(denied_by(&d), Some(Rule::ModelNotEligible));
    let global = project("global", Retention::Default);
    let d = decide(
        &c,
        &global,
        id,
        &Req::new().check(check, Some("gpt-4o-transcribe")),
    );
    assert_eq!(d.verdict, Verdict::Allow);
}

#[test]
fn a_session_transcription_model_is_judged_on_the_transcriptions_row() {
    let c = catalog();
    let us = project("us", MAM);
    for (t, primary, transcription) in [
        (
            "/v1/realtime/client_secrets",
            Some("realtime_session_model"),
            "realtime_session_transcription_model",
        ),
        (
            "/v1/realtime/calls",
            Some("realtime_session_model"),
            "realtime_session_transcription_model",
        ),
        (
            "/v1/realtime/sessions",
            None,
            "realtime_input_transcription_model",
        ),
    ] {
        let id = op(&c, "POST", t);
        let base = || match primary {
            Some(check) => Req::new().check(check, Some(REALTIME)),
            None => Req::new().model(REALTIME),
        };
        // Absent: nothing to judge. A transcription model of Table 2's audio row: allowed.
        assert_eq!(decide(&c, &us, id, &base()).verdict, Verdict::Allow, "{t}");
        for m in ["whisper-1", "gpt-4o-transcribe", "gpt-4o-mini-transcribe"] {
            let d = decide(&c, &us, id, &base().check(transcription, Some(m)));
            assert_eq!(d.verdict, Verdict::Allow, "{t} {m}: {d:?}");
        }
        // Anything else is refused, naming where it was read and the row it is judged on.
        let d = decide(
            &c,
            &us,
            id,
            &base().check(transcription, Some("gpt-4o-transcribe-diarize")),
        );
        assert_eq!(denied_by(&d), Some(Rule::ModelNotEligible), "{t}");
        let denial = d.denial.unwrap();
        assert!(
            denial.message.contains("/v1/audio/transcriptions"),
            "{}",
            denial.message
        );
        assert!(denial.param.unwrap().ends_with("transcription.model"));
        // Global is not a residency region.
        let global = project("global", Retention::Default);
        let d = decide(
            &c,
            &global,
            id,
            &base().check(transcription, Some("gpt-4o-transcribe-diarize")),
        );
        assert_eq!(d.verdict, Verdict::Allow, "{t} in global");
    }
}
