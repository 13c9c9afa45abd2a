//! Errors of a replay: bad arguments and unreadable input. Tampering is not
//! an error: it is part of the replay (verdicts and marks).

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A command-line value that cannot mean anything (bad time, glob, kind…).
    #[error("{option} {value:?}: {why}")]
    BadArgument {
        option: &'static str,
        value: String,
        why: String,
    },
    /// The log could not be verified at all (no segments, unreadable files).
    /// Holds the verifier's message: its error type is its own business.
    #[error("cannot verify the log: {0}")]
    Verify(String),
    #[error("writing the replay: {0}")]
    Write(#[from] std::io::Error),
}

impl Error {
    pub(crate) fn bad(option: &'static str, value: &str, why: impl Into<String>) -> Error {
        Error::BadArgument {
            option,
            value: value.to_string(),
            why: why.into(),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
