//! Running `mtlscope analyze` on capture files as a user does (the binary, a recording file),
//! and the nginx the capture tests record.

use super::{Nginx, NginxConfig, TestPki, TlsVersion, VerifyClient};
use serde_json::Value;
use std::path::Path;
use std::process::Command;

/// `mtlscope analyze FILES… ARGS…`: the records, and stderr.
pub fn analyze(files: &[&Path], args: &[&str]) -> (Vec<Value>, String) {
    let dir = super::tmpdir();
    let record = dir.path().join("r.jsonl");
    let out = Command::new(env!("CARGO_BIN_EXE_mtlscope"))
        .arg("analyze")
        .args(files)
        .args(args)
        .arg("--record")
        .arg(&record)
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "analyze failed: {stderr}");
    let text = std::fs::read_to_string(&record).unwrap_or_default();
    let records = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON"))
        .collect();
    (records, stderr)
}

/// nginx on TLS 1.2 requiring a client certificate from the test PKI.
pub fn nginx_tls12_verify_on(pki: &TestPki) -> Nginx {
    Nginx::start(NginxConfig {
        verify_client: VerifyClient::On,
        client_certificate: Some(pki.ca_cert.clone()),
        protocols: vec![TlsVersion::Tls12],
        ..NginxConfig::new(&pki.server.cert, &pki.server.key)
    })
    .expect("nginx")
}
