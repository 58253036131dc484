//! The error a command ends with, and its exit code (the interface contract: 0 ok, 2 bad usage or
//! configuration, 1 runtime failure).

use std::fmt;

/// A command's failure: a message for the user and the exit code it maps to.
#[derive(Debug)]
pub struct CommandError {
    /// 2 for usage/config errors, 1 for runtime failures.
    pub code: u8,
    /// Lowercase, names the flag, file or line at fault.
    pub message: String,
}

impl CommandError {
    /// A bad flag, file or configuration: exit code 2.
    pub fn usage(message: impl fmt::Display) -> CommandError {
        CommandError {
            code: 2,
            message: message.to_string(),
        }
    }

    /// Something failed while running: exit code 1.
    pub fn runtime(message: impl fmt::Display) -> CommandError {
        CommandError {
            code: 1,
            message: message.to_string(),
        }
    }
}

impl fmt::Display for CommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CommandError {}
