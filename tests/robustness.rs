//! The non-negotiables of `mtlscope reverse` (in-process, its flows awaited typed), with real
//! curl and raw sockets as clients and the in-process lab server upstream: a bad or hostile connection ends
//! only itself, with a recorded reason, and the proxy keeps serving; bodies stream whole in both
//! directions on HTTP/1.1 and HTTP/2; only error bodies are excerpted, and boundedly; key logs
//! cover both legs; credentials stay out of records unless asked.

mod common;

use common::flows::{client, header, http_version, status, upstream};
use common::{Curl, CurlResult, Proxy};
use mtlscope::facts::{FailureKind, Flow, RecordKind};
use mtlscope::lab::upstream::{LabClientAuth, LabUpstream, LabUpstreamConfig};
use mtlscope::pki::load::load_certs;
use mtlscope::pki::{ClientCert, DevPki};
use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

/// Large transfers get more than curl's default 10 s on a shared 2-core machine.
const BULK_TIME: Duration = Duration::from_secs(60);
/// The most of an error body a record keeps.
const EXCERPT_LIMIT: usize = 4096;

/// The dev PKI, an upstream that wants a client certificate, and mtlscope in front of it.
struct Rig {
    /// The dev PKI (the proxy's server certificate, the identity it presents, the root).
    pki: DevPki,
    /// The lab server, kept alive for the proxy's lifetime.
    _upstream: LabUpstream,
    /// `mtlscope reverse` under test, in-process.
    proxy: Proxy,
    /// Holds the PKI and any files a test writes.
    dir: tempfile::TempDir,
}

/// Start the lab upstream (client certificate required, good identity presented) and
/// `mtlscope reverse` in front of it with `extra` flags.
async fn rig(extra: &[&str]) -> Rig {
    let dir = common::tmpdir();
    let pki = DevPki::generate(&dir.path().join("pki")).expect("dev pki");
    rig_with(pki, dir, extra).await
}

async fn rig_with(pki: DevPki, dir: tempfile::TempDir, extra: &[&str]) -> Rig {
    let upstream = LabUpstream::start(LabUpstreamConfig {
        server: Arc::new(pki.server().load().expect("server identity")),
        client_auth: LabClientAuth::Required,
        client_cas: load_certs(pki.root_ca()).expect("root"),
        empty_ca_names: false,
        tls12_only: false,
        allowed_sha256: vec![],
        silent_reject: false,
    })
    .await
    .expect("lab upstream");
    let url = upstream.url();
    let server = pki.server().arg();
    let ca = pki.root_ca().display().to_string();
    let identity = pki.client(ClientCert::Good).arg();
    let mut args = vec![
        "reverse",
        "--upstream",
        url.as_str(),
        "--server-cert",
        server.as_str(),
        "--upstream-ca",
        ca.as_str(),
        "--identity",
        identity.as_str(),
        "--quiet",
    ];
    args.extend_from_slice(extra);
    let proxy = Proxy::start(&args).await;
    Rig {
        pki,
        _upstream: upstream,
        proxy,
        dir,
    }
}

impl Rig {
    /// curl for `path` on the proxy, trusting the dev root.
    fn curl(&self, path: &str) -> Curl {
        Curl::new(format!("https://localhost:{}{path}", self.proxy.port()))
            .cacert(self.pki.root_ca())
    }

    /// A plain GET / through the proxy must still answer 200 (the proxy kept serving).
    async fn still_serves(&self) {
        let r = self.curl("/").run_async().await;
        assert_eq!(
            (r.exit_code, r.status),
            (Some(0), 200),
            "the proxy should still serve: {r:?}"
        );
        assert!(r.body.contains("hello CN=client-good"), "{}", r.body);
    }

    /// Wait for the `n`th flow and return it.
    async fn last_record(&mut self, n: usize) -> Flow {
        let mut records = self.proxy.flows(n).await;
        assert_eq!(records.len(), n, "{records:#?}");
        records.pop().expect("a flow")
    }
}

fn sha256(bytes: &[u8]) -> Vec<u8> {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes)
        .as_ref()
        .to_vec()
}

/// `n` printable bytes from a fixed xorshift sequence: incompressible enough to be a real
/// stream, and ASCII so curl's body comes back byte-exact through `CurlResult::body`.
fn ascii_noise(n: usize) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            ALPHABET[(x % ALPHABET.len() as u64) as usize]
        })
        .collect()
}

/// The value of the recorded request header `name`.
fn request_header(record: &Flow, name: &str) -> Option<String> {
    header(&record.request.as_ref()?.headers, name).map(String::from)
}

/// The HTTP version curl speaks on the client leg.
#[derive(Clone, Copy, Debug)]
enum Http {
    /// `--http1.1`.
    One,
    /// `--http2` (negotiated by ALPN).
    Two,
}

impl Http {
    fn apply(self, curl: Curl) -> Curl {
        match self {
            Http::One => curl.http1_1(),
            Http::Two => curl.arg("--http2"),
        }
    }

    /// What the record's `request.version` says.
    fn recorded(self) -> &'static str {
        match self {
            Http::One => "HTTP/1.1",
            Http::Two => "HTTP/2.0",
        }
    }
}

/// A relayed 200 carries no excerpt, no diagnosis and no error.
#[track_caller]
fn assert_clean_200(r: &CurlResult, record: &Flow) {
    assert_eq!(record.kind, RecordKind::Exchange, "{record:#?}");
    assert_eq!(status(record), 200, "{record:#?}");
    assert!(
        record
            .response
            .as_ref()
            .is_some_and(|r| r.body_excerpt.is_none()),
        "a 200 is not excerpted: {:#?}",
        record.response
    );
    assert!(record.error.is_none(), "{record:#?}");
    assert!(r.header("mtlscope-diagnosis").is_none(), "{}", r.headers);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_request_head_over_http1_gets_431_and_ends_only_its_connection() {
    let mut rig = rig(&[]).await;
    let big = format!("X-Big: {}", "a".repeat(100 * 1024));
    let r = rig.curl("/").http1_1().header(&big).run_async().await;
    assert_eq!(r.status, 431, "{r:?}");
    let record = rig.last_record(1).await;
    assert_eq!(record.kind, RecordKind::Connection, "{record:#?}");
    let error = record.error.as_deref().unwrap_or_default();
    assert!(error.contains("too large"), "{record:#?}");
    rig.still_serves().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_20_kib_request_head_is_relayed_on_http1_and_http2_alike() {
    // One head limit for both protocols: HTTP/2's library default (16 KiB) would make an h2
    // client refuse a request the same proxy relays over HTTP/1.1.
    let mut rig = rig(&[]).await;
    let big = format!("X-Big: {}", "b".repeat(20 * 1024));
    for (i, http) in [Http::One, Http::Two].into_iter().enumerate() {
        let r = http.apply(rig.curl("/").header(&big)).run_async().await;
        assert_eq!((r.exit_code, r.status), (Some(0), 200), "{http:?}: {r:?}");
        let record = rig.last_record(i + 1).await;
        assert_eq!(http_version(&record), http.recorded(), "{record:#?}");
        assert_clean_200(&r, &record);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_client_is_ended_by_the_handshake_timeout() {
    let mut rig = rig(&["--timeout", "1"]).await;
    let addr = rig.proxy.addr.clone();
    let silent = tokio::task::spawn_blocking(move || std::net::TcpStream::connect(&addr))
        .await
        .expect("connect task")
        .expect("connect");
    let reader = tokio::task::spawn_blocking(move || {
        let mut s = silent;
        s.set_read_timeout(Some(Duration::from_secs(15)))?;
        let mut buf = [0u8; 64];
        s.read(&mut buf)
    });
    // Another client is served while the silent one holds its connection open.
    rig.still_serves().await;
    match reader.await.expect("reader task") {
        Ok(0) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        other => panic!("the proxy should have closed the silent connection: {other:?}"),
    }
    let record = rig
        .proxy
        .find("for the silent connection", |r| {
            r.kind == RecordKind::Connection
        })
        .await;
    assert!(record.request.is_none());
    let leg = client(&record);
    assert_eq!(
        leg.failure.as_ref().map(|f| f.kind),
        Some(FailureKind::TimedOut),
        "{leg:#?}"
    );
    let error = record.error.as_deref().unwrap_or_default();
    assert!(error.contains("did not complete"), "{record:#?}");
    rig.still_serves().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_that_dies_mid_response_is_recorded_as_a_failed_body() {
    for http in [Http::One, Http::Two] {
        let mut rig = rig(&[]).await;
        let r = http.apply(rig.curl("/die")).run_async().await;
        assert_eq!(r.status, 200, "{http:?}: {r:?}");
        // The head promised 1 MiB; the client must not believe it got it.
        assert!(
            r.exit_code != Some(0) && r.body.len() < 1024 * 1024,
            "{http:?}: curl exit {:?}, {} bytes",
            r.exit_code,
            r.body.len()
        );
        let record = rig.last_record(1).await;
        assert_eq!(record.kind, RecordKind::Exchange, "{record:#?}");
        assert_eq!(status(&record), 200);
        let error = record.error.as_deref().unwrap_or_default();
        assert!(error.contains("body failed"), "{http:?}: {record:#?}");
        // The upstream leg says how it ended, too.
        assert!(
            upstream(&record).error.is_some(),
            "{http:?}: {:#?}",
            record.upstream_leg
        );
        rig.still_serves().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_leaves_mid_body_ends_only_its_exchange() {
    const N: usize = 64 * 1024 * 1024;
    for http in [Http::One, Http::Two] {
        let mut rig = rig(&[]).await;
        // curl gives up as soon as it sees a Content-Length over its limit: mid-stream for us.
        let curl = rig
            .curl(&format!("/big?n={N}"))
            .arg("--max-filesize")
            .arg("1000000");
        let r = http.apply(curl).run_async().await;
        assert_eq!(
            r.exit_code,
            Some(63),
            "{http:?}: curl should give up: {r:?}"
        );
        let record = rig.last_record(1).await;
        assert_eq!(record.kind, RecordKind::Exchange, "{record:#?}");
        assert_eq!(status(&record), 200);
        let error = record.error.as_deref().unwrap_or_default();
        assert!(error.contains("stopped reading"), "{http:?}: {record:#?}");
        rig.still_serves().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_mib_posted_to_echo_come_back_intact_on_http1_and_http2() {
    let mut rig = rig(&[]).await;
    let sent = ascii_noise(4 * 1024 * 1024);
    let file = rig.dir.path().join("upload.bin");
    std::fs::write(&file, &sent).expect("write upload");
    for (i, http) in [Http::One, Http::Two].into_iter().enumerate() {
        let curl = rig
            .curl("/echo")
            .arg("--data-binary")
            .arg(format!("@{}", file.display()))
            .header("Content-Type: application/octet-stream")
            .max_time(BULK_TIME);
        let r = http.apply(curl).run_async().await;
        assert_eq!(
            (r.exit_code, r.status),
            (Some(0), 200),
            "{http:?}: {}",
            r.stderr
        );
        assert_eq!(r.body.len(), sent.len(), "{http:?}");
        assert_eq!(sha256(r.body.as_bytes()), sha256(&sent), "{http:?}");
        let record = rig.last_record(i + 1).await;
        assert_eq!(
            record.request.as_ref().map(|q| q.method.as_str()),
            Some("POST")
        );
        assert_eq!(http_version(&record), http.recorded(), "{record:#?}");
        assert_clean_200(&r, &record);
    }
    rig.still_serves().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_mib_streamed_down_arrive_whole_on_http1_and_http2() {
    const N: usize = 8 * 1024 * 1024;
    let mut rig = rig(&[]).await;
    for (i, http) in [Http::One, Http::Two].into_iter().enumerate() {
        let curl = rig.curl(&format!("/big?n={N}")).max_time(BULK_TIME);
        let r = http.apply(curl).run_async().await;
        assert_eq!(
            (r.exit_code, r.status),
            (Some(0), 200),
            "{http:?}: {}",
            r.stderr
        );
        assert_eq!(r.body.len(), N, "{http:?}");
        let expected: Vec<u8> = (0..N).map(|i| b'a' + (i % 26) as u8).collect();
        assert!(
            r.body.as_bytes() == expected.as_slice(),
            "{http:?}: body differs"
        );
        let record = rig.last_record(i + 1).await;
        assert_eq!(http_version(&record), http.recorded(), "{record:#?}");
        assert_clean_200(&r, &record);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_error_body_is_relayed_whole_and_excerpted_boundedly() {
    const N: usize = 20_000;
    let mut rig = rig(&[]).await;
    let r = rig
        .curl(&format!("/big?n={N}&status=404"))
        .run_async()
        .await;
    assert_eq!((r.exit_code, r.status), (Some(0), 404), "{}", r.stderr);
    assert_eq!(r.body.len(), N, "the client gets the whole error body");
    let record = rig.last_record(1).await;
    assert_eq!(status(&record), 404);
    let excerpt = record
        .response
        .as_ref()
        .and_then(|r| r.body_excerpt.as_deref())
        .expect("an error body is excerpted");
    assert!(
        !excerpt.is_empty() && excerpt.len() <= EXCERPT_LIMIT,
        "excerpt of {} bytes",
        excerpt.len()
    );
    assert!(
        r.body.starts_with(excerpt),
        "the excerpt is the body's start"
    );
    assert!(record.error.is_none(), "{record:#?}");
    rig.still_serves().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keylog_has_both_legs_in_nss_format_and_is_private() {
    let dir = common::tmpdir();
    let pki = DevPki::generate(&dir.path().join("pki")).expect("dev pki");
    let keylog = dir.path().join("keys.log");
    let keylog_arg = keylog.display().to_string();
    let mut rig = rig_with(pki, dir, &["--keylog", &keylog_arg]).await;
    let r = rig.curl("/").run_async().await;
    assert_eq!(r.status, 200, "{r:?}");
    rig.last_record(1).await;

    let text = std::fs::read_to_string(&keylog).expect("key log written");
    let mut randoms = std::collections::BTreeSet::new();
    let mut lines = 0;
    for line in text.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        assert_eq!(fields.len(), 3, "{line:?}");
        let (label, random, secret) = (fields[0], fields[1], fields[2]);
        assert!(
            !label.is_empty()
                && label
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'),
            "{line:?}"
        );
        let hex = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_hexdigit());
        assert!(random.len() == 64 && hex(random), "{line:?}");
        assert!(hex(secret) && secret.len() % 2 == 0, "{line:?}");
        randoms.insert(random.to_string());
        lines += 1;
    }
    assert!(lines >= 2, "{text}");
    assert!(
        randoms.len() >= 2,
        "one client random per leg expected, got {randoms:?}"
    );
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&keylog)
            .expect("stat key log")
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600, "key log mode {mode:o}");
    rig.still_serves().await;
}

/// One request carrying credentials; the recorded request.
async fn credentials_record(rig: &mut Rig) -> (CurlResult, Flow) {
    let r = rig
        .curl("/")
        .header("Authorization: Basic dXNlcjpwYXNz")
        .header("Cookie: a=b")
        .run_async()
        .await;
    assert_eq!((r.exit_code, r.status), (Some(0), 200), "{r:?}");
    let record = rig.last_record(1).await;
    (r, record)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_are_redacted_unless_no_redact() {
    let mut redacting = rig(&[]).await;
    let (r, record) = credentials_record(&mut redacting).await;
    assert_eq!(
        request_header(&record, "authorization").as_deref(),
        Some("<redacted>"),
        "{record:#?}"
    );
    assert_eq!(
        request_header(&record, "cookie").as_deref(),
        Some("<redacted>")
    );
    let text = serde_json::to_string(&record).expect("json");
    assert!(!text.contains("dXNlcjpwYXNz"), "{text}");
    assert!(!text.contains("a=b"), "{text}");
    assert_clean_200(&r, &record);

    let mut open = rig(&["--no-redact"]).await;
    let (r, record) = credentials_record(&mut open).await;
    assert_eq!(
        request_header(&record, "authorization").as_deref(),
        Some("Basic dXNlcjpwYXNz"),
        "{record:#?}"
    );
    assert_eq!(request_header(&record, "cookie").as_deref(), Some("a=b"));
    assert_clean_200(&r, &record);
}

/// A client still sending a refused head (the refusal goes out after 64 KiB) can send the rest
/// and then read the 431, as with nginx: the connection lingers instead of closing on unread
/// bytes, whose reset would make the client's next write fail ("curl: (55) Send failure").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_still_sending_a_refused_head_reads_the_431() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut rig = rig(&[]).await;
    let mut tls = common::inproc::connect(&rig.pki, rig.proxy.port(), &[b"http/1.1"]).await;
    let head = format!(
        "GET / HTTP/1.1\r\nHost: localhost\r\nX-Big: {}",
        "a".repeat(80 * 1024)
    );
    tls.write_all(head.as_bytes()).await.expect("first part");
    // mtlscope has refused the head and ended the connection (its record is written then); the
    // client has not noticed and sends on.
    let record = rig.last_record(1).await;
    let sent_on = tls.write_all(&[b'a'; 32 * 1024]).await;
    let sent_on = match sent_on {
        Ok(()) => tls.write_all(b"\r\n\r\n").await,
        e => e,
    };
    assert!(sent_on.is_ok(), "writing after the refusal: {sent_on:?}");
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), tls.read_to_end(&mut answer)).await;
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 431"), "{read:?} {text}");
    assert!(
        record
            .error
            .as_deref()
            .unwrap_or_default()
            .contains("too large"),
        "{record:#?}"
    );
    rig.still_serves().await;
}
