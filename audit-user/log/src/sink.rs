//! The boundary between capture and whatever consumes records next (chain +
//! store, or stdout). Records arrive in order; `flush` is called after every
//! drained batch, also when the batch was empty, so a sink can run timers
//! (group commit, heartbeat checkpoints) without a thread of its own.
//! Implementations: [`crate::store::Store`] (the log) and
//! [`crate::output::JsonLines`] (a plain JSON-lines writer).

use std::io;

use crate::{
    record::{Json, Record},
    store::StoreError,
};

/// Why a sink could not take a record: the caller tells a log failure
/// from its own by this type.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// The tamper-evident store failed (full disk, I/O error, bad state).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A plain output (`--print` to stdout) failed; `what` says doing what.
    #[error("{what}")]
    Write {
        what: &'static str,
        #[source]
        source: io::Error,
    },
    /// A sink defined outside this crate (a shipper, a test's counter).
    #[error(transparent)]
    Other(Box<dyn std::error::Error + Send + Sync>),
}

pub trait Sink {
    /// A capture session begins; `scope` says what is audited (the cgroup
    /// path and id, or the root pid). The store records it as `start`.
    fn start(&mut self, scope: Json) -> Result<(), SinkError> {
        let _ = scope;
        Ok(())
    }
    fn accept(&mut self, record: Record) -> Result<(), SinkError>;
    /// Called after each drained batch: push buffered output onward.
    fn flush(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
}

impl Sink for Vec<Record> {
    fn accept(&mut self, record: Record) -> Result<(), SinkError> {
        self.push(record);
        Ok(())
    }
}
