//! `sandbox-audit replay`: the command line of audit-replay (parsing only;
//! the replay itself is in that crate).

use std::{fs, io::Write, path::PathBuf};

use anyhow::{Context, Result};
use audit_replay::{Filters, Format, Options};
use clap::Args;

#[derive(Args, Clone, Debug)]
pub struct ReplayArgs {
    /// A log directory (default /var/log/sandbox-audit), or segment files in log order.
    pub paths: Vec<PathBuf>,
    /// Only what happened at or after T (RFC 3339, e.g. 2026-12-01T19:43:34Z, or ns since the epoch).
    #[arg(long, value_name = "T", value_parser = time_arg)]
    pub since: Option<u64>,
    /// Only what happened at or before T.
    #[arg(long, value_name = "T", value_parser = time_arg)]
    pub until: Option<u64>,
    /// Only the sessions of sandbox S: its cgroup path (or the trailing part
    /// of it), its cgroup id, or the root pid of a `run --pid` session.
    #[arg(long, value_name = "S")]
    pub sandbox: Option<String>,
    /// Only the records of the process(es) with pid P.
    #[arg(long, value_name = "P")]
    pub pid: Option<u32>,
    /// With --pid: also its descendants.
    #[arg(long, requires = "pid")]
    pub descendants: bool,
    /// Only records of kind K (exec, open, connect, …) or category (process,
    /// file, network, privilege, lifecycle, capture); repeat or comma-separate.
    #[arg(long = "kind", value_name = "K", value_delimiter = ',')]
    pub kinds: Vec<String>,
    /// Only records naming a path that matches GLOB (`*` within a path
    /// component, `**` across, `?`, `[…]`).
    #[arg(long, value_name = "GLOB")]
    pub path: Option<String>,
    /// Output format.
    #[arg(long, default_value = "text", value_parser = ["text", "json", "html"])]
    pub format: String,
    /// Write to FILE instead of standard output.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// The trust root (trust-root.vkey), as for `verify --pubkey`.
    #[arg(long)]
    pub pubkey: Option<PathBuf>,
    /// An exported checkpoint, as for `verify --anchor`.
    #[arg(long)]
    pub anchor: Option<PathBuf>,
}

fn time_arg(s: &str) -> Result<u64, String> {
    audit_replay::time::parse(s)
}

/// Runs the replay and writes it; Ok(true) when the log verified intact.
pub fn replay(args: &ReplayArgs) -> Result<bool> {
    let read = |p: &PathBuf, what: &str| {
        fs::read_to_string(p).with_context(|| format!("reading the {what} {}", p.display()))
    };
    let format = Format::parse(&args.format).unwrap_or_default();
    let opts = Options {
        inputs: args.paths.clone(),
        pubkey: args
            .pubkey
            .as_ref()
            .map(|p| read(p, "trust root"))
            .transpose()?,
        anchor: args
            .anchor
            .as_ref()
            .map(|p| read(p, "anchor"))
            .transpose()?,
        filters: Filters {
            since_ns: args.since,
            until_ns: args.until,
            sandbox: args.sandbox.clone(),
            pid: args.pid,
            descendants: args.descendants,
            kinds: args.kinds.clone(),
            path: args.path.clone(),
        },
        keep_records: format.shows_records(),
        progress: true,
    };
    let replay = audit_replay::replay(&opts)?;
    let mut out: Box<dyn Write> = match &args.output {
        Some(p) => {
            Box::new(fs::File::create(p).with_context(|| format!("creating {}", p.display()))?)
        }
        None => Box::new(std::io::stdout().lock()),
    };
    audit_replay::render::write_to(&replay, format, &mut out, true)
        .context("writing the replay")?;
    let intact = replay.verify.intact;
    // Freeing a million records one by one takes longer than the exit
    // that frees them all at once.
    std::mem::forget(replay);
    Ok(intact)
}
