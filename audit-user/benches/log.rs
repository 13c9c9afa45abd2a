//! `cargo xtask bench`: records/s through chain + store (group-commit fsync)
//! and verify throughput, each beside a baseline measured in the same run on
//! the same bytes. Prints a Markdown table; xtask writes docs/BENCHMARKS.md.
//!
//! Records are shaped like real captures (exec/fork/exit/open with the
//! acting process). Each is built right before `accept`, as the capture
//! loop does, and only the store's own calls are timed: building records is
//! the capture side's cost, not the log's.

use std::{
    fs::{self, File},
    io::Write,
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use audit_user::{
    record::{Record, now_ns},
    segment,
    sink::Sink,
    store::{Store, StoreConfig},
    verify::{Options, verify_paths},
};
use serde_json::json;

fn record(i: u64) -> Record {
    let proc_ = json!({
        "pid": 4000 + i % 50, "tid": 4000 + i % 50, "ppid": 3999, "uid": 1000, "gid": 1000,
        "euid": 1000, "egid": 1000, "cgroup_id": 8123, "pid_ns": 4026531836u64,
        "mnt_ns": 4026531841u64, "comm": "python3",
    });
    let t = now_ns();
    match i % 4 {
        0 => Record::new("exec", t)
            .with("proc", proc_)
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
            .with("old_tid", 4000)
            .with("result", "success"),
        1 => Record::new("fork", t)
            .with("proc", proc_)
            .with("child_pid", 5000 + i % 1000)
            .with("child_tid", 5000 + i % 1000)
            .with("thread", 0),
        2 => Record::new("open", t)
            .with("proc", proc_)
            .with("path", format!("/home/agent/work/src/module_{i}.py"))
            .with("flags", 524288)
            .with("result", 3),
        _ => Record::new("exit", t)
            .with("proc", proc_)
            .with("thread", 0)
            .with("wait_status", 0)
            .with("exit_code", 0),
    }
}

fn sha256sum(path: &Path) -> Result<Duration> {
    let t = Instant::now();
    let out = Command::new("sha256sum")
        .arg(path)
        .output()
        .context("running sha256sum")?;
    if !out.status.success() {
        bail!("sha256sum failed");
    }
    Ok(t.elapsed())
}

/// The same bytes written in 1 MiB writes with an fdatasync as often as the
/// store committed: what the disk costs without any chaining or hashing.
fn raw_write(bytes: &[u8], dir: &Path, commits: usize) -> Result<Duration> {
    let path = dir.join("raw.bin");
    let mut f = File::create(&path)?;
    let per_commit = bytes.len().div_ceil(commits.max(1)).max(1);
    let t = Instant::now();
    for chunk in bytes.chunks(per_commit) {
        for w in chunk.chunks(1 << 20) {
            f.write_all(w)?;
        }
        f.sync_data()?;
    }
    let d = t.elapsed();
    fs::remove_file(&path)?;
    Ok(d)
}

fn rate(n: u64, d: Duration) -> String {
    format!("{:.0}", n as f64 / d.as_secs_f64())
}

fn main() -> Result<()> {
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let tmp = tempfile::tempdir()?;
    let result = run(n, tmp.path());
    segment::unprotect_tree(tmp.path())?;
    result
}

fn run(n: u64, dir: &Path) -> Result<()> {
    let cfg = StoreConfig::new(dir.join("log"), dir.join("keys"));
    let mut store = Store::open(cfg)?;
    store.start(
        json!({"mode": "bench"})
            .as_object()
            .cloned()
            .unwrap_or_default(),
    )?;

    // As in capture: each record is built right before it is handed over,
    // and flush runs after each batch. Only the store's calls are timed.
    let mut in_store = Duration::ZERO;
    let mut commits_seen = 0usize;
    let mut last_durable = None;
    for i in 0..n {
        let r = record(i);
        let t = Instant::now();
        store.accept(r)?;
        if i % 4096 == 4095 {
            store.flush()?;
        }
        in_store += t.elapsed();
        if store.durable() != last_durable {
            commits_seen += 1;
            last_durable = store.durable();
        }
    }
    let t = Instant::now();
    store.close("bench")?;
    let write_time = in_store + t.elapsed();

    let files = segment::list(&dir.join("log"))?;
    let bytes: Vec<u8> = files
        .iter()
        .map(fs::read)
        .collect::<Result<Vec<_>, _>>()?
        .concat();
    let total_records = n + 3;
    let joined = dir.join("all.log");
    fs::write(&joined, &bytes)?;

    let raw = raw_write(&bytes, dir, commits_seen + 1)?;
    let sha = sha256sum(&joined)?;

    let t = Instant::now();
    let report = verify_paths(&files, &Options::default())?;
    let verify_time = t.elapsed();
    if !report.intact() {
        bail!("the benchmark log does not verify: {:?}", report.kinds());
    }

    let mb = bytes.len() as f64 / 1e6;
    println!("| measurement | time | records/s | MB/s |");
    println!("|---|---|---|---|");
    let row = |what: &str, d: Duration| {
        println!(
            "| {what} | {:.2} s | {} | {:.0} |",
            d.as_secs_f64(),
            rate(total_records, d),
            mb / d.as_secs_f64()
        )
    };
    row(
        "chain + store (canonical JSON, SHA-256, Merkle, checkpoints, group-commit fdatasync)",
        write_time,
    );
    row(
        "baseline: raw write + fdatasync of the same bytes, same number of syncs",
        raw,
    );
    row(
        "verify (parse, canonical check, SHA-256, chain, Merkle, signatures)",
        verify_time,
    );
    row("baseline: `sha256sum` over the same bytes", sha);
    println!();
    println!(
        "{total_records} records, {:.1} MB ({:.0} bytes/record), {} segment file(s), {} group commits, {} checkpoints.",
        mb,
        bytes.len() as f64 / total_records as f64,
        files.len(),
        commits_seen + 1,
        report.summary.checkpoints
    );
    Ok(())
}
