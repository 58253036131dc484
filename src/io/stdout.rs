//! Standard output for a reader that may go away (`mtlscope report … | head`).
//!
//! `println!` panics when stdout is a closed pipe (Rust ignores SIGPIPE, so the write fails with
//! EPIPE). One-shot commands print through [`out!`](crate::out)/[`outln!`](crate::outln), which
//! end the process quietly with exit 0 when the reader has gone (there is nobody left to tell);
//! the long-running modes print their per-flow lines through [`try_write`], which reports the
//! closed pipe so the mode stops printing and keeps relaying and recording.

use std::io::{ErrorKind, Write};
use std::sync::atomic::{AtomicBool, Ordering};

/// Set once stdout has been found closed by [`try_write`].
static CLOSED: AtomicBool = AtomicBool::new(false);

/// Write `args` to stdout; on a closed pipe, exit 0 at once. Another write error ends the
/// process with exit 1 and a message on stderr.
pub fn write_or_exit(args: std::fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    let done = out.write_fmt(args).and_then(|()| out.flush());
    match done {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::BrokenPipe => std::process::exit(0),
        Err(e) => {
            eprintln!("mtlscope: cannot write to standard output: {e}");
            std::process::exit(1);
        }
    }
}

/// Write `args` to stdout unless it has been found closed; false once it is closed (the
/// caller stops printing, the process goes on).
pub fn try_write(args: std::fmt::Arguments<'_>) -> bool {
    if CLOSED.load(Ordering::Relaxed) {
        return false;
    }
    let mut out = std::io::stdout().lock();
    match out.write_fmt(args).and_then(|()| out.flush()) {
        Ok(()) => true,
        Err(e) => {
            CLOSED.store(true, Ordering::Relaxed);
            if e.kind() != ErrorKind::BrokenPipe {
                tracing::warn!(error = %e, "cannot write to standard output; no more terminal lines");
            }
            false
        }
    }
}

/// `print!` that ends the process quietly when stdout is a closed pipe.
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => { $crate::io::stdout::write_or_exit(format_args!($($arg)*)) };
}

/// `println!` that ends the process quietly when stdout is a closed pipe.
#[macro_export]
macro_rules! outln {
    () => { $crate::io::stdout::write_or_exit(format_args!("\n")) };
    ($($arg:tt)*) => {
        $crate::io::stdout::write_or_exit(format_args!("{}\n", format_args!($($arg)*)))
    };
}
