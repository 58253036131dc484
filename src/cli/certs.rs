//! `mtlscope certs dev|inspect` and `mtlscope ca`.

use crate::error::CommandError;
use clap::{Args, Subcommand};
use std::path::PathBuf;

/// `mtlscope certs …`
#[derive(Debug, Args)]
pub struct CertsArgs {
    /// Which certificate job.
    #[command(subcommand)]
    pub command: CertsCommand,
}

/// The certificate jobs.
#[derive(Debug, Subcommand)]
pub enum CertsCommand {
    /// Generate the dev PKI (root, intermediate, server, and the client certificates of every
    /// failure mtlscope explains).
    Dev {
        /// Output directory.
        #[arg(long, default_value = "certs-dev/out")]
        out: PathBuf,
    },
}

/// `mtlscope ca`
#[derive(Debug, Args)]
pub struct CaArgs {
    /// Where the local CA lives (default: the user's data directory).
    #[arg(long)]
    pub ca_dir: Option<PathBuf>,
}

/// Run a `certs` job.
pub fn run(args: CertsArgs) -> Result<(), CommandError> {
    match args.command {
        CertsCommand::Dev { out } => Err(CommandError::runtime(format!(
            "certs dev is not built yet (would write to {})",
            out.display()
        ))),
    }
}

/// Run `mtlscope ca`.
pub fn run_ca(_args: CaArgs) -> Result<(), CommandError> {
    Err(CommandError::runtime("the local CA is not built yet"))
}

/// The local CA's resolver for client-facing leaves (default host: the upstream's).
pub fn local_ca_resolver(
    _ca_dir: Option<&std::path::Path>,
    _upstream: Option<&str>,
) -> Result<std::sync::Arc<dyn rustls::server::ResolvesServerCert>, CommandError> {
    Err(CommandError::usage(
        "--server-cert CERT,KEY is required until the local CA is built",
    ))
}
