//! The `sandbox-audit` binary end to end: exit statuses and clear errors.

use std::process::{Command, Output};

use integration_tests::sandbox_audit;

/// Runs sandbox-audit; `exec` and `run` get a throwaway log and key
/// directory and process probes only (what these tests look at).
fn run(args: &[&str]) -> Output {
    let dir = integration_tests::TempDir::new("cli");
    let mut cmd = Command::new(sandbox_audit());
    match args.split_first() {
        Some((&sub, rest)) if sub == "exec" || sub == "run" => {
            cmd.arg(sub)
                .args(["--families", "process"])
                .args(store_args(&dir))
                .args(rest);
        }
        _ => {
            cmd.args(args);
        }
    }
    cmd.output().expect("run sandbox-audit")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn exec_exits_with_the_commands_status() {
    assert_eq!(
        run(&["exec", "--", "sh", "-c", "exit 7"]).status.code(),
        Some(7)
    );
    assert_eq!(
        run(&["exec", "--", "sh", "-c", "kill -KILL $$"])
            .status
            .code(),
        Some(128 + 9)
    );
    assert_eq!(run(&["exec", "--", "true"]).status.code(), Some(0));
}

#[test]
fn exec_of_a_missing_program_is_127_with_a_clear_error() {
    let o = run(&["exec", "--", "/nonexistent/program"]);
    assert_eq!(o.status.code(), Some(127));
    assert!(
        stderr(&o).contains("cannot run /nonexistent/program"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn not_root_is_refused_clearly() {
    let o = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(sandbox_audit())
        .args(["exec", "--", "true"])
        .output()
        .expect("setpriv");
    assert_eq!(o.status.code(), Some(125), "{}", stderr(&o));
    assert!(stderr(&o).contains("must run as root"), "{}", stderr(&o));
}

#[test]
fn missing_cgroup_and_pid_are_clear_errors() {
    let o = run(&["run", "--cgroup", "/no/such/cgroup"]);
    assert_eq!(o.status.code(), Some(125));
    assert!(
        stderr(&o).contains("cgroup /no/such/cgroup does not exist"),
        "{}",
        stderr(&o)
    );
    let o = run(&["run", "--pid", "4000000000"]);
    assert_eq!(o.status.code(), Some(125));
    assert!(
        stderr(&o).contains("no process with pid 4000000000"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn bad_cli_arguments_are_usage_errors_not_panics() {
    for args in [
        &["run"][..],
        &["run", "--cgroup", "/x", "--pid", "1"],
        &["run", "--pid", "notanumber"],
        &["exec"],
        &["exec", "--ring-buffer-mib", "3", "--", "true"],
        &["exec", "--ring-buffer-mib", "0", "--", "true"],
    ] {
        let o = run(args);
        let code = o.status.code();
        assert!(
            code == Some(2) || code == Some(125),
            "{args:?}: {code:?} {}",
            stderr(&o)
        );
        assert!(!stderr(&o).contains("panicked"), "{args:?}: {}", stderr(&o));
        assert!(!stderr(&o).is_empty());
    }
}

/// Store flags for a throwaway log under `dir`.
fn store_args(dir: &integration_tests::TempDir) -> Vec<String> {
    vec![
        "--log-dir".into(),
        format!("{}/log", dir.path()),
        "--key-dir".into(),
        format!("{}/keys", dir.path()),
        "--print".into(),
    ]
}

fn printed(o: &Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

#[test]
fn exec_waits_for_descendants_that_outlive_the_command() {
    let dir = integration_tests::TempDir::new("outlive");
    let t = std::time::Instant::now();
    let o = Command::new(sandbox_audit())
        .arg("exec")
        .args(["--families", "process"])
        .args(store_args(&dir))
        .args([
            "--",
            "sh",
            "-c",
            "(sleep 1; /bin/true late-marker) > /dev/null 2>&1 & exit 0",
        ])
        .output()
        .expect("run exec");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        t.elapsed() >= std::time::Duration::from_secs(1),
        "exec returned before the background job ended"
    );
    let records = printed(&o);
    let late = records
        .iter()
        .find(|r| r["kind"] == "exec" && r["argv"][1] == "late-marker");
    let late = late.unwrap_or_else(|| panic!("the late exec is missing: {records:#?}"));
    let pid = &late["proc"]["pid"];
    assert!(
        records
            .iter()
            .any(|r| r["kind"] == "exit" && &r["proc"]["pid"] == pid),
        "its exit is missing"
    );
}

#[test]
fn run_drains_everything_before_exiting_on_sigterm() {
    use std::io::{BufRead, BufReader};
    let dir = integration_tests::TempDir::new("run-term");
    let cg = integration_tests::TestCgroup::new("run-term");
    let mut daemon = Command::new(sandbox_audit())
        .args(["run", "--cgroup"])
        .arg(cg.path())
        .args(["--families", "process"])
        .args(store_args(&dir))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start run");
    // Ready once it says what it audits.
    let mut err = BufReader::new(daemon.stderr.take().unwrap());
    let mut line = String::new();
    while !line.contains("auditing") {
        line.clear();
        assert!(
            err.read_line(&mut line).unwrap() > 0,
            "run exited before it was ready"
        );
    }
    let stdout = daemon.stdout.take().unwrap();
    let reader = std::thread::spawn(move || std::io::read_to_string(stdout).unwrap());
    let mut marker = cg.spawn(Command::new("/bin/true").arg("run-marker"));
    assert!(marker.wait().unwrap().success());
    // Straight away: the exec may still sit in the ring buffer.
    unsafe { libc::kill(daemon.id() as i32, libc::SIGTERM) };
    let status = daemon.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    let out = reader.join().unwrap();
    let records: Vec<serde_json::Value> = out
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert!(
        records
            .iter()
            .any(|r| r["kind"] == "exec" && r["argv"][1] == "run-marker"),
        "the exec that happened right before SIGTERM was not drained: {records:#?}"
    );
    assert!(
        records.iter().any(|r| r["kind"] == "stop"),
        "no stop record"
    );
}

#[test]
fn missing_tracefs_is_a_clear_error() {
    // In a private mount namespace, take tracefs (and debugfs, which
    // automounts it) away, then ask for syscall probes.
    let script = format!(
        "umount /sys/kernel/debug/tracing 2>/dev/null; umount /sys/kernel/debug 2>/dev/null; \
         umount /sys/kernel/tracing 2>/dev/null; exec {} exec --families file -- true",
        sandbox_audit().display()
    );
    let o = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", &script])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(125), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("tracefs is not mounted"),
        "{}",
        stderr(&o)
    );
}
