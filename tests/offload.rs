//! `mtlscope reverse --upstream http://… --forward-client-cert FORMAT` in front of a plain-HTTP
//! backend that echoes the headers it received (the lab echo server), with real curl as the
//! client: each format arrives byte for byte as its product sends it, compared with values the
//! test builds from the certificate with `openssl` and the products' documented encodings;
//! identity headers a client forges never reach the backend and are recorded; a client
//! without a certificate gets no identity header.

mod common;
#[path = "common/offload.rs"]
mod fixture;

use common::flows::{client, finding, has, upstream};
use common::{Curl, Proxy};
use fixture::{percent, unreserved, OffloadClient, OffloadLab};
use mtlscope::facts::{FindingId, Flow, Severity, TlsVersion, Transport};
use mtlscope::lab::echo::LabEcho;
use serde_json::Value;

/// The offload lab and a plain-HTTP echo backend.
struct Setup {
    lab: OffloadLab,
    echo: LabEcho,
}

impl std::ops::Deref for Setup {
    type Target = OffloadLab;
    fn deref(&self) -> &OffloadLab {
        &self.lab
    }
}

async fn setup(require: Option<&'static str>) -> Setup {
    let echo = LabEcho::start(require.map(http::HeaderName::from_static))
        .await
        .unwrap();
    Setup {
        lab: OffloadLab::new(),
        echo,
    }
}

async fn proxy(s: &Setup, extra: &[&str]) -> Proxy {
    s.reverse(&s.echo.url(), extra).await
}

/// One request through the proxy: (status, the backend's echo, the flow).
async fn exchange(
    s: &Setup,
    p: &mut Proxy,
    with_cert: bool,
    forged: &[&str],
) -> (u16, Value, Flow) {
    let mut curl = Curl::new(format!("https://localhost:{}/api", p.port())).cacert(s.pki.root_ca());
    if with_cert {
        curl = curl.identity(&s.client.chain, &s.client.key);
    }
    for h in forged {
        curl = curl.header(*h);
    }
    let r = curl.run_async().await;
    let echo: Value = serde_json::from_str(&r.body).unwrap_or(Value::Null);
    let record = p.flow().await;
    (r.status, echo, record)
}

/// The echoed headers named `name`, in order.
fn echoed(echo: &Value, name: &str) -> Vec<String> {
    echo["headers"]
        .as_array()
        .unwrap_or_else(|| panic!("no echo: {echo}"))
        .iter()
        .filter(|h| h[0].as_str() == Some(name))
        .map(|h| h[1].as_str().unwrap().to_string())
        .collect()
}

fn one(echo: &Value, name: &str) -> String {
    let v = echoed(echo, name);
    assert_eq!(v.len(), 1, "{name}: {v:?} in {echo}");
    v[0].clone()
}

fn forwarded(record: &Flow) -> &mtlscope::facts::ForwardedIdentity {
    record
        .request
        .as_ref()
        .and_then(|r| r.forwarded_identity.as_ref())
        .unwrap_or_else(|| panic!("no forwarded identity: {record:#?}"))
}

fn forwarded_names(record: &Flow) -> Vec<&str> {
    forwarded(record)
        .headers
        .iter()
        .map(|h| h.name.as_str())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9440_sends_byte_sequences_of_the_leaf_and_the_rest_of_the_chain() {
    let s = setup(None).await;
    let mut p = proxy(&s, &["--forward-client-cert", "rfc9440"]).await;
    let (status, echo, rec) = exchange(&s, &mut p, true, &[]).await;
    assert_eq!(status, 200);
    let c = &s.client;
    assert_eq!(
        one(&echo, "client-cert"),
        format!(":{}:", OffloadClient::b64(&c.leaf_der))
    );
    assert_eq!(
        one(&echo, "client-cert-chain"),
        format!(":{}:", OffloadClient::b64(&c.intermediate_der))
    );
    assert_eq!(upstream(&rec).transport, Some(Transport::Plain));
    assert!(upstream(&rec).tls_version.is_none(), "{rec:#?}");
    assert!(matches!(
        client(&rec).tls_version,
        Some(TlsVersion::Tls12 | TlsVersion::Tls13)
    ));
    assert_eq!(forwarded_names(&rec), ["client-cert", "client-cert-chain"]);
    let first = &forwarded(&rec).headers[0];
    assert!(first.excerpt.starts_with(":MII"), "{first:?}");
    assert!(first.excerpt.chars().count() <= 97, "bounded: {first:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xfcc_is_envoys_element_with_every_detail() {
    let s = setup(None).await;
    let mut p = proxy(&s, &["--forward-client-cert", "xfcc"]).await;
    let (status, echo, _) = exchange(&s, &mut p, true, &[]).await;
    assert_eq!(status, 200);
    let c = &s.client;
    // Envoy escapes exactly these five in the PEM (StrReplaceAll in its SSL connection info).
    let envoy = |pem: &str| {
        pem.replace('\n', "%0A")
            .replace(' ', "%20")
            .replace('+', "%2B")
            .replace('/', "%2F")
            .replace('=', "%3D")
    };
    let expected = format!(
        "Hash={};Cert=\"{}\";Chain=\"{}\";Subject=\"{}\";URI=spiffe://example.org/ns/test/sa/client;DNS=client.example;DNS=alt.example",
        c.sha256,
        envoy(&c.leaf_pem),
        envoy(&format!("{}{}", c.leaf_pem, c.intermediate_pem)),
        c.subject,
    );
    assert_eq!(one(&echo, "x-forwarded-client-cert"), expected);
    assert!(
        c.subject.contains("\\,"),
        "the fixture subject needs escaping: {}",
        c.subject
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_aws_alb_azure_and_templates_arrive_as_their_products_send_them() {
    let s = setup(None).await;
    let mut p = proxy(
        &s,
        &[
            "--forward-client-cert",
            "nginx",
            "--forward-client-cert",
            "aws-alb",
            "--forward-client-cert",
            "aws-alb-passthrough",
            "--forward-client-cert",
            "azure-appgw",
            "--forward-client-cert",
            "header:X-Client-Id={serial}/{sha1}/{not_after}",
        ],
    )
    .await;
    let (status, echo, rec) = exchange(&s, &mut p, true, &[]).await;
    assert_eq!(status, 200);
    let c = &s.client;
    // nginx $ssl_client_escaped_cert: everything but unreserved characters escaped.
    assert_eq!(
        one(&echo, "x-ssl-client-cert"),
        percent(&c.leaf_pem, unreserved)
    );
    assert_eq!(one(&echo, "x-ssl-client-verify"), "SUCCESS");
    assert_eq!(one(&echo, "x-ssl-client-s-dn"), c.subject);
    assert_eq!(one(&echo, "x-ssl-client-i-dn"), c.issuer);
    // AWS ALB: URL-encoded PEM "with +=/ as safe characters".
    let aws = |t: &str| percent(t, |b| unreserved(b) || b"+=/".contains(&b));
    assert_eq!(one(&echo, "x-amzn-mtls-clientcert-serial-number"), c.serial);
    assert_eq!(c.serial, "C0FFEE0123");
    assert_eq!(one(&echo, "x-amzn-mtls-clientcert-issuer"), c.issuer);
    assert_eq!(one(&echo, "x-amzn-mtls-clientcert-subject"), c.subject);
    assert_eq!(
        one(&echo, "x-amzn-mtls-clientcert-validity"),
        format!("NotBefore={};NotAfter={}", c.not_before, c.not_after)
    );
    assert_eq!(one(&echo, "x-amzn-mtls-clientcert-leaf"), aws(&c.leaf_pem));
    assert_eq!(
        one(&echo, "x-amzn-mtls-clientcert"),
        aws(&format!("{}{}", c.leaf_pem, c.intermediate_pem))
    );
    assert_eq!(
        one(&echo, "x-arr-clientcert"),
        OffloadClient::b64(&c.leaf_der)
    );
    let sha1 = {
        let out = std::process::Command::new("openssl")
            .args(["x509", "-noout", "-fingerprint", "-sha1", "-in"])
            .arg(&s.client.chain)
            .output()
            .unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        text.trim()
            .split_once('=')
            .unwrap()
            .1
            .replace(':', "")
            .to_ascii_lowercase()
    };
    assert_eq!(
        one(&echo, "x-client-id"),
        format!("{}/{sha1}/{}", c.serial, c.not_after)
    );
    assert_eq!(forwarded_names(&rec).len(), 4 + 5 + 1 + 1 + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_identity_headers_never_reach_the_backend_and_are_recorded() {
    let s = setup(None).await;
    let mut p = proxy(
        &s,
        &[
            "--forward-client-cert",
            "rfc9440",
            "--forward-client-cert",
            "nginx",
        ],
    )
    .await;
    let forged = [
        "Client-Cert: :Zm9yZ2Vk:",
        "X-SSL-Client-Cert: forged",
        "X-SSL-Client-Verify: SUCCESS",
    ];
    // Without a certificate: the forged headers go, and nothing takes their place.
    let (status, echo, rec) = exchange(&s, &mut p, false, &forged).await;
    assert_eq!(status, 200);
    for name in [
        "client-cert",
        "x-ssl-client-cert",
        "x-ssl-client-verify",
        "client-cert-chain",
    ] {
        assert!(
            echoed(&echo, name).is_empty(),
            "{name} reached the backend: {echo}"
        );
    }
    let fi = forwarded(&rec);
    assert!(!fi.client_cert);
    assert!(fi.headers.is_empty(), "{fi:#?}");
    let stripped: Vec<&str> = fi.stripped.iter().map(|h| h.name.as_str()).collect();
    assert_eq!(
        stripped,
        ["client-cert", "x-ssl-client-cert", "x-ssl-client-verify"]
    );
    let f = finding(&rec, FindingId::ClientSentIdentityHeader);
    assert_eq!(f.severity, Severity::Warning);
    assert!(f.evidence.iter().any(|e| e.contains("Zm9yZ2Vk")), "{f:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_header_is_replaced_by_the_real_identity() {
    let s = setup(None).await;
    let mut p = proxy(&s, &["--forward-client-cert", "rfc9440"]).await;
    let (status, echo, _) = exchange(&s, &mut p, true, &["Client-Cert: :Zm9yZ2Vk:"]).await;
    assert_eq!(status, 200);
    assert_eq!(
        echoed(&echo, "client-cert"),
        [format!(":{}:", OffloadClient::b64(&s.client.leaf_der))]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_headers_say_why_there_is_no_identity() {
    let s = setup(None).await;
    let mut p = proxy(
        &s,
        &[
            "--forward-client-cert",
            "nginx",
            "--forward-client-cert-verify",
        ],
    )
    .await;
    let (status, echo, _) = exchange(&s, &mut p, false, &[]).await;
    assert_eq!(status, 200);
    assert_eq!(one(&echo, "x-ssl-client-verify"), "NONE");
    assert_eq!(one(&echo, "x-client-cert-verify"), "NONE");
    assert!(echoed(&echo, "x-ssl-client-cert").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_refusing_without_the_expected_header_is_explained() {
    let s = setup(Some("client-cert")).await;
    // The offloader sends nginx's headers; the backend reads RFC 9440's.
    let mut p = proxy(
        &s,
        &[
            "--forward-client-cert",
            "nginx",
            "--expect-client-cert-header",
            "Client-Cert",
        ],
    )
    .await;
    let (status, _, rec) = exchange(&s, &mut p, true, &[]).await;
    assert_eq!(status, 401);
    let f = finding(&rec, FindingId::IdentityNotForwarded);
    assert_eq!(f.severity, Severity::Error);
    let text = serde_json::to_string(f).expect("a finding serializes");
    assert!(text.contains("client-cert"), "{text}");
    assert!(text.contains("x-ssl-client-cert"), "{text}");
    assert!(f.fix.contains("--forward-client-cert rfc9440"), "{f:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_backend_that_got_no_identity_header_is_explained() {
    let s = setup(Some("client-cert")).await;
    let mut p = proxy(&s, &[]).await;
    let (status, echo, rec) = exchange(&s, &mut p, true, &[]).await;
    assert_eq!(status, 401, "{echo}");
    assert!(has(&rec, FindingId::IdentityNotForwarded), "{rec:#?}");
    let f = finding(&rec, FindingId::IdentityNotForwarded);
    assert!(f.fix.contains("--forward-client-cert"), "{f:#?}");
    assert!(
        f.evidence.iter().any(|e| e.contains("no identity header")),
        "{f:#?}"
    );
}

/// `mtlscope reverse … extra` run to completion: (exit code, stderr).
fn refused(s: &Setup, extra: &[&str]) -> (Option<i32>, String) {
    let server = s.pki.server().arg();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_mtlscope"));
    cmd.args([
        "reverse",
        "--listen",
        "127.0.0.1:0",
        "--server-cert",
        &server,
    ])
    .args(extra);
    let out = common::process::run_bounded(cmd, None, std::time::Duration::from_secs(20));
    (out.code, String::from_utf8_lossy(&out.stderr).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_offloader_settings_are_usage_errors_naming_the_flag_or_config_key() {
    let s = setup(None).await;
    let up = s.echo.url();
    let (code, err) = refused(&s, &["--upstream", &up, "--forward-client-cert", "f5"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("--forward-client-cert \"f5\"") && err.contains("xfcc"),
        "{err}"
    );
    let (code, err) = refused(
        &s,
        &[
            "--upstream",
            &up,
            "--forward-client-cert",
            "header:X-Cert={fingerprint}",
        ],
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("{fingerprint}") && err.contains("{sha256}"),
        "{err}"
    );
    let id = s.pki.client(mtlscope::pki::ClientCert::Good).arg();
    let (code, err) = refused(&s, &["--upstream", &up, "--identity", &id]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("--identity") && err.contains("http://"),
        "{err}"
    );
    let (code, err) = refused(&s, &["--upstream", &up, "--client-auth", "mirror"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("--client-auth mirror"), "{err}");
    let dir = common::tmpdir();
    let config = dir.path().join("offload.toml");
    std::fs::write(
        &config,
        format!("upstream = \"{up}\"\nforward_client_cert = [\"nginx\", \"haproxy\"]\n"),
    )
    .unwrap();
    let (code, err) = refused(&s, &["--config", &config.display().to_string()]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("offload.toml")
            && err.contains("(forward_client_cert)")
            && err.contains("haproxy"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_config_file_configures_the_offloader() {
    let s = setup(None).await;
    let dir = common::tmpdir();
    let config = dir.path().join("offload.toml");
    std::fs::write(
        &config,
        format!(
            "upstream = \"{}\"\nforward_client_cert = [\"azure-appgw\"]\nforward_client_cert_verify = true\n",
            s.echo.url()
        ),
    )
    .unwrap();
    let server = s.pki.server().arg();
    let mut p = Proxy::start(&[
        "reverse",
        "--config",
        &config.display().to_string(),
        "--server-cert",
        &server,
    ])
    .await;
    let (status, echo, _) = exchange(&s, &mut p, false, &["X-ARR-ClientCert: forged"]).await;
    assert_eq!(status, 200);
    assert!(echoed(&echo, "x-arr-clientcert").is_empty(), "{echo}");
    assert_eq!(one(&echo, "x-client-cert-verify"), "NONE");
}
