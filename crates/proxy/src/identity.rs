//! Who is asking: the one place that reads every credential and project selector a request
//! can carry, and the one place that edits them on the way upstream.
//!
//! Read ([`select`], phase "early request"):
//! - `Authorization: <scheme> <token>`: the scheme is case-insensitive and followed by one or
//!   more spaces or tabs (RFC 9110 §11.1, §11.6.2); only `Bearer` (RFC 6750 §2.1) is accepted.
//!   A value that does not parse is refused (400), never treated as absent: an upstream may
//!   still read a key in it that we did not.
//! - `Sec-WebSocket-Protocol` (RFC 6455 §4.1: a comma-separated list, possibly over several
//!   lines): the realtime browser entries `openai-insecure-api-key.<key>`,
//!   `openai-project.<id>` and `openai-organization.<id>`. Any other `openai-` entry except
//!   `openai-beta.*` is refused: it could be a credential spelled in a way we do not know.
//! - `OpenAI-Project`, `OpenAI-Organization`: one line each, one id each.
//! - Header names with `_`, which CGI/WSGI-style servers map onto the `-` name (nginx drops
//!   them by default, `underscores_in_headers off`): one that aliases a header read here or
//!   framing the body is refused; the others follow `headers.underscores`.
//!
//! A recognised client key always wins: a selector naming another project is a refusal. Two
//! keys, two project ids or two organizations that differ are refused, as is a repeated or
//! comma-listed selector. Nothing read here is logged: messages never quote a value.
//!
//! Write ([`forward`], phase "upstream request"): underscore names are dropped (unless
//! configured otherwise), and when the proxy injects the project's upstream key or
//! `OpenAI-Project`, the client's subprotocol credential / project entries go too, so the
//! upstream never sees two identities. The upstream key itself is never put in a subprotocol
//! (a server may echo the chosen subprotocol back to the client).

use http::{HeaderMap, HeaderName, HeaderValue};
use policy::{ProjectSet, SelectError};
use sha2::{Digest, Sha256};

/// What to do with header names containing `_` that alias no header the proxy reads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Underscores {
    /// Removed before forwarding (nginx's default).
    #[default]
    Drop,
    /// Any such name is refused (400).
    Refuse,
    /// Forwarded as they came (nginx `underscores_in_headers on`).
    Forward,
}

/// Why no project was selected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The request's identity is ambiguous or names a project the key does not allow: a
    /// `no_project` policy denial (403).
    Ambiguous(&'static str),
    /// Nothing selects a project and there is no default (403 `no_project`).
    NoProject,
    /// A credential or header that cannot be read one way only (400).
    Malformed(&'static str),
    /// `auth.require_client_key` and the key is not one of ours (401).
    Unauthorized,
}

/// What the identity step needs of the configuration.
#[derive(Debug, Clone, Copy)]
pub struct Rules<'a> {
    pub projects: &'a ProjectSet,
    pub require_client_key: bool,
    pub underscores: Underscores,
}

const SUBPROTOCOL: HeaderName = http::header::SEC_WEBSOCKET_PROTOCOL;
const KEY_ENTRY: &str = "openai-insecure-api-key.";
const PROJECT_ENTRY: &str = "openai-project.";
const ORG_ENTRY: &str = "openai-organization.";
const BETA_ENTRY: &str = "openai-beta.";

/// Names the proxy reads or frames the body by; an `_` spelling of any of them is refused.
const READ: [&str; 16] = [
    "authorization",
    "openai-project",
    "openai-organization",
    "sec-websocket-protocol",
    "sec-websocket-key",
    "content-type",
    "content-encoding",
    "content-length",
    "transfer-encoding",
    "host",
    "connection",
    "upgrade",
    "te",
    "trailer",
    "proxy-connection",
    "x-request-id",
];

/// The project for a request whose head is `headers`, or why there is none.
pub fn select(rules: Rules<'_>, headers: &HeaderMap) -> Result<usize, Refusal> {
    check_underscores(rules.underscores, headers)?;
    let mut key: Option<&[u8]> = None;
    let mut project: Option<&str> = None;
    let mut org: Option<&str> = None;

    let mut auth = headers.get_all(http::header::AUTHORIZATION).iter();
    if let Some(v) = auth.next() {
        if auth.next().is_some() {
            return Err(Refusal::Ambiguous("more than one Authorization header"));
        }
        key = Some(bearer_token(v.as_bytes())?);
    }
    let mut project_lines = 0;
    for v in headers.get_all("openai-project") {
        project_lines += 1;
        if project_lines > 1 {
            return Err(Refusal::Ambiguous("more than one OpenAI-Project header"));
        }
        project = Some(id(
            v.as_bytes(),
            "the OpenAI-Project header is not one project id",
        )?);
    }
    let mut org_lines = 0;
    for v in headers.get_all("openai-organization") {
        org_lines += 1;
        if org_lines > 1 {
            return Err(Refusal::Ambiguous("more than one OpenAI-Organization header"));
        }
        org = Some(id(
            v.as_bytes(),
            "the OpenAI-Organization header is not one organization id",
        )?);
    }
    let mut seen = [false; 3];
    for entry in subprotocol_entries(headers) {
        let entry = entry?;
        let Some(kind) = entry_kind(entry)? else {
            continue;
        };
        let (slot, value) = match kind {
            Entry::Key(k) => (0, k),
            Entry::Project(p) => (1, p),
            Entry::Org(o) => (2, o),
        };
        if std::mem::replace(&mut seen[slot], true) {
            return Err(Refusal::Ambiguous(
                "a realtime subprotocol credential or selector is repeated",
            ));
        }
        match kind {
            Entry::Key(_) => {
                let k = token(value.as_bytes()).ok_or(Refusal::Malformed(
                    "the realtime subprotocol key is not a valid key",
                ))?;
                if key.is_some_and(|a| a != k) {
                    return Err(Refusal::Ambiguous(
                        "Authorization and the realtime subprotocol carry different keys",
                    ));
                }
                key = Some(k);
            }
            Entry::Project(_) => {
                let p = id(
                    value.as_bytes(),
                    "the realtime subprotocol project is not one project id",
                )?;
                if project.is_some_and(|a| a != p) {
                    return Err(Refusal::Ambiguous(
                        "OpenAI-Project and the realtime subprotocol name different projects",
                    ));
                }
                project = Some(p);
            }
            Entry::Org(_) => {
                let o = id(
                    value.as_bytes(),
                    "the realtime subprotocol organization is not one id",
                )?;
                if org.is_some_and(|a| a != o) {
                    return Err(Refusal::Ambiguous(
                        "OpenAI-Organization and the realtime subprotocol name different organizations",
                    ));
                }
                org = Some(o);
            }
        }
    }

    let hash = key.map(|k| <[u8; 32]>::from(Sha256::digest(k)));
    if rules.require_client_key && hash.is_none_or(|h| rules.projects.by_key(&h).is_none()) {
        return Err(Refusal::Unauthorized);
    }
    let names: &[&str] = match &project {
        Some(p) => std::slice::from_ref(p),
        None => &[],
    };
    rules.projects.select(hash.as_ref(), names).map_err(|e| match e {
        SelectError::NoProject => Refusal::NoProject,
        SelectError::Ambiguous(why) => Refusal::Ambiguous(why),
    })
}

/// Edits the forwarded head: underscore names per `underscores`, and the subprotocol entries
/// that the injected `Authorization` (`injected_key`) or `OpenAI-Project`
/// (`injected_project`) replace.
pub fn forward(
    headers: &mut HeaderMap,
    underscores: Underscores,
    injected_key: bool,
    injected_project: bool,
) {
    if underscores == Underscores::Drop && headers.keys().any(|n| n.as_str().contains('_')) {
        let names: Vec<HeaderName> = headers
            .keys()
            .filter(|n| n.as_str().contains('_'))
            .cloned()
            .collect();
        for n in names {
            headers.remove(n);
        }
    }
    if !(injected_key || injected_project) || !headers.contains_key(SUBPROTOCOL) {
        return;
    }
    // Already checked by `select`: every line is text and every entry reads one way.
    let kept: Vec<&str> = headers
        .get_all(SUBPROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|e| e.trim_matches([' ', '\t']))
        .filter(|e| !e.is_empty())
        .filter(|e| match entry_kind(e) {
            Ok(Some(Entry::Key(_))) => !injected_key,
            Ok(Some(Entry::Project(_))) => !injected_project,
            _ => true,
        })
        .collect();
    let value = (!kept.is_empty())
        .then(|| HeaderValue::from_str(&kept.join(", ")).ok())
        .flatten();
    match value {
        Some(v) => {
            headers.insert(SUBPROTOCOL, v);
        }
        None => {
            headers.remove(SUBPROTOCOL);
        }
    }
}

fn check_underscores(mode: Underscores, headers: &HeaderMap) -> Result<(), Refusal> {
    for name in headers.keys() {
        let name = name.as_str();
        if !name.contains('_') {
            continue;
        }
        let aliases = READ.iter().any(|r| {
            r.len() == name.len()
                && r.bytes()
                    .zip(name.bytes())
                    .all(|(a, b)| a == b || (a == b'-' && b == b'_'))
        });
        if aliases {
            return Err(Refusal::Malformed(
                "a header name with \"_\" stands for a header the proxy reads (some servers read it as the \"-\" name)",
            ));
        }
        if mode == Underscores::Refuse {
            return Err(Refusal::Malformed(
                "header names with \"_\" are refused here (headers.underscores = \"refuse\")",
            ));
        }
    }
    Ok(())
}

enum Entry<'a> {
    Key(&'a str),
    Project(&'a str),
    Org(&'a str),
}

/// Every non-empty entry of every `Sec-WebSocket-Protocol` line, without surrounding spaces.
fn subprotocol_entries(headers: &HeaderMap) -> impl Iterator<Item = Result<&str, Refusal>> {
    headers.get_all(SUBPROTOCOL).iter().flat_map(|v| {
        let text = v
            .to_str()
            .map_err(|_| Refusal::Malformed("Sec-WebSocket-Protocol is not ASCII text"));
        let (ok, err) = match text {
            Ok(t) => (Some(t), None),
            Err(e) => (None, Some(Err(e))),
        };
        ok.into_iter()
            .flat_map(|t| t.split(','))
            .map(|e| e.trim_matches([' ', '\t']))
            .filter(|e| !e.is_empty())
            .map(Ok)
            .chain(err)
    })
}

/// The kind of a subprotocol entry, matched without regard to case (a server might not care).
fn entry_kind(entry: &str) -> Result<Option<Entry<'_>>, Refusal> {
    let lower_prefix = |p: &str| {
        entry
            .get(..p.len())
            .is_some_and(|h| h.eq_ignore_ascii_case(p))
            .then(|| &entry[p.len()..])
    };
    if let Some(k) = lower_prefix(KEY_ENTRY) {
        return Ok(Some(Entry::Key(k)));
    }
    if let Some(p) = lower_prefix(PROJECT_ENTRY) {
        return Ok(Some(Entry::Project(p)));
    }
    if let Some(o) = lower_prefix(ORG_ENTRY) {
        return Ok(Some(Entry::Org(o)));
    }
    if lower_prefix(BETA_ENTRY).is_some() || lower_prefix("openai-").is_none() {
        return Ok(None);
    }
    Err(Refusal::Malformed(
        "an openai- realtime subprotocol entry that is not a key, project, organization or beta flag",
    ))
}

/// The token of `Authorization: Bearer <token>`: scheme case-insensitive, one or more spaces or
/// tabs, then a b64token (RFC 6750 §2.1).
fn bearer_token(value: &[u8]) -> Result<&[u8], Refusal> {
    let v = value.trim_ascii();
    let malformed = Refusal::Malformed("Authorization must be `Bearer <key>`");
    let gap = v
        .iter()
        .position(|b| *b == b' ' || *b == b'\t')
        .ok_or(malformed.clone())?;
    let (scheme, rest) = v.split_at(gap);
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        return Err(malformed);
    }
    token(rest.trim_ascii_start()).ok_or(malformed)
}

/// `1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="` (RFC 6750 b64token).
fn token(t: &[u8]) -> Option<&[u8]> {
    let body = t.iter().position(|b| *b == b'=').map_or(t, |i| &t[..i]);
    let ok = !body.is_empty()
        && body
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/'))
        && t[body.len()..].iter().all(|b| *b == b'=');
    ok.then_some(t)
}

/// A project or organization id: one non-empty run of `[A-Za-z0-9._-]` (no list, no spaces).
fn id<'a>(v: &'a [u8], why: &'static str) -> Result<&'a str, Refusal> {
    let v = v.trim_ascii();
    if v.is_empty() || !v.iter().all(|b| is_id_byte(*b)) {
        return Err(Refusal::Ambiguous(why));
    }
    std::str::from_utf8(v).map_err(|_| Refusal::Ambiguous(why))
}

/// The bytes of a project id the proxy can select (config values are checked against it too).
pub fn is_id_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')
}

#[cfg(test)]
mod tests;
