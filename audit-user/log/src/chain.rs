//! Stage 4: the hash chain. Gives each record its `seq` (contiguous from 0
//! for the life of a store) and `prev_hash` (the previous record's `hash`;
//! 64 zeros for seq 0), then `hash` = lowercase hex SHA-256 of the canonical
//! record without the `hash` member. The same module parses a stored line
//! back, so the writer and `verify` cannot disagree about the format.

use serde_json::Value;
use sha2::{Digest, Sha256};

pub use crate::hex_digest::parse_hex32;
use crate::{
    canonical::{self, EncodeError, ScanError},
    merkle::Hash,
    record::Record,
};

/// Top-level keys the chain owns; a record's own fields may not use them.
pub const RESERVED: [&str; 5] = ["hash", "kind", "prev_hash", "seq", "time_ns"];

/// `prev_hash` of the genesis record.
pub const GENESIS_PREV: Hash = [0; 32];

/// Where the chain stands: the next seq and the hash it must link to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chain {
    next_seq: u64,
    prev: Hash,
}

/// One record as linked into the chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Linked {
    pub seq: u64,
    pub hash: Hash,
}

impl Default for Chain {
    fn default() -> Self {
        Chain::new()
    }
}

impl Chain {
    /// An empty chain: the next record is seq 0.
    pub fn new() -> Chain {
        Chain {
            next_seq: 0,
            prev: GENESIS_PREV,
        }
    }

    /// Continues after the record `seq` with hash `hash` (a restart).
    pub fn resume(last_seq: u64, last_hash: Hash) -> Chain {
        Chain {
            next_seq: last_seq.saturating_add(1),
            prev: last_hash,
        }
    }

    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    pub fn prev_hash(&self) -> &Hash {
        &self.prev
    }

    /// Appends `rec` as the next canonical line (with its `\n`) to `out`.
    /// On error nothing is appended and the chain does not advance.
    pub fn append(&mut self, rec: &Record, out: &mut Vec<u8>) -> Result<Linked, EncodeError> {
        let start = out.len();
        let fields = rec.fields.iter().map(|(k, v)| (k.as_str(), v));
        let written = match self.write_unhashed(rec, fields, out) {
            // The fields did not iterate in key order (serde_json's
            // `preserve_order`): sort them and write again.
            Ok(None) => {
                out.truncate(start);
                let mut sorted: Vec<(&str, &Value)> =
                    rec.fields.iter().map(|(k, v)| (k.as_str(), v)).collect();
                sorted.sort_unstable_by(|a, b| a.0.cmp(b.0));
                self.write_unhashed(rec, sorted.into_iter(), out)
            }
            other => other,
        };
        let insert_at = match written {
            Ok(Some(at)) => at,
            Ok(None) => {
                out.truncate(start);
                return Err(EncodeError::Key {
                    key: "(keys cannot be ordered)".into(),
                });
            }
            Err(e) => {
                out.truncate(start);
                return Err(e);
            }
        };
        let hash: Hash = Sha256::digest(&out[start..]).into();

        // Splice in `"hash":"…"`, with the comma on the side that has a
        // member (`kind` always sorts after it; one may sort before).
        let first = out[insert_at - 1] == b'{';
        let mut member = Vec::with_capacity(80);
        if !first {
            member.push(b',');
        }
        member.extend_from_slice(b"\"hash\":\"");
        canonical::write_hex(&mut member, &hash);
        member.push(b'"');
        if first {
            member.push(b',');
        }
        out.splice(insert_at..insert_at, member);
        out.push(b'\n');

        let linked = Linked {
            seq: self.next_seq,
            hash,
        };
        // 2^64 records cannot be written; saturate rather than panic.
        self.next_seq = self.next_seq.saturating_add(1);
        self.prev = hash;
        Ok(linked)
    }

    /// Writes the record without `hash`: its fields merged (in key order)
    /// with the chain's own members, in one pass and without allocating.
    /// Returns where the `hash` member belongs, or None when `fields` turn
    /// out not to be sorted.
    fn write_unhashed<'a>(
        &self,
        rec: &Record,
        fields: impl Iterator<Item = (&'a str, &'a Value)>,
        out: &mut Vec<u8>,
    ) -> Result<Option<usize>, EncodeError> {
        let own = [
            ("kind", Own::Str(rec.kind)),
            ("prev_hash", Own::Hex(&self.prev)),
            ("seq", Own::Int(self.next_seq)),
            ("time_ns", Own::Int(rec.time_ns)),
        ];
        let mut own = own.iter().peekable();
        let mut at = Members {
            insert_at: None,
            first: true,
        };
        let mut prev: Option<&str> = None;
        out.push(b'{');
        for (k, v) in fields {
            if let Some(p) = prev
                && !canonical::key_less(p.as_bytes(), k.as_bytes())
            {
                return Ok(None);
            }
            prev = Some(k);
            if RESERVED.contains(&k) {
                return Err(EncodeError::Reserved { key: k.into() });
            }
            while let Some((ok, ov)) = own.next_if(|(ok, _)| *ok < k) {
                at.next(out, ok);
                ov.write(out);
            }
            at.next(out, k);
            canonical::write_value(out, k, v, 1)?;
        }
        for (ok, ov) in own {
            at.next(out, ok);
            ov.write(out);
        }
        out.push(b'}');
        Ok(at.insert_at)
    }
}

/// A member the chain adds to every record.
enum Own<'a> {
    Str(&'a str),
    Hex(&'a Hash),
    Int(u64),
}

impl Own<'_> {
    fn write(&self, out: &mut Vec<u8>) {
        match self {
            Own::Str(s) => canonical::write_str(out, s),
            Own::Hex(h) => {
                out.push(b'"');
                canonical::write_hex(out, &h[..]);
                out.push(b'"');
            }
            Own::Int(n) => canonical::write_u64(out, *n),
        }
    }
}

/// Separators between members, and where `hash` goes.
struct Members {
    insert_at: Option<usize>,
    first: bool,
}

impl Members {
    /// Starts the member `key` (keys here never need escaping: the chain's
    /// own are constants, the record's were checked by `write_key`).
    fn next(&mut self, out: &mut Vec<u8>, key: &str) {
        if self.insert_at.is_none() && key > "hash" {
            self.insert_at = Some(out.len());
        }
        if !self.first {
            out.push(b',');
        }
        self.first = false;
        // Only the record's keys can be invalid; write_key checks them.
        if canonical::write_key(out, key).is_err() {
            out.extend_from_slice(b"\"\":");
        }
    }
}

/// A stored line, checked to be canonical, with its chain fields and the
/// hash its content actually has.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParsedLine {
    pub seq: u64,
    pub time_ns: u64,
    pub prev: Hash,
    /// The `hash` the line claims.
    pub hash: Hash,
    /// SHA-256 of the line without its `hash` member.
    pub computed: Hash,
    /// Byte range of the `kind` string's content.
    kind: (usize, usize),
}

impl ParsedLine {
    /// Whether the line's content still has the hash it claims.
    pub fn self_consistent(&self) -> bool {
        self.hash == self.computed
    }

    /// The record kind (the line this was parsed from must be passed back).
    pub fn kind<'a>(&self, line: &'a [u8]) -> &'a str {
        line.get(self.kind.0..self.kind.1)
            .and_then(|k| std::str::from_utf8(k).ok())
            .unwrap_or("")
    }
}

fn missing(what: &'static str) -> ScanError {
    ScanError { offset: 0, what }
}

/// Parses one line (without its `\n`): it must be a canonical object with
/// `seq` and `time_ns` (u64), `prev_hash` and `hash` (64 lowercase hex) and a
/// non-empty `kind`.
pub fn parse_line(line: &[u8]) -> Result<ParsedLine, ScanError> {
    const WANTED: [&[u8]; 5] = [b"hash", b"kind", b"prev_hash", b"seq", b"time_ns"];
    let mut found = [None; 5];
    canonical::scan_object(line, &WANTED, &mut found)?;
    let [hash, kind, prev, seq, time] = found;
    let hash = hash.ok_or(missing("no `hash` field"))?;
    let kind = kind.ok_or(missing("no `kind` field"))?;
    let prev = prev.ok_or(missing("no `prev_hash` field"))?;
    let seq = seq.ok_or(missing("no `seq` field"))?;
    let time = time.ok_or(missing("no `time_ns` field"))?;
    let hex_of = |m: canonical::Member, what| {
        line.get(m.value.0..m.value.1)
            .filter(|_| m.plain_str)
            .and_then(parse_hex32)
            .ok_or(ScanError {
                offset: m.start,
                what,
            })
    };
    let stored = hex_of(hash, "`hash` is not 64 lowercase hex digits")?;
    let prev_hash = hex_of(prev, "`prev_hash` is not 64 lowercase hex digits")?;
    let uint_of = |m: canonical::Member, what| {
        m.uint.ok_or(ScanError {
            offset: m.start,
            what,
        })
    };
    let seq = uint_of(seq, "`seq` is not an unsigned integer")?;
    let time_ns = uint_of(time, "`time_ns` is not an unsigned integer")?;
    if !kind.plain_str || kind.value.0 == kind.value.1 {
        return Err(ScanError {
            offset: kind.start,
            what: "`kind` is not a plain non-empty string",
        });
    }

    // The line without the hash member: drop the comma before it, or the
    // one after it when it is the first member.
    let (cut_start, cut_end) = if hash.start > 1 {
        (hash.start - 1, hash.end)
    } else {
        (hash.start, hash.end + 1)
    };
    let mut h = Sha256::new();
    h.update(line.get(..cut_start).unwrap_or_default());
    h.update(line.get(cut_end..).unwrap_or_default());
    Ok(ParsedLine {
        seq,
        time_ns,
        prev: prev_hash,
        hash: stored,
        computed: h.finalize().into(),
        kind: kind.value,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn rec(kind: &'static str, fields: Value) -> Record {
        let Value::Object(fields) = fields else {
            unreachable!()
        };
        Record {
            kind,
            time_ns: 1_700_000_000_000_000_000,
            fields,
        }
    }

    #[test]
    fn links_and_parses_back() {
        let mut chain = Chain::new();
        let mut out = Vec::new();
        let a = chain
            .append(
                &rec("exec", json!({"argv": ["a\nb"], "proc": {"pid": 1}})),
                &mut out,
            )
            .unwrap();
        let b = chain
            .append(&rec("exit", json!({"zz": 1})), &mut out)
            .unwrap();
        let c = chain
            .append(&rec("x", json!({"a": "", "hash_other": 2})), &mut out)
            .unwrap();
        let lines: Vec<&[u8]> = out
            .split(|&c| c == b'\n')
            .filter(|l| !l.is_empty())
            .collect();
        assert_eq!(lines.len(), 3);
        for (i, (line, linked)) in lines.iter().zip([a, b, c]).enumerate() {
            let p = parse_line(line).unwrap();
            assert!(p.self_consistent(), "line {i}");
            assert_eq!(p.seq, i as u64);
            assert_eq!(p.hash, linked.hash);
            // The stored line is exactly serde_json's sorted rendering.
            let v: Value = serde_json::from_slice(line).unwrap();
            assert_eq!(serde_json::to_vec(&v).unwrap(), *line);
        }
        assert_eq!(parse_line(lines[0]).unwrap().prev, GENESIS_PREV);
        assert_eq!(parse_line(lines[1]).unwrap().prev, a.hash);
        assert_eq!(parse_line(lines[1]).unwrap().kind(lines[1]), "exit");
        // "hash" first: no member sorts before it in record b.
        assert!(lines[1].starts_with(b"{\"hash\":"));
    }

    #[test]
    fn hash_is_over_the_record_without_hash() {
        let mut out = Vec::new();
        Chain::new()
            .append(&rec("k", json!({"a": 1})), &mut out)
            .unwrap();
        let mut v: serde_json::Map<String, Value> = serde_json::from_slice(&out).unwrap();
        let hash = v.remove("hash").unwrap();
        let digest = crate::merkle::sha256(&serde_json::to_vec(&v).unwrap());
        assert_eq!(hash, hex::encode(digest));
    }

    #[test]
    fn reserved_and_unencodable_fields_leave_no_trace() {
        let mut chain = Chain::new();
        let mut out = b"x".to_vec();
        assert!(matches!(
            chain.append(&rec("k", json!({"seq": 1})), &mut out),
            Err(EncodeError::Reserved { .. })
        ));
        assert!(
            chain
                .append(&rec("k", json!({"f": 0.5})), &mut out)
                .is_err()
        );
        assert_eq!(out, b"x");
        assert_eq!(chain.next_seq(), 0);
    }

    #[test]
    fn any_byte_change_is_noticed() {
        let mut out = Vec::new();
        Chain::new()
            .append(&rec("exec", json!({"argv": ["ls"], "n": 12})), &mut out)
            .unwrap();
        out.pop();
        for i in 0..out.len() {
            for delta in [1u8, 0x20] {
                let mut b = out.clone();
                b[i] = b[i].wrapping_add(delta);
                if let Ok(p) = parse_line(&b) {
                    assert!(!p.self_consistent(), "byte {i} +{delta} went unnoticed");
                }
            }
        }
    }
}
