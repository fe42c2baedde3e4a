//! The one error type of xtask: a message for the user and the process exit
//! status to end with.
//!
//! Rules: every user-facing problem (a missing tool, a bad manifest, a failed
//! build) becomes a `Failure` that `main` prints as one `error: …` line, never
//! a panic. Messages name the file, field or command at fault, so nobody has to
//! rerun with a backtrace to find out what went wrong.

use std::fmt;
use std::io;

/// A user-facing failure: printed once by `main`, then the process exits.
#[derive(Debug, PartialEq, Eq)]
pub struct Failure {
    pub message: String,
    pub code: i32,
}

pub type Result<T> = std::result::Result<T, Failure>;

impl Failure {
    /// A failure that ends xtask with status 1, the usual case.
    pub fn new(message: impl Into<String>) -> Self {
        Failure {
            message: message.into(),
            code: 1,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// Shorthand for `Err(Failure::new(format!(…)))`.
macro_rules! bail {
    ($($arg:tt)*) => {
        return Err($crate::error::Failure::new(format!($($arg)*)))
    };
}
pub(crate) use bail;

/// The message for a program that could not be started at all. A missing
/// program gets its own wording because that is the common case on a fresh
/// machine and the fix (install it) differs from other I/O errors.
pub fn spawn_failure(program: &str, err: &io::Error) -> Failure {
    if err.kind() == io::ErrorKind::NotFound {
        Failure::new(format!("`{program}` not found on PATH"))
    } else {
        Failure::new(format!("could not start `{program}`: {err}"))
    }
}

/// Wraps an I/O error on a path into a failure that names the path.
pub fn io_failure(what: &str, path: &std::path::Path, err: &io::Error) -> Failure {
    Failure::new(format!("{what} {}: {err}", path.display()))
}
