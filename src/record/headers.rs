//! The request and response headers a record keeps: a fixed selection (what a reader of a
//! client-certificate failure looks for), credentials and `Location` queries redacted unless
//! `--no-redact`. Shared by the proxies and by `probe`.

use crate::facts::Header;
use http::header::HeaderMap;

/// Credential headers whose values are redacted in records unless `--no-redact`.
const CREDENTIALS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
];

/// Request headers worth keeping in a record.
const KEPT_REQUEST: &[&str] = &[
    "host",
    "user-agent",
    "accept",
    "content-type",
    "content-length",
    "authorization",
    "proxy-authorization",
    "cookie",
    "x-forwarded-for",
    "x-forwarded-client-cert",
    "client-cert",
    "ssl-client-cert",
    "x-ssl-client-cert",
];

/// Response headers worth keeping in a record.
const KEPT_RESPONSE: &[&str] = &[
    "content-type",
    "content-length",
    "server",
    "location",
    "www-authenticate",
    "proxy-authenticate",
    "set-cookie",
    "x-powered-by",
    "x-aspnet-version",
    "retry-after",
    "x-error",
    "x-request-id",
];

/// The request headers kept in a record.
pub fn kept_request(headers: &HeaderMap, redact: bool) -> Vec<Header> {
    kept(headers, KEPT_REQUEST, redact)
}

/// The response headers kept in a record.
pub fn kept_response(headers: &HeaderMap, redact: bool) -> Vec<Header> {
    kept(headers, KEPT_RESPONSE, redact)
}

fn kept(headers: &HeaderMap, names: &[&str], redact: bool) -> Vec<Header> {
    headers
        .iter()
        .filter(|(n, _)| names.contains(&n.as_str()))
        .map(|(n, v)| Header {
            name: n.as_str().to_string(),
            value: if redact && CREDENTIALS.contains(&n.as_str()) {
                "<redacted>".to_string()
            } else if redact && n == http::header::LOCATION {
                // OAuth redirects carry codes and tokens in the query (or the fragment).
                super::redact::uri(&String::from_utf8_lossy(v.as_bytes()), true)
            } else {
                String::from_utf8_lossy(v.as_bytes()).into_owned()
            },
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_redacted_unless_asked() {
        let mut h = HeaderMap::new();
        h.insert("authorization", "Basic c2VjcmV0".parse().unwrap());
        h.insert("user-agent", "curl".parse().unwrap());
        let kept = kept_request(&h, true);
        assert!(kept
            .iter()
            .any(|x| x.name == "authorization" && x.value == "<redacted>"));
        assert!(kept
            .iter()
            .any(|x| x.name == "user-agent" && x.value == "curl"));
        assert!(kept_request(&h, false)
            .iter()
            .any(|x| x.value == "Basic c2VjcmV0"));
    }
}
