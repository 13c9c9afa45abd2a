//! Splunk HTTP Event Collector (`hec+https://HOST:PORT[/PREFIX][?QUERY]`)
//! with indexer acknowledgement.
//!
//! Each batch is one `POST PREFIX/services/collector/event[?QUERY]` with
//! `Authorization: Splunk TOKEN` and `X-Splunk-Request-Channel: CHANNEL`
//! (a UUID per destination, kept beside its cursor), a body of JSON events,
//! one per line:
//!
//! `{"time":SECS.MICROS,"host":HOST,"source":"sandbox-audit","sourcetype":"sandbox-audit","fields":{"origin":…,"seq":"N","hash":…},"event":RECORD}`
//!
//! where RECORD is the record's canonical JSON line exactly as stored. The
//! answer (`{"text":"Success","code":0,"ackId":N}`) gives the batch an
//! ackId; the batch counts as delivered only when
//! `POST PREFIX/services/collector/ack` (`{"acks":[N,…]}` →
//! `{"acks":{"N":true,…}}`) says it is indexed, and batches are confirmed in
//! send order. A batch without its ack after the ack timeout is taken as
//! lost: the session ends and everything unconfirmed is sent again from the
//! cursor (duplicates stay within the window of unacknowledged batches).

use std::{
    collections::VecDeque,
    time::{Duration, Instant},
};

use serde_json::Value;

use crate::{
    ShipError,
    http::{self, Client, Verdict},
    reader::Stored,
    syslog::APP_NAME,
    transport::{Transport, transport_error},
    webhook::{MAX_BATCH_BYTES, status_error},
};

/// How often pending acks are asked for.
const POLL_EVERY: Duration = Duration::from_millis(100);
/// Unacknowledged batches at once.
pub const BATCHES_IN_FLIGHT: usize = 8;
/// The environment variable a token may come from.
pub const TOKEN_ENV: &str = "SANDBOX_AUDIT_HEC_TOKEN";

struct Pending {
    ack_id: u64,
    records: usize,
    first_seq: u64,
    sent: Instant,
    acked: bool,
}

pub struct Hec {
    client: Client,
    token: String,
    channel: String,
    event_target: String,
    ack_target: String,
    batch: usize,
    ack_timeout: Duration,
    body: Vec<u8>,
    queued: usize,
    first_seq: u64,
    pending: VecDeque<Pending>,
    last_poll: Instant,
}

/// The event and ack request targets of a destination's path and query:
/// the path, less a trailing `/services/collector[/event]`, is a prefix
/// (for a proxy); the query goes with the events only.
pub fn targets(target: &str) -> (String, String) {
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    };
    let p = path.trim_end_matches('/');
    let prefix = p
        .strip_suffix("/services/collector/event")
        .or_else(|| p.strip_suffix("/services/collector"))
        .unwrap_or(p);
    let mut event = format!("{prefix}/services/collector/event");
    if let Some(q) = query.filter(|q| !q.is_empty()) {
        event.push('?');
        event.push_str(q);
    }
    (event, format!("{prefix}/services/collector/ack"))
}

/// One HEC event line (with its trailing newline) for a record.
pub fn event(rec: &Stored, origin: &str, host: &str, out: &mut Vec<u8>) {
    let s = |v: &str| Value::String(v.to_string()).to_string();
    out.extend_from_slice(
        format!(
            "{{\"time\":{}.{:06},\"host\":{},\"source\":\"{APP_NAME}\",\"sourcetype\":\"{APP_NAME}\",\
             \"fields\":{{\"origin\":{},\"seq\":\"{}\",\"hash\":\"{}\"}},\"event\":",
            rec.time_ns / 1_000_000_000,
            rec.time_ns % 1_000_000_000 / 1000,
            s(host),
            s(origin),
            rec.seq,
            hex::encode(rec.hash),
        )
        .as_bytes(),
    );
    out.extend_from_slice(&rec.line);
    out.extend_from_slice(b"}\n");
}

/// The `{"text","code"}` of an HEC answer, for errors.
fn hec_text(r: &http::Response) -> String {
    match serde_json::from_slice::<Value>(&r.body) {
        Ok(v) if v.get("text").is_some() => format!(
            "{} (HEC code {})",
            v["text"].as_str().unwrap_or("?"),
            v.get("code").map_or("?".into(), |c| c.to_string())
        ),
        _ => r.excerpt(),
    }
}

impl Hec {
    pub fn new(
        client: Client,
        token: String,
        channel: String,
        batch: usize,
        ack_timeout: Duration,
    ) -> Hec {
        let (event_target, ack_target) = targets(&client.dest.target);
        Hec {
            client,
            token,
            channel,
            event_target,
            ack_target,
            batch: batch.max(1),
            ack_timeout,
            body: Vec::new(),
            queued: 0,
            first_seq: 0,
            pending: VecDeque::new(),
            last_poll: Instant::now(),
        }
    }

    /// An answer's text, without the token (a receiver might echo it).
    fn detail(&self, r: &http::Response) -> String {
        hec_text(r).replace(&self.token, "<token>")
    }

    fn request(&self, target: &str, body: &[u8]) -> Result<http::Response, ShipError> {
        let auth = format!("Splunk {}", self.token);
        self.client.request(
            "POST",
            target,
            &[
                ("Authorization", &auth),
                ("X-Splunk-Request-Channel", &self.channel),
                ("Content-Type", "application/json"),
            ],
            body,
        )
    }

    fn post(&mut self) -> Result<(), ShipError> {
        if self.queued == 0 {
            return Ok(());
        }
        let r = self.request(&self.event_target, &self.body)?;
        let last = self.first_seq + self.queued as u64 - 1;
        if http::verdict(r.status) != Verdict::Accepted {
            let what = format!("HEC refused records {}-{last}", self.first_seq);
            return Err(status_error(&self.client, &what, &r, &self.detail(&r)));
        }
        let ack_id = serde_json::from_slice::<Value>(&r.body)
            .ok()
            .and_then(|v| v.get("ackId").and_then(Value::as_u64));
        let Some(ack_id) = ack_id else {
            return Err(ShipError::Rejected {
                dest: self.client.dest.url.clone(),
                why: format!(
                    "HEC accepted records {}-{last} without an ackId ({}): indexer \
                     acknowledgement is off for this token, and without it delivery cannot \
                     be confirmed; enable it (useACK)",
                    self.first_seq,
                    self.detail(&r)
                ),
            });
        };
        self.pending.push_back(Pending {
            ack_id,
            records: self.queued,
            first_seq: self.first_seq,
            sent: Instant::now(),
            acked: false,
        });
        self.queued = 0;
        self.body.clear();
        Ok(())
    }

    fn poll(&mut self) -> Result<(), ShipError> {
        self.last_poll = Instant::now();
        let ids: Vec<u64> = self
            .pending
            .iter()
            .filter(|p| !p.acked)
            .map(|p| p.ack_id)
            .collect();
        if ids.is_empty() {
            return Ok(());
        }
        let body = serde_json::json!({ "acks": ids }).to_string();
        let r = self.request(&self.ack_target, body.as_bytes())?;
        if http::verdict(r.status) != Verdict::Accepted {
            return Err(status_error(
                &self.client,
                "HEC refused the ack query",
                &r,
                &self.detail(&r),
            ));
        }
        let v: Value = serde_json::from_slice(&r.body).map_err(|e| {
            transport_error(
                &self.client.dest,
                format!("HEC ack answer is not JSON ({e}): {}", r.excerpt()),
            )
        })?;
        let acks = v.get("acks").and_then(Value::as_object).ok_or_else(|| {
            transport_error(
                &self.client.dest,
                format!("HEC ack answer has no `acks` object: {}", r.excerpt()),
            )
        })?;
        for p in self.pending.iter_mut() {
            if acks.get(&p.ack_id.to_string()).and_then(Value::as_bool) == Some(true) {
                p.acked = true;
            }
        }
        Ok(())
    }
}

impl Transport for Hec {
    fn send(&mut self, rec: &Stored, origin: &str, host: &str) -> Result<(), ShipError> {
        if self.queued > 0 && self.body.len() + rec.line.len() + 512 > MAX_BATCH_BYTES {
            self.post()?;
        }
        if self.queued == 0 {
            self.first_seq = rec.seq;
        }
        event(rec, origin, host, &mut self.body);
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
        let idle = |w: Duration| std::thread::sleep(w.min(Duration::from_millis(20)));
        if self.pending.is_empty() {
            idle(wait);
            return Ok(0);
        }
        if self.last_poll.elapsed() >= POLL_EVERY {
            self.poll()?;
        }
        let mut n = 0;
        while self.pending.front().is_some_and(|p| p.acked) {
            n += self.pending.pop_front().map_or(0, |p| p.records);
        }
        if n == 0 {
            if let Some(p) = self.pending.front()
                && p.sent.elapsed() > self.ack_timeout
            {
                return Err(transport_error(
                    &self.client.dest,
                    format!(
                        "no indexer acknowledgement for ackId {} (records {}-{}) within {} ms: \
                         taken as lost, resending from the cursor",
                        p.ack_id,
                        p.first_seq,
                        p.first_seq + p.records as u64 - 1,
                        self.ack_timeout.as_millis()
                    ),
                ));
            }
            idle(wait);
        }
        Ok(n)
    }

    fn window(&self) -> usize {
        self.batch * BATCHES_IN_FLIGHT
    }

    fn close(&mut self) {}

    fn lazy(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reader::Position;

    #[test]
    fn targets_keep_a_prefix_and_the_query_for_events() {
        for (t, e, a) in [
            ("/", "/services/collector/event", "/services/collector/ack"),
            (
                "/services/collector/event?index=audit",
                "/services/collector/event?index=audit",
                "/services/collector/ack",
            ),
            (
                "/splunk/services/collector",
                "/splunk/services/collector/event",
                "/splunk/services/collector/ack",
            ),
            (
                "/hec/",
                "/hec/services/collector/event",
                "/hec/services/collector/ack",
            ),
        ] {
            assert_eq!(targets(t), (e.to_string(), a.to_string()), "{t}");
        }
    }

    #[test]
    fn an_event_wraps_the_stored_line_unchanged() {
        let rec = Stored {
            seq: 7,
            hash: [0x11; 32],
            time_ns: 1_700_000_000_123_456_789,
            kind: "exec".into(),
            line: br#"{"kind":"exec","seq":7}"#.to_vec(),
            after: Position::default(),
        };
        let mut out = Vec::new();
        event(&rec, "o\"1", "h", &mut out);
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.ends_with(",\"event\":{\"kind\":\"exec\",\"seq\":7}}\n"),
            "{text}"
        );
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["time"].as_f64().unwrap(), 1_700_000_000.123456);
        assert_eq!(v["host"], "h");
        assert_eq!(v["sourcetype"], "sandbox-audit");
        assert_eq!(v["fields"]["origin"], "o\"1");
        assert_eq!(v["fields"]["seq"], "7");
        assert_eq!(v["fields"]["hash"], "11".repeat(32));
        assert_eq!(v["event"]["seq"], 7);
    }
}
