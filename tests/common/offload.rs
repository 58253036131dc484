#![allow(dead_code)]
//! What a TLS offloader should send for a client certificate, built by the tests from the
//! certificate with `openssl` and the products' documented encodings, never with mtlscope's
//! own formatting code: a client certificate with URI and DNS names and a subject that needs
//! RFC 2253 escapes, signed by the dev intermediate, and its fields as OpenSSL prints them.

use crate::common::inproc_proxy::Proxy;
use base64::Engine as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A client identity made for the offload tests, and its fields.
pub struct OffloadClient {
    /// Leaf + intermediate, PEM.
    pub chain: PathBuf,
    /// The leaf's key.
    pub key: PathBuf,
    /// The leaf's PEM exactly as `openssl x509` writes it.
    pub leaf_pem: String,
    /// The intermediate's PEM exactly as `openssl x509` writes it.
    pub intermediate_pem: String,
    /// The leaf's DER.
    pub leaf_der: Vec<u8>,
    /// The intermediate's DER.
    pub intermediate_der: Vec<u8>,
    /// `openssl x509 -subject -nameopt RFC2253`.
    pub subject: String,
    /// `openssl x509 -issuer -nameopt RFC2253`.
    pub issuer: String,
    /// `openssl x509 -serial`.
    pub serial: String,
    /// SHA-256 fingerprint, lowercase hex.
    pub sha256: String,
    /// notBefore, `YYYY-MM-DDTHH:MM:SSZ`.
    pub not_before: String,
    /// notAfter, `YYYY-MM-DDTHH:MM:SSZ`.
    pub not_after: String,
}

fn openssl(args: &[&str]) -> String {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("openssl output is text")
}

fn openssl_bytes(args: &[&str]) -> Vec<u8> {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("run openssl");
    assert!(out.status.success(), "openssl {args:?}");
    out.stdout
}

/// `key=value` from one line of `openssl x509 -noout` output.
fn after_eq(line: &str) -> String {
    line.split_once('=')
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_default()
}

/// `2026-11-30 02:30:53Z` → `2026-11-30T02:30:53Z`.
fn iso(openssl_date: &str) -> String {
    openssl_date.replacen(' ', "T", 1)
}

impl OffloadClient {
    /// Issue the client under the dev intermediate (`intermediate.pem`/`.key` in `pki_dir`).
    pub fn issue(pki_dir: &Path, dir: &Path) -> OffloadClient {
        let p = |n: &str| dir.join(n).display().to_string();
        let ca = pki_dir.join("intermediate.pem").display().to_string();
        let ca_key = pki_dir.join("intermediate.key").display().to_string();
        let ext = dir.join("ext.cnf");
        std::fs::write(
            &ext,
            "extendedKeyUsage = clientAuth\nkeyUsage = digitalSignature\n\
             subjectAltName = URI:spiffe://example.org/ns/test/sa/client, DNS:client.example, DNS:alt.example\n",
        )
        .unwrap();
        openssl(&[
            "ecparam",
            "-name",
            "prime256v1",
            "-genkey",
            "-noout",
            "-out",
            &p("client.key"),
        ]);
        openssl(&[
            "req",
            "-new",
            "-key",
            &p("client.key"),
            "-out",
            &p("client.csr"),
            "-subj",
            "/O=mtlscope dev/OU=team\\, west/CN=offload client",
        ]);
        openssl(&[
            "x509",
            "-req",
            "-in",
            &p("client.csr"),
            "-CA",
            &ca,
            "-CAkey",
            &ca_key,
            "-set_serial",
            "0x00C0FFEE0123",
            "-days",
            "30",
            "-out",
            &p("leaf.pem"),
            "-extfile",
            &ext.display().to_string(),
        ]);
        let leaf_pem = openssl(&["x509", "-in", &p("leaf.pem")]);
        let intermediate_pem = openssl(&["x509", "-in", &ca]);
        let chain = dir.join("chain.pem");
        std::fs::write(&chain, format!("{leaf_pem}{intermediate_pem}")).unwrap();
        let info = openssl(&[
            "x509",
            "-in",
            &p("leaf.pem"),
            "-noout",
            "-subject",
            "-issuer",
            "-serial",
            "-nameopt",
            "RFC2253",
            "-startdate",
            "-enddate",
            "-dateopt",
            "iso_8601",
            "-fingerprint",
            "-sha256",
        ]);
        let field = |prefix: &str| {
            info.lines()
                .find(|l| l.starts_with(prefix))
                .map(after_eq)
                .unwrap_or_else(|| panic!("no {prefix} in {info}"))
        };
        OffloadClient {
            key: dir.join("client.key"),
            chain,
            leaf_der: openssl_bytes(&["x509", "-in", &p("leaf.pem"), "-outform", "DER"]),
            intermediate_der: openssl_bytes(&["x509", "-in", &ca, "-outform", "DER"]),
            leaf_pem,
            intermediate_pem,
            subject: field("subject="),
            issuer: field("issuer="),
            serial: field("serial="),
            sha256: field("sha256 Fingerprint=")
                .replace(':', "")
                .to_ascii_lowercase(),
            not_before: iso(&field("notBefore=")),
            not_after: iso(&field("notAfter=")),
        }
    }

    /// The DER in standard base64.
    pub fn b64(der: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(der)
    }
}

/// Percent-encode every byte but those `keep` accepts, uppercase hex.
pub fn percent(text: &str, keep: impl Fn(u8) -> bool) -> String {
    text.bytes()
        .map(|b| {
            if keep(b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// RFC 3986 unreserved.
pub fn unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~".contains(&b)
}

/// The set-up every offload test starts from: the dev PKI and a client identity issued for
/// the offload tests by its intermediate. Both directories live as long as this.
pub struct OffloadLab {
    /// The dev PKI (server certificate, root, intermediate).
    pub pki: mtlscope::pki::DevPki,
    /// The client identity and its fields as OpenSSL prints them.
    pub client: OffloadClient,
    /// The PKI's directory, then the client's.
    _dirs: (tempfile::TempDir, tempfile::TempDir),
}

impl OffloadLab {
    /// A fresh dev PKI and offload client, under the target's tmp dir.
    pub fn new() -> OffloadLab {
        let (pki, pki_dir) = crate::common::dev_pki();
        let dir = crate::common::tmpdir();
        let client = OffloadClient::issue(pki.out_dir(), dir.path());
        OffloadLab {
            pki,
            client,
            _dirs: (pki_dir, dir),
        }
    }

    /// A directory beside the client's files (for further test files).
    pub fn dir(&self) -> &Path {
        self._dirs.1.path()
    }

    /// `mtlscope reverse` in-process in front of `upstream`, serving the lab's server
    /// certificate and asking (optionally) for a client certificate from its root, plus `extra`.
    pub async fn reverse(&self, upstream: &str, extra: &[&str]) -> Proxy {
        let args = crate::common::reverse_args(&self.pki, upstream, extra);
        Proxy::start(&args.iter().map(String::as_str).collect::<Vec<_>>()).await
    }
}
