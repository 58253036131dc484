//! Clients that do not speak TLS to mtlscope's TLS port (a load balancer's health check sending
//! a lone newline, plain HTTP): recorded as `client-not-tls`, naming what was seen, never as a
//! server's handshake rejection.

mod common;

use common::flows::ids;
use common::Proxy;
use mtlscope::facts::{FindingId, RecordKind};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn send_raw(p: &Proxy, bytes: &[u8]) {
    let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", p.port()))
        .await
        .expect("connect");
    tcp.write_all(bytes).await.expect("write");
    let _ = tcp.shutdown().await;
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut rest)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newline_and_plain_http_are_client_not_tls() {
    let (pki, _dir) = common::dev_pki();
    let server = pki.server().arg();
    let mut p = Proxy::start(&[
        "reverse",
        "--upstream",
        "https://localhost:9",
        "--server-cert",
        &server,
    ])
    .await;
    send_raw(&p, b"\n").await;
    send_raw(&p, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let records = p.flows(2).await;
    for r in &records {
        assert_eq!(ids(r), vec![FindingId::ClientNotTls], "{r:#?}");
        assert_eq!(r.kind, RecordKind::Connection);
    }
    let evidence: Vec<String> = records
        .iter()
        .map(|r| r.findings[0].evidence.join("\n"))
        .collect();
    assert!(
        evidence.iter().any(|e| e.contains("0a")),
        "the newline is named: {evidence:?}"
    );
    assert!(
        evidence.iter().any(|e| e.contains("plain HTTP")),
        "the request line is named: {evidence:?}"
    );
}
