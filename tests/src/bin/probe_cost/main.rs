//! What the probes cost the audited machine, measured in one run (by
//! `cargo xtask bench --only probes`, as root), side by side:
//!
//! - loops: openat+close, fork+exec, connect (refused, loopback), and an
//!   unaudited syscall (getppid), each in a child process of its own;
//! - bare (no probes), the probes on each syscall path (the raw dispatcher,
//!   the default; the `syscalls:*` tracepoints, the fallback), and auditd as
//!   the incumbent anchor with rules for the same syscalls;
//! - each loop outside the scope (auditd: rules that do not match it) and
//!   inside (auditd: rules that capture it), the capture draining and
//!   decoding every record meanwhile.
//!
//! The machine is shared, so the configurations run in interleaved rounds
//! (bare, tracepoints, dispatcher, auditd; the two probe paths swap places
//! every round) and the best round of each cell is kept. Prints a Markdown
//! table on stdout.

mod auditd;
mod loops;

use std::{
    collections::HashMap,
    process::{Command, Stdio},
    time::Duration,
};

use anyhow::{Context, Result, bail};
use audit_capture::{
    drain::Drain,
    probes::{ProbeOptions, Scope, SyscallPath},
};
use audit_log::{
    record::Record,
    sink::{Sink, SinkError},
};
use integration_tests::TestCgroup;

use crate::loops::LOOPS;

/// Interleaved rounds (`PROBE_COST_ROUNDS` overrides).
const ROUNDS: usize = 5;

/// Counts records without keeping them (the consumer's decode + record
/// building still happens).
struct Count(u64);

impl Sink for Count {
    fn accept(&mut self, _r: Record) -> Result<(), SinkError> {
        self.0 += 1;
        Ok(())
    }
}

/// Runs loop `what` in a child (inside `cg` if given) and returns
/// ns/iteration, draining `capture` meanwhile if given.
fn measure(
    what: &str,
    n: u64,
    cg: Option<&TestCgroup>,
    mut capture: Option<(&mut Drain, &mut Count)>,
) -> Result<f64> {
    let exe = std::env::current_exe().context("own path")?;
    let mut cmd = Command::new(exe);
    cmd.args(["--loop", what, &n.to_string()])
        .stdout(Stdio::piped());
    let mut child = match cg {
        Some(cg) => cg.spawn(&mut cmd),
        None => cmd.spawn().context("spawning the loop")?,
    };
    while child.try_wait()?.is_none() {
        match capture.as_mut() {
            Some((c, sink)) => {
                c.pump(Duration::from_millis(20), *sink)?;
            }
            None => std::thread::sleep(Duration::from_millis(20)),
        }
    }
    if let Some((c, sink)) = capture.as_mut() {
        c.drain(*sink)?;
    }
    let st = child.wait()?;
    let out = std::io::read_to_string(child.stdout.take().context("stdout")?)?;
    if !st.success() {
        bail!("loop {what} failed ({st})");
    }
    let ns = out.split_whitespace().next().and_then(|v| v.parse().ok());
    ns.with_context(|| format!("ns per iteration from {out:?}"))
}

/// The configurations, in table order.
const CONFIGS: [&str; 4] = ["bare", "tracepoints", "dispatch", "auditd"];

#[derive(Default)]
struct Cell {
    /// Best (lowest) ns/iteration outside and inside the scope.
    outside: f64,
    inside: f64,
    /// Inside the scope, summed over the rounds.
    records: u64,
    lost: u64,
}

struct Results {
    cells: HashMap<(&'static str, &'static str), Cell>,
}

impl Results {
    fn cell(&mut self, config: &'static str, what: &'static str) -> &mut Cell {
        self.cells.entry((config, what)).or_insert(Cell {
            outside: f64::INFINITY,
            inside: f64::INFINITY,
            ..Cell::default()
        })
    }
}

fn probes_round(cg: &TestCgroup, path: SyscallPath, r: &mut Results) -> Result<()> {
    let opts = ProbeOptions {
        syscall_path: Some(path),
        ..ProbeOptions::default()
    };
    let mut capture = Drain::start(Scope::Cgroup(cg.target.clone()), &opts)?;
    if capture.probes().syscall_path != Some(path) {
        bail!(
            "asked for {path:?}, got {:?}",
            capture.probes().syscall_path
        );
    }
    let config = match path {
        SyscallPath::Dispatch => "dispatch",
        SyscallPath::Tracepoints => "tracepoints",
    };
    let mut sink = Count(0);
    for &(_, what, n) in LOOPS {
        let out = measure(what, n, None, Some((&mut capture, &mut sink)))?;
        let (before, lost) = (sink.0, capture.stats.lost);
        let inside = measure(what, n, Some(cg), Some((&mut capture, &mut sink)))?;
        let c = r.cell(config, what);
        c.outside = c.outside.min(out);
        c.inside = c.inside.min(inside);
        c.records += sink.0 - before;
        c.lost += capture.stats.lost - lost;
    }
    // Detached in the foreground: the next configuration must not run
    // while these probes are still attached.
    drop(capture);
    Ok(())
}

fn auditd_round(tmp: &std::path::Path, r: &mut Results) -> Result<()> {
    let mut d = auditd::Auditd::start(tmp)?;
    let result = (|| {
        d.not_matching()?;
        for &(_, what, n) in LOOPS {
            let out = measure(what, n, None, None)?;
            let c = r.cell("auditd", what);
            c.outside = c.outside.min(out);
        }
        d.capturing()?;
        for &(_, what, n) in LOOPS {
            let (lost, bytes) = (auditd::lost()?, d.logged_bytes());
            let inside = measure(what, n, None, None)?;
            let c = r.cell("auditd", what);
            c.inside = c.inside.min(inside);
            c.lost += auditd::lost()? - lost;
            c.records += d.logged_bytes().saturating_sub(bytes);
        }
        Ok(())
    })();
    d.stop()?;
    result
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn change(ns: f64, bare: f64) -> String {
    // ops/s ratio = bare ns / ns.
    format!("{:.2}× ({:+.0}%)", bare / ns, (bare / ns - 1.0) * 100.0)
}

fn ops(ns: f64) -> String {
    let v = 1e9 / ns;
    if v >= 10_000.0 {
        format!("{:.0}k", v / 1000.0)
    } else {
        format!("{v:.0}")
    }
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--loop") {
        loops::child_loop(&args[2], args[3].parse().context("iterations")?);
        return Ok(());
    }
    let rounds: usize = std::env::var("PROBE_COST_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(ROUNDS);
    let load_before = loadavg();
    let tmp = std::env::temp_dir().join(format!("probe-cost-{}", std::process::id()));
    std::fs::create_dir_all(&tmp)?;
    let cg = TestCgroup::new("probe-cost");
    let mut r = Results {
        cells: HashMap::new(),
    };
    let mut result = Ok(());
    for round in 0..rounds {
        eprintln!(
            "probe_cost: round {}/{rounds} (load {})",
            round + 1,
            loadavg()
        );
        for &(_, what, n) in LOOPS {
            let ns = measure(what, n, None, None)?;
            let c = r.cell("bare", what);
            c.outside = c.outside.min(ns);
        }
        let mut paths = [SyscallPath::Tracepoints, SyscallPath::Dispatch];
        if round % 2 == 1 {
            paths.reverse();
        }
        for p in paths {
            probes_round(&cg, p, &mut r)?;
        }
        result = auditd_round(&tmp, &mut r);
        if result.is_err() {
            break;
        }
    }
    let _ = std::fs::remove_dir_all(&tmp);
    if let Err(e) = &result {
        eprintln!("probe_cost: auditd rows left out: {e:#}");
    }

    println!(
        "Fastest chunk of each loop, best of {rounds} interleaved rounds; load average {load_before} before, {} after.\n",
        loadavg()
    );
    println!(
        "| loop | configuration | outside the scope ops/s | vs bare | inside the scope ops/s | vs bare | inside: records / lost |"
    );
    println!("|---|---|---|---|---|---|---|");
    for &(name, what, _) in LOOPS {
        let bare = r.cell("bare", what).outside;
        println!("| {name} | bare (no probes) | {} | — | | | |", ops(bare));
        for config in &CONFIGS[1..] {
            let Some(c) = r.cells.get(&(*config, what)) else {
                continue;
            };
            let label = match *config {
                "tracepoints" => "syscalls:* tracepoints (fallback)",
                "dispatch" => "raw sys_enter/exit dispatcher (default)",
                _ => "auditd: rules not matching / capturing",
            };
            let counted = if *config == "auditd" {
                format!("{} KiB logged / {} lost", c.records / 1024, c.lost)
            } else {
                format!("{} / {}", c.records, c.lost)
            };
            println!(
                "| {name} | {label} | {} | {} | {} | {} | {counted} |",
                ops(c.outside),
                change(c.outside, bare),
                ops(c.inside),
                change(c.inside, bare)
            );
        }
    }
    println!();
    for &(name, what, _) in &LOOPS[..3] {
        let bare = r.cell("bare", what).outside;
        let c = r.cell("dispatch", what);
        let slow = |ns: f64| (1.0 - bare / ns) * 100.0;
        println!(
            "- {name}, default path: outside {:.0}% slower than bare (goal ≤ 8%: {}), inside {:.0}% slower (goal ≤ 35%: {}), {} lost.",
            slow(c.outside),
            if slow(c.outside) <= 8.0 {
                "met"
            } else {
                "missed"
            },
            slow(c.inside),
            if slow(c.inside) <= 35.0 {
                "met"
            } else {
                "missed"
            },
            c.lost
        );
    }
    result
}
