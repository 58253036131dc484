//! A recording written by mtlscope before events, alerts, HTTP versions and key usages became
//! enums (`tests/data/recordings/before-typed-facts.jsonl`: reverse with each dev identity,
//! observe of TLS 1.2 with and without a certificate, analyze of a capture) reads into the
//! typed facts and writes back as the same JSON. (That it draws the same ladders as that binary
//! did is checked in `render/ladder_tests.rs`.)

use super::{AlertDescription, EventKind, Flow, HttpVersion, Peer};

const RECORDING: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/recordings/before-typed-facts.jsonl"
));

fn flows() -> Vec<(serde_json::Value, Flow)> {
    RECORDING
        .lines()
        .map(|line| {
            let value: serde_json::Value = serde_json::from_str(line).expect("json");
            let flow: Flow = serde_json::from_str(line).expect("a Flow");
            (value, flow)
        })
        .collect()
}

#[test]
fn an_old_recording_round_trips_to_the_same_json() {
    let flows = flows();
    assert_eq!(flows.len(), 14);
    for (i, (value, flow)) in flows.iter().enumerate() {
        let again = serde_json::to_value(flow).expect("serialise");
        assert_eq!(&again, value, "record {}", i + 1);
    }
}

#[test]
fn the_old_recording_reads_into_known_kinds_with_senders() {
    let flows = flows();
    let legs = flows.iter().flat_map(|(_, f)| {
        [f.client_leg.as_ref(), f.upstream_leg.as_ref()]
            .into_iter()
            .flatten()
            .map(|l| (&l.events, &l.alerts))
            .chain(f.wire.as_ref().map(|w| (&w.events, &w.alerts)))
    });
    let (mut events, mut sent_by_client, mut sent_by_server, mut alerts) = (0, 0, 0, Vec::new());
    for (evs, als) in legs {
        for e in evs {
            events += 1;
            assert!(!matches!(e.kind, EventKind::Other(_)), "{e:?}");
            sent_by_client += usize::from(e.sender == Some(Peer::Client));
            sent_by_server += usize::from(e.sender == Some(Peer::Server));
        }
        alerts.extend(als.iter().map(|a| a.description));
    }
    assert!(events > 100, "{events}");
    assert!(sent_by_client > 5 && sent_by_server > 5);
    assert!(alerts.contains(&AlertDescription::CertificateRequired));
    assert!(alerts.contains(&AlertDescription::CloseNotify));
    for (_, f) in &flows {
        if let Some(q) = &f.request {
            assert!(
                !matches!(q.version, HttpVersion::Other(_)),
                "{:?}",
                q.version
            );
        }
    }
    let ekus = flows
        .iter()
        .filter_map(|(_, f)| f.upstream_leg.as_ref())
        .flat_map(|l| &l.chain)
        .flat_map(|c| &c.eku)
        .count();
    assert!(ekus > 0);
}
