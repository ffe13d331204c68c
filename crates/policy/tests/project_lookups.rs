//! The lookups beside selection (`by_key`, `by_name`, `default_project`), which config
//! validation and `explain --project` rely on. Indexes other than 0 and 1 on purpose: a lookup
//! that answered a constant would pass a test on the first two projects.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use policy::{Project, ProjectSet, Retention};

fn p(name: &str, default: bool, keys: &[u8]) -> Project {
    let mut p = Project::with_defaults(name, "eu", Retention::Zdr);
    p.default = default;
    p.api_key_sha256 = keys.iter().map(|k| [*k; 32]).collect();
    p
}

#[test]
fn lookups_find_the_project_they_name_and_nothing_else() {
    let set = ProjectSet::new(vec![
        p("a", false, &[1]),
        p("b", false, &[]),
        p("c", true, &[3, 4]),
    ])
    .unwrap();
    assert_eq!(set.by_key(&[1; 32]), Some(0));
    assert_eq!(set.by_key(&[3; 32]), Some(2));
    assert_eq!(set.by_key(&[4; 32]), Some(2));
    assert_eq!(set.by_key(&[2; 32]), None);
    assert_eq!(set.by_name("c"), Some(2));
    assert_eq!(set.by_name("a"), Some(0));
    assert_eq!(set.by_name("d"), None);
    assert_eq!(set.default_project(), Some(2));

    let no_default = ProjectSet::new(vec![p("a", false, &[]), p("b", false, &[])]).unwrap();
    assert_eq!(no_default.default_project(), None);
    assert_eq!(no_default.by_key(&[1; 32]), None);
}
