//! Project automation: `cargo xtask <bootstrap|test|demo>`.

mod bootstrap;
mod demo;
mod test;
mod util;

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
    /// Bootstrap, then run the whole test suite (needs root).
    Test {
        /// Extra arguments for `cargo test` (e.g. a test name filter).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Bootstrap, then run a scripted "agent" under `sandbox-audit exec` and
    /// show its records as they arrive.
    Demo,
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
    }
}
