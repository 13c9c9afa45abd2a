//! Restart: read the end of an existing store, validate it, and work out
//! where the chain, the Merkle tree and the key epochs stand, so the writer
//! continues the same chain. Reads backwards only as far as the last signed
//! checkpoint (or genesis): its frontier plus the records after it are the
//! whole state. Anything that does not check out stops the restart with the
//! file and line; extending a chain that does not verify would hide it.
//!
//! This is a consistency check against the keys on this host, not the audit
//! (`verify` with an off-host trust root and anchor is).

use std::{
    fmt, io,
    path::{Path, PathBuf},
};

use crate::{
    canonical::ScanError,
    chain::{Chain, Linked, ParsedLine, parse_line},
    checkpoint::SigCheck,
    checks::{self, CheckError, Link},
    keys::{KeyDir, KeyError},
    lifecycle::{self, FieldError, LifecycleKind, RotationRecord, Torn},
    merkle::{Frontier, Hash, sha256},
    record::Json,
    segment::{self, ReadError, SegmentError},
    writer::Resume,
};

/// A line of a segment: file and 1-based line number.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct At {
    pub file: PathBuf,
    pub line: usize,
}

impl fmt::Display for At {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

/// Why the end of a store does not check out (restart refuses to extend
/// it), or could not be read. Every variant about a record names its line.
#[derive(Debug, thiserror::Error)]
pub enum RecoverError {
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error(transparent)]
    Segment(#[from] SegmentError),
    #[error(transparent)]
    Keys(#[from] KeyError),
    #[error("reading {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("no checkpoint in the last {bytes} bytes of the log")]
    NoCheckpoint { bytes: usize },
    #[error("{at}: {source}")]
    Line { at: At, source: ScanError },
    #[error("{at}")]
    Json {
        at: At,
        #[source]
        source: serde_json::Error,
    },
    #[error("{at}: {field}")]
    Field { at: At, field: FieldError },
    /// A record fails a format check shared with `verify`.
    #[error("{at}: {check}")]
    Check { at: At, check: CheckError },
    #[error("no checkpoint or genesis record found before {at}")]
    NoAnchor { at: At },
    #[error("{at}: does not link to the checkpoint after it")]
    Unlinked { at: At },
    #[error("{at}: this log's origin is {log}, the key directory's is {keys}")]
    Origin { at: At, log: String, keys: String },
    /// A key the log announces is not the one in the key directory.
    #[error("{at}: {what} {}", key_dir.display())]
    ForeignKey {
        at: At,
        what: String,
        key_dir: PathBuf,
    },
    #[error("{at}: the log does not start with an intact genesis record")]
    NoGenesis { at: At },
}

/// Stop reading backwards after this many bytes without finding a
/// checkpoint: a healthy store has one every second or so.
const MAX_TAIL_BYTES: usize = 1 << 30;

struct TailLine {
    file: PathBuf,
    line_no: usize,
    bytes: Vec<u8>,
    parsed: ParsedLine,
}

impl TailLine {
    fn kind(&self) -> &str {
        self.parsed.kind(&self.bytes)
    }

    fn lifecycle(&self) -> Option<LifecycleKind> {
        LifecycleKind::of(self.kind())
    }

    fn at(&self) -> At {
        At {
            file: self.file.clone(),
            line: self.line_no,
        }
    }

    fn json(&self) -> Result<Json, RecoverError> {
        serde_json::from_slice(&self.bytes).map_err(|source| RecoverError::Json {
            at: self.at(),
            source,
        })
    }

    fn field<T>(&self, r: Result<T, FieldError>) -> Result<T, RecoverError> {
        r.map_err(|field| RecoverError::Field {
            at: self.at(),
            field,
        })
    }

    fn check<T>(&self, r: Result<T, CheckError>) -> Result<T, RecoverError> {
        r.map_err(|check| RecoverError::Check {
            at: self.at(),
            check,
        })
    }

    fn link(&self) -> Link {
        Link {
            seq: self.parsed.seq,
            hash: self.parsed.hash,
        }
    }
}

/// What restart found at the end of the store.
pub struct Resumed {
    pub resume: Resume,
    /// The epoch whose key signs the next checkpoint.
    pub sign_epoch: u64,
    /// Whether the previous session ended with `stop`.
    pub clean: bool,
    pub last_seq: u64,
    pub last_kind: String,
    /// When the last intact record was written (the start of the gap a
    /// restart after a crash leaves).
    pub last_time_ns: u64,
    /// Bytes after the last complete record, per file, in log order.
    pub torn: Vec<Torn>,
    /// The segment holding the last complete record.
    pub last_file: PathBuf,
}

/// Bytes after the last newline of `data`, as a torn range of `path`.
fn torn_of(path: &Path, data: &[u8]) -> Option<Torn> {
    let (_, tail) = segment::split_lines(data);
    (!tail.is_empty()).then(|| Torn {
        file: segment::file_name(path),
        offset: (data.len() - tail.len()) as u64,
        length: tail.len() as u64,
        sha256: sha256(tail),
    })
}

/// Torn ranges in files that hold no complete record at all (a crash while
/// creating a store): what a new genesis must account for.
pub fn torn_without_records(dir: &Path) -> Result<(bool, Vec<Torn>), RecoverError> {
    let mut torn = Vec::new();
    for path in segment::list(dir)? {
        let data = segment::read(&path)?;
        if data.contains(&b'\n') {
            return Ok((true, torn));
        }
        torn.extend(torn_of(&path, &data));
    }
    Ok((false, torn))
}

/// Reads backwards from the end of the store to the last checkpoint or the
/// genesis record, plus one more record (to tell whether a final checkpoint
/// followed a `stop`). Returns the lines oldest first, and the torn ranges
/// after the last complete line.
fn read_tail(segments: &[PathBuf]) -> Result<(Vec<TailLine>, Vec<Torn>), RecoverError> {
    let mut rev: Vec<TailLine> = Vec::new();
    let mut torn: Vec<Torn> = Vec::new();
    let mut anchor_found = false;
    let mut bytes_read = 0usize;
    'files: for path in segments.iter().rev() {
        let data = segment::read(path)?;
        bytes_read += data.len();
        if bytes_read > MAX_TAIL_BYTES {
            return Err(RecoverError::NoCheckpoint {
                bytes: MAX_TAIL_BYTES,
            });
        }
        if rev.is_empty()
            && let Some(t) = torn_of(path, &data)
        {
            torn.insert(0, t);
        }
        let (lines, _) = segment::split_lines(&data);
        for (i, (_, line)) in lines.iter().enumerate().rev() {
            let parsed = parse_line(line).map_err(|source| RecoverError::Line {
                at: At {
                    file: path.clone(),
                    line: i + 1,
                },
                source,
            })?;
            let tl = TailLine {
                file: path.clone(),
                line_no: i + 1,
                bytes: line.to_vec(),
                parsed,
            };
            let kind = tl.lifecycle();
            rev.push(tl);
            if anchor_found {
                break 'files;
            }
            match kind {
                Some(LifecycleKind::Checkpoint) => anchor_found = true,
                Some(LifecycleKind::Genesis) => break 'files,
                _ => {}
            }
        }
    }
    rev.reverse();
    Ok((rev, torn))
}

/// Validates the tail and computes where to continue. `keys` supplies the
/// public keys the tail's signatures must verify under.
pub fn resume(dir: &Path, keys: &KeyDir) -> Result<Option<Resumed>, RecoverError> {
    let segments = segment::list(dir)?;
    let (lines, torn) = read_tail(&segments)?;
    let Some(last) = lines.last() else {
        return Ok(None);
    };
    let last_file = last.file.clone();
    let anchor_idx = lines
        .iter()
        .position(|l| {
            matches!(
                l.lifecycle(),
                Some(LifecycleKind::Checkpoint | LifecycleKind::Genesis)
            )
        })
        .ok_or_else(|| RecoverError::NoAnchor { at: last.at() })?;
    let anchor = &lines[anchor_idx];
    let origin = keys.origin().to_string();

    let mut tree;
    let mut latest_epoch;
    let mut sign_epoch;
    let mut config_digest;
    let mut last_note = None;
    if anchor.lifecycle() == Some(LifecycleKind::Genesis) {
        let g = anchor.json()?;
        if !checks::starts_chain(anchor.parsed.seq, &anchor.parsed.prev) {
            anchor.check::<()>(Err(CheckError::NotChainStart))?;
        }
        let (g_origin, pk) = anchor.field(checks::genesis_fields(&g))?;
        if g_origin != origin {
            return Err(RecoverError::Origin {
                at: anchor.at(),
                log: g_origin,
                keys: origin,
            });
        }
        if pk != keys.public(0)? {
            return Err(RecoverError::ForeignKey {
                at: anchor.at(),
                what: "genesis public key is not epoch 0's key in".into(),
                key_dir: keys.path().to_path_buf(),
            });
        }
        tree = Frontier::new();
        latest_epoch = 0;
        sign_epoch = 0;
        config_digest = anchor
            .field(lifecycle::get_str(&g, "config_digest"))?
            .to_string();
    } else {
        let c = anchor.check(checks::read_checkpoint(&anchor.json()?))?;
        tree = check_checkpoint(anchor, &c, None, keys)?;
        latest_epoch = c.record.latest_epoch;
        // A checkpoint closes any pending rotation: after it, the newest key signs.
        sign_epoch = c.record.latest_epoch;
        config_digest = c.record.config_digest;
        last_note = Some(c.record.note);
    }

    // The record before the anchor (if read) must link to it.
    if anchor_idx == 1 {
        let before = &lines[0];
        if !before.parsed.self_consistent()
            || checks::follows(before.link(), anchor.parsed.seq, &anchor.parsed.prev).is_err()
        {
            return Err(RecoverError::Unlinked { at: before.at() });
        }
    }

    let mut prev: Option<&TailLine> = None;
    for l in &lines[anchor_idx..] {
        let p = &l.parsed;
        if !p.self_consistent() {
            l.check(Err(CheckError::Hash))?;
        }
        if let Some(q) = prev {
            l.check(checks::follows(q.link(), p.seq, &p.prev))?;
        }
        if !std::ptr::eq(l, anchor) {
            match l.lifecycle() {
                Some(LifecycleKind::Checkpoint) => {
                    let c = l.check(checks::read_checkpoint(&l.json()?))?;
                    check_checkpoint(l, &c, Some(&tree), keys)?;
                    latest_epoch = c.record.latest_epoch;
                    sign_epoch = c.record.latest_epoch;
                    config_digest = c.record.config_digest;
                    last_note = Some(c.record.note);
                }
                Some(LifecycleKind::KeyRotation) => {
                    let j = l.json()?;
                    let epoch = l.field(lifecycle::get_u64(&j, "epoch"))?;
                    l.check(checks::rotation_order(epoch, latest_epoch, sign_epoch))?;
                    let r = l.field(RotationRecord::parse(&j))?;
                    if r.public_key != keys.public(epoch)? {
                        return Err(RecoverError::ForeignKey {
                            at: l.at(),
                            what: format!(
                                "announces a key for epoch {epoch} that is not the one in"
                            ),
                            key_dir: keys.path().to_path_buf(),
                        });
                    }
                    let signer = keys.public(sign_epoch)?;
                    l.check(checks::rotation_signature(
                        keys.origin(),
                        &r,
                        sign_epoch,
                        &signer,
                    ))?;
                    latest_epoch = epoch;
                }
                Some(LifecycleKind::Config) => {
                    config_digest = l
                        .field(lifecycle::get_str(&l.json()?, "config_digest"))?
                        .to_string();
                }
                _ => {}
            }
        }
        tree.push_record(&p.hash);
        prev = Some(l);
    }

    let clean = lines
        .iter()
        .rev()
        .find(|l| l.lifecycle() != Some(LifecycleKind::Checkpoint))
        .is_some_and(|l| l.lifecycle() == Some(LifecycleKind::Stop));
    Ok(Some(Resumed {
        resume: Resume {
            chain: Chain::resume(last.parsed.seq, last.parsed.hash),
            tree,
            origin,
            latest_epoch,
            config_digest,
            last: Some(Linked {
                seq: last.parsed.seq,
                hash: last.parsed.hash,
            }),
            last_note,
        },
        sign_epoch,
        clean,
        last_seq: last.parsed.seq,
        last_kind: last.kind().to_string(),
        last_time_ns: last.parsed.time_ns,
        torn,
        last_file,
    }))
}

/// Checks a checkpoint's note against the key of its epoch and the tree:
/// `tree` is what the writer computed (None for the anchor, which must be
/// self-consistent instead). Returns the tree the checkpoint commits to.
fn check_checkpoint(
    l: &TailLine,
    c: &checks::CheckpointParts,
    tree: Option<&Frontier>,
    keys: &KeyDir,
) -> Result<Frontier, RecoverError> {
    let body = &c.body;
    l.check(checks::checkpoint_origin(body, keys.origin()))?;
    if body.size != l.parsed.seq {
        l.check(Err(CheckError::SizeNotSeq {
            seq: l.parsed.seq,
            size: body.size,
        }))?;
    }
    let pk = keys.public(c.record.epoch)?;
    if checks::checkpoint_signature(&c.note, keys.origin(), &pk) != SigCheck::Valid {
        l.check(Err(CheckError::Signature {
            epoch: c.record.epoch,
        }))?;
    }
    let f = l.check(checks::signed_frontier(body, &c.record.frontier))?;
    if let Some(t) = tree {
        l.check(checks::checkpoint_tree(t, body).map_err(CheckError::Tree))?;
    }
    Ok(f)
}

/// The genesis record's hash and origin (first line of the first segment).
pub fn genesis(dir: &Path) -> Result<Option<(Hash, String)>, RecoverError> {
    for path in segment::list(dir)? {
        // Only the first line: segments can be large.
        let mut first = Vec::new();
        let (file, _) = segment::open_regular(&path, false)?;
        std::io::BufRead::read_until(&mut std::io::BufReader::new(file), b'\n', &mut first)
            .map_err(|source| RecoverError::Io {
                path: path.clone(),
                source,
            })?;
        let Some(line) = first.strip_suffix(b"\n") else {
            continue;
        };
        let at = At {
            file: path.clone(),
            line: 1,
        };
        let tl = TailLine {
            file: path.clone(),
            line_no: 1,
            bytes: line.to_vec(),
            parsed: parse_line(line).map_err(|source| RecoverError::Line {
                at: at.clone(),
                source,
            })?,
        };
        let p = &tl.parsed;
        if tl.lifecycle() != Some(LifecycleKind::Genesis) || p.seq != 0 || !p.self_consistent() {
            return Err(RecoverError::NoGenesis { at });
        }
        let j = tl.json()?;
        let origin = tl.field(lifecycle::get_str(&j, "origin"))?.to_string();
        return Ok(Some((p.hash, origin)));
    }
    Ok(None)
}

/// The newest checkpoint note in a store (for `sandbox-audit checkpoint`).
/// Read as written: `verify` is what checks it.
pub fn latest_note(dir: &Path) -> Result<Option<String>, RecoverError> {
    for path in segment::list(dir)?.iter().rev() {
        let data = segment::read(path)?;
        let (lines, _) = segment::split_lines(&data);
        for (i, (_, line)) in lines.iter().enumerate().rev() {
            let at = At {
                file: path.clone(),
                line: i + 1,
            };
            let parsed = parse_line(line).map_err(|source| RecoverError::Line {
                at: at.clone(),
                source,
            })?;
            if LifecycleKind::of(parsed.kind(line)) == Some(LifecycleKind::Checkpoint) {
                let tl = TailLine {
                    file: path.clone(),
                    line_no: i + 1,
                    bytes: line.to_vec(),
                    parsed,
                };
                let j = tl.json()?;
                let note = tl.field(lifecycle::get_str(&j, "note"))?;
                return Ok(Some(note.to_string()));
            }
        }
    }
    Ok(None)
}
