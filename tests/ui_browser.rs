//! The web view in a real browser: Debian's headless Chromium driven through chromedriver
//! (WebDriver, via fantoccini). mtlscope runs as the binary with `--ui 127.0.0.1:0` in front of
//! an in-process lab server that asks for client certificates; curl is the client.
//!
//! The page keeps a Server-Sent Events stream open, so the tests poll the live DOM with a
//! deadline (a `--dump-dom` snapshot could not see it).

mod common;

use common::browser::{http_get, start_mtlscope, Browser, Proc};

use common::{wait_records, Curl};
use fantoccini::Locator;
use mtlscope::lab::upstream::{LabClientAuth, LabUpstream, LabUpstreamConfig};
use mtlscope::pki::load::load_certs;
use mtlscope::pki::{ClientCert, DevPki};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

/// A proxied lab server, a good flow (`/`, 200) and a failing one (`/app`, 403: no certificate
/// presented upstream), recorded, with the web view live.
struct Scene {
    ui: String,
    record: PathBuf,
    keylog: PathBuf,
    _mtlscope: Proc,
    _lab: LabUpstream,
    _pki: DevPki,
    dir: tempfile::TempDir,
}

async fn scene() -> Scene {
    let dir = common::tmpdir();
    let pki = DevPki::generate(&dir.path().join("pki")).expect("dev pki");
    let lab = LabUpstream::start(LabUpstreamConfig {
        server: Arc::new(pki.server().load().unwrap()),
        client_auth: LabClientAuth::Optional,
        client_cas: load_certs(pki.root_ca()).unwrap(),
        empty_ca_names: false,
        tls12_only: true,
        allowed_sha256: vec![],
        silent_reject: false,
    })
    .await
    .unwrap();
    let record = dir.path().join("flows.jsonl");
    let keylog = dir.path().join("keys.log");
    let (url, server, root) = (
        lab.url(),
        pki.server().arg(),
        pki.root_ca().display().to_string(),
    );
    let (record_s, keylog_s) = (record.display().to_string(), keylog.display().to_string());
    let (proc, addrs) = start_mtlscope(
        &[
            "reverse",
            "--upstream",
            &url,
            "--server-cert",
            &server,
            "--upstream-ca",
            &root,
            "--client-auth",
            "optional",
            "--client-ca",
            &root,
            "--listen",
            "127.0.0.1:0",
            "--record",
            &record_s,
            "--keylog",
            &keylog_s,
            "--ui",
            "127.0.0.1:0",
        ],
        &["web view on ", "listening on "],
    );
    let (ui, proxy) = (addrs[0].clone(), addrs[1].clone());
    let port = proxy.rsplit(':').next().unwrap();
    let good = pki.client(ClientCert::Good);
    let r = Curl::new(format!("https://localhost:{port}/"))
        .cacert(pki.root_ca())
        .identity(&good.cert, &good.key)
        .run_async()
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let r = Curl::new(format!("https://localhost:{port}/app"))
        .cacert(pki.root_ca())
        .run_async()
        .await;
    assert_eq!(r.status, 403, "{r:?}");
    wait_records(&record, 2);
    Scene {
        ui,
        record,
        keylog,
        _mtlscope: proc,
        _lab: lab,
        _pki: pki,
        dir,
    }
}

/// The failing record of the scene.
fn failing(record: &Path) -> Value {
    wait_records(record, 2)
        .into_iter()
        .find(|r| r["response"]["status"] == 403)
        .expect("the 403 record")
}

/// Wait for the list to show `n` flows including `GET /app`; return the `/app` row's id.
async fn wait_for_list(b: &Browser, n: usize) -> String {
    b.wait_for(
        "the live list to show both flows",
        &format!(
            "const rows = document.querySelectorAll('#flows tbody tr');
             const t = document.body.innerText;
             return rows.length >= {n} && t.includes('GET /app') && t.includes('GET /') && t.includes('403');"
        ),
    )
    .await;
    let id = b
        .js("return [...document.querySelectorAll('#flows tbody tr')]
                .find(r => r.innerText.includes('GET /app')).dataset.id")
        .await;
    id.as_str().expect("row id").to_string()
}

/// Open the failing flow from the list; check its ladder and findings against the record.
async fn open_failing_flow(b: &Browser, rec: &Value) {
    b.client
        .find(Locator::XPath(
            "//table[@id='flows']//a[contains(., 'GET /app')]",
        ))
        .await
        .expect("the /app row's link")
        .click()
        .await
        .expect("open the flow");
    let ca_name = rec["upstream_leg"]["cert_request"]["ca_names"][0]
        .as_str()
        .expect("the server's CA name")
        .to_string();
    let finding = rec["findings"][0]["id"]
        .as_str()
        .expect("a finding")
        .to_string();
    let requests = b
        .wait_for(
            "the ladder's CertificateRequest",
            "const s = [...document.querySelectorAll('#ladder g[data-kind=cert_request]')];
             return s.length ? s.map(g => g.getAttribute('data-leg') + ': ' + g.textContent) : null;",
        )
        .await;
    let upstream = requests
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .find(|t| t.starts_with("upstream: "))
        .unwrap_or_else(|| panic!("an upstream CertificateRequest: {requests}"));
    assert!(
        upstream.contains("CertificateRequest (handshake, 1 CA name)"),
        "{upstream}"
    );
    assert!(upstream.contains(&ca_name), "{upstream} lacks {ca_name}");
    let findings = b
        .wait_for(
            "the findings",
            "return document.getElementById('findings').textContent",
        )
        .await;
    assert!(
        findings.as_str().unwrap().contains(&finding),
        "{findings} lacks {finding}"
    );
    // The failing leg's story in order: the request goes up, the 403 comes back.
    let labels = b
        .js("return [...document.querySelectorAll('#ladder g text.label')].map(t => t.textContent)")
        .await;
    let labels: Vec<&str> = labels
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let pos = |s: &str| {
        labels
            .iter()
            .position(|l| l.starts_with(s))
            .unwrap_or_else(|| panic!("no {s:?} in the ladder: {labels:?}"))
    };
    assert!(pos("ClientHello") < pos("CertificateRequest"), "{labels:?}");
    assert!(pos("GET /app") < pos("HTTP 403"), "{labels:?}");
    client_leg_in_true_order(b).await;
}

/// The client leg (TLS 1.3, `--client-auth optional`, curl without a certificate) shows every
/// handshake message mtlscope sent or read, in the order they crossed the wire: the
/// ServerHello before the CertificateRequest, then mtlscope's Certificate, CertificateVerify
/// and Finished, then the client's (empty) Certificate and its Finished.
async fn client_leg_in_true_order(b: &Browser) {
    let steps = b
        .js("return [...document.querySelectorAll('#ladder g[data-leg=client]')].map(g =>
                [g.getAttribute('data-kind'), g.querySelector('text.label').textContent,
                 [...g.querySelectorAll('text.detail')].map(t => t.textContent).join(' | ')].join(' / '))")
        .await;
    let steps: Vec<&str> = steps
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let at = |what: &str, from: usize| {
        steps
            .iter()
            .skip(from)
            .position(|s| s.contains(what))
            .map(|i| i + from)
            .unwrap_or_else(|| {
                panic!("no {what:?} after step {from} on the client leg: {steps:#?}")
            })
    };
    let hello = at("/ ClientHello", 0);
    let server_hello = at("/ ServerHello", hello);
    let request = at("cert_request / CertificateRequest (handshake", server_hello);
    let own = at(
        "certificate / Certificate / mtlscope's server certificate",
        request,
    );
    let verify = at("/ CertificateVerify", own);
    let finished = at("/ Finished", verify);
    let empty = at(
        "certificate / Certificate / empty: no certificate",
        finished,
    );
    let client_finished = at("/ Finished / encrypted: read by mtlscope", empty);
    assert!(client_finished > empty, "{steps:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_list_ladder_compare_downloads_and_the_recording() {
    let s = scene().await;
    let rec = failing(&s.record);
    let b = Browser::start().await;
    b.client
        .goto(&format!("http://{}/", s.ui))
        .await
        .expect("load the page");
    let failing_id = wait_for_list(&b, 2).await;

    // Filters: the finding's id narrows the list to the failing flow.
    let finding = rec["findings"][0]["id"].as_str().unwrap();
    b.js(&format!(
        "const s = document.getElementById('filter-finding'); s.value = {}; s.dispatchEvent(new Event('change'));",
        json!(finding)
    ))
    .await;
    b.wait_for(
        "the finding filter",
        "return document.querySelectorAll('#flows tbody tr').length === 1",
    )
    .await;
    b.js("document.querySelector('.filters button').click()")
        .await;
    wait_for_list(&b, 2).await;
    let png = b.client.screenshot().await.expect("screenshot");
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("ui-list.png");
    std::fs::write(&out, png).expect("write the screenshot");

    open_failing_flow(&b, &rec).await;
    let png = b.client.screenshot().await.expect("screenshot");
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("ui-ladder.png");
    std::fs::write(&out, png).expect("write the screenshot");

    // Compare: tick both flows, differences first.
    b.client.goto(&format!("http://{}/#/", s.ui)).await.unwrap();
    wait_for_list(&b, 2).await;
    b.js(
        "document.querySelectorAll('#flows tbody input[type=checkbox]').forEach(c => c.click());
          document.getElementById('compare').click();",
    )
    .await;
    let diff = b
        .wait_for(
            "the comparison",
            "const d = document.getElementById('differences');
             return d ? d.nextElementSibling.textContent : null;",
        )
        .await;
    assert!(diff.as_str().unwrap().contains("response.status"), "{diff}");
    b.close().await;

    // Downloads: the flow as JSON Lines and HAR, and its two legs' key-log lines.
    let (st, jsonl) = http_get(&s.ui, &format!("/api/flows/{failing_id}/flow.jsonl"));
    assert_eq!(st, 200);
    let flow: Value = serde_json::from_str(jsonl.trim()).expect("one JSON line");
    assert_eq!(flow["request"]["uri"], "/app");
    let (st, har) = http_get(&s.ui, &format!("/api/flows/{failing_id}/flow.har"));
    assert_eq!(st, 200);
    let har: Value = serde_json::from_str(&har).expect("HAR is JSON");
    assert_eq!(har["log"]["entries"][0]["response"]["status"], 403);
    let (st, keys) = http_get(&s.ui, &format!("/api/flows/{failing_id}/keylog.txt"));
    assert_eq!(st, 200);
    let randoms: Vec<String> = ["client_leg", "upstream_leg"]
        .iter()
        .map(|l| {
            flow[l]["client_random"]
                .as_str()
                .expect("client_random")
                .to_lowercase()
        })
        .collect();
    for r in &randoms {
        assert!(
            keys.to_lowercase().contains(r.as_str()),
            "no key-log line for {r}:\n{keys}"
        );
    }
    let all = std::fs::read_to_string(&s.keylog).unwrap();
    assert!(
        keys.lines().count() < all.lines().count(),
        "only this flow's lines"
    );

    // The same recording, shown by `mtlscope ui FILE`.
    let rec_s = s.record.display().to_string();
    let (_viewer, addrs) = start_mtlscope(
        &["ui", &rec_s, "--listen", "127.0.0.1:0"],
        &["listening on "],
    );
    let b = Browser::start().await;
    b.client
        .goto(&format!("http://{}/", addrs[0]))
        .await
        .unwrap();
    wait_for_list(&b, 2).await;
    open_failing_flow(&b, &rec).await;

    // `report --html` draws the same ladder as SVG.
    let html = Path::new(env!("CARGO_TARGET_TMPDIR")).join("ui-report.html");
    let out = Command::new(env!("CARGO_BIN_EXE_mtlscope"))
        .args(["report", &rec_s, "--html"])
        .arg(&html)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    b.client
        .goto(&format!("file://{}", html.display()))
        .await
        .unwrap();
    let svg = b
        .wait_for(
            "the report's ladder",
            "const s = document.querySelectorAll('details.fail svg.ladder');
             return s.length ? s[0].textContent : null;",
        )
        .await;
    let svg = svg.as_str().unwrap();
    assert!(
        svg.contains("CertificateRequest (handshake, 1 CA name)"),
        "{svg}"
    );
    assert!(svg.contains(
        rec["upstream_leg"]["cert_request"]["ca_names"][0]
            .as_str()
            .unwrap()
    ));
    let png = b.client.screenshot().await.unwrap();
    std::fs::write(html.with_extension("png"), png).unwrap();
    b.close().await;
    drop(s.dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_values_in_a_recording_are_shown_as_text_and_nothing_runs() {
    let s = scene().await;
    let mut rec = failing(&s.record);
    // The good flow's client presented a certificate: give its chain to the failing flow.
    let good = wait_records(&s.record, 2)
        .into_iter()
        .find(|r| r["response"]["status"] == 200)
        .expect("the 200 record");
    rec["client_leg"]["chain"] = good["client_leg"]["chain"].clone();
    let subject = "CN=<script>window.__pwned=1</script>\"'\u{7}\u{1b}[31m";
    let header = "\"><img src=x onerror=\"window.__pwned=2\">";
    rec["client_leg"]["sni"] = json!("<b>bold</b>.example");
    rec["client_leg"]["chain"][0]["subject"] = json!(subject);
    rec["client_leg"]["chain"][0]["issuer"] = json!("<iframe src=javascript:window.__pwned=3>");
    rec["request"]["headers"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "x-evil", "value": header}));
    rec["response"]["body_excerpt"] = json!("</pre><script>window.__pwned=4</script>\r\nline 2");
    rec["findings"][0]["evidence"] = json!(["<svg onload=window.__pwned=5>"]);
    let file = s.dir.path().join("hostile.jsonl");
    std::fs::write(&file, format!("{rec}\n")).unwrap();

    let file_s = file.display().to_string();
    let (_viewer, addrs) = start_mtlscope(
        &["ui", &file_s, "--listen", "127.0.0.1:0"],
        &["listening on "],
    );
    let b = Browser::start().await;
    b.client
        .goto(&format!("http://{}/", addrs[0]))
        .await
        .unwrap();
    b.wait_for(
        "the hostile flow in the list",
        "return document.body.innerText.includes('<b>bold</b>.example')",
    )
    .await;
    b.client
        .find(Locator::XPath("//table[@id='flows']//a"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    b.wait_for(
        "the ladder",
        "return document.querySelectorAll('#ladder g[data-kind=certificate]').length > 0",
    )
    .await;
    let text = b.js("return document.body.textContent").await;
    let text = text.as_str().unwrap();
    for shown in [
        "<script>window.__pwned=1</script>",
        header,
        "<iframe src=javascript:window.__pwned=3>",
        "</pre><script>window.__pwned=4</script>",
        "<svg onload=window.__pwned=5>",
    ] {
        assert!(text.contains(shown), "{shown:?} is not shown as text");
    }
    let injected = b
        .js("return {
                pwned: window.__pwned === undefined ? null : window.__pwned,
                scripts: [...document.querySelectorAll('script')].map(s => s.getAttribute('src')),
                elements: document.querySelectorAll('img, iframe, [onload], [onerror]').length
                    + [...document.querySelectorAll('b')].filter(b => b.textContent === 'bold').length,
             }")
        .await;
    assert_eq!(
        injected,
        json!({"pwned": null, "scripts": ["/app.js"], "elements": 0}),
        "hostile values became markup"
    );
    b.close().await;
}

/// `ui FILE` over a two-run keep-alive recording: the list is paged by the server, counts and
/// filters cover the whole file, and a compact record's flow page has its legs back. Then the
/// recording's HAR export, parsed by the page's JavaScript with the checks a browser's HAR
/// import makes (dates, URLs, numbers, name/value lists), entry by entry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recordings_are_paged_from_the_file_and_their_har_parses_in_chromium() {
    let rec = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/views/small.jsonl");
    let rec_s = rec.display().to_string();
    let (_viewer, addrs) = start_mtlscope(
        &["ui", &rec_s, "--listen", "127.0.0.1:0"],
        &["listening on "],
    );
    let b = Browser::start().await;
    b.client
        .goto(&format!("http://{}/", addrs[0]))
        .await
        .unwrap();
    b.wait_for(
        "the first page of the recording",
        "const t = document.getElementById('shown');
         return t && t.textContent.includes('records 1–80 of 80 matching (80 in the recording)')
             && document.querySelectorAll('#flows tbody tr').length === 80;",
    )
    .await;
    // Counts over the whole file; a finding chip filters on the server.
    b.client
        .find(Locator::XPath(
            "//div[@id='counts']//button[contains(., 'no-client-cert × 5')]",
        ))
        .await
        .expect("the no-client-cert count")
        .click()
        .await
        .unwrap();
    b.wait_for(
        "the filtered list",
        "return document.getElementById('shown').textContent.includes('of 5 matching')
             && document.querySelectorAll('#flows tbody tr.failed').length === 5;",
    )
    .await;
    // Record 5 is compact (`legs_from`): its page shows the legs of the exchange it names.
    b.client
        .goto(&format!("http://{}/#/flow/5", addrs[0]))
        .await
        .unwrap();
    b.wait_for(
        "the compact record's ladder",
        "return document.querySelectorAll('#ladder g[data-kind=cert_request]').length > 0",
    )
    .await;

    let dir = common::tmpdir();
    let har = dir.path().join("small.har");
    let out = Command::new(env!("CARGO_BIN_EXE_mtlscope"))
        .args(["export", &rec_s, "--har"])
        .arg(&har)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&har).unwrap();
    let checked = b
        .client
        .execute(
            "const har = JSON.parse(arguments[0]);
             const bad = [];
             const nv = (list, where) => Array.isArray(list) && list.every(h =>
                 typeof h.name === 'string' && typeof h.value === 'string') || bad.push(where);
             if (har.log.version !== '1.2' || !Array.isArray(har.log.entries)) bad.push('log');
             har.log.entries.forEach((e, i) => {
               if (isNaN(new Date(e.startedDateTime).getTime())) bad.push(i + ' startedDateTime');
               if (typeof e.time !== 'number' || e.time < 0) bad.push(i + ' time');
               try { new URL(e.request.url); } catch (_) { bad.push(i + ' url'); }
               if (typeof e.request.method !== 'string') bad.push(i + ' method');
               nv(e.request.headers, i + ' request.headers');
               nv(e.request.queryString, i + ' queryString');
               nv(e.response.headers, i + ' response.headers');
               if (typeof e.response.status !== 'number') bad.push(i + ' status');
               const c = e.response.content;
               if (typeof c.size !== 'number' || typeof c.mimeType !== 'string') bad.push(i + ' content');
               for (const k of ['send', 'wait', 'receive'])
                 if (typeof e.timings[k] !== 'number') bad.push(i + ' timings.' + k);
             });
             return { entries: har.log.entries.length, bad };",
            vec![json!(text)],
        )
        .await
        .expect("parse the HAR in the page");
    assert_eq!(
        checked,
        json!({"entries": 76, "bad": []}),
        "the HAR as Chromium sees it"
    );
    b.close().await;
}
