//! Replays every captured handshake under tests/data/handshakes through the wire parser, whole
//! and split at every byte boundary, and checks the facts of the named captures.

use mtlscope::facts::{
    AlertDescription, AlertLevel, Direction, EventKind, Initiator, Phase, TlsVersion,
};
use mtlscope::wire::{Dir, TapFacts, TapRole, WireParser};
use std::path::PathBuf;

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/handshakes")
}

/// The frames of a capture: (direction, bytes).
fn frames(bytes: &[u8]) -> Vec<(Dir, &[u8])> {
    let mut out = Vec::new();
    let mut rest = bytes;
    while let [d, hi, lo, tail @ ..] = rest {
        let len = usize::from(*hi) << 8 | usize::from(*lo);
        let Some(data) = tail.get(..len) else { break };
        let dir = if *d == 0 {
            Dir::ClientToServer
        } else {
            Dir::ServerToClient
        };
        out.push((dir, data));
        rest = &tail[len..];
    }
    out
}

/// Feed a capture, each frame cut into pieces of at most `piece` bytes; frame i is at i ms.
fn replay(bytes: &[u8], piece: usize) -> TapFacts {
    let mut p = WireParser::new();
    for (i, (dir, data)) in frames(bytes).into_iter().enumerate() {
        for chunk in data.chunks(piece.max(1)) {
            p.feed(dir, i as f64, chunk);
        }
    }
    p.facts(TapRole::Client)
}

/// Feed a capture with the whole stream of frames split once at `cut` bytes of frame data.
fn replay_cut(bytes: &[u8], cut: usize) -> TapFacts {
    let mut p = WireParser::new();
    let mut seen = 0usize;
    for (i, (dir, data)) in frames(bytes).into_iter().enumerate() {
        let at = cut.saturating_sub(seen).min(data.len());
        let (a, b) = data.split_at(at);
        p.feed(dir, i as f64, a);
        p.feed(dir, i as f64, b);
        seen += data.len();
    }
    p.facts(TapRole::Client)
}

fn load(name: &str) -> Vec<u8> {
    std::fs::read(corpus_dir().join(format!("{name}.tlscap"))).expect("capture exists")
}

fn all_captures() -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(corpus_dir())
        .expect("corpus dir")
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "tlscap"))
        .map(|p| {
            let name = p
                .file_stem()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            (name, std::fs::read(&p).expect("readable"))
        })
        .collect();
    out.sort();
    out
}

#[test]
fn the_corpus_has_the_named_captures() {
    let names: Vec<String> = all_captures().into_iter().map(|(n, _)| n).collect();
    for want in [
        "tls12-plain",
        "tls12-cr-cert",
        "tls12-cr-nocert",
        "tls13-plain",
        "tls13-cr-cert-pha",
        "tls13-hrr",
        "tls12-reneg-server-cr",
        "tls12-reneg-server-cr-nocert",
        "tls12-reneg-server-resumed",
        "tls12-reneg-client",
    ] {
        assert!(names.iter().any(|n| n == want), "missing capture {want}");
    }
}

#[test]
fn every_capture_parses_the_same_however_it_is_split() {
    for (name, bytes) in all_captures() {
        let whole = replay(&bytes, usize::MAX);
        assert!(whole.not_tls.is_none(), "{name}: {:?}", whole.not_tls);
        assert!(whole.client_hello.is_some(), "{name}: no ClientHello");
        for piece in 1..=7 {
            assert_eq!(replay(&bytes, piece), whole, "{name}: pieces of {piece}");
        }
        let total: usize = frames(&bytes).iter().map(|(_, d)| d.len()).sum();
        if bytes.len() <= 8 * 1024 {
            for cut in 0..=total {
                assert_eq!(replay_cut(&bytes, cut), whole, "{name}: split at {cut}");
            }
        }
    }
}

const CA: &str = "O=mtlscope corpus, CN=Corpus Client CA";

fn has_event(f: &TapFacts, name: &str) -> bool {
    f.events.iter().any(|e| e.kind.as_str() == name)
}

#[test]
fn tls12_handshake_facts() {
    let f = replay(&load("tls12-plain"), usize::MAX);
    assert_eq!(f.tls_version, Some(TlsVersion::Tls12));
    let hello = f.client_hello.clone().expect("hello");
    assert_eq!(hello.sni.as_deref(), Some("localhost"));
    assert!(!hello.offered_pha);
    assert!(!hello.signature_schemes.is_empty());
    assert_eq!(f.client_random.as_ref().map(String::len), Some(64));
    assert!(f.cert_request.is_none());
    assert!(f.client_chain.is_none());
    let server = f.server_chain.clone().expect("server chain");
    assert_eq!(server[0].subject, "CN=localhost");
    assert_eq!(server[0].issuer, CA);
    assert!(f.handshake_done_ms.is_some());
    for step in [
        "client_hello",
        "server_hello",
        "certificate",
        "server_hello_done",
    ] {
        assert!(has_event(&f, step), "missing {step}");
    }
    assert!(f.renegotiations.is_empty());
}

#[test]
fn tls12_certificate_request_and_client_chain() {
    let f = replay(&load("tls12-cr-cert"), usize::MAX);
    let cr = f.cert_request.clone().expect("certificate request");
    assert_eq!(cr.phase, Phase::Handshake);
    assert_eq!(cr.ca_names, Some(vec![CA.to_string()]));
    assert_eq!(cr.ca_names_der.len(), 1);
    assert!(!cr.signature_schemes.is_empty());
    let chain = f.client_chain.clone().expect("client chain");
    assert_eq!(chain.len(), 1);
    assert_eq!(chain[0].subject, "CN=corpus client");
    assert_eq!(chain[0].eku, [mtlscope::facts::ExtKeyUsage::ClientAuth]);
    assert!(f.handshake_done_ms.is_some());

    let w = f.into_wire();
    assert_eq!(w.sni.as_deref(), Some("localhost"));
    assert!(w.cert_request.is_some() && w.client_chain.is_some());
}

#[test]
fn tls12_no_certificate_gets_a_plaintext_fatal_alert() {
    let f = replay(&load("tls12-cr-nocert"), usize::MAX);
    assert_eq!(
        f.client_chain,
        Some(Vec::new()),
        "an empty Certificate message"
    );
    assert!(f.cert_request.is_some());
    assert!(f.handshake_done_ms.is_none());
    let alert = f.alerts.first().expect("an alert");
    assert_eq!(alert.code(), 40);
    assert_eq!(alert.description, AlertDescription::HandshakeFailure);
    assert_eq!(alert.level, AlertLevel::Fatal);
    assert_eq!(alert.direction, Direction::Received, "the server sent it");
    assert_eq!(alert.source, mtlscope::facts::AlertSource::Wire);
}

#[test]
fn tls13_hides_the_request_but_shows_pha_offer() {
    let plain = replay(&load("tls13-plain"), usize::MAX);
    assert_eq!(plain.tls_version, Some(TlsVersion::Tls13));
    assert!(!plain.client_hello.expect("hello").offered_pha);
    let pha = replay(&load("tls13-cr-cert-pha"), usize::MAX);
    assert_eq!(pha.tls_version, Some(TlsVersion::Tls13));
    assert!(pha.client_hello.clone().expect("hello").offered_pha);
    assert!(pha.cert_request.is_none(), "encrypted in TLS 1.3");
    assert!(pha.client_chain.is_none() && pha.server_chain.is_none());
    assert!(pha.into_wire().client_offered_pha);
}

#[test]
fn tls13_hello_retry_keeps_parsing_plaintext() {
    let f = replay(&load("tls13-hrr"), usize::MAX);
    assert!(has_event(&f, "hello_retry_request"));
    assert_eq!(f.tls_version, Some(TlsVersion::Tls13));
    assert!(
        !has_event(&f, "finished"),
        "no TLS 1.2 reading after a retry"
    );
    assert!(
        f.events
            .iter()
            .filter(|e| e.kind == EventKind::ClientHello)
            .count()
            == 2
    );
}

#[test]
fn server_renegotiation_with_certificate_request() {
    for name in ["tls12-reneg-server-cr", "tls12-reneg-server-cr-nocert"] {
        let f = replay(&load(name), usize::MAX);
        assert_eq!(f.renegotiations.len(), 1, "{name}");
        let r = &f.renegotiations[0];
        assert_eq!(r.initiated_by, Initiator::Server, "{name}");
        assert_eq!(
            r.outcome,
            Some(mtlscope::facts::RenegotiationOutcome::Completed),
            "{name}"
        );
        // Frame i is at i ms: application data in frame 4, HelloRequest in frame 5.
        assert_eq!(r.at_ms, 5.0, "{name}");
        assert_eq!(r.after_app_data_ms, Some(1.0), "{name}");
        let cr = f
            .cert_request
            .clone()
            .expect("inferred certificate request");
        assert_eq!(cr.phase, Phase::Renegotiation, "{name}");
        assert_eq!(cr.ca_names, None, "{name}: encrypted");
        assert_eq!(cr.at_ms, 7.0, "{name}: the server's second hello flight");
        assert!(f.last_post_handshake_ms.is_some_and(|t| t >= 8.0), "{name}");
        assert!(f.client_chain.is_none(), "{name}: encrypted");
    }
}

#[test]
fn renegotiations_without_certificate_request() {
    let resumed = replay(&load("tls12-reneg-server-resumed"), usize::MAX);
    assert_eq!(resumed.renegotiations.len(), 1);
    assert_eq!(resumed.renegotiations[0].initiated_by, Initiator::Server);
    assert!(resumed.cert_request.is_none(), "resumed: no request");
    let client = replay(&load("tls12-reneg-client"), usize::MAX);
    assert_eq!(client.renegotiations.len(), 1);
    let r = &client.renegotiations[0];
    assert_eq!(r.initiated_by, Initiator::Client);
    assert_eq!(
        r.outcome,
        Some(mtlscope::facts::RenegotiationOutcome::Completed)
    );
    assert!(client.cert_request.is_none());
}

#[test]
fn alert_direction_follows_the_role() {
    let bytes = load("tls12-cr-nocert");
    let mut p = WireParser::new();
    for (dir, data) in frames(&bytes) {
        p.feed(dir, 0.0, data);
    }
    assert_eq!(
        p.facts(TapRole::Client).alerts[0].direction,
        Direction::Received
    );
    assert_eq!(
        p.facts(TapRole::Server).alerts[0].direction,
        Direction::Sent
    );
}
