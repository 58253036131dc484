//! Explaining a flow in words: the `Mtlscope-Diagnosis` header value, the 502 body (text or
//! JSON) when the upstream leg could not be established, and the terminal log line.
//!
//! These only format findings and facts: callers hand them diagnosed flows (the sink diagnoses
//! every flow before it prints or records it), so every view shows the same conclusions.

use super::leg_facts::{tls_facts, what_failed};
use crate::facts::{Finding, FindingId, Flow, RecordKind, Severity};
use serde_json::json;

/// The `Mtlscope-Diagnosis` header value: the finding ids, most severe first (`id, id`);
/// `None` when there are no findings.
pub fn diagnosis_header_value(findings: &[Finding]) -> Option<String> {
    (!findings.is_empty()).then(|| {
        findings
            .iter()
            .map(|f| f.id.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    })
}

/// The flow's findings, as the diagnosis stage recorded them.
fn findings(flow: &Flow) -> &[Finding] {
    &flow.findings
}

fn severity_word(s: Severity) -> &'static str {
    match s {
        Severity::Error => "error",
        Severity::Warning => "warning",
        Severity::Info => "info",
    }
}

/// The body of a response mtlscope produced itself. For a 502 (the upstream leg failed): what
/// failed, the key TLS facts, then each finding with its evidence and fix; for another status
/// (407, 400, 508): why mtlscope answered, then the findings.
pub fn error_body_text(flow: &Flow) -> String {
    clean_lines(&error_body_text_raw(flow))
}

/// Every line of `text` through [`super::escape::clean`]: a certificate's `CN=\e]0;…` cannot set a
/// terminal's title or clear its screen, whoever reads the line (the log, `curl`'s output).
pub fn clean_lines(text: &str) -> String {
    text.split('\n')
        .map(super::escape::clean)
        .collect::<Vec<_>>()
        .join("\n")
}

fn error_body_text_raw(flow: &Flow) -> String {
    let findings = findings(flow);
    let status = flow.status().unwrap_or(502);
    let mut s = String::new();
    if status != 502 {
        let why = flow
            .error
            .as_deref()
            .unwrap_or("mtlscope answered this request itself");
        s.push_str(&format!("mtlscope: {status}: {why}\n"));
        if !findings.is_empty() {
            s.push('\n');
            s.push_str(&findings_text(findings));
        }
        return s;
    }
    let target = flow.upstream.as_deref().unwrap_or("the upstream server");
    s.push_str(&format!(
        "mtlscope could not establish the connection to {target}"
    ));
    if let Some(r) = &flow.request {
        s.push_str(&format!(" for {} {}", r.method, r.uri));
    }
    s.push_str(".\n\n");
    s.push_str(&format!("What failed: {}\n", what_failed(flow)));
    let facts = tls_facts(flow);
    if !facts.is_empty() {
        s.push_str("TLS facts:\n");
        for f in &facts {
            s.push_str(&format!("  - {f}\n"));
        }
    }
    s.push('\n');
    if findings.is_empty() {
        s.push_str("No finding explains this failure; the facts above are all mtlscope saw.\n");
        return s;
    }
    s.push_str(&findings_text(findings));
    s
}

/// Findings as a numbered list with severity, evidence and fix (cleaned for a terminal).
pub fn findings_text(findings: &[Finding]) -> String {
    clean_lines(&findings_text_raw(findings))
}

fn findings_text_raw(findings: &[Finding]) -> String {
    let mut s = String::from("Diagnosis:\n");
    for (i, f) in findings.iter().enumerate() {
        s.push_str(&format!(
            "\n{}. [{}] {}: {}\n",
            i + 1,
            severity_word(f.severity),
            f.id,
            f.summary
        ));
        if !f.evidence.is_empty() {
            s.push_str("   Evidence:\n");
            for e in &f.evidence {
                s.push_str(&format!("   - {e}\n"));
            }
        }
        s.push_str(&format!("   Fix: {}\n", f.fix));
    }
    if findings.iter().any(|f| f.inferred) {
        s.push_str("\nFindings that say \"likely\" are inferred; their evidence says what would confirm them.\n");
    }
    s
}

/// A flow for `mtlscope demo`: the terminal line, then the findings in full.
pub fn demo_block(flow: &Flow) -> String {
    let findings = findings(flow);
    let mut s = terminal_line(flow);
    s.push('\n');
    if findings.is_empty() {
        s.push_str("  no findings: nothing went wrong\n");
    } else {
        for line in findings_text(findings).lines() {
            if !line.is_empty() {
                s.push_str("  ");
                s.push_str(line);
            }
            s.push('\n');
        }
    }
    s
}

/// A flow for `-v/--explain`: the terminal line, then each finding with its evidence and fix,
/// indented under it (nothing more for a flow without findings).
pub fn explained_block(flow: &Flow) -> String {
    let mut s = terminal_line(flow);
    if !flow.findings.is_empty() {
        s.push('\n');
        s.push_str(&indented(&findings_text(&flow.findings)));
    }
    s
}

/// Every line of `text` indented by two spaces (blank lines kept blank), without a final
/// newline.
pub fn indented(text: &str) -> String {
    text.lines()
        .map(|l| {
            if l.is_empty() {
                String::new()
            } else {
                format!("  {l}")
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The 502 body as JSON: the same content as [`error_body_text`], structured.
pub fn error_body_json(flow: &Flow) -> serde_json::Value {
    let findings = findings(flow);
    let failure = flow
        .upstream_leg
        .as_ref()
        .and_then(|l| l.failure.as_ref())
        .map(|f| json!({ "stage": f.stage, "kind": f.kind }));
    json!({
        "error": "upstream connection failed",
        "upstream": flow.upstream,
        "request": flow.request.as_ref().map(|r| json!({ "method": r.method, "uri": r.uri })),
        "what_failed": what_failed(flow),
        "failure": failure,
        "tls": tls_facts(flow),
        "diagnosis": diagnosis_header_value(findings),
        "findings": findings,
    })
}

/// Print a flow's terminal line; a closed stdout (a pager that quit) is not an error.
pub fn print_line(flow: &Flow) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout().lock(), "{}", terminal_line(flow));
}

/// One or two lines for the terminal log: the outcome, the headline finding and the ids, then
/// the key TLS facts of each leg.
pub fn terminal_line(flow: &Flow) -> String {
    clean_lines(&terminal_line_raw(flow))
}

fn terminal_line_raw(flow: &Flow) -> String {
    let findings = findings(flow);
    let tail = match findings.first() {
        Some(f) => format!(
            "{} [{}]",
            headline(&f.summary),
            diagnosis_header_value(findings).unwrap_or_default()
        ),
        None => String::new(),
    };
    let mut line = match flow.kind {
        RecordKind::Exchange => {
            let status = flow
                .status()
                .map(|s| s.to_string())
                .unwrap_or_else(|| "---".into());
            let req = flow
                .request
                .as_ref()
                .map(|r| format!("{} {}", r.method, r.uri))
                .unwrap_or_else(|| "(no request)".into());
            if tail.is_empty() {
                format!("{status} {req}")
            } else {
                format!("{status} {req} ← {tail}")
            }
        }
        RecordKind::Connection => {
            let addr = flow.client_addr.as_deref().unwrap_or("-");
            let stage = [&flow.client_leg, &flow.upstream_leg]
                .into_iter()
                .flatten()
                .find_map(|l| l.failure.as_ref().map(|f| f.stage));
            let port_check = findings.iter().any(|f| f.id == FindingId::PortCheck);
            let stage = stage.or_else(|| {
                flow.wire
                    .as_ref()
                    .and_then(|w| w.failure.as_ref().map(|f| f.stage))
            });
            let failed = stage.is_some()
                || flow.error.is_some()
                || findings.iter().any(|f| f.severity == Severity::Error);
            // A port check is no failed connection; on the wire (observe) the server's answer
            // is encrypted, so a session without a visible failure is "cannot tell", never ✓.
            let (mark, stage) = match (port_check, failed, flow.wire.is_some()) {
                (true, _, _) => ("·", None),
                (false, true, _) => ("✗", stage),
                (false, false, true) => ("?", stage),
                (false, false, false) => ("✓", stage),
            };
            let tail = if tail.is_empty() && flow.wire.is_some() && !failed {
                "cannot tell whether the server accepted: its answer is encrypted".to_string()
            } else {
                tail
            };
            let stage = stage.map(|s| format!(" {s}:")).unwrap_or_default();
            let tail = if tail.is_empty() {
                flow.error.clone().unwrap_or_else(|| "closed".into())
            } else {
                tail
            };
            format!("conn {} {addr} {mark}{stage} {tail}", flow.connection_id)
        }
    };
    let facts = tls_facts(flow);
    if !facts.is_empty() {
        line.push_str("\n  ");
        line.push_str(&facts.join(" | "));
    }
    line
}

/// A summary as a headline: first sentence, lowercase start, no final period.
pub(crate) fn headline(summary: &str) -> String {
    let first = match summary.find(". ") {
        Some(i) => &summary[..i],
        None => summary.trim_end_matches('.'),
    };
    crate::diagnose::view::lower_first(first)
}

#[cfg(test)]
#[path = "explain_tests.rs"]
mod tests;
