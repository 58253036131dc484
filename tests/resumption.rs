//! Session resumption through `mtlscope reverse`, with real openssl s_client as the client and
//! a real nginx that asks for a certificate: clients resume as often as they do with nginx
//! directly, the records say `resumed` on both legs and carry the certificate of the original
//! handshake, and `--upstream-resume never` makes every upstream handshake a full one.

mod common;

use common::{Mtlscope, SClient, TlsVersion, VerifyClient};
use mtlscope::pki::ClientCert;
use serde_json::Value;

type Setup = common::NginxLab;

fn setup() -> Setup {
    Setup::start(VerifyClient::Optional, |c| c)
}

fn proxy(s: &Setup, extra: &[&str]) -> Mtlscope {
    let ca = s.pki.root_ca().display().to_string();
    let id = s.pki.client(ClientCert::Good).arg();
    let mut args = vec![
        "--client-auth",
        "optional",
        "--client-ca",
        &ca,
        "--identity",
        &id,
    ];
    args.extend(extra);
    s.reverse(&args)
}

/// `openssl s_client -reconnect` (one full handshake, then five reconnects with its session)
/// to `port`, presenting the dev client certificate; the number of reconnects that resumed.
async fn reconnect(s: &Setup, port: u16, version: TlsVersion) -> (usize, SClient) {
    let client = s.pki.client(ClientCert::Good);
    let c = SClient::new(format!("localhost:{port}"))
        .servername("localhost")
        .tls(version)
        .cafile(s.pki.root_ca())
        .identity(&client.cert, &client.key)
        .arg("-cert_chain")
        .arg(client.cert.display().to_string())
        .arg("-reconnect");
    let r = c.run_async().await;
    assert!(!r.timed_out, "s_client timed out: {}", r.stderr);
    let reused = r.stdout.matches("\nReused, ").count();
    let new = r.stdout.matches("\nNew, ").count();
    assert_eq!(
        reused + new,
        6,
        "one handshake and five reconnects:\n{}",
        r.stdout
    );
    (reused, c)
}

fn leg<'a>(record: &'a Value, name: &str) -> &'a Value {
    &record[name]
}

fn leaf_subject(leg: &Value) -> Option<&str> {
    leg["chain"][0]["subject"].as_str()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls12_reconnect_resumes_through_mtlscope_as_directly() {
    let s = setup();
    let (direct, _) = reconnect(&s, s.nginx.port(), TlsVersion::Tls12).await;
    assert_eq!(direct, 5, "nginx resumes every reconnect directly");

    let p = proxy(&s, &[]);
    let (through, _) = reconnect(&s, p.port(), TlsVersion::Tls12).await;
    assert_eq!(
        through, direct,
        "as many resumptions through mtlscope as directly"
    );

    let records = p.records(6);
    let (full, resumed): (Vec<&Value>, Vec<&Value>) = records
        .iter()
        .partition(|r| leg(r, "client_leg")["resumed"] == false);
    assert_eq!(full.len(), 1, "one full client handshake: {records:#?}");
    assert_eq!(resumed.len(), 5);
    let original = leaf_subject(leg(full[0], "client_leg")).expect("the client's certificate");
    assert!(leg(full[0], "client_leg")["chain_from"].is_null());
    assert!(leg(full[0], "client_leg")["cert_request"].is_object());
    // The upstream leg of the full client handshake is a full one, even when a reconnect that
    // resumed this session was quicker to reach nginx (it waits for this leg's session).
    let up = leg(full[0], "upstream_leg");
    assert_eq!(up["resumed"], false, "{up:#}");
    assert!(
        up["cert_request"].is_object(),
        "the full upstream handshake shows nginx's CertificateRequest: {up:#}"
    );
    for r in resumed {
        let client = leg(r, "client_leg");
        assert_eq!(client["tls_version"], "TLSv1.2");
        assert_eq!(leaf_subject(client), Some(original), "{client:#}");
        assert_eq!(client["chain_from"], "earlier_handshake");
        assert!(
            client["cert_request"].is_null(),
            "no CertificateRequest in a resumed session"
        );
        let up = leg(r, "upstream_leg");
        // The upstream leg resumes with the paired leg's session when its ticket was read in
        // time; s_client's request-less reconnects can close a leg before nginx's ticket was
        // read, and the next leg then does a full handshake, which must show nginx's request.
        // (The TLS 1.3 saved-session test below checks the mirrored resumption itself.)
        if up["resumed"] == true {
            assert!(up["cert_request"].is_null());
            assert_eq!(up["chain_from"], "earlier_handshake");
            assert!(leaf_subject(up).is_some());
        } else {
            assert!(
                up["cert_request"].is_object(),
                "a full upstream handshake shows nginx's CertificateRequest: {up:#}"
            );
        }
        let errors: Vec<&Value> = r["findings"]
            .as_array()
            .map(|f| f.iter().filter(|f| f["id"] == "no-client-cert").collect())
            .unwrap_or_default();
        assert!(
            errors.is_empty(),
            "no no-client-cert on a resumed session: {errors:#?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls13_saved_session_resumes_through_mtlscope() {
    let s = setup();
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let client = s.pki.client(ClientCert::Good);
    let run = |port: u16, arg: &str, file: &std::path::Path| {
        SClient::new(format!("localhost:{port}"))
            .servername("localhost")
            .tls(TlsVersion::Tls13)
            .cafile(s.pki.root_ca())
            .identity(&client.cert, &client.key)
            // s_client sends only the leaf of -cert; nginx needs the intermediate too.
            .arg("-cert_chain")
            .arg(client.cert.display().to_string())
            .arg(arg)
            .arg(file.display().to_string())
    };
    for (name, port, p) in [
        ("direct", s.nginx.port(), None),
        ("mtlscope", 0, Some(proxy(&s, &[]))),
    ] {
        let port = p.as_ref().map_or(port, |p| p.port());
        let file = dir.path().join(format!("{name}.sess"));
        let first = run(port, "-sess_out", &file).run_async().await;
        assert_eq!(first.status, Some(200), "{name}: {}", first.response);
        assert!(first.stdout.contains("\nNew, TLSv1.3"), "{name}");
        let second = run(port, "-sess_in", &file).run_async().await;
        assert_eq!(second.status, Some(200), "{name}: {}", second.stderr);
        assert!(
            second.stdout.contains("\nReused, TLSv1.3"),
            "{name}: the saved session resumes:\n{}",
            second.stdout
        );
        if let Some(p) = p {
            let records = p.records(2);
            let r = &records[1];
            assert_eq!(leg(r, "client_leg")["resumed"], true);
            assert_eq!(leg(r, "client_leg")["chain_from"], "earlier_handshake");
            assert_eq!(
                leaf_subject(leg(r, "client_leg")),
                leaf_subject(leg(&records[0], "client_leg"))
            );
            assert_eq!(leg(r, "upstream_leg")["resumed"], true, "{r:#}");
            // nginx saw the original certificate on the resumed upstream session.
            let body = r["response"]["status"].as_u64();
            assert_eq!(body, Some(200));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_resume_never_does_full_upstream_handshakes() {
    let s = setup();
    let p = proxy(&s, &["--upstream-resume", "never"]);
    let (through, _) = reconnect(&s, p.port(), TlsVersion::Tls12).await;
    assert_eq!(through, 5, "the client leg still resumes");
    let records = p.records(6);
    for r in &records {
        let up = leg(r, "upstream_leg");
        assert_eq!(up["resumed"], false, "{up:#}");
        assert!(
            up["cert_request"].is_object(),
            "every upstream handshake is full and shows nginx's CertificateRequest"
        );
        assert!(
            leaf_subject(up).is_some(),
            "and mtlscope presents its identity"
        );
    }
    let resumed = records
        .iter()
        .filter(|r| leg(r, "client_leg")["resumed"] == true)
        .count();
    assert_eq!(resumed, 5);
}
