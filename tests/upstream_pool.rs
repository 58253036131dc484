//! `--upstream-pool` with a real nginx: upstream connections are reused across client
//! connections of the same identity and never lent to a client with another certificate (or
//! none). nginx's own connection number (`$connection`) says which upstream connection served
//! each request, independently of mtlscope's record (`upstream_connection`).

mod common;

use common::{Curl, Mtlscope, VerifyClient};
use mtlscope::pki::ClientCert;
use serde_json::Value;
use std::collections::{BTreeSet, HashMap};

type Setup = common::NginxLab;

fn setup() -> Setup {
    Setup::start(VerifyClient::Optional, |mut c| {
        c.extra
            .push_str("    location /conn { return 200 \"conn=$connection\\n\"; }\n");
        c
    })
}

fn proxy(s: &Setup) -> Mtlscope {
    let ca = s.pki.root_ca().display().to_string();
    let id = s.pki.client(ClientCert::Good).arg();
    s.reverse(&[
        "--client-auth",
        "optional",
        "--client-ca",
        &ca,
        "--identity",
        &id,
        "--upstream-pool",
    ])
}

/// One request on a new client connection (a new curl) presenting `who`'s certificate; the
/// nginx connection that served it.
async fn request(s: &Setup, p: &Mtlscope, who: Option<ClientCert>) -> u64 {
    let mut c = Curl::new(format!("https://localhost:{}/conn", p.port())).cacert(s.pki.root_ca());
    if let Some(w) = who {
        let id = s.pki.client(w);
        c = c.identity(&id.cert, &id.key);
    }
    let r = c.run_async().await;
    assert_eq!(r.status, 200, "{who:?}: {} {}", r.body, r.stderr);
    r.body
        .trim()
        .strip_prefix("conn=")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("nginx's connection number: {:?}", r.body))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pooled_connections_are_reused_per_identity_and_never_lent_across() {
    let s = setup();
    let p = proxy(&s);
    let clients = [
        ("good", Some(ClientCert::Good)),
        ("other-ca", Some(ClientCert::OtherCa)),
        ("none", None),
    ];
    // Three rounds, each a new client connection per client: the second and third rounds may
    // reuse what the first opened, each only its own.
    let mut served: HashMap<&str, Vec<u64>> = HashMap::new();
    for _round in 0..3 {
        for (name, who) in clients {
            served
                .entry(name)
                .or_default()
                .push(request(&s, &p, who).await);
        }
    }
    let sets: HashMap<&str, BTreeSet<u64>> = served
        .iter()
        .map(|(n, v)| (*n, v.iter().copied().collect()))
        .collect();
    for (a, _) in clients {
        for (b, _) in clients {
            if a != b {
                assert!(
                    sets[a].is_disjoint(&sets[b]),
                    "nginx connections of {a} {:?} and {b} {:?} must never be shared",
                    sets[a],
                    sets[b]
                );
            }
        }
        assert!(
            sets[a].len() < 3,
            "{a}'s later client connections reuse an upstream connection: {:?}",
            served[a]
        );
    }

    let records = p.records(9);
    assert_eq!(records.len(), 9);
    let mut by_id: HashMap<u64, &Value> = HashMap::new();
    let mut reused = 0;
    for r in &records {
        let pooled = &r["upstream_connection"];
        assert!(
            pooled.is_object(),
            "every exchange says its connection: {r:#}"
        );
        let id = pooled["id"].as_u64().unwrap();
        // Same pooled connection → same client certificate on the client leg.
        let client_leaf = r["client_leg"]["chain"][0]["sha256"].clone();
        if let Some(first) = by_id.get(&id) {
            assert_eq!(
                first["client_leg"]["chain"][0]["sha256"], client_leaf,
                "pooled connection {id} served two client identities"
            );
        }
        by_id.entry(id).or_insert(r);
        if pooled["reused"] == true {
            reused += 1;
            assert_ne!(
                pooled["opened_for"], r["connection_id"],
                "a reused connection was opened for an earlier client connection"
            );
        } else {
            // Every new upstream connection is recorded with its handshake.
            assert_eq!(pooled["opened_for"], r["connection_id"]);
            assert!(
                r["upstream_leg"]["cert_request"].is_object(),
                "the handshake of a new pooled connection shows nginx's request: {r:#}"
            );
        }
    }
    assert!(reused >= 3, "at least one reuse per client: {reused}");
    assert_eq!(
        by_id.len(),
        sets.values().map(BTreeSet::len).sum::<usize>(),
        "mtlscope's connection numbers match nginx's"
    );
}
