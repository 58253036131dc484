//! The table against the words vendors document (written out here, independently of the table),
//! the matcher's rules, and `docs/findings.md` against the code.

use super::*;
use crate::facts::FindingId as F;
use Vendor::*;

/// Every vendor word the design catalogue lists under "What vendors call these failures" (and
/// the extras this table adds), as a user would paste it, with the vendor and the ids it must
/// map to, most likely first.
const LISTED: &[(&str, Vendor, &[F])] = &[
    // AWS ALB `tls_verify_status`.
    ("Failed:ClientCertMaxChainDepthExceeded", AwsAlb, &[F::ChainUntrusted]),
    ("Failed:ClientCertMaxSizeExceeded", AwsAlb, &[F::HandshakeRejected]),
    ("Failed:ClientCertCrlHit", AwsAlb, &[F::CertRevoked]),
    ("Failed:ClientCertCrlProcessingError", AwsAlb, &[F::HandshakeRejected, F::CertRevoked]),
    ("Failed:ClientCertUntrusted", AwsAlb, &[F::ChainUntrusted, F::ChainIncomplete]),
    ("Failed:ClientCertNotYetValid", AwsAlb, &[F::CertNotYetValid]),
    ("Failed:ClientCertExpired", AwsAlb, &[F::CertExpired]),
    ("Failed:ClientCertTypeUnsupported", AwsAlb, &[F::NoCommonSignatureScheme, F::KeyUnusable]),
    ("Failed:ClientCertInvalid", AwsAlb, &[F::ChainUntrusted, F::KeyUnusable]),
    ("Failed:ClientCertPurposeInvalid", AwsAlb, &[F::WrongPurpose]),
    ("Failed:ClientCertRejected", AwsAlb, &[F::AccessDeniedAfterAuth, F::CertNotRegistered]),
    ("Failed:ClientCertIncompatible", AwsAlb, &[F::NoCommonSignatureScheme, F::HandshakeRejected]),
    ("Failed:UnmappedConnectionError", AwsAlb, &[F::HandshakeRejected, F::Unexplained]),
    // CloudFront's additions.
    ("Failed:ClientCertMissing", AwsCloudfront, &[F::NoClientCert, F::IssuerNotInCaList]),
    ("Failed:ClientCertIntentInvalid", AwsCloudfront, &[F::WrongPurpose]),
    // Google Cloud.
    ("client_cert_not_provided", GoogleCloud, &[F::NoClientCert, F::IssuerNotInCaList]),
    ("client_cert_validation_failed", GoogleCloud, &[F::ChainUntrusted, F::ChainIncomplete, F::CertExpired]),
    ("client_cert_chain_invalid_eku", GoogleCloud, &[F::WrongPurpose]),
    ("client_cert_chain_exceeded_limit", GoogleCloud, &[F::ChainUntrusted]),
    ("client_cert_invalid_rsa_key_size", GoogleCloud, &[F::KeyUnusable, F::NoCommonSignatureScheme]),
    ("client_cert_unsupported_elliptic_curve_key", GoogleCloud, &[F::NoCommonSignatureScheme, F::KeyUnusable]),
    ("client_cert_unsupported_key_algorithm", GoogleCloud, &[F::NoCommonSignatureScheme, F::KeyUnusable]),
    ("client_cert_pki_too_large", GoogleCloud, &[F::HandshakeRejected]),
    ("client_cert_chain_max_name_constraints_exceeded", GoogleCloud, &[F::ChainUntrusted, F::HandshakeRejected]),
    ("client_cert_validation_timed_out", GoogleCloud, &[F::HandshakeRejected]),
    ("client_cert_validation_search_limit_exceeded", GoogleCloud, &[F::ChainUntrusted]),
    ("client_cert_validation_not_performed", GoogleCloud, &[F::ClientCertNotVerified, F::HandshakeRejected]),
    // nginx `$ssl_client_verify` FAILED:<OpenSSL verify text> and its pages.
    ("FAILED:certificate has expired", OpensslVerify, &[F::CertExpired]),
    ("FAILED:unable to get local issuer certificate", OpensslVerify, &[F::ChainIncomplete, F::ChainUntrusted, F::ServerCertUntrusted]),
    ("FAILED:certificate revoked", OpensslVerify, &[F::CertRevoked]),
    ("FAILED:certificate chain too long", OpensslVerify, &[F::ChainUntrusted, F::ChainIncomplete]),
    ("FAILED:unsupported certificate purpose", OpensslVerify, &[F::WrongPurpose]),
    ("<center>No required SSL certificate was sent</center>", Nginx, &[F::NoClientCert, F::IssuerNotInCaList, F::NoCommonSignatureScheme]),
    ("400 The SSL certificate error", Nginx, &[F::ChainUntrusted, F::ChainIncomplete, F::CertExpired, F::CertRevoked]),
    ("error_page 496 /nocert.html;", Nginx, &[F::NoClientCert, F::IssuerNotInCaList, F::NoCommonSignatureScheme]),
    ("error_page 495 = @bad;", Nginx, &[F::ChainUntrusted, F::ChainIncomplete, F::CertExpired, F::CertRevoked]),
    // HAProxy `ssl_c_err` / `ssl_c_ca_err`: OpenSSL verify codes.
    ("ssl_c_err=10", OpensslVerify, &[F::CertExpired]),
    ("ssl_c_ca_err 20", OpensslVerify, &[F::ChainIncomplete, F::ChainUntrusted, F::ServerCertUntrusted]),
    ("ssl_c_err: 21", OpensslVerify, &[F::ChainIncomplete, F::ChainUntrusted, F::ServerCertUntrusted]),
    ("ssl_c_err=23", OpensslVerify, &[F::CertRevoked]),
    ("ssl_c_err=26", OpensslVerify, &[F::WrongPurpose]),
    ("client SSL certificate verify error: (9:certificate is not yet valid)", OpensslVerify, &[F::CertNotYetValid]),
    // Envoy.
    ("listener.0.0.0.0_443.ssl.fail_verify_no_cert: 3", Envoy, &[F::NoClientCert, F::IssuerNotInCaList]),
    ("ssl.fail_verify_error", Envoy, &[F::ChainUntrusted, F::ChainIncomplete, F::CertExpired]),
    ("ssl.fail_verify_san", Envoy, &[F::AccessDeniedAfterAuth]),
    ("ssl.fail_verify_cert_hash", Envoy, &[F::AccessDeniedAfterAuth, F::CertNotRegistered]),
    ("TLS_error:|268435709:SSL routines:OPENSSL_internal:PEER_DID_NOT_RETURN_A_CERTIFICATE:TLS_error_end", Envoy, &[F::NoClientCert, F::IssuerNotInCaList]),
    // Cloudflare.
    ("not cf.tls_client_auth.cert_verified", Cloudflare, &[F::ChainUntrusted, F::ChainIncomplete, F::CertExpired]),
    ("cf.tls_client_auth.cert_revoked", Cloudflare, &[F::CertRevoked]),
    ("cf.tls_client_auth.cert_presented eq false", Cloudflare, &[F::NoClientCert, F::IssuerNotInCaList]),
    // Java.
    ("javax.net.ssl.SSLHandshakeException: Received fatal alert: bad_certificate", Java, &[F::NoClientCert, F::IssuerNotInCaList, F::ChainUntrusted]),
    ("Received fatal alert: certificate_unknown", Java, &[F::ChainUntrusted, F::ChainIncomplete, F::ServerCertUntrusted]),
    ("sun.security.validator.ValidatorException: PKIX path building failed", Java, &[F::ServerCertUntrusted, F::ChainUntrusted, F::ChainIncomplete]),
    ("No X.509 certificate for client authentication, use empty Certificate message instead", Java, &[F::IssuerNotInCaList, F::NoClientCert, F::NoCommonSignatureScheme, F::WrongPurpose]),
    // Go.
    ("http: TLS handshake error from 10.0.0.7:5123: tls: client didn't provide a certificate", Go, &[F::NoClientCert, F::IssuerNotInCaList, F::NoCommonSignatureScheme]),
    ("remote error: tls: bad certificate", Go, &[F::ChainUntrusted, F::NoClientCert, F::CertExpired, F::WrongPurpose]),
    // curl and OpenSSL.
    ("curl: (35)", Curl, &[F::NoClientCert, F::ChainUntrusted, F::HandshakeRejected]),
    ("exit code 56", Curl, &[F::NoClientCert, F::IssuerNotInCaList, F::ChainUntrusted]),
    ("curl: (58) unable to set private key file: 'k.pem' type PEM", Curl, &[F::KeyUnusable]),
    ("SSL alert number 42", TlsAlert, &[F::NoClientCert, F::ChainUntrusted, F::CertNotYetValid]),
    ("SSL alert number 116", TlsAlert, &[F::NoClientCert, F::IssuerNotInCaList, F::NoCommonSignatureScheme]),
    // Chrome.
    ("net::ERR_BAD_SSL_CLIENT_AUTH_CERT", Chrome, &[F::ChainUntrusted, F::NoClientCert, F::CertExpired, F::WrongPurpose]),
    ("-117", Chrome, &[F::ChainUntrusted, F::NoClientCert, F::CertExpired, F::WrongPurpose]),
    ("ERR_SSL_CLIENT_AUTH_CERT_NEEDED", Chrome, &[F::NoClientCert, F::IssuerNotInCaList, F::EmptyCaList]),
    ("error -110", Chrome, &[F::NoClientCert, F::IssuerNotInCaList, F::EmptyCaList]),
    ("ERR_SSL_CLIENT_AUTH_PRIVATE_KEY_ACCESS_DENIED (-134)", Chrome, &[F::KeyUnusable]),
    ("ERR_SSL_CLIENT_AUTH_CERT_NO_PRIVATE_KEY", Chrome, &[F::KeyUnusable]),
    ("net error -135", Chrome, &[F::KeyUnusable]),
    ("ERR_SSL_CLIENT_AUTH_SIGNATURE_FAILED", Chrome, &[F::KeyUnusable, F::NoCommonSignatureScheme]),
    ("(-141)", Chrome, &[F::KeyUnusable, F::NoCommonSignatureScheme]),
    // IIS.
    ("HTTP Error 403.7 - Forbidden", Iis, &[F::NoClientCert, F::IssuerNotInCaList, F::EmptyCaList, F::IisSubstatus]),
    ("403.13", Iis, &[F::CertRevoked, F::IisSubstatus]),
    ("403.16", Iis, &[F::ChainUntrusted, F::ChainIncomplete, F::IisSubstatus]),
    ("2024-05-01 10:00:00 GET /api - 443 - 10.0.0.9 curl/8.0 - 403 17 0 12", Iis, &[F::CertExpired, F::CertNotYetValid, F::IisSubstatus]),
    // SAP.
    ("{\"details\":\"[AUTH0032]Invalid client certificate\"}", Sap, &[F::CertNotRegistered, F::IdentityNotForwarded]),
];

#[test]
fn every_listed_vendor_word_maps_to_its_ids() {
    for (text, vendor, ids) in LISTED {
        let e = explain(text);
        assert!(e.matched, "{text:?} matched nothing");
        let hit = e
            .matches
            .iter()
            .find(|m| m.entry.vendor == *vendor)
            .unwrap_or_else(|| panic!("{text:?}: no {vendor:?} entry in {:?}", e.matches));
        assert_eq!(&hit.entry.ids, ids, "{text:?}");
        assert!(
            !hit.entry.next.command.is_empty(),
            "{text:?}: no next command"
        );
        assert!(
            hit.entry.source.starts_with("https://"),
            "{text:?}: {}",
            hit.entry.source
        );
    }
}

#[test]
fn every_entry_is_found_by_each_of_its_own_words() {
    for m in table() {
        for w in m.words {
            let samples: Vec<String> = match w {
                Words::Phrase(p) => vec![p.to_string(), format!("x {} y", p.to_uppercase())],
                Words::Code { after, code } => {
                    let mut v: Vec<String> = after.iter().map(|a| format!("{a} {code}")).collect();
                    v.push(code.to_string());
                    v
                }
            };
            for sample in samples {
                let e = explain(&sample);
                assert!(
                    e.matches.iter().any(|x| x.entry.words == m.shown),
                    "{sample:?} does not find {:?}: {:?}",
                    m.shown,
                    e.matches.iter().map(|x| x.entry.words).collect::<Vec<_>>()
                );
            }
        }
        assert!(!m.ids.is_empty() && !m.why.is_empty(), "{}", m.shown);
    }
}

#[test]
fn a_whole_log_line_gives_every_match_in_order() {
    let line =
        "curl: (56) OpenSSL SSL_read: error:0A00045C:SSL routines::tlsv13 alert certificate \
                required, errno 0";
    let e = explain(line);
    let words: Vec<&str> = e.matches.iter().map(|m| m.entry.words).collect();
    assert_eq!(
        words,
        ["exit 56 (CURLE_RECV_ERROR)", "certificate_required (116)"]
    );
    assert_eq!(e.matches[1].found, "tlsv13 alert certificate required");
    assert!(e.closest.is_empty());
}

#[test]
fn longer_words_win_over_the_words_inside_them() {
    // OpenSSL's alert text contains its verify text "certificate revoked".
    let e = explain("error:0A000414:SSL routines::sslv3 alert certificate revoked");
    let vendors: Vec<Vendor> = e.matches.iter().map(|m| m.entry.vendor).collect();
    assert_eq!(vendors, [TlsAlert]);
    // Go's x509 text contains OpenSSL's "certificate has expired".
    let e = explain("x509: certificate has expired or is not yet valid: current time …");
    assert_eq!(e.matches.len(), 1);
    assert_eq!(e.matches[0].entry.vendor, Go);
}

#[test]
fn words_count_only_at_word_boundaries_and_codes_only_after_their_prefix() {
    for text in [
        "ClientCertExpiredX",
        "403.71",
        "ssl_c_err=100",
        "alert number 420",
        "released 2021-117",
        "the date 2024-11-17",
        "1403 7",
    ] {
        let e = explain(text);
        assert!(!e.matched, "{text:?} matched {:?}", e.matches);
    }
}

#[test]
fn case_and_whitespace_do_not_matter() {
    let e = explain("received   FATAL alert:\tBAD_CERTIFICATE");
    assert_eq!(e.matches.len(), 1);
    assert_eq!(e.matches[0].entry.vendor, Java);
    assert_eq!(e.matches[0].at, 0);
}

#[test]
fn unknown_words_get_the_closest_entries_and_no_match() {
    let e = explain("Failed:ClientCertExpierd");
    assert!(!e.matched);
    assert!(e.matches.is_empty());
    assert!(e.closest.len() >= 3, "{:?}", e.closest);
    assert_eq!(e.closest[0].entry.words, "Failed:ClientCertExpired");
    assert!(e.closest.windows(2).all(|w| w[0].score >= w[1].score));
    let e = explain("the client certificate was not trusted by the load balancer");
    assert!(!e.matched);
    assert!(e.closest.iter().all(|c| (0.0..=1.0).contains(&c.score)));
}

/// The docs table, as the code's table would write it.
fn markdown_rows() -> Vec<String> {
    table()
        .map(|m| {
            let ids: Vec<String> = m.ids.iter().map(|id| format!("`{id}`")).collect();
            format!(
                "| {} | `{}` | {} | `{}` | {} |",
                m.vendor.name(),
                m.shown,
                ids.join(", "),
                m.next.command(),
                m.source
            )
        })
        .collect()
}

#[test]
fn vendor_words_table_matches_findings_md() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/findings.md");
    let md = std::fs::read_to_string(&path).expect("docs/findings.md is committed");
    let section = md
        .split("\n## ")
        .find(|s| s.starts_with("What vendors call these failures"))
        .expect("docs/findings.md has a section \"What vendors call these failures\"");
    let in_doc: Vec<String> = section
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| vendor |") && !l.starts_with("|---"))
        .map(str::to_string)
        .collect();
    let ours = markdown_rows();
    assert_eq!(
        in_doc,
        ours,
        "docs/findings.md's vendor table differs from the code's; the code's rows are:\n{}",
        ours.join("\n")
    );
}

#[test]
fn json_shape_is_stable() {
    let e = explain("Failed:ClientCertUntrusted");
    let v = serde_json::to_value(&e).unwrap();
    let keys = |v: &serde_json::Value| {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(keys(&v), ["closest", "matched", "matches", "text"]);
    let m = &v["matches"][0];
    assert_eq!(
        keys(m),
        [
            "at",
            "found",
            "ids",
            "next",
            "source",
            "vendor",
            "vendor_name",
            "why",
            "words"
        ]
    );
    assert_eq!(keys(&m["next"]), ["command", "decides", "kind"]);
    assert_eq!(m["vendor"], "aws-alb");
    assert_eq!(
        m["ids"],
        serde_json::json!(["chain-untrusted", "chain-incomplete"])
    );
    assert_eq!(m["next"]["kind"], "inspect-chain");
    assert_eq!(m["found"], "ClientCertUntrusted");
    assert_eq!(m["at"], 7);
}
