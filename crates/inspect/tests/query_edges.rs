//! Percent-decoding of every ASCII byte, in both hex cases (the unit tests next to
//! `query.rs` used only a few upper-case escapes; `cargo mutants` showed the lower-case digits
//! could decode to anything without a test noticing).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use inspect::query_param;

#[test]
fn every_ascii_escape_in_both_cases() {
    for byte in 0u8..0x80 {
        let want = (byte as char).to_string();
        for escaped in [format!("%{byte:02x}"), format!("%{byte:02X}")] {
            let query = format!("v={escaped}&x=1");
            let got = query_param(&query, "v").unwrap();
            assert_eq!(got.as_deref(), Some(want.as_str()), "{escaped}");
            // And in a name: `%6d%6f%64%65%6c` is `model`.
            let query = format!("{escaped}=1");
            let got = query_param(&query, &want).unwrap();
            assert_eq!(got.as_deref(), Some("1"), "{escaped}");
        }
    }
    assert_eq!(
        query_param("%6d%6F%64%65%6c=gpt&b=%c3%a9%C3%A9", "model")
            .unwrap()
            .as_deref(),
        Some("gpt")
    );
    assert_eq!(query_param("b=%c3%a9%C3%A9", "b").unwrap().as_deref(), Some("éé"));
    for bad in [
        "v=%g0", "v=%0g", "v=%G0", "v=%-1", "v=%+1", "v=% 1", "v=%c3", "v=%e9",
    ] {
        assert!(query_param(bad, "v").is_err(), "{bad}");
    }
}
