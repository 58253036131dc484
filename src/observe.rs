//! `mtlscope observe`: a TCP relay that does not terminate TLS. Each client connection gets one
//! upstream connection; a [`Tap`] on the upstream stream sees both directions, and when the pair
//! closes one `kind: connection`, `mode: observe` record carries the [`Wire`] facts.
//!
//! [`Wire`]: crate::facts::Wire

use crate::error::CommandError;
use crate::facts::{ms_between, Event, Flow, LegFailure, Mode};
use crate::record::Sink;
use crate::wire::{Tap, TapHandle, TapRole};
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use time::OffsetDateTime;
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
    let rt = crate::cli::runtime()?;
    rt.block_on(async move {
        let sink = Sink::open(args.record.as_deref(), true)
            .map_err(|e| CommandError::usage(format!("--record: {e}")))?;
        let listener = TcpListener::bind(listen)
            .await
            .map_err(|e| CommandError::usage(format!("--listen {listen}: cannot listen: {e}")))?;
        let local = listener.local_addr().map_err(CommandError::runtime)?;
        eprintln!("mtlscope observe: listening on {local}, relaying to {upstream}");
        crate::cli::until_interrupted(serve(listener, upstream, sink.clone()), &sink).await;
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
pub async fn serve(listener: TcpListener, upstream: String, sink: Sink) {
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
        tokio::spawn(relay(id, client, addr, upstream.clone(), sink.clone()));
    }
}

/// Relay one connection and emit its record.
async fn relay(id: u64, mut client: TcpStream, addr: SocketAddr, upstream: Arc<str>, sink: Sink) {
    let start = Instant::now();
    let mut flow = Flow::new(Mode::Observe, id, OffsetDateTime::now_utc());
    flow.client_addr = Some(addr.to_string());
    flow.upstream = Some(upstream.to_string());
    let _ = client.set_nodelay(true);
    let handle = TapHandle::new(start, TapRole::Client);
    let mut outer = vec![Event {
        at_ms: 0.0,
        name: "tcp_accept".into(),
        detail: Some(addr.to_string()),
    }];
    let mut failure = None;
    match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&*upstream)).await {
        Err(_) => {
            flow.error = Some(format!(
                "cannot connect to upstream {upstream}: timed out after {}s",
                CONNECT_TIMEOUT.as_secs()
            ));
            failure = Some(leg_failure("connect", "timed_out"));
        }
        Ok(Err(e)) => {
            flow.error = Some(format!("cannot connect to upstream {upstream}: {e}"));
            failure = Some(leg_failure("connect", io_kind(&e)));
        }
        Ok(Ok(up)) => {
            let _ = up.set_nodelay(true);
            outer.push(Event {
                at_ms: ms_between(start, Instant::now()),
                name: "tcp_connect".into(),
                detail: up.peer_addr().ok().map(|a| a.to_string()),
            });
            let mut tap = Tap::new(up, handle.clone());
            if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut tap).await {
                let done = handle.snapshot().handshake_done_ms.is_some();
                let stage = if done { "after_handshake" } else { "handshake" };
                flow.error = Some(format!("relay ended: {e}"));
                failure = Some(leg_failure(stage, io_kind(&e)));
            }
            outer.push(Event {
                at_ms: ms_between(start, Instant::now()),
                name: "tcp_close".into(),
                detail: None,
            });
        }
    }
    let mut wire = handle.snapshot().into_wire();
    wire.events.extend(outer);
    wire.events.sort_by(|a, b| a.at_ms.total_cmp(&b.at_ms));
    wire.failure = failure;
    flow.wire = Some(wire);
    sink.emit(flow).await;
}

fn leg_failure(stage: &str, kind: &str) -> LegFailure {
    LegFailure {
        stage: stage.into(),
        kind: kind.into(),
    }
}

/// The contract's snake_case failure kind of an I/O error.
fn io_kind(e: &io::Error) -> &'static str {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => "connection_refused",
        io::ErrorKind::ConnectionReset => "reset",
        io::ErrorKind::ConnectionAborted => "aborted",
        io::ErrorKind::TimedOut => "timed_out",
        io::ErrorKind::UnexpectedEof => "eof",
        io::ErrorKind::BrokenPipe => "broken_pipe",
        io::ErrorKind::HostUnreachable | io::ErrorKind::NetworkUnreachable => "unreachable",
        io::ErrorKind::AddrNotAvailable => "address_not_available",
        _ if e.to_string().contains("failed to lookup") => "dns",
        _ => "io",
    }
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
