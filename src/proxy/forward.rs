//! `mtlscope forward`: an HTTP proxy for plain HTTP (absolute-form) and `CONNECT`.
//!
//! After CONNECT the first bytes are sniffed and replayed: TLS to a host in scope is intercepted
//! (a leaf for that host from the local CA; both legs captured exactly as in reverse mode, one
//! upstream connection per client connection); anything else is tunnelled untouched.

use super::body::RelayBody;
use super::context::SessionContext;
use super::hosts::{IdentityMap, Scope};
use super::relay::request_facts;
use super::respond::{respond_produced, respond_relayed, wants_json, RelayTo};
use super::session::{self, Accepted};
use crate::capture::tls_error::{classify_io, find_io_error};
use crate::capture::{ConnClock, LegRecorder};
use crate::facts::EventKind;
use crate::facts::{Event, Flow, Mode, RecordKind};
use crate::facts::{FailureKind, Stage};
use crate::io::Rewind;
use crate::lifecycle::{accept_loop, AcceptLimits};
use crate::proxy::tunnel::Connect;
use crate::upstream::Target;
use bytes::Bytes;
use http::header::{HeaderValue, PROXY_AUTHENTICATE, PROXY_AUTHORIZATION};
use http::{Method, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use rustls::server::ResolvesServerCert;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// Issues the client-facing certificate for an intercepted host (the local CA).
pub type LeafFactory = Arc<dyn Fn(&str) -> Arc<dyn ResolvesServerCert> + Send + Sync>;

/// How long to wait for the first bytes in a CONNECT tunnel before tunnelling blind.
const SNIFF_WAIT: Duration = Duration::from_secs(10);

/// Everything a forward listener needs.
#[derive(Clone)]
pub struct ForwardOptions {
    /// Client leg, engine, sink (mode `forward`).
    pub session: SessionContext,
    /// Leaves for intercepted hosts.
    pub leaves: LeafFactory,
    /// Upstream identities per host.
    pub identities: IdentityMap,
    /// Upstream engines per host (others use the session's).
    pub engines: super::hosts::HostEngines,
    /// Which hosts are intercepted.
    pub scope: Scope,
    /// `--proxy-auth USER:PASS`, as the `Proxy-Authorization` value expected.
    pub proxy_auth: Option<String>,
    /// `--allow-remote`: accept clients that are not on loopback.
    pub allow_remote: bool,
    /// `--resolve` overrides for upstream connections.
    pub resolve: crate::upstream::Resolve,
    /// Passthrough tunnels on which no byte moved this long are closed.
    pub idle_timeout: Duration,
    /// mtlscope's other listeners (the web view): requests to them are refused, like requests
    /// to the proxy itself, so a proxy client cannot read what they guard.
    pub own_listeners: Vec<SocketAddr>,
}

/// A running forward proxy.
pub struct ForwardProxy {
    /// The bound address.
    pub local_addr: SocketAddr,
    /// The accept loop.
    task: JoinHandle<()>,
}

impl ForwardProxy {
    /// Bind and start accepting; `max_connections` bounds the open proxy connections.
    pub async fn start(
        listen: SocketAddr,
        opts: ForwardOptions,
        max_connections: Option<usize>,
    ) -> std::io::Result<ForwardProxy> {
        let listener = TcpListener::bind(listen).await?;
        let local_addr = listener.local_addr()?;
        let life = opts.session.life.clone();
        let limits = AcceptLimits {
            max_connections,
            loopback_only: !opts.allow_remote,
            mode: Mode::Forward,
            sink: opts.session.sink.clone(),
        };
        let shared = Arc::new(Shared { opts, local_addr });
        let task = tokio::spawn(accept_loop(
            listener,
            life,
            limits,
            move |tcp, peer, _id| proxy_connection(shared.clone(), tcp, peer),
        ));
        Ok(ForwardProxy { local_addr, task })
    }

    /// Run until the accept loop ends (when the process stops).
    pub async fn wait(self) {
        let _ = self.task.await;
    }

    /// Stop accepting. Connections in flight finish on their own.
    pub fn stop(&self) {
        self.task.abort();
    }
}

struct Shared {
    opts: ForwardOptions,
    local_addr: SocketAddr,
}

/// Serve one proxy client connection (plain HTTP requests and CONNECTs) until it ends or the
/// process stops.
async fn proxy_connection(shared: Arc<Shared>, tcp: TcpStream, peer: SocketAddr) {
    let life = shared.opts.session.life.clone();
    let head_timeout = shared.opts.session.client.timeout;
    let service = hyper::service::service_fn(move |req| handle(shared.clone(), peer, req));
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(head_timeout)
        .serve_connection(TokioIo::new(tcp), service)
        .with_upgrades();
    tokio::pin!(conn);
    let served = tokio::select! {
        r = conn.as_mut() => r,
        _ = life.stopping() => {
            conn.as_mut().graceful_shutdown();
            tokio::select! {
                r = conn.as_mut() => r,
                _ = life.ending() => return,
            }
        }
    };
    if let Err(e) = served {
        tracing::debug!(%peer, error = %e, "proxy connection ended");
    }
}

async fn handle(
    shared: Arc<Shared>,
    peer: SocketAddr,
    req: http::Request<Incoming>,
) -> Result<http::Response<RelayBody>, std::convert::Infallible> {
    let opts = &shared.opts;
    let id = crate::lifecycle::next_connection_id();
    let clock = ConnClock::start();
    let base = || {
        let mut flow = Flow::new(Mode::Forward, id, clock.started_at());
        flow.kind = RecordKind::Exchange;
        flow.exchange_index = Some(0);
        flow.client_addr = Some(peer.to_string());
        flow.request = Some(request_facts(&req, opts.session.redact, clock));
        flow
    };

    if let Some(expected) = &opts.proxy_auth {
        let given = req
            .headers()
            .get(PROXY_AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        let matches = given.is_some_and(|g| same(g.as_bytes(), expected.as_bytes()));
        if !matches {
            let mut flow = base();
            flow.error = Some(match given {
                None => "the client sent no Proxy-Authorization".into(),
                Some(_) => "the client's Proxy-Authorization did not match --proxy-auth".into(),
            });
            let challenge = (
                PROXY_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"mtlscope\""),
            );
            return Ok(respond_produced(
                flow,
                StatusCode::PROXY_AUTHENTICATION_REQUIRED,
                wants_json(&req),
                vec![challenge],
                &opts.session.sink,
                clock,
            )
            .await);
        }
    }

    let Some(mut target) = target_of(&req) else {
        let mut flow = base();
        flow.error = Some("not a proxy request: send an absolute-form URI or CONNECT (e.g. curl -x http://THIS_ADDRESS …)".into());
        return Ok(respond_produced(
            flow,
            StatusCode::BAD_REQUEST,
            wants_json(&req),
            vec![],
            &opts.session.sink,
            clock,
        )
        .await);
    };
    opts.resolve.apply(&mut target);
    let mut own = vec![shared.local_addr];
    own.extend(opts.own_listeners.iter().copied());
    if let Some(listener) = own_listener(&target, &own).await {
        let what = if listener == shared.local_addr {
            "the proxy itself (a loop)"
        } else {
            "its web view"
        };
        let mut flow = base();
        flow.upstream = Some(target.authority());
        flow.error = Some(format!(
            "refused a request to mtlscope's own listener {listener}, {what}: the proxy does not reach its own listeners"
        ));
        let status = if listener == shared.local_addr {
            StatusCode::LOOP_DETECTED
        } else {
            StatusCode::FORBIDDEN
        };
        return Ok(respond_produced(
            flow,
            status,
            wants_json(&req),
            vec![],
            &opts.session.sink,
            clock,
        )
        .await);
    }

    if req.method() == Method::CONNECT {
        let shared = shared.clone();
        let on_upgrade = hyper::upgrade::on(req);
        let life = shared.opts.session.life.clone();
        life.spawn(async move {
            match on_upgrade.await {
                Ok(upgraded) => {
                    tunnel(shared, peer, id, clock, target, TokioIo::new(upgraded)).await
                }
                Err(e) => tracing::debug!(error = %e, "CONNECT upgrade failed"),
            }
        });
        return Ok(http::Response::new(RelayBody::full(Bytes::new())));
    }
    Ok(plain_http(opts, base(), target, req, clock).await)
}

/// Where a proxy request goes: CONNECT's authority, or an absolute-form `http://` URI.
fn target_of(req: &http::Request<Incoming>) -> Option<Target> {
    let uri = req.uri();
    let default_port = match (req.method() == Method::CONNECT, uri.scheme_str()) {
        (true, _) => 443,
        (false, Some("http")) => 80,
        _ => return None,
    };
    let host = uri
        .host()?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    Some(Target::new(host, uri.port_u16().unwrap_or(default_port)))
}

/// How long resolving a proxy target for the own-listener check may take.
const RESOLVE_WAIT: Duration = Duration::from_secs(5);

/// The own listener `target` would reach, if any: every address it resolves to is compared
/// with every listener, on every local address (a listener on `0.0.0.0` is reached through
/// any address of this host). A name that does not resolve is left to the connect to fail.
async fn own_listener(target: &Target, own: &[SocketAddr]) -> Option<SocketAddr> {
    let addrs: Vec<SocketAddr> = match target.connect_addr {
        Some(a) => vec![a],
        None => {
            if !own.iter().any(|o| o.port() == target.port) {
                return None;
            }
            let lookup = tokio::net::lookup_host((target.host.as_str(), target.port));
            match tokio::time::timeout(RESOLVE_WAIT, lookup).await {
                Ok(Ok(found)) => found.collect(),
                _ => return None,
            }
        }
    };
    addrs
        .iter()
        .find_map(|a| own.iter().find(|o| reaches(*a, **o)).copied())
}

/// Whether connecting to `to` reaches the listener bound to `own`.
fn reaches(to: SocketAddr, own: SocketAddr) -> bool {
    if to.port() != own.port() {
        return false;
    }
    let (ip, own_ip) = (to.ip().to_canonical(), own.ip().to_canonical());
    ip == own_ip
        || (ip.is_loopback() && own_ip.is_loopback())
        || (own_ip.is_unspecified() && is_local(ip))
}

/// Whether `ip` is one of this host's addresses: an address can be bound only where it is.
fn is_local(ip: std::net::IpAddr) -> bool {
    ip.is_loopback() || ip.is_unspecified() || std::net::UdpSocket::bind((ip, 0)).is_ok()
}

/// A CONNECT tunnel: sniff, then intercept TLS in scope or tunnel untouched.
async fn tunnel<S>(
    shared: Arc<Shared>,
    peer: SocketAddr,
    id: u64,
    clock: ConnClock,
    target: Target,
    mut io: S,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let opts = &shared.opts;
    let mut first = vec![0u8; 5];
    let n = match tokio::time::timeout(SNIFF_WAIT, io.read(&mut first)).await {
        Ok(Ok(n)) => n,
        _ => 0,
    };
    first.truncate(n);
    let is_tls = first.first() == Some(&0x16);
    let io = Rewind::new(Bytes::from(first), io);

    if is_tls && opts.scope.intercepts(&target.host, target.port) {
        let client = LegRecorder::new(clock);
        client.with(|leg| leg.peer = Some(peer.to_string()));
        client.event(EventKind::Connect, Some(target.authority()));
        let mut ctx = opts.session.clone();
        ctx.client.server_cert = (opts.leaves)(&target.host);
        let (identity, why) = opts.identities.policy_for(&target.host, target.port);
        if let Some(engine) = opts.engines.engine_for(&target.host, target.port) {
            ctx.engine = engine;
        }
        let faults = vec![];
        let accepted = Accepted {
            io: Box::new(io),
            peer: peer.to_string(),
            id,
            clock,
            client,
            faults,
        };
        tracing::debug!(target = %target.authority(), identity = %why, "intercepting");
        session::run(accepted, target, identity, &ctx).await;
    } else {
        passthrough(opts, peer, id, clock, target, io, is_tls).await;
    }
}

/// Tunnel bytes untouched, observed by the wire tap as `observe` would, and record them.
async fn passthrough<S>(
    opts: &ForwardOptions,
    peer: SocketAddr,
    id: u64,
    clock: ConnClock,
    target: Target,
    mut io: S,
    is_tls: bool,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let mut flow = Flow::new(Mode::Forward, id, clock.started_at());
    flow.client_addr = Some(peer.to_string());
    flow.upstream = Some(target.authority());
    let why = if is_tls {
        "passthrough host: tunnelled untouched"
    } else {
        "not TLS: tunnelled untouched"
    };
    let tunnel = Event::new(clock.ms(), EventKind::Tunnel, Some(why.into()));
    let settings = crate::proxy::tunnel::TunnelSettings {
        block_renegotiation: opts
            .session
            .faults
            .has(&crate::faults::Fault::BlockRenegotiation),
        idle_timeout: opts.idle_timeout,
        life: opts.session.life.clone(),
    };
    let (wire, error, fault) = crate::proxy::tunnel::tunnel_observed(
        &mut io,
        Connect::Target(&target),
        clock,
        vec![tunnel],
        &settings,
    )
    .await;
    flow.wire = Some(Box::new(wire));
    flow.error = error;
    flow.faults.extend(fault);
    opts.session.sink.emit(flow).await;
}

/// Relay a plain-HTTP proxy request over a fresh connection to the origin.
async fn plain_http(
    opts: &ForwardOptions,
    mut flow: Flow,
    target: Target,
    req: http::Request<Incoming>,
    clock: ConnClock,
) -> http::Response<RelayBody> {
    let json = wants_json(&req);
    flow.upstream = Some(target.authority());
    let upstream = LegRecorder::new(clock);
    let fail = |flow: &mut Flow, upstream: &LegRecorder| {
        flow.upstream_leg = Some(upstream.snapshot());
        flow.error = flow.upstream_leg.as_ref().and_then(|l| l.error.clone());
    };
    let timeout = opts.session.client.timeout;
    let connected = match tokio::time::timeout(timeout, target.connect_tcp()).await {
        Ok(c) => c,
        Err(_) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!(
                "no TCP connection to the origin within {} s",
                timeout.as_secs()
            ),
        )),
    };
    let tcp = match connected {
        Ok(tcp) => tcp,
        Err(e) => {
            upstream.fail(&classify_io(Stage::Connect, &e));
            fail(&mut flow, &upstream);
            return respond_produced(
                flow,
                StatusCode::BAD_GATEWAY,
                json,
                vec![],
                &opts.session.sink,
                clock,
            )
            .await;
        }
    };
    let _ = tcp.set_nodelay(true);
    let (mut parts, body) = req.into_parts();
    parts.uri = parts
        .uri
        .path_and_query()
        .and_then(|p| p.as_str().parse().ok())
        .unwrap_or_else(|| http::Uri::from_static("/"));
    super::headers::strip_hop_by_hop(&mut parts.headers);
    let sent = async {
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
        tokio::spawn(conn);
        sender
            .send_request(http::Request::from_parts(parts, body))
            .await
    };
    let sent = match tokio::time::timeout(timeout, sent).await {
        Ok(r) => r.map_err(|e| match find_io_error(&e) {
            Some(io) => classify_io(Stage::Http, io),
            None => crate::capture::tls_error::Classified::new(
                Stage::Http,
                FailureKind::Http,
                format!("the origin's HTTP exchange failed: {e}"),
            ),
        }),
        Err(_) => Err(crate::capture::tls_error::Classified::new(
            Stage::Http,
            FailureKind::TimedOut,
            format!(
                "the origin sent no response head within {} s",
                timeout.as_secs()
            ),
        )),
    };
    match sent {
        Ok(resp) => {
            let to = RelayTo {
                sink: &opts.session.sink,
                redact: opts.session.redact,
                clock,
                upstream: None,
                // The proxy's own listener speaks HTTP/1.1 only.
                client_h1: true,
                request_body: None,
            };
            respond_relayed(flow, resp, to).await
        }
        Err(c) => {
            upstream.fail(&c);
            fail(&mut flow, &upstream);
            respond_produced(
                flow,
                StatusCode::BAD_GATEWAY,
                json,
                vec![],
                &opts.session.sink,
                clock,
            )
            .await
        }
    }
}

/// Whether two credentials are equal, in time that does not depend on where they differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    bool::from(a.ct_eq(b))
}

/// The `Proxy-Authorization` value for `USER:PASS`.
pub fn basic_credentials(user_pass: &str) -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(user_pass)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn own_listeners_are_recognised_on_every_local_address() {
        let own: Vec<SocketAddr> = vec!["127.0.0.1:8080".parse().unwrap()];
        let t = |h: &str, p| Target::new(h, p);
        assert!(own_listener(&t("127.0.0.1", 8080), &own).await.is_some());
        assert!(own_listener(&t("localhost", 8080), &own).await.is_some());
        assert!(own_listener(&t("127.0.0.2", 8080), &own).await.is_some());
        assert!(own_listener(&t("localhost", 8081), &own).await.is_none());
        assert!(own_listener(&t("192.0.2.1", 8080), &own).await.is_none());
        let any: Vec<SocketAddr> = vec!["0.0.0.0:9000".parse().unwrap()];
        assert!(own_listener(&t("::1", 9000), &any).await.is_some());
        assert!(own_listener(&t("0.0.0.0", 9000), &any).await.is_some());
        assert!(own_listener(&t("192.0.2.1", 9000), &any).await.is_none());
        let mut resolved = t("elsewhere.example", 80);
        resolved.connect_addr = Some("127.0.0.1:8080".parse().unwrap());
        assert!(own_listener(&resolved, &own).await.is_some());
    }

    #[test]
    fn comparison() {
        assert!(same(b"Basic abc", b"Basic abc"));
        assert!(!same(b"Basic abc", b"Basic abd"));
        assert!(!same(b"Basic ab", b"Basic abc"));
    }

    #[test]
    fn credentials() {
        assert_eq!(basic_credentials("user:pass"), "Basic dXNlcjpwYXNz");
    }
}
