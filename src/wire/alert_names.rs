//! The TLS alert names by code, from the canonical table ([`crate::facts::AlertDescription`]),
//! in the contract's snake_case spelling. Every part of mtlscope that names an
//! alert uses [`alert_name`]; OpenSSL's own strings are not used because they lag (116 is
//! "unknown" in OpenSSL 3.0).

/// The RFC name of alert description `code`, snake_case; `unknown_<n>` for unassigned codes.
pub fn alert_name(code: u8) -> &'static str {
    crate::facts::AlertDescription::from_code(code).as_str()
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
