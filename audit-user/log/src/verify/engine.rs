//! The verifier's state machine. Lines arrive in log order (already parsed,
//! see [`super::parse_item`]); a window of the next [`WINDOW`] items lets a
//! gap in `seq` be told apart from a reordering. Every check names the first
//! seq it concerns, and consecutive findings of the same kind merge into one
//! verdict per range.
//!
//! What is checked, per record: the line is canonical and its `hash` matches
//! its content; `seq` follows the previous record; `prev_hash` is the
//! previous record's `hash`. Per checkpoint: the note verifies under the key
//! of the epoch in force (anything else is `wrong-epoch-key` or
//! `bad-signature`) and its size and root equal the tree of every record
//! before it. Per key rotation: announces the next epoch, signed by the
//! current key. Per crash: torn bytes are followed by a `recovery` record
//! naming exactly them. Against an anchor: the log reaches the anchored size
//! and has the anchored root there.

use std::collections::VecDeque;

use base64::{Engine as _, engine::general_purpose::STANDARD as B64};

use super::{Anchor, Item, ItemBody, Kind, Loc, Options, Summary, Verdict, VerdictKind};
use crate::{
    checkpoint::{Note, SigCheck},
    checks::{self, CheckpointParts, TreeMismatch},
    lifecycle::{self, FieldError, RotationRecord, Torn},
    merkle::{Frontier, Hash, leaf_hash},
    record::Json,
};

/// How far ahead a missing seq is looked for before calling it deleted.
pub const WINDOW: usize = 1024;
/// How many accepted (seq, hash) pairs are remembered to spot duplicates.
const RECENT: usize = 4096;

/// One epoch's public key as this log announced it.
#[derive(Clone, Copy)]
struct EpochKey {
    pk: [u8; 32],
    /// Announced by a record that itself verified (genesis matching the trust
    /// root when one was given, or a correctly signed rotation).
    trusted: bool,
}

pub struct Engine {
    opts: Options,
    anchor: Option<Anchor>,
    window: VecDeque<Item>,
    pub files: Vec<String>,
    verdicts: Vec<Verdict>,
    notes: Vec<String>,

    expect_seq: u64,
    expect_prev: Option<Hash>,
    /// Leaf hash of the last accepted record, which waits until the next
    /// record confirms it (a successor's `prev_hash` is the better witness
    /// of what the original was).
    pending_leaf: Option<Hash>,
    /// None once a leaf is unknown; rebuilt from the next signed checkpoint.
    tree: Option<Frontier>,
    recent: VecDeque<(u64, Hash)>,

    origin: Option<String>,
    keys: Vec<EpochKey>,
    latest_epoch: u64,
    sign_epoch: u64,
    /// Why signatures are no longer checked (reported once).
    trust_broken: Option<String>,
    /// Records before this seq are covered by a good checkpoint.
    covered: u64,
    good_checkpoint: bool,
    /// The verdict a run of failing checkpoints extends.
    open_tree_verdict: Option<usize>,
    pending_torn: Vec<(Torn, Loc)>,
    genesis_seen: bool,
    /// Checkpoints no key known at the time had signed: (verdict, note,
    /// expected epoch, seq). A key announced later may explain them.
    unattributed: Vec<(usize, Note, u64, u64)>,
    /// The session in progress (seq and time of the genesis, `start` or
    /// `recovery` that opened it): closed by `stop`, accounted for by a
    /// later `recovery`. Still open at the end = the record stops early.
    open_session: Option<(u64, u64)>,
    /// What a `store_error` record said went wrong, in the open session.
    store_error: Option<String>,
    /// The last record accepted: (seq, time_ns).
    last_record: Option<(u64, u64)>,

    pub summary: Summary,
}

/// A log that ends before its last session did: neither `stop` nor a later
/// `recovery`, and nobody is writing it. Not tampering by itself (a killed
/// or failed recorder leaves this), but the auditor must know the record
/// stops early.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Incomplete {
    /// Seq and time of the record that opened the unfinished session.
    pub session_seq: u64,
    pub session_time_ns: u64,
    /// The last record there is.
    pub last_seq: u64,
    pub last_time_ns: u64,
    /// Why the store stopped writing, when it could still say so (a
    /// `store_error` record).
    pub reason: Option<String>,
    /// An unfinished write after the last record (bytes the dying writer
    /// left), if any.
    pub unfinished: Option<Torn>,
}

impl Engine {
    pub fn new(opts: Options, anchor: Option<Anchor>) -> Engine {
        Engine {
            opts,
            anchor,
            window: VecDeque::new(),
            files: Vec::new(),
            verdicts: Vec::new(),
            notes: Vec::new(),
            expect_seq: 0,
            expect_prev: None,
            pending_leaf: None,
            tree: Some(Frontier::new()),
            recent: VecDeque::new(),
            origin: None,
            keys: Vec::new(),
            latest_epoch: 0,
            sign_epoch: 0,
            trust_broken: None,
            covered: 0,
            good_checkpoint: false,
            open_tree_verdict: None,
            pending_torn: Vec::new(),
            genesis_seen: false,
            unattributed: Vec::new(),
            open_session: None,
            store_error: None,
            last_record: None,
            summary: Summary::default(),
        }
    }

    pub fn push(&mut self, item: Item) {
        // The next record in order, intact, with nothing waiting before it:
        // deciding it needs no look-ahead (only damaged and out-of-order
        // lines look at the window), so it skips the window and its two
        // copies of the item. The order in which items are decided, and so
        // every verdict, is the same either way.
        if self.window.is_empty() && item.intact() && item.seq() == Some(self.expect_seq) {
            return self.record(item);
        }
        self.window.push_back(item);
        while self.window.len() > WINDOW {
            self.step();
        }
    }

    fn loc_str(&self, l: &Loc) -> String {
        let f = self.files.get(l.file).map(String::as_str).unwrap_or("?");
        format!("{f}:{}", l.line)
    }

    fn verdict(
        &mut self,
        kind: VerdictKind,
        first: u64,
        last: u64,
        loc: &Loc,
        detail: String,
    ) -> usize {
        // A range is never printed backwards.
        let (first, last) = (first.min(last), first.max(last));
        if let Some(v) = self.verdicts.last_mut()
            && v.kind == kind
            && first <= v.last_seq.saturating_add(1)
            && first >= v.first_seq
        {
            v.last_seq = v.last_seq.max(last);
            v.count += 1;
            return self.verdicts.len() - 1;
        }
        self.verdicts.push(Verdict {
            kind,
            first_seq: first,
            last_seq: last,
            file: self.files.get(loc.file).cloned().unwrap_or_default(),
            line: loc.line,
            detail,
            count: 1,
        });
        self.verdicts.len() - 1
    }

    fn step(&mut self) {
        let Some(item) = self.window.pop_front() else {
            return;
        };
        match item.body {
            ItemBody::Torn(t) => self.pending_torn.push((*t, item.loc)),
            ItemBody::Bad(ref e) => {
                let why = format!("line is not a valid record: {e}");
                self.resolve_torn(&item, None);
                self.mangled(&item, why);
            }
            ItemBody::Rec(_) => self.record(item),
        }
    }

    /// The next record in the window that is intact, if any.
    fn next_intact(&self) -> Option<&Item> {
        self.window
            .iter()
            .find(|i| !matches!(i.body, ItemBody::Torn(_)))
            .filter(|i| i.intact())
    }

    /// Torn bytes must be followed by a `recovery` naming them (after the
    /// genesis record, if the crash tore the very first write).
    fn resolve_torn(&mut self, item: &Item, kind: Option<Kind>) {
        if self.pending_torn.is_empty() || kind == Some(Kind::Recovery) {
            return;
        }
        if kind == Some(Kind::Genesis) && item.seq() == Some(0) {
            return;
        }
        let e = self.expect_seq;
        for (t, loc) in std::mem::take(&mut self.pending_torn) {
            let d = format!(
                "{} bytes at offset {} of {} follow the last complete record, and the next record ({}) is not a recovery naming them",
                t.length,
                t.offset,
                t.file,
                self.loc_str(&item.loc)
            );
            self.verdict(VerdictKind::TornTail, e, e, &loc, d);
        }
    }

    fn record(&mut self, item: Item) {
        let ItemBody::Rec(r) = &item.body else { return };
        self.resolve_torn(&item, Some(item.kind));
        if !r.self_ok {
            let why = if r.seq == self.expect_seq {
                "content does not match the record's hash".to_string()
            } else {
                format!(
                    "content does not match the record's hash (it claims seq {})",
                    r.seq
                )
            };
            return self.mangled(&item, why);
        }
        let e = self.expect_seq;
        let (seq, prev, hash) = (r.seq, r.prev, r.hash);
        if seq == e {
            return self.accept(&item);
        }
        if seq > e {
            if let Some(pos) = self
                .window
                .iter()
                .position(|i| i.intact() && i.seq() == Some(e))
            {
                let found = self.window.remove(pos);
                if let Some(found) = found {
                    let d = format!(
                        "seq {e} is stored at {}, after seq {seq} at {}",
                        self.loc_str(&found.loc),
                        self.loc_str(&item.loc)
                    );
                    self.verdict(VerdictKind::Reordered, e, e, &found.loc, d);
                    self.window.push_front(item);
                    self.window.push_front(found);
                }
                return;
            }
            let relinked = self.expect_prev == Some(prev);
            let d = format!(
                "{} record(s) missing: seq jumps from {} to {seq}{}",
                seq - e,
                e as i128 - 1,
                if relinked {
                    " and the next record was re-linked over the gap"
                } else {
                    ""
                }
            );
            let i = self.verdict(VerdictKind::Deleted, e, seq - 1, &item.loc, d);
            self.poison(i);
            self.expect_seq = seq;
            self.expect_prev = None;
            return self.accept(&item);
        }
        // seq < e: an earlier seq again.
        if self.recent.iter().any(|&(s, h)| s == seq && h == hash) {
            let d = format!("a second copy of seq {seq} sits before seq {e}");
            self.verdict(VerdictKind::Inserted, e, e, &item.loc, d);
            return;
        }
        if self.expect_prev == Some(prev) {
            // It links to the last record we accepted: those records (from
            // `seq` on) were inserted ahead of it, with seqs of their own.
            let d = format!(
                "record(s) inserted before seq {seq}: seq {seq} appears again at {}, linked to the record before it",
                self.loc_str(&item.loc)
            );
            let i = self.verdict(
                VerdictKind::Inserted,
                seq,
                e.saturating_sub(1),
                &item.loc,
                d,
            );
            if e - seq == 1 && self.pending_leaf.is_some() {
                // Exactly one inserted record, whose leaf is still pending: drop it.
                self.pending_leaf = None;
            } else {
                self.poison(i);
            }
            self.expect_seq = seq;
            return self.accept(&item);
        }
        let d = format!("a record claiming seq {seq} sits where seq {e} belongs");
        self.verdict(VerdictKind::Inserted, e, e, &item.loc, d);
    }

    /// A line that is not an intact record (unparseable, or its content no
    /// longer matches its hash).
    fn mangled(&mut self, item: &Item, why: String) {
        let e = self.expect_seq;
        let next = self.next_intact().map(|n| (n.seq(), n.prev()));
        if let Some((Some(ns), _)) = next
            && ns == e
        {
            // The next line is seq e itself: this one was put in front of it.
            let d = format!("{} (an extra line before seq {e})", why);
            self.verdict(VerdictKind::Inserted, e, e, &item.loc, d);
            return;
        }
        let d = format!("seq {e}: {why}");
        self.verdict(VerdictKind::Modified, e, e, &item.loc, d);
        // The original hash is what the next record links to, if it follows.
        let witness = match next {
            Some((Some(ns), Some(p))) if Some(ns) == e.checked_add(1) => Some(p),
            _ => match &item.body {
                ItemBody::Rec(r) if r.seq == e => Some(r.hash),
                _ => None,
            },
        };
        self.push_pending_leaf();
        match witness {
            Some(h) => self.pending_leaf = Some(leaf_hash(&h)),
            None => {
                let i = self.verdicts.len() - 1;
                self.poison(i);
            }
        }
        // A lifecycle record still moves state along (its key, its epoch),
        // but is no longer trusted for anything.
        if e == 0 {
            self.genesis_seen = true;
            self.trust_broken.get_or_insert_with(|| {
                "the genesis record (the log's first key) was altered".into()
            });
        }
        // Every checkpoint closes a pending rotation, whether or not its
        // fields can still be read: otherwise the next (intact) checkpoint,
        // signed by the new epoch's key, looks signed by the wrong one.
        if item.kind == Kind::Checkpoint {
            self.sign_epoch = self.latest_epoch;
        }
        match item.kind {
            Kind::Unreadable | Kind::KeyRotation if item.json.is_none() => {
                if item.kind == Kind::KeyRotation {
                    self.keys.push(EpochKey {
                        pk: [0; 32],
                        trusted: false,
                    });
                    self.latest_epoch = self.latest_epoch.saturating_add(1);
                }
                let why = format!("an unreadable record at seq {e} may have announced a key");
                self.trust_broken.get_or_insert(why);
            }
            _ => {}
        }
        if let Some(j) = item.json.as_ref() {
            match item.kind {
                Kind::Genesis if e == 0 => {
                    self.origin = lifecycle::get_str(j, "origin").ok().map(str::to_string);
                    if let Ok(pk) = lifecycle::get_public_key(j) {
                        self.keys = vec![EpochKey { pk, trusted: false }];
                    }
                }
                Kind::KeyRotation => {
                    if let Ok(pk) = lifecycle::get_public_key(j) {
                        self.keys.push(EpochKey { pk, trusted: false });
                    }
                    self.latest_epoch = self.latest_epoch.saturating_add(1);
                    let why = format!(
                        "the announcement of epoch {}'s key (seq {e}) was altered",
                        self.latest_epoch
                    );
                    self.trust_broken.get_or_insert(why);
                }
                Kind::Recovery => self.pending_torn.clear(),
                _ => {}
            }
        }
        // Saturating: a seq near u64::MAX is damage, not a reason to panic.
        self.expect_seq = e.saturating_add(1);
        self.expect_prev = witness;
    }

    fn poison(&mut self, verdict: usize) {
        if self.tree.take().is_some() {
            self.open_tree_verdict = Some(verdict);
        }
    }

    fn push_pending_leaf(&mut self) {
        let Some(h) = self.pending_leaf.take() else {
            return;
        };
        if let Some(t) = self.tree.as_mut() {
            t.push_leaf_hash(h);
            if let Some(a) = self.anchor.as_mut()
                && !a.checked
                && t.size() == a.cp.size
            {
                a.checked = true;
                a.matched = Some(t.root() == a.cp.root);
            }
        }
    }

    fn accept(&mut self, item: &Item) {
        let ItemBody::Rec(r) = &item.body else { return };
        let (seq, prev, hash, time, leaf) = (r.seq, r.prev, r.hash, r.time_ns, r.leaf);
        if let Some(p) = self.expect_prev
            && !checks::links_to(&p, &prev)
        {
            let d = format!(
                "seq {} hashes to {} but seq {seq} links to {}: seq {} was rewritten (its hash recomputed)",
                seq.saturating_sub(1),
                hex::encode(p),
                hex::encode(prev),
                seq.saturating_sub(1)
            );
            self.verdict(
                VerdictKind::Modified,
                seq.saturating_sub(1),
                seq.saturating_sub(1),
                &item.loc,
                d,
            );
            // The successor's link is the better witness of the original.
            if self.pending_leaf.is_some() {
                self.pending_leaf = Some(leaf_hash(&prev));
            }
        }
        self.push_pending_leaf();
        if seq == 0 && !checks::starts_chain(seq, &prev) {
            self.verdict(
                VerdictKind::Modified,
                0,
                0,
                &item.loc,
                "seq 0 does not start the chain (prev_hash is not zeros)".into(),
            );
        }

        match item.kind {
            Kind::Genesis => self.genesis(item, seq),
            Kind::Checkpoint => self.checkpoint(item, seq),
            Kind::KeyRotation => self.rotation(item, seq),
            Kind::Recovery => self.recovery(item, seq),
            _ => {}
        }
        match item.kind {
            Kind::Genesis | Kind::Start => {
                self.open_session.get_or_insert((seq, time));
            }
            // The previous session is accounted for; this one is open.
            Kind::Recovery => {
                self.open_session = Some((seq, time));
                self.store_error = None;
            }
            Kind::Stop => {
                self.open_session = None;
                self.store_error = None;
            }
            Kind::StoreError => {
                let why = item
                    .json
                    .as_deref()
                    .and_then(|j| lifecycle::get_str(j, "error").ok())
                    .unwrap_or("(no reason given)");
                self.store_error = Some(why.to_string());
            }
            _ => {}
        }
        self.last_record = Some((seq, time));

        self.pending_leaf = Some(leaf);
        self.expect_seq = seq.saturating_add(1);
        self.expect_prev = Some(hash);
        if self.recent.len() == RECENT {
            self.recent.pop_front();
        }
        self.recent.push_back((seq, hash));
        self.summary
            .count(item.kind, seq, time, item.json.as_deref());
    }

    fn fields_or_modified(&mut self, item: &Item, seq: u64) -> Option<Json> {
        let j = item.json.as_deref().cloned();
        if j.is_none() {
            self.verdict(
                VerdictKind::Modified,
                seq,
                seq,
                &item.loc,
                format!("seq {seq}: `{:?}` record is not a JSON object", item.kind),
            );
        }
        j
    }

    /// A self-consistent lifecycle record whose fields are not what the
    /// writer writes: its content was forged (with its hash recomputed).
    fn field_error(&mut self, item: &Item, seq: u64, what: &str, e: &FieldError) {
        let d = format!("{what} record: {e}");
        self.verdict(VerdictKind::Modified, seq, seq, &item.loc, d);
    }

    fn genesis(&mut self, item: &Item, seq: u64) {
        if seq != 0 || self.genesis_seen {
            let d =
                format!("a second genesis record at seq {seq}: another log's start is spliced in");
            self.verdict(VerdictKind::Forked, seq, seq, &item.loc, d);
            return;
        }
        self.genesis_seen = true;
        let Some(j) = self.fields_or_modified(item, seq) else {
            return;
        };
        let (origin, pk) = match checks::genesis_fields(&j) {
            Ok(v) => v,
            Err(e) => {
                self.field_error(item, 0, "genesis", &e);
                return;
            }
        };
        let mut trusted = true;
        if let Some((name, root)) = &self.opts.pubkey
            && (name != &origin || root != &pk)
        {
            trusted = false;
            let d = format!(
                "the log's genesis key ({origin}, {}) is not the trusted key given with --pubkey ({name}, {}): \
                 every checkpoint of this log is signed under a key chain you did not export",
                B64.encode(pk),
                B64.encode(root)
            );
            self.verdict(VerdictKind::BadSignature, 0, 0, &item.loc, d);
            self.trust_broken = Some("the genesis key is not the trusted key".into());
        }
        self.origin = Some(origin);
        self.keys = vec![EpochKey { pk, trusted }];
    }

    fn rotation(&mut self, item: &Item, seq: u64) {
        let Some(j) = self.fields_or_modified(item, seq) else {
            return;
        };
        let rotation = match RotationRecord::parse(&j) {
            Ok(r) => r,
            Err(e) => {
                self.field_error(item, seq, "key_rotation", &e);
                return;
            }
        };
        // Once trust is broken (an altered or unreadable record may itself
        // have been a rotation) the epoch count is unknown: no more epoch
        // findings, the first damage is what is reported.
        let (epoch, pk) = (rotation.epoch, rotation.public_key);
        if self.trust_broken.is_none()
            && checks::rotation_order(epoch, self.latest_epoch, self.sign_epoch).is_err()
        {
            let d = format!(
                "epochs are not contiguous: rotation to epoch {epoch} while epoch {} is the latest{}",
                self.latest_epoch,
                if self.latest_epoch != self.sign_epoch {
                    " and not yet closed by a checkpoint"
                } else {
                    ""
                }
            );
            self.verdict(VerdictKind::WrongEpochKey, seq, seq, &item.loc, d);
        }
        let signer = self.keys.get(self.sign_epoch as usize).copied();
        let origin = self.origin.clone().unwrap_or_default();
        let ok = signer.is_some_and(|k| {
            checks::rotation_signature(&origin, &rotation, self.sign_epoch, &k.pk).is_ok()
        });
        let trusted = ok && signer.is_some_and(|k| k.trusted);
        if !ok && self.trust_broken.is_none() {
            let d = format!(
                "the announcement of epoch {epoch}'s key is not signed by epoch {}'s key; checkpoints of epoch {epoch} on cannot be trusted",
                self.sign_epoch
            );
            self.verdict(VerdictKind::BadSignature, seq, seq, &item.loc, d);
            self.trust_broken = Some(format!("epoch {epoch}'s key was not properly announced"));
        }
        // Index keys by epoch even if the announced number was wrong.
        self.keys.push(EpochKey { pk, trusted });
        self.latest_epoch = self.latest_epoch.saturating_add(1);
    }

    fn recovery(&mut self, item: &Item, seq: u64) {
        let Some(j) = self.fields_or_modified(item, seq) else {
            return;
        };
        let claimed = lifecycle::parse_torn(&j);
        let seen: Vec<Torn> = self.pending_torn.drain(..).map(|(t, _)| t).collect();
        match claimed {
            Ok(c) if c == seen => self.summary.torn_recovered += c.len() as u64,
            Ok(c) => {
                let show = |v: &[Torn]| {
                    v.iter()
                        .map(|t| format!("{} [{}, +{})", t.file, t.offset, t.length))
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                let d = format!(
                    "recovery names torn bytes [{}] but the segments hold [{}]",
                    show(&c),
                    show(&seen)
                );
                self.verdict(VerdictKind::TornTail, seq, seq, &item.loc, d);
            }
            Err(e) => {
                self.field_error(item, seq, "recovery", &e);
            }
        }
    }

    /// Which epoch's key (of this log) made a valid signature on the note.
    fn signed_by(&self, note: &Note, origin: &str) -> Option<usize> {
        self.keys
            .iter()
            .position(|k| checks::checkpoint_signature(note, origin, &k.pk) == SigCheck::Valid)
    }

    fn checkpoint(&mut self, item: &Item, seq: u64) {
        let Some(j) = self.fields_or_modified(item, seq) else {
            return;
        };
        let origin = self.origin.clone().unwrap_or_default();
        let expected = self.sign_epoch;
        // Whatever happens, a checkpoint closes a pending rotation.
        self.sign_epoch = self.latest_epoch;

        let (c, note, body) = match checks::read_checkpoint(&j) {
            Ok(CheckpointParts { record, note, body }) => (record, note, body),
            Err(e) => {
                let d = format!("checkpoint at seq {seq} cannot be read: {e}");
                self.verdict(VerdictKind::BadSignature, self.covered, seq, &item.loc, d);
                return;
            }
        };
        self.summary.checkpoints += 1;

        // 1. The signature: this log's origin, the key of the epoch in force.
        let mut sig_ok = true;
        let mut unattributed = None;
        if self.trust_broken.is_none() {
            let problem = if checks::checkpoint_origin(&body, &origin).is_err() {
                Some((
                    VerdictKind::BadSignature,
                    format!(
                        "checkpoint is for origin {}, the log is {origin}",
                        body.origin
                    ),
                ))
            } else {
                match self
                    .keys
                    .get(expected as usize)
                    .map(|k| checks::checkpoint_signature(&note, &origin, &k.pk))
                {
                    Some(SigCheck::Valid)
                        if c.epoch == expected && c.latest_epoch == self.latest_epoch =>
                    {
                        None
                    }
                    Some(SigCheck::Valid) => Some((
                        VerdictKind::WrongEpochKey,
                        format!(
                            "checkpoint says epoch {} (latest {}) but epoch {expected} (latest {}) is in force",
                            c.epoch, c.latest_epoch, self.latest_epoch
                        ),
                    )),
                    Some(SigCheck::Invalid) => Some((
                        VerdictKind::BadSignature,
                        format!("checkpoint signature by epoch {expected}'s key does not verify"),
                    )),
                    None | Some(SigCheck::Absent) => match self.signed_by(&note, &origin) {
                        Some(other) => Some((
                            VerdictKind::WrongEpochKey,
                            format!(
                                "checkpoint is signed by epoch {other}'s key; epoch {expected}'s key must sign it"
                            ),
                        )),
                        None => {
                            // Maybe by a key the log announces later: decided at the end.
                            unattributed = Some(note.clone());
                            Some((
                                VerdictKind::BadSignature,
                                format!(
                                    "checkpoint is not signed by any key this log announced (epoch {expected}'s is expected)"
                                ),
                            ))
                        }
                    },
                }
            };
            if let Some((kind, why)) = problem {
                sig_ok = false;
                let d = format!(
                    "checkpoint at seq {seq}: {why}; records from seq {} on are not covered by a valid signature",
                    self.covered
                );
                let i = self.verdict(kind, self.covered, seq, &item.loc, d);
                if let Some(note) = unattributed {
                    self.unattributed.push((i, note, expected, seq));
                }
            }
        }

        // 2. The tree: size and root of every record before this one.
        let signed_frontier = checks::signed_frontier(&body, &c.frontier).ok();
        let mut tree_ok = false;
        if let Some(t) = self.tree.as_ref() {
            let sizes = |have: u64, signed: u64, what: String| {
                format!(
                    "the log holds {have} records before the checkpoint at seq {seq}, which signed {signed}: {what}"
                )
            };
            let mismatch = match checks::checkpoint_tree(t, &body) {
                Ok(()) => None,
                Err(TreeMismatch::Fewer { have, signed }) => Some((
                    VerdictKind::Deleted,
                    sizes(have, signed, format!("{} record(s) fewer", signed - have)),
                )),
                Err(TreeMismatch::More { have, signed }) => Some((
                    VerdictKind::Inserted,
                    sizes(have, signed, format!("{} record(s) more", have - signed)),
                )),
                Err(TreeMismatch::Root) => Some((
                    VerdictKind::Modified,
                    format!(
                        "records before the checkpoint at seq {seq} do not have the signed root: some were rewritten and the chain rehashed"
                    ),
                )),
            };
            match mismatch {
                None => {
                    tree_ok = true;
                    if signed_frontier
                        .as_ref()
                        .is_some_and(|f| f.nodes() != t.nodes())
                        || signed_frontier.is_none()
                    {
                        let d = format!(
                            "checkpoint at seq {seq}: its frontier does not match the tree"
                        );
                        self.verdict(VerdictKind::Modified, seq, seq, &item.loc, d);
                    }
                }
                Some((kind, why)) => match self.open_tree_verdict {
                    Some(i) if i < self.verdicts.len() => {
                        let v = &mut self.verdicts[i];
                        v.last_seq = v.last_seq.max(seq);
                        v.count += 1;
                    }
                    _ => {
                        let i = self.verdict(kind, self.covered, seq, &item.loc, why);
                        self.open_tree_verdict = Some(i);
                    }
                },
            }
        }
        if let Some(a) = self.anchor.as_mut()
            && !a.checked
            && body.size == a.cp.size
            && sig_ok
        {
            a.checked = true;
            a.matched = Some(body.root == a.cp.root);
        }
        if tree_ok && sig_ok {
            self.covered = seq;
            self.good_checkpoint = true;
            self.open_tree_verdict = None;
        }
        // Continue from the signed tree: damage stays within its range.
        if !tree_ok {
            match signed_frontier {
                Some(f) if sig_ok => self.tree = Some(f),
                _ => self.tree = None,
            }
        }
        self.summary.last_note = Some(c.note);
    }

    /// Processes everything still in the window and closes the books.
    pub fn finish(mut self) -> (Vec<Verdict>, Vec<String>, Summary, u64) {
        while !self.window.is_empty() {
            self.step();
        }
        self.push_pending_leaf();
        let end = self.expect_seq;
        if let Some(why) = &self.trust_broken {
            self.notes.push(format!(
                "signatures after that point were not checked: {why}"
            ));
        }
        if !self.genesis_seen && end > 0 {
            self.notes
                .push("no genesis record: keys and signatures could not be checked".into());
        }
        if let Some(n) = self.opts.lock_note.clone() {
            self.notes.push(n);
        }
        let last_file = self.files.len().saturating_sub(1);
        let unfinished = self.open_session.is_some() && !self.opts.live;
        let mut incomplete = match (unfinished, self.open_session, self.last_record) {
            (true, Some((session_seq, session_time_ns)), Some((last_seq, last_time_ns))) => {
                Some(Incomplete {
                    session_seq,
                    session_time_ns,
                    last_seq,
                    last_time_ns,
                    reason: self.store_error.clone(),
                    unfinished: None,
                })
            }
            _ => None,
        };
        let torn = std::mem::take(&mut self.pending_torn);
        let torn_count = torn.len();
        for (i, (t, loc)) in torn.into_iter().enumerate() {
            let at_end = loc.file == last_file && i + 1 == torn_count;
            if self.opts.live && at_end {
                self.notes.push(format!(
                    "{} bytes at the end of {} are being written by the running store (not checked)",
                    t.length, t.file
                ));
            } else if let Some(inc) = incomplete.as_mut().filter(|_| at_end) {
                // The writer died mid-write: the unfinished line is part of
                // the early end, not a record anyone removed.
                inc.unfinished = Some(t);
            } else {
                let d = format!(
                    "{} bytes at offset {} of {} follow the last complete record, and no recovery record names them",
                    t.length, t.offset, t.file
                );
                self.verdict(VerdictKind::TornTail, end, end, &loc, d);
            }
        }
        self.summary.incomplete = incomplete;
        if let Some(a) = self.anchor.take() {
            self.check_anchor(a, end);
        }
        self.attribute_late_keys();
        self.verdicts = merge(std::mem::take(&mut self.verdicts));
        self.summary.records = end;
        // The last good checkpoint is itself the signature: count it covered.
        self.summary.covered = if self.good_checkpoint {
            self.covered.saturating_add(1)
        } else {
            0
        };
        self.summary.epochs = self.keys.len() as u64;
        self.summary.origin = self.origin.clone();
        self.summary.trust_root_checked =
            self.opts.pubkey.is_some() && self.trust_broken.is_none() && self.genesis_seen;
        (self.verdicts, self.notes, self.summary, end)
    }

    /// A checkpoint signed by a key that this log announces only later is
    /// signed by the wrong epoch's key (a stolen newer key rewriting older
    /// epochs), not by an unknown one.
    fn attribute_late_keys(&mut self) {
        let origin = self.origin.clone().unwrap_or_default();
        // Per verdict: (signing epoch found, expected epoch, seq) of each.
        type Found = Vec<(Option<usize>, u64, u64)>;
        let mut by_verdict: Vec<(usize, Found)> = Vec::new();
        for (i, note, expected, seq) in std::mem::take(&mut self.unattributed) {
            let who = self.signed_by(&note, &origin);
            match by_verdict.last_mut() {
                Some((j, v)) if *j == i => v.push((who, expected, seq)),
                _ => by_verdict.push((i, vec![(who, expected, seq)])),
            }
        }
        for (i, found) in by_verdict {
            if found.iter().all(|(who, ..)| who.is_some())
                && let Some(v) = self.verdicts.get_mut(i)
            {
                let (who, expected, seq) = found[0];
                v.kind = VerdictKind::WrongEpochKey;
                v.detail = format!(
                    "checkpoint at seq {seq} is signed by epoch {}'s key, which this log announces only later; epoch {expected}'s key must sign it{}",
                    who.unwrap_or_default(),
                    if found.len() > 1 {
                        format!(" ({} such checkpoints)", found.len())
                    } else {
                        String::new()
                    }
                );
            }
        }
    }

    fn check_anchor(&mut self, a: Anchor, end: u64) {
        let loc = Loc {
            file: self.files.len().saturating_sub(1),
            line: 0,
            offset: 0,
        };
        let origin = self.origin.clone().unwrap_or_default();
        if a.cp.origin != origin {
            let d = format!(
                "the anchor is a checkpoint of {}, this log is {origin}",
                a.cp.origin
            );
            self.verdict(VerdictKind::Forked, 0, end, &loc, d);
            return;
        }
        let signer = self.signed_by(&a.note, &origin);
        if end < a.cp.size {
            let d = format!(
                "the anchor commits to {} records; the log ends after {end}: {} record(s) from seq {end} are gone{}",
                a.cp.size,
                a.cp.size - end,
                if signer.is_none() {
                    " (the anchor's key is not announced in what is left of the log)"
                } else {
                    ""
                }
            );
            self.verdict(
                VerdictKind::TruncatedBeforeAnchor,
                end,
                a.cp.size.saturating_sub(1),
                &loc,
                d,
            );
            return;
        }
        if signer.is_none() {
            let d = "the anchor is not signed by any key this log announced: the log is not the one anchored".to_string();
            self.verdict(VerdictKind::Forked, 0, end, &loc, d);
            return;
        }
        match a.matched {
            Some(true) => self.summary.anchor = Some(a.cp.size),
            Some(false) => {
                let d = format!("the log's tree at size {} is not the anchored one: history was rewritten before seq {}", a.cp.size, a.cp.size);
                self.verdict(VerdictKind::Forked, self.covered.min(a.cp.size), a.cp.size.saturating_sub(1), &loc, d);
            }
            None => self.notes.push(format!(
                "the anchor (size {}) could not be compared: the tree was already broken at that point",
                a.cp.size
            )),
        }
    }
}

/// Orders verdicts by first seq and joins neighbours of the same kind whose
/// ranges touch: one verdict per range.
fn merge(mut v: Vec<Verdict>) -> Vec<Verdict> {
    v.sort_by_key(|x| (x.first_seq, x.last_seq));
    let mut out: Vec<Verdict> = Vec::with_capacity(v.len());
    for x in v {
        match out.last_mut() {
            Some(l) if l.kind == x.kind && x.first_seq <= l.last_seq.saturating_add(1) => {
                l.last_seq = l.last_seq.max(x.last_seq);
                l.count += x.count;
            }
            _ => out.push(x),
        }
    }
    out
}
