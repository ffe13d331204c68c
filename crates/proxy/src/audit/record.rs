//! The record format: one JSON object per line, keys sorted (serde_json's map), chained by
//! `prev` (the previous record's hash) and signed by `hash` = sha256(prev, "\n", the record
//! without `hash`). Every kind of record is in the chain: decisions, outcomes, gaps, notices.

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// The `prev` of the first record of a chain.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One decision, as recorded. `status` is the refusal's status for a request that was not
/// forwarded; for a forwarded request it is None and the outcome record carries it.
#[derive(Debug, Clone)]
pub struct AuditRecord {
    pub request_id: String,
    pub method: String,
    pub project: String,
    pub region: String,
    pub endpoint: String,
    pub model: Option<String>,
    pub decision: &'static str,
    pub rule: String,
    pub status: Option<u16>,
}

/// How a forwarded response ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyEnd {
    /// The last byte reached the client.
    Complete,
    /// The client went away before the end.
    ClientGone,
    /// The upstream reset the stream or closed it before its declared end.
    UpstreamError,
    /// The upstream sent nothing for `timeouts.upstream_idle_secs`.
    UpstreamIdle,
}

impl BodyEnd {
    pub fn as_str(self) -> &'static str {
        match self {
            BodyEnd::Complete => "complete",
            BodyEnd::ClientGone => "client_gone",
            BodyEnd::UpstreamError => "upstream_error",
            BodyEnd::UpstreamIdle => "upstream_idle_timeout",
        }
    }
}

/// What a forwarded request's response was, recorded when its body ends.
#[derive(Debug, Clone)]
pub struct OutcomeRecord {
    pub request_id: String,
    /// The decision record's seq, when it was known before forwarding (refuse mode).
    pub decision_seq: Option<u64>,
    pub status: u16,
    pub bytes: u64,
    pub body: BodyEnd,
    pub duration_ms: u64,
}

/// Records that could not be written, announced by the next record that could.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Gap {
    /// Records not written (every kind).
    pub lost: u64,
    /// Of those, decisions of requests that were forwarded (always 0 with on_failure = refuse).
    pub lost_forwarded: u64,
    /// Requests refused with 503 audit_unavailable.
    pub refused: u64,
    /// The first failure (RFC 3339) and its kind, e.g. "no_space".
    pub since: String,
    pub error: String,
}

/// What one line says, before it is chained.
pub enum Entry {
    Decision(AuditRecord),
    Outcome(OutcomeRecord),
    Gap(Gap),
    /// Something about the log itself (a torn tail moved aside, a file reopened).
    Notice(String),
}

impl Entry {
    pub fn kind(&self) -> &'static str {
        match self {
            Entry::Decision(_) => "decision",
            Entry::Outcome(_) => "outcome",
            Entry::Gap(_) => "gap",
            Entry::Notice(_) => "notice",
        }
    }

    fn fields(&self, m: &mut Map<String, Value>) {
        match self {
            Entry::Decision(r) => {
                m.insert("request_id".into(), Value::from(r.request_id.as_str()));
                m.insert("method".into(), Value::from(r.method.as_str()));
                m.insert("project".into(), Value::from(r.project.as_str()));
                m.insert("region".into(), Value::from(r.region.as_str()));
                m.insert("endpoint".into(), Value::from(r.endpoint.as_str()));
                m.insert(
                    "model".into(),
                    r.model.as_deref().map_or(Value::Null, Value::from),
                );
                m.insert("decision".into(), Value::from(r.decision));
                m.insert("rule".into(), Value::from(r.rule.as_str()));
                m.insert("forwarded".into(), Value::from(r.status.is_none()));
                m.insert("status".into(), r.status.map_or(Value::Null, Value::from));
            }
            Entry::Outcome(o) => {
                m.insert("request_id".into(), Value::from(o.request_id.as_str()));
                m.insert(
                    "decision_seq".into(),
                    o.decision_seq.map_or(Value::Null, Value::from),
                );
                m.insert("status".into(), Value::from(o.status));
                m.insert("bytes".into(), Value::from(o.bytes));
                m.insert("body".into(), Value::from(o.body.as_str()));
                m.insert("duration_ms".into(), Value::from(o.duration_ms));
            }
            Entry::Gap(g) => {
                m.insert("lost".into(), Value::from(g.lost));
                m.insert("lost_forwarded".into(), Value::from(g.lost_forwarded));
                m.insert("refused".into(), Value::from(g.refused));
                m.insert("since".into(), Value::from(g.since.as_str()));
                m.insert("error".into(), Value::from(g.error.as_str()));
            }
            Entry::Notice(text) => {
                m.insert("notice".into(), Value::from(text.as_str()));
            }
        }
    }
}

/// The record's line (with `prev` and `hash`, without the newline) and its hash.
pub fn chain(seq: u64, prev: &str, entry: &Entry) -> (String, String) {
    let mut m = Map::new();
    m.insert("seq".into(), Value::from(seq));
    m.insert("ts".into(), Value::from(now_rfc3339()));
    m.insert("kind".into(), Value::from(entry.kind()));
    entry.fields(&mut m);
    m.insert("prev".into(), Value::from(prev));
    let hash = hash_of(prev, &Value::Object(m.clone()));
    m.insert("hash".into(), Value::from(hash.clone()));
    (Value::Object(m).to_string(), hash)
}

/// sha256 over the previous hash, a newline, and the record without `hash` (serde_json
/// writes object keys sorted, so the text is canonical).
pub fn hash_of(prev: &str, record_without_hash: &Value) -> String {
    let mut h = Sha256::new();
    h.update(prev.as_bytes());
    h.update(b"\n");
    h.update(record_without_hash.to_string().as_bytes());
    hex::encode(h.finalize())
}

pub fn now_rfc3339() -> String {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, dd) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{dd:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60,
        d.subsec_millis()
    )
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_civil() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_779), (2026, 11, 22));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }
}
