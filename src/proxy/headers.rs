//! Header handling a proxy owes: hop-by-hop removal, the headers around the proxy, `TE:
//! trailers`. The redacted selection kept in records is [`crate::record::headers`].

use crate::facts::Header;
use http::header::{
    HeaderMap, HeaderName, ALT_SVC, CONNECTION, PROXY_AUTHORIZATION, TE, TRAILER,
    TRANSFER_ENCODING, UPGRADE,
};

/// Headers that describe one hop and must not be forwarded (RFC 9110 §7.6.1).
/// Typed names: removing by `&str` parses the name again on every request.
static HOP_BY_HOP: [HeaderName; 8] = [
    CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    PROXY_AUTHORIZATION,
    TE,
    TRAILER,
    TRANSFER_ENCODING,
    UPGRADE,
];

/// Remove hop-by-hop headers, including those named in `Connection`.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Most messages have none of them: one pass over the map instead of a lookup per name.
    if !headers.keys().any(|k| HOP_BY_HOP.contains(k)) {
        return;
    }
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
    for name in &HOP_BY_HOP {
        headers.remove(name);
    }
}

/// Response headers that would lead the client around mtlscope: `Alt-Svc` announces another
/// endpoint (HTTP/3 on the server's UDP port, another host) the client may switch to, past the
/// proxy and out of the recording.
static AROUND_THE_PROXY: [HeaderName; 1] = [ALT_SVC];

/// Remove the response headers that lead the client around mtlscope; returns them, as
/// recorded (never redacted: they name endpoints, not credentials).
pub fn remove_around_the_proxy(headers: &mut HeaderMap) -> Vec<Header> {
    let mut removed = Vec::new();
    for name in &AROUND_THE_PROXY {
        for v in headers.get_all(name) {
            removed.push(Header {
                name: name.to_string(),
                value: String::from_utf8_lossy(v.as_bytes()).into_owned(),
            });
        }
        headers.remove(name);
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
    fn te_trailers_is_recognised_among_other_values() {
        let mut h = HeaderMap::new();
        assert!(!asks_for_trailers(&h));
        h.insert("te", "gzip, Trailers".parse().unwrap());
        assert!(asks_for_trailers(&h));
        h.insert("te", "gzip".parse().unwrap());
        assert!(!asks_for_trailers(&h));
    }
}
