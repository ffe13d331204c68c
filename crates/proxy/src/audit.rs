//! The decision audit log: an append-only JSON-lines file, one record per decision, without
//! content or credentials. Each record carries the hash of the previous one and its own
//! hash over (previous hash, record), so deleting, reordering or editing any line breaks the
//! chain that `residency-proxy audit verify FILE` checks.
//!
//! Records are handed to a writer task over a bounded channel: the request path formats a
//! small struct and never touches the file.

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use tokio::sync::mpsc;

/// The `prev` of the first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One decision, as recorded.
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
    pub status: u16,
}

/// Sends records to the writer task.
#[derive(Clone)]
pub struct AuditLog {
    tx: mpsc::Sender<AuditRecord>,
}

impl AuditLog {
    /// Opens (or continues) the log at `path` and starts its writer task.
    pub fn open(path: &Path) -> Result<AuditLog, String> {
        let (seq, prev) = last_link(path)?;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| format!("audit.path {}: {e}", path.display()))?;
        let (tx, rx) = mpsc::channel(4096);
        tokio::spawn(write_loop(file, path.to_path_buf(), rx, seq, prev));
        Ok(AuditLog { tx })
    }

    /// Queues a record; waits (backpressure) rather than dropping one when the writer lags.
    pub async fn record(&self, r: AuditRecord) {
        let _ = self.tx.send(r).await;
    }
}

async fn write_loop(
    file: std::fs::File,
    path: PathBuf,
    mut rx: mpsc::Receiver<AuditRecord>,
    mut seq: u64,
    mut prev: String,
) {
    let mut out = std::io::BufWriter::new(file);
    let mut batch = Vec::with_capacity(64);
    while rx.recv_many(&mut batch, 64).await > 0 {
        for r in batch.drain(..) {
            seq += 1;
            let (line, hash) = chain(seq, &prev, &r);
            prev = hash;
            if writeln!(out, "{line}").is_err() {
                tracing::error!(path = %path.display(), "audit log write failed");
            }
        }
        if out.flush().and_then(|()| out.get_ref().sync_data()).is_err() {
            tracing::error!(path = %path.display(), "audit log flush failed");
        }
    }
}

fn now_rfc3339() -> String {
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
fn civil_from_days(z: i64) -> (i64, u32, u32) {
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

/// The record's line (with `prev` and `hash`) and its hash.
fn chain(seq: u64, prev: &str, r: &AuditRecord) -> (String, String) {
    let mut m = Map::new();
    m.insert("seq".into(), Value::from(seq));
    m.insert("ts".into(), Value::from(now_rfc3339()));
    m.insert("request_id".into(), Value::from(r.request_id.clone()));
    m.insert("method".into(), Value::from(r.method.clone()));
    m.insert("project".into(), Value::from(r.project.clone()));
    m.insert("region".into(), Value::from(r.region.clone()));
    m.insert("endpoint".into(), Value::from(r.endpoint.clone()));
    m.insert("model".into(), r.model.clone().map_or(Value::Null, Value::from));
    m.insert("decision".into(), Value::from(r.decision));
    m.insert("rule".into(), Value::from(r.rule.clone()));
    m.insert("status".into(), Value::from(r.status));
    m.insert("prev".into(), Value::from(prev));
    let hash = hash_of(prev, &Value::Object(m.clone()));
    m.insert("hash".into(), Value::from(hash.clone()));
    (Value::Object(m).to_string(), hash)
}

/// sha256 over the previous hash, a newline, and the record without `hash` (serde_json
/// writes object keys sorted, so the text is canonical).
fn hash_of(prev: &str, record_without_hash: &Value) -> String {
    let mut h = Sha256::new();
    h.update(prev.as_bytes());
    h.update(b"\n");
    h.update(record_without_hash.to_string().as_bytes());
    hex::encode(h.finalize())
}

/// The last record's (seq, hash) of an existing log, so a restart continues the chain.
fn last_link(path: &Path) -> Result<(u64, String), String> {
    let Ok(file) = std::fs::File::open(path) else {
        return Ok((0, GENESIS.to_string()));
    };
    let mut last = None;
    for line in std::io::BufReader::new(file).lines() {
        let line = line.map_err(|e| format!("audit.path {}: {e}", path.display()))?;
        if !line.trim().is_empty() {
            last = Some(line);
        }
    }
    match last {
        None => Ok((0, GENESIS.to_string())),
        Some(l) => {
            let v: Value = serde_json::from_str(&l).map_err(|_| {
                format!(
                    "audit.path {}: the last line is not a record; refusing to extend it",
                    path.display()
                )
            })?;
            match (v["seq"].as_u64(), v["hash"].as_str()) {
                (Some(s), Some(h)) => Ok((s, h.to_string())),
                _ => Err(format!(
                    "audit.path {}: the last line is not a record",
                    path.display()
                )),
            }
        }
    }
}

/// Checks the whole chain. Ok(number of records) or the first broken line and why.
pub fn verify(path: &Path) -> Result<u64, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut prev = GENESIS.to_string();
    let mut expected_seq = 1u64;
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let n = i + 1;
        let line = line.map_err(|e| format!("line {n}: {e}"))?;
        let mut v: Value = serde_json::from_str(&line).map_err(|_| format!("line {n}: not a JSON record"))?;
        let obj = v
            .as_object_mut()
            .ok_or_else(|| format!("line {n}: not a JSON object"))?;
        let hash = obj
            .remove("hash")
            .and_then(|h| h.as_str().map(str::to_string))
            .ok_or_else(|| format!("line {n}: no hash"))?;
        if obj.get("prev").and_then(Value::as_str) != Some(prev.as_str()) {
            return Err(format!(
                "line {n}: the chain is broken (prev does not match the hash of line {})",
                n - 1
            ));
        }
        if obj.get("seq").and_then(Value::as_u64) != Some(expected_seq) {
            return Err(format!(
                "line {n}: sequence number is not {expected_seq} (a record was removed or reordered)"
            ));
        }
        if hash_of(&prev, &v) != hash {
            return Err(format!("line {n}: the record was modified (hash mismatch)"));
        }
        prev = hash;
        expected_seq += 1;
    }
    Ok(expected_seq - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(i: u16) -> AuditRecord {
        AuditRecord {
            request_id: format!("r{i}"),
            method: "POST".into(),
            project: "eu-prod".into(),
            region: "eu".into(),
            endpoint: "/v1/chat/completions".into(),
            model: Some("gpt-4o-2024-08-06".into()),
            decision: "allow",
            rule: String::new(),
            status: 200,
        }
    }

    fn write_chain(path: &Path, n: u16) {
        let mut prev = GENESIS.to_string();
        let mut text = String::new();
        for i in 1..=n {
            let (line, h) = chain(u64::from(i), &prev, &rec(i));
            prev = h;
            text.push_str(&line);
            text.push('\n');
        }
        std::fs::write(path, text).unwrap();
    }

    fn tmp(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("rp-audit-{}-{name}", std::process::id()))
    }

    #[test]
    fn an_intact_chain_verifies() {
        let p = tmp("ok");
        write_chain(&p, 5);
        assert_eq!(verify(&p), Ok(5));
        assert_eq!(last_link(&p).unwrap().0, 5);
    }

    #[test]
    fn edits_deletions_and_reordering_are_detected() {
        let p = tmp("bad");
        write_chain(&p, 4);
        let lines: Vec<String> = std::fs::read_to_string(&p)
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect();
        let edited = lines
            .join("\n")
            .replacen("\"decision\":\"allow\"", "\"decision\":\"deny\"", 1);
        std::fs::write(&p, edited).unwrap();
        assert!(verify(&p)
            .unwrap_err()
            .starts_with("line 1: the record was modified"));
        let mut removed = lines.clone();
        removed.remove(1);
        std::fs::write(&p, removed.join("\n")).unwrap();
        assert!(verify(&p).unwrap_err().starts_with("line 2: the chain is broken"));
        let mut swapped = lines.clone();
        swapped.swap(2, 3);
        std::fs::write(&p, swapped.join("\n")).unwrap();
        assert!(verify(&p).is_err());
        let truncated_tail = lines[..3].join("\n");
        std::fs::write(&p, truncated_tail).unwrap();
        assert_eq!(
            verify(&p),
            Ok(3),
            "a log cut at a record boundary still verifies its prefix"
        );
    }

    #[test]
    fn dates_are_civil() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_779), (2026, 11, 22));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }

    #[tokio::test]
    async fn the_writer_continues_an_existing_chain() {
        let p = tmp("cont");
        write_chain(&p, 2);
        let log = AuditLog::open(&p).unwrap();
        log.record(rec(3)).await;
        log.record(rec(4)).await;
        drop(log);
        for _ in 0..50 {
            if verify(&p) == Ok(4) {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        panic!("chain not continued: {:?}", verify(&p));
    }
}
