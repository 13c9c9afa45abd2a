//! Stage 5: the tamper-evident store, a [`Sink`]. Records go through the
//! [`LogWriter`] (chain, Merkle tree, checkpoints, key epochs) into
//! append-only segment files with group commit: buffered lines are written
//! and fdatasync'ed at most every `group_commit` (100 ms by default), and a
//! record counts as durable only after that fsync. The capture loop calls
//! [`Sink::flush`] every ~25 ms, which runs every timer here (group commit,
//! checkpoints, heartbeat, key and segment rotation): no thread of our own.
//!
//! The durable point is observable: after each fsync the store logs
//! `durable through seq N hash H` at debug level (target
//! `audit_log::store`), and [`Store::durable`] returns it.

use std::{
    fs::{self, File, OpenOptions},
    io::{self, Write},
    os::{fd::AsRawFd, unix::fs::OpenOptionsExt},
    path::{Path, PathBuf},
    time::{Duration, Instant, SystemTime},
};

use serde_json::Value;

use crate::{
    chain::Linked,
    keys::{KeyDir, KeyError, sync_dir},
    lifecycle::{self, Torn},
    record::{Json, Record, now_ns},
    recover::{self, RecoverError},
    segment::{self, SegmentError},
    sink::{Sink, SinkError},
    writer::{LogWriter, WriterError},
};

/// Why the store could not be opened, or stopped writing.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0}")]
    Config(&'static str),
    #[error("the {0} must be longer than 0")]
    ZeroDuration(&'static str),
    /// `action` says what was done to `path` ("opening", "locking", …).
    #[error("{action} {}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{} is not a directory", path.display())]
    NotDir { path: PathBuf },
    #[error(transparent)]
    Keys(#[from] KeyError),
    #[error(transparent)]
    Segment(#[from] SegmentError),
    #[error(transparent)]
    Writer(#[from] WriterError),
    #[error(transparent)]
    Recover(#[from] RecoverError),
    /// The end of the existing log does not check out: extending it would
    /// hide that.
    #[error(
        "refusing to extend the log in {}: its tail does not validate (run `sandbox-audit verify {}`)",
        dir.display(),
        dir.display()
    )]
    TailInvalid {
        dir: PathBuf,
        #[source]
        source: RecoverError,
    },
    #[error(
        "{} signs the log whose genesis record is {genesis}, but {} holds no such log; \
         a new log needs its own keys (sandbox-audit keygen --key-dir NEW_DIR)",
        keys.display(),
        dir.display()
    )]
    KeysOfOtherLog {
        keys: PathBuf,
        genesis: String,
        dir: PathBuf,
    },
    #[error("{} has moved past epoch 0; a new log needs fresh keys", keys.display())]
    KeysPastEpochZero { keys: PathBuf },
    #[error("{} is the log {log}; {} holds the keys of {key_origin}", dir.display(), keys.display())]
    OriginMismatch {
        dir: PathBuf,
        log: String,
        keys: PathBuf,
        key_origin: String,
    },
    #[error(
        "{} belongs to the log whose genesis is {bound}, not this one ({genesis})",
        keys.display()
    )]
    BoundToOther {
        keys: PathBuf,
        bound: String,
        genesis: String,
    },
    #[error("the secret for epoch {epoch} is needed to continue this log")]
    NeedSecret {
        epoch: u64,
        #[source]
        source: KeyError,
    },
    /// A call after the store stopped on an error.
    #[error("the store stopped after an error: {why}")]
    Stopped { why: String },
}

type Result<T, E = StoreError> = std::result::Result<T, E>;

fn io_err<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> StoreError + 'a {
    move |source| StoreError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

pub const DEFAULT_LOG_DIR: &str = "/var/log/sandbox-audit";

/// Store settings; all of them go into the config digest of the log.
#[derive(Clone, Debug)]
pub struct StoreConfig {
    pub log_dir: PathBuf,
    pub key_dir: PathBuf,
    /// Longest time between write + fdatasync of buffered records.
    pub group_commit: Duration,
    /// A checkpoint after this many records…
    pub checkpoint_every: u64,
    /// …or this long after the last one, if any record came since…
    pub checkpoint_interval: Duration,
    /// …and at least this often even when nothing happens (heartbeat).
    pub heartbeat: Duration,
    /// Signing key lifetime; then the key rotates and the old secret is erased.
    pub epoch: Duration,
    /// A segment is sealed and a new one started past this size…
    pub segment_max_bytes: u64,
    /// …or after being written to for this long.
    pub segment_max_age: Duration,
    /// Capture settings, recorded with the store's own.
    pub capture: Json,
}

impl StoreConfig {
    pub fn new(log_dir: impl Into<PathBuf>, key_dir: impl Into<PathBuf>) -> StoreConfig {
        StoreConfig {
            log_dir: log_dir.into(),
            key_dir: key_dir.into(),
            group_commit: Duration::from_millis(100),
            checkpoint_every: 1000,
            checkpoint_interval: Duration::from_secs(1),
            heartbeat: Duration::from_secs(10),
            epoch: Duration::from_secs(3600),
            segment_max_bytes: 64 << 20,
            segment_max_age: Duration::from_secs(24 * 3600),
            capture: Json::new(),
        }
    }

    /// The config as recorded in `genesis`, `config` and digested in `start`.
    pub fn to_json(&self) -> Json {
        let ms = |d: Duration| Value::from(d.as_millis().min(u64::MAX as u128) as u64);
        let mut m = Json::new();
        m.insert(
            "log_dir".into(),
            self.log_dir.to_string_lossy().into_owned().into(),
        );
        m.insert(
            "key_dir".into(),
            self.key_dir.to_string_lossy().into_owned().into(),
        );
        m.insert("group_commit_ms".into(), ms(self.group_commit));
        m.insert("checkpoint_every".into(), self.checkpoint_every.into());
        m.insert(
            "checkpoint_interval_ms".into(),
            ms(self.checkpoint_interval),
        );
        m.insert("heartbeat_ms".into(), ms(self.heartbeat));
        m.insert("epoch_ms".into(), ms(self.epoch));
        m.insert("segment_max_bytes".into(), self.segment_max_bytes.into());
        m.insert("segment_max_age_ms".into(), ms(self.segment_max_age));
        m.insert("capture".into(), Value::Object(self.capture.clone()));
        m
    }

    fn check(&self) -> Result<()> {
        if self.checkpoint_every == 0 {
            return Err(StoreError::Config("checkpoint_every must be at least 1"));
        }
        for (name, d) in [
            ("group commit interval", self.group_commit),
            ("checkpoint interval", self.checkpoint_interval),
            ("heartbeat", self.heartbeat),
            ("epoch", self.epoch),
            ("segment age", self.segment_max_age),
        ] {
            if d.is_zero() {
                return Err(StoreError::ZeroDuration(name));
            }
        }
        Ok(())
    }
}

/// Flush the write buffer to the file (without fsync) past this size, so
/// memory stays bounded between group commits.
const WRITE_THRESHOLD: usize = 1 << 20;

pub struct Store {
    cfg: StoreConfig,
    keys: KeyDir,
    writer: LogWriter,
    _lock: File,
    file: File,
    file_path: PathBuf,
    file_len: u64,
    file_opened: Instant,
    /// Bytes of `writer.out()` already echoed (`--print`).
    echoed: usize,
    echo: Option<Box<dyn Write + Send>>,
    /// Last record handed to the kernel, and last one fsynced.
    written: Option<Linked>,
    durable: Option<Linked>,
    unsynced: bool,
    last_commit: Instant,
    last_checkpoint: Instant,
    epoch_deadline: Instant,
    /// Epochs whose secret is erased once the next commit is durable.
    erase_after_commit: Vec<u64>,
    session_records: u64,
    closed: bool,
    /// The writer as of the last bytes handed to the file: what the chain
    /// goes back to when buffered lines cannot be stored.
    written_state: Option<LogWriter>,
    /// Bytes of the current segment preallocated (FALLOC_FL_KEEP_SIZE):
    /// always [`RESERVE`] past what is written, so a last `store_error`
    /// record fits when the filesystem is full.
    reserved_to: u64,
    /// Set after a write error: nothing more is written (a retry could
    /// append a second copy of a partly written buffer).
    failed: Option<String>,
}

/// Room kept allocated past the end of the segment for the store's last
/// word (a `store_error` record is a few hundred bytes).
const RESERVE: u64 = 16 << 10;

/// Takes the store's lock, waiting (with a warning) if another process
/// holds it: two writers would fork the chain.
fn lock(dir: &Path) -> Result<File> {
    let path = dir.join("lock");
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_CLOEXEC)
        .open(&path)
        .map_err(io_err("opening", &path))?;
    // SAFETY: flock on an fd we own.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        let holder = fs::read_to_string(&path).unwrap_or_default();
        log::warn!(
            "the store {} is in use by pid {}; waiting for it (use --log-dir for a separate store)",
            dir.display(),
            holder.trim()
        );
        // SAFETY: as above, blocking.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(io_err("locking", &path)(io::Error::last_os_error()));
        }
    }
    f.set_len(0)
        .and_then(|_| f.write_all(crate::lockfile::contents().as_bytes()))
        .map_err(io_err("writing", &path))?;
    Ok(f)
}

fn create_log_dir(dir: &Path) -> Result<()> {
    if !dir.exists() {
        fs::create_dir_all(dir).map_err(io_err("creating log directory", dir))?;
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
            .map_err(io_err("setting mode 0700 on", dir))?;
    } else if !dir.is_dir() {
        return Err(StoreError::NotDir {
            path: dir.to_path_buf(),
        });
    } else {
        use std::os::unix::fs::MetadataExt;
        let mode = fs::metadata(dir).map_err(io_err("reading", dir))?.mode() & 0o777;
        if mode & 0o077 != 0 {
            log::warn!(
                "log directory {} has mode {mode:o}; 0700 is expected",
                dir.display()
            );
        }
    }
    Ok(())
}

fn epoch_deadline(created: SystemTime, epoch: Duration) -> Instant {
    let age = SystemTime::now()
        .duration_since(created)
        .unwrap_or_default();
    Instant::now() + epoch.saturating_sub(age)
}

impl Store {
    /// Opens (or creates) the store: a new store gets its genesis record; an
    /// existing one is validated at its tail and continued, with a
    /// `recovery` record if the last session did not end with `stop`.
    pub fn open(cfg: StoreConfig) -> Result<Store> {
        cfg.check()?;
        let dir = cfg.log_dir.clone();
        create_log_dir(&dir)?;
        let lock = lock(&dir)?;
        let (keys, created) = KeyDir::open_or_create(&cfg.key_dir, &lifecycle::host_id())?;
        if created {
            log::info!(
                "created signing keys in {}; trust root (export it off-host): {}",
                keys.path().display(),
                keys.trust_root()?
            );
        }
        let config = cfg.to_json();
        let digest = lifecycle::config_digest(&config);
        let mut notes: Vec<Record> = Vec::new();

        let resumed = recover::resume(&dir, &keys).map_err(|source| StoreError::TailInvalid {
            dir: dir.clone(),
            source,
        })?;
        let (writer, file, file_path, erase) = match resumed {
            None => {
                if let Some(g) = keys.bound()? {
                    return Err(StoreError::KeysOfOtherLog {
                        keys: keys.path().to_path_buf(),
                        genesis: hex::encode(g),
                        dir,
                    });
                }
                if keys.secret_epochs()? != [0] {
                    return Err(StoreError::KeysPastEpochZero {
                        keys: keys.path().to_path_buf(),
                    });
                }
                let (_, torn) = recover::torn_without_records(&dir)?;
                let mut w = LogWriter::genesis(keys.origin(), keys.load(0)?, &config)?;
                if !torn.is_empty() {
                    w.append(lifecycle::recovery(now_ns(), &torn, None))?;
                }
                seal_torn(&dir, &torn, &mut notes);
                let (f, p) = new_segment(&dir, 0, &mut notes)?;
                (w, f, p, vec![])
            }
            Some(r) => {
                if let Some((g, origin)) = recover::genesis(&dir)? {
                    if origin != keys.origin() {
                        return Err(StoreError::OriginMismatch {
                            dir,
                            log: origin,
                            keys: keys.path().to_path_buf(),
                            key_origin: keys.origin().to_string(),
                        });
                    }
                    match keys.bound()? {
                        Some(b) if b != g => {
                            return Err(StoreError::BoundToOther {
                                keys: keys.path().to_path_buf(),
                                bound: hex::encode(b),
                                genesis: hex::encode(g),
                            });
                        }
                        Some(_) => {}
                        None => keys.bind(&g)?,
                    }
                }
                let signer = keys
                    .load(r.sign_epoch)
                    .map_err(|source| StoreError::NeedSecret {
                        epoch: r.sign_epoch,
                        source,
                    })?;
                let latest = r.resume.latest_epoch;
                let pending = if latest > r.sign_epoch {
                    Some(keys.load(latest)?)
                } else {
                    None
                };
                // Secrets of closed epochs (a crash before erasing) and of
                // epochs never announced (a crash mid-rotation) must go.
                for e in keys.secret_epochs()? {
                    if e < r.sign_epoch || e > latest {
                        keys.erase(e)?;
                    }
                }
                let mut w = LogWriter::resume(r.resume, signer);
                let (f, p) = if !r.torn.is_empty() {
                    seal_torn(&dir, &r.torn, &mut notes);
                    new_segment(&dir, w.next_seq(), &mut notes)?
                } else {
                    let len = fs::metadata(&r.last_file).map(|m| m.len()).unwrap_or(0);
                    let sealed = segment::flags(&r.last_file)
                        .is_ok_and(|f| f & segment::FS_IMMUTABLE_FL != 0);
                    if sealed || len >= cfg.segment_max_bytes {
                        new_segment(&dir, w.next_seq(), &mut notes)?
                    } else {
                        let (f, refused) = segment::open_append(&r.last_file)?;
                        if let Some(e) = refused {
                            notes.push(refused_flag(&r.last_file, "append", &e));
                        }
                        (f, r.last_file.clone())
                    }
                };
                if !r.clean || !r.torn.is_empty() {
                    log::warn!(
                        "the previous session ended without `stop` (last record seq {} `{}`{}); recording the recovery",
                        r.last_seq,
                        r.last_kind,
                        if r.torn.is_empty() {
                            String::new()
                        } else {
                            format!(", {} torn range(s)", r.torn.len())
                        }
                    );
                    w.append(lifecycle::recovery(
                        now_ns(),
                        &r.torn,
                        Some(lifecycle::LastRecord {
                            seq: r.last_seq,
                            kind: &r.last_kind,
                            time_ns: r.last_time_ns,
                        }),
                    ))?;
                }
                let mut erase = vec![];
                if let Some(next) = pending {
                    erase.push(w.close_epoch(next)?);
                }
                if w.config_digest() != digest {
                    let prev = w.config_digest().to_string();
                    w.append(lifecycle::config(now_ns(), &config, &prev))?;
                    w.set_config_digest(digest.clone());
                }
                (w, f, p, erase)
            }
        };
        let file_len = file.metadata().map(|m| m.len()).unwrap_or(0);
        let now = Instant::now();
        let mut store = Store {
            epoch_deadline: epoch_deadline(writer.epoch_created(), cfg.epoch),
            cfg,
            keys,
            writer,
            _lock: lock,
            file,
            file_path,
            file_len,
            file_opened: now,
            echoed: 0,
            echo: None,
            written: None,
            durable: None,
            unsynced: false,
            last_commit: now,
            last_checkpoint: now,
            erase_after_commit: erase,
            session_records: 0,
            closed: false,
            written_state: None,
            reserved_to: 0,
            failed: None,
        };
        for n in notes {
            store.writer.append(n)?;
        }
        store.commit()?;
        store.written_state = Some(store.writer.snapshot());
        if store.keys.bound()?.is_none()
            && let Some((g, _)) = recover::genesis(&dir)?
        {
            store.keys.bind(&g)?;
        }
        Ok(store)
    }

    /// Echo every stored line to `out` too (`--print`).
    pub fn echo_to(&mut self, out: Box<dyn Write + Send>) {
        self.echo = Some(out);
    }

    pub fn log_dir(&self) -> &Path {
        &self.cfg.log_dir
    }

    /// The last record known to be on disk (after fdatasync).
    pub fn durable(&self) -> Option<Linked> {
        self.durable
    }

    /// The last record appended (durable or not).
    pub fn last(&self) -> Option<Linked> {
        self.writer.last()
    }

    pub fn epoch(&self) -> u64 {
        self.writer.epoch()
    }

    /// The latest signed checkpoint note.
    pub fn last_note(&self) -> Option<&str> {
        self.writer.last_note()
    }

    fn checkpoint(&mut self, reason: &str) -> Result<()> {
        self.writer.checkpoint(reason)?;
        self.last_checkpoint = Instant::now();
        Ok(())
    }

    /// `--print` is a convenience: a closed stdout must not stop the log.
    fn echo_pending(&mut self) -> Result<()> {
        if let Some(e) = self.echo.as_mut() {
            let out = self.writer.out();
            if self.echoed < out.len() {
                let r = e.write_all(&out[self.echoed..]).and_then(|_| e.flush());
                self.echoed = out.len();
                if let Err(err) = r {
                    log::warn!("cannot print records any more ({err}); the log is still written");
                    self.echo = None;
                }
            }
        }
        Ok(())
    }

    /// Preallocates the segment through `end` (+ [`RESERVE`]). Filesystems
    /// without fallocate just get no reservation.
    fn reserve(&mut self, end: u64) -> io::Result<()> {
        let want = end.saturating_add(RESERVE);
        if want <= self.reserved_to {
            return Ok(());
        }
        // SAFETY: plain syscall on our own fd.
        let r = unsafe {
            libc::fallocate(
                self.file.as_raw_fd(),
                libc::FALLOC_FL_KEEP_SIZE,
                self.file_len as libc::off_t,
                (want - self.file_len) as libc::off_t,
            )
        };
        if r == 0 {
            self.reserved_to = want;
            return Ok(());
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::ENOSPC) | Some(libc::EDQUOT) => Err(e),
            _ => Ok(()),
        }
    }

    /// The buffered lines cannot be stored (the filesystem is full): go
    /// back to the last record written and end the log with a
    /// `store_error` record saying why, in the space reserved for it. Then
    /// the store is failed: nothing more is written.
    fn fail_full(&mut self, e: io::Error) -> StoreError {
        let why = format!("writing to {}: {e}", self.file_path.display());
        self.failed = Some(why.clone());
        let Some(state) = self.written_state.take() else {
            return io_err("writing to", &self.file_path)(e);
        };
        let lost = memchr::memchr_iter(b'\n', self.writer.out()).count() as u64;
        self.writer.restore(&state);
        let last = self
            .writer
            .append(lifecycle::store_error(now_ns(), &why, lost))
            .map_err(StoreError::from)
            .and_then(|_| {
                self.file
                    .write_all(self.writer.out())
                    .and_then(|_| self.file.sync_data())
                    .map_err(io_err("writing", &self.file_path))
            });
        match last {
            Ok(()) => {
                log::error!(
                    "{why}: the log ends with a store_error record ({lost} buffered record(s) not stored)"
                );
                self.durable = self.writer.last();
            }
            Err(e2) => {
                log::error!(
                    "{why}; the store_error record could not be written either: {}",
                    crate::error_text(&e2)
                )
            }
        }
        self.writer.out().clear();
        io_err("writing to", &self.file_path)(e)
    }

    /// Hands buffered lines to the kernel (one write; no fsync).
    fn write_out(&mut self) -> Result<()> {
        if let Some(why) = &self.failed {
            return Err(StoreError::Stopped { why: why.clone() });
        }
        self.echo_pending()?;
        if self.writer.out().is_empty() {
            return Ok(());
        }
        let end = self.file_len + self.writer.out().len() as u64;
        if let Err(e) = self.reserve(end) {
            return Err(self.fail_full(e));
        }
        let out = self.writer.out();
        if let Err(e) = self.file.write_all(out) {
            // Possibly half written: nothing may be appended after it.
            let why = format!("writing to {}: {e}", self.file_path.display());
            self.failed = Some(why);
            return Err(io_err("writing to", &self.file_path)(e));
        }
        // Start writeback of these bytes now, so the disk works while we
        // chain the next records and the group commit's fdatasync only waits
        // for the tail. Advisory: durability still comes from fdatasync.
        // SAFETY: plain syscall on our own fd.
        unsafe {
            libc::sync_file_range(
                self.file.as_raw_fd(),
                self.file_len as libc::off64_t,
                out.len() as libc::off64_t,
                libc::SYNC_FILE_RANGE_WRITE,
            )
        };
        self.file_len += out.len() as u64;
        out.clear();
        self.echoed = 0;
        self.unsynced = true;
        self.written = self.writer.last();
        if self.written_state.is_some() {
            self.written_state = Some(self.writer.snapshot());
        }
        Ok(())
    }

    /// Group commit: write what is buffered, fdatasync, and only then count
    /// it durable (and erase a closed epoch's secret, if one waits on it).
    fn commit(&mut self) -> Result<()> {
        self.write_out()?;
        if self.unsynced {
            if let Err(e) = self.file.sync_data() {
                let why = format!("syncing {}: {e}", self.file_path.display());
                self.failed = Some(why);
                return Err(io_err("syncing", &self.file_path)(e));
            }
            self.unsynced = false;
            self.durable = self.written;
            if let Some(d) = self.durable {
                log::debug!("durable through seq {} hash {}", d.seq, hex::encode(d.hash));
            }
        }
        self.last_commit = Instant::now();
        for e in std::mem::take(&mut self.erase_after_commit) {
            self.keys.erase(e)?;
            log::info!("epoch {e} closed; its secret is erased");
        }
        Ok(())
    }

    fn rotate_key(&mut self) -> Result<()> {
        let next = self.keys.create_epoch(self.writer.epoch() + 1)?;
        let old = self.writer.rotate(next)?;
        self.last_checkpoint = Instant::now();
        self.erase_after_commit.push(old);
        self.epoch_deadline = Instant::now() + self.cfg.epoch;
        self.commit()
    }

    fn rotate_segment(&mut self) -> Result<()> {
        self.checkpoint("segment")?;
        self.commit()?;
        let old = self.file_path.clone();
        let mut notes = Vec::new();
        if let Err(e) = segment::seal(&old) {
            notes.push(refused_flag(&old, "immutable", &e));
        }
        let (f, p) = new_segment(&self.cfg.log_dir, self.writer.next_seq(), &mut notes)?;
        self.file = f;
        self.file_path = p;
        self.file_len = 0;
        self.reserved_to = 0;
        self.file_opened = Instant::now();
        for n in notes {
            self.writer.append(n)?;
        }
        Ok(())
    }

    /// Runs whatever timer is due.
    fn tick(&mut self) -> Result<()> {
        let now = Instant::now();
        if now >= self.epoch_deadline {
            self.rotate_key()?;
        }
        let since = self.last_checkpoint.elapsed();
        if since >= self.cfg.heartbeat {
            self.checkpoint("heartbeat")?;
        } else if self.writer.since_checkpoint() > 0 && since >= self.cfg.checkpoint_interval {
            self.checkpoint("interval")?;
        }
        if self.file_len >= self.cfg.segment_max_bytes
            || self.file_opened.elapsed() >= self.cfg.segment_max_age
        {
            self.rotate_segment()?;
        }
        self.echo_pending()?;
        if self.last_commit.elapsed() >= self.cfg.group_commit {
            self.commit()?;
        }
        Ok(())
    }

    /// Clean shutdown: `stop`, a final checkpoint covering it, fsync.
    pub fn close(mut self, reason: &str) -> Result<()> {
        self.writer
            .append(lifecycle::stop(now_ns(), reason, self.session_records))?;
        self.checkpoint("stop")?;
        self.commit()?;
        self.closed = true;
        Ok(())
    }
}

impl Sink for Store {
    fn start(&mut self, scope: Json) -> Result<(), SinkError> {
        let digest = self.writer.config_digest().to_string();
        self.writer
            .append(lifecycle::start(now_ns(), scope, &digest))
            .map_err(StoreError::from)?;
        Ok(self.commit()?)
    }

    fn accept(&mut self, record: Record) -> Result<(), SinkError> {
        self.writer.append(record).map_err(StoreError::from)?;
        self.session_records += 1;
        if self.writer.since_checkpoint() >= self.cfg.checkpoint_every {
            self.checkpoint("count")?;
        }
        if self.writer.out().len() >= WRITE_THRESHOLD {
            self.write_out()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        Ok(self.tick()?)
    }
}

impl Drop for Store {
    /// Not closed (an error unwound past us): keep what we have. The next
    /// start sees no `stop` and records a recovery.
    fn drop(&mut self) {
        if !self.closed
            && self.failed.is_none()
            && let Err(e) = self.commit()
        {
            log::error!(
                "could not write the last records: {}",
                crate::error_text(&e)
            );
        }
    }
}

fn refused_flag(path: &Path, flag: &str, e: &io::Error) -> Record {
    log::warn!(
        "THE FILESYSTEM REFUSED the {flag} flag on {}: {e}; the segment is NOT protected against modification \
         by root (recorded in the log)",
        path.display()
    );
    lifecycle::protection(now_ns(), &segment::file_name(path), flag, &e.to_string())
}

/// Seals the files a crash left torn: nothing may be appended to them.
fn seal_torn(dir: &Path, torn: &[Torn], notes: &mut Vec<Record>) {
    for t in torn {
        let p = dir.join(&t.file);
        if let Err(e) = segment::seal(&p) {
            notes.push(refused_flag(&p, "immutable", &e));
        }
    }
}

fn new_segment(dir: &Path, first_seq: u64, notes: &mut Vec<Record>) -> Result<(File, PathBuf)> {
    let (f, p, refused) = segment::create(dir, first_seq)?;
    if let Some(e) = refused {
        notes.push(refused_flag(&p, "append", &e));
    }
    sync_dir(dir)?;
    Ok((f, p))
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
