//! Placeholder until the diagnosis branch lands its renderers.

use crate::facts::Flow;

/// One terminal line for a flow.
pub fn terminal_line(flow: &Flow) -> String {
    let ids: Vec<&str> = flow.findings.iter().map(|f| f.id.as_str()).collect();
    match (&flow.request, &flow.response) {
        (Some(req), Some(resp)) => format!(
            "{} {} {} [{}]",
            resp.status,
            req.method,
            req.uri,
            ids.join(", ")
        ),
        _ => format!(
            "conn {} {} [{}]",
            flow.connection_id,
            flow.error.as_deref().unwrap_or("closed"),
            ids.join(", ")
        ),
    }
}

/// `Mtlscope-Diagnosis` value.
pub fn diagnosis_header_value(findings: &[crate::facts::Finding]) -> Option<String> {
    (!findings.is_empty()).then(|| {
        findings
            .iter()
            .map(|f| f.id.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    })
}

/// 502 body, text.
pub fn error_body_text(flow: &Flow) -> String {
    let leg = flow
        .upstream_leg
        .as_ref()
        .and_then(|l| l.error.clone())
        .unwrap_or_default();
    format!("mtlscope: the upstream leg failed: {leg}\n")
}

/// 502 body, JSON.
pub fn error_body_json(flow: &Flow) -> serde_json::Value {
    serde_json::json!({ "error": error_body_text(flow), "findings": flow.findings })
}
