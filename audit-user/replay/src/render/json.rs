//! `--format json`: one JSON object, documented in docs/REPLAY.md. Written
//! by hand, entry by entry (a million-record timeline must not be built as
//! one value in memory first); each timeline entry is on its own line.

use std::{
    fmt::Write as _,
    io::{self, Write},
};

use serde_json::{Value, json};

use super::{label, status};
use crate::{
    event::{Creds, Raw},
    model::{End, Entry, Mark, Origin, Process, Replay, Trust},
    time,
};

/// Bumped on any change that is not purely additive.
pub const FORMAT_VERSION: u64 = 1;

/// A JSON string, escaped exactly as serde_json escapes it, written in
/// place (no String per field of a million-record timeline).
struct Str<'a>(&'a str);

impl std::fmt::Display for Str<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        f.write_str("\"")?;
        let b = self.0.as_bytes();
        let mut start = 0;
        for (i, &c) in b.iter().enumerate() {
            let esc: &str = match c {
                b'"' => "\\\"",
                b'\\' => "\\\\",
                b'\n' => "\\n",
                b'\t' => "\\t",
                b'\r' => "\\r",
                0x08 => "\\b",
                0x0c => "\\f",
                0..=0x1f => "",
                _ => continue,
            };
            // Escaped bytes are ASCII, so these cuts are on char boundaries.
            f.write_str(&self.0[start..i])?;
            if esc.is_empty() {
                let u = [
                    b'\\',
                    b'u',
                    b'0',
                    b'0',
                    HEX[usize::from(c >> 4)],
                    HEX[usize::from(c & 15)],
                ];
                f.write_str(std::str::from_utf8(&u).unwrap_or("?"))?;
            } else {
                f.write_str(esc)?;
            }
            start = i + 1;
        }
        f.write_str(&self.0[start..])?;
        f.write_str("\"")
    }
}

/// `{"egid":…,"euid":…,"gid":…,"uid":…}` (keys in serde_json's order).
fn creds(out: &mut String, c: &Creds) {
    let _ = write!(
        out,
        "{{\"egid\":{},\"euid\":{},\"gid\":{},\"uid\":{}}}",
        c.egid, c.euid, c.gid, c.uid
    );
}

/// `[a,b,…]` of `items`, each written by `f`.
fn list<T>(out: &mut String, items: &[T], mut f: impl FnMut(&mut String, &T)) {
    out.push('[');
    for (i, x) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        f(out, x);
    }
    out.push(']');
}

/// One process, written in place: the same bytes as serde_json gives for
/// the `json!` object of these fields (keys sorted, as its map sorts them),
/// without building that object for each of hundreds of thousands of
/// processes (tested against it).
fn process(out: &mut String, p: &Process, live: bool) {
    let (origin, origin_seq) = match p.origin {
        Origin::Forked(s) => ("fork", s),
        Origin::FirstSeen(s) => ("first_seen", s),
    };
    let end = match p.end {
        End::Exited => "exited",
        End::SessionEnded => "session_ended",
        End::PidReused => "pid_reused",
        End::Running => "running",
    };
    out.push_str("{\"children\":");
    list(out, &p.children, |o, c| {
        let _ = write!(o, "{c}");
    });
    let _ = write!(out, ",\"comm\":{},\"cred_changes\":", Str(&p.comm));
    list(out, &p.cred_changes, |o, c| {
        o.push_str("{\"from\":");
        creds(o, &c.from);
        let _ = write!(
            o,
            ",\"kind\":{},\"seq\":{},\"time_ns\":{},\"to\":",
            Str(&c.kind),
            c.seq,
            c.time_ns
        );
        creds(o, &c.to);
        o.push('}');
    });
    out.push_str(",\"creds\":");
    creds(out, &p.creds);
    let _ = write!(out, ",\"end\":\"{end}\",\"end_ns\":{},\"execs\":", p.end_ns);
    list(out, &p.execs, |o, e| {
        o.push_str("{\"argv\":");
        list(o, &e.argv, |o, a| {
            let _ = write!(o, "{}", Str(a));
        });
        let _ = write!(
            o,
            ",\"argv_truncated\":{},\"comm\":{},\"creds\":",
            e.argv_truncated,
            Str(&e.comm)
        );
        creds(o, &e.creds);
        let _ = write!(
            o,
            ",\"filename\":{},\"seq\":{},\"time_ns\":{}}}",
            Str(&e.filename),
            e.seq,
            e.time_ns
        );
    });
    out.push_str(",\"exit\":");
    match &p.exit {
        Some(e) => {
            let _ = write!(
                out,
                "{{\"core_dumped\":{},\"exit_code\":{},\"seq\":{},\"signal\":{},\"time_ns\":{}}}",
                e.core_dumped,
                Opt(e.code),
                e.seq,
                Opt(e.signal),
                e.time_ns
            );
        }
        None => out.push_str("null"),
    }
    let _ = write!(
        out,
        ",\"failed_actions\":{},\"file_actions\":{},\"id\":{},\"label\":{},\"matched\":{},\"network_actions\":{},\"origin\":\"{origin}\",\"origin_seq\":{origin_seq},\"parent\":{},\"pid\":{},\"ppid\":{},\"privilege_actions\":{},\"records\":{},\"session\":{},\"start_ns\":{},\"status\":{},\"threads\":{}}}",
        p.failed_actions,
        p.file_actions,
        p.id,
        Str(&label(p)),
        p.matched,
        p.network_actions,
        Opt(p.parent),
        p.pid,
        p.ppid,
        p.privilege_actions,
        p.records,
        Opt(p.session),
        p.start_ns,
        Str(&status(p, live)),
        p.threads
    );
}

fn mark(m: &Mark) -> Value {
    json!({
        "type": "mark",
        "mark": m.kind.name(),
        "seq": m.seq,
        "last_seq": m.last_seq,
        "time_ns": m.time_ns,
        "session": m.session,
        "verdict": m.verdict,
        "file": m.file,
        "line": m.line,
        "detail": m.detail,
    })
}

/// A number or `null`.
struct Opt<T>(Option<T>);

impl<T: std::fmt::Display> std::fmt::Display for Opt<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Some(v) => v.fmt(f),
            None => f.write_str("null"),
        }
    }
}

/// A string or `null`.
struct OptStr<'a>(Option<&'a str>);

impl std::fmt::Display for OptStr<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(v) => Str(v).fmt(f),
            None => f.write_str("null"),
        }
    }
}

pub fn render(r: &Replay, out: &mut dyn Write) -> io::Result<()> {
    let v = &r.verify;
    let head = json!({
        "format": "sandbox-audit-replay",
        "version": FORMAT_VERSION,
        "files": r.files,
        "live": r.live,
        "verify": {
            "intact": v.intact,
            "records": v.records,
            "covered_by_checkpoint": v.covered,
            "verdicts": v.verdicts.iter().map(|d| json!({
                "kind": d.kind,
                "first_seq": d.first_seq,
                "last_seq": d.last_seq,
                "file": d.file,
                "line": d.line,
                "detail": d.detail,
                "count": d.count,
            })).collect::<Vec<_>>(),
            "notes": v.notes,
            "text": v.text,
        },
        "filters": {
            "since_ns": r.filters.since_ns,
            "until_ns": r.filters.until_ns,
            "sandbox": r.filters.sandbox,
            "pid": r.filters.pid,
            "descendants": r.filters.descendants,
            "kinds": r.filters.kinds,
            "path": r.filters.path,
        },
        "sessions": r.sessions.iter().enumerate().map(|(i, s)| json!({
            "id": i,
            "start_seq": s.start_seq,
            "start_ns": s.start_ns,
            "last_seq": s.last_seq,
            "last_ns": s.last_ns,
            "scope": {
                "mode": s.scope.mode,
                "path": s.scope.path,
                "cgroup_id": s.scope.cgroup_id,
                "pid": s.scope.root_pid,
                "command": s.scope.command,
            },
            "stop": s.stop.as_ref().map(|(seq, t, reason)| json!({"seq": seq, "time_ns": t, "reason": reason})),
            "complete": s.stop.is_some(),
            "matched": s.matched,
        })).collect::<Vec<_>>(),
    });
    // The head object, left open for "processes" and "timeline".
    let mut head_text = head.to_string();
    head_text.pop();
    out.write_all(head_text.as_bytes())?;
    out.write_all(b",\n\"processes\":[")?;
    let shown: Vec<&Process> = r.processes.iter().filter(|p| p.shown).collect();
    super::par_render(&shown, out, |i, p, line| {
        if i > 0 {
            line.push(',');
        }
        line.push('\n');
        process(line, p, r.live);
    })?;
    out.write_all(b"],\n\"timeline\":[")?;
    super::par_render(&r.entries, out, |i, e, line| {
        if i > 0 {
            line.push(',');
        }
        line.push('\n');
        match e {
            Entry::Mark(m) => line.push_str(&mark(m).to_string()),
            Entry::Record {
                event,
                process,
                session,
                trust,
            } => {
                let ev = &r.events[*event];
                let _ = write!(
                    line,
                    "{{\"type\":\"record\",\"seq\":{},\"hash\":{},\"time_ns\":{},\"time\":\"{}\",\"kind\":{},\"category\":\"{}\",\"process\":{},\"session\":{},\"pid\":{},\"tid\":{},\"trust\":\"{}\",\"verdict\":{},\"failed\":{},\"mark\":{},\"file\":{},\"line\":{},\"summary\":{},\"record\":",
                    ev.seq,
                    Str(&ev.hash),
                    ev.time_ns,
                    time::Rfc3339(ev.time_ns),
                    Str(&ev.kind),
                    ev.category.name(),
                    Opt(*process),
                    Opt(*session),
                    Opt(ev.actor.as_ref().map(|a| a.pid)),
                    Opt(ev.actor.as_ref().map(|a| a.tid)),
                    trust.name(),
                    Opt(match trust {
                        Trust::Unverified(v) => Some(*v),
                        _ => None,
                    }),
                    ev.failed,
                    OptStr(ev.mark.map(|m| m.name())),
                    Str(r.file_name(ev.file)),
                    ev.line,
                    Str(&ev.summary()),
                );
                // The stored line is a JSON object already (it parsed).
                line.push_str(ev.raw.as_ref().map_or("null", Raw::as_str));
                line.push('}');
            }
        }
    })?;
    out.write_all(b"\n]}\n")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::{label, status};
    use crate::{
        event::Creds,
        model::{CredChange, End, ExecStep, ExitInfo, Origin, Process},
    };

    fn creds_value(c: &Creds) -> Value {
        json!({"uid": c.uid, "euid": c.euid, "gid": c.gid, "egid": c.egid})
    }

    /// The process object as it was built before it was written by hand.
    fn process_value(p: &Process, live: bool) -> Value {
        let (origin, origin_seq) = match p.origin {
            Origin::Forked(s) => ("fork", s),
            Origin::FirstSeen(s) => ("first_seen", s),
        };
        let end = match p.end {
            End::Exited => "exited",
            End::SessionEnded => "session_ended",
            End::PidReused => "pid_reused",
            End::Running => "running",
        };
        json!({
            "id": p.id, "pid": p.pid, "ppid": p.ppid, "parent": p.parent,
            "children": p.children, "session": p.session, "origin": origin,
            "origin_seq": origin_seq, "start_ns": p.start_ns, "end_ns": p.end_ns,
            "comm": p.comm, "label": label(p), "creds": creds_value(&p.creds),
            "execs": p.execs.iter().map(|e| json!({
                "seq": e.seq, "time_ns": e.time_ns, "filename": e.filename,
                "argv": e.argv, "argv_truncated": e.argv_truncated, "comm": e.comm,
                "creds": creds_value(&e.creds),
            })).collect::<Vec<_>>(),
            "cred_changes": p.cred_changes.iter().map(|c| json!({
                "seq": c.seq, "time_ns": c.time_ns, "kind": c.kind,
                "from": creds_value(&c.from), "to": creds_value(&c.to),
            })).collect::<Vec<_>>(),
            "exit": p.exit.as_ref().map(|e| json!({
                "seq": e.seq, "time_ns": e.time_ns, "exit_code": e.code,
                "signal": e.signal, "core_dumped": e.core_dumped,
            })),
            "end": end, "status": status(p, live), "threads": p.threads,
            "records": p.records, "file_actions": p.file_actions,
            "network_actions": p.network_actions,
            "privilege_actions": p.privilege_actions,
            "failed_actions": p.failed_actions, "matched": p.matched,
        })
    }

    #[test]
    fn processes_are_written_as_serde_json_writes_their_object() {
        let c = |n: u32| Creds {
            uid: n,
            euid: n + 1,
            gid: u32::MAX,
            egid: 0,
        };
        let hostile = "a\"b\\c\n\u{1b}[2J\u{7f}é😀";
        let base = Process {
            id: 7,
            pid: 42,
            ppid: u32::MAX,
            parent: None,
            children: vec![],
            session: None,
            origin: Origin::FirstSeen(3),
            start_ns: u64::MAX,
            end_ns: 0,
            comm: hostile.into(),
            creds: c(0),
            execs: vec![],
            cred_changes: vec![],
            exit: None,
            end: End::Running,
            threads: 1,
            file_actions: 0,
            network_actions: 2,
            privilege_actions: 3,
            failed_actions: 4,
            records: 5,
            matched: false,
            shown: true,
        };
        let full = Process {
            parent: Some(1),
            children: vec![8, 9, 10],
            session: Some(0),
            origin: Origin::Forked(2),
            execs: vec![
                ExecStep {
                    seq: 4,
                    time_ns: 5,
                    filename: hostile.into(),
                    argv: vec![hostile.into(), String::new()],
                    argv_truncated: true,
                    comm: "sh".into(),
                    creds: c(1000),
                },
                ExecStep {
                    seq: 6,
                    time_ns: 7,
                    filename: "/bin/true".into(),
                    argv: vec![],
                    argv_truncated: false,
                    comm: String::new(),
                    creds: c(1),
                },
            ],
            cred_changes: vec![CredChange {
                seq: 9,
                time_ns: 10,
                from: c(0),
                to: c(5),
                kind: hostile.into(),
            }],
            exit: Some(ExitInfo {
                seq: 11,
                time_ns: 12,
                code: Some(-3),
                signal: None,
                core_dumped: false,
            }),
            end: End::Exited,
            matched: true,
            ..base.clone()
        };
        let killed = Process {
            exit: Some(ExitInfo {
                seq: 11,
                time_ns: 12,
                code: None,
                signal: Some(9),
                core_dumped: true,
            }),
            end: End::PidReused,
            ..full.clone()
        };
        let ended = Process {
            end: End::SessionEnded,
            ..base.clone()
        };
        for p in [base, full, killed, ended] {
            for live in [false, true] {
                let mut got = String::new();
                super::process(&mut got, &p, live);
                assert_eq!(got, process_value(&p, live).to_string());
            }
        }
    }

    #[test]
    fn strings_are_escaped_as_serde_json_escapes_them() {
        let mut all: String = (0u8..0x80).map(char::from).collect();
        all.push_str("é\u{202e}\u{7f}\u{85}😀\"\\end");
        for s in [all.as_str(), "", "plain", "\n", "a\u{1}b"] {
            assert_eq!(super::Str(s).to_string(), serde_json::to_string(s).unwrap());
        }
    }
}
