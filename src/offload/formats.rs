//! The identity headers of real TLS offloaders, each as its product writes them.

use super::encode::{self, UrlStyle};
use super::fields::{CertFields, Verify};
use super::template::{HeaderTemplate, TemplateError};
use http::header::HeaderName;

/// An offloader's header format (`--forward-client-cert`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Format {
    /// RFC 9440: `Client-Cert` (leaf) and `Client-Cert-Chain` (the rest), RFC 8941 byte
    /// sequences of the DER.
    Rfc9440,
    /// Envoy `x-forwarded-client-cert` with `forward_client_cert_details: SANITIZE_SET` and
    /// every `set_current_client_cert_details` field: `Hash`, `Cert`, `Chain`, `Subject`, `URI`,
    /// `DNS`.
    Xfcc,
    /// nginx as commonly configured: `X-SSL-Client-Cert $ssl_client_escaped_cert`,
    /// `X-SSL-Client-Verify $ssl_client_verify`, `X-SSL-Client-S-DN $ssl_client_s_dn`,
    /// `X-SSL-Client-I-DN $ssl_client_i_dn`.
    Nginx,
    /// AWS Application Load Balancer, mutual TLS in verify mode: `X-Amzn-Mtls-Clientcert-Serial-Number`,
    /// `-Issuer`, `-Subject`, `-Validity`, `-Leaf`.
    AwsAlb,
    /// AWS Application Load Balancer, mutual TLS in passthrough mode: `X-Amzn-Mtls-Clientcert`,
    /// the whole presented chain.
    AwsAlbPassthrough,
    /// Azure: `X-ARR-ClientCert`, the leaf's DER in base64, as App Service's front ends send it
    /// (and Application Gateway rewrite rules are set up to reproduce).
    AzureAppGw,
    /// `header:NAME=TEMPLATE`.
    Header(HeaderTemplate),
}

/// Why a `--forward-client-cert` value is not usable.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FormatError {
    /// Not a known format.
    #[error("unknown format {0:?}; use rfc9440, xfcc, nginx, aws-alb, aws-alb-passthrough, azure-appgw or header:NAME=TEMPLATE")]
    Unknown(String),
    /// A `header:` format with a bad template.
    #[error("{0}")]
    Template(#[from] TemplateError),
}

/// The `aws-alb` header names, both modes (stripped whichever mode is configured).
const AWS_NAMES: &[&str] = &[
    "x-amzn-mtls-clientcert",
    "x-amzn-mtls-clientcert-serial-number",
    "x-amzn-mtls-clientcert-issuer",
    "x-amzn-mtls-clientcert-subject",
    "x-amzn-mtls-clientcert-validity",
    "x-amzn-mtls-clientcert-leaf",
];

impl std::str::FromStr for Format {
    type Err = FormatError;

    fn from_str(s: &str) -> Result<Format, FormatError> {
        if let Some(spec) = s.strip_prefix("header:") {
            return Ok(Format::Header(HeaderTemplate::parse(spec)?));
        }
        Ok(match s {
            "rfc9440" => Format::Rfc9440,
            "xfcc" => Format::Xfcc,
            "nginx" => Format::Nginx,
            "aws-alb" => Format::AwsAlb,
            "aws-alb-passthrough" => Format::AwsAlbPassthrough,
            "azure-appgw" => Format::AzureAppGw,
            other => return Err(FormatError::Unknown(other.to_string())),
        })
    }
}

impl Format {
    /// Every header name this format may set: the names stripped from client requests.
    pub fn names(&self) -> Vec<HeaderName> {
        let names: Vec<&str> = match self {
            Format::Rfc9440 => vec!["client-cert", "client-cert-chain"],
            Format::Xfcc => vec!["x-forwarded-client-cert"],
            Format::Nginx => vec![
                "x-ssl-client-cert",
                "x-ssl-client-verify",
                "x-ssl-client-s-dn",
                "x-ssl-client-i-dn",
            ],
            Format::AwsAlb | Format::AwsAlbPassthrough => AWS_NAMES.to_vec(),
            Format::AzureAppGw => vec!["x-arr-clientcert"],
            Format::Header(t) => return vec![t.name.clone()],
        };
        names.into_iter().map(HeaderName::from_static).collect()
    }

    /// The headers for a client that presented `c`, in the product's order.
    pub fn headers(&self, c: &CertFields, verify: &Verify) -> Vec<(HeaderName, String)> {
        let h = |n: &'static str, v: String| (HeaderName::from_static(n), v);
        match self {
            Format::Rfc9440 => {
                let mut out = vec![h("client-cert", encode::sf_binary(c.leaf()))];
                if c.chain.len() > 1 {
                    let rest: Vec<String> =
                        c.chain[1..].iter().map(|d| encode::sf_binary(d)).collect();
                    out.push(h("client-cert-chain", rest.join(", ")));
                }
                out
            }
            Format::Xfcc => vec![h("x-forwarded-client-cert", xfcc(c))],
            Format::Nginx => vec![
                h("x-ssl-client-cert", c.leaf_pem_encoded(UrlStyle::Nginx)),
                h("x-ssl-client-verify", verify.as_text()),
                h("x-ssl-client-s-dn", c.subject.clone()),
                h("x-ssl-client-i-dn", c.issuer.clone()),
            ],
            Format::AwsAlb => vec![
                h("x-amzn-mtls-clientcert-serial-number", c.serial.clone()),
                h("x-amzn-mtls-clientcert-issuer", c.issuer.clone()),
                h("x-amzn-mtls-clientcert-subject", c.subject.clone()),
                h(
                    "x-amzn-mtls-clientcert-validity",
                    format!(
                        "NotBefore={};NotAfter={}",
                        CertFields::iso(c.not_before),
                        CertFields::iso(c.not_after)
                    ),
                ),
                h(
                    "x-amzn-mtls-clientcert-leaf",
                    c.leaf_pem_encoded(UrlStyle::Aws),
                ),
            ],
            Format::AwsAlbPassthrough => vec![h(
                "x-amzn-mtls-clientcert",
                c.chain_pem_encoded(UrlStyle::Aws),
            )],
            Format::AzureAppGw => vec![h("x-arr-clientcert", encode::der_b64(c.leaf()))],
            Format::Header(t) => vec![(t.name.clone(), t.render(c, verify))],
        }
    }

    /// The headers for a client without a certificate, with `--forward-client-cert-verify`:
    /// only nginx says so in its own header (`X-SSL-Client-Verify: NONE`).
    pub fn headers_without_cert(&self) -> Vec<(HeaderName, String)> {
        match self {
            Format::Nginx => vec![(
                HeaderName::from_static("x-ssl-client-verify"),
                Verify::None.as_text(),
            )],
            _ => Vec::new(),
        }
    }
}

/// Envoy's XFCC element: `Hash=…;Cert="…";Chain="…";Subject="…";URI=…;DNS=…`, built as
/// `ConnectionManagerUtility::mutateXfccRequestHeader` does (`URI=` stays when empty, one
/// `URI=`/`DNS=` pair per name, `DNS` left out when there is none).
fn xfcc(c: &CertFields) -> String {
    let mut parts = vec![
        format!("Hash={}", c.sha256),
        format!("Cert=\"{}\"", c.leaf_pem_encoded(UrlStyle::Envoy)),
        format!("Chain=\"{}\"", c.chain_pem_encoded(UrlStyle::Envoy)),
        format!("Subject=\"{}\"", c.subject),
    ];
    if c.uris.is_empty() {
        parts.push("URI=".into());
    }
    parts.extend(c.uris.iter().map(|u| format!("URI={u}")));
    parts.extend(c.dns.iter().map(|d| format!("DNS={d}")));
    parts.join(";")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_parse_by_name() {
        assert_eq!("rfc9440".parse::<Format>(), Ok(Format::Rfc9440));
        assert_eq!("aws-alb".parse::<Format>(), Ok(Format::AwsAlb));
        let e = "envoy".parse::<Format>().unwrap_err();
        assert!(e.to_string().contains("xfcc"), "{e}");
        let h = "header:X-Client-Cert={der_b64}".parse::<Format>().unwrap();
        assert_eq!(h.names()[0].as_str(), "x-client-cert");
        assert_eq!(Format::AwsAlb.names().len(), 6);
    }
}
