//! The `reverse` flags that make mtlscope play a TLS offloader: `--forward-client-cert`,
//! `--forward-client-cert-verify`, `--expect-client-cert-header`, merged with the config file.

use crate::config::Loaded;
use crate::error::CommandError;
use crate::offload::OffloadSettings;
use clap::Args;

/// The offloader flags.
#[derive(Debug, Args, Default)]
pub struct OffloadArgs {
    /// Pass the client's certificate on in a TLS offloader's headers (repeatable): rfc9440,
    /// xfcc, nginx, aws-alb, aws-alb-passthrough, azure-appgw, or header:NAME=TEMPLATE.
    /// Incoming headers of the same names are always removed first.
    #[arg(long, value_name = "FORMAT")]
    pub forward_client_cert: Vec<String>,
    /// Also pass on the verify result (SUCCESS, NONE, FAILED:reason), even without a certificate.
    #[arg(long)]
    pub forward_client_cert_verify: bool,
    /// The header the backend reads the identity from (for the diagnosis of its 401/403s).
    #[arg(long, value_name = "NAME")]
    pub expect_client_cert_header: Option<String>,
}

impl OffloadArgs {
    /// The offloader settings (flags win over the config file), or None when mtlscope plays no
    /// offloader: no flag, no config key, and a TLS upstream.
    pub fn settings(
        &self,
        loaded: &Loaded,
        plain_upstream: bool,
    ) -> Result<Option<OffloadSettings>, CommandError> {
        let c = &loaded.config;
        let (formats, formats_named) = if self.forward_client_cert.is_empty() {
            (&c.forward_client_cert, loaded.key("forward_client_cert"))
        } else {
            (
                &self.forward_client_cert,
                "--forward-client-cert".to_string(),
            )
        };
        let (expected, expected_named) = match &self.expect_client_cert_header {
            Some(e) => (Some(e.as_str()), "--expect-client-cert-header".to_string()),
            None => (
                c.expect_client_cert_header.as_deref(),
                loaded.key("expect_client_cert_header"),
            ),
        };
        let verify =
            self.forward_client_cert_verify || c.forward_client_cert_verify.unwrap_or(false);
        if formats.is_empty() && expected.is_none() && !verify && !plain_upstream {
            return Ok(None);
        }
        OffloadSettings::parse(formats, verify, expected, (&formats_named, &expected_named))
            .map(Some)
            .map_err(|e| CommandError::usage(e.to_string()))
    }
}
