//! `sandbox-audit exec -- CMD ARGS…`: run CMD in a fresh cgroup — isolated
//! from the recorder unless told otherwise (see `sandbox`) — audit it and
//! every descendant until the last one has exited, and exit with CMD's status.
//!
//! Fail closed: if the log cannot be written or the capture fails while CMD
//! runs, the sandbox is frozen and killed BEFORE the probes detach, and the
//! error says so ([`Stopped`], its own exit status).

use std::{
    ffi::OsString,
    fs::OpenOptions,
    os::unix::process::{CommandExt, ExitStatusExt},
    path::{Path, PathBuf},
    process::{Command, ExitStatus},
    time::Duration,
};

use serde_json::json;
use thiserror::Error;

use audit_log::sink::Sink;

use super::{SessionError, StopSignals};
use crate::{
    cgroup::{self, Cgroup2},
    drain::Drain,
    error::error_text,
    preflight,
    probes::{ProbeOptions, Scope},
    sandbox::{
        self, SandboxConfig, SandboxOptions,
        supervisor::{self, Event, Supervisor},
    },
};

/// How CMD is separated from the recorder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Isolation {
    /// CMD runs in the host's namespaces with our privileges (audited, but
    /// able to reach the recorder): `--no-isolation`.
    None,
    /// The default: see `sandbox`.
    Sandbox(SandboxOptions),
}

/// Exit status of `exec` when the log could not be written while CMD ran.
pub const EXIT_LOG_FAILED: u8 = 122;
/// Exit status of `exec` when the capture itself failed while CMD ran.
pub const EXIT_CAPTURE_FAILED: u8 = 123;

/// `exec` stopped CMD because auditing it was no longer possible.
#[derive(Debug, Error)]
pub enum Stopped {
    #[error(
        "the log could not be written ({0}); the sandbox was frozen and killed before the probes detached"
    )]
    LogFailed(String),
    #[error(
        "the capture failed ({0}); the sandbox was frozen and killed before the probes detached"
    )]
    CaptureFailed(String),
}

impl Stopped {
    pub fn exit_code(&self) -> u8 {
        match self {
            Stopped::LogFailed(_) => EXIT_LOG_FAILED,
            Stopped::CaptureFailed(_) => EXIT_CAPTURE_FAILED,
        }
    }
}

type Result<T> = std::result::Result<T, SessionError>;

#[derive(Clone, Debug)]
pub struct ExecOptions {
    pub command: Vec<OsString>,
    /// Parent of the per-run cgroup, relative to the cgroup v2 root.
    pub cgroup_parent: PathBuf,
    pub probe: ProbeOptions,
    pub interval: Duration,
    pub isolation: Isolation,
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
    sandbox::protect_agent();
    let Some((program, args)) = opts.command.split_first() else {
        return Err(SessionError::NoCommand);
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
        log::warn!("{}", error_text(&e));
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

/// Freezes the sandbox at once (nothing it does from now on goes unseen),
/// then kills it, while the probes are still attached.
fn freeze_and_kill(cg: &Path) {
    if let Err(e) = std::fs::write(cg.join("cgroup.freeze"), "1") {
        log::error!("freezing {}: {e}", cg.display());
    }
    if let Err(e) = cgroup::kill_all(cg) {
        log::error!("{}", error_text(&e));
    }
    for _ in 0..200 {
        if !cgroup::populated(cg).unwrap_or(false) {
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn spawn_plain(cg: &Path, program: &OsString, args: &[OsString]) -> Result<std::process::Child> {
    // The child moves itself into the cgroup between fork and exec, so the
    // exec of CMD is its first audited event.
    let procs = open_procs(cg)?;
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
    command
        .spawn()
        .map_err(|source| cannot_run(program, source))
}

/// The cgroup's `cgroup.procs`, to move CMD in.
fn open_procs(cg: &Path) -> Result<std::fs::File> {
    let path = cg.join("cgroup.procs");
    OpenOptions::new()
        .write(true)
        .open(&path)
        .map_err(|source| SessionError::OpenProcs { path, source })
}

fn cannot_run(program: &OsString, source: std::io::Error) -> SessionError {
    SessionError::CannotRun {
        program: PathBuf::from(program),
        source,
    }
}

/// What the sandbox reported besides denied syscalls.
#[derive(Default)]
struct Reports {
    exec_failed: Option<i32>,
    setup_failed: Option<String>,
    listener_failed: Option<String>,
}

fn handle(events: Vec<Event>, sink: &mut dyn Sink, reports: &mut Reports) -> Result<()> {
    for ev in events {
        match ev {
            Event::Denied(d) => sink.accept(supervisor::record(&d))?,
            Event::ExecFailed(e) => reports.exec_failed = Some(e),
            Event::SetupFailed(t) => reports.setup_failed = Some(t),
            Event::ListenerFailed(t) => reports.listener_failed = Some(t),
            Event::Filtered => log::debug!("seccomp filter in place"),
        }
    }
    Ok(())
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
    let argv: Vec<OsString> = std::iter::once(program).chain(args).cloned().collect();
    session.insert(
        "command".into(),
        argv.iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .into(),
    );
    let config = match &opts.isolation {
        Isolation::None => None,
        Isolation::Sandbox(o) => Some(SandboxConfig::new(&resolve_program(program), &argv, o)),
    };
    let described = match &config {
        Some(c) => serde_json::Value::Object(c.describe()),
        None => json!({"isolation": "none"}),
    };
    session.insert("sandbox".into(), described);
    let mut capture = Drain::start(scope, &opts.probe)?;
    capture.probes().add_to_scope(&mut session);
    sink.start(session)?;

    let (mut child, supervisor) = match &config {
        None => (spawn_plain(cg, program, args)?, None),
        Some(c) => {
            let procs = open_procs(cg)?;
            let sb = sandbox::spawn(c, &procs)?;
            let sup = Supervisor::start(sb.control).map_err(SessionError::Supervisor)?;
            (sb.outer, Some(sup))
        }
    };

    let mut reports = Reports::default();
    let mut status = None;
    let mut forwarded = 0;
    let looped: Result<()> = (|| loop {
        capture.pump(opts.interval, sink)?;
        if let Some(sup) = &supervisor {
            handle(sup.poll(), sink, &mut reports)?;
            if let Some(t) = &reports.listener_failed {
                return Err(SessionError::Listener(t.clone()));
            }
        }
        if status.is_none() {
            status = child.try_wait().map_err(SessionError::Wait)?;
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
            return Ok(());
        }
    })();
    let mut finished = looped.and_then(|()| {
        if let Some(sup) = supervisor {
            handle(sup.stop(), sink, &mut reports)?;
        }
        // Every exit was traced before the cgroup emptied: one last drain gets all.
        capture.drain(sink)?;
        Ok(())
    });
    if let Err(e) = &finished {
        // Fail closed before the probes go away.
        freeze_and_kill(cg);
        let _ = child.wait();
        let why = error_text(e);
        log::error!("sandbox frozen and killed: {why}");
        // Which side failed is told by the error's type.
        let stopped = if e.is_log_failure() {
            Stopped::LogFailed(why)
        } else {
            Stopped::CaptureFailed(why)
        };
        finished = Err(SessionError::Stopped(stopped));
    }
    log::info!("capture ended: {:?}", capture.stats);
    capture.release();
    finished?;
    if let Some(t) = reports.setup_failed {
        return Err(SessionError::SandboxSetup(t));
    }
    if let Some(e) = reports.exec_failed {
        return Err(cannot_run(program, std::io::Error::from_raw_os_error(e)));
    }
    Ok(ExecOutcome {
        status: status.ok_or(SessionError::NoStatus)?,
    })
}
