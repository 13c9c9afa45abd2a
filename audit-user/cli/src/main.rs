//! The `sandbox-audit` command line.

use std::{ffi::OsString, io, path::PathBuf, process::ExitCode, time::Duration};

use anyhow::Result;
mod replay_args;
mod ship_args;
mod store_args;

use audit_capture::{
    probes::ProbeOptions,
    sandbox::{self, SandboxOptions},
    session::{
        SessionError, StopSignals,
        exec::{ExecOptions, Isolation, exec},
        run::{Target, run},
    },
    syscalls::Family,
};
use clap::{Args, Parser, Subcommand};
use ship_args::ShipArgs;
use store_args::{CheckpointArgs, KeygenArgs, StoreArgs, VerifyArgs, with_store};

#[derive(Parser)]
#[command(
    name = "sandbox-audit",
    version,
    about = "Kernel-side, tamper-evident audit recorder for AI-agent sandboxes"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Args, Clone)]
struct CaptureArgs {
    /// Kernel ring buffer size in MiB (a power of two).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=1024))]
    ring_buffer_mib: u32,
    /// How often to drain the ring buffer when the kernel does not wake us, in ms.
    #[arg(long, default_value_t = 25, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    drain_interval_ms: u64,
    /// Syscall families to capture, comma-separated: file, network, privilege,
    /// all; `process` alone captures only exec/fork/exit (always captured).
    #[arg(long, default_value = "all", value_parser = |s: &str| Family::parse_list(s).map(Families))]
    families: Families,
}

/// A parsed `--families` list (a newtype so clap takes it as one value).
#[derive(Clone)]
struct Families(Vec<Family>);

impl CaptureArgs {
    fn probe_options(&self) -> Result<ProbeOptions> {
        if !self.ring_buffer_mib.is_power_of_two() {
            anyhow::bail!(
                "--ring-buffer-mib {} is not a power of two",
                self.ring_buffer_mib
            );
        }
        Ok(ProbeOptions {
            ring_buffer_bytes: self.ring_buffer_mib << 20,
            families: self.families.0.clone(),
            ..ProbeOptions::default()
        })
    }
}

#[derive(Subcommand)]
enum Cmd {
    /// Audit a cgroup v2 subtree or a process tree until SIGTERM/SIGINT.
    Run {
        /// cgroup v2 directory to audit, with everything below it (absolute, or
        /// relative to the cgroup2 root as in /proc/PID/cgroup).
        #[arg(long, conflicts_with = "pid", required_unless_present = "pid")]
        cgroup: Option<PathBuf>,
        /// Process to audit, with all its present and future descendants.
        #[arg(long)]
        pid: Option<u32>,
        /// If sandbox-audit exits without a clean stop (killed, crashed), a
        /// watchdog process freezes the audited cgroup (--cgroup) or stops
        /// the audited process tree with SIGSTOP (--pid); on a log or capture
        /// error sandbox-audit does so itself before the probes detach.
        #[arg(long)]
        fail_closed: bool,
        #[command(flatten)]
        capture: CaptureArgs,
        #[command(flatten)]
        store: StoreArgs,
        #[command(flatten)]
        ship: ShipArgs,
    },
    /// Run CMD in a fresh cgroup and audit it and all its descendants until
    /// the last one exits; exits with CMD's status.
    Exec {
        /// Where to create the per-run cgroup, relative to the cgroup2 root.
        #[arg(long, default_value = "sandbox-audit")]
        cgroup_parent: PathBuf,
        /// Run CMD in the host's namespaces with sandbox-audit's privileges
        /// (audited, but able to reach the recorder); recorded in `start`.
        #[arg(long, conflicts_with_all = ["user", "net"])]
        no_isolation: bool,
        /// Run CMD as UID[:GID] (GID defaults to UID), without capabilities.
        #[arg(long, value_name = "UID[:GID]", value_parser = parse_user)]
        user: Option<(u32, u32)>,
        /// `none`: CMD gets an empty network namespace; `host` (default):
        /// the host's network.
        #[arg(long, value_name = "none|host", default_value = "host", value_parser = ["none", "host"])]
        net: String,
        #[command(flatten)]
        capture: CaptureArgs,
        #[command(flatten)]
        store: StoreArgs,
        #[command(flatten)]
        ship: ShipArgs,
        /// The command and its arguments.
        #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
        command: Vec<OsString>,
    },
    /// Prove a log intact, or say which records were altered and how. Exit
    /// status 0: intact; 1: tampering found; 2: could not verify; 3: no
    /// tampering, but incomplete (the last session has no `stop` and no
    /// later `recovery`, and no sandbox-audit is writing the store).
    Verify(VerifyArgs),
    /// Print the latest signed checkpoint of a log, to keep off-host and pass
    /// to `verify --anchor` later.
    Checkpoint(CheckpointArgs),
    /// Create the signing keys and print the trust root to keep off-host
    /// (`run`/`exec` also create them on first use).
    Keygen(KeygenArgs),
    /// Verify a log, then replay it: process tree, timeline and marks, as
    /// text, JSON or one self-contained HTML page. Exit status 0: written,
    /// log intact; 1: written, tampering found; 2: could not replay.
    Replay(replay_args::ReplayArgs),
}

/// `UID[:GID]` for --user.
fn parse_user(s: &str) -> Result<(u32, u32), String> {
    let num = |v: &str| {
        v.parse::<u32>()
            .map_err(|_| format!("`{v}` is not a numeric id (expected UID[:GID])"))
    };
    match s.split_once(':') {
        Some((u, g)) => Ok((num(u)?, num(g)?)),
        None => num(s).map(|u| (u, u)),
    }
}

/// The capture settings, as recorded in the log's config.
fn capture_config(c: &CaptureArgs) -> serde_json::Map<String, serde_json::Value> {
    let families: Vec<&str> = c.families.0.iter().map(|f| f.name()).collect();
    let v = serde_json::json!({
        "ring_buffer_mib": c.ring_buffer_mib,
        "drain_interval_ms": c.drain_interval_ms,
        "families": families,
    });
    v.as_object().cloned().unwrap_or_default()
}

/// Exit codes as `env`/`timeout` use them when the command itself never ran.
const EXIT_INTERNAL: u8 = 125;
const EXIT_CANNOT_EXECUTE: u8 = 126;
const EXIT_NOT_FOUND: u8 = 127;

/// Prints the error with its causes; the exit status comes from its type.
fn failure(e: &anyhow::Error) -> ExitCode {
    eprintln!("sandbox-audit: error: {e:#}");
    ExitCode::from(exit_status(e))
}

fn exit_status(e: &anyhow::Error) -> u8 {
    match e.downcast_ref::<SessionError>() {
        Some(SessionError::Stopped(s)) => s.exit_code(),
        Some(SessionError::CannotRun { source, .. }) => match source.kind() {
            io::ErrorKind::NotFound => EXIT_NOT_FOUND,
            io::ErrorKind::PermissionDenied => EXIT_CANNOT_EXECUTE,
            _ => EXIT_INTERNAL,
        },
        _ => EXIT_INTERNAL,
    }
}

fn main() -> ExitCode {
    // The sandbox's init and the watchdog are this binary, freshly exec'd.
    sandbox::run_if_helper();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let cli = Cli::parse();
    // Only a capture turns SIGINT/SIGTERM into a clean stop (it must write
    // `stop` and its checkpoint); verify, checkpoint and keygen keep the
    // default action and die at once.
    let stop = match &cli.command {
        Cmd::Run { .. } | Cmd::Exec { .. } => match StopSignals::install() {
            Ok(s) => Some(s),
            Err(e) => return failure(&e.into()),
        },
        _ => None,
    };
    let Some(stop) = stop.as_ref() else {
        return other(cli.command);
    };
    match cli.command {
        Cmd::Run {
            cgroup,
            pid,
            fail_closed,
            capture,
            store,
            ship,
        } => {
            let target = match (cgroup, pid) {
                (Some(c), _) => Target::Cgroup(c),
                (None, Some(p)) => Target::Pid(p),
                (None, None) => unreachable!("clap requires --cgroup or --pid"),
            };
            let result = capture.probe_options().and_then(|mut o| {
                o.protect = vec![store.log_dir.clone(), store.key_dir.clone()];
                let shippers = ship.start(&store.log_dir)?;
                let r = with_store(
                    &store,
                    capture_config(&capture),
                    |sink| {
                        Ok(run(
                            &target,
                            &o,
                            Duration::from_millis(capture.drain_interval_ms),
                            fail_closed,
                            stop,
                            &mut shippers.sink(sink),
                        )?)
                    },
                    |_| format!("signal {}", stop.last()),
                );
                shippers.finish();
                r
            });
            match result {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => failure(&e),
            }
        }
        Cmd::Exec {
            cgroup_parent,
            no_isolation,
            user,
            net,
            capture,
            store,
            ship,
            command,
        } => {
            let isolation = if no_isolation {
                Isolation::None
            } else {
                Isolation::Sandbox(SandboxOptions {
                    user,
                    net_none: net == "none",
                    hidden: vec![store.log_dir.clone(), store.key_dir.clone()],
                })
            };
            let result = capture.probe_options().and_then(|mut probe| {
                probe.protect = vec![store.log_dir.clone(), store.key_dir.clone()];
                let opts = ExecOptions {
                    command,
                    cgroup_parent,
                    probe,
                    interval: Duration::from_millis(capture.drain_interval_ms),
                    isolation,
                };
                let shippers = ship.start(&store.log_dir)?;
                let r = with_store(
                    &store,
                    capture_config(&capture),
                    |sink| Ok(exec(&opts, stop, &mut shippers.sink(sink))?),
                    |r| match r {
                        Ok(o) => format!("command ended with status {}", o.code()),
                        Err(e) => format!("error: {e:#}"),
                    },
                );
                shippers.finish();
                r
            });
            match result {
                Ok(outcome) => ExitCode::from(outcome.code().clamp(0, 255) as u8),
                Err(e) => failure(&e),
            }
        }
        other_cmd => other(other_cmd),
    }
}

/// The commands that capture nothing (no signal handling of our own).
fn other(cmd: Cmd) -> ExitCode {
    match cmd {
        Cmd::Verify(args) => match store_args::verify(&args) {
            Ok(status) => ExitCode::from(status.exit_code()),
            Err(e) => {
                eprintln!("sandbox-audit: error: {e:#}");
                ExitCode::from(2)
            }
        },
        Cmd::Checkpoint(args) => match store_args::checkpoint(&args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => failure(&e),
        },
        Cmd::Keygen(args) => match store_args::keygen(&args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => failure(&e),
        },
        Cmd::Replay(args) => match replay_args::replay(&args) {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => ExitCode::from(1),
            Err(e) => {
                eprintln!("sandbox-audit: error: {e:#}");
                ExitCode::from(2)
            }
        },
        Cmd::Run { .. } | Cmd::Exec { .. } => ExitCode::from(EXIT_INTERNAL),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use audit_capture::session::exec::Stopped;

    fn cannot_run(kind: io::ErrorKind) -> anyhow::Error {
        SessionError::CannotRun {
            program: "/x".into(),
            source: io::Error::from(kind),
        }
        .into()
    }

    #[test]
    fn exit_status_comes_from_the_error_type() {
        assert_eq!(
            exit_status(&cannot_run(io::ErrorKind::NotFound)),
            EXIT_NOT_FOUND
        );
        assert_eq!(
            exit_status(&cannot_run(io::ErrorKind::PermissionDenied)),
            EXIT_CANNOT_EXECUTE
        );
        assert_eq!(
            exit_status(&cannot_run(io::ErrorKind::Other)),
            EXIT_INTERNAL
        );
        let stopped: anyhow::Error = SessionError::Stopped(Stopped::LogFailed("x".into())).into();
        assert_eq!(
            exit_status(&stopped),
            audit_capture::session::exec::EXIT_LOG_FAILED
        );
        // The same words without the type are an internal error.
        let text =
            anyhow::Error::new(io::Error::from(io::ErrorKind::NotFound)).context("cannot run /x");
        assert_eq!(exit_status(&text), EXIT_INTERNAL);
    }
}
