//! `--format html`: one self-contained page. Everything is inline; a
//! Content-Security-Policy forbids every network load and every script but
//! the page's own (by hash), so even a record that slipped past escaping
//! could neither run code nor phone home. All record text is escaped, and
//! only ever placed in text (never in attributes).

use std::io::{self, Write};

use base64::Engine as _;
use sha2::{Digest, Sha256};

use super::{creds_text, label, status, tree_rows};
use crate::{
    display::{command_line, inert, inert_cow},
    event::scope_text,
    model::{Entry, Replay, Trust},
    time,
};

/// Escapes text for HTML content and (double- or single-quoted) attributes.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 16);
    esc_into(&mut o, s);
    o
}

/// [`esc`], appended to `o`. The escaped characters are ASCII, so the runs
/// between them are cut on character boundaries and copied whole (char by
/// char was a fifth of a big report's time).
fn esc_into(o: &mut String, s: &str) {
    let mut start = 0;
    for (i, b) in s.bytes().enumerate() {
        let rep = match b {
            b'&' => "&amp;",
            b'<' => "&lt;",
            b'>' => "&gt;",
            b'"' => "&quot;",
            b'\'' => "&#39;",
            _ => continue,
        };
        o.push_str(&s[start..i]);
        o.push_str(rep);
        start = i + 1;
    }
    o.push_str(&s[start..]);
}

const STYLE: &str = r#"
body{font:14px/1.4 system-ui,sans-serif;margin:1em 2em;color:#111;background:#fff}
h1{font-size:1.4em;margin:.2em 0}h2{font-size:1.15em;margin:1.2em 0 .4em}
code,pre,.mono{font-family:ui-monospace,monospace;font-size:12px}
#verdict{padding:.6em 1em;border-radius:6px;border:2px solid}
#verdict.intact{background:#eaf7ea;border-color:#2a7a2a}
#verdict.tampered{background:#fdeaea;border-color:#b00}
#verdict h2{margin:.1em 0}
table{border-collapse:collapse;width:100%}
td,th{border-bottom:1px solid #ddd;padding:2px 6px;text-align:left;vertical-align:top}
th{background:#f4f4f4;position:sticky;top:0}
.tree div{white-space:pre;font-family:ui-monospace,monospace;font-size:12px}
.tree a{cursor:pointer;text-decoration:none;color:#0645ad}
.ctx{color:#888}
.t-unsigned td:first-child{border-left:4px solid #d90}
.t-unverified{background:#fdeaea}.t-unverified td:first-child{border-left:4px solid #b00}
tr.mark td{background:#fff3cd;font-weight:bold}
tr.m-unverified td,tr.m-unreadable td{background:#f8c8c8}
.hash{color:#555;word-break:break-all}
.failed{color:#b00}
#controls{position:sticky;top:0;background:#fff;padding:.4em 0;z-index:1}
#controls label{margin-right:.8em}
details pre{white-space:pre-wrap;word-break:break-all;margin:.2em 0}
.hidden{display:none}
"#;

const SCRIPT: &str = r#"
(function(){
var q=document.getElementById('q'),tr=document.getElementById('trust'),
 cats=document.querySelectorAll('input.cat'),pf=document.getElementById('procfilter'),
 desc=document.getElementById('desc'),count=document.getElementById('count');
var rows=document.querySelectorAll('#tl tbody tr');
var parent={};
document.querySelectorAll('.tree div[data-proc]').forEach(function(d){
 parent[d.dataset.proc]=d.dataset.parent||'';});
var proc=null;
function inProc(p){
 if(proc===null)return true;
 while(p){if(p===proc)return true;if(!desc.checked)return false;p=parent[p];}
 return false;}
function apply(){
 var text=q.value.toLowerCase(),t=tr.value,on={},shown=0;
 cats.forEach(function(c){on[c.value]=c.checked;});
 rows.forEach(function(r){
  var ok;
  if(r.classList.contains('mark')){ok=true;}
  else{
   ok=on[r.dataset.cat]!==false&&(t==='all'||r.dataset.trust===t||(t==='not-signed'&&r.dataset.trust!=='signed'))
    &&inProc(r.dataset.proc)&&(!text||r.textContent.toLowerCase().indexOf(text)>=0);
  }
  r.classList.toggle('hidden',!ok);if(ok)shown++;});
 count.textContent=shown+' of '+rows.length+' shown';
 pf.textContent=proc===null?'':'process #'+proc+' ';
 document.getElementById('clearproc').classList.toggle('hidden',proc===null);}
q.addEventListener('input',apply);tr.addEventListener('change',apply);desc.addEventListener('change',apply);
cats.forEach(function(c){c.addEventListener('change',apply);});
document.querySelectorAll('.tree a[data-proc]').forEach(function(a){
 a.addEventListener('click',function(e){e.preventDefault();proc=a.dataset.proc;apply();
  document.getElementById('timeline').scrollIntoView();});});
document.getElementById('clearproc').addEventListener('click',function(e){e.preventDefault();proc=null;apply();});
apply();
})();
"#;

pub fn render(r: &Replay, out: &mut dyn Write) -> io::Result<()> {
    let script_hash = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(SCRIPT));
    write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; script-src 'sha256-{script_hash}'; img-src data:; form-action 'none'; base-uri 'none'\">\n\
         <meta name=\"referrer\" content=\"no-referrer\">\n\
         <title>sandbox-audit replay</title><style>{STYLE}</style></head><body>\n"
    )?;
    writeln!(
        out,
        "<h1>sandbox-audit replay</h1><p>{} record(s) in {} file(s): {}{}</p>",
        r.verify.records,
        r.files.len(),
        esc(&r.files.join(", ")),
        if r.live {
            " — the store is being written now"
        } else {
            ""
        }
    )?;

    // The verdict, on top.
    let v = &r.verify;
    writeln!(
        out,
        "<section id=\"verdict\" class=\"{}\"><h2 id=\"verdict-title\">Verify: {}</h2>",
        if v.intact { "intact" } else { "tampered" },
        if v.intact {
            "INTACT".to_string()
        } else {
            format!("TAMPERED — {} finding(s)", v.verdicts.len())
        }
    )?;
    if !v.verdicts.is_empty() {
        writeln!(
            out,
            "<table><thead><tr><th>verdict</th><th>seqs</th><th>where</th><th>detail</th></tr></thead><tbody>"
        )?;
        for (i, d) in v.verdicts.iter().enumerate() {
            writeln!(
                out,
                "<tr class=\"verdict\" id=\"verdict-{i}\"><td>{}</td><td><a href=\"#seq-{}\">{}..{}</a></td><td>{}:{}</td><td>{}</td></tr>",
                esc(&d.kind),
                d.first_seq,
                d.first_seq,
                d.last_seq,
                esc(&d.file),
                d.line,
                esc(&inert(&d.detail))
            )?;
        }
        writeln!(out, "</tbody></table>")?;
    }
    if v.covered < v.records {
        writeln!(
            out,
            "<p>Records from seq {} on are after the last valid checkpoint: covered by the hash chain only (marked <b>unsigned</b>).</p>",
            v.covered
        )?;
    }
    writeln!(
        out,
        "<details><summary>verify report</summary><pre>{}</pre></details></section>",
        esc(&inert_lines(&v.text))
    )?;

    // Filters given on the command line.
    if r.filters.any() {
        let f = &r.filters;
        let mut parts = Vec::new();
        if let Some(t) = f.since_ns {
            parts.push(format!("since {}", time::rfc3339(t)));
        }
        if let Some(t) = f.until_ns {
            parts.push(format!("until {}", time::rfc3339(t)));
        }
        if let Some(s) = &f.sandbox {
            parts.push(format!("sandbox {}", inert(s)));
        }
        if let Some(p) = f.pid {
            parts.push(format!(
                "pid {p}{}",
                if f.descendants {
                    " and descendants"
                } else {
                    ""
                }
            ));
        }
        if !f.kinds.is_empty() {
            parts.push(format!("kind {}", inert(&f.kinds.join(","))));
        }
        if let Some(p) = &f.path {
            parts.push(format!("path {}", inert(p)));
        }
        writeln!(
            out,
            "<p id=\"filters\"><b>Filtered:</b> {} (marks are filtered by time and sandbox only)</p>",
            esc(&parts.join("; "))
        )?;
    }

    // Sessions.
    writeln!(
        out,
        "<h2>Sessions</h2><table id=\"sessions\"><thead><tr><th>#</th><th>seqs</th><th>from</th><th>to</th><th>scope</th><th>end</th></tr></thead><tbody>"
    )?;
    for (i, s) in r.sessions.iter().enumerate().filter(|(_, s)| s.matched) {
        let end = match &s.stop {
            Some((seq, _, reason)) => format!("stopped at seq {seq}: {}", inert(reason)),
            None => "NO STOP RECORD (incomplete)".into(),
        };
        writeln!(
            out,
            "<tr><td>{}</td><td><a href=\"#seq-{}\">{}</a>..{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            i + 1,
            s.start_seq,
            s.start_seq,
            s.last_seq,
            time::short(s.start_ns),
            time::short(s.last_ns),
            esc(&scope_text(&s.scope)),
            esc(&end)
        )?;
    }
    writeln!(out, "</tbody></table>")?;

    // The process tree: flat rows with pstree drawing (no nesting: a
    // hostile fork chain must not nest the DOM thousands deep).
    writeln!(
        out,
        "<h2>Process tree</h2><p>Click a process to show only its records in the timeline.</p><div class=\"tree\" id=\"tree\">"
    )?;
    for row in tree_rows(r) {
        let p = &r.processes[row.id];
        let extra = if p.execs.len() > 1 {
            format!(
                " (exec'd {} times; before: {})",
                p.execs.len(),
                p.execs[..p.execs.len() - 1]
                    .iter()
                    .map(|e| command_line(&e.argv))
                    .collect::<Vec<_>>()
                    .join(" ⇒ ")
            )
        } else {
            String::new()
        };
        let ids = if p.cred_changes.is_empty() {
            String::new()
        } else {
            format!(" ids → {}", creds_text(&p.last_creds()))
        };
        writeln!(
            out,
            "<div data-proc=\"{}\" data-parent=\"{}\" class=\"{}\">{}<a href=\"#\" data-proc=\"{}\">{}</a>  [pid {}, {}]{}  <b>{}</b>{}{}</div>",
            p.id,
            p.parent.map_or(String::new(), |x| x.to_string()),
            if p.matched { "proc" } else { "proc ctx" },
            esc(&row.prefix),
            p.id,
            esc(&label(p)),
            p.pid,
            esc(&creds_text(&p.creds)),
            esc(&ids),
            esc(&status(p, r.live)),
            esc(&extra),
            if p.matched { "" } else { " (context)" }
        )?;
    }
    writeln!(out, "</div>")?;

    // The timeline.
    writeln!(
        out,
        "<h2 id=\"timeline\">Timeline</h2><div id=\"controls\">"
    )?;
    writeln!(
        out,
        "<input id=\"q\" type=\"search\" placeholder=\"search (argv, path, hash, seq…)\" size=\"40\"> "
    )?;
    for c in crate::event::Category::ALL {
        writeln!(
            out,
            "<label><input type=\"checkbox\" class=\"cat\" value=\"{0}\" checked>{0}</label>",
            c.name()
        )?;
    }
    writeln!(
        out,
        "<select id=\"trust\"><option value=\"all\">all records</option><option value=\"not-signed\">not signed or unverified</option><option value=\"unverified\">unverified only</option></select> \
         <span id=\"procfilter\"></span><a href=\"#\" id=\"clearproc\" class=\"hidden\">[all processes]</a> \
         <label><input type=\"checkbox\" id=\"desc\" checked>with descendants</label> <span id=\"count\"></span></div>"
    )?;
    writeln!(
        out,
        "<table id=\"tl\"><thead><tr><th>seq</th><th>time (UTC)</th><th>pid</th><th>comm</th><th>kind</th><th>what</th><th>hash</th></tr></thead><tbody>"
    )?;
    // Rendered in parallel blocks, written in order (as the other formats).
    super::par_render(&r.entries, out, |_, e, out| {
        use std::fmt::Write as _;
        match e {
            Entry::Mark(m) => {
                let anchor = m.seq.map_or(String::new(), |s| {
                    format!(" <a href=\"#seq-{s}\">seq {s}</a>")
                });
                let _ = writeln!(
                    out,
                    "<tr class=\"mark m-{}\"><td colspan=\"7\">{}{}</td></tr>",
                    m.kind.name(),
                    esc(&m.detail),
                    anchor
                );
            }
            Entry::Record {
                event,
                process,
                trust,
                ..
            } => {
                let ev = &r.events[*event];
                let (pid, comm) = ev
                    .actor
                    .as_ref()
                    .map_or((String::new(), String::new()), |a| {
                        (a.pid.to_string(), inert(&a.comm))
                    });
                let trust_note = match trust {
                    Trust::Unverified(i) => format!(
                        " <a href=\"#verdict-{i}\" class=\"failed\">[UNVERIFIED: {}]</a>",
                        esc(&r.verify.verdicts[*i].kind)
                    ),
                    Trust::Unsigned => {
                        " <span title=\"after the last valid checkpoint\">[unsigned]</span>".into()
                    }
                    Trust::Signed => String::new(),
                };
                let _ = write!(
                    out,
                    "<tr id=\"seq-{seq}\" class=\"{cls}t-{t}\" data-cat=\"{cat}\" data-trust=\"{t}\" data-proc=\"{proc_}\"><td><a href=\"#seq-{seq}\">{seq}</a></td><td class=\"mono\">{time}</td><td>{pid}</td><td>{comm}</td><td>{kind}</td><td class=\"{failed}\">{what}{trust_note}",
                    seq = ev.seq,
                    cls = if ev.mark.is_some() { "mark " } else { "" },
                    t = trust.name(),
                    cat = ev.category.name(),
                    proc_ = process.map_or(String::new(), |p| p.to_string()),
                    time = time::short(ev.time_ns),
                    pid = pid,
                    comm = esc(&comm),
                    kind = esc(&inert(&ev.kind)),
                    failed = if ev.failed { "failed" } else { "" },
                    what = esc(&ev.summary()),
                );
                // The stored line is most of the page: escaped straight
                // into the block, not through copies of it.
                if let Some(raw) = &ev.raw {
                    out.push_str("<details><summary>record</summary><pre>");
                    esc_into(out, &inert_cow(raw.as_str()));
                    out.push_str("</pre></details>");
                }
                let _ = writeln!(
                    out,
                    "</td><td class=\"hash mono\">{}</td></tr>",
                    esc(&inert(&ev.hash))
                );
            }
        }
    })?;
    writeln!(out, "</tbody></table>")?;
    writeln!(out, "<script>{SCRIPT}</script></body></html>")?;
    Ok(())
}

/// Text that is already inert per line (verify's report), keeping newlines.
fn inert_lines(s: &str) -> String {
    s.lines().map(inert).collect::<Vec<_>>().join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_everything_html_cares_about() {
        assert_eq!(
            esc("<script>alert('x')</script> & \"q\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;"
        );
    }
}
