//! Writes a log of N capture-shaped records through the real store (chain,
//! checkpoints, signatures), as audit-log's benchmark does, for timing
//! `sandbox-audit replay` at scale:
//!
//! ```text
//! cargo run --release -p audit-replay --example gen_log -- /tmp/big 1000000
//! time sandbox-audit replay /tmp/big/log --format json -o /dev/null
//! ```
//!
//! The processes form a real tree: each of 50 workers forks a child that
//! execs, opens a file, connects to a server and exits (`cargo xtask bench
//! --only replay` times replay on such a log).

use std::path::PathBuf;

use audit_log::{
    record::{Record, now_ns},
    sink::Sink,
    store::{Store, StoreConfig},
};
use serde_json::json;

fn proc_(pid: u64, ppid: u64) -> serde_json::Value {
    json!({
        "pid": pid, "tid": pid, "ppid": ppid, "uid": 1000, "gid": 1000,
        "euid": 1000, "egid": 1000, "cgroup_id": 8123, "pid_ns": 4026531836u64,
        "mnt_ns": 4026531841u64, "comm": "python3",
    })
}

fn record(i: u64) -> Record {
    let worker = 4000 + (i / 5) % 50;
    let child = 100_000 + (i / 5) % 200_000;
    let t = now_ns();
    match i % 5 {
        0 => Record::new("fork", t)
            .with("proc", proc_(worker, 3999))
            .with("child_pid", child)
            .with("child_tid", child)
            .with("thread", 0),
        1 => Record::new("exec", t)
            .with("proc", proc_(child, worker))
            .with("filename", "/usr/bin/git")
            .with(
                "argv",
                json!(["git", "status", "--porcelain", format!("--path=src/{i}")]),
            )
            .with("argc", 4)
            .with("argv_bytes", 40)
            .with("argv_truncated", 0)
            .with("argv_unreadable", 0)
            .with("filename_truncated", 0)
            .with("old_tid", child)
            .with("result", "success"),
        2 => Record::new("open", t)
            .with("proc", proc_(child, worker))
            .with("syscall", "openat")
            .with("path", format!("/home/agent/work/src/module_{i}.py"))
            .with("path_resolution", "cwd")
            .with("flags", 524288)
            .with("access", "read")
            .with("result", "success")
            .with("ret", 3),
        3 => Record::new("connect", t)
            .with("proc", proc_(child, worker))
            .with("syscall", "connect")
            .with("fd", 4)
            .with(
                "remote",
                json!({"family": "inet", "address": "10.0.2.15", "port": 443}),
            )
            .with("result", "failure")
            .with("ret", -111)
            .with("errno", 111)
            .with("errno_name", "ECONNREFUSED"),
        _ => Record::new("exit", t)
            .with("proc", proc_(child, worker))
            .with("thread", 0)
            .with("wait_status", 0)
            .with("exit_code", 0),
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(args.next().ok_or("usage: gen_log DIR [N]")?);
    let n: u64 = args.next().map_or(Ok(1_000_000), |a| a.parse())?;
    let mut store = Store::open(StoreConfig::new(dir.join("log"), dir.join("keys")))?;
    store.start(
        json!({"mode": "cgroup", "path": "/sys/fs/cgroup/unified/bench", "cgroup_id": 8123, "level": 1})
            .as_object()
            .cloned()
            .unwrap_or_default(),
    )?;
    for i in 0..n {
        store.accept(record(i))?;
        if i % 4096 == 4095 {
            store.flush()?;
        }
    }
    store.close("generated")?;
    eprintln!("wrote {n} records to {}", dir.join("log").display());
    Ok(())
}
