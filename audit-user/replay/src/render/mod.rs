//! The three output formats, and what they share: how a process is named,
//! how it ended, and the process tree laid out without recursion.

pub mod html;
pub mod json;
pub mod text;

use std::io::{self, Write};

use crate::{
    display::{command_line, inert},
    event::{Creds, exit_text},
    model::{End, Origin, Process, Replay},
};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Format {
    #[default]
    Text,
    Json,
    Html,
}

impl Format {
    pub fn parse(s: &str) -> Option<Format> {
        match s {
            "text" => Some(Format::Text),
            "json" => Some(Format::Json),
            "html" => Some(Format::Html),
            _ => None,
        }
    }

    /// Whether the format shows each record's stored line.
    pub fn shows_records(self) -> bool {
        !matches!(self, Format::Text)
    }
}

pub fn render(r: &Replay, f: Format, out: &mut dyn Write) -> io::Result<()> {
    match f {
        Format::Text => text::render(r, out),
        Format::Json => json::render(r, out),
        Format::Html => html::render(r, out),
    }
}

/// Timelines at least this long show a progress line while written.
const PROGRESS_FROM: usize = 100_000;

/// [`render`] through a 1 MiB buffer, then flushed; with `progress`, a long
/// timeline shows the bytes written so far on stderr when that is a
/// terminal (never in a pipe or a test's captured output).
pub fn write_to(r: &Replay, f: Format, out: &mut dyn Write, progress: bool) -> io::Result<()> {
    use std::io::IsTerminal;
    let bar =
        (progress && r.entries.len() >= PROGRESS_FROM && io::stderr().is_terminal()).then(|| {
            let b = indicatif::ProgressBar::new_spinner();
            b.set_style(
                indicatif::ProgressStyle::with_template(
                    "replay: writing {spinner} {bytes} {bytes_per_sec}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
            );
            b
        });
    let mut counted = Counted {
        inner: out,
        bar: bar.as_ref(),
    };
    let mut buf = io::BufWriter::with_capacity(1 << 20, &mut counted);
    let result = render(r, f, &mut buf).and_then(|()| buf.flush());
    drop(buf);
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    result
}

/// Counts what goes through it into the progress bar.
struct Counted<'a> {
    inner: &'a mut dyn Write,
    bar: Option<&'a indicatif::ProgressBar>,
}

impl Write for Counted<'_> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(data)?;
        if let Some(b) = self.bar {
            b.inc(n as u64);
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Renders `entries` (timeline entries, processes) in parallel blocks
/// (summaries are made from the stored lines here, which is most of the
/// work), written in order. `f(index, entry, buffer)` appends one entry.
///
/// The workers render ahead while the calling thread writes the blocks
/// already done: writing a gigabyte of JSON is a second of the kernel's
/// time, which left the other core idle when rendering waited for it.
/// Memory stays a few blocks per worker (the hand-over channel is bounded
/// and the buffers are reused: fresh ones would be fresh pages, faulted in
/// and zeroed, for every block of the output).
pub fn par_render<T: Sync>(
    entries: &[T],
    out: &mut dyn Write,
    f: impl Fn(usize, &T, &mut String) + Sync,
) -> io::Result<()> {
    use std::{
        collections::BTreeMap,
        sync::{
            Mutex,
            atomic::{AtomicBool, AtomicUsize, Ordering},
            mpsc,
        },
    };
    const BLOCK: usize = 8192;
    let blocks = entries.len().div_ceil(BLOCK);
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(8)
        .min(blocks);
    if workers <= 1 {
        let mut buf = String::new();
        for (b, block) in entries.chunks(BLOCK).enumerate() {
            buf.clear();
            for (j, e) in block.iter().enumerate() {
                f(b * BLOCK + j, e, &mut buf);
            }
            out.write_all(buf.as_bytes())?;
        }
        return Ok(());
    }
    let f = &f;
    let next = AtomicUsize::new(0);
    // Set when the writer gives up (a write failed): the workers stop.
    let stop = AtomicBool::new(false);
    let spare: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let (next, stop, spare) = (&next, &stop, &spare);
    std::thread::scope(|s| {
        let (tx, rx) = mpsc::sync_channel::<(usize, String)>(workers * 2);
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                let tx = tx.clone();
                s.spawn(move || {
                    loop {
                        let b = next.fetch_add(1, Ordering::Relaxed);
                        if b >= blocks || stop.load(Ordering::Relaxed) {
                            return;
                        }
                        let mut buf = spare
                            .lock()
                            .ok()
                            .and_then(|mut v| v.pop())
                            .unwrap_or_default();
                        buf.clear();
                        let from = b * BLOCK;
                        for (j, e) in entries[from..(from + BLOCK).min(entries.len())]
                            .iter()
                            .enumerate()
                        {
                            f(from + j, e, &mut buf);
                        }
                        if tx.send((b, buf)).is_err() {
                            return;
                        }
                    }
                })
            })
            .collect();
        drop(tx);
        // Blocks come back slightly out of order: each waits for its turn.
        let mut ready: BTreeMap<usize, String> = BTreeMap::new();
        let mut want = 0usize;
        let mut result = Ok(());
        for (b, buf) in rx.iter() {
            ready.insert(b, buf);
            while let Some(buf) = ready.remove(&want) {
                if result.is_ok() {
                    result = out.write_all(buf.as_bytes());
                }
                if result.is_err() {
                    stop.store(true, Ordering::Relaxed);
                }
                if let Ok(mut v) = spare.lock() {
                    v.push(buf);
                }
                want += 1;
            }
        }
        // A worker that panicked left its block out.
        let all_joined = handles.into_iter().all(|h| h.join().is_ok());
        result?;
        if !all_joined || want != blocks {
            return Err(io::Error::other("internal error while rendering"));
        }
        Ok(())
    })
}

/// What the process runs: its last exec's command line, or for a process
/// that never exec'd, `(fork of COMM)` / `(COMM)`. Made inert.
pub fn label(p: &Process) -> String {
    match p.argv() {
        Some(argv) if !argv.is_empty() => command_line(argv),
        Some(_) => format!(
            "({})",
            inert(&p.execs.last().map_or(String::new(), |e| e.filename.clone()))
        ),
        None => match p.origin {
            Origin::Forked(_) => format!("(fork of {})", inert(&p.comm)),
            Origin::FirstSeen(_) => format!("({})", inert(&p.comm)),
        },
    }
}

/// How it ended: `status 3`, `killed by SIGKILL`, or why no exit is known.
pub fn status(p: &Process, live: bool) -> String {
    if let Some(e) = &p.exit {
        return exit_text(e.code, e.signal, e.core_dumped);
    }
    match p.end {
        End::Exited => "exited".into(),
        End::SessionEnded => "no exit recorded (the session ended first)".into(),
        End::PidReused => "no exit recorded (its pid was reused: exit lost)".into(),
        End::Running if live => "still running".into(),
        End::Running => "no exit recorded before the log ends".into(),
    }
}

pub fn creds_text(c: &Creds) -> String {
    let mut s = format!("uid {}", c.uid);
    if c.euid != c.uid {
        s += &format!(" euid {}", c.euid);
    }
    s += &format!(" gid {}", c.gid);
    if c.egid != c.gid {
        s += &format!(" egid {}", c.egid);
    }
    s
}

/// One line of the process tree.
pub struct TreeRow {
    pub id: usize,
    pub depth: usize,
    /// pstree-style drawing before the label (`│  ├─ `).
    pub prefix: String,
    /// The drawing for lines that continue this process (`│  │  `).
    pub cont: String,
}

/// Deeper than this, the drawing is replaced by the depth (a hostile fork
/// chain must not make the output quadratic).
const MAX_DRAWN_DEPTH: usize = 40;

pub fn tree_rows(r: &Replay) -> Vec<TreeRow> {
    let mut rows = Vec::new();
    // (id, depth, continuation of the parent, last among siblings)
    let roots = r.roots();
    let mut stack: Vec<(usize, usize, String, bool)> = roots
        .iter()
        .enumerate()
        .rev()
        .map(|(i, &id)| (id, 0, String::new(), i + 1 == roots.len()))
        .collect();
    while let Some((id, depth, parent_cont, last)) = stack.pop() {
        let (prefix, cont) = if depth == 0 {
            (String::new(), String::new())
        } else if depth > MAX_DRAWN_DEPTH {
            (
                format!("[depth {depth}] └─ "),
                format!("[depth {depth}]    "),
            )
        } else {
            (
                format!("{parent_cont}{}", if last { "└─ " } else { "├─ " }),
                format!("{parent_cont}{}", if last { "   " } else { "│  " }),
            )
        };
        let kids: Vec<usize> = r.processes[id]
            .children
            .iter()
            .copied()
            .filter(|&c| r.processes[c].shown)
            .collect();
        for (i, &c) in kids.iter().enumerate().rev() {
            stack.push((c, depth + 1, cont.clone(), i + 1 == kids.len()));
        }
        rows.push(TreeRow {
            id,
            depth,
            prefix,
            cont,
        });
    }
    rows
}
