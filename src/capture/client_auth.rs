//! The client leg's CertificateRequest and the recording client-certificate verifier.
//!
//! The verifier writes down what the client presented and its own verdict against
//! `--client-ca`, and by default lets the handshake finish even for a bad certificate so the HTTP
//! side can still be observed; with `--enforce` it rejects like a real server. Proof of key
//! possession (CertificateVerify) is always checked.

use super::signatures::SignatureChecks;
use super::LegRecorder;
use crate::facts::EventKind;
use crate::facts::{CertProblem, CertRequest, ChainVerdict, Phase};
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use std::sync::Arc;

/// `--client-auth`: whether and how mtlscope asks the client for a certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuthMode {
    /// No CertificateRequest.
    None,
    /// Ask; an empty answer is fine.
    Optional,
    /// Ask; an empty answer ends the handshake (certificate_required).
    Required,
    /// Ask with the upstream's own CA names, learned first (forward and reverse).
    Mirror,
}

/// How the client leg asks for certificates: shared by every connection of a listener.
#[derive(Debug)]
pub struct ClientAuthPolicy {
    /// Whether and how to ask.
    pub mode: ClientAuthMode,
    /// The CA names sent (from `--client-ca` subjects), empty for an empty list.
    pub ca_names: Vec<DistinguishedName>,
    /// Verifier for the verdict against `--client-ca`; None when no CA was given.
    pub trust: Option<Arc<dyn ClientCertVerifier>>,
    /// `--enforce`: refuse certificates that fail the verdict.
    pub enforce: bool,
    /// The crypto provider, for signature checks.
    pub provider: Arc<CryptoProvider>,
    /// Configured CA certificates, to look up the issuer a presented chain lacks.
    pub known: Arc<crate::cert::KnownCerts>,
    /// `--check-revocation`: checks the presented chain in its own task; the answer is
    /// attached to the leg when it arrives (the handshake never waits for it).
    pub revocation: Option<Arc<crate::revocation::Checker>>,
}

impl ClientAuthPolicy {
    /// Build from CA certificates (`--client-ca`); `send_names` false sends an empty list while
    /// still judging against the CAs.
    pub fn new(
        mode: ClientAuthMode,
        client_cas: &[CertificateDer<'static>],
        send_names: bool,
        enforce: bool,
        provider: Arc<CryptoProvider>,
    ) -> Result<ClientAuthPolicy, rustls::Error> {
        let mut roots = rustls::RootCertStore::empty();
        let mut ca_names = Vec::new();
        for ca in client_cas {
            roots.add(ca.clone())?;
            if let Ok(summary) = crate::cert::summarize(ca) {
                if let Some(der) = crate::cert::unhex(&summary.subject_der) {
                    ca_names.push(DistinguishedName::from(der));
                }
            }
        }
        let trust = if roots.is_empty() {
            None
        } else {
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider.clone(),
            )
            .allow_unauthenticated()
            .build()
            .map_err(|e| rustls::Error::General(e.to_string()))?;
            Some(verifier)
        };
        Ok(ClientAuthPolicy {
            mode,
            ca_names: if send_names { ca_names } else { Vec::new() },
            trust,
            enforce,
            provider,
            known: Arc::default(),
            revocation: None,
        })
    }

    /// This policy sending other CA names (a `ca-list` or `empty-ca-list` fault).
    pub fn with_ca_names(&self, names: Vec<Vec<u8>>) -> ClientAuthPolicy {
        ClientAuthPolicy {
            mode: self.mode,
            ca_names: names.into_iter().map(DistinguishedName::from).collect(),
            trust: self.trust.clone(),
            enforce: self.enforce,
            provider: self.provider.clone(),
            known: self.known.clone(),
            revocation: self.revocation.clone(),
        }
    }

    /// The `mirror` policy for one connection: ask the client with exactly the upstream's CA
    /// names (empty if its list was empty), or ask nothing if the upstream asked nothing.
    pub fn mirror_of(&self, upstream_request: Option<&CertRequest>) -> ClientAuthPolicy {
        let (mode, ca_names) = match upstream_request {
            None => (ClientAuthMode::None, Vec::new()),
            Some(req) => (
                ClientAuthMode::Optional,
                req.ca_names_der
                    .iter()
                    .filter_map(|hex| crate::cert::unhex(hex))
                    .map(DistinguishedName::from)
                    .collect(),
            ),
        };
        ClientAuthPolicy {
            mode,
            ca_names,
            trust: self.trust.clone(),
            enforce: self.enforce,
            provider: self.provider.clone(),
            known: self.known.clone(),
            revocation: self.revocation.clone(),
        }
    }
}

/// The per-connection verifier: the policy plus where to record.
#[derive(Debug)]
pub struct RecordingClientVerifier {
    /// The listener's policy.
    policy: Arc<ClientAuthPolicy>,
    /// The client leg.
    rec: LegRecorder,
}

impl RecordingClientVerifier {
    /// A verifier for one connection.
    pub fn new(policy: Arc<ClientAuthPolicy>, rec: LegRecorder) -> Self {
        RecordingClientVerifier { policy, rec }
    }
}

impl RecordingClientVerifier {
    /// The client's CertificateVerify arrived and was checked (TLS 1.3: inside encrypted
    /// records, so only this hook sees it).
    fn certificate_verify(&self, scheme: SignatureScheme, ok: bool) {
        let verdict = if ok { "valid" } else { "invalid" };
        self.rec.sent(
            EventKind::ClientCertificateVerify,
            crate::facts::Peer::Client,
            &format!("{scheme:?}, signature {verdict}"),
        );
    }
}

impl ClientCertVerifier for RecordingClientVerifier {
    fn offer_client_auth(&self) -> bool {
        self.policy.mode != ClientAuthMode::None
    }

    fn client_auth_mandatory(&self) -> bool {
        self.policy.mode == ClientAuthMode::Required
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        // rustls asks for the hints exactly when it composes the CertificateRequest.
        let at_ms = self.rec.clock().ms();
        let names = &self.policy.ca_names;
        self.rec.with(|leg| {
            if leg.cert_request.is_none() {
                leg.cert_request = Some(CertRequest {
                    phase: Phase::Handshake,
                    ca_names: Some(
                        names
                            .iter()
                            .map(|n| crate::cert::dn_to_string(n.as_ref()))
                            .collect(),
                    ),
                    ca_names_der: names.iter().map(|n| crate::cert::hex(n.as_ref())).collect(),
                    signature_schemes: Vec::new(),
                    mandatory: Some(self.policy.mode == ClientAuthMode::Required),
                    at_ms,
                    after_request_ms: None,
                });
            }
        });
        names
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let chain = crate::cert::summarize_chain(
            std::iter::once(end_entity.as_ref()).chain(intermediates.iter().map(|c| c.as_ref())),
        );
        let verdict = self
            .policy
            .trust
            .as_ref()
            .map(|trust| trust.verify_client_cert(end_entity, intermediates, now));
        let enforce = self.policy.enforce;
        self.rec.event(
            EventKind::ClientCertificate,
            chain.first().map(|c| c.subject.clone()),
        );
        self.rec.with(|leg| {
            leg.issuer_lookup = self.policy.known.lookup_issuer(&chain);
            leg.chain = chain;
            leg.chain_verdict = verdict.as_ref().map(|v| ChainVerdict {
                trusted: v.is_ok(),
                reason: v.as_ref().err().map(|e| e.to_string()),
                problem: v.as_ref().err().and_then(CertProblem::of_error),
                enforced: enforce,
            });
        });
        if let (Some(checker), Ok(rt)) = (
            self.policy.revocation.clone(),
            tokio::runtime::Handle::try_current(),
        ) {
            let owned: Vec<CertificateDer<'static>> = std::iter::once(end_entity)
                .chain(intermediates)
                .map(|c| c.clone().into_owned())
                .collect();
            let rec = self.rec.clone();
            rt.spawn(async move {
                let checks = checker.check_chain(&owned).await;
                if !checks.is_empty() {
                    rec.with(|leg| leg.revocation = checks);
                }
            });
        }
        match verdict {
            Some(Err(e)) if enforce => Err(e),
            _ => Ok(ClientCertVerified::assertion()),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let checked = SignatureChecks(&self.policy.provider).tls12(message, cert, dss);
        self.certificate_verify(dss.scheme, checked.is_ok());
        checked
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let checked = SignatureChecks(&self.policy.provider).tls13(message, cert, dss);
        self.certificate_verify(dss.scheme, checked.is_ok());
        checked
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        SignatureChecks(&self.policy.provider).schemes()
    }
}
