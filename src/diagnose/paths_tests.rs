//! Path findings from hand-built facts: one test per id, and the quiet cases (a plain tunnel
//! that changes nothing, a server that answers the same both ways).

use super::compare;
use crate::diagnose::test_support::{ca, cr, leaf};
use crate::facts::path::{Asked, PathCheck, PathFacts};
use crate::facts::{CertSummary, FailureKind, LegFailure, Phase, Stage, TlsVersion};

fn server(cn: &str, issuer: &str, sha: char) -> Vec<CertSummary> {
    let mut l = leaf(cn, issuer);
    l.sha256 = sha.to_string().repeat(64);
    vec![l, ca(issuer, issuer)]
}

fn check(path: &str, identity: Option<&str>, asked: Asked, status: Option<u16>) -> PathCheck {
    PathCheck {
        offered: Some(TlsVersion::Tls12),
        path: path.into(),
        identity: identity.map(String::from),
        negotiated: Some(TlsVersion::Tls12),
        alpn: Some("http/1.1".into()),
        asked,
        asked_inferred: false,
        cert_request: (asked == Asked::Handshake).then(|| cr(Phase::Handshake, &["Root"])),
        presented: identity.is_some() && asked.asked(),
        alerts: vec![],
        status,
        failure: None,
        error: None,
    }
}

fn path(label: &str, chain: Vec<CertSummary>, checks: Vec<PathCheck>) -> PathFacts {
    PathFacts {
        label: label.into(),
        server_chain: chain,
        checks,
    }
}

/// nginx with `ssl_verify_client on`, reached directly: 400 without, 200 with the identity.
fn direct() -> PathFacts {
    path(
        "direct",
        server("server.test", "Root", 'a'),
        vec![
            check("/", None, Asked::Handshake, Some(400)),
            check("/", Some("good"), Asked::Handshake, Some(200)),
        ],
    )
}

fn ids(d: &PathFacts, p: &PathFacts) -> Vec<&'static str> {
    compare(d, p).iter().map(|f| f.id.as_str()).collect()
}

#[test]
fn a_plain_tunnel_changes_nothing() {
    let mut tunnel = direct();
    tunnel.label = "http://127.0.0.1:3128".into();
    assert!(ids(&direct(), &tunnel).is_empty());
}

#[test]
fn an_intercepting_device_is_named_by_its_ca_and_removes_the_request() {
    let mitm = path(
        "http://127.0.0.1:8080",
        server("server.test", "Corp Inspection CA", 'b'),
        vec![
            check("/", None, Asked::No, Some(400)),
            check("/", Some("good"), Asked::No, Some(400)),
        ],
    );
    let found = compare(&direct(), &mitm);
    let got: Vec<_> = found.iter().map(|f| f.id.as_str()).collect();
    assert_eq!(
        got,
        [
            "intercepted-upstream",
            "path-removes-cert-request",
            "path-strips-client-cert"
        ]
    );
    let i = &found[0];
    assert!(
        i.summary.contains("\"CN=Corp Inspection CA\""),
        "{}",
        i.summary
    );
    assert!(i.summary.contains("would have to trust"));
    assert!(i.evidence.iter().any(|e| e.starts_with("direct: ")));
    assert!(i
        .evidence
        .iter()
        .any(|e| e.starts_with("http://127.0.0.1:8080: ")));
    assert!(i.fix.contains("bypass list"));
    assert!(found[1].fix.contains("bypass list"));
    assert!(found[2].fix.contains("pass-through"));
    // A name from the product list adds a line; it is never the reason.
    let mut named = mitm.clone();
    named.server_chain = server("server.test", "mitmproxy", 'b');
    let f = compare(&direct(), &named);
    assert!(f[0].evidence.iter().any(|e| e.contains("\"mitmproxy\"")));
}

#[test]
fn a_new_leaf_from_the_same_ca_is_not_interception() {
    let rotated = path(
        "http://p:1",
        server("server.test", "Root", 'c'),
        direct().checks,
    );
    assert!(ids(&direct(), &rotated).is_empty());
}

#[test]
fn a_changed_ca_list_lists_what_was_added_and_removed() {
    let mut p = direct();
    p.label = "http://p:1".into();
    for c in &mut p.checks {
        c.cert_request = Some(cr(Phase::Handshake, &["Device CA"]));
    }
    let found = compare(&direct(), &p);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].id.as_str(), "path-changes-ca-list");
    assert!(found[0].evidence.contains(
        &"added by the path: \"CN=Device CA\"; removed by the path: \"CN=Root\"".to_string()
    ));
    // An empty list through the path.
    for c in &mut p.checks {
        c.cert_request = Some(cr(Phase::Handshake, &[]));
    }
    let f = compare(&direct(), &p);
    assert!(f[0]
        .evidence
        .iter()
        .any(|e| e.contains("CA names an empty list")));
    assert!(f[0]
        .evidence
        .iter()
        .any(|e| e.contains("added by the path: none")));
}

#[test]
fn a_cut_renegotiation_is_a_blocked_late_request() {
    let d = path(
        "direct",
        server("server.test", "Root", 'a'),
        vec![check(
            "/secure",
            Some("good"),
            Asked::Renegotiation,
            Some(403),
        )],
    );
    let mut cut = check("/secure", Some("good"), Asked::Unknown, None);
    cut.failure = Some(LegFailure {
        stage: Stage::AfterHandshake,
        kind: FailureKind::Eof,
    });
    cut.error = Some("the peer closed the connection".into());
    let p = path("http://fw:1", d.server_chain.clone(), vec![cut.clone()]);
    let found = compare(&d, &p);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].id.as_str(), "path-blocks-late-request");
    assert!(found[0].evidence[0].contains("TLS 1.2 renegotiation"));
    assert!(found[0].evidence[1].contains("the peer closed the connection"));
    // Through a path that shows the same late request, nothing.
    let same = path("http://tunnel:1", d.server_chain.clone(), d.checks.clone());
    assert!(ids(&d, &same).is_empty());
    // A path whose server answered without asking is not "blocking" a late request.
    let answered = path(
        "http://p:1",
        d.server_chain.clone(),
        vec![check("/secure", Some("good"), Asked::No, Some(403))],
    );
    assert!(!ids(&d, &answered).contains(&"path-blocks-late-request"));
}

#[test]
fn an_identity_refused_only_through_the_path_is_stripped() {
    let mut p = direct();
    p.label = "http://offloader:1".into();
    p.checks[1].status = Some(403);
    p.checks[1].presented = true;
    assert_eq!(ids(&direct(), &p), ["path-strips-client-cert"]);
    // Refused both ways: not the path's doing.
    let mut d = direct();
    d.checks[1].status = Some(403);
    assert!(ids(&d, &p).is_empty());
}
