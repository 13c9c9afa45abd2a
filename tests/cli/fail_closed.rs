//! `run --fail-closed`: when the agent dies without a clean stop, the
//! watchdog freezes the audited cgroup; a clean stop leaves it running.

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use integration_tests::{TempDir, TestCgroup, sandbox_audit};

fn frozen(cg: &TestCgroup) -> bool {
    std::fs::read_to_string(cg.path().join("cgroup.events"))
        .unwrap()
        .lines()
        .any(|l| l == "frozen 1")
}

/// Starts `run --cgroup CG --fail-closed` and waits until it audits.
fn start_run(cg: &TestCgroup, dir: &TempDir) -> Child {
    let mut daemon = Command::new(sandbox_audit())
        .args(["run", "--fail-closed", "--families", "process", "--cgroup"])
        .arg(cg.path())
        .args(["--log-dir", &format!("{}/log", dir.path())])
        .args(["--key-dir", &format!("{}/keys", dir.path())])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(daemon.stderr.take().unwrap());
    let mut line = String::new();
    while !line.contains("auditing") {
        line.clear();
        assert!(err.read_line(&mut line).unwrap() > 0, "run exited early");
    }
    // Keep draining stderr so the daemon never blocks on it.
    std::thread::spawn(move || std::io::copy(&mut err, &mut std::io::sink()));
    daemon
}

#[test]
fn the_watchdog_freezes_the_cgroup_when_the_agent_is_killed() {
    let dir = TempDir::new("fc-kill");
    let cg = TestCgroup::new("fc-kill");
    let mut sleeper = cg.spawn(Command::new("sleep").arg("1000"));
    let mut daemon = start_run(&cg, &dir);
    daemon.kill().unwrap();
    daemon.wait().unwrap();
    let t = Instant::now();
    while !frozen(&cg) {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "the cgroup was not frozen"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = std::fs::write(cg.path().join("cgroup.freeze"), "0");
    let _ = sleeper.kill();
    let _ = sleeper.wait();
}

#[test]
fn a_clean_stop_leaves_the_cgroup_running() {
    let dir = TempDir::new("fc-clean");
    let cg = TestCgroup::new("fc-clean");
    let mut sleeper = cg.spawn(Command::new("sleep").arg("1000"));
    let mut daemon = start_run(&cg, &dir);
    // SAFETY: signalling our own child.
    unsafe { libc::kill(daemon.id() as i32, libc::SIGTERM) };
    assert!(daemon.wait().unwrap().success());
    // Give a (wrongly) triggered watchdog ample time to act.
    std::thread::sleep(Duration::from_millis(500));
    assert!(!frozen(&cg), "a clean stop froze the cgroup");
    let _ = sleeper.kill();
    let _ = sleeper.wait();
}
