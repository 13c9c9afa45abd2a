//! `--format text`: the verify report, sessions, a pstree-like process
//! tree with argv and exit status, and the timeline, one line per entry.
//! All record text is inert (no terminal escapes reach the screen).

use std::io::{self, Write};

use super::{creds_text, label, status, tree_rows};
use crate::{
    display::inert,
    event::scope_text,
    model::{Entry, Replay, Trust},
    time,
};

pub fn render(r: &Replay, out: &mut dyn Write) -> io::Result<()> {
    writeln!(
        out,
        "sandbox-audit replay: {} record(s) in {} file(s){}",
        r.verify.records,
        r.files.len(),
        if r.live {
            " (the store is being written now)"
        } else {
            ""
        }
    )?;
    writeln!(out, "\n== verify ==")?;
    write!(out, "{}", r.verify.text)?;
    if r.filters.any() {
        writeln!(out, "\n== filters ==")?;
        let f = &r.filters;
        if let Some(t) = f.since_ns {
            writeln!(out, "  since    {}", time::rfc3339(t))?;
        }
        if let Some(t) = f.until_ns {
            writeln!(out, "  until    {}", time::rfc3339(t))?;
        }
        if let Some(s) = &f.sandbox {
            writeln!(out, "  sandbox  {}", inert(s))?;
        }
        if let Some(p) = f.pid {
            writeln!(
                out,
                "  pid      {p}{}",
                if f.descendants {
                    " and its descendants"
                } else {
                    ""
                }
            )?;
        }
        if !f.kinds.is_empty() {
            writeln!(out, "  kind     {}", inert(&f.kinds.join(",")))?;
        }
        if let Some(p) = &f.path {
            writeln!(out, "  path     {}", inert(p))?;
        }
        writeln!(
            out,
            "  (marks of loss, recovery, incomplete sessions and outages are filtered by time and sandbox only; verify marks always show)"
        )?;
    }

    writeln!(out, "\n== sessions ==")?;
    if r.sessions.is_empty() {
        writeln!(out, "  none")?;
    }
    for (i, s) in r.sessions.iter().enumerate() {
        if !s.matched {
            continue;
        }
        let end = match &s.stop {
            Some((seq, _, reason)) => format!("stopped at seq {seq}: {}", inert(reason)),
            None => "NO STOP RECORD (incomplete)".into(),
        };
        writeln!(
            out,
            "  #{} seq {}..{}  {} .. {}  {}  {end}",
            i + 1,
            s.start_seq,
            s.last_seq,
            time::short(s.start_ns),
            time::short(s.last_ns),
            scope_text(&s.scope)
        )?;
    }

    writeln!(out, "\n== process tree ==")?;
    let rows = tree_rows(r);
    if rows.is_empty() {
        writeln!(out, "  none")?;
    }
    for row in &rows {
        let p = &r.processes[row.id];
        writeln!(
            out,
            "{}{}  [pid {}, {}{}]  {}{}",
            row.prefix,
            label(p),
            p.pid,
            creds_text(&p.creds),
            if p.threads > 1 {
                format!(", {} threads", p.threads)
            } else {
                String::new()
            },
            status(p, r.live),
            if p.matched { "" } else { "  (context)" }
        )?;
        let more = |out: &mut dyn Write, text: String| writeln!(out, "{}    {text}", row.cont);
        if p.execs.len() > 1 {
            for e in &p.execs[..p.execs.len() - 1] {
                more(
                    out,
                    format!(
                        "exec'd before, at seq {}: {}",
                        e.seq,
                        crate::display::command_line(&e.argv)
                    ),
                )?;
            }
        }
        for c in &p.cred_changes {
            more(
                out,
                format!(
                    "ids changed at seq {} ({}): {} -> {}",
                    c.seq,
                    inert(&c.kind),
                    creds_text(&c.from),
                    creds_text(&c.to)
                ),
            )?;
        }
        if p.file_actions + p.network_actions + p.privilege_actions > 0 {
            more(
                out,
                format!(
                    "actions: {} file, {} network, {} privilege ({} failed)",
                    p.file_actions, p.network_actions, p.privilege_actions, p.failed_actions
                ),
            )?;
        }
    }

    writeln!(out, "\n== timeline ==")?;
    writeln!(
        out,
        "  (flag: ' ' signed checkpoint covers it, '~' hash chain only, '!' UNVERIFIED; '!!!' marks)"
    )?;
    super::par_render(&r.entries, out, |_, e, out| {
        use std::fmt::Write as _;
        match e {
            Entry::Mark(m) => {
                let _ = writeln!(out, "!!! {}", m.detail);
            }
            Entry::Record { event, trust, .. } => {
                let ev = &r.events[*event];
                let flag = match trust {
                    Trust::Signed => ' ',
                    Trust::Unsigned => '~',
                    Trust::Unverified(_) => '!',
                };
                let (pid, comm) = ev
                    .actor
                    .as_ref()
                    .map_or((String::new(), String::new()), |a| {
                        (a.pid.to_string(), inert(&a.comm))
                    });
                let _ = writeln!(
                    out,
                    "{}{flag}{:>8} {} {:>7} {:<15} {}  #{}",
                    if ev.mark.is_some() { "!!!" } else { "   " },
                    ev.seq,
                    time::Short(ev.time_ns),
                    pid,
                    comm,
                    ev.summary(),
                    inert(ev.hash.get(..12).unwrap_or(ev.hash.as_str()))
                );
            }
        }
    })?;
    Ok(())
}
