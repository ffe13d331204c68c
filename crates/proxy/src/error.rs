//! Everything that can end a request early, its HTTP status (one mapping, pinned by tests),
//! and the OpenAI-shaped error body, produced here and nowhere else.

use crate::body::ProxyBody;
use http::{HeaderValue, Response, StatusCode};
use policy::Denial;

/// Why the proxy answered a request itself instead of forwarding it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProxyError {
    /// The policy refused the request (403).
    Denied(Denial),
    /// A shared gateway does not know the client's key (401).
    Unauthorized,
    /// A body that must be inspected is not one valid JSON object (400).
    InvalidJson(String),
    /// A multipart body or query string that must be inspected cannot be read unambiguously (400).
    InvalidBody(String),
    /// The request itself is malformed or ambiguous at the HTTP level (400).
    BadRequest(String),
    /// A body that must be inspected exceeds `limits.max_body_bytes` (413).
    TooLarge { limit: u64 },
    /// A `Content-Encoding` we cannot inspect (415).
    UnsupportedEncoding(String),
    /// The upstream could not be reached or answered garbage (502).
    UpstreamUnavailable(String),
    /// The upstream did not answer in time (504).
    UpstreamTimeout,
    /// The proxy is at its concurrency limit (503).
    Overloaded,
    /// The bytes held for inspection across all requests reached `limits.max_buffered_bytes` (503).
    BufferFull,
    /// The decision could not be written to the audit log (`on_failure = "refuse"`) (503).
    AuditUnavailable,
}

impl From<&ProxyError> for StatusCode {
    fn from(e: &ProxyError) -> StatusCode {
        match e {
            ProxyError::Denied(_) => StatusCode::FORBIDDEN,
            ProxyError::Unauthorized => StatusCode::UNAUTHORIZED,
            ProxyError::InvalidJson(_) | ProxyError::InvalidBody(_) | ProxyError::BadRequest(_) => {
                StatusCode::BAD_REQUEST
            }
            ProxyError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ProxyError::UnsupportedEncoding(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ProxyError::UpstreamUnavailable(_) => StatusCode::BAD_GATEWAY,
            ProxyError::UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
            ProxyError::Overloaded | ProxyError::BufferFull | ProxyError::AuditUnavailable => {
                StatusCode::SERVICE_UNAVAILABLE
            }
        }
    }
}

impl ProxyError {
    /// The `error.code` of the body.
    pub fn code(&self) -> &'static str {
        match self {
            ProxyError::Denied(_) => "residency_policy_violation",
            ProxyError::Unauthorized => "invalid_api_key",
            ProxyError::InvalidJson(_) => "invalid_json",
            ProxyError::InvalidBody(_) => "invalid_body",
            ProxyError::BadRequest(_) => "invalid_request",
            ProxyError::TooLarge { .. } => "request_too_large",
            ProxyError::UnsupportedEncoding(_) => "unsupported_content_encoding",
            ProxyError::UpstreamUnavailable(_) => "upstream_unavailable",
            ProxyError::UpstreamTimeout => "upstream_timeout",
            ProxyError::Overloaded | ProxyError::BufferFull => "proxy_overloaded",
            ProxyError::AuditUnavailable => "audit_unavailable",
        }
    }

    /// The `error.type` of the body, as OpenAI uses it.
    fn error_type(&self) -> &'static str {
        match self {
            ProxyError::UpstreamUnavailable(_)
            | ProxyError::UpstreamTimeout
            | ProxyError::Overloaded
            | ProxyError::BufferFull
            | ProxyError::AuditUnavailable => "server_error",
            _ => "invalid_request_error",
        }
    }

    pub fn message(&self) -> String {
        match self {
            ProxyError::Denied(d) => d.message.clone(),
            ProxyError::Unauthorized => {
                "This gateway does not accept the API key in the Authorization header.".into()
            }
            ProxyError::InvalidJson(m) => format!("The request body must be one valid JSON object: {m}."),
            ProxyError::InvalidBody(m) | ProxyError::BadRequest(m) => format!("{m}."),
            ProxyError::TooLarge { limit } => {
                format!("The request body exceeds the proxy's inspection limit of {limit} bytes.")
            }
            ProxyError::UnsupportedEncoding(e) => {
                format!("Content-Encoding {e:?} is not supported on endpoints whose body is inspected.")
            }
            ProxyError::UpstreamUnavailable(m) => format!("The upstream could not be reached: {m}."),
            ProxyError::UpstreamTimeout => "The upstream did not respond in time.".into(),
            ProxyError::Overloaded => "The proxy is at its concurrency limit; retry later.".into(),
            ProxyError::BufferFull => {
                "The proxy holds as many request bytes for inspection as it may (limits.max_buffered_bytes); retry later."
                    .into()
            }
            ProxyError::AuditUnavailable => {
                "The proxy cannot write its audit log, and forwards nothing it cannot record; retry later."
                    .into()
            }
        }
    }

    fn param(&self) -> Option<&str> {
        match self {
            ProxyError::Denied(d) => d.param.as_deref(),
            _ => None,
        }
    }

    /// Whether a client may retry (`x-should-retry`). Policy and input errors never change
    /// on retry; transient upstream trouble may.
    fn should_retry(&self) -> bool {
        matches!(
            self,
            ProxyError::UpstreamUnavailable(_)
                | ProxyError::UpstreamTimeout
                | ProxyError::Overloaded
                | ProxyError::BufferFull
                | ProxyError::AuditUnavailable
        )
    }

    /// The OpenAI-shaped JSON body, keys in OpenAI's order: message, type, param, code.
    pub fn body_json(&self) -> String {
        let s = |v: &str| serde_json::Value::from(v).to_string();
        format!(
            "{{\"error\":{{\"message\":{},\"type\":{},\"param\":{},\"code\":{}}}}}",
            s(&self.message()),
            s(self.error_type()),
            self.param().map_or_else(|| "null".to_string(), s),
            s(self.code()),
        )
    }

    /// The full response (the `x-residency-*` headers are added by the caller).
    pub fn into_response(&self) -> Response<ProxyBody> {
        let mut res = Response::new(ProxyBody::full(self.body_json()));
        *res.status_mut() = StatusCode::from(self);
        let h = res.headers_mut();
        h.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        h.insert(
            "x-should-retry",
            HeaderValue::from_static(if self.should_retry() { "true" } else { "false" }),
        );
        res
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use policy::Rule;

    fn denial() -> ProxyError {
        ProxyError::Denied(Denial {
            rule: Rule::Store,
            message: "no".into(),
            param: Some("store".into()),
        })
    }

    #[test]
    fn status_mapping_is_pinned() {
        let cases = [
            (denial(), 403, "residency_policy_violation"),
            (ProxyError::Unauthorized, 401, "invalid_api_key"),
            (ProxyError::InvalidJson("x".into()), 400, "invalid_json"),
            (ProxyError::InvalidBody("x".into()), 400, "invalid_body"),
            (ProxyError::BadRequest("x".into()), 400, "invalid_request"),
            (ProxyError::TooLarge { limit: 1 }, 413, "request_too_large"),
            (
                ProxyError::UnsupportedEncoding("br".into()),
                415,
                "unsupported_content_encoding",
            ),
            (
                ProxyError::UpstreamUnavailable("x".into()),
                502,
                "upstream_unavailable",
            ),
            (ProxyError::UpstreamTimeout, 504, "upstream_timeout"),
            (ProxyError::Overloaded, 503, "proxy_overloaded"),
            (ProxyError::BufferFull, 503, "proxy_overloaded"),
            (ProxyError::AuditUnavailable, 503, "audit_unavailable"),
        ];
        for (e, status, code) in cases {
            assert_eq!(StatusCode::from(&e).as_u16(), status, "{e:?}");
            assert_eq!(e.code(), code);
            let v: serde_json::Value = serde_json::from_str(&e.body_json()).unwrap();
            assert_eq!(v["error"]["code"], code);
            assert!(v["error"]["message"].as_str().is_some_and(|m| !m.is_empty()));
            assert_eq!(v["error"].as_object().map(|o| o.len()), Some(4));
        }
    }

    #[test]
    fn body_keys_are_in_openai_order() {
        let body = denial().body_json();
        assert!(body.starts_with("{\"error\":{\"message\":\"no\",\"type\":\"invalid_request_error\",\"param\":\"store\",\"code\":"), "{body}");
    }

    #[test]
    fn denial_body_has_param_and_no_retry() {
        let res = denial().into_response();
        assert_eq!(res.status(), 403);
        assert_eq!(res.headers()["x-should-retry"], "false");
        let v: serde_json::Value = serde_json::from_str(&denial().body_json()).unwrap();
        assert_eq!(v["error"]["type"], "invalid_request_error");
        assert_eq!(v["error"]["param"], "store");
        let v: serde_json::Value = serde_json::from_str(&ProxyError::UpstreamTimeout.body_json()).unwrap();
        assert!(v["error"]["param"].is_null());
        assert_eq!(
            ProxyError::UpstreamTimeout.into_response().headers()["x-should-retry"],
            "true"
        );
    }
}
