//! A keep-alive HTTPS client for lifecycle tests, behaving like common HTTP clients: one
//! connection reused while it lasts, a new one when the server closed it (after
//! `Connection: close`, a GOAWAY, or an idle close). It counts the connections it opened.

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::path::Path;
use std::sync::Arc;
use tokio_rustls::TlsConnector;

/// Which HTTP version to speak.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proto {
    /// HTTP/1.1 (ALPN `http/1.1`).
    H1,
    /// HTTP/2 (ALPN `h2`).
    H2,
}

enum Conn {
    H1(hyper::client::conn::http1::SendRequest<Empty<Bytes>>),
    H2(hyper::client::conn::http2::SendRequest<Empty<Bytes>>),
}

/// A reconnecting client for `https://localhost:PORT`.
pub struct HttpsClient {
    /// TLS settings (trusting the given root).
    tls: TlsConnector,
    /// The server port on 127.0.0.1.
    port: u16,
    /// Protocol.
    proto: Proto,
    /// The connection in use.
    conn: Option<Conn>,
    /// Connections opened so far.
    pub connections: usize,
}

impl HttpsClient {
    /// A client trusting `root` (PEM) that speaks `proto` to `localhost:port`.
    pub fn new(root: &Path, port: u16, proto: Proto) -> HttpsClient {
        let mut roots = rustls::RootCertStore::empty();
        for c in mtlscope::pki::load::load_certs(root).expect("root") {
            roots.add(c).expect("add root");
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = match proto {
            Proto::H1 => vec![b"http/1.1".to_vec()],
            Proto::H2 => vec![b"h2".to_vec()],
        };
        HttpsClient {
            tls: TlsConnector::from(Arc::new(config)),
            port,
            proto,
            conn: None,
            connections: 0,
        }
    }

    async fn connect(&mut self) -> Result<Conn, String> {
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
        let tls = self
            .tls
            .connect(name, tcp)
            .await
            .map_err(|e| format!("tls: {e}"))?;
        self.connections += 1;
        let io = TokioIo::new(tls);
        match self.proto {
            Proto::H1 => {
                let (s, c) = hyper::client::conn::http1::handshake(io)
                    .await
                    .map_err(|e| format!("h1: {e}"))?;
                tokio::spawn(c);
                Ok(Conn::H1(s))
            }
            Proto::H2 => {
                let (s, c) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                    .await
                    .map_err(|e| format!("h2: {e}"))?;
                tokio::spawn(c);
                Ok(Conn::H2(s))
            }
        }
    }

    /// GET `path`; reuses the connection unless the server has closed it. Returns the status
    /// once the whole body arrived.
    ///
    /// A request on a reused connection that the server closed before the request went out
    /// (hyper: canceled) is sent once more on a new connection, as hyper-util's client, curl and
    /// browsers do: a keep-alive close can always cross a request in flight, directly as
    /// through a proxy.
    pub async fn get(&mut self, path: &str) -> Result<u16, String> {
        let reused = self.reusable();
        match self.get_once(path).await {
            Err(Attempt::NotSent(_)) if reused => {
                self.conn = None;
                self.get_once(path).await.map_err(Attempt::into_words)
            }
            r => r.map_err(Attempt::into_words),
        }
    }

    /// Whether the connection in hand can take a request.
    fn reusable(&self) -> bool {
        match &self.conn {
            Some(Conn::H1(s)) => !s.is_closed(),
            Some(Conn::H2(s)) => !s.is_closed(),
            None => false,
        }
    }

    async fn get_once(&mut self, path: &str) -> Result<u16, Attempt> {
        if !self.reusable() {
            self.conn = Some(self.connect().await.map_err(Attempt::Failed)?);
        }
        let uri = format!("https://localhost:{}{path}", self.port);
        let not_sent = |what: &str, e: hyper::Error| {
            let words = format!("{what}: {e}");
            if e.is_canceled() || e.is_closed() {
                Attempt::NotSent(words)
            } else {
                Attempt::Failed(words)
            }
        };
        let resp = match self.conn.as_mut().expect("connected") {
            Conn::H1(s) => {
                s.ready().await.map_err(|e| not_sent("ready", e))?;
                let req = http::Request::get(path)
                    .header(http::header::HOST, format!("localhost:{}", self.port))
                    .body(Empty::new())
                    .expect("request");
                s.send_request(req).await
            }
            Conn::H2(s) => {
                s.ready().await.map_err(|e| not_sent("ready", e))?;
                let req = http::Request::get(uri).body(Empty::new()).expect("request");
                s.send_request(req).await
            }
        }
        .map_err(|e| not_sent("request", e))?;
        let status = resp.status().as_u16();
        resp.into_body()
            .collect()
            .await
            .map_err(|e| Attempt::Failed(format!("body: {e}")))?;
        Ok(status)
    }
}

/// How a request failed.
enum Attempt {
    /// The connection closed before the request went out.
    NotSent(String),
    /// Anything else.
    Failed(String),
}

impl Attempt {
    fn into_words(self) -> String {
        match self {
            Attempt::NotSent(w) | Attempt::Failed(w) => w,
        }
    }
}
