//! `mtlscope observe`: its flags, checked, then the TCP relay of [`crate::proxy::tunnel`]
//! until interrupted.

use crate::error::CommandError;
use crate::faults::Fault;
use crate::lifecycle::Lifecycle;
use crate::proxy::tunnel::{serve, TunnelSettings};
use crate::record::Sink;
use std::path::PathBuf;
use std::time::Duration;
use tokio::net::TcpListener;

crate::settings::settings_group! {
    /// `observe`'s own settings.
    #[derive(Debug, Default, clap::Args, serde::Deserialize)]
    #[serde(default)]
    pub struct ObserveOnly {
        /// The real server, as `host:port`.
        #[arg(long, value_name = "HOST:PORT")]
        pub upstream: Option<String>,
        /// Close a connection on which no byte moved for SECS, either way (recorded; default
        /// 300).
        #[arg(long, value_name = "SECS")]
        pub idle_timeout: Option<u64>,
    }
}

/// Flags of `mtlscope observe`.
#[derive(Debug, clap::Args)]
pub struct ObserveArgs {
    /// TOML file holding any of these settings under the same names (see
    /// config/example.toml); flags win over it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The upstream and the idle bound.
    #[command(flatten)]
    pub observe: ObserveOnly,
    /// Listening, recording, stopping; `--fault block-renegotiation` cuts the connection when a
    /// TLS 1.2 renegotiation starts (a firewall that blocks it).
    #[command(flatten)]
    pub run: super::run_args::RunArgs,
    /// The web view.
    #[command(flatten)]
    pub ui: super::ui::UiArgs,
}

/// Validate the flags, then relay until interrupted.
pub fn run(mut args: ObserveArgs) -> Result<(), CommandError> {
    let origins = crate::settings::load(
        args.config.as_deref(),
        "observe",
        &mut [&mut args.observe, &mut args.run, &mut args.ui],
    )
    .map_err(CommandError::usage)?;
    let listen = args.run.listen_addr("127.0.0.1:8443", &origins)?;
    let upstream = match &args.observe.upstream {
        Some(u) => {
            parse_upstream(u).map_err(|e| super::run_args::in_file(e, &origins, "upstream"))?
        }
        None => return Err(CommandError::usage("--upstream HOST:PORT is required")),
    };
    let faults = args.run.faults(&origins)?;
    let block_renegotiation = faults.has(&Fault::BlockRenegotiation);
    if args.run.fault.len() > usize::from(block_renegotiation) {
        return Err(CommandError::usage(format!(
            "{}: observe does not terminate TLS; only block-renegotiation applies",
            origins.name("fault")
        )));
    }
    let recording = args.run.recording(&origins)?;
    let printer = args.run.printer();
    let idle_secs = args
        .observe
        .idle_timeout
        .unwrap_or(super::forward::DEFAULT_IDLE_SECS);
    let settings = TunnelSettings {
        block_renegotiation,
        idle_timeout: Duration::from_secs(idle_secs.max(1)),
        life: Lifecycle::new(),
    };
    let ui = args.ui.options(None)?;
    let grace = args.run.grace();
    let max_connections = args.run.max_connections;
    let rt = super::runtime()?;
    rt.block_on(async move {
        let sink =
            Sink::open(&recording).map_err(|e| CommandError::usage(format!("--record: {e}")))?;
        let sink = super::printer::Printer::attach(printer, sink);
        let (sink, _ui) = super::ui::attach(ui, sink).await?;
        let listener = TcpListener::bind(listen)
            .await
            .map_err(|e| CommandError::usage(format!("--listen {listen}: cannot listen: {e}")))?;
        let local = listener.local_addr().map_err(CommandError::runtime)?;
        eprintln!("mtlscope observe: listening on {local}, relaying to {upstream}");
        let life = settings.life.clone();
        super::until_interrupted(
            serve(listener, upstream, sink.clone(), settings, max_connections),
            &life,
            grace,
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
