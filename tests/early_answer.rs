//! An upstream that answers before it has read the request body (a refusal before the upload,
//! a server that never reads it): the client gets the whole answer and ends its upload as it
//! would with that server directly, and the record keeps the excerpt of what the client sent.
//! Real curl uploads from a pipe, and the body leaves only once the upstream has answered.

mod common;

use common::Proxy;
use mtlscope::lab::echo::LabEcho;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::process::{Child, ChildStdin};

/// What the client sends, after the answer.
const BODY: &str = "user=ann&note=late";

/// What curl ended with: exit code, stdout (the body, then the status on a line of its own),
/// stderr.
struct Upload {
    code: Option<i32>,
    out: String,
    err: String,
}

/// `curl -T -` POSTing what the test writes into its stdin to `url`: the head goes out at once
/// (the length is unknown), the body when the test writes it.
fn start_upload(root: &std::path::Path, url: &str, http2: bool) -> (Child, ChildStdin) {
    let mut child = tokio::process::Command::new("curl")
        .args(["-sS", "--max-time", "20", "-o", "-", "-w", "\n%{http_code}"])
        .arg("--cacert")
        .arg(root)
        .args(["-H", "content-type: application/x-www-form-urlencoded"])
        // `-T -` streams stdin (`--data @-` reads it all before sending the head); no
        // `Expect: 100-continue`, so the body follows the head without waiting.
        .args(["-X", "POST", "-T", "-", "-H", "Expect:"])
        .arg(if http2 { "--http2" } else { "--http1.1" })
        .arg(url)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("curl");
    let stdin = child.stdin.take().expect("stdin");
    (child, stdin)
}

/// Wait (≤ 10 s) until `echo` has answered the upload's head.
async fn answered(echo: &LabEcho) {
    for _ in 0..1000 {
        if echo.answered() > 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the upstream never answered the upload's head");
}

/// Wait (≤ 10 s) until mtlscope, told to stop, has closed its listener: it is stopping.
async fn stopped_listening(port: u16) {
    for _ in 0..1000 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("mtlscope still accepts connections 10 s after SIGTERM");
}

/// Send `BODY` on `stdin`, end it, and wait for curl.
async fn finish_upload(child: Child, mut stdin: ChildStdin) -> Upload {
    // curl may have given up on the upload already; its exit code says so.
    let _ = stdin.write_all(BODY.as_bytes()).await;
    drop(stdin);
    let out = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .expect("curl within 30 s")
        .expect("curl output");
    Upload {
        code: out.status.code(),
        out: String::from_utf8_lossy(&out.stdout).into_owned(),
        err: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `mtlscope reverse` in front of `echo` (asking for a client certificate, which curl does not
/// send).
async fn reverse(pki: &mtlscope::pki::DevPki, echo: &LabEcho) -> Proxy {
    let args = common::reverse_args(pki, &echo.url(), &["--quiet"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Proxy::start(&args).await
}

async fn answered_before_the_body(http2: bool) {
    let (pki, _dir) = common::dev_pki();
    let echo = LabEcho::answering_before_the_body().await.unwrap();
    let mut p = reverse(&pki, &echo).await;
    let url = format!("https://localhost:{}/upload", p.port());
    let (child, stdin) = start_upload(pki.root_ca(), &url, http2);
    // The upstream answers at the head; only then does the body leave.
    answered(&echo).await;
    let r = finish_upload(child, stdin).await;
    // Before the fix an HTTP/2 client got RST_STREAM mid-upload: curl (92), the answer lost.
    assert_eq!(r.code, Some(0), "curl failed: {} {}", r.err, r.out);
    assert!(r.out.ends_with("\n200"), "{}", r.out);
    assert!(
        r.out.contains("\"uri\":\"/upload\""),
        "the whole answer: {}",
        r.out
    );
    assert!(
        r.out.contains("\"body_bytes\":null"),
        "answered unread: {}",
        r.out
    );
    let flow = p.flow().await;
    assert!(flow.error.is_none(), "{flow:#?}");
    assert_eq!(flow.response.as_ref().map(|r| r.status), Some(200));
    // The record waited for the client's body, which came after the answer.
    let request = flow.request.as_ref().expect("request");
    assert_eq!(request.body_excerpt.as_deref(), Some(BODY), "{flow:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http2_client_finishes_its_upload_after_an_early_answer() {
    answered_before_the_body(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http1_client_finishes_its_upload_after_an_early_answer() {
    answered_before_the_body(false).await;
}

/// A body sent with the head, to a server that reads it: the record carries it every time
/// (it was taken when the answer's head arrived, before the body had always been read).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_record_carries_the_body_sent_with_the_head() {
    let (pki, _dir) = common::dev_pki();
    let echo = LabEcho::start(None).await.unwrap();
    let mut p = reverse(&pki, &echo).await;
    for i in 0..20 {
        let r = common::Curl::new(format!("https://localhost:{}/form", p.port()))
            .cacert(pki.root_ca())
            .arg("--data")
            .arg(BODY)
            .run_async()
            .await;
        assert_eq!(r.status, 200, "request {i}: {r:?}");
        assert!(r.body.contains("\"body_bytes\":18"), "{}", r.body);
        let flow = p.flow().await;
        let body = flow
            .request
            .as_ref()
            .and_then(|r| r.body_excerpt.as_deref());
        assert_eq!(body, Some(BODY), "request {i}: {flow:#?}");
    }
}

/// Stopped (SIGTERM) while a client is still sending a body the upstream did not wait for: the
/// exchange's record, which waits for the body, is in the recording when mtlscope exits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_during_the_upload_still_writes_the_record_with_its_body() {
    let (pki, _dir) = common::dev_pki();
    let echo = LabEcho::answering_before_the_body().await.unwrap();
    let args = common::reverse_args(&pki, &echo.url(), &["--quiet"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut p = common::Mtlscope::start(&args);
    let url = format!("https://localhost:{}/upload", p.port());
    let (child, stdin) = start_upload(pki.root_ca(), &url, true);
    // The answer is made; the body has not been sent. Stop mtlscope now, then send the body.
    answered(&echo).await;
    p.signal("TERM");
    stopped_listening(p.port()).await;
    let r = finish_upload(child, stdin).await;
    assert_eq!(r.code, Some(0), "curl failed: {} {}", r.err, r.out);
    assert!(r.out.ends_with("\n200"), "{}", r.out);
    let records = tokio::task::block_in_place(|| p.exited_records());
    let exchange = records
        .iter()
        .find(|r| r["kind"] == "exchange")
        .unwrap_or_else(|| panic!("no exchange recorded: {records:#?}"));
    assert_eq!(exchange["request"]["body_excerpt"], BODY, "{exchange}");
}
