//! The upstream leg's server-certificate verifier: records the server's chain and whether it
//! verified, and with `--insecure-upstream` continues anyway.

use super::signatures::SignatureChecks;
use super::verdict_cache::{Question, VerdictCache};
use super::LegRecorder;
use crate::facts::EventKind;
use crate::facts::{CertProblem, ServerVerification};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use std::sync::Arc;

/// The upstream trust decision shared by every connection.
#[derive(Debug, Clone)]
pub struct UpstreamTrust {
    /// WebPKI verification against the upstream trust anchors; None when there are none.
    pub webpki: Option<Arc<dyn ServerCertVerifier>>,
    /// `--insecure-upstream`: record the verdict, continue regardless.
    pub insecure: bool,
    /// The crypto provider, for signature checks.
    pub provider: Arc<CryptoProvider>,
    /// Chains verified recently, shared by every connection.
    pub verdicts: Arc<VerdictCache>,
}

impl UpstreamTrust {
    /// Trust anchors from `roots` (`--upstream-ca`, or the system store).
    pub fn new(
        roots: rustls::RootCertStore,
        insecure: bool,
        provider: Arc<CryptoProvider>,
    ) -> UpstreamTrust {
        let webpki = if roots.is_empty() {
            None
        } else {
            rustls::client::WebPkiServerVerifier::builder_with_provider(
                Arc::new(roots),
                provider.clone(),
            )
            .build()
            .ok()
            .map(|v| v as Arc<dyn ServerCertVerifier>)
        };
        UpstreamTrust {
            webpki,
            insecure,
            provider,
            verdicts: Arc::default(),
        }
    }
}

/// The per-connection verifier.
#[derive(Debug)]
pub struct RecordingServerVerifier {
    /// Shared trust settings.
    trust: UpstreamTrust,
    /// The upstream leg.
    rec: LegRecorder,
    /// Configured CA certificates: with the server's chain, they may complete the chain
    /// mtlscope presented (TLS 1.3 sends the server's chain after the certificate request).
    known: Arc<crate::cert::KnownCerts>,
}

impl RecordingServerVerifier {
    /// A verifier for one upstream connection.
    pub fn new(trust: UpstreamTrust, rec: LegRecorder) -> Self {
        RecordingServerVerifier {
            trust,
            rec,
            known: Arc::default(),
        }
    }

    /// Look up the presented chain's missing issuer in `known` and the server's chain.
    pub fn with_known(mut self, known: Arc<crate::cert::KnownCerts>) -> Self {
        self.known = known;
        self
    }
}

impl ServerCertVerifier for RecordingServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let chain = crate::cert::summarize_chain(
            std::iter::once(end_entity.as_ref()).chain(intermediates.iter().map(|c| c.as_ref())),
        );
        let question = Question::new(end_entity, intermediates, server_name, ocsp_response);
        let result = match &self.trust.webpki {
            Some(_) if self.trust.verdicts.verified(&question, now) => {
                Ok(ServerCertVerified::assertion())
            }
            Some(v) => {
                let r = v.verify_server_cert(
                    end_entity,
                    intermediates,
                    server_name,
                    ocsp_response,
                    now,
                );
                if r.is_ok() {
                    self.trust.verdicts.remember(question, &chain, now);
                }
                r
            }
            None => Err(rustls::Error::General(
                "no upstream trust anchors are configured".into(),
            )),
        };
        let enforced = !self.trust.insecure;
        self.rec.event(
            EventKind::ServerCertificate,
            chain.first().map(|c| c.subject.clone()),
        );
        self.rec.with(|leg| {
            leg.server_chain = chain;
            if leg.issuer_lookup.is_some() {
                leg.issuer_lookup = self.known.lookup_issuer_with(
                    super::upstream_auth::offered_chain(leg),
                    &leg.server_chain,
                    super::upstream_auth::SERVER_CHAIN_SOURCE,
                );
            }
            leg.server_verification = Some(ServerVerification {
                ok: result.is_ok(),
                reason: result.as_ref().err().map(verification_words),
                problem: result.as_ref().err().and_then(CertProblem::of_error),
                enforced,
            });
        });
        match result {
            Err(e) if enforced => {
                super::upstream_auth::record_ended_before_certificate(&self.rec);
                Err(e)
            }
            _ => Ok(ServerCertVerified::assertion()),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let checked = SignatureChecks(&self.trust.provider).tls12(message, cert, dss);
        self.past_server_checks(EventKind::ServerKeyExchangeSignature, checked.is_ok());
        checked
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let checked = SignatureChecks(&self.trust.provider).tls13(message, cert, dss);
        self.past_server_checks(EventKind::ServerCertificateVerify, checked.is_ok());
        checked
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        SignatureChecks(&self.trust.provider).schemes()
    }
}

impl RecordingServerVerifier {
    /// The server's signature was checked (rustls checks it after the certificate): the next
    /// thing rustls writes answers the CertificateRequest, or the handshake ends here.
    /// `event`: what was signed (TLS 1.2: the ServerKeyExchange, which the wire shows; TLS
    /// 1.3: the CertificateVerify, encrypted).
    fn past_server_checks(&self, event: EventKind, ok: bool) {
        let verdict = if ok { "valid" } else { "invalid" };
        let rest = format!("signature {verdict}");
        self.rec.sent(event, crate::facts::Peer::Server, &rest);
        if ok {
            super::upstream_auth::record_past_server_checks(&self.rec);
        } else {
            super::upstream_auth::record_ended_before_certificate(&self.rec);
        }
    }
}

fn verification_words(e: &rustls::Error) -> String {
    use rustls::CertificateError as C;
    match e {
        rustls::Error::InvalidCertificate(C::UnknownIssuer) => "unknown issuer".into(),
        rustls::Error::InvalidCertificate(C::NotValidForName)
        | rustls::Error::InvalidCertificate(C::NotValidForNameContext { .. }) => {
            "name mismatch".into()
        }
        rustls::Error::InvalidCertificate(C::Expired)
        | rustls::Error::InvalidCertificate(C::ExpiredContext { .. }) => "expired".into(),
        other => other.to_string(),
    }
}
