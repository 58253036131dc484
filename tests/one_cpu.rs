//! On one CPU (`taskset -c 0`, a one-CPU container) mtlscope runs a single-threaded scheduler:
//! it relays HTTP/1.1 and HTTP/2 keep-alive connections side by side, records every exchange,
//! and stops on SIGTERM with every record written, as it does with a thread per CPU.

mod common;

use common::https_client::{HttpsClient, Proto};
use common::Mtlscope;
use mtlscope::lab::echo::LabEcho;

const PER_CLIENT: usize = 25;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_cpu_relays_records_and_stops_like_many() {
    let (pki, _dir) = common::dev_pki();
    let echo = LabEcho::start(None).await.unwrap();
    let args = common::reverse_args(&pki, &echo.url(), &["--quiet"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut p = Mtlscope::start_on_one_cpu(&args);
    let status = std::fs::read_to_string(format!("/proc/{}/status", p.pid())).expect("status");
    assert!(
        status
            .lines()
            .any(|l| l.split_whitespace().eq(["Cpus_allowed_list:", "0"])),
        "mtlscope runs on CPU 0 only: {status}"
    );
    let mut clients = Vec::new();
    for proto in [Proto::H1, Proto::H2, Proto::H1, Proto::H2] {
        let root = pki.root_ca().to_path_buf();
        let port = p.port();
        clients.push(tokio::spawn(async move {
            let mut c = HttpsClient::new(&root, port, proto);
            for i in 0..PER_CLIENT {
                let status = c.get(&format!("/{proto:?}/{i}")).await.expect("request");
                assert_eq!(status, 200, "{proto:?} request {i}");
            }
        }));
    }
    for c in clients {
        c.await.unwrap();
    }
    let total = 4 * PER_CLIENT;
    assert_eq!(p.records(total).len(), total);
    p.signal("TERM");
    let records = tokio::task::block_in_place(|| p.exited_records());
    let exchanges = records
        .iter()
        .filter(|r| r["kind"] == "exchange" && r["response"]["status"] == 200)
        .count();
    assert_eq!(exchanges, total, "{records:#?}");
}
