//! mtlscope's own local CA: created once per user (`ca.pem`, `ca.key`), never regenerated over
//! an existing one, issuing per-host serverAuth leaves for the client-facing side of the proxy
//! when no `--server-cert` is given.

use super::files::{self, CERT_MODE, KEY_MODE};
use super::PkiError;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PublicKeyData,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use time::{Duration, OffsetDateTime};

/// File name of the CA certificate inside the CA directory.
pub const CERT_FILE: &str = "ca.pem";
/// File name of the CA key inside the CA directory.
pub const KEY_FILE: &str = "ca.key";
/// Leaves cached before the cache is emptied (a forward proxy may see many hosts).
const CACHE_LIMIT: usize = 1024;
/// Leaf lifetime: the CA/Browser Forum ceiling, so strict clients accept it.
const LEAF_DAYS: i64 = 397;
/// The CA's lifetime: two years, so a forgotten CA in a trust store stops being trusted.
pub const CA_DAYS: i64 = 730;

/// The local CA, loaded or created, with its cache of issued leaves.
pub struct LocalCa {
    /// The CA certificate file.
    cert_path: PathBuf,
    /// The CA private key file.
    key_path: PathBuf,
    /// Whether this call created the CA (false: it already existed).
    created: bool,
    /// The CA certificate, appended to every leaf's chain.
    ca_der: CertificateDer<'static>,
    /// End of the CA's validity; leaves never outlive it.
    ca_not_after: OffsetDateTime,
    /// Name, key identifier and signing key for issuing.
    issuer: Issuer<'static, KeyPair>,
    /// Leaves issued so far, by normalised host.
    cache: Mutex<HashMap<String, Arc<CertifiedKey>>>,
}

impl std::fmt::Debug for LocalCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The signing key stays out of debug output.
        f.debug_struct("LocalCa")
            .field("cert_path", &self.cert_path)
            .field("created", &self.created)
            .finish_non_exhaustive()
    }
}

impl LocalCa {
    /// Where the CA lives by default: the user's data directory, else `~/.mtlscope`.
    pub fn default_dir() -> Result<PathBuf, PkiError> {
        dirs::data_dir()
            .map(|d| d.join("mtlscope"))
            .or_else(|| dirs::home_dir().map(|h| h.join(".mtlscope")))
            .ok_or(PkiError::NoDataDir)
    }

    /// Load the CA in `dir`, or create it there if neither file exists.
    pub fn open_or_create(dir: &Path) -> Result<LocalCa, PkiError> {
        LocalCa::open_or_create_for(dir, &[])
    }

    /// [`LocalCa::open_or_create`]; a CA created now is name-constrained to `names` (DNS
    /// names and their subdomains) when any is given. A directory or key file other users
    /// could write (a key: could read) is refused.
    pub fn open_or_create_for(dir: &Path, names: &[String]) -> Result<LocalCa, PkiError> {
        let cert_path = dir.join(CERT_FILE);
        let key_path = dir.join(KEY_FILE);
        if dir.exists() {
            check_private(dir, false)?;
        }
        match (cert_path.exists(), key_path.exists()) {
            (true, true) if !names.is_empty() => Err(PkiError::CaExists {
                path: dir.to_path_buf(),
            }),
            (true, true) => {
                check_private(&key_path, true)?;
                LocalCa::open(cert_path, key_path)
            }
            (false, false) => LocalCa::create(dir, cert_path, key_path, names),
            (true, false) => Err(PkiError::CaIncomplete {
                present: cert_path,
                missing: key_path,
            }),
            (false, true) => Err(PkiError::CaIncomplete {
                present: key_path,
                missing: cert_path,
            }),
        }
    }

    fn open(cert_path: PathBuf, key_path: PathBuf) -> Result<LocalCa, PkiError> {
        let cert_err = |detail: String| PkiError::CaFile {
            path: cert_path.clone(),
            detail,
        };
        let key_err = |detail: String| PkiError::CaFile {
            path: key_path.clone(),
            detail,
        };
        let pem = std::fs::read(&cert_path).map_err(|e| cert_err(format!("cannot read: {e}")))?;
        let ca_der = CertificateDer::from_pem_slice(&pem)
            .map_err(|e| cert_err(format!("no PEM certificate: {e}")))?;
        let summary = crate::cert::summarize(&ca_der).map_err(|e| cert_err(e.to_string()))?;
        if !summary.is_ca {
            return Err(cert_err(format!(
                "{} is not a CA certificate",
                summary.subject
            )));
        }
        let key_pem =
            std::fs::read_to_string(&key_path).map_err(|e| key_err(format!("cannot read: {e}")))?;
        let key = KeyPair::from_pem(&key_pem)
            .map_err(|e| key_err(format!("not a usable PEM private key: {e}")))?;
        let (_, x509) = x509_parser::parse_x509_certificate(&ca_der)
            .map_err(|e| cert_err(format!("not a parseable certificate: {e}")))?;
        if x509.public_key().raw != key.subject_public_key_info().as_slice() {
            return Err(PkiError::CaMismatch {
                cert: cert_path,
                key: key_path,
            });
        }
        let issuer = Issuer::from_ca_cert_der(&ca_der, key)
            .map_err(|e| cert_err(format!("cannot use as an issuer: {e}")))?;
        Ok(LocalCa {
            cert_path,
            key_path,
            created: false,
            ca_der,
            ca_not_after: summary.not_after,
            issuer,
            cache: Mutex::new(HashMap::new()),
        })
    }

    fn create(
        dir: &Path,
        cert_path: PathBuf,
        key_path: PathBuf,
        names: &[String],
    ) -> Result<LocalCa, PkiError> {
        // 0700 only for what mtlscope creates; an existing directory was checked above.
        files::create_dir(dir, true)?;
        let key = KeyPair::generate().map_err(|source| PkiError::Generate {
            what: "local CA key".into(),
            source,
        })?;
        let serial = files::random_serial();
        let now = OffsetDateTime::now_utc();
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        // A per-installation suffix keeps two machines' CAs apart in a trust store.
        let tag = crate::cert::hex(&serial.to_bytes()[..4]);
        dn.push(DnType::CommonName, format!("mtlscope local CA {tag}"));
        dn.push(DnType::OrganizationName, "mtlscope");
        params.distinguished_name = dn;
        params.serial_number = Some(serial);
        params.not_before = now - Duration::days(1);
        params.not_after = now + Duration::days(CA_DAYS);
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        if !names.is_empty() {
            let permitted = names
                .iter()
                .map(|n| {
                    let n = normalise_host(n);
                    match n.parse::<std::net::IpAddr>() {
                        Ok(std::net::IpAddr::V4(ip)) => rcgen::GeneralSubtree::IpAddress(
                            rcgen::CidrSubnet::V4(ip.octets(), [255; 4]),
                        ),
                        Ok(std::net::IpAddr::V6(ip)) => rcgen::GeneralSubtree::IpAddress(
                            rcgen::CidrSubnet::V6(ip.octets(), [255; 16]),
                        ),
                        Err(_) => rcgen::GeneralSubtree::DnsName(n),
                    }
                })
                .collect();
            params.name_constraints = Some(rcgen::NameConstraints {
                permitted_subtrees: permitted,
                excluded_subtrees: Vec::new(),
            });
        }
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_not_after = params.not_after;
        let cert = params
            .self_signed(&key)
            .map_err(|source| PkiError::Generate {
                what: "local CA certificate".into(),
                source,
            })?;
        // Exclusive creation: a CA that appeared meanwhile is never overwritten.
        files::write_exclusive(&key_path, key.serialize_pem().as_bytes(), KEY_MODE)?;
        if let Err(e) = files::write_exclusive(&cert_path, cert.pem().as_bytes(), CERT_MODE) {
            let _ = std::fs::remove_file(&key_path);
            return Err(e);
        }
        let ca_der = cert.der().clone();
        let issuer = Issuer::new(params, key);
        Ok(LocalCa {
            cert_path,
            key_path,
            created: true,
            ca_der,
            ca_not_after,
            issuer,
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// The CA certificate (PEM), for clients to trust.
    pub fn cert_path(&self) -> &Path {
        &self.cert_path
    }

    /// The CA private key (mode 0600).
    pub fn key_path(&self) -> &Path {
        &self.key_path
    }

    /// The key file's permission bits as they are now (None where there are none).
    pub fn key_mode(&self) -> Option<u32> {
        mode_of(&self.key_path)
    }

    /// Whether `open_or_create` created the CA just now.
    pub fn created(&self) -> bool {
        self.created
    }

    /// The CA certificate, DER.
    pub fn ca_der(&self) -> &CertificateDer<'static> {
        &self.ca_der
    }

    /// A serverAuth leaf for `host` (DNS name, or IP literal → IP SAN), chain = leaf + CA;
    /// issued once per host and cached.
    pub fn leaf_for(&self, host: &str) -> Result<Arc<CertifiedKey>, PkiError> {
        let host = normalise_host(host);
        if let Some(hit) = self.lock_cache().get(&host) {
            return Ok(hit.clone());
        }
        let leaf = Arc::new(self.issue(&host)?);
        let mut cache = self.lock_cache();
        if cache.len() >= CACHE_LIMIT {
            cache.clear();
        }
        // If another thread issued meanwhile, keep its leaf so every handshake sees one.
        Ok(cache.entry(host).or_insert(leaf).clone())
    }

    fn lock_cache(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<CertifiedKey>>> {
        // A panic elsewhere while holding the lock leaves a still-valid map.
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn issue(&self, host: &str) -> Result<CertifiedKey, PkiError> {
        let bad = |detail: &str| PkiError::BadHost {
            host: host.to_string(),
            detail: detail.to_string(),
        };
        let san = match host.parse::<std::net::IpAddr>() {
            Ok(ip) => rcgen::SanType::IpAddress(ip),
            Err(_) => {
                rustls::pki_types::DnsName::try_from(host)
                    .map_err(|_| bad("not a DNS name or IP address"))?;
                rcgen::SanType::DnsName(
                    rcgen::string::Ia5String::try_from(host).map_err(|_| bad("not ASCII"))?,
                )
            }
        };
        let key = KeyPair::generate().map_err(|source| PkiError::Generate {
            what: format!("leaf key for {host}"),
            source,
        })?;
        let now = OffsetDateTime::now_utc();
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        // CN is limited to 64 characters; the SAN is what clients check anyway.
        if host.len() <= 64 {
            dn.push(DnType::CommonName, host);
        }
        dn.push(DnType::OrganizationName, "mtlscope");
        params.distinguished_name = dn;
        params.subject_alt_names = vec![san];
        params.serial_number = Some(files::random_serial());
        params.not_before = now - Duration::days(1);
        params.not_after = (now + Duration::days(LEAF_DAYS)).min(self.ca_not_after);
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(|source| PkiError::Generate {
                what: format!("leaf for {host}"),
                source,
            })?;
        let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let signing = rustls::crypto::aws_lc_rs::default_provider()
            .key_provider
            .load_private_key(key_der)
            .map_err(|e| PkiError::UnusableKey {
                what: format!("leaf for {host}"),
                detail: e.to_string(),
            })?;
        Ok(CertifiedKey::new(
            vec![cert.der().clone(), self.ca_der.clone()],
            signing,
        ))
    }
}

fn mode_of(path: &Path) -> Option<u32> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path)
            .ok()
            .map(|m| m.permissions().mode() & 0o7777)
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        None
    }
}

/// Refuse a CA directory writable by other users, or a key file they could read or write.
fn check_private(path: &Path, key: bool) -> Result<(), PkiError> {
    let Some(mode) = mode_of(path) else {
        return Ok(());
    };
    let (bad, what, fix) = if key {
        (
            0o077,
            "the CA key is readable or writable by other users",
            "600",
        )
    } else {
        (0o022, "the CA directory is writable by other users", "go-w")
    };
    if mode & bad != 0 {
        return Err(PkiError::CaExposed {
            path: path.to_path_buf(),
            what,
            mode,
            fix,
        });
    }
    Ok(())
}

/// Lowercase, without a trailing dot or IPv6 brackets, so `[::1]` and `::1` share a leaf.
fn normalise_host(host: &str) -> String {
    let h = host.trim().trim_end_matches('.');
    let h = h
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(h);
    h.to_ascii_lowercase()
}

/// Picks a local-CA leaf for the SNI host, or for `default_host` when the client sent no SNI
/// (IP literals). Records nothing.
#[derive(Debug)]
pub struct LocalCaResolver {
    /// The CA issuing the leaves.
    pub ca: Arc<LocalCa>,
    /// The host to issue for when there is no SNI (usually the upstream's host).
    pub default_host: String,
    /// The only names to issue for (`reverse`: the upstream's host and `--server-name`s),
    /// normalised; None issues for any name (`forward`, which issues per CONNECT target).
    pub only: Option<Vec<String>>,
}

impl ResolvesServerCert for LocalCaResolver {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let host = client_hello.server_name().unwrap_or(&self.default_host);
        if let Some(only) = &self.only {
            if !only.contains(&normalise_host(host)) {
                // The listener refuses such clients before this; never mint for them anyway.
                tracing::warn!(
                    host,
                    "no local CA leaf: not a name this listener answers for"
                );
                return None;
            }
        }
        match self.ca.leaf_for(host) {
            Ok(leaf) => Some(leaf),
            Err(e) => {
                tracing::warn!(error = %e, "no local CA leaf");
                None
            }
        }
    }
}

/// How to make common clients trust the CA at `cert`.
pub fn how_to_trust(cert: &Path) -> String {
    let p = cert.display();
    format!(
        "\
To trust it:
  curl                  curl --cacert {p} https://…
  curl through forward  curl -x http://127.0.0.1:8080 --cacert {p} https://…   (--cacert: the proxy intercepts; --proxy-cacert is for an HTTPS proxy's own certificate)
  Debian/Ubuntu         sudo cp {p} /usr/local/share/ca-certificates/mtlscope.crt && sudo update-ca-certificates
  Java                  keytool -importcert -noprompt -alias mtlscope -file {p} -cacerts   (or -keystore FILE)
  Node.js               NODE_EXTRA_CA_CERTS={p}
  Python requests       REQUESTS_CA_BUNDLE={p}
  OpenSSL-based tools   SSL_CERT_FILE={p}   (replaces the default trust store for that process)
"
    )
}

#[cfg(test)]
#[path = "local_ca_tests.rs"]
mod tests;
