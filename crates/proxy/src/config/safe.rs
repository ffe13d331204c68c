//! Reading config-side files safely: a size cap checked before anything is parsed (a 12 MB
//! file must not cost gigabytes), and TOML errors reported by file, line, column and key,
//! never with the offending text (a secret on a bad line must not reach the log).

use std::io::Read;
use std::path::Path;

/// The largest config file read (1 MiB).
pub const MAX_CONFIG_BYTES: u64 = 1024 * 1024;
/// The largest catalog file read (16 MiB).
pub const MAX_CATALOG_BYTES: u64 = 16 * 1024 * 1024;
/// The largest secret file read (`upstream_api_key_file`).
pub const MAX_SECRET_BYTES: u64 = 64 * 1024;

/// Reads `path` as UTF-8 if it is at most `cap` bytes; the error names the file and the cap.
/// The size is checked before reading and the read itself is bounded (the file may grow).
pub fn read_capped(path: &Path, cap: u64, what: &str) -> Result<String, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let too_big = || {
        format!(
            "{}: {what} is larger than its {cap}-byte limit; not read",
            path.display()
        )
    };
    if len > cap {
        return Err(too_big());
    }
    let mut buf = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    file.take(cap + 1)
        .read_to_end(&mut buf)
        .map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
    if buf.len() as u64 > cap {
        return Err(too_big());
    }
    String::from_utf8(buf).map_err(|e| {
        format!(
            "{}: not UTF-8 (at byte {})",
            path.display(),
            e.utf8_error().valid_up_to()
        )
    })
}

/// A TOML error as `FILE: line L, column C: key `a.b`: what`, without any of the file's text except
/// key names: serde's messages quote values (`invalid type: string "…"`, ``unknown variant
/// `…` ``), and toml's display repeats the whole line.
pub fn toml_error(text: &str, source: Option<&Path>, e: &toml::de::Error) -> String {
    let place = source.map(|p| format!("{}: ", p.display())).unwrap_or_default();
    let (at, key) = match e.span() {
        Some(span) => {
            let (line, col) = line_col(text, span.start);
            (format!("line {line}, column {col}: "), key_at(text, span.start))
        }
        None => (String::new(), None),
    };
    let key = key.map(|k| format!("key `{k}`: ")).unwrap_or_default();
    format!("{place}{at}{key}{}", redact(e.message()))
}

/// 1-based line and column (in characters) of byte `offset`.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or("");
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// The dotted key of the `key = value` line holding `offset`, prefixed by its table header,
/// when both are plain keys (anything else might be a value typed in the wrong place).
fn key_at(text: &str, offset: usize) -> Option<String> {
    let offset = offset.min(text.len());
    let start = text.get(..offset)?.rfind('\n').map_or(0, |i| i + 1);
    let line = text.get(start..)?.lines().next()?;
    let key = line.split_once('=').map(|(k, _)| k.trim())?;
    if !plain_key(key) {
        return None;
    }
    let table = text.get(..start)?.lines().rev().find_map(|l| {
        let l = l.trim();
        let inner = l
            .strip_prefix("[[")
            .and_then(|r| r.strip_suffix("]]"))
            .or_else(|| l.strip_prefix('[').and_then(|r| r.strip_suffix(']')))?;
        Some(inner.trim().to_string())
    });
    Some(match table {
        Some(t) if plain_key(&t) => format!("{t}.{key}"),
        _ => key.to_string(),
    })
}

fn plain_key(k: &str) -> bool {
    !k.is_empty()
        && k.len() <= 64
        && k.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// The first line of the message without quoted text: `"…"` and `'…'` strings and backticked
/// values are replaced by `…`. Field names in backticks (schema words) stay.
fn redact(msg: &str) -> String {
    let first = msg.lines().next().unwrap_or("").trim();
    let mut out = String::with_capacity(first.len());
    let mut chars = first.chars().peekable();
    let mut after_variant = false;
    while let Some(c) = chars.next() {
        match c {
            '"' | '\'' => {
                for d in chars.by_ref() {
                    if d == c {
                        break;
                    }
                }
                out.push('…');
            }
            '`' if after_variant => {
                for d in chars.by_ref() {
                    if d == '`' {
                        break;
                    }
                }
                out.push('…');
                after_variant = false;
            }
            _ => {
                out.push(c);
                // serde quotes values in backticks after these words (`invalid value:
                // integer `5``, `unknown variant `x``); field names elsewhere stay.
                if ["unknown variant ", "integer ", "floating point ", "boolean "]
                    .iter()
                    .any(|w| out.ends_with(w))
                {
                    after_variant = true;
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        let e = toml::from_str::<super::super::raw::RawConfig>(text).unwrap_err();
        toml_error(text, Some(Path::new("proxy.toml")), &e)
    }

    #[test]
    fn errors_name_the_place_and_key_but_not_the_value() {
        let secret = "sk-proj-SECRETSECRET";
        let m = err(&format!("[limits]\nmax_connections = \"{secret}\"\n"));
        assert!(m.starts_with("proxy.toml: line 2, column "), "{m}");
        assert!(m.contains("key `limits.max_connections`"), "{m}");
        assert!(!m.contains("SECRET"), "{m}");
        let m = err(&format!("listen = \"a\"\n{secret} broken line\n"));
        assert!(m.starts_with("proxy.toml: line 2, column "), "{m}");
        assert!(!m.contains("SECRET"), "{m}");
        let m = err(&format!("[log]\nformat = \"{secret}\"\n"));
        assert!(!m.contains("SECRET") && m.contains("log.format"), "{m}");
        let m = err(&format!("[audit]\non_failure = '{secret}'\n"));
        assert!(!m.contains("SECRET"), "{m}");
        let m = err("[limits]\nmax_connections = -77123\n");
        assert!(!m.contains("77123"), "{m}");
        let m = err("[limits]\nnot_a_key = 1\n");
        assert!(m.contains("not_a_key"), "unknown keys are named: {m}");
    }

    #[test]
    fn oversized_files_are_refused_before_reading() {
        let p = std::env::temp_dir().join(format!("rp-cap-{}", std::process::id()));
        std::fs::write(&p, vec![b'#'; 2048]).unwrap();
        let e = read_capped(&p, 1024, "config").unwrap_err();
        assert!(e.contains("1024-byte limit"), "{e}");
        assert_eq!(read_capped(&p, 4096, "config").map(|s| s.len()), Ok(2048));
        let _ = std::fs::remove_file(p);
    }
}
