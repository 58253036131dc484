//! Values and files the flags of the listening modes name: sizes, trust-anchor files, PKCS#12
//! passwords (`--resolve` overrides are [`crate::upstream::Resolve`]).

use crate::error::CommandError;
use crate::pki::load::load_certs;
use std::path::PathBuf;

/// `--grace` when not given: what systemd and Kubernetes allow before SIGKILL is longer.
pub(super) const DEFAULT_GRACE_SECS: u64 = 10;

/// A size like `512K`, `100M`, `1G` or a plain byte count.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let (digits, unit) = match t.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => t.split_at(i),
        None => (t, ""),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| "expected a number with an optional K, M or G suffix".to_string())?;
    let mult: u64 = match unit
        .trim()
        .to_ascii_uppercase()
        .trim_end_matches(['B', 'I'])
    {
        "" => 1,
        "K" => 1 << 10,
        "M" => 1 << 20,
        "G" => 1 << 30,
        other => return Err(format!("unknown unit {other:?} (use K, M or G)")),
    };
    match n.checked_mul(mult) {
        Some(0) | None => Err("the size must be above 0 and fit in 64 bits".into()),
        Some(v) => Ok(v),
    }
}

/// Trust anchors from `(where named, file)` pairs, or the system store when there are none (as
/// curl without `--cacert`). Errors name where the file was named.
pub fn load_roots(files: &[(String, PathBuf)]) -> Result<rustls::RootCertStore, CommandError> {
    let mut roots = rustls::RootCertStore::empty();
    let system = files.is_empty();
    for cert in load_root_certs(files)? {
        match roots.add(cert) {
            Ok(()) => {}
            // The system store may hold certificates rustls cannot use: skip those.
            Err(_) if system => {}
            Err(e) => return Err(CommandError::usage(format!("{}: {e}", files_text(files)))),
        }
    }
    Ok(roots)
}

/// The trust-anchor certificates themselves (both engines are built from them): from the
/// files, or the system store when there are none.
pub fn load_root_certs(
    files: &[(String, PathBuf)],
) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, CommandError> {
    if files.is_empty() {
        return Ok(rustls_native_certs::load_native_certs().certs);
    }
    let mut out = Vec::new();
    for (flag, path) in files {
        let certs = load_certs(path).map_err(|e| CommandError::usage(format!("{flag}: {e}")))?;
        // Check each as a trust anchor now, so a bad file fails at start-up, naming it.
        for cert in &certs {
            rustls::RootCertStore::empty()
                .add(cert.clone())
                .map_err(|e| CommandError::usage(format!("{flag} {}: {e}", path.display())))?;
        }
        out.extend(certs);
    }
    Ok(out)
}

pub(super) fn files_text(files: &[(String, PathBuf)]) -> String {
    files
        .iter()
        .map(|(flag, p)| format!("{flag} {}", p.display()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A PKCS#12 password from an environment variable or a file's first line, never the command
/// line (where other users can read it); empty when neither is given.
pub fn pkcs12_password(
    env: Option<&str>,
    file: Option<&std::path::Path>,
) -> Result<String, String> {
    match (env, file) {
        (Some(var), _) => std::env::var(var)
            .map_err(|_| format!("environment variable {var} (the PKCS#12 password) is not set")),
        (None, Some(path)) => std::fs::read_to_string(path)
            .map(|s| s.lines().next().unwrap_or_default().to_string())
            .map_err(|e| format!("PKCS#12 password file {}: {e}", path.display())),
        (None, None) => Ok(String::new()),
    }
}
