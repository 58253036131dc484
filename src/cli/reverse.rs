//! `mtlscope reverse`: listen with TLS, relay to one upstream URL over TLS, or over plain HTTP
//! as a TLS offloader does (`--upstream http://…`, with `--forward-client-cert`).

use super::offload_args::OffloadArgs;
use super::proxy_args::ProxyArgs;
use crate::capture::client_auth::ClientAuthMode;
use crate::capture::upstream_auth::IdentityPolicy;
use crate::error::CommandError;
use crate::facts::Mode;
use crate::proxy::reverse::{ReverseOptions, ReverseProxy};
use crate::settings::settings_group;
use crate::upstream::{Engine, PlainEngine};
use clap::Args;

settings_group! {
    /// `reverse`'s own settings.
    #[derive(Debug, Default, Args, serde::Deserialize)]
    #[serde(default)]
    pub struct ReverseOnly {
        /// The server to relay to: https://HOST[:PORT], or http://HOST:PORT for a plain-HTTP
        /// backend behind the TLS offloader mtlscope plays.
        #[arg(long, value_name = "URL")]
        pub upstream: Option<String>,
        /// Without --server-cert: a further name to answer for (repeatable). The local CA
        /// issues leaves only for the upstream's host, localhost and these; a client asking
        /// for any other name gets an unrecognized_name alert (recorded).
        #[arg(long, value_name = "NAME")]
        pub server_name: Vec<String>,
        /// Close a client connection on which no byte moved for SECS, with no request in
        /// flight, together with its upstream connection (recorded; default 75, nginx's
        /// keepalive_timeout).
        #[arg(long, value_name = "SECS")]
        pub idle_timeout: Option<u64>,
    }
}

/// `mtlscope reverse` flags.
#[derive(Debug, Args)]
pub struct ReverseArgs {
    /// The upstream.
    #[command(flatten)]
    pub reverse: ReverseOnly,
    /// The shared proxy flags.
    #[command(flatten)]
    pub proxy: ProxyArgs,
    /// Playing a TLS offloader.
    #[command(flatten)]
    pub offload: OffloadArgs,
}

pub use crate::upstream::{parse_upstream, parse_upstream_url};

/// Run `mtlscope reverse` until interrupted.
pub fn run(mut args: ReverseArgs) -> Result<(), CommandError> {
    let origins = args
        .proxy
        .load("reverse", &mut [&mut args.reverse, &mut args.offload])?;
    let target_text = args.reverse.upstream.clone();
    let server_names = args.reverse.server_name.clone();
    let mut local_ca = false;
    let built = args.proxy.build(&origins, "127.0.0.1:8443", |inputs| {
        match inputs.fixed_server_cert()? {
            Some(r) => Ok(r),
            None => {
                local_ca = true;
                super::certs::local_ca_resolver(
                    inputs.ca_dir.as_deref(),
                    target_text.as_deref(),
                    &server_names,
                )
            }
        }
    })?;
    if !local_ca && !server_names.is_empty() {
        return Err(CommandError::usage(format!(
            "{}: names the local CA's leaves; with --server-cert the certificate decides the names",
            origins.name("server_name")
        )));
    }
    let served = local_ca.then(|| {
        std::sync::Arc::new(super::certs::served_names(
            target_text.as_deref(),
            &server_names,
        ))
    });
    let idle_timeout = std::time::Duration::from_secs(
        args.reverse
            .idle_timeout
            .unwrap_or(crate::proxy::context::DEFAULT_IDLE_SECS)
            .max(1),
    );
    if built.faults.has(&crate::faults::Fault::BlockRenegotiation) {
        return Err(CommandError::usage(format!(
            "{} block-renegotiation: reverse terminates TLS, so there is no renegotiation \
             to cut between client and server; it applies to observe and to forward's \
             --passthrough tunnels",
            origins.name("fault")
        )));
    }
    let target_text = target_text
        .ok_or_else(|| CommandError::usage("--upstream is required (https://HOST[:PORT])"))?;
    let (mut target, plain) = parse_upstream_url(&target_text)
        .map_err(|e| CommandError::usage(format!("{} {e}", origins.name("upstream"))))?;
    built.resolve.apply(&mut target);
    let offload = args.offload.settings(&origins, plain)?;
    if plain && built.client.client_auth.mode == ClientAuthMode::Mirror {
        return Err(CommandError::usage(
            "--client-auth mirror: a plain http:// upstream sends no CertificateRequest to mirror; use optional or required",
        ));
    }
    if plain && !matches!(built.identity, IdentityPolicy::None) {
        return Err(CommandError::usage(
            "--identity: a plain http:// upstream has no TLS to present a certificate in; pass the client's identity on with --forward-client-cert instead",
        ));
    }
    let ui = args.proxy.ui.options(built.keylog_path.clone())?;
    let rt = super::runtime()?;
    rt.block_on(async move {
        let sink = built.open_sink()?;
        let (sink, _ui) = super::ui::attach(ui, sink).await?;
        let mut session = built.session_context(Mode::Reverse, sink.clone());
        session.offload = offload.map(std::sync::Arc::new);
        session.served_names = served;
        session.idle_timeout = idle_timeout;
        if plain {
            session.engine = Engine::Plain(PlainEngine {
                timeout: built.client.timeout,
            });
        }
        let opts = ReverseOptions {
            session,
            identity: built.identity,
            target: target.clone(),
        };
        let proxy = ReverseProxy::start(built.listen, opts, built.max_connections)
            .await
            .map_err(|e| CommandError::usage(format!("--listen {}: {e}", built.listen)))?;
        eprintln!(
            "mtlscope reverse: listening on https://{} → {}{}",
            proxy.local_addr,
            if plain { "http://" } else { "" },
            target.authority()
        );
        super::until_interrupted(proxy.wait(), &built.life, built.grace, &sink).await;
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
        let (t, plain) = super::parse_upstream_url("http://127.0.0.1:8080").unwrap();
        assert!(plain);
        assert_eq!(t.port, 8080);
        assert_eq!(
            super::parse_upstream_url("http://backend").unwrap().0.port,
            80
        );
        assert!(super::parse_upstream_url("ftp://x")
            .unwrap_err()
            .contains("http://"));
    }
}
