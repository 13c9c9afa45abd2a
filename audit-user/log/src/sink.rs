//! The boundary between capture and whatever consumes records next (chain +
//! store, or stdout). Records arrive in order; `flush` is called after every
//! drained batch, also when the batch was empty, so a sink can run timers
//! (group commit, heartbeat checkpoints) without a thread of its own.
//! Implementations: [`crate::store::Store`] (the log) and
//! [`crate::output::JsonLines`] (a plain JSON-lines writer).

use anyhow::Result;

use crate::record::{Json, Record};

pub trait Sink {
    /// A capture session begins; `scope` says what is audited (the cgroup
    /// path and id, or the root pid). The store records it as `start`.
    fn start(&mut self, scope: Json) -> Result<()> {
        let _ = scope;
        Ok(())
    }
    fn accept(&mut self, record: Record) -> Result<()>;
    /// Called after each drained batch: push buffered output onward.
    fn flush(&mut self) -> Result<()> {
        Ok(())
    }
}

impl Sink for Vec<Record> {
    fn accept(&mut self, record: Record) -> Result<()> {
        self.push(record);
        Ok(())
    }
}
