//! One client connection and its own upstream connection, from the TLS accept to the last
//! exchange: shared by `reverse` and by `forward` for intercepted hosts.

use super::client_leg::{read_hello, refuse_with_alert, ClientLegOutcome};
use super::context::SessionContext;
use super::pair::Pair;
use super::pool::{PoolKey, PoolSlot};
use super::upstream_legs::{LegOpener, UpstreamLegs};
use crate::capture::client_auth::ClientAuthMode;
use crate::capture::upstream_auth::IdentityPolicy;
use crate::capture::{ConnClock, LegRecorder};
use crate::facts::{FaultEffect, Flow, RecordKind};
use crate::faults::{effect, DelayStep, Fault};
use crate::upstream::{BoxIo, Target};
use crate::wire::{Tap, TapHandle, TapRole};
use std::sync::atomic::AtomicU32;
use std::sync::{Arc, Mutex};

/// One accepted client connection.
pub struct Accepted {
    /// The client's byte stream (TCP, or a CONNECT tunnel).
    pub io: BoxIo,
    /// The client's address.
    pub peer: String,
    /// Process-unique connection number.
    pub id: u64,
    /// The connection's clock (started at TCP accept).
    pub clock: ConnClock,
    /// The client leg's recorder (may already hold events such as the CONNECT).
    pub client: LegRecorder,
    /// Faults or proxy facts already recorded for this connection.
    pub faults: Vec<FaultEffect>,
}

/// Run a session to its end: client handshake, upstream connection, HTTP relay, records.
pub async fn run(acc: Accepted, target: Target, identity: IdentityPolicy, ctx: &SessionContext) {
    let Accepted {
        io,
        peer,
        id,
        clock,
        client,
        mut faults,
    } = acc;
    let tap = TapHandle::new(clock.instant(), TapRole::Server);
    client.attach_tap(tap.clone(), false);
    let io: BoxIo = Box::new(Tap::new(io, tap));
    if let Some(code) = ctx.faults.alert() {
        refuse_with_alert(io, code, &client, ctx.client.timeout).await;
        let name = crate::wire::alert_name(code);
        faults.push(effect(
            &format!("alert={name}"),
            &format!("answered the client's ClientHello with a fatal {name} alert"),
        ));
        return emit_client_failure(ctx, id, clock, &peer, &target, client, None, faults).await;
    }
    let io = match &ctx.served_names {
        Some(names) => match super::sni_gate::check(io, names, &client, ctx.client.timeout).await {
            Some(io) => io,
            None => {
                return emit_client_failure(ctx, id, clock, &peer, &target, client, None, faults)
                    .await
            }
        },
        None => io,
    };
    let Some(hello) = read_hello(io, &ctx.client, &client).await else {
        return emit_client_failure(ctx, id, clock, &peer, &target, client, None, faults).await;
    };
    if let Some(d) = ctx.faults.delay(DelayStep::ClientHello) {
        faults.push(effect(
            "delay=client-hello",
            &format!("held the ClientHello back {} ms", d.as_millis()),
        ));
        tokio::time::sleep(d).await;
    }
    let identity = if ctx.faults.has(&Fault::StripClientCert) {
        faults.push(effect("strip-client-cert", "presented no certificate upstream, whatever the client or the configuration had (a TLS offloader that does not forward the identity)"));
        IdentityPolicy::None
    } else {
        identity
    };

    let faults = Arc::new(Mutex::new(faults));
    let mut opener = LegOpener {
        ctx: ctx.clone(),
        target: target.clone(),
        identity,
        clock,
        faults: faults.clone(),
        sessions: Mutex::new(None),
        pool: None,
    };
    let upstream = LegRecorder::new(clock);
    let pairing = ctx.client.sessions.pairing();
    // `mirror` learns the upstream's CertificateRequest before asking the client (so its
    // upstream leg cannot know whether the client will resume: a full handshake); otherwise
    // the client leg comes first, and the upstream leg resumes exactly when it did.
    let (outcome, legs) = if ctx.client.client_auth.mode == ClientAuthMode::Mirror {
        // Before the client's handshake ends: its offer decides the upstream's.
        opener.ctx.engine = ctx.engine_for(hello.offers_h2());
        opener.sessions = Mutex::new(pairing.upstream(false));
        let legs = UpstreamLegs::first(opener, upstream.clone()).await;
        let request = upstream.with(|leg| leg.cert_request.clone());
        let policy = Arc::new(ctx.client.client_auth.mirror_of(request.as_ref()));
        let policy = with_ca_list_fault(ctx, policy, &faults);
        (
            hello.finish(&ctx.client, policy, &pairing, &client).await,
            Some(legs),
        )
    } else {
        let policy = with_ca_list_fault(ctx, ctx.client.client_auth.clone(), &faults);
        let outcome = hello.finish(&ctx.client, policy, &pairing, &client).await;
        let legs = match &outcome {
            ClientLegOutcome::Established(tls) => {
                opener.ctx.engine = ctx.engine_for(super::client_leg::speaks_h2(tls));
                match &ctx.pool {
                    // A pooled leg resumes nothing: most are not new.
                    Some(pool) => {
                        let presented = tls.get_ref().get_ref().1.peer_certificates();
                        opener.pool = Some(PoolSlot {
                            pool: pool.clone(),
                            key: PoolKey::new(
                                &opener.ctx.engine,
                                &target,
                                &opener.identity,
                                presented,
                            ),
                            client_conn: id,
                        });
                    }
                    None => {
                        opener.sessions = Mutex::new(pairing.upstream(client.with(|l| l.resumed)));
                    }
                }
                Some(UpstreamLegs::first(opener, upstream.clone()).await)
            }
            ClientLegOutcome::Failed => None,
        };
        (outcome, legs)
    };
    let (tls, legs) = match (outcome, legs) {
        (ClientLegOutcome::Established(tls), Some(legs)) => (tls, legs),
        _ => {
            let up = upstream.snapshot();
            // Only a leg that was asked for shows in the record of a failed client leg.
            let up = (ctx.client.client_auth.mode == ClientAuthMode::Mirror).then_some(up);
            let faults = faults.lock().map(|f| f.clone()).unwrap_or_default();
            return emit_client_failure(ctx, id, clock, &peer, &target, client, up, faults).await;
        }
    };
    let client_h1 = !super::client_leg::speaks_h2(&tls);
    let presented = tls.get_ref().get_ref().1.peer_certificates();
    let offload = crate::offload::for_client(ctx.offload.as_deref(), presented, &client);

    let replay = ctx.engine.replay_engine().cloned();
    let pair = Arc::new(Pair {
        id,
        mode: ctx.mode,
        clock,
        client_addr: peer,
        authority: target.authority(),
        target,
        client,
        legs,
        faults,
        exchanges: AtomicU32::new(0),
        in_flight: std::sync::atomic::AtomicUsize::new(0),
        client_h1,
        sink: ctx.sink.clone(),
        redact: ctx.redact,
        fault_config: ctx.faults.clone(),
        life: ctx.life.clone(),
        offload,
        replay,
    });
    let error =
        super::relay::serve_client(*tls, pair.clone(), ctx.client.timeout, ctx.idle_timeout).await;
    pair.finish(error).await;
    pair.legs.give_back().await;
}

/// The client leg's CertificateRequest policy with the `empty-ca-list` / `ca-list=FILE`
/// faults applied (recorded when they act).
fn with_ca_list_fault(
    ctx: &SessionContext,
    policy: Arc<crate::capture::client_auth::ClientAuthPolicy>,
    faults: &Mutex<Vec<FaultEffect>>,
) -> Arc<crate::capture::client_auth::ClientAuthPolicy> {
    match ctx.faults.ca_names_override() {
        Some((names, eff)) if policy.mode != ClientAuthMode::None => {
            if let Ok(mut f) = faults.lock() {
                f.push(eff);
            }
            Arc::new(policy.with_ca_names(names))
        }
        _ => policy,
    }
}

/// The connection record of a client leg that never completed its handshake.
#[allow(clippy::too_many_arguments)]
async fn emit_client_failure(
    ctx: &SessionContext,
    id: u64,
    clock: ConnClock,
    peer: &str,
    target: &Target,
    client: LegRecorder,
    upstream: Option<Arc<crate::facts::Leg>>,
    faults: Vec<FaultEffect>,
) {
    let mut flow = Flow::new(ctx.mode, id, clock.started_at());
    flow.kind = RecordKind::Connection;
    flow.client_addr = Some(peer.to_string());
    flow.upstream = Some(target.authority());
    let leg = client.snapshot();
    flow.error = leg.error.clone();
    flow.client_leg = Some(leg);
    flow.upstream_leg = upstream;
    flow.faults = faults;
    ctx.sink.emit(flow).await;
}
