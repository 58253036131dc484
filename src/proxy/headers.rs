//! Header handling a proxy owes: hop-by-hop removal, and the redacted selection kept in records.

use crate::facts::Header;
use http::header::{HeaderMap, HeaderName, CONNECTION};

/// Headers that describe one hop and must not be forwarded (RFC 9110 §7.6.1).
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

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

/// Remove hop-by-hop headers, including those named in `Connection`.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(*name);
    }
}

/// Response headers that would lead the client around mtlscope: `Alt-Svc` announces another
/// endpoint (HTTP/3 on the server's UDP port, another host) the client may switch to, past the
/// proxy and out of the recording.
const AROUND_THE_PROXY: &[&str] = &["alt-svc"];

/// Remove the response headers that lead the client around mtlscope; returns them, as
/// recorded (never redacted: they name endpoints, not credentials).
pub fn remove_around_the_proxy(headers: &mut HeaderMap) -> Vec<Header> {
    let mut removed = Vec::new();
    for name in AROUND_THE_PROXY {
        for v in headers.get_all(*name) {
            removed.push(Header {
                name: (*name).to_string(),
                value: String::from_utf8_lossy(v.as_bytes()).into_owned(),
            });
        }
        headers.remove(*name);
    }
    removed
}

/// Whether a request's `TE` header names `trailers` (the one TE value HTTP/2 allows).
pub fn asks_for_trailers(headers: &HeaderMap) -> bool {
    headers
        .get_all(http::header::TE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("trailers"))
}

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
                crate::record::redact::uri(&String::from_utf8_lossy(v.as_bytes()), true)
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
    fn hop_by_hop_and_connection_named_headers_go() {
        let mut h = HeaderMap::new();
        h.insert("connection", "close, x-hop".parse().unwrap());
        h.insert("x-hop", "1".parse().unwrap());
        h.insert("keep-alive", "5".parse().unwrap());
        h.insert("x-end", "1".parse().unwrap());
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("x-end"));
    }

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

    #[test]
    fn te_trailers_is_recognised_among_other_values() {
        let mut h = HeaderMap::new();
        assert!(!asks_for_trailers(&h));
        h.insert("te", "gzip, Trailers".parse().unwrap());
        assert!(asks_for_trailers(&h));
        h.insert("te", "gzip".parse().unwrap());
        assert!(!asks_for_trailers(&h));
    }
}
