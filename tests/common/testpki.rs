//! A throwaway PKI for the real-peer self-tests, written to a temp dir as PEM files.
//!
//! Test-only and deliberately small: it exists so the harness can be proven without the
//! project's dev PKI. Keys are ECDSA P-256 (rcgen's default); serials are explicit so no two
//! certificates share one.

use std::fs;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SerialNumber,
};
use time::{Duration, OffsetDateTime};

/// A certificate and its key on disk.
#[derive(Debug, Clone)]
pub struct Identity {
    /// The certificate (PEM).
    pub cert: PathBuf,
    /// Its private key (PKCS#8 PEM).
    pub key: PathBuf,
}

/// Root CA, server certificate, and client certificates, as files in a temp dir.
#[derive(Debug)]
pub struct TestPki {
    /// Holds the files; removed on drop.
    pub dir: tempfile::TempDir,
    /// The root CA certificate (PEM): trust anchor for both server and client certificates.
    pub ca_cert: PathBuf,
    /// Server identity for `localhost` and `127.0.0.1` (serverAuth).
    pub server: Identity,
    /// A valid client identity issued by the root (clientAuth), CN `selftest-client`.
    pub client: Identity,
    /// A client identity from the same root that expired in 2021, CN `selftest-expired`.
    pub expired: Identity,
    /// A client identity from an unrelated self-signed CA, CN `selftest-stranger`.
    pub stranger: Identity,
}

impl TestPki {
    /// Generates everything into a new temp dir.
    pub fn generate() -> Result<TestPki, String> {
        let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR"))
            .map_err(|e| format!("pki temp dir: {e}"))?;
        let now = OffsetDateTime::now_utc();

        let ca = make_ca("mtlscope selftest root CA", 1)?;
        let ca_cert = write(dir.path(), "ca.pem", &ca.pem())?;

        let mut server = leaf_params("localhost", 10, now, &["localhost", "127.0.0.1"])?;
        server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let server = issue(dir.path(), "server", server, &ca)?;

        let client = leaf_params("selftest-client", 11, now, &[])?;
        let client = issue(dir.path(), "client", client_auth(client), &ca)?;

        let mut expired = leaf_params("selftest-expired", 12, now, &[])?;
        expired.not_before = now - Duration::days(2 * 365);
        expired.not_after = now - Duration::days(365);
        let expired = issue(dir.path(), "expired", client_auth(expired), &ca)?;

        let other_ca = make_ca("mtlscope selftest stranger CA", 2)?;
        let stranger = leaf_params("selftest-stranger", 13, now, &[])?;
        let stranger = issue(dir.path(), "stranger", client_auth(stranger), &other_ca)?;

        Ok(TestPki {
            dir,
            ca_cert,
            server,
            client,
            expired,
            stranger,
        })
    }
}

/// A self-signed CA valid from yesterday for a year.
fn make_ca(cn: &str, serial: u64) -> Result<CertifiedIssuer<'static, KeyPair>, String> {
    let now = OffsetDateTime::now_utc();
    let mut params = leaf_params(cn, serial, now, &[])?;
    params
        .distinguished_name
        .push(DnType::OrganizationName, "mtlscope tests");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let key = KeyPair::generate().map_err(|e| format!("ca key: {e}"))?;
    CertifiedIssuer::self_signed(params, key).map_err(|e| format!("self-sign {cn}: {e}"))
}

/// Params with a CN, an explicit serial, SANs, and a validity of yesterday + one year.
fn leaf_params(
    cn: &str,
    serial: u64,
    now: OffsetDateTime,
    sans: &[&str],
) -> Result<CertificateParams, String> {
    let sans: Vec<String> = sans.iter().map(|s| s.to_string()).collect();
    let mut params = CertificateParams::new(sans).map_err(|e| format!("params {cn}: {e}"))?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, cn);
    params.serial_number = Some(SerialNumber::from(serial));
    params.not_before = now - Duration::days(1);
    params.not_after = now + Duration::days(365);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.use_authority_key_identifier_extension = true;
    Ok(params)
}

fn client_auth(mut params: CertificateParams) -> CertificateParams {
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params
}

/// Signs `params` with a fresh key under `issuer` and writes `NAME.pem` and `NAME.key`.
fn issue(
    dir: &Path,
    name: &str,
    params: CertificateParams,
    issuer: &Issuer<'_, KeyPair>,
) -> Result<Identity, String> {
    let key = KeyPair::generate().map_err(|e| format!("{name} key: {e}"))?;
    let cert = params
        .signed_by(&key, issuer)
        .map_err(|e| format!("sign {name}: {e}"))?;
    Ok(Identity {
        cert: write(dir, &format!("{name}.pem"), &cert.pem())?,
        key: write(dir, &format!("{name}.key"), &key.serialize_pem())?,
    })
}

fn write(dir: &Path, name: &str, contents: &str) -> Result<PathBuf, String> {
    let path = dir.join(name);
    fs::write(&path, contents).map_err(|e| format!("write {}: {e}", path.display()))?;
    Ok(path)
}
