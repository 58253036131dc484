//! The upstream leg: opening one TLS connection to the server for one client connection.
//!
//! The TLS client sits behind [`Engine`] so a second engine (OpenSSL, which can complete TLS 1.2
//! renegotiation and TLS 1.3 post-handshake auth, which rustls cannot) can join without changing
//! the proxy. Every engine writes the same facts into the leg's recorder. [`PlainEngine`] is
//! the odd one out: plain HTTP to a backend behind a TLS offloader, recorded as such.

pub mod connect_proxy;
mod dns_cache;
pub mod openssl;
mod plain;
mod resolve;
mod routed;
mod rustls_engine;
mod tickets;
mod url;

pub use self::openssl::{OpensslEngine, OpensslSettings};
pub use connect_proxy::ConnectProxy;
pub use plain::PlainEngine;
pub use resolve::Resolve;
pub use rustls_engine::{RustlsEngine, RustlsSettings};
pub use tickets::{PairSessions, PairedLeg};
pub use url::{parse_upstream, parse_upstream_url};

use crate::capture::upstream_auth::IdentityPolicy;
use crate::capture::LegRecorder;
pub use crate::io::{BoxIo, Io};
use std::sync::Arc;

/// Where the upstream leg goes.
#[derive(Clone, Debug)]
pub struct Target {
    /// Host name or IP literal (also the SNI unless it is an IP).
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Connect here instead of resolving `host` (`--resolve`, like curl's); SNI and
    /// certificate checks still use `host`.
    pub connect_addr: Option<std::net::SocketAddr>,
    /// Reach the server through this HTTP CONNECT proxy (the proxy resolves the name, so
    /// `connect_addr` is not used); `None` connects directly.
    pub via: Option<std::sync::Arc<ConnectProxy>>,
}

impl Target {
    /// A target reached by resolving its host.
    pub fn new(host: impl Into<String>, port: u16) -> Target {
        Target {
            host: host.into(),
            port,
            connect_addr: None,
            via: None,
        }
    }

    /// Open the TCP connection (to `connect_addr` when set, or a tunnel through `via`). A name that does not resolve
    /// fails with a [`DnsError`] inside the `io::Error`, so it is classified by type.
    ///
    /// [`DnsError`]: crate::capture::tls_error::DnsError
    pub async fn connect_tcp(&self) -> std::io::Result<tokio::net::TcpStream> {
        if let Some(proxy) = &self.via {
            return proxy.tunnel(&self.authority()).await;
        }
        if let Some(addr) = self.connect_addr {
            return tokio::net::TcpStream::connect(addr).await;
        }
        let addrs: Vec<std::net::SocketAddr> = match dns_cache::lookup(&self.host, self.port).await
        {
            Ok(a) => a,
            Err(source) => {
                let kind = source.kind();
                let dns = crate::capture::tls_error::DnsError {
                    host: self.host.clone(),
                    source,
                };
                return Err(std::io::Error::new(kind, dns));
            }
        };
        tokio::net::TcpStream::connect(&addrs[..]).await
    }

    /// `host:port`, with brackets for IPv6.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// An established upstream leg.
pub struct Connected {
    /// The decrypted stream.
    pub io: BoxIo,
    /// Negotiated ALPN, if any.
    pub alpn: Option<Vec<u8>>,
}

/// The upstream leg could not be established; the reason is in the leg's facts.
#[derive(Debug, thiserror::Error)]
#[error("upstream leg failed: {0}")]
pub struct Failed(pub String);

/// The TLS client engines.
#[derive(Clone, Debug)]
pub enum Engine {
    /// rustls: refuses renegotiation, never offers post-handshake auth.
    Rustls(RustlsEngine),
    /// No TLS at all: a plain-HTTP backend (`--upstream http://…`).
    Plain(PlainEngine),
    /// OpenSSL: completes TLS 1.2 renegotiation and TLS 1.3 post-handshake auth.
    Openssl(OpensslEngine),
    /// rustls first; a request the server then asks a certificate for late is replayed once
    /// over a new OpenSSL leg (see `proxy::late_replay`).
    Auto {
        /// The first engine.
        rustls: RustlsEngine,
        /// The engine of the replay.
        openssl: OpensslEngine,
    },
}

impl Engine {
    /// The same engine offering only HTTP/1.1, for a server that answers a request only over
    /// HTTP/1.1 (`HTTP_1_1_REQUIRED`); `None` when it offers nothing else already (OpenSSL legs
    /// and plain backends speak HTTP/1.1).
    pub fn http1_only(&self) -> Option<Engine> {
        match self {
            Engine::Rustls(r) => r.http1_only().map(Engine::Rustls),
            Engine::Auto { rustls, openssl } => rustls.http1_only().map(|rustls| Engine::Auto {
                rustls,
                openssl: openssl.clone(),
            }),
            Engine::Plain(_) | Engine::Openssl(_) => None,
        }
    }

    /// Connect to `target` and complete the TLS handshake, recording both into `rec`.
    pub async fn connect(
        &self,
        target: &Target,
        identity: &IdentityPolicy,
        rec: &LegRecorder,
    ) -> Result<Connected, Failed> {
        self.connect_resuming(target, identity, None, rec).await
    }

    /// [`Engine::connect`], keeping the server's sessions in `sessions` and offering one
    /// stored there (rustls only; the other engines always do a full handshake).
    pub async fn connect_resuming(
        &self,
        target: &Target,
        identity: &IdentityPolicy,
        sessions: Option<PairedLeg>,
        rec: &LegRecorder,
    ) -> Result<Connected, Failed> {
        match self {
            Engine::Rustls(e) | Engine::Auto { rustls: e, .. } => {
                e.connect(target, identity, sessions, rec).await
            }
            Engine::Openssl(e) => e.connect(target, identity, rec).await,
            Engine::Plain(e) => e.connect(target, rec).await,
        }
    }

    /// What identifies this engine and its settings in `--upstream-pool`'s key: its kind and
    /// its settings object (one per configured engine, alive for the process).
    pub fn pool_id(&self) -> (&'static str, usize) {
        match self {
            Engine::Rustls(e) => ("rustls", Arc::as_ptr(&e.settings) as usize),
            Engine::Auto { rustls, .. } => ("auto", Arc::as_ptr(&rustls.settings) as usize),
            Engine::Openssl(e) => ("openssl", e.settings_id()),
            Engine::Plain(_) => ("plain", 0),
        }
    }

    /// The engine a late certificate request is replayed over (`auto` only).
    pub fn replay_engine(&self) -> Option<&OpensslEngine> {
        match self {
            Engine::Auto { openssl, .. } => Some(openssl),
            _ => None,
        }
    }
}

/// `--upstream-engine`: which TLS client the upstream leg uses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum EngineChoice {
    /// rustls (the default).
    #[default]
    Rustls,
    /// OpenSSL, which completes late certificate requests.
    Openssl,
    /// rustls, replaying a request refused for a late certificate request over OpenSSL.
    Auto,
}
