//! Finding our records in what a receiver stored, for `verify --anchor`
//! and `verify --against`. One line of the receiver's file holds at most
//! one shipped record, in whichever form a shipper produced it:
//!
//! - rsyslog's file: `[sandbox-audit@32473 origin="…" seq="…" hash="…"] RECORD`
//!   (or a whole RFC 5424 message), the record JSON after the structured data;
//! - an NDJSON dump of the webhook: the record itself, or wrapped as
//!   `{"record": …}` / `{"event": …}` / `{"message": …}`;
//! - HEC events: `{"time":…,"fields":{"origin":…},"event":RECORD}`;
//! - `--ship-format ocsf|ecs`: the mapped event, with the canonical record
//!   as a string in `raw_data` (OCSF) or `event.original` (ECS), and the
//!   origin in `unmapped.sandbox_audit.origin` / `sandbox_audit.origin`.
//!
//! The record's bytes are taken exactly as they appear (an object in the
//! line, or the string's content), so a record whose receiver kept it byte
//! for byte can be compared byte for byte; a receiver that re-serialized
//! the JSON is handled by re-encoding it canonically.

use serde_json::{Map, Value};

use crate::syslog::SD_ID;

/// String members that carry a record's canonical line (OCSF `raw_data`,
/// ECS `event.original`, or ours).
const STRING_PATHS: [&[&str]; 3] = [
    &["raw_data"],
    &["event", "original"],
    &["sandbox_audit", "record"],
];

/// Members that carry the log's origin in a wrapper.
const ORIGIN_PATHS: [&[&str]; 3] = [
    &["fields", "origin"],
    &["sandbox_audit", "origin"],
    &["unmapped", "sandbox_audit", "origin"],
];

/// How many `{` of one line are tried as the start of a JSON value: a
/// foreign line full of braces must not cost quadratic time.
const MAX_TRIES: usize = 64;

/// One record found in a receiver's line.
#[derive(Clone, Debug)]
pub struct Embedded {
    pub record: Map<String, Value>,
    /// The record's JSON as the receiver holds it.
    pub bytes: Vec<u8>,
    /// The log's origin, when the line says (structured data or wrapper).
    pub origin: Option<String>,
}

fn get_path<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(v, |v, k| v.get(k))
}

/// The `origin` SD-PARAM of our structured data, unescaped (RFC 5424 6.3.3).
pub fn sd_origin(line: &str) -> Option<String> {
    let at = line.find(&format!("[{SD_ID} "))?;
    let rest = &line[at..];
    let start = rest.find(" origin=\"")? + " origin=\"".len();
    let mut out = String::new();
    let mut chars = rest[start..].chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push(chars.next()?),
            '"' => return Some(out),
            c => out.push(c),
        }
    }
    None
}

/// Whether a line claims to come from sandbox-audit (so that a line that
/// holds no record we can read is reported, not silently skipped).
pub fn looks_ours(line: &str) -> bool {
    line.contains(SD_ID) || line.contains("\"sandbox_audit\"") || line.contains("sandbox-audit")
}

/// The first record in `line` that `want` accepts.
pub fn record_in_line(line: &str, want: impl Fn(&Map<String, Value>) -> bool) -> Option<Embedded> {
    let sd = sd_origin(line);
    let mut wrapper_origin = None;
    for (i, _) in line.match_indices('{').take(MAX_TRIES) {
        let mut it = serde_json::Deserializer::from_str(&line[i..]).into_iter::<Value>();
        let Some(Ok(v)) = it.next() else { continue };
        let end = i + it.byte_offset();
        let Value::Object(o) = &v else { continue };
        let origin = || sd.clone().or(wrapper_origin.clone());
        if want(o) {
            return Some(Embedded {
                origin: origin(),
                record: o.clone(),
                bytes: line.as_bytes()[i..end].to_vec(),
            });
        }
        if wrapper_origin.is_none() {
            wrapper_origin = ORIGIN_PATHS
                .iter()
                .find_map(|p| get_path(&v, p).and_then(Value::as_str))
                .map(str::to_string);
        }
        for p in STRING_PATHS {
            let Some(s) = get_path(&v, p).and_then(Value::as_str) else {
                continue;
            };
            if let Ok(Value::Object(r)) = serde_json::from_str::<Value>(s)
                && want(&r)
            {
                return Some(Embedded {
                    origin: sd.or(wrapper_origin),
                    record: r,
                    bytes: s.as_bytes().to_vec(),
                });
            }
        }
    }
    None
}

/// A chained record: `kind`, `seq`, `hash` and `prev_hash` present.
pub fn is_chained_record(o: &Map<String, Value>) -> bool {
    o.get("kind").is_some_and(Value::is_string)
        && o.get("seq").is_some_and(Value::is_u64)
        && o.get("hash").is_some_and(Value::is_string)
        && o.get("prev_hash").is_some_and(Value::is_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    const REC: &str = r#"{"hash":"ab","kind":"exec","prev_hash":"cd","seq":7,"time_ns":1}"#;

    fn found(line: &str) -> Embedded {
        record_in_line(line, is_chained_record).unwrap_or_else(|| panic!("nothing in {line}"))
    }

    #[test]
    fn finds_the_record_in_every_shipped_form() {
        let esc = serde_json::to_string(REC).unwrap();
        let lines = [
            (
                format!("[{SD_ID} origin=\"h \\\"x\\\"\" seq=\"7\" hash=\"ab\"] {REC}"),
                Some("h \"x\""),
            ),
            (
                format!(
                    "<110>1 2024-01-01T00:00:00Z h sandbox-audit - exec [{SD_ID} origin=\"o\" seq=\"7\"] {REC}"
                ),
                Some("o"),
            ),
            (REC.to_string(), None),
            (format!("{{\"record\":{REC}}}"), None),
            (
                format!(
                    "{{\"time\":1.0,\"fields\":{{\"origin\":\"o2\",\"seq\":\"7\"}},\"event\":{REC}}}"
                ),
                Some("o2"),
            ),
            (
                format!(
                    "{{\"class_uid\":1007,\"raw_data\":{esc},\"unmapped\":{{\"sandbox_audit\":{{\"origin\":\"o3\"}}}}}}"
                ),
                Some("o3"),
            ),
            (
                format!(
                    "{{\"event\":{{\"original\":{esc}}},\"sandbox_audit\":{{\"origin\":\"o4\"}}}}"
                ),
                Some("o4"),
            ),
        ];
        for (line, origin) in lines {
            let e = found(&line);
            assert_eq!(e.bytes, REC.as_bytes(), "{line}");
            assert_eq!(e.origin.as_deref(), origin, "{line}");
            assert_eq!(e.record["seq"], 7);
        }
        assert!(record_in_line("plain text {not json} {\"a\":1}", is_chained_record).is_none());
        assert!(looks_ours(&format!("[{SD_ID} seq=\"1\"] {{broken")));
        assert!(!looks_ours("kernel: eth0 up"));
    }
}
