//! The crate's typed errors. Each names the file, destination or field.

use std::{io, path::PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ShipError {
    #[error("bad destination `{url}`: {why}")]
    BadUrl { url: String, why: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path}: {why}")]
    BadFile { path: PathBuf, why: String },
    #[error("{at}: the store's chain does not continue where shipping stands: {why}")]
    Chain { at: String, why: String },
    #[error("{dest}: {why}")]
    Transport { dest: String, why: String },
    /// The destination refused what it was sent in a way resending will
    /// not fix (an HTTP 4xx other than 408/429, a bad HEC token, indexer
    /// acknowledgement disabled): shipping to it halts.
    #[error("{dest}: {why} (a permanent error: shipping to this destination stops)")]
    Rejected { dest: String, why: String },
    #[error("TLS setup: {0}")]
    Tls(String),
    #[error("{0}")]
    Anchor(String),
}

impl ShipError {
    pub fn io(path: impl Into<PathBuf>, source: io::Error) -> ShipError {
        ShipError::Io {
            path: path.into(),
            source,
        }
    }
}
