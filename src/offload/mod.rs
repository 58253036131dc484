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

/// A header name as a WSGI/CGI backend sees it: lowercase, `_` and `-` alike (Python, PHP and
/// Rack fold both into one `HTTP_X_…` variable, so `X_SSL_Client_Verify` is the same header
/// to them as `X-SSL-Client-Verify`).
fn folded(name: &str) -> String {
    name.bytes()
        .map(|b| match b {
            b'_' => '-',
            b => char::from(b.to_ascii_lowercase()),
        })
        .collect()
}

/// What a listener playing the offloader does (from `--forward-client-cert` and friends).
#[derive(Clone, Debug, Default)]
pub struct OffloadSettings {
    /// The formats, each with the text it was named by.
    pub formats: Vec<(String, Format)>,
    /// `--forward-client-cert-verify`: also say why there is no identity (or that it failed).
    pub verify_headers: bool,
    /// `--expect-client-cert-header`: the header the backend reads the identity from.
    pub expected_header: Option<String>,
    /// `--forward-client-cert-unverified`: pass on a certificate mtlscope could not verify
    /// against `--client-ca` (always with its verify status).
    pub forward_unverified: bool,
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
            forward_unverified: false,
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
        // Envoy and ALB in verify mode never pass on a certificate they could not verify: a
        // self-signed `CN=admin` must not reach the backend as an identity unless asked for.
        let withheld = match (&verify, &fields) {
            (Verify::Failed(why), Some(_)) if !self.forward_unverified => Some(why.clone()),
            _ => None,
        };
        let forwarded = if withheld.is_some() {
            None
        } else {
            fields.as_ref()
        };
        let unverified = forwarded.is_some() && matches!(verify, Verify::Failed(_));
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
            match forwarded {
                Some(c) => push(format.headers(c, &verify)),
                None if self.verify_headers => push(format.headers_without_cert()),
                None => {}
            }
        }
        // A certificate passed on unverified always says so, in every format.
        if self.verify_headers || unverified {
            push(vec![(
                HeaderName::from_static(VERIFY_HEADER),
                verify.as_text(),
            )]);
        }
        // Every name any format may set, the expected header and mtlscope's own, whether or
        // not this connection adds them: a client must not send any of them in any spelling.
        let mut strip: Vec<String> = self
            .formats
            .iter()
            .flat_map(|(_, f)| f.names())
            .map(|n| folded(n.as_str()))
            .collect();
        strip.push(folded(VERIFY_HEADER));
        strip.extend(self.expected_header.as_deref().map(folded));
        strip.sort();
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
            withheld,
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
    /// Header names removed from every request first, [`folded`]: sorted.
    strip: Vec<String>,
    /// `--expect-client-cert-header`.
    expected_header: Option<String>,
    /// Why a presented certificate is not passed on.
    withheld: Option<String>,
}

impl ConnOffload {
    /// Strip the identity headers the client sent (in any spelling: case, `_` for `-`, every
    /// duplicate) and say what was done. The offloader's own headers are added later, by
    /// [`ConnOffload::add_to`], after hop-by-hop processing, so a client's `Connection` header
    /// cannot name them away.
    pub fn strip(&self, headers: &mut HeaderMap) -> ForwardedIdentity {
        let forged: Vec<HeaderName> = headers
            .keys()
            .filter(|n| self.strip.binary_search(&folded(n.as_str())).is_ok())
            .cloned()
            .collect();
        let mut stripped = Vec::new();
        for name in forged {
            if let http::header::Entry::Occupied(e) = headers.entry(name) {
                let (name, values) = e.remove_entry_mult();
                for v in values {
                    stripped.push(HeaderExcerpt::new(name.as_str(), v.as_bytes()));
                }
            }
        }
        ForwardedIdentity {
            formats: self.formats.clone(),
            client_cert: self.client_cert,
            headers: self.added.clone(),
            stripped,
            expected_header: self.expected_header.clone(),
            withheld: self.withheld.clone(),
        }
    }

    /// Add the offloader's headers to a request about to go upstream. Idempotent: a request
    /// sent again on a new leg gets them once.
    pub fn add_to(&self, headers: &mut HeaderMap) {
        for (n, _) in &self.add {
            headers.remove(n);
        }
        for (n, v) in &self.add {
            headers.append(n.clone(), v.clone());
        }
    }

    /// [`ConnOffload::strip`] then [`ConnOffload::add_to`], for callers with no hop-by-hop
    /// step between.
    pub fn apply(&self, headers: &mut HeaderMap) -> ForwardedIdentity {
        let f = self.strip(headers);
        self.add_to(headers);
        f
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

    #[test]
    fn forged_headers_go_in_every_spelling_with_the_expected_and_own_headers() {
        let s =
            OffloadSettings::parse(&["nginx".into()], false, Some("X-Client-Cert"), FLAGS).unwrap();
        let o = s.for_connection(&[], None);
        let mut h = HeaderMap::new();
        for (n, v) in [
            ("x_ssl_client_verify", "SUCCESS"),
            ("X_SSL_Client_S_DN", "CN=admin"),
            ("x-ssl-client-s-dn", "CN=admin2"),
            ("x_client_cert", "forged"),
            ("x-client-cert", "forged2"),
            ("x-client-cert-verify", "SUCCESS"),
            ("x-client-certx", "kept"),
        ] {
            h.append(
                HeaderName::from_bytes(n.as_bytes()).unwrap(),
                HeaderValue::from_static(v),
            );
        }
        let f = o.apply(&mut h);
        assert_eq!(h.len(), 1, "{h:?}");
        assert!(h.contains_key("x-client-certx"));
        assert_eq!(f.stripped.len(), 6, "{:?}", f.stripped);
    }

    #[test]
    fn an_unverified_certificate_is_withheld_unless_asked_for() {
        let cert = rcgen::generate_simple_self_signed(vec!["admin.example".into()]).unwrap();
        let chain = vec![cert.cert.der().to_vec()];
        let mut s = OffloadSettings::parse(&["xfcc".into()], false, None, FLAGS).unwrap();
        let untrusted = ChainVerdict {
            trusted: false,
            reason: Some("self-signed".into()),
            problem: None,
            enforced: false,
        };
        for verdict in [None, Some(&untrusted)] {
            let mut h = HeaderMap::new();
            let f = s.for_connection(&chain, verdict).apply(&mut h);
            assert!(h.is_empty(), "{h:?}");
            assert!(f.client_cert);
            assert!(f.withheld.is_some());
        }
        s.forward_unverified = true;
        let mut h = HeaderMap::new();
        let f = s.for_connection(&chain, Some(&untrusted)).apply(&mut h);
        assert!(h.contains_key("x-forwarded-client-cert"));
        assert_eq!(h.get(VERIFY_HEADER).unwrap(), "FAILED:self-signed");
        assert!(f.withheld.is_none());
    }

    #[test]
    fn adding_twice_adds_once() {
        let cert = rcgen::generate_simple_self_signed(vec!["a.example".into()]).unwrap();
        let chain = vec![cert.cert.der().to_vec()];
        let mut s = OffloadSettings::parse(&["rfc9440".into()], false, None, FLAGS).unwrap();
        s.forward_unverified = true;
        let o = s.for_connection(&chain, None);
        let mut h = HeaderMap::new();
        o.add_to(&mut h);
        o.add_to(&mut h);
        assert_eq!(h.get_all("client-cert").iter().count(), 1);
    }
}
