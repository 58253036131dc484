//! TLS alerts: [`Alert`] and its [`AlertDescription`] (RFC 8446 §6, RFC 5246 §7.2, RFC 6066,
//! RFC 7507, RFC 8701 and the IANA registry), level and source.
//!
//! The recording keeps its fields: `description` (the snake_case RFC name) and `code` (the
//! number). In memory the description is one enum, so rules and renderers match on it.

use serde::{Deserialize, Serialize};

/// The code recorded for an alert whose description is encrypted (unassigned in the registry).
pub const ENCRYPTED_ALERT_CODE: u8 = 255;

/// An alert description. Codes the registry does not name are kept in `Unknown`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AlertDescription {
    /// 0: RFC 8446 §6.1: the sender will send no more messages.
    CloseNotify,
    /// 10: A message arrived out of place.
    UnexpectedMessage,
    /// 20: A record failed authentication.
    BadRecordMac,
    /// 21: RFC 5246: decryption failed (reserved since TLS 1.2).
    DecryptionFailed,
    /// 22: A record longer than allowed.
    RecordOverflow,
    /// 30: RFC 5246: decompression failed (reserved in TLS 1.3).
    DecompressionFailure,
    /// 40: No acceptable set of parameters.
    HandshakeFailure,
    /// 41: SSL 3.0: no certificate (reserved).
    NoCertificate,
    /// 42: A certificate was corrupt or its signatures did not verify.
    BadCertificate,
    /// 43: A certificate of an unsupported type.
    UnsupportedCertificate,
    /// 44: A certificate was revoked by its signer.
    CertificateRevoked,
    /// 45: A certificate has expired or is not yet valid.
    CertificateExpired,
    /// 46: Another certificate problem made it unacceptable.
    CertificateUnknown,
    /// 47: A field was out of range or inconsistent.
    IllegalParameter,
    /// 48: A chain that does not lead to a trusted anchor.
    UnknownCa,
    /// 49: A valid certificate, but access was refused.
    AccessDenied,
    /// 50: A message could not be decoded.
    DecodeError,
    /// 51: A handshake signature or Finished did not verify.
    DecryptError,
    /// 60: RFC 2246: export restriction (reserved).
    ExportRestriction,
    /// 70: A protocol version the peer does not support.
    ProtocolVersion,
    /// 71: Parameters weaker than the peer requires.
    InsufficientSecurity,
    /// 80: An error unrelated to the peer.
    InternalError,
    /// 86: RFC 7507: an inappropriate version fallback.
    InappropriateFallback,
    /// 90: The user cancelled the handshake.
    UserCanceled,
    /// 100: RFC 5246: a renegotiation was refused.
    NoRenegotiation,
    /// 109: A mandatory extension was missing.
    MissingExtension,
    /// 110: An extension the sender did not offer.
    UnsupportedExtension,
    /// 111: RFC 6066: a certificate URL could not be fetched.
    CertificateUnobtainable,
    /// 112: No server for the name in the SNI.
    UnrecognizedName,
    /// 113: An invalid OCSP response.
    BadCertificateStatusResponse,
    /// 114: RFC 6066: a certificate hash mismatch.
    BadCertificateHashValue,
    /// 115: No acceptable PSK identity.
    UnknownPskIdentity,
    /// 116: A certificate was required and none was sent.
    CertificateRequired,
    /// 120: No ALPN protocol in common.
    NoApplicationProtocol,
    /// 121: Encrypted Client Hello was required.
    EchRequired,
    /// A code the registry does not name (`unknown_<n>`); never a named code.
    Unknown(u8),
}

impl AlertDescription {
    /// The description of alert code `code`.
    pub fn from_code(code: u8) -> AlertDescription {
        match code {
            0 => AlertDescription::CloseNotify,
            10 => AlertDescription::UnexpectedMessage,
            20 => AlertDescription::BadRecordMac,
            21 => AlertDescription::DecryptionFailed,
            22 => AlertDescription::RecordOverflow,
            30 => AlertDescription::DecompressionFailure,
            40 => AlertDescription::HandshakeFailure,
            41 => AlertDescription::NoCertificate,
            42 => AlertDescription::BadCertificate,
            43 => AlertDescription::UnsupportedCertificate,
            44 => AlertDescription::CertificateRevoked,
            45 => AlertDescription::CertificateExpired,
            46 => AlertDescription::CertificateUnknown,
            47 => AlertDescription::IllegalParameter,
            48 => AlertDescription::UnknownCa,
            49 => AlertDescription::AccessDenied,
            50 => AlertDescription::DecodeError,
            51 => AlertDescription::DecryptError,
            60 => AlertDescription::ExportRestriction,
            70 => AlertDescription::ProtocolVersion,
            71 => AlertDescription::InsufficientSecurity,
            80 => AlertDescription::InternalError,
            86 => AlertDescription::InappropriateFallback,
            90 => AlertDescription::UserCanceled,
            100 => AlertDescription::NoRenegotiation,
            109 => AlertDescription::MissingExtension,
            110 => AlertDescription::UnsupportedExtension,
            111 => AlertDescription::CertificateUnobtainable,
            112 => AlertDescription::UnrecognizedName,
            113 => AlertDescription::BadCertificateStatusResponse,
            114 => AlertDescription::BadCertificateHashValue,
            115 => AlertDescription::UnknownPskIdentity,
            116 => AlertDescription::CertificateRequired,
            120 => AlertDescription::NoApplicationProtocol,
            121 => AlertDescription::EchRequired,
            other => AlertDescription::Unknown(other),
        }
    }

    /// The numeric code.
    pub fn code(self) -> u8 {
        match self {
            AlertDescription::CloseNotify => 0,
            AlertDescription::UnexpectedMessage => 10,
            AlertDescription::BadRecordMac => 20,
            AlertDescription::DecryptionFailed => 21,
            AlertDescription::RecordOverflow => 22,
            AlertDescription::DecompressionFailure => 30,
            AlertDescription::HandshakeFailure => 40,
            AlertDescription::NoCertificate => 41,
            AlertDescription::BadCertificate => 42,
            AlertDescription::UnsupportedCertificate => 43,
            AlertDescription::CertificateRevoked => 44,
            AlertDescription::CertificateExpired => 45,
            AlertDescription::CertificateUnknown => 46,
            AlertDescription::IllegalParameter => 47,
            AlertDescription::UnknownCa => 48,
            AlertDescription::AccessDenied => 49,
            AlertDescription::DecodeError => 50,
            AlertDescription::DecryptError => 51,
            AlertDescription::ExportRestriction => 60,
            AlertDescription::ProtocolVersion => 70,
            AlertDescription::InsufficientSecurity => 71,
            AlertDescription::InternalError => 80,
            AlertDescription::InappropriateFallback => 86,
            AlertDescription::UserCanceled => 90,
            AlertDescription::NoRenegotiation => 100,
            AlertDescription::MissingExtension => 109,
            AlertDescription::UnsupportedExtension => 110,
            AlertDescription::CertificateUnobtainable => 111,
            AlertDescription::UnrecognizedName => 112,
            AlertDescription::BadCertificateStatusResponse => 113,
            AlertDescription::BadCertificateHashValue => 114,
            AlertDescription::UnknownPskIdentity => 115,
            AlertDescription::CertificateRequired => 116,
            AlertDescription::NoApplicationProtocol => 120,
            AlertDescription::EchRequired => 121,
            AlertDescription::Unknown(code) => code,
        }
    }

    /// The RFC name, snake_case (the contract's spelling); `unknown_<n>` for unassigned codes.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertDescription::CloseNotify => "close_notify",
            AlertDescription::UnexpectedMessage => "unexpected_message",
            AlertDescription::BadRecordMac => "bad_record_mac",
            AlertDescription::DecryptionFailed => "decryption_failed",
            AlertDescription::RecordOverflow => "record_overflow",
            AlertDescription::DecompressionFailure => "decompression_failure",
            AlertDescription::HandshakeFailure => "handshake_failure",
            AlertDescription::NoCertificate => "no_certificate",
            AlertDescription::BadCertificate => "bad_certificate",
            AlertDescription::UnsupportedCertificate => "unsupported_certificate",
            AlertDescription::CertificateRevoked => "certificate_revoked",
            AlertDescription::CertificateExpired => "certificate_expired",
            AlertDescription::CertificateUnknown => "certificate_unknown",
            AlertDescription::IllegalParameter => "illegal_parameter",
            AlertDescription::UnknownCa => "unknown_ca",
            AlertDescription::AccessDenied => "access_denied",
            AlertDescription::DecodeError => "decode_error",
            AlertDescription::DecryptError => "decrypt_error",
            AlertDescription::ExportRestriction => "export_restriction",
            AlertDescription::ProtocolVersion => "protocol_version",
            AlertDescription::InsufficientSecurity => "insufficient_security",
            AlertDescription::InternalError => "internal_error",
            AlertDescription::InappropriateFallback => "inappropriate_fallback",
            AlertDescription::UserCanceled => "user_canceled",
            AlertDescription::NoRenegotiation => "no_renegotiation",
            AlertDescription::MissingExtension => "missing_extension",
            AlertDescription::UnsupportedExtension => "unsupported_extension",
            AlertDescription::CertificateUnobtainable => "certificate_unobtainable",
            AlertDescription::UnrecognizedName => "unrecognized_name",
            AlertDescription::BadCertificateStatusResponse => "bad_certificate_status_response",
            AlertDescription::BadCertificateHashValue => "bad_certificate_hash_value",
            AlertDescription::UnknownPskIdentity => "unknown_psk_identity",
            AlertDescription::CertificateRequired => "certificate_required",
            AlertDescription::NoApplicationProtocol => "no_application_protocol",
            AlertDescription::EchRequired => "ech_required",
            AlertDescription::Unknown(code) => unknown_name(code),
        }
    }
}

impl From<rustls::AlertDescription> for AlertDescription {
    fn from(d: rustls::AlertDescription) -> AlertDescription {
        AlertDescription::from_code(u8::from(d))
    }
}

/// `unknown_<n>` as a `&'static str` without allocating per call: the 256 names are built once.
fn unknown_name(code: u8) -> &'static str {
    static NAMES: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    let names = NAMES.get_or_init(|| (0..=255u8).map(|n| format!("unknown_{n}")).collect());
    names
        .get(usize::from(code))
        .map(String::as_str)
        .unwrap_or("unknown")
}

/// Direction of an alert, seen from mtlscope.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// mtlscope sent it (on observe: the client sent it).
    Sent,
    /// mtlscope received it (on observe: the server sent it).
    Received,
}

/// Alert level.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum AlertLevel {
    /// Level 1.
    Warning,
    /// Level 2.
    Fatal,
    /// Unknown: the alert was encrypted or inferred from an error.
    Unknown,
}

/// One TLS alert.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(from = "AlertRecord")]
pub struct Alert {
    /// Who sent it.
    pub direction: Direction,
    /// Warning or fatal.
    pub level: AlertLevel,
    /// What it says (recorded as `description`, its RFC name, and `code`, its number). An
    /// encrypted alert whose description could not be read is `Unknown(255)`.
    pub description: AlertDescription,
    /// When, ms from connection start.
    pub at_ms: f64,
    /// How it is known.
    pub source: AlertSource,
    /// Read from an encrypted record: the level is unknown and the description is either
    /// unreadable (recorded as `encrypted`) or presumed from context (`close_notify` when it
    /// follows application data).
    pub encrypted: bool,
}

impl Alert {
    /// The description unreadable because encrypted.
    pub fn unreadable(&self) -> bool {
        self.encrypted && self.description == AlertDescription::Unknown(ENCRYPTED_ALERT_CODE)
    }

    /// The description as recorded and shown: the RFC name, or `encrypted` when unreadable.
    pub fn name(&self) -> &'static str {
        if self.unreadable() {
            "encrypted"
        } else {
            self.description.as_str()
        }
    }

    /// The numeric code, as recorded.
    pub fn code(&self) -> u8 {
        self.description.code()
    }
}

/// The recorded form of an [`Alert`], read: the description is the code's name, so the code
/// is what is read back.
#[derive(Deserialize)]
struct AlertRecord {
    direction: Direction,
    level: AlertLevel,
    code: u8,
    at_ms: f64,
    source: AlertSource,
    #[serde(default)]
    encrypted: bool,
}

impl From<AlertRecord> for Alert {
    fn from(r: AlertRecord) -> Alert {
        Alert {
            direction: r.direction,
            level: r.level,
            description: AlertDescription::from_code(r.code),
            at_ms: r.at_ms,
            source: r.source,
            encrypted: r.encrypted,
        }
    }
}

/// The recorded form of an [`Alert`], written.
#[derive(Serialize)]
struct AlertRecordRef {
    direction: Direction,
    level: AlertLevel,
    description: &'static str,
    code: u8,
    at_ms: f64,
    source: AlertSource,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    encrypted: bool,
}

impl Serialize for Alert {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        AlertRecordRef {
            direction: self.direction,
            level: self.level,
            description: self.name(),
            code: self.code(),
            at_ms: self.at_ms,
            source: self.source,
            encrypted: self.encrypted,
        }
        .serialize(s)
    }
}

/// How an alert is known.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum AlertSource {
    /// Read from the bytes on the wire.
    Wire,
    /// Reported by the TLS library.
    Tls,
    /// Inferred from an error (the library does not report alerts it sends).
    Inferred,
    /// Sent by a `--fault alert=NAME`.
    Fault,
    /// Sent by mtlscope refusing the client (a server name it does not answer for).
    Refusal,
}

impl AlertSource {
    /// The recorded spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertSource::Wire => "wire",
            AlertSource::Tls => "tls",
            AlertSource::Inferred => "inferred",
            AlertSource::Fault => "fault",
            AlertSource::Refusal => "refusal",
        }
    }
}

impl std::fmt::Display for AlertSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_keeps_its_number_and_names_follow_the_rfcs() {
        for code in 0..=255u8 {
            assert_eq!(AlertDescription::from_code(code).code(), code);
        }
        assert_eq!(AlertDescription::from_code(42).as_str(), "bad_certificate");
        assert_eq!(
            AlertDescription::from_code(116),
            AlertDescription::CertificateRequired
        );
        assert_eq!(AlertDescription::from_code(1).as_str(), "unknown_1");
        assert_eq!(AlertDescription::from_code(255).as_str(), "unknown_255");
    }

    #[test]
    fn the_recorded_fields_are_kept() {
        for json in [
            r#"{"direction":"received","level":"fatal","description":"certificate_required","code":116,"at_ms":3.5,"source":"tls"}"#,
            r#"{"direction":"sent","level":"unknown","description":"encrypted","code":255,"at_ms":1.0,"source":"wire","encrypted":true}"#,
            r#"{"direction":"sent","level":"unknown","description":"close_notify","code":0,"at_ms":1.0,"source":"wire","encrypted":true}"#,
            r#"{"direction":"sent","level":"fatal","description":"unknown_7","code":7,"at_ms":1.0,"source":"fault"}"#,
        ] {
            let a: Alert = serde_json::from_str(json).unwrap();
            assert_eq!(serde_json::to_string(&a).unwrap(), json);
        }
    }
}
