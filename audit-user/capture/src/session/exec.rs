//! `sandbox-audit exec -- CMD ARGS…`: run CMD in a fresh cgroup, audit it and
//! every descendant until the last one has exited, and exit with CMD's status.

use std::{
    ffi::OsString,
    fs::OpenOptions,
    os::unix::process::{CommandExt, ExitStatusExt},
    path::{Path, PathBuf},
    process::{Command, ExitStatus},
    time::Duration,
};

use anyhow::{Context, Result, bail};

use audit_log::sink::Sink;

use super::StopSignals;
use crate::{
    cgroup::{self, Cgroup2},
    drain::Drain,
    preflight,
    probes::{ProbeOptions, Scope},
};

#[derive(Clone, Debug)]
pub struct ExecOptions {
    pub command: Vec<OsString>,
    /// Parent of the per-run cgroup, relative to the cgroup v2 root.
    pub cgroup_parent: PathBuf,
    pub probe: ProbeOptions,
    pub interval: Duration,
}

/// How `exec` ended: CMD's status, mapped like a shell does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExecOutcome {
    pub status: ExitStatus,
}

impl ExecOutcome {
    /// Exit code for our own process: CMD's code, or 128+signal.
    pub fn code(&self) -> i32 {
        match (self.status.code(), self.status.signal()) {
            (Some(c), _) => c,
            (None, Some(s)) => 128 + s,
            _ => 1,
        }
    }
}

pub fn exec(opts: &ExecOptions, stop: &StopSignals, sink: &mut dyn Sink) -> Result<ExecOutcome> {
    preflight::check()?;
    let Some((program, args)) = opts.command.split_first() else {
        bail!("exec needs a command: sandbox-audit exec -- CMD [ARGS...]");
    };
    let cg2 = Cgroup2::find()?;
    let name = opts
        .cgroup_parent
        .join(format!("exec-{}", std::process::id()));
    let target = cg2.create(&name)?;
    let result = run_in(
        &target.path,
        Scope::Cgroup(target.clone()),
        program,
        args,
        opts,
        stop,
        sink,
    );
    // Leave no cgroup behind, whatever happened (it is empty unless we failed
    // before CMD ended; then kill what is left so it can be removed).
    if cgroup::populated(&target.path).unwrap_or(false) {
        let _ = cgroup::kill_all(&target.path);
        for _ in 0..100 {
            if !cgroup::populated(&target.path).unwrap_or(false) {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    if let Err(e) = cgroup::remove(&target.path) {
        log::warn!("{e:#}");
    }
    result
}

/// The first executable `program` on PATH, or `program` itself when it
/// contains a slash or is not found (the spawn then reports the error).
pub fn resolve_program(program: &OsString) -> PathBuf {
    use std::os::unix::{ffi::OsStrExt, fs::PermissionsExt};
    let p = Path::new(program);
    if program.as_bytes().contains(&b'/') {
        return p.to_path_buf();
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
    std::env::split_paths(&path)
        .map(|dir| dir.join(p))
        .find(|c| {
            std::fs::metadata(c).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
        .unwrap_or_else(|| p.to_path_buf())
}

fn run_in(
    cg: &Path,
    scope: Scope,
    program: &OsString,
    args: &[OsString],
    opts: &ExecOptions,
    stop: &StopSignals,
    sink: &mut dyn Sink,
) -> Result<ExecOutcome> {
    let mut session = super::scope_json(&scope);
    session.insert(
        "command".into(),
        std::iter::once(program)
            .chain(args)
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .into(),
    );
    let mut capture = Drain::start(scope, &opts.probe)?;
    crate::probes::lsm::add_to_scope(&mut session, &capture.probes().lsm);
    sink.start(session)?;

    // The child moves itself into the cgroup between fork and exec, so the
    // exec of CMD is its first audited event.
    let procs = OpenOptions::new()
        .write(true)
        .open(cg.join("cgroup.procs"))
        .with_context(|| format!("opening {}/cgroup.procs", cg.display()))?;
    let procs_fd = std::os::fd::AsRawFd::as_raw_fd(&procs);
    // Search PATH here, not in the child: each miss would otherwise be an
    // audited failed execve of the command itself.
    let mut command = Command::new(resolve_program(program));
    command.arg0(program).args(args);
    // SAFETY: the closure only calls write(2), which is async-signal-safe.
    unsafe {
        command.pre_exec(move || {
            if libc::write(procs_fd, b"0\n".as_ptr().cast(), 2) != 2 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = command
        .spawn()
        .with_context(|| format!("cannot run {}", Path::new(program).display()))?;
    drop(procs);

    let mut status = None;
    let mut forwarded = 0;
    loop {
        capture.pump(opts.interval, sink)?;
        if status.is_none() {
            status = child.try_wait().context("waiting for the command")?;
        }
        // First signal: pass it to CMD. Second: kill everything in the cgroup.
        let signals = stop.count();
        if signals > forwarded {
            if forwarded == 0 && status.is_none() {
                unsafe { libc::kill(child.id() as i32, stop.last()) };
            } else {
                cgroup::kill_all(cg)?;
            }
            forwarded = signals;
        }
        if status.is_some() && !cgroup::populated(cg)? {
            break;
        }
    }
    // Every exit was traced before the cgroup emptied: one last drain gets all.
    capture.drain(sink)?;
    log::info!("capture ended: {:?}", capture.stats);
    capture.release();
    Ok(ExecOutcome {
        status: status.context("command status missing")?,
    })
}
