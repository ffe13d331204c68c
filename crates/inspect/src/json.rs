//! Single-pass, validating JSON scan (RFC 8259) yielding top-level fields with byte spans.
//!
//! CONTRACT (pinned; the proxy is written against it):
//! - `scan_json` accepts exactly one JSON object (optional surrounding JSON whitespace),
//!   and rejects everything `serde_json::from_slice::<serde_json::Value>` rejects, plus
//!   duplicate keys at any depth (compared after unescaping). Depth limit and number range
//!   match serde_json (128 levels; numbers that overflow f64 are rejected).
//! - It never allocates per byte of input: allocations are O(number of fields reported +
//!   nesting depth), and string values without escapes are borrowed from the body.

use std::borrow::Cow;
use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault};
use std::ops::Range;

use crate::paths::{CheckSet, Other, PathCheck, PathHits};
use crate::pow10::POW10;

/// What a caller wants out of a body.
#[derive(Debug, Clone, Copy)]
pub struct JsonSpec<'s> {
    /// Top-level member names whose values are reported in [`JsonScan::fields`].
    pub fields: &'s [&'s str],
    /// Key/value pairs looked for at any depth (see [`Marker`]).
    pub markers: &'s [Marker<'s>],
}

/// An object member `key` whose value is a string equal to one of `values` (compared after
/// unescaping), at any depth. Used for "does this body carry an image part / a web search tool".
#[derive(Debug, Clone, Copy)]
pub struct Marker<'s> {
    pub key: &'s str,
    pub values: &'s [&'s str],
}

/// The value of a reported top-level field.
#[derive(Debug, Clone, PartialEq)]
pub enum Value<'a> {
    Null,
    Bool(bool),
    /// The number's literal text, exactly as in the body.
    Number(&'a str),
    /// The unescaped string; borrowed when the literal has no escapes.
    String(Cow<'a, str>),
    Object,
    Array,
}

/// One reported top-level member.
#[derive(Debug, Clone, PartialEq)]
pub struct Field<'a> {
    /// Index into [`JsonSpec::fields`].
    pub index: usize,
    /// Span of the key literal, quotes included.
    pub key_span: Range<usize>,
    /// Span of the value literal (quotes included for strings; whole object/array for those).
    pub value_span: Range<usize>,
    pub value: Value<'a>,
}

/// Result of a successful scan.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonScan<'a> {
    /// Byte offset just after the top-level `{`: where a new member can be inserted.
    pub object_start: usize,
    /// Whether the top-level object has no members (an insert then needs no comma).
    pub empty: bool,
    /// The requested top-level fields that are present, in body order.
    pub fields: Vec<Field<'a>>,
    /// `markers_hit[i]` is true when `JsonSpec::markers[i]` matched somewhere.
    pub markers_hit: Vec<bool>,
    /// `checks[i]`: what [`scan_json_checked`]'s `checks[i]` found (empty for [`scan_json`]).
    pub checks: Vec<PathHits<'a>>,
}

impl<'a> JsonScan<'a> {
    /// The field reported for `JsonSpec::fields[index]`, if present.
    pub fn field(&self, index: usize) -> Option<&Field<'a>> {
        self.fields.iter().find(|f| f.index == index)
    }
}

/// Why a body is not exactly one valid JSON object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonError {
    /// Byte offset where the problem was found.
    pub offset: usize,
    pub kind: JsonErrorKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JsonErrorKind {
    Empty,
    ByteOrderMark,
    NotAnObject,
    Syntax(&'static str),
    InvalidUtf8,
    InvalidEscape,
    InvalidNumber,
    TooDeep,
    TrailingData,
    /// The duplicated key, unescaped.
    DuplicateKey(String),
    /// The caller's path checks exceed [`crate::paths::MAX_POSITIONS`] (not the body's fault).
    TooManyChecks,
}

impl std::fmt::Display for JsonError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.kind {
            JsonErrorKind::Empty => write!(f, "body is empty, expected a JSON object"),
            JsonErrorKind::ByteOrderMark => write!(f, "body starts with a byte-order mark"),
            JsonErrorKind::NotAnObject => write!(f, "body is not a JSON object (byte {})", self.offset),
            JsonErrorKind::Syntax(what) => write!(f, "invalid JSON at byte {}: {what}", self.offset),
            JsonErrorKind::InvalidUtf8 => write!(f, "invalid UTF-8 at byte {}", self.offset),
            JsonErrorKind::InvalidEscape => write!(f, "invalid escape at byte {}", self.offset),
            JsonErrorKind::InvalidNumber => {
                write!(f, "invalid or out-of-range number at byte {}", self.offset)
            }
            JsonErrorKind::TooDeep => write!(f, "JSON nested too deeply at byte {}", self.offset),
            JsonErrorKind::TrailingData => write!(f, "data after the JSON object at byte {}", self.offset),
            JsonErrorKind::DuplicateKey(k) => write!(f, "duplicate key {k:?} at byte {}", self.offset),
            JsonErrorKind::TooManyChecks => write!(f, "too many path checks for one scan"),
        }
    }
}

impl std::error::Error for JsonError {}

/// Deepest nesting of arrays/objects (the top-level object counts as 1) that serde_json accepts:
/// its recursion budget of 128 fails on the 128th nested container.
pub const MAX_DEPTH: usize = 127;

/// An object with more members than this switches from linear duplicate checks to a hash map.
const LARGE_OBJECT: usize = 16;

/// Scans `body` as one JSON object. See the module contract.
pub fn scan_json<'a>(body: &'a [u8], spec: &JsonSpec<'_>) -> Result<JsonScan<'a>, JsonError> {
    scan_json_checked(body, spec, &[])
}

/// [`scan_json`], also answering `checks` (see [`crate::paths`]) in the same single pass.
/// Compiles the checks first: a caller scanning many bodies with the same checks compiles
/// them once into a [`CheckSet`] and calls [`scan_json_with`].
pub fn scan_json_checked<'a>(
    body: &'a [u8],
    spec: &JsonSpec<'_>,
    checks: &[PathCheck<'_>],
) -> Result<JsonScan<'a>, JsonError> {
    if checks.is_empty() {
        return scan(body, spec, None);
    }
    let set = CheckSet::new(checks).map_err(|_| err(0, JsonErrorKind::TooManyChecks))?;
    scan(body, spec, Some(&set))
}

/// [`scan_json`], also answering the compiled `checks` in the same single pass.
pub fn scan_json_with<'a>(
    body: &'a [u8],
    spec: &JsonSpec<'_>,
    checks: &CheckSet,
) -> Result<JsonScan<'a>, JsonError> {
    scan(body, spec, (!checks.is_empty()).then_some(checks))
}

fn scan<'a>(body: &'a [u8], spec: &JsonSpec<'_>, set: Option<&CheckSet>) -> Result<JsonScan<'a>, JsonError> {
    if body.is_empty() {
        return Err(err(0, JsonErrorKind::Empty));
    }
    if body.starts_with(&[0xEF, 0xBB, 0xBF]) {
        return Err(err(0, JsonErrorKind::ByteOrderMark));
    }
    let open = skip_ws(body, 0);
    match body.get(open) {
        None => Err(err(open, JsonErrorKind::Empty)),
        Some(b'{') => {
            let (stack, keys) = Scratch::take();
            let mut scanner = Scanner::new(body, spec, set, stack, keys);
            let result = scanner.run(open);
            Scratch::give_back(scanner.stack, scanner.keys);
            result
        }
        Some(_) => Err(err(open, JsonErrorKind::NotAnObject)),
    }
}

#[inline]
fn err(offset: usize, kind: JsonErrorKind) -> JsonError {
    JsonError { offset, kind }
}

#[inline]
fn syntax(offset: usize, what: &'static str) -> JsonError {
    err(offset, JsonErrorKind::Syntax(what))
}

#[inline(always)]
fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while let Some(&c) = b.get(i) {
        // Every JSON whitespace byte is at most b' ': one comparison for the usual token.
        if c > b' ' || !(c == b' ' || c == b'\n' || c == b'\r' || c == b'\t') {
            break;
        }
        i += 1;
    }
    i
}

/// The scanner's container stack and key list, kept per thread between scans: two mallocs and
/// two frees fewer on every request. Buffers that grew past these sizes (a huge body) are freed
/// rather than kept.
struct Scratch;

const KEEP_FRAMES: usize = 128;
const KEEP_KEYS: usize = 1024;

thread_local! {
    static SCRATCH: std::cell::Cell<Option<(Vec<Frame>, Vec<KeyRef>)>> =
        const { std::cell::Cell::new(None) };
}

impl Scratch {
    fn take() -> (Vec<Frame>, Vec<KeyRef>) {
        SCRATCH
            .try_with(std::cell::Cell::take)
            .ok()
            .flatten()
            .unwrap_or_else(|| (Vec::with_capacity(8), Vec::with_capacity(32)))
    }

    fn give_back(mut stack: Vec<Frame>, mut keys: Vec<KeyRef>) {
        if stack.capacity() > KEEP_FRAMES || keys.capacity() > KEEP_KEYS {
            return;
        }
        stack.clear();
        keys.clear();
        // Fails only while the thread is being torn down: the buffers are then dropped.
        let _ = SCRATCH.try_with(|c| c.set(Some((stack, keys))));
    }
}

/// A key of an open object: a span of the body (no escapes) or of the unescape arena.
#[derive(Clone, Copy)]
struct KeyRef {
    start: usize,
    end: usize,
    in_arena: bool,
}

struct Frame {
    is_object: bool,
    keys_base: usize,
    arena_base: usize,
    /// Index into `Scanner::maps` once the object is large.
    map: Option<usize>,
    /// Path-check positions live in this container (see [`crate::paths`]).
    alive: u64,
    /// For an array: the positions of its elements.
    elem: u64,
    /// For an object: the checks (by bit) that read one of its members, and of those the ones
    /// whose member has not been seen yet.
    objs: u64,
    unseen: u64,
}

/// Hasher for keys that are already hashes.
#[derive(Default)]
struct PreHashed(u64);

impl std::hash::Hasher for PreHashed {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type KeyMap = HashMap<u64, usize, BuildHasherDefault<PreHashed>>;

/// A top-level member whose container value is still open.
struct PendingField {
    index: usize,
    key_span: Range<usize>,
    value_start: usize,
}

struct Scanner<'a, 's> {
    body: &'a [u8],
    spec: &'s JsonSpec<'s>,
    stack: Vec<Frame>,
    keys: Vec<KeyRef>,
    /// Unescaped bytes of escaped keys of open objects.
    arena: Vec<u8>,
    maps: Vec<KeyMap>,
    maps_in_use: usize,
    hasher: Option<RandomState>,
    /// Unescaped string value, for marker comparison.
    scratch: Vec<u8>,
    fields: Vec<Field<'a>>,
    markers_hit: Vec<bool>,
    pending: Option<PendingField>,
    set: Option<&'s CheckSet>,
    hits: Vec<PathHits<'a>>,
    /// Checks (by bit) that met an object without their member, or with it `null`.
    absent: u64,
}

/// A scanned string literal.
struct StrLit<'a> {
    /// The literal's raw content (between the quotes), validated UTF-8.
    raw: &'a [u8],
    escaped: bool,
    /// Offset just after the closing quote.
    end: usize,
}

impl<'a, 's> Scanner<'a, 's> {
    fn new(
        body: &'a [u8],
        spec: &'s JsonSpec<'s>,
        set: Option<&'s CheckSet>,
        stack: Vec<Frame>,
        keys: Vec<KeyRef>,
    ) -> Self {
        Scanner {
            body,
            spec,
            stack,
            keys,
            arena: Vec::new(),
            maps: Vec::new(),
            maps_in_use: 0,
            hasher: None,
            scratch: Vec::new(),
            fields: Vec::with_capacity(spec.fields.len()),
            markers_hit: vec![false; spec.markers.len()],
            pending: None,
            set,
            hits: vec![PathHits::default(); set.map_or(0, CheckSet::len)],
            absent: 0,
        }
    }

    fn run(&mut self, open: usize) -> Result<JsonScan<'a>, JsonError> {
        let b = self.body;
        let object_start = open + 1;
        let mut empty = true;
        let root = self.set.map_or(0, |t| t.first);
        self.push(true, open, root)?;
        let mut i = open + 1;
        let mut first = true;
        loop {
            i = skip_ws(b, i);
            let is_object = match self.stack.last() {
                Some(f) => f.is_object,
                None => break,
            };
            let close = if is_object { b'}' } else { b']' };
            let Some(&c) = b.get(i) else {
                return Err(syntax(i, "unexpected end of input"));
            };
            if c == close {
                i += 1;
                self.close(i);
                first = false;
                continue;
            }
            if !first {
                if c != b',' {
                    return Err(syntax(
                        i,
                        if is_object {
                            "expected ',' or '}'"
                        } else {
                            "expected ',' or ']'"
                        },
                    ));
                }
                i = skip_ws(b, i + 1);
            }
            let mut member_key: Option<KeyRef> = None;
            // Path-check positions of the value, and the checks it answers.
            let (mut child, mut targets) = (0u64, 0u64);
            if !is_object {
                child = self.stack.last().map_or(0, |f| f.elem);
            }
            if is_object {
                if b.get(i) != Some(&b'"') {
                    return Err(syntax(i, "expected a string key"));
                }
                let key_start = i;
                let lit = scan_string(b, i + 1)?;
                let key = if lit.escaped {
                    let start = self.arena.len();
                    unescape_into(lit.raw, &mut self.arena);
                    KeyRef {
                        start,
                        end: self.arena.len(),
                        in_arena: true,
                    }
                } else {
                    KeyRef {
                        start: key_start + 1,
                        end: lit.end - 1,
                        in_arena: false,
                    }
                };
                self.add_key(key, key_start)?;
                if let Some(t) = self.set {
                    if self.stack.last().is_some_and(|f| f.alive != 0) {
                        (child, targets) = self.follow(t, key);
                    }
                }
                i = skip_ws(b, lit.end);
                if b.get(i) != Some(&b':') {
                    return Err(syntax(i, "expected ':'"));
                }
                i = skip_ws(b, i + 1);
                if self.stack.len() == 1 {
                    empty = false;
                    let kb = self.key_bytes(key);
                    if let Some(index) = self.spec.fields.iter().position(|f| same_key(f.as_bytes(), kb)) {
                        self.pending = Some(PendingField {
                            index,
                            key_span: key_start..lit.end,
                            value_start: i,
                        });
                    }
                }
                member_key = Some(key);
            }
            // The value.
            let Some(&c) = b.get(i) else {
                return Err(syntax(i, "unexpected end of input"));
            };
            let value_start = i;
            if targets != 0 && c != b'"' {
                if c == b'n' {
                    self.absent |= targets;
                } else {
                    self.answer_not_string(targets);
                }
            }
            let value = match c {
                b'{' | b'[' => {
                    self.push(c == b'{', i, child)?;
                    i += 1;
                    first = true;
                    continue;
                }
                b'"' => {
                    let lit = scan_string(b, i + 1)?;
                    i = lit.end;
                    if targets != 0 {
                        self.answer_string(targets, &lit);
                    }
                    if let Some(key) = member_key {
                        if !self.spec.markers.is_empty() {
                            self.check_markers(key, &lit);
                        }
                    }
                    if self.pending.is_some() && self.stack.len() == 1 {
                        Value::String(if lit.escaped {
                            let mut v = Vec::with_capacity(lit.raw.len());
                            unescape_into(lit.raw, &mut v);
                            Cow::Owned(
                                String::from_utf8(v)
                                    .map_err(|_| err(value_start, JsonErrorKind::InvalidUtf8))?,
                            )
                        } else {
                            // Validated by scan_string: this cannot fail.
                            Cow::Borrowed(
                                std::str::from_utf8(lit.raw)
                                    .map_err(|_| err(value_start, JsonErrorKind::InvalidUtf8))?,
                            )
                        })
                    } else {
                        Value::Null
                    }
                }
                b't' => {
                    i = literal(b, i, b"true")?;
                    Value::Bool(true)
                }
                b'f' => {
                    i = literal(b, i, b"false")?;
                    Value::Bool(false)
                }
                b'n' => {
                    i = literal(b, i, b"null")?;
                    Value::Null
                }
                b'-' | b'0'..=b'9' => {
                    i = scan_number(b, i)?;
                    if self.pending.is_some() && self.stack.len() == 1 {
                        // ASCII by construction.
                        Value::Number(std::str::from_utf8(&b[value_start..i]).unwrap_or_default())
                    } else {
                        Value::Null
                    }
                }
                _ => return Err(syntax(i, "expected a value")),
            };
            if self.stack.len() == 1 {
                if let Some(p) = self.pending.take() {
                    self.fields.push(Field {
                        index: p.index,
                        key_span: p.key_span,
                        value_span: value_start..i,
                        value,
                    });
                }
            }
            first = false;
        }
        let end = skip_ws(b, i);
        if end != b.len() {
            return Err(err(end, JsonErrorKind::TrailingData));
        }
        let mut m = self.absent;
        while m != 0 {
            let c = m.trailing_zeros() as usize;
            m &= m - 1;
            if let Some(h) = self.hits.get_mut(c) {
                h.absent = true;
            }
        }
        Ok(JsonScan {
            object_start,
            empty,
            fields: std::mem::take(&mut self.fields),
            markers_hit: std::mem::take(&mut self.markers_hit),
            checks: std::mem::take(&mut self.hits),
        })
    }

    /// For a member `key` of the innermost object: the positions its value reaches, and the
    /// checks (by bit) it answers.
    #[inline]
    fn follow(&mut self, t: &CheckSet, key: KeyRef) -> (u64, u64) {
        let Some(f) = self.stack.last() else {
            return (0, 0);
        };
        let (alive, objs) = (f.alive, f.objs);
        let kb = self.key_bytes(key);
        let mut child = 0u64;
        let mut m = alive & t.named & t.names_like(kb);
        while m != 0 {
            let p = m.trailing_zeros();
            m &= m - 1;
            if same_key(t.name(p), kb) {
                child |= 1 << (p + 1);
            }
        }
        let mut targets = 0u64;
        let mut m = if objs != 0 { objs & t.keys_like(kb) } else { 0 };
        while m != 0 {
            let c = m.trailing_zeros();
            m &= m - 1;
            if same_key(t.key(c), kb) {
                targets |= 1 << c;
            }
        }
        if targets != 0 {
            if let Some(f) = self.stack.last_mut() {
                f.unseen &= !targets;
            }
        }
        (child, targets)
    }

    /// Records a number, boolean, object or array for the checks in `targets`.
    #[cold]
    fn answer_not_string(&mut self, targets: u64) {
        let mut m = targets;
        while m != 0 {
            let c = m.trailing_zeros() as usize;
            m &= m - 1;
            if let Some(h) = self.hits.get_mut(c) {
                if h.other.is_none() {
                    h.other = Some(Other::NotString);
                }
            }
        }
    }

    /// Records a string value for the checks in `targets`.
    #[inline(never)]
    fn answer_string(&mut self, targets: u64, lit: &StrLit<'a>) {
        let value: Cow<'a, [u8]> = if lit.escaped {
            let mut v = Vec::with_capacity(lit.raw.len());
            unescape_into(lit.raw, &mut v);
            Cow::Owned(v)
        } else {
            Cow::Borrowed(lit.raw)
        };
        let Some(set) = self.set else {
            return;
        };
        let mut m = targets;
        while m != 0 {
            let c = m.trailing_zeros() as usize;
            m &= m - 1;
            let Some(h) = self.hits.get_mut(c) else {
                continue;
            };
            match set.values(c).iter().position(|v| same_key(v, &value)) {
                Some(i) => h.seen |= 1 << i,
                None if h.other.is_none() => {
                    // Validated UTF-8 (scan_string / unescape of validated escapes): the
                    // lossy conversion is never taken.
                    h.other = Some(Other::String(match &value {
                        Cow::Borrowed(b) => {
                            std::str::from_utf8(b).map_or_else(|_| String::from_utf8_lossy(b), Cow::Borrowed)
                        }
                        Cow::Owned(v) => Cow::Owned(String::from_utf8_lossy(v).into_owned()),
                    }));
                }
                None => {}
            }
        }
    }

    #[inline]
    fn push(&mut self, is_object: bool, at: usize, alive: u64) -> Result<(), JsonError> {
        if self.stack.len() >= MAX_DEPTH {
            return Err(err(at, JsonErrorKind::TooDeep));
        }
        let (mut elem, mut objs) = (0u64, 0u64);
        if alive != 0 {
            if let Some(t) = self.set {
                if is_object {
                    objs = t.checks_at_end(alive);
                } else {
                    // A position followed by `[]` is never the last of its path, so the next
                    // position is its own check's.
                    elem = (alive & t.each) << 1;
                }
            }
        }
        self.stack.push(Frame {
            is_object,
            keys_base: self.keys.len(),
            arena_base: self.arena.len(),
            map: None,
            alive,
            elem,
            objs,
            unseen: objs,
        });
        Ok(())
    }

    /// Pops the innermost container, which ended just before `end`.
    #[inline]
    fn close(&mut self, end: usize) {
        if let Some(f) = self.stack.pop() {
            self.absent |= f.unseen;
            self.keys.truncate(f.keys_base);
            self.arena.truncate(f.arena_base);
            if let Some(m) = f.map {
                if let Some(map) = self.maps.get_mut(m) {
                    map.clear();
                }
                self.maps_in_use = m;
            }
            if self.stack.len() == 1 {
                if let Some(p) = self.pending.take() {
                    self.fields.push(Field {
                        index: p.index,
                        key_span: p.key_span,
                        value_span: p.value_start..end,
                        value: if f.is_object { Value::Object } else { Value::Array },
                    });
                }
            }
        }
    }

    #[inline]
    fn key_bytes(&self, k: KeyRef) -> &[u8] {
        if k.in_arena {
            &self.arena[k.start..k.end]
        } else {
            &self.body[k.start..k.end]
        }
    }

    #[cold]
    fn dup(&self, k: KeyRef, at: usize) -> JsonError {
        err(
            at,
            JsonErrorKind::DuplicateKey(String::from_utf8_lossy(self.key_bytes(k)).into_owned()),
        )
    }

    #[inline]
    fn linear_has(&self, base: usize, kb: &[u8]) -> bool {
        self.keys[base..].iter().any(|&o| same_key(self.key_bytes(o), kb))
    }

    fn hash(&mut self, k: KeyRef) -> u64 {
        let state = self.hasher.get_or_insert_with(RandomState::new);
        let kb = if k.in_arena {
            &self.arena[k.start..k.end]
        } else {
            &self.body[k.start..k.end]
        };
        state.hash_one(kb)
    }

    /// Records a key of the innermost object, rejecting duplicates.
    fn add_key(&mut self, k: KeyRef, at: usize) -> Result<(), JsonError> {
        let (base, map) = match self.stack.last() {
            Some(f) => (f.keys_base, f.map),
            None => return Ok(()),
        };
        let index = self.keys.len();
        match map {
            None => {
                // The object's first key needs no look back (half the keys of small objects).
                if index > base && self.linear_has(base, self.key_bytes(k)) {
                    return Err(self.dup(k, at));
                }
                self.keys.push(k);
                if index + 1 - base > LARGE_OBJECT {
                    self.switch_to_map(base);
                }
            }
            Some(m) => self.add_hashed_key(m, base, k, at)?,
        }
        Ok(())
    }

    /// Moves the innermost object's keys to a hash map (the large-object code is kept out of
    /// line: most objects never get there).
    #[cold]
    #[inline(never)]
    fn switch_to_map(&mut self, base: usize) {
        let m = self.maps_in_use;
        if self.maps.len() <= m {
            self.maps.push(KeyMap::default());
        }
        self.maps_in_use += 1;
        for j in base..self.keys.len() {
            let h = self.hash(self.keys[j]);
            self.maps[m].entry(h).or_insert(j);
        }
        if let Some(f) = self.stack.last_mut() {
            f.map = Some(m);
        }
    }

    /// [`Self::add_key`] for an object whose keys are in map `m`.
    #[inline(never)]
    fn add_hashed_key(&mut self, m: usize, base: usize, k: KeyRef, at: usize) -> Result<(), JsonError> {
        let index = self.keys.len();
        let h = self.hash(k);
        let existing = self.maps[m].get(&h).copied();
        match existing {
            None => {
                self.maps[m].insert(h, index);
            }
            Some(j) => {
                let kb = self.key_bytes(k);
                // Same hash: equal key, or (rarely) a collision to settle linearly.
                if self.key_bytes(self.keys[j]) == kb || self.linear_has(base, kb) {
                    return Err(self.dup(k, at));
                }
            }
        }
        self.keys.push(k);
        Ok(())
    }

    #[inline(never)]
    fn check_markers(&mut self, key: KeyRef, lit: &StrLit<'a>) {
        let spec = self.spec;
        for (mi, m) in spec.markers.iter().enumerate() {
            if self.markers_hit.get(mi).copied().unwrap_or(true)
                || !same_key(self.key_bytes(key), m.key.as_bytes())
            {
                continue;
            }
            let value: &[u8] = if lit.escaped {
                self.scratch.clear();
                unescape_into(lit.raw, &mut self.scratch);
                &self.scratch
            } else {
                lit.raw
            };
            if m.values.iter().any(|v| v.as_bytes() == value) {
                if let Some(h) = self.markers_hit.get_mut(mi) {
                    *h = true;
                }
            }
        }
    }
}

/// Key equality without a `memcmp` call for the short keys JSON bodies are made of.
#[inline(always)]
fn same_key(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len()
        && if a.len() <= 16 {
            a.iter().zip(b).all(|(x, y)| x == y)
        } else {
            a == b
        }
}

#[inline]
fn literal(b: &[u8], i: usize, lit: &'static [u8]) -> Result<usize, JsonError> {
    match b.get(i..i + lit.len()) {
        Some(s) if s == lit => Ok(i + lit.len()),
        _ => Err(syntax(i, "expected a value")),
    }
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// The bytes of `w` (8 string bytes, little-endian) that end a plain run of a string literal:
/// `"`, `\\` or a control character (< 0x20); bit 7 of each such byte is set. A borrow can only
/// flag a byte above a real hit, so the lowest flagged byte is the first hit.
#[inline(always)]
fn string_stops(w: u64) -> u64 {
    let quote = w ^ (ONES * u64::from(b'"'));
    let backslash = w ^ (ONES * u64::from(b'\\'));
    // Bytes >= 0x80 are masked out by `!w`: they are neither of the three.
    (quote.wrapping_sub(ONES) | backslash.wrapping_sub(ONES) | w.wrapping_sub(ONES * 0x20)) & !w & HIGHS
}

/// Bytes of a string's plain run scanned 16 at a time before [`long_run`] takes over: its
/// two SIMD passes cost a call each, which short runs would not repay.
const LONG_RUN: usize = 256;

/// The length of the plain run of string bytes at `from` (up to the next `"` or `\\`, or to
/// the first control character before it), and whether it has a byte >= 0x80. Two passes that
/// vectorise (memchr's SIMD search, then a min/or reduction) instead of 16 bytes per step.
/// The flag is returned, not written through a reference: a `&mut` to the caller's UTF-8 mark
/// kept that mark in memory through every string's loop.
#[inline(never)]
fn long_run(b: &[u8], from: usize) -> (usize, bool) {
    let rest = b.get(from..).unwrap_or_default();
    let end = memchr::memchr2(b'"', b'\\', rest).unwrap_or(rest.len());
    let run = &rest[..end];
    let mut high = 0u8;
    for chunk in run.chunks(64) {
        let (low, h) = chunk.iter().fold((u8::MAX, 0u8), |(l, h), &c| (l.min(c), h | c));
        high |= h;
        if low < 0x20 {
            // The run ends at its first control character (an error the caller reports).
            let at = run.iter().position(|&c| c < 0x20).unwrap_or(end);
            return (at, high & 0x80 != 0);
        }
    }
    (end, high & 0x80 != 0)
}

/// Scans a string literal whose content starts at `start` (just after the opening quote), in
/// one pass: the closing quote, escapes and control characters 8 bytes at a time; UTF-8 is
/// validated afterwards only when a byte >= 0x80 was seen (plain ASCII is valid UTF-8).
/// Inlined: its result then stays in registers (returned through memory it stalled the caller).
#[inline(always)]
fn scan_string(b: &[u8], start: usize) -> Result<StrLit<'_>, JsonError> {
    let mut i = start;
    let mut escaped = false;
    // Where the first byte >= 0x80 may be (the start of the 8 bytes that held it): the bytes
    // before are ASCII, so UTF-8 needs checking only from there, and not at all without one.
    let mut utf8_from = usize::MAX;
    let close = loop {
        // Short runs (keys, words between escapes) 16 bytes at a time; past `LONG_RUN` bytes
        // without a stop (long text, base64 data), the rest of the run with SIMD.
        let run_start = i;
        while let Some(chunk) = b.get(i..).and_then(|r| r.first_chunk::<16>()) {
            let v = u128::from_le_bytes(*chunk);
            let (w0, w1) = (v as u64, (v >> 64) as u64);
            // All 16 bytes, even past a stop: at worst a UTF-8 check that was not needed.
            if (w0 | w1) & HIGHS != 0 {
                utf8_from = utf8_from.min(i);
            }
            let (s0, s1) = (string_stops(w0), string_stops(w1));
            if s0 | s1 != 0 {
                i += if s0 != 0 {
                    s0.trailing_zeros() / 8
                } else {
                    8 + s1.trailing_zeros() / 8
                } as usize;
                break;
            }
            i += 16;
            if i - run_start >= LONG_RUN {
                let (n, high) = long_run(b, i);
                if high {
                    utf8_from = utf8_from.min(i);
                }
                i += n;
                break;
            }
        }
        let Some(&c) = b.get(i) else {
            return Err(syntax(b.len(), "unterminated string"));
        };
        match c {
            b'"' => break i,
            b'\\' => {
                escaped = true;
                i = validate_escape(b, i)?;
            }
            0..=0x1f => return Err(syntax(i, "control character in string")),
            _ => {
                if c >= 0x80 {
                    utf8_from = utf8_from.min(i);
                }
                i += 1;
            }
        }
    };
    let raw = &b[start..close];
    if let Some(rest) = b.get(utf8_from..close) {
        // simdutf8 validates non-ASCII text several times faster than `str::from_utf8`; the
        // standard one runs only on failure, for the position.
        if simdutf8::basic::from_utf8(rest).is_err() {
            let at = std::str::from_utf8(rest).err().map_or(0, |e| e.valid_up_to());
            return Err(err(utf8_from + at, JsonErrorKind::InvalidUtf8));
        }
    }
    Ok(StrLit {
        raw,
        escaped,
        end: close + 1,
    })
}

#[inline]
fn hex4(b: &[u8], i: usize) -> Result<u16, JsonError> {
    let Some(h) = b.get(i..i + 4) else {
        return Err(err(i, JsonErrorKind::InvalidEscape));
    };
    let mut n = 0u16;
    for &c in h {
        let d = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            b'A'..=b'F' => c - b'A' + 10,
            _ => return Err(err(i, JsonErrorKind::InvalidEscape)),
        };
        n = (n << 4) | u16::from(d);
    }
    Ok(n)
}

/// Validates the escape at `j` (a backslash) as serde_json does for strings (surrogates must
/// pair); returns the offset after it.
#[cold]
fn validate_escape(b: &[u8], j: usize) -> Result<usize, JsonError> {
    match b.get(j + 1) {
        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => Ok(j + 2),
        Some(b'u') => {
            let n = hex4(b, j + 2)?;
            match n {
                0xDC00..=0xDFFF => Err(err(j, JsonErrorKind::InvalidEscape)),
                0xD800..=0xDBFF => {
                    if b.get(j + 6) != Some(&b'\\') || b.get(j + 7) != Some(&b'u') {
                        return Err(err(j, JsonErrorKind::InvalidEscape));
                    }
                    match hex4(b, j + 8)? {
                        0xDC00..=0xDFFF => Ok(j + 12),
                        _ => Err(err(j, JsonErrorKind::InvalidEscape)),
                    }
                }
                _ => Ok(j + 6),
            }
        }
        Some(_) => Err(err(j, JsonErrorKind::InvalidEscape)),
        None => Err(syntax(j, "unterminated string")),
    }
}

/// Appends the unescaped form of a validated string literal's content.
pub(crate) fn unescape_into(raw: &[u8], out: &mut Vec<u8>) {
    let mut i = 0;
    while i < raw.len() {
        let Some(off) = memchr::memchr(b'\\', &raw[i..]) else {
            out.extend_from_slice(&raw[i..]);
            return;
        };
        out.extend_from_slice(&raw[i..i + off]);
        let j = i + off;
        let c = raw.get(j + 1).copied().unwrap_or(b'\\');
        i = j + 2;
        let simple = match c {
            b'b' => 0x08,
            b'f' => 0x0c,
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            b'u' => 0,
            other => other,
        };
        if c != b'u' {
            out.push(simple);
            continue;
        }
        let n = hex4(raw, j + 2).unwrap_or(0xFFFD);
        i = j + 6;
        let cp = if (0xD800..=0xDBFF).contains(&n) {
            let lo = hex4(raw, j + 8).unwrap_or(0xDC00);
            i = j + 12;
            0x10000 + ((u32::from(n) - 0xD800) << 10) + (u32::from(lo).wrapping_sub(0xDC00) & 0x3FF)
        } else {
            u32::from(n)
        };
        let ch = char::from_u32(cp).unwrap_or('\u{FFFD}');
        let mut buf = [0u8; 4];
        out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
    }
}

/// `a * 10 + d` would overflow `max` (serde_json's `overflow!`).
#[inline(always)]
fn overflows_u64(a: u64, d: u64) -> bool {
    a >= u64::MAX / 10 && (a > u64::MAX / 10 || d > u64::MAX % 10)
}

#[inline(always)]
fn overflows_i32(a: i32, d: i32) -> bool {
    a >= i32::MAX / 10 && (a > i32::MAX / 10 || d > i32::MAX % 10)
}

/// Scans a number at `i` following the RFC 8259 grammar, and rejects the numbers serde_json
/// rejects as out of range, replaying its (non-`float_roundtrip`) arithmetic exactly.
/// Returns the offset after the number.
fn scan_number(b: &[u8], mut i: usize) -> Result<usize, JsonError> {
    let start = i;
    let bad = |at: usize| err(at, JsonErrorKind::InvalidNumber);
    if b.get(i) == Some(&b'-') {
        i += 1;
    }
    let mut significand: u64;
    let mut exponent: i32 = 0;
    let mut is_float = false;
    match b.get(i) {
        Some(b'0') => {
            i += 1;
            if matches!(b.get(i), Some(b'0'..=b'9')) {
                return Err(bad(i));
            }
            significand = 0;
        }
        Some(&c @ b'1'..=b'9') => {
            significand = u64::from(c - b'0');
            i += 1;
            while let Some(&c @ b'0'..=b'9') = b.get(i) {
                let d = u64::from(c - b'0');
                if overflows_u64(significand, d) {
                    // serde_json's long integer: further digits only scale the exponent.
                    is_float = true;
                    while let Some(b'0'..=b'9') = b.get(i) {
                        i += 1;
                        exponent = exponent.saturating_add(1);
                    }
                    break;
                }
                significand = significand * 10 + d;
                i += 1;
            }
        }
        _ => return Err(bad(start)),
    }
    if b.get(i) == Some(&b'.') {
        is_float = true;
        i += 1;
        let mut any = false;
        while let Some(&c @ b'0'..=b'9') = b.get(i) {
            any = true;
            let d = u64::from(c - b'0');
            if overflows_u64(significand, d) {
                while let Some(b'0'..=b'9') = b.get(i) {
                    i += 1;
                }
                break;
            }
            significand = significand * 10 + d;
            exponent = exponent.saturating_sub(1);
            i += 1;
        }
        if !any {
            return Err(bad(i));
        }
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        is_float = true;
        i += 1;
        let positive_exp = match b.get(i) {
            Some(b'+') => {
                i += 1;
                true
            }
            Some(b'-') => {
                i += 1;
                false
            }
            _ => true,
        };
        let mut exp = match b.get(i) {
            Some(&c @ b'0'..=b'9') => i32::from(c - b'0'),
            _ => return Err(bad(i)),
        };
        i += 1;
        while let Some(&c @ b'0'..=b'9') = b.get(i) {
            i += 1;
            let d = i32::from(c - b'0');
            if overflows_i32(exp, d) {
                if significand != 0 && positive_exp {
                    return Err(bad(start));
                }
                while let Some(b'0'..=b'9') = b.get(i) {
                    i += 1;
                }
                return Ok(i);
            }
            exp = exp * 10 + d;
        }
        exponent = if positive_exp {
            exponent.saturating_add(exp)
        } else {
            exponent.saturating_sub(exp)
        };
    }
    if is_float && !f64_in_range(significand, exponent) {
        return Err(bad(start));
    }
    Ok(i)
}

/// serde_json's `f64_from_parts` (without `float_roundtrip`): is `significand * 10^exponent`
/// finite as it computes it?
fn f64_in_range(significand: u64, mut exponent: i32) -> bool {
    let mut f = significand as f64;
    loop {
        match POW10.get(exponent.wrapping_abs() as usize) {
            Some(&pow) => {
                if exponent >= 0 {
                    f *= pow;
                    return f.is_finite();
                }
                return true;
            }
            None => {
                if f == 0.0 {
                    return true;
                }
                if exponent >= 0 {
                    return false;
                }
                f /= 1e308;
                exponent += 308;
            }
        }
    }
}

/// The JSON string literal (quotes included) for `s`, escaped per RFC 8259.
pub fn string_literal(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const NO_SPEC: JsonSpec<'static> = JsonSpec {
        fields: &[],
        markers: &[],
    };

    fn kind(body: &[u8]) -> JsonErrorKind {
        match scan_json(body, &NO_SPEC) {
            Ok(s) => panic!("accepted {:?}: {s:?}", String::from_utf8_lossy(body)),
            Err(e) => e.kind,
        }
    }

    fn ok(body: &[u8]) -> JsonScan<'_> {
        match scan_json(body, &NO_SPEC) {
            Ok(s) => s,
            Err(e) => panic!("rejected {:?}: {e}", String::from_utf8_lossy(body)),
        }
    }

    fn serde_ok(body: &[u8]) -> bool {
        serde_json::from_slice::<serde_json::Value>(body).is_ok()
    }

    #[test]
    fn whitespace_runs_of_every_length_around_every_token() {
        let spec = JsonSpec {
            fields: &["model"],
            ..NO_SPEC
        };
        for n in 0..40 {
            for fill in [" ", "\t", "\n", " \r\n"] {
                let ws = fill.repeat(n);
                let doc = format!(
                    "{ws}{{{ws}\"model\"{ws}:{ws}\"gpt\"{ws},{ws}\"a\"{ws}:{ws}[{ws}1{ws},{ws}true{ws}]{ws}}}{ws}"
                );
                let scan = scan_json(doc.as_bytes(), &spec).unwrap_or_else(|e| panic!("{doc:?}: {e}"));
                assert!(serde_ok(doc.as_bytes()));
                let f = scan.field(0).unwrap();
                assert_eq!(&doc[f.value_span.clone()], "\"gpt\"", "{doc:?}");
                assert_eq!(scan.object_start, ws.len() + 1);
                // A stray byte anywhere inside a run of spaces is still seen.
                if fill == " " && n >= 9 {
                    for at in 0..n {
                        let mut bad = doc.clone().into_bytes();
                        let pos = doc.find(":").unwrap() + 1 + at;
                        bad[pos] = b'x';
                        assert!(
                            scan_json(&bad, &spec).is_err(),
                            "{:?}",
                            String::from_utf8_lossy(&bad)
                        );
                        assert!(!serde_ok(&bad));
                    }
                }
            }
        }
    }

    #[test]
    fn empty_and_whitespace() {
        assert_eq!(kind(b""), JsonErrorKind::Empty);
        assert_eq!(kind(b" \n\t\r"), JsonErrorKind::Empty);
        let s = ok(b" \n{}\r\n ");
        assert!(s.empty);
        assert_eq!(s.object_start, 3);
        assert!(!ok(br#"{"a":1}"#).empty);
    }

    #[test]
    fn bom_rejected() {
        assert_eq!(kind(b"\xEF\xBB\xBF{}"), JsonErrorKind::ByteOrderMark);
        assert!(!serde_ok(b"\xEF\xBB\xBF{}"));
    }

    #[test]
    fn not_an_object() {
        for b in [&b"[]"[..], b"1", b"\"x\"", b"null", b"true", b" [1,2]"] {
            assert!(serde_ok(b));
            assert_eq!(kind(b), JsonErrorKind::NotAnObject);
        }
    }

    #[test]
    fn trailing_data() {
        assert_eq!(kind(b"{} {}"), JsonErrorKind::TrailingData);
        assert_eq!(kind(b"{}x"), JsonErrorKind::TrailingData);
        assert_eq!(kind(b"{}\x00"), JsonErrorKind::TrailingData);
    }

    #[test]
    fn syntax_errors() {
        for b in [
            &b"{"[..],
            b"{\"a\"}",
            b"{\"a\":}",
            b"{\"a\":1,}",
            b"{,}",
            b"{\"a\" 1}",
            b"{\"a\":[1,]}",
            b"{\"a\":[1 2]}",
            b"{\"a\":tru}",
            b"{\"a\":truex}",
            b"{\"a\":nul}",
            b"{\"a\":'x'}",
            b"{a:1}",
            b"{\"a\":1]",
            b"{\"a\":[1}",
            b"{\"a\":\"x}",
            b"{\"a\":\"x\\",
            b"{\"a\":\x0c1}",
        ] {
            assert!(!serde_ok(b), "{:?}", String::from_utf8_lossy(b));
            assert!(
                matches!(kind(b), JsonErrorKind::Syntax(_)),
                "{:?}",
                String::from_utf8_lossy(b)
            );
        }
    }

    #[test]
    fn control_chars_in_strings() {
        assert!(matches!(kind(b"{\"a\":\"x\ny\"}"), JsonErrorKind::Syntax(_)));
        assert!(matches!(kind(b"{\"a\x01\":1}"), JsonErrorKind::Syntax(_)));
        // 0x7f is allowed, as are escaped controls.
        ok(b"{\"a\":\"\x7f\\u0000\\n\"}");
    }

    #[test]
    fn invalid_utf8() {
        for b in [
            &b"{\"a\":\"\xff\"}"[..],
            b"{\"\xc3\":1}",
            b"{\"a\":\"\xed\xa0\x80\"}",
            b"{\"a\":1\xc3\xa9}",
        ] {
            assert!(!serde_ok(b));
            assert!(scan_json(b, &NO_SPEC).is_err());
        }
        assert_eq!(kind(b"{\"a\":\"ok \xff\"}"), JsonErrorKind::InvalidUtf8);
        ok("{\"é\":\"😀 ü\"}".as_bytes());
    }

    #[test]
    fn escapes() {
        ok(br#"{"a":"\" \\ \/ \b \f \n \r \t \u00e9 \uD83D\uDE00"}"#);
        for b in [
            &br#"{"a":"\x"}"#[..],
            br#"{"a":"\u12"}"#,
            br#"{"a":"\u12g4"}"#,
            br#"{"a":"\ud800"}"#,
            br#"{"a":"\udc00"}"#,
            br#"{"a":"\ud800\u0041"}"#,
            br#"{"a":"\ud800\n"}"#,
            br#"{"a":"\ud800\ud800"}"#,
            br#"{"\ud800":1}"#,
        ] {
            assert!(!serde_ok(b), "{:?}", String::from_utf8_lossy(b));
            assert_eq!(
                kind(b),
                JsonErrorKind::InvalidEscape,
                "{:?}",
                String::from_utf8_lossy(b)
            );
        }
    }

    #[test]
    fn numbers() {
        for good in [
            "0",
            "-0",
            "1",
            "-1",
            "1.5",
            "1e5",
            "1E+5",
            "1e-5",
            "0.0",
            "123456789012345678901234567890",
            "1e-400",
            "0e99999999999",
            "1.7976931348623157e308",
            "-1.7976931348623157e308",
            "17976931348623157e292",
            "1e308",
        ] {
            let body = format!("{{\"n\":{good}}}");
            assert!(serde_ok(body.as_bytes()), "{good}");
            ok(body.as_bytes());
        }
        for bad in [
            "01",
            "-01",
            "1.",
            ".5",
            "-",
            "+1",
            "1e",
            "1e+",
            "--1",
            "1.e5",
            "0x10",
            "1e400",
            "-1e400",
            "1e99999999999",
            "1.7976931348623158e308",
            "1e309",
            &"9".repeat(400),
        ] {
            let body = format!("{{\"n\":{bad}}}");
            assert!(!serde_ok(body.as_bytes()), "{bad}");
            assert!(scan_json(body.as_bytes(), &NO_SPEC).is_err(), "{bad}");
        }
        assert_eq!(kind(b"{\"n\":1e400}"), JsonErrorKind::InvalidNumber);
        assert_eq!(kind(b"{\"n\":01}"), JsonErrorKind::InvalidNumber);
    }

    #[test]
    fn depth_limit_matches_serde() {
        let nest = |n: usize| format!("{{\"a\":{}{}}}", "[".repeat(n - 1), "]".repeat(n - 1));
        assert!(serde_ok(nest(MAX_DEPTH).as_bytes()));
        ok(nest(MAX_DEPTH).as_bytes());
        assert!(!serde_ok(nest(MAX_DEPTH + 1).as_bytes()));
        assert_eq!(kind(nest(MAX_DEPTH + 1).as_bytes()), JsonErrorKind::TooDeep);
        let objs = format!("{}{}", "{\"a\":".repeat(MAX_DEPTH + 1), "}".repeat(MAX_DEPTH + 1));
        assert_eq!(kind(objs.as_bytes()), JsonErrorKind::TooDeep);
    }

    #[test]
    fn very_deep_does_not_overflow() {
        let body = format!("{{\"a\":{}", "[".repeat(10_000));
        assert_eq!(kind(body.as_bytes()), JsonErrorKind::TooDeep);
        let body = format!("{{\"a\":{}{}}}", "[".repeat(100_000), "]".repeat(100_000));
        assert_eq!(kind(body.as_bytes()), JsonErrorKind::TooDeep);
    }

    #[test]
    fn duplicate_keys() {
        assert_eq!(kind(br#"{"a":1,"a":2}"#), JsonErrorKind::DuplicateKey("a".into()));
        assert_eq!(
            kind(br#"{"a":1,"\u0061":2}"#),
            JsonErrorKind::DuplicateKey("a".into())
        );
        assert_eq!(
            kind(br#"{"\u0061":1,"a":2}"#),
            JsonErrorKind::DuplicateKey("a".into())
        );
        assert_eq!(
            kind(br#"{"x":[{"b":1},{"c":{"d":1,"d":2}}]}"#),
            JsonErrorKind::DuplicateKey("d".into())
        );
        assert_eq!(
            kind(br#"{"\n":1,"\u000a":2}"#),
            JsonErrorKind::DuplicateKey("\n".into())
        );
        // Same key in sibling and nested objects is fine.
        ok(br#"{"a":{"a":{"a":1}},"b":[{"a":1},{"a":2}]}"#);
        ok(br#"{"a":1,"A":2,"a ":3,"\u0062":4}"#);
    }

    #[test]
    fn duplicate_keys_in_large_objects() {
        let mut body = String::from("{");
        for i in 0..1000 {
            body.push_str(&format!("\"k{i}\":{i},"));
        }
        let ok_body = format!("{}\"end\":0}}", body);
        ok(ok_body.as_bytes());
        let dup = format!("{}\"k\\u0035\":0}}", body); // "k5"
        assert_eq!(kind(dup.as_bytes()), JsonErrorKind::DuplicateKey("k5".into()));
        let dup = format!("{}\"end\":0,\"k999\":1}}", body);
        assert_eq!(kind(dup.as_bytes()), JsonErrorKind::DuplicateKey("k999".into()));
        // Nested large objects, each with its own map, and a dup in the outer one after.
        let inner: String = (0..40).map(|i| format!("\"i{i}\":{{{}}},", "")).collect();
        let nested = format!("{{{inner}\"x\":{{{inner}\"y\":1}},\"i3\":2}}");
        assert_eq!(kind(nested.as_bytes()), JsonErrorKind::DuplicateKey("i3".into()));
    }

    #[test]
    fn large_object_scans_fast() {
        let mut body = String::from("{");
        let mut i = 0;
        while body.len() < 1 << 20 {
            body.push_str(&format!("\"key_{i:08}\":{i},"));
            i += 1;
        }
        body.push_str("\"end\":true}");
        assert!(i > 50_000);
        let t = std::time::Instant::now();
        ok(body.as_bytes());
        assert!(
            t.elapsed() < std::time::Duration::from_secs(2),
            "{:?}",
            t.elapsed()
        );
    }

    const FIELDS: &[&str] = &["model", "store", "tools", "meta", "n", "s", "flag"];

    #[test]
    fn fields_reported_with_spans() {
        let body = br#" { "model" : "gpt-4o", "store":true, "n": -1.5e3, "tools": [ {"model":"no"} ], "meta":{"a":null}, "x":null, "flag":false, "s":"a\u00e9\n" } "#;
        let spec = JsonSpec {
            fields: FIELDS,
            markers: &[],
        };
        let s = match scan_json(body, &spec) {
            Ok(s) => s,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(s.object_start, 2);
        assert!(!s.empty);
        let idx: Vec<usize> = s.fields.iter().map(|f| f.index).collect();
        assert_eq!(idx, vec![0, 1, 4, 2, 3, 6, 5]);
        let get = |i| {
            s.field(i).map(|f| {
                (
                    &body[f.key_span.clone()],
                    &body[f.value_span.clone()],
                    f.value.clone(),
                )
            })
        };
        assert_eq!(
            get(0),
            Some((
                &br#""model""#[..],
                &br#""gpt-4o""#[..],
                Value::String(Cow::Borrowed("gpt-4o"))
            ))
        );
        assert!(matches!(
            s.field(0).map(|f| &f.value),
            Some(Value::String(Cow::Borrowed(_)))
        ));
        assert_eq!(
            get(1),
            Some((&br#""store""#[..], &b"true"[..], Value::Bool(true)))
        );
        assert_eq!(
            get(4),
            Some((&br#""n""#[..], &b"-1.5e3"[..], Value::Number("-1.5e3")))
        );
        assert_eq!(
            get(2),
            Some((&br#""tools""#[..], &br#"[ {"model":"no"} ]"#[..], Value::Array))
        );
        assert_eq!(
            get(3),
            Some((&br#""meta""#[..], &br#"{"a":null}"#[..], Value::Object))
        );
        assert_eq!(
            get(6),
            Some((&br#""flag""#[..], &b"false"[..], Value::Bool(false)))
        );
        assert_eq!(
            get(5).map(|g| g.2),
            Some(Value::String(Cow::Owned("a\u{e9}\n".into())))
        );
    }

    #[test]
    fn escaped_field_keys_match() {
        let body = br#"{"mod\u0065l":"x","st\/ore":null,"\u0073tore":null}"#;
        let spec = JsonSpec {
            fields: FIELDS,
            markers: &[],
        };
        let s = scan_json(body, &spec).unwrap();
        assert_eq!(
            s.field(0).map(|f| &body[f.key_span.clone()]),
            Some(&br#""mod\u0065l""#[..])
        );
        assert_eq!(s.field(1).map(|f| f.value.clone()), Some(Value::Null));
        assert_eq!(s.fields.len(), 2);
    }

    #[test]
    fn markers_any_depth_after_unescaping() {
        let markers = [
            Marker {
                key: "type",
                values: &["image_url", "input_image"],
            },
            Marker {
                key: "type",
                values: &["web_search", "web_search_preview"],
            },
            Marker {
                key: "kind",
                values: &["x"],
            },
        ];
        let spec = JsonSpec {
            fields: &[],
            markers: &markers,
        };
        let hit = |b: &[u8]| scan_json(b, &spec).unwrap().markers_hit;
        assert_eq!(hit(br#"{"type":"text"}"#), vec![false, false, false]);
        assert_eq!(
            hit(br#"{"messages":[{"content":[{"type":"image_url","image_url":{"url":"x"}}]}]}"#),
            vec![true, false, false]
        );
        assert_eq!(
            hit(br#"{"tools":[{"t\u0079pe":"web_s\u0065arch"}]}"#),
            vec![false, true, false]
        );
        // Values of other keys, keys as values, and array elements don't count.
        assert_eq!(
            hit(br#"{"x":"type","y":["image_url"],"image_url":"type"}"#),
            vec![false, false, false]
        );
        assert_eq!(
            hit(br#"{"type":{"type":["input_image"]}}"#),
            vec![false, false, false]
        );
        assert_eq!(
            hit(br#"{"a":{"b":{"kind":"x"}},"type":"input_image"}"#),
            vec![true, false, true]
        );
        // A body with a marker is still rejected when invalid later on.
        assert!(scan_json(br#"{"type":"image_url","a":01}"#, &spec).is_err());
    }

    #[test]
    fn error_display() {
        let e = scan_json(br#"{"a":1,"a":2}"#, &NO_SPEC).unwrap_err();
        assert!(e.to_string().contains("duplicate key"));
    }

    #[test]
    fn string_literal_round_trips() {
        let s = "a\"b\\c\u{1}\n😀";
        let lit = string_literal(s);
        assert_eq!(serde_json::from_str::<String>(&lit).unwrap(), s);
    }

    /// Past `LONG_RUN` plain bytes, `long_run` still sends a run holding a byte >= 0x80 to the
    /// UTF-8 check: one after a space (the smallest plain byte), and a run of nothing but
    /// continuation bytes (0x80, whose OR with the run's other bytes is 0x80 alone).
    #[test]
    fn long_runs_check_utf8_whatever_else_they_hold() {
        for (fill, bad) in [(&b" \xff"[..], 1), (b"\x80\x80\x80", 0), (b"\x80", 0)] {
            for pos in [LONG_RUN, LONG_RUN + 1, LONG_RUN + 70] {
                let mut body = b"{\"k\":\"".to_vec();
                body.extend(std::iter::repeat_n(b'a', pos));
                let at = body.len() + bad;
                body.extend_from_slice(fill);
                body.extend_from_slice(b"\"}");
                match scan_json(&body, &NO_SPEC) {
                    Err(e) => assert_eq!((e.kind, e.offset), (JsonErrorKind::InvalidUtf8, at), "{pos}"),
                    Ok(_) => panic!("accepted {:?}", String::from_utf8_lossy(&body)),
                }
            }
        }
    }

    /// The 16-bytes-at-a-time string scan finds every stop byte at every offset of a chunk, and
    /// so does `long_run` past `LONG_RUN` bytes (across its 64-byte reductions), agreeing with
    /// serde_json on each one.
    #[test]
    fn string_scan_stops_at_every_offset() {
        let specials: &[&[u8]] = &[
            b"\"",
            b"\\n",
            b"\\u00e9",
            b"\x01",
            b"\x1f",
            b"\n",
            b"\x7f",
            b" ",
            b"\xc3\xa9",
            b"\xff",
            b"\xff\xfe",
            b"\\x",
        ];
        for special in specials {
            for pos in 0..LONG_RUN + 200 {
                let mut body = b"{\"k\":\"".to_vec();
                body.extend(std::iter::repeat_n(b'a', pos));
                body.extend_from_slice(special);
                body.extend_from_slice(b"bcdefghijklmnop\"}");
                let ours = scan_json(
                    &body,
                    &JsonSpec {
                        fields: &["k"],
                        markers: &[],
                    },
                );
                let serde = serde_json::from_slice::<serde_json::Value>(&body);
                assert_eq!(
                    ours.is_ok(),
                    serde.is_ok(),
                    "{:?}",
                    String::from_utf8_lossy(&body)
                );
                // Not requested: only the scan's own UTF-8 check sees the string (a requested
                // one is checked again when it is decoded).
                assert_eq!(
                    scan_json(&body, &NO_SPEC).is_ok(),
                    serde.is_ok(),
                    "unrequested {:?}",
                    String::from_utf8_lossy(&body)
                );
                if let (Ok(scan), Ok(v)) = (ours, serde) {
                    let Some(Field {
                        value: Value::String(got),
                        ..
                    }) = scan.field(0)
                    else {
                        panic!("no string field in {body:?}");
                    };
                    assert_eq!(Some(got.as_ref()), v["k"].as_str());
                }
            }
        }
    }
}

#[cfg(test)]
mod word_scan_tests;
