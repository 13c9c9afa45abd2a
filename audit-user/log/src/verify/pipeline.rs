//! How verify's input reaches the engine: segments are cut into chunks of
//! whole lines, chunks are parsed on worker threads (for big inputs), and
//! the engine takes the items back in log order.
//!
//! reader (files read in pieces of [`CHUNK`] bytes) → parser workers →
//! engine (the calling thread), each stage bounded so memory stays a few
//! chunks per thread. Files are read a piece at a time into a small pool of
//! reused buffers rather than whole: a whole 64 MiB segment means fresh
//! pages to fault in and a copy that misses every cache, which together
//! were a third of verify's time.

use std::{
    any::Any,
    collections::BTreeMap,
    fs::File,
    io::Read,
    path::PathBuf,
    sync::{Arc, Mutex, mpsc},
};

use super::{
    Item, ItemBody, Kind, Lines, Loc, Options, Report, Result, VerifyError, display_name,
    engine::Engine, finish,
};
use super::{parse_anchor, parse_item};
use crate::{lifecycle::Torn, merkle::sha256, segment};

/// About this many bytes of whole lines make a chunk.
pub(super) const CHUNK: usize = 1 << 20;

/// Inputs smaller than this are parsed on the calling thread.
pub(super) const PARALLEL_FROM: usize = 4 * CHUNK;

/// What verify reads.
pub(super) enum Source<'a> {
    /// Segments already in memory: (name, bytes), in log order.
    Memory(&'a [(&'a str, &'a [u8])]),
    /// Segment files in log order, and whether each came from a store
    /// directory's listing (then a symbolic link is refused).
    Files {
        files: &'a [PathBuf],
        listed: &'a [bool],
    },
}

/// Bytes shared by the chunks cut from them: borrowed for in-memory input,
/// pooled buffers for files.
type Bytes<'a> = Arc<dyn AsRef<[u8]> + Send + Sync + 'a>;

/// A buffer that goes back to its pool when its chunk is done.
struct Pooled {
    buf: Vec<u8>,
    pool: Arc<Mutex<Vec<Vec<u8>>>>,
}

/// Buffers the pool keeps: enough for every chunk in flight.
const POOL: usize = 16;

impl AsRef<[u8]> for Pooled {
    fn as_ref(&self) -> &[u8] {
        &self.buf
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        if let Ok(mut p) = self.pool.lock()
            && p.len() < POOL
        {
            p.push(std::mem::take(&mut self.buf));
        }
    }
}

/// A run of whole lines of one segment, parsed as a unit (possibly on a
/// worker thread).
struct Chunk<'a> {
    file: usize,
    name: Arc<str>,
    data: Bytes<'a>,
    /// Byte range of whole lines in `data`.
    start: usize,
    end: usize,
    /// The file offset of `data[0]`.
    base: u64,
    /// This chunk ends the file: report bytes after the last newline.
    last: bool,
}

impl Chunk<'_> {
    fn bytes(&self) -> &[u8] {
        (*self.data).as_ref()
    }

    /// The chunk's items, numbered from line 1 of the chunk, and how many
    /// whole lines it has.
    fn parse(&self) -> (Vec<Item>, u64) {
        let all = self.bytes();
        let d = &all[self.start..self.end];
        let mut items = Vec::with_capacity(d.len() / 256 + 1);
        let mut line_start = 0;
        for (n, i) in memchr::memchr_iter(b'\n', d).enumerate() {
            let off = self.base + (self.start + line_start) as u64;
            items.push(parse_item(self.file, 1 + n as u64, off, &d[line_start..i]));
            line_start = i + 1;
        }
        let lines = items.len() as u64;
        if self.last && self.end < all.len() {
            let torn = &all[self.end..];
            let offset = self.base + self.end as u64;
            items.push(Item {
                loc: Loc {
                    file: self.file,
                    line: 1 + lines,
                    offset,
                },
                kind: Kind::Other,
                body: ItemBody::Torn(Box::new(Torn {
                    file: self.name.to_string(),
                    offset,
                    length: torn.len() as u64,
                    sha256: sha256(torn),
                })),
                json: None,
            });
        }
        (items, lines)
    }

    /// [`Chunk::parse`], except that a panic (the parser is fuzzed not to
    /// have any) makes the chunk's lines unreadable rather than a hang.
    fn parse_or_unreadable(&self) -> (Vec<Item>, u64) {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.parse())).unwrap_or_else(
            |_| {
                let d = &self.bytes()[self.start..self.end];
                let lines = memchr::memchr_iter(b'\n', d).count() as u64;
                let item = Item {
                    loc: Loc {
                        file: self.file,
                        line: 1,
                        offset: self.base + self.start as u64,
                    },
                    kind: Kind::Other,
                    body: ItemBody::Bad(
                        "internal error while parsing this part of the file".into(),
                    ),
                    json: None,
                };
                (vec![item], lines)
            },
        )
    }
}

/// A caller's own reading of the chunks ([`super::verify_inputs_tapped`]):
/// `parse` runs where the chunk is parsed, `take` gets its result in log
/// order with the lines of the same file before the chunk.
pub(super) struct Tap<'t> {
    pub parse: &'t TapParse<'t>,
    pub take: &'t mut dyn FnMut(Tapped, u64),
}

/// A tap's result for one chunk (of the caller's type).
pub(super) type Tapped = Box<dyn Any + Send>;

pub(super) type TapParse<'t> = dyn Fn(Lines<'_>) -> Tapped + Sync + 't;

/// A chunk's items as a parser hands them back.
struct Parsed {
    items: Vec<Item>,
    /// What the tap's `parse` made of the chunk.
    tapped: Option<Tapped>,
    /// Whole lines in the chunk.
    lines: u64,
    bytes: u64,
    file: usize,
    name: Arc<str>,
}

impl Chunk<'_> {
    fn parsed(&self, tap: Option<&TapParse<'_>>) -> Parsed {
        let (items, lines) = self.parse_or_unreadable();
        let tapped = tap.map(|parse| {
            let all = self.bytes();
            parse(Lines {
                file: self.file,
                lines: &all[self.start..self.end],
                tail: (self.last && self.end < all.len()).then(|| &all[self.end..]),
            })
        });
        Parsed {
            items,
            tapped,
            lines,
            bytes: (self.end - self.start) as u64,
            file: self.file,
            name: self.name.clone(),
        }
    }
}

/// Takes parsed chunks in log order: gives their items line numbers in
/// their file and hands them to the engine. The lines before a chunk are
/// only known once the earlier chunks are parsed (counting them ahead of
/// time was a pass over every byte on the reader thread).
struct Feed<'e, 't, P> {
    engine: &'e mut Engine,
    lines_before: u64,
    progress: P,
    take: Option<&'t mut dyn FnMut(Tapped, u64)>,
}

impl<P: Fn(u64)> Feed<'_, '_, P> {
    fn take(&mut self, p: Parsed) {
        while self.engine.files.len() <= p.file {
            self.engine.files.push(p.name.to_string());
            self.lines_before = 0;
        }
        for mut item in p.items {
            item.loc.line += self.lines_before;
            self.engine.push(item);
        }
        if let (Some(take), Some(t)) = (self.take.as_mut(), p.tapped) {
            take(t, self.lines_before);
        }
        self.lines_before += p.lines;
        (self.progress)(p.bytes);
    }
}

/// Cuts an in-memory segment into chunks of about [`CHUNK`] bytes of whole
/// lines; stops when `send` refuses one.
fn memory_chunks<'a>(
    file: usize,
    name: &str,
    data: &'a [u8],
    send: &mut dyn FnMut(Chunk<'a>) -> bool,
) -> bool {
    let name: Arc<str> = name.into();
    let shared: Bytes<'a> = Arc::new(data);
    let end = memchr::memrchr(b'\n', data).map_or(0, |i| i + 1);
    let mut start = 0usize;
    loop {
        let cut = if end - start <= CHUNK {
            end
        } else {
            memchr::memchr(b'\n', &data[start + CHUNK..end]).map_or(end, |i| start + CHUNK + i + 1)
        };
        let chunk = Chunk {
            file,
            name: name.clone(),
            data: shared.clone(),
            start,
            end: cut,
            base: 0,
            last: cut == end,
        };
        if !send(chunk) {
            return false;
        }
        if cut == end {
            return true;
        }
        start = cut;
    }
}

/// Reads a segment file in pieces of about [`CHUNK`] bytes, each cut after
/// its last newline (the rest starts the next piece; a line longer than a
/// piece makes its piece grow); stops when `send` refuses one.
fn file_chunks(
    file: usize,
    path: &std::path::Path,
    no_follow: bool,
    pool: &Arc<Mutex<Vec<Vec<u8>>>>,
    send: &mut dyn FnMut(Chunk<'static>) -> bool,
) -> Result<bool> {
    let (mut f, _) = segment::open_regular(path, no_follow)?;
    let name: Arc<str> = display_name(path).into();
    let io_error = |source| segment::ReadError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut carry: Vec<u8> = Vec::new();
    let mut base = 0u64;
    loop {
        let mut buf = pool
            .lock()
            .ok()
            .and_then(|mut p| p.pop())
            .unwrap_or_else(|| Vec::with_capacity(CHUNK + CHUNK / 4));
        buf.clear();
        buf.extend_from_slice(&carry);
        carry.clear();
        let mut want = CHUNK;
        let (end, eof) = loop {
            let eof = fill(&mut f, &mut buf, want).map_err(io_error)?;
            let end = memchr::memrchr(b'\n', &buf).map_or(0, |i| i + 1);
            if eof || end > 0 {
                break (end, eof);
            }
            want = buf.len() + CHUNK;
        };
        if !eof {
            carry.extend_from_slice(&buf[end..]);
            buf.truncate(end);
        }
        let chunk = Chunk {
            file,
            name: name.clone(),
            data: Arc::new(Pooled {
                buf,
                pool: pool.clone(),
            }),
            start: 0,
            end,
            base,
            last: eof,
        };
        if !send(chunk) {
            return Ok(false);
        }
        if eof {
            return Ok(true);
        }
        base += end as u64;
    }
}

/// Reads until `buf` holds `want` bytes or the file ends (then true). Reads
/// into the spare capacity: nothing is zeroed first.
fn fill(f: &mut File, buf: &mut Vec<u8>, want: usize) -> std::io::Result<bool> {
    while buf.len() < want {
        let asked = (want - buf.len()) as u64;
        let got = f.by_ref().take(asked).read_to_end(buf)?;
        if (got as u64) < asked {
            return Ok(true);
        }
    }
    Ok(false)
}

impl Source<'_> {
    /// Whether the input is big enough for parser threads.
    fn big(&self) -> bool {
        match self {
            Source::Memory(segs) => {
                segs.iter().map(|(_, d)| d.len()).sum::<usize>() >= PARALLEL_FROM
            }
            Source::Files { files, .. } => {
                files
                    .iter()
                    .map(|f| std::fs::metadata(f).map_or(0, |m| m.len()))
                    .sum::<u64>()
                    >= PARALLEL_FROM as u64
            }
        }
    }
}

/// Every chunk of the source, in order, to `send` (until it refuses one).
fn produce<'a>(source: &Source<'a>, send: &mut dyn FnMut(Chunk<'a>) -> bool) -> Result<()> {
    match source {
        Source::Memory(segs) => {
            for (file, (name, data)) in segs.iter().enumerate() {
                if !memory_chunks(file, name, data, send) {
                    return Ok(());
                }
            }
        }
        Source::Files { files, listed } => {
            let pool: Arc<Mutex<Vec<Vec<u8>>>> = Arc::default();
            for (file, path) in files.iter().enumerate() {
                let no_follow = listed.get(file).copied().unwrap_or(false);
                if !file_chunks(file, path, no_follow, &pool, &mut |c| send(c))? {
                    return Ok(());
                }
            }
        }
    }
    Ok(())
}

/// Verifies `source`; `progress` gets the bytes done.
/// With a `tap`, its `parse` sees every chunk too.
pub(super) fn run(
    source: Source<'_>,
    opts: &Options,
    progress: impl Fn(u64),
    tap: Option<Tap<'_>>,
) -> Result<Report> {
    let anchor = opts.anchor.as_deref().map(parse_anchor).transpose()?;
    let mut engine = Engine::new(opts.clone(), anchor);
    let (tap_parse, tap_take) = tap.map_or((None, None), |t| (Some(t.parse), Some(t.take)));
    let mut feed = Feed {
        engine: &mut engine,
        lines_before: 0,
        progress,
        take: tap_take,
    };
    if !source.big() {
        produce(&source, &mut |chunk| {
            feed.take(chunk.parsed(tap_parse));
            true
        })?;
        drop(feed);
        return Ok(finish(engine));
    }
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(8);
    let read_result: Mutex<Option<Result<()>>> = Mutex::new(None);
    std::thread::scope(|scope| -> Result<()> {
        let (job_tx, job_rx) = mpsc::sync_channel::<(u64, Chunk)>(workers * 2);
        let job_rx = Arc::new(Mutex::new(job_rx));
        let (res_tx, res_rx) = mpsc::sync_channel::<(u64, Parsed)>(workers * 4);
        for _ in 0..workers {
            let (job_rx, res_tx) = (job_rx.clone(), res_tx.clone());
            scope.spawn(move || {
                loop {
                    let job = match job_rx.lock() {
                        Ok(rx) => rx.recv(),
                        Err(_) => return,
                    };
                    let Ok((id, chunk)) = job else { return };
                    if res_tx.send((id, chunk.parsed(tap_parse))).is_err() {
                        return;
                    }
                }
            });
        }
        drop(res_tx);
        let (source, read_result) = (&source, &read_result);
        scope.spawn(move || {
            let mut id = 0u64;
            let r = produce(source, &mut |chunk| {
                let sent = job_tx.send((id, chunk)).is_ok();
                id += 1;
                sent
            });
            if let Ok(mut slot) = read_result.lock() {
                *slot = Some(r);
            }
        });
        // Results come back slightly out of order (one per worker at most):
        // hold them until their turn.
        let mut next = 0u64;
        let mut ready: BTreeMap<u64, Parsed> = BTreeMap::new();
        for (id, parsed) in res_rx.iter() {
            ready.insert(id, parsed);
            while let Some(p) = ready.remove(&next) {
                feed.take(p);
                next += 1;
            }
        }
        if !ready.is_empty() {
            return Err(VerifyError::Internal);
        }
        Ok(())
    })?;
    drop(feed);
    if let Some(Err(e)) = read_result.into_inner().ok().flatten() {
        return Err(e);
    }
    Ok(finish(engine))
}
