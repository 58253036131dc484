//! Settings a newcomer gets wrong in ways that would otherwise pass silently: client-leg
//! settings that would do nothing (refused, or warned about with what would work), and curl's
//! `--cert`/`--key` spelling of `--identity`.

use crate::capture::client_auth::ClientAuthMode;
use crate::error::CommandError;
use crate::settings::values::is_pkcs12;
use crate::settings::CertKey;
use std::path::PathBuf;

/// Client-leg settings that would do nothing: an error when the user asked for a behaviour
/// mtlscope cannot give (`--enforce` with nothing to enforce against), warnings otherwise.
pub fn client_auth_warnings(
    mode: ClientAuthMode,
    has_cas: bool,
    enforce: bool,
) -> Result<Vec<String>, CommandError> {
    if enforce && !has_cas {
        return Err(CommandError::usage(
            "--enforce: there is nothing to enforce against without --client-ca FILE (the CAs a \
             client certificate must chain to)",
        ));
    }
    let mut out = Vec::new();
    match mode {
        ClientAuthMode::None if has_cas => out.push(
            "--client-ca has no effect with --client-auth none (the default): mtlscope asks \
             clients for no certificate; add --client-auth optional or required"
                .to_string(),
        ),
        ClientAuthMode::Optional | ClientAuthMode::Required if !has_cas => out.push(
            "--client-auth without --client-ca: the request names no CA (an empty list, which \
             some clients answer with no certificate) and the client's certificate is recorded \
             but not judged; add --client-ca FILE, or use --client-auth mirror to send the \
             upstream's CA names"
                .to_string(),
        ),
        _ => {}
    }
    Ok(out)
}

/// curl's `--cert CERT --key KEY` as identities (a PKCS#12 `--cert` needs no `--key`).
pub fn curl_style_identities(
    certs: &[PathBuf],
    keys: &[PathBuf],
) -> Result<Vec<CertKey>, CommandError> {
    let mut keys = keys.iter();
    let mut out = Vec::new();
    for cert in certs {
        if is_pkcs12(&cert.to_string_lossy()) {
            out.push(CertKey::Pkcs12(cert.clone()));
            continue;
        }
        let key = keys.next().ok_or_else(|| {
            CommandError::usage(format!(
                "--cert {}: needs a --key KEY (or use --identity CERT,KEY)",
                cert.display()
            ))
        })?;
        out.push(CertKey::pem(cert, key));
    }
    if let Some(key) = keys.next() {
        return Err(CommandError::usage(format!(
            "--key {}: no --cert CERT to go with it (or use --identity CERT,KEY)",
            key.display()
        )));
    }
    Ok(out)
}
