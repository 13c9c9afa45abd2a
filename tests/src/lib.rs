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

use audit_user::{
    capture::Capture,
    cgroup::{self, Cgroup2, CgroupTarget},
    probes::{ProbeOptions, Scope},
    record::Record,
};
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
    pub capture: Capture,
    pub records: Vec<Record>,
    /// How long `pump_while` waits for a kernel wakeup between drains.
    pub interval: Duration,
}

impl Recorder {
    pub fn cgroup(cg: &TestCgroup) -> Recorder {
        Recorder::start(Scope::Cgroup(cg.target.clone()), &ProbeOptions::default())
    }

    pub fn start(scope: Scope, opts: &ProbeOptions) -> Recorder {
        let capture = Capture::start(scope, opts).expect("load and attach probes");
        Recorder {
            capture,
            records: Vec::new(),
            interval: Duration::from_millis(20),
        }
    }

    /// Drains until the ring buffer stays empty.
    pub fn drain(&mut self) {
        self.capture.drain(&mut self.records).expect("drain");
    }

    /// Pumps while `f` says keep going (e.g. a child still runs), then drains.
    pub fn pump_while(&mut self, mut f: impl FnMut() -> bool) {
        while f() {
            self.capture
                .pump(self.interval, &mut self.records)
                .expect("pump");
        }
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
        self.of_kind("loss")
            .iter()
            .map(|r| r["kinds"][kind].as_u64().unwrap_or(0))
            .sum()
    }
}

/// Runs `cmd` inside `cg` under a fresh recorder until it and all its
/// descendants exited; returns the recorder and the command's status.
pub fn record_in_cgroup(cg: &TestCgroup, cmd: &mut Command) -> (Recorder, ExitStatus) {
    let mut rec = Recorder::cgroup(cg);
    let mut child = cg.spawn(cmd);
    let mut status = None;
    rec.pump_while(|| {
        if status.is_none() {
            status = child.try_wait().expect("wait");
        }
        status.is_none() || cgroup::populated(cg.path()).unwrap_or(false)
    });
    (rec, status.expect("status"))
}

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Builds (once per test binary) and returns a binary of this workspace.
fn built(package: &str, bin: &str) -> PathBuf {
    static BUILD: Once = Once::new();
    BUILD.call_once(|| {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let status = Command::new(cargo)
            .current_dir(workspace_root())
            .args([
                "build",
                "--quiet",
                "-p",
                "audit-user",
                "-p",
                "integration-tests",
                "--bins",
            ])
            .status()
            .expect("run cargo build");
        assert!(status.success(), "cargo build of the test binaries failed");
    });
    let _ = package;
    workspace_root().join("target/debug").join(bin)
}

/// The `sandbox-audit` binary.
pub fn sandbox_audit() -> PathBuf {
    built("audit-user", "sandbox-audit")
}

/// The `workload` helper binary (tests/src/bin/workload.rs).
pub fn workload() -> PathBuf {
    built("integration-tests", "workload")
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
