//! Restart: read the end of an existing store, validate it, and work out
//! where the chain, the Merkle tree and the key epochs stand, so the writer
//! continues the same chain. Reads backwards only as far as the last signed
//! checkpoint (or genesis): its frontier plus the records after it are the
//! whole state. Anything that does not check out stops the restart with the
//! file and line; extending a chain that does not verify would hide it.
//!
//! This is a consistency check against the keys on this host, not the audit
//! (`verify` with an off-host trust root and anchor is).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::{
    chain::{Chain, Linked, ParsedLine, parse_line},
    checkpoint::{SigCheck, parse_checkpoint, parse_note},
    keys::KeyDir,
    lifecycle::{self, CheckpointRecord, Torn},
    merkle::{Frontier, Hash, sha256},
    record::Json,
    segment,
    writer::Resume,
};

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

    fn at(&self) -> String {
        format!("{}:{}", self.file.display(), self.line_no)
    }

    fn json(&self) -> Result<Json> {
        serde_json::from_slice(&self.bytes).with_context(|| self.at())
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
pub fn torn_without_records(dir: &Path) -> Result<(bool, Vec<Torn>)> {
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
fn read_tail(segments: &[PathBuf]) -> Result<(Vec<TailLine>, Vec<Torn>)> {
    let mut rev: Vec<TailLine> = Vec::new();
    let mut torn: Vec<Torn> = Vec::new();
    let mut anchor_found = false;
    let mut bytes_read = 0usize;
    'files: for path in segments.iter().rev() {
        let data = segment::read(path)?;
        bytes_read += data.len();
        if bytes_read > MAX_TAIL_BYTES {
            bail!(
                "no checkpoint in the last {} bytes of the log",
                MAX_TAIL_BYTES
            );
        }
        if rev.is_empty()
            && let Some(t) = torn_of(path, &data)
        {
            torn.insert(0, t);
        }
        let (lines, _) = segment::split_lines(&data);
        for (i, (_, line)) in lines.iter().enumerate().rev() {
            let at = || format!("{}:{}", path.display(), i + 1);
            let parsed = parse_line(line).map_err(|e| anyhow::anyhow!("{}: {e}", at()))?;
            let tl = TailLine {
                file: path.clone(),
                line_no: i + 1,
                bytes: line.to_vec(),
                parsed,
            };
            let kind = tl.kind().to_string();
            rev.push(tl);
            if anchor_found {
                break 'files;
            }
            if kind == lifecycle::CHECKPOINT {
                anchor_found = true;
            } else if kind == lifecycle::GENESIS {
                break 'files;
            }
        }
    }
    rev.reverse();
    Ok((rev, torn))
}

/// Validates the tail and computes where to continue. `keys` supplies the
/// public keys the tail's signatures must verify under.
pub fn resume(dir: &Path, keys: &KeyDir) -> Result<Option<Resumed>> {
    let segments = segment::list(dir)?;
    let (lines, torn) = read_tail(&segments)?;
    let Some(last) = lines.last() else {
        return Ok(None);
    };
    let last_file = last.file.clone();
    let anchor_idx = lines
        .iter()
        .position(|l| matches!(l.kind(), lifecycle::CHECKPOINT | lifecycle::GENESIS))
        .with_context(|| format!("no checkpoint or genesis record found before {}", last.at()))?;
    let anchor = &lines[anchor_idx];
    let origin = keys.origin().to_string();

    let mut tree;
    let mut latest_epoch;
    let mut sign_epoch;
    let mut config_digest;
    let mut last_note = None;
    if anchor.kind() == lifecycle::GENESIS {
        let g = anchor.json()?;
        if anchor.parsed.seq != 0 || anchor.parsed.prev != crate::chain::GENESIS_PREV {
            bail!("{}: genesis record is not seq 0", anchor.at());
        }
        let g_origin = lifecycle::get_str(&g, "origin")
            .map_err(|e| anyhow::anyhow!("{}: {e}", anchor.at()))?;
        if g_origin != origin {
            bail!(
                "{}: this log's origin is {g_origin}, the key directory's is {origin}",
                anchor.at()
            );
        }
        let pk =
            lifecycle::get_public_key(&g).map_err(|e| anyhow::anyhow!("{}: {e}", anchor.at()))?;
        if pk != keys.public(0)? {
            bail!(
                "{}: genesis public key is not epoch 0's key in {}",
                anchor.at(),
                keys.path().display()
            );
        }
        tree = Frontier::new();
        latest_epoch = 0;
        sign_epoch = 0;
        config_digest = lifecycle::get_str(&g, "config_digest")
            .map_err(|e| anyhow::anyhow!("{}: {e}", anchor.at()))?
            .to_string();
    } else {
        let c = CheckpointRecord::parse(&anchor.json()?)
            .map_err(|e| anyhow::anyhow!("{}: {e}", anchor.at()))?;
        tree = check_checkpoint(anchor, &c, None, keys)?;
        latest_epoch = c.latest_epoch;
        // A checkpoint closes any pending rotation: after it, the newest key signs.
        sign_epoch = c.latest_epoch;
        config_digest = c.config_digest;
        last_note = Some(c.note);
    }

    // The record before the anchor (if read) must link to it.
    if anchor_idx == 1 {
        let before = &lines[0];
        if !before.parsed.self_consistent()
            || before.parsed.seq.checked_add(1) != Some(anchor.parsed.seq)
            || before.parsed.hash != anchor.parsed.prev
        {
            bail!("{}: does not link to the checkpoint after it", before.at());
        }
    }

    let mut prev: Option<&TailLine> = None;
    for l in &lines[anchor_idx..] {
        let p = &l.parsed;
        if !p.self_consistent() {
            bail!("{}: record hash does not match its content", l.at());
        }
        if let Some(q) = prev
            && (Some(p.seq) != q.parsed.seq.checked_add(1) || p.prev != q.parsed.hash)
        {
            bail!(
                "{}: does not follow seq {} (seq or prev_hash wrong)",
                l.at(),
                q.parsed.seq
            );
        }
        if !std::ptr::eq(l, anchor) {
            match l.kind() {
                lifecycle::CHECKPOINT => {
                    let c = CheckpointRecord::parse(&l.json()?)
                        .map_err(|e| anyhow::anyhow!("{}: {e}", l.at()))?;
                    check_checkpoint(l, &c, Some(&tree), keys)?;
                    latest_epoch = c.latest_epoch;
                    sign_epoch = c.latest_epoch;
                    config_digest = c.config_digest;
                    last_note = Some(c.note);
                }
                lifecycle::KEY_ROTATION => {
                    let j = l.json()?;
                    let epoch = lifecycle::get_u64(&j, "epoch")
                        .map_err(|e| anyhow::anyhow!("{}: {e}", l.at()))?;
                    if Some(epoch) != latest_epoch.checked_add(1) || latest_epoch != sign_epoch {
                        bail!(
                            "{}: rotation to epoch {epoch} does not follow epoch {latest_epoch}",
                            l.at()
                        );
                    }
                    let fields = |e: String| anyhow::anyhow!("{}: {e}", l.at());
                    let pk = lifecycle::get_public_key(&j).map_err(fields)?;
                    let sig = lifecycle::get_signature(&j).map_err(fields)?;
                    if pk != keys.public(epoch)? {
                        bail!(
                            "{}: announces a key for epoch {epoch} that is not the one in {}",
                            l.at(),
                            keys.path().display()
                        );
                    }
                    let msg = lifecycle::rotation_message(keys.origin(), epoch, &pk);
                    let vk = ed25519_dalek::VerifyingKey::from_bytes(&keys.public(sign_epoch)?)?;
                    vk.verify_strict(&msg, &ed25519_dalek::Signature::from_bytes(&sig))
                        .with_context(|| {
                            format!(
                                "{}: rotation is not signed by epoch {sign_epoch}'s key",
                                l.at()
                            )
                        })?;
                    latest_epoch = epoch;
                }
                lifecycle::CONFIG => {
                    config_digest = lifecycle::get_str(&l.json()?, "config_digest")
                        .map_err(|e| anyhow::anyhow!("{}: {e}", l.at()))?
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
        .find(|l| l.kind() != lifecycle::CHECKPOINT)
        .is_some_and(|l| l.kind() == lifecycle::STOP);
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
    c: &CheckpointRecord,
    tree: Option<&Frontier>,
    keys: &KeyDir,
) -> Result<Frontier> {
    let at = l.at();
    let note = parse_note(&c.note).with_context(|| at.clone())?;
    let body = parse_checkpoint(&note.body).with_context(|| at.clone())?;
    if body.origin != keys.origin() {
        bail!(
            "{at}: checkpoint origin {} is not {}",
            body.origin,
            keys.origin()
        );
    }
    if body.size != l.parsed.seq {
        bail!(
            "{at}: checkpoint at seq {} signs a tree of {} records",
            l.parsed.seq,
            body.size
        );
    }
    let pk = keys.public(c.epoch)?;
    if note.check(keys.origin(), &pk) != SigCheck::Valid {
        bail!("{at}: checkpoint is not signed by epoch {}'s key", c.epoch);
    }
    let f = Frontier::from_parts(body.size, c.frontier.clone()).with_context(|| {
        format!(
            "{at}: frontier does not fit a tree of {} records",
            body.size
        )
    })?;
    if f.root() != body.root {
        bail!("{at}: frontier does not match the signed root");
    }
    if let Some(t) = tree
        && (t.size() != body.size || t.root() != body.root)
    {
        bail!("{at}: signed root does not match the records before it");
    }
    Ok(f)
}

/// The genesis record's hash and origin (first line of the first segment).
pub fn genesis(dir: &Path) -> Result<Option<(Hash, String)>> {
    for path in segment::list(dir)? {
        // Only the first line: segments can be large.
        let mut first = Vec::new();
        let (file, _) = segment::open_regular(&path, false)?;
        std::io::BufRead::read_until(&mut std::io::BufReader::new(file), b'\n', &mut first)
            .with_context(|| format!("reading {}", path.display()))?;
        let Some(line) = first.strip_suffix(b"\n") else {
            continue;
        };
        let at = format!("{}:1", path.display());
        let p = parse_line(line).map_err(|e| anyhow::anyhow!("{at}: {e}"))?;
        if p.kind(line) != lifecycle::GENESIS || p.seq != 0 || !p.self_consistent() {
            bail!("{at}: the log does not start with an intact genesis record");
        }
        let j: Json = serde_json::from_slice(line).with_context(|| at.clone())?;
        let origin = lifecycle::get_str(&j, "origin").map_err(|e| anyhow::anyhow!("{at}: {e}"))?;
        return Ok(Some((p.hash, origin.to_string())));
    }
    Ok(None)
}

/// The newest checkpoint note in a store (for `sandbox-audit checkpoint`).
/// Read as written: `verify` is what checks it.
pub fn latest_note(dir: &Path) -> Result<Option<String>> {
    for path in segment::list(dir)?.iter().rev() {
        let data = segment::read(path)?;
        let (lines, _) = segment::split_lines(&data);
        for (i, (_, line)) in lines.iter().enumerate().rev() {
            let at = format!("{}:{}", path.display(), i + 1);
            let p = parse_line(line).map_err(|e| anyhow::anyhow!("{at}: {e}"))?;
            if p.kind(line) == lifecycle::CHECKPOINT {
                let j: Json = serde_json::from_slice(line).with_context(|| at.clone())?;
                let note =
                    lifecycle::get_str(&j, "note").map_err(|e| anyhow::anyhow!("{at}: {e}"))?;
                return Ok(Some(note.to_string()));
            }
        }
    }
    Ok(None)
}
