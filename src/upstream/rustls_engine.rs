//! The rustls upstream engine.

use super::routed::{self, LegAuth};
use super::tickets::{LegSessions, PairSessions, PairedLeg};
use super::{Connected, Failed, Target};
use crate::capture::flush::FlushAfterRead;
use crate::capture::server_auth::{RecordingServerVerifier, UpstreamTrust};
use crate::capture::tls_error::{classify_io, Classified};
use crate::capture::upstream_auth::{IdentityPolicy, RecordingClientResolver};
use crate::capture::LegRecorder;
use crate::facts::EventKind;
use crate::facts::{ClientHelloFacts, TlsVersion};
use crate::facts::{FailureKind, Stage};
use crate::io::Rewind;
use crate::wire::{Tap, TapHandle, TapRole};
use bytes::Bytes;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::ServerName;
use std::sync::Arc;
use std::time::Duration;

/// What every upstream connection of a listener shares.
#[derive(Clone, Debug)]
pub struct RustlsSettings {
    /// The crypto provider.
    pub provider: Arc<CryptoProvider>,
    /// Trust anchors and `--insecure-upstream`.
    pub trust: UpstreamTrust,
    /// ALPN protocols offered upstream.
    pub alpn: Vec<Vec<u8>>,
    /// `--keylog`.
    pub keylog: Option<Arc<dyn rustls::KeyLog>>,
    /// Bound on TCP connect and on the handshake, each.
    pub timeout: Duration,
    /// Offer only these protocol versions (`probe --tls12`/`--tls13`); `None`: rustls's safe
    /// defaults (TLS 1.3 and 1.2).
    pub versions: Option<Vec<&'static rustls::SupportedProtocolVersion>>,
    /// CA certificates from the configuration, for completing a presented chain's issuer.
    pub known: Arc<crate::cert::KnownCerts>,
}

impl RustlsSettings {
    /// The versions the ClientHello offers, newest first.
    fn offered_versions(&self) -> Vec<TlsVersion> {
        match &self.versions {
            None => vec![TlsVersion::Tls13, TlsVersion::Tls12],
            Some(v) => {
                let mut out: Vec<TlsVersion> = v
                    .iter()
                    .filter_map(|p| TlsVersion::from_wire(u16::from(p.version)))
                    .collect();
                out.sort_by(|a, b| b.cmp(a));
                out
            }
        }
    }
}

/// The rustls engine.
#[derive(Clone, Debug)]
pub struct RustlsEngine {
    /// Shared settings.
    pub settings: Arc<RustlsSettings>,
    /// The same engine offering only HTTP/1.1, built the first time it is asked for and shared
    /// by every clone (so its legs share a pool key).
    http1: Arc<std::sync::OnceLock<Option<RustlsEngine>>>,
}

impl RustlsEngine {
    /// An engine with these settings.
    pub fn new(settings: Arc<RustlsSettings>) -> RustlsEngine {
        RustlsEngine {
            settings,
            http1: Arc::default(),
        }
    }

    /// The same engine offering only HTTP/1.1 (ALPN `http/1.1`); `None` when it offers
    /// nothing else already.
    pub fn http1_only(&self) -> Option<RustlsEngine> {
        self.http1
            .get_or_init(|| {
                let h1 = b"http/1.1".to_vec();
                if self.settings.alpn.iter().all(|p| *p == h1) {
                    return None;
                }
                let mut settings = (*self.settings).clone();
                settings.alpn = vec![h1];
                Some(RustlsEngine::new(Arc::new(settings)))
            })
            .clone()
    }

    /// Connect and handshake, recording into `rec`.
    pub async fn connect(
        &self,
        target: &Target,
        identity: &IdentityPolicy,
        paired: Option<PairedLeg>,
        rec: &LegRecorder,
    ) -> Result<Connected, Failed> {
        let s = &self.settings;
        rec.with(|leg| {
            leg.peer = Some(target.authority());
            leg.engine = Some(crate::facts::TlsEngine::Rustls);
        });
        rec.event(EventKind::TcpConnectStart, Some(target.authority()));
        if let Some(proxy) = &target.via {
            // The path is a fact of the leg: which proxy carried it.
            rec.event(EventKind::ProxyConnect, Some(proxy.url()));
        }
        let connect_started = std::time::Instant::now();
        let tcp = match tokio::time::timeout(s.timeout, target.connect_tcp()).await {
            Ok(Ok(tcp)) => tcp,
            Ok(Err(e)) => return Err(fail(rec, classify_io(Stage::Connect, &e))),
            Err(_) => return Err(fail(rec, timed_out(Stage::Connect, s.timeout))),
        };
        let _ = tcp.set_nodelay(true);
        let connect_rtt = connect_started.elapsed();
        rec.event(
            EventKind::TcpConnect,
            tcp.peer_addr().ok().map(|a| a.to_string()),
        );
        let tap = TapHandle::new(rec.clock().instant(), TapRole::Client);
        rec.attach_tap(tap.clone(), true);
        let tcp = Tap::new(tcp, tap);

        // The leg of a full client handshake does a full handshake (its place among the legs
        // on their way was taken with the pairing); a resuming one waits for a session to offer.
        let (pair, in_flight, offers) = match paired {
            Some(PairedLeg {
                sessions,
                original: Some(original),
            }) => (Some(sessions), Some(original), false),
            Some(PairedLeg {
                sessions,
                original: None,
            }) => {
                let leg = sessions.begin_leg(SESSION_WAIT).await;
                (Some(sessions), Some(leg), true)
            }
            None => (None, None, false),
        };
        let tickets = Arc::new(LegSessions::new(pair.clone(), in_flight, offers));
        let ticket_seen = tickets.notify();
        let auth = LegAuth {
            verifier: Arc::new(
                RecordingServerVerifier::new(s.trust.clone(), rec.clone())
                    .with_known(s.known.clone()),
            ),
            resolver: Arc::new(
                RecordingClientResolver::new(identity.clone(), rec.clone())
                    .with_known(s.known.clone()),
            ),
        };
        let config = self
            .client_config(&auth, pair.as_deref(), tickets.clone())
            .map_err(|e| {
                fail(
                    rec,
                    Classified::new(
                        Stage::Config,
                        FailureKind::Config,
                        format!("cannot build the upstream TLS configuration: {e}"),
                    ),
                )
            })?;
        let server_name = ServerName::try_from(target.host.clone()).map_err(|e| {
            fail(
                rec,
                Classified::new(
                    Stage::Config,
                    FailureKind::ServerName,
                    format!("invalid server name {:?}: {e}", target.host),
                ),
            )
        })?;
        let sni = match &server_name {
            ServerName::DnsName(d) => Some(d.as_ref().to_string()),
            _ => None,
        };
        rec.with(|leg| {
            leg.sni = sni.clone();
            leg.client_hello = Some(ClientHelloFacts {
                sni,
                alpn: s
                    .alpn
                    .iter()
                    .map(|p| String::from_utf8_lossy(p).into_owned())
                    .collect(),
                versions: s.offered_versions(),
                signature_schemes: Vec::new(),
                // rustls never offers post-handshake auth.
                offered_pha: false,
            });
            leg.handshake_at = Some(rec.clock().wall_now());
        });
        rec.event(EventKind::ClientHello, None);

        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        // rustls builds the ClientHello in `connect`: in scope, like the rest of the handshake.
        let handshake = routed::scope(auth, async move {
            connector.connect(server_name, tcp).into_fallible().await
        });
        let tls = match tokio::time::timeout(s.timeout, handshake).await {
            Ok(Ok(tls)) => tls,
            Ok(Err((e, _tcp))) => return Err(fail(rec, classify_io(Stage::Handshake, &e))),
            Err(_) => return Err(fail(rec, timed_out(Stage::Handshake, s.timeout))),
        };
        let (_, conn) = tls.get_ref();
        let alpn = conn.alpn_protocol().map(|p| p.to_vec());
        let version = conn.protocol_version();
        rec.handshake_done(conn);
        if let Some(pair) = &pair {
            record_resumption(rec, pair, &tickets);
        }
        let mut tls = FlushAfterRead::new(tls, rec.clone());
        // A resumed leg waits for its ticket too: it took the one it resumed with, and the
        // pairing's next resumption needs the server's new one.
        let resumed_pair = pair.as_ref().filter(|_| rec.with(|l| l.resumed));
        let early = if version == Some(rustls::ProtocolVersion::TLSv1_3)
            && (rec.with(|l| l.cert_request.is_some()) || resumed_pair.is_some())
        {
            let wait = match resumed_pair {
                Some(p) if p.expects_tickets() => SESSION_WAIT,
                _ => verdict_wait(connect_rtt),
            };
            let early = await_verdict(&mut tls, &ticket_seen, wait, rec).await?;
            if let Some(p) = resumed_pair.filter(|_| !tickets.got_session()) {
                p.give_up();
            }
            early
        } else {
            Bytes::new()
        };
        Ok(Connected {
            io: Box::new(Rewind::new(early, tls)),
            alpn,
        })
    }

    /// The leg's configuration: its own recording verifier and resolver, or, with a pairing,
    /// the pairing's stand-ins (rustls resumes only with the objects that made the session),
    /// which route to the leg's own while its handshake runs.
    fn client_config(
        &self,
        auth: &LegAuth,
        pair: Option<&PairSessions>,
        tickets: Arc<LegSessions>,
    ) -> Result<rustls::ClientConfig, rustls::Error> {
        let s = &self.settings;
        let builder = rustls::ClientConfig::builder_with_provider(s.provider.clone());
        let builder = match &s.versions {
            Some(v) => builder.with_protocol_versions(v)?,
            None => builder.with_safe_default_protocol_versions()?,
        };
        let (verifier, resolver) = match pair {
            Some(p) => (p.verifier(), p.resolver()),
            None => (auth.verifier.clone(), auth.resolver.clone()),
        };
        let mut config = builder
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_client_cert_resolver(resolver);
        config.alpn_protocols = s.alpn.clone();
        let tls12 = if tickets.keeps() {
            rustls::client::Tls12Resumption::SessionIdOrTickets
        } else {
            rustls::client::Tls12Resumption::Disabled
        };
        config.resumption = rustls::client::Resumption::store(tickets).tls12_resumption(tls12);
        if let Some(k) = &s.keylog {
            config.key_log = k.clone();
        }
        Ok(config)
    }
}

/// How long a resuming leg waits for the paired leg's session (a TLS 1.3 ticket arrives after
/// the handshake).
const SESSION_WAIT: Duration = Duration::from_secs(1);

/// The resumption facts of a leg opened with a pairing's sessions: a resumed leg's chain is
/// the one presented in the full handshake that made the session; a full handshake's chain is
/// remembered for the legs that will resume it.
fn record_resumption(rec: &LegRecorder, pair: &PairSessions, sessions: &LegSessions) {
    let (resumed, chain) = rec.with(|l| (l.resumed, l.chain.clone()));
    if resumed {
        let earlier = pair.chain();
        rec.event(
            EventKind::SessionResumed,
            Some(
                "the session of the upstream leg paired with the client's original handshake"
                    .into(),
            ),
        );
        rec.with(|l| {
            if !earlier.is_empty() {
                l.chain_from = Some(crate::facts::ChainFrom::EarlierHandshake);
            }
            l.chain = earlier;
        });
    } else {
        if sessions.offered() {
            rec.event(
                EventKind::ResumptionRefused,
                Some(
                    "the server did a full handshake instead of resuming the paired session".into(),
                ),
            );
        }
        pair.set_chain(chain);
    }
}

/// Record a classified failure on the leg and turn it into the engine's error.
pub(crate) fn fail(rec: &LegRecorder, c: Classified) -> Failed {
    rec.fail(&c);
    Failed(c.words)
}

/// How long to wait for a TLS 1.3 server's verdict on our certificate: a few round trips.
pub(super) fn verdict_wait(rtt: Duration) -> Duration {
    (rtt * 4).clamp(Duration::from_millis(20), Duration::from_millis(500))
}

/// In TLS 1.3 the server judges the client certificate after the client's handshake is done,
/// and a refusal (certificate_required, bad_certificate, unknown_ca …) arrives just before it
/// closes. If the request were written first, the server's reset could destroy that alert
/// unread. So read first, until the verdict: an alert fails the leg with the server's own
/// reason; a session ticket means acceptance; plaintext is kept and replayed; silence for
/// `wait` (a server that sends no tickets) is taken as acceptance.
pub(super) async fn await_verdict<S>(
    tls: &mut S,
    ticket_seen: &tokio::sync::Notify,
    wait: Duration,
    rec: &LegRecorder,
) -> Result<Bytes, Failed>
where
    S: tokio::io::AsyncRead + Unpin,
{
    use tokio::io::AsyncReadExt;
    let mut buf = vec![0u8; 4096];
    let read = tokio::select! {
        r = tokio::time::timeout(wait, tls.read(&mut buf)) => r,
        _ = ticket_seen.notified() => {
            rec.event(EventKind::SessionTicket, Some("the server accepted the handshake".into()));
            return Ok(Bytes::new());
        }
    };
    match read {
        Err(_) => Ok(Bytes::new()),
        Ok(Ok(0)) => {
            let c = Classified::new(
                Stage::AfterHandshake,
                FailureKind::Eof,
                "the server closed the connection right after the handshake",
            );
            Err(fail(rec, c))
        }
        Ok(Ok(n)) => {
            buf.truncate(n);
            Ok(Bytes::from(buf))
        }
        // The stream recorded the error (alert) itself.
        Ok(Err(e)) => Err(Failed(
            rec.with(|l| l.error.clone())
                .unwrap_or_else(|| e.to_string()),
        )),
    }
}

pub(super) fn timed_out(stage: Stage, after: Duration) -> Classified {
    Classified::new(
        stage,
        FailureKind::TimedOut,
        format!("{stage} timed out after {} ms", after.as_millis()),
    )
}
