//! Proof of key possession (CertificateVerify), checked the same way by both legs' recording
//! verifiers whatever they decide about the chain.

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::CertificateDer;
use rustls::{DigitallySignedStruct, SignatureScheme};

/// Signature checks with one provider's algorithms.
#[derive(Debug, Clone, Copy)]
pub struct SignatureChecks<'a>(pub &'a CryptoProvider);

impl SignatureChecks<'_> {
    /// A TLS 1.2 CertificateVerify / ServerKeyExchange signature.
    pub fn tls12(
        self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    /// A TLS 1.3 CertificateVerify signature.
    pub fn tls13(
        self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    /// The schemes the provider can verify.
    pub fn schemes(self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
