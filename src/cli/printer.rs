//! The terminal line per flow: a subscriber the long-running commands attach to their sink
//! (unless `--quiet`), so the sink records and hands on flows and never prints.

use crate::facts::Flow;
use crate::record::{Sink, Subscribe};
use std::sync::Arc;

/// Prints each diagnosed flow to standard output as it is emitted; stops printing (and the
/// command goes on) once standard output is a closed pipe.
#[derive(Clone, Copy, Debug)]
pub struct Printer {
    /// Also print each finding's evidence and fix under its flow (`-v/--explain`).
    explain: bool,
}

impl Printer {
    /// A printer of one line per flow, or of a block with evidence and fix when `explain`.
    pub fn new(explain: bool) -> Printer {
        Printer { explain }
    }

    /// `sink`, printing through `printer` when there is one.
    pub fn attach(printer: Option<Printer>, sink: Sink) -> Sink {
        match printer {
            Some(p) => sink.subscribe(p),
            None => sink,
        }
    }
}

impl Subscribe for Printer {
    fn flow(&self, flow: &Arc<Flow>) {
        let text = if self.explain {
            crate::render::explain::explained_block(flow)
        } else {
            crate::render::explain::terminal_line(flow)
        };
        crate::io::stdout::try_write(format_args!("{text}\n"));
    }
}
