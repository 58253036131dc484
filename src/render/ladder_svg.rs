//! The handshake ladder drawn as a self-contained SVG for `report --html` (the web view draws
//! the same [`Ladder`] from its JSON).

use super::escape::esc;
use super::ladder::{Ladder, Step, StepKind};
use crate::facts::{joined, CertSummary};
use std::fmt::Write as _;

/// Lane centres in the SVG.
const LANE_X: [u32; 3] = [120, 430, 740];
const SVG_WIDTH: u32 = 900;
const ROW: u32 = 30;
const DETAIL_LINE: u32 = 14;
const LANE_NAMES: [&str; 3] = ["client", "mtlscope", "server"];

/// The ladder as a self-contained SVG (no scripts; certificate facts in `<title>` tooltips).
pub fn svg(l: &Ladder) -> String {
    let rows: u32 = l
        .steps
        .iter()
        .map(|s| ROW + DETAIL_LINE * s.details.len() as u32 + DETAIL_LINE * s.certs.len() as u32)
        .sum();
    let height = 50 + rows + 20;
    let mut h = String::new();
    let _ = write!(
        h,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"ladder\" width=\"{SVG_WIDTH}\" \
         height=\"{height}\" viewBox=\"0 0 {SVG_WIDTH} {height}\" font-family=\"system-ui,sans-serif\" \
         font-size=\"12\"><defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" \
         markerWidth=\"7\" markerHeight=\"7\" orient=\"auto-start-reverse\"><path d=\"M0,0L10,5L0,10z\" \
         fill=\"#555\"/></marker></defs>"
    );
    for (i, x) in LANE_X.iter().enumerate() {
        let _ = write!(
            h,
            "<text x=\"{x}\" y=\"20\" text-anchor=\"middle\" font-weight=\"bold\">{}</text>\
             <line x1=\"{x}\" y1=\"30\" x2=\"{x}\" y2=\"{}\" stroke=\"#999\"/>",
            LANE_NAMES[i],
            height - 10
        );
    }
    let mut y = 50;
    for s in &l.steps {
        let colour = colour(s);
        let _ = write!(
            h,
            "<text x=\"4\" y=\"{}\" fill=\"#777\">{:.1} ms</text>",
            y + 4,
            s.at_ms
        );
        let (x1, x2) = (LANE_X[s.from.index()], LANE_X[s.to.index()]);
        let mid = (x1 + x2) / 2;
        if s.kind == StepKind::Note {
            let _ = write!(
                h,
                "<line x1=\"{x1}\" y1=\"{y}\" x2=\"{x2}\" y2=\"{y}\" stroke=\"{colour}\" \
                 stroke-dasharray=\"3 3\"/>"
            );
        } else {
            let _ = write!(
                h,
                "<line x1=\"{x1}\" y1=\"{y}\" x2=\"{x2}\" y2=\"{y}\" stroke=\"{colour}\" \
                 stroke-width=\"{}\" marker-end=\"url(#arrow)\"/>",
                if s.late || s.fatal { 2.5 } else { 1.5 }
            );
        }
        let _ = write!(
            h,
            "<text x=\"{mid}\" y=\"{}\" text-anchor=\"middle\" fill=\"{colour}\">{}{}</text>",
            y - 5,
            esc(&s.label),
            if s.late { " — late" } else { "" }
        );
        let mut dy = y + DETAIL_LINE;
        for d in &s.details {
            let _ = write!(
                h,
                "<text x=\"{mid}\" y=\"{dy}\" text-anchor=\"middle\" fill=\"#444\" font-size=\"11\">{}</text>",
                esc(d)
            );
            dy += DETAIL_LINE;
        }
        for c in &s.certs {
            let _ = write!(
                h,
                "<text x=\"{mid}\" y=\"{dy}\" text-anchor=\"middle\" fill=\"#046\" font-size=\"11\">\
                 <title>{}</title>{}</text>",
                esc(&cert_tooltip(c)),
                esc(&c.subject)
            );
            dy += DETAIL_LINE;
        }
        y = dy - DETAIL_LINE + ROW;
    }
    h.push_str("</svg>");
    h
}

/// Subject, issuer, validity, EKU and fingerprint, one per line.
pub fn cert_tooltip(c: &CertSummary) -> String {
    format!(
        "subject: {}\nissuer: {}\nvalid: {} – {}\nEKU: {}\nSHA-256: {}",
        c.subject,
        c.issuer,
        c.not_before.date(),
        c.not_after.date(),
        if c.has_eku {
            joined(&c.eku)
        } else {
            "(absent: any)".into()
        },
        c.sha256
    )
}

fn colour(s: &Step) -> &'static str {
    match s.kind {
        _ if s.fatal => "#b00",
        StepKind::Alert => "#c60",
        StepKind::CertRequest | StepKind::Renegotiation if s.late => "#a0a",
        StepKind::CertRequest | StepKind::Renegotiation => "#06c",
        StepKind::Certificate => "#046",
        StepKind::Http => "#070",
        StepKind::Tcp | StepKind::Note => "#777",
        StepKind::Handshake => "#333",
    }
}

#[cfg(test)]
#[path = "ladder_tests.rs"]
mod tests;
