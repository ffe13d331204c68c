//! What the proxy read from a request, in the order the operation's [`InspectPlan`] asked.
//!
//! [`InspectPlan`]: crate::InspectPlan

/// The value of one requested field as read from the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldValue<'a> {
    Absent,
    Null,
    Bool(bool),
    Number,
    String(&'a str),
    Object,
    Array,
}

/// One request's facts. `fields[i]` is the value of `plan.fields[i]`; `markers[i]` whether
/// `plan.markers[i]` matched anywhere in the body.
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    pub fields: &'a [FieldValue<'a>],
    pub markers: &'a [bool],
    /// `checks[i]` answers `plan.checks[i]`; missing entries count as nothing found.
    pub checks: &'a [CheckFacts<'a>],
    /// The elements of the plan's `Include` array, when it is an array and was read (only for
    /// a project with encrypted reasoning).
    pub include: Option<IncludeList>,
}

/// What the elements of an include array are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncludeList {
    /// All strings; whether the catalog's value is among them.
    Strings { has_value: bool },
    /// An element is not a string.
    NotStrings,
}

/// A checked member's value that is not one of the check's values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtherValue<'a> {
    String(&'a str),
    /// A number, boolean, object or array.
    NotString,
}

/// What the scan found for one [`BodyCheck`](crate::BodyCheck).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CheckFacts<'a> {
    /// Bit `i`: `values[i]` was seen.
    pub seen: u64,
    /// The first value not in `values`.
    pub other: Option<OtherValue<'a>>,
    /// An object at the path lacked the member (or had it null).
    pub absent: bool,
}

impl Facts<'static> {
    /// Facts for a request with no body to inspect.
    pub const NONE: Facts<'static> = Facts {
        fields: &[],
        markers: &[],
        checks: &[],
        include: None,
    };
}
