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
}

impl Facts<'static> {
    /// Facts for a request with no body to inspect.
    pub const NONE: Facts<'static> = Facts {
        fields: &[],
        markers: &[],
    };
}
