//! Reading the admin listener's Prometheus text and the proxy's JSON log lines.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

/// One sample of the Prometheus text: name, labels, value.
#[derive(Debug)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// Every sample of a Prometheus text exposition (comments skipped, label escapes undone).
pub fn parse_metrics(text: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap();
        let value: f64 = value.parse().unwrap_or(f64::NAN);
        let (name, labels) = match series.split_once('{') {
            None => (series.to_string(), BTreeMap::new()),
            Some((name, rest)) => (name.to_string(), parse_labels(rest.strip_suffix('}').unwrap())),
        };
        out.push(Sample { name, labels, value });
    }
    out
}

fn parse_labels(body: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    let mut s = body;
    while !s.is_empty() {
        let (k, rest) = s.split_once("=\"").unwrap();
        let mut v = String::new();
        let mut chars = rest.char_indices();
        let mut end = rest.len();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, n)) = chars.next() {
                        v.push(n);
                    }
                }
                '"' => {
                    end = i;
                    break;
                }
                c => v.push(c),
            }
        }
        labels.insert(k.to_string(), v);
        s = rest[end + 1..].trim_start_matches(',');
    }
    labels
}

/// The first sample named `name` carrying every one of `labels`.
pub fn sample<'a>(samples: &'a [Sample], name: &str, labels: &[(&str, &str)]) -> Option<&'a Sample> {
    samples.iter().find(|s| {
        s.name == name
            && labels
                .iter()
                .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
    })
}

/// The value of one series written exactly as exposed, e.g. `residency_proxy_audit_writable`
/// or `residency_proxy_timeouts_total{kind="request_header"}`.
pub fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no series {series} in:\n{text}"))
}

/// Sum of `residency_proxy_requests_total` samples whose series text contains every `want`
/// fragment (e.g. `decision="deny"`).
pub fn sum_requests(metrics: &str, want: &[&str]) -> u64 {
    metrics
        .lines()
        .filter(|l| l.starts_with("residency_proxy_requests_total{"))
        .filter(|l| want.iter().all(|w| l.contains(w)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|v| v as u64)
        .sum()
}

/// The JSON lines of a `[log] format = "json"` stderr (every line must be JSON).
pub fn json_lines(stderr: &str) -> Vec<Value> {
    stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("log line is not JSON ({e}): {l}")))
        .collect()
}

/// The per-request lines of a JSON log.
pub fn request_lines(stderr: &str) -> Vec<Value> {
    json_lines(stderr)
        .into_iter()
        .filter(|v| v["target"] == "residency_proxy::request")
        .collect()
}

/// The records of a JSON-lines file (an audit log); empty when the file is missing.
pub fn jsonl_file(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a record ({e}): {l:?}")))
        .collect()
}
