use super::*;
use policy::{Project, Retention};
use proptest::prelude::*;

const EU_KEY: &str = "sk-eu-0001";
const US_KEY: &str = "sk-us-0001";

fn project(name: &str, openai_project: &str, key: Option<&str>, default: bool) -> Project {
    Project {
        default,
        openai_project: Some(openai_project.into()),
        api_key_sha256: key
            .map(|k| vec![<[u8; 32]>::from(Sha256::digest(k.as_bytes()))])
            .unwrap_or_default(),
        ..Project::with_defaults(name, "eu", Retention::Zdr)
    }
}

/// eu (0, key EU_KEY, default), us (1, key US_KEY), eu-mam (2, header only).
fn projects() -> ProjectSet {
    ProjectSet::new(vec![
        project("eu", "proj_eu", Some(EU_KEY), true),
        project("us", "proj_us", Some(US_KEY), false),
        project("eu-mam", "proj_eu_mam", None, false),
    ])
    .unwrap()
}

fn run(set: &ProjectSet, underscores: Underscores, headers: &[(&str, &str)]) -> Result<usize, Refusal> {
    let mut h = HeaderMap::new();
    for (n, v) in headers {
        h.append(
            HeaderName::from_bytes(n.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    select(
        Rules {
            projects: set,
            require_client_key: false,
            underscores,
        },
        &h,
    )
}

fn sel(headers: &[(&str, &str)]) -> Result<usize, Refusal> {
    run(&projects(), Underscores::Drop, headers)
}

fn malformed(r: Result<usize, Refusal>) -> bool {
    matches!(r, Err(Refusal::Malformed(_)))
}

fn ambiguous(r: Result<usize, Refusal>) -> bool {
    matches!(r, Err(Refusal::Ambiguous(_)))
}

#[test]
fn the_bearer_scheme_is_case_insensitive_and_the_key_always_wins() {
    // RFC 9110 §11.1: the scheme is case-insensitive; §11.6.2: 1*SP before the token (tabs
    // too: a lenient server reads them as the gap).
    for scheme in [
        "Bearer ",
        "bearer ",
        "BEARER ",
        "bEaReR ",
        "Bearer  ",
        "Bearer\t",
        "Bearer \t ",
    ] {
        let auth = format!("{scheme}{EU_KEY}");
        assert_eq!(sel(&[("authorization", &auth)]), Ok(0), "{auth:?}");
        assert!(
            ambiguous(sel(&[("authorization", &auth), ("openai-project", "proj_us")])),
            "{auth:?} with another project's header must be refused"
        );
        let us = format!("{scheme}{US_KEY}");
        assert_eq!(sel(&[("authorization", &us)]), Ok(1), "{us:?}");
    }
}

#[test]
fn a_credential_that_does_not_parse_is_refused_not_absent() {
    for v in [
        "",
        "Bearer",
        "Bearer ",
        EU_KEY,
        "Basic dXNlcjpwYXNz",
        "Token sk-eu-0001",
        "Bearer sk-eu 0001",
        "Bearer sk-eu,0001",
        "Bearer \"sk-eu-0001\"",
        "Bearer sk=eu",
        "Bearer=sk-eu-0001",
    ] {
        assert!(malformed(sel(&[("authorization", v)])), "{v:?}");
    }
    // b64token: trailing '=' are part of the token.
    assert_eq!(sel(&[("authorization", "Bearer abc+/==")]), Ok(0));
}

#[test]
fn realtime_subprotocol_credentials_are_read() {
    let us = format!("realtime, openai-insecure-api-key.{US_KEY}, openai-beta.realtime-v1");
    assert_eq!(sel(&[("sec-websocket-protocol", &us)]), Ok(1));
    // Over several lines, any case for the prefix.
    let spread = [
        ("sec-websocket-protocol", "realtime"),
        ("sec-websocket-protocol", "OpenAI-Insecure-API-Key.sk-us-0001"),
    ];
    assert_eq!(sel(&spread), Ok(1));
    // The key wins over a project entry or header naming another project.
    let with_project = format!("realtime, openai-insecure-api-key.{EU_KEY}, openai-project.proj_us");
    assert!(ambiguous(sel(&[("sec-websocket-protocol", &with_project)])));
    let key = format!("realtime, openai-insecure-api-key.{EU_KEY}");
    assert!(ambiguous(sel(&[
        ("sec-websocket-protocol", &key),
        ("openai-project", "proj_us")
    ])));
    // Two keys that differ, or one twice.
    let auth = format!("Bearer {EU_KEY}");
    assert!(ambiguous(sel(&[
        ("authorization", &auth),
        ("sec-websocket-protocol", &us)
    ])));
    let same = format!("openai-insecure-api-key.{EU_KEY}");
    assert_eq!(
        sel(&[("authorization", &auth), ("sec-websocket-protocol", &same)]),
        Ok(0)
    );
    let twice = format!("openai-insecure-api-key.{EU_KEY}, openai-insecure-api-key.{EU_KEY}");
    assert!(ambiguous(sel(&[("sec-websocket-protocol", &twice)])));
    // A project entry selects like the header; both present must agree.
    assert_eq!(
        sel(&[("sec-websocket-protocol", "realtime, openai-project.proj_us")]),
        Ok(1)
    );
    assert!(ambiguous(sel(&[
        ("sec-websocket-protocol", "openai-project.proj_us"),
        ("openai-project", "proj_eu_mam")
    ])));
    assert_eq!(
        sel(&[
            ("sec-websocket-protocol", "openai-project.proj_us"),
            ("openai-project", "proj_us")
        ]),
        Ok(1)
    );
    // Malformed entries are refused.
    for v in [
        "openai-insecure-api-key.",
        "openai-insecure-api-key",
        "openai-insecure-api-key-x.sk",
        "openai-key.sk-eu-0001",
        "openai-project.",
        "openai-project.a b",
    ] {
        let r = sel(&[("sec-websocket-protocol", v)]);
        assert!(r.is_err(), "{v:?}: {r:?}");
    }
}

#[test]
fn project_and_organization_selectors_are_one_id_each() {
    assert_eq!(sel(&[("openai-project", "proj_us")]), Ok(1));
    for v in [
        "proj_us, proj_eu_mam",
        "proj_us,",
        "proj_us proj_eu",
        "\"proj_us\"",
        ",",
    ] {
        assert!(ambiguous(sel(&[("openai-project", v)])), "{v:?}");
    }
    assert!(ambiguous(sel(&[
        ("openai-project", "proj_us"),
        ("openai-project", "proj_us")
    ])));
    assert_eq!(sel(&[("openai-organization", "org-1")]), Ok(0));
    assert!(ambiguous(sel(&[("openai-organization", "org-1, org-2")])));
    assert!(ambiguous(sel(&[
        ("openai-organization", "org-1"),
        ("openai-organization", "org-1")
    ])));
    assert!(ambiguous(sel(&[
        ("openai-organization", "org-1"),
        ("sec-websocket-protocol", "openai-organization.org-2")
    ])));
}

#[test]
fn underscore_names_that_alias_a_read_header_are_refused() {
    for n in [
        "openai_project",
        "openai_organization",
        "content_type",
        "content_encoding",
        "sec_websocket_protocol",
    ] {
        for mode in [Underscores::Drop, Underscores::Forward, Underscores::Refuse] {
            assert!(
                malformed(run(&projects(), mode, &[(n, "proj_us")])),
                "{n} {mode:?}"
            );
        }
    }
    // Others: refused only when configured so.
    assert_eq!(run(&projects(), Underscores::Drop, &[("x_trace", "1")]), Ok(0));
    assert_eq!(run(&projects(), Underscores::Forward, &[("x_trace", "1")]), Ok(0));
    assert!(malformed(run(
        &projects(),
        Underscores::Refuse,
        &[("x_trace", "1")]
    )));
}

#[test]
fn forward_drops_underscores_and_the_replaced_subprotocol_entries() {
    let mut h = HeaderMap::new();
    h.insert("x_trace", HeaderValue::from_static("1"));
    h.insert("x-kept", HeaderValue::from_static("1"));
    h.append(
        SUBPROTOCOL,
        HeaderValue::from_static("realtime, openai-insecure-api-key.sk-eu-0001"),
    );
    h.append(
        SUBPROTOCOL,
        HeaderValue::from_static("openai-project.proj_eu, openai-beta.realtime-v1"),
    );
    let mut only_key = h.clone();
    forward(&mut h, Underscores::Drop, true, true);
    assert!(!h.contains_key("x_trace"));
    assert!(h.contains_key("x-kept"));
    assert_eq!(h.get_all(SUBPROTOCOL).iter().count(), 1);
    assert_eq!(h[SUBPROTOCOL], "realtime, openai-beta.realtime-v1");
    forward(&mut only_key, Underscores::Forward, true, false);
    assert!(only_key.contains_key("x_trace"));
    assert_eq!(
        only_key[SUBPROTOCOL],
        "realtime, openai-project.proj_eu, openai-beta.realtime-v1"
    );
    // Nothing left: the header goes.
    let mut lone = HeaderMap::new();
    lone.insert(SUBPROTOCOL, HeaderValue::from_static("openai-insecure-api-key.k"));
    forward(&mut lone, Underscores::Drop, true, false);
    assert!(!lone.contains_key(SUBPROTOCOL));
    // No injection: untouched.
    let mut kept = HeaderMap::new();
    kept.insert(SUBPROTOCOL, HeaderValue::from_static("openai-insecure-api-key.k"));
    forward(&mut kept, Underscores::Drop, false, false);
    assert_eq!(kept[SUBPROTOCOL], "openai-insecure-api-key.k");
}

#[test]
fn require_client_key_reads_every_spelling() {
    let set = projects();
    let rules = |h: &HeaderMap| {
        select(
            Rules {
                projects: &set,
                require_client_key: true,
                underscores: Underscores::Drop,
            },
            h,
        )
    };
    let mut h = HeaderMap::new();
    assert_eq!(rules(&h), Err(Refusal::Unauthorized));
    h.insert(
        SUBPROTOCOL,
        HeaderValue::from_static("openai-insecure-api-key.sk-us-0001"),
    );
    assert_eq!(rules(&h), Ok(1));
    h.insert(
        http::header::AUTHORIZATION,
        HeaderValue::from_static("bearer  sk-unknown"),
    );
    assert!(ambiguous(rules(&h)));
}

/// Header sets drawn from the spellings a client could use; the result may not depend on the
/// order or the spelling, and a recognised key's project is the only one ever selected.
fn spelling() -> impl Strategy<Value = (usize, String, String)> {
    // (meaning, name, value): meaning groups spellings that must be read the same.
    prop_oneof![
        (
            0usize..3,
            prop::sample::select(vec!["Bearer ", "bearer ", "BEARER\t", "Bearer  "])
        )
            .prop_map(|(k, s)| (
                k,
                "authorization".to_string(),
                format!("{s}{}", ["sk-eu-0001", "sk-us-0001", "sk-zz"][k])
            )),
        (
            0usize..3,
            prop::sample::select(vec!["openai-insecure-api-key.", "OPENAI-INSECURE-API-KEY."])
        )
            .prop_map(|(k, p)| (
                10 + k,
                "sec-websocket-protocol".to_string(),
                format!("realtime, {p}{}", ["sk-eu-0001", "sk-us-0001", "sk-zz"][k])
            )),
        (0usize..4).prop_map(|p| (
            20 + p,
            "openai-project".to_string(),
            ["proj_eu", "proj_us", "proj_eu_mam", "proj_eu, proj_us"][p].to_string()
        )),
        (0usize..3).prop_map(|p| (
            30 + p,
            "sec-websocket-protocol".to_string(),
            format!("openai-project.{}", ["proj_eu", "proj_us", "proj_eu_mam"][p])
        )),
        Just((40, "openai_project".to_string(), "proj_us".to_string())),
        Just((41, "authorization".to_string(), "sk-eu-0001".to_string())),
    ]
}

proptest! {
    #[test]
    fn selection_is_order_and_spelling_independent_and_keys_win(
        set in prop::collection::vec(spelling(), 0..4),
        seed in any::<u64>(),
    ) {
        let projects = projects();
        let as_headers = |s: &[(usize, String, String)]| -> Vec<(String, String)> {
            s.iter().map(|(_, n, v)| (n.clone(), v.clone())).collect()
        };
        let eval = |hs: &[(String, String)]| {
            let refs: Vec<(&str, &str)> = hs.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
            run(&projects, Underscores::Drop, &refs)
        };
        let first = eval(&as_headers(&set));
        // Any other order of the same header lines (with the same value per name in order
        // within a name, list fields keep their sense): rotated by the seed.
        let mut rotated = set.clone();
        if !rotated.is_empty() {
            let n = rotated.len();
            rotated.rotate_left((seed as usize) % n);
        }
        let second = eval(&as_headers(&rotated));
        prop_assert_eq!(first.is_ok(), second.is_ok());
        if let (Ok(a), Ok(b)) = (&first, &second) {
            prop_assert_eq!(a, b);
        }
        if let Ok(p) = first {
            for (meaning, _, _) in &set {
                match meaning {
                    0 | 10 => prop_assert_eq!(p, 0),
                    1 | 11 => prop_assert_eq!(p, 1),
                    20 | 30 => prop_assert_eq!(p, 0),
                    21 | 31 => prop_assert_eq!(p, 1),
                    22 | 32 => prop_assert_eq!(p, 2),
                    23 | 40 | 41 => prop_assert!(false, "accepted {:?}", set),
                    _ => {}
                }
            }
        }
    }
}
