//! The live web view reads flows that left memory back from the recording (issue 22): a real
//! `mtlscope reverse --record --ui --ui-max-flows 5` in front of an echo server takes 40
//! exchanges, and the oldest flow's page, a flow written with `legs_from` in the recording
//! (its legs read from the line that carries them) and a comparison of an evicted flow with one
//! in memory are served over HTTP from the file.

mod common;

use common::https_client::{HttpsClient, Proto};
use common::{free_port, Curl, Mtlscope};
use mtlscope::lab::echo::LabEcho;
use serde_json::Value;
use std::time::{Duration, Instant};

const KEPT: usize = 5;
const FIRST_CONN: usize = 30;
const SECOND_CONN: usize = 10;

async fn get_json(url: &str) -> (u16, Value, String) {
    let r = Curl::new(url).run_async().await;
    let v = serde_json::from_str(&r.body).unwrap_or(Value::Null);
    (r.status, v, r.body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evicted_flows_are_read_back_from_the_recording() {
    let (pki, _pki_dir) = common::dev_pki();
    let echo = LabEcho::start(None).await.unwrap();
    let ui = format!("127.0.0.1:{}", free_port().unwrap());
    let (server, echo_url, kept) = (pki.server().arg(), echo.url(), KEPT.to_string());
    let p = Mtlscope::start(&[
        "reverse",
        "--upstream",
        &echo_url,
        "--server-cert",
        &server,
        "--ui",
        &ui,
        "--ui-max-flows",
        &kept,
        "--quiet",
    ]);
    // Two keep-alive connections, one after the other: flows 1–30, then 31–40.
    for (from, n) in [(0, FIRST_CONN), (FIRST_CONN, SECOND_CONN)] {
        let mut c = HttpsClient::new(pki.root_ca(), p.port(), Proto::H1);
        for i in from..from + n {
            assert_eq!(c.get(&format!("/f{i}")).await.expect("request"), 200);
        }
    }
    let total = FIRST_CONN + SECOND_CONN;
    // (`Mtlscope::start` records to a file of its own.)
    let lines = p.records(total);
    // The recording has flow 3 as a reference to an earlier exchange of its connection
    // (exchange N of the first connection is flow N + 1).
    let source = lines[2]["legs_from"]
        .as_u64()
        .expect("flow 3 has legs_from")
        + 1;
    assert!(lines[2].get("client_leg").is_none());

    let stats_url = format!("http://{ui}/api/stats");
    let deadline = Instant::now() + Duration::from_secs(30);
    let stats = loop {
        let (_, v, _) = get_json(&stats_url).await;
        let seen = v["kept"].as_u64().unwrap_or(0) + v["evicted"].as_u64().unwrap_or(0);
        if seen >= total as u64 || Instant::now() > deadline {
            break v;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(stats["kept"], KEPT as u64, "{stats}");
    assert_eq!(stats["evicted"], (total - KEPT) as u64, "{stats}");
    assert_eq!(stats["dropped"], 0, "{stats}");

    // The oldest flow, long out of memory: its page comes from the file, legs and all.
    let (status, first, body) = get_json(&format!("http://{ui}/api/flows/1")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(first["flow"]["request"]["uri"], "/f0", "{body}");
    assert!(
        first["flow"]["client_leg"]["tls_version"].is_string(),
        "{body}"
    );
    assert!(!first["ladder"].is_null());
    // A compacted one: its legs come from flow 1's line.
    let (status, third, body) = get_json(&format!("http://{ui}/api/flows/3")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(third["flow"]["request"]["uri"], "/f2");
    assert!(third["flow"].get("legs_from").is_none(), "{body}");
    let (_, src, _) = get_json(&format!("http://{ui}/api/flows/{source}")).await;
    assert!(src["flow"]["client_leg"].is_object());
    assert_eq!(
        third["flow"]["client_leg"], src["flow"]["client_leg"],
        "the legs of the exchange it points at"
    );
    // Every evicted flow reads back as itself.
    for id in 1..=(total - KEPT) {
        let (status, v, body) = get_json(&format!("http://{ui}/api/flows/{id}")).await;
        assert_eq!(status, 200, "flow {id}: {body}");
        assert_eq!(v["flow"]["request"]["uri"], format!("/f{}", id - 1));
    }
    // In memory still, and compared with an evicted one.
    let (status, last, _) = get_json(&format!("http://{ui}/api/flows/{total}")).await;
    assert_eq!(status, 200);
    assert_eq!(last["flow"]["request"]["uri"], format!("/f{}", total - 1));
    let (status, _, body) = get_json(&format!("http://{ui}/api/diff?a=1&b={total}")).await;
    assert_eq!(status, 200, "{body}");
    // A number never given out is still unknown.
    let r = Curl::new(format!("http://{ui}/api/flows/{}", total + 1))
        .run_async()
        .await;
    assert_eq!(r.status, 404);
    drop(p);
}
