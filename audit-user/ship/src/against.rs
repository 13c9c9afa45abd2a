//! `verify --against FILE`: every record a receiver stored (FILE, in any
//! form a shipper produced, see [`crate::received`]) must still be in the
//! log unchanged: the record with the same seq, with the same hash and the
//! same content. What lives off the host thus pins every record shipped,
//! not only the newest checkpoint (`--anchor`): a record rewritten on the
//! host and re-chained with keys root stole still differs from its copy.
//!
//! Lines that hold none of our records are someone else's and only
//! counted; lines that claim to be ours but cannot be read are listed by
//! line. Records of another log (their origin says so) are counted apart.

use std::{
    collections::BTreeMap,
    fs::File,
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
};

use audit_log::{
    canonical,
    chain::{ParsedLine, parse_line},
};
use serde_json::{Value, json};

use crate::{ShipError, anchor, received};

/// How many unreadable lines are listed (all are counted).
const MAX_LISTED: usize = 20;

/// One copy of a record in the receiver's file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Copy {
    /// 1-based line in the receiver's file.
    pub line: usize,
    /// The `hash` the copy carries.
    pub hash: [u8; 32],
    /// What its content hashes to (differs from `hash` when the receiver's
    /// copy itself was altered or mangled).
    pub computed: [u8; 32],
}

/// A shipped record the log no longer holds as shipped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Difference {
    /// The log has no record with this seq (a cut tail, a deleted segment).
    Missing { seq: u64, shipped: Copy },
    /// The log's record with this seq is not the one shipped.
    Changed {
        seq: u64,
        shipped: Copy,
        /// The log's record: its `hash` field and its content's hash.
        stored_hash: [u8; 32],
        stored_computed: [u8; 32],
    },
}

impl Difference {
    pub fn seq(&self) -> u64 {
        match self {
            Difference::Missing { seq, .. } | Difference::Changed { seq, .. } => *seq,
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct Report {
    pub file: PathBuf,
    /// The verified log's origin (from its genesis record), if known.
    pub origin: Option<String>,
    pub lines: usize,
    /// Record copies of this log in the file (duplicates included).
    pub copies: usize,
    /// Distinct seqs among them.
    pub seqs: usize,
    /// Seqs found in the log as shipped.
    pub matched: usize,
    /// Record copies whose origin is another log's.
    pub other_logs: usize,
    /// Lines with none of our records (skipped).
    pub foreign: usize,
    /// Lines that claim to be ours but hold no readable record: (line, why),
    /// the first [`MAX_LISTED`]; `unreadable_count` counts them all.
    pub unreadable: Vec<(usize, String)>,
    pub unreadable_count: usize,
    /// Copies whose content does not have the hash they carry (damaged at or
    /// on the way to the receiver: they prove nothing about the log).
    pub damaged: Vec<(usize, u64)>,
    /// Every difference, by seq.
    pub differences: Vec<Difference>,
}

impl Report {
    pub fn differs(&self) -> bool {
        !self.differences.is_empty()
    }
}

/// The chain fields of a record's JSON as a receiver holds it: the bytes
/// as they are when still canonical, else re-encoded canonically (a
/// receiver that re-serialized the JSON).
fn parse_copy(e: &received::Embedded) -> Result<ParsedLine, String> {
    match parse_line(&e.bytes) {
        Ok(p) => Ok(p),
        Err(first) => {
            let bytes = canonical::to_vec(&Value::Object(e.record.clone()))
                .map_err(|e| format!("not a record: {e}"))?;
            parse_line(&bytes).map_err(|_| format!("not a canonical record: {first}"))
        }
    }
}

/// The records of the log `origin` in a receiver's file, by seq (distinct
/// copies of one seq are all kept).
fn read_copies(
    path: &Path,
    origin: Option<&str>,
    report: &mut Report,
) -> Result<BTreeMap<u64, Vec<Copy>>, ShipError> {
    let f = File::open(path).map_err(|e| ShipError::io(path, e))?;
    let mut copies: BTreeMap<u64, Vec<Copy>> = BTreeMap::new();
    for (i, line) in BufReader::new(f).split(b'\n').enumerate() {
        let line = line.map_err(|e| ShipError::io(path, e))?;
        let n = i + 1;
        report.lines = n;
        let text = String::from_utf8_lossy(&line);
        if text.trim().is_empty() {
            continue;
        }
        let mut unreadable = |why: String| {
            report.unreadable_count += 1;
            if report.unreadable.len() < MAX_LISTED {
                report.unreadable.push((n, why));
            }
        };
        let Some(e) = received::record_in_line(&text, received::is_chained_record) else {
            if received::looks_ours(&text) {
                unreadable("it names sandbox-audit but holds no record JSON".into());
            } else {
                report.foreign += 1;
            }
            continue;
        };
        if let (Some(want), Some(got)) = (origin, e.origin.as_deref())
            && want != got
        {
            report.other_logs += 1;
            continue;
        }
        let p = match parse_copy(&e) {
            Ok(p) => p,
            Err(why) => {
                unreadable(why);
                continue;
            }
        };
        report.copies += 1;
        if !p.self_consistent() {
            report.damaged.push((n, p.seq));
        }
        let copy = Copy {
            line: n,
            hash: p.hash,
            computed: p.computed,
        };
        let v = copies.entry(p.seq).or_default();
        if !v
            .iter()
            .any(|c| c.hash == copy.hash && c.computed == copy.computed)
        {
            v.push(copy);
        }
    }
    report.seqs = copies.len();
    Ok(copies)
}

/// Checks the log in `log_files` (segment files in order, or one
/// directory) against the receiver's `file`.
pub fn check(file: &Path, log_files: &[PathBuf]) -> Result<Report, ShipError> {
    let origin = anchor::log_origin(log_files);
    let mut report = Report {
        file: file.to_path_buf(),
        origin: origin.clone(),
        ..Report::default()
    };
    let mut copies = read_copies(file, origin.as_deref(), &mut report)?;
    if copies.is_empty() {
        return Err(ShipError::Anchor(format!(
            "{} holds no shipped record{} ({} lines: {} not ours, {} of other logs, {} unreadable)",
            file.display(),
            origin
                .as_deref()
                .map(|o| format!(" of {o}"))
                .unwrap_or_default(),
            report.lines,
            report.foreign,
            report.other_logs,
            report.unreadable_count
        )));
    }
    let files = match log_files {
        [d] if d.is_dir() => anchor::segments(d),
        f => f.to_vec(),
    };
    for seg in &files {
        let f = File::open(seg).map_err(|e| ShipError::io(seg, e))?;
        for line in BufReader::new(f).split(b'\n') {
            let line = line.map_err(|e| ShipError::io(seg, e))?;
            // An unparsable stored line is verify's to report; its seq
            // then counts as missing here unless another line has it.
            let Ok(p) = parse_line(&line) else { continue };
            let Some(shipped) = copies.remove(&p.seq) else {
                continue;
            };
            let mut same = false;
            for c in shipped {
                if c.hash == p.hash && c.computed == p.computed {
                    same = true;
                } else {
                    report.differences.push(Difference::Changed {
                        seq: p.seq,
                        shipped: c,
                        stored_hash: p.hash,
                        stored_computed: p.computed,
                    });
                }
            }
            report.matched += usize::from(same);
        }
    }
    for (seq, v) in copies {
        for c in v {
            report
                .differences
                .push(Difference::Missing { seq, shipped: c });
        }
    }
    report.differences.sort_by_key(Difference::seq);
    Ok(report)
}

/// Consecutive seqs as `a-b` ranges.
fn ranges(seqs: impl Iterator<Item = u64>) -> String {
    let mut out: Vec<(u64, u64)> = Vec::new();
    for s in seqs {
        match out.last_mut() {
            Some((_, b)) if *b + 1 == s || *b == s => *b = s,
            _ => out.push((s, s)),
        }
    }
    out.iter()
        .map(|(a, b)| {
            if a == b {
                a.to_string()
            } else {
                format!("{a}-{b}")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn render_text(r: &Report) -> String {
    let mut s = format!(
        "against {}: {} lines, {} shipped records ({} seqs) of this log, {} as shipped; \
         skipped: {} lines not ours, {} records of other logs\n",
        r.file.display(),
        r.lines,
        r.copies,
        r.seqs,
        r.matched,
        r.foreign,
        r.other_logs
    );
    let missing = r
        .differences
        .iter()
        .filter(|d| matches!(d, Difference::Missing { .. }));
    let n_missing = missing.clone().count();
    if n_missing > 0 {
        s += &format!(
            "MISSING from the log: {n_missing} shipped records, seq {}\n",
            ranges(missing.map(Difference::seq))
        );
    }
    for d in &r.differences {
        if let Difference::Changed {
            seq,
            shipped,
            stored_hash,
            stored_computed,
        } = d
        {
            let how = if stored_hash == &shipped.hash {
                format!(
                    "its content now hashes to {} (hash field unchanged)",
                    hex::encode(stored_computed)
                )
            } else {
                format!("stored hash {}", hex::encode(stored_hash))
            };
            s += &format!(
                "CHANGED seq {seq}: shipped hash {} ({} line {}), {how}\n",
                hex::encode(shipped.hash),
                r.file.display(),
                shipped.line
            );
        }
    }
    for (line, seq) in &r.damaged {
        s += &format!(
            "warning: {} line {line}: the receiver's copy of seq {seq} does not have the hash it carries (damaged there; it proves nothing about the log)\n",
            r.file.display()
        );
    }
    for (line, why) in &r.unreadable {
        s += &format!(
            "warning: {} line {line}: unreadable: {why}\n",
            r.file.display()
        );
    }
    if r.unreadable_count > r.unreadable.len() {
        s += &format!(
            "warning: {} more unreadable lines\n",
            r.unreadable_count - r.unreadable.len()
        );
    }
    s += if r.differs() {
        "against: the log DIFFERS from what was shipped\n"
    } else {
        "against: every shipped record is in the log unchanged\n"
    };
    s
}

pub fn to_json(r: &Report) -> Value {
    let copy = |c: &Copy| json!({"line": c.line, "hash": hex::encode(c.hash)});
    let missing: Vec<Value> = r
        .differences
        .iter()
        .filter_map(|d| match d {
            Difference::Missing { seq, shipped } => {
                Some(json!({"seq": seq, "shipped": copy(shipped)}))
            }
            _ => None,
        })
        .collect();
    let changed: Vec<Value> = r
        .differences
        .iter()
        .filter_map(|d| match d {
            Difference::Changed {
                seq,
                shipped,
                stored_hash,
                stored_computed,
            } => Some(json!({
                "seq": seq,
                "shipped": copy(shipped),
                "stored_hash": hex::encode(stored_hash),
                "stored_content_hash": hex::encode(stored_computed),
            })),
            _ => None,
        })
        .collect();
    json!({
        "file": r.file.display().to_string(),
        "origin": r.origin,
        "differs": r.differs(),
        "lines": r.lines,
        "copies": r.copies,
        "seqs": r.seqs,
        "matched": r.matched,
        "foreign_lines": r.foreign,
        "other_logs": r.other_logs,
        "missing": missing,
        "changed": changed,
        "damaged": r.damaged.iter().map(|(l, s)| json!({"line": l, "seq": s})).collect::<Vec<_>>(),
        "unreadable_count": r.unreadable_count,
        "unreadable": r.unreadable.iter().map(|(l, w)| json!({"line": l, "why": w})).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use audit_log::{chain::Chain, record::Record};
    use std::fs;

    /// A small real chain: (lines).
    fn chain(n: u64, tag: &str) -> Vec<Vec<u8>> {
        let mut c = Chain::new();
        (0..n)
            .map(|i| {
                let mut out = Vec::new();
                let r = Record::new("exec", 1000 + i).with("filename", format!("/bin/{tag}{i}"));
                c.append(&r, &mut out).unwrap();
                out.strip_suffix(b"\n").unwrap_or(&out).to_vec()
            })
            .collect()
    }

    #[test]
    fn lists_missing_and_changed_records_by_seq() {
        let t = tempfile::tempdir().unwrap();
        let lines = chain(6, "a");
        let recv: String = lines
            .iter()
            .map(|l| {
                let p = parse_line(l).unwrap();
                format!(
                    "[sandbox-audit@32473 seq=\"{}\" hash=\"{}\"] {}\n",
                    p.seq,
                    hex::encode(p.hash),
                    String::from_utf8_lossy(l)
                )
            })
            .collect::<String>()
            + "someone else's line\n[sandbox-audit@32473 seq=\"9\"] {truncated\n";
        let rf = t.path().join("recv");
        fs::write(&rf, &recv).unwrap();
        // The log: seq 2 rewritten (same hash field), seq 4.. cut.
        let mut log = lines[..4].to_vec();
        log[2] = String::from_utf8(log[2].clone())
            .unwrap()
            .replace("/bin/a2", "/bin/X2")
            .into_bytes();
        let seg = t.path().join("seg-0000000000000000.log");
        fs::write(
            &seg,
            log.join(&b"\n"[..])
                .into_iter()
                .chain(*b"\n")
                .collect::<Vec<_>>(),
        )
        .unwrap();
        let r = check(&rf, std::slice::from_ref(&seg)).unwrap();
        let seqs: Vec<(u64, bool)> = r
            .differences
            .iter()
            .map(|d| (d.seq(), matches!(d, Difference::Missing { .. })))
            .collect();
        assert_eq!(seqs, [(2, false), (4, true), (5, true)]);
        assert_eq!(
            (r.copies, r.matched, r.foreign, r.unreadable_count),
            (6, 3, 1, 1)
        );
        assert_eq!(r.unreadable[0].0, 8);
        let text = render_text(&r);
        assert!(
            text.contains("MISSING from the log: 2 shipped records, seq 4-5"),
            "{text}"
        );
        assert!(text.contains("CHANGED seq 2:"), "{text}");
        assert!(text.contains("(hash field unchanged)"), "{text}");
        assert!(text.contains("recv line 8: unreadable"), "{text}");
        // The intact log matches.
        fs::write(
            &seg,
            lines
                .join(&b"\n"[..])
                .into_iter()
                .chain(*b"\n")
                .collect::<Vec<_>>(),
        )
        .unwrap();
        let r = check(&rf, std::slice::from_ref(&seg)).unwrap();
        assert!(!r.differs(), "{}", render_text(&r));
        // A file without any record of ours is an error, naming it.
        fs::write(&rf, "nothing\n").unwrap();
        let e = check(&rf, std::slice::from_ref(&seg))
            .unwrap_err()
            .to_string();
        assert!(e.contains("holds no shipped record"), "{e}");
    }
}
