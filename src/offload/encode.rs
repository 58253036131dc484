//! The encodings offloaders put certificates in: PEM as OpenSSL writes it, the three
//! URL-encodings in use (Envoy's, nginx's, AWS's), RFC 8941 byte sequences, and distinguished
//! names as OpenSSL prints them with `XN_FLAG_RFC2253` (nginx `$ssl_client_s_dn`, Envoy
//! `Subject`, AWS `-Subject`/`-Issuer`).

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use x509_parser::der_parser::asn1_rs::{Any, Tag, ToDer};
use x509_parser::x509::X509Name;

/// PEM of one certificate as `PEM_write_bio_X509` writes it: 64-character lines, each ending
/// in `\n`.
pub fn pem(der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = String::with_capacity(b64.len() + b64.len() / 64 + 60);
    out.push_str("-----BEGIN CERTIFICATE-----\n");
    for line in b64.as_bytes().chunks(64) {
        // base64 output is ASCII.
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

/// Standard base64 of DER, with padding, on one line.
pub fn der_b64(der: &[u8]) -> String {
    STANDARD.encode(der)
}

/// An RFC 8941 byte sequence: `:base64:`.
pub fn sf_binary(der: &[u8]) -> String {
    format!(":{}:", STANDARD.encode(der))
}

/// Which characters a URL-encoding leaves alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UrlStyle {
    /// Envoy (`urlEncodedPemEncodedPeerCertificate`): only `\n`, space, `+`, `/` and `=` are
    /// escaped; everything else is left as is.
    Envoy,
    /// nginx `$ssl_client_escaped_cert` (`ngx_escape_uri`, URI-component table): everything
    /// but `A-Z a-z 0-9 - . _ ~` is escaped.
    Nginx,
    /// AWS ALB: RFC 3986 unreserved characters plus `+`, `=` and `/` are left alone, as its
    /// documentation says ("with +=/ as safe characters") and backends behind it report
    /// (literal `+` breaking form-decoders); the documentation's own example shows `%3D`.
    Aws,
}

/// Percent-encode `text` the way `style`'s product does (uppercase hex).
pub fn url_encode(text: &str, style: UrlStyle) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 8);
    for &b in text.as_bytes() {
        let unreserved = b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~');
        let keep = match style {
            UrlStyle::Envoy => !matches!(b, b'\n' | b' ' | b'+' | b'/' | b'='),
            UrlStyle::Nginx => unreserved,
            UrlStyle::Aws => unreserved || matches!(b, b'+' | b'=' | b'/'),
        };
        if keep {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// OpenSSL's short names for the attribute types seen in certificate names.
const SHORT_NAMES: &[(&str, &str)] = &[
    ("2.5.4.3", "CN"),
    ("2.5.4.4", "SN"),
    ("2.5.4.5", "serialNumber"),
    ("2.5.4.6", "C"),
    ("2.5.4.7", "L"),
    ("2.5.4.8", "ST"),
    ("2.5.4.9", "street"),
    ("2.5.4.10", "O"),
    ("2.5.4.11", "OU"),
    ("2.5.4.12", "title"),
    ("2.5.4.15", "businessCategory"),
    ("2.5.4.17", "postalCode"),
    ("2.5.4.42", "GN"),
    ("2.5.4.43", "initials"),
    ("2.5.4.44", "generationQualifier"),
    ("2.5.4.46", "dnQualifier"),
    ("2.5.4.65", "pseudonym"),
    ("2.5.4.97", "organizationIdentifier"),
    ("1.2.840.113549.1.9.1", "emailAddress"),
    ("0.9.2342.19200300.100.1.1", "UID"),
    ("0.9.2342.19200300.100.1.25", "DC"),
    ("1.3.6.1.4.1.311.60.2.1.1", "jurisdictionL"),
    ("1.3.6.1.4.1.311.60.2.1.2", "jurisdictionST"),
    ("1.3.6.1.4.1.311.60.2.1.3", "jurisdictionC"),
];

/// A name as `X509_NAME_print_ex(…, XN_FLAG_RFC2253)` prints it: last RDN first, `,` between
/// RDNs and `+` inside one, short names, RFC 2253 escapes, bytes above 0x7F as `\XX`, and
/// attribute types OpenSSL would not know dumped as `OID=#hex`.
pub fn rfc2253(name: &X509Name<'_>) -> String {
    let rdns: Vec<String> = name
        .iter_rdn()
        .map(|rdn| {
            rdn.iter()
                .map(|atv| {
                    let oid = atv.attr_type().to_id_string();
                    let short = SHORT_NAMES.iter().find(|(o, _)| *o == oid).map(|(_, s)| *s);
                    match (short, string_value(atv.attr_value())) {
                        (Some(short), Some(v)) => format!("{short}={}", escape_2253(&v)),
                        (Some(short), None) => format!("{short}=#{}", der_hex(atv.attr_value())),
                        (None, _) => format!("{oid}=#{}", der_hex(atv.attr_value())),
                    }
                })
                .collect::<Vec<_>>()
                .join("+")
        })
        .collect();
    rdns.into_iter().rev().collect::<Vec<_>>().join(",")
}

/// The text of a directory string, converted to UTF-8 as OpenSSL's `UTF8_CONVERT` does.
fn string_value(v: &Any<'_>) -> Option<String> {
    let data = v.data;
    match v.tag() {
        Tag::Utf8String
        | Tag::PrintableString
        | Tag::Ia5String
        | Tag::NumericString
        | Tag::VisibleString => std::str::from_utf8(data).ok().map(str::to_string),
        // T61 is taken as Latin-1, as OpenSSL does.
        Tag::T61String => Some(data.iter().map(|&b| b as char).collect()),
        Tag::BmpString => {
            let units: Vec<u16> = data
                .chunks(2)
                .filter(|c| c.len() == 2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect();
            String::from_utf16(&units).ok()
        }
        Tag::UniversalString => data
            .chunks(4)
            .map(|c| {
                let arr: [u8; 4] = c.try_into().ok()?;
                char::from_u32(u32::from_be_bytes(arr))
            })
            .collect(),
        _ => None,
    }
}

/// The whole DER of a value (tag, length, content) as uppercase hex, as OpenSSL's
/// `DUMP_DER` writes it.
fn der_hex(v: &Any<'_>) -> String {
    v.to_der_vec()
        .unwrap_or_default()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect()
}

/// RFC 2253 escapes as OpenSSL applies them: `,+"\<>;` always, `#` and space first, space
/// last, control characters and every byte above 0x7F as `\XX`.
fn escape_2253(v: &str) -> String {
    let bytes = v.as_bytes();
    let mut out = String::with_capacity(v.len());
    for (i, &b) in bytes.iter().enumerate() {
        let first = i == 0;
        let last = i + 1 == bytes.len();
        match b {
            b',' | b'+' | b'"' | b'\\' | b'<' | b'>' | b';' => {
                out.push('\\');
                out.push(b as char);
            }
            b'#' if first => out.push_str("\\#"),
            b' ' if first || last => out.push_str("\\ "),
            0..=0x1f | 0x7f..=0xff => out.push_str(&format!("\\{b:02X}")),
            _ => out.push(b as char),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_three_url_encodings_differ_where_their_products_do() {
        let text = "a b\n+/=~_.-!*";
        assert_eq!(url_encode(text, UrlStyle::Envoy), "a%20b%0A%2B%2F%3D~_.-!*");
        assert_eq!(
            url_encode(text, UrlStyle::Nginx),
            "a%20b%0A%2B%2F%3D~_.-%21%2A"
        );
        assert_eq!(url_encode(text, UrlStyle::Aws), "a%20b%0A+/=~_.-%21%2A");
    }

    #[test]
    fn pem_lines_are_64_characters() {
        let der = vec![0x30u8; 100];
        let p = pem(&der);
        let lines: Vec<&str> = p.lines().collect();
        assert_eq!(lines[0], "-----BEGIN CERTIFICATE-----");
        assert_eq!(lines[1].len(), 64);
        assert_eq!(lines.last(), Some(&"-----END CERTIFICATE-----"));
        assert!(p.ends_with("-----\n"));
        assert_eq!(sf_binary(&[1, 2, 3]), ":AQID:");
    }

    #[test]
    fn names_print_last_rdn_first_with_unknown_types_dumped() {
        use rcgen::{DistinguishedName, DnType};
        use x509_parser::prelude::FromDer;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CountryName, "DE");
        dn.push(DnType::OrganizationName, "a, b");
        dn.push(DnType::CustomDnType(vec![1, 2, 3, 4]), "abc");
        dn.push(DnType::CommonName, " x");
        let mut params = rcgen::CertificateParams::default();
        params.distinguished_name = dn;
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let (_, parsed) = x509_parser::prelude::X509Certificate::from_der(cert.der()).unwrap();
        assert_eq!(
            rfc2253(parsed.subject()),
            "CN=\\ x,1.2.3.4=#0C03616263,O=a\\, b,C=DE"
        );
    }

    #[test]
    fn rfc2253_escapes_as_openssl() {
        assert_eq!(escape_2253("a,b+c"), "a\\,b\\+c");
        assert_eq!(escape_2253("#x y "), "\\#x y\\ ");
        assert_eq!(escape_2253("é"), "\\C3\\A9");
    }
}
