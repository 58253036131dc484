//! Building a [`Finding`]: rules fill in words, this module marks an inference.

use crate::facts::{Finding, FindingId, Severity};

/// The evidence line of an inference starts with this; [`inferred`] builds it and [`finding`]
/// marks a finding that carries one as inferred.
pub(super) const INFERRED: &str = "inferred: ";

/// The evidence line saying what a finding concludes rather than observes, and what would
/// confirm it.
pub(super) fn inferred(text: impl AsRef<str>) -> String {
    format!("{INFERRED}{}", text.as_ref())
}

/// Build a finding (rules only fill in words).
pub(super) fn finding(
    id: FindingId,
    severity: Severity,
    summary: impl Into<String>,
    evidence: Vec<String>,
    fix: impl Into<String>,
) -> Finding {
    let inferred = evidence.iter().any(|e| e.starts_with(INFERRED));
    Finding {
        id,
        severity,
        summary: summary.into(),
        evidence,
        fix: fix.into(),
        inferred,
    }
}
