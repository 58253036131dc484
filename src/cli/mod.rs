//! The command line: one binary, one subcommand per mode (see DESIGN.md's interface contract).

pub mod certs;
pub mod forward;
pub mod probe;
pub mod proxy_args;
pub mod reverse;
pub mod ui;
pub mod views;

use crate::error::CommandError;
use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// A debugging proxy that explains client-certificate (mutual TLS) failures.
#[derive(Debug, Parser)]
#[command(name = "mtlscope", version, about, long_about = None)]
pub struct Cli {
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
    Observe(crate::observe::ObserveArgs),
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
    init_tracing();
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
        Command::Demo => crate::demo::run(),
        Command::Forward(args) => forward::run(args),
        Command::Observe(args) => crate::observe::run_cli(args),
        Command::Probe(args) => probe::run(args),
        Command::Report(args) => views::run_report(args),
        Command::Diff(args) => views::run_diff(args),
        Command::Export(args) => views::run_export(args),
        Command::Ui(args) => ui::run(args),
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// A multi-threaded tokio runtime for the network commands.
pub fn runtime() -> Result<tokio::runtime::Runtime, CommandError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CommandError::runtime(format!("cannot start the async runtime: {e}")))
}

/// Run a listener until it ends or Ctrl-C, then flush the recording.
pub async fn until_interrupted(
    listener: impl std::future::Future<Output = ()>,
    sink: &crate::record::Sink,
) {
    tokio::select! {
        _ = listener => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    sink.flush().await;
}
