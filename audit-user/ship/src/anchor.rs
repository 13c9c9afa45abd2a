//! `verify --anchor FILE` with what a receiver stored: rsyslog's output
//! file (one message per line, the record JSON somewhere in it) or an NDJSON
//! dump (one record per line, bare or wrapped as `{"record": {...}}` /
//! `{"event": {...}}`), HEC events, or OCSF/ECS events
//! ([`crate::received`]). Checkpoints travel in every stream, so the newest
//! checkpoint note of the log in that file is an anchor held off the host:
//! verify then proves the log still reaches it with the same tree, which
//! catches a cut tail and a replaced log.

use std::{
    collections::BTreeMap,
    fs,
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
};

use audit_log::{
    chain::parse_line,
    checkpoint::{parse_checkpoint, parse_note},
    lifecycle::LifecycleKind,
    recover, segment,
};
use serde_json::Value;

use crate::{ShipError, received};

/// A checkpoint found in a receiver's file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    pub origin: String,
    pub size: u64,
    /// The signed note, as `verify --anchor` takes it.
    pub note: String,
    /// 1-based line of the file it came from.
    pub line: usize,
}

/// The note of the first checkpoint record in `line`, in any form a
/// shipper produced it ([`crate::received`]).
fn note_in_line(line: &str) -> Option<String> {
    if !line.contains("note") {
        return None;
    }
    let is_checkpoint = |o: &serde_json::Map<String, Value>| {
        o.get("kind").and_then(Value::as_str) == Some(LifecycleKind::Checkpoint.as_str())
            && o.get("note").is_some_and(Value::is_string)
    };
    let e = received::record_in_line(line, is_checkpoint)?;
    e.record.get("note")?.as_str().map(str::to_string)
}

/// Every parsable checkpoint in `text` (lines that do not parse are
/// someone else's messages and are skipped), newest per origin.
pub fn newest_per_origin(text: impl BufRead) -> Result<BTreeMap<String, Found>, String> {
    let mut best: BTreeMap<String, Found> = BTreeMap::new();
    for (i, line) in text.split(b'\n').enumerate() {
        let line = line.map_err(|e| format!("line {}: {e}", i + 1))?;
        let Some(note) = note_in_line(&String::from_utf8_lossy(&line)) else {
            continue;
        };
        let Ok(cp) = parse_note(&note).and_then(|n| parse_checkpoint(&n.body)) else {
            continue;
        };
        let found = Found {
            origin: cp.origin.clone(),
            size: cp.size,
            note,
            line: i + 1,
        };
        match best.get(&cp.origin) {
            Some(b) if b.size >= cp.size => {}
            _ => {
                best.insert(cp.origin, found);
            }
        }
    }
    Ok(best)
}

/// The anchor to check `origin`'s log against: its newest checkpoint in the
/// file. When the file holds no checkpoint of that origin but those of
/// exactly one other log, that one is returned (verify then reports the
/// origin mismatch: the log here is not the one shipped).
pub fn newest_checkpoint(path: &Path, origin: Option<&str>) -> Result<Found, ShipError> {
    let f = fs::File::open(path).map_err(|e| ShipError::io(path, e))?;
    let all = newest_per_origin(BufReader::new(f))
        .map_err(|e| ShipError::Anchor(format!("{}: {e}", path.display())))?;
    if let Some(o) = origin
        && let Some(f) = all.get(o)
    {
        return Ok(f.clone());
    }
    if all.len() == 1
        && let Some(only) = all.values().next()
    {
        return Ok(only.clone());
    }
    match (all.len(), origin) {
        (0, _) => Err(ShipError::Anchor(format!(
            "{} holds no checkpoint note (neither a note file nor a receiver's file with shipped checkpoint records)",
            path.display()
        ))),
        (_, o) => Err(ShipError::Anchor(format!(
            "{} holds checkpoints of {} logs ({}){}; cannot tell which one this log should be",
            path.display(),
            all.len(),
            all.keys().cloned().collect::<Vec<_>>().join(", "),
            o.map(|o| format!(", none of {o}")).unwrap_or_default()
        ))),
    }
}

/// The origin a log claims in its genesis record: `files` are the segment
/// files in order (or one directory).
pub fn log_origin(files: &[PathBuf]) -> Option<String> {
    let first = match files {
        [d] if d.is_dir() => return recover::genesis(d).ok().flatten().map(|(_, o)| o),
        _ => files.first()?,
    };
    let f = fs::File::open(first).ok()?;
    let mut line = Vec::new();
    BufReader::new(f).read_until(b'\n', &mut line).ok()?;
    let line = line.strip_suffix(b"\n")?;
    let p = parse_line(line).ok()?;
    if LifecycleKind::of(p.kind(line)) != Some(LifecycleKind::Genesis) {
        return None;
    }
    let v: Value = serde_json::from_slice(line).ok()?;
    v.get("origin")?.as_str().map(str::to_string)
}

/// The segment files of a directory (for callers that only have the dir).
pub fn segments(dir: &Path) -> Vec<PathBuf> {
    segment::list(dir).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use audit_log::checkpoint::{checkpoint_body, sign_note};
    use ed25519_dalek::SigningKey;

    fn note(origin: &str, size: u64) -> String {
        let k = SigningKey::from_bytes(&[size as u8; 32]);
        sign_note(&checkpoint_body(origin, size, &[size as u8; 32]), "k", &k)
    }

    fn cp_line(origin: &str, size: u64) -> String {
        serde_json::json!({"kind": "checkpoint", "note": note(origin, size), "seq": size})
            .to_string()
    }

    #[test]
    fn finds_the_newest_in_rsyslog_and_ndjson_files() {
        let text = format!(
            "garbage line\n\
             [sandbox-audit@32473 origin=\"a\" seq=\"5\"] {}\n\
             {{\"record\":{}}}\n\
             <110>1 - h sandbox-audit - checkpoint [x] {}\n\
             {}\n",
            cp_line("a", 5),
            cp_line("a", 9),
            cp_line("a", 7),
            cp_line("b", 100),
        );
        let all = newest_per_origin(text.as_bytes()).unwrap();
        assert_eq!(all["a"].size, 9);
        assert_eq!(all["a"].line, 3);
        assert_eq!(all["a"].note, note("a", 9));
        assert_eq!(all["b"].size, 100);
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("recv");
        fs::write(&p, &text).unwrap();
        assert_eq!(newest_checkpoint(&p, Some("b")).unwrap().size, 100);
        let e = newest_checkpoint(&p, Some("c")).unwrap_err().to_string();
        assert!(e.contains("2 logs (a, b), none of c"), "{e}");
        fs::write(&p, cp_line("a", 3)).unwrap();
        assert_eq!(newest_checkpoint(&p, Some("c")).unwrap().origin, "a");
        fs::write(&p, "nothing\n").unwrap();
        let e = newest_checkpoint(&p, None).unwrap_err().to_string();
        assert!(e.contains("holds no checkpoint"), "{e}");
    }
}
