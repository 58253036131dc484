//! Playing the TLS offloader: the client's certificate passed on to the backend in the HTTP
//! headers real offloaders use (RFC 9440, Envoy XFCC, nginx, AWS ALB, Azure, or a template),
//! and every incoming header of those names removed from the client's request first, as a
//! real offloader must, so a client cannot assert an identity it does not hold.
//!
//! The headers are computed once per connection (the identity is per connection) and applied
//! to each request; what was added and what was removed becomes the exchange's
//! [`ForwardedIdentity`] fact.

mod encode;
mod fields;
mod formats;
mod template;

pub use fields::{CertFields, Verify};
pub use formats::{Format, FormatError};
pub use template::TemplateError;

use crate::facts::{ChainVerdict, ForwardedIdentity, HeaderExcerpt};
use http::header::{HeaderMap, HeaderName, HeaderValue};

/// The header `--forward-client-cert-verify` adds for every format: the verify result in
/// nginx's words.
pub const VERIFY_HEADER: &str = "x-client-cert-verify";

/// What a listener playing the offloader does (from `--forward-client-cert` and friends).
#[derive(Clone, Debug, Default)]
pub struct OffloadSettings {
    /// The formats, each with the text it was named by.
    pub formats: Vec<(String, Format)>,
    /// `--forward-client-cert-verify`: also say why there is no identity (or that it failed).
    pub verify_headers: bool,
    /// `--expect-client-cert-header`: the header the backend reads the identity from.
    pub expected_header: Option<String>,
}

/// Why the offloader settings are not usable.
#[derive(Debug, thiserror::Error)]
pub enum OffloadError {
    /// A `--forward-client-cert` value.
    #[error("{named} {value:?}: {source}")]
    Format {
        /// Where it was named: the flag, or the config file and key.
        named: String,
        /// The value as given.
        value: String,
        /// What is wrong with it.
        source: FormatError,
    },
    /// `--expect-client-cert-header` is not a header name.
    #[error("{named} {value:?} is not a valid header name")]
    ExpectedName {
        /// Where it was named.
        named: String,
        /// The value as given.
        value: String,
    },
}

impl OffloadSettings {
    /// Parse the flags' values, with where each was named (for messages): `named` pairs the
    /// formats' and the expected header's origin (flag or config key).
    pub fn parse(
        formats: &[String],
        verify_headers: bool,
        expected_header: Option<&str>,
        named: (&str, &str),
    ) -> Result<OffloadSettings, OffloadError> {
        let formats = formats
            .iter()
            .map(|v| {
                v.parse::<Format>()
                    .map(|f| (v.clone(), f))
                    .map_err(|source| OffloadError::Format {
                        named: named.0.to_string(),
                        value: v.clone(),
                        source,
                    })
            })
            .collect::<Result<_, _>>()?;
        let expected_header = match expected_header {
            Some(n) => Some(
                HeaderName::from_bytes(n.as_bytes())
                    .map_err(|_| OffloadError::ExpectedName {
                        named: named.1.to_string(),
                        value: n.to_string(),
                    })?
                    .as_str()
                    .to_string(),
            ),
            None => None,
        };
        Ok(OffloadSettings {
            formats,
            verify_headers,
            expected_header,
        })
    }

    /// The headers for one client connection: `chain` is what the client presented (leaf
    /// first, DER; empty for none), `verdict` mtlscope's verdict on it.
    pub fn for_connection(&self, chain: &[Vec<u8>], verdict: Option<&ChainVerdict>) -> ConnOffload {
        let fields = CertFields::read(chain);
        let verify = match (&fields, verdict) {
            (None, _) if chain.is_empty() => Verify::None,
            (None, _) => Verify::Failed("the certificate could not be parsed".into()),
            (Some(_), Some(v)) if v.trusted => Verify::Success,
            (Some(_), Some(v)) => Verify::Failed(
                v.reason
                    .clone()
                    .unwrap_or_else(|| "not trusted".to_string()),
            ),
            (Some(_), None) => Verify::Failed("not verified: no --client-ca".into()),
        };
        let mut add: Vec<(HeaderName, HeaderValue)> = Vec::new();
        let mut push = |list: Vec<(HeaderName, String)>| {
            for (n, v) in list {
                // Every value is built from ASCII; a value that still is not a header value is
                // dropped rather than sent mangled.
                if let Ok(v) = HeaderValue::from_str(&v) {
                    add.push((n, v));
                }
            }
        };
        for (_, format) in &self.formats {
            match &fields {
                Some(c) => push(format.headers(c, &verify)),
                None if self.verify_headers => push(format.headers_without_cert()),
                None => {}
            }
        }
        if self.verify_headers {
            push(vec![(
                HeaderName::from_static(VERIFY_HEADER),
                verify.as_text(),
            )]);
        }
        let mut strip: Vec<HeaderName> = self.formats.iter().flat_map(|(_, f)| f.names()).collect();
        if self.verify_headers {
            strip.push(HeaderName::from_static(VERIFY_HEADER));
        }
        strip.dedup();
        ConnOffload {
            formats: self.formats.iter().map(|(n, _)| n.clone()).collect(),
            client_cert: !chain.is_empty(),
            added: add
                .iter()
                .map(|(n, v)| HeaderExcerpt::new(n.as_str(), v.as_bytes()))
                .collect(),
            add,
            strip,
            expected_header: self.expected_header.clone(),
        }
    }
}

/// The offloader's work for a client connection whose handshake presented `peer` (None: no
/// offloader configured, so nothing to do).
pub fn for_client(
    settings: Option<&OffloadSettings>,
    peer: Option<&[rustls::pki_types::CertificateDer<'_>]>,
    client: &crate::capture::LegRecorder,
) -> Option<std::sync::Arc<ConnOffload>> {
    let settings = settings?;
    let chain: Vec<Vec<u8>> = peer
        .unwrap_or_default()
        .iter()
        .map(|c| c.as_ref().to_vec())
        .collect();
    let verdict = client.with(|leg| leg.chain_verdict.clone());
    Some(std::sync::Arc::new(
        settings.for_connection(&chain, verdict.as_ref()),
    ))
}

/// The offloader's work for one client connection, ready to apply to each request.
#[derive(Clone, Debug)]
pub struct ConnOffload {
    /// The formats as named.
    formats: Vec<String>,
    /// Whether the client presented a certificate.
    client_cert: bool,
    /// Headers added to every request, in order.
    add: Vec<(HeaderName, HeaderValue)>,
    /// The same, as recorded (the same for every request of the connection).
    added: Vec<HeaderExcerpt>,
    /// Header names removed from every request first.
    strip: Vec<HeaderName>,
    /// `--expect-client-cert-header`.
    expected_header: Option<String>,
}

impl ConnOffload {
    /// Strip the identity headers the client sent, add the offloader's, and say what was done.
    pub fn apply(&self, headers: &mut HeaderMap) -> ForwardedIdentity {
        let mut stripped = Vec::new();
        for name in &self.strip {
            if let http::header::Entry::Occupied(e) = headers.entry(name) {
                let (name, values) = e.remove_entry_mult();
                for v in values {
                    stripped.push(HeaderExcerpt::new(name.as_str(), v.as_bytes()));
                }
            }
        }
        for (n, v) in &self.add {
            headers.append(n.clone(), v.clone());
        }
        ForwardedIdentity {
            formats: self.formats.clone(),
            client_cert: self.client_cert,
            headers: self.added.clone(),
            stripped,
            expected_header: self.expected_header.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FLAGS: (&str, &str) = ("--forward-client-cert", "--expect-client-cert-header");

    #[test]
    fn forged_headers_are_stripped_and_recorded_and_no_cert_adds_nothing() {
        let s = OffloadSettings::parse(&["rfc9440".into(), "nginx".into()], false, None, FLAGS)
            .unwrap();
        let o = s.for_connection(&[], None);
        let mut h = HeaderMap::new();
        h.insert("client-cert", HeaderValue::from_static(":Zm9yZ2Vk:"));
        h.append("x-ssl-client-cert", HeaderValue::from_static("a"));
        h.append("x-ssl-client-cert", HeaderValue::from_static("b"));
        h.insert("user-agent", HeaderValue::from_static("curl"));
        let f = o.apply(&mut h);
        assert_eq!(h.len(), 1, "{h:?}");
        assert_eq!(f.stripped.len(), 3);
        assert_eq!(f.stripped[0].excerpt, ":Zm9yZ2Vk:");
        assert!(f.headers.is_empty());
        assert!(!f.client_cert);
    }

    #[test]
    fn verify_headers_say_none_without_a_certificate() {
        let s = OffloadSettings::parse(&["nginx".into()], true, None, FLAGS).unwrap();
        let mut h = HeaderMap::new();
        let f = s.for_connection(&[], None).apply(&mut h);
        assert_eq!(h.get("x-ssl-client-verify").unwrap(), "NONE");
        assert_eq!(h.get(VERIFY_HEADER).unwrap(), "NONE");
        assert_eq!(f.headers.len(), 2);
    }

    #[test]
    fn bad_values_name_the_flag() {
        let e = OffloadSettings::parse(&["f5".into()], false, None, FLAGS).unwrap_err();
        assert!(
            e.to_string().starts_with("--forward-client-cert \"f5\""),
            "{e}"
        );
        let e = OffloadSettings::parse(&[], false, Some("bad name"), FLAGS).unwrap_err();
        assert!(e.to_string().contains("--expect-client-cert-header"), "{e}");
    }
}
