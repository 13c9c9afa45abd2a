//! The raw sys_enter/sys_exit dispatcher (the default) and the
//! `syscalls:*` tracepoint fallback make the same records: one workload
//! under each, records compared with only the per-run fields (time,
//! duration, process ids) left out.

use std::process::Command;

use audit_capture::{
    cgroup,
    probes::{ProbeOptions, Scope, SyscallPath},
    syscalls::Family,
};
use integration_tests::{Recorder, TestCgroup};
use serde_json::Value;

/// The syscall records of one run of `cat /etc/hostname` in a cgroup.
fn records(path: SyscallPath) -> Vec<Value> {
    let cg = TestCgroup::new("syscall-path");
    let opts = ProbeOptions {
        families: vec![Family::File, Family::Network, Family::Privilege],
        syscall_path: Some(path),
        ..ProbeOptions::default()
    };
    let mut rec = Recorder::start(Scope::Cgroup(cg.target.clone()), &opts);
    let mut cmd = Command::new("/bin/cat");
    cmd.arg("/etc/hostname").stdout(std::process::Stdio::null());
    let mut child = cg.spawn(&mut cmd);
    let mut done = false;
    rec.pump_while(|| {
        done = done || child.try_wait().expect("wait").is_some();
        !done || cgroup::populated(cg.path()).unwrap_or(false)
    });
    assert_eq!(rec.stats().lost, 0, "{path:?}");
    rec.json()
        .into_iter()
        .filter(|r| r.get("syscall").is_some())
        .map(|mut r| {
            let m = r.as_object_mut().unwrap();
            for k in ["time_ns", "duration_ns", "proc"] {
                m.remove(k);
            }
            r
        })
        .collect()
}

#[test]
fn dispatcher_and_tracepoints_make_the_same_records() {
    let dispatch = records(SyscallPath::Dispatch);
    let tracepoints = records(SyscallPath::Tracepoints);
    assert!(
        dispatch
            .iter()
            .any(|r| r["syscall"] == "openat" && r["path"] == "/etc/hostname"),
        "{dispatch:#?}"
    );
    assert_eq!(dispatch, tracepoints);
}
