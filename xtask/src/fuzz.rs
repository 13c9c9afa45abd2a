//! The short fuzz run of `cargo xtask test`: each target of fuzz/ (cargo-fuzz,
//! pinned nightly, AddressSanitizer) for a fixed time; any crash, panic or
//! sanitizer report fails the suite and leaves the input in
//! fuzz/artifacts/TARGET/ to reproduce with `cargo fuzz run TARGET FILE`.

use std::{process::Command, time::Instant};

use anyhow::{Context, Result};

use crate::{bootstrap::BPF_TOOLCHAIN, util::root};

/// The fuzz targets and how long each runs in the test suite.
pub const TARGETS: &[&str] = &["verify_bytes", "verify_edits"];
const SECONDS_EACH: u32 = 25;

/// Runs every target; returns (target, passed).
pub fn run() -> Result<Vec<(&'static str, bool)>> {
    let mut results = Vec::new();
    for target in TARGETS {
        let corpus = root().join("fuzz/corpus").join(target);
        std::fs::create_dir_all(&corpus)
            .with_context(|| format!("creating {}", corpus.display()))?;
        let t = Instant::now();
        eprintln!("fuzz: {target} for {SECONDS_EACH}s");
        let status = Command::new("cargo")
            .current_dir(root())
            .arg(format!("+{BPF_TOOLCHAIN}"))
            .args(["fuzz", "run", target])
            .arg(&corpus)
            .args(["--", &format!("-max_total_time={SECONDS_EACH}")])
            .status()
            .context("running cargo fuzz (cargo xtask bootstrap installs it)")?;
        let ok = status.success();
        println!(
            "fuzz {target} ... {} ({:.0}s)",
            if ok {
                "ok"
            } else {
                "FAILED: see fuzz/artifacts/"
            },
            t.elapsed().as_secs_f64()
        );
        results.push((*target, ok));
    }
    Ok(results)
}
