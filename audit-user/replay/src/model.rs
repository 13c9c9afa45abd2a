//! What a replay is: the verdict, the sessions, the processes and the
//! timeline (records and marks, in log order). docs/REPLAY.md documents its
//! JSON form; the other formats show the same data.

use crate::{
    event::{Creds, Event, MarkKind, Scope},
    filter::Filters,
};

/// How far the verifier vouches for a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trust {
    /// Covered by a valid signed checkpoint, no finding.
    Signed,
    /// After the last valid checkpoint: only the hash chain covers it.
    Unsigned,
    /// Inside a verdict's range (the index into `VerifyView::verdicts`).
    Unverified(usize),
}

impl Trust {
    pub fn name(self) -> &'static str {
        match self {
            Trust::Signed => "signed",
            Trust::Unsigned => "unsigned",
            Trust::Unverified(_) => "unverified",
        }
    }
}

/// The verifier's result, as the replay shows it.
#[derive(Clone, Debug, Default)]
pub struct VerifyView {
    pub intact: bool,
    pub verdicts: Vec<VerdictView>,
    pub notes: Vec<String>,
    pub records: u64,
    /// Records before this seq are covered by a valid signed checkpoint.
    pub covered: u64,
    /// `sandbox-audit verify`'s own text report.
    pub text: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerdictView {
    pub kind: String,
    pub first_seq: u64,
    pub last_seq: u64,
    pub file: String,
    pub line: u64,
    pub detail: String,
    pub count: u64,
}

#[derive(Clone, Debug, Default)]
pub struct Session {
    pub start_seq: u64,
    pub start_ns: u64,
    pub scope: Scope,
    /// The `stop` record: seq, time, reason.
    pub stop: Option<(u64, u64, String)>,
    /// The last record of the session (seq, time).
    pub last_seq: u64,
    pub last_ns: u64,
    pub matched: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecStep {
    pub seq: u64,
    pub time_ns: u64,
    pub filename: String,
    pub argv: Vec<String>,
    pub argv_truncated: bool,
    pub comm: String,
    pub creds: Creds,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CredChange {
    pub seq: u64,
    pub time_ns: u64,
    pub from: Creds,
    pub to: Creds,
    /// The kind of the record that first showed the new ids.
    pub kind: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExitInfo {
    pub seq: u64,
    pub time_ns: u64,
    pub code: Option<i64>,
    pub signal: Option<i64>,
    pub core_dumped: bool,
}

/// How a process came to be known.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// A `fork` record of its parent (seq).
    Forked(u64),
    /// Its first record (seq): it was started outside the audited scope
    /// (the session's command) or its fork was not recorded.
    FirstSeen(u64),
}

/// How a process's record ends, when there is no exit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    Exited,
    /// The session ended (stop, crash) while it was alive.
    SessionEnded,
    /// Its pid was given to a new process without an exit in between
    /// (a lost exit).
    PidReused,
    /// Alive at the end of the log.
    Running,
}

#[derive(Clone, Debug)]
pub struct Process {
    pub id: usize,
    pub pid: u32,
    pub ppid: u32,
    pub parent: Option<usize>,
    pub children: Vec<usize>,
    pub session: Option<usize>,
    pub origin: Origin,
    pub start_ns: u64,
    pub end_ns: u64,
    /// The command name when first seen (a fork child starts with its parent's).
    pub comm: String,
    pub creds: Creds,
    pub execs: Vec<ExecStep>,
    pub cred_changes: Vec<CredChange>,
    pub exit: Option<ExitInfo>,
    pub end: End,
    pub threads: u64,
    /// Records that acted as this process, per category name, and failures.
    pub file_actions: u64,
    pub network_actions: u64,
    pub privilege_actions: u64,
    pub failed_actions: u64,
    pub records: u64,
    /// Passed the filters.
    pub matched: bool,
    /// Shown: matched, or an ancestor of a matched process.
    pub shown: bool,
}

impl Process {
    /// The credentials it ended with.
    pub fn last_creds(&self) -> Creds {
        self.cred_changes.last().map_or(self.creds, |c| c.to)
    }

    /// What it runs: the last exec's argv, or `(fork of COMM)`.
    pub fn argv(&self) -> Option<&[String]> {
        self.execs.last().map(|e| e.argv.as_slice())
    }
}

/// A derived mark (not a record of its own).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mark {
    pub kind: MarkKind,
    /// The seq it stands at (first of a range), when it has one.
    pub seq: Option<u64>,
    pub last_seq: Option<u64>,
    pub time_ns: Option<u64>,
    pub session: Option<usize>,
    pub verdict: Option<usize>,
    /// Where the evidence is: file name and 1-based line.
    pub file: Option<String>,
    pub line: Option<u64>,
    pub detail: String,
}

#[derive(Clone, Debug)]
pub enum Entry {
    Record {
        event: usize,
        process: Option<usize>,
        session: Option<usize>,
        trust: Trust,
    },
    Mark(Mark),
}

#[derive(Debug, Default)]
pub struct Replay {
    /// The segment files, in log order (base names).
    pub files: Vec<String>,
    pub verify: VerifyView,
    pub sessions: Vec<Session>,
    pub processes: Vec<Process>,
    /// Every record read (the timeline refers to them by index).
    pub events: Vec<Event>,
    /// The timeline after filtering, in log order.
    pub entries: Vec<Entry>,
    /// The filters as given, for the output to say what it shows.
    pub filters: Filters,
    /// The store was being written while replayed.
    pub live: bool,
}

impl Replay {
    pub fn file_name(&self, file: u32) -> &str {
        self.files.get(file as usize).map_or("?", String::as_str)
    }

    /// The root processes among those shown, in order of appearance.
    pub fn roots(&self) -> Vec<usize> {
        self.processes
            .iter()
            .filter(|p| p.shown && p.parent.is_none_or(|q| !self.processes[q].shown))
            .map(|p| p.id)
            .collect()
    }

    /// Shown processes as (depth, id) in tree order, without recursion
    /// (a hostile fork chain can be deeper than any stack).
    pub fn tree_order(&self) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        let mut stack: Vec<(usize, usize)> =
            self.roots().into_iter().rev().map(|r| (0, r)).collect();
        while let Some((depth, id)) = stack.pop() {
            out.push((depth, id));
            for &c in self.processes[id].children.iter().rev() {
                if self.processes[c].shown {
                    stack.push((depth + 1, c));
                }
            }
        }
        out
    }
}
