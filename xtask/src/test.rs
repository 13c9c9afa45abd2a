//! `cargo xtask test`: the whole suite, as CI runs it: formatting and lint
//! checks, every test of the workspace as root, and a short fuzz run. Prints
//! one summary line ("summary: N passed, N failed, N skipped") at the end;
//! each check and fuzz target counts as one test in it.

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
};

use anyhow::{Context, Result, bail};

use crate::util::root;

#[derive(Default, Debug)]
struct Totals {
    passed: u64,
    failed: u64,
    ignored: u64,
}

/// Adds the counts of one `test result: ok. 5 passed; 0 failed; 1 ignored; ...` line.
fn add_result_line(t: &mut Totals, line: &str) {
    let Some(rest) = line.strip_prefix("test result: ") else {
        return;
    };
    for part in rest.split(';') {
        let words: Vec<&str> = part.split_whitespace().collect();
        let n = |i: usize| {
            words
                .get(i)
                .and_then(|w| w.parse::<u64>().ok())
                .unwrap_or(0)
        };
        match words.as_slice() {
            [_, _, "passed"] => t.passed += n(1),
            [_, "passed"] => t.passed += n(0),
            [_, "failed"] => t.failed += n(0),
            [_, "ignored"] => t.ignored += n(0),
            _ => {}
        }
    }
}

pub fn run(extra: &[String]) -> Result<()> {
    if unsafe_geteuid() != 0 {
        bail!("the test suite loads eBPF programs and creates cgroups: run it as root");
    }
    let mut totals = Totals::default();
    // The whole suite only, not when filtering tests: hygiene first, so a
    // formatting slip is reported even when a test also fails.
    if extra.is_empty() {
        for (name, ok) in hygiene()? {
            println!("check {name} ... {}", if ok { "ok" } else { "FAILED" });
            if ok {
                totals.passed += 1;
            } else {
                totals.failed += 1;
            }
        }
    }
    let mut cmd = Command::new(env!("CARGO"));
    cmd.current_dir(root())
        .args(["test", "--workspace", "--no-fail-fast"])
        .args(extra)
        .stdout(Stdio::piped());
    let mut child = cmd.spawn().context("starting cargo test")?;
    let stdout = child.stdout.take().context("cargo test stdout")?;
    for line in BufReader::new(stdout).lines() {
        let line = line.context("reading cargo test output")?;
        println!("{line}");
        add_result_line(&mut totals, line.trim());
    }
    let status = child.wait().context("waiting for cargo test")?;
    // The verifier must not panic on any input: a short fuzz run of each
    // target (the whole suite only, not when filtering tests).
    if extra.is_empty() {
        for (_, ok) in crate::fuzz::run()? {
            if ok {
                totals.passed += 1;
            } else {
                totals.failed += 1;
            }
        }
    }
    // The kernel matrix under QEMU (docs/VM-TESTS.md), the suite's subset:
    // this kernel refuses BPF LSM, so the LSM path and other kernels' verifiers
    // are only tested there. Each kernel counts as one test.
    let mut vm_lines = Vec::new();
    if extra.is_empty() {
        match crate::vm::run_matrix(&vm_suite_options()) {
            Ok(results) => {
                for r in results {
                    let ok = r.failed == 0 && r.passed > 0;
                    vm_lines.push(format!(
                        "vm {} ... {} ({} checks passed, {} failed, {:.0}s)",
                        r.name,
                        if ok { "ok" } else { "FAILED" },
                        r.passed,
                        r.failed,
                        r.secs
                    ));
                    if ok {
                        totals.passed += 1;
                    } else {
                        totals.failed += 1;
                    }
                }
            }
            Err(e) => {
                vm_lines.push(format!("vm-test ... FAILED: {e:#}"));
                totals.failed += 1;
            }
        }
    }
    for l in &vm_lines {
        println!("{l}");
    }
    println!(
        "summary: {} passed, {} failed, {} skipped",
        totals.passed, totals.failed, totals.ignored
    );
    if !status.success() || totals.failed > 0 {
        bail!("tests failed ({status})");
    }
    if totals.passed == 0 {
        bail!("no test ran");
    }
    Ok(())
}

/// The VMs of the suite: TCG is slow and the machine shared, so each VM
/// gets a generous bound; they boot in parallel, so the bound is also
/// about what the VM part adds to the suite at worst.
fn vm_suite_options() -> crate::vm::Options {
    crate::vm::Options {
        timeout: std::time::Duration::from_secs(VM_TIMEOUT_SECS),
        filter: None,
        skip: None,
        suite: true,
    }
}

/// Per-VM bound in the suite (see docs/VM-TESTS.md for measured times).
const VM_TIMEOUT_SECS: u64 = 480;

/// `cargo fmt --check` and clippy with warnings denied over every target.
fn hygiene() -> Result<Vec<(&'static str, bool)>> {
    let checks: [(&str, &[&str]); 2] = [
        ("cargo fmt --all --check", &["fmt", "--all", "--check"]),
        (
            "cargo clippy --workspace --all-targets -- -D warnings",
            &[
                "clippy",
                "--workspace",
                "--all-targets",
                "--quiet",
                "--",
                "-D",
                "warnings",
            ],
        ),
    ];
    let mut results = Vec::new();
    for (name, args) in checks {
        let status = Command::new(env!("CARGO"))
            .current_dir(root())
            .args(args)
            .status()
            .with_context(|| format!("running {name}"))?;
        results.push((name, status.success()));
    }
    Ok(results)
}

fn unsafe_geteuid() -> u32 {
    // /proc/self/status avoids a libc dependency just for geteuid.
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).map(str::to_owned))
        .and_then(|l| l.split_whitespace().nth(2).and_then(|v| v.parse().ok()))
        .unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_cargo_result_lines() {
        let mut t = Totals::default();
        add_result_line(
            &mut t,
            "test result: ok. 5 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.01s",
        );
        add_result_line(
            &mut t,
            "test result: FAILED. 2 passed; 3 failed; 0 ignored; 0 measured; 0 filtered out",
        );
        add_result_line(&mut t, "running 5 tests");
        assert_eq!((t.passed, t.failed, t.ignored), (7, 3, 1));
    }
}
