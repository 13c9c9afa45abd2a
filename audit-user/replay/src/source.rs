//! Reads segment files into events, in log order. Lines are parsed in
//! parallel chunks (JSON parsing is most of a replay's own cost); the order
//! of the result is the order of the files and lines.

use std::{fs, path::PathBuf};

use serde_json::Value;

use crate::{
    error::{Error, Result},
    event::{self, Event, Json},
};

/// One line (or torn tail) of the input.
#[derive(Debug)]
pub enum Item {
    Event(Box<Event>),
    /// Not a record: the line's place and why.
    Unreadable {
        file: u32,
        line: u64,
        why: String,
        /// The start of the line, lossily decoded (for a human to look at).
        excerpt: String,
    },
}

/// How many bytes of an unreadable line to show.
const EXCERPT: usize = 160;

fn unreadable(file: u32, line: u64, why: impl Into<String>, bytes: &[u8]) -> Item {
    let cut = &bytes[..bytes.len().min(EXCERPT)];
    let mut excerpt = String::from_utf8_lossy(cut).into_owned();
    if bytes.len() > EXCERPT {
        excerpt.push('…');
    }
    Item::Unreadable {
        file,
        line,
        why: why.into(),
        excerpt,
    }
}

pub fn parse_line(file: u32, line_no: u64, line: &[u8], keep_raw: bool) -> Item {
    // A fast-path record without a summary gets it from its line at
    // render time, so that line is kept even when the format does not
    // show it.
    if let Some(mut ev) = crate::lite::parse(line) {
        ev.file = file;
        ev.line = line_no;
        if !keep_raw && !ev.summary.is_empty() {
            return Item::Event(Box::new(ev));
        }
        // The parse accepted the line, so it is UTF-8.
        ev.raw = std::str::from_utf8(line).ok().map(Box::from);
        if ev.raw.is_some() {
            return Item::Event(Box::new(ev));
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
    let mut ev = event::from_json(&json, seq, hash.to_string(), time_ns, kind.to_string());
    ev.file = file;
    ev.line = line_no;
    if keep_raw {
        // serde_json accepted the line, so it is UTF-8.
        ev.raw = std::str::from_utf8(line).ok().map(Box::from);
    }
    Item::Event(Box::new(ev))
}

/// Parses whole lines `data` (first one numbered `first_line`).
fn parse_chunk(file: u32, first_line: u64, data: &[u8], keep_raw: bool) -> Vec<Item> {
    let mut out = Vec::with_capacity(data.len() / 400 + 1);
    let mut start = 0;
    for (n, end) in memchr::memchr_iter(b'\n', data).enumerate() {
        out.push(parse_line(
            file,
            first_line + n as u64,
            &data[start..end],
            keep_raw,
        ));
        start = end + 1;
    }
    out
}

const CHUNK: usize = 1 << 20;

/// Reads and parses `files` in order; `progress` gets the bytes done.
pub fn read(files: &[PathBuf], keep_raw: bool, progress: &dyn Fn(u64)) -> Result<Vec<Item>> {
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(8);
    let mut items = Vec::new();
    for (idx, path) in files.iter().enumerate() {
        let file = u32::try_from(idx).unwrap_or(u32::MAX);
        let data = fs::read(path).map_err(|source| Error::Read {
            path: path.clone(),
            source,
        })?;
        let end = memchr::memrchr(b'\n', &data).map_or(0, |i| i + 1);
        // Cut into chunks of whole lines, numbering their first lines.
        let mut chunks = Vec::new();
        let (mut start, mut line) = (0usize, 1u64);
        while start < end {
            let cut = if end - start <= CHUNK {
                end
            } else {
                memchr::memchr(b'\n', &data[start + CHUNK..end])
                    .map_or(end, |i| start + CHUNK + i + 1)
            };
            chunks.push((line, &data[start..cut]));
            line += memchr::memchr_iter(b'\n', &data[start..cut]).count() as u64;
            start = cut;
        }
        let parsed: Vec<Vec<Item>> = if workers > 1 && chunks.len() > 1 {
            std::thread::scope(|s| {
                let per = chunks.len().div_ceil(workers);
                let handles: Vec<_> = chunks
                    .chunks(per)
                    .map(|group| {
                        s.spawn(move || {
                            group
                                .iter()
                                .map(|(l, d)| parse_chunk(file, *l, d, keep_raw))
                                .collect::<Vec<_>>()
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .flat_map(|h| {
                        // parse_line does not panic; should a worker ever
                        // do, its lines are reported, not lost silently.
                        h.join().unwrap_or_else(|_| {
                            vec![vec![unreadable(
                                file,
                                0,
                                "internal error parsing this file",
                                b"",
                            )]]
                        })
                    })
                    .collect()
            })
        } else {
            chunks
                .iter()
                .map(|(l, d)| parse_chunk(file, *l, d, keep_raw))
                .collect()
        };
        for group in parsed {
            items.extend(group);
        }
        if end < data.len() {
            items.push(unreadable(
                file,
                line,
                format!(
                    "{} torn byte(s) after the last complete line",
                    data.len() - end
                ),
                &data[end..],
            ));
        }
        progress(data.len() as u64);
    }
    Ok(items)
}
