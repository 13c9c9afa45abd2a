//! Harness for the root integration tests: real probes, a real cgroup per
//! test, real processes. Each test creates its own cgroup under
//! `<cgroup2>/sandbox-audit-test/`, so tests can run in parallel.

use std::{
    ffi::OsStr,
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus},
    sync::{
        Once,
        atomic::{AtomicU32, Ordering},
    },
    time::{Duration, Instant},
};

use audit_capture::{
    cgroup::{self, Cgroup2, CgroupTarget},
    drain::{Drain, DrainStats},
    probes::{ProbeOptions, Scope},
    syscalls::Family,
};
use audit_log::record::Record;
use serde_json::Value;

/// A fresh cgroup for one test, removed (after killing stragglers) on drop.
pub struct TestCgroup {
    pub target: CgroupTarget,
}

impl TestCgroup {
    pub fn new(name: &str) -> TestCgroup {
        static N: AtomicU32 = AtomicU32::new(0);
        let cg2 = Cgroup2::find().expect("cgroup v2 mounted");
        let rel = format!(
            "sandbox-audit-test/{name}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        );
        TestCgroup {
            target: cg2.create(Path::new(&rel)).expect("create test cgroup"),
        }
    }

    pub fn path(&self) -> &Path {
        &self.target.path
    }

    /// Spawns `cmd` so that it enters this cgroup before it execs.
    pub fn spawn(&self, cmd: &mut Command) -> Child {
        let procs = self.target.path.join("cgroup.procs");
        let procs = std::ffi::CString::new(procs.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: open/write/close are async-signal-safe.
        unsafe {
            cmd.pre_exec(move || {
                let fd = libc::open(procs.as_ptr(), libc::O_WRONLY);
                if fd < 0 || libc::write(fd, b"0\n".as_ptr().cast(), 2) != 2 {
                    return Err(std::io::Error::last_os_error());
                }
                libc::close(fd);
                Ok(())
            });
        }
        cmd.spawn().expect("spawn test process")
    }

    /// Waits until no process is left in the cgroup.
    pub fn wait_empty(&self, timeout: Duration) {
        let t = Instant::now();
        while cgroup::populated(self.path()).expect("read cgroup.events") {
            assert!(
                t.elapsed() < timeout,
                "cgroup {} still populated",
                self.path().display()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        if let Some(c) = self.drain.take() {
            c.release();
        }
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        let _ = cgroup::kill_all(self.path());
        for _ in 0..200 {
            if !cgroup::populated(self.path()).unwrap_or(false) {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = cgroup::remove(self.path());
    }
}

/// A running capture plus everything it has produced so far.
pub struct Recorder {
    drain: Option<Drain>,
    pub records: Vec<Record>,
    /// How long `pump_while` waits for a kernel wakeup between drains.
    pub interval: Duration,
}

impl Recorder {
    /// Audits the cgroup with process probes plus the given syscall families
    /// (tests attach only what they check: each syscall tracepoint takes the
    /// kernel ~75 ms to detach).
    pub fn cgroup(cg: &TestCgroup, families: &[Family]) -> Recorder {
        let opts = ProbeOptions {
            families: families.to_vec(),
            ..ProbeOptions::default()
        };
        Recorder::start(Scope::Cgroup(cg.target.clone()), &opts)
    }

    pub fn start(scope: Scope, opts: &ProbeOptions) -> Recorder {
        let drain = Drain::start(scope, opts).expect("load and attach probes");
        Recorder {
            drain: Some(drain),
            records: Vec::new(),
            interval: Duration::from_millis(20),
        }
    }

    fn live(&mut self) -> &mut Drain {
        self.drain.as_mut().expect("the drain is live until drop")
    }

    pub fn stats(&self) -> DrainStats {
        self.drain.as_ref().map(|c| c.stats).unwrap_or_default()
    }

    /// Drains until the ring buffer stays empty.
    pub fn drain(&mut self) {
        let mut out = std::mem::take(&mut self.records);
        self.live().drain(&mut out).expect("drain");
        self.records = out;
    }

    /// Pumps while `f` says keep going (e.g. a child still runs), then drains.
    pub fn pump_while(&mut self, mut f: impl FnMut() -> bool) {
        let interval = self.interval;
        let mut out = std::mem::take(&mut self.records);
        while f() {
            self.live().pump(interval, &mut out).expect("pump");
        }
        self.records = out;
        self.drain();
    }

    /// All records as JSON objects, in arrival order.
    pub fn json(&self) -> Vec<Value> {
        self.records
            .iter()
            .map(|r| Value::Object(r.to_json()))
            .collect()
    }

    pub fn of_kind(&self, kind: &str) -> Vec<Value> {
        self.json()
            .into_iter()
            .filter(|r| r["kind"] == kind)
            .collect()
    }

    /// Sum of `loss.kinds[kind]` over all loss records.
    pub fn lost(&self, kind: &str) -> u64 {
        self.records
            .iter()
            .filter(|r| r.kind == "loss")
            .map(|r| r.fields["kinds"][kind].as_u64().unwrap_or(0))
            .sum()
    }
}

/// Runs `cmd` inside `cg` under a fresh recorder until it and all its
/// descendants exited; returns the recorder and the command's status.
pub fn record_in_cgroup(
    cg: &TestCgroup,
    families: &[Family],
    cmd: &mut Command,
) -> (Recorder, ExitStatus) {
    let mut rec = Recorder::cgroup(cg, families);
    let mut child = cg.spawn(cmd);
    let mut status = None;
    rec.pump_while(|| {
        if status.is_none() {
            status = child.try_wait().expect("wait");
        }
        status.is_none() || cgroup::populated(cg.path()).unwrap_or(false)
    });
    // pump_while returns only once the status is known; wait() reaps it
    // again if not, so no path leaves a zombie.
    let status = match status {
        Some(s) => s,
        None => child.wait().expect("wait"),
    };
    (rec, status)
}

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Builds (once per test binary) the workspace's binaries and returns one.
fn built(bin: &str) -> PathBuf {
    static BUILD: Once = Once::new();
    BUILD.call_once(|| {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let status = Command::new(cargo)
            .current_dir(workspace_root())
            .args([
                "build",
                "--quiet",
                "-p",
                "sandbox-audit",
                "-p",
                "integration-tests",
                "--bins",
            ])
            .status()
            .expect("run cargo build");
        assert!(status.success(), "cargo build of the test binaries failed");
    });
    workspace_root().join("target/debug").join(bin)
}

/// The `sandbox-audit` binary.
pub fn sandbox_audit() -> PathBuf {
    built("sandbox-audit")
}

/// The `workload` helper binary (tests/src/bin/workload.rs).
pub fn workload() -> PathBuf {
    built("workload")
}

/// A `Command` for the workload helper with the given subcommand and args.
pub fn workload_cmd<I, S>(args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut c = Command::new(workload());
    c.args(args);
    c
}

/// Lines `key=value` the workload printed, as (key, value) pairs.
pub fn parse_report(stdout: &str) -> Vec<(String, String)> {
    stdout
        .lines()
        .filter_map(|l| {
            l.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
        })
        .collect()
}

/// Does `record` contain everything in `pattern` (objects compared
/// key by key, recursively; other values by equality)?
pub fn matches(record: &Value, pattern: &Value) -> bool {
    match (record, pattern) {
        (Value::Object(r), Value::Object(p)) => p
            .iter()
            .all(|(k, v)| r.get(k).is_some_and(|rv| matches(rv, v))),
        (r, p) => r == p,
    }
}

/// Asserts that `patterns` match records in this order (other records may
/// come between them). Panics showing the first pattern not found.
pub fn expect_in_order(records: &[Value], patterns: &[Value]) {
    let mut from = 0;
    for p in patterns {
        match records[from..].iter().position(|r| matches(r, p)) {
            Some(i) => from += i + 1,
            None => {
                let near: Vec<&Value> = records.iter().filter(|r| r["kind"] == p["kind"]).collect();
                panic!(
                    "no record matching {p} after position {from}; records of that kind: {near:#?}"
                );
            }
        }
    }
}

/// Runs the workload `args` in a fresh cgroup under a recorder while the
/// same workload (`outside_args`) runs outside it at the same time. Returns
/// the inside run's records (all of them) and report, and asserts that no
/// record came from the outside run.
pub fn inside_and_outside(
    name: &str,
    families: &[Family],
    args: &[&str],
    outside_args: &[&str],
) -> (Vec<Value>, Vec<(String, String)>) {
    let cg = TestCgroup::new(name);
    let mut rec = Recorder::cgroup(&cg, families);
    let mut outside = workload_cmd(outside_args)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn outside");
    let mut inside = cg.spawn(workload_cmd(args).stdout(std::process::Stdio::piped()));
    let mut status = None;
    rec.pump_while(|| {
        status = status.or_else(|| inside.try_wait().expect("wait"));
        status.is_none()
    });
    cg.wait_empty(Duration::from_secs(10));
    assert!(outside.wait().expect("wait outside").success());
    rec.drain();
    assert!(status.expect("status").success());
    let report = parse_report(
        &std::io::read_to_string(inside.stdout.take().expect("stdout")).expect("read"),
    );
    let outside_report = parse_report(
        &std::io::read_to_string(outside.stdout.take().expect("stdout")).expect("read"),
    );
    let outside_pids: Vec<u64> = outside_report
        .iter()
        .filter_map(|(_, v)| v.parse().ok())
        .collect();
    let records = rec.json();
    for r in &records {
        let pid = r["proc"]["pid"].as_u64().unwrap_or(0);
        assert!(
            !outside_pids.contains(&pid),
            "record from a process outside the scope: {r}"
        );
        assert_eq!(
            r["proc"]["cgroup_id"], cg.target.id,
            "record from another cgroup: {r}"
        );
    }
    assert!(!outside_pids.is_empty(), "the outside run reported no pids");
    (records, report)
}

/// A scratch directory for one test, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let p = std::env::temp_dir().join(format!(
            "sandbox-audit-{name}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("create temp dir");
        TempDir(p)
    }

    pub fn path(&self) -> &str {
        self.0.to_str().expect("utf-8 temp path")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        // Log segments are append-only/immutable (chattr +a/+i): unlock first.
        let _ = audit_log::segment::unprotect_tree(&self.0);
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
