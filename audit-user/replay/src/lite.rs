//! The fast path for the bulk of a log (process, file, network and
//! privilege records): a typed, borrowing parse of only what the tree and
//! the filters need, with no JSON value tree built. A line that does not
//! fit it (another kind, a field of an unexpected type, a duplicate key)
//! takes the general path in [`crate::event::from_json`]; both give the
//! same [`Event`] (tested). The summaries of the commonest kinds (exec,
//! fork, exit, open, connect, accept) are made here from the typed fields,
//! through the same functions as the general path; for the other kinds the
//! summary is left to render time.

use std::borrow::Cow;

use serde::Deserialize;

use crate::{
    display,
    event::{self, Actor, Category, Detail, Event},
};

#[derive(Deserialize, Debug, PartialEq)]
pub(crate) struct LiteProc<'a> {
    pub(crate) pid: u64,
    pub(crate) tid: Option<u64>,
    pub(crate) ppid: Option<u64>,
    pub(crate) uid: Option<u64>,
    pub(crate) gid: Option<u64>,
    pub(crate) euid: Option<u64>,
    pub(crate) egid: Option<u64>,
    #[serde(borrow)]
    pub(crate) comm: Option<Cow<'a, str>>,
    pub(crate) cgroup_id: Option<u64>,
}

#[derive(Deserialize, Debug, PartialEq)]
pub(crate) struct LiteAddr<'a> {
    #[serde(borrow)]
    pub(crate) family: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub(crate) address: Option<Cow<'a, str>>,
    pub(crate) port: Option<u64>,
    #[serde(borrow)]
    pub(crate) path: Option<Cow<'a, str>>,
    #[serde(borrow, rename = "abstract")]
    pub(crate) abstract_name: Option<Cow<'a, str>>,
}

#[derive(Deserialize, Debug, PartialEq)]
pub(crate) struct Lite<'a> {
    pub(crate) seq: u64,
    pub(crate) time_ns: u64,
    #[serde(borrow)]
    pub(crate) kind: Cow<'a, str>,
    #[serde(borrow)]
    pub(crate) hash: Cow<'a, str>,
    #[serde(borrow, rename = "proc")]
    pub(crate) proc_: Option<LiteProc<'a>>,
    #[serde(borrow)]
    pub(crate) result: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub(crate) path: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub(crate) new_path: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub(crate) filename: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub(crate) target: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub(crate) namespace: Option<Cow<'a, str>>,
    pub(crate) child_pid: Option<u64>,
    pub(crate) child_tid: Option<u64>,
    pub(crate) thread: Option<u64>,
    pub(crate) exit_code: Option<i64>,
    pub(crate) signal: Option<i64>,
    pub(crate) core_dumped: Option<u64>,
    #[serde(borrow)]
    pub(crate) argv: Option<Vec<Cow<'a, str>>>,
    pub(crate) argv_truncated: Option<u64>,
    #[serde(borrow)]
    pub(crate) access: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub(crate) errno_name: Option<Cow<'a, str>>,
    pub(crate) errno: Option<i64>,
    pub(crate) ret: Option<i64>,
    #[serde(borrow)]
    pub(crate) remote: Option<LiteAddr<'a>>,
}

fn u32_or_max(v: Option<u64>) -> u32 {
    v.and_then(|v| u32::try_from(v).ok()).unwrap_or(u32::MAX)
}

/// `Some` when the line fits the fast path. `paths` (for `--path`) are
/// only collected when asked for.
pub fn parse(line: &[u8], want_paths: bool) -> Option<Event> {
    // A canonical line (every line the store writes) is read by the
    // allocation-free scan; anything else, by serde, which has the last word.
    let l: Lite = match crate::lite_scan::lite(line) {
        Some(l) => l,
        None => serde_json::from_slice(line).ok()?,
    };
    let category = Category::of_kind(&l.kind);
    if !matches!(
        category,
        Category::Process | Category::File | Category::Network | Category::Privilege
    ) {
        return None;
    }
    let actor = match l.proc_ {
        Some(p) => Some(Actor {
            pid: u32::try_from(p.pid).ok()?,
            tid: u32_or_max(p.tid),
            ppid: u32_or_max(p.ppid),
            uid: u32_or_max(p.uid),
            gid: u32_or_max(p.gid),
            euid: u32_or_max(p.euid),
            egid: u32_or_max(p.egid),
            comm: p.comm.map_or(String::new(), Cow::into_owned),
            cgroup_id: p.cgroup_id.unwrap_or(0),
        }),
        None => None,
    };
    let failed = l.result.as_deref() == Some("failure");
    let mut paths: Vec<String> = Vec::new();
    if want_paths {
        paths = [&l.path, &l.new_path, &l.filename, &l.target, &l.namespace]
            .into_iter()
            .filter_map(|p| p.as_deref().map(str::to_string))
            .collect();
        paths.dedup();
    }
    let flag = |v: Option<u64>| v == Some(1);
    let out = || {
        event::outcome_text(
            &l.kind,
            l.result.as_deref(),
            l.errno_name.as_deref(),
            l.errno,
            l.ret,
        )
    };
    let mut summary = String::new();
    let detail = match l.kind.as_ref() {
        "exec" if !failed => {
            let filename = l.filename.as_deref().unwrap_or("").to_string();
            let argv: Vec<String> = l
                .argv
                .unwrap_or_default()
                .into_iter()
                .map(Cow::into_owned)
                .collect();
            let argv_truncated = flag(l.argv_truncated);
            summary = event::exec_summary(&filename, &argv, argv_truncated);
            Detail::Exec {
                filename,
                argv,
                argv_truncated,
            }
        }
        "exec" => {
            summary = format!(
                "exec {}{}",
                display::inert(l.filename.as_deref().unwrap_or("?")),
                out()
            );
            Detail::None
        }
        "fork" => {
            let (child_pid, child_tid, thread) = (
                u32_or_max(l.child_pid),
                u32_or_max(l.child_tid),
                flag(l.thread),
            );
            summary = event::fork_summary(child_pid, child_tid, thread);
            Detail::Fork {
                child_pid,
                child_tid,
                thread,
            }
        }
        "exit" => {
            let (thread, core_dumped) = (flag(l.thread), flag(l.core_dumped));
            summary = event::exit_summary(thread, l.exit_code, l.signal, core_dumped);
            Detail::Exit {
                thread,
                code: l.exit_code,
                signal: l.signal,
                core_dumped,
            }
        }
        "open" => {
            summary = event::open_summary(l.path.as_deref(), l.access.as_deref(), &out());
            Detail::None
        }
        "connect" | "accept" => {
            let addr = l.remote.as_ref().map(|a| {
                event::address_text(
                    a.family.as_deref(),
                    a.address.as_deref(),
                    a.port,
                    a.path.as_deref(),
                    a.abstract_name.as_deref(),
                )
            });
            summary = event::peer_summary(&l.kind, addr, &out());
            Detail::None
        }
        _ => Detail::None,
    };
    Some(Event {
        seq: l.seq,
        hash: event::Short::new(&l.hash),
        time_ns: l.time_ns,
        kind: l.kind.into_owned(),
        category,
        actor,
        detail,
        summary,
        paths,
        failed,
        mark: None,
        file: 0,
        line: 0,
        raw: None,
    })
}
