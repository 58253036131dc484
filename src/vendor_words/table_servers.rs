//! Servers' and proxies' words: nginx, OpenSSL's verify codes (nginx `FAILED:<text>`, HAProxy
//! `ssl_c_err`), Envoy, IIS, SAP.

use super::Next::{InspectChain, ProbeIdentity, ReverseClientLeg, ReverseIdentity};
use super::Vendor::{Envoy, Iis, Nginx, OpensslVerify, Sap};
use super::Words::Phrase as P;
use super::{row, Mapping, Words};
use crate::facts::FindingId as F;

const NGINX: &str = "https://nginx.org/en/docs/http/ngx_http_ssl_module.html#errors";
const NGINX_VAR: &str =
    "https://nginx.org/en/docs/http/ngx_http_ssl_module.html#var_ssl_client_verify";
const OPENSSL: &str = "https://docs.openssl.org/master/man3/X509_STORE_CTX_get_error/";
const ENVOY_STATS: &str =
    "https://www.envoyproxy.io/docs/envoy/latest/configuration/listeners/stats#tls-statistics";
const ENVOY_TLS: &str =
    "https://www.envoyproxy.io/docs/envoy/latest/intro/arch_overview/security/ssl#trouble-shooting";
const IIS: &str = "https://learn.microsoft.com/en-us/troubleshoot/developer/webapps/iis/www-administration-management/http-status-code";
const SAP: &str = "https://userapps.support.sap.com/sap/support/knowledge/en/3333286";

/// Where a number is an OpenSSL verify code: HAProxy's sample fetches, nginx's error log
/// (`client SSL certificate verify error: (10:…)`), `openssl s_client`/`verify` output.
const VERIFY_CODE: &[&str] = &[
    "ssl_c_err",
    "ssl_c_ca_err",
    "verify error: (",
    "verify error:num=",
    "verify return code",
];

/// OpenSSL verify code `code`: as HAProxy and logs number it.
const fn verify(code: &'static str) -> Words {
    Words::Code {
        after: VERIFY_CODE,
        code,
    }
}

/// An IIS 403 sub-status as a W3C log writes it (`sc-status sc-substatus`: `403 7`).
const fn iis_log(code: &'static str) -> Words {
    Words::Code {
        after: &["403 "],
        code,
    }
}

pub(super) static TABLE: &[Mapping] = &[
    // nginx: its own pages and log lines.
    row(Nginx, "400 No required SSL certificate was sent (496)",
        &[P("No required SSL certificate was sent"), P("client sent no required SSL certificate"), Words::Code { after: &["error_page "], code: "496" }],
        &[F::NoClientCert, F::IssuerNotInCaList, F::NoCommonSignatureScheme],
        "nginx asked (`ssl_verify_client on`) and the client sent no certificate. Clients withhold one they hold when its issuer is not among the CA names nginx sends (only `ssl_client_certificate`, never `ssl_trusted_certificate`) or when its key cannot make a scheme nginx accepts.",
        ProbeIdentity, NGINX),
    row(Nginx, "400 The SSL certificate error (495)",
        &[P("The SSL certificate error"), Words::Code { after: &["error_page "], code: "495" }],
        &[F::ChainUntrusted, F::ChainIncomplete, F::CertExpired, F::CertRevoked],
        "nginx could not verify the certificate the client sent; the reason is in `$ssl_client_verify` (`FAILED:<reason>`) and the error log (`client SSL certificate verify error`). A revoked certificate (`ssl_crl`) gets this same page.",
        InspectChain, NGINX),
    row(Nginx, "400 The plain HTTP request was sent to HTTPS port (497)",
        &[P("The plain HTTP request was sent to HTTPS port"), Words::Code { after: &["error_page "], code: "497" }],
        &[F::ClientNotTls],
        "The client spoke plain HTTP to a TLS port: not a certificate problem.",
        ReverseClientLeg, NGINX),
    row(Nginx, "$ssl_client_verify FAILED:<reason>",
        &[P("ssl_client_verify")],
        &[F::ChainUntrusted, F::ChainIncomplete, F::CertExpired],
        "nginx's verdict on the client certificate; the text after `FAILED:` is OpenSSL's verify reason (see the OpenSSL verify entries for each). `NONE` means no certificate was sent.",
        InspectChain, NGINX_VAR),
    // OpenSSL's verify codes: nginx `FAILED:<text>`, HAProxy `ssl_c_err`/`ssl_c_ca_err` numbers.
    row(OpensslVerify, "2 unable to get issuer certificate",
        &[P("unable to get issuer certificate"), P("X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT"), verify("2")],
        &[F::ChainIncomplete, F::ChainUntrusted],
        "The issuer of a certificate in the chain is neither sent nor trusted: usually the intermediate is missing.",
        InspectChain, OPENSSL),
    row(OpensslVerify, "7 certificate signature failure",
        &[P("certificate signature failure"), P("X509_V_ERR_CERT_SIGNATURE_FAILURE"), verify("7")],
        &[F::ChainUntrusted],
        "A signature in the chain does not verify: the certificate was not issued by the CA it names (a reissued CA with a new key, a forged or corrupted certificate).",
        InspectChain, OPENSSL),
    row(OpensslVerify, "9 certificate is not yet valid",
        &[P("certificate is not yet valid"), P("X509_V_ERR_CERT_NOT_YET_VALID"), verify("9")],
        &[F::CertNotYetValid],
        "A certificate's notBefore is after the server's clock.",
        InspectChain, OPENSSL),
    row(OpensslVerify, "10 certificate has expired",
        &[P("certificate has expired"), P("X509_V_ERR_CERT_HAS_EXPIRED"), verify("10")],
        &[F::CertExpired],
        "A certificate of the chain is past its notAfter on the server's clock.",
        InspectChain, OPENSSL),
    row(OpensslVerify, "12 CRL has expired",
        &[P("CRL has expired"), P("X509_V_ERR_CRL_HAS_EXPIRED"), verify("12")],
        &[F::CertExpired],
        "The server's CRL is past its nextUpdate: every client of that issuer is refused, the certificate itself may be fine. Refresh the CRL on the server.",
        InspectChain, OPENSSL),
    row(OpensslVerify, "18 self-signed certificate",
        &[P("self-signed certificate"), P("self signed certificate"), P("X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT"), verify("18")],
        &[F::ChainUntrusted, F::ServerCertUntrusted],
        "The certificate signs itself and is not among the trusted ones. In a client's own error it is the server's certificate.",
        InspectChain, OPENSSL),
    row(OpensslVerify, "19 self-signed certificate in certificate chain",
        &[P("self-signed certificate in certificate chain"), P("self signed certificate in certificate chain"), P("X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN"), verify("19")],
        &[F::ChainUntrusted, F::ServerCertUntrusted],
        "The chain ends at a root the verifier does not trust (the client sent a root of another CA). In a client's own error it is the server's chain.",
        InspectChain, OPENSSL),
    row(OpensslVerify, "20 unable to get local issuer certificate",
        &[P("unable to get local issuer certificate"), P("X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY"), verify("20")],
        &[F::ChainIncomplete, F::ChainUntrusted, F::ServerCertUntrusted],
        "No trusted certificate issued the last one of the chain: a missing intermediate, or a CA the server does not trust. In a client's own error it is the server's chain.",
        InspectChain, OPENSSL),
    row(OpensslVerify, "21 unable to verify the first certificate",
        &[P("unable to verify the first certificate"), P("X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE"), verify("21")],
        &[F::ChainIncomplete, F::ChainUntrusted, F::ServerCertUntrusted],
        "Only a leaf was sent and its issuer is not trusted: the intermediate was not sent.",
        InspectChain, OPENSSL),
    row(OpensslVerify, "22 certificate chain too long",
        &[P("certificate chain too long"), P("X509_V_ERR_CERT_CHAIN_TOO_LONG"), verify("22")],
        &[F::ChainUntrusted, F::ChainIncomplete],
        "The path is longer than the server's verify depth (nginx `ssl_verify_depth` defaults to 1: one intermediate needs 2).",
        InspectChain, OPENSSL),
    row(OpensslVerify, "23 certificate revoked",
        &[P("certificate revoked"), P("X509_V_ERR_CERT_REVOKED"), verify("23")],
        &[F::CertRevoked],
        "The server's CRL lists the certificate.",
        InspectChain, OPENSSL),
    row(OpensslVerify, "24 invalid CA certificate",
        &[P("invalid CA certificate"), P("X509_V_ERR_INVALID_CA"), verify("24")],
        &[F::ChainUntrusted],
        "A certificate used as an issuer is not a CA (no basicConstraints CA:TRUE) or its extensions forbid it.",
        InspectChain, OPENSSL),
    row(OpensslVerify, "26 unsupported certificate purpose",
        &[P("unsupported certificate purpose"), P("X509_V_ERR_INVALID_PURPOSE"), verify("26")],
        &[F::WrongPurpose],
        "The leaf (or a CA above it) is not for client authentication: extended key usage without clientAuth.",
        InspectChain, OPENSSL),
    row(OpensslVerify, "27 certificate not trusted",
        &[P("certificate not trusted"), P("X509_V_ERR_CERT_UNTRUSTED"), verify("27")],
        &[F::ChainUntrusted],
        "The root is present but not trusted for this purpose.",
        InspectChain, OPENSSL),
    row(OpensslVerify, "28 certificate rejected",
        &[P("certificate rejected"), P("X509_V_ERR_CERT_REJECTED"), verify("28")],
        &[F::ChainUntrusted, F::WrongPurpose],
        "The root is marked to reject the purpose (client authentication).",
        InspectChain, OPENSSL),
    // Envoy: listener TLS statistics and the downstream transport failure reason.
    row(Envoy, "ssl.fail_verify_no_cert",
        &[P("fail_verify_no_cert")],
        &[F::NoClientCert, F::IssuerNotInCaList],
        "TLS connections that failed because the client sent no certificate (`require_client_certificate`).",
        ProbeIdentity, ENVOY_STATS),
    row(Envoy, "ssl.fail_verify_error",
        &[P("fail_verify_error")],
        &[F::ChainUntrusted, F::ChainIncomplete, F::CertExpired],
        "TLS connections that failed CA verification of the client's chain.",
        InspectChain, ENVOY_STATS),
    row(Envoy, "ssl.fail_verify_san",
        &[P("fail_verify_san")],
        &[F::AccessDeniedAfterAuth],
        "The chain verified, but no subject alternative name matched `match_typed_subject_alt_names`: the identity is not allowed.",
        ReverseClientLeg, ENVOY_STATS),
    row(Envoy, "ssl.fail_verify_cert_hash",
        &[P("fail_verify_cert_hash")],
        &[F::AccessDeniedAfterAuth, F::CertNotRegistered],
        "The certificate's hash or SPKI is not among the pinned ones (`verify_certificate_hash`, `verify_certificate_spki`).",
        ReverseClientLeg, ENVOY_STATS),
    row(Envoy, "PEER_DID_NOT_RETURN_A_CERTIFICATE",
        &[P("PEER_DID_NOT_RETURN_A_CERTIFICATE"), P("peer did not return a certificate")],
        &[F::NoClientCert, F::IssuerNotInCaList],
        "`%DOWNSTREAM_TRANSPORT_FAILURE_REASON%`: the client sent no certificate and one is required.",
        ProbeIdentity, ENVOY_TLS),
    row(Envoy, "CERTIFICATE_VERIFY_FAILED",
        &[P("CERTIFICATE_VERIFY_FAILED"), P("certificate verify failed")],
        &[F::ChainUntrusted, F::ChainIncomplete, F::CertExpired, F::ServerCertUntrusted],
        "Verification of the peer's chain failed. In Envoy's downstream failure reason it is the client's certificate; in a client's own error (Python's `[SSL: CERTIFICATE_VERIFY_FAILED]`, curl 60) it is the server's.",
        InspectChain, ENVOY_TLS),
    // IIS 403 sub-statuses (shown with detailed errors, or `sc-substatus` in the W3C log).
    row(Iis, "403.7 Client certificate required",
        &[P("403.7"), P("Client certificate required"), iis_log("7")],
        &[F::NoClientCert, F::IssuerNotInCaList, F::EmptyCaList, F::IisSubstatus],
        "IIS requires a certificate and got none. Windows sends an empty CA list by default (`SendTrustedIssuerList` 0), and clients drop a certificate whose issuer is not in a non-empty list.",
        ProbeIdentity, IIS),
    row(Iis, "403.12 Mapper denied access",
        &[P("403.12"), P("Mapper denied access"), iis_log("12")],
        &[F::AccessDeniedAfterAuth, F::IisSubstatus],
        "The certificate was accepted by TLS; the client-certificate mapping refused it (mappings only count at site level).",
        ReverseIdentity, IIS),
    row(Iis, "403.13 Client certificate revoked",
        &[P("403.13"), P("Client certificate revoked"), iis_log("13")],
        &[F::CertRevoked, F::IisSubstatus],
        "Windows' revocation check says the certificate is revoked (or, with an unreachable CRL, could not say it is not).",
        InspectChain, IIS),
    row(Iis, "403.16 Client certificate is untrusted or invalid",
        &[P("403.16"), P("Client certificate is untrusted or invalid"), iis_log("16")],
        &[F::ChainUntrusted, F::ChainIncomplete, F::IisSubstatus],
        "Windows could not chain the certificate to a root in the server's Trusted Root store (or an intermediate is missing from the Intermediate store).",
        InspectChain, IIS),
    row(Iis, "403.17 Client certificate has expired or is not yet valid",
        &[P("403.17"), P("Client certificate has expired or is not yet valid"), iis_log("17")],
        &[F::CertExpired, F::CertNotYetValid, F::IisSubstatus],
        "A certificate of the chain is outside its validity period on the server's clock.",
        InspectChain, IIS),
    // SAP SuccessFactors.
    row(Sap, "[AUTH0032]Invalid client certificate",
        &[P("AUTH0032")],
        &[F::CertNotRegistered, F::IdentityNotForwarded],
        "The service keeps its own registry of certificates: the one presented (or forwarded in the X-CLIENT-CERT header) is not the registered one for the company id, or did not arrive. Compare fingerprints.",
        ReverseIdentity, SAP),
];
