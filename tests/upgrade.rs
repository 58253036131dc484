//! A protocol upgrade (WebSocket's `Connection: upgrade`) through `mtlscope reverse` works as it
//! does without mtlscope: the 101 reaches the client with its `Upgrade` header, bytes then flow
//! both ways, and the exchange is recorded with status 101.

mod common;

use common::inproc;
use mtlscope::facts::{RecordKind, Severity};
use mtlscope::pki::DevPki;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const LIMIT: Duration = Duration::from_secs(10);

/// Read up to the end of an HTTP head.
async fn read_head<S: AsyncReadExt + Unpin>(s: &mut S) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 16 * 1024 {
        match s.read(&mut byte).await {
            Ok(1) => head.push(byte[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&head).into_owned()
}

/// A TLS server that answers an upgrade request with 101 and then echoes what it reads, and
/// any other request with 426.
async fn echo_upstream(pki: &DevPki) -> u16 {
    let acceptor = inproc::upstream_acceptor(pki, &[]);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let head = read_head(&mut tls).await.to_ascii_lowercase();
                if !(head.contains("connection: upgrade") && head.contains("upgrade: websocket")) {
                    let _ = tls
                        .write_all(b"HTTP/1.1 426 Upgrade Required\r\ncontent-length: 0\r\n\r\n")
                        .await;
                    return;
                }
                let _ = tls
                    .write_all(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
                    .await;
                let _ = tls.flush().await;
                let mut buf = [0u8; 1024];
                while let Ok(n) = tls.read(&mut buf).await {
                    if n == 0 || tls.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                    let _ = tls.flush().await;
                }
            });
        }
    });
    port
}

#[tokio::test]
async fn a_websocket_upgrade_goes_through_and_is_recorded() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let pki = DevPki::generate(dir.path()).unwrap();
    let up = echo_upstream(&pki).await;
    let mut m = inproc::reverse_to(&pki, up).await;
    // The client offers HTTP/1.1, as WebSocket clients do.
    let mut tls = inproc::connect(&pki, m.port(), &[b"http/1.1"]).await;
    tls.write_all(
        b"GET /chat HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
          Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    )
    .await
    .unwrap();
    let head = tokio::time::timeout(LIMIT, read_head(&mut tls))
        .await
        .expect("a response head in time");
    let lower = head.to_ascii_lowercase();
    assert!(lower.starts_with("http/1.1 101"), "{head}");
    assert!(lower.contains("upgrade: websocket"), "{head}");
    assert!(lower.contains("connection: upgrade"), "{head}");

    // Bytes flow both ways after the switch.
    for msg in [&b"ping 1\n"[..], b"and a second message\n"] {
        tls.write_all(msg).await.unwrap();
        tls.flush().await.unwrap();
        let mut got = vec![0u8; msg.len()];
        tokio::time::timeout(LIMIT, tls.read_exact(&mut got))
            .await
            .expect("the echo in time")
            .unwrap();
        assert_eq!(got, msg);
    }
    drop(tls);

    let exchange = m
        .find("for the exchange", |r| r.kind == RecordKind::Exchange)
        .await;
    assert_eq!(common::flows::status(&exchange), 101, "{exchange:#?}");
    assert!(
        exchange
            .findings
            .iter()
            .all(|f| f.severity != Severity::Error),
        "a working upgrade is no failure: {exchange:#?}"
    );
}
