//! Writes a realistic recording for benchmarks and fixtures: keep-alive connections through a
//! reverse proxy, with real certificates (a generated dev PKI), a certificate request on the
//! upstream leg, and now and then a failure (a 403, a handshake without a client certificate, a
//! connection that never sent a request). Records go through mtlscope's own record sink, so they
//! are diagnosed, compacted (`legs_from`) and rotated exactly as `--record` does.
//!
//! ```text
//! cargo run --release --example gen_recording -- OUT.jsonl EXCHANGES \
//!     [OPEN [PER_CONN [MAX_SIZE [FAIL_EVERY [SILENT_EVERY [RUN]]]]]]
//! ```
//!
//! OPEN connections are open at once (their exchanges interleave), each carries PER_CONN
//! exchanges; MAX_SIZE (bytes, 0 for none) rotates the file like `--record-max-size`; every
//! FAIL_EVERY-th connection (53) presents no client certificate upstream, every
//! SILENT_EVERY-th (97) never sends a request; RUN is the run id written. The file is appended
//! to, so two runs can share it. The output is
//! deterministic for given arguments (run id, order, statuses), apart from the certificates and
//! the clock (traffic starts when the generator does, so the certificates are valid).

use mtlscope::facts::{
    Alert, AlertLevel, AlertSource, CertRequest, ClientHelloFacts, Direction, FailureKind, Flow,
    Header, IdentityCandidate, IdentityChoice, Leg, LegFailure, Mode, Phase, RecordKind, Request,
    Response, ResponseSource, Stage, TlsVersion,
};
use mtlscope::pki::{ClientCert, DevPki};
use mtlscope::record::{RecordSettings, Sink};
use std::sync::Arc;

/// The legs of one connection, shared by its exchanges (as the relay shares them).
struct Conn {
    /// Connection number.
    id: u64,
    /// Exchanges still to send.
    left: u32,
    /// Next exchange index.
    next: u32,
    /// The client leg.
    client: Arc<Leg>,
    /// The upstream leg.
    upstream: Arc<Leg>,
}

fn header(name: &str, value: &str) -> Header {
    Header {
        name: name.into(),
        value: value.into(),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 2 {
        eprintln!(
            "usage: gen_recording OUT.jsonl EXCHANGES [OPEN [PER_CONN [MAX_SIZE [FAIL_EVERY [SILENT_EVERY [RUN]]]]]]"
        );
        std::process::exit(2);
    }
    let num = |i: usize, default: u64| -> u64 {
        args.get(i).map_or(default, |s| {
            s.parse().unwrap_or_else(|_| {
                eprintln!("gen_recording: argument {} ({s:?}) is not a number", i + 1);
                std::process::exit(2)
            })
        })
    };
    let out = std::path::PathBuf::from(&args[0]);
    let total = num(1, 1000);
    let open = num(2, 64).max(1) as usize;
    let per_conn = num(3, 50).max(1) as u32;
    let max_size = Some(num(4, 0)).filter(|&m| m > 0);
    let fail_every = num(5, 53).max(1);
    let silent_every = num(6, 97).max(1);
    let run_id = args
        .get(7)
        .cloned()
        .unwrap_or_else(|| "20260301T090000Z-4242".into());
    let dir = tempfile::tempdir().expect("temp dir");
    let pki = DevPki::generate(dir.path()).expect("dev pki");
    let read = |p: &std::path::Path| mtlscope::pki::inspect::read_cert_file(p).expect("cert");
    let client_chain = read(&pki.client(ClientCert::Good).cert);
    let server_chain = read(&pki.server().cert);
    let root = read(pki.root_ca());
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let sink = Sink::open(&RecordSettings {
            path: Some(out.clone()),
            max_size,
        })
        .expect("open recording");
        // The certificates are valid from now: the traffic starts now, to the second.
        let base = time::OffsetDateTime::now_utc()
            .replace_nanosecond(0)
            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
        let ca_names = vec![root[0].subject.clone()];
        let ca_der = vec![root[0].subject_der.clone()];
        let upstream_leg = |good: bool| {
            let mut l = Leg {
                peer: Some("127.0.0.1:8443".into()),
                tls_version: Some(TlsVersion::Tls13),
                cipher: Some("TLS13_AES_256_GCM_SHA384".into()),
                alpn: Some("http/1.1".into()),
                sni: Some("api.internal.test".into()),
                client_random: Some(format!("{:064x}", rand_u128())),
                cert_request: Some(CertRequest {
                    phase: Phase::Handshake,
                    ca_names: Some(ca_names.clone()),
                    ca_names_der: ca_der.clone(),
                    signature_schemes: vec![
                        "ecdsa_secp256r1_sha256".into(),
                        "rsa_pss_rsae_sha256".into(),
                    ],
                    mandatory: None,
                    at_ms: 1.2,
                    after_request_ms: None,
                }),
                server_chain: server_chain.clone(),
                handshake_done_ms: Some(2.5),
                handshake_at: Some(base),
                ..Leg::default()
            };
            if good {
                l.chain = client_chain.clone();
                l.identity = Some(IdentityChoice {
                    candidates: vec![IdentityCandidate {
                        label: "client.pem".into(),
                        chain: client_chain.clone(),
                        matches_ca_names: Some(true),
                        ..IdentityCandidate::default()
                    }],
                    chosen: Some("client.pem".into()),
                    reason: "first identity whose chain matches the CA names".into(),
                });
            } else {
                l.alerts = vec![Alert {
                    direction: Direction::Received,
                    level: AlertLevel::Fatal,
                    description: mtlscope::facts::AlertDescription::CertificateRequired,
                    at_ms: 3.0,
                    source: AlertSource::Wire,
                    encrypted: false,
                }];
                l.failure = Some(LegFailure {
                    stage: Stage::AfterHandshake,
                    kind: FailureKind::AlertReceived,
                });
                l.error = Some("received fatal alert: CertificateRequired".into());
            }
            Arc::new(l)
        };
        let client_leg = |n: u64| {
            Arc::new(Leg {
                tls_version: Some(TlsVersion::Tls13),
                cipher: Some("TLS13_AES_128_GCM_SHA256".into()),
                alpn: Some("http/1.1".into()),
                sni: Some(format!("svc{}.example.test", n % 7)),
                client_random: Some(format!("{:064x}", rand_u128())),
                client_hello: Some(ClientHelloFacts {
                    sni: Some(format!("svc{}.example.test", n % 7)),
                    alpn: vec!["h2".into(), "http/1.1".into()],
                    versions: vec![TlsVersion::Tls13, TlsVersion::Tls12],
                    signature_schemes: vec!["ecdsa_secp256r1_sha256".into()],
                    offered_pha: false,
                }),
                handshake_done_ms: Some(1.0),
                handshake_at: Some(base),
                ..Leg::default()
            })
        };
        let mut next_conn: u64 = 1;
        let mut conns: Vec<Conn> = Vec::new();
        let mut written: u64 = 0;
        while written < total {
            while conns.len() < open {
                let id = next_conn;
                next_conn += 1;
                // Every SILENT_EVERY-th connection never sends a request: a connection record.
                if id % silent_every == 0 {
                    let mut f = Flow::new(
                        Mode::Reverse,
                        id,
                        base + time::Duration::milliseconds(id as i64),
                    );
                    f.run = run_id.clone();
                    f.client_addr = Some(format!(
                        "10.0.{}.{}:{}",
                        id % 250,
                        id % 200,
                        40000 + id % 20000
                    ));
                    f.upstream = Some("api.internal.test:8443".into());
                    f.client_leg = Some(client_leg(id));
                    f.error = Some("client closed the connection before sending a request".into());
                    sink.emit(f).await;
                    sink.connection_closed(id).await;
                    written += 1;
                    continue;
                }
                conns.push(Conn {
                    id,
                    left: per_conn,
                    next: 0,
                    client: client_leg(id),
                    // Every FAIL_EVERY-th connection's upstream asks for a certificate and gets
                    // none.
                    upstream: upstream_leg(id % fail_every != 0),
                });
            }
            let slot = (written as usize * 7919) % conns.len();
            let c = &mut conns[slot];
            let started = base + time::Duration::milliseconds(c.id as i64);
            let mut f = Flow::new(Mode::Reverse, c.id, started);
            f.run = run_id.clone();
            f.kind = RecordKind::Exchange;
            f.exchange_index = Some(c.next);
            f.upstream_leg_index = Some(0);
            f.client_addr = Some(format!(
                "10.0.{}.{}:{}",
                c.id % 250,
                c.id % 200,
                40000 + c.id % 20000
            ));
            f.upstream = Some("api.internal.test:8443".into());
            f.client_leg = Some(c.client.clone());
            f.upstream_leg = Some(c.upstream.clone());
            let at = 3.0 + f64::from(c.next) * 10.0;
            let path = format!("/v1/orders/{}?page={}", written % 10_000, c.next % 5);
            f.request = Some(Request {
                method: if written % 11 == 0 {
                    "POST".into()
                } else {
                    "GET".into()
                },
                uri: path,
                version: mtlscope::facts::HttpVersion::Http11,
                headers: vec![
                    header("host", &format!("svc{}.example.test", c.id % 7)),
                    header("user-agent", "orders-client/2.4 (linux)"),
                    header("accept", "application/json"),
                    header("authorization", "<redacted>"),
                    header("x-request-id", &format!("{:032x}", rand_u128())),
                ],
                at_ms: at,
                forwarded_at_ms: Some(at + 0.1),
                body_excerpt: None,
                forwarded_identity: None,
            });
            let good = !c.upstream.chain.is_empty();
            // Every 89th exchange of a good connection is refused by the application.
            let status = if !good {
                502
            } else if written % 89 == 0 {
                403
            } else {
                200
            };
            f.response = Some(Response {
                status,
                source: if good {
                    ResponseSource::Upstream
                } else {
                    ResponseSource::Mtlscope
                },
                headers: vec![
                    header("content-type", "application/json"),
                    header("content-length", "512"),
                    header("date", "Sun, 01 Mar 2026 09:00:00 GMT"),
                ],
                body_excerpt: (status >= 400).then(|| "{\"error\":\"forbidden\"}".to_string()),
                at_ms: at + 4.2,
                ..Response::default()
            });
            if !good {
                f.error = Some("upstream handshake failed".into());
            }
            c.next += 1;
            c.left -= 1;
            let done = c.left == 0 || !good;
            let id = c.id;
            sink.emit(f).await;
            written += 1;
            if done {
                conns.swap_remove(slot);
                sink.connection_closed(id).await;
            }
        }
        let stats = sink.flush().await;
        eprintln!(
            "gen_recording: {} lines ({} compacted, {} rotations) to {}",
            stats.written,
            stats.compacted,
            stats.rotations,
            out.display()
        );
    });
}

/// A cheap deterministic pseudo-random number (xorshift), for randoms and request ids.
fn rand_u128() -> u128 {
    use std::cell::Cell;
    thread_local!(static S: Cell<u64> = const { Cell::new(0x9e37_79b9_7f4a_7c15) });
    S.with(|s| {
        let mut x = s.get();
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let v = (u128::from(next()) << 64) | u128::from(next());
        s.set(x);
        v
    })
}
