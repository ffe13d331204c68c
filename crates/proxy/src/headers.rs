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

/// Removes hop-by-hop headers: the fixed set and every name listed in `Connection`.
/// `keep_upgrade` keeps `Connection: upgrade` + `Upgrade` for a websocket handshake.
pub fn strip_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    // Most messages carry none: one pass over the names instead of a hashed removal per name.
    if !keep_upgrade && !headers.keys().any(is_hop_by_hop) {
        return;
    }
    if headers.contains_key(CONNECTION) {
        let listed: Vec<HeaderName> = headers
            .get_all(CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
            .filter(|name| !(keep_upgrade && name == UPGRADE))
            .collect();
        for name in listed {
            headers.remove(name);
        }
        headers.remove(CONNECTION);
    }
    for name in [
        TE,
        TRAILER,
        TRANSFER_ENCODING,
        PROXY_AUTHORIZATION,
        PROXY_AUTHENTICATE,
    ] {
        headers.remove(name);
    }
    headers.remove("keep-alive");
    headers.remove("proxy-connection");
    if keep_upgrade {
        headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
    } else {
        headers.remove(UPGRADE);
    }
}

/// The names `strip_hop_by_hop` removes without being told by `Connection`.
fn is_hop_by_hop(name: &HeaderName) -> bool {
    [
        CONNECTION,
        TE,
        TRAILER,
        TRANSFER_ENCODING,
        PROXY_AUTHORIZATION,
        PROXY_AUTHENTICATE,
        UPGRADE,
    ]
    .contains(name)
        || name.as_str() == "keep-alive"
        || name.as_str() == "proxy-connection"
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
    fn websocket_upgrade_is_kept_when_asked() {
        let mut h = HeaderMap::new();
        h.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
        h.insert(UPGRADE, HeaderValue::from_static("websocket"));
        strip_hop_by_hop(&mut h, true);
        assert_eq!(h[UPGRADE], "websocket");
        assert_eq!(h[CONNECTION], "upgrade");
    }
}
