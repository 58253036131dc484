//! The canonical TLS alert-name table (RFC 8446 §6, RFC 5246 §7.2, RFC 7507, RFC 8701 and the
//! IANA registry), in the contract's snake_case spelling. Every part of mtlscope that names an
//! alert uses [`alert_name`]; OpenSSL's own strings are not used because they lag (116 is
//! "unknown" in OpenSSL 3.0).

/// The RFC name of alert description `code`, snake_case; `unknown_<n>` for unassigned codes.
pub fn alert_name(code: u8) -> &'static str {
    match code {
        0 => "close_notify",
        10 => "unexpected_message",
        20 => "bad_record_mac",
        21 => "decryption_failed",
        22 => "record_overflow",
        30 => "decompression_failure",
        40 => "handshake_failure",
        41 => "no_certificate",
        42 => "bad_certificate",
        43 => "unsupported_certificate",
        44 => "certificate_revoked",
        45 => "certificate_expired",
        46 => "certificate_unknown",
        47 => "illegal_parameter",
        48 => "unknown_ca",
        49 => "access_denied",
        50 => "decode_error",
        51 => "decrypt_error",
        60 => "export_restriction",
        70 => "protocol_version",
        71 => "insufficient_security",
        80 => "internal_error",
        86 => "inappropriate_fallback",
        90 => "user_canceled",
        100 => "no_renegotiation",
        109 => "missing_extension",
        110 => "unsupported_extension",
        111 => "certificate_unobtainable",
        112 => "unrecognized_name",
        113 => "bad_certificate_status_response",
        114 => "bad_certificate_hash_value",
        115 => "unknown_psk_identity",
        116 => "certificate_required",
        120 => "no_application_protocol",
        121 => "ech_required",
        _ => unknown_name(code),
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

#[cfg(test)]
mod tests {
    use super::alert_name;

    #[test]
    fn names_follow_the_rfcs() {
        assert_eq!(alert_name(0), "close_notify");
        assert_eq!(alert_name(42), "bad_certificate");
        assert_eq!(alert_name(48), "unknown_ca");
        assert_eq!(alert_name(100), "no_renegotiation");
        assert_eq!(alert_name(116), "certificate_required");
    }

    #[test]
    fn unassigned_codes_are_numbered() {
        assert_eq!(alert_name(1), "unknown_1");
        assert_eq!(alert_name(255), "unknown_255");
    }
}
