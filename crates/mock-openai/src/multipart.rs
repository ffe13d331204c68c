//! Just enough multipart/form-data parsing to answer uploads the way OpenAI does.

use bytes::Bytes;

/// One part of a multipart body.
#[derive(Debug, Clone)]
pub struct Part {
    /// The `name` of its Content-Disposition.
    pub name: String,
    /// The `filename` of its Content-Disposition, if any.
    pub filename: Option<String>,
    /// Its content.
    pub data: Bytes,
}

/// The boundary parameter of a `multipart/form-data` content type.
pub fn boundary(content_type: &str) -> Option<String> {
    let lower = content_type.to_ascii_lowercase();
    if !lower.trim_start().starts_with("multipart/") {
        return None;
    }
    let at = lower.find("boundary=")?;
    let rest = &content_type[at + "boundary=".len()..];
    let value = match rest.strip_prefix('"') {
        Some(quoted) => quoted.split('"').next().unwrap_or(""),
        None => rest.split(';').next().unwrap_or("").trim(),
    };
    (!value.is_empty()).then(|| value.to_string())
}

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    if needle.is_empty() || from > hay.len() {
        return None;
    }
    hay[from..]
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

fn param(disposition: &str, key: &str) -> Option<String> {
    for piece in disposition.split(';') {
        let piece = piece.trim();
        let Some((k, v)) = piece.split_once('=') else {
            continue;
        };
        if k.trim().eq_ignore_ascii_case(key) {
            let v = v.trim();
            return Some(
                v.strip_prefix('"')
                    .and_then(|v| v.strip_suffix('"'))
                    .unwrap_or(v)
                    .to_string(),
            );
        }
    }
    None
}

/// The parts of `body`; malformed trailing data is ignored.
pub fn parse(body: &Bytes, boundary: &str) -> Vec<Part> {
    let delim = format!("--{boundary}");
    let next_delim = format!("\r\n--{boundary}");
    let mut parts = Vec::new();
    let Some(mut pos) = find(body, delim.as_bytes(), 0) else {
        return parts;
    };
    loop {
        pos += delim.len();
        if body[pos..].starts_with(b"--") {
            break;
        }
        if body[pos..].starts_with(b"\r\n") {
            pos += 2;
        }
        let Some(head_end) = find(body, b"\r\n\r\n", pos) else {
            break;
        };
        let head = String::from_utf8_lossy(&body[pos..head_end]).into_owned();
        let data_start = head_end + 4;
        let Some(data_end) = find(body, next_delim.as_bytes(), data_start) else {
            break;
        };
        let mut name = String::new();
        let mut filename = None;
        for line in head.split("\r\n") {
            if let Some((k, v)) = line.split_once(':') {
                if k.trim().eq_ignore_ascii_case("content-disposition") {
                    name = param(v, "name").unwrap_or_default();
                    filename = param(v, "filename");
                }
            }
        }
        parts.push(Part {
            name,
            filename,
            data: body.slice(data_start..data_end),
        });
        pos = data_end + 2;
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_fields_and_files() {
        let body = Bytes::from_static(
            b"--xyz\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nbatch\r\n--xyz\r\n\
Content-Disposition: form-data; name=\"file\"; filename=\"in.jsonl\"\r\nContent-Type: application/jsonl\r\n\r\n\
{\"a\":1}\n\r\n--xyz--\r\n",
        );
        assert_eq!(
            boundary("multipart/form-data; boundary=xyz").as_deref(),
            Some("xyz")
        );
        assert_eq!(
            boundary("multipart/form-data; boundary=\"xyz\"").as_deref(),
            Some("xyz")
        );
        let parts = parse(&body, "xyz");
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].name, "purpose");
        assert_eq!(&parts[0].data[..], b"batch");
        assert_eq!(parts[1].filename.as_deref(), Some("in.jsonl"));
        assert_eq!(&parts[1].data[..], b"{\"a\":1}\n");
    }
}
