//! The webhook transport (`https://…`, `http://` on loopback only): records
//! POSTed in NDJSON batches, one record per line, each line the record's
//! canonical JSON exactly as stored (so its `seq` and `hash` are in it and
//! the hash can be recomputed), `Content-Type: application/x-ndjson`. The
//! log's origin travels in the `X-Sandbox-Audit-Origin` header, the batch's
//! seq range in `X-Sandbox-Audit-Seq` (`FIRST-LAST`).
//!
//! A batch counts as delivered on a 2xx answer. 408, 429, 5xx, a timeout or
//! a broken connection end the session (the shipper backs off and resends
//! from the cursor); any other status is a permanent error.

use std::time::Duration;

use crate::{
    ShipError,
    http::{self, Client, Verdict},
    reader::Stored,
    transport::{Transport, transport_error},
};

/// Most bytes in one request body; a single larger record goes alone.
pub const MAX_BATCH_BYTES: usize = 4 << 20;

pub struct Webhook {
    client: Client,
    batch: usize,
    body: Vec<u8>,
    queued: usize,
    first_seq: u64,
    last_seq: u64,
    origin: String,
    confirmed: usize,
}

/// A header value from arbitrary text: visible ASCII kept, the rest
/// percent-encoded.
pub fn header_safe(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_graphic() && b != b'%' || b == b' ' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The error of a non-2xx answer, by its verdict.
pub fn status_error(client: &Client, what: &str, r: &http::Response, detail: &str) -> ShipError {
    let why = format!(
        "{what}: HTTP {} {}{}",
        r.status,
        r.reason,
        if detail.is_empty() {
            String::new()
        } else {
            format!(": {detail}")
        }
    );
    match http::verdict(r.status) {
        Verdict::Permanent => ShipError::Rejected {
            dest: client.dest.url.clone(),
            why,
        },
        _ => transport_error(&client.dest, why),
    }
}

impl Webhook {
    pub fn new(client: Client, batch: usize) -> Webhook {
        Webhook {
            client,
            batch: batch.max(1),
            body: Vec::new(),
            queued: 0,
            first_seq: 0,
            last_seq: 0,
            origin: String::new(),
            confirmed: 0,
        }
    }

    fn post(&mut self) -> Result<(), ShipError> {
        if self.queued == 0 {
            return Ok(());
        }
        let origin = header_safe(&self.origin);
        let seqs = format!("{}-{}", self.first_seq, self.last_seq);
        let r = self.client.request(
            "POST",
            &self.client.dest.target,
            &[
                ("Content-Type", "application/x-ndjson"),
                ("X-Sandbox-Audit-Origin", &origin),
                ("X-Sandbox-Audit-Seq", &seqs),
            ],
            &self.body,
        )?;
        if http::verdict(r.status) != Verdict::Accepted {
            let what = format!("the webhook refused records {seqs}");
            return Err(status_error(&self.client, &what, &r, &r.excerpt()));
        }
        self.confirmed += self.queued;
        self.queued = 0;
        self.body.clear();
        Ok(())
    }
}

impl Transport for Webhook {
    fn send(&mut self, rec: &Stored, origin: &str, _host: &str) -> Result<(), ShipError> {
        if self.queued > 0 && self.body.len() + rec.line.len() + 1 > MAX_BATCH_BYTES {
            self.post()?;
        }
        if self.queued == 0 {
            self.first_seq = rec.seq;
            if self.origin != origin {
                self.origin = origin.to_string();
            }
        }
        self.last_seq = rec.seq;
        self.body.extend_from_slice(&rec.line);
        self.body.push(b'\n');
        self.queued += 1;
        if self.queued >= self.batch {
            self.post()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), ShipError> {
        self.post()
    }

    fn confirmed(&mut self, wait: Duration) -> Result<usize, ShipError> {
        let n = std::mem::take(&mut self.confirmed);
        if n == 0 {
            std::thread::sleep(wait.min(Duration::from_millis(20)));
        }
        Ok(n)
    }

    fn window(&self) -> usize {
        self.batch
    }

    fn close(&mut self) {}

    fn lazy(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_values_stay_single_line() {
        assert_eq!(header_safe("host-1 a/b"), "host-1 a/b");
        assert_eq!(header_safe("a\r\nX: y%"), "a%0D%0AX: y%25");
        assert_eq!(header_safe("é"), "%C3%A9");
    }
}
