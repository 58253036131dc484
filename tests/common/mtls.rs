//! The real-peer setups most tests share, on the project's dev PKI: nginx verifying client
//! certificates against the dev root, and Apache asking only inside `<Location /secure>`.

use super::{
    Apache, ApacheConfig, ClientAuthScope, Mtlscope, Nginx, NginxConfig, Proxy, TlsVersion,
    VerifyClient,
};
use mtlscope::pki::DevPki;

/// A fresh temporary directory under the target's tmp dir (`CARGO_TARGET_TMPDIR`), removed
/// on drop: test files stay inside the build tree.
pub fn tmpdir() -> tempfile::TempDir {
    tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir")
}

/// A fresh dev PKI; the directory lives as long as the returned guard.
pub fn dev_pki() -> (DevPki, tempfile::TempDir) {
    let dir = tmpdir();
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
    Apache::start(secure_location_config(pki, version)).expect("start apache")
}

/// The configuration of [`apache_secure_location`], to change before starting it.
pub fn secure_location_config(pki: &DevPki, version: TlsVersion) -> ApacheConfig {
    let server = pki.server();
    ApacheConfig {
        protocols: vec![version],
        ca_certificate: Some(pki.root_ca().to_path_buf()),
        client_auth: ClientAuthScope::SecureLocation,
        verify_depth: Some(3),
        ..ApacheConfig::new(&server.cert, &server.key)
    }
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

    /// `reverse` in front of this nginx with the dev server certificate, trusting the dev root
    /// upstream, then `extra`: the words, for either way of running it.
    fn reverse_words(&self, extra: &[&str]) -> Vec<String> {
        let mut args: Vec<String> = vec![
            "reverse".into(),
            "--upstream".into(),
            self.nginx.localhost_url(),
            "--server-cert".into(),
            self.pki.server().arg(),
            "--upstream-ca".into(),
            self.pki.root_ca().display().to_string(),
        ];
        args.extend(extra.iter().map(|a| a.to_string()));
        args
    }

    /// That `mtlscope reverse` as a child process (for tests of the process: signals, files).
    pub fn reverse(&self, extra: &[&str]) -> Mtlscope {
        let args = self.reverse_words(extra);
        Mtlscope::start(&args.iter().map(String::as_str).collect::<Vec<_>>())
    }

    /// That `mtlscope reverse` in this test's runtime, its flows awaited typed.
    pub async fn proxy(&self, extra: &[&str]) -> Proxy {
        let args = self.reverse_words(extra);
        Proxy::start(&args.iter().map(String::as_str).collect::<Vec<_>>()).await
    }
}
