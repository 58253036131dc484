//! The floor of mtlscope's stack: a TLS reverse proxy built from the same crates (tokio, hyper,
//! tokio-rustls with aws-lc-rs, mimalloc) that does only the relaying — no capture, no facts, no
//! diagnosis, no record. Each client connection gets its own upstream connection, which presents
//! a client certificate and resumes upstream sessions (rustls' client session cache), as
//! `mtlscope reverse` does by default. `scripts/bench.sh` measures it as the `bare` row: the
//! distance from it to nginx is what the stack costs, the distance from mtlscope to it is what
//! mtlscope's own work costs.
//!
//! ```text
//! cargo run --release --example bare_relay -- LISTEN UPSTREAM SERVER_PEM SERVER_KEY \
//!     CLIENT_PEM CLIENT_KEY CA_PEM
//! ```
//!
//! UPSTREAM is `host:port`; the upstream is verified against CA_PEM under the name `localhost`.

use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::sync::Arc;
use tokio::net::{TcpListener, TcpStream};

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

type Failure = Box<dyn std::error::Error + Send + Sync>;

fn certs(path: &str) -> Result<Vec<CertificateDer<'static>>, Failure> {
    Ok(CertificateDer::pem_file_iter(path)?.collect::<Result<_, _>>()?)
}

fn main() -> Result<(), Failure> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [listen, upstream, server_pem, server_key, client_pem, client_key, ca] = &args[..] else {
        return Err(
            "usage: bare_relay LISTEN UPSTREAM SERVER_PEM SERVER_KEY CLIENT_PEM CLIENT_KEY CA_PEM"
                .into(),
        );
    };
    let mut roots = rustls::RootCertStore::empty();
    for c in certs(ca)? {
        roots.add(c)?;
    }
    let roots = Arc::new(roots);
    // Clients are asked for a certificate but may go without, like `--client-auth optional`.
    let verifier = rustls::server::WebPkiClientVerifier::builder(roots.clone())
        .allow_unauthenticated()
        .build()?;
    let mut server = rustls::ServerConfig::builder()
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            certs(server_pem)?,
            PrivateKeyDer::from_pem_file(server_key)?,
        )?;
    server.alpn_protocols = vec![b"http/1.1".to_vec()];
    server.ticketer = rustls::crypto::aws_lc_rs::Ticketer::new()?;
    let client = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_client_auth_cert(
            certs(client_pem)?,
            PrivateKeyDer::from_pem_file(client_key)?,
        )?;
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client));
    let upstream = upstream.clone();
    // mtlscope's own runtime choice (a current-thread scheduler on one CPU), so the two differ
    // only in what mtlscope does per connection.
    let rt = mtlscope::cli::runtime().map_err(|e| e.to_string())?;
    rt.block_on(async move {
        let listener = TcpListener::bind(listen.as_str()).await?;
        loop {
            let (tcp, _) = listener.accept().await?;
            let (acceptor, connector, upstream) =
                (acceptor.clone(), connector.clone(), upstream.clone());
            tokio::spawn(async move {
                if let Err(e) = serve(tcp, acceptor, connector, upstream).await {
                    eprintln!("connection: {e}");
                }
            });
        }
    })
}

async fn serve(
    tcp: TcpStream,
    acceptor: tokio_rustls::TlsAcceptor,
    connector: tokio_rustls::TlsConnector,
    upstream: String,
) -> Result<(), Failure> {
    tcp.set_nodelay(true)?;
    let tls = acceptor.accept(tcp).await?;
    let up = TcpStream::connect(upstream.as_str()).await?;
    up.set_nodelay(true)?;
    let up = connector
        .connect(ServerName::try_from("localhost")?, up)
        .await?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(up)).await?;
    tokio::spawn(conn);
    let sender = Arc::new(tokio::sync::Mutex::new(sender));
    let service = hyper::service::service_fn(move |req: http::Request<Incoming>| {
        let sender = sender.clone();
        async move {
            let (parts, body) = req.into_parts();
            let mut up = http::Request::new(body);
            *up.method_mut() = parts.method;
            if let Some(pq) = parts.uri.path_and_query() {
                *up.uri_mut() = http::Uri::from(pq.clone());
            }
            *up.headers_mut() = parts.headers;
            up.headers_mut().insert(
                http::header::HOST,
                http::HeaderValue::from_static("localhost"),
            );
            let resp = sender.lock().await.send_request(up).await?;
            Ok::<_, hyper::Error>(resp.map(|b| b.boxed()))
        }
    });
    hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
        .serve_connection(TokioIo::new(tls), service)
        .await
}
