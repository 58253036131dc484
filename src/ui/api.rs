//! The web view's JSON: the list row of a flow, a flow's page (facts, ladder, findings), the
//! comparison of two flows (`diff`'s view), and the downloads (JSON Lines, HAR, key-log lines).
//!
//! Everything here is data; the page renders it with DOM text APIs, so no recorded string is
//! ever interpreted as markup.

use crate::facts::{Flow, Leg, Phase, Severity};
use crate::recording::Record;
use crate::render::{diff, har, ladder, report};
use serde::Serialize;
use serde_json::{json, Value};

/// One line of the flow list.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    /// The flow's number in this web view.
    pub id: u64,
    /// When the connection was accepted (RFC 3339).
    pub time: String,
    /// `CONNECTION/EXCHANGE`, or `CONNECTION` for a connection record.
    pub connection: String,
    /// The command that recorded it.
    pub mode: String,
    /// The server name: SNI, else the upstream's host.
    pub host: String,
    /// Request method; empty for a connection record.
    pub method: String,
    /// Request target; empty for a connection record.
    pub path: String,
    /// Response status, if any.
    pub status: Option<u16>,
    /// The error that ended the flow or one of its legs.
    pub error: Option<String>,
    /// The client leg's certificate story (on `observe`: the wire's).
    pub client: Option<LegCell>,
    /// The upstream leg's certificate story.
    pub upstream: Option<LegCell>,
    /// Finding ids with their severities, as recorded.
    pub findings: Vec<FindingTag>,
    /// Whether the flow failed (status ≥ 400, an error, or an error finding).
    pub failed: bool,
    /// Whether it is a port check (a connection that sent nothing): shown and counted apart
    /// from failures.
    pub port_check: bool,
    /// Where it came from: `FILE:N` of a recording, or `live:N`.
    pub source: String,
}

/// What one leg asked for and what was presented on it.
#[derive(Clone, Debug, Serialize)]
pub struct LegCell {
    /// When the certificate was asked for; null when it was not.
    pub phase: Option<Phase>,
    /// How many CA names the request carried; null when unknown or not asked.
    pub ca_names: Option<usize>,
    /// Subject of the leaf presented; null when none was.
    pub presented: Option<String>,
}

/// A finding in the list: id and severity.
#[derive(Clone, Debug, Serialize)]
pub struct FindingTag {
    /// Catalogue id.
    pub id: String,
    /// Its severity.
    pub severity: Severity,
}

fn leg_cell(l: &Leg) -> LegCell {
    LegCell {
        phase: l.cert_request.as_ref().map(|c| c.phase),
        ca_names: l
            .cert_request
            .as_ref()
            .and_then(|c| c.ca_names.as_ref().map(Vec::len)),
        presented: l.chain.first().map(|c| c.subject.clone()),
    }
}

/// The host a flow went to.
pub fn host(f: &Flow) -> String {
    let sni = f
        .client_leg
        .as_ref()
        .and_then(|l| l.sni.clone())
        .or_else(|| f.upstream_leg.as_ref().and_then(|l| l.sni.clone()))
        .or_else(|| f.wire.as_ref().and_then(|w| w.sni.clone()));
    sni.or_else(|| f.upstream.clone()).unwrap_or_default()
}

/// The list row of record `id`.
pub fn row(id: u64, r: &Record) -> Row {
    let f = &r.flow;
    let wire = f.wire.as_ref().map(|w| LegCell {
        phase: w.cert_request.as_ref().map(|c| c.phase),
        ca_names: w
            .cert_request
            .as_ref()
            .and_then(|c| c.ca_names.as_ref().map(Vec::len)),
        presented: w
            .client_chain
            .as_ref()
            .and_then(|c| c.first())
            .map(|c| c.subject.clone()),
    });
    Row {
        id,
        time: f
            .started_at
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
        connection: match f.exchange_index {
            Some(x) => format!("{}/{x}", f.connection_id),
            None => f.connection_id.to_string(),
        },
        mode: word(&f.mode),
        host: host(f),
        method: f
            .request
            .as_ref()
            .map(|q| q.method.clone())
            .unwrap_or_default(),
        path: f
            .request
            .as_ref()
            .map(|q| q.uri.clone())
            .unwrap_or_default(),
        status: f.status(),
        error: report::first_error(f),
        client: f.client_leg.as_deref().map(leg_cell).or(wire),
        upstream: f.upstream_leg.as_deref().map(leg_cell),
        findings: f
            .findings
            .iter()
            .map(|x| FindingTag {
                id: x.id.to_string(),
                severity: x.severity,
            })
            .collect(),
        failed: report::failed(f),
        port_check: report::port_check(f),
        source: r.label(),
    }
}

fn word(v: &impl Serialize) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_default()
}

/// A flow's page: its row, every fact, the ladder, and whether findings were diagnosed on
/// reading.
pub fn detail(id: u64, r: &Record) -> Value {
    json!({
        "row": row(id, r),
        "flow": r.flow,
        "ladder": ladder::ladder(&r.flow),
        "diagnosed_on_read": r.diagnosed_on_read,
        "would_send": crate::choose::flow::flow_json(&r.flow),
    })
}

/// `diff`'s comparison of two flows (differences first, then every fact).
pub fn compare(a: &Record, b: &Record) -> Value {
    diff::json(a, b)
}

/// The flow as one JSON Lines record (the recording's own format).
pub fn jsonl(r: &Record) -> String {
    let mut s = serde_json::to_string(&r.flow).unwrap_or_default();
    s.push('\n');
    s
}

/// The flow as a HAR 1.2 document.
pub fn har_doc(r: &Record) -> String {
    serde_json::to_string_pretty(&har::har(std::slice::from_ref(r))).unwrap_or_default()
}

/// The ClientHello randoms of a flow's legs (hex, lowercase): what joins them to key-log lines.
pub fn client_randoms(f: &Flow) -> Vec<String> {
    [&f.client_leg, &f.upstream_leg]
        .into_iter()
        .flatten()
        .filter_map(|l| l.client_random.clone())
        .chain(f.wire.as_ref().and_then(|w| w.client_random.clone()))
        .map(|r| r.to_ascii_lowercase())
        .collect()
}

/// The NSS key-log lines (`LABEL CLIENT_RANDOM SECRET`) of `keylog` whose random is one of
/// `randoms`, in file order.
pub fn keylog_lines(keylog: &str, randoms: &[String]) -> String {
    let mut out = String::new();
    for line in keylog.lines() {
        let mut fields = line.split_whitespace();
        let (Some(_label), Some(random)) = (fields.next(), fields.next()) else {
            continue;
        };
        if randoms.iter().any(|r| r.eq_ignore_ascii_case(random)) {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnose::test_support::success;
    use std::path::PathBuf;

    #[test]
    fn keylog_lines_are_those_of_the_flows_legs() {
        let text = "# comment\nCLIENT_RANDOM AABB 0011\nCLIENT_RANDOM ccdd 2233\n\
                    CLIENT_HANDSHAKE_TRAFFIC_SECRET aabb 4455\n";
        let got = keylog_lines(text, &["aabb".into()]);
        assert_eq!(
            got,
            "CLIENT_RANDOM AABB 0011\nCLIENT_HANDSHAKE_TRAFFIC_SECRET aabb 4455\n"
        );
    }

    #[test]
    fn a_row_names_both_legs_requests_and_findings() {
        let mut flow = success();
        flow.findings = crate::diagnose::diagnose(&flow);
        let r = Record {
            file: PathBuf::from("live"),
            line: 3,
            index: 3,
            flow: flow.into(),
            diagnosed_on_read: false,
        };
        let row = row(3, &r);
        assert_eq!(row.connection, "7/0");
        let up = row.upstream.unwrap();
        assert_eq!(up.ca_names, Some(1));
        assert!(up.presented.unwrap().contains("CN=client"));
        assert_eq!(row.source, "live:3");
        assert!(detail(3, &r)["ladder"]["steps"].as_array().unwrap().len() > 2);
    }

    #[test]
    fn a_port_check_row_is_no_failure_and_says_so() {
        use crate::facts::{FailureKind, LegFailure, Stage};
        let mut flow = success();
        flow.kind = crate::facts::RecordKind::Connection;
        flow.request = None;
        flow.response = None;
        flow.upstream_leg = None;
        let mut leg = (**flow.client_leg.as_ref().unwrap()).clone();
        leg.failure = Some(LegFailure {
            stage: Stage::ClientHello,
            kind: FailureKind::NothingSent,
        });
        leg.error = Some("the client closed the connection without sending a byte".into());
        flow.error = leg.error.clone();
        flow.client_leg = Some(std::sync::Arc::new(leg));
        flow.findings = crate::diagnose::diagnose(&flow);
        let r = Record {
            file: PathBuf::from("live"),
            line: 1,
            index: 1,
            flow: flow.into(),
            diagnosed_on_read: false,
        };
        let row = row(1, &r);
        assert!(row.port_check);
        assert!(!row.failed);
    }
}
