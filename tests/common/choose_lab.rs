//! The `certs choose` lab: a test PKI (two CAs, client certificates by CN), an in-process
//! rustls server that asks with a case's CA names and signature schemes and answers with the
//! subject it received, and `mtlscope certs choose --json` run as a user runs it.

use mtlscope::capture::signatures::SignatureChecks;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SerialNumber,
};
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};
use time::OffsetDateTime;

pub const PASSWORD: &str = "changeit";

/// Accepts any client certificate (the test is about which one is sent, not whether it is
/// good), asking with the case's CA names and signature schemes.
#[derive(Debug)]
pub struct Asker {
    hints: Vec<DistinguishedName>,
    schemes: Vec<SignatureScheme>,
    provider: Arc<CryptoProvider>,
}

impl ClientCertVerifier for Asker {
    fn offer_client_auth(&self) -> bool {
        true
    }
    fn client_auth_mandatory(&self) -> bool {
        false
    }
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.hints
    }
    fn verify_client_cert(
        &self,
        _end: &CertificateDer<'_>,
        _inter: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        SignatureChecks(&self.provider).tls12(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        SignatureChecks(&self.provider).tls13(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.schemes.clone()
    }
}

/// The CN of a DER certificate's subject.
pub fn cn_of_der(der: &[u8]) -> String {
    let (_, cert) = x509_parser::parse_x509_certificate(der).expect("client certificate parses");
    let cn = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|c| c.as_str().ok())
        .unwrap_or("?");
    cn.to_string()
}

/// Serve on a loopback port until the process ends: each connection gets one response whose
/// body is `subject=CN` of the client certificate received, or `subject=none`.
pub fn serve(config: Arc<rustls::ServerConfig>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let config = config.clone();
            std::thread::spawn(move || {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(20)));
                let Ok(conn) = rustls::ServerConnection::new(config) else {
                    return;
                };
                let mut tls = rustls::StreamOwned::new(conn, stream);
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16384 {
                    match tls.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let subject = tls
                    .conn
                    .peer_certificates()
                    .and_then(|c| c.first())
                    .map(|c| cn_of_der(c))
                    .unwrap_or_else(|| "none".into());
                let body = format!("subject={subject}\n");
                let _ = write!(
                    tls,
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = tls.flush();
                tls.conn.send_close_notify();
                let _ = tls.flush();
            });
        }
    });
    port
}

/// The test PKI: two CAs, and client certificates named by their CN.
pub struct Pki {
    pub good_ca: (Issuer<'static, KeyPair>, Vec<u8>),
    pub other_ca: (Issuer<'static, KeyPair>, Vec<u8>),
    pub server: (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>),
}

pub fn ca(cn: &str) -> (Issuer<'static, KeyPair>, Vec<u8>) {
    let mut p = CertificateParams::default();
    p.distinguished_name.push(DnType::CommonName, cn);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let key = KeyPair::generate().expect("key");
    let cert = p.self_signed(&key).expect("ca");
    let der = cert.der().to_vec();
    (Issuer::new(p, key), der)
}

pub fn rsa_key() -> KeyPair {
    let out = Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
        ])
        .output()
        .expect("openssl genpkey");
    assert!(out.status.success(), "openssl genpkey failed");
    KeyPair::from_pem(&String::from_utf8_lossy(&out.stdout)).expect("rsa key")
}

impl Pki {
    pub fn new() -> Pki {
        let good_ca = ca("Good CA");
        let other_ca = ca("Other CA");
        let mut sp = CertificateParams::new(vec!["localhost".into()]).expect("params");
        sp.subject_alt_names
            .push(rcgen::SanType::IpAddress("127.0.0.1".parse().expect("ip")));
        let key = KeyPair::generate().expect("key");
        let cert = sp.signed_by(&key, &good_ca.0).expect("server");
        let server = (
            vec![cert.der().clone()],
            PrivateKeyDer::try_from(key.serialize_der()).expect("key der"),
        );
        Pki {
            good_ca,
            other_ca,
            server,
        }
    }

    /// Write `<cn>.pem` and `<cn>.key` into `dir`: issued by the good or the other CA, RSA or
    /// ECDSA, expired or valid.
    pub fn client(&self, dir: &Path, cn: &str, good: bool, rsa: bool, expired: bool) {
        let mut p = CertificateParams::default();
        p.distinguished_name.push(DnType::CommonName, cn);
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p.serial_number = Some(SerialNumber::from(cn.as_bytes().to_vec()));
        let now = OffsetDateTime::now_utc();
        if expired {
            p.not_before = now - time::Duration::days(400);
            p.not_after = now - time::Duration::days(30);
        } else {
            p.not_before = now - time::Duration::days(1);
            p.not_after = now + time::Duration::days(365);
        }
        let key = if rsa {
            rsa_key()
        } else {
            KeyPair::generate().expect("key")
        };
        let issuer = if good {
            &self.good_ca.0
        } else {
            &self.other_ca.0
        };
        let cert = p.signed_by(&key, issuer).expect("client cert");
        std::fs::write(dir.join(format!("{cn}.pem")), cert.pem()).expect("write cert");
        std::fs::write(dir.join(format!("{cn}.key")), key.serialize_pem()).expect("write key");
    }

    pub fn server_config(
        &self,
        names_good_ca: bool,
        ecdsa_only: bool,
    ) -> Arc<rustls::ServerConfig> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let hints = if names_good_ca {
            let (_, ca) = x509_parser::parse_x509_certificate(&self.good_ca.1).expect("ca");
            vec![DistinguishedName::from(ca.subject().as_raw().to_vec())]
        } else {
            vec![]
        };
        let all = provider
            .signature_verification_algorithms
            .supported_schemes();
        let schemes = if ecdsa_only {
            all.into_iter()
                .filter(|s| {
                    matches!(
                        s,
                        SignatureScheme::ECDSA_NISTP256_SHA256
                            | SignatureScheme::ECDSA_NISTP384_SHA384
                    )
                })
                .collect()
        } else {
            all
        };
        let verifier = Arc::new(Asker {
            hints,
            schemes,
            provider: provider.clone(),
        });
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_client_cert_verifier(verifier)
            .with_single_cert(self.server.0.clone(), self.server.1.clone_key())
            .expect("server config");
        Arc::new(config)
    }
}

/// Run `program args…` in `dir`, bounded, and return the `subject=` it printed.
pub fn sent_by(dir: &Path, program: &str, args: &[&str], env: &[(&str, &Path)]) -> String {
    let mut cmd = Command::new("timeout");
    cmd.arg("60").arg(program).args(args).current_dir(dir);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap_or_else(|e| panic!("{program}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().find(|l| l.starts_with("subject="));
    match line {
        Some(l) => l.trim_start_matches("subject=").trim().to_string(),
        None => panic!(
            "{program} {args:?} printed no subject: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

pub fn mtlscope(dir: &Path, args: &[&str]) -> (Value, Duration) {
    let start = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_mtlscope"))
        .args(["certs", "choose"])
        .args(args)
        .arg("--json")
        .current_dir(dir)
        .output()
        .expect("run mtlscope");
    let took = start.elapsed();
    assert!(
        out.status.success(),
        "certs choose {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (serde_json::from_slice(&out.stdout).expect("json"), took)
}

/// The CN a stack's prediction names (`good.pem` → `good`, `store.p12#good` → `good`), or
/// `none`.
pub fn predicted(v: &Value, stack: &str) -> String {
    let s = v["stacks"]
        .as_array()
        .expect("stacks")
        .iter()
        .find(|s| s["stack"] == stack)
        .unwrap_or_else(|| panic!("no stack {stack}"));
    match s["sends"].as_str() {
        None => "none".into(),
        Some(label) => {
            let base = label.rsplit('#').next().unwrap_or(label);
            let base = base.rsplit('/').next().unwrap_or(base);
            base.trim_end_matches(".pem").to_string()
        }
    }
}
