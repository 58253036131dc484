//! The upstream named as a URL (`--upstream https://host[:port]`): its target, and whether it
//! is plain HTTP.

use super::Target;

/// Parse `https://host[:port]` into a target.
pub fn parse_upstream(url: &str) -> Result<Target, String> {
    match parse_upstream_url(url)? {
        (target, false) => Ok(target),
        (_, true) => Err(format!(
            "{url:?}: scheme \"http\" is not supported here; use https://"
        )),
    }
}

/// Parse `https://host[:port]` or `http://host[:port]` into a target and whether it is plain
/// HTTP.
pub fn parse_upstream_url(url: &str) -> Result<(Target, bool), String> {
    let uri: http::Uri = url
        .parse()
        .map_err(|e| format!("{url:?} is not a URL: {e}"))?;
    let (plain, default_port) = match uri.scheme_str() {
        Some("https") => (false, 443),
        Some("http") => (true, 80),
        Some(other) => {
            return Err(format!(
                "{url:?}: scheme {other:?} is not supported; use https:// (or http:// for a plain backend)"
            ))
        }
        None => return Err(format!("{url:?}: expected https://HOST[:PORT]")),
    };
    let host = uri.host().ok_or_else(|| format!("{url:?}: no host"))?;
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    Ok((
        Target::new(host, uri.port_u16().unwrap_or(default_port)),
        plain,
    ))
}
