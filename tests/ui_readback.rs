//! The live web view reads flows that left memory back from the recording (issue 22): a real
//! `mtlscope reverse --record --ui --ui-max-flows 5` in front of an echo server takes 40
//! exchanges, and every evicted flow's page (the oldest too, and one written with `legs_from`
//! in the recording: its legs read from the line that carries them) and a comparison of an
//! evicted flow with one in memory are served over HTTP from the file.

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

/// `mtlscope reverse --ui` (recording to a file of its own) in front of `echo`, with `extra`
/// flags; the process and the web view's address.
fn reverse_with_view(
    pki: &mtlscope::pki::DevPki,
    echo: &LabEcho,
    extra: &[&str],
) -> (Mtlscope, String) {
    let ui = format!("127.0.0.1:{}", free_port().unwrap());
    let (server, echo_url) = (pki.server().arg(), echo.url());
    let mut args = vec![
        "reverse",
        "--upstream",
        &echo_url,
        "--server-cert",
        &server,
        "--ui",
        &ui,
        "--quiet",
    ];
    args.extend(extra);
    (Mtlscope::start(&args), ui)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evicted_flows_are_read_back_from_the_recording() {
    let (pki, _pki_dir) = common::dev_pki();
    let echo = LabEcho::start(None).await.unwrap();
    let (p, ui) = reverse_with_view(&pki, &echo, &["--ui-max-flows", &KEPT.to_string()]);
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
    // The recording writes /f2 as a reference to an earlier exchange of its connection.
    let compact = lines
        .iter()
        .find(|l| l["request"]["uri"] == "/f2")
        .expect("/f2 recorded");
    let source_index = compact["legs_from"].as_u64().expect("/f2 has legs_from");
    assert!(compact.get("client_leg").is_none());

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

    // Every flow by its number: the evicted ones (1–35) from the file, legs and all, the
    // newest five from memory. (Flows are numbered as they reach the view, which is nearly but
    // not exactly request order, so they are matched by request path.)
    let mut by_uri = std::collections::HashMap::new();
    for id in 1..=total {
        let (status, v, body) = get_json(&format!("http://{ui}/api/flows/{id}")).await;
        assert_eq!(status, 200, "flow {id}: {body}");
        assert!(v["flow"]["client_leg"]["tls_version"].is_string(), "{body}");
        assert!(v["flow"].get("legs_from").is_none(), "{body}");
        assert!(!v["ladder"].is_null());
        let uri = v["flow"]["request"]["uri"].as_str().unwrap().to_string();
        assert!(
            by_uri.insert(uri, (id, v)).is_none(),
            "flow {id} shown twice"
        );
    }
    for i in 0..total {
        assert!(by_uri.contains_key(&format!("/f{i}")), "/f{i} not shown");
    }
    // The oldest flows were evicted first: /f0 is among them, and reads back.
    assert!(by_uri["/f0"].0 <= total - KEPT);
    // A compacted line: its legs come from the line of the exchange it names.
    let (id, third) = &by_uri["/f2"];
    assert!(*id <= total - KEPT, "/f2 was evicted");
    let (_, src) = by_uri
        .values()
        .find(|(_, v)| {
            v["flow"]["connection_id"] == third["flow"]["connection_id"]
                && v["flow"]["exchange_index"] == source_index
        })
        .expect("the exchange /f2 names");
    assert_eq!(
        third["flow"]["client_leg"], src["flow"]["client_leg"],
        "the legs of the exchange it points at"
    );
    // An evicted flow compared with one in memory.
    let (status, _, body) = get_json(&format!("http://{ui}/api/diff?a=1&b={total}")).await;
    assert_eq!(status, 200, "{body}");
    // A number never given out is still unknown.
    let r = Curl::new(format!("http://{ui}/api/flows/{}", total + 1))
        .run_async()
        .await;
    assert_eq!(r.status, 404);
    drop(p);
}

/// With `--record`, the list keeps showing `--ui-max-flows` flows while only the newest
/// `HOT_FLOWS` are held in memory: a page that opens after 600 exchanges gets all 600 rows (the
/// oldest read back from the recording), and the counters say how many are in memory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_list_shows_older_flows_read_back_from_the_recording() {
    const TOTAL: u64 = 600;
    const HOT: u64 = mtlscope::ui::store::HOT_FLOWS as u64;
    const { assert!(HOT < TOTAL, "some flows must be read back") };
    let (pki, _pki_dir) = common::dev_pki();
    let echo = LabEcho::start(None).await.unwrap();
    let (p, ui) = reverse_with_view(&pki, &echo, &[]);
    let mut c = HttpsClient::new(pki.root_ca(), p.port(), Proto::H1);
    for i in 0..TOTAL {
        assert_eq!(c.get(&format!("/g{i}")).await.expect("request"), 200);
    }
    p.records(TOTAL as usize);
    let stats_url = format!("http://{ui}/api/stats");
    let deadline = Instant::now() + Duration::from_secs(30);
    let stats = loop {
        let (_, v, _) = get_json(&stats_url).await;
        if v["kept"].as_u64() == Some(TOTAL) || Instant::now() > deadline {
            break v;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(stats["kept"], TOTAL, "{stats}");
    assert_eq!(stats["in_memory"], HOT, "{stats}");
    assert_eq!(stats["evicted"], 0, "{stats}");

    // The page's live stream: its first `flows` events list every flow once, oldest first.
    let r = Curl::new(format!("http://{ui}/api/events"))
        .arg("-N")
        .arg("--max-time")
        .arg("3")
        .run_async()
        .await;
    let mut ids = Vec::new();
    let mut paths = std::collections::HashSet::new();
    for data in r.body.lines().filter_map(|l| l.strip_prefix("data: [")) {
        let rows: Vec<Value> = serde_json::from_str(&format!("[{data}")).expect("a flows event");
        for row in rows {
            ids.push(row["id"].as_u64().unwrap());
            paths.insert(row["path"].as_str().unwrap().to_string());
        }
    }
    assert_eq!(
        ids,
        (1..=TOTAL).collect::<Vec<_>>(),
        "every listed flow once, in order"
    );
    assert_eq!(paths.len() as u64, TOTAL, "each request's own row");
    // The oldest is opened from the file.
    let (status, v, body) = get_json(&format!("http://{ui}/api/flows/1")).await;
    assert_eq!(status, 200, "{body}");
    assert!(v["flow"]["client_leg"]["tls_version"].is_string(), "{body}");
    drop(p);
}
