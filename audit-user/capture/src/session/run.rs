//! `sandbox-audit run`: audit an existing cgroup or process tree until
//! SIGTERM/SIGINT, then drain everything the kernel still holds and exit.
//! With `fail_closed`, a watchdog process stops the audited processes if we
//! exit any other way (killed, crashed), and we stop them ourselves on a
//! capture or store error before the probes detach.

use std::{path::PathBuf, time::Duration};

use audit_log::sink::Sink;

use super::{SessionError, StopSignals};
use crate::{
    cgroup::Cgroup2,
    drain::Drain,
    error::error_text,
    preflight,
    probes::{ProbeOptions, Scope},
    sandbox::{
        self,
        watchdog::{self, Guarded, Watchdog},
    },
};

#[derive(Clone, Debug)]
pub enum Target {
    Cgroup(PathBuf),
    Pid(u32),
}

type Result<T> = std::result::Result<T, SessionError>;

pub fn resolve_scope(target: &Target) -> Result<Scope> {
    Ok(match target {
        Target::Cgroup(p) => Scope::Cgroup(Cgroup2::find()?.target(p)?),
        Target::Pid(pid) => {
            if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
                return Err(SessionError::NoSuchPid(*pid));
            }
            Scope::PidTree { root: *pid }
        }
    })
}

pub fn run(
    target: &Target,
    opts: &ProbeOptions,
    interval: Duration,
    fail_closed: bool,
    stop: &StopSignals,
    sink: &mut dyn Sink,
) -> Result<()> {
    preflight::check()?;
    sandbox::protect_agent();
    let scope = resolve_scope(target)?;
    let guarded = match &scope {
        Scope::Cgroup(t) => Guarded::Cgroup(t.path.clone()),
        Scope::PidTree { root } => Guarded::PidTree(*root),
    };
    let mut capture = Drain::start(scope.clone(), opts)?;
    let watchdog = if fail_closed {
        Some(Watchdog::start(&guarded)?)
    } else {
        None
    };
    let mut session = super::scope_json(&scope);
    session.insert("fail_closed".into(), (fail_closed as u8).into());
    capture.probes().add_to_scope(&mut session);
    sink.start(session)?;
    log::info!("auditing {scope:?}; stop with SIGTERM or SIGINT");
    let result = (|| {
        while stop.count() == 0 {
            capture.pump(interval, sink)?;
        }
        capture.drain(sink)
    })();
    if let Err(e) = &result {
        if fail_closed {
            match watchdog::stop(&guarded) {
                Ok(()) => log::error!("stopped {guarded:?} (fail closed): {}", error_text(e)),
                Err(s) => log::error!("{s}"),
            }
        }
    }
    log::info!("stopped: {:?}", capture.stats);
    capture.release();
    result?;
    if let Some(w) = watchdog {
        w.disarm();
    }
    Ok(())
}
