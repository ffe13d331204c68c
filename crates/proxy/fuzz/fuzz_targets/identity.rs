//! Identity selection (`proxy::identity::select`) on header sets drawn from every spelling a
//! client could use for a key or a project (scheme case and gaps, subprotocol entries in any
//! case and on any line, comma lists, `_` aliases), in any order. The result may not depend on
//! the order, and it is either the project of the recognised key (when a key is recognised),
//! the project every selector names, or a refusal: never a project some header did not allow.
#![no_main]

use http::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;
use policy::{Project, ProjectSet, Retention};
use proxy::identity::{select, Rules, Underscores};
use sha2::{Digest, Sha256};

const KEYS: [&str; 3] = ["sk-eu-0001", "sk-us-0001", "sk-unknown"];
const IDS: [&str; 3] = ["proj_eu", "proj_us", "proj_mam"];
/// The project each key selects (None: no project has it).
const KEY_PROJECT: [Option<usize>; 3] = [Some(0), Some(1), None];

fn projects() -> ProjectSet {
    let p = |i: usize, key: Option<&str>| Project {
        default: i == 0,
        openai_project: Some(IDS[i].into()),
        api_key_sha256: key.map(|k| vec![<[u8; 32]>::from(Sha256::digest(k))]).unwrap_or_default(),
        ..Project::with_defaults(format!("p{i}"), "eu", Retention::Zdr)
    };
    ProjectSet::new(vec![p(0, Some(KEYS[0])), p(1, Some(KEYS[1])), p(2, None)]).unwrap_or_default()
}

/// One header line from two fuzz bytes, with what it says: (key index, project index).
fn line(kind: u8, arg: u8) -> (String, String, Option<usize>, Option<usize>) {
    let k = usize::from(arg % 3);
    let spelling = usize::from(arg / 3);
    let schemes = ["Bearer ", "bearer ", "BEARER ", "Bearer  ", "Bearer\t", "bEaReR \t"];
    let prefixes = ["openai-insecure-api-key.", "OpenAI-Insecure-API-Key.", "OPENAI-INSECURE-API-KEY."];
    match kind % 8 {
        0 => ("authorization".into(), format!("{}{}", schemes[spelling % schemes.len()], KEYS[k]), Some(k), None),
        1 => (
            "sec-websocket-protocol".into(),
            format!("realtime, {}{}", prefixes[spelling % prefixes.len()], KEYS[k]),
            Some(k),
            None,
        ),
        2 => ("openai-project".into(), IDS[k].into(), None, Some(k)),
        3 => ("sec-websocket-protocol".into(), format!("openai-project.{}", IDS[k]), None, Some(k)),
        4 => ("openai-project".into(), format!("{}, {}", IDS[k], IDS[(k + 1) % 3]), None, None),
        5 => ("openai_project".into(), IDS[k].into(), None, None),
        6 => ("authorization".into(), KEYS[k].into(), None, None),
        _ => ("sec-websocket-protocol".into(), "realtime, openai-beta.realtime-v1".into(), None, None),
    }
}

fuzz_target!(|data: &[u8]| {
    let set = projects();
    let lines: Vec<_> = data.chunks_exact(2).take(6).map(|c| line(c[0], c[1])).collect();
    let build = |order: &mut dyn Iterator<Item = usize>| {
        let mut h = HeaderMap::new();
        for i in order {
            let (n, v, _, _) = &lines[i];
            if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(n.as_bytes()), HeaderValue::from_str(v)) {
                h.append(n, v);
            }
        }
        h
    };
    let rules = Rules { projects: &set, require_client_key: false, underscores: Underscores::Drop };
    let forward = select(rules, &build(&mut (0..lines.len())));
    let backward = select(rules, &build(&mut (0..lines.len()).rev()));
    assert_eq!(forward.is_ok(), backward.is_ok(), "{lines:?}");
    let Ok(chosen) = forward else { return };
    assert_eq!(Ok(chosen), backward, "{lines:?}");
    for (_, _, key, project) in &lines {
        if let Some(p) = key.and_then(|k| KEY_PROJECT[k]) {
            assert_eq!(chosen, p, "a recognised key's project was not chosen: {lines:?}");
        }
        if let Some(p) = project {
            assert_eq!(chosen, *p, "a selector named another project: {lines:?}");
        }
    }
    // Lines whose meaning is not one project id were accepted.
    assert!(
        lines.iter().all(|(n, v, k, p)| k.is_some() || p.is_some() || n == "sec-websocket-protocol" && v.contains("beta")),
        "{lines:?}"
    );
});
