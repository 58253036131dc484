//! A flow diagnosed exactly once: [`Diagnosed`] is the only way to a flow whose findings are
//! set, so everything downstream of the diagnosis — the `Mtlscope-Diagnosis` header, the body of
//! a response mtlscope produces, the record, the terminal line, the web view — reads the same
//! findings instead of running the rules again.

use crate::facts::{Finding, Flow};
use std::sync::atomic::{AtomicU64, Ordering};

/// Runs of [`super::diagnose`] in this process.
pub(super) static CALLS: AtomicU64 = AtomicU64::new(0);

/// How many times this process has run the diagnosis rules on a flow. One relaxed counter; tests
/// read it to check that each flow is diagnosed once.
pub fn calls() -> u64 {
    CALLS.load(Ordering::Relaxed)
}

/// A flow and the findings the rules drew from it, computed once, when it was built.
#[derive(Clone, Debug)]
pub struct Diagnosed {
    /// The facts, with `findings` set and `diagnosed` true.
    flow: Flow,
}

impl Diagnosed {
    /// Run the rules on `flow` (once) and keep their findings with it.
    pub fn new(mut flow: Flow) -> Diagnosed {
        flow.findings = super::diagnose(&flow);
        flow.diagnosed = true;
        Diagnosed { flow }
    }

    /// The diagnosed flow.
    pub fn flow(&self) -> &Flow {
        &self.flow
    }

    /// Its findings, most severe first.
    pub fn findings(&self) -> &[Finding] {
        &self.flow.findings
    }

    /// Set the excerpt of the client's request body, known only once the body ended: no rule
    /// reads it, so the findings stay true.
    pub fn set_request_body_excerpt(&mut self, excerpt: Option<String>) {
        if let Some(r) = self.flow.request.as_mut() {
            r.body_excerpt = excerpt;
        }
    }

    /// Name the process that wrote the record (`Flow::run`): no rule reads it, so the findings
    /// stay true.
    pub fn stamp_run(&mut self, run: &str) {
        if self.flow.run.is_empty() {
            self.flow.run = run.to_string();
        }
    }

    /// The diagnosed flow, to record or show.
    pub fn into_flow(self) -> Flow {
        self.flow
    }

    /// The facts without the findings, for a flow whose facts change after it was diagnosed
    /// (a relayed error body that failed mid-way after its diagnosis header went out): the
    /// changed facts need their own diagnosis.
    pub fn into_facts(self) -> Flow {
        let mut flow = self.flow;
        flow.findings.clear();
        flow.diagnosed = false;
        flow
    }
}
