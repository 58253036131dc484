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
