//! Header handling that is the same for every request: hop-by-hop removal (RFC 9110 §7.6.1)
//! and the `x-residency-*` headers.

use http::header::{
    HeaderName, CONNECTION, PROXY_AUTHENTICATE, PROXY_AUTHORIZATION, TE, TRAILER, TRANSFER_ENCODING, UPGRADE,
};
use http::{HeaderMap, HeaderValue};
use policy::Decision;

pub static X_DECISION: HeaderName = HeaderName::from_static("x-residency-decision");
pub static X_PROJECT: HeaderName = HeaderName::from_static("x-residency-project");
pub static X_REGION: HeaderName = HeaderName::from_static("x-residency-region");
pub static X_RULE: HeaderName = HeaderName::from_static("x-residency-rule");

/// Hop-by-hop whatever `Connection` says. `Connection` first: its bit is tested below.
static HOP_BY_HOP: [HeaderName; 9] = [
    CONNECTION,
    TE,
    TRAILER,
    TRANSFER_ENCODING,
    PROXY_AUTHORIZATION,
    PROXY_AUTHENTICATE,
    UPGRADE,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
];

/// The lengths of the names in [`HOP_BY_HOP`].
const HOP_BY_HOP_LENGTHS: [usize; 7] = [2, 7, 10, 16, 17, 18, 19];

/// Removes hop-by-hop headers: the fixed set and every name listed in `Connection`.
/// `keep_upgrade` keeps `Connection: upgrade` + `Upgrade` for a websocket handshake.
///
/// This runs on every request and response, so one pass over the names finds which are
/// present (usually none, or `Connection: keep-alive`), only those are removed, and the names
/// listed in `Connection` are removed by their text, without allocating.
pub fn strip_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    let mut present = 0u16;
    for name in headers.keys() {
        // Most names have a length no hop-by-hop name has: one compare instead of nine.
        if !HOP_BY_HOP_LENGTHS.contains(&name.as_str().len()) {
            continue;
        }
        if let Some(i) = HOP_BY_HOP.iter().position(|h| h == name) {
            present |= 1 << i;
        }
    }
    if present & 1 != 0 {
        // The values are taken out first (clones share their bytes): one on the stack, any
        // further ones in a Vec.
        let (mut first, mut more) = (None, Vec::new());
        if let http::header::Entry::Occupied(e) = headers.entry(CONNECTION) {
            for value in e.remove_entry_mult().1 {
                if first.is_none() {
                    first = Some(value);
                } else {
                    more.push(value);
                }
            }
        }
        for value in first.iter().chain(&more) {
            let Ok(text) = value.to_str() else { continue };
            for name in text.split(',').map(str::trim) {
                if name.is_empty() || (keep_upgrade && name.eq_ignore_ascii_case("upgrade")) {
                    continue;
                }
                headers.remove(name);
            }
        }
    }
    for (i, name) in HOP_BY_HOP.iter().enumerate().skip(1) {
        if present & (1 << i) != 0 && !(keep_upgrade && name == UPGRADE) {
            headers.remove(name);
        }
    }
    if keep_upgrade {
        headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
    }
}

/// Adds the decision headers every response carries.
pub fn set_residency(
    headers: &mut HeaderMap,
    decision: &Decision,
    project: Option<&HeaderValue>,
    region: Option<&HeaderValue>,
) {
    headers.insert(
        X_DECISION.clone(),
        HeaderValue::from_static(decision.verdict.as_str()),
    );
    let dash = HeaderValue::from_static("-");
    headers.insert(
        X_PROJECT.clone(),
        project.cloned().unwrap_or_else(|| dash.clone()),
    );
    headers.insert(X_REGION.clone(), region.cloned().unwrap_or(dash));
    let mut rules = decision.rules.iter();
    let value = match (rules.next(), rules.next()) {
        (None, _) => None,
        // The common case, one rule: its static name, no allocation.
        (Some(rule), None) => Some(HeaderValue::from_static(rule.as_str())),
        _ => HeaderValue::from_str(&decision.rules.header_value()).ok(),
    };
    if let Some(v) = value {
        headers.insert(X_RULE.clone(), v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_and_connection_listed_headers_are_removed() {
        let mut h = HeaderMap::new();
        h.insert(CONNECTION, HeaderValue::from_static("keep-alive, x-secret"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert(TE, HeaderValue::from_static("trailers"));
        h.insert(UPGRADE, HeaderValue::from_static("h2c"));
        h.insert(PROXY_AUTHORIZATION, HeaderValue::from_static("Basic x"));
        h.insert("x-kept", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h, false);
        assert_eq!(h.len(), 1, "{h:?}");
        assert!(h.contains_key("x-kept"));
    }

    #[test]
    fn the_length_filter_covers_every_hop_by_hop_name() {
        for name in &HOP_BY_HOP {
            assert!(HOP_BY_HOP_LENGTHS.contains(&name.as_str().len()), "{name}");
            let mut h = HeaderMap::new();
            h.insert(name.clone(), HeaderValue::from_static("x"));
            strip_hop_by_hop(&mut h, false);
            assert!(h.is_empty(), "{name} was kept");
        }
    }

    #[test]
    fn every_connection_value_is_read() {
        let mut h = HeaderMap::new();
        h.append(CONNECTION, HeaderValue::from_static("close"));
        h.append(CONNECTION, HeaderValue::from_static(" X-One ,x-two"));
        h.insert("x-one", HeaderValue::from_static("1"));
        h.insert("x-two", HeaderValue::from_static("2"));
        h.insert("transfer-encoding", HeaderValue::from_static("chunked"));
        h.insert("x-kept", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h, false);
        assert_eq!(h.len(), 1, "{h:?}");
        assert!(h.contains_key("x-kept"));
    }

    #[test]
    fn websocket_upgrade_is_kept_when_asked() {
        let mut h = HeaderMap::new();
        h.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
        h.insert(UPGRADE, HeaderValue::from_static("websocket"));
        strip_hop_by_hop(&mut h, true);
        assert_eq!(h[UPGRADE], "websocket");
        assert_eq!(h[CONNECTION], "upgrade");
    }
}
