//! The OpenSSL upstream engine: a TLS client that, unlike rustls, completes a server's late
//! certificate request — TLS 1.2 renegotiation (IIS without client-certificate negotiation,
//! Apache per-location `SSLVerifyClient`) and TLS 1.3 post-handshake authentication — inside
//! ordinary reads, and records everything about it.
//!
//! It honours what the rustls engine does: the identity policy (chosen when the server asks,
//! from that request's CA names), `--upstream-ca` / the system store, `--insecure-upstream`
//! (verified, recorded, not enforced), SNI, `--resolve`, `--keylog`, timeouts. It offers only
//! `http/1.1`: HTTP/2 forbids both late requests. Sessions are never resumed, so every
//! handshake is seen whole.
//!
//! Each connection is driven by the one task that owns its stream (hyper's connection task):
//! a renegotiation started from a write must wake the same reader.

pub mod capture;
// The one module allowed unsafe code: the OpenSSL calls rust-openssl does not wrap.
#[allow(unsafe_code)]
mod ffi;
pub mod stream;

use super::rustls_engine::{await_verdict, fail, timed_out, verdict_wait};
use super::{Connected, Failed, Target};
use crate::capture::upstream_auth::{record_candidates, IdentityPolicy};
use crate::capture::LegRecorder;
use crate::facts::EventKind;
use crate::facts::{ClientHelloFacts, ServerVerification, TlsEngine, TlsVersion};
use crate::io::Rewind;
use crate::wire::{Tap, TapHandle, TapRole};
use bytes::Bytes;
use capture::{Capture, OpensslIdentity};
use openssl::ssl::{
    Ssl, SslConnector, SslContext, SslMethod, SslSessionCacheMode, SslVerifyMode, SslVersion,
};
use openssl::x509::store::X509StoreBuilder;
use openssl::x509::{X509VerifyResult, X509};
use rustls::pki_types::CertificateDer;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use stream::{classify_ssl, Recorded};

/// What every OpenSSL upstream connection of a listener shares.
#[derive(Clone)]
pub struct OpensslSettings {
    /// Trust anchors for the server's certificate (`--upstream-ca`, or the system store).
    pub roots: Vec<CertificateDer<'static>>,
    /// `--insecure-upstream`: record the verdict, continue regardless.
    pub insecure: bool,
    /// `--keylog`, shared with the rustls engine.
    pub keylog: Option<Arc<dyn rustls::KeyLog>>,
    /// Bound on TCP connect and on the handshake, each.
    pub timeout: Duration,
    /// Offer only this version (`probe` tries each alone); `None` offers TLS 1.3 and 1.2.
    pub version: Option<TlsVersion>,
}

impl std::fmt::Debug for OpensslSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpensslSettings")
            .field("roots", &self.roots.len())
            .field("insecure", &self.insecure)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// Why the OpenSSL engine could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// OpenSSL refused a setting or a trust anchor.
    #[error("cannot set up the OpenSSL upstream engine: {0}")]
    Openssl(#[from] openssl::error::ErrorStack),
}

/// The OpenSSL engine: one `SSL_CTX` per listener, one `SSL` per connection.
#[derive(Clone)]
pub struct OpensslEngine {
    /// The shared context (trust store, ALPN, post-handshake auth, key log).
    ctx: SslContext,
    /// The settings it was built from.
    settings: Arc<OpensslSettings>,
}

impl std::fmt::Debug for OpensslEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpensslEngine")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl OpensslEngine {
    /// The address of its settings: the same for every leg of one configured engine.
    pub fn settings_id(&self) -> usize {
        Arc::as_ptr(&self.settings) as usize
    }
}

impl OpensslEngine {
    /// Build the shared context.
    pub fn new(settings: OpensslSettings) -> Result<OpensslEngine, SetupError> {
        let mut b = SslConnector::builder(SslMethod::tls_client())?;
        b.set_min_proto_version(Some(SslVersion::TLS1_2))?;
        match settings.version {
            Some(TlsVersion::Tls13) => b.set_min_proto_version(Some(SslVersion::TLS1_3))?,
            Some(TlsVersion::Tls12) => b.set_max_proto_version(Some(SslVersion::TLS1_2))?,
            _ => {}
        }
        let mut store = X509StoreBuilder::new()?;
        for root in &settings.roots {
            // A root OpenSSL cannot parse is skipped, as the rustls store skips it.
            if let Ok(cert) = X509::from_der(root.as_ref()) {
                let _ = store.add_cert(cert);
            }
        }
        b.set_cert_store(store.build());
        // Offer only HTTP/1.1: HTTP/2 forbids renegotiation and post-handshake auth.
        b.set_alpn_protos(b"\x08http/1.1")?;
        ffi::enable_post_handshake_auth(&mut b);
        // Every handshake whole: a resumed session carries no CertificateRequest.
        b.set_session_cache_mode(SslSessionCacheMode::OFF);
        b.set_options(openssl::ssl::SslOptions::NO_TICKET);
        if let Some(log) = settings.keylog.clone() {
            b.set_keylog_callback(move |_, line| {
                if let Some((label, random, secret)) = stream::keylog_parts(line) {
                    log.log(label, &random, &secret);
                }
            });
        }
        Ok(OpensslEngine {
            ctx: b.build().into_context(),
            settings: Arc::new(settings),
        })
    }

    /// Connect and handshake, recording into `rec`.
    pub async fn connect(
        &self,
        target: &Target,
        identity: &IdentityPolicy,
        rec: &LegRecorder,
    ) -> Result<Connected, Failed> {
        let s = &self.settings;
        rec.with(|leg| {
            leg.peer = Some(target.authority());
            leg.engine = Some(TlsEngine::Openssl);
        });
        rec.event(EventKind::TcpConnectStart, Some(target.authority()));
        let connect_started = std::time::Instant::now();
        let tcp = match tokio::time::timeout(s.timeout, target.connect_tcp()).await {
            Ok(Ok(tcp)) => tcp,
            Ok(Err(e)) => {
                return Err(fail(
                    rec,
                    crate::capture::tls_error::classify_io(crate::facts::Stage::Connect, &e),
                ))
            }
            Err(_) => {
                return Err(fail(
                    rec,
                    timed_out(crate::facts::Stage::Connect, s.timeout),
                ))
            }
        };
        let _ = tcp.set_nodelay(true);
        let connect_rtt = connect_started.elapsed();
        rec.event(
            EventKind::TcpConnect,
            tcp.peer_addr().ok().map(|a| a.to_string()),
        );
        let tap = TapHandle::new(rec.clock().instant(), TapRole::Client);
        rec.attach_tap(tap.clone(), false);
        let tcp = Tap::new(tcp, tap);

        record_candidates(identity, rec);
        let setup = OpensslIdentity::of_policy(identity)
            .map_err(SetupError::from)
            .and_then(|ids| {
                let capture = Arc::new(Capture::new(rec.clone(), identity.clone(), ids));
                let ssl = self.ssl(target, capture.clone(), rec)?;
                Ok((capture, ssl))
            });
        let (capture, ssl) = setup.map_err(|e| {
            fail(
                rec,
                crate::capture::tls_error::Classified::new(
                    crate::facts::Stage::Config,
                    crate::facts::FailureKind::Config,
                    e.to_string(),
                ),
            )
        })?;
        let sni = target
            .host
            .parse::<std::net::IpAddr>()
            .is_err()
            .then(|| target.host.clone());
        rec.with(|leg| {
            leg.sni = sni.clone();
            leg.client_hello = Some(ClientHelloFacts {
                sni,
                alpn: vec!["http/1.1".into()],
                versions: match s.version {
                    Some(v) => vec![v],
                    None => vec![TlsVersion::Tls13, TlsVersion::Tls12],
                },
                signature_schemes: Vec::new(),
                offered_pha: true,
            });
            leg.handshake_at = Some(rec.clock().wall_now());
        });
        rec.event(EventKind::ClientHello, None);

        let mut tls = tokio_openssl::SslStream::new(ssl, tcp).map_err(|e| {
            fail(
                rec,
                crate::capture::tls_error::Classified::new(
                    crate::facts::Stage::Config,
                    crate::facts::FailureKind::Config,
                    e.to_string(),
                ),
            )
        })?;
        match tokio::time::timeout(s.timeout, Pin::new(&mut tls).connect()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                return Err(fail(
                    rec,
                    classify_ssl(crate::facts::Stage::Handshake, &e, &capture),
                ))
            }
            Err(_) => {
                return Err(fail(
                    rec,
                    timed_out(crate::facts::Stage::Handshake, s.timeout),
                ))
            }
        }
        capture.established();
        let ssl = tls.ssl();
        let version = match ssl.version2() {
            Some(SslVersion::TLS1_3) => Some(TlsVersion::Tls13),
            Some(SslVersion::TLS1_2) => Some(TlsVersion::Tls12),
            _ => None,
        };
        let cipher = ssl.current_cipher().map(|c| {
            let id = c.protocol_id();
            format!("{:?}", rustls::CipherSuite::from(u16::from_be_bytes(id)))
        });
        let alpn = ssl.selected_alpn_protocol().map(<[u8]>::to_vec);
        let at_ms = rec.clock().ms();
        rec.with(|leg| {
            leg.tls_version = version;
            leg.cipher = cipher;
            leg.alpn = alpn
                .as_ref()
                .map(|p| String::from_utf8_lossy(p).into_owned());
            leg.handshake_done_ms = Some(at_ms);
        });
        rec.event(EventKind::HandshakeDone, None);

        let ticket = capture.ticket();
        let mut tls = Recorded::new(tls, rec.clone(), capture.clone());
        let early = if version == Some(TlsVersion::Tls13) && rec.with(|l| l.cert_request.is_some())
        {
            await_verdict(&mut tls, &ticket, verdict_wait(connect_rtt), rec).await?
        } else {
            Bytes::new()
        };
        Ok(Connected {
            io: Box::new(Rewind::new(early, tls)),
            alpn,
        })
    }

    /// A new `SSL` for one connection: SNI, host-name check, recording verifier, callbacks.
    fn ssl(
        &self,
        target: &Target,
        capture: Arc<Capture>,
        rec: &LegRecorder,
    ) -> Result<Ssl, SetupError> {
        let mut ssl = Ssl::new(&self.ctx)?;
        match target.host.parse::<std::net::IpAddr>() {
            Ok(ip) => ssl.param_mut().set_ip(ip)?,
            Err(_) => {
                ssl.set_hostname(&target.host)?;
                ssl.param_mut().set_host(&target.host)?;
            }
        }
        let verdict = Arc::new(Mutex::new(None::<X509VerifyResult>));
        let insecure = self.settings.insecure;
        let rec = rec.clone();
        ssl.set_verify_callback(SslVerifyMode::PEER, move |ok, ctx| {
            // OpenSSL calls this per certificate, root first, and again for a host-name
            // mismatch: the first failure is the verdict.
            let mut first = verdict.lock().unwrap_or_else(|p| p.into_inner());
            if !ok && first.is_none() {
                *first = Some(ctx.error());
            }
            let proceed = ok || insecure;
            if ctx.error_depth() == 0 || !proceed {
                let failure = *first;
                rec.with(|leg| {
                    leg.server_verification = Some(ServerVerification {
                        ok: failure.is_none(),
                        reason: failure.map(verification_words),
                        problem: failure.map(verification_problem),
                        enforced: !insecure,
                    })
                });
            }
            proceed
        });
        ffi::observe(&mut ssl, capture)?;
        ssl.set_connect_state();
        Ok(ssl)
    }
}

/// The words the rustls engine uses for the same verdicts, OpenSSL's own otherwise.
fn verification_words(e: X509VerifyResult) -> String {
    match e.as_raw() {
        2 | 18 | 19 | 20 | 21 => "unknown issuer".into(),
        62 | 64 => "name mismatch".into(),
        10 => "expired".into(),
        9 => "not yet valid".into(),
        _ => e.error_string().to_string(),
    }
}

/// An OpenSSL verification result, classified (X509_V_ERR_* codes).
fn verification_problem(e: X509VerifyResult) -> crate::facts::CertProblem {
    use crate::facts::CertProblem;
    match e.as_raw() {
        2 | 18 | 19 | 20 | 21 => CertProblem::UnknownIssuer,
        62 | 64 => CertProblem::NameMismatch,
        10 => CertProblem::Expired,
        9 => CertProblem::NotYetValid,
        23 => CertProblem::Revoked,
        7 | 8 => CertProblem::BadSignature,
        26 => CertProblem::WrongPurpose,
        _ => CertProblem::Other,
    }
}
