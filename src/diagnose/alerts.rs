//! What each TLS alert usually means when a client certificate is at stake (the catalogue's
//! table): rules quote [`alert_usual_meaning`] in evidence and classify an alert about a
//! certificate with [`cert_verdict`]. Both match every [`AlertDescription`]. Names:
//! [`alert_name`].

use crate::facts::AlertDescription;

/// Alert names come from the one table in `facts`.
pub use crate::wire::alert_name;

/// What an alert usually means in a client-certificate failure, naming the stack that usually
/// sends it (the catalogue's table); `None` for alerts with no such usual meaning.
pub fn alert_usual_meaning(d: AlertDescription) -> Option<&'static str> {
    use AlertDescription as D;
    Some(match d {
        D::UnexpectedMessage => "a message the peer did not expect, e.g. a post-handshake CertificateRequest to a client that did not offer post_handshake_auth",
        D::HandshakeFailure => "TLS 1.2 OpenSSL/BoringSSL server: required certificate missing",
        D::BadCertificate => "Go server (missing on TLS 1.2, or any verification failure); Java server (missing); OpenSSL (not yet valid, rejected)",
        D::UnsupportedCertificate => "OpenSSL: wrong purpose/EKU",
        D::CertificateRevoked => "revoked",
        D::CertificateExpired => "expired certificate, or the server's CRL expired",
        D::CertificateUnknown => "Java server: any trust rejection; Envoy: pin mismatch",
        D::UnknownCa => "OpenSSL: issuer missing or untrusted, self-signed, chain too long",
        D::AccessDenied => "valid certificate refused by policy",
        D::DecryptError => "CertificateVerify signature failed (wrong key)",
        D::ProtocolVersion => "no TLS version in common",
        D::NoRenegotiation => "a peer declined renegotiation",
        D::CertificateRequired => "TLS 1.3: certificate wanted, none given",
        D::CloseNotify
        | D::BadRecordMac
        | D::DecryptionFailed
        | D::RecordOverflow
        | D::DecompressionFailure
        | D::NoCertificate
        | D::IllegalParameter
        | D::DecodeError
        | D::ExportRestriction
        | D::InsufficientSecurity
        | D::InternalError
        | D::InappropriateFallback
        | D::UserCanceled
        | D::MissingExtension
        | D::UnsupportedExtension
        | D::CertificateUnobtainable
        | D::UnrecognizedName
        | D::BadCertificateStatusResponse
        | D::BadCertificateHashValue
        | D::UnknownPskIdentity
        | D::NoApplicationProtocol
        | D::EchRequired
        | D::Unknown(_) => return None,
    })
}

/// What a server's alert says about a certificate it was sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CertVerdict {
    /// "Not trusted / invalid": bad_certificate (Go, OpenSSL), certificate_unknown (Java),
    /// unknown_ca (OpenSSL).
    Untrusted,
    /// unsupported_certificate: the wrong purpose (OpenSSL).
    WrongPurpose,
    /// certificate_revoked.
    Revoked,
    /// certificate_expired.
    Expired,
    /// access_denied: a valid certificate refused by policy.
    RefusedByPolicy,
    /// decrypt_error: the CertificateVerify signature failed.
    BadSignature,
    /// Not an alert by which a certificate is refused.
    NotACertificateRefusal,
}

impl CertVerdict {
    /// Whether the alert refuses a certificate at all.
    pub fn refuses(self) -> bool {
        self != CertVerdict::NotACertificateRefusal
    }
}

/// What alert `d` says about a certificate it answers.
pub fn cert_verdict(d: AlertDescription) -> CertVerdict {
    use AlertDescription as D;
    match d {
        D::BadCertificate | D::CertificateUnknown | D::UnknownCa => CertVerdict::Untrusted,
        D::UnsupportedCertificate => CertVerdict::WrongPurpose,
        D::CertificateRevoked => CertVerdict::Revoked,
        D::CertificateExpired => CertVerdict::Expired,
        D::AccessDenied => CertVerdict::RefusedByPolicy,
        D::DecryptError => CertVerdict::BadSignature,
        D::CloseNotify
        | D::UnexpectedMessage
        | D::BadRecordMac
        | D::DecryptionFailed
        | D::RecordOverflow
        | D::DecompressionFailure
        | D::HandshakeFailure
        | D::NoCertificate
        | D::IllegalParameter
        | D::DecodeError
        | D::ExportRestriction
        | D::ProtocolVersion
        | D::InsufficientSecurity
        | D::InternalError
        | D::InappropriateFallback
        | D::UserCanceled
        | D::NoRenegotiation
        | D::MissingExtension
        | D::UnsupportedExtension
        | D::CertificateUnobtainable
        | D::UnrecognizedName
        | D::BadCertificateStatusResponse
        | D::BadCertificateHashValue
        | D::UnknownPskIdentity
        | D::CertificateRequired
        | D::NoApplicationProtocol
        | D::EchRequired
        | D::Unknown(_) => CertVerdict::NotACertificateRefusal,
    }
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
            let d = AlertDescription::from_code(code);
            assert!(alert_usual_meaning(d).is_some(), "{code}");
        }
        assert!(alert_usual_meaning(AlertDescription::CloseNotify).is_none());
        assert!(alert_usual_meaning(AlertDescription::from_code(200)).is_none());
    }

    #[test]
    fn the_refusals_are_the_catalogue_codes() {
        let refusing: Vec<u8> = (0..=255u8)
            .filter(|c| cert_verdict(AlertDescription::from_code(*c)).refuses())
            .collect();
        assert_eq!(refusing, [42, 43, 44, 45, 46, 48, 49, 51]);
        let untrusted: Vec<u8> = (0..=255u8)
            .filter(|c| cert_verdict(AlertDescription::from_code(*c)) == CertVerdict::Untrusted)
            .collect();
        assert_eq!(untrusted, [42, 46, 48]);
    }
}
