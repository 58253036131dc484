//! The command line: one binary, one subcommand per mode (see DESIGN.md's interface contract).

pub mod analyze;
pub mod certs;
pub mod choose;
pub mod demo;
pub mod embed;
pub mod explain;
pub mod flag_values;
pub mod forward;
pub mod lint;
pub mod observe;
pub mod offload_args;
pub mod printer;
pub mod probe;
pub mod proxy_args;
pub mod reverse;
pub mod run_args;
pub mod secret;
#[cfg(test)]
mod settings_tests;
pub mod ui;
pub mod upstream_args;
pub mod views;

use crate::error::CommandError;
use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// A debugging proxy that explains client-certificate (mutual TLS) failures.
#[derive(Debug, Parser)]
#[command(
    name = "mtlscope",
    version,
    about,
    long_about = None,
    after_help = "Logging: mtlscope's own diagnostics go to stderr at `warn`; raise them with \
                  --log-level debug, or RUST_LOG (e.g. RUST_LOG=mtlscope=debug), which --log-level \
                  overrides. -v/--explain on reverse, forward, observe and report prints each \
                  finding's evidence and fix."
)]
pub struct Cli {
    /// Level of mtlscope's own log on stderr: error, warn, info, debug or trace (or a
    /// RUST_LOG-style filter); default: RUST_LOG, else warn.
    #[arg(long, global = true, value_name = "LEVEL")]
    pub log_level: Option<String>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Generate the dev PKI, or inspect certificates.
    Certs(certs::CertsArgs),
    /// Print where mtlscope's local CA is and how to trust it.
    Ca(certs::CaArgs),
    /// Run the whole thing on an embedded default: dev PKI, an in-process server that requires
    /// client certificates, mtlscope in front of it, and six clients.
    Demo,
    /// An HTTP proxy (plain HTTP and CONNECT) that intercepts TLS to hosts in scope.
    Forward(forward::ForwardArgs),
    /// Listen with TLS and relay to one upstream over TLS, recording both legs.
    Reverse(reverse::ReverseArgs),
    /// Relay TCP without terminating TLS and record what the real client and server did.
    Observe(observe::ObserveArgs),
    /// Check once how a server asks for client certificates (in the handshake or later, with
    /// which CA names) and what it does with none and with each given identity.
    Probe(probe::ProbeArgs),
    /// A table (or HTML) report of recordings: one row per record, then counts per finding.
    Report(views::ReportArgs),
    /// Two recorded flows side by side, fact by fact, differences first.
    Diff(views::DiffArgs),
    /// Export a recording as HAR 1.2, with mtlscope's facts and findings in custom fields.
    Export(views::ExportArgs),
    /// Show recordings in the web view: flow list, handshake ladder, findings, comparison.
    Ui(ui::UiCmdArgs),
    /// What a vendor's error words (an ALB or Google Cloud reason code, nginx's FAILED:…, a
    /// Java, Go or Chrome error, an IIS sub-status) mean in mtlscope's catalogue, and which
    /// command would tell the candidates apart.
    Explain(explain::ExplainArgs),
    /// Diagnose every TLS connection in a packet capture (pcap, pcapng), like observe.
    Analyze(analyze::AnalyzeArgs),
}

/// Parse the command line, run the command, map its error to the contract's exit code.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                    ExitCode::SUCCESS
                }
                _ => ExitCode::from(2),
            };
        }
    };
    if let Err(e) = init_tracing(cli.log_level.as_deref()) {
        eprintln!("mtlscope: {e}");
        return ExitCode::from(e.code);
    }
    // The run id carries the start time: fix it now.
    let _ = crate::record::run_id();
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mtlscope: {e}");
            ExitCode::from(e.code)
        }
    }
}

fn run(command: Command) -> Result<(), CommandError> {
    match command {
        Command::Certs(args) => certs::run(args),
        Command::Ca(args) => certs::run_ca(args),
        Command::Reverse(args) => reverse::run(args),
        Command::Demo => demo::run(),
        Command::Forward(args) => forward::run(args),
        Command::Observe(args) => observe::run(args),
        Command::Probe(args) => probe::run(args),
        Command::Report(args) => views::run_report(args),
        Command::Diff(args) => views::run_diff(args),
        Command::Export(args) => views::run_export(args),
        Command::Ui(args) => ui::run(args),
        Command::Explain(args) => explain::run(args),
        Command::Analyze(args) => analyze::run(args),
    }
}

fn init_tracing(level: Option<&str>) -> Result<(), CommandError> {
    let filter = match level {
        Some(l) => tracing_subscriber::EnvFilter::try_new(l)
            .map_err(|e| CommandError::usage(format!("--log-level {l:?}: {e}")))?,
        None => tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(stderr_colour(
            std::io::IsTerminal::is_terminal(&std::io::stderr()),
            std::env::var_os("NO_COLOR").as_deref(),
        ))
        .try_init();
    Ok(())
}

/// Colour the log only on a terminal, and never when `NO_COLOR` is set to anything but the
/// empty string (no-color.org).
fn stderr_colour(terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    terminal && no_color.is_none_or(|v| v.is_empty())
}

/// The address for `--listen TEXT`: an IP address and port, or a host name and port
/// (`localhost:8443`) resolved once at start-up. A name with several addresses listens on the
/// first IPv4 one (else the first), so `127.0.0.1` reaches a `localhost` listener; loopback
/// checks apply to the address chosen.
pub fn listen_addr(text: &str) -> Result<std::net::SocketAddr, CommandError> {
    use std::net::ToSocketAddrs;
    if let Ok(addr) = text.parse() {
        return Ok(addr);
    }
    let bad = |why: String| {
        CommandError::usage(format!(
            "--listen {text:?}: {why} (expected HOST:PORT, e.g. 127.0.0.1:8443 or localhost:8443)"
        ))
    };
    let Some((host, port)) = text.rsplit_once(':') else {
        return Err(bad("no port".into()));
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(bad("the host is empty".into()));
    }
    let port: u16 = port
        .parse()
        .map_err(|_| bad(format!("the port {port:?} is not a number from 0 to 65535")))?;
    let addrs: Vec<std::net::SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|e| bad(format!("cannot resolve {host:?}: {e}")))?
        .collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .copied()
        .ok_or_else(|| bad(format!("{host:?} resolves to no address")))
}

/// The tokio runtime for the network commands: one worker per CPU the process may run on, and
/// with a single CPU (`taskset`, a one-CPU container) a single-threaded scheduler, as an event
/// loop would be: work stealing between threads that share one CPU only adds hand-offs.
pub fn runtime() -> Result<tokio::runtime::Runtime, CommandError> {
    // The first handshake would otherwise pay for seeding the random generator.
    crate::warm::thread();
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut builder = if cpus == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    builder
        .enable_all()
        .on_thread_start(crate::warm::thread)
        .build()
        .map_err(|e| CommandError::runtime(format!("cannot start the async runtime: {e}")))
}

/// Run a listener until SIGTERM/SIGINT (or until it ends), then stop like a server should:
/// no new connections, in-flight exchanges finish within `grace`, every record is written and
/// synced. Says what the recording got.
pub async fn until_interrupted(
    listener: impl std::future::Future<Output = ()>,
    life: &crate::lifecycle::Lifecycle,
    grace: std::time::Duration,
    sink: &crate::record::Sink,
) {
    tokio::select! {
        _ = listener => {}
        _ = crate::lifecycle::stop_signal() => {
            eprintln!("mtlscope: stopping (in-flight exchanges get {} s)", grace.as_secs());
        }
    }
    if !life.stop(grace).await {
        eprintln!("mtlscope: some connections did not end in time; their records may be missing");
    }
    let stats = sink.flush().await;
    if stats.failed > 0 {
        eprintln!(
            "mtlscope: {} records could not be written (see the log above)",
            stats.failed
        );
    }
    tracing::info!(
        written = stats.written,
        compacted = stats.compacted,
        rotations = stats.rotations,
        "recording closed"
    );
}

#[cfg(test)]
mod tests {
    use super::stderr_colour;
    use std::ffi::OsStr;

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        assert!(stderr_colour(true, None));
        assert!(stderr_colour(true, Some(OsStr::new(""))));
        assert!(!stderr_colour(true, Some(OsStr::new("1"))));
        assert!(!stderr_colour(false, None));
    }
}
