//! Facts of mtlscope playing a TLS offloader: which identity headers the request carried
//! upstream, and which identity headers the client sent itself (and mtlscope removed).

use serde::{Deserialize, Serialize};

/// The client's identity as passed on in HTTP headers, for one exchange.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ForwardedIdentity {
    /// The configured formats as named (`rfc9440`, `xfcc`, `header:X-Cert=…`); empty when
    /// none is configured (a plain-HTTP upstream that gets no identity at all).
    pub formats: Vec<String>,
    /// Whether the client presented a certificate on the client leg.
    pub client_cert: bool,
    /// The identity headers added to the request as forwarded, in order.
    pub headers: Vec<HeaderExcerpt>,
    /// Identity headers the client sent itself; always removed before forwarding.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stripped: Vec<HeaderExcerpt>,
    /// `--expect-client-cert-header`: the header the backend reads the identity from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_header: Option<String>,
    /// Why the client's certificate was not passed on although one was presented: mtlscope
    /// could not verify it against `--client-ca` (without `--forward-client-cert-unverified`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub withheld: Option<String>,
}

/// One header, its value cut to a bounded excerpt.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct HeaderExcerpt {
    /// Lowercase header name.
    pub name: String,
    /// The start of the value (at most [`HeaderExcerpt::MAX`] characters), `…` when cut.
    pub excerpt: String,
    /// The whole value's length in bytes.
    pub bytes: usize,
}

impl HeaderExcerpt {
    /// The most characters of a value kept.
    pub const MAX: usize = 96;

    /// The excerpt of `value` under `name`; reads at most a few hundred bytes of it.
    pub fn new(name: &str, value: &[u8]) -> HeaderExcerpt {
        let cut = value.len().min(Self::MAX * 4);
        let text = String::from_utf8_lossy(&value[..cut]);
        let mut chars = text.chars();
        let mut excerpt: String = chars.by_ref().take(Self::MAX).collect();
        if chars.next().is_some() || cut < value.len() {
            excerpt.push('…');
        }
        HeaderExcerpt {
            name: name.to_ascii_lowercase(),
            excerpt,
            bytes: value.len(),
        }
    }
}

impl ForwardedIdentity {
    /// Whether a header of `name` was forwarded (case-insensitive).
    pub fn forwarded(&self, name: &str) -> bool {
        self.headers
            .iter()
            .any(|h| h.name.eq_ignore_ascii_case(name))
    }
}

#[cfg(test)]
mod tests {
    use super::HeaderExcerpt;

    #[test]
    fn excerpts_are_bounded_and_say_when_cut() {
        let long = "a".repeat(5000);
        let e = HeaderExcerpt::new("X-Cert", long.as_bytes());
        assert_eq!(e.name, "x-cert");
        assert_eq!(e.excerpt.chars().count(), HeaderExcerpt::MAX + 1);
        assert!(e.excerpt.ends_with('…'));
        assert_eq!(e.bytes, 5000);
        let short = HeaderExcerpt::new("a", b"SUCCESS");
        assert_eq!(short.excerpt, "SUCCESS");
        let exact = "b".repeat(HeaderExcerpt::MAX);
        assert_eq!(HeaderExcerpt::new("a", exact.as_bytes()).excerpt, exact);
    }
}
