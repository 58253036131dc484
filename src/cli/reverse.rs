//! `mtlscope reverse`: listen with TLS, relay to one upstream URL over TLS.

use super::proxy_args::ProxyArgs;
use crate::error::CommandError;
use crate::facts::Mode;
use crate::proxy::reverse::{ReverseOptions, ReverseProxy};
use crate::record::Sink;
use crate::upstream::Target;
use clap::Args;

/// `mtlscope reverse` flags.
#[derive(Debug, Args)]
pub struct ReverseArgs {
    /// The server to relay to: https://HOST[:PORT].
    #[arg(long)]
    pub upstream: Option<String>,
    /// The shared proxy flags.
    #[command(flatten)]
    pub proxy: ProxyArgs,
    /// Let the --ui web view listen on a non-loopback address (requires --ui-auth).
    #[arg(long)]
    pub allow_remote: bool,
}

/// Parse `https://host[:port]` into a target.
pub fn parse_upstream(url: &str) -> Result<Target, String> {
    let uri: http::Uri = url
        .parse()
        .map_err(|e| format!("{url:?} is not a URL: {e}"))?;
    match uri.scheme_str() {
        Some("https") => {}
        Some(other) => {
            return Err(format!(
                "{url:?}: scheme {other:?} is not supported; use https://"
            ))
        }
        None => return Err(format!("{url:?}: expected https://HOST[:PORT]")),
    }
    let host = uri.host().ok_or_else(|| format!("{url:?}: no host"))?;
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    Ok(Target::new(host, uri.port_u16().unwrap_or(443)))
}

/// Run `mtlscope reverse` until interrupted.
pub fn run(args: ReverseArgs) -> Result<(), CommandError> {
    let mut target_text = args.upstream.clone();
    let built = args.proxy.build("127.0.0.1:8443", |inputs| {
        if target_text.is_none() {
            target_text = inputs.upstream.clone();
        }
        match inputs.fixed_server_cert()? {
            Some(r) => Ok(r),
            None => {
                super::certs::local_ca_resolver(inputs.ca_dir.as_deref(), target_text.as_deref())
            }
        }
    })?;
    let target_text = target_text
        .ok_or_else(|| CommandError::usage("--upstream is required (https://HOST[:PORT])"))?;
    let mut target =
        parse_upstream(&target_text).map_err(|e| CommandError::usage(format!("--upstream {e}")))?;
    built.resolve.apply(&mut target);
    let ui = args
        .proxy
        .ui
        .options(args.allow_remote, built.keylog_path.clone())?;
    let rt = super::runtime()?;
    rt.block_on(async move {
        let sink = Sink::open(built.record.as_deref(), built.print).map_err(CommandError::usage)?;
        let (sink, _ui) = super::ui::attach(ui, sink).await?;
        let opts = ReverseOptions {
            session: built.session_context(Mode::Reverse, sink.clone()),
            identity: built.identity,
            target: target.clone(),
        };
        let proxy = ReverseProxy::start(built.listen, opts)
            .await
            .map_err(|e| CommandError::usage(format!("--listen {}: {e}", built.listen)))?;
        eprintln!(
            "mtlscope reverse: listening on https://{} → {}",
            proxy.local_addr,
            target.authority()
        );
        super::until_interrupted(proxy.wait(), &sink).await;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::parse_upstream;

    #[test]
    fn upstream_urls() {
        let t = parse_upstream("https://localhost:9443").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("localhost", 9443));
        assert_eq!(parse_upstream("https://example.com").unwrap().port, 443);
        assert_eq!(parse_upstream("https://[::1]:8443").unwrap().host, "::1");
        assert!(parse_upstream("http://x").unwrap_err().contains("https"));
        assert!(parse_upstream("localhost:1").is_err());
    }
}
