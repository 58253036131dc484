//! The one signature-scheme name table (IANA "TLS SignatureScheme" registry, RFC 8446 §4.2.3,
//! and the TLS 1.2 hash/signature pairs of RFC 5246 §7.4.1.4.1 that predate it), in the
//! registry's spelling: `rsa_pss_pss_sha256` for 0x0809, never `SignatureScheme(0x809)`.
//! Every part of mtlscope that names a scheme (the wire tap, the upstream leg, `probe`) uses
//! [`scheme_name`].

/// The IANA name of signature scheme `v`; `private_0x…` in the private-use range and
/// `unknown_0x…` for anything unassigned.
pub fn scheme_name(v: u16) -> String {
    let known = match v {
        0x0201 => "rsa_pkcs1_sha1",
        0x0203 => "ecdsa_sha1",
        0x0401 => "rsa_pkcs1_sha256",
        0x0403 => "ecdsa_secp256r1_sha256",
        0x0420 => "rsa_pkcs1_sha256_legacy",
        0x0501 => "rsa_pkcs1_sha384",
        0x0503 => "ecdsa_secp384r1_sha384",
        0x0520 => "rsa_pkcs1_sha384_legacy",
        0x0601 => "rsa_pkcs1_sha512",
        0x0603 => "ecdsa_secp521r1_sha512",
        0x0620 => "rsa_pkcs1_sha512_legacy",
        0x0704 => "eccsi_sha256",
        0x0705 => "iso_ibs1",
        0x0706 => "iso_ibs2",
        0x0707 => "iso_chinese_ibs",
        0x0708 => "sm2sig_sm3",
        0x0709 => "gostr34102012_256a",
        0x070a => "gostr34102012_256b",
        0x070b => "gostr34102012_256c",
        0x070c => "gostr34102012_256d",
        0x070d => "gostr34102012_512a",
        0x070e => "gostr34102012_512b",
        0x070f => "gostr34102012_512c",
        0x0804 => "rsa_pss_rsae_sha256",
        0x0805 => "rsa_pss_rsae_sha384",
        0x0806 => "rsa_pss_rsae_sha512",
        0x0807 => "ed25519",
        0x0808 => "ed448",
        0x0809 => "rsa_pss_pss_sha256",
        0x080a => "rsa_pss_pss_sha384",
        0x080b => "rsa_pss_pss_sha512",
        0x081a => "ecdsa_brainpoolP256r1tls13_sha256",
        0x081b => "ecdsa_brainpoolP384r1tls13_sha384",
        0x081c => "ecdsa_brainpoolP512r1tls13_sha512",
        0x0904 => "mldsa44",
        0x0905 => "mldsa65",
        0x0906 => "mldsa87",
        _ => return legacy_pair(v),
    };
    known.to_string()
}

/// A TLS 1.2 (hash, signature) pair outside the registry's names (e.g. 0x0402 `dsa_sha256`,
/// 0x0301 `rsa_pkcs1_sha224`, still sent by OpenSSL in TLS 1.2), else a private or unknown
/// code.
fn legacy_pair(v: u16) -> String {
    let [hash, sig] = v.to_be_bytes();
    let hash = match hash {
        1 => Some("md5"),
        2 => Some("sha1"),
        3 => Some("sha224"),
        4 => Some("sha256"),
        5 => Some("sha384"),
        6 => Some("sha512"),
        _ => None,
    };
    let sig = match sig {
        1 => Some("rsa_pkcs1"),
        2 => Some("dsa"),
        3 => Some("ecdsa"),
        _ => None,
    };
    match (hash, sig) {
        (Some(h), Some(s)) => format!("{s}_{h}"),
        _ if v >= 0xfe00 => format!("private_{v:#06x}"),
        _ => format!("unknown_{v:#06x}"),
    }
}

#[cfg(test)]
mod tests {
    use super::scheme_name;

    #[test]
    fn every_scheme_rustls_knows_has_an_iana_name() {
        assert_eq!(scheme_name(0x0809), "rsa_pss_pss_sha256");
        assert_eq!(scheme_name(0x0403), "ecdsa_secp256r1_sha256");
        assert_eq!(scheme_name(0x0402), "dsa_sha256");
        assert_eq!(scheme_name(0x0301), "rsa_pkcs1_sha224");
        assert_eq!(scheme_name(0xfe01), "private_0xfe01");
        assert_eq!(scheme_name(0x1234), "unknown_0x1234");
        let provider = rustls::crypto::aws_lc_rs::default_provider();
        let schemes = provider
            .signature_verification_algorithms
            .supported_schemes();
        assert!(!schemes.is_empty());
        for s in schemes {
            let name = scheme_name(u16::from(s));
            assert!(
                !name.starts_with("unknown") && !name.contains('('),
                "{s:?}: {name}"
            );
        }
    }
}
