//! The real-peer setups most tests share, on the project's dev PKI: nginx verifying client
//! certificates against the dev root, and Apache asking only inside `<Location /secure>`.

use super::{Apache, ApacheConfig, ClientAuthScope, NginxConfig, TlsVersion, VerifyClient};
use mtlscope::pki::DevPki;

/// A fresh dev PKI; the directory lives as long as the returned guard.
pub fn dev_pki() -> (DevPki, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let pki = DevPki::generate(dir.path()).expect("dev pki");
    (pki, dir)
}

/// nginx with the dev server certificate, verifying clients against the dev root (whose name it
/// sends), deep enough for leaf + intermediate.
pub fn nginx_config(pki: &DevPki, verify: VerifyClient) -> NginxConfig {
    let server = pki.server();
    NginxConfig {
        verify_client: verify,
        client_certificate: Some(pki.root_ca().to_path_buf()),
        verify_depth: Some(3),
        ..NginxConfig::new(&server.cert, &server.key)
    }
}

/// Apache on one TLS version asking for a client certificate only for `/secure`: by
/// renegotiation on TLS 1.2, by post-handshake auth on TLS 1.3.
pub fn apache_secure_location(pki: &DevPki, version: TlsVersion) -> Apache {
    let server = pki.server();
    Apache::start(ApacheConfig {
        protocols: vec![version],
        ca_certificate: Some(pki.root_ca().to_path_buf()),
        client_auth: ClientAuthScope::SecureLocation,
        verify_depth: Some(3),
        ..ApacheConfig::new(&server.cert, &server.key)
    })
    .expect("start apache")
}
