//! In-process TLS peers for relay tests: an upstream's acceptor and a client's connector over
//! the dev PKI (rustls, port 0), and `mtlscope reverse` (in-process too) in front of such an
//! upstream.

use super::inproc_proxy::Proxy;
use mtlscope::pki::load::{load_certs, Identity};
use mtlscope::pki::DevPki;
use std::sync::Arc;

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// The dev server certificate, offering `alpn`, asking no client certificate.
pub fn upstream_acceptor(pki: &DevPki, alpn: &[&[u8]]) -> tokio_rustls::TlsAcceptor {
    let id = Identity::load(&pki.server().cert, &pki.server().key).expect("server identity");
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(id.certified.cert.clone(), id.key.clone_key())
        .expect("server config");
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}

/// TLS to `localhost:port`, trusting the dev root, offering `alpn`.
pub async fn connect(
    pki: &DevPki,
    port: u16,
    alpn: &[&[u8]],
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add_parsable_certificates(load_certs(pki.root_ca()).expect("dev root"));
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .expect("TLS handshake")
}

/// `mtlscope reverse --quiet` in front of `https://localhost:upstream`, showing the dev server
/// certificate and trusting the dev root.
pub async fn reverse_to(pki: &DevPki, upstream: u16) -> Proxy {
    let root = pki.root_ca().display().to_string();
    let server = format!(
        "{},{}",
        pki.server().cert.display(),
        pki.server().key.display()
    );
    Proxy::start(&[
        "reverse",
        "--quiet",
        "--upstream",
        &format!("https://localhost:{upstream}"),
        "--upstream-ca",
        &root,
        "--server-cert",
        &server,
    ])
    .await
}
