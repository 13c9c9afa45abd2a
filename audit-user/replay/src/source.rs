//! Reads the records verify reads: verify hands each chunk of whole lines
//! it read to [`parse_lines`] on its own parser threads (JSON parsing is
//! most of a replay's own cost), so the files are read and split once; the
//! chunks come back in log order, and so do the items.

use std::sync::Arc;

use audit_log::verify::Lines;
use serde_json::Value;

use crate::event::{self, Event, Json, Raw};

/// One line (or torn tail) of the input.
#[derive(Debug)]
// Events are nearly every item: boxing each was an allocation per record.
#[allow(clippy::large_enum_variant)]
pub enum Item {
    Event(Event),
    Unreadable(Unreadable),
}

/// Not a record: the line's place and why.
#[derive(Debug)]
pub struct Unreadable {
    pub file: u32,
    pub line: u64,
    pub why: String,
    /// The start of the line, lossily decoded (for a human to look at).
    pub excerpt: String,
}

/// The input as read: the records in log order, and the lines that are
/// not records, each with the number of records before it. (Events stay
/// in the vector they are read into: the replay's timeline refers to them
/// there, so a million records are not moved once more.)
#[derive(Debug, Default)]
pub struct Read {
    pub events: Vec<Event>,
    pub unreadable: Vec<(usize, Unreadable)>,
}

impl Read {
    pub fn push(&mut self, item: Item) {
        match item {
            Item::Event(ev) => self.events.push(ev),
            Item::Unreadable(u) => self.unreadable.push((self.events.len(), u)),
        }
    }

    /// Appends a chunk read after this, whose lines are numbered from 1
    /// with `before` lines of the same file before it.
    pub fn append(&mut self, mut chunk: Read, before: u64) {
        for ev in &mut chunk.events {
            ev.line += before;
        }
        let n = self.events.len();
        self.unreadable
            .extend(chunk.unreadable.into_iter().map(|(at, mut u)| {
                u.line += before;
                (at + n, u)
            }));
        self.events.append(&mut chunk.events);
    }
}

impl From<Vec<Item>> for Read {
    fn from(items: Vec<Item>) -> Read {
        let mut r = Read::default();
        for item in items {
            r.push(item);
        }
        r
    }
}

/// How many bytes of an unreadable line to show.
const EXCERPT: usize = 160;

fn unreadable(file: u32, line: u64, why: impl Into<String>, bytes: &[u8]) -> Item {
    let cut = &bytes[..bytes.len().min(EXCERPT)];
    let mut excerpt = String::from_utf8_lossy(cut).into_owned();
    if bytes.len() > EXCERPT {
        excerpt.push('…');
    }
    Item::Unreadable(Unreadable {
        file,
        line,
        why: why.into(),
        excerpt,
    })
}

/// Parses one line; a kept stored line is a copy of it.
pub fn parse_line(file: u32, line_no: u64, line: &[u8], keep_raw: bool) -> Item {
    parse_line_in(file, line_no, line, keep_raw, true, &mut || Raw::copy(line))
}

/// [`parse_line`], with `raw` giving the stored line when it is kept; the
/// fast path collects the paths only when `paths` (a `--path` filter).
fn parse_line_in(
    file: u32,
    line_no: u64,
    line: &[u8],
    keep_raw: bool,
    paths: bool,
    raw: &mut dyn FnMut() -> Option<Raw>,
) -> Item {
    // A fast-path record without a summary gets it from its line at
    // render time, so that line is kept even when the format does not
    // show it.
    if let Some(mut ev) = crate::lite::parse(line, paths) {
        ev.file = file;
        ev.line = line_no;
        if !keep_raw && !ev.summary.is_empty() {
            return Item::Event(ev);
        }
        // The parse accepted the line, so it is UTF-8.
        ev.raw = raw();
        if ev.raw.is_some() {
            return Item::Event(ev);
        }
    }
    let json: Json = match serde_json::from_slice(line) {
        Ok(Value::Object(m)) => m,
        Ok(_) => return unreadable(file, line_no, "not a JSON object", line),
        Err(e) => return unreadable(file, line_no, format!("not JSON: {e}"), line),
    };
    let seq = json.get("seq").and_then(Value::as_u64);
    let time = json.get("time_ns").and_then(Value::as_u64);
    let kind = json.get("kind").and_then(Value::as_str);
    let hash = json.get("hash").and_then(Value::as_str);
    let (Some(seq), Some(time_ns), Some(kind), Some(hash)) = (seq, time, kind, hash) else {
        return unreadable(
            file,
            line_no,
            "not a record: seq, time_ns, kind or hash missing or of the wrong type",
            line,
        );
    };
    let mut ev = event::from_json(&json, seq, hash, time_ns, kind.to_string());
    ev.file = file;
    ev.line = line_no;
    if keep_raw {
        // serde_json accepted the line, so it is UTF-8.
        ev.raw = raw();
    }
    Item::Event(ev)
}

/// Parses one chunk of lines verify read (its lines numbered from 1, see
/// [`Read::append`]). The stored lines kept are ranges of one shared copy of
/// the chunk, made only if a record keeps its line. `paths`: see
/// [`parse_line_in`].
pub fn parse_lines(l: Lines<'_>, keep_raw: bool, paths: bool) -> Read {
    let file = u32::try_from(l.file).unwrap_or(u32::MAX);
    let data = l.lines;
    // The chunk as text, made when a record first keeps its line; `None`
    // inside when the chunk is not all UTF-8 (then each line is copied).
    let mut shared: Option<Option<Arc<str>>> = None;
    let mut out = Read {
        events: Vec::with_capacity(data.len() / 400 + 1),
        unreadable: Vec::new(),
    };
    let mut start = 0;
    let mut lines = 0u64;
    for end in memchr::memchr_iter(b'\n', data) {
        lines += 1;
        let mut raw = || {
            let text = shared.get_or_insert_with(|| std::str::from_utf8(data).ok().map(Arc::from));
            match text {
                Some(chunk) => Raw::range(chunk.clone(), start, end),
                None => Raw::copy(&data[start..end]),
            }
        };
        out.push(parse_line_in(
            file,
            lines,
            &data[start..end],
            keep_raw,
            paths,
            &mut raw,
        ));
        start = end + 1;
    }
    if let Some(tail) = l.tail {
        out.push(unreadable(
            file,
            lines + 1,
            format!("{} torn byte(s) after the last complete line", tail.len()),
            tail,
        ));
    }
    out
}
