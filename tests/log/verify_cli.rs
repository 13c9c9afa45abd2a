//! `sandbox-audit verify` never misleads, on the real binary: bad input is
//! an error (exit 2) and not a hang or a panic, SIGTERM ends it at once, a
//! foreign lock holder buys no exemption, and a log that stops early (a
//! killed recorder) is reported INCOMPLETE (exit 3). Logs are built with
//! audit-log's writer (fixed keys and record positions) or captured by a
//! real recorder that is then killed.

#[path = "util/mod.rs"]
mod store_util;

use std::{
    fs,
    io::{BufRead, BufReader},
    os::{fd::AsRawFd, unix::process::ExitStatusExt},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use audit_log::{
    chain::Chain, keys::EpochKey, lifecycle, record::Json, record::Record, segment,
    writer::LogWriter,
};
use ed25519_dalek::SigningKey;
use integration_tests::{TempDir, sandbox_audit};
use serde_json::json;
use store_util::{sa, verify_json};

const ORIGIN: &str = "verify-cli.example/log";

fn key(epoch: u64) -> EpochKey {
    EpochKey {
        epoch,
        key: SigningKey::from_bytes(&[epoch as u8 + 40; 32]),
        created: std::time::SystemTime::UNIX_EPOCH,
    }
}

/// A session of `events` records (checkpoint every 50, rotation every
/// 500), ended with `stop` when `stopped`.
fn build(events: u64, stopped: bool) -> Vec<u8> {
    let mut w = LogWriter::genesis(ORIGIN, key(0), &Json::new()).unwrap();
    let digest = w.config_digest().to_string();
    w.append(lifecycle::start(1, Json::new(), &digest)).unwrap();
    for i in 0..events {
        w.append(
            Record::new("exec", 10 + i)
                .with("argv", json!(["git", "status", format!("--path=src/{i}")]))
                .with("proc", json!({"pid": 4000 + i % 50, "comm": "git"})),
        )
        .unwrap();
        if i % 50 == 49 {
            w.checkpoint("count").unwrap();
        }
        if i % 500 == 499 {
            let next = key(w.epoch() + 1);
            w.rotate(next).unwrap();
        }
    }
    if stopped {
        w.append(lifecycle::stop(1 << 40, "done", events)).unwrap();
        w.checkpoint("stop").unwrap();
    }
    std::mem::take(w.out())
}

/// A store directory holding one segment with these bytes.
fn store(dir: &TempDir, bytes: &[u8]) -> PathBuf {
    let log = Path::new(dir.path()).join("log");
    fs::create_dir_all(&log).unwrap();
    fs::write(log.join(segment::name(0, 0)), bytes).unwrap();
    log
}

fn run_verify(args: &[&str]) -> (Option<i32>, String, String) {
    let out = sa(args);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_seq_near_u64_max_is_tampering_not_a_panic() {
    let dir = TempDir::new("verify-overflow");
    let mut bytes = build(20, true);
    let mut chain = Chain::resume(u64::MAX - 1, [9; 32]);
    for i in 0..2 {
        chain
            .append(&Record::new("exec", 99).with("n", i), &mut bytes)
            .unwrap();
    }
    let log = store(&dir, &bytes);
    let (code, v) = verify_json(&log, &[]);
    assert_eq!(code, 1, "{v:#}");
    assert_eq!(v["status"], "tampered");
    assert_eq!(v["verdicts"][0]["kind"], "deleted", "{v:#}");
    // No range is printed backwards.
    for x in v["verdicts"].as_array().unwrap() {
        assert!(x["first_seq"].as_u64() <= x["last_seq"].as_u64(), "{x}");
    }
}

/// Runs verify on a path with a deadline: it must exit (never hang).
fn verify_within(path: &Path, limit: Duration) -> (Option<i32>, String) {
    let mut child = Command::new(sandbox_audit())
        .args(["verify", path.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
            return (status.code(), err);
        }
        if t.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("verify {} still running after {limit:?}", path.display());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_fifo_device_or_directory_segment_is_an_error_not_a_hang() {
    let dir = TempDir::new("verify-fifo");
    let log = store(&dir, &build(10, true));
    // A FIFO named like the next segment, inside the store…
    let fifo = log.join(segment::name(100, 0));
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: valid C string.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    // Generous: an error is immediate; a hang is forever.
    let (code, err) = verify_within(&log, Duration::from_secs(60));
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("is a FIFO, not a regular file"), "{err}");
    assert!(err.contains(&segment::name(100, 0)), "{err}");
    // …and given directly.
    let (code, err) = verify_within(&fifo, Duration::from_secs(60));
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("is a FIFO"), "{err}");
    fs::remove_file(&fifo).unwrap();
    // A character device.
    let (code, err) = verify_within(Path::new("/dev/zero"), Duration::from_secs(60));
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("/dev/zero is a character device"), "{err}");
    // A symbolic link inside the store directory (the store never makes one).
    std::os::unix::fs::symlink("/dev/zero", log.join(segment::name(200, 0))).unwrap();
    let (code, err) = verify_within(&log, Duration::from_secs(60));
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("symbolic link"), "{err}");
}

#[test]
fn sigterm_ends_verify_at_once() {
    let dir = TempDir::new("verify-sigterm");
    let log = store(&dir, &build(100_000, true));
    let seg = log.join(segment::name(0, 0));
    // The same 100k-record segment 200 times: tens of seconds of work.
    let seg = seg.to_str().unwrap().to_string();
    let mut args = vec!["verify".to_string()];
    args.extend(std::iter::repeat_n(seg, 200));
    let mut child = Command::new(sandbox_audit())
        .args(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Let it get going (reading, parsing on every core).
    std::thread::sleep(Duration::from_millis(500));
    assert!(child.try_wait().unwrap().is_none(), "verify ended too soon");
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let t = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if t.elapsed() > Duration::from_secs(2) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("verify ignored SIGTERM for 2 s");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(status.signal(), Some(libc::SIGTERM), "{status:?}");
}

/// Holds flock on DIR/lock as an arbitrary process would (this test
/// binary is not sandbox-audit), with the given contents.
fn foreign_lock(log: &Path, contents: &str) -> fs::File {
    let p = log.join("lock");
    fs::write(&p, contents).unwrap();
    let f = fs::File::open(&p).unwrap();
    // SAFETY: flock on an fd we own.
    assert_eq!(unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) }, 0);
    f
}

#[test]
fn a_foreign_lock_holder_gets_no_live_writer_exemption() {
    let me = std::process::id();
    let start = audit_log::lockfile::start_time(me).unwrap();
    for contents in [String::new(), format!("{me} {start}\n"), "1 1\n".into()] {
        // A finished log with garbage appended: torn-tail, lock or not.
        let dir = TempDir::new("verify-foreign");
        let mut bytes = build(30, true);
        bytes.extend_from_slice(b"{\"garbage");
        let log = store(&dir, &bytes);
        let _held = foreign_lock(&log, &contents);
        let (code, v) = verify_json(&log, &[]);
        assert_eq!(code, 1, "lock {contents:?}: {v:#}");
        assert_eq!(v["verdicts"][0]["kind"], "torn-tail", "{v:#}");
        let notes = v["notes"].to_string();
        assert!(notes.contains("is locked, but"), "{notes}");
        assert!(notes.contains("no live-writer exemption"), "{notes}");

        // An unfinished session with garbage after it: incomplete, never
        // INTACT.
        let dir = TempDir::new("verify-foreign-open");
        let mut bytes = build(30, false);
        bytes.extend_from_slice(b"{\"garbage");
        let log = store(&dir, &bytes);
        let _held = foreign_lock(&log, &contents);
        let (code, v) = verify_json(&log, &[]);
        assert_eq!(code, 3, "lock {contents:?}: {v:#}");
        assert_eq!(v["status"], "incomplete");
        assert_eq!(v["incomplete"]["unfinished"]["length"], 9, "{v:#}");
    }
}

#[test]
fn an_unfinished_session_is_incomplete_with_exit_3() {
    let dir = TempDir::new("verify-incomplete");
    let log = store(&dir, &build(120, false));
    let (code, v) = verify_json(&log, &[]);
    assert_eq!(code, 3, "{v:#}");
    assert_eq!(v["intact"], true);
    assert_eq!(v["incomplete"]["session_seq"], 0, "{v:#}");
    let records = v["summary"]["records"].as_u64().unwrap();
    assert_eq!(v["incomplete"]["last_seq"].as_u64(), Some(records - 1));
    assert_eq!(v["incomplete"]["reason"], serde_json::Value::Null);
    let (code, text, _) = run_verify(&["verify", log.to_str().unwrap()]);
    assert_eq!(code, Some(3));
    assert!(text.starts_with("INCOMPLETE: "), "{text}");
    assert!(
        text.contains(&format!("THE RECORD STOPS EARLY after seq {}", records - 1)),
        "{text}"
    );
}

/// `sandbox-audit run` on a sleeping process, its stderr read for the
/// durable point.
fn recorder(
    log: &str,
    keys: &str,
    pid: u32,
) -> (std::process::Child, std::sync::mpsc::Receiver<String>) {
    let mut child = Command::new(sandbox_audit())
        .args([
            "run",
            "--pid",
            &pid.to_string(),
            "--log-dir",
            log,
            "--key-dir",
            keys,
        ])
        .env("RUST_LOG", "audit_log::store=debug,info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let err = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    (child, rx)
}

#[test]
fn a_recorder_killed_with_sigkill_leaves_an_incomplete_log() {
    let dir = TempDir::new("verify-killed");
    let (log, keys) = (
        format!("{}/log", dir.path()),
        format!("{}/keys", dir.path()),
    );
    let mut target = Command::new("sleep").arg("600").spawn().unwrap();
    let (mut child, lines) = recorder(&log, &keys, target.id());
    // Wait (generously) for the first durable commit.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let line = lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .unwrap_or_else(|_| panic!("the recorder never reported a durable commit"));
        if line.contains("durable through seq") {
            break;
        }
    }
    // While it writes: the open session is expected (a running
    // sandbox-audit holds this store's lock).
    let (code, v) = verify_json(Path::new(&log), &[]);
    assert_eq!(code, 0, "{v:#}");
    child.kill().unwrap();
    child.wait().unwrap();
    let (code, v) = verify_json(Path::new(&log), &[]);
    assert_eq!(code, 3, "{v:#}");
    assert_eq!(v["status"], "incomplete");
    assert_eq!(v["verdicts"].as_array().unwrap().len(), 0, "{v:#}");
    let _ = target.kill();
    let _ = target.wait();
    // A restart accounts for the killed session; a clean stop closes the
    // new one: intact again, with the gap recorded.
    let mut target = Command::new("sleep").arg("600").spawn().unwrap();
    let (mut child, lines) = recorder(&log, &keys, target.id());
    let deadline = Instant::now() + Duration::from_secs(120);
    while !lines
        .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        .expect("restarted recorder commits")
        .contains("durable through seq")
    {}
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert!(child.wait().unwrap().success());
    let (code, v) = verify_json(Path::new(&log), &[]);
    assert_eq!(code, 0, "{v:#}");
    assert_eq!(v["summary"]["recoveries"], 1, "{v:#}");
    assert!(v["summary"]["longest_gap_ns"].as_u64().is_some(), "{v:#}");
    let _ = target.kill();
    let _ = target.wait();
}
