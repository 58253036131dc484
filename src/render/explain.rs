//! Explaining a flow in words: the `Mtlscope-Diagnosis` header value, the 502 body (text or
//! JSON) when the upstream leg could not be established, and the terminal log line.
//!
//! These only format findings and facts: callers hand them diagnosed flows (the sink diagnoses
//! every flow before it prints or records it), so every view shows the same conclusions.

use crate::facts::{
    AlertDescription, CertRequest, CertSummary, Finding, FindingId, Flow, Leg, Phase, RecordKind,
    Severity,
};
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

/// Every line of `text` through [`report::clean`]: a certificate's `CN=\e]0;…` cannot set a
/// terminal's title or clear its screen, whoever reads the line (the log, `curl`'s output).
pub fn clean_lines(text: &str) -> String {
    text.split('\n')
        .map(crate::render::report::clean)
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
fn headline(summary: &str) -> String {
    let first = match summary.find(". ") {
        Some(i) => &summary[..i],
        None => summary.trim_end_matches('.'),
    };
    let mut chars = first.chars();
    match (chars.next(), first.chars().nth(1)) {
        (Some(c), Some(n)) if c.is_uppercase() && n.is_lowercase() => {
            c.to_lowercase().chain(chars).collect()
        }
        _ => first.to_string(),
    }
}

/// Where the flow broke, in words.
fn what_failed(flow: &Flow) -> String {
    let legs = [
        ("upstream leg", &flow.upstream_leg),
        ("client leg", &flow.client_leg),
    ];
    for (name, leg) in legs {
        if let Some(leg) = leg {
            if let Some(f) = &leg.failure {
                let mut s = format!("the {name}, at {} ({})", f.stage, f.kind);
                if let Some(e) = &leg.error {
                    s.push_str(&format!(": {e}"));
                }
                return s;
            }
            if let Some(e) = &leg.error {
                return format!("the {name}: {e}");
            }
        }
    }
    match (&flow.error, &flow.upstream_leg) {
        (Some(e), _) => e.clone(),
        (None, None) => "the upstream leg was never opened".into(),
        (None, Some(_)) => "the upstream exchange did not complete".into(),
    }
}

/// Key TLS facts per leg, e.g. `upstream TLSv1.3: server asked for a cert (CA: CN=Root);
/// presented CN=client`.
fn tls_facts(flow: &Flow) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(leg) = &flow.client_leg {
        out.push(leg_facts("client", "mtlscope", "client", leg));
    }
    if let Some(leg) = &flow.upstream_leg {
        out.push(leg_facts("upstream", "server", "mtlscope", leg));
    }
    if let Some(w) = &flow.wire {
        out.push(facts_line(
            "wire",
            w.tls_version.map(|v| v.as_str()),
            w.alpn.as_deref(),
            "server",
            if w.cert_request_hidden() {
                Asked::Hidden
            } else if w.tls_version.is_none() && w.cert_request.is_none() {
                Asked::NotReached
            } else {
                Asked::Seen(w.cert_request.as_ref())
            },
            "client",
            w.client_chain.as_deref(),
            &w.alerts
                .iter()
                .filter(|a| a.description != AlertDescription::CloseNotify)
                .map(|a| {
                    let who = match a.direction {
                        crate::facts::Direction::Sent => "client",
                        crate::facts::Direction::Received => "server",
                    };
                    format!("{} from {who}", a.name())
                })
                .collect::<Vec<_>>(),
        ));
    }
    out
}

fn leg_facts(name: &str, asker: &str, presenter: &str, leg: &Leg) -> String {
    let alerts: Vec<String> = leg
        .alerts
        .iter()
        .filter(|a| a.description != AlertDescription::CloseNotify)
        .map(|a| {
            // `sent` is always mtlscope; `received` is its peer on this leg.
            let who = match a.direction {
                crate::facts::Direction::Sent => "mtlscope",
                crate::facts::Direction::Received if asker == "mtlscope" => presenter,
                crate::facts::Direction::Received => asker,
            };
            format!("{} from {who}", a.name())
        })
        .collect();
    facts_line(
        name,
        leg.protocol(),
        leg.alpn.as_deref(),
        asker,
        Asked::Seen(leg.cert_request.as_ref()),
        presenter,
        // What went on the wire: nothing when the handshake ended before the Certificate.
        (leg.certificate_sent != Some(false)).then_some(leg.chain.as_slice()),
        &alerts,
    )
}

/// What is known of a certificate request.
enum Asked<'a> {
    /// Seen (or known to be absent).
    Seen(Option<&'a CertRequest>),
    /// Encrypted on the wire (TLS 1.3): cannot tell.
    Hidden,
    /// The handshake never got that far: nothing to say.
    NotReached,
}

#[allow(clippy::too_many_arguments)] // one line, many small facts
fn facts_line(
    name: &str,
    version: Option<&str>,
    alpn: Option<&str>,
    asker: &str,
    asked: Asked<'_>,
    presenter: &str,
    chain: Option<&[CertSummary]>,
    alerts: &[String],
) -> String {
    let mut head = name.to_string();
    head.push(' ');
    head.push_str(version.unwrap_or("no TLS"));
    if let Some(a) = alpn {
        head.push_str(&format!(" {a}"));
    }
    let mut parts = Vec::new();
    let cr = match &asked {
        Asked::Seen(cr) => *cr,
        Asked::Hidden => {
            parts.push(format!(
                "whether the {asker} asked for a cert: encrypted: cannot tell"
            ));
            None
        }
        Asked::NotReached => None,
    };
    match cr {
        None if matches!(asked, Asked::Seen(_)) => parts.push(format!("{asker} asked for no cert")),
        None => {}
        Some(cr) => {
            let when = match cr.phase {
                Phase::Handshake => "",
                Phase::Renegotiation => " by renegotiation",
                Phase::PostHandshake => " after the handshake",
            };
            let cas = match &cr.ca_names {
                None => "not visible".to_string(),
                Some(n) if n.is_empty() => "empty list".to_string(),
                Some(n) if n.len() > 3 => format!("{}, … ({} names)", n[..3].join("; "), n.len()),
                Some(n) => n.join("; "),
            };
            parts.push(format!("{asker} asked for a cert{when} (CA: {cas})"));
        }
    }
    match chain {
        Some([]) if cr.is_some() => parts.push(format!("{presenter} presented none")),
        Some([]) => {}
        Some(chain) => parts.push(format!(
            "{presenter} presented {}",
            chain.first().map(|c| c.subject.as_str()).unwrap_or("")
        )),
        None if presenter == "mtlscope" => parts
            .push("mtlscope presented nothing (the handshake ended before its Certificate)".into()),
        None => parts.push(format!("{presenter}'s chain not visible")),
    }
    if !alerts.is_empty() {
        parts.push(format!("alerts: {}", alerts.join(", ")));
    }
    format!("{head}: {}", parts.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnose::diagnose;
    use crate::diagnose::test_support::*;
    use crate::facts::{
        CertRequest, Direction, Initiator, LegFailure, Phase, Renegotiation, TlsVersion,
    };

    // The renderers format what the diagnosis stage recorded; these tests diagnose first, as
    // the sink does, and shadow the renderers under test with that step.
    fn diagnosed(flow: &Flow) -> Flow {
        let mut flow = flow.clone();
        flow.findings = diagnose(&flow);
        flow
    }
    fn terminal_line(flow: &Flow) -> String {
        super::terminal_line(&diagnosed(flow))
    }
    fn error_body_text(flow: &Flow) -> String {
        super::error_body_text(&diagnosed(flow))
    }
    fn error_body_json(flow: &Flow) -> serde_json::Value {
        super::error_body_json(&diagnosed(flow))
    }

    fn no_identity_502() -> Flow {
        success_builder()
            .upstream(|l| {
                l.chain = vec![];
                l.identity = None;
                l.alerts = vec![alert(Direction::Received, 116, 12.0)];
                l.error = Some("received fatal alert: CertificateRequired".into());
                l.failure = Some(LegFailure {
                    stage: crate::facts::Stage::AfterHandshake,
                    kind: crate::facts::FailureKind::AlertReceived,
                });
            })
            .own_response(502)
            .build()
    }

    #[test]
    fn header_value_lists_ids_in_order() {
        let flow = no_identity_502();
        let findings = diagnose(&flow);
        assert_eq!(
            diagnosis_header_value(&findings).as_deref(),
            Some("no-client-cert, identity-not-forwarded")
        );
        assert_eq!(diagnosis_header_value(&[]), None);
    }

    #[test]
    fn text_body_explains_failure_findings_and_fix() {
        let body = error_body_text(&no_identity_502());
        assert!(body.starts_with(
            "mtlscope could not establish the connection to server.test:8443 for GET /secure."
        ));
        assert!(body.contains("What failed: the upstream leg, at after_handshake (alert_received)"));
        assert!(body.contains("upstream TLSv1.3 http/1.1: server asked for a cert (CA: CN=Root); mtlscope presented none; alerts: certificate_required from server"), "{body}");
        assert!(body.contains("1. [error] no-client-cert: "));
        assert!(body.contains("certificate_required (116)"));
        assert!(body.contains("Fix: mtlscope (client side): give it an upstream identity"));
    }

    #[test]
    fn json_body_carries_the_findings() {
        let v = error_body_json(&no_identity_502());
        assert_eq!(v["failure"]["kind"], "alert_received");
        assert_eq!(v["findings"][0]["id"], "no-client-cert");
        assert_eq!(v["findings"][0]["severity"], "error");
        assert_eq!(v["diagnosis"], "no-client-cert, identity-not-forwarded");
        assert_eq!(v["request"]["uri"], "/secure");
    }

    #[test]
    fn renderers_use_recorded_findings_when_present() {
        let mut flow = no_identity_502();
        flow.findings = vec![Finding {
            id: crate::facts::FindingId::InjectedFault,
            inferred: false,
            severity: Severity::Error,
            summary: "Recorded.".into(),
            evidence: vec![],
            fix: "none".into(),
        }];
        // Straight to the renderers: they show what was recorded, and decide nothing.
        assert!(super::terminal_line(&flow).contains("[injected-fault]"));
        assert_eq!(super::error_body_json(&flow)["diagnosis"], "injected-fault");
        flow.findings.clear();
        assert!(!super::terminal_line(&flow).contains('['));
    }

    #[test]
    fn terminal_line_for_a_refused_renegotiation() {
        let flow = success_builder()
            .upstream(|l| {
                l.tls_version = Some(TlsVersion::Tls12);
                l.cert_request = None;
                l.chain = vec![];
                l.renegotiations = vec![Renegotiation {
                    at_ms: 13.0,
                    initiated_by: Initiator::Server,
                    after_app_data_ms: None,
                    outcome: Some(crate::facts::RenegotiationOutcome::RefusedByMtlscope),
                    refused_by_mtlscope: true,
                }];
                l.alerts = vec![alert(Direction::Sent, 100, 13.1)];
            })
            .response(403, "", &[])
            .build();
        let line = terminal_line(&flow);
        let first = line.lines().next().unwrap();
        assert_eq!(
            first,
            "403 GET /secure ← the server asked for a client certificate by renegotiation 3 ms after the request; mtlscope refused it [renegotiation-requested]"
        );
        assert!(line.contains("upstream TLSv1.2 http/1.1: server asked for no cert; alerts: no_renegotiation from mtlscope"), "{line}");
    }

    #[test]
    fn terminal_line_for_a_failed_connection() {
        let flow = FlowBuilder::reverse()
            .connection()
            .client(|l| {
                l.cert_request = Some(CertRequest {
                    mandatory: Some(true),
                    ..cr(Phase::Handshake, &["Root"])
                });
                l.handshake_done_ms = None;
                l.alerts = vec![alert(Direction::Sent, 116, 4.0)];
                l.failure = Some(LegFailure {
                    stage: crate::facts::Stage::Handshake,
                    kind: crate::facts::FailureKind::NoCertificatesPresented,
                });
            })
            .build();
        let line = terminal_line(&flow);
        assert!(
            line.starts_with("conn 7 127.0.0.1:5555 ✗ handshake: mtlscope asked for a client certificate and the client sent none"),
            "{line}"
        );
        assert!(line.lines().next().unwrap().ends_with("[no-client-cert]"));
        assert!(line.contains(
            "client TLSv1.3: mtlscope asked for a cert (CA: CN=Root); client presented none"
        ));
    }

    #[test]
    fn terminal_line_for_a_success_has_no_ids() {
        let line = terminal_line(&success());
        assert!(line.starts_with("200 GET /secure\n"), "{line}");
        assert!(line.contains("upstream TLSv1.3 http/1.1: server asked for a cert (CA: CN=Root); mtlscope presented CN=client"));
        assert!(!line.contains('['));
    }

    #[test]
    fn tls13_wire_says_the_request_cannot_be_seen() {
        let flow = FlowBuilder::observe()
            .wire(|w| {
                w.tls_version = Some(TlsVersion::Tls13);
                w.cert_request = None;
                w.client_chain = None;
            })
            .build();
        let line = terminal_line(&flow);
        assert!(line.contains("encrypted: cannot tell"), "{line}");
        assert!(!line.contains("asked for no cert"), "{line}");
        let tls12 = FlowBuilder::observe()
            .wire(|w| {
                w.tls_version = Some(TlsVersion::Tls12);
                w.cert_request = None;
            })
            .build();
        assert!(terminal_line(&tls12).contains("server asked for no cert"));
    }

    #[test]
    fn escape_sequences_in_a_certificate_never_reach_the_terminal() {
        let evil = "CN=evil\u{1b}]0;PWNED\u{7}\u{1b}[2J";
        let flow = FlowBuilder::reverse()
            .client(|l| {
                let mut chain = good_chain();
                chain[0].subject = evil.to_string();
                l.chain = chain;
            })
            .get("/x\u{1b}[31m")
            .response(403, "", &[])
            .build();
        for text in [
            terminal_line(&flow),
            error_body_text(&flow),
            super::explained_block(&diagnosed(&flow)),
        ] {
            assert!(
                !text.chars().any(|c| c.is_control() && c != '\n'),
                "{text:?}"
            );
        }
        assert!(
            terminal_line(&flow).contains("CN=evil\u{fffd}]0;PWNED"),
            "{}",
            terminal_line(&flow)
        );
    }
}
