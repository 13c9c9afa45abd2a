//! `--since/--until/--sandbox/--pid/--descendants/--kind/--path`: which
//! timeline entries and processes a replay shows.
//!
//! Records select by every filter given (all must hold). Marks and the
//! records that raise one (loss, recovery, protection, …) select by time
//! and sandbox only: a filter never hides that part of the log is missing
//! or unverified. Verdict and unsigned marks are always shown.

use std::collections::HashSet;

use crate::{
    build::Built,
    error::{Error, Result},
    event::{Category, KINDS},
    glob::Glob,
    model::{Entry, Session},
};

/// Filters as the command line gives them (unparsed times are the CLI's
/// business: they arrive here as ns).
#[derive(Clone, Debug, Default)]
pub struct Filters {
    pub since_ns: Option<u64>,
    pub until_ns: Option<u64>,
    pub sandbox: Option<String>,
    pub pid: Option<u32>,
    pub descendants: bool,
    /// Record kinds or category names (`file`, `network`, `privilege`,
    /// `process`, `lifecycle`, `capture`).
    pub kinds: Vec<String>,
    pub path: Option<String>,
}

impl Filters {
    /// Whether any filter is set.
    pub fn any(&self) -> bool {
        self.since_ns.is_some()
            || self.until_ns.is_some()
            || self.sandbox.is_some()
            || self.pid.is_some()
            || !self.kinds.is_empty()
            || self.path.is_some()
    }

    /// Checks what can be checked without the log.
    pub fn check(&self) -> Result<Option<Glob>> {
        if let (Some(a), Some(b)) = (self.since_ns, self.until_ns)
            && a > b
        {
            return Err(Error::bad(
                "--since",
                &crate::time::rfc3339(a),
                format!("is after --until {}", crate::time::rfc3339(b)),
            ));
        }
        if self.descendants && self.pid.is_none() {
            return Err(Error::bad("--descendants", "", "needs --pid"));
        }
        if let Some(s) = &self.sandbox
            && s.trim().is_empty()
        {
            return Err(Error::bad("--sandbox", s, "is empty"));
        }
        self.path
            .as_deref()
            .map(|p| Glob::new(p).map_err(|why| Error::bad("--path", p, why)))
            .transpose()
    }
}

/// Does session `s` have sandbox `name`: its cgroup path (or a trailing
/// part of it, whole components), its cgroup id, or the root pid of a
/// pid-tree scope?
pub fn session_is(s: &Session, name: &str) -> bool {
    let name = name.trim();
    if let Ok(n) = name.parse::<u64>() {
        return s.scope.cgroup_id == Some(n) || s.scope.root_pid == Some(n);
    }
    let Some(path) = &s.scope.path else {
        return false;
    };
    let path = path.trim_end_matches('/');
    let want = name.trim_end_matches('/');
    if want.is_empty() {
        return false;
    }
    path == want
        || (path.ends_with(want.trim_start_matches('/'))
            && path[..path.len() - want.trim_start_matches('/').len()].ends_with('/'))
}

/// Applies `f` to a built log: drops unselected entries, marks processes
/// and sessions. Errors name a filter that names nothing in the log.
pub fn apply(b: &mut Built, f: &Filters) -> Result<()> {
    let glob = f.check()?;

    // --kind: each a known kind, a category, or a kind this log holds.
    let mut kinds: HashSet<&str> = HashSet::new();
    let mut cats: HashSet<Category> = HashSet::new();
    for k in f.kinds.iter().flat_map(|k| k.split(',')).map(str::trim) {
        if let Some(c) = Category::parse(k) {
            cats.insert(c);
        } else if KINDS.iter().any(|(n, _)| *n == k) || b.events.iter().any(|e| e.kind == k) {
            kinds.insert(k);
        } else {
            let known: Vec<&str> = KINDS.iter().map(|(n, _)| *n).collect();
            let cat_names: Vec<&str> = Category::ALL.iter().map(|c| c.name()).collect();
            return Err(Error::bad(
                "--kind",
                k,
                format!(
                    "is no record kind ({}) nor category ({})",
                    known.join(", "),
                    cat_names.join(", ")
                ),
            ));
        }
    }

    // --sandbox: the sessions it names.
    if let Some(name) = &f.sandbox {
        let mut any = false;
        for s in &mut b.sessions {
            s.matched = session_is(s, name);
            any |= s.matched;
        }
        if !any {
            let have: Vec<String> = b
                .sessions
                .iter()
                .map(
                    |s| match (&s.scope.path, s.scope.cgroup_id, s.scope.root_pid) {
                        (Some(p), Some(id), _) => format!("{p} (id {id})"),
                        (_, _, Some(pid)) => format!("pid tree {pid}"),
                        _ => "?".into(),
                    },
                )
                .collect();
            return Err(Error::bad(
                "--sandbox",
                name,
                format!(
                    "no session of this log has that cgroup path, cgroup id or root pid; its sessions: {}",
                    if have.is_empty() {
                        "none".to_string()
                    } else {
                        have.join(", ")
                    }
                ),
            ));
        }
    }

    // --pid [--descendants]: the processes it names.
    let mut by_pid: Option<Vec<bool>> = None;
    if let Some(pid) = f.pid {
        let mut sel: Vec<bool> = b.processes.iter().map(|p| p.pid == pid).collect();
        if !sel.iter().any(|&s| s) {
            return Err(Error::bad(
                "--pid",
                &pid.to_string(),
                "no process with that pid is in the log",
            ));
        }
        if f.descendants {
            // Processes come after their parents: one forward pass suffices.
            for i in 0..b.processes.len() {
                if let Some(p) = b.processes[i].parent
                    && sel[p]
                {
                    sel[i] = true;
                }
            }
        }
        by_pid = Some(sel);
    }

    let in_time = |t: u64| f.since_ns.is_none_or(|s| t >= s) && f.until_ns.is_none_or(|u| t <= u);
    let session_ok = |s: Option<usize>| {
        f.sandbox.is_none() || s.is_some_and(|s| b.sessions.get(s).is_some_and(|x| x.matched))
    };
    let record_filters = f.pid.is_some() || !f.kinds.is_empty() || glob.is_some();

    let mut has_selected = vec![false; b.processes.len()];
    let entries = std::mem::take(&mut b.entries);
    b.entries = entries
        .into_iter()
        .filter(|e| match e {
            Entry::Mark(m) => {
                use crate::event::MarkKind::*;
                match m.kind {
                    Unverified | Unsigned | Unreadable => true,
                    _ => {
                        m.time_ns.is_none_or(in_time)
                            && (f.sandbox.is_none() || session_ok(m.session))
                    }
                }
            }
            Entry::Record {
                event,
                process,
                session,
                ..
            } => {
                let ev = &b.events[*event];
                if !in_time(ev.time_ns) || !session_ok(*session) {
                    return false;
                }
                if ev.mark.is_some() || !record_filters {
                    if let Some(p) = process {
                        has_selected[*p] |= ev.mark.is_none();
                    }
                    return true;
                }
                let pid_ok = match (&by_pid, process) {
                    (None, _) => true,
                    (Some(sel), Some(p)) => sel[*p],
                    (Some(_), None) => false,
                };
                let kind_ok = (kinds.is_empty() && cats.is_empty())
                    || kinds.contains(ev.kind.as_str())
                    || cats.contains(&ev.category);
                let path_ok = glob
                    .as_ref()
                    .is_none_or(|g| ev.paths.iter().any(|p| g.matches(p)));
                let ok = pid_ok && kind_ok && path_ok;
                if ok && let Some(p) = process {
                    has_selected[*p] = true;
                }
                ok
            }
        })
        .collect();

    // Processes: matched by the process-level filters (and, when records
    // are filtered by kind or path, having a selected record); shown when
    // matched or an ancestor of one (for context).
    let filtered = f.since_ns.is_some() || f.until_ns.is_some() || f.sandbox.is_some();
    let event_filters = !f.kinds.is_empty() || glob.is_some();
    for i in 0..b.processes.len() {
        let p = &b.processes[i];
        let mut m = true;
        if let Some(sel) = &by_pid {
            m &= sel[i];
        }
        if filtered {
            m &= p.end_ns >= f.since_ns.unwrap_or(0)
                && p.start_ns <= f.until_ns.unwrap_or(u64::MAX)
                && session_ok(p.session);
        }
        if event_filters {
            m &= has_selected[i];
        }
        b.processes[i].matched = m;
        b.processes[i].shown = m;
    }
    // Ancestors of shown processes, for context (children come after
    // parents, so walk backwards).
    for i in (0..b.processes.len()).rev() {
        if b.processes[i].shown
            && let Some(p) = b.processes[i].parent
        {
            b.processes[p].shown = true;
        }
    }
    Ok(())
}
