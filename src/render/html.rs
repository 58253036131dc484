//! `mtlscope report --html`: one self-contained HTML page (inline CSS, no scripts, no external
//! assets) with the report table, the summary, and per flow a collapsible section holding both
//! legs' facts and the findings with evidence and fix.
//!
//! Recordings carry attacker-controlled strings (headers, bodies, certificate names), so every
//! recorded string goes through [`esc`]; nothing recorded is ever written raw.

pub use super::escape::esc;
use super::report::{self, Row, Summary};
use crate::facts::{
    Alert, CertRequest, CertSummary, Event, Finding, Flow, Header, Leg, Renegotiation, Wire,
};
use crate::recording::{Record, Skipped};
use std::fmt::Write as _;

const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}\
table{border-collapse:collapse;margin:.4em 0}td,th{border:1px solid #ccc;padding:2px 6px;\
text-align:left;vertical-align:top}th{background:#f3f3f3}code,pre{font:12px ui-monospace,monospace}\
pre{background:#f7f7f7;padding:.5em;white-space:pre-wrap;word-break:break-all}\
details{border:1px solid #ddd;margin:.4em 0;padding:.3em .6em}summary{cursor:pointer}\
.error{color:#a00}.warning{color:#a60}.info{color:#555}.fail{background:#fff0f0}\
h3{margin:.6em 0 .2em}.ladder{overflow-x:auto}.finding{border-left:4px solid #ccc;padding-left:.6em;margin:.4em 0}";

/// The whole page for the records shown (`records` and `rows` in the same order).
pub fn page(records: &[&Record], rows: &[Row], summary: &Summary, skipped: &[Skipped]) -> String {
    let mut h = page_head();
    summary_html(&mut h, summary, skipped);
    h.push_str(TABLE_HEAD);
    for (i, r) in rows.iter().enumerate() {
        table_row(&mut h, i, r);
    }
    h.push_str(TABLE_END);
    h.push_str(FLOWS_HEAD);
    for (i, (r, row)) in records.iter().zip(rows).enumerate() {
        flow_html(&mut h, i, r, row);
    }
    h.push_str(PAGE_END);
    h
}

/// The page up to its summary (the streaming report writes the parts in this order:
/// [`page_head`], [`summary_section`], [`TABLE_HEAD`], rows, [`TABLE_END`], [`FLOWS_HEAD`],
/// flows, [`PAGE_END`]).
pub fn page_head() -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\
         <title>mtlscope report</title><style>{STYLE}</style></head><body>\n<h1>mtlscope report</h1>\n"
    )
}

/// The counts and the skipped lines.
pub fn summary_section(summary: &Summary, skipped: &[Skipped]) -> String {
    let mut h = String::new();
    summary_html(&mut h, summary, skipped);
    h
}

/// The table's header row.
pub const TABLE_HEAD: &str =
    "<table><tr><th>time</th><th>conn</th><th>request</th><th>status</th><th>leg</th>\
     <th>TLS</th><th>cert request</th><th>presented</th><th>findings</th></tr>\n";
/// The table's end.
pub const TABLE_END: &str = "</table>\n";
/// The heading of the flows' sections.
pub const FLOWS_HEAD: &str = "<h2>Flows</h2>\n";
/// The page's end.
pub const PAGE_END: &str = "</body></html>\n";

fn summary_html(h: &mut String, s: &Summary, skipped: &[Skipped]) {
    let _ = write!(
        h,
        "<p>{} records ({} exchanges, {} connections)",
        s.records, s.exchanges, s.connections
    );
    if !skipped.is_empty() {
        let _ = write!(h, "; {} lines skipped", skipped.len());
    }
    h.push_str("</p>\n<table><tr><th>finding</th><th>records</th></tr>");
    for (id, n) in &s.findings {
        let _ = write!(h, "<tr><td><code>{}</code></td><td>{n}</td></tr>", esc(id));
    }
    h.push_str("</table>\n<table><tr><th>status</th><th>records</th></tr>");
    for (st, n) in &s.statuses {
        let _ = write!(h, "<tr><td>{}</td><td>{n}</td></tr>", esc(st));
    }
    h.push_str("</table>\n");
    if !skipped.is_empty() {
        h.push_str("<details><summary>Skipped lines</summary><ul>");
        for s in skipped {
            let _ = write!(h, "<li>{}</li>", esc(&s.to_string()));
        }
        h.push_str("</ul></details>\n");
    }
}

/// One row of the table; `i` is its position, the anchor of its flow's section.
pub fn table_row(h: &mut String, i: usize, r: &Row) {
    let conn = match r.exchange_index {
        Some(x) => format!("{}/{x}", r.connection_id),
        None => r.connection_id.to_string(),
    };
    let _ = writeln!(
        h,
        "<tr><td>{}</td><td><a href=\"#flow-{i}\">{}</a></td><td>{}</td><td>{}</td><td>{}</td>\
         <td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
        esc(&r.started_at),
        esc(&conn),
        esc(r.request.as_deref().unwrap_or("connection")),
        esc(&report::outcome_cell(r)),
        r.leg.unwrap_or("-"),
        r.tls_version.unwrap_or("-"),
        esc(&report::cert_request_cell(r)),
        esc(&report::presented_cell(r)),
        esc(&r.findings.join(", ")),
    );
}

fn word(v: &impl serde::Serialize) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_default()
}

/// One flow's section; `i` is its row's position, the anchor the table links to.
pub fn flow_html(h: &mut String, i: usize, r: &Record, row: &Row) {
    let f = &r.flow;
    let failed = report::failed(f);
    let title = format!(
        "{} — connection {} — {} — {}",
        row.record,
        row.connection_id,
        row.request.as_deref().unwrap_or("connection"),
        row.status
            .map(|s| s.to_string())
            .or_else(|| row.error.clone())
            .unwrap_or_else(|| "-".into())
    );
    let _ = writeln!(
        h,
        "<details id=\"flow-{i}\"{}><summary>{}</summary>",
        if failed { " class=\"fail\" open" } else { "" },
        esc(&title)
    );
    let mut kv = vec![
        ("started", row.started_at.clone()),
        ("mode", word(&f.mode)),
        ("client", f.client_addr.clone().unwrap_or_default()),
        ("upstream", f.upstream.clone().unwrap_or_default()),
    ];
    if let Some(e) = &f.error {
        kv.push(("error", e.clone()));
    }
    table_kv(h, &kv);
    findings_html(h, &f.findings, r.diagnosed_on_read);
    if !f.faults.is_empty() {
        h.push_str("<h3>Faults</h3><ul>");
        for x in &f.faults {
            let _ = write!(h, "<li>{}: {}</li>", esc(&x.name), esc(&x.effect));
        }
        h.push_str("</ul>");
    }
    exchange_html(h, f);
    let steps = super::ladder::ladder(f);
    if !steps.steps.is_empty() {
        h.push_str("<h3>Handshake ladder</h3><div class=\"ladder\">");
        h.push_str(&super::ladder_svg::svg(&steps));
        h.push_str("</div>\n");
    }
    for (name, leg) in [
        ("Client leg (mtlscope is the TLS server)", &f.client_leg),
        ("Upstream leg (mtlscope is the TLS client)", &f.upstream_leg),
    ] {
        if let Some(l) = leg {
            leg_html(h, name, l);
        }
    }
    if let Some(w) = &f.wire {
        wire_html(h, w);
    }
    h.push_str("</details>\n");
}

fn table_kv(h: &mut String, kv: &[(&str, String)]) {
    h.push_str("<table>");
    for (k, v) in kv {
        if !v.is_empty() {
            let _ = write!(h, "<tr><th>{}</th><td>{}</td></tr>", esc(k), esc(v));
        }
    }
    h.push_str("</table>\n");
}

fn findings_html(h: &mut String, findings: &[Finding], diagnosed_on_read: bool) {
    h.push_str("<h3>Findings</h3>");
    if diagnosed_on_read {
        h.push_str(
            "<p><em>Diagnosed on reading (--rediagnose) by this mtlscope's rules, not as recorded.</em></p>",
        );
    }
    if findings.is_empty() {
        h.push_str("<p>none</p>\n");
        return;
    }
    for x in findings {
        let sev = word(&x.severity);
        let _ = write!(
            h,
            "<div class=\"finding\"><b class=\"{}\">[{}] <code>{}</code></b> {}",
            esc(&sev),
            esc(&sev),
            esc(x.id.as_str()),
            esc(&x.summary)
        );
        if !x.evidence.is_empty() {
            h.push_str("<ul>");
            for e in &x.evidence {
                let _ = write!(h, "<li>{}</li>", esc(e));
            }
            h.push_str("</ul>");
        }
        let _ = writeln!(h, "<p><b>Fix:</b> {}</p></div>", esc(&x.fix));
    }
}

fn headers_html(h: &mut String, hs: &[Header]) {
    if hs.is_empty() {
        return;
    }
    h.push_str("<table>");
    for x in hs {
        let _ = write!(
            h,
            "<tr><td><code>{}</code></td><td><code>{}</code></td></tr>",
            esc(&x.name),
            esc(&x.value)
        );
    }
    h.push_str("</table>");
}

fn exchange_html(h: &mut String, f: &Flow) {
    if let Some(q) = &f.request {
        let _ = write!(
            h,
            "<h3>Request</h3><p><code>{} {} {}</code> at {} ms",
            esc(&q.method),
            esc(&q.uri),
            esc(q.version.as_str()),
            q.at_ms
        );
        if let Some(fw) = q.forwarded_at_ms {
            let _ = write!(h, ", forwarded at {fw} ms");
        }
        h.push_str("</p>");
        headers_html(h, &q.headers);
    }
    if let Some(p) = &f.response {
        let _ = write!(
            h,
            "<h3>Response</h3><p>{} from {} at {} ms</p>",
            p.status,
            word(&p.source),
            p.at_ms
        );
        headers_html(h, &p.headers);
        if let Some(b) = &p.body_excerpt {
            let _ = write!(h, "<p>Body excerpt:</p><pre>{}</pre>", esc(b));
        }
    }
}

fn leg_html(h: &mut String, title: &str, l: &Leg) {
    let _ = write!(h, "<h3>{}</h3>", esc(title));
    let mut kv = vec![
        ("peer", l.peer.clone().unwrap_or_default()),
        ("TLS version", l.protocol().unwrap_or("none").to_string()),
        ("cipher", l.cipher.clone().unwrap_or_default()),
        ("ALPN", l.alpn.clone().unwrap_or_default()),
        ("SNI", l.sni.clone().unwrap_or_default()),
        (
            "handshake done",
            l.handshake_done_ms
                .map(|m| format!("{m} ms"))
                .unwrap_or("never".into()),
        ),
    ];
    if let Some(v) = &l.chain_verdict {
        kv.push((
            "chain verdict",
            format!(
                "{}{}{}",
                if v.trusted { "trusted" } else { "untrusted" },
                v.reason
                    .as_ref()
                    .map(|r| format!(": {r}"))
                    .unwrap_or_default(),
                if v.enforced { " (enforced)" } else { "" }
            ),
        ));
    }
    if let Some(v) = &l.server_verification {
        kv.push((
            "server verification",
            format!(
                "{}{}",
                if v.ok { "ok" } else { "failed" },
                v.reason
                    .as_ref()
                    .map(|r| format!(": {r}"))
                    .unwrap_or_default()
            ),
        ));
    }
    if let Some(e) = &l.error {
        kv.push(("error", e.clone()));
    }
    if let Some(x) = &l.failure {
        kv.push(("failure", format!("{} at {}", x.kind, x.stage)));
    }
    table_kv(h, &kv);
    cert_request_html(h, l.cert_request.as_ref());
    chain_html(h, "Chain presented", Some(&l.chain));
    if let Some(id) = &l.identity {
        let _ = write!(
            h,
            "<p>Identity chosen: <code>{}</code> — {}</p>",
            esc(id.chosen.as_deref().unwrap_or("none")),
            esc(&id.reason)
        );
    }
    if !l.server_chain.is_empty() {
        chain_html(h, "Server chain", Some(&l.server_chain));
    }
    alerts_html(h, &l.alerts);
    renegotiations_html(h, &l.renegotiations);
    events_html(h, &l.events);
}

fn wire_html(h: &mut String, w: &Wire) {
    h.push_str("<h3>Wire (observed, not terminated)</h3>");
    table_kv(
        h,
        &[
            (
                "TLS version",
                w.tls_version
                    .map(|v| v.as_str().to_string())
                    .unwrap_or_default(),
            ),
            ("SNI", w.sni.clone().unwrap_or_default()),
            ("ALPN", w.alpn.clone().unwrap_or_default()),
            ("client offered PHA", w.client_offered_pha.to_string()),
            ("bytes client→server", w.bytes_client_to_server.to_string()),
            ("bytes server→client", w.bytes_server_to_client.to_string()),
        ],
    );
    if w.cert_request_hidden() {
        h.push_str("<p>CertificateRequest: encrypted (TLS 1.3): cannot tell</p>");
    } else {
        cert_request_html(h, w.cert_request.as_ref());
    }
    chain_html(h, "Client chain", w.client_chain.as_deref());
    chain_html(h, "Server chain", w.server_chain.as_deref());
    alerts_html(h, &w.alerts);
    renegotiations_html(h, &w.renegotiations);
    events_html(h, &w.events);
}

fn cert_request_html(h: &mut String, cr: Option<&CertRequest>) {
    let Some(cr) = cr else {
        h.push_str("<p>CertificateRequest: none</p>");
        return;
    };
    let _ = write!(
        h,
        "<p>CertificateRequest: phase <b>{}</b> at {} ms",
        word(&cr.phase),
        cr.at_ms
    );
    if let Some(a) = cr.after_request_ms {
        let _ = write!(h, " ({a} ms after the request)");
    }
    if let Some(m) = cr.mandatory {
        h.push_str(if m { ", mandatory" } else { ", optional" });
    }
    h.push_str("</p>");
    match &cr.ca_names {
        None => h.push_str("<p>CA names: not visible (encrypted)</p>"),
        Some(n) if n.is_empty() => h.push_str("<p>CA names: empty list</p>"),
        Some(n) => {
            let _ = write!(h, "<p>CA names ({}):</p><ul>", n.len());
            for name in n {
                let _ = write!(h, "<li><code>{}</code></li>", esc(name));
            }
            h.push_str("</ul>");
        }
    }
    if !cr.signature_schemes.is_empty() {
        let _ = write!(
            h,
            "<p>Signature schemes: {}</p>",
            esc(&cr.signature_schemes.join(", "))
        );
    }
}

fn chain_html(h: &mut String, title: &str, chain: Option<&[CertSummary]>) {
    let chain = match chain {
        None => {
            let _ = write!(h, "<p>{}: not visible</p>", esc(title));
            return;
        }
        Some([]) => {
            let _ = write!(h, "<p>{}: none</p>", esc(title));
            return;
        }
        Some(c) => c,
    };
    let _ = write!(
        h,
        "<p>{}:</p><table><tr><th>#</th><th>subject</th><th>issuer</th><th>validity</th>\
         <th>EKU</th><th>key usage</th><th>SANs</th><th>fingerprints</th></tr>",
        esc(title)
    );
    for (i, c) in chain.iter().enumerate() {
        let _ = write!(
            h,
            "<tr><td>{i}</td><td>{}</td><td>{}</td><td>{} – {}</td><td>{}</td><td>{}</td>\
             <td>{}</td><td><code>SHA-256 {}<br>SHA-1 {}</code><br>serial {} · {}</td></tr>",
            esc(&c.subject),
            esc(&c.issuer),
            c.not_before.date(),
            c.not_after.date(),
            esc(&if c.has_eku {
                crate::facts::joined(&c.eku)
            } else {
                "(absent: any)".into()
            }),
            esc(&crate::facts::joined(&c.key_usage)),
            esc(&c.sans.join(", ")),
            esc(&c.sha256),
            esc(&c.sha1),
            esc(&c.serial),
            esc(&c.key),
        );
    }
    h.push_str("</table>");
}

fn alerts_html(h: &mut String, alerts: &[Alert]) {
    if alerts.is_empty() {
        return;
    }
    h.push_str("<p>Alerts:</p><table><tr><th>at ms</th><th>direction</th><th>level</th><th>alert</th><th>source</th></tr>");
    for a in alerts {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{} ({}){}</td><td>{}</td></tr>",
            a.at_ms,
            word(&a.direction),
            word(&a.level),
            esc(a.name()),
            a.code(),
            match (a.encrypted, a.unreadable()) {
                (false, _) => "",
                (true, true) => " — encrypted",
                (true, false) => " — encrypted; presumed from its place after application data",
            },
            esc(a.source.as_str())
        );
    }
    h.push_str("</table>");
}

fn renegotiations_html(h: &mut String, rs: &[Renegotiation]) {
    if rs.is_empty() {
        return;
    }
    h.push_str("<p>Renegotiations:</p><ul>");
    for r in rs {
        let _ = write!(
            h,
            "<li>at {} ms by {}{}</li>",
            r.at_ms,
            word(&r.initiated_by),
            esc(&r
                .outcome
                .as_ref()
                .map(|o| format!(": {o}"))
                .unwrap_or_default())
        );
    }
    h.push_str("</ul>");
}

fn events_html(h: &mut String, events: &[Event]) {
    if events.is_empty() {
        return;
    }
    h.push_str("<details><summary>Timed events</summary><table><tr><th>at ms</th><th>event</th><th>detail</th></tr>");
    for e in events {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            e.at_ms,
            esc(e.kind.as_str()),
            esc(e.detail.as_deref().unwrap_or(""))
        );
    }
    h.push_str("</table></details>");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnose::test_support::*;
    use std::path::PathBuf;

    #[test]
    fn recorded_strings_are_escaped() {
        let mut flow = success_builder()
            .response(
                403,
                "<script>alert(1)</script>",
                &[("x-evil", "\"><img src=x onerror=alert(1)>")],
            )
            .build();
        flow.findings = crate::diagnose::diagnose(&flow);
        assert!(!flow.findings.is_empty());
        let rec = Record {
            file: PathBuf::from("<rec>.jsonl"),
            line: 1,
            index: 1,
            flow: flow.into(),
            diagnosed_on_read: true,
        };
        let rows = vec![report::row(&rec)];
        let s = report::summary(&rows, &[]);
        let page = page(&[&rec], &rows, &s, &[]);
        assert!(!page.contains("<script>"), "{page}");
        assert!(!page.contains("<img"), "{page}");
        assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(page.contains("&lt;rec&gt;.jsonl:1"));
        assert!(page.contains("CN=client"));
        assert!(page.contains("Diagnosed on reading (--rediagnose)"));
        assert!(page.contains("<b>Fix:</b>"));
        assert!(page.contains("<svg"), "the flow's handshake ladder");
    }

    #[test]
    fn carriage_returns_in_a_body_stay_line_breaks() {
        assert_eq!(esc("a\r\nb\rc\u{7}"), "a\r\nb\rc\u{fffd}");
    }
}
