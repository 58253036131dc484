//! The plain-HTTP upstream: a TCP connection and nothing else, as a TLS offloader uses towards
//! a backend on a trusted network (`reverse --upstream http://HOST:PORT`). The leg is recorded
//! as `transport: plain`; it has no handshake, so every TLS fact stays empty.

use super::rustls_engine::fail;
use super::{Connected, Failed, Target};
use crate::capture::tls_error::{classify_io, Classified};
use crate::capture::LegRecorder;
use crate::facts::EventKind;
use crate::facts::{FailureKind, Stage, Transport};
use std::time::Duration;

/// The plain-TCP "engine".
#[derive(Clone, Debug)]
pub struct PlainEngine {
    /// Bound on the TCP connect.
    pub timeout: Duration,
}

impl PlainEngine {
    /// Connect, recording the connect into `rec`.
    pub async fn connect(&self, target: &Target, rec: &LegRecorder) -> Result<Connected, Failed> {
        rec.with(|leg| {
            leg.peer = Some(target.authority());
            leg.transport = Some(Transport::Plain);
        });
        rec.event(EventKind::TcpConnectStart, Some(target.authority()));
        if let Some(proxy) = &target.via {
            // The path is a fact of the leg: which proxy carried it.
            rec.event(EventKind::ProxyConnect, Some(proxy.url()));
        }
        let tcp = match tokio::time::timeout(self.timeout, target.connect_tcp()).await {
            Ok(Ok(tcp)) => tcp,
            Ok(Err(e)) => return Err(fail(rec, classify_io(Stage::Connect, &e))),
            Err(_) => {
                let c = Classified::new(
                    Stage::Connect,
                    FailureKind::TimedOut,
                    format!("connect timed out after {} ms", self.timeout.as_millis()),
                );
                return Err(fail(rec, c));
            }
        };
        let _ = tcp.set_nodelay(true);
        rec.event(
            EventKind::TcpConnect,
            tcp.peer_addr().ok().map(|a| a.to_string()),
        );
        Ok(Connected {
            io: Box::new(tcp),
            alpn: None,
        })
    }
}
