//! Protocol upgrades (WebSocket and the like) through the TLS-terminating relay. An HTTP/1.1
//! request with `Connection: upgrade` keeps its `Upgrade` header on its way to an HTTP/1.1
//! upstream; when the upstream answers 101, the two upgraded connections are joined byte for
//! byte until either side ends. Without this, mtlscope would strip the hop-by-hop headers and
//! break every WebSocket that works without it.

use super::upstream_legs::UpstreamBody;
use crate::lifecycle::Lifecycle;
use http::header::{HeaderMap, HeaderValue, CONNECTION, UPGRADE};
use http::{StatusCode, Version};
use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;

/// A client's request to switch protocols, taken before the request is forwarded.
pub struct UpgradeRequest {
    /// The `Upgrade` header as the client sent it (e.g. `websocket`).
    protocol: HeaderValue,
    /// The client connection, once hyper has sent our 101.
    client: OnUpgrade,
}

/// The protocol an HTTP/1.1 message asks to switch to: `Upgrade` named in `Connection`.
pub fn upgrade_protocol(version: Version, headers: &HeaderMap) -> Option<HeaderValue> {
    let named = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("upgrade"));
    (version == Version::HTTP_11 && named)
        .then(|| headers.get(UPGRADE).cloned())
        .flatten()
}

impl UpgradeRequest {
    /// The upgrade `req` asks for, if any.
    pub fn take(req: &mut http::Request<Incoming>) -> Option<UpgradeRequest> {
        let protocol = upgrade_protocol(req.version(), req.headers())?;
        Some(UpgradeRequest {
            protocol,
            client: hyper::upgrade::on(req),
        })
    }

    /// Put the upgrade back on the request going upstream (after hop-by-hop headers were
    /// removed). HTTP/2 has no `Upgrade`: over an h2 leg the request goes as a plain one and
    /// the server's answer says what it makes of it.
    pub fn restore(&self, req: &mut http::Request<UpstreamBody>, h2: bool) {
        if h2 {
            return;
        }
        let headers = req.headers_mut();
        headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(UPGRADE, self.protocol.clone());
    }

    /// The upstream answered: on 101, join the two connections once both are handed over.
    pub fn answered(self, resp: &mut http::Response<Incoming>, life: &Lifecycle) {
        if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
            return;
        }
        let upstream = hyper::upgrade::on(resp);
        let client = self.client;
        let ending = life.clone();
        life.spawn(async move {
            let (client, upstream) = match tokio::try_join!(client, upstream) {
                Ok(both) => both,
                Err(e) => {
                    tracing::debug!(error = %e, "protocol upgrade not completed");
                    return;
                }
            };
            let (mut client, mut upstream) = (TokioIo::new(client), TokioIo::new(upstream));
            tokio::select! {
                r = tokio::io::copy_bidirectional(&mut client, &mut upstream) => {
                    if let Err(e) = r {
                        tracing::debug!(error = %e, "upgraded connection ended");
                    }
                }
                _ = ending.ending() => {}
            }
        });
    }
}

/// The protocol a 101 response switches to. Its `Upgrade` header is hop-by-hop, so it is
/// taken before those are removed and put back by [`mark_switching`].
pub fn switching_to(status: StatusCode, headers: &HeaderMap) -> Option<HeaderValue> {
    (status == StatusCode::SWITCHING_PROTOCOLS)
        .then(|| headers.get(UPGRADE).cloned())
        .flatten()
}

/// Put a 101's `Upgrade` back, with `Connection: upgrade`, for the client.
pub fn mark_switching(protocol: Option<HeaderValue>, headers: &mut HeaderMap) {
    if let Some(protocol) = protocol {
        headers.insert(UPGRADE, protocol);
        headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_upgrade_is_upgrade_named_in_connection_on_http_1_1() {
        let mut h = HeaderMap::new();
        h.insert(UPGRADE, HeaderValue::from_static("websocket"));
        assert_eq!(upgrade_protocol(Version::HTTP_11, &h), None);
        h.insert(CONNECTION, HeaderValue::from_static("keep-alive, Upgrade"));
        assert_eq!(
            upgrade_protocol(Version::HTTP_11, &h),
            Some(HeaderValue::from_static("websocket"))
        );
        assert_eq!(upgrade_protocol(Version::HTTP_2, &h), None);
        h.remove(UPGRADE);
        assert_eq!(upgrade_protocol(Version::HTTP_11, &h), None);
    }
}
