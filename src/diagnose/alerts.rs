//! What each TLS alert usually means when a client certificate is at stake (the catalogue's
//! table); rules quote [`alert_usual_meaning`] in evidence. Names: [`alert_name`].

/// Alert names come from the wire tap's table, the one place they are spelled.
pub use crate::wire::alert_name;

/// What an alert usually means in a client-certificate failure, naming the stack that usually
/// sends it (the catalogue's table); `None` for alerts with no such usual meaning.
pub fn alert_usual_meaning(code: u8) -> Option<&'static str> {
    Some(match code {
        10 => "a message the peer did not expect, e.g. a post-handshake CertificateRequest to a client that did not offer post_handshake_auth",
        40 => "TLS 1.2 OpenSSL/BoringSSL server: required certificate missing",
        42 => "Go server (missing on TLS 1.2, or any verification failure); Java server (missing); OpenSSL (not yet valid, rejected)",
        43 => "OpenSSL: wrong purpose/EKU",
        44 => "revoked",
        45 => "expired certificate, or the server's CRL expired",
        46 => "Java server: any trust rejection; Envoy: pin mismatch",
        48 => "OpenSSL: issuer missing or untrusted, self-signed, chain too long",
        49 => "valid certificate refused by policy",
        51 => "CertificateVerify signature failed (wrong key)",
        70 => "no TLS version in common",
        100 => "a peer declined renegotiation",
        116 => "TLS 1.3: certificate wanted, none given",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_rfcs() {
        assert_eq!(alert_name(40), "handshake_failure");
        assert_eq!(alert_name(42), "bad_certificate");
        assert_eq!(alert_name(48), "unknown_ca");
        assert_eq!(alert_name(100), "no_renegotiation");
        assert_eq!(alert_name(116), "certificate_required");
        assert_eq!(alert_name(0), "close_notify");
    }

    #[test]
    fn unknown_codes_are_named_by_number() {
        assert_eq!(alert_name(1), "unknown_1");
        assert_eq!(alert_name(117), "unknown_117");
        assert_eq!(alert_name(255), "unknown_255");
    }

    #[test]
    fn usual_meanings_cover_the_catalogue_table() {
        for code in [40, 42, 43, 44, 45, 46, 48, 49, 51, 100, 116] {
            assert!(alert_usual_meaning(code).is_some(), "{code}");
        }
        assert!(alert_usual_meaning(0).is_none());
        assert!(alert_usual_meaning(200).is_none());
    }
}
