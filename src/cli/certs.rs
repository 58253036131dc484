//! `mtlscope certs dev|inspect` and `mtlscope ca`.

use crate::error::CommandError;
use crate::pki::dev::generate_recipe;
use crate::pki::inspect::{self, InspectError};
use crate::pki::local_ca::{self, LocalCa};
use crate::pki::recipe::Recipe;
use clap::{Args, Subcommand};
use std::path::PathBuf;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// `certs inspect`'s exit code when a chain would not work as a client certificate.
pub const NOT_USABLE: u8 = 3;

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
        /// Recipe to generate instead of the built-in one (see certs-dev/recipe.toml).
        #[arg(long, value_name = "FILE")]
        recipe: Option<PathBuf>,
    },
    /// Show what certificate files hold and whether each chain would work as a client
    /// certificate (optionally against a server's acceptable-CA list, trust anchors, and its
    /// private key).
    ///
    /// Exit codes: 0 every chain is usable, 3 at least one is not (expired or not yet valid,
    /// not for client authentication, acceptable-CA list not satisfied, does not verify
    /// against --trust, key does not match), 2 bad usage or unreadable files.
    Inspect {
        /// PEM (or DER) files, each a chain: leaf first, then intermediates.
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
        /// PEM file of CA certificates whose subjects form the acceptable-CA list to check
        /// against (what a server would send in its CertificateRequest).
        #[arg(long, value_name = "FILE")]
        ca_names: Option<PathBuf>,
        /// PEM file of trust anchors: would the chain verify as a client certificate against
        /// them (what `openssl verify -purpose sslclient -CAfile FILE` answers)?
        #[arg(long, value_name = "CA.pem")]
        trust: Option<PathBuf>,
        /// Private key (PEM): does it belong to the leaf?
        #[arg(long, value_name = "KEY")]
        key: Option<PathBuf>,
        /// Judge validity at this instant (RFC 3339) instead of now.
        #[arg(long, value_name = "RFC3339")]
        at: Option<String>,
        /// Also say which of FILES each client stack would send to the CertificateRequest of
        /// this server or recorded flow (what `certs choose --for` answers).
        #[arg(long = "for", value_name = "URL|RECORDING[:N]")]
        for_: Option<String>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Which of several certificates each client TLS stack (OpenSSL, Java, Go, Schannel,
    /// Chrome, Firefox) would send to a server's CertificateRequest, and why it skips the
    /// others.
    Choose(super::choose::ChooseArgs),
}

/// `mtlscope ca`
#[derive(Debug, Args)]
pub struct CaArgs {
    /// Where the local CA lives (default: the user's data directory).
    #[arg(long)]
    pub ca_dir: Option<PathBuf>,
    /// Print only the certificate's path (for `curl --cacert "$(mtlscope ca --path)"`).
    #[arg(long)]
    pub path: bool,
    /// Create the CA name-constrained to NAME and its subdomains (repeatable; an IP address
    /// permits that address): a leaked CA then cannot vouch for other sites. Only when the
    /// CA is created.
    #[arg(long, value_name = "NAME")]
    pub ca_names: Vec<String>,
}

/// Run a `certs` job.
pub fn run(args: CertsArgs) -> Result<(), CommandError> {
    match args.command {
        CertsCommand::Choose(args) => super::choose::run(args),
        CertsCommand::Dev { out, recipe } => {
            let recipe = match recipe {
                Some(path) => Recipe::from_file(&path)?,
                None => Recipe::embedded()?,
            };
            let generated = generate_recipe(&recipe, &out)?;
            crate::out!("{}", generated.describe());
            let (good, bundle) = (out.join("client-good.pem"), out.join("ca-bundle.pem"));
            if good.exists() && bundle.exists() {
                crate::outln!(
                    "\ntry: mtlscope certs inspect {} --ca-names {}",
                    good.display(),
                    bundle.display()
                );
            }
            Ok(())
        }
        CertsCommand::Inspect {
            files,
            ca_names,
            trust,
            key,
            at,
            for_,
            json,
        } => {
            let would_send = match &for_ {
                Some(f) => Some(super::choose::would_send(f, &files, key.as_deref(), json)?),
                None => None,
            };
            let at = match at {
                Some(text) => OffsetDateTime::parse(&text, &Rfc3339).map_err(|e| {
                    CommandError::usage(format!(
                        "--at {text:?}: not an RFC 3339 time (e.g. 2030-01-01T00:00:00Z): {e}"
                    ))
                })?,
                None => OffsetDateTime::now_utc(),
            };
            let checks = inspect::Checks {
                ca_names: ca_names.as_deref(),
                trust: trust.as_deref(),
                key: key.as_deref(),
            };
            let report = inspect::inspect_with(&files, checks, at)
                .map_err(|e: InspectError| CommandError::usage(e))?;
            if json {
                let mut value = serde_json::to_value(&report)
                    .map_err(|e| CommandError::runtime(format!("cannot encode the report: {e}")))?;
                if let Some(w) = would_send {
                    value["would_send"] = w;
                }
                crate::outln!("{value:#}");
            } else {
                crate::out!("{}", crate::pki::inspect_text::render_text(&report));
                if let Some(serde_json::Value::String(text)) = would_send {
                    crate::out!("\nWhat each client would send:\n{text}");
                }
            }
            let unusable = report.files.iter().filter(|f| !f.usable).count();
            if unusable > 0 {
                return Err(CommandError {
                    code: NOT_USABLE,
                    message: format!(
                        "certs inspect: {unusable} of {} chains would not work as a client \
                         certificate",
                        report.files.len()
                    ),
                });
            }
            Ok(())
        }
    }
}

/// Run `mtlscope ca`.
pub fn run_ca(args: CaArgs) -> Result<(), CommandError> {
    let dir = match args.ca_dir.as_deref() {
        Some(dir) => dir.to_path_buf(),
        None => LocalCa::default_dir()?,
    };
    let ca = LocalCa::open_or_create_for(&dir, &args.ca_names)?;
    if args.path {
        crate::outln!("{}", ca.cert_path().display());
        return Ok(());
    }
    let subject = crate::cert::summarize(ca.ca_der())
        .map(|s| s.subject)
        .unwrap_or_default();
    crate::outln!(
        "{} mtlscope's local CA ({subject}):",
        if ca.created() { "created" } else { "using" }
    );
    crate::outln!("  certificate  {}", ca.cert_path().display());
    let mode = ca
        .key_mode()
        .map(|m| format!("mode {m:04o}; "))
        .unwrap_or_default();
    crate::outln!(
        "  private key  {} ({mode}keep it private)",
        ca.key_path().display()
    );
    if !args.ca_names.is_empty() {
        crate::outln!(
            "  names        {} (name constraints)",
            args.ca_names.join(", ")
        );
    }
    crate::outln!(
        "\nmtlscope issues client-facing certificates from this CA when no --server-cert is given."
    );
    crate::out!("{}", local_ca::how_to_trust(ca.cert_path()));
    Ok(())
}

/// Open (creating on first use) the local CA in `ca_dir` or the default directory.
pub fn open_local_ca(ca_dir: Option<&std::path::Path>) -> Result<LocalCa, CommandError> {
    let dir = match ca_dir {
        Some(dir) => dir.to_path_buf(),
        None => LocalCa::default_dir()?,
    };
    Ok(LocalCa::open_or_create(&dir)?)
}

/// The local CA's resolver for client-facing leaves (default host: the upstream's), issuing
/// only for the upstream's host and `extra` names.
pub fn local_ca_resolver(
    ca_dir: Option<&std::path::Path>,
    upstream: Option<&str>,
    extra: &[String],
) -> Result<std::sync::Arc<dyn rustls::server::ResolvesServerCert>, CommandError> {
    let ca = std::sync::Arc::new(open_local_ca(ca_dir)?);
    let default_host = upstream
        .and_then(|u| crate::upstream::parse_upstream_url(u).ok())
        .map(|(t, _)| t.host)
        .unwrap_or_else(|| "localhost".to_string());
    // Issue the default leaf now: a broken CA should fail at start-up, not on the first client.
    ca.leaf_for(&default_host)?;
    let only = served_names(upstream, extra).list().to_vec();
    Ok(std::sync::Arc::new(crate::pki::LocalCaResolver {
        ca,
        default_host,
        only: Some(only),
    }))
}

/// The names a reverse listener with the local CA answers for: the upstream's host,
/// `localhost` (a name no other site can be reached by, so it serves no rebinding page), and
/// `extra`.
pub fn served_names(
    upstream: Option<&str>,
    extra: &[String],
) -> crate::proxy::sni_gate::ServedNames {
    let host = upstream
        .and_then(|u| crate::upstream::parse_upstream_url(u).ok())
        .map(|(t, _)| t.host)
        .unwrap_or_else(|| "localhost".to_string());
    crate::proxy::sni_gate::ServedNames::new(
        [host.as_str(), "localhost"]
            .into_iter()
            .chain(extra.iter().map(String::as_str)),
    )
}
