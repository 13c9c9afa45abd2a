//! `--format json`: one JSON object, documented in docs/REPLAY.md. Written
//! by hand, entry by entry (a million-record timeline must not be built as
//! one value in memory first); each timeline entry is on its own line.

use std::io::{self, Write};

use serde_json::{Value, json};

use super::{label, status};
use crate::{
    event::Creds,
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

fn creds(c: &Creds) -> Value {
    json!({"uid": c.uid, "euid": c.euid, "gid": c.gid, "egid": c.egid})
}

fn process(p: &Process, live: bool) -> Value {
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
        "id": p.id,
        "pid": p.pid,
        "ppid": p.ppid,
        "parent": p.parent,
        "children": p.children,
        "session": p.session,
        "origin": origin,
        "origin_seq": origin_seq,
        "start_ns": p.start_ns,
        "end_ns": p.end_ns,
        "comm": p.comm,
        "label": label(p),
        "creds": creds(&p.creds),
        "execs": p.execs.iter().map(|e| json!({
            "seq": e.seq,
            "time_ns": e.time_ns,
            "filename": e.filename,
            "argv": e.argv,
            "argv_truncated": e.argv_truncated,
            "comm": e.comm,
            "creds": creds(&e.creds),
        })).collect::<Vec<_>>(),
        "cred_changes": p.cred_changes.iter().map(|c| json!({
            "seq": c.seq,
            "time_ns": c.time_ns,
            "kind": c.kind,
            "from": creds(&c.from),
            "to": creds(&c.to),
        })).collect::<Vec<_>>(),
        "exit": p.exit.as_ref().map(|e| json!({
            "seq": e.seq,
            "time_ns": e.time_ns,
            "exit_code": e.code,
            "signal": e.signal,
            "core_dumped": e.core_dumped,
        })),
        "end": end,
        "status": status(p, live),
        "threads": p.threads,
        "records": p.records,
        "file_actions": p.file_actions,
        "network_actions": p.network_actions,
        "privilege_actions": p.privilege_actions,
        "failed_actions": p.failed_actions,
        "matched": p.matched,
    })
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
    let mut first = true;
    for p in r.processes.iter().filter(|p| p.shown) {
        if !first {
            out.write_all(b",")?;
        }
        first = false;
        out.write_all(b"\n")?;
        serde_json::to_writer(&mut *out, &process(p, r.live))?;
    }
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
                use std::fmt::Write as _;
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
                line.push_str(ev.raw.as_deref().unwrap_or("null"));
                line.push('}');
            }
        }
    })?;
    out.write_all(b"\n]}\n")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn strings_are_escaped_as_serde_json_escapes_them() {
        let mut all: String = (0u8..0x80).map(char::from).collect();
        all.push_str("é\u{202e}\u{7f}\u{85}😀\"\\end");
        for s in [all.as_str(), "", "plain", "\n", "a\u{1}b"] {
            assert_eq!(super::Str(s).to_string(), serde_json::to_string(s).unwrap());
        }
    }
}
