//! One client connection and its own upstream connection, from the TLS accept to the last
//! exchange: shared by `reverse` and by `forward` for intercepted hosts.

use super::client_leg::{read_hello, refuse_with_alert, ClientLegOutcome, ClientLegSettings};
use super::relay::{Pair, UpstreamSender};
use crate::capture::client_auth::ClientAuthMode;
use crate::capture::tls_error::Classified;
use crate::capture::upstream_auth::IdentityPolicy;
use crate::capture::{ConnClock, LegRecorder};
use crate::facts::{FaultEffect, Flow, Mode, RecordKind};
use crate::faults::{effect, DelayStep, Fault, Faults};
use crate::record::Sink;
use crate::upstream::{BoxIo, Engine, Target};
use crate::wire::{Tap, TapHandle, TapRole};
use std::sync::atomic::AtomicU32;
use std::sync::{Arc, Mutex};

/// What a session needs from its listener.
#[derive(Clone)]
pub struct SessionContext {
    /// The command.
    pub mode: Mode,
    /// The client leg's TLS settings.
    pub client: ClientLegSettings,
    /// The upstream engine.
    pub engine: Engine,
    /// Where flows go.
    pub sink: Sink,
    /// Redact credentials in records.
    pub redact: bool,
    /// `--fault`s: middlebox behaviour on purpose.
    pub faults: Arc<Faults>,
}

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
    let upstream = LegRecorder::new(clock);
    if let Some(code) = ctx.faults.alert() {
        refuse_with_alert(io, code, &client, ctx.client.timeout).await;
        let name = crate::wire::alert_name(code);
        faults.push(effect(
            &format!("alert={name}"),
            &format!("answered the client's ClientHello with a fatal {name} alert"),
        ));
        return emit_client_failure(ctx, id, clock, &peer, &target, client, None, faults).await;
    }
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

    // `mirror` learns the upstream's CertificateRequest before asking the client.
    let mirror = ctx.client.client_auth.mode == ClientAuthMode::Mirror;
    let mut sender = None;
    let policy = if mirror {
        sender = connect_upstream(ctx, &target, &identity, &upstream, &mut faults).await;
        let request = upstream.with(|leg| leg.cert_request.clone());
        Arc::new(ctx.client.client_auth.mirror_of(request.as_ref()))
    } else {
        ctx.client.client_auth.clone()
    };
    let policy = match ctx.faults.ca_names_override() {
        Some((names, eff)) if policy.mode != ClientAuthMode::None => {
            faults.push(eff);
            Arc::new(policy.with_ca_names(names))
        }
        _ => policy,
    };

    let tls = match hello.finish(&ctx.client, policy, &client).await {
        ClientLegOutcome::Established(tls) => tls,
        ClientLegOutcome::Failed => {
            let up = mirror.then(|| upstream.snapshot());
            return emit_client_failure(ctx, id, clock, &peer, &target, client, up, faults).await;
        }
    };
    if !mirror {
        sender = connect_upstream(ctx, &target, &identity, &upstream, &mut faults).await;
    }

    let replay = ctx
        .engine
        .replay_engine()
        .map(|e| super::late_replay::AutoReplay::new(e.clone(), identity.clone()));
    let pair = Arc::new(Pair {
        id,
        mode: ctx.mode,
        clock,
        client_addr: peer,
        target,
        client,
        upstream,
        sender,
        faults: Mutex::new(faults),
        exchanges: AtomicU32::new(0),
        sink: ctx.sink.clone(),
        redact: ctx.redact,
        fault_config: ctx.faults.clone(),
        replay,
    });
    let error = super::relay::serve_client(*tls, pair.clone()).await;
    pair.finish(error).await;
}

async fn connect_upstream(
    ctx: &SessionContext,
    target: &Target,
    identity: &IdentityPolicy,
    rec: &LegRecorder,
    faults: &mut Vec<FaultEffect>,
) -> Option<UpstreamSender> {
    if let Some(d) = ctx.faults.delay(DelayStep::UpstreamConnect) {
        faults.push(effect(
            "delay=upstream-connect",
            &format!("held the upstream connection back {} ms", d.as_millis()),
        ));
        tokio::time::sleep(d).await;
    }
    let conn = ctx.engine.connect(target, identity, rec).await.ok()?;
    if ctx.faults.has(&Fault::CutOnCertRequest) && rec.with(|l| l.cert_request.is_some()) {
        faults.push(effect(
            "cut-on-cert-request",
            "closed the upstream connection because the server asked for a client certificate",
        ));
        rec.fail(&Classified::new(
            "after_handshake",
            "cut_by_fault",
            "mtlscope cut the connection when the server asked for a client certificate (fault cut-on-cert-request)",
        ));
        return None;
    }
    match UpstreamSender::handshake(conn.io, conn.alpn.as_deref()).await {
        Ok(s) => Some(s),
        Err(e) => {
            rec.fail(&Classified::new(
                "http",
                "http",
                format!("HTTP handshake with the upstream failed: {e}"),
            ));
            None
        }
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
    upstream: Option<crate::facts::Leg>,
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
