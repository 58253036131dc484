//! mtlscope as a TLS offloader against real nginx, both ways round: nginx as the plain-HTTP
//! backend that trusts `Client-Cert` (`$http_client_cert`, 401 without it), and nginx as the
//! real TLS offloader whose `$ssl_client_escaped_cert`/`$ssl_client_verify`/`$ssl_client_s_dn`/
//! `$ssl_client_i_dn` headers mtlscope's `nginx` format must reproduce byte for byte.

mod common;
#[path = "common/offload.rs"]
mod fixture;

use common::flows::{finding, has, ids, upstream};
use common::process::{start_server, RunningServer};
use common::Curl;
use fixture::{OffloadClient, OffloadLab};
use mtlscope::facts::{FindingId, Severity, Transport};
use mtlscope::lab::echo::LabEcho;
use serde_json::Value;
use std::process::Command;

/// nginx with one `server` block rendered by `server(port)`, from its own temp dir.
fn nginx(server: impl Fn(u16) -> String) -> RunningServer {
    let dir = common::tmpdir();
    let conf = dir.path().join("nginx.conf");
    let log = dir.path().join("error.log");
    let d = dir.path().display().to_string();
    let (process, port) = start_server("nginx", dir.path(), std::slice::from_ref(&log), |port| {
        let mut c = format!(
            "daemon off;\nmaster_process off;\nworker_processes 1;\npid \"{d}/nginx.pid\";\n\
             error_log \"{d}/error.log\" info;\nevents {{ worker_connections 64; }}\nhttp {{\n\
             access_log \"{d}/access.log\";\ndefault_type text/plain;\n"
        );
        for t in ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"] {
            c.push_str(&format!("{t}_temp_path \"{d}/{t}_temp\";\n"));
        }
        c.push_str(&server(port));
        c.push_str("}\n");
        std::fs::write(&conf, c).map_err(|e| e.to_string())?;
        let mut cmd = Command::new("nginx");
        cmd.arg("-p")
            .arg(&d)
            .arg("-e")
            .arg(&log)
            .arg("-c")
            .arg(&conf);
        Ok(cmd)
    })
    .expect("start nginx");
    RunningServer::new(process, port, dir)
}

/// A plain-HTTP backend that trusts the RFC 9440 `Client-Cert` header of its offloader.
fn client_cert_backend() -> RunningServer {
    nginx(|port| {
        format!(
            "server {{\n listen 127.0.0.1:{port};\n location / {{\n  \
             if ($http_client_cert = \"\") {{ return 401 \"no client certificate header\\n\"; }}\n  \
             return 200 \"client_cert=$http_client_cert\\n\";\n }}\n}}\n"
        )
    })
}

type Setup = OffloadLab;

fn setup() -> Setup {
    OffloadLab::new()
}

async fn get(s: &Setup, port: u16, with_cert: bool, headers: &[&str]) -> common::CurlResult {
    let mut curl = Curl::new(format!("https://localhost:{port}/app")).cacert(s.pki.root_ca());
    if with_cert {
        curl = curl.identity(&s.client.chain, &s.client.key);
    }
    for h in headers {
        curl = curl.header(*h);
    }
    curl.run_async().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_backend_gets_the_rfc9440_client_cert_and_accepts() {
    let s = setup();
    let backend = client_cert_backend();
    let mut p = s
        .reverse(
            &format!("http://127.0.0.1:{}", backend.port()),
            &["--forward-client-cert", "rfc9440"],
        )
        .await;
    let r = get(&s, p.port(), true, &[]).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        r.body,
        format!("client_cert=:{}:\n", OffloadClient::b64(&s.client.leaf_der))
    );
    let rec = p.flow().await;
    assert_eq!(upstream(&rec).transport, Some(Transport::Plain));
    assert!(
        rec.findings.iter().all(|f| f.severity != Severity::Error),
        "{rec:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_client_cert_never_reaches_nginx_and_no_certificate_means_no_header() {
    let s = setup();
    let backend = client_cert_backend();
    let mut p = s
        .reverse(
            &format!("http://127.0.0.1:{}", backend.port()),
            &["--forward-client-cert", "rfc9440"],
        )
        .await;
    let r = get(&s, p.port(), false, &["Client-Cert: :Zm9yZ2Vk:"]).await;
    assert_eq!(r.status, 401, "the forged header got through: {r:?}");
    assert_eq!(r.body, "no client certificate header\n");
    let rec = p.flow().await;
    let fi = rec
        .request
        .as_ref()
        .and_then(|r| r.forwarded_identity.as_ref())
        .expect("forwarded identity");
    assert_eq!(fi.stripped[0].name, "client-cert");
    assert_eq!(fi.stripped[0].excerpt, ":Zm9yZ2Vk:");
    assert!(fi.headers.is_empty());
    assert!(
        has(&rec, FindingId::ClientSentIdentityHeader),
        "{:?}",
        ids(&rec)
    );
    assert!(
        r.header("mtlscope-diagnosis")
            .unwrap_or_default()
            .contains("client-sent-identity-header"),
        "{r:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_401_without_an_identity_header_is_identity_not_forwarded() {
    let s = setup();
    let backend = client_cert_backend();
    let mut p = s
        .reverse(&format!("http://127.0.0.1:{}", backend.port()), &[])
        .await;
    let r = get(&s, p.port(), true, &[]).await;
    assert_eq!(r.status, 401);
    let rec = p.flow().await;
    let f = finding(&rec, FindingId::IdentityNotForwarded);
    assert_eq!(f.severity, Severity::Error);
    let evidence = f.evidence.join("\n");
    assert!(evidence.contains("plain HTTP"), "{f:#?}");
    assert!(evidence.contains("no client certificate header"), "{f:#?}");
    assert!(
        r.header("mtlscope-diagnosis")
            .unwrap_or_default()
            .contains("identity-not-forwarded"),
        "{r:?}"
    );
}

/// The headers the echo backend received, by name.
fn echoed(body: &str, name: &str) -> Vec<String> {
    let v: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"));
    v["headers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h[0] == name)
        .map(|h| h[1].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_nginx_format_matches_real_nginx_as_offloader_byte_for_byte() {
    let s = setup();
    let echo = LabEcho::start(None).await.unwrap();
    let server = s.pki.server();
    let root = s.pki.root_ca().display().to_string();
    let echo_addr = echo.addr;
    let real = nginx(|port| {
        format!(
            "server {{\n listen 127.0.0.1:{port} ssl;\n server_name localhost;\n \
             ssl_certificate \"{}\";\n ssl_certificate_key \"{}\";\n \
             ssl_verify_client on;\n ssl_client_certificate \"{root}\";\n ssl_verify_depth 3;\n \
             location / {{\n  proxy_pass http://{echo_addr};\n  \
             proxy_set_header X-SSL-Client-Cert $ssl_client_escaped_cert;\n  \
             proxy_set_header X-SSL-Client-Verify $ssl_client_verify;\n  \
             proxy_set_header X-SSL-Client-S-DN $ssl_client_s_dn;\n  \
             proxy_set_header X-SSL-Client-I-DN $ssl_client_i_dn;\n }}\n}}\n",
            server.cert.display(),
            server.key.display()
        )
    });
    let by_nginx = get(&s, real.port(), true, &[]).await;
    assert_eq!(by_nginx.status, 200, "{by_nginx:?}");
    let p = s
        .reverse(&echo.url(), &["--forward-client-cert", "nginx"])
        .await;
    let by_mtlscope = get(&s, p.port(), true, &[]).await;
    assert_eq!(by_mtlscope.status, 200);
    for name in [
        "x-ssl-client-cert",
        "x-ssl-client-verify",
        "x-ssl-client-s-dn",
        "x-ssl-client-i-dn",
    ] {
        let want = echoed(&by_nginx.body, name);
        assert_eq!(want.len(), 1, "nginx sent {name} once: {}", by_nginx.body);
        assert_eq!(echoed(&by_mtlscope.body, name), want, "{name}");
    }
    assert_eq!(
        echoed(&by_nginx.body, "x-ssl-client-s-dn")[0],
        s.client.subject
    );
}
