//! Why an audit session (`exec`, `run`) failed. The CLI picks its exit
//! status from the variant ([`SessionError::CannotRun`], [`Stopped`]), never
//! from the message.

use std::path::PathBuf;

use thiserror::Error;

use super::exec::Stopped;
use crate::{
    cgroup::CgroupError, drain::DrainError, error::SinkError, preflight::PreflightError,
    probes::LoadError, sandbox::SandboxError,
};

#[derive(Debug, Error)]
pub enum SessionError {
    #[error(transparent)]
    Preflight(#[from] PreflightError),
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
    #[error("no process with pid {0}")]
    NoSuchPid(u32),
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error(transparent)]
    Drain(#[from] DrainError),
    /// The sink refused the session's `start` or a sandbox record.
    #[error(transparent)]
    Sink(#[from] SinkError),
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
    #[error("installing a handler for signal {signal}")]
    Signal {
        signal: i32,
        #[source]
        source: std::io::Error,
    },
    #[error("exec needs a command: sandbox-audit exec -- CMD [ARGS...]")]
    NoCommand,
    #[error("opening {}", path.display())]
    OpenProcs {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// CMD itself could not be executed (as given, before the PATH search).
    #[error("cannot run {}", program.display())]
    CannotRun {
        program: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("starting the seccomp supervisor")]
    Supervisor(#[source] std::io::Error),
    #[error("serving the seccomp listener: {0}")]
    Listener(String),
    #[error("waiting for the command")]
    Wait(#[source] std::io::Error),
    #[error("setting up the sandbox: {0}")]
    SandboxSetup(String),
    #[error("command status missing")]
    NoStatus,
    /// CMD was frozen and killed because auditing it was no longer possible.
    #[error(transparent)]
    Stopped(#[from] Stopped),
}

impl SessionError {
    /// The log (the sink) failed, not the capture.
    pub fn is_log_failure(&self) -> bool {
        matches!(
            self,
            SessionError::Sink(_) | SessionError::Drain(DrainError::Sink(_))
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::error_text;

    #[test]
    fn log_failures_are_told_apart_by_type() {
        let sink = || SinkError::Other(Box::new(std::io::Error::other("disk full")));
        assert!(SessionError::Sink(sink()).is_log_failure());
        assert!(SessionError::Drain(DrainError::Sink(sink())).is_log_failure());
        let capture =
            SessionError::Drain(DrainError::LossCounters(aya::maps::MapError::KeyNotFound));
        assert!(!capture.is_log_failure());
        assert_eq!(
            error_text(&capture),
            "reading the kernel loss counters: key not found"
        );
    }

    #[test]
    fn cannot_run_names_the_program_and_keeps_the_errno() {
        let e = SessionError::CannotRun {
            program: "/no/such".into(),
            source: std::io::Error::from_raw_os_error(libc::ENOENT),
        };
        assert_eq!(
            error_text(&e),
            "cannot run /no/such: No such file or directory (os error 2)"
        );
    }
}
