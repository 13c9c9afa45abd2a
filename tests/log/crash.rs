//! Crash safety with the real binary: `sandbox-audit run` is killed with
//! SIGKILL 20 times at random points (during start-up, recovery, and a
//! capture burst); after each restart the log verifies (the restart validated
//! the tail and continued the same chain), and every record the store had
//! reported durable (fsynced) before a kill is still there, unchanged.

#[path = "util/mod.rs"]
mod store_util;

use std::{
    io::{BufRead, BufReader},
    path::Path,
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant, SystemTime},
};

use audit_log::{chain::parse_line, segment};
use integration_tests::{TempDir, sandbox_audit};
use store_util::verify_json;

/// Last "durable through seq N hash H" line the store printed.
type Durable = Arc<Mutex<Option<(u64, String)>>>;

struct Daemon {
    child: Child,
    durable: Durable,
    errors: Arc<Mutex<String>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

/// Never leave a capture running behind a failed test.
impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A child process killed when dropped.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(pid: u32, log: &str, keys: &str) -> Daemon {
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
        .args([
            "--group-commit-ms",
            "20",
            "--checkpoint-ms",
            "100",
            "--checkpoint-every",
            "300",
        ])
        .args(["--epoch-secs", "2", "--segment-max-mib", "1"])
        // Process probes only: attaching and (after SIGKILL) detaching the
        // ~140 syscall tracepoints takes the kernel seconds per round, and
        // the store is what this test is about.
        .args(["--families", "process"])
        .env("RUST_LOG", "info,audit_log::store=debug")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start sandbox-audit run");
    let durable: Durable = Arc::default();
    let errors = Arc::new(Mutex::new(String::new()));
    let stderr = child.stderr.take().expect("stderr");
    let (d, e) = (durable.clone(), errors.clone());
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(rest) = line.split("durable through seq ").nth(1) {
                let mut w = rest.split_whitespace();
                if let (Some(n), Some("hash"), Some(h)) = (w.next(), w.next(), w.next())
                    && let Ok(n) = n.parse()
                {
                    *d.lock().unwrap() = Some((n, h.to_string()));
                }
            } else if line.contains("ERROR") || line.contains("error:") {
                e.lock().unwrap().push_str(&line);
            }
        }
    });
    Daemon {
        child,
        durable,
        errors,
        reader: Some(reader),
    }
}

impl Daemon {
    fn durable(&self) -> Option<(u64, String)> {
        self.durable.lock().unwrap().clone()
    }

    /// SIGKILL, then everything it printed before dying.
    fn kill_9(&mut self) -> Option<(u64, String)> {
        self.child.kill().expect("kill -9");
        self.child.wait().expect("reap");
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        self.durable()
    }

    /// Waits until this session has committed something past `after`.
    fn wait_durable_past(&mut self, after: Option<u64>) {
        let t = Instant::now();
        loop {
            if let Some((n, _)) = self.durable()
                && after.is_none_or(|a| n > a)
            {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "sandbox-audit exited ({status}) at restart: {}",
                    self.errors.lock().unwrap()
                );
            }
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "no durable record after restart"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// Which of `points` (seq, hash) are in the log with exactly that hash.
/// Streams the segments: the log may be large.
fn missing(log: &Path, points: &[(u64, String)]) -> Vec<(u64, String)> {
    let mut found = vec![false; points.len()];
    for seg in segment::list(log).expect("segments") {
        let data = std::fs::read(&seg).expect("read segment");
        for line in data.split(|&b| b == b'\n') {
            if let Ok(p) = parse_line(line) {
                for (i, (n, h)) in points.iter().enumerate() {
                    found[i] |= p.seq == *n && hex::encode(p.hash) == *h;
                }
            }
        }
    }
    points
        .iter()
        .zip(found)
        .filter(|(_, f)| !f)
        .map(|(p, _)| p.clone())
        .collect()
}

#[test]
fn twenty_kill_9_at_random_points_lose_nothing_durable() {
    let dir = TempDir::new("crash");
    let (log, keys) = (
        format!("{}/log", dir.path()),
        format!("{}/keys", dir.path()),
    );
    // Short processes in a loop: a few thousand records a second.
    let burst = Reaped(
        Command::new("sh")
            .args(["-c", "while :; do /bin/true; sleep 0.002; done"])
            .spawn()
            .expect("start the burst"),
    );
    let mut rng = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    eprintln!("kill schedule seed {rng}");
    let mut next = move |n: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % n
    };
    let trust = format!("{keys}/trust-root.vkey");
    let mut survived: Vec<(u64, String)> = Vec::new();
    let mut last_durable: Option<u64> = None;
    for round in 0..20 {
        let mut d = start(burst.0.id(), &log, &keys);
        if round > 0 {
            // The restart validated the tail, recorded the recovery and
            // committed: the log verifies while it keeps writing.
            d.wait_durable_past(last_durable);
            let (code, v) = verify_json(Path::new(&log), &["--pubkey", &trust]);
            assert_eq!(code, 0, "round {round}: {v:#}");
            let lost = missing(
                Path::new(&log),
                &survived[survived.len().saturating_sub(1)..],
            );
            assert!(
                lost.is_empty(),
                "round {round}: durable records lost: {lost:?}"
            );
        }
        // Anywhere from start-up to well into the burst.
        std::thread::sleep(Duration::from_millis(next(2500)));
        // The last durable point it reported before SIGKILL.
        if let Some(p) = d.kill_9() {
            last_durable = Some(p.0);
            survived.push(p);
        }
    }
    // A clean last session, then the whole log: intact, continuous, every
    // durable point of every killed session still there.
    let mut d = start(burst.0.id(), &log, &keys);
    d.wait_durable_past(last_durable);
    std::thread::sleep(Duration::from_millis(300));
    unsafe { libc::kill(d.child.id() as i32, libc::SIGTERM) };
    assert!(
        d.child.wait().expect("wait").success(),
        "{}",
        d.errors.lock().unwrap()
    );
    drop(burst);

    let (code, v) = verify_json(Path::new(&log), &["--pubkey", &trust]);
    assert_eq!(code, 0, "{v:#}");
    let s = &v["summary"];
    assert!(s["recoveries"].as_u64().unwrap() >= 15, "{s}");
    assert!(s["epochs"].as_u64().unwrap() >= 2, "{s}");
    let lost = missing(Path::new(&log), &survived);
    assert!(lost.is_empty(), "durable records lost: {lost:?}");
    assert!(
        survived.len() >= 15,
        "too few rounds reached a commit: {survived:?}"
    );
}
