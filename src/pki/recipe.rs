//! The dev PKI recipe: a TOML description of CAs, certificates and bundles (see
//! `certs-dev/recipe.toml`), parsed and checked before anything is generated.

use super::PkiError;
use serde::Deserialize;
use std::collections::HashSet;
use std::path::Path;

/// The recipe compiled into the binary, so `certs dev` works from any directory.
pub const EMBEDDED: &str = include_str!("../../certs-dev/recipe.toml");

/// A whole recipe, in file order.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recipe {
    /// Certificate authorities; each may only be issued by a CA listed before it.
    #[serde(default)]
    pub ca: Vec<CaEntry>,
    /// End-entity certificates.
    #[serde(default)]
    pub cert: Vec<CertEntry>,
    /// PEM bundles of already generated certificates.
    #[serde(default)]
    pub bundle: Vec<BundleEntry>,
    /// Where the recipe came from, for error messages (not part of the TOML).
    #[serde(skip)]
    pub origin: String,
}

/// A certificate authority: written as `<name>.pem` (and `<name>.key` when `write_key`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaEntry {
    /// File stem and the name other entries use as `issuer`.
    pub name: String,
    /// What the CA is for, shown by `certs dev`.
    #[serde(default)]
    pub about: String,
    /// The issuing CA's name; absent for a self-signed root.
    pub issuer: Option<String>,
    /// Subject common name.
    pub cn: String,
    /// Subject organisation.
    pub o: Option<String>,
    /// Start of validity, in days from generation (negative = in the past).
    #[serde(default = "default_not_before")]
    pub not_before_days: i64,
    /// End of validity, in days from generation.
    pub not_after_days: i64,
    /// basicConstraints pathLenConstraint; absent = unconstrained.
    pub path_len: Option<u8>,
    /// Key usages by RFC 5280 name; absent = keyCertSign, cRLSign, digitalSignature.
    pub key_usage: Option<Vec<String>>,
    /// Whether to write the CA's private key too.
    #[serde(default)]
    pub write_key: bool,
}

/// An end-entity certificate: `<name>.pem` (leaf, then its intermediates when
/// `include_chain`) and `<name>.key`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertEntry {
    /// File stem.
    pub name: String,
    /// What the certificate is for, shown by `certs dev`.
    #[serde(default)]
    pub about: String,
    /// The issuing CA's name; absent for a self-signed certificate.
    pub issuer: Option<String>,
    /// Subject common name.
    pub cn: String,
    /// Subject organisation.
    pub o: Option<String>,
    /// Subject alternative names: IP literals become IP SANs, the rest DNS names.
    #[serde(default)]
    pub sans: Vec<String>,
    /// Extended key usages (`serverAuth`, `clientAuth`, …); empty = extension absent.
    #[serde(default)]
    pub eku: Vec<String>,
    /// Key usages (`digitalSignature`, …); empty = extension absent.
    #[serde(default)]
    pub key_usage: Vec<String>,
    /// Start of validity, in days from generation (negative = in the past).
    #[serde(default = "default_not_before")]
    pub not_before_days: i64,
    /// End of validity, in days from generation.
    pub not_after_days: i64,
    /// Whether the PEM file carries the intermediates after the leaf (never the root).
    #[serde(default)]
    pub include_chain: bool,
}

/// A PEM file concatenating certificates generated above, in the order given.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundleEntry {
    /// File stem.
    pub name: String,
    /// What the bundle is for, shown by `certs dev`.
    #[serde(default)]
    pub about: String,
    /// Names of CAs or certificates to include.
    pub certs: Vec<String>,
}

fn default_not_before() -> i64 {
    -1
}

impl Recipe {
    /// The embedded recipe.
    pub fn embedded() -> Result<Recipe, PkiError> {
        Recipe::parse(EMBEDDED, "embedded recipe")
    }

    /// Read and check a recipe file.
    pub fn from_file(path: &Path) -> Result<Recipe, PkiError> {
        let text = std::fs::read_to_string(path).map_err(|source| PkiError::RecipeRead {
            path: path.to_path_buf(),
            source,
        })?;
        Recipe::parse(&text, &path.display().to_string())
    }

    /// Parse and check recipe text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Recipe, PkiError> {
        let mut recipe: Recipe = toml::from_str(text).map_err(|e| PkiError::RecipeSyntax {
            origin: origin.to_string(),
            detail: e.to_string().trim_end().to_string(),
        })?;
        recipe.origin = origin.to_string();
        recipe.check()?;
        Ok(recipe)
    }

    fn entry_error(&self, entry: &str, detail: impl Into<String>) -> PkiError {
        PkiError::RecipeEntry {
            origin: self.origin.clone(),
            entry: entry.to_string(),
            detail: detail.into(),
        }
    }

    /// Names unique and file-safe, issuers defined before use, usages known, validity sane.
    fn check(&self) -> Result<(), PkiError> {
        let mut seen = HashSet::new();
        let mut cas = HashSet::new();
        for ca in &self.ca {
            self.check_name(&ca.name, &mut seen)?;
            if let Some(issuer) = &ca.issuer {
                if !cas.contains(issuer.as_str()) {
                    return Err(self.entry_error(
                        &ca.name,
                        format!("issuer {issuer:?} is not a CA defined above it"),
                    ));
                }
            }
            self.check_validity(&ca.name, ca.not_before_days, ca.not_after_days)?;
            for ku in ca.key_usage.iter().flatten() {
                key_usage(ku).ok_or_else(|| self.entry_error(&ca.name, unknown_ku(ku)))?;
            }
            cas.insert(ca.name.as_str());
        }
        for cert in &self.cert {
            self.check_name(&cert.name, &mut seen)?;
            if let Some(issuer) = &cert.issuer {
                if !cas.contains(issuer.as_str()) {
                    return Err(self.entry_error(
                        &cert.name,
                        format!("issuer {issuer:?} is not a CA defined in [[ca]]"),
                    ));
                }
            }
            self.check_validity(&cert.name, cert.not_before_days, cert.not_after_days)?;
            for e in &cert.eku {
                eku(e).ok_or_else(|| {
                    self.entry_error(
                        &cert.name,
                        format!(
                            "unknown extended key usage {e:?} (known: serverAuth, clientAuth, \
                             codeSigning, emailProtection, timeStamping, OCSPSigning, any)"
                        ),
                    )
                })?;
            }
            for ku in &cert.key_usage {
                key_usage(ku).ok_or_else(|| self.entry_error(&cert.name, unknown_ku(ku)))?;
            }
            for san in &cert.sans {
                san_type(san).map_err(|d| self.entry_error(&cert.name, d))?;
            }
        }
        let generated: HashSet<&str> = self
            .ca
            .iter()
            .map(|c| c.name.as_str())
            .chain(self.cert.iter().map(|c| c.name.as_str()))
            .collect();
        for bundle in &self.bundle {
            self.check_name(&bundle.name, &mut seen)?;
            if bundle.certs.is_empty() {
                return Err(self.entry_error(&bundle.name, "a bundle needs at least one cert"));
            }
            for c in &bundle.certs {
                if !generated.contains(c.as_str()) {
                    return Err(self.entry_error(
                        &bundle.name,
                        format!("{c:?} is not a CA or certificate of this recipe"),
                    ));
                }
            }
        }
        Ok(())
    }

    fn check_name<'a>(&self, name: &'a str, seen: &mut HashSet<&'a str>) -> Result<(), PkiError> {
        let safe = !name.is_empty()
            && !name.starts_with('.')
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !safe {
            return Err(self.entry_error(
                name,
                "names become file names: use letters, digits, '-', '_' or '.' only",
            ));
        }
        if !seen.insert(name) {
            return Err(self.entry_error(name, "name used twice"));
        }
        Ok(())
    }

    fn check_validity(&self, name: &str, not_before: i64, not_after: i64) -> Result<(), PkiError> {
        const LIMIT: i64 = 100 * 366;
        if not_before.abs() > LIMIT || not_after.abs() > LIMIT {
            return Err(self.entry_error(name, "validity offsets must be within 100 years"));
        }
        if not_after <= not_before {
            return Err(self.entry_error(
                name,
                format!(
                    "not_after_days ({not_after}) must be after not_before_days ({not_before})"
                ),
            ));
        }
        Ok(())
    }
}

fn unknown_ku(ku: &str) -> String {
    format!(
        "unknown key usage {ku:?} (known: digitalSignature, nonRepudiation, keyEncipherment, \
         dataEncipherment, keyAgreement, keyCertSign, cRLSign, encipherOnly, decipherOnly)"
    )
}

/// A key usage by its RFC 5280 name (as `crate::cert::summarize` prints them).
pub fn key_usage(name: &str) -> Option<rcgen::KeyUsagePurpose> {
    use rcgen::KeyUsagePurpose as K;
    Some(match name {
        "digitalSignature" => K::DigitalSignature,
        "nonRepudiation" | "contentCommitment" => K::ContentCommitment,
        "keyEncipherment" => K::KeyEncipherment,
        "dataEncipherment" => K::DataEncipherment,
        "keyAgreement" => K::KeyAgreement,
        "keyCertSign" => K::KeyCertSign,
        "cRLSign" => K::CrlSign,
        "encipherOnly" => K::EncipherOnly,
        "decipherOnly" => K::DecipherOnly,
        _ => return None,
    })
}

/// An extended key usage by name (as `crate::cert::summarize` prints them).
pub fn eku(name: &str) -> Option<rcgen::ExtendedKeyUsagePurpose> {
    use rcgen::ExtendedKeyUsagePurpose as E;
    Some(match name {
        "serverAuth" => E::ServerAuth,
        "clientAuth" => E::ClientAuth,
        "codeSigning" => E::CodeSigning,
        "emailProtection" => E::EmailProtection,
        "timeStamping" => E::TimeStamping,
        "OCSPSigning" => E::OcspSigning,
        "any" => E::Any,
        _ => return None,
    })
}

/// A SAN: an IP literal becomes an IP SAN, anything else a DNS name.
pub fn san_type(s: &str) -> Result<rcgen::SanType, String> {
    match s.parse::<std::net::IpAddr>() {
        Ok(ip) => Ok(rcgen::SanType::IpAddress(ip)),
        Err(_) => {
            if s.is_empty() || s.chars().any(|c| c.is_whitespace() || c == '/') {
                return Err(format!("{s:?} is neither an IP address nor a DNS name"));
            }
            rcgen::string::Ia5String::try_from(s)
                .map(rcgen::SanType::DnsName)
                .map_err(|e| format!("{s:?} is not a valid DNS name: {e}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_recipe_parses_and_names_every_dev_certificate() {
        let r = Recipe::embedded().unwrap();
        let names: Vec<&str> =
            r.ca.iter()
                .map(|c| c.name.as_str())
                .chain(r.cert.iter().map(|c| c.name.as_str()))
                .chain(r.bundle.iter().map(|c| c.name.as_str()))
                .collect();
        for want in ["root", "intermediate", "other-ca", "server", "ca-bundle"] {
            assert!(names.contains(&want), "{want} missing from {names:?}");
        }
        for c in crate::pki::ClientCert::ALL {
            assert!(names.contains(&c.name()), "{} missing", c.name());
        }
        assert!(
            r.cert.iter().all(|c| !c.about.is_empty()),
            "every cert says what it is for"
        );
    }

    #[test]
    fn issuer_must_be_defined_before_use() {
        let text = r#"
            [[ca]]
            name = "inter"
            issuer = "root"
            cn = "x"
            not_after_days = 10
            [[ca]]
            name = "root"
            cn = "r"
            not_after_days = 10
        "#;
        let err = Recipe::parse(text, "t.toml").unwrap_err().to_string();
        assert!(
            err.contains("\"inter\"") && err.contains("\"root\""),
            "{err}"
        );
    }

    #[test]
    fn unknown_usage_duplicate_name_bad_validity_and_syntax_are_refused() {
        let base = |extra: &str| {
            format!(
                "[[ca]]\nname = \"root\"\ncn = \"r\"\nnot_after_days = 10\n\
                 [[cert]]\nname = \"leaf\"\nissuer = \"root\"\ncn = \"l\"\nnot_after_days = 10\n{extra}"
            )
        };
        let e = Recipe::parse(&base("eku = [\"clientauth\"]"), "t").unwrap_err();
        assert!(e.to_string().contains("clientauth"), "{e}");
        let e = Recipe::parse(&base("key_usage = [\"sign\"]"), "t").unwrap_err();
        assert!(e.to_string().contains("\"sign\""), "{e}");
        let e = Recipe::parse(&base("not_before_days = 20"), "t").unwrap_err();
        assert!(e.to_string().contains("not_after_days"), "{e}");
        let e = Recipe::parse(
            &base("[[cert]]\nname = \"leaf\"\ncn = \"x\"\nnot_after_days = 1"),
            "t",
        )
        .unwrap_err();
        assert!(e.to_string().contains("twice"), "{e}");
        let e = Recipe::parse(&base("colour = \"red\""), "t").unwrap_err();
        assert!(matches!(e, PkiError::RecipeSyntax { .. }), "{e}");
        let e = Recipe::parse(&base("sans = [\"a b\"]"), "t").unwrap_err();
        assert!(e.to_string().contains("a b"), "{e}");
        assert!(Recipe::parse(&base(""), "t").is_ok());
    }
}
