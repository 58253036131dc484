//! `mtlscope report`: a recording as a table (one row per record) and a summary (counts per
//! finding id and per status), as text or JSON.
//!
//! The rows quote facts and the recorded findings; which rows are shown (`--only-failures`,
//! `--id`) is a filter on those, not a diagnosis. Recorded strings can carry terminal escape
//! sequences (headers and bodies come from the network), so text output goes through [`clean`].

use crate::facts::{CertRequest, CertSummary, Flow, Mode, Phase, RecordKind};
use crate::recording::{Record, Skipped};
use serde::Serialize;
use serde_json::json;
use std::collections::BTreeMap;

pub use super::escape::{cell, clean};
pub use crate::recording::filter::{failed, port_check, Filter};

/// `-v/--explain`: each shown record with findings, by its `FILE:N` and terminal line, then
/// each finding's evidence and fix.
pub fn explain_text(records: &[&Record]) -> String {
    let mut s = String::new();
    for r in records.iter().filter(|r| !r.flow.findings.is_empty()) {
        let block = format!(
            "{}: {}",
            r.label(),
            crate::render::explain::explained_block(&r.flow)
        );
        s.push('\n');
        for line in block.lines() {
            s.push_str(&clean(line));
            s.push('\n');
        }
    }
    s
}

/// One row of the table: the facts a reader scans for.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    /// `FILE:N` of the record (what `diff` accepts).
    pub record: String,
    /// 1-based line in the file.
    pub line: usize,
    /// When the connection was accepted (RFC 3339).
    pub started_at: String,
    /// The run that recorded it (with `connection_id`, what `diff --a-id RUN/ID` takes).
    pub run: String,
    /// Connection number.
    pub connection_id: u64,
    /// Exchange position on the connection; null for a connection record.
    pub exchange_index: Option<u32>,
    /// `exchange` or `connection`.
    pub kind: RecordKind,
    /// The command that recorded it.
    pub mode: Mode,
    /// `METHOD URI`, or null for a connection record.
    pub request: Option<String>,
    /// The response status, if any.
    pub status: Option<u16>,
    /// The error that ended the flow or one of its legs, if any.
    pub error: Option<String>,
    /// Which leg the TLS columns describe: `upstream`, `client` (no upstream leg) or `wire`.
    pub leg: Option<&'static str>,
    /// That leg's TLS version.
    pub tls_version: Option<&'static str>,
    /// When the certificate was asked for on that leg; null when it was not (or not visible).
    pub cert_request_phase: Option<Phase>,
    /// The wire could not show whether a certificate was asked for (TLS 1.3 is encrypted).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub cert_request_hidden: bool,
    /// How many CA names the request carried; null when unknown or not asked.
    pub ca_names: Option<usize>,
    /// Subject of the leaf presented on that leg; null when none was.
    pub presented: Option<String>,
    /// Finding ids, as recorded (or as `--rediagnose` drew them on reading).
    pub findings: Vec<String>,
    /// Whether the findings were diagnosed on reading (`--rediagnose`).
    pub diagnosed_on_read: bool,
}

/// The facts for the TLS columns: leg name, version, request, chain (None = not visible).
type LegView<'a> = (
    &'static str,
    Option<&'static str>,
    Option<&'a CertRequest>,
    Option<&'a [CertSummary]>,
);

/// The leg the TLS columns describe: the upstream leg (what the server saw), else the client
/// leg, else the wire.
pub fn server_side(flow: &Flow) -> Option<LegView<'_>> {
    if let Some(w) = &flow.wire {
        return Some((
            "wire",
            w.tls_version.map(|v| v.as_str()),
            w.cert_request.as_ref(),
            w.client_chain.as_deref(),
        ));
    }
    [
        ("upstream", &flow.upstream_leg),
        ("client", &flow.client_leg),
    ]
    .into_iter()
    .find_map(|(name, leg)| {
        leg.as_ref().map(|l| {
            (
                name,
                l.protocol(),
                l.cert_request.as_ref(),
                Some(l.chain.as_slice()),
            )
        })
    })
}

/// The error that ended the flow, else the first leg error (upstream first).
pub fn first_error(flow: &Flow) -> Option<String> {
    flow.error
        .clone()
        .or_else(|| flow.upstream_leg.as_ref().and_then(|l| l.error.clone()))
        .or_else(|| flow.client_leg.as_ref().and_then(|l| l.error.clone()))
        .or_else(|| {
            flow.wire
                .as_ref()
                .and_then(|w| w.failure.as_ref())
                .map(|f| format!("{} at {}", f.kind, f.stage))
        })
}

/// The row for one record.
pub fn row(record: &Record) -> Row {
    let flow = &record.flow;
    let side = server_side(flow);
    let cr = side.and_then(|s| s.2);
    Row {
        record: record.label(),
        line: record.line,
        started_at: flow
            .started_at
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
        run: flow.run.clone(),
        connection_id: flow.connection_id,
        exchange_index: flow.exchange_index,
        kind: flow.kind,
        mode: flow.mode,
        request: flow
            .request
            .as_ref()
            .map(|r| format!("{} {}", r.method, r.uri)),
        status: flow.status(),
        error: first_error(flow),
        leg: side.map(|s| s.0),
        tls_version: side.and_then(|s| s.1),
        cert_request_phase: cr.map(|c| c.phase),
        cert_request_hidden: flow.wire.as_ref().is_some_and(|w| w.cert_request_hidden()),
        ca_names: cr.and_then(|c| c.ca_names.as_ref().map(Vec::len)),
        presented: side
            .and_then(|s| s.3)
            .and_then(|c| c.first())
            .map(|c| c.subject.clone()),
        findings: flow.findings.iter().map(|f| f.id.to_string()).collect(),
        diagnosed_on_read: record.diagnosed_on_read,
    }
}

/// Counts over the rows shown.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Summary {
    /// Rows shown.
    pub records: usize,
    /// Of which exchanges.
    pub exchanges: usize,
    /// Of which connection records.
    pub connections: usize,
    /// Rows carrying each finding id.
    pub findings: BTreeMap<String, usize>,
    /// Rows per status (`"200"`, …), `"no response"` for exchanges without one, and
    /// `"connection"` for connection records.
    pub statuses: BTreeMap<String, usize>,
    /// Lines skipped while reading.
    pub skipped_lines: usize,
}

/// Summarise the rows shown.
pub fn summary(rows: &[Row], skipped: &[Skipped]) -> Summary {
    let mut s = Summary::default();
    for r in rows {
        s.add(r);
    }
    s.skipped_lines = skipped.len();
    s
}

impl Summary {
    /// Count one more row shown.
    pub fn add(&mut self, r: &Row) {
        self.records += 1;
        match r.kind {
            RecordKind::Exchange => self.exchanges += 1,
            RecordKind::Connection => self.connections += 1,
        }
        let status = match (r.kind, r.status) {
            (_, Some(code)) => code.to_string(),
            (RecordKind::Exchange, None) => "no response".into(),
            (RecordKind::Connection, None) => "connection".into(),
        };
        *self.statuses.entry(status).or_default() += 1;
        let mut ids: Vec<&String> = r.findings.iter().collect();
        ids.dedup();
        for id in ids {
            if let Some(n) = self.findings.get_mut(id.as_str()) {
                *n += 1;
            } else {
                self.findings.insert(id.clone(), 1);
            }
        }
    }
}

fn phase_word(p: Phase) -> &'static str {
    match p {
        Phase::Handshake => "handshake",
        Phase::Renegotiation => "renegotiation",
        Phase::PostHandshake => "post_handshake",
    }
}

/// The status, or the error when there was no response.
pub fn outcome_cell(r: &Row) -> String {
    match (r.status, &r.error) {
        (Some(s), _) => s.to_string(),
        (None, Some(e)) => format!("error: {e}"),
        (None, None) => "-".into(),
    }
}

/// `phase N CA` (`?` when the names were not visible), `?` when the request itself was not
/// visible, or `-` when no certificate was asked.
pub fn cert_request_cell(r: &Row) -> String {
    match (r.cert_request_phase, r.ca_names) {
        (None, _) if r.cert_request_hidden => "?".to_string(),
        (None, _) => "-".to_string(),
        (Some(p), Some(n)) => format!("{} {n} CA", phase_word(p)),
        (Some(p), None) => format!("{} ? CA", phase_word(p)),
    }
}

/// The leaf subject presented, `(none)` when asked and none was, `-` when not asked, `?` when
/// not visible.
pub fn presented_cell(r: &Row) -> String {
    match (&r.presented, r.cert_request_phase) {
        (Some(s), _) => s.clone(),
        (None, None) if r.cert_request_hidden => "?".into(),
        (None, Some(_)) => "(none)".into(),
        (None, None) => "-".into(),
    }
}

/// The cells of a row, in table order.
fn cells(r: &Row) -> [String; 10] {
    let time = r
        .started_at
        .get(..19)
        .unwrap_or(&r.started_at)
        .replace('T', " ");
    let conn = match r.exchange_index {
        Some(i) => format!("{}/{}", r.connection_id, i),
        None => r.connection_id.to_string(),
    };
    let mode = serde_json::to_value(r.mode)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_default();
    let request = r.request.as_deref().unwrap_or("connection");
    let findings = if r.findings.is_empty() {
        "-".to_string()
    } else {
        r.findings.join(",")
    };
    [
        time,
        conn,
        mode,
        cell(request, 40),
        cell(&outcome_cell(r), 40),
        r.leg.unwrap_or("-").to_string(),
        r.tls_version.unwrap_or("-").to_string(),
        cert_request_cell(r),
        cell(&presented_cell(r), 40),
        cell(&findings, 80),
    ]
}

const HEADERS: [&str; 10] = [
    "TIME",
    "CONN",
    "MODE",
    "REQUEST",
    "STATUS",
    "LEG",
    "TLS",
    "CERT REQUEST",
    "PRESENTED",
    "FINDINGS",
];

/// The table and the summary as text.
pub fn text(rows: &[Row], summary: &Summary) -> String {
    let mut t = TextTable::default();
    let mut out = String::new();
    for r in rows {
        t.push(r, &mut out);
    }
    t.finish(&mut out);
    out.push('\n');
    out.push_str(&summary_text(summary));
    out
}

/// Rows whose cells decide the text table's column widths; the rows after them are aligned
/// to those widths (a wider cell pushes its line right), so the table streams.
pub const WIDTH_SAMPLE: usize = 1000;

/// The text table, written as rows come: the first [`WIDTH_SAMPLE`] rows are held to size the
/// columns, then every row is written at once.
#[derive(Default)]
pub struct TextTable {
    /// Rows held until the widths are known.
    sample: Vec<[String; 10]>,
    /// The column widths, once known.
    widths: Option<[usize; 10]>,
}

impl TextTable {
    /// Add a row; whatever can be written goes to `out`.
    pub fn push(&mut self, r: &Row, out: &mut String) {
        let cells = cells(r);
        match self.widths {
            Some(w) => push_line(out, &cells, w),
            None => {
                self.sample.push(cells);
                if self.sample.len() >= WIDTH_SAMPLE {
                    self.flush(out);
                }
            }
        }
    }

    /// Write the header and the held rows, fixing the widths.
    fn flush(&mut self, out: &mut String) {
        let mut widths = HEADERS.map(|h| h.chars().count());
        for r in &self.sample {
            for (w, c) in widths.iter_mut().zip(r) {
                *w = (*w).max(c.chars().count());
            }
        }
        push_line(out, &HEADERS.map(String::from), widths);
        for r in std::mem::take(&mut self.sample) {
            push_line(out, &r, widths);
        }
        self.widths = Some(widths);
    }

    /// Write what is still held (a table shorter than the sample).
    pub fn finish(mut self, out: &mut String) {
        if self.widths.is_none() {
            self.flush(out);
        }
    }
}

fn push_line(out: &mut String, cells: &[String; 10], widths: [usize; 10]) {
    let start = out.len();
    for (i, (c, w)) in cells.iter().zip(widths).enumerate() {
        out.push_str(c);
        if i + 1 < cells.len() {
            let pad = w.saturating_sub(c.chars().count()) + 2;
            out.extend(std::iter::repeat_n(' ', pad));
        }
    }
    let trimmed = out[start..].trim_end().len();
    out.truncate(start + trimmed);
    out.push('\n');
}

/// The summary block: record counts, then counts per finding id and per status.
pub fn summary_text(s: &Summary) -> String {
    let mut out = format!(
        "{} record{} ({} exchange{}, {} connection{})",
        s.records,
        plural(s.records),
        s.exchanges,
        plural(s.exchanges),
        s.connections,
        plural(s.connections)
    );
    if s.skipped_lines > 0 {
        out.push_str(&format!(
            "; {} line{} skipped",
            s.skipped_lines,
            plural(s.skipped_lines)
        ));
    }
    out.push('\n');
    out.push_str("findings:");
    if s.findings.is_empty() {
        out.push_str(" none\n");
    } else {
        out.push('\n');
        let mut by_count: Vec<(&String, &usize)> = s.findings.iter().collect();
        by_count.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        for (id, n) in by_count {
            out.push_str(&format!("  {n:>4}  {}\n", clean(id)));
        }
    }
    out.push_str("statuses:\n");
    for (status, n) in &s.statuses {
        out.push_str(&format!("  {n:>4}  {status}\n"));
    }
    out
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// The report as JSON: rows, summary, and the skipped lines.
pub fn json(rows: &[Row], summary: &Summary, skipped: &[Skipped]) -> serde_json::Value {
    json!({
        "records": rows,
        "summary": summary,
        "skipped": skipped
            .iter()
            .map(|s| json!({ "file": s.file.display().to_string(), "line": s.line, "reason": s.reason }))
            .collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnose::test_support::*;
    use crate::facts::{Finding, LegFailure, Severity};
    use std::path::PathBuf;

    fn rec(flow: Flow, index: usize) -> Record {
        Record {
            file: PathBuf::from("rec.jsonl"),
            line: index,
            index,
            flow: flow.into(),
            diagnosed_on_read: false,
        }
    }

    fn failing() -> Flow {
        let mut f = success_builder()
            .upstream(|l| {
                l.chain = vec![];
                l.failure = Some(LegFailure {
                    stage: crate::facts::Stage::Handshake,
                    kind: crate::facts::FailureKind::AlertReceived,
                });
                l.error = Some("received fatal alert\u{1b}[31m".into());
            })
            .own_response(502)
            .build();
        f.findings = vec![Finding {
            id: crate::facts::FindingId::NoClientCert,
            inferred: false,
            severity: Severity::Error,
            summary: "s".into(),
            evidence: vec![],
            fix: "f".into(),
        }];
        f
    }

    #[test]
    fn table_rows_and_summary() {
        let records = [rec(success(), 1), rec(failing(), 2)];
        let rows: Vec<Row> = records.iter().map(row).collect();
        assert_eq!(rows[0].presented.as_deref(), Some("CN=client"));
        assert_eq!(rows[1].presented, None);
        assert_eq!(rows[1].ca_names, Some(1));
        let s = summary(&rows, &[]);
        assert_eq!(s.findings.get("no-client-cert"), Some(&1));
        assert_eq!(s.statuses.get("502"), Some(&1));
        let t = text(&rows, &s);
        assert!(t.starts_with("TIME"), "{t}");
        assert!(t.contains("GET /secure"), "{t}");
        assert!(t.contains("handshake 1 CA"), "{t}");
        assert!(t.contains("(none)"), "{t}");
        assert!(t.contains("\n     1  no-client-cert\n"), "{t}");
        assert!(t.contains("2 records (2 exchanges, 0 connections)"), "{t}");
    }

    #[test]
    fn filters_and_control_characters() {
        let records = [rec(success(), 1), rec(failing(), 2)];
        let only = Filter {
            only_failures: true,
            ..Filter::default()
        };
        let kept: Vec<bool> = records.iter().map(|r| only.keeps(r)).collect();
        assert_eq!(kept, vec![false, true]);
        let by_id = Filter {
            id: Some("empty-ca-list".into()),
            ..Filter::default()
        };
        assert!(!records.iter().any(|r| by_id.keeps(r)));
        assert_eq!(clean("a\u{1b}[31mb"), "a\u{fffd}[31mb");
        assert_eq!(cell("abcdef", 4), "abc…");
    }
}
