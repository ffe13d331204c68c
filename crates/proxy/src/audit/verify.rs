//! Reading logs back: `audit verify` over one or more files in order, and the start-up scan
//! that finds where the chain continues (and moves a torn last line aside).

use super::record::{hash_of, GENESIS};
use serde_json::Value;
use std::io::{BufRead, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// An intact chain, with what it says about itself.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Report {
    pub records: u64,
    /// Signed remarks: gaps ("N records lost between seq A and B"), a chain that starts
    /// after seq 1 or starts again. The chain is intact; these say where it is incomplete.
    pub remarks: Vec<String>,
    /// A gap or a chain that starts again: records are missing or cannot be linked.
    pub incomplete: bool,
}

/// Checks the whole chain across `files`, in order (oldest first). Ok with the remarks, or
/// the first broken line and why.
pub fn verify(files: &[PathBuf]) -> Result<Report, String> {
    let mut report = Report::default();
    let mut prev: Option<String> = None;
    let mut expected_seq = 0u64;
    // A gap record's seq, waiting for the next record to close "between A and B".
    let mut open_gap: Option<(u64, u64, u64)> = None;
    for path in files {
        let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
        for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
            let at = format!("{} line {}", path.display(), i + 1);
            let line = line.map_err(|e| format!("{at}: {e}"))?;
            if line.trim().is_empty() {
                continue;
            }
            let mut v: Value = serde_json::from_str(&line).map_err(|_| format!("{at}: not a JSON record"))?;
            let obj = v
                .as_object_mut()
                .ok_or_else(|| format!("{at}: not a JSON object"))?;
            let hash = obj
                .remove("hash")
                .and_then(|h| h.as_str().map(str::to_string))
                .ok_or_else(|| format!("{at}: no hash"))?;
            let seq = obj
                .get("seq")
                .and_then(Value::as_u64)
                .ok_or_else(|| format!("{at}: no seq"))?;
            let this_prev = obj
                .get("prev")
                .and_then(Value::as_str)
                .ok_or_else(|| format!("{at}: no prev"))?
                .to_string();
            match &prev {
                None if seq == 1 && this_prev == GENESIS => {}
                None => report.remarks.push(format!(
                    "{at}: the chain starts at seq {seq}; earlier records are in an older file (not checked)"
                )),
                Some(_) if seq == 1 && this_prev == GENESIS && kind(obj) == Some("notice") => {
                    report.incomplete = true;
                    report.remarks.push(format!(
                        "{at}: a new chain starts (the proxy started on an empty or new file); \
                         it cannot be linked to the records before it"
                    ));
                }
                Some(p) => {
                    if this_prev != *p {
                        return Err(format!(
                            "{at}: the chain is broken (prev does not match the hash of the record before)"
                        ));
                    }
                    if seq != expected_seq {
                        return Err(format!(
                            "{at}: sequence number is {seq}, not {expected_seq} (a record was removed or reordered)"
                        ));
                    }
                }
            }
            if hash_of(&this_prev, &v) != hash {
                return Err(format!("{at}: the record was modified (hash mismatch)"));
            }
            if let Some((gap_seq, lost, refused)) = open_gap.take() {
                report.remarks.push(gap_remark(gap_seq, Some(seq), lost, refused));
            }
            if v.get("kind").and_then(Value::as_str) == Some("gap") {
                report.incomplete = true;
                let n = |k: &str| v.get(k).and_then(Value::as_u64).unwrap_or(0);
                open_gap = Some((seq, n("lost"), n("refused")));
            }
            prev = Some(hash);
            expected_seq = seq + 1;
            report.records += 1;
        }
    }
    if let Some((gap_seq, lost, refused)) = open_gap {
        report.remarks.push(gap_remark(gap_seq, None, lost, refused));
    }
    Ok(report)
}

fn kind(obj: &serde_json::Map<String, Value>) -> Option<&str> {
    obj.get("kind").and_then(Value::as_str)
}

fn gap_remark(gap_seq: u64, next: Option<u64>, lost: u64, refused: u64) -> String {
    let before = gap_seq.saturating_sub(1);
    let after = next.map_or_else(|| "the end".to_string(), |s| format!("seq {s}"));
    let mut s = format!("{lost} records lost between seq {before} and {after} (gap record seq {gap_seq})");
    if refused > 0 {
        s.push_str(&format!(
            "; {refused} requests refused meanwhile (audit_unavailable)"
        ));
    }
    s
}

/// Where an existing log ends.
#[derive(Debug, PartialEq, Eq)]
pub struct Tail {
    pub seq: u64,
    pub prev: String,
    /// A torn last line moved aside: (bytes, where to).
    pub torn: Option<(u64, PathBuf)>,
}

/// The last record's (seq, hash) of the log at `path`, reading only its end. A last line
/// without its newline (a crash or full disk mid-write) is moved to `PATH.torn-UNIXTIME` and
/// cut off, so the chain continues from the last complete record.
pub fn tail(path: &Path) -> Result<Tail, String> {
    let place = |e: &dyn std::fmt::Display| format!("audit.path {}: {e}", path.display());
    // A FIFO or device is never opened (a FIFO would block, a device never ends).
    if std::fs::metadata(path).is_ok_and(|m| !m.is_file()) {
        return Err(place(&"not a regular file"));
    }
    let mut file = match std::fs::OpenOptions::new().read(true).write(true).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Tail {
                seq: 0,
                prev: GENESIS.to_string(),
                torn: None,
            })
        }
        Err(e) => return Err(place(&e)),
    };
    let len = file.metadata().map_err(|e| place(&e))?.len();
    // Read backwards in blocks until the last complete line is inside the window.
    let mut window = 64 * 1024u64;
    loop {
        let start = len.saturating_sub(window);
        file.seek(SeekFrom::Start(start)).map_err(|e| place(&e))?;
        let mut buf = Vec::new();
        file.by_ref()
            .take(len - start)
            .read_to_end(&mut buf)
            .map_err(|e| place(&e))?;
        let complete_end = buf.iter().rposition(|&b| b == b'\n').map(|i| i + 1);
        let Some(end) = complete_end else {
            if start > 0 {
                window *= 4;
                continue;
            }
            // No newline at all: the whole file is one torn line (or empty).
            let torn = move_aside(path, &mut file, 0, &buf).map_err(|e| place(&e))?;
            return Ok(Tail {
                seq: 0,
                prev: GENESIS.to_string(),
                torn,
            });
        };
        let body = &buf[..end - 1];
        let line_start = body.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        if line_start == 0 && start > 0 {
            window *= 4;
            continue;
        }
        let torn = move_aside(path, &mut file, start + end as u64, &buf[end..]).map_err(|e| place(&e))?;
        let last = &body[line_start..];
        if last.iter().all(u8::is_ascii_whitespace) {
            return Ok(Tail {
                seq: 0,
                prev: GENESIS.to_string(),
                torn,
            });
        }
        let v: Value = serde_json::from_slice(last)
            .map_err(|_| place(&"the last complete line is not a record; refusing to extend it"))?;
        return match (v["seq"].as_u64(), v["hash"].as_str()) {
            (Some(seq), Some(h)) => Ok(Tail {
                seq,
                prev: h.to_string(),
                torn,
            }),
            _ => Err(place(
                &"the last complete line is not a record; refusing to extend it",
            )),
        };
    }
}

/// Moves `torn` (the bytes after the last newline, at `at`) to a side file and cuts the log.
fn move_aside(
    path: &Path,
    file: &mut std::fs::File,
    at: u64,
    torn: &[u8],
) -> std::io::Result<Option<(u64, PathBuf)>> {
    if torn.is_empty() {
        return Ok(None);
    }
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut side = path.as_os_str().to_owned();
    side.push(format!(".torn-{stamp}"));
    let side = PathBuf::from(side);
    std::fs::write(&side, torn)?;
    file.set_len(at)?;
    file.sync_all()?;
    Ok(Some((torn.len() as u64, side)))
}
