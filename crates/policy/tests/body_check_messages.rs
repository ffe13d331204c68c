//! What a body check's denial tells the client: the value it found, where, and on which row it
//! was judged. `body_checks.rs` pins which rule fires; `cargo mutants` on `decide/body.rs`
//! showed the words could name the wrong value (or none) unnoticed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{catalog, decide, op, project, Req};
use policy::{Denial, FieldValue, Retention, Rule};

const RESP_MODEL: &str = "gpt-4.1-2025-04-14";

/// The denial of `POST /v1/responses` for `req` (store false, a listed model) in the EU,
/// without image approval unless `images`.
fn responses_denial(retention: Retention, images: bool, req: Req) -> Denial {
    let c = catalog();
    let mut p = project("eu", retention);
    p.image_inputs = Some(images);
    let req = req.model(RESP_MODEL).field("store", FieldValue::Bool(false));
    policy_denial(decide(&c, &p, op(&c, "POST", "/v1/responses"), &req))
}

fn policy_denial(d: policy::Decision) -> Denial {
    match d.denial {
        Some(den) => den,
        None => panic!("not denied: {:?}", d.verdict),
    }
}

fn starts(d: &Denial, want: &str) {
    assert!(
        d.message.starts_with(want),
        "{want:?} is not the start of {:?}",
        d.message
    );
}

#[test]
fn an_image_denial_names_the_type_it_found() {
    let mam = Retention::ModifiedAbuseMonitoring;
    // A type the check does not list.
    let d = responses_denial(
        mam,
        false,
        Req::new().check("responses_parts", Some("input_image")),
    );
    assert_eq!((d.rule, d.param.as_deref()), (Rule::ImageInput, Some("input")));
    starts(
        &d,
        "/v1/responses has type \"input_image\" at input[].content[].type, which is not known to be \
         free of images. ",
    );
    // A listed type that is not image-free (item_reference is listed as stateful).
    let d = responses_denial(
        mam,
        false,
        Req::new()
            .check("responses_items", Some("function_call_output"))
            .check("responses_items", Some("item_reference")),
    );
    assert_eq!(d.rule, Rule::ImageInput);
    starts(
        &d,
        "/v1/responses has type \"item_reference\" at input[].type, which is not known",
    );
    // Both: the unlisted type is named.
    let d = responses_denial(
        mam,
        false,
        Req::new()
            .check("responses_items", Some("item_reference"))
            .check("responses_items", Some("computer_call_output")),
    );
    starts(
        &d,
        "/v1/responses has type \"computer_call_output\" at input[].type, which",
    );
    // An object without the member, where no type is assumed for it.
    let d = responses_denial(mam, false, Req::new().check("responses_parts", None));
    starts(
        &d,
        "/v1/responses has an object without a type at input[].content[].type, which is not known",
    );
}

#[test]
fn a_stateful_type_is_named_among_others() {
    // The item_reference is found after image-free items: the message names it, not the first
    // type seen.
    let d = responses_denial(
        Retention::Zdr,
        true,
        Req::new()
            .check("responses_items", Some("message"))
            .check("responses_items", Some("function_call_output"))
            .check("responses_items", Some("item_reference")),
    );
    assert_eq!(
        (d.rule, d.param.as_deref()),
        (Rule::StatefulFeature, Some("input"))
    );
    starts(
        &d,
        "input[].type \"item_reference\" points at stored application state, which is not kept for \
         zero-data-retention project \"p-eu\"",
    );
}

#[test]
fn a_second_model_is_named_with_the_row_it_is_judged_on() {
    let c = catalog();
    let us = project("us", Retention::ModifiedAbuseMonitoring);
    let id = op(&c, "POST", "/v1/realtime/client_secrets");
    let req = Req::new()
        .check(
            "realtime_session_model",
            Some("gpt-4o-realtime-preview-2024-12-17"),
        )
        .check(
            "realtime_session_transcription_model",
            Some("gpt-4o-transcribe-diarize"),
        );
    let d = policy_denial(decide(&c, &us, id, &req));
    assert_eq!(
        (d.rule, d.param.as_deref()),
        (
            Rule::ModelNotEligible,
            Some("session.audio.input.transcription.model")
        )
    );
    starts(
        &d,
        "model \"gpt-4o-transcribe-diarize\" at session.audio.input.transcription.model is judged on \
         /v1/audio/transcriptions, and is not eligible for data residency there in region \"us\"",
    );
}
