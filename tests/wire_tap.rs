//! The `Tap` stream wrapper: bytes pass through unchanged, and the facts it reports are the
//! parser's, with alert directions relative to the tap's role.

use mtlscope::facts::{AlertDescription, Direction, Phase};
use mtlscope::wire::{Tap, TapHandle, TapRole};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn frames(bytes: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut out = Vec::new();
    let mut rest = bytes;
    while let [d, hi, lo, tail @ ..] = rest {
        let len = usize::from(*hi) << 8 | usize::from(*lo);
        let Some(data) = tail.get(..len) else { break };
        out.push((*d, data.to_vec()));
        rest = &tail[len..];
    }
    out
}

/// Play a capture through a tap of `role` on one end of a duplex pipe; the other end plays the
/// peer. Returns the tap's handle after checking every byte arrived unchanged.
async fn play(name: &str, role: TapRole) -> TapHandle {
    let path = format!(
        "{}/tests/data/handshakes/{name}.tlscap",
        env!("CARGO_MANIFEST_DIR")
    );
    let bytes = std::fs::read(path).expect("capture");
    let (ours, mut peer) = tokio::io::duplex(256 * 1024);
    let handle = TapHandle::new(Instant::now(), role);
    let mut tap = Tap::new(ours, handle.clone());
    for (d, data) in frames(&bytes) {
        let from_client = d == 0;
        let we_write = from_client == (role == TapRole::Client);
        let mut got = vec![0u8; data.len()];
        let step = async {
            if we_write {
                tap.write_all(&data).await?;
                peer.read_exact(&mut got).await?;
            } else {
                peer.write_all(&data).await?;
                tap.read_exact(&mut got).await?;
            }
            Ok::<_, std::io::Error>(())
        };
        tokio::time::timeout(Duration::from_secs(5), step)
            .await
            .expect("in time")
            .expect("i/o");
        assert_eq!(got, data, "bytes pass through unchanged");
    }
    handle
}

#[tokio::test]
async fn server_role_tap_records_its_own_alert_as_sent() {
    let handle = play("tls12-cr-nocert", TapRole::Server).await;
    let f = handle.snapshot();
    assert_eq!(f.alerts.len(), 1);
    assert_eq!(f.alerts[0].direction, Direction::Sent);
    assert_eq!(f.alerts[0].description, AlertDescription::HandshakeFailure);
    assert_eq!(f.client_chain, Some(Vec::new()));
    assert_eq!(f.cert_request.map(|c| c.phase), Some(Phase::Handshake));
    assert!(handle.client_random().is_some());
}

#[tokio::test]
async fn client_role_tap_sees_the_renegotiation_and_its_time() {
    let handle = play("tls12-reneg-server-cr", TapRole::Client).await;
    let f = handle.snapshot();
    assert_eq!(
        f.alerts[0].direction,
        Direction::Sent,
        "the client's close_notify"
    );
    assert_eq!(f.renegotiations.len(), 1);
    let last = handle
        .last_post_handshake_ms()
        .expect("post-handshake records");
    assert!(last >= f.renegotiations[0].at_ms);
    assert!(f.bytes_client_to_server > 0 && f.bytes_server_to_client > 0);
}
