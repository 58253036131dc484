//! The dev PKI: generating a recipe's CAs, certificates and bundles into a directory, and
//! [`DevPki`], the typed view of the default recipe's files that tests and the demo use.

use super::files::{self, CERT_MODE, KEY_MODE};
use super::load::{Identity, LoadError};
use super::recipe::{self, CaEntry, CertEntry, Recipe};
use super::PkiError;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType, IsCa, KeyPair,
};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use time::{Duration, OffsetDateTime};

/// What a written file holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileKind {
    /// A CA certificate.
    CaCert,
    /// A certificate (possibly followed by its intermediates).
    Cert,
    /// A private key (mode 0600).
    Key,
    /// A bundle of certificates.
    Bundle,
}

/// One file `certs dev` wrote.
#[derive(Clone, Debug)]
pub struct WrittenFile {
    /// The recipe entry it came from.
    pub name: String,
    /// Where it was written.
    pub path: PathBuf,
    /// What it holds.
    pub kind: FileKind,
    /// What it is for (the recipe's `about`).
    pub about: String,
}

/// Everything one recipe run wrote.
#[derive(Clone, Debug)]
pub struct Generated {
    /// The output directory.
    pub out_dir: PathBuf,
    /// Where the recipe came from.
    pub origin: String,
    /// The files, in recipe order.
    pub files: Vec<WrittenFile>,
}

/// A generated CA, kept for signing the entries below it.
struct CaState {
    /// The CA certificate and signing key.
    issuer: CertifiedIssuer<'static, KeyPair>,
    /// Its issuer's name; None for a root.
    parent: Option<String>,
}

/// Generate every entry of `recipe` into `out_dir` (created if missing). Existing files of the
/// same names are replaced; keys are written 0600, certificates 0644.
pub fn generate_recipe(recipe: &Recipe, out_dir: &Path) -> Result<Generated, PkiError> {
    files::create_dir(out_dir, false)?;
    let now = OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .unwrap_or_else(|_| OffsetDateTime::now_utc());
    let mut cas: HashMap<&str, CaState> = HashMap::new();
    let mut pems: HashMap<&str, String> = HashMap::new();
    let mut written = Vec::new();
    let mut write = |name: &str, file: String, contents: &str, kind, about: &str| {
        let path = out_dir.join(file);
        let mode = if kind == FileKind::Key {
            KEY_MODE
        } else {
            CERT_MODE
        };
        files::write_replace(&path, contents.as_bytes(), mode)?;
        written.push(WrittenFile {
            name: name.to_string(),
            path,
            kind,
            about: about.to_string(),
        });
        Ok::<(), PkiError>(())
    };

    for ca in &recipe.ca {
        let key = new_key(&ca.name)?;
        let params = ca_params(ca, now);
        let issuer = match ca.issuer.as_deref().and_then(|i| cas.get(i)) {
            Some(parent) => CertifiedIssuer::signed_by(params, key, &parent.issuer),
            None => CertifiedIssuer::self_signed(params, key),
        }
        .map_err(|source| PkiError::Generate {
            what: format!("CA {}", ca.name),
            source,
        })?;
        let pem = issuer.pem();
        write(
            &ca.name,
            format!("{}.pem", ca.name),
            &pem,
            FileKind::CaCert,
            &ca.about,
        )?;
        if ca.write_key {
            let key_pem = issuer.key().serialize_pem();
            let about = format!("private key of {}", ca.name);
            write(
                &ca.name,
                format!("{}.key", ca.name),
                &key_pem,
                FileKind::Key,
                &about,
            )?;
        }
        pems.insert(&ca.name, pem);
        cas.insert(
            &ca.name,
            CaState {
                issuer,
                parent: ca.issuer.clone(),
            },
        );
    }

    for entry in &recipe.cert {
        let key = new_key(&entry.name)?;
        let params = cert_params(entry, now)?;
        let generated = |e| PkiError::Generate {
            what: format!("certificate {}", entry.name),
            source: e,
        };
        let cert = match entry.issuer.as_deref().and_then(|i| cas.get(i)) {
            Some(ca) => params.signed_by(&key, &ca.issuer),
            None => params.self_signed(&key),
        }
        .map_err(generated)?;
        let mut pem = cert.pem();
        if entry.include_chain {
            // Intermediates up to, not including, the self-signed root.
            let mut next = entry.issuer.as_deref();
            while let Some(ca) = next.and_then(|n| cas.get(n).map(|c| (n, c))) {
                if ca.1.parent.is_none() {
                    break;
                }
                pem.push_str(&ca.1.issuer.pem());
                next = ca.1.parent.as_deref();
            }
        }
        write(
            &entry.name,
            format!("{}.pem", entry.name),
            &pem,
            FileKind::Cert,
            &entry.about,
        )?;
        let about = format!("private key of {}", entry.name);
        write(
            &entry.name,
            format!("{}.key", entry.name),
            &key.serialize_pem(),
            FileKind::Key,
            &about,
        )?;
        pems.insert(&entry.name, cert.pem());
    }

    for bundle in &recipe.bundle {
        let contents: String = bundle
            .certs
            .iter()
            .filter_map(|c| pems.get(c.as_str()))
            .map(String::as_str)
            .collect();
        write(
            &bundle.name,
            format!("{}.pem", bundle.name),
            &contents,
            FileKind::Bundle,
            &bundle.about,
        )?;
    }
    Ok(Generated {
        out_dir: out_dir.to_path_buf(),
        origin: recipe.origin.clone(),
        files: written,
    })
}

fn new_key(name: &str) -> Result<KeyPair, PkiError> {
    KeyPair::generate().map_err(|source| PkiError::Generate {
        what: format!("key for {name}"),
        source,
    })
}

fn dn(cn: &str, o: Option<&str>) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    if let Some(o) = o {
        dn.push(DnType::OrganizationName, o);
    }
    dn
}

fn ca_params(ca: &CaEntry, now: OffsetDateTime) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = dn(&ca.cn, ca.o.as_deref());
    params.not_before = now + Duration::days(ca.not_before_days);
    params.not_after = now + Duration::days(ca.not_after_days);
    params.serial_number = Some(files::random_serial());
    params.is_ca = IsCa::Ca(match ca.path_len {
        Some(n) => BasicConstraints::Constrained(n),
        None => BasicConstraints::Unconstrained,
    });
    params.key_usages = match &ca.key_usage {
        // Names were checked when the recipe was parsed.
        Some(list) => list.iter().filter_map(|k| recipe::key_usage(k)).collect(),
        None => vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ],
    };
    params.use_authority_key_identifier_extension = ca.issuer.is_some();
    params
}

fn cert_params(entry: &CertEntry, now: OffsetDateTime) -> Result<CertificateParams, PkiError> {
    let mut params = CertificateParams::default();
    params.distinguished_name = dn(&entry.cn, entry.o.as_deref());
    params.not_before = now + Duration::days(entry.not_before_days);
    params.not_after = now + Duration::days(entry.not_after_days);
    params.serial_number = Some(files::random_serial());
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = entry
        .key_usage
        .iter()
        .filter_map(|k| recipe::key_usage(k))
        .collect();
    params.extended_key_usages = entry.eku.iter().filter_map(|e| recipe::eku(e)).collect();
    params.subject_alt_names = entry
        .sans
        .iter()
        .map(|s| recipe::san_type(s))
        .collect::<Result<_, _>>()
        .map_err(|detail| PkiError::RecipeEntry {
            origin: String::new(),
            entry: entry.name.clone(),
            detail,
        })?;
    params.use_authority_key_identifier_extension = entry.issuer.is_some();
    Ok(params)
}

impl Generated {
    /// What was written and what each file is for, for `certs dev`.
    pub fn describe(&self) -> String {
        let mut s = format!(
            "wrote the dev PKI ({}) to {}:\n",
            self.origin,
            self.out_dir.display()
        );
        let width = self
            .files
            .iter()
            .filter_map(|f| f.path.file_name())
            .map(|n| n.len())
            .max()
            .unwrap_or(0);
        for f in &self.files {
            let name = f
                .path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let about = match f.kind {
                FileKind::Key => format!("{} (mode 0600)", f.about),
                _ => f.about.clone(),
            };
            let _ = writeln!(s, "  {name:<width$}  {about}");
        }
        s
    }

    fn path_of(&self, name: &str, kind: FileKind) -> Option<&Path> {
        self.files
            .iter()
            .find(|f| f.name == name && f.kind == kind)
            .map(|f| f.path.as_path())
    }
}

/// The client certificates of the dev PKI, one per failure mtlscope explains.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ClientCert {
    /// Valid, clientAuth, chain includes the intermediate.
    Good,
    /// Expired yesterday.
    Expired,
    /// Valid from 30 days from now.
    NotYetValid,
    /// EKU serverAuth only.
    ServerAuthOnly,
    /// Issued by the unrelated `other-ca`.
    OtherCa,
    /// Valid, but the PEM lacks the intermediate.
    NoIntermediate,
    /// Self-signed.
    SelfSigned,
}

impl ClientCert {
    /// Every client certificate, in recipe order.
    pub const ALL: [ClientCert; 7] = [
        ClientCert::Good,
        ClientCert::Expired,
        ClientCert::NotYetValid,
        ClientCert::ServerAuthOnly,
        ClientCert::OtherCa,
        ClientCert::NoIntermediate,
        ClientCert::SelfSigned,
    ];

    /// The recipe entry name (and file stem).
    pub fn name(self) -> &'static str {
        match self {
            ClientCert::Good => "client-good",
            ClientCert::Expired => "client-expired",
            ClientCert::NotYetValid => "client-not-yet-valid",
            ClientCert::ServerAuthOnly => "client-server-eku",
            ClientCert::OtherCa => "client-other-ca",
            ClientCert::NoIntermediate => "client-no-intermediate",
            ClientCert::SelfSigned => "client-self-signed",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// A certificate file and its key file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdentityFiles {
    /// PEM certificate (leaf first, then any intermediates).
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
}

impl IdentityFiles {
    /// As a `CERT,KEY` command-line argument.
    pub fn arg(&self) -> String {
        format!("{},{}", self.cert.display(), self.key.display())
    }

    /// Load and pair-check the identity.
    pub fn load(&self) -> Result<Identity, LoadError> {
        Identity::load(&self.cert, &self.key)
    }
}

/// The generated dev PKI, with typed paths to each file.
#[derive(Clone, Debug)]
pub struct DevPki {
    /// Everything written.
    generated: Generated,
    /// The root CA certificate.
    root: PathBuf,
    /// The intermediate CA certificate.
    intermediate: PathBuf,
    /// The unrelated root.
    other_ca: PathBuf,
    /// The server identity.
    server: IdentityFiles,
    /// Client identities, indexed by `ClientCert as usize`.
    clients: Vec<IdentityFiles>,
}

impl DevPki {
    /// Generate the embedded recipe into `out_dir`.
    pub fn generate(out_dir: &Path) -> Result<DevPki, PkiError> {
        DevPki::from_recipe(&Recipe::embedded()?, out_dir)
    }

    /// Generate the recipe at `recipe` into `out_dir`; it must define the default recipe's names.
    pub fn generate_from(recipe: &Path, out_dir: &Path) -> Result<DevPki, PkiError> {
        DevPki::from_recipe(&Recipe::from_file(recipe)?, out_dir)
    }

    fn from_recipe(recipe: &Recipe, out_dir: &Path) -> Result<DevPki, PkiError> {
        // Check names before writing anything.
        let defined = |name: &str, ca: bool| {
            let found = if ca {
                recipe.ca.iter().any(|c| c.name == name)
            } else {
                recipe.cert.iter().any(|c| c.name == name)
            };
            if found {
                Ok(())
            } else {
                Err(PkiError::RecipeMissing {
                    origin: recipe.origin.clone(),
                    name: name.to_string(),
                })
            }
        };
        for ca in ["root", "intermediate", "other-ca"] {
            defined(ca, true)?;
        }
        defined("server", false)?;
        for c in ClientCert::ALL {
            defined(c.name(), false)?;
        }
        let generated = generate_recipe(recipe, out_dir)?;
        let missing = |name: &str| PkiError::RecipeMissing {
            origin: recipe.origin.clone(),
            name: name.to_string(),
        };
        let ca = |name: &str| {
            generated
                .path_of(name, FileKind::CaCert)
                .map(Path::to_path_buf)
                .ok_or_else(|| missing(name))
        };
        let identity = |name: &str| {
            Ok::<_, PkiError>(IdentityFiles {
                cert: generated
                    .path_of(name, FileKind::Cert)
                    .ok_or_else(|| missing(name))?
                    .to_path_buf(),
                key: generated
                    .path_of(name, FileKind::Key)
                    .ok_or_else(|| missing(name))?
                    .to_path_buf(),
            })
        };
        let clients = ClientCert::ALL
            .iter()
            .map(|c| identity(c.name()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(DevPki {
            root: ca("root")?,
            intermediate: ca("intermediate")?,
            other_ca: ca("other-ca")?,
            server: identity("server")?,
            clients,
            generated,
        })
    }

    /// The root CA certificate (PEM): what servers trust for dev client certificates.
    pub fn root_ca(&self) -> &Path {
        &self.root
    }

    /// The intermediate CA certificate (PEM).
    pub fn intermediate_ca(&self) -> &Path {
        &self.intermediate
    }

    /// The unrelated root CA certificate (PEM).
    pub fn other_ca(&self) -> &Path {
        &self.other_ca
    }

    /// The server certificate (localhost, 127.0.0.1, ::1; PEM includes the intermediate).
    pub fn server(&self) -> &IdentityFiles {
        &self.server
    }

    /// One of the client certificates.
    pub fn client(&self, which: ClientCert) -> &IdentityFiles {
        &self.clients[which.index()]
    }

    /// The output directory.
    pub fn out_dir(&self) -> &Path {
        &self.generated.out_dir
    }

    /// Every file written.
    pub fn files(&self) -> &[WrittenFile] {
        &self.generated.files
    }

    /// What was written and what each file is for.
    pub fn describe(&self) -> String {
        self.generated.describe()
    }
}

#[cfg(test)]
#[path = "dev_tests.rs"]
mod tests;
