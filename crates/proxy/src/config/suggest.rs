//! "Did you mean" for region ids: common names people type (`uk`, `europe`) and near misses.

use policy::Catalog;

/// Names people use for a region that are not its id.
const COMMON_NAMES: &[(&str, &str)] = &[
    ("uk", "gb"),
    ("united-kingdom", "gb"),
    ("britain", "gb"),
    ("europe", "eu"),
    ("eea", "eu"),
    ("usa", "us"),
    ("united-states", "us"),
    ("canada", "ca"),
    ("japan", "jp"),
    ("india", "in"),
    ("singapore", "sg"),
    ("korea", "kr"),
    ("south-korea", "kr"),
    ("australia", "au"),
    ("uae", "ae"),
    ("emirates", "ae"),
    ("world", "global"),
];

/// `unknown region "uk", did you mean "gb"?` (the suggestion only when there is a good one).
pub fn unknown_region(catalog: &Catalog, given: &str) -> String {
    let lower = given.trim().to_ascii_lowercase().replace(['_', ' '], "-");
    let known = |id: &str| catalog.region(id).is_some();
    let suggestion = COMMON_NAMES
        .iter()
        .find(|(name, id)| *name == lower && known(id))
        .map(|(_, id)| (*id).to_string())
        .or_else(|| known(&lower).then(|| lower.clone()))
        .or_else(|| {
            catalog
                .regions
                .iter()
                .map(|r| (strsim::levenshtein(&lower, &r.id), &r.id))
                .filter(|(d, id)| *d <= 1 || (*d <= 2 && id.len() > 3))
                .min()
                .map(|(_, id)| id.clone())
        });
    match suggestion {
        Some(s) => format!("unknown region {given:?}, did you mean {s:?}?"),
        None => {
            let ids: Vec<&str> = catalog.regions.iter().map(|r| r.id.as_str()).collect();
            format!("unknown region {given:?} (known: {})", ids.join(", "))
        }
    }
}
