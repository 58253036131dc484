//! The terminal view of an [`InspectReport`]: a view only, every judgement is in the report.

use super::inspect::{CertReport, FileReport, InspectReport};
use std::fmt::Write as _;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// The report as text for a terminal.
pub fn render_text(report: &InspectReport) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "judged at {}", rfc3339(report.at));
    if let Some(list) = &report.ca_names {
        let _ = writeln!(
            s,
            "acceptable-CA list from {}: {}",
            list.file.display(),
            list.names.join("; ")
        );
    }
    for file in &report.files {
        s.push('\n');
        render_file(&mut s, file, report.at);
    }
    s
}

fn render_file(s: &mut String, file: &FileReport, at: OffsetDateTime) {
    let n = file.certificates.len();
    let _ = writeln!(
        s,
        "{}: {n} certificate{}",
        file.path.display(),
        if n == 1 { "" } else { "s" }
    );
    for cert in &file.certificates {
        render_cert(s, cert, at);
    }
    let chain = &file.chain;
    if chain.order_breaks.is_empty() {
        let _ = writeln!(s, "  chain order: ok");
    }
    for b in &chain.order_breaks {
        let _ = writeln!(
            s,
            "  chain order: BROKEN after #{}: it was issued by {}, but the next certificate is {}",
            b.position, b.issuer, b.next_subject
        );
    }
    match &chain.missing_issuer {
        None => {
            let _ = writeln!(s, "  chain end: a self-issued certificate (complete)");
        }
        Some(issuer) if n == 1 => {
            let _ = writeln!(
                s,
                "  chain end: the leaf alone; its issuer {issuer} is not in the file (the peer \
                 must already have it, or every intermediate up to a trusted root)"
            );
        }
        Some(issuer) => {
            let _ = writeln!(
                s,
                "  chain end: issued by {issuer}, not in the file (fine when that is the \
                 peer's trusted root)"
            );
        }
    }
    if file.client_purpose_problems.is_empty() {
        let _ = writeln!(s, "  key usage and EKU: allow client authentication");
    } else {
        for p in &file.client_purpose_problems {
            let _ = writeln!(s, "  key usage and EKU: NOT FOR CLIENTS: {p}");
        }
    }
    if let Some(check) = &file.ca_names_check {
        let verdict = if check.satisfied {
            "satisfied"
        } else {
            "NOT SATISFIED"
        };
        let _ = writeln!(s, "  acceptable-CA list: {verdict}: {}", check.explanation);
    }
    if let Some(check) = &file.trust_check {
        let verdict = if check.verifies { "ok" } else { "FAILED" };
        let _ = writeln!(
            s,
            "  trust ({}): {verdict}: {}",
            check.file.display(),
            check.explanation
        );
    }
    if let Some(check) = &file.key_check {
        let verdict = if check.matches {
            "matches"
        } else {
            "DOES NOT MATCH"
        };
        let _ = writeln!(
            s,
            "  key ({}): {verdict}: {}",
            check.file.display(),
            check.explanation
        );
    }
    if file.usable {
        let _ = writeln!(s, "  verdict: usable as a client certificate");
    } else {
        let _ = writeln!(s, "  verdict: NOT USABLE as a client certificate:");
        for p in &file.problems {
            let _ = writeln!(s, "    - {p}");
        }
    }
}

fn render_cert(s: &mut String, cert: &CertReport, at: OffsetDateTime) {
    let c = &cert.summary;
    let _ = writeln!(s, "  #{} {}", cert.position, cert.role);
    let mut line = |k: &str, v: &str| {
        let _ = writeln!(s, "      {k:<14} {v}");
    };
    line("subject", &c.subject);
    line("issuer", &c.issuer);
    line("serial", &c.serial);
    let state = match cert.validity {
        "expired" => format!("EXPIRED {} ago", ago(at - c.not_after)),
        "not_yet_valid" => format!("NOT YET VALID, starts in {}", ago(c.not_before - at)),
        _ => "valid".to_string(),
    };
    line(
        "validity",
        &format!(
            "{} to {}: {state}",
            rfc3339(c.not_before),
            rfc3339(c.not_after)
        ),
    );
    line("key", &c.key);
    line("key usage", &listed(c.has_key_usage, &c.key_usage));
    line("extended usage", &listed(c.has_eku, &c.eku));
    line(
        "SANs",
        &if c.sans.is_empty() {
            "none".into()
        } else {
            c.sans.join(", ")
        },
    );
    line("CA", if c.is_ca { "yes" } else { "no" });
    line("SHA-256", &colons(&c.sha256));
    line("SHA-1", &colons(&c.sha1));
}

fn listed<T: std::fmt::Display>(present: bool, items: &[T]) -> String {
    if !present {
        "(extension absent: any)".into()
    } else if items.is_empty() {
        "(empty)".into()
    } else {
        crate::facts::joined(items)
    }
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_else(|_| t.to_string())
}

/// A duration as the largest sensible unit.
fn ago(d: time::Duration) -> String {
    let (days, hours, minutes) = (d.whole_days(), d.whole_hours(), d.whole_minutes());
    if days >= 2 {
        format!("{days} days")
    } else if hours >= 2 {
        format!("{hours} hours")
    } else {
        format!("{} minutes", minutes.max(0))
    }
}

/// `ab12…` as `AB:12:…`, as openssl and browsers show fingerprints.
fn colons(hex: &str) -> String {
    hex.as_bytes()
        .chunks(2)
        .map(|p| String::from_utf8_lossy(p).to_ascii_uppercase())
        .collect::<Vec<_>>()
        .join(":")
}
