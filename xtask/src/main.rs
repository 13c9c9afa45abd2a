//! Project automation: `cargo xtask <bootstrap|test|demo|bench|vm-test>`.

mod bench;
mod bench_probes;
mod bench_ship;
mod bootstrap;
mod demo;
mod fuzz;
mod test;
mod util;
mod vm;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "xtask")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Install what a fresh machine lacks (apt packages, the pinned nightly
    /// with rust-src, bpf-linker, kernel filesystem mounts). Fast when done.
    Bootstrap,
    /// Bootstrap, then run the whole test suite (needs root), then a short
    /// fuzz run of the verifier.
    Test {
        /// Extra arguments for `cargo test` (e.g. a test name filter).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Bootstrap, then run a scripted "agent" under `sandbox-audit exec` and
    /// show its records as they arrive.
    Demo,
    /// Throughput of the log (chain + store with group-commit fsync, and
    /// verify), each beside a baseline measured in the same run; writes
    /// docs/BENCHMARKS.md.
    Bench {
        /// Records per run.
        #[arg(long, default_value_t = 1_000_000)]
        records: u64,
        /// Run only this section (log, probes, replay): printed, and
        /// docs/BENCHMARKS.md is left as it is.
        #[arg(long, value_parser = bench::SECTIONS)]
        only: Option<String>,
    },
    /// Boot Debian kernels under QEMU/TCG (6.1 with and without BPF LSM,
    /// the newest packaged one) and run the capture checks inside each.
    VmTest {
        /// Kill a VM that has not powered off after this many seconds.
        #[arg(long, default_value_t = 600)]
        timeout_secs: u64,
        /// Only boot kernels whose name contains this.
        #[arg(long)]
        kernel: Option<String>,
        /// Only the subset `cargo xtask test` boots.
        #[arg(long)]
        suite: bool,
    },
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Cmd::Bootstrap => bootstrap::run(),
        Cmd::Test { args } => {
            bootstrap::run()?;
            test::run(&args)
        }
        Cmd::Demo => {
            bootstrap::run()?;
            demo::run()
        }
        Cmd::Bench { records, only } => bench::run(records, only.as_deref()),
        Cmd::VmTest {
            timeout_secs,
            kernel,
            suite,
        } => {
            bootstrap::run()?;
            vm::run(&vm::Options {
                timeout: std::time::Duration::from_secs(timeout_secs),
                filter: kernel,
                skip: None,
                suite,
            })
        }
    }
}
