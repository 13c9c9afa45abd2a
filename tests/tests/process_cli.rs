//! The `sandbox-audit` binary end to end: exit statuses and clear errors.

use std::process::{Command, Output};

use integration_tests::sandbox_audit;

fn run(args: &[&str]) -> Output {
    Command::new(sandbox_audit())
        .args(args)
        .output()
        .expect("run sandbox-audit")
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
