//! The web view's flags (`--ui`, `--ui-auth`, `--ui-max-flows` on the proxy modes) and the
//! `mtlscope ui FILE…` command that shows recordings.

use crate::error::CommandError;
use crate::record::Sink;
use crate::settings::settings_group;
use crate::ui::{Ui, UiOptions};
use clap::Args;
use std::net::SocketAddr;
use std::path::PathBuf;

settings_group! {
    /// The web view on a proxy mode: flags, and the same keys in `--config`.
    #[derive(Debug, Default, Clone, Args, serde::Deserialize)]
    #[serde(default)]
    pub struct UiArgs {
        /// Serve the web view on http://ADDR/ (loopback unless --allow-remote); port 0 picks
        /// one.
        #[arg(long, value_name = "ADDR")]
        pub ui: Option<String>,
        /// Require this Basic credential for the web view (needed with --allow-remote):
        /// USER:PASS, @FILE (its first line) or env:NAME (kept out of the process list).
        #[arg(long, value_name = "USER:PASS")]
        pub ui_auth: Option<String>,
        /// Flows the web view lists; older ones stay in the recording (default 10000). With
        /// --record only the newest 512 are held in memory, the rest read back when a page
        /// opens.
        #[arg(long, value_name = "N")]
        pub ui_max_flows: Option<usize>,
        /// Megabytes of flows the web view keeps in memory, the oldest dropped first (default
        /// 64); each flow's request and response text is cut to 2 KiB there.
        #[arg(long, value_name = "MB")]
        pub ui_max_mb: Option<usize>,
        /// Allow non-loopback addresses: the --ui web view there needs --ui-auth too, and
        /// forward's --listen needs --proxy-auth.
        #[arg(long)]
        pub allow_remote: bool,
    }
}

/// Flows the web view keeps when not told.
const DEFAULT_MAX_FLOWS: usize = 10_000;

/// `mtlscope ui` flags.
#[derive(Debug, Args)]
pub struct UiCmdArgs {
    /// Recordings (JSON Lines), shown in order.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Serve on http://ADDR/ (loopback unless --allow-remote).
    #[arg(long, default_value = "127.0.0.1:8099")]
    pub listen: String,
    /// Let the web view listen on a non-loopback address (requires --ui-auth).
    #[arg(long)]
    pub allow_remote: bool,
    /// Require this Basic credential: USER:PASS, @FILE or env:NAME.
    #[arg(long, value_name = "USER:PASS")]
    pub ui_auth: Option<String>,
    /// Flows kept in memory (the newest).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_FLOWS)]
    pub ui_max_flows: usize,
    /// Megabytes of flows kept in memory (the newest).
    #[arg(long, value_name = "MB", default_value_t = crate::ui::bounds::DEFAULT_MAX_MB)]
    pub ui_max_mb: usize,
    /// The key-log file written with the recording, to offer each flow's key-log lines.
    #[arg(long, value_name = "FILE")]
    pub keylog: Option<PathBuf>,
    /// Which records to show (applied while indexing).
    #[command(flatten)]
    pub filter: super::views::FilterArgs,
}

/// Check the web view's settings; `flag` names the address flag in errors.
fn options(
    flag: &str,
    listen: &str,
    allow_remote: bool,
    auth: Option<&str>,
    max_flows: usize,
    max_mb: usize,
    keylog: Option<PathBuf>,
) -> Result<UiOptions, CommandError> {
    let addr: SocketAddr = listen.parse().map_err(|e| {
        CommandError::usage(format!(
            "{flag} {listen:?}: not an address like 127.0.0.1:8099 ({e})"
        ))
    })?;
    let auth = auth
        .map(|a| super::secret::resolve("--ui-auth", a))
        .transpose()?;
    let exposed_ok = allow_remote && auth.is_some();
    if !addr.ip().is_loopback() && !exposed_ok {
        return Err(CommandError::usage(format!(
            "{flag} {addr}: the web view shows certificates, headers and bodies; on a \
             non-loopback address it needs both --allow-remote and --ui-auth USER:PASS"
        )));
    }
    if max_flows == 0 {
        return Err(CommandError::usage("--ui-max-flows: must be at least 1"));
    }
    Ok(UiOptions {
        listen: addr,
        auth,
        max_flows,
        max_mb,
        keylog,
        file: None,
        recording: None,
    })
}

impl UiArgs {
    /// The web view's settings, if `--ui` was given.
    pub fn options(&self, keylog: Option<PathBuf>) -> Result<Option<UiOptions>, CommandError> {
        match &self.ui {
            None if self.ui_auth.is_some() => {
                Err(CommandError::usage("--ui-auth: needs --ui ADDR"))
            }
            None => Ok(None),
            Some(listen) => options(
                "--ui",
                listen,
                self.allow_remote,
                self.ui_auth.as_deref(),
                self.ui_max_flows.unwrap_or(DEFAULT_MAX_FLOWS),
                self.ui_max_mb.unwrap_or(crate::ui::bounds::DEFAULT_MAX_MB),
                keylog,
            )
            .map(Some),
        }
    }
}

/// Start the web view (if asked for) and make `sink` feed it. The returned [`Ui`] must live as
/// long as the proxy.
pub async fn attach(
    opts: Option<UiOptions>,
    sink: Sink,
) -> Result<(Sink, Option<Ui>), CommandError> {
    let Some(mut opts) = opts else {
        return Ok((sink, None));
    };
    opts.recording = sink.locator();
    let ui = Ui::start(opts)
        .await
        .map_err(|e| CommandError::usage(format!("--ui: {e}")))?;
    eprintln!("mtlscope: web view on http://{}/", ui.local_addr);
    Ok((sink.with_subscriber(ui.subscriber()), Some(ui)))
}

/// Run `mtlscope ui FILE…` until interrupted.
pub fn run(args: UiCmdArgs) -> Result<(), CommandError> {
    let opts = options(
        "--listen",
        &args.listen,
        args.allow_remote,
        args.ui_auth.as_deref(),
        args.ui_max_flows,
        args.ui_max_mb,
        args.keylog.clone(),
    )?;
    if let Some(k) = &args.keylog {
        if !k.is_file() {
            return Err(CommandError::usage(format!(
                "--keylog {}: no such file",
                k.display()
            )));
        }
    }
    let filter = args.filter.filter()?;
    let started = std::time::Instant::now();
    let index = crate::ui::index::FileIndex::build(&args.files, &filter, |s| {
        eprintln!(
            "mtlscope: warning: {}",
            crate::render::report::clean(&s.to_string())
        );
    })
    .map_err(CommandError::usage)?;
    let n = index.len();
    let mut opts = opts;
    opts.file = Some(std::sync::Arc::new(index));
    let rt = super::runtime()?;
    rt.block_on(async move {
        let ui = Ui::start(opts)
            .await
            .map_err(|e| CommandError::usage(format!("--listen: {e}")))?;
        eprintln!(
            "mtlscope ui: {n} records indexed in {:.1} s; listening on http://{}/",
            started.elapsed().as_secs_f64(),
            ui.local_addr
        );
        let _ = tokio::signal::ctrl_c().await;
        Ok(())
    })
}
