//! The TCP relay that does not terminate TLS: `mtlscope observe`'s listener, and `forward`'s
//! passthrough hosts. Each client connection gets one upstream connection; a [`Tap`] on the
//! upstream stream sees both directions, and when the pair closes one `kind: connection`,
//! `mode: observe` record carries the [`Wire`] facts.
//!
//! [`Wire`]: crate::facts::Wire

use crate::capture::tls_error::classify_io;
use crate::capture::ConnClock;
use crate::facts::{Event, EventKind, FaultEffect, Flow, LegFailure, Mode, Wire};
use crate::facts::{FailureKind, Stage};
use crate::faults::effect;
use crate::io::cut::CutOnRenegotiation;
use crate::io::idle::{Activity, IdleClock};
use crate::lifecycle::{accept_loop, AcceptLimits, Lifecycle};
use crate::record::Sink;
use crate::upstream::Target;
use crate::wire::{Tap, TapHandle, TapRole};
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};

/// How long to wait for the upstream's TCP handshake.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How observe relays every connection.
#[derive(Clone, Debug)]
pub struct TunnelSettings {
    /// `--fault block-renegotiation`.
    pub block_renegotiation: bool,
    /// `--idle-timeout`.
    pub idle_timeout: Duration,
    /// The process's stop signals.
    pub life: Lifecycle,
}

/// Accept connections until the process stops, relaying each to `upstream` on its own task.
pub async fn serve(
    listener: TcpListener,
    upstream: String,
    sink: Sink,
    settings: TunnelSettings,
    max_connections: Option<usize>,
) {
    let upstream: Arc<str> = upstream.into();
    let limits = AcceptLimits {
        max_connections,
        loopback_only: false,
        mode: Mode::Observe,
        sink: sink.clone(),
    };
    let life = settings.life.clone();
    accept_loop(listener, life, limits, move |client, addr, id| {
        relay(
            id,
            client,
            addr,
            upstream.clone(),
            sink.clone(),
            settings.clone(),
        )
    })
    .await
}

/// Relay one connection and emit its record.
async fn relay(
    id: u64,
    mut client: TcpStream,
    addr: SocketAddr,
    upstream: Arc<str>,
    sink: Sink,
    settings: TunnelSettings,
) {
    let clock = ConnClock::start();
    let mut flow = Flow::new(Mode::Observe, id, clock.started_at());
    flow.client_addr = Some(addr.to_string());
    flow.upstream = Some(upstream.to_string());
    let accept = Event::new(0.0, EventKind::TcpAccept, Some(addr.to_string()));
    let (wire, error, fault) = tunnel_observed(
        &mut client,
        Connect::Authority(&upstream),
        clock,
        vec![accept],
        &settings,
    )
    .await;
    flow.wire = Some(Box::new(wire));
    flow.error = error;
    flow.faults.extend(fault);
    sink.emit(flow).await;
}

/// Where a tunnel connects.
pub enum Connect<'a> {
    /// `host:port`, resolved.
    Authority(&'a str),
    /// A proxy target (which may carry a `--resolve` address).
    Target(&'a Target),
}

/// Relay `client` to the upstream through the wire tap, untouched, and return what the wire
/// showed (with `outer` events such as the accept), the error that ended the tunnel, if any,
/// and the effect of `block_renegotiation` if it cut the tunnel. Shared by `observe` and by
/// `forward` for passthrough hosts.
pub async fn tunnel_observed<C>(
    client: &mut C,
    to: Connect<'_>,
    clock: ConnClock,
    mut outer: Vec<Event>,
    settings: &TunnelSettings,
) -> (Wire, Option<String>, Option<FaultEffect>)
where
    C: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let handle = TapHandle::new(clock.instant(), TapRole::Client);
    let (name, connect) = match to {
        Connect::Authority(a) => (
            a.to_string(),
            futures_connect(TcpStream::connect(a.to_string())),
        ),
        Connect::Target(t) => (t.authority(), futures_connect(t.connect_tcp())),
    };
    let mut error = None;
    let mut failure = None;
    let mut fault = None;
    match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
        Err(_) => {
            error = Some(format!(
                "cannot connect to upstream {name}: timed out after {}s",
                CONNECT_TIMEOUT.as_secs()
            ));
            failure = Some(LegFailure {
                stage: Stage::Connect,
                kind: FailureKind::TimedOut,
            });
        }
        Ok(Err(e)) => {
            error = Some(format!("cannot connect to upstream {name}: {e}"));
            failure = Some(classify_io(Stage::Connect, &e).failure);
        }
        Ok(Ok(up)) => {
            let _ = up.set_nodelay(true);
            outer.push(Event::new(
                clock.ms(),
                EventKind::TcpConnect,
                up.peer_addr().ok().map(|a| a.to_string()),
            ));
            let mut tap = CutOnRenegotiation::new(Tap::new(up, handle.clone()), handle.clone());
            let idle = IdleClock::new(settings.idle_timeout);
            let mut client = Activity::new(client, idle.clone());
            let copy = async {
                if settings.block_renegotiation {
                    tokio::io::copy_bidirectional(&mut client, &mut tap).await
                } else {
                    tokio::io::copy_bidirectional(&mut client, tap.inner_mut()).await
                }
            };
            let copied = tokio::select! {
                r = copy => r.map(|_| ()),
                _ = idle.idle() => Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("no byte moved either way for {} s (--idle-timeout)", idle.limit.as_secs()),
                )),
                _ = settings.life.ending() => Err(io::Error::other(
                    "mtlscope stopped: the grace period ended",
                )),
            };
            if tap.cut {
                fault = Some(effect("block-renegotiation", "cut the connection when a TLS 1.2 renegotiation started, before it reached the other side"));
            }
            if let Err(e) = copied {
                let done = handle.snapshot().handshake_done_ms.is_some();
                error = Some(format!("relay ended: {e}"));
                failure = Some(
                    classify_io(
                        if done {
                            Stage::AfterHandshake
                        } else {
                            Stage::Handshake
                        },
                        &e,
                    )
                    .failure,
                );
            }
            outer.push(Event::new(clock.ms(), EventKind::TcpClose, None));
        }
    }
    let mut wire = handle.snapshot().into_wire();
    wire.events.extend(outer);
    wire.events.sort_by(|a, b| a.at_ms.total_cmp(&b.at_ms));
    wire.failure = failure;
    (wire, error, fault)
}

type ConnectFuture<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = io::Result<TcpStream>> + Send + 'a>>;

fn futures_connect<'a>(
    f: impl std::future::Future<Output = io::Result<TcpStream>> + Send + 'a,
) -> ConnectFuture<'a> {
    Box::pin(f)
}
