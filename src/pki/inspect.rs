//! `certs inspect`: a serialisable report on certificate files: each certificate summarised,
//! validity judged at one instant, chain order and completeness, fitness as a client
//! certificate, and whether the chain would satisfy a server's acceptable-CA list.
//!
//! All judgement comes from `crate::cert` (summaries and reasoning); this module only reads
//! files strictly and assembles the report. Text rendering lives in
//! `inspect_text`, the errors in `inspect_error`.

use crate::cert::reason::{self, Validity};
use crate::facts::CertSummary;
use rustls::pki_types::pem::SectionKind;
use serde::Serialize;
use std::path::{Path, PathBuf};
use time::OffsetDateTime;

use super::inspect_checks::{check_key, TrustAnchors};
pub use super::inspect_checks::{KeyCheck, TrustCheck};
pub use super::inspect_error::InspectError;
use rustls::pki_types::CertificateDer;

/// The whole report.
#[derive(Clone, Debug, Serialize)]
pub struct InspectReport {
    /// The instant validity was judged at.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// The acceptable-CA list the chains were checked against, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_names: Option<CaNamesList>,
    /// One entry per inspected file, in argument order.
    pub files: Vec<FileReport>,
}

/// An acceptable-CA list, from the subjects of the certificates in a file.
#[derive(Clone, Debug, Serialize)]
pub struct CaNamesList {
    /// The file the CA certificates came from.
    pub file: PathBuf,
    /// The names (RFC 4514), as a server would send them.
    pub names: Vec<String>,
    /// The same names as hex DER, compared exactly.
    pub names_der: Vec<String>,
}

/// One file: a chain, leaf first (as a client or server would present it).
#[derive(Clone, Debug, Serialize)]
pub struct FileReport {
    /// The file.
    pub path: PathBuf,
    /// The certificates, in file order.
    pub certificates: Vec<CertReport>,
    /// Order and completeness of the chain.
    pub chain: ChainReport,
    /// What keeps the first certificate from being a client certificate; empty when nothing.
    pub client_purpose_problems: Vec<String>,
    /// The verdict against the acceptable-CA list, when one was given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_names_check: Option<CaNamesCheck>,
    /// Whether the chain verifies against `--trust`, when given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trust_check: Option<TrustCheck>,
    /// Whether `--key` belongs to the leaf, when given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_check: Option<KeyCheck>,
    /// Everything above that keeps the chain from working as a client certificate at the
    /// report's instant; empty when nothing does.
    pub problems: Vec<String>,
    /// The verdict: `problems` is empty.
    pub usable: bool,
}

/// What to check each chain against, besides its own structure.
#[derive(Clone, Copy, Debug, Default)]
pub struct Checks<'a> {
    /// `--ca-names`: a file whose certificates' subjects form an acceptable-CA list.
    pub ca_names: Option<&'a Path>,
    /// `--trust`: trust anchors to verify the chain against.
    pub trust: Option<&'a Path>,
    /// `--key`: a private key that should belong to the leaf.
    pub key: Option<&'a Path>,
}

/// One certificate with its judgement.
#[derive(Clone, Debug, Serialize)]
pub struct CertReport {
    /// Position in the file (0 = leaf).
    pub position: usize,
    /// `leaf`, `self-signed leaf`, `intermediate`, `root` or `certificate` (a non-CA after the
    /// leaf).
    pub role: &'static str,
    /// `valid`, `expired` or `not_yet_valid` at the report's instant.
    pub validity: &'static str,
    /// The summary every part of mtlscope uses.
    #[serde(flatten)]
    pub summary: CertSummary,
}

/// Chain structure.
#[derive(Clone, Debug, Serialize)]
pub struct ChainReport {
    /// Places where certificate `position` was not issued by the next one.
    pub order_breaks: Vec<OrderBreak>,
    /// The issuer of the last certificate when it is not itself in the file (None: the file ends
    /// at a self-issued certificate).
    pub missing_issuer: Option<String>,
}

/// Certificate `position` is followed by one that did not issue it.
#[derive(Clone, Debug, Serialize)]
pub struct OrderBreak {
    /// Index of the certificate.
    pub position: usize,
    /// Its issuer.
    pub issuer: String,
    /// The subject of the certificate that follows it instead.
    pub next_subject: String,
}

/// Whether a chain satisfies an acceptable-CA list.
#[derive(Clone, Debug, Serialize)]
pub struct CaNamesCheck {
    /// A listed name appears as a subject or issuer in the chain.
    pub satisfied: bool,
    /// Where it matched.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub matched: Option<CaNameMatch>,
    /// In words: where it matched, or why nothing did.
    pub explanation: String,
}

/// Where a listed name matched.
#[derive(Clone, Debug, Serialize)]
pub struct CaNameMatch {
    /// Index in the chain (0 = leaf).
    pub position: usize,
    /// Matched the certificate's subject (true) or its issuer (false).
    pub by_subject: bool,
    /// The listed name.
    pub ca_name: String,
}

/// Read every certificate in a PEM (or single DER) file, strictly: any malformed part is an error
/// naming the file.
pub fn read_cert_file(path: &Path) -> Result<Vec<CertSummary>, InspectError> {
    read_cert_ders(path)?
        .iter()
        .enumerate()
        .map(|(i, der)| {
            crate::cert::summarize(der).map_err(|e| InspectError::BadCertificate {
                path: path.to_path_buf(),
                index: i + 1,
                detail: e.to_string(),
            })
        })
        .collect()
}

/// The certificates of a PEM (or single DER) file as DER, strictly.
pub fn read_cert_ders(path: &Path) -> Result<Vec<CertificateDer<'static>>, InspectError> {
    let bytes = std::fs::read(path).map_err(|source| InspectError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let looks_pem = bytes.windows(11).any(|w| w == b"-----BEGIN ");
    if !looks_pem {
        return crate::cert::summarize(&bytes)
            .map(|_| vec![CertificateDer::from(bytes.clone())])
            .map_err(|e| InspectError::NotCertificate {
                path: path.to_path_buf(),
                detail: e.to_string(),
            });
    }
    let mut reader = bytes.as_slice();
    let mut ders = Vec::new();
    let mut found = Vec::new();
    loop {
        match rustls::pki_types::pem::from_buf(&mut reader) {
            Ok(Some((SectionKind::Certificate, der))) => ders.push(CertificateDer::from(der)),
            Ok(Some((kind, _))) => found.push(section_name(kind)),
            Ok(None) => break,
            Err(e) => {
                return Err(InspectError::BadPem {
                    path: path.to_path_buf(),
                    detail: e.to_string(),
                })
            }
        }
    }
    if ders.is_empty() {
        return Err(InspectError::NoCertificate {
            path: path.to_path_buf(),
            found,
        });
    }
    Ok(ders)
}

fn section_name(kind: SectionKind) -> String {
    match kind {
        SectionKind::PrivateKey => "PRIVATE KEY",
        SectionKind::RsaPrivateKey => "RSA PRIVATE KEY",
        SectionKind::EcPrivateKey => "EC PRIVATE KEY",
        SectionKind::PublicKey => "PUBLIC KEY",
        SectionKind::Crl => "X509 CRL",
        SectionKind::Csr => "CERTIFICATE REQUEST",
        _ => "another PEM section",
    }
    .to_string()
}

/// Build the acceptable-CA list from the subjects of the certificates in `path`.
pub fn read_ca_names(path: &Path) -> Result<CaNamesList, InspectError> {
    let cas = read_cert_file(path)?;
    Ok(CaNamesList {
        file: path.to_path_buf(),
        names: cas.iter().map(|c| c.subject.clone()).collect(),
        names_der: cas.iter().map(|c| c.subject_der.clone()).collect(),
    })
}

/// Inspect `files` at `at`, checking each against `ca_names` when given.
pub fn inspect(
    files: &[PathBuf],
    ca_names: Option<&Path>,
    at: OffsetDateTime,
) -> Result<InspectReport, InspectError> {
    let checks = Checks {
        ca_names,
        ..Checks::default()
    };
    inspect_with(files, checks, at)
}

/// Inspect `files` at `at` with every check in `checks`.
pub fn inspect_with(
    files: &[PathBuf],
    checks: Checks<'_>,
    at: OffsetDateTime,
) -> Result<InspectReport, InspectError> {
    let ca_names = checks.ca_names.map(read_ca_names).transpose()?;
    let anchors = checks.trust.map(TrustAnchors::load).transpose()?;
    let files = files
        .iter()
        .map(|f| {
            let ders = read_cert_ders(f)?;
            let mut report = inspect_chain(f, read_cert_file(f)?, ca_names.as_ref(), at);
            report.trust_check = anchors.as_ref().map(|a| a.check(&ders, at));
            report.key_check = checks.key.map(|k| check_key(f, &ders, k)).transpose()?;
            report.judge();
            Ok(report)
        })
        .collect::<Result<Vec<_>, InspectError>>()?;
    Ok(InspectReport {
        at,
        ca_names,
        files,
    })
}

/// The report for one already-read chain.
pub fn inspect_chain(
    path: &Path,
    chain: Vec<CertSummary>,
    ca_names: Option<&CaNamesList>,
    at: OffsetDateTime,
) -> FileReport {
    let order_breaks = reason::order_breaks(&chain)
        .into_iter()
        .map(|i| OrderBreak {
            position: i,
            issuer: chain[i].issuer.clone(),
            next_subject: chain[i + 1].subject.clone(),
        })
        .collect();
    let missing_issuer = reason::missing_issuer(&chain).map(str::to_string);
    let client_purpose_problems = chain
        .first()
        .map(|leaf| {
            reason::client_purpose_problems(leaf)
                .iter()
                .map(ToString::to_string)
                .collect()
        })
        .unwrap_or_default();
    let ca_names_check = ca_names.map(|list| check_ca_names(&chain, list));
    let certificates = chain
        .into_iter()
        .enumerate()
        .map(|(position, summary)| CertReport {
            position,
            role: role(position, &summary),
            validity: match reason::validity_at(&summary, at) {
                Validity::Valid => "valid",
                Validity::Expired => "expired",
                Validity::NotYetValid => "not_yet_valid",
            },
            summary,
        })
        .collect();
    let mut report = FileReport {
        path: path.to_path_buf(),
        certificates,
        chain: ChainReport {
            order_breaks,
            missing_issuer,
        },
        client_purpose_problems,
        ca_names_check,
        trust_check: None,
        key_check: None,
        problems: Vec::new(),
        usable: false,
    };
    report.judge();
    report
}

impl FileReport {
    /// Collect the problems of every check made so far into the verdict.
    fn judge(&mut self) {
        let mut problems = Vec::new();
        for c in &self.certificates {
            let what = match c.validity {
                "expired" => "has expired",
                "not_yet_valid" => "is not valid yet",
                _ => continue,
            };
            problems.push(format!(
                "certificate #{} ({}) {what}",
                c.position, c.summary.subject
            ));
        }
        problems.extend(self.client_purpose_problems.iter().cloned());
        if let Some(c) = self.ca_names_check.as_ref().filter(|c| !c.satisfied) {
            problems.push(format!(
                "the acceptable-CA list is not satisfied: {}",
                c.explanation
            ));
        }
        if let Some(c) = self.trust_check.as_ref().filter(|c| !c.verifies) {
            problems.push(format!("the chain {}", c.explanation));
        }
        if let Some(c) = self.key_check.as_ref().filter(|c| !c.matches) {
            problems.push(c.explanation.clone());
        }
        self.usable = problems.is_empty();
        self.problems = problems;
    }
}

fn role(position: usize, c: &CertSummary) -> &'static str {
    match (position, c.is_ca, c.self_issued) {
        (0, false, true) => "self-signed leaf",
        (0, false, false) => "leaf",
        (_, true, true) => "root",
        (_, true, false) => "intermediate",
        (_, false, _) => "certificate",
    }
}

/// Would a server sending `list` as its acceptable CAs be offered (and accept the path of) this
/// chain? Names are compared as DER.
pub fn check_ca_names(chain: &[CertSummary], list: &CaNamesList) -> CaNamesCheck {
    if let Some(m) = reason::match_ca_names(chain, &list.names, &list.names_der) {
        let whose = chain
            .get(m.position)
            .map(|c| c.subject.as_str())
            .unwrap_or("?");
        let explanation = format!(
            "{} is the {} of certificate #{} ({whose})",
            m.ca_name,
            if m.by_subject { "subject" } else { "issuer" },
            m.position
        );
        return CaNamesCheck {
            satisfied: true,
            matched: Some(CaNameMatch {
                position: m.position,
                by_subject: m.by_subject,
                ca_name: m.ca_name,
            }),
            explanation,
        };
    }
    let listed = name_list(&list.names);
    let explanation = match (chain, reason::missing_issuer(chain)) {
        ([], _) => format!("the file holds no certificate; the list names only {listed}"),
        ([only], None) => format!(
            "the list names only {listed}; the certificate is self-signed ({}), so no listed CA \
             issued it",
            only.subject
        ),
        (_, Some(issuer)) => {
            let last = chain.last().map(|c| c.subject.as_str()).unwrap_or("?");
            let what = if chain.len() == 1 {
                "the leaf".to_string()
            } else {
                last.to_string()
            };
            format!(
                "the list names only {listed}; the chain ends at {what}, issued by {issuer}, \
                 which the list does not name: the chain lacks the intermediate that links \
                 {issuer} to a listed CA (append it to the certificate file after the leaf), \
                 or the certificate comes from a CA the server does not accept"
            )
        }
        (_, None) => {
            let top = chain.last().map(|c| c.subject.as_str()).unwrap_or("?");
            format!(
                "the list names only {listed}; the chain leads up to {top}, which the list does \
                 not name: the certificate comes from a CA the server does not accept"
            )
        }
    };
    CaNamesCheck {
        satisfied: false,
        matched: None,
        explanation,
    }
}

fn name_list(names: &[String]) -> String {
    const SHOWN: usize = 4;
    let mut s = names
        .iter()
        .take(SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join("; ");
    if names.len() > SHOWN {
        s.push_str(&format!(" and {} more", names.len() - SHOWN));
    }
    s
}
