//! Rules about the client's identity crossing mtlscope (catalogue section "Middleboxes and
//! proxies"): `identity-not-forwarded` (the upstream saw a different certificate or none; or,
//! with mtlscope playing a TLS offloader, a backend refused and the identity header it reads
//! was not among those forwarded) and `client-sent-identity-header`.

use super::finding::finding;
use super::view::{cert_text, chain_text, HopKind, View};
use crate::facts::{Finding, FindingId, ForwardedIdentity, Severity, Transport};

/// Which `--forward-client-cert` format sends a header, by lowercase name.
const FORMAT_OF_HEADER: &[(&str, &str)] = &[
    ("client-cert", "rfc9440"),
    ("client-cert-chain", "rfc9440"),
    ("x-forwarded-client-cert", "xfcc"),
    ("x-ssl-client-cert", "nginx"),
    ("x-ssl-client-s-dn", "nginx"),
    ("x-ssl-client-verify", "nginx"),
    ("x-amzn-mtls-clientcert-leaf", "aws-alb"),
    ("x-amzn-mtls-clientcert-subject", "aws-alb"),
    ("x-amzn-mtls-clientcert-serial-number", "aws-alb"),
    ("x-amzn-mtls-clientcert", "aws-alb-passthrough"),
    ("x-arr-clientcert", "azure-appgw"),
];

/// What the production offloader must be set to, per format.
const PRODUCT_SETTING: &[(&str, &str)] = &[
    ("rfc9440", "an RFC 9440 `Client-Cert` header (e.g. HAProxy `http-request set-header Client-Cert :%[ssl_c_der,base64]:`)"),
    ("xfcc", "Envoy `forward_client_cert_details: SANITIZE_SET` with `set_current_client_cert_details`"),
    ("nginx", "nginx `proxy_set_header X-SSL-Client-Cert $ssl_client_escaped_cert;`"),
    ("aws-alb", "AWS ALB mutual authentication in verify mode"),
    ("aws-alb-passthrough", "AWS ALB mutual authentication in passthrough mode"),
    ("azure-appgw", "an Application Gateway rewrite rule setting `X-ARR-ClientCert` (App Service: client certificates enabled)"),
];

pub(super) fn rules(v: &View<'_>) -> Vec<Finding> {
    [identity_not_forwarded(v), client_sent_identity_header(v)]
        .into_iter()
        .flatten()
        .collect()
}

fn identity_not_forwarded(v: &View<'_>) -> Option<Finding> {
    if let Some(f) = identity_header_view(v) {
        return Some(f);
    }
    let client = v.hop(HopKind::Client)?;
    let up = v.hop(HopKind::Upstream)?;
    let client_leaf = client.presented()?.first()?;
    // Only a server that asked can miss the identity.
    up.cert_request?;
    let up_leaf = up.presented().and_then(|c| c.first());
    if up_leaf.is_some_and(|l| l.sha256 == client_leaf.sha256) {
        return None;
    }
    // Nothing presented to a late request: the late findings explain that.
    if up_leaf.is_none() && up.late_since().is_some() {
        return None;
    }
    let http = v.http_on(up);
    let refused = up.failed()
        || http
            .as_ref()
            .is_some_and(|h| matches!(h.status, 400 | 401 | 403 | 495 | 496));
    let mut evidence = vec![
        format!(
            "the client presented {} on the client leg",
            cert_text(client_leaf)
        ),
        match up.presented() {
            Some(chain) => format!(
                "mtlscope presented a different chain upstream: {}",
                chain_text(chain)
            ),
            None => "mtlscope presented no certificate upstream".into(),
        },
    ];
    if let Some(cr) = up.cert_request {
        evidence.push(up.describe_cr(cr));
    }
    evidence.extend(
        v.flow
            .faults
            .iter()
            .map(|f| format!("fault `{}`: {}", f.name, f.effect)),
    );
    if let Some(h) = http.filter(|_| refused) {
        evidence.push(h.evidence());
    }
    let summary = if refused {
        "The client's certificate stopped at the TLS-terminating proxy: the server asked for one and saw a different identity or none, and refused."
    } else {
        "The client's certificate stopped at the TLS-terminating proxy: the server saw a different identity (or none) and accepted that."
    };
    Some(finding(
        FindingId::IdentityNotForwarded,
        if refused { Severity::Error } else { Severity::Info },
        summary,
        evidence,
        "Middlebox: a proxy that terminates TLS cannot forward the client's private key; configure the proxy's own client certificate deliberately (`--identity`), forward the identity in a header the server trusts (XFCC, RFC 9440 `Client-Cert`), or pass TLS through.",
    ))
}

fn client_sent_identity_header(v: &View<'_>) -> Option<Finding> {
    let fi = forwarded(v)?;
    if fi.stripped.is_empty() {
        return None;
    }
    let evidence = fi
        .stripped
        .iter()
        .map(|h| {
            format!(
                "the client's request carried `{}: {}`; mtlscope removed it before forwarding",
                h.name, h.excerpt
            )
        })
        .collect();
    let names: Vec<&str> = fi.stripped.iter().map(|h| h.name.as_str()).collect();
    Some(finding(
        FindingId::ClientSentIdentityHeader,
        Severity::Warning,
        format!(
            "The client sent identity header(s) the offloader sets itself ({}): a client asserting an identity; mtlscope removed them, as a real offloader must.",
            names.join(", ")
        ),
        evidence,
        "Middlebox: make sure the production offloader removes these headers from client requests too (nginx `proxy_set_header` replaces them, Envoy `SANITIZE_SET`, a HAProxy `del-header`), or the backend trusts forged identities.",
    ))
}

/// `identity-not-forwarded`, seen through the headers: the backend behind the offloader
/// answered 401/403, the client had presented a certificate, and the header the backend reads
/// (or any identity header at all) was not forwarded.
fn identity_header_view(v: &View<'_>) -> Option<Finding> {
    let plain = v
        .flow
        .upstream_leg
        .as_ref()
        .is_some_and(|l| l.transport == Some(Transport::Plain));
    let fi = forwarded(v);
    if !plain && fi.is_none() {
        return None;
    }
    let http = v.http().filter(|h| matches!(h.status, 401 | 403))?;
    let leaf = v.flow.client_leg.as_ref()?.chain.first()?;
    let sent: Vec<&str> = fi
        .map(|f| f.headers.iter().map(|h| h.name.as_str()).collect())
        .unwrap_or_default();
    let expected = fi.and_then(|f| f.expected_header.as_deref());
    let missing_expected = expected.filter(|e| !sent.iter().any(|s| s.eq_ignore_ascii_case(e)));
    if !sent.is_empty() && missing_expected.is_none() {
        return None;
    }
    let mut evidence = vec![format!(
        "the client presented {} on the client leg",
        cert_text(leaf)
    )];
    if plain {
        evidence.push("the upstream leg is plain HTTP: the backend can learn the client's identity only from a header".into());
    }
    let formats = fi.map(|f| f.formats.join(", ")).unwrap_or_default();
    evidence.push(if sent.is_empty() {
        "the request reached the backend with no identity header (no `--forward-client-cert` format produced one)".into()
    } else {
        format!(
            "mtlscope forwarded the identity as {} (format {formats})",
            sent.iter().map(|s| format!("`{s}`")).collect::<Vec<_>>().join(", ")
        )
    });
    if let Some(e) = missing_expected {
        evidence.push(format!(
            "the backend reads the identity from `{e}` (`--expect-client-cert-header`), which was not forwarded"
        ));
    }
    evidence.push(http.evidence());
    let want = missing_expected.map(|e| e.to_ascii_lowercase());
    let format = want.as_deref().map(|w| {
        FORMAT_OF_HEADER
            .iter()
            .find(|(n, _)| *n == w)
            .map(|(_, f)| f.to_string())
            .unwrap_or_else(|| format!("header:{w}={{der_b64}}"))
    });
    let fix = match &format {
        Some(f) => {
            let product = PRODUCT_SETTING
                .iter()
                .find(|(n, _)| n == f)
                .map(|(_, p)| format!(" (in production: {p})"))
                .unwrap_or_default();
            format!(
                "Offloader: send the identity in the header the backend reads: `--forward-client-cert {f}`{product}; or make the backend read the header the offloader sends."
            )
        }
        None => "Offloader: pass the client's identity on in a header the backend trusts: `--forward-client-cert FORMAT` (rfc9440, xfcc, nginx, aws-alb, azure-appgw, header:NAME=TEMPLATE); in production the offloader's own setting (nginx `proxy_set_header X-SSL-Client-Cert $ssl_client_escaped_cert`, Envoy `forward_client_cert_details: SANITIZE_SET`, AWS ALB mutual authentication, an Application Gateway rewrite rule).".into(),
    };
    let summary = match (missing_expected, sent.is_empty()) {
        (Some(e), false) => format!("The backend behind the TLS offloader refused ({}): it reads the identity from `{e}`, but the offloader sent it in another format.", http.status),
        (Some(e), true) => format!("The backend behind the TLS offloader refused ({}): it reads the identity from `{e}`, and the offloader sent no identity header.", http.status),
        (None, _) => format!("The backend behind the TLS offloader refused ({}) and got no identity header: the client's certificate stopped at the offloader.", http.status),
    };
    Some(finding(
        FindingId::IdentityNotForwarded,
        Severity::Error,
        summary,
        evidence,
        fix,
    ))
}

fn forwarded<'a>(v: &View<'a>) -> Option<&'a ForwardedIdentity> {
    v.flow.request.as_ref()?.forwarded_identity.as_ref()
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{good_chain, FlowBuilder};
    use crate::facts::{ForwardedIdentity, HeaderExcerpt, Leg, Transport};

    fn plain_flow(fi: Option<ForwardedIdentity>, status: u16) -> crate::facts::Flow {
        FlowBuilder::reverse()
            .client(|l| l.chain = good_chain())
            .get("/api")
            .response(status, "unauthorized", &[])
            .with(|f| {
                f.upstream_leg = Some(std::sync::Arc::new(Leg {
                    transport: Some(Transport::Plain),
                    ..Leg::default()
                }));
                f.request.as_mut().unwrap().forwarded_identity = fi;
            })
            .build()
    }

    fn ids(flow: &crate::facts::Flow) -> Vec<String> {
        crate::diagnose::diagnose(flow)
            .into_iter()
            .map(|f| f.id.to_string())
            .collect()
    }

    #[test]
    fn a_plain_backend_401_without_identity_header_is_identity_not_forwarded() {
        let flow = plain_flow(None, 401);
        let found = crate::diagnose::diagnose(&flow);
        let f = found
            .iter()
            .find(|f| f.id == "identity-not-forwarded")
            .expect("found");
        assert!(f.fix.contains("--forward-client-cert"), "{}", f.fix);
        assert_eq!(
            ids(&flow),
            ["identity-not-forwarded"],
            "nothing reads the plain leg as TLS"
        );
        let no_cert = FlowBuilder::reverse()
            .get("/api")
            .response(401, "unauthorized", &[])
            .with(|f| f.upstream_leg = plain_flow(None, 401).upstream_leg)
            .build();
        // No certificate, no offloader setting: nothing to say about identity forwarding, and
        // the 401 stays visible as a gap.
        assert_eq!(ids(&no_cert), ["unexplained"]);
        assert!(ids(&plain_flow(None, 200))
            .iter()
            .all(|i| i != "identity-not-forwarded"));
    }

    #[test]
    fn the_expected_header_names_the_format_to_use() {
        let fi = ForwardedIdentity {
            formats: vec!["nginx".into()],
            client_cert: true,
            headers: vec![HeaderExcerpt::new("x-ssl-client-cert", b"-----BEGIN")],
            expected_header: Some("x-forwarded-client-cert".into()),
            ..ForwardedIdentity::default()
        };
        let found = crate::diagnose::diagnose(&plain_flow(Some(fi.clone()), 403));
        let f = found
            .iter()
            .find(|f| f.id == "identity-not-forwarded")
            .expect("found");
        assert!(f.fix.contains("--forward-client-cert xfcc"), "{}", f.fix);
        // The header it reads was forwarded: the offloader is not the explanation.
        let ok = ForwardedIdentity {
            expected_header: Some("x-ssl-client-cert".into()),
            ..fi
        };
        assert!(ids(&plain_flow(Some(ok), 403))
            .iter()
            .all(|i| i != "identity-not-forwarded"));
    }

    #[test]
    fn stripped_headers_are_a_warning() {
        let fi = ForwardedIdentity {
            formats: vec!["rfc9440".into()],
            stripped: vec![HeaderExcerpt::new("client-cert", b":Zm9yZ2Vk:")],
            ..ForwardedIdentity::default()
        };
        let found = crate::diagnose::diagnose(&plain_flow(Some(fi), 200));
        let f = found
            .iter()
            .find(|f| f.id == "client-sent-identity-header")
            .expect("found");
        assert_eq!(f.severity, crate::facts::Severity::Warning);
        assert!(f.evidence[0].contains(":Zm9yZ2Vk:"));
    }
}
