//! The settings every listening mode shares (`reverse`, `forward`, `observe`): where to listen,
//! the recording and the terminal output, how to stop, and the faults to play.

use super::flag_values::{parse_size, DEFAULT_GRACE_SECS};
use crate::error::CommandError;
use crate::faults::Faults;
use crate::record::RecordSettings;
use crate::settings::{settings_group, Origins};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

settings_group! {
    /// Listening, recording and stopping: flags, and the same keys in `--config`.
    #[derive(Clone, Debug, Default, clap::Args, serde::Deserialize)]
    #[serde(default)]
    pub struct RunArgs {
        /// Address to listen on: HOST:PORT, loopback unless told otherwise (default
        /// 127.0.0.1:8443; forward 127.0.0.1:8080).
        #[arg(long, value_name = "HOST:PORT")]
        pub listen: Option<String>,
        /// Append one JSON object per flow to FILE (JSON Lines, flushed per line).
        #[arg(long, value_name = "FILE")]
        pub record: Option<PathBuf>,
        /// Rotate the recording when it reaches SIZE (e.g. 100M, 1G): FILE becomes FILE.1,
        /// FILE.1 becomes FILE.2, ….
        #[arg(long, value_name = "SIZE")]
        pub record_max_size: Option<String>,
        /// Do not print a line per flow.
        #[arg(long, short)]
        pub quiet: bool,
        /// Under each flow, print every finding's evidence and fix (what `demo` shows).
        #[arg(long, short = 'v')]
        pub explain: bool,
        /// On SIGTERM/SIGINT, seconds in-flight exchanges get to finish before they are ended
        /// (every record is written either way; a second signal exits at once; default 10).
        #[arg(long, value_name = "SECS")]
        pub grace: Option<u64>,
        /// At most N client connections at once; more are closed at accept and recorded.
        #[arg(long, value_name = "N")]
        pub max_connections: Option<usize>,
        /// Behave like a broken middlebox on purpose (repeatable): strip-client-cert,
        /// empty-ca-list, ca-list=FILE, cut-on-cert-request, alert=NAME,
        /// allow-fingerprint=SHA256, delay=STEP:MS; block-renegotiation (observe and forward's
        /// --passthrough tunnels only).
        #[arg(long, value_name = "NAME[=VALUE]")]
        pub fault: Vec<String>,
    }
}

impl RunArgs {
    /// The address to listen on (`default` when not set).
    pub fn listen_addr(
        &self,
        default: &str,
        origins: &Origins,
    ) -> Result<SocketAddr, CommandError> {
        let text = self.listen.as_deref().unwrap_or(default);
        super::listen_addr(text).map_err(|e| in_file(e, origins, "listen"))
    }

    /// How the recording is written.
    pub fn recording(&self, origins: &Origins) -> Result<RecordSettings, CommandError> {
        let max_size = match &self.record_max_size {
            Some(v) => Some(parse_size(v).map_err(|e| {
                CommandError::usage(format!("{} {v:?}: {e}", origins.name("record_max_size")))
            })?),
            None => None,
        };
        Ok(RecordSettings {
            path: self.record.clone(),
            max_size,
        })
    }

    /// The terminal printer to attach to the sink: none with `--quiet`.
    pub fn printer(&self) -> Option<super::printer::Printer> {
        (!self.quiet).then(|| super::printer::Printer::new(self.explain))
    }

    /// `--grace`.
    pub fn grace(&self) -> Duration {
        Duration::from_secs(self.grace.unwrap_or(DEFAULT_GRACE_SECS))
    }

    /// The `--fault`s, parsed.
    pub fn faults(&self, origins: &Origins) -> Result<Faults, CommandError> {
        Faults::parse(&self.fault).map_err(|e| {
            if origins.from_file("fault") {
                CommandError::usage(format!("{}: {e}", origins.name("fault")))
            } else {
                CommandError::usage(e)
            }
        })
    }
}

/// A flag-value error about `key`, restated for the config file when the value came from there.
pub fn in_file(e: CommandError, origins: &Origins, key: &str) -> CommandError {
    if origins.from_file(key) {
        CommandError {
            message: format!("{}: {}", origins.name(key), e.message),
            ..e
        }
    } else {
        e
    }
}
