//! The boundary between capture and whatever consumes records next (chain +
//! store, or stdout). Records arrive in order; `flush` is called after every
//! drained batch, also when the batch was empty, so a sink can run timers
//! (group commit, heartbeat checkpoints) without a thread of its own.

use anyhow::Result;

use crate::record::Record;

pub trait Sink {
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
