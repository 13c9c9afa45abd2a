//! A record as the log takes it: a kind, a wall-clock time and fields.
//! The chain stage adds `seq`, `prev_hash` and `hash`.
//!
//! JSON rules (docs/FORMAT.md): integers and strings only (flags are 0/1),
//! times in integer ns since the Unix epoch.

use serde_json::{Map, Value};

pub type Json = Map<String, Value>;

/// Wall-clock ns now.
pub fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid pointer; CLOCK_REALTIME always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
    (ts.tv_sec as i128 * 1_000_000_000 + ts.tv_nsec as i128).clamp(0, u64::MAX as i128) as u64
}

/// A record before chaining: its kind, its wall-clock time, and its fields.
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    pub kind: &'static str,
    pub time_ns: u64,
    pub fields: Json,
}

impl Record {
    pub fn new(kind: &'static str, time_ns: u64) -> Record {
        Record {
            kind,
            time_ns,
            fields: Json::new(),
        }
    }

    pub fn with(mut self, key: &str, v: impl Into<Value>) -> Record {
        self.fields.insert(key.into(), v.into());
        self
    }

    /// The JSON object: fields plus `kind` and `time_ns`.
    pub fn to_json(&self) -> Json {
        let mut m = self.fields.clone();
        m.insert("kind".into(), Value::String(self.kind.into()));
        m.insert("time_ns".into(), self.time_ns.into());
        m
    }
}
