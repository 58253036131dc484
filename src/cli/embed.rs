//! `reverse`, `forward` and `observe` started inside a running program, from the words a user would type:
//! the same flag parsing and loading as the command line, on the caller's tokio runtime, with
//! every diagnosed flow handed to a channel (`Sink::observed`) instead of a recording or the
//! terminal. The integration tests' way to run the proxy in-process on port 0.

use super::{Cli, Command};
use crate::error::CommandError;
use crate::facts::Flow;
use crate::record::Sink;
use clap::Parser;
use std::net::SocketAddr;
use tokio::sync::mpsc::UnboundedReceiver;

/// A proxy running in this process; it stops accepting when dropped.
pub struct Embedded {
    /// The bound address (`--listen 127.0.0.1:0` gives a free port).
    pub local_addr: SocketAddr,
    /// Every flow, diagnosed, in the order the sink saw them.
    pub flows: UnboundedReceiver<Flow>,
    /// Stops the accept loop.
    stop: Box<dyn Fn() + Send + Sync>,
}

impl Drop for Embedded {
    fn drop(&mut self) {
        (self.stop)();
    }
}

/// Start `words` (e.g. `["reverse", "--upstream", URL, …]`, without the program name) in
/// this runtime. Only `reverse`, `forward` and `observe` listen this way; `--record`, `--ui` and the
/// terminal lines are not used (the flows come through [`Embedded::flows`]).
pub async fn start(words: &[&str]) -> Result<Embedded, CommandError> {
    let cli = Cli::try_parse_from(std::iter::once("mtlscope").chain(words.iter().copied()))
        .map_err(|e| CommandError::usage(e.to_string()))?;
    let (sink, flows) = Sink::observed();
    match cli.command {
        Command::Reverse(mut args) => {
            let prepared = super::reverse::prepare(&mut args)?;
            let proxy = std::sync::Arc::new(prepared.start(sink).await?);
            let local_addr = proxy.local_addr;
            Ok(Embedded {
                local_addr,
                flows,
                stop: Box::new(move || proxy.stop()),
            })
        }
        Command::Forward(mut args) => {
            let prepared = super::forward::prepare(&mut args)?;
            let proxy = std::sync::Arc::new(prepared.start(sink, Vec::new()).await?);
            let local_addr = proxy.local_addr;
            Ok(Embedded {
                local_addr,
                flows,
                stop: Box::new(move || proxy.stop()),
            })
        }
        Command::Observe(mut args) => {
            let prepared = super::observe::prepare(&mut args)?;
            let listener = prepared.bind().await?;
            let local_addr = listener.local_addr().map_err(CommandError::runtime)?;
            let task = tokio::spawn(crate::proxy::tunnel::serve(
                listener,
                prepared.upstream,
                sink,
                prepared.settings,
                prepared.max_connections,
            ));
            Ok(Embedded {
                local_addr,
                flows,
                stop: Box::new(move || task.abort()),
            })
        }
        _ => Err(CommandError::usage(
            "only reverse, forward and observe start in-process",
        )),
    }
}
