//! Privilege and tamper-relevant actions: id changes (allowed and refused),
//! groups, capabilities, ptrace, mount/umount, bpf(), kill inside and
//! outside the scope, chattr, unshare/setns, memfd_create, failed exec.

use audit_capture::syscalls::Family;
use integration_tests::{TempDir, expect_in_order, inside_and_outside};
use serde_json::json;

#[test]
fn privilege_actions_are_recorded_with_results() {
    let (inside, outside) = (TempDir::new("priv-in"), TempDir::new("priv-out"));
    for d in [&inside, &outside] {
        std::fs::create_dir(d.0.join("mnt")).unwrap();
    }
    let d = inside.path();
    let (records, report) = inside_and_outside(
        "priv",
        &[Family::Privilege],
        &["priv", d],
        &["priv", outside.path()],
    );
    let get = |k: &str| -> u64 {
        report
            .iter()
            .find(|(key, _)| key == k)
            .unwrap()
            .1
            .parse()
            .unwrap()
    };
    let ok = "success";
    expect_in_order(
        &records,
        &[
            json!({"kind": "setgid", "syscall": "setresgid", "rgid": 0, "egid": 0, "sgid": 0, "result": ok}),
            json!({"kind": "setuid", "syscall": "setresuid", "ruid": 0, "euid": 0, "suid": 0, "result": ok}),
            json!({"kind": "setgroups", "count": 2, "groups": [0, 4], "result": ok}),
            json!({"kind": "capset", "version": 0x2008_0522, "target_pid": 0, "inheritable": 0, "result": ok}),
            json!({"kind": "ptrace", "request": libc::PTRACE_ATTACH, "target_pid": 0x3fff_fff0, "result": "failure", "errno_name": "ESRCH"}),
            json!({"kind": "unshare", "proc": {"pid": get("mounter")}, "flags": libc::CLONE_NEWNS, "result": ok}),
            json!({"kind": "mount", "path": "/", "flags": libc::MS_REC | libc::MS_PRIVATE, "result": ok}),
            json!({"kind": "mount", "source": "agent-tmp", "fstype": "tmpfs", "path": format!("{d}/mnt"), "result": ok}),
            json!({"kind": "umount", "syscall": "umount2", "path": format!("{d}/mnt"), "result": ok}),
            json!({"kind": "bpf", "command": 5, "size": 128}),
            json!({"kind": "kill", "target_pid": 1, "signal": 0, "target_in_scope": 0, "result": ok}),
            json!({"kind": "kill", "target_pid": get("sleeper"), "signal": libc::SIGTERM, "target_in_scope": 1, "result": ok}),
            json!({"kind": "chattr", "request_name": "FS_IOC_SETFLAGS", "path": format!("{d}/attr.txt"), "append_only": 1, "result": ok}),
            json!({"kind": "chattr", "request_name": "FS_IOC_SETFLAGS", "path": format!("{d}/attr.txt"), "append_only": 0, "result": ok}),
            json!({"kind": "setns", "nstype": libc::CLONE_NEWNET, "result": ok}),
            json!({"kind": "memfd_create", "name": "agent-mem", "result": ok}),
            json!({"kind": "exec", "syscall": "execve", "filename": "/nonexistent/agent-tool", "result": "failure", "errno_name": "ENOENT"}),
            json!({"kind": "setuid", "syscall": "setuid", "proc": {"pid": get("denied"), "euid": 65534}, "uid": 0,
               "result": "failure", "errno": libc::EPERM, "errno_name": "EPERM"}),
        ],
    );
}
