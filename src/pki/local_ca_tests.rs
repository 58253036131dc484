//! Tests of the local CA: creation, reuse, refusal of broken pairs, leaves, and the resolver in a
//! real (in-memory) rustls handshake.

use super::*;
use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::{ServerName, UnixTime};
use rustls::{ClientConfig, Connection, RootCertStore, ServerConfig};

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn roots(ca: &LocalCa) -> Arc<RootCertStore> {
    let mut store = RootCertStore::empty();
    store.add(ca.ca_der().clone()).unwrap();
    Arc::new(store)
}

#[test]
fn created_once_then_reused_never_regenerated() {
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("nested/ca");
    let first = LocalCa::open_or_create(&sub).unwrap();
    assert!(first.created());
    assert_eq!(first.cert_path(), sub.join("ca.pem"));
    let pem_before = std::fs::read(first.cert_path()).unwrap();
    let key_before = std::fs::read(first.key_path()).unwrap();
    let again = LocalCa::open_or_create(&sub).unwrap();
    assert!(!again.created());
    assert_eq!(again.ca_der(), first.ca_der());
    assert_eq!(std::fs::read(again.cert_path()).unwrap(), pem_before);
    assert_eq!(std::fs::read(again.key_path()).unwrap(), key_before);
    // A reopened CA still issues leaves that chain to it.
    let leaf = again.leaf_for("reuse.test").unwrap();
    assert_eq!(leaf.cert[1], *first.ca_der());
    let summary = crate::cert::summarize(first.ca_der()).unwrap();
    assert!(summary.is_ca && summary.self_issued);
    assert!(
        summary.subject.starts_with("CN=mtlscope local CA "),
        "{}",
        summary.subject
    );
}

#[cfg(unix)]
#[test]
fn key_is_0600() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let ca = LocalCa::open_or_create(dir.path()).unwrap();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(ca.key_path()), 0o600);
    assert_eq!(mode(ca.cert_path()), 0o644);
}

#[test]
fn half_a_pair_is_an_error_naming_the_missing_file_and_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let ca = LocalCa::open_or_create(dir.path()).unwrap();
    let pem = std::fs::read(ca.cert_path()).unwrap();
    std::fs::remove_file(ca.key_path()).unwrap();
    let err = LocalCa::open_or_create(dir.path()).unwrap_err();
    assert!(
        matches!(&err, PkiError::CaIncomplete { missing, .. } if missing.ends_with("ca.key")),
        "{err}"
    );
    assert!(err.is_usage());
    assert_eq!(
        std::fs::read(ca.cert_path()).unwrap(),
        pem,
        "ca.pem untouched"
    );
    assert!(!ca.key_path().exists(), "no key was generated over it");
}

#[test]
fn a_mismatched_or_unreadable_pair_is_an_error_naming_the_file() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let ca_a = LocalCa::open_or_create(a.path()).unwrap();
    let ca_b = LocalCa::open_or_create(b.path()).unwrap();
    std::fs::copy(ca_b.key_path(), ca_a.key_path()).unwrap();
    let err = LocalCa::open_or_create(a.path()).unwrap_err();
    assert!(matches!(err, PkiError::CaMismatch { .. }), "{err}");
    assert!(err
        .to_string()
        .contains(&ca_a.key_path().display().to_string()));

    std::fs::write(ca_b.cert_path(), "not a certificate").unwrap();
    let err = LocalCa::open_or_create(b.path()).unwrap_err();
    assert!(
        matches!(&err, PkiError::CaFile { path, .. } if path == ca_b.cert_path()),
        "{err}"
    );

    let c = tempfile::tempdir().unwrap();
    let ca_c = LocalCa::open_or_create(c.path()).unwrap();
    std::fs::write(
        ca_c.key_path(),
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    let err = LocalCa::open_or_create(c.path()).unwrap_err();
    assert!(
        matches!(&err, PkiError::CaFile { path, .. } if path == ca_c.key_path()),
        "{err}"
    );
}

#[test]
fn leaves_have_the_right_sans_distinct_serials_and_are_cached() {
    let dir = tempfile::tempdir().unwrap();
    let ca = LocalCa::open_or_create(dir.path()).unwrap();
    let summary = |k: &CertifiedKey| crate::cert::summarize(&k.cert[0]).unwrap();
    let dns = ca.leaf_for("Example.Test.").unwrap();
    let v4 = ca.leaf_for("127.0.0.1").unwrap();
    let v6 = ca.leaf_for("[::1]").unwrap();
    let (d, i4, i6) = (summary(&dns), summary(&v4), summary(&v6));
    assert_eq!(d.sans, ["DNS:example.test"]);
    assert_eq!(i4.sans, ["IP:127.0.0.1"]);
    assert_eq!(i6.sans, ["IP:::1"]);
    assert_eq!(d.eku, [crate::facts::ExtKeyUsage::ServerAuth]);
    assert!(!d.is_ca);
    let ca_summary = crate::cert::summarize(ca.ca_der()).unwrap();
    assert_eq!(d.issuer_der, ca_summary.subject_der);
    assert_eq!(dns.cert.len(), 2);
    let mut serials = vec![d.serial, i4.serial, i6.serial, ca_summary.serial];
    serials.sort();
    serials.dedup();
    assert_eq!(serials.len(), 4);
    assert!(Arc::ptr_eq(&dns, &ca.leaf_for("example.test").unwrap()));
    assert!(Arc::ptr_eq(&v6, &ca.leaf_for("::1").unwrap()));
    assert!(matches!(
        ca.leaf_for("not a host"),
        Err(PkiError::BadHost { .. })
    ));
    assert!(dns.keys_match().is_ok());
}

#[test]
fn leaves_verify_against_the_ca_for_their_name_only() {
    let dir = tempfile::tempdir().unwrap();
    let ca = LocalCa::open_or_create(dir.path()).unwrap();
    let verifier =
        rustls::client::WebPkiServerVerifier::builder_with_provider(roots(&ca), provider())
            .build()
            .unwrap();
    let now = UnixTime::now();
    for host in ["svc.example.test", "10.1.2.3", "::1"] {
        let leaf = ca.leaf_for(host).unwrap();
        let name = ServerName::try_from(host).unwrap();
        verifier
            .verify_server_cert(&leaf.cert[0], &leaf.cert[1..], &name, &[], now)
            .unwrap();
    }
    let leaf = ca.leaf_for("svc.example.test").unwrap();
    let other = ServerName::try_from("other.example.test").unwrap();
    assert!(verifier
        .verify_server_cert(&leaf.cert[0], &leaf.cert[1..], &other, &[], now)
        .is_err());
}

/// Drive a client and server connection to the end of the handshake in memory.
fn handshake(client: &mut Connection, server: &mut Connection) -> Result<(), rustls::Error> {
    fn pump(from: &mut Connection, to: &mut Connection) -> Result<(), rustls::Error> {
        let mut buf = Vec::new();
        while from.wants_write() {
            from.write_tls(&mut buf)
                .map_err(|e| rustls::Error::General(e.to_string()))?;
        }
        let mut rd = buf.as_slice();
        while !rd.is_empty() {
            to.read_tls(&mut rd)
                .map_err(|e| rustls::Error::General(e.to_string()))?;
            to.process_new_packets()?;
        }
        Ok(())
    }
    for _ in 0..16 {
        if !client.is_handshaking() && !server.is_handshaking() {
            return Ok(());
        }
        pump(client, server)?;
        pump(server, client)?;
    }
    Err(rustls::Error::General(
        "handshake did not finish in 16 rounds".into(),
    ))
}

fn connect(
    ca: &Arc<LocalCa>,
    name: &str,
    default_host: &str,
) -> Result<Vec<String>, rustls::Error> {
    let server_config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(LocalCaResolver {
            ca: ca.clone(),
            default_host: default_host.to_string(),
            only: None,
        }));
    let client_config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots(ca))
        .with_no_client_auth();
    let name = ServerName::try_from(name.to_string()).unwrap();
    let mut client =
        Connection::Client(rustls::ClientConnection::new(Arc::new(client_config), name).unwrap());
    let mut server =
        Connection::Server(rustls::ServerConnection::new(Arc::new(server_config)).unwrap());
    handshake(&mut client, &mut server)?;
    let presented = client.peer_certificates().unwrap_or_default();
    Ok(crate::cert::summarize(&presented[0]).unwrap().sans)
}

#[test]
fn resolver_serves_the_sni_host_or_the_default_host_without_sni() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Arc::new(LocalCa::open_or_create(dir.path()).unwrap());
    assert_eq!(
        connect(&ca, "api.example.test", "unused.test").unwrap(),
        ["DNS:api.example.test"]
    );
    // IP literals send no SNI: the default host decides.
    assert_eq!(
        connect(&ca, "127.0.0.1", "127.0.0.1").unwrap(),
        ["IP:127.0.0.1"]
    );
    // …and a default host that does not match what the client dialled fails verification.
    let err = connect(&ca, "127.0.0.1", "upstream.test").unwrap_err();
    assert!(matches!(err, rustls::Error::InvalidCertificate(_)), "{err}");
}

#[cfg(unix)]
#[test]
fn a_ca_others_could_change_is_refused_with_the_fix() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let ca_dir = dir.path().join("ca");
    let ca = LocalCa::open_or_create(&ca_dir).unwrap();
    assert_eq!(ca.key_mode(), Some(0o600));
    let dir_mode = std::fs::metadata(&ca_dir).unwrap().permissions().mode() & 0o777;
    assert_eq!(dir_mode, 0o700, "created by mtlscope: 0700");
    std::fs::set_permissions(ca.key_path(), std::fs::Permissions::from_mode(0o666)).unwrap();
    let e = LocalCa::open_or_create(&ca_dir).unwrap_err().to_string();
    assert!(
        e.contains("ca.key") && e.contains("0666") && e.contains("chmod 600"),
        "{e}"
    );
    std::fs::set_permissions(ca.key_path(), std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::set_permissions(&ca_dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let e = LocalCa::open_or_create(&ca_dir).unwrap_err().to_string();
    assert!(e.contains("0777") && e.contains("chmod go-w"), "{e}");
    // An existing loose directory is not silently tightened or used for a new CA either.
    let loose = dir.path().join("loose");
    std::fs::create_dir(&loose).unwrap();
    std::fs::set_permissions(&loose, std::fs::Permissions::from_mode(0o777)).unwrap();
    assert!(LocalCa::open_or_create(&loose).is_err());
    assert!(!loose.join("ca.key").exists());
}

#[test]
fn the_ca_lives_two_years_and_can_be_name_constrained() {
    let dir = tempfile::tempdir().unwrap();
    let ca =
        LocalCa::open_or_create_for(&dir.path().join("c"), &["internal.example".into()]).unwrap();
    let (_, x509) = x509_parser::parse_x509_certificate(ca.ca_der()).unwrap();
    let v = x509.validity();
    let days = (v.not_after.timestamp() - v.not_before.timestamp()) / 86_400;
    assert!(days <= 731, "{days} days");
    let nc = x509
        .name_constraints()
        .unwrap()
        .expect("name constraints present");
    let permitted = nc.value.permitted_subtrees.as_ref().unwrap();
    assert_eq!(permitted.len(), 1);
    assert!(format!("{:?}", permitted[0].base).contains("internal.example"));
    let e = LocalCa::open_or_create_for(&dir.path().join("c"), &["x.example".into()]).unwrap_err();
    assert!(
        e.to_string()
            .contains("--ca-names applies when the CA is created"),
        "{e}"
    );
}
