//! Reading a [`Flow`] in tests: its finding ids, its legs, and the wire words (event names,
//! alert descriptions) that the recording's JSON spells. The words are read here, and only
//! here, through each fact's serialized form, so a change in how the Rust types hold them
//! changes this file and no test.

use mtlscope::facts::{FindingId, Flow, Leg};

/// The flow's finding ids, in order.
pub fn ids(flow: &Flow) -> Vec<FindingId> {
    flow.findings.iter().map(|f| f.id).collect()
}

/// The flow's first finding id, if any.
pub fn first_id(flow: &Flow) -> Option<FindingId> {
    flow.findings.first().map(|f| f.id)
}

/// Whether the flow has finding `id`.
pub fn has(flow: &Flow, id: FindingId) -> bool {
    flow.findings.iter().any(|f| f.id == id)
}

/// The flow's finding `id` (panics, showing the findings, when there is none).
pub fn finding(flow: &Flow, id: FindingId) -> &mtlscope::facts::Finding {
    flow.findings
        .iter()
        .find(|f| f.id == id)
        .unwrap_or_else(|| panic!("no {id:?} in {:#?}", flow.findings))
}

/// The client leg (panics, showing the flow, when there is none).
pub fn client(flow: &Flow) -> &Leg {
    flow.client_leg
        .as_deref()
        .unwrap_or_else(|| panic!("no client leg: {flow:#?}"))
}

/// The upstream leg (panics, showing the flow, when there is none).
pub fn upstream(flow: &Flow) -> &Leg {
    flow.upstream_leg
        .as_deref()
        .unwrap_or_else(|| panic!("no upstream leg: {flow:#?}"))
}

/// The response status (panics when there is no response).
pub fn status(flow: &Flow) -> u16 {
    flow.response
        .as_ref()
        .unwrap_or_else(|| panic!("no response: {flow:#?}"))
        .status
}

/// The request's HTTP version as the recording spells it (`HTTP/1.1`, `HTTP/2.0`).
pub fn http_version(flow: &Flow) -> String {
    word(flow.request.as_ref().expect("a request"), "version")
}

/// The leg's event names, as the recording spells them (`tcp_accept`, `client_hello`, …).
pub fn events(leg: &Leg) -> Vec<String> {
    event_names(&leg.events)
}

/// Event names, as the recording spells them (a leg's, or the wire's of `observe`).
pub fn event_names(events: &[mtlscope::facts::Event]) -> Vec<String> {
    events.iter().map(|e| word(e, "name")).collect()
}

/// Whether the leg has an event named `name`.
pub fn has_event(leg: &Leg, name: &str) -> bool {
    events(leg).iter().any(|e| e == name)
}

/// The leg's alert descriptions, as the recording spells them (`certificate_required`, …).
pub fn alerts(leg: &Leg) -> Vec<String> {
    descriptions(&leg.alerts)
}

/// Alert descriptions, as the recording spells them.
pub fn descriptions(alerts: &[mtlscope::facts::Alert]) -> Vec<String> {
    alerts.iter().map(|a| word(a, "description")).collect()
}

/// What `observe` (or a passthrough tunnel) read off the wire (panics when nothing).
pub fn wire(flow: &Flow) -> &mtlscope::facts::Wire {
    flow.wire
        .as_ref()
        .unwrap_or_else(|| panic!("no wire facts: {flow:#?}"))
}

/// The descriptions of the alerts mtlscope sent on the leg (on observe: the client sent).
pub fn sent_alerts(leg: &Leg) -> Vec<String> {
    leg.alerts
        .iter()
        .filter(|a| a.direction == mtlscope::facts::Direction::Sent)
        .map(|a| word(a, "description"))
        .collect()
}

/// Whether the leg carries an alert described as `description`.
pub fn has_alert(leg: &Leg, description: &str) -> bool {
    alerts(leg).iter().any(|a| a == description)
}

/// A response or request header's value by name (case-insensitive).
pub fn header<'a>(headers: &'a [mtlscope::facts::Header], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case(name))
        .map(|h| h.value.as_str())
}

/// `field` of `fact`'s serialized form, as text.
fn word(fact: &impl serde::Serialize, field: &str) -> String {
    let v = serde_json::to_value(fact).expect("facts serialize");
    v[field].as_str().unwrap_or_default().to_string()
}
