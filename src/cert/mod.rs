//! Certificates as facts: summarising DER once ([`summarize`]) and reasoning about summaries
//! ([`reason`]): CA-name matching, completeness, validity, purpose.

mod known;
pub mod reason;
pub(crate) mod summary;

pub use known::KnownCerts;

pub use summary::{dn_to_string, hex, summarize, summarize_chain, unhex, SummaryError};
