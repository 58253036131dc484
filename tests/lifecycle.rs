//! mtlscope as a faithful middlebox over time: when a real nginx ends kept-alive connections
//! (`keepalive_requests`, `keepalive_timeout`) every request still gets nginx's answer and every
//! upstream leg is recorded; SIGTERM under load stops cleanly with a record per response; limits
//! and timeouts end connections with a recorded reason.
//!
//! The keep-alive limit (read back through the recording's reader), SIGTERM and `observe` run
//! the binary; the others run the proxy in-process. No test sleeps for a fixed time: each waits
//! for what it needs (nginx's close of an idle connection, responses under load, a held slot).

mod common;

use common::https_client::{HttpsClient, Proto};
use common::{Curl, Mtlscope, NginxConfig, Proxy, VerifyClient};
use mtlscope::facts::{FindingId, Flow, OwnLimit, RecordKind};

use mtlscope::pki::ClientCert;
use serde_json::Value;
use std::collections::BTreeSet;
use std::time::Duration;

type Setup = common::NginxLab;

/// nginx requiring a client certificate, with `extra` directives in its server block.
fn setup(extra: &str) -> Setup {
    Setup::start(VerifyClient::On, |c| NginxConfig {
        extra: extra.to_string(),
        ..c
    })
}

fn proxy(s: &Setup, more: &[&str]) -> Mtlscope {
    let id = s.pki.client(ClientCert::Good).arg();
    let mut args = vec!["--identity", &id, "--quiet"];
    args.extend(more);
    s.reverse(&args)
}

/// The recording read back through mtlscope's own reader (which resolves `legs_from`).
fn read_back(p: &Mtlscope) -> Vec<mtlscope::facts::Flow> {
    mtlscope::recording::read(&p.record)
        .expect("read recording")
        .records
        .into_iter()
        .map(|r| std::sync::Arc::unwrap_or_clone(r.flow))
        .collect()
}

/// Wait (≤ 20 s) for `n` exchange records.
fn exchanges(p: &Mtlscope, n: usize) -> Vec<mtlscope::facts::Flow> {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let flows: Vec<_> = read_back(p)
            .into_iter()
            .filter(|f| f.kind == mtlscope::facts::RecordKind::Exchange)
            .collect();
        if flows.len() >= n || std::time::Instant::now() > deadline {
            assert_eq!(flows.len(), n, "exchange records");
            return flows;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `reverse` in front of `s`'s nginx with the good identity, in-process.
async fn proxy_inproc(s: &Setup, more: &[&str]) -> Proxy {
    let id = s.pki.client(ClientCert::Good).arg();
    let mut args = vec!["--identity", &id, "--quiet"];
    args.extend(more);
    s.proxy(&args).await
}

/// Wait (≤ 10 s) until nginx has closed every kept-alive connection and mtlscope has seen it:
/// no TCP connection to or from nginx's `port` is established, or half-closed waiting for
/// mtlscope (`close-wait`, `last-ack`). What a client pausing past `keepalive_timeout` meets.
async fn nginx_closed_idle(port: u16) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    loop {
        tick.tick().await;
        let ss = std::process::Command::new("ss")
            .args(["-Htn", "state", "established", "state", "close-wait"])
            .args(["state", "last-ack"])
            .arg(format!("( sport = :{port} or dport = :{port} )"))
            .output()
            .expect("ss");
        if String::from_utf8_lossy(&ss.stdout).lines().count() == 0 {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "nginx kept its idle connections past 10 s: {}",
            String::from_utf8_lossy(&ss.stdout)
        );
    }
}

/// Every exchange was answered 200 by nginx over a leg on which nginx asked for, and got, the
/// certificate; returns the distinct upstream legs (connection, leg index).
fn check_all_answered_by_nginx(flows: &[Flow]) -> BTreeSet<(u64, u32)> {
    let mut legs = BTreeSet::new();
    for f in flows {
        assert_eq!(f.status(), Some(200), "{f:#?}");
        assert!(f.findings.is_empty(), "{:?}", f.findings);
        let up = f.upstream_leg.as_ref().expect("upstream leg resolved");
        // A leg that resumed (curl resumes its TLS session on a new connection, and the
        // upstream leg mirrors it) has no CertificateRequest on the wire; every other leg does.
        assert!(
            up.cert_request.is_some() || up.resumed,
            "nginx asked on every leg that did not resume: {up:#?}"
        );
        assert!(!up.chain.is_empty(), "mtlscope presented its identity");
        legs.insert((f.connection_id, f.upstream_leg_index.expect("leg index")));
    }
    legs
}

/// `n` GETs from one curl, which keeps its connection alive while the server lets it (and
/// opens a new one when told `Connection: close` or sent a GOAWAY); the status of each.
async fn curl_many(s: &Setup, p: &Mtlscope, n: usize, http2: bool) -> Vec<String> {
    let dir = common::tmpdir();
    let list = dir.path().join("urls.txt");
    let url = format!("https://localhost:{}/", p.port());
    let text: String = (0..n)
        .map(|_| format!("url = \"{url}\"\noutput = \"/dev/null\"\n"))
        .collect();
    std::fs::write(&list, text).expect("write url list");
    let mut cmd = std::process::Command::new("curl");
    cmd.arg("-sS")
        .arg("--cacert")
        .arg(s.pki.root_ca())
        .arg("-w")
        .arg("%{http_code}\n")
        .arg(if http2 { "--http2" } else { "--http1.1" })
        .arg("-K")
        .arg(&list);
    let out = common::process::run_bounded_async(cmd, None, Duration::from_secs(120)).await;
    assert_eq!(
        out.code,
        Some(0),
        "curl failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(String::from)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keepalive_requests_limit_never_shows_through_h1_or_h2() {
    let s = setup("keepalive_requests 100;");
    for http2 in [false, true] {
        let p = proxy(&s, &[]);
        let codes = curl_many(&s, &p, 3000, http2).await;
        assert_eq!(codes.len(), 3000, "http2={http2}");
        let bad: Vec<_> = codes.iter().filter(|c| *c != "200").collect();
        assert!(
            bad.is_empty(),
            "http2={http2}: {} non-200: {:?}",
            bad.len(),
            &bad[..bad.len().min(5)]
        );
        let flows = exchanges(&p, 3000);
        let legs = check_all_answered_by_nginx(&flows);
        assert!(
            legs.len() >= 30,
            "http2={http2}: every 100 requests a new upstream leg; got {}",
            legs.len()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_close_by_the_upstream_never_shows_through() {
    let s = setup("keepalive_timeout 1s;");
    for proto in [Proto::H1, Proto::H2] {
        let mut p = proxy_inproc(&s, &[]).await;
        let mut client = HttpsClient::new(s.pki.root_ca(), p.port(), proto);
        for i in 0..4 {
            if i > 0 {
                // The pause past nginx's keep-alive timeout: until nginx has closed.
                nginx_closed_idle(s.nginx.port()).await;
            }
            // A quick pair, then a pause past nginx's keep-alive timeout.
            for _ in 0..2 {
                let status = client
                    .get("/")
                    .await
                    .unwrap_or_else(|e| panic!("{proto:?} request {i}: {e}"));
                assert_eq!(status, 200);
            }
        }
        let flows: Vec<Flow> = p
            .flows(8)
            .await
            .into_iter()
            .filter(|f| f.kind == RecordKind::Exchange)
            .collect();
        assert_eq!(flows.len(), 8, "exchange flows");
        let legs = check_all_answered_by_nginx(&flows);
        assert!(
            legs.len() >= 4,
            "{proto:?}: a new upstream leg after each idle close: {legs:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_exits_zero_with_a_record_per_response() {
    let s = setup("");
    let mut p = proxy(&s, &["--grace", "5"]);
    let root = s.pki.root_ca().to_path_buf();
    let port = p.port();
    // Responses so far, all clients together: the stop comes once the load is under way.
    let (answered_tx, mut answered_rx) = tokio::sync::watch::channel(0usize);
    let answered_tx = std::sync::Arc::new(answered_tx);
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let root = root.clone();
        let answered = answered_tx.clone();
        tasks.push(tokio::spawn(async move {
            let mut client = HttpsClient::new(&root, port, Proto::H1);
            let mut seen = 0usize;
            let deadline = std::time::Instant::now() + Duration::from_secs(20);
            while std::time::Instant::now() < deadline {
                match client.get("/").await {
                    Ok(200) => {
                        seen += 1;
                        answered.send_modify(|n| *n += 1);
                    }
                    Ok(other) => panic!("status {other}"),
                    Err(_) => break,
                }
            }
            seen
        }));
    }
    // Every client has had answers (8 × 10 responses on average), so connections are in
    // flight when the signal comes.
    tokio::time::timeout(Duration::from_secs(20), answered_rx.wait_for(|n| *n >= 80))
        .await
        .expect("load under way within 20 s")
        .expect("clients running");
    p.signal("TERM");
    let status = tokio::task::block_in_place(|| p.wait_exit(Duration::from_secs(15)))
        .expect("mtlscope exited within the grace period");
    assert!(status.success(), "exit status {status:?}");
    let mut seen = 0;
    for t in tasks {
        seen += t.await.expect("client task");
    }
    assert!(seen > 0, "the clients got responses before the stop");
    let text = std::fs::read_to_string(&p.record).expect("recording");
    assert!(text.ends_with('\n'), "no torn last line");
    let mut answered = 0;
    for line in text.lines() {
        let v: Value = serde_json::from_str(line).expect("every line is a whole record");
        if v["kind"] == "exchange" && v["response"]["status"] == 200 {
            answered += 1;
        }
    }
    assert!(
        answered >= seen,
        "{seen} responses seen by clients, {answered} recorded"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_connection_over_the_limit_is_refused_and_recorded() {
    let s = setup("");
    let mut p = proxy_inproc(&s, &["--max-connections", "1", "--timeout", "5"]).await;
    // The first connection holds the only slot: its finished handshake shows it was accepted,
    // and it then sends no request.
    let _hold = common::inproc::connect(&s.pki, p.port(), &[b"http/1.1"]).await;
    let r = Curl::new(format!("https://localhost:{}/", p.port()))
        .cacert(s.pki.root_ca())
        .run_async()
        .await;
    assert_ne!(r.exit_code, Some(0), "the second connection is refused");
    let refused = p
        .find("refused by --max-connections", |r| {
            r.error
                .as_deref()
                .is_some_and(|e| e.contains("--max-connections 1"))
        })
        .await;
    assert_eq!(refused.kind, RecordKind::Connection);
    assert_eq!(
        common::flows::ids(&refused),
        vec![FindingId::ProxyLimitReached]
    );
    assert_eq!(refused.own_limit, Some(OwnLimit::MaxConnections { max: 1 }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_that_never_answers_gets_a_504_after_the_timeout() {
    use mtlscope::lab::upstream::{LabClientAuth, LabUpstream, LabUpstreamConfig};
    let (pki, _dir) = common::dev_pki();
    let up = LabUpstream::start(LabUpstreamConfig {
        server: std::sync::Arc::new(pki.server().load().expect("server identity")),
        client_auth: LabClientAuth::None,
        client_cas: vec![],
        empty_ca_names: false,
        tls12_only: false,
        allowed_sha256: vec![],
        silent_reject: false,
    })
    .await
    .expect("lab upstream");
    let upstream = up.url();
    let server = pki.server().arg();
    let ca = pki.root_ca().display().to_string();
    let mut p = Proxy::start(&[
        "reverse",
        "--upstream",
        &upstream,
        "--server-cert",
        &server,
        "--upstream-ca",
        &ca,
        "--timeout",
        "1",
    ])
    .await;
    let r = Curl::new(format!("https://localhost:{}/stall?ms=4000", p.port()))
        .cacert(pki.root_ca())
        .run_async()
        .await;
    assert_eq!(r.status, 504, "{}", r.body);
    let rec = p.flow().await;
    let error = common::flows::upstream(&rec)
        .error
        .as_deref()
        .unwrap_or_default();
    assert!(error.contains("no response head within 1 s"), "{rec:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn observe_closes_an_idle_tunnel_and_says_why() {
    use tokio::io::AsyncReadExt;
    let s = setup("");
    let upstream = format!("127.0.0.1:{}", s.nginx.port());
    let mut p = Proxy::start(&["observe", "--upstream", &upstream, "--idle-timeout", "1"]).await;
    let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", p.port()))
        .await
        .expect("connect");
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(Duration::from_secs(10), tcp.read(&mut buf))
        .await
        .expect("closed within 10 s")
        .unwrap_or(0);
    assert_eq!(n, 0, "the idle tunnel is closed");
    let rec = p.flow().await;
    let error = rec.error.as_deref().unwrap_or_default();
    assert!(error.contains("--idle-timeout"), "{rec:#?}");
}
