//! `sandbox-audit verify`: proves a log intact, or says which records were
//! altered and how. Reads segment files only; shares the line format with
//! the writer through [`crate::chain`] and [`crate::lifecycle`].
//!
//! Never panics on any input (a fuzz target feeds it arbitrary bytes): every
//! problem in the input becomes a verdict, a note or an error message.

mod engine;
mod report;

use std::{
    fs,
    io::IsTerminal,
    path::{Path, PathBuf},
};

use anyhow::{Context, Result, bail};

use engine::Engine;
pub use engine::WINDOW;

use crate::{
    chain::{ParsedLine, parse_line},
    checkpoint::{Checkpoint, Note, parse_checkpoint, parse_note, parse_vkey},
    lifecycle::{self, Torn},
    merkle::{Hash, sha256},
    record::Json,
    segment, store,
};

/// The kinds of tampering `verify` reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum VerdictKind {
    /// A record's content changed (or a line is not a record any more).
    Modified,
    /// Records are missing.
    Deleted,
    /// Records that the log never wrote are present.
    Inserted,
    /// Records are present but out of order.
    Reordered,
    /// The log ends before the size of an anchored (exported) checkpoint.
    TruncatedBeforeAnchor,
    /// The log's history differs from an anchored checkpoint, or another
    /// log's records are spliced in.
    Forked,
    /// A signature does not verify, or is by a key the log never announced
    /// (or the log's keys are not the trusted ones).
    BadSignature,
    /// A checkpoint is signed by a key of this log, but not its own epoch's;
    /// or epochs are not contiguous.
    WrongEpochKey,
    /// Bytes a crash left after the last complete record that no `recovery`
    /// record accounts for (or a recovery that names other bytes).
    TornTail,
}

impl VerdictKind {
    pub fn name(self) -> &'static str {
        match self {
            VerdictKind::Modified => "modified",
            VerdictKind::Deleted => "deleted",
            VerdictKind::Inserted => "inserted",
            VerdictKind::Reordered => "reordered",
            VerdictKind::TruncatedBeforeAnchor => "truncated-before-anchor",
            VerdictKind::Forked => "forked",
            VerdictKind::BadSignature => "bad-signature",
            VerdictKind::WrongEpochKey => "wrong-epoch-key",
            VerdictKind::TornTail => "torn-tail",
        }
    }
}

/// One finding: a kind and the range of seqs it concerns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub kind: VerdictKind,
    /// The first seq the finding concerns.
    pub first_seq: u64,
    pub last_seq: u64,
    /// Where the evidence is (segment file and 1-based line; line 0 = the
    /// file as a whole).
    pub file: String,
    pub line: u64,
    pub detail: String,
    /// How many findings merged into this range.
    pub count: u64,
}

/// Where a line is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Loc {
    pub file: usize,
    pub line: u64,
    pub offset: u64,
}

#[derive(Clone, Debug, Default)]
pub struct Options {
    /// The trust root (name, Ed25519 key): the genesis key must be this one.
    pub pubkey: Option<(String, [u8; 32])>,
    /// The text of an exported checkpoint note the log must still contain.
    pub anchor: Option<String>,
    /// A store process is writing to these files right now: an unfinished
    /// last line of the last file is in flight, not torn.
    pub live: bool,
}

/// A parsed anchor checkpoint.
pub struct Anchor {
    note: Note,
    cp: Checkpoint,
    checked: bool,
    matched: Option<bool>,
}

pub(crate) enum ItemBody {
    Rec(ParsedLine),
    Bad(String),
    Torn(Torn),
}

/// One line (or torn tail) of the input, parsed.
pub(crate) struct Item {
    loc: Loc,
    body: ItemBody,
    kind: String,
    /// The whole record, for the kinds whose fields verify reads.
    json: Option<Json>,
}

impl Item {
    fn intact(&self) -> bool {
        matches!(&self.body, ItemBody::Rec(r) if r.self_consistent())
    }

    fn seq(&self) -> Option<u64> {
        match &self.body {
            ItemBody::Rec(r) => Some(r.seq),
            _ => None,
        }
    }

    fn prev(&self) -> Option<Hash> {
        match &self.body {
            ItemBody::Rec(r) => Some(r.prev),
            _ => None,
        }
    }
}

/// Kinds whose fields verify reads (everything else: only the chain fields).
fn wants_fields(kind: &str) -> bool {
    matches!(
        kind,
        lifecycle::GENESIS
            | lifecycle::CHECKPOINT
            | lifecycle::KEY_ROTATION
            | lifecycle::RECOVERY
            | lifecycle::START
            | lifecycle::PROTECTION
            | "loss"
    )
}

fn parse_item(file: usize, line_no: u64, offset: u64, line: &[u8]) -> Item {
    let loc = Loc {
        file,
        line: line_no,
        offset,
    };
    match parse_line(line) {
        Ok(p) => {
            let kind = p.kind(line).to_string();
            let json = if wants_fields(&kind) {
                serde_json::from_slice::<Json>(line).ok()
            } else {
                None
            };
            Item {
                loc,
                body: ItemBody::Rec(p),
                kind,
                json,
            }
        }
        Err(e) => Item {
            loc,
            body: ItemBody::Bad(e.to_string()),
            kind: String::new(),
            json: None,
        },
    }
}

/// Parses one segment's bytes into items, on several threads when large.
fn items_of(file: usize, name: &str, data: &[u8]) -> Vec<Item> {
    let (lines, torn) = segment::split_lines(data);
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(8);
    let parse = |chunk: &[(usize, &[u8])], first: usize| -> Vec<Item> {
        chunk
            .iter()
            .enumerate()
            .map(|(i, (off, l))| parse_item(file, (first + i + 1) as u64, *off as u64, l))
            .collect()
    };
    let mut items: Vec<Item> = if threads > 1 && lines.len() >= 8192 {
        let per = lines.len().div_ceil(threads);
        std::thread::scope(|s| {
            let handles: Vec<_> = lines
                .chunks(per)
                .enumerate()
                .map(|(k, chunk)| s.spawn(move || parse(chunk, k * per)))
                .collect();
            // A panic in a worker would be a bug in the parser; treat it as
            // unparseable lines rather than bringing verify down.
            handles
                .into_iter()
                .enumerate()
                .flat_map(|(k, h)| {
                    h.join().unwrap_or_else(|_| {
                        let n = per.min(lines.len() - k * per);
                        (0..n)
                            .map(|i| Item {
                                loc: Loc {
                                    file,
                                    line: (k * per + i + 1) as u64,
                                    offset: 0,
                                },
                                body: ItemBody::Bad("internal error parsing this line".into()),
                                kind: String::new(),
                                json: None,
                            })
                            .collect()
                    })
                })
                .collect()
        })
    } else {
        parse(&lines, 0)
    };
    if !torn.is_empty() {
        items.push(Item {
            loc: Loc {
                file,
                line: lines.len() as u64 + 1,
                offset: (data.len() - torn.len()) as u64,
            },
            body: ItemBody::Torn(Torn {
                file: name.to_string(),
                offset: (data.len() - torn.len()) as u64,
                length: torn.len() as u64,
                sha256: sha256(torn),
            }),
            kind: String::new(),
            json: None,
        });
    }
    items
}

/// What a verification found.
#[derive(Debug)]
pub struct Report {
    pub verdicts: Vec<Verdict>,
    /// Limits of what could be checked (not findings).
    pub notes: Vec<String>,
    pub summary: Summary,
    pub files: Vec<String>,
}

impl Report {
    pub fn intact(&self) -> bool {
        self.verdicts.is_empty()
    }

    /// The verdict kinds, in order (for tests and scripts).
    pub fn kinds(&self) -> Vec<VerdictKind> {
        self.verdicts.iter().map(|v| v.kind).collect()
    }
}

/// Counts for the summary of an intact log.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    pub records: u64,
    /// Records before this seq are covered by a valid signed checkpoint.
    pub covered: u64,
    pub first_time_ns: Option<u64>,
    pub last_time_ns: Option<u64>,
    pub epochs: u64,
    pub checkpoints: u64,
    pub sessions: u64,
    pub recoveries: u64,
    pub torn_recovered: u64,
    pub loss_records: u64,
    pub lost_events: u64,
    pub protection_refusals: u64,
    pub unencodable: u64,
    pub origin: Option<String>,
    pub trust_root_checked: bool,
    /// The anchored size, when an anchor was given and matched.
    pub anchor: Option<u64>,
    pub last_note: Option<String>,
}

impl Summary {
    fn count(&mut self, kind: &str, _seq: u64, time_ns: u64, json: Option<&Json>) {
        self.first_time_ns = Some(self.first_time_ns.map_or(time_ns, |t| t.min(time_ns)));
        self.last_time_ns = Some(self.last_time_ns.map_or(time_ns, |t| t.max(time_ns)));
        match kind {
            lifecycle::START => self.sessions += 1,
            lifecycle::RECOVERY => self.recoveries += 1,
            lifecycle::PROTECTION => self.protection_refusals += 1,
            lifecycle::UNENCODABLE => self.unencodable += 1,
            "loss" => {
                self.loss_records += 1;
                self.lost_events += json
                    .and_then(|j| j.get("count"))
                    .and_then(|c| c.as_u64())
                    .unwrap_or(0);
            }
            _ => {}
        }
    }
}

/// Parses the `--anchor` note and the `--pubkey` verifier key contents.
pub fn parse_anchor(text: &str) -> Result<Anchor> {
    let note = parse_note(text).context("the anchor is not a signed note")?;
    let cp = parse_checkpoint(&note.body).context("the anchor is not a checkpoint")?;
    Ok(Anchor {
        note,
        cp,
        checked: false,
        matched: None,
    })
}

pub fn parse_pubkey(text: &str) -> Result<(String, [u8; 32])> {
    Ok(parse_vkey(text)?)
}

/// Verifies in-memory segments, in order: (name, bytes).
pub fn verify_segments(segments: &[(&str, &[u8])], opts: &Options) -> Result<Report> {
    let anchor = opts.anchor.as_deref().map(parse_anchor).transpose()?;
    let mut engine = Engine::new(opts.clone(), anchor);
    for (i, (name, data)) in segments.iter().enumerate() {
        engine.files.push((*name).to_string());
        for item in items_of(i, name, data) {
            engine.push(item);
        }
    }
    Ok(finish(engine))
}

fn finish(engine: Engine) -> Report {
    let files = engine.files.clone();
    let (verdicts, notes, summary, _) = engine.finish();
    Report {
        verdicts,
        notes,
        summary,
        files,
    }
}

/// The files to read: a directory's segments in log order, or the files
/// as given. Also says whether a store is writing to that directory now.
pub fn resolve_inputs(paths: &[PathBuf]) -> Result<(Vec<PathBuf>, bool)> {
    let paths = if paths.is_empty() {
        vec![PathBuf::from(store::DEFAULT_LOG_DIR)]
    } else {
        paths.to_vec()
    };
    let mut files = Vec::new();
    let mut live = false;
    for p in &paths {
        if p.is_dir() {
            let segs = segment::list(p)?;
            if segs.is_empty() {
                bail!("{} holds no segment files (seg-*.log)", p.display());
            }
            live |= store::is_live(p);
            files.extend(segs);
        } else if p.exists() {
            files.push(p.clone());
        } else {
            bail!("{}: no such file or directory", p.display());
        }
    }
    if let Some(parent) = files.last().and_then(|f| f.parent()) {
        live |= store::is_live(parent);
    }
    Ok((files, live))
}

/// Verifies files on disk, with a progress bar on a terminal for big logs.
pub fn verify_paths(files: &[PathBuf], opts: &Options) -> Result<Report> {
    let anchor = opts.anchor.as_deref().map(parse_anchor).transpose()?;
    let mut engine = Engine::new(opts.clone(), anchor);
    let total: u64 = files
        .iter()
        .map(|f| fs::metadata(f).map(|m| m.len()).unwrap_or(0))
        .sum();
    let bar = (std::io::stderr().is_terminal() && total >= 64 << 20).then(|| {
        let b = indicatif::ProgressBar::new(total);
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "verify {bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b
    });
    for (i, f) in files.iter().enumerate() {
        let data = fs::read(f).with_context(|| format!("reading {}", f.display()))?;
        let name = display_name(f);
        engine.files.push(name.clone());
        for item in items_of(i, &name, &data) {
            engine.push(item);
        }
        if let Some(b) = &bar {
            b.inc(data.len() as u64);
        }
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    Ok(finish(engine))
}

/// File names as recovery records give them: the base name.
fn display_name(p: &Path) -> String {
    segment::file_name(p)
}

pub use report::{render_json, render_text};
