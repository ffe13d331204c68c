//! Path checks: "for every object at this path of the body, what is its member `key`?",
//! answered during the one scan of [`scan_json_checked`](crate::json::scan_json_checked).
//!
//! A path is a list of steps from the top-level object: a member name, or [`EACH`] for every
//! element of an array. `["input", "[]", "content", "[]"]` reaches each content part of each
//! input item. The scanner follows all checks at once with a bitmask of live positions per open
//! container (at most [`MAX_POSITIONS`] positions: the sum over checks of path length + 1), so
//! a body whose containers match no path costs one mask test per member.

use std::borrow::Cow;

/// The step that matches every element of an array.
pub const EACH: &str = "[]";

/// The most positions (sum over checks of `path.len() + 1`) one scan can follow, and the most
/// values one check can name: both are bit masks.
pub const MAX_POSITIONS: usize = 64;

/// One question asked of every object reached by `path`.
#[derive(Debug, Clone, Copy)]
pub struct PathCheck<'s> {
    pub path: &'s [&'s str],
    /// The member read from each object at `path`, e.g. `type`.
    pub key: &'s str,
    /// Known values of the member (at most [`MAX_POSITIONS`]); which were seen is reported by
    /// bit, anything else as [`PathHits::other`].
    pub values: &'s [&'s str],
}

/// A value of a checked member that is not one of the check's `values`.
#[derive(Debug, Clone, PartialEq)]
pub enum Other<'a> {
    /// A string not in the list (unescaped; borrowed when the literal has no escapes).
    String(Cow<'a, str>),
    /// A number, boolean, object or array.
    NotString,
}

/// What one [`PathCheck`] found in a body.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PathHits<'a> {
    /// Bit `i`: `values[i]` was the member's value in at least one object.
    pub seen: u64,
    /// The first value (in body order) that is not in `values`.
    pub other: Option<Other<'a>>,
    /// At least one object at the path lacked the member or had it `null`.
    pub absent: bool,
}

/// Checks compiled once (per catalog operation, say) and used by every scan: the positions of
/// all paths as bit tables, so that following them costs a few mask operations per member.
/// Position `p` is step `step[p]` of check `check[p]`; `step == path.len()` is "at an object the
/// check reads".
#[derive(Debug, Clone, Default)]
pub struct CheckSet {
    /// Each check's member name and known values, as bytes.
    keys: Vec<Box<[u8]>>,
    values: Vec<Vec<Box<[u8]>>>,
    /// The check that position `p` belongs to.
    check: Vec<u8>,
    /// For a position whose next step is a member name: that name (empty otherwise).
    names: Vec<Box<[u8]>>,
    /// Positions whose next step is a member name.
    pub(crate) named: u64,
    /// Positions whose next step is [`EACH`].
    pub(crate) each: u64,
    /// Positions at the end of their path.
    pub(crate) last: u64,
    /// Positions at step 0 (the top-level object).
    pub(crate) first: u64,
    /// Named positions, and checks, by the [`shape`] of their name or member: a key is
    /// compared only with those of its shape, so most members cost two table reads.
    name_shapes: Shapes,
    key_shapes: Shapes,
}

/// Bit masks by a name's length (capped) and by its first byte's low 5 bits (which tell the
/// letters and `_` apart): a filter, equal names always share both.
#[derive(Debug, Clone, Default)]
struct Shapes {
    by_len: [u64; 32],
    by_first: [u64; 32],
}

impl Shapes {
    fn add(&mut self, name: &[u8], bit: u64) {
        let (l, f) = shape(name);
        self.by_len[l] |= bit;
        self.by_first[f] |= bit;
    }

    /// The bits whose name may equal `name`.
    #[inline(always)]
    fn of(&self, name: &[u8]) -> u64 {
        let (l, f) = shape(name);
        self.by_len[l] & self.by_first[f]
    }
}

#[inline(always)]
fn shape(name: &[u8]) -> (usize, usize) {
    (
        name.len().min(31),
        name.first().map_or(0, |&b| usize::from(b & 31)),
    )
}

/// The checks need more than [`MAX_POSITIONS`] positions, or one names more than
/// [`MAX_POSITIONS`] values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooManyPositions;

impl std::fmt::Display for TooManyPositions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the path checks need more than {MAX_POSITIONS} positions or values"
        )
    }
}

impl std::error::Error for TooManyPositions {}

impl CheckSet {
    pub fn new(checks: &[PathCheck<'_>]) -> Result<CheckSet, TooManyPositions> {
        let mut set = CheckSet {
            keys: Vec::with_capacity(checks.len()),
            values: Vec::with_capacity(checks.len()),
            check: Vec::new(),
            names: Vec::new(),
            named: 0,
            each: 0,
            last: 0,
            first: 0,
            name_shapes: Shapes::default(),
            key_shapes: Shapes::default(),
        };
        for (c, chk) in checks.iter().enumerate() {
            if chk.values.len() > MAX_POSITIONS || c >= MAX_POSITIONS {
                return Err(TooManyPositions);
            }
            set.key_shapes.add(chk.key.as_bytes(), 1 << c);
            set.keys.push(chk.key.as_bytes().into());
            set.values
                .push(chk.values.iter().map(|v| v.as_bytes().into()).collect());
            for s in 0..=chk.path.len() {
                let p = set.check.len();
                if p >= MAX_POSITIONS {
                    return Err(TooManyPositions);
                }
                set.check.push(u8::try_from(c).map_err(|_| TooManyPositions)?);
                let bit = 1u64 << p;
                if s == 0 {
                    set.first |= bit;
                }
                let name: Box<[u8]> = match chk.path.get(s) {
                    None => {
                        set.last |= bit;
                        Box::default()
                    }
                    Some(&EACH) => {
                        set.each |= bit;
                        Box::default()
                    }
                    Some(step) => {
                        set.named |= bit;
                        set.name_shapes.add(step.as_bytes(), bit);
                        step.as_bytes().into()
                    }
                };
                set.names.push(name);
            }
        }
        Ok(set)
    }

    /// How many checks the set has (the length of [`crate::JsonScan::checks`]).
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The member name of position `p`'s next step (empty when it is not a name).
    #[inline(always)]
    pub(crate) fn name(&self, p: u32) -> &[u8] {
        self.names.get(p as usize).map_or(&[], |n| n)
    }

    /// Named positions whose name may be `key` (same shape).
    #[inline(always)]
    pub(crate) fn names_like(&self, key: &[u8]) -> u64 {
        self.name_shapes.of(key)
    }

    /// Checks whose member may be `key` (same shape).
    #[inline(always)]
    pub(crate) fn keys_like(&self, key: &[u8]) -> u64 {
        self.key_shapes.of(key)
    }

    /// Check `c`'s member name.
    #[inline(always)]
    pub(crate) fn key(&self, c: u32) -> &[u8] {
        self.keys.get(c as usize).map_or(&[], |k| k)
    }

    /// Check `c`'s known values.
    #[inline]
    pub(crate) fn values(&self, c: usize) -> &[Box<[u8]>] {
        self.values.get(c).map_or(&[], Vec::as_slice)
    }

    /// The checks (by bit) whose final position is in `alive`.
    #[inline]
    pub(crate) fn checks_at_end(&self, alive: u64) -> u64 {
        let mut m = alive & self.last;
        let mut out = 0u64;
        while m != 0 {
            let p = m.trailing_zeros() as usize;
            m &= m - 1;
            out |= 1 << self.check.get(p).copied().unwrap_or(0);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::{scan_json_checked, JsonErrorKind, JsonSpec};

    const SPEC: JsonSpec<'static> = JsonSpec {
        fields: &["model"],
        markers: &[],
    };
    const TOOLS: PathCheck<'static> = PathCheck {
        path: &["tools", EACH],
        key: "type",
        values: &["function", "web_search"],
    };
    const PARTS: PathCheck<'static> = PathCheck {
        path: &["input", EACH, "content", EACH],
        key: "type",
        values: &["input_text", "output_text"],
    };
    const ITEMS: PathCheck<'static> = PathCheck {
        path: &["input", EACH],
        key: "type",
        values: &["message"],
    };
    const FILE_ID: PathCheck<'static> = PathCheck {
        path: &["input", EACH, "content", EACH],
        key: "file_id",
        values: &[],
    };

    fn hits(body: &str, checks: &[PathCheck<'_>]) -> Vec<PathHits<'static>> {
        let owned: &'static [u8] = Box::leak(body.as_bytes().to_vec().into_boxed_slice());
        match scan_json_checked(owned, &SPEC, checks) {
            Ok(s) => s.checks,
            Err(e) => panic!("{body}: {e}"),
        }
    }

    #[test]
    fn reads_the_member_of_every_object_on_the_path_only() {
        let body = r#"{"model":"m","tools":[{"type":"function","parameters":{"type":"object",
            "properties":{"type":{"type":"string"}}}},{"type":"web_search"}],
            "input":[{"role":"user","content":[{"type":"input_text","text":"hi"},
            {"type":"input_image","image_url":"data:"}]},{"type":"message","content":"x"}],
            "metadata":{"type":"code_interpreter"}}"#;
        let h = hits(body, &[TOOLS, PARTS, ITEMS]);
        assert_eq!(h[0].seen, 0b11);
        assert_eq!(h[0].other, None);
        assert!(!h[0].absent);
        assert_eq!(h[1].seen, 0b1);
        assert_eq!(h[1].other, Some(Other::String("input_image".into())));
        // The first item has no `type`: absent (the caller decides what that means).
        assert_eq!(h[2].seen, 0b1);
        assert!(h[2].absent);
        assert_eq!(h[2].other, None);
    }

    #[test]
    fn a_compiled_set_answers_as_the_checks_do() {
        let set = CheckSet::new(&[TOOLS, PARTS, ITEMS]).expect("compiles");
        assert_eq!((set.len(), set.is_empty()), (3, false));
        let empty = CheckSet::new(&[]).expect("compiles");
        assert_eq!((empty.len(), empty.is_empty()), (0, true));
        for body in [
            r#"{"model":"m","tools":[{"type":"web_search"}],"input":[{"type":"message",
                "content":[{"type":"input_image"}]}]}"#,
            r#"{"tools":[{"type":"function"},{}],"input":[{"content":[]}]}"#,
        ] {
            let with = crate::json::scan_json_with(body.as_bytes(), &SPEC, &set).expect("scans");
            assert_eq!(with.checks, hits(body, &[TOOLS, PARTS, ITEMS]), "{body}");
            assert_eq!(with.checks.len(), 3);
            assert_eq!(with.field(0).is_some(), body.contains("model"));
            let none = crate::json::scan_json_with(body.as_bytes(), &SPEC, &empty).expect("scans");
            assert!(none.checks.is_empty());
        }
    }

    #[test]
    fn names_and_members_of_every_shape_are_followed() {
        // Names that share the shape filter's buckets (lengths past its cap, first bytes with
        // the same low five bits, the empty name) must still be told apart by their bytes,
        // and each must still be found.
        let long_a = "a".repeat(31);
        let long_b = format!("{}b", "a".repeat(39));
        let names = ["", "@x", "`x", "Tx", "tx", "é", long_a.as_str(), long_b.as_str()];
        for name in names {
            for key in names {
                let path = [name, EACH];
                let check = PathCheck {
                    path: &path,
                    key,
                    values: &["v"],
                };
                let body = format!(
                    r#"{{{}:[{{{}:"v"}}],"other":[{{{}:"w"}}]}}"#,
                    crate::json::string_literal(name),
                    crate::json::string_literal(key),
                    crate::json::string_literal(key),
                );
                let h = hits(&body, &[check]);
                assert_eq!((h[0].seen, h[0].other.clone()), (1, None), "{name:?} {key:?}");
                // Every other name and member of the set: not followed, not read.
                for other in names.iter().filter(|o| **o != name) {
                    let body = format!(
                        r#"{{{}:[{{{}:"w"}}]}}"#,
                        crate::json::string_literal(other),
                        crate::json::string_literal(key)
                    );
                    assert_eq!(
                        hits(&body, &[check])[0].other,
                        None,
                        "{name:?} reached by {other:?}"
                    );
                }
                for other in names.iter().filter(|o| **o != key) {
                    let body = format!(
                        r#"{{{}:[{{{}:"w"}}]}}"#,
                        crate::json::string_literal(name),
                        crate::json::string_literal(other)
                    );
                    let h = hits(&body, &[check]);
                    assert_eq!(
                        (h[0].other.clone(), h[0].absent),
                        (None, true),
                        "{key:?} read as {other:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn a_non_string_is_reported_for_a_later_check_alone() {
        // Only the second check reads the member: its bit is not the lowest one.
        let h = hits(r#"{"input":[{"type":7},{"type":[1]}]}"#, &[TOOLS, ITEMS]);
        assert_eq!(
            (h[0].other.clone(), h[1].other.clone()),
            (None, Some(Other::NotString))
        );
    }

    #[test]
    fn the_first_unknown_value_in_body_order_is_reported() {
        let h = hits(
            r#"{"tools":[{"type":"a"},{"type":"web_search"},{"type":"b"}]}"#,
            &[TOOLS],
        );
        assert_eq!(
            (h[0].seen, h[0].other.clone()),
            (0b10, Some(Other::String("a".into())))
        );
    }

    #[test]
    fn a_path_name_counts_only_at_its_own_step() {
        // `input` is the first step of ITEMS: an item holding its own `input` array is not on
        // the path again (only the top-level object is at step 0).
        let h = hits(
            r#"{"input":[{"type":"message","input":[{"type":"function_call"}]}]}"#,
            &[ITEMS],
        );
        assert_eq!((h[0].seen, h[0].other.clone()), (0b1, None));
    }

    #[test]
    fn an_unknown_tool_is_reported_whatever_its_spelling() {
        let h = hits(r#"{"tools":[{"type":"code_\u0069nterpreter"}]}"#, &[TOOLS]);
        assert_eq!(h[0].other, Some(Other::String("code_interpreter".into())));
        let h = hits(r#"{"tools":[{"type":"web_se\u0061rch"}]}"#, &[TOOLS]);
        assert_eq!((h[0].seen, h[0].other.clone()), (0b10, None));
        let h = hits(r#"{"tools":[{"type":7}]}"#, &[TOOLS]);
        assert_eq!(h[0].other, Some(Other::NotString));
        let h = hits(r#"{"tools":[{"type":{"a":1}}]}"#, &[TOOLS]);
        assert_eq!(h[0].other, Some(Other::NotString));
        let h = hits(r#"{"tools":[{"type":null}]}"#, &[TOOLS]);
        assert!(h[0].absent);
        let h = hits(r#"{"tools":[{}]}"#, &[TOOLS]);
        assert!(h[0].absent);
    }

    #[test]
    fn presence_of_a_member_is_an_other_value() {
        let h = hits(
            r#"{"input":[{"content":[{"type":"input_file","file_id":"file-1"}]}]}"#,
            &[FILE_ID],
        );
        assert_eq!(h[0].other, Some(Other::String("file-1".into())));
        let h = hits(
            r#"{"input":[{"content":[{"type":"input_file","file_id":null,"file_data":"x"}]}]}"#,
            &[FILE_ID],
        );
        assert_eq!(h[0].other, None);
        // Not on the path: a file_id directly in an item, or in a string-valued content.
        let h = hits(r#"{"input":[{"file_id":"f","content":"file_id"}]}"#, &[FILE_ID]);
        assert_eq!(
            h[0],
            PathHits {
                absent: false,
                ..Default::default()
            }
        );
    }

    #[test]
    fn shapes_off_the_path_are_ignored() {
        // `input` as a string, `tools` as an object, an array where an object is read.
        let h = hits(r#"{"input":"type","tools":{"type":"mcp"}}"#, &[TOOLS, ITEMS]);
        assert_eq!(h, vec![PathHits::default(), PathHits::default()]);
        let h = hits(r#"{"input":[[{"type":"mcp"}],"text"]}"#, &[ITEMS]);
        assert_eq!(h[0], PathHits::default());
    }

    #[test]
    fn duplicate_members_are_still_refused() {
        let body = br#"{"tools":[{"type":"function","type":"mcp"}]}"#;
        let e = scan_json_checked(body, &SPEC, &[TOOLS]).unwrap_err();
        assert!(matches!(e.kind, JsonErrorKind::DuplicateKey(_)));
    }

    #[test]
    fn too_many_positions_is_an_error_not_a_guess() {
        let many = [ITEMS; 22]; // 22 * 3 = 66 positions
        let e = scan_json_checked(b"{}", &SPEC, &many).unwrap_err();
        assert_eq!(e.kind, JsonErrorKind::TooManyChecks);
        let fits = [ITEMS; 21];
        assert!(scan_json_checked(b"{}", &SPEC, &fits).is_ok());
    }

    #[test]
    fn the_top_level_object_can_be_read() {
        let top = PathCheck {
            path: &[],
            key: "prompt",
            values: &[],
        };
        let h = hits(r#"{"prompt":{"id":"pmpt_1"}}"#, &[top]);
        assert_eq!(h[0].other, Some(Other::NotString));
        let h = hits(r#"{"x":1}"#, &[top]);
        assert!(h[0].absent);
    }
}
