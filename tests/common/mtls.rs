//! The real-peer setups most tests share, on the project's dev PKI: nginx verifying client
//! certificates against the dev root, and Apache asking only inside `<Location /secure>`.

use super::{
    Apache, ApacheConfig, ClientAuthScope, Mtlscope, Nginx, NginxConfig, TlsVersion, VerifyClient,
};
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

/// The dev PKI and a real nginx configured from it: the set-up of the tests that put
/// `mtlscope reverse` in front of nginx.
pub struct NginxLab {
    /// The dev PKI (server certificate, root, client certificates).
    pub pki: DevPki,
    /// nginx, verifying clients against the dev root.
    pub nginx: Nginx,
    /// Where the PKI lives; removed on drop.
    _dir: tempfile::TempDir,
}

impl NginxLab {
    /// nginx with [`nginx_config`] as changed by `config`.
    pub fn start(
        verify: VerifyClient,
        config: impl FnOnce(NginxConfig) -> NginxConfig,
    ) -> NginxLab {
        let (pki, dir) = dev_pki();
        let nginx = Nginx::start(config(nginx_config(&pki, verify))).expect("start nginx");
        NginxLab {
            pki,
            nginx,
            _dir: dir,
        }
    }

    /// `mtlscope reverse` in front of this nginx with the dev server certificate, trusting the
    /// dev root upstream, then `extra`.
    pub fn reverse(&self, extra: &[&str]) -> Mtlscope {
        let upstream = self.nginx.localhost_url();
        let server = self.pki.server().arg();
        let ca = self.pki.root_ca().display().to_string();
        let mut args = vec![
            "reverse",
            "--upstream",
            &upstream,
            "--server-cert",
            &server,
            "--upstream-ca",
            &ca,
        ];
        args.extend_from_slice(extra);
        Mtlscope::start(&args)
    }
}
