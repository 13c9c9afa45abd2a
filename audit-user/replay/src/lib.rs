//! Forensic replay of a sandbox-audit log (`sandbox-audit replay`): which
//! process did what, who started it, when, as which user, with what result.
//!
//! A replay [verifies](audit_log::verify) the log exactly as
//! `sandbox-audit verify` does and reads the records ([`source`]) from the
//! lines verify reads (one pass over the files), then rebuilds sessions and
//! the process tree and lays out the timeline with its marks ([`build`]),
//! applies the [`filter`]s and renders
//! ([`render`]) text, JSON (docs/REPLAY.md) or one self-contained HTML page.
//! Records outside what verify vouches for are shown with a mark, never
//! silently; record text is treated as hostile in every format.

pub mod build;
pub mod display;
pub mod error;
pub mod event;
pub mod filter;
pub mod glob;
mod lite;
mod lite_scan;
pub mod model;
pub mod render;
pub mod source;
pub mod time;

use std::{io::IsTerminal, path::PathBuf};

use audit_log::verify;

pub use error::{Error, Result};
pub use filter::Filters;
pub use model::Replay;
pub use render::Format;

/// What to replay and how.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// A log directory or segment files in log order (empty: the default
    /// log directory).
    pub inputs: Vec<PathBuf>,
    /// Text of the trust root (`trust-root.vkey`), as `verify --pubkey`.
    pub pubkey: Option<String>,
    /// Text of an exported checkpoint, as `verify --anchor`.
    pub anchor: Option<String>,
    pub filters: Filters,
    /// Keep each record's stored line (the JSON and HTML formats show it).
    pub keep_records: bool,
    /// Show a progress bar on a terminal for large logs.
    pub progress: bool,
}

/// Logs at least this large get a progress bar (as `verify` does).
const PROGRESS_FROM: u64 = 64 << 20;

/// Verifies, reads, rebuilds and filters the log.
pub fn replay(opts: &Options) -> Result<Replay> {
    // Bad arguments are reported before any work.
    opts.filters.check()?;
    let mut vopts = verify::Options::default();
    if let Some(text) = &opts.pubkey {
        vopts.pubkey = Some(
            verify::parse_pubkey(text).map_err(|e| Error::bad("--pubkey", "", format!("{e:#}")))?,
        );
    }
    if let Some(text) = &opts.anchor {
        verify::parse_anchor(text).map_err(|e| Error::bad("--anchor", "", format!("{e:#}")))?;
        vopts.anchor = Some(text.clone());
    }
    let inputs =
        verify::resolve_inputs(&opts.inputs).map_err(|e| Error::Verify(format!("{e:#}")))?;
    let files = &inputs.files;
    // A store a running sandbox-audit is writing ends in an open session.
    let live = matches!(inputs.writer, audit_log::lockfile::Writer::Live { .. });
    let total: u64 = files
        .iter()
        .map(|f| std::fs::metadata(f).map_or(0, |m| m.len()))
        .sum();
    let bar =
        (opts.progress && std::io::stderr().is_terminal() && total >= PROGRESS_FROM).then(|| {
            let b = indicatif::ProgressBar::new(total);
            b.set_style(
                indicatif::ProgressStyle::with_template(
                    "replay {bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            b
        });
    // Verify reads the files once, for itself and for the replay: each
    // chunk of lines is parsed on its parser threads, and comes back here
    // in log order.
    let keep = opts.keep_records;
    let paths = opts.filters.path.is_some();
    let mut read = source::Read::default();
    let report = verify::verify_inputs_tapped(
        &inputs,
        &vopts,
        &|l| {
            let bytes = (l.lines.len() + l.tail.map_or(0, <[u8]>::len)) as u64;
            (source::parse_lines(l, keep, paths), bytes)
        },
        &mut |(chunk, bytes): (source::Read, u64), before| {
            read.append(chunk, before);
            if let Some(b) = &bar {
                b.inc(bytes);
            }
        },
    );
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    let report = report.map_err(|e| Error::Verify(format!("{e:#}")))?;
    let view = model::VerifyView {
        intact: report.intact(),
        verdicts: report
            .verdicts
            .iter()
            .map(|v| model::VerdictView {
                kind: v.kind.name().to_string(),
                first_seq: v.first_seq,
                last_seq: v.last_seq,
                file: v.file.clone(),
                line: v.line,
                detail: v.detail.clone(),
                count: v.count,
            })
            .collect(),
        notes: report.notes.clone(),
        records: report.summary.records,
        covered: report.summary.covered,
        text: verify::render_text(&report),
    };
    let names: Vec<String> = files
        .iter()
        .map(|f| audit_log::segment::file_name(f))
        .collect();
    let mut built = build::build_read(read, &view, &names, live);
    filter::apply(&mut built, &opts.filters)?;
    Ok(Replay {
        files: names,
        verify: view,
        sessions: built.sessions,
        processes: built.processes,
        events: built.events,
        entries: built.entries,
        filters: opts.filters.clone(),
        live,
    })
}

#[cfg(test)]
mod tests;
