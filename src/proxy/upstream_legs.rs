//! The upstream legs of one client connection: one at a time, the first opened with the
//! connection, each next one when a request needs it after the upstream ended the previous one
//! (`Connection: close`, GOAWAY, an idle close, a reset).
//!
//! A request that the upstream never saw goes to the new leg, as would one that the upstream
//! dropped unanswered when it is safe to send again (idempotent, no body): the client sees what
//! it would see talking to the server directly. Each leg has its own recorder, so its handshake
//! facts (a server may ask for a certificate differently on a later connection) and its index
//! go into the exchanges it carries.

use super::context::SessionContext;
use super::upstream_sender::SendFailed;
pub use super::upstream_sender::{EndedTx, UpstreamBody, UpstreamSender};
use crate::capture::tls_error::Classified;
use crate::capture::upstream_auth::IdentityPolicy;
use crate::capture::{ConnClock, LegRecorder};
use crate::facts::EventKind;
use crate::facts::{FailureKind, Stage};
use crate::facts::{FaultEffect, UpstreamRetry};
use crate::faults::{effect, DelayStep, Fault};
use crate::upstream::Target;
use hyper::body::Incoming;
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

/// One upstream leg as a request sees it.
#[derive(Clone)]
pub struct LegInUse {
    /// 0 for the connection's first upstream leg, then 1, 2, ….
    pub index: u32,
    /// The leg's facts.
    pub rec: LegRecorder,
    /// Its HTTP connection; `None` when the leg could not be established.
    pub sender: Option<Arc<UpstreamSender>>,
    /// `--upstream-pool`: which pooled connection it is.
    pub pooled: Option<crate::facts::PooledConnection>,
}

/// How to open an upstream leg for this client connection.
pub struct LegOpener {
    /// The listener's settings (engine, faults).
    pub ctx: SessionContext,
    /// Where the legs go.
    pub target: Target,
    /// Which identity to present.
    pub identity: IdentityPolicy,
    /// The client connection's clock: every leg's times count from the client's accept.
    pub clock: ConnClock,
    /// Where fault effects on the connection are collected.
    pub faults: Arc<Mutex<Vec<FaultEffect>>>,
    /// The upstream sessions paired with the client's handshake (see `proxy::resumption`),
    /// taken by the first leg: a later leg is opened without a client handshake to mirror, so
    /// it does a full handshake and the server's CertificateRequest is seen on each of them.
    pub sessions: Mutex<Option<crate::upstream::PairedLeg>>,
    /// `--upstream-pool`: where legs are taken from and given back to.
    pub pool: Option<super::pool::PoolSlot>,
}

impl LegOpener {
    /// Connect, handshake and start HTTP, recording into `rec`; `None` when the leg failed
    /// (the recorder says why).
    pub async fn open(&self, rec: &LegRecorder, ended: EndedTx) -> Option<UpstreamSender> {
        let sessions = self.sessions.lock().ok().and_then(|mut s| s.take());
        self.open_with(None, sessions, rec, ended).await
    }

    /// [`LegOpener::open`] with another engine than the listener's, and these sessions.
    pub async fn open_with(
        &self,
        engine: Option<&crate::upstream::Engine>,
        sessions: Option<crate::upstream::PairedLeg>,
        rec: &LegRecorder,
        ended: EndedTx,
    ) -> Option<UpstreamSender> {
        if let Some(d) = self.ctx.faults.delay(DelayStep::UpstreamConnect) {
            self.fault(effect(
                "delay=upstream-connect",
                &format!("held the upstream connection back {} ms", d.as_millis()),
            ));
            tokio::time::sleep(d).await;
        }
        let conn = engine
            .unwrap_or(&self.ctx.engine)
            .connect_resuming(&self.target, &self.identity, sessions, rec)
            .await
            .ok()?;
        if self.ctx.faults.has(&Fault::CutOnCertRequest) && rec.with(|l| l.cert_request.is_some()) {
            self.fault(effect(
                "cut-on-cert-request",
                "closed the upstream connection because the server asked for a client certificate",
            ));
            rec.fail(&Classified::new(
            Stage::AfterHandshake,
            FailureKind::CutByFault,
                "mtlscope cut the connection when the server asked for a client certificate (fault cut-on-cert-request)",
            ));
            return None;
        }
        match UpstreamSender::handshake(conn.io, conn.alpn.as_deref(), ended).await {
            Ok(s) => Some(s),
            Err(e) => {
                rec.fail(&Classified::new(
                    Stage::Http,
                    FailureKind::Http,
                    format!("HTTP handshake with the upstream failed: {e}"),
                ));
                None
            }
        }
    }

    fn fault(&self, f: FaultEffect) {
        if let Ok(mut faults) = self.faults.lock() {
            faults.push(f);
        }
    }
}

/// The legs of one client connection.
pub struct UpstreamLegs {
    /// Opens the next leg.
    opener: LegOpener,
    /// The leg requests go to now.
    current: tokio::sync::Mutex<LegInUse>,
    /// Told the index of a leg whose connection ended.
    ended_tx: mpsc::UnboundedSender<u32>,
    /// Where [`UpstreamLegs::ended`] waits for that.
    ended_rx: tokio::sync::Mutex<mpsc::UnboundedReceiver<u32>>,
    /// Set after a switch (`--upstream-engine auto` replaying over OpenSSL, a server that
    /// wants HTTP/1.1): the engine of every later leg, since the server would refuse a leg of
    /// the first engine again.
    engine: Mutex<Option<crate::upstream::Engine>>,
    /// One more than the index of the leg in use at the last switch, which must not carry
    /// another request even while it is open; 0 before any switch.
    retired: std::sync::atomic::AtomicU64,
}

/// What sending a request upstream came to.
pub struct Sent {
    /// The leg that carried (or last tried) it.
    pub leg: LegInUse,
    /// The response, or why the last attempt got none.
    pub result: Result<http::Response<Incoming>, NoResponse>,
    /// Set when the request went out again on a new leg.
    pub retry: Option<UpstreamRetry>,
}

/// Why a request sent upstream got no response.
#[derive(Debug)]
pub enum NoResponse {
    /// The HTTP exchange failed (the error says how).
    Http(hyper::Error),
    /// No response head within `--timeout`.
    HeadTimeout(std::time::Duration),
    /// The leg never came up (its recorder says why).
    NoLeg,
}

/// No upstream leg could carry the request; the leg's recorder says why.
pub struct NoLeg {
    /// The leg that failed to come up.
    pub leg: LegInUse,
    /// Set when the request was on its way to a new leg after the previous one ended.
    pub retry: Option<UpstreamRetry>,
}

/// What it takes to send a request again after the upstream dropped it unanswered: only a
/// request without a body and with an idempotent method.
pub struct Resend {
    /// Method, URI, version and headers of the request.
    parts: http::request::Parts,
}

impl Resend {
    /// The resend copy of `req`, when it is safe to send twice.
    pub fn of(req: &http::Request<UpstreamBody>) -> Option<Resend> {
        use http_body::Body;
        if !req.method().is_idempotent() || !req.body().is_end_stream() {
            return None;
        }
        let mut copy = http::Request::new(());
        *copy.method_mut() = req.method().clone();
        *copy.uri_mut() = req.uri().clone();
        *copy.version_mut() = req.version();
        *copy.headers_mut() = req.headers().clone();
        Some(Resend {
            parts: copy.into_parts().0,
        })
    }

    fn request(self) -> http::Request<UpstreamBody> {
        http::Request::from_parts(self.parts, UpstreamBody::Buffered(None))
    }
}

impl UpstreamLegs {
    /// Open the connection's first leg (index 0) into `rec`.
    pub async fn first(opener: LegOpener, rec: LegRecorder) -> UpstreamLegs {
        let (ended_tx, ended_rx) = mpsc::unbounded_channel();
        let ended = EndedTx {
            tx: ended_tx.clone(),
            index: 0,
        };
        let first = match opener.pool.as_ref().and_then(|p| p.take()) {
            Some(pooled) => LegInUse {
                index: 0,
                rec: pooled.rec,
                sender: Some(pooled.sender),
                pooled: Some(pooled.facts),
            },
            None => {
                let sender = opener.open(&rec, ended).await.map(Arc::new);
                let pooled = opener.pool.as_ref().filter(|_| sender.is_some());
                LegInUse {
                    index: 0,
                    rec,
                    sender,
                    pooled: pooled.map(|p| p.opened()),
                }
            }
        };
        UpstreamLegs {
            opener,
            current: tokio::sync::Mutex::new(first),
            ended_tx,
            ended_rx: tokio::sync::Mutex::new(ended_rx),
            engine: Mutex::new(None),
            retired: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// The engine the next leg is opened with: the listener's, unless the pair switched.
    fn engine(&self) -> crate::upstream::Engine {
        let switched = self.engine.lock().ok().and_then(|e| e.clone());
        switched.unwrap_or_else(|| self.opener.ctx.engine.clone())
    }

    /// Open every later leg with `engine`; leg `in_use`, of the engine before, carries no
    /// further request (the next one opens a new leg).
    fn use_engine(&self, engine: crate::upstream::Engine, in_use: u32) {
        if let Ok(mut e) = self.engine.lock() {
            *e = Some(engine);
        }
        self.retired
            .store(u64::from(in_use) + 1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Open the next leg with `engine` and make it, and every later leg, use that engine.
    pub async fn switch_engine(&self, engine: crate::upstream::Engine) -> LegInUse {
        let mut cur = self.current.lock().await;
        self.use_engine(engine, cur.index);
        *cur = self.next_leg(cur.index).await;
        cur.clone()
    }

    /// Send `req` on `leg` (no retry), bounded by `--timeout` for the response head.
    pub async fn send_on<F>(
        &self,
        leg: &LegInUse,
        req: http::Request<UpstreamBody>,
        build: F,
    ) -> Result<http::Response<Incoming>, NoResponse>
    where
        F: Fn(http::Request<UpstreamBody>, bool) -> http::Request<UpstreamBody>,
    {
        let Some(sender) = leg.sender.clone() else {
            return Err(NoResponse::NoLeg);
        };
        let req = build(req, sender.is_h2());
        leg.rec.note_request();
        let timeout = self.opener.ctx.client.timeout;
        match tokio::time::timeout(timeout, sender.try_send(req)).await {
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(SendFailed::NotSent(_, e) | SendFailed::Failed(e))) => Err(NoResponse::Http(e)),
            Err(_) => Err(NoResponse::HeadTimeout(timeout)),
        }
    }

    /// The index of the next leg whose connection ended (on the upstream's side, or because
    /// mtlscope replaced it).
    pub async fn ended(&self) -> u32 {
        let mut rx = self.ended_rx.lock().await;
        // The sender lives in `self`, so the channel never closes while this waits.
        rx.recv().await.unwrap_or(u32::MAX)
    }

    /// Whether leg `index` is the one requests go to now.
    pub async fn is_current(&self, index: u32) -> bool {
        self.current.lock().await.index == index
    }

    /// The leg in use now (for records made without sending).
    pub async fn current(&self) -> LegInUse {
        self.current.lock().await.clone()
    }

    /// The leg a new request goes to: the current one, or a new one when the upstream has
    /// ended the current one. A leg that never came up is not retried: every request on the
    /// connection is answered from its facts, as the first was.
    async fn acquire(&self) -> LegInUse {
        let mut cur = self.current.lock().await;
        let retired =
            self.retired.load(std::sync::atomic::Ordering::Relaxed) == u64::from(cur.index) + 1;
        if cur.sender.as_ref().is_some_and(|s| s.is_closed()) || retired {
            // Boxed: opening a connection is the rare path, and its future is large.
            *cur = Box::pin(self.next_leg(cur.index)).await;
        }
        cur.clone()
    }

    /// Replace leg `index` by a new one, unless another request already did.
    async fn replace(&self, index: u32) -> LegInUse {
        let mut cur = self.current.lock().await;
        if cur.index == index {
            *cur = Box::pin(self.next_leg(index)).await;
        }
        cur.clone()
    }

    async fn next_leg(&self, after: u32) -> LegInUse {
        let engine = self.engine.lock().ok().and_then(|e| e.clone());
        // Pooled legs are the listener's engine's; after a switch nothing is pooled.
        let pool = self.opener.pool.as_ref().filter(|_| engine.is_none());
        if let Some(pooled) = pool.and_then(|p| p.take()) {
            return LegInUse {
                index: after + 1,
                rec: pooled.rec,
                sender: Some(pooled.sender),
                pooled: Some(pooled.facts),
            };
        }
        let rec = LegRecorder::new(self.opener.clock);
        rec.event(
            EventKind::NewUpstreamLeg,
            Some(format!("after leg {after}")),
        );
        let sender = self
            .opener
            .open_with(
                engine.as_ref(),
                None,
                &rec,
                EndedTx {
                    tx: self.ended_tx.clone(),
                    index: after + 1,
                },
            )
            .await
            .map(Arc::new);
        LegInUse {
            index: after + 1,
            rec,
            pooled: pool.filter(|_| sender.is_some()).map(|p| p.opened()),
            sender,
        }
    }

    /// `--upstream-pool`: give the current leg back to the pool (when the client connection
    /// has ended and the leg is open and idle).
    pub async fn give_back(&self) {
        let Some(slot) = &self.opener.pool else {
            return;
        };
        let cur = self.current.lock().await.clone();
        if let (Some(facts), Some(sender)) = (cur.pooled, cur.sender) {
            let leg = super::pool::PooledLeg {
                facts,
                rec: cur.rec,
                sender,
            };
            slot.pool.give_back(slot.key.clone(), leg).await;
        }
    }

    /// Send `req` upstream, on a new leg when the current one has ended; send it once more on
    /// a new leg when the upstream dropped it unanswered and that is safe (see [`Resend`]).
    /// `build` makes the request for the leg's protocol.
    pub async fn send<F>(&self, req: http::Request<UpstreamBody>, build: F) -> Result<Sent, NoLeg>
    where
        F: Fn(http::Request<UpstreamBody>, bool) -> http::Request<UpstreamBody>,
    {
        let leg = self.acquire().await;
        let Some(sender) = leg.sender.clone() else {
            return Err(NoLeg { leg, retry: None });
        };
        let req = build(req, sender.is_h2());
        let resend = Resend::of(&req);
        leg.rec.note_request();
        let timeout = self.opener.ctx.client.timeout;
        let failed = match tokio::time::timeout(timeout, sender.try_send(req)).await {
            Ok(Ok(resp)) => {
                return Ok(Sent {
                    leg,
                    result: Ok(resp),
                    retry: None,
                })
            }
            Ok(Err(f)) => f,
            Err(_) => {
                return Ok(Sent {
                    leg,
                    result: Err(NoResponse::HeadTimeout(timeout)),
                    retry: None,
                })
            }
        };
        // A server that wants HTTP/1.1 for this request, and an engine that can offer only that.
        let http1_engine = match &failed {
            SendFailed::Failed(e) if asks_for_http11(e) => self.engine().http1_only(),
            _ => None,
        };
        let (again, retry) = match failed {
            SendFailed::NotSent(req, why) => {
                let reason = format!("the upstream had ended the connection: {why}");
                (
                    req,
                    UpstreamRetry {
                        from_leg: leg.index,
                        reason,
                        was_sent: false,
                    },
                )
            }
            SendFailed::Failed(e) => match (resend, http1_engine) {
                // As curl does: the same request again, over a new HTTP/1.1 connection (and
                // every later one: the server wants HTTP/1.1 for this target).
                (Some(copy), Some(h1)) => {
                    self.use_engine(h1, leg.index);
                    let reason = format!(
                        "the server reset the request with HTTP_1_1_REQUIRED (it answers it only over HTTP/1.1): {e}"
                    );
                    (
                        copy.request(),
                        UpstreamRetry {
                            from_leg: leg.index,
                            reason,
                            was_sent: true,
                        },
                    )
                }
                (Some(copy), None) if is_dropped_unanswered(&e) => {
                    let reason =
                        format!("the upstream closed the connection without answering: {e}");
                    (
                        copy.request(),
                        UpstreamRetry {
                            from_leg: leg.index,
                            reason,
                            was_sent: true,
                        },
                    )
                }
                (copy, h1) => {
                    if let (None, Some(h1)) = (copy, h1) {
                        // Not sent twice (it has a body), but the next request goes over a new
                        // HTTP/1.1 connection, as curl's would.
                        self.use_engine(h1, leg.index);
                    }
                    return Ok(Sent {
                        leg,
                        result: Err(NoResponse::Http(e)),
                        retry: None,
                    });
                }
            },
        };
        let next = Box::pin(self.replace(leg.index)).await;
        if next.sender.is_none() {
            return Err(NoLeg {
                leg: next,
                retry: Some(retry),
            });
        }
        let result = Box::pin(self.send_on(&next, again, &build)).await;
        Ok(Sent {
            leg: next,
            result,
            retry: Some(retry),
        })
    }
}

/// The HTTP/2 server reset the request with `HTTP_1_1_REQUIRED`: it answers it only over
/// HTTP/1.1 (read from the h2 reason code behind hyper's error).
pub fn asks_for_http11(e: &hyper::Error) -> bool {
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(h2) = s.downcast_ref::<h2::Error>() {
            return h2.reason() == Some(h2::Reason::HTTP_1_1_REQUIRED);
        }
        source = s.source();
    }
    false
}

/// The upstream closed or reset the connection before answering: what a server does to a
/// request that raced its keep-alive close.
fn is_dropped_unanswered(e: &hyper::Error) -> bool {
    if e.is_incomplete_message() || e.is_canceled() || e.is_closed() {
        return true;
    }
    crate::capture::tls_error::find_io_error(e).is_some_and(|io| {
        matches!(
            io.kind(),
            std::io::ErrorKind::ConnectionReset
                | std::io::ErrorKind::BrokenPipe
                | std::io::ErrorKind::UnexpectedEof
                | std::io::ErrorKind::ConnectionAborted
        )
    })
}
