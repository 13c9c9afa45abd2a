//! A sink that writes each record as one canonical JSON line (sorted keys,
//! no whitespace) to any writer — stdout for `--print`.

use std::io::{self, Write};

use serde_json::Value;

use crate::{
    record::Record,
    sink::{Sink, SinkError},
};

pub struct JsonLines<W: Write> {
    out: W,
}

impl<W: Write> JsonLines<W> {
    pub fn new(out: W) -> Self {
        JsonLines { out }
    }
}

fn write_error(what: &'static str) -> impl FnOnce(io::Error) -> SinkError {
    move |source| SinkError::Write { what, source }
}

impl<W: Write> Sink for JsonLines<W> {
    fn accept(&mut self, record: Record) -> Result<(), SinkError> {
        serde_json::to_writer(&mut self.out, &Value::Object(record.to_json()))
            .map_err(io::Error::from)
            .map_err(write_error("writing a record"))?;
        self.out
            .write_all(b"\n")
            .map_err(write_error("writing a record"))
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        self.out.flush().map_err(write_error("flushing records"))
    }
}
