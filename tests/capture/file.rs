//! File-system actions: each produces exactly the expected record (resolved
//! path, flags, result or errno); the same actions outside the scope nothing.

use audit_capture::syscalls::Family;
use integration_tests::{TempDir, expect_in_order, inside_and_outside};
use serde_json::json;

#[test]
fn file_actions_are_recorded_with_resolved_paths_and_results() {
    let (inside, outside) = (TempDir::new("file-in"), TempDir::new("file-out"));
    let d = inside.path();
    let (records, report) = inside_and_outside(
        "file",
        &[Family::File],
        &["file", d],
        &["file", outside.path()],
    );
    let pid: u64 = report
        .iter()
        .find(|(k, _)| k == "pid")
        .unwrap()
        .1
        .parse()
        .unwrap();
    let nobody: u64 = report
        .iter()
        .find(|(k, _)| k == "nobody_child")
        .unwrap()
        .1
        .parse()
        .unwrap();
    let p = |rel: &str| format!("{d}/{rel}");
    let me = json!({"pid": pid});
    let ok = "success";
    expect_in_order(
        &records,
        &[
            json!({"kind": "open", "syscall": "openat", "proc": me, "path": p("created.txt"), "path_arg": "created.txt",
               "path_resolution": "opened_file", "access": "write", "mode": 0o640, "result": ok, "fd": 3,
               "flags": libc::O_CREAT | libc::O_WRONLY | libc::O_TRUNC | libc::O_CLOEXEC}),
            json!({"kind": "write", "syscall": "write", "path": p("created.txt"), "path_resolution": "fd", "fd": 3, "bytes": 5, "result": ok}),
            json!({"kind": "open", "path": d, "path_resolution": "opened_file", "access": "read", "result": ok}),
            json!({"kind": "open", "dirfd": 3, "path": p("created.txt"), "path_resolution": "opened_file", "result": ok}),
            json!({"kind": "open", "dirfd": 3, "path": p("missing.txt"), "path_arg": "missing.txt", "path_resolution": "dirfd",
               "result": "failure", "errno": libc::ENOENT, "errno_name": "ENOENT"}),
            json!({"kind": "mkdir", "syscall": "mkdir", "path": p("sub"), "path_resolution": "cwd", "mode": 0o750, "result": ok}),
            json!({"kind": "rename", "path": p("created.txt"), "new_path": p("sub/renamed.txt"), "new_path_arg": "sub/renamed.txt", "result": ok}),
            json!({"kind": "link", "path": p("sub/renamed.txt"), "new_path": p("hard.txt"), "result": ok}),
            json!({"kind": "symlink", "target": "sub/renamed.txt", "path": p("soft.txt"), "result": ok}),
            json!({"kind": "chmod", "syscall": "chmod", "path": p("hard.txt"), "mode": 0o600, "result": ok}),
            json!({"kind": "chown", "syscall": "chown", "path": p("hard.txt"), "uid": 1234, "gid": 5678, "result": ok}),
            json!({"kind": "truncate", "syscall": "truncate", "path": p("hard.txt"), "length": 2, "result": ok}),
            json!({"kind": "open", "path": p("hard.txt"), "access": "read_write", "result": ok}),
            json!({"kind": "truncate", "syscall": "ftruncate", "path": p("hard.txt"), "path_resolution": "fd", "length": 1, "result": ok}),
            json!({"kind": "chmod", "syscall": "fchmod", "path": p("hard.txt"), "path_resolution": "fd", "mode": 0o644, "result": ok}),
            json!({"kind": "unlink", "syscall": "unlink", "path": p("soft.txt"), "result": ok}),
            json!({"kind": "unlink", "syscall": "unlinkat", "path": p("hard.txt"), "path_resolution": "dirfd", "result": ok}),
            json!({"kind": "rmdir", "path": p("sub"), "result": "failure", "errno_name": "ENOTEMPTY"}),
            json!({"kind": "unlink", "path": p("sub/renamed.txt"), "result": ok}),
            json!({"kind": "rmdir", "path": p("sub"), "result": ok}),
            json!({"kind": "open", "path": p("secret.txt"), "mode": 0, "access": "write", "result": ok}),
            // A refused action is visible as such: EACCES for uid 65534 on a 0000 file.
            json!({"kind": "open", "proc": {"pid": nobody, "uid": 65534, "euid": 65534}, "path": p("secret.txt"),
               "path_resolution": "cwd", "access": "read", "result": "failure", "errno": libc::EACCES, "errno_name": "EACCES"}),
            json!({"kind": "open", "syscall": "creat", "path": p("creat.txt"), "access": "write", "mode": 0o644, "result": ok}),
        ],
    );
    // Only the first write through an fd is recorded.
    let writes: Vec<_> = records
        .iter()
        .filter(|r| r["kind"] == "write" && r["proc"]["pid"] == pid)
        .collect();
    assert_eq!(writes.len(), 1, "{writes:#?}");
}

#[test]
fn shell_redirect_first_write_follows_dup2() {
    // `echo > file` is open, dup2 onto stdout, close, write(1): the write
    // must still be attributed to the file.
    let dir = TempDir::new("redirect");
    let target = format!("{}/out.txt", dir.path());
    let cg = integration_tests::TestCgroup::new("redirect");
    let (rec, status) = integration_tests::record_in_cgroup(
        &cg,
        &[Family::File],
        std::process::Command::new("/bin/sh")
            .args(["-c", &format!("echo hi > {target}; echo more >> {target}")]),
    );
    assert!(status.success());
    let writes: Vec<_> = rec
        .of_kind("write")
        .into_iter()
        .filter(|w| w["path"] == target.as_str())
        .collect();
    assert_eq!(writes.len(), 2, "one first write per open: {writes:#?}");
    for w in &writes {
        assert_eq!(w["fd"], 1);
        assert_eq!(w["path_resolution"], "fd");
    }
}
