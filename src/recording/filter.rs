//! Which records a view shows: `--finding`, `--host`, `--status`, `--since/--until`, `--run`,
//! `--only-failures`, applied to each record as it is read (so a day of traffic is cut down
//! to the failures without holding it). A filter only reads facts and recorded findings; it
//! decides nothing about them.

use super::Record;
use crate::facts::{Flow, RecordKind, Severity};
use time::OffsetDateTime;

/// One `--status` value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatusMatch {
    /// Exactly this status code.
    Code(u16),
    /// A class: `4xx` is `Class(4)`.
    Class(u16),
    /// `none`: no response (an exchange without one, or a connection record).
    NoResponse,
}

impl StatusMatch {
    /// Parse `403`, `4xx` or `none`.
    pub fn parse(text: &str) -> Result<StatusMatch, String> {
        let t = text.trim().to_ascii_lowercase();
        if t == "none" {
            return Ok(StatusMatch::NoResponse);
        }
        if let Some(class) = t.strip_suffix("xx") {
            if let Ok(c @ 1..=5) = class.parse::<u16>() {
                return Ok(StatusMatch::Class(c));
            }
        }
        match t.parse::<u16>() {
            Ok(code @ 100..=599) => Ok(StatusMatch::Code(code)),
            _ => Err(format!(
                "{text:?} is not a status (a code like 403, a class like 5xx, or none)"
            )),
        }
    }

    fn matches(self, status: Option<u16>) -> bool {
        match (self, status) {
            (StatusMatch::Code(c), Some(s)) => c == s,
            (StatusMatch::Class(c), Some(s)) => s / 100 == c,
            (StatusMatch::NoResponse, None) => true,
            _ => false,
        }
    }
}

/// Parse an RFC 3339 time given to `flag` (`--since`, `--until`).
pub fn parse_time(flag: &str, text: &str) -> Result<OffsetDateTime, String> {
    OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).map_err(|e| {
        format!("{flag}: {text:?} is not an RFC 3339 time like 2026-03-01T09:00:00Z ({e})")
    })
}

/// Which records a view shows. Every condition given must hold; a list holds when any of its
/// values does.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    /// Only records that failed: a 4xx/5xx status, a recorded error, or an error finding.
    pub only_failures: bool,
    /// Only records carrying this finding id (`--finding`, `--id`).
    pub id: Option<String>,
    /// Only records of this run (`Flow::run`).
    pub run: Option<String>,
    /// Only flows to one of these hosts: the SNI of either leg or the wire, the request's
    /// `host` (or `:authority`), or the upstream, without port, case-insensitive; a leading
    /// `*.` matches any subdomain.
    pub hosts: Vec<String>,
    /// Only these statuses.
    pub statuses: Vec<StatusMatch>,
    /// Only flows at or after this time (the request's, else the connection's).
    pub since: Option<OffsetDateTime>,
    /// Only flows before this time.
    pub until: Option<OffsetDateTime>,
}

impl Filter {
    /// Whether `record` passes.
    pub fn keeps(&self, record: &Record) -> bool {
        self.keeps_flow(&record.flow)
    }

    /// Whether a flow passes.
    pub fn keeps_flow(&self, flow: &Flow) -> bool {
        if self.only_failures && !failed(flow) {
            return false;
        }
        if self.run.as_ref().is_some_and(|run| &flow.run != run) {
            return false;
        }
        if let Some(id) = &self.id {
            if !flow.findings.iter().any(|f| f.id.as_str() == id.as_str()) {
                return false;
            }
        }
        if !self.statuses.is_empty() && !self.statuses.iter().any(|s| s.matches(flow.status())) {
            return false;
        }
        if self.since.is_some() || self.until.is_some() {
            let at = when(flow);
            if self.since.is_some_and(|t| at < t) || self.until.is_some_and(|t| at >= t) {
                return false;
            }
        }
        if !self.hosts.is_empty()
            && !hosts_of(flow).any(|h| self.hosts.iter().any(|p| host_matches(p, &h)))
        {
            return false;
        }
        true
    }

    /// Whether any condition is set (a view can then say how many records were left out).
    pub fn is_active(&self) -> bool {
        self.only_failures
            || self.id.is_some()
            || self.run.is_some()
            || !self.hosts.is_empty()
            || !self.statuses.is_empty()
            || self.since.is_some()
            || self.until.is_some()
    }
}

/// When a flow happened: its request's arrival, else its connection's accept.
pub fn when(flow: &Flow) -> OffsetDateTime {
    match (&flow.request, flow.kind) {
        (Some(r), RecordKind::Exchange) if r.at_ms.is_finite() && r.at_ms >= 0.0 => {
            flow.started_at + time::Duration::seconds_f64(r.at_ms / 1000.0)
        }
        _ => flow.started_at,
    }
}

/// The names a flow went to, without ports.
fn hosts_of(flow: &Flow) -> impl Iterator<Item = String> + '_ {
    let legs = [&flow.client_leg, &flow.upstream_leg]
        .into_iter()
        .flatten()
        .filter_map(|l| l.sni.clone());
    let wire = flow.wire.as_ref().and_then(|w| w.sni.clone());
    let header = flow.request.as_ref().and_then(|r| {
        r.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case("host") || h.name == ":authority")
            .map(|h| h.value.clone())
    });
    legs.chain(wire)
        .chain(header)
        .chain(flow.upstream.clone())
        .map(|h| strip_port(&h).to_ascii_lowercase())
}

/// `host:port`, `[v6]:port` or `host` → the host.
fn strip_port(h: &str) -> &str {
    if let Some(rest) = h.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match h.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') && port.parse::<u16>().is_ok() => host,
        _ => h,
    }
}

fn host_matches(pattern: &str, host: &str) -> bool {
    let p = pattern.to_ascii_lowercase();
    match p.strip_prefix("*.") {
        Some(suffix) => host
            .strip_suffix(suffix)
            .is_some_and(|head| head.ends_with('.') && head.len() > 1),
        None => strip_port(&p) == host,
    }
}

/// Whether the facts or recorded findings say the flow failed.
pub fn failed(flow: &Flow) -> bool {
    if port_check(flow) {
        return false;
    }
    flow.status().is_some_and(|s| s >= 400)
        || flow.error.is_some()
        || [&flow.client_leg, &flow.upstream_leg]
            .into_iter()
            .flatten()
            .any(|l| l.error.is_some() || l.failure.is_some())
        || flow.wire.as_ref().is_some_and(|w| w.failure.is_some())
        || flow.findings.iter().any(|f| f.severity == Severity::Error)
}

/// Whether the flow is a port check (a connection that sent nothing): not a failure, counted
/// apart.
pub fn port_check(flow: &Flow) -> bool {
    flow.findings
        .iter()
        .any(|f| f.id == crate::facts::FindingId::PortCheck)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnose::test_support::*;

    #[test]
    fn statuses_hosts_and_times() {
        assert_eq!(StatusMatch::parse("5xx"), Ok(StatusMatch::Class(5)));
        assert_eq!(StatusMatch::parse("403"), Ok(StatusMatch::Code(403)));
        assert!(StatusMatch::parse("6xx")
            .unwrap_err()
            .contains("not a status"));
        let flow = success_builder()
            .client(|l| l.sni = Some("API.example.test".into()))
            .response(403, "", &[])
            .build();
        let f = |hosts: &[&str], statuses: &[&str]| Filter {
            hosts: hosts.iter().map(|h| h.to_string()).collect(),
            statuses: statuses
                .iter()
                .map(|s| StatusMatch::parse(s).unwrap())
                .collect(),
            ..Filter::default()
        };
        assert!(f(&["api.example.test"], &[]).keeps_flow(&flow));
        assert!(f(&["*.example.test"], &["4xx"]).keeps_flow(&flow));
        assert!(
            f(&["server.test:8443"], &[]).keeps_flow(&flow),
            "the upstream"
        );
        assert!(!f(&["example.test"], &[]).keeps_flow(&flow));
        assert!(!f(&[], &["5xx", "none"]).keeps_flow(&flow));
        let at = when(&flow);
        let since = Filter {
            since: Some(at + time::Duration::SECOND),
            ..Filter::default()
        };
        assert!(!since.keeps_flow(&flow));
        let until = Filter {
            until: Some(at + time::Duration::SECOND),
            ..Filter::default()
        };
        assert!(until.keeps_flow(&flow));
        assert!(parse_time("--since", "yesterday")
            .unwrap_err()
            .contains("--since"));
    }
}
