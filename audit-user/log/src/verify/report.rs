//! Rendering a verification report: a human summary or verdict table, and
//! the same as one JSON object (`--json`) for scripts and SIEMs.

use serde_json::{Value, json};

use super::{Incomplete, Report, Summary};

/// ISO 8601 UTC with ms, from ns since the Unix epoch (no date crate needed:
/// Howard Hinnant's days-to-civil algorithm).
pub fn utc(ns: u64) -> String {
    let secs = ns / 1_000_000_000;
    let ms = (ns / 1_000_000) % 1000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{ms:03}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

fn span(s: &Summary) -> String {
    match (s.first_time_ns, s.last_time_ns) {
        (Some(a), Some(b)) => {
            let secs = b.saturating_sub(a) / 1_000_000_000;
            format!(
                "{} .. {} ({}h {:02}m {:02}s)",
                utc(a),
                utc(b),
                secs / 3600,
                (secs / 60) % 60,
                secs % 60
            )
        }
        _ => "no records".into(),
    }
}

/// "seq 0..N-1" for N records (never backwards).
fn seqs(records: u64) -> String {
    match records {
        0 => "none".into(),
        1 => "seq 0".into(),
        n => format!("seq 0..{}", n - 1),
    }
}

fn incomplete_text(i: &Incomplete) -> String {
    let mut out = format!(
        "  incomplete:   THE RECORD STOPS EARLY after seq {} ({}): the session opened at seq {} ({}) has no `stop` and no later `recovery`, and no sandbox-audit is writing the store; events after {} are not in this log\n",
        i.last_seq,
        utc(i.last_time_ns),
        i.session_seq,
        utc(i.session_time_ns),
        utc(i.last_time_ns)
    );
    match &i.reason {
        Some(why) => out += &format!("  reason:       the store stopped on an error: {why}\n"),
        None => {
            out += "  reason:       not recorded (the recorder was killed, crashed, or could not write any more)\n"
        }
    }
    if let Some(t) = &i.unfinished {
        out += &format!(
            "  unfinished:   {} bytes of an unfinished write at offset {} of {} (not a record)\n",
            t.length, t.offset, t.file
        );
    }
    out
}

fn incomplete_json(i: &Incomplete) -> Value {
    json!({
        "session_seq": i.session_seq,
        "session_time_ns": i.session_time_ns,
        "last_seq": i.last_seq,
        "last_time_ns": i.last_time_ns,
        "reason": i.reason,
        "unfinished": i.unfinished.as_ref().map(|t| json!({
            "file": t.file,
            "offset": t.offset,
            "length": t.length,
        })),
    })
}

pub fn render_text(r: &Report) -> String {
    let s = &r.summary;
    let mut out = String::new();
    if r.intact() {
        let head = if s.incomplete.is_some() {
            "INCOMPLETE"
        } else {
            "INTACT"
        };
        out += &format!(
            "{head}: {} records ({}), {}\n",
            s.records,
            seqs(s.records),
            span(s)
        );
        if let Some(i) = &s.incomplete {
            out += &incomplete_text(i);
        }
        out += &format!("  log:          {}\n", s.origin.as_deref().unwrap_or("?"));
        out += &format!(
            "  epochs:       {} (each checkpoint checked against its own epoch's key); checkpoints: {}\n",
            s.epochs, s.checkpoints
        );
        out += &format!(
            "  sessions:     {}; crash recoveries: {} ({} torn range(s) accounted for)\n",
            s.sessions, s.recoveries, s.torn_recovered
        );
        if let Some((seq, gap)) = s.longest_gap {
            out += &format!(
                "  gaps:         nothing was recorded for up to {:.3} s before a restart (longest: the recovery at seq {seq})\n",
                gap as f64 / 1e9
            );
        }
        out += &format!(
            "  loss:         {} loss record(s), {} event(s) the kernel could not deliver\n",
            s.loss_records, s.lost_events
        );
        if s.protection_refusals > 0 {
            out += &format!(
                "  protection:   the filesystem refused append-only/immutable {} time(s) (see `protection` records)\n",
                s.protection_refusals
            );
        }
        if s.unencodable > 0 {
            out += &format!(
                "  unencodable:  {} record(s) stored as text\n",
                s.unencodable
            );
        }
        out += if s.trust_root_checked {
            "  trust root:   genesis key matches --pubkey\n"
        } else {
            "  trust root:   NOT checked: pass --pubkey with the exported trust-root.vkey, or a log replaced wholesale would verify too\n"
        };
        out += &match s.anchor {
            Some(n) => format!("  anchor:       the log holds the anchored checkpoint (size {n}) unchanged\n"),
            None => "  anchor:       none: a tail truncated after the last exported checkpoint cannot be detected without one (--anchor)\n".into(),
        };
        let unsigned = s.records.saturating_sub(s.covered);
        if unsigned > 0 {
            out += &format!(
                "  unsigned:     the last {unsigned} record(s) are after the last checkpoint: covered by the hash chain only\n"
            );
        }
    } else {
        out += &format!(
            "TAMPERED: {} finding(s) in {} records\n",
            r.verdicts.len(),
            s.records
        );
        for v in &r.verdicts {
            let seqs = if v.first_seq >= v.last_seq {
                format!("seq {}", v.first_seq)
            } else {
                format!("seq {}..{}", v.first_seq, v.last_seq)
            };
            let at = if v.line > 0 {
                format!("{}:{}", v.file, v.line)
            } else {
                v.file.clone()
            };
            let more = if v.count > 1 {
                format!(" (+{} more like it)", v.count - 1)
            } else {
                String::new()
            };
            out += &format!(
                "  {:<24} {:<22} {}  {}{}\n",
                v.kind.name(),
                seqs,
                at,
                v.detail,
                more
            );
        }
    }
    for n in &r.notes {
        out += &format!("  note: {n}\n");
    }
    out
}

pub fn render_json(r: &Report) -> Value {
    let s = &r.summary;
    json!({
        "status": r.status().name(),
        "intact": r.intact(),
        "incomplete": s.incomplete.as_ref().map(incomplete_json),
        "verdicts": r.verdicts.iter().map(|v| json!({
            "kind": v.kind.name(),
            "first_seq": v.first_seq,
            "last_seq": v.last_seq,
            "file": v.file,
            "line": v.line,
            "detail": v.detail,
            "count": v.count,
        })).collect::<Vec<_>>(),
        "summary": {
            "records": s.records,
            "covered_by_checkpoint": s.covered,
            "first_time_ns": s.first_time_ns,
            "last_time_ns": s.last_time_ns,
            "epochs": s.epochs,
            "checkpoints": s.checkpoints,
            "sessions": s.sessions,
            "recoveries": s.recoveries,
            "torn_recovered": s.torn_recovered,
            "longest_gap_ns": s.longest_gap.map(|(_, g)| g),
            "longest_gap_seq": s.longest_gap.map(|(q, _)| q),
            "loss_records": s.loss_records,
            "lost_events": s.lost_events,
            "protection_refusals": s.protection_refusals,
            "unencodable_records": s.unencodable,
            "origin": s.origin,
            "trust_root_checked": s.trust_root_checked,
            "anchor_size": s.anchor,
        },
        "notes": r.notes,
        "files": r.files,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_formats_known_instants() {
        assert_eq!(utc(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(utc(951_782_400_123_000_000), "2000-02-29T00:00:00.123Z");
        assert_eq!(utc(1_764_087_927_000_000_000), "2025-11-25T16:25:27.000Z");
    }
}
