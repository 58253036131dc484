//! The client leg: accepting TLS from the client with a per-connection server configuration
//! chosen after reading the ClientHello, and recording what happened.

use super::resumption::Pairing;
use crate::capture::client_auth::{ClientAuthPolicy, RecordingClientVerifier};
use crate::capture::flush::FlushAfterRead;
use crate::capture::sniff::{FirstBytes, Sniff};
use crate::capture::tls_error::{classify_io, Classified};
use crate::capture::LegRecorder;
use crate::facts::ChainFrom;
use crate::facts::ClientHelloFacts;
use crate::facts::EventKind;
use crate::facts::{AlertSource, FailureKind, Stage};
use crate::upstream::BoxIo;
use rustls::crypto::CryptoProvider;
use rustls::server::ResolvesServerCert;
use std::sync::Arc;
use std::time::Duration;
use tokio_rustls::server::TlsStream;

/// The decrypted client stream.
pub type ClientTls = FlushAfterRead<TlsStream<BoxIo>>;

/// What every client connection of a listener shares.
#[derive(Clone, Debug)]
pub struct ClientLegSettings {
    /// The crypto provider.
    pub provider: Arc<CryptoProvider>,
    /// The certificate mtlscope shows the client (`--server-cert`, or the local CA's leaves).
    pub server_cert: Arc<dyn ResolvesServerCert>,
    /// Whether and how to ask the client for a certificate.
    pub client_auth: Arc<ClientAuthPolicy>,
    /// ALPN protocols accepted from clients.
    pub alpn: Vec<Vec<u8>>,
    /// `--keylog`.
    pub keylog: Option<Arc<dyn rustls::KeyLog>>,
    /// Bound on the whole handshake.
    pub timeout: Duration,
    /// The listener's session cache and ticketer, shared by every connection so clients
    /// resume as they would with the server.
    pub sessions: super::resumption::ClientSessions,
}

/// Whether the client negotiated HTTP/2 on `tls` (its ALPN).
pub fn speaks_h2(tls: &ClientTls) -> bool {
    tls.get_ref().get_ref().1.alpn_protocol() == Some(b"h2")
}

/// How the client leg's handshake ended. Built once per connection; the facts are in the
/// recorder either way.
pub enum ClientLegOutcome {
    /// TLS is up.
    Established(Box<ClientTls>),
    /// The handshake failed; the recorder holds why.
    Failed,
}

/// A client whose ClientHello has been read and recorded; the configuration is not chosen yet.
pub struct Hello {
    /// The paused handshake.
    start: tokio_rustls::StartHandshake<BoxIo>,
}

/// Read and record the ClientHello; on failure the recorder holds why.
pub async fn read_hello(
    io: BoxIo,
    settings: &ClientLegSettings,
    rec: &LegRecorder,
) -> Option<Hello> {
    let io = match look_first(io, settings.timeout, rec).await {
        Some(io) => io,
        None => return None,
    };
    let (io, first_bytes) = Sniff::new(io);
    let io: BoxIo = Box::new(io);
    let acceptor = tokio_rustls::LazyConfigAcceptor::new(rustls::server::Acceptor::default(), io);
    let start = match tokio::time::timeout(settings.timeout, acceptor).await {
        Ok(Ok(start)) => start,
        Ok(Err(e)) => {
            rec.fail(&hello_error(&e, &first_bytes));
            return None;
        }
        Err(_) => {
            rec.fail(&timed_out(settings.timeout));
            return None;
        }
    };
    record_hello(rec, &start.client_hello());
    Some(Hello { start })
}

impl Hello {
    /// Whether the client offers HTTP/2 (ALPN `h2`).
    pub fn offers_h2(&self) -> bool {
        self.start
            .client_hello()
            .alpn()
            .is_some_and(|mut protos| protos.any(|p| p == b"h2"))
    }

    /// Complete the handshake with `policy` (the listener's, or a `mirror` one).
    pub async fn finish(
        self,
        settings: &ClientLegSettings,
        policy: Arc<ClientAuthPolicy>,
        pairing: &Pairing,
        rec: &LegRecorder,
    ) -> ClientLegOutcome {
        let kept = policy.clone();
        let config = match server_config(settings, policy, rec) {
            Ok(c) => c,
            Err(e) => {
                return failed(
                    rec,
                    Classified::new(
                        Stage::Config,
                        FailureKind::Config,
                        format!("cannot build the client-facing TLS configuration: {e}"),
                    ),
                )
            }
        };
        // rustls reads the ClientHello (and looks its session up) in `into_stream`: in scope.
        let start = self.start;
        let handshake =
            pairing.scope(async move { start.into_stream(Arc::new(config)).into_fallible().await });
        let tls = match tokio::time::timeout(settings.timeout, handshake).await {
            Ok(Ok(tls)) => tls,
            Ok(Err((e, _io))) => return failed(rec, classify_io(Stage::Handshake, &e)),
            Err(_) => return failed(rec, timed_out(settings.timeout)),
        };
        rec.handshake_done(tls.get_ref().1);
        if rec.with(|l| l.resumed) {
            record_resumed_chain(rec, &kept, tls.get_ref().1);
        }
        ClientLegOutcome::Established(Box::new(FlushAfterRead::new(tls, rec.clone())))
    }
}

fn server_config(
    settings: &ClientLegSettings,
    policy: Arc<ClientAuthPolicy>,
    rec: &LegRecorder,
) -> Result<rustls::ServerConfig, rustls::Error> {
    let verifier = Arc::new(RecordingClientVerifier::new(policy, rec.clone()));
    let mut config = rustls::ServerConfig::builder_with_provider(settings.provider.clone())
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(settings.server_cert.clone());
    config.alpn_protocols = settings.alpn.clone();
    settings.sessions.install(&mut config);
    if let Some(k) = &settings.keylog {
        config.key_log = k.clone();
    }
    Ok(config)
}

/// A resumed session carries no Certificate: the client's chain is the one rustls kept from
/// the handshake that created the session. Judged again against `--client-ca` now.
fn record_resumed_chain(
    rec: &LegRecorder,
    policy: &ClientAuthPolicy,
    conn: &rustls::ServerConnection,
) {
    let certs = conn.peer_certificates().unwrap_or_default();
    let chain = crate::cert::summarize_chain(certs.iter().map(|c| c.as_ref()));
    let verdict = match (&policy.trust, certs.split_first()) {
        (Some(trust), Some((end, rest))) => {
            Some(trust.verify_client_cert(end, rest, rustls::pki_types::UnixTime::now()))
        }
        _ => None,
    };
    rec.event(
        EventKind::SessionResumed,
        chain.first().map(|c| {
            format!(
                "the client's certificate from the earlier handshake: {}",
                c.subject
            )
        }),
    );
    rec.with(|leg| {
        if !chain.is_empty() {
            leg.issuer_lookup = policy.known.lookup_issuer(&chain);
            leg.chain_from = Some(ChainFrom::EarlierHandshake);
        }
        leg.chain = chain;
        leg.chain_verdict = verdict.map(|v| crate::facts::ChainVerdict {
            trusted: v.is_ok(),
            reason: v.as_ref().err().map(|e| e.to_string()),
            problem: v
                .as_ref()
                .err()
                .and_then(crate::facts::CertProblem::of_error),
            enforced: policy.enforce,
        });
    });
}

fn record_hello(rec: &LegRecorder, hello: &rustls::server::ClientHello<'_>) {
    let facts = ClientHelloFacts {
        sni: hello.server_name().map(str::to_string),
        alpn: hello
            .alpn()
            .map(|protos| {
                protos
                    .map(|p| String::from_utf8_lossy(p).into_owned())
                    .collect()
            })
            .unwrap_or_default(),
        versions: Vec::new(),
        signature_schemes: hello
            .signature_schemes()
            .iter()
            .map(|s| crate::wire::scheme_name(u16::from(*s)))
            .collect(),
        offered_pha: false,
    };
    let sni = facts.sni.clone();
    rec.with(|leg| {
        leg.sni = sni;
        leg.client_hello = Some(facts);
        leg.handshake_at = Some(rec.clock().wall_now());
    });
    rec.event(EventKind::ClientHello, None);
}

/// Read the client's first bytes before rustls does: nothing at all is a port check, plain
/// HTTP gets a readable plain-HTTP 400 (both recorded, `None`); anything else is put back in
/// front of the stream for the TLS acceptor.
async fn look_first(mut io: BoxIo, timeout: Duration, rec: &LegRecorder) -> Option<BoxIo> {
    use crate::capture::sniff::{describe_non_tls, first_look, FirstLook, PLAIN_HTTP_ANSWER};
    use tokio::io::AsyncWriteExt;
    let look = match tokio::time::timeout(timeout, first_look(&mut io)).await {
        Ok(Ok(look)) => look,
        Ok(Err(e)) => {
            rec.fail(&classify_io(Stage::ClientHello, &e));
            return None;
        }
        Err(_) => {
            rec.fail(&timed_out(timeout));
            return None;
        }
    };
    match look {
        FirstLook::Nothing => {
            rec.fail(&Classified::new(
                Stage::ClientHello,
                FailureKind::NothingSent,
                "the client closed the connection without sending a byte (a port check)",
            ));
            None
        }
        FirstLook::PlainHttp(bytes) => {
            let words = describe_non_tls(&bytes).unwrap_or_default();
            rec.fail(&Classified::new(
                Stage::ClientHello,
                FailureKind::PlainHttp,
                format!("the client did not send a TLS ClientHello: {words}"),
            ));
            let answer = async {
                io.write_all(PLAIN_HTTP_ANSWER).await?;
                io.shutdown().await
            };
            if tokio::time::timeout(timeout, answer).await.is_ok() {
                rec.event(
                    EventKind::PlainHttpAnswer,
                    Some("answered 400 in plain HTTP: use https://".into()),
                );
            }
            None
        }
        FirstLook::Other(bytes) => Some(Box::new(crate::io::Rewind::new(bytes, io))),
    }
}

/// An error while reading the ClientHello: garbage, plain HTTP, a truncated record.
fn hello_error(e: &std::io::Error, first: &FirstBytes) -> Classified {
    let mut c = classify_io(Stage::ClientHello, e);
    if let Some(words) = first.describe_non_tls() {
        c.failure.kind = if words.starts_with("plain HTTP") {
            FailureKind::PlainHttp
        } else {
            FailureKind::NotTls
        };
        c.words = format!("the client did not send a TLS ClientHello: {words}");
    } else if matches!(
        c.failure.kind,
        FailureKind::NotTls | FailureKind::InvalidData | FailureKind::Tls
    ) {
        c.failure.kind = FailureKind::NotTls;
        c.words = format!(
            "the client did not send a valid TLS ClientHello ({})",
            c.words
        );
    } else if c.failure.kind == FailureKind::Eof {
        c.words = "the client closed the connection before completing a ClientHello".into();
    }
    c
}

fn timed_out(after: Duration) -> Classified {
    Classified::new(
        Stage::Handshake,
        FailureKind::TimedOut,
        format!(
            "the client's TLS handshake did not complete within {} ms",
            after.as_millis()
        ),
    )
}

fn failed(rec: &LegRecorder, c: Classified) -> ClientLegOutcome {
    rec.fail(&c);
    ClientLegOutcome::Failed
}

/// Always the same server certificate (`--server-cert`).
#[derive(Debug)]
pub struct FixedServerCert(pub Arc<rustls::sign::CertifiedKey>);

impl ResolvesServerCert for FixedServerCert {
    fn resolve(
        &self,
        _hello: rustls::server::ClientHello<'_>,
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(self.0.clone())
    }
}

/// The `alert=NAME` fault: read the client's first record (its ClientHello), answer with a
/// plaintext fatal alert, and close — what a middlebox that refuses the client does.
pub async fn refuse_with_alert(mut io: BoxIo, code: u8, rec: &LegRecorder, timeout: Duration) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let read_hello = async {
        let mut header = [0u8; 5];
        io.read_exact(&mut header).await?;
        let len = usize::from(u16::from_be_bytes([header[3], header[4]])).min(16 * 1024);
        let mut body = vec![0u8; len];
        io.read_exact(&mut body).await
    };
    let _ = tokio::time::timeout(timeout, read_hello).await;
    let at_ms = rec.clock().ms();
    let _ = io
        .write_all(&[0x15, 0x03, 0x03, 0x00, 0x02, 0x02, code])
        .await;
    let _ = io.shutdown().await;
    let name = crate::wire::alert_name(code);
    rec.alert(crate::facts::Alert {
        direction: crate::facts::Direction::Sent,
        level: crate::facts::AlertLevel::Fatal,
        description: crate::facts::AlertDescription::from_code(code),
        at_ms,
        source: AlertSource::Fault,
        encrypted: false,
    });
    rec.fail(&Classified::new(
        Stage::Handshake,
        FailureKind::InjectedAlert,
        format!("mtlscope answered the ClientHello with a fatal {name} alert (fault alert={name})"),
    ));
}
