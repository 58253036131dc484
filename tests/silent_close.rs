//! Servers that refuse a client certificate without a word: they ask in the handshake, then
//! close the connection (TLS 1.2: instead of the alert, before their Finished; TLS 1.3: right
//! after the handshake). mtlscope must still say why, from what it sent and what was asked,
//! in the record and in the `Mtlscope-Diagnosis` header of its 502.

mod common;

use common::flows::{first_id, ids, upstream};
use common::{Curl, Proxy};
use mtlscope::facts::{FindingId, Flow, Phase};
use mtlscope::lab::upstream::{LabClientAuth, LabUpstream, LabUpstreamConfig};
use mtlscope::pki::load::load_certs;
use mtlscope::pki::{ClientCert, DevPki};
use std::sync::Arc;

async fn silent_server(pki: &DevPki, tls12_only: bool) -> LabUpstream {
    LabUpstream::start(LabUpstreamConfig {
        server: Arc::new(pki.server().load().expect("server identity")),
        client_auth: LabClientAuth::Required,
        client_cas: load_certs(pki.root_ca()).expect("root"),
        empty_ca_names: false,
        tls12_only,
        allowed_sha256: vec![],
        silent_reject: true,
    })
    .await
    .expect("lab server")
}

/// One request through mtlscope presenting `identity` upstream: (status, header, record).
async fn through(
    pki: &DevPki,
    up: &LabUpstream,
    identity: Option<ClientCert>,
) -> (u16, String, Flow) {
    let url = up.url();
    let server = pki.server().arg();
    let ca = pki.root_ca().display().to_string();
    let id = identity.map(|c| pki.client(c).arg());
    let mut args = vec![
        "reverse",
        "--upstream",
        &url,
        "--server-cert",
        &server,
        "--upstream-ca",
        &ca,
    ];
    if let Some(id) = &id {
        args.extend(["--identity", id.as_str()]);
    }
    let mut p = Proxy::start(&args).await;
    let r = Curl::new(format!("https://localhost:{}/", p.port()))
        .cacert(pki.root_ca())
        .run_async()
        .await;
    let header = r.header("mtlscope-diagnosis").unwrap_or_default();
    let record = p.flow().await;
    (r.status, header, record)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_close_is_diagnosed_from_what_was_asked_and_sent() {
    let (pki, _dir) = common::dev_pki();
    let cases = [
        (None, FindingId::NoClientCert),
        (Some(ClientCert::Expired), FindingId::CertExpired),
        (Some(ClientCert::OtherCa), FindingId::IssuerNotInCaList),
    ];
    for tls12_only in [true, false] {
        let up = silent_server(&pki, tls12_only).await;
        // The good certificate still works: the server is silent only when it refuses.
        let (status, _, _) = through(&pki, &up, Some(ClientCert::Good)).await;
        assert_eq!(status, 200, "tls12_only={tls12_only}: good certificate");
        for (identity, want) in cases {
            let (status, header, record) = through(&pki, &up, identity).await;
            let what = format!("tls12_only={tls12_only} identity={identity:?}");
            assert_eq!(status, 502, "{what}");
            assert_eq!(
                first_id(&record),
                Some(want),
                "{what}: {:?} {record:#?}",
                ids(&record)
            );
            assert!(
                header.split(", ").next() == Some(want.as_str()),
                "{what}: header {header:?}"
            );
            let up_leg = upstream(&record);
            assert_eq!(
                up_leg.cert_request.as_ref().map(|c| c.phase),
                Some(Phase::Handshake),
                "{what}"
            );
            assert!(
                up_leg.alerts.is_empty(),
                "{what}: the server sent no alert: {up_leg:#?}"
            );
            let evidence = record.findings[0].evidence.join("\n");
            assert!(evidence.contains("silent close"), "{what}: {evidence}");
        }
    }
}
