//! `sandbox-audit run`: audit an existing cgroup or process tree until
//! SIGTERM/SIGINT, then drain everything the kernel still holds and exit.

use std::{path::PathBuf, time::Duration};

use anyhow::{Result, bail};

use audit_log::sink::Sink;

use super::StopSignals;
use crate::{
    cgroup::Cgroup2,
    drain::Drain,
    preflight,
    probes::{ProbeOptions, Scope},
};

#[derive(Clone, Debug)]
pub enum Target {
    Cgroup(PathBuf),
    Pid(u32),
}

pub fn resolve_scope(target: &Target) -> Result<Scope> {
    Ok(match target {
        Target::Cgroup(p) => Scope::Cgroup(Cgroup2::find()?.target(p)?),
        Target::Pid(pid) => {
            if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
                bail!("no process with pid {pid}");
            }
            Scope::PidTree { root: *pid }
        }
    })
}

pub fn run(
    target: &Target,
    opts: &ProbeOptions,
    interval: Duration,
    stop: &StopSignals,
    sink: &mut dyn Sink,
) -> Result<()> {
    preflight::check()?;
    let scope = resolve_scope(target)?;
    let mut capture = Drain::start(scope.clone(), opts)?;
    let mut session = super::scope_json(&scope);
    crate::probes::lsm::add_to_scope(&mut session, &capture.probes().lsm);
    sink.start(session)?;
    log::info!("auditing {scope:?}; stop with SIGTERM or SIGINT");
    while stop.count() == 0 {
        capture.pump(interval, sink)?;
    }
    capture.drain(sink)?;
    log::info!("stopped: {:?}", capture.stats);
    capture.release();
    Ok(())
}
