//! The verifier and certificate resolver that a pairing's upstream sessions are bound to.
//!
//! rustls resumes a client session only with the very `ServerCertVerifier` and
//! `ResolvesClientCert` (the same `Arc`s) that made it, while mtlscope records each leg through
//! verifier and resolver objects of its own. So the sessions of a pairing are made with these
//! two stand-ins, shared by every leg of the pairing, and each call goes to the recording
//! objects of the leg whose handshake is running on the current task (set with [`scope`]).
//! Without one (no handshake of ours on this task) the verifier refuses and the resolver
//! presents nothing.

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::ResolvesClientCert;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, Error, SignatureScheme};
use std::future::Future;
use std::sync::Arc;

/// The recording verifier and resolver of the leg whose handshake runs on this task.
#[derive(Clone, Debug)]
pub struct LegAuth {
    /// Records and judges the server's chain.
    pub verifier: Arc<dyn ServerCertVerifier>,
    /// Records and chooses the identity presented.
    pub resolver: Arc<dyn ResolvesClientCert>,
}

tokio::task_local! {
    static LEG: LegAuth;
}

/// Run `fut` (a leg's handshake) with `auth` as the target of the stand-ins.
pub async fn scope<F: Future>(auth: LegAuth, fut: F) -> F::Output {
    LEG.scope(auth, fut).await
}

fn current<T>(f: impl FnOnce(&LegAuth) -> T) -> Option<T> {
    LEG.try_with(f).ok()
}

fn no_leg() -> Error {
    Error::General("no upstream leg handshake on this task".into())
}

/// The verifier a pairing's sessions are bound to.
#[derive(Debug, Default)]
pub struct RoutedVerifier;

impl ServerCertVerifier for RoutedVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        current(|l| {
            l.verifier
                .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        })
        .unwrap_or_else(|| Err(no_leg()))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        current(|l| l.verifier.verify_tls12_signature(message, cert, dss))
            .unwrap_or_else(|| Err(no_leg()))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        current(|l| l.verifier.verify_tls13_signature(message, cert, dss))
            .unwrap_or_else(|| Err(no_leg()))
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        current(|l| l.verifier.supported_verify_schemes()).unwrap_or_default()
    }

    fn requires_raw_public_keys(&self) -> bool {
        current(|l| l.verifier.requires_raw_public_keys()).unwrap_or(false)
    }
}

/// The certificate resolver a pairing's sessions are bound to.
#[derive(Debug, Default)]
pub struct RoutedResolver;

impl ResolvesClientCert for RoutedResolver {
    fn resolve(
        &self,
        root_hint_subjects: &[&[u8]],
        sigschemes: &[SignatureScheme],
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        current(|l| l.resolver.resolve(root_hint_subjects, sigschemes)).flatten()
    }

    fn only_raw_public_keys(&self) -> bool {
        current(|l| l.resolver.only_raw_public_keys()).unwrap_or(false)
    }

    fn has_certs(&self) -> bool {
        current(|l| l.resolver.has_certs()).unwrap_or(false)
    }
}
