//! One record, read for replay: who acted (`proc`), what it means for the
//! process tree (`Detail`), a one-line summary and the paths it names. Every
//! field is optional here: a record is whatever the log holds, tampered or
//! not, and a missing or mistyped field only makes the summary poorer.

use std::sync::Arc;

use audit_log::lifecycle::LifecycleKind;
use serde_json::{Map, Value};

use crate::display::{command_line, inert, signal_name};

pub type Json = Map<String, Value>;

/// What a record is about, for filtering (`--kind file`) and grouping.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Category {
    Process,
    File,
    Network,
    Privilege,
    /// The store's own records (genesis, start, stop, checkpoint, …).
    Lifecycle,
    /// Records about the capture itself (loss, malformed_event).
    Capture,
    /// A kind this replay does not know.
    Other,
}

impl Category {
    pub const ALL: [Category; 7] = [
        Category::Process,
        Category::File,
        Category::Network,
        Category::Privilege,
        Category::Lifecycle,
        Category::Capture,
        Category::Other,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Category::Process => "process",
            Category::File => "file",
            Category::Network => "network",
            Category::Privilege => "privilege",
            Category::Lifecycle => "lifecycle",
            Category::Capture => "capture",
            Category::Other => "other",
        }
    }

    pub fn parse(s: &str) -> Option<Category> {
        Category::ALL.into_iter().find(|c| c.name() == s)
    }

    pub fn of_kind(kind: &str) -> Category {
        // The bulk of a log, before the table scan.
        match kind {
            "exec" | "fork" | "exit" => return Category::Process,
            "open" => return Category::File,
            "connect" => return Category::Network,
            _ => {}
        }
        KINDS
            .iter()
            .find(|(k, _)| *k == kind)
            .map_or(Category::Other, |(_, c)| *c)
    }
}

/// Every record kind docs/FORMAT.md defines, with its category.
pub const KINDS: &[(&str, Category)] = &[
    ("exec", Category::Process),
    ("fork", Category::Process),
    ("exit", Category::Process),
    ("open", Category::File),
    ("write", Category::File),
    ("unlink", Category::File),
    ("rmdir", Category::File),
    ("rename", Category::File),
    ("mkdir", Category::File),
    ("link", Category::File),
    ("symlink", Category::File),
    ("chmod", Category::File),
    ("chown", Category::File),
    ("truncate", Category::File),
    ("mount", Category::File),
    ("umount", Category::File),
    ("chattr", Category::File),
    ("memfd_create", Category::File),
    ("socket", Category::Network),
    ("connect", Category::Network),
    ("bind", Category::Network),
    ("listen", Category::Network),
    ("accept", Category::Network),
    ("send", Category::Network),
    ("setuid", Category::Privilege),
    ("setgid", Category::Privilege),
    ("setgroups", Category::Privilege),
    ("capset", Category::Privilege),
    ("ptrace", Category::Privilege),
    ("kill", Category::Privilege),
    ("unshare", Category::Privilege),
    ("setns", Category::Privilege),
    ("module_load", Category::Privilege),
    ("module_delete", Category::Privilege),
    ("bpf", Category::Privilege),
    (LifecycleKind::Genesis.as_str(), Category::Lifecycle),
    (LifecycleKind::Start.as_str(), Category::Lifecycle),
    (LifecycleKind::Stop.as_str(), Category::Lifecycle),
    (LifecycleKind::Recovery.as_str(), Category::Lifecycle),
    (LifecycleKind::Config.as_str(), Category::Lifecycle),
    (LifecycleKind::KeyRotation.as_str(), Category::Lifecycle),
    (LifecycleKind::Checkpoint.as_str(), Category::Lifecycle),
    (LifecycleKind::Protection.as_str(), Category::Lifecycle),
    (LifecycleKind::Unencodable.as_str(), Category::Lifecycle),
    (LifecycleKind::StoreError.as_str(), Category::Lifecycle),
    (LifecycleKind::Loss.as_str(), Category::Capture),
    ("malformed_event", Category::Capture),
];

/// The acting task, as the kernel saw it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Actor {
    pub pid: u32,
    pub tid: u32,
    pub ppid: u32,
    pub uid: u32,
    pub gid: u32,
    pub euid: u32,
    pub egid: u32,
    pub comm: String,
    pub cgroup_id: u64,
}

/// Credentials, to notice when they change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Creds {
    pub uid: u32,
    pub euid: u32,
    pub gid: u32,
    pub egid: u32,
}

impl Actor {
    pub fn creds(&self) -> Creds {
        Creds {
            uid: self.uid,
            euid: self.euid,
            gid: self.gid,
            egid: self.egid,
        }
    }
}

/// What a record means for the process tree and the sessions.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Detail {
    #[default]
    None,
    /// A successful exec (failed ones are syscall records: `None`).
    Exec {
        filename: String,
        argv: Vec<String>,
        argv_truncated: bool,
    },
    Fork {
        child_pid: u32,
        child_tid: u32,
        thread: bool,
    },
    Exit {
        thread: bool,
        code: Option<i64>,
        signal: Option<i64>,
        core_dumped: bool,
    },
    Start(Scope),
    Stop {
        reason: String,
    },
    Recovery,
}

/// A capture session's scope, from its `start` record.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Scope {
    pub mode: String,
    pub path: Option<String>,
    pub cgroup_id: Option<u64>,
    pub root_pid: Option<u64>,
    pub command: Vec<String>,
}

/// Marks a record itself raises in the timeline.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MarkKind {
    /// A range verify did not vouch for (a verdict).
    Unverified,
    /// Records after the last valid checkpoint: hash chain only.
    Unsigned,
    /// A line that is not a record.
    Unreadable,
    Loss,
    Recovery,
    /// A session that has no `stop` record.
    Incomplete,
    /// Time in which nothing was being captured.
    Outage,
    /// A ring-buffer entry that did not decode.
    Malformed,
    /// The filesystem refused append-only/immutable.
    Protection,
    /// A record stored as text because it had no canonical form.
    Unencodable,
}

impl MarkKind {
    pub fn name(self) -> &'static str {
        match self {
            MarkKind::Unverified => "unverified",
            MarkKind::Unsigned => "unsigned",
            MarkKind::Unreadable => "unreadable",
            MarkKind::Loss => "loss",
            MarkKind::Recovery => "recovery",
            MarkKind::Incomplete => "incomplete",
            MarkKind::Outage => "outage",
            MarkKind::Malformed => "malformed",
            MarkKind::Protection => "protection",
            MarkKind::Unencodable => "unencodable",
        }
    }
}

/// One record of the log, read for replay.
#[derive(Clone, Debug)]
pub struct Event {
    pub seq: u64,
    pub hash: Short,
    pub time_ns: u64,
    pub kind: String,
    pub category: Category,
    pub actor: Option<Actor>,
    pub detail: Detail,
    pub summary: String,
    /// Path-like fields (resolved paths, exec filename), for `--path`.
    pub paths: Vec<String>,
    pub failed: bool,
    pub mark: Option<MarkKind>,
    /// Index of the segment file and 1-based line.
    pub file: u32,
    pub line: u64,
    /// The stored line, for formats that show the whole record.
    pub raw: Option<Raw>,
}

/// A string of up to 64 bytes kept inline: a record's hash (64 hex
/// digits) without an allocation per record; longer ones (a tampered
/// hash) on the heap.
#[derive(Clone, PartialEq, Eq)]
pub enum Short {
    Inline { len: u8, bytes: [u8; 64] },
    Heap(Box<str>),
}

impl Short {
    pub fn new(s: &str) -> Short {
        match u8::try_from(s.len()) {
            Ok(len) if s.len() <= 64 => {
                let mut bytes = [0u8; 64];
                bytes[..s.len()].copy_from_slice(s.as_bytes());
                Short::Inline { len, bytes }
            }
            _ => Short::Heap(s.into()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            // Copied from a str whole: UTF-8.
            Short::Inline { len, bytes } => {
                std::str::from_utf8(&bytes[..usize::from(*len)]).unwrap_or("")
            }
            Short::Heap(s) => s,
        }
    }
}

impl std::ops::Deref for Short {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl std::fmt::Debug for Short {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.as_str().fmt(f)
    }
}

/// A record's stored line: a range of the chunk of lines it was read in
/// (one copy shared by the chunk's records, not a copy per record). The
/// chunk is text, checked once as a whole (checking each line when it is
/// kept and again when it is written was two passes over every byte).
#[derive(Clone)]
pub struct Raw {
    chunk: Arc<str>,
    start: usize,
    end: usize,
}

impl Raw {
    /// `chunk[start..end]`, when those are character boundaries.
    pub fn range(chunk: Arc<str>, start: usize, end: usize) -> Option<Raw> {
        chunk.get(start..end)?;
        Some(Raw { chunk, start, end })
    }

    /// A copy of `line`, when it is UTF-8 text.
    pub fn copy(line: &[u8]) -> Option<Raw> {
        let text = std::str::from_utf8(line).ok()?;
        Raw::range(Arc::from(text), 0, line.len())
    }

    pub fn as_str(&self) -> &str {
        // Checked to be boundaries when made.
        self.chunk.get(self.start..self.end).unwrap_or("")
    }
}

impl std::fmt::Debug for Raw {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.as_str().fmt(f)
    }
}

impl Event {
    /// The one-line summary (made from the stored line when the fast path
    /// left it empty).
    pub fn summary(&self) -> std::borrow::Cow<'_, str> {
        if !self.summary.is_empty() {
            return std::borrow::Cow::Borrowed(&self.summary);
        }
        let Some(raw) = &self.raw else {
            return std::borrow::Cow::Borrowed("");
        };
        match serde_json::from_str::<Value>(raw.as_str()) {
            Ok(Value::Object(m)) => std::borrow::Cow::Owned(
                from_json(&m, self.seq, "", self.time_ns, self.kind.clone()).summary,
            ),
            _ => std::borrow::Cow::Borrowed(""),
        }
    }
}

fn get_str<'a>(r: &'a Json, k: &str) -> Option<&'a str> {
    r.get(k).and_then(Value::as_str)
}

fn get_u64(r: &Json, k: &str) -> Option<u64> {
    r.get(k).and_then(Value::as_u64)
}

fn get_i64(r: &Json, k: &str) -> Option<i64> {
    r.get(k).and_then(Value::as_i64)
}

fn flag(r: &Json, k: &str) -> bool {
    get_u64(r, k) == Some(1)
}

fn u32_of(r: &Json, k: &str) -> u32 {
    get_u64(r, k)
        .and_then(|v| u32::try_from(v).ok())
        .unwrap_or(u32::MAX)
}

fn strings(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::Array(a)) => a
            .iter()
            .map(|x| match x {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect(),
        _ => Vec::new(),
    }
}

fn actor(r: &Json) -> Option<Actor> {
    let p = r.get("proc")?.as_object()?;
    Some(Actor {
        pid: u32::try_from(get_u64(p, "pid")?).ok()?,
        tid: u32_of(p, "tid"),
        ppid: u32_of(p, "ppid"),
        uid: u32_of(p, "uid"),
        gid: u32_of(p, "gid"),
        euid: u32_of(p, "euid"),
        egid: u32_of(p, "egid"),
        comm: get_str(p, "comm").unwrap_or("").to_string(),
        cgroup_id: get_u64(p, "cgroup_id").unwrap_or(0),
    })
}

/// `127.0.0.1:80`, `[::1]:443`, `unix:/run/x.sock`, `unix:@name`.
fn address(v: Option<&Value>) -> Option<String> {
    let a = v?.as_object()?;
    Some(address_text(
        get_str(a, "family"),
        get_str(a, "address"),
        get_u64(a, "port"),
        get_str(a, "path"),
        get_str(a, "abstract"),
    ))
}

/// [`address`] from its fields.
pub(crate) fn address_text(
    family: Option<&str>,
    addr: Option<&str>,
    port: Option<u64>,
    path: Option<&str>,
    abstract_name: Option<&str>,
) -> String {
    match family.unwrap_or("?") {
        "inet" => format!("{}:{}", addr.unwrap_or("?"), port.unwrap_or(0)),
        "inet6" => format!("[{}]:{}", addr.unwrap_or("?"), port.unwrap_or(0)),
        "unix" => {
            if let Some(p) = path {
                format!("unix:{p}")
            } else if let Some(n) = abstract_name {
                format!("unix:@{n}")
            } else {
                "unix:(unnamed)".into()
            }
        }
        other => format!("{other} address"),
    }
}

/// The summary of a successful exec.
pub(crate) fn exec_summary(filename: &str, argv: &[String], truncated: bool) -> String {
    format!(
        "exec {}: {}{}",
        inert(filename),
        command_line(argv),
        if truncated {
            " …(argv truncated)"
        } else {
            ""
        }
    )
}

pub(crate) fn fork_summary(child_pid: u32, child_tid: u32, thread: bool) -> String {
    if thread {
        format!("new thread {child_tid}")
    } else {
        format!("fork: child pid {child_pid}")
    }
}

pub(crate) fn exit_summary(
    thread: bool,
    code: Option<i64>,
    signal: Option<i64>,
    core: bool,
) -> String {
    let status = exit_text(code, signal, core);
    if thread {
        format!("thread exit ({status})")
    } else {
        format!("exit: {status}")
    }
}

/// `open PATH (ACCESS)` and its outcome.
pub(crate) fn open_summary(path: Option<&str>, access: Option<&str>, out: &str) -> String {
    format!(
        "open {} ({}){out}",
        inert(path.unwrap_or("?")),
        access.unwrap_or("?")
    )
}

/// `connect ADDR` / `accept ADDR` and the outcome.
pub(crate) fn peer_summary(kind: &str, addr: Option<String>, out: &str) -> String {
    format!("{kind} {}{out}", addr.map_or("?".into(), |a| inert(&a)))
}

const PATH_FIELDS: [&str; 5] = ["path", "new_path", "filename", "target", "namespace"];

/// `= fd 3`, ` failed: ENOENT`, or nothing.
fn outcome(r: &Json) -> String {
    outcome_text(
        get_str(r, "kind").unwrap_or(""),
        get_str(r, "result"),
        get_str(r, "errno_name"),
        get_i64(r, "errno"),
        get_i64(r, "ret"),
    )
}

/// [`outcome`] from its fields (the fast path reads them typed).
pub(crate) fn outcome_text(
    kind: &str,
    result: Option<&str>,
    errno_name: Option<&str>,
    errno: Option<i64>,
    ret: Option<i64>,
) -> String {
    match result {
        Some("failure") => {
            let name = errno_name
                .map(str::to_string)
                .or_else(|| errno.map(|e| format!("errno {e}")))
                .unwrap_or_else(|| "error".into());
            format!(" failed: {name}")
        }
        Some("success") => match ret {
            Some(v) if ["open", "socket", "memfd_create", "accept"].contains(&kind) => {
                format!(" = fd {v}")
            }
            _ => String::new(),
        },
        _ => String::new(),
    }
}

fn path_of(r: &Json, k: &str) -> String {
    inert(get_str(r, k).unwrap_or("?"))
}

/// Builds the replay's view of a parsed record. `seq`, `hash`, `time_ns`
/// and `kind` were read by the caller (a line without them is no record).
pub fn from_json(r: &Json, seq: u64, hash: &str, time_ns: u64, kind: String) -> Event {
    let category = Category::of_kind(&kind);
    let actor = actor(r);
    let failed = get_str(r, "result") == Some("failure");
    let mut paths: Vec<String> = PATH_FIELDS
        .iter()
        .filter_map(|k| get_str(r, k).map(str::to_string))
        .collect();
    paths.dedup();
    let mut detail = Detail::None;
    let mut mark = None;
    let out = outcome(r);
    // The store's own records by their typed kind (a new one must be
    // given a summary here); capture's events by the name in the record.
    let summary = match LifecycleKind::of(&kind) {
        Some(lk) => match lk {
            LifecycleKind::Genesis => format!(
                "genesis of log {}",
                inert(get_str(r, "origin").unwrap_or("?"))
            ),
            LifecycleKind::Start => {
                let scope = scope(r);
                let s = format!("session start: {}", scope_text(&scope));
                detail = Detail::Start(scope);
                s
            }
            LifecycleKind::Stop => {
                let reason = get_str(r, "reason").unwrap_or("?").to_string();
                let s = format!(
                    "session stop: {} ({} records)",
                    inert(&reason),
                    get_u64(r, "records").unwrap_or(0)
                );
                detail = Detail::Stop { reason };
                s
            }
            LifecycleKind::Recovery => {
                detail = Detail::Recovery;
                mark = Some(MarkKind::Recovery);
                let torn = r.get("torn").and_then(Value::as_array).map_or(0, Vec::len);
                format!(
                    "RECOVERY: the previous session ended without a stop record (last intact record: seq {} {}); {torn} torn range(s) sealed",
                    get_u64(r, "last_seq").map_or("?".into(), |s| s.to_string()),
                    inert(get_str(r, "last_kind").unwrap_or("?"))
                )
            }
            LifecycleKind::Checkpoint => format!(
                "checkpoint ({}, epoch {})",
                inert(get_str(r, "reason").unwrap_or("?")),
                get_u64(r, "epoch").unwrap_or(0)
            ),
            LifecycleKind::KeyRotation => {
                format!("key rotation to epoch {}", get_u64(r, "epoch").unwrap_or(0))
            }
            LifecycleKind::Config => format!(
                "config {}",
                inert(get_str(r, "config_digest").unwrap_or("?"))
            ),
            LifecycleKind::Protection => {
                mark = Some(MarkKind::Protection);
                format!(
                    "PROTECTION REFUSED: {} flag on {}: {}",
                    inert(get_str(r, "flag").unwrap_or("?")),
                    inert(get_str(r, "file").unwrap_or("?")),
                    inert(get_str(r, "error").unwrap_or("?"))
                )
            }
            LifecycleKind::Unencodable => {
                mark = Some(MarkKind::Unencodable);
                format!(
                    "UNENCODABLE {} record stored as text: {}",
                    inert(get_str(r, "original_kind").unwrap_or("?")),
                    inert(get_str(r, "error").unwrap_or("?"))
                )
            }
            LifecycleKind::Loss => {
                mark = Some(MarkKind::Loss);
                let kinds = r
                    .get("kinds")
                    .and_then(Value::as_object)
                    .map(|k| {
                        k.iter()
                            .map(|(n, c)| format!("{}: {}", inert(n), value_text(Some(c))))
                            .collect::<Vec<_>>()
                            .join(", ")
                    })
                    .unwrap_or_default();
                format!(
                    "LOSS: {} event(s) the kernel could not deliver ({kinds}) between {} and {}",
                    get_u64(r, "count").unwrap_or(0),
                    get_u64(r, "from_ns").map_or("?".into(), crate::time::short),
                    get_u64(r, "to_ns").map_or("?".into(), crate::time::short)
                )
            }
            LifecycleKind::StoreError => generic_summary(&kind, &paths, &out),
        },
        None => event_summary(r, &kind, failed, &paths, &out, &mut detail, &mut mark),
    };
    Event {
        seq,
        hash: Short::new(hash),
        time_ns,
        kind,
        category,
        actor,
        detail,
        summary,
        paths,
        failed,
        mark,
        file: 0,
        line: 0,
        raw: None,
    }
}

/// The summary of one of capture's events (and its detail or mark).
fn event_summary(
    r: &Json,
    kind: &str,
    failed: bool,
    paths: &[String],
    out: &str,
    detail: &mut Detail,
    mark: &mut Option<MarkKind>,
) -> String {
    match kind {
        "exec" if !failed => {
            let argv = strings(r.get("argv"));
            let filename = get_str(r, "filename").unwrap_or("").to_string();
            let truncated = flag(r, "argv_truncated");
            let s = exec_summary(&filename, &argv, truncated);
            *detail = Detail::Exec {
                filename,
                argv,
                argv_truncated: truncated,
            };
            s
        }
        "exec" => format!("exec {}{out}", path_of(r, "filename")),
        "fork" => {
            let child_pid = u32_of(r, "child_pid");
            let child_tid = u32_of(r, "child_tid");
            let thread = flag(r, "thread");
            *detail = Detail::Fork {
                child_pid,
                child_tid,
                thread,
            };
            fork_summary(child_pid, child_tid, thread)
        }
        "exit" => {
            let thread = flag(r, "thread");
            let code = get_i64(r, "exit_code");
            let signal = get_i64(r, "signal");
            let core_dumped = flag(r, "core_dumped");
            *detail = Detail::Exit {
                thread,
                code,
                signal,
                core_dumped,
            };
            exit_summary(thread, code, signal, core_dumped)
        }
        "rename" | "link" => format!(
            "{kind} {} -> {}{out}",
            path_of(r, "path"),
            path_of(r, "new_path")
        ),
        "symlink" => format!(
            "symlink {} -> {}{out}",
            path_of(r, "path"),
            path_of(r, "target")
        ),
        "open" => open_summary(get_str(r, "path"), get_str(r, "access"), out),
        "write" => format!(
            "first write to {}{}{out}",
            path_of(r, "path"),
            get_u64(r, "bytes").map_or(String::new(), |b| format!(" ({b} bytes)"))
        ),
        "chattr" => format!(
            "chattr {} append_only={} immutable={}{out}",
            path_of(r, "path"),
            get_u64(r, "append_only").unwrap_or(0),
            get_u64(r, "immutable").unwrap_or(0)
        ),
        "mount" => format!(
            "mount {} on {} type {}{out}",
            inert(get_str(r, "source").unwrap_or("?")),
            path_of(r, "path"),
            inert(get_str(r, "fstype").unwrap_or("?"))
        ),
        "memfd_create" => format!(
            "memfd_create {}{out}",
            inert(get_str(r, "name").unwrap_or("?"))
        ),
        "socket" => format!(
            "socket {} {}{out}",
            inert(&value_text(r.get("family"))),
            inert(&value_text(r.get("type")))
        ),
        "connect" | "accept" => peer_summary(kind, address(r.get("remote")), out),
        "bind" => format!(
            "bind {}{out}",
            address(r.get("local")).map_or("?".into(), |a| inert(&a))
        ),
        "listen" => format!("listen on fd {}{out}", get_i64(r, "fd").unwrap_or(-1)),
        "send" => match get_str(r, "dns_query") {
            Some(q) => format!(
                "DNS query {} ({}) to {}{out}",
                inert(q),
                value_text(r.get("dns_qtype")),
                address(r.get("remote")).map_or("?".into(), |a| inert(&a))
            ),
            None => format!(
                "send to {}{out}",
                address(r.get("remote")).map_or("?".into(), |a| inert(&a))
            ),
        },
        "setuid" | "setgid" => {
            let ids: Vec<String> = ["uid", "gid", "ruid", "euid", "suid", "rgid", "egid", "sgid"]
                .iter()
                .filter_map(|k| get_i64(r, k).map(|v| format!("{k}={v}")))
                .collect();
            format!(
                "{} {}{out}",
                get_str(r, "syscall").unwrap_or(kind),
                ids.join(" ")
            )
        }
        "kill" => format!(
            "kill pid {} with {}{}{out}",
            get_i64(r, "target_pid")
                .or_else(|| get_i64(r, "target_tid"))
                .unwrap_or(0),
            get_i64(r, "signal").map_or("?".into(), signal_name),
            if flag(r, "target_in_scope") {
                ""
            } else {
                " (outside the scope)"
            }
        ),
        "ptrace" => format!(
            "ptrace request {} pid {}{out}",
            get_i64(r, "request").unwrap_or(-1),
            get_i64(r, "target_pid").unwrap_or(0)
        ),
        "unshare" => format!("unshare flags {:#x}{out}", get_u64(r, "flags").unwrap_or(0)),
        "capset" => format!(
            "capset effective {:#x} permitted {:#x}{out}",
            get_u64(r, "effective").unwrap_or(0),
            get_u64(r, "permitted").unwrap_or(0)
        ),
        "bpf" => format!("bpf command {}{out}", get_i64(r, "command").unwrap_or(-1)),
        "malformed_event" => {
            *mark = Some(MarkKind::Malformed);
            format!(
                "MALFORMED ring-buffer event: {}",
                inert(get_str(r, "error").unwrap_or("?"))
            )
        }
        _ => generic_summary(kind, paths, out),
    }
}

/// `KIND PATH…` and the outcome, for a kind without a summary of its own.
fn generic_summary(kind: &str, paths: &[String], out: &str) -> String {
    let p: Vec<String> = paths.iter().map(|p| inert(p)).collect();
    format!(
        "{}{}{}{out}",
        inert(kind),
        if p.is_empty() { "" } else { " " },
        p.join(" ")
    )
}

pub fn exit_text(code: Option<i64>, signal: Option<i64>, core: bool) -> String {
    match (code, signal) {
        (_, Some(s)) => format!(
            "killed by {}{}",
            signal_name(s),
            if core { " (core dumped)" } else { "" }
        ),
        (Some(c), None) => format!("status {c}"),
        (None, None) => "status unknown".into(),
    }
}

fn value_text(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => "?".into(),
    }
}

fn scope(r: &Json) -> Scope {
    let Some(s) = r.get("scope").and_then(Value::as_object) else {
        return Scope::default();
    };
    Scope {
        mode: get_str(s, "mode").unwrap_or("?").to_string(),
        path: get_str(s, "path").map(str::to_string),
        cgroup_id: get_u64(s, "cgroup_id"),
        root_pid: get_u64(s, "pid"),
        command: strings(s.get("command")),
    }
}

pub fn scope_text(s: &Scope) -> String {
    let mut t = match (s.mode.as_str(), &s.path, s.root_pid) {
        ("cgroup", Some(p), _) => format!(
            "cgroup {}{}",
            inert(p),
            s.cgroup_id.map_or(String::new(), |i| format!(" (id {i})"))
        ),
        ("pid_tree", _, Some(pid)) => format!("process tree of pid {pid}"),
        (m, _, _) => format!("scope {}", inert(m)),
    };
    if !s.command.is_empty() {
        t += &format!(", command {}", command_line(&s.command));
    }
    t
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn ev(v: Value) -> Event {
        let r = v.as_object().unwrap().clone();
        let kind = r["kind"].as_str().unwrap().to_string();
        from_json(&r, 1, "ab", 5, kind)
    }

    #[test]
    fn exec_fork_exit_details() {
        let e = ev(
            json!({"kind":"exec","filename":"/bin/sh","argv":["sh","-c","exit 3"],
            "result":"success","proc":{"pid":7,"tid":7,"ppid":1,"uid":0,"gid":0,"euid":0,"egid":0,"comm":"sh"}}),
        );
        assert_eq!(e.summary, "exec /bin/sh: sh -c 'exit 3'");
        assert_eq!(e.actor.as_ref().unwrap().pid, 7);
        assert!(matches!(e.detail, Detail::Exec { ref argv, .. } if argv.len() == 3));
        let e = ev(json!({"kind":"exit","thread":0,"signal":9,"core_dumped":0}));
        assert_eq!(e.summary, "exit: killed by SIGKILL");
        let e = ev(
            json!({"kind":"open","path":"/nonexistent","access":"read","result":"failure","errno":2,"errno_name":"ENOENT"}),
        );
        assert_eq!(e.summary, "open /nonexistent (read) failed: ENOENT");
        assert!(e.failed);
        assert_eq!(e.paths, vec!["/nonexistent".to_string()]);
        assert_eq!(e.category, Category::File);
    }

    #[test]
    fn mistyped_fields_do_not_panic() {
        for v in [
            json!({"kind":"exec","argv":"notalist","proc":"x"}),
            json!({"kind":"fork","child_pid":"x","proc":{"pid":-1}}),
            json!({"kind":"loss","kinds":[1],"count":"many"}),
            json!({"kind":"start","scope":{"command":[1,{"a":2}]}}),
            json!({"kind":"connect","remote":{"family":5}}),
            json!({"kind":"weird","path":"/x\u{1b}[2J"}),
        ] {
            let e = ev(v);
            assert!(!e.summary.contains('\u{1b}'), "{}", e.summary);
        }
    }
}
