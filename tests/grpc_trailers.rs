//! gRPC's needs through `mtlscope reverse` over HTTP/2: the request keeps `te: trailers` (gRPC
//! servers refuse requests without it, to detect proxies that would lose trailers) and the
//! response's trailers (`grpc-status`) reach the client.

mod common;

use bytes::Bytes;
use common::inproc;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body::{Body, Frame};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use mtlscope::facts::RecordKind;
use mtlscope::pki::DevPki;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::TcpListener;

const LIMIT: Duration = Duration::from_secs(10);

/// A body of one data frame, then trailers.
struct WithTrailers {
    data: Option<Bytes>,
    trailers: Option<HeaderMap>,
}

impl Body for WithTrailers {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if let Some(d) = self.data.take() {
            return Poll::Ready(Some(Ok(Frame::data(d))));
        }
        Poll::Ready(self.trailers.take().map(|t| Ok(Frame::trailers(t))))
    }
}

/// An HTTP/2 server that acts as gRPC servers do about `te`: 400 without `te: trailers`,
/// otherwise 200 with the request's body echoed and a `grpc-status: 0` trailer.
async fn grpc_like_upstream(pki: &DevPki) -> u16 {
    let acceptor = inproc::upstream_acceptor(pki, &[b"h2"]);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = hyper::service::service_fn(|req: Request<Incoming>| async move {
                    let te_ok =
                        req.headers().get("te") == Some(&HeaderValue::from_static("trailers"));
                    let body = req
                        .into_body()
                        .collect()
                        .await
                        .map(|c| c.to_bytes())
                        .unwrap_or_default();
                    let mut trailers = HeaderMap::new();
                    trailers.insert("grpc-status", HeaderValue::from_static("0"));
                    let resp = Response::builder()
                        .status(if te_ok {
                            StatusCode::OK
                        } else {
                            StatusCode::BAD_REQUEST
                        })
                        .header("content-type", "application/grpc")
                        .body(WithTrailers {
                            data: Some(body),
                            trailers: te_ok.then_some(trailers),
                        })
                        .unwrap();
                    Ok::<_, std::convert::Infallible>(resp)
                });
                let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    port
}

#[tokio::test]
async fn te_trailers_and_response_trailers_cross_an_h2_relay() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let pki = DevPki::generate(dir.path()).unwrap();
    let up = grpc_like_upstream(&pki).await;
    let mut m = inproc::reverse_to(&pki, up).await;
    let tls = inproc::connect(&pki, m.port(), &[b"h2"]).await;
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .expect("h2 to mtlscope");
    tokio::spawn(conn);
    let req = Request::post("https://localhost/echo.Echo/Say")
        .header("te", "trailers")
        .header("content-type", "application/grpc")
        .body(http_body_util::Full::new(Bytes::from_static(
            b"\0\0\0\0\x05hello",
        )))
        .unwrap();
    let resp = tokio::time::timeout(LIMIT, sender.send_request(req))
        .await
        .expect("an answer in time")
        .expect("a response");
    assert_eq!(
        resp.status(),
        StatusCode::OK,
        "the upstream saw te: trailers"
    );
    let collected = tokio::time::timeout(LIMIT, resp.into_body().collect())
        .await
        .expect("the body in time")
        .expect("the body");
    let trailers = collected
        .trailers()
        .cloned()
        .expect("trailers reach the client");
    assert_eq!(trailers.get("grpc-status").unwrap(), "0");
    assert_eq!(&collected.to_bytes()[..], b"\0\0\0\0\x05hello");

    let exchange = m
        .find("for the exchange", |r| r.kind == RecordKind::Exchange)
        .await;
    assert_eq!(common::flows::status(&exchange), 200, "{exchange:#?}");
}
