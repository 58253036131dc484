//! Clients that do not speak TLS to mtlscope's TLS port (a load balancer's health check sending
//! a lone newline, plain HTTP): recorded as `client-not-tls`, naming what was seen, never as a
//! server's handshake rejection.

mod common;

use common::{finding_ids, Mtlscope};
use std::io::{Read, Write};
use std::time::Duration;

fn send_raw(p: &Mtlscope, bytes: &[u8]) {
    let mut tcp = std::net::TcpStream::connect(("127.0.0.1", p.port())).expect("connect");
    tcp.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    tcp.write_all(bytes).expect("write");
    let _ = tcp.shutdown(std::net::Shutdown::Write);
    let mut rest = Vec::new();
    let _ = tcp.read_to_end(&mut rest);
}

#[test]
fn a_newline_and_plain_http_are_client_not_tls() {
    let (pki, _dir) = common::dev_pki();
    let server = pki.server().arg();
    let p = Mtlscope::start(&[
        "reverse",
        "--upstream",
        "https://localhost:9",
        "--server-cert",
        &server,
    ]);
    send_raw(&p, b"\n");
    send_raw(&p, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    let records = p.records(2);
    for r in &records {
        assert_eq!(finding_ids(r), vec!["client-not-tls"], "{r:#}");
        assert_eq!(r["kind"], "connection");
    }
    let evidence: Vec<String> = records
        .iter()
        .map(|r| r["findings"][0]["evidence"].to_string())
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
