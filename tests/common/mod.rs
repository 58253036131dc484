//! Shared support for integration tests that run real peers: nginx and Apache httpd as
//! upstreams, curl and `openssl s_client` as clients, a throwaway PKI, and small network helpers.
//!
//! Use it from a test file with `mod common;`. Every wait here is bounded; servers are started
//! on free 127.0.0.1 ports from their own temporary directories and stopped when dropped.
//!
//! ```ignore
//! let nginx = Nginx::start(NginxConfig {
//!     verify_client: VerifyClient::On,
//!     client_certificate: Some(ca.clone()),
//!     ..NginxConfig::new(&server_cert, &server_key)
//! })?;
//! let r = Curl::new(format!("{}/", nginx.base_url())).cacert(&ca).identity(&cert, &key).run();
//! assert_eq!(r.status, 200);
//! ```
//!
//! mtlscope itself runs in-process ([`Proxy`]: `reverse`, `forward` or `observe` from the
//! words a user types, on port 0), and tests assert on its typed flows through [`flows`]:
//!
//! ```ignore
//! let mut p = Proxy::start(&["reverse", "--upstream", &url, "--server-cert", &cert]).await;
//! let r = Curl::new(format!("https://localhost:{}/", p.port())).cacert(&ca).run_async().await;
//! let f = p.flow().await;
//! assert_eq!(flows::first_id(&f), Some(FindingId::NoClientCert));
//! ```
//!
//! Tests of the process itself (exit codes, files, signals, the terminal, the web view) start
//! the binary with [`Mtlscope`].
//!
//! In `#[tokio::test]`s use `run_async()` so the runtime keeps serving while the client runs.
//! The servers' startup probe (one TCP connect, closed at once) shows in their logs as an
//! aborted handshake.
#![allow(dead_code)]

pub mod apache;
pub mod browser;
pub mod captures;
pub mod choose_lab;
pub mod clients;
pub mod dumpcap;
pub mod flows;
pub mod https_client;
pub mod inproc;
pub mod inproc_proxy;
pub mod middlebox;
pub mod mtls;
pub mod mtlscope;
pub mod net;
pub mod nginx;
pub mod paths_cli;
pub mod peers;
pub mod process;
pub mod testpki;

// Each test binary uses a different subset of these.
#[allow(unused_imports)]
pub use apache::{Apache, ApacheConfig, ClientAuthScope};
#[allow(unused_imports)]
pub use clients::{Curl, CurlResult, SClient, SClientResult};
#[allow(unused_imports)]
pub use inproc_proxy::Proxy;
#[allow(unused_imports)]
pub use mtls::{apache_secure_location, dev_pki, nginx_config, tmpdir, NginxLab};
#[allow(unused_imports)]
pub use mtlscope::{finding_ids, wait_records, Mtlscope};
#[allow(unused_imports)]
pub use net::{free_port, wait_for_tcp};
#[allow(unused_imports)]
pub use nginx::{Nginx, NginxConfig, VerifyClient};
#[allow(unused_imports)]
pub use testpki::TestPki;

/// A TLS protocol version, as a server config or a client option names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsVersion {
    /// TLS 1.2.
    Tls12,
    /// TLS 1.3.
    Tls13,
}

impl TlsVersion {
    /// The name OpenSSL-based configs use: `TLSv1.2`, `TLSv1.3`.
    pub fn openssl_name(self) -> &'static str {
        match self {
            TlsVersion::Tls12 => "TLSv1.2",
            TlsVersion::Tls13 => "TLSv1.3",
        }
    }

    /// The number curl's `--tls-max` takes: `1.2`, `1.3`.
    pub fn number(self) -> &'static str {
        match self {
            TlsVersion::Tls12 => "1.2",
            TlsVersion::Tls13 => "1.3",
        }
    }
}

/// The words of `mtlscope reverse` in front of `upstream` with `pki`'s server certificate,
/// asking (optionally) for a client certificate from its root, plus `extra`.
pub fn reverse_args(pki: &::mtlscope::pki::DevPki, upstream: &str, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "reverse",
        "--upstream",
        upstream,
        "--server-cert",
        &pki.server().arg(),
        "--client-auth",
        "optional",
        "--client-ca",
        &pki.root_ca().display().to_string(),
    ]
    .iter()
    .map(|a| a.to_string())
    .collect();
    args.extend(extra.iter().map(|a| a.to_string()));
    args
}
