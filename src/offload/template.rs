//! `header:NAME=TEMPLATE`: an identity header of any name, its value built from `{field}`s of
//! the client certificate (for offloaders whose header is configured freely: F5 iRules,
//! HAProxy `ssl_c_*`, Application Gateway rewrite rules, WebSEAL junction attributes).

use super::encode::{self, UrlStyle};
use super::fields::{CertFields, Verify};
use http::header::HeaderName;

/// The fields a template may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    /// The leaf's PEM on one line (line breaks removed).
    Pem,
    /// The leaf's PEM, URL-encoded as nginx's `$ssl_client_escaped_cert`.
    PemUrlencoded,
    /// Every presented certificate's PEM, URL-encoded as nginx does.
    ChainPemUrlencoded,
    /// The leaf's DER, standard base64.
    DerB64,
    /// Subject DN (RFC 2253, as OpenSSL prints it).
    Subject,
    /// Issuer DN (RFC 2253).
    Issuer,
    /// Serial number, uppercase hex.
    Serial,
    /// SHA-256 fingerprint, lowercase hex.
    Sha256,
    /// SHA-1 fingerprint, lowercase hex.
    Sha1,
    /// `SUCCESS` or `FAILED:reason`.
    Verify,
    /// notBefore, ISO 8601.
    NotBefore,
    /// notAfter, ISO 8601.
    NotAfter,
}

/// Every field with its name in braces.
const FIELDS: &[(&str, Field)] = &[
    ("pem", Field::Pem),
    ("pem_urlencoded", Field::PemUrlencoded),
    ("chain_pem_urlencoded", Field::ChainPemUrlencoded),
    ("der_b64", Field::DerB64),
    ("subject", Field::Subject),
    ("issuer", Field::Issuer),
    ("serial", Field::Serial),
    ("sha256", Field::Sha256),
    ("sha1", Field::Sha1),
    ("verify", Field::Verify),
    ("not_before", Field::NotBefore),
    ("not_after", Field::NotAfter),
];

/// One piece of a template.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    /// Literal text.
    Text(String),
    /// A certificate field.
    Field(Field),
}

/// A parsed `header:NAME=TEMPLATE`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeaderTemplate {
    /// The header's name.
    pub name: HeaderName,
    /// The value's pieces.
    parts: Vec<Part>,
}

/// Why a `header:` format is not usable.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TemplateError {
    /// No `=` between name and template.
    #[error("expected header:NAME=TEMPLATE, e.g. header:X-Client-Cert={{der_b64}}")]
    Shape,
    /// The name is not a valid header name.
    #[error("{0:?} is not a valid header name")]
    BadName(String),
    /// A `{` without its `}`.
    #[error("unclosed {{ in template {0:?}")]
    Unclosed(String),
    /// A field that does not exist.
    #[error("unknown field {{{field}}}; known: {known}")]
    UnknownField {
        /// The name used.
        field: String,
        /// The fields there are.
        known: String,
    },
    /// Literal text a header value cannot carry (control characters).
    #[error("template {0:?} has characters a header value cannot carry")]
    BadText(String),
}

impl HeaderTemplate {
    /// Parse `NAME=TEMPLATE` (the part after `header:`).
    pub fn parse(spec: &str) -> Result<HeaderTemplate, TemplateError> {
        let (name, template) = spec.split_once('=').ok_or(TemplateError::Shape)?;
        let name = HeaderName::from_bytes(name.trim().as_bytes())
            .map_err(|_| TemplateError::BadName(name.to_string()))?;
        if template.bytes().any(|b| b.is_ascii_control()) {
            return Err(TemplateError::BadText(template.to_string()));
        }
        let mut parts = Vec::new();
        let mut rest = template;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                parts.push(Part::Text(rest[..open].to_string()));
            }
            let close = rest[open..]
                .find('}')
                .ok_or_else(|| TemplateError::Unclosed(template.to_string()))?;
            let field = &rest[open + 1..open + close];
            let f = FIELDS
                .iter()
                .find(|(n, _)| *n == field)
                .map(|(_, f)| *f)
                .ok_or_else(|| TemplateError::UnknownField {
                    field: field.to_string(),
                    known: FIELDS
                        .iter()
                        .map(|(n, _)| format!("{{{n}}}"))
                        .collect::<Vec<_>>()
                        .join(", "),
                })?;
            parts.push(Part::Field(f));
            rest = &rest[open + close + 1..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_string()));
        }
        Ok(HeaderTemplate { name, parts })
    }

    /// The value for this certificate.
    pub fn render(&self, c: &CertFields, verify: &Verify) -> String {
        self.parts
            .iter()
            .map(|p| match p {
                Part::Text(t) => t.clone(),
                Part::Field(f) => field(*f, c, verify),
            })
            .collect()
    }
}

fn field(f: Field, c: &CertFields, verify: &Verify) -> String {
    match f {
        Field::Pem => c.pem_one_line(),
        Field::PemUrlencoded => c.leaf_pem_encoded(UrlStyle::Nginx),
        Field::ChainPemUrlencoded => c.chain_pem_encoded(UrlStyle::Nginx),
        Field::DerB64 => encode::der_b64(c.leaf()),
        Field::Subject => c.subject.clone(),
        Field::Issuer => c.issuer.clone(),
        Field::Serial => c.serial.clone(),
        Field::Sha256 => c.sha256.clone(),
        Field::Sha1 => c.sha1.clone(),
        Field::Verify => verify.as_text(),
        Field::NotBefore => CertFields::iso(c.not_before),
        Field::NotAfter => CertFields::iso(c.not_after),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_parse_and_refuse_clearly() {
        let t = HeaderTemplate::parse("X-Cert=sha={sha256};s={subject}").unwrap();
        assert_eq!(t.name.as_str(), "x-cert");
        assert_eq!(t.parts.len(), 4);
        assert_eq!(HeaderTemplate::parse("X-Cert"), Err(TemplateError::Shape));
        assert!(matches!(
            HeaderTemplate::parse("X Cert={pem}"),
            Err(TemplateError::BadName(_))
        ));
        assert!(matches!(
            HeaderTemplate::parse("X-Cert={pem"),
            Err(TemplateError::Unclosed(_))
        ));
        let e = HeaderTemplate::parse("X-Cert={fingerprint}").unwrap_err();
        assert!(e.to_string().contains("{fingerprint}"), "{e}");
        assert!(e.to_string().contains("{sha256}"), "{e}");
    }
}
