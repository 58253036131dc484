//! The safe wrappers against a real OpenSSL server in-process (blocking, over a socket pair).

use super::*;
use crate::pki::{ClientCert, DevPki};
use openssl::pkey::PKey;
use openssl::ssl::{SslAcceptor, SslConnector, SslMethod, SslVerifyMode, SslVersion};
use openssl::x509::X509;
use std::os::unix::net::UnixStream;
use std::sync::Mutex;

/// Records what the callbacks reported; optionally presents a certificate or panics.
struct Seen {
    messages: Mutex<Vec<(bool, i32, Vec<u8>)>>,
    asked: Mutex<u32>,
    present: Option<(X509, PKey<openssl::pkey::Private>)>,
    panic: bool,
}

impl Observer for Seen {
    fn message(&self, sent: bool, content_type: i32, bytes: &[u8]) {
        self.messages
            .lock()
            .unwrap()
            .push((sent, content_type, bytes.to_vec()));
    }

    fn choose_certificate(&self, ssl: &mut SslRef) -> bool {
        *self.asked.lock().unwrap() += 1;
        if self.panic {
            panic!("observer panics");
        }
        if let Some((cert, key)) = &self.present {
            ssl.set_certificate(cert).unwrap();
            ssl.set_private_key(key).unwrap();
        }
        true
    }
}

fn pki() -> (DevPki, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    (DevPki::generate(dir.path()).unwrap(), dir)
}

fn client_identity(pki: &DevPki) -> (X509, PKey<openssl::pkey::Private>) {
    let files = pki.client(ClientCert::Good);
    let cert = X509::from_pem(&std::fs::read(&files.cert).unwrap()).unwrap();
    let key = PKey::private_key_from_pem(&std::fs::read(&files.key).unwrap()).unwrap();
    (cert, key)
}

/// Run a TLS 1.3 handshake against a server that asks for a certificate in the handshake, with
/// `observer` on the client; returns the subject the server saw, if any.
fn handshake(pki: &DevPki, observer: Arc<Seen>, pha: bool) -> Option<String> {
    let (a, b) = UnixStream::pair().unwrap();
    let server = pki.server();
    let mut acc = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls()).unwrap();
    acc.set_certificate_chain_file(&server.cert).unwrap();
    acc.set_private_key_file(&server.key, openssl::ssl::SslFiletype::PEM)
        .unwrap();
    acc.set_ca_file(pki.root_ca()).unwrap();
    acc.set_verify_callback(SslVerifyMode::PEER, |_, _| true);
    let acc = acc.build();
    let srv = std::thread::spawn(move || {
        let s = acc.accept(a).ok()?;
        s.ssl()
            .peer_certificate()
            .map(|c| format!("{:?}", c.subject_name()))
    });
    let mut ctx = SslConnector::builder(SslMethod::tls_client()).unwrap();
    ctx.set_verify(SslVerifyMode::NONE);
    ctx.set_min_proto_version(Some(SslVersion::TLS1_3)).unwrap();
    if pha {
        enable_post_handshake_auth(&mut ctx);
    }
    let mut ssl = ctx
        .build()
        .configure()
        .unwrap()
        .into_ssl("localhost")
        .unwrap();
    observe(&mut ssl, observer).unwrap();
    let mut tls = openssl::ssl::SslStream::new(ssl, b).unwrap();
    tls.connect().unwrap();
    // Read once so the server's verdict and tickets arrive; then close.
    let _ = tls.shutdown();
    srv.join().unwrap()
}

fn seen(present: Option<(X509, PKey<openssl::pkey::Private>)>, panic: bool) -> Arc<Seen> {
    Arc::new(Seen {
        messages: Mutex::new(Vec::new()),
        asked: Mutex::new(0),
        present,
        panic,
    })
}

#[test]
fn messages_are_seen_decrypted_and_the_certificate_is_chosen_when_asked() {
    let (pki, _d) = pki();
    let obs = seen(Some(client_identity(&pki)), false);
    let subject = handshake(&pki, obs.clone(), true);
    assert!(
        subject
            .as_deref()
            .unwrap_or_default()
            .contains("client-good"),
        "{subject:?}"
    );
    assert_eq!(*obs.asked.lock().unwrap(), 1);
    let msgs = obs.messages.lock().unwrap();
    let handshake: Vec<(bool, u8)> = msgs
        .iter()
        .filter(|(_, ct, b)| *ct == CONTENT_HANDSHAKE && !b.is_empty())
        .map(|(sent, _, b)| (*sent, b[0]))
        .collect();
    // ClientHello sent; the encrypted CertificateRequest (13) received in plaintext; our
    // Certificate (11) sent.
    assert_eq!(handshake.first(), Some(&(true, 1)), "{handshake:?}");
    assert!(handshake.contains(&(false, 13)), "{handshake:?}");
    assert!(handshake.contains(&(true, 11)), "{handshake:?}");
    // The ClientHello offers post_handshake_auth.
    let hello = &msgs
        .iter()
        .find(|(sent, ct, b)| *sent && *ct == CONTENT_HANDSHAKE && b.first() == Some(&1))
        .unwrap()
        .2;
    let parsed = crate::wire::msg::client_hello(&hello[4..]).expect("parses");
    assert!(parsed.offered_pha);
}

#[test]
fn without_the_switch_post_handshake_auth_is_not_offered() {
    let (pki, _d) = pki();
    let obs = seen(None, false);
    let subject = handshake(&pki, obs.clone(), false);
    assert_eq!(subject, None);
    let msgs = obs.messages.lock().unwrap();
    let hello = &msgs
        .iter()
        .find(|(sent, ct, b)| *sent && *ct == CONTENT_HANDSHAKE && b.first() == Some(&1))
        .unwrap()
        .2;
    assert!(
        !crate::wire::msg::client_hello(&hello[4..])
            .unwrap()
            .offered_pha
    );
}

#[test]
fn a_panicking_observer_answers_with_no_certificate_instead_of_crashing() {
    let (pki, _d) = pki();
    let obs = seen(Some(client_identity(&pki)), true);
    let subject = handshake(&pki, obs.clone(), false);
    assert_eq!(*obs.asked.lock().unwrap(), 1);
    assert_eq!(subject, None);
}
