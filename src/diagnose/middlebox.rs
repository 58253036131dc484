//! Rules of the catalogue section "Middleboxes and proxies": `intercepted-upstream`,
//! `server-cert-untrusted`, `proxy-auth-required`, `upstream-unreachable`, `injected-fault`,
//! `proxy-limit-reached`; the rules about the client's identity crossing the proxy
//! (`identity-not-forwarded`, `client-sent-identity-header`) are in `offload`.

use super::finding::{finding, inferred};
use super::signals::inspection_product;
use super::view::{cert_text, chain_text, HopKind, View};
use crate::facts::{EventKind, FailureKind, Stage};
use crate::facts::{Finding, FindingId, OwnLimit, Severity};

pub(super) fn rules(v: &View<'_>) -> Vec<Finding> {
    [
        intercepted_upstream(v),
        server_cert_untrusted(v),
        proxy_auth_required(v),
        upstream_unreachable(v),
        injected_fault(v),
        proxy_limit_reached(v),
    ]
    .into_iter()
    .flatten()
    .collect()
}

fn intercepted_upstream(v: &View<'_>) -> Option<Finding> {
    let hop = v.server_hop()?;
    let (cert, product) = hop
        .server_chain
        .iter()
        .find_map(|c| inspection_product(c).map(|p| (c, p)))?;
    let failed = hop.failed() || v.http_on(hop).is_some_and(|h| h.status >= 400);
    Some(finding(
        FindingId::InterceptedUpstream,
        if failed { Severity::Error } else { Severity::Warning },
        "Likely a TLS-inspecting middlebox sits between mtlscope and the server: the server's certificate comes from an inspection CA, so mutual TLS through it cannot work.",
        vec![
            format!("the server's chain contains {} (matches the inspection product \"{product}\")", cert_text(cert)),
            inferred("to confirm, compare with the certificate the server presents when reached directly: `mtlscope probe URL --via PROXY`"),
        ],
        "Middlebox: exempt this destination from TLS inspection.",
    ))
}

fn server_cert_untrusted(v: &View<'_>) -> Option<Finding> {
    let up = v.hop(HopKind::Upstream)?;
    let failed_kind = up
        .failure
        .is_some_and(|f| f.kind == FailureKind::PeerCertificateInvalid);
    let sv = up.server_verification;
    if !(sv.is_some_and(|s| !s.ok) || failed_kind) {
        return None;
    }
    let reason = sv
        .and_then(|s| s.reason.as_deref())
        .or(up.error)
        .unwrap_or("not verified");
    let enforced = failed_kind || sv.is_some_and(|s| s.enforced);
    let mut evidence = vec![format!(
        "mtlscope could not verify the upstream's certificate: {reason}"
    )];
    if !up.server_chain.is_empty() {
        evidence.push(format!(
            "the server presented {}",
            chain_text(up.server_chain)
        ));
    }
    if let Some(u) = &v.flow.upstream {
        evidence.push(format!("upstream: {u}"));
    }
    Some(finding(
        FindingId::ServerCertUntrusted,
        if enforced { Severity::Error } else { Severity::Warning },
        if enforced {
            format!("mtlscope could not verify the upstream server's certificate ({reason}) and did not connect.")
        } else {
            format!("mtlscope could not verify the upstream server's certificate ({reason}); it continued because verification is not enforced.")
        },
        evidence,
        "mtlscope: trust the server's CA with `--upstream-ca FILE` (or fix the name or dates on the server's certificate); `--insecure-upstream` continues while recording the result.",
    ))
}

fn proxy_auth_required(v: &View<'_>) -> Option<Finding> {
    let r = v.flow.response.as_ref().filter(|r| r.status == 407)?;
    let challenge = r
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("proxy-authenticate"))
        .map(|h| h.value.as_str());
    let evidence = vec![match challenge {
        Some(c) => format!("407 Proxy Authentication Required with Proxy-Authenticate: {c}"),
        None => "407 Proxy Authentication Required, without a Proxy-Authenticate header".into(),
    }];
    Some(finding(
        FindingId::ProxyAuthRequired,
        Severity::Error,
        "The forward proxy wants credentials before it opens any TLS to the origin; this is not a certificate problem.",
        evidence,
        "Client: send `Proxy-Authorization` with credentials the proxy accepts (curl `--proxy-user`), or use a proxy that does not require them.",
    ))
}

fn upstream_unreachable(v: &View<'_>) -> Option<Finding> {
    let up = v.hop(HopKind::Upstream)?;
    let f = up.failure?;
    let before_tls = up.version.is_none()
        && !up.events.iter().any(|e| e.kind == EventKind::ServerHello)
        && up.alerts.iter().all(|a| !up.sent_by_server(a));
    let tcp = f.stage == Stage::Connect
        || (before_tls
            && matches!(
                f.kind,
                FailureKind::ConnectionRefused
                    | FailureKind::TimedOut
                    | FailureKind::Reset
                    | FailureKind::Eof
                    | FailureKind::NotTls
            ));
    if !tcp {
        return None;
    }
    let target = v.flow.upstream.as_deref().unwrap_or("the upstream");
    let what = match f.kind {
        FailureKind::ConnectionRefused => "refused the TCP connection",
        FailureKind::TimedOut => "did not answer in time",
        FailureKind::Reset => "reset the connection before TLS",
        FailureKind::Eof => "closed the connection before TLS",
        FailureKind::NotTls => "answered, but not with TLS",
        _ => "could not be reached",
    };
    let mut evidence = vec![format!("{target} {what} (stage {}, {})", f.stage, f.kind)];
    if let Some(e) = up.error {
        evidence.push(format!("error: {e}"));
    }
    Some(finding(
        FindingId::UpstreamUnreachable,
        Severity::Error,
        format!("The upstream {target} {what}; no TLS was exchanged with it."),
        evidence,
        if f.kind == FailureKind::NotTls {
            "mtlscope: check the upstream URL's scheme and port (the port answers plain text, e.g. HTTP)."
        } else {
            "mtlscope / network: check the upstream address and port (`--upstream`), name resolution, and firewalls between mtlscope and the server."
        },
    ))
}

fn injected_fault(v: &View<'_>) -> Option<Finding> {
    let faults = &v.flow.faults;
    if faults.is_empty() {
        return None;
    }
    let failed = v.hops.iter().any(|h| h.failed())
        || v.flow.status().is_some_and(|s| s >= 400)
        || v.flow.error.is_some();
    let names = faults
        .iter()
        .map(|f| format!("`{}`", f.name))
        .collect::<Vec<_>>()
        .join(", ");
    Some(finding(
        FindingId::InjectedFault,
        if failed { Severity::Error } else { Severity::Info },
        format!("mtlscope's configured fault {names} acted on this connection: what follows is a reproduction, not the real peers' behaviour."),
        faults.iter().map(|f| format!("fault `{}`: {}", f.name, f.effect)).collect(),
        "Nothing to fix on the client or server for this part: run without the `--fault` to see the real behaviour.",
    ))
}

fn proxy_limit_reached(v: &View<'_>) -> Option<Finding> {
    let OwnLimit::MaxConnections { max } = v.flow.own_limit.as_ref()?;
    Some(finding(
        FindingId::ProxyLimitReached,
        Severity::Error,
        format!("mtlscope closed this connection at accept: {max} client connections were already open (`--max-connections {max}`). Neither the client nor the server caused this."),
        vec![format!("--max-connections {max} reached when the connection arrived; no byte was read from it")],
        "mtlscope: raise `--max-connections`, or find what holds connections open (a slow upstream, idle keep-alive clients; `--idle-timeout`, `--timeout`).",
    ))
}

#[cfg(test)]
#[path = "middlebox_tests.rs"]
mod tests;
