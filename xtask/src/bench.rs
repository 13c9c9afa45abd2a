//! `cargo xtask bench`: runs the log benchmark (audit-user/log/benches/log.rs,
//! release build, no probes needed) and the probe-cost measurement
//! (tests/src/bin/probe_cost.rs, needs root), and writes their tables, with
//! the machine they ran on and the command to reproduce them, to
//! docs/BENCHMARKS.md.

use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

use crate::util::{output, root};

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = output(Command::new("uname").arg("-r")).unwrap_or_default();
    let fs = output(Command::new("stat").args(["-f", "-c", "%T", "/tmp"])).unwrap_or_default();
    let sha_ni = std::fs::read_to_string("/proc/cpuinfo").is_ok_and(|s| s.contains(" sha_ni"));
    format!(
        "{cpu}, {cores} cores{}, Linux {}, temp files on {}",
        if sha_ni { " (SHA extensions)" } else { "" },
        kernel.trim(),
        fs.trim()
    )
}

pub fn run(records: u64) -> Result<()> {
    let out = Command::new(env!("CARGO"))
        .current_dir(root())
        .args(["bench", "-p", "audit-log", "--bench", "log", "--"])
        .arg(records.to_string())
        .arg("3")
        .stderr(Stdio::inherit())
        .output()
        .context("running cargo bench")?;
    if !out.status.success() {
        bail!("the benchmark failed ({})", out.status);
    }
    let table = String::from_utf8(out.stdout).context("benchmark output")?;
    print!("{table}");
    let date = output(Command::new("date").args(["-u", "+%Y-%m-%d"])).unwrap_or_default();
    let doc = format!(
        "# Benchmarks\n\n\
         Reproduce with `cargo xtask bench` (or `cargo xtask bench --records N`); it rewrites this file.\n\n\
         Measured {} on {}.\n\n\
         Records are shaped like real captures (exec, fork, open, exit with the acting process; about\n\
         470 bytes each as stored). Each is built right before `accept`, as the capture loop does, and\n\
         only the store's own calls (accept, the per-batch flush, close) are timed; `flush` runs after\n\
         every 4096 records, so group commit (write + fdatasync every 100 ms), checkpoints (every 1000\n\
         records) and writeback run as in production. Verify reads the finished segments back from\n\
         the page cache and checks everything (`sandbox-audit verify` without an anchor). Each\n\
         baseline is measured in the same run over the same bytes. Three runs; the median is shown\n\
         with the range. This is a shared 2-core VM: figures move by tens of percent between runs.\n\n\
         {table}\n\
         Where verify's time goes (perf, on this machine kind): SHA-256 of each line and of its\n\
         Merkle leaf and nodes (SHA extensions) is about 40% of verify's CPU time; checking the\n\
         canonical form and locating the chain fields about a third (an SSE2 structural index of\n\
         each line first, so the scanner jumps from token to token instead of testing every byte);\n\
         reading the segment files, in 1 MiB pieces into reused buffers, under a tenth. Parser\n\
         threads on both cores hash and check lines while one thread runs the sequential chain,\n\
         tree and signature checks and another reads the files. The figures above are wall-clock\n\
         times of the whole verify.\n",
        date.trim(),
        machine()
    );
    let doc = doc + &probe_cost()?;
    let path = root().join("docs/BENCHMARKS.md");
    std::fs::write(&path, doc).with_context(|| format!("writing {}", path.display()))?;
    eprintln!("bench: wrote {}", path.display());
    Ok(())
}

/// The probes' cost to the audited machine (section of BENCHMARKS.md).
fn probe_cost() -> Result<String> {
    let build = Command::new(env!("CARGO"))
        .current_dir(root())
        .args([
            "build",
            "--release",
            "--quiet",
            "-p",
            "integration-tests",
            "--bin",
            "probe_cost",
        ])
        .status()
        .context("building probe_cost")?;
    if !build.success() {
        bail!("building probe_cost failed ({build})");
    }
    let out = Command::new(root().join("target/release/probe_cost"))
        .stderr(Stdio::inherit())
        .output()
        .context("running probe_cost (as root)")?;
    if !out.status.success() {
        bail!(
            "probe_cost failed ({}); it loads the probes, so run the bench as root",
            out.status
        );
    }
    let table = String::from_utf8(out.stdout).context("probe_cost output")?;
    print!("{table}");
    Ok(format!(
        "\n## What the probes cost the audited machine\n\n\
         A child process loops over a syscall pair the probes audit (`openat` + `close` of\n\
         /dev/null) or one they do not (`getppid`), first with no probes loaded (baseline), then\n\
         with all families attached and the process outside the audited cgroup, then inside it\n\
         while the capture drains and decodes every record (release build). Best of three runs\n\
         each, all in the same run of `cargo xtask bench`.\n\n\
         {table}\n\
         Outside the scope each audited syscall pays for two tracepoint hits (enter and exit),\n\
         whose programs stop at the scope check; most of that cost is the kernel's perf-tracepoint\n\
         path for syscall events, not the check. Unaudited syscalls have no program attached, but\n\
         any enabled syscall tracepoint moves every task's syscalls onto the kernel's slower\n\
         tracing entry path, which is the small ratio on `getppid`. Inside the scope an `openat`\n\
         also resolves its path in the kernel and is decoded by the consumer, which shares the two\n\
         cores with the workload.\n"
    ))
}
