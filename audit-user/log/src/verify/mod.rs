//! `sandbox-audit verify`: proves a log intact, or says which records were
//! altered and how. Reads segment files only; shares the line format with
//! the writer through [`crate::chain`] and [`crate::lifecycle`].
//!
//! Never panics on any input (a fuzz target feeds it arbitrary bytes): every
//! problem in the input becomes a verdict, a note or an error message.

mod engine;
mod pipeline;
mod report;

use std::{
    fs,
    io::IsTerminal,
    path::{Path, PathBuf},
};

use engine::Engine;
pub use engine::{Incomplete, WINDOW};

use crate::{
    chain::parse_line,
    checkpoint::{Checkpoint, Note, NoteError, parse_checkpoint, parse_note, parse_vkey},
    lifecycle::{LifecycleKind, Torn},
    lockfile,
    merkle::{Hash, leaf_hash},
    record::Json,
    segment::{self, SegmentError},
    store,
};

/// Why verify could not run (no report): its input or its options are
/// unusable. Findings in the log itself are verdicts, never errors.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("the anchor is not a signed note")]
    AnchorNote(#[source] NoteError),
    #[error("the anchor is not a checkpoint")]
    AnchorBody(#[source] NoteError),
    /// The `--pubkey` text is not a verifier key.
    #[error(transparent)]
    Pubkey(NoteError),
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error(transparent)]
    Segment(#[from] SegmentError),
    #[error("{} holds no segment files (seg-*.log)", dir.display())]
    NoSegments { dir: PathBuf },
    #[error("{}: no such file or directory", path.display())]
    NotFound { path: PathBuf },
    #[error("internal error: the parser threads stopped early")]
    Internal,
}

type Result<T, E = VerifyError> = std::result::Result<T, E>;

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

/// The outcome of a verification, and `verify`'s exit status for it
/// (2 is "could not verify": an error, no report).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// 0: every check passed and the log is complete.
    Intact,
    /// 1: at least one verdict.
    Tampered,
    /// 3: no verdict, but the log stops before its last session ended.
    Incomplete,
}

impl Status {
    pub fn exit_code(self) -> u8 {
        match self {
            Status::Intact => 0,
            Status::Tampered => 1,
            Status::Incomplete => 3,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Status::Intact => "intact",
            Status::Tampered => "tampered",
            Status::Incomplete => "incomplete",
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
    /// Someone holds the store's lock who is not a sandbox-audit writing
    /// it: said in the report.
    pub lock_note: Option<String>,
}

/// A parsed anchor checkpoint.
pub struct Anchor {
    note: Note,
    cp: Checkpoint,
    checked: bool,
    matched: Option<bool>,
}

/// Record kinds verify treats specially (others are all `Other`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Genesis,
    Start,
    Stop,
    Recovery,
    Config,
    KeyRotation,
    Checkpoint,
    Protection,
    Unencodable,
    StoreError,
    Loss,
    Other,
    /// A line too damaged to tell its kind.
    Unreadable,
}

impl Kind {
    fn of(kind: &str) -> Kind {
        LifecycleKind::of(kind).map_or(Kind::Other, Kind::from)
    }

    /// For a damaged record whose `kind` may itself be what changed: the
    /// lifecycle kind its fields betray.
    fn or_by_fields(self, json: Option<&Json>) -> Kind {
        let Some(j) = json else { return self };
        if !matches!(self, Kind::Other | Kind::Unreadable) {
            return self;
        }
        let has = |k: &str| j.contains_key(k);
        if has("public_key") && has("signature") {
            Kind::KeyRotation
        } else if has("note") && has("frontier") {
            Kind::Checkpoint
        } else if has("origin") && has("public_key") {
            Kind::Genesis
        } else if has("torn") {
            Kind::Recovery
        } else {
            self
        }
    }

    /// Kinds whose fields verify reads (for the others: the chain fields).
    fn wants_fields(self) -> bool {
        !matches!(
            self,
            Kind::Other | Kind::Stop | Kind::Config | Kind::Unencodable
        )
    }
}

impl From<LifecycleKind> for Kind {
    fn from(k: LifecycleKind) -> Kind {
        match k {
            LifecycleKind::Genesis => Kind::Genesis,
            LifecycleKind::Start => Kind::Start,
            LifecycleKind::Stop => Kind::Stop,
            LifecycleKind::Recovery => Kind::Recovery,
            LifecycleKind::Config => Kind::Config,
            LifecycleKind::KeyRotation => Kind::KeyRotation,
            LifecycleKind::Checkpoint => Kind::Checkpoint,
            LifecycleKind::Protection => Kind::Protection,
            LifecycleKind::Unencodable => Kind::Unencodable,
            LifecycleKind::StoreError => Kind::StoreError,
            LifecycleKind::Loss => Kind::Loss,
        }
    }
}

/// The chain fields of one intact-looking line.
#[derive(Clone, Debug)]
pub(crate) struct Rec {
    seq: u64,
    time_ns: u64,
    prev: Hash,
    hash: Hash,
    /// The content still has the hash it claims.
    self_ok: bool,
    /// RFC 6962 leaf hash of `hash` (computed while parsing, in parallel).
    leaf: Hash,
}

pub(crate) enum ItemBody {
    Rec(Rec),
    Bad(Box<str>),
    Torn(Box<Torn>),
}

/// One line (or torn tail) of the input, parsed.
pub(crate) struct Item {
    loc: Loc,
    kind: Kind,
    body: ItemBody,
    /// The whole record, for the kinds whose fields verify reads.
    json: Option<Box<Json>>,
}

impl Item {
    fn intact(&self) -> bool {
        matches!(&self.body, ItemBody::Rec(r) if r.self_ok)
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

fn parse_item(file: usize, line_no: u64, offset: u64, line: &[u8]) -> Item {
    let loc = Loc {
        file,
        line: line_no,
        offset,
    };
    match parse_line(line) {
        Ok(p) => {
            let mut kind = Kind::of(p.kind(line));
            let json = if kind.wants_fields() || !p.self_consistent() {
                serde_json::from_slice::<Json>(line).ok().map(Box::new)
            } else {
                None
            };
            if !p.self_consistent() {
                kind = kind.or_by_fields(json.as_deref());
            }
            Item {
                loc,
                kind,
                body: ItemBody::Rec(Rec {
                    seq: p.seq,
                    time_ns: p.time_ns,
                    prev: p.prev,
                    hash: p.hash,
                    self_ok: p.self_consistent(),
                    leaf: leaf_hash(&p.hash),
                }),
                json,
            }
        }
        Err(e) => {
            let (kind, json) = salvage(line);
            Item {
                loc,
                kind,
                body: ItemBody::Bad(e.to_string().into()),
                json,
            }
        }
    }
}

/// What can still be read from a line that is not a valid record: its kind
/// (and fields, if it is still JSON), so that a damaged key announcement
/// is not mistaken for an ordinary event.
fn salvage(line: &[u8]) -> (Kind, Option<Box<Json>>) {
    if let Ok(j) = serde_json::from_slice::<Json>(line) {
        let kind = j
            .get("kind")
            .and_then(|k| k.as_str())
            .map_or(Kind::Unreadable, Kind::of);
        let kind = kind.or_by_fields(Some(&j));
        return (kind, kind.wants_fields().then(|| Box::new(j)));
    }
    let Some(at) = memchr::memmem::find(line, b"\"kind\":\"") else {
        return (Kind::Unreadable, None);
    };
    let rest = &line[at + 8..];
    let end = rest.iter().position(|&c| c == b'"').unwrap_or(rest.len());
    match std::str::from_utf8(&rest[..end]) {
        Ok(k) if !k.is_empty() && k.bytes().all(|c| c.is_ascii_lowercase() || c == b'_') => {
            (Kind::of(k), None)
        }
        _ => (Kind::Unreadable, None),
    }
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
    /// No tampering found (the log may still be [`Report::incomplete`]).
    pub fn intact(&self) -> bool {
        self.verdicts.is_empty()
    }

    /// The log ends early (no tampering found, but the last session has
    /// neither `stop` nor a later `recovery`, and nobody writes the store).
    pub fn incomplete(&self) -> Option<&Incomplete> {
        self.summary.incomplete.as_ref()
    }

    /// The overall outcome, as `verify` exits with it.
    pub fn status(&self) -> Status {
        if !self.intact() {
            Status::Tampered
        } else if self.incomplete().is_some() {
            Status::Incomplete
        } else {
            Status::Intact
        }
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
    /// The longest gap a crash left (a recovery's `gap_ns`: last record
    /// before the crash → the restart), and the recovery's seq.
    pub longest_gap: Option<(u64, u64)>,
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
    /// The log ends before its last session did (and nobody writes it).
    pub incomplete: Option<Incomplete>,
}

impl Summary {
    fn count(&mut self, kind: Kind, seq: u64, time_ns: u64, json: Option<&Json>) {
        if kind == Kind::Recovery
            && let Some(gap) = json.and_then(|j| j.get("gap_ns")).and_then(|g| g.as_u64())
            && self.longest_gap.is_none_or(|(_, g)| gap > g)
        {
            self.longest_gap = Some((seq, gap));
        }
        self.first_time_ns = Some(self.first_time_ns.map_or(time_ns, |t| t.min(time_ns)));
        self.last_time_ns = Some(self.last_time_ns.map_or(time_ns, |t| t.max(time_ns)));
        match kind {
            Kind::Start => self.sessions += 1,
            Kind::Recovery => self.recoveries += 1,
            Kind::Protection => self.protection_refusals += 1,
            Kind::Unencodable => self.unencodable += 1,
            Kind::Loss => {
                self.loss_records += 1;
                self.lost_events = self.lost_events.saturating_add(
                    json.and_then(|j| j.get("count"))
                        .and_then(|c| c.as_u64())
                        .unwrap_or(0),
                );
            }
            _ => {}
        }
    }
}

/// Parses the `--anchor` note and the `--pubkey` verifier key contents.
pub fn parse_anchor(text: &str) -> Result<Anchor> {
    let note = parse_note(text).map_err(VerifyError::AnchorNote)?;
    let cp = parse_checkpoint(&note.body).map_err(VerifyError::AnchorBody)?;
    Ok(Anchor {
        note,
        cp,
        checked: false,
        matched: None,
    })
}

pub fn parse_pubkey(text: &str) -> Result<(String, [u8; 32])> {
    parse_vkey(text).map_err(VerifyError::Pubkey)
}

/// Verifies in-memory segments, in order: (name, bytes).
pub fn verify_segments(segments: &[(&str, &[u8])], opts: &Options) -> Result<Report> {
    pipeline::run(pipeline::Source::Memory(segments), opts, |_| {}, None)
}

/// A run of whole lines of one segment, as verify read it: shown to the
/// caller of [`verify_inputs_tapped`], which reads the same records for
/// its own purpose (replay) without reading and splitting the files again.
#[derive(Clone, Copy, Debug)]
pub struct Lines<'c> {
    /// The segment's index in the inputs.
    pub file: usize,
    /// Whole lines, each with its `\n`.
    pub lines: &'c [u8],
    /// In the segment's last chunk, the bytes after its last newline (a
    /// torn tail, or a line in flight), when there are any.
    pub tail: Option<&'c [u8]>,
}

/// [`verify_inputs`], which also hands every chunk of lines it reads to
/// `parse` (on verify's parser threads for big inputs: `parse` runs in
/// parallel with itself and with the verification) and gives its results
/// to `take` in log order, each with the number of lines of the same
/// segment before the chunk (line `n` of a chunk is line `before + n` of
/// its segment). No progress bar: `take` can drive the caller's own.
pub fn verify_inputs_tapped<T: Send + 'static>(
    inputs: &Inputs,
    opts: &Options,
    parse: &(dyn Fn(Lines<'_>) -> T + Sync),
    take: &mut dyn FnMut(T, u64),
) -> Result<Report> {
    let parse_any = |l: Lines<'_>| -> Box<dyn std::any::Any + Send> { Box::new(parse(l)) };
    let mut take_any = |t: Box<dyn std::any::Any + Send>, before: u64| {
        // Every result is parse's, so of type T.
        if let Ok(t) = t.downcast::<T>() {
            take(*t, before);
        }
    };
    let tap = pipeline::Tap {
        parse: &parse_any,
        take: &mut take_any,
    };
    let source = pipeline::Source::Files {
        files: &inputs.files,
        listed: &inputs.listed,
    };
    pipeline::run(source, &live_opts(inputs, opts), |_| {}, Some(tap))
}

pub(super) fn finish(engine: Engine) -> Report {
    let files = engine.files.clone();
    let (verdicts, notes, summary, _) = engine.finish();
    Report {
        verdicts,
        notes,
        summary,
        files,
    }
}

/// What `verify` reads: segment files in log order, whether each came from
/// a store directory's listing (then a symbolic link is refused: the store
/// never makes one), and who writes the store of the last one.
#[derive(Clone, Debug)]
pub struct Inputs {
    pub files: Vec<PathBuf>,
    pub listed: Vec<bool>,
    pub writer: lockfile::Writer,
}

/// The files to read: a directory's segments in log order, or the files
/// as given. Also says whether a store is writing to them now.
pub fn resolve_inputs(paths: &[PathBuf]) -> Result<Inputs> {
    let paths = if paths.is_empty() {
        vec![PathBuf::from(store::DEFAULT_LOG_DIR)]
    } else {
        paths.to_vec()
    };
    let (mut files, mut listed) = (Vec::new(), Vec::new());
    for p in &paths {
        if p.is_dir() {
            let segs = segment::list(p)?;
            if segs.is_empty() {
                return Err(VerifyError::NoSegments { dir: p.clone() });
            }
            listed.extend(segs.iter().map(|_| true));
            files.extend(segs);
        } else if fs::symlink_metadata(p).is_ok() {
            files.push(p.clone());
            listed.push(false);
        } else {
            return Err(VerifyError::NotFound { path: p.clone() });
        }
    }
    // Only the store of the last file can have a write in flight.
    let writer = files
        .last()
        .and_then(|f| f.parent())
        .map_or(lockfile::Writer::None, |d| {
            lockfile::writer(if d.as_os_str().is_empty() {
                Path::new(".")
            } else {
                d
            })
        });
    Ok(Inputs {
        files,
        listed,
        writer,
    })
}

/// Verifies what [`resolve_inputs`] found; the writer it found decides
/// whether an unfinished last line is in flight.
pub fn verify_inputs(inputs: &Inputs, opts: &Options) -> Result<Report> {
    verify_files(&inputs.files, &inputs.listed, &live_opts(inputs, opts))
}

/// `opts` with `live` (and the lock note) as the store's writer says.
fn live_opts(inputs: &Inputs, opts: &Options) -> Options {
    let mut opts = opts.clone();
    match &inputs.writer {
        lockfile::Writer::Live { .. } => opts.live = true,
        lockfile::Writer::Foreign { why } => {
            opts.live = false;
            opts.lock_note = Some(format!(
                "{why}: no live-writer exemption (the end of the log is checked as final)"
            ));
        }
        lockfile::Writer::None => opts.live = false,
    }
    opts
}

/// Verifies files on disk, with a progress bar on a terminal for big logs.
pub fn verify_paths(files: &[PathBuf], opts: &Options) -> Result<Report> {
    verify_files(files, &vec![false; files.len()], opts)
}

fn verify_files(files: &[PathBuf], listed: &[bool], opts: &Options) -> Result<Report> {
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
    let source = pipeline::Source::Files { files, listed };
    let report = pipeline::run(
        source,
        opts,
        |n| {
            if let Some(b) = &bar {
                b.inc(n);
            }
        },
        None,
    );
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    report
}

/// File names as recovery records give them: the base name.
fn display_name(p: &Path) -> String {
    segment::file_name(p)
}

pub use report::{render_json, render_text};
pub use segment::ReadError;

#[cfg(test)]
mod tests;
