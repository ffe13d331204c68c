//! Request-body inspection for residency-proxy.
//!
//! Reads the few fields a policy needs out of a request body *without building a DOM and
//! without copying the body*, and expresses rewrites as byte splices of the original
//! [`bytes::Bytes`]. It knows nothing of OpenAI or of policy: callers say which fields and
//! markers they want.
//!
//! Every reader here is strict: an input that a strict parser could read in more than one way
//! (duplicate keys, odd quoting, invalid UTF-8, …) is an error, never a guess.
#![forbid(unsafe_code)]

pub mod array;
pub mod json;
pub mod multipart;
pub mod paths;
mod pow10;
pub mod query;
pub mod splice;

pub use array::{string_array, NotStrings, StringArray};
pub use json::{scan_json, scan_json_checked, scan_json_with, JsonError, JsonScan, JsonSpec, Marker, Value};
pub use multipart::{
    boundary_from_content_type, parse_part_headers, scan_multipart, MultipartError, MultipartScan,
    PartHeaders,
};
pub use paths::{CheckSet, Other, PathCheck, PathHits, TooManyPositions};
pub use query::{query_param, QueryError};
pub use splice::{Splice, SpliceError};
