//! Revocation against real peers: nginx with `ssl_crl` (CRLs for the root and the intermediate)
//! rejects revoked client certificates with its generic 400 "The SSL certificate error", and
//! `mtlscope probe` names the cause, `cert-revoked`, from the certificate's own CRL distribution
//! point (served by `python3 -m http.server`), from `--crl`, and from its OCSP responder
//! (`openssl ocsp`) — never `chain-untrusted`. A revoked identity is warned about at start-up.

mod common;

use common::peers::{http_files, ocsp_responder};
use common::process::run_bounded;
use common::{Nginx, NginxConfig, VerifyClient};
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, CertifiedIssuer,
    CrlDistributionPoint, CustomExtension, DnType, ExtendedKeyUsagePurpose, IsCa, KeyIdMethod,
    KeyPair, KeyUsagePurpose, RevocationReason, RevokedCertParams, SerialNumber,
};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use time::{Duration as Days, OffsetDateTime};

/// Serial of the leaf whose CRL distribution point names the test's HTTP server.
const DP_SERIAL: u64 = 0x1001;
/// Serial of the leaf that names only an OCSP responder.
const OCSP_SERIAL: u64 = 0x1002;
/// Serial of the leaf that names neither (revoked only in the CRL files).
const PLAIN_SERIAL: u64 = 0x1003;

fn ca_params(cn: &str, serial: u64) -> CertificateParams {
    let now = OffsetDateTime::now_utc();
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name = rcgen::DistinguishedName::new();
    p.distinguished_name.push(DnType::CommonName, cn);
    p.serial_number = Some(SerialNumber::from(serial));
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    p.not_before = now - Days::days(1);
    p.not_after = now + Days::days(365);
    p
}

fn leaf_params(cn: &str, serial: u64) -> CertificateParams {
    let now = OffsetDateTime::now_utc();
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name = rcgen::DistinguishedName::new();
    p.distinguished_name.push(DnType::CommonName, cn);
    p.serial_number = Some(SerialNumber::from(serial));
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    p.use_authority_key_identifier_extension = true;
    p.not_before = now - Days::days(1);
    p.not_after = now + Days::days(365);
    p
}

/// An authorityInfoAccess extension naming one OCSP responder.
fn aia_ocsp(url: &str) -> CustomExtension {
    let mut uri = vec![0x86, url.len() as u8];
    uri.extend_from_slice(url.as_bytes());
    let oid = [0x06, 0x08, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x30, 0x01];
    let mut desc = vec![0x30, (oid.len() + uri.len()) as u8];
    desc.extend_from_slice(&oid);
    desc.extend_from_slice(&uri);
    let mut seq = vec![0x30, desc.len() as u8];
    seq.extend_from_slice(&desc);
    CustomExtension::from_oid_content(&[1, 3, 6, 1, 5, 5, 7, 1, 1], seq)
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn crl(issuer: &CertifiedIssuer<'_, KeyPair>, revoked: &[u64]) -> String {
    let now = OffsetDateTime::now_utc();
    CertificateRevocationListParams {
        this_update: now - Days::hours(1),
        next_update: now + Days::days(7),
        crl_number: SerialNumber::from(1u64),
        issuing_distribution_point: None,
        revoked_certs: revoked
            .iter()
            .map(|s| RevokedCertParams {
                serial_number: SerialNumber::from(*s),
                revocation_time: now - Days::minutes(30),
                reason_code: Some(RevocationReason::KeyCompromise),
                invalidity_date: None,
            })
            .collect(),
        key_identifier_method: KeyIdMethod::Sha256,
    }
    .signed_by(issuer)
    .unwrap()
    .pem()
    .unwrap()
}

/// Root → intermediate → three revoked client leaves; the server certificate from the root;
/// CRLs for both CAs; nginx checking them; the CRL served over HTTP; an OCSP responder.
struct Setup {
    dir: tempfile::TempDir,
    root: PathBuf,
    inter_crl: PathBuf,
    http: common::process::RunningServer,
    _ocsp: common::process::RunningServer,
    nginx: Nginx,
}

fn setup() -> Setup {
    let dir = common::tmpdir();
    let d = dir.path();
    let root = CertifiedIssuer::self_signed(
        ca_params("revocation test root", 1),
        KeyPair::generate().unwrap(),
    )
    .unwrap();
    let inter_key = KeyPair::generate().unwrap();
    let inter_key_pem = inter_key.serialize_pem();
    let inter = CertifiedIssuer::signed_by(
        ca_params("revocation test intermediate", 2),
        inter_key,
        &root,
    )
    .unwrap();
    let root_pem = write(d, "root.pem", &root.pem());
    let inter_pem = write(d, "inter.pem", &inter.pem());
    let inter_key_file = write(d, "inter.key", &inter_key_pem);

    let mut server = leaf_params("localhost", 3);
    server.subject_alt_names = vec![rcgen::SanType::DnsName("localhost".try_into().unwrap())];
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server_key = KeyPair::generate().unwrap();
    let server_cert = server.signed_by(&server_key, &root).unwrap();
    let server_pem = write(d, "server.pem", &server_cert.pem());
    let server_key_file = write(d, "server.key", &server_key.serialize_pem());

    // CRLs: nginx needs one per CA of the chain; the intermediate's revokes all three leaves.
    let revoked = [DP_SERIAL, OCSP_SERIAL, PLAIN_SERIAL];
    let inter_crl_text = crl(&inter, &revoked);
    let root_crl_text = crl(&root, &[]);
    let served = d.join("served");
    std::fs::create_dir(&served).unwrap();
    let inter_crl = write(&served, "inter.crl", &inter_crl_text);
    let nginx_crl = write(
        d,
        "nginx-crls.pem",
        &format!("{root_crl_text}{inter_crl_text}"),
    );
    let http = http_files(&served).expect("python3 -m http.server");

    // The OCSP responder's index (`openssl ca` format), signed by the intermediate itself.
    let stamp = |t: OffsetDateTime| {
        format!(
            "{:02}{:02}{:02}{:02}{:02}{:02}Z",
            t.year() % 100,
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        )
    };
    let now = OffsetDateTime::now_utc();
    let index = write(
        d,
        "index.txt",
        &format!(
            "R\t{}\t{},keyCompromise\t{:X}\tunknown\t/CN=ocsp-revoked\n",
            stamp(now + Days::days(365)),
            stamp(now - Days::minutes(30)),
            OCSP_SERIAL
        ),
    );
    let ocsp = ocsp_responder(&index, &inter_pem, &inter_key_file).expect("openssl ocsp");

    let issue = |name: &str, serial: u64, ext: &dyn Fn(&mut CertificateParams)| {
        let mut p = leaf_params(name, serial);
        ext(&mut p);
        let key = KeyPair::generate().unwrap();
        let cert = p.signed_by(&key, &inter).unwrap();
        write(
            d,
            &format!("{name}.pem"),
            &format!("{}{}", cert.pem(), inter.pem()),
        );
        write(d, &format!("{name}.key"), &key.serialize_pem());
    };
    let dp = format!("http://127.0.0.1:{}/inter.crl", http.port());
    issue("dp-revoked", DP_SERIAL, &|p| {
        p.crl_distribution_points = vec![CrlDistributionPoint {
            uris: vec![dp.clone()],
        }]
    });
    let responder = format!("http://127.0.0.1:{}", ocsp.port());
    issue("ocsp-revoked", OCSP_SERIAL, &|p| {
        p.custom_extensions = vec![aia_ocsp(&responder)]
    });
    issue("plain-revoked", PLAIN_SERIAL, &|_| {});

    let nginx = Nginx::start(NginxConfig {
        verify_client: VerifyClient::On,
        client_certificate: Some(root_pem.clone()),
        verify_depth: Some(3),
        extra: format!("    ssl_crl \"{}\";", nginx_crl.display()),
        ..NginxConfig::new(&server_pem, &server_key_file)
    })
    .expect("start nginx");
    Setup {
        root: root_pem,
        inter_crl,
        http,
        _ocsp: ocsp,
        nginx,
        dir,
    }
}

struct Run {
    json: Value,
    stderr: String,
    /// The recorded flows' identity candidates, for failure messages.
    candidates: String,
}

fn probe(s: &Setup, identity: &str, extra: &[&str]) -> Run {
    let d = s.dir.path();
    let id = format!(
        "{},{}",
        d.join(format!("{identity}.pem")).display(),
        d.join(format!("{identity}.key")).display()
    );
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mtlscope"));
    cmd.arg("probe")
        .arg(s.nginx.localhost_url())
        .arg("--upstream-ca")
        .arg(&s.root)
        .args(["--identity", &id, "--json", "--timeout", "5", "--tls12"])
        .arg("--no-throwaway-identity")
        .arg("--record")
        .arg(d.join(format!("{identity}.jsonl")))
        .args(extra);
    let out = run_bounded(cmd, None, Duration::from_secs(60));
    assert!(!out.timed_out, "probe ran past 60 s");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    Run {
        json: serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}")),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        candidates: std::fs::read_to_string(d.join(format!("{identity}.jsonl")))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .map(|f| f["upstream_leg"]["identity"]["candidates"].to_string())
            .collect::<Vec<_>>()
            .join("\n"),
    }
}

/// The attempt that presented the identity.
fn with_identity(r: &Run) -> Value {
    r.json["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| !a["identity"].is_null())
        .cloned()
        .unwrap_or_else(|| panic!("no attempt with the identity: {:#}", r.json))
}

fn ids(a: &Value) -> Vec<String> {
    a["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap().to_string())
        .collect()
}

/// The attempt was refused by nginx's generic page and `cert-revoked` heads it, with evidence
/// naming `source`; `chain-untrusted` appears in no attempt.
fn assert_revoked(r: &Run, source: &str) {
    let a = with_identity(r);
    assert_eq!(a["status"], 400, "{a:#}");
    let got = ids(&a);
    assert_eq!(
        got.first().map(String::as_str),
        Some("cert-revoked"),
        "{got:?}: {a:#}\nstderr: {}\ncandidates: {}",
        r.stderr,
        r.candidates
    );
    let f = &a["findings"][0];
    assert_eq!(f["severity"], "error");
    let evidence = f["evidence"].to_string();
    assert!(evidence.contains(source), "{source} not in {evidence}");
    assert!(evidence.contains("keyCompromise"), "{evidence}");
    assert!(evidence.contains("thisUpdate"), "{evidence}");
    assert!(evidence.contains("The SSL certificate error"), "{evidence}");
    for a in r.json["attempts"].as_array().unwrap() {
        assert!(!ids(a).contains(&"chain-untrusted".to_string()), "{a:#}");
    }
    assert!(
        r.stderr.contains("is revoked"),
        "no start-up warning: {}",
        r.stderr
    );
    assert!(
        r.json["warnings"].to_string().contains("is revoked"),
        "no warning in the report: {:#}",
        r.json["warnings"]
    );
}

#[test]
fn a_revoked_identity_is_cert_revoked_from_its_crl_its_file_and_its_ocsp_responder() {
    let s = setup();

    // The CRL named in the certificate, fetched from the HTTP server.
    let r = probe(&s, "dp-revoked", &[]);
    let url = format!("http://127.0.0.1:{}/inter.crl", s.http.port());
    assert_revoked(&r, &url);
    assert!(r.stderr.contains(&url), "{}", r.stderr);

    // No source in the certificate: only --crl knows; without it, no verdict and no
    // chain-untrusted either (the chain links to the root nginx named).
    let r = probe(&s, "plain-revoked", &[]);
    let a = with_identity(&r);
    assert!(!ids(&a).contains(&"cert-revoked".to_string()), "{a:#}");
    assert!(!ids(&a).contains(&"chain-untrusted".to_string()), "{a:#}");
    let crl = s.inter_crl.display().to_string();
    let r = probe(&s, "plain-revoked", &["--crl", &crl]);
    assert_revoked(&r, &crl);

    // The OCSP responder named in the certificate.
    let r = probe(&s, "ocsp-revoked", &[]);
    let responder = format!("http://127.0.0.1:{}", s._ocsp.port());
    assert_revoked(&r, &responder);
}

#[test]
fn a_bad_crl_file_is_refused_with_its_name() {
    let dir = common::tmpdir();
    let bad = write(dir.path(), "bad.crl", "not a crl");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mtlscope"));
    cmd.args(["probe", "https://127.0.0.1:9/", "--identity"]);
    // An identity is needed for the CRLs to be read at all.
    let (pki, _d) = common::dev_pki();
    cmd.arg(pki.client(mtlscope::pki::ClientCert::Good).arg())
        .arg("--crl")
        .arg(&bad);
    let out = run_bounded(cmd, None, Duration::from_secs(30));
    assert_eq!(
        out.code,
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--crl") && err.contains("bad.crl"), "{err}");
}

/// `--check-revocation` on the client leg: a client presenting a revoked certificate to
/// `reverse` gets `cert-revoked` on the client leg in the record (the answer from `--crl`, here,
/// so the test does not race the record), and the relay is not held up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_revocation_judges_the_clients_certificate() {
    use mtlscope::facts::{FindingId, RevocationSource, RevocationStatus};
    let s = setup();
    let d = s.dir.path();
    let upstream = s.nginx.localhost_url();
    let root = s.root.display().to_string();
    let crl = s.inter_crl.display().to_string();
    let mut p = common::Proxy::start(&[
        "reverse",
        "--upstream",
        &upstream,
        "--upstream-ca",
        &root,
        "--client-auth",
        "optional",
        "--client-ca",
        &root,
        "--check-revocation",
        "--crl",
        &crl,
    ])
    .await;
    let r = common::Curl::new(format!("https://127.0.0.1:{}/", p.port()))
        .insecure()
        .identity(d.join("plain-revoked.pem"), d.join("plain-revoked.key"))
        .run_async()
        .await;
    assert!(r.status > 0, "{r:?}");
    let rec = p.flow().await;
    let client = common::flows::client(&rec);
    let check = client
        .revocation
        .first()
        .unwrap_or_else(|| panic!("no revocation check: {client:#?}"));
    assert_eq!(check.status, RevocationStatus::Revoked, "{client:#?}");
    assert_eq!(check.source, RevocationSource::CrlFile);
    assert_eq!(check.reason.as_deref(), Some("keyCompromise"));
    let f = common::flows::finding(&rec, FindingId::CertRevoked);
    assert!(f.evidence.iter().any(|e| e.contains(&crl)), "{f:#?}");
}
