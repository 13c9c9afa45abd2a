//! The one pass over the log that rebuilds sessions and processes and lays
//! out the timeline with its marks (before filtering).

use std::collections::HashMap;

use crate::{
    event::{Actor, Category, Detail, Event, MarkKind, scope_text},
    model::{
        CredChange, End, Entry, ExecStep, ExitInfo, Mark, Origin, Process, Session, Trust,
        VerifyView,
    },
    source::{Item, Read, Unreadable},
    time,
};

/// The rebuilt log, before filters.
pub struct Built {
    pub sessions: Vec<Session>,
    pub processes: Vec<Process>,
    pub events: Vec<Event>,
    pub entries: Vec<Entry>,
}

struct Builder<'a> {
    verify: &'a VerifyView,
    files: &'a [String],
    sessions: Vec<Session>,
    processes: Vec<Process>,
    events: Vec<Event>,
    entries: Vec<Entry>,
    /// The session records are being attributed to.
    current: Option<usize>,
    /// Live processes of the current session, by pid.
    live: HashMap<u32, usize>,
    /// Verdicts whose mark is not placed yet, by first seq (ascending).
    pending_verdicts: Vec<usize>,
    unsigned_marked: bool,
}

pub fn build(items: Vec<Item>, verify: &VerifyView, files: &[String], live: bool) -> Built {
    build_read(Read::from(items), verify, files, live)
}

/// [`build`] over the input as [`crate::source`] reads it.
pub fn build_read(read: Read, verify: &VerifyView, files: &[String], live: bool) -> Built {
    let Read { events, unreadable } = read;
    let mut pending: Vec<usize> = (0..verify.verdicts.len()).collect();
    // Placed in order of first seq; popped from the end.
    pending.sort_by_key(|&i| std::cmp::Reverse(verify.verdicts[i].first_seq));
    let mut b = Builder {
        verify,
        files,
        sessions: Vec::new(),
        processes: Vec::new(),
        events: Vec::new(),
        entries: Vec::with_capacity(events.len() + unreadable.len() + 8),
        current: None,
        live: HashMap::new(),
        pending_verdicts: pending,
        unsigned_marked: false,
    };
    let mut marks = unreadable.into_iter().peekable();
    for (i, ev) in events.iter().enumerate() {
        while let Some((_, u)) = marks.next_if(|(before, _)| *before <= i) {
            b.unreadable(u);
        }
        b.record(i, ev);
    }
    for (_, u) in marks {
        b.unreadable(u);
    }
    b.events = events;
    b.finish(live)
}

impl Builder<'_> {
    fn unreadable(&mut self, u: Unreadable) {
        let Unreadable {
            file,
            line,
            why,
            excerpt,
        } = u;
        self.entries.push(Entry::Mark(Mark {
            kind: MarkKind::Unreadable,
            seq: None,
            last_seq: None,
            time_ns: None,
            session: self.current,
            verdict: None,
            file: Some(self.file(file)),
            line: Some(line),
            detail: format!(
                "UNREADABLE {}:{line}: {why}: {}",
                self.file(file),
                crate::display::inert(&excerpt)
            ),
        }));
    }

    fn file(&self, f: u32) -> String {
        self.files
            .get(f as usize)
            .cloned()
            .unwrap_or_else(|| "?".into())
    }

    fn trust(&self, seq: u64) -> Trust {
        if let Some(i) = self
            .verify
            .verdicts
            .iter()
            .position(|v| v.first_seq <= seq && seq <= v.last_seq)
        {
            Trust::Unverified(i)
        } else if seq >= self.verify.covered {
            Trust::Unsigned
        } else {
            Trust::Signed
        }
    }

    fn verdict_mark(&self, i: usize) -> Mark {
        let v = &self.verify.verdicts[i];
        let seqs = if v.first_seq == v.last_seq {
            format!("seq {}", v.first_seq)
        } else {
            format!("seq {}..{}", v.first_seq, v.last_seq)
        };
        Mark {
            kind: MarkKind::Unverified,
            seq: Some(v.first_seq),
            last_seq: Some(v.last_seq),
            time_ns: None,
            session: None,
            verdict: Some(i),
            file: Some(v.file.clone()),
            line: Some(v.line),
            detail: format!(
                "UNVERIFIED {seqs}: {} ({}{}): {}",
                v.kind,
                v.file,
                if v.line > 0 {
                    format!(":{}", v.line)
                } else {
                    String::new()
                },
                crate::display::inert(&v.detail)
            ),
        }
    }

    /// Places the marks that belong before a record of `seq`.
    fn marks_before(&mut self, seq: u64) {
        self.verdicts_before(seq);
        self.unsigned_before(seq);
    }

    fn verdicts_before(&mut self, seq: u64) {
        while let Some(&i) = self.pending_verdicts.last() {
            if self.verify.verdicts[i].first_seq > seq {
                break;
            }
            self.pending_verdicts.pop();
            let m = self.verdict_mark(i);
            self.entries.push(Entry::Mark(m));
        }
    }

    fn unsigned_before(&mut self, seq: u64) {
        if !self.unsigned_marked && seq >= self.verify.covered && self.verify.records > 0 {
            self.unsigned_marked = true;
            self.entries.push(Entry::Mark(Mark {
                kind: MarkKind::Unsigned,
                seq: Some(self.verify.covered),
                last_seq: None,
                time_ns: None,
                session: None,
                verdict: None,
                file: None,
                line: None,
                detail: format!(
                    "UNSIGNED from seq {} on: after the last valid checkpoint, these records are covered by the hash chain only",
                    self.verify.covered
                ),
            }));
        }
    }

    fn end_session(&mut self, at_seq: u64, why: &str) {
        let Some(s) = self.current.take() else { return };
        for (_, p) in self.live.drain() {
            if self.processes[p].end == End::Running {
                self.processes[p].end = End::SessionEnded;
            }
        }
        let sess = &self.sessions[s];
        if sess.stop.is_none() {
            let detail = format!(
                "INCOMPLETE session {} ({}): no stop record; its last record is seq {} at {} ({why})",
                s + 1,
                scope_text(&sess.scope),
                sess.last_seq,
                time::short(sess.last_ns)
            );
            self.entries.push(Entry::Mark(Mark {
                kind: MarkKind::Incomplete,
                seq: Some(at_seq),
                last_seq: None,
                time_ns: Some(sess.last_ns),
                session: Some(s),
                verdict: None,
                file: None,
                line: None,
                detail,
            }));
        }
    }

    fn start_session(&mut self, ev: &Event) {
        let prev = self.sessions.last().map(|p| {
            (
                p.stop.as_ref().map_or(p.last_ns, |s| s.1).max(p.last_ns),
                p.stop.is_some(),
            )
        });
        if let Some((end_ns, clean)) = prev
            && ev.time_ns > end_ns
        {
            let gap = ev.time_ns - end_ns;
            self.entries.push(Entry::Mark(Mark {
                kind: MarkKind::Outage,
                seq: Some(ev.seq),
                last_seq: None,
                time_ns: Some(end_ns),
                session: Some(self.sessions.len()),
                verdict: None,
                file: None,
                line: None,
                detail: format!(
                    "OUTAGE: nothing was captured from {} to {} ({}) — the previous session {}",
                    time::short(end_ns),
                    time::short(ev.time_ns),
                    duration(gap),
                    if clean {
                        "stopped cleanly"
                    } else {
                        "ended without a stop record"
                    }
                ),
            }));
        }
        let Detail::Start(scope) = &ev.detail else {
            return;
        };
        self.sessions.push(Session {
            start_seq: ev.seq,
            start_ns: ev.time_ns,
            scope: scope.clone(),
            stop: None,
            last_seq: ev.seq,
            last_ns: ev.time_ns,
            matched: true,
        });
        self.current = Some(self.sessions.len() - 1);
    }

    fn new_process(&mut self, pid: u32, ppid: u32, origin: Origin, ev: &Event, a: &Actor) -> usize {
        let id = self.processes.len();
        let parent = if matches!(origin, Origin::Forked(_)) {
            self.live.get(&a.pid).copied()
        } else {
            self.live.get(&ppid).copied()
        };
        if let Some(old) = self.live.insert(pid, id) {
            self.processes[old].end = End::PidReused;
        }
        if let Some(p) = parent {
            self.processes[p].children.push(id);
        }
        self.processes.push(Process {
            id,
            pid,
            ppid,
            parent,
            children: Vec::new(),
            session: self.current,
            origin,
            start_ns: ev.time_ns,
            end_ns: ev.time_ns,
            comm: a.comm.clone(),
            creds: a.creds(),
            execs: Vec::new(),
            cred_changes: Vec::new(),
            exit: None,
            end: End::Running,
            threads: 1,
            file_actions: 0,
            network_actions: 0,
            privilege_actions: 0,
            failed_actions: 0,
            records: 0,
            matched: true,
            shown: true,
        });
        id
    }

    /// The process acting in `ev`, created when first seen.
    fn actor(&mut self, ev: &Event, a: &Actor) -> usize {
        match self.live.get(&a.pid) {
            Some(&p) => p,
            None => self.new_process(a.pid, a.ppid, Origin::FirstSeen(ev.seq), ev, a),
        }
    }

    /// Event `idx` of the log (its place in the final `events`).
    fn record(&mut self, idx: usize, ev: &Event) {
        self.marks_before(ev.seq);
        match &ev.detail {
            Detail::Start(_) => {
                self.end_session(ev.seq, "a new session started");
                self.start_session(ev);
            }
            // The crashed session: the recovery speaks for it.
            Detail::Recovery if self.current.is_none() => {
                self.current = self.sessions.len().checked_sub(1);
            }
            _ => {}
        }
        let session = self.current;
        if let Some(s) = session {
            let sess = &mut self.sessions[s];
            sess.last_seq = ev.seq;
            sess.last_ns = sess.last_ns.max(ev.time_ns);
            if let Detail::Stop { reason } = &ev.detail {
                sess.stop = Some((ev.seq, ev.time_ns, reason.clone()));
            }
        }
        let process = ev.actor.as_ref().map(|a| self.attach(ev, a));
        let trust = self.trust(ev.seq);
        let recovery = matches!(ev.detail, Detail::Recovery);
        self.entries.push(Entry::Record {
            event: idx,
            process,
            session,
            trust,
        });
        if recovery {
            self.end_session(
                ev.seq,
                "the recorder stopped without closing it: crash or kill",
            );
        }
    }

    /// Updates the process tree with `ev` and returns its process.
    fn attach(&mut self, ev: &Event, a: &Actor) -> usize {
        let p = self.actor(ev, a);
        {
            let proc_ = &mut self.processes[p];
            proc_.records += 1;
            proc_.end_ns = proc_.end_ns.max(ev.time_ns);
            match ev.category {
                Category::File => proc_.file_actions += 1,
                Category::Network => proc_.network_actions += 1,
                Category::Privilege => proc_.privilege_actions += 1,
                _ => {}
            }
            if ev.failed {
                proc_.failed_actions += 1;
            }
            let now = a.creds();
            let was = proc_.last_creds();
            if now != was {
                proc_.cred_changes.push(CredChange {
                    seq: ev.seq,
                    time_ns: ev.time_ns,
                    from: was,
                    to: now,
                    kind: ev.kind.clone(),
                });
            }
        }
        match &ev.detail {
            Detail::Exec {
                filename,
                argv,
                argv_truncated,
            } => self.processes[p].execs.push(ExecStep {
                seq: ev.seq,
                time_ns: ev.time_ns,
                filename: filename.clone(),
                argv: argv.clone(),
                argv_truncated: *argv_truncated,
                comm: a.comm.clone(),
                creds: a.creds(),
            }),
            Detail::Fork {
                child_pid,
                thread: false,
                ..
            } => {
                self.new_process(*child_pid, a.pid, Origin::Forked(ev.seq), ev, a);
            }
            Detail::Fork { thread: true, .. } => self.processes[p].threads += 1,
            Detail::Exit {
                thread: false,
                code,
                signal,
                core_dumped,
            } => {
                let proc_ = &mut self.processes[p];
                proc_.exit = Some(ExitInfo {
                    seq: ev.seq,
                    time_ns: ev.time_ns,
                    code: *code,
                    signal: *signal,
                    core_dumped: *core_dumped,
                });
                proc_.end = End::Exited;
                self.live.remove(&a.pid);
            }
            _ => {}
        }
        p
    }

    fn finish(mut self, live: bool) -> Built {
        // Verdicts past the last record (e.g. deleted at the end).
        self.verdicts_before(u64::MAX);
        let seq = self.events.last().map_or(0, |e| e.seq);
        if let Some(s) = self.current {
            let running = live && self.sessions[s].stop.is_none();
            let why = if running {
                "the store is still being written: the session is running"
            } else {
                "the log ends here: the recorder crashed, was killed, or its tail is missing"
            };
            self.end_session(seq, why);
            if running {
                // Still capturing: its processes are running, not ended.
                for p in &mut self.processes {
                    if p.end == End::SessionEnded && p.session == Some(s) {
                        p.end = End::Running;
                    }
                }
            }
        }
        Built {
            sessions: self.sessions,
            processes: self.processes,
            events: self.events,
            entries: self.entries,
        }
    }
}

fn duration(ns: u64) -> String {
    let s = ns / 1_000_000_000;
    if s >= 3600 {
        format!("{}h {:02}m {:02}s", s / 3600, (s / 60) % 60, s % 60)
    } else if s >= 60 {
        format!("{}m {:02}s", s / 60, s % 60)
    } else {
        format!("{:.3}s", ns as f64 / 1e9)
    }
}
