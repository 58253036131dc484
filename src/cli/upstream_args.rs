//! The settings of the upstream leg that `reverse`, `forward` and `probe` share: the identities
//! mtlscope presents, the trust anchors it checks the server against, name overrides and the
//! time bound.

use super::flag_values::{load_root_certs, pkcs12_password};
use super::run_args::in_file;
use crate::error::CommandError;
use crate::pki::load::Identity;
use crate::settings::{settings_group, CertKey, Origins};
use crate::upstream::Resolve;
use rustls::pki_types::CertificateDer;
use std::path::PathBuf;
use std::time::Duration;

settings_group! {
    /// The upstream leg: flags, and the same keys in `--config`.
    #[derive(Clone, Debug, Default, clap::Args, serde::Deserialize)]
    #[serde(default)]
    pub struct UpstreamArgs {
        /// Identity mtlscope presents upstream: CERT,KEY (PEM) or FILE.p12 / FILE.pfx (password
        /// from --pkcs12-password-env or --pkcs12-password-file, never the command line).
        /// Repeatable; with several, the first whose chain matches the server's CA names is
        /// presented.
        #[arg(long, value_name = "CERT,KEY|FILE.p12")]
        pub identity: Vec<CertKey>,
        /// curl's spelling of `--identity CERT,KEY`: the certificate (with `--key`), or a
        /// FILE.p12 alone. Repeatable; the n-th `--cert` pairs with the n-th `--key`.
        #[arg(long, value_name = "CERT")]
        #[serde(skip)]
        pub cert: Vec<PathBuf>,
        /// curl's spelling: the private key of the matching `--cert`.
        #[arg(long, value_name = "KEY")]
        #[serde(skip)]
        pub key: Vec<PathBuf>,
        /// Environment variable holding the password of PKCS#12 identities.
        #[arg(long, value_name = "VAR")]
        pub pkcs12_password_env: Option<String>,
        /// File whose first line is the password of PKCS#12 identities.
        #[arg(long, value_name = "FILE")]
        pub pkcs12_password_file: Option<PathBuf>,
        /// Trust anchors for the upstream's certificate (repeatable; default: the system store).
        #[arg(long, value_name = "FILE")]
        pub upstream_ca: Vec<PathBuf>,
        /// Do not verify the upstream's certificate (the result is still recorded).
        #[arg(long)]
        pub insecure_upstream: bool,
        /// Connect to ADDR for HOST:PORT instead of resolving it (repeatable, like curl's); the
        /// server name and certificate checks still use HOST.
        #[arg(long, value_name = "HOST:PORT:ADDR")]
        pub resolve: Vec<String>,
        /// Bound, in seconds, on each connect, handshake, request head and response head
        /// (default 10).
        #[arg(long, value_name = "SECS")]
        pub timeout: Option<u64>,
        /// A CRL (PEM or DER) to check certificates against, offline (repeatable): mtlscope's
        /// identities at start-up, and with --check-revocation the chains clients present.
        #[arg(long, value_name = "FILE")]
        pub crl: Vec<PathBuf>,
    }
}

impl UpstreamArgs {
    /// Turn curl's `--cert`/`--key` into `--identity` entries, before the config file is
    /// read: then the file's `identity` list gives way to them as to any `--identity`.
    pub fn fold_curl_spellings(&mut self) -> Result<(), CommandError> {
        let folded = super::lint::curl_style_identities(&self.cert, &self.key)?;
        self.identity.extend(folded);
        self.cert.clear();
        self.key.clear();
        Ok(())
    }

    /// Every identity named, each loaded; errors name the flag or the file's line.
    pub fn identities(&self, origins: &Origins) -> Result<Vec<Identity>, CommandError> {
        self.identity
            .iter()
            .map(|ck| {
                self.load_identity(ck)
                    .map_err(|e| CommandError::usage(format!("{}: {e}", origins.name("identity"))))
            })
            .collect()
    }

    /// The revocation checker for these settings: the `--crl` files, and fetching from the
    /// URLs certificates name.
    pub fn revocation(
        &self,
        origins: &Origins,
    ) -> Result<std::sync::Arc<crate::revocation::Checker>, CommandError> {
        crate::revocation::Checker::new(&self.crl, true)
            .map(std::sync::Arc::new)
            .map_err(|e| CommandError::usage(format!("{}: {e}", origins.name("crl"))))
    }

    /// [`UpstreamArgs::identities`], each checked for revocation (CRLs from `--crl` and its
    /// CRL distribution points, its OCSP responder; each fetch bounded); a revoked identity is
    /// warned about on stderr and keeps the answer for the records.
    pub fn checked_identities(&self, origins: &Origins) -> Result<Vec<Identity>, CommandError> {
        let mut ids = self.identities(origins)?;
        if ids.is_empty() {
            return Ok(ids);
        }
        let checker = self.revocation(origins)?;
        for id in &mut ids {
            id.revocation = checker.check_chain_blocking(&id.chain);
            for check in &id.revocation {
                if let Some(w) = crate::revocation::warning(&id.label, check) {
                    eprintln!("mtlscope: warning: {w}");
                }
            }
        }
        Ok(ids)
    }

    /// Load one identity, a PKCS#12 file with this group's password settings.
    pub fn load_identity(&self, ck: &CertKey) -> Result<Identity, String> {
        ck.load(|| self.pkcs12_password(None, None))
    }

    /// The PKCS#12 password: the given rule's own variable or file, else this group's, else
    /// empty.
    pub fn pkcs12_password(
        &self,
        env: Option<&str>,
        file: Option<&std::path::Path>,
    ) -> Result<String, String> {
        match (env, file) {
            (None, None) => pkcs12_password(
                self.pkcs12_password_env.as_deref(),
                self.pkcs12_password_file.as_deref(),
            ),
            _ => pkcs12_password(env, file),
        }
    }

    /// The `upstream_ca` files, each with where it was named.
    pub fn ca_files(&self, origins: &Origins) -> Vec<(String, PathBuf)> {
        let named = origins.name("upstream_ca");
        self.upstream_ca
            .iter()
            .map(|p| (named.clone(), p.clone()))
            .collect()
    }

    /// The trust anchors: the `upstream_ca` files, or the system store.
    pub fn root_certs(
        &self,
        origins: &Origins,
    ) -> Result<Vec<CertificateDer<'static>>, CommandError> {
        load_root_certs(&self.ca_files(origins))
    }

    /// The `--resolve` overrides.
    pub fn resolve(&self, origins: &Origins) -> Result<Resolve, CommandError> {
        Resolve::parse(&self.resolve).map_err(|e| in_file(e, origins, "resolve"))
    }

    /// `--timeout` (at least a second; default 10).
    pub fn timeout(&self, origins: &Origins) -> Result<Duration, CommandError> {
        match self.timeout.unwrap_or(10) {
            0 => Err(CommandError::usage(format!(
                "{}: must be at least 1 second",
                origins.name("timeout")
            ))),
            secs => Ok(Duration::from_secs(secs)),
        }
    }
}
