//! A sink that writes each record as one canonical JSON line (sorted keys,
//! no whitespace) to any writer — stdout for `--print`.

use std::io::Write;

use anyhow::{Context, Result};
use serde_json::Value;

use crate::{record::Record, sink::Sink};

pub struct JsonLines<W: Write> {
    out: W,
}

impl<W: Write> JsonLines<W> {
    pub fn new(out: W) -> Self {
        JsonLines { out }
    }
}

impl<W: Write> Sink for JsonLines<W> {
    fn accept(&mut self, record: Record) -> Result<()> {
        serde_json::to_writer(&mut self.out, &Value::Object(record.to_json()))
            .context("writing a record")?;
        self.out.write_all(b"\n").context("writing a record")
    }

    fn flush(&mut self) -> Result<()> {
        self.out.flush().context("flushing records")
    }
}
