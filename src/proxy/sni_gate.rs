//! The names a `reverse` listener without `--server-cert` answers for: the upstream's host and
//! each `--server-name`. A client asking for any other name (a DNS-rebinding page, a stray
//! client) gets a fatal `unrecognized_name` alert before any certificate is minted, and the
//! refusal is recorded on its client leg.
//!
//! The first TLS record is read here, checked, and put back in front of the stream for the
//! TLS acceptor, so the handshake itself is untouched.

use crate::capture::tls_error::Classified;
use crate::capture::LegRecorder;
use crate::facts::{Alert, AlertLevel, AlertSource, Direction, FailureKind, Stage};
use crate::io::Rewind;
use crate::upstream::BoxIo;
use bytes::Bytes;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// TLS alert `unrecognized_name` (RFC 6066 §3).
const UNRECOGNIZED_NAME: u8 = 112; // AlertDescription::UnrecognizedName, on the wire
/// The largest TLS record.
const MAX_RECORD: usize = 16 * 1024 + 5;

/// The server names a listener answers for, normalised (lowercase, no trailing dot).
#[derive(Clone, Debug)]
pub struct ServedNames {
    /// The names.
    names: Vec<String>,
}

impl ServedNames {
    /// The names `names` (in any spelling).
    pub fn new<'a>(names: impl IntoIterator<Item = &'a str>) -> ServedNames {
        let mut names: Vec<String> = names.into_iter().map(normalise).collect();
        names.sort();
        names.dedup();
        ServedNames { names }
    }

    /// Whether a client asking for `sni` is answered.
    pub fn serves(&self, sni: &str) -> bool {
        self.names.binary_search(&normalise(sni)).is_ok()
    }

    /// The names, for messages.
    pub fn list(&self) -> &[String] {
        &self.names
    }
}

fn normalise(name: &str) -> String {
    name.trim().trim_end_matches('.').to_ascii_lowercase()
}

/// Read the client's first record and check the SNI of its ClientHello: the stream to hand
/// on (the record put back), or None when the client was refused (answered, recorded). A
/// first record that is not a whole ClientHello is handed on unchecked: the TLS acceptor
/// deals with it, and its certificate resolver refuses unknown names too.
pub async fn check(
    mut io: BoxIo,
    names: &ServedNames,
    rec: &LegRecorder,
    timeout: Duration,
) -> Option<BoxIo> {
    let mut buf = Vec::with_capacity(1024);
    let read = async {
        let mut chunk = [0u8; 4096];
        loop {
            if buf.first().is_some_and(|b| *b != 0x16) {
                break;
            }
            if buf.len() >= 5 {
                let len = usize::from(u16::from_be_bytes([buf[3], buf[4]]));
                if buf.len() >= 5 + len || buf.len() >= MAX_RECORD {
                    break;
                }
            }
            match io.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    };
    let _ = tokio::time::timeout(timeout, read).await;
    let sni = first_sni(&buf);
    match sni {
        Some(name) if !names.serves(&name) => {
            refuse(io, &name, names, rec).await;
            None
        }
        _ => Some(Box::new(Rewind::new(Bytes::from(buf), io))),
    }
}

/// The SNI of a ClientHello that is whole in the first record.
fn first_sni(buf: &[u8]) -> Option<String> {
    let len = usize::from(u16::from_be_bytes([*buf.get(3)?, *buf.get(4)?]));
    let record = buf.get(5..5 + len)?;
    if *buf.first()? != 0x16 || *record.first()? != 1 {
        return None;
    }
    let body_len = usize::from(*record.get(1)?) << 16
        | usize::from(*record.get(2)?) << 8
        | usize::from(*record.get(3)?);
    let body = record.get(4..4 + body_len)?;
    crate::wire::msg::client_hello(body)?
        .sni
        .map(str::to_string)
}

async fn refuse(mut io: BoxIo, sni: &str, names: &ServedNames, rec: &LegRecorder) {
    rec.with(|leg| leg.sni = Some(sni.to_string()));
    let at_ms = rec.clock().ms();
    let _ = io
        .write_all(&[0x15, 0x03, 0x03, 0x00, 0x02, 0x02, UNRECOGNIZED_NAME])
        .await;
    let _ = io.shutdown().await;
    rec.alert(Alert {
        direction: Direction::Sent,
        level: AlertLevel::Fatal,
        description: crate::facts::AlertDescription::UnrecognizedName,
        at_ms,
        source: AlertSource::Refusal,
        encrypted: false,
    });
    rec.fail(&Classified::new(
        Stage::ClientHello,
        FailureKind::UnservedName,
        format!(
            "mtlscope refused the client: it asked for {sni:?}, and this listener answers only for {} (the upstream's host, localhost and --server-name)",
            names.list().join(", ")
        ),
    ));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_in_any_case_and_with_a_trailing_dot() {
        let n = ServedNames::new(["API.example.com", "localhost"]);
        assert!(n.serves("api.example.com."));
        assert!(n.serves("LOCALHOST"));
        assert!(!n.serves("other.example"));
        assert!(!n.serves("example.com"));
    }
}
