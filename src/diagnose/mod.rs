//! The diagnosis: a pure function from recorded facts to findings (ids from `DIAGNOSES.md`).

use crate::facts::{Finding, Flow};

/// Every finding the catalogue's rules draw from `flow`, most severe first.
pub fn diagnose(_flow: &Flow) -> Vec<Finding> {
    Vec::new()
}
