//! The TLS alert table: RFC names (snake_case) and what each alert usually means when a client
//! certificate is at stake. Capturers name alerts with [`alert_name`]; rules quote
//! [`alert_usual_meaning`] in evidence.

/// The RFC name of an alert code (RFC 8446 §6, RFC 5246 §7.2, IANA registry), snake_case;
/// `unknown_<n>` for a code without a name.
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
        n => UNKNOWN[n as usize],
    }
}

macro_rules! unknown_names {
    ($($n:literal)*) => { [$(concat!("unknown_", $n)),*] };
}

/// `unknown_<n>` for every code, so [`alert_name`] can return `&'static str` for any byte.
static UNKNOWN: [&str; 256] = unknown_names!(
    0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31
    32 33 34 35 36 37 38 39 40 41 42 43 44 45 46 47 48 49 50 51 52 53 54 55 56 57 58 59 60 61 62 63
    64 65 66 67 68 69 70 71 72 73 74 75 76 77 78 79 80 81 82 83 84 85 86 87 88 89 90 91 92 93 94 95
    96 97 98 99 100 101 102 103 104 105 106 107 108 109 110 111 112 113 114 115 116 117 118 119
    120 121 122 123 124 125 126 127 128 129 130 131 132 133 134 135 136 137 138 139 140 141 142 143
    144 145 146 147 148 149 150 151 152 153 154 155 156 157 158 159 160 161 162 163 164 165 166 167
    168 169 170 171 172 173 174 175 176 177 178 179 180 181 182 183 184 185 186 187 188 189 190 191
    192 193 194 195 196 197 198 199 200 201 202 203 204 205 206 207 208 209 210 211 212 213 214 215
    216 217 218 219 220 221 222 223 224 225 226 227 228 229 230 231 232 233 234 235 236 237 238 239
    240 241 242 243 244 245 246 247 248 249 250 251 252 253 254 255
);

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
