//! Store + verify together on real files (append-only flags need root).

use std::{fs, io::Write, path::Path, time::Duration};

use serde_json::json;

use super::*;
use crate::verify::{Options, VerdictKind, verify_paths};

/// Temp dirs whose append-only/immutable files are unlocked before removal.
pub(crate) struct Dirs {
    pub tmp: tempfile::TempDir,
}

impl Dirs {
    pub fn new() -> Dirs {
        Dirs {
            tmp: tempfile::tempdir().unwrap(),
        }
    }
    pub fn log(&self) -> PathBuf {
        self.tmp.path().join("log")
    }
    pub fn keys(&self) -> PathBuf {
        self.tmp.path().join("keys")
    }
    pub fn cfg(&self) -> StoreConfig {
        let mut c = StoreConfig::new(self.log(), self.keys());
        c.group_commit = Duration::from_millis(5);
        c.checkpoint_every = 100;
        c.checkpoint_interval = Duration::from_millis(20);
        c.heartbeat = Duration::from_millis(200);
        c
    }
}

impl Drop for Dirs {
    fn drop(&mut self) {
        let _ = segment::unprotect_tree(self.tmp.path());
    }
}

pub(crate) fn event(i: u64) -> Record {
    Record::new("exec", now_ns())
        .with("argv", json!(["sh", "-c", format!("echo {i}")]))
        .with("proc", json!({"pid": 1000 + i, "comm": "sh"}))
}

fn verify_dir(d: &Dirs, opts: &Options) -> crate::verify::Report {
    let files = segment::list(&d.log()).unwrap();
    verify_paths(&files, opts).unwrap()
}

fn trusted(d: &Dirs) -> Options {
    let k = KeyDir::open(&d.keys()).unwrap();
    Options {
        pubkey: Some(crate::checkpoint::parse_vkey(&k.trust_root().unwrap()).unwrap()),
        ..Options::default()
    }
}

fn write_session(cfg: StoreConfig, n: u64) -> Store {
    let mut s = Store::open(cfg).unwrap();
    s.start(json!({"mode": "test"}).as_object().unwrap().clone())
        .unwrap();
    for i in 0..n {
        s.accept(event(i)).unwrap();
        if i % 50 == 0 {
            s.flush().unwrap();
        }
    }
    s
}

#[test]
fn sessions_continue_one_chain_and_verify() {
    let d = Dirs::new();
    write_session(d.cfg(), 250).close("done").unwrap();
    let r = verify_dir(&d, &trusted(&d));
    assert!(r.intact(), "{}", crate::verify::render_text(&r));
    assert!(r.summary.checkpoints >= 3);
    assert_eq!(
        r.summary.records, r.summary.covered,
        "the final checkpoint covers everything"
    );

    write_session(d.cfg(), 10).close("done").unwrap();
    let r = verify_dir(&d, &trusted(&d));
    assert!(r.intact(), "{}", crate::verify::render_text(&r));
    assert_eq!(r.summary.sessions, 2);
    assert_eq!(r.summary.recoveries, 0);
    // One segment, append-only.
    let segs = segment::list(&d.log()).unwrap();
    assert_eq!(segs.len(), 1);
    assert_ne!(segment::flags(&segs[0]).unwrap() & segment::FS_APPEND_FL, 0);
}

#[test]
fn crash_and_torn_tail_are_recovered_exactly() {
    let d = Dirs::new();
    let mut s = write_session(d.cfg(), 30);
    s.flush().unwrap();
    drop(s); // no stop: a crash after the last commit
    let seg = segment::list(&d.log()).unwrap().pop().unwrap();
    // A torn write: half a record, no newline (O_APPEND works on +a files).
    fs::OpenOptions::new()
        .append(true)
        .open(&seg)
        .unwrap()
        .write_all(b"{\"argv\":[\"ha")
        .unwrap();
    // Before the restart: the session has no stop and nobody writes the
    // store, so the log stops early; the half record is that early end.
    let r = verify_dir(&d, &Options::default());
    assert_eq!(
        r.status(),
        crate::verify::Status::Incomplete,
        "{}",
        crate::verify::render_text(&r)
    );
    let t = r.incomplete().unwrap().unfinished.clone().unwrap();
    assert_eq!(t.length, 12);

    write_session(d.cfg(), 5).close("done").unwrap();
    let r = verify_dir(&d, &trusted(&d));
    assert!(r.intact(), "{}", crate::verify::render_text(&r));
    assert_eq!((r.summary.recoveries, r.summary.torn_recovered), (1, 1));
    // The torn segment is sealed and a new one was started.
    let segs = segment::list(&d.log()).unwrap();
    assert_eq!(segs.len(), 2);
    assert_ne!(
        segment::flags(&segs[0]).unwrap() & segment::FS_IMMUTABLE_FL,
        0
    );

    // The same torn bytes with a different recovery claim: caught.
    let text = fs::read_to_string(&segs[1]).unwrap();
    let forged = text.replacen("\"length\":12", "\"length\":11", 1);
    assert_ne!(text, forged);
    let first = fs::read(&segs[0]).unwrap();
    let r = crate::verify::verify_segments(
        &[("a", &first), ("b", forged.as_bytes())],
        &Options::default(),
    )
    .unwrap();
    assert!(
        r.kinds().contains(&VerdictKind::Modified),
        "{}",
        crate::verify::render_text(&r)
    );
}

#[test]
fn keys_rotate_and_old_secrets_are_erased() {
    let d = Dirs::new();
    let mut cfg = d.cfg();
    cfg.epoch = Duration::from_millis(150);
    let mut s = write_session(cfg.clone(), 10);
    // Write until three rotations have happened rather than for a fixed
    // time: on a loaded machine 700 ms saw only two (a flaky CI failure).
    // The deadline only stops a store that never rotates.
    let t = Instant::now();
    let mut i = 0;
    while s.epoch() < 3 {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "the keys did not rotate 3 times in 60 s with a 150 ms epoch (epoch {})",
            s.epoch()
        );
        s.accept(event(i)).unwrap();
        s.flush().unwrap();
        i += 1;
        std::thread::sleep(Duration::from_millis(5));
    }
    let epoch = s.epoch();
    s.close("done").unwrap();
    let keys = KeyDir::open(&d.keys()).unwrap();
    assert_eq!(keys.secret_epochs().unwrap(), vec![epoch]);
    let r = verify_dir(&d, &trusted(&d));
    assert!(r.intact(), "{}", crate::verify::render_text(&r));
    assert_eq!(r.summary.epochs, epoch + 1);
    // And the store restarts in the right epoch.
    write_session(cfg, 3).close("done").unwrap();
    assert!(verify_dir(&d, &trusted(&d)).intact());
}

#[test]
fn segments_rotate_and_seal() {
    let d = Dirs::new();
    let mut cfg = d.cfg();
    cfg.segment_max_bytes = 20_000;
    let mut s = write_session(cfg, 0);
    for i in 0..400 {
        s.accept(event(i)).unwrap();
        if i % 40 == 0 {
            std::thread::sleep(Duration::from_millis(6));
            s.flush().unwrap();
        }
    }
    s.close("done").unwrap();
    let segs = segment::list(&d.log()).unwrap();
    assert!(segs.len() >= 3, "{segs:?}");
    for p in &segs[..segs.len() - 1] {
        assert_ne!(
            segment::flags(p).unwrap() & segment::FS_IMMUTABLE_FL,
            0,
            "{} not sealed",
            p.display()
        );
    }
    let r = verify_dir(&d, &trusted(&d));
    assert!(r.intact(), "{}", crate::verify::render_text(&r));
}

#[test]
fn a_used_key_dir_cannot_start_another_log() {
    let d = Dirs::new();
    write_session(d.cfg(), 1).close("done").unwrap();
    let mut other = d.cfg();
    other.log_dir = d.tmp.path().join("other-log");
    let e = Store::open(other).err().unwrap().to_string();
    assert!(e.contains("a new log needs its own keys"), "{e}");
}

#[test]
fn a_config_change_is_recorded() {
    let d = Dirs::new();
    write_session(d.cfg(), 3).close("done").unwrap();
    let mut cfg = d.cfg();
    cfg.checkpoint_every = 77;
    write_session(cfg.clone(), 3).close("done").unwrap();
    write_session(cfg, 3).close("done").unwrap();
    let text: String = segment::list(&d.log())
        .unwrap()
        .iter()
        .map(|p| fs::read_to_string(p).unwrap())
        .collect();
    let configs: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("\"kind\":\"config\""))
        .collect();
    assert_eq!(configs.len(), 1, "one change, one record");
    assert!(configs[0].contains("\"checkpoint_every\":77"));
    let genesis = text.lines().next().unwrap();
    let old = genesis
        .split("\"config_digest\":\"")
        .nth(1)
        .unwrap()
        .get(..64)
        .unwrap();
    assert!(configs[0].contains(&format!("\"previous_digest\":\"{old}\"")));
    assert!(verify_dir(&d, &trusted(&d)).intact());
}

/// Copies a store (log and keys) the way a restore from backup would.
fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    fs::set_permissions(to, fs::metadata(from).unwrap().permissions()).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.path().is_dir() {
            copy_tree(&e.path(), &to.join(e.file_name()));
        } else {
            fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

#[test]
fn a_rolled_back_store_that_diverges_is_forked_against_an_anchor() {
    // Root restores an old backup of the log and keys and lets it run on:
    // a history of its own, validly signed. Only an anchor exported from
    // the original shows it.
    let d = Dirs::new();
    write_session(d.cfg(), 20).close("done").unwrap();
    let backup = Dirs::new();
    copy_tree(d.tmp.path(), backup.tmp.path());
    write_session(d.cfg(), 20)
        .close("original goes on")
        .unwrap();
    let anchor = recover::latest_note(&d.log()).unwrap().unwrap();
    let mut cfg = backup.cfg();
    cfg.log_dir = backup.log();
    cfg.key_dir = backup.keys();
    let mut s = write_session(cfg, 5);
    for i in 0..40 {
        s.accept(event(1000 + i)).unwrap();
    }
    s.close("the restored copy goes on differently").unwrap();
    let opts = Options {
        anchor: Some(anchor),
        ..Options::default()
    };
    let r = verify_dir(&backup, &opts);
    assert_eq!(
        r.kinds(),
        vec![VerdictKind::Forked],
        "{}",
        crate::verify::render_text(&r)
    );
    // The original still matches its own anchor.
    assert!(verify_dir(&d, &opts).intact());
}

#[test]
fn a_crash_between_announcing_and_closing_an_epoch_is_finished_on_restart() {
    let d = Dirs::new();
    let mut s = write_session(d.cfg(), 5);
    // Announced and durable, but the closing checkpoint never written.
    let next = s.keys.create_epoch(1).unwrap();
    s.writer.announce(&next).unwrap();
    s.commit().unwrap();
    drop(s);
    let mut s = Store::open(d.cfg()).unwrap();
    assert_eq!(
        s.epoch(),
        1,
        "the restart closed epoch 0 and signs with epoch 1"
    );
    s.accept(event(9)).unwrap();
    s.close("done").unwrap();
    assert_eq!(
        KeyDir::open(&d.keys()).unwrap().secret_epochs().unwrap(),
        vec![1]
    );
    let r = verify_dir(&d, &trusted(&d));
    assert!(r.intact(), "{}", crate::verify::render_text(&r));
    assert_eq!((r.summary.epochs, r.summary.recoveries), (2, 1));
}

#[test]
fn a_crash_after_closing_but_before_erasing_erases_on_restart() {
    let d = Dirs::new();
    let mut s = write_session(d.cfg(), 5);
    let next = s.keys.create_epoch(1).unwrap();
    s.writer.rotate(next).unwrap();
    s.commit().unwrap();
    // Killed before the old secret went.
    assert_eq!(s.keys.secret_epochs().unwrap(), vec![0, 1]);
    std::mem::forget(s);
    // (The forgotten store still holds the lock in this process: a real
    // crash releases it. Drop the lock by hand.)
    let _ = fs::remove_file(d.log().join("lock"));
    let s = Store::open(d.cfg()).unwrap();
    assert_eq!(
        KeyDir::open(&d.keys()).unwrap().secret_epochs().unwrap(),
        vec![1]
    );
    s.close("done").unwrap();
    assert!(verify_dir(&d, &trusted(&d)).intact());
}

#[test]
fn a_restart_refuses_to_extend_a_tail_that_does_not_validate() {
    let d = Dirs::new();
    write_session(d.cfg(), 5).close("done").unwrap();
    let seg = segment::list(&d.log()).unwrap().pop().unwrap();
    // A complete but forged line appended (O_APPEND works on +a files).
    let mut f = fs::OpenOptions::new().append(true).open(&seg).unwrap();
    f.write_all(b"{\"hash\":\"00\",\"kind\":\"exec\"}\n")
        .unwrap();
    let err = Store::open(d.cfg()).err().unwrap();
    let e = crate::error_text(&err);
    assert!(e.contains("refusing to extend"), "{e}");
    assert!(e.contains(&segment::file_name(&seg)), "names the file: {e}");
    // The kind of failure is in the type: the last line does not parse.
    let lines = fs::read(&seg)
        .unwrap()
        .iter()
        .filter(|&&b| b == b'\n')
        .count();
    assert!(
        matches!(
            &err,
            StoreError::TailInvalid {
                source: RecoverError::Line { at, .. },
                ..
            } if at.file == seg && at.line == lines
        ),
        "{err:?}"
    );
}

/// A tmpfs mounted over a directory for one test, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Tmpfs {
        use std::ffi::CString;
        fs::create_dir_all(dir).unwrap();
        let target = CString::new(dir.to_str().unwrap()).unwrap();
        let opts = CString::new(format!("size={size},mode=0700")).unwrap();
        // SAFETY: valid C strings; root (the store tests need it anyway).
        let r = unsafe {
            libc::mount(
                c"tmpfs".as_ptr(),
                target.as_ptr(),
                c"tmpfs".as_ptr(),
                0,
                opts.as_ptr().cast(),
            )
        };
        assert_eq!(r, 0, "mount tmpfs: {}", io::Error::last_os_error());
        Tmpfs(dir.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = segment::unprotect_tree(&self.0);
        let target = std::ffi::CString::new(self.0.to_str().unwrap()).unwrap();
        // SAFETY: as in mount.
        unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
    }
}

#[test]
fn a_full_filesystem_ends_the_log_with_a_store_error_reported_incomplete() {
    let d = Dirs::new();
    let _fs = Tmpfs::mount(&d.log(), "192k");
    let mut s = Store::open(d.cfg()).unwrap();
    s.start(Json::new()).unwrap();
    let mut failed = None;
    for i in 0..200_000 {
        if let Err(e) = s.accept(event(i)).and_then(|_| s.flush()) {
            failed = Some(crate::error_text(&e));
            break;
        }
    }
    let failed = failed.expect("a 192 KiB filesystem fills up");
    assert!(failed.contains("No space left on device"), "{failed}");
    // Nothing more is written (no retry of a half-written buffer).
    assert!(s.flush().is_err());
    assert!(s.close("done").is_err());
    let r = verify_dir(&d, &trusted(&d));
    assert_eq!(
        r.status(),
        crate::verify::Status::Incomplete,
        "{}",
        crate::verify::render_text(&r)
    );
    let why = r.incomplete().unwrap().reason.clone().unwrap_or_default();
    assert!(why.contains("No space left on device"), "{why}");
}
