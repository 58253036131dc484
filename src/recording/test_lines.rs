//! Recording lines for the readers' unit tests (the stream here, the web view's index).

use super::Record;
use crate::facts::{Flow, Leg, Mode, RecordKind, Response};
use std::sync::Arc;

/// One JSON line: exchange `index` of connection `conn` in run `run`, with its legs (upstream
/// ALPN `alpn`) or a `legs_from` reference, and a response with `status` if given.
pub(crate) fn exchange_line(
    conn: u64,
    index: u32,
    from: Option<u32>,
    alpn: &str,
    run: &str,
    status: Option<u16>,
) -> String {
    let mut f = Flow::new(Mode::Reverse, conn, time::OffsetDateTime::UNIX_EPOCH);
    f.run = run.into();
    f.kind = RecordKind::Exchange;
    f.exchange_index = Some(index);
    f.legs_from = from;
    f.response = status.map(|status| Response {
        status,
        ..Response::default()
    });
    if from.is_none() {
        f.upstream_leg = Some(Arc::new(Leg {
            alpn: Some(alpn.into()),
            ..Leg::default()
        }));
    }
    let mut s = serde_json::to_string(&f).expect("a flow serialises");
    s.push('\n');
    s
}

/// The upstream leg's ALPN of a record read back (which line's legs it carries).
pub(crate) fn alpn(r: &Record) -> Option<String> {
    r.flow.upstream_leg.as_ref().and_then(|l| l.alpn.clone())
}
