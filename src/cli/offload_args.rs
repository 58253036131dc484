//! The `reverse` settings that make mtlscope play a TLS offloader: `--forward-client-cert`,
//! `--forward-client-cert-verify`, `--expect-client-cert-header` (flags and config keys).

use crate::error::CommandError;
use crate::offload::OffloadSettings;
use crate::settings::{settings_group, Origins};
use clap::Args;

settings_group! {
    /// The offloader settings.
    #[derive(Debug, Args, Default, serde::Deserialize)]
    #[serde(default)]
    pub struct OffloadArgs {
        /// Pass the client's certificate on in a TLS offloader's headers (repeatable): rfc9440,
        /// xfcc, nginx, aws-alb, aws-alb-passthrough, azure-appgw, or header:NAME=TEMPLATE.
        /// Incoming headers of the same names are always removed first.
        #[arg(long, value_name = "FORMAT")]
        pub forward_client_cert: Vec<String>,
        /// Also pass on the verify result (SUCCESS, NONE, FAILED:reason), even without a
        /// certificate.
        #[arg(long)]
        pub forward_client_cert_verify: bool,
        /// The header the backend reads the identity from (for the diagnosis of its 401/403s).
        /// Incoming headers of this name are removed too.
        #[arg(long, value_name = "NAME")]
        pub expect_client_cert_header: Option<String>,
        /// Also pass on a certificate mtlscope could not verify against --client-ca (by
        /// default it is withheld, as Envoy and AWS ALB in verify mode do), always with its
        /// verify status (nginx's FAILED:reason, or X-Client-Cert-Verify).
        #[arg(long)]
        pub forward_client_cert_unverified: bool,
    }
}

impl OffloadArgs {
    /// The offloader settings, or None when mtlscope plays no offloader: none of these set and
    /// a TLS upstream.
    pub fn settings(
        &self,
        origins: &Origins,
        plain_upstream: bool,
    ) -> Result<Option<OffloadSettings>, CommandError> {
        let expected = self.expect_client_cert_header.as_deref();
        let verify = self.forward_client_cert_verify;
        if self.forward_client_cert.is_empty() && expected.is_none() && !verify && !plain_upstream {
            return Ok(None);
        }
        let formats_named = origins.name("forward_client_cert");
        let expected_named = origins.name("expect_client_cert_header");
        let names = (formats_named.as_str(), expected_named.as_str());
        let mut settings =
            OffloadSettings::parse(&self.forward_client_cert, verify, expected, names)
                .map_err(|e| CommandError::usage(e.to_string()))?;
        settings.forward_unverified = self.forward_client_cert_unverified;
        Ok(Some(settings))
    }
}
