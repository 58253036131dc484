//! `mtlscope observe`: a TCP relay that does not terminate TLS. Each client connection gets one
//! upstream connection; a [`Tap`] on the upstream stream sees both directions, and when the pair
//! closes one `kind: connection`, `mode: observe` record carries the [`Wire`] facts.
//!
//! [`Wire`]: crate::facts::Wire

use crate::capture::tls_error::classify_io;
use crate::capture::ConnClock;
use crate::error::CommandError;
use crate::facts::{Event, FaultEffect, Flow, LegFailure, Mode, Wire};
use crate::faults::{effect, Fault, Faults};
use crate::io::cut::CutOnRenegotiation;
use crate::record::Sink;
use crate::upstream::Target;
use crate::wire::{Tap, TapHandle, TapRole};
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};

/// How long to wait for the upstream's TCP handshake.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Flags of `mtlscope observe`.
#[derive(Debug, clap::Args)]
pub struct ObserveArgs {
    /// Address to listen on (loopback unless told otherwise).
    #[arg(long, default_value = "127.0.0.1:8443")]
    pub listen: String,
    /// The real server, as `host:port`.
    #[arg(long)]
    pub upstream: String,
    /// Append one JSON line per connection to this file.
    #[arg(long)]
    pub record: Option<PathBuf>,
    /// Behave like a broken middlebox: `block-renegotiation` cuts the connection when a TLS 1.2
    /// renegotiation starts (a firewall that blocks it).
    #[arg(long, value_name = "NAME")]
    pub fault: Vec<String>,
    /// The web view.
    #[command(flatten)]
    pub ui: crate::cli::ui::UiArgs,
    /// Let the --ui web view listen on a non-loopback address (requires --ui-auth).
    #[arg(long)]
    pub allow_remote: bool,
}

/// Validate the flags, then relay until interrupted.
pub fn run_cli(args: ObserveArgs) -> Result<(), CommandError> {
    let listen: SocketAddr = args.listen.parse().map_err(|e| {
        CommandError::usage(format!(
            "--listen {:?} is not an address like 127.0.0.1:8443: {e}",
            args.listen
        ))
    })?;
    let upstream = parse_upstream(&args.upstream)?;
    let faults = Faults::parse(&args.fault).map_err(CommandError::usage)?;
    let block_renegotiation = faults.has(&Fault::BlockRenegotiation);
    if args.fault.len() > usize::from(block_renegotiation) {
        return Err(CommandError::usage(
            "--fault: observe does not terminate TLS; only block-renegotiation applies",
        ));
    }
    let ui = args.ui.options(args.allow_remote, None)?;
    let rt = crate::cli::runtime()?;
    rt.block_on(async move {
        let sink = Sink::open(args.record.as_deref(), true)
            .map_err(|e| CommandError::usage(format!("--record: {e}")))?;
        let (sink, _ui) = crate::cli::ui::attach(ui, sink).await?;
        let listener = TcpListener::bind(listen)
            .await
            .map_err(|e| CommandError::usage(format!("--listen {listen}: cannot listen: {e}")))?;
        let local = listener.local_addr().map_err(CommandError::runtime)?;
        eprintln!("mtlscope observe: listening on {local}, relaying to {upstream}");
        crate::cli::until_interrupted(
            serve(listener, upstream, sink.clone(), block_renegotiation),
            &sink,
        )
        .await;
        Ok(())
    })
}

/// `host:port` with a non-empty host and a numeric port; the error names `--upstream`.
fn parse_upstream(s: &str) -> Result<String, CommandError> {
    let bad = |why: &str| CommandError::usage(format!("--upstream {s:?}: {why}"));
    if s.contains("://") {
        return Err(bad("observe takes host:port, not a URL"));
    }
    let (host, port) = s
        .rsplit_once(':')
        .ok_or_else(|| bad("expected host:port"))?;
    if host.trim_matches(['[', ']']).is_empty() {
        return Err(bad("the host is empty"));
    }
    port.parse::<u16>()
        .map_err(|_| bad("the port is not a number from 0 to 65535"))?;
    Ok(s.to_string())
}

/// Accept connections forever, relaying each to `upstream` on its own task.
pub async fn serve(listener: TcpListener, upstream: String, sink: Sink, block_renegotiation: bool) {
    let upstream: Arc<str> = upstream.into();
    let ids = AtomicU64::new(1);
    loop {
        let (client, addr) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // Per-connection accept errors (e.g. too many files) must not end the relay.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let id = ids.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(relay(
            id,
            client,
            addr,
            upstream.clone(),
            sink.clone(),
            block_renegotiation,
        ));
    }
}

/// Relay one connection and emit its record.
async fn relay(
    id: u64,
    mut client: TcpStream,
    addr: SocketAddr,
    upstream: Arc<str>,
    sink: Sink,
    block_renegotiation: bool,
) {
    let clock = ConnClock::start();
    let mut flow = Flow::new(Mode::Observe, id, clock.started_at());
    flow.client_addr = Some(addr.to_string());
    flow.upstream = Some(upstream.to_string());
    let _ = client.set_nodelay(true);
    let accept = Event {
        at_ms: 0.0,
        name: "tcp_accept".into(),
        detail: Some(addr.to_string()),
    };
    let (wire, error, fault) = tunnel_observed(
        &mut client,
        Connect::Authority(&upstream),
        clock,
        vec![accept],
        block_renegotiation,
    )
    .await;
    flow.wire = Some(wire);
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
    block_renegotiation: bool,
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
                stage: "connect".into(),
                kind: "timed_out".into(),
            });
        }
        Ok(Err(e)) => {
            error = Some(format!("cannot connect to upstream {name}: {e}"));
            failure = Some(classify_io("connect", &e).failure);
        }
        Ok(Ok(up)) => {
            let _ = up.set_nodelay(true);
            outer.push(Event {
                at_ms: clock.ms(),
                name: "tcp_connect".into(),
                detail: up.peer_addr().ok().map(|a| a.to_string()),
            });
            let mut tap = CutOnRenegotiation::new(Tap::new(up, handle.clone()), handle.clone());
            let copied = if block_renegotiation {
                tokio::io::copy_bidirectional(client, &mut tap).await
            } else {
                tokio::io::copy_bidirectional(client, tap.inner_mut()).await
            };
            if tap.cut {
                fault = Some(effect("block-renegotiation", "cut the connection when a TLS 1.2 renegotiation started, before it reached the other side"));
            }
            if let Err(e) = copied {
                let done = handle.snapshot().handshake_done_ms.is_some();
                error = Some(format!("relay ended: {e}"));
                failure = Some(
                    classify_io(if done { "after_handshake" } else { "handshake" }, &e).failure,
                );
            }
            outer.push(Event {
                at_ms: clock.ms(),
                name: "tcp_close".into(),
                detail: None,
            });
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

#[cfg(test)]
mod tests {
    use super::parse_upstream;

    #[test]
    fn upstream_must_be_host_port() {
        assert!(parse_upstream("127.0.0.1:443").is_ok());
        assert!(parse_upstream("[::1]:443").is_ok());
        for bad in ["https://x:1", "nohost", ":443", "x:99999", "x:"] {
            let e = parse_upstream(bad).expect_err(bad);
            assert_eq!(e.code, 2);
            assert!(e.message.contains("--upstream"), "{}", e.message);
        }
    }
}
