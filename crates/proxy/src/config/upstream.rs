//! Where a project's requests go and with which key: `upstream.base_urls` (a residency region
//! must not be sent to another region's OpenAI host) and the upstream keys (which `check` may
//! lack: see [`Secrets`]).

use super::raw::RawProject;
use super::{relative_to, safe, suggest};
use policy::Catalog;
use std::collections::BTreeMap;
use std::path::Path;

/// Whether an upstream key that is not there (an unset variable, a missing key file) is a
/// problem (`serve`, reload) or only reported (`check`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Secrets {
    Required,
    MayBeMissing,
}

/// `upstream.base_urls`: keys must be catalog regions, values `http(s)://host[:port]`, and a
/// residency region must not be sent to another region's OpenAI host.
pub(super) fn validate_base_urls(
    problems: &mut Vec<String>,
    catalog: &Catalog,
    urls: &BTreeMap<String, String>,
) -> BTreeMap<String, (http::uri::Scheme, http::uri::Authority)> {
    let mut out = BTreeMap::new();
    for (region, url) in urls {
        let place = format!("upstream.base_urls.{region}");
        let Some(r) = catalog.region(region) else {
            problems.push(format!("{place}: {}", suggest::unknown_region(catalog, region)));
            continue;
        };
        match parse_base_url(url) {
            Ok(parts) => {
                if let Some(why) = misrouted(catalog, r, parts.1.host()) {
                    problems.push(format!("{place}: {why}"));
                    continue;
                }
                out.insert(region.clone(), parts);
            }
            Err(why) => problems.push(format!("{place}: the URL {why}")),
        }
    }
    out
}

/// Why sending residency region `r` to `host` is wrong, when `host` is the OpenAI host of
/// another catalog region (e.g. `eu` to `api.openai.com`): OpenAI would process or store the
/// request elsewhere, or refuse it with `incorrect_hostname`. The table is the catalog's
/// regions and hosts; a host that is no region's (a private endpoint, an egress proxy, a
/// test server) is the operator's to choose. `global` is no residency region: any host.
fn misrouted(catalog: &Catalog, r: &policy::Region, host: &str) -> Option<String> {
    if !r.residency {
        return None;
    }
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.eq_ignore_ascii_case(&r.host) {
        return None;
    }
    let other = catalog
        .regions
        .iter()
        .find(|o| o.id != r.id && host.eq_ignore_ascii_case(&o.host))?;
    Some(format!(
        "{host} is OpenAI's host for region \"{}\", not for \"{}\": requests of region \"{}\" must go \
         to {} (or to a private endpoint or proxy that forwards there)",
        other.id,
        r.id,
        r.id,
        r.base_url()
    ))
}

pub(super) fn parse_base_url(url: &str) -> Result<(http::uri::Scheme, http::uri::Authority), &'static str> {
    let uri: http::Uri = url.parse().map_err(|_| "is not a URL")?;
    let scheme = uri
        .scheme()
        .cloned()
        .ok_or("needs a scheme (http:// or https://)")?;
    if scheme != http::uri::Scheme::HTTP && scheme != http::uri::Scheme::HTTPS {
        return Err("must be http:// or https://");
    }
    let authority = uri.authority().cloned().ok_or("needs a host")?;
    if authority.as_str().contains('@') {
        return Err("must not contain credentials");
    }
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        return Err("must be a scheme and host only, without path or query");
    }
    Ok((scheme, authority))
}

/// How [`upstream_key`] treats a key that is not there, and where it reports it.
pub(super) struct SecretsCtx<'a> {
    pub mode: Secrets,
    /// Where a missing key is reported under [`Secrets::MayBeMissing`].
    pub missing: &'a mut Vec<String>,
    /// The config file (key files are relative to it).
    pub source: Option<&'a Path>,
}

impl SecretsCtx<'_> {
    /// A key that is not there: a problem, or under `check` a warning saying `serve` needs it.
    fn not_there(&mut self, problems: &mut Vec<String>, what: String) {
        match self.mode {
            Secrets::Required => problems.push(what),
            Secrets::MayBeMissing => self
                .missing
                .push(format!("{what}; serve will refuse to start without it")),
        }
    }
}

/// The upstream `Authorization` value from `upstream_api_key_env` or `upstream_api_key_file`.
pub(super) fn upstream_key(
    problems: &mut Vec<String>,
    place: &str,
    p: &RawProject,
    mut secrets: SecretsCtx<'_>,
) -> Option<http::HeaderValue> {
    let key = match (&p.upstream_api_key_env, &p.upstream_api_key_file) {
        (Some(_), Some(_)) => {
            problems.push(format!(
                "{place}: set upstream_api_key_env or upstream_api_key_file, not both"
            ));
            return None;
        }
        (Some(var), None) => match std::env::var(var) {
            Ok(v) => v,
            Err(std::env::VarError::NotPresent) => {
                secrets.not_there(
                    problems,
                    format!("{place}.upstream_api_key_env: environment variable {var} is not set"),
                );
                return None;
            }
            Err(std::env::VarError::NotUnicode(_)) => {
                problems.push(format!(
                    "{place}.upstream_api_key_env: environment variable {var} is not valid UTF-8"
                ));
                return None;
            }
        },
        (None, Some(file)) => {
            let path = relative_to(secrets.source, file);
            // Missing or unreadable here (a CI runner, a laptop) is not the same as a bad file:
            // only the first may be a warning for `check`.
            if let Err(e) = std::fs::File::open(&path) {
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied
                ) {
                    secrets.not_there(
                        problems,
                        format!(
                            "{place}.upstream_api_key_file: {}: cannot read: {e}",
                            path.display()
                        ),
                    );
                    return None;
                }
            }
            match safe::read_capped(&path, safe::MAX_SECRET_BYTES, "the key file") {
                Ok(v) => v,
                Err(e) => {
                    problems.push(format!("{place}.upstream_api_key_file: {e}"));
                    return None;
                }
            }
        }
        (None, None) => return None,
    };
    let key = key.trim();
    let mut value = match http::HeaderValue::from_str(&format!("Bearer {key}")) {
        Ok(v) if !key.is_empty() => v,
        _ => {
            problems.push(format!(
                "{place}: the upstream API key is empty or not header-safe"
            ));
            return None;
        }
    };
    value.set_sensitive(true);
    Some(value)
}
