//! Project selection: key hash, then OpenAI-Project header, then default; fail closed.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

mod common;

use common::project;
use policy::{Project, ProjectSet, Retention, SelectError};

fn key(n: u8) -> [u8; 32] {
    [n; 32]
}

fn p(name: &str, default: bool, header: Option<&str>, keys: &[u8]) -> Project {
    let mut p = project("eu", Retention::Zdr);
    p.name = name.into();
    p.default = default;
    p.openai_project = header.map(str::to_owned);
    p.api_key_sha256 = keys.iter().map(|k| key(*k)).collect();
    p
}

fn set() -> ProjectSet {
    ProjectSet::new(vec![
        p("a", false, Some("proj_a"), &[1]),
        p("b", false, Some("proj_b"), &[2]),
        p("c", false, None, &[3]),
        p("d", true, Some("proj_d"), &[]),
    ])
    .unwrap()
}

/// Key, header values, expected index (or an error kind).
type Case = (Option<[u8; 32]>, Vec<&'static str>, Result<usize, &'static str>);

#[test]
fn selection_table() {
    let s = set();
    let cases: Vec<Case> = vec![
        // key only
        (Some(key(1)), vec![], Ok(0)),
        (Some(key(3)), vec![], Ok(2)),
        // header only
        (None, vec!["proj_b"], Ok(1)),
        (None, vec![" proj_b "], Ok(1)),
        // default
        (None, vec![], Ok(3)),
        (Some(key(99)), vec![], Ok(3)),
        (None, vec!["proj_d"], Ok(3)),
        // key and header agree
        (Some(key(1)), vec!["proj_a"], Ok(0)),
        // key and header disagree
        (Some(key(1)), vec!["proj_b"], Err("ambiguous")),
        (Some(key(3)), vec!["proj_a"], Err("ambiguous")),
        // unknown key falls through to the header
        (Some(key(99)), vec!["proj_a"], Ok(0)),
        // more than one header value, even equal ones
        (None, vec!["proj_a", "proj_b"], Err("ambiguous")),
        (None, vec!["proj_a", "proj_a"], Err("ambiguous")),
        (Some(key(1)), vec!["proj_a", "proj_a"], Err("ambiguous")),
        // header names no configured project
        (Some(key(1)), vec!["proj_x"], Err("ambiguous")), // a is bound to proj_a
        (Some(key(3)), vec!["proj_x"], Ok(2)),            // c is not bound: header passes through
        (None, vec!["proj_x"], Err("ambiguous")),         // default d is bound to proj_d
        (None, vec!["proj_a, proj_b"], Err("ambiguous")),
        (None, vec![""], Err("ambiguous")),
    ];
    for (k, headers, want) in cases {
        let got = s.select(k.as_ref(), &headers);
        match want {
            Ok(i) => assert_eq!(got, Ok(i), "{k:?} {headers:?}"),
            Err(_) => assert!(
                matches!(got, Err(SelectError::Ambiguous(_))),
                "{k:?} {headers:?}: {got:?}"
            ),
        }
    }
}

#[test]
fn no_default_no_project() {
    let s = ProjectSet::new(vec![
        p("a", false, Some("proj_a"), &[1]),
        p("c", false, None, &[3]),
    ])
    .unwrap();
    assert_eq!(s.select(None, &[]), Err(SelectError::NoProject));
    assert_eq!(s.select(Some(&key(7)), &[]), Err(SelectError::NoProject));
    // An unknown header with no project to fall back on: nothing selected.
    assert_eq!(s.select(None, &["proj_x"]), Err(SelectError::NoProject));
    assert_eq!(s.select(None, &["proj_a"]), Ok(0));
    // A default without openai_project lets unknown headers through.
    let s = ProjectSet::new(vec![p("g", true, None, &[])]).unwrap();
    assert_eq!(s.select(None, &["proj_anything"]), Ok(0));
    assert_eq!(s.default_project(), Some(0));
    assert_eq!(s.by_name("g"), Some(0));
}

#[test]
fn conflicts_are_reported_with_places() {
    let err = ProjectSet::new(vec![
        p("x", true, Some("proj_1"), &[1, 2]),
        p("y", true, Some("proj_1"), &[3]),
        p("z", false, None, &[4, 2, 4]),
        p("x", false, None, &[]),
    ])
    .unwrap_err();
    let want = [
        "projects[1].default: project \"x\" is already the default; only one project can be",
        "projects[1].openai_project: \"proj_1\" also selects project \"x\"",
        "projects[2].api_key_sha256[1]: also selects project \"x\"",
        "projects[2].api_key_sha256[2]: listed twice in this project",
        "projects[3].name: \"x\" is also the name of projects[0]",
    ];
    for w in want {
        assert!(err.iter().any(|e| e == w), "missing {w:?} in {err:#?}");
    }
    assert_eq!(err.len(), want.len(), "{err:#?}");
}
