//! Reads records from the store's segment files, after a position, up to
//! the store's durable point. Only complete lines count: the line being
//! written has no `\n` yet. A later segment means the current one is
//! finished, so an unterminated tail there is what a crash tore (the store
//! recorded it in a `recovery` record) and is skipped.

use std::{
    fs::File,
    os::unix::fs::FileExt,
    path::{Path, PathBuf},
};

use audit_log::{chain::parse_line, segment};

use crate::ShipError;

/// Where shipping stands: after the record ending at `offset` of `segment`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Position {
    /// Segment file name; empty before the first record.
    pub segment: String,
    /// Byte offset just past the last shipped line.
    pub offset: u64,
    /// Start of that line (to re-check its hash on resume).
    pub line_start: u64,
    /// The seq the next record must have.
    pub next_seq: u64,
    /// The hash of the last shipped record (its successor's prev_hash).
    pub last_hash: Option<[u8; 32]>,
}

/// One stored record, as read.
#[derive(Clone, Debug)]
pub struct Stored {
    pub seq: u64,
    pub hash: [u8; 32],
    pub time_ns: u64,
    pub kind: String,
    /// The canonical JSON line, without `\n`.
    pub line: Vec<u8>,
    /// The position after this record.
    pub after: Position,
}

pub struct Reader {
    dir: PathBuf,
    pos: Position,
    file: Option<(String, File)>,
}

const CHUNK: usize = 1 << 20;

impl Reader {
    pub fn new(dir: &Path, pos: Position) -> Reader {
        Reader {
            dir: dir.to_path_buf(),
            pos,
            file: None,
        }
    }

    pub fn position(&self) -> &Position {
        &self.pos
    }

    /// Moves back to `pos` (after a break, to resend what was not acked).
    pub fn rewind(&mut self, pos: Position) {
        self.pos = pos;
    }

    fn segments(&self) -> Result<Vec<String>, ShipError> {
        if !self.dir.exists() {
            return Ok(vec![]);
        }
        let list = segment::list(&self.dir).map_err(|e| ShipError::BadFile {
            path: self.dir.clone(),
            why: format!("{e:#}"),
        })?;
        Ok(list.iter().map(|p| segment::file_name(p)).collect())
    }

    fn open(&mut self, name: &str) -> Result<&File, ShipError> {
        let open = match self.file.take() {
            Some((n, f)) if n == name => (n, f),
            _ => {
                let path = self.dir.join(name);
                let f = File::open(&path).map_err(|e| ShipError::io(&path, e))?;
                (name.to_string(), f)
            }
        };
        Ok(&self.file.insert(open).1)
    }

    /// Checks that the record before the position is still the one shipped
    /// (a replaced or rewritten store must not be shipped as a continuation).
    pub fn check_resume(&mut self) -> Result<(), ShipError> {
        let Some(want) = self.pos.last_hash else {
            return Ok(());
        };
        let name = self.pos.segment.clone();
        let at = format!("{}/{name}@{}", self.dir.display(), self.pos.line_start);
        let len = (self.pos.offset - self.pos.line_start) as usize;
        let mut buf = vec![0; len];
        let line_start = self.pos.line_start;
        let f = self.open(&name).map_err(|e| ShipError::Chain {
            at: at.clone(),
            why: format!("the segment of the last shipped record is gone ({e})"),
        })?;
        f.read_exact_at(&mut buf, line_start)
            .map_err(|e| ShipError::Chain {
                at: at.clone(),
                why: format!("cannot read the last shipped record: {e}"),
            })?;
        let line = buf.strip_suffix(b"\n").unwrap_or(&buf);
        match parse_line(line) {
            Ok(p) if p.hash == want && p.seq + 1 == self.pos.next_seq => Ok(()),
            Ok(p) => Err(ShipError::Chain {
                at,
                why: format!(
                    "the last shipped record was seq {} hash {}, the store now has seq {} hash {} there",
                    self.pos.next_seq.wrapping_sub(1),
                    hex::encode(want),
                    p.seq,
                    hex::encode(p.hash)
                ),
            }),
            Err(e) => Err(ShipError::Chain {
                at,
                why: format!("the last shipped record no longer parses: {e}"),
            }),
        }
    }

    /// Up to `max` records with seq < `limit` (the durable point).
    pub fn read(&mut self, max: usize, limit: u64) -> Result<Vec<Stored>, ShipError> {
        let mut out = Vec::new();
        if self.pos.next_seq >= limit {
            return Ok(out);
        }
        if self.pos.segment.is_empty() {
            match self.segments()?.into_iter().next() {
                Some(first) => self.pos.segment = first,
                None => return Ok(out),
            }
        }
        // The current segment, then (once it has nothing more and a later
        // one exists) the next, and so on: an empty segment (created just
        // before a crash) must not end the read with nothing, or a finishing
        // shipper takes itself for caught up with records still unsent.
        loop {
            self.read_segment(max, limit, &mut out)?;
            if !out.is_empty() {
                return Ok(out);
            }
            let segs = self.segments()?;
            let Some(next) = segs
                .iter()
                .position(|s| *s == self.pos.segment)
                .and_then(|i| segs.get(i + 1))
                .cloned()
            else {
                return Ok(out);
            };
            // The store syncs a segment before starting the next: re-read
            // once so nothing written in between is skipped.
            self.read_segment(max, limit, &mut out)?;
            if !out.is_empty() {
                return Ok(out);
            }
            let len = self
                .open(&self.pos.segment.clone())?
                .metadata()
                .map(|m| m.len())
                .unwrap_or(0);
            if len > self.pos.offset {
                log::warn!(
                    "skipping {} torn bytes at the end of {}/{} (recorded by the store as a recovery)",
                    len - self.pos.offset,
                    self.dir.display(),
                    self.pos.segment
                );
            }
            self.pos.segment = next;
            self.pos.offset = 0;
            self.pos.line_start = 0;
        }
    }

    fn read_segment(
        &mut self,
        max: usize,
        limit: u64,
        out: &mut Vec<Stored>,
    ) -> Result<(), ShipError> {
        let name = self.pos.segment.clone();
        let path = self.dir.join(&name);
        let mut buf = vec![0u8; CHUNK];
        loop {
            let offset = self.pos.offset;
            let f = self.open(&name)?;
            let n = read_full_at(f, &mut buf, offset).map_err(|e| ShipError::io(&path, e))?;
            let data = &buf[..n];
            let (lines, torn) = segment::split_lines(data);
            if lines.is_empty() {
                // A line longer than the buffer: grow and retry.
                if n == buf.len() && !torn.is_empty() {
                    buf.resize(buf.len() * 2, 0);
                    continue;
                }
                return Ok(());
            }
            let base = self.pos.offset;
            for (start, line) in lines {
                if out.len() >= max || self.pos.next_seq >= limit {
                    return Ok(());
                }
                let line_start = base + start as u64;
                let at = format!("{}:{line_start}", path.display());
                let p = parse_line(line).map_err(|e| ShipError::Chain {
                    at: at.clone(),
                    why: format!("unparsable line: {e}"),
                })?;
                if p.seq != self.pos.next_seq {
                    return Err(ShipError::Chain {
                        at,
                        why: format!("expected seq {}, found {}", self.pos.next_seq, p.seq),
                    });
                }
                if let Some(h) = self.pos.last_hash
                    && p.prev != h
                {
                    return Err(ShipError::Chain {
                        at,
                        why: format!("seq {} does not link to the record before it", p.seq),
                    });
                }
                let after = Position {
                    segment: name.clone(),
                    offset: line_start + line.len() as u64 + 1,
                    line_start,
                    next_seq: p.seq + 1,
                    last_hash: Some(p.hash),
                };
                out.push(Stored {
                    seq: p.seq,
                    hash: p.hash,
                    time_ns: p.time_ns,
                    kind: p.kind(line).to_string(),
                    line: line.to_vec(),
                    after: after.clone(),
                });
                self.pos = after;
            }
            if out.len() >= max || n < buf.len() {
                return Ok(());
            }
        }
    }
}

/// pread until the buffer is full or EOF.
fn read_full_at(f: &File, buf: &mut [u8], mut off: u64) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read_at(&mut buf[n..], off) {
            Ok(0) => break,
            Ok(k) => {
                n += k;
                off += k as u64;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use audit_log::{chain::Chain, record::Record};

    use super::*;

    /// Writes `n` records (continuing `chain`) as segment `name`.
    fn segment_with(dir: &Path, name: &str, chain: &mut Chain, n: usize) {
        let mut out = Vec::new();
        for _ in 0..n {
            chain
                .append(&Record::new("exec", 1_700_000_000_000_000_000), &mut out)
                .unwrap();
        }
        std::fs::write(dir.join(name), out).unwrap();
    }

    #[test]
    fn an_empty_segment_in_between_does_not_end_a_read_with_nothing() {
        // A crash right after a segment was created leaves it empty; the
        // restarted store begins another. A read that stopped at the empty
        // one would make a finishing shipper think it had caught up.
        let dir = tempfile::tempdir().unwrap();
        let mut chain = Chain::new();
        segment_with(dir.path(), &segment::name(0, 0), &mut chain, 2);
        segment_with(dir.path(), &segment::name(2, 0), &mut chain, 0);
        segment_with(dir.path(), &segment::name(2, 1), &mut chain, 0);
        segment_with(dir.path(), &segment::name(2, 2), &mut chain, 3);
        let mut r = Reader::new(dir.path(), Position::default());
        let first: Vec<u64> = r.read(2, u64::MAX).unwrap().iter().map(|s| s.seq).collect();
        assert_eq!(first, [0, 1]);
        let rest: Vec<u64> = r
            .read(10, u64::MAX)
            .unwrap()
            .iter()
            .map(|s| s.seq)
            .collect();
        assert_eq!(rest, [2, 3, 4], "read past both empty segments at once");
        assert!(r.read(10, u64::MAX).unwrap().is_empty());
    }
}
