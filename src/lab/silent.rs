//! The lab server's `silent_reject` mode: a server that refuses a client certificate by
//! closing the connection without a word, as some TLS stacks do. Over TLS 1.2 the close comes
//! instead of the alert, before the server's Finished; over TLS 1.3 the handshake completes
//! from the client's side and the server then closes without reading a request.

use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The TLS record type of an alert.
const ALERT_RECORD: u8 = 0x15;

/// A stream that fails a write of an alert record instead of sending it, so the peer sees only
/// the connection close.
pub struct DropAlerts<S> {
    /// The TCP stream.
    inner: S,
    /// Whether alerts are withheld (otherwise the stream is passed through).
    active: bool,
}

impl<S> DropAlerts<S> {
    /// Wrap `inner`; `active` false passes everything through.
    pub fn new(inner: S, active: bool) -> DropAlerts<S> {
        DropAlerts { inner, active }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for DropAlerts<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for DropAlerts<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.active && data.first() == Some(&ALERT_RECORD) {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "lab server: alert withheld (silent reject)",
            )));
        }
        Pin::new(&mut self.inner).poll_write(cx, data)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Whether the strict verifier accepts the chain a client presented (none is refused).
pub fn accepts(strict: &Arc<dyn ClientCertVerifier>, chain: Option<&[CertificateDer<'_>]>) -> bool {
    let Some((leaf, intermediates)) = chain.and_then(|c| c.split_first()) else {
        return false;
    };
    strict
        .verify_client_cert(leaf, intermediates, UnixTime::now())
        .is_ok()
}

/// The handshake's verifier in TLS 1.3 `silent_reject` mode: asks with the strict verifier's CA
/// names and checks possession of the key, but accepts any chain, so the refusal can come after
/// the handshake.
#[derive(Debug)]
pub struct AcceptAny {
    /// The strict verifier, for CA names and signatures.
    pub strict: Arc<dyn ClientCertVerifier>,
}

impl ClientCertVerifier for AcceptAny {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.strict.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.strict.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.strict.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.strict.supported_verify_schemes()
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }
}
